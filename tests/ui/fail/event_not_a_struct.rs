// Events are structs with named fields.
use kstreams::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Event)]
#[event(topic = "orders", key = customer_id)]
enum Order {
    Created { customer_id: i64 },
}

#[derive(Clone, Serialize, Deserialize, Event)]
#[event(topic = "refunds", key = customer_id)]
struct Refund(i64, f64);

#[derive(Clone, Serialize, Deserialize, Event)]
struct Payment {
    customer_id: i64,
}

fn main() {}
