//! A stream thread's consumer when the library's own group member runs the group (`group.assignor=streams`):
//! the thread sees a [`StreamsConsumer`] as with librdkafka's group, its rebalance callbacks called from
//! `poll_batch`, while underneath the [`GroupMember`] joins with Kafka Streams' subscription (the
//! instance's process id, its tasks' offset sums), the leader assigns with Kafka Streams' task assignor
//! (`group_assignment`), and a consumer that never subscribes reads the partitions handed out.
//!
//! Rebalances are cooperative (KIP-429): a member keeps its tasks running while the group rebalances,
//! and at its assignment gives up only the partitions that moved (committing first, through the
//! revocation callback) and opens only the new ones; a task held back until its owner gave it up comes
//! in the follow-up rebalance the leader asks for. As in Kafka Streams, whose consumer joins inside
//! `poll`, nothing is committed between a join and its assignment (`rebalance_in_progress`): the group
//! could have formed a generation this member's commits no longer belong to.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::assignment_info::{AssignmentInfo, SubscriptionInfo};
use super::assignor::{AssignmentConfigs, ProcessId};
use super::group_assignment::{self, GroupTopology};
use super::layout::Layouts;
use super::metadata::Endpoints;
use super::standby::StandbyAssignment;
use crate::client::{
    ClientError, ClientErrorKind, ClientSupplier, CommittedOffsets, GroupEvent, GroupMember, GroupMetadata,
    JoinedMember, OffsetAndMetadata, OffsetCommitter, RebalanceListener, StreamsConsumer, Subscription, TopicPartition,
};
use crate::config::StreamsConfig;
use crate::record::RawRecord;
use crate::sync::LockUnpoisoned;
use crate::task_id::TaskId;
use crate::time::Clock;

/// How long assigned partitions wait for their committed offsets before that is a warning: Kafka's
/// consumer's `default.api.timeout.ms`, after which its offset fetch fails and Kafka Streams warns.
const AWAITING_WARN_MS: i64 = 60_000;

/// What a stream thread tells about its instance.
pub(crate) struct Instance {
    pub(crate) process_id: ProcessId,
    /// The thread's tasks' offset sums now (`assignor::LATEST_OFFSET` for those it runs).
    pub(crate) offset_sums: Box<dyn Fn() -> BTreeMap<TaskId, i64> + Send>,
    pub(crate) layouts: Arc<Layouts>,
    /// Where the standby tasks of each assignment go, for the thread to open.
    pub(crate) standbys: Arc<StandbyAssignment>,
    /// Where each assignment's instances' addresses go, for the instance's metadata queries.
    pub(crate) endpoints: Arc<Endpoints>,
}

/// The listener of a consumer that never subscribes (its partitions are assigned): never called.
struct NoRebalance;

impl RebalanceListener for NoRebalance {
    fn on_partitions_revoked(&self, _: &[TopicPartition], _: &dyn OffsetCommitter) {}
    fn on_partitions_lost(&self, _: &[TopicPartition]) {}
    fn on_partitions_assigned(&self, _: &[TopicPartition], _: &CommittedOffsets) {}
}

/// What the member says about its instance, and what it needs when it leads.
pub(crate) struct MemberContext {
    pub(crate) process_id: ProcessId,
    /// `application.server`.
    pub(crate) endpoint: Option<String>,
    pub(crate) client_tags: BTreeMap<String, String>,
    /// The thread's tasks' offset sums now (`assignor::LATEST_OFFSET` for those it runs).
    pub(crate) offset_sums: Box<dyn Fn() -> BTreeMap<TaskId, i64> + Send>,
    pub(crate) layouts: Arc<Layouts>,
    pub(crate) standbys: Arc<StandbyAssignment>,
    pub(crate) endpoints: Arc<Endpoints>,
    pub(crate) configs: AssignmentConfigs,
    /// `probing.rebalance.interval.ms`.
    pub(crate) probing_interval_ms: i64,
    /// `task.timeout.ms`: how long assigned partitions may wait for their committed offsets.
    pub(crate) task_timeout_ms: i64,
    pub(crate) clock: Clock,
}

/// See the module's documentation.
pub(crate) struct MemberConsumer {
    member: Mutex<Box<dyn GroupMember>>,
    consumer: Box<dyn StreamsConsumer>,
    listener: Arc<dyn RebalanceListener>,
    context: MemberContext,
    topics: Vec<String>,
    /// The partitions this member reads: its last assignment's.
    owned: BTreeSet<TopicPartition>,
    /// A join was sent and the group has not answered it yet (a `RejoinNeeded` meanwhile is answered by
    /// it).
    joining: bool,
    /// This member leads a generation and its assignment has not come back yet.
    syncing: bool,
    /// When to join again by the leader's word (a follow-up or probing rebalance).
    rejoin_at: Option<i64>,
    /// `rejoin` was called: give up every partition, then join again.
    give_up_all: bool,
    /// The generation whose assignment asked for a follow-up rebalance, once asked.
    followup_of: Option<i32>,
    /// The topic layout's generation the thread subscribed with.
    layout_generation: u64,
    /// Partitions given up (revoked, lost) since the poll began.
    given_up: BTreeSet<TopicPartition>,
    /// Partitions of the last assignment not taken yet: their committed offsets could not be read (an
    /// open transaction still commits them, KIP-447). Taken at a later poll.
    awaiting: Vec<TopicPartition>,
    /// Since when (clock ms) they wait, and whether that was told at warn level.
    awaiting_since: Option<(i64, bool)>,
}

impl MemberConsumer {
    /// The consumer of stream thread `thread` (`<client id>-StreamThread-<n>`) under
    /// `group.assignor=streams`, its clients made by `supplier`, its rebalances told to `listener`.
    pub(crate) fn for_thread(
        thread: &str,
        config: &StreamsConfig,
        supplier: &dyn ClientSupplier,
        listener: Arc<dyn RebalanceListener>,
        instance: Instance,
        clock: Clock,
    ) -> Result<Self, ClientError> {
        let client_id = format!("{thread}-consumer");
        let fetcher = supplier.consumer(config, &client_id, Arc::new(NoRebalance))?;
        // One static member per thread, as Kafka Streams names them: `<group.instance.id>-<n>`.
        let mut member_config = config.clone();
        if let Some(id) = config.consumer_setting("group.instance.id") {
            let index = thread.rsplit_once("StreamThread-").map_or(thread, |(_, index)| index);
            member_config.consumer_overrides.insert("group.instance.id".into(), format!("{id}-{index}"));
        }
        let member = supplier.group_member(&member_config, &client_id)?;
        let context = MemberContext {
            process_id: instance.process_id,
            endpoint: config.application_server.clone(),
            client_tags: BTreeMap::new(),
            offset_sums: instance.offset_sums,
            layouts: instance.layouts,
            standbys: instance.standbys,
            endpoints: instance.endpoints,
            configs: AssignmentConfigs {
                acceptable_recovery_lag: config.acceptable_recovery_lag,
                max_warmup_replicas: i64::try_from(config.max_warmup_replicas).unwrap_or(i64::MAX),
                num_standby_replicas: config.num_standby_replicas,
                rack_aware_assignment_tags: Vec::new(),
            },
            probing_interval_ms: i64::try_from(config.probing_rebalance_interval.as_millis()).unwrap_or(i64::MAX),
            task_timeout_ms: i64::try_from(config.task_timeout.as_millis()).unwrap_or(i64::MAX),
            clock,
        };
        Ok(MemberConsumer::new(member, fetcher, listener, context))
    }

    pub(crate) fn new(
        member: Box<dyn GroupMember>,
        consumer: Box<dyn StreamsConsumer>,
        listener: Arc<dyn RebalanceListener>,
        context: MemberContext,
    ) -> Self {
        MemberConsumer {
            member: Mutex::new(member),
            consumer,
            listener,
            context,
            topics: Vec::new(),
            owned: BTreeSet::new(),
            joining: false,
            syncing: false,
            rejoin_at: None,
            give_up_all: false,
            followup_of: None,
            layout_generation: 0,
            given_up: BTreeSet::new(),
            awaiting: Vec::new(),
            awaiting_since: None,
        }
    }

    fn join(&mut self) -> Result<(), ClientError> {
        let info = SubscriptionInfo {
            process_id: self.context.process_id,
            endpoint: self.context.endpoint.clone(),
            client_tags: self.context.client_tags.clone(),
            task_offset_sums: (self.context.offset_sums)(),
            error_code: 0,
        };
        let subscription = Subscription {
            topics: self.topics.clone(),
            user_data: info.encode(),
            owned_partitions: self.owned.iter().cloned().collect(),
        };
        self.joining = true;
        self.syncing = false;
        self.rejoin_at = None;
        self.member.lock_unpoisoned().join(subscription)
    }

    /// Gives up `partitions` through the revocation callback (which commits first), and stops reading
    /// them.
    fn revoke(&mut self, partitions: Vec<TopicPartition>) -> Result<(), ClientError> {
        if partitions.is_empty() {
            return Ok(());
        }
        self.listener.on_partitions_revoked(&partitions, &Committer(&self.member));
        self.consumer.unassign(&partitions)?;
        for tp in &partitions {
            self.owned.remove(tp);
        }
        self.given_up.extend(partitions);
        Ok(())
    }

    /// The group's events since the last poll, each acted on.
    fn follow_group(&mut self) -> Result<(), ClientError> {
        if std::mem::take(&mut self.give_up_all) {
            let all: Vec<TopicPartition> = self.owned.iter().cloned().collect();
            self.revoke(all)?;
            self.join()?;
        }
        if self.rejoin_at.is_some_and(|at| self.context.clock.now_ms() >= at) && !self.joining {
            self.join()?;
        }
        if !self.awaiting.is_empty() && !self.joining && !self.syncing {
            let awaiting = std::mem::take(&mut self.awaiting);
            self.open(awaiting)?;
        }
        loop {
            let event = self.member.lock_unpoisoned().poll(Duration::ZERO)?;
            match event {
                GroupEvent::Idle => return Ok(()),
                GroupEvent::Lead { generation, members } => {
                    (self.joining, self.syncing) = (false, true);
                    let assignments = self.lead(&members);
                    self.member.lock_unpoisoned().sync(generation, assignments)?;
                }
                GroupEvent::Assigned { generation, assignment } => {
                    (self.joining, self.syncing) = (false, false);
                    // Whatever an earlier assignment left waiting is that generation's, not this one's.
                    self.stop_awaiting();
                    let info = AssignmentInfo::decode(&assignment.user_data).map_err(|e| {
                        let message = format!("the assignment of generation {generation} cannot be read: {e}");
                        ClientError::new("assignment", message, ClientErrorKind::Fatal)
                    })?;
                    let assigned: BTreeSet<TopicPartition> = assignment.partitions.into_iter().collect();
                    // A leader whose source patterns match topics this thread does not read yet: as
                    // Kafka's consumer, give up what moved, take nothing, and join again once the
                    // thread's layout has caught up (the look below; the thread subscribes again).
                    let behind = assigned.iter().any(|tp| !self.topics.iter().any(|t| **t == *tp.topic))
                        || self.context.layouts.generation() != self.layout_generation;
                    if behind {
                        tracing::info!(target: "kstreams::runtime::thread", generation,
                            "the assignment names topics this thread does not read yet; joining again with them");
                        let moved: Vec<TopicPartition> = self.owned.difference(&assigned).cloned().collect();
                        self.revoke(moved)?;
                        self.listener.on_partitions_assigned(&[], &CommittedOffsets::new());
                        self.context.layouts.look();
                        if self.context.layouts.generation() == self.layout_generation {
                            // The broker has not shown this instance the topics yet: join again in a
                            // second rather than at once (a follower that rejoins unchanged is answered
                            // with the same assignment).
                            self.rejoin_at = Some(self.context.clock.now_ms().saturating_add(1_000));
                        }
                        continue;
                    }
                    self.context.endpoints.set(generation, &info.endpoints);
                    let revoked = self.take(assigned)?;
                    // A task whose committed offsets are not stable yet stays a standby here meanwhile:
                    // that copy is what the task takes over once they are.
                    let (_, layout) = self.context.layouts.current();
                    let waiting = self.awaiting.iter().filter_map(|tp| {
                        let subtopology = *layout.reader.get(&*tp.topic)?;
                        let stateful = layout.subtopologies.get(&subtopology).is_some_and(|(_, logs)| !logs.is_empty());
                        stateful.then_some(TaskId { subtopology, partition: tp.partition })
                    });
                    self.context.standbys.set(info.standby.iter().copied().chain(waiting));
                    self.rejoin_at = match info.next_rebalance_ms {
                        // The follow-up this assignment asks for, once: the group answers a member that
                        // rejoins unchanged with the same assignment, asking again.
                        Some(0) if self.followup_of == Some(generation) => None,
                        Some(0) => {
                            self.followup_of = Some(generation);
                            Some(i64::MIN)
                        }
                        other => other,
                    };
                    // A member that gave partitions up joins again at once with what it still owns
                    // (KIP-429): the rebalance that hands them to their new owners.
                    if revoked {
                        self.join()?;
                    }
                }
                // Only ever about the last join asked for (the member drops what answers an earlier one).
                GroupEvent::RejoinNeeded => self.join()?,
                GroupEvent::Lost { reason } => {
                    tracing::warn!(target: "kstreams::runtime::thread", reason, "out of the group; its partitions are lost");
                    self.stop_awaiting();
                    let lost: Vec<TopicPartition> = std::mem::take(&mut self.owned).into_iter().collect();
                    if !lost.is_empty() {
                        self.listener.on_partitions_lost(&lost);
                        self.consumer.unassign(&lost)?;
                        self.given_up.extend(lost);
                    }
                    (self.joining, self.syncing) = (false, false);
                    self.join()?;
                }
            }
        }
    }

    /// Nothing waits for its committed offsets any more.
    fn stop_awaiting(&mut self) {
        self.awaiting.clear();
        self.awaiting_since = None;
    }

    /// Moves to `assigned`: gives up what moved away, then opens what is new, from the group's
    /// committed offsets. Whether it gave something up.
    fn take(&mut self, assigned: BTreeSet<TopicPartition>) -> Result<bool, ClientError> {
        self.stop_awaiting();
        let revoked: Vec<TopicPartition> = self.owned.difference(&assigned).cloned().collect();
        let gave_up = !revoked.is_empty();
        self.revoke(revoked)?;
        let added: Vec<TopicPartition> = assigned.difference(&self.owned).cloned().collect();
        self.open(added)?;
        Ok(gave_up)
    }

    /// Opens `added` from the group's committed offsets. When those cannot be read yet (a transaction
    /// still commits them, and the member's own retries within `default.api.timeout.ms` ran out, or
    /// the embedded broker runs on a simulation's clock), the partitions wait for a later poll, as
    /// Kafka's consumer retries its offset fetch within `poll`; the thread goes on with its other tasks
    /// meanwhile. Past `task.timeout.ms` of waiting, the thread fails, as Kafka Streams' does.
    fn open(&mut self, added: Vec<TopicPartition>) -> Result<(), ClientError> {
        if added.is_empty() {
            // Called with nothing new too: the assignment is what brings the instance back to RUNNING.
            self.listener.on_partitions_assigned(&[], &CommittedOffsets::new());
            return Ok(());
        }
        let committed = match self.member.lock_unpoisoned().committed(&added) {
            Ok(committed) => committed,
            Err(e) if e.kind == ClientErrorKind::Retriable => {
                let now = self.context.clock.now_ms();
                let (since, warned) = self.awaiting_since.get_or_insert((now, false));
                let waited = now.saturating_sub(*since);
                if waited >= self.context.task_timeout_ms {
                    let message = format!(
                        "the committed offsets of {} could not be read for {waited} ms, past task.timeout.ms ({} ms): {e}",
                        added.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                        self.context.task_timeout_ms
                    );
                    return Err(ClientError::new("fetch committed offsets", message, ClientErrorKind::Fatal));
                }
                // Kafka's consumer gives up on an offset fetch after `default.api.timeout.ms` (a minute),
                // which Kafka Streams logs as a warning before it tries again.
                if waited >= AWAITING_WARN_MS && !*warned {
                    *warned = true;
                    tracing::warn!(target: "kstreams::runtime::thread", error = %e, partitions = added.len(), waited_ms = waited,
                        "the committed offsets of the partitions assigned still cannot be read; trying again until task.timeout.ms");
                } else {
                    tracing::debug!(target: "kstreams::runtime::thread", error = %e, partitions = added.len(),
                        "the committed offsets of the partitions assigned cannot be read yet; trying again at the next poll");
                }
                self.awaiting = added;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.awaiting_since = None;
        self.listener.on_partitions_assigned(&added, &committed);
        let from: Vec<(TopicPartition, Option<i64>)> =
            added.iter().map(|tp| (tp.clone(), committed.get(tp).map(|c| c.offset))).collect();
        self.consumer.assign(&from)?;
        self.owned.extend(added);
        Ok(())
    }

    /// The leader's assignment of the group.
    fn lead(&mut self, members: &[JoinedMember]) -> Vec<(String, crate::client::Assignment)> {
        let (_, layout) = self.context.layouts.current();
        let tasks = layout.tasks();
        let changelogs = layout.changelog_partitions();
        let stateful: BTreeSet<TaskId> = changelogs.keys().copied().collect();
        let end_offset_sums = self.end_offset_sums(&changelogs);
        let topology = GroupTopology { tasks: &tasks, stateful: &stateful, end_offset_sums: &end_offset_sums };
        let now = self.context.clock.now_ms();
        let result = group_assignment::assign_group(
            members,
            &topology,
            &self.context.configs,
            now,
            self.context.probing_interval_ms,
        );
        for (member, why) in &result.unreadable {
            tracing::warn!(target: "kstreams::runtime::thread", member, why, "a member's subscription cannot be read; it gets no task");
        }
        tracing::info!(target: "kstreams::runtime::thread", members = members.len(), tasks = tasks.len(),
            followup = result.followup, probing = result.probing, "assigned the group");
        result.assignments
    }

    /// Per stateful task, the sum of its changelogs' ends, asked of the broker at once. When they
    /// cannot be read, every instance's copy counts as caught up (tasks go where the balance says,
    /// restoring there), as when Kafka Streams' leader cannot list them.
    fn end_offset_sums(&mut self, changelogs: &BTreeMap<TaskId, Vec<TopicPartition>>) -> BTreeMap<TaskId, i64> {
        let partitions: Vec<TopicPartition> = changelogs.values().flatten().cloned().collect();
        let ends = match self.consumer.end_offsets(&partitions) {
            Ok(ends) => ends,
            Err(e) => {
                tracing::warn!(target: "kstreams::runtime::thread", error = %e,
                    "cannot read the changelogs' end offsets; assigning as if every instance were caught up");
                return changelogs.keys().map(|&task| (task, 0)).collect();
            }
        };
        let sum = |tps: &Vec<TopicPartition>| {
            tps.iter().map(|tp| ends.get(tp).copied().unwrap_or(0)).fold(0, i64::saturating_add)
        };
        changelogs.iter().map(|(&task, tps)| (task, sum(tps))).collect()
    }
}

/// Commits through the group member (the revocation callback's committer).
struct Committer<'a>(&'a Mutex<Box<dyn GroupMember>>);

impl OffsetCommitter for Committer<'_> {
    fn commit(&self, offsets: &[(TopicPartition, OffsetAndMetadata)]) -> Result<(), ClientError> {
        self.0.lock_unpoisoned().commit(offsets)
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        self.0.lock_unpoisoned().group_metadata()
    }
}

impl OffsetCommitter for MemberConsumer {
    fn commit(&self, offsets: &[(TopicPartition, OffsetAndMetadata)]) -> Result<(), ClientError> {
        Committer(&self.member).commit(offsets)
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        Committer(&self.member).group_metadata()
    }
}

impl StreamsConsumer for MemberConsumer {
    fn subscribe(&mut self, topics: &[String]) -> Result<(), ClientError> {
        self.topics = topics.to_vec();
        self.layout_generation = self.context.layouts.generation();
        self.join()
    }

    fn poll_batch(&mut self, timeout: Duration, max: usize, out: &mut Vec<RawRecord>) -> Result<(), ClientError> {
        self.given_up.clear();
        self.follow_group()?;
        self.consumer.poll_batch(timeout, max, out)?;
        // What the group did meanwhile is acted on at once. Records of a partition it gave up on the
        // way are dropped: its task was closed (and may be opened again from the committed offset,
        // which would read them again).
        self.given_up.clear();
        self.follow_group()?;
        if !self.given_up.is_empty() {
            out.retain(|r| !self.given_up.contains(&TopicPartition { topic: r.topic.clone(), partition: r.partition }));
        }
        Ok(())
    }

    fn rejoin(&mut self) -> Result<(), ClientError> {
        self.give_up_all = true;
        Ok(())
    }

    fn pause(&mut self, partitions: &[TopicPartition]) -> Result<(), ClientError> {
        self.consumer.pause(partitions)
    }

    fn resume(&mut self, partitions: &[TopicPartition]) -> Result<(), ClientError> {
        self.consumer.resume(partitions)
    }

    fn fetched_lags(&mut self, partitions: &[TopicPartition]) -> Vec<Option<i64>> {
        self.consumer.fetched_lags(partitions)
    }

    fn close(&mut self) {
        let all: Vec<TopicPartition> = self.owned.iter().cloned().collect();
        if let Err(e) = self.revoke(all) {
            tracing::warn!(target: "kstreams::runtime::thread", error = %e, "could not give up the partitions at close");
        }
        self.consumer.close();
        self.member.lock_unpoisoned().close();
    }

    fn rebalance_in_progress(&self) -> bool {
        self.joining || self.syncing
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;
    use crate::client::{Assignment, StreamsAdmin};
    use crate::embedded::EmbeddedBroker;
    use crate::runtime::topics::TopicLayout;

    /// What the fakes saw, in order.
    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Log {
        fn push(&self, line: String) {
            self.0.lock().unwrap().push(line);
        }

        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    fn names(partitions: &[TopicPartition]) -> String {
        partitions.iter().map(|tp| format!("{}-{}", tp.topic, tp.partition)).collect::<Vec<_>>().join(",")
    }

    /// A group member that says what its script says; its committed offsets are not stable for the first
    /// `unstable` reads.
    struct Scripted {
        events: Arc<Mutex<VecDeque<GroupEvent>>>,
        log: Arc<Log>,
        unstable: Arc<Mutex<u32>>,
    }

    impl GroupMember for Scripted {
        fn join(&mut self, subscription: Subscription) -> Result<(), ClientError> {
            self.log.push(format!("join owning [{}]", names(&subscription.owned_partitions)));
            Ok(())
        }
        fn poll(&mut self, _: Duration) -> Result<GroupEvent, ClientError> {
            Ok(self.events.lock().unwrap().pop_front().unwrap_or(GroupEvent::Idle))
        }
        fn sync(&mut self, generation: i32, _: Vec<(String, Assignment)>) -> Result<(), ClientError> {
            self.log.push(format!("sync {generation}"));
            Ok(())
        }
        fn commit(&mut self, offsets: &[(TopicPartition, OffsetAndMetadata)]) -> Result<(), ClientError> {
            self.log.push(format!("commit {}", offsets.len()));
            Ok(())
        }
        fn committed(&mut self, _: &[TopicPartition]) -> Result<CommittedOffsets, ClientError> {
            let mut unstable = self.unstable.lock().unwrap();
            if *unstable > 0 {
                *unstable -= 1;
                return Err(ClientError::new("fetch committed offsets", "not stable", ClientErrorKind::Retriable));
            }
            Ok(CommittedOffsets::new())
        }
        fn group_metadata(&self) -> Option<GroupMetadata> {
            None
        }
        fn close(&mut self) {}
    }

    /// A consumer that hands out the records it is given, once.
    struct Fetcher {
        records: Arc<Mutex<Vec<RawRecord>>>,
        log: Arc<Log>,
    }

    impl OffsetCommitter for Fetcher {
        fn commit(&self, _: &[(TopicPartition, OffsetAndMetadata)]) -> Result<(), ClientError> {
            unreachable!("the member commits")
        }
        fn group_metadata(&self) -> Option<GroupMetadata> {
            None
        }
    }

    impl StreamsConsumer for Fetcher {
        fn subscribe(&mut self, _: &[String]) -> Result<(), ClientError> {
            unreachable!("an assigned consumer never subscribes")
        }
        fn poll_batch(&mut self, _: Duration, _: usize, out: &mut Vec<RawRecord>) -> Result<(), ClientError> {
            out.append(&mut self.records.lock().unwrap());
            Ok(())
        }
        fn rejoin(&mut self) -> Result<(), ClientError> {
            unreachable!()
        }
        fn pause(&mut self, _: &[TopicPartition]) -> Result<(), ClientError> {
            Ok(())
        }
        fn resume(&mut self, _: &[TopicPartition]) -> Result<(), ClientError> {
            Ok(())
        }
        fn fetched_lags(&mut self, partitions: &[TopicPartition]) -> Vec<Option<i64>> {
            vec![None; partitions.len()]
        }
        fn close(&mut self) {}
        fn assign(&mut self, partitions: &[(TopicPartition, Option<i64>)]) -> Result<(), ClientError> {
            let tps: Vec<TopicPartition> = partitions.iter().map(|(tp, _)| tp.clone()).collect();
            self.log.push(format!("fetch [{}]", names(&tps)));
            Ok(())
        }
        fn unassign(&mut self, partitions: &[TopicPartition]) -> Result<(), ClientError> {
            self.log.push(format!("stop [{}]", names(partitions)));
            Ok(())
        }
    }

    /// The thread's callbacks, logged; a revocation commits through the committer, as the thread's does.
    struct Callbacks(Arc<Log>);

    impl RebalanceListener for Callbacks {
        fn on_partitions_revoked(&self, partitions: &[TopicPartition], committer: &dyn OffsetCommitter) {
            let _ = committer.commit(&[(partitions[0].clone(), OffsetAndMetadata::new(1))]);
            self.0.push(format!("revoked [{}]", names(partitions)));
        }
        fn on_partitions_lost(&self, partitions: &[TopicPartition]) {
            self.0.push(format!("lost [{}]", names(partitions)));
        }
        fn on_partitions_assigned(&self, partitions: &[TopicPartition], _: &CommittedOffsets) {
            self.0.push(format!("assigned [{}]", names(partitions)));
        }
    }

    struct Setup {
        consumer: MemberConsumer,
        events: Arc<Mutex<VecDeque<GroupEvent>>>,
        records: Arc<Mutex<Vec<RawRecord>>>,
        log: Arc<Log>,
        unstable: Arc<Mutex<u32>>,
        clock: Clock,
    }

    /// A consumer of topic `a` (4 partitions), subscribed.
    fn setup() -> Setup {
        let broker = EmbeddedBroker::new();
        broker.create_topic("a", 4);
        let topology = {
            let builder = crate::dsl::StreamsBuilder::new();
            builder.stream::<String, String>("a").to("b");
            builder.build().unwrap()
        };
        let plan = crate::topology::plan::plan(&topology).unwrap();
        let config = StreamsConfig::new("app", "embedded");
        let admin: Box<dyn StreamsAdmin> = broker.admin(&config).unwrap();
        let layout = TopicLayout {
            reader: [("a".to_string(), 0)].into(),
            repartition: Default::default(),
            global: Default::default(),
            subtopologies: [(0, (4, Vec::new()))].into(),
        };
        let layouts =
            Arc::new(Layouts::new(layout, (Arc::new(topology), Arc::new(plan)), &config, Arc::new(Mutex::new(admin))));
        let (events, records, log) = (Arc::default(), Arc::default(), Arc::new(Log::default()));
        let unstable = Arc::new(Mutex::new(0));
        let clock = Clock::manual(0);
        let member = Scripted { events: Arc::clone(&events), log: Arc::clone(&log), unstable: Arc::clone(&unstable) };
        let fetcher = Fetcher { records: Arc::clone(&records), log: Arc::clone(&log) };
        let context = MemberContext {
            process_id: ProcessId(1),
            endpoint: None,
            client_tags: BTreeMap::new(),
            offset_sums: Box::new(BTreeMap::new),
            layouts,
            standbys: Arc::default(),
            endpoints: Arc::default(),
            configs: AssignmentConfigs::default(),
            probing_interval_ms: 600_000,
            task_timeout_ms: 300_000,
            clock: clock.clone(),
        };
        let mut consumer =
            MemberConsumer::new(Box::new(member), Box::new(fetcher), Arc::new(Callbacks(Arc::clone(&log))), context);
        consumer.subscribe(&["a".to_string()]).unwrap();
        assert_eq!(log.take(), ["join owning []"]);
        Setup { consumer, events, records, log, unstable, clock }
    }

    fn assigned(generation: i32, partitions: &[i32]) -> GroupEvent {
        let partitions = partitions.iter().map(|&p| TopicPartition::new("a", p)).collect();
        let info = AssignmentInfo::default();
        GroupEvent::Assigned { generation, assignment: Assignment { partitions, user_data: info.encode() } }
    }

    fn poll(setup: &mut Setup) -> Vec<RawRecord> {
        let mut out = Vec::new();
        setup.consumer.poll_batch(Duration::ZERO, 100, &mut out).unwrap();
        out
    }

    #[test]
    fn an_assignment_gives_up_what_moved_committing_first_then_takes_what_is_new_and_the_giver_rejoins() {
        let mut s = setup();
        assert!(s.consumer.rebalance_in_progress(), "joining: no commit");
        s.events.lock().unwrap().push_back(assigned(1, &[0, 1]));
        poll(&mut s);
        assert_eq!(s.log.take(), ["assigned [a-0,a-1]", "fetch [a-0,a-1]"]);
        assert!(!s.consumer.rebalance_in_progress());

        s.events.lock().unwrap().push_back(assigned(2, &[1, 2]));
        poll(&mut s);
        assert_eq!(
            s.log.take(),
            ["commit 1", "revoked [a-0]", "stop [a-0]", "assigned [a-2]", "fetch [a-2]", "join owning [a-1,a-2]"],
            "KIP-429: the giver joins again at once with what it kept"
        );
        assert!(s.consumer.rebalance_in_progress());
    }

    #[test]
    fn partitions_whose_committed_offsets_are_not_stable_yet_are_taken_at_a_later_poll() {
        let mut s = setup();
        *s.unstable.lock().unwrap() = 2;
        s.events.lock().unwrap().push_back(assigned(1, &[0, 1]));
        poll(&mut s);
        assert!(s.log.take().is_empty(), "nothing opened while a transaction still commits their offsets");
        assert!(!s.consumer.rebalance_in_progress(), "the group is not waited for: commits go on");
        poll(&mut s);
        assert_eq!(s.log.take(), ["assigned [a-0,a-1]", "fetch [a-0,a-1]"]);
    }

    #[test]
    fn partitions_that_wait_for_their_committed_offsets_past_task_timeout_fail_the_thread() {
        let mut s = setup();
        *s.unstable.lock().unwrap() = u32::MAX;
        s.events.lock().unwrap().push_back(assigned(1, &[0]));
        poll(&mut s);
        s.clock.advance(299_999);
        poll(&mut s);
        assert!(s.log.take().is_empty());
        s.clock.advance(1);
        let e = s.consumer.poll_batch(Duration::ZERO, 100, &mut Vec::new()).unwrap_err();
        assert_eq!(e.kind, ClientErrorKind::Fatal);
        assert!(e.to_string().contains("of a-0 could not be read for 300000 ms"), "{e}");
        assert!(e.to_string().contains("past task.timeout.ms (300000 ms)"), "{e}");
    }

    #[test]
    fn a_rebalance_heard_while_joining_is_joined_again() {
        let mut s = setup();
        s.events.lock().unwrap().extend([GroupEvent::RejoinNeeded]);
        poll(&mut s);
        assert_eq!(s.log.take(), ["join owning []"], "the member only passes on what is about the last join");
    }

    #[test]
    fn records_of_partitions_lost_during_the_poll_are_dropped() {
        let mut s = setup();
        s.events.lock().unwrap().push_back(assigned(1, &[0, 1]));
        poll(&mut s);
        s.log.take();
        let record = |p| RawRecord {
            topic: "a".into(),
            partition: p,
            offset: 5,
            timestamp: 0,
            key: None,
            value: None,
            headers: Default::default(),
        };
        s.records.lock().unwrap().extend([record(0), record(1)]);
        // The group says, while the records were fetched, that the member is out.
        s.events.lock().unwrap().extend([GroupEvent::Idle, GroupEvent::Lost { reason: "test".into() }]);
        let out = poll(&mut s);
        assert!(out.is_empty(), "their tasks are closed: {out:?}");
        assert_eq!(s.log.take(), ["lost [a-0,a-1]", "stop [a-0,a-1]", "join owning []"]);
    }

    #[test]
    fn a_rejoin_after_a_recovery_gives_everything_up_first() {
        let mut s = setup();
        s.events.lock().unwrap().push_back(assigned(1, &[0, 3]));
        poll(&mut s);
        s.log.take();
        s.consumer.rejoin().unwrap();
        poll(&mut s);
        assert_eq!(s.log.take(), ["commit 1", "revoked [a-0,a-3]", "stop [a-0,a-3]", "join owning []"]);
    }

    #[test]
    fn an_assignment_naming_a_topic_the_thread_does_not_read_takes_nothing() {
        let mut s = setup();
        s.events.lock().unwrap().push_back(assigned(1, &[0]));
        poll(&mut s);
        s.log.take();
        let partitions = vec![TopicPartition::new("a", 1), TopicPartition::new("new-topic", 0)];
        let assignment = Assignment { partitions, user_data: AssignmentInfo::default().encode() };
        s.events.lock().unwrap().push_back(GroupEvent::Assigned { generation: 2, assignment });
        poll(&mut s);
        assert_eq!(
            s.log.take(),
            ["commit 1", "revoked [a-0]", "stop [a-0]", "assigned []"],
            "a-1 waits for the layout"
        );
    }
}
