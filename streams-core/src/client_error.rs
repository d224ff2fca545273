//! The client seam's error: which broker call failed and what that means for the caller. Apart from
//! the seam itself, because what sits below the seam's users needs it too: the production exception
//! handler decides on it, and `StreamsError` wraps it.

/// What a failed client call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientErrorKind {
    /// The same call may succeed later (a timeout, a leader moving). For a transaction this outcome is
    /// ambiguous: the runtime re-creates the producer rather than retrying blindly.
    Retriable,
    /// Trying again will not help (an unknown topic, a bad setting, no authorization).
    Fatal,
    /// The open transaction cannot commit but the producer can go on once it is aborted.
    Abortable,
    /// This member or producer was fenced out: another took over its partitions (a stale group
    /// generation, a newer producer with the same transactional id). Its tasks must be closed without
    /// committing, and the consumer rejoins the group.
    Fenced,
}

/// A broker client failed. Says which operation, what the failure means ([`ClientErrorKind`]), and the
/// broker's or client library's error code when there is one.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {message}")]
#[non_exhaustive]
pub struct ClientError {
    /// What was being done (`create topics`, `commit offsets`, `produce to orders`).
    pub operation: String,
    /// What the client said.
    pub message: String,
    /// What the failure means.
    pub kind: ClientErrorKind,
    /// The error code, when the client gave one: Kafka's protocol codes are positive (`47`,
    /// `INVALID_PRODUCER_EPOCH`), librdkafka's own are negative (`-185`, an operation timed out).
    pub code: Option<i32>,
    /// The failure below this one (an I/O error of the embedded broker's journal, a thread that could
    /// not be started), when there is one; `message` does not repeat it.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ClientError {
    /// An error in `operation` of the given kind.
    pub fn new(operation: impl Into<String>, message: impl Into<String>, kind: ClientErrorKind) -> Self {
        ClientError { operation: operation.into(), message: message.into(), kind, code: None, source: None }
    }

    /// The same error, with the client's error code.
    pub fn with_code(mut self, code: i32) -> Self {
        self.code = Some(code);
        self
    }

    /// The same error, caused by `source`.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Whether the same call may succeed later.
    pub fn is_retriable(&self) -> bool {
        self.kind == ClientErrorKind::Retriable
    }
}
