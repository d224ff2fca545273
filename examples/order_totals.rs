//! Per-customer order totals: drop invalid orders, keep each order's value, sum per customer.
//!
//! `cargo run --example order_totals [-- --orders N]`: the real runtime (`KafkaStreams`, RocksDB stores
//! under a temporary state dir, changelogs, commits) on the in-process embedded broker: nothing to
//! install. Produces orders (some invalid), runs the app until every order is processed, closes it, and
//! checks the final totals against a plain loop.
//!
//! `cargo run --example order_totals -- --data-dir DIR [--orders N]`: the same, with the embedded
//! broker's topics and offsets and the application's state kept in `DIR`: run it again and the new
//! orders are added to the totals of the earlier runs (stop it at any point, even with Ctrl-C).
//!
//! `cargo run --example order_totals -- --test-driver [--orders N]`: the same topology through the test
//! driver, printing each updated total as it is computed (orders with no customer are dropped and counted).
//!
//! `cargo run --example order_totals -- --bootstrap-servers HOST:PORT [--orders N]`: on Kafka. Creates the
//! `orders` and `customer-totals` topics if needed (4 partitions), produces the orders, runs the
//! application until Ctrl-C, then closes it cleanly: tasks commit and the instance leaves the group.

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
    let mut bootstrap = None;
    let mut test_driver = false;
    let mut data_dir = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bootstrap-servers" => bootstrap = Some(args.next().context("--bootstrap-servers HOST:PORT")?),
            "--data-dir" => data_dir = Some(std::path::PathBuf::from(args.next().context("--data-dir DIR")?)),
            "--test-driver" => test_driver = true,
            "--orders" => {
                orders_to_send = args.next().context("--orders needs a number")?.parse().context("--orders")?;
            }
            other => {
                bail!("unknown argument `{other}`; usage: order_totals [--bootstrap-servers HOST:PORT | --test-driver | --data-dir DIR] [--orders N]")
            }
        }
    }

    if let Some(bootstrap) = bootstrap {
        return run_on_kafka(&bootstrap, orders_to_send);
    }
    if !test_driver {
        return run_on_embedded_broker(orders_to_send, data_dir);
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

/// Order `order_id` of the generated stream: five customers, values from 0.99 to 39.99, and every seventh
/// order invalid (a negative value, dropped by the filter).
fn generated_order(order_id: u64) -> Order {
    let total_value = if order_id % 7 == 3 { -1.0 } else { (order_id % 40) as f64 + 0.99 };
    Order { order_id, customer_id: (order_id % 5) as i64 + 100, total_value }
}

/// Runs the application on the embedded broker until every order is processed, then checks the totals
/// against every order the broker holds (those of earlier runs too, with `data_dir`).
fn run_on_embedded_broker(orders_to_send: u64, data_dir: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use kstreams::config::StreamsConfig;
    use kstreams::embedded::EmbeddedBroker;
    use kstreams::record::{Headers, ProducedRecord};
    use kstreams::runtime::{KafkaStreams, State};
    use kstreams::serde::from_bytes;

    let temporary = tempfile::tempdir()?;
    let (broker, state_dir) = match &data_dir {
        Some(dir) => (EmbeddedBroker::open(dir.join("broker"))?, dir.join("state")),
        None => (EmbeddedBroker::new(), temporary.path().to_path_buf()),
    };
    broker.create_topic("orders", 4, false);
    broker.create_topic("customer-totals", 4, false);
    let mut config = StreamsConfig::new("order-totals-example", "embedded");
    config.state_dir = state_dir;
    config.commit_interval = Duration::from_millis(200);

    let mut producer = kstreams::client::ClientSupplier::producer(&broker, &config, "order-generator", None)?;
    let first = broker.record_count("orders") as u64;
    if first > 0 {
        println!("{first} orders from earlier runs are in `orders`");
    }
    for order_id in first..first + orders_to_send {
        let order = generated_order(order_id);
        producer.send(&ProducedRecord {
            topic: "orders".into(),
            partition: None,
            key: to_bytes(&*i64::default_serde(), "orders", &order.customer_id)?,
            value: to_bytes(&*Order::default_serde(), "orders", &order)?,
            timestamp: order_id as i64,
            headers: Headers::new(),
        })?;
    }
    println!("produced {orders_to_send} orders to `orders` on the embedded broker");
    let mut expected: BTreeMap<i64, f64> = BTreeMap::new();
    for record in broker.read_all("orders") {
        if let Some(order) = from_bytes(&*Order::default_serde(), "orders", record.value.as_deref())? {
            if order.total_value > 0.0 {
                *expected.entry(order.customer_id).or_insert(0.0) += order.total_value;
            }
        }
    }

    let (topology, _) = topology()?;
    println!("{}", topology.describe());
    let mut app = KafkaStreams::with_client_supplier(topology, config, Arc::new(broker.clone()))?;
    app.set_state_listener(|old, new| println!("state: {old:?} -> {new:?}"));
    app.start()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    // Every order processed and its offset committed (those a killed earlier run left too).
    while broker.group_lag("order-totals-example", "orders") > 0 && app.state() != State::Error {
        if Instant::now() > deadline {
            bail!("{} orders still unprocessed after a minute", broker.group_lag("order-totals-example", "orders"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    app.close()?; // commits: the record cache's last totals go out
    if let Some(error) = app.take_error() {
        bail!(error);
    }

    let mut actual: BTreeMap<i64, f64> = BTreeMap::new();
    for record in broker.read_all("customer-totals") {
        let customer = from_bytes(&*i64::default_serde(), "customer-totals", record.key.as_deref())?;
        let total = from_bytes(&*<Option<f64>>::default_serde(), "customer-totals", record.value.as_deref())?;
        if let (Some(customer), Some(Some(total))) = (customer, total) {
            actual.insert(customer, total);
        }
    }
    for (customer, total) in &actual {
        println!("customer {customer:>4}  total {total:>10.2}");
    }
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
    if actual.len() != expected.len() || actual.iter().any(|(k, v)| !close(*v, expected[k])) {
        bail!("totals differ from a plain loop:\n  stream: {actual:?}\n  loop:   {expected:?}");
    }
    let processed = app.metrics().processed_records;
    println!(
        "{processed} orders processed; final totals match a plain loop over all {} orders",
        first + orders_to_send
    );
    Ok(())
}

/// Runs the application on Kafka until Ctrl-C.
fn run_on_kafka(bootstrap: &str, orders_to_send: u64) -> anyhow::Result<()> {
    use std::sync::mpsc;
    use std::time::Duration;

    use kstreams::client::{ClientSupplier, NewTopic};
    use kstreams::config::StreamsConfig;
    use kstreams::kafka::RdKafkaSupplier;
    use kstreams::record::{Headers, ProducedRecord};
    use kstreams::runtime::{KafkaStreams, State};

    let mut config = StreamsConfig::new("order-totals-example", bootstrap);
    // Totals leave the record cache at each commit: commit every second so they show up promptly.
    config.commit_interval = Duration::from_secs(1);
    let admin = RdKafkaSupplier.admin(&config)?;
    let topic =
        |name: &str| NewTopic { name: name.into(), partitions: 4, replication_factor: -1, config: Default::default() };
    admin.create_topics(&[topic("orders"), topic("customer-totals")])?;

    let mut producer = RdKafkaSupplier.producer(&config, "order-generator", None)?;
    for order_id in 0..orders_to_send {
        let order = generated_order(order_id);
        producer.send(&ProducedRecord {
            topic: "orders".into(),
            partition: None,
            key: to_bytes(&*i64::default_serde(), "orders", &order.customer_id)?,
            value: to_bytes(&*Order::default_serde(), "orders", &order)?,
            timestamp: -1,
            headers: Headers::new(),
        })?;
    }
    producer.flush(Duration::from_secs(30))?;
    println!("produced {orders_to_send} orders to `orders` on {bootstrap}");

    let (stop, stopped) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop.send(());
    })?;
    let (topology, _) = topology()?;
    let mut app = KafkaStreams::new(topology, config)?;
    app.set_state_listener(|old, new| println!("state: {old:?} -> {new:?}"));
    app.start()?;
    println!("running; totals go to `customer-totals`. Ctrl-C to stop.");
    loop {
        match stopped.recv_timeout(Duration::from_secs(5)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                println!("processed so far: {} records", app.metrics().processed_records);
                if app.state() == State::Error {
                    break;
                }
            }
        }
    }
    println!("closing: committing and leaving the group");
    app.close()?;
    if let Some(error) = app.take_error() {
        bail!(error);
    }
    println!("closed after {} records", app.metrics().processed_records);
    Ok(())
}
