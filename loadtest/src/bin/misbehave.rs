//! Misbehaving clients next to a good call, against a running rheo-sfu
//! node (`bench/misbehaving.sh` runs it; `tests/misbehaving.rs` runs the
//! same scenario in-process). Writes the report as JSON and exits non-zero
//! when a check failed.
//!
//! Network rule: WebRTC uses `--ip` only, junk datagrams go from
//! `--junk-from` to `--ip`, and every attacker stops by itself when the
//! attack window ends.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;
use loadtest::misbehave::{self, Config, Documented};

#[derive(Debug, Parser)]
#[command(name = "misbehave", about = "misbehaving clients next to a good call")]
struct Args {
    /// Signaling WebSocket URL of the node.
    #[arg(long)]
    url: String,
    /// The node's JWT_SECRET.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    /// The address WebRTC uses (the node's announced address).
    #[arg(long)]
    ip: IpAddr,
    /// Another local address the junk datagrams come from.
    #[arg(long)]
    junk_from: IpAddr,
    /// The node's RTC_MIN_PORT-RTC_MAX_PORT, e.g. 14000-14099.
    #[arg(long)]
    media_ports: String,
    /// The node's log file (junk must not flood it).
    #[arg(long)]
    server_log: Option<PathBuf>,
    /// Good participants.
    #[arg(long, default_value_t = 4)]
    participants: u32,
    /// Probe joins before and during the attack (each).
    #[arg(long, default_value_t = 5)]
    probes: u32,
    /// Quiet window before the attack, seconds.
    #[arg(long, default_value_t = 30.0)]
    quiet: f64,
    /// Attack window, seconds.
    #[arg(long, default_value_t = 60.0)]
    attack: f64,
    /// The node's process id (its CPU per window goes in the report).
    #[arg(long)]
    server_pid: Option<u32>,
    /// JSON report.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    loadtest::init_logging();
    let ports = args
        .media_ports
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    let Some(media_ports) = ports else {
        eprintln!("misbehave: --media-ports wants MIN-MAX");
        return std::process::ExitCode::FAILURE;
    };
    let cfg = Config {
        ws_url: args.url,
        secret: args.jwt_secret,
        ip: args.ip,
        junk_from: args.junk_from,
        media_ports,
        server_log: args.server_log,
        participants: args.participants,
        probes: args.probes,
        quiet_s: args.quiet,
        attack_s: args.attack,
        documented: Documented::default(),
        server_pid: args.server_pid,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("misbehave: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(misbehave::run(cfg)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("misbehave: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let json = match serde_json::to_string_pretty(&report) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("misbehave: cannot encode the report: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::write(&args.out, json) {
        eprintln!("misbehave: cannot write {}: {e}", args.out.display());
        return std::process::ExitCode::FAILURE;
    }
    let failures = report.failures();
    for o in &report.outcomes {
        println!(
            "{} {}: {}",
            if o.pass { "ok  " } else { "FAIL" },
            o.attacker,
            o.observed
        );
    }
    println!(
        "good call: delivery quiet {:?}, under attack {:?}; join p50 quiet {:?} ms, under attack {:?} ms -> {}",
        report.quiet.delivery,
        report.attack.delivery,
        report.joins_quiet.p50_ms,
        report.joins_attack.p50_ms,
        args.out.display()
    );
    if failures.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        for f in failures {
            eprintln!("misbehave: {f}");
        }
        std::process::ExitCode::FAILURE
    }
}
