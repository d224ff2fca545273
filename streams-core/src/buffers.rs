//! Byte buffers kept for reuse by the thread that processes records, so that the per-record path
//! allocates nothing of its own once warm: a consumer copies each record's key and value into spare
//! buffers, the source hands back the key's (and the value's, when its serde did not keep it) once
//! they are read, and sinks serialize into spare buffers that come back once produced.
//!
//! The pool is per thread, not per task or per client, because a record's buffers are taken where the
//! consumer polls and handed back where a task processes it, and both happen on the stream thread: one
//! pool serves every task and client of that thread without a lock or a reference through the layers.
//! A buffer that ends on another thread is merely not reused. The pool is bounded in buffers and bytes,
//! so a burst of large records does not stay allocated.

use std::cell::RefCell;

/// At most this many buffers are kept: the keys and values of a poll batch (`max.poll.records`, 1000 by
/// default) are out while the batch waits in the tasks' queues, and come back as it is processed.
const MAX_BUFFERS: usize = 4096;
/// At most this many bytes of capacity are kept, all buffers together.
const MAX_BYTES: usize = 4 << 20;
/// A buffer larger than this is not kept.
const MAX_BUFFER_BYTES: usize = 64 << 10;
/// New buffers have room for at least this many bytes (the smallest block glibc's allocator hands out
/// holds 24), so that short keys of varying length fit the kept ones.
const MIN_CAPACITY: usize = 32;

#[derive(Default)]
struct Pool {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// An empty buffer: a kept one when there is one.
pub(crate) fn spare() -> Vec<u8> {
    take(|_| true).unwrap_or_default()
}

/// The last buffer kept, if `fits` it. (None on a thread that is exiting: its pool is gone.)
fn take(fits: impl FnOnce(&Vec<u8>) -> bool) -> Option<Vec<u8>> {
    POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        let buffer = pool.buffers.pop_if(|b| fits(b))?;
        pool.bytes -= buffer.capacity();
        Some(buffer)
    })
    .ok()
    .flatten()
}

/// `bytes` in a buffer of their own: the last one kept when they fit in it (growing a small one would
/// cost an allocation anyway, and keys and values of very different sizes share the pool).
pub(crate) fn copy_of(bytes: &[u8]) -> Vec<u8> {
    let kept = take(|b| b.capacity() >= bytes.len());
    let mut buffer = kept.unwrap_or_else(|| Vec::with_capacity(bytes.len().max(MIN_CAPACITY)));
    buffer.extend_from_slice(bytes);
    buffer
}

/// `buffer`, which an application keeps as its own value (a `Vec<u8>`, a `String`), with at most twice
/// the room its bytes need: a kept buffer `copy_of` reused can be far larger than the record.
pub(crate) fn fitted(mut buffer: Vec<u8>) -> Vec<u8> {
    if buffer.capacity() > 2 * buffer.len().max(MIN_CAPACITY) {
        buffer.shrink_to_fit();
    }
    buffer
}

/// Keeps `buffer` (emptied) for later records, unless enough are kept or it is too large.
pub(crate) fn recycle(buffer: Option<Vec<u8>>) {
    let Some(mut buffer) = buffer else { return };
    let capacity = buffer.capacity();
    if capacity == 0 || capacity > MAX_BUFFER_BYTES {
        return;
    }
    // A thread that is exiting has dropped its pool already: the buffer is freed.
    let _ = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.buffers.len() < MAX_BUFFERS && pool.bytes + capacity <= MAX_BYTES {
            buffer.clear();
            pool.bytes += capacity;
            pool.buffers.push(buffer);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> (usize, usize) {
        POOL.with(|pool| {
            let pool = pool.borrow();
            (pool.buffers.len(), pool.bytes)
        })
    }

    #[test]
    fn a_buffer_handed_back_is_the_next_one_taken_emptied() {
        let first = copy_of(b"key-1");
        let address = first.as_ptr();
        recycle(Some(first));
        assert_eq!(kept().0, 1);
        let second = copy_of(b"key-2");
        assert_eq!(second, b"key-2");
        assert_eq!(second.as_ptr(), address, "the kept buffer is reused");
        assert_eq!(kept(), (0, 0));
        assert!(spare().is_empty());
    }

    #[test]
    fn bytes_that_do_not_fit_the_last_buffer_kept_get_a_new_one() {
        recycle(Some(copy_of(b"k")));
        let value = copy_of(&[7; MIN_CAPACITY + 1]);
        assert_eq!(value, [7; MIN_CAPACITY + 1]);
        assert_eq!(kept().0, 1, "the small buffer stays kept");
        assert_eq!(copy_of(b"a longer key"), b"a longer key");
        assert_eq!(kept(), (0, 0));
    }

    #[test]
    fn large_buffers_and_buffers_past_the_bounds_are_not_kept() {
        recycle(Some(Vec::with_capacity(MAX_BUFFER_BYTES + 1)));
        recycle(Some(Vec::new()));
        recycle(None);
        assert_eq!(kept(), (0, 0));
        for _ in 0..MAX_BYTES / MAX_BUFFER_BYTES + 3 {
            recycle(Some(Vec::with_capacity(MAX_BUFFER_BYTES)));
        }
        let (buffers, bytes) = kept();
        assert!(bytes <= MAX_BYTES);
        assert_eq!(buffers, MAX_BYTES / MAX_BUFFER_BYTES);
        while kept().0 > 0 {
            spare();
        }
        assert_eq!(kept(), (0, 0));
        for _ in 0..MAX_BUFFERS + 10 {
            recycle(Some(Vec::with_capacity(8)));
        }
        assert_eq!(kept(), (MAX_BUFFERS, MAX_BUFFERS * 8));
    }

    #[test]
    fn a_value_kept_by_the_application_holds_at_most_twice_its_bytes() {
        recycle(Some(Vec::with_capacity(MAX_BUFFER_BYTES)));
        let value = fitted(copy_of(b"ten bytes!"));
        assert_eq!(value, b"ten bytes!");
        assert!(value.capacity() <= 2 * MIN_CAPACITY, "{}", value.capacity());
    }

    #[test]
    fn a_serde_that_reads_the_bytes_leaves_the_buffer_for_the_next_record_and_one_that_keeps_it_does_not() {
        use crate::serde::{BytesSerde, I64Serde, Serde};
        assert_eq!(I64Serde.deserialize_owned("t", copy_of(&7i64.to_be_bytes())).ok(), Some(7));
        assert_eq!(kept().0, 1, "an i64 does not keep its bytes");
        assert_eq!(BytesSerde.deserialize_owned("t", copy_of(b"kept")).ok(), Some(b"kept".to_vec()));
        assert_eq!(kept().0, 0, "the application keeps a Vec<u8> value's buffer");
    }
}
