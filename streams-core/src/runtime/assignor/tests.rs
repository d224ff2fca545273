use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn task(subtopology: u32, partition: i32) -> TaskId {
    TaskId { subtopology, partition }
}

fn tasks(n: i32) -> BTreeSet<TaskId> {
    (0..n).map(|p| task(0, p)).collect()
}

const END: i64 = 1_000;

fn ends(stateful: &BTreeSet<TaskId>) -> BTreeMap<TaskId, i64> {
    stateful.iter().map(|&t| (t, END)).collect()
}

/// An instance with `capacity` threads whose state of each task in `sums` is at that offset sum.
fn client(capacity: u32, sums: &[(TaskId, i64)], stateful: &BTreeSet<TaskId>) -> ClientState {
    ClientState::new(capacity, &sums.iter().copied().collect(), &ends(stateful))
}

fn configs(acceptable_recovery_lag: i64, max_warmup_replicas: i64, num_standby_replicas: usize) -> AssignmentConfigs {
    AssignmentConfigs { acceptable_recovery_lag, max_warmup_replicas, num_standby_replicas, ..Default::default() }
}

fn ids(set: &BTreeSet<TaskId>) -> Vec<i32> {
    set.iter().map(|t| t.partition).collect()
}

#[test]
fn lags_follow_kafka_streams_rules() {
    let stateful = tasks(4);
    let c = client(1, &[(task(0, 0), LATEST_OFFSET), (task(0, 1), 900), (task(0, 2), 5_000)], &stateful);
    assert_eq!(c.lag_for(task(0, 0)), LATEST_OFFSET, "running: caught up");
    assert_eq!(c.lag_for(task(0, 1)), 100);
    assert_eq!(c.lag_for(task(0, 2)), END, "past the end: as far behind as no state");
    assert_eq!(c.lag_for(task(0, 3)), END, "no state");
    assert_eq!(c.lag_for(task(1, 0)), LATEST_OFFSET, "stateless");
}

#[test]
fn caught_up_instances_share_stateful_tasks_evenly_without_probing() {
    let stateful = tasks(6);
    let caught_up: Vec<(TaskId, i64)> = stateful.iter().map(|&t| (t, END)).collect();
    let mut clients: BTreeMap<ProcessId, ClientState> =
        (1..=3).map(|id| (ProcessId(id), client(1, &caught_up, &stateful))).collect();
    let outcome = assign(&mut clients, &stateful, &stateful, &configs(10_000, 2, 0));
    assert!(!outcome.probing_rebalance_needed);
    for c in clients.values() {
        assert_eq!(c.active.len(), 2, "{clients:?}");
        assert!(c.standby.is_empty());
    }
}

#[test]
fn a_new_instance_warms_up_while_the_tasks_stay_with_their_state() {
    let stateful = tasks(4);
    let running: Vec<(TaskId, i64)> = stateful.iter().map(|&t| (t, LATEST_OFFSET)).collect();
    let mut clients =
        BTreeMap::from([(ProcessId(1), client(1, &running, &stateful)), (ProcessId(2), client(1, &[], &stateful))]);
    let outcome = assign(&mut clients, &stateful, &stateful, &configs(100, 1, 0));
    let (old, new) = (&clients[&ProcessId(1)], &clients[&ProcessId(2)]);
    assert_eq!(ids(&old.active), vec![0, 1, 2, 3], "no task moves to an instance without its state");
    assert_eq!(new.active.len(), 0);
    assert_eq!(new.standby.len(), 1, "max.warmup.replicas = 1");
    assert_eq!(outcome.warmups[&ProcessId(2)], new.standby);
    assert!(outcome.probing_rebalance_needed, "the warm-up is to be taken over later");
}

#[test]
fn an_instance_within_the_acceptable_lag_takes_its_share_at_once() {
    let stateful = tasks(4);
    let running: Vec<(TaskId, i64)> = stateful.iter().map(|&t| (t, LATEST_OFFSET)).collect();
    let close: Vec<(TaskId, i64)> = stateful.iter().map(|&t| (t, END - 50)).collect();
    let mut clients =
        BTreeMap::from([(ProcessId(1), client(1, &running, &stateful)), (ProcessId(2), client(1, &close, &stateful))]);
    let outcome = assign(&mut clients, &stateful, &stateful, &configs(100, 2, 0));
    assert!(!outcome.probing_rebalance_needed);
    assert_eq!(clients[&ProcessId(1)].active.len(), 2);
    assert_eq!(clients[&ProcessId(2)].active.len(), 2);
}

#[test]
fn standbys_go_to_other_instances_and_take_over_when_one_leaves() {
    let stateful = tasks(4);
    let mut clients = BTreeMap::from([
        (ProcessId(1), client(1, &[], &stateful)),
        (ProcessId(2), client(1, &[], &stateful)),
        (ProcessId(3), client(1, &[], &stateful)),
    ]);
    assign(&mut clients, &stateful, &stateful, &configs(i64::MAX, 2, 1));
    for t in &stateful {
        let actives = clients.values().filter(|c| c.active.contains(t)).count();
        let standbys = clients.values().filter(|c| c.standby.contains(t)).count();
        assert_eq!((actives, standbys), (1, 1), "task {t}: {clients:?}");
    }
    // Instance 1 goes; 2 and 3 report their running actives and caught-up standbys.
    let sums = |c: &ClientState| -> Vec<(TaskId, i64)> {
        c.active.iter().map(|&t| (t, LATEST_OFFSET)).chain(c.standby.iter().map(|&t| (t, END))).collect()
    };
    let mut after = BTreeMap::from([
        (ProcessId(2), client(1, &sums(&clients[&ProcessId(2)]), &stateful)),
        (ProcessId(3), client(1, &sums(&clients[&ProcessId(3)]), &stateful)),
    ]);
    let lags: BTreeMap<ProcessId, ClientState> = after.clone();
    let outcome = assign(&mut after, &stateful, &stateful, &configs(0, 2, 1));
    for (id, c) in &after {
        for &t in &c.active {
            let lag = lags[id].lag_for(t);
            assert!(lag == 0 || lag == LATEST_OFFSET, "task {t} runs where its state is: {after:?}");
        }
    }
    assert_eq!(after[&ProcessId(2)].active.len(), 2);
    // As Kafka Streams (checked with its assignor): the round-robin first put two tasks where their
    // state is not, and taking them back counts as movements, so a probing rebalance follows.
    assert!(outcome.probing_rebalance_needed);
    for t in &stateful {
        let standbys = after.values().filter(|c| c.standby.contains(t)).count();
        assert_eq!(standbys, 1, "task {t} keeps one standby on the other instance: {after:?}");
    }
}

#[test]
fn a_caught_up_standby_swaps_with_a_balanced_owner_that_is_behind() {
    let stateful = tasks(2);
    // Instance 1 ran both; instance 2 holds a caught-up standby of task 0_1 and nothing of 0_0.
    let mut clients = BTreeMap::from([
        (ProcessId(1), client(1, &[(task(0, 0), LATEST_OFFSET), (task(0, 1), LATEST_OFFSET)], &stateful)),
        (ProcessId(2), client(1, &[(task(0, 1), END)], &stateful)),
    ]);
    let outcome = assign(&mut clients, &stateful, &stateful, &configs(0, 2, 1));
    assert_eq!(ids(&clients[&ProcessId(2)].active), vec![1], "{clients:?}");
    assert_eq!(ids(&clients[&ProcessId(1)].active), vec![0]);
    assert!(!outcome.probing_rebalance_needed);
}

#[test]
fn stateless_tasks_follow_active_load_per_thread() {
    let all: BTreeSet<TaskId> = (0..8).map(|p| task(1, p)).collect();
    let none = BTreeSet::new();
    let mut clients = BTreeMap::from([(ProcessId(1), client(1, &[], &none)), (ProcessId(2), client(3, &[], &none))]);
    let outcome = assign(&mut clients, &all, &none, &configs(0, 2, 1));
    assert!(!outcome.probing_rebalance_needed);
    assert_eq!(clients[&ProcessId(1)].active.len(), 2);
    assert_eq!(clients[&ProcessId(2)].active.len(), 6);
    assert!(clients.values().all(|c| c.standby.is_empty()), "no standby of a stateless task");
}

#[test]
fn one_instance_gets_everything_and_no_standby() {
    let stateful = tasks(3);
    let mut all = stateful.clone();
    all.insert(task(1, 0));
    let mut clients = BTreeMap::from([(ProcessId(7), client(2, &[], &stateful))]);
    let outcome = assign(&mut clients, &all, &stateful, &configs(0, 2, 2));
    assert_eq!(clients[&ProcessId(7)].active.len(), 4);
    assert!(clients[&ProcessId(7)].standby.is_empty());
    assert!(!outcome.probing_rebalance_needed);
    assert_eq!(assign(&mut BTreeMap::new(), &all, &stateful, &configs(0, 2, 2)), AssignmentOutcome::default());
}

proptest! {
    /// Whatever the group: every task active exactly once, no instance holds a task twice, at most
    /// `num.standby.replicas` standbys plus warm-ups, warm-ups bounded, and the same input gives the
    /// same assignment.
    #[test]
    fn every_task_is_active_once_and_the_assignment_is_deterministic(
        capacities in prop::collection::vec(1u32..4, 1..6),
        stateful_count in 0i32..12,
        stateless_count in 0i32..6,
        sums in prop::collection::vec(prop::option::of(-3i64..1_200), 0..80),
        acceptable in prop_oneof![Just(0i64), Just(100), Just(i64::MAX)],
        max_warmups in 0i64..4,
        standbys in 0usize..3,
    ) {
        let stateful: BTreeSet<TaskId> = (0..stateful_count).map(|p| task(0, p)).collect();
        let mut all = stateful.clone();
        all.extend((0..stateless_count).map(|p| task(1, p)));
        let mut sum = sums.into_iter().cycle();
        let mut clients: BTreeMap<ProcessId, ClientState> = BTreeMap::new();
        for (i, &capacity) in capacities.iter().enumerate() {
            let reported: Vec<(TaskId, i64)> =
                stateful.iter().filter_map(|&t| sum.next().flatten().map(|s| (t, s))).collect();
            clients.insert(ProcessId(i as u128 * 7_919), client(capacity, &reported, &stateful));
        }
        let input = clients.clone();
        let config = configs(acceptable, max_warmups, standbys);
        let outcome = assign(&mut clients, &all, &stateful, &config);
        for t in &all {
            prop_assert_eq!(clients.values().filter(|c| c.active.contains(t)).count(), 1, "task {}", t);
            prop_assert!(clients.values().all(|c| !(c.active.contains(t) && c.standby.contains(t))));
        }
        let warmups: usize = outcome.warmups.values().map(BTreeSet::len).sum();
        prop_assert!(warmups as i64 <= max_warmups.max(0));
        for t in &stateful {
            let copies = clients.values().filter(|c| c.standby.contains(t)).count();
            prop_assert!(copies <= standbys + max_warmups as usize, "task {}: {} standbys", t, copies);
        }
        prop_assert!(all.difference(&stateful).all(|t| clients.values().all(|c| !c.standby.contains(t))));
        let mut again: BTreeMap<ProcessId, ClientState> = input
            .into_iter()
            .map(|(id, mut c)| {
                c.active.clear();
                c.standby.clear();
                (id, c)
            })
            .collect();
        prop_assert_eq!(assign(&mut again, &all, &stateful, &config), outcome);
        for (id, c) in &clients {
            prop_assert_eq!(&again[id].active, &c.active);
            prop_assert_eq!(&again[id].standby, &c.standby);
        }
    }
}

/// The assignor against Kafka Streams' own `HighAvailabilityTaskAssignor` (4.3.0): 1,505 groups
/// (`testdata/assignor/groups.jsonl`) and what Kafka Streams assigned them (`expected.jsonl`, written by
/// `scripts/differential.sh`, whose `--check` in CI keeps it Kafka Streams' answer).
#[test]
fn assignments_are_kafka_streams_own() {
    use serde_json::Value;
    let groups = include_str!("../../../testdata/assignor/groups.jsonl");
    let expected = include_str!("../../../testdata/assignor/expected.jsonl");
    let parse_task = |v: &Value| -> TaskId {
        let (s, p) = v.as_str().unwrap().split_once('_').unwrap();
        task(s.parse().unwrap(), p.parse().unwrap())
    };
    let set = |v: &Value| -> BTreeSet<TaskId> { v.as_array().unwrap().iter().map(parse_task).collect() };
    let process_id = |v: &Value| ProcessId(u128::from_str_radix(v.as_str().unwrap(), 16).unwrap());
    let mut differences = Vec::new();
    let mut count = 0;
    for (n, (group, expected)) in groups.lines().zip(expected.lines()).enumerate() {
        count += 1;
        let group: Value = serde_json::from_str(group).unwrap();
        let expected: Value = serde_json::from_str(expected).unwrap();
        let stateful = set(&group["stateful"]);
        let end = 10_000;
        let ends: BTreeMap<TaskId, i64> = stateful.iter().map(|&t| (t, end)).collect();
        let mut clients = BTreeMap::new();
        for c in group["clients"].as_array().unwrap() {
            let sums: BTreeMap<TaskId, i64> = c["lags"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(t, lag)| {
                    let lag = lag.as_i64().unwrap();
                    (parse_task(&Value::from(t.as_str())), if lag < 0 { lag } else { end - lag })
                })
                .collect();
            let capacity = c["capacity"].as_u64().unwrap() as u32;
            let tags: BTreeMap<String, String> = c["tags"]
                .as_object()
                .map(|tags| tags.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect())
                .unwrap_or_default();
            clients.insert(process_id(&c["id"]), ClientState::new(capacity, &sums, &ends).with_tags(tags));
        }
        let mut config = configs(
            group["acceptable_recovery_lag"].as_i64().unwrap(),
            group["max_warmup_replicas"].as_i64().unwrap(),
            group["num_standby_replicas"].as_u64().unwrap() as usize,
        );
        if let Some(tags) = group["rack_aware_assignment_tags"].as_array() {
            config.rack_aware_assignment_tags = tags.iter().map(|t| t.as_str().unwrap().to_string()).collect();
        }
        let outcome = assign(&mut clients, &set(&group["all"]), &stateful, &config);
        let mut same = outcome.probing_rebalance_needed == expected["probing_rebalance_needed"].as_bool().unwrap();
        for c in expected["clients"].as_array().unwrap() {
            let ours = &clients[&process_id(&c["id"])];
            same &= ours.active == set(&c["active"]) && ours.standby == set(&c["standby"]);
        }
        if !same {
            differences.push(format!(
                "group {} (line {}): ours {clients:?} {outcome:?}; Kafka Streams {expected}",
                n,
                n + 1
            ));
        }
    }
    assert_eq!(count, 1505);
    assert!(differences.is_empty(), "{} of {count} differ; first: {}", differences.len(), differences[0]);
}

#[test]
fn threads_get_back_their_tasks_and_an_even_share() {
    let threads: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let stateful: BTreeSet<TaskId> = tasks(7);
    let previous = BTreeMap::from([
        ("a".to_string(), vec![task(0, 5), task(0, 6), task(0, 0)]),
        ("b".to_string(), vec![task(0, 1)]),
    ]);
    let mut load = BTreeMap::new();
    let actives = assign_tasks_to_threads(&stateful, true, &threads, &previous, &mut load);
    // Two each (7 / 3) first: `a` keeps two of its three, `b` its one; the smallest tasks left fill up
    // `b` and `c` (0_0 among them, which `a` had), the last one goes round again from the first thread.
    assert_eq!(actives["a"], vec![task(0, 5), task(0, 6), task(0, 4)]);
    assert_eq!(actives["b"], vec![task(0, 1), task(0, 0)]);
    assert_eq!(actives["c"], vec![task(0, 2), task(0, 3)]);
    let stateless: BTreeSet<TaskId> = (0..2).map(|p| task(1, p)).collect();
    let more = assign_tasks_to_threads(&stateless, false, &threads, &BTreeMap::new(), &mut load);
    assert_eq!((more["a"].len(), more["b"].len(), more["c"].len()), (0, 1, 1), "the load carries over");
    assert_eq!(load.values().sum::<usize>(), 9);
}

proptest! {
    /// Every task goes to exactly one thread, and the threads' counts differ by one at most.
    #[test]
    fn threads_share_every_task_evenly(
        thread_count in 1usize..5,
        task_count in 0i32..20,
        owners in prop::collection::vec(0usize..6, 0..20),
    ) {
        let threads: Vec<String> = (0..thread_count).map(|t| format!("member-{t}")).collect();
        let all = tasks(task_count);
        let mut previous: BTreeMap<String, Vec<TaskId>> = BTreeMap::new();
        for (task, &owner) in all.iter().zip(&owners) {
            if owner < thread_count {
                previous.entry(threads[owner].clone()).or_default().push(*task);
            }
        }
        let mut load = BTreeMap::new();
        let given = assign_tasks_to_threads(&all, true, &threads, &previous, &mut load);
        let mut seen: Vec<TaskId> = given.values().flatten().copied().collect();
        seen.sort();
        prop_assert_eq!(seen, all.iter().copied().collect::<Vec<_>>());
        let counts: Vec<usize> = given.values().map(Vec::len).collect();
        prop_assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1, "{:?}", counts);
    }
}

#[test]
fn standbys_go_to_other_zones_and_clusters_with_rack_aware_tags() {
    let stateful = tasks(6);
    let mut clients = BTreeMap::new();
    let places = [("a", "k1"), ("b", "k1"), ("c", "k1"), ("a", "k2"), ("b", "k2"), ("c", "k2")];
    for (i, (zone, cluster)) in places.into_iter().enumerate() {
        let tags =
            BTreeMap::from([("zone".to_string(), zone.to_string()), ("cluster".to_string(), cluster.to_string())]);
        clients.insert(ProcessId(i as u128 + 1), client(1, &[], &stateful).with_tags(tags));
    }
    let before = clients.clone();
    let mut config = configs(i64::MAX, 2, 2);
    config.rack_aware_assignment_tags = vec!["zone".into(), "cluster".into()];
    assign(&mut clients, &stateful, &stateful, &config);
    for t in &stateful {
        let holders: Vec<&ClientState> =
            before.keys().filter(|id| clients[id].has_assigned(*t)).map(|id| &before[id]).collect();
        assert_eq!(holders.len(), 3, "task {t}: one active, two standbys");
        let zones: BTreeSet<&String> = holders.iter().map(|c| &c.tags["zone"]).collect();
        let clusters: BTreeSet<&String> = holders.iter().map(|c| &c.tags["cluster"]).collect();
        assert_eq!((zones.len(), clusters.len()), (3, 2), "task {t}: three zones, both clusters");
    }
}
