//! The object store behind storaged (`Backend`, chosen by `storaged.backend`, see
//! `super::config::BackendKind`): local disk (`super::local`: durable atomic writes, any
//! set of keys side by side) or any `object_store::ObjectStore` — an S3-compatible bucket
//! (`super::s3`) in production, memory in tests. What it hands back (objects, listings,
//! errors) is in `super::object`.
//!
//! On an object store a PUT is one `put` when the body is smaller than a part
//! (`PART_SIZE`, 16 MiB), else a multipart upload fed part by part as the body arrives
//! (a few parts in flight, so memory stays bounded whatever the object's size). Either way
//! the object appears whole when the upload completes, never in part; a refused or broken
//! body (or a failed part) aborts the upload, and so does a request that goes away.

use std::collections::VecDeque;
use std::fmt::Display;
use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{StreamExt, TryStreamExt};
use futures::Stream;
use object_store::path::Path as StorePath;
use object_store::{MultipartUpload, ObjectStore, PutPayload};

use super::config::{BackendKind, StoragedConfig};
use super::keys::{list_dir_segments, Key};
use super::local::{self, LocalDisk};
use super::object::{BackendError, Listed, Object};
use super::s3::S3Config;

/// Size of the parts of a multipart upload (and the largest body sent in one `put`).
/// S3 needs at least 5 MiB for every part but the last, and allows 10,000 parts: objects up
/// to 156 GiB.
pub const PART_SIZE: usize = 16 << 20;
/// Parts uploading at once, per PUT.
const PARTS_IN_FLIGHT: usize = 2;
/// S3's limit on the parts of one upload.
const MAX_PARTS: usize = 10_000;

enum Inner {
    Local(LocalDisk),
    Objects {
        objects: Arc<dyn ObjectStore>,
        part_size: usize,
    },
}

/// The object store behind storaged: objects by key, on local disk or in an object store.
pub struct Backend {
    inner: Inner,
    description: String,
}

impl Backend {
    /// The store a `[storaged]` configuration names. Blocking; call at start-up.
    pub fn open(cfg: &StoragedConfig) -> io::Result<Backend> {
        match cfg.backend {
            BackendKind::Local => Backend::local(&cfg.root).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("storaged.root {}: {e}", cfg.root.display()),
                )
            }),
            BackendKind::S3 => Backend::s3(&cfg.s3),
        }
    }

    /// A store in the local directory `root`, which is created if needed. Stale temp files
    /// from an interrupted write, and empty directories, are removed. Blocking; call at
    /// start-up.
    pub fn local(root: &Path) -> io::Result<Backend> {
        let (store, swept) = LocalDisk::open(root)?;
        if swept.temp_files > 0 || swept.empty_dirs > 0 {
            log::info!(
                "storaged: removed {} unfinished upload(s) and {} empty director(ies) under {}",
                swept.temp_files,
                swept.empty_dirs,
                store.root().display()
            );
        }
        let description = format!("local directory {}", store.root().display());
        Ok(Backend {
            inner: Inner::Local(store),
            description,
        })
    }

    /// A store in an S3-compatible bucket.
    pub fn s3(cfg: &S3Config) -> io::Result<Backend> {
        let (objects, description) =
            super::s3::build(cfg).map_err(|e| io::Error::other(format!("S3 backend: {e}")))?;
        Ok(Backend {
            inner: Inner::Objects {
                objects,
                part_size: PART_SIZE,
            },
            description,
        })
    }

    /// A store over any `object_store` backend (S3-compatible, in-memory, ...).
    pub fn with_object_store(objects: Arc<dyn ObjectStore>) -> Backend {
        let description = objects.to_string();
        Backend {
            inner: Inner::Objects {
                objects,
                part_size: PART_SIZE,
            },
            description,
        }
    }

    /// The same store with multipart parts of `bytes` (tests: S3 needs 5 MiB or more).
    #[doc(hidden)]
    pub fn with_part_size(mut self, bytes: usize) -> Backend {
        if let Inner::Objects { part_size, .. } = &mut self.inner {
            *part_size = bytes.max(1);
        }
        self
    }

    /// What the store is, for logs.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The directory of a local store.
    pub fn local_root(&self) -> Option<&Path> {
        match &self.inner {
            Inner::Local(l) => Some(l.root()),
            Inner::Objects { .. } => None,
        }
    }

    /// Checks that the store answers (an S3 bucket exists and the credentials work), by
    /// listing a prefix nothing is stored under.
    pub async fn probe(&self) -> Result<(), BackendError> {
        match &self.inner {
            Inner::Local(_) => Ok(()),
            Inner::Objects { objects, .. } => {
                let path = StorePath::from("storaged-probe");
                objects
                    .list_with_delimiter(Some(&path))
                    .await
                    .map(|_| ())
                    .map_err(storage_failure)
            }
        }
    }

    /// Stores `body` under `key`, replacing any object there, atomically: readers see the
    /// old object or the new one. Returns the size. Fails with `TooLarge` as soon as the
    /// body passes `limit` bytes; nothing is written then.
    pub async fn put<S, E>(&self, key: &Key, body: S, limit: u64) -> Result<u64, BackendError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: Display,
    {
        let body = std::pin::pin!(body);
        match &self.inner {
            Inner::Local(l) => l.put(key, body, limit).await,
            Inner::Objects { objects, part_size } => {
                put_objects(objects, &key.to_path(), body, limit, *part_size).await
            }
        }
    }

    /// Opens the object under `key` for reading.
    pub async fn get(&self, key: &Key) -> Result<Object, BackendError> {
        let objects = match &self.inner {
            Inner::Local(l) => return l.get(key).await,
            Inner::Objects { objects, .. } => objects,
        };
        let result = match objects.get(&key.to_path()).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Err(BackendError::NotFound),
            Err(e) => return Err(storage_failure(e)),
        };
        let size = result.meta.size;
        let body = result.into_stream().map_err(io::Error::other).boxed();
        Ok(Object { size, body })
    }

    /// Removes the object under `key`; an absent object is not an error.
    pub async fn delete(&self, key: &Key) -> Result<(), BackendError> {
        let objects = match &self.inner {
            Inner::Local(l) => return l.delete(key).await,
            Inner::Objects { objects, .. } => objects,
        };
        match objects.delete(&key.to_path()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_failure(e)),
        }
    }

    /// Every object whose shown key starts with `prefix`, sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, BackendError> {
        let objects = match &self.inner {
            Inner::Local(l) => return l.list(local::list_start(prefix), prefix).await,
            Inner::Objects { objects, .. } => objects,
        };
        let dir = list_dir_segments(prefix)
            .and_then(|s| Key::from_segments(s).ok())
            .map(|k| k.to_path());
        let metas: Vec<object_store::ObjectMeta> =
            match objects.list(dir.as_ref()).try_collect().await {
                Ok(m) => m,
                Err(object_store::Error::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(storage_failure(e)),
            };
        let mut out: Vec<Listed> = metas
            .into_iter()
            .filter_map(|meta| {
                let Some(key) = Key::from_path(&meta.location) else {
                    log::debug!("storaged: list skips stray name {}", meta.location);
                    return None;
                };
                let key = key.display();
                key.starts_with(prefix).then_some(Listed {
                    key,
                    size: meta.size,
                })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

fn storage_failure(e: object_store::Error) -> BackendError {
    BackendError::Storage(e.to_string())
}

/// PUT on an object store: one `put` for a body under a part, else a multipart upload.
async fn put_objects<S, E>(
    objects: &Arc<dyn ObjectStore>,
    path: &StorePath,
    mut body: std::pin::Pin<&mut S>,
    limit: u64,
    part_size: usize,
) -> Result<u64, BackendError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Display,
{
    let mut pending: VecDeque<Bytes> = VecDeque::new();
    let mut pending_len = 0usize;
    let mut total = 0u64;
    let mut upload: Option<Multipart> = None;
    let mut failed = None;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                failed = Some(BackendError::Body(e.to_string()));
                break;
            }
        };
        total += chunk.len() as u64;
        if total > limit {
            failed = Some(BackendError::TooLarge { limit });
            break;
        }
        pending_len += chunk.len();
        pending.push_back(chunk);
        while pending_len >= part_size {
            let part = take_part(&mut pending, &mut pending_len, part_size);
            if upload.is_none() {
                upload = Some(Multipart::start(objects, path).await?);
            }
            let up = upload.as_mut().expect("just started");
            if let Err(e) = up.send(part).await {
                failed = Some(e);
                break;
            }
        }
        if failed.is_some() {
            break;
        }
    }
    if let Some(err) = failed {
        if let Some(up) = upload {
            up.abort().await;
        }
        return Err(err);
    }
    let rest = PutPayload::from_iter(pending);
    match upload {
        None => {
            objects.put(path, rest).await.map_err(storage_failure)?;
        }
        Some(mut up) => {
            if pending_len > 0 {
                if let Err(e) = up.send(rest).await {
                    up.abort().await;
                    return Err(e);
                }
            }
            up.finish().await?;
        }
    }
    Ok(total)
}

/// The first `size` bytes of `pending` (whole chunks, the last one split without a copy).
fn take_part(pending: &mut VecDeque<Bytes>, pending_len: &mut usize, size: usize) -> PutPayload {
    let mut part = Vec::new();
    let mut need = size;
    while need > 0 {
        let mut chunk = pending.pop_front().expect("enough bytes are pending");
        if chunk.len() > need {
            part.push(chunk.split_to(need));
            pending.push_front(chunk);
            need = 0;
        } else {
            need -= chunk.len();
            part.push(chunk);
        }
    }
    *pending_len -= size;
    PutPayload::from_iter(part)
}

/// A multipart upload in progress: its parts upload as tasks (so they progress while the
/// body is read), at most `PARTS_IN_FLIGHT` at once. Dropped unfinished (the request went
/// away), it aborts the upload in the background.
struct Multipart {
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: tokio::task::JoinSet<object_store::Result<()>>,
    parts: usize,
    path: StorePath,
}

impl Multipart {
    async fn start(
        objects: &Arc<dyn ObjectStore>,
        path: &StorePath,
    ) -> Result<Multipart, BackendError> {
        let upload = objects.put_multipart(path).await.map_err(storage_failure)?;
        Ok(Multipart {
            upload: Some(upload),
            in_flight: tokio::task::JoinSet::new(),
            parts: 0,
            path: path.clone(),
        })
    }

    async fn send(&mut self, data: PutPayload) -> Result<(), BackendError> {
        if self.parts >= MAX_PARTS {
            return Err(BackendError::Storage(format!(
                "object needs more than {MAX_PARTS} parts of the upload"
            )));
        }
        while self.in_flight.len() >= PARTS_IN_FLIGHT {
            self.join_one().await?;
        }
        let part = self
            .upload
            .as_mut()
            .expect("the upload is open")
            .put_part(data);
        self.in_flight.spawn(part);
        self.parts += 1;
        Ok(())
    }

    async fn join_one(&mut self) -> Result<(), BackendError> {
        match self.in_flight.join_next().await {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(storage_failure(e)),
            Some(Err(e)) => Err(BackendError::Storage(format!("part upload failed: {e}"))),
        }
    }

    /// Waits for the parts, then completes the upload (aborts it on failure).
    async fn finish(mut self) -> Result<(), BackendError> {
        while !self.in_flight.is_empty() {
            if let Err(e) = self.join_one().await {
                self.abort().await;
                return Err(e);
            }
        }
        let mut upload = self.upload.take().expect("the upload is open");
        match upload.complete().await {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Err(a) = upload.abort().await {
                    log::warn!("storaged: cannot abort the upload of {}: {a}", self.path);
                }
                Err(storage_failure(e))
            }
        }
    }

    async fn abort(mut self) {
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        if let Some(mut upload) = self.upload.take() {
            if let Err(e) = upload.abort().await {
                log::warn!("storaged: cannot abort the upload of {}: {e}", self.path);
            }
        }
    }
}

impl Drop for Multipart {
    fn drop(&mut self) {
        let Some(mut upload) = self.upload.take() else {
            return;
        };
        self.in_flight.abort_all();
        let path = self.path.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(e) = upload.abort().await {
                        log::warn!("storaged: cannot abort the upload of {path}: {e}");
                    }
                });
            }
            Err(_) => log::warn!("storaged: the upload of {path} is left unfinished"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storaged::testing::test_backends;
    use futures::stream;
    use std::fs;

    fn key(raw: &str) -> Key {
        Key::from_wire(raw).unwrap()
    }

    fn body(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, io::Error>> {
        stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    fn chunked(data: &[u8], chunk: usize) -> impl Stream<Item = Result<Bytes, io::Error>> {
        let chunks: Vec<Result<Bytes, io::Error>> = data
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        stream::iter(chunks)
    }

    async fn read(store: &Backend, k: &Key) -> Vec<u8> {
        let obj = store.get(k).await.unwrap();
        let data: Vec<Bytes> = obj.body.try_collect().await.unwrap();
        let data = data.concat();
        assert_eq!(data.len() as u64, obj.size);
        data
    }

    fn keys(listed: &[Listed]) -> Vec<&str> {
        listed.iter().map(|l| l.key.as_str()).collect()
    }

    /// Every file and directory under `dir`, relative, `/`-separated, directories with a
    /// trailing `/`.
    fn tree(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let rel = e
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                    out.push(format!("{rel}/"));
                } else {
                    out.push(rel);
                }
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn keys_that_are_prefixes_of_each_other_coexist() {
        for t in test_backends("prefixes_coexist") {
            let s = &t.store;
            for (k, v) in [
                ("a/b", &b"ab"[..]),
                ("a", b"a"),
                ("a/b/c", b"abc"),
                ("x:", b"colon"),
                ("x:/y", b"colon-y"),
                ("p", b"p"),
            ] {
                assert_eq!(
                    s.put(&key(k), body(&[v]), 100).await.unwrap(),
                    v.len() as u64,
                    "{}",
                    t.name
                );
            }
            // `p/q` makes the directory `p` while `p` is a plain object file
            s.put(&key("p/q"), body(&[b"pq"]), 100).await.unwrap();
            for (k, v) in [
                ("a/b", &b"ab"[..]),
                ("a", b"a"),
                ("a/b/c", b"abc"),
                ("x:", b"colon"),
                ("x:/y", b"colon-y"),
                ("p", b"p"),
                ("p/q", b"pq"),
            ] {
                assert_eq!(read(s, &key(k)).await, v, "{} {k}", t.name);
            }
            assert_eq!(
                keys(&s.list("").await.unwrap()),
                ["a", "a/b", "a/b/c", "p", "p/q", "x:", "x:/y"],
                "{}",
                t.name
            );
            assert_eq!(
                keys(&s.list("a/").await.unwrap()),
                ["a/b", "a/b/c"],
                "{}",
                t.name
            );
            assert_eq!(
                keys(&s.list("a/b/").await.unwrap()),
                ["a/b/c"],
                "{}",
                t.name
            );
            if let Some(dir) = &t.dir {
                assert_eq!(
                    tree(dir.path()),
                    [
                        "a#obj", "a/", "a/b#obj", "a/b/", "a/b/c", "p#obj", "p/", "p/q", "x:#obj",
                        "x:/", "x:/y"
                    ]
                );
            }
            // overwrite each, while aside
            s.put(&key("a"), body(&[b"A2"]), 100).await.unwrap();
            assert_eq!(read(s, &key("a")).await, b"A2");
            // deletes remove empty directories; an object aside stays readable
            s.delete(&key("a/b/c")).await.unwrap();
            assert_eq!(read(s, &key("a/b")).await, b"ab", "{}", t.name);
            s.delete(&key("p/q")).await.unwrap();
            assert_eq!(read(s, &key("p")).await, b"p", "{}", t.name);
            s.put(&key("p"), body(&[b"P2"]), 100).await.unwrap();
            assert_eq!(read(s, &key("p")).await, b"P2", "{}", t.name);
            s.delete(&key("x:/y")).await.unwrap();
            s.delete(&key("x:")).await.unwrap();
            assert!(matches!(
                s.get(&key("x:")).await,
                Err(BackendError::NotFound)
            ));
            assert!(matches!(
                s.get(&key("x:/y")).await,
                Err(BackendError::NotFound)
            ));
            s.put(&key("x:"), body(&[b"again"]), 100).await.unwrap();
            assert_eq!(read(s, &key("x:")).await, b"again", "{}", t.name);
            if let Some(dir) = &t.dir {
                assert_eq!(tree(dir.path()), ["a#obj", "a/", "a/b#obj", "p#obj", "x:"]);
            }
            for k in ["a", "a/b", "p", "x:"] {
                s.delete(&key(k)).await.unwrap();
                s.delete(&key(k)).await.unwrap();
            }
            assert!(s.list("").await.unwrap().is_empty(), "{}", t.name);
            if let Some(dir) = &t.dir {
                assert!(tree(dir.path()).is_empty(), "{:?}", tree(dir.path()));
            }
            // missing things are NotFound, also through an object
            s.put(&key("f"), body(&[b"f"]), 100).await.unwrap();
            assert!(matches!(
                s.get(&key("f/g")).await,
                Err(BackendError::NotFound)
            ));
            assert!(matches!(
                s.get(&key("nope")).await,
                Err(BackendError::NotFound)
            ));
            s.delete(&key("f/g/h")).await.unwrap();
            assert!(s.list("f/").await.unwrap().is_empty());
            assert!(s.list("f/g/").await.unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn refused_bodies_leave_nothing() {
        for t in test_backends("refused_bodies") {
            let s = &t.store;
            let k = key("k");
            assert!(
                matches!(
                    s.put(&k, body(&[b"0123", b"456789"]), 8).await,
                    Err(BackendError::TooLarge { limit: 8 })
                ),
                "{}",
                t.name
            );
            let broken = stream::iter(vec![
                Ok(Bytes::from_static(b"abc")),
                Err(io::Error::other("client went away")),
            ]);
            assert!(matches!(
                s.put(&k, broken, 100).await,
                Err(BackendError::Body(_))
            ));
            // past two parts (a multipart upload on object stores), then too large
            let part = t.part_size;
            let big = vec![7u8; 3 * part + 10];
            let limit = (2 * part + part / 2) as u64;
            assert!(matches!(
                s.put(&k, chunked(&big, part / 3 + 1), limit).await,
                Err(BackendError::TooLarge { .. })
            ));
            // past two parts, then broken
            let mut broken_late: Vec<Result<Bytes, io::Error>> = (0..5)
                .map(|_| Ok(Bytes::from(vec![1u8; part / 2 + 1])))
                .collect();
            broken_late.push(Err(io::Error::other("reset")));
            assert!(matches!(
                s.put(&key("n/e/s/t"), stream::iter(broken_late), u64::MAX)
                    .await,
                Err(BackendError::Body(_))
            ));
            assert!(matches!(
                s.get(&key("n/e/s/t")).await,
                Err(BackendError::NotFound)
            ));
            assert!(
                matches!(s.get(&k).await, Err(BackendError::NotFound)),
                "{}",
                t.name
            );
            assert!(s.list("").await.unwrap().is_empty(), "{}", t.name);
            if let Some(dir) = &t.dir {
                assert!(tree(dir.path()).is_empty());
            }
            if let Some((server, prefix)) = &t.s3 {
                if let Some(n) = server.unfinished_uploads(prefix) {
                    assert_eq!(n, 0, "aborted uploads are gone from {}", server.name);
                }
            }
        }
    }

    /// A request that goes away mid-body (its future is dropped) leaves no object, no temp
    /// file, and no unfinished multipart upload.
    #[tokio::test]
    async fn abandoned_puts_leave_nothing() {
        for t in test_backends("abandoned_puts") {
            let s = &t.store;
            let k = key("deep/er/gone");
            let part = t.part_size;
            // three parts' worth of body, then the client stalls forever
            let chunks: Vec<Result<Bytes, io::Error>> = (0..6)
                .map(|_| Ok(Bytes::from(vec![9u8; part / 2 + 1])))
                .collect();
            let stalled = stream::iter(chunks).chain(stream::pending());
            let put = s.put(&k, stalled, u64::MAX);
            let waited = tokio::time::timeout(std::time::Duration::from_millis(1500), put).await;
            assert!(waited.is_err(), "{}: the put cannot finish", t.name);
            // the abort runs in the background
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            assert!(
                matches!(s.get(&k).await, Err(BackendError::NotFound)),
                "{}",
                t.name
            );
            assert!(s.list("").await.unwrap().is_empty(), "{}", t.name);
            if let Some(dir) = &t.dir {
                assert!(tree(dir.path()).is_empty(), "{:?}", tree(dir.path()));
            }
            if let Some((server, prefix)) = &t.s3 {
                if let Some(n) = server.unfinished_uploads(prefix) {
                    assert_eq!(n, 0, "the abandoned upload is aborted on {}", server.name);
                }
            }
        }
    }

    #[tokio::test]
    async fn stale_temps_and_empty_dirs_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("x/empty/deeper")).unwrap();
        fs::write(dir.path().join("x/obj#123"), b"partial").unwrap();
        fs::write(dir.path().join("x/obj"), b"whole").unwrap();
        fs::create_dir_all(dir.path().join("y")).unwrap();
        fs::write(dir.path().join("y/z#obj#9"), b"partial").unwrap();
        let store = Backend::local(dir.path()).unwrap();
        assert_eq!(tree(dir.path()), ["x/", "x/obj"]);
        let listed = store.list("").await.unwrap();
        assert_eq!(
            listed,
            [Listed {
                key: "x/obj".into(),
                size: 5
            }]
        );
    }

    #[tokio::test]
    async fn large_objects_stream_in_chunks_and_parts() {
        for t in test_backends("large_objects") {
            let s = &t.store;
            // local: 4 read chunks; memory: 3 parts of 1000 bytes... many; S3: 3 parts of 5 MiB
            let len = if t.name == "s3" {
                2 * (5 << 20) + 17
            } else {
                3 * local::READ_CHUNK + 17
            };
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let k = key("big");
            assert_eq!(
                s.put(&k, chunked(&data, 65536), u64::MAX).await.unwrap(),
                len as u64
            );
            let obj = s.get(&k).await.unwrap();
            assert_eq!(obj.size, len as u64);
            let parts: Vec<Bytes> = obj.body.try_collect().await.unwrap();
            if t.name == "local" {
                assert_eq!(parts.len(), 4);
            }
            assert!(parts.concat() == data, "{}", t.name);
            assert_eq!(s.list("").await.unwrap()[0].size, len as u64);
            // exactly one part, and an empty object
            let one = vec![3u8; if t.name == "s3" { 5 << 20 } else { 1000 }];
            s.put(&key("one"), chunked(&one, 4096), u64::MAX)
                .await
                .unwrap();
            assert!(read(s, &key("one")).await == one, "{}", t.name);
            s.put(&key("empty"), body(&[]), 0).await.unwrap();
            assert_eq!(read(s, &key("empty")).await, b"");
        }
    }

    #[tokio::test]
    async fn escaped_keys_round_trip() {
        for t in test_backends("escaped_keys") {
            let s = &t.store;
            let wire = [
                "p/a%2Fb",
                "p/100%25",
                "p/%23obj",
                "p/a%231",
                "p/sp%20ace",
                "p/caf%C3%A9",
                "p/nul%00",
                "p/q%3Fh%23a%26~",
            ];
            for (i, w) in wire.iter().enumerate() {
                s.put(&key(w), chunked(format!("{i}").as_bytes(), 4), 10)
                    .await
                    .unwrap();
            }
            for (i, w) in wire.iter().enumerate() {
                assert_eq!(
                    read(s, &key(w)).await,
                    format!("{i}").as_bytes(),
                    "{} {w}",
                    t.name
                );
            }
            let mut shown: Vec<String> = wire.iter().map(|w| key(w).display()).collect();
            shown.sort();
            let listed: Vec<String> = s
                .list("p/")
                .await
                .unwrap()
                .into_iter()
                .map(|l| l.key)
                .collect();
            assert_eq!(listed, shown, "{}", t.name);
            assert_eq!(
                keys(&s.list("p/a%2F").await.unwrap()),
                ["p/a%2Fb"],
                "{}",
                t.name
            );
            assert!(matches!(
                s.get(&key("p/a/b")).await,
                Err(BackendError::NotFound)
            ));
            for w in wire {
                s.delete(&key(w)).await.unwrap();
            }
            assert!(s.list("").await.unwrap().is_empty());
        }
    }

    /// A directory written by storaged 0.1/0.2 (every object under its plain name, deletes
    /// leaving empty directories behind, maybe a temp file) is read as it is.
    #[tokio::test]
    async fn reads_a_store_laid_out_the_old_way() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let files = [
            ("_vectors/old.lhv1", &b"0.1.0 index"[..]),
            ("_vectors/g.lhv1", b"manifest"),
            (
                "_vectors/g/00000000000000a1/seg-0000000000000001.lhv1",
                b"segment",
            ),
            (
                "_vectors/g/00000000000000a1/log-0000000000000002.lhv1",
                b"log",
            ),
            ("other/sp ace/100%25", b"escaped"),
        ];
        for (path, data) in files {
            fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            fs::write(root.join(path), data).unwrap();
        }
        fs::create_dir_all(root.join("_vectors/gone/00000000000000b2")).unwrap();
        fs::write(root.join("_vectors/g.lhv1#12345"), b"half a manifest").unwrap();

        let s = Backend::local(root).unwrap();
        let listed = s.list("_vectors/").await.unwrap();
        assert_eq!(
            keys(&listed),
            [
                "_vectors/g.lhv1",
                "_vectors/g/00000000000000a1/log-0000000000000002.lhv1",
                "_vectors/g/00000000000000a1/seg-0000000000000001.lhv1",
                "_vectors/old.lhv1"
            ]
        );
        for (path, data) in files {
            let wire = path.replace(' ', "%20");
            assert_eq!(read(&s, &key(&wire)).await, data, "{path}");
        }
        assert_eq!(
            keys(&s.list("other/").await.unwrap()),
            ["other/sp ace/100%"]
        );
        // new writes next to the old files keep the old names where nothing collides...
        s.put(&key("_vectors/h.lhv1"), body(&[b"new"]), 100)
            .await
            .unwrap();
        assert!(root.join("_vectors/h.lhv1").is_file());
        // ...and an index named `g.lhv1` can live next to the manifest of `g`
        s.put(
            &key("_vectors/g.lhv1/0000000000000001/seg-0000000000000001.lhv1"),
            body(&[b"s"]),
            100,
        )
        .await
        .unwrap();
        assert_eq!(read(&s, &key("_vectors/g.lhv1")).await, b"manifest");
        assert!(root.join("_vectors/g.lhv1#obj").is_file());
        // deleting the old index's objects leaves no directories behind
        for (path, _) in &files[1..4] {
            s.delete(&key(path)).await.unwrap();
        }
        assert!(!root.join("_vectors/g").exists());
        assert!(
            !root.join("_vectors/gone").exists(),
            "empty directories are swept at open"
        );
        assert_eq!(
            keys(&s.list("").await.unwrap()),
            [
                "_vectors/g.lhv1/0000000000000001/seg-0000000000000001.lhv1",
                "_vectors/h.lhv1",
                "_vectors/old.lhv1",
                "other/sp ace/100%"
            ]
        );
    }

    /// Puts and deletes of keys that are prefixes of each other, from many threads: a put
    /// never fails because a delete removed its directory, and each key reads back what its
    /// (only) writer put.
    // Blocking file operations run on the blocking pool: they overlap for real.
    #[tokio::test]
    async fn concurrent_puts_and_deletes_of_nested_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Backend::local(dir.path()).unwrap());
        let owned = ["p", "p/c", "p/c/d", "p/e", "p/c/d/f", "q", "q/r/s"];
        let mut tasks = Vec::new();
        for (i, k) in owned.iter().enumerate() {
            let store = store.clone();
            let k = key(k);
            tasks.push(tokio::spawn(async move {
                let mut present = false;
                for round in 0..150u32 {
                    if (round + i as u32) % 3 == 2 {
                        store.delete(&k).await.unwrap();
                        present = false;
                    } else {
                        let v = format!("{k}:{round}");
                        let data = Bytes::from(v.clone());
                        store
                            .put(&k, stream::iter([Ok::<_, io::Error>(data)]), 100)
                            .await
                            .unwrap_or_else(|e| panic!("put {k} round {round}: {e}"));
                        present = true;
                        let got: Vec<Bytes> = store
                            .get(&k)
                            .await
                            .unwrap()
                            .body
                            .try_collect()
                            .await
                            .unwrap();
                        assert_eq!(got.concat(), v.as_bytes(), "{k} round {round}");
                    }
                }
                (k, present)
            }));
        }
        let mut expected = Vec::new();
        for t in tasks {
            let (k, present) = t.await.unwrap();
            if present {
                expected.push(k.display());
            } else {
                assert!(matches!(store.get(&k).await, Err(BackendError::NotFound)));
            }
        }
        expected.sort();
        let listed: Vec<String> = store
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.key)
            .collect();
        assert_eq!(listed, expected);
        for k in &expected {
            store.delete(&key(k)).await.unwrap();
        }
        assert!(tree(dir.path()).is_empty(), "{:?}", tree(dir.path()));
    }
}
