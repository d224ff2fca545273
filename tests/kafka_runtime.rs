//! The runtime against a real Apache Kafka (started by scripts/test.sh): order totals end to end.

mod kafka;

use std::collections::BTreeMap;
use std::time::Duration;

use kstreams::prelude::*;
use kstreams::runtime::{KafkaStreams, State};
use kstreams::serde::{from_bytes, to_bytes, DefaultSerde};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    order_id: u64,
    customer_id: i64,
    total_value: f64,
}
json_serde!(Order);

#[test]
fn order_totals_end_to_end_on_kafka_match_a_plain_loop() -> anyhow::Result<()> {
    let orders = kafka::unique("orders");
    let totals = kafka::unique("customer-totals");
    kafka::create_topics(&[(&orders, 4), (&totals, 4)]);

    // Input: 2,000 orders over 20 customers; every 7th is invalid.
    let mut expected_updates: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    let mut running: BTreeMap<i64, f64> = BTreeMap::new();
    let mut input = Vec::new();
    for order_id in 0..2_000u64 {
        let customer_id = (order_id * 7919 % 20) as i64;
        let total_value = if order_id % 7 == 0 { -1.0 } else { (order_id % 100) as f64 + 0.5 };
        let order = Order { order_id, customer_id, total_value };
        let key = to_bytes(&*i64::default_serde(), &orders, &customer_id)?;
        let value = to_bytes(&*Order::default_serde(), &orders, &order)?;
        input.push((key, value));
        if total_value > 0.0 {
            let total = running.entry(customer_id).or_insert(0.0);
            *total += total_value;
            expected_updates.entry(customer_id).or_default().push(*total);
        }
    }
    let expected_count: usize = expected_updates.values().map(Vec::len).sum();
    kafka::produce(&orders, input);

    let builder = StreamsBuilder::new();
    builder
        .stream::<i64, Order>(&orders)
        .filter(|_, order| order.total_value > 0.0)
        .map_values(|order| order.total_value)
        .group_by_key()
        .reduce(|a, b| a + b)
        .to_stream()
        .to(&totals);
    let mut app = KafkaStreams::new(builder.build()?, kafka::config(&kafka::unique("order-totals")))?;
    app.start()?;
    assert!(app.wait_for_state(State::Running, Duration::from_secs(60)), "never reached RUNNING: {:?}", app.state());

    let records = kafka::consume_until(&totals, Duration::from_secs(60), |r| r.len() >= expected_count);
    app.close()?;
    assert_eq!(app.state(), State::NotRunning);

    let mut actual_updates: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for r in &records {
        let key = from_bytes(&*i64::default_serde(), &totals, r.key.as_deref())?.expect("keyed");
        let value =
            from_bytes(&*<Option<f64>>::default_serde(), &totals, r.value.as_deref())?.flatten().expect("a total");
        actual_updates.entry(key).or_default().push(value);
    }
    assert_eq!(records.len(), expected_count, "every update, once");
    assert_eq!(actual_updates, expected_updates, "per customer, every running total in order");
    assert_eq!(app.metrics().processed_records, 2_000);
    Ok(())
}
