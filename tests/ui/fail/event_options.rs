// Unknown and repeated options, an unknown serde and a topic Kafka would refuse: all reported at once.
use kstreams::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Event)]
#[event(topic = "new orders", key = customer_id, partitions = 8, serde = avro, key = order_id)]
struct Order {
    customer_id: i64,
    order_id: i64,
}

fn main() {}
