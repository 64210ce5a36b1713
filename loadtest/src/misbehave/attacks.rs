//! The signaling attackers: a client that stops reading its WebSocket, one
//! that only holds it, one that floods messages, and one that opens
//! connections as fast as it can.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{Env, Outcome};

type Ws = WebSocketStream<TcpStream>;

/// Linux's TCP_ESTABLISHED in `tcp_info.tcpi_state`.
const TCP_ESTABLISHED: u8 = 1;

/// The kernel's state of a TCP socket, read without reading its data: a
/// client that does not read can still see when the server let go.
pub(crate) fn tcp_state(fd: i32) -> Option<u8> {
    // SAFETY: tcp_info is plain old data; getsockopt writes at most `len`
    // bytes into it and we pass its true size.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let r = libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        (r == 0).then_some(info.tcpi_state)
    }
}

fn server_addr(env: &Env) -> Result<SocketAddr> {
    env.http_addr()
        .parse()
        .with_context(|| format!("server address {}", env.http_addr()))
}

async fn connect_from(from: IpAddr, to: SocketAddr) -> Result<TcpStream> {
    let s = if from.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    s.bind((from, 0).into())?;
    Ok(s.connect(to).await?)
}

/// A WebSocket from `from`, with `token` (if any) in the URL.
async fn ws_from(env: &Env, from: IpAddr, token: Option<&str>) -> Result<Ws> {
    let tcp = connect_from(from, server_addr(env)?).await?;
    let url = match token {
        Some(t) => format!("{}?token={t}", env.cfg.ws_url),
        None => env.cfg.ws_url.clone(),
    };
    let (ws, _) = tokio_tungstenite::client_async(url, tcp).await?;
    Ok(ws)
}

/// The next text message as JSON (skipping other frames), at most `wait`.
async fn next_json(ws: &mut Ws, wait: Duration) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err(anyhow!("nothing within {wait:?}")),
            Ok(None) => return Err(anyhow!("socket ended")),
            Ok(Some(Err(e))) => return Err(anyhow!(e)),
            Ok(Some(Ok(Message::Text(t)))) => return Ok(serde_json::from_str(&t)?),
            Ok(Some(Ok(Message::Close(f)))) => {
                return Err(anyhow!("closed: {:?}", f.map(|f| u16::from(f.code))))
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// How a socket ended: the close code (if a close frame came) and the
/// messages before it.
struct Ending {
    code: Option<u16>,
    messages: Vec<Value>,
}

/// Reads what the server sent on a socket this client never read (nor
/// wrote pongs to), straight from the TCP stream, and finds the close
/// frame's code. tungstenite would answer the queued pings while reading,
/// into a socket the server has closed, and the reset that earns loses the
/// rest, close frame included.
async fn raw_close_code(ws: &mut Ws, wait: Duration) -> (Option<u16>, usize) {
    let mut data = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.get_mut().read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => data.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    // Server frames are unmasked: FIN/opcode, length (7, 16 or 64 bit).
    let (mut at, mut frames) = (0usize, 0usize);
    while at + 2 <= data.len() {
        let opcode = data[at] & 0x0f;
        let len7 = (data[at + 1] & 0x7f) as usize;
        let (len, head) = match len7 {
            126 if at + 4 <= data.len() => {
                (u16::from_be_bytes([data[at + 2], data[at + 3]]) as usize, 4)
            }
            127 if at + 10 <= data.len() => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[at + 2..at + 10]);
                (u64::from_be_bytes(b) as usize, 10)
            }
            126 | 127 => break,
            n => (n, 2),
        };
        let body = at + head;
        if body + len > data.len() {
            break;
        }
        frames += 1;
        if opcode == 0x8 {
            let code = (len >= 2).then(|| u16::from_be_bytes([data[body], data[body + 1]]));
            return (code, frames);
        }
        at = body + len;
    }
    (None, frames)
}

async fn read_to_end(ws: &mut Ws, wait: Duration) -> Ending {
    let mut out = Ending {
        code: None,
        messages: Vec::new(),
    };
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return out,
            Ok(None) | Ok(Some(Err(_))) => return out,
            Ok(Some(Ok(Message::Close(f)))) => {
                out.code = f.map(|f| u16::from(f.code));
                return out;
            }
            Ok(Some(Ok(Message::Text(t)))) => {
                if let Ok(v) = serde_json::from_str(&t) {
                    out.messages.push(v);
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

pub(crate) fn outcome(attacker: &str, expected: &str, r: Result<(bool, String, Value)>) -> Outcome {
    match r {
        Ok((pass, observed, numbers)) => Outcome {
            attacker: attacker.into(),
            expected: expected.into(),
            observed,
            pass,
            numbers,
        },
        Err(e) => Outcome {
            attacker: attacker.into(),
            expected: expected.into(),
            observed: format!("the attacker itself failed: {e:#}"),
            pass: false,
            numbers: Value::Null,
        },
    }
}

/// Joins the good room and sends itself 60 KB `signal` frames (under the
/// message rate) without ever reading: the server queues them for it.
/// Documented: bytes queued over OUTBOUND_BUFFER_BYTES end the session as
/// too slow (close 1008 when the frame still fits); a write stuck for
/// WRITE_TIMEOUT_SECS drops the connection.
pub(crate) async fn non_reader(env: Env) -> Outcome {
    let d = &env.cfg.documented;
    // Kernel buffers on both sides fill first (a few MB on loopback), then
    // the outbound budget; the socket is gone at most a write timeout and
    // the 2 s flush bound later.
    let bound = 10.0 + d.write_timeout_s + 2.0;
    let expected = format!(
        "connection dropped by the server (close 1008 if the frame fits) within {bound:.0} s, while the client still holds it"
    );
    let r = async {
        let from: IpAddr = "127.0.0.7".parse()?;
        let mut ws = ws_from(&env, from, Some(&env.token("attacker-nonreader")?)).await?;
        let auth = next_json(&mut ws, Duration::from_secs(10)).await?;
        let me = auth["participantId"].as_str().unwrap_or_default().to_owned();
        let fd = ws.get_ref().as_raw_fd();
        ws.send(Message::text(
            json!({"type": "join", "roomName": env.room}).to_string(),
        ))
        .await?;
        let frame = json!({"type": "signal", "roomName": env.room, "to": me, "data": "x".repeat(60_000)})
            .to_string();
        let started = Instant::now();
        let (mut sent, mut cut_at) = (0u64, None);
        // 40 frames a second: under MESSAGE_RATE, so none is dropped.
        let mut tick = tokio::time::interval(Duration::from_millis(25));
        while Instant::now() < env.until {
            tick.tick().await;
            if tcp_state(fd) != Some(TCP_ESTABLISHED) {
                cut_at = Some(started.elapsed().as_secs_f64());
                break;
            }
            match tokio::time::timeout(Duration::from_millis(500), ws.send(Message::text(frame.clone()))).await {
                Ok(Ok(())) => sent += 1,
                Ok(Err(_)) => {
                    cut_at = Some(started.elapsed().as_secs_f64());
                    break;
                }
                Err(_) => {}
            }
        }
        // Only now read what is there, to find a close code.
        let (code, frames) = raw_close_code(&mut ws, Duration::from_secs(5)).await;
        let pass = cut_at.is_some_and(|t| t <= bound)
            && code.is_none_or(|c| c == signaling::close::POLICY);
        let observed = match cut_at {
            Some(t) => format!(
                "dropped {t:.1} s after it stopped reading ({sent} frames of 60 KB sent, {frames} frames waiting for it), close code {code:?}"
            ),
            None => format!("still connected after {sent} frames"),
        };
        Ok((
            pass,
            observed,
            json!({"cut_after_s": cut_at, "frames_sent": sent, "frames_unread": frames, "close_code": code, "bound_s": bound}),
        ))
    }
    .await;
    outcome("non-reader", &expected, r)
}

/// Joins the good room and never reads again (nor sends): it answers no
/// WebSocket ping. Documented: pings every 20 s, no pong for 60 s: close
/// 1008.
pub(crate) async fn silent_holder(env: Env) -> Outcome {
    let expected = "closed with 1008 (\"no pong\") 60–80 s after connecting (pings every 20 s, no pong for 60 s)";
    let r = async {
        let from: IpAddr = "127.0.0.8".parse()?;
        let started = Instant::now();
        let mut ws = ws_from(&env, from, Some(&env.token("attacker-holder")?)).await?;
        next_json(&mut ws, Duration::from_secs(10)).await?;
        ws.send(Message::text(
            json!({"type": "join", "roomName": env.room}).to_string(),
        ))
        .await?;
        let fd = ws.get_ref().as_raw_fd();
        let mut closed_at = None;
        while started.elapsed() < Duration::from_secs(90) {
            if tcp_state(fd) != Some(TCP_ESTABLISHED) {
                closed_at = Some(started.elapsed().as_secs_f64());
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (code, frames) = raw_close_code(&mut ws, Duration::from_secs(5)).await;
        let pass = closed_at.is_some_and(|t| (59.0..=83.0).contains(&t))
            && code == Some(signaling::close::POLICY);
        Ok((
            pass,
            format!(
                "closed {:?} s after connecting, close code {code:?} (after {frames} unread frames)",
                closed_at.map(|t| (t * 10.0).round() / 10.0),
            ),
            json!({"closed_after_s": closed_at, "close_code": code, "frames_unread": frames}),
        ))
    }
    .await;
    outcome("silent-holder", expected, r)
}

/// Sends `ping` messages at 2,000 a second for up to 10 s, reading the
/// replies. Documented: MESSAGE_RATE (50/s, bursts of 100); the rest is
/// dropped with `error` `rate-limited` at most about once a second; the
/// connection stays open.
pub(crate) async fn flooder(env: Env) -> Outcome {
    let d = env.cfg.documented.clone();
    let expected = format!(
        "at most {} + {}/s pongs, `rate-limited` about once a second, connection kept",
        d.message_burst, d.message_rate
    );
    let r = async {
        let from: IpAddr = "127.0.0.9".parse()?;
        let ws = ws_from(&env, from, Some(&env.token("attacker-flooder")?)).await?;
        let (mut tx, mut rx) = ws.split();
        let reader = tokio::spawn(async move {
            let mut got: Vec<(Instant, String)> = Vec::new();
            let mut close = None;
            while let Some(m) = rx.next().await {
                match m {
                    Ok(Message::Text(t)) => {
                        let v: Value = serde_json::from_str(&t).unwrap_or_default();
                        let ty = match v["type"].as_str() {
                            Some("error") => format!("error:{}", v["code"].as_str().unwrap_or("")),
                            Some(t) => t.to_owned(),
                            None => String::new(),
                        };
                        got.push((Instant::now(), ty));
                    }
                    Ok(Message::Close(f)) => {
                        close = Some(f.map(|f| u16::from(f.code)));
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            (got, close)
        });
        let ping = Message::text(r#"{"type":"ping"}"#);
        let started = Instant::now();
        let flood_for = Duration::from_secs(10).min(env.until.saturating_duration_since(started));
        let mut sent = 0u64;
        // 2,000 a second (40 times the rate): the attacker shares the
        // cores with the good call, and a busy loop here would starve the
        // good clients rather than test the server.
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while started.elapsed() < flood_for {
            tick.tick().await;
            for _ in 0..20 {
                tx.feed(ping.clone()).await?;
                sent += 1;
            }
            tx.flush().await?;
        }
        let flood_s = started.elapsed().as_secs_f64();
        // After a pause the connection serves again.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = Instant::now();
        tx.send(ping.clone()).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        tx.send(Message::Close(None)).await?;
        let (got, close) = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .map_err(|_| anyhow!("the socket did not close"))??;
        // Replies to the flood: everything that came before the last ping.
        let pongs = got.iter().filter(|(t, ty)| *t < after && ty == "pong").count() as f64;
        let limited = got.iter().filter(|(_, ty)| ty == "error:rate-limited").count() as f64;
        let other_errors: Vec<&String> = got.iter().map(|(_, t)| t).filter(|t| t.starts_with("error:") && *t != "error:rate-limited").collect();
        let pong_after = got.iter().any(|(t, ty)| *t >= after && ty == "pong");
        let allowed = d.message_burst + d.message_rate * (flood_s + 1.5);
        let pass = limited >= 1.0
            && limited <= flood_s.ceil() + 2.0
            && pongs <= allowed
            && pongs >= d.message_rate * flood_s * 0.5
            && other_errors.is_empty()
            && pong_after;
        Ok((
            pass,
            format!(
                "{sent} pings in {flood_s:.1} s: {pongs} answered (allowed {allowed:.0}), {limited} `rate-limited`; answered again after the flood: {pong_after}; close {close:?}"
            ),
            json!({"sent": sent, "flood_s": flood_s, "pongs": pongs, "allowed": allowed, "rate_limited": limited, "pong_after": pong_after, "other_errors": other_errors}),
        ))
    }
    .await;
    outcome("flooder", &expected, r)
}

/// Opens connections as fast as it can: raw TCP connections that never
/// send a request (up to 1000 in up to 5 s, from one address), WebSocket
/// upgrades of one identity, and upgrades that never authenticate.
/// Documented: beyond MAX_PENDING_CONNECTIONS_PER_IP a new connection is
/// closed at once, the rest after HTTP_HEADER_TIMEOUT_SECS; the 17th
/// connection of an identity gets `quota-exceeded` and close 1008; an
/// unauthenticated socket gets `unauthorized` and close 4008 after 10 s.
pub(crate) async fn connection_flood(env: Env) -> Outcome {
    let d = env.cfg.documented.clone();
    let expected = format!(
        "TCP: at most {} pending at a time, the rest closed at once, all closed {}–{} s after connecting; identity: {} accepted, the rest `quota-exceeded` + 1008; no auth: `unauthorized` + 4008 after {} s",
        d.pending_per_ip,
        d.header_timeout_s,
        d.header_timeout_s + 3.0,
        d.connections_per_identity,
        d.auth_timeout_s
    );
    let r = async {
        let to = server_addr(&env)?;
        let from: IpAddr = "127.0.0.5".parse()?;
        // 1. Raw TCP, as fast as connect() returns.
        let started = Instant::now();
        let mut watchers = Vec::new();
        while watchers.len() < 1000 && started.elapsed() < Duration::from_secs(5) {
            let Ok(mut s) = connect_from(from, to).await else { continue };
            let opened = Instant::now();
            watchers.push(tokio::spawn(async move {
                let mut buf = [0u8; 512];
                let end = opened + Duration::from_secs(20);
                loop {
                    match tokio::time::timeout_at(end.into(), s.read(&mut buf)).await {
                        Err(_) => return None,
                        Ok(Ok(0)) | Ok(Err(_)) => return Some(opened.elapsed().as_secs_f64()),
                        Ok(Ok(_)) => {}
                    }
                }
            }));
        }
        let opened = watchers.len();
        let rate = opened as f64 / started.elapsed().as_secs_f64();

        // 2. One identity, upgrades as fast as possible.
        let ident = env.token("attacker-connections")?;
        let n_ident = d.connections_per_identity + 8;
        let mut tasks = Vec::new();
        for _ in 0..n_ident {
            let (env2, tok) = (env.clone(), ident.clone());
            tasks.push(tokio::spawn(async move {
                let mut ws = ws_from(&env2, "127.0.0.10".parse().expect("literal"), Some(&tok)).await?;
                let first = next_json(&mut ws, Duration::from_secs(10)).await?;
                anyhow::Ok((first, ws))
            }));
        }
        // 3. Sockets that never authenticate.
        let mut unauth = Vec::new();
        for _ in 0..4 {
            let env2 = env.clone();
            unauth.push(tokio::spawn(async move {
                let t0 = Instant::now();
                let mut ws = ws_from(&env2, "127.0.0.11".parse().expect("literal"), None).await?;
                let end = read_to_end(&mut ws, Duration::from_secs(20)).await;
                anyhow::Ok((t0.elapsed().as_secs_f64(), end))
            }));
        }

        let mut accepted = Vec::new();
        let (mut refused_ok, mut odd) = (0usize, Vec::new());
        for t in tasks {
            match t.await? {
                Ok((first, ws)) if first["type"] == "auth-ok" => accepted.push(ws),
                Ok((first, mut ws)) if first["code"] == "quota-exceeded" => {
                    let end = read_to_end(&mut ws, Duration::from_secs(5)).await;
                    if end.code == Some(signaling::close::POLICY) {
                        refused_ok += 1;
                    } else {
                        odd.push(format!("quota-exceeded then close {:?}", end.code));
                    }
                }
                Ok((first, _)) => odd.push(first.to_string()),
                Err(e) => odd.push(format!("{e:#}")),
            }
        }
        let mut unauth_ok = 0usize;
        let mut unauth_times = Vec::new();
        for t in unauth {
            let (secs, end) = t.await??;
            unauth_times.push(secs);
            let said = end.messages.iter().any(|m| m["code"] == "unauthorized");
            if said
                && end.code == Some(signaling::close::AUTH_TIMEOUT)
                && (d.auth_timeout_s - 0.5..=d.auth_timeout_s + 3.0).contains(&secs)
            {
                unauth_ok += 1;
            } else {
                odd.push(format!("unauthenticated: {secs:.1} s, close {:?}, {:?}", end.code, end.messages));
            }
        }
        // Hold the accepted ones until the attack ends.
        tokio::time::sleep_until(env.until.into()).await;
        let n_accepted = accepted.len();
        for mut ws in accepted {
            let _ = ws.close(None).await;
        }

        let mut times = Vec::new();
        let mut still_open = 0;
        for w in watchers {
            match w.await? {
                Some(t) => times.push(t),
                None => still_open += 1,
            }
        }
        times.sort_by(f64::total_cmp);
        let at_once = times.iter().filter(|t| **t < 1.5).count();
        let held = times.iter().filter(|t| **t >= 1.5).count();
        let late_ok = times
            .iter()
            .filter(|t| **t >= 1.5)
            .all(|t| *t >= d.header_timeout_s - 0.5 && *t <= d.header_timeout_s + 3.0);
        let pass = still_open == 0
            && held <= d.pending_per_ip
            && held >= 1
            && late_ok
            && n_accepted == d.connections_per_identity
            && refused_ok == n_ident - d.connections_per_identity
            && unauth_ok == 4
            && odd.is_empty();
        Ok((
            pass,
            format!(
                "TCP: {opened} opened ({rate:.0}/s): {at_once} closed at once, {held} held until {:.1}–{:.1} s, {still_open} still open; identity: {n_accepted} accepted, {refused_ok} refused with 1008; unauthenticated: {unauth_ok}/4 closed 4008 at {unauth_times:.1?} s; other: {odd:?}",
                times.iter().find(|t| **t >= 1.5).copied().unwrap_or(0.0),
                times.last().copied().unwrap_or(0.0)
            ),
            json!({"tcp_opened": opened, "tcp_per_s": rate, "closed_at_once": at_once, "held_to_timeout": held, "still_open": still_open,
                   "identity_accepted": n_accepted, "identity_refused_1008": refused_ok, "unauthenticated_4008": unauth_ok, "unauth_closed_s": unauth_times, "other": odd}),
        ))
    }
    .await;
    outcome("connection-flood", &expected, r)
}
