//! Unit tests of [`Task`] on its own, with no broker and no stream thread: what one task promises the
//! runtime and the test driver (routing by source topic, stream time and punctuation, the order of its
//! output, changelog records, commit requests, the record cache's flush, checkpoints, held writes).
//! They use only `Task`'s own methods and `TaskConfig`, so they hold whatever the task keeps inside.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Task, TaskConfig, CHECKPOINT_EVERY_RECORDS, OWNER_EPOCH_HEADER};
use crate::client::TopicPartition;
use crate::dsl::{Materialized, StreamsBuilder};
use crate::processor::{Processor, ProcessorContext, Punctuation, PunctuationType};
use crate::record::{Headers, ProducedRecord, RawRecord};
use crate::serde::{I64Serde, Serde, StringSerde};
use crate::store::{StoreBuilder, Stores, TypedKeyValueStore};
use crate::time::Clock;
use crate::topology::{plan, Topology};
use crate::{Record, StreamsError};

/// What a [`Probe`] saw, in order, as text: `init`, `process <key>@<ts> st=<stream time>`,
/// `punctuate <kind>@<ts>`, `flush`, `close`.
type Log = Arc<Mutex<Vec<String>>>;

/// A processor that logs every call, forwards every record, writes each record to its store (when it
/// has one), asks for a commit on the value `commit`, and forwards a `tick` record at each punctuation.
#[derive(Clone, Default)]
struct Probe {
    log: Log,
    stream_time_every: Option<Duration>,
    wall_clock_every: Option<Duration>,
    store: Option<&'static str>,
    /// Fails its close.
    fail_close: bool,
}

impl Probe {
    fn seen(&self) -> Vec<String> {
        self.log.lock().expect("the log lock").clone()
    }

    fn note(&self, entry: String) {
        self.log.lock().expect("the log lock").push(entry);
    }
}

impl Processor<String, String, String, String> for Probe {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), StreamsError> {
        self.note("init".into());
        if let Some(every) = self.stream_time_every {
            ctx.schedule(every, PunctuationType::StreamTime);
        }
        if let Some(every) = self.wall_clock_every {
            ctx.schedule(every, PunctuationType::WallClockTime);
        }
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        record: Record<String, String>,
    ) -> Result<(), StreamsError> {
        self.note(format!("process {}@{} st={}", record.key, record.timestamp, ctx.stream_time()));
        if record.value == "commit" {
            ctx.commit();
        }
        if let Some(store) = self.store {
            ctx.store::<String, String>(store)?.put(&record.key, &record.value)?;
        }
        ctx.forward(record)
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        punctuation: Punctuation,
    ) -> Result<(), StreamsError> {
        self.note(format!("punctuate {:?}@{}", punctuation.kind, punctuation.timestamp));
        ctx.forward(Record::new("tick".into(), format!("{:?}", punctuation.kind), punctuation.timestamp))
    }

    fn flush(&mut self, _ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), StreamsError> {
        self.note("flush".into());
        Ok(())
    }

    fn close(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), StreamsError> {
        self.note("close".into());
        if self.fail_close {
            return Err(ctx.error("cannot let go"));
        }
        Ok(())
    }
}

fn string_store(supplier_name: &str, persistent: bool) -> StoreBuilder<String, String> {
    let (key, value) = (Arc::new(StringSerde), Arc::new(StringSerde));
    if persistent {
        Stores::key_value_store_builder(Stores::persistent_key_value_store(supplier_name), key, value)
    } else {
        Stores::key_value_store_builder(Stores::in_memory_key_value_store(supplier_name), key, value)
    }
}

/// `input` → `probe` (with `stores` connected) → `output`.
fn probe_topology(probe: &Probe, stores: Vec<StoreBuilder<String, String>>) -> Topology {
    let probe = probe.clone();
    let mut topology = Topology::new();
    topology
        .add_source("in", &["input"], Arc::new(StringSerde), Arc::new(StringSerde))
        .and_then(|t| t.add_processor("probe", move || probe.clone(), &["in"]))
        .and_then(|t| t.add_sink("out", "output", Arc::new(StringSerde), Arc::new(StringSerde), &["probe"]))
        .expect("a valid topology");
    for store in stores {
        topology.add_state_store(store, &["probe"]).expect("a new store");
    }
    topology
}

/// The task of sub-topology 0 for `partition`.
fn open(topology: &Topology, partition: i32, config: &TaskConfig) -> Task {
    let plan = plan::plan(topology).expect("a valid topology");
    Task::new(topology, &plan.subtopologies[0], partition, config).expect("the task opens")
}

fn config() -> TaskConfig {
    TaskConfig::new("app", Clock::manual(0))
}

fn raw(topic: &str, partition: i32, offset: i64, key: &str, value: &str, timestamp: i64) -> RawRecord {
    RawRecord {
        topic: topic.into(),
        partition,
        offset,
        timestamp,
        key: Some(key.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: Headers::new(),
    }
}

fn text(bytes: &Option<Vec<u8>>) -> Option<String> {
    bytes.as_ref().map(|b| String::from_utf8(b.clone()).expect("UTF-8 bytes"))
}

/// `(topic, key, value, timestamp)` of each record, in order.
fn summary(records: &[ProducedRecord]) -> Vec<(String, String, Option<String>, i64)> {
    records
        .iter()
        .map(|r| (r.topic.to_string(), text(&r.key).unwrap_or_default(), text(&r.value), r.timestamp))
        .collect()
}

fn on_topic<'a>(records: &'a [ProducedRecord], topic: &str) -> Vec<&'a ProducedRecord> {
    records.iter().filter(|r| &*r.topic == topic).collect()
}

#[test]
fn a_record_from_a_topic_the_task_does_not_read_is_an_error_naming_the_topic_and_the_task() {
    let probe = Probe::default();
    let mut task = open(&probe_topology(&probe, vec![]), 2, &config());

    let error = task.process(raw("elsewhere", 2, 0, "k", "v", 1)).expect_err("no source reads `elsewhere`");

    let message = error.to_string();
    assert!(message.contains("`elsewhere`") && message.contains("0_2"), "{message}");
    assert_eq!(task.metrics().processed_records, 0);
    assert!(task.take_output().is_empty());
}

#[test]
fn processing_initializes_the_processors_once_and_runs_the_record_through_to_the_sink() {
    let probe = Probe::default();
    let mut task = open(&probe_topology(&probe, vec![]), 0, &config());
    assert_eq!(task.source_topics().collect::<Vec<_>>(), vec!["input"]);
    assert!(probe.seen().is_empty(), "processors start at init, not when the task is made");

    task.process(raw("input", 0, 0, "k", "v", 5)).expect("processed");
    task.init().expect("init again does nothing");

    assert_eq!(probe.seen(), vec!["init", "process k@5 st=5"]);
    assert_eq!(summary(&task.take_output()), vec![("output".into(), "k".into(), Some("v".into()), 5)]);
    assert_eq!(task.metrics().processed_records, 1);
}

#[test]
fn stream_time_is_the_largest_timestamp_seen_and_its_punctuation_fires_after_the_record() {
    let probe = Probe { stream_time_every: Some(Duration::from_millis(10)), ..Probe::default() };
    let mut task = open(&probe_topology(&probe, vec![]), 0, &config());

    task.process(raw("input", 0, 0, "a", "v", 3)).expect("processed"); // due at 0: fires at 3, next 10
    task.process(raw("input", 0, 1, "b", "v", 1)).expect("processed"); // late: stream time stays 3
    task.process(raw("input", 0, 2, "c", "v", 9)).expect("processed"); // not due yet
    task.process(raw("input", 0, 3, "d", "v", 25)).expect("processed"); // fires once at 25, next 30

    assert_eq!(
        probe.seen(),
        vec![
            "init",
            "process a@3 st=3",
            "punctuate StreamTime@3",
            "process b@1 st=3",
            "process c@9 st=9",
            "process d@25 st=25",
            "punctuate StreamTime@25",
        ]
    );
    let keys: Vec<String> = summary(&task.take_output()).into_iter().map(|(_, key, _, _)| key).collect();
    assert_eq!(keys, vec!["a", "tick", "b", "c", "d", "tick"], "the punctuation's output follows the record's");
    assert_eq!(task.metrics().punctuations, 2);
    assert!(!task.punctuate_wall_clock().expect("no wall-clock schedule"), "stream time is not wall-clock time");
}

#[test]
fn wall_clock_punctuation_fires_as_the_manual_clock_reaches_it_and_not_with_stream_time() {
    let clock = Clock::manual(1_000);
    let probe = Probe { wall_clock_every: Some(Duration::from_millis(100)), ..Probe::default() };
    let mut task = open(&probe_topology(&probe, vec![]), 0, &TaskConfig::new("app", clock.clone()));

    // Scheduled at init (here, with the first record), one interval from then: due at 1,100.
    task.process(raw("input", 0, 0, "k", "v", 1_000_000)).expect("processed");
    assert!(!task.punctuate_wall_clock().expect("checked"));
    clock.advance(99);
    assert!(!task.punctuate_wall_clock().expect("checked"), "1,099 ms: not due");
    clock.advance(1);
    assert!(task.punctuate_wall_clock().expect("checked"), "1,100 ms: due");
    clock.advance(250);
    assert!(task.punctuate_wall_clock().expect("checked"), "1,350 ms: due once for the intervals jumped over");
    assert!(!task.punctuate_wall_clock().expect("checked"), "next due at 1,400");

    let punctuations: Vec<String> = probe.seen().into_iter().filter(|e| e.starts_with("punctuate")).collect();
    assert_eq!(punctuations, vec!["punctuate WallClockTime@1100", "punctuate WallClockTime@1350"]);
    assert_eq!(task.metrics().punctuations, 2);
}

#[test]
fn output_is_drained_once_in_the_order_it_was_written_and_a_failed_send_drops_the_rest() {
    let probe = Probe::default();
    let mut task = open(&probe_topology(&probe, vec![]), 0, &config());
    for (offset, key) in ["a", "b", "c"].into_iter().enumerate() {
        task.process(raw("input", 0, offset as i64, key, "v", offset as i64)).expect("processed");
    }
    let keys = |records: &[ProducedRecord]| summary(records).into_iter().map(|(_, k, _, _)| k).collect::<Vec<_>>();
    let first = task.take_output();
    assert_eq!(keys(&first), vec!["a", "b", "c"]);
    assert!(first.iter().all(|r| r.partition.is_none()), "the producer's partitioner places sink records");
    assert!(task.take_output().is_empty(), "taken once");

    for (offset, key) in ["d", "e", "f"].into_iter().enumerate() {
        task.process(raw("input", 0, 3 + offset as i64, key, "v", 3)).expect("processed");
    }
    let mut sent = Vec::new();
    let result = task.send_output(|record| {
        sent.push(record.clone());
        if sent.len() == 2 {
            Err("refused")
        } else {
            Ok(())
        }
    });
    assert_eq!(result, Err("refused"));
    assert_eq!(keys(&sent), vec!["d", "e"], "sending stops at the first error");
    assert!(task.take_output().is_empty(), "the records after the error are dropped, as when a thread fails");
}

#[test]
fn with_changelogs_on_a_logged_store_writes_each_change_to_the_task_s_own_changelog_partition() {
    let probe = Probe { store: Some("kv"), ..Probe::default() };
    let topology =
        probe_topology(&probe, vec![string_store("kv", false), string_store("quiet", false).with_logging_disabled()]);
    let mut config = config();
    config.changelogs = true;
    let plan = plan::plan(&topology).expect("a valid topology");
    assert_eq!(Task::logged_stores(&topology, &plan.subtopologies[0], &config), vec!["kv"]);
    let mut task = open(&topology, 3, &config);

    task.process(raw("input", 3, 0, "k", "v1", 5)).expect("processed");
    let first = task.take_output();
    task.process(raw("input", 3, 1, "k", "v2", 7)).expect("processed");
    let second = task.take_output();

    let changelog = "app-kv-changelog";
    assert_eq!(
        summary(&on_topic(&first, changelog).into_iter().cloned().collect::<Vec<_>>()),
        vec![(changelog.into(), "k".into(), Some("v1".into()), 5)]
    );
    let logged = on_topic(&second, changelog);
    assert_eq!(logged.len(), 1);
    assert_eq!((text(&logged[0].value), logged[0].timestamp), (Some("v2".into()), 7), "stamped with stream time");
    assert!(first.iter().chain(&second).filter(|r| &*r.topic == changelog).all(|r| r.partition == Some(3)));
    assert!(logged[0].headers.is_empty(), "no owner epoch unless asked for");
    assert_eq!(on_topic(&second, "output").len(), 1);
    let changelogs = task.changelogs();
    assert_eq!(changelogs.len(), 1, "only the logged store has a changelog");
    assert_eq!((changelogs[0].store.as_str(), &changelogs[0].partition), ("kv", &TopicPartition::new(changelog, 3)));
    assert!(!changelogs[0].persistent);
}

#[test]
fn with_changelogs_off_a_logged_store_writes_no_changelog_records() {
    let probe = Probe { store: Some("kv"), ..Probe::default() };
    let topology = probe_topology(&probe, vec![string_store("kv", false)]);
    let config = config();
    let plan = plan::plan(&topology).expect("a valid topology");
    assert!(Task::logged_stores(&topology, &plan.subtopologies[0], &config).is_empty());
    let mut task = open(&topology, 0, &config);

    task.process(raw("input", 0, 0, "k", "v", 5)).expect("processed");

    let topics: Vec<String> = summary(&task.take_output()).into_iter().map(|(topic, _, _, _)| topic).collect();
    assert_eq!(topics, vec!["output"]);
    assert!(task.changelogs().is_empty());
    assert_eq!(task.get_raw("kv", b"k").expect("readable"), Some(b"v".to_vec()), "the store itself is written");
}

#[test]
fn changelog_records_carry_the_owner_epoch_one_past_the_restored_one_when_stamping_is_on() {
    let probe = Probe { store: Some("kv"), ..Probe::default() };
    let topology = probe_topology(&probe, vec![string_store("kv", false)]);
    let mut config = config();
    config.changelogs = true;
    config.stamp_owner_epoch = true;
    let epoch_of = |records: Vec<ProducedRecord>| -> Vec<Option<Option<Vec<u8>>>> {
        on_topic(&records, "app-kv-changelog")
            .iter()
            .map(|r| r.headers.last(OWNER_EPOCH_HEADER).map(|v| v.map(<[u8]>::to_vec)))
            .collect()
    };

    let mut restored = open(&topology, 0, &config);
    restored.begin_ownership(Some(4));
    restored.process(raw("input", 0, 0, "k", "v", 1)).expect("processed");
    assert_eq!(epoch_of(restored.take_output()), vec![Some(Some(5_i32.to_be_bytes().to_vec()))]);

    let mut fresh = open(&topology, 0, &config);
    fresh.begin_ownership(None);
    fresh.process(raw("input", 0, 0, "k", "v", 1)).expect("processed");
    assert_eq!(epoch_of(fresh.take_output()), vec![Some(Some(0_i32.to_be_bytes().to_vec()))], "first owner: 0");

    config.stamp_owner_epoch = false;
    let mut unstamped = open(&topology, 0, &config);
    unstamped.begin_ownership(Some(4));
    unstamped.process(raw("input", 0, 0, "k", "v", 1)).expect("processed");
    assert_eq!(epoch_of(unstamped.take_output()), vec![None], "exactly-once needs no stamp");
}

#[test]
fn a_processor_s_commit_request_is_seen_until_the_commit_clears_it() {
    let probe = Probe::default();
    let mut task = open(&probe_topology(&probe, vec![]), 0, &config());

    task.process(raw("input", 0, 0, "k", "v", 1)).expect("processed");
    assert!(!task.commit_requested());
    task.process(raw("input", 0, 1, "k", "commit", 2)).expect("processed");
    assert!(task.commit_requested());
    task.process(raw("input", 0, 2, "k", "v", 3)).expect("processed");
    assert!(task.commit_requested(), "the request stands until the commit is done");
    task.clear_commit_request();
    assert!(!task.commit_requested());
}

#[test]
fn flushing_the_processors_writes_out_each_cached_count_once_to_the_sink_and_the_changelog() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("input")
        .group_by_key()
        .count_with(Materialized::as_store("counts"))
        .to_stream()
        .to("counts-out");
    let topology = builder.build().expect("a valid topology");
    let mut config = config();
    config.changelogs = true;
    config.cache_budget = Arc::new(state_store::CacheBudget::new(1 << 20));
    let mut task = open(&topology, 0, &config);

    for (offset, key) in ["a", "a", "b", "a"].into_iter().enumerate() {
        task.process(raw("input", 0, offset as i64, key, "v", offset as i64)).expect("processed");
    }
    assert!(task.take_output().is_empty(), "the cache holds the counts back until the commit");

    task.flush_processors().expect("flushed");
    let out = task.take_output();
    let counts: Vec<(String, i64)> = on_topic(&out, "counts-out")
        .iter()
        .map(|r| {
            let value = I64Serde.deserialize("counts-out", r.value.as_deref().expect("a count")).expect("8 bytes");
            (text(&r.key).expect("a key"), value)
        })
        .collect();
    assert_eq!(counts, vec![("b".into(), 1), ("a".into(), 3)], "oldest update first, one record per key");
    let mut logged: Vec<String> =
        on_topic(&out, "app-counts-changelog").iter().map(|r| text(&r.key).expect("a key")).collect();
    logged.sort();
    assert_eq!(logged, vec!["a", "b"], "one changelog record per key, not one per update");

    task.flush_processors().expect("flushed again");
    assert!(task.take_output().is_empty(), "nothing left in the cache");
}

#[test]
fn a_checkpoint_records_the_acknowledged_changelog_offset_of_each_persistent_logged_store() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let probe = Probe::default();
    let topology = probe_topology(&probe, vec![string_store("disk", true), string_store("mem", false)]);
    let mut config = config();
    config.changelogs = true;
    config.app_dir = Some(dir.path().join("app"));
    let mut task = open(&topology, 1, &config);
    task.begin_ownership(None);
    let (disk, mem) = (TopicPartition::new("app-disk-changelog", 1), TopicPartition::new("app-mem-changelog", 1));

    task.set_changelog_offset(&disk, 41);
    task.set_changelog_offset(&disk, 40);
    task.set_changelog_offset(&mem, 7);
    assert!(!task.checkpoint_due());
    task.flush().expect("flushed");
    task.checkpoint().expect("checkpointed");

    let task_dir = dir.path().join("app").join("0_1");
    let written = state_store::OffsetCheckpoint::in_dir(&task_dir).read().expect("a checkpoint");
    assert_eq!(
        written.into_iter().collect::<Vec<_>>(),
        vec![(("app-disk-changelog".to_string(), 1), 41)],
        "the highest offset, and only for the store on disk"
    );
    assert_eq!(super::owner_epoch::read_recorded(&task_dir), Ok(Some(0)), "the epoch is kept beside it");

    task.set_changelog_offset(&disk, 41 + CHECKPOINT_EVERY_RECORDS);
    assert!(task.checkpoint_due());
    task.checkpoint().expect("checkpointed");
    assert!(!task.checkpoint_due());
    task.close().expect("closed");
}

#[test]
fn held_writes_are_dropped_when_the_task_closes_without_a_commit_and_kept_after_one() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let probe = Probe { store: Some("disk"), ..Probe::default() };
    let topology = probe_topology(&probe, vec![string_store("disk", true)]);
    let mut config = config();
    config.app_dir = Some(dir.path().join("app"));
    config.hold_writes_per_commit = true;

    let mut task = open(&topology, 0, &config);
    task.process(raw("input", 0, 0, "k", "uncommitted", 1)).expect("processed");
    assert!(task.uncommitted_bytes() > 0);
    assert_eq!(task.get_raw("disk", b"k").expect("readable"), Some(b"uncommitted".to_vec()), "read-your-writes");
    task.close().expect("closed");

    let mut task = open(&topology, 0, &config);
    assert_eq!(task.get_raw("disk", b"k").expect("readable"), None, "nothing of the failed commit is left");
    task.process(raw("input", 0, 0, "k", "committed", 1)).expect("processed");
    task.commit_stores().expect("committed");
    assert_eq!(task.uncommitted_bytes(), 0);
    task.close().expect("closed");

    let mut task = open(&topology, 0, &config);
    assert_eq!(task.get_raw("disk", b"k").expect("readable"), Some(b"committed".to_vec()));
    task.close().expect("closed");
}

#[test]
fn a_restored_batch_applies_the_kept_puts_and_deletes_without_logging_them_again() {
    let probe = Probe { store: Some("kv"), ..Probe::default() };
    let topology = probe_topology(&probe, vec![string_store("kv", false)]);
    let mut config = config();
    config.changelogs = true;
    let mut task = open(&topology, 0, &config);
    let mut delete = raw("app-kv-changelog", 0, 2, "a", "", 0);
    delete.value = None;
    let batch = vec![
        raw("app-kv-changelog", 0, 0, "a", "1", 0),
        raw("app-kv-changelog", 0, 1, "b", "2", 0),
        delete,
        raw("app-kv-changelog", 0, 3, "c", "3", 0),
    ];

    task.set_restoring("kv", true).expect("restore mode");
    task.restore_batch_where("kv", &batch, |r| r.offset != 3).expect("restored");
    task.set_restoring("kv", false).expect("normal mode");

    assert_eq!(task.get_raw("kv", b"a").expect("readable"), None, "a null value deletes");
    assert_eq!(task.get_raw("kv", b"b").expect("readable"), Some(b"2".to_vec()));
    assert_eq!(task.get_raw("kv", b"c").expect("readable"), None, "a record `keep` refused is skipped");
    assert!(task.take_output().is_empty(), "a restore does not write the changelog it reads");
    let error = task.restore_batch_where("nope", &batch, |_| true).expect_err("no such store");
    assert!(error.to_string().contains("`nope`"), "{error}");

    // After a restore skipped a former owner's late writes, the keys are written again as they are now.
    task.relog("kv", [b"b".to_vec(), b"a".to_vec()]).expect("relogged");
    assert_eq!(
        summary(&task.take_output()),
        vec![
            ("app-kv-changelog".into(), "b".into(), Some("2".into()), 0),
            ("app-kv-changelog".into(), "a".into(), None, 0),
        ]
    );
}

#[test]
fn closing_a_task_closes_its_processors_only_if_they_were_initialized() {
    let never_started = Probe::default();
    let mut task = open(&probe_topology(&never_started, vec![]), 0, &config());
    task.flush_processors().expect("nothing to flush");
    task.close().expect("closed");
    assert!(never_started.seen().is_empty(), "no init, so no flush and no close");

    let started = Probe::default();
    let mut task = open(&probe_topology(&started, vec![]), 0, &config());
    task.init().expect("initialized");
    task.flush_processors().expect("flushed");
    task.close().expect("closed");
    assert_eq!(started.seen(), vec!["init", "flush", "close"]);
}

#[test]
fn closing_a_task_closes_every_processor_and_store_even_after_one_failed() {
    let (failing, next) = (Probe { fail_close: true, ..Probe::default() }, Probe::default());
    let (a, b) = (failing.clone(), next.clone());
    let mut topology = Topology::new();
    topology
        .add_source("in", &["input"], Arc::new(StringSerde), Arc::new(StringSerde))
        .and_then(|t| t.add_processor("failing", move || a.clone(), &["in"]))
        .and_then(|t| t.add_processor("next", move || b.clone(), &["failing"]))
        .expect("a valid topology");
    topology.add_state_store(string_store("kept", false), &["next"]).expect("a new store");
    let mut task = open(&topology, 0, &config());
    task.init().expect("initialized");
    let error = task.close().expect_err("the failed close is reported");
    assert!(error.to_string().contains("failing"), "{error}");
    assert_eq!(next.seen(), vec!["init", "close"], "the processor after the failed one still closed");
    let store = task.store::<TypedKeyValueStore<String, String>>("kept").expect("the store");
    assert!(store.get(&"k".to_string()).is_err(), "the store was closed too");
}
