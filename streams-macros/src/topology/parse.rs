//! Reads a `#[topology]` function: checks its signature, and turns each parameter and its attribute
//! (`#[source]`, `#[source(topic = "..")]`, `#[table]`, `#[sink]`, `#[store(name = "..")]`) into a
//! [`Param`]. Our attributes are removed from the function, which is otherwise kept as written.

use syn::spanned::Spanned;
use syn::{Attribute, FnArg, GenericArgument, ItemFn, LitStr, Meta, Pat, PathArguments, ReturnType, Type};

use super::{Param, Role, Topic, TopologyDef};
use crate::errors::{pretty, Errors};
use crate::names::invalid_name;

/// The function and its parameters; problems go to `errors` (the result is then not used).
pub(super) fn parse(mut item: ItemFn, errors: &mut Errors) -> TopologyDef {
    check_signature(&item, errors);
    let mut params = Vec::new();
    for input in item.sig.inputs.iter_mut() {
        let FnArg::Typed(arg) = input else {
            errors.spanned(input, "a `#[topology]` function takes no `self`: it is a free function");
            continue;
        };
        let ours: Vec<(Role, Attribute)> = {
            let (ours, others): (Vec<_>, Vec<_>) = arg.attrs.drain(..).partition(|a| role_of(a).is_some());
            arg.attrs = others;
            ours.into_iter().map(|a| (role_of(&a).expect("partitioned on role_of"), a)).collect()
        };
        let Some((role, attr)) = ours.first() else {
            errors.spanned(
                &*arg,
                "every parameter of a `#[topology]` function says what it is: `#[source]`, `#[table]`, \
                 `#[sink]` (each with an optional `topic = \"...\"`) or `#[store(name = \"...\")]`",
            );
            continue;
        };
        for (_, extra) in &ours[1..] {
            errors
                .spanned(extra, "a parameter is one of `#[source]`, `#[table]`, `#[sink]` or `#[store]`, not several");
        }
        let ident = match &*arg.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
            other => {
                errors.spanned(other, "a `#[topology]` parameter is a plain name (`orders`, `mut orders`)");
                continue;
            }
        };
        let option = parse_options(*role, attr, errors);
        let Some((key_ty, value_ty)) = pair_of(&arg.ty, role.type_name()) else {
            errors.spanned(
                &arg.ty,
                format!(
                    "a `#[{}]` parameter is a `{}<K, V>` (key and value types spelled out), not `{}`",
                    role.attr_name(),
                    role.type_name(),
                    pretty(&arg.ty)
                ),
            );
            continue;
        };
        let decl_span = option.as_ref().map_or_else(|| attr.path().span(), LitStr::span);
        let (topic, store_name) = match (role, option) {
            (Role::Store, None) => {
                errors.spanned(attr, "a `#[store]` needs a name: `#[store(name = \"customer-totals-store\")]`");
                continue;
            }
            (Role::Store, Some(name)) => (None, Some(name)),
            (_, Some(topic)) => (Some(Topic::Literal(topic)), None),
            (_, None) => (Some(Topic::Event), None),
        };
        params.push(Param {
            role: *role,
            ident,
            ty: (*arg.ty).clone(),
            key_ty,
            value_ty,
            topic,
            store_name,
            decl_span,
        });
    }
    TopologyDef { item, params }
}

/// The function must be a plain `fn name(..) { .. }`: the expansion replaces its signature.
fn check_signature(item: &ItemFn, errors: &mut Errors) {
    let sig = &item.sig;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.spanned(
            &sig.generics,
            "a `#[topology]` function cannot be generic: its parameters are the topology's fixed interface",
        );
    }
    if let Some(token) = &sig.asyncness {
        errors.spanned(token, "a `#[topology]` function is not `async`: building a topology does no I/O");
    }
    if let Some(token) = &sig.constness {
        errors.spanned(token, "a `#[topology]` function cannot be `const`");
    }
    if let Some(token) = &sig.unsafety {
        errors.spanned(token, "a `#[topology]` function cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(abi, "a `#[topology]` function cannot have an ABI");
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(variadic, "a `#[topology]` function cannot be variadic");
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        let unit = matches!(&**ty, Type::Tuple(t) if t.elems.is_empty());
        if !unit {
            errors.spanned(
                ty,
                "a `#[topology]` function returns nothing: the macro makes it return \
                 `Result<Topology, TopologyError>`; write the steps in the body",
            );
        }
    }
}

/// Which of our attributes `attr` is, if any.
fn role_of(attr: &Attribute) -> Option<Role> {
    let path = attr.path();
    [Role::Source, Role::Table, Role::Sink, Role::Store].into_iter().find(|r| path.is_ident(r.attr_name()))
}

/// The attribute's one option: `topic = ".."` for sources, tables and sinks, `name = ".."` for stores.
fn parse_options(role: Role, attr: &Attribute, errors: &mut Errors) -> Option<LitStr> {
    let option = if role == Role::Store { "name" } else { "topic" };
    let list = match &attr.meta {
        Meta::Path(_) => return None,
        Meta::List(list) => list,
        Meta::NameValue(nv) => {
            errors.spanned(nv, format!("write `#[{}({option} = \"...\")]`", role.attr_name()));
            return None;
        }
    };
    let mut value: Option<LitStr> = None;
    let parsed = list.parse_nested_meta(|meta| {
        if meta.path.is_ident(option) {
            let lit: LitStr = meta.value()?.parse()?;
            if let Some(reason) = invalid_name(&lit.value()) {
                let what = if role == Role::Store { "store" } else { "topic" };
                errors.spanned(&lit, format!("invalid {what} name `{}`: {reason}", lit.value()));
            }
            if value.replace(lit).is_some() {
                errors.spanned(&meta.path, format!("`{option}` is given twice"));
            }
        } else {
            errors.spanned(
                &meta.path,
                format!(
                    "unknown option `{}` in `#[{}(..)]`: the only option is `{option} = \"...\"`",
                    pretty(&meta.path),
                    role.attr_name()
                ),
            );
            if meta.input.peek(syn::Token![=]) {
                meta.value()?.parse::<syn::Expr>()?;
            }
        }
        Ok(())
    });
    if let Err(e) = parsed {
        errors.push(e);
    }
    value
}

/// `K` and `V` of a `Name<K, V>` type (any path ending in `Name`).
fn pair_of(ty: &Type, name: &str) -> Option<(Type, Type)> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    let types: Vec<&Type> = args
        .args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    match (types.as_slice(), args.args.len()) {
        ([k, v], 2) => Some(((*k).clone(), (*v).clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_of_reads_key_and_value_types() {
        let ty: Type = syn::parse_quote!(kstreams::dsl::KStream<i64, Order>);
        let (k, v) = pair_of(&ty, "KStream").unwrap();
        assert_eq!(pretty(&k), "i64");
        assert_eq!(pretty(&v), "Order");
        assert!(pair_of(&syn::parse_quote!(KTable<i64, Order>), "KStream").is_none());
        assert!(pair_of(&syn::parse_quote!(KStream<i64>), "KStream").is_none());
        assert!(pair_of(&syn::parse_quote!(KStream<'a, i64, Order>), "KStream").is_none());
    }
}
