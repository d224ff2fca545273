//! The Processor API through the test driver: stores, record metadata, forward_to, and punctuation on
//! stream time and on wall-clock time; fixed-key processors and table value transformers with stores.

use std::sync::Arc;
use std::time::Duration;

use kstreams::prelude::*;
use kstreams::processor::{PunctuationId, StoreHandle};
use kstreams::serde::{I64Serde, StringSerde};
use kstreams::store::Stores;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Counts words in a store and emits all counts on every punctuation.
struct CountAndEmit {
    kind: PunctuationType,
    counts: Option<StoreHandle<String, i64>>,
    schedule: Option<PunctuationId>,
}

impl Processor<String, String, String, String> for CountAndEmit {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> std::result::Result<(), StreamsError> {
        self.counts = Some(ctx.store_handle("counts")?);
        self.schedule = Some(ctx.schedule(Duration::from_millis(10), self.kind));
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        record: Record<String, String>,
    ) -> std::result::Result<(), StreamsError> {
        let store = ctx.store_mut(self.counts.unwrap())?;
        let count = store.get(&record.value)?.unwrap_or(0) + 1;
        store.put(&record.value, &count)?;
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        punctuation: Punctuation,
    ) -> std::result::Result<(), StreamsError> {
        assert_eq!(Some(punctuation.id), self.schedule);
        assert!(ctx.record_metadata().is_none(), "no input record during a punctuation");
        let all: Vec<(String, i64)> =
            ctx.store_mut(self.counts.unwrap())?.all()?.collect::<std::result::Result<_, _>>()?;
        let summary = all.iter().map(|(w, c)| format!("{w}={c}")).collect::<Vec<_>>().join(",");
        ctx.forward(Record::new(format!("@{}", punctuation.timestamp), summary, punctuation.timestamp))
    }
}

fn counting_topology(kind: PunctuationType) -> Result<Topology> {
    let mut topology = Topology::new();
    topology
        .add_source("words", &["words"], Arc::new(StringSerde), Arc::new(StringSerde))?
        .add_processor("count", move || CountAndEmit { kind, counts: None, schedule: None }, &["words"])?
        .add_state_store(
            Stores::key_value_store_builder(
                Stores::in_memory_key_value_store("counts"),
                Arc::new(StringSerde),
                Arc::new(I64Serde),
            ),
            &["count"],
        )?
        .add_sink("out", "summaries", Arc::new(StringSerde), Arc::new(StringSerde), &["count"])?;
    Ok(topology)
}

#[test]
fn stream_time_punctuation_fires_as_record_timestamps_advance() -> Result {
    let mut driver = TopologyTestDriver::new(counting_topology(PunctuationType::StreamTime)?)?;
    let words = driver.input_topic::<String, String>("words");
    let out = driver.output_topic::<String, String>("summaries");
    // Kafka Streams: stream-time schedules are aligned to 0 and fire as soon as there is data,
    // at most once per record, skipping intervals that were jumped over.
    driver.pipe(&words, String::new(), "a".into(), 3)?; // fires at 3 (due at 0); next due 10
    driver.pipe(&words, String::new(), "b".into(), 9)?; // not due
    driver.pipe(&words, String::new(), "a".into(), 10)?; // fires at 10; next 20
    driver.pipe(&words, String::new(), "c".into(), 5)?; // out of order: stream time stays 10
    driver.pipe(&words, String::new(), "c".into(), 47)?; // fires once at 47; next 50
    driver.advance_wall_clock_time(Duration::from_secs(60))?; // wall clock does not fire stream-time schedules
    assert_eq!(
        driver.read_key_values(&out),
        vec![("@3".into(), "a=1".into()), ("@10".into(), "a=2,b=1".into()), ("@47".into(), "a=2,b=1,c=2".into())]
    );
    assert_eq!(driver.metrics().punctuations, 3);
    Ok(())
}

#[test]
fn wall_clock_punctuation_fires_as_time_passes() -> Result {
    let mut driver = TopologyTestDriver::new(counting_topology(PunctuationType::WallClockTime)?)?;
    let words = driver.input_topic::<String, String>("words");
    let out = driver.output_topic::<String, String>("summaries");
    driver.pipe(&words, String::new(), "a".into(), 1_000_000)?; // stream time does not fire it
    assert!(driver.read_key_values(&out).is_empty());
    driver.advance_wall_clock_time(Duration::from_millis(9))?; // 9: not yet (first due at 10)
    driver.advance_wall_clock_time(Duration::from_millis(1))?; // 10: fires
    driver.advance_wall_clock_time(Duration::from_millis(35))?; // 45: fires once, next 50
    driver.advance_wall_clock_time(Duration::from_millis(5))?; // 50: fires
    assert_eq!(
        driver.read_key_values(&out),
        vec![("@10".into(), "a=1".into()), ("@45".into(), "a=1".into()), ("@50".into(), "a=1".into())]
    );
    Ok(())
}

/// Forwards to a named child, and reports where the record came from.
struct Route;

impl Processor<String, String, String, String> for Route {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        record: Record<String, String>,
    ) -> std::result::Result<(), StreamsError> {
        let meta = ctx.record_metadata().cloned().expect("metadata while processing");
        let tagged = record.with_value(format!("{}@{}/{}/{}", "v", meta.topic, meta.partition, meta.offset));
        let child = if tagged.key.starts_with('x') { "to-x" } else { "to-other" };
        ctx.forward_to(child, tagged)
    }
}

#[test]
fn forward_to_reaches_one_named_child_and_metadata_names_the_input() -> Result {
    let mut topology = Topology::new();
    let string = || Arc::new(StringSerde);
    topology
        .add_source("in", &["input"], string(), string())?
        .add_processor("route", || Route, &["in"])?
        .add_sink("to-x", "xs", string(), string(), &["route"])?
        .add_sink("to-other", "others", string(), string(), &["route"])?;
    let mut driver = TopologyTestDriver::new(topology)?;
    let input = driver.input_topic::<String, String>("input");
    driver.pipe(&input, "x1".into(), "_".into(), 0)?;
    driver.pipe(&input, "y1".into(), "_".into(), 0)?;
    let (xs, others) = (driver.output_topic::<String, String>("xs"), driver.output_topic::<String, String>("others"));
    assert_eq!(driver.read_key_values(&xs), vec![("x1".to_string(), "v@input/0/0".to_string())]);
    assert_eq!(driver.read_key_values(&others), vec![("y1".to_string(), "v@input/0/1".to_string())]);
    Ok(())
}

struct UsesMissingStore;

impl Processor<String, String, String, String> for UsesMissingStore {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> std::result::Result<(), StreamsError> {
        ctx.store_handle::<String, i64>("not-connected").map(|_| ())
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, String, String>,
        _record: Record<String, String>,
    ) -> std::result::Result<(), StreamsError> {
        Ok(())
    }
}

#[test]
fn a_store_the_processor_is_not_connected_to_is_an_error_naming_both() -> Result {
    let mut topology = Topology::new();
    topology
        .add_source("in", &["input"], Arc::new(StringSerde), Arc::new(StringSerde))?
        .add_processor("p", || UsesMissingStore, &["in"])?
        .add_state_store(
            Stores::key_value_store_builder(
                Stores::in_memory_key_value_store("not-connected"),
                Arc::new(StringSerde),
                Arc::new(I64Serde),
            ),
            &[],
        )?;
    let err = TopologyTestDriver::new(topology).err().expect("init fails");
    let message = err.to_string();
    assert!(message.contains("`p`") && message.contains("`not-connected`"), "{message}");
    Ok(())
}

#[test]
fn a_store_read_with_the_wrong_types_is_an_error() -> Result {
    let mut topology = counting_topology(PunctuationType::StreamTime)?;
    topology.add_processor("wrong", || UsesMissingStore, &["words"])?;
    topology.add_state_store(
        Stores::key_value_store_builder(
            Stores::in_memory_key_value_store("not-connected"),
            Arc::new(I64Serde),
            Arc::new(I64Serde),
        ),
        &["wrong"],
    )?;
    let err = TopologyTestDriver::new(topology).err().expect("init fails");
    assert!(err.to_string().contains("the store holds (i64, i64)"), "{err}");
    Ok(())
}

/// The DSL and the Processor API mix: a DSL stream feeds a hand-written processor's topic.
#[test]
fn dsl_processors_and_hand_written_ones_share_one_execution_path() -> Result {
    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("raw").map_values(|v| v.to_uppercase()).to("words");
    let dsl = builder.build()?;
    let mut driver = TopologyTestDriver::new(dsl)?;
    let raw = driver.input_topic::<String, String>("raw");
    driver.pipe(&raw, "k".into(), "hello".into(), 0)?;
    let words = driver.output_topic::<String, String>("words");
    assert_eq!(driver.read_key_values(&words), vec![("k".to_string(), "HELLO".to_string())]);
    Ok(())
}

/// Keeps a running count per key in the store `counts` and forwards it, re-keyed by the value.
struct CountByValue;

impl Processor<String, String, String, i64> for CountByValue {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        record: Record<String, String>,
    ) -> std::result::Result<(), StreamsError> {
        let store = ctx.store::<String, i64>("counts")?;
        let count = store.get(&record.key)?.unwrap_or(0) + 1;
        store.put(&record.key, &count)?;
        let value = record.value.clone();
        ctx.forward(record.with_key_value(value, count))
    }
}

#[test]
fn kstream_process_runs_a_processor_with_a_store_inside_the_dsl() -> Result<()> {
    let builder = StreamsBuilder::new();
    builder.add_state_store(Stores::key_value_store_builder(
        Stores::in_memory_key_value_store("counts"),
        Arc::new(StringSerde),
        Arc::new(I64Serde),
    ));
    builder.stream::<String, String>("events").process(|| CountByValue, &["counts"]).to("counted");
    let topology = builder.build()?;
    let description = topology.describe().to_string();
    assert!(description.contains("Processor: KSTREAM-PROCESSOR-0000000001 (stores: [counts])"), "{description}");

    let mut driver = TopologyTestDriver::new(topology)?;
    let events = driver.input_topic::<String, String>("events");
    let counted = driver.output_topic::<String, i64>("counted");
    for (i, (key, value)) in [("a", "x"), ("b", "y"), ("a", "z")].into_iter().enumerate() {
        driver.pipe(&events, key.to_string(), value.to_string(), i as i64)?;
    }
    assert_eq!(driver.read_key_values(&counted), vec![("x".into(), 1), ("y".into(), 1), ("z".into(), 2)]);

    // A store never added is named by build().
    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("events").process(|| CountByValue, &["counts"]).to("counted");
    let error = builder.build().err().expect("the store is missing").to_string();
    assert!(error.contains("counts"), "{error}");
    Ok(())
}

/// Numbers each key's records in a store, as a fixed-key processor (the key cannot change).
struct NumberPerKey;

impl kstreams::processor::FixedKeyProcessor<String, String, String> for NumberPerKey {
    fn process(
        &mut self,
        ctx: &mut kstreams::processor::FixedKeyProcessorContext<'_, String, String>,
        record: kstreams::processor::FixedKeyRecord<String, String>,
    ) -> std::result::Result<(), StreamsError> {
        let store = ctx.store::<String, i64>("numbers")?;
        let n = store.get(record.key())?.unwrap_or(0) + 1;
        store.put(record.key(), &n)?;
        let numbered = format!("{n}:{}", record.value);
        ctx.forward(record.with_value(numbered))
    }
}

/// A table's value transformer that reads a store of greetings by key.
struct Greet;

impl kstreams::dsl::ValueTransformerWithKey<String, String, String> for Greet {
    fn transform(
        &mut self,
        ctx: &mut kstreams::processor::ProcessingContext<'_>,
        key: &String,
        name: Option<&String>,
    ) -> std::result::Result<Option<String>, StreamsError> {
        let greeting = ctx.store::<String, String>("greetings")?.get(key)?.unwrap_or_else(|| "hello".into());
        Ok(name.map(|n| format!("{greeting} {n}")))
    }
}

#[test]
fn process_values_and_transform_values_use_their_stores() -> Result<()> {
    let builder = StreamsBuilder::new();
    builder.add_state_store(Stores::key_value_store_builder(
        Stores::in_memory_key_value_store("numbers"),
        Arc::new(StringSerde),
        Arc::new(I64Serde),
    ));
    builder.add_state_store(Stores::key_value_store_builder(
        Stores::in_memory_key_value_store("greetings"),
        Arc::new(StringSerde),
        Arc::new(StringSerde),
    ));
    // process_values keeps the key, so the count after it needs no repartition topic.
    let numbered = builder.stream::<String, String>("events").process_values(|| NumberPerKey, &["numbers"]);
    numbered.to("numbered");
    numbered.group_by_key().count().to_stream().to("counts");
    builder.table::<String, String>("names").transform_values(|| Greet, &["greetings"]).to_stream().to("greeted");
    let topology = builder.build()?;
    let description = topology.describe().to_string();
    assert!(description.contains("Processor: KSTREAM-PROCESSVALUES-0000000001 (stores: [numbers])"), "{description}");
    assert!(!description.contains("repartition"), "{description}");

    let mut driver = TopologyTestDriver::new(topology)?;
    let events = driver.input_topic::<String, String>("events");
    for (key, value) in [("a", "x"), ("b", "y"), ("a", "z")] {
        driver.pipe(&events, key.to_string(), value.to_string(), 0)?;
    }
    let out = driver.output_topic::<String, String>("numbered");
    assert_eq!(
        driver.read_key_values(&out),
        vec![("a".into(), "1:x".into()), ("b".into(), "1:y".into()), ("a".into(), "2:z".into())]
    );
    driver
        .key_value_store::<String, String>("greetings")
        .expect("the store")
        .put(&"ada".to_string(), &"hi".to_string())?;
    let names = driver.input_topic::<String, Option<String>>("names");
    driver.pipe(&names, "ada".into(), Some("Ada".into()), 1)?;
    driver.pipe(&names, "bob".into(), Some("Bob".into()), 2)?;
    let greeted = driver.output_topic::<String, Option<String>>("greeted");
    assert_eq!(
        driver.read_key_values(&greeted),
        vec![("ada".into(), Some("hi Ada".into())), ("bob".into(), Some("hello Bob".into()))]
    );
    Ok(())
}
