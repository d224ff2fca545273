package kstreams.differential;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.SessionStore;
import org.apache.kafka.streams.state.WindowStore;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.state.ValueAndTimestamp;
import org.apache.kafka.streams.test.TestRecord;

/**
 * Runs one case through Kafka Streams' TopologyTestDriver: the topology's description, then for each run
 * (seed) a fresh driver on a freshly built topology, its inputs piped in order, and what came out: the
 * output topics' records and the stores' final contents. Any exception makes the case's result an error.
 */
final class Runner {
    /** What the expected file holds: the description (null if the topology did not build), the runs or an error. */
    record Result(String name, List<String> describe, List<RunResult> runs, String error) {}

    /** One run: its seed, the inputs' count and hash, the output records and the stores' entries (JSON-ready lists). */
    record RunResult(long seed, int inputs, String inputHash, List<List<Object>> outputs,
                     Map<String, List<List<Object>>> stores) {}

    private Runner() {}

    static Result run(Case c, Path stateDir) {
        Properties props = properties(c, stateDir);
        List<String> describe = null;
        try {
            Topology topology = TopologyFactory.build(c, props);
            describe = new ArrayList<>(Arrays.asList(topology.describe().toString().split("\n", -1)));
            while (!describe.isEmpty() && describe.get(describe.size() - 1).isEmpty()) {
                describe.remove(describe.size() - 1);
            }
            List<RunResult> runs = new ArrayList<>();
            for (Generator.Run run : Generator.runs(c)) {
                runs.add(run(c, props, run));
            }
            return new Result(c.name(), describe, runs, null);
        } catch (Exception | StackOverflowError e) {
            return new Result(c.name(), describe, null, describe(e));
        }
    }

    static Properties properties(Case c, Path stateDir) {
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, "diff");
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "dummy:1234");
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, c.cacheMaxBytes());
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Formats.serde(c.defaultKey()).getClass());
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Formats.serde(c.defaultValue()).getClass());
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        return props;
    }

    private static RunResult run(Case c, Properties props, Generator.Run run) {
        Topology topology = TopologyFactory.build(c, props);
        try (TopologyTestDriver driver = new TopologyTestDriver(topology, props)) {
            Map<String, TestInputTopic<Object, Object>> inputs = new HashMap<>();
            for (Generator.Input r : run.records()) {
                TestInputTopic<Object, Object> topic = inputs.computeIfAbsent(r.topic(), t -> {
                    Case.Topic formats = inputFormats(c, t);
                    return driver.createInputTopic(t, Formats.serializer(formats.key()), Formats.serializer(formats.value()));
                });
                topic.pipeInput(r.key(), r.value(), r.timestamp());
            }
            List<List<Object>> outputs = new ArrayList<>();
            for (Case.Topic out : c.outputs()) {
                var topic = driver.createOutputTopic(out.name(), new ByteArrayDeserializer(), new ByteArrayDeserializer());
                for (TestRecord<byte[], byte[]> r : topic.readRecordsToList()) {
                    outputs.add(output(out, r));
                }
            }
            Map<String, List<List<Object>>> stores = new LinkedHashMap<>();
            for (Case.Topic store : c.stores()) {
                stores.put(store.name(), Formats.sessionInner(store.key()) != null ? sessionEntries(driver, store.name())
                    : Formats.windowedInner(store.key()) != null ? windowEntries(driver, store.name())
                    : entries(driver, store.name()));
            }
            return new RunResult(run.seed(), run.records().size(), Generator.hash(run.records()), outputs, stores);
        }
    }

    /** The formats an input topic's records are written in (input.topics, else the case's defaults). */
    private static Case.Topic inputFormats(Case c, String topic) {
        for (var t : c.input().path("topics")) {
            if (topic.equals(Case.text(t, "topic"))) {
                return new Case.Topic(topic, Case.textOr(t, "key", c.defaultKey()), Case.textOr(t, "value", c.defaultValue()));
            }
        }
        return new Case.Topic(topic, c.defaultKey(), c.defaultValue());
    }

    /** [topic, key, value, timestamp] plus [[header key, header value], ..] when there are headers. */
    private static List<Object> output(Case.Topic out, TestRecord<byte[], byte[]> r) {
        List<Object> record = new ArrayList<>(Arrays.asList(out.name(), Formats.decode(r.key(), out.key()),
            Formats.decode(r.value(), out.value()), r.timestamp()));
        List<Object> headers = new ArrayList<>();
        for (Header h : r.headers()) {
            headers.add(Arrays.asList(h.key(), h.value() == null ? null : new String(h.value(), StandardCharsets.UTF_8)));
        }
        if (!headers.isEmpty()) {
            record.add(headers);
        }
        return record;
    }

    /** A store's entries in its own order: [key, value, timestamp] (timestamp null for a plain key-value store). */
    private static List<List<Object>> entries(TopologyTestDriver driver, String name) {
        List<List<Object>> entries = new ArrayList<>();
        KeyValueStore<Object, ValueAndTimestamp<Object>> timestamped = driver.getTimestampedKeyValueStore(name);
        if (timestamped != null) {
            try (KeyValueIterator<Object, ValueAndTimestamp<Object>> it = timestamped.all()) {
                while (it.hasNext()) {
                    KeyValue<Object, ValueAndTimestamp<Object>> kv = it.next();
                    Object value = kv.value == null ? null : kv.value.value();
                    Long ts = kv.value == null ? null : kv.value.timestamp();
                    entries.add(Arrays.asList(Formats.toJsonValue(kv.key, name), Formats.toJsonValue(value, name), ts));
                }
            }
            return entries;
        }
        KeyValueStore<Object, Object> plain = driver.getKeyValueStore(name);
        if (plain == null) {
            throw new IllegalArgumentException("no key-value store named \"" + name + "\"");
        }
        try (KeyValueIterator<Object, Object> it = plain.all()) {
            while (it.hasNext()) {
                KeyValue<Object, Object> kv = it.next();
                entries.add(Arrays.asList(Formats.toJsonValue(kv.key, name), Formats.toJsonValue(kv.value, name), null));
            }
        }
        return entries;
    }

    /** A window store's entries in its own order: [[key, start, end], value, timestamp]. */
    private static List<List<Object>> windowEntries(TopologyTestDriver driver, String name) {
        List<List<Object>> entries = new ArrayList<>();
        WindowStore<Object, ValueAndTimestamp<Object>> store = driver.getTimestampedWindowStore(name);
        if (store == null) {
            throw new IllegalArgumentException("no window store named \"" + name + "\"");
        }
        try (KeyValueIterator<Windowed<Object>, ValueAndTimestamp<Object>> it = store.all()) {
            while (it.hasNext()) {
                KeyValue<Windowed<Object>, ValueAndTimestamp<Object>> kv = it.next();
                List<Object> key = Arrays.asList(Formats.toJsonValue(kv.key.key(), name), kv.key.window().start(),
                    kv.key.window().end());
                Object value = kv.value == null ? null : kv.value.value();
                Long ts = kv.value == null ? null : kv.value.timestamp();
                entries.add(Arrays.asList(key, Formats.toJsonValue(value, name), ts));
            }
        }
        return entries;
    }

    /** A session store's entries in its own order: [[key, start, end], value, null] (no timestamp is kept). */
    private static List<List<Object>> sessionEntries(TopologyTestDriver driver, String name) {
        List<List<Object>> entries = new ArrayList<>();
        SessionStore<Object, Object> store = driver.getSessionStore(name);
        if (store == null) {
            throw new IllegalArgumentException("no session store named \"" + name + "\"");
        }
        try (KeyValueIterator<Windowed<Object>, Object> it = store.fetch(null, null)) {
            while (it.hasNext()) {
                KeyValue<Windowed<Object>, Object> kv = it.next();
                List<Object> key = Arrays.asList(Formats.toJsonValue(kv.key.key(), name), kv.key.window().start(),
                    kv.key.window().end());
                entries.add(Arrays.asList(key, Formats.toJsonValue(kv.value, name), null));
            }
        }
        return entries;
    }

    /** "Class: message", then "; caused by Class: message" for each cause that says more. */
    static String describe(Throwable e) {
        StringBuilder text = new StringBuilder(line(e));
        for (Throwable cause = e.getCause(); cause != null && cause != e; e = cause, cause = cause.getCause()) {
            if (!cause.toString().equals(e.getMessage())) {
                text.append("; caused by ").append(line(cause));
            }
        }
        return text.toString();
    }

    /**
     * "Class: message", without the message of an exception the JVM raises itself (a failed cast, a null
     * dereference, ...): once such a site is hot, HotSpot throws a preallocated instance without a message
     * (OmitStackTraceInFastThrow), so that message would come and go from one regeneration to the next.
     */
    private static String line(Throwable t) {
        String message = t.getMessage();
        boolean implicit = t instanceof ClassCastException || t instanceof ArithmeticException
            || t instanceof ArrayIndexOutOfBoundsException || t instanceof ArrayStoreException
            || (t instanceof NullPointerException && (message == null || message.startsWith("Cannot ")));
        return implicit || message == null ? t.getClass().getName() : t.getClass().getName() + ": " + message;
    }
}
