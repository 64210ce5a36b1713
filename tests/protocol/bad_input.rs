//! Bad input: every malformed or invalid message gets the error code of
//! PROTOCOL.md and the connection goes on; `requestId` is echoed to the
//! sender only; a room-scoped message may omit `roomName` only when the
//! session is in exactly one room.

use serde_json::{json, Value};
use signaling::ClientMessage;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{TestServer, T};
use crate::support::{
    assert_none_of, chat, check_alive, drain, expect_error, expect_next_error, join, join_room,
    ping_pong, rid, wait_chat, PLAUSIBLE_OFFER,
};

/// Every malformed or invalid message gets the error code of PROTOCOL.md
/// (with requestType/roomName/requestId where the message had them), and
/// afterwards the connection still works and a second session in the room
/// still gets its chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_errors_and_connection_survives() {
    // A high message rate: this test is about errors, not the rate limit.
    let server = TestServer::start_with(|c| c.limits.message_rate = 2000).await;
    let room = "bad";
    let mut a = server.connect("a").await;
    let mut b = server.connect("b").await;
    join_room(&mut a, room).await;
    join_room(&mut b, room).await;
    a.wait_type("participant-joined", T)
        .await
        .expect("b joined");

    // (frame, code, requestType, roomName)
    let long_room = "x".repeat(129);
    let long_utf8_room = "é".repeat(65);
    let chat_4097 = "x".repeat(4097);
    let deep = "[".repeat(10_000);
    let cases: Vec<(String, &str, Option<&str>, Option<&str>)> = vec![
        ("not json".into(), "bad-request", None, None),
        (String::new(), "bad-request", None, None),
        ("[1,2,3]".into(), "bad-request", None, None),
        ("null".into(), "bad-request", None, None),
        ("\"ping\"".into(), "bad-request", None, None),
        (deep, "bad-request", None, None),
        (
            r#"{"roomName":"bad","text":"hi"}"#.into(),
            "bad-request",
            None,
            Some("bad"),
        ),
        (r#"{"type":42}"#.into(), "bad-request", None, None),
        (
            r#"{"type":"fly","roomName":"bad"}"#.into(),
            "unknown-type",
            Some("fly"),
            Some("bad"),
        ),
        (r#"{"type":"Ping"}"#.into(), "unknown-type", Some("Ping"), None),
        (r#"{"type":"join"}"#.into(), "bad-request", Some("join"), None),
        (
            r#"{"type":"join","roomName":""}"#.into(),
            "bad-request",
            Some("join"),
            Some(""),
        ),
        (
            r#"{"type":"join","roomName":7}"#.into(),
            "bad-request",
            Some("join"),
            None,
        ),
        (
            json!({"type": "join", "roomName": long_room}).to_string(),
            "bad-request",
            Some("join"),
            Some(long_room.as_str()),
        ),
        (
            json!({"type": "join", "roomName": long_utf8_room}).to_string(),
            "bad-request",
            Some("join"),
            Some(long_utf8_room.as_str()),
        ),
        (
            r#"{"type":"join","roomName":"a\u0001b"}"#.into(),
            "bad-request",
            Some("join"),
            Some("a\u{1}b"),
        ),
        (
            r#"{"type":"join","roomName":"line\nbreak"}"#.into(),
            "bad-request",
            Some("join"),
            Some("line\nbreak"),
        ),
        (
            r#"{"type":"publish-offer","roomName":"bad","offer":"garbage"}"#.into(),
            "bad-request",
            Some("publish-offer"),
            Some("bad"),
        ),
        (
            r#"{"type":"publish-offer","roomName":"bad","offer":{"type":"offer"}}"#.into(),
            "bad-request",
            Some("publish-offer"),
            Some("bad"),
        ),
        (
            // Looks like an SDP, but its sending m-section has no msid.
            r#"{"type":"publish-offer","roomName":"bad","offer":"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"}"#
                .into(),
            "bad-request",
            Some("publish-offer"),
            Some("bad"),
        ),
        (
            r#"{"type":"publish-ice-candidate","roomName":"bad","candidate":"garbage"}"#.into(),
            "bad-request",
            Some("publish-ice-candidate"),
            Some("bad"),
        ),
        (
            r#"{"type":"publish-ice-candidate","roomName":"bad","candidate":{"candidate":"candidate:x y z"}}"#
                .into(),
            "bad-request",
            Some("publish-ice-candidate"),
            Some("bad"),
        ),
        (
            r#"{"type":"subscribe-ice-candidate","roomName":"bad","candidate":17}"#.into(),
            "bad-request",
            Some("subscribe-ice-candidate"),
            Some("bad"),
        ),
        (
            r#"{"type":"subscribe-request","roomName":"bad","publisherId":"nobody"}"#.into(),
            "not-found",
            Some("subscribe-request"),
            Some("bad"),
        ),
        (
            r#"{"type":"subscribe-request","roomName":"bad","publisherId":1.5}"#.into(),
            "bad-request",
            Some("subscribe-request"),
            Some("bad"),
        ),
        (
            r#"{"type":"subscribe-request","roomName":"bad"}"#.into(),
            "bad-request",
            Some("subscribe-request"),
            Some("bad"),
        ),
        (
            json!({"type": "subscribe-answer", "roomName": room, "publisherId": "b", "answer": PLAUSIBLE_OFFER})
                .to_string(),
            "bad-request",
            Some("subscribe-answer"),
            Some("bad"),
        ),
        (
            r#"{"type":"signal","roomName":"bad","to":"nobody","data":{"x":1}}"#.into(),
            "not-found",
            Some("signal"),
            Some("bad"),
        ),
        (
            r#"{"type":"signal","roomName":"bad","data":{}}"#.into(),
            "bad-request",
            Some("signal"),
            Some("bad"),
        ),
        (
            json!({"type": "chat", "roomName": room, "text": chat_4097}).to_string(),
            "bad-request",
            Some("chat"),
            Some("bad"),
        ),
        (
            r#"{"type":"chat","roomName":"bad","text":""}"#.into(),
            "bad-request",
            Some("chat"),
            Some("bad"),
        ),
        (
            r#"{"type":"chat","roomName":"bad"}"#.into(),
            "bad-request",
            Some("chat"),
            Some("bad"),
        ),
    ];
    for (i, (frame, code, ty, room_name)) in cases.iter().enumerate() {
        let context = format!("case {i}: {}", frame.chars().take(120).collect::<String>());
        a.send_raw(frame).await.expect("send");
        let e = expect_next_error(&mut a, code, &context).await;
        assert_eq!(
            e.get("requestType").and_then(Value::as_str),
            *ty,
            "{context}: {e}"
        );
        assert_eq!(
            e.get("roomName").and_then(Value::as_str),
            *room_name,
            "{context}: {e}"
        );
        check_alive(&mut a, &mut b, room, &format!("case-{i}")).await;
    }

    // Binary frames.
    a.send_message(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .expect("send");
    expect_next_error(&mut a, "bad-request", "binary frame").await;
    check_alive(&mut a, &mut b, room, "binary").await;

    // Boundaries that must be accepted.
    join_room(&mut a, &"x".repeat(128)).await;
    join_room(&mut a, &"é".repeat(64)).await;
    join_room(&mut a, "room with spaces / ünïcödé 🎥").await;
    let max_chat = "é".repeat(4096);
    a.send(&chat(room, &max_chat)).await.expect("send");
    wait_chat(&mut b, &max_chat).await;
    wait_chat(&mut a, &max_chat).await;
    // Unknown fields are ignored.
    a.send_raw(r#"{"type":"ping","requestId":"extra","whatever":{"nested":[1,2]}}"#)
        .await
        .expect("send");
    let r = a.recv(T).await.expect("pong");
    assert_eq!(r.type_name(), "pong", "{}", r.raw);
    assert_eq!(r.raw["requestId"], "extra");

    // b never saw an error through all of this.
    let seen = drain(&mut b).await;
    assert_none_of(&seen, &["error"], "b");
    ping_pong(&mut b, "b-final").await;
    a.close().await;
    b.close().await;
    server.stop().await;
}

/// A publish offer that passes validation but is not a parseable SDP is
/// `bad-request` from the media side, and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparseable_sdp_is_bad_request() {
    let server = TestServer::start().await;
    let mut a = server.connect("a").await;
    join_room(&mut a, "sdp").await;
    // No o=/s= lines: not a valid session description.
    let offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=msid:s t1\r\na=sendonly\r\n";
    a.send_with_id(
        &ClientMessage::PublishOffer {
            room_name: Some("sdp".into()),
            offer: offer.into(),
        },
        rid(json!(11)),
    )
    .await
    .expect("send");
    let e = expect_error(&mut a, "bad-request", "unparseable SDP").await;
    assert_eq!(e["requestType"], "publish-offer", "{e}");
    assert_eq!(e["roomName"], "sdp", "{e}");
    assert_eq!(e["requestId"], 11, "{e}");
    ping_pong(&mut a, "after-sdp").await;
    a.close().await;
    server.stop().await;
}

/// `requestId` (string or number) is echoed on direct replies and errors,
/// and only to the sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_echoed() {
    let server = TestServer::start().await;
    let mut a = server.connect("a").await;
    let mut b = server.connect("b").await;
    join_room(&mut b, "rid").await;

    for id in [json!("str-1"), json!(17), json!(1.5), json!(-3)] {
        a.send_with_id(&ClientMessage::Ping, rid(id.clone()))
            .await
            .expect("send");
        let r = a.recv(T).await.expect("pong");
        assert_eq!(r.type_name(), "pong", "{}", r.raw);
        assert_eq!(r.raw["requestId"], id, "{}", r.raw);
    }
    // Not a string or number: not echoed, message still handled.
    a.send_raw(r#"{"type":"ping","requestId":{"x":1}}"#)
        .await
        .expect("send");
    let r = a.recv(T).await.expect("pong");
    assert_eq!(r.type_name(), "pong", "{}", r.raw);
    assert!(r.raw.get("requestId").is_none(), "{}", r.raw);
    // No requestId: none on the reply.
    a.send(&ClientMessage::Ping).await.expect("send");
    let r = a.recv(T).await.expect("pong");
    assert!(r.raw.get("requestId").is_none(), "{}", r.raw);

    a.send_with_id(&join("rid"), rid(json!("join-1")))
        .await
        .expect("send");
    let r = a.recv(T).await.expect("joined");
    assert_eq!(r.type_name(), "joined", "{}", r.raw);
    assert_eq!(r.raw["requestId"], "join-1", "{}", r.raw);
    let r = b
        .wait_type("participant-joined", T)
        .await
        .expect("participant-joined");
    assert!(r.raw.get("requestId").is_none(), "{}", r.raw);

    a.send_with_id(&chat("rid", "hello"), rid(json!(99)))
        .await
        .expect("send");
    let mine = wait_chat(&mut a, "hello").await;
    assert_eq!(mine["requestId"], 99, "{mine}");
    let theirs = wait_chat(&mut b, "hello").await;
    assert!(theirs.get("requestId").is_none(), "{theirs}");

    // Errors: from parsing and from handling.
    a.send_raw(r#"{"type":"nope","requestId":"e-1","roomName":"rid"}"#)
        .await
        .expect("send");
    let e = expect_next_error(&mut a, "unknown-type", "unknown type").await;
    assert_eq!(e["requestId"], "e-1", "{e}");
    assert_eq!(e["requestType"], "nope", "{e}");
    assert_eq!(e["roomName"], "rid", "{e}");
    a.send_raw(r#"{"type":"chat","roomName":"rid","text":"","requestId":5}"#)
        .await
        .expect("send");
    let e = expect_next_error(&mut a, "bad-request", "empty chat").await;
    assert_eq!(e["requestId"], 5, "{e}");
    assert_eq!(e["requestType"], "chat", "{e}");
    a.send_with_id(
        &ClientMessage::Signal {
            room_name: Some("rid".into()),
            to: "ghost".into(),
            data: json!(null),
        },
        rid(json!("s-1")),
    )
    .await
    .expect("send");
    let e = expect_next_error(&mut a, "not-found", "signal to ghost").await;
    assert_eq!(e["requestId"], "s-1", "{e}");
    assert_eq!(e["requestType"], "signal", "{e}");
    assert_eq!(e["roomName"], "rid", "{e}");

    a.send_with_id(
        &ClientMessage::Leave {
            room_name: "rid".into(),
        },
        rid(json!(1000)),
    )
    .await
    .expect("send");
    let r = a.recv(T).await.expect("left");
    assert_eq!(r.type_name(), "left", "{}", r.raw);
    assert_eq!(r.raw["requestId"], 1000, "{}", r.raw);
    let r = b
        .wait_type("participant-left", T)
        .await
        .expect("participant-left");
    assert!(r.raw.get("requestId").is_none(), "{}", r.raw);

    a.close().await;
    b.close().await;
    server.stop().await;
}

/// A room-scoped message without `roomName` goes to the one room the
/// session is in; with none or several it is `bad-request`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_name_omitted() {
    let server = TestServer::start().await;
    let mut a = server.connect("a").await;
    let no_room = r#"{"type":"chat","text":"where?","requestId":1}"#;
    a.send_raw(no_room).await.expect("send");
    let e = expect_next_error(&mut a, "bad-request", "chat in no room").await;
    assert_eq!(e["requestType"], "chat", "{e}");
    assert_eq!(e["requestId"], 1, "{e}");

    join_room(&mut a, "only").await;
    a.send_raw(no_room).await.expect("send");
    let r = a.recv(T).await.expect("chat");
    assert_eq!(r.type_name(), "chat", "{}", r.raw);
    assert_eq!(r.raw["roomName"], "only", "{}", r.raw);

    join_room(&mut a, "second").await;
    a.send_raw(no_room).await.expect("send");
    expect_next_error(&mut a, "bad-request", "chat in two rooms").await;
    a.close().await;
    server.stop().await;
}
