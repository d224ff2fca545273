//! Kafka's classic group protocol as the embedded broker runs it for the library's own group members
//! ([`GroupMember`](crate::client::GroupMember)): Kafka's `ClassicGroup` states (empty, preparing a
//! rebalance, completing it, stable). A join makes every other member rejoin; the group forms once every
//! member has rejoined, or its rebalance timeout drops those that did not; the leader (kept across
//! rebalances while it stays) gets every subscription and hands out the assignment; a static member
//! (`group.instance.id`) restarted within its session takes its place back with its assignment and no
//! rebalance, fencing the instance it replaces (KIP-345).
//!
//! There is no heartbeat thread in a process of the embedded broker: a member's polls are its
//! heartbeats. A member whose process still runs (its handle is alive) stays in the group until it has
//! not polled for its rebalance timeout (`max.poll.interval.ms`), as Kafka's consumer leaves then; one
//! whose process is gone, until its session timeout. Unlike Kafka, a new group forms at once
//! (`group.initial.rebalance.delay.ms` is 3 s on Kafka).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Weak;

use crate::client::{Assignment, ClientErrorKind, GroupEvent, JoinedMember, Subscription};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    /// Waiting for every member to rejoin, since this time.
    Preparing {
        since_ms: i64,
    },
    /// Waiting for the leader's assignment, since this time.
    Completing {
        since_ms: i64,
    },
    Stable,
}

/// A member's settings and liveness.
#[derive(Debug, Clone)]
pub(crate) struct MemberConfig {
    pub(crate) instance_id: Option<String>,
    pub(crate) session_timeout_ms: i64,
    pub(crate) rebalance_timeout_ms: i64,
    /// Alive while the member's process runs (the member holds the other end).
    pub(crate) alive: Weak<()>,
}

#[derive(Debug)]
struct Member {
    config: MemberConfig,
    subscription: Subscription,
    last_seen_ms: i64,
    /// Rejoined in the rebalance under way.
    joined: bool,
    /// Told to rejoin in the rebalance under way.
    told: bool,
    events: VecDeque<GroupEvent>,
}

/// Why a member's next call fails, once it is out of the group.
#[derive(Debug, Clone)]
pub(crate) enum Gone {
    /// Removed (session expired, stopped polling, did not rejoin in time): told once as `Lost`.
    Removed(String),
    /// A newer member with the same `group.instance.id` took its place: FENCED_INSTANCE_ID.
    Fenced(String),
}

/// One group's classic protocol state (see the module's documentation).
#[derive(Debug)]
pub(crate) struct ClassicGroup {
    state: State,
    generation: i32,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    assignments: BTreeMap<String, Assignment>,
    gone: BTreeMap<String, Gone>,
}

impl Default for ClassicGroup {
    fn default() -> Self {
        ClassicGroup {
            state: State::Empty,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            assignments: BTreeMap::new(),
            gone: BTreeMap::new(),
        }
    }
}

impl ClassicGroup {
    /// Whether `member` is one of this group's (a member of the classic protocol, not a librdkafka-style
    /// consumer of the embedded broker's own range assignment).
    pub(crate) fn has(&self, member: &str) -> bool {
        self.members.contains_key(member) || self.gone.contains_key(member)
    }

    /// `member` (or a new member when `None`, named by `new_id`) joins with `subscription` at `now_ms`;
    /// returns its id. A replaced static instance's id is in `gone` as fenced.
    pub(crate) fn join(
        &mut self,
        member: Option<&str>,
        new_id: impl FnOnce() -> String,
        config: MemberConfig,
        subscription: Subscription,
        now_ms: i64,
    ) -> Result<String, Gone> {
        self.tick(now_ms);
        if let Some(gone @ Gone::Fenced(_)) = member.and_then(|id| self.gone.get(id)) {
            return Err(gone.clone());
        }
        let known = member.filter(|id| self.members.contains_key(*id)).map(str::to_string);
        if let Some(id) = known {
            let m = self.members.get_mut(&id).expect("known");
            // What the group said to its earlier joins is stale: this join gets its own answer.
            m.events.clear();
            let changed = m.subscription != subscription;
            (m.subscription, m.last_seen_ms, m.config) = (subscription, now_ms, config);
            match self.state {
                State::Stable if !changed && self.leader.as_deref() != Some(id.as_str()) => {
                    // Kafka answers a follower that rejoins unchanged with the current generation.
                    let assignment = self.assignments.get(&id).cloned().unwrap_or_default();
                    let generation = self.generation;
                    m.events.push_back(GroupEvent::Assigned { generation, assignment });
                }
                State::Preparing { .. } => m.joined = true,
                // Kafka answers a follower that rejoins unchanged while the leader assigns with the
                // generation being formed: its assignment comes with the leader's.
                State::Completing { .. } if !changed && self.leader.as_deref() != Some(id.as_str()) => {}
                _ => {
                    self.prepare(now_ms, Some(&id));
                    self.members.get_mut(&id).expect("known").joined = true;
                }
            }
            self.tick(now_ms);
            return Ok(id);
        }
        let id = new_id();
        let replaced = config.instance_id.as_ref().and_then(|instance| {
            let same = |m: &Member| m.config.instance_id.as_ref() == Some(instance);
            self.members.iter().find(|(_, m)| same(m)).map(|(id, _)| id.clone())
        });
        if let Some(old) = replaced {
            // A static member back within its session: it takes the old one's place and assignment.
            let mut m = self.members.remove(&old).expect("found");
            let instance = config.instance_id.clone().unwrap_or_default();
            self.gone
                .insert(old.clone(), Gone::Fenced(format!("group.instance.id {instance} was taken by member {id}")));
            if self.leader.as_deref() == Some(old.as_str()) {
                self.leader = Some(id.clone());
            }
            if let Some(a) = self.assignments.remove(&old) {
                self.assignments.insert(id.clone(), a);
            }
            (m.subscription, m.last_seen_ms, m.config) = (subscription, now_ms, config);
            m.events.clear();
            m.joined = true;
            self.members.insert(id.clone(), m);
            match self.state {
                State::Stable => {
                    let assignment = self.assignments.get(&id).cloned().unwrap_or_default();
                    let m = self.members.get_mut(&id).expect("inserted");
                    m.events.push_back(GroupEvent::Assigned { generation: self.generation, assignment });
                }
                // As Kafka does: the leader may be assigning to the old member's id already, which would
                // leave the new one without an assignment; the group rebalances again.
                State::Completing { .. } => {
                    self.prepare(now_ms, Some(&id));
                    self.members.get_mut(&id).expect("inserted").joined = true;
                }
                State::Preparing { .. } | State::Empty => {}
            }
            self.tick(now_ms);
            return Ok(id);
        }
        self.prepare(now_ms, None);
        self.members.insert(
            id.clone(),
            Member { config, subscription, last_seen_ms: now_ms, joined: true, told: true, events: VecDeque::new() },
        );
        self.tick(now_ms);
        Ok(id)
    }

    /// The leader's assignment for `generation`; a stale or misplaced one changes nothing (the member
    /// hears what to do at its next poll).
    pub(crate) fn sync(&mut self, member: &str, generation: i32, assignments: Vec<(String, Assignment)>, now_ms: i64) {
        self.tick(now_ms);
        let leads = self.leader.as_deref() == Some(member);
        if !matches!(self.state, State::Completing { .. }) || generation != self.generation || !leads {
            return;
        }
        self.assignments = assignments.into_iter().filter(|(id, _)| self.members.contains_key(id)).collect();
        self.state = State::Stable;
        for (id, m) in &mut self.members {
            let assignment = self.assignments.get(id).cloned().unwrap_or_default();
            m.events.push_back(GroupEvent::Assigned { generation, assignment });
        }
    }

    /// `member`'s heartbeat at `now_ms`, and what the group did for it.
    pub(crate) fn poll(&mut self, member: &str, now_ms: i64) -> Result<GroupEvent, Gone> {
        self.tick(now_ms);
        match self.gone.get(member) {
            Some(Gone::Removed(reason)) => {
                let reason = reason.clone();
                self.gone.remove(member);
                return Ok(GroupEvent::Lost { reason });
            }
            Some(fenced @ Gone::Fenced(_)) => return Err(fenced.clone()),
            None => {}
        }
        let Some(m) = self.members.get_mut(member) else { return Ok(GroupEvent::Idle) };
        m.last_seen_ms = now_ms;
        Ok(m.events.pop_front().unwrap_or(GroupEvent::Idle))
    }

    /// `member` leaves (a dynamic member's close): the others rejoin at once.
    pub(crate) fn leave(&mut self, member: &str, now_ms: i64) {
        if self.members.remove(member).is_some() {
            self.assignments.remove(member);
            if self.leader.as_deref() == Some(member) {
                self.leader = None;
            }
            self.prepare(now_ms, None);
            self.tick(now_ms);
        }
    }

    /// Whether `member` may commit as a member of `generation`, and if not, what the refusal means, in
    /// Kafka's order (`ClassicGroup.validateOffsetCommit`): FENCED_INSTANCE_ID (fatal), UNKNOWN_MEMBER_ID
    /// and ILLEGAL_GENERATION (fenced), then, for an OffsetCommit but not a transaction's, REBALANCE_IN_PROGRESS
    /// while the leader assigns (retriable once the group has formed).
    pub(crate) fn check(
        &self,
        member: &str,
        generation: i32,
        transactional: bool,
    ) -> Result<(), (ClientErrorKind, String)> {
        if let Some(Gone::Fenced(why)) = self.gone.get(member) {
            return Err((ClientErrorKind::Fatal, format!("member {member} was fenced: {why}")));
        }
        if !self.members.contains_key(member) {
            let why = format!("member {member} is not in the group (its session expired or it left)");
            return Err((ClientErrorKind::Fenced, why));
        }
        if generation != self.generation {
            let why =
                format!("member {member} commits for generation {generation}, the group is at {}", self.generation);
            return Err((ClientErrorKind::Fenced, why));
        }
        if !transactional && matches!(self.state, State::Completing { .. }) {
            let why = format!("the group is completing a rebalance to generation {}", self.generation);
            return Err((ClientErrorKind::Retriable, why));
        }
        Ok(())
    }

    /// A rebalance begins (or goes on): every member but `joining` must rejoin.
    fn prepare(&mut self, now_ms: i64, joining: Option<&str>) {
        if !matches!(self.state, State::Preparing { .. }) {
            self.state = State::Preparing { since_ms: now_ms };
            for m in self.members.values_mut() {
                m.joined = false;
                m.told = false;
            }
        }
        for (id, m) in &mut self.members {
            if !m.joined && !m.told && joining != Some(id.as_str()) {
                m.told = true;
                m.events.push_back(GroupEvent::RejoinNeeded);
            }
        }
    }

    /// Expires members, and forms the group once everyone has rejoined or the rebalance timed out.
    fn tick(&mut self, now_ms: i64) {
        let mut removed = Vec::new();
        for (id, m) in &self.members {
            let silent = now_ms - m.last_seen_ms;
            if m.config.alive.strong_count() > 0 {
                if silent > m.config.rebalance_timeout_ms {
                    let why = format!(
                        "the stream thread did not poll for max.poll.interval.ms ({} ms)",
                        m.config.rebalance_timeout_ms
                    );
                    removed.push((id.clone(), why));
                }
            } else if silent > m.config.session_timeout_ms {
                removed.push((id.clone(), format!("its session expired ({} ms)", m.config.session_timeout_ms)));
            }
        }
        if let State::Completing { since_ms } = self.state
            && let Some(leader) = &self.leader
            && now_ms - since_ms > self.members.get(leader).map_or(0, |m| m.config.rebalance_timeout_ms)
        {
            // Kafka drops a leader that does not assign within its rebalance timeout.
            let why = "it did not assign the group within the rebalance timeout".to_string();
            removed.push((leader.clone(), why));
        }
        if let State::Preparing { since_ms } = self.state {
            let timeout = self.members.values().map(|m| m.config.rebalance_timeout_ms).max().unwrap_or(0);
            if now_ms - since_ms > timeout {
                for (id, m) in &self.members {
                    if !m.joined && !removed.iter().any(|(r, _)| r == id) {
                        removed.push((
                            id.clone(),
                            format!("it did not rejoin within the rebalance timeout ({timeout} ms)"),
                        ));
                    }
                }
            }
        }
        if !removed.is_empty() {
            for (id, why) in removed {
                self.members.remove(&id);
                self.assignments.remove(&id);
                if self.leader.as_deref() == Some(id.as_str()) {
                    self.leader = None;
                }
                self.gone.insert(id, Gone::Removed(why));
            }
            self.prepare(now_ms, None);
        }
        if matches!(self.state, State::Preparing { .. }) && self.members.values().all(|m| m.joined) {
            self.form(now_ms);
        }
    }

    /// Every member has rejoined: the next generation, its leader told every subscription.
    fn form(&mut self, now_ms: i64) {
        if self.members.is_empty() {
            self.state = State::Empty;
            self.leader = None;
            return;
        }
        self.generation += 1;
        self.state = State::Completing { since_ms: now_ms };
        self.assignments.clear();
        let leader = match &self.leader {
            Some(id) if self.members.contains_key(id) => id.clone(),
            _ => self.members.keys().next().expect("not empty").clone(),
        };
        let members = self
            .members
            .iter()
            .map(|(id, m)| JoinedMember {
                member_id: id.clone(),
                group_instance_id: m.config.instance_id.clone(),
                subscription: m.subscription.clone(),
            })
            .collect();
        for m in self.members.values_mut() {
            m.joined = false;
            m.told = false;
        }
        let generation = self.generation;
        self.members.get_mut(&leader).expect("a member").events.push_back(GroupEvent::Lead { generation, members });
        self.leader = Some(leader);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn config(alive: &Arc<()>, instance: Option<&str>) -> MemberConfig {
        MemberConfig {
            instance_id: instance.map(str::to_string),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 60_000,
            alive: Arc::downgrade(alive),
        }
    }

    fn subscription(tag: &str) -> Subscription {
        Subscription { topics: vec!["t".into()], user_data: tag.into(), owned_partitions: Vec::new() }
    }

    fn poll(g: &mut ClassicGroup, id: &str, now: i64) -> GroupEvent {
        g.poll(id, now).unwrap()
    }

    /// Two members formed at generation 1 (a leads), both assigned.
    fn formed(alive: &Arc<()>) -> (ClassicGroup, String, String) {
        let mut g = ClassicGroup::default();
        let a = g.join(None, || "a".into(), config(alive, None), subscription("a"), 0).unwrap();
        let GroupEvent::Lead { generation: 1, .. } = poll(&mut g, &a, 0) else { panic!() };
        let b = g.join(None, || "b".into(), config(alive, None), subscription("b"), 0).unwrap();
        g.sync(&a, 1, vec![], 0); // stale: the group is preparing generation 2
        assert_eq!(poll(&mut g, &a, 1), GroupEvent::RejoinNeeded);
        g.join(Some(&a), || unreachable!(), config(alive, None), subscription("a"), 1).unwrap();
        let GroupEvent::Lead { generation: 2, members } = poll(&mut g, &a, 1) else { panic!() };
        assert_eq!(members.len(), 2);
        g.sync(&a, 2, vec![(a.clone(), Assignment::default()), (b.clone(), Assignment::default())], 1);
        assert!(matches!(poll(&mut g, &a, 1), GroupEvent::Assigned { generation: 2, .. }));
        assert!(matches!(poll(&mut g, &b, 1), GroupEvent::Assigned { generation: 2, .. }));
        (g, a, b)
    }

    #[test]
    fn a_member_that_does_not_rejoin_within_the_rebalance_timeout_is_dropped() {
        let alive = Arc::new(());
        let (mut g, a, b) = formed(&alive);
        g.leave(&a, 2);
        assert_eq!(poll(&mut g, &b, 2), GroupEvent::RejoinNeeded);
        let c = g.join(None, || "c".into(), config(&alive, None), subscription("c"), 2).unwrap();
        // b keeps polling but never rejoins: after the 60 s rebalance timeout the group forms without it.
        assert_eq!(poll(&mut g, &b, 30_000), GroupEvent::Idle);
        assert_eq!(poll(&mut g, &c, 30_000), GroupEvent::Idle, "still waiting for b");
        let GroupEvent::Lead { generation: 3, members } = poll(&mut g, &c, 60_003) else { panic!() };
        assert_eq!(members.iter().map(|m| m.member_id.as_str()).collect::<Vec<_>>(), ["c"], "the new leader");
        assert!(
            matches!(poll(&mut g, &b, 60_004), GroupEvent::Lost { reason } if reason.contains("rebalance timeout"))
        );
    }

    #[test]
    fn a_dead_member_expires_after_its_session_a_live_one_after_its_poll_interval() {
        let (alive, dead) = (Arc::new(()), Arc::new(()));
        let mut g = ClassicGroup::default();
        let a = g.join(None, || "a".into(), config(&alive, None), subscription("a"), 0).unwrap();
        let GroupEvent::Lead { generation: 1, .. } = poll(&mut g, &a, 0) else { panic!() };
        let b = g.join(None, || "b".into(), config(&dead, None), subscription("b"), 0).unwrap();
        assert_eq!(poll(&mut g, &a, 0), GroupEvent::RejoinNeeded);
        g.join(Some(&a), || unreachable!(), config(&alive, None), subscription("a"), 0).unwrap();
        let GroupEvent::Lead { generation: 2, .. } = poll(&mut g, &a, 0) else { panic!() };
        g.sync(&a, 2, vec![], 0);
        assert!(matches!(poll(&mut g, &a, 0), GroupEvent::Assigned { generation: 2, .. }));
        drop(dead);
        assert_eq!(poll(&mut g, &a, 9_000), GroupEvent::Idle, "b's session runs until 10 s");
        assert_eq!(poll(&mut g, &a, 10_001), GroupEvent::RejoinNeeded, "b expired");
        assert!(g.check(&b, 2, false).is_err());
        // a stops polling: alive, so it stays until its 60 s poll interval.
        g.join(Some(&a), || unreachable!(), config(&alive, None), subscription("a"), 10_001).unwrap();
        assert!(matches!(poll(&mut g, &a, 10_001), GroupEvent::Lead { generation: 3, .. }));
        g.sync(&a, 3, vec![], 10_001);
        assert!(g.check(&a, 3, false).is_ok());
        assert!(
            matches!(poll(&mut g, &a, 70_002), GroupEvent::Lost { reason } if reason.contains("max.poll.interval.ms"))
        );
        assert!(g.check(&a, 3, false).is_err());
    }

    #[test]
    fn a_static_member_back_takes_its_place_and_fences_the_old_instance() {
        let alive = Arc::new(());
        let mut g = ClassicGroup::default();
        let a = g.join(None, || "a".into(), config(&alive, Some("i-a")), subscription("a"), 0).unwrap();
        let GroupEvent::Lead { generation: 1, .. } = poll(&mut g, &a, 0) else { panic!() };
        let part = Assignment { partitions: vec![crate::client::TopicPartition::new("t", 0)], user_data: vec![1] };
        g.sync(&a, 1, vec![(a.clone(), part.clone())], 0);
        poll(&mut g, &a, 0);
        let back = g.join(None, || "a2".into(), config(&alive, Some("i-a")), subscription("a"), 5).unwrap();
        assert_eq!(poll(&mut g, &back, 5), GroupEvent::Assigned { generation: 1, assignment: part });
        assert!(matches!(g.poll(&a, 6), Err(Gone::Fenced(_))));
        assert!(g.check(&a, 1, false).unwrap_err().1.contains("fenced"));
        assert!(g.check(&back, 1, false).is_ok());
        assert!(matches!(
            g.join(Some(&a), || "x".into(), config(&alive, Some("i-a")), subscription("a"), 7),
            Err(Gone::Fenced(_))
        ));
    }

    #[test]
    fn a_static_member_back_while_its_leader_assigns_makes_the_group_rebalance_again() {
        let alive = Arc::new(());
        let mut g = ClassicGroup::default();
        let a = g.join(None, || "a".into(), config(&alive, Some("i-a")), subscription("a"), 0).unwrap();
        let GroupEvent::Lead { generation: 1, .. } = poll(&mut g, &a, 0) else { panic!() };
        // a restarts before it assigned generation 1, whose assignment would name its old id.
        let back = g.join(None, || "a2".into(), config(&alive, Some("i-a")), subscription("a"), 5).unwrap();
        g.sync(&a, 1, vec![(a.clone(), Assignment::default())], 5);
        let GroupEvent::Lead { generation: 2, members } = poll(&mut g, &back, 5) else { panic!() };
        assert_eq!(members.iter().map(|m| m.member_id.as_str()).collect::<Vec<_>>(), ["a2"]);
        let part = Assignment { partitions: vec![crate::client::TopicPartition::new("t", 0)], user_data: vec![1] };
        g.sync(&back, 2, vec![(back.clone(), part.clone())], 5);
        assert_eq!(poll(&mut g, &back, 5), GroupEvent::Assigned { generation: 2, assignment: part });
    }

    #[test]
    fn commits_are_refused_while_the_group_completes_a_rebalance_and_from_an_older_generation() {
        let alive = Arc::new(());
        let (mut g, a, b) = formed(&alive);
        assert!(g.check(&b, 2, false).is_ok());
        let c = g.join(None, || "c".into(), config(&alive, None), subscription("c"), 3).unwrap();
        assert!(g.check(&b, 2, false).is_ok(), "preparing: the generation is still 2");
        g.join(Some(&a), || unreachable!(), config(&alive, None), subscription("a"), 3).unwrap();
        g.join(Some(&b), || unreachable!(), config(&alive, None), subscription("b"), 3).unwrap();
        let _ = c;
        assert!(g.check(&b, 2, false).unwrap_err().1.contains("generation 2"), "the generation comes first");
        assert!(g.check(&b, 3, false).unwrap_err().1.contains("completing"));
        assert!(g.check(&b, 3, true).is_ok(), "a transaction's offsets are not held back");
        let GroupEvent::Lead { generation: 3, .. } =
            (0..4).map(|_| poll(&mut g, &a, 3)).find(|e| matches!(e, GroupEvent::Lead { .. })).unwrap()
        else {
            panic!()
        };
        g.sync(&a, 3, vec![], 3);
        assert!(g.check(&b, 2, false).unwrap_err().1.contains("generation 2"));
        assert!(g.check(&b, 3, false).is_ok());
    }

    #[test]
    fn a_leader_that_does_not_assign_within_its_rebalance_timeout_is_dropped() {
        let alive = Arc::new(());
        let (mut g, a, b) = formed(&alive);
        g.leave(&b, 2);
        assert_eq!(poll(&mut g, &a, 2), GroupEvent::RejoinNeeded);
        let c = g.join(None, || "c".into(), config(&alive, None), subscription("c"), 2).unwrap();
        g.join(Some(&a), || unreachable!(), config(&alive, None), subscription("a"), 2).unwrap();
        let GroupEvent::Lead { generation: 3, .. } = poll(&mut g, &a, 2) else { panic!() };
        // a leads but never syncs; c keeps polling.
        assert_eq!(poll(&mut g, &c, 60_000), GroupEvent::Idle);
        assert_eq!(poll(&mut g, &c, 60_003), GroupEvent::RejoinNeeded, "the leader dropped: a new rebalance");
        assert!(matches!(poll(&mut g, &a, 60_004), GroupEvent::Lost { reason } if reason.contains("did not assign")));
    }

    #[test]
    fn a_static_leader_restarted_while_the_group_forms_leads_the_next_generation() {
        let alive = Arc::new(());
        let mut g = ClassicGroup::default();
        let a = g.join(None, || "a".into(), config(&alive, Some("i-a")), subscription("a"), 0).unwrap();
        let back = g.join(None, || "a2".into(), config(&alive, Some("i-a")), subscription("a"), 1).unwrap();
        let GroupEvent::Lead { generation: 2, members } = poll(&mut g, &back, 1) else { panic!() };
        assert_eq!(members.iter().map(|m| m.member_id.as_str()).collect::<Vec<_>>(), ["a2"]);
        assert!(matches!(g.poll(&a, 1), Err(Gone::Fenced(_))));
        g.sync(&back, 2, vec![(back.clone(), Assignment::default())], 1);
        assert!(matches!(poll(&mut g, &back, 1), GroupEvent::Assigned { generation: 2, .. }));
    }
}
