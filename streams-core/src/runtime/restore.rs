//! Restoring a task's stores before it processes input: decide, per logged store, where in its changelog
//! to start (after the checkpointed offset when the local files can be trusted, from the beginning after
//! wiping them when not), then replay the changelog to its end in batches, reporting progress.
//!
//! A checkpoint is trusted only when it is readable and its offset lies inside the changelog as it is now
//! (`log start - 1 <= offset < end`). A missing, corrupt or stale checkpoint means the store's files are
//! deleted and it is restored in full: slower, never wrong.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use state_store::OffsetCheckpoint;
use state_store::Offsets;

use super::standby::StandbyUpdateListener;
use crate::client::{RestoreConsumer, TopicPartition};
use crate::task::owner_epoch::{self, EpochFence};
use crate::task::Task;
use crate::{StreamsError, TaskId};

/// Hears how restoring a store goes (Kafka Streams' `StateRestoreListener`). Set one with
/// [`KafkaStreams::set_global_state_restore_listener`](super::KafkaStreams::set_global_state_restore_listener).
pub trait StateRestoreListener: Send + Sync {
    /// Restoring `store` from `partition` starts at `start_offset`; the changelog ends at `end_offset`
    /// (exclusive), so at most `end_offset - start_offset` records are to go.
    fn on_restore_start(&self, partition: &TopicPartition, store: &str, start_offset: i64, end_offset: i64) {
        let _ = (partition, store, start_offset, end_offset);
    }

    /// A batch of `restored` records up to `batch_end_offset` was applied.
    fn on_batch_restored(&self, partition: &TopicPartition, store: &str, batch_end_offset: i64, restored: u64) {
        let _ = (partition, store, batch_end_offset, restored);
    }

    /// `store` is restored, `total_restored` records in all.
    fn on_restore_end(&self, partition: &TopicPartition, store: &str, total_restored: u64) {
        let _ = (partition, store, total_restored);
    }
}

/// Who hears how a [`Restoration`] goes: a task's restore tells the state restore listener, a
/// standby's update the standby update listener.
#[derive(Clone, Copy)]
pub(crate) enum Progress<'a> {
    Unheard,
    Restore(&'a dyn StateRestoreListener),
    Standby(&'a dyn StandbyUpdateListener),
}

/// Records per batch handed to a store (one RocksDB write batch each, outside bulk mode).
const RESTORE_BATCH: usize = 10_000;

/// From this many records to go, a store restores in bulk mode (RocksDB: sorted runs ingested as SST
/// files, compactions waiting until the end).
const BULK_RESTORE_RECORDS: i64 = 10_000;

/// How often progress goes to the log during a long restore.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Reads the task's checkpoint, and the owner epoch recorded beside it. A corrupt checkpoint or epoch
/// file is logged and both are deleted: every store is then restored in full.
pub(crate) fn read_checkpoint(task: TaskId, task_dir: &Path) -> (Offsets, Option<i32>) {
    let checkpoint = OffsetCheckpoint::in_dir(task_dir);
    let read = checkpoint
        .read()
        .map_err(|e| e.to_string())
        .and_then(|offsets| Ok((offsets, owner_epoch::read_recorded(task_dir)?)));
    match read {
        Ok(read) => read,
        Err(e) => {
            tracing::warn!(target: "kstreams::runtime::restore", task = %task, error = %e, "unusable checkpoint; restoring every store of the task in full");
            if let Err(e) = checkpoint.delete() {
                tracing::warn!(target: "kstreams::runtime::restore", task = %task, error = %e, "cannot delete the unusable checkpoint");
            }
            let _ = std::fs::remove_file(task_dir.join(owner_epoch::FILE_NAME));
            (Offsets::new(), None)
        }
    }
}

/// Per logged store: where its restore starts (`Some(offset after the checkpoint)` when the local files
/// can be trusted, `None` for a full restore from the log's start), the log's start, and its end.
pub(crate) type RestorePlan = BTreeMap<String, (Option<i64>, i64, i64)>;

/// Where each logged store's restore starts: `Some(offset after the checkpoint)` when the local files
/// can be trusted, `None` for a full restore.
pub(crate) fn plan_restore(
    task: TaskId,
    stores: &[(String, TopicPartition)],
    checkpoint: &Offsets,
    restorer: &mut dyn RestoreConsumer,
) -> Result<RestorePlan, StreamsError> {
    let mut plan = BTreeMap::new();
    for (store, tp) in stores {
        let (low, high) = restorer.watermarks(tp)?;
        let checkpointed = checkpoint.get(&(tp.topic.to_string(), tp.partition)).copied();
        let start = match checkpointed {
            Some(offset) if offset + 1 >= low && offset < high => Some(offset + 1),
            Some(offset) => {
                tracing::warn!(target: "kstreams::runtime::restore", task = %task, store = %store, checkpoint = offset, log_start = low, log_end = high,
                    "checkpoint outside the changelog; restoring the store in full");
                None
            }
            None => None,
        };
        plan.insert(store.clone(), (start, low, high));
    }
    Ok(plan)
}

/// Takes the stores that `plan` restores in full out of the task's checkpoint file: a restore cut short
/// leaves part of the changelog in their files, which the old entry (untrusted because the files were
/// gone, say) must not vouch for at the next start.
pub(crate) fn forget_full_restores(
    task: TaskId,
    task_dir: &Path,
    checkpoint: &Offsets,
    stores: &[(String, TopicPartition)],
    plan: &RestorePlan,
) -> Result<(), StreamsError> {
    let mut kept = checkpoint.clone();
    for (store, tp) in stores {
        if plan.get(store).is_some_and(|(start, _, _)| start.is_none()) {
            kept.remove(&(tp.topic.to_string(), tp.partition));
        }
    }
    if kept.len() == checkpoint.len() {
        return Ok(());
    }
    OffsetCheckpoint::in_dir(task_dir).write(&kept).map_err(|e| StreamsError::State {
        task,
        message: format!("rewriting the checkpoint in {}: {e}", task_dir.display()),
    })
}

/// About how long a stream thread restores between two polls: its running tasks wait no longer.
const RESTORE_STEP_TIME: Duration = Duration::from_millis(100);

/// The changelog offsets read at a time, at least and at most: each read starts the fetch again, so a
/// chunk is sized to take about [`RESTORE_STEP_TIME`] at the rate the last one went.
const MIN_CHUNK: i64 = RESTORE_BATCH as i64;
const MAX_CHUNK: i64 = 2_000_000;

/// The restore of one task's stores, a step at a time between the thread's polls
/// ([`Restoration::step`]), from where the plan says to each changelog's end as it was when planned.
///
/// A record stamped with a lower owner epoch than one before it is a former owner's late write (see
/// [`owner_epoch`]): it is skipped, and the current value of its key goes to the task's changelog
/// buffer, to be written again under the new owner's epoch. A store restored after its checkpoint starts
/// from the epoch recorded with the checkpoint.
pub(crate) struct Restoration {
    /// The stores still to restore, in the task's order.
    pending: VecDeque<PendingStore>,
    /// The store being restored.
    current: Option<StoreRestore>,
    recorded_epoch: Option<i32>,
    /// The highest owner epoch the task's state has seen so far.
    highest: Option<i32>,
    /// The changelog offsets the next read covers.
    chunk: i64,
    /// Whether a finished store skipped a former owner's late writes. Restoring a task: their keys wait
    /// in its changelog buffer to be written again when it runs. Updating a standby: nothing writes
    /// them again, so its checkpoint must stay before them (the task's next owner then restores them
    /// and writes them again).
    relogged: bool,
    /// Whether this updates a standby (see [`Restoration::standby_update`]).
    standby: bool,
    /// Whether the last step failed part way (its chunk applied in part, a store taken from the
    /// pending ones but not started): what was restored is then not checkpointed.
    interrupted: bool,
}

struct PendingStore {
    store: String,
    tp: TopicPartition,
    start: i64,
    high: i64,
    /// Whether the restore starts after a trusted checkpoint (else from the log's start).
    after_checkpoint: bool,
}

/// How far the restore of one store got.
struct StoreRestore {
    store: String,
    tp: TopicPartition,
    start: i64,
    /// The next offset to read.
    position: i64,
    high: i64,
    fence: EpochFence,
    /// Records restored so far.
    total: u64,
    /// Whether the store is in bulk mode.
    bulk: bool,
    started: Instant,
    last_report: Instant,
}

impl Restoration {
    /// The restore of `task`'s logged stores from where `plan` says; a store with nothing to restore is
    /// marked up to date at once.
    pub(crate) fn new(task: &mut Task, plan: &RestorePlan, recorded_epoch: Option<i32>) -> Self {
        Restoration::planned(task, plan, recorded_epoch, false, false)
    }

    /// The restore of a task that took its standby's stores over open (`StandbyTask::takeover_plan`):
    /// as [`Restoration::new`], but an in-memory store goes on from what the standby applied.
    pub(crate) fn taken_over(task: &mut Task, plan: &RestorePlan, recorded_epoch: Option<i32>) -> Self {
        Restoration::planned(task, plan, recorded_epoch, false, true)
    }

    /// `open`: the stores were open before (a standby's), so an in-memory store holds what it applied.
    fn planned(task: &mut Task, plan: &RestorePlan, recorded_epoch: Option<i32>, standby: bool, open: bool) -> Self {
        let mut pending = VecDeque::new();
        for changelog in task.changelogs().to_vec() {
            let Some(&(checkpointed_start, low, high)) = plan.get(&changelog.store) else { continue };
            // A store that keeps nothing on disk starts empty when it opens, whatever a checkpoint
            // says; one open already goes on from what it applied (a standby's first update has no
            // start).
            let checkpointed_start = checkpointed_start.filter(|_| changelog.persistent || open);
            let start = checkpointed_start.unwrap_or(low);
            // A store restored in full reflects the log's start only once its restore begins: a
            // checkpoint of a restore cut short before then must not say it does.
            if start > 0 && (checkpointed_start.is_some() || start >= high) {
                task.set_changelog_offset(&changelog.partition, start - 1);
            }
            if start >= high {
                tracing::debug!(target: "kstreams::runtime::restore", task = %task.id(), store = %changelog.store, "store is up to date with its changelog");
                continue;
            }
            pending.push_back(PendingStore {
                store: changelog.store.clone(),
                tp: changelog.partition.clone(),
                start,
                high,
                after_checkpoint: checkpointed_start.is_some(),
            });
        }
        Restoration {
            pending,
            current: None,
            recorded_epoch,
            highest: recorded_epoch,
            chunk: 2 * MIN_CHUNK,
            relogged: false,
            standby,
            interrupted: false,
        }
    }

    /// The same for a standby's stores (`runtime::standby`): logged at debug level (an update runs every
    /// few hundred milliseconds), and a former owner's late writes skipped are not written again (a
    /// standby writes nothing; [`Restoration::skipped_late_writes`] says so instead). `pinned`: an
    /// earlier update of the standby skipped some, so this one never checkpoints either.
    pub(crate) fn standby_update(
        task: &mut Task,
        plan: &RestorePlan,
        recorded_epoch: Option<i32>,
        pinned: bool,
    ) -> Self {
        Restoration { relogged: pinned, ..Restoration::planned(task, plan, recorded_epoch, true, true) }
    }

    /// Whether a store skipped a former owner's late writes: a standby's state is right, but its
    /// checkpoint must not pass them.
    pub(crate) fn skipped_late_writes(&self) -> bool {
        self.relogged || self.current.as_ref().is_some_and(|c| c.fence.skipped() > 0)
    }

    /// Whether every store is restored.
    pub(crate) fn is_done(&self) -> bool {
        self.current.is_none() && self.pending.is_empty()
    }

    /// Changelog offsets still to read, over every store (Kafka Streams' `restore-remaining-records-total`,
    /// which also counts offsets: a compacted changelog has fewer records than that).
    pub(crate) fn remaining(&self) -> u64 {
        let pending: i64 = self.pending.iter().map(|p| p.high - p.start).sum();
        let current = self.current.as_ref().map_or(0, |c| c.high - c.position);
        (pending + current).max(0) as u64
    }

    /// The highest owner epoch the restored state has seen.
    pub(crate) fn highest_epoch(&self) -> Option<i32> {
        self.highest
    }

    /// Restores for about [`RESTORE_STEP_TIME`] more (at least one read of whole batches), store after
    /// store; true once every store is restored. `between_batches` runs after each batch; its error
    /// stops the restore.
    pub(crate) fn step(
        &mut self,
        task: &mut Task,
        restorer: &mut dyn RestoreConsumer,
        listener: Progress<'_>,
        between_batches: &mut dyn FnMut() -> Result<(), StreamsError>,
    ) -> Result<bool, StreamsError> {
        let step_started = Instant::now();
        self.interrupted = true;
        let done = self.step_on(task, restorer, listener, between_batches, step_started)?;
        self.interrupted = false;
        Ok(done)
    }

    fn step_on(
        &mut self,
        task: &mut Task,
        restorer: &mut dyn RestoreConsumer,
        listener: Progress<'_>,
        between_batches: &mut dyn FnMut() -> Result<(), StreamsError>,
        step_started: Instant,
    ) -> Result<bool, StreamsError> {
        loop {
            let current = match &mut self.current {
                Some(current) => current,
                None => {
                    let Some(next) = self.pending.pop_front() else { return Ok(true) };
                    let started = self.start_store(task, next, listener)?;
                    self.current.insert(started)
                }
            };
            let (from, end) = (current.position, current.position.saturating_add(self.chunk).min(current.high));
            let read_started = Instant::now();
            current.read_to(task, end, restorer, listener, between_batches)?;
            let rate = (end - from) as f64 / read_started.elapsed().as_secs_f64().max(1e-6);
            self.chunk = ((rate * RESTORE_STEP_TIME.as_secs_f64()) as i64).clamp(MIN_CHUNK, MAX_CHUNK);
            if current.position >= current.high {
                self.finish_store(task, listener)?;
            }
            if self.is_done() {
                return Ok(true);
            }
            if step_started.elapsed() >= RESTORE_STEP_TIME {
                return Ok(false);
            }
        }
    }

    fn start_store(
        &mut self,
        task: &mut Task,
        next: PendingStore,
        listener: Progress<'_>,
    ) -> Result<StoreRestore, StreamsError> {
        let PendingStore { store, tp, start, high, after_checkpoint } = next;
        if !after_checkpoint && start > 0 {
            task.set_changelog_offset(&tp, start - 1);
        }
        if let Progress::Restore(l) = listener {
            l.on_restore_start(&tp, &store, start, high);
        }
        if self.standby {
            tracing::debug!(target: "kstreams::runtime::restore", task = %task.id(), store = %store, changelog = %tp, from = start, to = high,
                "updating standby store");
        } else {
            tracing::info!(target: "kstreams::runtime::restore", task = %task.id(), store = %store, changelog = %tp, from = start, to = high,
                to_go = high - start, "restoring store");
        }
        // Bulk mode pays for itself only on a large restore: entering and leaving it rewrites RocksDB's
        // options file twice, which dominated opening small tasks.
        let bulk = high - start >= BULK_RESTORE_RECORDS;
        if bulk {
            task.set_restoring(&store, true)?;
        }
        Ok(StoreRestore {
            store,
            tp,
            start,
            position: start,
            high,
            // A full restore reads every stamp; one after the checkpoint starts from the epoch recorded with it.
            fence: EpochFence::after(if after_checkpoint { self.recorded_epoch } else { None }),
            total: 0,
            bulk,
            started: Instant::now(),
            last_report: Instant::now(),
        })
    }

    fn finish_store(&mut self, task: &mut Task, listener: Progress<'_>) -> Result<(), StreamsError> {
        let Some(current) = self.current.take() else { return Ok(()) };
        let StoreRestore { store, tp, fence, total, bulk, started, .. } = current;
        if bulk {
            task.set_restoring(&store, false)?;
        }
        self.highest = self.highest.max(fence.highest());
        if fence.skipped() > 0 && self.standby {
            tracing::warn!(target: "kstreams::runtime::restore", task = %task.id(), store = %store, changelog = %tp, skipped = fence.skipped(),
                highest_epoch = ?fence.highest(),
                "a standby skipped changelog records a former owner wrote after a newer owner's (a paused instance's late writes); \
                 its checkpoint stays before them, so that the task's next owner writes their keys again");
            self.relogged = true;
        } else if fence.skipped() > 0 {
            tracing::warn!(target: "kstreams::runtime::restore", task = %task.id(), store = %store, changelog = %tp, skipped = fence.skipped(),
                highest_epoch = ?fence.highest(),
                "skipped changelog records a former owner wrote after a newer owner's (a paused instance's late writes); \
                 writing the current values of their keys again");
            task.relog(&store, fence.into_stale_keys())?;
            self.relogged = true;
        }
        if let Progress::Restore(l) = listener {
            l.on_restore_end(&tp, &store, total);
        }
        let elapsed = started.elapsed();
        if self.standby {
            tracing::debug!(target: "kstreams::runtime::restore", task = %task.id(), store = %store, applied = total, "standby store updated");
            return Ok(());
        }
        let rate = total as f64 / elapsed.as_secs_f64().max(1e-9);
        tracing::info!(target: "kstreams::runtime::restore", task = %task.id(), store = %store, restored = total, elapsed = ?elapsed, records_per_sec = rate as u64,
            "store restored");
        Ok(())
    }

    /// When the task closes before its restore ends: takes the store being restored out of bulk mode
    /// and checkpoints what was restored, with the owner epoch its fence reached, so that the next
    /// restore goes on from there exactly as this one would have. Only when that one epoch says it
    /// for every store: no store skipped a former owner's late writes (their keys would have to be
    /// written again, which only a running task does), no store still to restore starts after the
    /// old checkpoint (its fence starts from the old epoch), and no store restored so far saw a
    /// higher epoch than the one being restored; and the last step did not fail part way. Otherwise
    /// the checkpoint stays as it was and the next restore starts over from it.
    pub(crate) fn abandon(&mut self, task: &mut Task) {
        let id = task.id();
        let skipped = self.relogged || self.interrupted || self.current.as_ref().is_some_and(|c| c.fence.skipped() > 0);
        let reached = self.current.as_ref().map_or(self.highest, |c| c.fence.highest());
        let one_epoch = self.highest <= reached && self.pending.iter().all(|p| !p.after_checkpoint);
        if let Some(current) = self.current.take()
            && current.bulk
            && let Err(e) = task.set_restoring(&current.store, false)
        {
            tracing::warn!(target: "kstreams::runtime::restore", task = %id, store = %current.store, error = %e, "could not leave bulk mode");
            return;
        }
        if skipped || !one_epoch {
            return;
        }
        match task.checkpoint_partial_restore(reached) {
            Ok(()) => {
                tracing::info!(target: "kstreams::runtime::restore", task = %id, "restore cut short; what was restored is checkpointed")
            }
            Err(e) => tracing::warn!(target: "kstreams::runtime::restore", task = %id, error = %e,
                "could not checkpoint the restore cut short; the next one starts from the last checkpoint"),
        }
    }
}

impl StoreRestore {
    /// Reads the changelog from the position to `end`, applying every record the owner-epoch fence
    /// admits.
    fn read_to(
        &mut self,
        task: &mut Task,
        end: i64,
        restorer: &mut dyn RestoreConsumer,
        listener: Progress<'_>,
        between_batches: &mut dyn FnMut() -> Result<(), StreamsError>,
    ) -> Result<(), StreamsError> {
        let id = task.id();
        let StoreRestore { store, tp, start, high, fence, total, last_report, .. } = self;
        let last = restorer.read(tp, self.position, end, RESTORE_BATCH, &mut |batch| {
            let mut keep: Vec<bool> = batch.iter().map(|r| fence.admit(r)).collect();
            for i in 0..batch.len() {
                if keep[i] {
                    continue;
                }
                // A late write of a key that nothing restored so far holds is all that is left of it
                // (compaction removed the newer owner's record): better its value than none.
                let key = batch[i].key.as_deref().unwrap_or_default();
                let earlier = batch[..i].iter().zip(&keep).any(|(r, &kept)| kept && r.key.as_deref() == Some(key));
                if !earlier && task.get_raw(store, key)?.is_none() {
                    keep[i] = true;
                    fence.readmit(key);
                }
            }
            let mut kept = keep.iter();
            task.restore_batch_where(store, batch, |_| kept.next().copied().unwrap_or(true))?;
            *total += batch.len() as u64;
            let batch_end = batch.last().map_or(*start, |r| r.offset);
            match listener {
                Progress::Restore(l) => l.on_batch_restored(tp, store, batch_end, batch.len() as u64),
                Progress::Standby(l) => l.on_batch_loaded(tp, store, id, batch_end, batch.len() as u64, *high),
                Progress::Unheard => {}
            }
            if last_report.elapsed() >= PROGRESS_EVERY {
                tracing::info!(target: "kstreams::runtime::restore", task = %id, store = %store, restored = *total,
                    to_go = (*high - 1 - batch_end).max(0), "restoring store");
                *last_report = Instant::now();
            }
            between_batches()
        })?;
        if let Some(offset) = last {
            task.set_changelog_offset(tp, offset);
        }
        // The reader may apply one record past `end` when `end - 1` is a gap (compaction, a marker).
        self.position = last.map_or(end, |offset| end.max(offset + 1));
        Ok(())
    }
}
