// A sink without a topic takes its value type's `#[event]` topic; `Option<f64>` has none.
use kstreams::prelude::*;

#[topology]
fn totals(
    #[source(topic = "amounts")] amounts: KStream<String, f64>,
    #[sink] totals: Sink<String, Option<f64>>,
) {
    amounts.group_by_key().reduce(|a, b| a + b).to_stream().to_sink(&totals);
}

fn main() {}
