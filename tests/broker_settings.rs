//! Keeps the two ways of running the project's Kafka alike: `scripts/kafka.sh` starts the broker with
//! `scripts/kafka/server.properties`, and `docker-compose.yml` must set every one of those settings to the
//! same value (as the image's `KAFKA_*` variables) and nothing else but its listeners. Without this the
//! test command passed against one and not the other (short session timeouts are a broker setting).

use std::collections::BTreeMap;

const PROPERTIES: &str = include_str!("../scripts/kafka/server.properties");
const COMPOSE: &str = include_str!("../docker-compose.yml");

/// The settings a broker gets from its listeners and ports, which each way sets for itself.
const LISTENER_SETTINGS: [&str; 4] =
    ["listeners", "advertised.listeners", "listener.security.protocol.map", "controller.quorum.voters"];

fn properties() -> BTreeMap<String, String> {
    PROPERTIES
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("server.properties: `{l}` is not key=value"));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

/// The apache/kafka image's mapping from a variable to a setting: `KAFKA_` dropped, `___` is `-`, `__` is
/// `_`, `_` is `.`, lower case.
fn setting_of(variable: &str) -> Option<String> {
    let rest = variable.strip_prefix("KAFKA_")?;
    Some(rest.to_lowercase().replace("___", "-").replace("__", "\u{0}").replace('_', ".").replace('\u{0}', "_"))
}

/// The `KAFKA_*` variables of the compose file's `environment:` block, as settings.
fn compose() -> BTreeMap<String, String> {
    let mut in_environment = false;
    let mut out = BTreeMap::new();
    for line in COMPOSE.lines() {
        let trimmed = line.trim();
        if trimmed == "environment:" {
            in_environment = true;
            continue;
        }
        if !in_environment || trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        // The block ends at the first line indented like its `environment:` key.
        if !line.starts_with("      ") {
            break;
        }
        let (variable, value) = trimmed.split_once(':').unwrap_or_else(|| panic!("docker-compose.yml: `{line}`"));
        let setting = setting_of(variable.trim()).unwrap_or_else(|| panic!("`{variable}` is not a KAFKA_ variable"));
        out.insert(setting, value.trim().trim_matches('"').to_string());
    }
    out
}

#[test]
fn docker_compose_sets_what_kafka_sh_sets() {
    let script = properties();
    let compose = compose();
    assert!(script.len() >= 15, "server.properties read as {script:?}");
    for (key, value) in &script {
        assert_eq!(
            compose.get(key),
            Some(value),
            "docker-compose.yml must set `{key}` to `{value}` as scripts/kafka/server.properties does"
        );
    }
    for key in compose.keys() {
        assert!(
            script.contains_key(key) || LISTENER_SETTINGS.contains(&key.as_str()),
            "docker-compose.yml sets `{key}`, which scripts/kafka/server.properties does not: add it there too"
        );
    }
}

#[test]
fn the_image_s_variable_names_map_to_settings() {
    assert_eq!(setting_of("KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS").as_deref(), Some("group.min.session.timeout.ms"));
    assert_eq!(setting_of("KAFKA_LISTENER_NAME_A__B___C").as_deref(), Some("listener.name.a_b-c"));
    assert_eq!(setting_of("PATH"), None);
}
