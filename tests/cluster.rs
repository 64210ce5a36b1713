//! Cluster mode with a real `redis-server` and nodes that are separate
//! processes of the real binary, each on its own loopback port: the
//! registry, room leases (racing claims, an owner killed with -9), and a
//! Redis outage during a call.
mod common;

use std::time::{Duration, Instant};

use common::driver::{Driver, Options};
use common::procs::{NodeProcess, RedisProcess};
use common::{media_slot, require_test_network, Endpoint};
use serde_json::{json, Value};
use signaling::client::Client;

const T: Duration = Duration::from_secs(10);

async fn client(node: &NodeProcess, user: &str) -> Client {
    let url = format!("{}?token={}", node.ws_url(), node.user_token(user));
    let mut c = Client::connect(&url, None).await.expect("connect");
    c.wait_type("auth-ok", T).await.expect("auth-ok");
    c
}

/// Sends `join` and returns the reply: `joined` or `error`.
async fn join(c: &mut Client, room: &str) -> Value {
    c.send_raw(&json!({"type": "join", "roomName": room}).to_string())
        .await
        .expect("send join");
    c.wait_for("joined or error", T, |r| {
        matches!(r.type_name(), "joined" | "error")
    })
    .await
    .expect("join reply")
    .raw
}

/// Polls `check` every 100 ms for up to `limit`; panics with `what`.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_a_registry_and_agree_on_room_owners() {
    require_test_network();
    let _slot = media_slot().await;
    let redis = RedisProcess::start();
    let nodes = [
        NodeProcess::start("node-a", &redis.url(), &[]).await,
        NodeProcess::start("node-b", &redis.url(), &[]).await,
        NodeProcess::start("node-c", &redis.url(), &[]).await,
    ];
    for n in &nodes {
        eventually("every node to see three live nodes", T, || async {
            n.health().await["cluster"]["nodes"] == 3
        })
        .await;
        let h = n.health().await;
        assert_eq!(h["cluster"]["mode"], "redis", "{h}");
        assert_eq!(h["cluster"]["redis"], "up", "{h}");
        assert_eq!(h["nodeId"], n.id.as_str(), "{h}");
    }

    // A room opened on node-b belongs to node-b for everyone.
    let mut c = client(&nodes[1], "ann").await;
    let reply = join(&mut c, "lobby").await;
    assert_eq!(reply["type"], "joined", "{reply}");
    for n in &nodes {
        let room = n.health_of_room("lobby").await;
        assert_eq!(room["owner"], "node-b", "{} says {room}", n.id);
        assert_eq!(room["open"], n.id == "node-b", "{} says {room}", n.id);
    }
    assert_eq!(nodes[1].health().await["cluster"]["leases"], 1);

    // Media between two participants on the owner, in cluster mode.
    let p = Driver::join(&nodes[1], "pub", "lobby", Options::default()).await;
    let s = Driver::join(
        &nodes[1],
        "sub",
        "lobby",
        Options {
            publish: false,
            ..Options::default()
        },
    )
    .await;
    s.wait_new_publisher("pub", 2).await;
    s.subscribe("pub");
    for t in [&p.video_track, &p.audio_track] {
        assert!(
            s.subscriber
                .wait_for_packets(t, 50, Duration::from_secs(20))
                .await,
            "no media on {t}: {:?}",
            s.errors()
        );
    }
    p.close().await;
    s.close().await;

    // The room closes when the last one leaves, and its lease goes with it.
    c.close().await;
    eventually("the lease of the empty room to be released", T, || async {
        nodes[0].health_of_room("lobby").await["owner"].is_null()
    })
    .await;

    // A node that stops leaves the registry (SIGTERM releases at once).
    let [a, b, c] = nodes;
    drop(c);
    eventually("node-c to leave the registry", T, || async {
        a.health().await["cluster"]["nodes"] == 2 && b.health().await["cluster"]["nodes"] == 2
    })
    .await;
}

/// Two nodes, two clients joining one fresh room at the same instant, 50
/// times: exactly one node opens it, the other refuses, and both name the
/// same owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_claims_never_open_a_room_on_two_nodes() {
    require_test_network();
    let _slot = media_slot().await;
    let redis = RedisProcess::start();
    let a = NodeProcess::start("race-a", &redis.url(), &[]).await;
    let b = NodeProcess::start("race-b", &redis.url(), &[]).await;
    let mut ca = client(&a, "alice").await;
    let mut cb = client(&b, "bob").await;
    let mut wins = [0u32; 2];
    for round in 0..50 {
        let room = format!("race-{round}");
        let msg = json!({"type": "join", "roomName": room}).to_string();
        let (ra, rb) = tokio::join!(
            async {
                ca.send_raw(&msg).await.expect("send");
                ca.wait_for("reply", T, |r| matches!(r.type_name(), "joined" | "error"))
                    .await
                    .expect("reply")
                    .raw
            },
            async {
                cb.send_raw(&msg).await.expect("send");
                cb.wait_for("reply", T, |r| matches!(r.type_name(), "joined" | "error"))
                    .await
                    .expect("reply")
                    .raw
            }
        );
        let joined = [ra["type"] == "joined", rb["type"] == "joined"];
        assert_eq!(
            joined.iter().filter(|j| **j).count(),
            1,
            "round {round}: {ra} / {rb}"
        );
        let (winner, loser_reply) = if joined[0] { (&a, &rb) } else { (&b, &ra) };
        wins[usize::from(!joined[0])] += 1;
        assert!(
            loser_reply["message"]
                .as_str()
                .is_some_and(|m| m.contains(&winner.id)),
            "round {round}: the refusal names the owner: {loser_reply}"
        );
        let (ha, hb) = (a.health_of_room(&room).await, b.health_of_room(&room).await);
        assert_eq!(ha["owner"], winner.id.as_str(), "round {round}: {ha}");
        assert_eq!(hb["owner"], winner.id.as_str(), "round {round}: {hb}");
        assert_ne!(
            ha["open"], hb["open"],
            "round {round}: open on both or neither"
        );
    }
    eprintln!(
        "racing claims: node a won {}, node b won {}",
        wins[0], wins[1]
    );
    ca.close().await;
    cb.close().await;
}

/// The owner dies without releasing its lease: within the lease time a live
/// node may open the room, and does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owners_rooms_move_to_a_live_node_after_the_lease() {
    require_test_network();
    let _slot = media_slot().await;
    let redis = RedisProcess::start();
    let lease = [("ROOM_LEASE_MS", "3000"), ("NODE_TTL_MS", "3000")];
    let mut a = NodeProcess::start("kill-a", &redis.url(), &lease).await;
    let b = NodeProcess::start("kill-b", &redis.url(), &lease).await;
    let mut ca = client(&a, "alice").await;
    assert_eq!(join(&mut ca, "standup").await["type"], "joined");
    // Renewals keep it with node a well past one lease time.
    tokio::time::sleep(Duration::from_millis(4000)).await;
    assert_eq!(b.health_of_room("standup").await["owner"], "kill-a");

    let mut cb = client(&b, "bob").await;
    let refused = join(&mut cb, "standup").await;
    assert_eq!(refused["type"], "error", "{refused}");

    a.kill9();
    let killed = Instant::now();
    // The client on node a sees its socket drop.
    assert!(ca.wait_closed(T).await.is_ok() || ca.close_info().is_some());
    let mut attempts = 0;
    let reply = loop {
        attempts += 1;
        let r = join(&mut cb, "standup").await;
        if r["type"] == "joined" {
            break r;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "room never moved: {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let took = killed.elapsed();
    eprintln!(
        "owner killed -> room open on the live node after {took:?} ({attempts} joins; lease 3 s)"
    );
    assert_eq!(reply["roomName"], "standup");
    assert_eq!(b.health_of_room("standup").await["owner"], "kill-b");
    eventually("the dead node to leave the registry", T, || async {
        b.health().await["cluster"]["nodes"] == 1
    })
    .await;
    cb.close().await;
}

/// Redis goes away for 10 s during a call: media keeps flowing, a new room
/// is refused with a clear error, and after Redis is back new rooms work
/// and the node holds its old room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_keeps_calls_and_refuses_new_rooms_until_it_is_back() {
    require_test_network();
    let _slot = media_slot().await;
    let mut redis = RedisProcess::start();
    let port = redis.port;
    let lease = [("ROOM_LEASE_MS", "3000"), ("NODE_TTL_MS", "3000")];
    let a = NodeProcess::start("outage-a", &redis.url(), &lease).await;
    let p = Driver::join(&a, "pub", "call", Options::default()).await;
    let s = Driver::join(
        &a,
        "sub",
        "call",
        Options {
            publish: false,
            ..Options::default()
        },
    )
    .await;
    s.wait_new_publisher("pub", 2).await;
    s.subscribe("pub");
    assert!(
        s.subscriber
            .wait_for_packets(&p.video_track, 50, Duration::from_secs(20))
            .await,
        "no media before the outage: {:?}",
        s.errors()
    );

    redis.kill();
    let down_at = Instant::now();
    eventually("the node to notice Redis is down", T, || async {
        a.health().await["cluster"]["redis"] == "down"
    })
    .await;
    let mut c = client(&a, "carol").await;
    let refused = join(&mut c, "new-room").await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "internal", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("unavailable")),
        "{refused}"
    );
    // Media keeps flowing for the rest of the 10 s.
    let before = s.subscriber.stats()[&p.video_track].packets;
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(down_at.elapsed())).await;
    let after = s.subscriber.stats()[&p.video_track].packets;
    assert!(
        after > before + 100,
        "media stalled while Redis was down: {before} -> {after}"
    );

    let _redis = RedisProcess::start_on(port);
    let back = Instant::now();
    loop {
        if join(&mut c, "new-room").await["type"] == "joined" {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "new rooms still refused 20 s after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("Redis back -> new rooms open after {:?}", back.elapsed());
    let h = a.health().await;
    assert_eq!(h["cluster"]["redis"], "up", "{h}");
    eventually("the old room to be held again", T, || async {
        a.health_of_room("call").await["owner"] == "outage-a"
    })
    .await;
    let still = s.subscriber.stats()[&p.video_track].packets;
    assert!(still > after, "media stopped after Redis came back");
    c.close().await;
    p.close().await;
    s.close().await;
}
