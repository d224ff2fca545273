// The key names a field the struct does not have: the error is on the name, lists the fields and
// suggests the closest.
use kstreams::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Event)]
#[event(topic = "orders", key = customr_id)]
struct Order {
    customer_id: i64,
    order_id: i64,
    total_value: f64,
}

fn main() {}
