package kstreams.differential;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.regex.Pattern;
import java.util.Map;
import java.util.Properties;
import java.util.function.Consumer;
import java.util.function.BiFunction;
import java.util.function.Function;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Branched;
import org.apache.kafka.streams.kstream.BranchedKStream;
import org.apache.kafka.streams.kstream.CogroupedKStream;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.EmitStrategy;
import org.apache.kafka.streams.kstream.GlobalKTable;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.Joined;
import org.apache.kafka.streams.kstream.StreamJoined;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.KGroupedTable;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Predicate;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.kstream.SessionWindowedCogroupedKStream;
import org.apache.kafka.streams.kstream.SessionWindowedKStream;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.SlidingWindows;
import org.apache.kafka.streams.kstream.TableJoined;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindowedCogroupedKStream;
import org.apache.kafka.streams.kstream.TimeWindowedKStream;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.ValueTransformerWithKey;
import org.apache.kafka.streams.kstream.ValueTransformerWithKeySupplier;
import org.apache.kafka.streams.processor.TopicNameExtractor;
import org.apache.kafka.streams.processor.api.ContextualFixedKeyProcessor;
import org.apache.kafka.streams.processor.api.ContextualProcessor;
import org.apache.kafka.streams.processor.api.ProcessorSupplier;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorSupplier;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;

/**
 * A case's topology steps as StreamsBuilder calls (README.md, "Topology steps"). Each step's input is the
 * previous step's result, or the result named by its "from"; "as" names a result (the first step's result
 * is also "source"). Results are KStream, KTable, KGroupedStream or KGroupedTable; to, foreach and split
 * leave none. Streams are untyped here (Object keys and values): the serdes carry the types.
 */
@SuppressWarnings({"unchecked", "rawtypes"})
final class TopologyFactory {
    private final Case c;
    private final StreamsBuilder builder = new StreamsBuilder();
    private final Map<String, Object> results = new HashMap<>();

    private TopologyFactory(Case c) {
        this.c = c;
    }

    static Topology build(Case c, Properties props) {
        return new TopologyFactory(c).build(props);
    }

    private Topology build(Properties props) {
        runSteps(c.topology(), null, true);
        return builder.build(props);
    }

    /**
     * Runs {@code steps} in order, the first on {@code previous} unless it says "from"; returns the last
     * result. {@code top}: the case's own steps, whose first result is also "source".
     */
    private Object runSteps(List<JsonNode> steps, Object previous, boolean top) {
        for (int i = 0; i < steps.size(); i++) {
            JsonNode step = steps.get(i);
            String op = Case.text(step, "op");
            String from = Case.text(step, "from");
            Object input = previous;
            if (from != null) {
                input = results.get(from);
                if (input == null) {
                    throw new IllegalArgumentException("step " + i + " (" + op + "): no result named \"" + from + "\"");
                }
            }
            Object result;
            try {
                result = apply(op, step, input);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("step " + i + " (" + op + "): " + e.getMessage());
            }
            if (top && i == 0 && result != null) {
                results.put("source", result);
            }
            String as = Case.text(step, "as");
            if (as != null) {
                if (result == null) {
                    throw new IllegalArgumentException("step " + i + " (" + op + ") has no result to name \"" + as + "\"");
                }
                results.put(as, result);
            }
            previous = result;
        }
        return previous;
    }

    private Object apply(String op, JsonNode step, Object input) {
        if (op == null) {
            throw new IllegalArgumentException("a step without \"op\": " + step);
        }
        String named = Case.text(step, "named");
        switch (op) {
            case "stream": return sourceStream(step, named);
            case "table": return sourceTable(step, named);
            case "global_table": return sourceGlobalTable(step, named);
            case "global_join": case "global_left_join": return globalJoin(input, step, named, op);
            case "global_store": return globalStore(step, named);
            case "filter": return filter(input, Functions.predicate(fn(step)), named, step, false);
            case "filter_not": return filter(input, Functions.predicate(fn(step)), named, step, true);
            case "map_values": return mapValues(input, step, named);
            case "process": return process(input, step, named);
            case "process_values": return processValues(input, step, named);
            case "transform_values": return transformValues(input, step, named);
            case "map": {
                KStream s = stream(input, op);
                return named == null ? s.map(Functions.keyValueMapper(fn(step)))
                    : s.map(Functions.keyValueMapper(fn(step)), Named.as(named));
            }
            case "flat_map": {
                KStream s = stream(input, op);
                return named == null ? s.flatMap(Functions.flatMapper(fn(step)))
                    : s.flatMap(Functions.flatMapper(fn(step)), Named.as(named));
            }
            case "flat_map_values": {
                KStream s = stream(input, op);
                return named == null ? s.flatMapValues(Functions.flatValueMapper(fn(step)))
                    : s.flatMapValues(Functions.flatValueMapper(fn(step)), Named.as(named));
            }
            case "select_key": {
                KStream s = stream(input, op);
                return named == null ? s.selectKey(Functions.keySelector(fn(step)))
                    : s.selectKey(Functions.keySelector(fn(step)), Named.as(named));
            }
            case "peek": {
                KStream s = stream(input, op);
                return named == null ? s.peek((k, v) -> {}) : s.peek((k, v) -> {}, Named.as(named));
            }
            case "foreach": {
                KStream s = stream(input, op);
                if (named == null) {
                    s.foreach((k, v) -> {});
                } else {
                    s.foreach((k, v) -> {}, Named.as(named));
                }
                return null;
            }
            case "merge": {
                KStream s = stream(input, op);
                String other = Case.text(step, "other");
                KStream o = stream(results.get(other), op + " with \"" + other + "\"");
                return named == null ? s.merge(o) : s.merge(o, Named.as(named));
            }
            case "cogroup": {
                var aggregator = Functions.aggregator(fn(step));
                if (input instanceof CogroupedKStream c) {
                    String other = Case.text(step, "other");
                    if (!(results.get(other) instanceof KGroupedStream g)) {
                        throw new IllegalArgumentException("cogroup: \"" + other + "\" is not a grouped stream");
                    }
                    return c.cogroup(g, aggregator);
                }
                if (!(input instanceof KGroupedStream g)) {
                    throw new IllegalArgumentException("cogroup needs a grouped stream or a cogrouped stream");
                }
                return g.cogroup(aggregator);
            }
            case "join": case "left_join": case "outer_join": return join(input, step, named, op);
            case "fk_join": case "fk_left_join": return foreignKeyJoin(input, step, named, op);
            case "split": return split(stream(input, op), step, named);
            case "to": return to(stream(input, op), step, named);
            case "to_dynamic": {
                KStream s = stream(input, op);
                TopicNameExtractor<Object, Object> choose = Functions.topicChooser(fn(step));
                if (named == null) {
                    s.to(choose);
                } else {
                    s.to(choose, Produced.as(named));
                }
                return null;
            }
            case "repartition": return repartition(stream(input, op), step);
            case "to_table": {
                KStream s = stream(input, op);
                Materialized m = materialized(step);
                if (m == null) {
                    return named == null ? s.toTable() : s.toTable(Named.as(named));
                }
                return named == null ? s.toTable(m) : s.toTable(Named.as(named), m);
            }
            case "to_stream": {
                KTable t = table(input, op);
                return named == null ? t.toStream() : t.toStream(Named.as(named));
            }
            case "emit_strategy": {
                if (!(input instanceof TimeWindowedKStream w)) {
                    throw new IllegalArgumentException("emit_strategy needs a time- or sliding-windowed stream, got " + kind(input));
                }
                String strategy = field(step, "strategy");
                return w.emitStrategy(switch (strategy) {
                    case "on_window_close" -> EmitStrategy.onWindowClose();
                    case "on_window_update" -> EmitStrategy.onWindowUpdate();
                    default -> throw new IllegalArgumentException("unknown strategy " + strategy);
                });
            }
            case "suppress": return table(input, op).suppress(suppressed(step));
            case "group_by_key": {
                Grouped g = grouped(step);
                KStream s = stream(input, op);
                return g == null ? s.groupByKey() : s.groupByKey(g);
            }
            case "group_by": return groupBy(input, step);
            case "windowed_by": {
                if (input instanceof CogroupedKStream c) {
                    if (millis(step, "difference") != null) {
                        return c.windowedBy(slidingWindows(step));
                    }
                    return millis(step, "gap") != null ? c.windowedBy(sessionWindows(step)) : c.windowedBy(timeWindows(step));
                }
                if (!(input instanceof KGroupedStream g)) {
                    throw new IllegalArgumentException("windowed_by needs a grouped stream, got " + kind(input));
                }
                if (millis(step, "difference") != null) {
                    return g.windowedBy(slidingWindows(step));
                }
                return millis(step, "gap") != null ? g.windowedBy(sessionWindows(step)) : g.windowedBy(timeWindows(step));
            }
            case "count": return count(input, step, named);
            case "reduce": return reduce(input, step, named);
            case "aggregate": return aggregate(input, step, named);
            default: throw new IllegalArgumentException("unknown op \"" + op + "\"");
        }
    }

    private Object sourceStream(JsonNode step, String named) {
        List<String> topics = new ArrayList<>();
        step.path("topics").forEach(t -> topics.add(t.asText()));
        Consumed consumed = consumed(step, named);
        String pattern = Case.text(step, "pattern");
        if (pattern != null) {
            Pattern compiled = Pattern.compile(pattern);
            return consumed == null ? builder.stream(compiled) : builder.stream(compiled, consumed);
        }
        return consumed == null ? builder.stream(topics) : builder.stream(topics, consumed);
    }

    private Object sourceTable(JsonNode step, String named) {
        String topic = Case.text(step, "topic");
        Consumed consumed = consumed(step, named);
        Materialized materialized = materialized(step);
        if (consumed == null) {
            return materialized == null ? builder.table(topic) : builder.table(topic, materialized);
        }
        return materialized == null ? builder.table(topic, consumed) : builder.table(topic, consumed, materialized);
    }

    private Object sourceGlobalTable(JsonNode step, String named) {
        String topic = Case.text(step, "topic");
        Consumed consumed = consumed(step, named);
        Materialized materialized = materialized(step);
        if (consumed == null) {
            return materialized == null ? builder.globalTable(topic) : builder.globalTable(topic, materialized);
        }
        return materialized == null ? builder.globalTable(topic, consumed) : builder.globalTable(topic, consumed, materialized);
    }

    /**
     * StreamsBuilder#addGlobalStore: a timestamped key-value store (materialized.store) kept by a processor
     * that puts each record's value with its timestamp, deletes on a null value and skips a null key.
     */
    private Object globalStore(JsonNode step, String named) {
        String topic = field(step, "topic");
        String store = field(step.path("materialized"), "store");
        Serde key = Formats.serde(field(step, "key"));
        Serde value = Formats.serde(field(step, "value"));
        var builderOfStore = org.apache.kafka.streams.state.Stores.timestampedKeyValueStoreBuilder(
            org.apache.kafka.streams.state.Stores.persistentTimestampedKeyValueStore(store), key, value);
        ProcessorSupplier<Object, Object, Void, Void> keep = () -> new ContextualProcessor<Object, Object, Void, Void>() {
            @Override
            public void process(Record<Object, Object> record) {
                if (record.key() == null) {
                    return;
                }
                org.apache.kafka.streams.state.TimestampedKeyValueStore<Object, Object> kept = context().getStateStore(store);
                if (record.value() == null) {
                    kept.delete(record.key());
                } else {
                    kept.put(record.key(), org.apache.kafka.streams.state.ValueAndTimestamp.make(record.value(), record.timestamp()));
                }
            }
        };
        builder.addGlobalStore(builderOfStore, topic, Consumed.with(key, value).withName(named), keep);
        return null;
    }

    /** KStream#join / leftJoin with a GlobalKTable, by the key the step's key selector picks. */
    private Object globalJoin(Object input, JsonNode step, String named, String op) {
        KStream s = stream(input, op);
        String otherId = field(step, "other");
        if (!(results.get(otherId) instanceof GlobalKTable other)) {
            throw new IllegalArgumentException(op + ": \"" + otherId + "\" is not a global table");
        }
        var joiner = Functions.joiner(fn(step));
        var selector = Functions.keySelector(field(step, "key_selector"));
        if (op.equals("global_join")) {
            return named == null ? s.join(other, selector, joiner) : s.join(other, selector, joiner, Named.as(named));
        }
        return named == null ? s.leftJoin(other, selector, joiner) : s.leftJoin(other, selector, joiner, Named.as(named));
    }

    private Object filter(Object input, Predicate p, String named, JsonNode step, boolean not) {
        if (input instanceof KTable t) {
            Materialized m = materialized(step);
            if (m == null) {
                if (named == null) {
                    return not ? t.filterNot(p) : t.filter(p);
                }
                return not ? t.filterNot(p, Named.as(named)) : t.filter(p, Named.as(named));
            }
            if (named == null) {
                return not ? t.filterNot(p, m) : t.filter(p, m);
            }
            return not ? t.filterNot(p, Named.as(named), m) : t.filter(p, Named.as(named), m);
        }
        KStream s = stream(input, not ? "filter_not" : "filter");
        noMaterialized(step);
        if (named == null) {
            return not ? s.filterNot(p) : s.filter(p);
        }
        return not ? s.filterNot(p, Named.as(named)) : s.filter(p, Named.as(named));
    }

    private Object mapValues(Object input, JsonNode step, String named) {
        var mapper = Functions.valueMapper(fn(step));
        if (input instanceof KTable t) {
            Materialized m = materialized(step);
            if (m == null) {
                return named == null ? t.mapValues(mapper) : t.mapValues(mapper, Named.as(named));
            }
            return named == null ? t.mapValues(mapper, m) : t.mapValues(mapper, Named.as(named), m);
        }
        KStream s = stream(input, "map_values");
        noMaterialized(step);
        return named == null ? s.mapValues(mapper) : s.mapValues(mapper, Named.as(named));
    }

    /** process with a Processor that forwards the record with the selected key. */
    private Object process(Object input, JsonNode step, String named) {
        var selector = Functions.keySelector(fn(step));
        KStream s = stream(input, "process");
        noMaterialized(step);
        ProcessorSupplier<Object, Object, Object, Object> supplier = () -> new ContextualProcessor<Object, Object, Object, Object>() {
            @Override
            public void process(Record<Object, Object> record) {
                context().forward(record.withKey(selector.apply(record.key(), record.value())));
            }
        };
        return named == null ? s.process(supplier) : s.process(supplier, Named.as(named));
    }

    /** processValues with a FixedKeyProcessor that forwards the record with its value mapped. */
    private Object processValues(Object input, JsonNode step, String named) {
        var mapper = Functions.valueMapper(fn(step));
        KStream s = stream(input, "process_values");
        noMaterialized(step);
        FixedKeyProcessorSupplier<Object, Object, Object> supplier = () -> new ContextualFixedKeyProcessor<Object, Object, Object>() {
            @Override
            public void process(FixedKeyRecord<Object, Object> record) {
                context().forward(record.withValue(mapper.apply(record.key(), record.value())));
            }
        };
        return named == null ? s.processValues(supplier) : s.processValues(supplier, Named.as(named));
    }

    /** KTable.transformValues with a ValueTransformerWithKey that maps the value (null included). */
    private Object transformValues(Object input, JsonNode step, String named) {
        var mapper = Functions.valueMapper(fn(step));
        KTable t = table(input, "transform_values");
        ValueTransformerWithKeySupplier<Object, Object, Object> supplier = () -> new ValueTransformerWithKey<Object, Object, Object>() {
            @Override
            public void init(org.apache.kafka.streams.processor.ProcessorContext context) {}

            @Override
            public Object transform(Object key, Object value) {
                return mapper.apply(key, value);
            }

            @Override
            public void close() {}
        };
        Materialized m = materialized(step);
        if (m == null) {
            return named == null ? t.transformValues(supplier) : t.transformValues(supplier, Named.as(named));
        }
        return named == null ? t.transformValues(supplier, m) : t.transformValues(supplier, m, Named.as(named));
    }

    private Object split(KStream s, JsonNode step, String named) {
        BranchedKStream split = named == null ? s.split() : s.split(Named.as(named));
        for (JsonNode b : step.path("branches")) {
            split = split.branch(Functions.predicate(fn(b)), branched(b));
        }
        JsonNode d = step.get("default");
        if (d == null || d.isNull()) {
            split.noDefaultBranch();
        } else {
            split.defaultBranch(branched(d));
        }
        return null;
    }

    /** Branched.as(name) (or no name), which also files the branch under its "as". */
    /**
     * A branch's Branched: its name; its "chain" of steps, run on the branch when it is declared (withFunction,
     * or withConsumer when "consume" is true); "as" names the branch, or what its chain made of it.
     */
    private Branched branched(JsonNode branch) {
        String as = Case.text(branch, "as");
        String name = Case.text(branch, "name");
        List<JsonNode> chain = new ArrayList<>();
        branch.path("chain").forEach(chain::add);
        if (branch.path("consume").asBoolean(false)) {
            Consumer<KStream<Object, Object>> consume = ks -> runSteps(chain, ks, false);
            return name == null ? Branched.<Object, Object>withConsumer(consume) : Branched.<Object, Object>withConsumer(consume, name);
        }
        Function<KStream<Object, Object>, KStream<Object, Object>> keep = ks -> {
            @SuppressWarnings("unchecked")
            KStream<Object, Object> out = chain.isEmpty() ? ks : (KStream<Object, Object>) runSteps(chain, ks, false);
            if (as != null) {
                results.put(as, out);
            }
            return out;
        };
        return name == null ? Branched.<Object, Object>withFunction(keep) : Branched.<Object, Object>withFunction(keep, name);
    }

    private Object to(KStream s, JsonNode step, String named) {
        String topic = Case.text(step, "topic");
        String key = Case.text(step, "key");
        String value = Case.text(step, "value");
        String partitioner = Case.text(step, "partitioner");
        if (key == null && value == null && named == null && partitioner == null) {
            s.to(topic);
        } else {
            Produced produced = Produced.with(Formats.serde(key), Formats.serde(value)).withName(named);
            if (partitioner != null) {
                produced = produced.withStreamPartitioner(Functions.partitioner(partitioner));
            }
            s.to(topic, produced);
        }
        return null;
    }

    private Object repartition(KStream s, JsonNode step) {
        String name = Case.text(step, "name");
        String key = Case.text(step, "key");
        String value = Case.text(step, "value");
        JsonNode partitions = step.get("partitions");
        if (name == null && key == null && value == null && partitions == null) {
            return s.repartition();
        }
        Repartitioned r = name == null ? Repartitioned.with(null, null) : Repartitioned.as(name);
        if (key != null) {
            r = r.withKeySerde(Formats.serde(key));
        }
        if (value != null) {
            r = r.withValueSerde(Formats.serde(value));
        }
        if (partitions != null) {
            r = r.withNumberOfPartitions(partitions.asInt());
        }
        return s.repartition(r);
    }

    private Object groupBy(Object input, JsonNode step) {
        Grouped g = grouped(step);
        if (input instanceof KTable t) {
            var mapper = Functions.keyValueMapper(fn(step));
            return g == null ? t.groupBy(mapper) : t.groupBy(mapper, g);
        }
        KStream s = stream(input, "group_by");
        var selector = Functions.keySelector(fn(step));
        return g == null ? s.groupBy(selector) : s.groupBy(selector, g);
    }

    /** TimeWindows.ofSizeWithNoGrace(size), or ofSizeAndGrace(size, grace), then advanceBy(advance). */
    private static TimeWindows timeWindows(JsonNode step) {
        Duration size = millis(step, "size");
        if (size == null) {
            throw new IllegalArgumentException("\"size\" (ms) is missing");
        }
        Duration grace = millis(step, "grace");
        Duration advance = millis(step, "advance");
        TimeWindows windows = grace == null ? TimeWindows.ofSizeWithNoGrace(size) : TimeWindows.ofSizeAndGrace(size, grace);
        return advance == null ? windows : windows.advanceBy(advance);
    }

    /** SlidingWindows.ofTimeDifferenceWithNoGrace(difference), or ofTimeDifferenceAndGrace(difference, grace). */
    private static SlidingWindows slidingWindows(JsonNode step) {
        if (millis(step, "size") != null || millis(step, "advance") != null || millis(step, "gap") != null) {
            throw new IllegalArgumentException("sliding windows take \"difference\" (and \"grace\"), not \"size\", \"advance\" or \"gap\"");
        }
        Duration difference = millis(step, "difference");
        Duration grace = millis(step, "grace");
        return grace == null ? SlidingWindows.ofTimeDifferenceWithNoGrace(difference) : SlidingWindows.ofTimeDifferenceAndGrace(difference, grace);
    }

    /** SessionWindows.ofInactivityGapWithNoGrace(gap), or ofInactivityGapAndGrace(gap, grace). */
    private static SessionWindows sessionWindows(JsonNode step) {
        if (millis(step, "size") != null || millis(step, "advance") != null) {
            throw new IllegalArgumentException("session windows take \"gap\" (and \"grace\"), not \"size\" or \"advance\"");
        }
        Duration gap = millis(step, "gap");
        Duration grace = millis(step, "grace");
        return grace == null ? SessionWindows.ofInactivityGapWithNoGrace(gap) : SessionWindows.ofInactivityGapAndGrace(gap, grace);
    }

    private Object count(Object input, JsonNode step, String named) {
        Materialized m = materialized(step);
        Named n = named == null ? null : Named.as(named);
        if (input instanceof SessionWindowedKStream w) {
            if (m == null) {
                return n == null ? w.count() : w.count(n);
            }
            return n == null ? w.count(m) : w.count(n, m);
        }
        if (input instanceof TimeWindowedKStream w) {
            if (m == null) {
                return n == null ? w.count() : w.count(n);
            }
            return n == null ? w.count(m) : w.count(n, m);
        }
        if (input instanceof KGroupedStream g) {
            if (m == null) {
                return n == null ? g.count() : g.count(n);
            }
            return n == null ? g.count(m) : g.count(n, m);
        }
        KGroupedTable g = groupedTable(input, "count");
        if (m == null) {
            return n == null ? g.count() : g.count(n);
        }
        return n == null ? g.count(m) : g.count(n, m);
    }

    /** There is no reduce(.., Named) without Materialized: Materialized.with(null, null) is what reduce(..) uses. */
    private Object reduce(Object input, JsonNode step, String named) {
        Materialized m = materialized(step);
        if (input instanceof SessionWindowedKStream w) {
            var reducer = Functions.reducer(fn(step));
            if (m == null) {
                return named == null ? w.reduce(reducer) : w.reduce(reducer, Named.as(named));
            }
            return named == null ? w.reduce(reducer, m) : w.reduce(reducer, Named.as(named), m);
        }
        if (input instanceof TimeWindowedKStream w) {
            var reducer = Functions.reducer(fn(step));
            if (m == null) {
                return named == null ? w.reduce(reducer) : w.reduce(reducer, Named.as(named));
            }
            return named == null ? w.reduce(reducer, m) : w.reduce(reducer, Named.as(named), m);
        }
        if (input instanceof KGroupedStream g) {
            var reducer = Functions.reducer(fn(step));
            if (named != null) {
                return g.reduce(reducer, Named.as(named), m == null ? Materialized.with(null, null) : m);
            }
            return m == null ? g.reduce(reducer) : g.reduce(reducer, m);
        }
        KGroupedTable g = groupedTable(input, "reduce");
        var adder = Functions.reducer(field(step, "adder"));
        var subtractor = Functions.reducer(field(step, "subtractor"));
        if (named != null) {
            return g.reduce(adder, subtractor, Named.as(named), m == null ? Materialized.with(null, null) : m);
        }
        return m == null ? g.reduce(adder, subtractor) : g.reduce(adder, subtractor, m);
    }

    /** A grouped stream's aggregate has no (.., Named) overload without Materialized either. */
    private Object join(Object input, JsonNode step, String named, String op) {
        String otherId = field(step, "other");
        if (results.get(otherId) instanceof KStream otherStream) {
            return streamStreamJoin(stream(input, op), otherStream, step, named, op);
        }
        if (!(results.get(otherId) instanceof KTable other)) {
            throw new IllegalArgumentException(op + ": \"" + otherId + "\" is not a table");
        }
        var joiner = Functions.joiner(fn(step));
        if (input instanceof KStream s) {
            Joined j = named == null ? null : Joined.as(named);
            Duration grace = millis(step, "grace");
            if (grace != null) {
                // KIP-923: the stream side waits in a buffer (store "<join name>-Buffer") until stream time passes ts + grace.
                j = (j == null ? Joined.with(null, null, null) : j).withGracePeriod(grace);
            }
            switch (op) {
                case "join": return j == null ? s.join(other, joiner) : s.join(other, joiner, j);
                case "left_join": return j == null ? s.leftJoin(other, joiner) : s.leftJoin(other, joiner, j);
                default: throw new IllegalArgumentException("a stream joins a table with join or left_join");
            }
        }
        KTable t = table(input, op);
        Materialized m = materialized(step);
        Named n = named == null ? null : Named.as(named);
        switch (op) {
            case "join":
                if (n == null) return m == null ? t.join(other, joiner) : t.join(other, joiner, m);
                return m == null ? t.join(other, joiner, n) : t.join(other, joiner, n, m);
            case "left_join":
                if (n == null) return m == null ? t.leftJoin(other, joiner) : t.leftJoin(other, joiner, m);
                return m == null ? t.leftJoin(other, joiner, n) : t.leftJoin(other, joiner, n, m);
            default:
                if (n == null) return m == null ? t.outerJoin(other, joiner) : t.outerJoin(other, joiner, m);
                return m == null ? t.outerJoin(other, joiner, n) : t.outerJoin(other, joiner, n, m);
        }
    }

    /** KTable#join / leftJoin with a foreign-key extractor (the BiFunction form, KIP-1104). */
    private Object foreignKeyJoin(Object input, JsonNode step, String named, String op) {
        KTable t = table(input, op);
        String otherId = field(step, "other");
        if (!(results.get(otherId) instanceof KTable other)) {
            throw new IllegalArgumentException(op + ": \"" + otherId + "\" is not a table");
        }
        var joiner = Functions.joiner(fn(step));
        var selector = Functions.keySelector(field(step, "foreign_key"));
        BiFunction<Object, Object, Object> foreignKey = selector::apply;
        Materialized m = materialized(step);
        TableJoined tj = named == null ? TableJoined.with(null, null) : TableJoined.as(named);
        if (op.equals("fk_join")) {
            return m == null ? t.join(other, foreignKey, joiner, tj) : t.join(other, foreignKey, joiner, tj, m);
        }
        return m == null ? t.leftJoin(other, foreignKey, joiner, tj) : t.leftJoin(other, foreignKey, joiner, tj, m);
    }

    private Object streamStreamJoin(KStream s, KStream other, JsonNode step, String named, String op) {
        var joiner = Functions.joiner(fn(step));
        Duration difference = millis(step, "difference");
        Duration grace = millis(step, "grace");
        JoinWindows windows = grace == null ? JoinWindows.ofTimeDifferenceWithNoGrace(difference) : JoinWindows.ofTimeDifferenceAndGrace(difference, grace);
        if (millis(step, "before") != null) {
            windows = windows.before(millis(step, "before"));
        }
        if (millis(step, "after") != null) {
            windows = windows.after(millis(step, "after"));
        }
        String storeName = Case.text(step, "name");
        Serde key = Formats.serde(Case.text(step, "key"));
        Serde value = Formats.serde(Case.text(step, "value"));
        Serde otherValue = Formats.serde(Case.text(step, "other_value"));
        JsonNode thisStore = step.get("this_store");
        JsonNode otherStore = step.get("other_store");
        StreamJoined joined = null;
        if (named != null || storeName != null || key != null || value != null || otherValue != null
                || thisStore != null || otherStore != null) {
            joined = StreamJoined.with(key, value, otherValue);
            if (named != null) joined = joined.withName(named);
            if (storeName != null) joined = joined.withStoreName(storeName);
            if (thisStore != null) joined = joined.withThisStoreSupplier(joinStoreSupplier(thisStore, windows));
            if (otherStore != null) joined = joined.withOtherStoreSupplier(joinStoreSupplier(otherStore, windows));
        }
        switch (op) {
            case "join": return joined == null ? s.join(other, joiner, windows) : s.join(other, joiner, windows, joined);
            case "left_join": return joined == null ? s.leftJoin(other, joiner, windows) : s.leftJoin(other, joiner, windows, joined);
            default: return joined == null ? s.outerJoin(other, joiner, windows) : s.outerJoin(other, joiner, windows, joined);
        }
    }

    /** A side's window store: {"name", "persistent"}, of the join windows' size and size plus grace, duplicates kept. */
    private static org.apache.kafka.streams.state.WindowBytesStoreSupplier joinStoreSupplier(JsonNode spec, JoinWindows windows) {
        String name = field(spec, "name");
        Duration retention = Duration.ofMillis(windows.size() + windows.gracePeriodMs());
        Duration size = Duration.ofMillis(windows.size());
        return spec.path("persistent").asBoolean()
            ? org.apache.kafka.streams.state.Stores.persistentWindowStore(name, retention, size, true)
            : org.apache.kafka.streams.state.Stores.inMemoryWindowStore(name, retention, size, true);
    }

    private Object aggregate(Object input, JsonNode step, String named) {
        Materialized m = materialized(step);
        var init = Functions.initializer(field(step, "init"));
        if (input instanceof CogroupedKStream c) {
            if (named != null) {
                return m == null ? c.aggregate(init, Named.as(named)) : c.aggregate(init, Named.as(named), m);
            }
            return m == null ? c.aggregate(init) : c.aggregate(init, m);
        }
        if (input instanceof TimeWindowedCogroupedKStream c) {
            if (named != null) {
                return m == null ? c.aggregate(init, Named.as(named)) : c.aggregate(init, Named.as(named), m);
            }
            return m == null ? c.aggregate(init) : c.aggregate(init, m);
        }
        if (input instanceof SessionWindowedCogroupedKStream c) {
            var merger = Functions.merger(field(step, "merger"));
            if (named != null) {
                return m == null ? c.aggregate(init, merger, Named.as(named)) : c.aggregate(init, merger, Named.as(named), m);
            }
            return m == null ? c.aggregate(init, merger) : c.aggregate(init, merger, m);
        }
        if (input instanceof SessionWindowedKStream w) {
            var aggregator = Functions.aggregator(fn(step));
            var merger = Functions.merger(field(step, "merger"));
            if (m == null) {
                return named == null ? w.aggregate(init, aggregator, merger) : w.aggregate(init, aggregator, merger, Named.as(named));
            }
            return named == null ? w.aggregate(init, aggregator, merger, m) : w.aggregate(init, aggregator, merger, Named.as(named), m);
        }
        if (input instanceof TimeWindowedKStream w) {
            var aggregator = Functions.aggregator(fn(step));
            if (m == null) {
                return named == null ? w.aggregate(init, aggregator) : w.aggregate(init, aggregator, Named.as(named));
            }
            return named == null ? w.aggregate(init, aggregator, m) : w.aggregate(init, aggregator, Named.as(named), m);
        }
        if (input instanceof KGroupedStream g) {
            var aggregator = Functions.aggregator(fn(step));
            if (named != null) {
                return g.aggregate(init, aggregator, Named.as(named), m == null ? Materialized.with(null, null) : m);
            }
            return m == null ? g.aggregate(init, aggregator) : g.aggregate(init, aggregator, m);
        }
        KGroupedTable g = groupedTable(input, "aggregate");
        var adder = Functions.aggregator(field(step, "adder"));
        var subtractor = Functions.aggregator(field(step, "subtractor"));
        if (m == null) {
            return named == null ? g.aggregate(init, adder, subtractor) : g.aggregate(init, adder, subtractor, Named.as(named));
        }
        return named == null ? g.aggregate(init, adder, subtractor, m) : g.aggregate(init, adder, subtractor, Named.as(named), m);
    }

    // Serde-carrying options.

    private static Consumed consumed(JsonNode step, String named) {
        String key = Case.text(step, "key");
        String value = Case.text(step, "value");
        String extractor = Case.text(step, "timestamp_extractor");
        if (key == null && value == null && named == null && extractor == null) {
            return null;
        }
        Consumed consumed = Consumed.with(Formats.serde(key), Formats.serde(value)).withName(named);
        return extractor == null ? consumed : consumed.withTimestampExtractor(Functions.timestampExtractor(extractor));
    }

    /** Grouped.as(name).withKeySerde(..).withValueSerde(..); null when none of the three is given. */
    private static Grouped grouped(JsonNode step) {
        String name = Case.text(step, "name");
        String key = Case.text(step, "key");
        String value = Case.text(step, "value");
        if (name == null && key == null && value == null) {
            return null;
        }
        return Grouped.with(name, Formats.serde(key), Formats.serde(value));
    }

    /**
     * README.md: Materialized.as(store) when a store is given, else Materialized.with(key, value); with
     * "versioned" (history retention, ms), Materialized.as(Stores.persistentVersionedKeyValueStore(store, history)).
     */
    private static Materialized materialized(JsonNode step) {
        JsonNode m = step.get("materialized");
        if (m == null || m.isNull()) {
            return null;
        }
        String store = Case.text(m, "store");
        Serde key = Formats.serde(Case.text(m, "key"));
        Serde value = Formats.serde(Case.text(m, "value"));
        Duration history = millis(m, "versioned");
        if (history != null && store == null) {
            throw new IllegalArgumentException("a \"versioned\" materialized needs its \"store\": " + m);
        }
        Materialized materialized;
        if (store != null) {
            materialized = history == null ? Materialized.as(store)
                : Materialized.as(org.apache.kafka.streams.state.Stores.persistentVersionedKeyValueStore(store, history));
            if (key != null) {
                materialized = materialized.withKeySerde(key);
            }
            if (value != null) {
                materialized = materialized.withValueSerde(value);
            }
        } else {
            materialized = Materialized.with(key, value);
        }
        if (m.has("logging") && !m.get("logging").asBoolean()) {
            materialized = materialized.withLoggingDisabled();
        }
        if (m.has("caching") && !m.get("caching").asBoolean()) {
            materialized = materialized.withCachingDisabled();
        }
        Duration retention = millis(m, "retention");
        if (retention != null) {
            materialized = materialized.withRetention(retention);
        }
        return materialized;
    }

    private static void noMaterialized(JsonNode step) {
        if (step.has("materialized")) {
            throw new IllegalArgumentException("\"materialized\" is for tables only");
        }
    }

    // The kinds of results.

    private static KStream stream(Object input, String what) {
        if (input instanceof KStream s) {
            return s;
        }
        throw new IllegalArgumentException(what + " needs a stream, got " + kind(input));
    }

    private static KTable table(Object input, String what) {
        if (input instanceof KTable t) {
            return t;
        }
        throw new IllegalArgumentException(what + " needs a table, got " + kind(input));
    }

    private static KGroupedTable groupedTable(Object input, String what) {
        if (input instanceof KGroupedTable g) {
            return g;
        }
        throw new IllegalArgumentException(what + " needs a grouped stream or table, got " + kind(input));
    }

    private static String kind(Object input) {
        if (input == null) {
            return "nothing (the previous step has no result: name one with \"from\")";
        }
        if (input instanceof KStream) {
            return "a stream";
        }
        if (input instanceof KTable) {
            return "a table";
        }
        if (input instanceof TimeWindowedKStream) {
            return "a windowed stream";
        }
        if (input instanceof SessionWindowedKStream) {
            return "a session-windowed stream";
        }
        return input instanceof KGroupedStream ? "a grouped stream" : "a grouped table";
    }

    /** Suppressed.untilWindowCloses(strict buffer) or untilTimeLimit(time_limit, buffer), as the Rust half builds it. */
    @SuppressWarnings({"rawtypes", "unchecked"})
    private static Suppressed suppressed(JsonNode step) {
        String until = field(step, "until");
        Long maxRecords = step.hasNonNull("max_records") ? step.get("max_records").asLong() : null;
        Long maxBytes = step.hasNonNull("max_bytes") ? step.get("max_bytes").asLong() : null;
        String whenFull = Case.text(step, "when_full");
        Suppressed suppressed;
        if (until.equals("window_closes")) {
            Suppressed.StrictBufferConfig buffer = Suppressed.BufferConfig.unbounded();
            if (maxRecords != null) {
                buffer = buffer.withMaxRecords(maxRecords);
            }
            if (maxBytes != null) {
                buffer = buffer.withMaxBytes(maxBytes);
            }
            suppressed = Suppressed.untilWindowCloses(buffer);
        } else if (until.equals("time_limit")) {
            Suppressed.BufferConfig buffer;
            if (maxRecords == null && maxBytes == null) {
                buffer = Suppressed.BufferConfig.unbounded();
            } else {
                Suppressed.EagerBufferConfig eager = maxRecords != null
                    ? Suppressed.BufferConfig.maxRecords(maxRecords).withMaxBytes(maxBytes != null ? maxBytes : Long.MAX_VALUE)
                    : Suppressed.BufferConfig.maxBytes(maxBytes);
                buffer = "shut_down".equals(whenFull) ? eager.shutDownWhenFull() : eager;
            }
            suppressed = Suppressed.untilTimeLimit(millis(step, "time_limit"), buffer);
        } else {
            throw new IllegalArgumentException("\"until\" must be window_closes or time_limit: " + step);
        }
        String name = Case.text(step, "name");
        return name == null ? suppressed : suppressed.withName(name);
    }

    /** A duration field in milliseconds, or null when it is absent or null. */
    private static Duration millis(JsonNode node, String field) {
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isIntegralNumber() || !v.canConvertToLong()) {
            throw new IllegalArgumentException("\"" + field + "\" must be a number of milliseconds: " + node);
        }
        return Duration.ofMillis(v.asLong());
    }

    private static String fn(JsonNode step) {
        return field(step, "fn");
    }

    private static String field(JsonNode step, String name) {
        String v = Case.text(step, name);
        if (v == null) {
            throw new IllegalArgumentException("\"" + name + "\" is missing");
        }
        return v;
    }
}
