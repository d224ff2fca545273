//! A task: one sub-topology's processors and stores for one input partition (`0_3`). The test driver and
//! the runtime both run records through [`Task`]; only where the records come from and where the output
//! goes differ. The nodes and the state they share belong to the processor layer
//! (`processor::state::TaskState`); the task adds what lies outside the graph: where records enter,
//! restore, commit, checkpoints, owner epochs and changelog records.

pub(crate) mod global;
pub(crate) mod owner_epoch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use state_store::Offsets;
use state_store::{ChangelogWriter, OffsetCheckpoint, RocksDbMemory};

use crate::client::{OffsetAndMetadata, TopicPartition};
use crate::config::DslStoreType;
use crate::handler::{DeserializationExceptionHandler, LogAndFail, ProcessingExceptionHandler};
use crate::metrics::sensor::{SampleConfig, Sensor};
use crate::processor::node::{OnePartition, PartitionCounts};
use crate::processor::offset_metadata;
use crate::processor::state::{guarded, keep_first, ChangelogBuffer, GlobalStores, TaskState};
use crate::processor::{AnyTimestampExtractor, FailOnInvalidTimestamp, PunctuationType};
use crate::record::{Headers, ProducedRecord, RawRecord};
use crate::store::metered::{OperationTimes, StoreMeters};
use crate::store::ErasedStore;
use crate::store::StoreContext;
use crate::sync::LockUnpoisoned;
use crate::time::Clock;
use crate::topology::{plan::SubtopologyPlan, NodeInit, TopicPattern, Topology};
use crate::{RecordMetadata, StreamsError, TaskId, TaskMetrics};
use state_store::CacheBudget;

pub use owner_epoch::OWNER_EPOCH_HEADER;

/// What a task is started with besides its topology.
#[derive(Clone)]
pub(crate) struct TaskConfig {
    pub(crate) application_id: Arc<str>,
    /// Whether stores with logging enabled write to their changelog topics (the runtime: yes; the test
    /// driver: no, it has no broker to restore from).
    pub(crate) changelogs: bool,
    pub(crate) clock: Clock,
    pub(crate) deserialization_handler: Arc<dyn DeserializationExceptionHandler>,
    pub(crate) processing_handler: Arc<dyn ProcessingExceptionHandler>,
    /// The timestamp extractor of sources without their own (`default.timestamp.extractor`).
    pub(crate) timestamp_extractor: Arc<AnyTimestampExtractor>,
    /// The application's directory (`<state.dir>/<application.id>`); each task keeps its files in
    /// `<app dir>/<task id>`. `None`: no local files (then persistent stores cannot be opened).
    pub(crate) app_dir: Option<PathBuf>,
    pub(crate) rocksdb: RocksDbMemory,
    pub(crate) dsl_store: DslStoreType,
    /// Whether stores hold each commit's writes apart until it succeeds (exactly-once, KIP-892).
    pub(crate) hold_writes_per_commit: bool,
    /// Whether changelog records carry the task's owner epoch (at_least_once, where nothing on the broker
    /// fences a former owner; see [`owner_epoch`]).
    pub(crate) stamp_owner_epoch: bool,
    /// The record cache budget shared by the thread's tasks (0: no caching).
    pub(crate) cache_budget: Arc<CacheBudget>,
    /// Partition counts for sinks with a partitioner (default: one partition per topic).
    pub(crate) partition_counts: Arc<dyn PartitionCounts>,
    /// How often, at most, an emit-final windowed aggregation looks for closed windows (wall-clock ms;
    /// the test driver: 0, as Kafka Streams' test driver).
    pub(crate) windowed_emit_interval_ms: i64,
    /// How often, at most, a stream-stream left or outer join looks for records whose window closed
    /// without a partner (wall-clock ms; the test driver: 0).
    pub(crate) outer_join_emit_interval_ms: i64,
    /// The instance's global stores, which any task's joins read.
    pub(crate) globals: Option<Arc<dyn GlobalStores>>,
    /// How the task samples the end-to-end latency of its source nodes (`metrics.*`).
    pub(crate) metric_samples: SampleConfig,
    /// Whether the task's stores time their operations (`metrics.recording.level` DEBUG or above).
    pub(crate) metered_stores: bool,
}

impl TaskConfig {
    pub(crate) fn new(application_id: &str, clock: Clock) -> Self {
        TaskConfig {
            application_id: application_id.into(),
            changelogs: false,
            clock,
            deserialization_handler: Arc::new(LogAndFail),
            processing_handler: Arc::new(LogAndFail),
            timestamp_extractor: Arc::new(FailOnInvalidTimestamp),
            app_dir: None,
            rocksdb: RocksDbMemory::default(),
            dsl_store: DslStoreType::InMemory,
            hold_writes_per_commit: false,
            stamp_owner_epoch: false,
            cache_budget: Arc::new(CacheBudget::new(0)),
            partition_counts: Arc::new(OnePartition),
            windowed_emit_interval_ms: 0,
            outer_join_emit_interval_ms: 0,
            globals: None,
            metric_samples: SampleConfig { window_ms: 30_000, samples: 2 },
            metered_stores: false,
        }
    }

    /// `<app dir>/<task id>`, where task `id` keeps its stores and checkpoint; `<app dir>/global` for
    /// the global tasks (partition -1), as in Kafka Streams.
    pub(crate) fn task_dir(&self, id: TaskId) -> Option<PathBuf> {
        let name = if id.partition == global::GLOBAL_PARTITION { "global".to_string() } else { id.to_string() };
        self.app_dir.as_ref().map(|dir| dir.join(name))
    }
}

/// A logged store of a task and the changelog partition it restores from.
#[derive(Debug, Clone)]
pub(crate) struct ChangelogStore {
    /// The store's name.
    pub(crate) store: String,
    /// `<application.id>-<store>-changelog`, the task's partition.
    pub(crate) partition: TopicPartition,
    /// Whether the store keeps its contents on disk (only those are checkpointed).
    pub(crate) persistent: bool,
}

/// One sub-topology instantiated for one partition.
pub(crate) struct Task {
    state: TaskState,
    /// Source topic → source node. A task reads a handful of topics: comparing a few short strings per
    /// record is cheaper than hashing one.
    sources: Vec<(Arc<str>, usize)>,
    /// Topic pattern → source node, for sources that read the topics a pattern matches; a topic found
    /// to match is added to `sources`.
    patterns: Vec<(TopicPattern, usize)>,
    initialized: bool,
    /// Each logged store and the changelog partition it restores from.
    changelogs: Vec<ChangelogStore>,
    /// Changelogs whose values all carry a header (the suppression buffers'): the topic and the header.
    changelog_value_headers: Vec<(Arc<str>, (&'static str, &'static [u8]))>,
    task_dir: Option<PathBuf>,
    /// The offset of the last changelog record each persistent logged store reflects, as far as known
    /// (restored up to, or written and acknowledged): what the next checkpoint records.
    changelog_offsets: BTreeMap<TopicPartition, i64>,
    /// What the last checkpoint written said, to tell when the next one is due.
    checkpointed: BTreeMap<TopicPartition, i64>,
    /// This ownership's epoch, one more than the highest its restored state had seen (see
    /// [`owner_epoch`]); `None` before a runtime opened the task.
    owner_epoch: Option<i32>,
    /// Whether changelog records carry `owner_epoch` (at_least_once).
    stamp_owner_epoch: bool,
    /// The stream time committed with the task's input offsets (see [`Task::take_committed_metadata`]).
    committed_stream_time: Option<i64>,
    /// The owner epoch last recorded beside the checkpoint.
    recorded_epoch: Option<i32>,
    /// The wall-clock time of the records being processed, when the runtime gives it (Kafka Streams
    /// takes it once per processing pass): each record's end-to-end latency at its source node is
    /// measured against it. The test driver gives none, and nothing is measured.
    wall_clock_ms: Option<i64>,
    /// Each source node's end-to-end latency (wall clock less record timestamp), by node index; the
    /// sampling of `metric_samples`.
    e2e: Vec<Option<Sensor>>,
    metric_samples: SampleConfig,
    /// The operation times of its metered stores (none unless `metered_stores`).
    meters: StoreMeters,
    /// Changelog records restored into its stores.
    restored_records: u64,
}

/// While running, a task writes a checkpoint (flushing its stores first) once its changelogs have moved
/// on by this many records since the last one; on close it always does. Kafka Streams' threshold.
pub(crate) const CHECKPOINT_EVERY_RECORDS: i64 = 10_000;

/// `<application.id>-<store>-changelog`, as Kafka Streams names it.
pub(crate) fn changelog_topic(application_id: &str, store: &str) -> String {
    format!("{application_id}-{store}-changelog")
}

/// Buffers a logged store's writes until the task moves them into its outbox.
struct BufferedChangelog {
    topic: Arc<str>,
    buffer: ChangelogBuffer,
}

impl ChangelogWriter for BufferedChangelog {
    fn log(&mut self, key: &[u8], value: Option<&[u8]>) {
        let mut buffer = self.buffer.lock_unpoisoned();
        let (key, value) = (crate::buffers::copy_of(key), value.map(crate::buffers::copy_of));
        buffer.push((self.topic.clone(), key, value));
    }
}

impl Task {
    pub(crate) fn new(
        topology: &Topology,
        plan: &SubtopologyPlan,
        partition: i32,
        config: &TaskConfig,
    ) -> Result<Task, StreamsError> {
        let id = TaskId { subtopology: plan.id, partition };
        let mut state = TaskState::new(
            id,
            config.application_id.clone(),
            config.clock.clone(),
            (config.deserialization_handler.clone(), config.processing_handler.clone()),
            config.cache_budget.clone(),
            config.partition_counts.clone(),
        );
        state.default_extractor = config.timestamp_extractor.clone();
        state.windowed_emit_interval_ms = config.windowed_emit_interval_ms;
        state.outer_join_emit_interval_ms = config.outer_join_emit_interval_ms;
        state.globals = config.globals.clone();
        let mut changelogs = Vec::new();
        let mut changelog_value_headers = Vec::new();
        let task_dir = config.task_dir(id);
        let meters = StoreMeters::default();
        for &g in &plan.stores {
            let def = &topology.stores[g];
            let ctx = StoreContext {
                application_id: &config.application_id,
                task_id: id,
                task_dir: task_dir.as_deref(),
                rocksdb: &config.rocksdb,
                dsl_store: config.dsl_store,
                hold_writes_per_commit: config.hold_writes_per_commit,
                cache: &config.cache_budget,
                meters: config.metered_stores.then_some(&meters),
            };
            let logged = config.changelogs && def.logging_enabled;
            let writer: Option<Box<dyn ChangelogWriter>> = if logged {
                let topic: Arc<str> = changelog_topic(&config.application_id, &def.name).into();
                Some(Box::new(BufferedChangelog { topic, buffer: state.changelog.clone() }))
            } else {
                None
            };
            let store = (def.factory)(&ctx, writer)?;
            if logged {
                let topic = changelog_topic(&config.application_id, &def.name);
                if let Some(header) = def.changelog_value_header {
                    changelog_value_headers.push((Arc::<str>::from(topic.as_str()), header));
                }
                changelogs.push(ChangelogStore {
                    store: def.name.clone(),
                    partition: TopicPartition::new(&topic, partition),
                    persistent: store.bytes().persistent(),
                });
            }
            state.add_store(store);
        }

        let mut sources = Vec::new();
        let mut patterns = Vec::new();
        for (l, &g) in plan.nodes.iter().enumerate() {
            let def = &topology.nodes[g];
            let init =
                NodeInit { index: l, children: plan.children[l].clone(), application_id: &config.application_id };
            state.add_node(&def.name, plan.node_stores[l].clone(), (def.factory)(&init));
            for topic in def.source_topics() {
                sources.push((Arc::<str>::from(topic.resolve(&config.application_id)), l));
            }
            if let Some(pattern) = def.source_pattern() {
                patterns.push((pattern.clone(), l));
            }
        }

        Ok(Task {
            state,
            sources,
            patterns,
            initialized: false,
            changelogs,
            changelog_value_headers,
            task_dir,
            changelog_offsets: BTreeMap::new(),
            checkpointed: BTreeMap::new(),
            owner_epoch: None,
            stamp_owner_epoch: config.stamp_owner_epoch,
            committed_stream_time: None,
            recorded_epoch: None,
            wall_clock_ms: None,
            e2e: Vec::new(),
            metric_samples: config.metric_samples,
            meters,
            restored_records: 0,
        })
    }

    /// The stores of sub-topology `plan` that log to a changelog, by name, before any task is opened: the
    /// runtime decides from these which local stores it can trust before it opens them.
    pub(crate) fn logged_stores(topology: &Topology, plan: &SubtopologyPlan, config: &TaskConfig) -> Vec<String> {
        if !config.changelogs {
            return Vec::new();
        }
        plan.stores.iter().map(|&g| &topology.stores[g]).filter(|d| d.logging_enabled).map(|d| d.name.clone()).collect()
    }

    /// The task's id.
    pub(crate) fn id(&self) -> TaskId {
        self.state.id
    }

    /// Whether a source of this task reads `topic` because its pattern matches it.
    pub(crate) fn reads_by_pattern(&self, topic: &str) -> bool {
        self.patterns.iter().any(|(p, _)| p.matches(topic))
    }

    /// The topics this task reads (internal ones with the application-id prefix).
    pub(crate) fn source_topics(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().map(|(t, _)| &**t)
    }

    /// Initializes every processor (stores are open already). Idempotent.
    pub(crate) fn init(&mut self) -> Result<(), StreamsError> {
        if self.initialized {
            return Ok(());
        }
        self.initialized = true;
        self.state.for_each_node(|node, state| node.lifecycle().init(state))
    }

    /// Processes one input record: its source deserializes it, extracts its timestamp and advances stream
    /// time, the sub-topology runs it, then any stream-time punctuation that came due fires (in that
    /// order, as Kafka Streams).
    pub(crate) fn process(&mut self, raw: RawRecord) -> Result<(), StreamsError> {
        self.init()?;
        // The consumer's name of the topic is kept once it matched, so that later records match by pointer.
        let mut found = self.sources.iter_mut().find(|(t, _)| *t == raw.topic).map(|(t, index)| {
            if !Arc::ptr_eq(t, &raw.topic) {
                *t = raw.topic.clone();
            }
            *index
        });
        if found.is_none() {
            found = self.patterns.iter().find(|(p, _)| p.matches(&raw.topic)).map(|&(_, index)| index);
            if let Some(index) = found {
                self.sources.push((raw.topic.clone(), index));
            }
        }
        let Some(index) = found else {
            return Err(StreamsError::Internal(format!(
                "task {} has no source for topic `{}`",
                self.state.id, raw.topic
            )));
        };
        // A record without a valid timestamp goes to the timestamp extractor, which may skip it.
        if let (Some(now), true) = (self.wall_clock_ms, raw.timestamp >= 0) {
            self.record_e2e_latency(index, now.saturating_sub(raw.timestamp), now);
        }
        self.state.current =
            Some(RecordMetadata { topic: raw.topic.clone(), partition: raw.partition, offset: raw.offset });
        self.state.source.set(&raw);
        let result = self.state.with_node(index, |node, state| {
            guarded(|| node.process_raw(state, raw)).unwrap_or_else(|panic| Err(state.panicked(index, panic)))
        });
        // A source fails only in a serde (unreadable records go to the deserialization handler first).
        let result = result.or_else(|error| self.state.processing_failed(index, error));
        self.state.current = None;
        self.state.source.clear(self.state.stream_time);
        result?;
        self.state.metrics.processed_records += 1;
        self.state.punctuate(PunctuationType::StreamTime, self.state.stream_time)?;
        Ok(())
    }

    /// The wall-clock time of the records processed next (see `wall_clock_ms`).
    pub(crate) fn set_wall_clock(&mut self, now_ms: i64) {
        self.wall_clock_ms = Some(now_ms);
    }

    fn record_e2e_latency(&mut self, node: usize, latency_ms: i64, now_ms: i64) {
        if self.e2e.len() <= node {
            self.e2e.resize(node + 1, None);
        }
        let samples = self.metric_samples;
        self.e2e[node].get_or_insert_with(|| Sensor::new(samples)).record(latency_ms as f64, now_ms);
    }

    /// Each source node that processed a record, by name, with its end-to-end latency sensor.
    pub(crate) fn e2e_latencies(&mut self) -> impl Iterator<Item = (&str, &mut Sensor)> {
        let names = &self.state.node_names;
        self.e2e.iter_mut().enumerate().filter_map(|(node, sensor)| Some((&*names[node], sensor.as_mut()?)))
    }

    /// Each metered store's operation times, by store name, with whether the store is persistent.
    pub(crate) fn store_operation_times(&self) -> Vec<(String, bool, Arc<OperationTimes>)> {
        let persistent =
            |name: &str| self.state.store_index(name).is_some_and(|i| self.state.stores[i].bytes().persistent());
        self.meters.stores().into_iter().map(|(name, times)| (name.clone(), persistent(&name), times)).collect()
    }

    /// Each RocksDB store's values of `properties` (RocksDB's `rocksdb.<property>`) that it has.
    pub(crate) fn rocksdb_properties(&self, properties: &[&'static str]) -> Vec<(&str, Vec<(&'static str, u64)>)> {
        self.state
            .stores
            .iter()
            .map(|store| store.bytes())
            .filter(|store| store.persistent())
            .map(|store| {
                let values =
                    properties.iter().filter_map(|p| Some((*p, store.property(&format!("rocksdb.{p}"))?))).collect();
                (store.name(), values)
            })
            .filter(|(_, values): &(&str, Vec<_>)| !values.is_empty())
            .collect()
    }

    /// Fires wall-clock punctuations that are due by the task's clock. Returns whether any fired.
    pub(crate) fn punctuate_wall_clock(&mut self) -> Result<bool, StreamsError> {
        self.init()?;
        let now = self.state.clock.now_ms();
        self.state.punctuate(PunctuationType::WallClockTime, now)
    }

    /// Takes the records the sinks wrote since the last call, in the order they were written.
    pub(crate) fn take_output(&mut self) -> Vec<ProducedRecord> {
        self.move_changelog_to_outbox();
        std::mem::take(&mut self.state.outbox)
    }

    /// Hands every record the sinks and stores wrote since the last call to `send`, in order, then keeps
    /// their buffers for the next records (no allocation per record on the hot path). Stops at the first
    /// error; the records after it are dropped, as when a thread fails.
    pub(crate) fn send_output<E>(&mut self, mut send: impl FnMut(&ProducedRecord) -> Result<(), E>) -> Result<(), E> {
        self.move_changelog_to_outbox();
        let mut outbox = std::mem::take(&mut self.state.outbox);
        let mut result = Ok(());
        for record in outbox.drain(..) {
            if result.is_ok() {
                result = send(&record);
            }
            crate::buffers::recycle(record.key);
            crate::buffers::recycle(record.value);
        }
        self.state.outbox = outbox;
        result
    }

    /// Changelog records go to the task's own partition of each changelog topic, stamped with stream time
    /// and, when it has one, the task's owner epoch.
    fn move_changelog_to_outbox(&mut self) {
        // Only logged stores write there: a task without one takes no lock per record.
        if self.changelogs.is_empty() {
            return;
        }
        let mut buffer = self.state.changelog.lock_unpoisoned();
        if buffer.is_empty() {
            return;
        }
        let (partition, timestamp) = (self.state.id.partition, self.state.stream_time.max(0));
        let stamp = self.owner_epoch.filter(|_| self.stamp_owner_epoch).map(owner_epoch::encode);
        for (topic, key, value) in buffer.drain(..) {
            let mut headers = Headers::new();
            if value.is_some()
                && let Some((_, (name, bytes))) = self.changelog_value_headers.iter().find(|(t, _)| *t == topic)
            {
                headers.add_static(name, Some(bytes.to_vec()));
            }
            if let Some(stamp) = &stamp {
                headers.add_static(OWNER_EPOCH_HEADER, Some(stamp.clone()));
            }
            self.state.outbox.push(ProducedRecord {
                topic,
                partition: Some(partition),
                key: Some(key),
                value,
                timestamp,
                headers,
            });
        }
    }

    /// What this task commits beside the offset of its input partition `tp`: the partition's time and
    /// the task's processor metadata, as Kafka Streams commits them.
    pub(crate) fn offset_metadata(&self, tp: &TopicPartition) -> String {
        let time = self.state.partition_time(&tp.topic, tp.partition);
        offset_metadata::encode(time, &self.state.processor_metadata)
    }

    /// Takes in the processor metadata committed with this task's partitions (the largest value of
    /// each key), before its stores are restored. What cannot be read is left out, with a warning. The
    /// partition times committed beside it are not restored (stream time starts again from the records,
    /// as in Kafka Streams), but the latest of them is the committed stream time of the task's window
    /// and session stores (see `StateStore::set_committed_stream_time`): what the changelogs and files
    /// hold beyond the commit is redone from the committed offsets on. With nothing committed every
    /// record is redone (-1); with a partition's metadata unreadable the time is not known.
    pub(crate) fn take_committed_metadata<'a>(
        &mut self,
        committed: impl IntoIterator<Item = (&'a TopicPartition, &'a OffsetAndMetadata)>,
    ) {
        let mut stream_time = Some(-1);
        for (tp, c) in committed {
            match offset_metadata::decode(&c.metadata) {
                Ok((time, entries)) => {
                    stream_time = stream_time.map(|t| t.max(time));
                    self.state.processor_metadata.merge(entries)
                }
                Err(reason) => {
                    stream_time = None;
                    tracing::warn!(
                        target: "kstreams::task",
                        task = %self.state.id,
                        partition = %tp,
                        %reason,
                        "the metadata committed with this partition's offset is not Kafka Streams'; ignoring it"
                    )
                }
            }
        }
        self.committed_stream_time = stream_time;
        self.tell_stores_committed_stream_time();
    }

    /// The offset of input partition `tp` was committed, with its partition time: the stores may let go
    /// of what expired at that time (see `StateStore::set_committed_stream_time`).
    pub(crate) fn input_committed(&mut self, tp: &TopicPartition) {
        let time = self.state.partition_time(&tp.topic, tp.partition);
        if self.committed_stream_time.is_none_or(|committed| time > committed) {
            self.committed_stream_time = Some(time);
            self.tell_stores_committed_stream_time();
        }
    }

    fn tell_stores_committed_stream_time(&mut self) {
        for store in &mut self.state.stores {
            store.bytes_mut().set_committed_stream_time(self.committed_stream_time);
        }
    }

    /// Starts this ownership after a restore whose state had seen owner epochs up to `restored`: its
    /// epoch is one more, so a later restore can tell its writes from a former owner's late ones.
    pub(crate) fn begin_ownership(&mut self, restored: Option<i32>) {
        self.owner_epoch = Some(restored.map_or(0, |e| e.saturating_add(1)));
    }

    /// Writes the current value of each of `keys` in store `store` to its changelog again (a delete for
    /// a key it does not hold): after a restore skipped a former owner's late write of these keys, so
    /// that the newest record of each key in the compacted changelog is this owner's.
    pub(crate) fn relog(&mut self, store: &str, keys: impl IntoIterator<Item = Vec<u8>>) -> Result<(), StreamsError> {
        let Some(changelog) = self.changelogs.iter().find(|c| c.store == store) else { return Ok(()) };
        let topic = changelog.partition.topic.clone();
        let mut rewrites = Vec::new();
        for key in keys {
            let value = self.get_raw(store, &key)?;
            rewrites.push((topic.clone(), key, value));
        }
        self.state.changelog.lock_unpoisoned().extend(rewrites);
        Ok(())
    }

    /// The logged stores of this task and the changelog partition each restores from.
    pub(crate) fn changelogs(&self) -> &[ChangelogStore] {
        &self.changelogs
    }

    fn store_index(&self, store: &str) -> Result<usize, StreamsError> {
        self.state
            .store_index(store)
            .ok_or_else(|| StreamsError::Internal(format!("task {} has no store `{store}`", self.state.id)))
    }

    /// Puts store `store` in (or out of) restore mode: bulk-loading settings while its changelog is replayed.
    pub(crate) fn set_restoring(&mut self, store: &str, restoring: bool) -> Result<(), StreamsError> {
        let index = self.store_index(store)?;
        match restoring {
            true => Ok(self.state.stores[index].bytes_mut().begin_restore()?),
            false => Ok(self.state.stores[index].bytes_mut().end_restore()?),
        }
    }

    /// Applies to store `store` the changelog records of `records` that `keep` admits, in order, below
    /// its logging layer and committed at once: a put, or a delete for a null value. Used to restore a
    /// task's state before it processes input.
    pub(crate) fn restore_batch_where(
        &mut self,
        store: &str,
        records: &[RawRecord],
        mut keep: impl FnMut(&RawRecord) -> bool,
    ) -> Result<(), StreamsError> {
        let index = self.store_index(store)?;
        let batch: Vec<(&[u8], Option<&[u8]>)> = records
            .iter()
            .filter(|r| keep(r))
            .map(|r| (r.key.as_deref().unwrap_or_default(), r.value.as_deref()))
            .collect();
        if batch.is_empty() {
            return Ok(());
        }
        self.state.stores[index].bytes_mut().restore_batch(&batch)?;
        self.restored_records += batch.len() as u64;
        Ok(())
    }

    /// Changelog records restored into the task's stores so far.
    pub(crate) fn restored_records(&self) -> u64 {
        self.restored_records
    }

    /// The stored bytes of `key` in store `store`, as its changelog carries them.
    pub(crate) fn get_raw(&self, store: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError> {
        Ok(self.state.stores[self.store_index(store)?].bytes().get(key)?)
    }

    /// The changelog offset the store logging to `partition` reflects, when known.
    pub(crate) fn changelog_offset(&self, partition: &TopicPartition) -> Option<i64> {
        self.changelog_offsets.get(partition).copied()
    }

    /// Records that the persistent store logging to `partition` reflects the changelog up to `offset`
    /// (never moves backwards).
    pub(crate) fn set_changelog_offset(&mut self, partition: &TopicPartition, offset: i64) {
        let known = self.changelog_offsets.entry(partition.clone()).or_insert(offset);
        *known = (*known).max(offset);
    }

    /// At commit, first: processors that hold records back (the DSL's record cache) write and forward
    /// them, and stores with a cache write it out. Their outputs and changelog records join the task's
    /// output, to be sent before the producer is flushed.
    pub(crate) fn flush_processors(&mut self) -> Result<(), StreamsError> {
        if !self.initialized {
            return Ok(());
        }
        self.state.for_each_node(|node, state| node.lifecycle().flush(state))?;
        // Then the stores' own caches (Processor-API stores built with caching): their writes reach
        // the changelog buffer now, to be sent before the commit that covers them.
        for store in &mut self.state.stores {
            store.bytes_mut().flush_cache()?;
        }
        Ok(())
    }

    /// Commits every store (at each commit, after the producer's part of it): held writes are applied.
    pub(crate) fn commit_stores(&mut self) -> Result<(), StreamsError> {
        for store in &mut self.state.stores {
            store.bytes_mut().commit()?;
        }
        Ok(())
    }

    /// Whether the changelogs moved on by [`CHECKPOINT_EVERY_RECORDS`] since the last checkpoint.
    pub(crate) fn checkpoint_due(&self) -> bool {
        let moved: i64 = self
            .changelog_offsets
            .iter()
            .map(|(tp, offset)| offset - self.checkpointed.get(tp).copied().unwrap_or(-1))
            .sum();
        moved >= CHECKPOINT_EVERY_RECORDS
    }

    /// Flushes every store: held writes are applied, files written. Before a checkpoint.
    pub(crate) fn flush(&mut self) -> Result<(), StreamsError> {
        for store in &mut self.state.stores {
            store.bytes_mut().flush()?;
        }
        Ok(())
    }

    /// Writes the task's checkpoint: for each persistent logged store, the changelog offset it reflects.
    /// Call after [`Task::flush`], so the checkpoint never claims more than the files hold.
    pub(crate) fn checkpoint(&mut self) -> Result<(), StreamsError> {
        self.checkpointed = self.changelog_offsets.clone();
        let Some(dir) = &self.task_dir else { return Ok(()) };
        let offsets: Offsets = self
            .changelogs
            .iter()
            .filter(|c| c.persistent)
            .filter_map(|c| {
                let offset = self.changelog_offsets.get(&c.partition)?;
                Some(((c.partition.topic.to_string(), c.partition.partition), *offset))
            })
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let failed = |message: String| StreamsError::State { task: self.state.id, message };
        // The epoch first: a checkpoint is never on disk without the epoch its state reached.
        if let Some(epoch) = self.owner_epoch.filter(|&e| self.recorded_epoch != Some(e)) {
            owner_epoch::write_recorded(dir, epoch)
                .map_err(|e| failed(format!("{}: {e}", dir.join(owner_epoch::FILE_NAME).display())))?;
            self.recorded_epoch = Some(epoch);
        }
        OffsetCheckpoint::in_dir(dir).write(&offsets).map_err(|e| failed(e.to_string()))
    }

    /// Checkpoints a restore cut short (the task closes before it runs): the stores are flushed, the
    /// owner epoch the restored part had seen is recorded, then the offsets restored, so that the next
    /// restore goes on from there with the same epoch fence.
    pub(crate) fn checkpoint_partial_restore(&mut self, highest_epoch: Option<i32>) -> Result<(), StreamsError> {
        self.flush()?;
        // Not an ownership: the task never ran. Its epoch is what the state reached, recorded as is.
        self.owner_epoch = highest_epoch;
        self.checkpoint()
    }

    /// Bytes of writes the stores hold until the next commit.
    pub(crate) fn uncommitted_bytes(&self) -> usize {
        self.state.stores.iter().map(|s| s.bytes().uncommitted_bytes()).sum()
    }

    /// Whether a processor asked for a commit since the last one.
    pub(crate) fn commit_requested(&self) -> bool {
        self.state.commit_requested
    }

    /// Forgets the request: the commit it asked for is done.
    pub(crate) fn clear_commit_request(&mut self) {
        self.state.commit_requested = false;
    }

    /// Closes the processors, then the stores: every one of them, even after one failed (a store left
    /// open would keep its files locked against the next owner); the first error.
    pub(crate) fn close(&mut self) -> Result<(), StreamsError> {
        let mut first = Ok(());
        if self.initialized {
            first = self.state.for_every_node(|node, state| node.lifecycle().close(state));
        }
        for store in &mut self.state.stores {
            let name = store.name().to_string();
            let closed = guarded(|| store.bytes_mut().close().map_err(StreamsError::from))
                .unwrap_or_else(|panic| Err(StreamsError::Internal(format!("closing the store `{name}`: it {panic}"))));
            keep_first(&mut first, closed);
        }
        first
    }

    /// The store called `name`, if this task has it as an `S` (a typed key-value or window store).
    pub(crate) fn store<S: 'static>(&mut self, name: &str) -> Option<&mut S> {
        let index = self.state.store_index(name)?;
        self.state.stores[index].downcast_mut::<S>()
    }

    /// The task's counters.
    pub(crate) fn metrics(&self) -> TaskMetrics {
        self.state.metrics
    }

    /// The store called `name`, untyped, to read (interactive queries).
    pub(crate) fn erased_store(&self, name: &str) -> Option<&dyn ErasedStore> {
        let index = self.state.store_index(name)?;
        Some(&*self.state.stores[index])
    }

    /// Whether the task holds a store called `name`.
    pub(crate) fn has_store(&self, name: &str) -> bool {
        self.state.store_index(name).is_some()
    }
}

#[cfg(test)]
mod tests;
