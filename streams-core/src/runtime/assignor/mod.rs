//! Which instance runs which task: Kafka Streams' `HighAvailabilityTaskAssignor`, run by the group's
//! leader over every instance's state (docs/architecture.md, "Task assignment").
//!
//! Stateful tasks are spread over the instances by thread count, then each one whose balanced owner is
//! not caught up (its state further behind the changelogs than `acceptable.recovery.lag`) stays on, or
//! goes back to, the most caught-up instance, and its balanced owner gets a warm-up replica (at most
//! `max.warmup.replicas` in all) to catch up on; a probing rebalance later moves it once caught up.
//! Standbys (`num.standby.replicas`) go to the least loaded instances without a copy; stateless tasks by
//! active load. The steps, their order and their tie-breaks are Kafka Streams', down to the Java
//! collections that break ties (`java_queue.rs`), so an assignment made here is the one Kafka Streams
//! would make for the same group (`tests.rs` checks it against Kafka Streams' own on 1,505 groups).
//! With `rack.aware.assignment.tags`, standbys are placed apart by client tags
//! (`ClientTagAwareStandbyTaskAssignor`). Not yet: the rack-aware traffic optimisation
//! (`rack.aware.assignment.strategy`); the caller's part (end offsets of the changelogs, Kafka Streams'
//! fallback to the previous assignment when they cannot be read) comes with the group member.

mod java_queue;
mod threads;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use java_queue::{ConstrainedPrioritySet, JavaPriorityQueue};
pub(crate) use threads::assign_tasks_to_threads;

use crate::task_id::TaskId;

/// An instance of the application (Kafka Streams' process id, a UUID: one per `KafkaStreams`, shared
/// by its stream threads). Ordered as Java orders UUIDs (each half as a signed number): ties between
/// equally loaded instances go to the smaller id, as in Kafka Streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct ProcessId(pub(crate) u128);

impl ProcessId {
    /// The id of an instance whose process id is `id` (the state directory's, or a random one): its
    /// digits when it is hexadecimal (a UUID's dashes left out), else a hash of it.
    pub(crate) fn of(id: &str) -> Self {
        let hex: String = id.chars().filter(|c| *c != '-').collect();
        if !hex.is_empty()
            && hex.len() <= 32
            && let Ok(n) = u128::from_str_radix(&hex, 16)
        {
            return ProcessId(n);
        }
        // FNV-1a, 128 bits: the same on every machine and run, unlike the standard library's hasher.
        let mut hash: u128 = 0x6c62272e07bb014262b821756295c58d;
        for byte in id.bytes() {
            hash ^= u128::from(byte);
            hash = hash.wrapping_mul(0x0000000001000000000000000000013B);
        }
        ProcessId(hash)
    }

    fn halves(self) -> (i64, i64) {
        ((self.0 >> 64) as u64 as i64, self.0 as u64 as i64)
    }

    /// Java's `UUID.hashCode()`.
    fn java_hash(self) -> i32 {
        let (most, least) = self.halves();
        let hilo = most ^ least;
        ((hilo >> 32) as i32) ^ (hilo as i32)
    }
}

impl Ord for ProcessId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.halves().cmp(&other.halves())
    }
}

impl PartialOrd for ProcessId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The offset sum an instance reports for a task it runs as an active, processing task (Kafka Streams'
/// `Task.LATEST_OFFSET`): caught up by definition.
pub(crate) const LATEST_OFFSET: i64 = -2;
/// The offset sum of a task whose state an instance has but cannot sum (Kafka Streams'
/// `SubscriptionInfo.UNKNOWN_OFFSET_SUM`).
pub(crate) const UNKNOWN_OFFSET_SUM: i64 = -3;

/// The settings the assignment follows (Kafka Streams' `AssignmentConfigs`).
#[derive(Debug, Clone, Default)]
pub(crate) struct AssignmentConfigs {
    /// `acceptable.recovery.lag`: how far behind the changelogs an instance may be and still count as
    /// caught up (`i64::MAX`: every instance does).
    pub(crate) acceptable_recovery_lag: i64,
    /// `max.warmup.replicas`: warm-up replicas handed out per assignment, across all tasks.
    pub(crate) max_warmup_replicas: i64,
    /// `num.standby.replicas`.
    pub(crate) num_standby_replicas: usize,
    /// `rack.aware.assignment.tags`: the client tags (`client.tag.<key>`) whose values a task's
    /// standbys should differ from its active's and each other's in (zones, clusters).
    pub(crate) rack_aware_assignment_tags: Vec<String>,
}

/// One instance as the assignment sees it: its capacity, how far its state is behind on each stateful
/// task, and the tasks the assignment gives it.
#[derive(Debug, Clone)]
pub(crate) struct ClientState {
    /// Its stream threads (the members it has in the group).
    capacity: u32,
    /// Its `client.tag.*` settings.
    tags: BTreeMap<String, String>,
    /// Per stateful task: how many records behind the changelogs' ends its state is, or
    /// `LATEST_OFFSET`, `UNKNOWN_OFFSET_SUM`.
    lags: BTreeMap<TaskId, i64>,
    /// The active tasks assigned.
    pub(crate) active: BTreeSet<TaskId>,
    /// The standby tasks assigned, warm-ups included (a warm-up is a standby the next probing
    /// rebalance may turn active).
    pub(crate) standby: BTreeSet<TaskId>,
}

impl ClientState {
    /// An instance with `capacity` threads reporting `offset_sums` (per task: the sum of its changelog
    /// offsets in the instance's state, or `LATEST_OFFSET`), against the changelogs' `end_offset_sums`
    /// (one entry per stateful task). A task it has no state of lags by the whole of the changelogs; one
    /// whose sum is past the end (state the changelog no longer has: truncated, or a different log) lags
    /// as much, so it goes where the state can be used, as in Kafka Streams (`computeTaskLags`).
    pub(crate) fn new(
        capacity: u32,
        offset_sums: &BTreeMap<TaskId, i64>,
        end_offset_sums: &BTreeMap<TaskId, i64>,
    ) -> Self {
        let lags = end_offset_sums
            .iter()
            .map(|(&task, &end)| {
                let lag = match offset_sums.get(&task).copied().unwrap_or(0) {
                    LATEST_OFFSET => LATEST_OFFSET,
                    UNKNOWN_OFFSET_SUM => UNKNOWN_OFFSET_SUM,
                    // Past the end, or a sum no state has (a member's bytes are not trusted): no state.
                    sum if sum > end || sum < 0 => end,
                    sum => end - sum,
                };
                (task, lag)
            })
            .collect();
        ClientState {
            capacity: capacity.max(1),
            tags: BTreeMap::new(),
            lags,
            active: BTreeSet::new(),
            standby: BTreeSet::new(),
        }
    }

    /// The instance with its client tags (`client.tag.*`).
    pub(crate) fn with_tags(mut self, tags: BTreeMap<String, String>) -> Self {
        self.tags = tags;
        self
    }

    /// How far behind its state of `task` is (a stateless task: caught up).
    pub(crate) fn lag_for(&self, task: TaskId) -> i64 {
        self.lags.get(&task).copied().unwrap_or(LATEST_OFFSET)
    }

    /// `tasks` (what one of its threads had) that are stateful tasks of this assignment, least behind
    /// first, ties by id (Kafka Streams' `prevTasksByLag`).
    pub(crate) fn by_lag(&self, tasks: &BTreeSet<TaskId>) -> Vec<TaskId> {
        let mut known: Vec<TaskId> = tasks.iter().copied().filter(|t| self.lags.contains_key(t)).collect();
        known.sort_by_key(|&t| (self.lag_for(t), t));
        known
    }

    fn has_assigned(&self, task: TaskId) -> bool {
        self.active.contains(&task) || self.standby.contains(&task)
    }

    fn assigned_count(&self) -> usize {
        self.active.len() + self.standby.len()
    }

    /// Tasks per thread, active and standby (Kafka Streams' `assignedTaskLoad`).
    fn assigned_load(&self) -> f64 {
        self.assigned_count() as f64 / self.capacity as f64
    }

    fn active_load(&self) -> f64 {
        self.active.len() as f64 / self.capacity as f64
    }
}

/// What `assign` decided besides each instance's tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AssignmentOutcome {
    /// Warm-up replicas handed out, by instance (also in their `standby`).
    pub(crate) warmups: BTreeMap<ProcessId, BTreeSet<TaskId>>,
    /// Whether some task still has to move once its new owner caught up: the group should rebalance
    /// again after `probing.rebalance.interval.ms`.
    pub(crate) probing_rebalance_needed: bool,
}

/// Assigns every task of `all_tasks` as an active task to one instance of `clients` (with standbys
/// and warm-ups for those of `stateful_tasks`), filling each `ClientState`'s `active` and `standby`,
/// which must start empty. No instance: nothing to do.
pub(crate) fn assign(
    clients: &mut BTreeMap<ProcessId, ClientState>,
    all_tasks: &BTreeSet<TaskId>,
    stateful_tasks: &BTreeSet<TaskId>,
    configs: &AssignmentConfigs,
) -> AssignmentOutcome {
    let mut outcome = AssignmentOutcome::default();
    if clients.is_empty() {
        return outcome;
    }
    let ids: Vec<ProcessId> = clients.keys().copied().collect();
    let mut states: Vec<ClientState> = std::mem::take(clients).into_values().collect();
    let mut group = Group { ids: &ids, states: &mut states };
    let stateful_tasks: &BTreeSet<TaskId> = &stateful_tasks.intersection(all_tasks).copied().collect();

    group.assign_active_stateful(stateful_tasks);
    if configs.num_standby_replicas > 0 {
        if configs.rack_aware_assignment_tags.is_empty() {
            group.assign_standbys(stateful_tasks, configs.num_standby_replicas);
            group.balance_over_threads(Kind::Standby, |_, _| true);
        } else {
            group.assign_standbys_by_tags(stateful_tasks, configs);
            group.balance_over_threads(Kind::Standby, same_tags);
        }
    }

    let mut remaining_warmups = configs.max_warmup_replicas;
    let caught_up = group.caught_up_clients(stateful_tasks, configs.acceptable_recovery_lag);
    let by_lag = group.clients_by_lag(stateful_tasks);
    let mut warmups: Vec<BTreeSet<TaskId>> = vec![BTreeSet::new(); ids.len()];
    let active_moves = group.active_task_movements(&caught_up, &by_lag, &mut warmups, &mut remaining_warmups);
    let standby_moves = group.standby_task_movements(&caught_up, &by_lag, &warmups, &mut remaining_warmups);
    let stateless: BTreeSet<TaskId> = all_tasks.difference(stateful_tasks).copied().collect();
    group.assign_stateless(&stateless);

    outcome.probing_rebalance_needed = active_moves + standby_moves > 0;
    for (i, tasks) in warmups.into_iter().enumerate() {
        if !tasks.is_empty() {
            outcome.warmups.insert(ids[i], tasks);
        }
    }
    *clients = ids.into_iter().zip(states).collect();
    outcome
}

/// The instances by position (in `ProcessId` order), so that two can be changed at once.
struct Group<'a> {
    ids: &'a [ProcessId],
    states: &'a mut [ClientState],
}

/// A task scheduled to leave `destination`, its balanced owner, for a more caught-up instance.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Movement {
    task: TaskId,
    destination: usize,
    caught_up_clients: usize,
}

impl Group<'_> {
    /// Round-robin over the instances, then balanced over their threads (`assignActiveStatefulTasks`).
    fn assign_active_stateful(&mut self, stateful: &BTreeSet<TaskId>) {
        for (i, &task) in stateful.iter().enumerate() {
            self.states[i % self.states.len()].active.insert(task);
        }
        self.balance_over_threads(Kind::Active, |_, _| true);
    }

    /// `num_standby` copies of each stateful task on the least loaded instances without one
    /// (`DefaultStandbyTaskAssignor`). Fewer instances than copies: fewer copies, as Kafka Streams
    /// (which warns).
    fn assign_standbys(&mut self, stateful: &BTreeSet<TaskId>, num_standby: usize) {
        let mut clients = ConstrainedPrioritySet::new(self.states.len());
        clients.offer_all(&self.all(), &by_load(self.states, ClientState::assigned_load));
        for &task in stateful {
            self.place_standbys(&mut clients, task, num_standby);
        }
    }

    /// `count` copies of `task` on the least loaded instances of `clients` without one
    /// (`pollClientAndMaybeAssignAndUpdateRemainingStandbyTasks`).
    fn place_standbys(&mut self, clients: &mut ConstrainedPrioritySet, task: TaskId, count: usize) {
        for _ in 0..count {
            let allowed = |c: usize| !self.states[c].has_assigned(task);
            let polled = clients.poll(allowed, self.hash(), &by_load(self.states, ClientState::assigned_load));
            let Some(client) = polled else {
                tracing::warn!(
                    target: "kstreams::runtime::assignor",
                    task = %task,
                    "not enough instances for every standby replica of this task (num.standby.replicas)"
                );
                break;
            };
            self.states[client].standby.insert(task);
            clients.offer(client, &by_load(self.states, ClientState::assigned_load));
        }
    }

    /// Standbys placed apart by client tags (`ClientTagAwareStandbyTaskAssignor`): each copy of a task
    /// goes to the least loaded instance whose values of the `rack.aware.assignment.tags` none of the
    /// task's copies so far has (a tag with no value left unused stops counting); copies that cannot
    /// be placed so go to the least loaded instances without one.
    fn assign_standbys_by_tags(&mut self, stateful: &BTreeSet<TaskId>, configs: &AssignmentConfigs) {
        let num_standby = configs.num_standby_replicas;
        let rack_tags: BTreeSet<&str> = configs.rack_aware_assignment_tags.iter().map(String::as_str).collect();
        // Per tag key, its values; per (key, value), the instances with it.
        let mut values_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut clients_with: BTreeMap<(&str, &str), BTreeSet<usize>> = BTreeMap::new();
        for (c, state) in self.states.iter().enumerate() {
            for (key, value) in &state.tags {
                values_of.entry(key).or_default().insert(value);
                clients_with.entry((key, value)).or_default().insert(c);
            }
        }
        let values_of: BTreeMap<String, usize> = values_of.into_iter().map(|(k, v)| (k.to_string(), v.len())).collect();
        let clients_with: BTreeMap<(String, String), BTreeSet<usize>> =
            clients_with.into_iter().map(|((k, v), c)| ((k.to_string(), v.to_string()), c)).collect();
        let mut remaining: BTreeMap<TaskId, usize> = stateful.iter().map(|&t| (t, num_standby)).collect();
        let mut clients = ConstrainedPrioritySet::new(self.states.len());
        for &task in stateful {
            for active_client in 0..self.states.len() {
                if !self.states[active_client].active.contains(&task) {
                    continue;
                }
                clients.offer_all(&self.all(), &by_load(self.states, ClientState::assigned_load));
                let mut used_clients = 1;
                let mut left = remaining[&task];
                // Per (key, value) in use by a copy of the task: the instances with it.
                let mut used: BTreeMap<(String, String), &BTreeSet<usize>> = BTreeMap::new();
                let mut last = active_client;
                loop {
                    for (key, value) in &self.states[last].tags {
                        if !rack_tags.contains(key.as_str()) {
                            continue;
                        }
                        if values_of[key] <= used_clients {
                            used.retain(|(k, _), _| k != key);
                        } else {
                            let entry = (key.clone(), value.clone());
                            let with = &clients_with[&entry];
                            used.insert(entry, with);
                        }
                    }
                    let apart = |c: usize| !self.states[c].has_assigned(task) && used.values().all(|u| !u.contains(&c));
                    let polled = clients.poll(apart, self.hash(), &by_load(self.states, ClientState::assigned_load));
                    let Some(client) = polled else { break };
                    used_clients += 1;
                    left -= 1;
                    self.states[client].standby.insert(task);
                    last = client;
                    if left == 0 {
                        break;
                    }
                }
                if left > 0 {
                    tracing::warn!(
                        target: "kstreams::runtime::assignor",
                        task = %task,
                        standbys = left,
                        "not enough instances on other client tag values (rack.aware.assignment.tags) for every standby of this task; the rest go to the least loaded instances"
                    );
                    remaining.insert(task, left);
                } else {
                    remaining.remove(&task);
                }
            }
        }
        if remaining.is_empty() {
            return;
        }
        clients.offer_all(&self.all(), &by_load(self.states, ClientState::assigned_load));
        // Kafka Streams walks its HashMap of tasks: bucket order of `TaskId.hashCode()` in a table
        // sized for every stateful task.
        let pending = java_queue::hash_order(remaining.keys().copied().collect(), stateful.len(), task_hash);
        for task in pending {
            self.place_standbys(&mut clients, task, remaining[&task]);
        }
    }

    /// Moves tasks of `kind` from more to less loaded instances while that lowers the skew
    /// (`balanceTasksOverThreads`).
    fn balance_over_threads(&mut self, kind: Kind, allowed: impl Fn(&ClientState, &ClientState) -> bool) {
        let mut keep_balancing = true;
        while keep_balancing {
            keep_balancing = false;
            for source in 0..self.states.len() {
                for destination in 0..self.states.len() {
                    if source == destination {
                        continue;
                    }
                    let tasks: Vec<TaskId> = kind.tasks(&self.states[source]).iter().copied().collect();
                    for task in tasks {
                        if !should_move_a_task(&self.states[source], &self.states[destination]) {
                            break;
                        }
                        if !self.states[destination].has_assigned(task)
                            && allowed(&self.states[source], &self.states[destination])
                        {
                            kind.tasks_mut(&mut self.states[source]).remove(&task);
                            kind.tasks_mut(&mut self.states[destination]).insert(task);
                            keep_balancing = true;
                        }
                    }
                }
            }
        }
    }

    /// Per stateful task, the instances caught up on it: running it, or within the acceptable lag.
    fn caught_up_clients(&self, stateful: &BTreeSet<TaskId>, acceptable_lag: i64) -> BTreeMap<TaskId, BTreeSet<usize>> {
        stateful
            .iter()
            .map(|&task| {
                let clients = (0..self.states.len())
                    .filter(|&c| {
                        let lag = self.states[c].lag_for(task);
                        lag == LATEST_OFFSET || acceptable_lag == i64::MAX || (0..=acceptable_lag).contains(&lag)
                    })
                    .collect();
                (task, clients)
            })
            .collect()
    }

    /// Per stateful task, every instance from the least to the most behind (ties by id).
    fn clients_by_lag(&self, stateful: &BTreeSet<TaskId>) -> BTreeMap<TaskId, Vec<usize>> {
        stateful
            .iter()
            .map(|&task| {
                let mut clients: Vec<usize> = (0..self.states.len()).collect();
                clients.sort_by_key(|&c| (self.states[c].lag_for(task), c));
                (task, clients)
            })
            .collect()
    }

    /// Whether `task` should leave `client`: it is not caught up there and another instance is less
    /// behind.
    fn should_leave(
        &self,
        task: TaskId,
        client: usize,
        caught_up: &BTreeMap<TaskId, BTreeSet<usize>>,
        by_lag: &BTreeMap<TaskId, Vec<usize>>,
    ) -> bool {
        if caught_up[&task].contains(&client) {
            return false;
        }
        let most_caught_up = by_lag[&task][0];
        self.states[most_caught_up].lag_for(task) < self.states[client].lag_for(task)
    }

    /// Active tasks whose balanced owner is behind go to a caught-up instance (one with a standby
    /// first, swapping the two), else to the most caught-up one; the balanced owner warms up
    /// (`TaskMovement.assignActiveTaskMovements`). Returns how many moved.
    fn active_task_movements(
        &mut self,
        caught_up: &BTreeMap<TaskId, BTreeSet<usize>>,
        by_lag: &BTreeMap<TaskId, Vec<usize>>,
        warmups: &mut [BTreeSet<TaskId>],
        remaining_warmups: &mut i64,
    ) -> usize {
        let mut clients = ConstrainedPrioritySet::new(self.states.len());
        let mut movements = JavaPriorityQueue::new();
        for client in 0..self.states.len() {
            for &task in &self.states[client].active {
                if self.should_leave(task, client, caught_up, by_lag) {
                    let movement = Movement { task, destination: client, caught_up_clients: caught_up[&task].len() };
                    movements.offer(movement, &by_movement);
                }
            }
            clients.offer(client, &by_load(self.states, ClientState::assigned_load));
        }
        let needed = movements.len();
        while let Some(Movement { task, destination, .. }) = movements.poll(&by_movement) {
            let is_caught_up = |c: usize| caught_up[&task].contains(&c);
            let with_standby = |c: usize| is_caught_up(c) && self.states[c].standby.contains(&task);
            let caught_up_standby =
                clients.poll(with_standby, self.hash(), &by_load(self.states, ClientState::assigned_load));
            let caught_up_other = match caught_up_standby {
                Some(_) => None,
                None => clients.poll(is_caught_up, self.hash(), &by_load(self.states, ClientState::assigned_load)),
            };
            let source = if let Some(source) = caught_up_standby {
                self.swap_standby_and_active(task, source, destination);
                source
            } else if let Some(source) = caught_up_other {
                self.move_active_and_try_to_warm_up(task, source, destination, warmups, remaining_warmups);
                source
            } else if let Some(source) = most_caught_up_before(&by_lag[&task], destination, |_| true) {
                if self.states[source].standby.contains(&task) {
                    self.swap_standby_and_active(task, source, destination);
                } else {
                    self.move_active_and_try_to_warm_up(task, source, destination, warmups, remaining_warmups);
                }
                source
            } else {
                // Unreachable: the movement was scheduled because a less-behind instance exists, and
                // it comes before the destination in `by_lag`. Kafka Streams throws; the task stays.
                tracing::error!(target: "kstreams::runtime::assignor", task = %task, "no instance to move the task to");
                continue;
            };
            clients.offer_all(&[source, destination], &by_load(self.states, ClientState::assigned_load));
        }
        needed
    }

    /// Standbys whose instance is behind (warm-ups aside) go to a caught-up instance without a copy,
    /// else to the most caught-up one; the first keeps a warm-up while any are left
    /// (`TaskMovement.assignStandbyTaskMovements`). Returns how many moved.
    fn standby_task_movements(
        &mut self,
        caught_up: &BTreeMap<TaskId, BTreeSet<usize>>,
        by_lag: &BTreeMap<TaskId, Vec<usize>>,
        warmups: &[BTreeSet<TaskId>],
        remaining_warmups: &mut i64,
    ) -> usize {
        let mut clients = ConstrainedPrioritySet::new(self.states.len());
        let mut movements = JavaPriorityQueue::new();
        for (client, warmups) in warmups.iter().enumerate() {
            for &task in &self.states[client].standby {
                if !warmups.contains(&task) && self.should_leave(task, client, caught_up, by_lag) {
                    let movement = Movement { task, destination: client, caught_up_clients: caught_up[&task].len() };
                    movements.offer(movement, &by_movement);
                }
            }
            clients.offer(client, &by_load(self.states, ClientState::assigned_load));
        }
        let mut moved = 0;
        while let Some(Movement { task, destination, .. }) = movements.poll(&by_movement) {
            let eligible = |c: usize| !self.states[c].has_assigned(task);
            let caught_up_eligible = |c: usize| caught_up[&task].contains(&c) && eligible(c);
            let source = clients
                .poll(caught_up_eligible, self.hash(), &by_load(self.states, ClientState::assigned_load))
                .or_else(|| most_caught_up_before(&by_lag[&task], destination, eligible));
            if let Some(source) = source {
                self.states[source].standby.insert(task);
                if !take_warmup(remaining_warmups) {
                    self.states[destination].standby.remove(&task);
                }
                clients.offer_all(&[source, destination], &by_load(self.states, ClientState::assigned_load));
                moved += 1;
            }
        }
        moved
    }

    /// Stateless tasks one by one to the instance with the fewest active tasks per thread.
    fn assign_stateless(&mut self, stateless: &BTreeSet<TaskId>) {
        let mut clients = ConstrainedPrioritySet::new(self.states.len());
        clients.offer_all(&self.all(), &by_load(self.states, ClientState::active_load));
        for &task in stateless {
            let least_loaded = clients.poll(|_| true, self.hash(), &by_load(self.states, ClientState::active_load));
            if let Some(client) = least_loaded {
                self.states[client].active.insert(task);
                clients.offer(client, &by_load(self.states, ClientState::active_load));
            }
        }
    }

    fn swap_standby_and_active(&mut self, task: TaskId, source: usize, destination: usize) {
        self.states[source].standby.remove(&task);
        self.states[source].active.insert(task);
        self.states[destination].active.remove(&task);
        self.states[destination].standby.insert(task);
    }

    fn move_active_and_try_to_warm_up(
        &mut self,
        task: TaskId,
        source: usize,
        destination: usize,
        warmups: &mut [BTreeSet<TaskId>],
        remaining_warmups: &mut i64,
    ) {
        self.states[source].active.insert(task);
        self.states[destination].active.remove(&task);
        if take_warmup(remaining_warmups) {
            self.states[destination].standby.insert(task);
            warmups[destination].insert(task);
        }
    }

    /// Every instance's position, in id order.
    fn all(&self) -> Vec<usize> {
        (0..self.states.len()).collect()
    }

    /// Each instance's `ProcessId.hashCode()`, by position.
    fn hash(&self) -> impl Fn(usize) -> i32 + '_ {
        |c| self.ids[c].java_hash()
    }
}

/// Instances by `load`, then by id (positions are in id order): the order of Kafka Streams'
/// `ConstrainedPrioritySet`, read when compared, as Java's comparator reads it.
fn by_load(states: &[ClientState], load: fn(&ClientState) -> f64) -> impl Fn(&usize, &usize) -> Ordering + '_ {
    move |&a, &b| load(&states[a]).total_cmp(&load(&states[b])).then(a.cmp(&b))
}

/// Task movements by how few instances are caught up on the task, then by task (ties stay in heap
/// order, as in Java's queue).
fn by_movement(a: &Movement, b: &Movement) -> Ordering {
    (a.caught_up_clients, a.task).cmp(&(b.caught_up_clients, b.task))
}

/// Whether a standby may move from `source` to `destination` when balancing with client tags: the
/// destination has every tag of the source, with the same value (Kafka Streams'
/// `ClientTagAwareStandbyTaskAssignor.isAllowedTaskMovement`).
fn same_tags(source: &ClientState, destination: &ClientState) -> bool {
    source.tags.iter().all(|(key, value)| destination.tags.get(key) == Some(value))
}

/// Java's `TaskId.hashCode()` (`Objects.hash(subtopology, partition, null)`).
fn task_hash(task: &TaskId) -> i32 {
    let mut h: i32 = 1;
    h = h.wrapping_mul(31).wrapping_add(task.subtopology as i32);
    h = h.wrapping_mul(31).wrapping_add(task.partition);
    h.wrapping_mul(31)
}

/// Takes one warm-up replica if any is left (Kafka Streams' `getAndDecrement() > 0`).
fn take_warmup(remaining: &mut i64) -> bool {
    let had = *remaining;
    *remaining -= 1;
    had > 0
}

/// The first instance in `by_lag` (least behind first) before `destination` that `allowed` lets
/// through.
fn most_caught_up_before(by_lag: &[usize], destination: usize, allowed: impl Fn(usize) -> bool) -> Option<usize> {
    by_lag.iter().copied().take_while(|&c| c != destination).find(|&c| allowed(c))
}

/// Whether moving one task from `source` to `destination` lowers their skew in tasks per thread
/// without turning it around (`shouldMoveATask`).
fn should_move_a_task(source: &ClientState, destination: &ClientState) -> bool {
    let skew = source.assigned_load() - destination.assigned_load();
    if skew <= 0.0 {
        return false;
    }
    let at_destination = (destination.assigned_count() as f64 + 1.0) / destination.capacity as f64;
    let at_source = (source.assigned_count() as f64 - 1.0) / source.capacity as f64;
    let proposed = at_source - at_destination;
    proposed >= 0.0 && proposed < skew
}

#[derive(Clone, Copy)]
enum Kind {
    Active,
    Standby,
}

impl Kind {
    fn tasks(self, client: &ClientState) -> &BTreeSet<TaskId> {
        match self {
            Kind::Active => &client.active,
            Kind::Standby => &client.standby,
        }
    }

    fn tasks_mut(self, client: &mut ClientState) -> &mut BTreeSet<TaskId> {
        match self {
            Kind::Active => &mut client.active,
            Kind::Standby => &mut client.standby,
        }
    }
}

#[cfg(test)]
mod tests;
