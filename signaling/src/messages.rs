//! Message types. Field `type` (kebab-case) selects the message; other fields
//! are camelCase.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::de::{de_candidate, de_id, de_opt_id, de_sdp};
use crate::types::{
    CandidateInit, ErrorCode, ParticipantInfo, PublisherInfo, ReconnectReason, RequestId, TrackInfo,
};

/// Everything a client may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ClientMessage {
    /// Authenticate with a JWT.
    Auth {
        /// The JWT.
        token: String,
    },
    /// Join a room.
    #[serde(rename_all = "camelCase")]
    Join {
        /// Room to join.
        room_name: String,
    },
    /// Leave a room.
    #[serde(rename_all = "camelCase")]
    Leave {
        /// Room to leave.
        room_name: String,
    },
    /// Offer of the client's publish PeerConnection.
    #[serde(rename_all = "camelCase")]
    PublishOffer {
        /// Room; may be omitted when the session is in exactly one room.
        #[serde(default)]
        room_name: Option<String>,
        /// SDP offer (string or `{type, sdp}`).
        #[serde(deserialize_with = "de_sdp")]
        offer: String,
    },
    /// Trickled candidate of the publish PeerConnection; `None` = end of candidates.
    #[serde(rename_all = "camelCase")]
    PublishIceCandidate {
        /// Room; may be omitted when the session is in exactly one room.
        #[serde(default)]
        room_name: Option<String>,
        /// Candidate (object, bare string, null or empty).
        #[serde(default, deserialize_with = "de_candidate")]
        candidate: Option<CandidateInit>,
    },
    /// Stop publishing.
    #[serde(rename_all = "camelCase")]
    Unpublish {
        /// Room.
        #[serde(default)]
        room_name: Option<String>,
    },
    /// Subscribe to every track of a publisher.
    #[serde(rename_all = "camelCase")]
    SubscribeRequest {
        /// Room.
        #[serde(default)]
        room_name: Option<String>,
        /// Publisher (string or number).
        #[serde(deserialize_with = "de_id")]
        publisher_id: String,
    },
    /// Answer to a `subscribe-offer`.
    #[serde(rename_all = "camelCase")]
    SubscribeAnswer {
        /// Room.
        #[serde(default)]
        room_name: Option<String>,
        /// The publisher named in the offer (informational).
        #[serde(default, deserialize_with = "de_opt_id")]
        publisher_id: Option<String>,
        /// SDP answer (string or `{type, sdp}`).
        #[serde(deserialize_with = "de_sdp")]
        answer: String,
    },
    /// Trickled candidate of the subscribe PeerConnection.
    #[serde(rename_all = "camelCase")]
    SubscribeIceCandidate {
        /// Room.
        #[serde(default)]
        room_name: Option<String>,
        /// Candidate (object, bare string, null or empty).
        #[serde(default, deserialize_with = "de_candidate")]
        candidate: Option<CandidateInit>,
    },
    /// Client-created subscribe PeerConnection (one data channel), see PROTOCOL.md.
    #[serde(rename_all = "camelCase")]
    SubscribePrepare {
        /// Room.
        #[serde(default)]
        room_name: Option<String>,
        /// SDP offer.
        #[serde(deserialize_with = "de_sdp")]
        offer: String,
    },
    /// Stop receiving a publisher.
    #[serde(rename_all = "camelCase")]
    Unsubscribe {
        /// Room.
        #[serde(default)]
        room_name: Option<String>,
        /// Publisher (string or number).
        #[serde(deserialize_with = "de_id")]
        publisher_id: String,
    },
    /// Chat to the room.
    #[serde(rename_all = "camelCase")]
    Chat {
        /// Room.
        #[serde(default)]
        room_name: Option<String>,
        /// 1–4096 characters.
        text: String,
    },
    /// Relay of peer-to-peer signaling to one participant.
    #[serde(rename_all = "camelCase")]
    Signal {
        /// Room.
        #[serde(default)]
        room_name: Option<String>,
        /// Target participant (string or number).
        #[serde(deserialize_with = "de_id")]
        to: String,
        /// Any JSON.
        #[serde(default)]
        data: Value,
    },
    /// Application-level ping.
    Ping,
}

impl ClientMessage {
    /// The wire `type` of this message.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientMessage::Auth { .. } => "auth",
            ClientMessage::Join { .. } => "join",
            ClientMessage::Leave { .. } => "leave",
            ClientMessage::PublishOffer { .. } => "publish-offer",
            ClientMessage::PublishIceCandidate { .. } => "publish-ice-candidate",
            ClientMessage::Unpublish { .. } => "unpublish",
            ClientMessage::SubscribeRequest { .. } => "subscribe-request",
            ClientMessage::SubscribeAnswer { .. } => "subscribe-answer",
            ClientMessage::SubscribeIceCandidate { .. } => "subscribe-ice-candidate",
            ClientMessage::SubscribePrepare { .. } => "subscribe-prepare",
            ClientMessage::Unsubscribe { .. } => "unsubscribe",
            ClientMessage::Chat { .. } => "chat",
            ClientMessage::Signal { .. } => "signal",
            ClientMessage::Ping => "ping",
        }
    }

    /// The room this message names, if any (`join`/`leave` always name one).
    pub fn room_name(&self) -> Option<&str> {
        match self {
            ClientMessage::Join { room_name } | ClientMessage::Leave { room_name } => {
                Some(room_name)
            }
            ClientMessage::PublishOffer { room_name, .. }
            | ClientMessage::PublishIceCandidate { room_name, .. }
            | ClientMessage::Unpublish { room_name }
            | ClientMessage::SubscribeRequest { room_name, .. }
            | ClientMessage::SubscribeAnswer { room_name, .. }
            | ClientMessage::SubscribeIceCandidate { room_name, .. }
            | ClientMessage::SubscribePrepare { room_name, .. }
            | ClientMessage::Unsubscribe { room_name, .. }
            | ClientMessage::Chat { room_name, .. }
            | ClientMessage::Signal { room_name, .. } => room_name.as_deref(),
            ClientMessage::Auth { .. } | ClientMessage::Ping => None,
        }
    }

    /// Whether the message is scoped to a room (and so joins it implicitly).
    pub fn is_room_scoped(&self) -> bool {
        !matches!(
            self,
            ClientMessage::Auth { .. } | ClientMessage::Ping | ClientMessage::Join { .. }
        )
    }
}

/// Everything the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage {
    /// Authentication succeeded.
    #[serde(rename_all = "camelCase")]
    AuthOk {
        /// The token's `sub`.
        participant_id: String,
        /// Display name.
        username: String,
        /// Protocol version.
        protocol: u32,
        /// Node that serves this connection.
        node_id: String,
    },
    /// Reply to `join` (or sent before the reply of an implicitly joining message).
    #[serde(rename_all = "camelCase")]
    Joined {
        /// Room.
        room_name: String,
        /// Own participant id.
        participant_id: String,
        /// Others already in the room.
        participants: Vec<ParticipantInfo>,
        /// Publishers whose media already flows.
        publishers: Vec<PublisherInfo>,
    },
    /// Reply to `leave`.
    #[serde(rename_all = "camelCase")]
    Left {
        /// Room.
        room_name: String,
    },
    /// Someone joined a room this session is in.
    #[serde(rename_all = "camelCase")]
    ParticipantJoined {
        /// Room.
        room_name: String,
        /// Who.
        participant_id: String,
        /// Display name.
        username: String,
    },
    /// Someone left.
    #[serde(rename_all = "camelCase")]
    ParticipantLeft {
        /// Room.
        room_name: String,
        /// Who.
        participant_id: String,
    },
    /// Answer to `publish-offer`.
    #[serde(rename_all = "camelCase")]
    PublishAnswer {
        /// Room.
        room_name: String,
        /// SDP answer.
        answer: String,
    },
    /// Server candidate of the publish PeerConnection.
    #[serde(rename_all = "camelCase")]
    PublishIceCandidate {
        /// Room.
        room_name: String,
        /// Candidate; `None` = end of candidates.
        candidate: Option<CandidateInit>,
    },
    /// A publisher's media reached the server, or its tracks changed (complete list).
    #[serde(rename_all = "camelCase")]
    NewPublisher {
        /// Room.
        room_name: String,
        /// The publisher's participant id.
        publisher_id: String,
        /// Display name.
        username: String,
        /// All its tracks.
        tracks: Vec<TrackInfo>,
    },
    /// A publisher unpublished, left or disconnected.
    #[serde(rename_all = "camelCase")]
    PublisherLeft {
        /// Room.
        room_name: String,
        /// The publisher's participant id.
        publisher_id: String,
    },
    /// Offer of the server's subscribe PeerConnection.
    #[serde(rename_all = "camelCase")]
    SubscribeOffer {
        /// Room.
        room_name: String,
        /// The publisher this offer is about.
        publisher_id: String,
        /// SDP offer.
        offer: String,
        /// The publisher's tracks carried by this PeerConnection.
        tracks: Vec<TrackInfo>,
    },
    /// Server candidate of the subscribe PeerConnection.
    #[serde(rename_all = "camelCase")]
    SubscribeIceCandidate {
        /// Room.
        room_name: String,
        /// Candidate; `None` = end of candidates.
        candidate: Option<CandidateInit>,
    },
    /// Answer to `subscribe-prepare`.
    #[serde(rename_all = "camelCase")]
    SubscribePrepareAnswer {
        /// Room.
        room_name: String,
        /// SDP answer.
        answer: String,
    },
    /// Chat message (to everyone in the room, sender included).
    #[serde(rename_all = "camelCase")]
    Chat {
        /// Room.
        room_name: String,
        /// Sender.
        participant_id: String,
        /// Sender's display name.
        username: String,
        /// Text.
        text: String,
        /// Server time, milliseconds since the Unix epoch.
        ts: u64,
    },
    /// Relayed peer-to-peer signaling.
    #[serde(rename_all = "camelCase")]
    Signal {
        /// Room.
        room_name: String,
        /// Sender.
        from: String,
        /// Any JSON.
        data: Value,
    },
    /// Reply to `ping`.
    Pong,
    /// Reconnect (to the same URL) and publish/subscribe again.
    #[serde(rename_all = "camelCase")]
    Reconnect {
        /// Why.
        reason: ReconnectReason,
        /// Suggested delay before reconnecting.
        retry_after_ms: u64,
    },
    /// Something went wrong.
    #[serde(rename_all = "camelCase")]
    Error {
        /// Error code.
        code: ErrorCode,
        /// Human-readable reason.
        message: String,
        /// `type` of the message that caused it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_type: Option<String>,
        /// Room of the message that caused it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room_name: Option<String>,
    },
}

impl ServerMessage {
    /// Builds an `error`.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
            request_type: None,
            room_name: None,
        }
    }

    /// The wire `type` of this message.
    pub fn type_name(&self) -> &'static str {
        match self {
            ServerMessage::AuthOk { .. } => "auth-ok",
            ServerMessage::Joined { .. } => "joined",
            ServerMessage::Left { .. } => "left",
            ServerMessage::ParticipantJoined { .. } => "participant-joined",
            ServerMessage::ParticipantLeft { .. } => "participant-left",
            ServerMessage::PublishAnswer { .. } => "publish-answer",
            ServerMessage::PublishIceCandidate { .. } => "publish-ice-candidate",
            ServerMessage::NewPublisher { .. } => "new-publisher",
            ServerMessage::PublisherLeft { .. } => "publisher-left",
            ServerMessage::SubscribeOffer { .. } => "subscribe-offer",
            ServerMessage::SubscribeIceCandidate { .. } => "subscribe-ice-candidate",
            ServerMessage::SubscribePrepareAnswer { .. } => "subscribe-prepare-answer",
            ServerMessage::Chat { .. } => "chat",
            ServerMessage::Signal { .. } => "signal",
            ServerMessage::Pong => "pong",
            ServerMessage::Reconnect { .. } => "reconnect",
            ServerMessage::Error { .. } => "error",
        }
    }

    /// Serializes to one JSON text frame, adding `requestId` when given.
    pub fn to_json(&self, request_id: Option<&RequestId>) -> String {
        let mut value = match serde_json::to_value(self) {
            Ok(v) => v,
            // Every field is a plain string/number/Value: serialization cannot fail.
            Err(e) => return format!(r#"{{"type":"error","code":"internal","message":"{e}"}}"#),
        };
        if let (Some(id), Value::Object(map)) = (request_id, &mut value) {
            map.insert("requestId".to_owned(), id.0.clone());
        }
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_reasons_are_kebab_case() {
        for (reason, text) in [
            (ReconnectReason::Draining, "draining"),
            (ReconnectReason::OwnerLost, "owner-lost"),
            (ReconnectReason::RoomMoved, "room-moved"),
            (ReconnectReason::MediaLost, "media-lost"),
        ] {
            let json = ServerMessage::Reconnect {
                reason,
                retry_after_ms: 200,
            }
            .to_json(None);
            let v: Value = serde_json::from_str(&json).expect("valid JSON");
            assert_eq!(v["type"], "reconnect");
            assert_eq!(v["reason"], text);
            assert_eq!(v["retryAfterMs"], 200);
        }
    }
}
