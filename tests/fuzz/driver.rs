//! The loop every target runs in: a counted number of inputs, each made by
//! the target from its own seed's bytes (through `arbitrary::Unstructured`),
//! then checked; a panic prints the seed, a command that reproduces it, the
//! input, and a smaller input that still panics.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use arbitrary::Unstructured;

/// Inputs per target when `FUZZ_INPUTS` is unset.
const DEFAULT_INPUTS: u64 = 100_000;
/// Base seed when `FUZZ_SEED` is unset: a plain `cargo test` is the same
/// run every time, so CI never fails on a bug nobody touched. Explore with
/// `FUZZ_SEED=random`.
const DEFAULT_SEED: u64 = 0x5eed_f022_2025_0001;
/// Input `i` of a run with base seed `s` has seed `s + i * STEP` (odd, so
/// every seed is distinct): input 0 of base seed `x` is seed `x` itself,
/// which is how a printed seed is replayed alone.
const STEP: u64 = 0x9e37_79b9_7f4a_7c15;

/// How a target's run went: outcome counts (for the summary line and the
/// target's own checks that its inputs get past the first checks).
pub struct Tally {
    pub counts: BTreeMap<&'static str, u64>,
    pub inputs: u64,
}

impl Tally {
    /// How many inputs ended in `outcome`.
    pub fn get(&self, outcome: &str) -> u64 {
        self.counts.get(outcome).copied().unwrap_or(0)
    }

    /// Asserts that at least one input in `fraction` ended in `outcome`
    /// (skipped for short runs, where chance decides).
    pub fn expect_share(&self, outcome: &str, fraction: f64) {
        if self.inputs < 5_000 {
            return;
        }
        let got = self.get(outcome) as f64 / self.inputs as f64;
        assert!(
            got >= fraction,
            "only {:.3}% of inputs reached `{outcome}` (want >= {:.3}%): the seeds or \
             mutations no longer get past the first checks; outcomes: {:?}",
            got * 100.0,
            fraction * 100.0,
            self.counts
        );
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim().replace('_', "");
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

/// `FUZZ_INPUTS`, else the default.
pub fn inputs() -> u64 {
    env_u64("FUZZ_INPUTS").unwrap_or(DEFAULT_INPUTS)
}

/// `FUZZ_SEED` (a number, hex with `0x`, or `random`), else the default.
fn base_seed() -> u64 {
    match std::env::var("FUZZ_SEED").ok().as_deref().map(str::trim) {
        Some("random") => {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        }
        Some(_) => env_u64("FUZZ_SEED").unwrap_or(DEFAULT_SEED),
        None => DEFAULT_SEED,
    }
}

/// SplitMix64: the bytes of one input, from its seed alone.
fn fill(seed: u64, buf: &mut Vec<u8>) {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    // Log-uniform length, 8 B to 16 KiB: mostly a few mutations of a seed
    // input, sometimes many (or a long random string).
    let len = 8usize << (next() % 12);
    let len = len + (next() as usize % len);
    buf.clear();
    while buf.len() < len {
        buf.extend_from_slice(&next().to_le_bytes());
    }
    buf.truncate(len);
}

/// Runs `check` on `inputs()` inputs that `make` builds from seeded bytes.
/// `check` panics when a property fails and otherwise names the outcome.
pub fn run<I: Debug>(
    target: &str,
    make: impl Fn(&mut Unstructured<'_>) -> arbitrary::Result<I>,
    check: impl Fn(&I) -> &'static str,
) -> Tally {
    let n = inputs();
    let base = base_seed();
    if n > DEFAULT_INPUTS {
        // A long run: say at once how to run it again.
        eprintln!("fuzz {target}: {n} inputs from base seed {base:#018x}");
    }
    let started = Instant::now();
    let cpu_before = thread_cpu();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut buf = Vec::new();
    let mut making = Duration::ZERO;
    for i in 0..n {
        let seed = base.wrapping_add(i.wrapping_mul(STEP));
        fill(seed, &mut buf);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            let started = Instant::now();
            let input = make(&mut Unstructured::new(&buf)).ok()?;
            making += started.elapsed();
            Some(check(&input))
        }));
        match outcome {
            Ok(Some(label)) => *counts.entry(label).or_default() += 1,
            Ok(None) => *counts.entry("(no input)").or_default() += 1,
            Err(payload) => {
                eprintln!("fuzz {target}: input {i} of the run with base seed {base:#018x} failed");
                fail(target, seed, &buf, &make, &check, payload)
            }
        }
    }
    let elapsed = started.elapsed();
    let cpu = thread_cpu().saturating_sub(cpu_before);
    eprintln!(
        "fuzz {target}: {n} inputs in {elapsed:.1?} (CPU {cpu:.1?}, {:.0} µs each, {:.0}% making inputs), \
         seed {base:#018x}: {counts:?}",
        cpu.as_secs_f64() * 1e6 / n.max(1) as f64,
        making.as_secs_f64() * 100.0 / elapsed.as_secs_f64().max(1e-9)
    );
    Tally { counts, inputs: n }
}

/// Reports a failing input and panics.
fn fail<I: Debug>(
    target: &str,
    seed: u64,
    bytes: &[u8],
    make: &impl Fn(&mut Unstructured<'_>) -> arbitrary::Result<I>,
    check: &impl Fn(&I) -> &'static str,
    payload: Box<dyn std::any::Any + Send>,
) -> ! {
    let why = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)")
        .to_owned();
    let input = match panic::catch_unwind(AssertUnwindSafe(|| make(&mut Unstructured::new(bytes))))
    {
        Ok(Ok(input)) => format!("{input:#?}"),
        _ => "(the input could not be made again)".to_owned(),
    };
    eprintln!(
        "\n==== fuzz target `{target}` failed: {}\n\
         seed: {seed:#018x}\n\
         reproduce: FUZZ_SEED={seed:#018x} FUZZ_INPUTS=1 cargo test --test fuzz {target}\n\
         input: {}",
        short(&why),
        short(&input)
    );
    if let Some(small) = minimize(bytes, make, check) {
        let small = format!("{small:#?}");
        if small.len() < input.len() {
            eprintln!("smaller input that fails too: {}", short(&small));
        }
    }
    panic!(
        "fuzz target `{target}` failed on seed {seed:#018x}: {}",
        short(&why)
    );
}

/// `s`, cut to 4 KiB for the report (the seed replays the whole input).
pub fn short(s: &str) -> String {
    const MAX: usize = 4096;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &s[..end], s.len() - end)
}

/// Shorter prefixes of the failing bytes (fewer choices, so usually a
/// simpler input) that still make `check` panic; the shortest found within
/// a few seconds.
fn minimize<I: Debug>(
    bytes: &[u8],
    make: &impl Fn(&mut Unstructured<'_>) -> arbitrary::Result<I>,
    check: &impl Fn(&I) -> &'static str,
) -> Option<I> {
    let fails = |len: usize| {
        panic::catch_unwind(AssertUnwindSafe(|| {
            if let Ok(input) = make(&mut Unstructured::new(&bytes[..len])) {
                check(&input);
            }
        }))
        .is_err()
    };
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut len = bytes.len();
    let mut step = len / 2;
    while step > 0 && Instant::now() < deadline {
        if len >= step && fails(len - step) {
            len -= step;
        } else {
            step /= 2;
        }
    }
    panic::set_hook(hook);
    (len < bytes.len())
        .then(|| make(&mut Unstructured::new(&bytes[..len])).ok())
        .flatten()
}

/// CPU time of this thread so far (Linux; zero elsewhere): on a shared
/// machine the wall time says little about a target's own cost.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}
