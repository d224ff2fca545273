//! Event types at run time: what `#[derive(Event)]` gives a type, how `stream_event` reads an event topic
//! (the key on the wire, trusted; unreadable and null keys handled, never a panic), and how `to_event`
//! and event sinks write one (keyed, and so partitioned, by the event's key field).

mod orders;

use std::sync::Arc;

use kstreams::handler::LogAndContinue;
use kstreams::prelude::*;
use kstreams::serde::{to_bytes, I64Serde};
use kstreams::testing::TestDriverConfig;
use orders::{Order, OrderValidated};

fn order(customer_id: i64, order_id: i64, total_value: f64) -> Order {
    Order { customer_id, order_id, product: "book".into(), quantity: 1, total_value }
}

/// Per-customer order counts read from the event topic.
fn counts_per_customer() -> Topology {
    let builder = StreamsBuilder::new();
    builder.stream_event::<Order>().group_by_key().count().to_stream().to("counts");
    builder.build().expect("valid topology")
}

#[test]
fn the_derive_binds_topic_key_and_a_json_serde() -> anyhow::Result<()> {
    assert_eq!(Order::TOPIC, "orders");
    assert_eq!(OrderValidated::TOPIC, "order-validated");
    let event = order(7, 1, 9.5);
    assert_eq!(event.key(), 7);
    let bytes = to_bytes(&*Order::default_serde(), "orders", &event)?.expect("not null");
    assert_eq!(serde_json::from_slice::<Order>(&bytes)?, event, "JSON, as json_serde! writes it");
    Ok(())
}

#[test]
fn stream_event_is_the_same_source_as_stream_with_the_topic_and_needs_no_repartition() -> anyhow::Result<()> {
    let by_name = StreamsBuilder::new();
    by_name.stream::<i64, Order>("orders").group_by_key().count().to_stream().to("counts");
    let description = counts_per_customer().describe().to_string();
    assert_eq!(description, by_name.build()?.describe().to_string());
    assert!(!description.contains("repartition"), "keyed by customer already: {description}");
    assert_eq!(description.matches("Sub-topology").count(), 1);

    let tables = StreamsBuilder::new();
    tables.table_event::<Order>();
    let by_name = StreamsBuilder::new();
    by_name.table::<i64, Order>("orders");
    assert_eq!(tables.build()?.describe().to_string(), by_name.build()?.describe().to_string());
    Ok(())
}

#[test]
fn an_unreadable_key_is_a_deserialization_error_naming_the_record() -> anyhow::Result<()> {
    let mut driver = TopologyTestDriver::new(counts_per_customer())?;
    let orders = driver.input_topic::<i64, Order>("orders");
    driver.pipe(&orders, 7, order(7, 1, 1.0), 0)?;
    let value = to_bytes(&*Order::default_serde(), "orders", &order(8, 2, 1.0))?;
    let error = driver.pipe_raw("orders", Some(vec![1, 2, 3]), value, 1).expect_err("3 bytes are not an i64");
    match &error {
        StreamsError::Deserialization { topic, partition, offset, part, .. } => {
            assert_eq!(
                (topic.as_str(), *partition, *offset, *part),
                ("orders", 0, 1, kstreams::record::RecordPart::Key)
            );
        }
        other => panic!("expected a deserialization error, got {other:?}"),
    }
    Ok(())
}

#[test]
fn unreadable_and_null_keys_are_counted_not_lost_under_log_and_continue() -> anyhow::Result<()> {
    let config = TestDriverConfig { deserialization_handler: Arc::new(LogAndContinue), ..Default::default() };
    let mut driver = TopologyTestDriver::with_config(counts_per_customer(), config)?;
    let orders = driver.input_topic::<i64, Order>("orders");
    let counts = driver.output_topic::<i64, Option<i64>>("counts");
    let value = to_bytes(&*Order::default_serde(), "orders", &order(8, 2, 1.0))?;
    driver.pipe(&orders, 7, order(7, 1, 1.0), 0)?;
    driver.pipe_raw("orders", Some(vec![1, 2, 3]), value.clone(), 1)?;
    driver.pipe_raw("orders", None, value, 2)?;
    driver.pipe(&orders, 7, order(7, 3, 1.0), 3)?;
    assert_eq!(driver.read_key_values(&counts), vec![(7, Some(1)), (7, Some(2))]);
    let metrics = driver.metrics();
    assert_eq!((metrics.skipped_records, metrics.dropped_records), (1, 1));
    Ok(())
}

#[test]
fn to_event_writes_keyed_by_the_events_key_field() -> anyhow::Result<()> {
    let builder = StreamsBuilder::new();
    // Orders from the web shop arrive keyed by order id; the event topic is keyed by customer.
    builder.stream::<i64, Order>("web-orders").to_event();
    let topology = builder.build()?;
    assert!(topology.describe().to_string().contains("KSTREAM-KEY-SELECT"), "{}", topology.describe());
    let mut driver = TopologyTestDriver::new(topology)?;
    let web = driver.input_topic::<i64, Order>("web-orders");
    driver.pipe(&web, 1001, order(7, 1001, 5.0), 0)?;
    driver.pipe(&web, 1002, order(9, 1002, 6.0), 1)?;
    let raw_keys: Vec<Option<Vec<u8>>> = driver.peek_raw("orders").into_iter().map(|r| r.key).collect();
    let customer_keys = [7_i64, 9].map(|k| to_bytes(&I64Serde, "orders", &k).unwrap());
    assert_eq!(raw_keys, customer_keys, "the key bytes, which the producer's partitioner hashes");
    let out = driver.output_topic::<i64, Order>("orders");
    assert_eq!(driver.read_key_values(&out), vec![(7, order(7, 1001, 5.0)), (9, order(9, 1002, 6.0))]);
    Ok(())
}

#[test]
fn an_event_sink_writes_as_to_event_does() -> anyhow::Result<()> {
    let sink = Sink::<i64, Order>::event();
    assert_eq!((sink.topic(), sink.is_keyed_by_event()), ("orders", true));
    let through_sink = StreamsBuilder::new();
    through_sink.stream::<i64, Order>("web-orders").to_sink(&sink);
    let through_to_event = StreamsBuilder::new();
    through_to_event.stream::<i64, Order>("web-orders").to_event();
    assert_eq!(through_sink.build()?.describe().to_string(), through_to_event.build()?.describe().to_string());

    let plain = Sink::<i64, Order>::new("orders-copy");
    assert!(!plain.is_keyed_by_event());
    let builder = StreamsBuilder::new();
    builder.stream::<i64, Order>("web-orders").to_sink(&plain);
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    let web = driver.input_topic::<i64, Order>("web-orders");
    driver.pipe(&web, 1001, order(7, 1001, 5.0), 0)?;
    let out = driver.output_topic::<i64, Order>("orders-copy");
    assert_eq!(driver.read_key_values(&out), vec![(1001, order(7, 1001, 5.0))], "a plain sink keeps the key");
    Ok(())
}
