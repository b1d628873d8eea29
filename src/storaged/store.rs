//! The object store behind storaged: any `object_store::ObjectStore` (local disk by
//! default; S3-compatible storage or memory plug in the same way), plus a durable writer
//! for local disk.
//!
//! `object_store`'s `LocalFileSystem` writes a temp file and renames it, but never fsyncs,
//! so a crash can leave an empty or partial object behind the final name. For local disk
//! the store therefore writes objects itself: a temp file `<name>#<digits>` in the target's
//! directory, fsync, rename over the target, fsync the directory (and every directory it had
//! to create). `LocalFileSystem` treats such names as in-flight uploads: its `list` skips
//! them and no key maps onto them (see `keys`). Stale temp files left by a crash are
//! removed when the store opens. Reads, lists and deletes go through `object_store`.
//!
//! All blocking file IO runs on tokio's blocking pool, never on the HTTP threads.

use std::fmt::Display;
use std::fs::{self, File};
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use futures::Stream;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{GetResultPayload, ObjectStore, PutPayload};
use tokio::sync::mpsc;

use super::keys::Key;

/// Size of the chunks a local object is read in.
const READ_CHUNK: usize = 1 << 20;
/// Buffer of the local writer (actix hands over the body in small chunks).
const WRITE_BUFFER: usize = 1 << 20;
/// Body chunks queued between the HTTP task and the writer.
const WRITE_QUEUE: usize = 16;

/// What went wrong with a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no object with this key")]
    NotFound,
    /// The key cannot exist next to an existing one: a prefix of it is an object, or it is
    /// a prefix of existing objects (only on local disk, where prefixes are directories).
    #[error("{0}")]
    Conflict(String),
    #[error("object is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The request body could not be read to its end.
    #[error("request body ended with an error: {0}")]
    Body(String),
    /// The store itself failed; not the client's fault.
    #[error("storage failure: {0}")]
    Backend(String),
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

/// A store of objects by key.
pub struct Store {
    objects: Arc<dyn ObjectStore>,
    /// Set for local disk: the durable writer's view of the same store.
    local: Option<Arc<LocalFileSystem>>,
    description: String,
}

impl Store {
    /// A store in the local directory `root`, which is created if needed. Stale temp files
    /// from an interrupted write are removed. Blocking; call at start-up.
    pub fn local(root: &Path) -> io::Result<Store> {
        fs::create_dir_all(root)?;
        let root = fs::canonicalize(root)?;
        let removed = remove_stale_temps(&root)?;
        if removed > 0 {
            log::info!(
                "storaged: removed {removed} unfinished upload(s) under {}",
                root.display()
            );
        }
        let fs = Arc::new(
            LocalFileSystem::new_with_prefix(&root)
                .map_err(|e| io::Error::other(format!("{}: {e}", root.display())))?,
        );
        Ok(Store {
            objects: fs.clone(),
            local: Some(fs),
            description: format!("local directory {}", root.display()),
        })
    }

    /// A store over any `object_store` backend (S3-compatible, in-memory, ...). Writes use
    /// the backend's own `put`, which is atomic on those backends.
    pub fn with_object_store(objects: Arc<dyn ObjectStore>) -> Store {
        let description = objects.to_string();
        Store {
            objects,
            local: None,
            description,
        }
    }

    /// What the store is, for logs.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Stores `body` under `key`, replacing any object there, atomically: readers see the
    /// old object or the new one. Returns the size. Fails with `TooLarge` as soon as the
    /// body passes `limit` bytes; nothing is written then.
    pub async fn put<S, E>(&self, key: &Key, body: S, limit: u64) -> Result<u64, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: Display,
    {
        let body = std::pin::pin!(body);
        match &self.local {
            Some(fs) => {
                let target = fs
                    .path_to_filesystem(&key.to_path())
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
                put_local(target, body, limit).await
            }
            None => self.put_generic(key, body, limit).await,
        }
    }

    async fn put_generic<S, E>(
        &self,
        key: &Key,
        mut body: std::pin::Pin<&mut S>,
        limit: u64,
    ) -> Result<u64, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: Display,
    {
        // One copy of the body, as the chunks received; a multipart upload could stream it.
        let mut chunks = Vec::new();
        let mut total = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| StoreError::Body(e.to_string()))?;
            total += chunk.len() as u64;
            if total > limit {
                return Err(StoreError::TooLarge { limit });
            }
            chunks.push(chunk);
        }
        self.objects
            .put(&key.to_path(), PutPayload::from_iter(chunks))
            .await
            .map_err(backend)?;
        Ok(total)
    }

    /// Opens the object under `key` for reading.
    pub async fn get(&self, key: &Key) -> Result<Object, StoreError> {
        let result = match self.objects.get(&key.to_path()).await {
            Ok(r) => r,
            Err(e) if is_absent(&e) => return Err(StoreError::NotFound),
            Err(e) => return Err(backend(e)),
        };
        let size = result.meta.size;
        let body = match result.payload {
            GetResultPayload::File(file, _) => read_file_stream(file, size),
            GetResultPayload::Stream(s) => s.map_err(io::Error::other).boxed(),
        };
        Ok(Object { size, body })
    }

    /// Removes the object under `key`; an absent object is not an error.
    pub async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        match self.objects.delete(&key.to_path()).await {
            Ok(()) => Ok(()),
            Err(e) if is_absent(&e) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    /// Every object whose shown key starts with `prefix`, sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let dir = list_dir(prefix);
        let metas: Vec<object_store::ObjectMeta> =
            match self.objects.list(dir.as_ref()).try_collect().await {
                Ok(m) => m,
                // e.g. `a/b/` while `a` is an object: nothing can be under it.
                Err(e) if is_absent(&e) => Vec::new(),
                Err(e) => return Err(backend(e)),
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

/// The directory to list for `prefix`: its complete segments, when they are plain enough
/// to map back unambiguously; otherwise the whole store (and the filter does the rest).
fn list_dir(prefix: &str) -> Option<StorePath> {
    let (dir, _) = prefix.rsplit_once('/')?;
    let segments: Vec<String> = dir.split('/').map(str::to_string).collect();
    if segments.iter().any(|s| s.contains('%')) {
        return None;
    }
    Key::from_segments(segments).ok().map(|k| k.to_path())
}

fn backend(e: object_store::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Whether the error means "no object there": not found, or a path through a plain file
/// or onto a directory (local disk), which cannot be an object either.
fn is_absent(e: &object_store::Error) -> bool {
    if matches!(e, object_store::Error::NotFound { .. }) {
        return true;
    }
    matches!(
        io_kind(e),
        Some(ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory)
    )
}

/// The kind of the first `io::Error` in the error's source chain.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

/// Streams an open file in `READ_CHUNK` pieces, each read on the blocking pool.
fn read_file_stream(file: File, size: u64) -> BoxStream<'static, io::Result<Bytes>> {
    stream::try_unfold((file, size), |(mut file, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let want = left.min(READ_CHUNK as u64) as usize;
        let (file, chunk) = tokio::task::spawn_blocking(move || {
            let mut buf = BytesMut::zeroed(want);
            let mut filled = 0;
            while filled < want {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            buf.truncate(filled);
            Ok((file, buf.freeze()))
        })
        .await
        .map_err(io::Error::other)??;
        if chunk.is_empty() {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "object ended before its size",
            ));
        }
        let left = left - chunk.len() as u64;
        Ok(Some((chunk, (file, left))))
    })
    .boxed()
}

/// What the HTTP task hands to the local writer.
enum Piece {
    Data(Bytes),
    /// The body is complete: make it the object.
    Commit,
}

/// Why the local writer stopped.
enum WriteFail {
    Conflict(String),
    Io(io::Error),
    /// The sender went away without `Commit`: the body was refused or broken.
    Aborted,
}

/// Durable atomic put on local disk: body → temp file (on the blocking pool, fed through a
/// bounded queue, so at most a few chunks are in memory) → fsync → rename → fsync dir.
async fn put_local<S, E>(
    target: PathBuf,
    mut body: std::pin::Pin<&mut S>,
    limit: u64,
) -> Result<u64, StoreError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Display,
{
    let (tx, rx) = mpsc::channel::<Piece>(WRITE_QUEUE);
    // If the request is dropped (the client gave up, say on a timeout) while the object
    // is being synced, it must not be renamed into place afterwards: the client may
    // already have written something newer under that key, or deleted it.
    let abandoned = Arc::new(AtomicBool::new(false));
    let guard = AbandonOnDrop(abandoned.clone());
    let writer = tokio::task::spawn_blocking(move || write_local(&target, rx, &abandoned));
    let mut total = 0u64;
    let mut refused = None;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                refused = Some(StoreError::Body(e.to_string()));
                break;
            }
        };
        total += chunk.len() as u64;
        if total > limit {
            refused = Some(StoreError::TooLarge { limit });
            break;
        }
        if chunk.is_empty() {
            continue;
        }
        if tx.send(Piece::Data(chunk)).await.is_err() {
            break; // the writer failed; its result says why
        }
    }
    if refused.is_none() {
        // Fails only when the writer already stopped; its result says why.
        let _ = tx.send(Piece::Commit).await;
    }
    drop(tx);
    let result = writer
        .await
        .map_err(|e| StoreError::Backend(format!("writer task failed: {e}")))?;
    guard.keep();
    if let Some(err) = refused {
        return Err(err);
    }
    match result {
        Ok(size) => Ok(size),
        Err(WriteFail::Conflict(m)) => Err(StoreError::Conflict(m)),
        Err(WriteFail::Io(e)) => Err(StoreError::Backend(e.to_string())),
        Err(WriteFail::Aborted) => Err(StoreError::Backend("upload aborted".into())),
    }
}

/// Marks a write abandoned when dropped before `keep` (the request future went away).
struct AbandonOnDrop(Arc<AtomicBool>);

impl AbandonOnDrop {
    fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn write_local(
    target: &Path,
    mut rx: mpsc::Receiver<Piece>,
    abandoned: &AtomicBool,
) -> Result<u64, WriteFail> {
    let dir = target
        .parent()
        .ok_or_else(|| WriteFail::Io(io::Error::other("object path has no parent")))?;
    if target.is_dir() {
        return Err(WriteFail::Conflict(
            "the key is a prefix of existing objects".into(),
        ));
    }
    ensure_dir(dir)?;
    let (file, temp) = create_temp(target).map_err(WriteFail::Io)?;
    let result = fill_and_commit(file, &temp, target, dir, &mut rx, abandoned);
    if result.is_err() {
        if let Err(e) = fs::remove_file(&temp) {
            if e.kind() != ErrorKind::NotFound {
                log::warn!("storaged: cannot remove temp file {}: {e}", temp.display());
            }
        }
    }
    result
}

fn fill_and_commit(
    file: File,
    temp: &Path,
    target: &Path,
    dir: &Path,
    rx: &mut mpsc::Receiver<Piece>,
    abandoned: &AtomicBool,
) -> Result<u64, WriteFail> {
    let mut out = io::BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut size = 0u64;
    loop {
        match rx.blocking_recv() {
            Some(Piece::Data(chunk)) => {
                out.write_all(&chunk).map_err(WriteFail::Io)?;
                size += chunk.len() as u64;
            }
            Some(Piece::Commit) => break,
            None => return Err(WriteFail::Aborted),
        }
    }
    let file = out
        .into_inner()
        .map_err(|e| WriteFail::Io(e.into_error()))?;
    file.sync_all().map_err(WriteFail::Io)?;
    drop(file);
    if abandoned.load(Ordering::SeqCst) {
        return Err(WriteFail::Aborted);
    }
    fs::rename(temp, target).map_err(|e| match e.kind() {
        ErrorKind::IsADirectory | ErrorKind::DirectoryNotEmpty => {
            WriteFail::Conflict("the key is a prefix of existing objects".into())
        }
        _ => WriteFail::Io(e),
    })?;
    sync_dir(dir).map_err(WriteFail::Io)?;
    Ok(size)
}

/// Creates `dir` and its missing parents, fsyncing the parent of each created directory so
/// that the new entries survive a crash. A plain file in the way is a key conflict.
fn ensure_dir(dir: &Path) -> Result<(), WriteFail> {
    let conflict = || WriteFail::Conflict("a prefix of the key is an existing object".into());
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => return Err(conflict()),
        Err(e) if e.kind() == ErrorKind::NotADirectory => return Err(conflict()),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(WriteFail::Io(e)),
    }
    let parent = dir
        .parent()
        .ok_or_else(|| WriteFail::Io(io::Error::other("store root is missing")))?;
    ensure_dir(parent)?;
    match fs::create_dir(dir) {
        Ok(()) => sync_dir(parent).map_err(WriteFail::Io),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            if dir.is_dir() {
                Ok(()) // created concurrently
            } else {
                Err(conflict())
            }
        }
        Err(e) if e.kind() == ErrorKind::NotADirectory => Err(conflict()),
        Err(e) => Err(WriteFail::Io(e)),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Opens a new temp file `<target name>#<digits>` next to the target.
fn create_temp(target: &Path) -> io::Result<(File, PathBuf)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ (u64::from(std::process::id()) << 40);
    loop {
        let n = seed.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut name = target.as_os_str().to_owned();
        name.push(format!("#{n}"));
        let temp = PathBuf::from(name);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
        {
            Ok(f) => return Ok((f, temp)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Whether a file name is a temp file: `<something>#<digits>`.
fn is_temp_name(name: &std::ffi::OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    match name.rsplit_once('#') {
        Some((_, digits)) => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// Removes temp files under `root` (without following symlinks); returns how many.
fn remove_stale_temps(root: &Path) -> io::Result<usize> {
    let mut removed = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() && is_temp_name(&entry.file_name()) {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    async fn read(store: &Store, k: &Key) -> Vec<u8> {
        let obj = store.get(k).await.unwrap();
        let data: Vec<Bytes> = obj.body.try_collect().await.unwrap();
        let data = data.concat();
        assert_eq!(data.len() as u64, obj.size);
        data
    }

    #[tokio::test]
    async fn local_round_trip_and_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::local(dir.path()).unwrap();
        let k = key("a/b");
        assert_eq!(store.put(&k, body(&[b"he", b"llo"]), 100).await.unwrap(), 5);
        assert_eq!(read(&store, &k).await, b"hello");
        // `a` is a directory now: no object, and no object can go there.
        assert!(matches!(
            store.get(&key("a")).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store.put(&key("a"), body(&[b"x"]), 100).await,
            Err(StoreError::Conflict(_))
        ));
        store.delete(&key("a")).await.unwrap();
        // `a/b` is a file: nothing can go under it, and nothing is there.
        assert!(matches!(
            store.put(&key("a/b/c"), body(&[b"x"]), 100).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.get(&key("a/b/c")).await,
            Err(StoreError::NotFound)
        ));
        store.delete(&key("a/b/c")).await.unwrap();
        assert!(store.list("a/b/").await.unwrap().is_empty());
        assert!(store.list("a/b/c/").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn refused_bodies_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::local(dir.path()).unwrap();
        let k = key("k");
        assert!(matches!(
            store.put(&k, body(&[b"0123", b"456789"]), 8).await,
            Err(StoreError::TooLarge { limit: 8 })
        ));
        let broken = stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(io::Error::other("client went away")),
        ]);
        assert!(matches!(
            store.put(&k, broken, 100).await,
            Err(StoreError::Body(_))
        ));
        assert!(matches!(store.get(&k).await, Err(StoreError::NotFound)));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn stale_temps_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("x")).unwrap();
        fs::write(dir.path().join("x/obj#123"), b"partial").unwrap();
        fs::write(dir.path().join("x/obj"), b"whole").unwrap();
        let store = Store::local(dir.path()).unwrap();
        assert!(!dir.path().join("x/obj#123").exists());
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
    async fn large_object_streams_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::local(dir.path()).unwrap();
        let data: Vec<u8> = (0..(3 * READ_CHUNK + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let chunks: Vec<Result<Bytes, io::Error>> = data
            .chunks(65536)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let k = key("big");
        store.put(&k, stream::iter(chunks), u64::MAX).await.unwrap();
        let obj = store.get(&k).await.unwrap();
        let parts: Vec<Bytes> = obj.body.try_collect().await.unwrap();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts.concat(), data);
    }

    #[tokio::test]
    async fn any_object_store_works() {
        let store = Store::with_object_store(Arc::new(object_store::memory::InMemory::new()));
        let k = key("p/a%2Fb");
        store.put(&k, body(&[b"xy"]), 10).await.unwrap();
        assert_eq!(read(&store, &k).await, b"xy");
        assert!(matches!(
            store.put(&k, body(&[b"0123456789x"]), 10).await,
            Err(StoreError::TooLarge { .. })
        ));
        assert_eq!(
            store.list("p/").await.unwrap(),
            [Listed {
                key: "p/a%2Fb".into(),
                size: 2
            }]
        );
        store.delete(&k).await.unwrap();
        store.delete(&k).await.unwrap();
        assert!(matches!(store.get(&k).await, Err(StoreError::NotFound)));
    }

    #[test]
    fn temp_names() {
        assert!(is_temp_name("a#1".as_ref()));
        assert!(is_temp_name("a%23b#12345".as_ref()));
        assert!(!is_temp_name("a#".as_ref()));
        assert!(!is_temp_name("a#1x".as_ref()));
        assert!(!is_temp_name("a%231".as_ref()));
    }
}
