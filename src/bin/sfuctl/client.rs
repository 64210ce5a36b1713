//! The admin API over HTTP/1 (hyper's client, one connection per request)
//! and the event stream over a WebSocket.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// No answer within this is an error.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Where the server is: `http://host:port` and an optional path prefix
/// (a proxy that mounts the server below a path).
#[derive(Debug, Clone)]
pub struct Server {
    authority: String,
    prefix: String,
}

impl Server {
    /// Reads `http://host[:port][/prefix]`.
    pub fn parse(url: &str) -> Result<Server, String> {
        let rest = if let Some(r) = url.strip_prefix("http://") {
            r
        } else if url.starts_with("https://") {
            return Err(format!(
                "{url}: sfuctl speaks plain HTTP; reach the server's own port (a tunnel, or the \
                 proxy's backend address)"
            ));
        } else {
            return Err(format!("{url}: the server URL must start with http://"));
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(format!("{url}: no host"));
        }
        // host, or host:port; a bare IPv6 address needs brackets.
        let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| {
            (!h.contains(':') || h.ends_with(']')) && p.parse::<u16>().is_ok()
        });
        let authority = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Server {
            authority,
            prefix: prefix.to_owned(),
        })
    }

    /// Sends one request; answers the status and the JSON body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        tokio::time::timeout(TIMEOUT, self.request_inner(method, path, token, body))
            .await
            .map_err(|_| {
                format!(
                    "{}: no answer within {} s",
                    self.authority,
                    TIMEOUT.as_secs()
                )
            })?
    }

    async fn request_inner(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.authority))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("{}: {e}", self.authority))?;
        let conn = tokio::spawn(conn);
        let payload = body.map(Value::to_string).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(HOST, &self.authority)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| format!("bad request: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("{}: {e}", self.authority))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{}: {e}", self.authority))?
            .to_bytes();
        conn.abort();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((status, value))
    }

    /// Streams the events: calls `each` with every text frame until the
    /// server closes or `each` says stop (false).
    pub async fn events(
        &self,
        query: &[(&str, String)],
        token: &str,
        mut each: impl FnMut(&str) -> bool,
    ) -> Result<(), String> {
        let mut url = format!("ws://{}{}/admin/v1/events", self.authority, self.prefix);
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            url.push_str(&segment(v));
        }
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| format!("{url}: {e}"))?;
        let auth = format!("Bearer {token}")
            .parse()
            .map_err(|_| "the token is not a valid header value".to_owned())?;
        req.headers_mut().insert(AUTHORIZATION, auth);
        let (mut ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(req))
            .await
            .map_err(|_| format!("{url}: no answer within {} s", TIMEOUT.as_secs()))?
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(resp) => {
                    let body = resp
                        .body()
                        .as_deref()
                        .map(String::from_utf8_lossy)
                        .unwrap_or_default()
                        .into_owned();
                    format!("HTTP {}: {body}", resp.status().as_u16())
                }
                e => format!("{url}: {e}"),
            })?;
        while let Some(msg) = ws.next().await {
            match msg.map_err(|e| format!("event stream: {e}"))? {
                Message::Text(t) if !each(t.as_str()) => {
                    let _ = ws.close(None).await;
                    return Ok(());
                }
                Message::Close(_) => return Ok(()),
                _ => {}
            }
        }
        Ok(())
    }
}

/// One path segment or query value, percent-encoded.
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let s = Server::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            (s.authority.as_str(), s.prefix.as_str()),
            ("127.0.0.1:9000", "")
        );
        let s = Server::parse("http://sfu.example/api/").unwrap();
        assert_eq!(
            (s.authority.as_str(), s.prefix.as_str()),
            ("sfu.example:80", "/api")
        );
        let s = Server::parse("http://[::1]:9001").unwrap();
        assert_eq!(s.authority, "[::1]:9001");
        assert!(Server::parse("https://x").is_err());
        assert!(Server::parse("ws://x").is_err());
        assert!(Server::parse("http:///x").is_err());
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
