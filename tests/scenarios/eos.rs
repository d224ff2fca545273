//! Exactly-once scenarios, run against the real Kafka (tests/kafka_eos.rs) and against the embedded
//! broker (tests/embedded_eos.rs). The application is a small version of Kafka Streams' EOS system
//! test: input `data` (key, number) is echoed, summed per key, and counted per key after a repartition;
//! the outputs are read with `read_committed` and compared with a model computed by a plain loop.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kstreams::config::{GroupAssignor, ProcessingGuarantee, StreamsConfig};
use kstreams::prelude::*;
use kstreams::record::RawRecord;
use kstreams::runtime::{KafkaStreams, State};
use kstreams::serde::{from_bytes, to_bytes, DefaultSerde};

use crate::kafka;

/// The topics of one run.
struct Topics {
    data: String,
    echo: String,
    sum: String,
    cnt: String,
}

impl Topics {
    fn create() -> Topics {
        let topics = Topics {
            data: kafka::unique("data"),
            echo: kafka::unique("echo"),
            sum: kafka::unique("sum"),
            cnt: kafka::unique("cnt"),
        };
        kafka::create_topics(&[(&topics.data, 4), (&topics.echo, 4), (&topics.sum, 4), (&topics.cnt, 4)]);
        topics
    }
}

/// Value that makes the first instance to process it stall past its session timeout: a zombie. Not
/// negative, so that under at_least_once a duplicate can only raise a sum.
const STALL: i64 = 1_000_000;

/// echo, sum per key, and count per key after a repartition. `stall` is taken by the first task that
/// sees a [`STALL`] record, which then sleeps for `stall_for`.
fn topology(topics: &Topics, stall: Arc<AtomicBool>, stall_for: Duration) -> anyhow::Result<Topology> {
    let builder = StreamsBuilder::new();
    let data = builder.stream::<String, i64>(&topics.data).map_values(move |v| {
        if v == STALL && stall.swap(false, Ordering::SeqCst) {
            std::thread::sleep(stall_for);
        }
        v
    });
    data.clone().to(&topics.echo);
    data.clone().group_by_key().reduce(|a, b| a + b).to_stream().to(&topics.sum);
    data.select_key(|k, _| k.clone()).group_by_key().count().to_stream().to(&topics.cnt);
    Ok(builder.build()?)
}

fn config(app: &str, guarantee: ProcessingGuarantee, assignor: GroupAssignor) -> StreamsConfig {
    let mut config = kafka::config(app);
    config.processing_guarantee = guarantee;
    config.group_assignor = assignor;
    config
}

/// [`config`] where a member that stops polling is fenced within seconds (the test broker allows
/// sessions this short): through its session on the embedded broker, through `max.poll.interval.ms`
/// on Kafka, where librdkafka keeps the session alive from a background thread. The transaction
/// timeout is shorter than that poll interval: a new owner's restore waits (inside the rebalance
/// callback) for the zombie's open transaction to end, at most this long, and must not overrun the
/// poll interval itself (docs/exactly-once.md, "Limits").
fn fencing_config(app: &str, guarantee: ProcessingGuarantee, assignor: GroupAssignor) -> StreamsConfig {
    let mut config = config(app, guarantee, assignor);
    for (key, value) in
        [("session.timeout.ms", "2000"), ("heartbeat.interval.ms", "500"), ("max.poll.interval.ms", "3000")]
    {
        config.consumer_overrides.insert(key.into(), value.into());
    }
    config.producer_overrides.insert("transaction.timeout.ms".into(), "1500".into());
    config
}

/// `count` records over 20 keys, values 0..100; `stall_at` (if any) is replaced by a [`STALL`].
fn input(count: usize, stall_at: Option<usize>) -> Vec<(String, i64)> {
    (0..count)
        .map(|i| (format!("k{}", (i * 7) % 20), if Some(i) == stall_at { STALL } else { (i % 100) as i64 }))
        .collect()
}

fn produce(topic: &str, records: &[(String, i64)]) -> anyhow::Result<()> {
    let mut encoded = Vec::new();
    for (k, v) in records {
        encoded.push((to_bytes(&*String::default_serde(), topic, k)?, to_bytes(&*i64::default_serde(), topic, v)?));
    }
    kafka::produce(topic, encoded);
    Ok(())
}

fn decode(records: &[RawRecord]) -> Vec<(String, i64)> {
    records
        .iter()
        .map(|r| {
            let key = from_bytes(&*String::default_serde(), &r.topic, r.key.as_deref()).unwrap().expect("keyed");
            let value = from_bytes(&*i64::default_serde(), &r.topic, r.value.as_deref()).unwrap().expect("a value");
            (key, value)
        })
        .collect()
}

/// The last value per key.
fn latest(records: &[(String, i64)]) -> BTreeMap<String, i64> {
    records.iter().cloned().collect()
}

/// Sorted, so two multisets compare with `==`.
fn sorted(mut records: Vec<(String, i64)>) -> Vec<(String, i64)> {
    records.sort();
    records
}

/// What `actual` lacks of `expected` and has beyond it (multisets), for short failure messages.
fn difference(expected: &[(String, i64)], actual: &[(String, i64)]) -> (Vec<(String, i64)>, Vec<(String, i64)>) {
    let mut missing = sorted(expected.to_vec());
    let mut extra = Vec::new();
    for record in actual {
        match missing.binary_search(record) {
            Ok(i) => {
                missing.remove(i);
            }
            Err(_) => extra.push(record.clone()),
        }
    }
    (missing, extra)
}

/// Asserts `echo` holds every input record exactly once, or (`duplicates_allowed`) at least once.
fn check_echo(input: &[(String, i64)], echo: &[(String, i64)], duplicates_allowed: bool) {
    let (missing, extra) = difference(input, echo);
    assert!(
        missing.is_empty(),
        "echo lost {} of {} records ({} read), e.g. {:?}",
        missing.len(),
        input.len(),
        echo.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        duplicates_allowed || extra.is_empty(),
        "echo has {} duplicates, e.g. {:?}",
        extra.len(),
        &extra[..extra.len().min(5)]
    );
}

struct Model {
    sum: BTreeMap<String, i64>,
    cnt: BTreeMap<String, i64>,
}

fn model(input: &[(String, i64)]) -> Model {
    let (mut sum, mut cnt) = (BTreeMap::new(), BTreeMap::new());
    for (k, v) in input {
        *sum.entry(k.clone()).or_insert(0) += v;
        *cnt.entry(k.clone()).or_insert(0) += 1;
    }
    Model { sum, cnt }
}

/// Reads `topic` with read_committed until the last value of every key is at least `expected`'s.
fn read_final(topic: &str, expected: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    read_values(topic, expected, latest)
}

/// The largest value per key: what an aggregate reached. Under at_least_once a zombie's late write
/// can leave an older value last (docs/exactly-once.md), so the last value does not say what was lost.
fn reached(records: &[(String, i64)]) -> BTreeMap<String, i64> {
    let mut max = BTreeMap::new();
    for (k, v) in records {
        let m = max.entry(k.clone()).or_insert(*v);
        *m = (*m).max(*v);
    }
    max
}

/// Reads `topic` with read_committed until `per_key` of what was read is at least `expected` for
/// every key (or 90 s passed).
fn read_values(
    topic: &str,
    expected: &BTreeMap<String, i64>,
    per_key: fn(&[(String, i64)]) -> BTreeMap<String, i64>,
) -> BTreeMap<String, i64> {
    let records = kafka::consume_committed_until(topic, Duration::from_secs(90), |r| {
        let got = per_key(&decode(r));
        expected.iter().all(|(k, v)| got.get(k).is_some_and(|g| g >= v))
    });
    per_key(&decode(&records))
}

fn start(app: &mut KafkaStreams) -> anyhow::Result<()> {
    app.start()?;
    assert!(app.wait_for_state(State::Running, Duration::from_secs(60)), "never RUNNING: {:?}", app.state());
    Ok(())
}

/// One instance, stopped and started again halfway: every output is there exactly once, and the
/// state after the restart (restored from a checkpoint and the committed changelog) goes on exactly.
pub(crate) fn exactly_once_outputs_and_state_match_the_model_across_a_restart() -> anyhow::Result<()> {
    restart(GroupAssignor::Range)
}

/// The same under the library's own group member (`group.assignor=streams`).
pub(crate) fn exactly_once_outputs_and_state_match_the_model_across_a_restart_under_the_streams_assignor(
) -> anyhow::Result<()> {
    restart(GroupAssignor::Streams)
}

fn restart(assignor: GroupAssignor) -> anyhow::Result<()> {
    let topics = Topics::create();
    let app_id = kafka::unique("eos");
    let config = config(&app_id, ProcessingGuarantee::ExactlyOnceV2, assignor);
    let all = input(2_000, None);
    let never = Arc::new(AtomicBool::new(false));

    produce(&topics.data, &all[..1_000])?;
    let mut app = kafka::streams(topology(&topics, never.clone(), Duration::ZERO)?, config.clone())?;
    start(&mut app)?;
    read_final(&topics.cnt, &model(&all[..1_000]).cnt);
    app.close()?;

    produce(&topics.data, &all[1_000..])?;
    let mut app = kafka::streams(topology(&topics, never, Duration::ZERO)?, config)?;
    start(&mut app)?;
    let expected = model(&all);
    let cnt = read_final(&topics.cnt, &expected.cnt);
    let sum = read_final(&topics.sum, &expected.sum);
    assert_ne!(app.state(), State::Error, "{:?}", app.take_error());
    app.close()?;

    let echo = kafka::consume_committed_until(&topics.echo, Duration::from_secs(30), |r| r.len() >= all.len());
    check_echo(&all, &decode(&echo), false);
    assert_eq!(cnt, expected.cnt, "count per key");
    assert_eq!(sum, expected.sum, "sum per key");
    Ok(())
}

/// Two instances; one stalls inside a transaction past its session timeout. The other takes its
/// partitions; when the zombie wakes, its commit is refused (a stale group generation), its transaction
/// aborted, its tasks closed without their uncommitted state, and it rejoins. `exactly_once_v2`: every
/// output exactly once, every aggregate exact. `at_least_once`: nothing lost.
fn zombie(guarantee: ProcessingGuarantee, assignor: GroupAssignor) -> anyhow::Result<()> {
    let topics = Topics::create();
    let app_id = kafka::unique("zombie");
    let config = fencing_config(&app_id, guarantee, assignor);
    let all = input(4_000, Some(1_500));
    let stall = Arc::new(AtomicBool::new(true));
    let stall_for = Duration::from_secs(5);

    let mut first = kafka::streams(topology(&topics, stall.clone(), stall_for)?, config.clone())?;
    let mut second_config = config;
    second_config.state_dir = std::env::temp_dir().join(kafka::unique("kstreams-state"));
    let mut second = kafka::streams(topology(&topics, stall.clone(), stall_for)?, second_config)?;
    start(&mut first)?;
    start(&mut second)?;
    // Both members in the group before any input: the stall hits one of them while the other runs.
    std::thread::sleep(Duration::from_secs(2));
    produce(&topics.data, &all)?;

    let expected = model(&all);
    let exactly_once = guarantee == ProcessingGuarantee::ExactlyOnceV2;
    let per_key = if exactly_once { latest } else { reached };
    let cnt = read_values(&topics.cnt, &expected.cnt, per_key);
    let sum = read_values(&topics.sum, &expected.sum, per_key);
    assert!(!stall.load(Ordering::SeqCst), "the stall record was processed");
    let echo = kafka::consume_committed_until(&topics.echo, Duration::from_secs(30), |r| r.len() >= all.len());
    let mut recoveries = 0;
    for app in [&mut first, &mut second] {
        assert_ne!(app.state(), State::Error, "{:?}", app.take_error());
        app.close()?;
        recoveries += app.metrics().recoveries;
    }
    assert!(recoveries >= 1, "the zombie was fenced and recovered");

    check_echo(&all, &decode(&echo), !exactly_once);
    if exactly_once {
        assert_eq!(cnt, expected.cnt, "count per key");
        assert_eq!(sum, expected.sum, "sum per key");
    } else {
        // Every update reached each aggregate (duplicates may have added more).
        for (key, n) in &expected.cnt {
            assert!(cnt[key] >= *n, "count of {key}: {} < {n}", cnt[key]);
        }
        for (key, s) in &expected.sum {
            assert!(sum[key] >= *s, "sum of {key}: {} < {s}", sum[key]);
        }
    }
    Ok(())
}

pub(crate) fn exactly_once_zombie_is_fenced_and_its_work_rolled_back() -> anyhow::Result<()> {
    zombie(ProcessingGuarantee::ExactlyOnceV2, GroupAssignor::Range)
}

pub(crate) fn at_least_once_zombie_loses_nothing() -> anyhow::Result<()> {
    zombie(ProcessingGuarantee::AtLeastOnce, GroupAssignor::Range)
}

/// The zombie under the library's own group member: its heartbeat thread keeps its session, so it is
/// `max.poll.interval.ms` that puts it out of the group (as Kafka Streams' zombies), and its generation
/// that fences its transaction's offsets.
pub(crate) fn exactly_once_zombie_is_fenced_and_its_work_rolled_back_under_the_streams_assignor() -> anyhow::Result<()>
{
    zombie(ProcessingGuarantee::ExactlyOnceV2, GroupAssignor::Streams)
}

pub(crate) fn at_least_once_zombie_loses_nothing_under_the_streams_assignor() -> anyhow::Result<()> {
    zombie(ProcessingGuarantee::AtLeastOnce, GroupAssignor::Streams)
}
