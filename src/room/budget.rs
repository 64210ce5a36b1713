//! A session's memory budget in bytes, shared by everything queued for it:
//! room events waiting for the session task and frames waiting for the
//! socket. Frame counts alone do not bound memory (1,024 frames of 64 KiB
//! are 64 MiB per connection); bytes do.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes queued for one session, and the most it may hold.
#[derive(Debug)]
pub struct ByteBudget {
    used: AtomicUsize,
    limit: usize,
}

impl ByteBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> ByteBudget {
        ByteBudget {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// Takes `n` bytes; false (and nothing taken) when they do not fit.
    /// One item larger than the whole budget is let through when nothing
    /// else is queued, so a single legal frame always gets out.
    pub fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let after = used.saturating_add(n);
                (after <= self.limit || used == 0).then_some(after)
            })
            .is_ok()
    }

    /// Returns `n` bytes taken before.
    pub fn give(&self, n: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(n))
            });
    }

    /// Bytes queued now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// Size of a value's JSON text without building it.
pub fn json_len(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing to a counter cannot fail; a value that cannot serialize is
    // counted as far as it got.
    let _ = serde_json::to_writer(&mut c, value);
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_bytes() {
        let b = ByteBudget::new(100);
        assert!(b.take(60));
        assert!(b.take(40));
        assert!(!b.take(1));
        b.give(50);
        assert_eq!(b.used(), 50);
        assert!(b.take(50));
        assert!(!b.take(1));
    }

    #[test]
    fn one_oversized_item_passes_alone() {
        let b = ByteBudget::new(10);
        assert!(b.take(64));
        assert!(!b.take(1));
        b.give(64);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn json_len_matches() {
        let v = serde_json::json!({"a": [1, 2, "x\"y"], "b": null});
        assert_eq!(json_len(&v), v.to_string().len());
    }
}
