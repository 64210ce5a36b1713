//! Misbehaving clients next to a good call (issue 16, part 2).
//!
//! On one node, a room of good participants (real webrtc-rs peers, each
//! publishing VP8 + Opus and receiving everyone else) runs while six
//! misbehaving clients attack at the same time: one that stops reading its
//! WebSocket, one that floods messages, one that opens connections as fast
//! as it can, one that never finishes ICE, one that sends junk datagrams
//! to the media ports, and one that subscribes and unsubscribes in a tight
//! loop. Each attacker checks that it got the treatment docs/SECURITY.md
//! documents ([`Outcome`]); the good call's delivery is measured over the
//! attack window, and good clients joining during the attack are timed
//! against clients that joined before it (the quiet baseline).
//!
//! Join latency of a probe: from the start of its session (WebSocket
//! connect) until media of every track of every good publisher has
//! arrived. A probe is a subscriber-only participant that then leaves.

mod attacks;
mod media_attacks;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sfu_testkit::rtc::Rtc;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::media::{Ctx, MediaConfig};
use crate::metrics::{Expect, Metrics, Role};
use crate::scenario::Spec;
use crate::sfu::{self, SfuTarget};

/// The documented limits the attackers check against (docs/SECURITY.md
/// and docs/PROTOCOL.md defaults; the node must run with them).
#[derive(Debug, Clone, Serialize)]
pub struct Documented {
    /// `MESSAGE_RATE`: messages per second.
    pub message_rate: f64,
    /// Its burst.
    pub message_burst: f64,
    /// `MAX_PENDING_CONNECTIONS_PER_IP`.
    pub pending_per_ip: usize,
    /// `HTTP_HEADER_TIMEOUT_SECS`.
    pub header_timeout_s: f64,
    /// `MAX_CONNECTIONS_PER_IDENTITY`.
    pub connections_per_identity: usize,
    /// `Limits::auth_timeout`.
    pub auth_timeout_s: f64,
    /// `WRITE_TIMEOUT_SECS` (plus the 2 s flush bound).
    pub write_timeout_s: f64,
    /// `negotiation::MAX_MLINES`.
    pub max_subscribe_sections: usize,
    /// Time after which a PeerConnection that never connected is closed.
    pub ice_connect_timeout_s: f64,
    /// How late the node's `sfu_peer_connections` gauge can show it: the
    /// actors look every second, the gauge is sampled every
    /// `MEDIA_STATS_SECS` (5 s).
    pub gauge_lag_s: f64,
}

impl Default for Documented {
    fn default() -> Self {
        Documented {
            message_rate: 50.0,
            message_burst: 100.0,
            pending_per_ip: 32,
            header_timeout_s: 10.0,
            connections_per_identity: 16,
            auth_timeout_s: 10.0,
            write_timeout_s: 10.0,
            max_subscribe_sections: signaling::MAX_SUBSCRIBE_MEDIA_SECTIONS,
            ice_connect_timeout_s: 30.0,
            gauge_lag_s: 6.0,
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ws://127.0.0.1:PORT/ws` of the node.
    pub ws_url: String,
    /// The node's HS256 `JWT_SECRET`.
    pub secret: String,
    /// The address WebRTC uses (the server's announced address).
    pub ip: IpAddr,
    /// Another local address the UDP attacker sends from. (The signaling
    /// attackers connect from loopback addresses 127.0.0.5–11, one each:
    /// other client IPs than the good clients' 127.0.0.1.)
    pub junk_from: IpAddr,
    /// The node's `RTC_MIN_PORT..=RTC_MAX_PORT`: the junk sprayer's targets.
    pub media_ports: (u16, u16),
    /// The node's log file: junk must not flood it.
    pub server_log: Option<std::path::PathBuf>,
    /// Good participants.
    pub participants: u32,
    /// Probe joins before the attack and during it (each).
    pub probes: u32,
    /// Quiet window before the attack, seconds (delivery baseline).
    pub quiet_s: f64,
    /// Attack window, seconds.
    pub attack_s: f64,
    /// Limits to check against.
    pub documented: Documented,
    /// The node's process id: its CPU time per window goes in the report.
    pub server_pid: Option<u32>,
}

/// One attacker's result.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Which attacker.
    pub attacker: String,
    /// What docs/SECURITY.md says it gets.
    pub expected: String,
    /// What it got.
    pub observed: String,
    /// Whether the two agree.
    pub pass: bool,
    /// Numbers behind `observed`.
    pub numbers: serde_json::Value,
}

/// Delivery to the good call over one window.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// Seconds of the window.
    pub seconds: usize,
    /// Packets the good participants should have received.
    pub expected: u64,
    /// Packets they received.
    pub received: u64,
    /// received / expected.
    pub delivery: Option<f64>,
    /// One-way delay p50, ms.
    pub delay_p50_ms: Option<f64>,
    /// One-way delay p99, ms.
    pub delay_p99_ms: Option<f64>,
    /// The node's CPU over the window, % of one core.
    pub server_cpu_pct: Option<f64>,
    /// This process's CPU (good clients, probes and attackers), % of one core.
    pub clients_cpu_pct: Option<f64>,
    /// Lines of the node's log that say a forwarding task fell behind its
    /// publisher (rheomesh "channel lagged": packets dropped in the server).
    pub server_lagged_lines: Option<usize>,
    /// 1-minute load average at the window's end.
    pub loadavg: Option<f64>,
}

/// Join latency of the probes of one phase, ms.
#[derive(Debug, Clone, Serialize)]
pub struct Joins {
    /// Each probe's latency (`None`: it never got all media).
    pub each_ms: Vec<Option<f64>>,
    /// Each probe's signaling part: connect, `auth-ok`, `joined` and the
    /// `subscribe-prepare-answer` (the server's answers only; the rest of
    /// the join is ICE, DTLS and the subscriptions).
    pub signaling_ms: Vec<Option<f64>>,
    /// Median of those that got media.
    pub p50_ms: Option<f64>,
    /// Largest.
    pub max_ms: Option<f64>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Good participants.
    pub participants: u32,
    /// The limits checked against.
    pub documented: Documented,
    /// Delivery before the attack.
    pub quiet: Window,
    /// Delivery during the attack.
    pub attack: Window,
    /// Good sessions that failed (should be none).
    pub good_failures: Vec<String>,
    /// Probe joins before the attack.
    pub joins_quiet: Joins,
    /// Probe joins during the attack.
    pub joins_attack: Joins,
    /// Each attacker.
    pub outcomes: Vec<Outcome>,
    /// 1-minute load average at the end (the machine is shared).
    pub loadavg: Option<String>,
}

/// Everything an attacker needs.
#[derive(Clone)]
pub(crate) struct Env {
    pub cfg: Arc<Config>,
    pub room: String,
    pub rtc: Arc<Rtc>,
    /// The attack ends.
    pub until: Instant,
}

impl Env {
    pub fn token(&self, user: &str) -> Result<String> {
        mint(&self.cfg.secret, user)
    }

    pub fn http_addr(&self) -> String {
        http_addr(&self.cfg.ws_url)
    }
}

fn http_addr(ws_url: &str) -> String {
    ws_url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A token for `user` valid in every room.
pub(crate) fn mint(secret: &str, user: &str) -> Result<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = serde_json::json!({
        "sub": user, "name": user,
        "canPublish": true, "canSubscribe": true,
        "iat": now, "exp": now + 6 * 3600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .context("mint token")
}

/// Media each good publisher sends: modest, so that the good call itself
/// is no load test on a shared machine.
fn media() -> MediaConfig {
    MediaConfig {
        video_kbps: 300,
        video_fps: 15,
        audio_pps: 50,
        ..MediaConfig::default()
    }
}

/// Runs the scenario.
pub async fn run(cfg: Config) -> Result<Report> {
    let cfg = Arc::new(cfg);
    let rtc = Arc::new(Rtc::new(cfg.ip)?);
    let metrics = Arc::new(Metrics::new());
    let room = format!("good-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let target = SfuTarget {
        ws_url: cfg.ws_url.clone(),
        http_addr: http_addr(&cfg.ws_url),
        secret: Some(cfg.secret.clone()),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctx = Ctx {
        rtc: Arc::clone(&rtc),
        metrics: Arc::clone(&metrics),
        media: media(),
        stop: stop_rx,
        prepare: true,
    };
    let n = cfg.participants;
    let mut good = JoinSet::new();
    let mut recs = Vec::new();
    for j in 0..n {
        let spec = Spec {
            name: format!("good-{j}"),
            publish: Some(j),
            subscribe: true,
        };
        let rec = metrics.client(spec.name.clone(), Role::Participant, Some(j), false);
        recs.push(Arc::clone(&rec));
        let (t, r, c) = (target.clone(), room.clone(), ctx.clone());
        good.spawn(async move { sfu::run(&t, &r, &spec, &c, rec).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Settle: everyone receives every other publisher's two tracks.
    let want = 2 * (n as usize - 1);
    let settle_end = Instant::now() + Duration::from_secs(40);
    while !recs.iter().all(|r| r.receiving() >= want) {
        if Instant::now() > settle_end {
            let _ = stop_tx.send(true);
            let why: Vec<String> = recs
                .iter()
                .map(|r| format!("{} receives {} ({:?})", r.name, r.receiving(), r.error()))
                .collect();
            bail!("the good call did not settle within 40 s: {why:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let publishers: Vec<u32> = (0..n).collect();

    // Quiet phase: probes, and the delivery baseline.
    let quiet_from = metrics.now_sec() + 1;
    let quiet_mark = mark(&cfg);
    let quiet_end = Instant::now() + Duration::from_secs_f64(cfg.quiet_s);
    let joins_quiet = probes(&target, &room, &ctx, &publishers, "quiet", cfg.probes).await;
    tokio::time::sleep_until(quiet_end.into()).await;
    let quiet_to = metrics.now_sec();
    let quiet_end_mark = mark(&cfg);

    // Attack phase.
    let attack_from = metrics.now_sec() + 1;
    let attack_mark = mark(&cfg);
    let until = Instant::now() + Duration::from_secs_f64(cfg.attack_s);
    let env = Env {
        cfg: Arc::clone(&cfg),
        room: room.clone(),
        rtc: Arc::clone(&rtc),
        until,
    };
    let mut attackers: JoinSet<Outcome> = JoinSet::new();
    attackers.spawn(attacks::non_reader(env.clone()));
    attackers.spawn(attacks::silent_holder(env.clone()));
    attackers.spawn(attacks::flooder(env.clone()));
    attackers.spawn(attacks::connection_flood(env.clone()));
    attackers.spawn(media_attacks::ice_staller(env.clone()));
    attackers.spawn(media_attacks::udp_junk(env.clone()));
    attackers.spawn(media_attacks::subscribe_churn(env.clone()));
    // Probes join while the attacks run (after they have started).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let joins_attack = probes(&target, &room, &ctx, &publishers, "attack", cfg.probes).await;
    tokio::time::sleep_until(until.into()).await;
    let attack_to = metrics.now_sec();
    let attack_end_mark = mark(&cfg);

    let mut outcomes = Vec::new();
    // Attackers finish their checks (some wait for documented timeouts).
    let finish = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(r) = attackers.join_next().await {
            match r {
                Ok(o) => outcomes.push(o),
                Err(e) => outcomes.push(Outcome {
                    attacker: "?".into(),
                    expected: "the attacker task ends".into(),
                    observed: format!("panicked: {e}"),
                    pass: false,
                    numbers: serde_json::Value::Null,
                }),
            }
        }
    })
    .await;
    if finish.is_err() {
        attackers.abort_all();
        outcomes.push(Outcome {
            attacker: "all".into(),
            expected: "every attacker finishes within 90 s of the attack's end".into(),
            observed: "some did not".into(),
            pass: false,
            numbers: serde_json::Value::Null,
        });
    }
    outcomes.sort_by(|a, b| a.attacker.cmp(&b.attacker));

    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        while good.join_next().await.is_some() {}
    })
    .await;
    good.abort_all();

    let good_failures = recs
        .iter()
        .filter_map(|r| r.error().map(|e| format!("{}: {e}", r.name)))
        .collect();
    Ok(Report {
        participants: n,
        documented: cfg.documented.clone(),
        quiet: window(&metrics, quiet_from, quiet_to, quiet_mark, quiet_end_mark),
        attack: window(
            &metrics,
            attack_from,
            attack_to,
            attack_mark,
            attack_end_mark,
        ),
        good_failures,
        joins_quiet,
        joins_attack,
        outcomes,
        loadavg: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .map(|s| s.trim().to_owned()),
    })
}

/// CPU seconds of the node and of this process, lagged-forwarding log
/// lines, and when: taken at the edges of a window.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: Instant,
    server_cpu_s: Option<f64>,
    own_cpu_s: Option<f64>,
    lagged: Option<usize>,
}

fn mark(cfg: &Config) -> Mark {
    Mark {
        at: Instant::now(),
        server_cpu_s: cfg.server_pid.and_then(crate::procstat::read).map(|r| r.0),
        own_cpu_s: crate::procstat::read(std::process::id()).map(|r| r.0),
        lagged: cfg.server_log.as_ref().and_then(|p| {
            std::fs::read_to_string(p)
                .ok()
                .map(|t| t.lines().filter(|l| l.contains("channel lagged")).count())
        }),
    }
}

fn window(metrics: &Metrics, from: usize, to: usize, a: Mark, b: Mark) -> Window {
    let s = metrics.summarize(from, to, Expect::Whole);
    let secs = b.at.duration_since(a.at).as_secs_f64().max(0.001);
    let pct = |x: Option<f64>, y: Option<f64>| Some(100.0 * (y? - x?) / secs);
    Window {
        seconds: to.saturating_sub(from),
        expected: s.expected_packets,
        received: s.received_packets,
        delivery: s.delivery,
        delay_p50_ms: s.delay_ms.as_ref().map(|d| d.p50),
        delay_p99_ms: s.delay_ms.as_ref().map(|d| d.p99),
        server_cpu_pct: pct(a.server_cpu_s, b.server_cpu_s),
        clients_cpu_pct: pct(a.own_cpu_s, b.own_cpu_s),
        server_lagged_lines: b.lagged.zip(a.lagged).map(|(b, a)| b.saturating_sub(a)),
        loadavg: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok()),
    }
}

/// `count` probes one after another: each joins as a subscriber, is timed
/// until it receives every track of every good publisher, and leaves.
async fn probes(
    target: &SfuTarget,
    room: &str,
    ctx: &Ctx,
    publishers: &[u32],
    phase: &str,
    count: u32,
) -> Joins {
    let (mut each, mut signaling) = (Vec::new(), Vec::new());
    for i in 0..count {
        // Its own counters: the good call's delivery is the good call's.
        let metrics = Arc::new(Metrics::new());
        let (tx, rx) = watch::channel(false);
        let pctx = Ctx {
            metrics: Arc::clone(&metrics),
            stop: rx,
            ..ctx.clone()
        };
        let spec = Spec {
            name: format!("probe-{phase}-{i}"),
            publish: None,
            subscribe: true,
        };
        let rec = metrics.client(spec.name.clone(), Role::Subscriber, None, true);
        let started = Instant::now();
        let (t, r, r2) = (target.clone(), room.to_owned(), Arc::clone(&rec));
        let task = tokio::spawn(async move { sfu::run(&t, &r, &spec, &pctx, r2).await });
        let want = publishers.len() * 2;
        let deadline = started + Duration::from_secs(20);
        let (mut took, mut signaled) = (None, None);
        while Instant::now() < deadline && rec.error().is_none() {
            if signaled.is_none() && rec.is_connected() {
                signaled = Some(started.elapsed().as_secs_f64() * 1000.0);
            }
            if rec.receiving() >= want {
                took = Some(started.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        each.push(took);
        signaling.push(signaled);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut ok: Vec<f64> = each.iter().flatten().copied().collect();
    ok.sort_by(f64::total_cmp);
    Joins {
        p50_ms: ok.get(ok.len() / 2).copied().filter(|_| !ok.is_empty()),
        max_ms: ok.last().copied(),
        each_ms: each,
        signaling_ms: signaling,
    }
}

/// Delivery the good call keeps during the attack (issue 16).
pub const MIN_DELIVERY: f64 = 0.999;

/// The join-latency bound: a good client joining during the attack gets
/// all media within `JOIN_FACTOR` × the quiet median plus `JOIN_SLACK_MS`
/// (median against median). The slack absorbs scheduling noise of a
/// machine whose cores the clients share; the factor is what an attack
/// may cost at most.
pub const JOIN_FACTOR: f64 = 1.5;
/// See [`JOIN_FACTOR`].
pub const JOIN_SLACK_MS: f64 = 250.0;

impl Report {
    /// The join-latency bound of this run, ms (from its quiet probes).
    pub fn join_bound_ms(&self) -> Option<f64> {
        self.joins_quiet
            .p50_ms
            .map(|q| q * JOIN_FACTOR + JOIN_SLACK_MS)
    }

    /// Every check that failed, in words (empty: the run passed).
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for o in self.outcomes.iter().filter(|o| !o.pass) {
            out.push(format!(
                "{}: expected {}; observed {}",
                o.attacker, o.expected, o.observed
            ));
        }
        if self.outcomes.len() < 7 {
            out.push(format!("only {} attackers reported", self.outcomes.len()));
        }
        if !self.good_failures.is_empty() {
            out.push(format!("good sessions failed: {:?}", self.good_failures));
        }
        for (name, w) in [("quiet", &self.quiet), ("attack", &self.attack)] {
            match w.delivery {
                Some(d) if d >= MIN_DELIVERY => {}
                d => out.push(format!(
                    "good call delivery in the {name} window {d:?} < {MIN_DELIVERY} ({} of {} packets)",
                    w.received, w.expected
                )),
            }
        }
        for (name, j) in [("quiet", &self.joins_quiet), ("attack", &self.joins_attack)] {
            if j.each_ms.is_empty() || j.each_ms.iter().any(Option::is_none) {
                out.push(format!("{name} probes without all media: {:?}", j.each_ms));
            }
        }
        match (self.joins_attack.p50_ms, self.join_bound_ms()) {
            (Some(a), Some(b)) if a <= b => {}
            (a, b) => out.push(format!(
                "join latency under attack (median {a:?} ms) over the bound {b:?} ms ({JOIN_FACTOR} × quiet median + {JOIN_SLACK_MS} ms)"
            )),
        }
        out
    }
}
