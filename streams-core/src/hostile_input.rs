//! Hostile input, fuzzed: whatever the library reads from outside its own process (record keys and
//! values, changelog and repartition formats, the metadata committed with offsets, files in the state
//! directory, the embedded broker's journal, configuration) is fed random and mutated input, and must
//! answer with a value or a typed error, never a panic, and read back what it wrote.
//!
//! `cargo test` runs each property with proptest's default budget (256 cases); a longer run:
//! `PROPTEST_CASES=100000 cargo test -p streams-core --features test-utils --lib hostile_input`.
//! The formats private to one module are fuzzed in that module's tests (the suppression buffer's
//! entries, the stream-stream join's outer store); the checkpoint file in `state-store`.

use std::sync::Arc;

use proptest::prelude::*;

use crate::config::StreamsConfig;
use crate::dsl::change::{Change, ChangeSerde};
use crate::dsl::subscription::{Instruction, Response, ResponseSerde, Subscription, SubscriptionSerde};
use crate::embedded::journal::Event;
use crate::embedded::EmbeddedBroker;
use crate::processor::offset_metadata::{self, ProcessorMetadata};
use crate::record::{Headers, RawRecord};
use crate::serde::{
    BoolSerde, BytesSerde, F32Serde, F64Serde, I16Serde, I32Serde, I64Serde, JsonSerde, OptionSerde, Serde,
    SessionWindowedSerde, StringSerde, TimeWindowedSerde, UnitSerde, WindowStoreKeySerde,
};
use crate::store::{ValueAndTimestamp, ValueAndTimestampSerde};
use crate::task::owner_epoch;
use crate::window::{Window, Windowed};

const TOPIC: &str = "orders";

/// Bytes of any length up to a few hundred, most of them short: hostile input is mostly near a format's
/// edges.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..24),
        1 => proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

fn string() -> Arc<dyn Serde<String>> {
    Arc::new(StringSerde)
}

/// What `serde` reads back from what it writes of `value`.
pub(crate) fn round_trip<T: 'static>(serde: &dyn Serde<T>, value: &T) -> T {
    let mut out = Vec::new();
    serde.serialize(TOPIC, value, &mut out).expect("serializes");
    serde.deserialize(TOPIC, &out).expect("reads back what it wrote")
}

/// Deserializes `bytes` with every serde of the library; whatever each answers, it does not panic.
fn deserialize_with_every_serde(bytes: &[u8]) {
    let _ = StringSerde.deserialize(TOPIC, bytes);
    let _ = StringSerde.deserialize_owned(TOPIC, bytes.to_vec());
    let _ = I16Serde.deserialize(TOPIC, bytes);
    let _ = I32Serde.deserialize(TOPIC, bytes);
    let _ = I64Serde.deserialize(TOPIC, bytes);
    let _ = F32Serde.deserialize(TOPIC, bytes);
    let _ = F64Serde.deserialize(TOPIC, bytes);
    let _ = BoolSerde.deserialize(TOPIC, bytes);
    let _ = BytesSerde.deserialize(TOPIC, bytes);
    let _ = UnitSerde.deserialize(TOPIC, bytes);
    let _ = OptionSerde::new(string()).deserialize(TOPIC, bytes);
    let _ = JsonSerde::<serde_json::Value>::new().deserialize(TOPIC, bytes);
    let _ = JsonSerde::<std::collections::BTreeMap<String, Vec<i64>>>::new().deserialize(TOPIC, bytes);
    let _ = TimeWindowedSerde::new(string(), std::time::Duration::from_secs(60)).deserialize(TOPIC, bytes);
    let _ = TimeWindowedSerde::with_size_ms(string(), i64::MAX).deserialize(TOPIC, bytes);
    let _ = SessionWindowedSerde::new(string()).deserialize(TOPIC, bytes);
    let _ = WindowStoreKeySerde::new(string(), 1_000).deserialize(TOPIC, bytes);
    let _ = ValueAndTimestampSerde::new(string()).deserialize(TOPIC, bytes);
    let _ = ChangeSerde(string()).deserialize(TOPIC, bytes);
    let _ = ChangeSerde(Arc::new(ValueAndTimestampSerde::new(Arc::new(I64Serde)))).deserialize(TOPIC, bytes);
    let _ = SubscriptionSerde::new(string()).deserialize(TOPIC, bytes);
    let _ = ResponseSerde::new(string()).deserialize(TOPIC, bytes);
}

fn instruction() -> impl Strategy<Value = Instruction> {
    prop_oneof![
        Just(Instruction::DeleteKeyNoPropagate),
        Just(Instruction::DeleteKeyAndPropagate),
        Just(Instruction::PropagateNullIfNoForeignValue),
        Just(Instruction::PropagateOnlyIfForeignValue),
    ]
}

/// Journal events with any values, including partitions and offsets no broker would write.
fn event() -> impl Strategy<Value = Event> {
    let topic = prop_oneof![Just("t".to_string()), Just("u".to_string()), "[a-z]{0,3}"];
    let partition = prop_oneof![3 => -1..4i32, 1 => any::<i32>()];
    let offset = prop_oneof![3 => -2..20i64, 1 => any::<i64>()];
    let value = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8));
    prop_oneof![
        (topic.clone(), prop_oneof![3 => -1..5i32, 1 => any::<i32>()], any::<bool>()).prop_map(
            |(name, partitions, compacted)| Event::Topic { name, partitions, compacted, timestamp_after_max_ms: None }
        ),
        (topic.clone(), partition.clone(), any::<i64>(), value.clone(), value, proptest::option::of(0..4u64)).prop_map(
            |(topic, partition, timestamp, key, value, txn)| Event::Record {
                topic,
                partition,
                timestamp,
                key,
                value,
                headers: Vec::new(),
                txn,
            }
        ),
        (topic.clone(), partition.clone(), 0..4u64, any::<bool>(), any::<i64>()).prop_map(
            |(topic, partition, txn, commit, timestamp)| Event::EndTxn { topic, partition, txn, commit, timestamp }
        ),
        (topic.clone(), partition.clone(), offset.clone(), ".{0,12}").prop_map(
            |(topic, partition, offset, metadata)| Event::Offset {
                group: "g".into(),
                topic,
                partition,
                offset,
                metadata
            }
        ),
        Just(Event::Compact),
        (topic, partition, offset).prop_map(|(topic, partition, offset)| Event::DeleteRecords {
            topic,
            partition,
            offset
        }),
    ]
}

/// Keys of real settings, of families, of Java-only settings and unknown ones; values of every shape.
fn setting() -> impl Strategy<Value = (String, String)> {
    let known: Vec<String> = crate::config::settings::SETTINGS.iter().map(|s| s.property.to_string()).collect();
    let key = prop_oneof![
        4 => proptest::sample::select(known),
        1 => Just("consumer.fetch.max.bytes".to_string()),
        1 => Just("ssl.truststore.location".to_string()),
        1 => ".{0,16}",
    ];
    let value = prop_oneof![
        Just(String::new()),
        Just("-1".to_string()),
        Just("18446744073709551616".to_string()),
        Just("9223372036854775807".to_string()),
        Just("exactly_once_v2".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        ".{0,24}",
    ];
    (key, value)
}

proptest! {
    #[test]
    fn no_serde_panics_on_any_bytes(bytes in bytes()) {
        deserialize_with_every_serde(&bytes);
    }

    #[test]
    fn serdes_read_back_what_they_write(
        key in ".{0,12}",
        start in any::<i64>(),
        length in 0..i64::MAX,
        timestamp in any::<i64>(),
        new in proptest::option::of(".{0,8}"),
        old in proptest::option::of(".{0,8}"),
    ) {
        let windowed = Windowed { key: key.clone(), window: Window { start, end: start.saturating_add(60_000) } };
        let serde = TimeWindowedSerde::new(string(), std::time::Duration::from_secs(60));
        prop_assert_eq!(round_trip(&serde, &windowed), windowed);
        let start = start.max(0);
        let session = Windowed { key: key.clone(), window: Window { start, end: start.saturating_add(length) } };
        prop_assert_eq!(round_trip(&SessionWindowedSerde::new(string()), &session), session);
        let stamped = ValueAndTimestamp { value: key, timestamp };
        prop_assert_eq!(round_trip(&ValueAndTimestampSerde::new(string()), &stamped), stamped);
        let change = Change::new(new, old);
        prop_assert_eq!(round_trip(&ChangeSerde(string()), &change), change);
    }

    #[test]
    fn foreign_key_join_formats_read_back_what_they_write(
        hash in proptest::option::of(any::<[u8; 16]>()),
        instruction in instruction(),
        key in ".{0,12}",
        partition in proptest::option::of(any::<i32>()),
        foreign in proptest::option::of(".{1,8}"),
    ) {
        let subscription = Subscription { hash, instruction, primary_key: key, primary_partition: partition };
        prop_assert_eq!(round_trip(&SubscriptionSerde::new(string()), &subscription), subscription);
        let response = Response { hash, foreign_value: foreign, primary_partition: None };
        prop_assert_eq!(round_trip(&ResponseSerde::new(string()), &response), response);
    }

    #[test]
    fn committed_offset_metadata_is_read_or_refused(text in ".{0,40}", raw in bytes()) {
        let _ = offset_metadata::decode(&text);
        let _ = offset_metadata::decode(&offset_metadata::base64_encode(&raw));
    }

    #[test]
    fn committed_offset_metadata_reads_back_what_it_wrote(
        time in any::<i64>(),
        entries in proptest::collection::btree_map(".{0,8}", any::<i64>(), 0..4),
    ) {
        let mut metadata = ProcessorMetadata::default();
        for (key, value) in &entries {
            metadata.put(key, *value);
        }
        let decoded = offset_metadata::decode(&offset_metadata::encode(time, &metadata));
        prop_assert_eq!(decoded, Ok((time, entries)));
    }

    #[test]
    fn owner_epochs_are_read_from_any_header_and_file(header in bytes(), file in bytes()) {
        let mut headers = Headers::new();
        headers.add(crate::OWNER_EPOCH_HEADER, Some(header.clone()));
        let record = RawRecord {
            topic: "changelog".into(),
            partition: 0,
            offset: 0,
            timestamp: 0,
            key: None,
            value: None,
            headers,
        };
        let epoch = owner_epoch::of(&record);
        prop_assert_eq!(epoch.is_some(), header.len() == 4);
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join(owner_epoch::FILE_NAME), &file).expect("written");
        let _ = owner_epoch::read_recorded(dir.path());
    }

    #[test]
    fn an_embedded_broker_opens_any_journal_of_events_or_names_the_line_at_fault(
        events in proptest::collection::vec(event(), 0..24),
    ) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let lines: String =
            events.iter().map(|e| serde_json::to_string(e).expect("serializable") + "\n").collect();
        std::fs::write(dir.path().join("broker.journal"), lines).expect("written");
        if let Ok(broker) = EmbeddedBroker::open(dir.path()) {
            // What was replayed can be read.
            for topic in ["t", "u"] {
                let _ = broker.read_all(topic);
            }
        }
    }

    #[test]
    fn an_embedded_broker_opens_any_journal_file_or_names_the_line_at_fault(file in bytes(), cut in any::<usize>()) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let seeded = EmbeddedBroker::open(dir.path()).expect("a new journal");
        seeded.create_topic("t", 2);
        seeded.append("t", Some(1), Some(b"k".to_vec()), Some(b"v".to_vec()), 5).expect("appended");
        drop(seeded);
        let path = dir.path().join("broker.journal");
        let mut journal = std::fs::read(&path).expect("readable");
        // Cut anywhere, then followed by anything.
        journal.truncate(cut % (journal.len() + 1));
        journal.extend_from_slice(&file);
        std::fs::write(&path, journal).expect("written");
        let _ = EmbeddedBroker::open(dir.path());
    }

    #[test]
    fn configuration_is_set_or_refused_with_the_setting_named(
        settings in proptest::collection::vec(setting(), 0..6),
        file in ".{0,200}",
    ) {
        let mut properties = vec![("application.id".to_string(), "app".to_string())];
        properties.push(("bootstrap.servers".to_string(), "localhost:9092".to_string()));
        properties.extend(settings);
        if let Ok(config) = StreamsConfig::from_properties(properties) {
            let _ = config.validate();
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("app.properties");
        std::fs::write(&path, file).expect("written");
        let _ = StreamsConfig::from_properties_file(&path);
    }
}
