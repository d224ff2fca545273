//! Reading a table's current value by key (Kafka Streams' `KTableValueGetter`): what a join looks up.
//!
//! A table with a store reads it, seeing first what the table's processor holds in the record cache
//! (the two share it: see `TaskState::store_shared`). A table without a store (a filter or `map_values`
//! that was not materialized) reads its parent's value and applies its operator to it, as Kafka
//! Streams' getters do.

use std::sync::{Arc, Mutex};

use super::cache::RecordCache;
use super::table_store::TableStore;
use super::Data;
use crate::processor::ProcessingContext;
use crate::serde::{to_bytes, Serde};
use crate::store::ValueAndTimestamp;
use crate::sync::LockUnpoisoned;
use crate::StreamsError;

/// One task's reader of a table's values.
pub(crate) trait ValueGetter<K, V>: Send {
    /// Finds the stores it reads; called from the init of the processor that owns it.
    fn init(&mut self, ctx: &mut ProcessingContext<'_>) -> Result<(), StreamsError>;

    /// The table's value of `key` and its timestamp, if it has one.
    fn get(&mut self, ctx: &mut ProcessingContext<'_>, key: &K) -> Result<Option<ValueAndTimestamp<V>>, StreamsError>;

    /// The table's value of `key` at `as_of` when it reads a versioned store ([`is_versioned`](Self::is_versioned));
    /// otherwise its value now.
    fn get_as_of(
        &mut self,
        ctx: &mut ProcessingContext<'_>,
        key: &K,
        as_of: i64,
    ) -> Result<Option<ValueAndTimestamp<V>>, StreamsError>;

    /// Whether the values come from a versioned store (known once initialized): a stream-table join then
    /// reads the table as of each stream record's timestamp.
    fn is_versioned(&self) -> bool;
}

/// Makes a table's getters, one per task, and names the stores they read (the processor that looks the
/// table up is connected to them).
pub(crate) struct GetterSupplier<K, V> {
    make: Arc<dyn Fn() -> Box<dyn ValueGetter<K, V>> + Send + Sync>,
    pub(crate) stores: Vec<String>,
}

impl<K, V> Clone for GetterSupplier<K, V> {
    fn clone(&self) -> Self {
        GetterSupplier { make: self.make.clone(), stores: self.stores.clone() }
    }
}

/// What a table operator does to a value its parent's getter read (`None`: the row is not in this
/// table).
pub(crate) type GetterStep<K, V, V2> =
    Arc<dyn Fn(&K, ValueAndTimestamp<V>) -> Option<ValueAndTimestamp<V2>> + Send + Sync>;

impl<K: Data, V: Data> GetterSupplier<K, V> {
    /// Reads the key-value store `store` (values with timestamps, or a versioned store: found when the
    /// task starts), keyed with `key_serde`.
    pub(crate) fn store(store: String, key_serde: Arc<dyn Serde<K>>) -> Self {
        let stores = vec![store.clone()];
        let make = move || -> Box<dyn ValueGetter<K, V>> {
            Box::new(StoreGetter { store: store.clone(), key_serde: key_serde.clone(), handle: None, cache: None })
        };
        GetterSupplier { make: Arc::new(make), stores }
    }

    /// Reads this table's value, then applies `step` (a table operator without a store of its own).
    pub(crate) fn then<V2: Data>(&self, step: GetterStep<K, V, V2>) -> GetterSupplier<K, V2> {
        let parent = self.make.clone();
        let make =
            move || -> Box<dyn ValueGetter<K, V2>> { Box::new(Stepped { parent: parent(), step: step.clone() }) };
        GetterSupplier { make: Arc::new(make), stores: self.stores.clone() }
    }

    /// Reads this table's and `other`'s values and joins them with `joiner` (`None`: no row), stamped
    /// with the later of the two timestamps (a table-table join without a store of its own).
    pub(crate) fn join<VO: Data, VR: Data>(
        &self,
        other: &GetterSupplier<K, VO>,
        joiner: Arc<dyn Fn(Option<&V>, Option<&VO>) -> Option<VR> + Send + Sync>,
    ) -> GetterSupplier<K, VR> {
        let (this, other_make) = (self.make.clone(), other.make.clone());
        let make = move || -> Box<dyn ValueGetter<K, VR>> {
            Box::new(Joined { this: this(), other: other_make(), joiner: joiner.clone() })
        };
        let mut stores = self.stores.clone();
        stores.extend(other.stores.iter().filter(|s| !self.stores.contains(s)).cloned());
        GetterSupplier { make: Arc::new(make), stores }
    }

    /// A getter for one task.
    pub(crate) fn get(&self) -> Box<dyn ValueGetter<K, V>> {
        (self.make)()
    }
}

/// Reads a table's store, and what its processor holds in the record cache first.
struct StoreGetter<K, V> {
    store: String,
    key_serde: Arc<dyn Serde<K>>,
    handle: Option<TableStore<K, V>>,
    /// The record cache the table's processor shares, when the cache is on.
    cache: Option<Arc<Mutex<RecordCache<K, V>>>>,
}

impl<K: Data, V: Data> ValueGetter<K, V> for StoreGetter<K, V> {
    fn init(&mut self, ctx: &mut ProcessingContext<'_>) -> Result<(), StreamsError> {
        let store = TableStore::find(ctx, &self.store)?;
        self.handle = Some(store);
        // A versioned store is never cached.
        if ctx.task.cache_budget.enabled() && !store.is_versioned() {
            let name = format!("the record cache of {}", self.store);
            self.cache = Some(ctx.task.shared(&name, || Mutex::new(RecordCache::default()))?);
        }
        Ok(())
    }

    fn get(&mut self, ctx: &mut ProcessingContext<'_>, key: &K) -> Result<Option<ValueAndTimestamp<V>>, StreamsError> {
        if let Some(cache) = &self.cache {
            let serialization = |source| StreamsError::Serialization {
                node: "(table lookup)".into(),
                target: self.store.clone(),
                source,
            };
            let bytes = to_bytes(&*self.key_serde, &self.store, key).map_err(serialization)?.unwrap_or_default();
            let cached = cache.lock_unpoisoned().get(&bytes).map(|(value, timestamp)| (value.cloned(), timestamp));
            if let Some((value, timestamp)) = cached {
                return Ok(value.map(|value| ValueAndTimestamp { value, timestamp }));
            }
        }
        self.store()?.get(ctx, key)
    }

    fn get_as_of(
        &mut self,
        ctx: &mut ProcessingContext<'_>,
        key: &K,
        as_of: i64,
    ) -> Result<Option<ValueAndTimestamp<V>>, StreamsError> {
        match self.store()? {
            store @ TableStore::Versioned(_) => store.get_as_of(ctx, key, as_of),
            TableStore::Timestamped(_) => self.get(ctx, key),
        }
    }

    fn is_versioned(&self) -> bool {
        self.handle.is_some_and(|store| store.is_versioned())
    }
}

impl<K: Data, V: Data> StoreGetter<K, V> {
    fn store(&self) -> Result<TableStore<K, V>, StreamsError> {
        self.handle.ok_or_else(|| StreamsError::Internal("a table lookup before its init".into()))
    }
}

/// A table operator's getter: its parent's value, through the operator.
struct Stepped<K, V, V2> {
    parent: Box<dyn ValueGetter<K, V>>,
    step: GetterStep<K, V, V2>,
}

impl<K: Data, V: Data, V2: Data> ValueGetter<K, V2> for Stepped<K, V, V2> {
    fn init(&mut self, ctx: &mut ProcessingContext<'_>) -> Result<(), StreamsError> {
        self.parent.init(ctx)
    }

    fn get(&mut self, ctx: &mut ProcessingContext<'_>, key: &K) -> Result<Option<ValueAndTimestamp<V2>>, StreamsError> {
        Ok(self.parent.get(ctx, key)?.and_then(|value| (self.step)(key, value)))
    }

    fn get_as_of(
        &mut self,
        ctx: &mut ProcessingContext<'_>,
        key: &K,
        as_of: i64,
    ) -> Result<Option<ValueAndTimestamp<V2>>, StreamsError> {
        Ok(self.parent.get_as_of(ctx, key, as_of)?.and_then(|value| (self.step)(key, value)))
    }

    fn is_versioned(&self) -> bool {
        self.parent.is_versioned()
    }
}

/// A table-table join's getter: both sides' values, joined.
struct Joined<K, V, VO, VR> {
    this: Box<dyn ValueGetter<K, V>>,
    other: Box<dyn ValueGetter<K, VO>>,
    joiner: Arc<dyn Fn(Option<&V>, Option<&VO>) -> Option<VR> + Send + Sync>,
}

impl<K: Data, V: Data, VO: Data, VR: Data> ValueGetter<K, VR> for Joined<K, V, VO, VR> {
    fn init(&mut self, ctx: &mut ProcessingContext<'_>) -> Result<(), StreamsError> {
        self.this.init(ctx)?;
        self.other.init(ctx)
    }

    fn get(&mut self, ctx: &mut ProcessingContext<'_>, key: &K) -> Result<Option<ValueAndTimestamp<VR>>, StreamsError> {
        let (this, other) = (self.this.get(ctx, key)?, self.other.get(ctx, key)?);
        let timestamp = this.iter().map(|t| t.timestamp).chain(other.iter().map(|o| o.timestamp)).max();
        let value = (self.joiner)(this.as_ref().map(|t| &t.value), other.as_ref().map(|o| &o.value));
        Ok(value.zip(timestamp).map(|(value, timestamp)| ValueAndTimestamp { value, timestamp }))
    }

    /// A join's result has no history, even of versioned tables (as in Kafka Streams): its value now.
    fn get_as_of(
        &mut self,
        ctx: &mut ProcessingContext<'_>,
        key: &K,
        _as_of: i64,
    ) -> Result<Option<ValueAndTimestamp<VR>>, StreamsError> {
        self.get(ctx, key)
    }

    fn is_versioned(&self) -> bool {
        false
    }
}
