//! Broker restarts (`scripts/kafka.sh bounce`: kill -9, start again on the same data a few seconds
//! later), as developers restart their brokers all the time. In the middle of a restore the application
//! must ride it out, as Kafka Streams does until `task.timeout.ms`: finish the restore once the broker is
//! back, reach RUNNING, and count exactly. Before the restore consumer read on through transient errors,
//! each `AllBrokersDown` ended the restore, and the thread closed every task and rejoined, again and again.
//! And an application started while the broker is down starts once it is back.
//!
//! It restarts the broker, so it is a suite of its own, whose tests take turns: the other suites' tests
//! run side by side within their binaries.

mod kafka;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kafka::*;
use kstreams::client::TopicPartition;
use kstreams::config::ProcessingGuarantee;
use kstreams::prelude::*;
use kstreams::runtime::{State, StateRestoreListener};

const KEYS: usize = 500;
const RECORDS: usize = 60_000;
const MORE: usize = 1_000;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh");

/// Tells the test when the first batch of a restore was applied.
struct FirstBatch(mpsc::SyncSender<()>);

impl StateRestoreListener for FirstBatch {
    fn on_batch_restored(&self, _: &TopicPartition, _: &str, _: i64, _: u64) {
        let _ = self.0.try_send(());
    }
}

fn topology(input: &str, output: &str) -> Topology {
    let builder = StreamsBuilder::new();
    builder.stream::<String, String>(input).group_by_key().count().to_stream().to(output);
    builder.build().unwrap()
}

/// Small record batches in the changelog (`batch.size`), read back a few at a time
/// (`max.partition.fetch.bytes`): a restore of tens of thousands of records then takes seconds, long
/// enough to restart the broker in the middle of it.
fn slow_restore_config(app: &str) -> kstreams::config::StreamsConfig {
    let mut config = config(app);
    config.processing_guarantee = ProcessingGuarantee::ExactlyOnceV2;
    config.producer_overrides.insert("batch.size".into(), "2000".into());
    config.consumer_overrides.insert("max.partition.fetch.bytes".into(), "2000".into());
    config
}

/// The last count per key in `records` (values are Kafka longs).
fn last_counts(records: &[kstreams::record::RawRecord]) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for record in records {
        let key = String::from_utf8(record.key.clone().unwrap()).unwrap();
        let value: [u8; 8] = record.value.as_deref().unwrap().try_into().unwrap();
        counts.insert(key, i64::from_be_bytes(value));
    }
    counts
}

/// The tests restart the broker: one at a time (a test binary runs its tests side by side).
static BROKER: Mutex<()> = Mutex::new(());

/// Holds the broker for one test, once it is known to be the one scripts/kafka.sh can restart.
fn our_broker() -> anyhow::Result<MutexGuard<'static, ()>> {
    let guard = BROKER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let ours = Command::new(SCRIPT).arg("bootstrap").output()?;
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout).trim(),
        bootstrap(),
        "this test restarts the broker: it needs the Kafka scripts/kafka.sh started"
    );
    Ok(guard)
}

#[test]
fn a_broker_restart_during_a_restore_does_not_stall_the_application() -> anyhow::Result<()> {
    let _broker = our_broker()?;
    let (input, output, app) = (unique("bounce-in"), unique("bounce-out"), unique("bounce-app"));
    create_topics(&[(&input, 1), (&output, 1)]);
    let key = |i: usize| Some(format!("k{:03}", i % KEYS).into_bytes());
    produce(&input, (0..RECORDS).map(|i| (key(i), Some(b"v".to_vec()))));

    // First owner: counts everything, so the changelog holds RECORDS updates.
    let mut first = streams(topology(&input, &output), slow_restore_config(&app))?;
    first.start()?;
    let counted = consume_committed_until(&output, Duration::from_secs(180), |r| r.len() >= RECORDS);
    assert_eq!(counted.len(), RECORDS, "the first owner's output");
    first.close()?;

    // Second owner, with no local state: restores the whole changelog, and the broker dies meanwhile.
    let mut second = streams(topology(&input, &output), slow_restore_config(&app))?;
    let (restoring, first_batch) = mpsc::sync_channel(1);
    second.set_global_state_restore_listener(FirstBatch(restoring));
    second.start()?;
    first_batch.recv_timeout(Duration::from_secs(60)).expect("the restore starts");
    assert_ne!(second.state(), State::Running, "the restore ended before the broker could be restarted");
    let bounce = Command::new(SCRIPT).args(["bounce", "5"]).status()?;
    assert!(bounce.success(), "scripts/kafka.sh bounce failed");
    let back = Instant::now();
    assert!(
        second.wait_for_state(State::Running, Duration::from_secs(120)),
        "not RUNNING 120 s after the broker came back (state {:?}, error {:?})",
        second.state(),
        second.take_error()
    );
    println!("RUNNING {:?} after the broker came back", back.elapsed());

    // The restored counts are exact: MORE records later, each key's last count is its total.
    produce(&input, (RECORDS..RECORDS + MORE).map(|i| (key(i), Some(b"v".to_vec()))));
    let all = consume_committed_until(&output, Duration::from_secs(120), |r| {
        let counts = last_counts(r);
        counts.len() == KEYS && counts.values().sum::<i64>() == (RECORDS + MORE) as i64
    });
    second.close()?;
    let counts = last_counts(&all);
    for k in 0..KEYS {
        let expected = (0..RECORDS + MORE).filter(|i| i % KEYS == k).count() as i64;
        assert_eq!(counts.get(&format!("k{k:03}")), Some(&expected), "the count of k{k:03}");
    }
    Ok(())
}

/// An application started while its broker is down (started beside its Kafka, or during a restart)
/// waits for it, as Kafka Streams' does, and starts once it answers: the start's topic checks and the
/// transactional producer's registration try again through transient errors instead of failing
/// `start()`.
#[test]
fn an_application_started_while_its_broker_restarts_starts_once_it_is_back() -> anyhow::Result<()> {
    let _broker = our_broker()?;
    let (input, output, app) = (unique("down-in"), unique("down-out"), unique("down-app"));
    create_topics(&[(&input, 2), (&output, 1)]);
    let key = |i: usize| Some(format!("k{:03}", i % 10).into_bytes());
    produce(&input, (0..100).map(|i| (key(i), Some(b"v".to_vec()))));

    let mut bounce = Command::new(SCRIPT).args(["bounce", "8"]).spawn()?;
    // The bounce kills the broker at once: wait until it no longer answers.
    let address = bootstrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&address).is_ok() {
        assert!(Instant::now() < deadline, "the broker at {address} still answers");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut config = config(&app);
    config.processing_guarantee = ProcessingGuarantee::ExactlyOnceV2;
    // The start waits for the brokers as long as default.api.timeout.ms; the tests' 20 s is shorter than
    // the broker's 8 s down and its JVM's start on a busy machine. Kafka's default, 60 s, is not.
    config.default_api_timeout = Duration::from_secs(60);
    let mut streams = streams(topology(&input, &output), config)?;
    let started = Instant::now();
    streams.start()?;
    println!("start() returned {:?} after the broker went down", started.elapsed());
    assert!(bounce.wait()?.success(), "scripts/kafka.sh bounce failed");
    assert!(
        streams.wait_for_state(State::Running, Duration::from_secs(120)),
        "not RUNNING 120 s after the broker came back (state {:?}, error {:?})",
        streams.state(),
        streams.take_error()
    );
    let all = consume_committed_until(&output, Duration::from_secs(120), |r| {
        last_counts(r).values().sum::<i64>() == 100 && last_counts(r).len() == 10
    });
    streams.close()?;
    assert_eq!(last_counts(&all).values().copied().collect::<Vec<_>>(), vec![10; 10], "every key counted once");
    Ok(())
}
