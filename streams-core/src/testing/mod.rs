//! The test driver (Kafka Streams' `TopologyTestDriver`): runs a topology in the calling thread with no
//! broker. Pipe typed records into input topics, read typed records from output topics, look into state
//! stores, and move wall-clock time by hand.
//!
//! It runs exactly the tasks, processors and stores the runtime runs; only the transport differs. Every
//! sub-topology gets one task (partition 0). Records a sink writes to a topic that the topology also
//! reads (a repartition topic, or a user topic read further on) are fed back in, first in first out, until
//! nothing is left, before `pipe` returns.
//!
//! ```
//! use streams_core::dsl::StreamsBuilder;
//! use streams_core::testing::TopologyTestDriver;
//!
//! let builder = StreamsBuilder::new();
//! builder.stream::<String, String>("words").select_key(|_, w| w.clone()).group_by_key().count().to_stream().to("counts");
//! let mut driver = TopologyTestDriver::new(builder.build()?)?;
//! let words = driver.input_topic::<String, String>("words");
//! let counts = driver.output_topic::<String, Option<i64>>("counts");
//! for w in ["a", "b", "a"] {
//!     driver.pipe(&words, String::new(), w.to_string(), 0)?;
//! }
//! assert_eq!(driver.read_key_values(&counts), vec![
//!     ("a".to_string(), Some(1)), ("b".to_string(), Some(1)), ("a".to_string(), Some(2)),
//! ]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod topics;

pub use topics::BrokerTopics;

use std::collections::{HashMap, VecDeque};

use std::sync::Arc;
use std::time::Duration;

use state_store::CacheBudget;

use crate::config::DslStoreType;
use crate::handler::{DeserializationExceptionHandler, LogAndFail, ProcessingExceptionHandler};
use crate::processor::state::GlobalStores;
use crate::processor::{AnyTimestampExtractor, FailOnInvalidTimestamp};
use crate::record::RecordPart;
use crate::record::{Headers, ProducedRecord, RawRecord};
use crate::serde::{from_bytes, to_bytes, DefaultSerde, Serde, SerdeError};
use crate::store::{
    ErasedStore, SessionStore, TypedKeyValueStore, ValueAndTimestamp, VersionedKeyValueStore, WindowStore,
};
use crate::task::global::GlobalTasks;
use crate::task::{Task, TaskConfig};
use crate::time::Clock;
use crate::topology::{plan, Topology};
use crate::{Record, StreamsError, TaskMetrics};

/// Settings for a [`TopologyTestDriver`].
#[derive(Clone)]
pub struct TestDriverConfig {
    /// The application id (prefix of internal topics). Default `test-driver`.
    pub application_id: String,
    /// Where the manual wall clock starts, in ms. Default 0.
    pub wall_clock_start_ms: i64,
    /// What to do with records that cannot be deserialized. Default: fail.
    pub deserialization_handler: Arc<dyn DeserializationExceptionHandler>,
    /// What to do when user code fails on a record. Default: fail (`pipe_input` returns the error).
    pub processing_handler: Arc<dyn ProcessingExceptionHandler>,
    /// The timestamp extractor of sources without their own (`default.timestamp.extractor`). Default:
    /// [`FailOnInvalidTimestamp`].
    pub default_timestamp_extractor: Arc<AnyTimestampExtractor>,
    /// The store the DSL uses when the topology chose none. Default: in memory, so tests need no files
    /// (Kafka Streams' driver uses RocksDB here; set [`DslStoreType::RocksDb`] to do the same).
    pub default_dsl_store: DslStoreType,
    /// The record cache's budget (`statestore.cache.max.bytes`). Default 0: no cache, every update of an
    /// aggregation goes downstream at once. Above 0, the driver commits after each record it pipes and
    /// after each wall-clock advance, as Kafka Streams' driver does, so what a cache holds goes downstream
    /// then: one update per key and window for the record, and a session's tombstone and update collapse
    /// into one.
    pub cache_max_bytes: usize,
}

impl Default for TestDriverConfig {
    fn default() -> Self {
        TestDriverConfig {
            application_id: "test-driver".to_string(),
            wall_clock_start_ms: 0,
            deserialization_handler: Arc::new(LogAndFail),
            processing_handler: Arc::new(LogAndFail),
            default_timestamp_extractor: Arc::new(FailOnInvalidTimestamp),
            default_dsl_store: DslStoreType::InMemory,
            cache_max_bytes: 0,
        }
    }
}

/// A typed handle on an input topic: its name and serdes.
pub struct TestInputTopic<K, V> {
    topic: Arc<str>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
}

/// A typed handle on an output topic: its name and serdes.
pub struct TestOutputTopic<K, V> {
    topic: String,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
}

/// A record read from an output topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRecord<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// The timestamp.
    pub timestamp: i64,
    /// The headers.
    pub headers: Headers,
    /// The partition a custom partitioner chose, if any.
    pub partition: Option<i32>,
}

/// Runs a topology without a broker. See the [module docs](self).
pub struct TopologyTestDriver {
    tasks: Vec<Task>,
    /// The global tasks, fed every record of their topics; the tasks' joins read their stores.
    globals: Arc<GlobalTasks>,
    readers: HashMap<String, usize>,
    offsets: HashMap<String, i64>,
    outputs: HashMap<String, VecDeque<ProducedRecord>>,
    clock: Clock,
    application_id: String,
    /// Whether the record cache is on (`cache_max_bytes` above 0).
    cache_enabled: bool,
    /// Where persistent stores keep their files; deleted with the driver.
    _state_dir: tempfile::TempDir,
}

impl TopologyTestDriver {
    /// A driver for `topology` with the default settings.
    pub fn new(topology: Topology) -> Result<Self, StreamsError> {
        Self::with_config(topology, TestDriverConfig::default())
    }

    /// A driver for `topology` with the given settings. Fails if the topology is invalid or a store
    /// cannot be opened.
    pub fn with_config(topology: Topology, config: TestDriverConfig) -> Result<Self, StreamsError> {
        let plan = plan::plan(&topology)?;
        let clock = Clock::manual(config.wall_clock_start_ms);
        let mut task_config = TaskConfig::new(&config.application_id, clock.clone());
        task_config.deserialization_handler = config.deserialization_handler.clone();
        task_config.processing_handler = config.processing_handler.clone();
        task_config.timestamp_extractor = config.default_timestamp_extractor.clone();
        task_config.dsl_store = config.default_dsl_store;
        task_config.cache_budget = Arc::new(CacheBudget::new(config.cache_max_bytes));
        let state_dir =
            tempfile::Builder::new().prefix("kstreams-test-driver-").tempdir().map_err(|e| StreamsError::StateDir {
                path: std::env::temp_dir(),
                message: format!("cannot create a state directory: {e}"),
            })?;
        task_config.app_dir = Some(state_dir.path().join(&config.application_id));
        let globals = Arc::new(GlobalTasks::open(&topology, &plan, &task_config)?);
        if !globals.is_empty() {
            task_config.globals = Some(globals.clone());
        }
        let mut tasks = Vec::new();
        let mut readers = HashMap::new();
        for sub in &plan.subtopologies {
            let mut task = Task::new(&topology, sub, 0, &task_config)?;
            task.init()?;
            for topic in task.source_topics() {
                readers.insert(topic.to_string(), tasks.len());
            }
            tasks.push(task);
        }
        let mut driver = TopologyTestDriver {
            tasks,
            globals,
            readers,
            offsets: HashMap::new(),
            outputs: HashMap::new(),
            clock,
            application_id: config.application_id,
            cache_enabled: config.cache_max_bytes > 0,
            _state_dir: state_dir,
        };
        // Records forwarded from `init` (rare, but allowed) are collected like any other output.
        driver.drain(VecDeque::new())?;
        Ok(driver)
    }

    /// The application id (internal topics are `<application id>-<name>`).
    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    /// A handle on input topic `topic`, with serdes chosen by type.
    pub fn input_topic<K: DefaultSerde, V: DefaultSerde>(&self, topic: &str) -> TestInputTopic<K, V> {
        self.input_topic_with(topic, K::default_serde(), V::default_serde())
    }

    /// A handle on input topic `topic` with the given serdes.
    pub fn input_topic_with<K, V>(
        &self,
        topic: &str,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic { topic: topic.into(), key_serde, value_serde }
    }

    /// A handle on output topic `topic`, with serdes chosen by type.
    pub fn output_topic<K: DefaultSerde, V: DefaultSerde>(&self, topic: &str) -> TestOutputTopic<K, V> {
        self.output_topic_with(topic, K::default_serde(), V::default_serde())
    }

    /// A handle on output topic `topic` with the given serdes.
    pub fn output_topic_with<K, V>(
        &self,
        topic: &str,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic { topic: topic.to_string(), key_serde, value_serde }
    }

    /// Pipes one record with this key, value and timestamp, and processes it (and everything it causes)
    /// to the end.
    pub fn pipe<K: 'static, V: 'static>(
        &mut self,
        topic: &TestInputTopic<K, V>,
        key: K,
        value: V,
        timestamp: i64,
    ) -> Result<(), StreamsError> {
        self.pipe_record(topic, Record::new(key, value, timestamp))
    }

    /// Pipes one typed record (with its headers).
    pub fn pipe_record<K: 'static, V: 'static>(
        &mut self,
        topic: &TestInputTopic<K, V>,
        record: Record<K, V>,
    ) -> Result<(), StreamsError> {
        let wrap = |source: SerdeError| StreamsError::Serialization {
            node: "test input".into(),
            target: topic.topic.to_string(),
            source,
        };
        let key = to_bytes(&*topic.key_serde, &topic.topic, &record.key).map_err(wrap)?;
        let value = to_bytes(&*topic.value_serde, &topic.topic, &record.value).map_err(wrap)?;
        self.pipe_raw_with_headers(&topic.topic, key, value, record.timestamp, record.headers)
    }

    /// Pipes raw bytes: a null key or value, or bytes that do not deserialize (a poison pill).
    pub fn pipe_raw(
        &mut self,
        topic: &str,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: i64,
    ) -> Result<(), StreamsError> {
        self.pipe_raw_with_headers(topic, key, value, timestamp, Headers::new())
    }

    fn pipe_raw_with_headers(
        &mut self,
        topic: &str,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<(), StreamsError> {
        if self.reads_globally(topic) {
            let raw = self.raw(topic, key, value, timestamp, headers);
            return self.globals.process(raw);
        }
        if self.reader(topic).is_none() {
            return Err(StreamsError::Internal(format!(
                "the topology does not read topic `{topic}` (it reads: {})",
                self.input_topics().join(", ")
            )));
        }
        let raw = self.raw(topic, key, value, timestamp, headers);
        self.drain(VecDeque::from([raw]))
    }

    /// The task that reads `topic`: by its name, or (found once, then by name) by a source's pattern.
    fn reader(&mut self, topic: &str) -> Option<usize> {
        if let Some(&task) = self.readers.get(topic) {
            return Some(task);
        }
        let task = self.tasks.iter().position(|t| t.reads_by_pattern(topic))?;
        self.readers.insert(topic.to_string(), task);
        Some(task)
    }

    /// Whether a global table (or store) reads `topic`.
    fn reads_globally(&self, topic: &str) -> bool {
        self.globals.topics().any(|t| t == topic)
    }

    /// The topics the topology reads (internal ones with the application-id prefix; those a pattern
    /// matched once piped to; global tables' topics), sorted.
    pub fn input_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.readers.keys().cloned().collect();
        topics.extend(self.globals.topics().map(str::to_string));
        topics.sort();
        topics
    }

    fn raw(
        &mut self,
        topic: &str,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: i64,
        headers: Headers,
    ) -> RawRecord {
        let offset = self.offsets.entry(topic.to_string()).or_insert(0);
        let raw = RawRecord { topic: topic.into(), partition: 0, offset: *offset, timestamp, key, value, headers };
        *offset += 1;
        raw
    }

    /// Processes queued records until none are left, feeding back records written to topics the
    /// topology reads.
    fn drain(&mut self, mut queue: VecDeque<RawRecord>) -> Result<(), StreamsError> {
        loop {
            for t in 0..self.tasks.len() {
                for out in self.tasks[t].take_output() {
                    if self.reads_globally(&out.topic) {
                        let headers = out.headers.clone();
                        let raw = self.raw(&out.topic, out.key.clone(), out.value.clone(), out.timestamp, headers);
                        self.globals.process(raw)?;
                    } else if self.reader(&out.topic).is_some() {
                        let raw = self.raw(
                            &out.topic,
                            out.key.clone(),
                            out.value.clone(),
                            out.timestamp,
                            out.headers.clone(),
                        );
                        queue.push_back(raw);
                    }
                    self.outputs.entry(out.topic.to_string()).or_default().push_back(out);
                }
            }
            let Some(raw) = queue.pop_front() else { return Ok(()) };
            let task = self.reader(&raw.topic).expect("only topics with a reader are queued");
            self.tasks[task].process(raw)?;
            self.commit(task)?;
        }
    }

    /// Moves the manual wall clock forward and fires the wall-clock punctuations that came due.
    pub fn advance_wall_clock_time(&mut self, by: Duration) -> Result<(), StreamsError> {
        self.clock.advance(by.as_millis() as i64);
        for t in 0..self.tasks.len() {
            self.tasks[t].punctuate_wall_clock()?;
            self.commit(t)?;
        }
        self.drain(VecDeque::new())
    }

    /// A task's commit, with the record cache on: what the caches hold is written and goes downstream.
    /// (Without it there is nothing to write: stores are written at once.)
    fn commit(&mut self, task: usize) -> Result<(), StreamsError> {
        if self.cache_enabled {
            self.tasks[task].flush_processors()?;
        }
        Ok(())
    }

    /// The wall-clock time of the driver, in ms.
    pub fn wall_clock_time_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Reads the next record of an output topic. Errors name the topic and the part that failed.
    pub fn read_record<K: 'static, V: 'static>(
        &mut self,
        topic: &TestOutputTopic<K, V>,
    ) -> Option<Result<TestRecord<K, V>, StreamsError>> {
        let out = self.outputs.get_mut(&topic.topic)?.pop_front()?;
        Some(decode(topic, out))
    }

    /// Reads every record left in an output topic.
    pub fn read_records<K: 'static, V: 'static>(
        &mut self,
        topic: &TestOutputTopic<K, V>,
    ) -> Result<Vec<TestRecord<K, V>>, StreamsError> {
        let records = self.outputs.get_mut(&topic.topic).map(std::mem::take).unwrap_or_default();
        records.into_iter().map(|out| decode(topic, out)).collect()
    }

    /// Reads every `(key, value)` left in an output topic.
    ///
    /// # Panics
    /// If a record cannot be read with the topic's serdes: this is an assertion helper for tests. Use
    /// [`read_records`](Self::read_records) to get the error instead.
    pub fn read_key_values<K: 'static, V: 'static>(&mut self, topic: &TestOutputTopic<K, V>) -> Vec<(K, V)> {
        match self.read_records(topic) {
            Ok(records) => records.into_iter().map(|r| (r.key, r.value)).collect(),
            Err(e) => panic!("cannot read output topic `{}`: {}", topic.topic, crate::handler::error_chain(&e)),
        }
    }

    /// How many records wait in an output topic.
    pub fn queue_size(&self, topic: &str) -> usize {
        self.outputs.get(topic).map_or(0, VecDeque::len)
    }

    /// The names of every topic written to so far (internal ones with the application-id prefix).
    pub fn output_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.outputs.keys().cloned().collect();
        topics.sort();
        topics
    }

    /// The raw records waiting in a topic, without removing them.
    pub fn peek_raw(&self, topic: &str) -> Vec<ProducedRecord> {
        self.outputs.get(topic).map(|q| q.iter().cloned().collect()).unwrap_or_default()
    }

    /// The store called `name`, typed as stored (DSL aggregations store `ValueAndTimestamp<V>`).
    pub fn key_value_store<K: 'static, V: 'static>(&mut self, name: &str) -> Option<&mut TypedKeyValueStore<K, V>> {
        self.tasks.iter_mut().find(|t| t.has_store(name))?.store::<TypedKeyValueStore<K, V>>(name)
    }

    /// Runs `f` on the key-value store called `name`, a task's or a global one (which
    /// [`key_value_store`](Self::key_value_store) cannot lend out: the global task holds it), if it holds
    /// these types; `None` otherwise.
    pub fn with_key_value_store<K: 'static, V: 'static, R>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut TypedKeyValueStore<K, V>) -> R,
    ) -> Option<R> {
        if self.tasks.iter().any(|t| t.has_store(name)) {
            return self.key_value_store::<K, V>(name).map(f);
        }
        let (mut f, mut out) = (Some(f), None);
        let _ = self.globals.with_store(name, &mut |store| {
            if let (Some(typed), Some(f)) = (store.downcast_mut::<TypedKeyValueStore<K, V>>(), f.take()) {
                out = Some(f(typed));
            }
            Ok(())
        });
        out
    }

    /// The window store called `name` (one built with `Stores::window_store_builder`), if it holds these
    /// types.
    pub fn window_store<K: 'static, V: 'static>(&mut self, name: &str) -> Option<&mut WindowStore<K, V>> {
        self.tasks.iter_mut().find(|t| t.has_store(name))?.store::<WindowStore<K, V>>(name)
    }

    /// The versioned key-value store called `name` (one built with
    /// `Stores::versioned_key_value_store_builder`, or a table materialized with
    /// `Materialized::as_versioned`), if it holds these types.
    pub fn versioned_store<K: 'static, V: 'static>(&mut self, name: &str) -> Option<&mut VersionedKeyValueStore<K, V>> {
        self.tasks.iter_mut().find(|t| t.has_store(name))?.store::<VersionedKeyValueStore<K, V>>(name)
    }

    /// The session store called `name` (one built with `Stores::session_store_builder`), if it holds
    /// these types.
    pub fn session_store<K: 'static, V: 'static>(&mut self, name: &str) -> Option<&mut SessionStore<K, V>> {
        self.tasks.iter_mut().find(|t| t.has_store(name))?.store::<SessionStore<K, V>>(name)
    }

    /// Every `(key, value)` of store `name`, in key-byte order, whether it stores plain or timestamped
    /// values (as Kafka Streams' test driver unwraps timestamped stores).
    pub fn store_entries<K: 'static, V: 'static>(&mut self, name: &str) -> Result<Vec<(K, V)>, StreamsError> {
        let missing = || StreamsError::StoreAccess {
            node: "test driver".into(),
            store: name.to_string(),
            reason: format!(
                "no store of that name holds ({}, {}) or timestamped values of it",
                std::any::type_name::<K>(),
                std::any::type_name::<V>()
            ),
        };
        let Some(task) = self.tasks.iter_mut().find(|t| t.has_store(name)) else {
            // A global store.
            let mut entries = None;
            self.globals.with_store(name, &mut |store| {
                entries = store_entries(store);
                Ok(())
            })?;
            return entries.unwrap_or_else(|| Err(missing()));
        };
        if let Some(store) = task.store::<TypedKeyValueStore<K, V>>(name) {
            return store.all()?.collect();
        }
        if task.store::<VersionedKeyValueStore<K, V>>(name).is_some() {
            return Err(StreamsError::StoreAccess {
                node: "test driver".into(),
                store: name.to_string(),
                reason: "it is a versioned store, which has no list of entries: read it with `versioned_store`".into(),
            });
        }
        let store = task.store::<TypedKeyValueStore<K, ValueAndTimestamp<V>>>(name).ok_or_else(missing)?;
        store.all()?.map(|kv| kv.map(|(k, v)| (k, v.value))).collect()
    }

    /// The counters of every task, added up.
    pub fn metrics(&self) -> TaskMetrics {
        self.tasks.iter().map(Task::metrics).sum::<TaskMetrics>() + self.globals.metrics()
    }

    /// Closes every task (processors, then stores).
    pub fn close(mut self) -> Result<(), StreamsError> {
        for task in &mut self.tasks {
            task.close()?;
        }
        self.globals.close();
        Ok(())
    }
}

/// The entries of a key-value store of `(K, V)`, or of timestamped `V`s; `None` for another store.
fn store_entries<K: 'static, V: 'static>(
    store: &mut (dyn ErasedStore + 'static),
) -> Option<Result<Vec<(K, V)>, StreamsError>> {
    if store.is::<TypedKeyValueStore<K, V>>() {
        let store = store.downcast_mut::<TypedKeyValueStore<K, V>>()?;
        return Some(store.all().and_then(Iterator::collect));
    }
    let store = store.downcast_mut::<TypedKeyValueStore<K, ValueAndTimestamp<V>>>()?;
    Some(store.all().and_then(|entries| entries.map(|kv| kv.map(|(k, v)| (k, v.value))).collect()))
}

fn decode<K: 'static, V: 'static>(
    topic: &TestOutputTopic<K, V>,
    out: ProducedRecord,
) -> Result<TestRecord<K, V>, StreamsError> {
    let fail = |part: RecordPart, source: SerdeError| StreamsError::Deserialization {
        topic: topic.topic.clone(),
        partition: out.partition.unwrap_or(0),
        offset: -1,
        part,
        source,
    };
    let key = from_bytes(&*topic.key_serde, &topic.topic, out.key.as_deref()).map_err(|e| fail(RecordPart::Key, e))?;
    let value =
        from_bytes(&*topic.value_serde, &topic.topic, out.value.as_deref()).map_err(|e| fail(RecordPart::Value, e))?;
    let null = |part: RecordPart| {
        fail(part, SerdeError::new("(output)", &topic.topic, "null, but the type cannot be null; read it as an Option"))
    };
    Ok(TestRecord {
        key: key.ok_or_else(|| null(RecordPart::Key))?,
        value: value.ok_or_else(|| null(RecordPart::Value))?,
        timestamp: out.timestamp,
        headers: out.headers,
        partition: out.partition,
    })
}
