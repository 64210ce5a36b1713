//! `auth`: verifies the token once per connection and takes a connection
//! from the identity's quota.

use signaling::{ClientType, ErrorCode, RequestId, ServerMessage, PROTOCOL_VERSION};

use super::super::{reject, Session};
use crate::metrics;
use crate::quota::Kind;
use signaling::close;

impl Session {
    /// Answers `auth-ok`, or an error and closes the socket.
    pub(in crate::session) fn authenticate(&mut self, token: &str, request_id: Option<&RequestId>) {
        let started = std::time::Instant::now();
        let verified = self.state.verifier.verify(token);
        metrics::auth_timed(started.elapsed());
        let verified = verified
            .map_err(|e| {
                metrics::auth_failed(e.reason());
                (ErrorCode::Unauthorized, e.to_string())
            })
            .and_then(|grants| {
                let quota = self
                    .state
                    .quotas
                    .take(&grants.participant_id, Kind::Connection)
                    .map_err(|e| {
                        metrics::connection_refused("quota");
                        (ErrorCode::QuotaExceeded, e)
                    })?;
                Ok((grants, quota))
            });
        match verified {
            Ok((grants, quota)) => {
                self.conn_quota = Some(quota);
                tracing::debug!(participant = %grants.participant_id, "authenticated");
                let (participant_id, username) =
                    (grants.participant_id.clone(), grants.username.clone());
                self.grants = Some(grants);
                let (ice_servers, ice_servers_expire_at) = self.mint_ice_servers();
                self.send(
                    ServerMessage::AuthOk {
                        participant_id,
                        username,
                        protocol: PROTOCOL_VERSION,
                        node_id: self.state.config.node_id.clone(),
                        ice_servers,
                        ice_servers_expire_at,
                    },
                    request_id,
                );
            }
            Err((code, message)) => {
                let close = if code == ErrorCode::Unauthorized {
                    (close::UNAUTHORIZED, "unauthorized")
                } else {
                    (close::POLICY, "too many connections for this participant")
                };
                self.send_error(
                    reject(code, message),
                    Some(ClientType::Auth.as_str()),
                    None,
                    request_id,
                );
                self.close(close.0, close.1);
            }
        }
    }
}
