//! Pictures of `describe()`: the same topology as a Mermaid flowchart (which GitHub and many doc sites
//! draw from a code block) and as a Graphviz DOT graph (for `dot -Tsvg`), because a drawing shows at a
//! glance what the text makes a reader piece together: which sub-topology writes the repartition topic
//! another one reads, and which processor keeps which store.
//!
//! Both notations draw one model, built here from a [`TopologyDescription`]: each sub-topology (and each
//! global store's) a cluster of its nodes; each topic and each store a node of its own outside the
//! clusters, so a topic written by one sub-topology and read by another is one node between the two.
//! Ids are generated (`n0`, `t0`, `s0`) in the description's order and the real names go in labels: Kafka
//! names (`KSTREAM-SOURCE-0000000000`, `orders.v1`, a pattern `orders-.*`) are not valid ids in either
//! notation, and the same description always gives the same text, so pictures can be diffed as the
//! text can.

use std::collections::HashMap;
use std::fmt::{self, Write};

use super::{NodeDescription, NodeKindDescription, TopologyDescription};

impl TopologyDescription {
    /// The topology as a Mermaid flowchart (`flowchart TB`), to paste into a code block marked `mermaid`.
    ///
    /// Each sub-topology is a `subgraph` titled `Sub-topology: N` as in the text (a global store's
    /// `Sub-topology: N for global store`), in id order. Sources and sinks are stadiums, processors
    /// rectangles, topics parallelograms and stores cylinders; topics and stores sit outside the
    /// subgraphs. Records flow along arrows (topic → source → … → sink → topic); a dotted line without an
    /// arrow joins a processor to each store it is connected to. A source that reads a pattern reads from
    /// a topic node labelled `pattern: <regex>`; a sink that picks its topic per record writes to a node of
    /// its own labelled `topic chosen per record`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("words").group_by_key().count().to_stream().to("counts");
    /// let mermaid = builder.build()?.describe().to_mermaid();
    /// assert!(mermaid.starts_with("flowchart TB\n    subgraph sub0 [\"Sub-topology: 0\"]\n"));
    /// assert!(mermaid.contains("    t0[/\"words\"/]\n"));
    /// assert!(mermaid.contains("    t0 --> n0\n"));
    /// # Ok::<(), streams_core::TopologyError>(())
    /// ```
    pub fn to_mermaid(&self) -> String {
        let mut out = String::new();
        Picture::of(self).mermaid(&mut out).expect("writing to a String never fails");
        out
    }

    /// The topology as a Graphviz DOT graph (`digraph topology`), for `dot -Tsvg` or `dot -Tpng`.
    ///
    /// The same picture as [`to_mermaid`](Self::to_mermaid), in the same order: each sub-topology a
    /// `subgraph cluster_N` labelled as in the text; sources and sinks rounded boxes, processors boxes,
    /// topics parallelograms and stores cylinders outside the clusters; a dashed line without an arrow
    /// from a processor to each of its stores.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("words").group_by_key().count().to_stream().to("counts");
    /// let dot = builder.build()?.describe().to_dot();
    /// assert!(dot.starts_with("digraph topology {\n    rankdir=TB;\n    subgraph cluster_0 {\n"));
    /// assert!(dot.contains("    s0 [label=\"KSTREAM-AGGREGATE-STATE-STORE-0000000001\", shape=cylinder];\n"));
    /// # Ok::<(), streams_core::TopologyError>(())
    /// ```
    pub fn to_dot(&self) -> String {
        let mut out = String::new();
        Picture::of(self).dot(&mut out).expect("writing to a String never fails");
        out
    }
}

/// What both notations draw: clusters of nodes, then topics and stores, then edges, each list in the
/// order the description is walked (clusters by id, nodes in the description's order; topics and stores
/// numbered as they are first met).
struct Picture<'a> {
    clusters: Vec<Cluster<'a>>,
    /// Topic node labels, by topic id.
    topics: Vec<String>,
    /// Store names, by store id.
    stores: Vec<&'a str>,
    edges: Vec<Edge>,
}

/// A sub-topology or a global store's sub-topology, with each node's id.
struct Cluster<'a> {
    id: u32,
    title: String,
    nodes: Vec<(usize, &'a NodeDescription)>,
}

/// One end of an edge; printed as its generated id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Node(usize),
    Topic(usize),
    Store(usize),
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Node(i) => write!(f, "n{i}"),
            End::Topic(i) => write!(f, "t{i}"),
            End::Store(i) => write!(f, "s{i}"),
        }
    }
}

/// Records flowing `from` → `to`, or (`store`) a processor's link to a store, drawn without an arrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Edge {
    from: End,
    to: End,
    store: bool,
}

/// What a topic node stands for. A pattern and a per-record sink get nodes of their own, never merged
/// with a topic of the same text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TopicKey {
    Name(String),
    Pattern(String),
    /// A sink that picks its topic per record, by the sink's name.
    PerRecord(String),
}

impl<'a> Picture<'a> {
    fn of(description: &'a TopologyDescription) -> Self {
        // By id, as the text merges them (the two share one sequence of ids).
        let mut groups: Vec<(u32, String, Vec<&'a NodeDescription>)> = description
            .subtopologies
            .iter()
            .map(|sub| (sub.id, format!("Sub-topology: {}", sub.id), sub.nodes.iter().collect::<Vec<_>>()))
            .chain(description.global_stores.iter().map(|global| {
                (
                    global.id,
                    format!("Sub-topology: {} for global store", global.id),
                    vec![&global.source, &global.processor],
                )
            }))
            .collect();
        groups.sort_by_key(|(id, _, _)| *id);

        let mut node_ids: HashMap<&'a str, usize> = HashMap::new();
        let clusters: Vec<Cluster<'a>> = groups
            .into_iter()
            .map(|(id, title, nodes)| {
                let nodes = nodes
                    .into_iter()
                    .map(|node| {
                        let next = node_ids.len();
                        (*node_ids.entry(node.name.as_str()).or_insert(next), node)
                    })
                    .collect();
                Cluster { id, title, nodes }
            })
            .collect();

        let mut picture = Picture { clusters: Vec::new(), topics: Vec::new(), stores: Vec::new(), edges: Vec::new() };
        let mut topic_ids: HashMap<TopicKey, usize> = HashMap::new();
        let mut store_ids: HashMap<&'a str, usize> = HashMap::new();
        for cluster in &clusters {
            for &(i, node) in &cluster.nodes {
                if let NodeKindDescription::Source { topics, pattern } = &node.kind {
                    let keys: Vec<TopicKey> = match pattern {
                        Some(pattern) => vec![TopicKey::Pattern(pattern.clone())],
                        None => topics.iter().map(|topic| TopicKey::Name(topic.clone())).collect(),
                    };
                    for key in keys {
                        let t = picture.topic(&mut topic_ids, key);
                        picture.edge(End::Topic(t), End::Node(i), false);
                    }
                }
                for successor in &node.successors {
                    if let Some(&j) = node_ids.get(successor.as_str()) {
                        picture.edge(End::Node(i), End::Node(j), false);
                    }
                }
                match &node.kind {
                    NodeKindDescription::Source { .. } => {}
                    NodeKindDescription::Processor { stores } => {
                        for store in stores {
                            let next = picture.stores.len();
                            let s = *store_ids.entry(store.as_str()).or_insert(next);
                            if s == next {
                                picture.stores.push(store.as_str());
                            }
                            picture.edge(End::Node(i), End::Store(s), true);
                        }
                    }
                    NodeKindDescription::Sink { topic } => {
                        let key = match topic {
                            Some(topic) => TopicKey::Name(topic.clone()),
                            None => TopicKey::PerRecord(node.name.clone()),
                        };
                        let t = picture.topic(&mut topic_ids, key);
                        picture.edge(End::Node(i), End::Topic(t), false);
                    }
                }
            }
        }
        picture.clusters = clusters;
        picture
    }

    /// The id of `key`'s topic node, added at the end if this is its first mention.
    fn topic(&mut self, ids: &mut HashMap<TopicKey, usize>, key: TopicKey) -> usize {
        if let Some(&t) = ids.get(&key) {
            return t;
        }
        let t = self.topics.len();
        self.topics.push(match &key {
            TopicKey::Name(name) => name.clone(),
            TopicKey::Pattern(pattern) => format!("pattern: {pattern}"),
            TopicKey::PerRecord(_) => "topic chosen per record".to_string(),
        });
        ids.insert(key, t);
        t
    }

    /// Adds an edge once: a node listed twice (or a store connected twice) still draws one line.
    fn edge(&mut self, from: End, to: End, store: bool) {
        let edge = Edge { from, to, store };
        if !self.edges.contains(&edge) {
            self.edges.push(edge);
        }
    }

    fn mermaid(&self, out: &mut impl Write) -> fmt::Result {
        writeln!(out, "flowchart TB")?;
        for cluster in &self.clusters {
            writeln!(out, "    subgraph sub{} [\"{}\"]", cluster.id, mermaid_text(&cluster.title))?;
            for &(i, node) in &cluster.nodes {
                let label = mermaid_text(&node.name);
                match node.kind {
                    NodeKindDescription::Processor { .. } => writeln!(out, "        n{i}[\"{label}\"]")?,
                    _ => writeln!(out, "        n{i}([\"{label}\"])")?,
                }
            }
            writeln!(out, "    end")?;
        }
        for (t, label) in self.topics.iter().enumerate() {
            writeln!(out, "    t{t}[/\"{}\"/]", mermaid_text(label))?;
        }
        for (s, name) in self.stores.iter().enumerate() {
            writeln!(out, "    s{s}[(\"{}\")]", mermaid_text(name))?;
        }
        // Edges only at the top level: a node an edge names inside a subgraph would join that subgraph.
        for edge in &self.edges {
            let line = if edge.store { "-.-" } else { "-->" };
            writeln!(out, "    {} {line} {}", edge.from, edge.to)?;
        }
        Ok(())
    }

    fn dot(&self, out: &mut impl Write) -> fmt::Result {
        writeln!(out, "digraph topology {{")?;
        writeln!(out, "    rankdir=TB;")?;
        for cluster in &self.clusters {
            writeln!(out, "    subgraph cluster_{} {{", cluster.id)?;
            writeln!(out, "        label=\"{}\";", dot_text(&cluster.title))?;
            for &(i, node) in &cluster.nodes {
                let shape = match node.kind {
                    NodeKindDescription::Processor { .. } => "shape=box",
                    _ => "shape=box, style=rounded",
                };
                writeln!(out, "        n{i} [label=\"{}\", {shape}];", dot_text(&node.name))?;
            }
            writeln!(out, "    }}")?;
        }
        for (t, label) in self.topics.iter().enumerate() {
            writeln!(out, "    t{t} [label=\"{}\", shape=parallelogram];", dot_text(label))?;
        }
        for (s, name) in self.stores.iter().enumerate() {
            writeln!(out, "    s{s} [label=\"{}\", shape=cylinder];", dot_text(name))?;
        }
        // As in Mermaid, edges at the top level: one inside a cluster would pull its nodes into it.
        for edge in &self.edges {
            if edge.store {
                writeln!(out, "    {} -> {} [style=dashed, dir=none];", edge.from, edge.to)?;
            } else {
                writeln!(out, "    {} -> {};", edge.from, edge.to)?;
            }
        }
        writeln!(out, "}}")
    }
}

/// `text` for a quoted Mermaid label: `"` would end it, `#` starts an entity code, and `<` `>` would be
/// read as HTML, so each becomes an entity code; a line break becomes a space.
fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str("#35;"),
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// `text` for a quoted DOT string: `"` and `\` escaped, a line break as DOT's `\n`.
fn dot_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{GlobalStoreDescription, NodeDescription, NodeKindDescription, SubtopologyDescription};
    use super::TopologyDescription;
    use crate::dsl::{Grouped, Materialized, StreamsBuilder};

    /// `words` grouped by a new key and counted: two sub-topologies joined by a repartition topic (the
    /// topology of `docs/dsl.md`'s `describe()` example).
    fn word_count() -> Result<TopologyDescription, crate::TopologyError> {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("words")
            .group_by_with(|_, w| w.clone(), Grouped::with_name("by-word"))
            .count_with(Materialized::as_store("word-counts"))
            .to_stream()
            .to("counts");
        Ok(builder.build()?.describe())
    }

    #[test]
    fn mermaid_draws_sub_topologies_as_subgraphs_joined_by_their_repartition_topic(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let mermaid = word_count()?.to_mermaid();
        let expected = r#"flowchart TB
    subgraph sub0 ["Sub-topology: 0"]
        n0(["KSTREAM-SOURCE-0000000000"])
        n1["by-word"]
        n2["by-word-repartition-filter"]
        n3(["by-word-repartition-sink"])
    end
    subgraph sub1 ["Sub-topology: 1"]
        n4(["by-word-repartition-source"])
        n5["KSTREAM-AGGREGATE-0000000002"]
        n6["KTABLE-TOSTREAM-0000000006"]
        n7(["KSTREAM-SINK-0000000007"])
    end
    t0[/"words"/]
    t1[/"by-word-repartition"/]
    t2[/"counts"/]
    s0[("word-counts")]
    t0 --> n0
    n0 --> n1
    n1 --> n2
    n2 --> n3
    n3 --> t1
    t1 --> n4
    n4 --> n5
    n5 --> n6
    n5 -.- s0
    n6 --> n7
    n7 --> t2
"#;
        assert_eq!(mermaid, expected);
        // The repartition topic is one node, written by sub-topology 0 and read by sub-topology 1.
        assert_eq!(mermaid.matches("[/\"by-word-repartition\"/]").count(), 1);
        assert_eq!(word_count()?.to_mermaid(), mermaid, "the same topology gives the same text");
        Ok(())
    }

    #[test]
    fn dot_draws_the_same_picture_with_clusters_and_cylinders() -> Result<(), Box<dyn std::error::Error>> {
        let dot = word_count()?.to_dot();
        for line in [
            "digraph topology {\n    rankdir=TB;\n    subgraph cluster_0 {\n        label=\"Sub-topology: 0\";\n",
            "    subgraph cluster_1 {\n        label=\"Sub-topology: 1\";\n",
            "        n0 [label=\"KSTREAM-SOURCE-0000000000\", shape=box, style=rounded];\n",
            "        n5 [label=\"KSTREAM-AGGREGATE-0000000002\", shape=box];\n",
            "    t1 [label=\"by-word-repartition\", shape=parallelogram];\n",
            "    s0 [label=\"word-counts\", shape=cylinder];\n",
            "    n3 -> t1;\n    t1 -> n4;\n",
            "    n5 -> s0 [style=dashed, dir=none];\n",
        ] {
            assert!(dot.contains(line), "{line:?} missing from\n{dot}");
        }
        assert_eq!(dot.matches("label=\"by-word-repartition\"").count(), 1);
        assert!(dot.ends_with("    n7 -> t2;\n}\n"));
        Ok(())
    }

    /// A global store is a cluster of its own, its store outside it, numbered in id order with the
    /// sub-topologies (as in `tests/global_tables.rs`' text).
    #[test]
    fn a_global_store_is_a_cluster_of_its_own() -> Result<(), Box<dyn std::error::Error>> {
        let builder = StreamsBuilder::new();
        let stream = builder.stream::<String, String>("in");
        let global = builder.global_table::<String, String>("g");
        stream.join_global(&global, |_, v| v.clone(), |v, g| format!("{v}{g}")).to("out");
        let description = builder.build()?.describe();
        let expected = r#"digraph topology {
    rankdir=TB;
    subgraph cluster_0 {
        label="Sub-topology: 0";
        n0 [label="KSTREAM-SOURCE-0000000000", shape=box, style=rounded];
        n1 [label="KSTREAM-LEFTJOIN-0000000004", shape=box];
        n2 [label="KSTREAM-SINK-0000000005", shape=box, style=rounded];
    }
    subgraph cluster_1 {
        label="Sub-topology: 1 for global store";
        n3 [label="KSTREAM-SOURCE-0000000002", shape=box, style=rounded];
        n4 [label="KTABLE-SOURCE-0000000003", shape=box];
    }
    t0 [label="in", shape=parallelogram];
    t1 [label="out", shape=parallelogram];
    t2 [label="g", shape=parallelogram];
    s0 [label="g-STATE-STORE-0000000001", shape=cylinder];
    t0 -> n0;
    n0 -> n1;
    n1 -> n2;
    n2 -> t1;
    t2 -> n3;
    n3 -> n4;
    n4 -> s0 [style=dashed, dir=none];
}
"#;
        assert_eq!(description.to_dot(), expected);
        let mermaid = description.to_mermaid();
        assert!(mermaid.contains("    subgraph sub1 [\"Sub-topology: 1 for global store\"]\n"));
        assert!(mermaid.contains("    n4 -.- s0\n"));
        Ok(())
    }

    fn node(name: &str, kind: NodeKindDescription, successors: &[&str]) -> NodeDescription {
        NodeDescription {
            name: name.to_string(),
            kind,
            successors: successors.iter().map(|s| s.to_string()).collect(),
            predecessors: Vec::new(),
        }
    }

    /// Names are labels, never ids: quotes, `#`, `<`, `\` are escaped for each notation; a pattern and a
    /// per-record sink get topic nodes of their own; a store two processors share is one node.
    #[test]
    fn names_are_escaped_and_patterns_and_per_record_sinks_get_their_own_topic_nodes() {
        let source = NodeKindDescription::Source { topics: Vec::new(), pattern: Some("orders-.*".to_string()) };
        let store = || NodeKindDescription::Processor { stores: vec!["shared".to_string()] };
        let description = TopologyDescription {
            subtopologies: vec![SubtopologyDescription {
                id: 0,
                nodes: vec![
                    node("in", source, &["say \"hi\" #1 <b>", "a\\b"]),
                    node("say \"hi\" #1 <b>", store(), &["dynamic"]),
                    node("a\\b", store(), &[]),
                    node("dynamic", NodeKindDescription::Sink { topic: None }, &[]),
                ],
            }],
            global_stores: Vec::<GlobalStoreDescription>::new(),
        };
        let mermaid = description.to_mermaid();
        for line in [
            "        n1[\"say #quot;hi#quot; #35;1 #lt;b#gt;\"]\n",
            "        n2[\"a\\b\"]\n",
            "    t0[/\"pattern: orders-.*\"/]\n",
            "    t1[/\"topic chosen per record\"/]\n",
            "    s0[(\"shared\")]\n",
            "    t0 --> n0\n",
            "    n1 -.- s0\n",
            "    n2 -.- s0\n",
            "    n3 --> t1\n",
        ] {
            assert!(mermaid.contains(line), "{line:?} missing from\n{mermaid}");
        }
        assert_eq!(mermaid.matches("[(\"").count(), 1, "one node for the shared store:\n{mermaid}");
        let dot = description.to_dot();
        for line in [
            "        n1 [label=\"say \\\"hi\\\" #1 <b>\", shape=box];\n",
            "        n2 [label=\"a\\\\b\", shape=box];\n",
            "    t0 [label=\"pattern: orders-.*\", shape=parallelogram];\n",
        ] {
            assert!(dot.contains(line), "{line:?} missing from\n{dot}");
        }
    }
}
