//! Admission control: a node-wide budget of forwarded tracks.
//!
//! Every track the server sends to a subscriber costs packets per second
//! for the life of the subscription, and past the machine's capacity every
//! session suffers at once (queues grow, NACKs multiply the load, delivery
//! collapses). So each forwarded track holds a [`Slot`] of the budget for as
//! long as it exists; when none is left, new subscriptions and new joins are
//! refused with `room-full` and the admitted sessions keep their quality.
//!
//! The same [`Budget`] counts the PeerConnections the media port range
//! holds ([`super::ports`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A number of slots, each held by a [`Slot`] until it is dropped.
#[derive(Debug)]
pub struct Budget {
    /// `None`: any number.
    cap: Option<usize>,
    used: AtomicUsize,
}

impl Budget {
    /// At most `cap` slots (`None`: no limit).
    pub fn new(cap: Option<usize>) -> Arc<Budget> {
        Arc::new(Budget {
            cap,
            used: AtomicUsize::new(0),
        })
    }

    /// The forwarding budget of `MAX_FORWARDED_TRACKS` (0 = unlimited).
    pub fn forwarding(limit: usize) -> Arc<Budget> {
        Budget::new((limit > 0).then_some(limit))
    }

    /// Takes one slot, if any is left.
    pub fn try_take(self: &Arc<Self>) -> Option<Slot> {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                self.cap.is_none_or(|cap| u < cap).then_some(u + 1)
            })
            .is_ok();
        taken.then(|| Slot(Arc::clone(self)))
    }

    /// No slot is left.
    pub fn exhausted(&self) -> bool {
        self.cap
            .is_some_and(|cap| self.used.load(Ordering::Acquire) >= cap)
    }

    /// Slots held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The limit, 0 when there is none (as `MAX_FORWARDED_TRACKS` writes it).
    pub fn limit(&self) -> usize {
        self.cap.unwrap_or(0)
    }
}

/// One slot of a [`Budget`] (a forwarded track, a PeerConnection's media
/// ports); released on drop.
#[derive(Debug)]
pub struct Slot(Arc<Budget>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_and_released_on_drop() {
        let b = Budget::forwarding(2);
        let a = b.try_take().expect("first slot");
        let c = b.try_take().expect("second slot");
        assert!(b.exhausted());
        assert!(b.try_take().is_none());
        drop(a);
        assert_eq!(b.used(), 1);
        let d = b.try_take().expect("a released slot is free again");
        drop((c, d));
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn zero_means_unlimited() {
        let b = Budget::forwarding(0);
        let slots: Vec<Slot> = (0..1000).filter_map(|_| b.try_take()).collect();
        assert_eq!(slots.len(), 1000);
        assert!(!b.exhausted());
    }
}
