//! A stream thread: one consumer, one producer, and the tasks of the partitions assigned to it. It polls
//! in batches, runs each task's records through the task (picking across the task's partitions by the
//! smallest timestamp), hands outputs to the producer without waiting, fires punctuations, and commits
//! every commit interval and before partitions are taken away:
//! - at_least_once: flush the producer, commit the stores (a suppression buffer or an outer join logs
//!   the deletes of what it emitted only now) and flush again, checkpoint, then commit the consumed
//!   offsets;
//! - exactly_once_v2: commit the transaction that holds the outputs, the changelog writes and the
//!   consumed offsets, then apply the stores' held writes and checkpoint.
//!
//! Under exactly_once_v2 a failed transaction is never fatal by itself: the thread aborts it, closes
//! every task without committing (their stores drop what they held; nothing was applied), and rejoins
//! the group, so that each task starts again from the last committed offsets and state. The same
//! happens under either guarantee when this member was fenced out of the group (a zombie) or a broker
//! call timed out (at_least_once then redoes the work since the last commit: duplicates, no loss).
//!
//! The loop is [`StreamThread::step`]: `run` calls it on the thread's own OS thread, and the
//! simulation (`crate::simulation`) calls it for many threads of many instances from one, in a seeded
//! order on a virtual clock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use super::layout::Layouts;
use super::member_consumer::{Instance, MemberConsumer};
use super::partition_group::{PartitionGroup, IDLE_DISABLED};
use super::producer::ThreadProducer;
use super::restore::{self, Progress, Restoration, RestorePlan, StateRestoreListener};
use super::standby::{StandbyAssignment, StandbyTask, StandbyUpdateListener, Standbys, SuspendReason};
use super::thread_metrics::{TaskFigures, ThreadSensors};
use super::topics::TopicLayout;
use super::{Shared, State, StreamThreadExceptionResponse};
use crate::client::{
    ClientError, ClientErrorKind, ClientSupplier, CommittedOffsets, OffsetAndMetadata, OffsetCommitter,
    RebalanceListener, RestoreConsumer, StreamsAdmin, StreamsConsumer, TopicPartition,
};
use crate::config::{GroupAssignor, ProcessingGuarantee, StreamsConfig};
use crate::handler::{ProductionExceptionHandler, ProductionResponse};
use crate::record::{ProducedRecord, RawRecord};
use crate::sync::{lock_task, try_lock_task_for, LockUnpoisoned};
use crate::task::{Task, TaskConfig};
use crate::time::Clock;
use crate::topology::plan::{SubtopologyPlan, TopologyPlan};
use crate::{StreamsError, TaskId, TaskMetrics, Topology};

/// The part of a thread that rebalance callbacks also use.
pub(crate) struct ThreadInner {
    /// This thread's own handle, for the instance's [`TaskHolders`].
    me: Weak<Mutex<ThreadInner>>,
    name: String,
    /// This thread's own stop flag (see [`ThreadState::stop`]).
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Whether its counters went to those of the threads that ended (nothing is published after).
    metrics_retired: bool,
    topology: Arc<Topology>,
    plan: Arc<TopologyPlan>,
    /// The layout this thread subscribed with, and its generation.
    layout: Arc<TopicLayout>,
    generation: u64,
    layouts: Arc<Layouts>,
    task_config: TaskConfig,
    tasks: BTreeMap<TaskId, Task>,
    /// Tasks restoring their stores, a step at a time between polls; they join `tasks` once restored.
    restoring: BTreeMap<TaskId, (Task, Restoration)>,
    /// Standby tasks (`group.assignor=streams`): copies of other instances' tasks kept up to date.
    standbys: Standbys,
    /// The records fetched for each open task and not processed yet.
    inputs: BTreeMap<TaskId, PartitionGroup>,
    /// `max.task.idle.ms` (-1: never wait).
    max_task_idle_ms: i64,
    /// `buffered.records.per.partition`.
    max_buffered: usize,
    /// The next offset to commit for each partition processed since the last commit.
    offsets: BTreeMap<TopicPartition, i64>,
    /// Committed offsets of repartition-topic partitions not yet purged: the records below them are
    /// consumed for good and can be deleted.
    purgeable: BTreeMap<TopicPartition, i64>,
    producer: ThreadProducer,
    restorer: Box<dyn RestoreConsumer>,
    production_handler: Arc<dyn ProductionExceptionHandler>,
    /// Records the broker rejected and the handler let go.
    production_errors: u64,
    /// An error raised inside a rebalance callback, for the loop to act on.
    fatal: Option<StreamsError>,
    closed_metrics: TaskMetrics,
    shared: Arc<Shared>,
    restore_listener: Option<Arc<dyn StateRestoreListener>>,
    standby_listener: Option<Arc<dyn StandbyUpdateListener>>,
    /// Past this many bytes of writes held by stores (exactly-once), the thread commits early.
    uncommitted_max_bytes: usize,
    /// Recoveries (abort, close tasks, rejoin) since the last successful commit.
    recoveries: u32,
    /// When the first of those recoveries happened.
    failing_since_ms: Option<i64>,
    /// When the last recovery happened.
    last_recovery_ms: i64,
    task_timeout: Duration,
    /// Recoveries in all.
    total_recoveries: u64,
    /// Interactive queries waiting for this thread's lock.
    queries_waiting: Arc<AtomicUsize>,
    /// What the thread measures for the metrics it publishes.
    sensors: ThreadSensors,
}

/// Which stream thread of this instance holds each open task (and so its state directory). A thread
/// assigned a task that another thread here still holds takes it from that thread: the group gives a
/// partition to one member per generation, so the other thread's hold is stale (it lost the partition
/// in a pause of the whole process and has not polled since to find out).
#[derive(Default)]
pub(crate) struct TaskHolders(Mutex<BTreeMap<TaskId, Holder>>);

/// The thread that holds a task.
#[derive(Clone)]
struct Holder {
    name: String,
    inner: Weak<Mutex<ThreadInner>>,
    /// Whether the task is still restoring its stores: a query is told so without waiting for the
    /// thread's lock, which a restore step holds.
    restoring: bool,
    /// Whether the thread holds a standby of the task, not the task.
    standby: bool,
    /// The holding thread's count of queries waiting for its lock (see `StreamThread::let_queries_in`).
    queries_waiting: Arc<AtomicUsize>,
}

impl TaskHolders {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<TaskId, Holder>> {
        self.0.lock_unpoisoned()
    }

    /// Each task and the name of the thread that holds it, and whether it holds a standby of it (not the
    /// task), in task order.
    pub(crate) fn holders(&self) -> Vec<(TaskId, String, bool)> {
        self.lock().iter().map(|(id, holder)| (*id, holder.name.clone(), holder.standby)).collect()
    }

    /// Whether task `id` is held here and still restoring.
    pub(crate) fn restoring(&self, id: TaskId) -> bool {
        self.lock().get(&id).is_some_and(|holder| holder.restoring)
    }

    fn set_restoring(&self, id: TaskId, restoring: bool) {
        if let Some(holder) = self.lock().get_mut(&id) {
            holder.restoring = restoring;
        }
    }

    /// Runs `read` on task `id` (and whether its state may be behind: restoring, or a standby) under its
    /// thread's lock, so between two of the thread's steps; `None` when no thread of this instance holds
    /// the task. The registry's lock is let go first: a reader holds one thread's lock at a time, and
    /// nothing else.
    pub(crate) fn read_task<R>(&self, id: TaskId, read: impl FnOnce(&Task, bool) -> R) -> Option<R> {
        let (holder, waiting) = {
            let holders = self.lock();
            let holder = holders.get(&id)?;
            (holder.inner.upgrade()?, holder.queries_waiting.clone())
        };
        waiting.fetch_add(1, Ordering::SeqCst);
        let inner = holder.lock_unpoisoned();
        waiting.fetch_sub(1, Ordering::SeqCst);
        match (inner.tasks.get(&id), inner.restoring.get(&id), inner.standbys.get(id)) {
            (Some(task), _, _) => Some(read(task, false)),
            (None, Some((task, _)), _) => Some(read(task, true)),
            (None, None, Some(standby)) => Some(read(standby.task(), true)),
            (None, None, None) => None,
        }
    }
}

/// Whether a commit writes every task's checkpoint (flushing its stores first), or only those whose
/// changelogs moved on enough since their last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checkpoint {
    /// Before tasks close or move: the next owner restores only the tail.
    Now,
    /// At the commit interval.
    WhenDue,
}

/// Task `id`'s sub-topology in `plan`.
fn subtopology(plan: &TopologyPlan, id: TaskId) -> Result<&SubtopologyPlan, StreamsError> {
    let sub = plan.subtopologies.iter().find(|s| s.id == id.subtopology);
    sub.ok_or_else(|| StreamsError::Internal(format!("no sub-topology {}", id.subtopology)))
}

/// Recovering goes on at most this many times in a row, and for at most `task.timeout.ms`, without a
/// successful commit in between: past either, the failure is fatal (a record the broker always
/// refuses, a broker that refuses every commit). The count catches a failure that repeats at once;
/// the time, like Kafka Streams' `task.timeout.ms`, lets a thread ride out a broker that is away for a
/// while, or a burst of faults.
const MAX_RECOVERIES: u32 = 100;

impl ThreadInner {
    fn task_id(&self, topic: &str, partition: i32) -> Option<TaskId> {
        self.layout.reader.get(topic).map(|&subtopology| TaskId { subtopology, partition })
    }

    /// The commit: held-back records are written out; then at_least_once flushes the producer, commits
    /// the stores, checkpoints, then commits the offsets through `committer`; exactly_once_v2 commits the
    /// transaction with the offsets, then flushes the stores (applying their held writes) and
    /// checkpoints.
    fn commit(&mut self, committer: &dyn OffsetCommitter, checkpoint: Checkpoint) -> Result<(), StreamsError> {
        let began = std::time::Instant::now();
        // Records held back by processors (the record cache) are written and forwarded first; their
        // outputs go out with the rest before the producer is flushed.
        self.each_task_then_send(Task::flush_processors)?;
        let offsets = self.committable_offsets();
        let started = std::time::Instant::now();
        if self.producer.exactly_once() {
            self.producer.commit_transaction(&offsets, committer)?;
        } else {
            self.flush_producer()?;
            // Stores that log deletes at the commit (suppression buffers, outer joins' waiting records)
            // write them now that what they emitted is acknowledged, and they are acknowledged before the
            // offsets move on: a waiting record whose delete was lost would come out again, unmatched.
            self.each_task_then_send(Task::commit_stores)?;
            self.flush_producer()?;
        }
        let produced = started.elapsed();
        for task in self.tasks.values_mut() {
            if self.producer.exactly_once() {
                task.commit_stores()?;
            }
            // The changelog records this task wrote are acknowledged now: the checkpoint may cover them.
            for changelog in task.changelogs().to_vec() {
                if let Some(offset) = self.producer.acked_offset(&changelog.partition) {
                    task.set_changelog_offset(&changelog.partition, offset);
                }
            }
            // Flushing RocksDB and writing the checkpoint only now and then: after a crash the restore
            // replays from an older checkpoint, at most some 10,000 records more.
            if checkpoint == Checkpoint::Now || task.checkpoint_due() {
                task.flush()?;
                task.checkpoint()?;
            }
        }
        let stored = started.elapsed();
        if !self.producer.exactly_once() {
            committer.commit(&offsets)?;
        }
        for task in self.tasks.values_mut() {
            task.clear_commit_request();
        }
        for (tp, committed) in &offsets {
            if let Some(task) = self.task_id(&tp.topic, tp.partition).and_then(|id| self.tasks.get_mut(&id)) {
                task.input_committed(tp);
            }
            if self.layout.repartition.contains(&*tp.topic) {
                self.purgeable.insert(tp.clone(), committed.offset);
            }
        }
        tracing::debug!(target: "kstreams::runtime::thread", thread = %self.name, producer = ?produced, stores = ?(stored - produced),
            offsets = ?(started.elapsed() - stored), "committed");
        if !offsets.is_empty() {
            self.recoveries = 0;
            self.failing_since_ms = None;
        }
        if !offsets.is_empty() {
            self.sensors.committed(began.elapsed(), self.tasks.len(), self.task_config.clock.now_ms());
        }
        self.standbys.checkpoint_if_due();
        self.publish_metrics();
        Ok(())
    }

    /// Runs `step` on every task, then sends what it wrote (outputs, changelog records).
    fn each_task_then_send(&mut self, step: fn(&mut Task) -> Result<(), StreamsError>) -> Result<(), StreamsError> {
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in ids {
            let mut task = self.tasks.remove(&id).expect("listed above");
            let result = step(&mut task).and_then(|()| self.send_outputs_of(&mut task));
            self.tasks.insert(id, task);
            result?;
        }
        Ok(())
    }

    /// Waits until the broker acknowledged every record sent (at_least_once). Dead letters of rejected
    /// records are flushed too; a handler that keeps giving records the broker rejects fails the thread
    /// after a few rounds rather than loop.
    fn flush_producer(&mut self) -> Result<(), StreamsError> {
        let mut rounds = 0;
        while let Err(error) = self.producer.flush() {
            rounds += 1;
            if rounds > 3 {
                return Err(error.into());
            }
            self.delivery_failed(error)?;
        }
        Ok(())
    }

    /// The offsets consumed since the last commit, each with the metadata Kafka Streams commits beside it:
    /// its partition's time and its task's processor metadata (see `processor::offset_metadata`).
    fn committable_offsets(&mut self) -> Vec<(TopicPartition, OffsetAndMetadata)> {
        let offsets = std::mem::take(&mut self.offsets);
        offsets
            .into_iter()
            .filter_map(|(tp, offset)| {
                let task = self.task_id(&tp.topic, tp.partition).and_then(|id| self.tasks.get(&id));
                let Some(task) = task else {
                    // Committed without its task's metadata, the offset would erase what the group
                    // holds for the partition; its new owner starts from the last commit instead.
                    tracing::warn!(target: "kstreams::runtime::thread", partition = %tp, offset, "no open task for a consumed partition; its offset is not committed");
                    return None;
                };
                Some((tp.clone(), OffsetAndMetadata { offset, metadata: task.offset_metadata(&tp) }))
            })
            .collect()
    }

    /// Whether `error` is one the thread recovers from by [`ThreadInner::recover`]: this member was
    /// fenced out, (exactly_once_v2) a transaction failed, or (either guarantee) a call timed out or
    /// the broker refused it for a while. After a timeout the work since the last commit is redone from
    /// there, as Kafka Streams does for a retriable send error (its `TaskCorruptedException`).
    fn recoverable(&self, error: &StreamsError) -> bool {
        if self.damaged_logged_store(error).is_some() {
            return true;
        }
        let StreamsError::Client(error) = error else { return false };
        match error.kind {
            ClientErrorKind::Fenced | ClientErrorKind::Retriable => true,
            ClientErrorKind::Abortable => self.producer.exactly_once(),
            ClientErrorKind::Fatal => false,
        }
    }

    /// Recovers from a recoverable `error`: aborts the open transaction (or replaces a producer in
    /// doubt), closes every task without committing, and rejoins the group, so that each task starts
    /// again from the last committed offsets and state. Fails with `error` when it is not recoverable
    /// or keeps coming back.
    fn recover(&mut self, error: StreamsError, consumer: &mut dyn StreamsConsumer) -> Result<(), StreamsError> {
        let now = self.task_config.clock.now_ms();
        // A thread with no input to commit never clears its count: a recovery longer ago than
        // task.timeout.ms ended that run of failures all the same.
        if now - self.last_recovery_ms > self.task_timeout.as_millis() as i64 {
            self.recoveries = 0;
            self.failing_since_ms = None;
        }
        let failing_since = *self.failing_since_ms.get_or_insert(now);
        let too_long = now - failing_since > self.task_timeout.as_millis() as i64;
        if !self.recoverable(&error) || self.recoveries >= MAX_RECOVERIES || too_long {
            return Err(error);
        }
        let damaged = self.damaged_logged_store(&error);
        // Damaged store files are no broker's doing, but what the open transaction holds of their task
        // is dropped all the same.
        let store_damage = match (&error, &damaged) {
            (StreamsError::Store(damage), Some(_)) => {
                Some(ClientError::new("read a state store", damage.to_string(), ClientErrorKind::Abortable))
            }
            _ => None,
        };
        let cause = match (&error, &store_damage) {
            (StreamsError::Client(cause), _) | (_, Some(cause)) => cause,
            _ => return Err(error),
        };
        if store_damage.is_some() && !self.producer.exactly_once() {
            // As Kafka Streams does before it revives a corrupted task: under at_least_once the work done
            // since the last commit is committed first (its changelog records acknowledged), so the full
            // restore takes it in and nothing is done twice; only the record that met the damage is redone.
            if let Err(e) = self.commit(&*consumer, Checkpoint::Now) {
                tracing::warn!(target: "kstreams::runtime::thread", thread = %self.name, error = %e,
                    "could not commit before restoring the damaged store; the work since the last commit is redone");
            }
        }
        self.recoveries += 1;
        self.total_recoveries += 1;
        self.last_recovery_ms = now;
        tracing::warn!(
            target: "kstreams::runtime::thread",
            thread = %self.name,
            error = %cause,
            attempt = self.recoveries,
            "closing every task without committing and rejoining the group"
        );
        if let Err(replacing) = self.producer.abort(cause) {
            // The broker may still be away: the producer is replaced before its next transaction, and
            // task.timeout.ms bounds how long that may keep failing.
            if !matches!(replacing.kind, ClientErrorKind::Retriable) {
                return Err(replacing.into());
            }
            tracing::warn!(target: "kstreams::runtime::thread", thread = %self.name, error = %replacing, "the producer could not be replaced yet; trying again");
        }
        self.close_all_tasks();
        if let Some(dir) = damaged {
            // Once its files are gone the store's checkpoint is not trusted: it is restored in full.
            tracing::warn!(target: "kstreams::runtime::thread", thread = %self.name, dir = %dir.display(),
                "deleting the damaged store's files; it is restored from its changelog when its task opens again");
            let store = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            state_store::RocksDbKeyValueStore::destroy(&store, &dir)?;
        }
        consumer.rejoin()?;
        self.shared.state.set(State::Rebalancing);
        Ok(())
    }

    /// The directory of the store whose damaged files `error` reports (`<task dir>/rocksdb/<store>`),
    /// when that store is one of this application's logged stores, so that wiping it and restoring it
    /// from its changelog loses nothing. A damaged store without a changelog stays an error: its
    /// contents exist nowhere else.
    fn damaged_logged_store(&self, error: &StreamsError) -> Option<std::path::PathBuf> {
        let StreamsError::Store(state_store::StoreError::Corrupt { path, .. }) = error else { return None };
        let app_dir = self.task_config.app_dir.as_deref()?;
        // A window or session store's segment is a database of its own inside the store's directory.
        let dir = path.ancestors().find(|a| a.parent().and_then(|p| p.file_name()) == Some("rocksdb".as_ref()))?;
        let store = dir.file_name()?.to_str()?;
        let logged =
            self.task_config.changelogs && self.topology.stores.iter().any(|d| d.name == store && d.logging_enabled);
        (logged && dir.starts_with(app_dir)).then(|| dir.to_path_buf())
    }

    /// Closes every task without committing: what their stores held for the open transaction is
    /// dropped; their processed offsets are forgotten.
    fn close_all_tasks(&mut self) {
        let standbys = self.standbys.ids();
        let ids: Vec<TaskId> = self.tasks.keys().chain(self.restoring.keys()).copied().chain(standbys).collect();
        for id in ids {
            self.close_task(id);
        }
        self.offsets.clear();
    }

    /// At the thread's end: another thread reports the task directories no thread holds.
    fn stop_reporting_task_dirs(&self) {
        let mut reporter = self.shared.task_dir_reporter.lock_unpoisoned();
        if reporter.as_deref() == Some(self.name.as_str()) {
            *reporter = None;
        }
    }

    /// At the thread's end: its counters join those of the threads that ended, so that a thread of the
    /// same name (a replacement, a thread added later) starts from zero and nothing is counted twice.
    fn retire_metrics(&mut self) {
        self.metrics_retired = true;
        let mut metrics = self.shared.thread_metrics.lock_unpoisoned();
        if let Some(mine) = metrics.remove(&self.name) {
            let ended = metrics.get(ENDED_THREADS).copied().unwrap_or_default();
            metrics.insert(ENDED_THREADS.to_string(), ended + mine);
        }
    }

    fn publish_metrics(&self) {
        // The consumer's close may still commit (a last revocation): counted already.
        if self.metrics_retired {
            return;
        }
        let mut open: TaskMetrics = self.tasks.values().map(Task::metrics).sum();
        open.enforced_processing += self.inputs.values().map(PartitionGroup::enforced).sum::<u64>();
        open.production_errors += self.production_errors;
        open.recoveries += self.total_recoveries;
        let mut metrics = self.shared.thread_metrics.lock_unpoisoned();
        metrics.insert(self.name.clone(), self.closed_metrics + open);
    }

    /// Closes task `id`, or this thread's standby of it.
    fn close_task(&mut self, id: TaskId) {
        self.close_standby(id, SuspendReason::Migrated);
        let enforced = self.inputs.remove(&id).map_or(0, |input| input.enforced());
        self.closed_metrics.enforced_processing += enforced;
        let mut restore_remaining = 0;
        let restoring = self.restoring.remove(&id).map(|(mut task, mut restoration)| {
            restore_remaining = restoration.remaining();
            restoration.abandon(&mut task);
            self.shared.restoring_tasks.fetch_sub(1, Ordering::SeqCst);
            task
        });
        if let Some(mut task) = self.tasks.remove(&id).or(restoring) {
            let now = self.task_config.clock.now_ms();
            self.sensors.publish_task(TaskFigures { id, task: &mut task, restore_remaining, enforced }, now);
            self.sensors.task_closed(id, now);
            self.closed_metrics = self.closed_metrics + task.metrics();
            if let Err(e) = task.close() {
                tracing::warn!(target: "kstreams::runtime::thread", task = %id, error = %e, "error closing task");
            }
            tracing::info!(target: "kstreams::runtime::thread", task = %id, "task closed");
            self.forget_holder(id);
        }
    }

    /// Closes this thread's standby of task `id`, if it has one, telling the listener why.
    fn close_standby(&mut self, id: TaskId, reason: SuspendReason) {
        if let Some(standby) = self.standbys.remove(id) {
            standby.close(reason);
            self.forget_holder(id);
        }
    }

    /// Enters this thread in the holders' registry as the holder of task `id` (restoring, or a standby
    /// of it) before it opens the task's files, unless another live thread of the instance is there:
    /// looked at and entered under one lock, so that two threads never open one task's files at once.
    /// Whether it did.
    fn reserve(&self, id: TaskId, restoring: bool, standby: bool) -> bool {
        let mut holders = self.shared.task_holders.lock();
        if holders.get(&id).is_some_and(|h| h.name != self.name && h.inner.strong_count() > 0) {
            return false;
        }
        let holder = Holder {
            name: self.name.clone(),
            inner: self.me.clone(),
            restoring,
            standby,
            queries_waiting: self.queries_waiting.clone(),
        };
        holders.insert(id, holder);
        true
    }

    /// Takes this thread out of the holders' registry for task `id`.
    fn forget_holder(&self, id: TaskId) {
        let mut holders = self.shared.task_holders.lock();
        if holders.get(&id).is_some_and(|holder| holder.name == self.name) {
            holders.remove(&id);
        }
    }

    /// Opens the standbys the last assignment gave this thread and closes those it no longer gives. A
    /// task another thread of this instance still holds is left for a later step.
    fn keep_standbys(&mut self) -> Result<(), StreamsError> {
        let (missing, unwanted) = self.standbys.follow_assignment();
        for id in unwanted {
            self.close_task(id);
        }
        for id in missing {
            if self.tasks.contains_key(&id) || self.restoring.contains_key(&id) {
                continue;
            }
            // Another thread here holds it: as a task its assignment has not moved yet, or as a standby
            // it gives up at its next step. Either way its own step lets it go.
            if !self.reserve(id, false, true) {
                continue;
            }
            match self.open_standby(id) {
                Ok(standby) => self.standbys.insert(standby),
                Err(e) => {
                    self.forget_holder(id);
                    self.standbys.failed(id, &e);
                }
            }
            self.producer.check_running()?;
        }
        Ok(())
    }

    fn open_standby(&mut self, id: TaskId) -> Result<StandbyTask, StreamsError> {
        let topology = self.plan.clone();
        let sub = subtopology(&topology, id)?;
        let (plan, recorded_epoch) = self.prepare_stores(id, sub)?;
        let task = Task::new(&self.topology, sub, id.partition, &self.task_config)?;
        StandbyTask::new(task, plan, recorded_epoch, &mut *self.restorer, self.standby_listener.clone())
    }

    /// Keeps the standbys up to date, once no task of this thread restores (a restore comes first: its
    /// task is waited for).
    fn update_standbys(&mut self) -> Result<(), StreamsError> {
        if !self.restoring.is_empty() {
            return Ok(());
        }
        // As a restore: a long catch-up is time the thread runs, not a pause (at_least_once).
        let producer = &mut self.producer;
        let mut running = || producer.check_running().map_err(StreamsError::from);
        for id in self.standbys.update(&mut *self.restorer, &mut running)? {
            self.forget_holder(id);
        }
        Ok(())
    }

    /// The offset sum of every task this thread has state of (Kafka Streams' `getTaskOffsetSums`): a task
    /// it runs or restores is caught up (`assignor::LATEST_OFFSET`), a standby reports what it applied,
    /// and, from the instance's one reporting thread (`Shared::task_dir_reporter`), a task directory no
    /// thread holds reports its checkpoint.
    fn offset_sums(&self) -> BTreeMap<TaskId, i64> {
        let reports_dirs = {
            let mut reporter = self.shared.task_dir_reporter.lock_unpoisoned();
            reporter.get_or_insert_with(|| self.name.clone()) == &self.name
        };
        let mut sums: BTreeMap<TaskId, i64> = match &self.task_config.app_dir {
            Some(dir) if reports_dirs => {
                let held = self.shared.task_holders.holders();
                let mut sums = super::state_dir::checkpointed_offset_sums(dir);
                sums.retain(|id, _| !held.iter().any(|(h, name, _)| h == id && *name != self.name));
                sums
            }
            _ => BTreeMap::new(),
        };
        sums.extend(self.standbys.offset_sums());
        let running = self.tasks.keys().chain(self.restoring.keys());
        sums.extend(running.map(|&id| (id, super::assignor::LATEST_OFFSET)));
        sums
    }

    /// Closes task `id` in another thread of this instance that still holds it, without committing
    /// (see [`TaskHolders`]). The holder's lock is taken without the registry's, so that a holder
    /// closing a task of its own meanwhile cannot deadlock with us.
    fn take_from_other_thread(&mut self, id: TaskId) -> Result<(), StreamsError> {
        let holder = self.shared.task_holders.lock().get(&id).cloned();
        let Some(Holder { name, inner: holder, standby, .. }) = holder.filter(|holder| holder.name != self.name) else {
            return Ok(());
        };
        let Some(holder) = holder.upgrade() else { return Ok(()) };
        if standby {
            tracing::debug!(target: "kstreams::runtime::thread", task = %id, from = %name, to = %self.name, "closing another thread's standby of the task");
        } else {
            tracing::warn!(target: "kstreams::runtime::thread", task = %id, from = %name, to = %self.name, "taking a task another thread of this instance still holds; it lost the task without knowing yet");
        }
        // Bounded: that thread may be taking a task of ours at the same moment. Its files are not
        // touched while it may still have them open: the thread recovers and the task comes again.
        let Some(mut other) = try_lock_task_for(&holder, Duration::from_secs(2)) else {
            let message = format!("thread `{name}` of this instance still holds task {id} and stayed busy");
            return Err(ClientError::new("take a task over", message, ClientErrorKind::Retriable).into());
        };
        other.close_task(id);
        let partitions: Vec<TopicPartition> =
            other.offsets.keys().filter(|tp| other.task_id(&tp.topic, tp.partition) == Some(id)).cloned().collect();
        for tp in partitions {
            other.offsets.remove(&tp);
        }
        Ok(())
    }

    /// Decides, before task `id`'s stores are opened, which of them can be trusted: where each logged
    /// store's restore starts (after the checkpoint, or from the log's start), and with which recorded
    /// owner epoch; the stores that cannot be trusted are wiped, to be restored in full.
    fn prepare_stores(
        &mut self,
        id: TaskId,
        sub: &SubtopologyPlan,
    ) -> Result<(RestorePlan, Option<i32>), StreamsError> {
        let logged = Task::logged_stores(&self.topology, sub, &self.task_config);
        if logged.is_empty() {
            return Ok(Default::default());
        }
        let task_dir = self.task_config.task_dir(id);
        let (checkpoint, recorded_epoch) =
            task_dir.as_deref().map(|dir| restore::read_checkpoint(id, dir)).unwrap_or_default();
        let partitions: Vec<(String, TopicPartition)> = logged
            .iter()
            .map(|store| {
                let topic = crate::task::changelog_topic(&self.task_config.application_id, store);
                (store.clone(), TopicPartition::new(&topic, id.partition))
            })
            .collect();
        let mut plan = restore::plan_restore(id, &partitions, &checkpoint, &mut *self.restorer)?;
        for (store, (start, _, _)) in &mut plan {
            let Some(dir) = &task_dir else { continue };
            let store_dir = crate::store::store_dir(dir, store);
            // A checkpoint vouches for files that are there: with none, the store would open empty.
            if start.is_some() && !state_store::holds_files(&store_dir) {
                tracing::warn!(target: "kstreams::runtime::thread", task = %id, store = %store, dir = %store_dir.display(),
                    "the checkpoint covers a store whose files are gone; restoring it in full");
                *start = None;
            }
            if start.is_none() {
                state_store::RocksDbKeyValueStore::destroy(store, &store_dir)?;
            }
        }
        if let Some(dir) = &task_dir {
            restore::forget_full_restores(id, dir, &checkpoint, &partitions, &plan)?;
        }
        Ok((plan, recorded_epoch))
    }

    /// Opens task `id` with what the group committed for its partitions: running at once when its stores
    /// have nothing to restore, else restoring (see [`ThreadInner::restore_step`]).
    fn open_task(&mut self, id: TaskId, committed: &CommittedOffsets) -> Result<(), StreamsError> {
        if self.tasks.contains_key(&id) || self.restoring.contains_key(&id) {
            return Ok(());
        }
        // A standby of the task on this thread becomes the task with its stores open; one that cannot,
        // or one in another thread, hands its state over through its checkpoint.
        let standby = self.take_standby_over(id);
        if standby.is_none() {
            self.close_standby(id, SuspendReason::Promoted);
        }
        self.close_task(id);
        let reserved = self.take_from_other_thread(id).and_then(|()| match self.reserve(id, true, false) {
            true => Ok(()),
            false => {
                let message = format!("another thread of this instance took task {id} meanwhile");
                Err(ClientError::new("take a task over", message, ClientErrorKind::Retriable).into())
            }
        });
        if let Err(e) = reserved {
            if let Some((mut task, ..)) = standby {
                if let Err(e) = task.close() {
                    tracing::warn!(target: "kstreams::runtime::thread", task = %id, error = %e, "error closing the standby taken over");
                }
                self.forget_holder(id);
            }
            return Err(e);
        }
        let opened = self.open_reserved(id, committed, standby);
        if opened.is_err() && !self.tasks.contains_key(&id) && !self.restoring.contains_key(&id) {
            self.forget_holder(id);
        }
        opened
    }

    /// This thread's standby of task `id`, taken out to become the task with its stores open: the task,
    /// where its restore starts, and the highest owner epoch seen. `None` when there is none, or it
    /// goes through its checkpoint instead (see `StandbyTask::takeover_plan`).
    fn take_standby_over(&mut self, id: TaskId) -> Option<(Task, RestorePlan, Option<i32>)> {
        match self.standbys.get(id)?.takeover_plan(&mut *self.restorer) {
            Ok(Some(plan)) => {
                let (task, epoch) = self.standbys.remove(id)?.into_task();
                Some((task, plan, epoch))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(target: "kstreams::runtime::thread", task = %id, error = %e,
                    "could not take the standby over open; it hands its state over through its checkpoint");
                None
            }
        }
    }

    /// [`open_task`](Self::open_task) once the task is this thread's in the holders' registry; from
    /// this thread's standby of it when there is one to take over.
    fn open_reserved(
        &mut self,
        id: TaskId,
        committed: &CommittedOffsets,
        standby: Option<(Task, RestorePlan, Option<i32>)>,
    ) -> Result<(), StreamsError> {
        let (mut task, restoration, plan) = match standby {
            Some((mut task, plan, epoch)) => {
                let restoration = Restoration::taken_over(&mut task, &plan, epoch);
                (task, restoration, plan)
            }
            None => {
                let topology = self.plan.clone();
                let sub = subtopology(&topology, id)?;
                let (plan, recorded_epoch) = self.prepare_stores(id, sub)?;
                let mut task = Task::new(&self.topology, sub, id.partition, &self.task_config)?;
                // The stores are restored from their changelogs before the task sees any input, a step
                // at a time between polls (`restore_step`): the thread goes on with its other tasks
                // meanwhile.
                let restoration = Restoration::new(&mut task, &plan, recorded_epoch);
                (task, restoration, plan)
            }
        };
        self.sensors.task_created(self.task_config.clock.now_ms());
        let mine = committed.iter().filter(|(tp, _)| self.task_id(&tp.topic, tp.partition) == Some(id));
        task.take_committed_metadata(mine);
        if restoration.is_done() {
            self.shared.task_holders.set_restoring(id, false);
            tracing::info!(target: "kstreams::runtime::thread", task = %id, "task created");
            return self.activate(id, task, restoration, !plan.is_empty());
        }
        tracing::info!(target: "kstreams::runtime::thread", task = %id, "task created; restoring its stores");
        self.shared.restoring_tasks.fetch_add(1, Ordering::SeqCst);
        self.restoring.insert(id, (task, restoration));
        Ok(())
    }

    /// Restores the first restoring task some more (about 100 ms of it), and starts it once its stores
    /// are restored, running it at once through the records it has waiting. The instance is RUNNING
    /// once no task of it restores.
    fn restore_step(&mut self, consumer: &mut dyn StreamsConsumer) -> Result<(), StreamsError> {
        let Some((&id, (task, restoration))) = self.restoring.iter_mut().next() else { return Ok(()) };
        // A long restore is time the thread runs, not a pause: checking between batches keeps it from
        // looking like one (at_least_once). The task stays in the map meanwhile, so that whatever
        // happens (an error, a panic in a listener) the shutdown or the recovery closes it.
        let producer = &mut self.producer;
        let mut running = || producer.check_running().map_err(StreamsError::from);
        let listener = self.restore_listener.as_deref().map_or(Progress::Unheard, Progress::Restore);
        if restoration.step(task, &mut *self.restorer, listener, &mut running)? {
            let (task, restoration) = self.restoring.remove(&id).expect("stepped above");
            self.shared.restoring_tasks.fetch_sub(1, Ordering::SeqCst);
            self.shared.task_holders.set_restoring(id, false);
            self.activate(id, task, restoration, true)?;
            self.update_lags(consumer);
            self.process()?;
            if self.restoring.is_empty()
                && self.fatal.is_none()
                && self.shared.restoring_tasks.load(Ordering::SeqCst) == 0
            {
                self.shared.state.set(State::Running);
            }
        }
        Ok(())
    }

    /// Starts a task whose stores are restored: a new owner epoch, what was restored flushed and
    /// checkpointed (when there was a restore), the processors initialized.
    fn activate(
        &mut self,
        id: TaskId,
        mut task: Task,
        restoration: Restoration,
        restored: bool,
    ) -> Result<(), StreamsError> {
        task.begin_ownership(restoration.highest_epoch());
        // What was restored is on disk and checkpointed: a crash now does not restore it again.
        let checkpointed = if restored { task.flush().and_then(|()| task.checkpoint()) } else { Ok(()) };
        let started = checkpointed.and_then(|()| task.init()).and_then(|()| self.send_outputs_of(&mut task));
        // In the map even when starting failed, so that the recovery or the shutdown closes it.
        self.tasks.insert(id, task);
        started?;
        tracing::info!(target: "kstreams::runtime::thread", task = %id, "task running");
        Ok(())
    }

    fn send_outputs_of(&mut self, task: &mut Task) -> Result<(), StreamsError> {
        task.send_output(|record| match self.producer.send(record) {
            Ok(()) => Ok(()),
            Err(error) => self.production_failed(Some(record), error),
        })
    }

    /// A flush reported a failed delivery: the production exception handler decides on each record the
    /// broker rejected, or once on the error when the producer cannot say which records they were.
    fn delivery_failed(&mut self, error: ClientError) -> Result<(), StreamsError> {
        let rejected = self.producer.take_rejected();
        if rejected.is_empty() {
            return self.production_failed(None, error);
        }
        for (record, error) in rejected {
            self.production_failed(Some(&record), error)?;
        }
        Ok(())
    }

    /// Asks the production exception handler: fail the thread, or count the loss, produce what the
    /// handler gave instead (a dead letter) and go on. A fenced producer, a transaction that must abort,
    /// or a broker that timed out is not the record's fault: that goes to recovery, and the record is
    /// produced again from the last commit. A dead letter the broker refuses at once fails the thread.
    fn production_failed(&mut self, record: Option<&ProducedRecord>, error: ClientError) -> Result<(), StreamsError> {
        if matches!(error.kind, ClientErrorKind::Fenced | ClientErrorKind::Abortable | ClientErrorKind::Retriable) {
            return Err(error.into());
        }
        match self.production_handler.handle(record, &error) {
            ProductionResponse::Fail => Err(error.into()),
            ProductionResponse::Continue(instead) => {
                self.production_errors += 1;
                for record in &instead {
                    self.producer.send(record)?;
                }
                Ok(())
            }
        }
    }

    /// Buffers a polled batch in the input queues of its tasks (see [`PartitionGroup`]). Records of a
    /// task this thread no longer holds are dropped: their new owner reads them again.
    fn buffer(&mut self, batch: &mut Vec<RawRecord>) -> Result<(), StreamsError> {
        // Records of one partition arrive in runs: its task and queue are looked up once per run.
        let mut records = batch.drain(..).peekable();
        while let Some(first) = records.next() {
            let (topic, partition) = (first.topic.clone(), first.partition);
            let same_partition = |r: &RawRecord| Arc::ptr_eq(&r.topic, &topic) && r.partition == partition;
            let Some(id) = self.task_id(&topic, partition) else {
                return Err(StreamsError::Internal(format!("a record from unexpected topic `{topic}`")));
            };
            if self.tasks.contains_key(&id) || self.restoring.contains_key(&id) {
                let input = self.inputs.entry(id).or_default();
                input.push(first);
                while let Some(record) = records.next_if(same_partition) {
                    input.push(record);
                }
            } else {
                tracing::debug!(target: "kstreams::runtime::thread", topic = %topic, partition,
                    "dropping fetched records of a task this thread no longer owns");
                while records.next_if(same_partition).is_some() {}
            }
        }
        Ok(())
    }

    /// Asks the consumer how far behind the broker the empty input partitions of tasks with records
    /// waiting are, for `max.task.idle.ms` (tasks of one partition need not know).
    fn update_lags(&mut self, consumer: &mut dyn StreamsConsumer) {
        let mut wanted = Vec::new();
        for input in self.inputs.values() {
            input.lags_wanted(self.max_task_idle_ms, &mut wanted);
        }
        if wanted.is_empty() {
            return;
        }
        let lags = consumer.fetched_lags(&wanted);
        for (tp, lag) in wanted.iter().zip(lags) {
            if let Some(input) = self.task_id(&tp.topic, tp.partition).and_then(|id| self.inputs.get_mut(&id)) {
                input.set_lag(tp, lag);
            }
        }
    }

    /// Runs every task that is ready through its buffered records, until it has none or must wait for
    /// a partition (`max.task.idle.ms`); each record is the one with the smallest timestamp among the
    /// heads of the task's partitions.
    fn process(&mut self) -> Result<(), StreamsError> {
        let now = self.task_config.clock.now_ms();
        let began = std::time::Instant::now();
        let mut processed = 0;
        // A task restoring keeps its records until it runs.
        let ids: Vec<TaskId> = self
            .inputs
            .iter()
            .filter(|(id, input)| input.buffered() > 0 && self.tasks.contains_key(id))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(mut input) = self.inputs.remove(&id) else { continue };
            // Queues are filled for open tasks only and dropped with them.
            let Some(mut task) = self.tasks.remove(&id) else { continue };
            let result = self.run_task(&mut task, &mut input, now, &mut processed);
            // Offsets of what was processed, once per partition and step rather than once per record.
            for (tp, offset) in input.take_processed() {
                self.offsets.insert(tp, offset);
            }
            self.tasks.insert(id, task);
            self.inputs.insert(id, input);
            if let Err(error) = result {
                self.sensors.processed(began.elapsed(), processed, now);
                return Err(error);
            }
        }
        self.sensors.processed(began.elapsed(), processed, now);
        Ok(())
    }

    fn run_task(
        &mut self,
        task: &mut Task,
        input: &mut PartitionGroup,
        now: i64,
        processed: &mut u64,
    ) -> Result<(), StreamsError> {
        task.set_wall_clock(now);
        while input.ready(now, self.max_task_idle_ms) {
            let Some((queue, record)) = input.pop() else { break };
            let offset = record.offset;
            *processed += 1;
            task.process(record)?;
            input.processed(queue, offset);
            self.send_outputs_of(task)?;
        }
        Ok(())
    }

    /// Pauses the partitions whose queues are past `buffered.records.per.partition` and resumes those
    /// drained back to it.
    fn pause_and_resume(&mut self, consumer: &mut dyn StreamsConsumer) -> Result<(), StreamsError> {
        let (mut pause, mut resume) = (Vec::new(), Vec::new());
        for input in self.inputs.values_mut() {
            input.pause_full(self.max_buffered, &mut pause);
            input.resume_drained(self.max_buffered, &mut resume);
        }
        if !pause.is_empty() {
            tracing::debug!(target: "kstreams::runtime::thread", thread = %self.name, partitions = ?pause, "pausing full partitions");
            consumer.pause(&pause)?;
        }
        if !resume.is_empty() {
            tracing::debug!(target: "kstreams::runtime::thread", thread = %self.name, partitions = ?resume, "resuming drained partitions");
            consumer.resume(&resume)?;
        }
        Ok(())
    }

    /// Whether to commit before the interval is up: a processor asked for it, or (exactly-once) the
    /// stores hold too many uncommitted writes.
    fn commit_needed(&self) -> bool {
        self.tasks.values().any(Task::commit_requested)
            || (self.task_config.hold_writes_per_commit
                && self.tasks.values().map(Task::uncommitted_bytes).sum::<usize>() > self.uncommitted_max_bytes)
    }

    fn punctuate(&mut self) -> Result<(), StreamsError> {
        let began = std::time::Instant::now();
        let mut punctuated = 0;
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in ids {
            let mut task = self.tasks.remove(&id).expect("listed above");
            let result = task.punctuate_wall_clock().and_then(|fired| {
                punctuated += usize::from(fired);
                self.send_outputs_of(&mut task)
            });
            self.tasks.insert(id, task);
            result?;
        }
        self.sensors.punctuated(began.elapsed(), punctuated, self.task_config.clock.now_ms());
        Ok(())
    }

    /// Publishes the metrics of the instance, this thread and its tasks (see [`ThreadSensors`]).
    fn export_metrics(&mut self, now_ms: i64) {
        let inputs = &self.inputs;
        let enforced = |id: &TaskId| inputs.get(id).map_or(0, PartitionGroup::enforced);
        let running = self.tasks.iter_mut().map(|(id, task)| TaskFigures {
            id: *id,
            task,
            restore_remaining: 0,
            enforced: enforced(id),
        });
        let restoring = self.restoring.iter_mut().map(|(id, (task, restoration))| TaskFigures {
            id: *id,
            restore_remaining: restoration.remaining(),
            task,
            enforced: enforced(id),
        });
        self.sensors.publish(running.chain(restoring), &self.shared, now_ms);
    }
}

/// Where the counters of the threads that ended are kept, beside those of the running ones (by name).
pub(crate) const ENDED_THREADS: &str = "(threads that ended)";

/// Hears rebalances for one thread.
struct Listener {
    inner: Arc<Mutex<ThreadInner>>,
}

impl RebalanceListener for Listener {
    fn on_partitions_revoked(&self, partitions: &[TopicPartition], committer: &dyn OffsetCommitter) {
        let mut inner = lock_task(&self.inner);
        // A thread removed on its own gives its partitions up without a rebalance of the instance (as in
        // Kafka Streams, whose threads shutting down do not move to PARTITIONS_REVOKED): the instance may
        // have no other thread to bring it back to RUNNING.
        if !inner.stop.load(Ordering::SeqCst) {
            inner.shared.state.set(State::Rebalancing);
        }
        tracing::info!(target: "kstreams::runtime::thread", thread = %inner.name, partitions = partitions.len(), "partitions revoked; committing");
        match inner.commit(committer, Checkpoint::Now) {
            Ok(()) => {}
            Err(e) if inner.recoverable(&e) => {
                // The tasks are closed below without their uncommitted work, as after any failed commit.
                tracing::warn!(target: "kstreams::runtime::thread", error = %e, "commit before revocation failed; closing the tasks without it");
                if let StreamsError::Client(cause) = &e
                    && let Err(e) = inner.producer.abort(cause)
                {
                    inner.fatal.get_or_insert(e.into());
                }
                // A cooperative rebalance keeps the thread's other tasks: their work since the last commit
                // took part in the commit that failed (under exactly_once_v2 it was aborted with it), so
                // they may not go on from where they are. Closed as well, they are opened again from the
                // last commit by the recovery this error brings at the next step.
                let revoked: Vec<TaskId> =
                    partitions.iter().filter_map(|tp| inner.task_id(&tp.topic, tp.partition)).collect();
                if inner.tasks.keys().chain(inner.restoring.keys()).any(|id| !revoked.contains(id)) {
                    inner.close_all_tasks();
                    inner.fatal.get_or_insert(e);
                }
            }
            Err(e) => {
                tracing::error!(target: "kstreams::runtime::thread", error = %e, "commit before revocation failed");
                inner.fatal.get_or_insert(e);
            }
        }
        let ids: Vec<TaskId> = partitions.iter().filter_map(|tp| inner.task_id(&tp.topic, tp.partition)).collect();
        for id in ids {
            inner.close_task(id);
        }
        for tp in partitions {
            inner.offsets.remove(tp);
        }
    }

    fn on_partitions_lost(&self, partitions: &[TopicPartition]) {
        let mut inner = lock_task(&self.inner);
        inner.shared.state.set(State::Rebalancing);
        tracing::warn!(target: "kstreams::runtime::thread", thread = %inner.name, partitions = partitions.len(), "partitions lost; closing their tasks without committing");
        // The open transaction holds work of the lost tasks: none of it may commit now.
        let cause = ClientError::new("rebalance", "partitions lost", ClientErrorKind::Fenced);
        if let Err(e) = inner.producer.abort(&cause) {
            inner.fatal.get_or_insert(e.into());
        }
        // Every task took part in that transaction, so none keeps its uncommitted work; those whose
        // partitions stay are opened again from their last committed state.
        let lost: Vec<TaskId> = partitions.iter().filter_map(|tp| inner.task_id(&tp.topic, tp.partition)).collect();
        let kept: Vec<TaskId> = inner.tasks.keys().copied().filter(|id| !lost.contains(id)).collect();
        inner.close_all_tasks();
        if !kept.is_empty() {
            inner.fatal.get_or_insert(StreamsError::Client(cause));
        }
    }

    fn on_partitions_assigned(&self, partitions: &[TopicPartition], committed: &CommittedOffsets) {
        let mut inner = lock_task(&self.inner);
        tracing::info!(target: "kstreams::runtime::thread", thread = %inner.name, partitions = partitions.len(), "partitions assigned");
        // A member whose subscription lacks a topic the patterns match now was given only part of its
        // tasks' partitions (see `runtime::layout`): it opens none and joins again at its next step.
        if inner.layouts.watched() {
            inner.layouts.look();
            if inner.layouts.generation() != inner.generation {
                tracing::info!(target: "kstreams::runtime::thread", thread = %inner.name,
                    "the source patterns match topics this thread does not subscribe to yet; taking no task until it joins again with them");
                return;
            }
        }
        // A transaction of this thread's producer left open when its abort failed (the broker away)
        // holds back the restore of every changelog partition it wrote to, until it times out: the
        // producer's replacement, which aborts it, comes before any restore.
        if let Err(e) = inner.producer.replace_if_needed() {
            inner.fatal.get_or_insert(e.into());
            return;
        }
        let ids: Vec<TaskId> = partitions.iter().filter_map(|tp| inner.task_id(&tp.topic, tp.partition)).collect();
        for id in ids {
            // Opening many tasks is time the thread runs: checking after each keeps it from looking
            // like a pause (at_least_once).
            let opened = inner.open_task(id, committed).and_then(|()| Ok(inner.producer.check_running()?));
            if let Err(e) = opened {
                // The thread recovers (or stops) at its next step: opening the other tasks first would keep
                // the group waiting for this member through their restores too, for nothing.
                tracing::warn!(target: "kstreams::runtime::thread", thread = %inner.name, task = %id, error = %e, "could not open the task");
                inner.fatal.get_or_insert(e);
                break;
            }
        }
        for tp in partitions {
            // Every input partition of an open task has its queue before any record comes: the task
            // waits for those with none (`max.task.idle.ms`).
            if let Some(id) = inner
                .task_id(&tp.topic, tp.partition)
                .filter(|id| inner.tasks.contains_key(id) || inner.restoring.contains_key(id))
            {
                inner.inputs.entry(id).or_default().add_partition(tp);
            }
        }
        // Tasks restoring keep the instance REBALANCING until they are restored (`restore_step`), also
        // when a cooperative rebalance took nothing away from it.
        if inner.fatal.is_none() {
            let restoring = inner.shared.restoring_tasks.load(Ordering::SeqCst) > 0;
            inner.shared.state.set(if restoring { State::Rebalancing } else { State::Running });
        }
    }
}

/// What a thread gets from its instance for its tasks' state.
#[derive(Clone)]
pub(crate) struct ThreadState {
    /// `<state.dir>/<application.id>`, locked by the instance; `None` when the topology has no stores.
    pub(crate) app_dir: Option<std::path::PathBuf>,
    pub(crate) rocksdb: state_store::RocksDbMemory,
    pub(crate) restore_listener: Option<Arc<dyn StateRestoreListener>>,
    pub(crate) standby_listener: Option<Arc<dyn StandbyUpdateListener>>,
    /// Under exactly_once_v2, the thread's producer's `transactional.id`.
    pub(crate) transactional_id: Option<String>,
    /// The instance's process id, as the library's group member tells it (`group.assignor=streams`).
    pub(crate) process_id: super::assignor::ProcessId,
    /// Wall-clock time for commit intervals and wall-clock punctuations.
    pub(crate) clock: Clock,
    /// The instance's admin client, shared by its threads.
    pub(crate) admin: Arc<Mutex<Box<dyn StreamsAdmin>>>,
    /// The state directory's lock, held by every thread as well as the instance: the OS releases it when
    /// the last of them lets go, so a thread that outlives a `close_timeout` keeps its files locked.
    pub(crate) dir_lock: Option<Arc<std::fs::File>>,
    /// The instance's global stores, which the tasks' joins read.
    pub(crate) globals: Option<Arc<dyn crate::processor::state::GlobalStores>>,
    /// Set when this thread alone is to stop (`KafkaStreams::remove_stream_thread`): it shuts down
    /// cleanly, as on the instance's shutdown, and leaves the group.
    pub(crate) stop: Arc<std::sync::atomic::AtomicBool>,
}

/// One stream thread, ready to run.
pub(crate) struct StreamThread {
    name: String,
    consumer: Box<dyn StreamsConsumer>,
    inner: Arc<Mutex<ThreadInner>>,
    config: StreamsConfig,
    shared: Arc<Shared>,
    /// The instance's topic layout, and the generation of it this thread subscribed with.
    layouts: Arc<Layouts>,
    generation: u64,
    /// The polled records not yet processed (kept to reuse its allocation).
    batch: Vec<RawRecord>,
    clock: Clock,
    last_commit_ms: i64,
    last_metrics_ms: i64,
    /// Deletes what is committed of the repartition topics, every `repartition.purge.interval.ms`.
    admin: Arc<Mutex<Box<dyn StreamsAdmin>>>,
    last_purge_ms: i64,
    /// What made this thread, to make its replacement when it fails and the uncaught exception handler
    /// says `ReplaceThread`.
    recipe: Recipe,
    /// Interactive queries waiting for this thread's lock (shared with its tasks' holders).
    queries_waiting: Arc<AtomicUsize>,
    /// Declared last, so dropped after the tasks and their stores are.
    _dir_lock: Option<Arc<std::fs::File>>,
}

/// The arguments of [`StreamThread::new`], kept.
#[derive(Clone)]
struct Recipe {
    parts: (Arc<Topology>, Arc<TopologyPlan>, Arc<Layouts>),
    config: StreamsConfig,
    supplier: Arc<dyn ClientSupplier>,
    state: ThreadState,
}

impl StreamThread {
    pub(crate) fn new(
        name: String,
        (topology, plan, layouts): (Arc<Topology>, Arc<TopologyPlan>, Arc<Layouts>),
        config: StreamsConfig,
        supplier: Arc<dyn ClientSupplier>,
        shared: Arc<Shared>,
        state: ThreadState,
    ) -> Result<Self, StreamsError> {
        let recipe = Recipe {
            parts: (topology.clone(), plan.clone(), layouts.clone()),
            config: config.clone(),
            supplier: supplier.clone(),
            state: state.clone(),
        };
        let producer = ThreadProducer::new(
            supplier.clone(),
            &config,
            format!("{name}-producer"),
            state.transactional_id,
            state.clock.clone(),
        )?;
        let restorer = supplier.restore_consumer(&config, &format!("{name}-restore-consumer"))?;
        let mut task_config = super::task_config(&config, state.clock.clone(), state.app_dir, state.rocksdb);
        task_config.changelogs = true;
        task_config.partition_counts = Arc::new(super::topics::BrokerPartitionCounts::new(state.admin.clone()));
        task_config.hold_writes_per_commit = config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2;
        task_config.stamp_owner_epoch = config.processing_guarantee == ProcessingGuarantee::AtLeastOnce;
        // statestore.cache.max.bytes is split evenly across the threads, as in Kafka Streams.
        let cache_bytes = config.cache_max_bytes / config.num_stream_threads.max(1) as u64;
        task_config.cache_budget = Arc::new(state_store::CacheBudget::new(cache_bytes as usize));
        task_config.windowed_emit_interval_ms = crate::window::millis(config.windowed_emit_interval);
        task_config.outer_join_emit_interval_ms = crate::window::millis(config.outer_join_emit_interval);
        task_config.globals = state.globals.clone();
        let (generation, layout) = layouts.current();
        let queries_waiting = Arc::<AtomicUsize>::default();
        let standby_assignment = Arc::new(StandbyAssignment::default());
        let inner = Arc::new_cyclic(|me| {
            Mutex::new(ThreadInner {
                me: me.clone(),
                name: name.clone(),
                stop: state.stop.clone(),
                metrics_retired: false,
                topology,
                plan,
                layout: layout.clone(),
                generation,
                layouts: layouts.clone(),
                task_config,
                tasks: BTreeMap::new(),
                restoring: BTreeMap::new(),
                standbys: Standbys::new(standby_assignment.clone(), state.clock.clone()),
                inputs: BTreeMap::new(),
                max_task_idle_ms: config
                    .max_task_idle
                    .map_or(IDLE_DISABLED, |idle| i64::try_from(idle.as_millis()).unwrap_or(i64::MAX)),
                max_buffered: config.buffered_records_per_partition,
                offsets: BTreeMap::new(),
                purgeable: BTreeMap::new(),
                producer,
                restorer,
                production_handler: config.production_handler.clone(),
                production_errors: 0,
                fatal: None,
                closed_metrics: TaskMetrics::default(),
                shared: shared.clone(),
                restore_listener: state.restore_listener,
                standby_listener: state.standby_listener,
                uncommitted_max_bytes: config.statestore_uncommitted_max_bytes,
                recoveries: 0,
                failing_since_ms: None,
                last_recovery_ms: 0,
                task_timeout: config.task_timeout,
                total_recoveries: 0,
                queries_waiting: queries_waiting.clone(),
                sensors: ThreadSensors::new(&config, &name),
            })
        });
        let listener = Arc::new(Listener { inner: inner.clone() });
        let consumer_id = format!("{name}-consumer");
        let consumer: Box<dyn StreamsConsumer> = match config.group_assignor {
            GroupAssignor::Range => supplier.consumer(&config, &consumer_id, listener)?,
            GroupAssignor::Streams => {
                let tasks_of = inner.clone();
                let offset_sums = Box::new(move || lock_task(&tasks_of).offset_sums());
                let instance = Instance {
                    process_id: state.process_id,
                    offset_sums,
                    layouts: layouts.clone(),
                    standbys: standby_assignment,
                    endpoints: shared.endpoints.clone(),
                };
                Box::new(MemberConsumer::for_thread(
                    &name,
                    &config,
                    &*supplier,
                    listener,
                    instance,
                    state.clock.clone(),
                )?)
            }
        };
        let now = state.clock.now_ms();
        Ok(StreamThread {
            name,
            consumer,
            inner,
            batch: Vec::with_capacity(config.max_poll_records),
            config,
            shared,
            layouts,
            generation,
            clock: state.clock,
            last_commit_ms: now,
            last_metrics_ms: now,
            admin: state.admin,
            last_purge_ms: now,
            recipe,
            queries_waiting,
            _dir_lock: state.dir_lock,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The thread's life on its own OS thread: joins the group, steps until shutdown, then closes. A
    /// panic that escapes the nodes (they catch their own) ends the thread as an error would; a thread
    /// that failed and that the uncaught exception handler replaces goes on here as its replacement.
    pub(crate) fn run(mut self) {
        loop {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.subscribe()?;
                while !self.stopping() {
                    self.step(self.config.poll_timeout)?;
                }
                Ok(())
            }))
            .unwrap_or_else(|payload| {
                let panic = crate::error::Panicked::from_payload(&*payload);
                Err(StreamsError::Internal(format!("stream thread `{}` {panic}", self.name)))
            });
            match self.finish(result) {
                Some(replacement) => self = replacement,
                None => return,
            }
        }
    }

    /// Whether the instance shuts down, or this thread was asked to stop.
    fn stopping(&self) -> bool {
        self.shared.shutdown.load(Ordering::SeqCst) || self.recipe.state.stop.load(Ordering::SeqCst)
    }

    /// Joins the group through the consumer's subscription to the source topics of the layout in force;
    /// called again, joins again with those of a newer layout.
    pub(crate) fn subscribe(&mut self) -> Result<(), StreamsError> {
        let (generation, layout) = self.layouts.current();
        let topics: Vec<String> = layout.reader.keys().cloned().collect();
        {
            let mut inner = self.inner.lock_unpoisoned();
            inner.layout = layout;
            inner.generation = generation;
        }
        self.generation = generation;
        Ok(self.consumer.subscribe(&topics)?)
    }

    /// One turn of the processing loop: polls (waiting at most `poll_timeout`), runs the batch through
    /// the tasks, fires punctuations, and commits when the commit interval has passed (or stores hold
    /// too much). A recoverable failure is recovered from here; an error means the thread must stop.
    /// A simulation calls this directly, with no wait, to interleave instances in a seeded order.
    pub(crate) fn step(&mut self, poll_timeout: Duration) -> Result<(), StreamsError> {
        // Topics a source pattern came to match, found by this thread's look, another thread's, or at an
        // assignment this thread's subscription was behind for: join the group again with them.
        self.layouts.look_if_due(self.clock.now_ms());
        if self.layouts.generation() != self.generation {
            self.subscribe()?;
        }
        // While tasks restore or standbys catch up, the poll does not wait: they go on between polls.
        let restoring = {
            let inner = lock_task(&self.inner);
            !inner.restoring.is_empty() || inner.standbys.updating()
        };
        let poll_timeout = if restoring { Duration::ZERO } else { poll_timeout };
        let poll_began = std::time::Instant::now();
        let polled = self.consumer.poll_batch(poll_timeout, self.config.max_poll_records, &mut self.batch);
        let poll_took = poll_began.elapsed();
        self.let_queries_in();
        let inner = self.inner.clone();
        let mut inner = lock_task(&inner);
        inner.sensors.polled(poll_took, self.batch.len(), self.clock.now_ms());
        let step = match (polled, inner.fatal.take()) {
            (Err(e), _) => Err(e.into()),
            (_, Some(e)) => Err(e),
            // A thread idle in its poll loop checks here that it keeps running (at_least_once), so that a
            // record after a quiet spell is not taken for one after a pause.
            (Ok(()), None) => inner
                .producer
                .check_running()
                .map_err(StreamsError::from)
                .and_then(|()| inner.buffer(&mut self.batch))
                .and_then(|()| {
                    inner.update_lags(&mut *self.consumer);
                    inner.process()?;
                    // A partition that drained while its task ran is asked about at once, so that a task
                    // caught up with it goes on without waiting for another poll.
                    if inner.inputs.values().any(|input| input.waits_for_a_lag(inner.max_task_idle_ms)) {
                        inner.update_lags(&mut *self.consumer);
                        inner.process()?;
                    }
                    Ok(())
                })
                .and_then(|()| inner.pause_and_resume(&mut *self.consumer))
                .and_then(|()| inner.punctuate())
                .and_then(|()| inner.restore_step(&mut *self.consumer))
                .and_then(|()| inner.keep_standbys())
                .and_then(|()| inner.update_standbys()),
        };
        let now = self.clock.now_ms();
        let step = step.and_then(|()| {
            let interval = self.config.effective_commit_interval().as_millis() as i64;
            let due = now - self.last_commit_ms >= interval || inner.commit_needed();
            if due && !self.consumer.rebalance_in_progress() {
                inner.commit(&*self.consumer, Checkpoint::WhenDue)?;
                self.last_commit_ms = now;
            }
            Ok(())
        });
        if let Err(error) = step {
            self.batch.clear();
            inner.recover(error, &mut *self.consumer)?;
        }
        if now - self.last_purge_ms >= self.config.repartition_purge_interval.as_millis() as i64 {
            self.last_purge_ms = now;
            let offsets: Vec<(TopicPartition, i64)> = std::mem::take(&mut inner.purgeable).into_iter().collect();
            // Best effort, as in Kafka Streams: a failed purge is tried again at the next interval.
            let purged = self.admin.lock_unpoisoned().delete_records(&offsets);
            if let Err(e) = purged {
                tracing::warn!(target: "kstreams::runtime::thread", thread = %self.name, error = %e, "could not purge the repartition topics");
                for (tp, offset) in offsets {
                    inner.purgeable.entry(tp).or_insert(offset);
                }
            }
        }
        inner.sensors.step_ended(now);
        if now - self.last_metrics_ms >= 1000 {
            inner.publish_metrics();
            inner.export_metrics(now);
            self.last_metrics_ms = now;
        }
        Ok(())
    }

    /// Waits (a millisecond at most) while interactive queries wait for this thread's lock, so that they
    /// get in between two steps of a thread that never waits in its poll (a lock is not fair: a busy
    /// thread takes it back at once).
    fn let_queries_in(&self) {
        if self.queries_waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let deadline = std::time::Instant::now() + Duration::from_millis(1);
        while self.queries_waiting.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
    }

    /// The end of the thread's life: after `result` Ok, a clean shutdown (commit what was processed,
    /// close every task, leave the group). After an error, no commit, and the uncaught exception
    /// handler decides: `ShutdownClient` (the default), the application goes to ERROR and its other
    /// threads shut down cleanly; `ReplaceThread`, a new thread of the same name is returned, to join
    /// the group in this one's place.
    pub(crate) fn finish(mut self, result: Result<(), StreamsError>) -> Option<StreamThread> {
        let inner = self.inner.clone();
        let mut inner = lock_task(&inner);
        // Clean shutdown: commit what was processed, then close every task.
        let result = result.and_then(|()| match inner.commit(&*self.consumer, Checkpoint::Now) {
            // Fenced (or timed out) on the way out: the uncommitted work is left to the next owner,
            // exactly as after a crash; closing cleanly is still a clean close.
            Err(e) if inner.recoverable(&e) => {
                tracing::warn!(target: "kstreams::runtime::thread", error = %e, "the last commit before closing failed; closing without it");
                inner.producer.abort_quietly();
                Ok(())
            }
            other => other,
        });
        if result.is_err() {
            // Leave no transaction open to block readers until it times out.
            inner.producer.abort_quietly();
        }
        inner.close_all_tasks();
        // Each task published itself as it closed: this publishes the thread's last figures.
        inner.export_metrics(self.clock.now_ms());
        inner.publish_metrics();
        inner.retire_metrics();
        inner.stop_reporting_task_dirs();
        drop(inner);
        // A thread removed on its own that fails on its way out is logged, as Kafka Streams does: the
        // instance goes on with its other threads.
        let removed = self.recipe.state.stop.load(Ordering::SeqCst) && !self.shared.shutdown.load(Ordering::SeqCst);
        let response = match &result {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(target: "kstreams::runtime::thread", thread = %self.name, error = %crate::handler::error_chain(e), "stream thread failed");
                self.shared.failed_threads.fetch_add(1, Ordering::SeqCst);
                (!removed).then(|| self.shared.uncaught_exception_response(e))
            }
        };
        super::thread_metrics::publish_client(&self.shared, self.config.metrics_recording_level);
        let (Err(e), Some(response)) = (result, response) else {
            self.consumer.close();
            return None;
        };
        if response == StreamThreadExceptionResponse::ShutdownApplication {
            let reason = crate::handler::error_chain(&e);
            // This instance keeps its own error, whichever it hears first.
            self.shared.error.lock_unpoisoned().get_or_insert(e);
            // Before this thread leaves the group, so that the other instances hear of it before a
            // rebalance hands them the partitions this one failed on.
            self.request_application_shutdown(&reason);
            self.consumer.close();
            self.shut_down_instance_to_error();
            return None;
        }
        self.consumer.close();
        if response == StreamThreadExceptionResponse::ReplaceThread && !self.stopping() {
            let Recipe { parts, config, supplier, state } = self.recipe.clone();
            match StreamThread::new(self.name.clone(), parts, config, supplier, self.shared.clone(), state) {
                Ok(replacement) => {
                    tracing::warn!(target: "kstreams::runtime::thread", thread = %self.name, "replacing the failed stream thread");
                    self.shared.state.set(State::Rebalancing);
                    drop(self);
                    return Some(replacement);
                }
                Err(error) => {
                    tracing::error!(target: "kstreams::runtime::thread", thread = %self.name, error = %error, "cannot replace the failed stream thread; shutting down the instance");
                }
            }
        }
        self.shared.error.lock_unpoisoned().get_or_insert(e);
        self.shut_down_instance_to_error();
        None
    }

    /// SHUTDOWN_CLIENT, Kafka Streams' default answer to a thread's failure: the instance's other
    /// threads commit what they processed and stop too, rather than take over the failed thread's
    /// partitions in an instance that reports ERROR.
    fn shut_down_instance_to_error(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.state.set(State::Error);
    }

    /// SHUTDOWN_APPLICATION: asks every instance to shut down (see `shutdown_request`). A request that
    /// cannot be sent is logged; this instance shuts down all the same.
    fn request_application_shutdown(&self, reason: &str) {
        if !self.shared.shutdown_requests.load(Ordering::SeqCst) {
            tracing::error!(target: "kstreams::runtime::thread", thread = %self.name,
                "the uncaught exception handler said ShutdownApplication, but the instance does not watch for shutdown requests (its handler was set after start); shutting down this instance only");
            return;
        }
        let Recipe { config, supplier, .. } = &self.recipe;
        match super::shutdown_request::send(&**supplier, config, &self.name, reason, self.clock.now_ms()) {
            Ok(()) => {
                tracing::error!(target: "kstreams::runtime::thread", thread = %self.name, "asked every instance of the application to shut down");
                // Time for the other instances to hear it (they look twice a second) while this thread
                // still holds its partitions.
                std::thread::sleep(super::shutdown_request::HEARING_TIME);
            }
            Err(error) => tracing::error!(target: "kstreams::runtime::thread", thread = %self.name, error = %error,
                "cannot ask the other instances to shut down; shutting down this instance only"),
        }
    }

    /// A crash (simulation, on the embedded broker): everything is dropped where it stands. Nothing is
    /// committed, flushed or aborted; the embedded consumer does not leave the group when dropped, so
    /// the broker expires the member after its session timeout, and an open transaction stays open
    /// until the broker's transaction timeout aborts it. The stores' files stay as they are on disk.
    #[cfg(feature = "test-utils")]
    pub(crate) fn crash(self) {
        drop(self);
    }
}

#[cfg(test)]
#[path = "thread_tests.rs"]
mod tests;
