//! The group leader's assignment, from every member's subscription to every member's part (Kafka
//! Streams' `StreamsPartitionAssignor.assign`): members grouped into instances by process id, the task
//! assignor run over the instances (`assignor`), each instance's tasks spread over its stream threads,
//! and the cooperative protocol's rule (KIP-429) kept: a task whose partitions another member still owns
//! is left out of its new owner's part until that member has given it up; a follow-up rebalance is asked
//! for at once to hand it over, and in the meantime its new owner keeps a standby of it if it had one.
//!
//! Pure: the thread of the leader gives it what it knows (the topology's tasks and their partitions, the
//! changelogs' end offsets, the settings) and sends back what it returns.

use std::collections::{BTreeMap, BTreeSet};

use super::assignment_info::{AssignmentInfo, SubscriptionInfo};
use super::assignor::{self, AssignmentConfigs, ClientState, ProcessId};
use crate::client::{Assignment, JoinedMember, TopicPartition};
use crate::task_id::TaskId;

/// What the leader knows besides the members.
pub(crate) struct GroupTopology<'a> {
    /// Every task with its source partitions.
    pub(crate) tasks: &'a BTreeMap<TaskId, Vec<TopicPartition>>,
    /// The tasks with state (changelogs): their lags decide where they go.
    pub(crate) stateful: &'a BTreeSet<TaskId>,
    /// Per stateful task, the sum of its changelogs' end offsets.
    pub(crate) end_offset_sums: &'a BTreeMap<TaskId, i64>,
}

/// The leader's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupAssignment {
    /// Every member's part, its `AssignmentInfo` encoded.
    pub(crate) assignments: Vec<(String, Assignment)>,
    /// Tasks held back until their owner gives them up: the group rebalances again at once.
    pub(crate) followup: bool,
    /// Warm-ups are out: the group rebalances again after `probing.rebalance.interval.ms`.
    pub(crate) probing: bool,
    /// Members whose subscription could not be read, with why: they get no task.
    pub(crate) unreadable: Vec<(String, String)>,
}

/// One instance's members, as their subscriptions tell.
#[derive(Default)]
struct Instance {
    /// Member ids, sorted (Kafka Streams' `SortedSet<String> consumers`).
    members: Vec<String>,
    offset_sums: BTreeMap<TaskId, i64>,
    /// Per member, the stateful tasks it had (its subscription's offset sums).
    previous: BTreeMap<String, BTreeSet<TaskId>>,
    /// The member that runs each task it reports as running (`LATEST_OFFSET`).
    running: BTreeMap<TaskId, String>,
    endpoint: Option<String>,
    tags: BTreeMap<String, String>,
}

/// Assigns the group: `members` as the JoinGroup answer lists them, `now_ms` the leader's clock,
/// `probing_interval_ms` Kafka Streams' `probing.rebalance.interval.ms`.
pub(crate) fn assign_group(
    members: &[JoinedMember],
    topology: &GroupTopology<'_>,
    configs: &AssignmentConfigs,
    now_ms: i64,
    probing_interval_ms: i64,
) -> GroupAssignment {
    let mut instances: BTreeMap<ProcessId, Instance> = BTreeMap::new();
    let mut unreadable = Vec::new();
    let mut owner: BTreeMap<&TopicPartition, &str> = BTreeMap::new();
    for member in members {
        // What a member owns is held back from others even when the rest of its subscription cannot
        // be read: it gives it up only at its own assignment.
        for tp in &member.subscription.owned_partitions {
            owner.insert(tp, &member.member_id);
        }
        let info = match SubscriptionInfo::decode(&member.subscription.user_data) {
            Ok(info) => info,
            Err(e) => {
                unreadable.push((member.member_id.clone(), e.to_string()));
                continue;
            }
        };
        let instance = instances.entry(info.process_id).or_default();
        instance.members.push(member.member_id.clone());
        let had: BTreeSet<TaskId> =
            info.task_offset_sums.keys().copied().filter(|t| topology.stateful.contains(t)).collect();
        instance.previous.insert(member.member_id.clone(), had);
        for (&task, &sum) in &info.task_offset_sums {
            if sum == assignor::LATEST_OFFSET {
                instance.running.insert(task, member.member_id.clone());
            }
        }
        // Threads of one instance share its state directory: a task one of them runs is caught up; else
        // the largest sum any reports is the instance's state.
        for (task, sum) in info.task_offset_sums {
            let merged = match (instance.offset_sums.get(&task).copied(), sum) {
                (Some(assignor::LATEST_OFFSET), _) | (_, assignor::LATEST_OFFSET) => assignor::LATEST_OFFSET,
                (Some(old), new) => old.max(new),
                (None, new) => new,
            };
            instance.offset_sums.insert(task, merged);
        }
        instance.endpoint = instance.endpoint.take().or(info.endpoint);
        if instance.tags.is_empty() {
            instance.tags = info.client_tags;
        }
    }
    for instance in instances.values_mut() {
        instance.members.sort();
        // A task one thread runs is that thread's to keep, not another's that has (or had) its files: two
        // threads claiming one task would take it from each other at every rebalance.
        let running = &instance.running;
        for (member, had) in &mut instance.previous {
            had.retain(|task| running.get(task).is_none_or(|runner| runner == member));
        }
    }

    let all_tasks: BTreeSet<TaskId> = topology.tasks.keys().copied().collect();
    let mut clients: BTreeMap<ProcessId, ClientState> = instances
        .iter()
        .map(|(&id, i)| {
            let capacity = u32::try_from(i.members.len()).unwrap_or(u32::MAX);
            let state = ClientState::new(capacity, &i.offset_sums, topology.end_offset_sums).with_tags(i.tags.clone());
            (id, state)
        })
        .collect();
    let outcome = assignor::assign(&mut clients, &all_tasks, topology.stateful, configs);

    // Every instance's endpoint with its tasks, for interactive queries.
    let endpoints: BTreeMap<String, (Vec<TaskId>, Vec<TaskId>)> = instances
        .iter()
        .filter_map(|(id, i)| {
            let state = &clients[id];
            let endpoint = i.endpoint.clone()?;
            Some((endpoint, (state.active.iter().copied().collect(), state.standby.iter().copied().collect())))
        })
        .collect();

    let mut assignments = Vec::with_capacity(members.len());
    let mut followup = false;
    for (id, instance) in &instances {
        let state = &clients[id];
        let previous: BTreeMap<String, Vec<TaskId>> =
            instance.previous.iter().map(|(member, tasks)| (member.clone(), state.by_lag(tasks))).collect();
        let stateful_active: BTreeSet<TaskId> = state.active.intersection(topology.stateful).copied().collect();
        let stateless_active: BTreeSet<TaskId> = state.active.difference(topology.stateful).copied().collect();
        let mut load = BTreeMap::new();
        let threads = &instance.members;
        let mut active = assignor::assign_tasks_to_threads(&stateful_active, true, threads, &previous, &mut load);
        let standby = assignor::assign_tasks_to_threads(&state.standby, true, threads, &previous, &mut load);
        for (member, tasks) in
            assignor::assign_tasks_to_threads(&stateless_active, false, threads, &previous, &mut load)
        {
            active.entry(member).or_default().extend(tasks);
        }
        let probing_here = outcome.warmups.contains_key(id) && outcome.probing_rebalance_needed;
        let mut probing_encoded = false;
        for member in threads {
            let mut part = Assignment::default();
            let mut info = AssignmentInfo { endpoints: endpoints.clone(), ..AssignmentInfo::default() };
            let mut held_back = BTreeSet::new();
            let mut tasks: Vec<TaskId> = active.get(member).cloned().unwrap_or_default();
            tasks.sort();
            for task in tasks {
                let partitions = topology.tasks.get(&task).map(Vec::as_slice).unwrap_or_default();
                // Still another member's: that member gives it up first (cooperative rebalancing).
                if partitions.iter().any(|tp| owner.get(tp).is_some_and(|o| *o != member.as_str())) {
                    held_back.insert(task);
                    continue;
                }
                info.active.push(task);
                part.partitions.extend(partitions.iter().cloned());
            }
            info.standby = standby.get(member).cloned().unwrap_or_default();
            // A held-back stateful task this member kept a copy of stays a standby here meanwhile, so
            // its state is not dropped (Kafka Streams' `buildStandbyTaskMap`).
            let had = instance.previous.get(member);
            for task in &held_back {
                if topology.stateful.contains(task)
                    && had.is_some_and(|h| h.contains(task))
                    && !info.standby.contains(task)
                {
                    info.standby.push(*task);
                }
            }
            info.standby.sort();
            if !held_back.is_empty() {
                followup = true;
                info.next_rebalance_ms = Some(0);
            } else if probing_here && !probing_encoded {
                // One member of the instance schedules the probing rebalance.
                info.next_rebalance_ms = Some(now_ms.saturating_add(probing_interval_ms));
                probing_encoded = true;
            }
            part.user_data = info.encode();
            assignments.push((member.clone(), part));
        }
    }
    // A member whose subscription could not be read gets an empty part (giving up what it owned, which
    // its new owners get at the follow-up): the group goes on without it.
    for (member, _) in &unreadable {
        let info = AssignmentInfo { next_rebalance_ms: followup.then_some(0), ..AssignmentInfo::default() };
        assignments.push((member.clone(), Assignment { partitions: Vec::new(), user_data: info.encode() }));
    }
    GroupAssignment { assignments, followup, probing: outcome.probing_rebalance_needed, unreadable }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Subscription;

    fn task(sub: u32, partition: i32) -> TaskId {
        TaskId { subtopology: sub, partition }
    }

    /// Two sub-topologies of 4 partitions each (topics `a` and `b`); sub-topology 1 is stateful.
    fn topology() -> (BTreeMap<TaskId, Vec<TopicPartition>>, BTreeSet<TaskId>, BTreeMap<TaskId, i64>) {
        let mut tasks = BTreeMap::new();
        for p in 0..4 {
            tasks.insert(task(0, p), vec![TopicPartition::new("a", p)]);
            tasks.insert(task(1, p), vec![TopicPartition::new("b", p)]);
        }
        let stateful: BTreeSet<TaskId> = (0..4).map(|p| task(1, p)).collect();
        let ends = stateful.iter().map(|&t| (t, 1_000)).collect();
        (tasks, stateful, ends)
    }

    fn member(id: &str, process: u128, sums: &[(TaskId, i64)], owned: &[TopicPartition]) -> JoinedMember {
        let info = SubscriptionInfo {
            process_id: ProcessId(process),
            endpoint: Some(format!("host-{process}:8080")),
            task_offset_sums: sums.iter().copied().collect(),
            ..SubscriptionInfo::default()
        };
        JoinedMember {
            member_id: id.into(),
            group_instance_id: None,
            subscription: Subscription {
                topics: vec!["a".into(), "b".into()],
                user_data: info.encode(),
                owned_partitions: owned.to_vec(),
            },
        }
    }

    fn parts(result: &GroupAssignment) -> BTreeMap<String, (Vec<TopicPartition>, AssignmentInfo)> {
        result
            .assignments
            .iter()
            .map(|(m, a)| (m.clone(), (a.partitions.clone(), AssignmentInfo::decode(&a.user_data).unwrap())))
            .collect()
    }

    fn configs() -> AssignmentConfigs {
        AssignmentConfigs { acceptable_recovery_lag: 10_000, max_warmup_replicas: 2, ..AssignmentConfigs::default() }
    }

    /// Found by the simulation: one thread reports the task directories no thread holds, among them one
    /// whose task the other thread was just given. Were both threads to count it as theirs, the one
    /// that reports files would be given it back at once, and the two would pass it to and fro forever.
    #[test]
    fn a_task_stays_with_the_thread_that_runs_it_when_another_has_its_files() {
        let (tasks, stateful, ends) = topology();
        let topology = GroupTopology { tasks: &tasks, stateful: &stateful, end_offset_sums: &ends };
        let latest = assignor::LATEST_OFFSET;
        // One instance, two threads: m2 runs 1_0 and 1_2; m1 runs 1_1 and has the files of 1_0 and 1_3.
        let owned = |ps: &[i32]| ps.iter().map(|&p| TopicPartition::new("b", p)).collect::<Vec<_>>();
        let members = [
            member("m1", 1, &[(task(1, 1), latest), (task(1, 0), 900), (task(1, 3), 900)], &owned(&[1])),
            member("m2", 1, &[(task(1, 0), latest), (task(1, 2), latest)], &owned(&[0, 2])),
        ];
        let result = assign_group(&members, &topology, &configs(), 0, 600_000);
        let parts = parts(&result);
        assert!(parts["m2"].1.active.contains(&task(1, 0)), "m2 keeps the task it runs: {parts:?}");
        assert!(!result.followup, "nothing held back, no follow-up: {parts:?}");
    }

    #[test]
    fn every_task_goes_to_one_thread_of_one_instance_with_its_partitions() {
        let (tasks, stateful, ends) = topology();
        let topology = GroupTopology { tasks: &tasks, stateful: &stateful, end_offset_sums: &ends };
        let members = [member("m1", 1, &[], &[]), member("m2", 1, &[], &[]), member("m3", 2, &[], &[])];
        let result = assign_group(&members, &topology, &configs(), 0, 600_000);
        assert!(!result.followup && result.unreadable.is_empty());
        let infos = parts(&result);
        let mut seen = BTreeSet::new();
        for (partitions, info) in infos.values() {
            let expected: Vec<TopicPartition> = info.active.iter().flat_map(|t| tasks[t].clone()).collect();
            assert_eq!(partitions, &expected);
            for t in &info.active {
                assert!(seen.insert(*t), "{t} twice");
            }
            assert_eq!(info.endpoints.len(), 2);
        }
        assert_eq!(seen.len(), 8);
        // Two instances, 3 threads: 8 tasks spread 3/3/2 over the threads (the instance of two threads
        // takes its share by capacity).
        let mut counts: Vec<usize> = infos.values().map(|(_, i)| i.active.len()).collect();
        counts.sort();
        assert_eq!(counts, [2, 3, 3]);
    }

    #[test]
    fn a_stateful_task_stays_with_the_thread_whose_state_is_caught_up() {
        let (tasks, stateful, ends) = topology();
        let topology = GroupTopology { tasks: &tasks, stateful: &stateful, end_offset_sums: &ends };
        // m2 runs task 1_3 now; m1 has nothing.
        let members = [
            member("m1", 1, &[], &[]),
            member("m2", 2, &[(task(1, 3), assignor::LATEST_OFFSET)], &[TopicPartition::new("b", 3)]),
        ];
        let infos = parts(&assign_group(&members, &topology, &configs(), 0, 600_000));
        assert!(infos["m2"].1.active.contains(&task(1, 3)), "{infos:?}");
    }

    #[test]
    fn a_task_still_owned_by_another_member_waits_for_a_followup_rebalance() {
        let (tasks, stateful, ends) = topology();
        let topology = GroupTopology { tasks: &tasks, stateful: &stateful, end_offset_sums: &ends };
        // m1 owned everything; m2 is new, with a copy of 1_0 (a standby it kept).
        let all: Vec<TopicPartition> = tasks.values().flatten().cloned().collect();
        let every_task: Vec<(TaskId, i64)> = stateful.iter().map(|&t| (t, assignor::LATEST_OFFSET)).collect();
        let members = [member("m1", 1, &every_task, &all), member("m2", 2, &[(task(1, 0), 990)], &[])];
        let result = assign_group(&members, &topology, &configs(), 0, 600_000);
        assert!(result.followup);
        let infos = parts(&result);
        let (m2_partitions, m2) = &infos["m2"];
        assert!(m2.active.is_empty() && m2_partitions.is_empty(), "nothing until m1 gives it up: {m2:?}");
        assert_eq!(m2.next_rebalance_ms, Some(0), "rebalance again at once");
        let (_, m1) = &infos["m1"];
        assert!(m1.active.len() < 8, "m1 gives some up: {m1:?}");
        let moving: BTreeSet<TaskId> = tasks.keys().copied().filter(|t| !m1.active.contains(t)).collect();
        if moving.contains(&task(1, 0)) {
            assert!(m2.standby.contains(&task(1, 0)), "the copy m2 had is kept as a standby meanwhile: {m2:?}");
        }
        // The follow-up: m1 owns only what it kept.
        let kept: Vec<TopicPartition> = m1.active.iter().flat_map(|t| tasks[t].clone()).collect();
        let members = [member("m1", 1, &every_task, &kept), member("m2", 2, &[(task(1, 0), 990)], &[])];
        let result = assign_group(&members, &topology, &configs(), 0, 600_000);
        assert!(!result.followup, "{result:?}");
        let after = parts(&result);
        let mut all_active: Vec<TaskId> = after.values().flat_map(|(_, i)| i.active.clone()).collect();
        all_active.sort();
        assert_eq!(all_active, tasks.keys().copied().collect::<Vec<_>>());
    }

    #[test]
    fn threads_of_one_instance_pool_their_state() {
        let (tasks, stateful, ends) = topology();
        let topology = GroupTopology { tasks: &tasks, stateful: &stateful, end_offset_sums: &ends };
        // Instance 1's second thread runs 1_2 (caught up) while its first reports an older copy of it;
        // instance 2 has a fresher copy than that older one, but not caught up: instance 1 keeps it.
        let members = [
            member("i1-t1", 1, &[(task(1, 2), 100)], &[]),
            member("i1-t2", 1, &[(task(1, 2), assignor::LATEST_OFFSET)], &[TopicPartition::new("b", 2)]),
            member("i2-t1", 2, &[(task(1, 2), 900)], &[]),
        ];
        let strict = AssignmentConfigs { acceptable_recovery_lag: 0, ..configs() };
        let infos = parts(&assign_group(&members, &topology, &strict, 0, 600_000));
        let (instance_1_active, _) = &infos["i2-t1"].1.endpoints["host-1:8080"];
        assert!(instance_1_active.contains(&task(1, 2)), "the caught-up instance keeps it: {infos:?}");
    }

    #[test]
    fn an_unreadable_subscription_gets_nothing_and_the_group_goes_on() {
        let (tasks, stateful, ends) = topology();
        let topology = GroupTopology { tasks: &tasks, stateful: &stateful, end_offset_sums: &ends };
        let mut bad = member("bad", 9, &[], &[]);
        bad.subscription.user_data = vec![0xff; 3];
        let members = [member("m1", 1, &[], &[]), bad];
        let result = assign_group(&members, &topology, &configs(), 0, 600_000);
        assert_eq!(result.unreadable.len(), 1);
        let infos = parts(&result);
        assert!(infos["bad"].1.active.is_empty());
        assert_eq!(infos["m1"].1.active.len(), 8);

        // One that owns a partition: its task waits for it to give it up.
        let mut bad = member("bad", 9, &[], &[TopicPartition::new("a", 0)]);
        bad.subscription.user_data = vec![0xff; 3];
        let members = [member("m1", 1, &[], &[]), bad];
        let result = assign_group(&members, &topology, &configs(), 0, 600_000);
        assert!(result.followup);
        let infos = parts(&result);
        assert_eq!(infos["m1"].1.active.len(), 7);
        assert!(!infos["m1"].1.active.contains(&task(0, 0)));
        assert_eq!(infos["bad"].1.next_rebalance_ms, Some(0));
    }
}
