//! Synthetic media: what publishers send and what receivers read back.
//!
//! Every RTP payload ends with a 24-byte tail the SFU forwards untouched:
//! `[magic "RSLT"][source u32][counter u64][send time u64]`, all big-endian.
//! `source` names the publisher's track (publisher index × 2, plus 1 for
//! audio), `counter` counts that track's packets from 0, and the send
//! time is nanoseconds on this process's clock ([`now_ns`]), so one-way delay
//! is measured without synchronized clocks (publishers and receivers live in
//! the same process). SFUs may rewrite RTP sequence numbers, timestamps and
//! SSRCs; only the tail is trusted.
//!
//! Video packets start with a VP8 payload descriptor (`0x10` on the first
//! packet of a frame, `0x00` after); a frame's first packet carries a VP8
//! frame header, a keyframe one (640x480) every `keyframe_every` frames and
//! at the next frame after a PLI or FIR, like an encoder, so an SFU that
//! waits for keyframes finds them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use sfu_testkit::rtc::{self, Rtc, PT_OPUS, PT_VP8};
use sfu_testkit::vp8;
use tokio::sync::{oneshot, watch};
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp::header::Header;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTPCodecType};
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_remote::TrackRemote;

use crate::metrics::{ClientRec, Metrics, SourceRec};
use crate::tail::put_tail;
pub use crate::tail::{now_ns, parse_tail, Tail, TAIL};

/// What every participant task shares.
#[derive(Clone)]
pub struct Ctx {
    /// Peer connection factory.
    pub rtc: Arc<Rtc>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// What publishers send.
    pub media: MediaConfig,
    /// Turns true when this participant should leave.
    pub stop: watch::Receiver<bool>,
    /// Subscribers prepare their subscribe PeerConnection (`subscribe-prepare`)
    /// instead of letting the server offer first (the seed-001 flow).
    pub prepare: bool,
}

/// What every publisher sends.
#[derive(Debug, Clone, Copy)]
pub struct MediaConfig {
    /// Video bitrate, kbit/s.
    pub video_kbps: u32,
    /// Video frames per second.
    pub video_fps: u32,
    /// Audio packets per second.
    pub audio_pps: u32,
    /// Largest video payload, bytes.
    pub mtu_payload: usize,
    /// A keyframe every this many frames.
    pub keyframe_every: u32,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            video_kbps: 1000,
            video_fps: 30,
            audio_pps: 50,
            mtu_payload: 1100,
            keyframe_every: 60,
        }
    }
}

impl MediaConfig {
    /// Video packets per frame and payload size of each.
    pub fn video_packets(&self) -> (usize, usize) {
        let fps = self.video_fps.max(1) as usize;
        let frame_bytes = (self.video_kbps as usize * 1000 / 8 / fps).max(TAIL + 16);
        let packets = frame_bytes.div_ceil(self.mtu_payload.max(TAIL + 16));
        (packets, frame_bytes.div_ceil(packets))
    }

    /// Packets per second of one publisher's video track.
    pub fn video_pps(&self) -> f64 {
        (self.video_packets().0 as u32 * self.video_fps) as f64
    }
}

/// Source id of a publisher's track.
pub fn source_id(publisher: u32, video: bool) -> u32 {
    publisher * 2 + u32::from(!video)
}

/// A publisher's two tracks, added to a peer connection before its offer.
pub struct Publisher {
    video: Arc<TrackLocalStaticRTP>,
    audio: Arc<TrackLocalStaticRTP>,
    index: u32,
    keyframe_wanted: Arc<AtomicBool>,
}

impl Publisher {
    /// Adds a VP8 and an Opus track (stream id `stream`) to `pc`.
    pub async fn attach(pc: &RTCPeerConnection, index: u32, stream: &str) -> Result<Publisher> {
        let video = Arc::new(TrackLocalStaticRTP::new(
            RTCRtpCodecCapability {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90000,
                ..Default::default()
            },
            format!("{stream}-video"),
            stream.to_owned(),
        ));
        let audio = Arc::new(TrackLocalStaticRTP::new(
            RTCRtpCodecCapability {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48000,
                channels: 2,
                ..Default::default()
            },
            format!("{stream}-audio"),
            stream.to_owned(),
        ));
        let keyframe_wanted = Arc::new(AtomicBool::new(false));
        for (track, is_video) in [(&video, true), (&audio, false)] {
            let sender = pc
                .add_track(track.clone() as Arc<_>)
                .await
                .context("add track")?;
            // RTCP must be read for the interceptors (NACK responder) to
            // run; a PLI or FIR asks for a keyframe, as it would of an
            // encoder (an SFU may hold a new subscriber until one comes).
            let wanted = keyframe_wanted.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1500];
                while let Ok((packets, _)) = sender.read(&mut buf).await {
                    let asks = packets.iter().any(|p| rtc::is_keyframe_request(&**p));
                    if is_video && asks {
                        wanted.store(true, Ordering::Relaxed);
                    }
                }
            });
        }
        Ok(Publisher {
            video,
            audio,
            index,
            keyframe_wanted,
        })
    }

    /// Starts sending once `pc` is connected (media written before that
    /// is lost, and would count as sent), until `ctx.stop`. Call it before
    /// the offer so the connected state cannot be missed.
    pub fn send_when_connected(self, pc: &RTCPeerConnection, ctx: &Ctx) {
        let (tx, rx) = oneshot::channel::<()>();
        let tx = std::sync::Mutex::new(Some(tx));
        pc.on_peer_connection_state_change(Box::new(move |s| {
            if s == RTCPeerConnectionState::Connected {
                if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                    let _ = tx.send(());
                }
            }
            Box::pin(async {})
        }));
        let (cfg, metrics, stop) = (ctx.media, ctx.metrics.clone(), ctx.stop.clone());
        tokio::spawn(async move {
            if rx.await.is_ok() {
                self.send(cfg, metrics, stop).await;
            }
        });
    }

    /// Sends until `stop` turns true or the tracks stop accepting packets.
    /// Both tracks run in one task so one publisher costs one timer.
    pub async fn send(
        self,
        cfg: MediaConfig,
        metrics: Arc<Metrics>,
        mut stop: watch::Receiver<bool>,
    ) {
        let video_src = metrics.source(source_id(self.index, true));
        let audio_src = metrics.source(source_id(self.index, false));
        let (per_frame, size) = cfg.video_packets();
        let frame_every = Duration::from_secs(1) / cfg.video_fps.max(1);
        let audio_every = Duration::from_secs(1) / cfg.audio_pps.max(1);
        let start = tokio::time::Instant::now();
        let mut next_frame = start;
        let mut next_audio = start;
        let mut video = Stream::new(PT_VP8, 90_000);
        let mut audio = Stream::new(PT_OPUS, 48_000);
        let mut frame: u32 = 0;
        loop {
            let next = next_frame.min(next_audio);
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let now = tokio::time::Instant::now();
            if now >= next_frame {
                let ts = rtp_ts(now - start, 90_000);
                let key = frame % cfg.keyframe_every.max(1) == 0
                    || self.keyframe_wanted.swap(false, Ordering::Relaxed);
                for i in 0..per_frame {
                    let payload = video_payload(&video_src, i == 0, key, size);
                    let last = i + 1 == per_frame;
                    if !video.write(&self.video, ts, last, payload).await {
                        return;
                    }
                }
                frame = frame.wrapping_add(1);
                next_frame += frame_every;
                if next_frame < now {
                    // Fell behind (overloaded machine): skip, do not burst.
                    next_frame = now + frame_every;
                }
            }
            if now >= next_audio {
                let ts = rtp_ts(now - start, 48_000);
                let payload = audio_payload(&audio_src);
                if !audio.write(&self.audio, ts, true, payload).await {
                    return;
                }
                next_audio += audio_every;
                if next_audio < now {
                    next_audio = now + audio_every;
                }
            }
        }
    }
}

fn rtp_ts(elapsed: Duration, clock: u64) -> u32 {
    (elapsed.as_micros() as u64 * clock / 1_000_000) as u32
}

struct Stream {
    pt: u8,
    seq: u16,
    _clock: u32,
}

impl Stream {
    fn new(pt: u8, clock: u32) -> Stream {
        Stream {
            pt,
            seq: rand::random(),
            _clock: clock,
        }
    }

    /// False when the track is closed for good.
    async fn write(
        &mut self,
        track: &TrackLocalStaticRTP,
        timestamp: u32,
        marker: bool,
        payload: Bytes,
    ) -> bool {
        let packet = Packet {
            header: Header {
                version: 2,
                marker,
                payload_type: self.pt,
                sequence_number: self.seq,
                timestamp,
                ..Default::default()
            },
            payload,
        };
        self.seq = self.seq.wrapping_add(1);
        match track.write_rtp(&packet).await {
            Ok(_) => true,
            // Not bound yet (negotiation pending) is not an error; closed is.
            Err(webrtc::Error::ErrClosedPipe) => false,
            Err(_) => true,
        }
    }
}

/// The first partition size the frame headers announce.
const FIRST_PARTITION: u32 = 16;

fn video_payload(src: &SourceRec, first: bool, key: bool, size: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(size);
    b.put_slice(vp8::PacketStart::new(first, key, FIRST_PARTITION).as_bytes());
    let fill = size.saturating_sub(b.len() + TAIL);
    b.put_bytes(0x5a, fill);
    put_tail(&mut b, src.next());
    b.freeze()
}

fn audio_payload(src: &SourceRec) -> Bytes {
    let mut b = BytesMut::with_capacity(80 + TAIL);
    // An Opus TOC byte (CELT fullband 20 ms) then filler.
    b.put_u8(0xfc);
    b.put_bytes(0xa5, 79);
    put_tail(&mut b, src.next());
    b.freeze()
}

/// Registers an `on_track` handler that feeds every received packet of `pc`
/// into `client`'s statistics, until `stop`.
pub fn receive(
    pc: &RTCPeerConnection,
    metrics: Arc<Metrics>,
    client: Arc<ClientRec>,
    stop: watch::Receiver<bool>,
) {
    pc.on_track(Box::new(
        move |track: Arc<TrackRemote>, _receiver, _transceiver| {
            let metrics = metrics.clone();
            let client = client.clone();
            let mut stop = stop.clone();
            let video = track.kind() == RTPCodecType::Video;
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1500];
                loop {
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        r = track.read(&mut buf) => match r {
                            Ok((packet, _)) => {
                                let at = now_ns();
                                if let Some(tail) = parse_tail(&packet.payload) {
                                    metrics.received(&client, tail, at, video);
                                }
                            }
                            Err(_) => return,
                        }
                    }
                }
            });
            Box::pin(async {})
        },
    ));
}
