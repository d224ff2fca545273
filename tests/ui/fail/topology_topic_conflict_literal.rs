// A literal topic used twice in ways that cannot work: read and written, read twice, written with two
// types. Each error is on the later declaration's attribute.
use kstreams::prelude::*;

#[topology]
fn looped(
    #[source(topic = "amounts")] amounts: KStream<String, f64>,
    #[sink(topic = "amounts")] doubled: Sink<String, f64>,
    #[table(topic = "amounts")] latest: KTable<String, f64>,
    #[sink(topic = "totals")] totals: Sink<String, f64>,
    #[sink(topic = "totals")] counts: Sink<String, i64>,
) {
    let _ = (amounts, doubled, latest, totals, counts);
}

fn main() {}
