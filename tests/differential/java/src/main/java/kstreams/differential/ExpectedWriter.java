package kstreams.differential;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * Writes expected/<case>.json in the layout of README.md ("Expected files"): one describe line, output
 * record or store entry per line, each record a compact JSON array, so that diffs read well.
 */
final class ExpectedWriter {
    private ExpectedWriter() {}

    static void write(Runner.Result result, Path dir) throws IOException {
        Files.writeString(dir.resolve(result.name() + ".json"), render(result), StandardCharsets.UTF_8);
    }

    static String render(Runner.Result result) {
        StringBuilder out = new StringBuilder();
        out.append("{\n  \"case\": ").append(Json.compact(result.name()));
        if (result.describe() != null) {
            out.append(",\n  \"describe\": [");
            lines(out, result.describe(), "    ", "  ");
        }
        if (result.error() != null) {
            out.append(",\n  \"error\": ").append(Json.compact(result.error())).append("\n}\n");
            return out.toString();
        }
        out.append(",\n  \"runs\": [");
        List<Runner.RunResult> runs = result.runs();
        for (int i = 0; i < runs.size(); i++) {
            Runner.RunResult run = runs.get(i);
            out.append(i == 0 ? "\n" : ",\n");
            out.append("    {\"seed\": ").append(run.seed())
                .append(", \"inputs\": ").append(run.inputs())
                .append(", \"input_hash\": ").append(Json.compact(run.inputHash())).append(",\n");
            out.append("     \"outputs\": [");
            lines(out, run.outputs(), "      ", "     ");
            out.append(",\n     \"stores\": {");
            boolean first = true;
            for (Map.Entry<String, List<List<Object>>> store : run.stores().entrySet()) {
                out.append(first ? "" : ", ").append(Json.compact(store.getKey())).append(": [");
                lines(out, store.getValue(), "      ", "     ");
                first = false;
            }
            out.append("}}");
        }
        out.append(runs.isEmpty() ? "]\n}\n" : "\n  ]\n}\n");
        return out.toString();
    }

    /** The items of a list opened with "[": one per line at indent, then "]" at closeIndent ("[]" when empty). */
    private static void lines(StringBuilder out, List<?> items, String indent, String closeIndent) {
        if (items.isEmpty()) {
            out.append("]");
            return;
        }
        for (int i = 0; i < items.size(); i++) {
            out.append(i == 0 ? "\n" : ",\n").append(indent).append(Json.compact(items.get(i)));
        }
        out.append("\n").append(closeIndent).append("]");
    }
}
