//! An async client for the signaling protocol, on tokio-tungstenite.
//!
//! Used by the integration tests and the load tester; usable by anyone's app.
//! It keeps messages that a caller was not waiting for, so a test can wait for
//! one type without losing the events that arrived before it.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{ClientMessage, RequestId, ServerMessage};

/// Client errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// WebSocket failure.
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server closed the socket.
    #[error("closed by server (code {code:?}: {reason})")]
    Closed {
        /// Close code, when one was sent.
        code: Option<u16>,
        /// Close reason.
        reason: String,
    },
    /// Nothing matching arrived in time.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    /// The server sent something that is not a protocol message.
    #[error("unexpected frame from server: {0}")]
    Protocol(String),
}

/// One message received from the server, with its raw JSON.
#[derive(Debug, Clone)]
pub struct Received {
    /// Parsed message, when its `type` is known to this crate.
    pub message: Option<ServerMessage>,
    /// The raw JSON object.
    pub raw: Value,
}

impl Received {
    /// The `type` field.
    pub fn type_name(&self) -> &str {
        self.raw.get("type").and_then(Value::as_str).unwrap_or("")
    }
}

/// A connected signaling client.
#[derive(Debug)]
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    buffered: VecDeque<Received>,
    closed: Option<(Option<u16>, String)>,
}

impl Client {
    /// Connects to `url` (e.g. `ws://127.0.0.1:9000/ws`), optionally with an
    /// `Authorization: Bearer` header.
    pub async fn connect(url: &str, bearer: Option<&str>) -> Result<Client, ClientError> {
        let mut request = url.into_client_request()?;
        if let Some(token) = bearer {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| ClientError::Protocol("token is not a valid header value".into()))?;
            request.headers_mut().insert("authorization", value);
        }
        let (ws, _response) = tokio_tungstenite::connect_async(request).await?;
        Ok(Client {
            ws,
            buffered: VecDeque::new(),
            closed: None,
        })
    }

    /// Sends a message.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        self.send_with_id(message, None).await
    }

    /// Sends a message with a `requestId`.
    pub async fn send_with_id(
        &mut self,
        message: &ClientMessage,
        request_id: Option<RequestId>,
    ) -> Result<(), ClientError> {
        let mut value = serde_json::to_value(message)
            .map_err(|e| ClientError::Protocol(format!("cannot encode: {e}")))?;
        if let (Some(id), Value::Object(map)) = (request_id, &mut value) {
            map.insert("requestId".into(), id.0);
        }
        self.send_raw(&value.to_string()).await
    }

    /// Sends any text frame (for tests of malformed input).
    pub async fn send_raw(&mut self, text: &str) -> Result<(), ClientError> {
        self.ws.send(Message::text(text)).await?;
        Ok(())
    }

    /// Sends a raw WebSocket message (binary frames, oversized frames, …).
    pub async fn send_message(&mut self, message: Message) -> Result<(), ClientError> {
        self.ws.send(message).await?;
        Ok(())
    }

    /// Close code and reason, once the server has closed the socket.
    pub fn close_info(&self) -> Option<&(Option<u16>, String)> {
        self.closed.as_ref()
    }

    async fn read_one(&mut self) -> Result<Received, ClientError> {
        loop {
            if let Some((code, reason)) = &self.closed {
                return Err(ClientError::Closed {
                    code: *code,
                    reason: reason.clone(),
                });
            }
            let Some(frame) = self.ws.next().await else {
                self.closed = Some((None, "stream ended".into()));
                continue;
            };
            match frame {
                Ok(Message::Text(text)) => {
                    let raw: Value = serde_json::from_str(&text)
                        .map_err(|e| ClientError::Protocol(format!("not JSON ({e}): {text}")))?;
                    let message = serde_json::from_value(raw.clone()).ok();
                    return Ok(Received { message, raw });
                }
                Ok(Message::Close(frame)) => {
                    self.closed = Some(match frame {
                        Some(f) => (Some(u16::from(f.code)), f.reason.to_string()),
                        None => (Some(u16::from(CloseCode::Status)), String::new()),
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    self.closed = Some((None, e.to_string()));
                }
            }
        }
    }

    /// Next message (buffered first), waiting at most `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Received, ClientError> {
        if let Some(r) = self.buffered.pop_front() {
            return Ok(r);
        }
        match tokio::time::timeout(timeout, self.read_one()).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout(timeout, "any message".into())),
        }
    }

    /// Waits for the first message that `pred` accepts; other messages stay
    /// buffered for later calls, in order.
    pub async fn wait_for<F>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: F,
    ) -> Result<Received, ClientError>
    where
        F: FnMut(&Received) -> bool,
    {
        if let Some(pos) = self.buffered.iter().position(&mut pred) {
            // `pos` came from `position` on this same deque.
            return Ok(self.buffered.remove(pos).expect("index from position"));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let r = match tokio::time::timeout_at(deadline, self.read_one()).await {
                Ok(r) => r?,
                Err(_) => return Err(ClientError::Timeout(timeout, what.to_owned())),
            };
            if pred(&r) {
                return Ok(r);
            }
            self.buffered.push_back(r);
        }
    }

    /// Waits for a message of the given `type`.
    pub async fn wait_type(
        &mut self,
        ty: &str,
        timeout: Duration,
    ) -> Result<Received, ClientError> {
        self.wait_for(ty, timeout, |r| r.type_name() == ty).await
    }

    /// Takes every buffered message of the given `type`.
    pub fn drain_type(&mut self, ty: &str) -> Vec<Received> {
        let (hit, keep): (Vec<_>, Vec<_>) =
            self.buffered.drain(..).partition(|r| r.type_name() == ty);
        self.buffered = keep.into();
        hit
    }

    /// Waits until the server closes the socket; returns the close code.
    pub async fn wait_closed(&mut self, timeout: Duration) -> Result<Option<u16>, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.read_one()).await {
                Ok(Ok(r)) => self.buffered.push_back(r),
                Ok(Err(ClientError::Closed { code, .. })) => return Ok(code),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(ClientError::Timeout(timeout, "close".into())),
            }
        }
    }

    /// Closes the socket.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
