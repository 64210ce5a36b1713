//! Limits (the rest of the bad input): a frame over 64 KiB closes with 1009,
//! floods of text or binary frames are rate-limited, and full rooms, too
//! many rooms and too many connections are refused.

use std::time::{Duration, Instant};

use serde_json::json;
use signaling::client::Client;
use signaling::ClientMessage;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{TestServer, T};
use crate::support::{
    assert_none_of, chat, check_alive, drain, expect_auth_ok, expect_next_error, flood, join,
    join_room, ping_pong, rid, upgrade_refused_status, wait_chat,
};

/// A text frame over 64 KiB closes the socket with 1009; one just under the
/// limit is handled; other sessions are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_1009() {
    let server = TestServer::start().await;
    let mut a = server.connect("a").await;
    let mut b = server.connect("b").await;
    join_room(&mut a, "big").await;
    join_room(&mut b, "big").await;

    // 60 KiB of an ignored field: fine.
    let padding = "p".repeat(60 * 1024);
    a.send_raw(&json!({"type": "ping", "requestId": "near-limit", "pad": padding}).to_string())
        .await
        .expect("send");
    let r = a.wait_type("pong", T).await.expect("pong");
    assert_eq!(r.raw["requestId"], "near-limit");
    check_alive(&mut a, &mut b, "big", "near-limit").await;

    let padding = "p".repeat(70 * 1024);
    let _ = a
        .send_raw(&json!({"type": "ping", "pad": padding}).to_string())
        .await;
    let code = a.wait_closed(T).await.expect("closed");
    assert_eq!(code, Some(1009));
    let stray = a.drain_type("pong");
    assert!(
        stray.is_empty(),
        "the oversized ping was answered: {stray:?}"
    );

    // b goes on, and sees a leave the room.
    let r = b.wait_type("participant-left", T).await.expect("a left");
    assert_eq!(r.raw["participantId"], "a");
    ping_pong(&mut b, "b").await;
    b.send(&chat("big", "still here")).await.expect("send");
    wait_chat(&mut b, "still here").await;
    // Just over 64 KiB is over the limit too, text or binary, and so are
    // large binary frames.
    let over = 64 * 1024 + 100;
    let frames = [
        Message::text(json!({"type": "ping", "pad": "p".repeat(over)}).to_string()),
        Message::binary(vec![7u8; over]),
        Message::binary(vec![7u8; 70 * 1024]),
    ];
    for (i, frame) in frames.into_iter().enumerate() {
        let mut c = server.connect("c").await;
        let _ = c.send_message(frame).await;
        assert_eq!(
            c.wait_closed(T).await.expect("closed"),
            Some(1009),
            "frame {i}: {:?}",
            c.drain_type("error")
        );
        assert!(c.drain_type("pong").is_empty(), "frame {i} answered");
    }
    let mut d = server.connect("d").await;
    ping_pong(&mut d, "d").await;
    b.close().await;
    d.close().await;
    server.stop().await;
}

/// 500 pings as fast as possible with the default limit (50/s, burst 100):
/// at least one `rate-limited`, far fewer than 500 pongs, the connection
/// works again after a pause, and other sessions and the server are fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_is_rate_limited() {
    let server = TestServer::start().await;
    assert_eq!(server.config.limits.message_rate, 50);
    let mut a = server.connect("flooder").await;
    let mut b = server.connect("bystander").await;
    join_room(&mut a, "flood").await;
    join_room(&mut b, "flood").await;
    a.wait_type("participant-joined", T).await.expect("b");

    let frame = Message::text(json!({"type": "ping"}).to_string());
    let (replies, allowed) = flood(&mut a, frame, 500).await;
    let mut pongs = 0;
    let mut limited = Vec::new();
    for r in replies {
        match r.type_name() {
            "pong" => pongs += 1,
            "error" => {
                assert_eq!(r.raw["code"], "rate-limited", "{}", r.raw);
                // Dropped frames are not parsed: nothing to echo.
                assert!(r.raw.get("requestType").is_none(), "{}", r.raw);
                assert!(r.raw.get("requestId").is_none(), "{}", r.raw);
                limited.push(r.raw);
            }
            other => panic!("unexpected {other}: {}", r.raw),
        }
    }
    assert!(!limited.is_empty(), "no rate-limited error ({pongs} pongs)");
    assert!(
        (90..=allowed.min(400)).contains(&pongs),
        "{pongs} pongs for 500 pings at 50/s burst 100 (at most {allowed} for the time taken)"
    );
    // Reported at most about once a second, not once per dropped message.
    assert!(limited.len() <= 5, "{} rate-limited errors", limited.len());

    // b was not affected meanwhile.
    ping_pong(&mut b, "bystander").await;
    b.send(&chat("flood", "from b")).await.expect("send");
    wait_chat(&mut a, "from b").await;
    wait_chat(&mut b, "from b").await;
    assert!(b.drain_type("error").is_empty());

    tokio::time::sleep(Duration::from_secs(2)).await;
    ping_pong(&mut a, "recovered").await;
    check_alive(&mut a, &mut b, "flood", "after-flood").await;
    let (status, body) = server.get("/health").await;
    assert_eq!(status, 200, "{body}");
    a.close().await;
    b.close().await;
    server.stop().await;
}

/// Binary frames count against the message rate like text frames: a flood
/// of them gets `rate-limited`, not one `bad-request` each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_flood_is_rate_limited() {
    let server = TestServer::start().await;
    let mut a = server.connect("flooder").await;
    let (replies, allowed) = flood(&mut a, Message::binary(vec![1u8, 2, 3]), 500).await;
    let mut bad = 0;
    let mut limited = 0;
    for r in replies {
        match r.raw["code"].as_str() {
            Some("bad-request") => bad += 1,
            Some("rate-limited") => limited += 1,
            _ => panic!("unexpected {}", r.raw),
        }
    }
    assert!(limited >= 1, "no rate-limited error ({bad} bad-request)");
    assert!(
        (90..=allowed.min(400)).contains(&bad),
        "{bad} bad-request replies to 500 binary frames at 50/s burst 100 (at most {allowed})"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    ping_pong(&mut a, "after-binary-flood").await;
    a.close().await;
    server.stop().await;
}

/// Configured limits: participants per room and rooms per node give
/// `room-full`; connections over the limit are refused at the upgrade; the
/// slots come back when sessions end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_room_full_and_connections() {
    let server = TestServer::start_with(|c| {
        c.limits.max_participants_per_room = 2;
        c.limits.max_rooms = 2;
        c.limits.max_connections = 3;
    })
    .await;
    let mut a = server.connect("a").await;
    let mut b = server.connect("b").await;
    let mut c = server.connect("c").await;
    join_room(&mut a, "r1").await;
    join_room(&mut b, "r1").await;
    c.send_with_id(&join("r1"), rid(json!("full")))
        .await
        .expect("send");
    let e = expect_next_error(&mut c, "room-full", "third in r1").await;
    assert_eq!(e["roomName"], "r1", "{e}");
    assert_eq!(e["requestType"], "join", "{e}");
    assert_eq!(e["requestId"], "full", "{e}");
    // Implicit joins are refused the same way, and nothing reaches the room.
    c.send(&chat("r1", "let me in")).await.expect("send");
    expect_next_error(&mut c, "room-full", "chat into full r1").await;
    // Re-joining is not a new participant.
    join_room(&mut b, "r1").await;

    join_room(&mut c, "r2").await;
    c.send(&join("r3")).await.expect("send");
    let e = expect_next_error(&mut c, "room-full", "third room").await;
    assert_eq!(e["roomName"], "r3", "{e}");

    // A fourth connection is refused before the upgrade, with 503.
    assert_eq!(
        upgrade_refused_status(&server).await,
        503,
        "fourth connection with max_connections = 3"
    );

    // b leaves r1: c fits now. c leaves r2: r2 closes and r3 can open.
    b.send(&ClientMessage::Leave {
        room_name: "r1".into(),
    })
    .await
    .expect("send");
    b.wait_type("left", T).await.expect("left");
    join_room(&mut c, "r1").await;
    c.send(&ClientMessage::Leave {
        room_name: "r2".into(),
    })
    .await
    .expect("send");
    c.wait_type("left", T).await.expect("left");
    join_room(&mut c, "r3").await;
    assert_none_of(&drain(&mut a).await, &["chat"], "a");

    // Closing a connection frees its slot.
    b.close().await;
    let deadline = Instant::now() + T;
    let mut d = loop {
        match Client::connect(&server.ws_url(), Some(&server.user_token("d"))).await {
            Ok(d) => break d,
            Err(e) => {
                assert!(Instant::now() < deadline, "slot not freed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    expect_auth_ok(&server, &mut d, "d", "d-name").await;
    a.close().await;
    c.close().await;
    d.close().await;
    server.stop().await;
}
