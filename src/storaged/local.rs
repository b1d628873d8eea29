//! The local disk behind storaged's backend (`storaged.backend = "local"`): objects as
//! files under a root directory, written durably and atomically, any set of keys side by
//! side.
//!
//! # Names
//!
//! A key `s1/.../sn` is the file `E(sn)` in the directory `E(s1)/.../E(sn-1)` (`E` is
//! `keys::encode_segment`), its *plain* name — unless a directory holds that name (keys under
//! `s1/.../sn/` exist too): then the object's file is `E(sn)#obj`, its *aside* name, which no
//! segment encodes to. So `a` and `a/b` coexist (`a#obj` next to the directory `a/`), and a
//! store written before aside names existed (every object under its plain name) is read as
//! it is, with no migration.
//!
//! Invariant: an object's file exists under at most one of its two names. Every change of
//! which name an object has runs under one lock (`ns`), in an order that keeps the
//! invariant at every step, also across a crash:
//!
//! - a PUT commits (renames its temp file) onto the plain name when that name is free and
//!   no aside file exists, onto the aside name when the plain name is a directory or the
//!   object is already aside, and onto the plain file when there is one;
//! - a PUT that needs a directory where a plain object file is moves that file to its aside
//!   name (one rename) and then creates the directory;
//! - a DELETE removes the file under either name, then every directory it leaves empty, up
//!   to the root (an object aside stays aside: reads find it there).
//!
//! A reader takes no lock: it opens the plain name, and the aside name when the plain one is
//! missing or a directory. Since an object only ever moves from plain to aside in one rename
//! (and back only by being deleted and written anew), a reader never misses an object that
//! exists all through its read.
//!
//! Directory creation takes no lock either: a PUT creates the directories it needs, then its
//! temp file inside; if a concurrent DELETE removed an (empty) directory in between, the
//! temp file cannot be created and the PUT creates the directories again. Once the temp file
//! is there the directory is not empty, so no DELETE removes it.
//!
//! # Durability
//!
//! A PUT writes a temp file `<plain name>#<digits>` in the target's directory, fsyncs it,
//! renames it into place and fsyncs the directory (and the parent of every directory it
//! created or removed). Temp files are never listed, no key maps onto them, and the stale
//! ones a crash left behind are removed when the store opens, with empty directories.
//!
//! All blocking file IO runs on tokio's blocking pool, never on the HTTP threads.

use std::fmt::Display;
use std::fs::{self, File};
use std::io::{self, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt};
use futures::Stream;
use tokio::sync::mpsc;

use super::keys::{decode_segment, encode_segment, list_dir_segments, Key, OBJECT_SUFFIX};
use super::object::{BackendError, Listed, Object};

/// Size of the chunks a local object is read in.
pub(crate) const READ_CHUNK: usize = 1 << 20;
/// Buffer of the local writer (actix hands over the body in small chunks).
const WRITE_BUFFER: usize = 1 << 20;
/// Body chunks queued between the HTTP task and the writer.
const WRITE_QUEUE: usize = 16;
/// Times a PUT recreates its directories after concurrent DELETEs removed them (each retry
/// needs another DELETE to empty the same directory in a window of a few syscalls).
const DIR_RETRIES: usize = 1000;

/// Objects as files under a root directory. Cheap to clone (shared state).
#[derive(Clone)]
pub struct LocalDisk {
    root: Arc<Path>,
    /// Held while an object's name changes (commit, move aside, delete, directory removal).
    ns: Arc<Mutex<()>>,
}

/// What was cleaned up when a store opened.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub temp_files: usize,
    pub empty_dirs: usize,
}

impl LocalDisk {
    /// The store in `root`, which is created if needed. Stale temp files from interrupted
    /// writes and empty directories are removed. Blocking; call at start-up.
    pub fn open(root: &Path) -> io::Result<(LocalDisk, Swept)> {
        fs::create_dir_all(root)?;
        let root = fs::canonicalize(root)?;
        if !root.is_dir() {
            return Err(io::Error::new(ErrorKind::NotADirectory, "not a directory"));
        }
        let mut swept = Swept::default();
        sweep(&root, &root, &mut swept)?;
        Ok((
            LocalDisk {
                root: root.into(),
                ns: Arc::new(Mutex::new(())),
            },
            swept,
        ))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.ns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where `key` lives: its directory's path below the root (encoded names) and its
    /// plain name.
    fn place(&self, key: &Key) -> (Vec<String>, String) {
        let mut names = key.encoded();
        let last = names.pop().expect("a key has a segment");
        (names, last)
    }

    fn dir_path(&self, dirs: &[String]) -> PathBuf {
        let mut p = self.root.to_path_buf();
        p.extend(dirs);
        p
    }

    /// Stores `body` under `key` (see `Backend::put`).
    pub async fn put<S, E>(
        &self,
        key: &Key,
        mut body: std::pin::Pin<&mut S>,
        limit: u64,
    ) -> Result<u64, BackendError>
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
        let (dirs, name) = self.place(key);
        let store = self.clone();
        let writer = tokio::task::spawn_blocking(move || store.write(&dirs, &name, rx, &abandoned));
        let mut total = 0u64;
        let mut refused = None;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    refused = Some(BackendError::Body(e.to_string()));
                    break;
                }
            };
            total += chunk.len() as u64;
            if total > limit {
                refused = Some(BackendError::TooLarge { limit });
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
            .map_err(|e| BackendError::Storage(format!("writer task failed: {e}")))?;
        guard.keep();
        if let Some(err) = refused {
            return Err(err);
        }
        match result {
            Ok(size) => Ok(size),
            Err(WriteFail::Io(e)) => Err(BackendError::Storage(e.to_string())),
            Err(WriteFail::Aborted) => Err(BackendError::Storage("upload aborted".into())),
        }
    }

    /// The writer (blocking pool): temp file in the target directory → fsync → commit.
    fn write(
        &self,
        dirs: &[String],
        name: &str,
        mut rx: mpsc::Receiver<Piece>,
        abandoned: &AtomicBool,
    ) -> Result<u64, WriteFail> {
        let dir = self.dir_path(dirs);
        let (file, temp) = self.open_temp(dirs, &dir, name).map_err(WriteFail::Io)?;
        let result = self.fill_and_commit(file, &temp, &dir, name, &mut rx, abandoned);
        if result.is_err() {
            if let Err(e) = fs::remove_file(&temp) {
                if e.kind() != ErrorKind::NotFound {
                    log::warn!("storaged: cannot remove temp file {}: {e}", temp.display());
                }
            }
            // the directories made for this object, if nothing else is in them
            let _ns = self.lock();
            self.prune(dir);
        }
        result
    }

    /// Creates the key's directories and a temp file in the last one; again when a
    /// concurrent DELETE removed a directory in between.
    fn open_temp(&self, dirs: &[String], dir: &Path, name: &str) -> io::Result<(File, PathBuf)> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.ensure_dirs(dirs).and_then(|()| create_temp(dir, name));
            match result {
                Ok(opened) => return Ok(opened),
                Err(e)
                    if attempt < DIR_RETRIES
                        && matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Makes every directory of `dirs` exist, fsyncing the parent of each one created. A
    /// plain object file where a directory is needed is moved to its aside name first.
    /// `NotFound`/`NotADirectory` mean a concurrent DELETE changed the path: try again.
    fn ensure_dirs(&self, dirs: &[String]) -> io::Result<()> {
        let full = self.dir_path(dirs);
        if fs::metadata(&full).is_ok_and(|m| m.is_dir()) {
            return Ok(());
        }
        let mut cur = self.root.to_path_buf();
        for name in dirs {
            let parent = cur.clone();
            cur.push(name);
            match fs::create_dir(&cur) {
                Ok(()) => sync_dir(&parent)?,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if !fs::metadata(&cur)?.is_dir() {
                        self.move_aside(&parent, name)?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Moves the object file `parent/name` to its aside name and creates the directory
    /// `parent/name` in its place (under the lock, re-checking what is there).
    fn move_aside(&self, parent: &Path, name: &str) -> io::Result<()> {
        let _ns = self.lock();
        let plain = parent.join(name);
        match fs::metadata(&plain) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => {
                // By the invariant no aside file exists; if one did, the plain file is the
                // one readers see, so it wins.
                fs::rename(&plain, aside(parent, name))?;
                log::debug!(
                    "storaged: object file {} moved aside for a directory",
                    plain.display()
                );
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match fs::create_dir(&plain) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists && plain.is_dir() => {}
            Err(e) => return Err(e),
        }
        sync_dir(parent)
    }

    fn fill_and_commit(
        &self,
        file: File,
        temp: &Path,
        dir: &Path,
        name: &str,
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
        {
            let _ns = self.lock();
            if abandoned.load(Ordering::SeqCst) {
                return Err(WriteFail::Aborted);
            }
            commit(temp, dir, name).map_err(WriteFail::Io)?;
        }
        sync_dir(dir).map_err(WriteFail::Io)?;
        Ok(size)
    }

    /// Opens the object under `key` for reading.
    pub async fn get(&self, key: &Key) -> Result<Object, BackendError> {
        let (dirs, name) = self.place(key);
        let dir = self.dir_path(&dirs);
        let opened = tokio::task::spawn_blocking(move || open_object(&dir, &name))
            .await
            .map_err(|e| BackendError::Storage(format!("read task failed: {e}")))?;
        match opened {
            Ok(Some((file, size))) => Ok(Object {
                size,
                body: read_file_stream(file, size),
            }),
            Ok(None) => Err(BackendError::NotFound),
            Err(e) => Err(BackendError::Storage(e.to_string())),
        }
    }

    /// Removes the object under `key` (absent is fine), then the directories that leaves
    /// empty, up to the root.
    pub async fn delete(&self, key: &Key) -> Result<(), BackendError> {
        let (dirs, name) = self.place(key);
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.delete_blocking(&dirs, &name))
            .await
            .map_err(|e| BackendError::Storage(format!("delete task failed: {e}")))?
            .map_err(|e| BackendError::Storage(e.to_string()))
    }

    fn delete_blocking(&self, dirs: &[String], name: &str) -> io::Result<()> {
        let dir = self.dir_path(dirs);
        let plain = dir.join(name);
        // Directories whose entries changed, to fsync once the lock is released.
        let mut changed = Vec::new();
        {
            let _ns = self.lock();
            let mut removed = false;
            match fs::metadata(&plain) {
                Ok(m) if !m.is_dir() => {
                    fs::remove_file(&plain)?;
                    removed = true;
                }
                Ok(_) => {}
                Err(e) if is_absent(&e) => {}
                Err(e) => return Err(e),
            }
            match fs::remove_file(aside(&dir, name)) {
                Ok(()) => removed = true,
                Err(e) if is_absent(&e) => {}
                Err(e) => return Err(e),
            }
            if removed {
                changed.push(dir.clone());
            }
            changed.extend(self.prune(dir));
        }
        for d in changed {
            match sync_dir(&d) {
                // removed meanwhile (by this delete or another): its parent is synced
                Err(e) if is_absent(&e) => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Removes `dir` and its parents while they are empty, up to the root (under the lock):
    /// `rmdir` fails on the first one that is not empty (or not there), which ends the walk.
    /// Returns the parents of the removed directories (to fsync).
    fn prune(&self, dir: PathBuf) -> Vec<PathBuf> {
        let mut changed = Vec::new();
        let mut cur = dir;
        while cur.as_path() != &*self.root {
            if fs::remove_dir(&cur).is_err() {
                break;
            }
            let parent = cur.parent().expect("below the root").to_path_buf();
            changed.push(parent.clone());
            cur = parent;
        }
        changed
    }

    /// Every object whose shown key starts with `prefix`, sorted by key. `start` is the
    /// directory (encoded names) to walk: one that holds every such key.
    pub async fn list(
        &self,
        start: Vec<String>,
        prefix: &str,
    ) -> Result<Vec<Listed>, BackendError> {
        let store = self.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || store.list_blocking(&start, &prefix))
            .await
            .map_err(|e| BackendError::Storage(format!("list task failed: {e}")))?
            .map_err(|e| BackendError::Storage(e.to_string()))
    }

    fn list_blocking(&self, start: &[String], prefix: &str) -> io::Result<Vec<Listed>> {
        let mut segments = Vec::new();
        for name in start {
            match decode_segment(name) {
                Some(s) => segments.push(s),
                None => return Ok(Vec::new()),
            }
        }
        let mut out = Vec::new();
        let dir = self.dir_path(start);
        walk(&dir, &mut segments, prefix, &mut out)?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        // A listing that ran while an object moved aside may have seen it twice.
        out.dedup_by(|a, b| a.key == b.key);
        Ok(out)
    }
}

/// Renames `temp` onto the object's name (see the module documentation); under the lock.
fn commit(temp: &Path, dir: &Path, name: &str) -> io::Result<()> {
    let plain = dir.join(name);
    let aside = aside(dir, name);
    for _ in 0..DIR_RETRIES {
        let target = match fs::metadata(&plain) {
            Ok(m) if m.is_dir() => &aside,
            Ok(_) => &plain,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if fs::symlink_metadata(&aside).is_ok() {
                    &aside
                } else {
                    &plain
                }
            }
            Err(e) => return Err(e),
        };
        match fs::rename(temp, target) {
            Ok(()) => return Ok(()),
            // A PUT under this key created the directory meanwhile (directories are made
            // without the lock): go aside.
            Err(e)
                if target == &plain
                    && matches!(
                        e.kind(),
                        ErrorKind::IsADirectory | ErrorKind::DirectoryNotEmpty
                    ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("object name kept changing"))
}

/// The aside name of the object `dir/name`.
fn aside(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{OBJECT_SUFFIX}"))
}

/// The object's file, open, and its size; `None` when there is none.
fn open_object(dir: &Path, name: &str) -> io::Result<Option<(File, u64)>> {
    for path in [dir.join(name), aside(dir, name)] {
        match File::open(&path) {
            Ok(file) => {
                let meta = file.metadata()?;
                if meta.is_file() {
                    return Ok(Some((file, meta.len())));
                }
                // a directory: the object, if any, is aside
            }
            Err(e) if is_absent(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// "Not there": missing, or a path through a plain file.
fn is_absent(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

/// Lists the objects under `dir` (whose key segments are `segments`) into `out`.
fn walk(
    dir: &Path,
    segments: &mut Vec<String>,
    prefix: &str,
    out: &mut Vec<Listed>,
) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if is_absent(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if is_absent(&e) => continue,
            Err(e) => return Err(e),
        };
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            log::debug!("storaged: list skips stray name {:?}", entry.path());
            continue;
        };
        // A symbolic link counts as what it points to.
        let kind = match entry.file_type().and_then(|k| {
            if k.is_symlink() {
                fs::metadata(entry.path()).map(|m| m.file_type())
            } else {
                Ok(k)
            }
        }) {
            Ok(k) => k,
            Err(e) if is_absent(&e) => continue,
            Err(e) => return Err(e),
        };
        if kind.is_dir() {
            let Some(segment) = decode_segment(&name) else {
                log::debug!("storaged: list skips stray directory {:?}", entry.path());
                continue;
            };
            segments.push(segment);
            // Only directories whose keys can match the prefix.
            let shown = Key::from_segments(segments.clone()).map(|k| k.display());
            let reachable = shown.is_ok_and(|s| {
                let s = s + "/";
                s.starts_with(prefix) || prefix.starts_with(&s)
            });
            if reachable {
                walk(&entry.path(), segments, prefix, out)?;
            }
            segments.pop();
            continue;
        }
        if !kind.is_file() || is_temp_name(&name) {
            continue;
        }
        let stem = name.strip_suffix(OBJECT_SUFFIX).unwrap_or(&name);
        let Some(segment) = decode_segment(stem) else {
            log::debug!("storaged: list skips stray name {:?}", entry.path());
            continue;
        };
        segments.push(segment);
        if let Ok(key) = Key::from_segments(segments.clone()) {
            let shown = key.display();
            if shown.starts_with(prefix) {
                match entry.metadata() {
                    Ok(m) => out.push(Listed {
                        key: shown,
                        size: m.len(),
                    }),
                    Err(e) if is_absent(&e) => {} // deleted meanwhile
                    Err(e) => {
                        segments.pop();
                        return Err(e);
                    }
                }
            }
        }
        segments.pop();
    }
    Ok(())
}

/// Removes temp files and empty directories below `dir` (not `dir` itself when it is the
/// root), without following symlinks. Returns whether `dir` is empty afterwards.
fn sweep(root: &Path, dir: &Path, swept: &mut Swept) -> io::Result<bool> {
    let mut empty = true;
    let mut changed = false;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if sweep(root, &entry.path(), swept)? {
                fs::remove_dir(entry.path())?;
                swept.empty_dirs += 1;
                changed = true;
            } else {
                empty = false;
            }
        } else if kind.is_file() && entry.file_name().to_str().is_some_and(is_temp_name) {
            fs::remove_file(entry.path())?;
            swept.temp_files += 1;
            changed = true;
        } else {
            empty = false;
        }
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(empty && dir != root)
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
    Io(io::Error),
    /// The sender went away without `Commit` (the body was refused or broken), or the
    /// request was abandoned before the commit.
    Aborted,
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

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Opens a new temp file `<name>#<digits>` in `dir`.
fn create_temp(dir: &Path, name: &str) -> io::Result<(File, PathBuf)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ (u64::from(std::process::id()) << 40);
    loop {
        let n = seed.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed));
        let temp = dir.join(format!("{name}#{n}"));
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
fn is_temp_name(name: &str) -> bool {
    match name.rsplit_once('#') {
        Some((_, digits)) => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// The encoded directory names to list for `prefix`: its complete segments.
pub(crate) fn list_start(prefix: &str) -> Vec<String> {
    match list_dir_segments(prefix) {
        Some(segments) => segments.iter().map(|s| encode_segment(s)).collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names() {
        assert!(is_temp_name("a#1"));
        assert!(is_temp_name("a%23b#12345"));
        assert!(is_temp_name("a#obj#12345"));
        assert!(!is_temp_name("a#"));
        assert!(!is_temp_name("a#1x"));
        assert!(!is_temp_name("a%231"));
        assert!(!is_temp_name("a#obj"));
    }
}
