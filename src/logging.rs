//! Logging set-up: tracing for our code, and the `log` records of the
//! webrtc-rs crates bridged into it through a sampler.
//!
//! webrtc-rs logs per packet in places a client controls: junk UDP to a
//! media port gives one WARN per datagram ("Discarded message, not a valid
//! remote candidate"), undecryptable SRTP one INFO each, and so on (162,000
//! junk packets wrote 81,000 lines). Every `log` record from a `webrtc*`
//! target goes through [`Sampler`]: per call site (target and line) the
//! first [`PER_WINDOW`] records of a minute pass; the rest are counted and
//! summarized in one line when the minute is over.
//!
//! Also: panics in any task are logged through tracing (with the same
//! format as everything else) before the default hook prints them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::LogFormat;

/// Records per call site and window that pass the sampler.
pub const PER_WINDOW: u64 = 10;
/// The sampler's window.
pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Site {
    window_start: Instant,
    passed: u64,
    dropped: u64,
    level: log::Level,
}

/// Samples the `log` records of the media stack; see the module docs.
pub struct Sampler {
    inner: tracing_log::LogTracer,
    sites: Mutex<HashMap<(String, u32), Site>>,
}

impl Sampler {
    fn new() -> Arc<Sampler> {
        Arc::new(Sampler {
            inner: tracing_log::LogTracer::new(),
            sites: Mutex::new(HashMap::new()),
        })
    }

    fn sampled(target: &str) -> bool {
        target.starts_with("webrtc") || target.starts_with("dtls") || target.starts_with("turn")
    }

    /// Whether the record passes; counts it when it does not.
    fn admit(&self, target: &str, line: u32, level: log::Level, now: Instant) -> bool {
        let mut summary = None;
        let pass = {
            // Critical sections are counter updates and cannot panic midway.
            let mut sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
            let site = sites
                .entry((target.to_owned(), line))
                .or_insert_with(|| Site {
                    window_start: now,
                    passed: 0,
                    dropped: 0,
                    level,
                });
            if now.duration_since(site.window_start) >= WINDOW {
                if site.dropped > 0 {
                    summary = Some((site.dropped, site.level));
                }
                site.window_start = now;
                site.passed = 0;
                site.dropped = 0;
            }
            site.level = site.level.min(level);
            if site.passed < PER_WINDOW {
                site.passed += 1;
                true
            } else {
                site.dropped += 1;
                false
            }
        };
        if let Some((dropped, level)) = summary {
            report(target, line, dropped, level);
        }
        pass
    }

    /// Summarizes the sites whose window is over (called once a minute).
    pub fn flush(&self, now: Instant) {
        let mut due = Vec::new();
        {
            let mut sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
            sites.retain(|(target, line), site| {
                if now.duration_since(site.window_start) < WINDOW {
                    return true;
                }
                if site.dropped > 0 {
                    due.push((target.clone(), *line, site.dropped, site.level));
                }
                false
            });
        }
        for (target, line, dropped, level) in due {
            report(&target, line, dropped, level);
        }
    }
}

fn report(target: &str, line: u32, dropped: u64, level: log::Level) {
    tracing::warn!(
        source = %format!("{target}:{line}"),
        %level,
        dropped,
        "media stack log lines suppressed (more than {PER_WINDOW} a minute from one place; usually junk packets)"
    );
}

impl log::Log for Sampler {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.inner.enabled(record.metadata()) {
            return;
        }
        if Self::sampled(record.target())
            && !self.admit(
                record.target(),
                record.line().unwrap_or(0),
                record.level(),
                Instant::now(),
            )
        {
            return;
        }
        self.inner.log(record);
    }

    fn flush(&self) {}
}

struct Shared(Arc<Sampler>);

impl log::Log for Shared {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0.log(record)
    }
    fn flush(&self) {}
}

/// Installs the tracing subscriber (filter and format) and the sampling
/// `log` bridge; returns the sampler, whose [`Sampler::flush`] the caller
/// runs once a minute. `None` when a logger was installed already.
pub fn init(filter: &str, format: LogFormat) -> Option<Arc<Sampler>> {
    let filter = tracing_subscriber::EnvFilter::new(filter);
    // `log` calls above the filter's most verbose level cost nothing then.
    let max = {
        use tracing_log::AsLog;
        filter
            .max_level_hint()
            .map_or(log::LevelFilter::Trace, |l| l.as_log())
    };
    let installed = match format {
        LogFormat::Json => tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .json()
                .finish(),
        ),
        LogFormat::Text => tracing::subscriber::set_global_default(
            tracing_subscriber::fmt().with_env_filter(filter).finish(),
        ),
    };
    installed.ok()?;
    let sampler = Sampler::new();
    log::set_boxed_logger(Box::new(Shared(Arc::clone(&sampler)))).ok()?;
    log::set_max_level(max);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        tracing::error!(thread = thread.name().unwrap_or("unnamed"), "panic: {info}");
        default_hook(info);
    }));
    Some(sampler)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_site_budget_per_window() {
        let s = Sampler::new();
        let t0 = Instant::now();
        let passed = (0..1000)
            .filter(|_| s.admit("webrtc_ice::agent", 1183, log::Level::Warn, t0))
            .count();
        assert_eq!(passed as u64, PER_WINDOW);
        // Another site has its own budget.
        assert!(s.admit("webrtc::mux", 146, log::Level::Warn, t0));
        // A new window passes again.
        assert!(s.admit("webrtc_ice::agent", 1183, log::Level::Warn, t0 + WINDOW));
        s.flush(t0 + WINDOW * 3);
        assert!(s.sites.lock().unwrap().is_empty());
    }
}
