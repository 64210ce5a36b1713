//! What an administrator sees of the rooms of this node and does to them
//! (the admin API, `src/admin/`): views of rooms and members, removing a
//! participant, closing a room, muting tracks server-side, messages from
//! the system.
//!
//! **Muting** happens here, in the room, not in the media layer: a muted
//! track is left out of what the room announces for its publisher. The
//! others get `new-publisher` without it (`publisher-left` when nothing is
//! left), their subscribe actors stop forwarding it exactly as when a
//! publisher withdraws a track (rheomesh's subscriber for that track is
//! closed, its forwarding slot freed), and a `subscribe-request` no longer
//! finds it. The publisher's own PeerConnection is untouched (rheomesh has
//! no call to pause one incoming track, and closing the publish side would
//! take every track of the participant, and its renegotiation with it): its
//! media still reaches the server and goes nowhere. Unmuting announces the
//! track again and the subscribers' actors take it back.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use signaling::{KickReason, ServerMessage, TrackKind};

use super::{Member, Room, RoomEvent, Rooms, SessionEvent};

/// Why an admin operation found nothing to act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The room is not open on this node.
    #[error("room `{0}` is not open")]
    NoRoom(String),
    /// The participant is not in the room.
    #[error("participant `{participant}` is not in room `{room}`")]
    NoParticipant {
        /// Room.
        room: String,
        /// Participant.
        participant: String,
    },
    /// The participant publishes no such track.
    #[error("participant `{participant}` publishes no track `{track}`")]
    NoTrack {
        /// Participant.
        participant: String,
        /// Track id.
        track: String,
    },
}

/// One published track of a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackView {
    /// Track id.
    pub track_id: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// Muted by an administrator (not forwarded).
    pub muted: bool,
}

/// One participant of a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// Participant id (the token's `sub`).
    pub participant_id: String,
    /// Display name.
    pub username: String,
    /// Tracks whose media reaches the server.
    pub tracks: Vec<TrackView>,
}

/// One room of this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    /// Room name.
    pub name: String,
    /// The node that holds the room (filled in by the admin layer).
    #[serde(default)]
    pub node: String,
    /// Participants, by id.
    pub participants: Vec<MemberView>,
    /// Participants with published tracks.
    pub publishers: usize,
    /// Published tracks (muted ones included).
    pub tracks: usize,
}

fn track_views(m: &Member) -> Vec<TrackView> {
    m.published
        .iter()
        .map(|t| TrackView {
            track_id: t.track_id.clone(),
            kind: t.kind,
            muted: m.muted.contains(&t.track_id),
        })
        .collect()
}

impl Room {
    fn view(&self) -> RoomView {
        let members = self.lock();
        let mut participants: Vec<MemberView> = members
            .iter()
            .map(|(id, m)| MemberView {
                participant_id: id.clone(),
                username: m.username.clone(),
                tracks: track_views(m),
            })
            .collect();
        participants.sort_by(|a, b| a.participant_id.cmp(&b.participant_id));
        RoomView {
            name: self.name.clone(),
            node: String::new(),
            publishers: participants.iter().filter(|p| !p.tracks.is_empty()).count(),
            tracks: participants.iter().map(|p| p.tracks.len()).sum(),
            participants,
        }
    }
}

impl Rooms {
    fn room(&self, name: &str) -> Result<Arc<Room>, AdminError> {
        self.lock()
            .get(name)
            .cloned()
            .ok_or_else(|| AdminError::NoRoom(name.to_owned()))
    }

    /// Every room of this node, by name.
    pub fn views(&self) -> Vec<RoomView> {
        let rooms: Vec<Arc<Room>> = self.lock().values().cloned().collect();
        let mut views: Vec<RoomView> = rooms.iter().map(|r| r.view()).collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        views
    }

    /// One room of this node.
    pub fn view(&self, room: &str) -> Result<RoomView, AdminError> {
        Ok(self.room(room)?.view())
    }

    /// Where the rooms publish their events.
    pub fn events(&self) -> &super::EventBus {
        self.registry.events()
    }

    /// Removes a participant: its session gets `kicked` and closes its
    /// socket (leaving every room, as any closing socket does).
    pub fn kick(
        &self,
        room: &str,
        participant: &str,
        message: Option<String>,
    ) -> Result<(), AdminError> {
        let r = self.room(room)?;
        let members = r.lock();
        let m = members
            .get(participant)
            .ok_or_else(|| AdminError::NoParticipant {
                room: room.to_owned(),
                participant: participant.to_owned(),
            })?;
        m.session.deliver(SessionEvent::Kicked {
            room: room.to_owned(),
            reason: KickReason::Removed,
            message,
        });
        tracing::info!(%room, %participant, "participant removed by an administrator");
        Ok(())
    }

    /// Closes a room now: every member gets `kicked` (`room-closed`) and
    /// its socket closes; the room's media is closed and its lease given
    /// back. Returns how many participants were in it.
    pub async fn close(&self, room: &str, message: Option<String>) -> Result<usize, AdminError> {
        let Some(r) = self.lock().remove(room) else {
            return Err(AdminError::NoRoom(room.to_owned()));
        };
        let members: Vec<(String, Member)> = r.lock().drain().collect();
        for (id, m) in &members {
            m.session.deliver(SessionEvent::Kicked {
                room: room.to_owned(),
                reason: KickReason::RoomClosed,
                message: message.clone(),
            });
            if !m.live.is_empty() {
                r.events.emit(RoomEvent::TracksUnpublished {
                    room: room.to_owned(),
                    participant_id: id.clone(),
                });
            }
            r.events.emit(RoomEvent::ParticipantLeft {
                room: room.to_owned(),
                participant_id: id.clone(),
            });
        }
        r.events.emit(RoomEvent::RoomClosed {
            room: room.to_owned(),
        });
        if let Some(media) = r.media.get() {
            media.close().await;
        }
        if !self.lock().contains_key(room) {
            self.cluster.release_room(room).await;
        }
        tracing::info!(%room, members = members.len(), "room closed by an administrator");
        Ok(members.len())
    }

    /// Mutes (`muted`) or unmutes tracks of a participant: the given ids,
    /// or every track it publishes when `None`. Returns its tracks after.
    pub fn mute(
        &self,
        room: &str,
        participant: &str,
        track_ids: Option<&[String]>,
        muted: bool,
    ) -> Result<Vec<TrackView>, AdminError> {
        let r = self.room(room)?;
        let mut members = r.lock();
        let m = members
            .get_mut(participant)
            .ok_or_else(|| AdminError::NoParticipant {
                room: room.to_owned(),
                participant: participant.to_owned(),
            })?;
        let ids: Vec<String> = match track_ids {
            Some(ids) => {
                if let Some(t) = ids
                    .iter()
                    .find(|t| !m.published.iter().any(|p| &p.track_id == *t))
                {
                    return Err(AdminError::NoTrack {
                        participant: participant.to_owned(),
                        track: t.clone(),
                    });
                }
                ids.to_vec()
            }
            None => m.published.iter().map(|t| t.track_id.clone()).collect(),
        };
        for id in ids {
            if muted {
                m.muted.insert(id);
            } else {
                m.muted.remove(&id);
            }
        }
        // The publisher is not told (its media still flows to the server);
        // everyone else hears the change.
        r.announce(&mut members, participant, Some(participant));
        tracing::info!(%room, %participant, muted, "tracks muted by an administrator");
        Ok(members
            .get(participant)
            .map(track_views)
            .unwrap_or_default())
    }

    /// A chat message from the system to everyone in the room
    /// (`participantId` empty: no token has an empty `sub`).
    pub fn system_chat(&self, room: &str, username: &str, text: String) -> Result<(), AdminError> {
        let r = self.room(room)?;
        r.send_all(
            None,
            ServerMessage::Chat {
                room_name: room.to_owned(),
                participant_id: String::new(),
                username: username.to_owned(),
                text,
                ts: super::events::now_ms(),
            },
        );
        Ok(())
    }

    /// A `signal` from the system (`from` empty) to one participant, or to
    /// everyone in the room when `to` is `None`.
    pub fn system_signal(
        &self,
        room: &str,
        to: Option<&str>,
        data: serde_json::Value,
    ) -> Result<(), AdminError> {
        let r = self.room(room)?;
        let msg = ServerMessage::Signal {
            room_name: room.to_owned(),
            from: String::new(),
            data,
        };
        match to {
            Some(p) => {
                if r.send_to(p, msg) {
                    Ok(())
                } else {
                    Err(AdminError::NoParticipant {
                        room: room.to_owned(),
                        participant: p.to_owned(),
                    })
                }
            }
            None => {
                r.send_all(None, msg);
                Ok(())
            }
        }
    }
}
