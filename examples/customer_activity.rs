//! The Processor API with a punctuation: each customer's order count, reported once a second.
//!
//! A hand-written [`Processor`] counts orders per customer in a persistent (RocksDB), changelogged store,
//! and notes which customers changed. A wall-clock punctuation, scheduled in `init`, forwards the count
//! of every customer that changed since the last one to `customer-activity`: a downstream consumer gets
//! at most one update per customer per second however busy the customer is. The topology is built with
//! the Processor API (`Topology::add_source`, `add_processor`, `add_state_store`, `add_sink`).
//!
//! ```text
//! cargo run --example customer_activity [-- --orders N] [--bootstrap-servers HOST:PORT]
//! ```
//!
//! Produces the orders, runs the application until every customer's last count has been reported, and
//! checks those counts against a plain loop over the orders (all orders in the topic, earlier runs' too).

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use kstreams::prelude::*;
use kstreams::processor::StoreHandle;
use kstreams::runtime::State;
use kstreams::store::Stores;
use serde::{Deserialize, Serialize};
use support::{CommonArgs, Rng};

const ORDERS: &str = "activity-orders";
const ACTIVITY: &str = "customer-activity";
const STORE: &str = "orders-per-customer";
/// How often the counts go out.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// An order, keyed by customer id.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    order_id: u64,
    customer_id: i64,
    total_value: f64,
}
json_serde!(Order);

/// Counts orders per customer; reports the changed counts on a wall-clock schedule.
#[derive(Default)]
struct ActivityReporter {
    counts: Option<StoreHandle<i64, i64>>,
    /// Customers counted since the last report. Kept in memory only: after a crash, the customers of
    /// the last second are reported at their next order (the counts themselves are in the store).
    changed: BTreeSet<i64>,
}

impl Processor<i64, Order, i64, i64> for ActivityReporter {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, i64, i64>) -> Result<(), StreamsError> {
        self.counts = Some(ctx.store_handle(STORE)?);
        ctx.schedule(REPORT_EVERY, PunctuationType::WallClockTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, i64, i64>,
        order: Record<i64, Order>,
    ) -> Result<(), StreamsError> {
        let counts = ctx.store_mut(self.counts.expect("init looked the store up"))?;
        let count = counts.get(&order.key)?.unwrap_or(0) + 1;
        counts.put(&order.key, &count)?;
        self.changed.insert(order.key);
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, i64, i64>,
        punctuation: Punctuation,
    ) -> Result<(), StreamsError> {
        let now = punctuation.timestamp;
        for customer in std::mem::take(&mut self.changed) {
            let count = ctx.store_mut(self.counts.expect("init looked the store up"))?.get(&customer)?.unwrap_or(0);
            ctx.forward(Record::new(customer, count, now))?;
        }
        Ok(())
    }
}

fn topology() -> Result<Topology, TopologyError> {
    let mut topology = Topology::new();
    topology
        .add_source("orders", &[ORDERS], i64::default_serde(), Order::default_serde())?
        .add_processor("activity", ActivityReporter::default, &["orders"])?
        .add_state_store(
            Stores::key_value_store_builder(
                Stores::persistent_key_value_store(STORE),
                i64::default_serde(),
                i64::default_serde(),
            ),
            &["activity"],
        )?
        .add_sink("reports", ACTIVITY, i64::default_serde(), i64::default_serde(), &["activity"])?;
    Ok(topology)
}

/// The Processor API with a punctuation: each customer's order count, reported once a second.
#[derive(clap::Parser)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// How many orders to produce.
    #[arg(long, default_value_t = 500, value_name = "N")]
    orders: u64,
}

fn main() -> anyhow::Result<()> {
    let Args { common, orders } = support::start()?;
    let cluster = common.cluster()?;
    cluster.create_topics(&[ORDERS, ACTIVITY], 4)?;

    let first = cluster.read_raw(ORDERS)?.len() as u64;
    let mut rng = Rng::new(first + 7);
    let mut producer = cluster.producer();
    for order_id in first..first + orders {
        let customer_id = rng.below(12) as i64 + 1;
        let order = Order { order_id, customer_id, total_value: (rng.below(10_000) as f64) / 100.0 };
        producer.send(ORDERS, &customer_id, &order, -1)?;
    }
    producer.flush()?;
    println!("produced {orders} orders to `{ORDERS}` on {}", cluster.describe());

    let mut expected: BTreeMap<i64, i64> = BTreeMap::new();
    for (customer, _) in cluster.read::<i64, Order>(ORDERS)? {
        *expected.entry(customer.context("an order without a customer")?).or_default() += 1;
    }

    let topology = topology()?;
    println!("{}", topology.describe());
    let mut config = cluster.config("customer-activity-example");
    config.commit_interval = Some(Duration::from_millis(200));
    let mut app = cluster.app(topology, config)?;
    app.start()?;
    let mut shown = 0;
    let result = cluster.wait_until(Duration::from_secs(120), "customer activity", || {
        if app.state() == State::Error {
            bail!("the application failed: {:?}", app.take_error());
        }
        let reports = cluster.read::<i64, i64>(ACTIVITY)?;
        for (customer, count) in reports.iter().skip(shown) {
            println!("customer {:>3}: {:>4} orders", customer.unwrap_or_default(), count.unwrap_or_default());
        }
        shown = reports.len();
        let mut latest: BTreeMap<i64, i64> = BTreeMap::new();
        for (customer, count) in reports {
            if let (Some(customer), Some(count)) = (customer, count) {
                latest.insert(customer, count); // one customer's reports are in one partition, in order
            }
        }
        Ok(latest == expected)
    });
    app.close()?;
    if let Some(error) = app.take_error() {
        bail!(error);
    }
    result?;
    let total: i64 = expected.values().sum();
    ensure!(total as u64 == first + orders, "{total} orders counted, {} in the topic", first + orders);
    println!("the last report of each of {} customers matches a plain loop over {total} orders", expected.len());
    Ok(())
}
