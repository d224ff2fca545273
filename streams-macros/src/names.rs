//! Kafka's rule for topic and store names, checked at expansion time so that a bad literal is an error on
//! the literal rather than a `TopologyError::InvalidName` when the topology is built. (The same rule as
//! `streams-core/src/names.rs`; this crate depends on nothing of ours, so it is repeated here.)

/// Why `name` is not a valid topic or store name, if it is not: 1 to 249 characters of
/// `[a-zA-Z0-9._-]`.
pub(crate) fn invalid_name(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("a name cannot be empty".to_string())
    } else if name.len() > 249 {
        Some(format!("a name can have at most 249 characters, not {}", name.len()))
    } else {
        name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))).map(|c| {
            format!("`{c}` is not allowed in a topic or store name; use ASCII letters, digits, '.', '_' and '-'")
        })
    }
}

/// The candidate closest to `wanted` by edit distance, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(wanted, c), c))
        .filter(|(d, c)| *d <= (c.len().max(wanted.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafkas_rule() {
        assert_eq!(invalid_name("customer-totals.v1_x"), None);
        assert!(invalid_name("").is_some());
        assert!(invalid_name("a b").unwrap().contains("` `"));
        assert!(invalid_name(&"x".repeat(250)).is_some());
        assert_eq!(invalid_name(&"x".repeat(249)), None);
    }

    #[test]
    fn closest_suggests_only_likely_typos() {
        let fields = ["customer_id", "order_id", "total_value"];
        assert_eq!(closest("customr_id", fields), Some("customer_id"));
        assert_eq!(closest("order", fields), None);
        assert_eq!(closest("zzz", fields), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
