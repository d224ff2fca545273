//! The foundation's acceptance test: per-customer order totals through the test driver equal what a plain
//! loop computes, update by update, in input order, with invalid orders and null keys in the input.

#[path = "../examples/support/rng.rs"]
mod rng;

use std::collections::BTreeMap;

use kstreams::prelude::*;
use kstreams::serde::{to_bytes, DefaultSerde};
use rng::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    order_id: u64,
    customer_id: i64,
    total_value: f64,
}
json_serde!(Order);

/// The topology, and the name of the store holding the totals.
fn order_totals() -> (Topology, String) {
    let builder = StreamsBuilder::new();
    let totals = builder
        .stream::<i64, Order>("orders")
        .filter(|_, order| order.total_value > 0.0)
        .map_values(|order| order.total_value)
        .group_by_key()
        .reduce(|a, b| a + b);
    totals.to_stream().to("customer-totals");
    let store = totals.store_name().expect("aggregations are materialized").to_string();
    (builder.build().expect("valid topology"), store)
}

#[test]
fn order_totals_match_a_plain_loop_update_by_update() -> anyhow::Result<()> {
    let (topology, store_name) = order_totals();
    let mut driver = TopologyTestDriver::new(topology)?;
    let orders = driver.input_topic::<i64, Order>("orders");
    let totals = driver.output_topic::<i64, Option<f64>>("customer-totals");

    let mut random = Rng::new(0x5eed);
    let mut expected = Vec::new();
    let mut running: BTreeMap<i64, f64> = BTreeMap::new();
    let (mut invalid, mut null_keys) = (0, 0);
    for i in 0..500u64 {
        let customer = (random.next() % 7) as i64;
        let roll = random.next() % 10;
        let total_value = match roll {
            0 => -((random.next() % 100) as f64), // refund-like, invalid
            1 => 0.0,                             // invalid
            _ => (random.next() % 10_000) as f64 / 100.0,
        };
        let order = Order { order_id: i, customer_id: customer, total_value };
        if random.next().is_multiple_of(25) {
            // A record with a null key: the aggregation drops it (and counts it), as Kafka Streams does.
            let value = to_bytes(&*Order::default_serde(), "orders", &order)?;
            driver.pipe_raw("orders", None, value, i as i64)?;
            null_keys += 1;
            continue;
        }
        driver.pipe(&orders, customer, order.clone(), i as i64)?;
        if total_value > 0.0 {
            let total = running.entry(customer).or_insert(0.0);
            *total += total_value;
            expected.push((customer, Some(*total)));
        } else {
            invalid += 1;
        }
    }
    assert!(invalid > 20 && null_keys > 5, "the generator must exercise both paths ({invalid}, {null_keys})");

    let actual = driver.read_key_values(&totals);
    assert_eq!(actual.len(), expected.len());
    assert_eq!(actual, expected, "every update, in input order, with the loop's running totals");

    let stored: BTreeMap<i64, f64> = driver.store_entries::<i64, f64>(&store_name)?.into_iter().collect();
    assert_eq!(stored, running, "the store holds the final totals");
    assert_eq!(driver.metrics().dropped_records, null_keys as u64);
    Ok(())
}

#[test]
fn order_totals_topology_is_described_like_kafka_streams() {
    let description = order_totals().0.describe().to_string();
    assert_eq!(
        description,
        "Topologies:\n   Sub-topology: 0\n    Source: KSTREAM-SOURCE-0000000000 (topics: [orders])\n      --> KSTREAM-FILTER-0000000001\n    Processor: KSTREAM-FILTER-0000000001 (stores: [])\n      --> KSTREAM-MAPVALUES-0000000002\n      <-- KSTREAM-SOURCE-0000000000\n    Processor: KSTREAM-MAPVALUES-0000000002 (stores: [])\n      --> KSTREAM-REDUCE-0000000004\n      <-- KSTREAM-FILTER-0000000001\n    Processor: KSTREAM-REDUCE-0000000004 (stores: [KSTREAM-REDUCE-STATE-STORE-0000000003])\n      --> KTABLE-TOSTREAM-0000000005\n      <-- KSTREAM-MAPVALUES-0000000002\n    Processor: KTABLE-TOSTREAM-0000000005 (stores: [])\n      --> KSTREAM-SINK-0000000006\n      <-- KSTREAM-REDUCE-0000000004\n    Sink: KSTREAM-SINK-0000000006 (topic: customer-totals)\n      <-- KTABLE-TOSTREAM-0000000005\n\n"
    );
}
