//! Real-WebRTC test peers for the SFU integration tests.
//!
//! Use from an integration test as `mod common; use common::peer::*;`
//! (with `tests/common/mod.rs` containing `pub mod peer;`).
//!
//! Depends only on `webrtc` (0.17.x), `tokio`, `bytes` and `anyhow`.
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

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::{APIBuilder, API};
use webrtc::data_channel::data_channel_state::RTCDataChannelState;
use webrtc::data_channel::RTCDataChannel;
use webrtc::ice_transport::ice_candidate::{RTCIceCandidate, RTCIceCandidateInit};
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp::header::Header as RtpHeader;
use webrtc::rtp::packet::Packet as RtpPacket;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_remote::TrackRemote;

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

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

/// A trickled ICE candidate (same shape as the browser's `RTCIceCandidateInit`).
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub candidate: String,
    pub sdp_mid: Option<String>,
    pub sdp_mline_index: Option<u16>,
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

// ---------------------------------------------------------------------------
// SDP helpers
// ---------------------------------------------------------------------------

/// Fields of an `a=candidate` line: (transport, address, raddr).
fn parse_candidate_fields(line: &str) -> Option<(String, String, Option<String>)> {
    let line = line.trim();
    let line = line.strip_prefix("a=").unwrap_or(line);
    let rest = line.strip_prefix("candidate:")?;
    let toks: Vec<&str> = rest.split_whitespace().collect();
    if toks.len() < 6 {
        return None;
    }
    let transport = toks[2].to_owned();
    let address = toks[4].to_owned();
    let raddr = toks
        .iter()
        .position(|t| *t == "raddr")
        .and_then(|i| toks.get(i + 1))
        .map(|s| (*s).to_owned());
    Some((transport, address, raddr))
}

/// Returns every address found in `a=candidate` lines (connection address and
/// `raddr`, if any) and `c=` lines of an SDP, in order of appearance.
pub fn sdp_candidate_addresses(sdp: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in sdp.lines() {
        let line = line.trim();
        if line.starts_with("a=candidate:") {
            if let Some((_, addr, raddr)) = parse_candidate_fields(line) {
                out.push(addr);
                if let Some(r) = raddr {
                    out.push(r);
                }
            }
        } else if let Some(c) = line.strip_prefix("c=") {
            // c=IN IP4 10.0.0.1[/ttl]
            if let Some(addr) = c.split_whitespace().nth(2) {
                out.push(addr.split('/').next().unwrap_or(addr).to_owned());
            }
        }
    }
    out
}

/// Number of `a=candidate` lines in an SDP.
pub fn sdp_candidate_count(sdp: &str) -> usize {
    sdp.lines()
        .filter(|l| l.trim().starts_with("a=candidate:"))
        .count()
}

/// Panics with a clear message if any candidate address in the SDP differs
/// from `ip` (`a=candidate` connection address and raddr, and `c=` lines;
/// `0.0.0.0` / `::` in `c=` lines and raddr is ignored), or if an
/// `a=candidate` line is not UDP.
pub fn assert_sdp_only_ip(sdp: &str, ip: IpAddr) {
    let mut problems = Vec::new();
    for line in sdp.lines() {
        let line = line.trim();
        if line.starts_with("a=candidate:") {
            match parse_candidate_fields(line) {
                Some((transport, addr, raddr)) => {
                    if !transport.eq_ignore_ascii_case("udp") {
                        problems.push(format!("non-UDP candidate: {line}"));
                    }
                    if addr.parse::<IpAddr>().ok() != Some(ip) {
                        problems.push(format!("candidate address {addr} != {ip}: {line}"));
                    }
                    if let Some(r) = raddr {
                        let unspecified = r
                            .parse::<IpAddr>()
                            .map(|a| a.is_unspecified())
                            .unwrap_or(false);
                        if !unspecified && r.parse::<IpAddr>().ok() != Some(ip) {
                            problems.push(format!("candidate raddr {r} != {ip}: {line}"));
                        }
                    }
                }
                None => problems.push(format!("unparsable candidate line: {line}")),
            }
        } else if let Some(c) = line.strip_prefix("c=") {
            if let Some(addr) = c.split_whitespace().nth(2) {
                let addr = addr.split('/').next().unwrap_or(addr);
                match addr.parse::<IpAddr>() {
                    Ok(a) if a.is_unspecified() || a == ip => {}
                    _ => problems.push(format!("c= address {addr} != {ip}: {line}")),
                }
            }
        }
    }
    if !problems.is_empty() {
        panic!(
            "SDP carries addresses other than {ip} (or non-UDP candidates):\n  {}\n--- SDP ---\n{sdp}",
            problems.join("\n  ")
        );
    }
}

/// Extracts the 8-byte counter from a payload written by [`TestPublisher`].
/// Returns `(counter, is_keyframe_start)`; `None` if the payload is too short
/// or malformed.
pub fn parse_counter(kind: Kind, payload: &[u8]) -> Option<(u64, bool)> {
    let read_u64 = |off: usize| -> Option<u64> {
        let b = payload.get(off..off + 8)?;
        Some(u64::from_be_bytes(b.try_into().ok()?))
    };
    match kind {
        Kind::Audio => read_u64(0).map(|c| (c, false)),
        Kind::Video => {
            let desc = *payload.first()?;
            let mut off = 1usize;
            if desc & 0x80 != 0 {
                // X: extension byte with I/L/T/K flags.
                let x = *payload.get(off)?;
                off += 1;
                if x & 0x80 != 0 {
                    let pid = *payload.get(off)?;
                    off += if pid & 0x80 != 0 { 2 } else { 1 };
                }
                if x & 0x40 != 0 {
                    off += 1;
                }
                if x & 0x30 != 0 {
                    off += 1;
                }
            }
            let start_of_frame = desc & 0x10 != 0 && desc & 0x07 == 0;
            let mut key = false;
            if start_of_frame {
                let tag0 = *payload.get(off)?;
                if tag0 & 0x01 == 0 {
                    key = true;
                    off += VP8_KEYFRAME_HEADER_LEN;
                } else {
                    off += VP8_INTERFRAME_HEADER_LEN;
                }
            }
            read_u64(off).map(|c| (c, key))
        }
    }
}

// ---------------------------------------------------------------------------
// API construction
// ---------------------------------------------------------------------------

/// Builds a webrtc-rs API restricted to host UDP candidates on `ip` only
/// (ip filter, UDP-only, no mDNS), with Opus/111 and VP8/96 registered and the
/// default interceptors.
pub fn build_api(ip: IpAddr) -> Result<API> {
    let mut m = MediaEngine::default();
    m.register_codec(
        RTCRtpCodecParameters {
            capability: opus_capability(),
            payload_type: 111,
            ..Default::default()
        },
        RTPCodecType::Audio,
    )?;
    m.register_codec(
        RTCRtpCodecParameters {
            capability: vp8_capability(),
            payload_type: 96,
            ..Default::default()
        },
        RTPCodecType::Video,
    )?;
    let mut registry = Registry::new();
    registry = register_default_interceptors(registry, &mut m)?;

    let s = loadtest::rtc::one_ip_settings(ip);

    Ok(APIBuilder::new()
        .with_media_engine(m)
        .with_interceptor_registry(registry)
        .with_setting_engine(s)
        .build())
}

fn opus_capability() -> RTCRtpCodecCapability {
    loadtest::rtc::opus()
}

/// The load tester's VP8, with the congestion-control feedback browsers offer.
fn vp8_capability() -> RTCRtpCodecCapability {
    loadtest::rtc::vp8(&[("goog-remb", ""), ("transport-cc", "")])
}

fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish()
}

// ---------------------------------------------------------------------------
// Shared peer core
// ---------------------------------------------------------------------------

const OP_TIMEOUT: Duration = Duration::from_secs(10);

struct PeerCore {
    pc: Arc<RTCPeerConnection>,
    ip: IpAddr,
    remote_ips: Vec<IpAddr>,
    candidates_rx: Mutex<Option<mpsc::UnboundedReceiver<Option<Candidate>>>>,
    gathering_done: Arc<AtomicBool>,
    dropped_remote: Arc<Mutex<Vec<String>>>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
    closed_tx: watch::Sender<bool>,
}

impl PeerCore {
    async fn new(cfg: &PeerConfig) -> Result<Self> {
        let api = build_api(cfg.ip)?;
        let pc = Arc::new(
            api.new_peer_connection(RTCConfiguration {
                ice_servers: cfg.ice_servers.clone(),
                ..Default::default()
            })
            .await
            .context("new_peer_connection")?,
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let ip = cfg.ip;
        let with_turn = !cfg.ice_servers.is_empty();
        let gathering_done = Arc::new(AtomicBool::new(false));
        let gd = gathering_done.clone();
        pc.on_ice_candidate(Box::new(move |c: Option<RTCIceCandidate>| {
            match c {
                None => {
                    gd.store(true, Ordering::SeqCst);
                    let _ = tx.send(None);
                }
                Some(c) => match c.to_json() {
                    Ok(init) => {
                        // Defence in depth: the ip filter should make this
                        // impossible; relay candidates (from the configured
                        // TURN servers) are the one other kind allowed.
                        let relay = with_turn && init.candidate.contains(" typ relay");
                        let ok = parse_candidate_fields(&init.candidate)
                            .map(|(t, a, _)| {
                                t.eq_ignore_ascii_case("udp")
                                    && (relay || a.parse::<IpAddr>().ok() == Some(ip))
                            })
                            .unwrap_or(false);
                        if ok {
                            let _ = tx.send(Some(Candidate {
                                candidate: init.candidate,
                                sdp_mid: init.sdp_mid,
                                sdp_mline_index: init.sdp_mline_index,
                            }));
                        } else {
                            eprintln!(
                                "peer: dropping unexpected local candidate {}",
                                init.candidate
                            );
                        }
                    }
                    Err(e) => eprintln!("peer: cannot serialize local candidate: {e}"),
                },
            }
            Box::pin(async {})
        }));
        let (closed_tx, _) = watch::channel(false);
        Ok(Self {
            pc,
            ip,
            remote_ips: if cfg.remote_ips.is_empty() {
                vec![ip]
            } else {
                cfg.remote_ips.clone()
            },
            candidates_rx: Mutex::new(Some(rx)),
            gathering_done,
            dropped_remote: Arc::new(Mutex::new(Vec::new())),
            tasks: Arc::new(Mutex::new(Vec::new())),
            closed_tx,
        })
    }

    fn take_candidates(&self) -> mpsc::UnboundedReceiver<Option<Candidate>> {
        self.candidates_rx
            .lock()
            .unwrap()
            .take()
            .expect("take_candidates() may only be called once per peer")
    }

    fn remote_candidate_allowed(&self, candidate: &str) -> bool {
        match parse_candidate_fields(candidate) {
            Some((t, a, _)) => {
                t.eq_ignore_ascii_case("udp")
                    && a.parse::<IpAddr>()
                        .is_ok_and(|a| self.remote_ips.contains(&a))
            }
            None => false,
        }
    }

    fn drop_remote(&self, what: String) {
        eprintln!(
            "peer: dropping remote candidate not on {:?}: {what}",
            self.remote_ips
        );
        self.dropped_remote.lock().unwrap().push(what);
    }

    /// Removes `a=candidate` lines that are not UDP on `self.ip`.
    fn filter_remote_sdp(&self, sdp: &str) -> String {
        let mut out = String::with_capacity(sdp.len());
        for line in sdp.split_inclusive('\n') {
            let t = line.trim();
            if t.starts_with("a=candidate:") && !self.remote_candidate_allowed(t) {
                self.drop_remote(t.to_owned());
                continue;
            }
            out.push_str(line);
        }
        out
    }

    async fn add_remote_candidate(&self, c: Candidate) -> Result<()> {
        let value = c.candidate.trim();
        if !value.is_empty() && !self.remote_candidate_allowed(value) {
            self.drop_remote(value.to_owned());
            return Ok(());
        }
        let init = RTCIceCandidateInit {
            candidate: value.to_owned(),
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_mline_index,
            username_fragment: None,
        };
        tokio::time::timeout(OP_TIMEOUT, self.pc.add_ice_candidate(init))
            .await
            .map_err(|_| anyhow!("add_ice_candidate timed out"))?
            .context("add_ice_candidate")
    }

    async fn set_remote(&self, desc: RTCSessionDescription) -> Result<()> {
        tokio::time::timeout(OP_TIMEOUT, self.pc.set_remote_description(desc))
            .await
            .map_err(|_| anyhow!("set_remote_description timed out"))?
            .context("set_remote_description")
    }

    async fn set_local(&self, desc: RTCSessionDescription) -> Result<()> {
        tokio::time::timeout(OP_TIMEOUT, self.pc.set_local_description(desc))
            .await
            .map_err(|_| anyhow!("set_local_description timed out"))?
            .context("set_local_description")
    }

    async fn local_description_sdp(&self) -> Option<String> {
        self.pc.local_description().await.map(|d| d.sdp)
    }

    async fn wait_gathering_complete(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.gathering_done.load(Ordering::SeqCst) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn connection_state(&self) -> String {
        self.pc.connection_state().to_string()
    }

    fn push_task(&self, h: AbortHandle) {
        let mut t = self.tasks.lock().unwrap();
        t.retain(|h| !h.is_finished());
        t.push(h);
    }

    fn stop_tasks(&self) {
        let _ = self.closed_tx.send(true);
        for h in self.tasks.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    async fn close(&self) {
        self.stop_tasks();
        match tokio::time::timeout(OP_TIMEOUT, self.pc.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("peer: close error: {e}"),
            Err(_) => eprintln!("peer: close timed out"),
        }
    }
}

impl Drop for PeerCore {
    fn drop(&mut self) {
        self.stop_tasks();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let pc = self.pc.clone();
            handle.spawn(async move {
                let _ = tokio::time::timeout(OP_TIMEOUT, pc.close()).await;
            });
        }
    }
}

// ---------------------------------------------------------------------------
// Publisher
// ---------------------------------------------------------------------------

const VIDEO_PACKET_SIZE: usize = 1000;
const VIDEO_PACKETS_PER_FRAME: usize = 3;
const VIDEO_FRAME_INTERVAL: Duration = Duration::from_micros(33_333);
const VIDEO_TS_PER_FRAME: u32 = 3000; // 90 kHz / 30 fps
const VIDEO_KEYFRAME_EVERY: u64 = 60; // frames
const AUDIO_FILLER: usize = 80;
const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
const AUDIO_TS_PER_PACKET: u32 = 960; // 48 kHz * 20 ms
const VP8_KEYFRAME_HEADER_LEN: usize = 10;
const VP8_INTERFRAME_HEADER_LEN: usize = 3;

/// VP8 frame header (RFC 6386 9.1): 3-byte frame tag, plus start code and
/// 640x480 dimensions for keyframes.
fn vp8_frame_header(keyframe: bool) -> Vec<u8> {
    let first_part_size: u32 = 100;
    let tag: u32 = u32::from(!keyframe) // P: 0 = keyframe
        | (1 << 4) // show_frame
        | (first_part_size << 5);
    let mut v = vec![
        (tag & 0xff) as u8,
        ((tag >> 8) & 0xff) as u8,
        ((tag >> 16) & 0xff) as u8,
    ];
    if keyframe {
        v.extend_from_slice(&[0x9d, 0x01, 0x2a]);
        v.extend_from_slice(&640u16.to_le_bytes());
        v.extend_from_slice(&480u16.to_le_bytes());
    }
    v
}

/// The video payload [`TestPublisher`] writes (see the module docs).
pub fn synthetic_video_payload(counter: u64, start_of_frame: bool, keyframe: bool) -> Bytes {
    let mut b = BytesMut::with_capacity(VIDEO_PACKET_SIZE);
    b.put_u8(if start_of_frame { 0x10 } else { 0x00 });
    if start_of_frame {
        b.put_slice(&vp8_frame_header(keyframe));
    }
    b.put_u64(counter);
    while b.len() < VIDEO_PACKET_SIZE {
        b.put_u8(0xa5);
    }
    b.freeze()
}

/// The audio payload [`TestPublisher`] writes (see the module docs).
pub fn synthetic_audio_payload(counter: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + AUDIO_FILLER);
    b.put_u64(counter);
    b.put_bytes(0x5a, AUDIO_FILLER);
    b.freeze()
}

struct PubTrack {
    spec: TrackSpec,
    track: Arc<TrackLocalStaticRTP>,
    sent: Arc<AtomicU64>,
    keyframe_requested: Arc<AtomicBool>,
    keyframe_requests: Arc<AtomicU64>,
}

/// Publishes synthetic VP8 (payload type 96, 90 kHz) and Opus (PT 111, 48 kHz) RTP.
pub struct TestPublisher {
    core: PeerCore,
    tracks: Vec<PubTrack>,
    media_started: AtomicBool,
}

impl TestPublisher {
    /// Creates the peer connection with one sendonly transceiver per track.
    pub async fn new(cfg: &PeerConfig, tracks: &[TrackSpec]) -> Result<Self> {
        let core = PeerCore::new(cfg).await?;
        let mut pub_tracks = Vec::new();
        for spec in tracks {
            let cap = match spec.kind {
                Kind::Audio => opus_capability(),
                Kind::Video => vp8_capability(),
            };
            let track = Arc::new(TrackLocalStaticRTP::new(
                cap,
                spec.track_id.clone(),
                spec.stream_id.clone(),
            ));
            let transceiver = core
                .pc
                .add_transceiver_from_track(
                    track.clone(),
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        send_encodings: vec![],
                    }),
                )
                .await
                .with_context(|| format!("add_transceiver_from_track({})", spec.track_id))?;
            let keyframe_requested = Arc::new(AtomicBool::new(false));
            let keyframe_requests = Arc::new(AtomicU64::new(0));
            // RTCP read loop: lets the interceptors (NACK responder, reports)
            // see incoming RTCP and records PLI/FIR. Ends when the sender stops.
            let sender = transceiver.sender().await;
            let (kr, kc) = (keyframe_requested.clone(), keyframe_requests.clone());
            let mut closed = core.closed_tx.subscribe();
            let h = tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = closed.changed() => break,
                        res = sender.read_rtcp() => match res {
                            Ok((pkts, _)) => {
                                for p in pkts {
                                    let any = p.as_any();
                                    if any.downcast_ref::<PictureLossIndication>().is_some()
                                        || any.downcast_ref::<FullIntraRequest>().is_some()
                                    {
                                        kr.store(true, Ordering::SeqCst);
                                        kc.fetch_add(1, Ordering::SeqCst);
                                    }
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
            });
            core.push_task(h.abort_handle());
            pub_tracks.push(PubTrack {
                spec: spec.clone(),
                track,
                sent: Arc::new(AtomicU64::new(0)),
                keyframe_requested,
                keyframe_requests,
            });
        }
        Ok(Self {
            core,
            tracks: pub_tracks,
            media_started: AtomicBool::new(false),
        })
    }

    /// Creates an offer, sets it as local description and returns its SDP
    /// (trickle ICE: does not wait for gathering; candidates come through
    /// `take_candidates`).
    pub async fn create_offer(&self) -> Result<String> {
        let offer = tokio::time::timeout(OP_TIMEOUT, self.core.pc.create_offer(None))
            .await
            .map_err(|_| anyhow!("create_offer timed out"))?
            .context("create_offer")?;
        let sdp = offer.sdp.clone();
        self.core.set_local(offer).await?;
        Ok(sdp)
    }

    /// Sets the remote answer (candidates not on the configured IP are stripped).
    pub async fn set_answer(&self, sdp: &str) -> Result<()> {
        let desc = RTCSessionDescription::answer(self.core.filter_remote_sdp(sdp))?;
        self.core.set_remote(desc).await
    }

    /// Adds a trickled remote candidate. An empty candidate string means
    /// end-of-candidates. Candidates not UDP on the configured IP are dropped
    /// (recorded in `dropped_remote_candidates`) and `Ok` is returned.
    pub async fn add_remote_candidate(&self, c: Candidate) -> Result<()> {
        self.core.add_remote_candidate(c).await
    }

    /// Local ICE candidates as they are gathered; `None` = end of candidates.
    /// Panics if called twice.
    pub fn take_candidates(&self) -> mpsc::UnboundedReceiver<Option<Candidate>> {
        self.core.take_candidates()
    }

    /// Starts writing RTP to every track (video ~30 fps x 3 packets, audio
    /// 50 pkt/s). Packets are only produced while the peer connection is
    /// `connected`, so the first packet sent carries counter 0. Stops when the
    /// publisher is closed or dropped. Calling it again is a no-op.
    pub fn start_media(&self) {
        if self.media_started.swap(true, Ordering::SeqCst) {
            return;
        }
        for t in &self.tracks {
            let pc = self.core.pc.clone();
            let track = t.track.clone();
            let sent = t.sent.clone();
            let kreq = t.keyframe_requested.clone();
            let kind = t.spec.kind;
            let mut closed = self.core.closed_tx.subscribe();
            let h = tokio::spawn(async move {
                let mut seq = random_u64() as u16;
                let mut ts = (random_u64() as u32) | 1;
                let mut frame: u64 = 0;
                let mut next_keyframe: u64 = 0;
                let mut interval = tokio::time::interval(match kind {
                    Kind::Video => VIDEO_FRAME_INTERVAL,
                    Kind::Audio => AUDIO_INTERVAL,
                });
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    if *closed.borrow() {
                        break;
                    }
                    tokio::select! {
                        _ = closed.changed() => break,
                        _ = interval.tick() => {}
                    }
                    if pc.connection_state() != RTCPeerConnectionState::Connected {
                        continue;
                    }
                    match kind {
                        Kind::Video => {
                            // swap first so a pending request is always consumed
                            let requested = kreq.swap(false, Ordering::SeqCst);
                            let keyframe = requested || frame >= next_keyframe;
                            if keyframe {
                                next_keyframe = frame + VIDEO_KEYFRAME_EVERY;
                            }
                            for i in 0..VIDEO_PACKETS_PER_FRAME {
                                let counter = sent.load(Ordering::SeqCst);
                                let pkt = RtpPacket {
                                    header: RtpHeader {
                                        version: 2,
                                        marker: i == VIDEO_PACKETS_PER_FRAME - 1,
                                        payload_type: 96,
                                        sequence_number: seq,
                                        timestamp: ts,
                                        ..Default::default()
                                    },
                                    payload: synthetic_video_payload(counter, i == 0, keyframe),
                                };
                                let _ = track.write_rtp(&pkt).await;
                                sent.fetch_add(1, Ordering::SeqCst);
                                seq = seq.wrapping_add(1);
                            }
                            ts = ts.wrapping_add(VIDEO_TS_PER_FRAME);
                            frame += 1;
                        }
                        Kind::Audio => {
                            let counter = sent.load(Ordering::SeqCst);
                            let pkt = RtpPacket {
                                header: RtpHeader {
                                    version: 2,
                                    marker: counter == 0,
                                    payload_type: 111,
                                    sequence_number: seq,
                                    timestamp: ts,
                                    ..Default::default()
                                },
                                payload: synthetic_audio_payload(counter),
                            };
                            let _ = track.write_rtp(&pkt).await;
                            sent.fetch_add(1, Ordering::SeqCst);
                            seq = seq.wrapping_add(1);
                            ts = ts.wrapping_add(AUDIO_TS_PER_PACKET);
                        }
                    }
                }
            });
            self.core.push_task(h.abort_handle());
        }
    }

    /// Packets written so far to track `track_id` (0 for an unknown id).
    pub fn packets_sent(&self, track_id: &str) -> u64 {
        self.tracks
            .iter()
            .find(|t| t.spec.track_id == track_id)
            .map(|t| t.sent.load(Ordering::SeqCst))
            .unwrap_or(0)
    }

    /// PLI/FIR packets received for track `track_id`.
    pub fn keyframe_requests(&self, track_id: &str) -> u64 {
        self.tracks
            .iter()
            .find(|t| t.spec.track_id == track_id)
            .map(|t| t.keyframe_requests.load(Ordering::SeqCst))
            .unwrap_or(0)
    }

    /// "new", "connecting", "connected", "disconnected", "failed", "closed".
    pub fn connection_state(&self) -> String {
        self.core.connection_state()
    }

    /// Current local SDP (includes the candidates gathered so far).
    pub async fn local_description_sdp(&self) -> Option<String> {
        self.core.local_description_sdp().await
    }

    /// Waits (bounded) until local ICE gathering has completed.
    pub async fn wait_gathering_complete(&self, timeout: Duration) -> bool {
        self.core.wait_gathering_complete(timeout).await
    }

    /// Remote candidates that were dropped because they were not UDP on the configured IP.
    pub fn dropped_remote_candidates(&self) -> Vec<String> {
        self.core.dropped_remote.lock().unwrap().clone()
    }

    /// The underlying peer connection (for anything not covered here).
    pub fn peer_connection(&self) -> Arc<RTCPeerConnection> {
        self.core.pc.clone()
    }

    /// Stops media and closes the peer connection (bounded).
    pub async fn close(&self) {
        self.core.close().await
    }
}

// ---------------------------------------------------------------------------
// Subscriber
// ---------------------------------------------------------------------------

struct TrackEntry {
    stats: TrackStats,
    last_seq: Option<(u32, u16)>,
}

#[derive(Default)]
struct SubShared {
    tracks: Mutex<HashMap<String, TrackEntry>>,
}

impl SubShared {
    fn track_added(&self, key: &str, kind: Kind, stream_id: &str, track_id: &str, ssrc: u32) {
        let mut map = self.tracks.lock().unwrap();
        let e = map.entry(key.to_owned()).or_insert_with(|| TrackEntry {
            stats: TrackStats::default(),
            last_seq: None,
        });
        e.stats.kind = Some(kind);
        e.stats.probator = stream_id == "webrtc-rs" || track_id == "probator";
        e.stats.stream_id = stream_id.to_owned();
        e.stats.ssrc = Some(ssrc);
        e.stats.tracks_added += 1;
        if e.stats.track_added_at.is_none() {
            e.stats.track_added_at = Some(Instant::now());
        }
    }

    fn record(&self, key: &str, kind: Kind, ssrc: u32, pkt: &RtpPacket) {
        let now = Instant::now();
        let parsed = parse_counter(kind, &pkt.payload);
        let mut map = self.tracks.lock().unwrap();
        let Some(e) = map.get_mut(key) else {
            return;
        };
        let s = &mut e.stats;
        s.packets += 1;
        if s.first_packet_at.is_none() {
            s.first_packet_at = Some(now);
        }
        s.last_packet_at = Some(now);

        let seq = pkt.header.sequence_number;
        match e.last_seq {
            Some((last_ssrc, last)) if last_ssrc == ssrc => {
                let diff = seq.wrapping_sub(last);
                if diff == 0 || diff >= 0x8000 {
                    s.seq_backwards += 1;
                } else {
                    s.seq_gaps += u64::from(diff - 1);
                    e.last_seq = Some((ssrc, seq));
                }
            }
            _ => e.last_seq = Some((ssrc, seq)),
        }

        match parsed {
            Some((c, key_start)) => {
                if key_start {
                    s.keyframes += 1;
                }
                match s.last_counter {
                    Some(last) if c <= last => s.counter_backwards += 1,
                    Some(last) => {
                        s.counter_gaps += c - last - 1;
                        s.last_counter = Some(c);
                    }
                    None => {
                        s.first_counter = Some(c);
                        s.last_counter = Some(c);
                    }
                }
            }
            None => s.unparsed_packets += 1,
        }
    }
}

/// Receives whatever the SFU sends; counts packets per track id.
pub struct TestSubscriber {
    core: PeerCore,
    shared: Arc<SubShared>,
    prepare_dc: Mutex<Option<Arc<RTCDataChannel>>>,
}

impl TestSubscriber {
    pub async fn new(cfg: &PeerConfig) -> Result<Self> {
        let core = PeerCore::new(cfg).await?;
        let shared = Arc::new(SubShared::default());
        let sh = shared.clone();
        let closed_rx = core.closed_tx.subscribe();
        // Read loops are registered with the core and aborted on close/drop;
        // they also stop on their own when the track ends or the peer closes.
        let tasks = core.tasks.clone();
        core.pc.on_track(Box::new(
            move |track: Arc<TrackRemote>, _receiver, _transceiver| {
                let kind = match track.kind() {
                    RTPCodecType::Audio => Kind::Audio,
                    _ => Kind::Video,
                };
                let track_id = track.id();
                let stream_id = track.stream_id();
                let ssrc = track.ssrc();
                let key = if track_id.is_empty() {
                    format!("ssrc-{ssrc}")
                } else {
                    track_id.clone()
                };
                sh.track_added(&key, kind, &stream_id, &track_id, ssrc);
                let sh2 = sh.clone();
                let mut closed = closed_rx.clone();
                let h = tokio::spawn(async move {
                    loop {
                        if *closed.borrow() {
                            break;
                        }
                        tokio::select! {
                            _ = closed.changed() => break,
                            res = track.read_rtp() => match res {
                                Ok((pkt, _)) => sh2.record(&key, kind, ssrc, &pkt),
                                Err(_) => break,
                            }
                        }
                    }
                });
                let mut t = tasks.lock().unwrap();
                t.retain(|h| !h.is_finished());
                t.push(h.abort_handle());
                Box::pin(async {})
            },
        ));
        Ok(Self {
            core,
            shared,
            prepare_dc: Mutex::new(None),
        })
    }

    /// Creates a data channel "prepare" and returns an offer SDP, after ICE
    /// gathering completed (bounded to 10 s), so the offer carries candidates.
    pub async fn prepare_offer(&self) -> Result<String> {
        let dc = self
            .core
            .pc
            .create_data_channel("prepare", None)
            .await
            .context("create_data_channel")?;
        *self.prepare_dc.lock().unwrap() = Some(dc);
        let offer = tokio::time::timeout(OP_TIMEOUT, self.core.pc.create_offer(None))
            .await
            .map_err(|_| anyhow!("create_offer timed out"))?
            .context("create_offer")?;
        let mut gathered = self.core.pc.gathering_complete_promise().await;
        self.core.set_local(offer).await?;
        if tokio::time::timeout(OP_TIMEOUT, gathered.recv())
            .await
            .is_err()
        {
            bail!("ICE gathering did not complete within {OP_TIMEOUT:?}");
        }
        self.core
            .local_description_sdp()
            .await
            .ok_or_else(|| anyhow!("no local description after prepare offer"))
    }

    pub async fn set_prepare_answer(&self, sdp: &str) -> Result<()> {
        let desc = RTCSessionDescription::answer(self.core.filter_remote_sdp(sdp))?;
        self.core.set_remote(desc).await
    }

    /// Whether the "prepare" data channel is open.
    pub fn prepare_channel_open(&self) -> bool {
        self.prepare_dc
            .lock()
            .unwrap()
            .as_ref()
            .map(|dc| dc.ready_state() == RTCDataChannelState::Open)
            .unwrap_or(false)
    }

    /// Sets the remote offer, creates and sets the answer, returns the answer
    /// SDP (trickle ICE: does not wait for gathering).
    pub async fn answer(&self, offer_sdp: &str) -> Result<String> {
        let desc = RTCSessionDescription::offer(self.core.filter_remote_sdp(offer_sdp))?;
        self.core.set_remote(desc).await?;
        let answer = tokio::time::timeout(OP_TIMEOUT, self.core.pc.create_answer(None))
            .await
            .map_err(|_| anyhow!("create_answer timed out"))?
            .context("create_answer")?;
        let sdp = answer.sdp.clone();
        self.core.set_local(answer).await?;
        Ok(sdp)
    }

    /// See [`TestPublisher::add_remote_candidate`].
    pub async fn add_remote_candidate(&self, c: Candidate) -> Result<()> {
        self.core.add_remote_candidate(c).await
    }

    /// Local ICE candidates as they are gathered; `None` = end of candidates.
    /// Panics if called twice.
    pub fn take_candidates(&self) -> mpsc::UnboundedReceiver<Option<Candidate>> {
        self.core.take_candidates()
    }

    /// Snapshot of per-track stats, keyed by track id (`ssrc-<n>` if the
    /// remote track has no id).
    pub fn stats(&self) -> HashMap<String, TrackStats> {
        self.shared
            .tracks
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.stats.clone()))
            .collect()
    }

    /// Stats of one track, if it arrived.
    pub fn track_stats(&self, track_id: &str) -> Option<TrackStats> {
        self.shared
            .tracks
            .lock()
            .unwrap()
            .get(track_id)
            .map(|e| e.stats.clone())
    }

    /// Waits (bounded by `timeout`) until track `track_id` has received at
    /// least `n` packets; returns whether it did.
    pub async fn wait_for_packets(&self, track_id: &str, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let have = self
                .shared
                .tracks
                .lock()
                .unwrap()
                .get(track_id)
                .map(|e| e.stats.packets)
                .unwrap_or(0);
            if have >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// "new", "connecting", "connected", "disconnected", "failed", "closed".
    pub fn connection_state(&self) -> String {
        self.core.connection_state()
    }

    /// Current local SDP (includes the candidates gathered so far).
    pub async fn local_description_sdp(&self) -> Option<String> {
        self.core.local_description_sdp().await
    }

    /// Waits (bounded) until local ICE gathering has completed.
    pub async fn wait_gathering_complete(&self, timeout: Duration) -> bool {
        self.core.wait_gathering_complete(timeout).await
    }

    /// Remote candidates that were dropped because they were not UDP on the configured IP.
    pub fn dropped_remote_candidates(&self) -> Vec<String> {
        self.core.dropped_remote.lock().unwrap().clone()
    }

    /// The underlying peer connection (for anything not covered here).
    pub fn peer_connection(&self) -> Arc<RTCPeerConnection> {
        self.core.pc.clone()
    }

    /// Stops the read loops and closes the peer connection (bounded).
    pub async fn close(&self) {
        self.core.close().await
    }
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
