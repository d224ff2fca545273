//! `#[topology]`: a function whose parameters declare a topology's interface (sources, tables, sinks,
//! named stores) and whose body holds the processing steps, written with the normal DSL.
//!
//! Parse (`parse`: the parameters and their attributes into [`Param`]s) → validate (`conflicts`: topics
//! used twice in ways that cannot work, names Kafka would reject) → emit (`expand`: a function returning
//! the built `Topology`, and one that adds the steps to a given builder). The steps stay the user's
//! code, untouched, in a nested function that takes the declared parameters; so an error in them (a
//! stream of the wrong type handed to a sink) is reported where it was written.

mod conflicts;
mod expand;
mod parse;

use proc_macro2::{Span, TokenStream};
use syn::{Ident, ItemFn, LitStr, Type};

use crate::errors::Errors;

/// The macro's entry point: `args` are the tokens inside `#[topology(..)]`. On errors, the errors and
/// stand-ins for the two functions, so that callers of `name()` get no second, misleading error.
pub(crate) fn expand(args: TokenStream, item: ItemFn) -> TokenStream {
    let mut errors = Errors::new();
    if !args.is_empty() {
        errors.spanned(&args, "`#[topology]` takes no arguments: the parameters declare the topology");
    }
    let def = parse::parse(item, &mut errors);
    let checks = conflicts::check(&def.params, &mut errors);
    match errors.finish(()) {
        Ok(()) => expand::emit(&def, &checks),
        Err(e) => {
            let mut out = e.into_compile_error();
            out.extend(expand::stand_ins(&def));
            out
        }
    }
}

/// A `#[topology]` function, parsed.
pub(crate) struct TopologyDef {
    /// The function as written, less our attributes on its parameters.
    pub(crate) item: ItemFn,
    pub(crate) params: Vec<Param>,
}

/// What a parameter declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `#[source]`: a `KStream<K, V>` read from a topic.
    Source,
    /// `#[table]`: a `KTable<K, V>` read from a topic.
    Table,
    /// `#[sink]`: a `Sink<K, V>` naming a topic the steps write.
    Sink,
    /// `#[store(name = "..")]`: a `Materialized<K, V>` naming a store.
    Store,
}

impl Role {
    /// The attribute, as the user writes it.
    pub(crate) fn attr_name(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Table => "table",
            Role::Sink => "sink",
            Role::Store => "store",
        }
    }

    /// The parameter type the role takes.
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Role::Source => "KStream",
            Role::Table => "KTable",
            Role::Sink => "Sink",
            Role::Store => "Materialized",
        }
    }
}

/// Where a source's, table's or sink's topic comes from.
#[derive(Clone)]
pub(crate) enum Topic {
    /// `topic = "orders"`: known at expansion time.
    Literal(LitStr),
    /// No `topic`: the value type's `Event::TOPIC`, known only to the compiler.
    Event,
}

/// One declared parameter.
pub(crate) struct Param {
    pub(crate) role: Role,
    /// The parameter's name (its pattern without `mut`).
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// `K` and `V` of `KStream<K, V>` (and of `KTable`, `Sink`, `Materialized`).
    pub(crate) key_ty: Type,
    pub(crate) value_ty: Type,
    /// For sources, tables and sinks.
    pub(crate) topic: Option<Topic>,
    /// For stores.
    pub(crate) store_name: Option<LitStr>,
    /// Where errors about this declaration clashing with an earlier one point: the topic or store
    /// name literal, or the attribute's name (`sink` in `#[sink]`) when the topic is an event type's.
    pub(crate) decl_span: Span,
}
