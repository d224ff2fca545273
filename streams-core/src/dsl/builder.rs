//! The entry point of the DSL: [`StreamsBuilder`] makes streams and tables from topics and builds the
//! [`Topology`]. It also owns the name counter that gives every generated node and store its name.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::ktable::table_source;
use super::options::{Consumed, Materialized};
use super::{Data, KStream, KTable};
use crate::event::Event;
use crate::record::RecordPart;
use crate::serde::{DefaultSerde, Serde};
use crate::store::StoreBuilder;
use crate::topology::{source_def, TopicRef, Topology};
use crate::TopologyError;

/// Builds a topology with the typed DSL (Kafka Streams' `StreamsBuilder`).
///
/// Streams and tables are cheap handles into the builder; operators on them add nodes. Mistakes found
/// while building (a name used twice, a topic read twice) are reported by [`StreamsBuilder::build`].
#[derive(Clone, Default)]
pub struct StreamsBuilder {
    pub(crate) state: Rc<RefCell<BuilderState>>,
}

#[derive(Default)]
pub(crate) struct BuilderState {
    pub(crate) topology: Topology,
    counter: u64,
}

impl BuilderState {
    /// `KSTREAM-FILTER-0000000001`: a prefix and the builder-wide counter, ten digits.
    pub(crate) fn new_name(&mut self, prefix: &str) -> String {
        let name = format!("{prefix}{:010}", self.counter);
        self.counter += 1;
        name
    }

    /// `KSTREAM-AGGREGATE-STATE-STORE-0000000003`.
    pub(crate) fn new_store_name(&mut self, prefix: &str) -> String {
        self.new_name(&format!("{prefix}STATE-STORE-"))
    }

    /// A user's name if given, else a generated one. The counter advances either way, as in Kafka
    /// Streams (`NamedInternal.orElseGenerateWithPrefix`), so naming one operator renumbers no other.
    pub(crate) fn name_or(&mut self, given: Option<String>, prefix: &str) -> String {
        let generated = self.new_name(prefix);
        given.unwrap_or(generated)
    }

    /// Advances the counter without using the name (Kafka Streams does this for split branches).
    pub(crate) fn burn(&mut self) {
        self.counter += 1;
    }
}

impl StreamsBuilder {
    /// A new, empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A stream of the records of `topic`, with serdes chosen by type.
    pub fn stream<K: Data + DefaultSerde, V: Data + DefaultSerde>(&self, topic: &str) -> KStream<K, V> {
        self.stream_with(topic, Consumed::with(K::default_serde(), V::default_serde()))
    }

    /// A stream of the records of `topic`, with the serdes and source name given.
    pub fn stream_with<K: Data, V: Data>(&self, topic: &str, consumed: Consumed<K, V>) -> KStream<K, V> {
        self.stream_from(&[topic], consumed)
    }

    /// One stream of the records of several topics.
    pub fn stream_from<K: Data, V: Data>(&self, topics: &[&str], consumed: Consumed<K, V>) -> KStream<K, V> {
        let mut state = self.state.borrow_mut();
        let name = state.name_or(consumed.name, "KSTREAM-SOURCE-");
        let (Some(key_serde), Some(value_serde)) = (consumed.key_serde, consumed.value_serde) else {
            let target = format!("the source of {}", topics.join(", "));
            state.topology.deferred.push(missing_serde::<K, V>(name.clone(), target, RecordPart::KeyOrValue));
            return KStream::new(self.state.clone(), name, None, None, false);
        };
        let topics = topics.iter().map(|t| TopicRef::user(t)).collect();
        state.topology.add_node_deferred(source_def(&name, topics, key_serde.clone(), value_serde.clone()));
        KStream::new(self.state.clone(), name, Some(key_serde), Some(value_serde), false)
    }

    /// The stream of an event type's topic ([`Event::TOPIC`]), keyed by its partition key: the same
    /// source as `stream::<E::Key, E>(E::TOPIC)`.
    ///
    /// The key is the record's key as written, read with `E::Key`'s serde; it is not recomputed from the
    /// value. Writers of the topic key by [`Event::key`] ([`KStream::to_event`] does), so the topic is
    /// partitioned by it and the stream needs no repartition before a grouping. A key that cannot be read
    /// goes to the deserialization handler (the error names topic, partition and offset); a null key is
    /// dropped and counted, as on every stream whose key type cannot be null.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::Event;
    /// # #[derive(Clone, Serialize, Deserialize)]
    /// # struct Order { customer_id: i64, total_value: f64 }
    /// # streams_core::json_serde!(Order);
    /// # impl Event for Order {
    /// #     type Key = i64;
    /// #     const TOPIC: &'static str = "orders";
    /// #     fn key(&self) -> i64 { self.customer_id }
    /// # }
    /// let builder = StreamsBuilder::new();
    /// // `Order` is declared with topic "orders" and key `customer_id: i64`.
    /// builder.stream_event::<Order>().group_by_key().count().to_stream().to("orders-per-customer");
    /// assert!(builder.build()?.describe().to_string().contains("(topics: [orders])"));
    /// # Ok::<(), streams_core::TopologyError>(())
    /// ```
    pub fn stream_event<E: Event>(&self) -> KStream<E::Key, E> {
        self.stream::<E::Key, E>(E::TOPIC)
    }

    /// The table of an event type's topic ([`Event::TOPIC`]): the latest event per partition key, with
    /// the keys read as [`stream_event`](Self::stream_event) reads them. The same source as
    /// `table::<E::Key, E>(E::TOPIC)`.
    pub fn table_event<E: Event>(&self) -> KTable<E::Key, E> {
        self.table::<E::Key, E>(E::TOPIC)
    }

    /// A table of the latest value per key of `topic` (a null value deletes the key), with serdes chosen
    /// by type.
    pub fn table<K: Data + DefaultSerde, V: Data + DefaultSerde>(&self, topic: &str) -> KTable<K, V> {
        self.table_with(topic, Consumed::with(K::default_serde(), V::default_serde()), Materialized::new())
    }

    /// A table of `topic` with the serdes, names and store given.
    pub fn table_with<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        table_source(self, topic, consumed, materialized)
    }

    /// Adds a state store for processors that [`KStream::process`] adds (Kafka Streams'
    /// `addStateStore`); they name it to use it. A mistake (a bad or repeated name) is reported by
    /// [`build`](Self::build).
    pub fn add_state_store<K: Send + 'static, V: Send + 'static>(&self, store: StoreBuilder<K, V>) -> &Self {
        let mut state = self.state.borrow_mut();
        if let Err(e) = state.topology.add_state_store(store, &[]) {
            state.topology.deferred.push(e);
        }
        self
    }

    /// Validates the graph and returns the topology to run.
    pub fn build(&self) -> Result<Topology, TopologyError> {
        let topology = std::mem::take(&mut self.state.borrow_mut().topology);
        topology.validate()?;
        Ok(topology)
    }
}

/// The error for a serde neither given nor inherited: node `node`, writing or reading `target`, needs a
/// `part` serde for records of `K` and `V`.
pub(crate) fn missing_serde<K: ?Sized, V: ?Sized>(
    node: impl Into<String>,
    target: impl Into<String>,
    part: RecordPart,
) -> TopologyError {
    TopologyError::MissingSerde {
        node: node.into(),
        target: target.into(),
        part,
        types: format!("{}, {}", short_type_name::<K>(), short_type_name::<V>()),
    }
}

/// `std::any::type_name` without module paths: `alloc::string::String` is `String`, and
/// `core::option::Option<app::PageView>` is `Option<PageView>`.
fn short_type_name<T: ?Sized>() -> String {
    let mut out = String::new();
    let mut ident = String::new();
    for c in std::any::type_name::<T>().chars() {
        if c.is_alphanumeric() || c == '_' {
            ident.push(c);
        } else if c == ':' {
            ident.clear();
        } else {
            out.push_str(&ident);
            ident.clear();
            out.push(c);
        }
    }
    out + &ident
}

/// Picks the serde for an operator: given explicitly, else inherited from upstream.
pub(crate) fn pick<T: ?Sized>(given: Option<Arc<T>>, inherited: &Option<Arc<T>>) -> Option<Arc<T>> {
    given.or_else(|| inherited.clone())
}

/// Picks a serde, falling back to the type's default.
pub(crate) fn pick_or_default<T: DefaultSerde>(
    given: Option<Arc<dyn Serde<T>>>,
    inherited: &Option<Arc<dyn Serde<T>>>,
) -> Arc<dyn Serde<T>> {
    pick(given, inherited).unwrap_or_else(T::default_serde)
}
