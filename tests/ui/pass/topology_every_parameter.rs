// Every kind of `#[topology]` parameter, with the spellings users write: `mut`, a parameter called
// `builder`, doc comments, other attributes on parameters, two sinks of the same types on one topic.
use kstreams::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(topic = "orders", key = customer_id)]
struct Order {
    customer_id: i64,
    total_value: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(topic = "customers", key = customer_id)]
struct Customer {
    customer_id: i64,
    name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(topic = "big-orders", key = customer_id)]
struct BigOrder {
    customer_id: i64,
    total_value: f64,
}

/// Every parameter kind at once.
#[topology]
pub fn everything(
    #[source] orders: KStream<i64, Order>,
    #[source(topic = "refunds")] mut builder: KStream<i64, f64>,
    #[table] customers: KTable<i64, Customer>,
    #[table(topic = "limits")] limits: KTable<String, f64>,
    #[sink] big: Sink<i64, BigOrder>,
    #[sink(topic = "amounts")] amounts: Sink<i64, f64>,
    #[sink(topic = "amounts")] refunds_out: Sink<i64, f64>,
    #[allow(unused_variables)]
    #[store(name = "counts")]
    counts: Materialized<i64, i64>,
) {
    builder = builder.map_values(|refund| -refund);
    builder.to_sink(&refunds_out);
    orders.map_values(|o| o.total_value).to_sink(&amounts);
    orders
        .filter(|_, o| o.total_value > 1_000.0)
        .map_values(|o| BigOrder { customer_id: o.customer_id, total_value: o.total_value })
        .to_sink(&big);
    customers.to_stream().foreach(|_, _| {});
    limits.to_stream().foreach(|_, _| {});
}

fn main() {
    let description = everything().unwrap().describe().to_string();
    for needle in ["[orders]", "[refunds]", "[customers]", "[limits]", "big-orders", "amounts"] {
        assert!(description.contains(needle), "{needle} in {description}");
    }
    let builder = StreamsBuilder::new();
    everything_into(&builder);
    assert_eq!(builder.build().unwrap().describe().to_string(), description);
}
