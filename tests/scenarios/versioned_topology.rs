//! The versioned-store topology the test driver (tests/versioned_stores.rs) and the broker scenarios
//! (tests/scenarios/state.rs) share: prices kept with the time each became valid, orders answered with
//! the price as of their own time.

use std::sync::Arc;
use std::time::Duration;

use kstreams::prelude::*;
use kstreams::serde::{I64Serde, StringSerde};
use kstreams::store::Stores;

/// Keeps each price record as the product's version from the record's timestamp, and forwards what
/// `put` returned.
struct KeepPrice;
impl Processor<String, i64, String, i64> for KeepPrice {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        record: Record<String, i64>,
    ) -> Result<(), StreamsError> {
        let valid_to =
            ctx.versioned_store::<String, i64>("prices")?.put(&record.key, Some(&record.value), record.timestamp)?;
        ctx.forward(record.with_value(valid_to))
    }
}

/// Answers each order (key: product) with the product's price as of the order's timestamp, -1 for none.
struct PriceAt;
impl Processor<String, String, String, i64> for PriceAt {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        record: Record<String, String>,
    ) -> Result<(), StreamsError> {
        let price = ctx.versioned_store::<String, i64>("prices")?.get_as_of(&record.key, record.timestamp)?;
        ctx.forward(record.with_value(price.map_or(-1, |p| p.value)))
    }
}

/// `prices` (product → price) kept in the versioned store `prices` (a minute of history), `put`'s result
/// to `put-results`; `orders` (product → anything) answered on `prices-at` with the price as of the
/// order's timestamp (-1: none).
pub(crate) fn prices_topology(
    prices: &str,
    orders: &str,
    puts: &str,
    answers: &str,
) -> Result<Topology, TopologyError> {
    let mut topology = Topology::new();
    let store = Stores::versioned_key_value_store_builder(
        Stores::persistent_versioned_key_value_store("prices", Duration::from_secs(60)),
        Arc::new(StringSerde),
        Arc::new(I64Serde),
    );
    topology.add_source("prices-in", &[prices], Arc::new(StringSerde), Arc::new(I64Serde))?;
    topology.add_processor("keep", || KeepPrice, &["prices-in"])?;
    topology.add_sink("puts", puts, Arc::new(StringSerde), Arc::new(I64Serde), &["keep"])?;
    topology.add_source("orders-in", &[orders], Arc::new(StringSerde), Arc::new(StringSerde))?;
    topology.add_processor("price-at", || PriceAt, &["orders-in"])?;
    topology.add_sink("answers", answers, Arc::new(StringSerde), Arc::new(I64Serde), &["price-at"])?;
    topology.add_state_store(store, &["keep", "price-at"])?;
    Ok(topology)
}

/// The DSL's versioned table (KIP-914) and the stream-table join's grace period (KIP-923): `prices`
/// (product → price) a table versioned with a minute of history in store `prices`; `orders` (product →
/// quantity) wait ten seconds in the join's buffer `priced-Buffer`, then are priced as of their own time
/// on `totals` (quantity × price).
#[allow(dead_code)] // not every test that includes this file uses both topologies
pub(crate) fn priced_orders_topology(prices: &str, orders: &str, totals: &str) -> Result<Topology, TopologyError> {
    use kstreams::dsl::{Consumed, Joined, Materialized, StreamsBuilder};
    let builder = StreamsBuilder::new();
    let history = Stores::persistent_versioned_key_value_store("prices", Duration::from_secs(60));
    let consumed = Consumed::with(Arc::new(StringSerde), Arc::new(I64Serde));
    let table = builder.table_with(prices, consumed, Materialized::as_versioned(history));
    let joined = Joined::as_name("priced").with_grace_period(Duration::from_secs(10));
    builder.stream::<String, i64>(orders).join_with(&table, |quantity, price| quantity * price, joined).to(totals);
    builder.build()
}
