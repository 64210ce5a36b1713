//! Message types. Field `type` (kebab-case) selects the message; other fields
//! are camelCase. Each variant names its `type` once, in `wire_enum!`'s
//! `Variant = "wire-name"`, which also gives [`ClientType`] / [`ServerType`]
//! and `type_name()`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::de::{de_candidate, de_id, de_opt_id, de_sdp};
use crate::macros::wire_enum;
use crate::types::{
    CandidateInit, ErrorCode, IceServer, KickReason, ParticipantInfo, PublisherInfo,
    ReconnectReason, RequestId, TrackInfo,
};

wire_enum! {
    /// Everything a client may send.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum ClientMessage {
        type ClientType;

        /// Authenticate with a JWT.
        Auth = "auth" {
            /// The JWT.
            token: String,
        },
        /// Join a room.
        #[serde(rename_all = "camelCase")]
        Join = "join" {
            /// Room to join.
            room_name: String,
        },
        /// Leave a room.
        #[serde(rename_all = "camelCase")]
        Leave = "leave" {
            /// Room to leave.
            room_name: String,
        },
        /// Offer of the client's publish PeerConnection.
        #[serde(rename_all = "camelCase")]
        PublishOffer = "publish-offer" {
            /// Room; may be omitted when the session is in exactly one room.
            #[serde(default)]
            room_name: Option<String>,
            /// SDP offer (string or `{type, sdp}`).
            #[serde(deserialize_with = "de_sdp")]
            offer: String,
        },
        /// Trickled candidate of the publish PeerConnection; `None` = end of candidates.
        #[serde(rename_all = "camelCase")]
        PublishIceCandidate = "publish-ice-candidate" {
            /// Room; may be omitted when the session is in exactly one room.
            #[serde(default)]
            room_name: Option<String>,
            /// Candidate (object, bare string, null or empty).
            #[serde(default, deserialize_with = "de_candidate")]
            candidate: Option<CandidateInit>,
        },
        /// Stop publishing.
        #[serde(rename_all = "camelCase")]
        Unpublish = "unpublish" {
            /// Room.
            #[serde(default)]
            room_name: Option<String>,
        },
        /// Subscribe to every track of a publisher.
        #[serde(rename_all = "camelCase")]
        SubscribeRequest = "subscribe-request" {
            /// Room.
            #[serde(default)]
            room_name: Option<String>,
            /// Publisher (string or number).
            #[serde(deserialize_with = "de_id")]
            publisher_id: String,
        },
        /// Answer to a `subscribe-offer`.
        #[serde(rename_all = "camelCase")]
        SubscribeAnswer = "subscribe-answer" {
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
        SubscribeIceCandidate = "subscribe-ice-candidate" {
            /// Room.
            #[serde(default)]
            room_name: Option<String>,
            /// Candidate (object, bare string, null or empty).
            #[serde(default, deserialize_with = "de_candidate")]
            candidate: Option<CandidateInit>,
        },
        /// Client-created subscribe PeerConnection (one data channel), see PROTOCOL.md.
        #[serde(rename_all = "camelCase")]
        SubscribePrepare = "subscribe-prepare" {
            /// Room.
            #[serde(default)]
            room_name: Option<String>,
            /// SDP offer.
            #[serde(deserialize_with = "de_sdp")]
            offer: String,
        },
        /// Stop receiving a publisher.
        #[serde(rename_all = "camelCase")]
        Unsubscribe = "unsubscribe" {
            /// Room.
            #[serde(default)]
            room_name: Option<String>,
            /// Publisher (string or number).
            #[serde(deserialize_with = "de_id")]
            publisher_id: String,
        },
        /// Chat to the room.
        #[serde(rename_all = "camelCase")]
        Chat = "chat" {
            /// Room.
            #[serde(default)]
            room_name: Option<String>,
            /// 1–4096 characters.
            text: String,
        },
        /// Relay of peer-to-peer signaling to one participant.
        #[serde(rename_all = "camelCase")]
        Signal = "signal" {
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
        Ping = "ping",
        /// Asks for fresh ICE servers (answered with `ice-servers`).
        GetIceServers = "get-ice-servers",
    }
}

impl ClientMessage {
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
            ClientMessage::Auth { .. } | ClientMessage::Ping | ClientMessage::GetIceServers => None,
        }
    }

    /// Whether the message is scoped to a room (and so joins it implicitly).
    pub fn is_room_scoped(&self) -> bool {
        !matches!(
            self,
            ClientMessage::Auth { .. }
                | ClientMessage::Ping
                | ClientMessage::Join { .. }
                | ClientMessage::GetIceServers
        )
    }
}

wire_enum! {
    /// Everything the server sends.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum ServerMessage {
        type ServerType;

        /// Authentication succeeded.
        #[serde(rename_all = "camelCase")]
        AuthOk = "auth-ok" {
            /// The token's `sub`.
            participant_id: String,
            /// Display name.
            username: String,
            /// Protocol version.
            protocol: u32,
            /// Node that serves this connection.
            node_id: String,
            /// ICE servers (TURN with time-limited credentials, STUN) for
            /// the client's PeerConnections; absent when the server has none.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            ice_servers: Option<Vec<IceServer>>,
            /// When their credentials expire (Unix seconds); fresh ones
            /// come in `ice-servers` before then.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            ice_servers_expire_at: Option<u64>,
        },
        /// Reply to `join` (or sent before the reply of an implicitly joining message).
        #[serde(rename_all = "camelCase")]
        Joined = "joined" {
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
        Left = "left" {
            /// Room.
            room_name: String,
        },
        /// Someone joined a room this session is in.
        #[serde(rename_all = "camelCase")]
        ParticipantJoined = "participant-joined" {
            /// Room.
            room_name: String,
            /// Who.
            participant_id: String,
            /// Display name.
            username: String,
        },
        /// Someone left.
        #[serde(rename_all = "camelCase")]
        ParticipantLeft = "participant-left" {
            /// Room.
            room_name: String,
            /// Who.
            participant_id: String,
        },
        /// Answer to `publish-offer`.
        #[serde(rename_all = "camelCase")]
        PublishAnswer = "publish-answer" {
            /// Room.
            room_name: String,
            /// SDP answer.
            answer: String,
        },
        /// Server candidate of the publish PeerConnection.
        #[serde(rename_all = "camelCase")]
        PublishIceCandidate = "publish-ice-candidate" {
            /// Room.
            room_name: String,
            /// Candidate; `None` = end of candidates.
            candidate: Option<CandidateInit>,
        },
        /// A publisher's media reached the server, or its tracks changed (complete list).
        #[serde(rename_all = "camelCase")]
        NewPublisher = "new-publisher" {
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
        PublisherLeft = "publisher-left" {
            /// Room.
            room_name: String,
            /// The publisher's participant id.
            publisher_id: String,
        },
        /// Offer of the server's subscribe PeerConnection.
        #[serde(rename_all = "camelCase")]
        SubscribeOffer = "subscribe-offer" {
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
        SubscribeIceCandidate = "subscribe-ice-candidate" {
            /// Room.
            room_name: String,
            /// Candidate; `None` = end of candidates.
            candidate: Option<CandidateInit>,
        },
        /// Answer to `subscribe-prepare`.
        #[serde(rename_all = "camelCase")]
        SubscribePrepareAnswer = "subscribe-prepare-answer" {
            /// Room.
            room_name: String,
            /// SDP answer.
            answer: String,
        },
        /// Chat message (to everyone in the room, sender included).
        #[serde(rename_all = "camelCase")]
        Chat = "chat" {
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
        Signal = "signal" {
            /// Room.
            room_name: String,
            /// Sender.
            from: String,
            /// Any JSON.
            data: Value,
        },
        /// Reply to `ping`.
        Pong = "pong",
        /// Reconnect (to the same URL) and publish/subscribe again.
        #[serde(rename_all = "camelCase")]
        Reconnect = "reconnect" {
            /// Why.
            reason: ReconnectReason,
            /// Suggested delay before reconnecting.
            retry_after_ms: u64,
        },
        /// An administrator removed this participant from the room (or
        /// closed the room); the socket closes next with
        /// [`crate::close::KICKED`]. Do not reconnect on your own.
        #[serde(rename_all = "camelCase")]
        Kicked = "kicked" {
            /// Room.
            room_name: String,
            /// `removed` (this participant) or `room-closed` (everyone).
            reason: KickReason,
            /// The administrator's note, if any.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            message: Option<String>,
        },
        /// Something went wrong.
        #[serde(rename_all = "camelCase")]
        Error = "error" {
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
        /// Fresh ICE servers: before the ones of `auth-ok` expire, and in
        /// reply to `get-ice-servers`.
        #[serde(rename_all = "camelCase")]
        IceServers = "ice-servers" {
            /// Same as in `auth-ok` (empty when the server has none).
            ice_servers: Vec<IceServer>,
            /// When their credentials expire (Unix seconds).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            ice_servers_expire_at: Option<u64>,
        },
    }
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
mod tests;
