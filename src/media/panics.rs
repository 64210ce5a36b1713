//! Noticing a rheomesh publisher task that died.
//!
//! rheomesh fault: the task that wires a new published track into its
//! publisher (`publisher_event_loop`) binds a relay UDP socket on
//! `0.0.0.0` at a port it checked as free a moment before, and `unwrap()`s
//! the bind. When another socket takes that port in between (our own media
//! sockets are bound all the time), the task panics: the publisher stays in
//! the router, but its track never gets the local track subscribers need,
//! so nobody ever receives it. Nothing in rheomesh's API shows this, except
//! the panic itself.
//!
//! A panic hook (chained to whatever hook is installed) notes the time of
//! every panic raised in rheomesh's `publisher.rs`; a publisher actor whose
//! track was published around such a panic reports it lost
//! (`MediaEvent::PublishLost`, so the client republishes). When several
//! tracks were published in that window, all of them are reported: one
//! republish too many beats a track nobody receives.

use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// How many panic times are kept (they are rare; a few suffice).
const KEEP: usize = 64;

static PANICS: Mutex<Vec<Instant>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

/// Installs the hook once per process.
pub(crate) fn watch() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(loc) = info.location() {
                let file = loc.file().replace('\\', "/");
                if file.contains("/rheomesh-") && file.ends_with("/publisher.rs") {
                    note(Instant::now());
                }
            }
            previous(info);
        }));
    });
}

fn note(at: Instant) {
    // A poisoned lock still holds valid instants.
    let mut p = PANICS.lock().unwrap_or_else(|e| e.into_inner());
    if p.len() >= KEEP {
        p.remove(0);
    }
    p.push(at);
}

/// Whether a rheomesh publisher task panicked within `before` before
/// `at` or `after` after it.
pub(crate) fn publisher_panicked_around(at: Instant, before: Duration, after: Duration) -> bool {
    let p = PANICS.lock().unwrap_or_else(|e| e.into_inner());
    p.iter().any(|&t| {
        (t <= at && at.duration_since(t) <= before) || (t >= at && t.duration_since(at) <= after)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_around_a_publish() {
        let base = Instant::now();
        note(base + Duration::from_secs(100));
        let s = Duration::from_secs(2);
        assert!(publisher_panicked_around(
            base + Duration::from_secs(101),
            s,
            s
        ));
        assert!(publisher_panicked_around(
            base + Duration::from_secs(99),
            s,
            s
        ));
        assert!(!publisher_panicked_around(
            base + Duration::from_secs(103),
            s,
            s
        ));
        assert!(!publisher_panicked_around(
            base + Duration::from_secs(97),
            s,
            s
        ));
    }

    #[test]
    fn a_rheomesh_publisher_panic_is_noticed() {
        watch();
        // A panic whose location is not rheomesh's is not counted.
        let before = Instant::now();
        let _ = std::panic::catch_unwind(|| panic!("not rheomesh"));
        assert!(!publisher_panicked_around(
            before,
            Duration::ZERO,
            Duration::from_secs(5)
        ));
    }
}
