//! # streams-macros: topologies derived from declarations
//!
//! The proc macros behind `kstreams`' `#[derive(Event)]` and `#[topology]`; use them through the façade
//! (`kstreams::Event`, `kstreams::topology`), which their expansions name by absolute path. Both write
//! only what a user could write with the DSL by hand, and `docs/macros.md` shows each expansion in full
//! (a test in this crate checks that the document shows exactly what the macros produce).
//!
//! - [`Event`](macro@Event) (`event.rs`): binds a struct to its topic and partition-key field.
//! - [`topology`](macro@topology) (`topology/`): a function declaring a topology's inputs, outputs and
//!   stores, whose body holds the steps.
//! - `errors.rs`: every mistake is collected and reported at once, spanned on the tokens at fault;
//!   `names.rs`: Kafka's rule for topic and store names, and suggestions for misspelled fields;
//!   `doc_expansions.rs` (tests): the expansions `docs/macros.md` shows are the macros' real output.
//!
//! Each macro goes parse → model → validate → emit, as serde_derive and thiserror do. This crate
//! depends on nothing of ours (the façade depends on it), so it cannot run its own examples: they run
//! as doctests in the façade and in `docs/macros.md`.

#[cfg(test)]
mod doc_expansions;
mod errors;
mod event;
mod names;
mod topology;

use proc_macro::TokenStream;

/// Binds an event type to its topic and partition-key field: `#[event(topic = "orders", key =
/// customer_id)]`.
///
/// Implements `kstreams::Event` (`Key` is the field's type, `key()` clones the field, `TOPIC` is the
/// topic), and `kstreams::serde::DefaultSerde` as JSON like `json_serde!` (the type must derive
/// `Serialize` and `Deserialize`); `serde = none` leaves `DefaultSerde` to you. Then
/// `builder.stream_event::<Order>()` is the topic as a `KStream<i64, Order>` already keyed by
/// `customer_id`, and `stream.to_event()` writes it keyed (and so partitioned) by that field.
///
/// Errors: a key field the struct does not have (spanned on the name, listing the fields), a key type
/// without a serde (spanned on the field's type), a missing `topic` or `key`, an unknown option, an
/// invalid topic name, and anything but a non-generic struct with named fields.
///
/// ```text
/// #[derive(Clone, Serialize, Deserialize, Event)]
/// #[event(topic = "orders", key = customer_id)]      // serde = json is the default
/// struct Order { customer_id: i64, order_id: i64, total_value: f64 }
/// ```
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    errors::into_output(event::expand(&input)).into()
}

/// Derives a topology from a function: its parameters declare the inputs, outputs and stores, its body
/// holds the steps, written with the DSL.
///
/// | parameter | bound to |
/// | --- | --- |
/// | `#[source] orders: KStream<K, V>` | `builder.stream_event::<V>()` (the topic of `V`'s `#[event]`) |
/// | `#[source(topic = "t")] s: KStream<K, V>` | `builder.stream::<K, V>("t")` |
/// | `#[table] t: KTable<K, V>` / `#[table(topic = "t")]` | `builder.table_event::<V>()` / `builder.table::<K, V>("t")` |
/// | `#[sink] out: Sink<K, V>` | `Sink::<K, V>::event()` (written keyed by `V::key()`) |
/// | `#[sink(topic = "t")] out: Sink<K, V>` | `Sink::<K, V>::new("t")` |
/// | `#[store(name = "s")] store: Materialized<K, V>` | `Materialized::<K, V>::as_store("s")` |
///
/// `fn order_totals(..) { .. }` becomes `fn order_totals() -> Result<Topology, TopologyError>`, and
/// `fn order_totals_into(builder: &StreamsBuilder)` adds the same steps to an existing builder.
/// Parameters are bound in the order declared, then the body runs: the topology is exactly the one the
/// same builder calls, in that order, make (`describe()` is identical).
///
/// At expansion time: a literal topic read twice, both read and written, or written with two types is
/// an error on the later declaration; for topics from event types, a const assertion makes the same
/// clash a compile error. Writing a stream of other types to a sink (`stream.to_sink(&sink)`) is a
/// type error at that call.
///
/// ```text
/// #[topology]
/// fn order_totals(
///     #[source] orders: KStream<i64, Order>,
///     #[sink(topic = "customer-totals")] totals: Sink<i64, Option<f64>>,
///     #[store(name = "customer-totals-store")] store: Materialized<i64, f64>,
/// ) {
///     orders.filter(|_, o| o.total_value > 0.0).map_values(|o| o.total_value).group_by_key()
///         .reduce_with(|a, b| a + b, store).to_stream().to_sink(&totals);
/// }
/// let topology = order_totals()?;
/// ```
#[proc_macro_attribute]
pub fn topology(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(item as syn::ItemFn);
    topology::expand(args.into(), item).into()
}
