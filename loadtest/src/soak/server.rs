//! What the server holds, once a second: resident memory, open file
//! descriptors and threads from `/proc/<pid>`, and from its `/metrics`
//! the tokio tasks, UDP sockets and the rooms, participants, tracks,
//! connections and PeerConnections it reports.
//!
//! `/proc` is read before each scrape, so the scrape's own connection is
//! never among the descriptors counted (the previous one closed a second
//! earlier); the scrape's task is among the tasks the server counts, at
//! every scrape alike.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::tail::now_ns;

/// One reading of the server.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t: f64,
    /// Resident set, MiB.
    pub rss_mb: f64,
    /// Its anonymous part (heap, stacks), MiB.
    pub rss_anon_mb: f64,
    /// Its file-backed part (the binary's code and data as paged in), MiB.
    pub rss_file_mb: f64,
    /// Open file descriptors.
    pub fds: u64,
    /// Threads.
    pub threads: u64,
    /// Live heap, MiB (`sfu_heap_live_bytes`; negative: not counted).
    pub heap_mb: f64,
    /// Tokio tasks alive (`sfu_tokio_tasks`).
    pub tasks: i64,
    /// UDP sockets the process holds (`sfu_udp_sockets`).
    pub udp_sockets: i64,
    /// `sfu_rooms`.
    pub rooms: i64,
    /// `sfu_participants`.
    pub participants: i64,
    /// `sfu_publishers`.
    pub publishers: i64,
    /// `sfu_published_tracks`.
    pub published_tracks: i64,
    /// `sfu_forwarded_tracks`.
    pub forwarded_tracks: i64,
    /// `sfu_connections`.
    pub connections: i64,
    /// Sum of `sfu_peer_connections` over kinds and states.
    pub peer_connections: i64,
    /// `sfu_ice_restarts_total` (all causes): restarts since the start.
    pub ice_restarts: i64,
    /// `sfu_reconnects_sent_total` (all reasons).
    pub reconnects_sent: i64,
    /// Server CPU % over the last second (100 = one core).
    pub cpu_pct: Option<f64>,
    #[serde(skip)]
    cpu_s: f64,
}

/// How a quantity must come back after the load: to the same value, or
/// within a fraction of it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tolerance {
    /// Equal to the baseline.
    Exact,
    /// At most this fraction above the baseline (0.05 = 5 %); below it
    /// is back too (memory the allocator gave back since the baseline).
    Relative(f64),
}

/// The quantities the soak checks, with their tolerance.
pub const CHECKED: &[(&str, Tolerance)] = &[
    ("rss_mb", Tolerance::Relative(0.05)),
    ("heap_mb", Tolerance::Relative(0.05)),
    ("fds", Tolerance::Exact),
    ("threads", Tolerance::Exact),
    ("tasks", Tolerance::Exact),
    ("udp_sockets", Tolerance::Exact),
    ("rooms", Tolerance::Exact),
    ("participants", Tolerance::Exact),
    ("publishers", Tolerance::Exact),
    ("published_tracks", Tolerance::Exact),
    ("forwarded_tracks", Tolerance::Exact),
    ("connections", Tolerance::Exact),
    ("peer_connections", Tolerance::Exact),
];

impl Sample {
    /// A quantity by its name in [`CHECKED`].
    pub fn get(&self, name: &str) -> f64 {
        match name {
            "rss_mb" => self.rss_mb,
            "heap_mb" => self.heap_mb,
            "rss_anon_mb" => self.rss_anon_mb,
            "rss_file_mb" => self.rss_file_mb,
            "fds" => self.fds as f64,
            "threads" => self.threads as f64,
            "tasks" => self.tasks as f64,
            "udp_sockets" => self.udp_sockets as f64,
            "rooms" => self.rooms as f64,
            "participants" => self.participants as f64,
            "publishers" => self.publishers as f64,
            "published_tracks" => self.published_tracks as f64,
            "forwarded_tracks" => self.forwarded_tracks as f64,
            "connections" => self.connections as f64,
            "peer_connections" => self.peer_connections as f64,
            _ => f64::NAN,
        }
    }

    /// Whether the server reports no room, participant, track, connection
    /// or PeerConnection.
    pub fn idle(&self) -> bool {
        self.rooms == 0
            && self.participants == 0
            && self.publishers == 0
            && self.published_tracks == 0
            && self.forwarded_tracks == 0
            && self.connections == 0
            && self.peer_connections == 0
    }
}

/// Whether `value` is within `tol` of `baseline`.
pub fn within(value: f64, baseline: f64, tol: Tolerance) -> bool {
    match tol {
        Tolerance::Exact => value == baseline,
        Tolerance::Relative(f) => value <= baseline + f * baseline.abs(),
    }
}

/// What `/proc/<pid>` says.
struct Proc {
    cpu_s: f64,
    rss_mb: f64,
    rss_anon_mb: f64,
    rss_file_mb: f64,
    fds: u64,
    threads: u64,
}

/// A `Name:   value` line of `/proc/<pid>/status` (kB values as given).
fn status_field(status: &str, name: &str) -> Option<f64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn read_proc(pid: u32) -> Option<Proc> {
    let (cpu_s, rss_mb) = crate::procstat::read(pid)?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Proc {
        cpu_s,
        rss_mb,
        rss_anon_mb: status_field(&status, "RssAnon")? / 1024.0,
        rss_file_mb: status_field(&status, "RssFile")? / 1024.0,
        fds,
        threads: status_field(&status, "Threads")? as u64,
    })
}

/// Sums each metric of a Prometheus text exposition over its labels.
pub fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series).trim();
        if let Ok(v) = value.trim().parse::<f64>() {
            *out.entry(name.to_owned()).or_insert(0.0) += v;
        }
    }
    out
}

/// Reads the server once.
pub async fn read(pid: u32, http_addr: &str, origin_sec: usize) -> anyhow::Result<Sample> {
    let p = read_proc(pid)
        .ok_or_else(|| anyhow::anyhow!("cannot read /proc/{pid}: is the server running?"))?;
    let (status, body) =
        sfu_testkit::http::get(http_addr, "/metrics", Duration::from_secs(5)).await?;
    if status != 200 {
        anyhow::bail!("GET /metrics: status {status}");
    }
    let m = parse_metrics(&body);
    let g = |name: &str| -> anyhow::Result<i64> {
        m.get(name)
            .map(|v| *v as i64)
            .ok_or_else(|| anyhow::anyhow!("/metrics has no {name} (server too old?)"))
    };
    Ok(Sample {
        t: now_ns() as f64 / 1e9 - origin_sec as f64,
        rss_mb: p.rss_mb,
        rss_anon_mb: p.rss_anon_mb,
        rss_file_mb: p.rss_file_mb,
        fds: p.fds,
        threads: p.threads,
        heap_mb: m
            .get("sfu_heap_live_bytes")
            .map_or(-1.0, |b| b / (1024.0 * 1024.0)),
        tasks: g("sfu_tokio_tasks")?,
        udp_sockets: g("sfu_udp_sockets")?,
        rooms: g("sfu_rooms")?,
        participants: g("sfu_participants")?,
        publishers: g("sfu_publishers")?,
        published_tracks: g("sfu_published_tracks")?,
        forwarded_tracks: g("sfu_forwarded_tracks")?,
        connections: g("sfu_connections")?,
        peer_connections: g("sfu_peer_connections")?,
        ice_restarts: g("sfu_ice_restarts_total")?,
        reconnects_sent: g("sfu_reconnects_sent_total")?,
        cpu_pct: None,
        cpu_s: p.cpu_s,
    })
}

/// Reads the server once a second until `stop`.
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Sampler {
    /// Starts sampling; fails if the first reading fails.
    pub async fn start(
        pid: u32,
        http_addr: String,
        origin_sec: usize,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Sampler> {
        let first = read(pid, &http_addr, origin_sec).await?;
        let samples = Arc::new(Mutex::new(vec![first]));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (s, e) = (samples.clone(), errors.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                match read(pid, &http_addr, origin_sec).await {
                    Ok(mut x) => {
                        let mut all = s.lock().unwrap_or_else(|p| p.into_inner());
                        if let Some(prev) = all.last() {
                            if x.t > prev.t {
                                x.cpu_pct = Some(100.0 * (x.cpu_s - prev.cpu_s) / (x.t - prev.t));
                            }
                        }
                        all.push(x);
                    }
                    Err(err) => e
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("{err:#}")),
                }
            }
        });
        Ok(Sampler { samples, errors })
    }

    /// Every sample so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The latest sample.
    pub fn last(&self) -> Option<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last()
            .cloned()
    }

    /// Readings that failed.
    pub fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_labelled_series() {
        let text = "# HELP x y\nsfu_rooms 3\nsfu_peer_connections{kind=\"publish\",state=\"connected\"} 2\nsfu_peer_connections{kind=\"subscribe\",state=\"new\"} 1\n";
        let m = parse_metrics(text);
        assert_eq!(m["sfu_rooms"], 3.0);
        assert_eq!(m["sfu_peer_connections"], 3.0);
    }

    #[test]
    fn tolerances() {
        assert!(within(105.0, 100.0, Tolerance::Relative(0.05)));
        assert!(within(80.0, 100.0, Tolerance::Relative(0.05)));
        assert!(!within(105.1, 100.0, Tolerance::Relative(0.05)));
        assert!(within(7.0, 7.0, Tolerance::Exact));
        assert!(!within(8.0, 7.0, Tolerance::Exact));
    }
}
