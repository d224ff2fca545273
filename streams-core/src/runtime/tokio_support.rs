//! For applications on tokio (the `tokio` feature): the instance's state as a `watch` channel, and
//! `start`/`close` that run on tokio's blocking pool. The stream threads are OS threads of their own
//! whatever the feature; what must not happen is a tokio worker blocked in a call that waits for the
//! broker (`start` checks and creates topics, up to `default.api.timeout.ms`) or for the threads
//! (`close` waits for them to commit and leave the group), since every task on that worker would wait
//! with it. Dropping a started instance closes it, blocking: end it with `close_async` in async code.
//! Interactive queries wait for a stream thread's step (longer while a rebalance opens tasks): call
//! them from `spawn_blocking`.

use std::time::Duration;

use tokio::sync::watch;

use super::{KafkaStreams, State};
use crate::StreamsError;

impl KafkaStreams {
    /// The state now and every change after, as a tokio `watch` channel (for `select!`, or to await a
    /// state with `Receiver::wait_for`). Each change is also given to the state listener, if any.
    pub fn state_receiver(&self) -> watch::Receiver<State> {
        self.shared.state.watch.subscribe()
    }

    /// Waits, without blocking the worker, until the instance reaches `state`; false on timeout (or when
    /// the instance is gone). Needs tokio's time driver (`enable_time`, or `#[tokio::main]`).
    pub async fn wait_for_state_async(&self, state: State, timeout: Duration) -> bool {
        let mut receiver = self.state_receiver();
        matches!(tokio::time::timeout(timeout, receiver.wait_for(|now| *now == state)).await, Ok(Ok(_)))
    }

    /// [`start`](Self::start) on tokio's blocking pool (`spawn_blocking`): the instance back once its
    /// threads run. Must be called within a tokio runtime.
    pub async fn start_async(mut self) -> Result<KafkaStreams, StreamsError> {
        blocking("start", move || self.start().map(|()| self)).await
    }

    /// [`close`](Self::close) on tokio's blocking pool (`spawn_blocking`): commits, closes every task,
    /// leaves the group, and waits for the threads without holding a worker. Must be called within a
    /// tokio runtime.
    pub async fn close_async(mut self) -> Result<(), StreamsError> {
        blocking("close", move || self.close()).await
    }
}

/// Runs `call` on tokio's blocking pool; a panic in it is an error naming `what`.
async fn blocking<T: Send + 'static>(
    what: &str,
    call: impl FnOnce() -> Result<T, StreamsError> + Send + 'static,
) -> Result<T, StreamsError> {
    tokio::task::spawn_blocking(call)
        .await
        .unwrap_or_else(|e| Err(StreamsError::Internal(format!("`{what}` on tokio's blocking pool failed: {e}"))))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::config::StreamsConfig;
    use crate::dsl::StreamsBuilder;
    use crate::embedded::EmbeddedBroker;
    use crate::runtime::{KafkaStreams, State};

    #[test]
    fn an_instance_started_and_closed_on_tokio_reports_its_states_through_the_watch() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
        runtime.block_on(async {
            let broker = EmbeddedBroker::new();
            broker.create_topic("words", 2);
            broker.create_topic("shouted", 1);
            let builder = StreamsBuilder::new();
            builder.stream::<String, String>("words").map_values(|w| w.to_uppercase()).to("shouted");
            let topology = builder.build().expect("a valid topology");
            let app =
                KafkaStreams::with_client_supplier(topology, StreamsConfig::new("tokio", "embedded"), Arc::new(broker))
                    .expect("valid");
            let mut states = app.state_receiver();
            assert_eq!(*states.borrow_and_update(), State::Created);
            let app = app.start_async().await.expect("started");
            assert!(app.wait_for_state_async(State::Running, Duration::from_secs(30)).await, "never RUNNING");
            assert!(states.has_changed().expect("the instance is there"), "the watch saw the start");
            app.close_async().await.expect("closed");
            assert_eq!(*states.borrow(), State::NotRunning, "the last state, seen after the instance is gone");
        });
    }
}
