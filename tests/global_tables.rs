//! Global tables in the test driver: names and `describe()` as Kafka Streams 4.x prints them, the
//! stream-global join semantics of Kafka Streams (4.0.1 and later), and the Processor API's global
//! stores. The runtime's side (bootstrap before processing, following, checkpoints) is the scenario
//! `a_global_table_is_read_whole_before_processing_and_followed` on both brokers.

use std::sync::Arc;

use kstreams::dsl::{Consumed, Materialized};
use kstreams::prelude::*;
use kstreams::serde::StringSerde;
use kstreams::store::Stores;

/// `stream("in")`, `global_table("g")`, joined to `out`: the text Kafka Streams 4.0 prints for it.
#[test]
fn describe_prints_a_global_store_as_kafka_streams_does() -> Result<(), Box<dyn std::error::Error>> {
    let builder = StreamsBuilder::new();
    let stream = builder.stream::<String, String>("in");
    let global = builder.global_table::<String, String>("g");
    stream.join_global(&global, |_, v| v.clone(), |v, g| format!("{v}{g}")).to("out");
    let expected = "Topologies:\n   Sub-topology: 0\n    Source: KSTREAM-SOURCE-0000000000 (topics: [in])\n      --> KSTREAM-LEFTJOIN-0000000004\n    Processor: KSTREAM-LEFTJOIN-0000000004 (stores: [])\n      --> KSTREAM-SINK-0000000005\n      <-- KSTREAM-SOURCE-0000000000\n    Sink: KSTREAM-SINK-0000000005 (topic: out)\n      <-- KSTREAM-LEFTJOIN-0000000004\n\n  Sub-topology: 1 for global store (will not generate tasks)\n    Source: KSTREAM-SOURCE-0000000002 (topics: [g])\n      --> KTABLE-SOURCE-0000000003\n    Processor: KTABLE-SOURCE-0000000003 (stores: [g-STATE-STORE-0000000001])\n      --> none\n      <-- KSTREAM-SOURCE-0000000002\n";
    assert_eq!(builder.build()?.describe().to_string(), expected);
    Ok(())
}

/// A global table defined first takes sub-topology 0; a `Consumed` name names the source and the
/// processor (burning their numbers); a `Materialized` name the store.
#[test]
fn global_tables_are_numbered_and_named_as_in_kafka_streams() -> Result<(), Box<dyn std::error::Error>> {
    let builder = StreamsBuilder::new();
    let serdes = || Consumed::with(Arc::new(StringSerde), Arc::new(StringSerde));
    let named = builder.global_table_with("g", serdes().with_name("named"), Materialized::new());
    let stored = builder.global_table_with("h", serdes(), Materialized::as_store("mystore"));
    assert_eq!((named.store_name(), stored.store_name()), ("g-STATE-STORE-0000000000", "mystore"));
    builder.stream::<String, String>("in").to("out");
    let description = builder.build()?.describe();
    let globals: Vec<(u32, String, String)> =
        description.global_stores.iter().map(|g| (g.id, g.source.name.clone(), g.processor.name.clone())).collect();
    assert_eq!(
        globals,
        vec![
            (0, "named-source".to_string(), "named".to_string()),
            (1, "KSTREAM-SOURCE-0000000003".to_string(), "KTABLE-SOURCE-0000000004".to_string())
        ]
    );
    assert_eq!(description.subtopologies.iter().map(|s| s.id).collect::<Vec<_>>(), vec![2]);
    assert!(description
        .to_string()
        .contains("  Sub-topology: 2\n    Source: KSTREAM-SOURCE-0000000005 (topics: [in])"));
    Ok(())
}

/// Kafka Streams' table for `KStreamKTableJoinProcessor` with a global table (4.0.1+): the key selector
/// picks the row; an inner join drops a null value or a null selected key and gives nothing for a
/// missing row; a left join gives `None` for both, and drops only null values. Table updates never
/// make output; a tombstone deletes the row.
#[test]
fn stream_global_joins_follow_kafka_streams_semantics() -> Result<(), Box<dyn std::error::Error>> {
    let builder = StreamsBuilder::new();
    let products = builder.global_table::<Option<String>, String>("products");
    let orders = builder.stream::<String, Option<String>>("orders");
    orders.join_global(&products, |_, product| product.clone(), |_, name| name.clone()).to("inner");
    orders
        .left_join_global(
            &products,
            |_, product| product.clone(),
            |_, name| name.cloned().unwrap_or_else(|| "?".into()),
        )
        .to("left");
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    let names = driver.input_topic::<Option<String>, Option<String>>("products");
    let input = driver.input_topic::<String, Option<String>>("orders");
    let (inner, left) = (driver.output_topic::<String, String>("inner"), driver.output_topic::<String, String>("left"));

    driver.pipe(&names, Some("p1".into()), Some("tea".into()), 0)?;
    driver.pipe(&input, "o1".into(), Some("p1".into()), 1)?; // a row: both join
    driver.pipe(&input, "o2".into(), Some("p2".into()), 2)?; // no row: only the left join answers
    driver.pipe(&input, "o3".into(), None, 3)?; // a null value: both drop
    driver.pipe(&names, Some("p1".into()), Some("coffee".into()), 4)?; // no output of its own
    driver.pipe(&input, "o4".into(), Some("p1".into()), 5)?;
    driver.pipe(&names, Some("p1".into()), None, 6)?; // deleted
    driver.pipe(&input, "o5".into(), Some("p1".into()), 7)?;
    assert_eq!(driver.read_key_values(&inner), vec![("o1".into(), "tea".into()), ("o4".into(), "coffee".into())]);
    assert_eq!(
        driver.read_key_values(&left),
        vec![
            ("o1".into(), "tea".into()),
            ("o2".into(), "?".into()),
            ("o4".into(), "coffee".into()),
            ("o5".into(), "?".into())
        ]
    );
    assert_eq!(driver.metrics().dropped_records, 2, "o3, once per join");
    assert_eq!(driver.store_entries::<Option<String>, String>("products-STATE-STORE-0000000000")?, vec![]);
    Ok(())
}

/// A null selected key: the inner join drops the record (counted), the left join answers it with no row
/// (Kafka Streams 4.0.1, KAFKA-19208).
#[test]
fn a_null_selected_key_is_dropped_by_the_inner_join_and_answered_by_the_left_join(
) -> Result<(), Box<dyn std::error::Error>> {
    let builder = StreamsBuilder::new();
    let products = builder.global_table::<Option<String>, String>("products");
    let orders = builder.stream::<String, String>("orders");
    let select = |_: &String, product: &String| (!product.is_empty()).then(|| product.clone());
    orders.join_global(&products, select, |_, name| name.clone()).to("inner");
    orders.left_join_global(&products, select, |_, name| format!("{name:?}")).to("left");
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    let input = driver.input_topic::<String, String>("orders");
    driver.pipe(&input, "o1".into(), String::new(), 1)?;
    let (inner, left) = (driver.output_topic::<String, String>("inner"), driver.output_topic::<String, String>("left"));
    assert!(driver.read_key_values(&inner).is_empty());
    assert_eq!(driver.read_key_values(&left), vec![("o1".into(), "None".into())]);
    assert_eq!(driver.metrics().dropped_records, 1);
    Ok(())
}

/// Topology::add_global_store: a processor of our own keeps the store (here: upper-cased values), and
/// another processor may not be connected to it.
#[test]
fn a_processor_api_global_store_is_kept_by_its_processor() -> Result<(), Box<dyn std::error::Error>> {
    struct Keep;
    impl Processor<String, String, (), ()> for Keep {
        fn process(
            &mut self,
            ctx: &mut ProcessorContext<'_, (), ()>,
            record: Record<String, String>,
        ) -> Result<(), StreamsError> {
            let handle = ctx.store_handle::<String, String>("upper")?;
            ctx.store_mut(handle)?.put(&record.key, &record.value.to_uppercase())
        }
    }
    let store = || {
        Stores::key_value_store_builder(
            Stores::in_memory_key_value_store("upper"),
            Arc::new(StringSerde),
            Arc::new(StringSerde),
        )
    };
    let add_global = |topology: &mut Topology| -> Result<(), TopologyError> {
        let (keys, values) = (Arc::new(StringSerde), Arc::new(StringSerde));
        topology.add_global_store(store(), "g-source", keys, values, "g", "g-keep", || Keep).map(|_| ())
    };
    let mut topology = Topology::new();
    topology.add_source("in", &["input"], Arc::new(StringSerde), Arc::new(StringSerde))?;
    topology.add_sink("out", "output", Arc::new(StringSerde), Arc::new(StringSerde), &["in"])?;
    add_global(&mut topology)?;
    let mut driver = TopologyTestDriver::new(topology)?;
    let g = driver.input_topic::<String, String>("g");
    driver.pipe(&g, "k".into(), "v".into(), 0)?;
    assert_eq!(driver.store_entries::<String, String>("upper")?, vec![("k".to_string(), "V".to_string())]);

    let mut topology = Topology::new();
    topology.add_source("in", &["input"], Arc::new(StringSerde), Arc::new(StringSerde))?;
    topology.add_processor("reader", || Keep, &["in"])?;
    add_global(&mut topology)?;
    topology.connect_processor_and_state_stores("reader", &["upper"])?;
    let error = topology.validate().unwrap_err().to_string();
    assert!(error.contains("processor `reader` is connected to the global store `upper`"), "{error}");
    Ok(())
}

/// Any processor reads a global store without being connected to it, read-only; a wrong type or an
/// unknown name is an error naming the store.
#[test]
fn processors_read_global_stores_through_their_context() -> Result<(), Box<dyn std::error::Error>> {
    struct Look(&'static str);
    impl Processor<String, String, String, String> for Look {
        fn process(
            &mut self,
            ctx: &mut ProcessorContext<'_, String, String>,
            record: Record<String, String>,
        ) -> Result<(), StreamsError> {
            let found = match self.0 {
                "wrong type" => {
                    ctx.global_store::<String, i64, _>("prices", |mut v| v.get(&record.value))?.map(|p| p.to_string())
                }
                "unknown" => ctx.global_store::<String, String, _>("nope", |mut v| v.get(&record.value))?,
                _ => ctx
                    .global_store::<String, kstreams::store::ValueAndTimestamp<String>, _>("prices", |mut v| {
                        v.get(&record.value)
                    })?
                    .map(|p| p.value),
            };
            ctx.forward(record.with_value(found.unwrap_or_default()))
        }
    }
    let run = |look: &'static str| -> Result<Vec<(String, String)>, StreamsError> {
        let builder = StreamsBuilder::new();
        let serdes = Consumed::with(Arc::new(StringSerde), Arc::new(StringSerde));
        builder.global_table_with("prices", serdes, Materialized::as_store("prices"));
        builder.stream::<String, String>("in").process(move || Look(look), &[]).to("out");
        let mut driver = TopologyTestDriver::new(builder.build().expect("valid"))?;
        let prices = driver.input_topic::<String, String>("prices");
        driver.pipe(&prices, "tea".into(), "3".into(), 0)?;
        let input = driver.input_topic::<String, String>("in");
        driver.pipe(&input, "k".into(), "tea".into(), 1)?;
        Ok(driver.read_key_values(&driver.output_topic::<String, String>("out")))
    };
    assert_eq!(run("right")?, vec![("k".to_string(), "3".to_string())]);
    let error = format!("{:?}", run("wrong type").unwrap_err());
    assert!(error.contains("prices") && error.contains("i64"), "{error}");
    let error = format!("{:?}", run("unknown").unwrap_err());
    assert!(error.contains("nope") && error.contains("no global store of that name"), "{error}");
    Ok(())
}
