//! The one error type of the actor layer. The HTTP front maps each variant to a status code
//! in one place (`src/http/errors.rs`); nothing here knows about HTTP.

/// What went wrong with a request to an index, worded for the client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IndexError {
    /// The request itself is wrong; `code` is a stable snake_case name, `message` names the
    /// field, the value and, in a batch, the item's position.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("index {0:?} not found")]
    IndexNotFound(String),
    #[error("item {id:?} not found in index {index:?}")]
    ItemNotFound { index: String, id: String },
    #[error("index {0:?} already exists")]
    IndexExists(String),
    /// The name cannot be used now: its deletion is still in progress, or a stored index of
    /// that name failed to load. `code` says which.
    #[error("{message}")]
    NameUnavailable { code: &'static str, message: String },
    /// storaged could not be reached or refused a write; the state in memory is intact.
    #[error("storage unavailable: {0}")]
    StorageUnavailable(String),
    /// Too much work is queued for this index (or the process): retry after a while.
    #[error("{message}")]
    Busy { message: String, retry_after_s: u64 },
    /// The service is still loading its indexes.
    #[error("{0}")]
    NotReady(String),
    /// A fault of ours (a panic caught in a worker, a broken invariant). Logged with context.
    #[error("internal error: {0}")]
    Internal(String),
}

impl IndexError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        IndexError::Invalid {
            code,
            message: message.into(),
        }
    }
}
