//! The embedded broker's persistence to a directory (issue #5): a broker opened again on the same
//! directory holds what the first one held, and an application stopped on the first one continues on
//! the second from its committed offsets and local state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kstreams::client::ClientSupplier;
use kstreams::config::{ProcessingGuarantee, StreamsConfig};
use kstreams::embedded::EmbeddedBroker;
use kstreams::prelude::*;
use kstreams::record::{Headers, ProducedRecord};
use kstreams::runtime::{KafkaStreams, State};
use kstreams::serde::{from_bytes, to_bytes};

fn record(topic: &str, key: &str, value: &str) -> ProducedRecord {
    ProducedRecord {
        topic: topic.into(),
        partition: None,
        key: Some(key.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        timestamp: 1,
        headers: Headers::from_iter([("h", Some(b"v".to_vec()))]),
    }
}

fn values(records: Vec<kstreams::record::RawRecord>) -> Vec<String> {
    records.into_iter().map(|r| String::from_utf8(r.value.unwrap_or_default()).unwrap()).collect()
}

#[test]
fn a_reopened_broker_holds_records_compaction_and_aborts_what_was_left_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = StreamsConfig::new("persist", "embedded");
    {
        let broker = EmbeddedBroker::open(dir.path()).unwrap();
        broker.create_topic("plain", 2);
        broker.create_compacted_topic("table", 1);
        let mut producer = broker.producer(&config, "p", None).unwrap();
        for (k, v) in [("a", "1"), ("b", "2"), ("a", "3")] {
            producer.send(&record("plain", k, v)).unwrap();
            producer.send(&record("table", k, v)).unwrap();
        }
        broker.compact();
        let mut txn = broker.producer(&config, "t", Some("txn")).unwrap();
        txn.init_transactions(Duration::from_secs(1)).unwrap();
        txn.begin_transaction().unwrap();
        txn.send(&record("plain", "c", "open")).unwrap();
        // Dropped with the transaction open, as by a crash.
    }
    let broker = EmbeddedBroker::open(dir.path()).unwrap();
    assert_eq!(values(broker.read_committed("table")), vec!["2", "3"], "compaction kept the latest per key");
    let mut plain = values(broker.read_committed("plain"));
    plain.sort();
    assert_eq!(plain, vec!["1", "2", "3"], "the open transaction was aborted on reopening");
    assert_eq!(broker.open_transactions(), 0);
    assert_eq!(broker.read_all("plain")[0].headers.last("h"), Some(Some(&b"v"[..])), "headers are kept");

    // Appending goes on after the replayed records, and survives another reopening.
    let mut producer = broker.producer(&config, "p", None).unwrap();
    producer.send(&record("table", "a", "4")).unwrap();
    drop(broker);
    let broker = EmbeddedBroker::open(dir.path()).unwrap();
    assert_eq!(values(broker.read_committed("table")), vec!["2", "3", "4"]);
    assert_eq!(broker.end_offsets("plain").unwrap().iter().sum::<i64>(), 5, "4 records and an abort marker");
}

#[test]
fn an_unreadable_journal_is_an_error_naming_the_file_and_line_and_a_cut_last_line_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedBroker::open(dir.path()).unwrap());
    let journal = dir.path().join("broker.journal");
    std::fs::write(
        &journal,
        "{\"event\":\"topic\",\"name\":\"t\",\"partitions\":1,\"compacted\":false}\n{\"event\":\"rec",
    )
    .unwrap();
    let broker = EmbeddedBroker::open(dir.path()).expect("an incomplete last line is dropped");
    assert_eq!(broker.topics(), vec!["t".to_string()]);
    broker.create_topic("u", 1);
    drop(broker);
    assert_eq!(EmbeddedBroker::open(dir.path()).unwrap().topics(), vec!["t".to_string(), "u".to_string()]);

    std::fs::write(&journal, "not json\n").unwrap();
    let error = EmbeddedBroker::open(dir.path()).unwrap_err().to_string();
    assert!(error.contains("broker.journal") && error.contains("line 1"), "{error}");
}

fn totals_app(dir: &std::path::Path, broker: &EmbeddedBroker) -> KafkaStreams {
    let builder = StreamsBuilder::new();
    builder.stream::<String, i64>("amounts").group_by_key().reduce(|a, b| a + b).to_stream().to("totals");
    let mut config = StreamsConfig::new("persisted-totals", "embedded");
    config.state_dir = dir.join("state");
    config.commit_interval = Some(Duration::from_millis(50));
    config.cache_max_bytes = 0;
    config.processing_guarantee = ProcessingGuarantee::ExactlyOnceV2;
    KafkaStreams::with_client_supplier(builder.build().unwrap(), config, Arc::new(broker.clone())).unwrap()
}

fn produce(broker: &EmbeddedBroker, from: i64, to: i64) {
    for i in from..to {
        let key = to_bytes(&*String::default_serde(), "amounts", &format!("k{}", i % 3)).unwrap();
        let value = to_bytes(&*i64::default_serde(), "amounts", &i).unwrap();
        broker.append("amounts", None, key, value, i).unwrap();
    }
}

/// Runs the app until every key's latest total in `totals` (read_committed) reaches the model.
fn run_until(app: &mut KafkaStreams, broker: &EmbeddedBroker, model: &BTreeMap<String, i64>) {
    app.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut latest = BTreeMap::new();
        for r in broker.read_committed("totals") {
            let key: String = from_bytes(&*String::default_serde(), "totals", r.key.as_deref()).unwrap().unwrap();
            let value: i64 = from_bytes(&*i64::default_serde(), "totals", r.value.as_deref()).unwrap().unwrap();
            latest.insert(key, value);
        }
        if &latest == model {
            break;
        }
        assert!(Instant::now() < deadline && app.state() != State::Error, "totals {latest:?}, model {model:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    app.close().unwrap();
}

#[test]
fn an_application_stopped_on_a_persisted_broker_continues_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let model = |to: i64| {
        let mut m = BTreeMap::new();
        (0..to).for_each(|i| *m.entry(format!("k{}", i % 3)).or_insert(0) += i);
        m
    };
    {
        let broker = EmbeddedBroker::open(dir.path().join("broker")).unwrap();
        broker.create_topic("amounts", 2);
        broker.create_topic("totals", 2);
        produce(&broker, 0, 100);
        run_until(&mut totals_app(dir.path(), &broker), &broker, &model(100));
    }
    let broker = EmbeddedBroker::open(dir.path().join("broker")).unwrap();
    let before = broker.record_count("totals");
    produce(&broker, 100, 150);
    run_until(&mut totals_app(dir.path(), &broker), &broker, &model(150));
    assert_eq!(broker.record_count("totals") - before, 50, "only the new records were processed, once each");
}
