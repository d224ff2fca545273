//! The application runtime (Kafka Streams' `KafkaStreams`): checks and creates topics, runs stream
//! threads that consume, process through tasks, produce and commit, and reports its state.
//!
//! ```no_run
//! use streams_core::config::StreamsConfig;
//! use streams_core::dsl::StreamsBuilder;
//! use streams_core::runtime::{KafkaStreams, State};
//!
//! let builder = StreamsBuilder::new();
//! builder.stream::<String, String>("words").map_values(|w| w.to_uppercase()).to("shouted");
//! let mut app = KafkaStreams::new(builder.build()?, StreamsConfig::new("shout", "127.0.0.1:9092"))?;
//! app.set_state_listener(|old, new| println!("{old:?} -> {new:?}"));
//! app.start()?;
//! // ... until Ctrl-C
//! app.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// The task assignor of #24 part 3 and the user data its group exchanges: built and tested first; the
// group member that runs them comes next (docs/architecture.md, "Task assignment").
mod assignment_info;
mod assignor;
pub(crate) mod global;
mod group_assignment;
mod layout;
mod member_consumer;
mod metadata;
mod partition_group;
mod producer;
mod query;
mod query_windowed;
mod restore;
mod shutdown_request;
mod standby;
mod state_dir;
pub(crate) mod thread;
mod thread_metrics;
#[cfg(feature = "tokio")]
mod tokio_support;
mod topics;

pub use metadata::{HostInfo, KeyQueryMetadata, StreamsMetadata};
pub use query::{
    KeyValueStoreType, LocalKeyValueStore, QueryableStoreType, QueryableStoreTypes, StoreQueryParameters, StoreSource,
};
pub use query_windowed::{LocalSessionStore, LocalWindowStore, SessionStoreType, WindowStoreType};
pub use restore::StateRestoreListener;
pub use standby::{StandbyUpdateListener, SuspendReason};
pub use state_dir::clean_local_state;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::client::ClientSupplier;
use crate::config::{ProcessingGuarantee, StreamsConfig};
use crate::sync::LockUnpoisoned;
use crate::time::Clock;
use crate::topology::plan::{self, TopologyPlan};
use crate::{StreamsError, TaskMetrics, Topology};

/// The application's state, as Kafka Streams reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Made, not started.
    Created,
    /// Joining the group, or partitions are moving.
    Rebalancing,
    /// Processing.
    Running,
    /// `close` was called; tasks are committing and the group is being left.
    PendingShutdown,
    /// Closed.
    NotRunning,
    /// A stream thread failed with an error that cannot be recovered; see [`KafkaStreams::take_error`].
    Error,
}

type StateListener = Box<dyn Fn(State, State) + Send + Sync>;

/// The state, its listener, and a condition to wait on.
pub(crate) struct StateCell {
    state: Mutex<State>,
    changed: Condvar,
    listener: Mutex<Option<StateListener>>,
    /// The client's metric tags, once the instance started: each change publishes `client-state`.
    metrics: std::sync::OnceLock<crate::metrics::Tags>,
    /// The state for async readers (`KafkaStreams::state_receiver`).
    #[cfg(feature = "tokio")]
    watch: tokio::sync::watch::Sender<State>,
}

impl StateCell {
    fn new() -> Self {
        StateCell {
            state: Mutex::new(State::Created),
            changed: Condvar::new(),
            listener: Mutex::new(None),
            metrics: std::sync::OnceLock::new(),
            #[cfg(feature = "tokio")]
            watch: tokio::sync::watch::Sender::new(State::Created),
        }
    }

    pub(crate) fn get(&self) -> State {
        *self.state.lock_unpoisoned()
    }

    /// The client's metric tags, once the instance started.
    pub(crate) fn metrics_tags(&self) -> Option<&crate::metrics::Tags> {
        self.metrics.get()
    }

    /// Moves to `new` unless the application is already past it (closing or failed).
    pub(crate) fn set(&self, new: State) {
        let old = {
            let mut state = self.state.lock_unpoisoned();
            let old = *state;
            let allowed = match (old, new) {
                (a, b) if a == b => false,
                (State::NotRunning | State::Error, _) => false,
                (State::PendingShutdown, State::Rebalancing | State::Running) => false,
                _ => true,
            };
            if !allowed {
                return;
            }
            *state = new;
            // Under the lock, so that two changes reach the watch and the metric in the order they
            // were made.
            #[cfg(feature = "tokio")]
            self.watch.send_replace(new);
            if let Some(tags) = self.metrics.get() {
                tags.gauge(crate::metrics::CLIENT, "client-state", thread_metrics::state_ordinal(new));
            }
            old
        };
        tracing::info!(target: "kstreams::runtime", from = ?old, to = ?new, "state change");
        self.changed.notify_all();
        if let Some(listener) = &*self.listener.lock_unpoisoned() {
            listener(old, new);
        }
    }

    fn wait_for(&self, wanted: State, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock_unpoisoned();
        while *state != wanted {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self.changed.wait_timeout(state, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }
}

/// What to do when a stream thread fails (Kafka Streams' `StreamThreadExceptionResponse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamThreadExceptionResponse {
    /// Start a new stream thread in the failed one's place: it joins the group and takes partitions
    /// again, from the last committed offsets and state. The instance stays up.
    ReplaceThread,
    /// Shut this instance down: its other threads commit what they processed and stop, and the
    /// instance goes to [`State::Error`] with the error in [`KafkaStreams::take_error`] (the default).
    ShutdownClient,
    /// Shut every instance of the application down: this one as on `ShutdownClient`, and every other
    /// instance running now within about a second, each to [`State::Error`] with
    /// [`StreamsError::ApplicationShutdownRequested`] naming the failed thread and its error. The request
    /// travels on the topic `<application.id>-shutdown-requests`, which an instance creates at start when
    /// it has an uncaught exception handler (set the handler before [`KafkaStreams::start`]; an instance
    /// started without one neither sends nor hears requests, and answers `ShutdownApplication` as
    /// `ShutdownClient`).
    ShutdownApplication,
}

type UncaughtExceptionHandler = Arc<dyn Fn(&StreamsError) -> StreamThreadExceptionResponse + Send + Sync>;

/// What the stream threads share with the application handle.
pub(crate) struct Shared {
    pub(crate) state: StateCell,
    pub(crate) shutdown: AtomicBool,
    pub(crate) error: Mutex<Option<StreamsError>>,
    /// Each thread's counters, by thread name.
    pub(crate) thread_metrics: Mutex<std::collections::BTreeMap<String, TaskMetrics>>,
    pub(crate) task_holders: thread::TaskHolders,
    /// Tasks of this instance's threads still restoring their stores: the instance is RUNNING only
    /// when there are none.
    pub(crate) restoring_tasks: std::sync::atomic::AtomicUsize,
    uncaught_handler: Mutex<Option<UncaughtExceptionHandler>>,
    /// Whether the instance watches for shutdown requests, and so may send one.
    pub(crate) shutdown_requests: AtomicBool,
    /// Stream threads that ended with an error (`failed-stream-threads`).
    pub(crate) failed_threads: std::sync::atomic::AtomicU64,
    /// The stream thread that tells the group's leader about the task directories no thread holds
    /// (their checkpoints' offset sums): one per instance, as in Kafka Streams, where the first thread
    /// to lock a directory reports it. Were every thread to report them, each would claim every task
    /// and the leader could not keep tasks on their threads.
    pub(crate) task_dir_reporter: Mutex<Option<String>>,
    /// Every instance's address with its tasks, from the last assignment (`application.server`).
    pub(crate) endpoints: Arc<metadata::Endpoints>,
}

impl Shared {
    /// A new instance's: state CREATED, no error, no threads' counters or tasks yet.
    pub(crate) fn new() -> Self {
        Shared {
            state: StateCell::new(),
            shutdown: AtomicBool::new(false),
            error: Mutex::new(None),
            thread_metrics: Mutex::new(Default::default()),
            task_holders: Default::default(),
            restoring_tasks: Default::default(),
            uncaught_handler: Mutex::new(None),
            shutdown_requests: AtomicBool::new(false),
            failed_threads: Default::default(),
            task_dir_reporter: Mutex::new(None),
            endpoints: Arc::default(),
        }
    }

    /// What the uncaught exception handler says about a thread's failure; `ShutdownClient` when there
    /// is none, or when the handler panics.
    pub(crate) fn uncaught_exception_response(&self, error: &StreamsError) -> StreamThreadExceptionResponse {
        let handler = self.uncaught_handler.lock_unpoisoned().clone();
        let Some(handler) = handler else { return StreamThreadExceptionResponse::ShutdownClient };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(error))).unwrap_or_else(|payload| {
            let panic = crate::error::Panicked::from_payload(&*payload);
            tracing::error!(target: "kstreams::runtime", error = %panic, "the uncaught exception handler panicked; shutting the instance down");
            StreamThreadExceptionResponse::ShutdownClient
        })
    }
}

/// A running application: one or more stream threads in the application's consumer group.
pub struct KafkaStreams {
    topology: Arc<Topology>,
    plan: Arc<TopologyPlan>,
    config: StreamsConfig,
    supplier: Arc<dyn ClientSupplier>,
    shared: Arc<Shared>,
    threads: Vec<RunningThread>,
    /// What a stream thread added while the instance runs is made of (set at start).
    new_threads: Option<ThreadFactory>,
    /// The global thread, when the topology has global stores.
    global_thread: Option<JoinHandle<()>>,
    /// The thread that watches for shutdown requests, when the instance has an uncaught exception handler.
    shutdown_watch: Option<JoinHandle<()>>,
    state_dir: state_dir::StateDirectory,
    rocksdb: state_store::RocksDbMemory,
    restore_listener: Option<Arc<dyn StateRestoreListener>>,
    standby_listener: Option<Arc<dyn StandbyUpdateListener>>,
    /// Tells this instance's transactional ids apart from those of other instances (Kafka Streams'
    /// process id), when a simulation gives it; otherwise chosen at start: the one kept in the state
    /// directory when the topology has stores, else a random one.
    process_id: Option<String>,
    /// Wall-clock time for the threads: the system clock, or a simulation's virtual clock.
    clock: Clock,
}

/// A random id for an instance: 64 bits from the standard library's per-process random hash keys.
fn random_process_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    format!("{:016x}", hasher.finish())
}

impl KafkaStreams {
    /// An application running `topology` with `config`, on Kafka through rdkafka. Invalid settings or an
    /// invalid topology are errors here. (The `kafka` cargo feature, on by default.)
    #[cfg(feature = "kafka")]
    pub fn new(topology: Topology, config: StreamsConfig) -> Result<Self, StreamsError> {
        Self::with_client_supplier(topology, config, Arc::new(crate::kafka::RdKafkaSupplier))
    }

    /// The same, with clients from `supplier` (an embedded broker, a test double).
    pub fn with_client_supplier(
        topology: Topology,
        config: StreamsConfig,
        supplier: Arc<dyn ClientSupplier>,
    ) -> Result<Self, StreamsError> {
        config.validate()?;
        let plan = plan::plan(&topology)?;
        let shared = Arc::new(Shared::new());
        let state_dir = state_dir::StateDirectory::new(&config.state_dir, &config.application_id);
        let rocksdb = state_store::RocksDbMemory::new(config.rocksdb_cache_bytes, config.rocksdb_write_buffer_bytes);
        Ok(KafkaStreams {
            topology: Arc::new(topology),
            plan: Arc::new(plan),
            config,
            supplier,
            shared,
            threads: Vec::new(),
            new_threads: None,
            global_thread: None,
            shutdown_watch: None,
            state_dir,
            rocksdb,
            restore_listener: None,
            standby_listener: None,
            process_id: None,
            clock: Clock::System,
        })
    }

    /// Calls `listener(old, new)` on every state change.
    pub fn set_state_listener(&mut self, listener: impl Fn(State, State) + Send + Sync + 'static) {
        *self.shared.state.listener.lock_unpoisoned() = Some(Box::new(listener));
    }

    /// Decides what happens when a stream thread fails: an error its tasks cannot recover from, a
    /// processing error the processing exception handler said to fail on, or a panic outside user code
    /// (Kafka Streams' `setUncaughtExceptionHandler`). Without one, the instance shuts down
    /// ([`StreamThreadExceptionResponse::ShutdownClient`]). Set it before [`start`](Self::start), as
    /// Kafka Streams requires, for [`StreamThreadExceptionResponse::ShutdownApplication`] to reach the
    /// other instances.
    ///
    /// ```
    /// use streams_core::runtime::{KafkaStreams, StreamThreadExceptionResponse};
    ///
    /// fn replace_failed_threads(app: &mut KafkaStreams) {
    ///     app.set_uncaught_exception_handler(|error| {
    ///         eprintln!("a stream thread failed: {error}");
    ///         StreamThreadExceptionResponse::ReplaceThread
    ///     });
    /// }
    /// ```
    pub fn set_uncaught_exception_handler(
        &mut self,
        handler: impl Fn(&StreamsError) -> StreamThreadExceptionResponse + Send + Sync + 'static,
    ) {
        *self.shared.uncaught_handler.lock_unpoisoned() = Some(Arc::new(handler));
    }

    /// Hears the progress of every store restore (set it before [`start`](Self::start)).
    pub fn set_global_state_restore_listener(&mut self, listener: impl StateRestoreListener + 'static) {
        self.restore_listener = Some(Arc::new(listener));
    }

    /// Hears how the standby tasks of this instance keep up (set it before [`start`](Self::start);
    /// standbys need `num.standby.replicas` and `group.assignor=streams`).
    pub fn set_standby_update_listener(&mut self, listener: impl StandbyUpdateListener + 'static) {
        self.standby_listener = Some(Arc::new(listener));
    }

    /// The memory budget all RocksDB stores of this instance share (`rocksdb.cache.bytes`), to watch its use.
    pub fn rocksdb_memory(&self) -> &state_store::RocksDbMemory {
        &self.rocksdb
    }

    /// Deletes this application's local state, `<state.dir>/<application.id>`: every task's stores and
    /// checkpoints (Kafka Streams' `cleanUp`). The stores are then restored from their changelogs on the
    /// next start. Only before [`start`](Self::start) or after [`close`](Self::close); refused while
    /// another instance holds the directory.
    pub fn clean_up(&mut self) -> Result<(), StreamsError> {
        let state = self.state();
        let running = !self.threads.is_empty() || self.global_thread.is_some();
        if !matches!(state, State::Created | State::NotRunning | State::Error) || running {
            return Err(StreamsError::IllegalState { action: "clean up local state", state: format!("{state:?}") });
        }
        self.state_dir.clean()
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.shared.state.get()
    }

    /// Waits until the application reaches `state`; false on timeout.
    pub fn wait_for_state(&self, state: State, timeout: Duration) -> bool {
        self.shared.state.wait_for(state, timeout)
    }

    /// The error that put the application in [`State::Error`], if any (taken once).
    pub fn take_error(&self) -> Option<StreamsError> {
        self.shared.error.lock_unpoisoned().take()
    }

    /// The counters of every task this instance has run, added up.
    pub fn metrics(&self) -> TaskMetrics {
        let metrics = self.shared.thread_metrics.lock_unpoisoned();
        metrics.values().copied().sum()
    }

    /// Checks the topics, creates internal ones, and starts the stream threads. Errors (a broker that
    /// cannot be reached within `default.api.timeout.ms`, a missing source topic, co-partitioning) are
    /// returned here, naming what is wrong.
    pub fn start(&mut self) -> Result<(), StreamsError> {
        let watch_requests = self.shared.uncaught_handler.lock_unpoisoned().is_some();
        let (threads, watch, global) = self.prepare_threads(watch_requests)?;
        if let Some(global) = global {
            let shared = self.shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("{}-GlobalStreamThread", self.config.application_id))
                .spawn(move || global.run(shared))
                .map_err(|e| StreamsError::Internal(format!("cannot spawn the global thread: {e}")))?;
            self.global_thread = Some(handle);
        }
        if let Some(watch) = watch {
            let shared = self.shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("{}-shutdown-watch", self.config.application_id))
                .spawn(move || watch.run(shared))
                .map_err(|e| StreamsError::Internal(format!("cannot spawn the shutdown watch: {e}")))?;
            self.shutdown_watch = Some(handle);
            self.shared.shutdown_requests.store(true, Ordering::SeqCst);
        }
        for thread in threads {
            self.spawn(thread)?;
        }
        Ok(())
    }

    /// Runs `thread` on an OS thread of its own: the one place the runtime spawns stream threads.
    fn spawn(&mut self, (thread, stop): (thread::StreamThread, Arc<AtomicBool>)) -> Result<String, StreamsError> {
        let name = thread.name().to_string();
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || thread.run())
            .map_err(|e| StreamsError::Internal(format!("cannot spawn a stream thread: {e}")))?;
        self.threads.push(RunningThread { name: name.clone(), stop, handle });
        Ok(name)
    }

    /// Starts one more stream thread (Kafka Streams' `addStreamThread`), named with the lowest thread
    /// number no running thread has; it joins the group, and a rebalance shares the tasks out again.
    /// Its name, or `None` when the instance is not running or rebalancing (nothing is started then).
    /// The record cache of the new thread is `statestore.cache.max.bytes` split over
    /// `num.stream.threads`, as the others' (Kafka Streams resizes every thread's share).
    pub fn add_stream_thread(&mut self) -> Result<Option<String>, StreamsError> {
        // A topology of global stores only has no task for a stream thread.
        if !matches!(self.state(), State::Running | State::Rebalancing) || self.plan.subtopologies.is_empty() {
            return Ok(None);
        }
        self.threads.retain(|t| !t.handle.is_finished());
        let Some(factory) = &self.new_threads else { return Ok(None) };
        let taken: Vec<usize> = self.threads.iter().filter_map(|t| factory.index_of(&t.name)).collect();
        let index = (1..).find(|i| !taken.contains(i)).expect("a free number");
        let thread = factory.make(index, &self.config, &self.supplier, &self.shared)?;
        self.spawn(thread).map(Some)
    }

    /// Stops one stream thread (Kafka Streams' `removeStreamThread`): it commits what it processed,
    /// closes its tasks and leaves the group, whose rebalance hands its tasks to the other threads (of
    /// this instance or others). Waits at most `timeout` for it; its name, or `None` when no stream
    /// thread runs. An error when it did not end in time (it goes on shutting down).
    pub fn remove_stream_thread(&mut self, timeout: Duration) -> Result<Option<String>, StreamsError> {
        if !matches!(self.state(), State::Running | State::Rebalancing) {
            return Ok(None);
        }
        self.threads.retain(|t| !t.handle.is_finished());
        let Some(position) = self.threads.iter().position(|t| !t.stop.load(Ordering::SeqCst)) else {
            return Ok(None);
        };
        let thread = self.threads.remove(position);
        thread.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        while !thread.handle.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !thread.handle.is_finished() {
            let threads = vec![thread.name.clone()];
            self.threads.push(thread);
            return Err(StreamsError::CloseTimeout { timeout, threads });
        }
        let _ = thread.handle.join();
        Ok(Some(thread.name))
    }

    /// The stream threads running now, each with the tasks it holds (Kafka Streams'
    /// `metadataForLocalThreads`, its thread names and active tasks).
    pub fn metadata_for_local_threads(&self) -> Vec<ThreadMetadata> {
        let holders = self.shared.task_holders.holders();
        self.threads
            .iter()
            .filter(|t| !t.handle.is_finished())
            .map(|t| ThreadMetadata {
                thread_name: t.name.clone(),
                active_tasks: holders
                    .iter()
                    .filter(|(_, name, standby)| *name == t.name && !standby)
                    .map(|h| h.0)
                    .collect(),
                standby_tasks: holders
                    .iter()
                    .filter(|(_, name, standby)| *name == t.name && *standby)
                    .map(|h| h.0)
                    .collect(),
            })
            .collect()
    }

    /// A read-only view of the store `params` names, over the tasks of this instance that hold it
    /// (Kafka Streams' interactive queries; `docs/interactive-queries.md`). Errors here when the
    /// instance has not started or has stopped, or the topology has no store of that name; the view's
    /// calls check again each time, and fail with a retriable [`StreamsError::StoreUnavailable`] while
    /// the store is restoring or moving between instances.
    ///
    /// ```no_run
    /// # use streams_core::runtime::{KafkaStreams, QueryableStoreTypes, StoreQueryParameters};
    /// # fn query(app: &KafkaStreams) -> Result<(), streams_core::StreamsError> {
    /// let totals = app.store(StoreQueryParameters::from_name_and_type(
    ///     "totals",
    ///     QueryableStoreTypes::key_value::<String, f64>(),
    /// ))?;
    /// println!("customer 42: {:?}", totals.get(&"42".to_string())?);
    /// # Ok(()) }
    /// ```
    pub fn store<T: QueryableStoreType>(&self, params: StoreQueryParameters<T>) -> Result<T::Store, StreamsError> {
        let (name, partition, stale) = params.into_parts();
        let unavailable = |reason| StreamsError::StoreUnavailable { store: name.clone(), reason };
        self.queryable().map_err(unavailable)?;
        let place = if self.topology.is_global_store(&name) {
            let globals = self.new_threads.as_ref().and_then(|factory| factory.state.globals.clone());
            let globals =
                globals.ok_or_else(|| StreamsError::Internal(format!("global store `{name}` has no global task")))?;
            query::Place::Global(globals)
        } else {
            let Some(subtopology) = self.store_subtopology(&name) else {
                return Err(unavailable(crate::error::StoreUnavailable::Unknown(
                    "the topology has no store of that name".into(),
                )));
            };
            query::Place::Tasks(subtopology)
        };
        Ok(T::create(query::StoreSource::new(name, self.shared.clone(), place, partition, stale)))
    }

    /// Whether the instance's stores can be asked about now: started, and not stopping or stopped.
    fn queryable(&self) -> Result<(), crate::error::StoreUnavailable> {
        match self.state() {
            State::Created => Err(crate::error::StoreUnavailable::NotStarted),
            State::Running | State::Rebalancing => Ok(()),
            state => Err(crate::error::StoreUnavailable::NotRunning { state: format!("{state:?}") }),
        }
    }

    /// The sub-topology whose tasks hold store `name` (not a global store).
    fn store_subtopology(&self, name: &str) -> Option<u32> {
        let mut subtopologies = self.plan.subtopologies.iter();
        subtopologies.find(|sub| sub.stores.iter().any(|&g| self.topology.stores[g].name == name)).map(|sub| sub.id)
    }

    /// Every instance of the application that has an `application.server`, with the stores and source
    /// partitions of its tasks and standbys, as the last assignment told this instance (Kafka Streams'
    /// `metadataForAllStreamsClients`). Empty before the first assignment, and under
    /// `group.assignor=range` (which carries no addresses).
    pub fn metadata_for_all_stream_clients(&self) -> Vec<StreamsMetadata> {
        let Some(factory) = &self.new_threads else { return Vec::new() };
        let (_, layout) = factory.parts.2.current();
        self.shared.endpoints.all(&self.topology, &self.plan, &layout)
    }

    /// The instances whose tasks hold store `store` (as active tasks; Kafka Streams'
    /// `streamsMetadataForStore`).
    pub fn streams_metadata_for_store(&self, store: &str) -> Vec<StreamsMetadata> {
        let mut all = self.metadata_for_all_stream_clients();
        all.retain(|m| m.state_store_names.contains(store));
        all
    }

    /// Which instance holds `key` of store `store`, and which keep standbys of it (Kafka Streams'
    /// `queryMetadataForKey`): the key, serialized by `serde` as the application's producers do, goes
    /// to the partition Kafka's default partitioner gives it among the store's source partitions;
    /// the assignment says whose task that is. Forward a query for the key there. Fails with a
    /// retriable [`StreamsError::StoreUnavailable`] before the instance runs, and while no instance
    /// runs the key's task (a rebalance under way); with a non-retriable one for a store the topology
    /// does not have, a global store (every instance has it whole: query it here), or a key `serde`
    /// cannot serialize. Input written with a partitioner of its own: see
    /// [`query_metadata_for_key_with_partitioner`](Self::query_metadata_for_key_with_partitioner).
    pub fn query_metadata_for_key<K: 'static>(
        &self,
        store: &str,
        key: &K,
        serde: &dyn crate::serde::Serde<K>,
    ) -> Result<KeyQueryMetadata, StreamsError> {
        self.key_query_metadata(store, |topic, partitions| {
            let bytes = crate::serde::to_bytes(serde, topic, key).map_err(|source| StreamsError::Serialization {
                node: "query_metadata_for_key".into(),
                target: store.to_string(),
                source,
            })?;
            let Some(bytes) = bytes else {
                return Err(unknown_store(store, "the key serializes to null: it has no partition"));
            };
            Ok(crate::murmur2::partition_for_key(&bytes, partitions))
        })
    }

    /// [`query_metadata_for_key`](Self::query_metadata_for_key) for input whose producers place keys
    /// with a partitioner of their own (Kafka Streams' overload taking a `StreamPartitioner`):
    /// `partitioner` gets a source topic of the store, the key and the topics' partition count, and
    /// names the key's partition. Kafka Streams calls its partitioner with a null value here; this one
    /// takes no value. A partition outside the topics' is a non-retriable error naming it.
    pub fn query_metadata_for_key_with_partitioner<K>(
        &self,
        store: &str,
        key: &K,
        partitioner: impl Fn(&str, &K, u32) -> i32,
    ) -> Result<KeyQueryMetadata, StreamsError> {
        self.key_query_metadata(store, |topic, partitions| {
            let partition = partitioner(topic, key, partitions as u32);
            match (0..partitions).contains(&partition) {
                true => Ok(partition),
                false => {
                    let why = format!("the partitioner chose partition {partition} of {topic}, which has {partitions}");
                    Err(unknown_store(store, why))
                }
            }
        })
    }

    /// The part of `query_metadata_for_key` that does not depend on how a key is placed: the store's
    /// sub-topology and source topics, and the hosts of the task `place` (given a source topic and
    /// the partition count) names the partition of.
    fn key_query_metadata(
        &self,
        store: &str,
        place: impl FnOnce(&str, i32) -> Result<i32, StreamsError>,
    ) -> Result<KeyQueryMetadata, StreamsError> {
        use crate::error::StoreUnavailable;
        let unavailable = |reason| StreamsError::StoreUnavailable { store: store.to_string(), reason };
        self.queryable().map_err(unavailable)?;
        let Some(subtopology) = self.store_subtopology(store) else {
            let why = match self.topology.is_global_store(store) {
                true => "it is a global store: every instance holds it whole; query it on this one",
                false => "the topology has no store of that name",
            };
            return Err(unknown_store(store, why));
        };
        if self.config.application_server.is_none() {
            let why = "this instance has no application.server: the assignment carries no addresses";
            return Err(unknown_store(store, why));
        }
        let Some(factory) = &self.new_threads else { return Err(unavailable(StoreUnavailable::NotStarted)) };
        let (_, layout) = factory.parts.2.current();
        let partitions = layout.subtopologies.get(&subtopology).map_or(0, |(partitions, _)| *partitions);
        if partitions <= 0 {
            let why = "none of the store's source topics exists yet (a pattern that matches no topic)";
            return Err(unknown_store(store, why));
        }
        // The key is placed among one of the store's source topics (they all have its partition count).
        let topic = layout.source_topics(subtopology).next().unwrap_or(store);
        let partition = place(topic, partitions)?;
        let task = crate::TaskId { subtopology, partition };
        match self.shared.endpoints.task_hosts(task) {
            Some((active_host, standby_hosts)) => Ok(KeyQueryMetadata { active_host, standby_hosts, partition }),
            None => Err(unavailable(StoreUnavailable::Migrated { partition: Some(partition) })),
        }
    }

    /// For a simulation: the process id in transactional ids (instead of a random one) and the clock
    /// the threads read, both before [`start_stepped`](Self::start_stepped).
    #[cfg(feature = "test-utils")]
    pub(crate) fn set_simulated(&mut self, process_id: String, clock: Clock) {
        self.process_id = Some(process_id);
        self.clock = clock;
    }

    /// [`start`](Self::start) without spawning: the stream threads and the global stores' updater (after
    /// its bootstrap) are handed to the caller (a simulation), which steps them, and finishes or crashes
    /// them, on its own schedule.
    #[cfg(feature = "test-utils")]
    pub(crate) fn start_stepped(
        &mut self,
    ) -> Result<(Vec<thread::StreamThread>, Option<global::GlobalUpdater>), StreamsError> {
        let (threads, _, global) = self.prepare_threads(false)?;
        Ok((threads.into_iter().map(|(thread, _)| thread).collect(), global))
    }

    /// Everything `start` does except running the threads: the global stores bootstrapped (their
    /// updater is returned to follow the topics from there), and the watch for shutdown requests when
    /// `watch_requests` (which creates the topic they travel on).
    #[allow(clippy::type_complexity)]
    fn prepare_threads(
        &mut self,
        watch_requests: bool,
    ) -> Result<(Vec<NewThread>, Option<shutdown_request::ShutdownWatch>, Option<global::GlobalUpdater>), StreamsError>
    {
        let state = self.state();
        if state != State::Created {
            return Err(StreamsError::IllegalState { action: "start", state: format!("{state:?}") });
        }
        if let Some(address) = self.config.metrics_prometheus_listen_address {
            crate::metrics::install_prometheus(address)?;
        }
        // Only a topology with stores keeps local state, and then only one instance may use the directory.
        let app_dir = if self.topology.stores.is_empty() {
            None
        } else {
            self.state_dir.lock()?;
            Some(self.state_dir.app_dir().to_path_buf())
        };
        let process_id = match (self.process_id.clone(), &app_dir) {
            (Some(id), _) => id,
            (None, Some(_)) => self.state_dir.process_id(random_process_id)?,
            (None, None) => random_process_id(),
        };
        // Kafka Streams' client id: every client's id and every thread's name start with it.
        let client_id =
            self.config.client_id.clone().unwrap_or_else(|| format!("{}-{process_id}", self.config.application_id));
        self.config.client_id = Some(client_id.clone());
        let _ = self.shared.state.metrics.set(crate::metrics::Tags::new(&[("client-id", &client_id)]));
        let admin = self.supplier.admin(&self.config)?;
        let layout = topics::prepare(&self.topology, &self.plan, &self.config, &*admin)?;
        let watch = if watch_requests {
            Some(shutdown_request::ShutdownWatch::start(&*self.supplier, &*admin, &self.config, &client_id)?)
        } else {
            None
        };
        // One admin client per instance, as in Kafka Streams: the threads purge repartition topics with it.
        let admin = Arc::new(Mutex::new(admin));
        self.shared.state.set(State::Rebalancing);
        // The global stores are read to the end before any stream thread starts.
        let global = self.bootstrap_global_stores(&layout, app_dir.clone(), &client_id).inspect_err(|_| {
            // As in Kafka Streams: the global thread is gone, and with it the instance.
            self.shared.state.set(State::Error);
        })?;
        let globals = global.as_ref().map(|g| -> Arc<dyn crate::processor::state::GlobalStores> { g.tasks() });
        let layouts = Arc::new(layout::Layouts::new(
            layout,
            (self.topology.clone(), self.plan.clone()),
            &self.config,
            admin.clone(),
        ));
        // As in Kafka Streams: a topology of global stores only has no task for a stream thread, and the
        // instance runs once they are bootstrapped (no consumer group to join).
        let stream_threads = if self.plan.subtopologies.is_empty() {
            tracing::info!(target: "kstreams::runtime", "a topology of global stores only: no stream thread");
            self.shared.state.set(State::Running);
            0
        } else {
            self.config.num_stream_threads
        };
        let factory = ThreadFactory {
            parts: (self.topology.clone(), self.plan.clone(), layouts),
            state: thread::ThreadState {
                app_dir,
                rocksdb: self.rocksdb.clone(),
                restore_listener: self.restore_listener.clone(),
                standby_listener: self.standby_listener.clone(),
                transactional_id: None,
                process_id: assignor::ProcessId::of(&process_id),
                clock: self.clock.clone(),
                admin,
                dir_lock: self.state_dir.lock_share(),
                globals,
                stop: Arc::default(),
            },
            client_id,
            process_id,
        };
        let threads = (1..=stream_threads)
            .map(|index| factory.make(index, &self.config, &self.supplier, &self.shared))
            .collect::<Result<Vec<_>, _>>()?;
        self.new_threads = Some(factory);
        Ok((threads, watch, global))
    }

    /// Opens the global tasks and reads their topics to the end; `None` without global stores.
    fn bootstrap_global_stores(
        &self,
        layout: &topics::TopicLayout,
        app_dir: Option<std::path::PathBuf>,
        client_id: &str,
    ) -> Result<Option<global::GlobalUpdater>, StreamsError> {
        if self.plan.globals.is_empty() {
            return Ok(None);
        }
        let task_config = task_config(&self.config, self.clock.clone(), app_dir, self.rocksdb.clone());
        let tasks = Arc::new(crate::task::global::GlobalTasks::open(&self.topology, &self.plan, &task_config)?);
        let global_dir =
            task_config.task_dir(crate::TaskId { subtopology: 0, partition: crate::task::global::GLOBAL_PARTITION });
        let listener = self.restore_listener.clone();
        let mut updater = global::GlobalUpdater::new(
            tasks,
            &layout.global,
            &*self.supplier,
            &self.config,
            (client_id, global_dir),
            listener,
            self.clock.clone(),
        )?;
        updater.bootstrap()?;
        Ok(Some(updater))
    }

    /// Commits, closes every task, leaves the group and stops the threads; waits for them.
    pub fn close(&mut self) -> Result<(), StreamsError> {
        self.close_timeout(Duration::from_secs(60))
    }

    /// [`close`](Self::close), waiting at most `timeout` for the threads. Threads still running at the
    /// deadline are named in the error ([`StreamsError::CloseTimeout`]); they go on shutting down, and the
    /// state directory stays locked until the last of them has ended, so another instance cannot take
    /// files they may still write. Calling `close` again waits for them.
    pub fn close_timeout(&mut self, timeout: Duration) -> Result<(), StreamsError> {
        if self.state() != State::Error {
            self.shared.state.set(State::PendingShutdown);
        }
        self.shared.shutdown.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        let mut still_running = Vec::new();
        for handle in self.threads.drain(..).map(|t| t.handle) {
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                still_running.push(handle);
            }
        }
        let mut global_running = None;
        if let Some(global) = self.global_thread.take() {
            while !global.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if global.is_finished() {
                let _ = global.join();
            } else {
                global_running = Some(global);
            }
        }
        if let Some(watch) = self.shutdown_watch.take() {
            // It looks at the shutdown flag twice a second, unless a broker that does not answer holds
            // it up: then it is left to end on its own, as it holds nothing the instance needs back.
            let deadline = Instant::now() + Duration::from_secs(1);
            while !watch.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if watch.is_finished() {
                let _ = watch.join();
            }
        }
        // Its share of the state directory's lock goes with it: no thread is added after a close.
        self.new_threads = None;
        self.state_dir.unlock();
        if !still_running.is_empty() || global_running.is_some() {
            let threads = still_running
                .iter()
                .chain(&global_running)
                .map(|h| h.thread().name().unwrap_or("unnamed").to_string())
                .collect();
            self.global_thread = global_running;
            self.threads = still_running
                .into_iter()
                .map(|handle| RunningThread {
                    name: handle.thread().name().unwrap_or("unnamed").to_string(),
                    stop: Arc::new(AtomicBool::new(true)),
                    handle,
                })
                .collect();
            let error = StreamsError::CloseTimeout { timeout, threads };
            tracing::warn!(target: "kstreams::runtime", %error, "close timed out");
            return Err(error);
        }
        if self.state() != State::Error {
            self.shared.state.set(State::NotRunning);
        }
        Ok(())
    }
}

/// A non-retriable [`StreamsError::StoreUnavailable`] for store `store`, saying why.
fn unknown_store(store: &str, why: impl Into<String>) -> StreamsError {
    StreamsError::StoreUnavailable {
        store: store.to_string(),
        reason: crate::error::StoreUnavailable::Unknown(why.into()),
    }
}

/// A stream thread the instance runs: its name, its own stop flag, its OS thread.
struct RunningThread {
    name: String,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

/// A stream thread made, not yet running, with its stop flag.
type NewThread = (thread::StreamThread, Arc<AtomicBool>);

/// What the instance's stream threads are made of, kept from the start for threads added later.
struct ThreadFactory {
    parts: (Arc<Topology>, Arc<TopologyPlan>, Arc<layout::Layouts>),
    /// Every thread's state but its transactional id and stop flag.
    state: thread::ThreadState,
    client_id: String,
    process_id: String,
}

impl ThreadFactory {
    /// Stream thread number `index`: Kafka Streams' name, `<client.id>-StreamThread-<n>` (the client ids
    /// librdkafka logs and the broker shows tell the instances of one application apart).
    fn make(
        &self,
        index: usize,
        config: &StreamsConfig,
        supplier: &Arc<dyn ClientSupplier>,
        shared: &Arc<Shared>,
    ) -> Result<NewThread, StreamsError> {
        let stop = Arc::new(AtomicBool::new(false));
        let state = thread::ThreadState {
            // Kafka Streams' exactly_once_v2 id: unique per thread of each running instance, and the same
            // after a restart on the same state (see `process_id`); zombies of other instances are fenced
            // by their group generation, not by this id.
            transactional_id: (config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2)
                .then(|| format!("{}-{}-{index}", config.application_id, self.process_id)),
            stop: stop.clone(),
            ..self.state.clone()
        };
        let name = format!("{}-StreamThread-{index}", self.client_id);
        let thread = thread::StreamThread::new(
            name,
            self.parts.clone(),
            config.clone(),
            supplier.clone(),
            shared.clone(),
            state,
        )?;
        Ok((thread, stop))
    }

    /// The number in a thread name this factory gave.
    fn index_of(&self, name: &str) -> Option<usize> {
        name.strip_prefix(&format!("{}-StreamThread-", self.client_id))?.parse().ok()
    }
}

/// A stream thread of this instance and the tasks it holds (Kafka Streams' `ThreadMetadata`, its name,
/// active and standby tasks).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThreadMetadata {
    /// `<client.id>-StreamThread-<n>`.
    pub thread_name: String,
    /// The tasks it runs, in order.
    pub active_tasks: Vec<crate::TaskId>,
    /// The tasks it keeps a standby of (`num.standby.replicas`, warm-ups), in order.
    pub standby_tasks: Vec<crate::TaskId>,
}

/// What every task of an instance, stream or global, takes from the application's settings and state.
fn task_config(
    config: &StreamsConfig,
    clock: Clock,
    app_dir: Option<std::path::PathBuf>,
    rocksdb: state_store::RocksDbMemory,
) -> crate::task::TaskConfig {
    let mut task_config = crate::task::TaskConfig::new(&config.application_id, clock);
    task_config.deserialization_handler = config.deserialization_handler.clone();
    task_config.processing_handler = config.processing_handler.clone();
    task_config.timestamp_extractor = config.default_timestamp_extractor.clone();
    task_config.app_dir = app_dir;
    task_config.rocksdb = rocksdb;
    task_config.dsl_store = config.default_dsl_store;
    task_config.metric_samples = crate::metrics::sensor::SampleConfig {
        window_ms: config.metrics_sample_window.as_millis().min(i64::MAX as u128) as i64,
        samples: config.metrics_num_samples,
    };
    task_config.metered_stores = config.metrics_recording_level >= crate::config::RecordingLevel::Debug;
    task_config
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        if !self.threads.is_empty() || self.global_thread.is_some() || self.shutdown_watch.is_some() {
            let _ = self.close();
        }
    }
}
