//! Leaf types of the protocol: the pieces messages are made of, and the
//! error codes and reasons they carry. Imports nothing from this crate.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A client's ICE candidate or the server's, in RTCIceCandidateInit form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateInit {
    /// The `candidate:…` line (without `a=`).
    pub candidate: String,
    /// Media stream identification tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// Index of the m-line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
    /// ICE username fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// Media kind of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackKind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// One ICE server for the client's PeerConnections (the shape of WebRTC's
/// `RTCIceServer`): TURN with time-limited credentials, or STUN.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceServer {
    /// `turn:`, `turns:` or `stun:` URLs.
    pub urls: Vec<String>,
    /// TURN username (`expiry:participantId`); absent for STUN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password; absent for STUN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// One published track, as announced to others.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackInfo {
    /// The publisher's track id (kept on forwarded tracks).
    pub track_id: String,
    /// Audio or video.
    pub kind: TrackKind,
}

/// A participant in a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantInfo {
    /// Participant identity (the token's `sub`).
    pub participant_id: String,
    /// Display name.
    pub username: String,
}

/// A publisher in a room and its tracks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublisherInfo {
    /// The publisher's participant id.
    pub publisher_id: String,
    /// Display name.
    pub username: String,
    /// Tracks whose media has reached the server.
    pub tracks: Vec<TrackInfo>,
}

/// Why the server asks a client to reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReconnectReason {
    /// The node is shutting down.
    Draining,
    /// The cluster node that hosted the room is gone.
    OwnerLost,
    /// The room moved to another node.
    RoomMoved,
    /// The server lost a track this client publishes (a fault in the media
    /// library); publishing again on a new PeerConnection recovers it.
    MediaLost,
}

/// Error codes of PROTOCOL.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// No or bad token (socket closes with 4001).
    Unauthorized,
    /// The token does not allow this room or action.
    Forbidden,
    /// Not JSON, missing/invalid field, invalid SDP or candidate, text too long.
    BadRequest,
    /// `type` not in the protocol.
    UnknownType,
    /// Unknown publisher or signal target.
    NotFound,
    /// Too many messages per second from this connection.
    RateLimited,
    /// The room or the node is at its configured limit.
    RoomFull,
    /// This connection or identity is at one of its quotas (rooms,
    /// connections, tracks).
    QuotaExceeded,
    /// The node is shutting down and takes no new rooms.
    Draining,
    /// The same participant joined the room from another connection.
    Replaced,
    /// A failure inside the server.
    Internal,
}

impl ErrorCode {
    /// The wire string of this code.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::BadRequest => "bad-request",
            ErrorCode::UnknownType => "unknown-type",
            ErrorCode::NotFound => "not-found",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::RoomFull => "room-full",
            ErrorCode::QuotaExceeded => "quota-exceeded",
            ErrorCode::Draining => "draining",
            ErrorCode::Replaced => "replaced",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client's `requestId`: a string or a number, echoed verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub Value);
