//! A webrtc-rs participant for the browser interop room
//! (`tests/browser/interop.test.mjs`): it publishes real VP8 (frames read
//! from an IVF file that vpxenc made) and Opus silence, subscribes to every
//! other publisher with the prepared flow, and prints one JSON object per
//! line: `auth-ok`, `error`, `reconnect`, and every second `stats` with the
//! packets, video frames and VP8 keyframes received per track (msid track
//! id) and the server's ICE ufrag of every subscribe offer.
//!
//! Network rule: candidates on `--ip` only (the load tester's `Rtc`), and
//! the run ends by itself after `--seconds`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use serde_json::json;
use sfu_testkit::proto::{self, Subscriptions};
use sfu_testkit::rtc::{self, Rtc};
use sfu_testkit::sdp::ice_ufrag;
use sfu_testkit::vp8;
use signaling::client::ClientError;
use signaling::{CandidateInit, ClientMessage, ServerMessage};
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::media::io::ivf_reader::IVFReader;
use webrtc::media::Sample;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTPCodecType};
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_remote::TrackRemote;

#[derive(Parser)]
struct Args {
    /// WebSocket URL of the server (`ws://host:port/ws`).
    #[arg(long)]
    url: String,
    /// Token.
    #[arg(long)]
    token: String,
    /// Room to join.
    #[arg(long)]
    room: String,
    /// The only address ICE may use, on both sides (the load tester's
    /// rule: the server must be reachable there).
    #[arg(long, default_value = "10.77.0.1")]
    ip: IpAddr,
    /// VP8 frames to send, in a loop (IVF).
    #[arg(long)]
    ivf: std::path::PathBuf,
    /// The run ends after this long.
    #[arg(long, default_value_t = 150)]
    seconds: u64,
}

/// What arrived on one track.
#[derive(Default, Clone, serde::Serialize)]
struct TrackStats {
    kind: String,
    packets: u64,
    frames: u64,
    keyframes: u64,
}

type Stats = Arc<Mutex<BTreeMap<String, TrackStats>>>;

fn emit(v: serde_json::Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let limit = Duration::from_secs(args.seconds);
    // The run ends by itself after `--seconds` (the timeout's error).
    if let Ok(Err(e)) = tokio::time::timeout(limit, run(&args)).await {
        emit(json!({"event": "fatal", "message": format!("{e:#}")}));
        std::process::exit(1);
    }
}

fn count_track(track: Arc<TrackRemote>, stats: Stats) {
    tokio::spawn(async move {
        let id = track.id();
        let kind = track.kind().to_string();
        let video = track.kind() == RTPCodecType::Video;
        while let Ok((pkt, _)) = track.read_rtp().await {
            // A poisoned lock still holds valid counters.
            let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
            let e = s.entry(id.clone()).or_default();
            e.kind.clone_from(&kind);
            e.packets += 1;
            if video {
                if pkt.header.marker {
                    e.frames += 1;
                }
                if vp8::keyframe_start(&pkt.payload) {
                    e.keyframes += 1;
                }
            }
        }
    });
}

fn ivf_frames(path: &std::path::Path) -> Result<Vec<Bytes>> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let (mut reader, _header) = IVFReader::new(std::io::BufReader::new(file))
        .map_err(|e| anyhow!("{} is not IVF: {e}", path.display()))?;
    let mut frames = Vec::new();
    while let Ok((frame, _)) = reader.parse_next_frame() {
        frames.push(frame.freeze());
    }
    if frames.is_empty() {
        bail!("{} has no frames", path.display());
    }
    Ok(frames)
}

/// Sends the IVF frames at 30 fps and Opus silence every 20 ms, in loops.
fn send_media(
    video: Arc<TrackLocalStaticSample>,
    audio: Arc<TrackLocalStaticSample>,
    frames: Vec<Bytes>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(33));
        for frame in frames.iter().cycle() {
            tick.tick().await;
            let sample = Sample {
                data: frame.clone(),
                duration: Duration::from_millis(33),
                ..Default::default()
            };
            if video.write_sample(&sample).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        // An Opus packet of silence (TOC 0xf8: CELT FB 20 ms, one frame).
        let silence = Bytes::from_static(&[0xf8, 0xff, 0xfe]);
        loop {
            tick.tick().await;
            let sample = Sample {
                data: silence.clone(),
                duration: Duration::from_millis(20),
                ..Default::default()
            };
            if audio.write_sample(&sample).await.is_err() {
                break;
            }
        }
    });
}

async fn add_candidate(rtc: &Rtc, pc: &RTCPeerConnection, c: Option<CandidateInit>) {
    if let Some(c) = c {
        proto::add_remote_candidate(rtc, pc, &c).await;
    }
}

async fn run(args: &Args) -> Result<()> {
    let rtc = Rtc::new(args.ip)?;
    let frames = ivf_frames(&args.ivf)?;
    let wait = Duration::from_secs(10);
    let (mut client, own) = proto::sign_in(&args.url, &args.token, wait).await?;
    emit(json!({"event": "auth-ok", "participantId": own}));
    let room = Some(args.room.clone());
    let publishers = proto::join(&mut client, &args.room, wait).await?;
    let mut subscriptions = Subscriptions::new(&own, publishers);

    // Subscribe PeerConnection, prepared with a data channel (the web
    // library's flow).
    let stats: Stats = Arc::default();
    let sub = rtc.peer().await?;
    {
        let stats = Arc::clone(&stats);
        sub.on_track(Box::new(move |track, _, _| {
            count_track(track, Arc::clone(&stats));
            Box::pin(async {})
        }));
    }
    let _dc = sub.create_data_channel("prepare", None).await?;
    let offer = rtc::offer(&sub).await?;
    client
        .send(&ClientMessage::SubscribePrepare {
            room_name: room.clone(),
            offer,
        })
        .await?;

    // Publish PeerConnection: VP8 and Opus.
    let publ = rtc.peer().await?;
    let stream = format!("rs-{own}");
    let cap = |mime: &str, rate: u32, channels: u16| RTCRtpCodecCapability {
        mime_type: mime.to_owned(),
        clock_rate: rate,
        channels,
        ..Default::default()
    };
    let video = Arc::new(TrackLocalStaticSample::new(
        cap(MIME_TYPE_VP8, 90000, 0),
        format!("{stream}-video"),
        stream.clone(),
    ));
    let audio = Arc::new(TrackLocalStaticSample::new(
        cap(MIME_TYPE_OPUS, 48000, 2),
        format!("{stream}-audio"),
        stream.clone(),
    ));
    for t in [&video, &audio] {
        let sender = publ
            .add_track(Arc::clone(t) as Arc<dyn TrackLocal + Send + Sync>)
            .await?;
        // Read RTCP so the interceptors run (NACK, reports).
        tokio::spawn(async move { while sender.read_rtcp().await.is_ok() {} });
    }
    let mut published = false;
    let mut prepared = false;
    let mut offers: Vec<String> = Vec::new();
    let mut report = tokio::time::interval(Duration::from_secs(1));
    loop {
        if prepared {
            subscriptions.request_pending(&mut client, &room).await?;
        }
        let r = tokio::select! {
            _ = report.tick() => {
                let tracks = stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
                emit(json!({"event": "stats", "tracks": tracks, "offers": offers}));
                continue;
            }
            r = client.recv(Duration::from_secs(3600)) => r,
        };
        let r = match r {
            Ok(r) => r,
            Err(ClientError::Timeout(..)) => continue,
            Err(e) => return Err(anyhow!(e)),
        };
        if let Some(m) = &r.message {
            subscriptions.on_message(m);
        }
        match r.message {
            Some(ServerMessage::SubscribePrepareAnswer { answer, .. }) => {
                rtc::accept_answer(&rtc, &sub, &answer).await?;
                prepared = true;
                if !published {
                    let offer = rtc::offer(&publ).await?;
                    client
                        .send(&ClientMessage::PublishOffer {
                            room_name: room.clone(),
                            offer,
                        })
                        .await?;
                }
            }
            Some(ServerMessage::PublishAnswer { answer, .. }) if !published => {
                rtc::accept_answer(&rtc, &publ, &answer).await?;
                published = true;
                send_media(Arc::clone(&video), Arc::clone(&audio), frames.clone());
            }
            Some(ServerMessage::SubscribeOffer {
                offer,
                publisher_id,
                ..
            }) => {
                offers.extend(ice_ufrag(&offer));
                let answer = rtc::answer(&rtc, &sub, &offer).await?;
                client
                    .send(&ClientMessage::SubscribeAnswer {
                        room_name: room.clone(),
                        publisher_id: Some(publisher_id),
                        answer,
                    })
                    .await?;
            }
            Some(ServerMessage::SubscribeIceCandidate { candidate, .. }) => {
                add_candidate(&rtc, &sub, candidate).await;
            }
            Some(ServerMessage::PublishIceCandidate { candidate, .. }) => {
                add_candidate(&rtc, &publ, candidate).await;
            }
            Some(ServerMessage::Error { .. }) | Some(ServerMessage::Reconnect { .. }) => {
                let mut v = r.raw.clone();
                v["event"] = v["type"].clone();
                emit(v);
            }
            _ => {}
        }
    }
}
