//! Keeps `docs/macros.md` honest: every code block marked `<!-- macro-input: NAME -->` is expanded with
//! the real macro, and the result must equal, token for token, the visible code of the block marked
//! `<!-- macro-expansion: NAME -->`. (The blocks also run as doctests in the façade, so the expansion
//! shown compiles and does what the text says.)

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::ToTokens;

const DOC: &str = include_str!("../../docs/macros.md");

/// The code of the ```` ```rust ```` block right after `marker`.
fn block_after(marker: &str) -> &'static str {
    let at = DOC.find(marker).unwrap_or_else(|| panic!("docs/macros.md has no `{marker}`"));
    let rest = &DOC[at + marker.len()..];
    let start = rest.find("```rust\n").expect("a rust block follows the marker") + "```rust\n".len();
    let end = rest[start..].find("\n```").expect("the block ends");
    &rest[start..start + end]
}

/// Rustdoc's hidden lines (`# ` or a lone `#`) with the marker removed (the full program) or left out
/// (what the reader sees).
fn lines(block: &str, keep_hidden: bool) -> String {
    let mut out = String::new();
    for line in block.lines() {
        let trimmed = line.trim_start();
        let hidden = trimmed == "#" || trimmed.starts_with("# ");
        if hidden && keep_hidden {
            out.push_str(trimmed.strip_prefix('#').unwrap_or_default().strip_prefix(' ').unwrap_or_default());
        } else if !hidden {
            out.push_str(line);
        } else {
            continue;
        }
        out.push('\n');
    }
    out
}

/// The tokens, printed one by one with one space between: punctuation spacing and how a string literal
/// is written (escapes, line continuations) do not count, everything else does. The tokens go through
/// syn first, so doc comments and `#[doc = ".."]` compare equal.
fn normalized(tokens: TokenStream) -> String {
    let file: syn::File = syn::parse2(tokens).expect("an expansion parses as items");
    let mut out = Vec::new();
    canonical(file.into_token_stream(), &mut out);
    out.join(" ")
}

fn canonical(tokens: TokenStream, out: &mut Vec<String>) {
    for token in tokens {
        match token {
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("", ""),
                };
                out.push(open.to_string());
                canonical(group.stream(), out);
                out.push(close.to_string());
            }
            TokenTree::Punct(punct) => out.push(punct.as_char().to_string()),
            TokenTree::Ident(ident) => out.push(ident.to_string()),
            TokenTree::Literal(literal) => match syn::parse2::<syn::LitStr>(literal.to_token_stream()) {
                Ok(text) => out.push(format!("{:?}", text.value())),
                Err(_) => out.push(literal.to_string()),
            },
        }
    }
}

/// The visible code of the expansion block of `name`.
fn shown_expansion(name: &str) -> String {
    let shown = lines(block_after(&format!("<!-- macro-expansion: {name} -->")), false);
    normalized(shown.parse().expect("the expansion shown tokenizes"))
}

/// The items of the input block of `name`, hidden lines included.
fn input_items(name: &str) -> Vec<syn::Item> {
    let program = lines(block_after(&format!("<!-- macro-input: {name} -->")), true);
    syn::parse_file(&program).expect("the input block parses").items
}

#[test]
fn the_event_expansion_shown_is_the_derives_output() {
    let order = input_items("order-event")
        .into_iter()
        .find_map(|item| match item {
            syn::Item::Struct(s) if s.ident == "Order" => Some(s),
            _ => None,
        })
        .expect("the input block declares `Order`");
    let input: syn::DeriveInput = syn::parse2(order.into_token_stream()).expect("a struct is a derive input");
    let expanded = crate::event::expand(&input).expect("the example expands");
    assert_eq!(normalized(expanded), shown_expansion("order-event"));
}

#[test]
fn the_topology_expansion_shown_is_the_macros_output() {
    let mut function = input_items("order-totals")
        .into_iter()
        .find_map(|item| match item {
            syn::Item::Fn(f) if f.attrs.iter().any(|a| a.path().is_ident("topology")) => Some(f),
            _ => None,
        })
        .expect("the input block has a #[topology] function");
    // The compiler hands an attribute macro its item without the attribute itself.
    function.attrs.retain(|a| !a.path().is_ident("topology"));
    let expanded = crate::topology::expand(TokenStream::new(), function);
    assert_eq!(normalized(expanded), shown_expansion("order-totals"));
}

#[test]
fn normalizing_ignores_layout_only() {
    let a: TokenStream = "const _: () = assert!(!::a::b(x), \"one \\\n two\");".parse().unwrap();
    let b: TokenStream = "const _ : () = assert ! (! :: a :: b (x) , \"one two\") ;".parse().unwrap();
    assert_eq!(normalized(a), normalized(b.clone()));
    let c: TokenStream = "const _: () = assert!(!::a::b(y), \"one two\");".parse().unwrap();
    assert_ne!(normalized(c.clone()), normalized("const _: () = assert!(!::a::b(y), \"one  two\");".parse().unwrap()));
    assert_ne!(normalized(b), normalized(c));
}

#[test]
fn hidden_lines_are_read_as_rustdoc_reads_them() {
    let block = "# use a;\n#\nfn f() {}\n    # let x = 1;\n#[attr]\nstruct S;";
    assert_eq!(lines(block, false), "fn f() {}\n#[attr]\nstruct S;\n");
    assert_eq!(lines(block, true), "use a;\n\nfn f() {}\nlet x = 1;\n#[attr]\nstruct S;\n");
}
