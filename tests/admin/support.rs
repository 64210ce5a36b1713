//! Helpers of the admin tests: HTTP requests with a method, a token and a
//! body (hyper's client), tokens, and event-stream monitors.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rheo_sfu::auth::TokenRequest;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{token_request, TestServer, T};

pub type Monitor =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A token with the `admin` grant.
pub fn admin_token(server: &TestServer) -> String {
    server.token(TokenRequest {
        admin: true,
        ..token_request("operator")
    })
}

/// One request: (status, JSON body, or the body as a string).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let conn = tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
        .expect("request");
    let resp = tokio::time::timeout(T, sender.send_request(req))
        .await
        .expect("answer in time")
        .expect("response");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    conn.abort();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v)
}

/// An admin request with the server's admin token.
pub async fn admin(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, Value) {
    http(server.addr, method, path, Some(&admin_token(server)), body).await
}

/// Opens the event stream (`query` without `?`) and reads its first
/// frame, `subscribed`.
pub async fn monitor(addr: SocketAddr, token: &str, query: &str) -> Monitor {
    let url = format!("ws://{addr}/admin/v1/events?{query}");
    let mut req = url.into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("event stream upgrade");
    let first = next_event(&mut ws, T).await.expect("subscribed");
    assert_eq!(first["type"], "subscribed", "{first}");
    ws
}

/// The next event that is not `node-stats`; `None` when the stream ended.
pub async fn next_event(ws: &mut Monitor, limit: Duration) -> Option<Value> {
    loop {
        let m = tokio::time::timeout(limit, ws.next())
            .await
            .expect("an event in time")?;
        match m {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("event is JSON");
                if v["type"] != "node-stats" {
                    return Some(v);
                }
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}
