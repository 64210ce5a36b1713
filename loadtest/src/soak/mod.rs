//! Churn soak: does the server give back everything it took?
//!
//! A few *stable* participants stay in one room the whole run, publishing
//! and receiving each other; their delivery is measured per second. Around
//! them, `--rooms` room slots open a fresh room each, fill it with
//! `--room-size` churn participants ([`member`]) that publish, subscribe,
//! unsubscribe and subscribe again, unpublish and publish again, and end
//! with `leave`, a dropped WebSocket or PeerConnections closed without a
//! message; when the last one is gone the room closes and the slot opens
//! the next one. The server is sampled every second ([`server`]).
//!
//! Before the load, a short warm-up call (one-time initialisation is not a
//! leak) and a wait until the server is idle and steady give the baseline.
//! After the load stops and the last client is gone, every quantity of
//! [`server::CHECKED`] must come back to it within `--recovery-secs` and
//! stay there; delivery to the stable participants must stay at or above
//! `--min-delivery`.

pub mod chart;
pub mod member;
pub mod server;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Serialize;
use sfu_testkit::rtc::Rtc;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::media::{Ctx, MediaConfig};
use crate::metrics::{Expect, Metrics, Percentiles, Role, SecondReport};
use crate::scenario::Spec;
use crate::sfu::{self, SfuTarget};
use member::{End, Ops, OpsReport, Plan};
use server::{Sample, Sampler, Tolerance, CHECKED};

/// Command line of `soak`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "soak",
    version,
    about = "Churn soak against rheo-sfu: rooms open and close, participants come and go, the server must give everything back"
)]
pub struct SoakArgs {
    /// Signaling WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:9000/ws")]
    pub url: String,
    /// The server's JWT_SECRET to mint tokens; without it `/dev/token` is used.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// The only address WebRTC candidates may use.
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: IpAddr,
    /// Server process id (for /proc: RSS, FDs, threads).
    #[arg(long)]
    pub server_pid: u32,
    /// Seconds of churn load.
    #[arg(long, default_value_t = 1800.0)]
    pub duration: f64,
    /// Stable participants (one room, the whole run).
    #[arg(long, default_value_t = 4)]
    pub stable: u32,
    /// Churn room slots open at once. The default, 40 rooms of 3 (each
    /// participant receiving 2 others: 480 forwarded tracks, plus 24 of the
    /// stable room) is about half of the 1000 forwarded tracks
    /// docs/BENCHMARKS.md gives as this machine's capacity.
    #[arg(long, default_value_t = 40)]
    pub rooms: u32,
    /// Churn participants per room.
    #[arg(long, default_value_t = 3)]
    pub room_size: u32,
    /// Mean churn session length, seconds (each is 0.5–1.5 times this).
    #[arg(long, default_value_t = 60.0)]
    pub session_secs: f64,
    /// Room slots started per second at the beginning.
    #[arg(long, default_value_t = 2.0)]
    pub ramp_rate: f64,
    /// Video bitrate of every publisher, kbit/s.
    #[arg(long, default_value_t = 500)]
    pub video_kbps: u32,
    /// Video frames per second of every publisher.
    #[arg(long, default_value_t = 30)]
    pub video_fps: u32,
    /// Audio packets per second of every publisher.
    #[arg(long, default_value_t = 50)]
    pub audio_pps: u32,
    /// Seconds of the same load before the baseline is taken (see the
    /// module documentation).
    #[arg(long, default_value_t = 30.0)]
    pub warmup_secs: f64,
    /// Seconds after the last client is gone within which every quantity
    /// must be back at its baseline.
    #[arg(long, default_value_t = 30.0)]
    pub recovery_secs: f64,
    /// Least delivery to the stable participants, as a fraction.
    #[arg(long, default_value_t = 0.999)]
    pub min_delivery: f64,
    /// Seconds per window in which stable delivery must each time reach
    /// `--min-delivery` ("throughout").
    #[arg(long, default_value_t = 10)]
    pub delivery_window: usize,
    /// Output directory: summary.json, series.json, PNGs.
    #[arg(long, default_value = "soak-results")]
    pub out: PathBuf,
    /// Free text in the summary and plot titles.
    #[arg(long)]
    pub label: Option<String>,
    /// Fewer progress lines.
    #[arg(long)]
    pub quiet: bool,
}

/// How one checked quantity came back.
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    /// Name (see [`server::CHECKED`]).
    pub name: String,
    /// Tolerance.
    pub tolerance: Tolerance,
    /// Value before the load.
    pub baseline: f64,
    /// Largest value seen during the load.
    pub peak: f64,
    /// Value at the end of the recovery window.
    pub end: f64,
    /// Seconds after the last client left from which it stayed within
    /// tolerance to the end of the window; `None`: it did not.
    pub back_after_s: Option<f64>,
    /// Whether it came back in time.
    pub pass: bool,
}

/// Delivery to the stable participants.
#[derive(Debug, Clone, Serialize)]
pub struct StableReport {
    /// Participants.
    pub participants: u32,
    /// Measurement window, run seconds `[from, to)`.
    pub window: (usize, usize),
    /// Packets expected in the window.
    pub expected: u64,
    /// Packets received.
    pub received: u64,
    /// received / expected.
    pub delivery: Option<f64>,
    /// Worst delivery over `delivery_window`-second windows, %.
    pub worst_window_pct: Option<f64>,
    /// Worst single second, %.
    pub worst_second_pct: Option<f64>,
    /// Seconds below `min_delivery`.
    pub seconds_below: usize,
    /// One-way delay in the window.
    pub delay_ms: Option<Percentiles>,
    /// Sessions that failed.
    pub failed: u64,
}

/// The small summary (committed next to the plots).
#[derive(Debug, Clone, Serialize)]
pub struct SoakSummary {
    /// `--label`.
    pub label: Option<String>,
    /// The load.
    pub params: Params,
    /// Seconds of churn load actually run.
    pub load_secs: f64,
    /// Server before the warm-up.
    pub before_warmup: Sample,
    /// What the warm-up's churn sessions did.
    pub warmup: Option<OpsReport>,
    /// The baseline.
    pub baseline: Sample,
    /// The peak of each checked quantity is in `recovery`; this is the
    /// last sample under load.
    pub under_load: Option<Sample>,
    /// Server at the end of the recovery window.
    pub after: Option<Sample>,
    /// Each checked quantity.
    pub recovery: Vec<Recovery>,
    /// Stable participants.
    pub stable: StableReport,
    /// What the churn sessions did.
    pub churn: OpsReport,
    /// Churn sessions per second (started), over the load.
    pub churn_sessions_per_s: f64,
    /// A few errors of failed churn sessions.
    pub churn_errors: Vec<String>,
    /// Server readings that failed.
    pub sampler_errors: Vec<String>,
    /// Every criterion met.
    pub pass: bool,
    /// The criteria not met.
    pub failures: Vec<String>,
}

/// The load parameters in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// `--duration`.
    pub duration_s: f64,
    /// `--stable`.
    pub stable: u32,
    /// `--rooms`.
    pub rooms: u32,
    /// `--room-size`.
    pub room_size: u32,
    /// `--session-secs`.
    pub session_secs: f64,
    /// `--video-kbps`.
    pub video_kbps: u32,
    /// `--video-fps`.
    pub video_fps: u32,
    /// `--audio-pps`.
    pub audio_pps: u32,
    /// `--warmup-secs`.
    pub warmup_secs: f64,
    /// `--recovery-secs`.
    pub recovery_secs: f64,
    /// `--min-delivery`.
    pub min_delivery: f64,
    /// `--delivery-window`.
    pub delivery_window: usize,
}

/// Per-second data (large; not meant for git).
#[derive(Debug, Clone, Serialize)]
pub struct SoakSeries {
    /// Server samples.
    pub server: Vec<Sample>,
    /// Stable delivery per second.
    pub stable: Vec<SecondReport>,
    /// Churn clients connected, per second: (run second, count).
    pub churn_clients: Vec<(f64, usize)>,
    /// Phase marks: (name, run second).
    pub marks: Vec<(String, f64)>,
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// Summary.
    pub summary: SoakSummary,
    /// Per second.
    pub series: SoakSeries,
}

fn say(quiet: bool, msg: impl AsRef<str>) {
    if !quiet {
        eprintln!("soak: {}", msg.as_ref());
    }
}

fn http_addr(url: &str) -> String {
    url.trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// What the churn room slots share.
#[derive(Clone)]
struct Churn {
    target: SfuTarget,
    ctx: Ctx,
    ops: Arc<Ops>,
    run_id: String,
    room_size: u32,
    session_secs: f64,
    next_index: Arc<AtomicU32>,
    next_session: Arc<AtomicU64>,
}

impl Churn {
    fn plan(&self, name: String) -> Plan {
        let n = self.next_session.fetch_add(1, Ordering::Relaxed);
        let i = self.next_index.fetch_add(2, Ordering::Relaxed);
        Plan {
            name,
            publish: (i, i + 1),
            lifetime: Duration::from_secs_f64(
                (self.session_secs * (0.5 + rand::random::<f64>())).max(2.0),
            ),
            end: End::nth(n),
        }
    }

    /// One room slot: a fresh room at a time, filled one participant a
    /// second, closed when its last participant is gone.
    async fn slot(self, slot: u32, delay: Duration, last_start: Instant) {
        let mut stop = self.ctx.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        for generation in 0u32.. {
            if *stop.borrow() || Instant::now() >= last_start {
                return;
            }
            let room = format!("soak-{}-{slot}-{generation}", self.run_id);
            let mut members = JoinSet::new();
            for k in 0..self.room_size {
                let plan = self.plan(format!("churn-{slot}-{generation}-{k}"));
                let rec = self.ctx.metrics.client(
                    plan.name.clone(),
                    Role::Participant,
                    Some(plan.publish.0),
                    false,
                );
                let (c, room) = (self.clone(), room.clone());
                let start = Duration::from_secs(u64::from(k));
                members.spawn(async move {
                    tokio::time::sleep(start).await;
                    let limit = plan.lifetime + Duration::from_secs(60);
                    let _ = tokio::time::timeout(
                        limit,
                        member::run(&c.target, &room, &plan, &c.ctx, rec, &c.ops),
                    )
                    .await;
                });
            }
            while members.join_next().await.is_some() {}
        }
    }
}

/// Waits until the server is idle and its checked quantities (but RSS)
/// have stayed the same for `steady` consecutive samples, at most `limit`;
/// returns the last sample.
async fn wait_steady(sampler: &Sampler, steady: usize, limit: Duration) -> Option<Sample> {
    let end = Instant::now() + limit;
    loop {
        let s = sampler.samples();
        if s.len() >= steady {
            let tail = &s[s.len() - steady..];
            let same = tail.iter().all(|x| {
                x.idle()
                    && CHECKED
                        .iter()
                        .filter(|(_, t)| *t == Tolerance::Exact)
                        .all(|(n, _)| x.get(n) == tail[0].get(n))
            });
            if same {
                return tail.last().cloned();
            }
        }
        if Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What every phase shares.
struct Setup<'a> {
    args: &'a SoakArgs,
    target: SfuTarget,
    rtc: Arc<Rtc>,
    media: MediaConfig,
    run_id: String,
    sampler: &'a Sampler,
    origin: usize,
}

/// What a phase of load did.
struct Phase {
    churn: OpsReport,
    churn_errors: Vec<String>,
    churn_clients: Vec<(f64, usize)>,
    load_secs: f64,
    under_load: Option<Sample>,
    /// Stable delivery window, process seconds `[from, to)`.
    window: (usize, usize),
}

/// Run seconds (since `origin`) of an instant.
fn rel(origin: usize, i: Instant) -> f64 {
    let ago = Instant::now().saturating_duration_since(i).as_secs_f64();
    crate::tail::now_ns() as f64 / 1e9 - ago - origin as f64
}

/// One phase: the stable room, `secs` of churn around it, then everyone
/// leaves (churn first, then the stable participants).
async fn phase(
    s: &Setup<'_>,
    name: &str,
    secs: f64,
    stable_metrics: Arc<Metrics>,
    marks: &mut Vec<(String, f64)>,
) -> Result<Phase> {
    let (args, quiet) = (s.args, s.args.quiet);
    let (target, rtc, media, sampler) = (&s.target, &s.rtc, s.media, s.sampler);
    // Stable participants.
    let (stable_stop_tx, stable_stop) = watch::channel(false);
    let stable_ctx = Ctx {
        rtc: rtc.clone(),
        metrics: stable_metrics.clone(),
        media,
        stop: stable_stop,
        prepare: true,
    };
    let stable_room = format!("soak-{}-{name}-stable", s.run_id);
    let mut stable_tasks = JoinSet::new();
    let mut stable_recs = Vec::new();
    for i in 0..args.stable {
        let spec = Spec {
            name: format!("stable-{i}"),
            publish: Some(i),
            subscribe: true,
        };
        let rec = stable_metrics.client(spec.name.clone(), Role::Participant, Some(i), false);
        stable_recs.push(rec.clone());
        let (t, room, ctx) = (target.clone(), stable_room.clone(), stable_ctx.clone());
        stable_tasks.spawn(async move { sfu::run(&t, &room, &spec, &ctx, rec).await });
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let want = 2 * (args.stable as usize - 1);
    let settle_end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(e) = stable_recs.iter().find_map(|r| r.error()) {
            bail!("a stable participant failed: {e}");
        }
        if stable_recs.iter().all(|r| r.receiving() >= want) {
            break;
        }
        if Instant::now() >= settle_end {
            bail!("the stable participants did not all receive each other within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    say(quiet, format!("{name}: stable room up; churn starts"));

    // Churn.
    let (churn_stop_tx, churn_stop) = watch::channel(false);
    let churn = Churn {
        target: target.clone(),
        ctx: Ctx {
            rtc: rtc.clone(),
            metrics: Arc::new(Metrics::new()),
            media,
            stop: churn_stop,
            prepare: true,
        },
        ops: Arc::new(Ops::default()),
        run_id: format!("{}-{name}", s.run_id),
        room_size: args.room_size.max(1),
        session_secs: args.session_secs,
        // Stable publishers use 0..stable; churn indexes come after.
        next_index: Arc::new(AtomicU32::new(1000)),
        next_session: Arc::new(AtomicU64::new(0)),
    };
    let churn_start = Instant::now();
    let window_from = stable_metrics.now_sec() + 1;
    marks.push((format!("{name}: load"), rel(s.origin, churn_start)));
    let load = Duration::from_secs_f64(secs);
    // No room starts in the last seconds of the load.
    let last_start = churn_start + load.saturating_sub(Duration::from_secs(5));
    let mut slots = JoinSet::new();
    for slot in 0..args.rooms {
        let delay = Duration::from_secs_f64(f64::from(slot) / args.ramp_rate.max(0.01));
        slots.spawn(churn.clone().slot(slot, delay, last_start));
    }
    let mut churn_clients = Vec::new();
    let mut next_note = Instant::now();
    while churn_start.elapsed() < load {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let connected = churn.ctx.metrics.connected();
        churn_clients.push((rel(s.origin, Instant::now()), connected));
        if Instant::now() >= next_note {
            next_note += Duration::from_secs(30);
            if let Some(s) = sampler.last() {
                let o = churn.ops.report();
                say(
                    quiet,
                    format!(
                        "{name} {:>5.0} s: {connected} churn clients, {} sessions ({} failed); server {} rooms, {} participants, {} forwarded tracks, CPU {:.0} %, RSS {:.1} MiB, {} FDs, {} tasks",
                        churn_start.elapsed().as_secs_f64(),
                        o.sessions,
                        o.failed,
                        s.rooms,
                        s.participants,
                        s.forwarded_tracks,
                        s.cpu_pct.unwrap_or(0.0),
                        s.rss_mb,
                        s.fds,
                        s.tasks
                    ),
                );
            }
        }
    }
    let under_load = sampler.last();
    let load_end_sec = stable_metrics.now_sec();
    let load_secs = churn_start.elapsed().as_secs_f64();
    marks.push((format!("{name}: load stops"), rel(s.origin, Instant::now())));
    say(quiet, format!("{name}: load stops"));
    let _ = churn_stop_tx.send(true);
    if tokio::time::timeout(Duration::from_secs(60), async {
        while slots.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        slots.abort_all();
    }
    let _ = stable_stop_tx.send(true);
    if tokio::time::timeout(Duration::from_secs(30), async {
        while stable_tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        stable_tasks.abort_all();
    }
    let churn_errors: Vec<String> = churn
        .ctx
        .metrics
        .clients()
        .iter()
        .filter_map(|c| c.error().map(|e| format!("{}: {e}", c.name)))
        .take(10)
        .collect();
    Ok(Phase {
        churn: churn.ops.report(),
        churn_errors,
        churn_clients,
        load_secs,
        under_load,
        window: (window_from, load_end_sec),
    })
}

/// Runs the soak; writes nothing (see [`write_outputs`]).
pub async fn run(args: &SoakArgs) -> Result<SoakReport> {
    if args.stable < 2 {
        bail!("--stable must be at least 2 (they receive each other)");
    }
    let quiet = args.quiet;
    let target = SfuTarget {
        ws_url: args.url.clone(),
        http_addr: http_addr(&args.url),
        secret: args.jwt_secret.clone(),
    };
    let rtc = Arc::new(Rtc::new(args.ip)?);
    let media = MediaConfig {
        video_kbps: args.video_kbps,
        video_fps: args.video_fps,
        audio_pps: args.audio_pps,
        ..MediaConfig::default()
    };
    let stable_metrics = Arc::new(Metrics::new());
    let origin = stable_metrics.origin_sec();
    let mut marks: Vec<(String, f64)> = Vec::new();
    let (sampler_stop_tx, sampler_stop) = watch::channel(false);
    let sampler = Sampler::start(
        args.server_pid,
        target.http_addr.clone(),
        origin,
        sampler_stop,
    )
    .await
    .context("first reading of the server")?;
    let before_warmup = sampler.last().context("first sample")?;
    let setup = Setup {
        args,
        target,
        rtc,
        media,
        run_id: uuid::Uuid::new_v4().simple().to_string()[..6].to_owned(),
        sampler: &sampler,
        origin,
    };

    // Warm-up: the same load for a short while, then quiet. The baseline
    // is taken after it: what the server sets up once (lazily initialised
    // state, the allocator's pools for this load) is not a leak; a leak
    // grows with the length of the run, which the main phase then shows.
    let warmup = if args.warmup_secs > 0.0 {
        say(
            quiet,
            format!("warm-up: {:.0} s of the same load", args.warmup_secs),
        );
        let p = phase(
            &setup,
            "warm-up",
            args.warmup_secs,
            Arc::new(Metrics::new()),
            &mut marks,
        )
        .await?;
        Some(p.churn)
    } else {
        None
    };
    // Idle and steady for 5 s; tokio's idle blocking threads exit after
    // 10 s, so give them that first.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let baseline = wait_steady(&sampler, 5, Duration::from_secs(60))
        .await
        .context("the server did not become idle and steady after the warm-up")?;
    say(
        quiet,
        format!(
            "baseline: RSS {:.1} MiB, live heap {:.1} MiB, {} FDs, {} threads, {} tasks, {} UDP sockets",
            baseline.rss_mb,
            baseline.heap_mb,
            baseline.fds,
            baseline.threads,
            baseline.tasks,
            baseline.udp_sockets
        ),
    );
    marks.push(("baseline".into(), baseline.t));

    let main = phase(
        &setup,
        "soak",
        args.duration,
        stable_metrics.clone(),
        &mut marks,
    )
    .await?;
    let Phase {
        churn: churn_ops,
        churn_errors,
        churn_clients,
        load_secs,
        under_load,
        window: (window_from, window_to),
    } = main;
    let gone = Instant::now();
    let gone_t = rel(origin, gone);
    marks.push(("last client gone".into(), gone_t));
    say(quiet, "last client gone; watching the server come back");
    let recovery = Duration::from_secs_f64(args.recovery_secs);
    tokio::time::sleep_until(gone + recovery + Duration::from_millis(1500)).await;
    let _ = sampler_stop_tx.send(true);

    // Stable delivery.
    let sum = stable_metrics.summarize(window_from, window_to, Expect::Whole);
    let (from_t, to_t) = (window_from - origin, window_to - origin);
    let in_window: Vec<&SecondReport> = sum
        .series
        .iter()
        .filter(|s| s.t >= from_t && s.t < to_t)
        .collect();
    let worst_second_pct = in_window
        .iter()
        .filter_map(|s| s.delivery_pct)
        .fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.min(d))));
    let seconds_below = in_window
        .iter()
        .filter(|s| {
            s.delivery_pct
                .is_some_and(|d| d < args.min_delivery * 100.0)
        })
        .count();
    let w = args.delivery_window.max(1);
    let worst_window_pct = in_window
        .chunks(w)
        .filter_map(|c| {
            let (r, e) = c
                .iter()
                .fold((0u64, 0u64), |(r, e), s| (r + s.received, e + s.expected));
            (e > 0).then(|| 100.0 * r as f64 / e as f64)
        })
        .fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.min(d))));
    let stable = StableReport {
        participants: args.stable,
        window: (from_t, to_t),
        expected: sum.expected_packets,
        received: sum.received_packets,
        delivery: sum.delivery,
        worst_window_pct,
        worst_second_pct,
        seconds_below,
        delay_ms: sum.delay_ms.clone(),
        failed: sum.failed,
    };

    // Recovery.
    let samples = sampler.samples();
    let end_t = gone_t + args.recovery_secs;
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t >= baseline.t && s.t <= gone_t)
        .collect();
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t > gone_t && s.t <= end_t + 1.0)
        .collect();
    let mut recoveries = Vec::new();
    for (name, tol) in CHECKED {
        let base = baseline.get(name);
        let peak = during.iter().map(|s| s.get(name)).fold(base, f64::max);
        // The first sample from which every later one is within tolerance.
        let mut back = None;
        for (i, s) in after.iter().enumerate() {
            if after[i..]
                .iter()
                .all(|x| server::within(x.get(name), base, *tol))
            {
                back = Some((s.t - gone_t).max(0.0));
                break;
            }
        }
        let end = after.last().map_or(f64::NAN, |s| s.get(name));
        let pass = back.is_some_and(|b| b <= args.recovery_secs);
        recoveries.push(Recovery {
            name: (*name).to_owned(),
            tolerance: *tol,
            baseline: base,
            peak,
            end,
            back_after_s: back,
            pass,
        });
    }

    let mut failures = Vec::new();
    for r in &recoveries {
        if !r.pass {
            failures.push(format!(
                "{} did not come back to its baseline {} within {} s (peak {}, at the end {})",
                r.name, r.baseline, args.recovery_secs, r.peak, r.end
            ));
        }
    }
    if after.len() < (args.recovery_secs as usize) / 2 {
        failures.push(format!(
            "only {} server samples in the recovery window",
            after.len()
        ));
    }
    match stable.delivery {
        Some(d) if d >= args.min_delivery => {}
        d => failures.push(format!(
            "stable delivery {d:?} < {} (expected {}, received {})",
            args.min_delivery, stable.expected, stable.received
        )),
    }
    if let Some(w) = stable.worst_window_pct {
        if w < args.min_delivery * 100.0 {
            failures.push(format!(
                "stable delivery fell to {w:.3} % in a {}-s window",
                args.delivery_window
            ));
        }
    }
    if stable.failed > 0 {
        failures.push(format!("{} stable participants failed", stable.failed));
    }
    if churn_ops.sessions == 0 {
        failures.push("no churn session ran".into());
    }
    let summary = SoakSummary {
        label: args.label.clone(),
        params: Params {
            duration_s: args.duration,
            stable: args.stable,
            rooms: args.rooms,
            room_size: args.room_size,
            session_secs: args.session_secs,
            video_kbps: args.video_kbps,
            video_fps: args.video_fps,
            audio_pps: args.audio_pps,
            warmup_secs: args.warmup_secs,
            recovery_secs: args.recovery_secs,
            min_delivery: args.min_delivery,
            delivery_window: args.delivery_window,
        },
        load_secs,
        before_warmup,
        warmup,
        baseline,
        under_load,
        after: after.last().map(|s| (*s).clone()),
        recovery: recoveries,
        stable,
        churn_sessions_per_s: churn_ops.sessions as f64 / load_secs.max(1.0),
        churn: churn_ops,
        churn_errors,
        sampler_errors: sampler.errors().into_iter().take(10).collect(),
        pass: failures.is_empty(),
        failures,
    };
    let series = SoakSeries {
        server: samples,
        stable: sum.series,
        churn_clients,
        marks,
    };
    Ok(SoakReport { summary, series })
}

/// Writes `summary.json`, `series.json` and the plots into `dir`; returns
/// plot warnings.
pub fn write_outputs(report: &SoakReport, dir: &std::path::Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&report.summary)?,
    )?;
    std::fs::write(
        dir.join("series.json"),
        serde_json::to_string(&report.series)?,
    )?;
    chart::render(dir, report)
}

/// Runs like the binary: run, write, print the verdict.
pub async fn main_with(args: SoakArgs) -> Result<SoakReport> {
    let report = run(&args).await?;
    for w in write_outputs(&report, &args.out)? {
        eprintln!("warning: {w}");
    }
    let s = &report.summary;
    println!(
        "soak {:.0} s: {} churn sessions ({:.2}/s, {} failed), stable delivery {} (worst {}-s window {}), {} -> {}",
        s.load_secs,
        s.churn.sessions,
        s.churn_sessions_per_s,
        s.churn.failed,
        s.stable
            .delivery
            .map_or("n/a".into(), |d| format!("{:.4} %", d * 100.0)),
        s.params.delivery_window,
        s.stable
            .worst_window_pct
            .map_or("n/a".into(), |d| format!("{d:.3} %")),
        if s.pass { "PASS" } else { "FAIL" },
        args.out.display()
    );
    for f in &s.failures {
        println!("  fail: {f}");
    }
    Ok(report)
}
