//! The `sfuctl` binary (the one cargo built) against the real server:
//! tokens it mints pass the server's verification, `rooms list`, `rooms
//! show`, `kick` and `events` act on a running server, `--help` everywhere.

use std::process::Stdio;

use rheo_sfu::config::JwtKey;
use serde_json::Value;
use signaling::client::Client;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::common::{join, TestServer, T};

const SECRET: &str = "sfuctl-test-secret-0123456789";
const RSA_PRIVATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../keys/rsa_public.pem");

/// `sfuctl` with a clean environment: only what the test gives it.
fn sfuctl(env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sfuctl"));
    c.env_clear().args(args).kill_on_drop(true);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Runs it to the end: (exit code, stdout, stderr).
async fn run(env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let out = tokio::time::timeout(T, sfuctl(env, args).output())
        .await
        .expect("sfuctl ends in time")
        .expect("sfuctl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn secret_server() -> TestServer {
    TestServer::start_with(|c| c.jwt_key = JwtKey::Secret(SECRET.as_bytes().to_vec())).await
}

async fn connect_with(server: &TestServer, token: &str) -> Client {
    let url = format!("{}?token={}", server.ws_url(), token.trim());
    let mut c = Client::connect(&url, None).await.expect("connect");
    c.wait_type("auth-ok", T)
        .await
        .expect("the server accepts the token");
    c
}

#[tokio::test]
async fn minted_tokens_pass_the_servers_verification() {
    let server = TestServer::start_with(|c| {
        c.jwt_key = JwtKey::Secret(SECRET.as_bytes().to_vec());
        c.jwt_issuer = Some("issuer-x".into());
        c.jwt_audience = Some("aud-y".into());
    })
    .await;
    let env = [
        ("JWT_SECRET", SECRET),
        ("JWT_ISSUER", "issuer-x"),
        ("JWT_AUDIENCE", "aud-y"),
    ];
    let (code, token, err) = run(
        &env,
        &[
            "token",
            "create",
            "--identity",
            "cli-user",
            "--name",
            "Cli",
            "--room",
            "lobby",
            "--can-subscribe",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let mut c = connect_with(&server, &token).await;
    let j = join(&mut c, "lobby").await;
    assert_eq!(
        (j["type"].as_str(), j["participantId"].as_str()),
        (Some("joined"), Some("cli-user")),
        "{j}"
    );
    // The room and publish grants came through: other rooms and
    // publishing are refused.
    let j = join(&mut c, "elsewhere").await;
    assert_eq!(
        (j["type"].as_str(), j["code"].as_str()),
        (Some("error"), Some("forbidden")),
        "{j}"
    );
    let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
        a=msid:stream track-a\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n";
    let msg = serde_json::json!({"type": "publish-offer", "roomName": "lobby", "offer": offer});
    c.send_raw(&msg.to_string()).await.expect("send");
    let e = c.wait_type("error", T).await.expect("error").raw;
    assert_eq!(e["code"], "forbidden", "{e}");

    // --json, and an admin token that the admin API takes.
    let (code, out, err) = run(
        &env,
        &["token", "create", "--identity", "ops", "--admin", "--json"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON output");
    let admin = v["token"].as_str().expect("token");
    let (status, rooms) =
        crate::support::http(server.addr, "GET", "/admin/v1/rooms", Some(admin), None).await;
    assert_eq!(status, 200, "{rooms}");

    // A token from another secret, or without the server's issuer, is refused.
    let (_, other, _) = run(
        &[("JWT_SECRET", "another-secret-0123456789")],
        &["token", "create", "--identity", "x"],
    )
    .await;
    let (_, no_iss, _) = run(
        &[("JWT_SECRET", SECRET)],
        &["token", "create", "--identity", "x"],
    )
    .await;
    for bad in [other, no_iss] {
        let url = format!("{}?token={}", server.ws_url(), bad.trim());
        let mut c = Client::connect(&url, None).await.expect("connect");
        assert_eq!(c.wait_closed(T).await.expect("closed"), Some(4001));
    }
    // No key: a clear error, no token.
    let (code, out, err) = run(&[], &["token", "create", "--identity", "x"]).await;
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("JWT_SECRET"), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn tokens_signed_with_a_private_key_pass_a_public_key_server() {
    let server =
        TestServer::start_with(|c| c.jwt_key = JwtKey::PublicKeyPem(RSA_PUBLIC.to_vec())).await;
    let (code, token, err) = run(
        &[("JWT_PRIVATE_KEY_FILE", RSA_PRIVATE)],
        &["token", "create", "--identity", "rs-user"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let mut c = connect_with(&server, &token).await;
    assert_eq!(join(&mut c, "any").await["participantId"], "rs-user");
    server.stop().await;
}

#[tokio::test]
async fn rooms_list_show_and_kick_against_a_running_server() {
    let server = secret_server().await;
    let url = format!("http://{}", server.addr);
    let env = [("JWT_SECRET", SECRET), ("SFU_URL", url.as_str())];
    let mut ann = server.connect("ann").await;
    let mut bob = server.connect("bob").await;
    assert_eq!(join(&mut ann, "lobby").await["type"], "joined");
    assert_eq!(join(&mut bob, "lobby").await["type"], "joined");

    let (code, out, err) = run(&env, &["rooms", "list"]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ROOM"), "{out}");
    assert!(
        lines[1].starts_with("lobby") && lines[1].contains(&server.config.node_id),
        "{out}"
    );
    let (code, out, err) = run(&env, &["rooms", "list", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        v["rooms"][0]["participants"][0]["participantId"], "ann",
        "{v}"
    );
    let (code, out, err) = run(&env, &["rooms", "show", "lobby"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ann (ann-name)"), "{out}");

    // --url and --token as flags, the token minted by sfuctl itself.
    let (_, admin, _) = run(&env, &["token", "create", "--identity", "ops", "--admin"]).await;
    let (code, out, err) = run(
        &[],
        &[
            "--url",
            &url,
            "--token",
            admin.trim(),
            "kick",
            "lobby",
            "ann",
            "--message",
            "bye",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "removed ann from lobby");
    let k = ann.wait_type("kicked", T).await.expect("kicked").raw;
    assert_eq!(
        (k["reason"].as_str(), k["message"].as_str()),
        (Some("removed"), Some("bye")),
        "{k}"
    );
    assert_eq!(ann.wait_closed(T).await.expect("closed"), Some(4003));

    // Errors: the server's code, exit status 1.
    let (code, _, err) = run(&env, &["kick", "lobby", "zed"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("participant-not-found") && err.contains("404"),
        "{err}"
    );
    let user = server.user_token("cat");
    let (code, _, err) = run(
        &[
            ("SFU_URL", url.as_str()),
            ("SFU_ADMIN_TOKEN", user.as_str()),
        ],
        &["rooms", "list"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("forbidden"), "{err}");
    let (code, _, err) = run(
        &[("JWT_SECRET", SECRET), ("SFU_URL", "https://x")],
        &["rooms", "list"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("plain HTTP"), "{err}");
    server.stop().await;
}

async fn next(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> Value {
    let line = tokio::time::timeout(T, lines.next_line())
        .await
        .expect("a line in time")
        .expect("read")
        .expect("a line");
    serde_json::from_str::<Value>(&line).expect("JSON line")
}

#[tokio::test]
async fn events_tails_the_stream() {
    let server = secret_server().await;
    let url = format!("http://{}", server.addr);
    let mut child = sfuctl(
        &[("JWT_SECRET", SECRET), ("SFU_URL", url.as_str())],
        &[
            "events", "--room", "lobby", "--stats", "0", "--count", "3", "--json",
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("spawn sfuctl");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(next(&mut lines).await["type"], "subscribed");
    let mut ann = server.connect("ann").await;
    assert_eq!(join(&mut ann, "lobby").await["type"], "joined");
    assert_eq!(next(&mut lines).await["type"], "room-opened");
    let e = next(&mut lines).await;
    assert_eq!(
        (e["type"].as_str(), e["participantId"].as_str()),
        (Some("participant-joined"), Some("ann")),
        "{e}"
    );
    let status = tokio::time::timeout(T, child.wait())
        .await
        .expect("exits after --count")
        .expect("status");
    assert!(status.success());
    server.stop().await;
}

#[tokio::test]
async fn help_everywhere() {
    for args in [
        vec!["--help"],
        vec!["token", "--help"],
        vec!["token", "create", "--help"],
        vec!["rooms", "--help"],
        vec!["rooms", "list", "--help"],
        vec!["rooms", "show", "--help"],
        vec!["kick", "--help"],
        vec!["close", "--help"],
        vec!["mute", "--help"],
        vec!["unmute", "--help"],
        vec!["say", "--help"],
        vec!["events", "--help"],
    ] {
        let (code, out, err) = run(&[], &args).await;
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.contains("Usage: sfuctl"), "{args:?}: {out}");
    }
    let (code, _, err) = run(&[], &["rooms", "nope"]).await;
    assert_eq!(code, 2, "{err}");
}
