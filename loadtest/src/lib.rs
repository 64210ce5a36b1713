//! Load tester for rheo-sfu, and for Janus's VideoRoom with the same load.
//!
//! Real WebRTC peers (webrtc-rs) join a room through the SFU's own signaling
//! (our protocol via the `signaling` client, or Janus's WebSocket API),
//! publish synthetic VP8 + Opus whose payloads carry a track id, a counter
//! and a send timestamp, and measure what arrives: delivery, loss, jitter,
//! one-way delay, join → first packet. See `loadtest --help` and
//! `docs/BENCHMARKS.md`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

pub mod janus;
pub mod janus_run;
pub mod media;
pub mod metrics;
pub mod misbehave;
pub mod plot;
pub mod procstat;
pub mod scenario;
pub mod sfu;
pub mod soak;
pub mod tail;

/// Logging of every load-tester binary: `RUST_LOG`, or warnings only (the
/// media stack's own errors only), to stderr so reports on stdout stay
/// clean.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,webrtc=error,webrtc_ice=error,dtls=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

pub use scenario::{run, write_outputs, Report};

/// Which SFU the peers talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetKind {
    /// rheo-sfu (this project), `--url ws://HOST:PORT/ws`.
    Sfu,
    /// Janus VideoRoom over Janus's WebSocket API, `--url ws://HOST:8188/`.
    Janus,
}

/// What load to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// One publisher (or `--publishers`), `--clients` subscribers.
    Fanout,
    /// `--clients` participants, each publishing and receiving all others.
    Room,
    /// One publisher; `--clients` subscriber slots that join, stay about
    /// clients/churn-rate seconds, leave and join again.
    Churn,
}

impl Scenario {
    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Fanout => "fanout",
            Scenario::Room => "room",
            Scenario::Churn => "churn",
        }
    }
}

/// Command line.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "loadtest",
    version,
    about = "WebRTC SFU load tester (rheo-sfu, Janus VideoRoom)"
)]
pub struct Args {
    /// SFU kind.
    #[arg(long, value_enum, default_value_t = TargetKind::Sfu)]
    pub target: TargetKind,
    /// Signaling WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:9000/ws")]
    pub url: String,
    /// rheo-sfu's JWT_SECRET to mint tokens; without it `/dev/token` is used.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// The only address WebRTC candidates may use (both ours and the SFU's).
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: IpAddr,
    /// Scenario.
    #[arg(long, value_enum, default_value_t = Scenario::Fanout)]
    pub scenario: Scenario,
    /// Subscribers (fanout), participants (room) or concurrent sessions (churn).
    #[arg(long, short = 'n', default_value_t = 10)]
    pub clients: u32,
    /// Publishers in the fanout scenario.
    #[arg(long, default_value_t = 1)]
    pub publishers: u32,
    /// Measurement window, seconds (after ramp-up and settling).
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Joins per second during ramp-up.
    #[arg(long, default_value_t = 20.0)]
    pub ramp_rate: f64,
    /// Longest wait after ramp-up for every client to receive media, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub settle_timeout: f64,
    /// Churn: joins (and leaves) per second once all slots run.
    #[arg(long, default_value_t = 2.0)]
    pub churn_rate: f64,
    /// Video bitrate per publisher, kbit/s.
    #[arg(long, default_value_t = 1000)]
    pub video_kbps: u32,
    /// Video frames per second.
    #[arg(long, default_value_t = 30)]
    pub video_fps: u32,
    /// Audio packets per second.
    #[arg(long, default_value_t = 50)]
    pub audio_pps: u32,
    /// Room name (default: a fresh random one).
    #[arg(long)]
    pub room: Option<String>,
    /// Server process id: CPU seconds and RSS are sampled from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// JSON results file.
    #[arg(long, default_value = "loadtest-results.json")]
    pub out: PathBuf,
    /// PNG plot (default: the JSON path with .png).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No PNG.
    #[arg(long)]
    pub no_plot: bool,
    /// Subscribers skip `subscribe-prepare`: the server offers first (the
    /// seed-001 flow).
    #[arg(long)]
    pub no_prepare: bool,
    /// Free text stored in the results and the plot title.
    #[arg(long)]
    pub label: Option<String>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl Args {
    /// The plot path, unless disabled.
    pub fn plot_path(&self) -> Option<PathBuf> {
        if self.no_plot {
            return None;
        }
        Some(
            self.plot
                .clone()
                .unwrap_or_else(|| self.out.with_extension("png")),
        )
    }
}

/// Runs like the binary: parse, run, write outputs, print the summary line.
pub async fn main_with(args: Args) -> anyhow::Result<Report> {
    let report = run(&args).await?;
    let warnings = write_outputs(&report, &args.out, args.plot_path().as_ref())?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let s = &report.summary;
    println!(
        "{} {} n={}: delivery {} (expected {}, received {}), delay p50 {} p99 {} ms, admitted {}, refused {}, failed {}{} -> {}",
        report.target,
        report.scenario,
        report.clients,
        s.delivery.map_or("n/a".into(), |d| format!("{:.4}%", d * 100.0)),
        s.expected_packets,
        s.received_packets,
        s.delay_ms.as_ref().map_or("n/a".into(), |d| format!("{:.2}", d.p50)),
        s.delay_ms.as_ref().map_or("n/a".into(), |d| format!("{:.2}", d.p99)),
        s.admitted,
        s.refused,
        s.failed,
        report.server.as_ref().map_or(String::new(), |u| format!(
            ", server {:.1} CPU-s ({:.0}%), {:.0} pkts/CPU-s, RSS {:.1} MB",
            u.cpu_seconds,
            u.cpu_pct,
            u.packets_per_cpu_second.unwrap_or(0.0),
            u.rss_window_mb
        )),
        args.out.display()
    );
    Ok(report)
}
