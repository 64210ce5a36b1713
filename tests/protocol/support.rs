//! Helpers shared by the protocol tests: token minting, connecting and
//! authenticating the three ways, message builders, and the checks most
//! tests repeat.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rheo_sfu::config::JwtKey;
use serde_json::{json, Value};
use signaling::client::{Client, ClientError, Received};
use signaling::{ClientMessage, RequestId};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{TestServer, T};

const RSA_PRIVATE: &[u8] = include_bytes!("../keys/rsa_private.pem");
pub(crate) const RSA_PUBLIC: &[u8] = include_bytes!("../keys/rsa_public.pem");

/// How long "nothing else arrives" is watched for.
pub(crate) const QUIET: Duration = Duration::from_millis(300);

/// An SDP offer that passes the message validation (starts with `v=0`, has a
/// media section) and names one sending track.
pub(crate) const PLAUSIBLE_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
    a=msid:stream track-a\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n";

// --- tokens -----------------------------------------------------------------

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The HMAC secret of a dev or shared-secret server.
pub(crate) fn secret(server: &TestServer) -> Vec<u8> {
    match &server.config.jwt_key {
        JwtKey::Dev(s) | JwtKey::Secret(s) => s.clone(),
        JwtKey::PublicKeyPem(_) => unreachable!("server has a public key"),
    }
}

pub(crate) fn hs256(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign HS256")
}

pub(crate) fn rs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("RSA private key"),
    )
    .expect("sign RS256")
}

/// `{"alg":"none"}` token with an empty signature.
pub(crate) fn alg_none(claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// `sub` + `exp` one hour ahead, plus `extra`'s fields.
pub(crate) fn claims(sub: Value, extra: Value) -> Value {
    let mut c = json!({ "sub": sub, "exp": now() + 3600 });
    if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
        c.extend(extra);
    }
    c
}

// --- connections ----------------------------------------------------------

/// The three ways of PROTOCOL.md to hand over the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    Header,
    Query,
    Message,
}

pub(crate) const ALL_WAYS: [Via; 3] = [Via::Header, Via::Query, Via::Message];

/// Opens a connection and hands over `token` the given way (does not wait).
pub(crate) async fn open(server: &TestServer, via: Via, token: &str) -> Client {
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
pub(crate) async fn open_bare(server: &TestServer) -> Client {
    Client::connect(&server.ws_url(), None)
        .await
        .expect("connect")
}

/// Waits for the next message and checks it is `auth-ok` for `pid`/`username`.
pub(crate) async fn expect_auth_ok(server: &TestServer, c: &mut Client, pid: &str, username: &str) {
    let r = c.recv(T).await.expect("a reply to the token");
    assert_eq!(r.type_name(), "auth-ok", "{}", r.raw);
    assert_eq!(r.raw["participantId"], pid, "{}", r.raw);
    assert_eq!(r.raw["username"], username, "{}", r.raw);
    assert_eq!(r.raw["protocol"], 1, "{}", r.raw);
    assert_eq!(r.raw["nodeId"], server.config.node_id.as_str(), "{}", r.raw);
}

/// Checks that the token is refused: `error` `unauthorized` whose message
/// says `why`, then close code 4001.
pub(crate) async fn expect_refused(server: &TestServer, via: Via, token: &str, why: &str) {
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
pub(crate) async fn connect_token(server: &TestServer, token: &str) -> Client {
    let mut c = open(server, Via::Query, token).await;
    let r = c.recv(T).await.expect("auth reply");
    assert_eq!(r.type_name(), "auth-ok", "{}", r.raw);
    c
}

// --- messages ---------------------------------------------------------------

pub(crate) fn join(room: &str) -> ClientMessage {
    ClientMessage::Join {
        room_name: room.to_owned(),
    }
}

pub(crate) fn chat(room: &str, text: &str) -> ClientMessage {
    ClientMessage::Chat {
        room_name: Some(room.to_owned()),
        text: text.to_owned(),
    }
}

pub(crate) fn rid(v: Value) -> Option<RequestId> {
    Some(RequestId(v))
}

/// Joins and returns the `joined` message (the next message must be it).
pub(crate) async fn join_room(c: &mut Client, room: &str) -> Value {
    c.send(&join(room)).await.expect("send join");
    let r = c.wait_type("joined", T).await.expect("joined");
    assert_eq!(r.raw["roomName"], room, "{}", r.raw);
    r.raw
}

/// Waits for an `error` and checks its code.
pub(crate) async fn expect_error(c: &mut Client, code: &str, context: &str) -> Value {
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
pub(crate) async fn expect_next_error(c: &mut Client, code: &str, context: &str) -> Value {
    let r = c
        .recv(T)
        .await
        .unwrap_or_else(|e| panic!("{context}: no reply: {e}"));
    assert_eq!(r.type_name(), "error", "{context}: {}", r.raw);
    assert_eq!(r.raw["code"], code, "{context}: {}", r.raw);
    r.raw
}

/// `ping` with a unique requestId answers `pong` with the same id.
pub(crate) async fn ping_pong(c: &mut Client, tag: &str) {
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
pub(crate) async fn wait_chat(c: &mut Client, text: &str) -> Value {
    c.wait_for("chat", T, |r| {
        r.type_name() == "chat" && r.raw["text"] == text
    })
    .await
    .unwrap_or_else(|e| panic!("chat {text:?} not received: {e}"))
    .raw
}

/// `a` still answers pings, and a chat from `a` reaches both `a` and `b`.
pub(crate) async fn check_alive(a: &mut Client, b: &mut Client, room: &str, tag: &str) {
    ping_pong(a, tag).await;
    let text = format!("alive after {tag}");
    a.send(&chat(room, &text)).await.expect("send chat");
    wait_chat(b, &text).await;
    wait_chat(a, &text).await;
}

/// Everything that arrives until `QUIET` passes with nothing.
pub(crate) async fn drain(c: &mut Client) -> Vec<Received> {
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
pub(crate) async fn flood(c: &mut Client, frame: Message, n: usize) -> (Vec<Received>, usize) {
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
pub(crate) async fn upgrade_refused_status(server: &TestServer) -> u16 {
    use tokio_tungstenite::tungstenite::Error;
    match Client::connect(&server.ws_url(), None).await {
        Ok(_) => panic!("upgrade accepted"),
        Err(ClientError::Ws(Error::Http(response))) => response.status().as_u16(),
        Err(e) => panic!("upgrade failed without an HTTP status: {e}"),
    }
}

/// Asserts that none of `msgs` has one of the `types`.
pub(crate) fn assert_none_of(msgs: &[Received], types: &[&str], context: &str) {
    for m in msgs {
        assert!(
            !types.contains(&m.type_name()),
            "{context}: unexpected {}",
            m.raw
        );
    }
}

// --- /health ----------------------------------------------------------------

pub(crate) async fn health(server: &TestServer) -> Value {
    let (status, body) = server.get("/health").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/health is not JSON ({e}): {body}"))
}

/// Polls /health until `pred` holds.
pub(crate) async fn wait_health(
    server: &TestServer,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
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
