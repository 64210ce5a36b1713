//! Signaling protocol conformance (PROTOCOL.md, version 1): authentication,
//! grants, bad input, rooms, the HTTP endpoints and graceful shutdown.
//!
//! No WebRTC media: every test talks to its own in-process server on
//! 127.0.0.1, so these pass with a plain `cargo test --test protocol` as well
//! as inside the network namespace of scripts/test.sh.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{token_request, TestServer, T};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rheo_sfu::config::JwtKey;
use serde_json::{json, Value};
use signaling::client::{Client, ClientError, Received};
use signaling::{ClientMessage, RequestId};
use tokio_tungstenite::tungstenite::Message;

const RSA_PRIVATE: &[u8] = include_bytes!("keys/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("keys/rsa_public.pem");

/// How long "nothing else arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

/// An SDP offer that passes the message validation (starts with `v=0`, has a
/// media section) and names one sending track.
const PLAUSIBLE_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
    a=msid:stream track-a\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n";

// --- tokens -----------------------------------------------------------------

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The HMAC secret of a dev or shared-secret server.
fn secret(server: &TestServer) -> Vec<u8> {
    match &server.config.jwt_key {
        JwtKey::Dev(s) | JwtKey::Secret(s) => s.clone(),
        JwtKey::PublicKeyPem(_) => unreachable!("server has a public key"),
    }
}

fn hs256(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign HS256")
}

fn rs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("RSA private key"),
    )
    .expect("sign RS256")
}

/// `{"alg":"none"}` token with an empty signature.
fn alg_none(claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// `sub` + `exp` one hour ahead, plus `extra`'s fields.
fn claims(sub: Value, extra: Value) -> Value {
    let mut c = json!({ "sub": sub, "exp": now() + 3600 });
    if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
        c.extend(extra);
    }
    c
}

// --- connections ----------------------------------------------------------

/// The three ways of PROTOCOL.md to hand over the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Header,
    Query,
    Message,
}

const ALL_WAYS: [Via; 3] = [Via::Header, Via::Query, Via::Message];

/// Opens a connection and hands over `token` the given way (does not wait).
async fn open(server: &TestServer, via: Via, token: &str) -> Client {
    let url = server.ws_url();
    match via {
        Via::Header => Client::connect(&url, Some(token)).await.expect("connect"),
        Via::Query => Client::connect(&format!("{url}?token={token}"), None)
            .await
            .expect("connect"),
        Via::Message => {
            let mut c = Client::connect(&url, None).await.expect("connect");
            c.send(&ClientMessage::Auth {
                token: token.to_owned(),
            })
            .await
            .expect("send auth");
            c
        }
    }
}

/// Connects without a token.
async fn open_bare(server: &TestServer) -> Client {
    Client::connect(&server.ws_url(), None)
        .await
        .expect("connect")
}

/// Waits for the next message and checks it is `auth-ok` for `pid`/`username`.
async fn expect_auth_ok(server: &TestServer, c: &mut Client, pid: &str, username: &str) {
    let r = c.recv(T).await.expect("a reply to the token");
    assert_eq!(r.type_name(), "auth-ok", "{}", r.raw);
    assert_eq!(r.raw["participantId"], pid, "{}", r.raw);
    assert_eq!(r.raw["username"], username, "{}", r.raw);
    assert_eq!(r.raw["protocol"], 1, "{}", r.raw);
    assert_eq!(r.raw["nodeId"], server.config.node_id.as_str(), "{}", r.raw);
}

/// Checks that the token is refused: `error` `unauthorized` whose message
/// says `why`, then close code 4001.
async fn expect_refused(server: &TestServer, via: Via, token: &str, why: &str) {
    let mut c = open(server, via, token).await;
    let r = c
        .recv(T)
        .await
        .unwrap_or_else(|e| panic!("{why} via {via:?}: no reply: {e}"));
    assert_eq!(r.type_name(), "error", "{why} via {via:?}: {}", r.raw);
    assert_eq!(
        r.raw["code"], "unauthorized",
        "{why} via {via:?}: {}",
        r.raw
    );
    let message = r.raw["message"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        message.contains(why),
        "{why} via {via:?}: message does not say why: {}",
        r.raw
    );
    if via == Via::Message {
        assert_eq!(r.raw["requestType"], "auth", "{}", r.raw);
    }
    let code = c.wait_closed(T).await.expect("socket closes");
    assert_eq!(code, Some(4001), "{why} via {via:?}");
}

/// Authenticates with a custom token via `?token=` and waits for auth-ok.
async fn connect_token(server: &TestServer, token: &str) -> Client {
    let mut c = open(server, Via::Query, token).await;
    let r = c.recv(T).await.expect("auth reply");
    assert_eq!(r.type_name(), "auth-ok", "{}", r.raw);
    c
}

// --- messages ---------------------------------------------------------------

fn join(room: &str) -> ClientMessage {
    ClientMessage::Join {
        room_name: room.to_owned(),
    }
}

fn chat(room: &str, text: &str) -> ClientMessage {
    ClientMessage::Chat {
        room_name: Some(room.to_owned()),
        text: text.to_owned(),
    }
}

fn rid(v: Value) -> Option<RequestId> {
    Some(RequestId(v))
}

/// Joins and returns the `joined` message (the next message must be it).
async fn join_room(c: &mut Client, room: &str) -> Value {
    c.send(&join(room)).await.expect("send join");
    let r = c.wait_type("joined", T).await.expect("joined");
    assert_eq!(r.raw["roomName"], room, "{}", r.raw);
    r.raw
}

/// Waits for an `error` and checks its code.
async fn expect_error(c: &mut Client, code: &str, context: &str) -> Value {
    let r = c
        .wait_type("error", T)
        .await
        .unwrap_or_else(|e| panic!("{context}: no error: {e}"));
    assert_eq!(r.raw["code"], code, "{context}: {}", r.raw);
    assert!(
        r.raw["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{context}: error without message: {}",
        r.raw
    );
    r.raw
}

/// The next message must be an `error` with this code (nothing in between).
async fn expect_next_error(c: &mut Client, code: &str, context: &str) -> Value {
    let r = c
        .recv(T)
        .await
        .unwrap_or_else(|e| panic!("{context}: no reply: {e}"));
    assert_eq!(r.type_name(), "error", "{context}: {}", r.raw);
    assert_eq!(r.raw["code"], code, "{context}: {}", r.raw);
    r.raw
}

/// `ping` with a unique requestId answers `pong` with the same id.
async fn ping_pong(c: &mut Client, tag: &str) {
    c.send_with_id(&ClientMessage::Ping, rid(json!(tag)))
        .await
        .unwrap_or_else(|e| panic!("{tag}: send ping: {e}"));
    c.wait_for("pong", T, |r| {
        r.type_name() == "pong" && r.raw["requestId"] == tag
    })
    .await
    .unwrap_or_else(|e| panic!("{tag}: no pong: {e}"));
}

/// Waits for a chat with this text.
async fn wait_chat(c: &mut Client, text: &str) -> Value {
    c.wait_for("chat", T, |r| {
        r.type_name() == "chat" && r.raw["text"] == text
    })
    .await
    .unwrap_or_else(|e| panic!("chat {text:?} not received: {e}"))
    .raw
}

/// `a` still answers pings, and a chat from `a` reaches both `a` and `b`.
async fn check_alive(a: &mut Client, b: &mut Client, room: &str, tag: &str) {
    ping_pong(a, tag).await;
    let text = format!("alive after {tag}");
    a.send(&chat(room, &text)).await.expect("send chat");
    wait_chat(b, &text).await;
    wait_chat(a, &text).await;
}

/// Everything that arrives until `QUIET` passes with nothing.
async fn drain(c: &mut Client) -> Vec<Received> {
    let mut out = Vec::new();
    loop {
        match c.recv(QUIET).await {
            Ok(r) => out.push(r),
            Err(ClientError::Timeout(..)) => return out,
            Err(e) => panic!("connection failed while draining: {e}"),
        }
    }
}

/// Sends `n` copies of `frame` as fast as possible and collects the replies.
/// Also returns the most replies the default limit (50/s, burst 100) can
/// allow in the time from the first frame to the last reply.
async fn flood(c: &mut Client, frame: Message, n: usize) -> (Vec<Received>, usize) {
    let started = Instant::now();
    for _ in 0..n {
        c.send_message(frame.clone()).await.expect("send");
    }
    let mut out = Vec::new();
    let mut last = started.elapsed();
    loop {
        match c.recv(QUIET).await {
            Ok(r) => {
                last = started.elapsed();
                out.push(r);
            }
            Err(ClientError::Timeout(..)) => break,
            Err(e) => panic!("connection failed during the flood: {e}"),
        }
    }
    let allowed = 100 + (50.0 * last.as_secs_f64()).ceil() as usize + 5;
    (out, allowed)
}

/// Tries a WebSocket upgrade that the server must refuse; its HTTP status.
async fn upgrade_refused_status(server: &TestServer) -> u16 {
    use tokio_tungstenite::tungstenite::Error;
    match Client::connect(&server.ws_url(), None).await {
        Ok(_) => panic!("upgrade accepted"),
        Err(ClientError::Ws(Error::Http(response))) => response.status().as_u16(),
        Err(e) => panic!("upgrade failed without an HTTP status: {e}"),
    }
}

/// Asserts that none of `msgs` has one of the `types`.
fn assert_none_of(msgs: &[Received], types: &[&str], context: &str) {
    for m in msgs {
        assert!(
            !types.contains(&m.type_name()),
            "{context}: unexpected {}",
            m.raw
        );
    }
}

// --- 1. authentication ------------------------------------------------------

/// A valid token is accepted in all three places, `auth-ok` carries
/// participantId/username/protocol/nodeId, numeric `sub` becomes its decimal
/// string, `username` is the fallback for `name` and `sub` for both, and the
/// header wins over the query parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_valid_token_three_ways() {
    let server = TestServer::start().await;
    let key = secret(&server);
    for via in ALL_WAYS {
        let mut c = open(&server, via, &server.user_token("alice")).await;
        expect_auth_ok(&server, &mut c, "alice", "alice-name").await;
        ping_pong(&mut c, "after-auth").await;
        c.close().await;

        let numeric = hs256(&key, &claims(json!(42), json!({})));
        let mut c = open(&server, via, &numeric).await;
        expect_auth_ok(&server, &mut c, "42", "42").await;
        c.close().await;

        let named = hs256(&key, &claims(json!("u7"), json!({"username": "john_doe"})));
        let mut c = open(&server, via, &named).await;
        expect_auth_ok(&server, &mut c, "u7", "john_doe").await;
        c.close().await;
    }

    // `auth` echoes its requestId on auth-ok.
    let mut c = open_bare(&server).await;
    c.send_with_id(
        &ClientMessage::Auth {
            token: server.user_token("bob"),
        },
        rid(json!("a-1")),
    )
    .await
    .expect("send auth");
    let r = c.recv(T).await.expect("auth-ok");
    assert_eq!(r.type_name(), "auth-ok", "{}", r.raw);
    assert_eq!(r.raw["requestId"], "a-1", "{}", r.raw);
    c.close().await;

    // First found wins: the header before the query parameter.
    let url = format!("{}?token={}", server.ws_url(), server.user_token("query"));
    let mut c = Client::connect(&url, Some(&server.user_token("header")))
        .await
        .expect("connect");
    expect_auth_ok(&server, &mut c, "header", "header-name").await;
    c.close().await;
    let url = format!("{}?token=not-a-jwt", server.ws_url());
    let mut c = Client::connect(&url, Some(&server.user_token("header")))
        .await
        .expect("connect");
    expect_auth_ok(&server, &mut c, "header", "header-name").await;
    c.close().await;

    server.stop().await;
}

/// Every kind of bad token, in each of the three places, gets `error`
/// `unauthorized` naming the reason and close code 4001.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failures_close_4001() {
    let server = TestServer::start().await;
    let key = secret(&server);
    let t = now();
    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            hs256(&key, &json!({"sub": "a", "exp": t - 60, "iat": t - 120})),
        ),
        (
            "not yet valid",
            hs256(&key, &claims(json!("a"), json!({"nbf": t + 600}))),
        ),
        (
            "bad signature",
            hs256(
                b"another-secret-entirely-0123456789",
                &claims(json!("a"), json!({})),
            ),
        ),
        (
            "algorithm not allowed",
            alg_none(&claims(json!("a"), json!({}))),
        ),
        ("missing sub", hs256(&key, &json!({"exp": t + 3600}))),
        (
            "algorithm not allowed",
            rs256(&claims(json!("a"), json!({}))),
        ),
        ("malformed", "not-a-jwt".to_owned()),
    ];
    for (why, token) in &cases {
        for via in ALL_WAYS {
            expect_refused(&server, via, token, why).await;
        }
    }
    // The server is fine afterwards.
    let mut c = server.connect("survivor").await;
    ping_pong(&mut c, "after-refusals").await;
    c.close().await;
    server.stop().await;
}

/// A client that goes on sending after the server decided to close (an app
/// that does not wait for auth-ok, trickling candidates, say) still gets the
/// close code: the server completes the closing handshake instead of
/// dropping a socket with unread data, which makes the kernel send a TCP
/// reset and the client lose the close frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_code_survives_a_talking_client() {
    let server = TestServer::start_with(|c| {
        c.limits.auth_timeout = Duration::from_millis(100);
    })
    .await;
    for round in 0..20 {
        let mut c = open_bare(&server).await;
        let expected = if round % 2 == 0 {
            c.send(&ClientMessage::Auth {
                token: "not-a-jwt".into(),
            })
            .await
            .expect("send auth");
            4001
        } else {
            4008
        };
        // Keep sending past the close; send errors are what the bug looks like.
        let started = Instant::now();
        let mut send_errors = 0;
        while started.elapsed() < Duration::from_millis(120) {
            if c.send(&join("talking")).await.is_err() {
                send_errors += 1;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let code = c.wait_closed(T).await.expect("closed");
        assert_eq!(
            code,
            Some(expected),
            "round {round}: {:?} ({send_errors} send errors)",
            c.close_info()
        );
        let e = c.drain_type("error");
        assert_eq!(e[0].raw["code"], "unauthorized", "{}", e[0].raw);
        assert!(
            e.iter().skip(1).all(|e| e.raw["code"] == "unauthorized"),
            "{e:?}"
        );
    }
    server.stop().await;
}

/// A server with an issuer and audience requires both to match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_issuer_and_audience() {
    let server = TestServer::start_with(|c| {
        c.jwt_issuer = Some("https://issuer.test".into());
        c.jwt_audience = Some("rheo".into());
    })
    .await;
    let key = secret(&server);
    let good = json!({"iss": "https://issuer.test", "aud": "rheo"});
    for token in [
        hs256(&key, &claims(json!("ann"), good.clone())),
        hs256(
            &key,
            &claims(
                json!("ann"),
                json!({"iss": "https://issuer.test", "aud": ["other", "rheo"]}),
            ),
        ),
        server.user_token("ann"),
    ] {
        let mut c = open(&server, Via::Query, &token).await;
        let r = c.recv(T).await.expect("reply");
        assert_eq!(r.type_name(), "auth-ok", "{}", r.raw);
        c.close().await;
    }
    let bad: Vec<(&str, Value)> = vec![
        (
            "wrong issuer",
            json!({"iss": "https://evil.test", "aud": "rheo"}),
        ),
        ("wrong issuer", json!({"aud": "rheo"})),
        (
            "wrong audience",
            json!({"iss": "https://issuer.test", "aud": "other"}),
        ),
        (
            "wrong audience",
            json!({"iss": "https://issuer.test", "aud": ["a", "b"]}),
        ),
        ("wrong audience", json!({"iss": "https://issuer.test"})),
    ];
    for (why, extra) in bad {
        let token = hs256(&key, &claims(json!("ann"), extra));
        for via in ALL_WAYS {
            expect_refused(&server, via, &token, why).await;
        }
    }
    server.stop().await;
}

/// A server with an RSA public key accepts RS256 and refuses HS256 (also the
/// classic confusion attack: HS256 keyed with the public PEM), `none`, and
/// expired RS256 tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_rs256_server() {
    let server = TestServer::start_with(|c| {
        c.jwt_key = JwtKey::PublicKeyPem(RSA_PUBLIC.to_vec());
    })
    .await;
    for via in ALL_WAYS {
        let token = rs256(&claims(json!("rsa-user"), json!({"name": "Rosa"})));
        let mut c = open(&server, via, &token).await;
        expect_auth_ok(&server, &mut c, "rsa-user", "Rosa").await;
        c.close().await;
    }
    let t = now();
    let cases: Vec<(&str, String)> = vec![
        (
            "algorithm not allowed",
            hs256(
                b"0123456789abcdef0123456789",
                &claims(json!("a"), json!({})),
            ),
        ),
        (
            "algorithm not allowed",
            hs256(RSA_PUBLIC, &claims(json!("a"), json!({}))),
        ),
        (
            "algorithm not allowed",
            alg_none(&claims(json!("a"), json!({}))),
        ),
        ("expired", rs256(&json!({"sub": "a", "exp": t - 10}))),
        ("missing sub", rs256(&json!({"exp": t + 3600}))),
    ];
    for (why, token) in &cases {
        for via in ALL_WAYS {
            expect_refused(&server, via, token, why).await;
        }
    }
    // /dev/token does not exist with a configured key.
    let (status, _) = server.get("/dev/token?user=x").await;
    assert_eq!(status, 404);
    server.stop().await;
}

// --- 2. grants and the auth state machine -----------------------------------

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

// --- 3. bad input -------------------------------------------------------

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

async fn health(server: &TestServer) -> Value {
    let (status, body) = server.get("/health").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/health is not JSON ({e}): {body}"))
}

/// Polls /health until `pred` holds.
async fn wait_health(server: &TestServer, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + T;
    loop {
        let h = health(server).await;
        if pred(&h) {
            return h;
        }
        assert!(Instant::now() < deadline, "{what}: /health says {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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
