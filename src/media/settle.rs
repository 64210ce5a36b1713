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
//! the runtime proves responsive: [`ON_TIME`] probe tasks in a row, each
//! spawned onto the runtime to sleep one poll interval, come back within
//! [`LATE`] of it. A handler woken before the first probe has had its turn
//! by then. [`MAX`] bounds the pause.

use std::time::Duration;

use tokio::time::Instant;

/// Shortest pause (the spike lost races at 20 ms and none at 100 ms on an
/// idle machine).
pub const MIN: Duration = Duration::from_millis(100);
/// Longest pause: past this the answer is applied anyway.
pub const MAX: Duration = Duration::from_secs(3);
/// The handler's poll interval, which each probe sleeps.
const TICK: Duration = Duration::from_millis(10);
/// How late a probe may come back and still count as on time.
const LATE: Duration = Duration::from_millis(15);
/// Probes in a row that must be on time.
const ON_TIME: u32 = 3;

/// Waits until the negotiation-needed handler has certainly run (see the
/// module docs); returns how long it waited.
pub async fn after_pranswer() -> Duration {
    settle(MIN, MAX).await
}

async fn settle(min: Duration, max: Duration) -> Duration {
    let start = Instant::now();
    let mut on_time = 0;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= max || (elapsed >= min && on_time >= ON_TIME) {
            return elapsed;
        }
        let sent = Instant::now();
        // From spawn to join: the run-queue wait for the start, the timer,
        // and the run-queue wait after the wake-up, as the handler sees them.
        let probe = tokio::spawn(tokio::time::sleep(TICK));
        let came_back = probe.await.is_ok();
        if came_back && sent.elapsed() <= TICK + LATE {
            on_time += 1;
        } else {
            on_time = 0;
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
    /// outlasts the starvation instead of ending at the minimum.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn starved_runtime_extends_the_pause() {
        let starve_for = Duration::from_millis(600);
        let hog = tokio::spawn(async move {
            let until = std::time::Instant::now() + starve_for;
            while std::time::Instant::now() < until {
                // Blocks the only worker, as a busy task would.
                std::thread::sleep(Duration::from_millis(60));
                tokio::task::yield_now().await;
            }
        });
        let waited = settle(Duration::from_millis(50), Duration::from_secs(10)).await;
        hog.await.expect("hog task");
        assert!(
            waited >= Duration::from_millis(500),
            "the pause ended after {waited:?}, while the runtime was starved for {starve_for:?}"
        );
        assert!(waited < Duration::from_secs(10), "{waited:?}");
    }

    /// The bound holds even when the runtime never recovers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn the_pause_is_bounded() {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let hog = tokio::spawn(async move {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(40));
                tokio::task::yield_now().await;
            }
        });
        let waited = settle(Duration::from_millis(20), Duration::from_millis(400)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        hog.await.expect("hog task");
        assert!(waited >= Duration::from_millis(400), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    }
}
