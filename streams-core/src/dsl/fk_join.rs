//! Foreign-key table-table joins (Kafka Streams' `KTable#join(other, foreignKeyExtractor, ...)`,
//! KIP-213): each row of this table joined with the row of the other table its value refers to.
//!
//! The two tables are partitioned by different keys, so the join is a round trip through two internal
//! topics, as Kafka Streams builds it: each change of a row sends a subscription, keyed by the foreign
//! key, to the other table's task (registration topic); that task keeps the subscriptions in a store
//! keyed `foreign key ‖ primary key`, answers each with the foreign row, and answers every subscriber
//! again when the foreign row changes (response topic, back to the row's partition). An answer carries
//! the hash of the row value that asked, and is dropped if the row has changed since: results never go
//! backwards when answers overtake each other. The records and the store are byte for byte Kafka
//! Streams' ([`super::subscription`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::aggregate::AggregateOutput;
use super::builder::{missing_serde, pick_or_default, BuilderState};
use super::change::Change;
use super::getter::{GetterSupplier, ValueGetter};
use super::grouped::store_def;
use super::ktable::{SendOldValues, TableOutput};
use super::options::{KeyPartitioner, Materialized, TableJoined};
use super::subscription::{
    combined_key, subscribers_prefix, value_hash, Instruction, Response, ResponseSerde, Subscription,
    SubscriptionSerde, ValueHash,
};
use super::{Data, KTable};
use crate::processor::node::StreamPartitioner;
use crate::processor::{ProcessingContext, Processor, ProcessorContext, StoreHandle};
use crate::record::RecordPart;
use crate::serde::{to_bytes, BytesSerde, DefaultSerde, OptionSerde, Serde};
use crate::store::{dsl_key_value_store_def, ValueAndTimestamp, ValueAndTimestampSerde};
use crate::topology::{processor_def, sink_def, source_def, SinkSpec, SourceTopics, TopicRef};
use crate::{Record, StreamsError};

/// Finds a row's foreign key (`None`: the row refers to no row of the other table).
type ForeignKeyExtractor<K, V, KO> = Arc<dyn Fn(&K, &V) -> Option<KO> + Send + Sync>;
/// Makes a result from a row and its foreign row, if any (`None`: no result, an inner join's answer
/// without a foreign row).
type ForeignJoiner<V, VO, VR> = Arc<dyn Fn(&V, Option<&VO>) -> Option<VR> + Send + Sync>;

impl<K: Data + DefaultSerde, V: Data> KTable<K, V> {
    /// Joins each row with the row of `other` whose key `foreign_key` finds in it (Kafka Streams'
    /// `KTable#join(other, foreignKeyExtractor, joiner)`): the result has a row for each row of this
    /// table whose foreign row exists, `joiner(value, foreign value)`, under this table's key. A change
    /// of either row updates the result; a row whose foreign key is `None`, or whose foreign row is
    /// deleted, leaves the result (a delete goes downstream). `other` may be partitioned any way: the
    /// join goes through two internal topics (`…-subscription-registration-topic`,
    /// `…-subscription-response-topic`) and a subscription store on the other table's side.
    ///
    /// # Examples
    ///
    /// ```
    /// use streams_core::dsl::StreamsBuilder;
    /// use streams_core::testing::TopologyTestDriver;
    ///
    /// let builder = StreamsBuilder::new();
    /// // order id → product id; product id → product name
    /// let orders = builder.table::<String, String>("orders");
    /// let products = builder.table::<String, String>("products");
    /// orders
    ///     .join_on_foreign_key(&products, |_order, product| Some(product.clone()), |product, name| format!("{product}: {name}"))
    ///     .to_stream()
    ///     .to("orders-with-products");
    ///
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let (o, p) = (driver.input_topic::<String, Option<String>>("orders"), driver.input_topic::<String, Option<String>>("products"));
    /// let out = driver.output_topic::<String, Option<String>>("orders-with-products");
    /// driver.pipe(&p, "p1".into(), Some("tea".into()), 0)?;
    /// driver.pipe(&o, "o1".into(), Some("p1".into()), 1)?;
    /// driver.pipe(&p, "p1".into(), Some("green tea".into()), 2)?; // every order of p1 is updated
    /// assert_eq!(
    ///     driver.read_key_values(&out),
    ///     vec![("o1".into(), Some("p1: tea".into())), ("o1".into(), Some("p1: green tea".into()))]
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join_on_foreign_key<KO: Data, VO: Data, VR: Data + DefaultSerde>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: impl Fn(&K, &V) -> Option<KO> + Send + Sync + 'static,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.join_on_foreign_key_with(other, foreign_key, joiner, TableJoined::default(), Materialized::default())
    }

    /// [`join_on_foreign_key`](Self::join_on_foreign_key) with a name and partitioners
    /// ([`TableJoined`]), into the store `materialized` describes.
    pub fn join_on_foreign_key_with<KO: Data, VO: Data, VR: Data + DefaultSerde>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: impl Fn(&K, &V) -> Option<KO> + Send + Sync + 'static,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        table_joined: TableJoined<K, KO>,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let joiner: ForeignJoiner<V, VO, VR> = Arc::new(move |v, o| o.map(|o| joiner(v, o)));
        let materialized = materialized.with_value_serde_if_missing(VR::default_serde());
        self.foreign_key_join(other, Arc::new(foreign_key), joiner, false, table_joined, materialized)
    }

    /// Joins each row with the row of `other` whose key `foreign_key` finds in it, if any (Kafka
    /// Streams' `KTable#leftJoin(other, foreignKeyExtractor, joiner)`): the result has a row for each
    /// row of this table, `joiner(value, foreign value or None)`, also when its foreign key is `None`.
    pub fn left_join_on_foreign_key<KO: Data, VO: Data, VR: Data + DefaultSerde>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: impl Fn(&K, &V) -> Option<KO> + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.left_join_on_foreign_key_with(other, foreign_key, joiner, TableJoined::default(), Materialized::default())
    }

    /// [`left_join_on_foreign_key`](Self::left_join_on_foreign_key) with a name and partitioners
    /// ([`TableJoined`]), into the store `materialized` describes.
    pub fn left_join_on_foreign_key_with<KO: Data, VO: Data, VR: Data + DefaultSerde>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: impl Fn(&K, &V) -> Option<KO> + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        table_joined: TableJoined<K, KO>,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        let joiner: ForeignJoiner<V, VO, VR> = Arc::new(move |v, o| Some(joiner(v, o)));
        let materialized = materialized.with_value_serde_if_missing(VR::default_serde());
        self.foreign_key_join(other, Arc::new(foreign_key), joiner, true, table_joined, materialized)
    }

    /// Builds the join as Kafka Streams' `KTableImpl.doJoinOnForeignKey` does, names in its order. The
    /// result is a table processor (`KTABLE-FK-JOIN-OUTPUT`) with a store when `materialized` names one;
    /// otherwise it gets its generated store only if an operator below needs to read it or its old
    /// values (decided when the topology is built), as Kafka Streams materializes it then.
    fn foreign_key_join<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        extractor: ForeignKeyExtractor<K, V, KO>,
        joiner: ForeignJoiner<V, VO, VR>,
        left: bool,
        table_joined: TableJoined<K, KO>,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        // Both sides send old values: this side's unsubscribe the old foreign key.
        other.old_values.enable(true);
        self.old_values.enable(true);
        let (this_getter, other_getter) = (self.value_getter(), other.value_getter());
        let mut b = self.builder.borrow_mut();
        let names = FkJoinNames::new(&mut b, table_joined.name.as_deref(), materialized.store_name.clone());

        let key_serde = pick_or_default(None, &self.key_serde);
        let (value_serde, fk_serde, foreign_value_serde) =
            match (self.value_serde.clone(), other.key_serde.clone(), other.value_serde.clone()) {
                (Some(value), Some(foreign_key), Some(foreign_value)) => (value, foreign_key, foreign_value),
                (value, _, _) => {
                    let error = if value.is_none() {
                        let target = format!("the hash of this table's values ({})", names.registration_topic);
                        missing_serde::<K, V>(names.send.clone(), target, RecordPart::Value)
                    } else {
                        let target = format!("the topics {} and {}", names.registration_topic, names.response_topic);
                        missing_serde::<KO, VO>(names.send.clone(), target, RecordPart::KeyOrValue)
                    };
                    b.topology.deferred.push(error);
                    return KTable::new(self.builder.clone(), names.result, None, None, None);
                }
            };
        let (this_getter, other_getter) = match (this_getter, other_getter) {
            (Ok(this), Ok(other)) => (this, other),
            (Err(reason), _) | (_, Err(reason)) => {
                b.topology.deferred.push(crate::TopologyError::InvalidJoin { node: names.send.clone(), reason });
                return KTable::new(self.builder.clone(), names.result, None, None, None);
            }
        };
        let serdes = Arc::new(FkSerdes {
            key: key_serde.clone(),
            value: value_serde,
            foreign_key: fk_serde.clone(),
            registration_topic: names.registration_topic.clone(),
        });

        let (this_versioned, other_versioned) = (self.versioned.is_some(), other.versioned.is_some());
        // This side: each change subscribes its row to its foreign key.
        let (send_serdes, send_extractor) = (serdes.clone(), extractor);
        b.topology.add_node_deferred(processor_def(&names.send, vec![self.node.clone()], move || SubscriptionSend {
            extractor: send_extractor.clone(),
            left,
            serdes: send_serdes.clone(),
            versioned: this_versioned,
        }));
        let registration = TopicRef { name: names.registration_topic.clone(), internal: true };
        let registration_key: Arc<dyn Serde<Option<KO>>> = Arc::new(OptionSerde::new(fk_serde.clone()));
        let subscription_serde: Arc<dyn Serde<Subscription<K>>> = Arc::new(SubscriptionSerde::new(key_serde.clone()));
        let other_partitioner = table_joined.other_partitioner.map(|choose: KeyPartitioner<KO>| {
            let place = move |topic: &str, key: &Option<KO>, _: &Subscription<K>, n: u32| {
                key.as_ref().and_then(|key| choose(topic, key, n))
            };
            Arc::new(StreamPartitioner::One(Box::new(place)))
        });
        b.topology.add_node_deferred(sink_def(
            &names.registration_sink,
            vec![names.send.clone()],
            SinkSpec::Fixed(registration.clone()),
            registration_key.clone(),
            subscription_serde.clone(),
            other_partitioner,
        ));
        b.topology.add_node_deferred(source_def(
            &names.registration_source,
            SourceTopics::Names(vec![registration]),
            registration_key,
            subscription_serde.clone(),
            None,
        ));
        b.topology.add_repartition_topic(&names.registration_topic, None);
        b.topology.copartition_with_readers(&names.registration_topic);

        // The other side: the subscriptions, kept and answered; and answered again on each change.
        let stored: Arc<dyn Serde<ValueAndTimestamp<Subscription<K>>>> =
            Arc::new(ValueAndTimestampSerde::new(subscription_serde));
        let subscriptions = dsl_key_value_store_def(&names.store, Arc::new(BytesSerde), stored, Some(BTreeMap::new()));
        let (store, receive_serdes) = (names.store.clone(), serdes.clone());
        b.topology.add_node_deferred(processor_def(
            &names.receive,
            vec![names.registration_source.clone()],
            move || SubscriptionReceive { store: store.clone(), handle: None, serdes: receive_serdes.clone() },
        ));
        b.topology.add_store_deferred(subscriptions, &names.receive);
        let foreign = other_getter.clone();
        let lookup = processor_def::<Option<KO>, Subscription<K>, K, Response<VO>, _>(
            &names.lookup,
            vec![names.receive.clone()],
            move || SubscriptionLookup { foreign: foreign.get() },
        );
        b.topology.add_node_deferred(lookup);
        b.connect_stores(&names.lookup, &other_getter.stores.iter().map(String::as_str).collect::<Vec<_>>());
        let (store, foreign_serdes) = (names.store.clone(), serdes.clone());
        let foreign_change = processor_def::<KO, Change<VO>, K, Response<VO>, _>(
            &names.foreign_change,
            vec![other.node.clone()],
            move || ForeignChange {
                store: store.clone(),
                handle: None,
                serdes: foreign_serdes.clone(),
                versioned: other_versioned,
            },
        );
        b.topology.add_node_deferred(foreign_change);
        b.connect_stores(&names.foreign_change, &[&names.store]);
        let response = TopicRef { name: names.response_topic.clone(), internal: true };
        let response_serde: Arc<dyn Serde<Response<VO>>> = Arc::new(ResponseSerde::new(foreign_value_serde));
        let partitioner = table_joined.partitioner;
        // An answer goes back to the partition its subscription came from, unless the table's own
        // partitioner says where its key lives.
        let place = move |topic: &str, key: &K, response: &Response<VO>, n: u32| match &partitioner {
            Some(choose) => choose(topic, key, n),
            None => response.primary_partition,
        };
        b.topology.add_node_deferred(sink_def(
            &names.response_sink,
            vec![names.lookup.clone(), names.foreign_change.clone()],
            SinkSpec::Fixed(response.clone()),
            key_serde.clone(),
            response_serde.clone(),
            Some(Arc::new(StreamPartitioner::One(Box::new(place)))),
        ));
        b.topology.add_node_deferred(source_def(
            &names.response_source,
            SourceTopics::Names(vec![response]),
            key_serde.clone(),
            response_serde,
            None,
        ));
        b.topology.add_repartition_topic(&names.response_topic, None);
        b.topology.copartition_with_readers(&names.response_topic);

        // Back on this side: answers for the row's current value make results.
        let (this, resolver_serdes) = (this_getter.clone(), serdes);
        b.topology.add_node_deferred(processor_def(&names.resolver, vec![names.response_source.clone()], move || {
            ResponseResolver { this: this.get(), joiner: joiner.clone(), serdes: resolver_serdes.clone() }
        }));
        b.connect_stores(&names.resolver, &this_getter.stores.iter().map(String::as_str).collect::<Vec<_>>());

        // The result: with a store if named, else if an operator below comes to need one (known when
        // the topology is built: `stored` is decided then, before any task makes the processor).
        let result_keys = pick_or_default(materialized.key_serde.clone(), &self.key_serde);
        let value_serde = materialized.value_serde.clone();
        let old_values = Arc::new(if names.stored { SendOldValues::default() } else { SendOldValues::source() });
        let stored = Arc::new(AtomicBool::new(names.stored));
        let (store, caching, keys, has_store) =
            (names.result_store.clone(), materialized.caching_enabled, result_keys.clone(), stored.clone());
        b.topology.add_node_deferred(processor_def(&names.result, vec![names.resolver.clone()], move || {
            let output = has_store
                .load(Ordering::Relaxed)
                .then(|| AggregateOutput::<K, VR>::new(store.clone(), keys.clone(), caching));
            FkJoinResult { output: TableOutput::new(output) }
        }));
        let def = value_serde
            .clone()
            .map(|values| store_def(&names.result_store, &materialized, result_keys.clone(), values));
        let (result, result_store, asked) = (names.result.clone(), names.result_store.clone(), old_values.clone());
        b.finish_with(move |topology| {
            if !asked.is_materialized() {
                return;
            }
            stored.store(true, Ordering::Relaxed);
            match def {
                Some(def) => topology.add_store_deferred(def, &result),
                None => {
                    let target = format!("the store {result_store}");
                    topology.deferred.push(missing_serde::<K, VR>(result.clone(), target, RecordPart::Value));
                }
            }
        });
        let mut table = KTable::new(
            self.builder.clone(),
            names.result,
            Some(result_keys.clone()),
            value_serde,
            names.stored.then(|| names.result_store.clone()),
        );
        table.getter = Some(GetterSupplier::store(names.result_store, result_keys));
        table.old_values = old_values;
        table.versioned(materialized.versioned_history_ms())
    }
}

/// The names of a foreign-key join's nodes, store and topics, in the order Kafka Streams takes them
/// from the builder's counter (a given name still takes a number).
struct FkJoinNames {
    registration_topic: String,
    send: String,
    registration_sink: String,
    registration_source: String,
    store: String,
    receive: String,
    lookup: String,
    foreign_change: String,
    response_topic: String,
    response_sink: String,
    response_source: String,
    resolver: String,
    result: String,
    result_store: String,
    /// Whether the result has a store whatever happens below (`Materialized` names one).
    stored: bool,
}

impl FkJoinNames {
    fn new(b: &mut BuilderState, name: Option<&str>, store_name: Option<String>) -> Self {
        let mut next = |suffix: &str, prefix: &str| b.name_or(name.map(|n| format!("{n}{suffix}")), prefix);
        let registration_topic =
            format!("{}-topic", next("-subscription-registration", "KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-"));
        let send = next("-subscription-registration-processor", "KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-");
        let registration_sink = next("-subscription-registration-sink", "KTABLE-SINK-");
        let registration_source = next("-subscription-registration-source", "KTABLE-SOURCE-");
        let store = next("-subscription-store", "KTABLE-FK-JOIN-SUBSCRIPTION-STATE-STORE-");
        let receive = next("-subscription-receive", "KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR-");
        let lookup = next("-subscription-join-foreign", "KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR-");
        let foreign_change = next("-foreign-join-subscription", "KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR-");
        let response_topic =
            format!("{}-topic", next("-subscription-response", "KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-"));
        let response_sink = next("-subscription-response-sink", "KTABLE-SINK-");
        let response_source = next("-subscription-response-source", "KTABLE-SOURCE-");
        let resolver =
            next("-subscription-response-resolver", "KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-RESOLVER-PROCESSOR-");
        let result = next("-result", "KTABLE-FK-JOIN-OUTPUT-");
        let stored = store_name.is_some();
        let result_store = store_name.unwrap_or_else(|| b.new_store_name("KTABLE-FK-JOIN-OUTPUT-"));
        FkJoinNames {
            registration_topic,
            send,
            registration_sink,
            registration_source,
            store,
            receive,
            lookup,
            foreign_change,
            response_topic,
            response_sink,
            response_source,
            resolver,
            result,
            result_store,
            stored,
        }
    }
}

/// The serdes the join's processors write bytes with: this table's key and value, the foreign key.
/// What they are given as the topic is Kafka Streams' (`<application.id>-<registration topic>-pk`,
/// `-fk`, `-vh`), for serdes that look at it.
struct FkSerdes<K, V, KO> {
    key: Arc<dyn Serde<K>>,
    value: Arc<dyn Serde<V>>,
    foreign_key: Arc<dyn Serde<KO>>,
    registration_topic: String,
}

impl<K: Data, V: Data, KO: Data> FkSerdes<K, V, KO> {
    fn bytes<T: 'static>(
        ctx: &ProcessingContext<'_>,
        serde: &dyn Serde<T>,
        topic: String,
        value: &T,
    ) -> Result<Option<Vec<u8>>, StreamsError> {
        to_bytes(serde, &topic, value).map_err(|source| StreamsError::Serialization {
            node: ctx.node_name().to_string(),
            target: topic,
            source,
        })
    }

    fn topic(&self, ctx: &ProcessingContext<'_>, suffix: &str) -> String {
        format!("{}-{}{suffix}", ctx.application_id(), self.registration_topic)
    }

    /// The foreign key's bytes (`None`: it is written as null).
    fn foreign_key_bytes(&self, ctx: &ProcessingContext<'_>, key: &KO) -> Result<Option<Vec<u8>>, StreamsError> {
        Self::bytes(ctx, &*self.foreign_key, self.topic(ctx, "-fk"), key)
    }

    /// The subscription store's key of `primary_key`'s subscription to `foreign_key`.
    fn store_key(
        &self,
        ctx: &ProcessingContext<'_>,
        foreign_key: &KO,
        primary_key: &K,
    ) -> Result<Vec<u8>, StreamsError> {
        let fk = self.foreign_key_bytes(ctx, foreign_key)?.unwrap_or_default();
        let pk = Self::bytes(ctx, &*self.key, self.topic(ctx, "-pk"), primary_key)?.unwrap_or_default();
        Ok(combined_key(&fk, &pk))
    }

    /// The hash of a row's value (none for a value written as null).
    fn hash(&self, ctx: &ProcessingContext<'_>, value: &V) -> Result<Option<ValueHash>, StreamsError> {
        Ok(Self::bytes(ctx, &*self.value, self.topic(ctx, "-vh"), value)?.map(|bytes| value_hash(&bytes)))
    }
}

/// `KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION`: a change of a row sends subscriptions to its foreign
/// keys (Kafka Streams 4.x's `SubscriptionSendProcessorSupplier`): unsubscribe the old key when it
/// changed, subscribe the new one; an inner join sends nothing for a row without a foreign key (and
/// deletes the result of one that lost it), a left join subscribes it to no key, which answers at once.
struct SubscriptionSend<K, V, KO> {
    extractor: ForeignKeyExtractor<K, V, KO>,
    left: bool,
    serdes: Arc<FkSerdes<K, V, KO>>,
    /// Whether this table's output is versioned: out-of-order updates are skipped.
    versioned: bool,
}

impl<K: Data, V: Data, KO: Data> Processor<K, Change<V>, Option<KO>, Subscription<K>> for SubscriptionSend<K, V, KO> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Option<KO>, Subscription<K>>,
        record: Record<K, Change<V>>,
    ) -> Result<(), StreamsError> {
        let Record { key, value: change, timestamp, headers } = record;
        if change.skipped_by_join(ctx, self.versioned) || (change.new.is_none() && change.old.is_none()) {
            return Ok(());
        }
        let old_fk = change.old.as_ref().and_then(|v| (self.extractor)(&key, v));
        let new_fk = change.new.as_ref().and_then(|v| (self.extractor)(&key, v));
        let hash = match &change.new {
            Some(v) => self.serdes.hash(ctx, v)?,
            None => None,
        };
        let changed = match (&old_fk, &new_fk) {
            (Some(old), Some(new)) => {
                self.serdes.foreign_key_bytes(ctx, old)? != self.serdes.foreign_key_bytes(ctx, new)?
            }
            (old, new) => old.is_some() != new.is_some(),
        };
        // The task's partition: the record's, also when a cache flush at commit forwards the change
        // (Kafka Streams keeps the cached record's context for it).
        let primary_partition = Some(ctx.task_id().partition);
        let mut sends: Vec<(Option<KO>, Instruction)> = Vec::with_capacity(2);
        if self.left {
            if let Some(old) = old_fk.filter(|_| changed) {
                sends.push((Some(old), Instruction::DeleteKeyNoPropagate));
            }
            sends.push((new_fk, Instruction::PropagateNullIfNoForeignValue));
        } else {
            match (old_fk, change.new.is_some(), new_fk) {
                // Deleted: the result row goes.
                (Some(old), false, _) => sends.push((Some(old), Instruction::DeleteKeyAndPropagate)),
                // Lost its foreign key: the result row goes, and the record counts as dropped (4.2+).
                (Some(old), true, None) => {
                    ctx.record_late("a row without a foreign key in an inner foreign-key join");
                    sends.push((Some(old), Instruction::DeleteKeyAndPropagate));
                }
                (Some(old), true, Some(new)) if changed => {
                    sends.push((Some(old), Instruction::DeleteKeyNoPropagate));
                    sends.push((Some(new), Instruction::PropagateNullIfNoForeignValue));
                }
                (_, true, Some(new)) => sends.push((Some(new), Instruction::PropagateOnlyIfForeignValue)),
                (None, true, None) => ctx.record_dropped("null foreign key in a foreign-key join"),
                (None, false, _) => {}
            }
        }
        for (foreign_key, instruction) in sends {
            let subscription = Subscription { hash, instruction, primary_key: key.clone(), primary_partition };
            ctx.forward(Record { key: foreign_key, value: subscription, timestamp, headers: headers.clone() })?;
        }
        Ok(())
    }
}

/// The first `KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR`: keeps (or removes) each subscription in the
/// subscription store (Kafka Streams' `SubscriptionReceiveProcessorSupplier`). A left join's
/// subscription to no key is answered without being kept.
struct SubscriptionReceive<K, V, KO> {
    store: String,
    handle: Option<StoreHandle<Vec<u8>, ValueAndTimestamp<Subscription<K>>>>,
    serdes: Arc<FkSerdes<K, V, KO>>,
}

impl<K: Data, V: Data, KO: Data> Processor<Option<KO>, Subscription<K>, Option<KO>, Subscription<K>>
    for SubscriptionReceive<K, V, KO>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Option<KO>, Subscription<K>>) -> Result<(), StreamsError> {
        self.handle = Some(ctx.store_handle(&self.store)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Option<KO>, Subscription<K>>,
        record: Record<Option<KO>, Subscription<K>>,
    ) -> Result<(), StreamsError> {
        let Some(foreign_key) = &record.key else {
            if record.value.instruction != Instruction::PropagateNullIfNoForeignValue {
                ctx.record_dropped("a foreign-key join subscription without a foreign key");
                return Ok(());
            }
            return ctx.forward(record);
        };
        let store_key = self.serdes.store_key(ctx, foreign_key, &record.value.primary_key)?;
        let handle = self.handle.ok_or_else(|| StreamsError::Internal("a subscription before its init".into()))?;
        let Record { key, value, timestamp, headers } = record;
        let value = if value.instruction.unsubscribes() {
            ctx.store_mut(handle)?.delete(&store_key)?;
            value
        } else {
            let kept = ValueAndTimestamp { value, timestamp };
            ctx.store_mut(handle)?.put(&store_key, &kept)?;
            kept.value
        };
        ctx.forward(Record { key, value, timestamp, headers })
    }
}

/// The second `KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR`: answers a subscription with the foreign row, as
/// its instruction says (Kafka Streams' `SubscriptionJoinProcessorSupplier`), stamped with the later of
/// the two timestamps.
struct SubscriptionLookup<KO, VO> {
    foreign: Box<dyn ValueGetter<KO, VO>>,
}

impl<K: Data, KO: Data, VO: Data> Processor<Option<KO>, Subscription<K>, K, Response<VO>>
    for SubscriptionLookup<KO, VO>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Response<VO>>) -> Result<(), StreamsError> {
        self.foreign.init(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Response<VO>>,
        record: Record<Option<KO>, Subscription<K>>,
    ) -> Result<(), StreamsError> {
        let found = match &record.key {
            Some(foreign_key) => self.foreign.get(ctx, foreign_key)?,
            None => None,
        };
        let timestamp = found.as_ref().map_or(record.timestamp, |f| record.timestamp.max(f.timestamp));
        let Subscription { hash, instruction, primary_key, primary_partition } = record.value;
        let foreign_value = match instruction {
            Instruction::DeleteKeyNoPropagate => return Ok(()),
            Instruction::DeleteKeyAndPropagate => None,
            Instruction::PropagateNullIfNoForeignValue => found.map(|f| f.value),
            Instruction::PropagateOnlyIfForeignValue => match found {
                Some(f) => Some(f.value),
                None => return Ok(()),
            },
        };
        let response = Response { hash, foreign_value, primary_partition };
        ctx.forward(Record { key: primary_key, value: response, timestamp, headers: record.headers })
    }
}

/// The third `KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR`: a change of a foreign row answers every row
/// subscribed to it, in the store's key order (Kafka Streams' `ForeignTableJoinProcessorSupplier`),
/// with the foreign record's timestamp and headers.
struct ForeignChange<K, V, KO> {
    store: String,
    handle: Option<StoreHandle<Vec<u8>, ValueAndTimestamp<Subscription<K>>>>,
    serdes: Arc<FkSerdes<K, V, KO>>,
    /// Whether the other table's output is versioned: out-of-order updates are skipped.
    versioned: bool,
}

impl<K: Data, V: Data, KO: Data, VO: Data> Processor<KO, Change<VO>, K, Response<VO>> for ForeignChange<K, V, KO> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Response<VO>>) -> Result<(), StreamsError> {
        self.handle = Some(ctx.store_handle(&self.store)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Response<VO>>,
        record: Record<KO, Change<VO>>,
    ) -> Result<(), StreamsError> {
        let Some(foreign_key) = self.serdes.foreign_key_bytes(ctx, &record.key)? else {
            ctx.record_dropped("null key in a foreign-key join's other table");
            return Ok(());
        };
        if record.value.skipped_by_join(ctx, self.versioned) {
            return Ok(());
        }
        let handle = self.handle.ok_or_else(|| StreamsError::Internal("a foreign change before its init".into()))?;
        let subscribers: Vec<Subscription<K>> = ctx
            .store_mut(handle)?
            .prefix_scan(&subscribers_prefix(&foreign_key))?
            .map(|entry| entry.map(|(_, kept)| kept.value))
            .collect::<Result<_, _>>()?;
        for subscriber in subscribers {
            let response = Response {
                hash: subscriber.hash,
                foreign_value: record.value.new.clone(),
                primary_partition: subscriber.primary_partition,
            };
            let answer = Record {
                key: subscriber.primary_key,
                value: response,
                timestamp: record.timestamp,
                headers: record.headers.clone(),
            };
            ctx.forward(answer)?;
        }
        Ok(())
    }
}

/// `KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-RESOLVER-PROCESSOR`: an answer for the row's current value
/// makes the result (Kafka Streams' `ResponseJoinProcessorSupplier`); one for an older value is
/// dropped.
struct ResponseResolver<K, V, KO, VO, VR> {
    this: Box<dyn ValueGetter<K, V>>,
    joiner: ForeignJoiner<V, VO, VR>,
    serdes: Arc<FkSerdes<K, V, KO>>,
}

impl<K: Data, V: Data, KO: Data, VO: Data, VR: Data> Processor<K, Response<VO>, K, Option<VR>>
    for ResponseResolver<K, V, KO, VO, VR>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Option<VR>>) -> Result<(), StreamsError> {
        self.this.init(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Option<VR>>,
        record: Record<K, Response<VO>>,
    ) -> Result<(), StreamsError> {
        let current = self.this.get(ctx, &record.key)?;
        let current_hash = match &current {
            Some(row) => self.serdes.hash(ctx, &row.value)?,
            None => None,
        };
        if current_hash != record.value.hash {
            // The row changed after it asked; the answer to its current value is on its way.
            ctx.record_late("a foreign-key join's answer to a value its row no longer has");
            return Ok(());
        }
        let result = current.and_then(|row| (self.joiner)(&row.value, record.value.foreign_value.as_ref()));
        ctx.forward(Record { key: record.key, value: result, timestamp: record.timestamp, headers: record.headers })
    }
}

/// `KTABLE-FK-JOIN-OUTPUT`: the join's table (Kafka Streams uses its `KTableSource` here): into its
/// store when it has one, and downstream as a change.
struct FkJoinResult<K, VR> {
    output: TableOutput<K, VR>,
}

impl<K: Data, VR: Data> Processor<K, Option<VR>, K, Change<VR>> for FkJoinResult<K, VR> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<(), StreamsError> {
        self.output.init(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        record: Record<K, Option<VR>>,
    ) -> Result<(), StreamsError> {
        self.output.forward(ctx, record, |_| None, true, false)
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<(), StreamsError> {
        self.output.flush(ctx)
    }

    fn close(&mut self, _ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<(), StreamsError> {
        self.output.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::subscription::value_hash;
    use crate::dsl::StreamsBuilder;
    use crate::testing::TopologyTestDriver;

    /// An answer is joined only while the row still has the value that asked: one for an older value
    /// (an answer overtaken by the row's next change) is dropped and counted.
    #[test]
    fn an_answer_for_an_older_value_of_the_row_is_dropped() {
        let builder = StreamsBuilder::new();
        let products = builder.table::<String, String>("products");
        builder
            .table::<String, String>("orders")
            .join_on_foreign_key(&products, |_, p| Some(p.clone()), |p, name| format!("{p}: {name}"))
            .to_stream()
            .to("out");
        let mut driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
        let orders = driver.input_topic::<String, Option<String>>("orders");
        let products = driver.input_topic::<String, Option<String>>("products");
        let responses = driver.input_topic::<String, Vec<u8>>(&format!(
            "{}-KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-0000000014-topic",
            driver.application_id()
        ));
        let out = driver.output_topic::<String, Option<String>>("out");
        driver.pipe(&products, "p1".into(), Some("tea".into()), 0).unwrap();
        driver.pipe(&orders, "o1".into(), Some("p1".into()), 1).unwrap();
        // o1 moves to p2, which has no row: the inner join's row goes.
        driver.pipe(&orders, "o1".into(), Some("p2".into()), 2).unwrap();
        assert_eq!(driver.read_key_values(&out), vec![("o1".into(), Some("p1: tea".into())), ("o1".into(), None)]);
        let answer =
            |asked_by: &str, name: &str| [&[0u8][..], &value_hash(asked_by.as_bytes()), name.as_bytes()].concat();
        let dropped = driver.metrics().dropped_records;
        driver.pipe(&responses, "o1".into(), answer("p1", "black tea"), 3).unwrap();
        assert!(driver.read_key_values(&out).is_empty(), "an answer to o1's old value p1");
        assert_eq!(driver.metrics().dropped_records, dropped + 1);
        driver.pipe(&responses, "o1".into(), answer("p2", "coffee"), 4).unwrap();
        assert_eq!(driver.read_key_values(&out), vec![("o1".into(), Some("p2: coffee".into()))]);
    }
}
