//! The crate's modules depend on each other downwards only: DSL, then the topology model, then task
//! execution, then stores; the runtime over the client seam, which the Kafka and embedded adapters
//! implement. This test reads the `crate::` paths of every source file (comments and unit tests left
//! out, whether inline or in a file of their own), builds the graph of top-level modules and finds its
//! cycles (strongly connected components).
//!
//! There are none: a change that makes one fails the test, which names the modules on it. Run it alone
//! with `cargo test -p streams-core --lib layering -- --nocapture`, which prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The top-level module a source file belongs to: `runtime` for `src/runtime/thread.rs`, `config` for
/// `src/config.rs`; `None` for the crate root.
fn module_of(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib").then(|| name.to_string())
}

/// Whether a file holds only unit tests (`task/tests.rs`, `runtime/thread_tests.rs`): tests may reach
/// across the layers to build what they test, and the library build never sees them.
fn is_test_file(relative: &Path) -> bool {
    let name = relative.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name == "tests.rs" || name.ends_with("_tests.rs")
}

/// The code of a file that the build of the library compiles and a reader follows: no comments, and
/// nothing from its `#[cfg(test)] mod tests` on.
fn library_code(source: &str) -> String {
    let code = source.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
    code.lines().map(|line| line.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// The top-level modules `code` names through `crate::`, either as `crate::name` or inside a
/// `use crate::{a::X, b::Y}` group.
fn modules_named(code: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find("};").unwrap_or(group.len())];
            // Each path of the group starts after `{`, a comma or a newline; nested groups belong to the
            // module before them.
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && depth == 0 && !c.is_whitespace() => {
                        start = false;
                        let name = ident(&group[i..]);
                        if !name.is_empty() && name != "self" {
                            named.insert(name);
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                named.insert(name);
            }
        }
    }
    named
}

fn graph() -> Graph {
    fn visit(root: &Path, dir: &Path, graph: &mut Graph) {
        for entry in std::fs::read_dir(dir).expect("read the source folder") {
            let path = entry.expect("a source folder entry").path();
            if path.is_dir() {
                visit(root, &path, graph);
                continue;
            }
            let relative = path.strip_prefix(root).expect("under src");
            let Some(module) = module_of(relative) else { continue };
            if module == "layering" || is_test_file(relative) {
                continue;
            }
            let source = std::fs::read_to_string(&path).expect("read a source file");
            graph.entry(module).or_default().extend(modules_named(&library_code(&source)));
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = Graph::new();
    visit(&root, &root, &mut graph);
    // A name re-exported at the root (`crate::StreamsError`) stands for the module it comes from.
    let lib = std::fs::read_to_string(root.join("lib.rs")).expect("read lib.rs");
    let reexports = root_reexports(&library_code(&lib));
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for (module, uses) in graph.iter_mut() {
        *uses = uses
            .iter()
            .map(|name| reexports.get(name).unwrap_or(name).clone())
            .filter(|m| modules.contains(m) && m != module)
            .collect();
    }
    graph
}

/// The crate root's `pub use module::{A, B};` lines, as item name -> module.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut items = BTreeMap::new();
    for line in lib.lines() {
        let Some(path) = line.trim().strip_prefix("pub use ").and_then(|p| p.strip_suffix(';')) else { continue };
        let Some((module, names)) = path.split_once("::") else { continue };
        for name in names.trim_matches(|c| c == '{' || c == '}').split(',') {
            let name = name.trim();
            if !name.is_empty() {
                items.insert(name.to_string(), module.to_string());
            }
        }
    }
    items
}

/// The strongly connected components of more than one module (Tarjan's algorithm), each sorted.
fn cycles(graph: &Graph) -> BTreeSet<Vec<String>> {
    struct Walk<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: BTreeSet<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let at = self.stack.iter().rposition(|m| *m == v).expect("on the stack");
                let mut component: Vec<String> = self.stack.drain(at..).map(str::to_string).collect();
                if component.len() > 1 {
                    component.sort();
                    self.found.insert(component);
                }
            }
        }
    }
    let mut walk =
        Walk { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: BTreeSet::new() };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn modules_depend_on_each_other_without_cycles() {
    let graph = graph();
    for (module, uses) in &graph {
        println!("{module} -> {}", uses.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    let found = cycles(&graph);
    assert!(found.is_empty(), "modules of streams-core that depend on each other in a cycle: {found:?}");
}

#[test]
fn the_reader_finds_paths_in_use_groups_and_skips_comments() {
    let code = library_code(
        "use crate::{config::StreamsConfig, dsl::{A, B},\n    task::TaskId};\n// crate::kafka in a comment\nfn f() { crate::time::now(); }\n#[cfg(test)]\nmod tests { use crate::embedded; }",
    );
    let named: Vec<String> = modules_named(&code).into_iter().collect();
    assert_eq!(named, ["config", "dsl", "task", "time"]);
}

#[test]
fn files_of_unit_tests_are_left_out() {
    assert!(is_test_file(Path::new("task/tests.rs")));
    assert!(is_test_file(Path::new("runtime/thread_tests.rs")));
    assert!(!is_test_file(Path::new("testing/mod.rs")), "the test driver is library code");
    assert!(!is_test_file(Path::new("runtime/thread.rs")));
}

#[test]
fn root_reexports_name_their_module() {
    let items = root_reexports("pub mod task;\npub use error::{StreamsError, TopologyError};\npub use event::Event;\n");
    assert_eq!(items.get("TopologyError").map(String::as_str), Some("error"));
    assert_eq!(items.get("Event").map(String::as_str), Some("event"));
}

#[test]
fn a_cycle_is_found_once_whatever_its_length() {
    let mut graph = Graph::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e"), ("e", "d")] {
        graph.entry(from.to_string()).or_default().insert(to.to_string());
        graph.entry(to.to_string()).or_default();
    }
    let found: Vec<Vec<String>> = cycles(&graph).into_iter().collect();
    assert_eq!(found, [vec!["a", "b", "c"], vec!["d", "e"]]);
}
