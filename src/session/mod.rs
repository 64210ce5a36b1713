//! One task per WebSocket: reads frames, handles messages in order, writes
//! through a bounded outbox.
//!
//! Handling never waits on media work: offers, answers and candidates are
//! queued to the participant's media actors (which keep their order) and the
//! results come back as [`MediaEvent`]s. So an offer and the candidates that
//! follow it never race, and a slow negotiation never blocks chat or pings.

mod events;
pub mod frame;
mod handlers;
mod ratelimit;
mod relay;
mod routed;
mod ws;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use signaling::{close, ErrorCode, ReconnectReason, RequestId, ServerMessage, MAX_FRAME_BYTES};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use warp::ws::WebSocket;

use crate::auth::Grants;
use crate::media::{MediaEvent, PublisherHandle, SubscriberHandle};
use crate::quota::QuotaGuard;
use crate::room::budget::ByteBudget;
use crate::room::{Room, SessionHandle};
use crate::AppState;
use frame::{FrameError, FrameIn, FrameOut};
use ratelimit::RateLimiter;
use relay::recv_relay;
pub(crate) use routed::serve as serve_routed;

/// How long to wait for the client's close frame after sending ours.
const CLOSE_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(1);
/// Bookkeeping bytes counted per queued frame besides its payload.
const FRAME_OVERHEAD: usize = 64;
/// Media events queued from this session's actors.
const MEDIA_EVENTS: usize = 256;

/// How a session starts.
pub enum Auth {
    /// A client socket: a token from the upgrade request, or none yet
    /// (then the client sends `auth`).
    Token(Option<String>),
    /// A session forwarded by another node, which verified the token: no
    /// `auth-ok` is sent (the edge node sent it to the client).
    Forwarded(Grants),
}

/// Runs one WebSocket session to its end.
pub async fn run(ws: WebSocket, state: Arc<AppState>, auth: Auth, permit: OwnedSemaphorePermit) {
    let (sink, stream) = ws::split(ws);
    run_over(sink, stream, state, auth, permit).await;
}

/// Runs one session over any transport of frames: a client's socket, or the
/// channels of a session forwarded from another node (which needs no
/// keepalive: the edge node keeps its own with the client).
pub async fn run_over<Si, St>(
    mut sink: Si,
    mut stream: St,
    state: Arc<AppState>,
    auth: Auth,
    permit: OwnedSemaphorePermit,
) where
    Si: futures_util::Sink<FrameOut> + Unpin + Send + 'static,
    St: futures_util::Stream<Item = Result<FrameIn, FrameError>> + Unpin,
{
    let limits = &state.config.limits;
    // Everything queued for this client (room events and frames for the
    // socket) counts against one budget in bytes.
    let budget = Arc::new(ByteBudget::new(limits.outbound_bytes));
    let (out_tx, mut out_rx) = mpsc::channel::<(FrameOut, usize)>(limits.outbound_queue);
    let write_timeout = limits.write_timeout;
    let writer_budget = Arc::clone(&budget);
    let mut writer = tokio::spawn(async move {
        while let Some((msg, weight)) = out_rx.recv().await {
            let is_close = msg.is_close();
            // A client that does not read fills the socket's buffers and the
            // send waits: bounded, so the frame and the socket are let go.
            let sent = tokio::time::timeout(write_timeout, sink.send(msg)).await;
            writer_budget.give(weight);
            match sent {
                Ok(Ok(())) if !is_close => {}
                Ok(Ok(())) => break,
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::info!("socket write timed out; dropping the connection");
                    return;
                }
            }
        }
        let _ = tokio::time::timeout(write_timeout, sink.close()).await;
    });

    let (handle, mut events_rx, mut kill_rx) =
        SessionHandle::new(limits.outbound_queue, Arc::clone(&budget));
    let (media_tx, mut media_rx) = mpsc::channel(MEDIA_EVENTS);
    // Resolves when the writer gave up (the socket is broken or stuck).
    let writer_gone = out_tx.clone();
    let mut session = Session {
        state: Arc::clone(&state),
        out: out_tx,
        budget: Arc::clone(&budget),
        handle,
        media_tx,
        grants: None,
        conn_quota: None,
        rooms: HashMap::new(),
        closing: None,
        relay: None,
        ice_refresh: None,
    };
    let now = Instant::now();
    let mut limiter = RateLimiter::new(limits.message_rate, now);
    let auth_deadline = tokio::time::Instant::now() + limits.auth_timeout;
    let mut ping = tokio::time::interval(limits.ping_interval);
    ping.tick().await;
    let mut last_pong = Instant::now();
    let mut draining = state.draining.clone();
    // A forwarded session has no socket of its own to keep alive.
    let keepalive = !matches!(auth, Auth::Forwarded(_));

    match auth {
        Auth::Token(Some(token)) => session.authenticate(&token, None),
        Auth::Token(None) => {}
        Auth::Forwarded(grants) => session.grants = Some(grants),
    }

    while session.closing.is_none() {
        tokio::select! {
            biased;
            Some(inbound) = recv_relay(&mut session.relay) => session.on_relay(inbound),
            _ = writer_gone.closed() => break,
            _ = kill_rx.changed() => {
                let reason = kill_rx.borrow().clone().unwrap_or_default();
                tracing::info!(session = session.handle.session_id, %reason, "closing session");
                session.close(close::POLICY, &reason);
            }
            // Resolves at once when the drain began before this session
            // started or while it was busy (an `if !*draining.borrow()`
            // guard would disable the branch exactly then); an error means
            // the server is gone, which is a drain too.
            _ = async { draining.wait_for(|d| *d).await.map(|_| ()) } => {
                session.send(ServerMessage::Reconnect { reason: ReconnectReason::Draining, retry_after_ms: 500 }, None);
                session.close(close::GOING_AWAY, "server shutting down");
            }
            _ = tokio::time::sleep_until(auth_deadline), if session.grants.is_none() => {
                session.send(ServerMessage::error(ErrorCode::Unauthorized, "not authenticated within the time limit"), None);
                session.close(close::AUTH_TIMEOUT, "authentication timeout");
            }
            frame = stream.next() => match frame {
                None => break,
                Some(Err(e)) => {
                    tracing::debug!(session = session.handle.session_id, "transport error: {e}");
                    if matches!(e, FrameError::TooBig) {
                        session.close(close::TOO_BIG, "frame larger than 64 KiB");
                    }
                    break;
                }
                Some(Ok(frame)) => {
                    let data = frame.data_len();
                    if data.is_some_and(|n| n > MAX_FRAME_BYTES) {
                        session.close(close::TOO_BIG, "frame larger than 64 KiB");
                    } else if data.is_some() && !limiter.allow(Instant::now()) {
                        // Pings count too: the pong costs a write.
                        if limiter.should_report(Instant::now()) {
                            session.send(ServerMessage::error(ErrorCode::RateLimited, "too many messages per second; this one was dropped"), None);
                        }
                    } else {
                        match frame {
                            FrameIn::Text(text) => session.on_text(&text).await,
                            FrameIn::Binary(_) => session.send(ServerMessage::error(ErrorCode::BadRequest, "binary frames are not supported; send JSON text"), None),
                            FrameIn::Pong => last_pong = Instant::now(),
                            FrameIn::Close => break,
                            FrameIn::Ping(_) => {}
                        }
                    }
                }
            },
            Some(q) = events_rx.recv() => {
                budget.give(q.weight);
                session.on_room_event(q.event);
            }
            Some(ev) = media_rx.recv() => session.on_media_event(ev),
            // The guard keeps the far-future fallback from ever firing.
            _ = tokio::time::sleep_until(session.ice_refresh.unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(86_400))), if session.ice_refresh.is_some() => {
                let fresh = session.ice_servers_message();
                session.send(fresh, None);
            }
            _ = ping.tick(), if keepalive => {
                if last_pong.elapsed() > state.config.limits.pong_timeout {
                    session.close(close::POLICY, "no pong for 60 s");
                } else {
                    session.push(FrameOut::Ping);
                }
            }
        }
    }

    session.leave_all().await;
    session.end_relay();
    let we_closed = session.closing.is_some();
    drop(session);
    drop(writer_gone);
    // The writer flushes what is queued (including a close frame), bounded;
    // then it is stopped, so the socket cannot outlive the session.
    let flushed = tokio::time::timeout(CLOSE_HANDSHAKE * 2, &mut writer)
        .await
        .is_ok();
    if !flushed {
        writer.abort();
        let _ = writer.await;
    }
    if we_closed && flushed {
        // Finish the closing handshake: read (and drop) what the client still
        // sends until its close frame, bounded. Dropping a socket with unread
        // data makes the kernel answer with a TCP reset, and the client then
        // loses our close frame and its code (4001, 4008, 1009, ...).
        // After a protocol error (a frame over the limit) nothing more can
        // be read: wait out the bound instead, so the client has our close
        // frame before the reset (some stacks drop received data on one).
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
            loop {
                match stream.next().await {
                    Some(Ok(FrameIn::Close)) => break,
                    Some(Ok(_)) => {}
                    None => break,
                    Some(Err(_)) => std::future::pending::<()>().await,
                }
            }
        })
        .await;
    }
    // The socket's last half goes (the writer's went with its task), and
    // only then the connection slot.
    drop(stream);
    drop(permit);
}

struct RoomSession {
    room: Arc<Room>,
    publisher: Option<PublisherHandle>,
    subscriber: Option<SubscriberHandle>,
    /// This room in the identity's room quota.
    _quota: Option<QuotaGuard>,
    /// Tracks of ours that subscribers reported without media (each
    /// answered with one `reconnect`).
    missing_reported: std::collections::HashSet<String>,
}

struct Session {
    state: Arc<AppState>,
    out: mpsc::Sender<(FrameOut, usize)>,
    budget: Arc<ByteBudget>,
    handle: SessionHandle,
    media_tx: mpsc::Sender<MediaEvent>,
    grants: Option<Grants>,
    /// This connection in its identity's connection quota.
    conn_quota: Option<QuotaGuard>,
    rooms: HashMap<String, RoomSession>,
    closing: Option<u16>,
    /// Set when the session's room is held by another node.
    relay: Option<crate::routing::Link>,
    /// When to send fresh TURN credentials (`ice-servers`); `None`: never.
    ice_refresh: Option<tokio::time::Instant>,
}

/// An error to answer a message with.
struct Reject {
    code: ErrorCode,
    message: String,
}

fn reject(code: ErrorCode, message: impl Into<String>) -> Reject {
    Reject {
        code,
        message: message.into(),
    }
}

impl Session {
    /// Queues a frame; a full outbox (in frames or bytes) means the client
    /// does not read, and the session ends.
    fn push(&mut self, msg: FrameOut) {
        if self.closing.is_some() {
            return;
        }
        let weight = msg.len() + FRAME_OVERHEAD;
        if !self.budget.take(weight) {
            tracing::info!(
                session = self.handle.session_id,
                queued = self.budget.used(),
                "outbound budget exhausted; closing"
            );
            self.closing = Some(close::POLICY);
            return;
        }
        if self.out.try_send((msg, weight)).is_err() {
            self.budget.give(weight);
            tracing::info!(
                session = self.handle.session_id,
                "outbound queue full; closing"
            );
            self.closing = Some(close::POLICY);
        }
    }

    fn send(&mut self, msg: ServerMessage, request_id: Option<&RequestId>) {
        match &msg {
            ServerMessage::Error { code, .. } => crate::metrics::error_sent(code.as_str()),
            ServerMessage::Reconnect { reason, .. } => {
                crate::metrics::reconnect_sent(reason.as_str())
            }
            _ => {}
        }
        self.push(FrameOut::Text(msg.to_json(request_id)));
    }

    fn send_error(
        &mut self,
        r: Reject,
        request_type: Option<&str>,
        room: Option<&str>,
        request_id: Option<&RequestId>,
    ) {
        self.send(
            ServerMessage::Error {
                code: r.code,
                message: r.message,
                request_type: request_type.map(str::to_owned),
                room_name: room.map(str::to_owned),
            },
            request_id,
        );
    }

    fn close(&mut self, code: u16, reason: &str) {
        self.push(FrameOut::Close {
            code,
            reason: reason.to_owned(),
        });
        self.closing = Some(code);
    }
}
