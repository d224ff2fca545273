//! [`ThreadSensors`]: what a stream thread measures of itself and its tasks for Kafka Streams'
//! metrics, and how it publishes them (every second, from its loop; docs/operations.md lists them).
//!
//! As Kafka Streams records them: the thread's poll, process, punctuate and commit phases once per
//! loop iteration (process latency as the iteration's processing time over the records it
//! processed, commit latency over the tasks committed); task figures from the task's own counters;
//! end-to-end latency at the source nodes by the task (`Task::e2e_latencies`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::config::StreamsConfig;
use crate::metrics::sensor::{SampleConfig, Sensor};
use crate::metrics::{RecordingLevel, Tags, CLIENT, NODE, STORE, TASK, THREAD};
use crate::sync::LockUnpoisoned;
use crate::task::Task;
use crate::TaskId;

use super::thread::ENDED_THREADS;
use super::{Shared, State};

/// RocksDB properties Kafka Streams publishes for each RocksDB store (`rocksdb.<name>`), all INFO.
const ROCKSDB_PROPERTIES: [&str; 22] = [
    "num-immutable-mem-table",
    "cur-size-active-mem-table",
    "cur-size-all-mem-tables",
    "size-all-mem-tables",
    "num-entries-active-mem-table",
    "num-entries-imm-mem-tables",
    "num-deletes-active-mem-table",
    "num-deletes-imm-mem-tables",
    "mem-table-flush-pending",
    "num-running-flushes",
    "compaction-pending",
    "num-running-compactions",
    "estimate-pending-compaction-bytes",
    "total-sst-files-size",
    "live-sst-files-size",
    "num-live-versions",
    "block-cache-capacity",
    "block-cache-usage",
    "block-cache-pinned-usage",
    "estimate-num-keys",
    "estimate-table-readers-mem",
    "background-errors",
];

/// What the thread published of one task.
struct TaskSensors {
    dropped: Counted,
    processed: Counted,
    enforced: Counted,
    restored: Counted,
    /// Each metered store's operations (`metrics.recording.level` DEBUG), by store and operation;
    /// latencies in nanoseconds, as Kafka Streams' store metrics.
    operations: BTreeMap<(String, &'static str), Sensor>,
}

impl TaskSensors {
    fn new(samples: SampleConfig) -> Self {
        TaskSensors {
            dropped: Counted::new(samples),
            processed: Counted::new(samples),
            enforced: Counted::new(samples),
            restored: Counted::new(samples),
            operations: BTreeMap::new(),
        }
    }
}

/// One stream thread's sensors.
pub(crate) struct ThreadSensors {
    level: RecordingLevel,
    samples: SampleConfig,
    thread: Tags,
    poll: Sensor,
    poll_records: Sensor,
    process: Sensor,
    process_latency: Sensor,
    process_records: Sensor,
    punctuate: Sensor,
    commit: Sensor,
    task_created: Sensor,
    task_closed: Sensor,
    tasks: BTreeMap<TaskId, TaskSensors>,
    /// Records processed in this loop iteration so far (process-records).
    processed_this_step: u64,
}

impl ThreadSensors {
    pub(crate) fn new(config: &StreamsConfig, thread: &str) -> Self {
        let samples = SampleConfig {
            window_ms: config.metrics_sample_window.as_millis().min(i64::MAX as u128) as i64,
            samples: config.metrics_num_samples,
        };
        let sensor = || Sensor::new(samples);
        ThreadSensors {
            level: config.metrics_recording_level,
            samples,
            thread: Tags::new(&[("thread-id", thread)]),
            poll: sensor(),
            poll_records: sensor(),
            process: sensor(),
            process_latency: sensor(),
            process_records: sensor(),
            punctuate: sensor(),
            commit: sensor(),
            task_created: sensor(),
            task_closed: sensor(),
            tasks: BTreeMap::new(),
            processed_this_step: 0,
        }
    }

    /// A poll that took `took` and returned `records`.
    pub(crate) fn polled(&mut self, took: Duration, records: usize, now_ms: i64) {
        self.poll.record(millis(took), now_ms);
        if records > 0 {
            self.poll_records.record(records as f64, now_ms);
        }
    }

    /// A processing pass over the tasks that took `took` and processed `records`.
    pub(crate) fn processed(&mut self, took: Duration, records: u64, now_ms: i64) {
        if records > 0 {
            self.process.record(records as f64, now_ms);
            self.process_latency.record(millis(took) / records as f64, now_ms);
            self.processed_this_step += records;
        }
    }

    /// The end of a loop iteration (process-records counts the iteration's records, 0 included).
    pub(crate) fn step_ended(&mut self, now_ms: i64) {
        self.process_records.record(std::mem::take(&mut self.processed_this_step) as f64, now_ms);
    }

    /// A punctuation pass that took `took` and fired `punctuated` tasks' punctuators.
    pub(crate) fn punctuated(&mut self, took: Duration, punctuated: usize, now_ms: i64) {
        if punctuated > 0 {
            self.punctuate.record(millis(took) / punctuated as f64, now_ms);
        }
    }

    /// A commit of `tasks` tasks that took `took`.
    pub(crate) fn committed(&mut self, took: Duration, tasks: usize, now_ms: i64) {
        if tasks > 0 {
            self.commit.record(millis(took) / tasks as f64, now_ms);
        }
    }

    pub(crate) fn task_created(&mut self, now_ms: i64) {
        self.task_created.record(1.0, now_ms);
    }

    /// Forgets what was published of task `id`, closed (published one last time first): if it opens
    /// again here, its counters start from zero and add to the same series.
    pub(crate) fn task_closed(&mut self, id: TaskId, now_ms: i64) {
        self.task_closed.record(1.0, now_ms);
        self.tasks.remove(&id);
    }

    /// Publishes the client's, this thread's and its tasks' (running or restoring) metrics.
    pub(crate) fn publish<'a>(&mut self, tasks: impl Iterator<Item = TaskFigures<'a>>, shared: &Shared, now_ms: i64) {
        publish_client(shared, self.level);
        let t = &self.thread;
        t.sensor(THREAD, "poll", &mut self.poll, false, Some("poll-latency"), now_ms);
        t.avg_max(THREAD, "poll-records", &mut self.poll_records, now_ms);
        t.sensor(THREAD, "process", &mut self.process, true, None, now_ms);
        t.avg_max(THREAD, "process-latency", &mut self.process_latency, now_ms);
        t.avg_max(THREAD, "process-records", &mut self.process_records, now_ms);
        t.sensor(THREAD, "punctuate", &mut self.punctuate, false, Some("punctuate-latency"), now_ms);
        t.sensor(THREAD, "commit", &mut self.commit, false, Some("commit-latency"), now_ms);
        t.sensor(THREAD, "task-created", &mut self.task_created, false, None, now_ms);
        t.sensor(THREAD, "task-closed", &mut self.task_closed, false, None, now_ms);
        for figures in tasks {
            self.publish_task(figures, now_ms);
        }
    }

    /// Publishes one task's metrics (every second, and as it closes: nothing it counted is lost).
    pub(crate) fn publish_task(&mut self, figures: TaskFigures<'_>, now_ms: i64) {
        let debug = self.level >= RecordingLevel::Debug;
        let TaskFigures { id, task, restore_remaining, enforced } = figures;
        let tags = self.thread.with("task-id", &id.to_string());
        let samples = self.samples;
        let sensors = self.tasks.entry(id).or_insert_with(|| TaskSensors::new(samples));
        tags.gauge(TASK, "restore-remaining-records-total", restore_remaining as f64);
        let counts = task.metrics();
        // As Kafka Streams' dropped-records: records skipped by the deserialization and processing
        // handlers too (a production error is counted by the thread, which sent the record).
        let dropped = counts.dropped_records + counts.skipped_records + counts.processing_errors;
        sensors.dropped.count(&tags, TASK, "dropped-records", dropped, now_ms);
        if debug {
            sensors.processed.count(&tags, TASK, "process", counts.processed_records, now_ms);
            sensors.enforced.count(&tags, TASK, "enforced-processing", enforced, now_ms);
            sensors.restored.count(&tags, TASK, "restore", task.restored_records(), now_ms);
        }
        for (node, e2e) in task.e2e_latencies() {
            let node_tags = tags.with("processor-node-id", node);
            node_tags.gauge(NODE, "record-e2e-latency-avg", e2e.avg(now_ms));
            node_tags.gauge(NODE, "record-e2e-latency-min", e2e.min(now_ms));
            node_tags.gauge(NODE, "record-e2e-latency-max", e2e.max(now_ms));
        }
        for (store, persistent, times) in task.store_operation_times() {
            // Kafka Streams' `<store scope>-state-id`.
            let scope = if persistent { "rocksdb-state-id" } else { "in-memory-state-id" };
            let store_tags = tags.with(scope, &store);
            for (operation, taken) in times.take() {
                let sensor =
                    sensors.operations.entry((store.clone(), operation)).or_insert_with(|| Sensor::new(samples));
                sensor.record_many(taken.count, taken.total_ns as f64, f64::NAN, taken.max_ns as f64, now_ms);
                store_tags.gauge(STORE, &format!("{operation}-rate"), sensor.rate_of_count(now_ms));
                store_tags.avg_max(STORE, &format!("{operation}-latency"), sensor, now_ms);
            }
        }
        for (store, properties) in task.rocksdb_properties(&ROCKSDB_PROPERTIES) {
            let store_tags = tags.with("rocksdb-state-id", store);
            for (property, value) in properties {
                store_tags.gauge(STORE, property, value as f64);
            }
        }
    }
}

/// A task's figures the thread keeps outside it.
pub(crate) struct TaskFigures<'a> {
    pub(crate) id: TaskId,
    pub(crate) task: &'a mut Task,
    /// Changelog offsets it has still to restore (0 once it runs).
    pub(crate) restore_remaining: u64,
    /// Times it went on without a partition (`max.task.idle.ms`), counted by its input queues.
    pub(crate) enforced: u64,
}

/// A count a task keeps (records dropped, processed, ...), published as `<name>-rate` and
/// `<name>-total` from its increments.
struct Counted {
    last: u64,
    sensor: Sensor,
}

impl Counted {
    fn new(samples: SampleConfig) -> Self {
        Counted { last: 0, sensor: Sensor::new(samples) }
    }

    fn count(&mut self, tags: &Tags, group: &str, name: &str, now: u64, now_ms: i64) {
        let added = now.saturating_sub(self.last);
        self.last = now;
        self.sensor.record(added as f64, now_ms);
        tags.gauge(group, &format!("{name}-rate"), self.sensor.rate_of_sum(now_ms));
        tags.add(group, &format!("{name}-total"), added);
    }
}

/// Publishes the client-level metrics of the instance `shared` belongs to (once it started): by each
/// stream thread every second, and as a thread ends.
pub(crate) fn publish_client(shared: &Shared, level: RecordingLevel) {
    let Some(tags) = shared.state.metrics_tags() else { return };
    let alive = shared.thread_metrics.lock_unpoisoned().keys().filter(|name| name.as_str() != ENDED_THREADS).count();
    tags.gauge(CLIENT, "alive-stream-threads", alive as f64);
    tags.gauge(CLIENT, "failed-stream-threads", shared.failed_threads.load(Ordering::SeqCst) as f64);
    tags.gauge(CLIENT, "client-state", state_ordinal(shared.state.get()));
    tags.gauge(CLIENT, "recording-level", level as u8 as f64);
}

/// Kafka Streams' `client-state` (KIP-1091): the ordinal of its `KafkaStreams.State`.
pub(crate) fn state_ordinal(state: State) -> f64 {
    match state {
        State::Created => 0.0,
        State::Rebalancing => 1.0,
        State::Running => 2.0,
        State::PendingShutdown => 3.0,
        State::NotRunning => 4.0,
        State::Error => 6.0,
    }
}

fn millis(took: Duration) -> f64 {
    took.as_secs_f64() * 1000.0
}
