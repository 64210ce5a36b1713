//! Grants and the auth state machine: the `room`/`rooms`, `canPublish` and
//! `canSubscribe` claims, messages before `auth` and a second `auth`, and
//! the auth timeout (close code 4008).

use std::time::{Duration, Instant};

use serde_json::json;
use signaling::ClientMessage;

use crate::common::{token_request, TestServer, T};
use crate::support::{
    chat, claims, connect_token, expect_auth_ok, expect_next_error, hs256, join, join_room,
    open_bare, ping_pong, rid, secret, PLAUSIBLE_OFFER,
};

/// `room` / `rooms` claims limit the rooms, for `join` and for implicit joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_limit_rooms() {
    let server = TestServer::start().await;
    let key = secret(&server);

    let mut c = connect_token(
        &server,
        &hs256(&key, &claims(json!("u"), json!({"room": "a"}))),
    )
    .await;
    c.send_with_id(&join("b"), rid(json!(1)))
        .await
        .expect("send");
    let e = expect_next_error(&mut c, "forbidden", "join b").await;
    assert_eq!(e["requestType"], "join", "{e}");
    assert_eq!(e["roomName"], "b", "{e}");
    assert_eq!(e["requestId"], 1, "{e}");
    // Implicit join of a forbidden room: no `joined`, no chat.
    c.send(&chat("b", "sneak")).await.expect("send");
    let e = expect_next_error(&mut c, "forbidden", "chat b").await;
    assert_eq!(e["requestType"], "chat", "{e}");
    assert_eq!(e["roomName"], "b", "{e}");
    c.send(&join("a")).await.expect("send");
    let r = c.recv(T).await.expect("joined");
    assert_eq!(r.type_name(), "joined", "{}", r.raw);
    assert_eq!(r.raw["roomName"], "a");
    assert_eq!(r.raw["participantId"], "u");
    c.close().await;

    // rooms: [...] through the dev token request.
    let mut req = token_request("v");
    req.rooms = Some(vec!["x".into(), "y".into()]);
    let mut c = connect_token(&server, &server.token(req)).await;
    join_room(&mut c, "y").await;
    join_room(&mut c, "x").await;
    c.send(&join("z")).await.expect("send");
    expect_next_error(&mut c, "forbidden", "join z").await;
    c.close().await;

    // `room` and `rooms` together: their union.
    let mut c = connect_token(
        &server,
        &hs256(
            &key,
            &claims(json!("both"), json!({"room": "p", "rooms": ["q"]})),
        ),
    )
    .await;
    join_room(&mut c, "p").await;
    join_room(&mut c, "q").await;
    c.send(&join("r")).await.expect("send");
    expect_next_error(&mut c, "forbidden", "join r").await;
    c.close().await;

    // An empty `rooms` allows no room at all.
    let mut c = connect_token(
        &server,
        &hs256(&key, &claims(json!("none"), json!({"rooms": []}))),
    )
    .await;
    c.send(&join("p")).await.expect("send");
    expect_next_error(&mut c, "forbidden", "rooms: []").await;
    c.close().await;

    // "*" means any room.
    let mut c = connect_token(
        &server,
        &hs256(&key, &claims(json!("w"), json!({"rooms": ["*"]}))),
    )
    .await;
    join_room(&mut c, "anything").await;
    c.close().await;

    server.stop().await;
}

/// `canPublish: false` forbids publish-offer, `canSubscribe: false` forbids
/// subscribe-request; the connection goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_publish_and_subscribe() {
    let server = TestServer::start().await;
    let key = secret(&server);

    let mut c = connect_token(
        &server,
        &hs256(&key, &claims(json!("np"), json!({"canPublish": false}))),
    )
    .await;
    join_room(&mut c, "g").await;
    c.send_with_id(
        &ClientMessage::PublishOffer {
            room_name: Some("g".into()),
            offer: PLAUSIBLE_OFFER.into(),
        },
        rid(json!("p1")),
    )
    .await
    .expect("send");
    let e = expect_next_error(&mut c, "forbidden", "publish-offer").await;
    assert_eq!(e["requestType"], "publish-offer", "{e}");
    assert_eq!(e["roomName"], "g", "{e}");
    assert_eq!(e["requestId"], "p1", "{e}");
    ping_pong(&mut c, "np").await;
    c.close().await;

    let mut c = connect_token(
        &server,
        &hs256(&key, &claims(json!("ns"), json!({"canSubscribe": false}))),
    )
    .await;
    join_room(&mut c, "g2").await;
    c.send_with_id(
        &ClientMessage::SubscribeRequest {
            room_name: Some("g2".into()),
            publisher_id: "someone".into(),
        },
        rid(json!(2)),
    )
    .await
    .expect("send");
    let e = expect_next_error(&mut c, "forbidden", "subscribe-request").await;
    assert_eq!(e["requestType"], "subscribe-request", "{e}");
    assert_eq!(e["requestId"], 2, "{e}");
    assert_eq!(e["roomName"], "g2", "{e}");
    ping_pong(&mut c, "ns").await;
    c.close().await;

    server.stop().await;
}

/// Before `auth` every other message is `unauthorized` and the connection
/// stays open; a later valid `auth` works; a second `auth` is `bad-request`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_before_auth_and_second_auth() {
    let server = TestServer::start().await;
    let mut c = open_bare(&server).await;
    c.send_with_id(&join("early"), rid(json!(7)))
        .await
        .expect("send");
    let e = expect_next_error(&mut c, "unauthorized", "join before auth").await;
    assert_eq!(e["requestType"], "join", "{e}");
    assert_eq!(e["roomName"], "early", "{e}");
    assert_eq!(e["requestId"], 7, "{e}");
    c.send(&ClientMessage::Ping).await.expect("send");
    let e = expect_next_error(&mut c, "unauthorized", "ping before auth").await;
    assert_eq!(e["requestType"], "ping", "{e}");
    assert!(
        c.close_info().is_none(),
        "socket closed: {:?}",
        c.close_info()
    );

    c.send(&ClientMessage::Auth {
        token: server.user_token("late"),
    })
    .await
    .expect("send");
    expect_auth_ok(&server, &mut c, "late", "late-name").await;

    c.send_with_id(
        &ClientMessage::Auth {
            token: server.user_token("late"),
        },
        rid(json!("again")),
    )
    .await
    .expect("send");
    let e = expect_next_error(&mut c, "bad-request", "second auth").await;
    assert_eq!(e["requestType"], "auth", "{e}");
    assert_eq!(e["requestId"], "again", "{e}");
    // A token that came with the upgrade counts too.
    let mut d = server.connect("upgraded").await;
    d.send(&ClientMessage::Auth {
        token: server.user_token("other"),
    })
    .await
    .expect("send");
    expect_next_error(&mut d, "bad-request", "auth after ?token=").await;
    ping_pong(&mut d, "d").await;

    join_room(&mut c, "later").await;
    ping_pong(&mut c, "c").await;
    c.close().await;
    d.close().await;
    server.stop().await;
}

/// A connection that does not authenticate in time is closed with 4008; one
/// that did is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_timeout_closes_4008() {
    let server = TestServer::start_with(|c| {
        c.limits.auth_timeout = Duration::from_millis(500);
    })
    .await;
    let mut authed = server.connect("quick").await;
    let started = Instant::now();
    let mut c = open_bare(&server).await;
    let code = c.wait_closed(T).await.expect("closed");
    assert_eq!(code, Some(4008));
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "closed after {:?}, before the timeout",
        started.elapsed()
    );
    let e = c.drain_type("error");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].raw["code"], "unauthorized", "{}", e[0].raw);

    // An unauthenticated connection that keeps talking is closed all the same.
    let mut c = open_bare(&server).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(800) && c.close_info().is_none() {
        let _ = c.send(&ClientMessage::Ping).await;
        let _ = c.recv(Duration::from_millis(100)).await;
    }
    assert_eq!(
        c.wait_closed(T).await.expect("closed"),
        Some(4008),
        "{:?}",
        c.close_info()
    );

    ping_pong(&mut authed, "still-here").await;
    authed.close().await;
    server.stop().await;
}
