//! The e-commerce order flow, three services under exactly-once.
//!
//! - the order service reads `new-orders` and writes each order to `order-validated` or, with a reason,
//!   to `order-rejected`;
//! - the inventory service reads `order-validated`, keeps each product's stock in a state store
//!   (re-keyed by product: a repartition topic) and writes `inventory-updated`;
//! - the payment service reads `order-validated` and writes `payment-successful` or `payment-failed`.
//!
//! Each service is its own application (its own `application.id`, group and transactions) under
//! `exactly_once_v2`: a step's outputs, its state change and its input offsets commit together or not at
//! all. The example generates orders, runs the services until every order has gone through, and checks
//! every output against a plain loop over the orders: each order has exactly one verdict, each validated
//! order exactly one stock update and one payment, and each product's stock is what the orders left.
//!
//! ```text
//! cargo run --example order_pipeline [-- --orders N] [--bootstrap-servers HOST:PORT]
//! cargo run --example order_pipeline -- --crash-demo [--orders N] [--bootstrap-servers HOST:PORT]
//! ```
//!
//! `--crash-demo` shows that a crash in the middle loses and duplicates nothing: it runs the services in
//! a child process that aborts (as `kill -9` would end it) half-way through, inside an open transaction,
//! then runs them again in a second process, which picks up from the last commit, and checks the outputs
//! as above. On the embedded broker the two processes share its journal in a temporary directory
//! (`--data-dir`); on Kafka they share the topics. The check covers every order in `new-orders`, those
//! of earlier runs too.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use kstreams::config::ProcessingGuarantee;
use kstreams::prelude::*;
use kstreams::runtime::State;
use serde::{Deserialize, Serialize};
use support::{Cluster, CommonArgs, Rng};

const NEW_ORDERS: &str = "new-orders";
const VALIDATED: &str = "order-validated";
const REJECTED: &str = "order-rejected";
const INVENTORY: &str = "inventory-updated";
const PAID: &str = "payment-successful";
const PAYMENT_FAILED: &str = "payment-failed";
const TOPICS: [&str; 6] = [NEW_ORDERS, VALIDATED, REJECTED, INVENTORY, PAID, PAYMENT_FAILED];

/// The catalogue: product and unit price. Orders for anything else are rejected.
const CATALOGUE: [(&str, f64); 5] =
    [("keyboard", 49.0), ("mouse", 19.5), ("monitor", 189.0), ("laptop", 899.0), ("cable", 4.25)];
/// Each product's stock before the first order.
const INITIAL_STOCK: i64 = 100_000;
/// The largest order the shop accepts.
const MAX_ORDER_TOTAL: f64 = 2_000.0;

/// A new order, keyed by customer id on `new-orders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    order_id: u64,
    customer_id: i64,
    product: String,
    quantity: u32,
}
json_serde!(Order);

/// An order the order service accepted, with its price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OrderValidated {
    order_id: u64,
    customer_id: i64,
    product: String,
    quantity: u32,
    total: f64,
}
json_serde!(OrderValidated);

/// An order the order service refused, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OrderRejected {
    order_id: u64,
    customer_id: i64,
    reason: String,
}
json_serde!(OrderRejected);

/// A product's stock after a validated order took its quantity, keyed by product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct InventoryUpdated {
    order_id: u64,
    product: String,
    quantity: u32,
    remaining: i64,
}
json_serde!(InventoryUpdated);

/// The inventory service's state per product: the stock and the order that changed it last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stock {
    product: String,
    remaining: i64,
    last_order: Option<(u64, u32)>,
}
json_serde!(Stock);

/// The outcome of charging a validated order, on `payment-successful` or `payment-failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Payment {
    order_id: u64,
    customer_id: i64,
    amount: f64,
    failure: Option<String>,
}
json_serde!(Payment);

/// The order service's rule: `Ok` with the validated order, or `Err` with the reason.
fn validate(order: &Order) -> Result<OrderValidated, String> {
    let Some((_, price)) = CATALOGUE.iter().find(|(name, _)| *name == order.product) else {
        return Err(format!("unknown product `{}`", order.product));
    };
    if order.quantity == 0 {
        return Err("quantity 0".to_string());
    }
    let total = price * order.quantity as f64;
    if total > MAX_ORDER_TOTAL {
        return Err(format!("total {total:.2} over the limit of {MAX_ORDER_TOTAL:.2}"));
    }
    let (order_id, customer_id) = (order.order_id, order.customer_id);
    Ok(OrderValidated { order_id, customer_id, product: order.product.clone(), quantity: order.quantity, total })
}

/// The payment provider's answer: customers whose id ends in 7 have a 500.00 card limit, and every
/// 13th order's card is declined.
fn charge(order: &OrderValidated) -> Payment {
    let failure = if order.customer_id % 10 == 7 && order.total > 500.0 {
        Some(format!("over the card limit: {:.2}", order.total))
    } else if order.order_id.is_multiple_of(13) {
        Some("card declined".to_string())
    } else {
        None
    };
    Payment { order_id: order.order_id, customer_id: order.customer_id, amount: order.total, failure }
}

/// Prints the first few events of each kind, so a run shows what the services do without flooding.
fn show(kind: &'static str, counter: &'static AtomicU64, line: String) {
    if counter.fetch_add(1, Ordering::Relaxed) < 5 {
        println!("  {kind:<9} {line}");
    }
}

/// The order service.
fn order_service() -> Result<Topology, TopologyError> {
    static SHOWN: AtomicU64 = AtomicU64::new(0);
    let builder = StreamsBuilder::new();
    let checked = builder.stream::<i64, Order>(NEW_ORDERS).map_values(|order| (validate(&order), order));
    checked
        .filter(|_, (verdict, _)| verdict.is_ok())
        .map_values(|(verdict, _)| verdict.expect("filtered"))
        .to(VALIDATED);
    checked
        .filter(|_, (verdict, _)| verdict.is_err())
        .map_values(|(verdict, order)| OrderRejected {
            order_id: order.order_id,
            customer_id: order.customer_id,
            reason: verdict.err().unwrap_or_default(),
        })
        .peek(|_, rejected| show("rejected", &SHOWN, format!("order {} ({})", rejected.order_id, rejected.reason)))
        .to(REJECTED);
    builder.build()
}

/// The inventory service: stock per product in the store `stock`, one update per validated order (the
/// record cache is off for this store, so no update is folded into a later one).
fn inventory_service() -> Result<Topology, TopologyError> {
    static SHOWN: AtomicU64 = AtomicU64::new(0);
    let builder = StreamsBuilder::new();
    builder
        .stream::<i64, OrderValidated>(VALIDATED)
        .group_by(|_, order| order.product.clone())
        .aggregate_with(
            || Stock { product: String::new(), remaining: INITIAL_STOCK, last_order: None },
            |_, order, stock| Stock {
                product: order.product.clone(),
                remaining: stock.remaining - order.quantity as i64,
                last_order: Some((order.order_id, order.quantity)),
            },
            Materialized::as_store("stock").with_caching_disabled(),
        )
        .to_stream()
        .flat_map_values(|stock| {
            let stock = stock?;
            let (order_id, quantity) = stock.last_order?;
            Some(InventoryUpdated { order_id, product: stock.product, quantity, remaining: stock.remaining })
        })
        .peek(|_, u| {
            show("stock", &SHOWN, format!("{} -{} = {} (order {})", u.product, u.quantity, u.remaining, u.order_id))
        })
        .to(INVENTORY);
    builder.build()
}

/// The payment service. With `crash_after`, the process aborts in the middle of the payment that many
/// records in: in an open transaction, with outputs sent but not committed.
fn payment_service(crash_after: Option<u64>) -> Result<Topology, TopologyError> {
    static SHOWN: AtomicU64 = AtomicU64::new(0);
    static CHARGED: AtomicU64 = AtomicU64::new(0);
    let builder = StreamsBuilder::new();
    let payments = builder.stream::<i64, OrderValidated>(VALIDATED).map_values(move |order| {
        let charged = CHARGED.fetch_add(1, Ordering::Relaxed) + 1;
        if crash_after == Some(charged) {
            println!("simulated crash: the process aborts in the middle of a transaction ({charged} payments in)");
            std::process::abort();
        }
        charge(&order)
    });
    payments
        .filter(|_, p| p.failure.is_none())
        .peek(|_, p| show("paid", &SHOWN, format!("order {} ({:.2})", p.order_id, p.amount)))
        .to(PAID);
    payments.filter(|_, p| p.failure.is_some()).to(PAYMENT_FAILED);
    builder.build()
}

/// The e-commerce order flow: three services under exactly-once.
#[derive(clap::Parser)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// How many orders to produce.
    #[arg(long, default_value_t = 300, value_name = "N")]
    orders: u64,
    /// Abort the process (as `kill -9` would end it) after this many payments, inside an open transaction.
    #[arg(long, value_name = "N")]
    crash_after: Option<u64>,
    /// Crash a first run half-way and finish in a second process: nothing is lost or duplicated.
    #[arg(long)]
    crash_demo: bool,
}

fn main() -> anyhow::Result<()> {
    let args: Args = support::start()?;
    if args.crash_demo {
        return crash_demo(&args);
    }
    let cluster = args.common.cluster()?;
    cluster.create_topics(&TOPICS, 4)?;
    produce_orders(&cluster, args.orders)?;
    run_services(&cluster, args.crash_after)?;
    check(&cluster)
}

/// Appends `count` generated orders to `new-orders`, numbered after those already there.
fn produce_orders(cluster: &Cluster, count: u64) -> anyhow::Result<()> {
    if count == 0 {
        return Ok(());
    }
    let first = cluster.read_raw(NEW_ORDERS)?.len() as u64;
    let mut rng = Rng::new(first + 1);
    let mut producer = cluster.producer();
    for order_id in first..first + count {
        let customer_id = rng.below(20) as i64 + 1;
        let product = match rng.below(20) {
            0 => "hoverboard".to_string(), // not in the catalogue
            n => CATALOGUE[n as usize % CATALOGUE.len()].0.to_string(),
        };
        let quantity = match rng.below(25) {
            0 => 0,                       // invalid
            1 => 5 + rng.below(5) as u32, // large: over the limit for the dearer products
            _ => 1 + rng.below(3) as u32,
        };
        let order = Order { order_id, customer_id, product, quantity };
        producer.send(NEW_ORDERS, &customer_id, &order, -1)?;
    }
    producer.flush()?;
    println!("produced {count} orders to `{NEW_ORDERS}` on {}", cluster.describe());
    Ok(())
}

/// Runs the three services until every order in `new-orders` has gone all the way through, then closes
/// them (each commits its last transaction).
fn run_services(cluster: &Cluster, crash_after: Option<u64>) -> anyhow::Result<()> {
    let mut apps = Vec::new();
    for (name, topology) in [
        ("order-service", order_service()?),
        ("inventory-service", inventory_service()?),
        ("payment-service", payment_service(crash_after)?),
    ] {
        let mut config = cluster.config(&format!("order-pipeline-{name}"));
        config.processing_guarantee = ProcessingGuarantee::ExactlyOnceV2;
        config.commit_interval = Some(Duration::from_millis(100));
        // A crashed process's group membership lasts until its session times out (45 s by default);
        // 10 s lets the crash demo's second run start sooner.
        config.consumer_overrides.insert("session.timeout.ms".into(), "10000".into());
        let mut app = cluster.app(topology, config)?;
        app.start()?;
        apps.push((name, app));
    }
    println!("running the order, inventory and payment services (exactly_once_v2); a few events of each kind:");
    let mut last = String::new();
    let result = cluster.wait_until(Duration::from_secs(180), "the order pipeline", || {
        for (name, app) in &apps {
            if app.state() == State::Error {
                bail!("{name} failed: {:?}", app.take_error());
            }
        }
        let progress = Progress::read(cluster)?;
        if progress.to_string() != last {
            last = progress.to_string();
            println!("  progress: {last}");
        }
        Ok(progress.complete())
    });
    for (name, app) in &mut apps {
        app.close().with_context(|| format!("close {name}"))?;
        if let Some(error) = app.take_error() {
            bail!("{name}: {error}");
        }
    }
    result
}

/// How far the orders have gone, read from the committed outputs.
struct Progress {
    orders: usize,
    verdicts: usize,
    validated: usize,
    stock_updates: usize,
    payments: usize,
}

impl Progress {
    fn read(cluster: &Cluster) -> anyhow::Result<Self> {
        let count = |topic| cluster.read_raw(topic).map(|r| r.len());
        let validated = count(VALIDATED)?;
        Ok(Progress {
            orders: count(NEW_ORDERS)?,
            verdicts: validated + count(REJECTED)?,
            validated,
            stock_updates: count(INVENTORY)?,
            payments: count(PAID)? + count(PAYMENT_FAILED)?,
        })
    }

    /// Every order has a verdict, and every validated order its stock update and its payment (more than
    /// that is a duplicate, which the check reports).
    fn complete(&self) -> bool {
        self.verdicts >= self.orders && self.stock_updates >= self.validated && self.payments >= self.validated
    }
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} orders with a verdict, {}/{} validated orders with a stock update, {}/{} paid or failed",
            self.verdicts, self.orders, self.stock_updates, self.validated, self.payments, self.validated
        )
    }
}

/// Checks every output against a plain loop over `new-orders`.
fn check(cluster: &Cluster) -> anyhow::Result<()> {
    let orders: Vec<Order> = cluster.read::<i64, Order>(NEW_ORDERS)?.into_iter().filter_map(|(_, o)| o).collect();
    let validated: Vec<OrderValidated> = values(cluster.read::<i64, OrderValidated>(VALIDATED)?);
    let rejected: Vec<OrderRejected> = values(cluster.read::<i64, OrderRejected>(REJECTED)?);
    let updates: Vec<InventoryUpdated> = values(cluster.read::<String, InventoryUpdated>(INVENTORY)?);
    let paid: Vec<Payment> = values(cluster.read::<i64, Payment>(PAID)?);
    let failed: Vec<Payment> = values(cluster.read::<i64, Payment>(PAYMENT_FAILED)?);

    // Exactly one verdict per order, the one the rule gives.
    let mut verdicts: BTreeMap<u64, Vec<Result<OrderValidated, String>>> = BTreeMap::new();
    validated.iter().for_each(|v| verdicts.entry(v.order_id).or_default().push(Ok(v.clone())));
    rejected.iter().for_each(|r| verdicts.entry(r.order_id).or_default().push(Err(r.reason.clone())));
    let mut expected_stock: BTreeMap<String, i64> = BTreeMap::new();
    let mut expected_payments = BTreeMap::new();
    for order in &orders {
        let got = verdicts.remove(&order.order_id).unwrap_or_default();
        let want = validate(order);
        ensure!(got.len() == 1, "order {} has {} verdicts (lost or duplicated): {got:?}", order.order_id, got.len());
        ensure!(got[0] == want, "order {}: verdict {:?}, the rule gives {want:?}", order.order_id, got[0]);
        if let Ok(v) = want {
            *expected_stock.entry(v.product.clone()).or_insert(INITIAL_STOCK) -= v.quantity as i64;
            expected_payments.insert(v.order_id, charge(&v));
        }
    }
    ensure!(verdicts.is_empty(), "verdicts for orders that are not in `{NEW_ORDERS}`: {verdicts:?}");

    // One stock update per validated order; each product's last one leaves the stock the loop computes.
    let mut updated: BTreeMap<u64, usize> = BTreeMap::new();
    let mut stock: BTreeMap<String, i64> = BTreeMap::new();
    for update in &updates {
        *updated.entry(update.order_id).or_default() += 1;
        stock.insert(update.product.clone(), update.remaining); // a product's updates are in one partition, in order
    }
    let expected_updates: BTreeMap<u64, usize> = expected_payments.keys().map(|id| (*id, 1)).collect();
    ensure!(updated == expected_updates, "stock updates per order differ from one per validated order");
    ensure!(stock == expected_stock, "stock {stock:?}, a plain loop gives {expected_stock:?}");

    // One payment per validated order, with the provider's answer.
    let mut payments: BTreeMap<u64, Payment> = BTreeMap::new();
    for payment in paid.iter().chain(&failed) {
        ensure!(payments.insert(payment.order_id, payment.clone()).is_none(), "order {} paid twice", payment.order_id);
    }
    ensure!(payments == expected_payments, "payments differ from one per validated order");

    println!("\nchecked {} orders against a plain loop:", orders.len());
    println!("  {} validated, {} rejected: exactly one verdict each", validated.len(), rejected.len());
    println!("  {} stock updates: one per validated order; stock left: {stock:?}", updates.len());
    println!("  {} payments successful, {} failed: one per validated order", paid.len(), failed.len());
    println!("no order lost, none duplicated");
    Ok(())
}

fn values<K, V>(records: Vec<(Option<K>, Option<V>)>) -> Vec<V> {
    records.into_iter().filter_map(|(_, v)| v).collect()
}

/// Runs the services in a child process that crashes half-way, then in a second one, then checks.
fn crash_demo(args: &Args) -> anyhow::Result<()> {
    let temporary = tempfile::tempdir()?;
    let data_dir = args.common.data_dir.clone().unwrap_or_else(|| temporary.path().to_path_buf());
    let child = |extra: &[String]| -> anyhow::Result<std::process::ExitStatus> {
        let mut command = std::process::Command::new(std::env::current_exe()?);
        command.args(args.common.to_args());
        if args.common.bootstrap.is_none() && args.common.data_dir.is_none() {
            command.arg("--data-dir").arg(&data_dir);
        }
        Ok(command.args(extra).status()?)
    };
    let half = (args.orders / 2).max(1);
    println!("== run 1: {} orders; the process will crash after {half} payments", args.orders);
    let status = child(&["--orders".into(), args.orders.to_string(), "--crash-after".into(), half.to_string()])?;
    ensure!(!status.success(), "run 1 was meant to crash but finished");
    println!("== run 1 ended abnormally ({status}); run 2 continues from the last commit");
    let status = child(&["--orders".into(), "0".into()])?;
    ensure!(status.success(), "run 2 failed ({status})");
    println!("== crash demo passed: the crash lost and duplicated nothing");
    Ok(())
}
