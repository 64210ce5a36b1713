//! Signaling protocol conformance (PROTOCOL.md, version 1): authentication,
//! grants, bad input, rooms, the HTTP endpoints and graceful shutdown.
//!
//! No WebRTC media: every test talks to its own in-process server on
//! 127.0.0.1, so these pass with a plain `cargo test --test protocol` as well
//! as inside the network namespace of scripts/test.sh.

#[path = "../common/mod.rs"]
mod common;
mod support;

mod auth;
mod bad_input;
mod grants;
mod http;
mod limits;
mod rooms;

use std::time::{Duration, Instant};

use common::{TestServer, T};
use signaling::client::Client;

use support::*;

// --- 6. graceful shutdown -----------------------------------------------

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
