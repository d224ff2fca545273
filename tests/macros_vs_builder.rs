//! The order pipeline's two steps written both ways, with `#[topology]` and with the builder, build the
//! same topology (`describe()` compared as text) and give the same results through the test driver,
//! which are also what a plain loop computes.

mod orders;
#[path = "../examples/support/rng.rs"]
mod rng;

use std::collections::BTreeMap;

use kstreams::prelude::*;
use orders::{
    order_totals, order_totals_by_hand, order_totals_into, order_validation, order_validation_by_hand, validate, Order,
    OrderRejected, OrderValidated, CATALOG, MAX_TOTAL,
};
use rng::Rng;

/// `count` orders from several customers, with every kind of invalid order mixed in: a quantity that is
/// not positive, an unknown product, a total that is not positive or above the limit.
fn generated_orders(count: i64) -> Vec<Order> {
    let mut random = Rng::new(0x0dd_5eed);
    (0..count)
        .map(|order_id| {
            let customer_id = random.below(9) as i64;
            let product = match random.below(12) {
                0 => "teapot".to_string(),
                n => CATALOG[n as usize % CATALOG.len()].to_string(),
            };
            let quantity = match random.below(15) {
                0 => 0,
                1 => -1,
                _ => 1 + random.below(5) as i32,
            };
            let total_value = match random.below(14) {
                0 => 0.0,
                1 => -((1 + random.below(100)) as f64),
                2 => MAX_TOTAL + 1.0 + random.below(1_000) as f64,
                _ => (1 + random.below(200_000)) as f64 / 100.0,
            };
            Order { customer_id, order_id, product, quantity, total_value }
        })
        .collect()
}

/// Pipes `orders` into `topology` keyed by customer, as writers of the topic key them.
fn run(topology: Topology, orders: &[Order]) -> anyhow::Result<TopologyTestDriver> {
    let mut driver = TopologyTestDriver::new(topology)?;
    let input = driver.input_topic::<i64, Order>("orders");
    for (timestamp, order) in orders.iter().enumerate() {
        driver.pipe(&input, order.customer_id, order.clone(), timestamp as i64)?;
    }
    Ok(driver)
}

#[test]
fn order_totals_macro_and_builder_describe_the_same_topology() -> anyhow::Result<()> {
    let by_macro = order_totals()?.describe().to_string();
    let by_hand = order_totals_by_hand()?.describe().to_string();
    assert_eq!(by_macro, by_hand);
    assert!(by_macro.contains("(topics: [orders])"), "{by_macro}");
    assert!(by_macro.contains("(stores: [customer-totals-store])"), "{by_macro}");
    assert!(by_macro.contains("(topic: customer-totals)"), "{by_macro}");
    Ok(())
}

#[test]
fn order_validation_macro_and_builder_describe_the_same_topology() -> anyhow::Result<()> {
    let by_macro = order_validation()?.describe().to_string();
    let by_hand = order_validation_by_hand()?.describe().to_string();
    assert_eq!(by_macro, by_hand);
    for topic in ["orders", "order-validated", "order-rejected"] {
        assert!(by_macro.contains(topic), "{topic} in {by_macro}");
    }
    Ok(())
}

#[test]
fn the_into_function_adds_the_same_steps_to_a_given_builder() -> anyhow::Result<()> {
    let builder = StreamsBuilder::new();
    order_totals_into(&builder);
    assert_eq!(builder.build()?.describe().to_string(), order_totals()?.describe().to_string());
    Ok(())
}

#[test]
fn order_totals_macro_builder_and_a_plain_loop_agree() -> anyhow::Result<()> {
    let orders = generated_orders(400);
    let invalid = orders.iter().filter(|o| o.total_value <= 0.0).count();
    let customers: std::collections::BTreeSet<i64> = orders.iter().map(|o| o.customer_id).collect();
    assert!(invalid > 30 && customers.len() >= 8, "the input must exercise both paths ({invalid} invalid)");

    let mut expected = Vec::new();
    let mut running: BTreeMap<i64, f64> = BTreeMap::new();
    for order in orders.iter().filter(|o| o.total_value > 0.0) {
        let total = running.entry(order.customer_id).or_insert(0.0);
        *total += order.total_value;
        expected.push((order.customer_id, Some(*total)));
    }

    let mut results = Vec::new();
    for topology in [order_totals()?, order_totals_by_hand()?] {
        let mut driver = run(topology, &orders)?;
        let totals = driver.output_topic::<i64, Option<f64>>("customer-totals");
        let updates = driver.read_key_values(&totals);
        let stored: BTreeMap<i64, f64> = driver.store_entries("customer-totals-store")?.into_iter().collect();
        results.push((updates, stored));
    }
    let [by_macro, by_hand] = <[_; 2]>::try_from(results).expect("two runs");
    assert_eq!(by_macro, by_hand, "the macro and the builder version give the same output and store");
    assert_eq!(by_macro.0, expected, "every update, in input order, with the loop's running totals");
    assert_eq!(by_macro.1, running, "the store holds the loop's final totals");
    Ok(())
}

#[test]
fn order_validation_macro_builder_and_a_plain_loop_agree() -> anyhow::Result<()> {
    let orders = generated_orders(400);
    let (mut valid, mut rejected) = (Vec::new(), Vec::new());
    for order in &orders {
        match validate(order) {
            Ok(event) => valid.push((order.customer_id, event)),
            Err(event) => rejected.push((order.customer_id, event)),
        }
    }
    for reason in ["quantity", "unknown product", "total"] {
        let n = rejected.iter().filter(|(_, r)| r.reason.contains(reason)).count();
        assert!(n >= 10, "the input must have orders rejected for their {reason} ({n})");
    }
    assert!(valid.len() > 150, "and valid ones ({})", valid.len());

    let mut results = Vec::new();
    for topology in [order_validation()?, order_validation_by_hand()?] {
        let mut driver = run(topology, &orders)?;
        let validated = driver.output_topic::<i64, OrderValidated>("order-validated");
        let rejections = driver.output_topic::<i64, OrderRejected>("order-rejected");
        results.push((driver.read_key_values(&validated), driver.read_key_values(&rejections)));
    }
    let [by_macro, by_hand] = <[_; 2]>::try_from(results).expect("two runs");
    assert_eq!(by_macro, by_hand, "the macro and the builder version give the same outputs");
    assert_eq!(by_macro.0, valid, "validated orders, keyed by customer, in input order");
    assert_eq!(by_macro.1, rejected, "rejected orders with their reasons, keyed by customer, in input order");
    Ok(())
}
