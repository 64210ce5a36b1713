//! CPU time and resident memory of a server process, read from `/proc`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

/// One reading.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// Seconds on the process clock (`tail::now_ns`).
    pub t: f64,
    /// User + system CPU seconds since the process started.
    pub cpu_s: f64,
    /// Resident set, MiB.
    pub rss_mb: f64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`; `None` when the
/// process is gone or the files cannot be parsed.
pub fn read(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: fields after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')' the state is index 0, so utime (field 14) is index 11.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(((utime + stime) / ticks_per_second(), rss_kb / 1024.0))
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Samples a process once a second until `stop`.
pub struct Sampler {
    readings: Arc<Mutex<Vec<Reading>>>,
    /// Process id.
    pub pid: u32,
}

impl Sampler {
    /// Starts sampling `pid`; the first reading is taken at once.
    pub fn start(pid: u32, mut stop: watch::Receiver<bool>) -> anyhow::Result<Sampler> {
        if read(pid).is_none() {
            anyhow::bail!("cannot read /proc/{pid}/stat: is the server pid right?");
        }
        let readings = Arc::new(Mutex::new(Vec::new()));
        let r = readings.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                let last = tokio::select! {
                    _ = tick.tick() => false,
                    _ = stop.wait_for(|s| *s) => true,
                };
                if let Some((cpu_s, rss_mb)) = read(pid) {
                    let t = crate::tail::now_ns() as f64 / 1e9;
                    r.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Reading { t, cpu_s, rss_mb });
                }
                if last {
                    return;
                }
            }
        });
        Ok(Sampler { readings, pid })
    }

    /// Every reading so far.
    pub fn readings(&self) -> Vec<Reading> {
        self.readings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Usage over the window `[from, to)` (run seconds), with `baseline_rss`
    /// taken before any client connected.
    pub fn usage(&self, from: f64, to: f64, baseline_rss_mb: f64) -> Option<ServerUsage> {
        let r = self.readings();
        let first = r.iter().find(|x| x.t >= from)?;
        let last = r.iter().rev().find(|x| x.t <= to + 0.5)?;
        let secs = last.t - first.t;
        if secs <= 0.0 {
            return None;
        }
        let cpu = last.cpu_s - first.cpu_s;
        let peak = r.iter().map(|x| x.rss_mb).fold(0.0, f64::max);
        let in_window: Vec<f64> = r
            .iter()
            .filter(|x| x.t >= from && x.t <= to + 0.5)
            .map(|x| x.rss_mb)
            .collect();
        Some(ServerUsage {
            pid: self.pid,
            cpu_seconds: cpu,
            cpu_pct: 100.0 * cpu / secs,
            measured_secs: secs,
            rss_baseline_mb: baseline_rss_mb,
            rss_window_mb: in_window.iter().sum::<f64>() / in_window.len().max(1) as f64,
            rss_peak_mb: peak,
            packets_per_cpu_second: None,
            rss_per_subscriber_mb: None,
        })
    }
}

/// The server's side of a run.
#[derive(Debug, Clone, Serialize)]
pub struct ServerUsage {
    /// Process id.
    pub pid: u32,
    /// CPU seconds (user + system) used in the window.
    pub cpu_seconds: f64,
    /// Average CPU in the window (100 = one core).
    pub cpu_pct: f64,
    /// Length of the sampled window.
    pub measured_secs: f64,
    /// RSS before the first client.
    pub rss_baseline_mb: f64,
    /// Mean RSS in the window.
    pub rss_window_mb: f64,
    /// Largest RSS seen.
    pub rss_peak_mb: f64,
    /// Packets delivered to subscribers per server CPU second.
    pub packets_per_cpu_second: Option<f64>,
    /// (window RSS − baseline) / admitted subscribers.
    pub rss_per_subscriber_mb: Option<f64>,
}
