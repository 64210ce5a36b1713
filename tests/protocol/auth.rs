//! Authentication: a token in any of the three places (Authorization header,
//! `?token=`, an `auth` message), every reason a token is refused (close code
//! 4001), issuer and audience, and a server with an RSA key.

use std::time::{Duration, Instant};

use rheo_sfu::config::JwtKey;
use serde_json::{json, Value};
use signaling::client::Client;
use signaling::ClientMessage;

use crate::common::{TestServer, T};
use crate::support::{
    alg_none, claims, expect_auth_ok, expect_refused, hs256, join, now, open, open_bare, ping_pong,
    rid, rs256, secret, Via, ALL_WAYS, RSA_PUBLIC,
};

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
