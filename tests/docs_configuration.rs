//! Keeps `docs/configuration.md` honest: its settings table must list every property that
//! `StreamsConfig::from_properties` accepts and every field of `StreamsConfig`, with the field's type and
//! `StreamsConfig::new`'s default in the property's own units; and every librdkafka setting the rdkafka
//! clients set must appear on the page. Adding a setting without documenting it fails here.

use std::collections::{BTreeMap, BTreeSet};

use kstreams::client::{ClientError, ClientErrorKind};
use kstreams::config::{DslStoreType, ProcessingGuarantee, StreamsConfig};
use kstreams::handler::{DeserializationResponse, ProductionResponse};
use kstreams::record::{Headers, RawRecord};
use kstreams::StreamsError;

const PAGE: &str = include_str!("../docs/configuration.md");
const CONFIG_SOURCE: &str = include_str!("../streams-core/src/config.rs");
const KAFKA_CLIENTS_SOURCE: &str = include_str!("../streams-core/src/kafka/mod.rs");

/// One row of the page's settings table.
#[derive(Debug)]
struct Row {
    /// `num.stream.threads`, or a prefix such as `consumer.` for `consumer.*`.
    property: String,
    field: String,
    ty: String,
    /// The first backticked value of the default column, or the column as written (`(required)`).
    default: String,
}

/// The text between the first pair of backticks in `cell`.
fn backticked(cell: &str) -> Option<&str> {
    let start = cell.find('`')? + 1;
    let len = cell[start..].find('`')?;
    Some(&cell[start..start + len])
}

/// The rows of the table under `## Settings`.
fn settings_table() -> Vec<Row> {
    let section = PAGE.split("\n## Settings\n").nth(1).expect("docs/configuration.md has a `## Settings` section");
    let mut lines = section.lines().skip_while(|l| !l.starts_with('|'));
    let header = lines.next().expect("a table under `## Settings`");
    assert!(header.starts_with("| property | field | type | default |"), "unexpected table header: {header}");
    lines.next(); // | --- | ...
    lines
        .take_while(|l| l.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            assert!(cells.len() >= 5, "a settings row needs five cells: {line}");
            let cell = |i: usize| backticked(cells[i]).unwrap_or_else(|| panic!("cell {i} has no `value`: {line}"));
            let property = cell(0).strip_suffix('*').unwrap_or(cell(0)).to_string();
            let default = backticked(cells[3]).unwrap_or(cells[3]).to_string();
            Row { property, field: cell(1).to_string(), ty: cell(2).to_string(), default }
        })
        .collect()
}

/// Property names and prefixes `from_properties` accepts, read from its source: every string literal in
/// its body that looks like a property name (`a.b.c`) or is a `strip_prefix` argument. The caller keeps
/// only those `from_properties` really accepts.
fn source_property_names() -> BTreeSet<String> {
    let start = CONFIG_SOURCE.find("pub fn from_properties").expect("from_properties in config.rs");
    let end = start + CONFIG_SOURCE[start..].find("pub fn validate").expect("validate after from_properties");
    let body = &CONFIG_SOURCE[start..end];
    let looks_like_property = |s: &str| {
        let parts: Vec<&str> = s.split('.').collect();
        parts.len() >= 2
            && parts.iter().enumerate().all(|(i, p)| {
                (i == parts.len() - 1 && p.is_empty())
                    || (!p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
            })
    };
    body.split('"').skip(1).step_by(2).filter(|s| looks_like_property(s)).map(str::to_string).collect()
}

fn base() -> Vec<(String, String)> {
    vec![("application.id".into(), "app".into()), ("bootstrap.servers".into(), "localhost:9092".into())]
}

fn with(property: &str, value: &str) -> Result<StreamsConfig, kstreams::config::ConfigError> {
    let mut props = base();
    props.push((property.to_string(), value.to_string()));
    StreamsConfig::from_properties(props)
}

/// `std::any::type_name` without module paths: `alloc::sync::Arc<dyn streams_core::handler::X>` →
/// `Arc<dyn X>`.
fn short_type<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let (mut out, mut ident) = (String::new(), String::new());
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            ident.push(c);
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            ident.clear();
        } else {
            out.push_str(&ident);
            ident.clear();
            out.push(c);
        }
    }
    out + &ident
}

fn type_of<T: ?Sized>(_: &T) -> String {
    short_type::<T>()
}

/// Every field of `config` as (type, value in the property's units and syntax), by field name.
/// `StreamsConfig` is `#[non_exhaustive]`, so the destructuring cannot be exhaustive here:
/// `render_covers_every_field_of_streams_config` checks the names against the struct's source instead.
fn render(config: &StreamsConfig) -> BTreeMap<&'static str, (String, String)> {
    let StreamsConfig {
        application_id,
        bootstrap_servers,
        num_stream_threads,
        processing_guarantee,
        commit_interval,
        state_dir,
        cache_max_bytes,
        default_dsl_store,
        rocksdb_cache_bytes,
        rocksdb_write_buffer_bytes,
        statestore_uncommitted_max_bytes,
        max_poll_records,
        task_timeout,
        replication_factor,
        default_api_timeout,
        poll_timeout,
        repartition_purge_interval,
        deserialization_handler,
        production_handler,
        client_overrides,
        consumer_overrides,
        producer_overrides,
        admin_overrides,
        ..
    } = config;
    let map = |m: &BTreeMap<String, String>| {
        if m.is_empty() {
            "(empty)".to_string()
        } else {
            m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
        }
    };
    let tmp = std::env::temp_dir();
    let state_dir_text = match state_dir.strip_prefix(&tmp) {
        Ok(rest) => format!("<tmp>/{}", rest.display()),
        Err(_) => state_dir.display().to_string(),
    };
    // Handlers are told apart by what they do.
    let raw = RawRecord {
        topic: "t".into(),
        partition: 0,
        offset: 0,
        timestamp: 0,
        key: None,
        value: None,
        headers: Headers::new(),
    };
    let deserialization = match deserialization_handler.handle(&raw, &StreamsError::Internal("probe".into())) {
        DeserializationResponse::Fail => "log_and_fail".to_string(),
        DeserializationResponse::Continue(records) if records.is_empty() => "log_and_continue".to_string(),
        DeserializationResponse::Continue(records) => format!("dead letters to {}", records[0].topic),
    };
    let rejected = ClientError::new("produce to t", "probe", ClientErrorKind::Fatal);
    let production = match production_handler.handle(&rejected) {
        ProductionResponse::Fail => "fail",
        ProductionResponse::Continue => "continue",
    };
    BTreeMap::from([
        ("application_id", (type_of(application_id), application_id.clone())),
        ("bootstrap_servers", (type_of(bootstrap_servers), bootstrap_servers.clone())),
        ("num_stream_threads", (type_of(num_stream_threads), num_stream_threads.to_string())),
        (
            "processing_guarantee",
            (
                type_of(processing_guarantee),
                match processing_guarantee {
                    ProcessingGuarantee::AtLeastOnce => "at_least_once",
                    ProcessingGuarantee::ExactlyOnceV2 => "exactly_once_v2",
                }
                .to_string(),
            ),
        ),
        // `None` stands for the guarantee's default: the page documents what applies.
        ("commit_interval", (type_of(commit_interval), config.effective_commit_interval().as_millis().to_string())),
        ("state_dir", (type_of(state_dir), state_dir_text)),
        ("cache_max_bytes", (type_of(cache_max_bytes), cache_max_bytes.to_string())),
        (
            "default_dsl_store",
            (
                type_of(default_dsl_store),
                match default_dsl_store {
                    DslStoreType::RocksDb => "rocksDB",
                    DslStoreType::InMemory => "in_memory",
                }
                .to_string(),
            ),
        ),
        ("rocksdb_cache_bytes", (type_of(rocksdb_cache_bytes), rocksdb_cache_bytes.to_string())),
        ("rocksdb_write_buffer_bytes", (type_of(rocksdb_write_buffer_bytes), rocksdb_write_buffer_bytes.to_string())),
        (
            "statestore_uncommitted_max_bytes",
            (type_of(statestore_uncommitted_max_bytes), statestore_uncommitted_max_bytes.to_string()),
        ),
        ("max_poll_records", (type_of(max_poll_records), max_poll_records.to_string())),
        ("task_timeout", (type_of(task_timeout), task_timeout.as_millis().to_string())),
        ("replication_factor", (type_of(replication_factor), replication_factor.to_string())),
        ("default_api_timeout", (type_of(default_api_timeout), default_api_timeout.as_millis().to_string())),
        ("poll_timeout", (type_of(poll_timeout), poll_timeout.as_millis().to_string())),
        (
            "repartition_purge_interval",
            (type_of(repartition_purge_interval), repartition_purge_interval.as_millis().to_string()),
        ),
        ("deserialization_handler", (type_of(deserialization_handler), deserialization)),
        ("production_handler", (type_of(production_handler), production.to_string())),
        ("client_overrides", (type_of(client_overrides), map(client_overrides))),
        ("consumer_overrides", (type_of(consumer_overrides), map(consumer_overrides))),
        ("producer_overrides", (type_of(producer_overrides), map(producer_overrides))),
        ("admin_overrides", (type_of(admin_overrides), map(admin_overrides))),
    ])
}

#[test]
fn docs_configuration_lists_every_property_from_properties_accepts() {
    let rows = settings_table();
    let documented: BTreeSet<&str> = rows.iter().map(|r| r.property.as_str()).collect();
    let accepted: BTreeSet<String> = source_property_names()
        .into_iter()
        .filter(|name| {
            // A prefix is accepted when a key under it is; a name when it is not an unknown key.
            let key = if name.ends_with('.') { format!("{name}some.setting") } else { name.clone() };
            !matches!(with(&key, "x"), Err(kstreams::config::ConfigError::Unknown(_)))
        })
        .collect();
    assert!(accepted.len() >= 20, "the source scan found too few properties: {accepted:?}");
    // `sasl.mechanism` is documented by the `sasl.*` row.
    let is_documented =
        |p: &str| documented.contains(p) || documented.iter().any(|d| d.ends_with('.') && p.starts_with(d));
    let undocumented: Vec<&String> = accepted.iter().filter(|p| !is_documented(p)).collect();
    assert!(undocumented.is_empty(), "properties missing from docs/configuration.md: {undocumented:?}");
    for row in &rows {
        let key =
            if row.property.ends_with('.') { format!("{}some.setting", row.property) } else { row.property.clone() };
        assert!(
            !matches!(with(&key, "x"), Err(kstreams::config::ConfigError::Unknown(_))),
            "docs/configuration.md documents `{}`, which from_properties does not accept",
            row.property
        );
    }
}

/// The public fields of `StreamsConfig`, read from its definition in config.rs.
fn source_field_names() -> BTreeSet<String> {
    let start = CONFIG_SOURCE.find("pub struct StreamsConfig {").expect("StreamsConfig in config.rs");
    let body = &CONFIG_SOURCE[start..];
    let body = &body[..body.find("\n}").expect("the end of StreamsConfig")];
    body.lines()
        .filter_map(|line| line.trim().strip_prefix("pub ")?.split_once(':').map(|(name, _)| name.to_string()))
        .collect()
}

#[test]
fn render_covers_every_field_of_streams_config() {
    let fields = source_field_names();
    assert!(fields.len() >= 20, "the source scan found too few fields: {fields:?}");
    let rendered: BTreeSet<String> =
        render(&StreamsConfig::new("app", "localhost:9092")).into_keys().map(str::to_string).collect();
    assert_eq!(rendered, fields, "render() here must name every field of StreamsConfig (and then document it)");
}

#[test]
fn docs_configuration_lists_every_field_with_its_type() {
    let rows = settings_table();
    let fields = render(&StreamsConfig::new("app", "localhost:9092"));
    for (field, (ty, _)) in &fields {
        let documented: Vec<&Row> = rows.iter().filter(|r| r.field == *field).collect();
        assert!(!documented.is_empty(), "field `{field}` is missing from docs/configuration.md");
        for row in documented {
            assert_eq!(&row.ty, ty, "the type of `{field}` in docs/configuration.md");
        }
    }
    for row in &rows {
        assert!(
            fields.contains_key(row.field.as_str()),
            "docs/configuration.md names a field `{}` that does not exist",
            row.field
        );
    }
}

#[test]
fn docs_configuration_defaults_are_those_of_streams_config_new() {
    let defaults = render(&StreamsConfig::new("app", "localhost:9092"));
    let from_properties = render(&StreamsConfig::from_properties(base()).expect("the required settings suffice"));
    for row in settings_table() {
        if row.default.starts_with('(') && row.default != "(empty)" {
            continue; // (required), (none)
        }
        let (_, value) = &defaults[row.field.as_str()];
        assert_eq!(&row.default, value, "the default of `{}` in docs/configuration.md", row.property);
        assert_eq!(&from_properties[row.field.as_str()].1, value, "from_properties' default of `{}`", row.property);
        if !row.property.ends_with('.') && row.property != "state.dir" {
            // The documented default, given as the property's value, is accepted and changes nothing.
            let config = with(&row.property, &row.default)
                .unwrap_or_else(|e| panic!("`{}={}` is refused: {e}", row.property, row.default));
            assert_eq!(&render(&config)[row.field.as_str()].1, value, "`{}={}`", row.property, row.default);
        }
    }
    // The one default that depends on another setting.
    let eos = with("processing.guarantee", "exactly_once_v2").unwrap();
    let written = format!("`{}` under `exactly_once_v2`", eos.effective_commit_interval().as_millis());
    assert!(PAGE.contains(&written), "docs/configuration.md should say {written}");
}

#[test]
fn docs_configuration_names_every_client_setting_the_library_sets() {
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for piece in KAFKA_CLIENTS_SOURCE.split(".set(\"").skip(1) {
        names.insert(piece.split('"').next().unwrap());
    }
    assert!(names.len() >= 15, "the source scan found too few client settings: {names:?}");
    let client_section = PAGE.split("\n## Client settings\n").nth(1).expect("a `## Client settings` section");
    let missing: Vec<&&str> = names.iter().filter(|n| !client_section.contains(&format!("`{n}`"))).collect();
    assert!(missing.is_empty(), "client settings set in streams-core/src/kafka/mod.rs but not documented: {missing:?}");
}
