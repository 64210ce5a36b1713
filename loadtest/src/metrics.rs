//! Counting what was sent and what arrived.
//!
//! Time is bucketed by the *send* second of each packet (from its tail), so a
//! late packet still counts for the second it belongs to and delay does not
//! smear delivery across buckets. Each receiver keeps, per publisher track,
//! packets per send second, a duplicate filter over counters, RFC 3550
//! interarrival jitter and a delay histogram; sources keep packets sent per
//! second. Expected counts are derived at the end from those.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::tail::{now_ns, Tail};

const NS: u64 = 1_000_000_000;

fn sec_of(ns: u64) -> usize {
    (ns / NS) as usize
}

/// Locks a mutex; a panicked holder cannot leave counters half-written in a
/// way that matters for a report, so poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 100 s with 3 significant digits; the bounds are constants.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("constant histogram bounds are valid")
}

fn bump(v: &mut Vec<u32>, i: usize) {
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    v[i] += 1;
}

/// One publisher track.
pub struct SourceRec {
    id: u32,
    counter: AtomicU64,
    sent: Mutex<Vec<u32>>,
}

impl SourceRec {
    /// Tail of the next packet; counts it as sent now.
    pub fn next(&self) -> Tail {
        let counter = self.counter.fetch_add(1, Ordering::Relaxed);
        let sent_ns = now_ns();
        bump(&mut lock(&self.sent), sec_of(sent_ns));
        Tail {
            source: self.id,
            counter,
            sent_ns,
        }
    }

    /// Packets sent so far.
    pub fn sent(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }

    fn sent_in(&self, from: usize, to: usize) -> u64 {
        let sent = lock(&self.sent);
        (from..to.min(sent.len())).map(|s| u64::from(sent[s])).sum()
    }
}

#[derive(Default)]
struct RecvTrack {
    first_sec: usize,
    per_sec: Vec<u32>,
    base: u64,
    seen: Vec<u64>,
    packets: u64,
    duplicates: u64,
    jitter_us: f64,
    prev: Option<(u64, u64)>,
}

impl RecvTrack {
    /// False for a duplicate.
    fn mark(&mut self, counter: u64) -> bool {
        if self.packets == 0 && self.duplicates == 0 {
            self.base = counter;
        }
        let Some(i) = counter.checked_sub(self.base) else {
            return true; // older than the first packet seen: cannot be checked
        };
        let (word, bit) = ((i / 64) as usize, i % 64);
        if word > 1 << 20 {
            return true; // absurd jump: do not grow without bound
        }
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        let fresh = self.seen[word] & (1 << bit) == 0;
        self.seen[word] |= 1 << bit;
        fresh
    }

    fn in_range(&self, from: usize, to: usize) -> u64 {
        (from.max(self.first_sec)..to)
            .filter_map(|s| self.per_sec.get(s - self.first_sec))
            .map(|&n| u64::from(n))
            .sum()
    }
}

/// What a client is in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Publishes only.
    Publisher,
    /// Subscribes only.
    Subscriber,
    /// Both.
    Participant,
}

#[derive(Default)]
struct ClientState {
    joined_ns: Option<u64>,
    first_packet_ns: Option<u64>,
    ended_ns: Option<u64>,
    error: Option<String>,
    refused: bool,
    tracks: HashMap<u32, RecvTrack>,
    delay: Option<Histogram<u64>>,
}

/// One client session.
pub struct ClientRec {
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Publisher index, when it publishes.
    pub publisher: Option<u32>,
    /// Whether join → first packet is meaningful (a publisher was live).
    pub measure_join: bool,
    started_ns: u64,
    state: Mutex<ClientState>,
}

impl ClientRec {
    /// The session finished joining.
    pub fn joined(&self) {
        lock(&self.state).joined_ns.get_or_insert(now_ns());
    }

    /// The server refused the session (room full, draining …).
    pub fn refused(&self, why: String) {
        let mut s = lock(&self.state);
        s.refused = true;
        s.error.get_or_insert(why);
    }

    /// The session failed.
    pub fn failed(&self, why: String) {
        lock(&self.state).error.get_or_insert(why);
    }

    /// The session ended (left or failed).
    pub fn ended(&self) {
        lock(&self.state).ended_ns.get_or_insert(now_ns());
    }

    /// Joined, not refused, not ended.
    pub fn is_connected(&self) -> bool {
        let s = lock(&self.state);
        s.joined_ns.is_some() && s.ended_ns.is_none() && !s.refused
    }

    /// Whether any media packet arrived.
    pub fn has_media(&self) -> bool {
        lock(&self.state).first_packet_ns.is_some()
    }

    /// Publisher tracks it receives media of.
    pub fn receiving(&self) -> usize {
        lock(&self.state).tracks.len()
    }

    /// Whether it failed or was refused.
    pub fn error(&self) -> Option<String> {
        lock(&self.state).error.clone()
    }
}

#[derive(Default)]
struct Second {
    delay: Option<Histogram<u64>>,
}

/// All counters of one run.
pub struct Metrics {
    origin_sec: usize,
    sources: Mutex<HashMap<u32, Arc<SourceRec>>>,
    clients: Mutex<Vec<Arc<ClientRec>>>,
    seconds: Mutex<Vec<Second>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Starts the clock.
    pub fn new() -> Metrics {
        Metrics {
            origin_sec: sec_of(now_ns()),
            sources: Mutex::default(),
            clients: Mutex::default(),
            seconds: Mutex::default(),
        }
    }

    /// The process second this run started in; report times count from it.
    pub fn origin_sec(&self) -> usize {
        self.origin_sec
    }

    /// The current second of the process clock.
    pub fn now_sec(&self) -> usize {
        sec_of(now_ns())
    }

    /// The record of a publisher track (created on first use).
    pub fn source(&self, id: u32) -> Arc<SourceRec> {
        lock(&self.sources)
            .entry(id)
            .or_insert_with(|| {
                Arc::new(SourceRec {
                    id,
                    counter: AtomicU64::new(0),
                    sent: Mutex::default(),
                })
            })
            .clone()
    }

    /// Registers a client session starting now.
    pub fn client(
        &self,
        name: String,
        role: Role,
        publisher: Option<u32>,
        measure_join: bool,
    ) -> Arc<ClientRec> {
        let c = Arc::new(ClientRec {
            name,
            role,
            publisher,
            measure_join,
            started_ns: now_ns(),
            state: Mutex::default(),
        });
        lock(&self.clients).push(c.clone());
        c
    }

    /// Every client session so far.
    pub fn clients(&self) -> Vec<Arc<ClientRec>> {
        lock(&self.clients).clone()
    }

    /// Clients connected now.
    pub fn connected(&self) -> usize {
        lock(&self.clients)
            .iter()
            .filter(|c| c.is_connected())
            .count()
    }

    /// Counts one received packet.
    pub fn received(&self, client: &ClientRec, tail: Tail, at_ns: u64, _video: bool) {
        let delay_us = at_ns.saturating_sub(tail.sent_ns) / 1000;
        let sec = sec_of(tail.sent_ns);
        {
            let mut s = lock(&client.state);
            s.first_packet_ns.get_or_insert(at_ns);
            let t = s.tracks.entry(tail.source).or_insert_with(|| RecvTrack {
                first_sec: sec,
                ..Default::default()
            });
            if !t.mark(tail.counter) {
                t.duplicates += 1;
                return;
            }
            t.packets += 1;
            if sec >= t.first_sec {
                bump(&mut t.per_sec, sec - t.first_sec);
            }
            if let Some((ps, pr)) = t.prev {
                let d = (at_ns as i128 - pr as i128) - (tail.sent_ns as i128 - ps as i128);
                let d_us = (d.unsigned_abs() / 1000) as f64;
                t.jitter_us += (d_us - t.jitter_us) / 16.0;
            }
            t.prev = Some((tail.sent_ns, at_ns));
            let _ = s
                .delay
                .get_or_insert_with(histogram)
                .record(delay_us.max(1));
        }
        let mut secs = lock(&self.seconds);
        if secs.len() <= sec {
            secs.resize_with(sec + 1, Second::default);
        }
        let _ = secs[sec]
            .delay
            .get_or_insert_with(histogram)
            .record(delay_us.max(1));
    }

    /// Builds the report numbers for the measurement window `[from, to)` (run
    /// seconds). `sessions` says how expectations are derived: `Whole` means
    /// every admitted subscriber should receive every other publisher for the
    /// whole window (fan-out, room); `PerSession` means each session in the
    /// whole seconds from a second after its join until it ended (churn).
    pub fn summarize(&self, from: usize, to: usize, mode: Expect) -> Summary {
        let sources: Vec<Arc<SourceRec>> = lock(&self.sources).values().cloned().collect();
        let clients: Vec<Arc<ClientRec>> = lock(&self.clients).clone();
        let end_sec = self.now_sec() + 1;
        let mut out = Summary::default();
        let mut per_client = Vec::new();
        let mut join_ms = Vec::new();
        let mut jitters = Vec::new();
        // Expected per second over all active (client, source) pairs, for the time series.
        // Expected and received per second over whole seconds of each
        // (client, track) pair's active time: from the second after its
        // first packet until the second it ended in (exclusive), so partial
        // seconds at either edge count on neither side.
        let mut expected_sec = vec![0u64; end_sec];
        let mut received_sec = vec![0u64; end_sec];
        let sent_per_sec: HashMap<u32, Vec<u32>> = sources
            .iter()
            .map(|s| (s.id, lock(&s.sent).clone()))
            .collect();
        for c in &clients {
            let s = lock(&c.state);
            let admitted = s.joined_ns.is_some() && !s.refused;
            out.sessions += 1;
            if s.refused {
                out.refused += 1;
            } else if !admitted || (s.error.is_some() && s.first_packet_ns.is_none()) {
                out.failed += 1;
            }
            if admitted {
                out.admitted += 1;
            }
            if s.error.is_some() && !s.refused {
                out.errored += 1;
            }
            let c_end = s.ended_ns.map(sec_of).unwrap_or(end_sec);
            let subscribes = c.role != Role::Publisher;
            let (mut exp, mut rec) = (0u64, 0u64);
            if admitted && subscribes {
                let (w_from, w_to) = match mode {
                    Expect::Whole => (from, to),
                    Expect::PerSession => {
                        // Whole seconds from one second after the join
                        // until the second it ended in.
                        let j = sec_of(s.joined_ns.unwrap_or(0) + NS) + 1;
                        (from.max(j), to.min(c_end))
                    }
                };
                if w_from < w_to {
                    for src in &sources {
                        if c.publisher.is_some_and(|p| src.id / 2 == p) {
                            continue;
                        }
                        exp += src.sent_in(w_from, w_to);
                        if let Some(t) = s.tracks.get(&src.id) {
                            rec += t.in_range(w_from, w_to);
                        }
                    }
                }
                for (id, t) in &s.tracks {
                    let Some(sent) = sent_per_sec.get(id) else {
                        continue;
                    };
                    let active = t.first_sec + 1..c_end.min(end_sec);
                    for (sec, (e, r)) in expected_sec
                        .iter_mut()
                        .zip(received_sec.iter_mut())
                        .enumerate()
                    {
                        if active.contains(&sec) {
                            *e += u64::from(sent.get(sec).copied().unwrap_or(0));
                            *r += u64::from(t.per_sec.get(sec - t.first_sec).copied().unwrap_or(0));
                        }
                    }
                }
            }
            out.expected_packets += exp;
            out.received_packets += rec;
            let duplicates: u64 = s.tracks.values().map(|t| t.duplicates).sum();
            out.duplicates += duplicates;
            let jitter_ms = if s.tracks.is_empty() {
                None
            } else {
                let j = s.tracks.values().map(|t| t.jitter_us).sum::<f64>()
                    / s.tracks.len() as f64
                    / 1000.0;
                jitters.push(j);
                Some(j)
            };
            let join_to_first_ms = match (c.measure_join, s.first_packet_ns) {
                (true, Some(f)) => {
                    let ms = f.saturating_sub(c.started_ns) as f64 / 1e6;
                    join_ms.push(ms);
                    Some(ms)
                }
                _ => None,
            };
            per_client.push(ClientReport {
                name: c.name.clone(),
                role: c.role,
                admitted,
                refused: s.refused,
                error: s.error.clone(),
                tracks: s.tracks.len(),
                packets: s.tracks.values().map(|t| t.packets).sum(),
                expected_in_window: exp,
                received_in_window: rec,
                delivery: ratio(rec, exp),
                duplicates,
                jitter_ms,
                delay_p50_ms: s
                    .delay
                    .as_ref()
                    .map(|h| h.value_at_quantile(0.5) as f64 / 1e3),
                delay_p99_ms: s
                    .delay
                    .as_ref()
                    .map(|h| h.value_at_quantile(0.99) as f64 / 1e3),
                join_to_first_packet_ms: join_to_first_ms,
                started_s: c.started_ns as f64 / 1e9 - self.origin_sec as f64,
                ended_s: s.ended_ns.map(|e| e as f64 / 1e9 - self.origin_sec as f64),
            });
        }
        out.delivery = ratio(out.received_packets, out.expected_packets);
        out.loss = out.delivery.map(|d| 1.0 - d);
        out.sent_packets = sources.iter().map(|s| s.sent_in(from, to)).sum();
        let secs = lock(&self.seconds);
        let mut window = histogram();
        for s in secs.iter().take(to).skip(from) {
            if let Some(h) = &s.delay {
                let _ = window.add(h);
            }
        }
        if !window.is_empty() {
            let q = |p: f64| window.value_at_quantile(p) as f64 / 1e3;
            out.delay_ms = Some(Percentiles {
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
                p999: q(0.999),
                max: window.max() as f64 / 1e3,
                count: window.len(),
            });
        }
        out.jitter_ms_mean = mean(&jitters);
        out.jitter_ms_max = jitters
            .iter()
            .cloned()
            .fold(None, |m, j| Some(m.map_or(j, |m: f64| m.max(j))));
        out.join_to_first_packet_ms = percentiles(&mut join_ms);
        let window_secs = to.saturating_sub(from) as f64;
        if window_secs > 0.0 {
            out.received_pps = out.received_packets as f64 / window_secs;
        }
        out.series = (self.origin_sec..end_sec)
            .map(|sec| {
                let received = received_sec[sec];
                let h = secs.get(sec).and_then(|s| s.delay.as_ref());
                SecondReport {
                    t: sec - self.origin_sec,
                    received,
                    expected: expected_sec[sec],
                    delivery_pct: ratio(received, expected_sec[sec]).map(|d| d * 100.0),
                    delay_p50_ms: h.map(|h| h.value_at_quantile(0.5) as f64 / 1e3),
                    delay_p99_ms: h.map(|h| h.value_at_quantile(0.99) as f64 / 1e3),
                }
            })
            .collect();
        out.clients = per_client;
        out
    }
}

/// How expected packets are derived, see [`Metrics::summarize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Every admitted subscriber receives every other publisher all window long.
    Whole,
    /// Each session from a second after joining until it ended.
    PerSession,
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Percentiles of samples (nearest rank).
pub fn percentiles(v: &mut [f64]) -> Option<Percentiles> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(Percentiles {
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        p999: at(0.999),
        max: v[v.len() - 1],
        count: v.len() as u64,
    })
}

/// Percentiles of a distribution, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Samples.
    pub count: u64,
}

/// One client in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ClientReport {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Joined and not refused.
    pub admitted: bool,
    /// Refused by the server.
    pub refused: bool,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// Publisher tracks received.
    pub tracks: usize,
    /// Packets received (all time, without duplicates).
    pub packets: u64,
    /// Expected in the window.
    pub expected_in_window: u64,
    /// Received in the window.
    pub received_in_window: u64,
    /// received / expected in the window.
    pub delivery: Option<f64>,
    /// Duplicate packets.
    pub duplicates: u64,
    /// Mean RFC 3550 interarrival jitter over its tracks.
    pub jitter_ms: Option<f64>,
    /// One-way delay median.
    pub delay_p50_ms: Option<f64>,
    /// One-way delay 99th percentile.
    pub delay_p99_ms: Option<f64>,
    /// From the start of its session to its first media packet.
    pub join_to_first_packet_ms: Option<f64>,
    /// Second of the run it started.
    pub started_s: f64,
    /// Second of the run it ended.
    pub ended_s: Option<f64>,
}

/// One second of the run (by packet send time).
#[derive(Debug, Clone, Serialize)]
pub struct SecondReport {
    /// Second since the run started.
    pub t: usize,
    /// Packets received that were sent in this second.
    pub received: u64,
    /// Packets that active receivers should have received.
    pub expected: u64,
    /// received / expected, percent.
    pub delivery_pct: Option<f64>,
    /// Delay median.
    pub delay_p50_ms: Option<f64>,
    /// Delay 99th percentile.
    pub delay_p99_ms: Option<f64>,
}

/// Everything measured on the clients' side.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Client sessions started.
    pub sessions: u64,
    /// Sessions that joined and were not refused.
    pub admitted: u64,
    /// Sessions refused by the server.
    pub refused: u64,
    /// Sessions that failed (not refused): never joined, or ended with an
    /// error before any media arrived.
    pub failed: u64,
    /// Sessions with an error of any kind (a failed subscription, no media,
    /// a broken connection), failed or not.
    pub errored: u64,
    /// Packets published in the window.
    pub sent_packets: u64,
    /// Packets admitted subscribers should have received in the window.
    pub expected_packets: u64,
    /// Packets they received (without duplicates).
    pub received_packets: u64,
    /// received / expected.
    pub delivery: Option<f64>,
    /// 1 - delivery.
    pub loss: Option<f64>,
    /// Duplicates seen.
    pub duplicates: u64,
    /// Received packets per second in the window.
    pub received_pps: f64,
    /// One-way delay (send → receive, through the SFU) in the window.
    pub delay_ms: Option<Percentiles>,
    /// Mean interarrival jitter over clients.
    pub jitter_ms_mean: Option<f64>,
    /// Largest client jitter.
    pub jitter_ms_max: Option<f64>,
    /// Session start → first media packet, for sessions that joined a live publisher.
    pub join_to_first_packet_ms: Option<Percentiles>,
    /// Per second.
    #[serde(skip)]
    pub series: Vec<SecondReport>,
    /// Per client.
    #[serde(skip)]
    pub clients: Vec<ClientReport>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_not_counted_twice() {
        let mut t = RecvTrack::default();
        assert!(t.mark(10));
        t.packets += 1;
        assert!(t.mark(11));
        assert!(!t.mark(11));
        assert!(t.mark(9), "older than the base cannot be checked");
        assert!(t.mark(10 + 64 * 3));
        assert!(!t.mark(10 + 64 * 3));
    }

    /// A fresh run in which `n` packets of source 0 were sent within one
    /// second: the run, their tails and that second.
    fn burst(n: usize) -> (Metrics, Vec<Tail>, usize) {
        for _ in 0..10 {
            let m = Metrics::new();
            let sec = m.now_sec();
            let src = m.source(0);
            let tails: Vec<Tail> = (0..n).map(|_| src.next()).collect();
            if tails.iter().all(|t| sec_of(t.sent_ns) == sec) {
                return (m, tails, sec);
            }
        }
        panic!("could not send {n} packets within one second");
    }

    #[test]
    fn a_subscriber_that_gets_nothing_counts_as_loss() {
        let (m, tails, sec) = burst(100);
        let full = m.client("full".into(), Role::Subscriber, None, true);
        let none = m.client("none".into(), Role::Subscriber, None, true);
        let publisher = m.client("pub".into(), Role::Publisher, Some(0), false);
        for c in [&full, &none, &publisher] {
            c.joined();
        }
        for t in &tails {
            m.received(&full, *t, t.sent_ns + 1_000_000, true);
        }
        // A duplicate is not a second delivery.
        m.received(&full, tails[0], tails[0].sent_ns + 2_000_000, true);
        let s = m.summarize(sec, sec + 1, Expect::Whole);
        assert_eq!(s.expected_packets, 200, "{s:?}");
        assert_eq!(s.received_packets, 100);
        assert_eq!(s.delivery, Some(0.5));
        assert_eq!(s.duplicates, 1);
        let d = s.delay_ms.expect("delay measured");
        assert!((d.p50 - 1.0).abs() < 0.01, "{d:?}");
        assert!(!none.has_media() && full.has_media());
    }

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = percentiles(&mut v).unwrap();
        assert_eq!(p.p50, 50.0);
        assert_eq!(p.p99, 99.0);
        assert_eq!(p.max, 100.0);
        assert!(percentiles(&mut []).is_none());
    }
}
