//! The storeclient: vectord's HTTP client of storaged (`/storage/put|get|delete|list`).
//!
//! A missing key is the typed `StoreError::KeyNotFound`, which callers match on; other
//! failures carry the operation, the key and a preview of storaged's answer. Keys are
//! escaped segment by segment, so a segment may hold any character. awc's client is not
//! `Send`, so one is built per call on the calling arbiter's thread; the struct itself is
//! cheap to clone and can move between threads.

use std::time::Duration;

use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

/// Everything but RFC 3986's unreserved characters is escaped.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Longest error body kept in a message.
const PREVIEW_BYTES: usize = 256;
/// Largest object `get` accepts (awc's default is 2 MiB).
const MAX_OBJECT_BYTES: usize = 16 << 30;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key not found: {0}")]
    KeyNotFound(String),
    #[error("{op} {key}: storaged answered {status}: {preview}")]
    Status {
        op: &'static str,
        key: String,
        status: u16,
        preview: String,
    },
    #[error("{op} {key}: {message}")]
    Transport {
        op: &'static str,
        key: String,
        message: String,
    },
    #[error("{op} {key}: undecodable answer: {message}")]
    Decode {
        op: &'static str,
        key: String,
        message: String,
    },
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

#[derive(Deserialize)]
struct ListResponse {
    objects: Vec<ListObject>,
}

#[derive(Deserialize)]
struct ListObject {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Size")]
    size: u64,
}

#[derive(Debug, Clone)]
pub struct StoreClient {
    base_url: String,
    timeout: Duration,
}

impl StoreClient {
    /// `base_url` like `http://127.0.0.1:3211`; `timeout` bounds each operation.
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        StoreClient {
            base_url: base_url.trim_end_matches('/').to_string(),
            timeout,
        }
    }

    fn client(&self) -> awc::Client {
        awc::Client::builder()
            .timeout(self.timeout)
            .disable_redirects()
            .finish()
    }

    fn url(&self, op: &str, key: &str) -> String {
        format!("{}/storage/{op}/{}", self.base_url, escape_key(key))
    }

    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        let op = "put";
        let mut resp = self
            .client()
            .put(self.url(op, key))
            .insert_header(("Content-Type", "application/octet-stream"))
            .send_body(body)
            .await
            .map_err(|e| transport(op, key, e))?;
        check(op, key, &mut resp).await
    }

    /// The object's bytes; `KeyNotFound` when there is none.
    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let op = "get";
        let mut resp = self
            .client()
            .get(self.url(op, key))
            .send()
            .await
            .map_err(|e| transport(op, key, e))?;
        if resp.status().as_u16() == 404 {
            return Err(StoreError::KeyNotFound(key.to_string()));
        }
        check(op, key, &mut resp).await?;
        resp.body()
            .limit(MAX_OBJECT_BYTES)
            .await
            .map_err(|e| transport(op, key, e))
    }

    /// Removes the object; a missing key is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let op = "delete";
        let mut resp = self
            .client()
            .delete(self.url(op, key))
            .send()
            .await
            .map_err(|e| transport(op, key, e))?;
        if resp.status().as_u16() == 404 {
            return Ok(());
        }
        check(op, key, &mut resp).await
    }

    /// Objects whose key starts with `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let op = "list";
        let url = format!(
            "{}/storage/list?prefix={}",
            self.base_url,
            utf8_percent_encode(prefix, SEGMENT)
        );
        let mut resp = self
            .client()
            .get(url)
            .send()
            .await
            .map_err(|e| transport(op, prefix, e))?;
        check(op, prefix, &mut resp).await?;
        let body = resp
            .body()
            .limit(256 << 20)
            .await
            .map_err(|e| transport(op, prefix, e))?;
        let list: ListResponse = serde_json::from_slice(&body).map_err(|e| StoreError::Decode {
            op,
            key: prefix.to_string(),
            message: e.to_string(),
        })?;
        Ok(list
            .objects
            .into_iter()
            .map(|o| ObjectInfo {
                key: o.key,
                size: o.size,
            })
            .collect())
    }
}

/// Escapes each `/`-separated segment on its own.
pub fn escape_key(key: &str) -> String {
    key.split('/')
        .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

fn transport(op: &'static str, key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Transport {
        op,
        key: key.to_string(),
        message: e.to_string(),
    }
}

/// Turns a non-2xx answer into an error with a preview of its body.
async fn check<S>(
    op: &'static str,
    key: &str,
    resp: &mut awc::ClientResponse<S>,
) -> Result<(), StoreError>
where
    S: futures::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
{
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.body().limit(64 << 10).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body[..body.len().min(PREVIEW_BYTES)]).to_string();
    Err(StoreError::Status {
        op,
        key: key.to_string(),
        status: status.as_u16(),
        preview: text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_escaped_segment_by_segment() {
        assert_eq!(escape_key("_vectors/a.lhv1"), "_vectors/a.lhv1");
        assert_eq!(escape_key("a b/c%d/é?#"), "a%20b/c%25d/%C3%A9%3F%23");
    }
}
