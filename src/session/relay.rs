//! A session whose room is held by another node (cluster mode) passes
//! every client frame along a [`Link`] to that node and every frame from
//! it to the client. Which router carries the link is not known here.

use signaling::{ErrorCode, ReconnectReason, ServerMessage};

use super::frame::FrameOut;
use super::{reject, Session};
use crate::routing::{Inbound, Link};
use signaling::close;

pub(super) async fn recv_relay(relay: &mut Option<Link>) -> Option<Inbound> {
    match relay {
        Some(link) => link.source.recv().await,
        None => std::future::pending().await,
    }
}

impl Session {
    /// A client frame of a relayed session goes to the room's node as it is.
    pub(super) fn relay_frame(&mut self, text: &str) {
        if let Some(link) = self.relay.as_mut() {
            link.sink.frame(text.to_owned());
        }
    }

    /// The session ends: the other end is closed too.
    pub(super) fn end_relay(&mut self) {
        if let Some(mut link) = self.relay.take() {
            link.sink.close(None, "client left");
        }
    }

    /// From now on this session is a relay to `node`, which holds the
    /// room, starting with the frame that needed the room.
    pub(super) fn start_relay(&mut self, node: &str, first: &str) {
        // Only a session with grants is dispatched.
        let Some(grants) = &self.grants else {
            return;
        };
        let Some(mut link) = self
            .state
            .router
            .connect(self.handle.session_id, node, grants)
        else {
            let r = reject(
                ErrorCode::Internal,
                format!("the room is held by node {node}, which this node has no route to"),
            );
            return self.send_error(r, None, None, None);
        };
        link.sink.frame(first.to_owned());
        self.relay = Some(link);
    }

    pub(super) fn on_relay(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Frame(text) => self.push(FrameOut::Text(text)),
            Inbound::Closed { code, reason } => {
                self.relay = None;
                self.close(code.unwrap_or(close::GOING_AWAY), &reason);
            }
            Inbound::PeerLost(why) => {
                tracing::info!(session = self.handle.session_id, "room's node lost: {why}");
                if let Some(mut link) = self.relay.take() {
                    link.sink.close(None, &why);
                }
                self.send(
                    ServerMessage::Reconnect {
                        reason: ReconnectReason::OwnerLost,
                        retry_after_ms: 500,
                    },
                    None,
                );
                self.close(close::GOING_AWAY, "room owner lost");
            }
        }
    }
}
