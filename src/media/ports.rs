//! The media port budget: how many PeerConnections `RTC_MIN_PORT..RTC_MAX_PORT`
//! holds, and a lease per PeerConnection.
//!
//! webrtc-ice binds, per PeerConnection, one UDP socket in the range for
//! each announced address (host candidates; every address has a port space
//! of its own, so that is one port of the range whatever the number of
//! addresses), plus one on `0.0.0.0` per ICE server URL and UDP network
//! type (its server-reflexive gathering). When the range is full it only
//! logs "failed to listen" and the PeerConnection offers no candidate: the
//! client waits for a connection that never comes. So each transport takes
//! a [`PortLease`] before it is created, and a request that would need one
//! more is refused at once with `room-full` (the node is at a configured
//! limit), which every client already understands. The lease is returned
//! when the transport is closed (after its sockets are), not when the actor
//! lets go of it.

use std::sync::Arc;

use serde::Serialize;

use super::budget::{Budget, Slot};

/// The budget of one node.
#[derive(Debug)]
pub struct PortBudget {
    /// `RTC_MIN_PORT..=RTC_MAX_PORT`; `None`: ephemeral ports, no budget.
    range: Option<(u16, u16)>,
    /// Ports of the range one PeerConnection binds.
    per_pc: usize,
    /// PeerConnections holding a lease, at most what the range holds.
    pcs: Arc<Budget>,
}

/// What `/health` shows (`mediaPorts`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PortUsage {
    /// `RTC_MIN_PORT`.
    pub min: u16,
    /// `RTC_MAX_PORT`.
    pub max: u16,
    /// Ports of the range one PeerConnection takes.
    pub per_peer_connection: usize,
    /// PeerConnections the range holds.
    pub peer_connections: usize,
    /// PeerConnections open now.
    pub peer_connections_in_use: usize,
    /// Ports taken by them.
    pub in_use: usize,
    /// Ports left for new PeerConnections.
    pub left: usize,
}

impl PortBudget {
    /// A budget for `range` where each PeerConnection also gathers
    /// server-reflexive candidates from `ice_urls` servers over
    /// `udp_network_types` (1 for IPv4 only, 2 with IPv6).
    pub fn new(range: Option<(u16, u16)>, ice_urls: usize, udp_network_types: usize) -> Arc<Self> {
        let per_pc = 1 + ice_urls * udp_network_types.max(1);
        let capacity = range.map(|(min, max)| (usize::from(max) - usize::from(min) + 1) / per_pc);
        Arc::new(PortBudget {
            range,
            per_pc,
            pcs: Budget::new(capacity),
        })
    }

    /// PeerConnections the range holds (`None`: no range, no limit).
    pub fn capacity(&self) -> Option<usize> {
        self.range.map(|_| self.pcs.limit())
    }

    /// Takes the ports of one PeerConnection; the error is the message the
    /// client gets.
    pub fn try_take(&self) -> Result<PortLease, String> {
        match self.pcs.try_take() {
            Some(slot) => Ok(PortLease { _slot: slot }),
            None => {
                let (min, max) = self.range.unwrap_or_default();
                let capacity = self.capacity().unwrap_or(0);
                Err(format!(
                    "no media ports left on this server: UDP ports {min}-{max} \
                     (RTC_MIN_PORT..RTC_MAX_PORT) hold {capacity} PeerConnections \
                     of {} port(s) each, all in use; try again later",
                    self.per_pc
                ))
            }
        }
    }

    /// PeerConnections holding a lease now.
    pub fn peer_connections(&self) -> usize {
        self.pcs.used()
    }

    /// The numbers for `/health`; `None` without a range.
    pub fn usage(&self) -> Option<PortUsage> {
        let (min, max) = self.range?;
        let total = usize::from(max) - usize::from(min) + 1;
        let pcs = self.peer_connections();
        let in_use = (pcs * self.per_pc).min(total);
        let capacity = self.capacity().unwrap_or(0);
        Some(PortUsage {
            min,
            max,
            per_peer_connection: self.per_pc,
            peer_connections: capacity,
            peer_connections_in_use: pcs,
            in_use,
            // Ports a new PeerConnection can still use: a remainder smaller
            // than one PeerConnection's share is of no use to anyone.
            left: capacity.saturating_sub(pcs) * self.per_pc,
        })
    }
}

/// The ports of one PeerConnection; returned on drop.
#[derive(Debug)]
pub struct PortLease {
    _slot: Slot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_holds_its_size_in_peer_connections() {
        let b = PortBudget::new(Some((40000, 40003)), 0, 1);
        assert_eq!(b.capacity(), Some(4));
        let leases: Vec<_> = (0..4).map(|_| b.try_take().expect("a port")).collect();
        let err = b.try_take().expect_err("range full");
        assert!(err.contains("40000-40003"), "{err}");
        assert!(err.contains("RTC_MIN_PORT"), "{err}");
        let u = b.usage().expect("range");
        assert_eq!((u.in_use, u.left, u.peer_connections_in_use), (4, 0, 4));
        drop(leases);
        assert_eq!(b.usage().expect("range").left, 4);
        assert!(b.try_take().is_ok());
    }

    #[test]
    fn ice_servers_cost_a_port_each() {
        // Two STUN/TURN URLs over IPv4 and IPv6: 1 + 2 * 2 ports.
        let b = PortBudget::new(Some((1000, 1010)), 2, 2);
        let u = b.usage().expect("range");
        assert_eq!(
            (u.per_peer_connection, u.peer_connections, u.left),
            (5, 2, 10)
        );
    }

    #[test]
    fn no_range_no_limit() {
        let b = PortBudget::new(None, 3, 1);
        assert_eq!(b.capacity(), None);
        assert!(b.usage().is_none());
        let leases: Vec<_> = (0..10_000)
            .map(|_| b.try_take().expect("no limit"))
            .collect();
        assert_eq!(b.peer_connections(), 10_000);
        drop(leases);
        assert_eq!(b.peer_connections(), 0);
    }
}
