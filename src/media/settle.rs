//! rheomesh workaround: the pause between a subscribe answer's `pranswer`
//! and its `answer`, long enough for the transport's negotiation-needed
//! handler to see the `pranswer` state.
//!
//! Each `subscribe()` wakes that handler (webrtc-rs fires negotiation-needed
//! while the transport is still stable). It polls the transport's "signaling
//! pending" flag every 10 ms on the runtime's worker threads, and exits
//! harmlessly only if it finds the flag clear while the state is not stable:
//! the window between our `pranswer` and our `answer`. If it wakes after the
//! `answer` instead, it makes an offer of its own; rheomesh rewrites that
//! offer's extmap lines before setting it, webrtc-rs refuses it ("new sdp does
//! not match previous offer"), and the flag stays set: the next `subscribe()`
//! waits forever, and only an ICE restart (which aiortc and GStreamer cannot
//! follow) frees the transport.
//!
//! A fixed pause loses that race when the runtime is starved (many peers on
//! few cores): the handler's wake-up waits in a run queue while our actor's
//! timer fires on time. So the pause lasts at least [`MIN`], and then until
//! [`PROBES`] probe tasks, one after another, each spawned onto the runtime
//! to sleep one poll interval, have come back: the handler's timer expired
//! before the first probe's, and its wake-up was queued before theirs, so it
//! has had its turn by then. On an idle runtime that costs nothing beyond
//! [`MIN`]; on a busy one it follows the run queue's delay instead of
//! guessing it. [`MAX`] bounds the pause.

use std::time::Duration;

use tokio::time::Instant;

/// Shortest pause (the spike lost races at 20 ms and none at 100 ms on an
/// idle machine).
pub const MIN: Duration = Duration::from_millis(100);
/// Longest pause: past this the answer is applied anyway.
pub const MAX: Duration = Duration::from_secs(3);
/// The handler's poll interval, which each probe sleeps.
const TICK: Duration = Duration::from_millis(10);
/// Probes that must come back, one after another.
const PROBES: u32 = 3;

/// Waits until the negotiation-needed handler has certainly run (see the
/// module docs); returns how long it waited.
pub async fn after_pranswer() -> Duration {
    settle(MIN, MAX).await
}

async fn settle(min: Duration, max: Duration) -> Duration {
    let start = Instant::now();
    let mut probes = 0;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= max || (elapsed >= min && probes >= PROBES) {
            return elapsed;
        }
        // Spawned, so it waits in the run queue as the handler's task does:
        // for its start and again after its timer.
        let probe = tokio::spawn(tokio::time::sleep(TICK));
        let left = max.saturating_sub(start.elapsed());
        if let Ok(Ok(())) = tokio::time::timeout(left, probe).await {
            probes += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle runtime: the pause is the minimum (plus at most a few ticks).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_runtime_waits_the_minimum() {
        let waited = settle(Duration::from_millis(50), Duration::from_secs(10)).await;
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(10), "{waited:?}");
    }

    /// Worker threads blocked again and again (a starved runtime): the pause
    /// follows the run queue's delay (each probe waits for the worker)
    /// instead of ending at the minimum.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn starved_runtime_extends_the_pause() {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let block = Duration::from_millis(150);
        let hog = tokio::spawn(async move {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                // Blocks the only worker, as a busy task would.
                std::thread::sleep(block);
                tokio::task::yield_now().await;
            }
        });
        let waited = settle(Duration::from_millis(50), Duration::from_secs(10)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        hog.await.expect("hog task");
        // Each of the three probes waited for at least one block.
        assert!(
            waited >= block * 2,
            "the pause ended after {waited:?} on a runtime blocked {block:?} at a time"
        );
        assert!(waited < Duration::from_secs(10), "{waited:?}");
    }

    /// The bound holds even when the probes cannot all come back in time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pause_is_bounded() {
        // Three probes need at least three ticks; the bound is two.
        let waited = settle(Duration::ZERO, TICK * 2).await;
        assert!(waited >= TICK * 2, "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    }
}
