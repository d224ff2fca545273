//! Orders per customer per hour, final results only: a tumbling one-hour window with five minutes of
//! grace for late orders, and `suppress(until_window_closes)` so that each customer's hour is reported
//! once, when it can no longer change.
//!
//! ```text
//! cargo run --example order_windows [-- --orders N] [--bootstrap-servers HOST:PORT]
//! ```
//!
//! Produces `N` orders spread over six hours of event time (their own timestamps), some of them a few
//! minutes out of order (within the grace), then one order per customer two hours after the last, which
//! moves stream time on so that every hour closes. Runs the application until each closed hour has been
//! reported, checks the reports against a plain loop (one report per customer and hour, with its count),
//! and exits. Each run uses its own topics and application id (`order-windows-<run>`), so runs on the
//! same Kafka do not mix.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure};
use kstreams::prelude::*;
use kstreams::runtime::State;
use serde::{Deserialize, Serialize};
use support::{CommonArgs, Rng};

const HOUR: i64 = 3_600_000;
const MINUTE: i64 = 60_000;

/// An order, keyed by customer id.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    order_id: u64,
    customer_id: i64,
    total_value: f64,
}
json_serde!(Order);

/// The final count of one customer's orders in one hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct HourlyOrders {
    customer_id: i64,
    hour_start: i64,
    orders: i64,
}
json_serde!(HourlyOrders);

fn topology(orders: &str, hourly: &str) -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<i64, Order>(orders)
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(Duration::from_secs(3600), Duration::from_secs(300)))
        .count()
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .map(|window: Windowed<i64>, count: Option<i64>| {
            let report = HourlyOrders {
                customer_id: window.key,
                hour_start: window.window.start,
                orders: count.unwrap_or_default(),
            };
            (window.key, report)
        })
        .to(hourly);
    builder.build()
}

/// Orders per customer per hour, final results only.
#[derive(clap::Parser)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// How many orders to produce.
    #[arg(long, default_value_t = 600, value_name = "N")]
    orders: u64,
}

fn main() -> anyhow::Result<()> {
    let Args { common, orders } = support::start()?;
    let cluster = common.cluster()?;
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let (orders_topic, hourly_topic) = (format!("order-windows-{run}-orders"), format!("order-windows-{run}-hourly"));
    cluster.create_topics(&[&orders_topic, &hourly_topic], 4)?;

    // Six hours of orders from midnight, 1 January 2026, most in time order, one in five up to three
    // minutes early, which a later order's time makes late: within the five minutes of grace.
    let start: i64 = 1_767_225_600_000;
    let mut rng = Rng::new(run as u64);
    let customers = 8;
    let mut producer = cluster.producer();
    let mut expected: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for order_id in 0..orders {
        let customer_id = rng.below(customers) as i64 + 1;
        let mut at = start + (order_id as i64) * 6 * HOUR / orders as i64;
        if rng.below(5) == 0 {
            at = (at - rng.below(3 * MINUTE as u64) as i64).max(start);
        }
        let order = Order { order_id, customer_id, total_value: rng.below(10_000) as f64 / 100.0 };
        producer.send(&orders_topic, &customer_id, &order, at)?;
        *expected.entry((customer_id, at - at % HOUR)).or_default() += 1;
    }
    // One order per customer two hours after the last: every task's stream time passes the end of the
    // sixth hour plus the grace, so every hour closes. Their own hour stays open and is not reported.
    let later = start + 8 * HOUR;
    for customer_id in 1..=customers as i64 {
        let order = Order { order_id: orders + customer_id as u64, customer_id, total_value: 0.0 };
        producer.send(&orders_topic, &customer_id, &order, later)?;
    }
    producer.flush()?;
    println!(
        "produced {orders} orders over six hours and {customers} later ones to `{orders_topic}` on {}",
        cluster.describe()
    );

    let topology = topology(&orders_topic, &hourly_topic)?;
    println!("{}", topology.describe());
    let mut config = cluster.config(&format!("order-windows-{run}"));
    config.commit_interval = Some(Duration::from_millis(200));
    let mut app = cluster.app(topology, config)?;
    app.start()?;
    let mut reports: Vec<HourlyOrders> = Vec::new();
    let result = cluster.wait_until(Duration::from_secs(120), "hourly order counts", || {
        if app.state() == State::Error {
            bail!("the application failed: {:?}", app.take_error());
        }
        let read = cluster.read::<i64, HourlyOrders>(&hourly_topic)?;
        for report in read.iter().skip(reports.len()).filter_map(|(_, r)| r.clone()) {
            println!(
                "customer {:>2}  hour {}  {:>3} orders",
                report.customer_id,
                hour(report.hour_start),
                report.orders
            );
            reports.push(report);
        }
        Ok(reports.len() >= expected.len())
    });
    app.close()?;
    if let Some(error) = app.take_error() {
        bail!(error);
    }
    result?;
    // Read again after the close: a report that came twice would show now.
    let reports: Vec<HourlyOrders> =
        cluster.read::<i64, HourlyOrders>(&hourly_topic)?.into_iter().filter_map(|(_, r)| r).collect();
    let mut seen: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for report in &reports {
        ensure!(
            seen.insert((report.customer_id, report.hour_start), report.orders).is_none(),
            "customer {} hour {} was reported twice",
            report.customer_id,
            hour(report.hour_start)
        );
    }
    if seen != expected {
        bail!("the hourly counts differ from a plain loop:\n  stream: {seen:?}\n  loop:   {expected:?}");
    }
    println!(
        "{} final hourly counts of {customers} customers, each reported once, match a plain loop over {orders} orders",
        seen.len()
    );
    Ok(())
}

/// `HH:00` of an hour's start, counted from the first.
fn hour(start: i64) -> String {
    format!("{:02}:00", (start % (24 * HOUR)) / HOUR)
}
