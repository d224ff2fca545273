//! TLS and SASL against the project's Kafka: `scripts/kafka.sh` starts it with a SASL_SSL listener (a CA
//! and a broker certificate made at start, a SCRAM-SHA-512 user made at format time) next to the plain
//! one, and `scripts/test.sh` exports its settings (`scripts/kafka.sh sasl-ssl`). Certificate
//! verification stays on: the clients trust the generated CA and check the broker's name.

mod example_runs;

use std::time::{Duration, Instant};

use kstreams::client::ClientSupplier;
use kstreams::config::StreamsConfig;
use kstreams::prelude::*;
use kstreams::runtime::KafkaStreams;

/// The SASL_SSL listener's settings, from the environment `scripts/test.sh` sets.
struct SaslSsl {
    bootstrap: String,
    ca: String,
    username: String,
    password: String,
}

fn sasl_ssl() -> SaslSsl {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: run these tests through ./scripts/test.sh, or export the lines \
                 `scripts/kafka.sh sasl-ssl` prints for the Kafka that scripts/kafka.sh started"
            )
        })
    };
    SaslSsl {
        bootstrap: var("KSTREAMS_SASL_SSL_BOOTSTRAP"),
        ca: var("KSTREAMS_SASL_SSL_CA"),
        username: var("KSTREAMS_SASL_USERNAME"),
        password: var("KSTREAMS_SASL_PASSWORD"),
    }
}

/// The lines of a `.properties` file for SCRAM-SHA-512 over TLS, as docs/security.md shows them.
fn scram_properties(listener: &SaslSsl, password: &str, ca: Option<&str>) -> String {
    let mut lines = vec![
        format!("bootstrap.servers={}", listener.bootstrap),
        "security.protocol=SASL_SSL".to_string(),
        "sasl.mechanism=SCRAM-SHA-512".to_string(),
        format!("sasl.username={}", listener.username),
        format!("sasl.password={password}"),
        // librdkafka's default since 2.0; said here so the test states what it relies on.
        "ssl.endpoint.identification.algorithm=https".to_string(),
    ];
    if let Some(ca) = ca {
        lines.push(format!("ssl.ca.location={ca}"));
    }
    lines.join("\n") + "\n"
}

#[test]
fn order_totals_runs_end_to_end_over_sasl_ssl_with_scram() {
    let listener = sasl_ssl();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sasl-ssl.properties");
    let properties = format!(
        "application.id=order-totals-example\n{}",
        scram_properties(&listener, &listener.password, Some(&listener.ca))
    );
    std::fs::write(&file, properties).unwrap();
    let out = example_runs::run(
        "order_totals",
        None,
        &["--config", file.to_str().unwrap(), "--orders", "200"],
        &["final totals match a plain loop over all"],
    );
    assert!(out.contains(&format!("on Kafka at {}", listener.bootstrap)), "not over SASL_SSL:\n{out}");
}

/// Starts an application with `properties` (a short `default.api.timeout.ms`) and returns its error and
/// how long the start took to fail.
fn failed_start(properties: &str) -> (String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.properties");
    std::fs::write(&file, format!("application.id=security-refused\ndefault.api.timeout.ms=5000\n{properties}"))
        .unwrap();
    let mut config = StreamsConfig::from_properties_file(&file).unwrap();
    config.state_dir = dir.path().join("state");
    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("security-refused-in").to("security-refused-out");
    let mut app = KafkaStreams::new(builder.build().unwrap(), config).unwrap();
    let started = Instant::now();
    let error = app.start().expect_err("the broker must refuse this client");
    let elapsed = started.elapsed();
    let _ = app.close();
    (error.to_string(), elapsed)
}

#[test]
fn a_wrong_password_is_a_clear_error_within_the_api_timeout() {
    let listener = sasl_ssl();
    let (error, elapsed) = failed_start(&scram_properties(&listener, "not-the-password", Some(&listener.ca)));
    println!("{error} (after {elapsed:?})");
    assert!(error.contains(&listener.bootstrap), "the error does not name the broker: {error}");
    assert!(error.contains("SASL authentication error"), "the error does not name the cause: {error}");
    assert!(error.contains("invalid credentials"), "the error does not name the cause: {error}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?} with default.api.timeout.ms=5000");
}

#[test]
fn an_untrusted_broker_certificate_is_a_clear_error_within_the_api_timeout() {
    let listener = sasl_ssl();
    // No ssl.ca.location: the system's CAs, none of which signed the test broker's certificate.
    let (error, elapsed) = failed_start(&scram_properties(&listener, &listener.password, None));
    println!("{error} (after {elapsed:?})");
    assert!(error.contains(&listener.bootstrap), "the error does not name the broker: {error}");
    assert!(error.contains("certificate verify failed"), "the error does not name the cause: {error}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?} with default.api.timeout.ms=5000");
}

/// The library's own group member (its connections, not librdkafka's) over SASL_SSL: `mechanism` with
/// `password`, trusting `ca`.
fn group_member(
    listener: &SaslSsl,
    mechanism: &str,
    password: &str,
    ca: Option<&str>,
) -> Result<Box<dyn kstreams::client::GroupMember>, kstreams::client::ClientError> {
    let properties = scram_properties(listener, password, ca).replace("SCRAM-SHA-512", mechanism);
    let mut config = StreamsConfig::from_properties(
        properties.lines().filter_map(|l| l.split_once('=')).chain([("application.id", "security-group-member")]),
    )
    .unwrap();
    config.application_id = format!("security-group-member-{}", std::process::id());
    kstreams::kafka::RdKafkaSupplier.group_member(&config, "security-member")
}

#[test]
fn the_librarys_group_member_joins_over_sasl_ssl_with_scram_and_plain() {
    use kstreams::client::{Assignment, GroupEvent, Subscription, TopicPartition};
    let listener = sasl_ssl();
    for mechanism in ["SCRAM-SHA-512", "PLAIN"] {
        let mut member = group_member(&listener, mechanism, &listener.password, Some(&listener.ca)).unwrap();
        member.join(Subscription { topics: vec!["t".into()], ..Subscription::default() }).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let (generation, id) = loop {
            match member.poll(Duration::from_millis(100)).unwrap() {
                GroupEvent::Lead { generation, members } => break (generation, members[0].member_id.clone()),
                GroupEvent::Idle => assert!(Instant::now() < deadline, "{mechanism}: no answer"),
                other => panic!("{mechanism}: {other:?}"),
            }
        };
        let part = Assignment { partitions: vec![TopicPartition::new("t", 0)], user_data: vec![7] };
        member.sync(generation, vec![(id, part.clone())]).unwrap();
        loop {
            match member.poll(Duration::from_millis(100)).unwrap() {
                GroupEvent::Assigned { assignment, .. } => break assert_eq!(assignment, part, "{mechanism}"),
                GroupEvent::Idle => assert!(Instant::now() < deadline, "{mechanism}: no assignment"),
                other => panic!("{mechanism}: {other:?}"),
            }
        }
        member.close();
    }
}

#[test]
fn the_librarys_group_member_names_a_wrong_password_or_an_untrusted_certificate() {
    use kstreams::client::{ClientErrorKind, GroupEvent, Subscription};
    let listener = sasl_ssl();
    let refused = |password: &str, ca: Option<&str>| {
        let mut member = group_member(&listener, "SCRAM-SHA-512", password, ca).unwrap();
        member.join(Subscription::default()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match member.poll(Duration::from_millis(100)) {
                Err(error) => break error,
                Ok(GroupEvent::Idle) => assert!(Instant::now() < deadline, "no error"),
                Ok(other) => panic!("{other:?}"),
            }
        }
    };
    let error = refused("not-the-password", Some(&listener.ca));
    println!("{error}");
    assert_eq!(error.kind, ClientErrorKind::Fatal, "{error}");
    assert!(error.message.contains("SASL SCRAM-SHA-512 authentication"), "{error}");
    assert!(error.message.contains(&listener.bootstrap), "{error}");
    let error = refused(&listener.password, None);
    println!("{error}");
    assert_eq!(error.kind, ClientErrorKind::Fatal, "{error}");
    assert!(error.message.contains("certificate verify failed"), "{error}");
}
