//! The one place that reads the wall clock. Tasks ask a [`Clock`] for the time, so tests and simulations
//! can run on manual time and replay exactly.
//!
//! Public only with the `test-utils` feature (the simulation's clock); otherwise its `pub` items are
//! the crate's own.
#![cfg_attr(not(feature = "test-utils"), allow(unreachable_pub))]

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Wall-clock time in milliseconds since the Unix epoch: the system clock, or a manual clock that only
/// moves when told to (the test driver's `advance_wall_clock_time`).
#[derive(Debug, Clone)]
pub enum Clock {
    /// The operating system's clock.
    System,
    /// A clock that stands still until advanced. Clones share the same time.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock starting at `start_ms`.
    pub fn manual(start_ms: i64) -> Self {
        Clock::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    /// The current time in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0),
            Clock::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Milliseconds on a clock that only moves forward, for measuring how long something took: the
    /// system's monotonic clock (counted from the first call in the process; it goes on while the
    /// process is stopped, and does not jump when the wall clock is set), or the manual clock.
    pub fn monotonic_ms(&self) -> i64 {
        match self {
            Clock::System => {
                static START: OnceLock<Instant> = OnceLock::new();
                START.get_or_init(Instant::now).elapsed().as_millis() as i64
            }
            Clock::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Waits `duration`: on the system clock by sleeping; on a manual clock by moving it forward, which
    /// is how waiting looks in a single-threaded simulation (the rest of the world is not scheduled
    /// meanwhile).
    pub fn sleep(&self, duration: std::time::Duration) {
        match self {
            Clock::System => std::thread::sleep(duration),
            Clock::Manual(_) => self.advance(duration.as_millis() as i64),
        }
    }

    /// Moves a manual clock forward by `ms`; the system clock cannot be moved and ignores this.
    pub fn advance(&self, ms: i64) {
        if let Clock::Manual(t) = self {
            t.fetch_add(ms, Ordering::SeqCst);
        }
    }
}
