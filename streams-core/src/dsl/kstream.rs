//! [`KStream`]: an unbounded stream of independent records, and its operators.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use super::builder::{missing_serde, pick, pick_or_default, BuilderState};
use super::grouped::KGroupedStream;
use super::options::{Branched, Grouped, Produced, Repartitioned};
use super::repartition::{add_repartition, RepartitionNames};
use super::stateless::{
    Filter, FlatMap, FlatMapValues, Map, MapValues, PassThrough, Peek, Predicate, SelectKey, Split,
};
use super::Data;
use crate::processor::Processor;
use crate::record::RecordPart;
use crate::serde::{DefaultSerde, Serde};
use crate::topology::{processor_def, sink_def, SinkSpec, TopicRef};
use crate::RecordMetadata;

/// A stream of records (Kafka Streams' `KStream<K, V>`): every record is an independent event.
///
/// A `KStream` is a cheap handle; operators take `&self`, so one stream can feed several operators.
pub struct KStream<K, V> {
    pub(crate) builder: Rc<RefCell<BuilderState>>,
    pub(crate) node: String,
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
    /// Set by key-changing operators: a grouping downstream must repartition by the new key first.
    pub(crate) repartition_required: bool,
    pub(crate) next_name: Option<String>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            builder: self.builder.clone(),
            node: self.node.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            repartition_required: self.repartition_required,
            next_name: self.next_name.clone(),
        }
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    pub(crate) fn new(
        builder: Rc<RefCell<BuilderState>>,
        node: String,
        key_serde: Option<Arc<dyn Serde<K>>>,
        value_serde: Option<Arc<dyn Serde<V>>>,
        repartition_required: bool,
    ) -> Self {
        KStream { builder, node, key_serde, value_serde, repartition_required, next_name: None }
    }

    /// The name of the node this stream comes out of.
    pub fn node_name(&self) -> &str {
        &self.node
    }

    /// Names the next operator applied to this handle (Kafka Streams' `Named`), instead of a generated
    /// `KSTREAM-…-0000000007` name.
    pub fn named(&self, name: impl Into<String>) -> Self {
        KStream { next_name: Some(name.into()), ..self.clone() }
    }

    /// Adds a processor below this stream; returns its name.
    fn add<K2: Data, V2: Data, P: Processor<K, V, K2, V2>>(
        &self,
        prefix: &str,
        supplier: impl Fn() -> P + Send + Sync + 'static,
    ) -> String {
        let mut b = self.builder.borrow_mut();
        let name = b.name_or(self.next_name.clone(), prefix);
        b.topology.add_node_deferred(processor_def(&name, vec![self.node.clone()], supplier));
        name
    }

    fn derive<K2: Data, V2: Data>(
        &self,
        node: String,
        key_serde: Option<Arc<dyn Serde<K2>>>,
        value_serde: Option<Arc<dyn Serde<V2>>>,
        repartition_required: bool,
    ) -> KStream<K2, V2> {
        KStream::new(self.builder.clone(), node, key_serde, value_serde, repartition_required)
    }

    /// Keeps the records for which `predicate` holds.
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        let predicate = Arc::new(predicate);
        let name = self.add("KSTREAM-FILTER-", move || Filter { predicate: predicate.clone(), keep_if: true });
        self.derive(name, self.key_serde.clone(), self.value_serde.clone(), self.repartition_required)
    }

    /// Drops the records for which `predicate` holds.
    pub fn filter_not(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        let predicate = Arc::new(predicate);
        let name = self.add("KSTREAM-FILTER-", move || Filter { predicate: predicate.clone(), keep_if: false });
        self.derive(name, self.key_serde.clone(), self.value_serde.clone(), self.repartition_required)
    }

    /// A new key and value per record. Changes the key, so a grouping downstream repartitions.
    pub fn map<K2: Data, V2: Data>(
        &self,
        mapper: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let mapper = Arc::new(mapper);
        let name = self.add("KSTREAM-MAP-", move || Map(mapper.clone()));
        self.derive(name, None, None, true)
    }

    /// A new value per record, same key: no repartition needed downstream.
    pub fn map_values<V2: Data>(&self, mapper: impl Fn(V) -> V2 + Send + Sync + 'static) -> KStream<K, V2> {
        self.map_values_with_key(move |_, v| mapper(v))
    }

    /// A new value per record computed from the (read-only) key and the value.
    pub fn map_values_with_key<V2: Data>(
        &self,
        mapper: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let mapper = Arc::new(mapper);
        let name = self.add("KSTREAM-MAPVALUES-", move || MapValues(mapper.clone()));
        self.derive(name, self.key_serde.clone(), None, self.repartition_required)
    }

    /// Zero or more `(key, value)` pairs per record. Changes the key.
    pub fn flat_map<K2: Data, V2: Data, I: IntoIterator<Item = (K2, V2)> + 'static>(
        &self,
        mapper: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let mapper = Arc::new(mapper);
        let name = self.add("KSTREAM-FLATMAP-", move || FlatMap(mapper.clone()));
        self.derive(name, None, None, true)
    }

    /// Zero or more values per record, same key.
    pub fn flat_map_values<V2: Data, I: IntoIterator<Item = V2> + 'static>(
        &self,
        mapper: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let mapper = Arc::new(move |_: &K, v: V| mapper(v));
        let name = self.add("KSTREAM-FLATMAPVALUES-", move || FlatMapValues(mapper.clone()));
        self.derive(name, self.key_serde.clone(), None, self.repartition_required)
    }

    /// A new key computed from key and value. Changes the key, so a grouping downstream repartitions.
    pub fn select_key<K2: Data>(&self, selector: impl Fn(&K, &V) -> K2 + Send + Sync + 'static) -> KStream<K2, V> {
        let selector = Arc::new(selector);
        let name = self.add("KSTREAM-KEY-SELECT-", move || SelectKey(selector.clone()));
        self.derive(name, None, self.value_serde.clone(), true)
    }

    /// Runs `action` on every record and passes it on unchanged.
    pub fn peek(&self, action: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        let action = Arc::new(action);
        let name = self.add("KSTREAM-PEEK-", move || Peek { action: action.clone(), forward: true });
        self.derive(name, self.key_serde.clone(), self.value_serde.clone(), self.repartition_required)
    }

    /// Runs a hand-written [`Processor`] on every record (Kafka Streams' `process`), made once per task by
    /// `supplier`, with access to the stores named in `stores` (added with
    /// [`StreamsBuilder::add_state_store`](super::StreamsBuilder::add_state_store)). It forwards what it
    /// likes, with any key: the stream it returns is marked for repartitioning, so a grouping after it
    /// repartitions. An unknown store is reported by `build()`.
    pub fn process<K2: Data, V2: Data, P: Processor<K, V, K2, V2>>(
        &self,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<K2, V2> {
        let name = self.add("KSTREAM-PROCESSOR-", supplier);
        let mut b = self.builder.borrow_mut();
        if let Err(e) = b.topology.connect_processor_and_state_stores(&name, stores) {
            b.topology.deferred.push(e);
        }
        drop(b);
        self.derive(name, None, None, true)
    }

    /// Runs `action` on every record; ends the stream.
    pub fn foreach(&self, action: impl Fn(&K, &V) + Send + Sync + 'static) {
        let action = Arc::new(action);
        self.add::<K, V, _>("KSTREAM-FOREACH-", move || Peek { action: action.clone(), forward: false });
    }

    /// One stream of the records of both (Kafka Streams' `merge`).
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let name = {
            let mut b = self.builder.borrow_mut();
            let name = b.name_or(self.next_name.clone(), "KSTREAM-MERGE-");
            let parents = vec![self.node.clone(), other.node.clone()];
            b.topology.add_node_deferred(processor_def::<K, V, K, V, _>(&name, parents, || PassThrough));
            name
        };
        let repartition = self.repartition_required || other.repartition_required;
        self.derive(name, self.key_serde.clone(), self.value_serde.clone(), repartition)
    }

    /// Splits the stream by predicates (Kafka Streams' `split()`): each record goes to the first branch
    /// whose predicate holds.
    ///
    /// ```
    /// use streams_core::dsl::{Branched, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// let branches = builder
    ///     .stream::<String, i64>("amounts")
    ///     .split()
    ///     .branch(|_, v| *v > 0, Branched::with_name("positive"))
    ///     .default_branch(Branched::with_name("other"));
    /// branches.get("KSTREAM-BRANCH-0000000001positive").unwrap().to("positive");
    /// assert_eq!(branches.len(), 2);
    /// ```
    pub fn split(&self) -> BranchedKStream<K, V> {
        let name = {
            let mut b = self.builder.borrow_mut();
            b.name_or(self.next_name.clone(), "KSTREAM-BRANCH-")
        };
        BranchedKStream { stream: KStream { next_name: None, ..self.clone() }, split_name: name, branches: Vec::new() }
    }

    /// Writes every record to `topic`, with the upstream serdes or the types' defaults.
    pub fn to(&self, topic: &str)
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let produced = Produced::with(pick_or_default(None, &self.key_serde), pick_or_default(None, &self.value_serde));
        self.to_with(topic, produced)
    }

    /// Writes every record to `topic` with the serdes, partitioner and sink name given.
    pub fn to_with(&self, topic: &str, produced: Produced<K, V>) {
        self.sink(SinkSpec::Fixed(TopicRef::user(topic)), produced)
    }

    /// Writes each record to the topic `choose` names for it (Kafka Streams' `TopicNameExtractor`).
    pub fn to_dynamic(&self, choose: impl Fn(&K, &V, Option<&RecordMetadata>) -> String + Send + Sync + 'static)
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let produced = Produced::with(pick_or_default(None, &self.key_serde), pick_or_default(None, &self.value_serde));
        self.sink(SinkSpec::Dynamic(Arc::new(choose)), produced)
    }

    fn sink(&self, target: SinkSpec<K, V>, produced: Produced<K, V>) {
        let mut b = self.builder.borrow_mut();
        let name = b.name_or(produced.name.or(self.next_name.clone()), "KSTREAM-SINK-");
        let key_serde = pick(produced.key_serde, &self.key_serde);
        let value_serde = pick(produced.value_serde, &self.value_serde);
        match (key_serde, value_serde) {
            (Some(k), Some(v)) => {
                let def = sink_def(&name, vec![self.node.clone()], target, k, v, produced.partitioner);
                b.topology.add_node_deferred(def);
            }
            (key, _) => {
                let target = match &target {
                    SinkSpec::Fixed(topic) => format!("the sink to {}", topic.name),
                    SinkSpec::Dynamic(_) => "a sink to topics chosen per record".to_string(),
                };
                let part = if key.is_none() { RecordPart::Key } else { RecordPart::Value };
                b.topology.deferred.push(missing_serde::<K, V>(name, target, part))
            }
        }
    }

    /// Sends the records through a repartition topic, so that downstream tasks see them partitioned by
    /// their current key.
    pub fn repartition(&self) -> KStream<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let key_serde = pick_or_default(None, &self.key_serde);
        let value_serde = pick_or_default(None, &self.value_serde);
        self.repartition_with(Repartitioned::with(key_serde, value_serde))
    }

    /// [`repartition`](Self::repartition) with a topic name, serdes, partition count or partitioner.
    pub fn repartition_with(&self, repartitioned: Repartitioned<K, V>) -> KStream<K, V> {
        let mut b = self.builder.borrow_mut();
        let base = repartitioned.name.unwrap_or_else(|| b.new_name("KSTREAM-REPARTITION-"));
        let names = RepartitionNames::for_stream(&mut b, &base);
        let key_serde = pick(repartitioned.key_serde, &self.key_serde);
        let value_serde = pick(repartitioned.value_serde, &self.value_serde);
        let (Some(k), Some(v)) = (key_serde, value_serde) else {
            let target = format!("the repartition topic {}", names.topic);
            b.topology.deferred.push(missing_serde::<K, V>(names.sink.clone(), target, RecordPart::KeyOrValue));
            return KStream::new(self.builder.clone(), names.source, None, None, false);
        };
        let source = add_repartition(
            &mut b,
            &self.node,
            names,
            k.clone(),
            v.clone(),
            repartitioned.partitioner,
            repartitioned.partitions,
        );
        KStream::new(self.builder.clone(), source, Some(k), Some(v), false)
    }

    /// Groups by the current key, for an aggregation. Repartitions first if an upstream operator changed
    /// the key (`select_key`, `map`, `flat_map`); `map_values` and `filter` do not.
    pub fn group_by_key(&self) -> KGroupedStream<K, V> {
        self.group_by_key_with(Grouped::default())
    }

    /// [`group_by_key`](Self::group_by_key) with a repartition topic name or serdes.
    pub fn group_by_key_with(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream::new(self.clone(), grouped, self.repartition_required)
    }

    /// Groups by a new key computed from key and value; always repartitions.
    pub fn group_by<K2: Data>(&self, selector: impl Fn(&K, &V) -> K2 + Send + Sync + 'static) -> KGroupedStream<K2, V> {
        self.group_by_with(selector, Grouped::default())
    }

    /// [`group_by`](Self::group_by) with a repartition topic name or serdes.
    pub fn group_by_with<K2: Data>(
        &self,
        selector: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V> {
        let selector = Arc::new(selector);
        // As in Kafka Streams, a Grouped name also names the key-selecting node.
        let named = KStream { next_name: grouped.name.clone().or(self.next_name.clone()), ..self.clone() };
        let name = named.add("KSTREAM-KEY-SELECT-", move || SelectKey(selector.clone()));
        let stream = self.derive(name, None, self.value_serde.clone(), true);
        KGroupedStream::new(stream, grouped, true)
    }
}

/// A stream being split into branches; made by [`KStream::split`].
pub struct BranchedKStream<K, V> {
    stream: KStream<K, V>,
    split_name: String,
    branches: Vec<(Option<Predicate<K, V>>, String)>,
}

/// The branches of a split, by name, in the order they were declared.
pub struct Branches<K, V> {
    streams: Vec<(String, KStream<K, V>)>,
}

impl<K: Data, V: Data> BranchedKStream<K, V> {
    /// Adds a branch for records where `predicate` holds (and no earlier branch's did).
    pub fn branch(mut self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static, branched: Branched) -> Self {
        let name = self.branch_name(branched);
        self.branches.push((Some(Arc::new(predicate)), name));
        self
    }

    /// `<split name><branch name or position>`; each branch advances the counter, as in Kafka Streams.
    fn branch_name(&self, branched: Branched) -> String {
        self.stream.builder.borrow_mut().burn();
        let suffix = branched.name.unwrap_or_else(|| (self.branches.len() + 1).to_string());
        format!("{}{}", self.split_name, suffix)
    }

    /// Ends the split with a branch for every record no predicate took.
    pub fn default_branch(mut self, branched: Branched) -> Branches<K, V> {
        let name = match branched.name {
            Some(_) => self.branch_name(branched),
            None => {
                self.stream.builder.borrow_mut().burn();
                format!("{}0", self.split_name)
            }
        };
        self.branches.push((None, name));
        self.finish()
    }

    /// Ends the split; records no predicate took are dropped.
    pub fn no_default_branch(self) -> Branches<K, V> {
        self.finish()
    }

    fn finish(self) -> Branches<K, V> {
        let BranchedKStream { stream, split_name, branches } = self;
        let shared = Arc::new(Mutex::new(branches.clone()));
        {
            let mut b = stream.builder.borrow_mut();
            let shared = shared.clone();
            let supplier =
                move || Split { branches: shared.lock().expect("split branches").clone(), positions: Vec::new() };
            b.topology.add_node_deferred(processor_def(&split_name, vec![stream.node.clone()], supplier));
            for (_, child) in &branches {
                b.topology
                    .add_node_deferred(processor_def::<K, V, K, V, _>(child, vec![split_name.clone()], || PassThrough));
            }
        }
        let streams = branches
            .into_iter()
            .map(|(_, child)| {
                let s = stream.derive(
                    child.clone(),
                    stream.key_serde.clone(),
                    stream.value_serde.clone(),
                    stream.repartition_required,
                );
                (child, s)
            })
            .collect();
        Branches { streams }
    }
}

impl<K: Data, V: Data> Branches<K, V> {
    /// The branch called `name` (`<split name><branch name>`).
    pub fn get(&self, name: &str) -> Option<KStream<K, V>> {
        self.streams.iter().find(|(n, _)| n == name).map(|(_, s)| s.clone())
    }

    /// The branch at `index`, in declaration order.
    pub fn at(&self, index: usize) -> Option<KStream<K, V>> {
        self.streams.get(index).map(|(_, s)| s.clone())
    }

    /// How many branches there are.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// The branch names, in declaration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.streams.iter().map(|(n, _)| n.as_str())
    }

    /// The branches as a vector, in declaration order.
    pub fn into_vec(self) -> Vec<KStream<K, V>> {
        self.streams.into_iter().map(|(_, s)| s).collect()
    }
}
