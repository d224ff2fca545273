//! Per-customer order totals: drop invalid orders, keep each order's value, sum per customer.
//!
//! `cargo run --example order_totals [-- --orders N]`
//!
//! Until the runtime lands (issues #4 and #5: Kafka and the embedded broker), this example runs the
//! topology in-process through the test driver, which executes the very same tasks, processors and
//! stores. It generates orders (some invalid, some with no customer), prints each updated total as it
//! is computed, and checks the final totals against a plain loop.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use kstreams::prelude::*;
use kstreams::serde::{to_bytes, DefaultSerde};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    order_id: u64,
    customer_id: i64,
    total_value: f64,
}
json_serde!(Order);

/// The topology, and the name of the store that holds the totals.
fn topology() -> Result<(Topology, String), TopologyError> {
    let builder = StreamsBuilder::new();
    let totals = builder
        .stream::<i64, Order>("orders")
        .filter(|_, order| order.total_value > 0.0)
        .map_values(|order| order.total_value)
        .group_by_key()
        .reduce(|a, b| a + b);
    totals.to_stream().to("customer-totals");
    let store = totals.store_name().unwrap_or_default().to_string();
    Ok((builder.build()?, store))
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut orders_to_send = 30u64;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--orders" => {
                orders_to_send = args.next().context("--orders needs a number")?.parse().context("--orders")?;
            }
            other => bail!("unknown argument `{other}`; usage: order_totals [--orders N]"),
        }
    }

    let (topology, store) = topology()?;
    println!("{}", topology.describe());
    let mut driver = TopologyTestDriver::new(topology)?;
    let orders = driver.input_topic::<i64, Order>("orders");
    let totals = driver.output_topic::<i64, Option<f64>>("customer-totals");

    let mut expected: BTreeMap<i64, f64> = BTreeMap::new();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for order_id in 0..orders_to_send {
        let customer_id = (next() % 5) as i64 + 100;
        let total_value = match next() % 8 {
            0 => -5.0, // invalid: dropped by the filter
            _ => (next() % 20_000) as f64 / 100.0,
        };
        let order = Order { order_id, customer_id, total_value };
        if next() % 10 == 0 {
            // No customer: a null key, which the aggregation drops (and counts).
            let value = to_bytes(&*Order::default_serde(), "orders", &order)?;
            driver.pipe_raw("orders", None, value, order_id as i64)?;
        } else {
            driver.pipe(&orders, customer_id, order, order_id as i64)?;
            if total_value > 0.0 {
                *expected.entry(customer_id).or_insert(0.0) += total_value;
            }
        }
        for (customer, total) in driver.read_key_values(&totals) {
            println!("customer {customer:>4}  total {:>10.2}", total.unwrap_or(0.0));
        }
    }

    let metrics = driver.metrics();
    println!(
        "\n{} orders processed, {} dropped for a missing customer",
        metrics.processed_records, metrics.dropped_records
    );
    let actual: BTreeMap<i64, f64> = driver.store_entries::<i64, f64>(&store)?.into_iter().collect();
    if actual != expected {
        bail!("totals differ from a plain loop:\n  stream: {actual:?}\n  loop:   {expected:?}");
    }
    println!("final totals match a plain loop over the same orders: {actual:?}");
    Ok(())
}
