// `#[event(..)]` without a topic.
use kstreams::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Event)]
#[event(key = customer_id)]
struct Order {
    customer_id: i64,
    total_value: f64,
}

fn main() {}
