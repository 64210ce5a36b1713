//! The Redis layer against a real `redis-server`, one per test, on a free
//! loopback port. Each server is killed by pid when its guard drops, also when
//! a test panics.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rheo_sfu::cluster::store::{
    subscribe_node_channel, Claim, Key, NodeInfo, RedisStore, StoreError,
};
use tokio::sync::{watch, Barrier};

const OP_TIMEOUT: Duration = Duration::from_millis(500);
const PREFIX: &str = "test-sfu";

/// A `redis-server` child on 127.0.0.1. Dropping it kills the process by pid.
struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    fn start() -> Self {
        // A port that was free a moment ago can be taken by a server of a
        // test running in parallel; try a few.
        let mut last_error = String::new();
        for _ in 0..10 {
            let port = free_port();
            match spawn_redis(port) {
                Ok(child) => {
                    return Self {
                        port,
                        child: Some(child),
                    }
                }
                Err(e) => last_error = e,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// Kills the server (SIGKILL, by pid) and reaps it.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a fresh, empty server on the same port.
    fn restart(&mut self) {
        self.stop();
        let child = spawn_redis(self.port).expect("restart redis-server on the same port");
        self.child = Some(child);
    }

    /// Sends a signal to the server by pid (SIGSTOP/SIGCONT to freeze it).
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

fn spawn_redis(port: u16) -> Result<Child, String> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run redis-server ({e}); install it: apt-get install -y redis-server")
        });
    // Ready once *this* process answers on the port (not some other test's
    // server that got the same port): INFO reports the pid.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server on port {port} exited: {status}"));
        }
        if answers_as(port, child.id()) {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("redis-server on port {port} not ready within 5 s"))
}

fn answers_as(port: u16, pid: u32) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"INFO server\r\n").is_err() {
        return false;
    }
    let wanted = format!("process_id:{pid}\r\n");
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    // INFO server is about 1.5 kB; a bounded number of reads is plenty.
    for _ in 0..16 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
        if String::from_utf8_lossy(&reply).contains(&wanted) {
            return true;
        }
    }
    false
}

async fn store(server: &RedisServer) -> RedisStore {
    RedisStore::connect(&server.url(), PREFIX, OP_TIMEOUT)
        .await
        .expect("connect to the test redis")
}

/// A plain connection for looking at Redis behind the store's back.
async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("valid url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

fn node_info(id: &str, rooms: u32) -> NodeInfo {
    NodeInfo {
        node_id: id.to_owned(),
        advertise_url: format!("ws://10.77.0.1:9000/ws?node={id}"),
        announced_ips: vec!["10.77.0.1".to_owned()],
        rooms,
        participants: rooms * 3,
        tracks: rooms * 6,
        cpu: 0.25,
        started_at: 1_700_000_000_000,
        version: "0.1.0".to_owned(),
        draining: false,
    }
}

/// Polls `check` every 20 ms until it returns true or `limit` passes.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_state(state: &mut watch::Receiver<bool>, want: bool, limit: Duration) {
    tokio::time::timeout(limit, state.wait_for(|s| *s == want))
        .await
        .unwrap_or_else(|_| panic!("subscription state did not become {want} within {limit:?}"))
        .expect("subscription task alive");
}

#[test]
fn keys_follow_the_design_layout() {
    assert_eq!(Key::Node("n1").build("P"), "P:node:n1");
    assert_eq!(Key::Nodes.build("P"), "P:nodes");
    assert_eq!(Key::Room("lobby").build("P"), "P:room:lobby");
    assert_eq!(Key::Chan("n1").build("P"), "P:chan:n1");
}

#[test]
fn node_info_json_uses_the_design_field_names() {
    let json = serde_json::to_value(node_info("n1", 2)).expect("serialize");
    let mut fields: Vec<&str> = json
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "advertiseUrl",
            "announcedIps",
            "cpu",
            "draining",
            "nodeId",
            "participants",
            "rooms",
            "startedAt",
            "tracks",
            "version"
        ]
    );
}

#[tokio::test]
async fn claim_renew_release() {
    let server = RedisServer::start();
    let a = store(&server).await;
    let b = store(&server).await;
    let long = Duration::from_secs(10);

    assert_eq!(a.room_owner("lobby").await.unwrap(), None);
    assert_eq!(
        a.claim_room("lobby", "node-a", long).await.unwrap(),
        Claim::Owned
    );
    assert_eq!(
        b.claim_room("lobby", "node-b", long).await.unwrap(),
        Claim::OwnedBy("node-a".into())
    );
    assert_eq!(
        b.room_owner("lobby").await.unwrap().as_deref(),
        Some("node-a")
    );

    // Renewal and release by a non-owner fail and leave the lease alone.
    assert!(!b.renew_room("lobby", "node-b", long).await.unwrap());
    assert!(!b.release_room("lobby", "node-b").await.unwrap());
    assert_eq!(
        a.room_owner("lobby").await.unwrap().as_deref(),
        Some("node-a")
    );
    assert!(a.renew_room("lobby", "node-a", long).await.unwrap());

    // The owner releases; then the lease is free for anyone.
    assert!(a.release_room("lobby", "node-a").await.unwrap());
    assert!(!a.release_room("lobby", "node-a").await.unwrap());
    assert_eq!(a.room_owner("lobby").await.unwrap(), None);
    assert!(!a.renew_room("lobby", "node-a", long).await.unwrap());
    assert_eq!(
        b.claim_room("lobby", "node-b", long).await.unwrap(),
        Claim::Owned
    );

    // Claiming a lease we hold extends it: a short claim followed by a long
    // one outlives the short lease.
    let short = Duration::from_millis(300);
    assert_eq!(
        a.claim_room("stage", "node-a", short).await.unwrap(),
        Claim::Owned
    );
    assert_eq!(
        a.claim_room("stage", "node-a", long).await.unwrap(),
        Claim::Owned
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        a.room_owner("stage").await.unwrap().as_deref(),
        Some("node-a")
    );
    assert_eq!(
        b.claim_room("stage", "node-b", long).await.unwrap(),
        Claim::OwnedBy("node-a".into())
    );
}

#[tokio::test]
async fn lease_expires_and_another_node_claims() {
    let server = RedisServer::start();
    let a = store(&server).await;
    let b = store(&server).await;
    let lease = Duration::from_millis(200);

    assert_eq!(
        a.claim_room("r", "node-a", lease).await.unwrap(),
        Claim::Owned
    );
    assert_eq!(
        b.claim_room("r", "node-b", lease).await.unwrap(),
        Claim::OwnedBy("node-a".into())
    );
    let expired = eventually(Duration::from_secs(3), || async {
        a.room_owner("r").await.unwrap().is_none()
    })
    .await;
    assert!(expired, "the lease did not expire");

    // The old owner cannot renew an expired lease, and the room is up for
    // grabs.
    assert!(!a.renew_room("r", "node-a", lease).await.unwrap());
    assert_eq!(
        b.claim_room("r", "node-b", Duration::from_secs(10))
            .await
            .unwrap(),
        Claim::Owned
    );
    assert!(!a.renew_room("r", "node-a", lease).await.unwrap());
    assert!(!a.release_room("r", "node-a").await.unwrap());
    assert_eq!(a.room_owner("r").await.unwrap().as_deref(), Some("node-b"));
}

/// A lease is void once its holder left the registry: `claim_or_take_over`
/// takes it at once, while the holder is registered it does not, and the
/// plain `claim_room` never does (it waits for the lease). A free or void
/// lease goes only to a registered caller that may take it (after Redis
/// lost its data nobody is registered, and nobody may take a room that
/// its node still serves); otherwise the answer is `Wait`.
#[tokio::test]
async fn a_lease_of_a_node_without_registry_entry_is_taken_over() {
    let server = RedisServer::start();
    let a = store(&server).await;
    let b = store(&server).await;
    let long = Duration::from_secs(60);
    // Not registered yet: a free lease is not taken.
    assert_eq!(
        a.claim_or_take_over("r", "node-a", long, true)
            .await
            .unwrap(),
        Claim::Wait
    );
    a.heartbeat(&node_info("node-a", 0), Duration::from_millis(300))
        .await
        .unwrap();
    b.heartbeat(&node_info("node-b", 0), Duration::from_secs(30))
        .await
        .unwrap();
    // Registered, but told not to take free leases (settling).
    assert_eq!(
        a.claim_or_take_over("r", "node-a", long, false)
            .await
            .unwrap(),
        Claim::Wait
    );
    assert_eq!(
        a.claim_or_take_over("r", "node-a", long, true)
            .await
            .unwrap(),
        Claim::Owned
    );
    // node-a is registered: its lease holds.
    assert_eq!(
        b.claim_or_take_over("r", "node-b", long, true)
            .await
            .unwrap(),
        Claim::OwnedBy("node-a".into())
    );
    let gone = eventually(Duration::from_secs(3), || async {
        b.node("node-a").await.unwrap().is_none()
    })
    .await;
    assert!(gone, "node-a's registry entry did not expire");
    // The lease itself has most of its 60 s left; only the take-over
    // ignores it.
    assert_eq!(
        b.claim_room("r", "node-b", long).await.unwrap(),
        Claim::OwnedBy("node-a".into())
    );
    assert_eq!(
        b.claim_or_take_over("r", "node-b", long, true)
            .await
            .unwrap(),
        Claim::Owned
    );
    assert_eq!(a.room_owner("r").await.unwrap().as_deref(), Some("node-b"));
    // The old holder cannot renew it: it must stop serving the room.
    assert!(!a.renew_room("r", "node-a", long).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_claims_have_one_winner() {
    let server = RedisServer::start();
    let stores = [store(&server).await, store(&server).await];
    let lease = Duration::from_secs(10);

    for round in 0..50 {
        let room = format!("race-{round}");
        let barrier = Arc::new(Barrier::new(2));
        let tasks: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, store)| {
                let (store, barrier, room) = (store.clone(), barrier.clone(), room.clone());
                tokio::spawn(async move {
                    let node = format!("node-{i}");
                    barrier.wait().await;
                    let claim = store.claim_room(&room, &node, lease).await.unwrap();
                    (node, claim)
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("claim task"));
        }
        let winners: Vec<&String> = results
            .iter()
            .filter(|(_, claim)| *claim == Claim::Owned)
            .map(|(node, _)| node)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let winner = winners[0];
        for (node, claim) in &results {
            if node != winner {
                assert_eq!(*claim, Claim::OwnedBy(winner.clone()), "round {round}");
            }
        }
        assert_eq!(
            stores[0].room_owner(&room).await.unwrap().as_ref(),
            Some(winner),
            "round {round}"
        );
    }
}

#[tokio::test]
async fn registry_heartbeat_expiry_and_pruning() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let mut raw = raw(&server).await;
    let nodes_key = Key::Nodes.build(PREFIX);

    let short_lived = node_info("node-short", 4);
    let long_lived = node_info("node-long", 1);
    store
        .heartbeat(&short_lived, Duration::from_millis(400))
        .await
        .unwrap();
    store
        .heartbeat(&long_lived, Duration::from_secs(30))
        .await
        .unwrap();

    assert_eq!(
        store.live_nodes().await.unwrap(),
        vec![long_lived.clone(), short_lived.clone()]
    );
    assert_eq!(
        store.node("node-short").await.unwrap(),
        Some(short_lived.clone())
    );

    // A later heartbeat replaces the entry (new load).
    let busier = NodeInfo {
        rooms: 9,
        cpu: 0.75,
        ..short_lived.clone()
    };
    store
        .heartbeat(&busier, Duration::from_millis(400))
        .await
        .unwrap();
    assert_eq!(store.node("node-short").await.unwrap(), Some(busier));

    // After the TTL the entry is gone from the list and, once listed, from
    // the set.
    let gone = eventually(Duration::from_secs(5), || async {
        store.live_nodes().await.unwrap() == vec![long_lived.clone()]
    })
    .await;
    assert!(gone, "expired node still listed");
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&nodes_key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(members, vec!["node-long".to_owned()]);
    assert_eq!(store.node("node-short").await.unwrap(), None);

    // remove_node takes a node off at once.
    store.remove_node("node-long").await.unwrap();
    assert_eq!(store.live_nodes().await.unwrap(), vec![]);
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&nodes_key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(members.is_empty());
}

#[tokio::test]
async fn registry_skips_entries_it_cannot_read() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let mut raw = raw(&server).await;
    let good = node_info("node-good", 1);
    store
        .heartbeat(&good, Duration::from_secs(30))
        .await
        .unwrap();
    let _: () = redis::pipe()
        .cmd("SET")
        .arg(Key::Node("node-bad").build(PREFIX))
        .arg("{not json")
        .ignore()
        .cmd("SADD")
        .arg(Key::Nodes.build(PREFIX))
        .arg("node-bad")
        .ignore()
        .query_async(&mut raw)
        .await
        .unwrap();

    assert_eq!(store.live_nodes().await.unwrap(), vec![good]);
    assert!(matches!(
        store.node("node-bad").await,
        Err(StoreError::Protocol(_))
    ));

    // A NaN CPU sample is written as 0 rather than as JSON nobody can read.
    let nan = NodeInfo {
        cpu: f32::NAN,
        ..node_info("node-nan", 1)
    };
    store
        .heartbeat(&nan, Duration::from_secs(30))
        .await
        .unwrap();
    let read = store.node("node-nan").await.unwrap().expect("entry exists");
    assert_eq!(read.cpu, 0.0);
}

#[tokio::test]
async fn pubsub_survives_a_redis_restart() {
    let mut server = RedisServer::start();
    let store = store(&server).await;
    let (mut payloads, mut state, task) =
        subscribe_node_channel(server.url(), PREFIX.into(), "node-a".into(), 16);
    wait_for_state(&mut state, true, Duration::from_secs(5)).await;

    store.publish("node-a", b"one").await.unwrap();
    store.publish("node-b", b"not for a").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), payloads.recv())
        .await
        .expect("payload within 5 s");
    assert_eq!(got.as_deref(), Some(&b"one"[..]));

    server.stop();
    wait_for_state(&mut state, false, Duration::from_secs(5)).await;
    server.restart();
    wait_for_state(&mut state, true, Duration::from_secs(10)).await;

    // The same store publishes to the new server: its connection to the old
    // one is dead, and it notices and reconnects within the call.
    store.publish("node-a", b"two").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), payloads.recv())
        .await
        .expect("payload within 5 s of the restart");
    assert_eq!(got.as_deref(), Some(&b"two"[..]));

    // Dropping the receiver ends the task.
    drop(payloads);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("subscription task ends once its receiver is gone")
        .expect("task did not panic");
}

#[tokio::test]
async fn subscription_starts_while_redis_is_down() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.stop();
    let (mut payloads, mut state, task) =
        subscribe_node_channel(url, PREFIX.into(), "node-a".into(), 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!*state.borrow());

    server.restart();
    wait_for_state(&mut state, true, Duration::from_secs(10)).await;
    let store = store(&server).await;
    store.publish("node-a", b"hello").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), payloads.recv())
        .await
        .expect("payload within 5 s");
    assert_eq!(got.as_deref(), Some(&b"hello"[..]));
    task.abort();
}

#[tokio::test]
async fn calls_fail_fast_while_redis_is_down_and_recover() {
    let mut server = RedisServer::start();
    let store = store(&server).await;
    let lease = Duration::from_secs(10);
    assert_eq!(
        store.claim_room("r", "node-a", lease).await.unwrap(),
        Claim::Owned
    );

    server.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let result = store.claim_room("r", "node-a", lease).await;
        let took = started.elapsed();
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        eprintln!("claim with redis down: {took:?}");
        assert!(took < OP_TIMEOUT * 5, "claim took {took:?} with redis down");
    }
    let started = Instant::now();
    assert!(matches!(
        store.live_nodes().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(started.elapsed() < OP_TIMEOUT * 5);

    // A fresh, empty Redis: the same store works again (its scripts are
    // reloaded on NOSCRIPT) and the lease is there to take.
    server.restart();
    let recovered = eventually(Duration::from_secs(5), || async {
        store.claim_room("r", "node-a", lease).await.is_ok()
    })
    .await;
    assert!(recovered, "store did not recover after the restart");
    assert_eq!(
        store.room_owner("r").await.unwrap().as_deref(),
        Some("node-a")
    );
    assert!(store.renew_room("r", "node-a", lease).await.unwrap());
    assert!(store.release_room("r", "node-a").await.unwrap());
}

#[tokio::test]
async fn calls_time_out_while_redis_is_frozen_and_recover() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let lease = Duration::from_secs(10);
    assert_eq!(
        store.claim_room("r", "node-a", lease).await.unwrap(),
        Claim::Owned
    );

    // A frozen Redis accepts connections (the kernel does) but never answers:
    // only the timeout can end the call.
    server.signal("STOP");
    for _ in 0..3 {
        let started = Instant::now();
        let result = store.renew_room("r", "node-a", lease).await;
        let took = started.elapsed();
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        eprintln!("renew with redis frozen: {took:?}");
        assert!(
            took < OP_TIMEOUT * 5,
            "renew took {took:?} with redis frozen"
        );
    }
    server.signal("CONT");
    let recovered = eventually(Duration::from_secs(5), || async {
        store.renew_room("r", "node-a", lease).await.is_ok()
    })
    .await;
    assert!(recovered, "store did not recover after the freeze");
    assert!(store.renew_room("r", "node-a", lease).await.unwrap());
}

#[tokio::test]
async fn connect_reports_unavailable_and_bad_settings() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.stop();
    let started = Instant::now();
    let result = RedisStore::connect(&url, PREFIX, OP_TIMEOUT).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < OP_TIMEOUT * 5);

    assert!(matches!(
        RedisStore::connect("not a url", PREFIX, OP_TIMEOUT).await,
        Err(StoreError::Config(_))
    ));
    assert!(matches!(
        RedisStore::connect(&url, PREFIX, Duration::ZERO).await,
        Err(StoreError::Config(_))
    ));
}

#[tokio::test]
async fn first_call_after_a_restart_succeeds() {
    let mut server = RedisServer::start();
    let store = store(&server).await;
    let lease = Duration::from_secs(10);
    assert_eq!(
        store.claim_room("r", "node-a", lease).await.unwrap(),
        Claim::Owned
    );

    // No call while Redis is away: the store still holds the connection to
    // the old process, and the first call finds it dead and goes again on a
    // new connection.
    server.restart();
    assert_eq!(
        store.claim_room("r", "node-a", lease).await.unwrap(),
        Claim::Owned
    );
    server.restart();
    store
        .heartbeat(&node_info("node-a", 1), lease)
        .await
        .unwrap();
    server.restart();
    assert_eq!(store.live_nodes().await.unwrap(), vec![]);
    server.restart();
    store.publish("node-a", b"x").await.unwrap();
}

#[tokio::test]
async fn subscription_notices_a_frozen_redis() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let (mut payloads, mut state, task) =
        subscribe_node_channel(server.url(), PREFIX.into(), "node-a".into(), 4);
    wait_for_state(&mut state, true, Duration::from_secs(5)).await;

    // Nothing closes the socket of a frozen Redis; only the health-check
    // ping (every 2 s, 1 s to answer) can tell.
    server.signal("STOP");
    wait_for_state(&mut state, false, Duration::from_secs(8)).await;
    server.signal("CONT");
    wait_for_state(&mut state, true, Duration::from_secs(10)).await;

    store.publish("node-a", b"after the freeze").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), payloads.recv())
        .await
        .expect("payload within 5 s");
    assert_eq!(got.as_deref(), Some(&b"after the freeze"[..]));
    task.abort();
}

#[tokio::test]
async fn a_full_payload_channel_drops_instead_of_growing() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let (mut payloads, mut state, task) =
        subscribe_node_channel(server.url(), PREFIX.into(), "node-a".into(), 2);
    wait_for_state(&mut state, true, Duration::from_secs(5)).await;

    for i in 0..10u8 {
        store.publish("node-a", &[i]).await.unwrap();
    }
    // Let the task see all ten before reading: the first two fit, the rest
    // are dropped.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(payloads.try_recv().ok(), Some(vec![0]));
    assert_eq!(payloads.try_recv().ok(), Some(vec![1]));
    assert!(payloads.try_recv().is_err());

    // The subscription carries on once there is room again.
    store.publish("node-a", b"later").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), payloads.recv())
        .await
        .expect("payload within 5 s");
    assert_eq!(got.as_deref(), Some(&b"later"[..]));
    assert!(*state.borrow());
    task.abort();
}
