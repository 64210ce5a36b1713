//! The media attackers: a client that never finishes ICE, one that sends
//! junk datagrams to the media ports, and one that subscribes and
//! unsubscribes in a tight loop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde_json::json;
use sfu_testkit::{http, proto, rtc};
use signaling::client::{Client, ClientError};
use signaling::{ClientMessage, ServerMessage, ServerType};
use webrtc::peer_connection::RTCPeerConnection;

use super::attacks::outcome;
use super::{Env, Outcome};
use crate::media::Publisher;

const WAIT: Duration = Duration::from_secs(15);

/// The sum of a metric's samples whose labels contain every `want`
/// (`kind="publish"`), from the node's /metrics; `skip` labels excluded.
pub(crate) async fn metric(env: &Env, name: &str, want: &[&str], skip: &[&str]) -> Result<f64> {
    let (status, body) = http::get(&env.http_addr(), "/metrics", Duration::from_secs(5)).await?;
    if status != 200 {
        return Err(anyhow!("/metrics answered {status}"));
    }
    let mut sum = 0.0;
    for line in body.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if want.iter().all(|w| rest.contains(w)) && !skip.iter().any(|s| rest.contains(s)) {
            sum += rest
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
        }
    }
    Ok(sum)
}

async fn sign_in(env: &Env, user: &str) -> Result<(Client, String)> {
    proto::sign_in(&env.cfg.ws_url, &env.token(user)?, WAIT).await
}

/// PeerConnections of `kind` (`publish`, `subscribe`) on the node that
/// are not connected. During the attack the good participants' are
/// connected and the other attackers' connect within a second, so what
/// stays is the staller's.
async fn unconnected_pcs(env: &Env, kind: &str) -> Result<f64> {
    metric(
        env,
        "sfu_peer_connections",
        &[&format!("kind=\"{kind}\"")],
        &["state=\"connected\""],
    )
    .await
}

/// In four rooms (the good one and three of its own), sends a real publish
/// offer and a real subscribe-prepare offer and never applies the answers
/// nor lets ICE run: the server's PeerConnections wait for connectivity
/// checks that never come. Expected: the server closes each after the ICE
/// timeout (its media port given back); the client keeps its session.
pub(crate) async fn ice_staller(env: Env) -> Outcome {
    let limit = env.cfg.documented.ice_connect_timeout_s;
    let lag = env.cfg.documented.gauge_lag_s;
    let expected = format!(
        "the server closes each never-connected PeerConnection (publish and subscribe) {limit:.0} s after its creation (seen in `sfu_peer_connections` up to {lag:.0} s later, +3 s slack); the session stays"
    );
    let r = async {
        let base_pub = unconnected_pcs(&env, "publish").await?;
        let base_sub = unconnected_pcs(&env, "subscribe").await?;
        let (mut client, _) = sign_in(&env, "attacker-ice").await?;
        let rooms: Vec<String> = std::iter::once(env.room.clone())
            .chain((0..3).map(|i| format!("{}-stall-{i}", env.room)))
            .collect();
        let mut answered_at = Vec::new();
        for (i, room) in rooms.iter().enumerate() {
            proto::join(&mut client, room, WAIT).await?;
            let pc = env.rtc.peer().await?;
            let _tracks = Publisher::attach(&pc, 900 + i as u32, &format!("stall-{i}")).await?;
            let offer = rtc::offer(&pc).await?;
            let msg = ClientMessage::PublishOffer {
                room_name: Some(room.clone()),
                offer,
            };
            proto::negotiate(&mut client, &msg, ServerType::PublishAnswer, WAIT).await?;
            let sub = env.rtc.peer().await?;
            let _dc = sub.create_data_channel("prepare", None).await?;
            let offer = rtc::offer(&sub).await?;
            let msg = ClientMessage::SubscribePrepare {
                room_name: Some(room.clone()),
                offer,
            };
            proto::negotiate(&mut client, &msg, ServerType::SubscribePrepareAnswer, WAIT).await?;
            answered_at.push(Instant::now());
            // Our side never connects either.
            let _ = pc.close().await;
            let _ = sub.close().await;
        }
        let first = answered_at[0];
        let last = answered_at.last().map_or(0.0, |t| t.duration_since(first).as_secs_f64());
        let peak_pub = unconnected_pcs(&env, "publish").await? - base_pub;
        let peak_sub = unconnected_pcs(&env, "subscribe").await? - base_sub;
        // Watch until they are gone (or far past the documented bound),
        // reading (and keeping) the socket meanwhile.
        let (mut pub_gone, mut sub_gone) = (None, None);
        let mut errors = Vec::new();
        let deadline = first + Duration::from_secs_f64(last + limit + lag + 15.0);
        while Instant::now() < deadline && (pub_gone.is_none() || sub_gone.is_none()) {
            match client.recv(Duration::from_millis(500)).await {
                Ok(r) => {
                    if r.type_name() == "error" {
                        errors.push(r.raw.to_string());
                    }
                }
                Err(ClientError::Timeout(..)) => {}
                Err(e) => return Err(anyhow!("the staller's session ended: {e}")),
            }
            let t = Some(first.elapsed().as_secs_f64());
            if pub_gone.is_none() && unconnected_pcs(&env, "publish").await? - base_pub <= 0.0 {
                pub_gone = t;
            }
            if sub_gone.is_none() && unconnected_pcs(&env, "subscribe").await? - base_sub <= 0.0 {
                sub_gone = t;
            }
        }
        // The session is still served.
        client.send(&ClientMessage::Ping).await?;
        let alive = client.wait_type("pong", WAIT).await.is_ok();
        let in_time = |g: Option<f64>| g.is_some_and(|g| g <= last + limit + lag + 3.0);
        let pass = peak_pub >= 4.0 && peak_sub >= 4.0 && in_time(pub_gone) && in_time(sub_gone) && alive;
        client.close().await;
        let round = |g: Option<f64>| g.map(|g| (g * 10.0).round() / 10.0);
        Ok((
            pass,
            format!(
                "{peak_pub} publish and {peak_sub} subscribe PeerConnections never connected; publish ones gone {:?} s, subscribe ones {:?} s after the first answer (last answer at {last:.1} s); session alive: {alive}; errors {errors:?}",
                round(pub_gone), round(sub_gone)
            ),
            json!({"publish_pcs": peak_pub, "subscribe_pcs": peak_sub, "publish_gone_s": pub_gone, "subscribe_gone_s": sub_gone, "last_answer_s": last, "alive": alive, "errors": errors}),
        ))
    }
    .await;
    outcome("ice-staller", &expected, r)
}

/// Datagrams that look like each protocol a media port demultiplexes
/// (RFC 7983), with random contents, and plain random bytes.
fn junk(i: u64) -> Vec<u8> {
    let mut b: Vec<u8> = (0..(40 + (i % 7) * 60))
        .map(|_| rand::random::<u8>())
        .collect();
    match i % 5 {
        // RTP: version 2, VP8/Opus payload types, random SSRC.
        0 => {
            b[0] = 0x80;
            b[1] = if i % 2 == 0 { 96 } else { 111 };
        }
        // RTCP: SR, RR, NACK, PLI.
        1 => {
            b[0] = 0x81;
            b[1] = [200u8, 201, 205, 206][(i / 5 % 4) as usize];
            let words = (b.len() / 4 - 1) as u16;
            b[2..4].copy_from_slice(&words.to_be_bytes());
        }
        // STUN binding request with the magic cookie and a USERNAME.
        2 => {
            b.truncate(20);
            b[0] = 0x00;
            b[1] = 0x01;
            let user = format!("x{:07}:y{:07}", i % 9_999_999, i % 7_777_777);
            let attr_len = user.len() as u16;
            let len = 4 + attr_len.div_ceil(4) * 4;
            b[2..4].copy_from_slice(&len.to_be_bytes());
            b[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
            b.extend_from_slice(&0x0006u16.to_be_bytes());
            b.extend_from_slice(&attr_len.to_be_bytes());
            b.extend_from_slice(user.as_bytes());
            while b.len() % 4 != 0 {
                b.push(0);
            }
        }
        // DTLS 1.2 records: handshake (ClientHello) or application data.
        3 => {
            b[0] = if i % 2 == 0 { 22 } else { 23 };
            b[1] = 0xfe;
            b[2] = 0xfd;
            let len = (b.len() - 13) as u16;
            b[11..13].copy_from_slice(&len.to_be_bytes());
            if b[0] == 22 {
                b[13] = 1;
            }
        }
        _ => {}
    }
    b
}

/// Sprays junk datagrams over the node's whole media port range, from
/// another address, for the attack window (bounded: 2,000 a second,
/// 200,000 at most). Expected (docs/SECURITY.md): dropped, the log stays
/// small (sampled), nothing comes back larger than it went (no
/// amplification), and the good call keeps its media.
pub(crate) async fn udp_junk(env: Env) -> Outcome {
    let expected = format!(
        "ignored: the media stack's log lines sampled (10 a minute per call site and a summary: at most {LOG_LINES_PER_MINUTE} for each sampling minute the junk touched), no reply larger than the junk, good call unaffected (checked on the call)"
    );
    let r = async {
        let (lo, hi) = env.cfg.media_ports;
        let sock = tokio::net::UdpSocket::bind((env.cfg.junk_from, 0)).await?;
        let log_before = log_lines(&env);
        let started = Instant::now();
        let (mut sent, mut bytes_out, mut replies, mut bytes_in) = (0u64, 0u64, 0u64, 0u64);
        let mut kinds = [0u64; 5];
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut buf = [0u8; 2048];
        let mut port = lo;
        while Instant::now() < env.until && sent < 200_000 {
            tick.tick().await;
            for _ in 0..20 {
                let d = junk(sent);
                let to = SocketAddr::new(env.cfg.ip, port);
                port = if port >= hi { lo } else { port + 1 };
                if sock.send_to(&d, to).await.is_ok() {
                    kinds[(sent % 5) as usize] += 1;
                    sent += 1;
                    bytes_out += d.len() as u64;
                }
            }
            while let Ok((n, _)) = sock.try_recv_from(&mut buf) {
                replies += 1;
                bytes_in += n as u64;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        while let Ok((n, _)) = sock.try_recv_from(&mut buf) {
            replies += 1;
            bytes_in += n as u64;
        }
        let secs = started.elapsed().as_secs_f64();
        let media_lines = log_lines(&env).map(|after| after.saturating_sub(log_before.unwrap_or(0)));
        // The sampling is per minute: the bound grows with the sampling
        // minutes the junk touched (a window of T s touches up to
        // ceil(T / 60) + 1 of them), not with the datagrams.
        let bound = LOG_LINES_PER_MINUTE * ((secs / 60.0).ceil() as usize + 1);
        let pass = sent > 1000
            && media_lines.is_none_or(|l| l <= bound)
            && bytes_in <= bytes_out / 100;
        Ok((
            pass,
            format!(
                "{sent} datagrams ({} KB) in {secs:.0} s to ports {lo}-{hi} (RTP {}, RTCP {}, STUN {}, DTLS {}, random {}); {replies} replies ({bytes_in} bytes); media-stack log lines {media_lines:?} (bound {bound})",
                bytes_out / 1024, kinds[0], kinds[1], kinds[2], kinds[3], kinds[4]
            ),
            json!({"sent": sent, "bytes_out": bytes_out, "replies": replies, "bytes_in": bytes_in, "log_lines": media_lines, "log_lines_bound": bound, "by_kind": kinds}),
        ))
    }
    .await;
    outcome("udp-junk", &expected, r)
}

/// Log lines the media stack may write per started minute of junk: 10 a
/// minute per call site plus a summary line each (docs/SECURITY.md, "Logs"),
/// for about a dozen call sites that junk reaches.
const LOG_LINES_PER_MINUTE: usize = 150;

/// Lines of the node's log written by the media stack (webrtc-rs crates)
/// or its sampling summary.
fn log_lines(env: &Env) -> Option<usize> {
    let path = env.cfg.server_log.as_ref()?;
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter(|l| {
                l.contains("webrtc")
                    || l.contains("dtls")
                    || l.contains("srtp")
                    || l.contains("stun")
                    || l.contains("media stack log lines")
            })
            .count(),
    )
}

/// Leaves `room` and joins it again with a fresh prepared PeerConnection
/// (the documented way to a new one), once the message rate allows: a
/// dropped `leave` would be lost.
async fn rejoin(
    env: &Env,
    client: &mut Client,
    room: &str,
    old: &RTCPeerConnection,
) -> Result<Arc<RTCPeerConnection>> {
    let _ = old.close().await;
    // A loaded server reads a backlog of this client's flood after the
    // fact, and the rate limit judges by arrival: retry until `left`.
    let mut left = false;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(2100)).await;
        client
            .send(&ClientMessage::Leave {
                room_name: room.to_owned(),
            })
            .await?;
        if client
            .wait_type("left", Duration::from_secs(3))
            .await
            .is_ok()
        {
            left = true;
            break;
        }
    }
    if !left {
        return Err(anyhow!("`leave` was never acknowledged"));
    }
    // Replies to requests sent before the leave may still come; join
    // waits for `joined`.
    proto::join(client, room, WAIT).await?;
    prepared(env, client, room).await
}

/// A prepared subscribe PeerConnection in `room`.
async fn prepared(env: &Env, client: &mut Client, room: &str) -> Result<Arc<RTCPeerConnection>> {
    let pc = env.rtc.peer().await?;
    let _dc = pc.create_data_channel("prepare", None).await?;
    let offer = rtc::offer(&pc).await?;
    let msg = ClientMessage::SubscribePrepare {
        room_name: Some(room.to_owned()),
        offer,
    };
    let answer = proto::negotiate(client, &msg, ServerType::SubscribePrepareAnswer, WAIT).await?;
    rtc::accept_answer(&env.rtc, &pc, &answer).await?;
    Ok(pc)
}

/// Joins the good room with a real subscribe PeerConnection and sends
/// `subscribe-request` + `unsubscribe` for a good publisher back to back
/// every 5 ms, answering every offer; in the second half of the attack it
/// waits for each subscription's offer (answers it, unsubscribes at once,
/// subscribes again). When the server says its PeerConnection is full
/// (`room-full`), it leaves and joins again with a fresh one (the
/// documented way). Expected: `rate-limited` (the
/// message rate), `room-full` once 48 media sections are used, no offer
/// over 48 sections, the session kept.
pub(crate) async fn subscribe_churn(env: Env) -> Outcome {
    let cap = env.cfg.documented.max_subscribe_sections;
    let expected = format!(
        "`rate-limited` about once a second, `room-full` when a subscription would pass {cap} media sections (no offer above), only those errors (and `bad-request` for a track already queued), session kept"
    );
    let r = async {
        let (mut client, _) = sign_in(&env, "attacker-churn").await?;
        let room = env.room.clone();
        let room_name = Some(room.clone());
        let publishers = proto::join(&mut client, &room, WAIT).await?;
        let target = publishers
            .first()
            .cloned()
            .ok_or_else(|| anyhow!("no publisher in the good room"))?;
        let mut pc = prepared(&env, &mut client, &room).await?;
        let mut codes: BTreeMap<String, u64> = BTreeMap::new();
        let (mut pairs, mut offers, mut max_sections, mut rejoins) = (0u64, 0u64, 0usize, 0u64);
        let mut full_rejoins = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ended = None;
        // First half: blind pairs. Second half: each subscription waits for
        // its offer, which is answered, then unsubscribed at once: every
        // cycle adds media sections until the cap.
        let half = Instant::now() + env.until.saturating_duration_since(Instant::now()) / 2;
        let mut waiting_offer: Option<Instant> = None;
        let (mut cycles, mut stalls, mut switched) = (0u64, 0u64, false);
        let mut messages: BTreeMap<String, String> = BTreeMap::new();
        while Instant::now() < env.until && pairs < 20_000 {
            let blind = Instant::now() < half;
            // Over the rate, the server drops any message, this client's
            // answers too; its negotiation then waits for an answer that
            // never comes (its own loss). Start the second half fresh, and
            // start over whenever an offer does not come.
            let stalled = waiting_offer.is_some_and(|t| t.elapsed() > Duration::from_secs(5));
            if (!blind && !switched) || stalled {
                stalls += u64::from(stalled);
                switched = true;
                waiting_offer = None;
                pc = rejoin(&env, &mut client, &room, &pc).await?;
                rejoins += 1;
                continue;
            }
            tokio::select! {
                _ = tick.tick(), if blind || waiting_offer.is_none() => {
                    client.send(&ClientMessage::SubscribeRequest { room_name: room_name.clone(), publisher_id: target.clone() }).await?;
                    if blind {
                        client.send(&ClientMessage::Unsubscribe { room_name: room_name.clone(), publisher_id: target.clone() }).await?;
                        pairs += 1;
                    } else {
                        waiting_offer = Some(Instant::now());
                    }
                }
                r = client.recv(Duration::from_secs(3600)) => {
                    let r = match r {
                        Ok(r) => r,
                        Err(e) => { ended = Some(e.to_string()); break; }
                    };
                    match r.message {
                        Some(ServerMessage::SubscribeOffer { offer, publisher_id, .. }) => {
                            max_sections = max_sections.max(offer.lines().filter(|l| l.starts_with("m=")).count());
                            let answer = rtc::answer(&env.rtc, &pc, &offer).await?;
                            client.send(&ClientMessage::SubscribeAnswer { room_name: room_name.clone(), publisher_id: Some(publisher_id), answer }).await?;
                            offers += 1;
                            if waiting_offer.take().is_some() {
                                client.send(&ClientMessage::Unsubscribe { room_name: room_name.clone(), publisher_id: target.clone() }).await?;
                                cycles += 1;
                            }
                        }
                        Some(ServerMessage::SubscribeIceCandidate { candidate: Some(c), .. }) => {
                            proto::add_remote_candidate(&env.rtc, &pc, &c).await;
                        }
                        Some(ServerMessage::Error { code, message, .. }) => {
                            *codes.entry(code.as_str().to_owned()).or_default() += 1;
                            messages.entry(code.as_str().to_owned()).or_insert(message);
                            if code == signaling::ErrorCode::RoomFull {
                                waiting_offer = None;
                                pc = rejoin(&env, &mut client, &room, &pc).await?;
                                rejoins += 1;
                                full_rejoins += 1;
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        client.send(&ClientMessage::Ping).await?;
        let alive = ended.is_none() && client.wait_type("pong", WAIT).await.is_ok();
        let _ = client.send(&ClientMessage::Leave { room_name: room.clone() }).await;
        let _ = pc.close().await;
        client.close().await;
        let limited = codes.get("rate-limited").copied().unwrap_or(0);
        let allowed = ["rate-limited", "room-full", "bad-request"];
        let others: Vec<&String> = codes.keys().filter(|c| !allowed.contains(&c.as_str())).collect();
        let full = codes.get("room-full").copied().unwrap_or(0);
        let pass = alive
            && limited >= 1
            && others.is_empty()
            && max_sections <= cap
            && full_rejoins == full;
        Ok((
            pass,
            format!(
                "{pairs} blind subscribe/unsubscribe pairs, then {cycles} answered cycles; {offers} offers answered (largest {max_sections} sections); {rejoins} fresh starts ({full_rejoins} after room-full, {stalls} after an offer that did not come); errors {codes:?} {messages:?}; session alive {alive} {}",
                ended.unwrap_or_default()
            ),
            json!({"pairs": pairs, "answered_cycles": cycles, "offers": offers, "max_sections": max_sections, "rejoins": rejoins, "room_full_rejoins": full_rejoins, "stalls": stalls, "errors": codes, "error_messages": messages, "alive": alive}),
        ))
    }
    .await;
    outcome("subscribe-churn", &expected, r)
}
