//! Live heap bytes: a global allocator wrapper that counts what is
//! allocated and not yet freed, so that a soak can tell memory the server
//! still uses (a leak, if it does not come back) from memory the allocator
//! keeps for reuse after a burst (resident, but free). RSS alone cannot
//! tell them apart.
//!
//! The cost is one relaxed atomic add per allocation and one per free, on
//! one counter; the forwarding path allocates a packet per subscriber, a
//! few hundred thousand a second at this node's capacity, which is well
//! under 1 % of a core.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

static LIVE: AtomicIsize = AtomicIsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Wraps the process's allocator `A` and counts live bytes.
#[derive(Debug)]
pub struct Counting<A>(pub A);

// SAFETY: every call is forwarded unchanged to the wrapped allocator, which
// upholds GlobalAlloc's contract; the counter does not touch the memory.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

impl<A> Counting<A> {
    /// Marks the counter as meaningful: called by the binary that installs
    /// this allocator (a library user with another allocator reports -1).
    pub fn installed(&self) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

/// Live heap bytes, if a [`Counting`] allocator is installed.
pub fn live_bytes() -> Option<i64> {
    INSTALLED
        .load(Ordering::Relaxed)
        .then(|| LIVE.load(Ordering::Relaxed) as i64)
}
