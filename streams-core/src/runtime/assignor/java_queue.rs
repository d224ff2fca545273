//! The two Java collections whose exact behaviour decides Kafka Streams' assignments, kept here so
//! that ours are the same (checked on random groups against Kafka Streams itself, `tests.rs`):
//! `java.util.PriorityQueue`, whose heap orders equal elements by where they landed, not by arrival,
//! and whose elements keep the place their weight had when they went in (Kafka Streams changes an
//! instance's load while it waits in a queue), and `ConstrainedPrioritySet`, which puts the instances it
//! passed over back in `java.util.HashSet` order.

use std::cmp::Ordering;

/// `java.util.PriorityQueue`: a binary heap in an array, sifted as Java sifts, compared with a
/// comparator given at each call (it reads the current state, as Java's comparator does).
#[derive(Debug, Clone, Default)]
pub(super) struct JavaPriorityQueue<T> {
    heap: Vec<T>,
}

impl<T: Copy + PartialEq> JavaPriorityQueue<T> {
    pub(super) fn new() -> Self {
        JavaPriorityQueue { heap: Vec::new() }
    }

    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub(super) fn offer(&mut self, x: T, cmp: &impl Fn(&T, &T) -> Ordering) {
        self.heap.push(x);
        self.sift_up(self.heap.len() - 1, x, cmp);
    }

    pub(super) fn poll(&mut self, cmp: &impl Fn(&T, &T) -> Ordering) -> Option<T> {
        let last = self.heap.pop()?;
        if self.heap.is_empty() {
            return Some(last);
        }
        let head = self.heap[0];
        self.sift_down(0, last, cmp);
        Some(head)
    }

    /// Removes the first element equal to `x` found scanning the array (Java's `remove(Object)`).
    pub(super) fn remove(&mut self, x: T, cmp: &impl Fn(&T, &T) -> Ordering) -> bool {
        let Some(i) = self.heap.iter().position(|e| *e == x) else {
            return false;
        };
        let moved = self.heap.pop().expect("found, so not empty");
        if i < self.heap.len() {
            self.sift_down(i, moved, cmp);
            if self.heap[i] == moved {
                self.sift_up(i, moved, cmp);
            }
        }
        true
    }

    fn sift_up(&mut self, mut k: usize, x: T, cmp: &impl Fn(&T, &T) -> Ordering) {
        while k > 0 {
            let parent = (k - 1) >> 1;
            let e = self.heap[parent];
            if cmp(&x, &e) != Ordering::Less {
                break;
            }
            self.heap[k] = e;
            k = parent;
        }
        self.heap[k] = x;
    }

    fn sift_down(&mut self, mut k: usize, x: T, cmp: &impl Fn(&T, &T) -> Ordering) {
        let n = self.heap.len();
        let half = n >> 1;
        while k < half {
            let mut child = 2 * k + 1;
            let right = child + 1;
            if right < n && cmp(&self.heap[child], &self.heap[right]) == Ordering::Greater {
                child = right;
            }
            if cmp(&x, &self.heap[child]) != Ordering::Greater {
                break;
            }
            self.heap[k] = self.heap[child];
            k = child;
        }
        self.heap[k] = x;
    }
}

/// Kafka Streams' `ConstrainedPrioritySet` over instances (by position): a priority queue by load,
/// polled for the lightest instance that meets a constraint. `java_hash` gives each instance's
/// `ProcessId.hashCode()`, which decides the order in which passed-over instances go back.
#[derive(Debug, Clone)]
pub(super) struct ConstrainedPrioritySet {
    queue: JavaPriorityQueue<usize>,
    queued: Vec<bool>,
}

impl ConstrainedPrioritySet {
    pub(super) fn new(clients: usize) -> Self {
        ConstrainedPrioritySet { queue: JavaPriorityQueue::new(), queued: vec![false; clients] }
    }

    /// Queues `client`, first taking it out if it is in already (its load changed).
    pub(super) fn offer(&mut self, client: usize, cmp: &impl Fn(&usize, &usize) -> Ordering) {
        if self.queued[client] {
            self.queue.remove(client, cmp);
        } else {
            self.queued[client] = true;
        }
        self.queue.offer(client, cmp);
    }

    pub(super) fn offer_all(&mut self, clients: &[usize], cmp: &impl Fn(&usize, &usize) -> Ordering) {
        for &client in clients {
            self.offer(client, cmp);
        }
    }

    /// The lightest queued instance that `allowed` lets through, taken out of the queue; those passed
    /// over go back in `HashSet` order.
    pub(super) fn poll(
        &mut self,
        allowed: impl Fn(usize) -> bool,
        java_hash: impl Fn(usize) -> i32,
        cmp: &impl Fn(&usize, &usize) -> Ordering,
    ) -> Option<usize> {
        let mut passed = Vec::new();
        let mut found = None;
        while let Some(candidate) = self.queue.poll(cmp) {
            self.queued[candidate] = false;
            if allowed(candidate) {
                found = Some(candidate);
                break;
            }
            passed.push(candidate);
        }
        self.offer_all(&hash_set_order(passed, java_hash), cmp);
        found
    }
}

/// The order in which a `java.util.HashSet`, filled with `items` in that order, iterates them.
fn hash_set_order(items: Vec<usize>, java_hash: impl Fn(usize) -> i32) -> Vec<usize> {
    let entries = items.len();
    hash_order(items, entries, |&item| java_hash(item))
}

/// The order in which a `java.util.HashMap` (or `HashSet`) iterates `items`, put in that order into a
/// table that has held at most `entries` at once: by bucket (the spread hash masked by a table of 16,
/// doubled while more than 3/4 full), and within one bucket in the order they went in (a resize keeps
/// it, a removal leaves the others in place).
pub(super) fn hash_order<T>(mut items: Vec<T>, entries: usize, java_hash: impl Fn(&T) -> i32) -> Vec<T> {
    let mut capacity = 16usize;
    while entries * 4 > capacity * 3 {
        capacity *= 2;
    }
    items.sort_by_key(|item| {
        let h = java_hash(item) as u32;
        ((h ^ (h >> 16)) as usize) & (capacity - 1)
    });
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_value(a: &i32, b: &i32) -> Ordering {
        a.cmp(b)
    }

    #[test]
    fn the_heap_polls_in_order_and_keeps_java_s_array() {
        let mut q = JavaPriorityQueue::new();
        for x in [5, 3, 8, 1, 9, 2] {
            q.offer(x, &by_value);
        }
        assert_eq!(q.heap, vec![1, 3, 2, 5, 9, 8], "java.util.PriorityQueue's array after these offers");
        assert!(q.remove(3, &by_value));
        assert_eq!(q.heap, vec![1, 5, 2, 8, 9]);
        let mut polled = Vec::new();
        while let Some(x) = q.poll(&by_value) {
            polled.push(x);
        }
        assert_eq!(polled, vec![1, 2, 5, 8, 9]);
        assert!(q.is_empty());
    }

    #[test]
    fn equal_elements_leave_in_heap_order_not_arrival_order() {
        // (key, arrival): compared by key only, as Kafka Streams' task movements are.
        let cmp = |a: &(i32, i32), b: &(i32, i32)| a.0.cmp(&b.0);
        let mut q = JavaPriorityQueue::new();
        for x in [(1, 0), (1, 1), (1, 2), (0, 3)] {
            q.offer(x, &cmp);
        }
        let order: Vec<i32> = std::iter::from_fn(|| q.poll(&cmp)).map(|x| x.1).collect();
        assert_eq!(order, vec![3, 1, 2, 0]);
    }

    #[test]
    fn a_hash_set_iterates_by_bucket_then_arrival() {
        // Hashes 17 and 1 share bucket 1 of 16; 2 is alone in bucket 2.
        assert_eq!(hash_set_order(vec![0, 1, 2], |i| [17, 2, 1][i]), vec![0, 2, 1]);
        // Thirteen items: 32 buckets, so 17 and 1 part.
        let hashes: Vec<i32> = (0..13).map(|i| if i == 0 { 17 } else { i + 1 }).collect();
        let order = hash_set_order((0..13).collect(), |i| hashes[i]);
        assert_eq!(order.first(), Some(&1), "hash 2 in bucket 2 comes before 17 in bucket 17");
        assert_eq!(order.iter().position(|&i| i == 0), Some(12));
    }
}
