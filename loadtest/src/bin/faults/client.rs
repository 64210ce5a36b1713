//! A participant that follows the protocol through faults, as a real client
//! with a list of node URLs would: on `reconnect` it waits `retryAfterMs`
//! and reconnects to the same URL; when its socket drops without one, it
//! moves to the next URL of its list; a `join` refused with `internal` or
//! `draining` is retried every [`JOIN_RETRY`]. After each (re)join a
//! publisher publishes again and a subscriber subscribes again to every
//! publisher of the room.
//!
//! Everything it sees goes into a timestamped log ([`Ev`]); the scenarios
//! read it to measure when a client noticed a fault and when its media was
//! back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use bytes::{BufMut, Bytes, BytesMut};
use loadtest::media::now_ns;
use sfu_testkit::proto::{self, Subscriptions};
use sfu_testkit::rtc::{self, Rtc, PT_OPUS};
use signaling::client::{Client, ClientError, Received};
use signaling::{ClientMessage, ClientType, ServerMessage, ServerType};
use tokio::sync::watch;
use webrtc::api::media_engine::MIME_TYPE_OPUS;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp::header::Header;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_remote::TrackRemote;

/// Wait between join attempts the server refused (room's node gone,
/// Redis unreachable).
pub const JOIN_RETRY: Duration = Duration::from_millis(250);
/// Longest wait for one reply (joined, answers).
const REPLY: Duration = Duration::from_secs(10);
/// Audio packets per second a publisher sends.
pub const PPS: u64 = 50;
/// A pause in received media longer than this is an interruption.
pub const GAP: Duration = Duration::from_millis(500);
const MAGIC: &[u8; 4] = b"FLT1";

/// What a participant does in its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Publishes one Opus track.
    Publisher,
    /// Receives every publisher of the room.
    Subscriber,
}

/// One thing a participant saw, at [`now_ns`].
#[derive(Debug, Clone, PartialEq)]
pub enum Ev {
    /// Joined through node URL index `url` (the node's id from `auth-ok`).
    Joined { url: usize, node: String },
    /// Got `reconnect` with this reason.
    Reconnect(String),
    /// The socket closed (or could not be opened) without a `reconnect`.
    Dropped(String),
    /// A join was refused; the message.
    JoinRefused(String),
    /// The first packet on a subscribe PeerConnection of this session.
    FirstPacket,
    /// Packets arrive again after a gap of more than [`GAP`] (ns).
    Resumed(u64),
}

/// A participant's shared state: its log and its media counters.
pub struct Participant {
    /// User name (and participant id: the token's `sub`).
    pub name: String,
    /// Its room.
    pub room: String,
    /// What it does there.
    pub role: Role,
    /// Index of the URL it tries first.
    pub home: usize,
    log: Mutex<Vec<(u64, Ev)>>,
    /// Packets received (subscribers).
    pub packets: AtomicU64,
    /// [`now_ns`] of the last packet received.
    pub last_rx_ns: AtomicU64,
    /// Largest gap between two received packets since the last reset, ns.
    pub max_gap_ns: AtomicU64,
    /// Packets missing from the publisher's counter sequence (a publisher
    /// that starts again starts from 0, which is not counted).
    pub lost: AtomicU64,
    last_counter: AtomicU64,
}

impl Participant {
    /// A participant that has not started.
    pub fn new(name: String, room: String, role: Role, home: usize) -> Arc<Participant> {
        Arc::new(Participant {
            name,
            room,
            role,
            home,
            log: Mutex::new(Vec::new()),
            packets: AtomicU64::new(0),
            last_rx_ns: AtomicU64::new(0),
            max_gap_ns: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            last_counter: AtomicU64::new(u64::MAX),
        })
    }

    fn note(&self, ev: Ev) {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((now_ns(), ev));
    }

    /// Its log from `since` on.
    pub fn events_since(&self, since: u64) -> Vec<(u64, Ev)> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(t, _)| *t >= since)
            .cloned()
            .collect()
    }

    /// The node it joined last, if its session is up.
    pub fn current_node(&self) -> Option<String> {
        let log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match log
            .iter()
            .rev()
            .find(|(_, e)| !matches!(e, Ev::FirstPacket | Ev::Resumed(_)))
        {
            Some((_, Ev::Joined { node, .. })) => Some(node.clone()),
            _ => None,
        }
    }

    /// One line about its state, for error messages.
    pub fn describe(&self) -> String {
        let log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tail: Vec<String> = log
            .iter()
            .rev()
            .take(4)
            .map(|(t, e)| format!("{:.1}s {e:?}", *t as f64 / 1e9))
            .collect();
        format!(
            "{} ({:?}, {}): {} packets, last {:.1}s; {}",
            self.name,
            self.role,
            self.room,
            self.packets.load(Ordering::Relaxed),
            self.last_rx_ns.load(Ordering::Relaxed) as f64 / 1e9,
            tail.join(" < ")
        )
    }

    /// Whether media arrived within the last `within`.
    pub fn receiving(&self, within: Duration) -> bool {
        let last = self.last_rx_ns.load(Ordering::Relaxed);
        last > 0 && now_ns().saturating_sub(last) < within.as_nanos() as u64
    }

    fn on_packet(&self, counter: u64) {
        let prev = self.last_counter.swap(counter, Ordering::Relaxed);
        if prev != u64::MAX && counter > prev + 1 {
            self.lost.fetch_add(counter - prev - 1, Ordering::Relaxed);
        }
        let now = now_ns();
        let last = self.last_rx_ns.swap(now, Ordering::Relaxed);
        if last > 0 {
            let gap = now.saturating_sub(last);
            self.max_gap_ns.fetch_max(gap, Ordering::Relaxed);
            if gap > GAP.as_nanos() as u64 {
                self.note(Ev::Resumed(gap));
            }
        }
        self.packets.fetch_add(1, Ordering::Relaxed);
    }
}

/// How a participant reaches the cluster.
#[derive(Clone)]
pub struct Net {
    /// Node WebSocket URLs (the client's list).
    pub urls: Arc<Vec<String>>,
    /// The nodes' JWT secret.
    pub secret: String,
    /// WebRTC on the one test address.
    pub rtc: Arc<Rtc>,
}

/// Runs `p` until `stop` turns true, reconnecting as the protocol says.
pub async fn run(p: Arc<Participant>, net: Net, mut stop: watch::Receiver<bool>) {
    let mut url = p.home;
    let mut pause = Duration::ZERO;
    while !*stop.borrow() {
        if !pause.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        let outcome = session(&p, &net, url % net.urls.len(), &stop).await;
        match outcome {
            End::Reconnect(reason, after) => {
                p.note(Ev::Reconnect(reason));
                pause = after;
            }
            End::Dropped(why) => {
                p.note(Ev::Dropped(why));
                // Another URL of the list, at random (as a load balancer
                // would pick), so that clients do not all pile onto one
                // node after each fault.
                let n = net.urls.len().max(2);
                url += 1 + rand::random::<u32>() as usize % (n - 1);
                pause = Duration::from_millis(100);
            }
            End::Stopped => return,
        }
    }
}

enum End {
    Reconnect(String, Duration),
    Dropped(String),
    Stopped,
}

/// What a wait for a reply ended with.
enum Wait {
    Reply(Received),
    End(End),
}

fn token(secret: &str, user: &str, room: &str) -> Result<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = serde_json::json!({
        "sub": user, "name": user, "rooms": [room],
        "canPublish": true, "canSubscribe": true,
        "iat": now, "exp": now + 6 * 3600,
    });
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// Reads until a message `want` accepts; `reconnect` and a closed socket
/// end the session; everything else goes to `other`.
async fn wait_reply(
    c: &mut Client,
    mut want: impl FnMut(&Received) -> bool,
    mut other: impl FnMut(&Received),
) -> Wait {
    let deadline = tokio::time::Instant::now() + REPLY;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.recv(left).await {
            Ok(r) => {
                if let Some(ServerMessage::Reconnect {
                    reason,
                    retry_after_ms,
                }) = &r.message
                {
                    return Wait::End(End::Reconnect(
                        format!("{reason:?}"),
                        Duration::from_millis(*retry_after_ms),
                    ));
                }
                if want(&r) {
                    return Wait::Reply(r);
                }
                other(&r);
            }
            Err(ClientError::Timeout(..)) => {
                return Wait::End(End::Dropped("no reply in time".into()))
            }
            Err(e) => return Wait::End(End::Dropped(e.to_string())),
        }
    }
}

/// Connects and waits for `auth-ok`: the client, its participant id and
/// the id of the node it reached.
async fn sign_in(url: &str, token: &str) -> Result<(Client, String, String)> {
    let mut c = tokio::time::timeout(REPLY, Client::connect(url, Some(token)))
        .await
        .map_err(|_| anyhow::anyhow!("connect timed out"))??;
    let auth = c.wait_type(ServerType::AuthOk.as_str(), REPLY).await?;
    let field = |k: &str| {
        auth.raw
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    Ok((c, field("participantId"), field("nodeId")))
}

fn is_reply(r: &Received, ty: ServerType, request: ClientType) -> bool {
    r.type_name() == ty.as_str()
        || (r.type_name() == ServerType::Error.as_str()
            && r.raw.get("requestType").and_then(|v| v.as_str()) == Some(request.as_str()))
}

/// One connection: sign in, join (retrying refusals), publish or
/// subscribe, then serve the session until it ends.
async fn session(p: &Arc<Participant>, net: &Net, url: usize, stop: &watch::Receiver<bool>) -> End {
    let Ok(tok) = token(&net.secret, &p.name, &p.room) else {
        return End::Stopped;
    };
    let (mut c, own_id, node) = match sign_in(&net.urls[url], &tok).await {
        Ok(x) => x,
        Err(e) => return End::Dropped(format!("connect: {e:#}")),
    };
    // Join, retrying what the server refuses for now.
    let publishers = loop {
        if *stop.borrow() {
            return End::Stopped;
        }
        if let Err(e) = c
            .send(&ClientMessage::Join {
                room_name: p.room.clone(),
            })
            .await
        {
            return End::Dropped(e.to_string());
        }
        match wait_reply(
            &mut c,
            |r| is_reply(r, ServerType::Joined, ClientType::Join),
            |_| {},
        )
        .await
        {
            Wait::End(e) => return e,
            Wait::Reply(r) => match r.message {
                Some(ServerMessage::Joined { publishers, .. }) => {
                    break publishers
                        .into_iter()
                        .map(|p| p.publisher_id)
                        .collect::<Vec<_>>()
                }
                _ => {
                    let msg = r.raw.get("message").and_then(|v| v.as_str()).unwrap_or("");
                    let code = r.raw.get("code").and_then(|v| v.as_str()).unwrap_or("");
                    p.note(Ev::JoinRefused(format!("{code}: {msg}")));
                    tokio::time::sleep(JOIN_RETRY).await;
                }
            },
        }
    };
    p.note(Ev::Joined {
        url,
        node: node.clone(),
    });
    // Ends the media tasks of this session when it is dropped.
    let (end_tx, end_rx) = watch::channel(false);
    let result = match p.role {
        Role::Publisher => publish(p, net, &mut c, end_rx, stop).await,
        Role::Subscriber => subscribe(p, net, &mut c, own_id, publishers, end_rx, stop).await,
    };
    let _ = end_tx.send(true);
    let end = match result {
        Ok(end) => end,
        Err(e) => End::Dropped(format!("{e:#}")),
    };
    if matches!(end, End::Stopped) {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            c.send(&ClientMessage::Leave {
                room_name: p.room.clone(),
            }),
        )
        .await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), c.close()).await;
    end
}

async fn publish(
    p: &Participant,
    net: &Net,
    c: &mut Client,
    end: watch::Receiver<bool>,
    stop: &watch::Receiver<bool>,
) -> Result<End> {
    let pc = net.rtc.peer().await?;
    let track = Arc::new(TrackLocalStaticRTP::new(
        RTCRtpCodecCapability {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48000,
            channels: 2,
            ..Default::default()
        },
        format!("{}-audio", p.name),
        p.name.clone(),
    ));
    let sender = pc.add_track(track.clone() as Arc<_>).await?;
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        while sender.read(&mut buf).await.is_ok() {}
    });
    send_when_connected(&pc, track, end.clone());
    let offer = rtc::offer(&pc).await?;
    c.send(&ClientMessage::PublishOffer {
        room_name: Some(p.room.clone()),
        offer,
    })
    .await?;
    let answer = match wait_reply(
        c,
        |r| is_reply(r, ServerType::PublishAnswer, ClientType::PublishOffer),
        |_| {},
    )
    .await
    {
        Wait::End(e) => {
            let _ = pc.close().await;
            return Ok(e);
        }
        Wait::Reply(r) => r,
    };
    let Some(sdp) = answer.raw.get("answer").and_then(|v| v.as_str()) else {
        let _ = pc.close().await;
        bail!("publish refused: {}", answer.raw);
    };
    rtc::accept_answer(&net.rtc, &pc, sdp).await?;
    let end = serve(c, &net.rtc, None, Some(&pc), None, stop).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), pc.close()).await;
    Ok(end)
}

async fn subscribe(
    p: &Arc<Participant>,
    net: &Net,
    c: &mut Client,
    own_id: String,
    publishers: Vec<String>,
    end: watch::Receiver<bool>,
    stop: &watch::Receiver<bool>,
) -> Result<End> {
    let pc = net.rtc.peer().await?;
    receive(&pc, p, end);
    let mut subs = Subscriptions::new(&own_id, publishers);
    let room = Some(p.room.clone());
    let e = serve(c, &net.rtc, Some(&pc), None, Some((&mut subs, &room)), stop).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), pc.close()).await;
    Ok(e)
}

/// The session after join: answers subscribe offers, takes candidates,
/// asks for new publishers, until `reconnect` or the socket ends.
async fn serve(
    c: &mut Client,
    rtc: &Rtc,
    sub_pc: Option<&Arc<RTCPeerConnection>>,
    pub_pc: Option<&Arc<RTCPeerConnection>>,
    mut subs: Option<(&mut Subscriptions, &Option<String>)>,
    stop: &watch::Receiver<bool>,
) -> End {
    loop {
        if *stop.borrow() {
            return End::Stopped;
        }
        if let Some((s, room)) = subs.as_mut() {
            if let Err(e) = s.request_pending(c, room).await {
                return End::Dropped(e.to_string());
            }
        }
        let r = match c.recv(Duration::from_secs(1)).await {
            Ok(r) => r,
            Err(ClientError::Timeout(..)) => continue,
            Err(e) => return End::Dropped(e.to_string()),
        };
        if let (Some(m), Some((s, _))) = (&r.message, subs.as_mut()) {
            s.on_message(m);
        }
        match r.message {
            Some(ServerMessage::Reconnect {
                reason,
                retry_after_ms,
            }) => {
                return End::Reconnect(format!("{reason:?}"), Duration::from_millis(retry_after_ms))
            }
            Some(ServerMessage::SubscribeOffer {
                offer,
                publisher_id,
                room_name,
                ..
            }) => {
                let Some(pc) = sub_pc else { continue };
                let answer = match rtc::answer(rtc, pc, &offer).await {
                    Ok(a) => a,
                    Err(e) => return End::Dropped(format!("answer: {e:#}")),
                };
                let msg = ClientMessage::SubscribeAnswer {
                    room_name: Some(room_name),
                    publisher_id: Some(publisher_id),
                    answer,
                };
                if let Err(e) = c.send(&msg).await {
                    return End::Dropped(e.to_string());
                }
            }
            Some(ServerMessage::SubscribeIceCandidate {
                candidate: Some(cand),
                ..
            }) => {
                if let Some(pc) = sub_pc {
                    proto::add_remote_candidate(rtc, pc, &cand).await;
                }
            }
            Some(ServerMessage::PublishIceCandidate {
                candidate: Some(cand),
                ..
            }) => {
                if let Some(pc) = pub_pc {
                    proto::add_remote_candidate(rtc, pc, &cand).await;
                }
            }
            _ => {}
        }
    }
}

/// Counts received packets of `pc` into `p`; notes the first one.
fn receive(pc: &RTCPeerConnection, p: &Arc<Participant>, end: watch::Receiver<bool>) {
    let p = Arc::clone(p);
    let first = Arc::new(std::sync::atomic::AtomicBool::new(false));
    pc.on_track(Box::new(move |track: Arc<TrackRemote>, _, _| {
        let p = p.clone();
        let first = first.clone();
        let mut end = end.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            loop {
                tokio::select! {
                    _ = end.wait_for(|e| *e) => return,
                    r = track.read(&mut buf) => match r {
                        Ok((packet, _)) => {
                            if packet.payload.get(60..64) == Some(&MAGIC[..]) {
                                if !first.swap(true, Ordering::Relaxed) {
                                    p.note(Ev::FirstPacket);
                                }
                                let mut c = [0u8; 8];
                                if let Some(b) = packet.payload.get(64..72) {
                                    c.copy_from_slice(b);
                                }
                                p.on_packet(u64::from_be_bytes(c));
                            }
                        }
                        Err(_) => return,
                    }
                }
            }
        });
        Box::pin(async {})
    }));
}

fn send_when_connected(
    pc: &RTCPeerConnection,
    track: Arc<TrackLocalStaticRTP>,
    mut end: watch::Receiver<bool>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tx = Mutex::new(Some(tx));
    pc.on_peer_connection_state_change(Box::new(move |s| {
        if s == RTCPeerConnectionState::Connected {
            if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(());
            }
        }
        Box::pin(async {})
    }));
    tokio::spawn(async move {
        if rx.await.is_err() {
            return;
        }
        let every = Duration::from_millis(1000 / PPS);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut seq: u16 = rand::random();
        let mut counter: u64 = 0;
        let start = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = end.wait_for(|e| *e) => return,
            }
            let mut b = BytesMut::with_capacity(100);
            // An Opus TOC byte, filler, then the marker at byte 60 (what
            // `receive` looks for) and a counter and send time.
            b.put_u8(0xfc);
            b.put_bytes(0xa5, 59);
            b.put_slice(MAGIC);
            b.put_u64(counter);
            b.put_u64(now_ns());
            let ts = (start.elapsed().as_micros() as u64 * 48 / 1000) as u32;
            let packet = Packet {
                header: Header {
                    version: 2,
                    marker: true,
                    payload_type: PT_OPUS,
                    sequence_number: seq,
                    timestamp: ts,
                    ..Default::default()
                },
                payload: Bytes::from(b),
            };
            seq = seq.wrapping_add(1);
            counter += 1;
            if let Err(webrtc::Error::ErrClosedPipe) = track.write_rtp(&packet).await {
                return;
            }
        }
    });
}
