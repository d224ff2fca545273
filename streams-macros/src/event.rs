//! `#[derive(Event)]`: binds a struct to its topic and partition-key field.
//!
//! Parse (`#[event(..)]` options) → model ([`EventDef`]) → validate (the key field exists, the topic is a
//! valid name) → emit (`impl Event`, and `impl DefaultSerde` unless `serde = none`). Every problem is
//! reported at once. A key type without a serde fails `Event::Key`'s bound on the field's own type.
//!
//! ```text
//! #[derive(Event)]
//! #[event(topic = "orders", key = customer_id)]
//! struct Order { customer_id: i64, total_value: f64 }
//!
//! // expands to
//! impl ::kstreams::Event for Order {
//!     type Key = i64;
//!     const TOPIC: &'static str = "orders";
//!     fn key(&self) -> Self::Key { ::core::clone::Clone::clone(&self.customer_id) }
//! }
//! impl ::kstreams::serde::DefaultSerde for Order {
//!     fn default_serde() -> ::std::sync::Arc<dyn ::kstreams::serde::Serde<Self>> {
//!         ::kstreams::event::__private::json_serde::<Self>()
//!     }
//! }
//! ```

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::{Data, DeriveInput, Fields, Ident, LitStr, Type};

use crate::errors::{pretty, Errors};
use crate::names::{closest, invalid_name};

/// How the type's default serde is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SerdeChoice {
    /// `impl DefaultSerde` as JSON, as `json_serde!` does (the default).
    Json,
    /// The user implements `DefaultSerde`.
    None,
}

/// A validated `#[event(..)]` declaration.
struct EventDef<'a> {
    ty: &'a Ident,
    topic: LitStr,
    key_field: Ident,
    key_ty: &'a Type,
    serde: SerdeChoice,
    /// Where `serde = json` was written (or the derive, when it was left out): errors about the type
    /// missing `Serialize`/`Deserialize` point there.
    serde_span: Span,
}

/// The `#[event(..)]` options as written, before they are checked against the struct.
#[derive(Default)]
struct EventAttr {
    topic: Option<LitStr>,
    key: Option<Ident>,
    serde: Option<(SerdeChoice, Span)>,
    /// The `event` attribute itself, for "missing option" errors (underlined whole); `None` when there
    /// is no attribute.
    attr: Option<TokenStream>,
}

/// The derive's entry point: the impls, or every error found.
pub(crate) fn expand(input: &DeriveInput) -> Result<TokenStream, syn::Error> {
    let mut errors = Errors::new();
    let attr = parse_attrs(input, &mut errors);
    let def = validate(input, attr, &mut errors);
    errors.finish(())?;
    Ok(emit(&def.expect("validate returns a definition when it reports no error")))
}

/// Reads every `#[event(..)]` attribute; unknown or repeated options are errors.
fn parse_attrs(input: &DeriveInput, errors: &mut Errors) -> EventAttr {
    let mut out = EventAttr::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
        if out.attr.is_some() {
            errors.spanned(attr, "`#[event(..)]` is given twice; write one with all its options");
            continue;
        }
        out.attr = Some(attr.to_token_stream());
        let parsed = attr.parse_nested_meta(|meta| {
            let path = &meta.path;
            if path.is_ident("topic") {
                let topic: LitStr = meta.value()?.parse()?;
                if out.topic.replace(topic).is_some() {
                    errors.spanned(path, "`topic` is given twice");
                }
            } else if path.is_ident("key") {
                let value = meta.value()?;
                // `key = customer_id`, or the name as a string, as in an event schema's "partitionKey".
                let key = if value.peek(LitStr) {
                    let lit: LitStr = value.parse()?;
                    lit.parse::<Ident>()
                        .map_err(|_| syn::Error::new(lit.span(), "`key` names a field: `key = customer_id`"))?
                } else {
                    value.parse::<Ident>().map_err(|e| {
                        syn::Error::new(e.span(), "`key` names a field of the struct: `key = customer_id`")
                    })?
                };
                if out.key.replace(key).is_some() {
                    errors.spanned(path, "`key` is given twice");
                }
            } else if path.is_ident("serde") {
                let choice: Ident = meta.value()?.parse()?;
                let parsed = match choice.to_string().as_str() {
                    "json" => SerdeChoice::Json,
                    "none" => SerdeChoice::None,
                    _ => {
                        errors.spanned(
                            &choice,
                            "unknown serde: `serde = json` (the default) implements `DefaultSerde` as JSON; \
                             `serde = none` leaves `DefaultSerde` to you",
                        );
                        return Ok(());
                    }
                };
                if out.serde.replace((parsed, choice.span())).is_some() {
                    errors.spanned(path, "`serde` is given twice");
                }
            } else {
                let name = pretty(path);
                errors.spanned(path, format!("unknown option `{name}` in `#[event(..)]`: expected `topic = \"...\"`, `key = field` or `serde = json | none`"));
                // Skip the option's value so the rest of the attribute is still read.
                if meta.input.peek(syn::Token![=]) {
                    meta.value()?.parse::<syn::Expr>()?;
                }
            }
            Ok(())
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    out
}

/// Checks the options against the struct; `None` when something is missing (already reported).
fn validate<'a>(input: &'a DeriveInput, attr: EventAttr, errors: &mut Errors) -> Option<EventDef<'a>> {
    let ty = &input.ident;
    let fields = match &input.data {
        Data::Struct(data) => {
            match &data.fields {
                Fields::Named(named) => Some(&named.named),
                Fields::Unnamed(_) | Fields::Unit => {
                    errors.spanned(
                    ty,
                    format!("`#[derive(Event)]` needs a struct with named fields: `key = ..` names one (`{ty}` has none)"),
                );
                    None
                }
            }
        }
        Data::Enum(data) => {
            errors.spanned(data.enum_token, "`#[derive(Event)]` is for structs: an enum has no one field to key by");
            None
        }
        Data::Union(data) => {
            errors.spanned(data.union_token, "`#[derive(Event)]` is for structs, not unions");
            None
        }
    };
    if !input.generics.params.is_empty() {
        errors.spanned(&input.generics, "an event type cannot be generic: `Event::TOPIC` is one topic per type");
    }
    let Some(attr_tokens) = &attr.attr else {
        errors.spanned(
            ty,
            format!("`#[derive(Event)]` needs `#[event(topic = \"...\", key = field)]` on `{ty}`: the topic it lives on and the field that partitions it"),
        );
        return None;
    };
    if attr.topic.is_none() {
        errors.spanned(
            attr_tokens,
            format!(
                "missing `topic = \"...\"` in `#[event(..)]`: the topic `{ty}` events are read from and written to"
            ),
        );
    }
    if let Some(topic) = &attr.topic
        && let Some(reason) = invalid_name(&topic.value())
    {
        errors.spanned(topic, format!("invalid topic name `{}`: {reason}", topic.value()));
    }
    let Some(key) = attr.key else {
        errors.spanned(
            attr_tokens,
            format!("missing `key = field` in `#[event(..)]`: the field of `{ty}` that partitions its topic"),
        );
        return None;
    };
    let fields = fields?;
    let Some(key_field) = fields.iter().find(|f| f.ident.as_ref() == Some(&key)) else {
        let names: Vec<String> = fields.iter().filter_map(|f| f.ident.as_ref()).map(|i| i.to_string()).collect();
        let list = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        let hint = match closest(&key.to_string(), names.iter().map(String::as_str)) {
            Some(near) => format!("; did you mean `{near}`?"),
            None => String::new(),
        };
        errors.spanned(
            &key,
            format!("`{ty}` has no field `{key}` to use as its partition key; its fields are {list}{hint}"),
        );
        return None;
    };
    let (serde, serde_span) = attr.serde.unwrap_or((SerdeChoice::Json, Span::call_site()));
    Some(EventDef { ty, topic: attr.topic?, key_field: key, key_ty: &key_field.ty, serde, serde_span })
}

/// The impls. `type Key = <the field's type>` keeps the field type's tokens and spans, so the trait's
/// bounds on `Key` (a serde, `Clone`, `Send`) fail on the field's declaration, with `DefaultSerde`'s own
/// message ("`X` has no serde"), rather than on the derive. (A separate `assert_key_serde::<T>()` spanned
/// there would report the same error a second time.)
fn emit(def: &EventDef<'_>) -> TokenStream {
    let EventDef { ty, topic, key_field, key_ty, serde, serde_span } = def;
    let event = quote! {
        impl ::kstreams::Event for #ty {
            type Key = #key_ty;
            const TOPIC: &'static str = #topic;
            fn key(&self) -> Self::Key {
                ::core::clone::Clone::clone(&self.#key_field)
            }
        }
    };
    let serde = match serde {
        SerdeChoice::Json => quote_spanned! {*serde_span=>
            impl ::kstreams::serde::DefaultSerde for #ty {
                fn default_serde() -> ::std::sync::Arc<dyn ::kstreams::serde::Serde<Self>> {
                    ::kstreams::event::__private::json_serde::<Self>()
                }
            }
        },
        SerdeChoice::None => TokenStream::new(),
    };
    quote! { #event #serde }
}
