//! Every admin route: the token check (401, 403), bad input (400 with a
//! code), unknown rooms and participants (404), and what the affected
//! clients see when they are removed or their room is closed.

use serde_json::{json, Value};

use crate::common::{join, TestServer, T};
use crate::support::{admin, http};

/// Every route, with a body that would be valid.
const ROUTES: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/admin/v1/rooms", None),
    ("GET", "/admin/v1/rooms/lobby", None),
    ("POST", "/admin/v1/rooms/lobby/close", Some("{}")),
    (
        "POST",
        "/admin/v1/rooms/lobby/messages",
        Some(r#"{"text":"hi"}"#),
    ),
    (
        "POST",
        "/admin/v1/rooms/lobby/participants/ann/kick",
        Some("{}"),
    ),
    (
        "POST",
        "/admin/v1/rooms/lobby/participants/ann/mute",
        Some("{}"),
    ),
    (
        "POST",
        "/admin/v1/rooms/lobby/participants/ann/unmute",
        Some("{}"),
    ),
    ("GET", "/admin/v1/events", None),
];

#[tokio::test]
async fn every_route_wants_a_token_with_the_admin_grant() {
    let server = TestServer::start().await;
    let user = server.user_token("ann");
    for (method, path, body) in ROUTES {
        let (status, v) = http(server.addr, method, path, None, *body).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (401, Some("unauthorized")),
            "{method} {path}: {v}"
        );
        let (status, v) = http(server.addr, method, path, Some("not-a-jwt"), *body).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (401, Some("unauthorized")),
            "{method} {path}: {v}"
        );
        let (status, v) = http(server.addr, method, path, Some(&user), *body).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}: {v}"
        );
        // With the grant: past the check (the room does not exist; the
        // event stream wants an upgrade).
        let (status, v) = admin(&server, method, path, *body).await;
        let expected = match *path {
            "/admin/v1/rooms" => 200,
            "/admin/v1/events" => 400,
            _ => 404,
        };
        assert_eq!(status, expected, "{method} {path}: {v}");
    }
    // Unknown paths and methods under /admin/v1/ answer JSON too.
    let (status, v) = admin(&server, "GET", "/admin/v1/nope", None).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("not-found")),
        "{v}"
    );
    let (status, v) = admin(&server, "DELETE", "/admin/v1/rooms/lobby", None).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (405, Some("method-not-allowed")),
        "{v}"
    );
    // The rest of the server is untouched.
    assert_eq!(server.get("/health").await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn bad_input_is_400_with_a_code() {
    let server = TestServer::start().await;
    let mut ann = server.connect("ann").await;
    assert_eq!(join(&mut ann, "lobby").await["type"], "joined");
    let long_room = "r".repeat(129);
    let cases: Vec<(&str, String, Option<String>, &str)> = vec![
        (
            "GET",
            format!("/admin/v1/rooms/{long_room}"),
            None,
            "bad-room-name",
        ),
        ("GET", "/admin/v1/rooms/a%FFb".into(), None, "bad-path"),
        (
            "POST",
            "/admin/v1/rooms/lobby/close".into(),
            Some("{not json".into()),
            "bad-json",
        ),
        (
            "POST",
            "/admin/v1/rooms/lobby/close".into(),
            Some(r#"{"mesage":"typo"}"#.into()),
            "bad-json",
        ),
        (
            "POST",
            "/admin/v1/rooms/lobby/close".into(),
            Some(json!({"message": "x".repeat(1025)}).to_string()),
            "bad-message",
        ),
        (
            "POST",
            "/admin/v1/rooms/lobby/messages".into(),
            Some(r#"{"text":""}"#.into()),
            "bad-text",
        ),
        (
            "POST",
            "/admin/v1/rooms/lobby/messages".into(),
            Some(json!({"text": "x".repeat(4097)}).to_string()),
            "bad-text",
        ),
        (
            "POST",
            "/admin/v1/rooms/lobby/messages".into(),
            Some(r#"{"text":"a","data":1}"#.into()),
            "bad-request",
        ),
        (
            "POST",
            "/admin/v1/rooms/lobby/messages".into(),
            Some("{}".into()),
            "bad-request",
        ),
        (
            "POST",
            "/admin/v1/rooms/lobby/messages".into(),
            Some(r#"{"data":1,"to":""}"#.into()),
            "bad-participant-id",
        ),
        (
            "POST",
            "/admin/v1/rooms/lobby/participants/ann/kick".into(),
            Some(r#""bye""#.into()),
            "bad-json",
        ),
        (
            "POST",
            "/admin/v1/rooms/lobby/participants/ann/mute".into(),
            Some(r#"{"trackIds":"v"}"#.into()),
            "bad-json",
        ),
        (
            "POST",
            format!(
                "/admin/v1/rooms/lobby/participants/{}/kick",
                "p".repeat(257)
            ),
            None,
            "bad-participant-id",
        ),
        (
            "GET",
            "/admin/v1/events?stats=x".into(),
            None,
            "websocket-required",
        ),
    ];
    for (method, path, body, code) in cases {
        let (status, v) = admin(&server, method, &path, body.as_deref()).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some(code)),
            "{method} {path}: {v}"
        );
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
    let big = format!(r#"{{"message":"{}"}}"#, "x".repeat(70_000));
    let (status, v) = admin(&server, "POST", "/admin/v1/rooms/lobby/close", Some(&big)).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (413, Some("body-too-large")),
        "{v}"
    );
    // Nothing of that touched the room.
    let (status, v) = admin(&server, "GET", "/admin/v1/rooms/lobby", None).await;
    assert_eq!(
        (status, v["participants"][0]["participantId"].as_str()),
        (200, Some("ann")),
        "{v}"
    );
    server.stop().await;
}

#[tokio::test]
async fn rooms_are_listed_with_their_participants_and_node() {
    let server = TestServer::start().await;
    let (status, v) = admin(&server, "GET", "/admin/v1/rooms", None).await;
    assert_eq!((status, v), (200, json!({"rooms": []})));
    let mut ann = server.connect("ann").await;
    let mut bob = server.connect("bob").await;
    let mut cat = server.connect("cat").await;
    for (c, room) in [
        (&mut ann, "a b/c"),
        (&mut bob, "a b/c"),
        (&mut cat, "other"),
    ] {
        assert_eq!(join(c, room).await["type"], "joined");
    }
    let (status, v) = admin(&server, "GET", "/admin/v1/rooms", None).await;
    assert_eq!(status, 200, "{v}");
    let rooms = v["rooms"].as_array().expect("rooms");
    let names: Vec<&str> = rooms.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["a b/c", "other"], "{v}");
    for r in rooms {
        assert_eq!(r["node"], server.config.node_id.as_str(), "{r}");
        assert_eq!(
            (r["publishers"].as_u64(), r["tracks"].as_u64()),
            (Some(0), Some(0)),
            "{r}"
        );
    }
    // One room, its name percent-encoded in the path.
    let (status, v) = admin(&server, "GET", "/admin/v1/rooms/a%20b%2Fc", None).await;
    assert_eq!(status, 200, "{v}");
    let ids: Vec<&str> = v["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .filter_map(|p| p["participantId"].as_str())
        .collect();
    assert_eq!(ids, ["ann", "bob"], "{v}");
    assert_eq!(v["participants"][0]["username"], "ann-name", "{v}");
    assert_eq!(v["participants"][0]["tracks"], json!([]), "{v}");
    // A room that is gone is not found.
    let mut cat_left = cat;
    cat_left
        .send_raw(r#"{"type":"leave","roomName":"other"}"#)
        .await
        .expect("leave");
    cat_left.wait_type("left", T).await.expect("left");
    let (status, v) = admin(&server, "GET", "/admin/v1/rooms/other", None).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("room-not-found")),
        "{v}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_kicked_participant_is_told_and_its_socket_closes() {
    let server = TestServer::start().await;
    let mut ann = server.connect("ann").await;
    let mut bob = server.connect("bob").await;
    assert_eq!(join(&mut ann, "lobby").await["type"], "joined");
    assert_eq!(join(&mut bob, "lobby").await["type"], "joined");
    ann.wait_type("participant-joined", T)
        .await
        .expect("bob joined");

    let (status, v) = admin(
        &server,
        "POST",
        "/admin/v1/rooms/lobby/participants/nobody/kick",
        None,
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("participant-not-found")),
        "{v}"
    );
    let (status, v) = admin(
        &server,
        "POST",
        "/admin/v1/rooms/lobby/participants/bob/kick",
        Some(r#"{"message":"be nice"}"#),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["kicked"], true, "{v}");

    let kicked = bob.wait_type("kicked", T).await.expect("kicked").raw;
    assert_eq!(
        kicked,
        json!({"type":"kicked","roomName":"lobby","reason":"removed","message":"be nice"})
    );
    assert_eq!(bob.wait_closed(T).await.expect("closed"), Some(4003));
    let left = ann
        .wait_type("participant-left", T)
        .await
        .expect("bob left")
        .raw;
    assert_eq!(left["participantId"], "bob", "{left}");
    // The one left is ann, whose session goes on.
    let (_, v) = admin(&server, "GET", "/admin/v1/rooms/lobby", None).await;
    assert_eq!(v["participants"].as_array().map(Vec::len), Some(1), "{v}");
    ann.send_raw(r#"{"type":"ping"}"#).await.expect("ping");
    ann.wait_type("pong", T).await.expect("pong");
    server.stop().await;
}

#[tokio::test]
async fn closing_a_room_removes_everyone_and_it_can_open_again() {
    let server = TestServer::start().await;
    let mut ann = server.connect("ann").await;
    let mut bob = server.connect("bob").await;
    assert_eq!(join(&mut ann, "lobby").await["type"], "joined");
    assert_eq!(join(&mut bob, "lobby").await["type"], "joined");
    let (status, v) = admin(&server, "POST", "/admin/v1/rooms/lobby/close", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["closed"].as_bool(), v["participants"].as_u64()),
        (Some(true), Some(2)),
        "{v}"
    );
    for c in [&mut ann, &mut bob] {
        let k = c.wait_type("kicked", T).await.expect("kicked").raw;
        assert_eq!(
            k,
            json!({"type":"kicked","roomName":"lobby","reason":"room-closed"})
        );
        assert_eq!(c.wait_closed(T).await.expect("closed"), Some(4003));
    }
    let (status, v) = admin(&server, "GET", "/admin/v1/rooms", None).await;
    assert_eq!((status, &v["rooms"]), (200, &json!([])), "{v}");
    let (status, v) = admin(&server, "POST", "/admin/v1/rooms/lobby/close", None).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("room-not-found")),
        "{v}"
    );
    // A new session opens it again.
    let mut cat = server.connect("cat").await;
    let j = join(&mut cat, "lobby").await;
    assert_eq!(
        (j["type"].as_str(), &j["participants"]),
        (Some("joined"), &json!([])),
        "{j}"
    );
    let (_, health) = server.get("/health").await;
    assert!(health.contains("\"participants\":1"), "{health}");
    server.stop().await;
}

#[tokio::test]
async fn the_system_sends_chat_and_data_to_a_room() {
    let server = TestServer::start().await;
    let mut ann = server.connect("ann").await;
    let mut bob = server.connect("bob").await;
    assert_eq!(join(&mut ann, "lobby").await["type"], "joined");
    assert_eq!(join(&mut bob, "lobby").await["type"], "joined");
    let (status, v) = admin(
        &server,
        "POST",
        "/admin/v1/rooms/lobby/messages",
        Some(r#"{"text":"maintenance at noon"}"#),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    for c in [&mut ann, &mut bob] {
        let chat = c.wait_type("chat", T).await.expect("chat").raw;
        assert_eq!(chat["text"], "maintenance at noon", "{chat}");
        assert_eq!(
            (chat["participantId"].as_str(), chat["username"].as_str()),
            (Some(""), Some("system")),
            "{chat}"
        );
        assert!(chat["ts"].as_u64().is_some_and(|t| t > 0), "{chat}");
    }
    // Data to one participant only.
    let (status, v) = admin(
        &server,
        "POST",
        "/admin/v1/rooms/lobby/messages",
        Some(r#"{"data":{"layout":"grid"},"to":"bob"}"#),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let s = bob.wait_type("signal", T).await.expect("signal").raw;
    assert_eq!(
        s,
        json!({"type":"signal","roomName":"lobby","from":"","data":{"layout":"grid"}})
    );
    let (status, v) = admin(
        &server,
        "POST",
        "/admin/v1/rooms/lobby/messages",
        Some(r#"{"data":1,"to":"zed"}"#),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("participant-not-found")),
        "{v}"
    );
    // ann got no signal: nothing up to the answer to this ping is one.
    ann.send_raw(r#"{"type":"ping"}"#).await.expect("ping");
    let mut before_pong = Vec::new();
    loop {
        let r: Value = ann.recv(T).await.expect("next").raw;
        if r["type"] == "pong" {
            break;
        }
        before_pong.push(r);
    }
    assert!(
        before_pong.iter().all(|r| r["type"] != "signal"),
        "{before_pong:?}"
    );
    server.stop().await;
}
