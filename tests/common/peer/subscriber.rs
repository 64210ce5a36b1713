//! The test subscriber: receives whatever the SFU sends and keeps, per
//! track, packet counts, counter and sequence gaps and keyframes.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sfu_testkit::rtc;
use webrtc::data_channel::data_channel_state::RTCDataChannelState;
use webrtc::data_channel::RTCDataChannel;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp::packet::Packet as RtpPacket;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::track::track_remote::TrackRemote;

use super::conn::Peer;
use super::payload::parse_counter;
use super::{Kind, PeerConfig, TrackStats};

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
    core: Peer,
    shared: Arc<SubShared>,
    prepare_dc: Mutex<Option<Arc<RTCDataChannel>>>,
}

impl TestSubscriber {
    pub async fn new(cfg: &PeerConfig) -> Result<Self> {
        let core = Peer::new(cfg).await?;
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
    /// gathering completed (bounded, the testkit's `rtc::offer`), so the
    /// offer carries candidates.
    pub async fn prepare_offer(&self) -> Result<String> {
        let dc = self
            .core
            .pc
            .create_data_channel("prepare", None)
            .await
            .context("create_data_channel")?;
        *self.prepare_dc.lock().unwrap() = Some(dc);
        rtc::offer(&self.core.pc).await
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
        let pc = &self.core.pc;
        self.core
            .set_local_made("create_answer", pc.create_answer(None))
            .await
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
}

/// What both peers have (candidates, state, close) is [`Peer`]'s.
impl Deref for TestSubscriber {
    type Target = Peer;

    fn deref(&self) -> &Peer {
        &self.core
    }
}
