//! The HTTP endpoints: /health and its counts, /dev/token in dev mode and
//! its absence with a configured key, and the web app served from the
//! binary.

use std::time::Duration;

use rheo_sfu::config::JwtKey;
use serde_json::{json, Value};
use signaling::client::Client;
use signaling::ClientMessage;

use crate::common::{TestServer, T};
use crate::support::{
    claims, connect_token, expect_auth_ok, expect_next_error, health, hs256, join, join_room, open,
    ping_pong, wait_health, Via, ALL_WAYS,
};

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
    // Likewise every module of the client library (web/client/, imported by
    // sfu-client.js): one missing breaks the library in the browser.
    for entry in std::fs::read_dir("web/client").expect("web/client") {
        let file = entry.expect("web/client entry").path();
        let name = file.file_name().expect("file name").to_string_lossy();
        let path = format!("/client/{name}");
        let (head, body) = raw_get(server.addr, &path).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        assert!(
            head.to_lowercase()
                .contains("content-type: text/javascript"),
            "{path}: {head}"
        );
        let want = std::fs::read(&file).expect("web file");
        assert_eq!(body, want, "{path} differs from {}", file.display());
    }
    for path in [
        "/no/such/path",
        "/sfu-client.js/x",
        "/client/transport.js/x",
        "/client/sfu-core.js",
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
