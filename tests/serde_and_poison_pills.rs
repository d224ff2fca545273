//! Serdes at the edges: JSON round trips, Kafka wire formats seen from a topology, and records that
//! cannot be read under each deserialization handler.

use std::sync::Arc;

use kstreams::handler::{DeadLetterQueue, LogAndContinue, LogAndFail};
use kstreams::prelude::*;
use kstreams::record::RecordPart;
use kstreams::serde::{from_bytes, to_bytes, DefaultSerde, JsonSerde};
use kstreams::testing::TestDriverConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    total: f64,
}
json_serde!(Order);

#[test]
fn json_serde_round_trips_and_names_the_type_on_bad_input() {
    let serde = JsonSerde::<Order>::new();
    let order = Order { id: 7, total: 12.5 };
    let bytes = to_bytes(&serde, "orders", &order).unwrap().unwrap();
    assert_eq!(bytes, br#"{"id":7,"total":12.5}"#);
    assert_eq!(from_bytes(&serde, "orders", Some(&bytes)).unwrap(), Some(order));
    let err = from_bytes(&serde, "orders", Some(b"{not json")).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("Order") && message.contains("orders") && message.contains("invalid JSON"), "{message}");
}

/// What Java producers write, read by a topology: Integer keys, Long and Double values, UTF-8 strings.
#[test]
fn kafka_wire_formats_are_read_and_written_unchanged() -> anyhow::Result<()> {
    let b = StreamsBuilder::new();
    b.stream::<i32, f64>("java-doubles").map_values(|v| (v * 2.0) as i64).to("java-longs");
    let mut driver = TopologyTestDriver::new(b.build()?)?;
    // IntegerSerializer(7) and DoubleSerializer(1.25), byte for byte.
    driver.pipe_raw("java-doubles", Some(vec![0, 0, 0, 7]), Some(vec![0x3f, 0xf4, 0, 0, 0, 0, 0, 0]), 0)?;
    let written = driver.peek_raw("java-longs");
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].key.as_deref(), Some(&[0, 0, 0, 7][..]));
    assert_eq!(written[0].value.as_deref(), Some(&[0, 0, 0, 0, 0, 0, 0, 2][..])); // LongSerializer(2)
    Ok(())
}

fn order_pipeline(
    handler: Arc<dyn kstreams::handler::DeserializationExceptionHandler>,
) -> anyhow::Result<TopologyTestDriver> {
    let b = StreamsBuilder::new();
    b.stream::<String, Order>("orders").map_values(|o| o.total).to("totals");
    let config = TestDriverConfig { deserialization_handler: handler, ..TestDriverConfig::default() };
    Ok(TopologyTestDriver::with_config(b.build()?, config)?)
}

fn pipe_good_bad_good(driver: &mut TopologyTestDriver) -> Vec<Result<(), StreamsError>> {
    let good = |id| to_bytes(&*Order::default_serde(), "orders", &Order { id, total: id as f64 }).unwrap();
    vec![
        driver.pipe_raw("orders", Some(b"c1".to_vec()), good(1), 0),
        driver.pipe_raw("orders", Some(b"c1".to_vec()), Some(b"\x00garbage".to_vec()), 1),
        driver.pipe_raw("orders", Some(b"c1".to_vec()), good(3), 2),
    ]
}

#[test]
fn poison_pill_under_log_and_fail_is_an_error_naming_topic_partition_and_offset() -> anyhow::Result<()> {
    let mut driver = order_pipeline(Arc::new(LogAndFail))?;
    let results = pipe_good_bad_good(&mut driver);
    assert!(results[0].is_ok() && results[2].is_ok());
    let err = results[1].as_ref().unwrap_err();
    assert!(
        matches!(err, StreamsError::Deserialization { topic, partition: 0, offset: 1, part: RecordPart::Value, .. } if topic == "orders")
    );
    assert_eq!(err.to_string(), "cannot deserialize the value of the record at orders-0 offset 1");
    let cause = std::error::Error::source(err).unwrap().to_string();
    assert!(cause.contains("invalid JSON"), "{cause}");
    // The whole chain, as `{:#}` and `error_chain` print it (docs/getting-started.md, "When something
    // fails"): each cause once.
    let chain = kstreams::handler::error_chain(err);
    assert_eq!(
        chain,
        "cannot deserialize the value of the record at orders-0 offset 1: `serde_and_poison_pills::Order` \
         (topic `orders`): invalid JSON: expected value at line 1 column 1"
    );
    Ok(())
}

#[test]
fn poison_pill_under_log_and_continue_is_skipped_and_counted() -> anyhow::Result<()> {
    let mut driver = order_pipeline(Arc::new(LogAndContinue))?;
    assert!(pipe_good_bad_good(&mut driver).iter().all(Result::is_ok));
    let totals = driver.output_topic::<String, f64>("totals");
    assert_eq!(driver.read_key_values(&totals), vec![("c1".to_string(), 1.0), ("c1".to_string(), 3.0)]);
    assert_eq!(driver.metrics().skipped_records, 1);
    Ok(())
}

#[test]
fn poison_pill_under_dead_letter_queue_goes_to_the_dlq_topic_with_its_story() -> anyhow::Result<()> {
    let mut driver = order_pipeline(Arc::new(DeadLetterQueue::new("orders-dlq")))?;
    assert!(pipe_good_bad_good(&mut driver).iter().all(Result::is_ok));
    let dead = driver.peek_raw("orders-dlq");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value.as_deref(), Some(&b"\x00garbage"[..]), "the raw record, unchanged");
    assert_eq!(dead[0].key.as_deref(), Some(&b"c1"[..]));
    let header = |name| dead[0].headers.last(name).flatten().map(|v| String::from_utf8_lossy(v).to_string());
    assert_eq!(header("__streams.errors.topic").as_deref(), Some("orders"));
    assert_eq!(header("__streams.errors.offset").as_deref(), Some("1"));
    assert!(header("__streams.errors.message").unwrap().contains("invalid JSON"));
    let totals = driver.output_topic::<String, f64>("totals");
    assert_eq!(driver.read_key_values(&totals).len(), 2);
    Ok(())
}

#[test]
fn a_null_key_where_the_key_type_cannot_be_null_is_dropped_and_counted_not_a_crash() -> anyhow::Result<()> {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").to("out");
    b.stream::<Option<String>, String>("nullable").to("out2");
    let mut driver = TopologyTestDriver::new(b.build()?)?;
    driver.pipe_raw("in", None, Some(b"v".to_vec()), 0)?;
    driver.pipe_raw("nullable", None, Some(b"v".to_vec()), 0)?;
    assert_eq!(driver.metrics().dropped_records, 1);
    assert_eq!(driver.queue_size("out"), 0);
    let out2 = driver.output_topic::<Option<String>, String>("out2");
    assert_eq!(driver.read_key_values(&out2), vec![(None, "v".to_string())], "an Option key keeps the null");
    Ok(())
}
