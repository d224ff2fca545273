//! Errors a store reports, each naming the store at fault.

/// What went wrong in a store. The store's name is always part of the error so that a failure in one of
/// many tasks' stores can be traced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store was used after [`StateStore::close`](crate::StateStore::close).
    #[error("state store `{store}` is closed")]
    Closed {
        /// The store's name.
        store: String,
    },
    /// The storage medium failed (an I/O error, a RocksDB error).
    #[error("state store `{store}` failed: {message}")]
    Backend {
        /// The store's name.
        store: String,
        /// What the medium said.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The store's files are damaged (a checksum that does not match, a file cut short or missing): its
    /// contents cannot be trusted. A logged store is wiped and restored from its changelog.
    #[error("state store `{store}`'s files in {} are damaged: {message}", path.display())]
    Corrupt {
        /// The store's name.
        store: String,
        /// The directory of the damaged files.
        path: std::path::PathBuf,
        /// What the medium said.
        message: String,
    },
}

impl StoreError {
    /// The name of the store that failed.
    pub fn store(&self) -> &str {
        match self {
            StoreError::Closed { store } | StoreError::Backend { store, .. } | StoreError::Corrupt { store, .. } => {
                store
            }
        }
    }
}
