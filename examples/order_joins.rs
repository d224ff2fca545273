//! The order flow with joins, as Kafka Streams' microservices example wires it: each order is enriched
//! with its customer (a stream-table join) and its product (a join with a global table of products, which
//! every instance holds whole), then matched with its payment within ten minutes (a stream-stream left
//! join); an order that is never paid comes out once, unpaid, when its window has closed. Under
//! exactly_once_v2.
//!
//! ```text
//! cargo run --example order_joins [-- --orders N] [--bootstrap-servers HOST:PORT]
//! ```
//!
//! Produces eight customers, five products, `N` orders over two hours of event time (their own timestamps) and a
//! payment within five minutes for four orders in five, and runs the application until the paid orders
//! have come out. The join takes records up to three hours late (its grace): the orders reach it through
//! a repartition topic, after payments that are already there. Then it produces a paid order per
//! partition six hours on, which moves stream time past every window, so that the unpaid orders come
//! out too. Checks the results against a plain loop (each order once: with its customer's and its
//! product's names, and paid or not), and exits. Each run uses its own topics and application id (`order-joins-<run>`).

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure};
use kstreams::dsl::JoinWindows;
use kstreams::prelude::*;
use kstreams::runtime::State;
use serde::{Deserialize, Serialize};
use support::{CommonArgs, Rng};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// A customer, keyed by customer id.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Customer {
    name: String,
}
json_serde!(Customer);

/// A product, keyed by product id.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Product {
    name: String,
}
json_serde!(Product);

/// An order, keyed by customer id.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    order_id: i64,
    customer_id: i64,
    product_id: i64,
    cents: i64,
}
json_serde!(Order);

/// An order with its customer's and product's names.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NamedOrder {
    order: Order,
    customer: String,
    product: String,
}
json_serde!(NamedOrder);

/// A payment, keyed by order id.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Payment {
    order_id: i64,
    cents: i64,
}
json_serde!(Payment);

/// An order with its customer's name and its payment, if one came in time; keyed by order id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CheckedOrder {
    order_id: i64,
    customer: String,
    product: String,
    cents: i64,
    paid: Option<i64>,
}
json_serde!(CheckedOrder);

fn topology([customers, products, orders, payments, checked]: [&str; 5]) -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    let customers = builder.table::<i64, Customer>(customers);
    let products = builder.global_table::<i64, Product>(products);
    let payments = builder.stream::<i64, Payment>(payments);
    builder
        .stream::<i64, Order>(orders)
        // Orders of unknown customers are dropped here.
        .join(&customers, |order, customer| (order, customer.name.clone()))
        // Every instance holds every product: no repartitioning by product id.
        .join_global(
            &products,
            |_, (order, _)| order.product_id,
            |(order, customer), product| NamedOrder { order, customer, product: product.name.clone() },
        )
        // Keyed by order id, as the payments are: repartitioned before the next join.
        .select_key(|_, named: &NamedOrder| named.order.order_id)
        .left_join_stream(
            &payments,
            |named, payment| CheckedOrder {
                order_id: named.order.order_id,
                customer: named.customer.clone(),
                product: named.product.clone(),
                cents: named.order.cents,
                paid: payment.map(|p| p.cents),
            },
            JoinWindows::of_time_difference_and_grace(Duration::from_secs(600), Duration::from_secs(3 * 3600)),
        )
        .to(checked);
    builder.build()
}

/// Orders with their customers and payments.
#[derive(clap::Parser)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// How many orders to produce.
    #[arg(long, default_value_t = 400, value_name = "N")]
    orders: u64,
}

fn main() -> anyhow::Result<()> {
    let Args { common, orders } = support::start()?;
    let cluster = common.cluster()?;
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let topic = |name: &str| format!("order-joins-{run}-{name}");
    let (customers_topic, products_topic, orders_topic, payments_topic, checked_topic) =
        (topic("customers"), topic("products"), topic("orders"), topic("payments"), topic("checked"));
    cluster.create_topics(&[&customers_topic, &orders_topic, &payments_topic, &checked_topic], 4)?;
    // The products on another partition count: a global table needs no co-partitioning.
    cluster.create_topics(&[&products_topic], 3)?;

    // From midnight, 1 January 2026: the customers an hour before the first order.
    let start: i64 = 1_767_225_600_000;
    let mut rng = Rng::new(run as u64);
    let customers = 8;
    let mut producer = cluster.producer();
    let names: Vec<String> = (1..=customers).map(|c| format!("customer-{c}")).collect();
    for (c, name) in names.iter().enumerate() {
        producer.send(&customers_topic, &(c as i64 + 1), &Customer { name: name.clone() }, start - HOUR)?;
    }
    let products = 5;
    let product_names: Vec<String> = (1..=products).map(|p| format!("product-{p}")).collect();
    for (p, name) in product_names.iter().enumerate() {
        producer.send(&products_topic, &(p as i64 + 1), &Product { name: name.clone() }, start - HOUR)?;
    }
    let mut expected: BTreeMap<i64, CheckedOrder> = BTreeMap::new();
    let mut order_at = |order_id: i64, at: i64, paid: bool, rng: &mut Rng| -> anyhow::Result<()> {
        let customer_id = rng.below(customers) as i64 + 1;
        let product_id = rng.below(products) as i64 + 1;
        let cents = rng.below(10_000) as i64 + 1;
        producer.send(&orders_topic, &customer_id, &Order { order_id, customer_id, product_id, cents }, at)?;
        let paid_at = at + rng.below(5 * MINUTE as u64) as i64;
        if paid {
            producer.send(&payments_topic, &order_id, &Payment { order_id, cents }, paid_at)?;
        }
        let customer = names[customer_id as usize - 1].clone();
        let product = product_names[product_id as usize - 1].clone();
        let checked = CheckedOrder { order_id, customer, product, cents, paid: paid.then_some(cents) };
        expected.insert(order_id, checked);
        Ok(())
    };
    let orders = orders as i64;
    for order_id in 0..orders {
        let at = start + order_id * 2 * HOUR / orders;
        let paid = rng.below(5) != 0;
        order_at(order_id, at, paid, &mut rng)?;
    }
    producer.flush()?;
    // Six hours on, once the first orders are through: paid orders whose ids land on every partition of
    // the re-keyed stream, so that each join task's stream time passes the window of every earlier order.
    let ticks: Vec<i64> = (orders..orders + 16).collect();
    let mut producer = cluster.producer();
    let mut later = Vec::new();
    for &order_id in &ticks {
        let customer_id = rng.below(customers) as i64 + 1;
        let product_id = rng.below(products) as i64 + 1;
        let cents = rng.below(10_000) as i64 + 1;
        let customer = names[customer_id as usize - 1].clone();
        let product = product_names[product_id as usize - 1].clone();
        later.push((Order { order_id, customer_id, product_id, cents }, start + 6 * HOUR));
        expected.insert(order_id, CheckedOrder { order_id, customer, product, cents, paid: Some(cents) });
    }
    let paid_first = expected.values().filter(|o| o.paid.is_some() && o.order_id < orders).count();
    println!(
        "produced {customers} customers, {products} products, {orders} orders and their payments to `{orders_topic}` on {}",
        cluster.describe()
    );

    let topology = topology([&customers_topic, &products_topic, &orders_topic, &payments_topic, &checked_topic])?;
    println!("{}", topology.describe());
    let mut config = cluster.config(&format!("order-joins-{run}"));
    config.set("processing.guarantee", "exactly_once_v2")?;
    config.commit_interval = Some(Duration::from_millis(200));
    // Unpaid orders are looked for at every record that moves stream time rather than at most once a
    // second: this run's records come within a second and nothing comes after them.
    config.set("__emit.interval.ms.kstreams.outer.join.spurious.results.fix__", "0")?;
    let mut app = cluster.app(topology, config)?;
    app.start()?;
    let mut seen = 0;
    let result = cluster.wait_until(Duration::from_secs(120), "every order checked", || {
        if app.state() == State::Error {
            bail!("the application failed: {:?}", app.take_error());
        }
        let read = cluster.read::<i64, CheckedOrder>(&checked_topic)?;
        for (_, order) in read.iter().skip(seen).filter_map(|(k, o)| Some((k, o.clone()?))) {
            let paid = order.paid.map_or("unpaid".to_string(), |c| format!("paid {c}"));
            println!(
                "order {:>4}  {}  {}  {:>6} cents  {paid}",
                order.order_id, order.customer, order.product, order.cents
            );
        }
        seen = read.len();
        if seen >= paid_first && !later.is_empty() {
            for (order, at) in later.drain(..) {
                producer.send(&orders_topic, &order.customer_id, &order, at)?;
                let payment = Payment { order_id: order.order_id, cents: order.cents };
                producer.send(&payments_topic, &order.order_id, &payment, at)?;
            }
            producer.flush()?;
            println!("the paid orders are through; produced {} orders six hours on", ticks.len());
        }
        Ok(seen >= expected.len())
    });
    app.close()?;
    if let Some(error) = app.take_error() {
        bail!(error);
    }
    result?;
    // Read again after the close: an order that came out twice would show now.
    let mut checked: BTreeMap<i64, CheckedOrder> = BTreeMap::new();
    for (_, order) in cluster.read::<i64, CheckedOrder>(&checked_topic)? {
        let Some(order) = order else { bail!("a null result") };
        let id = order.order_id;
        ensure!(checked.insert(id, order).is_none(), "order {id} came out twice");
    }
    if checked != expected {
        bail!("the checked orders differ from a plain loop:\n  stream: {checked:?}\n  loop:   {expected:?}");
    }
    let unpaid = checked.values().filter(|o| o.paid.is_none()).count();
    println!(
        "{} orders, {unpaid} of them unpaid, each checked once with its customer and product: match a plain loop",
        checked.len()
    );
    Ok(())
}
