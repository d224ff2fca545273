//! One instance's tasks over its stream threads (the members it has in the group): Kafka Streams'
//! `StreamsPartitionAssignor.assignTasksToThreads`.

use std::collections::{BTreeMap, BTreeSet};

use crate::task_id::TaskId;

/// Spreads one instance's `tasks` over its `threads` (their member ids, sorted), Kafka Streams'
/// `assignTasksToThreads`: each thread first gets back, up to an even share, the stateful tasks it had
/// (`previous`: per thread, its earlier tasks least behind first, from `ClientState::by_lag`), the rest
/// go round the threads below that share, and what is left after (one each at most) to previous owners
/// first. `thread_load` carries each thread's count from one call to the next (stateful actives,
/// standbys, stateless actives, in that order, as Kafka Streams calls it). The last round takes tasks in
/// order where Kafka Streams' iterates its priority queue's array: which thread of an instance gets
/// which of those few can differ from Kafka Streams', not how many.
pub(crate) fn assign_tasks_to_threads(
    tasks: &BTreeSet<TaskId>,
    stateful: bool,
    threads: &[String],
    previous: &BTreeMap<String, Vec<TaskId>>,
    thread_load: &mut BTreeMap<String, usize>,
) -> BTreeMap<String, Vec<TaskId>> {
    let mut assignment: BTreeMap<String, Vec<TaskId>> = threads.iter().map(|t| (t.clone(), Vec::new())).collect();
    if threads.is_empty() {
        return assignment;
    }
    let load = |thread: &str, thread_load: &BTreeMap<String, usize>| thread_load.get(thread).copied().unwrap_or(0);
    let total = tasks.len() + thread_load.values().sum::<usize>();
    let min_per_thread = total / threads.len();
    let mut unassigned = tasks.clone();
    let mut to_fill = std::collections::VecDeque::new();
    let mut skipped_previous_owner: BTreeMap<TaskId, &str> = BTreeMap::new();
    if !unassigned.is_empty() {
        for thread in threads {
            let target = min_per_thread.saturating_sub(load(thread, thread_load));
            let mine = assignment.get_mut(thread).expect("every thread has an entry");
            if stateful {
                for &task in previous.get(thread).map(Vec::as_slice).unwrap_or_default() {
                    if unassigned.contains(&task) {
                        if mine.len() < target {
                            mine.push(task);
                            unassigned.remove(&task);
                        } else {
                            skipped_previous_owner.insert(task, thread);
                        }
                    }
                }
            }
            if mine.len() < target {
                to_fill.push_back(thread.as_str());
            }
        }
        while let Some(thread) = to_fill.pop_front() {
            let Some(task) = unassigned.pop_first() else {
                // Kafka Streams throws here; the counts above make it unreachable.
                break;
            };
            let mine = assignment.get_mut(thread).expect("every thread has an entry");
            mine.push(task);
            if mine.len() + load(thread, thread_load) < min_per_thread {
                to_fill.push_back(thread);
            }
        }
        if !unassigned.is_empty() {
            let mut at_min: Vec<&str> = threads
                .iter()
                .map(String::as_str)
                .filter(|&t| assignment[t].len() + load(t, thread_load) == min_per_thread)
                .collect();
            for (task, owner) in skipped_previous_owner {
                if let Some(at) = at_min.iter().position(|&t| t == owner)
                    && unassigned.remove(&task)
                {
                    assignment.get_mut(owner).expect("every thread has an entry").push(task);
                    at_min.remove(at);
                }
            }
            let mut at_min = at_min.into_iter();
            for task in std::mem::take(&mut unassigned) {
                // Kafka Streams has a thread at the minimum for each task left; should none be, the
                // least loaded thread takes it rather than the task being left out.
                let thread = at_min.next().unwrap_or_else(|| {
                    threads
                        .iter()
                        .map(String::as_str)
                        .min_by_key(|&t| (assignment[t].len() + load(t, thread_load), t))
                        .expect("threads is not empty")
                });
                assignment.get_mut(thread).expect("every thread has an entry").push(task);
            }
        }
    }
    for (thread, given) in &assignment {
        *thread_load.entry(thread.clone()).or_default() += given.len();
    }
    assignment
}
