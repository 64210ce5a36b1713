//! Cluster mode: a real `redis-server` and two in-process nodes sharing a
//! key. Any node answers for any room: the room list is gathered from
//! both, and a room's operations run on the node that holds it, whichever
//! node the request reached, for clients connected to either node.

use std::time::{Duration, Instant};

use rheo_sfu::config::{ClusterSettings, JwtKey, Placement};
use serde_json::{json, Value};

use crate::common::procs::RedisProcess;
use crate::common::{join, TestServer, T};
use crate::support::admin;

const SECRET: &[u8] = b"cluster-admin-test-secret-0123";

async fn node(id: &str, redis: &RedisProcess, prefix: &str) -> TestServer {
    let settings = ClusterSettings {
        redis_url: redis.url(),
        advertise_url: format!("ws://127.0.0.1:1/{id}"),
        placement: Placement::Local,
        room_lease: Duration::from_secs(10),
        node_ttl: Duration::from_secs(3),
        prefix: prefix.to_owned(),
    };
    TestServer::start_with(|c| {
        c.node_id = id.to_owned();
        c.jwt_key = JwtKey::Secret(SECRET.to_vec());
        c.cluster = Some(settings);
    })
    .await
}

fn names_and_nodes(v: &Value) -> Vec<(String, String, usize)> {
    v["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("").to_owned(),
                r["node"].as_str().unwrap_or("").to_owned(),
                r["participants"].as_array().map_or(0, Vec::len),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_lists_and_acts_on_every_room() {
    let redis = RedisProcess::start();
    let prefix = format!("admin-{}", std::process::id());
    let a = node("node-a", &redis, &prefix).await;
    let b = node("node-b", &redis, &prefix).await;
    // Both nodes registered before anything is asked.
    let deadline = Instant::now() + T;
    while !(a.get("/health").await.1.contains("\"nodes\":2")
        && b.get("/health").await.1.contains("\"nodes\":2"))
    {
        assert!(Instant::now() < deadline, "nodes did not see each other");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // ann on node-a opens "ra"; bob on node-b opens "rb"; cat reaches
    // "ra" through node-b (forwarded to node-a).
    let mut ann = a.connect("ann").await;
    let mut bob = b.connect("bob").await;
    let mut cat = b.connect("cat").await;
    assert_eq!(join(&mut ann, "ra").await["type"], "joined");
    assert_eq!(join(&mut bob, "rb").await["type"], "joined");
    assert_eq!(join(&mut cat, "ra").await["type"], "joined");
    ann.wait_type("participant-joined", T)
        .await
        .expect("cat joined ra");

    let expected = vec![
        ("ra".to_owned(), "node-a".to_owned(), 2),
        ("rb".to_owned(), "node-b".to_owned(), 1),
    ];
    for n in [&a, &b] {
        let (status, v) = admin(n, "GET", "/admin/v1/rooms", None).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            names_and_nodes(&v),
            expected,
            "{} says {v}",
            n.config.node_id
        );
        assert!(v.get("unreachableNodes").is_none(), "{v}");
    }
    let (status, v) = admin(&b, "GET", "/admin/v1/rooms/ra", None).await;
    assert_eq!((status, v["node"].as_str()), (200, Some("node-a")), "{v}");
    let (status, v) = admin(&a, "GET", "/admin/v1/rooms/nowhere", None).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("room-not-found")),
        "{v}"
    );
    let (status, v) = admin(&b, "POST", "/admin/v1/rooms/ra/participants/zed/kick", None).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("participant-not-found")),
        "{v}"
    );

    // Kick across nodes: through node-b, cat (a client of node-b whose
    // session runs on node-a); through node-a, bob (on node-b).
    let (status, v) = admin(&b, "POST", "/admin/v1/rooms/ra/participants/cat/kick", None).await;
    assert_eq!(status, 200, "{v}");
    let k = cat.wait_type("kicked", T).await.expect("cat kicked").raw;
    assert_eq!(
        k,
        json!({"type":"kicked","roomName":"ra","reason":"removed"})
    );
    assert_eq!(cat.wait_closed(T).await.expect("closed"), Some(4003));
    let (status, v) = admin(&a, "POST", "/admin/v1/rooms/rb/participants/bob/kick", None).await;
    assert_eq!(status, 200, "{v}");
    bob.wait_type("kicked", T).await.expect("bob kicked");
    assert_eq!(bob.wait_closed(T).await.expect("closed"), Some(4003));

    // A system message and a close through the other node.
    let (status, v) = admin(
        &b,
        "POST",
        "/admin/v1/rooms/ra/messages",
        Some(r#"{"text":"hello"}"#),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        ann.wait_type("chat", T).await.expect("chat").raw["text"],
        "hello"
    );
    let (status, v) = admin(&b, "POST", "/admin/v1/rooms/ra/close", None).await;
    assert_eq!((status, v["participants"].as_u64()), (200, Some(1)), "{v}");
    let k = ann.wait_type("kicked", T).await.expect("ann kicked").raw;
    assert_eq!(k["reason"], "room-closed", "{k}");
    assert_eq!(ann.wait_closed(T).await.expect("closed"), Some(4003));

    // Nothing is left anywhere.
    let deadline = Instant::now() + T;
    loop {
        let (_, v) = admin(&a, "GET", "/admin/v1/rooms", None).await;
        if names_and_nodes(&v).is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "rooms left: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.stop().await;
    b.stop().await;
}
