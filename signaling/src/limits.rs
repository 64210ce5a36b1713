//! Limits and timings that `docs/PROTOCOL.md` states as part of the protocol:
//! what a client must stay within, and when the server gives up on it.
//!
//! The server uses these; it has no setting to change them (its own
//! configurable limits, such as `MESSAGE_RATE`, live in its configuration).

use std::time::Duration;

/// Largest WebSocket frame a client may send; larger frames close the socket with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Longest chat text, in characters.
pub const MAX_CHAT_CHARS: usize = 4096;
/// Longest room name, in bytes.
pub const MAX_ROOM_NAME_BYTES: usize = 128;
/// Longest participant/publisher id accepted in a message, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Most media sections (m-lines) one subscribe PeerConnection carries; a
/// subscription beyond it is answered with `room-full`. Every track ever
/// subscribed stays in every later offer and answer (rheomesh never removes
/// a transceiver), and the client's `subscribe-answer` has to fit in one
/// [`MAX_FRAME_BYTES`] frame.
pub const MAX_SUBSCRIBE_MEDIA_SECTIONS: usize = 48;
/// A connection that has not authenticated within this time gets `error`
/// `unauthorized` and is closed with 4008.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// The server sends a WebSocket ping this often.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// A socket whose last pong is older than this is closed with 1008 ("no pong
/// for 60 s"), checked with each ping.
pub const PONG_TIMEOUT: Duration = Duration::from_secs(60);
