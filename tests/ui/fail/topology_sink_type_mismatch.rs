// A stream written to a sink of other types: a type error at the call.
use kstreams::prelude::*;

#[topology]
fn totals(
    #[source(topic = "amounts")] amounts: KStream<String, f64>,
    #[sink(topic = "totals")] totals: Sink<String, Option<i64>>,
) {
    amounts.group_by_key().reduce(|a, b| a + b).to_stream().to_sink(&totals);
}

fn main() {}
