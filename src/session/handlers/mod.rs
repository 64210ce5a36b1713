//! Client messages, one dispatch: every message type is matched once in
//! [`Session::dispatch`] and handled in the file of its concern:
//!
//! | messages | file |
//! |---|---|
//! | `auth` | [`auth`] |
//! | `ping`, `join`, `leave` | [`rooms`] |
//! | `publish-offer`, `publish-ice-candidate`, `unpublish` | [`publish`] |
//! | `subscribe-request`, `subscribe-answer`, `subscribe-ice-candidate`, `subscribe-prepare`, `unsubscribe` | [`subscribe`] |
//! | `chat`, `signal` | [`chat`] |
//! | `get-ice-servers` (and the ICE servers of `auth-ok`) | [`ice`] |
//!
//! A handler answers with an [`Outcome`] (nothing, or a reply that carries
//! the request's `requestId`) or a [`Reject`] (an `error` message).

mod auth;
mod chat;
mod ice;
mod publish;
mod rooms;
mod subscribe;

use std::sync::Arc;

use signaling::{parse_client_message, ClientMessage, ErrorCode, Parsed, RequestId, ServerMessage};
use tokio::sync::mpsc;

use super::{reject, Reject, RoomSession, Session};
use crate::auth::{Grants, RoomScope};
use crate::config::Limits;
use crate::media::{MediaEvent, SendError};

pub(super) use rooms::Joined;

/// What a handled message leads to.
pub(super) enum Outcome {
    /// Handled; the reply, if any, was sent or is not needed.
    Done,
    /// Handled; send this reply (with the request's `requestId`).
    Reply(ServerMessage),
    /// The room lives on another node (this id): from now on the session
    /// is relayed there, starting with this message.
    Forward(String),
}

/// What a room-scoped handler works with: the session's state in that room.
pub(super) struct RoomCtx<'a> {
    pub room: &'a str,
    pub rs: &'a mut RoomSession,
    pub grants: &'a Grants,
    pub limits: &'a Limits,
    pub media_tx: &'a mpsc::Sender<MediaEvent>,
    pub session_id: u64,
}

/// `forbidden` unless the token grants the action.
pub(super) fn require(granted: bool, action: &str) -> Result<(), Reject> {
    if granted {
        Ok(())
    } else {
        Err(reject(
            ErrorCode::Forbidden,
            format!("the token does not allow {action}"),
        ))
    }
}

/// A media actor that cannot take the request: its queue is full, or it
/// stopped.
pub(super) fn busy(e: SendError) -> Reject {
    match e {
        SendError::Busy => reject(
            ErrorCode::RateLimited,
            "media requests are arriving faster than they can be handled",
        ),
        SendError::Closed => reject(
            ErrorCode::Internal,
            "the media task for this room has stopped",
        ),
    }
}

impl Session {
    /// One text frame from the client.
    pub(super) async fn on_text(&mut self, text: &str) {
        if self.relay.is_some() {
            return self.relay_frame(text);
        }
        let Parsed {
            request_id,
            message,
        } = match parse_client_message(text) {
            Ok(p) => p,
            Err(e) => {
                crate::metrics::message_received("invalid");
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
        crate::metrics::message_received(ty);
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
        match self.dispatch(message, rid).await {
            Ok(Outcome::Done) => {}
            Ok(Outcome::Reply(reply)) => self.send(reply, rid),
            Ok(Outcome::Forward(owner)) => self.start_relay(&owner, text),
            Err(r) => self.send_error(r, Some(ty), room_hint.as_deref(), rid),
        }
    }

    /// The one place every message type of an authenticated session is
    /// routed to its handler.
    async fn dispatch(
        &mut self,
        message: ClientMessage,
        rid: Option<&RequestId>,
    ) -> Result<Outcome, Reject> {
        use ClientMessage as M;
        let room = match &message {
            M::Auth { .. } => return Err(reject(ErrorCode::BadRequest, "already authenticated")),
            M::Ping => return Ok(Outcome::Reply(ServerMessage::Pong)),
            M::GetIceServers => return Ok(Outcome::Reply(self.ice_servers_message())),
            M::Join { room_name } => {
                return Ok(match self.join(room_name).await? {
                    Joined::Here(reply) => Outcome::Reply(reply),
                    Joined::Elsewhere(owner) => Outcome::Forward(owner),
                })
            }
            M::Leave { room_name } => {
                self.leave(room_name).await;
                let room_name = room_name.clone();
                return Ok(Outcome::Reply(ServerMessage::Left { room_name }));
            }
            // Everything else is room-scoped, and joins implicitly.
            message => self.resolve_room(message)?,
        };
        if !self.rooms.contains_key(&room) {
            match self.join(&room).await? {
                // The implicit join's `joined` carries no request id.
                Joined::Here(reply) => self.send(reply, None),
                Joined::Elsewhere(owner) => return Ok(Outcome::Forward(owner)),
            }
        }
        let limits = &self.state.config.limits;
        let grants = self
            .grants
            .as_ref()
            .ok_or_else(|| reject(ErrorCode::Unauthorized, "authenticate first (send auth)"))?;
        let rs = self
            .rooms
            .get_mut(&room)
            .ok_or_else(|| reject(ErrorCode::Internal, "room state missing after join"))?;
        let ctx = RoomCtx {
            room: &room,
            rs,
            grants,
            limits,
            media_tx: &self.media_tx,
            session_id: self.handle.session_id,
        };
        let rid = rid.cloned();
        match message {
            M::PublishOffer { offer, .. } => publish::offer(ctx, offer, rid).await,
            M::PublishIceCandidate { candidate, .. } => publish::candidate(ctx, candidate).await,
            M::Unpublish { .. } => publish::unpublish(ctx),
            M::SubscribeRequest { publisher_id, .. } => {
                subscribe::request(ctx, publisher_id, rid).await
            }
            M::SubscribeAnswer { answer, .. } => subscribe::answer(ctx, answer, rid),
            M::SubscribeIceCandidate { candidate, .. } => {
                subscribe::candidate(ctx, candidate).await
            }
            M::SubscribePrepare { offer, .. } => subscribe::prepare(ctx, offer, rid).await,
            M::Unsubscribe { publisher_id, .. } => subscribe::unsubscribe(ctx, publisher_id),
            M::Chat { text, .. } => chat::chat(ctx, text),
            M::Signal { to, data, .. } => chat::signal(ctx, to, data),
            // Handled above.
            M::Auth { .. } | M::Ping | M::GetIceServers | M::Join { .. } | M::Leave { .. } => {
                Ok(Outcome::Done)
            }
        }
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
        if let Some(RoomScope::Only(list)) = self.grants.as_ref().map(|g| &g.rooms) {
            if let [only] = list.as_slice() {
                return Ok(only.clone());
            }
        }
        Err(reject(ErrorCode::BadRequest, "missing field `roomName`"))
    }
}

/// The room's media actors of this session, started on first use.
impl RoomCtx<'_> {
    async fn publisher(&mut self) -> crate::media::PublisherHandle {
        if let Some(p) = &self.rs.publisher {
            return p.clone();
        }
        let media = self.rs.room.media().await;
        let span = tracing::debug_span!("publisher", participant = %self.grants.participant_id);
        let p = span.in_scope(|| media.publisher(self.room, self.media_tx.clone()));
        self.rs.publisher = Some(p.clone());
        p
    }

    async fn subscriber(&mut self) -> crate::media::SubscriberHandle {
        if let Some(s) = &self.rs.subscriber {
            return s.clone();
        }
        let media = self.rs.room.media().await;
        let span = tracing::debug_span!("subscriber", participant = %self.grants.participant_id);
        let s = span.in_scope(|| media.subscriber(self.room, self.media_tx.clone()));
        // From now on the room tells it about publishers' tracks.
        self.rs
            .room
            .attach_subscriber(&self.grants.participant_id, self.session_id, s.clone());
        self.rs.subscriber = Some(s.clone());
        s
    }

    fn room(&self) -> &Arc<crate::room::Room> {
        &self.rs.room
    }
}
