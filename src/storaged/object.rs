//! What storaged's backend hands back, whichever store is behind it (`super::backend`, and
//! the local disk, `super::local`): an object being read, the entries of a listing, and
//! what went wrong. A leaf: it names no other module of storaged, so both can use it.

use std::io;

use bytes::Bytes;
use futures::stream::BoxStream;

/// What went wrong with an operation of a backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("no object with this key")]
    NotFound,
    #[error("object is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The request body could not be read to its end.
    #[error("request body ended with an error: {0}")]
    Body(String),
    /// The store itself failed; not the client's fault.
    #[error("storage failure: {0}")]
    Storage(String),
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The key as shown (see `Key::display`).
    pub key: String,
    pub size: u64,
}

/// An object being read: its size and its bytes.
pub struct Object {
    pub size: u64,
    pub body: BoxStream<'static, io::Result<Bytes>>,
}
