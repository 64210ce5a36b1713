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
mod limits;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{TestServer, T};
use rheo_sfu::config::JwtKey;
use serde_json::{json, Value};
use signaling::client::Client;
use signaling::ClientMessage;

use support::*;

// --- 4. rooms -----------------------------------------------------------

/// Presence: joined lists the others, participant-joined / participant-left
/// reach the others, leave answers left, closing the socket leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_leave_presence() {
    let server = TestServer::start().await;
    let mut a = server.connect("a").await;
    let mut b = server.connect("b").await;

    let joined = join_room(&mut a, "lobby").await;
    assert_eq!(joined["participantId"], "a", "{joined}");
    assert_eq!(joined["participants"], json!([]), "{joined}");
    assert_eq!(joined["publishers"], json!([]), "{joined}");

    let joined = join_room(&mut b, "lobby").await;
    assert_eq!(joined["participantId"], "b", "{joined}");
    assert_eq!(
        joined["participants"],
        json!([{"participantId": "a", "username": "a-name"}]),
        "{joined}"
    );
    assert_eq!(joined["publishers"], json!([]), "{joined}");

    let r = a.recv(T).await.expect("participant-joined");
    assert_eq!(
        r.raw,
        json!({"type": "participant-joined", "roomName": "lobby", "participantId": "b", "username": "b-name"})
    );
    // b does not hear about itself.
    assert_none_of(&drain(&mut b).await, &["participant-joined"], "b");

    // Join is idempotent for a session already in the room.
    let again = join_room(&mut b, "lobby").await;
    assert_eq!(
        again["participants"],
        json!([{"participantId": "a", "username": "a-name"}]),
        "{again}"
    );
    assert_none_of(
        &drain(&mut a).await,
        &["participant-joined", "participant-left"],
        "a after b re-joined",
    );

    // A third joins, then everyone is listed.
    let mut c = server.connect("c").await;
    let joined = join_room(&mut c, "lobby").await;
    let mut ids: Vec<String> = joined["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .map(|p| p["participantId"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["a", "b"], "{joined}");
    for x in [&mut a, &mut b] {
        let r = x
            .wait_type("participant-joined", T)
            .await
            .expect("c joined");
        assert_eq!(r.raw["participantId"], "c");
    }

    // leave → left, others get participant-left.
    b.send(&ClientMessage::Leave {
        room_name: "lobby".into(),
    })
    .await
    .expect("send");
    let r = b.recv(T).await.expect("left");
    assert_eq!(r.raw, json!({"type": "left", "roomName": "lobby"}));
    for x in [&mut a, &mut c] {
        let r = x.wait_type("participant-left", T).await.expect("b left");
        assert_eq!(
            r.raw,
            json!({"type": "participant-left", "roomName": "lobby", "participantId": "b"})
        );
    }
    // b no longer gets the room's chat.
    a.send(&chat("lobby", "b is gone")).await.expect("send");
    wait_chat(&mut c, "b is gone").await;
    let seen = drain(&mut b).await;
    assert_none_of(&seen, &["chat"], "b after leave");
    // Leaving a room one is not in is harmless.
    b.send(&ClientMessage::Leave {
        room_name: "elsewhere".into(),
    })
    .await
    .expect("send");
    let r = b.recv(T).await.expect("left");
    assert_eq!(r.type_name(), "left", "{}", r.raw);

    // Closing the socket leaves every room.
    join_room(&mut c, "second").await;
    join_room(&mut a, "second").await;
    c.close().await;
    for room in ["lobby", "second"] {
        let r = a
            .wait_for("participant-left", T, |r| {
                r.type_name() == "participant-left" && r.raw["roomName"] == room
            })
            .await
            .expect("c left on close");
        assert_eq!(r.raw["participantId"], "c");
    }

    a.close().await;
    b.close().await;
    server.stop().await;
}

/// A room-scoped message for a room the session is not in joins it first:
/// `joined` comes before the reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_join_before_reply() {
    let server = TestServer::start().await;
    let mut a = server.connect("a").await;
    join_room(&mut a, "imp").await;

    let mut b2 = server.connect("b2").await;
    b2.send_with_id(&chat("imp", "first words"), rid(json!("c1")))
        .await
        .expect("send");
    let r = b2.recv(T).await.expect("joined");
    assert_eq!(r.type_name(), "joined", "{}", r.raw);
    assert_eq!(r.raw["roomName"], "imp");
    assert_eq!(r.raw["participantId"], "b2");
    assert_eq!(
        r.raw["participants"],
        json!([{"participantId": "a", "username": "a-name"}])
    );
    assert!(r.raw.get("requestId").is_none(), "{}", r.raw);
    let r = b2.recv(T).await.expect("chat");
    assert_eq!(r.type_name(), "chat", "{}", r.raw);
    assert_eq!(r.raw["text"], "first words");
    assert_eq!(r.raw["requestId"], "c1");
    // a: participant-joined before the chat.
    let r = a.recv(T).await.expect("participant-joined");
    assert_eq!(r.type_name(), "participant-joined", "{}", r.raw);
    assert_eq!(r.raw["participantId"], "b2");
    let r = a.recv(T).await.expect("chat");
    assert_eq!(r.type_name(), "chat", "{}", r.raw);

    // signal joins implicitly as well.
    let mut b3 = server.connect("b3").await;
    b3.send(&ClientMessage::Signal {
        room_name: Some("imp".into()),
        to: "a".into(),
        data: json!({"hello": true}),
    })
    .await
    .expect("send");
    let r = b3.recv(T).await.expect("joined");
    assert_eq!(r.type_name(), "joined", "{}", r.raw);
    let r = a.wait_type("signal", T).await.expect("signal");
    assert_eq!(r.raw["from"], "b3");

    // A second chat does not join again.
    b2.send(&chat("imp", "second")).await.expect("send");
    wait_chat(&mut b2, "second").await;
    assert!(b2.drain_type("joined").is_empty(), "joined twice");

    a.close().await;
    b2.close().await;
    b3.close().await;
    server.stop().await;
}

/// Chat reaches everyone in the room (sender included) with participantId,
/// username and ts, and nobody outside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_reaches_room_only() {
    let server = TestServer::start().await;
    let mut members = Vec::new();
    for id in ["a", "b", "c"] {
        let mut c = server.connect(id).await;
        join_room(&mut c, "talk").await;
        members.push(c);
    }
    let mut outsider = server.connect("z").await;
    join_room(&mut outsider, "other").await;

    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    members[0]
        .send(&chat("talk", "hi all"))
        .await
        .expect("send");
    for m in &mut members {
        let msg = wait_chat(m, "hi all").await;
        assert_eq!(msg["roomName"], "talk", "{msg}");
        assert_eq!(msg["participantId"], "a", "{msg}");
        assert_eq!(msg["username"], "a-name", "{msg}");
        let ts = msg["ts"].as_u64().expect("ts is a number");
        assert!(
            ts + 1000 >= before && ts <= before + 10_000,
            "ts {ts} is not about now ({before})"
        );
    }
    assert_none_of(&drain(&mut outsider).await, &["chat"], "outsider");
    for m in members {
        m.close().await;
    }
    outsider.close().await;
    server.stop().await;
}

/// `signal` is relayed to its target only, with `from`; `to` may be a number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_is_relayed() {
    let server = TestServer::start().await;
    let mut a = server.connect("a").await;
    let mut b = server.connect("7").await;
    let mut c = server.connect("c").await;
    for x in [&mut a, &mut b, &mut c] {
        join_room(x, "p2p").await;
    }
    let data = json!({"sdp": {"type": "offer", "sdp": "v=0..."}, "n": [1, 2, 3]});
    a.send_raw(&json!({"type": "signal", "roomName": "p2p", "to": 7, "data": data}).to_string())
        .await
        .expect("send");
    let r = b.wait_type("signal", T).await.expect("signal");
    assert_eq!(
        r.raw,
        json!({"type": "signal", "roomName": "p2p", "from": "a", "data": data})
    );
    b.send(&ClientMessage::Signal {
        room_name: Some("p2p".into()),
        to: "a".into(),
        data: json!("plain string"),
    })
    .await
    .expect("send");
    let r = a.wait_type("signal", T).await.expect("signal back");
    assert_eq!(r.raw["from"], "7");
    assert_eq!(r.raw["data"], "plain string");
    assert_none_of(&drain(&mut c).await, &["signal"], "c");
    assert_none_of(&drain(&mut a).await, &["signal"], "a (no echo)");
    // A target in another room is not found.
    let mut d = server.connect("d").await;
    join_room(&mut d, "elsewhere").await;
    a.send(&ClientMessage::Signal {
        room_name: Some("p2p".into()),
        to: "d".into(),
        data: json!(1),
    })
    .await
    .expect("send");
    expect_next_error(&mut a, "not-found", "signal to d").await;
    assert_none_of(&drain(&mut d).await, &["signal"], "d");
    for x in [a, b, c, d] {
        x.close().await;
    }
    server.stop().await;
}

/// The same participant joining from a second connection replaces the first:
/// the old one gets `replaced` and is out of the room, the new one is in it,
/// the others see no presence change, and closing the old socket does not
/// remove the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_participant_replaces_older_session() {
    let server = TestServer::start().await;
    let mut watcher = server.connect("watcher").await;
    join_room(&mut watcher, "re").await;
    let mut old = server.connect("pat").await;
    join_room(&mut old, "re").await;
    join_room(&mut old, "kept").await;
    let r = watcher
        .wait_type("participant-joined", T)
        .await
        .expect("pat");
    assert_eq!(r.raw["participantId"], "pat");

    let mut new = server.connect("pat").await;
    let joined = join_room(&mut new, "re").await;
    assert_eq!(joined["participantId"], "pat");
    assert_eq!(
        joined["participants"],
        json!([{"participantId": "watcher", "username": "watcher-name"}]),
        "{joined}"
    );
    let e = expect_error(&mut old, "replaced", "older session").await;
    assert_eq!(e["roomName"], "re", "{e}");
    // The watcher sees no leave/join for the takeover.
    assert_none_of(
        &drain(&mut watcher).await,
        &["participant-joined", "participant-left"],
        "watcher during takeover",
    );

    // Room traffic goes to the new session only.
    watcher
        .send(&chat("re", "who is here"))
        .await
        .expect("send");
    wait_chat(&mut new, "who is here").await;
    wait_chat(&mut watcher, "who is here").await;
    assert_none_of(&drain(&mut old).await, &["chat"], "old session");
    // The old connection itself goes on, still in its other room.
    ping_pong(&mut old, "old-alive").await;
    old.send(&chat("kept", "still in kept"))
        .await
        .expect("send");
    let r = old.recv(T).await.expect("chat");
    assert_eq!(r.type_name(), "chat", "{}", r.raw);
    assert_eq!(r.raw["roomName"], "kept");

    // Closing the old socket does not take the participant out of "re".
    old.close().await;
    tokio::time::sleep(QUIET).await;
    assert_none_of(
        &drain(&mut watcher).await,
        &["participant-left"],
        "watcher after old socket closed",
    );
    watcher
        .send(&chat("re", "still there?"))
        .await
        .expect("send");
    wait_chat(&mut new, "still there?").await;
    wait_health(&server, "pat still in re, kept closed", |h| {
        h["participants"] == 2 && h["rooms"] == 1
    })
    .await;

    new.close().await;
    let r = watcher
        .wait_type("participant-left", T)
        .await
        .expect("pat left");
    assert_eq!(r.raw["participantId"], "pat");
    watcher.close().await;
    server.stop().await;
}

// --- 5. HTTP ----------------------------------------------------------------

/// /health: status, counts that follow joins and leaves (empty rooms close),
/// version and nodeId.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_counts() {
    let server = TestServer::start().await;
    let h = health(&server).await;
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["rooms"], 0, "{h}");
    assert_eq!(h["participants"], 0, "{h}");
    assert_eq!(h["publishers"], 0, "{h}");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"), "{h}");
    assert_eq!(h["nodeId"], server.config.node_id.as_str(), "{h}");

    let mut a = server.connect("a").await;
    let mut b = server.connect("b").await;
    let mut c = server.connect("c").await;
    join_room(&mut a, "r1").await;
    join_room(&mut b, "r1").await;
    join_room(&mut c, "r2").await;
    join_room(&mut a, "r2").await;
    let h = health(&server).await;
    assert_eq!(
        (&h["rooms"], &h["participants"], &h["publishers"]),
        (&json!(2), &json!(4), &json!(0)),
        "{h}"
    );

    c.send(&ClientMessage::Leave {
        room_name: "r2".into(),
    })
    .await
    .expect("send");
    c.wait_type("left", T).await.expect("left");
    let h = health(&server).await;
    assert_eq!(
        (&h["rooms"], &h["participants"]),
        (&json!(2), &json!(3)),
        "{h}"
    );

    a.close().await;
    wait_health(&server, "a's rooms after close", |h| {
        h["rooms"] == 1 && h["participants"] == 1
    })
    .await;
    b.close().await;
    wait_health(&server, "empty rooms close", |h| {
        h["rooms"] == 0 && h["participants"] == 0
    })
    .await;
    c.close().await;
    server.stop().await;
}

/// /dev/token in dev mode: a token for the user, limited to the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_token_in_dev_mode() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/dev/token?user=alice&room=r1").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    let token = v["token"].as_str().expect("token").to_owned();
    assert_eq!(v["participantId"], "alice", "{v}");

    for via in ALL_WAYS {
        let mut c = open(&server, via, &token).await;
        expect_auth_ok(&server, &mut c, "alice", "alice").await;
        c.send(&join("r2")).await.expect("send");
        expect_next_error(&mut c, "forbidden", "dev token in r2").await;
        join_room(&mut c, "r1").await;
        c.close().await;
    }

    // A name, and no room limit.
    let (status, body) = server.get("/dev/token?user=bob&name=Bobby").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    let mut c = connect_token(&server, v["token"].as_str().expect("token")).await;
    join_room(&mut c, "anywhere").await;
    c.close().await;
    // An invalid room is refused, not turned into a token.
    for bad in ["", "%01x"] {
        let (status, body) = server.get(&format!("/dev/token?room={bad}")).await;
        assert_eq!(status, 400, "room={bad:?}: {body}");
    }
    // Without a user: a random participant id.
    let (status, body) = server.get("/dev/token").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    let pid = v["participantId"].as_str().expect("participantId");
    assert!(!pid.is_empty(), "{v}");
    let mut c = open(&server, Via::Query, v["token"].as_str().expect("token")).await;
    expect_auth_ok(&server, &mut c, pid, pid).await;
    c.close().await;
    server.stop().await;
}

/// /dev/token does not exist with a configured secret; GET / is the web app;
/// unknown paths are 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_routes_with_secret() {
    let server = TestServer::start_with(|c| {
        c.jwt_key = JwtKey::Secret(b"0123456789abcdef0123".to_vec());
    })
    .await;
    let (status, body) = server.get("/dev/token?user=alice&room=r1").await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = server.get("/dev/token").await;
    assert_eq!(status, 404);

    let (status, body) = server.get("/").await;
    assert_eq!(status, 200);
    assert!(
        body.to_lowercase().contains("<html"),
        "GET / is not HTML: {}",
        body.chars().take(200).collect::<String>()
    );
    // The web app's files come from the binary, byte for byte, with their
    // content types (module scripts need a JavaScript MIME type).
    for (path, file, ctype) in [
        ("/", "web/index.html", "text/html"),
        ("/app.js", "web/app.js", "text/javascript"),
        ("/sfu-client.js", "web/sfu-client.js", "text/javascript"),
        ("/sfu-core.js", "web/sfu-core.js", "text/javascript"),
        ("/style.css", "web/style.css", "text/css"),
    ] {
        let (head, body) = raw_get(server.addr, path).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        assert!(
            head.to_lowercase()
                .contains(&format!("content-type: {ctype}")),
            "{path}: {head}"
        );
        let want = std::fs::read(file).expect("web file");
        assert_eq!(body, want, "{path} differs from {file}");
    }
    for path in [
        "/no/such/path",
        "/sfu-client.js/x",
        "/Cargo.toml",
        "/..%2FCargo.toml",
    ] {
        let (status, _) = server.get(path).await;
        assert_eq!(status, 404, "{path}");
    }
    let h = health(&server).await;
    assert_eq!(h["status"], "ok", "{h}");

    // Tokens signed with the configured secret work at /ws and at /.
    let token = hs256(b"0123456789abcdef0123", &claims(json!("s"), json!({})));
    let mut c = Client::connect(&format!("ws://{}/?token={token}", server.addr), None)
        .await
        .expect("connect at /");
    expect_auth_ok(&server, &mut c, "s", "s").await;
    c.close().await;
    let mut c = connect_token(&server, &token).await;
    ping_pong(&mut c, "secret").await;
    c.close().await;
    server.stop().await;
}

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

/// GET `path` with a body read to the end (no chunked encoding: the web
/// assets are sent with a length): (status line and headers, body bytes).
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> (String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .expect("read");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    (
        String::from_utf8_lossy(&buf[..split]).into_owned(),
        buf[split + 4..].to_vec(),
    )
}
