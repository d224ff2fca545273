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

/// A broker client failed. Says which operation, and what the failure means ([`ClientErrorKind`]).
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct ClientError {
    /// What was being done (`create topics`, `commit offsets`, `produce to orders`).
    pub operation: String,
    /// What the client said.
    pub message: String,
    /// What the failure means.
    pub kind: ClientErrorKind,
}

impl ClientError {
    /// An error in `operation`, retriable or fatal.
    pub fn new(operation: impl Into<String>, message: impl Into<String>, retriable: bool) -> Self {
        let kind = if retriable { ClientErrorKind::Retriable } else { ClientErrorKind::Fatal };
        ClientError::with_kind(operation, message, kind)
    }

    /// An error in `operation` of the given kind.
    pub fn with_kind(operation: impl Into<String>, message: impl Into<String>, kind: ClientErrorKind) -> Self {
        ClientError { operation: operation.into(), message: message.into(), kind }
    }

    /// Whether the same call may succeed later.
    pub fn retriable(&self) -> bool {
        self.kind == ClientErrorKind::Retriable
    }
}
