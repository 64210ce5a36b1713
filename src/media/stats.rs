//! Metrics of one PeerConnection, sampled off the actor: a task per
//! transport reads its connection state and WebRTC statistics every
//! `MEDIA_STATS_SECS` and feeds them to [`crate::metrics::media`]. It holds the
//! transport weakly and ends once the transport is gone, so it neither
//! keeps a transport alive nor sits in the way of its actor or of
//! forwarding (which runs in the media library's own tasks).

use std::sync::{Arc, Weak};
use std::time::Duration;

use rheomesh::transport::Transport;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::stats::StatsReportType;

use crate::metrics::media::{Direction, PcGauge, StreamCounts, StreamTotals};

/// The gauge label of a connection state.
fn state_label(s: RTCPeerConnectionState) -> &'static str {
    match s {
        RTCPeerConnectionState::New | RTCPeerConnectionState::Unspecified => "new",
        RTCPeerConnectionState::Connecting => "connecting",
        RTCPeerConnectionState::Connected => "connected",
        RTCPeerConnectionState::Disconnected => "disconnected",
        RTCPeerConnectionState::Failed => "failed",
        RTCPeerConnectionState::Closed => "closed",
    }
}

/// Starts sampling `transport` (a PeerConnection of `kind`: `publish` or
/// `subscribe`) every `interval` until it is dropped; `None`: never.
pub fn watch<T>(transport: &Arc<T>, kind: &'static str, interval: Option<Duration>)
where
    T: Transport + Send + Sync + 'static,
{
    let Some(interval) = interval else { return };
    let weak: Weak<T> = Arc::downgrade(transport);
    let mut gauge = PcGauge::new(kind);
    gauge.set(state_label(transport.connection_state()));
    tokio::spawn(async move {
        let mut totals = StreamTotals::default();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(t) = weak.upgrade() else { break };
            gauge.set(state_label(t.connection_state()));
            let report = t.get_stats().await;
            drop(t);
            for r in report.reports.values() {
                match r {
                    StatsReportType::InboundRTP(s) => totals.report(
                        Direction::In,
                        s.ssrc,
                        StreamCounts {
                            packets: s.packets_received,
                            bytes: s.bytes_received,
                            nacks: s.nack_count,
                            plis: s.pli_count.unwrap_or(0),
                        },
                    ),
                    StatsReportType::OutboundRTP(s) => totals.report(
                        Direction::Out,
                        s.ssrc,
                        StreamCounts {
                            packets: s.packets_sent,
                            bytes: s.bytes_sent,
                            nacks: s.nack_count,
                            plis: s.pli_count.unwrap_or(0),
                        },
                    ),
                    StatsReportType::RemoteInboundRTP(s) => totals.report_remote(
                        s.ssrc,
                        u64::try_from(s.packets_lost).unwrap_or(0),
                        s.round_trip_time,
                    ),
                    _ => {}
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::negotiation::RestartCause;

    #[test]
    fn labels_are_in_the_metric_label_sets() {
        for s in [
            RTCPeerConnectionState::Unspecified,
            RTCPeerConnectionState::New,
            RTCPeerConnectionState::Connecting,
            RTCPeerConnectionState::Connected,
            RTCPeerConnectionState::Disconnected,
            RTCPeerConnectionState::Failed,
            RTCPeerConnectionState::Closed,
        ] {
            assert!(crate::metrics::PC_STATES.contains(&state_label(s)), "{s}");
        }
        for c in [
            RestartCause::ClientRestarted,
            RestartCause::Stuck,
            RestartCause::HalfApplied,
        ] {
            assert!(crate::metrics::ICE_RESTART_CAUSES.contains(&c.label()));
        }
    }
}
