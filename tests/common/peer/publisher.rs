//! The test publisher: synthetic VP8 and Opus with counter payloads, on a
//! timer, while connected; it records the keyframe requests it gets.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use sfu_testkit::rtc::{self, Profile, PT_OPUS, PT_VP8};
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp::header::Header as RtpHeader;
use webrtc::rtp::packet::Packet as RtpPacket;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;

use super::conn::Peer;
use super::payload::{synthetic_audio_payload, synthetic_video_payload};
use super::{Kind, PeerConfig, TrackSpec};

const VIDEO_PACKETS_PER_FRAME: usize = 3;
const VIDEO_FRAME_INTERVAL: Duration = Duration::from_micros(33_333);
const VIDEO_TS_PER_FRAME: u32 = 3000; // 90 kHz / 30 fps
const VIDEO_KEYFRAME_EVERY: u64 = 60; // frames
const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
const AUDIO_TS_PER_PACKET: u32 = 960; // 48 kHz * 20 ms

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

struct PubTrack {
    spec: TrackSpec,
    track: Arc<TrackLocalStaticRTP>,
    sent: Arc<AtomicU64>,
    keyframe_requested: Arc<AtomicBool>,
    keyframe_requests: Arc<AtomicU64>,
}

/// Publishes synthetic VP8 (payload type 96, 90 kHz) and Opus (PT 111, 48 kHz) RTP.
pub struct TestPublisher {
    core: Peer,
    tracks: Vec<PubTrack>,
    media_started: AtomicBool,
}

impl TestPublisher {
    /// Creates the peer connection with one sendonly transceiver per track.
    pub async fn new(cfg: &PeerConfig, tracks: &[TrackSpec]) -> Result<Self> {
        let core = Peer::new(cfg).await?;
        let mut pub_tracks = Vec::new();
        for spec in tracks {
            let cap = match spec.kind {
                Kind::Audio => rtc::opus(),
                Kind::Video => Profile::Browser.vp8(),
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
                                    if rtc::is_keyframe_request(&*p) {
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
        let pc = &self.core.pc;
        self.core
            .set_local_made("create_offer", pc.create_offer(None))
            .await
    }

    /// Sets the remote answer (candidates not on the configured IP are stripped).
    pub async fn set_answer(&self, sdp: &str) -> Result<()> {
        let desc = RTCSessionDescription::answer(self.core.filter_remote_sdp(sdp))?;
        self.core.set_remote(desc).await
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
                                        payload_type: PT_VP8,
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
                                    payload_type: PT_OPUS,
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

    /// A counter of track `track_id` (0 for an unknown id).
    fn count(&self, track_id: &str, counter: impl Fn(&PubTrack) -> &AtomicU64) -> u64 {
        self.tracks
            .iter()
            .find(|t| t.spec.track_id == track_id)
            .map(|t| counter(t).load(Ordering::SeqCst))
            .unwrap_or(0)
    }

    /// Packets written so far to track `track_id` (0 for an unknown id).
    pub fn packets_sent(&self, track_id: &str) -> u64 {
        self.count(track_id, |t| &t.sent)
    }

    /// PLI/FIR packets received for track `track_id`.
    pub fn keyframe_requests(&self, track_id: &str) -> u64 {
        self.count(track_id, |t| &t.keyframe_requests)
    }
}

/// What both peers have (candidates, state, close) is [`Peer`]'s.
impl Deref for TestPublisher {
    type Target = Peer;

    fn deref(&self) -> &Peer {
        &self.core
    }
}
