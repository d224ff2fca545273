//! Writes the expansion of a `#[topology]` function `name`:
//!
//! - `name() -> Result<Topology, TopologyError>`: a new builder, the steps added, `builder.build()`;
//! - `name_into(&StreamsBuilder)`: binds each parameter, in the order declared (sources and tables add
//!   their nodes then, so generated node names follow the declaration order), then calls the user's steps,
//!   kept as written in a nested function `__steps` that takes the parameters;
//! - const assertions that topics known only to the compiler (from event types) do not clash.
//!
//! Generated code names everything by absolute path through the façade (`::kstreams::..`), and each
//! binding is spanned on its parameter's type, so a type error in a declaration points at it.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::conflicts::Assertion;
use super::{Param, Role, Topic, TopologyDef};

pub(super) fn emit(def: &TopologyDef, assertions: &[Assertion]) -> TokenStream {
    let item = &def.item;
    let vis = &item.vis;
    let name = &item.sig.ident;
    let into = format_ident!("{}_into", name);
    let docs: Vec<_> = item.attrs.iter().filter(|a| a.path().is_ident("doc")).collect();
    let others: Vec<_> = item.attrs.iter().filter(|a| !a.path().is_ident("doc")).collect();
    let into_doc =
        format!(" Adds the steps of [`{name}`] to `builder`, to run them with other steps in one application.");

    let inputs = &item.sig.inputs;
    let block = &item.block;
    // Hygienic: a parameter may itself be called `builder`.
    let builder = Ident::new("builder", Span::mixed_site());
    let bindings = def.params.iter().map(|p| binding(p, &builder));
    let idents = def.params.iter().map(|p| &p.ident);
    let assertions = assertions.iter().map(assertion);

    quote! {
        #(#docs)*
        #(#others)*
        #vis fn #name() -> ::core::result::Result<::kstreams::Topology, ::kstreams::TopologyError> {
            let builder = ::kstreams::dsl::StreamsBuilder::new();
            #into(&builder);
            builder.build()
        }

        #[doc = #into_doc]
        #(#others)*
        #vis fn #into(#builder: &::kstreams::dsl::StreamsBuilder) {
            #(#assertions)*
            #[allow(clippy::too_many_arguments)]
            fn __steps(#inputs) #block
            #(#bindings)*
            __steps(#(#idents),*);
        }
    }
}

/// The two functions with bodies that only panic, emitted next to the errors of a declaration that
/// could not be expanded.
pub(super) fn stand_ins(def: &TopologyDef) -> TokenStream {
    let vis = &def.item.vis;
    let name = &def.item.sig.ident;
    let into = format_ident!("{}_into", name);
    quote! {
        #[allow(dead_code)]
        #vis fn #name() -> ::core::result::Result<::kstreams::Topology, ::kstreams::TopologyError> {
            ::core::unreachable!("the #[topology] declaration has errors")
        }
        #[allow(dead_code)]
        #vis fn #into(_: &::kstreams::dsl::StreamsBuilder) {
            ::core::unreachable!("the #[topology] declaration has errors")
        }
    }
}

/// `let orders: KStream<i64, Order> = builder.stream_event::<Order>();` and the like. Spanned on the
/// value type when the topic is the value type's (so "`X` is not an event type" points at `X`), else on
/// the parameter's type.
fn binding(param: &Param, builder: &Ident) -> TokenStream {
    let Param { ident, ty, key_ty: k, value_ty: v, .. } = param;
    let span = match param.topic {
        Some(Topic::Event) => v.span(),
        _ => ty.span(),
    };
    // The same hygiene as the function's `builder` parameter, located at the declaration, so that an
    // error about the whole expression (a source's key type mismatch) points there too.
    let builder = Ident::new("builder", builder.span().located_at(span));
    let value = match (param.role, &param.topic) {
        (Role::Source, Some(Topic::Literal(topic))) => quote_spanned! {span=> #builder.stream::<#k, #v>(#topic) },
        (Role::Source, _) => quote_spanned! {span=> #builder.stream_event::<#v>() },
        (Role::Table, Some(Topic::Literal(topic))) => quote_spanned! {span=> #builder.table::<#k, #v>(#topic) },
        (Role::Table, _) => quote_spanned! {span=> #builder.table_event::<#v>() },
        (Role::Sink, Some(Topic::Literal(topic))) => {
            quote_spanned! {span=> ::kstreams::dsl::Sink::<#k, #v>::new(#topic) }
        }
        (Role::Sink, _) => quote_spanned! {span=> ::kstreams::dsl::Sink::<#k, #v>::event() },
        (Role::Store, _) => {
            let name = &param.store_name;
            quote_spanned! {span=> ::kstreams::dsl::Materialized::<#k, #v>::as_store(#name) }
        }
    };
    quote_spanned! {span=> let #ident: #ty = #value; }
}

/// `const _: () = assert!(!same_topic(<Order as Event>::TOPIC, "orders"), "..");`
fn assertion(assertion: &Assertion) -> TokenStream {
    let Assertion { span, first, second, message } = assertion;
    // `assert!`'s message is a format string.
    let message = message.replace('{', "{{").replace('}', "}}");
    quote_spanned! {*span=>
        const _: () = ::core::assert!(
            !::kstreams::event::__private::same_topic(#first, #second),
            #message
        );
    }
}
