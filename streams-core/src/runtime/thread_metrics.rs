//! [`ThreadSensors`]: what a stream thread measures of itself and its tasks for Kafka Streams'
//! metrics, and how it publishes them (every second, from its loop; docs/operations.md lists them).
//!
//! As Kafka Streams records them: the thread's poll, process, punctuate and commit phases once per
//! loop iteration (process latency as the iteration's processing time over the records it
//! processed, commit latency over the tasks committed); task figures from the task's own counters;
//! end-to-end latency at the source nodes by the task (`Task::e2e_latencies`).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::StreamsConfig;
use crate::metrics::sensor::{SampleConfig, Sensor};
use crate::metrics::{RecordingLevel, Tags, CLIENT, NODE, STORE, TASK, THREAD};
use crate::task::Task;
use crate::{TaskId, TaskMetrics};

use super::State;

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

/// A task's counters as last published, and the sensors their increments feed.
struct TaskSensors {
    last: TaskMetrics,
    dropped: Sensor,
    processed: Sensor,
    enforced: Sensor,
}

/// One stream thread's sensors.
pub(crate) struct ThreadSensors {
    level: RecordingLevel,
    samples: SampleConfig,
    thread: Tags,
    client: Tags,
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
    pub(crate) fn new(config: &StreamsConfig, thread: &str, client: &str) -> Self {
        let samples = SampleConfig {
            window_ms: config.metrics_sample_window.as_millis().min(i64::MAX as u128) as i64,
            samples: config.metrics_num_samples,
        };
        let sensor = || Sensor::new(samples);
        ThreadSensors {
            level: config.metrics_recording_level,
            samples,
            thread: Tags::new(&[("thread-id", thread)]),
            client: Tags::new(&[("client-id", client)]),
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

    pub(crate) fn task_closed(&mut self, now_ms: i64) {
        self.task_closed.record(1.0, now_ms);
    }

    /// Publishes the client's, this thread's and its tasks' metrics.
    pub(crate) fn publish<'a>(
        &mut self,
        tasks: impl Iterator<Item = (&'a TaskId, &'a mut Task)>,
        client: ClientFigures,
        now_ms: i64,
    ) {
        self.client.gauge(CLIENT, "alive-stream-threads", client.alive_threads as f64);
        self.client.total(CLIENT, "failed-stream-threads", client.failed_threads);
        self.client.gauge(CLIENT, "client-state", state_ordinal(client.state));
        self.client.gauge(CLIENT, "recording-level", self.level as u8 as f64);
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
        let mut seen = Vec::new();
        for (id, task) in tasks {
            seen.push(*id);
            let task_tags = self.thread.with("task-id", &id.to_string());
            let samples = self.samples;
            let sensors = self.tasks.entry(*id).or_insert_with(|| TaskSensors {
                last: TaskMetrics::default(),
                dropped: Sensor::new(samples),
                processed: Sensor::new(samples),
                enforced: Sensor::new(samples),
            });
            let counts = task.metrics();
            sensors.dropped.record(counts.dropped_records.saturating_sub(sensors.last.dropped_records) as f64, now_ms);
            task_tags.gauge(TASK, "dropped-records-rate", sensors.dropped.rate_of_sum(now_ms));
            task_tags.total(TASK, "dropped-records-total", counts.dropped_records);
            if self.level >= RecordingLevel::Debug {
                let processed = counts.processed_records.saturating_sub(sensors.last.processed_records);
                sensors.processed.record(processed as f64, now_ms);
                task_tags.gauge(TASK, "process-rate", sensors.processed.rate_of_sum(now_ms));
                task_tags.total(TASK, "process-total", counts.processed_records);
                let enforced = counts.enforced_processing.saturating_sub(sensors.last.enforced_processing);
                sensors.enforced.record(enforced as f64, now_ms);
                task_tags.gauge(TASK, "enforced-processing-rate", sensors.enforced.rate_of_sum(now_ms));
                task_tags.total(TASK, "enforced-processing-total", counts.enforced_processing);
            }
            sensors.last = counts;
            for (node, e2e) in task.e2e_latencies() {
                let node_tags = task_tags.with("processor-node-id", node);
                node_tags.gauge(NODE, "record-e2e-latency-avg", e2e.avg(now_ms));
                node_tags.gauge(NODE, "record-e2e-latency-min", e2e.min(now_ms));
                node_tags.gauge(NODE, "record-e2e-latency-max", e2e.max(now_ms));
            }
            for (store, properties) in task.rocksdb_properties(&ROCKSDB_PROPERTIES) {
                let store_tags = task_tags.with("rocksdb-state-id", store);
                for (property, value) in properties {
                    store_tags.gauge(STORE, property, value as f64);
                }
            }
        }
        self.tasks.retain(|id, _| seen.contains(id));
    }
}

/// What the client-level metrics show, as the thread sees the instance.
pub(crate) struct ClientFigures {
    pub(crate) state: State,
    pub(crate) alive_threads: usize,
    pub(crate) failed_threads: u64,
}

/// Kafka Streams' `client-state` (KIP-1091): the ordinal of its `KafkaStreams.State`.
fn state_ordinal(state: State) -> f64 {
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
