//! Cluster mode with a real `redis-server` and nodes that are separate
//! processes of the real binary, each on its own loopback port: the
//! registry, room leases (racing claims, an owner killed with -9), and a
//! Redis outage during a call.
mod common;

use std::time::{Duration, Instant};

use common::driver::{Driver, Options};
use common::procs::{NodeProcess, RedisProcess};
use common::{join, media_slot, require_test_network, Endpoint};
use serde_json::json;
use signaling::client::Client;

const T: Duration = Duration::from_secs(10);

async fn client(node: &NodeProcess, user: &str) -> Client {
    let url = format!("{}?token={}", node.ws_url(), node.user_token(user));
    let mut c = Client::connect(&url, None).await.expect("connect");
    c.wait_type("auth-ok", T).await.expect("auth-ok");
    c
}

/// A publisher ("pub", audio and video) and a subscriber ("sub") of it, both
/// connected through `node`.
async fn call(node: &NodeProcess, room: &str) -> (Driver, Driver) {
    let p = Driver::join(node, "pub", room, Options::default()).await;
    let s = Driver::join(node, "sub", room, Options::subscriber()).await;
    s.wait_new_publisher("pub", 2).await;
    s.subscribe("pub");
    (p, s)
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

    // Three participants, each connected to a different node, all publish
    // and all subscribe to each other: the nodes that do not hold the room
    // forward signaling to node-b, media goes to node-b directly.
    let ids = ["p-a", "p-b", "p-c"];
    let mut ds = Vec::new();
    for (n, id) in nodes.iter().zip(ids) {
        ds.push(Driver::join(n, id, "lobby", Options::default()).await);
    }
    for d in &ds {
        for other in ids.iter().filter(|o| **o != d.id) {
            d.wait_new_publisher(other, 2).await;
        }
    }
    for d in &ds {
        for other in ids.iter().filter(|o| **o != d.id) {
            d.subscribe(other);
        }
    }
    for d in &ds {
        for other in ds.iter().filter(|o| o.id != d.id) {
            for t in [&other.video_track, &other.audio_track] {
                assert!(
                    d.subscriber
                        .wait_for_packets(t, 50, Duration::from_secs(30))
                        .await,
                    "{} got no media on {t}: {:?}",
                    d.id,
                    d.errors()
                );
            }
        }
        assert!(d.errors().is_empty(), "{}: {:?}", d.id, d.errors());
    }
    // Room events reached the client on node-a (forwarded): it saw the
    // others join.
    let joined: Vec<String> = ds[0]
        .events_of("participant-joined")
        .iter()
        .map(|e| e.raw["participantId"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        joined.contains(&"p-b".to_owned()) && joined.contains(&"p-c".to_owned()),
        "{joined:?}"
    );
    // Only node-b holds the room; the others have no room open.
    assert_eq!(nodes[1].health().await["participants"], 4);
    assert_eq!(nodes[0].health().await["rooms"], 0);
    assert_eq!(nodes[2].health().await["rooms"], 0);
    for d in ds {
        d.close().await;
    }

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
    let mut wins = [0u32; 2];
    for round in 0..50 {
        // Fresh connections each round: a connection forwarded once stays
        // with that node.
        let mut ca = client(&a, "alice").await;
        let mut cb = client(&b, "bob").await;
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
        // Both clients get into the room (one through forwarding)...
        assert_eq!(ra["type"], "joined", "round {round}: {ra}");
        assert_eq!(rb["type"], "joined", "round {round}: {rb}");
        // ...but exactly one node opened it, and both name it as the owner.
        let (ha, hb) = (a.health_of_room(&room).await, b.health_of_room(&room).await);
        assert_ne!(
            ha["open"], hb["open"],
            "round {round}: open on both or neither: {ha} {hb}"
        );
        let winner = if ha["open"] == true { &a } else { &b };
        wins[usize::from(winner.id != a.id)] += 1;
        assert_eq!(ha["owner"], winner.id.as_str(), "round {round}: {ha}");
        assert_eq!(hb["owner"], winner.id.as_str(), "round {round}: {hb}");
        assert_eq!(winner.health().await["participants"], 2, "round {round}");
        ca.close().await;
        cb.close().await;
    }
    eprintln!(
        "racing claims: node a won {}, node b won {}",
        wins[0], wins[1]
    );
    assert!(
        wins[0] > 0 && wins[1] > 0,
        "one node won every race ({wins:?}): the claims did not race"
    );
}

/// Joins through `node` with a raw client, retrying while the room's old
/// owner is gone but its lease has not expired; leaves again. Returns the
/// number of attempts.
async fn join_when_possible(node: &NodeProcess, room: &str, limit: Duration) -> u32 {
    let start = Instant::now();
    let mut c = client(node, "prober").await;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let r = join(&mut c, room).await;
        if r["type"] == "joined" {
            break;
        }
        assert!(start.elapsed() < limit, "room {room} never reopened: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.close().await;
    attempts
}

/// kill -9 of the node that holds a room, five times: the clients it served
/// through another node get `reconnect` (`owner-lost`), rejoin through that
/// node, which takes the room once the dead node's lease expired, and media
/// flows again. Records the time from the kill to media flowing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_owner_moves_its_rooms_to_a_live_node() {
    require_test_network();
    let _slot = media_slot().await;
    let redis = RedisProcess::start();
    let fast = [("ROOM_LEASE_MS", "3000"), ("NODE_TTL_MS", "3000")];
    let mut times = Vec::new();
    for round in 0..5 {
        let room = format!("standup-{round}");
        let mut owner = NodeProcess::start(&format!("owner-{round}"), &redis.url(), &fast).await;
        let edge = NodeProcess::start(&format!("edge-{round}"), &redis.url(), &fast).await;
        let mut anchor = client(&owner, "anchor").await;
        assert_eq!(join(&mut anchor, &room).await["type"], "joined");
        // Publisher and subscriber reach the edge; it forwards to the owner.
        let (p, s) = call(&edge, &room).await;
        assert!(
            s.subscriber
                .wait_for_packets(&p.video_track, 30, Duration::from_secs(20))
                .await,
            "round {round}: no media before the kill: {:?}",
            s.errors()
        );
        assert_eq!(edge.health_of_room(&room).await["owner"], owner.id.as_str());

        owner.kill9();
        let killed = Instant::now();
        for d in [&p, &s] {
            let e = d
                .wait_event("reconnect", Duration::from_secs(15), |v| {
                    v["type"] == "reconnect"
                })
                .await;
            assert_eq!(e.raw["reason"], "owner-lost", "round {round}: {}", e.raw);
        }
        let noticed = killed.elapsed();
        p.close().await;
        s.close().await;
        drop(anchor);
        // Rejoin through the same (live) node.
        let attempts = join_when_possible(&edge, &room, Duration::from_secs(20)).await;
        let (p, s) = call(&edge, &room).await;
        assert!(
            s.subscriber
                .wait_for_packets(&p.video_track, 1, Duration::from_secs(20))
                .await,
            "round {round}: no media after the failover: {:?}",
            s.errors()
        );
        let took = killed.elapsed();
        eprintln!(
            "failover round {round}: reconnect after {noticed:?}, media again after {took:?} ({attempts} join attempts; lease 3 s, node TTL 3 s)"
        );
        times.push(took);
        assert_eq!(edge.health_of_room(&room).await["owner"], edge.id.as_str());
        p.close().await;
        s.close().await;
    }
    times.sort();
    eprintln!(
        "failover kill -> media: median {:?}, max {:?} over {} kills",
        times[times.len() / 2],
        times[times.len() - 1],
        times.len()
    );
}

/// kill -9 of the room's node with the default settings (no lease or TTL
/// override): the publisher and subscriber forwarded through another node
/// get `reconnect` (`owner-lost`), and their first rejoin opens the room
/// on that node at once: the dead node's lease (10 s by default, much of
/// it left) is void because its registry entry expired. Media flows again.
/// The time this takes is a benchmark figure (bench/faults.sh), not
/// asserted here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_default_settings_a_killed_owner_s_room_reopens_at_the_first_rejoin() {
    require_test_network();
    let _slot = media_slot().await;
    let redis = RedisProcess::start();
    let room = "defaults";
    let mut owner = NodeProcess::start("dflt-owner", &redis.url(), &[]).await;
    let edge = NodeProcess::start("dflt-edge", &redis.url(), &[]).await;
    let mut anchor = client(&owner, "anchor").await;
    assert_eq!(join(&mut anchor, room).await["type"], "joined");
    let (p, s) = call(&edge, room).await;
    assert!(
        s.subscriber
            .wait_for_packets(&p.video_track, 30, Duration::from_secs(20))
            .await,
        "no media before the kill: {:?}",
        s.errors()
    );
    assert_eq!(edge.health_of_room(room).await["owner"], owner.id.as_str());

    owner.kill9();
    for d in [&p, &s] {
        let e = d
            .wait_event("reconnect", Duration::from_secs(15), |v| {
                v["type"] == "reconnect"
            })
            .await;
        assert_eq!(e.raw["reason"], "owner-lost", "{}", e.raw);
    }
    p.close().await;
    s.close().await;
    drop(anchor);
    // The lease still has seconds left, but its holder is gone from the
    // registry: the first join takes the room (before the take-over, it
    // was refused with "the room's node … is gone … retry").
    let mut c = client(&edge, "first-back").await;
    let r = join(&mut c, room).await;
    assert_eq!(r["type"], "joined", "{r}");
    assert_eq!(edge.health_of_room(room).await["owner"], edge.id.as_str());
    c.close().await;
    let (p, s) = call(&edge, room).await;
    assert!(
        s.subscriber
            .wait_for_packets(&p.video_track, 1, Duration::from_secs(20))
            .await,
        "no media after the failover: {:?}",
        s.errors()
    );
    p.close().await;
    s.close().await;
}

/// Redis loses its data (a restart without persistence): the node notices
/// its registry entry is gone at its next heartbeat and claims its room's
/// lease again then, long before its next lease renewal (a third of a 60 s
/// lease). Meanwhile another node does not open a second copy of the room
/// (a join through it is refused for a moment or forwarded to the room's
/// node), and a client forwarded through that node is not told its room's
/// node is gone (the registry Redis restarted with is empty for a moment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_lost_its_data_the_room_stays_on_its_node() {
    require_test_network();
    let mut redis = RedisProcess::start();
    let port = redis.port;
    let long = [("ROOM_LEASE_MS", "60000")];
    let a = NodeProcess::start("reclaim-a", &redis.url(), &long).await;
    // Node b checks its peers every 333 ms, node a heartbeats every second:
    // b looks for a in the new, empty registry before a is back in it.
    let quick = [("ROOM_LEASE_MS", "60000"), ("NODE_TTL_MS", "1000")];
    let b = NodeProcess::start("reclaim-b", &redis.url(), &quick).await;
    let mut c = client(&a, "ann").await;
    assert_eq!(join(&mut c, "kept").await["type"], "joined");
    assert_eq!(a.health_of_room("kept").await["owner"], "reclaim-a");
    // Forwarded through node b to node a.
    let mut fwd = client(&b, "fred").await;
    assert_eq!(join(&mut fwd, "kept").await["type"], "joined");
    redis.kill();
    let redis = RedisProcess::start_on(port);
    let rc = redis::Client::open(redis.url()).expect("redis url");
    let conn = rc
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let mut bob = client(&b, "bob").await;
    let r = join(&mut bob, "kept").await;
    assert_eq!(
        b.health_of_room("kept").await["open"],
        false,
        "a second copy of the room opened on node b: {r}"
    );
    let key = rheo_sfu::cluster::store::Key::Room("kept").build("rheo-sfu");
    // The renewal would come after 20 s; the heartbeat (every second with
    // the default NODE_TTL_MS) is the only way it is back within 10.
    eventually("the lease to be claimed again", T, || {
        let mut conn = conn.clone();
        let key = key.clone();
        async move {
            let owner: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("GET");
            owner.as_deref() == Some("reclaim-a")
        }
    })
    .await;
    assert_eq!(a.health_of_room("kept").await["open"], true);
    assert_eq!(b.health_of_room("kept").await["open"], false);
    // Two node TTLs after the restart: no `reconnect` for the forwarded
    // client (its room's node never left).
    let r = fwd.wait_type("reconnect", Duration::from_secs(6)).await;
    assert!(r.is_err(), "forwarded client told to reconnect: {r:?}");
    bob.close().await;
    fwd.close().await;
    c.close().await;
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
    let (p, s) = call(&a, "call").await;
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

/// A node that finds its room's lease in another node's hands (as after a
/// partition) stops serving the room: its members get `reconnect`
/// (`room-moved`) and their sockets close with 1001.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_loses_its_lease_sends_its_members_away() {
    require_test_network();
    let _slot = media_slot().await;
    let redis = RedisProcess::start();
    let fast = [("ROOM_LEASE_MS", "3000"), ("NODE_TTL_MS", "3000")];
    let a = NodeProcess::start("lease-a", &redis.url(), &fast).await;
    let mut c = client(&a, "ann").await;
    assert_eq!(join(&mut c, "taken").await["type"], "joined");
    // Another node takes the lease behind node a's back.
    let key = rheo_sfu::cluster::store::Key::Room("taken").build("rheo-sfu");
    let rc = redis::Client::open(redis.url()).expect("redis url");
    let mut conn = rc
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    // The intruder is registered: a lease of a node without a registry
    // entry is void, and node a would simply take it back.
    let intruder = rheo_sfu::cluster::store::NodeInfo {
        node_id: "intruder".into(),
        advertise_url: "ws://127.0.0.1:1/ws".into(),
        announced_ips: Vec::new(),
        rooms: 1,
        participants: 0,
        tracks: 0,
        cpu: 0.0,
        started_at: 0,
        version: "test".into(),
        draining: false,
    };
    let _: () = redis::cmd("SET")
        .arg(rheo_sfu::cluster::store::Key::Node("intruder").build("rheo-sfu"))
        .arg(serde_json::to_string(&intruder).expect("NodeInfo JSON"))
        .arg("PX")
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .expect("SET node");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("intruder")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .expect("SET");
    let r = c
        .wait_type("reconnect", Duration::from_secs(10))
        .await
        .expect("reconnect after the lease was lost");
    assert_eq!(r.raw["reason"], "room-moved", "{}", r.raw);
    assert_eq!(c.wait_closed(T).await.expect("closed"), Some(1001));
    let h = a.health_of_room("taken").await;
    assert_eq!(h["open"], false, "{h}");
    assert_eq!(h["owner"], "intruder", "{h}");
    assert_eq!(a.health().await["cluster"]["leases"], 0);
}

/// `PLACEMENT=least-loaded`: a new room opens on the live node with the
/// fewest participants, even when the client reached another node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_loaded_placement_opens_new_rooms_on_the_idle_node() {
    require_test_network();
    let _slot = media_slot().await;
    let redis = RedisProcess::start();
    let cfg = [
        ("PLACEMENT", "least-loaded"),
        ("NODE_TTL_MS", "1500"),
        ("ROOM_LEASE_MS", "3000"),
    ];
    let busy = NodeProcess::start("busy", &redis.url(), &cfg).await;
    let idle = NodeProcess::start("idle", &redis.url(), &cfg).await;
    eventually("both nodes registered", T, || async {
        busy.health().await["cluster"]["nodes"] == 2
    })
    .await;
    // Load node "busy" with two participants in a room it holds (a fresh
    // node may pick either; retry until the room is on "busy").
    let mut guests = Vec::new();
    for i in 0..2 {
        let mut g = client(&busy, &format!("guest-{i}")).await;
        assert_eq!(join(&mut g, "party").await["type"], "joined");
        guests.push(g);
    }
    let party_owner = busy.health_of_room("party").await["owner"].clone();
    let (loaded, other) = if party_owner == "busy" {
        (&busy, &idle)
    } else {
        (&idle, &busy)
    };
    // Wait for the registry to carry the load (a heartbeat is 0.5 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut c = client(loaded, "newcomer").await;
    assert_eq!(join(&mut c, "fresh").await["type"], "joined");
    let h = loaded.health_of_room("fresh").await;
    assert_eq!(h["owner"], other.id.as_str(), "{h}");
    assert_eq!(h["open"], false, "{h}");
    assert_eq!(other.health_of_room("fresh").await["open"], true);
    c.close().await;
    for g in guests {
        g.close().await;
    }
}
