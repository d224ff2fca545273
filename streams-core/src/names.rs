//! Kafka's rule for topic names, which node and store names follow too (they become parts of topic
//! names), and so does `application.id` (the prefix of every internal topic).

/// Why `name` is not a legal name, or `None`: 1 to 249 characters of `[a-zA-Z0-9._-]`.
pub(crate) fn invalid_reason(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("a name cannot be empty".to_string())
    } else if name.len() > 249 {
        Some(format!("a name can have at most 249 characters, not {}", name.len()))
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .map(|c| format!("`{c}` is not allowed; use ASCII letters, digits, '.', '_' and '-'"))
    }
}
