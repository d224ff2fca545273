//! Collects every error a macro finds, so one compile shows all of them (serde_derive's `Ctxt`), each
//! spanned on the tokens at fault.

use std::fmt::Display;

use proc_macro2::TokenStream;
use quote::ToTokens;

/// The errors found so far in one macro invocation.
#[derive(Default)]
pub(crate) struct Errors {
    errors: Vec<syn::Error>,
}

impl Errors {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// An error spanned on `tokens` (all of them: a type or a path is underlined whole).
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    /// An error already built (a parse error from syn).
    pub(crate) fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// `Ok(value)` when nothing was reported, else every error as one.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, syn::Error> {
        let mut errors = self.errors.into_iter();
        match errors.next() {
            None => Ok(value),
            Some(mut first) => {
                first.extend(errors);
                Err(first)
            }
        }
    }
}

/// What a macro hands back to the compiler: its expansion, or `compile_error!`s at the faulty spans.
pub(crate) fn into_output(result: Result<TokenStream, syn::Error>) -> TokenStream {
    result.unwrap_or_else(syn::Error::into_compile_error)
}

/// A type as it reads in source: `Sink<i64, Option<f64>>`, not `Sink < i64 , Option < f64 > >`.
pub(crate) fn pretty(tokens: &impl ToTokens) -> String {
    let text = tokens.to_token_stream().to_string();
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        let next = text[i + c.len_utf8()..].chars().next();
        let previous = out.chars().last();
        if c == ' ' {
            let glued = matches!(next, Some('<' | '>' | ',' | ':'))
                || matches!(previous, Some('<' | '&' | ':'))
                || (previous == Some('>') && next == Some('>'));
            if glued {
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pretty;

    #[test]
    fn pretty_prints_types_as_written() {
        let ty: syn::Type = syn::parse_quote!(kstreams::dsl::Sink<i64, Option<f64>>);
        assert_eq!(pretty(&ty), "kstreams::dsl::Sink<i64, Option<f64>>");
        let ty: syn::Type = syn::parse_quote!(Vec<&'static str>);
        assert_eq!(pretty(&ty), "Vec<&'static str>");
    }
}
