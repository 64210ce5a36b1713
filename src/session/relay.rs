//! Cluster mode only: a session whose room lives on another node relays
//! every client frame to the owner and every owner frame to the client.

use tokio::sync::mpsc;

use signaling::{ReconnectReason, ServerMessage};

use super::frame::FrameOut;
use super::{Session, CLOSE_GOING_AWAY};
use crate::cluster::forward::Inbound;

/// A session whose room lives on another node: every client frame goes to
/// the owner, every owner frame to the client.
pub(super) struct Relay {
    owner: String,
    key: String,
    seq_out: u64,
    inbound: mpsc::Receiver<Inbound>,
}

pub(super) async fn recv_relay(relay: &mut Option<Relay>) -> Option<Inbound> {
    match relay {
        Some(r) => r.inbound.recv().await,
        None => std::future::pending().await,
    }
}

impl Session {
    /// A client frame of a relayed session goes to the owner as it is.
    pub(super) fn relay_frame(&mut self, text: &str) {
        if let Some(relay) = self.relay.as_mut() {
            if let Some(fwd) = self.state.cluster.forwarder() {
                fwd.frame(&relay.owner, &relay.key, relay.seq_out, text.to_owned());
                relay.seq_out += 1;
            }
        }
    }

    /// The session ends: the owner's side is closed too.
    pub(super) fn end_relay(&mut self) {
        if let Some(relay) = self.relay.take() {
            if let Some(fwd) = self.state.cluster.forwarder() {
                fwd.close(&relay.owner, &relay.key, None, "client left");
            }
        }
    }

    /// From now on this session is a relay to `owner`, starting with the
    /// frame that needed the room.
    pub(super) fn start_relay(&mut self, owner: &str, first: &str) {
        // Only a session with grants is dispatched, and only a cluster has
        // a forwarder (join answers `Elsewhere` only then).
        let (Some(fwd), Some(grants)) = (self.state.cluster.forwarder(), &self.grants) else {
            return;
        };
        let (key, inbound) = fwd.open(self.handle.session_id, owner, grants);
        tracing::debug!(session = %key, %owner, "forwarding to the room's owner");
        fwd.frame(owner, &key, 0, first.to_owned());
        self.relay = Some(Relay {
            owner: owner.to_owned(),
            key,
            seq_out: 1,
            inbound,
        });
    }

    pub(super) fn on_relay(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Frame(text) => self.push(FrameOut::Text(text)),
            Inbound::Closed { code, reason } => {
                self.relay = None;
                match code {
                    Some(code) => self.close(code, &reason),
                    None => self.close(CLOSE_GOING_AWAY, &reason),
                }
            }
            Inbound::PeerLost(why) => {
                tracing::info!(session = self.handle.session_id, "room owner lost: {why}");
                if let Some(relay) = self.relay.take() {
                    if let Some(fwd) = self.state.cluster.forwarder() {
                        fwd.close(&relay.owner, &relay.key, None, &why);
                    }
                }
                self.send(
                    ServerMessage::Reconnect {
                        reason: ReconnectReason::OwnerLost,
                        retry_after_ms: 500,
                    },
                    None,
                );
                self.close(CLOSE_GOING_AWAY, "room owner lost");
            }
        }
    }
}
