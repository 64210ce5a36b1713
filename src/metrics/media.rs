//! Media metrics fed by the media actors: the state of each PeerConnection
//! and the totals of its RTP streams (from the WebRTC statistics, which
//! count from the stream's start; this turns them into increments).

use std::collections::HashMap;

use super::get;

/// One PeerConnection in the `sfu_peer_connections` gauge: counted under
/// its current state while it lives, and no more once dropped.
#[derive(Debug)]
pub struct PcGauge {
    kind: &'static str,
    state: Option<&'static str>,
}

impl PcGauge {
    /// A PeerConnection of `kind` (`publish`, `subscribe`), in no state yet.
    pub fn new(kind: &'static str) -> PcGauge {
        PcGauge { kind, state: None }
    }

    /// The PeerConnection is now in `state` (`new`, `connecting`,
    /// `connected`, `disconnected`, `failed`, `closed`).
    pub fn set(&mut self, state: &'static str) {
        if self.state == Some(state) {
            return;
        }
        let g = &get().peer_connections;
        if let Some(old) = self.state.replace(state) {
            g.with_label_values(&[self.kind, old]).dec();
        }
        g.with_label_values(&[self.kind, state]).inc();
    }
}

impl Drop for PcGauge {
    fn drop(&mut self) {
        if let Some(old) = self.state.take() {
            get()
                .peer_connections
                .with_label_values(&[self.kind, old])
                .dec();
        }
    }
}

/// Direction of a stream: received from a publisher (`in`) or sent to a
/// subscriber (`out`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From a publisher.
    In,
    /// To a subscriber.
    Out,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// Cumulative counts of one RTP stream as its statistics report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCounts {
    /// Packets received or sent.
    pub packets: u64,
    /// Payload bytes received or sent.
    pub bytes: u64,
    /// NACKs sent (in) or received (out).
    pub nacks: u64,
    /// PLIs sent (in) or received (out).
    pub plis: u64,
}

/// The last totals seen per stream of one PeerConnection.
#[derive(Debug, Default)]
pub struct StreamTotals {
    last: HashMap<(Direction, u32), StreamCounts>,
    lost: HashMap<u32, u64>,
}

impl StreamTotals {
    /// Adds what stream `ssrc` counted since the last report to the
    /// process totals. A count that went down (a stream restarted under
    /// the same SSRC) starts over from its new value.
    pub fn report(&mut self, dir: Direction, ssrc: u32, now: StreamCounts) {
        let before = self.last.insert((dir, ssrc), now).unwrap_or_default();
        let delta = |n: u64, b: u64| if n >= b { n - b } else { n };
        let m = get();
        let d = dir.label();
        m.media_packets
            .with_label_values(&[d])
            .inc_by(delta(now.packets, before.packets));
        m.media_bytes
            .with_label_values(&[d])
            .inc_by(delta(now.bytes, before.bytes));
        m.media_feedback
            .with_label_values(&[d, "nack"])
            .inc_by(delta(now.nacks, before.nacks));
        m.media_feedback
            .with_label_values(&[d, "pli"])
            .inc_by(delta(now.plis, before.plis));
    }

    /// A subscriber's receiver reported `lost` packets in total for stream
    /// `ssrc` and, if measured, a round-trip time.
    pub fn report_remote(&mut self, ssrc: u32, lost: u64, rtt_seconds: Option<f64>) {
        let entry = self.lost.entry(ssrc).or_default();
        let delta = lost.saturating_sub(*entry);
        *entry = lost.max(*entry);
        let m = get();
        m.media_packets_lost.inc_by(delta);
        if let Some(rtt) = rtt_seconds.filter(|r| r.is_finite() && *r >= 0.0) {
            m.media_rtt.observe(rtt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out_packets() -> u64 {
        get().media_packets.with_label_values(&["out"]).get()
    }

    #[test]
    fn totals_count_increments_once() {
        let mut t = StreamTotals::default();
        let before = out_packets();
        let c = |packets| StreamCounts {
            packets,
            ..Default::default()
        };
        t.report(Direction::Out, 7, c(10));
        t.report(Direction::Out, 7, c(25));
        t.report(Direction::Out, 7, c(25));
        // Other tests may add to the process totals at the same time.
        assert!(out_packets() - before >= 25);
        let mut u = StreamTotals::default();
        u.report(Direction::Out, 7, c(5));
        u.report(Direction::Out, 7, c(3)); // restarted: counts 3 again
        assert!(out_packets() - before >= 33);
    }

    #[test]
    fn gauge_follows_state_and_drop() {
        let g = || {
            get()
                .peer_connections
                .with_label_values(&["test", "connected"])
                .get()
        };
        let mut pc = PcGauge::new("test");
        pc.set("connecting");
        pc.set("connected");
        assert_eq!(g(), 1);
        pc.set("connected");
        assert_eq!(g(), 1);
        drop(pc);
        assert_eq!(g(), 0);
    }
}
