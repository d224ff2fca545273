package kstreams.differential;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A case's input records (README.md, "Inputs"): hand-written ones (one run, seed 0), or for each seed
 * 1..=seeds an interleaved sequence from SplitMix64, bit for bit what the Rust runner generates; and the
 * FNV-1a 64 hash of their compact JSON lines by which the Rust runner checks that it has the same.
 */
final class Generator {
    /** One input record: the topic, its key and value (String, Long or null), and its timestamp. */
    record Input(String topic, Object key, Object value, long timestamp) {
        String line() {
            return Json.compact(Arrays.asList(topic, key, value, timestamp));
        }
    }

    /** The records of one run. */
    record Run(long seed, List<Input> records) {}

    /** A topic of input.topics: the formats its records are written in, and what to draw them from. */
    record Source(String topic, String key, String value, JsonNode spec) {}

    private long state;

    private Generator(long seed) {
        this.state = seed;
    }

    long next() {
        state += 0x9E3779B97F4A7C15L;
        long z = state;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    long below(long n) {
        if (n < 1) {
            throw new IllegalArgumentException("below(" + n + "): an empty range");
        }
        return Long.remainderUnsigned(next() >>> 1, n);
    }

    /** The runs of a case, in order. */
    static List<Run> runs(Case c) {
        JsonNode input = c.input();
        Map<String, Source> sources = new HashMap<>();
        List<Source> topics = new ArrayList<>();
        for (JsonNode t : input.path("topics")) {
            String key = Case.textOr(t, "key", c.defaultKey());
            String value = Case.textOr(t, "value", c.defaultValue());
            Formats.check(key);
            Formats.check(value);
            Source source = new Source(Case.text(t, "topic"), key, value, t);
            topics.add(source);
            sources.put(source.topic(), source);
        }
        List<Run> runs = new ArrayList<>();
        if (input.has("records")) {
            List<Input> records = new ArrayList<>();
            for (JsonNode r : input.get("records")) {
                if (!r.isArray() || r.size() != 4) {
                    throw new IllegalArgumentException("input record " + r + " is not [topic, key, value, timestamp]");
                }
                String topic = r.get(0).asText();
                Source s = sources.getOrDefault(topic, new Source(topic, c.defaultKey(), c.defaultValue(), null));
                records.add(new Input(topic, Formats.fromJson(r.get(1), s.key(), "key of " + r),
                    Formats.fromJson(r.get(2), s.value(), "value of " + r), r.get(3).asLong()));
            }
            runs.add(new Run(0, records));
            return runs;
        }
        if (topics.isEmpty()) {
            throw new IllegalArgumentException("input has neither records nor topics");
        }
        long seeds = input.path("seeds").asLong(20);
        for (long seed = 1; seed <= seeds; seed++) {
            runs.add(new Run(seed, new Generator(seed).generate(input, topics)));
        }
        return runs;
    }

    private List<Input> generate(JsonNode input, List<Source> topics) {
        long[] count = pair(input, "count", 50, 200);
        long[] step = pair(input, "step", 0, 100);
        long late = input.path("late").asLong(0);
        long lateBy = input.path("late_by").asLong(500);
        long n = count[0] + below(count[1] - count[0] + 1);
        long ts = 1000;
        List<Input> records = new ArrayList<>();
        for (long i = 0; i < n; i++) {
            Source t = topics.get((int) below(topics.size()));
            JsonNode keys = nonEmpty(t.spec(), "keys", t.topic());
            Object key = Formats.fromJson(keys.get((int) below(keys.size())), t.key(), "a key of " + t.topic());
            Object value;
            if (below(100) < t.spec().path("null_values").asLong(0)) {
                value = null;
            } else if (t.spec().has("longs")) {
                long[] longs = pair(t.spec(), "longs", 0, 0);
                value = longs[0] + below(longs[1] - longs[0] + 1);
            } else {
                JsonNode strings = nonEmpty(t.spec(), "strings", t.topic());
                value = Formats.fromJson(strings.get((int) below(strings.size())), t.value(), "a string of " + t.topic());
            }
            ts += step[0] + below(step[1] - step[0] + 1);
            long rts = ts;
            if (below(100) < late) {
                rts = ts - below(lateBy + 1);
            }
            records.add(new Input(t.topic(), key, value, rts));
        }
        return records;
    }

    private static JsonNode nonEmpty(JsonNode spec, String field, String topic) {
        JsonNode list = spec.path(field);
        if (!list.isArray() || list.isEmpty()) {
            throw new IllegalArgumentException("input topic " + topic + " needs a non-empty \"" + field + "\" list");
        }
        return list;
    }

    private static long[] pair(JsonNode node, String field, long lo, long hi) {
        JsonNode p = node.get(field);
        if (p == null || p.isNull()) {
            return new long[] {lo, hi};
        }
        if (!p.isArray() || p.size() != 2) {
            throw new IllegalArgumentException("\"" + field + "\" must be [lo, hi]: " + p);
        }
        return new long[] {p.get(0).asLong(), p.get(1).asLong()};
    }

    /** FNV-1a 64 over the records' compact JSON lines joined with "\n", as 16 hex digits. */
    static String hash(List<Input> records) {
        List<String> lines = new ArrayList<>();
        for (Input r : records) {
            lines.add(r.line());
        }
        long h = 0xcbf29ce484222325L;
        for (byte b : String.join("\n", lines).getBytes(StandardCharsets.UTF_8)) {
            h ^= b & 0xff;
            h *= 0x100000001b3L;
        }
        return String.format("%016x", h);
    }
}
