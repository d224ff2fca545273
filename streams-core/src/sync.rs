//! One way to take the library's locks: a panic while one was held does not poison it for everyone after.
//!
//! std's `Mutex` is poisoned when its holder panics (a user's processor panicking inside a task, say).
//! That thread's failure is reported on its own path (its error, the instance's state); the instance's
//! other threads, its close, its metrics and its state listener go on with the data as it was left,
//! rather than panicking in turn.

use std::sync::{Mutex, MutexGuard, PoisonError};

pub(crate) trait LockUnpoisoned<T: ?Sized> {
    /// Locks, taking the data as it is if a holder panicked.
    fn lock_unpoisoned(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> LockUnpoisoned<T> for Mutex<T> {
    fn lock_unpoisoned(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
