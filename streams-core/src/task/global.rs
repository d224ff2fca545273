//! The global tasks (Kafka Streams' `GlobalStateUpdateTask`): one per global store's sub-topology (a
//! source and the processor that keeps the store), each fed every partition of its topic. They run on
//! the instance's global thread (or in the test driver) and their stores are read, under a lock, by the
//! joins of every other task: the only state shared between tasks.

use std::sync::{Arc, Mutex};

use super::{Task, TaskConfig};
use crate::processor::state::GlobalStores;
use crate::record::RawRecord;
use crate::store::ErasedStore;
use crate::sync::{lock_task, LockUnpoisoned};
use crate::timestamp::{AnyTimestampExtractor, ConsumedRecord};
use crate::topology::plan::TopologyPlan;
use crate::topology::Topology;
use crate::{StreamsError, TaskMetrics};

/// The partition of a global task's id (`<sub-topology>_-1`): it reads every partition.
pub(crate) const GLOBAL_PARTITION: i32 = -1;

/// One global task and the topics it reads.
struct GlobalTask {
    topics: Vec<String>,
    stores: Vec<String>,
    task: Mutex<Task>,
}

/// The global tasks of an instance.
pub(crate) struct GlobalTasks {
    tasks: Vec<GlobalTask>,
}

impl GlobalTasks {
    /// Opens a task for each global sub-topology of `plan`, with `config` (its `app_dir` decides where
    /// persistent stores live: `<app dir>/global`). The tasks keep no changelogs (a global store's topic
    /// is its log) and stamp each record with its own timestamp: the timestamp extractor is not used,
    /// as in Kafka Streams.
    pub(crate) fn open(topology: &Topology, plan: &TopologyPlan, config: &TaskConfig) -> Result<Self, StreamsError> {
        let mut config = config.clone();
        config.changelogs = false;
        config.globals = None;
        let own_timestamp =
            |record: &ConsumedRecord<'_, dyn std::any::Any, dyn std::any::Any>, _: i64| record.timestamp;
        let extractor: Arc<AnyTimestampExtractor> = Arc::new(own_timestamp);
        config.timestamp_extractor = extractor;
        let mut tasks = Vec::new();
        for sub in &plan.globals {
            let mut task = Task::new(topology, sub, GLOBAL_PARTITION, &config)?;
            task.init()?;
            let topics = task.source_topics().map(str::to_string).collect();
            let stores = sub.stores.iter().map(|&s| topology.stores[s].name.clone()).collect();
            tasks.push(GlobalTask { topics, stores, task: Mutex::new(task) });
        }
        Ok(GlobalTasks { tasks })
    }

    /// Whether the topology has no global store.
    pub(crate) fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Every topic the global tasks read.
    pub(crate) fn topics(&self) -> impl Iterator<Item = &str> {
        self.tasks.iter().flat_map(|t| t.topics.iter().map(String::as_str))
    }

    /// The global task that reads `topic`.
    fn reader(&self, topic: &str) -> Result<&GlobalTask, StreamsError> {
        let reader = self.tasks.iter().find(|t| t.topics.iter().any(|t| t == topic));
        reader.ok_or_else(|| StreamsError::Internal(format!("no global task reads `{topic}`")))
    }

    /// The store the task that reads `topic` keeps (for restore progress).
    pub(crate) fn store_of(&self, topic: &str) -> Option<&str> {
        self.reader(topic).ok()?.stores.first().map(String::as_str)
    }

    /// Whether some global store keeps its state on disk (then a checkpoint saves a bootstrap).
    pub(crate) fn persistent(&self) -> bool {
        self.tasks.iter().any(|t| t.task.lock_unpoisoned().state.stores.iter().any(|s| s.bytes().persistent()))
    }

    /// Runs `raw`, a record of a global topic, through the task that reads it.
    pub(crate) fn process(&self, raw: RawRecord) -> Result<(), StreamsError> {
        lock_task(&self.reader(&raw.topic)?.task).process(raw)
    }

    /// Runs `records`, all of one global topic, through the task that reads it, held once for them all.
    pub(crate) fn process_all(&self, records: &[RawRecord]) -> Result<(), StreamsError> {
        let Some(first) = records.first() else { return Ok(()) };
        let mut task = lock_task(&self.reader(&first.topic)?.task);
        records.iter().try_for_each(|record| task.process(record.clone()))
    }

    /// Flushes every global store (RocksDB memtables to files), before a checkpoint.
    pub(crate) fn flush(&self) -> Result<(), StreamsError> {
        self.tasks.iter().try_for_each(|t| lock_task(&t.task).flush())
    }

    /// Closes every global task.
    pub(crate) fn close(&self) {
        for global in &self.tasks {
            if let Err(error) = lock_task(&global.task).close() {
                tracing::warn!(target: "kstreams::task", stores = ?global.stores, %error, "error closing a global task");
            }
        }
    }

    /// The global tasks' counters, added up.
    pub(crate) fn metrics(&self) -> TaskMetrics {
        self.tasks.iter().map(|t| t.task.lock_unpoisoned().metrics()).sum()
    }
}

impl GlobalStores for GlobalTasks {
    fn with_store(
        &self,
        name: &str,
        read: &mut dyn FnMut(&mut (dyn ErasedStore + 'static)) -> Result<(), StreamsError>,
    ) -> Result<(), StreamsError> {
        let Some(global) = self.tasks.iter().find(|t| t.stores.iter().any(|s| s == name)) else {
            return Err(StreamsError::StoreAccess {
                node: "(global table lookup)".into(),
                store: name.to_string(),
                reason: "there is no global store of that name".into(),
            });
        };
        let mut task = lock_task(&global.task);
        let index = task
            .state
            .store_index(name)
            .ok_or_else(|| StreamsError::Internal(format!("global store `{name}` is not in its task")))?;
        read(&mut *task.state.stores[index])
    }
}
