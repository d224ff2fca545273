//! Options for DSL operators, in Kafka Streams' vocabulary: [`Consumed`], [`Produced`], [`Grouped`],
//! [`Materialized`], [`Repartitioned`], [`Branched`]. Each is a small builder; serdes left out are
//! inherited from upstream or taken from the type's `DefaultSerde`.
//!
//! (Kafka's `Named` is [`KStream::named`](super::KStream::named) / [`KTable::named`](super::KTable::named):
//! it names the next operator.)

use std::sync::Arc;

use crate::serde::Serde;
use crate::store::KeyValueBytesStoreSupplier;
pub use crate::task::node::StreamPartitioner;

/// How a source reads a topic: serdes and the source node's name.
pub struct Consumed<K, V> {
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
    pub(crate) name: Option<String>,
}

impl<K, V> Consumed<K, V> {
    /// With these serdes.
    pub fn with(key_serde: Arc<dyn Serde<K>>, value_serde: Arc<dyn Serde<V>>) -> Self {
        Consumed { key_serde: Some(key_serde), value_serde: Some(value_serde), name: None }
    }

    /// Names the source node.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// How a sink writes a topic: serdes, partitioner and the sink node's name.
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

    /// Chooses partitions with `partitioner` (topic, key, value → partition, or `None` for the default
    /// murmur2 of the key bytes).
    pub fn with_partitioner(
        mut self,
        partitioner: impl Fn(&str, &K, &V) -> Option<i32> + Send + Sync + 'static,
    ) -> Self {
        self.partitioner = Some(Arc::new(partitioner));
        self
    }
}

/// How a grouping repartitions: the repartition topic's name and serdes.
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

/// How an aggregation or table keeps its state: the store's name, serdes, kind, changelog and cache.
pub struct Materialized<K, V> {
    pub(crate) store_name: Option<String>,
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
    pub(crate) supplier: Option<Arc<dyn KeyValueBytesStoreSupplier>>,
    pub(crate) logging_enabled: bool,
    pub(crate) caching_enabled: bool,
}

impl<K, V> Default for Materialized<K, V> {
    fn default() -> Self {
        Materialized {
            store_name: None,
            key_serde: None,
            value_serde: None,
            supplier: None,
            logging_enabled: true,
            caching_enabled: true,
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
}

/// How [`KStream::repartition_with`](super::KStream::repartition_with) repartitions: topic name, serdes,
/// partition count and partitioner.
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

    /// With this many partitions (default: the largest partition count upstream).
    pub fn with_partitions(mut self, partitions: u32) -> Self {
        self.partitions = Some(partitions);
        self
    }

    /// Chooses partitions with `partitioner`.
    pub fn with_partitioner(
        mut self,
        partitioner: impl Fn(&str, &K, &V) -> Option<i32> + Send + Sync + 'static,
    ) -> Self {
        self.partitioner = Some(Arc::new(partitioner));
        self
    }
}

/// Names a branch of [`KStream::split`](super::KStream::split).
#[derive(Debug, Clone, Default)]
pub struct Branched {
    pub(crate) name: Option<String>,
}

impl Branched {
    /// A generated name (the split's name and the branch's position, from 1).
    pub fn new() -> Self {
        Self::default()
    }

    /// The branch is called `<split name><name>`.
    pub fn with_name(name: impl Into<String>) -> Self {
        Branched { name: Some(name.into()) }
    }
}
