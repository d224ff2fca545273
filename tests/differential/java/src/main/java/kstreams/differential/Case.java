package kstreams.differential;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;

/** One case of a case file (README.md, "Case files"), with the defaults filled in. */
record Case(
    String name,
    String defaultKey,
    String defaultValue,
    List<JsonNode> topology,
    JsonNode input,
    List<Topic> outputs,
    List<Topic> stores,
    long cacheMaxBytes) {

    /** An output topic or a store: a name and the key and value formats. */
    record Topic(String name, String key, String value) {}

    static Case parse(JsonNode node) {
        String name = text(node, "name");
        if (name == null || name.isEmpty()) {
            throw new IllegalArgumentException("a case without a name: " + node);
        }
        String defaultKey = textOr(node, "default_key", "string");
        String defaultValue = textOr(node, "default_value", "string");
        Formats.check(defaultKey);
        Formats.check(defaultValue);
        List<JsonNode> steps = new ArrayList<>();
        node.path("topology").forEach(steps::add);
        List<Topic> outputs = topics(node.path("outputs"), "topic", defaultKey, defaultValue);
        List<Topic> stores = topics(node.path("stores"), "name", defaultKey, defaultValue);
        long cacheMaxBytes = node.path("cache_max_bytes").asLong(0);
        return new Case(name, defaultKey, defaultValue, steps, node.path("input"), outputs, stores, cacheMaxBytes);
    }

    private static List<Topic> topics(JsonNode list, String nameField, String defaultKey, String defaultValue) {
        List<Topic> topics = new ArrayList<>();
        for (JsonNode t : list) {
            topics.add(new Topic(text(t, nameField), textOr(t, "key", defaultKey), textOr(t, "value", defaultValue)));
        }
        return topics;
    }

    /** A string field, or null when it is absent or null. */
    static String text(JsonNode node, String field) {
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) {
            return null;
        }
        if (!v.isTextual()) {
            throw new IllegalArgumentException("\"" + field + "\" must be a string: " + node);
        }
        return v.asText();
    }

    static String textOr(JsonNode node, String field, String otherwise) {
        String v = text(node, field);
        return v == null ? otherwise : v;
    }
}
