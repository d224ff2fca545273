// The key field's type has no serde: the error is on the field's type.
use kstreams::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Serialize, Deserialize)]
struct CustomerId(i64);

#[derive(Clone, Serialize, Deserialize, Event)]
#[event(topic = "orders", key = customer_id)]
struct Order {
    customer_id: CustomerId,
    total_value: f64,
}

fn main() {}
