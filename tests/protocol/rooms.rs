//! Rooms: presence (joined, participant-joined/-left, left), implicit joins,
//! chat and signal reaching only whom they should, and a participant's second
//! connection replacing the first.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use signaling::ClientMessage;

use crate::common::{TestServer, T};
use crate::support::{
    assert_none_of, chat, drain, expect_error, expect_next_error, join_room, ping_pong, rid,
    wait_chat, wait_health, QUIET,
};

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
