package kstreams.differential;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;

/**
 * java kstreams.differential.Main CASES_DIR EXPECTED_DIR [CASE_NAME_SUBSTRING]
 *
 * Reads every CASES_DIR/*.json (each a JSON array of cases), runs each case (or each whose name contains
 * the substring) through Kafka Streams' TopologyTestDriver and writes EXPECTED_DIR/<name>.json. A case
 * that Kafka Streams rejects or fails on gets an "error" and the others go on; a case file that cannot be
 * read, or two cases of one name, stop everything (exit 1).
 *
 * Cases run on as many threads as there are processors (KSTREAMS_DIFFERENTIAL_THREADS overrides): every
 * driver is single-threaded and the cases share nothing, each with a state directory of its own, so the
 * results are the same in any order and a regeneration takes about 1/N of the time.
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) throws IOException {
        if (args.length < 2 || args.length > 3) {
            System.err.println("usage: Main CASES_DIR EXPECTED_DIR [CASE_NAME_SUBSTRING]");
            System.exit(2);
        }
        Path casesDir = Paths.get(args[0]);
        Path expectedDir = Paths.get(args[1]);
        String filter = args.length == 3 ? args[2] : null;

        List<Case> cases = new ArrayList<>();
        Map<String, String> unreadable = new HashMap<>();
        Map<String, Path> names = new HashMap<>();
        for (Path file : caseFiles(casesDir)) {
            JsonNode array = Json.read(file);
            if (!array.isArray()) {
                fail(file + " is not a JSON array of cases");
            }
            for (JsonNode node : array) {
                Case c;
                try {
                    c = Case.parse(node);
                } catch (IllegalArgumentException e) {
                    // A case whose name can be read is written with its error; the others go on.
                    String name = node.path("name").asText("");
                    if (name.isEmpty()) {
                        fail(file + ": " + e.getMessage());
                    }
                    unreadable.put(name, Runner.describe(e));
                    c = new Case(name, null, null, List.of(), null, List.of(), List.of(), 0L);
                }
                Path other = names.putIfAbsent(c.name(), file);
                if (other != null) {
                    fail("two cases are named \"" + c.name() + "\" (" + other + ", " + file + ")");
                }
                if (filter == null || c.name().contains(filter)) {
                    cases.add(c);
                }
            }
        }
        if (cases.isEmpty()) {
            fail(filter == null ? "no cases in " + casesDir : "no case name contains \"" + filter + "\"");
        }

        Files.createDirectories(expectedDir);
        Path stateDir = stateDir();
        List<String> errors = new ArrayList<>();
        ExecutorService pool = Executors.newFixedThreadPool(threads());
        try {
            List<Future<Runner.Result>> results = new ArrayList<>();
            for (int i = 0; i < cases.size(); i++) {
                Case c = cases.get(i);
                Path caseStateDir = stateDir.resolve(Integer.toString(i));
                results.add(pool.submit(() -> {
                    String error = unreadable.get(c.name());
                    Runner.Result result =
                        error != null ? new Runner.Result(c.name(), null, null, error) : Runner.run(c, caseStateDir);
                    ExpectedWriter.write(result, expectedDir);
                    return result;
                }));
            }
            for (Future<Runner.Result> future : results) {
                Runner.Result result = future.get();
                if (result.error() != null) {
                    errors.add(result.name());
                }
            }
        } catch (ExecutionException e) {
            // Runner.run catches what a case throws; this is the writer failing (a full disk, say).
            throw new IOException("differential: could not write an expected file", e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("differential: interrupted", e);
        } finally {
            pool.shutdownNow();
            deleteTree(stateDir);
        }
        System.err.printf("differential: %d case(s) run, %d with an error (its \"error\" in the expected file)%s%n",
            cases.size(), errors.size(), errors.isEmpty() ? "" : ": " + String.join(", ", errors));
        System.exit(0);
    }

    /**
     * The drivers' state directory (RocksDB stores, opened and closed for every run): in memory (/dev/shm)
     * where there is one, which makes a regeneration several times faster on a busy disk; it changes nothing
     * in what the stores hold.
     */
    private static Path stateDir() throws IOException {
        Path shm = Paths.get("/dev/shm");
        if (Files.isDirectory(shm) && Files.isWritable(shm)) {
            return Files.createTempDirectory(shm, "kstreams-differential-");
        }
        return Files.createTempDirectory("kstreams-differential-");
    }

    private static int threads() {
        String given = System.getenv("KSTREAMS_DIFFERENTIAL_THREADS");
        if (given != null && !given.isBlank()) {
            try {
                int n = Integer.parseInt(given.trim());
                if (n >= 1) {
                    return n;
                }
            } catch (NumberFormatException e) {
                // falls through to the error below
            }
            fail("KSTREAMS_DIFFERENTIAL_THREADS must be a whole number of at least 1, not \"" + given + "\"");
        }
        return Runtime.getRuntime().availableProcessors();
    }

    private static List<Path> caseFiles(Path dir) throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.filter(f -> f.getFileName().toString().endsWith(".json")).sorted().toList();
        }
    }

    private static void deleteTree(Path dir) throws IOException {
        try (Stream<Path> paths = Files.walk(dir)) {
            for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }

    private static void fail(String message) {
        System.err.println("differential: " + message);
        System.exit(1);
    }
}
