//! The state of a running task that its nodes share: the nodes themselves, the stores, stream time, the
//! punctuation schedules and the records written for the producer. A [`ProcessorContext`](super::ProcessorContext)
//! is a window on it; the task (`crate::task`) owns it and adds what lies outside the graph: restore,
//! commit, checkpoints.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use state_store::CacheBudget;

use super::node::{ErasedNode, PartitionCounts, TypedNode};
use super::{Punctuation, PunctuationId, PunctuationType};
use crate::error::Panicked;
use crate::handler::{DeserializationExceptionHandler, ErrorContext, ProcessingExceptionHandler, ProcessingResponse};
use crate::record::{Headers, ProducedRecord};
use crate::store::ErasedStore;
use crate::time::Clock;
use crate::timestamp::{AnyTimestampExtractor, FailOnInvalidTimestamp};
use crate::{Record, RecordMetadata, StreamsError, TaskId, TaskMetrics};

/// Writes of a task's logged stores since the task last drained them: (changelog topic, key, value).
pub(crate) type ChangelogBuffer = Arc<Mutex<Vec<(Arc<str>, Vec<u8>, Option<Vec<u8>>)>>>;

struct Schedule {
    node: usize,
    id: PunctuationId,
    kind: PunctuationType,
    interval: i64,
    next: i64,
    cancelled: bool,
}

/// The global stores of an instance (or a test driver), kept by its global tasks and read by every
/// task: a processor reaches one through [`TaskState::globals`] without being connected to it.
pub(crate) trait GlobalStores: Send + Sync {
    /// Runs `read` on the global store `name` while its global task is held still; an error naming
    /// the store when there is no such global store.
    fn with_store(
        &self,
        name: &str,
        read: &mut dyn FnMut(&mut (dyn ErasedStore + 'static)) -> Result<(), StreamsError>,
    ) -> Result<(), StreamsError>;
}

/// Everything a running processor can reach through its context. Nodes are taken out of `nodes` while
/// they run, so a node and the rest of the task can be borrowed at once; a node found missing means the
/// graph looped back into a running node.
pub(crate) struct TaskState {
    pub(crate) id: TaskId,
    pub(crate) application_id: Arc<str>,
    nodes: Vec<Option<Box<dyn ErasedNode>>>,
    pub(crate) node_names: Vec<Arc<str>>,
    node_stores: Vec<Vec<usize>>,
    pub(crate) stores: Vec<Box<dyn ErasedStore>>,
    store_names: HashMap<String, usize>,
    pub(crate) current: Option<RecordMetadata>,
    /// The highest timestamp extracted from any input record, -1 before the first.
    pub(crate) stream_time: i64,
    /// The highest timestamp extracted from each partition the task read: (topic, partition, time). A
    /// task reads a handful of partitions, so a scan beats a hash.
    partition_times: Vec<(Arc<str>, i32, i64)>,
    /// The extractor of sources without one of their own (`default.timestamp.extractor`).
    pub(crate) default_extractor: Arc<AnyTimestampExtractor>,
    pub(crate) clock: Clock,
    schedules: Vec<Schedule>,
    next_schedule: u64,
    pub(crate) outbox: Vec<ProducedRecord>,
    /// Writes of logged stores since the last drain.
    pub(crate) changelog: ChangelogBuffer,
    pub(crate) metrics: TaskMetrics,
    pub(crate) deserialization_handler: Arc<dyn DeserializationExceptionHandler>,
    pub(crate) processing_handler: Arc<dyn ProcessingExceptionHandler>,
    /// The record being processed as read, when the processing handler needs it (a dead letter is made
    /// of it); else only its timestamp.
    pub(crate) source: SourceRecord,
    pub(crate) cache_budget: Arc<CacheBudget>,
    /// See `TaskConfig::windowed_emit_interval_ms`.
    pub(crate) windowed_emit_interval_ms: i64,
    /// See `TaskConfig::outer_join_emit_interval_ms`.
    pub(crate) outer_join_emit_interval_ms: i64,
    /// Named values processors commit with the task's offsets and read back when it reopens (an
    /// emit-final aggregation's last emitted close time).
    pub(crate) processor_metadata: super::offset_metadata::ProcessorMetadata,
    /// Partition counts of the topics sinks with a partitioner write.
    pub(crate) partition_counts: Arc<dyn PartitionCounts>,
    /// The instance's global stores, for a join with a global table; `None` in a global task.
    pub(crate) globals: Option<Arc<dyn GlobalStores>>,
    /// A processor asked for a commit ([`ProcessingContext::commit`](crate::processor::ProcessingContext::commit)).
    pub(crate) commit_requested: bool,
    /// What several nodes of the task share, by name: see [`TaskState::shared`].
    shared: HashMap<String, Arc<dyn std::any::Any + Send + Sync>>,
}

/// The source record of what runs now, for the processing exception handler: its timestamp always, its
/// raw key, value and headers when the handler asked for them.
#[derive(Default)]
pub(crate) struct SourceRecord {
    pub(crate) keep_bytes: bool,
    /// Whether a source record is being processed (not a punctuation, not a commit's cache flush).
    present: bool,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Headers,
}

impl SourceRecord {
    /// `raw` is processed now (its bytes are copied only when they are kept).
    pub(crate) fn set(&mut self, raw: &crate::record::RawRecord) {
        self.present = true;
        self.timestamp = raw.timestamp;
        if self.keep_bytes {
            self.key.clone_from(&raw.key);
            self.value.clone_from(&raw.value);
            self.headers.clone_from(&raw.headers);
        }
    }

    /// No source record: a punctuation at `timestamp`, or records a commit forwards from a cache (at
    /// stream time), whose input records are long gone.
    pub(crate) fn clear(&mut self, timestamp: i64) {
        self.present = false;
        self.timestamp = timestamp;
    }
}

impl TaskState {
    /// The state of task `id`, without nodes or stores yet: the task adds its stores first (their
    /// changelog writers write to [`changelog`](Self::changelog)), then its nodes, parents first.
    pub(crate) fn new(
        id: TaskId,
        application_id: Arc<str>,
        clock: Clock,
        handlers: (Arc<dyn DeserializationExceptionHandler>, Arc<dyn ProcessingExceptionHandler>),
        cache_budget: Arc<CacheBudget>,
        partition_counts: Arc<dyn PartitionCounts>,
    ) -> Self {
        let (deserialization_handler, processing_handler) = handlers;
        let source = SourceRecord { keep_bytes: processing_handler.needs_source_record(), ..Default::default() };
        TaskState {
            id,
            application_id,
            nodes: Vec::new(),
            node_names: Vec::new(),
            node_stores: Vec::new(),
            stores: Vec::new(),
            store_names: HashMap::new(),
            current: None,
            stream_time: -1,
            partition_times: Vec::new(),
            default_extractor: Arc::new(FailOnInvalidTimestamp),
            clock,
            schedules: Vec::new(),
            next_schedule: 0,
            outbox: Vec::new(),
            changelog: ChangelogBuffer::default(),
            metrics: TaskMetrics::default(),
            deserialization_handler,
            processing_handler,
            source,
            cache_budget,
            windowed_emit_interval_ms: 0,
            outer_join_emit_interval_ms: 0,
            processor_metadata: Default::default(),
            partition_counts,
            commit_requested: false,
            shared: HashMap::new(),
            globals: None,
        }
    }

    /// Whether more than one of the task's nodes reach the store `name`: a cogroup's aggregation nodes,
    /// or a table's processor and a join that looks the table up. They share its record cache.
    pub(crate) fn store_shared(&self, name: &str) -> bool {
        let Some(&index) = self.store_names.get(name) else { return false };
        self.node_stores.iter().filter(|stores| stores.contains(&index)).count() > 1
    }

    /// The value shared under `name` by the task's nodes: made by `make` for the first node that asks
    /// (the record cache of a store that a cogroup's nodes all write). An error if an earlier node
    /// shared something of another type under that name.
    pub(crate) fn shared<T: Send + Sync + 'static>(
        &mut self,
        name: &str,
        make: impl FnOnce() -> T,
    ) -> Result<Arc<T>, StreamsError> {
        let value = self.shared.entry(name.to_string()).or_insert_with(|| Arc::new(make())).clone();
        value.downcast::<T>().map_err(|_| StreamsError::Internal(format!("`{name}` is shared with another type")))
    }

    /// The time of partition `partition` of `topic`: the highest timestamp extracted from it, -1 before
    /// the first (what `UsePartitionTimeOnInvalidTimestamp` falls back on).
    pub(crate) fn partition_time(&self, topic: &Arc<str>, partition: i32) -> i64 {
        self.partition_index(topic, partition).map_or(-1, |i| self.partition_times[i].2)
    }

    /// A record of partition `partition` of `topic` was given `timestamp` (not negative): it is the
    /// record's time from now on, and the partition's time and stream time move up to it.
    pub(crate) fn advance_time(&mut self, topic: &Arc<str>, partition: i32, timestamp: i64) {
        self.stream_time = self.stream_time.max(timestamp);
        self.source.timestamp = timestamp;
        match self.partition_index(topic, partition) {
            Some(i) => self.partition_times[i].2 = self.partition_times[i].2.max(timestamp),
            None => self.partition_times.push((topic.clone(), partition, timestamp)),
        }
    }

    fn partition_index(&self, topic: &Arc<str>, partition: i32) -> Option<usize> {
        self.partition_times.iter().position(|(t, p, _)| *p == partition && (Arc::ptr_eq(t, topic) || t == topic))
    }

    pub(crate) fn add_store(&mut self, store: Box<dyn ErasedStore>) {
        self.store_names.insert(store.name().to_string(), self.stores.len());
        self.stores.push(store);
    }

    /// Adds the next node, connected to `stores` (indices of stores added before).
    pub(crate) fn add_node(&mut self, name: &str, stores: Vec<usize>, node: Box<dyn ErasedNode>) {
        self.node_names.push(name.into());
        self.node_stores.push(stores);
        self.nodes.push(Some(node));
    }

    /// The index of store `name`.
    pub(crate) fn store_index(&self, name: &str) -> Option<usize> {
        self.store_names.get(name).copied()
    }

    /// Runs `run` on node `index` with the rest of the state.
    pub(crate) fn with_node(
        &mut self,
        index: usize,
        run: impl FnOnce(&mut Box<dyn ErasedNode>, &mut TaskState) -> Result<(), StreamsError>,
    ) -> Result<(), StreamsError> {
        let Some(mut node) = self.nodes[index].take() else {
            return Err(StreamsError::Internal(format!("node `{}` is missing", self.node_names[index])));
        };
        let result = run(&mut node, self);
        self.nodes[index] = Some(node);
        result
    }

    /// Runs `run` on every node, parents first (init, flush, close).
    pub(crate) fn for_each_node(
        &mut self,
        mut run: impl FnMut(&mut Box<dyn ErasedNode>, &mut TaskState) -> Result<(), StreamsError>,
    ) -> Result<(), StreamsError> {
        for index in 0..self.nodes.len() {
            self.with_node(index, |node, state| {
                guarded(|| run(node, state)).unwrap_or_else(|panic| Err(state.panicked(index, panic)))
            })?;
        }
        Ok(())
    }

    /// Runs `run` at every node, even after one failed (closing: each node gets its chance to let go of
    /// what it holds); the first error, the others logged.
    pub(crate) fn for_every_node(
        &mut self,
        mut run: impl FnMut(&mut Box<dyn ErasedNode>, &mut TaskState) -> Result<(), StreamsError>,
    ) -> Result<(), StreamsError> {
        let mut first = Ok(());
        for index in 0..self.nodes.len() {
            let result = self.with_node(index, |node, state| {
                guarded(|| run(node, state)).unwrap_or_else(|panic| Err(state.panicked(index, panic)))
            });
            keep_first(&mut first, result);
        }
        first
    }

    /// Fires the punctuations of `kind` that are due at `now`. Returns whether any fired.
    pub(crate) fn punctuate(&mut self, kind: PunctuationType, now: i64) -> Result<bool, StreamsError> {
        if kind == PunctuationType::StreamTime && now < 0 {
            return Ok(false);
        }
        let mut fired = false;
        // Index loop: a punctuation may add schedules; they are considered from the next check on.
        let due = self.schedules.len();
        for i in 0..due {
            let s = &mut self.schedules[i];
            if s.cancelled || s.kind != kind || s.next > now {
                continue;
            }
            // At most one punctuation per check; intervals jumped over are skipped (Kafka Streams'
            // PunctuationSchedule.next).
            let mut next = s.next + s.interval;
            if now >= next {
                next = s.next + ((now - s.next) / s.interval + 1) * s.interval;
            }
            s.next = next;
            let (node, punctuation) = (s.node, Punctuation { id: s.id, kind, timestamp: now });
            self.metrics.punctuations += 1;
            fired = true;
            let current = self.current.take();
            self.source.clear(now);
            let result = self.with_node(node, |n, state| {
                guarded(|| n.lifecycle().punctuate(state, punctuation))
                    .unwrap_or_else(|panic| Err(state.panicked(node, panic)))
            });
            self.current = current;
            if let Err(error) = result {
                self.processing_failed(node, error)?;
            }
        }
        self.schedules.retain(|s| !s.cancelled);
        Ok(fired)
    }

    pub(crate) fn schedule(&mut self, node: usize, interval: i64, kind: PunctuationType) -> PunctuationId {
        let id = PunctuationId(self.next_schedule);
        self.next_schedule += 1;
        // Kafka Streams: stream-time schedules are aligned to 0 and fire as soon as there is data;
        // wall-clock schedules fire one interval from now.
        let next = match kind {
            PunctuationType::StreamTime => 0,
            PunctuationType::WallClockTime => self.clock.now_ms() + interval,
        };
        self.schedules.push(Schedule { node, id, kind, interval, next, cancelled: false });
        id
    }

    pub(crate) fn cancel_schedule(&mut self, node: usize, id: PunctuationId) {
        for s in self.schedules.iter_mut().filter(|s| s.node == node && s.id == id) {
            s.cancelled = true;
        }
    }

    /// Asks the processing exception handler about `error`, which came out of node `index`: fail (the
    /// error, wrapped to name the node and record, so that no node above asks again), or count the
    /// record as dropped here, produce what the handler gave, and go on. A panic in the handler fails.
    #[cold]
    #[inline(never)]
    pub(crate) fn processing_failed(&mut self, index: usize, error: StreamsError) -> Result<(), StreamsError> {
        if !error.is_processing_error() {
            return Err(error);
        }
        let node = self.node_names[index].clone();
        let (empty, source) = (Headers::new(), &self.source);
        let bytes = source.present && source.keep_bytes;
        let context = ErrorContext {
            node: &node,
            task: self.id,
            source: self.current.as_ref(),
            timestamp: source.timestamp,
            headers: if bytes { &source.headers } else { &empty },
            source_key: source.key.as_deref().filter(|_| bytes),
            source_value: source.value.as_deref().filter(|_| bytes),
        };
        let handler = self.processing_handler.clone();
        let response = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.handle(&context, &error)))
            .unwrap_or_else(|payload| {
                let panic = Panicked::from_payload(&*payload);
                tracing::error!(target: "kstreams::handler", node = %node, error = %panic, "the processing exception handler panicked; failing the task");
                ProcessingResponse::Fail
            });
        match response {
            ProcessingResponse::Fail => Err(StreamsError::ProcessingFailed {
                node: node.to_string(),
                task: self.id,
                source_record: self.current.clone(),
                source: Box::new(error),
            }),
            ProcessingResponse::Continue(records) => {
                self.metrics.processing_errors += 1;
                self.outbox.extend(records);
                Ok(())
            }
        }
    }

    pub(crate) fn store_index_for(&self, node: usize, name: &str) -> Result<usize, StreamsError> {
        let access = |reason: &str| StreamsError::StoreAccess {
            node: self.node_names[node].to_string(),
            store: name.to_string(),
            reason: reason.to_string(),
        };
        let index = *self.store_names.get(name).ok_or_else(|| access("no store of that name in this task"))?;
        if !self.node_stores[node].contains(&index) {
            return Err(access("the processor is not connected to it; connect it when adding the store"));
        }
        Ok(index)
    }
}

/// Delivers `record` to node `index`, which must take `(K, V)`.
pub(crate) fn deliver<K: 'static, V: 'static>(
    task: &mut TaskState,
    index: usize,
    record: Record<K, V>,
) -> Result<(), StreamsError> {
    let Some(mut node) = task.nodes[index].take() else {
        return Err(StreamsError::Internal(format!("node `{}` was re-entered while running", task.node_names[index])));
    };
    let result = match node.as_any_mut().downcast_mut::<Box<dyn TypedNode<K, V>>>() {
        Some(typed) => guarded(|| typed.process(task, record)).unwrap_or_else(|panic| Err(task.panicked(index, panic))),
        None => Err(StreamsError::Internal(format!(
            "node `{}` does not take ({}, {})",
            task.node_names[index],
            std::any::type_name::<K>(),
            std::any::type_name::<V>()
        ))),
    };
    task.nodes[index] = Some(node);
    match result {
        Ok(()) => Ok(()),
        Err(error) => task.processing_failed(index, error),
    }
}

/// Runs a node's code, catching a panic in it: user code that panics is handled like user code that
/// returns an error (the caller names the node), and never unwinds through the task or the stream thread.
pub(crate) fn guarded(run: impl FnOnce() -> Result<(), StreamsError>) -> Result<Result<(), StreamsError>, Panicked> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).map_err(|payload| Panicked::from_payload(&*payload))
}

impl TaskState {
    /// The error of node `index` that panicked.
    #[cold]
    #[inline(never)]
    pub(crate) fn panicked(&self, index: usize, panic: Panicked) -> StreamsError {
        StreamsError::Processor { node: self.node_names[index].to_string(), source: Box::new(panic) }
    }
}

/// Delivers `record` to every child in turn, depth first; the last child gets it without a clone.
pub(crate) fn forward<K: Clone + 'static, V: Clone + 'static>(
    task: &mut TaskState,
    children: &[usize],
    record: Record<K, V>,
) -> Result<(), StreamsError> {
    match children.split_last() {
        None => Ok(()),
        Some((&last, rest)) => {
            for &child in rest {
                deliver(task, child, record.clone())?;
            }
            deliver(task, last, record)
        }
    }
}

/// Keeps the first error of a series that goes on after errors, logging the later ones.
pub(crate) fn keep_first(first: &mut Result<(), StreamsError>, result: Result<(), StreamsError>) {
    if let Err(error) = result {
        match first {
            Ok(()) => *first = Err(error),
            Err(_) => tracing::warn!(target: "kstreams::task", %error, "a further error while closing"),
        }
    }
}
