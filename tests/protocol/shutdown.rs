//! Graceful shutdown: every session gets `reconnect` and is closed with 1001,
//! the server stops within its grace period, and nothing listens after.

use std::time::{Duration, Instant};

use signaling::client::Client;

use crate::common::{TestServer, T};
use crate::support::{assert_none_of, join_room, open_bare};

/// On shutdown every session gets `reconnect` (`draining`) and is closed,
/// run() returns within the grace period, and new connections fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_drains_sessions() {
    let mut server = TestServer::start().await;
    let addr = server.addr;
    let url = server.ws_url();
    let grace = server.config.shutdown_grace;
    let mut a = server.connect("a").await;
    let mut b = server.connect("b").await;
    join_room(&mut a, "drain").await;
    join_room(&mut b, "drain").await;
    // An unauthenticated connection is drained as well.
    let mut bare = open_bare(&server).await;

    let started = Instant::now();
    server.trigger_shutdown();
    for (name, c) in [("a", &mut a), ("b", &mut b), ("bare", &mut bare)] {
        let r = c
            .wait_type("reconnect", T)
            .await
            .unwrap_or_else(|e| panic!("{name}: no reconnect: {e}"));
        assert_eq!(r.raw["reason"], "draining", "{name}: {}", r.raw);
        assert!(
            r.raw["retryAfterMs"].as_u64().is_some(),
            "{name}: retryAfterMs: {}",
            r.raw
        );
        let code = c
            .wait_closed(T)
            .await
            .unwrap_or_else(|e| panic!("{name}: not closed: {e}"));
        // docs/PROTOCOL.md (decisions): draining closes with 1001.
        assert_eq!(code, Some(1001), "{name}");
        assert_none_of(&c.drain_type("reconnect"), &["reconnect"], name);
    }
    server.stop().await;
    let took = started.elapsed();
    assert!(
        took < grace + Duration::from_secs(1),
        "run() returned after {took:?} (grace {grace:?})"
    );
    // Nothing listens any more.
    assert!(
        Client::connect(&url, None).await.is_err(),
        "WebSocket connect after shutdown succeeded"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "TCP connect after shutdown succeeded"
    );
}
