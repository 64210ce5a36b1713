//! Admission control: a node-wide budget of forwarded tracks.
//!
//! Every track the server sends to a subscriber costs packets per second
//! for the life of the subscription, and past the machine's capacity every
//! session suffers at once (queues grow, NACKs multiply the load, delivery
//! collapses). So each forwarded track holds a [`Slot`] of the budget for as
//! long as it exists; when none is left, new subscriptions and new joins are
//! refused with `room-full` and the admitted sessions keep their quality.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The budget; `limit` 0 means unlimited.
#[derive(Debug)]
pub struct ForwardBudget {
    limit: usize,
    used: AtomicUsize,
}

impl ForwardBudget {
    /// A budget of `limit` forwarded tracks (0 = unlimited).
    pub fn new(limit: usize) -> Arc<ForwardBudget> {
        Arc::new(ForwardBudget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Takes one slot, if any is left.
    pub fn try_take(self: &Arc<Self>) -> Option<Slot> {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (self.limit == 0 || u < self.limit).then_some(u + 1)
            })
            .is_ok();
        taken.then(|| Slot(Arc::clone(self)))
    }

    /// No slot is left.
    pub fn exhausted(&self) -> bool {
        self.limit != 0 && self.used.load(Ordering::Acquire) >= self.limit
    }

    /// Tracks forwarded now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The limit (0 = unlimited).
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// One forwarded track's share of the budget; released on drop.
#[derive(Debug)]
pub struct Slot(Arc<ForwardBudget>);

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
        let b = ForwardBudget::new(2);
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
        let b = ForwardBudget::new(0);
        let slots: Vec<Slot> = (0..1000).filter_map(|_| b.try_take()).collect();
        assert_eq!(slots.len(), 1000);
        assert!(!b.exhausted());
    }
}
