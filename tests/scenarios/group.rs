//! The library's own consumer-group member (`ClientSupplier::group_member`: Kafka's classic group protocol,
//! the leader assigning), run against the real Kafka (tests/kafka_broker.rs) and the embedded broker
//! (tests/embedded_broker.rs): joining, the leader's assignment reaching every member, a member joining
//! or leaving making the others rejoin, a static member restarted within its session moving nothing, a
//! member that stops polling leaving, and offsets committed as a member of a generation.

use std::time::{Duration, Instant};

use kstreams::client::{
    Assignment, ClientErrorKind, GroupEvent, GroupMember, GroupMetadata, JoinedMember, OffsetAndMetadata, Subscription,
    TopicPartition,
};

use crate::kafka;

/// How long a scenario waits for what must happen.
const WAIT: Duration = Duration::from_secs(30);

/// A member of `group`, static when `instance` is given, with heartbeats fast enough that a rebalance
/// shows within a second; `poll_interval` is its `max.poll.interval.ms`.
fn member(group: &str, instance: Option<&str>, poll_interval: Option<u64>) -> anyhow::Result<Box<dyn GroupMember>> {
    let mut config = kafka::config(group);
    config.consumer_overrides.insert("heartbeat.interval.ms".into(), "200".into());
    config.consumer_overrides.insert("session.timeout.ms".into(), "30000".into());
    if let Some(id) = instance {
        config.consumer_overrides.insert("group.instance.id".into(), id.into());
    }
    if let Some(ms) = poll_interval {
        config.consumer_overrides.insert("max.poll.interval.ms".into(), ms.to_string());
    }
    Ok(kafka::supplier().group_member(&config, &kafka::unique("member"))?)
}

fn subscription(tag: &str, owned: &[TopicPartition]) -> Subscription {
    Subscription { topics: vec!["input".into()], user_data: tag.as_bytes().to_vec(), owned_partitions: owned.to_vec() }
}

fn partitions(numbers: &[i32]) -> Vec<TopicPartition> {
    numbers.iter().map(|p| TopicPartition::new("input", *p)).collect()
}

fn assignment(numbers: &[i32], tag: &str) -> Assignment {
    Assignment { partitions: partitions(numbers), user_data: tag.as_bytes().to_vec() }
}

/// The next thing the group does for `member`; fails after [`WAIT`].
fn next_event(member: &mut dyn GroupMember, what: &str) -> anyhow::Result<GroupEvent> {
    let deadline = Instant::now() + WAIT;
    loop {
        match member.poll(Duration::from_millis(100))? {
            GroupEvent::Idle => anyhow::ensure!(Instant::now() < deadline, "{what}: nothing after {WAIT:?}"),
            event => return Ok(event),
        }
    }
}

fn lead(member: &mut dyn GroupMember, what: &str) -> anyhow::Result<(i32, Vec<JoinedMember>)> {
    match next_event(member, what)? {
        GroupEvent::Lead { generation, members } => Ok((generation, members)),
        other => anyhow::bail!("{what}: expected to lead, got {other:?}"),
    }
}

fn assigned(member: &mut dyn GroupMember, what: &str) -> anyhow::Result<(i32, Assignment)> {
    match next_event(member, what)? {
        GroupEvent::Assigned { generation, assignment } => Ok((generation, assignment)),
        other => anyhow::bail!("{what}: expected an assignment, got {other:?}"),
    }
}

/// Nothing happens to `member` for `period`.
fn quiet(member: &mut dyn GroupMember, period: Duration, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + period;
    while Instant::now() < deadline {
        let event = member.poll(Duration::from_millis(100))?;
        anyhow::ensure!(event == GroupEvent::Idle, "{what}: {event:?}");
    }
    Ok(())
}

/// Two members, `a` leading, partitions 0 and 1 shared between them; their ids and the generation.
struct TwoMembers {
    a: Box<dyn GroupMember>,
    b: Box<dyn GroupMember>,
    a_id: String,
    b_id: String,
    generation: i32,
}

fn two_members(group: &str, static_members: bool) -> anyhow::Result<TwoMembers> {
    let instance = |id| static_members.then_some(id);
    let mut a = member(group, instance("instance-a"), None)?;
    a.join(subscription("a", &[]))?;
    let (first, members) = lead(&mut *a, "the first member")?;
    anyhow::ensure!(members.len() == 1, "{members:?}");
    let a_id = members[0].member_id.clone();
    assert_eq!(members[0].subscription, subscription("a", &[]));
    assert_eq!(members[0].group_instance_id.as_deref(), instance("instance-a"));
    a.sync(first, vec![(a_id.clone(), assignment(&[0, 1], "all for a"))])?;
    assert_eq!(assigned(&mut *a, "the leader's own part")?, (first, assignment(&[0, 1], "all for a")));
    let expected = GroupMetadata::new(group, &a_id, first);
    let expected = match instance("instance-a") {
        Some(id) => expected.with_group_instance_id(id),
        None => expected,
    };
    assert_eq!(a.group_metadata(), Some(expected));

    let mut b = member(group, instance("instance-b"), None)?;
    b.join(subscription("b", &[]))?;
    assert_eq!(next_event(&mut *a, "the leader hears of the newcomer")?, GroupEvent::RejoinNeeded);
    a.join(subscription("a", &partitions(&[0, 1])))?;
    let (generation, members) = lead(&mut *a, "the leader of the second generation")?;
    assert!(generation > first, "{generation} after {first}");
    let b_id = match &members[..] {
        [x, y] if x.member_id == a_id => {
            assert_eq!(x.subscription, subscription("a", &partitions(&[0, 1])), "the owned partitions come along");
            assert_eq!(y.subscription, subscription("b", &[]));
            y.member_id.clone()
        }
        [y, x] if x.member_id == a_id => y.member_id.clone(),
        other => anyhow::bail!("two members, the leader among them: {other:?}"),
    };
    a.sync(generation, vec![(a_id.clone(), assignment(&[0], "a")), (b_id.clone(), assignment(&[1], "b"))])?;
    assert_eq!(assigned(&mut *a, "the leader's part")?, (generation, assignment(&[0], "a")));
    assert_eq!(assigned(&mut *b, "the newcomer's part")?, (generation, assignment(&[1], "b")));
    Ok(TwoMembers { a, b, a_id, b_id, generation })
}

/// The leader assigns every member its part from their subscriptions; a newcomer makes the group
/// rebalance, its leader staying.
pub(crate) fn members_join_and_the_leader_assigns_each_its_part() -> anyhow::Result<()> {
    let group = kafka::unique("group");
    let TwoMembers { mut a, mut b, b_id, generation, .. } = two_members(&group, false)?;
    assert_eq!(b.group_metadata(), Some(GroupMetadata::new(&group, &b_id, generation)));
    a.close();
    b.close();
    Ok(())
}

/// A member that closes leaves at once: the others rejoin long before its session would have expired.
pub(crate) fn a_member_that_leaves_makes_the_others_rejoin_at_once() -> anyhow::Result<()> {
    let group = kafka::unique("group");
    let topic = kafka::unique("committed");
    kafka::create_topics(&[(&topic, 1)]);
    let offset = |n| [(TopicPartition::new(&topic, 0), OffsetAndMetadata::new(n))];
    let TwoMembers { mut a, mut b, a_id, generation, .. } = two_members(&group, false)?;
    let left = Instant::now();
    b.close();
    assert_eq!(next_event(&mut *a, "the one left")?, GroupEvent::RejoinNeeded);
    assert!(left.elapsed() < Duration::from_secs(15), "{:?}: within the 30 s session", left.elapsed());
    a.commit(&offset(1))?; // the group prepares the next generation: the current one still commits
    a.join(subscription("a", &partitions(&[0])))?;
    let (next, members) = lead(&mut *a, "alone again")?;
    assert!(next > generation);
    assert_eq!(members.iter().map(|m| m.member_id.as_str()).collect::<Vec<_>>(), [a_id.as_str()]);
    // The group has formed the next generation: a commit as a member of the last one is fenced
    // (ILLEGAL_GENERATION), until the member has its part of the next.
    let error = a.commit(&offset(2)).expect_err("a commit of the previous generation");
    assert_eq!(error.kind, ClientErrorKind::Fenced, "{error}");
    a.sync(next, vec![(a_id.clone(), assignment(&[0, 1], "a"))])?;
    assigned(&mut *a, "its part of the next generation")?;
    a.commit(&offset(3))?;
    assert_eq!(a.committed(&[TopicPartition::new(&topic, 0)])?.values().next(), Some(&OffsetAndMetadata::new(3)));
    a.close();
    Ok(())
}

/// A static member (`group.instance.id`) restarted within its session gets its part back in the same
/// generation, and the other member never hears of it: a rolling restart moves nothing (KIP-345).
pub(crate) fn a_static_member_restarted_within_its_session_moves_nothing() -> anyhow::Result<()> {
    let group = kafka::unique("group");
    let TwoMembers { mut a, mut b, generation, .. } = two_members(&group, true)?;
    b.close();
    let mut restarted = member(&group, Some("instance-b"), None)?;
    restarted.join(subscription("b", &[]))?;
    assert_eq!(assigned(&mut *restarted, "the restarted member")?, (generation, assignment(&[1], "b")));
    quiet(&mut *a, Duration::from_secs(2), "the leader while the other restarts")?;
    a.close();
    restarted.close();
    Ok(())
}

/// A member whose stream thread stops polling for `max.poll.interval.ms` leaves the group and hears
/// that it lost its part; it commits nothing more, and joins again as a new member.
pub(crate) fn a_member_that_stops_polling_leaves_and_loses_its_part() -> anyhow::Result<()> {
    let group = kafka::unique("group");
    let mut a = member(&group, None, Some(2_000))?;
    a.join(subscription("a", &[]))?;
    let (generation, members) = lead(&mut *a, "the member")?;
    a.sync(generation, vec![(members[0].member_id.clone(), assignment(&[0], "a"))])?;
    assigned(&mut *a, "its part")?;
    std::thread::sleep(Duration::from_millis(3_500));
    match next_event(&mut *a, "the member that stopped polling")? {
        GroupEvent::Lost { reason } => assert!(reason.contains("max.poll.interval.ms"), "{reason}"),
        other => anyhow::bail!("expected Lost, got {other:?}"),
    }
    assert_eq!(a.group_metadata(), None);
    let error =
        a.commit(&[(TopicPartition::new("input", 0), OffsetAndMetadata::new(1))]).expect_err("out of the group");
    assert_eq!(error.kind, ClientErrorKind::Fenced, "{error}");
    a.join(subscription("a", &[]))?;
    let (next, members) = lead(&mut *a, "the member back")?;
    assert!(next > generation);
    assert_ne!(members[0].member_id, a.group_metadata().map(|m| m.member_id).unwrap_or_default());
    a.close();
    Ok(())
}

/// Offsets committed by a member of the current generation are the group's, with their metadata.
pub(crate) fn a_member_commits_offsets_in_its_generation() -> anyhow::Result<()> {
    let group = kafka::unique("group");
    let topic = kafka::unique("input");
    kafka::create_topics(&[(&topic, 2)]);
    let mut a = member(&group, None, None)?;
    a.join(Subscription { topics: vec![topic.clone()], ..Subscription::default() })?;
    let (generation, members) = lead(&mut *a, "the member")?;
    let both = vec![TopicPartition::new(&topic, 0), TopicPartition::new(&topic, 1)];
    let all = Assignment { partitions: both.clone(), user_data: Vec::new() };
    a.sync(generation, vec![(members[0].member_id.clone(), all)])?;
    assigned(&mut *a, "its part")?;
    assert!(a.committed(&both)?.is_empty(), "nothing committed yet");
    a.commit(&[(both[0].clone(), OffsetAndMetadata::with_metadata(5, "task 0_0"))])?;
    let committed = a.committed(&both)?;
    assert_eq!(committed.len(), 1, "{committed:?}");
    assert_eq!(committed[&both[0]], OffsetAndMetadata::with_metadata(5, "task 0_0"));
    a.close();
    Ok(())
}

/// Offsets sent in a transaction with the member's own membership commit with it; once the group has
/// moved to a newer generation, the older membership is refused as fenced (KIP-447 under the library's
/// own group member: what keeps a zombie's offsets out under exactly_once_v2).
pub(crate) fn a_transaction_commits_offsets_only_as_a_member_of_the_current_generation() -> anyhow::Result<()> {
    let group = kafka::unique("group");
    let topic = kafka::unique("input");
    kafka::create_topics(&[(&topic, 1)]);
    let tp = TopicPartition::new(&topic, 0);
    let mut config = kafka::config(&kafka::unique("producer"));
    config.processing_guarantee = kstreams::config::ProcessingGuarantee::ExactlyOnceV2;
    let mut producer = kafka::supplier().producer(&config, "txn-producer", Some(&kafka::unique("txn-id")))?;
    producer.init_transactions(WAIT)?;

    let mut a = member(&group, None, None)?;
    a.join(Subscription { topics: vec![topic.clone()], ..Subscription::default() })?;
    let (generation, members) = lead(&mut *a, "the first member")?;
    let a_id = members[0].member_id.clone();
    let all = Assignment { partitions: vec![tp.clone()], user_data: Vec::new() };
    a.sync(generation, vec![(a_id.clone(), all)])?;
    assigned(&mut *a, "its part")?;
    let old = a.group_metadata().expect("a member with an assignment");
    assert_eq!(old, GroupMetadata::new(&group, &a_id, generation));
    producer.begin_transaction()?;
    producer.send_offsets_to_transaction(&[(tp.clone(), OffsetAndMetadata::new(3))], &old, WAIT)?;
    producer.commit_transaction(WAIT)?;
    assert_eq!(a.committed(std::slice::from_ref(&tp))?[&tp], OffsetAndMetadata::new(3));

    // A second member: the group moves to a newer generation.
    let mut b = member(&group, None, None)?;
    b.join(Subscription { topics: vec![topic.clone()], ..Subscription::default() })?;
    assert_eq!(next_event(&mut *a, "the leader hears of the newcomer")?, GroupEvent::RejoinNeeded);
    a.join(Subscription {
        topics: vec![topic.clone()],
        owned_partitions: vec![tp.clone()],
        ..Subscription::default()
    })?;
    let (next, members) = lead(&mut *a, "the leader of the next generation")?;
    assert!(next > generation && members.len() == 2, "{next} {members:?}");
    let assignments = members
        .iter()
        .map(|m| {
            let partitions = if m.member_id == a_id { vec![tp.clone()] } else { Vec::new() };
            (m.member_id.clone(), Assignment { partitions, user_data: Vec::new() })
        })
        .collect();
    a.sync(next, assignments)?;
    assigned(&mut *a, "the leader's part")?;
    assigned(&mut *b, "the newcomer's part")?;

    producer.begin_transaction()?;
    let error = producer
        .send_offsets_to_transaction(&[(tp.clone(), OffsetAndMetadata::new(9))], &old, WAIT)
        .expect_err("the older generation's membership");
    assert_eq!(error.kind, ClientErrorKind::Fenced, "{error}");
    producer.abort_transaction(WAIT)?;
    producer.begin_transaction()?;
    let current = a.group_metadata().expect("a member of the newer generation");
    assert_eq!(current.generation_id, next);
    producer.send_offsets_to_transaction(&[(tp.clone(), OffsetAndMetadata::new(5))], &current, WAIT)?;
    producer.commit_transaction(WAIT)?;
    assert_eq!(a.committed(std::slice::from_ref(&tp))?[&tp], OffsetAndMetadata::new(5), "never the fenced 9");
    a.close();
    b.close();
    Ok(())
}

/// A consumer the group member hands partitions to (no subscription): it reads each from the offset it
/// is given, or from the group's committed one, else the earliest; it stops reading what it gives up,
/// and takes a partition back from a new offset.
pub(crate) fn an_assigned_consumer_reads_from_the_offsets_it_is_given() -> anyhow::Result<()> {
    use std::sync::Arc;

    use kstreams::client::{CommittedOffsets, OffsetCommitter, RebalanceListener};
    struct NoCallbacks;
    impl RebalanceListener for NoCallbacks {
        fn on_partitions_revoked(&self, _: &[TopicPartition], _: &dyn OffsetCommitter) {
            panic!("an assigned consumer has no rebalance")
        }
        fn on_partitions_lost(&self, _: &[TopicPartition]) {
            panic!("an assigned consumer has no rebalance")
        }
        fn on_partitions_assigned(&self, _: &[TopicPartition], _: &CommittedOffsets) {
            panic!("an assigned consumer has no rebalance")
        }
    }
    let group = kafka::unique("group");
    let topic = kafka::unique("input");
    kafka::create_topics(&[(&topic, 3)]);
    for p in 0..3 {
        kafka::produce_to(&topic, p, (0..10).map(|i| (None, Some(format!("{p}-{i}").into_bytes()))));
    }
    let (p0, p1, p2) = (TopicPartition::new(&topic, 0), TopicPartition::new(&topic, 1), TopicPartition::new(&topic, 2));
    // The group committed 6 on partition 2 (through the member).
    let mut a = member(&group, None, None)?;
    a.join(Subscription { topics: vec![topic.clone()], ..Subscription::default() })?;
    let (generation, members) = lead(&mut *a, "the member")?;
    let all = Assignment { partitions: vec![p0.clone(), p1.clone(), p2.clone()], user_data: Vec::new() };
    a.sync(generation, vec![(members[0].member_id.clone(), all)])?;
    assigned(&mut *a, "its part")?;
    a.commit(&[(p2.clone(), OffsetAndMetadata::new(6))])?;

    let config = kafka::config(&group);
    let mut consumer = kafka::supplier().consumer(&config, &kafka::unique("fetcher"), Arc::new(NoCallbacks))?;
    consumer.assign(&[(p0.clone(), Some(3)), (p1.clone(), None), (p2.clone(), None)])?;
    let values = |consumer: &mut dyn kstreams::client::StreamsConsumer, n: usize| -> anyhow::Result<Vec<String>> {
        let deadline = Instant::now() + WAIT;
        let mut records = Vec::new();
        while records.len() < n {
            anyhow::ensure!(Instant::now() < deadline, "{n} records: read {records:?}");
            consumer.poll_batch(Duration::from_millis(100), 1_000, &mut records)?;
        }
        let mut v: Vec<String> =
            records.iter().map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into()).collect();
        v.sort();
        Ok(v)
    };
    let read = values(&mut *consumer, 7 + 10 + 4)?;
    let expected: Vec<String> = {
        let mut e: Vec<String> = (3..10)
            .map(|i| format!("0-{i}"))
            .chain((0..10).map(|i| format!("1-{i}")))
            .chain((6..10).map(|i| format!("2-{i}")))
            .collect();
        e.sort();
        e
    };
    assert_eq!(read, expected, "partition 0 from 3, 1 from the earliest, 2 from the group's 6");

    consumer.unassign(&[p0.clone(), p1.clone()])?;
    kafka::produce_to(&topic, 0, [(None, Some(b"0-late".to_vec()))]);
    kafka::produce_to(&topic, 2, [(None, Some(b"2-late".to_vec()))]);
    assert_eq!(values(&mut *consumer, 1)?, ["2-late"], "nothing more of the partitions given up");
    consumer.assign(&[(p0.clone(), Some(9))])?;
    assert_eq!(values(&mut *consumer, 2)?, ["0-9", "0-late"], "partition 0 again, from 9");
    consumer.close();
    a.close();
    Ok(())
}

/// A member joins while the leader has not handed out its generation's assignment yet: the leader hears
/// it must rejoin, its assignment of the stale generation changes nothing, its heartbeats keep it in the
/// group past its session timeout while it takes its time, and the next generation has both members.
pub(crate) fn a_leader_told_to_rejoin_before_it_assigned_stays_in_the_group_and_rejoins() -> anyhow::Result<()> {
    let group = kafka::unique("group");
    let mut config = kafka::config(&group);
    for (key, value) in [("heartbeat.interval.ms", "200"), ("session.timeout.ms", "6000")] {
        config.consumer_overrides.insert(key.into(), value.into());
    }
    let supplier = kafka::supplier();
    let mut a = supplier.group_member(&config, &kafka::unique("member"))?;
    a.join(subscription("a", &[]))?;
    let (first, members) = lead(&mut *a, "the first member")?;
    let a_id = members[0].member_id.clone();
    let mut b = supplier.group_member(&config, &kafka::unique("member"))?;
    b.join(subscription("b", &[]))?;
    assert_eq!(next_event(&mut *a, "the leader, before it assigned")?, GroupEvent::RejoinNeeded);
    a.sync(first, vec![(a_id.clone(), assignment(&[0, 1], "stale"))])?;
    // Past the session timeout before rejoining: the heartbeats keep the leader in.
    let deadline = Instant::now() + Duration::from_millis(7_000);
    while Instant::now() < deadline {
        let event = a.poll(Duration::from_millis(100))?;
        assert!(matches!(event, GroupEvent::Idle), "nothing from a stale generation: {event:?}");
    }
    a.join(subscription("a", &[]))?;
    let (next, members) = lead(&mut *a, "the leader of both")?;
    assert!(next > first);
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(members.iter().any(|m| m.member_id == a_id), "the leader kept its id: {members:?}");
    let b_id = members.iter().find(|m| m.member_id != a_id).expect("two").member_id.clone();
    a.sync(next, vec![(a_id, assignment(&[0], "a")), (b_id, assignment(&[1], "b"))])?;
    assert_eq!(assigned(&mut *a, "the leader")?, (next, assignment(&[0], "a")));
    assert_eq!(assigned(&mut *b, "the other")?, (next, assignment(&[1], "b")));
    a.close();
    b.close();
    Ok(())
}
