//! User code that fails on a record, under each processing exception handler (KIP-1033): an error
//! returned by a processor, a panic in a DSL function, a failing punctuation, and a handler that
//! panics itself. The failure is decided at the node it happened in; the nodes above go on.

use std::sync::Arc;
use std::time::Duration;

use kstreams::config::StreamsConfig;
use kstreams::handler::{
    DeadLetterQueue, ErrorContext, LogAndContinue, ProcessingExceptionHandler, ProcessingResponse,
};
use kstreams::prelude::*;
use kstreams::record::Headers;
use kstreams::serde::StringSerde;
use kstreams::testing::TestDriverConfig;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn driver(topology: Topology, handler: Arc<dyn ProcessingExceptionHandler>) -> Result<TopologyTestDriver> {
    Ok(TopologyTestDriver::with_config(
        topology,
        TestDriverConfig { processing_handler: handler, ..TestDriverConfig::default() },
    )?)
}

/// `in` goes to `shouted` through a mapper that panics on `boom`, and unchanged to `copy`.
fn panicking_mapper() -> Result<Topology> {
    let b = StreamsBuilder::new();
    let words = b.stream::<String, String>("in");
    words
        .named("shout")
        .map_values(|w: String| {
            assert!(w != "boom", "cannot shout {w}");
            w.to_uppercase()
        })
        .to("shouted");
    words.to("copy");
    Ok(b.build()?)
}

#[test]
fn by_default_a_panic_in_a_dsl_function_fails_naming_the_node_and_the_record() -> Result {
    let mut driver = TopologyTestDriver::new(panicking_mapper()?)?;
    let input = driver.input_topic::<String, String>("in");
    driver.pipe(&input, "k".into(), "hi".into(), 1)?;
    let error = driver.pipe(&input, "k".into(), "boom".into(), 2).expect_err("the default handler fails");

    let StreamsError::ProcessingFailed { node, source_record, source, .. } = &error else { panic!("{error:?}") };
    assert_eq!(node, "shout");
    let at = source_record.as_ref().expect("a record, not a punctuation");
    assert_eq!((&*at.topic, at.partition, at.offset), ("in", 0, 1));
    let message = kstreams::handler::error_chain(&error);
    assert!(message.contains("node `shout` of task 0_0 failed on the record at in-0 offset 1"), "{message}");
    assert!(message.contains("panicked: cannot shout boom"), "{message}");
    assert!(matches!(&**source, StreamsError::Processor { node, .. } if node == "shout"), "{source:?}");
    Ok(())
}

#[test]
fn log_and_continue_drops_the_record_at_the_failing_node_only() -> Result {
    let mut driver = driver(panicking_mapper()?, Arc::new(LogAndContinue))?;
    let input = driver.input_topic::<String, String>("in");
    for (i, word) in ["hi", "boom", "there"].into_iter().enumerate() {
        driver.pipe(&input, "k".into(), word.into(), i as i64)?;
    }
    let shouted = driver.output_topic::<String, String>("shouted");
    let copy = driver.output_topic::<String, String>("copy");
    assert_eq!(driver.read_key_values(&shouted), [("k".into(), "HI".into()), ("k".into(), "THERE".into())]);
    // The source's other child still got the record the mapper failed on.
    assert_eq!(driver.read_key_values(&copy).len(), 3);
    assert_eq!(driver.metrics().processing_errors, 1);
    assert_eq!(driver.metrics().processed_records, 3);
    Ok(())
}

/// Fails on `bad` values with an error, and in every punctuation.
struct Picky;

impl Processor<String, String, String, String> for Picky {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> std::result::Result<(), StreamsError> {
        ctx.schedule(Duration::from_millis(10), PunctuationType::WallClockTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        record: Record<String, String>,
    ) -> std::result::Result<(), StreamsError> {
        if record.value == "bad" {
            return Err(StreamsError::processor(ctx.node_name(), format!("`{}` is bad", record.key)));
        }
        ctx.forward(record)
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        _: Punctuation,
    ) -> std::result::Result<(), StreamsError> {
        Err(StreamsError::processor(ctx.node_name(), "the punctuation failed"))
    }
}

fn picky() -> Result<Topology> {
    let mut topology = Topology::new();
    topology
        .add_source("src", &["in"], Arc::new(StringSerde), Arc::new(StringSerde))?
        .add_processor("picky", || Picky, &["src"])?
        .add_sink("out", "out", Arc::new(StringSerde), Arc::new(StringSerde), &["picky"])?;
    Ok(topology)
}

#[test]
fn a_dead_letter_is_the_source_record_as_read_with_the_error_headers() -> Result {
    let mut driver = driver(picky()?, Arc::new(DeadLetterQueue::new("dlq")))?;
    let mut headers = Headers::new();
    headers.add("trace", Some(b"t-1".to_vec()));
    let input = driver.input_topic::<String, String>("in");
    driver.pipe(&input, "a".into(), "good".into(), 5)?;
    driver.pipe_record(&input, Record { key: "b".into(), value: "bad".into(), timestamp: 7, headers })?;

    let dead = driver.peek_raw("dlq");
    assert_eq!(dead.len(), 1);
    let letter = &dead[0];
    assert_eq!(
        (letter.key.as_deref(), letter.value.as_deref(), letter.timestamp),
        (Some(&b"b"[..]), Some(&b"bad"[..]), 7)
    );
    let header = |name: &str| {
        letter
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.map(|v| String::from_utf8_lossy(v).into_owned()))
    };
    assert_eq!(header("trace").as_deref(), Some("t-1"), "the source record's headers are kept");
    assert_eq!(header("__streams.errors.exception").as_deref(), Some("StreamsError::Processor"));
    assert_eq!(header("__streams.errors.topic").as_deref(), Some("in"));
    assert_eq!(header("__streams.errors.partition").as_deref(), Some("0"));
    assert_eq!(header("__streams.errors.offset").as_deref(), Some("1"));
    let message = header("__streams.errors.message").unwrap();
    assert!(message.contains("processor `picky` failed: `b` is bad"), "{message}");
    assert_eq!(driver.read_key_values(&driver.output_topic::<String, String>("out")), [("a".into(), "good".into())]);
    Ok(())
}

/// Remembers what it was asked about and lets the record go.
#[derive(Default)]
struct Recording(std::sync::Mutex<Vec<(String, Option<i64>, i64)>>);

impl ProcessingExceptionHandler for Recording {
    fn handle(&self, context: &ErrorContext<'_>, _: &StreamsError) -> ProcessingResponse {
        let offset = context.source.map(|s| s.offset);
        self.0.lock().unwrap().push((context.node.to_string(), offset, context.timestamp));
        ProcessingResponse::Continue(Vec::new())
    }

    fn needs_source_record(&self) -> bool {
        false
    }
}

#[test]
fn a_failing_punctuation_goes_to_the_handler_without_a_source_record() -> Result {
    let handler = Arc::new(Recording::default());
    let mut driver = driver(picky()?, handler.clone())?;
    driver.advance_wall_clock_time(Duration::from_millis(10))?;
    assert_eq!(*handler.0.lock().unwrap(), [("picky".to_string(), None, 10)]);
    Ok(())
}

/// A handler that panics.
struct Broken;

impl ProcessingExceptionHandler for Broken {
    fn handle(&self, _: &ErrorContext<'_>, _: &StreamsError) -> ProcessingResponse {
        panic!("the handler is broken")
    }
}

#[test]
fn a_handler_that_panics_fails_the_task_with_the_original_error() -> Result {
    let mut driver = driver(picky()?, Arc::new(Broken))?;
    let input = driver.input_topic::<String, String>("in");
    let error = driver.pipe(&input, "b".into(), "bad".into(), 1).expect_err("fails");
    let StreamsError::ProcessingFailed { node, source, .. } = &error else { panic!("{error:?}") };
    assert_eq!(node, "picky");
    assert!(source.to_string().contains("processor `picky` failed"), "{source}");
    Ok(())
}

#[test]
fn the_setting_names_the_handler_and_the_dead_letter_topic_sets_it_too() -> Result {
    let mut config = StreamsConfig::new("app", "localhost:9092");
    config.set("processing.exception.handler", "LogAndContinueProcessingExceptionHandler")?;
    assert!(format!("{config:?}").contains(r#"processing.exception.handler: "log_and_continue""#), "{config:?}");
    config.set("errors.dead.letter.queue.topic.name", "orders-dlq")?;
    assert!(format!("{config:?}").contains(r#"processing.exception.handler: "(a dead-letter queue)""#), "{config:?}");
    let error = config.set("processing.exception.handler", "ignore").expect_err("not a handler");
    assert!(error.to_string().contains("processing.exception.handler"), "{error}");
    Ok(())
}
