//! The object operations persistence needs of storaged, as a trait: saves and loads are
//! written against it, so that they run on storaged's client in service and on an
//! in-memory map in unit tests (which can also make any one operation fail, and record
//! the order of writes).

use std::future::Future;

use bytes::Bytes;
use futures::Stream;

use crate::storaged_client::{ObjectInfo, StoragedClient, StoreError};

/// What saves and loads do with objects (see `StoragedClient` for each operation's meaning).
pub trait Objects {
    fn put(&self, key: &str, body: Bytes) -> impl Future<Output = Result<(), StoreError>>;
    /// Stores `len` bytes that arrive as chunks.
    fn put_stream(
        &self,
        key: &str,
        len: u64,
        body: impl Stream<Item = Bytes> + Unpin + 'static,
    ) -> impl Future<Output = Result<(), StoreError>>;
    fn get(&self, key: &str) -> impl Future<Output = Result<Bytes, StoreError>>;
    /// Hands the object to `sink` chunk by chunk; answers its length.
    fn get_stream(
        &self,
        key: &str,
        sink: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> impl Future<Output = Result<u64, StoreError>>;
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>>;
    /// Objects whose key starts with `prefix`, sorted by key.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<ObjectInfo>, StoreError>>;
}

impl Objects for StoragedClient {
    fn put(&self, key: &str, body: Bytes) -> impl Future<Output = Result<(), StoreError>> {
        StoragedClient::put(self, key, body)
    }

    fn put_stream(
        &self,
        key: &str,
        len: u64,
        body: impl Stream<Item = Bytes> + Unpin + 'static,
    ) -> impl Future<Output = Result<(), StoreError>> {
        StoragedClient::put_stream(self, key, len, body)
    }

    fn get(&self, key: &str) -> impl Future<Output = Result<Bytes, StoreError>> {
        StoragedClient::get(self, key)
    }

    fn get_stream(
        &self,
        key: &str,
        sink: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> impl Future<Output = Result<u64, StoreError>> {
        StoragedClient::get_stream(self, key, sink)
    }

    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> {
        StoragedClient::delete(self, key)
    }

    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<ObjectInfo>, StoreError>> {
        StoragedClient::list(self, prefix)
    }
}

/// Objects in memory, for unit tests of saves and loads.
#[cfg(test)]
pub mod memory {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use bytes::{Bytes, BytesMut};
    use futures::{Stream, StreamExt};

    use super::Objects;
    use crate::storaged_client::{ObjectInfo, StoreError};

    /// A map of keys to objects. `fail_when` makes the operations it matches fail (as
    /// storaged being down would); `writes` records every put and delete, in order.
    #[derive(Default)]
    pub struct MemoryObjects {
        pub objects: Mutex<BTreeMap<String, Bytes>>,
        pub writes: Mutex<Vec<String>>,
        fail: Mutex<Option<(&'static str, String)>>,
    }

    impl MemoryObjects {
        /// From now on, operation `op` ("put", "delete", "get", "list") fails on every key
        /// that contains `key_part`.
        pub fn fail_when(&self, op: &'static str, key_part: &str) {
            *self.fail.lock().unwrap() = Some((op, key_part.to_string()));
        }

        /// Stores a small object under `key` directly (not recorded as a write).
        pub fn put_raw(&self, key: &str) {
            let body = Bytes::from_static(b"not an object");
            self.objects.lock().unwrap().insert(key.to_string(), body);
        }

        pub fn heal(&self) {
            *self.fail.lock().unwrap() = None;
        }

        pub fn keys(&self) -> Vec<String> {
            self.objects.lock().unwrap().keys().cloned().collect()
        }

        /// The recorded writes, and a fresh record from now on.
        pub fn take_writes(&self) -> Vec<String> {
            std::mem::take(&mut *self.writes.lock().unwrap())
        }

        fn check(&self, op: &'static str, key: &str) -> Result<(), StoreError> {
            match &*self.fail.lock().unwrap() {
                Some((o, part)) if *o == op && key.contains(part.as_str()) => {
                    Err(StoreError::Transport {
                        op,
                        key: key.to_string(),
                        message: "failing on purpose".into(),
                    })
                }
                _ => Ok(()),
            }
        }
    }

    impl Objects for MemoryObjects {
        async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
            self.check("put", key)?;
            self.writes.lock().unwrap().push(format!("put {key}"));
            self.objects.lock().unwrap().insert(key.to_string(), body);
            Ok(())
        }

        async fn put_stream(
            &self,
            key: &str,
            len: u64,
            mut body: impl Stream<Item = Bytes> + Unpin + 'static,
        ) -> Result<(), StoreError> {
            let mut all = BytesMut::new();
            while let Some(chunk) = body.next().await {
                all.extend_from_slice(&chunk);
            }
            assert_eq!(all.len() as u64, len, "put_stream of {key}: length");
            self.put(key, all.freeze()).await
        }

        async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
            self.check("get", key)?;
            let objects = self.objects.lock().unwrap();
            objects
                .get(key)
                .cloned()
                .ok_or_else(|| StoreError::KeyNotFound(key.to_string()))
        }

        async fn get_stream(
            &self,
            key: &str,
            mut sink: impl FnMut(&[u8]) -> Result<(), String>,
        ) -> Result<u64, StoreError> {
            let bytes = self.get(key).await?;
            // In small chunks, as a network would hand them over.
            for chunk in bytes.chunks(1000) {
                sink(chunk).map_err(|message| StoreError::Decode {
                    op: "get",
                    key: key.to_string(),
                    message,
                })?;
            }
            Ok(bytes.len() as u64)
        }

        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.check("delete", key)?;
            self.writes.lock().unwrap().push(format!("delete {key}"));
            self.objects.lock().unwrap().remove(key);
            Ok(())
        }

        async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
            self.check("list", prefix)?;
            let objects = self.objects.lock().unwrap();
            Ok(objects
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| ObjectInfo {
                    key: k.clone(),
                    size: v.len() as u64,
                })
                .collect())
        }
    }
}
