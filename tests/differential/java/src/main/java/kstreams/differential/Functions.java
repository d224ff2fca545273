package kstreams.differential;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.kstream.Aggregator;
import org.apache.kafka.streams.kstream.Initializer;
import org.apache.kafka.streams.kstream.KeyValueMapper;
import org.apache.kafka.streams.kstream.Merger;
import org.apache.kafka.streams.kstream.ValueJoiner;
import org.apache.kafka.streams.kstream.Predicate;
import org.apache.kafka.streams.kstream.Reducer;
import org.apache.kafka.streams.kstream.ValueMapper;
import org.apache.kafka.streams.kstream.ValueMapperWithKey;
import org.apache.kafka.streams.processor.RecordContext;
import org.apache.kafka.streams.processor.StreamPartitioner;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.processor.TopicNameExtractor;

/**
 * The fixed function vocabulary of the case files ("name" or "name:arg"), exactly as README.md describes
 * it, null handling included. Values are String, Long or null; a function given a value of the wrong type
 * throws IllegalArgumentException (an error of the case). "Characters" are Unicode code points (Rust's
 * chars()), the same as UTF-16 units for the ASCII strings the cases use.
 */
final class Functions {
    private Functions() {}

    /** "name:arg" split at the first colon; arg is null for a plain "name". */
    private record Spec(String text, String name, String arg) {
        static Spec parse(String text) {
            if (text == null) {
                throw new IllegalArgumentException("a function is missing");
            }
            int colon = text.indexOf(':');
            return colon < 0 ? new Spec(text, text, null) : new Spec(text, text.substring(0, colon), text.substring(colon + 1));
        }

        long n() {
            if (arg == null) {
                throw new IllegalArgumentException("function " + text + " needs a number argument (" + name + ":N)");
            }
            try {
                return Long.parseLong(arg);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("function " + text + ": " + arg + " is not a number");
            }
        }

        String s() {
            if (arg == null) {
                throw new IllegalArgumentException("function " + text + " needs an argument (" + name + ":S)");
            }
            return arg;
        }

        IllegalArgumentException unknown(String kind) {
            return new IllegalArgumentException("unknown " + kind + " \"" + text + "\"");
        }
    }

    static Long asLong(Object v, String fn) {
        if (v == null || v instanceof Long) {
            return (Long) v;
        }
        throw new IllegalArgumentException(fn + ": expected a long, got the " + v.getClass().getSimpleName() + " " + v);
    }

    /** A long operand of arithmetic: null is an error too. */
    static long num(Object v, String fn) {
        Long l = asLong(v, fn);
        if (l == null) {
            throw new IllegalArgumentException(fn + ": expected a long, got null");
        }
        return l;
    }

    static String asString(Object v, String fn) {
        if (v == null || v instanceof String) {
            return (String) v;
        }
        throw new IllegalArgumentException(fn + ": expected a string, got the " + v.getClass().getSimpleName() + " " + v);
    }

    /** Java's string concatenation of a value: null is "null". */
    static String concat(Object a, String sep, Object b) {
        return a + sep + b;
    }

    static String prefix(String s, long n) {
        if (s == null) {
            return null;
        }
        int count = s.codePointCount(0, s.length());
        return count <= n ? s : s.substring(0, s.offsetByCodePoints(0, (int) n));
    }

    static String valueMod(Object v, long n, String fn) {
        Long l = asLong(v, fn);
        return l == null ? null : "m" + Math.floorMod(l, n);
    }

    // Topic choosers (k, v) -> topic, for to(TopicNameExtractor).
    /** Multicast partitioners (KIP-837): v mod n copies, in partitions 0, 1, ...; none (dropped) for 0. */
    static StreamPartitioner<Object, Object> partitioner(String text) {
        Spec f = Spec.parse(text);
        switch (f.name) {
            case "copies_value_mod": {
                long n = f.n();
                return (topic, k, v, partitions) -> {
                    if (!(v instanceof Long)) {
                        return Optional.empty();
                    }
                    Set<Integer> chosen = new TreeSet<>();
                    for (int p = 0; p < Math.floorMod((Long) v, n); p++) {
                        chosen.add(p);
                    }
                    return Optional.of(chosen);
                };
            }
            default: throw f.unknown("partitioner");
        }
    }

    /** Timestamp extractors (record, partition time) -> timestamp, for a source's Consumed. */
    static TimestampExtractor timestampExtractor(String text) {
        Spec f = Spec.parse(text);
        switch (f.name) {
            case "value": return (record, partitionTime) -> {
                Long v = asLong(record.value(), text);
                return v == null ? -1L : v;
            };
            case "value_or_partition_time": return (record, partitionTime) -> {
                Long v = asLong(record.value(), text);
                return v != null && v >= 0 ? v : partitionTime;
            };
            default: throw f.unknown("timestamp extractor");
        }
    }

    static TopicNameExtractor<Object, Object> topicChooser(String text) {
        Spec f = Spec.parse(text);
        switch (f.name) {
            case "topic_value_mod": return new ValueModTopic(f.n());
            default: throw f.unknown("topic chooser");
        }
    }

    /** A class, not a lambda: describe() prints an extractor's toString(), which for a lambda changes every run. */
    static final class ValueModTopic implements TopicNameExtractor<Object, Object> {
        private final long n;

        ValueModTopic(long n) {
            this.n = n;
        }

        @Override
        public String extract(Object k, Object v, RecordContext ctx) {
            return v instanceof Long ? "out-" + Math.floorMod((Long) v, n) : "out-other";
        }

        @Override
        public String toString() {
            return "topic_value_mod:" + n;
        }
    }

    // Predicates (k, v) -> bool.
    static Predicate<Object, Object> predicate(String text) {
        Spec f = Spec.parse(text);
        String t = f.text;
        switch (f.name) {
            case "always": return (k, v) -> true;
            case "never": return (k, v) -> false;
            case "key_null": return (k, v) -> k == null;
            case "value_null": return (k, v) -> v == null;
            case "value_even": return (k, v) -> { Long l = asLong(v, t); return l != null && l % 2 == 0; };
            case "value_odd": return (k, v) -> { Long l = asLong(v, t); return l != null && l % 2 != 0; };
            case "value_gt": { long n = f.n(); return (k, v) -> { Long l = asLong(v, t); return l != null && l > n; }; }
            case "value_lt": { long n = f.n(); return (k, v) -> { Long l = asLong(v, t); return l != null && l < n; }; }
            case "key_eq": { String s = f.s(); return (k, v) -> { String key = asString(k, t); return key != null && key.equals(s); }; }
            case "key_starts": { String s = f.s(); return (k, v) -> { String key = asString(k, t); return key != null && key.startsWith(s); }; }
            case "value_len_gt": {
                long n = f.n();
                return (k, v) -> { String s = asString(v, t); return s != null && s.codePointCount(0, s.length()) > n; };
            }
            default: throw f.unknown("predicate");
        }
    }

    // Value mappers (k, v) -> v'.
    static ValueMapperWithKey<Object, Object, Object> valueMapper(String text) {
        Spec f = Spec.parse(text);
        String t = f.text;
        switch (f.name) {
            case "times": { long n = f.n(); return (k, v) -> { Long l = asLong(v, t); return l == null ? null : l * n; }; }
            case "plus": { long n = f.n(); return (k, v) -> { Long l = asLong(v, t); return l == null ? null : l + n; }; }
            case "null_if_gt": { long n = f.n(); return (k, v) -> { Long l = asLong(v, t); return l == null || l > n ? null : l; }; }
            case "to_string": return (k, v) -> v instanceof String ? v : v == null ? null : asLong(v, t).toString();
            case "length": return (k, v) -> { String s = asString(v, t); return s == null ? null : (long) s.codePointCount(0, s.length()); };
            case "upper": return (k, v) -> { String s = asString(v, t); return s == null ? null : s.toUpperCase(Locale.ROOT); };
            case "to_null": return (k, v) -> null;
            case "key_value": return (k, v) -> concat(k, ":", v);
            default: throw f.unknown("value mapper");
        }
    }

    // Key selectors (k, v) -> k'.
    static KeyValueMapper<Object, Object, Object> keySelector(String text) {
        Spec f = Spec.parse(text);
        String t = f.text;
        switch (f.name) {
            case "value_mod": { long n = f.n(); return (k, v) -> valueMod(v, n, t); }
            case "value": return (k, v) -> v;
            case "key_prefix": { long n = f.n(); return (k, v) -> prefix(asString(k, t), n); }
            case "key_upper": return (k, v) -> { String s = asString(k, t); return s == null ? null : s.toUpperCase(Locale.ROOT); };
            case "to_null": return (k, v) -> null;
            case "value_unless": { String unless = f.arg; return (k, v) -> unless.equals(v) ? null : v; }
            default: throw f.unknown("key selector");
        }
    }

    // Key-value mappers (k, v) -> (k', v').
    static KeyValueMapper<Object, Object, KeyValue<Object, Object>> keyValueMapper(String text) {
        Spec f = Spec.parse(text);
        String t = f.text;
        switch (f.name) {
            case "swap": return (k, v) -> KeyValue.pair(v, k);
            case "rekey_value_mod": { long n = f.n(); return (k, v) -> KeyValue.pair(valueMod(v, n, t), v); }
            case "rekey_key_prefix": { long n = f.n(); return (k, v) -> KeyValue.pair(prefix(asString(k, t), n), v); }
            case "identity": return KeyValue::pair;
            default: throw f.unknown("key-value mapper");
        }
    }

    // Flat value mappers v -> [v'] (flat_map_values).
    static ValueMapper<Object, Iterable<Object>> flatValueMapper(String text) {
        Spec f = Spec.parse(text);
        String t = f.text;
        switch (f.name) {
            case "repeat_mod": {
                long n = f.n();
                return v -> {
                    Long l = asLong(v, t);
                    return l == null ? Collections.emptyList() : Collections.nCopies((int) Math.floorMod(l, n), (Object) l);
                };
            }
            case "chars": return v -> {
                String s = asString(v, t);
                List<Object> out = new ArrayList<>();
                if (s != null) {
                    s.codePoints().forEach(c -> out.add(new String(Character.toChars(c))));
                }
                return out;
            };
            default: throw f.unknown("flat value mapper");
        }
    }

    // Flat key-value mappers (k, v) -> [(k', v')] (flat_map).
    static KeyValueMapper<Object, Object, Iterable<KeyValue<Object, Object>>> flatMapper(String text) {
        Spec f = Spec.parse(text);
        if (!f.name.equals("fan_out")) {
            throw f.unknown("flat mapper");
        }
        long n = f.n();
        return (k, v) -> {
            List<KeyValue<Object, Object>> out = new ArrayList<>();
            for (long i = 0; i < n; i++) {
                out.add(KeyValue.pair(concat(k, "#", i), v));
            }
            return out;
        };
    }

    // Reducers (agg, v) -> agg'.
    static Reducer<Object> reducer(String text) {
        Spec f = Spec.parse(text);
        String t = f.text;
        switch (f.name) {
            case "sum": return (a, v) -> num(a, t) + num(v, t);
            case "max": return (a, v) -> Math.max(num(a, t), num(v, t));
            case "sub": return (a, v) -> num(a, t) - num(v, t);
            case "concat": return (a, v) -> concat(a, ",", v);
            case "latest": return (a, v) -> v;
            default: throw f.unknown("reducer");
        }
    }

    // Initializers () -> agg.
    static Initializer<Object> initializer(String text) {
        Spec f = Spec.parse(text);
        switch (f.name) {
            case "zero": return () -> 0L;
            case "empty": return () -> "";
            default: throw f.unknown("initializer");
        }
    }

    // Aggregators (k, v, agg) -> agg' (adders and subtractors).
    static Aggregator<Object, Object, Object> aggregator(String text) {
        Spec f = Spec.parse(text);
        String t = f.text;
        switch (f.name) {
            case "sum": return (k, v, a) -> num(a, t) + num(v, t);
            case "sub": return (k, v, a) -> num(a, t) - num(v, t);
            case "count_up": return (k, v, a) -> num(a, t) + 1;
            case "count_down": return (k, v, a) -> num(a, t) - 1;
            case "concat": return (k, v, a) -> concat(a, ",", v);
            case "concat_minus": return (k, v, a) -> concat(a, "-", v);
            default: throw f.unknown("aggregator");
        }
    }

    // Value joiners (value, other value) -> result.
    static ValueJoiner<Object, Object, Object> joiner(String text) {
        Spec f = Spec.parse(text);
        switch (f.name) {
            case "pair": return (a, b) -> concat(a, "+", b);
            default: throw f.unknown("joiner");
        }
    }

    // Session mergers (k, agg so far, session's agg) -> agg.
    static Merger<Object, Object> merger(String text) {
        Spec f = Spec.parse(text);
        String t = f.text;
        switch (f.name) {
            case "sum": return (k, a, b) -> num(a, t) + num(b, t);
            case "concat": return (k, a, b) -> concat(a, "|", b);
            default: throw f.unknown("merger");
        }
    }
}
