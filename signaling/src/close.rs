//! WebSocket close codes the server uses, as `docs/PROTOCOL.md` ("Close
//! codes") lists them.

/// The node is shutting down, or (cluster) the room moved or its node is
/// gone; sent after `reconnect`.
pub const GOING_AWAY: u16 = 1001;
/// Policy: room events not taken fast enough, no pong in time, a refused
/// connection (quota), or a session closed by the server.
pub const POLICY: u16 = 1008;
/// A frame larger than [`crate::MAX_FRAME_BYTES`].
pub const TOO_BIG: u16 = 1009;
/// Cluster: the room's node is at its connection limit or too busy to take
/// the session now; connect again later.
pub const TRY_AGAIN_LATER: u16 = 1013;
/// An invalid token (with the upgrade or in `auth`); sent after `error`
/// `unauthorized`.
pub const UNAUTHORIZED: u16 = 4001;
/// No successful authentication within [`crate::AUTH_TIMEOUT`].
pub const AUTH_TIMEOUT: u16 = 4008;
/// An administrator removed the participant (or closed its room); sent
/// after `kicked`.
pub const KICKED: u16 = 4003;
