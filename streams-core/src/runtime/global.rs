//! The global thread (Kafka Streams' `GlobalStreamThread`): reads every partition of the global stores'
//! topics into the global tasks. [`KafkaStreams::start`](super::KafkaStreams::start) bootstraps them to
//! the topics' ends before any stream thread starts (the instance is `Rebalancing` meanwhile); then the
//! thread keeps following the topics until the instance closes. A persistent global store is
//! checkpointed in `<state.dir>/<application.id>/global/.checkpoint` (the next offset to read of each
//! partition) after the bootstrap, every commit interval while it moves, and at close, so that a
//! restart reads only what is new.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use state_store::{OffsetCheckpoint, Offsets};

use super::restore::StateRestoreListener;
use super::{Shared, State};
use crate::client::{ClientErrorKind, ClientSupplier, RestoreConsumer, TopicPartition};
use crate::config::StreamsConfig;
use crate::sync::LockUnpoisoned;
use crate::task::global::GlobalTasks;
use crate::time::Clock;
use crate::StreamsError;

/// Records handed to the global tasks per read.
const BATCH: usize = 1_000;

/// How long the thread waits before it looks at the topics' ends again when nothing was new (Kafka
/// Streams' `poll.ms` default).
const IDLE: Duration = Duration::from_millis(100);

/// The global tasks and the consumer that feeds them.
pub(crate) struct GlobalUpdater {
    tasks: Arc<GlobalTasks>,
    consumer: Box<dyn RestoreConsumer>,
    /// The next offset to read of each partition of each global topic.
    positions: BTreeMap<TopicPartition, i64>,
    /// `<app dir>/global`, where a persistent global store's checkpoint goes; `None` when every global
    /// store is in memory (a restart reads the topics again from the beginning).
    checkpoint_dir: Option<PathBuf>,
    checkpointed: BTreeMap<TopicPartition, i64>,
    /// The runtime's clock (a simulation's virtual one), for the checkpoints' interval.
    clock: Clock,
    last_checkpoint_ms: i64,
    commit_interval: Duration,
    task_timeout: Duration,
    listener: Option<Arc<dyn StateRestoreListener>>,
}

impl GlobalUpdater {
    /// The updater of `tasks`, which read the topics of `partitions` (name → partition count), with a
    /// consumer of its own (client id `<client_id>-global-consumer`). Starts from the checkpoint in
    /// `global_dir` when the global stores persist; a checkpoint the topics no longer hold (a topic
    /// recreated or truncated) is an error that names the directory to delete.
    pub(crate) fn new(
        tasks: Arc<GlobalTasks>,
        partitions: &BTreeMap<String, i32>,
        supplier: &dyn ClientSupplier,
        config: &StreamsConfig,
        (client_id, global_dir): (&str, Option<PathBuf>),
        listener: Option<Arc<dyn StateRestoreListener>>,
        clock: Clock,
    ) -> Result<Self, StreamsError> {
        let consumer = supplier.restore_consumer(config, &format!("{client_id}-global-consumer"))?;
        let checkpoint_dir = global_dir.filter(|_| tasks.persistent());
        let checkpoint = match &checkpoint_dir {
            Some(dir) => OffsetCheckpoint::in_dir(dir).read().map_err(|e| StreamsError::StateDir {
                path: dir.clone(),
                message: format!("cannot read the global stores' checkpoint: {e}"),
            })?,
            None => Offsets::new(),
        };
        let mut updater = GlobalUpdater {
            tasks,
            consumer,
            positions: BTreeMap::new(),
            checkpoint_dir,
            checkpointed: BTreeMap::new(),
            last_checkpoint_ms: clock.now_ms(),
            clock,
            commit_interval: config.effective_commit_interval(),
            task_timeout: config.task_timeout,
            listener,
        };
        for topic in updater.tasks.topics().map(str::to_string).collect::<Vec<_>>() {
            for partition in 0..partitions.get(&topic).copied().unwrap_or(0) {
                let tp = TopicPartition::new(&topic, partition);
                let (low, high) = updater.consumer.watermarks(&tp)?;
                let next = match checkpoint.get(&(topic.clone(), partition)).copied() {
                    Some(next) if next < low || next > high => {
                        let dir = updater.checkpoint_dir.clone().unwrap_or_default();
                        return Err(StreamsError::StateDir {
                            path: dir,
                            message: format!(
                                "the global stores' checkpoint says partition {tp} goes on at offset {next}, but the partition holds offsets {low} to {high}: the topic was recreated or truncated; delete this directory to read the global topics again from the beginning"
                            ),
                        });
                    }
                    Some(next) => {
                        updater.checkpointed.insert(tp.clone(), next);
                        next
                    }
                    None => low,
                };
                updater.positions.insert(tp, next);
            }
        }
        Ok(updater)
    }

    /// The global tasks, whose stores the stream threads' joins read.
    pub(crate) fn tasks(&self) -> Arc<GlobalTasks> {
        self.tasks.clone()
    }

    /// Reads every partition to its end (the bootstrap), reporting each to the restore listener, then
    /// checkpoints.
    pub(crate) fn bootstrap(&mut self) -> Result<(), StreamsError> {
        let started = Instant::now();
        let mut total = 0;
        for tp in self.positions.keys().cloned().collect::<Vec<_>>() {
            total += self.read(&tp, true)?;
        }
        tracing::info!(target: "kstreams::runtime::global", records = total, took = ?started.elapsed(), "global stores bootstrapped");
        self.checkpoint()
    }

    /// Reads what is new in partition `tp` (up to its end now); returns how many records. Under
    /// exactly-once the end is the last stable offset, as Kafka Streams' global consumer reads: records
    /// behind a transaction still open come when it ends, and the instance does not wait for it.
    fn read(&mut self, tp: &TopicPartition, report: bool) -> Result<u64, StreamsError> {
        let from = self.positions[tp];
        let end = self.consumer.readable_end(tp)?;
        if from >= end {
            return Ok(0);
        }
        let store = self.tasks.store_of(&tp.topic).unwrap_or_default().to_string();
        let listener = self.listener.clone().filter(|_| report);
        if let Some(l) = &listener {
            l.on_restore_start(tp, &store, from, end);
        }
        let (tasks, mut count) = (self.tasks.clone(), 0u64);
        let last = self.consumer.read(tp, from, end, BATCH, &mut |records| {
            tasks.process_all(records)?;
            count += records.len() as u64;
            if let (Some(l), Some(last)) = (&listener, records.last()) {
                l.on_batch_restored(tp, &store, last.offset, records.len() as u64);
            }
            Ok(())
        })?;
        if let Some(l) = &listener {
            l.on_restore_end(tp, &store, count);
        }
        // A read may go past `end` (the next records were fetched with the last one): on from there, so
        // that no record reaches a global store's processor twice.
        self.positions.insert(tp.clone(), last.map_or(end, |last| end.max(last + 1)));
        Ok(count)
    }

    /// Reads what is new in every partition; checkpoints once a commit interval has passed. Returns
    /// whether anything was new. One turn of the thread's loop (a simulation steps it).
    pub(crate) fn poll(&mut self) -> Result<bool, StreamsError> {
        let mut read = 0;
        for tp in self.positions.keys().cloned().collect::<Vec<_>>() {
            read += self.read(&tp, false)?;
        }
        let since = self.clock.now_ms().saturating_sub(self.last_checkpoint_ms);
        if since >= self.commit_interval.as_millis() as i64 && self.positions != self.checkpointed {
            self.checkpoint()?;
        }
        Ok(read > 0)
    }

    /// Flushes the global stores and writes where each partition goes on (persistent stores only).
    fn checkpoint(&mut self) -> Result<(), StreamsError> {
        self.last_checkpoint_ms = self.clock.now_ms();
        let Some(dir) = &self.checkpoint_dir else { return Ok(()) };
        self.tasks.flush()?;
        let offsets: Offsets =
            self.positions.iter().map(|(tp, &next)| ((tp.topic.to_string(), tp.partition), next)).collect();
        std::fs::create_dir_all(dir)
            .map_err(|e| StreamsError::StateDir { path: dir.clone(), message: e.to_string() })?;
        OffsetCheckpoint::in_dir(dir)
            .write(&offsets)
            .map_err(|e| StreamsError::StateDir { path: dir.clone(), message: e.to_string() })?;
        self.checkpointed = self.positions.clone();
        Ok(())
    }

    /// Follows the topics until the instance shuts down. A client error the broker may get over (all
    /// brokers down, a timeout) is retried for up to `task.timeout.ms`; any other failure, or one that
    /// lasts longer, puts the instance in `Error`, as in Kafka Streams, where the global thread cannot be
    /// replaced.
    pub(crate) fn run(mut self, shared: Arc<Shared>) {
        let mut failing_since: Option<Instant> = None;
        let mut failed = false;
        while !shared.shutdown.load(Ordering::SeqCst) {
            match self.poll() {
                Ok(read) => {
                    failing_since = None;
                    if !read {
                        std::thread::sleep(IDLE);
                    }
                }
                Err(StreamsError::Client(error))
                    if error.kind == ClientErrorKind::Retriable
                        && failing_since.get_or_insert_with(Instant::now).elapsed() < self.task_timeout =>
                {
                    tracing::warn!(target: "kstreams::runtime::global", %error, "reading the global topics failed; trying again");
                    std::thread::sleep(IDLE);
                }
                Err(error) => {
                    tracing::error!(target: "kstreams::runtime::global", error = %crate::handler::error_chain(&error),
                        "the global thread failed; the instance shuts down to ERROR");
                    shared.error.lock_unpoisoned().get_or_insert(error);
                    shared.shutdown.store(true, Ordering::SeqCst);
                    failed = true;
                    break;
                }
            }
        }
        self.close();
        // Only once the stores are checkpointed and closed, as Kafka Streams reaches ERROR after its
        // threads have stopped: a `clean_up` that waits for ERROR cannot race the last checkpoint.
        if failed {
            shared.state.set(State::Error);
        }
    }

    /// Checkpoints the stores and closes the tasks.
    pub(crate) fn close(mut self) {
        if let Err(error) = self.checkpoint() {
            tracing::warn!(target: "kstreams::runtime::global", %error, "cannot checkpoint the global stores at close");
        }
        self.tasks.close();
    }
}
