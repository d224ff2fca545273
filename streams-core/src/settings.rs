//! The names of the settings [`StreamsConfig::set`](crate::config::StreamsConfig::set) knows, and the
//! "did you mean" for a name it does not: below the config and its error, which both need them.

/// The property names [`StreamsConfig::set`](crate::config::StreamsConfig::set) takes (besides the
/// prefixed and the security settings).
pub(crate) const PROPERTIES: [&str; 22] = [
    "application.id",
    "bootstrap.servers",
    "num.stream.threads",
    "processing.guarantee",
    "commit.interval.ms",
    "state.dir",
    "default.api.timeout.ms",
    "poll.ms",
    "repartition.purge.interval.ms",
    "task.timeout.ms",
    "statestore.cache.max.bytes",
    "default.dsl.store",
    "rocksdb.cache.bytes",
    "rocksdb.write.buffer.bytes",
    "statestore.uncommitted.max.bytes",
    "max.poll.records",
    "replication.factor",
    "default.deserialization.exception.handler",
    "default.production.exception.handler",
    "errors.dead.letter.queue.topic.name",
    "security.protocol",
    "sasl.mechanism",
];

/// `" (did you mean `x`?)"` for the known setting closest to `key`, or nothing when none is close: one
/// that differs by a typo or two, or that holds every dot-separated word of `key` (`num.threads`).
pub(crate) fn did_you_mean(key: &str) -> String {
    let words: Vec<&str> = key.split('.').collect();
    PROPERTIES
        .iter()
        .map(|known| (edit_distance(key, known), *known))
        .filter(|(distance, known)| {
            *distance <= 2.max(key.len() / 6)
                || (words.len() > 1 && words.iter().all(|w| known.split('.').any(|k| k == *w)))
        })
        .min()
        .map(|(_, known)| format!(" (did you mean `{known}`?)"))
        .unwrap_or_default()
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}
