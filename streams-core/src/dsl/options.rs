//! Options for DSL operators, in Kafka Streams' vocabulary: [`Consumed`], [`Produced`], [`Grouped`],
//! [`Materialized`], [`Repartitioned`], [`Branched`]. Each is a small builder; serdes left out are
//! inherited from upstream or taken from the type's `DefaultSerde`.
//!
//! (Kafka's `Named` is [`KStream::named`](super::KStream::named) / [`KTable::named`](super::KTable::named):
//! it names the next operator.)

use std::collections::BTreeMap;
use std::sync::Arc;

use super::KStream;
use crate::processor::node::StreamPartitioner;
use crate::processor::TimestampExtractor;
use crate::serde::Serde;
use crate::store::{KeyValueBytesStoreSupplier, VersionedBytesStoreSupplier, WindowBytesStoreSupplier};

/// How a source reads a topic: serdes, the source node's name, and where its records' timestamps come
/// from.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use streams_core::dsl::{Consumed, StreamsBuilder};
/// use streams_core::serde::{I64Serde, StringSerde};
/// use streams_core::testing::TopologyTestDriver;
///
/// let builder = StreamsBuilder::new();
/// let consumed = Consumed::with(Arc::new(StringSerde), Arc::new(I64Serde)).with_name("amounts-in");
/// builder.stream_with("amounts", consumed).to("amounts-copy");
/// let topology = builder.build()?;
/// assert!(topology.describe().to_string().contains("Source: amounts-in (topics: [amounts])"));
///
/// let mut driver = TopologyTestDriver::new(topology)?;
/// let amounts = driver.input_topic::<String, i64>("amounts");
/// let copy = driver.output_topic::<String, i64>("amounts-copy");
/// driver.pipe(&amounts, "ada".into(), 5, 0)?;
/// assert_eq!(driver.read_key_values(&copy), vec![("ada".to_string(), 5)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Consumed<K, V> {
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
    pub(crate) name: Option<String>,
    pub(crate) timestamp_extractor: Option<Arc<dyn TimestampExtractor<K, V>>>,
}

impl<K, V> Consumed<K, V> {
    /// With these serdes.
    pub fn with(key_serde: Arc<dyn Serde<K>>, value_serde: Arc<dyn Serde<V>>) -> Self {
        Consumed { key_serde: Some(key_serde), value_serde: Some(value_serde), name: None, timestamp_extractor: None }
    }

    /// Names the source node.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Gives the source's records their timestamps with `extractor` instead of the application's
    /// `default.timestamp.extractor` (see [`TimestampExtractor`], which has an example).
    pub fn with_timestamp_extractor(mut self, extractor: impl TimestampExtractor<K, V>) -> Self {
        self.timestamp_extractor = Some(Arc::new(extractor));
        self
    }
}

/// How a sink writes a topic: serdes, partitioner and the sink node's name.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use streams_core::dsl::{Produced, StreamsBuilder};
/// use streams_core::serde::{I64Serde, StringSerde};
/// use streams_core::testing::TopologyTestDriver;
///
/// let builder = StreamsBuilder::new();
/// let amounts = builder.stream::<String, i64>("amounts");
/// // The upstream serdes, a named sink:
/// amounts.to_with("amounts-copy", Produced::new().with_name("copy-out"));
/// // Explicit serdes, and a partition chosen from the key among the topic's `n` (`None` would leave
/// // it to murmur2):
/// let by_length = Produced::with(Arc::new(StringSerde), Arc::new(I64Serde))
///     .with_partitioner(|_topic, user: &String, _amount, n| Some((user.len() as u32 % n) as i32));
/// amounts.to_with("amounts-by-length", by_length);
/// // A copy of every record in each partition (KIP-837); an empty list would drop it:
/// let everywhere = Produced::new().with_multicast_partitioner(|_, _, _, n| Some((0..n as i32).collect()));
/// amounts.to_with("amounts-everywhere", everywhere);
/// let topology = builder.build()?;
/// assert!(topology.describe().to_string().contains("Sink: copy-out (topic: amounts-copy)"));
///
/// let mut driver = TopologyTestDriver::new(topology)?;
/// let input = driver.input_topic::<String, i64>("amounts");
/// driver.pipe(&input, "ada".into(), 5, 0)?;
/// // The test driver gives every topic one partition, as Kafka Streams' does.
/// let partitioned = driver.output_topic::<String, i64>("amounts-by-length");
/// assert_eq!(driver.read_records(&partitioned)?[0].partition, Some(0));
/// let copy = driver.output_topic::<String, i64>("amounts-copy");
/// assert_eq!(driver.read_records(&copy)?[0].partition, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Produced<K, V> {
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
    pub(crate) partitioner: Option<Arc<StreamPartitioner<K, V>>>,
    pub(crate) name: Option<String>,
}

impl<K, V> Default for Produced<K, V> {
    fn default() -> Self {
        Produced { key_serde: None, value_serde: None, partitioner: None, name: None }
    }
}

impl<K, V> Produced<K, V> {
    /// Inherit the serdes from upstream.
    pub fn new() -> Self {
        Self::default()
    }

    /// With these serdes.
    pub fn with(key_serde: Arc<dyn Serde<K>>, value_serde: Arc<dyn Serde<V>>) -> Self {
        Produced { key_serde: Some(key_serde), value_serde: Some(value_serde), ..Self::default() }
    }

    /// Names the sink node.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Chooses partitions with `partitioner` (topic, key, value and the topic's partition count →
    /// the partition, or `None` for the default murmur2 of the key bytes), as Kafka Streams'
    /// `StreamPartitioner.partition`.
    pub fn with_partitioner(
        mut self,
        partitioner: impl Fn(&str, &K, &V, u32) -> Option<i32> + Send + Sync + 'static,
    ) -> Self {
        self.partitioner = Some(Arc::new(StreamPartitioner::One(Box::new(partitioner))));
        self
    }

    /// Chooses several partitions per record (KIP-837's `StreamPartitioner.partitions`): `None` for the
    /// default, an empty list to drop the record (counted in `dropped_records`), or the partitions to
    /// write a copy of it to, each once.
    pub fn with_multicast_partitioner(
        mut self,
        partitioner: impl Fn(&str, &K, &V, u32) -> Option<Vec<i32>> + Send + Sync + 'static,
    ) -> Self {
        self.partitioner = Some(Arc::new(StreamPartitioner::Multicast(Box::new(partitioner))));
        self
    }
}

/// How a grouping repartitions: the repartition topic's name and serdes.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use streams_core::dsl::{Grouped, StreamsBuilder};
/// use streams_core::serde::{I64Serde, StringSerde};
/// use streams_core::testing::TopologyTestDriver;
///
/// let builder = StreamsBuilder::new();
/// let views = builder.stream::<String, String>("views"); // user -> page
/// // A named repartition topic (the name also names the key-selecting node):
/// views.group_by_with(|_, page| page.clone(), Grouped::with_name("by-page")).count();
/// // A named topic with explicit serdes, set one by one:
/// let by_length =
///     Grouped::with_name("by-length").with_key_serde(Arc::new(I64Serde)).with_value_serde(Arc::new(StringSerde));
/// views.group_by_with(|_, page| page.len() as i64, by_length).count();
/// // Explicit serdes, generated name (after the aggregation's store):
/// let serdes = Grouped::with(Arc::new(StringSerde), Arc::new(StringSerde));
/// views.group_by_with(|user, _| user.to_uppercase(), serdes).count();
///
/// let driver = TopologyTestDriver::new(builder.build()?)?;
/// let topics = driver.input_topics();
/// assert!(topics.contains(&"test-driver-by-page-repartition".to_string()));
/// assert!(topics.contains(&"test-driver-by-length-repartition".to_string()));
/// assert_eq!(topics.iter().filter(|t| t.starts_with("test-driver-KSTREAM-AGGREGATE-STATE-STORE-")).count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Grouped<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
}

impl<K, V> Default for Grouped<K, V> {
    fn default() -> Self {
        Grouped { name: None, key_serde: None, value_serde: None }
    }
}

impl<K, V> Grouped<K, V> {
    /// Names the grouping: a repartition topic becomes `<application.id>-<name>-repartition`.
    pub fn with_name(name: impl Into<String>) -> Self {
        Grouped { name: Some(name.into()), ..Self::default() }
    }

    /// With these serdes for the repartition topic.
    pub fn with(key_serde: Arc<dyn Serde<K>>, value_serde: Arc<dyn Serde<V>>) -> Self {
        Grouped { name: None, key_serde: Some(key_serde), value_serde: Some(value_serde) }
    }

    /// Sets the key serde.
    pub fn with_key_serde(mut self, serde: Arc<dyn Serde<K>>) -> Self {
        self.key_serde = Some(serde);
        self
    }

    /// Sets the value serde.
    pub fn with_value_serde(mut self, serde: Arc<dyn Serde<V>>) -> Self {
        self.value_serde = Some(serde);
        self
    }
}

/// How a stream is joined with a table (Kafka Streams' `Joined`): the join's name, and the serdes of
/// the repartition topic a re-keyed stream goes through first (the key, the stream's values; the
/// table's value serde is accepted for Kafka Streams' sake and not needed here).
///
/// The name names the join node, and the repartition topic `<application.id>-<name>-repartition`.
pub struct Joined<K, V, VT> {
    pub(crate) name: Option<String>,
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
    pub(crate) other_value_serde: Option<Arc<dyn Serde<VT>>>,
    pub(crate) grace: Option<std::time::Duration>,
}

impl<K, V, VT> Default for Joined<K, V, VT> {
    fn default() -> Self {
        Joined { name: None, key_serde: None, value_serde: None, other_value_serde: None, grace: None }
    }
}

impl<K, V, VT> Joined<K, V, VT> {
    /// A join named `name` (Kafka Streams' `Joined.as`).
    pub fn as_name(name: impl Into<String>) -> Self {
        Joined { name: Some(name.into()), ..Self::default() }
    }

    /// With these serdes: the key, the stream's values, the table's values (Kafka Streams'
    /// `Joined.with`).
    pub fn with(
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
        other_value_serde: Arc<dyn Serde<VT>>,
    ) -> Self {
        Joined {
            name: None,
            key_serde: Some(key_serde),
            value_serde: Some(value_serde),
            other_value_serde: Some(other_value_serde),
            grace: None,
        }
    }

    /// Names the join.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the key serde.
    pub fn with_key_serde(mut self, serde: Arc<dyn Serde<K>>) -> Self {
        self.key_serde = Some(serde);
        self
    }

    /// Sets the stream's value serde.
    pub fn with_value_serde(mut self, serde: Arc<dyn Serde<V>>) -> Self {
        self.value_serde = Some(serde);
        self
    }

    /// Sets the table's value serde.
    pub fn with_other_value_serde(mut self, serde: Arc<dyn Serde<VT>>) -> Self {
        self.other_value_serde = Some(serde);
        self
    }

    /// Holds each stream record back until the stream has moved `grace` past its timestamp, then joins
    /// it with the table's value as of its timestamp (Kafka Streams' `withGracePeriod`, KIP-923): table
    /// updates that arrive up to `grace` late still meet the records they belong to. Records leave in
    /// timestamp order; one already older than the stream time minus `grace` joins at once. The table
    /// must be versioned ([`Materialized::as_versioned`]) with a history retention of at least `grace`;
    /// the waiting records are kept in a store `<join name>-Buffer` with a changelog.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use streams_core::dsl::{Consumed, Joined, Materialized, StreamsBuilder};
    /// use streams_core::serde::{I64Serde, StringSerde};
    /// use streams_core::store::Stores;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let history = Stores::persistent_versioned_key_value_store("prices", Duration::from_secs(60));
    /// let consumed = Consumed::with(Arc::new(StringSerde), Arc::new(I64Serde));
    /// let prices = builder.table_with("prices", consumed, Materialized::as_versioned(history));
    /// let joined = Joined::as_name("priced").with_grace_period(Duration::from_secs(10));
    /// builder.stream::<String, i64>("orders").join_with(&prices, |quantity, price| quantity * price, joined).to("totals");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let prices_in = driver.input_topic::<String, Option<i64>>("prices");
    /// let orders = driver.input_topic::<String, i64>("orders");
    /// let totals = driver.output_topic::<String, i64>("totals");
    /// driver.pipe(&orders, "tea".into(), 2, 5_000)?; // waits: the price comes late
    /// driver.pipe(&prices_in, "tea".into(), Some(3), 4_000)?;
    /// driver.pipe(&orders, "tea".into(), 1, 15_000)?; // the stream is 10 s past the first order
    /// assert_eq!(driver.read_key_values(&totals), vec![("tea".to_string(), 6)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_grace_period(mut self, grace: std::time::Duration) -> Self {
        self.grace = Some(grace);
        self
    }
}

/// A partitioner of a foreign-key join's internal topic: topic, key and partition count → a partition,
/// or `None` for the default.
pub(crate) type KeyPartitioner<K> = Arc<dyn Fn(&str, &K, u32) -> Option<i32> + Send + Sync>;

/// How two tables are joined by a foreign key (Kafka Streams' `TableJoined`): the join's name, and the
/// partitioners of the tables' topics when they were written with custom ones (KIP-775), so that the
/// join's internal topics place each key where the table's own topic does.
///
/// The name prefixes the join's nodes, store and internal topics (`<name>-subscription-registration-topic`,
/// `<name>-subscription-store`, `<name>-subscription-response-topic`, ...); the result's store is named
/// by the `Materialized` of the join, not by this name.
pub struct TableJoined<K, KO> {
    pub(crate) name: Option<String>,
    pub(crate) partitioner: Option<KeyPartitioner<K>>,
    pub(crate) other_partitioner: Option<KeyPartitioner<KO>>,
}

impl<K, KO> Default for TableJoined<K, KO> {
    fn default() -> Self {
        TableJoined { name: None, partitioner: None, other_partitioner: None }
    }
}

impl<K, KO> TableJoined<K, KO> {
    /// A join named `name` (Kafka Streams' `TableJoined.as`).
    pub fn as_name(name: impl Into<String>) -> Self {
        TableJoined { name: Some(name.into()), ..Self::default() }
    }

    /// Names the join.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How this table's topic is partitioned (topic, key, partition count → partition, `None`: the
    /// default): the join's answers go to the partition it gives for their key.
    pub fn with_partitioner(
        mut self,
        partitioner: impl Fn(&str, &K, u32) -> Option<i32> + Send + Sync + 'static,
    ) -> Self {
        self.partitioner = Some(Arc::new(partitioner));
        self
    }

    /// How the other table's topic is partitioned: the join's subscriptions go to the partition it
    /// gives for their foreign key.
    pub fn with_other_partitioner(
        mut self,
        partitioner: impl Fn(&str, &KO, u32) -> Option<i32> + Send + Sync + 'static,
    ) -> Self {
        self.other_partitioner = Some(Arc::new(partitioner));
        self
    }
}

/// How two streams are joined (Kafka Streams' `StreamJoined`): the join's name, the base name of its
/// stores, the serdes of its stores and of the repartition topics a re-keyed side goes through, and
/// whether the stores are logged.
pub struct StreamJoined<K, V, VO> {
    pub(crate) name: Option<String>,
    pub(crate) store_name: Option<String>,
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
    pub(crate) other_value_serde: Option<Arc<dyn Serde<VO>>>,
    pub(crate) logging: Option<BTreeMap<String, String>>,
    pub(crate) this_store_supplier: Option<WindowBytesStoreSupplier>,
    pub(crate) other_store_supplier: Option<WindowBytesStoreSupplier>,
}

impl<K, V, VO> Default for StreamJoined<K, V, VO> {
    fn default() -> Self {
        StreamJoined {
            name: None,
            store_name: None,
            key_serde: None,
            value_serde: None,
            other_value_serde: None,
            logging: Some(BTreeMap::new()),
            this_store_supplier: None,
            other_store_supplier: None,
        }
    }
}

impl<K, V, VO> StreamJoined<K, V, VO> {
    /// With these serdes: the key, this stream's values, the other stream's (Kafka Streams'
    /// `StreamJoined.with`).
    pub fn with(
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
        other_value_serde: Arc<dyn Serde<VO>>,
    ) -> Self {
        StreamJoined {
            key_serde: Some(key_serde),
            value_serde: Some(value_serde),
            other_value_serde: Some(other_value_serde),
            ..Self::default()
        }
    }

    /// With these window stores for this side and the other (Kafka Streams' `StreamJoined.with(storeSupplier,
    /// otherStoreSupplier)`); see [`with_this_store_supplier`](Self::with_this_store_supplier).
    pub fn with_store_suppliers(this: WindowBytesStoreSupplier, other: WindowBytesStoreSupplier) -> Self {
        StreamJoined { this_store_supplier: Some(this), other_store_supplier: Some(other), ..Self::default() }
    }

    /// This side's window store comes from `supplier` (Kafka Streams' `withThisStoreSupplier`): its
    /// name is the store's (and its changelog's, `<application.id>-<name>-changelog`), and it is on
    /// RocksDB or in memory as the supplier says; a left or outer join's shared store then is
    /// `<name>-left-shared-join-store` (`-outer-shared-join-store`), of the same kind. The supplier must
    /// keep duplicates (`retain_duplicates`), and its window size and retention must be the join
    /// windows' size and size plus grace: `build()` fails otherwise, as Kafka Streams does. Unlike
    /// Kafka Streams, `with_logging_disabled`/`with_logging_enabled` apply to a supplied store too.
    pub fn with_this_store_supplier(mut self, supplier: WindowBytesStoreSupplier) -> Self {
        self.this_store_supplier = Some(supplier);
        self
    }

    /// The other side's window store comes from `supplier` (Kafka Streams' `withOtherStoreSupplier`),
    /// as in [`with_this_store_supplier`](Self::with_this_store_supplier).
    pub fn with_other_store_supplier(mut self, supplier: WindowBytesStoreSupplier) -> Self {
        self.other_store_supplier = Some(supplier);
        self
    }

    /// Names the join's nodes (`<name>-this-windowed`, `<name>-this-join`, `<name>-merge`, ...) and the
    /// repartition topics of re-keyed sides (`<name>-left-repartition`, `<name>-right-repartition`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Names the join's stores `<store name>-this-join-store`, `<store name>-other-join-store`, ...
    /// (Kafka Streams' `withStoreName`).
    pub fn with_store_name(mut self, store_name: impl Into<String>) -> Self {
        self.store_name = Some(store_name.into());
        self
    }

    /// Sets the key serde.
    pub fn with_key_serde(mut self, serde: Arc<dyn Serde<K>>) -> Self {
        self.key_serde = Some(serde);
        self
    }

    /// Sets this stream's value serde.
    pub fn with_value_serde(mut self, serde: Arc<dyn Serde<V>>) -> Self {
        self.value_serde = Some(serde);
        self
    }

    /// Sets the other stream's value serde.
    pub fn with_other_value_serde(mut self, serde: Arc<dyn Serde<VO>>) -> Self {
        self.other_value_serde = Some(serde);
        self
    }

    /// No changelogs for the join's stores: they start empty on every new instance.
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = None;
        self
    }

    /// Changelogs for the join's stores, with these extra topic configs.
    pub fn with_logging_enabled(mut self, config: BTreeMap<String, String>) -> Self {
        self.logging = Some(config);
        self
    }
}

/// How an aggregation or table keeps its state: the store's name, serdes, kind, changelog and cache.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use streams_core::dsl::{Materialized, StreamsBuilder};
/// use streams_core::serde::{I64Serde, StringSerde};
/// use streams_core::store::Stores;
/// use streams_core::testing::TopologyTestDriver;
///
/// let builder = StreamsBuilder::new();
/// let clicks = builder.stream::<String, String>("clicks").group_by_key();
/// // A named store (its changelog is `<application.id>-click-counts-changelog`):
/// let named = clicks.count_with(Materialized::as_store("click-counts"));
/// // An in-memory store, without changelog or record cache: it starts empty on every new instance.
/// let local = Materialized::as_supplier(Stores::in_memory_key_value_store("local-counts"))
///     .with_logging_disabled()
///     .with_caching_disabled();
/// clicks.count_with(local);
/// // Explicit serdes and a generated name; `new()` with `with_key_serde`/`with_value_serde` is the same.
/// // (`count_with` uses up one generated name first, as Kafka Streams' `count(Materialized)` does.)
/// let generated = clicks.count_with(Materialized::with(Arc::new(StringSerde), Arc::new(I64Serde)));
/// let one_by_one = Materialized::new().with_key_serde(Arc::new(StringSerde)).with_value_serde(Arc::new(I64Serde));
/// let also_generated = clicks.count_with(one_by_one);
/// assert_eq!(named.store_name(), Some("click-counts"));
/// assert_eq!(generated.store_name(), Some("KSTREAM-AGGREGATE-STATE-STORE-0000000004"));
/// assert_eq!(also_generated.store_name(), Some("KSTREAM-AGGREGATE-STATE-STORE-0000000007"));
///
/// let mut driver = TopologyTestDriver::new(builder.build()?)?;
/// let input = driver.input_topic::<String, String>("clicks");
/// driver.pipe(&input, "ada".into(), "/home".into(), 0)?;
/// assert_eq!(driver.store_entries::<String, i64>("click-counts")?, vec![("ada".to_string(), 1)]);
/// assert_eq!(driver.store_entries::<String, i64>("local-counts")?, vec![("ada".to_string(), 1)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Materialized<K, V> {
    pub(crate) store_name: Option<String>,
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
    pub(crate) supplier: Option<Arc<dyn KeyValueBytesStoreSupplier>>,
    /// A versioned store's supplier (KIP-914): the table keeps its history.
    pub(crate) versioned: Option<VersionedBytesStoreSupplier>,
    pub(crate) logging_enabled: bool,
    pub(crate) caching_enabled: bool,
    pub(crate) retention: Option<std::time::Duration>,
}

impl<K, V> Default for Materialized<K, V> {
    fn default() -> Self {
        Materialized {
            store_name: None,
            key_serde: None,
            value_serde: None,
            supplier: None,
            versioned: None,
            logging_enabled: true,
            caching_enabled: true,
            retention: None,
        }
    }
}

impl<K, V> Materialized<K, V> {
    /// A generated store name, inherited or default serdes, the default store, logging and caching on.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store called `name`; its changelog is `<application.id>-<name>-changelog`.
    pub fn as_store(name: impl Into<String>) -> Self {
        Materialized { store_name: Some(name.into()), ..Self::default() }
    }

    /// A store from `supplier` (its name is the supplier's).
    pub fn as_supplier(supplier: impl KeyValueBytesStoreSupplier) -> Self {
        Materialized {
            store_name: Some(supplier.name().to_string()),
            supplier: Some(Arc::new(supplier)),
            ..Self::default()
        }
    }

    /// A versioned store from `supplier` (Kafka Streams' `Materialized.as(VersionedBytesStoreSupplier)`,
    /// KIP-914): the table keeps each key's versions for the supplier's history retention, and a
    /// stream joined with it reads the version valid at each stream record's timestamp. Updates older
    /// than the newest timestamp the store has seen minus the history retention are dropped; updates
    /// that arrive out of order but within it are kept as history and still forwarded, and the
    /// operators that only care about the newest value (table-table and foreign-key joins, `group_by`)
    /// skip them. Never cached. A versioned table cannot be suppressed, nor be a global table.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use streams_core::dsl::{Consumed, Materialized, StreamsBuilder};
    /// use streams_core::serde::{I64Serde, StringSerde};
    /// use streams_core::store::Stores;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let history = Stores::persistent_versioned_key_value_store("prices", Duration::from_secs(60));
    /// let consumed = Consumed::with(Arc::new(StringSerde), Arc::new(I64Serde));
    /// let prices = builder.table_with("prices", consumed, Materialized::as_versioned(history));
    /// builder.stream::<String, i64>("orders").join(&prices, |quantity, price| quantity * price).to("totals");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let (prices_in, orders) = (driver.input_topic::<String, Option<i64>>("prices"), driver.input_topic::<String, i64>("orders"));
    /// let totals = driver.output_topic::<String, i64>("totals");
    /// driver.pipe(&prices_in, "tea".into(), Some(3), 1_000)?;
    /// driver.pipe(&prices_in, "tea".into(), Some(4), 5_000)?;
    /// driver.pipe(&orders, "tea".into(), 2, 2_000)?; // the price at 2 s was 3
    /// assert_eq!(driver.read_key_values(&totals), vec![("tea".to_string(), 6)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_versioned(supplier: VersionedBytesStoreSupplier) -> Self {
        Materialized { store_name: Some(supplier.name().to_string()), versioned: Some(supplier), ..Self::default() }
    }

    /// Whether a store supplier was given (of either kind): windowed stores take none.
    pub(crate) fn has_supplier(&self) -> bool {
        self.supplier.is_some() || self.versioned.is_some()
    }

    /// The history retention of the versioned store, when it is one.
    pub(crate) fn versioned_history_ms(&self) -> Option<i64> {
        self.versioned.as_ref().map(|s| s.history_retention_ms)
    }

    /// With these serdes.
    pub fn with(key_serde: Arc<dyn Serde<K>>, value_serde: Arc<dyn Serde<V>>) -> Self {
        Materialized { key_serde: Some(key_serde), value_serde: Some(value_serde), ..Self::default() }
    }

    /// Sets the key serde.
    pub fn with_key_serde(mut self, serde: Arc<dyn Serde<K>>) -> Self {
        self.key_serde = Some(serde);
        self
    }

    /// Sets the value serde.
    pub fn with_value_serde(mut self, serde: Arc<dyn Serde<V>>) -> Self {
        self.value_serde = Some(serde);
        self
    }

    /// No changelog topic: the store starts empty on a new instance.
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging_enabled = false;
        self
    }

    /// No record cache: every update is forwarded downstream.
    pub fn with_caching_disabled(mut self) -> Self {
        self.caching_enabled = false;
        self
    }

    /// How long a window store keeps a window, from its start (Kafka Streams' `withRetention`; default:
    /// the window size plus the grace period, which is also the least it may be). Only windowed
    /// aggregations have a retention.
    pub fn with_retention(mut self, retention: std::time::Duration) -> Self {
        self.retention = Some(retention);
        self
    }
}

/// How [`KStream::repartition_with`](super::KStream::repartition_with) repartitions: topic name, serdes,
/// partition count and partitioner.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use streams_core::dsl::{Repartitioned, StreamsBuilder};
/// use streams_core::serde::StringSerde;
/// use streams_core::testing::TopologyTestDriver;
///
/// let builder = StreamsBuilder::new();
/// let logins = builder.stream::<String, String>("logins"); // session -> user
/// // A named topic of 4 partitions, partitioned by the session id's length; serdes from upstream:
/// let spread = Repartitioned::with_name("logins-spread")
///     .with_partitions(4)
///     .with_partitioner(|_topic, session: &String, _user, n| Some((session.len() as u32 % n) as i32));
/// logins.repartition_with(spread).to("logins-spread");
/// // Explicit serdes (needed after a key change) and a generated name:
/// let serdes = Repartitioned::with(Arc::new(StringSerde), Arc::new(StringSerde));
/// logins.select_key(|_, user| user.clone()).repartition_with(serdes).to("logins-by-user");
///
/// let mut driver = TopologyTestDriver::new(builder.build()?)?;
/// let input = driver.input_topic::<String, String>("logins");
/// driver.pipe(&input, "session-9".into(), "ada".into(), 0)?;
/// // One partition per topic in the test driver, as in Kafka Streams'.
/// assert_eq!(driver.peek_raw("test-driver-logins-spread-repartition")[0].partition, Some(0));
/// let generated = driver.input_topics().into_iter().filter(|t| t.starts_with("test-driver-KSTREAM-REPARTITION-"));
/// assert_eq!(generated.count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Repartitioned<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
    pub(crate) partitions: Option<u32>,
    pub(crate) partitioner: Option<Arc<StreamPartitioner<K, V>>>,
}

impl<K, V> Default for Repartitioned<K, V> {
    fn default() -> Self {
        Repartitioned { name: None, key_serde: None, value_serde: None, partitions: None, partitioner: None }
    }
}

impl<K, V> Repartitioned<K, V> {
    /// Names the repartition topic `<application.id>-<name>-repartition`.
    pub fn with_name(name: impl Into<String>) -> Self {
        Repartitioned { name: Some(name.into()), ..Self::default() }
    }

    /// With these serdes.
    pub fn with(key_serde: Arc<dyn Serde<K>>, value_serde: Arc<dyn Serde<V>>) -> Self {
        Repartitioned { key_serde: Some(key_serde), value_serde: Some(value_serde), ..Self::default() }
    }

    /// With this key serde (Kafka Streams' `withKeySerde`), so that a named topic can have serdes too.
    pub fn with_key_serde(mut self, serde: Arc<dyn Serde<K>>) -> Self {
        self.key_serde = Some(serde);
        self
    }

    /// With this value serde (Kafka Streams' `withValueSerde`).
    pub fn with_value_serde(mut self, serde: Arc<dyn Serde<V>>) -> Self {
        self.value_serde = Some(serde);
        self
    }

    /// With this many partitions (default: the largest partition count upstream).
    pub fn with_partitions(mut self, partitions: u32) -> Self {
        self.partitions = Some(partitions);
        self
    }

    /// Chooses partitions with `partitioner`, as [`Produced::with_partitioner`].
    pub fn with_partitioner(
        mut self,
        partitioner: impl Fn(&str, &K, &V, u32) -> Option<i32> + Send + Sync + 'static,
    ) -> Self {
        self.partitioner = Some(Arc::new(StreamPartitioner::One(Box::new(partitioner))));
        self
    }

    /// Chooses several partitions per record, as [`Produced::with_multicast_partitioner`].
    pub fn with_multicast_partitioner(
        mut self,
        partitioner: impl Fn(&str, &K, &V, u32) -> Option<Vec<i32>> + Send + Sync + 'static,
    ) -> Self {
        self.partitioner = Some(Arc::new(StreamPartitioner::Multicast(Box::new(partitioner))));
        self
    }
}

/// Names a branch of [`KStream::split`](super::KStream::split), and can run a chain of operators on it
/// where it is declared (Kafka Streams' `Branched`).
///
/// # Examples
///
/// ```
/// use streams_core::dsl::{Branched, StreamsBuilder};
///
/// let builder = StreamsBuilder::new();
/// let branches = builder
///     .stream::<String, i64>("amounts")
///     .split()
///     .branch(|_, v| *v > 0, Branched::with_name("positive"))
///     .branch(|_, v| *v < 0, Branched::new()) // named by its position, from 1
///     .default_branch(Branched::with_name("zero"));
/// assert_eq!(branches.names().collect::<Vec<_>>(), [
///     "KSTREAM-BRANCH-0000000001positive",
///     "KSTREAM-BRANCH-00000000012",
///     "KSTREAM-BRANCH-0000000001zero",
/// ]);
/// ```
pub struct Branched<'a, K, V> {
    pub(crate) name: Option<String>,
    pub(crate) chain: BranchChain<'a, K, V>,
}

/// What a split does with a branch once it is declared. The chain runs then and there, so it may borrow
/// what the code building the topology holds (`'a`).
pub(crate) enum BranchChain<'a, K, V> {
    /// The branch itself is among the split's results.
    Keep,
    /// What the function makes of the branch is among the results, under the branch's name.
    Function(Box<dyn FnOnce(KStream<K, V>) -> KStream<K, V> + 'a>),
    /// The consumer takes the branch; it is not among the results.
    Consumer(Box<dyn FnOnce(KStream<K, V>) + 'a>),
}

impl<K, V> Default for Branched<'_, K, V> {
    fn default() -> Self {
        Branched { name: None, chain: BranchChain::Keep }
    }
}

impl<K, V> std::fmt::Debug for Branched<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let chain = match self.chain {
            BranchChain::Keep => "keep",
            BranchChain::Function(_) => "function",
            BranchChain::Consumer(_) => "consumer",
        };
        f.debug_struct("Branched").field("name", &self.name).field("chain", &chain).finish()
    }
}

impl<'a, K, V> Branched<'a, K, V> {
    /// A generated name (the split's name and the branch's position, from 1).
    pub fn new() -> Self {
        Self::default()
    }

    /// The branch is called `<split name><name>`.
    pub fn with_name(name: impl Into<String>) -> Self {
        Branched { name: Some(name.into()), chain: BranchChain::Keep }
    }

    /// Runs `chain` on the branch as soon as it is declared; what it returns is among the split's
    /// results in the branch's place (Kafka Streams' `Branched.withFunction`). The chain may borrow
    /// from the code that builds the topology: it has run when `branch` returns. Where the chain's body
    /// needs the value type (`map_values(|v| -v)`), write its parameter's type: the compiler checks the
    /// closure before it learns the branch's types from `branch`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::{Branched, KStream, StreamsBuilder};
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// let branches = builder
    ///     .stream::<String, i64>("amounts")
    ///     .split()
    ///     .branch(|_, v| *v < 0, Branched::with_function_named(|s: KStream<String, i64>| s.map_values(|v| -v), "refunds"))
    ///     .default_branch(Branched::with_consumer(|s| s.to("sales")));
    /// // The consumed branch is not among the results.
    /// assert_eq!(branches.names().collect::<Vec<_>>(), ["KSTREAM-BRANCH-0000000001refunds"]);
    /// branches.at(0).unwrap().to("refunds");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let amounts = driver.input_topic::<String, i64>("amounts");
    /// let (refunds, sales) = (driver.output_topic::<String, i64>("refunds"), driver.output_topic::<String, i64>("sales"));
    /// driver.pipe(&amounts, "a".into(), -5, 0)?;
    /// driver.pipe(&amounts, "b".into(), 7, 1)?;
    /// assert_eq!(driver.read_key_values(&refunds), vec![("a".to_string(), 5)]);
    /// assert_eq!(driver.read_key_values(&sales), vec![("b".to_string(), 7)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_function(chain: impl FnOnce(KStream<K, V>) -> KStream<K, V> + 'a) -> Self {
        Branched { name: None, chain: BranchChain::Function(Box::new(chain)) }
    }

    /// [`with_function`](Self::with_function) on the branch `<split name><name>` (Kafka Streams'
    /// `withFunction(chain, name)`).
    pub fn with_function_named(
        chain: impl FnOnce(KStream<K, V>) -> KStream<K, V> + 'a,
        name: impl Into<String>,
    ) -> Self {
        Branched { name: Some(name.into()), chain: BranchChain::Function(Box::new(chain)) }
    }

    /// Hands the branch to `chain` as soon as it is declared; it is not among the split's results
    /// (Kafka Streams' `Branched.withConsumer`). See [`with_function`](Self::with_function).
    pub fn with_consumer(chain: impl FnOnce(KStream<K, V>) + 'a) -> Self {
        Branched { name: None, chain: BranchChain::Consumer(Box::new(chain)) }
    }

    /// [`with_consumer`](Self::with_consumer) on the branch `<split name><name>` (Kafka Streams'
    /// `withConsumer(chain, name)`).
    pub fn with_consumer_named(chain: impl FnOnce(KStream<K, V>) + 'a, name: impl Into<String>) -> Self {
        Branched { name: Some(name.into()), chain: BranchChain::Consumer(Box::new(chain)) }
    }
}
