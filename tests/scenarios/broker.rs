//! Broker semantics through the client seam, run against the real Kafka (tests/kafka_broker.rs) and
//! against the embedded broker (tests/embedded_broker.rs): what both brokers must do alike, checked by
//! one suite, so the embedded broker cannot drift from Kafka (Kafka is the reference). Offsets and
//! records, committed offsets, group assignment, transactions under `read_committed`, fencing, and
//! offsets committed in a transaction (and refused from a membership the group does not have).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kstreams::client::{
    ClientError, ClientErrorKind, CommittedOffsets, GroupMetadata, OffsetAndMetadata, OffsetCommitter,
    RebalanceListener, RestoreConsumer, StreamsConsumer, StreamsProducer, TopicPartition,
};
use kstreams::config::{ProcessingGuarantee, StreamsConfig};
use kstreams::record::{Headers, ProducedRecord, RawRecord};

use crate::kafka;

/// How long a scenario waits for what must happen (a rebalance, a record, a marker).
const WAIT: Duration = Duration::from_secs(30);

/// The partitions a consumer owns, as its rebalance callbacks tell them, and the committed offsets the
/// last assignment came with.
#[derive(Default)]
struct Owned(Mutex<BTreeSet<TopicPartition>>, Mutex<CommittedOffsets>);

impl Owned {
    fn get(&self) -> BTreeSet<TopicPartition> {
        self.0.lock().unwrap().clone()
    }

    fn committed(&self, tp: &TopicPartition) -> Option<OffsetAndMetadata> {
        self.1.lock().unwrap().get(tp).cloned()
    }

    fn remove(&self, partitions: &[TopicPartition]) {
        self.0.lock().unwrap().retain(|tp| !partitions.contains(tp));
    }
}

impl RebalanceListener for Owned {
    fn on_partitions_revoked(&self, partitions: &[TopicPartition], _: &dyn OffsetCommitter) {
        self.remove(partitions);
    }

    fn on_partitions_lost(&self, partitions: &[TopicPartition]) {
        self.remove(partitions);
    }

    fn on_partitions_assigned(&self, partitions: &[TopicPartition], committed: &CommittedOffsets) {
        self.0.lock().unwrap().extend(partitions.iter().cloned());
        self.1.lock().unwrap().extend(committed.iter().map(|(tp, c)| (tp.clone(), c.clone())));
    }
}

/// How a consumer reads transactions.
#[derive(Debug, Clone, Copy)]
enum Isolation {
    /// at_least_once with no `isolation.level`: `read_uncommitted`, as in Kafka Streams (the
    /// runtime's clients set it; librdkafka's own default would be `read_committed`).
    Default,
    /// exactly_once_v2, under which the runtime's clients read `read_committed`.
    ExactlyOnce,
    /// `isolation.level=read_uncommitted`, set explicitly.
    ReadUncommitted,
}

/// Settings for clients of `group` reading as `isolation` says, with heartbeats fast enough that a
/// rebalance takes well under a second on Kafka.
fn config(group: &str, isolation: Isolation) -> StreamsConfig {
    let mut config = kafka::config(group);
    config.consumer_overrides.insert("heartbeat.interval.ms".into(), "200".into());
    match isolation {
        Isolation::Default => {}
        Isolation::ExactlyOnce => config.processing_guarantee = ProcessingGuarantee::ExactlyOnceV2,
        Isolation::ReadUncommitted => {
            config.consumer_overrides.insert("isolation.level".into(), "read_uncommitted".into());
        }
    }
    config
}

/// A member of `group` subscribed to `topics`, and what it owns.
fn consumer(
    group: &str,
    topics: &[&str],
    isolation: Isolation,
) -> anyhow::Result<(Box<dyn StreamsConsumer>, Arc<Owned>)> {
    let owned = Arc::new(Owned::default());
    let mut consumer =
        kafka::supplier().consumer(&config(group, isolation), &kafka::unique("member"), owned.clone())?;
    consumer.subscribe(&topics.iter().map(|t| t.to_string()).collect::<Vec<_>>())?;
    Ok((consumer, owned))
}

/// Polls until `done` says the records so far are enough; fails after [`WAIT`].
fn poll_until(
    consumer: &mut dyn StreamsConsumer,
    what: &str,
    mut done: impl FnMut(&[RawRecord]) -> bool,
) -> anyhow::Result<Vec<RawRecord>> {
    let deadline = Instant::now() + WAIT;
    let mut records = Vec::new();
    while !done(&records) {
        anyhow::ensure!(Instant::now() < deadline, "{what}: not there after {WAIT:?}; read {records:?}");
        consumer.poll_batch(Duration::from_millis(100), 1_000, &mut records)?;
    }
    Ok(records)
}

/// Polls for `period` and returns what arrived (to check that nothing more does).
fn poll_for(consumer: &mut dyn StreamsConsumer, period: Duration) -> anyhow::Result<Vec<RawRecord>> {
    let deadline = Instant::now() + period;
    let mut records = Vec::new();
    while Instant::now() < deadline {
        consumer.poll_batch(Duration::from_millis(100), 1_000, &mut records)?;
    }
    Ok(records)
}

fn transactional_producer(id: &str) -> anyhow::Result<Box<dyn StreamsProducer>> {
    let config = config(&kafka::unique("producer"), Isolation::ExactlyOnce);
    let mut producer = kafka::supplier().producer(&config, "test-txn-producer", Some(id))?;
    producer.init_transactions(WAIT)?;
    Ok(producer)
}

fn restore_consumer(isolation: Isolation) -> anyhow::Result<Box<dyn RestoreConsumer>> {
    let config = config(&kafka::unique("restore"), isolation);
    Ok(kafka::supplier().restore_consumer(&config, "test-restore")?)
}

/// A record for partition `partition` of `topic` with value `value` (and key `k-<value>`).
fn record(topic: &str, partition: i32, value: &str) -> ProducedRecord {
    ProducedRecord {
        topic: topic.into(),
        partition: Some(partition),
        key: Some(format!("k-{value}").into_bytes()),
        value: Some(value.as_bytes().to_vec()),
        timestamp: 1_700_000_000_000,
        headers: Headers::new(),
    }
}

/// Begins a transaction and writes `values` to partition 0 of `topic` in it, leaving it open.
fn transaction(producer: &mut dyn StreamsProducer, topic: &str, values: &[&str]) -> anyhow::Result<()> {
    producer.begin_transaction()?;
    for v in values {
        producer.send(&record(topic, 0, v))?;
    }
    producer.flush(WAIT)?;
    Ok(())
}

fn values(records: &[RawRecord]) -> Vec<String> {
    records.iter().map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()).collect()
}

fn offsets(records: &[RawRecord]) -> Vec<i64> {
    records.iter().map(|r| r.offset).collect()
}

/// Records produced to an explicit partition get offsets 0, 1, 2, … there, and come back with the key,
/// value (null ones too), timestamp (as given, even out of order) and headers (in order, repeated names
/// and null values included) they were sent with. Other partitions stay empty.
pub(crate) fn offsets_are_contiguous_from_zero_and_records_keep_key_value_timestamp_and_headers() -> anyhow::Result<()>
{
    let topic = kafka::unique("records");
    kafka::create_topics(&[(&topic, 2)]);
    let headers = |i: usize| -> Headers {
        match i % 3 {
            0 => Headers::new(),
            1 => [("trace", Some(format!("t{i}").into_bytes())), ("trace", Some(b"again".to_vec()))]
                .into_iter()
                .collect(),
            _ => [("null-value", None), ("n", Some(vec![0, 1, 2, 255]))].into_iter().collect(),
        }
    };
    let sent: Vec<ProducedRecord> = (0..12)
        .map(|i| ProducedRecord {
            topic: topic.as_str().into(),
            partition: Some(1),
            key: (i % 4 != 3).then(|| format!("key-{i}").into_bytes()),
            value: (i % 5 != 4).then(|| format!("value-{i}").into_bytes()),
            // Not in offset order: the broker keeps the producer's timestamps (CreateTime).
            timestamp: 1_700_000_000_000 + ((i as i64 * 7) % 12) * 1_000,
            headers: headers(i),
        })
        .collect();
    let mut producer = kafka::supplier().producer(&config("producer", Isolation::Default), "test-producer", None)?;
    for r in &sent {
        producer.send(r)?;
    }
    producer.flush(WAIT)?;
    let tp1 = TopicPartition::new(&topic, 1);
    assert_eq!(producer.acked_offset(&tp1), Some(11), "the last acknowledged offset on {tp1}");
    assert_eq!(producer.acked_offset(&TopicPartition::new(&topic, 0)), None, "nothing sent to partition 0");

    let mut restore = restore_consumer(Isolation::Default)?;
    assert_eq!(restore.watermarks(&tp1)?, (0, 12), "offsets of {tp1}");
    assert_eq!(restore.watermarks(&TopicPartition::new(&topic, 0))?, (0, 0), "offsets of the empty partition");

    let (mut consumer, _) = consumer(&kafka::unique("fresh"), &[&topic], Isolation::Default)?;
    let read = poll_until(&mut *consumer, "every record", |r| r.len() >= sent.len())?;
    consumer.close();
    assert_eq!(offsets(&read), (0..12).collect::<Vec<i64>>(), "contiguous offsets from 0");
    for (got, want) in read.iter().zip(&sent) {
        let at = format!("offset {}", got.offset);
        assert_eq!((&*got.topic, got.partition), (topic.as_str(), 1), "{at}");
        assert_eq!(got.key, want.key, "key at {at}");
        assert_eq!(got.value, want.value, "value at {at}");
        assert_eq!(got.timestamp, want.timestamp, "timestamp at {at}");
        assert_eq!(got.headers, want.headers, "headers at {at}");
    }

    let mut read_back = Vec::new();
    let last = restore.read(&tp1, 3, 12, 4, &mut |batch| {
        read_back.extend_from_slice(batch);
        Ok(())
    })?;
    assert_eq!(last, Some(11), "the restore consumer's last offset read");
    assert_eq!(read_back, read[3..], "the restore consumer reads the same records from offset 3");

    // A store that fails stops the read at once with its error, even while the reader still waits for
    // records (here up to offset 100, which the partition never reaches).
    let started = Instant::now();
    let mut batches = 0;
    let failed = restore.read(&tp1, 0, 100, 4, &mut |_| {
        batches += 1;
        Err(ClientError::new("apply", "the store is full", ClientErrorKind::Fatal).into())
    });
    let error = format!("{:?}", failed.expect_err("the store's error"));
    assert!(error.contains("the store is full"), "the store's error is the one reported: {error}");
    assert_eq!(batches, 1, "no batch after the failed one");
    assert!(started.elapsed() < Duration::from_secs(10), "stopped after {:?}", started.elapsed());
    Ok(())
}

/// A member commits an offset and leaves; the next member of the group starts at that offset, while a
/// new group starts at the earliest offset.
pub(crate) fn a_new_member_starts_at_the_offset_its_group_committed() -> anyhow::Result<()> {
    let topic = kafka::unique("committed");
    kafka::create_topics(&[(&topic, 1)]);
    kafka::produce(&topic, (0..10).map(|i| (None, Some(format!("v{i}").into_bytes()))));
    let group = kafka::unique("group");
    let tp = TopicPartition::new(&topic, 0);

    let (mut first, owned) = consumer(&group, &[&topic], Isolation::Default)?;
    let read = poll_until(&mut *first, "the first records", |r| !r.is_empty())?;
    assert_eq!(read[0].offset, 0, "a new group starts at the earliest offset");
    assert!(owned.get().contains(&tp), "the only member owns {tp}");
    first.commit(&[(tp.clone(), OffsetAndMetadata::new(4))])?;
    first.close();

    let (mut second, _) = consumer(&group, &[&topic], Isolation::Default)?;
    let read = poll_until(&mut *second, "records after the committed offset", |r| r.len() >= 6)?;
    assert_eq!(offsets(&read), (4..10).collect::<Vec<i64>>(), "the next member starts at the committed offset");
    assert_eq!(values(&read)[0], "v4");
    second.close();

    let (mut other, _) = consumer(&kafka::unique("group"), &[&topic], Isolation::Default)?;
    let read = poll_until(&mut *other, "every record", |r| r.len() >= 10)?;
    assert_eq!(read[0].offset, 0, "another group has no committed offset: it starts at the earliest");
    other.close();
    Ok(())
}

/// Two members subscribed to two topics of three partitions each: together they own every partition
/// exactly once, and each owns the same partition numbers of both topics (the range assignor's
/// co-partitioning). When one leaves, the other owns everything.
pub(crate) fn two_members_share_co_partitioned_topics_by_range() -> anyhow::Result<()> {
    let (left, right) = (kafka::unique("left"), kafka::unique("right"));
    kafka::create_topics(&[(&left, 3), (&right, 3)]);
    let all: BTreeSet<TopicPartition> =
        (0..3).flat_map(|p| [TopicPartition::new(&left, p), TopicPartition::new(&right, p)]).collect();
    let group = kafka::unique("group");
    let (mut a, owned_a) = consumer(&group, &[&left, &right], Isolation::Default)?;
    let (mut b, owned_b) = consumer(&group, &[&left, &right], Isolation::Default)?;

    // Both must keep polling: a member gives up its partitions, and learns its new ones, in its polls.
    let deadline = Instant::now() + WAIT;
    let mut sink = Vec::new();
    let (mine_a, mine_b) = loop {
        a.poll_batch(Duration::from_millis(50), 100, &mut sink)?;
        b.poll_batch(Duration::from_millis(50), 100, &mut sink)?;
        let (mine_a, mine_b) = (owned_a.get(), owned_b.get());
        let shared = !mine_a.is_empty() && !mine_b.is_empty();
        if shared && mine_a.is_disjoint(&mine_b) && mine_a.union(&mine_b).cloned().collect::<BTreeSet<_>>() == all {
            break (mine_a, mine_b);
        }
        anyhow::ensure!(Instant::now() < deadline, "no shared assignment after {WAIT:?}: {mine_a:?} and {mine_b:?}");
    };
    let numbers = |owned: &BTreeSet<TopicPartition>, topic: &str| -> Vec<i32> {
        owned.iter().filter(|tp| &*tp.topic == topic).map(|tp| tp.partition).collect()
    };
    for (name, mine) in [("a", &mine_a), ("b", &mine_b)] {
        assert_eq!(numbers(mine, &left), numbers(mine, &right), "member {name} owns the same partitions of both");
    }
    let mut sizes = [mine_a.len(), mine_b.len()];
    sizes.sort();
    assert_eq!(sizes, [2, 4], "by range, one member takes partitions 0 and 1 of each topic, the other 2");

    b.close();
    let deadline = Instant::now() + WAIT;
    while owned_a.get() != all {
        anyhow::ensure!(Instant::now() < deadline, "after b left, a owns only {:?}", owned_a.get());
        a.poll_batch(Duration::from_millis(50), 100, &mut sink)?;
    }
    a.close();
    Ok(())
}

/// One transaction commits, one aborts, one stays open. `read_committed` readers (under exactly_once_v2)
/// see the committed records only, and stop at the open transaction's first offset (the last stable
/// offset). The restore consumer reports the high watermark as the end under either isolation, and a
/// `read_committed` restore to it waits for the open transaction to end. Markers take offsets, as in
/// Kafka: a `read_uncommitted` reader sees the gaps, and the aborted records.
pub(crate) fn read_committed_sees_committed_transactions_only_and_stops_at_the_last_stable_offset() -> anyhow::Result<()>
{
    let topic = kafka::unique("txn");
    kafka::create_topics(&[(&topic, 1)]);
    let tp = TopicPartition::new(&topic, 0);
    let mut producer = transactional_producer(&kafka::unique("txn-id"))?;
    transaction(&mut *producer, &topic, &["a1", "a2"])?; // offsets 0, 1; commit marker 2
    producer.commit_transaction(WAIT)?;
    transaction(&mut *producer, &topic, &["b1", "b2"])?; // offsets 3, 4; abort marker 5
    producer.abort_transaction(WAIT)?;
    transaction(&mut *producer, &topic, &["c1", "c2"])?; // offsets 6, 7, still open

    let committed = [Isolation::ExactlyOnce];
    let mut restores = Vec::new();
    for isolation in committed {
        let mut restore = restore_consumer(isolation)?;
        assert_eq!(restore.watermarks(&tp)?, (0, 8), "{isolation:?}: the end is the high watermark");
        let mut restored = Vec::new();
        let last = restore.read(&tp, 0, 6, 100, &mut |batch| {
            restored.extend_from_slice(batch);
            Ok(())
        })?;
        assert_eq!(values(&restored), ["a1", "a2"], "{isolation:?}: the restore skips the aborted transaction");
        assert_eq!(last, Some(1), "{isolation:?}: the last record restored is a2");
        restores.push(restore);
    }
    let mut uncommitted_restore = restore_consumer(Isolation::ReadUncommitted)?;
    assert_eq!(uncommitted_restore.watermarks(&tp)?, (0, 8), "read_uncommitted: the end is the log's end");
    let mut default_restore = restore_consumer(Isolation::Default)?;
    let at_least_once = "at_least_once reads read_uncommitted, as Kafka Streams does";
    assert_eq!(default_restore.watermarks(&tp)?, (0, 8), "{at_least_once}");

    let mut readers = Vec::new();
    for isolation in committed {
        let (mut reader, _) = consumer(&kafka::unique("reader"), &[&topic], isolation)?;
        let read = poll_until(&mut *reader, "the committed transaction", |r| !r.is_empty())?;
        let read = [read, poll_for(&mut *reader, Duration::from_millis(500))?].concat();
        assert_eq!(values(&read), ["a1", "a2"], "{isolation:?}: what is read while c is open");
        readers.push((isolation, reader, read));
    }

    // A read_committed restore to the high watermark cannot finish while the transaction is open.
    let waiting_tp = tp.clone();
    let mut restore = restore_consumer(Isolation::ExactlyOnce)?;
    let waiting = std::thread::spawn(move || -> anyhow::Result<Vec<RawRecord>> {
        let mut restored = Vec::new();
        restore.read(&waiting_tp, 0, 8, 100, &mut |batch| {
            restored.extend_from_slice(batch);
            Ok(())
        })?;
        Ok(restored)
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!waiting.is_finished(), "a read_committed restore to the high watermark waits for the open transaction");

    producer.commit_transaction(WAIT)?; // marker 8
    let restored = waiting.join().expect("the restore thread")?;
    assert_eq!(values(&restored), ["a1", "a2", "c1", "c2"], "the waiting restore ends once the transaction commits");
    // Kafka writes the markers after the commit returns: the end moves soon, not at once.
    let deadline = Instant::now() + WAIT;
    while restores[0].watermarks(&tp)?.1 != 9 {
        anyhow::ensure!(Instant::now() < deadline, "the last stable offset never moved past the commit marker");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(default_restore.watermarks(&tp)?, (0, 9));
    assert_eq!(uncommitted_restore.watermarks(&tp)?, (0, 9));
    for (isolation, mut reader, mut read) in readers {
        read.extend(poll_until(&mut *reader, "the third transaction", |r| r.len() >= 2)?);
        reader.close();
        assert_eq!(values(&read), ["a1", "a2", "c1", "c2"], "{isolation:?}: what is read after c commits");
        assert_eq!(offsets(&read), [0, 1, 6, 7], "markers take offsets 2, 5 and 8; the aborted records 3 and 4");
    }

    let (mut uncommitted, _) = consumer(&kafka::unique("reader"), &[&topic], Isolation::ReadUncommitted)?;
    let all = poll_until(&mut *uncommitted, "every record", |r| r.len() >= 6)?;
    uncommitted.close();
    assert_eq!(values(&all), ["a1", "a2", "b1", "b2", "c1", "c2"], "read_uncommitted sees aborted records too");
    assert_eq!(offsets(&all), [0, 1, 3, 4, 6, 7], "but never a marker");
    let mut restored = Vec::new();
    let last = uncommitted_restore.read(&tp, 0, 9, 100, &mut |batch| {
        restored.extend_from_slice(batch);
        Ok(())
    })?;
    assert_eq!(restored, all, "a read_uncommitted restore reads the same");
    assert_eq!(last, Some(7));
    Ok(())
}

/// A second producer with the same transactional id fences the first: the first's open transaction
/// is aborted, and its next transactional call fails as fenced. Its records are never visible to
/// `read_committed` readers; the second producer's are.
pub(crate) fn a_new_producer_with_the_same_transactional_id_fences_the_old_one() -> anyhow::Result<()> {
    let topic = kafka::unique("fenced");
    kafka::create_topics(&[(&topic, 1)]);
    let id = kafka::unique("txn-id");
    let mut zombie = transactional_producer(&id)?;
    zombie.begin_transaction()?;
    zombie.send(&record(&topic, 0, "zombie-1"))?;
    zombie.flush(WAIT)?;

    let mut successor = transactional_producer(&id)?; // aborts the zombie's transaction: marker at 1
    let error = zombie
        .send(&record(&topic, 0, "zombie-2"))
        .and_then(|()| zombie.commit_transaction(WAIT))
        .expect_err("a fenced producer cannot commit");
    assert_eq!(error.kind, ClientErrorKind::Fenced, "{error}");
    // Once fenced, librdkafka refuses every further record with a bare `Fatal`: the error says its
    // cause, the fencing, so that a stream thread recovers with a new producer instead of failing.
    let error = zombie
        .send(&record(&topic, 0, "zombie-3"))
        .and_then(|()| zombie.flush(WAIT))
        .expect_err("a fenced producer cannot send");
    assert_eq!(error.kind, ClientErrorKind::Fenced, "{error}");

    successor.begin_transaction()?;
    successor.send(&record(&topic, 0, "successor"))?;
    successor.commit_transaction(WAIT)?;

    let (mut reader, _) = consumer(&kafka::unique("reader"), &[&topic], Isolation::ExactlyOnce)?;
    let read = poll_until(&mut *reader, "the successor's record", |r| values(r).contains(&"successor".into()))?;
    reader.close();
    assert_eq!(values(&read), ["successor"], "the zombie's records are never visible");
    assert_eq!(offsets(&read), [2], "after the zombie's record and the abort marker");
    Ok(())
}

/// A topic of one partition holding ten records, a group to read it, and a transactional producer to
/// commit the group's offsets.
fn offsets_to_commit() -> anyhow::Result<(String, TopicPartition, String, Box<dyn StreamsProducer>)> {
    let topic = kafka::unique("input");
    kafka::create_topics(&[(&topic, 1)]);
    kafka::produce(&topic, (0..10).map(|i| (None, Some(format!("v{i}").into_bytes()))));
    let tp = TopicPartition::new(&topic, 0);
    let producer = transactional_producer(&kafka::unique("txn-id"))?;
    Ok((topic, tp, kafka::unique("group"), producer))
}

/// Offsets sent in a transaction commit with it: an abort leaves the group's committed offset where it
/// was, a commit moves it.
pub(crate) fn offsets_sent_in_a_transaction_commit_only_with_it() -> anyhow::Result<()> {
    let (topic, tp, group, mut producer) = offsets_to_commit()?;
    let eos = Isolation::ExactlyOnce;

    // A member of the group, with what it reads first, holding the partition.
    let member = || -> anyhow::Result<(Box<dyn StreamsConsumer>, i64, Option<OffsetAndMetadata>)> {
        let (mut consumer, owned) = consumer(&group, &[&topic], eos)?;
        let read = poll_until(&mut *consumer, "the first record", |r| !r.is_empty())?;
        let committed = owned.committed(&tp);
        Ok((consumer, read[0].offset, committed))
    };

    let (mut first, start, committed) = member()?;
    assert_eq!((start, committed), (0, None));
    first.commit(&[(tp.clone(), OffsetAndMetadata::with_metadata(2, "first"))])?;
    producer.begin_transaction()?;
    let metadata = first.group_metadata().expect("a member of the group has group metadata");
    producer.send_offsets_to_transaction(
        &[(tp.clone(), OffsetAndMetadata::with_metadata(5, "aborted"))],
        &metadata,
        WAIT,
    )?;
    producer.abort_transaction(WAIT)?;
    first.close();

    let (mut second, start, committed) = member()?;
    assert_eq!(start, 2, "the aborted transaction's offset was not committed");
    assert_eq!(committed, Some(OffsetAndMetadata::with_metadata(2, "first")), "the assignment brings the metadata");
    producer.begin_transaction()?;
    let metadata = second.group_metadata().expect("a member of the group has group metadata");
    producer.send_offsets_to_transaction(
        &[(tp.clone(), OffsetAndMetadata::with_metadata(7, "second"))],
        &metadata,
        WAIT,
    )?;
    producer.commit_transaction(WAIT)?;
    second.close();

    let (mut third, start, committed) = member()?;
    assert_eq!(start, 7, "the committed transaction's offset was committed");
    assert_eq!(committed, Some(OffsetAndMetadata::with_metadata(7, "second")), "with its metadata");
    third.close();
    Ok(())
}

/// Offsets sent in a transaction with a membership the group does not have now (another generation, a
/// member that is not in it) are refused as fenced (KIP-447): how a zombie's offsets are kept out. The
/// membership is built by hand, as the runtime's own group member will build it, and the same
/// membership with the group's generation and member id commits.
pub(crate) fn offsets_sent_with_another_generation_or_member_are_fenced() -> anyhow::Result<()> {
    let (topic, tp, group, mut producer) = offsets_to_commit()?;
    let eos = Isolation::ExactlyOnce;

    let (mut member, _) = consumer(&group, &[&topic], eos)?;
    poll_until(&mut *member, "the first record", |r| !r.is_empty())?;
    let metadata = member.group_metadata().expect("a member of the group has group metadata");
    assert_eq!(metadata.group_id, group);
    assert!(metadata.generation_id >= 1 && !metadata.member_id.is_empty(), "{metadata:?}");
    assert_eq!(metadata.group_instance_id, None);

    let (id, generation) = (&metadata.member_id, metadata.generation_id);
    let strangers = [
        ("a later generation", GroupMetadata::new(&group, id, generation + 1)),
        ("an earlier generation", GroupMetadata::new(&group, id, generation - 1)),
        ("a member not in the group", GroupMetadata::new(&group, format!("{id}-zombie"), generation)),
    ];
    for (who, stranger) in strangers {
        producer.begin_transaction()?;
        let error = producer
            .send_offsets_to_transaction(&[(tp.clone(), OffsetAndMetadata::new(9))], &stranger, WAIT)
            .expect_err(who);
        assert_eq!(error.kind, ClientErrorKind::Fenced, "{who}: {error}");
        producer.abort_transaction(WAIT)?;
    }

    producer.begin_transaction()?;
    let own = GroupMetadata::new(&group, id, generation);
    producer.send_offsets_to_transaction(&[(tp.clone(), OffsetAndMetadata::new(4))], &own, WAIT)?;
    producer.commit_transaction(WAIT)?;
    member.close();

    let (mut next, owned) = consumer(&group, &[&topic], eos)?;
    let read = poll_until(&mut *next, "the first record", |r| !r.is_empty())?;
    next.close();
    assert_eq!(read[0].offset, 4, "the membership the group had committed, the strangers' did not");
    assert_eq!(owned.committed(&tp), Some(OffsetAndMetadata::new(4)));
    Ok(())
}
