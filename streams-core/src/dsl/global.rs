//! Global tables (Kafka Streams' `GlobalKTable`): a table of every partition of a topic, kept by the
//! instance's global task and read by any task. A stream joins one by a key it derives from each record
//! (`join_global`, `left_join_global`), with no repartitioning and no co-partitioning: every instance
//! holds the whole table.

use std::marker::PhantomData;
use std::sync::Arc;

use super::builder::{missing_serde, pick};
use super::ktable::{source_table_names, table_source_node_names, TableSource};
use super::options::{Consumed, Materialized};
use super::{Data, KStream, StreamsBuilder};
use crate::processor::{ProcessingContext, Processor, ProcessorContext};
use crate::record::RecordPart;
use crate::serde::{DefaultSerde, OptionSerde, Serde};
use crate::store::{StoreBuilder, TypedKeyValueStore, ValueAndTimestamp};
use crate::topology::{processor_def, source_def, SourceTopics, TopicRef};
use crate::{Record, StreamsError, TopologyError};

/// A table of every partition of a topic, on every instance (Kafka Streams' `GlobalKTable`): made by
/// [`StreamsBuilder::global_table`], joined by [`KStream::join_global`] and
/// [`KStream::left_join_global`].
///
/// The instance reads the whole topic into the table's store before it starts processing (its state
/// stays `Rebalancing` until then), and keeps following the topic on a thread of its own. The topic is
/// the store's log: there is no changelog, and a restart reads the topic again from the store's
/// checkpoint (a persistent store) or from the beginning (in memory). Updates of the table never make
/// output: a join sees whatever the table holds when a stream record arrives.
pub struct GlobalKTable<K, V> {
    store: String,
    key_serde: Option<Arc<dyn Serde<K>>>,
    _types: PhantomData<fn() -> V>,
}

impl<K, V> Clone for GlobalKTable<K, V> {
    fn clone(&self) -> Self {
        GlobalKTable { store: self.store.clone(), key_serde: self.key_serde.clone(), _types: PhantomData }
    }
}

impl<K, V> GlobalKTable<K, V> {
    /// The name of the table's store (Kafka Streams' `queryableStoreName`).
    pub fn store_name(&self) -> &str {
        &self.store
    }
}

impl StreamsBuilder {
    /// A global table of `topic`, with the default serdes of its key and value types (Kafka Streams'
    /// `globalTable`). A null value deletes the key's row; a record with a null key is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let products = builder.global_table::<String, String>("products");
    /// builder
    ///     .stream::<String, String>("orders") // order id -> product id
    ///     .join_global(&products, |_order, product| product.clone(), |product, name| format!("{product}: {name}"))
    ///     .to("orders-with-products");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let names = driver.input_topic::<String, Option<String>>("products");
    /// let orders = driver.input_topic::<String, String>("orders");
    /// let out = driver.output_topic::<String, String>("orders-with-products");
    /// driver.pipe(&names, "p1".into(), Some("tea".into()), 0)?;
    /// driver.pipe(&orders, "o1".into(), "p1".into(), 1)?;
    /// driver.pipe(&orders, "o2".into(), "p9".into(), 2)?; // no such product: no result
    /// assert_eq!(driver.read_key_values(&out), vec![("o1".to_string(), "p1: tea".to_string())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn global_table<K: Data + DefaultSerde, V: Data + DefaultSerde>(&self, topic: &str) -> GlobalKTable<K, V> {
        self.global_table_with(topic, Consumed::with(K::default_serde(), V::default_serde()), Materialized::new())
    }

    /// A global table of `topic` with the serdes, names and store given. Names as Kafka Streams gives
    /// them: the store (`<topic>-STATE-STORE-<n>` unless `materialized` names it), the source
    /// (`KSTREAM-SOURCE-<n>`, or `<name>-source` with a `Consumed` name), then the processor
    /// (`KTABLE-SOURCE-<n>`, or the `Consumed` name). The store is never logged nor cached; a timestamp
    /// extractor in `consumed` is not used: rows keep their records' timestamps, as in Kafka Streams.
    pub fn global_table_with<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> GlobalKTable<K, V> {
        let mut b = self.state.borrow_mut();
        let (store, source, name) = source_table_names(&mut b, topic, &consumed, &materialized);
        if materialized.versioned.is_some() {
            let reason = "Invalid topology: GlobalTables cannot be versioned.".to_string();
            b.topology.deferred.push(TopologyError::InvalidStore { store: store.clone(), reason });
            return GlobalKTable { store, key_serde: None, _types: PhantomData };
        }
        let key_serde = pick(materialized.key_serde.clone(), &consumed.key_serde);
        let value_serde = pick(materialized.value_serde.clone(), &consumed.value_serde);
        let (Some(key_serde), Some(value_serde)) = (key_serde, value_serde) else {
            let target = format!("the global table of {topic}");
            b.topology.deferred.push(missing_serde::<K, V>(source, target, RecordPart::KeyOrValue));
            return GlobalKTable { store, key_serde: None, _types: PhantomData };
        };
        let nullable: Arc<dyn Serde<Option<V>>> = Arc::new(OptionSerde::new(value_serde.clone()));
        let topics = SourceTopics::Names(vec![TopicRef::user(topic)]);
        let source_def = source_def(&source, topics, key_serde.clone(), nullable, None);
        let (store_for_processor, key_for_processor) = (store.clone(), key_serde.clone());
        let processor = processor_def(&name, vec![source], move || {
            TableSource::<K, V>::new(store_for_processor.clone(), key_for_processor.clone(), false)
        });
        let materialized = materialized.with_logging_disabled().with_caching_disabled();
        let store_def = super::grouped::store_def(&store, &materialized, key_serde.clone(), value_serde);
        b.topology.add_global_deferred(source_def, processor, store_def);
        GlobalKTable { store, key_serde: Some(key_serde), _types: PhantomData }
    }

    /// A global store kept by a processor of your own (Kafka Streams' `StreamsBuilder#addGlobalStore`):
    /// every record of every partition of `topic`, read with `consumed`'s serdes, goes to the processor
    /// `supplier` makes, which keeps `store` (built here, never logged: the topic is its log) and
    /// forwards nothing. As with [`global_table`](Self::global_table), the instance reads the whole topic
    /// before it processes anything and then keeps following it, and a restart reads the topic again from
    /// the store's checkpoint or the beginning, through the same processor. Any processor reads the store
    /// with `ProcessorContext::global_store`. Names as Kafka Streams gives them: the source
    /// `KSTREAM-SOURCE-<n>` and the processor `KTABLE-SOURCE-<n+1>`, or `<name>-source` and `<name>`
    /// with a `Consumed` name. A timestamp extractor in `consumed` is not used (records keep their own
    /// timestamps, as in Kafka Streams' global task). `consumed` must give both serdes (`Consumed::with`):
    /// `build()` fails naming the source otherwise, where Kafka Streams falls back to the default serdes.
    ///
    /// A topology may be nothing but global stores: the instance then runs its global task and no
    /// stream task.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use streams_core::dsl::{Consumed, StreamsBuilder};
    /// use streams_core::processor::{Processor, ProcessorContext};
    /// use streams_core::serde::StringSerde;
    /// use streams_core::store::Stores;
    /// use streams_core::testing::TopologyTestDriver;
    /// use streams_core::{Record, StreamsError};
    ///
    /// /// Keeps the latest value of each key, upper-cased.
    /// struct Upper;
    /// impl Processor<String, String, (), ()> for Upper {
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_, (), ()>, record: Record<String, String>) -> Result<(), StreamsError> {
    ///         let store = ctx.store_handle::<String, String>("codes")?;
    ///         ctx.store_mut(store)?.put(&record.key, &record.value.to_uppercase())
    ///     }
    /// }
    ///
    /// let builder = StreamsBuilder::new();
    /// let store = Stores::key_value_store_builder(
    ///     Stores::in_memory_key_value_store("codes"),
    ///     Arc::new(StringSerde),
    ///     Arc::new(StringSerde),
    /// );
    /// builder.add_global_store(store, "countries", Consumed::with(Arc::new(StringSerde), Arc::new(StringSerde)), || Upper);
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let countries = driver.input_topic::<String, String>("countries");
    /// driver.pipe(&countries, "fr".into(), "fra".into(), 0)?;
    /// assert_eq!(driver.store_entries::<String, String>("codes")?, vec![("fr".to_string(), "FRA".to_string())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_global_store<K: Data, V: Data, SK: Send + 'static, SV: Send + 'static, P>(
        &self,
        store: StoreBuilder<SK, SV>,
        topic: &str,
        consumed: Consumed<K, V>,
        supplier: impl Fn() -> P + Send + Sync + 'static,
    ) -> &Self
    where
        P: Processor<K, V, (), ()>,
    {
        let mut b = self.state.borrow_mut();
        let (source, name) = table_source_node_names(&mut b, consumed.name.clone());
        let (Some(key_serde), Some(value_serde)) = (consumed.key_serde, consumed.value_serde) else {
            let target = format!("the global store of {topic}");
            b.topology.deferred.push(missing_serde::<K, V>(source, target, RecordPart::KeyOrValue));
            return self;
        };
        let topics = SourceTopics::Names(vec![TopicRef::user(topic)]);
        let source_def = source_def(&source, topics, key_serde, value_serde, None);
        let processor = processor_def(&name, vec![source], supplier);
        b.topology.add_global_deferred(source_def, processor, store.with_logging_disabled().into_def());
        self
    }
}

/// How a stream record's value and the table's (if any) make the result; `None`: no result.
type GlobalJoiner<V, VG, VR> = Arc<dyn Fn(V, Option<&VG>) -> Option<VR> + Send + Sync>;

impl<K: Data, V: Data> KStream<K, V> {
    /// Joins each record with the global table's row for the key `key_selector` derives from it (Kafka
    /// Streams' `KStream#join(GlobalKTable, KeyValueMapper, ValueJoiner)`): `joiner(value, row)` goes
    /// downstream with the record's key, timestamp and headers. A record whose derived key has no row
    /// gives nothing; one with a null value (when the stream's value serde, if it has one, says so) or a
    /// null derived key (the table's key serde says) is dropped, and counted. Named
    /// `KSTREAM-LEFTJOIN-<n>`, as Kafka Streams names both global joins.
    pub fn join_global<KG: Data, VG: Data, VR: Data>(
        &self,
        table: &GlobalKTable<KG, VG>,
        key_selector: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(V, &VG) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let joiner: GlobalJoiner<V, VG, VR> = Arc::new(move |value, row| row.map(|row| joiner(value, row)));
        self.global_join(table, Arc::new(key_selector), joiner, false)
    }

    /// [`join_global`](Self::join_global), but a record whose derived key has no row (or is null) is
    /// joined with `None` (Kafka Streams' `leftJoin(GlobalKTable, ..)`, 4.0.1 and later). Records with
    /// a null value are dropped (and counted).
    pub fn left_join_global<KG: Data, VG: Data, VR: Data>(
        &self,
        table: &GlobalKTable<KG, VG>,
        key_selector: impl Fn(&K, &V) -> KG + Send + Sync + 'static,
        joiner: impl Fn(V, Option<&VG>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let joiner: GlobalJoiner<V, VG, VR> = Arc::new(move |value, row| Some(joiner(value, row)));
        self.global_join(table, Arc::new(key_selector), joiner, true)
    }

    fn global_join<KG: Data, VG: Data, VR: Data>(
        &self,
        table: &GlobalKTable<KG, VG>,
        key_selector: Arc<dyn Fn(&K, &V) -> KG + Send + Sync>,
        joiner: GlobalJoiner<V, VG, VR>,
        left: bool,
    ) -> KStream<K, VR> {
        let mut b = self.builder.borrow_mut();
        let name = b.name_or(self.next_name.clone(), "KSTREAM-LEFTJOIN-");
        let value_serde = self.value_serde.clone();
        let (store, table_key_serde) = (table.store.clone(), table.key_serde.clone());
        let def = processor_def(&name, vec![self.node.clone()], move || StreamGlobalJoin {
            store: store.clone(),
            table_key_serde: table_key_serde.clone(),
            key_selector: key_selector.clone(),
            joiner: joiner.clone(),
            left,
            value_serde: value_serde.clone(),
        });
        b.topology.add_node_deferred(def);
        KStream::new(self.builder.clone(), name, self.key_serde.clone(), None, self.repartition_required)
    }
}

/// `KSTREAM-LEFTJOIN` with a global table (Kafka Streams' `KStreamGlobalKTableJoin`): each record
/// looked up in the global store by its derived key.
struct StreamGlobalJoin<K, V, KG, VG, VR> {
    store: String,
    /// `None` when the table's serdes were missing (`build` reports it).
    table_key_serde: Option<Arc<dyn Serde<KG>>>,
    key_selector: Arc<dyn Fn(&K, &V) -> KG + Send + Sync>,
    joiner: GlobalJoiner<V, VG, VR>,
    left: bool,
    /// `None`: the stream's values have no known serde, and so no null.
    value_serde: Option<Arc<dyn Serde<V>>>,
}

impl<K: Data, V: Data, KG: Data, VG: Data, VR: Data> StreamGlobalJoin<K, V, KG, VG, VR> {
    fn row(&self, ctx: &mut ProcessingContext<'_>, key: &KG) -> Result<Option<VG>, StreamsError> {
        let globals = ctx.task.globals.clone().ok_or_else(|| StreamsError::StoreAccess {
            node: "(global table lookup)".into(),
            store: self.store.clone(),
            reason: "this task has no global stores to read".into(),
        })?;
        let mut found = None;
        globals.with_store(&self.store, &mut |store| {
            type Rows<KG, VG> = TypedKeyValueStore<KG, ValueAndTimestamp<VG>>;
            if !store.is::<Rows<KG, VG>>() {
                return Err(StreamsError::StoreAccess {
                    node: "(global table lookup)".into(),
                    store: self.store.clone(),
                    reason: format!("the store holds ({}), not the table's types", store.type_names()),
                });
            }
            let typed = store.downcast_mut::<Rows<KG, VG>>().expect("checked above");
            found = typed.get(key)?.map(|row| row.value);
            Ok(())
        })?;
        Ok(found)
    }
}

impl<K: Data, V: Data, KG: Data, VG: Data, VR: Data> Processor<K, V, K, VR> for StreamGlobalJoin<K, V, KG, VG, VR> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, VR>, record: Record<K, V>) -> Result<(), StreamsError> {
        if self.value_serde.as_ref().is_some_and(|serde| serde.is_null(&record.value)) {
            ctx.record_dropped("null join key or value in a stream-global table join");
            return Ok(());
        }
        let key = (self.key_selector)(&record.key, &record.value);
        let null_key = self.table_key_serde.as_ref().is_some_and(|serde| serde.is_null(&key));
        if null_key && !self.left {
            ctx.record_dropped("null join key or value in a stream-global table join");
            return Ok(());
        }
        let row = if null_key { None } else { self.row(ctx, &key)? };
        let Record { key, value, timestamp, headers } = record;
        let Some(joined) = (self.joiner)(value, row.as_ref()) else { return Ok(()) };
        ctx.forward(Record { key, value: joined, timestamp, headers })
    }
}
