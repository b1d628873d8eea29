//! The storaged client: vectord's HTTP client of storaged (`/storage/put|get|delete|list`).
//!
//! A missing key is the typed `StoreError::KeyNotFound`, which callers match on; other
//! failures carry the operation, the key and a preview of storaged's answer. Keys are
//! escaped segment by segment, so a segment may hold any character. awc's client is not
//! `Send`, so one is built per call on the calling arbiter's thread; the struct itself is
//! cheap to clone and can move between threads. The timeout bounds each whole operation,
//! body included (awc's own timeout stops at the response head), and grows with the size
//! of what is sent or read (`MIN_RATE`), so that a big segment object is not cut off just
//! for being big.
//!
//! Big objects travel as streams: `put_stream` sends chunks as they are produced (chunked
//! transfer encoding), `get_stream` hands over the body chunk by chunk, so neither side
//! holds a whole segment object in memory.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
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
/// Largest object `get` reads into memory at once (awc's default is 2 MiB); bigger ones
/// are read with `get_stream`.
const MAX_OBJECT_BYTES: usize = 4 << 30;
/// Transfers are given at least this many bytes per second on top of the timeout.
const MIN_RATE: u64 = 8 << 20;
/// Largest list answer accepted.
const MAX_LIST_BYTES: usize = 256 << 20;
/// Most bytes reserved up front from a `Content-Length` header.
const MAX_PREALLOC: usize = 1 << 30;

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

#[derive(Clone)]
pub struct StoragedClient {
    base_url: String,
    timeout: Duration,
    /// Sent as `Authorization: Bearer <key>` when storaged wants one.
    api_key: Option<String>,
}

impl std::fmt::Debug for StoragedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoragedClient")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl StoragedClient {
    /// `base_url` like `http://127.0.0.1:3211`; `timeout` bounds each operation.
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        StoragedClient {
            base_url: base_url.trim_end_matches('/').to_string(),
            timeout,
            api_key: None,
        }
    }

    /// The same client, sending `key` to storaged.
    pub fn with_api_key(mut self, key: Option<String>) -> Self {
        self.api_key = key;
        self
    }

    fn client(&self) -> awc::Client {
        self.client_for(self.timeout)
    }

    fn client_for(&self, timeout: Duration) -> awc::Client {
        let builder = awc::Client::builder()
            .connector(awc::Connector::new().timeout(self.timeout))
            .timeout(timeout)
            .disable_redirects();
        match &self.api_key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
        .finish()
    }

    /// The time allowed for moving `bytes`: the timeout, plus `MIN_RATE`.
    fn timeout_for(&self, bytes: u64) -> Duration {
        self.timeout + Duration::from_secs(bytes / MIN_RATE)
    }

    fn url(&self, op: &str, key: &str) -> String {
        format!("{}/storage/{op}/{}", self.base_url, escape_key(key))
    }

    /// Stores `body` under `key`, replacing what was there.
    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        let limit = self.timeout_for(body.len() as u64);
        self.within_for("put", key, limit, self.put_inner(key, body))
            .await
    }

    /// Stores the chunks of `body` (`len` bytes in all) under `key`, as they come.
    pub async fn put_stream(
        &self,
        key: &str,
        len: u64,
        body: impl futures::Stream<Item = Bytes> + Unpin + 'static,
    ) -> Result<(), StoreError> {
        let op = "put";
        let work = async {
            let body = body.map(Ok::<Bytes, std::io::Error>);
            let mut resp = self
                .client_for(self.timeout_for(len))
                .put(self.url(op, key))
                .insert_header(("Content-Type", "application/octet-stream"))
                .send_stream(body)
                .await
                .map_err(|e| transport(op, key, e))?;
            check(op, key, &mut resp).await
        };
        self.within_for(op, key, self.timeout_for(len), work).await
    }

    /// The object's bytes; `KeyNotFound` when there is none.
    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let mut buf = BytesMut::new();
        self.get_stream(key, |chunk| {
            if buf.len() + chunk.len() > MAX_OBJECT_BYTES {
                return Err(format!(
                    "object is larger than {MAX_OBJECT_BYTES} bytes; read it as a stream"
                ));
            }
            buf.extend_from_slice(chunk);
            Ok(())
        })
        .await?;
        Ok(buf.freeze())
    }

    /// Feeds the object's bytes to `sink` chunk by chunk as they arrive; returns the
    /// object's length. `KeyNotFound` when there is none. The timeout grows with the
    /// length storaged announces.
    pub async fn get_stream(
        &self,
        key: &str,
        mut sink: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<u64, StoreError> {
        let op = "get";
        let started = std::time::Instant::now();
        let mut resp = self
            .within(op, key, async {
                self.client()
                    .get(self.url(op, key))
                    .send()
                    .await
                    .map_err(|e| transport(op, key, e))
            })
            .await?;
        if resp.status().as_u16() == 404 {
            return Err(StoreError::KeyNotFound(key.to_string()));
        }
        check(op, key, &mut resp).await?;
        let declared = resp
            .headers()
            .get(awc::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let limit = self.timeout_for(declared.unwrap_or(0));
        let mut got = 0u64;
        let body = async {
            while let Some(chunk) = resp.next().await {
                let chunk = chunk.map_err(|e| transport(op, key, e))?;
                got += chunk.len() as u64;
                sink(&chunk).map_err(|message| StoreError::Decode {
                    op,
                    key: key.to_string(),
                    message,
                })?;
            }
            Ok::<(), StoreError>(())
        };
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, body).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(transport(
                    op,
                    key,
                    format!("no complete answer within {limit:?}"),
                ))
            }
        }
        if let Some(n) = declared {
            if got != n {
                return Err(transport(
                    op,
                    key,
                    format!("answer ended after {got} of {n} bytes"),
                ));
            }
        }
        Ok(got)
    }

    /// Removes the object; a missing key is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.within("delete", key, self.delete_inner(key)).await
    }

    /// Objects whose key starts with `prefix`, sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.within("list", prefix, self.list_inner(prefix)).await
    }

    /// Runs one operation under the timeout.
    async fn within<T>(
        &self,
        op: &'static str,
        key: &str,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.within_for(op, key, self.timeout, work).await
    }

    async fn within_for<T>(
        &self,
        op: &'static str,
        key: &str,
        limit: Duration,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => Err(transport(
                op,
                key,
                format!("no complete answer within {limit:?}"),
            )),
        }
    }

    async fn put_inner(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        let op = "put";
        let mut resp = self
            .client_for(self.timeout_for(body.len() as u64))
            .put(self.url(op, key))
            .insert_header(("Content-Type", "application/octet-stream"))
            .send_body(body)
            .await
            .map_err(|e| transport(op, key, e))?;
        check(op, key, &mut resp).await
    }

    async fn delete_inner(&self, key: &str) -> Result<(), StoreError> {
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

    async fn list_inner(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
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
        let body = read_body(op, prefix, &mut resp, MAX_LIST_BYTES).await?;
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

/// Reads a whole answer body of at most `limit` bytes into one buffer, reserved from
/// `Content-Length` when given (awc's own reader grows its buffer by doubling, which can
/// hold twice a big object for a moment).
async fn read_body<S>(
    op: &'static str,
    key: &str,
    resp: &mut awc::ClientResponse<S>,
    limit: usize,
) -> Result<Bytes, StoreError>
where
    S: futures::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
{
    let headers = resp.headers();
    // A compressed answer is decoded by awc, so its declared length says nothing.
    let encoded = headers
        .get(awc::http::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes() != b"identity");
    let declared = headers
        .get(awc::http::header::CONTENT_LENGTH)
        .filter(|_| !encoded)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_big = |n: u64| StoreError::Decode {
        op,
        key: key.to_string(),
        message: format!("answer of {n} bytes exceeds the limit of {limit} bytes"),
    };
    if let Some(n) = declared {
        if n > limit as u64 {
            return Err(too_big(n));
        }
    }
    let reserve = declared.map_or(0, |n| (n as usize).min(MAX_PREALLOC));
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp.next().await {
        let chunk = chunk.map_err(|e| transport(op, key, e))?;
        let have = first.as_ref().map_or(0, Bytes::len) + buf.len();
        if have + chunk.len() > limit {
            return Err(too_big((have + chunk.len()) as u64));
        }
        // A body that arrives in one chunk is returned without a copy.
        match first.take() {
            None if buf.is_empty() => first = Some(chunk),
            None => buf.extend_from_slice(&chunk),
            Some(f) => {
                buf.reserve(reserve.max(f.len() + chunk.len()));
                buf.extend_from_slice(&f);
                buf.extend_from_slice(&chunk);
            }
        }
    }
    let body = match first {
        Some(f) => f,
        None => buf.freeze(),
    };
    if let Some(n) = declared {
        if body.len() as u64 != n {
            return Err(transport(
                op,
                key,
                format!("answer ended after {} of {n} bytes", body.len()),
            ));
        }
    }
    Ok(body)
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
    fn client_moves_between_threads() {
        fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync_clone::<StoragedClient>();
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<StoreError>();
    }

    #[actix_rt::test]
    async fn unreachable_store_is_a_transport_error() {
        // a port nothing listens on: bind, read the port, close
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(9);
        let client =
            StoragedClient::new(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(2));
        match client.get("a/b").await {
            Err(StoreError::Transport { op: "get", key, .. }) => assert_eq!(key, "a/b"),
            other => panic!("expected a transport error, got {other:?}"),
        }
    }

    #[test]
    fn keys_are_escaped_segment_by_segment() {
        assert_eq!(escape_key("_vectors/a.lhv1"), "_vectors/a.lhv1");
        assert_eq!(escape_key("a b/c%d/é?#"), "a%20b/c%25d/%C3%A9%3F%23");
    }
}
