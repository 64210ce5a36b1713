//! What reaches the client besides answers: room events (members and
//! tracks coming and going, moves, replacements) and media events (answers,
//! offers and candidates from the media actors, lost tracks), translated
//! into protocol messages.

use signaling::{ReconnectReason, ServerMessage};

use super::{reject, Session};
use crate::media::{Failure, MediaEvent};
use crate::room::SessionEvent;
use signaling::close;
use signaling::ErrorCode;

impl Session {
    pub(super) fn on_room_event(&mut self, ev: SessionEvent) {
        match ev {
            SessionEvent::Send(msg) => self.send(msg, None),
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
                self.close(close::GOING_AWAY, "room moved to another node");
            }
            SessionEvent::Kicked {
                room,
                reason,
                message,
            } => {
                // A closed room's membership is gone already; a removed
                // participant leaves every room with the socket.
                if reason == signaling::KickReason::RoomClosed {
                    self.rooms.remove(&room);
                }
                self.send(
                    ServerMessage::Kicked {
                        room_name: room,
                        reason,
                        message,
                    },
                    None,
                );
                self.close(close::KICKED, "removed by an administrator");
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

    pub(super) fn on_media_event(&mut self, ev: MediaEvent) {
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
                if let (Some(_), Some(grants)) = (&rs.publisher, &self.grants) {
                    rs.room
                        .set_live_tracks(&grants.participant_id, self.handle.session_id, tracks);
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
                failure,
                message,
                request_type,
                request_id,
                ..
            } => self.send_error(
                reject(error_code(failure), message),
                Some(request_type.as_str()),
                Some(&room),
                request_id.as_ref(),
            ),
        }
    }
}

/// The protocol's code for a failed media request.
fn error_code(failure: Failure) -> ErrorCode {
    match failure {
        Failure::Rejected => ErrorCode::BadRequest,
        Failure::Missing => ErrorCode::NotFound,
        Failure::OverBudget => ErrorCode::RoomFull,
        Failure::Internal => ErrorCode::Internal,
    }
}
