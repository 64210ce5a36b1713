//! `get-ice-servers`, and the ICE servers of `auth-ok`: TURN credentials
//! minted for this participant (`net::turn`), sent again before they expire.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use signaling::{IceServer, ServerMessage};

use super::super::Session;

impl Session {
    /// Mints this participant's ICE servers (none without TURN_URLS) and
    /// schedules the next refresh: (servers, expiry in Unix seconds).
    pub(in crate::session) fn mint_ice_servers(&mut self) -> (Option<Vec<IceServer>>, Option<u64>) {
        let (Some(turn), Some(grants)) = (self.state.config.turn.as_ref(), self.grants.as_ref())
        else {
            return (None, None);
        };
        // A clock before 1970 is a broken host; credentials made from 0
        // are already expired and the TURN server says so.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let minted = turn.mint(&grants.participant_id, now);
        self.ice_refresh = Some(tokio::time::Instant::now() + turn.refresh_after());
        (Some(minted.servers), Some(minted.expires_at))
    }

    /// `ice-servers` with fresh credentials (reply to `get-ice-servers`, and
    /// the refresh before expiry).
    pub(in crate::session) fn ice_servers_message(&mut self) -> ServerMessage {
        let (servers, expires_at) = self.mint_ice_servers();
        ServerMessage::IceServers {
            ice_servers: servers.unwrap_or_default(),
            ice_servers_expire_at: expires_at,
        }
    }
}
