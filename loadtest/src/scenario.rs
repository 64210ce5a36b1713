//! The three scenarios and the run around them: ramp-up, settling,
//! measurement window, shutdown, report.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sfu_testkit::rtc::Rtc;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::media::{source_id, Ctx, MediaConfig};
use crate::metrics::{ClientRec, ClientReport, Expect, Metrics, Role, SecondReport, Summary};
use crate::procstat::{Sampler, ServerUsage};
use crate::{janus_run, sfu, Args, Scenario, TargetKind};

/// One participant.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Name (token subject and display name).
    pub name: String,
    /// Publisher index, when it publishes.
    pub publish: Option<u32>,
    /// Whether it receives every other publisher.
    pub subscribe: bool,
}

/// Where the participants go.
#[derive(Debug, Clone)]
pub enum Driver {
    /// rheo-sfu.
    Sfu(sfu::SfuTarget),
    /// Janus VideoRoom.
    Janus(janus_run::JanusTarget),
}

impl Driver {
    async fn run(&self, room: &str, spec: Spec, ctx: Ctx, rec: Arc<ClientRec>) {
        match self {
            Driver::Sfu(t) => sfu::run(t, room, &spec, &ctx, rec).await,
            Driver::Janus(t) => janus_run::run(t, room, &spec, &ctx, rec).await,
        }
    }
}

/// The JSON results file.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `rheo-sfu` or `janus`.
    pub target: String,
    /// Signaling URL.
    pub url: String,
    /// Scenario.
    pub scenario: String,
    /// Free text from `--label`.
    pub label: Option<String>,
    /// Room name.
    pub room: String,
    /// Subscribers (fan-out), participants (room) or concurrent sessions (churn).
    pub clients: u32,
    /// Publishers.
    pub publishers: u32,
    /// Media each publisher sends.
    pub media: MediaReport,
    /// Joins per second during ramp-up.
    pub ramp_rate: f64,
    /// Churn: joins per second.
    pub churn_rate: Option<f64>,
    /// Measurement window, seconds since the run started, `[from, to)`.
    pub window: (usize, usize),
    /// Seconds from the first join until every client received media (fan-out, room).
    pub settled_after_s: Option<f64>,
    /// Client-side results.
    pub summary: Summary,
    /// Server CPU and memory, when `--server-pid` was given.
    pub server: Option<ServerUsage>,
    /// Per second.
    pub series: Vec<SecondReport>,
    /// Per second: connected clients, server CPU % and RSS.
    pub load_series: Vec<LoadSecond>,
    /// Per client.
    pub clients_detail: Vec<ClientReport>,
}

/// Media parameters in the report.
#[derive(Debug, Serialize)]
pub struct MediaReport {
    /// kbit/s.
    pub video_kbps: u32,
    /// Frames per second.
    pub video_fps: u32,
    /// Video packets per second per publisher.
    pub video_pps: f64,
    /// Audio packets per second per publisher.
    pub audio_pps: u32,
}

/// Load in one second.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSecond {
    /// Second since the run started.
    pub t: usize,
    /// Connected clients.
    pub clients: usize,
    /// Server CPU % (100 = one core).
    pub server_cpu_pct: Option<f64>,
    /// Server RSS, MiB.
    pub server_rss_mb: Option<f64>,
}

struct Run {
    driver: Driver,
    room: String,
    ctx: Ctx,
    tasks: JoinSet<()>,
    bar: ProgressBar,
    clients_per_sec: Vec<(usize, usize)>,
    sampler: Option<Sampler>,
}

impl Run {
    fn spawn(
        &mut self,
        spec: Spec,
        role: Role,
        measure_join: bool,
        stop: watch::Receiver<bool>,
    ) -> Arc<ClientRec> {
        let rec = self
            .ctx
            .metrics
            .client(spec.name.clone(), role, spec.publish, measure_join);
        let ctx = Ctx {
            stop,
            ..self.ctx.clone()
        };
        let (driver, room, r) = (self.driver.clone(), self.room.clone(), rec.clone());
        self.tasks
            .spawn(async move { driver.run(&room, spec, ctx, r).await });
        rec
    }

    /// One second of bookkeeping: clients connected, progress message.
    fn tick(&mut self) {
        let m = &self.ctx.metrics;
        let connected = m.connected();
        self.clients_per_sec.push((m.now_sec(), connected));
        let cpu = self.sampler.as_ref().and_then(|s| {
            let r = s.readings();
            let (a, b) = (r.get(r.len().checked_sub(2)?)?, r.last()?);
            (b.t > a.t).then(|| 100.0 * (b.cpu_s - a.cpu_s) / (b.t - a.t))
        });
        self.bar.set_message(match cpu {
            Some(c) => format!("{connected} connected, server CPU {c:.0}%"),
            None => format!("{connected} connected"),
        });
    }

    async fn sleep_ticking(&mut self, secs: f64) {
        let end = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        while tokio::time::Instant::now() < end {
            let step = (end - tokio::time::Instant::now()).min(Duration::from_secs(1));
            tokio::time::sleep(step).await;
            self.tick();
            self.bar.inc(1);
        }
    }
}

fn bar(quiet: bool, len: u64, prefix: &str) -> ProgressBar {
    let b = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len)
    };
    // The template is a constant.
    let style = ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg}")
        .expect("constant progress template")
        .progress_chars("=> ");
    b.set_style(style);
    b.set_prefix(prefix.to_owned());
    b
}

/// Runs the scenario the arguments describe and writes the JSON (and PNG).
pub async fn run(args: &Args) -> Result<Report> {
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    let metrics = Arc::new(Metrics::new());
    let rtc = Arc::new(Rtc::new(args.ip)?);
    let (stop_tx, stop_rx) = watch::channel(false);
    let sampler = match args.server_pid {
        Some(pid) => Some(Sampler::start(pid, stop_rx.clone())?),
        None => None,
    };
    let baseline_rss = args.server_pid.and_then(crate::procstat::read).map(|r| r.1);
    let media = MediaConfig {
        video_kbps: args.video_kbps,
        video_fps: args.video_fps,
        audio_pps: args.audio_pps,
        ..MediaConfig::default()
    };
    let room = args
        .room
        .clone()
        .unwrap_or_else(|| format!("lt-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    let driver = match args.target {
        TargetKind::Sfu => {
            let http_addr = args
                .url
                .trim_start_matches("ws://")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            Driver::Sfu(sfu::SfuTarget {
                ws_url: args.url.clone(),
                http_addr,
                secret: args.jwt_secret.clone(),
            })
        }
        TargetKind::Janus => Driver::Janus(janus_run::JanusTarget {
            ws_url: args.url.clone(),
            max_publishers: args.clients.max(args.publishers) + 1,
        }),
    };
    let mut run = Run {
        driver,
        room: room.clone(),
        ctx: Ctx {
            rtc,
            metrics: metrics.clone(),
            media,
            stop: stop_rx.clone(),
            prepare: !args.no_prepare,
        },
        tasks: JoinSet::new(),
        bar: bar(args.quiet, 1, "start"),
        clients_per_sec: Vec::new(),
        sampler,
    };
    let ramp_every = Duration::from_secs_f64(1.0 / args.ramp_rate.max(0.01));
    let n = args.clients;
    let mut settled_after_s = None;
    let (from, to, expect) = match args.scenario {
        Scenario::Fanout | Scenario::Room => {
            let room_mode = args.scenario == Scenario::Room;
            let publishers = if room_mode { n } else { args.publishers.max(1) };
            let mut subscribers = Vec::new();
            if !room_mode {
                for i in 0..publishers {
                    let spec = Spec {
                        name: format!("pub-{i}"),
                        publish: Some(i),
                        subscribe: false,
                    };
                    run.spawn(spec, Role::Publisher, false, stop_rx.clone());
                }
                wait_publishing(&mut run, publishers).await?;
            }
            run.bar = bar(args.quiet, u64::from(n), "ramp-up");
            let first_join = metrics.now_sec();
            let mut next = tokio::time::Instant::now();
            for j in 0..n {
                tokio::time::sleep_until(next).await;
                next += ramp_every;
                let (spec, role) = if room_mode {
                    let spec = Spec {
                        name: format!("part-{j}"),
                        publish: Some(j),
                        subscribe: true,
                    };
                    (spec, Role::Participant)
                } else {
                    let spec = Spec {
                        name: format!("sub-{j}"),
                        publish: None,
                        subscribe: true,
                    };
                    (spec, Role::Subscriber)
                };
                subscribers.push(run.spawn(spec, role, !room_mode, stop_rx.clone()));
                run.bar.inc(1);
                if metrics.now_sec() > run.clients_per_sec.last().map_or(0, |c| c.0) {
                    run.tick();
                }
            }
            run.bar.finish_and_clear();
            // Settle: every admitted subscriber receives every other publisher.
            let want = |_: &ClientRec| 2 * (publishers as usize - usize::from(room_mode));
            run.bar = bar(args.quiet, args.settle_timeout as u64, "settle");
            let settle_end =
                tokio::time::Instant::now() + Duration::from_secs_f64(args.settle_timeout);
            loop {
                let done = subscribers
                    .iter()
                    .all(|c| c.error().is_some() || c.receiving() >= want(c));
                if done {
                    settled_after_s = Some(metrics.now_sec().saturating_sub(first_join) as f64);
                    break;
                }
                if tokio::time::Instant::now() >= settle_end {
                    break;
                }
                run.sleep_ticking(1.0).await;
            }
            run.bar.finish_and_clear();
            let from = metrics.now_sec() + 1;
            let to = from + args.duration.ceil() as usize;
            run.bar = bar(args.quiet, (to - from) as u64 + 1, "measure");
            run.sleep_ticking((to - from) as f64 + 1.0 + 1.0).await;
            (from, to, Expect::Whole)
        }
        Scenario::Churn => {
            let spec = Spec {
                name: "pub-0".into(),
                publish: Some(0),
                subscribe: false,
            };
            run.spawn(spec, Role::Publisher, false, stop_rx.clone());
            wait_publishing(&mut run, 1).await?;
            let lifetime = f64::from(n) / args.churn_rate.max(0.01);
            let total = (f64::from(n) / args.ramp_rate.max(0.01)) + args.duration + 1.0;
            run.bar = bar(args.quiet, total.ceil() as u64, "churn");
            let start = metrics.now_sec();
            let last_start = tokio::time::Instant::now()
                + Duration::from_secs_f64((total - CHURN_TAIL_SECS).max(0.0));
            for slot in 0..n {
                let delay = ramp_every * slot;
                let (driver, room, ctx) = (run.driver.clone(), room.clone(), run.ctx.clone());
                let global = stop_rx.clone();
                let plan = SlotPlan {
                    slot,
                    delay,
                    lifetime,
                    last_start,
                };
                run.tasks.spawn(churn_slot(driver, room, ctx, global, plan));
            }
            let ramp = f64::from(n) / args.ramp_rate.max(0.01);
            run.sleep_ticking(ramp).await;
            let from = metrics.now_sec() + 1;
            let to = from + args.duration.ceil() as usize;
            run.sleep_ticking((to as f64 - start as f64 - ramp).max(0.0) + 1.0)
                .await;
            (from, to, Expect::PerSession)
        }
    };
    run.bar.finish_and_clear();
    let _ = stop_tx.send(true);
    let shutdown = tokio::time::timeout(Duration::from_secs(20), async {
        while run.tasks.join_next().await.is_some() {}
    })
    .await;
    if shutdown.is_err() {
        run.tasks.abort_all();
    }
    let mut summary = metrics.summarize(from, to, expect);
    let series = std::mem::take(&mut summary.series);
    let clients_detail = std::mem::take(&mut summary.clients);
    let server = run.sampler.as_ref().and_then(|s| {
        let mut u = s.usage(from as f64, to as f64, baseline_rss.unwrap_or(0.0))?;
        if u.cpu_seconds > 0.0 {
            u.packets_per_cpu_second = Some(summary.received_packets as f64 / u.cpu_seconds);
        }
        let subs = clients_detail
            .iter()
            .filter(|c| c.admitted && c.role != Role::Publisher)
            .count();
        if subs > 0 && baseline_rss.is_some() {
            u.rss_per_subscriber_mb = Some((u.rss_window_mb - u.rss_baseline_mb) / subs as f64);
        }
        Some(u)
    });
    let origin = metrics.origin_sec();
    let load_series = load_series(&run, origin, series.len());
    let report = Report {
        target: match args.target {
            TargetKind::Sfu => "rheo-sfu".into(),
            TargetKind::Janus => "janus".into(),
        },
        url: args.url.clone(),
        scenario: args.scenario.name().into(),
        label: args.label.clone(),
        room,
        clients: n,
        publishers: match args.scenario {
            Scenario::Fanout => args.publishers.max(1),
            Scenario::Room => n,
            Scenario::Churn => 1,
        },
        media: MediaReport {
            video_kbps: media.video_kbps,
            video_fps: media.video_fps,
            video_pps: media.video_pps(),
            audio_pps: media.audio_pps,
        },
        ramp_rate: args.ramp_rate,
        churn_rate: (args.scenario == Scenario::Churn).then_some(args.churn_rate),
        window: (from - origin, to - origin),
        settled_after_s,
        summary,
        server,
        series,
        load_series,
        clients_detail,
    };
    Ok(report)
}

/// Waits until every publisher's video has started flowing (its peer
/// connection is up), at most 20 s.
async fn wait_publishing(run: &mut Run, publishers: u32) -> Result<()> {
    run.bar = bar(true, 1, "publish");
    for _ in 0..200 {
        let started =
            (0..publishers).all(|i| run.ctx.metrics.source(source_id(i, true)).sent() > 0);
        if started {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let errors: Vec<String> = run
        .ctx
        .metrics
        .clients()
        .iter()
        .filter_map(|c| c.error().map(|e| format!("{}: {e}", c.name)))
        .collect();
    bail!(
        "publishers did not start sending within 20 s ({})",
        errors.join("; ")
    )
}

/// No churn session starts this close to the end of the run.
const CHURN_TAIL_SECS: f64 = 5.0;

/// When one churn slot runs.
struct SlotPlan {
    /// Slot number (in session names).
    slot: u32,
    /// Wait before the first session (ramp-up).
    delay: Duration,
    /// Mean session length, seconds.
    lifetime: f64,
    /// No session starts after this.
    last_start: tokio::time::Instant,
}

/// One churn slot: a subscriber that joins, stays about `lifetime` seconds
/// (±50 %), leaves, and joins again under a new name, until the run stops.
async fn churn_slot(
    driver: Driver,
    room: String,
    ctx: Ctx,
    mut global: watch::Receiver<bool>,
    plan: SlotPlan,
) {
    let SlotPlan {
        slot,
        delay,
        lifetime,
        last_start,
    } = plan;
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = global.wait_for(|s| *s) => return,
    }
    for generation in 0u32.. {
        // A session started just before the run ends would be cut off
        // before it could receive anything: not a failure of the SFU.
        if *global.borrow() || tokio::time::Instant::now() >= last_start {
            return;
        }
        let (tx, rx) = watch::channel(false);
        let spec = Spec {
            name: format!("churn-{slot}-{generation}"),
            publish: None,
            subscribe: true,
        };
        let rec = ctx
            .metrics
            .client(spec.name.clone(), Role::Subscriber, None, true);
        let session = Ctx {
            stop: rx,
            ..ctx.clone()
        };
        let stay = Duration::from_secs_f64(lifetime * (0.5 + rand::random::<f64>()));
        let d = driver.clone();
        let r = room.clone();
        let task = tokio::spawn(async move { d.run(&r, spec, session, rec).await });
        tokio::select! {
            _ = tokio::time::sleep(stay) => {}
            _ = global.wait_for(|s| *s) => {}
        }
        let _ = tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
    }
}

fn load_series(run: &Run, origin: usize, seconds: usize) -> Vec<LoadSecond> {
    let readings = run
        .sampler
        .as_ref()
        .map(|s| s.readings())
        .unwrap_or_default();
    (0..seconds)
        .map(|t| {
            let abs = origin + t;
            let clients = run
                .clients_per_sec
                .iter()
                .rev()
                .find(|c| c.0 <= abs)
                .map_or(0, |c| c.1);
            // The two readings around the middle of this second.
            let mid = abs as f64 + 0.5;
            let pair = readings.windows(2).find(|w| w[0].t <= mid && w[1].t > mid);
            LoadSecond {
                t,
                clients,
                server_cpu_pct: pair.map(|w| 100.0 * (w[1].cpu_s - w[0].cpu_s) / (w[1].t - w[0].t)),
                server_rss_mb: pair.map(|w| w[1].rss_mb),
            }
        })
        .collect()
}

/// Writes the report as JSON and, unless disabled, the plot next to it.
pub fn write_outputs(
    report: &Report,
    out: &PathBuf,
    plot: Option<&PathBuf>,
) -> Result<Vec<String>> {
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(out, json)?;
    let mut warnings = Vec::new();
    if let Some(png) = plot {
        let s = crate::plot::Series {
            t_secs: report.series.iter().map(|s| s.t as f64).collect(),
            delivery_pct: report.series.iter().map(|s| s.delivery_pct).collect(),
            delay_p50_ms: report.series.iter().map(|s| s.delay_p50_ms).collect(),
            delay_p99_ms: report.series.iter().map(|s| s.delay_p99_ms).collect(),
            clients: report
                .load_series
                .iter()
                .map(|l| l.clients as f64)
                .collect(),
            server_cpu_pct: report.server.as_ref().map(|_| {
                report
                    .load_series
                    .iter()
                    .map(|l| l.server_cpu_pct)
                    .collect()
            }),
            server_rss_mb: report
                .server
                .as_ref()
                .map(|_| report.load_series.iter().map(|l| l.server_rss_mb).collect()),
        };
        let title = format!(
            "{} {} n={}{}",
            report.target,
            report.scenario,
            report.clients,
            report
                .label
                .as_deref()
                .map(|l| format!(" ({l})"))
                .unwrap_or_default()
        );
        warnings = crate::plot::render(png, &title, &s)?;
    }
    Ok(warnings)
}
