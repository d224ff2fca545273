//! Joins with a table: a stream's records looked up in a table (Kafka Streams' `KStreamKTableJoin`),
//! and two tables joined by key into a third (`KTableKTableJoin`). A table is read through its value
//! getter (see [`super::getter`]): its store, or its parent's through the operators in between; the
//! joining processor is connected to the stores it reads, so both sides run in one task.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::aggregate::AggregateOutput;
use super::builder::{missing_serde, pick_or_default};
use super::change::Change;
use super::getter::{GetterSupplier, ValueGetter};
use super::grouped::store_def;
use super::join_buffer::JoinBuffer;
use super::ktable::{SendOldValues, TableOutput};
use super::options::{Joined, Materialized};
use super::repartition::{add_repartition, RepartitionNames};
use super::{Data, KStream, KTable};
use crate::processor::{Processor, ProcessorContext};
use crate::record::RecordPart;
use crate::serde::{to_bytes, BytesSerde, DefaultSerde, Serde};
use crate::store::{decode_stored, outer_join_store_def, BufferedContext};
use crate::topology::processor_def;
use crate::window::millis;
use crate::{Record, StreamsError, TopologyError};

/// Kafka Streams' message for a grace period over a table that is not versioned.
const GRACE_NEEDS_VERSIONED: &str = "KTable must be versioned to use a grace period in a stream table join.";

/// How a stream record's value and the table's (if any) make the result; `None`: no result.
type StreamJoiner<V, VT, VR> = Arc<dyn Fn(V, Option<&VT>) -> Option<VR> + Send + Sync>;

impl<K: Data + DefaultSerde, V: Data + DefaultSerde> KStream<K, V> {
    /// Joins each record with the table's value for its key (Kafka Streams' `KStream#join(KTable)`):
    /// `joiner(value, table value)` goes downstream with the record's key, timestamp and headers; a
    /// record whose key the table does not hold gives nothing. Only the stream's records make results:
    /// a table update joins nothing. Records with a null key or value are dropped (and counted). A
    /// re-keyed stream is repartitioned first, so that each record meets the table's task for its key.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let customers = builder.table::<String, String>("customers");
    /// builder
    ///     .stream::<String, i64>("orders")
    ///     .join(&customers, |cents, name| format!("{name}: {cents}"))
    ///     .to("orders-with-names");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let (orders, names) = (driver.input_topic::<String, i64>("orders"), driver.input_topic::<String, String>("customers"));
    /// let out = driver.output_topic::<String, String>("orders-with-names");
    /// driver.pipe(&orders, "c1".into(), 500, 0)?; // no customer yet: nothing
    /// driver.pipe(&names, "c1".into(), "Ada".into(), 1)?;
    /// driver.pipe(&orders, "c1".into(), 700, 2)?;
    /// assert_eq!(driver.read_key_values(&out), vec![("c1".into(), "Ada: 700".into())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(V, &VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.join_with(table, joiner, Joined::default())
    }

    /// [`join`](Self::join) with a name and serdes (Kafka Streams' `Joined`).
    pub fn join_with<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(V, &VT) -> VR + Send + Sync + 'static,
        joined: Joined<K, V, VT>,
    ) -> KStream<K, VR> {
        let joiner: StreamJoiner<V, VT, VR> = Arc::new(move |value, found| found.map(|t| joiner(value, t)));
        self.table_join(table, joiner, joined, false)
    }

    /// Joins each record with the table's value for its key, if any (Kafka Streams'
    /// `KStream#leftJoin(KTable)`): every record gives `joiner(value, table value or None)`. A record
    /// with a null key (and a value) joins nothing and still gives a result; one with a null value is
    /// dropped.
    pub fn left_join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.left_join_with(table, joiner, Joined::default())
    }

    /// [`left_join`](Self::left_join) with a name and serdes (Kafka Streams' `Joined`).
    pub fn left_join_with<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(V, Option<&VT>) -> VR + Send + Sync + 'static,
        joined: Joined<K, V, VT>,
    ) -> KStream<K, VR> {
        let joiner: StreamJoiner<V, VT, VR> = Arc::new(move |value, found| Some(joiner(value, found)));
        self.table_join(table, joiner, joined, true)
    }

    /// Names as Kafka Streams' `doStreamTableJoin`: a re-keyed stream's repartition first (named after
    /// the join, else after this stream's node), then `KSTREAM-JOIN-` or `KSTREAM-LEFTJOIN-`.
    fn table_join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: StreamJoiner<V, VT, VR>,
        joined: Joined<K, V, VT>,
        left: bool,
    ) -> KStream<K, VR> {
        let getter = table.value_getter();
        let mut b = self.builder.borrow_mut();
        let key_serde = pick_or_default(joined.key_serde.clone(), &self.key_serde);
        let value_serde = pick_or_default(joined.value_serde.clone(), &self.value_serde);
        let mut parent = self.node.clone();
        if self.repartition_required {
            let base = joined.name.clone().unwrap_or_else(|| self.node.clone());
            let names = RepartitionNames::for_stream(&mut b, &base);
            let topic = names.topic.clone();
            parent = add_repartition(&mut b, &parent, names, key_serde.clone(), value_serde.clone(), None, None);
            b.topology.copartition_with_readers(&topic);
        }
        let name = b.name_or(joined.name.clone(), if left { "KSTREAM-LEFTJOIN-" } else { "KSTREAM-JOIN-" });
        let grace = joined.grace.map(millis);
        let getter = getter.and_then(|getter| match (grace, table.versioned) {
            (Some(_), None) => Err(GRACE_NEEDS_VERSIONED.to_string()),
            (Some(grace), Some(history)) if grace > history => {
                Err("History retention must be at least grace period.".to_string())
            }
            _ => Ok(getter),
        });
        match getter {
            Ok(getter) => {
                let mut stores = getter.stores.clone();
                // The buffer's name takes no number (Kafka Streams': `<join>-Buffer`).
                let buffer = grace.map(|grace| (format!("{name}-Buffer"), grace));
                if let Some((buffer, _)) = &buffer {
                    // Logged, its deletes held until the commit under at_least_once as a stream-stream
                    // join's waiting records are: an entry leaves for good only with its result.
                    let bytes = Arc::new(BytesSerde);
                    let def = outer_join_store_def(buffer, bytes.clone(), bytes, Some(BTreeMap::new()), None);
                    b.topology.add_store_deferred(def, &name);
                    stores.push(buffer.clone());
                }
                let (keys, values) = (key_serde.clone(), value_serde);
                let def = processor_def(&name, vec![parent], move || StreamTableJoin {
                    table: getter.get(),
                    joiner: joiner.clone(),
                    left,
                    key_serde: keys.clone(),
                    value_serde: values.clone(),
                    buffer: buffer.as_ref().map(|(store, grace)| JoinBuffer::new(store.clone(), *grace)),
                });
                b.topology.add_node_deferred(def);
                b.connect_stores(&name, &stores.iter().map(String::as_str).collect::<Vec<_>>());
            }
            Err(reason) => b.topology.deferred.push(TopologyError::InvalidJoin { node: name.clone(), reason }),
        }
        KStream::new(self.builder.clone(), name, Some(key_serde), None, false)
    }
}

/// `KSTREAM-JOIN` / `KSTREAM-LEFTJOIN`: each record looked up in the table, as of its timestamp when
/// the table is versioned; with a grace period, after waiting in the buffer.
struct StreamTableJoin<K, V, VT, VR> {
    table: Box<dyn ValueGetter<K, VT>>,
    joiner: StreamJoiner<V, VT, VR>,
    left: bool,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    buffer: Option<JoinBuffer>,
}

impl<K: Data, V: Data, VT: Data, VR: Data> Processor<K, V, K, VR> for StreamTableJoin<K, V, VT, VR> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<(), StreamsError> {
        self.table.init(ctx)?;
        if let Some(buffer) = &mut self.buffer {
            if !self.table.is_versioned() {
                return Err(ctx.error(GRACE_NEEDS_VERSIONED));
            }
            buffer.init(ctx)?;
        }
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, VR>, record: Record<K, V>) -> Result<(), StreamsError> {
        let (null_key, null_value) = (self.key_serde.is_null(&record.key), self.value_serde.is_null(&record.value));
        // A left join still answers a record without a key, with no table value (Kafka Streams, KIP-962).
        if null_value || (null_key && !self.left) {
            ctx.record_dropped("null join key or value in a stream-table join");
            return Ok(());
        }
        // A record without a key cannot wait in the buffer (Kafka Streams fails on it): it joins at once.
        let Some(buffer) = self.buffer.as_mut().filter(|b| !null_key && !b.is_late(record.timestamp)) else {
            return match self.join(ctx, record, null_key)? {
                Some(result) => ctx.forward(result),
                None => Ok(()),
            };
        };
        let store = buffer.name().to_string();
        let serialization =
            |source| StreamsError::Serialization { node: ctx.node_name().to_string(), target: store.clone(), source };
        let key = to_bytes(&*self.key_serde, &store, &record.key).map_err(serialization)?.unwrap_or_default();
        let value = to_bytes(&*self.value_serde, &store, &record.value).map_err(serialization)?.unwrap_or_default();
        let context = BufferedContext::of(ctx.record_metadata(), record.timestamp, record.headers);
        buffer.put(ctx, &key, value, context)?;
        for buffered in buffer.evict(ctx)? {
            let key = decode_stored(&*self.key_serde, &store, RecordPart::Key, &buffered.key)?;
            let value = decode_stored(&*self.value_serde, &store, RecordPart::Value, &buffered.value)?;
            let metadata = buffered.context.metadata();
            let BufferedContext { timestamp, headers, .. } = buffered.context;
            // Downstream sees the record as it was read, as in Kafka Streams.
            if let Some(result) = self.join(ctx, Record { key, value, timestamp, headers }, false)? {
                ctx.forward_from(metadata, result)?;
            }
        }
        Ok(())
    }
}

impl<K: Data, V: Data, VT: Data, VR: Data> StreamTableJoin<K, V, VT, VR> {
    /// Joins `record` with the table (a versioned one as of the record's timestamp): the result, if any.
    fn join(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        record: Record<K, V>,
        null_key: bool,
    ) -> Result<Option<Record<K, VR>>, StreamsError> {
        // As of the record's time: a table without a history answers with its value now.
        let found = if null_key { None } else { self.table.get_as_of(ctx, &record.key, record.timestamp)? };
        let Record { key, value, timestamp, headers } = record;
        let joined = (self.joiner)(value, found.as_ref().map(|t| &t.value));
        Ok(joined.map(|value| Record { key, value, timestamp, headers }))
    }
}

/// How two tables' values for a key make the joined value; `None`: the key has no row in the result.
type TableJoiner<V, VO, VR> = Arc<dyn Fn(Option<&V>, Option<&VO>) -> Option<VR> + Send + Sync>;

/// The three table-table joins.
#[derive(Clone, Copy, PartialEq)]
enum JoinKind {
    Inner,
    Left,
    Outer,
}

impl<K: Data + DefaultSerde, V: Data> KTable<K, V> {
    /// Joins two tables by key into a table that has a row where both do: `joiner(value, other value)`
    /// (Kafka Streams' `KTable#join(KTable)`). An update of either side updates (or, when a side's row
    /// is deleted, deletes) the result's row; its timestamp is the larger of the two sides'.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let names = builder.table::<String, String>("names");
    /// let emails = builder.table::<String, String>("emails");
    /// names.join(&emails, |name, email| format!("{name} <{email}>")).to_stream().to("contacts");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let (n, e) = (driver.input_topic::<String, Option<String>>("names"), driver.input_topic::<String, Option<String>>("emails"));
    /// let contacts = driver.output_topic::<String, Option<String>>("contacts");
    /// driver.pipe(&n, "u1".into(), Some("Ada".into()), 0)?;
    /// driver.pipe(&e, "u1".into(), Some("ada@example.com".into()), 1)?;
    /// driver.pipe(&n, "u1".into(), None, 2)?; // the name is deleted: so is the contact
    /// assert_eq!(
    ///     driver.read_key_values(&contacts),
    ///     vec![("u1".into(), Some("Ada <ada@example.com>".into())), ("u1".into(), None)]
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let joiner: TableJoiner<V, VO, VR> = Arc::new(move |v, o| Some(joiner(v?, o?)));
        self.table_join(other, joiner, JoinKind::Inner, None)
    }

    /// [`join`](Self::join) into the store `materialized` describes (a name, serdes; without a name, a
    /// generated one, `KTABLE-MERGE-STATE-STORE-…`, as in Kafka Streams).
    pub fn join_with<VO: Data, VR: Data + DefaultSerde>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let joiner: TableJoiner<V, VO, VR> = Arc::new(move |v, o| Some(joiner(v?, o?)));
        self.table_join(
            other,
            joiner,
            JoinKind::Inner,
            Some(materialized.with_value_serde_if_missing(VR::default_serde())),
        )
    }

    /// Joins two tables by key into a table that has a row where this one does:
    /// `joiner(value, other value or None)` (Kafka Streams' `KTable#leftJoin(KTable)`).
    pub fn left_join<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let joiner: TableJoiner<V, VO, VR> = Arc::new(move |v, o| Some(joiner(v?, o)));
        self.table_join(other, joiner, JoinKind::Left, None)
    }

    /// [`left_join`](Self::left_join) into the store `materialized` describes.
    pub fn left_join_with<VO: Data, VR: Data + DefaultSerde>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let joiner: TableJoiner<V, VO, VR> = Arc::new(move |v, o| Some(joiner(v?, o)));
        self.table_join(
            other,
            joiner,
            JoinKind::Left,
            Some(materialized.with_value_serde_if_missing(VR::default_serde())),
        )
    }

    /// Joins two tables by key into a table that has a row where either does:
    /// `joiner(value or None, other value or None)` (Kafka Streams' `KTable#outerJoin(KTable)`).
    pub fn outer_join<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let joiner: TableJoiner<V, VO, VR> = Arc::new(move |v, o| (v.is_some() || o.is_some()).then(|| joiner(v, o)));
        self.table_join(other, joiner, JoinKind::Outer, None)
    }

    /// [`outer_join`](Self::outer_join) into the store `materialized` describes.
    pub fn outer_join_with<VO: Data, VR: Data + DefaultSerde>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let joiner: TableJoiner<V, VO, VR> = Arc::new(move |v, o| (v.is_some() || o.is_some()).then(|| joiner(v, o)));
        self.table_join(
            other,
            joiner,
            JoinKind::Outer,
            Some(materialized.with_value_serde_if_missing(VR::default_serde())),
        )
    }

    /// Names and nodes as Kafka Streams' `KTableImpl.doJoin`: the store's name (from `materialized`, else
    /// generated when `materialized` is given), the merge node (the join's name, else `KTABLE-MERGE-`),
    /// then `<name>-join-this` / `KTABLE-JOINTHIS-` below this table and `<name>-join-other` /
    /// `KTABLE-JOINOTHER-` below the other, each connected to the stores of the table it looks up.
    fn table_join<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: TableJoiner<V, VO, VR>,
        kind: JoinKind,
        materialized: Option<Materialized<K, VR>>,
    ) -> KTable<K, VR> {
        let (this_getter, other_getter) = (self.value_getter(), other.value_getter());
        let for_getter = joiner.clone();
        // A left join reads the old values of this side, an outer join of both (Kafka Streams enables
        // them with force).
        if kind != JoinKind::Inner {
            self.old_values.enable(true);
        }
        if kind == JoinKind::Outer {
            other.old_values.enable(true);
        }
        let mut b = self.builder.borrow_mut();
        let store = materialized.as_ref().map(|m| match &m.store_name {
            Some(name) => name.clone(),
            None => b.new_store_name("KTABLE-MERGE-"),
        });
        let merge = b.name_or(self.next_name.clone(), "KTABLE-MERGE-");
        let this_name = b.name_or(self.next_name.as_ref().map(|n| format!("{n}-join-this")), "KTABLE-JOINTHIS-");
        let other_name = b.name_or(self.next_name.as_ref().map(|n| format!("{n}-join-other")), "KTABLE-JOINOTHER-");
        let (this_getter, other_getter) = match (this_getter, other_getter) {
            (Ok(this), Ok(other)) => (this, other),
            (Err(reason), _) | (_, Err(reason)) => {
                b.topology.deferred.push(TopologyError::InvalidJoin { node: merge.clone(), reason });
                return KTable::new(self.builder.clone(), merge, None, None, store);
            }
        };
        let key_serde = pick_or_default(materialized.as_ref().and_then(|m| m.key_serde.clone()), &self.key_serde);
        let value_serde = materialized.as_ref().and_then(|m| m.value_serde.clone());

        // This side's changes look up the other table; the other side's, this table.
        let (on_this, needs_other) = (joiner.clone(), kind == JoinKind::Inner);
        let (keys, getter) = (key_serde.clone(), other_getter.clone());
        let versioned = self.versioned.is_some();
        b.topology.add_node_deferred(processor_def(&this_name, vec![self.node.clone()], move || TableJoinSide {
            other: getter.get(),
            result: on_this.clone(),
            needs_other,
            key_serde: keys.clone(),
            versioned,
        }));
        let on_other: TableJoiner<VO, V, VR> = Arc::new(move |o, v| joiner(v, o));
        let needs_other = kind != JoinKind::Outer;
        let (keys, getter) = (key_serde.clone(), this_getter.clone());
        let versioned = other.versioned.is_some();
        b.topology.add_node_deferred(processor_def(&other_name, vec![other.node.clone()], move || TableJoinSide {
            other: getter.get(),
            result: on_other.clone(),
            needs_other,
            versioned,
            key_serde: keys.clone(),
        }));
        let other_stores: Vec<&str> = other_getter.stores.iter().map(String::as_str).collect();
        b.connect_stores(&this_name, &other_stores);
        let this_stores: Vec<&str> = this_getter.stores.iter().map(String::as_str).collect();
        b.connect_stores(&other_name, &this_stores);

        let mut output = None;
        if let (Some(store), Some(m)) = (&store, &materialized) {
            let Some(value_serde) = &value_serde else {
                let target = format!("the store {store}");
                b.topology.deferred.push(missing_serde::<K, VR>(merge.clone(), target, RecordPart::Value));
                return KTable::new(self.builder.clone(), merge, None, None, Some(store.clone()));
            };
            output =
                Some((store.clone(), m.caching_enabled, store_def(store, m, key_serde.clone(), value_serde.clone())));
        }
        let merge_output = output.as_ref().map(|(store, caching, _)| (store.clone(), key_serde.clone(), *caching));
        b.topology.add_node_deferred(processor_def(&merge, vec![this_name, other_name], move || JoinMerge::<K, VR> {
            output: TableOutput::new(
                merge_output
                    .as_ref()
                    .map(|(store, keys, caching)| AggregateOutput::new(store.clone(), keys.clone(), *caching)),
            ),
        }));
        let getter = match &output {
            Some((store, _, def)) => {
                b.topology.add_store_deferred(def.clone(), &merge);
                GetterSupplier::store(store.clone(), key_serde.clone())
            }
            None => this_getter.join(&other_getter, for_getter),
        };
        // Versioned only when materialized in a versioned store: the sides' history is not the join's.
        let versioned = materialized.as_ref().and_then(Materialized::versioned_history_ms);
        let mut table =
            KTable::new(self.builder.clone(), merge, Some(key_serde), value_serde, store).versioned(versioned);
        // Like Kafka Streams' join merger: asked for old values, it always can.
        table.old_values = std::sync::Arc::new(SendOldValues::default());
        table.getter = Some(getter);
        table
    }
}

/// `KTABLE-JOINTHIS` / `KTABLE-JOINOTHER`: a change of one table, joined with the other table's value
/// for its key (Kafka Streams' `KTableKTableInnerJoin`, `LeftJoin`, `RightJoin`, `OuterJoin`, as
/// `result` and `needs_other` make them).
struct TableJoinSide<K, V, VO, VR> {
    other: Box<dyn ValueGetter<K, VO>>,
    result: TableJoiner<V, VO, VR>,
    /// Whether nothing goes downstream when the other table has no row for the key (an inner join's
    /// sides, a left join's right side).
    needs_other: bool,
    key_serde: Arc<dyn Serde<K>>,
    /// Whether this side's table is versioned: its out-of-order updates are skipped.
    versioned: bool,
}

impl<K: Data, V: Data, VO: Data, VR: Data> Processor<K, Change<V>, K, Change<VR>> for TableJoinSide<K, V, VO, VR> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<(), StreamsError> {
        self.other.init(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), StreamsError> {
        if self.key_serde.is_null(&record.key) {
            ctx.record_dropped("null key in a table-table join");
            return Ok(());
        }
        if record.value.skipped_by_join(ctx, self.versioned) {
            return Ok(());
        }
        let other = self.other.get(ctx, &record.key)?;
        let change = &record.value;
        if other.is_none() && (self.needs_other || (change.new.is_none() && change.old.is_none())) {
            return Ok(());
        }
        let other_value = other.as_ref().map(|o| &o.value);
        let new = (self.result)(change.new.as_ref(), other_value);
        let old = (self.result)(change.old.as_ref(), other_value);
        let timestamp = other.as_ref().map_or(record.timestamp, |o| record.timestamp.max(o.timestamp));
        ctx.forward(Record { key: record.key, value: Change::new(new, old), timestamp, headers: record.headers })
    }
}

/// `KTABLE-MERGE`: where the two sides' results meet; into the join's store when it has one, and
/// downstream (Kafka Streams' `KTableKTableJoinMerger`).
struct JoinMerge<K, VR> {
    output: TableOutput<K, VR>,
}

impl<K: Data, VR: Data> Processor<K, Change<VR>, K, Change<VR>> for JoinMerge<K, VR> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<(), StreamsError> {
        self.output.init(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        record: Record<K, Change<VR>>,
    ) -> Result<(), StreamsError> {
        let Record { key, value, timestamp, headers } = record;
        let update = Record { key, value: value.new, timestamp, headers };
        self.output.forward(ctx, update, |_| value.old, true, false)
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<(), StreamsError> {
        self.output.flush(ctx)
    }

    fn close(&mut self, _ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<(), StreamsError> {
        self.output.close();
        Ok(())
    }
}
