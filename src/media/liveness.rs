//! When a PeerConnection is over: it failed, was closed, or never connected
//! within [`CONNECT_TIMEOUT`] of being created. The publish and subscribe
//! actors poll their transport's state every [`STATE_POLL`] and close the
//! transport (giving back its media port and forwarding slots) when this
//! says so.
//!
//! Why the timeout: a transport is created by a client's offer, its
//! `subscribe-prepare` or `subscribe-request`, or even a lone trickled
//! candidate. webrtc-rs fails an ICE agent that checks for 30 s without
//! success, but one that never starts checking (no remote description: a
//! candidate without an offer, an offer the client never answers) waits in
//! `new` for as long as the session lives, holding a UDP socket and a port
//! of `RTC_MIN_PORT..RTC_MAX_PORT`. A client could hold dozens that way
//! (docs/SECURITY.md); found by `tests/misbehaving.rs`.

use std::time::{Duration, Instant};

use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;

/// Longest time from a transport's creation to its first connection.
/// Equal to webrtc-rs's own give-up time for ICE checks (5 s disconnected
/// plus 25 s failed timeout), so a client that connects at all is never cut
/// off by this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the actors look at their transport's state.
pub const STATE_POLL: Duration = Duration::from_secs(1);

/// What an actor knows about its current transport's life.
#[derive(Debug, Default)]
pub struct Liveness {
    created: Option<Instant>,
    connected: bool,
}

impl Liveness {
    /// A new transport exists since `now`.
    pub fn created(&mut self, now: Instant) {
        *self = Liveness {
            created: Some(now),
            connected: false,
        };
    }

    /// The transport is gone.
    pub fn reset(&mut self) {
        *self = Liveness::default();
    }

    /// Whether the transport, now in `state`, should be closed; the reason.
    pub fn over(&mut self, state: RTCPeerConnectionState, now: Instant) -> Option<&'static str> {
        match state {
            RTCPeerConnectionState::Connected => {
                self.connected = true;
                None
            }
            RTCPeerConnectionState::Failed => Some("failed"),
            RTCPeerConnectionState::Closed => Some("closed"),
            _ if !self.connected
                && self
                    .created
                    .is_some_and(|c| now.duration_since(c) >= CONNECT_TIMEOUT) =>
            {
                Some("not connected within 30 s")
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RTCPeerConnectionState as S;

    #[test]
    fn never_connected_ends_at_the_timeout() {
        let t0 = Instant::now();
        let mut l = Liveness::default();
        l.created(t0);
        assert_eq!(l.over(S::New, t0 + Duration::from_secs(29)), None);
        assert_eq!(l.over(S::Connecting, t0 + Duration::from_secs(29)), None);
        assert!(l.over(S::New, t0 + CONNECT_TIMEOUT).is_some());
        assert!(l.over(S::Connecting, t0 + CONNECT_TIMEOUT).is_some());
    }

    #[test]
    fn connected_once_is_not_timed_out_but_failure_ends_it() {
        let t0 = Instant::now();
        let mut l = Liveness::default();
        l.created(t0);
        assert_eq!(l.over(S::Connected, t0 + Duration::from_secs(2)), None);
        // Disconnected may come back: ICE decides (it fails the connection).
        assert_eq!(l.over(S::Disconnected, t0 + Duration::from_secs(90)), None);
        assert_eq!(
            l.over(S::Failed, t0 + Duration::from_secs(95)),
            Some("failed")
        );
        assert_eq!(l.over(S::Closed, t0), Some("closed"));
    }

    #[test]
    fn no_transport_no_timeout_and_a_new_one_starts_over() {
        let t0 = Instant::now();
        let mut l = Liveness::default();
        assert_eq!(l.over(S::New, t0 + Duration::from_secs(3600)), None);
        l.created(t0);
        l.over(S::Connected, t0);
        l.created(t0 + Duration::from_secs(100));
        assert!(l.over(S::New, t0 + Duration::from_secs(131)).is_some());
        l.reset();
        assert_eq!(l.over(S::New, t0 + Duration::from_secs(500)), None);
    }
}
