// Topics from event types clash too, found by the compiler: a sink of `Order`'s own topic next to a
// source of it, and an explicit topic that is `Order`'s topic.
use kstreams::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Event)]
#[event(topic = "orders", key = customer_id)]
struct Order {
    customer_id: i64,
    total_value: f64,
}

#[topology]
fn resend(#[source] orders: KStream<i64, Order>, #[sink] again: Sink<i64, Order>) {
    orders.to_sink(&again);
}

#[topology]
fn totals(#[source] orders: KStream<i64, Order>, #[sink(topic = "orders")] totals: Sink<i64, f64>) {
    orders.map_values(|o| o.total_value).to_sink(&totals);
}

fn main() {}
