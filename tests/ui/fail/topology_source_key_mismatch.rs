// A source declared with another key type than its event's partition key.
use kstreams::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Event)]
#[event(topic = "orders", key = customer_id)]
struct Order {
    customer_id: i64,
    total_value: f64,
}

#[topology]
fn totals(#[source] orders: KStream<String, Order>, #[sink(topic = "totals")] totals: Sink<String, f64>) {
    orders.map_values(|o| o.total_value).to_sink(&totals);
}

fn main() {}
