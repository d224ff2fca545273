//! Unit tests of the stream thread on the embedded broker and a manual clock: one [`StreamThread`] (or
//! two, for a hand-over) built as the runtime builds it, driven by [`StreamThread::step`] with no wait,
//! so every commit interval, session timeout and `task.timeout.ms` is crossed by moving the clock, not
//! by sleeping. They check what the thread promises: records run through its tasks to the output; it
//! commits at the commit interval (and early when asked); at_least_once and exactly_once_v2 commit
//! differently; revoked partitions are committed and closed, lost ones are not; a recoverable failure
//! closes every task without committing and rejoins, until `task.timeout.ms` makes it fatal; committed
//! repartition records are purged.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Shared, StreamThread, ThreadState};
use crate::client::{ClientErrorKind, ClientSupplier};
use crate::config::{DslStoreType, ProcessingGuarantee, StreamsConfig};
use crate::dsl::{BufferConfig, Grouped, Materialized, StreamsBuilder, Suppressed, TimeWindows};
use crate::embedded::EmbeddedBroker;
use crate::error::StoreUnavailable;
use crate::processor::{Processor, ProcessorContext};
use crate::record::RawRecord;
use crate::runtime::query::{Place, StoreSource};
use crate::runtime::{layout::Layouts, topics, KeyValueStoreType, LocalKeyValueStore, QueryableStoreType, State};
use crate::serde::StringSerde;
use crate::store::ValueAndTimestamp;
use crate::sync::LockUnpoisoned;
use crate::time::Clock;
use crate::topology::{plan, Topology};
use crate::window::JoinWindows;
use crate::{Record, StreamsError};

const APP: &str = "app";

/// Upper-cases values; asks for a commit on the value `commit`, fails on `fail`.
struct Work;

impl Processor<String, String, String, String> for Work {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        record: Record<String, String>,
    ) -> Result<(), StreamsError> {
        match record.value.as_str() {
            "commit" => ctx.commit(),
            "fail" => return Err(ctx.error("the record says fail")),
            _ => {}
        }
        let value = record.value.to_uppercase();
        ctx.forward(record.with_value(value))
    }
}

/// `input` → `work` → `output`.
fn stateless() -> Topology {
    let mut topology = Topology::new();
    topology
        .add_source("in", &["input"], Arc::new(StringSerde), Arc::new(StringSerde))
        .and_then(|t| t.add_processor("work", || Work, &["in"]))
        .and_then(|t| t.add_sink("out", "output", Arc::new(StringSerde), Arc::new(StringSerde), &["work"]))
        .expect("a valid topology");
    topology
}

/// Counts records per key of `input` into store `counts` and writes each count to `output`.
fn counting() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("input")
        .group_by_key()
        .count_with(Materialized::as_store("counts"))
        .to_stream()
        .to("output");
    builder.build().expect("a valid topology")
}

/// Counts records per value: `input` is re-keyed through a repartition topic.
fn rekeyed_counting() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("input")
        .select_key(|_, v| v.clone())
        .group_by_key_with(Grouped::with_name("by-value"))
        .count()
        .to_stream()
        .to("output");
    builder.build().expect("a valid topology")
}

/// Settings for a quick, deterministic thread: a 1 s commit interval under either guarantee, stores in
/// memory (no state directory) and no record cache, so every update goes out at once.
fn config(guarantee: ProcessingGuarantee) -> StreamsConfig {
    let mut config = StreamsConfig::new(APP, "embedded");
    config.processing_guarantee = guarantee;
    config.commit_interval = Some(Duration::from_millis(1_000));
    config.default_dsl_store = DslStoreType::InMemory;
    config.cache_max_bytes = 0;
    config
}

/// Each key's greatest value per window of 10 ms (no grace), final results only (`suppress`), to
/// `output` as `key=value`.
fn final_window_maxima() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("input")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
        .reduce(|max, value| max.max(value))
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .map(|window, max| {
            (window.key.clone(), format!("{}@{}={}", window.key, window.window.start, max.unwrap_or_default()))
        })
        .to("output");
    builder.build().expect("a valid topology")
}

/// `input` left-joined with `other` within 10 ms (no grace), to `output` as `key=value+other` (`-` for
/// no partner).
fn left_join() -> Topology {
    let builder = StreamsBuilder::new();
    let other = builder.stream::<String, String>("other");
    builder
        .stream::<String, String>("input")
        .left_join_stream(
            &other,
            |v, o: Option<&String>| format!("{v}+{}", o.map_or("-", String::as_str)),
            JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(10)),
        )
        .map(|k, v| (k.clone(), format!("{k}={v}")))
        .to("output");
    builder.build().expect("a valid topology")
}

/// An embedded broker on a manual clock, with `input` (2 partitions) and `output` (1 partition).
struct Cluster {
    broker: EmbeddedBroker,
    clock: Clock,
}

impl Cluster {
    fn new() -> Self {
        let clock = Clock::manual(1_700_000_000_000);
        let broker = EmbeddedBroker::with_clock(clock.clone());
        broker.create_topic("input", 2);
        broker.create_topic("output", 1);
        Cluster { broker, clock }
    }

    /// A subscribed stream thread called `name`, in an instance of its own, made as the runtime makes
    /// it: topics checked and created, the instance's admin client, no state directory.
    fn thread(&self, name: &str, topology: Topology, config: StreamsConfig) -> (StreamThread, Arc<Shared>) {
        self.thread_in(None, name, topology, config)
    }

    /// [`Cluster::thread`] with its stores' files under `app_dir` (when given).
    fn thread_in(
        &self,
        app_dir: Option<&std::path::Path>,
        name: &str,
        topology: Topology,
        config: StreamsConfig,
    ) -> (StreamThread, Arc<Shared>) {
        let plan = plan::plan(&topology).expect("a valid topology");
        let admin = self.broker.admin(&config).expect("an admin client");
        let layout = topics::prepare(&topology, &plan, &config, &*admin).expect("the topics are ready");
        let shared = Arc::new(Shared::new());
        let state = ThreadState {
            app_dir: app_dir.map(std::path::Path::to_path_buf),
            rocksdb: state_store::RocksDbMemory::default(),
            restore_listener: None,
            standby_listener: None,
            transactional_id: (config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2)
                .then(|| format!("{APP}-{name}")),
            process_id: crate::runtime::assignor::ProcessId::of(name),
            clock: self.clock.clone(),
            admin: Arc::new(Mutex::new(admin)),
            dir_lock: None,
            globals: None,
            stop: Default::default(),
        };
        let (topology, plan) = (Arc::new(topology), Arc::new(plan));
        let layouts = Layouts::new(layout, (topology.clone(), plan.clone()), &config, state.admin.clone());
        let parts = (topology, plan, Arc::new(layouts));
        let supplier = Arc::new(self.broker.clone());
        let mut thread = StreamThread::new(name.to_string(), parts, config, supplier, shared.clone(), state)
            .expect("the thread's clients are made");
        thread.subscribe().expect("subscribed");
        (thread, shared)
    }

    /// Appends `key=value` records to `input`, each to the partition given.
    fn append(&self, records: &[(i32, &str, &str)]) {
        for &(partition, key, value) in records {
            let (key, value) = (Some(key.as_bytes().to_vec()), Some(value.as_bytes().to_vec()));
            self.broker.append("input", Some(partition), key, value, 0).expect("the input exists");
        }
    }

    /// Appends `key=value` records with their timestamps to partition 0 of `input`.
    fn append_at(&self, records: &[(&str, &str, i64)]) {
        for &(key, value, timestamp) in records {
            let (key, value) = (Some(key.as_bytes().to_vec()), Some(value.as_bytes().to_vec()));
            self.broker.append("input", Some(0), key, value, timestamp).expect("the input exists");
        }
    }

    /// How many records of `input` the application's group has not committed past.
    fn uncommitted_input(&self) -> usize {
        self.broker.group_lag(APP, "input")
    }
}

fn step(thread: &mut StreamThread) {
    thread.step(Duration::ZERO).expect("the step succeeds");
}

fn values(records: &[RawRecord]) -> Vec<String> {
    records.iter().map(|r| String::from_utf8(r.value.clone().unwrap_or_default()).expect("UTF-8")).collect()
}

/// The counts written to `output`, as `key=count`, in order.
fn counts(records: &[RawRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            let key = String::from_utf8(r.key.clone().unwrap_or_default()).expect("UTF-8");
            let count = i64::from_be_bytes(r.value.as_deref().expect("a count").try_into().expect("8 bytes"));
            format!("{key}={count}")
        })
        .collect()
}

fn open_tasks(thread: &StreamThread) -> Vec<String> {
    thread.inner.lock_unpoisoned().tasks.keys().map(ToString::to_string).collect()
}

#[test]
fn a_subscribed_thread_takes_every_partition_and_runs_their_records_through_to_the_output() {
    let cluster = Cluster::new();
    cluster.append(&[(0, "a", "x"), (1, "b", "y"), (0, "c", "z")]);
    let (mut thread, shared) = cluster.thread("t1", stateless(), config(ProcessingGuarantee::AtLeastOnce));
    assert_eq!(shared.state.get(), State::Created, "nothing happens before the first poll");

    step(&mut thread);

    assert_eq!(open_tasks(&thread), vec!["0_0", "0_1"]);
    assert_eq!(shared.state.get(), State::Running);
    let mut out = values(&cluster.broker.read_all("output"));
    out.sort();
    assert_eq!(out, vec!["X", "Y", "Z"]);
}

#[test]
fn under_at_least_once_offsets_are_committed_when_the_commit_interval_has_passed_and_not_before() {
    let cluster = Cluster::new();
    let (mut thread, _) = cluster.thread("t1", stateless(), config(ProcessingGuarantee::AtLeastOnce));
    cluster.append(&[(0, "a", "x"), (1, "b", "y")]);

    step(&mut thread);
    assert_eq!(values(&cluster.broker.read_committed("output")).len(), 2, "sent at once, outside a transaction");
    assert_eq!(cluster.uncommitted_input(), 2, "processed, not committed yet");
    cluster.clock.advance(999);
    step(&mut thread);
    assert_eq!(cluster.uncommitted_input(), 2, "999 ms: the interval has not passed");
    cluster.clock.advance(1);
    step(&mut thread);
    assert_eq!(cluster.uncommitted_input(), 0, "1,000 ms: committed");
    assert!(thread.inner.lock_unpoisoned().offsets.is_empty(), "nothing left to commit");
}

#[test]
fn a_processor_asking_for_a_commit_gets_one_before_the_interval_is_up() {
    let cluster = Cluster::new();
    let (mut thread, _) = cluster.thread("t1", stateless(), config(ProcessingGuarantee::AtLeastOnce));
    cluster.append(&[(0, "a", "x")]);
    step(&mut thread);
    assert_eq!(cluster.uncommitted_input(), 1);

    cluster.append(&[(1, "b", "commit")]);
    step(&mut thread);

    assert_eq!(cluster.uncommitted_input(), 0, "committed with no time gone by");
    assert!(thread.inner.lock_unpoisoned().tasks.values().all(|t| !t.commit_requested()), "the request is done");
}

#[test]
fn under_exactly_once_v2_outputs_and_offsets_commit_together_in_one_transaction() {
    let cluster = Cluster::new();
    let (mut thread, _) = cluster.thread("t1", stateless(), config(ProcessingGuarantee::ExactlyOnceV2));
    cluster.append(&[(0, "a", "x"), (1, "b", "y")]);

    step(&mut thread);
    assert_eq!(cluster.broker.read_all("output").len(), 2, "sent");
    assert!(cluster.broker.read_committed("output").is_empty(), "but inside the open transaction");
    assert_eq!((cluster.broker.open_transactions(), cluster.uncommitted_input()), (1, 2));

    cluster.clock.advance(1_000);
    step(&mut thread);
    assert_eq!(values(&cluster.broker.read_committed("output")).len(), 2);
    assert_eq!((cluster.broker.open_transactions(), cluster.uncommitted_input()), (0, 0), "offsets with outputs");
}

#[test]
fn under_exactly_once_v2_stores_holding_too_many_uncommitted_bytes_commit_early() {
    let cluster = Cluster::new();
    let mut config = config(ProcessingGuarantee::ExactlyOnceV2);
    config.statestore_uncommitted_max_bytes = 1;
    let (mut thread, _) = cluster.thread("t1", counting(), config);
    cluster.append(&[(0, "a", "x"), (0, "a", "y")]);

    step(&mut thread);

    assert_eq!(counts(&cluster.broker.read_committed("output")), vec!["a=1", "a=2"], "committed with no time gone by");
    assert_eq!(cluster.uncommitted_input(), 0);
    assert_eq!(cluster.broker.read_committed("app-counts-changelog").len(), 2, "the changelog writes commit too");
}

#[test]
fn revoked_partitions_are_committed_then_closed_and_their_new_owner_goes_on_from_there() {
    let cluster = Cluster::new();
    let (mut first, _) = cluster.thread("t1", stateless(), config(ProcessingGuarantee::AtLeastOnce));
    cluster.append(&[(0, "a", "x"), (1, "b", "y")]);
    step(&mut first);
    assert_eq!(cluster.uncommitted_input(), 2);

    // A second member joins: the group rebalances, and the first member gives up its partitions at its
    // next poll, committing first; it gets one of them back.
    let (mut second, _) = cluster.thread("t2", stateless(), config(ProcessingGuarantee::AtLeastOnce));
    step(&mut first);
    assert_eq!(cluster.uncommitted_input(), 0, "committed before the partitions were given up");
    assert_eq!(open_tasks(&first), vec!["0_0"], "the task of the partition now elsewhere is closed");

    step(&mut second);
    assert_eq!(open_tasks(&second), vec!["0_1"]);
    cluster.append(&[(0, "c", "z"), (1, "d", "w")]);
    step(&mut first);
    step(&mut second);
    let mut out = values(&cluster.broker.read_all("output"));
    out.sort();
    assert_eq!(out, vec!["W", "X", "Y", "Z"], "no record processed twice, none lost");
}

#[test]
fn under_exactly_once_v2_lost_partitions_abort_the_open_transaction_and_the_work_is_redone_once() {
    let cluster = Cluster::new();
    let mut config = config(ProcessingGuarantee::ExactlyOnceV2);
    // Long enough that only the lost partitions end the transaction, not the broker's timeout.
    config.producer_overrides.insert("transaction.timeout.ms".into(), "600000".into());
    let (mut thread, _) = cluster.thread("t1", stateless(), config);
    cluster.append(&[(0, "a", "x"), (1, "b", "y")]);
    step(&mut thread);
    assert_eq!(cluster.broker.open_transactions(), 1);

    // Silent past the session timeout: the group has dropped the member by its next poll.
    cluster.clock.advance(45_001);
    step(&mut thread);

    assert_eq!(cluster.broker.open_transactions(), 0);
    assert_eq!(cluster.broker.read_all("output").len(), 4, "the aborted records stay in the log");
    let mut committed = values(&cluster.broker.read_committed("output"));
    committed.sort();
    assert_eq!(committed, vec!["X", "Y"], "but only the redone ones count");
    assert_eq!(cluster.uncommitted_input(), 0);
    assert_eq!(open_tasks(&thread), vec!["0_0", "0_1"], "the member came back as a new one and got them again");
}

#[test]
fn a_failed_commit_closes_every_task_without_committing_rejoins_and_redoes_the_work() {
    let cluster = Cluster::new();
    let (mut thread, shared) = cluster.thread("t1", stateless(), config(ProcessingGuarantee::AtLeastOnce));
    cluster.append(&[(0, "a", "x"), (1, "b", "y")]);
    step(&mut thread);

    cluster.broker.fail_next_commit();
    cluster.clock.advance(1_000);
    step(&mut thread);
    {
        let inner = thread.inner.lock_unpoisoned();
        assert!(inner.tasks.is_empty(), "every task closed");
        assert!(inner.offsets.is_empty(), "their processed offsets forgotten");
        assert_eq!((inner.recoveries, inner.total_recoveries), (1, 1));
    }
    assert_eq!(shared.state.get(), State::Rebalancing);
    assert_eq!(cluster.uncommitted_input(), 2, "the commit did not happen");

    step(&mut thread);
    assert_eq!(shared.state.get(), State::Running);
    assert_eq!(open_tasks(&thread), vec!["0_0", "0_1"]);
    assert_eq!(cluster.uncommitted_input(), 0, "redone and committed");
    let mut out = values(&cluster.broker.read_all("output"));
    out.sort();
    assert_eq!(out, vec!["X", "X", "Y", "Y"], "at_least_once: duplicates, no loss");
    assert_eq!(thread.inner.lock_unpoisoned().recoveries, 0, "a successful commit ends the failing spell");
}

#[test]
fn failing_for_longer_than_task_timeout_is_fatal_and_the_application_goes_to_error() {
    let cluster = Cluster::new();
    let mut config = config(ProcessingGuarantee::AtLeastOnce);
    config.task_timeout = Duration::from_millis(5_000);
    let (mut thread, shared) = cluster.thread("t1", stateless(), config);
    cluster.append(&[(0, "a", "x")]);
    step(&mut thread);

    // Every commit times out: the thread recovers each time, as long as it has failed for at most 5 s.
    let mut result = Ok(());
    let mut recovered = 0;
    for _ in 0..10 {
        cluster.broker.fail_next_commit();
        cluster.clock.advance(1_000);
        result = thread.step(Duration::ZERO);
        if result.is_err() {
            break;
        }
        recovered += 1;
    }

    assert_eq!(recovered, 6, "failing since the first failure: 0, 1, ... 5 s; the 7th failure is at 6 s");
    let error = result.expect_err("fatal past task.timeout.ms");
    assert!(matches!(&error, StreamsError::Client(e) if e.kind == ClientErrorKind::Retriable), "{error:?}");
    thread.finish(Err(error));
    assert_eq!(shared.state.get(), State::Error);
    assert!(shared.error.lock_unpoisoned().is_some(), "the error is kept for the application");
    assert!(shared.shutdown.load(Ordering::SeqCst), "the instance's other threads stop too");
}

#[test]
fn an_error_in_a_processor_is_not_recovered_from_and_nothing_of_it_is_committed() {
    let cluster = Cluster::new();
    let (mut thread, _) = cluster.thread("t1", stateless(), config(ProcessingGuarantee::AtLeastOnce));
    cluster.append(&[(0, "a", "x"), (0, "b", "fail")]);

    let error = thread.step(Duration::ZERO).expect_err("a processor's error stops the thread");

    let StreamsError::ProcessingFailed { node, source_record, source, .. } = &error else { panic!("{error:?}") };
    assert_eq!(node, "work");
    assert_eq!(source_record.as_ref().map(|r| (&*r.topic, r.partition, r.offset)), Some(("input", 0, 1)), "{error}");
    assert!(matches!(&**source, StreamsError::Processor { node, .. } if node == "work"), "{error:?}");
    assert_eq!(thread.inner.lock_unpoisoned().total_recoveries, 0);
    assert_eq!(cluster.uncommitted_input(), 2);
}

#[test]
fn a_task_restores_its_store_from_the_changelog_before_it_processes() {
    let cluster = Cluster::new();
    let (mut first, _) = cluster.thread("t1", counting(), config(ProcessingGuarantee::AtLeastOnce));
    cluster.append(&[(0, "k", "1"), (0, "k", "2"), (0, "k", "3")]);
    step(&mut first);
    first.finish(Ok(())); // commits, closes its tasks, leaves the group
    assert_eq!(cluster.broker.read_all("app-counts-changelog").len(), 3);

    // A new instance with no local state takes over.
    let (mut second, _) = cluster.thread("t2", counting(), config(ProcessingGuarantee::AtLeastOnce));
    cluster.append(&[(0, "k", "4")]);
    step(&mut second);

    assert_eq!(counts(&cluster.broker.read_all("output")), vec!["k=1", "k=2", "k=3", "k=4"]);
}

#[test]
fn committed_repartition_records_are_purged_every_purge_interval() {
    let cluster = Cluster::new();
    let mut config = config(ProcessingGuarantee::AtLeastOnce);
    config.repartition_purge_interval = Duration::from_millis(2_000);
    let (mut thread, _) = cluster.thread("t1", rekeyed_counting(), config);
    let repartition = format!("{APP}-by-value-repartition");
    assert!(thread.inner.lock_unpoisoned().layout.repartition.contains(&repartition));
    cluster.append(&[(0, "a", "x"), (1, "b", "x"), (0, "c", "y")]);

    step(&mut thread); // the input goes to the repartition topic
    cluster.clock.advance(1_000);
    step(&mut thread); // the repartition topic is read and committed; the purge is not due
    assert_eq!(counts(&cluster.broker.read_all("output")).len(), 3);
    assert_eq!(cluster.broker.record_count(&repartition), 3, "consumed and committed, still there");
    assert!(!thread.inner.lock_unpoisoned().purgeable.is_empty());

    cluster.clock.advance(1_000);
    step(&mut thread);
    assert_eq!(cluster.broker.record_count(&repartition), 0, "purged below the committed offsets");
    let ends: i64 = cluster.broker.end_offsets(&repartition).expect("the topic exists").iter().sum();
    assert_eq!(ends, 3, "the offsets go on where they were");
    assert!(thread.inner.lock_unpoisoned().purgeable.is_empty());
}

#[test]
fn under_at_least_once_a_final_result_whose_send_failed_is_emitted_again_after_the_recovery() {
    let cluster = Cluster::new();
    let (mut thread, _) = cluster.thread("t1", final_window_maxima(), config(ProcessingGuarantee::AtLeastOnce));
    cluster.append_at(&[("a", "5", 1)]);
    step(&mut thread);
    cluster.clock.advance(1_000);
    step(&mut thread); // committed: a@1 is consumed for good, its window [0,10) waits in the buffer
    assert_eq!(cluster.uncommitted_input(), 0);

    // b@20 closes [0,10): the buffer emits a's final result and deletes it, but the result is lost on
    // its way (its send times out at the commit's flush). Logged at once, that delete would reach the
    // buffer's changelog and the restored buffer would no longer hold the window, which no input left
    // to redo makes again.
    cluster.broker.lose_next_send_to("output");
    cluster.append_at(&[("b", "1", 20)]);
    step(&mut thread);
    cluster.clock.advance(1_000);
    step(&mut thread);
    assert!(thread.inner.lock_unpoisoned().tasks.is_empty(), "recovering");
    assert!(cluster.broker.read_all("output").is_empty());

    step(&mut thread); // reopened: the buffer restored, b@20 redone
    assert_eq!(values(&cluster.broker.read_all("output")), vec!["a@0=5"]);
}

#[test]
fn under_at_least_once_windows_written_after_the_last_commit_do_not_hide_those_the_redone_records_update() {
    let cluster = Cluster::new();
    let (mut thread, _) = cluster.thread("t1", final_window_maxima(), config(ProcessingGuarantee::AtLeastOnce));
    cluster.append_at(&[("a", "5", 1)]);
    step(&mut thread);
    cluster.clock.advance(1_000);
    step(&mut thread); // committed at stream time 1

    // Processed, their windows logged, then the commit fails: a@5 and b@100 are redone from the
    // restored state. The window store restored b's window at 100; had that moved its time to 100,
    // [0,10) would be past its retention and hidden, and the redone a@5 would start it afresh ("3").
    cluster.append_at(&[("a", "3", 5), ("b", "1", 100)]);
    step(&mut thread);
    assert_eq!(values(&cluster.broker.read_all("output")), vec!["a@0=5"]);
    cluster.broker.fail_next_commit();
    cluster.clock.advance(1_000);
    step(&mut thread);
    assert!(thread.inner.lock_unpoisoned().tasks.is_empty(), "recovering");

    step(&mut thread);
    let output = values(&cluster.broker.read_all("output"));
    assert!(output.len() >= 2, "redone: {output:?}");
    assert!(output.iter().all(|v| v == "a@0=5"), "every final result of [0,10) is its maximum: {output:?}");
}

#[test]
fn under_at_least_once_a_crash_leaves_the_windows_the_redone_records_update_in_the_files() {
    let cluster = Cluster::new();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut config = config(ProcessingGuarantee::AtLeastOnce);
    config.default_dsl_store = DslStoreType::RocksDb;
    let thread = |name| cluster.thread_in(Some(dir.path()), name, final_window_maxima(), config.clone()).0;
    let mut first = thread("t1");
    cluster.append_at(&[("a", "5", 1)]);
    step(&mut first);
    first.finish(Ok(())); // committed at stream time 1, checkpointed: the files hold [0,10) = 5

    // a@5 updates [0,10) in the files (its changelog record dies with the process, still in the
    // producer's queue), then b@200000 moves the window store's time far past its retention (10 ms):
    // the segment of [0,10) expires. Then the process dies before its commit. The restart trusts the
    // checkpoint and the files, replays the changelog's tail (b's window only) and redoes a@5 and b:
    // had the segment's files been deleted, a@5 would start [0,10) afresh and its final result be 3.
    let mut second = thread("t2");
    let changelog = cluster.broker.topics().into_iter().find(|t| t.ends_with("-changelog") && t.contains("REDUCE"));
    cluster.broker.lose_next_send_to(&changelog.expect("the window store's changelog"));
    cluster.append_at(&[("a", "3", 5), ("b", "1", 200_000)]);
    step(&mut second);
    second.crash();
    cluster.clock.advance(45_001); // the group drops the dead member

    let mut third = thread("t3");
    step(&mut third);
    step(&mut third);
    let output = values(&cluster.broker.read_all("output"));
    assert!(!output.is_empty(), "[0,10) closed");
    assert!(output.iter().all(|v| v == "a@0=5"), "every final result of [0,10) is its maximum: {output:?}");
}

#[test]
fn under_at_least_once_an_unmatched_left_join_result_whose_send_failed_is_emitted_again() {
    let cluster = Cluster::new();
    cluster.broker.create_topic("other", 2);
    let mut config = config(ProcessingGuarantee::AtLeastOnce);
    config.outer_join_emit_interval = Duration::ZERO;
    let (mut thread, _) = cluster.thread("t1", left_join(), config);
    cluster.append_at(&[("a", "x", 1)]);
    step(&mut thread);
    cluster.clock.advance(1_000);
    step(&mut thread); // committed: a@1 is consumed for good and waits for a partner
    assert_eq!(cluster.uncommitted_input(), 0);

    // b@100 closes a's window: a comes out unmatched and leaves the waiting records, but the result is
    // lost on its way. Logged at once, that delete would reach the changelog and a would never come out.
    cluster.broker.lose_next_send_to("output");
    cluster.append_at(&[("b", "y", 100)]);
    step(&mut thread);
    cluster.clock.advance(1_000);
    step(&mut thread);
    assert!(thread.inner.lock_unpoisoned().tasks.is_empty(), "recovering");
    assert!(cluster.broker.read_all("output").is_empty());

    step(&mut thread); // reopened: the waiting records restored, b@100 redone
    assert_eq!(values(&cluster.broker.read_all("output")), vec!["a=x+-"]);
}

/// Two instances of a pattern source (`in-.*` → `output`): the first looks for new topics every
/// second, the second only every minute. When `in-b` appears, the first subscribes to it; the group's
/// range assignment then gives the second partition 1 of `in-a` and the first partition 1 of `in-b`,
/// halves of task 0_1. The second, finding at that assignment that its subscription is behind, opens
/// no task and joins again: task 0_1 never runs on both, and once both subscribe to both topics each
/// task has its partitions of both.
#[test]
fn a_thread_behind_on_its_patterns_topics_takes_no_task_and_joins_again_with_them() {
    let cluster = Cluster::new();
    cluster.broker.create_topic("in-a", 2);
    let topology = || {
        let builder = StreamsBuilder::new();
        builder.stream_pattern::<String, String>("in-.*").to("output");
        builder.build().expect("a valid topology")
    };
    let with_look_every = |ms: &str| {
        let mut config = config(ProcessingGuarantee::AtLeastOnce);
        config.consumer_overrides.insert("metadata.max.age.ms".into(), ms.into());
        config
    };
    let (mut first, _) = cluster.thread("t1", topology(), with_look_every("1000"));
    let (mut second, _) = cluster.thread("t2", topology(), with_look_every("60000"));
    let both = |first: &mut StreamThread, second: &mut StreamThread| {
        for turn in 0..8 {
            step(if turn % 2 == 0 { &mut *first } else { &mut *second });
            let (one, two) = (open_tasks(first), open_tasks(second));
            assert!(one.iter().all(|t| !two.contains(t)), "a task open on both: {one:?} and {two:?}");
        }
    };
    both(&mut first, &mut second);
    assert_eq!((open_tasks(&first), open_tasks(&second)), (vec!["0_0".to_string()], vec!["0_1".to_string()]));

    cluster.broker.create_topic("in-b", 2);
    cluster.clock.advance(1_000);
    both(&mut first, &mut second);

    assert_eq!((open_tasks(&first), open_tasks(&second)), (vec!["0_0".to_string()], vec!["0_1".to_string()]));
    assert_eq!(second.generation, 1, "the second took the new topic up at the assignment, not at its own look");
    for (topic, value) in [("in-a", "a"), ("in-b", "b")] {
        for partition in 0..2 {
            let (key, value) = (Some(value.as_bytes().to_vec()), Some(value.as_bytes().to_vec()));
            cluster.broker.append(topic, Some(partition), key, value, 0).expect("exists");
        }
    }
    both(&mut first, &mut second);
    let mut out = values(&cluster.broker.read_all("output"));
    out.sort();
    assert_eq!(out, ["a", "a", "b", "b"]);
}

/// An interactive query's view of store `counts` of `shared`'s instance, its counts without timestamps.
fn queried_counts(shared: &Arc<Shared>, partition: Option<i32>) -> LocalKeyValueStore<String, i64> {
    let source = StoreSource::new("counts".into(), shared.clone(), Place::Tasks(0), partition, false);
    KeyValueStoreType::<String, i64>::create(source)
}

fn unavailable(result: Result<impl std::fmt::Debug, StreamsError>) -> StoreUnavailable {
    match result {
        Err(StreamsError::StoreUnavailable { reason, .. }) => reason,
        other => panic!("expected the store to be unavailable, got {other:?}"),
    }
}

#[test]
fn under_exactly_once_v2_an_interactive_query_sees_each_task_as_of_its_last_commit() {
    let cluster = Cluster::new();
    let (mut thread, shared) = cluster.thread("t1", counting(), config(ProcessingGuarantee::ExactlyOnceV2));
    let counts = queried_counts(&shared, None);
    assert_eq!(unavailable(counts.get(&"a".into())), StoreUnavailable::NotStarted);

    cluster.append(&[(0, "b", "1"), (1, "a", "1"), (0, "b", "2")]);
    step(&mut thread);
    assert_eq!(counts.get(&"b".into()).unwrap(), None, "processed, in the open transaction");
    assert_eq!(counts.all().unwrap(), vec![]);

    cluster.clock.advance(1_000);
    step(&mut thread);
    assert_eq!(counts.get(&"b".into()).unwrap(), Some(2));
    assert_eq!(counts.all().unwrap(), vec![("a".into(), 1), ("b".into(), 2)], "in key order across partitions");

    cluster.append(&[(1, "a", "3")]);
    step(&mut thread);
    assert_eq!(counts.get(&"a".into()).unwrap(), Some(1), "the update is not committed yet");
    cluster.clock.advance(1_000);
    step(&mut thread);
    assert_eq!(counts.get(&"a".into()).unwrap(), Some(2));
    assert_eq!(counts.range(&"a".into(), &"a".into()).unwrap(), vec![("a".into(), 2)]);
    assert_eq!(counts.reverse_all().unwrap(), vec![("b".into(), 2), ("a".into(), 2)]);
    assert_eq!(counts.approximate_num_entries().unwrap(), 2);
    let stamped = KeyValueStoreType::<String, ValueAndTimestamp<i64>>::create(StoreSource::new(
        "counts".into(),
        shared.clone(),
        Place::Tasks(0),
        Some(1),
        false,
    ));
    assert_eq!(stamped.all().unwrap().iter().map(|(k, v)| (k.as_str(), v.value)).collect::<Vec<_>>(), [("a", 2)]);
}

#[test]
fn under_at_least_once_an_interactive_query_sees_what_was_processed_before_the_commit() {
    let cluster = Cluster::new();
    let (mut thread, shared) = cluster.thread("t1", counting(), config(ProcessingGuarantee::AtLeastOnce));
    cluster.append(&[(0, "b", "1"), (1, "a", "1")]);
    step(&mut thread);
    assert_eq!(cluster.uncommitted_input(), 2);
    assert_eq!(queried_counts(&shared, None).all().unwrap(), vec![("a".into(), 1), ("b".into(), 1)]);
    assert_eq!(queried_counts(&shared, Some(1)).all().unwrap(), vec![("a".into(), 1)], "partition 1 only");
}

#[test]
fn an_interactive_query_says_why_it_cannot_read_and_whether_to_ask_again() {
    let cluster = Cluster::new();
    let (mut thread, shared) = cluster.thread("t1", counting(), config(ProcessingGuarantee::AtLeastOnce));
    cluster.append(&[(0, "b", "1")]);
    step(&mut thread);

    let reason = unavailable(queried_counts(&shared, Some(7)).get(&"b".into()));
    assert_eq!(reason, StoreUnavailable::Migrated { partition: Some(7) });
    assert!(reason.is_retriable());
    let wrong = KeyValueStoreType::<String, String>::create(StoreSource::new(
        "counts".into(),
        shared.clone(),
        Place::Tasks(0),
        None,
        false,
    ));
    let reason = unavailable(wrong.get(&"b".into()));
    assert!(matches!(&reason, StoreUnavailable::Unknown(why) if why.contains("ValueAndTimestamp<i64>")), "{reason:?}");
    assert!(!reason.is_retriable());
    assert!(matches!(unavailable(wrong.approximate_num_entries()), StoreUnavailable::Unknown(_)));
    {
        // As from a processor: this OS thread holds a task lock.
        let _held = crate::sync::lock_task(&thread.inner);
        assert_eq!(unavailable(queried_counts(&shared, None).get(&"b".into())), StoreUnavailable::OnStreamThread);
    }
    shared.state.set(State::Rebalancing);
    let reason = unavailable(queried_counts(&shared, None).get(&"b".into()));
    assert_eq!(reason, StoreUnavailable::Rebalancing, "a read of every partition during a rebalance could miss keys");
    assert!(reason.is_retriable());
    let stale = KeyValueStoreType::<String, i64>::create(StoreSource::new(
        "counts".into(),
        shared.clone(),
        Place::Tasks(0),
        None,
        true,
    ));
    assert_eq!(stale.get(&"b".into()).unwrap(), Some(1), "with stale stores: what is open");

    thread.finish(Ok(()));
    shared.state.set(State::NotRunning);
    let reason = unavailable(queried_counts(&shared, None).get(&"b".into()));
    assert_eq!(reason, StoreUnavailable::NotRunning { state: "NotRunning".into() });
    assert!(!reason.is_retriable());
}
