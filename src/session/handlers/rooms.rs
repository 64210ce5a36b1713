//! `join` and `leave` (and the implicit join before a room-scoped message);
//! `ping` is answered in the dispatch.

use std::collections::HashSet;
use std::sync::Arc;

use signaling::{ErrorCode, ServerMessage};

use super::super::{reject, Reject, RoomSession, Session};
use crate::quota::Kind;
use crate::room::JoinError;

/// Where a joined room lives.
pub(in crate::session) enum Joined {
    /// On this node: the `joined` reply.
    Here(ServerMessage),
    /// On another node (its id): the session becomes a relay to it.
    Elsewhere(String),
}

impl Session {
    /// Joins a room (explicitly, or implicitly before a room-scoped message).
    pub(super) async fn join(&mut self, room_name: &str) -> Result<Joined, Reject> {
        let grants = self
            .grants
            .as_ref()
            .ok_or_else(|| reject(ErrorCode::Unauthorized, "authenticate first (send auth)"))?;
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
        let joined = match self
            .state
            .rooms
            .join(room_name, &pid, &username, &self.handle)
            .await
        {
            Ok(joined) => joined,
            // A session with no room here becomes a relay to the owner;
            // one with rooms here cannot also relay (one owner per
            // connection).
            Err(JoinError::OwnedElsewhere { node_id, .. }) if self.rooms.is_empty() => {
                return Ok(Joined::Elsewhere(node_id));
            }
            Err(e) => return Err(join_error(e)),
        };
        self.rooms
            .entry(room_name.to_owned())
            .or_insert_with(|| RoomSession {
                room: Arc::clone(&joined.room),
                publisher: None,
                subscriber: None,
                _quota: quota,
                missing_reported: HashSet::new(),
            });
        Ok(Joined::Here(ServerMessage::Joined {
            room_name: room_name.to_owned(),
            participant_id: pid,
            participants: joined.participants,
            publishers: joined.publishers,
        }))
    }

    pub(super) async fn leave(&mut self, room_name: &str) {
        if let Some(rs) = self.rooms.remove(room_name) {
            // Dropping the handles stops the media actors and closes transports.
            drop(rs.publisher);
            drop(rs.subscriber);
            let Some(pid) = self.grants.as_ref().map(|g| g.participant_id.clone()) else {
                return;
            };
            self.state
                .rooms
                .leave(&rs.room, &pid, self.handle.session_id)
                .await;
        }
    }

    /// Leaves every room (the session ends).
    pub(in crate::session) async fn leave_all(&mut self) {
        if self.grants.is_none() {
            return;
        }
        let names: Vec<String> = self.rooms.keys().cloned().collect();
        for name in names {
            self.leave(&name).await;
        }
    }
}

fn join_error(e: JoinError) -> Reject {
    match e {
        JoinError::Draining => reject(ErrorCode::Draining, e.to_string()),
        JoinError::RoomFull(_) | JoinError::TooManyRooms(_) | JoinError::AtCapacity(_) => {
            reject(ErrorCode::RoomFull, e.to_string())
        }
        JoinError::OwnedElsewhere { .. } => reject(
            ErrorCode::Internal,
            format!("{e}; this connection is in rooms of this node, so it cannot be forwarded there: use another connection"),
        ),
        JoinError::Cluster(_) => reject(ErrorCode::Internal, e.to_string()),
    }
}
