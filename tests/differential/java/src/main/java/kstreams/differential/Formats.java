package kstreams.differential;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;

/**
 * The two serde formats of the case files: "string" (UTF-8, Kafka's StringSerde) and "long" (8 bytes
 * big-endian, LongSerde). A null key or value is a Kafka null in either format. Values travel through the
 * runner as Java String, Long or null. Outputs may also be read as "hex": any bytes, as lowercase hex (an
 * internal topic's records).
 */
final class Formats {
    private Formats() {}

    static void check(String format) {
        if (!"string".equals(format) && !"long".equals(format)) {
            throw new IllegalArgumentException("unknown serde format \"" + format + "\" (string or long)");
        }
    }

    /** The serde of a format; null for a null format (the operator then gets no serde). */
    @SuppressWarnings("unchecked")
    static Serde<Object> serde(String format) {
        if (format == null) {
            return null;
        }
        check(format);
        Serde<?> serde = "long".equals(format) ? Serdes.Long() : Serdes.String();
        return (Serde<Object>) serde;
    }

    static Serializer<Object> serializer(String format) {
        return serde(format).serializer();
    }

    /** The inner key's format of a windowed format ("windowed:string"), or null. */
    static String windowedInner(String format) {
        return format != null && format.startsWith("windowed:") ? format.substring("windowed:".length()) : null;
    }

    /** The inner key's format of a session-windowed format ("session:string"), or null. */
    static String sessionInner(String format) {
        return format != null && format.startsWith("session:") ? format.substring("session:".length()) : null;
    }

    /**
     * Kafka bytes (possibly null) to the Java value they hold in the format. A windowed key (Kafka's
     * TimeWindowedSerializer: the inner key's bytes, then the window start as 8 bytes big-endian) is the
     * list [inner key, start]; a session-windowed key (SessionWindowedSerializer: the inner key's bytes,
     * the end, then the start) is the list [inner key, start, end].
     */
    static Object decode(byte[] bytes, String format) {
        if ("hex".equals(format)) {
            return bytes == null ? null : java.util.HexFormat.of().formatHex(bytes);
        }
        String session = sessionInner(format);
        if (session != null) {
            if (bytes == null) {
                return null;
            }
            if (bytes.length < 16) {
                throw new IllegalArgumentException(bytes.length + " bytes are too few for a session-windowed key");
            }
            byte[] key = java.util.Arrays.copyOfRange(bytes, 0, bytes.length - 16);
            long end = java.nio.ByteBuffer.wrap(bytes, bytes.length - 16, 8).getLong();
            long start = java.nio.ByteBuffer.wrap(bytes, bytes.length - 8, 8).getLong();
            return java.util.Arrays.asList(decode(key, session), start, end);
        }
        String inner = windowedInner(format);
        if (inner != null) {
            if (bytes == null) {
                return null;
            }
            if (bytes.length < 8) {
                throw new IllegalArgumentException(bytes.length + " bytes are too few for a windowed key");
            }
            byte[] key = java.util.Arrays.copyOfRange(bytes, 0, bytes.length - 8);
            long start = java.nio.ByteBuffer.wrap(bytes, bytes.length - 8, 8).getLong();
            return java.util.Arrays.asList(decode(key, inner), start);
        }
        check(format);
        if (bytes == null) {
            return null;
        }
        if ("long".equals(format)) {
            try (LongDeserializer deserializer = new LongDeserializer()) {
                return deserializer.deserialize("", bytes);
            }
        }
        return new String(bytes, StandardCharsets.UTF_8);
    }

    /** A value written in a case file (a key of "keys", a hand-written record) as the Java value of the format. */
    static Object fromJson(JsonNode node, String format, String what) {
        check(format);
        if (node == null || node.isNull()) {
            return null;
        }
        if ("long".equals(format)) {
            if (!node.isIntegralNumber() || !node.canConvertToLong()) {
                throw new IllegalArgumentException(what + ": " + node + " is not a long");
            }
            return node.asLong();
        }
        if (!node.isTextual()) {
            throw new IllegalArgumentException(what + ": " + node + " is not a string");
        }
        return node.asText();
    }

    /** A value for the expected file: String, Long (Integer widened) or null; anything else is an error. */
    static Object toJsonValue(Object value, String what) {
        if (value == null || value instanceof String || value instanceof Long) {
            return value;
        }
        if (value instanceof Integer || value instanceof Short || value instanceof Byte) {
            return ((Number) value).longValue();
        }
        throw new IllegalArgumentException(what + ": a " + value.getClass().getName() + " (" + value
            + ") is neither a string nor a long");
    }
}
