//! The order pipeline's event types and its two steps (order totals, order validation), each written
//! twice: with `#[topology]` and with the builder by hand. Shared by the tests that compare them.

#![allow(dead_code)]

use kstreams::prelude::*;
use serde::{Deserialize, Serialize};

/// A new order, on "orders", partitioned by customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(topic = "orders", key = customer_id)]
pub(crate) struct Order {
    pub(crate) customer_id: i64,
    pub(crate) order_id: i64,
    pub(crate) product: String,
    pub(crate) quantity: i32,
    pub(crate) total_value: f64,
}

/// An order that passed validation, on "order-validated".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(topic = "order-validated", key = customer_id)]
pub(crate) struct OrderValidated {
    pub(crate) customer_id: i64,
    pub(crate) order_id: i64,
    pub(crate) total_value: f64,
}

/// An order that did not, with the reason, on "order-rejected".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(topic = "order-rejected", key = customer_id)]
pub(crate) struct OrderRejected {
    pub(crate) customer_id: i64,
    pub(crate) order_id: i64,
    pub(crate) reason: String,
}

/// The products the shop sells.
pub(crate) const CATALOG: [&str; 4] = ["book", "lamp", "chair", "desk"];
/// The largest total an order may have.
pub(crate) const MAX_TOTAL: f64 = 5_000.0;

/// The validation rule both versions of the step use: a quantity, a known product, a total within the
/// limit.
pub(crate) fn validate(order: &Order) -> Result<OrderValidated, OrderRejected> {
    let reason = if order.quantity <= 0 {
        Some(format!("quantity {} is not positive", order.quantity))
    } else if !CATALOG.contains(&order.product.as_str()) {
        Some(format!("unknown product `{}`", order.product))
    } else if !(order.total_value > 0.0 && order.total_value <= MAX_TOTAL) {
        Some(format!("total {} is outside (0, {MAX_TOTAL}]", order.total_value))
    } else {
        None
    };
    match reason {
        None => Ok(OrderValidated {
            customer_id: order.customer_id,
            order_id: order.order_id,
            total_value: order.total_value,
        }),
        Some(reason) => Err(OrderRejected { customer_id: order.customer_id, order_id: order.order_id, reason }),
    }
}

/// Order totals, declared: valid orders' totals summed per customer into a named store, written to
/// "customer-totals".
#[topology]
pub(crate) fn order_totals(
    #[source] orders: KStream<i64, Order>,
    #[sink(topic = "customer-totals")] totals: Sink<i64, Option<f64>>,
    #[store(name = "customer-totals-store")] store: Materialized<i64, f64>,
) {
    orders
        .filter(|_, order| order.total_value > 0.0)
        .map_values(|order| order.total_value)
        .group_by_key()
        .reduce_with(|a, b| a + b, store)
        .to_stream()
        .to_sink(&totals);
}

/// Order totals by hand, with topic names and no event types.
pub(crate) fn order_totals_by_hand() -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<i64, Order>("orders")
        .filter(|_, order| order.total_value > 0.0)
        .map_values(|order| order.total_value)
        .group_by_key()
        .reduce_with(|a, b| a + b, Materialized::as_store("customer-totals-store"))
        .to_stream()
        .to("customer-totals");
    builder.build()
}

/// Order validation, declared: each new order becomes an `OrderValidated` or an `OrderRejected` event.
#[topology]
pub(crate) fn order_validation(
    #[source] orders: KStream<i64, Order>,
    #[sink] validated: Sink<i64, OrderValidated>,
    #[sink] rejected: Sink<i64, OrderRejected>,
) {
    let checked = orders.map_values(|order| validate(&order));
    checked.flat_map_values(|checked| checked.ok()).to_sink(&validated);
    checked.flat_map_values(|checked| checked.err()).to_sink(&rejected);
}

/// Order validation by hand, with the event types' own topics and keys.
pub(crate) fn order_validation_by_hand() -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    let checked = builder.stream_event::<Order>().map_values(|order| validate(&order));
    checked.flat_map_values(|checked| checked.ok()).to_event();
    checked.flat_map_values(|checked| checked.err()).to_event();
    builder.build()
}
