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

thread_local! {
    /// How many task locks this OS thread holds (see [`lock_task`]).
    static TASK_LOCKS_HELD: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The lock of a stream thread's tasks, or of a global task, held. While one is held the OS thread runs
/// (or may run) user code of a task: a processor, a punctuation, a restore or state listener. An
/// interactive query made from there would wait for the lock it holds, or for another thread's while
/// that one waits for it; [`holds_task_lock`] lets the query refuse instead.
pub(crate) struct TaskLock<'a, T: ?Sized>(MutexGuard<'a, T>);

/// Takes the lock of a stream thread's tasks or of a global task (unpoisoned, as [`LockUnpoisoned`]).
pub(crate) fn lock_task<T: ?Sized>(mutex: &Mutex<T>) -> TaskLock<'_, T> {
    let guard = mutex.lock_unpoisoned();
    TASK_LOCKS_HELD.with(|held| held.set(held.get() + 1));
    TaskLock(guard)
}

/// Takes the lock of another stream thread's tasks, waiting at most `wait`: `None` when that thread kept
/// it all along. Two threads that each hold their own lock and take the other's this way cannot
/// deadlock: both give up.
pub(crate) fn try_lock_task_for<T: ?Sized>(mutex: &Mutex<T>, wait: std::time::Duration) -> Option<TaskLock<'_, T>> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let guard = match mutex.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        TASK_LOCKS_HELD.with(|held| held.set(held.get() + 1));
        return Some(TaskLock(guard));
    }
}

/// Whether this OS thread holds a task lock now.
pub(crate) fn holds_task_lock() -> bool {
    TASK_LOCKS_HELD.with(|held| held.get() > 0)
}

impl<T: ?Sized> Drop for TaskLock<'_, T> {
    fn drop(&mut self) {
        TASK_LOCKS_HELD.with(|held| held.set(held.get().saturating_sub(1)));
    }
}

impl<T: ?Sized> std::ops::Deref for TaskLock<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized> std::ops::DerefMut for TaskLock<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}
