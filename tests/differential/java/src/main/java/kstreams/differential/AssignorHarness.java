package kstreams.differential;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.UUID;
import org.apache.kafka.common.utils.Time;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.processor.TaskId;
import org.apache.kafka.streams.processor.assignment.AssignmentConfigs;
import org.apache.kafka.streams.processor.assignment.ProcessId;
import org.apache.kafka.streams.processor.internals.assignment.ClientState;
import org.apache.kafka.streams.processor.internals.assignment.HighAvailabilityTaskAssignor;
import org.apache.kafka.streams.processor.internals.assignment.RackAwareTaskAssignor;

/**
 * Runs Kafka Streams' own task assignor (HighAvailabilityTaskAssignor) over the groups read as JSON lines
 * on standard input and prints its assignments, one JSON line per group: what streams-core's assignor
 * (streams-core/src/runtime/assignor.rs) is compared with (streams-core/testdata/assignor/).
 */
public final class AssignorHarness {
    static TaskId task(String s) {
        String[] p = s.split("_");
        return new TaskId(Integer.parseInt(p[0]), Integer.parseInt(p[1]));
    }

    static Set<TaskId> tasks(JsonNode array) {
        Set<TaskId> out = new TreeSet<>();
        array.forEach(t -> out.add(task(t.asText())));
        return out;
    }

    static ArrayNode names(ObjectMapper mapper, Set<TaskId> tasks) {
        ArrayNode out = mapper.createArrayNode();
        new TreeSet<>(tasks).forEach(t -> out.add(t.subtopology() + "_" + t.partition()));
        return out;
    }

    public static void main(String[] args) throws Exception {
        ObjectMapper mapper = new ObjectMapper();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) continue;
            JsonNode group = mapper.readTree(line);
            List<String> rackTags = new ArrayList<>();
            if (group.has("rack_aware_assignment_tags")) {
                group.get("rack_aware_assignment_tags").forEach(t -> rackTags.add(t.asText()));
            }
            AssignmentConfigs configs = new AssignmentConfigs(
                group.get("acceptable_recovery_lag").asLong(), group.get("max_warmup_replicas").asInt(),
                group.get("num_standby_replicas").asInt(), 600_000L, rackTags,
                OptionalInt.empty(), OptionalInt.empty(), StreamsConfig.RACK_AWARE_ASSIGNMENT_STRATEGY_NONE);
            Map<ProcessId, ClientState> clients = new TreeMap<>();
            for (JsonNode c : group.get("clients")) {
                Map<TaskId, Long> lags = new HashMap<>();
                c.get("lags").fields().forEachRemaining(e -> lags.put(task(e.getKey()), e.getValue().asLong()));
                String hex = c.get("id").asText();
                ProcessId id = new ProcessId(new UUID(Long.parseUnsignedLong(hex.substring(0, 16), 16),
                    Long.parseUnsignedLong(hex.substring(16), 16)));
                Map<String, String> tags = new HashMap<>();
                if (c.has("tags")) {
                    c.get("tags").fields().forEachRemaining(e -> tags.put(e.getKey(), e.getValue().asText()));
                }
                clients.put(id, new ClientState(Collections.emptySet(), Collections.emptySet(), lags, tags,
                    c.get("capacity").asInt(), id));
            }
            RackAwareTaskAssignor racks = new RackAwareTaskAssignor(null, new HashMap<>(), new HashMap<>(),
                new HashMap<>(), new HashMap<>(), null, configs, Time.SYSTEM);
            boolean probing = new HighAvailabilityTaskAssignor().assign(clients, tasks(group.get("all")),
                tasks(group.get("stateful")), racks, configs);
            ObjectNode out = mapper.createObjectNode();
            out.put("probing_rebalance_needed", probing);
            ArrayNode outClients = out.putArray("clients");
            for (Map.Entry<ProcessId, ClientState> e : clients.entrySet()) {
                ObjectNode c = outClients.addObject();
                UUID uuid = e.getKey().id();
                c.put("id", String.format("%016x%016x", uuid.getMostSignificantBits(), uuid.getLeastSignificantBits()));
                c.set("active", names(mapper, e.getValue().activeTasks()));
                c.set("standby", names(mapper, e.getValue().standbyTasks()));
            }
            System.out.println(mapper.writeValueAsString(out));
        }
    }
}
