// Declarations the macro rejects before the compiler sees them: a parameter without a role, a store
// without a name, a parameter of the wrong type, an invalid store name, a store declared twice, a
// return type, generics.
use kstreams::prelude::*;

#[topology]
fn steps<T>(
    amounts: KStream<String, f64>,
    #[store] unnamed: Materialized<String, f64>,
    #[source(topic = "orders")] orders: Vec<f64>,
    #[store(name = "totals store")] spaced: Materialized<String, f64>,
    #[store(name = "totals")] first: Materialized<String, f64>,
    #[store(name = "totals")] second: Materialized<String, f64>,
) -> u32 {
    0
}

fn main() {}
