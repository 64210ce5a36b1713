//! Leaf types of the protocol: the pieces messages are made of, and the
//! error codes and reasons they carry. Imports only the crate's macros.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::macros::wire_strings;

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

wire_strings! {
    /// Why the server asks a client to reconnect.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum ReconnectReason {
        /// The node is shutting down.
        Draining = "draining",
        /// The cluster node that hosted the room is gone.
        OwnerLost = "owner-lost",
        /// The room moved to another node.
        RoomMoved = "room-moved",
        /// The server lost a track this client publishes (a fault in the
        /// media library); publishing again on a new PeerConnection
        /// recovers it.
        MediaLost = "media-lost",
    }
}

wire_strings! {
    /// Why an administrator removed a participant (`kicked`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum KickReason {
        /// This participant was removed from the room.
        Removed = "removed",
        /// The whole room was closed.
        RoomClosed = "room-closed",
    }
}

wire_strings! {
    /// Error codes of PROTOCOL.md.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum ErrorCode {
        /// No or bad token (socket closes with 4001).
        Unauthorized = "unauthorized",
        /// The token does not allow this room or action.
        Forbidden = "forbidden",
        /// Not JSON, missing/invalid field, invalid SDP or candidate, text
        /// too long.
        BadRequest = "bad-request",
        /// `type` not in the protocol.
        UnknownType = "unknown-type",
        /// Unknown publisher or signal target.
        NotFound = "not-found",
        /// Too many messages per second from this connection.
        RateLimited = "rate-limited",
        /// The room or the node is at its configured limit.
        RoomFull = "room-full",
        /// This connection or identity is at one of its quotas (rooms,
        /// connections, tracks).
        QuotaExceeded = "quota-exceeded",
        /// The node is shutting down and takes no new rooms.
        Draining = "draining",
        /// The same participant joined the room from another connection.
        Replaced = "replaced",
        /// A failure inside the server.
        Internal = "internal",
    }
}

/// A client's `requestId`: a string or a number, echoed verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub Value);

#[cfg(test)]
mod wire_string_tests {
    use super::*;

    #[test]
    fn serde_names_are_the_wire_strings() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), *code);
        }
        for reason in ReconnectReason::ALL {
            let json = serde_json::to_string(reason).unwrap();
            assert_eq!(json, format!("\"{reason}\""));
        }
        for reason in KickReason::ALL {
            let json = serde_json::to_string(reason).unwrap();
            assert_eq!(json, format!("\"{reason}\""));
        }
        assert_eq!(KickReason::RoomClosed.as_str(), "room-closed");
        assert_eq!(ErrorCode::ALL.len(), 11);
        assert_eq!(ErrorCode::QuotaExceeded.as_str(), "quota-exceeded");
        assert_eq!(ReconnectReason::OwnerLost.as_str(), "owner-lost");
    }
}
