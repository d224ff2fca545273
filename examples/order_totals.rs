//! Per-customer order totals: drop invalid orders, keep each order's value, sum per customer.
//!
//! `cargo run --example order_totals [-- --orders N]`: the real runtime (`KafkaStreams`, RocksDB stores
//! under a temporary state dir, changelogs, commits) on the in-process embedded broker: nothing to
//! install. Produces orders (some invalid), runs the app until every order is in the totals, closes it,
//! and checks the final totals against a plain loop.
//!
//! `cargo run --example order_totals -- --bootstrap-servers HOST:PORT [--orders N]`: the same on Kafka
//! (creates the `orders` and `customer-totals` topics if needed, 4 partitions). The check covers every
//! order in `orders`, earlier runs' too. With `--keep-running` the application goes on processing after
//! the check until Ctrl-C or SIGTERM, then closes cleanly: tasks commit and the instance leaves the group.
//!
//! `cargo run --example order_totals -- --config FILE [--orders N]`: the same on the Kafka and with the
//! settings a `.properties` file names (`bootstrap.servers`, and TLS and SASL settings: docs/security.md).
//!
//! `cargo run --example order_totals -- --data-dir DIR [--orders N]`: on the embedded broker, with its
//! topics and offsets and the application's state kept in `DIR`: run it again and the new orders are
//! added to the totals of the earlier runs (stop it at any point, even with Ctrl-C).
//!
//! `cargo run --example order_totals -- --test-driver [--orders N]`: the same topology through the test
//! driver, printing each updated total as it is computed (orders with no customer are dropped and counted).
//!
//! `cargo run --example order_totals -- --describe text|mermaid|dot`: prints the topology (the picture in
//! docs/concepts.md is the Mermaid one) and exits.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;

use std::time::Duration;

use anyhow::bail;
use kstreams::prelude::*;
use kstreams::runtime::{QueryableStoreTypes, State, StoreQueryParameters};
use kstreams::serde::{to_bytes, DefaultSerde};
use serde::{Deserialize, Serialize};
use support::{Cluster, CommonArgs, Rng};

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

/// Per-customer order totals, on the embedded broker (by default), on Kafka, or through the test driver.
#[derive(clap::Parser)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Run the topology through the test driver instead (no broker), printing each updated total.
    #[arg(long)]
    test_driver: bool,
    /// How many orders to produce.
    #[arg(long, default_value_t = 30, value_name = "N")]
    orders: u64,
    /// After the check, go on processing until SIGINT or SIGTERM, then close cleanly.
    #[arg(long)]
    keep_running: bool,
    /// Print the topology (as `describe()` text, a Mermaid flowchart or a Graphviz DOT graph) and exit.
    #[arg(long, value_name = "FORMAT")]
    describe: Option<Picture>,
}

/// How `--describe` prints the topology.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Picture {
    Text,
    Mermaid,
    Dot,
}

fn main() -> anyhow::Result<()> {
    let Args { common, test_driver, orders: orders_to_send, keep_running, describe } = support::start()?;
    if let Some(picture) = describe {
        let description = topology()?.0.describe();
        match picture {
            Picture::Text => print!("{description}"),
            Picture::Mermaid => print!("{}", description.to_mermaid()),
            Picture::Dot => print!("{}", description.to_dot()),
        }
        return Ok(());
    }
    if !test_driver {
        return run(&common.cluster()?, orders_to_send, keep_running);
    }
    let (topology, store) = topology()?;
    println!("{}", topology.describe());
    let mut driver = TopologyTestDriver::new(topology)?;
    let orders = driver.input_topic::<i64, Order>("orders");
    let totals = driver.output_topic::<i64, Option<f64>>("customer-totals");

    let mut expected: BTreeMap<i64, f64> = BTreeMap::new();
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    let mut next = move || rng.next();
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

/// Order `order_id` of the generated stream: five customers, values from 0.99 to 39.99, and every seventh
/// order invalid (a negative value, dropped by the filter).
fn generated_order(order_id: u64) -> Order {
    let total_value = if order_id % 7 == 3 { -1.0 } else { (order_id % 40) as f64 + 0.99 };
    Order { order_id, customer_id: (order_id % 5) as i64 + 100, total_value }
}

/// Runs the application until every order in `orders` (earlier runs' too) is in the totals, then closes
/// it and checks the totals against a plain loop over those orders. With `keep_running`, it then goes on
/// processing until Ctrl-C.
fn run(cluster: &Cluster, orders_to_send: u64, keep_running: bool) -> anyhow::Result<()> {
    cluster.create_topics(&["orders", "customer-totals"], 4)?;
    let first = cluster.read_raw("orders")?.len() as u64;
    if first > 0 {
        println!("{first} orders from earlier runs are in `orders`");
    }
    let mut producer = cluster.producer();
    for order_id in first..first + orders_to_send {
        let order = generated_order(order_id);
        producer.send("orders", &order.customer_id, &order, -1)?;
    }
    producer.flush()?;
    println!("produced {orders_to_send} orders to `orders` on {}", cluster.describe());
    let mut expected: BTreeMap<i64, f64> = BTreeMap::new();
    for (_, order) in cluster.read::<i64, Order>("orders")? {
        if let Some(order) = order.filter(|o| o.total_value > 0.0) {
            *expected.entry(order.customer_id).or_insert(0.0) += order.total_value;
        }
    }

    let (topology, store) = topology()?;
    println!("{}", topology.describe());
    let mut config = cluster.config("order-totals-example");
    // Totals leave the record cache at each commit: commit often so they show up promptly.
    config.commit_interval = Some(Duration::from_millis(200));
    let mut app = cluster.app(topology, config)?;
    app.set_state_listener(|old, new| println!("state: {old:?} -> {new:?}"));
    app.start()?;
    let mut actual: BTreeMap<i64, f64> = BTreeMap::new();
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
    let mut shown = 0;
    let result = cluster.wait_until(Duration::from_secs(120), "order totals", || {
        if app.state() == State::Error {
            bail!("the application failed: {:?}", app.take_error());
        }
        actual.clear();
        let updates = cluster.read::<i64, Option<f64>>("customer-totals")?;
        if updates.len() > shown {
            // With the record cache on, updates come out at each commit: the latest total per customer.
            println!("{} total updates in `customer-totals` so far", updates.len());
            shown = updates.len();
        }
        for (customer, total) in updates {
            if let (Some(customer), Some(Some(total))) = (customer, total) {
                actual.insert(customer, total); // a customer's totals are in one partition, in order
            }
        }
        Ok(actual.len() == expected.len() && actual.iter().all(|(k, v)| expected.get(k).is_some_and(|e| close(*v, *e))))
    });
    if result.is_ok() {
        for (customer, total) in &actual {
            println!("customer {customer:>4}  total {total:>10.2}");
        }
        println!(
            "{} orders processed; final totals match a plain loop over all {} orders",
            app.metrics().processed_records,
            first + orders_to_send
        );
        // The same totals, read from the application's store while it runs (an interactive query).
        let totals = app.store(StoreQueryParameters::from_name_and_type(
            store.as_str(),
            QueryableStoreTypes::key_value::<i64, f64>(),
        ))?;
        let queried: BTreeMap<i64, f64> = totals.all()?.into_iter().collect();
        if queried.len() != actual.len() || !queried.iter().all(|(k, v)| actual.get(k).is_some_and(|a| close(*v, *a))) {
            bail!("the store's totals differ from the output's:\n  store:  {queried:?}\n  output: {actual:?}");
        }
        println!("the store `{store}` queried while running holds the same {} totals", queried.len());
    }
    if result.is_ok() && keep_running {
        println!("running; totals go to `customer-totals`. Ctrl-C or SIGTERM to stop.");
        let mut last_report = std::time::Instant::now();
        while app.state() != State::Error && !support::stop_requested() {
            std::thread::sleep(Duration::from_millis(100));
            if last_report.elapsed() >= Duration::from_secs(5) {
                println!("processed so far: {} records", app.metrics().processed_records);
                last_report = std::time::Instant::now();
            }
        }
    }
    println!("closing: committing and leaving the group");
    app.close()?; // commits: the record cache's last totals go out
    if let Some(error) = app.take_error() {
        bail!(error);
    }
    result
}
