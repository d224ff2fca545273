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
use crate::client::{
    ClientError, ClientErrorKind, CommittedOffsets, GroupEvent, GroupMember, GroupMetadata, JoinedMember,
    OffsetAndMetadata, OffsetCommitter, RebalanceListener, RestoreConsumer, StreamsConsumer, Subscription,
    TopicPartition,
};
use crate::record::RawRecord;
use crate::sync::LockUnpoisoned;
use crate::task_id::TaskId;
use crate::time::Clock;

/// What the member says about its instance, and what it needs when it leads.
pub(crate) struct MemberContext {
    pub(crate) process_id: ProcessId,
    /// `application.server`.
    pub(crate) endpoint: Option<String>,
    pub(crate) client_tags: BTreeMap<String, String>,
    /// The thread's tasks' offset sums now (`assignor::LATEST_OFFSET` for those it runs).
    pub(crate) offset_sums: Box<dyn Fn() -> BTreeMap<TaskId, i64> + Send>,
    pub(crate) layouts: Arc<Layouts>,
    /// For the changelogs' end offsets, when this member leads.
    pub(crate) ends: Box<dyn RestoreConsumer>,
    pub(crate) configs: AssignmentConfigs,
    /// `probing.rebalance.interval.ms`.
    pub(crate) probing_interval_ms: i64,
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
}

impl MemberConsumer {
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
                    let info = AssignmentInfo::decode(&assignment.user_data).map_err(|e| {
                        let message = format!("the assignment of generation {generation} cannot be read: {e}");
                        ClientError::new("assignment", message, ClientErrorKind::Fatal)
                    })?;
                    let revoked = self.take(assignment.partitions.into_iter().collect())?;
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
                GroupEvent::RejoinNeeded => {
                    if !self.joining {
                        self.join()?;
                    }
                }
                GroupEvent::Lost { reason } => {
                    tracing::warn!(target: "kstreams::runtime::thread", reason, "out of the group; its partitions are lost");
                    let lost: Vec<TopicPartition> = std::mem::take(&mut self.owned).into_iter().collect();
                    if !lost.is_empty() {
                        self.listener.on_partitions_lost(&lost);
                        self.consumer.unassign(&lost)?;
                    }
                    (self.joining, self.syncing) = (false, false);
                    self.join()?;
                }
            }
        }
    }

    /// Moves to `assigned`: gives up what moved away, then opens what is new, from the group's
    /// committed offsets. Whether it gave something up.
    fn take(&mut self, assigned: BTreeSet<TopicPartition>) -> Result<bool, ClientError> {
        let revoked: Vec<TopicPartition> = self.owned.difference(&assigned).cloned().collect();
        let gave_up = !revoked.is_empty();
        self.revoke(revoked)?;
        let added: Vec<TopicPartition> = assigned.difference(&self.owned).cloned().collect();
        if added.is_empty() {
            // Called with nothing new too: the assignment is what brings the instance back to RUNNING.
            self.listener.on_partitions_assigned(&[], &CommittedOffsets::new());
            return Ok(gave_up);
        }
        let committed = self.member.lock_unpoisoned().committed(&added)?;
        self.listener.on_partitions_assigned(&added, &committed);
        let from: Vec<(TopicPartition, Option<i64>)> =
            added.iter().map(|tp| (tp.clone(), committed.get(tp).map(|c| c.offset))).collect();
        self.consumer.assign(&from)?;
        self.owned.extend(added);
        Ok(gave_up)
    }

    /// The leader's assignment of the group.
    fn lead(&mut self, members: &[JoinedMember]) -> Vec<(String, crate::client::Assignment)> {
        let (_, layout) = self.context.layouts.current();
        let tasks = layout.tasks();
        let changelogs = layout.changelog_partitions();
        let stateful: BTreeSet<TaskId> = changelogs.keys().copied().collect();
        let mut end_offset_sums = BTreeMap::new();
        for (task, partitions) in &changelogs {
            let mut sum = 0i64;
            for tp in partitions {
                match self.context.ends.watermarks(tp) {
                    Ok((_, high)) => sum = sum.saturating_add(high.max(0)),
                    Err(e) => {
                        // Unknown ends count as empty changelogs: the task goes by balance alone.
                        tracing::warn!(target: "kstreams::runtime::thread", partition = %tp, error = %e, "no end offset for the assignment");
                    }
                }
            }
            end_offset_sums.insert(*task, sum);
        }
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
        self.join()
    }

    fn poll_batch(&mut self, timeout: Duration, max: usize, out: &mut Vec<RawRecord>) -> Result<(), ClientError> {
        self.follow_group()?;
        self.consumer.poll_batch(timeout, max, out)?;
        // What the group did meanwhile is acted on at once (a revocation before records of it are
        // processed is not needed: they were fetched while the partition was this member's).
        self.follow_group()
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
