//! One task per WebSocket: reads frames, handles messages in order, writes
//! through a bounded outbox.
//!
//! Handling never waits on media work: offers, answers and candidates are
//! queued to the participant's media actors (which keep their order) and the
//! results come back as [`MediaEvent`]s. So an offer and the candidates that
//! follow it never race, and a slow negotiation never blocks chat or pings.

mod ratelimit;
pub mod remote;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use signaling::{
    parse_client_message, ClientMessage, ErrorCode, Parsed, ReconnectReason, RequestId,
    ServerMessage, MAX_FRAME_BYTES, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use warp::ws::{Message, WebSocket};

use crate::auth::{Grants, RoomScope};
use crate::cluster::forward::Inbound;
use crate::media::{sdp::offered_tracks, MediaEvent, PublisherHandle, SendError, SubscriberHandle};
use crate::quota::{Kind, QuotaGuard};
use crate::room::budget::ByteBudget;
use crate::room::{JoinError, Room, SessionEvent, SessionHandle};
use crate::AppState;
use ratelimit::RateLimiter;

/// Close codes of PROTOCOL.md.
const CLOSE_UNAUTHORIZED: u16 = 4001;
const CLOSE_AUTH_TIMEOUT: u16 = 4008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
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
    let (sink, stream) = ws.split();
    run_over(sink, stream, state, auth, permit).await;
}

/// Runs one session over any transport of WebSocket messages: a client's
/// socket, or the channels of a session forwarded from another node.
pub async fn run_over<Si, St, E>(
    mut sink: Si,
    mut stream: St,
    state: Arc<AppState>,
    auth: Auth,
    permit: OwnedSemaphorePermit,
) where
    Si: futures_util::Sink<Message> + Unpin + Send + 'static,
    St: futures_util::Stream<Item = Result<Message, E>> + Unpin,
    E: std::fmt::Display,
{
    let limits = &state.config.limits;
    // Everything queued for this client (room events and frames for the
    // socket) counts against one budget in bytes.
    let budget = Arc::new(ByteBudget::new(limits.outbound_bytes));
    let (out_tx, mut out_rx) = mpsc::channel::<(Message, usize)>(limits.outbound_queue);
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
    };
    let now = Instant::now();
    let mut limiter = RateLimiter::new(limits.message_rate, now);
    let auth_deadline = tokio::time::Instant::now() + limits.auth_timeout;
    let mut ping = tokio::time::interval(limits.ping_interval);
    ping.tick().await;
    let mut last_pong = Instant::now();
    let mut draining = state.draining.clone();

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
                session.close(CLOSE_POLICY, &reason);
            }
            // Resolves at once when the drain began before this session
            // started or while it was busy (an `if !*draining.borrow()`
            // guard would disable the branch exactly then); an error means
            // the server is gone, which is a drain too.
            _ = async { draining.wait_for(|d| *d).await.map(|_| ()) } => {
                session.send(ServerMessage::Reconnect { reason: ReconnectReason::Draining, retry_after_ms: 500 }, None);
                session.close(CLOSE_GOING_AWAY, "server shutting down");
            }
            _ = tokio::time::sleep_until(auth_deadline), if session.grants.is_none() => {
                session.send(ServerMessage::error(ErrorCode::Unauthorized, "not authenticated within the time limit"), None);
                session.close(CLOSE_AUTH_TIMEOUT, "authentication timeout");
            }
            frame = stream.next() => match frame {
                None => break,
                Some(Err(e)) => {
                    let text = e.to_string();
                    tracing::debug!(session = session.handle.session_id, "websocket error: {text}");
                    if text.contains("too long") || text.contains("Space limit") || text.contains("size") {
                        session.close(CLOSE_TOO_BIG, "frame larger than 64 KiB");
                    }
                    break;
                }
                Some(Ok(msg)) => {
                    let data = msg.is_text() || msg.is_binary() || msg.is_ping();
                    if data && msg.as_bytes().len() > MAX_FRAME_BYTES {
                        session.close(CLOSE_TOO_BIG, "frame larger than 64 KiB");
                    } else if data && !limiter.allow(Instant::now()) {
                        // Pings count too: the pong costs a write.
                        if limiter.should_report(Instant::now()) {
                            session.send(ServerMessage::error(ErrorCode::RateLimited, "too many messages per second; this one was dropped"), None);
                        }
                    } else if msg.is_text() {
                        let text = msg.to_str().unwrap_or_default();
                        session.on_text(text).await;
                    } else if msg.is_binary() {
                        session.send(ServerMessage::error(ErrorCode::BadRequest, "binary frames are not supported; send JSON text"), None);
                    } else if msg.is_pong() {
                        last_pong = Instant::now();
                    } else if msg.is_close() {
                        break;
                    }
                }
            },
            Some(q) = events_rx.recv() => {
                budget.give(q.weight);
                session.on_room_event(q.event).await;
            }
            Some(ev) = media_rx.recv() => session.on_media_event(ev),
            _ = ping.tick() => {
                if last_pong.elapsed() > state.config.limits.pong_timeout {
                    session.close(CLOSE_POLICY, "no pong for 60 s");
                } else {
                    session.push(Message::ping(Vec::<u8>::new()));
                }
            }
        }
    }

    session.leave_all().await;
    if let Some(relay) = session.relay.take() {
        if let Some(fwd) = session.state.cluster.forwarder() {
            fwd.close(&relay.owner, &relay.key, None, "client left");
        }
    }
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
                    Some(Ok(msg)) if msg.is_close() => break,
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

/// A session whose room lives on another node: every client frame goes to
/// the owner, every owner frame to the client.
struct Relay {
    owner: String,
    key: String,
    seq_out: u64,
    inbound: mpsc::Receiver<Inbound>,
}

async fn recv_relay(relay: &mut Option<Relay>) -> Option<Inbound> {
    match relay {
        Some(r) => r.inbound.recv().await,
        None => std::future::pending().await,
    }
}

struct Session {
    state: Arc<AppState>,
    out: mpsc::Sender<(Message, usize)>,
    budget: Arc<ByteBudget>,
    handle: SessionHandle,
    media_tx: mpsc::Sender<MediaEvent>,
    grants: Option<Grants>,
    /// This connection in its identity's connection quota.
    conn_quota: Option<QuotaGuard>,
    rooms: HashMap<String, RoomSession>,
    closing: Option<u16>,
    relay: Option<Relay>,
}

/// An error to answer a message with.
struct Reject {
    code: ErrorCode,
    message: String,
    /// Not an error: the room lives on this node (id); forward the session.
    forward_to: Option<String>,
}

fn reject(code: ErrorCode, message: impl Into<String>) -> Reject {
    Reject {
        forward_to: None,
        code,
        message: message.into(),
    }
}

/// `forbidden` unless the token grants the action.
fn require(granted: bool, action: &str) -> Result<(), Reject> {
    if granted {
        Ok(())
    } else {
        Err(reject(
            ErrorCode::Forbidden,
            format!("the token does not allow {action}"),
        ))
    }
}

impl Session {
    /// Queues a frame; a full outbox (in frames or bytes) means the client
    /// does not read, and the session ends.
    fn push(&mut self, msg: Message) {
        if self.closing.is_some() {
            return;
        }
        let weight = msg.as_bytes().len() + FRAME_OVERHEAD;
        if !self.budget.take(weight) {
            tracing::info!(
                session = self.handle.session_id,
                queued = self.budget.used(),
                "outbound budget exhausted; closing"
            );
            self.closing = Some(CLOSE_POLICY);
            return;
        }
        if self.out.try_send((msg, weight)).is_err() {
            self.budget.give(weight);
            tracing::info!(
                session = self.handle.session_id,
                "outbound queue full; closing"
            );
            self.closing = Some(CLOSE_POLICY);
        }
    }

    fn send(&mut self, msg: ServerMessage, request_id: Option<&RequestId>) {
        self.push(Message::text(msg.to_json(request_id)));
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
        self.push(Message::close_with(code, reason.to_owned()));
        self.closing = Some(code);
    }

    fn authenticate(&mut self, token: &str, request_id: Option<&RequestId>) {
        let verified = self
            .state
            .verifier
            .verify(token)
            .map_err(|e| (ErrorCode::Unauthorized, e.to_string()))
            .and_then(|grants| {
                let quota = self
                    .state
                    .quotas
                    .take(&grants.participant_id, Kind::Connection)
                    .map_err(|e| (ErrorCode::QuotaExceeded, e))?;
                Ok((grants, quota))
            });
        match verified {
            Ok((grants, quota)) => {
                self.conn_quota = Some(quota);
                tracing::debug!(participant = %grants.participant_id, "authenticated");
                self.send(
                    ServerMessage::AuthOk {
                        participant_id: grants.participant_id.clone(),
                        username: grants.username.clone(),
                        protocol: PROTOCOL_VERSION,
                        node_id: self.state.config.node_id.clone(),
                    },
                    request_id,
                );
                self.grants = Some(grants);
            }
            Err((code, message)) => {
                let close = if code == ErrorCode::Unauthorized {
                    (CLOSE_UNAUTHORIZED, "unauthorized")
                } else {
                    (CLOSE_POLICY, "too many connections for this participant")
                };
                self.send_error(reject(code, message), Some("auth"), None, request_id);
                self.close(close.0, close.1);
            }
        }
    }

    async fn on_text(&mut self, text: &str) {
        if let Some(relay) = self.relay.as_mut() {
            if let Some(fwd) = self.state.cluster.forwarder() {
                fwd.frame(&relay.owner, &relay.key, relay.seq_out, text.to_owned());
                relay.seq_out += 1;
            }
            return;
        }
        let Parsed {
            request_id,
            message,
        } = match parse_client_message(text) {
            Ok(p) => p,
            Err(e) => {
                let (ty, room, id) = (
                    e.request_type.clone(),
                    e.room_name.clone(),
                    e.request_id.clone(),
                );
                return self.send_error(
                    reject(e.code, e.message),
                    ty.as_deref(),
                    room.as_deref(),
                    id.as_ref(),
                );
            }
        };
        let rid = request_id.as_ref();
        let ty = message.type_name();
        if self.grants.is_none() {
            return match message {
                ClientMessage::Auth { token } => self.authenticate(&token, rid),
                _ => self.send_error(
                    reject(ErrorCode::Unauthorized, "authenticate first (send auth)"),
                    Some(ty),
                    message.room_name(),
                    rid,
                ),
            };
        }
        let room_hint = message.room_name().map(str::to_owned);
        if let Err(r) = self.dispatch(message, rid).await {
            match r.forward_to {
                Some(owner) => self.start_relay(&owner, text),
                None => self.send_error(r, Some(ty), room_hint.as_deref(), rid),
            }
        }
    }

    /// From now on this session is a relay to `owner`, starting with the
    /// frame that needed the room.
    fn start_relay(&mut self, owner: &str, first: &str) {
        let Some(fwd) = self.state.cluster.forwarder() else {
            return;
        };
        let grants = self.grants().clone();
        let (key, inbound) = fwd.open(self.handle.session_id, owner, &grants);
        tracing::debug!(session = %key, %owner, "forwarding to the room's owner");
        fwd.frame(owner, &key, 0, first.to_owned());
        self.relay = Some(Relay {
            owner: owner.to_owned(),
            key,
            seq_out: 1,
            inbound,
        });
    }

    fn on_relay(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Frame(text) => self.push(Message::text(text)),
            Inbound::Closed { code, reason } => {
                self.relay = None;
                match code {
                    Some(code) => self.close(code, &reason),
                    None => self.close(CLOSE_GOING_AWAY, &reason),
                }
            }
            Inbound::PeerLost(why) => {
                tracing::info!(session = self.handle.session_id, "room owner lost: {why}");
                if let Some(relay) = self.relay.take() {
                    if let Some(fwd) = self.state.cluster.forwarder() {
                        fwd.close(&relay.owner, &relay.key, None, &why);
                    }
                }
                self.send(
                    ServerMessage::Reconnect {
                        reason: ReconnectReason::OwnerLost,
                        retry_after_ms: 500,
                    },
                    None,
                );
                self.close(CLOSE_GOING_AWAY, "room owner lost");
            }
        }
    }

    fn grants(&self) -> &Grants {
        // dispatch() runs only after authentication set the grants.
        self.grants.as_ref().expect("authenticated before dispatch")
    }

    /// Which room a room-scoped message is for: its `roomName`, else the one
    /// room the session is in, else the token's single room.
    fn resolve_room(&self, message: &ClientMessage) -> Result<String, Reject> {
        if let Some(r) = message.room_name() {
            return Ok(r.to_owned());
        }
        if self.rooms.len() == 1 {
            if let Some(r) = self.rooms.keys().next() {
                return Ok(r.clone());
            }
        }
        if let RoomScope::Only(list) = &self.grants().rooms {
            if let [only] = list.as_slice() {
                return Ok(only.clone());
            }
        }
        Err(reject(ErrorCode::BadRequest, "missing field `roomName`"))
    }

    async fn dispatch(
        &mut self,
        message: ClientMessage,
        rid: Option<&RequestId>,
    ) -> Result<(), Reject> {
        match message {
            ClientMessage::Auth { .. } => {
                Err(reject(ErrorCode::BadRequest, "already authenticated"))
            }
            ClientMessage::Ping => {
                self.send(ServerMessage::Pong, rid);
                Ok(())
            }
            ClientMessage::Join { room_name } => self.join(&room_name, rid).await.map(|_| ()),
            ClientMessage::Leave { room_name } => {
                self.leave(&room_name).await;
                self.send(ServerMessage::Left { room_name }, rid);
                Ok(())
            }
            message => {
                let room = self.resolve_room(&message)?;
                if !self.rooms.contains_key(&room) {
                    self.join(&room, None).await?;
                }
                self.room_message(&room, message, rid).await
            }
        }
    }

    /// Joins a room (explicitly, or implicitly before a room-scoped message).
    async fn join(&mut self, room_name: &str, rid: Option<&RequestId>) -> Result<(), Reject> {
        let grants = self.grants();
        if !grants.allows_room(room_name) {
            return Err(reject(
                ErrorCode::Forbidden,
                format!("the token does not allow room `{room_name}`"),
            ));
        }
        let (pid, username) = (grants.participant_id.clone(), grants.username.clone());
        // Quotas: rooms per connection, rooms per identity. A join of a
        // room this connection is in already takes nothing new.
        let quota = if self.rooms.contains_key(room_name) {
            None
        } else {
            let per_conn = self.state.config.limits.max_rooms_per_connection;
            if self.rooms.len() >= per_conn {
                return Err(reject(
                    ErrorCode::QuotaExceeded,
                    format!("this connection is in {per_conn} rooms, its limit (MAX_ROOMS_PER_CONNECTION); leave one first"),
                ));
            }
            Some(
                self.state
                    .quotas
                    .take(&pid, Kind::Room)
                    .map_err(|e| reject(ErrorCode::QuotaExceeded, e))?,
            )
        };
        let joined = self
            .state
            .rooms
            .join(room_name, &pid, &username, &self.handle)
            .await
            .map_err(|e| match e {
                JoinError::Draining => reject(ErrorCode::Draining, e.to_string()),
                JoinError::RoomFull(_) | JoinError::TooManyRooms(_) | JoinError::AtCapacity(_) => {
                    reject(ErrorCode::RoomFull, e.to_string())
                }
                // A session with no room here becomes a relay to the owner;
                // one with rooms here cannot also relay (one owner per
                // connection).
                JoinError::OwnedElsewhere { ref node_id, .. }
                    if self.rooms.is_empty() && self.state.cluster.forwarder().is_some() =>
                {
                    Reject {
                        forward_to: Some(node_id.clone()),
                        ..reject(ErrorCode::Internal, e.to_string())
                    }
                }
                JoinError::OwnedElsewhere { .. } => reject(
                    ErrorCode::Internal,
                    format!("{e}; this connection is in rooms of this node, so it cannot be forwarded there: use another connection"),
                ),
                JoinError::Cluster(_) => reject(ErrorCode::Internal, e.to_string()),
            })?;
        self.rooms
            .entry(room_name.to_owned())
            .or_insert_with(|| RoomSession {
                room: Arc::clone(&joined.room),
                publisher: None,
                subscriber: None,
                _quota: quota,
                missing_reported: std::collections::HashSet::new(),
            });
        self.send(
            ServerMessage::Joined {
                room_name: room_name.to_owned(),
                participant_id: pid,
                participants: joined.participants,
                publishers: joined.publishers,
            },
            rid,
        );
        Ok(())
    }

    async fn leave(&mut self, room_name: &str) {
        if let Some(rs) = self.rooms.remove(room_name) {
            // Dropping the handles stops the media actors and closes transports.
            drop(rs.publisher);
            drop(rs.subscriber);
            let pid = self.grants().participant_id.clone();
            self.state
                .rooms
                .leave(&rs.room, &pid, self.handle.session_id)
                .await;
        }
    }

    async fn leave_all(&mut self) {
        if self.grants.is_none() {
            return;
        }
        let names: Vec<String> = self.rooms.keys().cloned().collect();
        for name in names {
            self.leave(&name).await;
        }
    }

    async fn room_message(
        &mut self,
        room: &str,
        message: ClientMessage,
        rid: Option<&RequestId>,
    ) -> Result<(), Reject> {
        let grants = self.grants().clone();
        let media_tx = self.media_tx.clone();
        let session_id = self.handle.session_id;
        let rs = self
            .rooms
            .get_mut(room)
            .ok_or_else(|| reject(ErrorCode::Internal, "room state missing after join"))?;
        let busy = |e: SendError| match e {
            SendError::Busy => reject(
                ErrorCode::RateLimited,
                "media requests are arriving faster than they can be handled",
            ),
            SendError::Closed => reject(
                ErrorCode::Internal,
                "the media task for this room has stopped",
            ),
        };
        match message {
            ClientMessage::PublishOffer { offer, .. } => {
                require(grants.can_publish, "publishing")?;
                let max = self.state.config.limits.max_tracks_per_publisher;
                let sections = offer.lines().filter(|l| l.starts_with("m=")).count();
                if sections > max {
                    return Err(reject(
                        ErrorCode::QuotaExceeded,
                        format!("the offer has {sections} media sections; the limit is {max} (MAX_TRACKS_PER_PUBLISHER)"),
                    ));
                }
                let tracks =
                    offered_tracks(&offer).map_err(|e| reject(ErrorCode::BadRequest, e))?;
                rs.room
                    .claim_tracks(
                        &grants.participant_id,
                        session_id,
                        tracks.into_iter().map(|t| t.track_id).collect(),
                    )
                    .map_err(|e| reject(ErrorCode::BadRequest, e))?;
                let p = publisher(rs, room, media_tx).await;
                p.offer(offer, rid.cloned()).map_err(busy)
            }
            ClientMessage::PublishIceCandidate { candidate, .. } => {
                require(grants.can_publish, "publishing")?;
                let p = publisher(rs, room, media_tx).await;
                p.candidate(candidate).map_err(busy)
            }
            ClientMessage::Unpublish { .. } => {
                if rs.publisher.take().is_some() {
                    rs.room
                        .set_live_tracks(&grants.participant_id, session_id, Vec::new());
                }
                Ok(())
            }
            ClientMessage::SubscribeRequest { publisher_id, .. } => {
                require(grants.can_subscribe, "subscribing")?;
                let tracks = rs.room.publisher_tracks(&publisher_id).ok_or_else(|| {
                    reject(
                        ErrorCode::NotFound,
                        format!("publisher `{publisher_id}` is not publishing in room `{room}`"),
                    )
                })?;
                let s = subscriber(rs, room, media_tx).await;
                s.subscribe(publisher_id, tracks, rid.cloned())
                    .map_err(busy)
            }
            ClientMessage::SubscribeAnswer { answer, .. } => {
                require(grants.can_subscribe, "subscribing")?;
                let s = rs.subscriber.as_ref().ok_or_else(|| {
                    reject(
                        ErrorCode::BadRequest,
                        "no subscribe offer is waiting for an answer",
                    )
                })?;
                s.answer(answer, rid.cloned()).map_err(busy)
            }
            ClientMessage::SubscribeIceCandidate { candidate, .. } => {
                require(grants.can_subscribe, "subscribing")?;
                let s = subscriber(rs, room, media_tx).await;
                s.candidate(candidate).map_err(busy)
            }
            ClientMessage::SubscribePrepare { offer, .. } => {
                require(grants.can_subscribe, "subscribing")?;
                let s = subscriber(rs, room, media_tx).await;
                s.prepare(offer, rid.cloned()).map_err(busy)
            }
            ClientMessage::Unsubscribe { publisher_id, .. } => {
                if let Some(s) = &rs.subscriber {
                    s.unsubscribe(publisher_id).map_err(busy)?;
                }
                Ok(())
            }
            ClientMessage::Chat { text, .. } => {
                let msg = ServerMessage::Chat {
                    room_name: room.to_owned(),
                    participant_id: grants.participant_id.clone(),
                    username: grants.username.clone(),
                    text,
                    ts: now_ms(),
                };
                rs.room.send_all(Some(&grants.participant_id), msg.clone());
                self.send(msg, rid);
                Ok(())
            }
            ClientMessage::Signal { to, data, .. } => {
                let msg = ServerMessage::Signal {
                    room_name: room.to_owned(),
                    from: grants.participant_id.clone(),
                    data,
                };
                if rs.room.send_to(&to, msg) {
                    Ok(())
                } else {
                    Err(reject(
                        ErrorCode::NotFound,
                        format!("participant `{to}` is not in room `{room}`"),
                    ))
                }
            }
            ClientMessage::Auth { .. }
            | ClientMessage::Ping
            | ClientMessage::Join { .. }
            | ClientMessage::Leave { .. } => Ok(()),
        }
    }

    async fn on_room_event(&mut self, ev: SessionEvent) {
        match ev {
            SessionEvent::Send(msg) => self.send(msg, None),
            SessionEvent::PublisherLeft { room, publisher_id } => {
                let sub = self.rooms.get(&room).and_then(|r| r.subscriber.clone());
                self.send(
                    ServerMessage::PublisherLeft {
                        room_name: room,
                        publisher_id: publisher_id.clone(),
                    },
                    None,
                );
                if let Some(s) = sub {
                    s.publisher_changed(publisher_id, None).await;
                }
            }
            SessionEvent::PublisherTracks {
                room,
                publisher_id,
                username,
                tracks,
            } => {
                let sub = self.rooms.get(&room).and_then(|r| r.subscriber.clone());
                self.send(
                    ServerMessage::NewPublisher {
                        room_name: room,
                        publisher_id: publisher_id.clone(),
                        username,
                        tracks: tracks.clone(),
                    },
                    None,
                );
                if let Some(s) = sub {
                    s.publisher_changed(publisher_id, Some(tracks)).await;
                }
            }
            SessionEvent::RoomMoved { room } => {
                // The room's membership is gone already; the client finds
                // the room where it lives now by reconnecting.
                self.rooms.remove(&room);
                self.send(
                    ServerMessage::Reconnect {
                        reason: ReconnectReason::RoomMoved,
                        retry_after_ms: 500,
                    },
                    None,
                );
                self.close(CLOSE_GOING_AWAY, "room moved to another node");
            }
            SessionEvent::TrackMissing { room, track_id } => {
                // Once per track: every subscriber of it may report it.
                let Some(rs) = self.rooms.get_mut(&room) else {
                    return;
                };
                if rs.publisher.is_none() || !rs.missing_reported.insert(track_id.clone()) {
                    return;
                }
                tracing::warn!(room = %room, track = %track_id, "a subscriber found no media for a published track; asking the client to reconnect");
                self.send(
                    ServerMessage::Reconnect {
                        reason: ReconnectReason::MediaLost,
                        retry_after_ms: 200,
                    },
                    None,
                );
            }
            SessionEvent::Replaced { room } => {
                // The newer session owns the membership now: only drop our side.
                if self.rooms.remove(&room).is_some() {
                    self.send_error(
                        reject(
                            ErrorCode::Replaced,
                            "the same participant joined this room from another connection",
                        ),
                        None,
                        Some(&room),
                        None,
                    );
                }
            }
        }
    }

    fn on_media_event(&mut self, ev: MediaEvent) {
        let room = match &ev {
            MediaEvent::PublishAnswer { room, .. }
            | MediaEvent::PublishCandidate { room, .. }
            | MediaEvent::PublishTracks { room, .. }
            | MediaEvent::PublishLost { room, .. }
            | MediaEvent::TrackMissing { room, .. }
            | MediaEvent::SubscribeOffer { room, .. }
            | MediaEvent::SubscribeCandidate { room, .. }
            | MediaEvent::SubscribePrepareAnswer { room, .. }
            | MediaEvent::Error { room, .. } => room.clone(),
        };
        // Events of a room this session has left are stale.
        let Some(rs) = self.rooms.get(&room) else {
            return;
        };
        match ev {
            MediaEvent::PublishAnswer {
                answer, request_id, ..
            } => self.send(
                ServerMessage::PublishAnswer {
                    room_name: room,
                    answer,
                },
                request_id.as_ref(),
            ),
            MediaEvent::PublishCandidate { candidate, .. } => self.send(
                ServerMessage::PublishIceCandidate {
                    room_name: room,
                    candidate: Some(candidate),
                },
                None,
            ),
            MediaEvent::PublishLost { track_ids, .. } => {
                // Nothing on this side can revive the track: a fresh publish
                // PeerConnection can. Clients that follow `reconnect` (the
                // web library) do that by themselves; the socket stays open
                // for those that do not.
                tracing::warn!(room = %room, tracks = ?track_ids, "published tracks lost; asking the client to reconnect");
                self.send(
                    ServerMessage::Reconnect {
                        reason: ReconnectReason::MediaLost,
                        retry_after_ms: 200,
                    },
                    None,
                );
            }
            MediaEvent::TrackMissing {
                publisher_id,
                track_id,
                ..
            } => rs
                .room
                .report_missing_track(&room, &publisher_id, &track_id),
            MediaEvent::PublishTracks { tracks, .. } => {
                if rs.publisher.is_some() {
                    let pid = self.grants().participant_id.clone();
                    rs.room
                        .set_live_tracks(&pid, self.handle.session_id, tracks);
                }
            }
            MediaEvent::SubscribeOffer {
                publisher_id,
                offer,
                tracks,
                request_id,
                ..
            } => self.send(
                ServerMessage::SubscribeOffer {
                    room_name: room,
                    publisher_id,
                    offer,
                    tracks,
                },
                request_id.as_ref(),
            ),
            MediaEvent::SubscribeCandidate { candidate, .. } => self.send(
                ServerMessage::SubscribeIceCandidate {
                    room_name: room,
                    candidate: Some(candidate),
                },
                None,
            ),
            MediaEvent::SubscribePrepareAnswer {
                answer, request_id, ..
            } => self.send(
                ServerMessage::SubscribePrepareAnswer {
                    room_name: room,
                    answer,
                },
                request_id.as_ref(),
            ),
            MediaEvent::Error {
                code,
                message,
                request_type,
                request_id,
                ..
            } => self.send_error(
                reject(code, message),
                Some(request_type),
                Some(&room),
                request_id.as_ref(),
            ),
        }
    }
}

async fn publisher(
    rs: &mut RoomSession,
    room: &str,
    tx: mpsc::Sender<MediaEvent>,
) -> PublisherHandle {
    if let Some(p) = &rs.publisher {
        return p.clone();
    }
    let p = rs.room.media().await.publisher(room, tx);
    rs.publisher = Some(p.clone());
    p
}

async fn subscriber(
    rs: &mut RoomSession,
    room: &str,
    tx: mpsc::Sender<MediaEvent>,
) -> SubscriberHandle {
    if let Some(s) = &rs.subscriber {
        return s.clone();
    }
    let s = rs.room.media().await.subscriber(room, tx);
    rs.subscriber = Some(s.clone());
    s
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
