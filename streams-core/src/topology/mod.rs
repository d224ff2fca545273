//! The untyped topology graph: source, processor and sink nodes, the stores they use, and the
//! sub-topologies the graph splits into at repartition topics. The DSL writes into a [`Topology`];
//! the Processor API writes into it directly; both are validated and described the same way.
//!
//! ```
//! use std::sync::Arc;
//! use streams_core::processor::{Processor, ProcessorContext};
//! use streams_core::serde::StringSerde;
//! use streams_core::{Record, StreamsError, Topology};
//!
//! struct Upper;
//! impl Processor<String, String, String, String> for Upper {
//!     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>)
//!         -> Result<(), StreamsError> {
//!         let upper = r.value.to_uppercase();
//!         ctx.forward(r.with_value(upper))
//!     }
//! }
//!
//! let mut topology = Topology::new();
//! topology
//!     .add_source("in", &["words"], Arc::new(StringSerde), Arc::new(StringSerde))?
//!     .add_processor("upper", || Upper, &["in"])?
//!     .add_sink("out", "shouted", Arc::new(StringSerde), Arc::new(StringSerde), &["upper"])?;
//! topology.validate()?;
//! assert!(topology.describe().to_string().contains("Processor: upper (stores: [])"));
//! # Ok::<(), streams_core::TopologyError>(())
//! ```

mod describe;
mod java_tree_set;
mod picture;
pub(crate) mod plan;

use std::any::TypeId;
use std::marker::PhantomData;
use std::sync::Arc;

pub use describe::{
    GlobalStoreDescription, NodeDescription, NodeKindDescription, SubtopologyDescription, TopologyDescription,
};

use crate::processor::node::{erase, ErasedNode, ProcessorNode, SinkNode, SinkTarget, SourceNode, StreamPartitioner};
use crate::processor::{Processor, TimestampExtractor};
use crate::serde::Serde;
use crate::store::{StoreBuilder, StoreDef};
use crate::{RecordMetadata, TopologyError};

/// A processing graph: what the DSL builds and the Processor API writes by hand (Kafka Streams'
/// `Topology`). Run it with the test driver or the runtime (`KafkaStreams`).
#[derive(Default)]
pub struct Topology {
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) stores: Vec<StoreDef>,
    /// Errors found while the DSL built the graph, reported by `validate`.
    pub(crate) deferred: Vec<TopologyError>,
    /// Repartition topics (without the application-id prefix) and their partition counts when set;
    /// the runtime creates them.
    pub(crate) repartition_topics: Vec<(String, Option<u32>)>,
    /// Repartition topics that must be co-partitioned with the user topics read beside them (Kafka
    /// Streams' copartition groups: a foreign-key join's subscriptions with the other table's topic,
    /// its answers with this table's, a re-keyed stream with the table it joins).
    pub(crate) copartitioned_topics: Vec<String>,
    /// Global stores (Kafka Streams' `addGlobalStore`, a `GlobalKTable`'s store), each with the
    /// processor that keeps it: kept by one global task from every partition of its source topic, and
    /// read by any task.
    pub(crate) global_stores: Vec<(String, String)>,
}

/// A topic a node reads or writes. Internal topics (repartition) get the application id as a prefix at
/// run time: `<application.id>-<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicRef {
    pub(crate) name: String,
    pub(crate) internal: bool,
}

impl TopicRef {
    pub(crate) fn user(name: &str) -> Self {
        TopicRef { name: name.to_string(), internal: false }
    }

    pub(crate) fn resolve(&self, application_id: &str) -> String {
        if self.internal {
            format!("{application_id}-{}", self.name)
        } else {
            self.name.clone()
        }
    }
}

/// A source's topic pattern: a regular expression that a whole topic name must match, as Java's
/// `Pattern.matcher(topic).matches()` (Kafka Streams' `builder.stream(Pattern)`).
#[derive(Debug, Clone)]
pub(crate) struct TopicPattern {
    pattern: String,
    regex: regex::Regex,
}

impl TopicPattern {
    pub(crate) fn new(pattern: &str) -> Result<Self, TopologyError> {
        match regex::Regex::new(&format!("^(?:{pattern})$")) {
            Ok(regex) => Ok(TopicPattern { pattern: pattern.to_string(), regex }),
            Err(e) => Err(TopologyError::InvalidPattern { pattern: pattern.to_string(), reason: e.to_string() }),
        }
    }

    pub(crate) fn matches(&self, topic: &str) -> bool {
        self.regex.is_match(topic)
    }

    /// The pattern as given.
    pub(crate) fn as_str(&self) -> &str {
        &self.pattern
    }
}

impl PartialEq for TopicPattern {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for TopicPattern {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// Reads `topics`, or every topic `pattern` matches.
    Source {
        topics: Vec<TopicRef>,
        pattern: Option<TopicPattern>,
    },
    Processor,
    /// `topic` is `None` when the topic is chosen per record.
    Sink {
        topic: Option<TopicRef>,
    },
}

/// The key and value types a node takes or forwards, for checking edges made through the Processor API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TypeSig {
    key: TypeId,
    value: TypeId,
    key_name: &'static str,
    value_name: &'static str,
}

impl TypeSig {
    pub(crate) fn of<K: 'static, V: 'static>() -> Self {
        TypeSig {
            key: TypeId::of::<K>(),
            value: TypeId::of::<V>(),
            key_name: std::any::type_name::<K>(),
            value_name: std::any::type_name::<V>(),
        }
    }

    pub(crate) fn same(&self, other: &TypeSig) -> bool {
        self.key == other.key && self.value == other.value
    }

    pub(crate) fn names(&self) -> String {
        format!("{}, {}", self.key_name, self.value_name)
    }
}

/// What a node factory knows when it makes the node for one task.
pub(crate) struct NodeInit<'a> {
    pub(crate) index: usize,
    pub(crate) children: Vec<usize>,
    pub(crate) application_id: &'a str,
}

pub(crate) type NodeFactory = dyn Fn(&NodeInit<'_>) -> Box<dyn ErasedNode> + Send + Sync;

/// A node as the topology holds it.
pub(crate) struct NodeDef {
    pub(crate) name: String,
    pub(crate) parents: Vec<String>,
    pub(crate) stores: Vec<String>,
    pub(crate) kind: NodeKind,
    pub(crate) input: Option<TypeSig>,
    pub(crate) output: Option<TypeSig>,
    pub(crate) factory: Arc<NodeFactory>,
}

impl NodeDef {
    pub(crate) fn source_topics(&self) -> &[TopicRef] {
        match &self.kind {
            NodeKind::Source { topics, .. } => topics,
            _ => &[],
        }
    }

    pub(crate) fn source_pattern(&self) -> Option<&TopicPattern> {
        match &self.kind {
            NodeKind::Source { pattern, .. } => pattern.as_ref(),
            _ => None,
        }
    }
}

impl Topology {
    /// An empty topology.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a source that reads `topics` and forwards records deserialized with the given serdes.
    pub fn add_source<K: Clone + Send + 'static, V: Clone + Send + 'static>(
        &mut self,
        name: &str,
        topics: &[&str],
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Result<&mut Self, TopologyError> {
        let topics = topics.iter().map(|t| TopicRef::user(t)).collect();
        self.add_node(source_def(name, SourceTopics::Names(topics), key_serde, value_serde, None))?;
        Ok(self)
    }

    /// [`add_source`](Self::add_source) whose records get their timestamps from `extractor` instead of
    /// the application's `default.timestamp.extractor` (Kafka Streams' `addSource(TimestampExtractor,
    /// name, topics)`).
    pub fn add_source_with_extractor<K: Clone + Send + 'static, V: Clone + Send + 'static>(
        &mut self,
        name: &str,
        topics: &[&str],
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
        extractor: impl TimestampExtractor<K, V>,
    ) -> Result<&mut Self, TopologyError> {
        let topics = topics.iter().map(|t| TopicRef::user(t)).collect();
        let extractor: Arc<dyn TimestampExtractor<K, V>> = Arc::new(extractor);
        self.add_node(source_def(name, SourceTopics::Names(topics), key_serde, value_serde, Some(extractor)))?;
        Ok(self)
    }

    /// Adds a source that reads every topic whose whole name matches the regular expression `pattern`
    /// (Kafka Streams' `addSource(name, Pattern)`). The topics are those that exist when the
    /// application starts. An invalid pattern, or one that matches a topic another source reads, is an
    /// error.
    pub fn add_source_pattern<K: Clone + Send + 'static, V: Clone + Send + 'static>(
        &mut self,
        name: &str,
        pattern: &str,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Result<&mut Self, TopologyError> {
        let pattern = TopicPattern::new(pattern)?;
        self.add_node(source_def(name, SourceTopics::Pattern(pattern), key_serde, value_serde, None))?;
        Ok(self)
    }

    /// Adds a processor made by `supplier` (once per task) that takes records from `parents`.
    pub fn add_processor<KIn, VIn, KOut, VOut, P>(
        &mut self,
        name: &str,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        parents: &[&str],
    ) -> Result<&mut Self, TopologyError>
    where
        P: Processor<KIn, VIn, KOut, VOut>,
        KIn: 'static,
        VIn: 'static,
        KOut: Clone + 'static,
        VOut: Clone + 'static,
    {
        let parents = parents.iter().map(|p| p.to_string()).collect();
        self.add_node(processor_def(name, parents, supplier))?;
        Ok(self)
    }

    /// Adds a sink that writes records from `parents` to `topic`.
    pub fn add_sink<K: Send + 'static, V: Send + 'static>(
        &mut self,
        name: &str,
        topic: &str,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
        parents: &[&str],
    ) -> Result<&mut Self, TopologyError> {
        let parents = parents.iter().map(|p| p.to_string()).collect();
        let target = SinkSpec::Fixed(TopicRef::user(topic));
        self.add_node(sink_def(name, parents, target, key_serde, value_serde, None))?;
        Ok(self)
    }

    /// Adds a sink that writes records from `parents` to `topic`, in the partition `partitioner` chooses
    /// (topic, key, value and the topic's partition count → the partition, or `None` for the default
    /// murmur2 of the key bytes), as Kafka Streams' `addSink` with a `StreamPartitioner`.
    pub fn add_sink_with_partitioner<K: Send + 'static, V: Send + 'static>(
        &mut self,
        name: &str,
        topic: &str,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
        partitioner: impl Fn(&str, &K, &V, u32) -> Option<i32> + Send + Sync + 'static,
        parents: &[&str],
    ) -> Result<&mut Self, TopologyError> {
        let parents = parents.iter().map(|p| p.to_string()).collect();
        let target = SinkSpec::Fixed(TopicRef::user(topic));
        let partitioner = Some(Arc::new(StreamPartitioner::One(Box::new(partitioner))));
        self.add_node(sink_def(name, parents, target, key_serde, value_serde, partitioner))?;
        Ok(self)
    }

    /// Adds a store and connects it to `processors` (which may be added later).
    pub fn add_state_store<K: Send + 'static, V: Send + 'static>(
        &mut self,
        store: StoreBuilder<K, V>,
        processors: &[&str],
    ) -> Result<&mut Self, TopologyError> {
        let def = store.into_def();
        let name = def.name.clone();
        if self.stores.iter().any(|s| s.name == name) {
            return Err(TopologyError::DuplicateStore { store: name });
        }
        check_name(&name)?;
        self.stores.push(def);
        for p in processors {
            self.connect_processor_and_state_stores(p, &[&name])?;
        }
        Ok(self)
    }

    /// Adds a global store (Kafka Streams' `addGlobalStore`): the source `source_name` reads every
    /// partition of `topic` into the processor `processor_name` made by `supplier`, which keeps the
    /// store built by `store` up to date. One global task per instance runs them, ahead of the stream
    /// threads: the instance starts processing only once the store holds all of `topic`, and it keeps
    /// following the topic. The topic is the store's log: the store gets no changelog (logging is turned
    /// off, as in Kafka Streams 4.1). Any processor may read the store without being connected to it;
    /// connecting one is an error. The processor forwards nothing (it has no children).
    #[allow(clippy::too_many_arguments)]
    pub fn add_global_store<K, V, SK, SV, P>(
        &mut self,
        store: StoreBuilder<SK, SV>,
        source_name: &str,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
        topic: &str,
        processor_name: &str,
        supplier: impl Fn() -> P + Send + Sync + 'static,
    ) -> Result<&mut Self, TopologyError>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
        SK: Send + 'static,
        SV: Send + 'static,
        P: Processor<K, V, (), ()>,
    {
        if source_name == processor_name {
            return Err(TopologyError::GlobalStoreNames { name: source_name.to_string() });
        }
        let def = store.with_logging_disabled().into_def();
        let name = def.name.clone();
        if self.stores.iter().any(|s| s.name == name) {
            return Err(TopologyError::DuplicateStore { store: name });
        }
        check_name(&name)?;
        let topics = SourceTopics::Names(vec![TopicRef::user(topic)]);
        self.add_node(source_def(source_name, topics, key_serde, value_serde, None))?;
        self.add_processor(processor_name, supplier, &[source_name])?;
        self.stores.push(def);
        self.global_stores.push((name.clone(), processor_name.to_string()));
        self.connect_processor_and_state_stores(processor_name, &[&name])
    }

    /// For the DSL: a global store, its source and processor added (with any error kept for
    /// `validate`).
    pub(crate) fn add_global_deferred(&mut self, source: NodeDef, processor: NodeDef, store: StoreDef) {
        let (store_name, processor_name) = (store.name.clone(), processor.name.clone());
        self.add_node_deferred(source);
        self.add_node_deferred(processor);
        self.add_store_deferred(store, &processor_name);
        self.global_stores.push((store_name, processor_name));
    }

    /// Whether `store` is a global store.
    pub(crate) fn is_global_store(&self, store: &str) -> bool {
        self.global_stores.iter().any(|(s, _)| s == store)
    }

    /// Gives `processor` access to `stores`.
    pub fn connect_processor_and_state_stores(
        &mut self,
        processor: &str,
        stores: &[&str],
    ) -> Result<&mut Self, TopologyError> {
        let Some(node) = self.nodes.iter_mut().find(|n| n.name == processor) else {
            return Err(TopologyError::UnknownProcessor {
                processor: processor.to_string(),
                stores: stores.iter().map(|s| s.to_string()).collect(),
            });
        };
        for s in stores {
            if !node.stores.iter().any(|x| x == s) {
                node.stores.push(s.to_string());
            }
        }
        Ok(self)
    }

    /// Checks that the topology can run: every parent and store exists, types match along every edge,
    /// there is no cycle, every sink has a topic and no topic has two sources. The first problem is
    /// returned, naming the node, topic or store.
    pub fn validate(&self) -> Result<(), TopologyError> {
        plan::plan(self).map(|_| ())
    }

    /// The topology's shape, printed like Kafka Streams' `TopologyDescription`.
    pub fn describe(&self) -> TopologyDescription {
        describe::describe(self)
    }

    /// Adds a node, rejecting at once what can be rejected without the rest of the graph.
    pub(crate) fn add_node(&mut self, def: NodeDef) -> Result<(), TopologyError> {
        check_name(&def.name)?;
        if self.nodes.iter().any(|n| n.name == def.name) {
            return Err(TopologyError::DuplicateNode { name: def.name });
        }
        match &def.kind {
            NodeKind::Source { topics, pattern: None } if topics.is_empty() => {
                return Err(TopologyError::SourceWithoutTopic { source_node: def.name });
            }
            NodeKind::Source { topics, pattern } => {
                for topic in topics {
                    if let Some(other) = self.nodes.iter().find(|n| n.source_topics().contains(topic)) {
                        return Err(TopologyError::TopicReadTwice {
                            topic: topic.name.clone(),
                            first: other.name.clone(),
                            second: def.name,
                        });
                    }
                    let matched = |n: &&NodeDef| n.source_pattern().is_some_and(|p| p.matches(&topic.name));
                    if let Some(other) = self.nodes.iter().find(matched) {
                        return Err(TopologyError::PatternMatchesTopic {
                            pattern: other.source_pattern().map(|p| p.as_str().to_string()).unwrap_or_default(),
                            topic: topic.name.clone(),
                            first: other.name.clone(),
                            second: def.name,
                        });
                    }
                }
                if let Some(pattern) = pattern {
                    let read = |n: &NodeDef| n.source_topics().iter().find(|t| pattern.matches(&t.name)).cloned();
                    if let Some((other, topic)) = self.nodes.iter().find_map(|n| read(n).map(|t| (n, t))) {
                        return Err(TopologyError::PatternMatchesTopic {
                            pattern: pattern.as_str().to_string(),
                            topic: topic.name,
                            first: other.name.clone(),
                            second: def.name,
                        });
                    }
                }
            }
            NodeKind::Sink { topic: Some(topic) } if topic.name.is_empty() => {
                return Err(TopologyError::SinkWithoutTopic { sink: def.name });
            }
            _ => {}
        }
        self.nodes.push(def);
        Ok(())
    }

    /// For the DSL: adds a node, keeping any error for `validate` so that builder chains stay infallible.
    pub(crate) fn add_node_deferred(&mut self, def: NodeDef) {
        if let Err(e) = self.add_node(def) {
            self.deferred.push(e);
        }
    }

    /// For the DSL: records a repartition topic for the runtime to create.
    pub(crate) fn add_repartition_topic(&mut self, name: &str, partitions: Option<u32>) {
        self.repartition_topics.push((name.to_string(), partitions));
    }

    /// Marks the repartition topic `name` as co-partitioned with the user topics its readers read.
    pub(crate) fn copartition_with_readers(&mut self, name: &str) {
        self.copartitioned_topics.push(name.to_string());
    }

    /// For the DSL: adds a store, keeping any error for `validate`.
    pub(crate) fn add_store_deferred(&mut self, def: StoreDef, processor: &str) {
        if let Err(e) = check_name(&def.name) {
            self.deferred.push(e);
        } else if self.stores.iter().any(|s| s.name == def.name) {
            self.deferred.push(TopologyError::DuplicateStore { store: def.name.clone() });
        } else {
            let name = def.name.clone();
            self.stores.push(def);
            if let Some(node) = self.nodes.iter_mut().find(|n| n.name == processor) {
                node.stores.push(name);
            }
        }
    }
}

/// Kafka's rule for topic (and so node and store) names (`crate::names`).
pub(crate) fn check_name(name: &str) -> Result<(), TopologyError> {
    match crate::names::invalid_reason(name) {
        Some(reason) => Err(TopologyError::InvalidName { name: name.to_string(), reason }),
        None => Ok(()),
    }
}

/// What a source reads: named topics, or those a pattern matches.
pub(crate) enum SourceTopics {
    Names(Vec<TopicRef>),
    Pattern(TopicPattern),
}

pub(crate) fn source_def<K: Clone + Send + 'static, V: Clone + Send + 'static>(
    name: &str,
    topics: SourceTopics,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    extractor: Option<Arc<dyn TimestampExtractor<K, V>>>,
) -> NodeDef {
    let factory = move |init: &NodeInit<'_>| -> Box<dyn ErasedNode> {
        Box::new(SourceNode {
            index: init.index,
            children: init.children.clone(),
            key_serde: key_serde.clone(),
            value_serde: value_serde.clone(),
            extractor: extractor.clone(),
        })
    };
    NodeDef {
        name: name.to_string(),
        parents: Vec::new(),
        stores: Vec::new(),
        kind: match topics {
            SourceTopics::Names(topics) => NodeKind::Source { topics, pattern: None },
            SourceTopics::Pattern(pattern) => NodeKind::Source { topics: Vec::new(), pattern: Some(pattern) },
        },
        input: None,
        output: Some(TypeSig::of::<K, V>()),
        factory: Arc::new(factory),
    }
}

pub(crate) fn processor_def<KIn, VIn, KOut, VOut, P>(
    name: &str,
    parents: Vec<String>,
    supplier: impl Fn() -> P + Send + Sync + 'static,
) -> NodeDef
where
    P: Processor<KIn, VIn, KOut, VOut>,
    KIn: 'static,
    VIn: 'static,
    KOut: Clone + 'static,
    VOut: Clone + 'static,
{
    let factory = move |init: &NodeInit<'_>| -> Box<dyn ErasedNode> {
        erase::<KIn, VIn>(ProcessorNode {
            index: init.index,
            children: init.children.clone(),
            processor: supplier(),
            _types: PhantomData,
        })
    };
    NodeDef {
        name: name.to_string(),
        parents,
        stores: Vec::new(),
        kind: NodeKind::Processor,
        input: Some(TypeSig::of::<KIn, VIn>()),
        output: Some(TypeSig::of::<KOut, VOut>()),
        factory: Arc::new(factory),
    }
}

/// Where a sink writes, as the DSL hands it over.
pub(crate) enum SinkSpec<K, V> {
    Fixed(TopicRef),
    Dynamic(Arc<dyn Fn(&K, &V, Option<&RecordMetadata>) -> String + Send + Sync>),
}

pub(crate) fn sink_def<K: Send + 'static, V: Send + 'static>(
    name: &str,
    parents: Vec<String>,
    target: SinkSpec<K, V>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    partitioner: Option<Arc<StreamPartitioner<K, V>>>,
) -> NodeDef {
    let kind = match &target {
        SinkSpec::Fixed(topic) => NodeKind::Sink { topic: Some(topic.clone()) },
        SinkSpec::Dynamic(_) => NodeKind::Sink { topic: None },
    };
    let node_name: Arc<str> = name.into();
    let factory = move |init: &NodeInit<'_>| -> Box<dyn ErasedNode> {
        let target = match &target {
            SinkSpec::Fixed(topic) => SinkTarget::Fixed(topic.resolve(init.application_id).into()),
            SinkSpec::Dynamic(choose) => SinkTarget::Dynamic(choose.clone()),
        };
        erase::<K, V>(SinkNode {
            name: node_name.clone(),
            target,
            key_serde: key_serde.clone(),
            value_serde: value_serde.clone(),
            partitioner: partitioner.clone(),
        })
    };
    NodeDef {
        name: name.to_string(),
        parents,
        stores: Vec::new(),
        kind,
        input: Some(TypeSig::of::<K, V>()),
        output: None,
        factory: Arc::new(factory),
    }
}
