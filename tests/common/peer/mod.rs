//! Real-WebRTC test peers for the SFU integration tests.
//!
//! Use from an integration test as `mod common; use common::peer::*;`
//! (with `tests/common/mod.rs` containing `pub mod peer;`).
//!
//! The one-address webrtc-rs API, the candidate rules and the VP8 header
//! come from `sfu-testkit` (shared with the load tester); what is here is
//! the tests' own: trickle-ICE peers that record what they drop, and the
//! counter payloads below.
//!
//! Network safety: every peer connection built here only gathers host UDP
//! candidates on the single configured IP (`PeerConfig::ip`): ip filter,
//! UDP-only network types, no mDNS, no STUN/TURN. Remote candidates (trickled
//! or inside a remote SDP) whose address is not that IP, or whose transport is
//! not UDP, are dropped before they reach ICE, so no connectivity check is
//! ever sent anywhere else; dropped candidates are recorded and can be
//! inspected with `dropped_remote_candidates()`.
//!
//! Payload format written by [`TestPublisher`] and parsed by [`TestSubscriber`]:
//! * audio (Opus, PT 111): `[counter: u64 BE][80 filler bytes]`
//! * video (VP8, PT 96): `[VP8 payload descriptor, 1 byte]` then, only on the
//!   first packet of a frame (descriptor `0x10`, S bit set), a VP8 frame header
//!   (10 bytes for a keyframe: 3-byte frame tag + start code `9d 01 2a` +
//!   640x480; 3 bytes for an interframe: frame tag only), then
//!   `[counter: u64 BE]`, then filler up to 1000 bytes. Packets that do not
//!   start a frame use descriptor `0x00` and carry the counter right after it.
//!   The counter is per track, starts at 0 and increases by 1 per packet.
#![allow(dead_code)]

mod conn;
pub mod payload;
mod publisher;
pub mod sdp;
mod subscriber;

use std::net::IpAddr;
use std::time::{Duration, Instant};
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::peer_connection::RTCPeerConnection;

pub use publisher::TestPublisher;
pub use subscriber::TestSubscriber;

/// Configuration shared by all test peers.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// The only address allowed in local (and accepted in remote) ICE candidates.
    pub ip: IpAddr,
    /// Remote candidate addresses accepted instead of `ip` (a server behind
    /// NAT); empty: `ip`.
    pub remote_ips: Vec<IpAddr>,
    /// ICE servers (TURN) for the PeerConnection; their relay candidates
    /// are the only local candidates allowed besides `ip`'s.
    pub ice_servers: Vec<RTCIceServer>,
}

impl PeerConfig {
    /// Local and remote candidates on `ip` only.
    pub fn on(ip: IpAddr) -> PeerConfig {
        PeerConfig {
            ip,
            remote_ips: Vec::new(),
            ice_servers: Vec::new(),
        }
    }
}

/// The ICE servers of an `auth-ok` or `ice-servers` message, for webrtc-rs.
pub fn ice_servers_of(message: &serde_json::Value) -> Vec<RTCIceServer> {
    message["iceServers"]
        .as_array()
        .map(|servers| {
            servers
                .iter()
                .map(|s| RTCIceServer {
                    urls: s["urls"]
                        .as_array()
                        .map(|u| {
                            u.iter()
                                .filter_map(|x| x.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                    username: s["username"].as_str().unwrap_or_default().to_owned(),
                    credential: s["credential"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The local candidate type of the nominated, succeeded candidate pair in
/// the PeerConnection's stats (`host`, `srflx`, `prflx`, `relay`), if any.
pub async fn selected_local_candidate_type(pc: &RTCPeerConnection) -> Option<String> {
    use webrtc::stats::StatsReportType;
    let report = pc.get_stats().await;
    let pair = report.reports.values().find_map(|r| match r {
        StatsReportType::CandidatePair(p)
            if p.nominated && p.state == webrtc::ice::candidate::CandidatePairState::Succeeded =>
        {
            Some(p.local_candidate_id.clone())
        }
        _ => None,
    })?;
    report.reports.values().find_map(|r| match r {
        StatsReportType::LocalCandidate(c) if c.id == pair => {
            serde_json::to_value(c.candidate_type)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
        }
        _ => None,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Audio,
    Video,
}

#[derive(Clone, Debug)]
pub struct TrackSpec {
    pub kind: Kind,
    pub track_id: String,
    pub stream_id: String,
}

impl TrackSpec {
    pub fn video(track_id: &str, stream_id: &str) -> Self {
        Self {
            kind: Kind::Video,
            track_id: track_id.to_owned(),
            stream_id: stream_id.to_owned(),
        }
    }

    pub fn audio(track_id: &str, stream_id: &str) -> Self {
        Self {
            kind: Kind::Audio,
            track_id: track_id.to_owned(),
            stream_id: stream_id.to_owned(),
        }
    }
}

/// Per-track receive statistics of a [`TestSubscriber`].
#[derive(Clone, Debug, Default)]
pub struct TrackStats {
    pub kind: Option<Kind>,
    /// Stream id "webrtc-rs" or track id "probator".
    pub probator: bool,
    pub packets: u64,
    pub first_packet_at: Option<Instant>,
    pub last_packet_at: Option<Instant>,
    /// Sum of missing counter values between consecutive parsed packets.
    pub counter_gaps: u64,
    /// Parsed packets whose counter was not greater than the last one.
    pub counter_backwards: u64,
    pub first_counter: Option<u64>,
    pub last_counter: Option<u64>,
    /// Sum of missing RTP sequence numbers (wrapping-aware).
    pub seq_gaps: u64,
    /// Packets whose RTP sequence number was not ahead of the last one (incl. duplicates).
    pub seq_backwards: u64,
    /// When on_track fired for this track id (first time).
    pub track_added_at: Option<Instant>,
    // --- extras -----------------------------------------------------------
    /// msid stream id of the (last) remote track with this id.
    pub stream_id: String,
    /// SSRC of the (last) remote track with this id.
    pub ssrc: Option<u32>,
    /// How many times on_track fired for this track id.
    pub tracks_added: u32,
    /// Packets counted but too short (or malformed) to carry a counter.
    pub unparsed_packets: u64,
    /// Video frames whose first packet carried a VP8 keyframe header.
    pub keyframes: u64,
}

/// Waits (bounded) until `f()` returns a value equal to `want`.
pub async fn wait_until<F: Fn() -> String>(f: F, want: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() == want {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
