//! Topics and stores declared twice in ways that cannot work, found before anything runs.
//!
//! A topic may not be read twice (Kafka Streams gives each topic one source), nor be both read and
//! written by one topology (its output would loop back into its input), nor be written with two
//! different key/value types (its readers expect one). Two sinks of the same types on one topic are
//! fine. A store name may be declared once.
//!
//! Literal topics are compared here, and a clash is a `compile_error!` on the later declaration's topic
//! literal. A topic that comes from an event type (`#[source]` with no `topic`) is only known to the
//! compiler, so for every pair that would clash if the topics were equal we emit a const assertion
//! instead, spanned on the later declaration's literal or, for an event type's topic, on its attribute's
//! name: a clash is still a compile error, reported as a failed constant evaluation with our message.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};

use super::{Param, Role, Topic};
use crate::errors::{pretty, Errors};

/// A const assertion that two topics differ, for topics known only to the compiler.
pub(crate) struct Assertion {
    /// The later declaration's topic (see [`Param::decl_span`]).
    pub(crate) span: Span,
    pub(crate) first: TokenStream,
    pub(crate) second: TokenStream,
    pub(crate) message: String,
}

/// How two uses of one topic clash, if they do.
fn clash(a: &Param, b: &Param) -> Option<&'static str> {
    let reads = |p: &Param| matches!(p.role, Role::Source | Role::Table);
    match (reads(a), reads(b)) {
        (true, true) => Some("read twice: a topology reads a topic once (declare one source and clone its handle)"),
        (true, false) | (false, true) => {
            Some("both read and written: a topology's output would loop back into its input")
        }
        (false, false) if types(a) != types(b) => {
            Some("written with two different types: its readers expect one key type and one value type")
        }
        (false, false) => None,
    }
}

/// Checks every pair of declarations; literal clashes go to `errors`, the rest come back as assertions.
pub(super) fn check(params: &[Param], errors: &mut Errors) -> Vec<Assertion> {
    let mut assertions = Vec::new();
    for (j, second) in params.iter().enumerate() {
        for first in &params[..j] {
            if first.role == Role::Store || second.role == Role::Store {
                if let (Some(a), Some(b)) = (&first.store_name, &second.store_name)
                    && a.value() == b.value()
                {
                    errors.push(syn::Error::new(
                        second.decl_span,
                        format!(
                            "store `{}` is declared twice: by `{}` and by `{}`",
                            b.value(),
                            first.ident,
                            second.ident
                        ),
                    ));
                }
                continue;
            }
            let Some(why) = clash(first, second) else { continue };
            match (&first.topic, &second.topic) {
                (Some(Topic::Literal(a)), Some(Topic::Literal(b))) if a.value() == b.value() => {
                    let message = format!(
                        "topic \"{}\" is {why}; it is declared by `{}` ({}) and by `{}` ({})",
                        b.value(),
                        first.ident,
                        pretty(&first.ty),
                        second.ident,
                        pretty(&second.ty),
                    );
                    errors.push(syn::Error::new(second.decl_span, message));
                }
                (Some(Topic::Literal(_)), Some(Topic::Literal(_))) => {}
                (Some(a), Some(b)) => assertions.push(Assertion {
                    span: second.decl_span,
                    first: topic_expr(first, a),
                    second: topic_expr(second, b),
                    message: format!("{} and {} are the same topic, which is {why}", describe(first), describe(second)),
                }),
                _ => {}
            }
        }
    }
    assertions
}

/// The topic as an expression: the literal, or the event type's `Event::TOPIC`.
fn topic_expr(param: &Param, topic: &Topic) -> TokenStream {
    match topic {
        Topic::Literal(lit) => lit.to_token_stream(),
        Topic::Event => {
            let value = &param.value_ty;
            quote! { <#value as ::kstreams::Event>::TOPIC }
        }
    }
}

/// `` `orders` (`KStream<i64, Order>`, the topic of `Order`) `` for messages.
fn describe(param: &Param) -> String {
    match &param.topic {
        Some(Topic::Literal(lit)) => format!("`{}` ({}, topic \"{}\")", param.ident, pretty(&param.ty), lit.value()),
        _ => format!("`{}` ({}, the topic of `{}`)", param.ident, pretty(&param.ty), pretty(&param.value_ty)),
    }
}

/// The key and value types as written, to compare two sinks.
fn types(param: &Param) -> String {
    format!("{}, {}", pretty(&param.key_ty), pretty(&param.value_ty))
}
