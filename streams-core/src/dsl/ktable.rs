//! [`KTable`]: a changelog stream read as a table (the latest value per key), and its operators.
//! Table nodes forward [`Change`]s (new and old value), so re-grouping can subtract what moved away.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::aggregate::AggregateOutput;
use super::builder::{missing_serde, pick, BuilderState, StreamsBuilder};
use super::change::Change;
use super::grouped::{store_def, KGroupedTable};
use super::options::{Consumed, Grouped, Materialized};
use super::{Data, KStream};
use crate::processor::{Processor, ProcessorContext};
use crate::record::RecordPart;
use crate::serde::{OptionSerde, Serde};
use crate::topology::{processor_def, source_def, TopicRef};
use crate::{Record, StreamsError};

/// A table: the latest value per key (Kafka Streams' `KTable<K, V>`).
pub struct KTable<K, V> {
    pub(crate) builder: Rc<RefCell<BuilderState>>,
    pub(crate) node: String,
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
    /// The store holding this table's values, when it is materialized.
    pub(crate) store: Option<String>,
    pub(crate) next_name: Option<String>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            builder: self.builder.clone(),
            node: self.node.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            store: self.store.clone(),
            next_name: self.next_name.clone(),
        }
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    pub(crate) fn new(
        builder: Rc<RefCell<BuilderState>>,
        node: String,
        key_serde: Option<Arc<dyn Serde<K>>>,
        value_serde: Option<Arc<dyn Serde<V>>>,
        store: Option<String>,
    ) -> Self {
        KTable { builder, node, key_serde, value_serde, store, next_name: None }
    }

    /// The name of the node this table comes out of.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    ///
    /// let builder = StreamsBuilder::new();
    /// let users = builder.table::<String, String>("users");
    /// // A source table is a source node and then the `KTABLE-SOURCE` processor that keeps the store.
    /// assert_eq!(users.node_name(), "KTABLE-SOURCE-0000000002");
    /// ```
    pub fn node_name(&self) -> &str {
        &self.node
    }

    /// The name of the store that holds this table, when it is materialized (aggregations and source
    /// tables are); read it in tests with the test driver.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let users = builder.table::<String, String>("users");
    /// assert_eq!(users.store_name(), Some("users-STATE-STORE-0000000000"));
    /// // A filtered table has no store of its own.
    /// assert_eq!(users.filter(|_, name| !name.is_empty()).store_name(), None);
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let users_in = driver.input_topic::<String, Option<String>>("users");
    /// driver.pipe(&users_in, "u1".into(), Some("Ada".into()), 0)?;
    /// let store = users.store_name().unwrap();
    /// assert_eq!(driver.store_entries::<String, String>(store)?, vec![("u1".to_string(), "Ada".to_string())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }

    /// Names the next operator applied to this handle.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    ///
    /// let builder = StreamsBuilder::new();
    /// let ages = builder.table::<String, i64>("ages");
    /// ages.named("adults").filter(|_, age| *age >= 18).to_stream().to("adults");
    /// assert!(builder.build()?.describe().to_string().contains("Processor: adults"));
    /// # Ok::<(), streams_core::TopologyError>(())
    /// ```
    pub fn named(&self, name: impl Into<String>) -> Self {
        KTable { next_name: Some(name.into()), ..self.clone() }
    }

    fn add<V2: Data, P: Processor<K, Change<V>, K, Change<V2>>>(
        &self,
        prefix: &str,
        supplier: impl Fn() -> P + Send + Sync + 'static,
    ) -> String {
        let mut b = self.builder.borrow_mut();
        let name = b.name_or(self.next_name.clone(), prefix);
        b.topology.add_node_deferred(processor_def(&name, vec![self.node.clone()], supplier));
        name
    }

    /// Keeps the rows for which `predicate` holds; a row that stops matching is deleted downstream.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("prices").filter(|_, cents| *cents >= 100).to_stream().to("expensive");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let prices = driver.input_topic::<String, Option<i64>>("prices");
    /// let expensive = driver.output_topic::<String, Option<i64>>("expensive");
    /// driver.pipe(&prices, "tea".into(), Some(150), 0)?;
    /// driver.pipe(&prices, "tea".into(), Some(50), 1)?; // stops matching: deleted downstream
    /// driver.pipe(&prices, "milk".into(), Some(20), 2)?; // never matched: nothing forwarded
    /// assert_eq!(driver.read_key_values(&expensive), vec![("tea".to_string(), Some(150)), ("tea".to_string(), None)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        let predicate = Arc::new(predicate);
        let name = self.add("KTABLE-FILTER-", move || TableFilter { predicate: predicate.clone(), keep_if: true });
        KTable::new(self.builder.clone(), name, self.key_serde.clone(), self.value_serde.clone(), None)
    }

    /// Drops the rows for which `predicate` holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, i64>("stock").filter_not(|_, count| *count == 0).to_stream().to("in-stock");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let stock = driver.input_topic::<String, Option<i64>>("stock");
    /// let in_stock = driver.output_topic::<String, Option<i64>>("in-stock");
    /// driver.pipe(&stock, "tea".into(), Some(3), 0)?;
    /// driver.pipe(&stock, "tea".into(), Some(0), 1)?; // sold out: deleted downstream
    /// assert_eq!(driver.read_key_values(&in_stock), vec![("tea".to_string(), Some(3)), ("tea".to_string(), None)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn filter_not(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        let predicate = Arc::new(predicate);
        let name = self.add("KTABLE-FILTER-", move || TableFilter { predicate: predicate.clone(), keep_if: false });
        KTable::new(self.builder.clone(), name, self.key_serde.clone(), self.value_serde.clone(), None)
    }

    /// A new value per row.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, String>("users")
    ///     .map_values(|id, name| format!("{name} <{id}@example.com>"))
    ///     .to_stream()
    ///     .to("contacts");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let users = driver.input_topic::<String, Option<String>>("users");
    /// let contacts = driver.output_topic::<String, Option<String>>("contacts");
    /// driver.pipe(&users, "ada".into(), Some("Ada".into()), 0)?;
    /// driver.pipe(&users, "ada".into(), None, 1)?; // a delete stays a delete
    /// assert_eq!(driver.read_key_values(&contacts), vec![
    ///     ("ada".to_string(), Some("Ada <ada@example.com>".to_string())),
    ///     ("ada".to_string(), None),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map_values<V2: Data>(&self, mapper: impl Fn(&K, V) -> V2 + Send + Sync + 'static) -> KTable<K, V2> {
        let mapper = Arc::new(mapper);
        let name = self.add("KTABLE-MAPVALUES-", move || TableMapValues(mapper.clone()));
        KTable::new(self.builder.clone(), name, self.key_serde.clone(), None, None)
    }

    /// The table's updates as a stream; a delete is a `None` value (a tombstone on the wire).
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder.table::<String, String>("users").to_stream().to("user-updates");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let users = driver.input_topic::<String, Option<String>>("users");
    /// let updates = driver.output_topic::<String, Option<String>>("user-updates");
    /// driver.pipe(&users, "u1".into(), Some("Ada".into()), 0)?;
    /// driver.pipe(&users, "u1".into(), Some("Ada L.".into()), 1)?;
    /// driver.pipe(&users, "u1".into(), None, 2)?;
    /// assert_eq!(driver.peek_raw("user-updates")[2].value, None); // the delete is a tombstone on the wire
    /// assert_eq!(driver.read_key_values(&updates), vec![
    ///     ("u1".to_string(), Some("Ada".to_string())),
    ///     ("u1".to_string(), Some("Ada L.".to_string())),
    ///     ("u1".to_string(), None),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let name = {
            let mut b = self.builder.borrow_mut();
            let name = b.name_or(self.next_name.clone(), "KTABLE-TOSTREAM-");
            b.topology.add_node_deferred(processor_def::<K, Change<V>, K, Option<V>, _>(
                &name,
                vec![self.node.clone()],
                || TableToStream,
            ));
            name
        };
        let value_serde = self.value_serde.clone().map(|s| Arc::new(OptionSerde::new(s)) as Arc<dyn Serde<Option<V>>>);
        KStream::new(self.builder.clone(), name, self.key_serde.clone(), value_serde, false)
    }

    /// Re-groups the rows by a new key (always through a repartition topic), for an aggregation that
    /// adds rows as they arrive and subtracts them as they leave.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// // user -> region; count the users per region, following moves
    /// builder
    ///     .table::<String, String>("user-regions")
    ///     .group_by(|_, region| (region.clone(), 1_i64))
    ///     .count()
    ///     .to_stream()
    ///     .to("users-per-region");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let regions = driver.input_topic::<String, Option<String>>("user-regions");
    /// let per_region = driver.output_topic::<String, Option<i64>>("users-per-region");
    /// driver.pipe(&regions, "ada".into(), Some("eu".into()), 0)?;
    /// driver.pipe(&regions, "bob".into(), Some("eu".into()), 1)?;
    /// driver.pipe(&regions, "ada".into(), Some("us".into()), 2)?; // eu loses one, then us gains one
    /// assert_eq!(driver.read_key_values(&per_region), vec![
    ///     ("eu".to_string(), Some(1)),
    ///     ("eu".to_string(), Some(2)),
    ///     ("eu".to_string(), Some(1)),
    ///     ("us".to_string(), Some(1)),
    /// ]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn group_by<K2: Data + PartialEq, V2: Data>(
        &self,
        selector: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KGroupedTable<K2, V2> {
        self.group_by_with(selector, Grouped::default())
    }

    /// [`group_by`](Self::group_by) with a repartition topic name or serdes.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{Grouped, StreamsBuilder};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, String>("user-regions")
    ///     .group_by_with(|_, region| (region.clone(), 1_i64), Grouped::with_name("by-region"))
    ///     .count()
    ///     .to_stream()
    ///     .to("users-per-region");
    ///
    /// let driver = TopologyTestDriver::new(builder.build()?)?;
    /// assert_eq!(driver.input_topics(), vec!["test-driver-by-region-repartition", "user-regions"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn group_by_with<K2: Data + PartialEq, V2: Data>(
        &self,
        selector: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
        grouped: Grouped<K2, V2>,
    ) -> KGroupedTable<K2, V2> {
        let selector = Arc::new(selector);
        let name = {
            let mut b = self.builder.borrow_mut();
            // As in Kafka Streams, a Grouped name also names the selecting node.
            let name = b.name_or(grouped.name.clone().or(self.next_name.clone()), "KTABLE-SELECT-");
            let supplier = move || TableRepartitionMap(selector.clone());
            b.topology.add_node_deferred(processor_def(&name, vec![self.node.clone()], supplier));
            name
        };
        let key_serde = grouped.key_serde.clone();
        KGroupedTable { builder: self.builder.clone(), node: name, key_serde, grouped, next_name: None }
    }
}

/// `builder.table(topic)`: a source, then a `KTABLE-SOURCE` processor that keeps the latest value per
/// key in a store and forwards changes. Names in Kafka Streams' order: store, source, processor.
pub(crate) fn table_source<K: Data, V: Data>(
    builder: &StreamsBuilder,
    topic: &str,
    consumed: Consumed<K, V>,
    materialized: Materialized<K, V>,
) -> KTable<K, V> {
    let rc = builder.state.clone();
    let mut b = rc.borrow_mut();
    let store = match materialized.store_name.clone() {
        Some(name) => name,
        None => b.new_store_name(&format!("{topic}-")),
    };
    let source = b.name_or(consumed.name.clone(), "KSTREAM-SOURCE-");
    let name = b.new_name("KTABLE-SOURCE-");
    let key_serde = pick(materialized.key_serde.clone(), &consumed.key_serde);
    let value_serde = pick(materialized.value_serde.clone(), &consumed.value_serde);
    let (Some(key_serde), Some(value_serde)) = (key_serde, value_serde) else {
        let target = format!("the table source of {topic}");
        b.topology.deferred.push(missing_serde::<K, V>(source.clone(), target, RecordPart::KeyOrValue));
        return KTable::new(rc.clone(), name, None, None, None);
    };
    // The source reads values as `Option<V>`: a null value is a delete.
    let nullable: Arc<dyn Serde<Option<V>>> = Arc::new(OptionSerde::new(value_serde.clone()));
    b.topology.add_node_deferred(source_def(&source, vec![TopicRef::user(topic)], key_serde.clone(), nullable));
    let store_for_processor = store.clone();
    let (key_for_processor, caching) = (key_serde.clone(), materialized.caching_enabled);
    let def = processor_def(&name, vec![source], move || TableSource::<K, V> {
        output: AggregateOutput::new(store_for_processor.clone(), key_for_processor.clone(), caching),
    });
    b.topology.add_node_deferred(def);
    b.topology.add_store_deferred(store_def(&store, &materialized, key_serde.clone(), value_serde.clone()), &name);
    KTable::new(rc.clone(), name, Some(key_serde), Some(value_serde), Some(store))
}

/// `KTABLE-SOURCE`: upserts or deletes, and forwards the change. With the record cache on (Kafka
/// Streams' default for a source table's store), a key's updates within a commit reach the store and
/// downstream as one change, exactly as an aggregation's do: it shares their output path.
struct TableSource<K, V> {
    output: AggregateOutput<K, V>,
}

impl<K: Data, V: Data> Processor<K, Option<V>, K, Change<V>> for TableSource<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), StreamsError> {
        self.output.init(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Option<V>>,
    ) -> Result<(), StreamsError> {
        let key_bytes = self.output.key_bytes(&record.key)?;
        let (old, _) = self.output.current(ctx, &record.key, key_bytes.as_deref())?;
        self.output.update(ctx, key_bytes, record, old)
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), StreamsError> {
        self.output.flush(ctx)
    }

    fn close(&mut self, _ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), StreamsError> {
        self.output.close();
        Ok(())
    }
}

/// `KTABLE-FILTER`: filters both sides of a change; forwards nothing when neither side passes.
struct TableFilter<F> {
    predicate: Arc<F>,
    keep_if: bool,
}

impl<K: Data, V: Data, F: Fn(&K, &V) -> bool + Send + Sync + 'static> Processor<K, Change<V>, K, Change<V>>
    for TableFilter<F>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), StreamsError> {
        let key = &record.key;
        let keep = |v: &V| (self.predicate)(key, v) == self.keep_if;
        let new = record.value.new.filter(|v| keep(v));
        let old = record.value.old.filter(|v| keep(v));
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        ctx.forward(Record {
            key: record.key,
            value: Change::new(new, old),
            timestamp: record.timestamp,
            headers: record.headers,
        })
    }
}

/// `KTABLE-MAPVALUES`: maps both sides of a change.
struct TableMapValues<F>(Arc<F>);

impl<K: Data, V: Data, V2: Data, F: Fn(&K, V) -> V2 + Send + Sync + 'static> Processor<K, Change<V>, K, Change<V2>>
    for TableMapValues<F>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V2>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), StreamsError> {
        let new = record.value.new.map(|v| (self.0)(&record.key, v));
        let old = record.value.old.map(|v| (self.0)(&record.key, v));
        ctx.forward(Record {
            key: record.key,
            value: Change::new(new, old),
            timestamp: record.timestamp,
            headers: record.headers,
        })
    }
}

/// `KTABLE-TOSTREAM`: the new side of each change.
struct TableToStream;

impl<K: Data, V: Data> Processor<K, Change<V>, K, Option<V>> for TableToStream {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Option<V>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), StreamsError> {
        ctx.forward(Record {
            key: record.key,
            value: record.value.new,
            timestamp: record.timestamp,
            headers: record.headers,
        })
    }
}

/// `KTABLE-SELECT`: maps each side of a change to its new key. When both sides land on the same key
/// they travel as one change; otherwise the old side goes first (to its key) as a removal, then the new
/// side as an addition, as Kafka Streams' `KTableRepartitionMap`.
struct TableRepartitionMap<F>(Arc<F>);

impl<K, V, K2, V2, F> Processor<K, Change<V>, K2, Change<V2>> for TableRepartitionMap<F>
where
    K: Data,
    V: Data,
    K2: Data + PartialEq,
    V2: Data,
    F: Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, Change<V2>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), StreamsError> {
        let new = record.value.new.as_ref().map(|v| (self.0)(&record.key, v));
        let old = record.value.old.as_ref().map(|v| (self.0)(&record.key, v));
        let (ts, headers) = (record.timestamp, record.headers);
        match (new, old) {
            (Some((new_key, new_value)), Some((old_key, old_value))) if new_key == old_key => {
                let change = Change::new(Some(new_value), Some(old_value));
                ctx.forward(Record { key: new_key, value: change, timestamp: ts, headers })
            }
            (new, old) => {
                if let Some((old_key, old_value)) = old {
                    let change = Change::new(None, Some(old_value));
                    ctx.forward(Record { key: old_key, value: change, timestamp: ts, headers: headers.clone() })?;
                }
                if let Some((new_key, new_value)) = new {
                    let change = Change::new(Some(new_value), None);
                    ctx.forward(Record { key: new_key, value: change, timestamp: ts, headers })?;
                }
                Ok(())
            }
        }
    }
}
