//! Standby tasks (Kafka Streams' `StandbyTask`): a copy of a stateful task's stores on a thread that
//! does not run the task, kept up to date from its changelogs, so that when the task comes here (its
//! owner gone, or the assignor moving it) it restores only what the copy lags behind. A warm-up is the
//! same thing from this side: a standby the assignor gives while the copy catches up, to move the task
//! here once it has.
//!
//! A standby reads only what is committed: under `read_committed` (exactly_once_v2) up to each
//! changelog's last stable offset, so that it never waits on the owner's open transaction and never
//! holds an aborted write. It processes nothing and writes nothing: its stores are opened below their
//! logging layer, as a restore uses them, and it never takes an owner epoch. Its checkpoint records
//! what it applied, with the highest owner epoch seen, exactly as a restore cut short would, so that
//! the next owner of the task on this instance goes on from there under the same epoch fence.
//!
//! When its task comes to the same thread, the copy becomes the task with its stores open (Kafka
//! Streams recycles a standby task into an active one): nothing is closed and opened again, and an
//! in-memory store keeps what it applied. Elsewhere in the instance it goes through its checkpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::restore::{Progress, Restoration, RestorePlan};
use crate::client::{RestoreConsumer, TopicPartition};
use crate::sync::LockUnpoisoned;
use crate::task::Task;
use crate::time::Clock;
use crate::{StreamsError, TaskId};

/// Hears how the standby tasks of an instance keep up (Kafka Streams' `StandbyUpdateListener`,
/// KIP-988). Set one with
/// [`KafkaStreams::set_standby_update_listener`](super::KafkaStreams::set_standby_update_listener). Its
/// methods run on the stream thread that keeps the standby, between its polls: they should return
/// quickly, and an interactive query from inside one fails (`StoreUnavailable::OnStreamThread`).
pub trait StandbyUpdateListener: Send + Sync {
    /// A standby of task `task` opened `store`, whose changelog is `partition`; its updates start at
    /// `start_offset` (after its checkpoint, or where the changelog starts).
    fn on_update_start(&self, partition: &TopicPartition, store: &str, task: TaskId, start_offset: i64) {
        let _ = (partition, store, task, start_offset);
    }

    /// A batch of `batch_size` changelog records up to `batch_end_offset` was applied to the standby's
    /// `store`; the update under way reads to `current_end_offset` (exclusive: the changelog's end as
    /// far as committed when the update began).
    fn on_batch_loaded(
        &self,
        partition: &TopicPartition,
        store: &str,
        task: TaskId,
        batch_end_offset: i64,
        batch_size: u64,
        current_end_offset: i64,
    ) {
        let _ = (partition, store, task, batch_end_offset, batch_size, current_end_offset);
    }

    /// The standby's `store` stops being updated, at `store_offset` (the last changelog offset it
    /// applied, `None` when it applied none), the changelog's end as last seen being
    /// `current_end_offset`: its task came to this thread (`Promoted`) or the standby went away
    /// (`Migrated`).
    fn on_update_suspended(
        &self,
        partition: &TopicPartition,
        store: &str,
        task: TaskId,
        store_offset: Option<i64>,
        current_end_offset: Option<i64>,
        reason: SuspendReason,
    ) {
        let _ = (partition, store, task, store_offset, current_end_offset, reason);
    }
}

/// Why a standby stopped being updated ([`StandbyUpdateListener::on_update_suspended`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SuspendReason {
    /// The standby went away: the assignment gave it to another instance or thread, dropped it, or it
    /// failed and opens again in a moment.
    Migrated,
    /// Its task came to this thread: the standby became the task, or handed it its state.
    Promoted,
}

/// How often (ms, on the thread's clock) a standby that is caught up asks its changelogs how far they
/// go. Its lag behind the owner is about this much of the owner's output, plus what the owner has not
/// committed yet.
const LOOK_EVERY_MS: i64 = 250;

/// One standby task: see the module's documentation.
pub(crate) struct StandbyTask {
    task: Task,
    /// The update under way: from the stores' positions to the changelogs' committed ends when it began.
    update: Restoration,
    /// The highest owner epoch the copy's state has seen.
    highest_epoch: Option<i32>,
    /// A former owner's late writes were skipped: the copy is right, but its checkpoint stays where it
    /// was (see [`Restoration::skipped_late_writes`]).
    pinned: bool,
    /// When (ms) the changelogs' ends are asked again, once the update under way is done.
    next_look_ms: i64,
    /// Per changelog, the end the update under way reads to, and the end the last finished one read
    /// to: under `read_committed` a changelog ends in a transaction marker, one past the last record
    /// applied, so the record's offset alone would start a read of nothing at every look.
    planned: BTreeMap<TopicPartition, i64>,
    reached: BTreeMap<TopicPartition, i64>,
    listener: Option<Arc<dyn StandbyUpdateListener>>,
}

impl StandbyTask {
    /// A standby of `task` (its stores open, its processors never initialized), its first update from
    /// `plan` (see `restore::prepare_stores`) with each changelog's end lowered to what is committed.
    pub(crate) fn new(
        mut task: Task,
        mut plan: RestorePlan,
        recorded_epoch: Option<i32>,
        restorer: &mut dyn RestoreConsumer,
        listener: Option<Arc<dyn StandbyUpdateListener>>,
    ) -> Result<Self, StreamsError> {
        let mut planned = BTreeMap::new();
        for changelog in task.changelogs().to_vec() {
            if let Some((_, _, high)) = plan.get_mut(&changelog.store) {
                *high = restorer.readable_end(&changelog.partition)?;
                planned.insert(changelog.partition.clone(), *high);
            }
        }
        // Told once the standby surely opens: every start has its suspension.
        if let Some(l) = &listener {
            for changelog in task.changelogs() {
                if let Some((start, low, _)) = plan.get(&changelog.store) {
                    l.on_update_start(&changelog.partition, &changelog.store, task.id(), start.unwrap_or(*low));
                }
            }
        }
        let update = Restoration::standby_update(&mut task, &plan, recorded_epoch, false);
        tracing::info!(target: "kstreams::runtime::thread", task = %task.id(), to_go = update.remaining(), "standby task created");
        Ok(StandbyTask {
            task,
            update,
            highest_epoch: recorded_epoch,
            pinned: false,
            next_look_ms: i64::MIN,
            planned,
            reached: BTreeMap::new(),
            listener,
        })
    }

    pub(crate) fn id(&self) -> TaskId {
        self.task.id()
    }

    /// The copy, for an interactive query that accepts stale stores.
    pub(crate) fn task(&self) -> &Task {
        &self.task
    }

    /// The sum of the changelog offsets the copy reflects (Kafka Streams' task offset sum), which the
    /// group's leader weighs against the changelogs' ends to tell how far behind it is. In-memory
    /// stores count too, as in Kafka Streams: the task goes to this thread, which had the copy, and
    /// takes the copy over with its stores open. None for a pinned copy: its task would restore from
    /// the checkpoint kept behind, not from what the copy applied, so it does not claim to be caught up.
    pub(crate) fn offset_sum(&self) -> Option<i64> {
        if self.pinned {
            return None;
        }
        let changelogs = self.task.changelogs().iter();
        Some(changelogs.filter_map(|c| self.task.changelog_offset(&c.partition)).fold(0, i64::saturating_add))
    }

    /// Where the task's restore would start from this copy: per store, after what the copy applied
    /// (or read to), to the changelog's end (`restorer`'s high watermark, as a task's restore). `None`
    /// when the copy cannot be taken over open and goes through its checkpoint instead: it skipped a
    /// former owner's late writes (only a restore from the checkpoint writes them again), or an update
    /// is under way (the highest owner epoch of a store part restored is known only to the update, and
    /// the checkpoint written when it is cut short is what carries it).
    pub(crate) fn takeover_plan(
        &self,
        restorer: &mut dyn RestoreConsumer,
    ) -> Result<Option<RestorePlan>, StreamsError> {
        if self.pinned || !self.update.is_done() {
            return Ok(None);
        }
        let mut plan = RestorePlan::new();
        for changelog in self.task.changelogs() {
            let (low, high) = restorer.watermarks(&changelog.partition)?;
            let start = self.next_offset(&changelog.partition);
            plan.insert(changelog.store.clone(), (start, low, high));
        }
        Ok(Some(plan))
    }

    /// The copy's task with its stores open, and the highest owner epoch its state has seen, for
    /// [`Restoration::taken_over`] with a [`takeover_plan`](Self::takeover_plan).
    pub(crate) fn into_task(self) -> (Task, Option<i32>) {
        self.suspended(SuspendReason::Promoted);
        tracing::info!(target: "kstreams::runtime::thread", task = %self.task.id(), "standby task taken over by its task");
        (self.task, self.highest_epoch)
    }

    /// Where the copy goes on reading `changelog`: after the last record it applied, or after the end
    /// the last finished update read to (a transaction marker past that record); `None` when it has
    /// read nothing of it.
    fn next_offset(&self, changelog: &TopicPartition) -> Option<i64> {
        let applied = self.task.changelog_offset(changelog).map(|offset| offset + 1);
        applied.max(self.reached.get(changelog).copied())
    }

    /// Tells the listener that every store stops being updated.
    fn suspended(&self, reason: SuspendReason) {
        let Some(l) = &self.listener else { return };
        for changelog in self.task.changelogs() {
            let p = &changelog.partition;
            let end = self.planned.get(p).or(self.reached.get(p)).copied();
            l.on_update_suspended(p, &changelog.store, self.task.id(), self.task.changelog_offset(p), end, reason);
        }
    }

    /// Whether an update is under way (the thread's poll then does not wait).
    pub(crate) fn updating(&self) -> bool {
        !self.update.is_done()
    }

    /// Applies some more of the changelogs (about 100 ms at most); once an update is done, asks the
    /// changelogs' ends again every [`LOOK_EVERY_MS`] (`now_ms` on the thread's clock) and starts the
    /// next one when they moved.
    pub(crate) fn step(
        &mut self,
        restorer: &mut dyn RestoreConsumer,
        now_ms: i64,
        between_batches: &mut dyn FnMut() -> Result<(), StreamsError>,
    ) -> Result<(), StreamsError> {
        if self.update.is_done() {
            if now_ms < self.next_look_ms {
                return Ok(());
            }
            self.next_look_ms = now_ms.saturating_add(LOOK_EVERY_MS);
            let mut plan = BTreeMap::new();
            self.planned.clear();
            for changelog in self.task.changelogs().to_vec() {
                let end = restorer.readable_end(&changelog.partition)?;
                let start = self.next_offset(&changelog.partition);
                if start.unwrap_or(0) >= end {
                    continue;
                }
                self.planned.insert(changelog.partition.clone(), end);
                // A changelog this copy has not read yet starts where the log does.
                let low = match start {
                    Some(_) => 0,
                    None => restorer.watermarks(&changelog.partition)?.0,
                };
                plan.insert(changelog.store.clone(), (start, low, end));
            }
            if plan.is_empty() {
                return Ok(());
            }
            self.update = Restoration::standby_update(&mut self.task, &plan, self.highest_epoch, self.pinned);
        }
        let progress = self.listener.as_deref().map_or(Progress::Unheard, Progress::Standby);
        let done = self.update.step(&mut self.task, restorer, progress, between_batches)?;
        self.highest_epoch = self.highest_epoch.max(self.update.highest_epoch());
        self.pinned |= self.update.skipped_late_writes();
        if done {
            self.reached.extend(std::mem::take(&mut self.planned));
            tracing::trace!(target: "kstreams::runtime::thread", task = %self.task.id(), "standby caught up");
        }
        Ok(())
    }

    /// At a commit: the copy's files are flushed and checkpointed when its changelogs moved on enough
    /// since the last checkpoint (between updates only: a store in bulk mode is not flushed).
    pub(crate) fn checkpoint_if_due(&mut self) -> Result<(), StreamsError> {
        if self.pinned || !self.update.is_done() || !self.task.checkpoint_due() {
            return Ok(());
        }
        self.task.checkpoint_partial_restore(self.highest_epoch)
    }

    /// Closes the copy, checkpointing what it applied (an update cut short as a restore would be, which
    /// keeps a pinned checkpoint where it is), so that the task's next owner here, or the next standby,
    /// goes on from there.
    pub(crate) fn close(mut self, reason: SuspendReason) {
        self.suspended(reason);
        let id = self.task.id();
        if !self.update.is_done() {
            self.update.abandon(&mut self.task);
        } else if !self.pinned
            && let Err(e) = self.task.checkpoint_partial_restore(self.highest_epoch)
        {
            tracing::warn!(target: "kstreams::runtime::thread", task = %id, error = %e, "could not checkpoint the standby task");
        }
        if let Err(e) = self.task.close() {
            tracing::warn!(target: "kstreams::runtime::thread", task = %id, error = %e, "error closing the standby task");
        }
        tracing::info!(target: "kstreams::runtime::thread", task = %id, "standby task closed");
    }
}

/// The standby tasks the thread's last assignment gave it, handed from its consumer (which hears the
/// assignment) to its loop (which opens and closes them between polls).
#[derive(Default)]
pub(crate) struct StandbyAssignment(Mutex<Option<BTreeSet<TaskId>>>);

impl StandbyAssignment {
    /// The standbys of an assignment just received.
    pub(crate) fn set(&self, tasks: impl IntoIterator<Item = TaskId>) {
        *self.0.lock_unpoisoned() = Some(tasks.into_iter().collect());
    }

    /// The standbys of the last assignment, if one came since the last call.
    fn take(&self) -> Option<BTreeSet<TaskId>> {
        self.0.lock_unpoisoned().take()
    }
}

/// A thread's standby tasks: those its assignment wants and those it has open.
pub(crate) struct Standbys {
    assigned: Arc<StandbyAssignment>,
    /// The standbys of the last assignment.
    wanted: BTreeSet<TaskId>,
    open: BTreeMap<TaskId, StandbyTask>,
    /// Where the next update round starts, so that one standby's long catch-up does not starve the
    /// others.
    next: Option<TaskId>,
    /// Standbys that failed, and when (ms) to open them again.
    retry_at: BTreeMap<TaskId, i64>,
    /// The thread's clock.
    clock: Clock,
}

/// How long (ms) a standby that failed stays closed before it is opened again.
const RETRY_AFTER_MS: i64 = 1_000;

/// About how long a thread updates its standbys between two polls.
const UPDATE_TIME: Duration = Duration::from_millis(100);

impl Standbys {
    /// Standbys given through `assigned`, timed by `clock`.
    pub(crate) fn new(assigned: Arc<StandbyAssignment>, clock: Clock) -> Self {
        Standbys {
            assigned,
            wanted: BTreeSet::new(),
            open: BTreeMap::new(),
            next: None,
            retry_at: BTreeMap::new(),
            clock,
        }
    }

    /// Takes the standbys of an assignment that came since the last call; the tasks wanted and not
    /// open (save those that failed a moment ago), and those open and no longer wanted.
    pub(crate) fn follow_assignment(&mut self) -> (Vec<TaskId>, Vec<TaskId>) {
        if let Some(wanted) = self.assigned.take() {
            self.wanted = wanted;
        }
        let now = self.clock.now_ms();
        self.retry_at.retain(|_, at| *at > now);
        let missing = self.wanted.iter().filter(|id| !self.open.contains_key(id) && !self.retry_at.contains_key(id));
        let missing = missing.copied().collect();
        let unwanted = self.open.keys().filter(|id| !self.wanted.contains(id)).copied().collect();
        (missing, unwanted)
    }

    pub(crate) fn insert(&mut self, standby: StandbyTask) {
        self.open.insert(standby.id(), standby);
    }

    pub(crate) fn remove(&mut self, id: TaskId) -> Option<StandbyTask> {
        self.open.remove(&id)
    }

    pub(crate) fn get(&self, id: TaskId) -> Option<&StandbyTask> {
        self.open.get(&id)
    }

    pub(crate) fn ids(&self) -> Vec<TaskId> {
        self.open.keys().copied().collect()
    }

    /// Each open standby's offset sum.
    pub(crate) fn offset_sums(&self) -> impl Iterator<Item = (TaskId, i64)> + '_ {
        self.open.iter().filter_map(|(&id, standby)| Some((id, standby.offset_sum()?)))
    }

    /// Whether a standby has an update under way.
    pub(crate) fn updating(&self) -> bool {
        self.open.values().any(StandbyTask::updating)
    }

    /// A standby could not be opened or updated: it is closed (when open) and opened again after
    /// [`RETRY_AFTER_MS`]. A standby's failure is its own: the thread's tasks go on.
    pub(crate) fn failed(&mut self, id: TaskId, error: &StreamsError) {
        tracing::warn!(target: "kstreams::runtime::thread", task = %id, error = %crate::handler::error_chain(error),
            "standby task failed; opening it again in a moment");
        if let Some(standby) = self.open.remove(&id) {
            standby.close(SuspendReason::Migrated);
        }
        self.retry_at.insert(id, self.clock.now_ms().saturating_add(RETRY_AFTER_MS));
    }

    /// Updates the standbys for about [`UPDATE_TIME`], in turn from where the last round stopped. The
    /// standbys that failed are closed ([`Standbys::failed`]) and returned. `between_batches` runs
    /// after each batch applied; its error stops the round.
    pub(crate) fn update(
        &mut self,
        restorer: &mut dyn RestoreConsumer,
        between_batches: &mut dyn FnMut() -> Result<(), StreamsError>,
    ) -> Result<Vec<TaskId>, StreamsError> {
        let started = Instant::now();
        let order: Vec<TaskId> = match self.next {
            Some(next) => self.open.range(next..).chain(self.open.range(..next)).map(|(&id, _)| id).collect(),
            None => self.open.keys().copied().collect(),
        };
        self.next = None;
        let mut failed = Vec::new();
        for id in order {
            if started.elapsed() >= UPDATE_TIME {
                self.next = Some(id);
                break;
            }
            let Some(standby) = self.open.get_mut(&id) else { continue };
            // The thread's own check (a pause, at_least_once) is the thread's error, not the standby's.
            let mut thread_failed = false;
            let mut check = || between_batches().inspect_err(|_| thread_failed = true);
            if let Err(e) = standby.step(restorer, self.clock.now_ms(), &mut check) {
                if thread_failed {
                    return Err(e);
                }
                self.failed(id, &e);
                failed.push(id);
            }
        }
        Ok(failed)
    }

    /// At a commit: checkpoints the standbys whose changelogs moved on enough. A failure is logged: the
    /// copy stays right, only a restart would restore more of it.
    pub(crate) fn checkpoint_if_due(&mut self) {
        for standby in self.open.values_mut() {
            if let Err(e) = standby.checkpoint_if_due() {
                tracing::warn!(target: "kstreams::runtime::thread", task = %standby.id(), error = %e, "could not checkpoint the standby task");
            }
        }
    }
}
