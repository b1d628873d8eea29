//! The start-up load of one index, and the collection of orphaned objects: the registry
//! lists the manifests `_vectors/<name>.lhv1` in storaged and calls `load` for each (see
//! `registry::startup`); the loader never names the registry.
//!
//! An index loads from its manifest: its sealed segments are streamed straight into their
//! arrays (nothing is rebuilt; an `on_disk` index maps them from its cache files instead,
//! and streams into those the objects whose file is missing, damaged or written from
//! another object; a replica's reload takes the segments its index already holds), then
//! the log objects after the manifest's covered lsn are applied in order, stopping at the
//! first gap or damaged object (reported in `/health`; what follows it cannot be applied
//! safely and is left in place). Files of the older
//! one-object layouts (0.1.0's, with an `hnsw_rs` dump) load too, and are rewritten in the
//! current layout by the first save.
//!
//! A file that fails its checks is refused, and its failure says so (`retrying` false); a
//! load that failed for a transient reason (storaged unreachable, slow or failing) says
//! it is worth retrying.
//!
//! Once everything is loaded, objects that no manifest needs are deleted: segment objects a
//! crash left before their manifest was written, log objects a manifest covers, the objects
//! of earlier incarnations and of deleted indexes.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::layout::{
    incarnation_dir, manifest_key, name_of_manifest, new_incarnation, split_index_object,
    KEY_PREFIX,
};
use super::objects::Objects;
use super::save::{Stored, StoredLog, StoredManifest};
use crate::codec::cache_file::{self, CacheSource, ObjectToCache};
use crate::codec::log::{self as log_object, LogRecord};
use crate::codec::manifest::ManifestSegment;
use crate::codec::manifest::{self, parse_log_object, Manifest, KIND_MANIFEST};
use crate::codec::segment::{SegmentArrays, SegmentEnvelope, SegmentObjectReader};
use crate::codec::{self};
use crate::index::disk_cache;
use crate::index::persisted::{HeldSegment, LoadedSegment, SegmentContent, WeakSegment};
use crate::index::{EngineConfig, Index};
use crate::params::check_name;
use crate::storaged_client::{ObjectInfo, StoreError};

/// An index as loaded.
pub struct Loaded {
    pub index: Index,
    /// Where its actor starts counting mutations and log sequence numbers.
    pub seq: u64,
    pub lsn: u64,
    pub stored: Stored,
    /// Read from an old layout: to be saved in the current one at once.
    pub dirty: bool,
    /// Why the log replay stopped early, if it did.
    pub warning: Option<String>,
    /// An earlier incarnation whose objects stay untouched by this start's cleanup (the
    /// one whose log was cut short: its objects are left for an operator to look at).
    pub keep_incarnation: Option<String>,
    /// Segments taken from memory (`load_reusing`) instead of being read.
    pub segments_kept: usize,
}

/// A persisted index that could not be loaded; its file is left in place.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    pub name: String,
    pub key: String,
    pub error: String,
    /// The failure looked transient (storaged unreachable or slow): worth retrying.
    pub retrying: bool,
}

/// What the cleanup after the load must keep of one index.
pub struct Keep {
    incarnation: String,
    objects: HashSet<String>,
    also: Option<String>,
}

impl Keep {
    /// The objects a loaded index still needs.
    pub fn of(loaded: &Loaded) -> Keep {
        let stored = &loaded.stored;
        Keep {
            incarnation: stored.incarnation.clone(),
            objects: stored
                .segments
                .keys()
                .map(|&id| manifest::segment_object(id))
                .chain(
                    stored
                        .logs
                        .iter()
                        .map(|l| manifest::log_object(l.first_lsn)),
                )
                .collect(),
            also: loaded.keep_incarnation.clone(),
        }
    }
}

/// Why one index did not load.
#[derive(Debug)]
struct LoadError {
    message: String,
    /// Worth trying again (storage trouble), as opposed to a file that fails its checks.
    transient: bool,
}

impl LoadError {
    fn refused(message: impl Into<String>) -> LoadError {
        LoadError {
            message: message.into(),
            transient: false,
        }
    }

    fn reading(what: &str, e: StoreError) -> LoadError {
        LoadError {
            transient: !matches!(e, StoreError::KeyNotFound(_)),
            message: format!("reading {what}: {e}"),
        }
    }
}

/// Every object under `_vectors/` (what `stored_names` and `collect_orphans` read).
pub async fn list_objects(store: &impl Objects) -> Result<Vec<ObjectInfo>, StoreError> {
    store.list(KEY_PREFIX).await
}

/// The names of the stored indexes: one per manifest.
pub fn stored_names(objects: &[ObjectInfo]) -> Vec<String> {
    objects
        .iter()
        .filter_map(|o| name_of_manifest(&o.key).map(str::to_string))
        .collect()
}

/// Segments already in memory that a load may take instead of reading their objects: a
/// replica's index, while the replica loads its primary's next manifest. They are held
/// weakly: a segment the index merged away since is read again.
#[derive(Default)]
pub struct Reuse {
    /// By the key of the object each was loaded from: that object's length, the segment.
    segments: HashMap<String, (u64, WeakSegment)>,
}

impl Reuse {
    /// The segments `loaded` (index `name`) holds of the objects it was loaded from.
    pub fn of(name: &str, loaded: &Loaded) -> Reuse {
        let dir = incarnation_dir(name, &loaded.stored.incarnation);
        let segments = loaded
            .stored
            .segments
            .iter()
            .filter_map(|(&id, &bytes)| {
                let held = loaded.index.held_segment(id)?;
                let key = format!("{dir}{}", manifest::segment_object(id));
                Some((key, (bytes, held.downgrade())))
            })
            .collect();
        Reuse { segments }
    }

    /// The segment loaded from the object at `key`, if it is still in memory and is the
    /// object `entry` names (same length and points).
    fn get(&self, key: &str, entry: &ManifestSegment) -> Option<HeldSegment> {
        let (bytes, weak) = self.segments.get(key)?;
        weak.upgrade()
            .filter(|held| *bytes == entry.bytes && held.points() == entry.points)
    }
}

/// Loads index `name` within `timeout`.
pub async fn load(
    store: &impl Objects,
    name: &str,
    timeout: Duration,
    engine: EngineConfig,
) -> Result<Loaded, LoadFailure> {
    load_reusing(store, name, timeout, engine, &Reuse::default()).await
}

/// `load`, taking from `reuse` the segments it holds instead of reading them.
pub async fn load_reusing(
    store: &impl Objects,
    name: &str,
    timeout: Duration,
    engine: EngineConfig,
    reuse: &Reuse,
) -> Result<Loaded, LoadFailure> {
    let loading = load_one(store, name, engine, reuse);
    let result = match tokio::time::timeout(timeout, loading).await {
        Ok(result) => result,
        Err(_) => Err(LoadError {
            message: format!("timed out after {} s", timeout.as_secs()),
            transient: true,
        }),
    };
    result.map_err(|e| LoadFailure {
        name: name.to_string(),
        key: manifest_key(name),
        error: e.message,
        retrying: e.transient,
    })
}

/// Deletes the objects under `_vectors/<name>/` that nothing needs (see the module
/// comment). `needed` holds every loaded index; objects of a name whose load `failed` are
/// left alone. Answers how many were deleted.
pub async fn collect_orphans(
    store: &impl Objects,
    objects: &[ObjectInfo],
    needed: &HashMap<String, Keep>,
    failed: impl Fn(&str) -> bool,
) -> usize {
    let manifests: HashSet<&str> = objects
        .iter()
        .filter_map(|o| name_of_manifest(&o.key))
        .collect();
    let mut removed = 0;
    for o in objects {
        let Some((name, rest)) = split_index_object(&o.key) else {
            continue;
        };
        if failed(name) {
            continue;
        }
        let orphan = match needed.get(name) {
            Some(keep) => match rest.split_once('/') {
                Some((inc, _)) if keep.also.as_deref() == Some(inc) => false,
                Some((inc, object)) => inc != keep.incarnation || !keep.objects.contains(object),
                None => true,
            },
            // No manifest at all: what is left of a deleted index.
            None => !manifests.contains(name),
        };
        if orphan {
            match store.delete(&o.key).await {
                Ok(()) => removed += 1,
                Err(e) => log::warn!("removing the orphaned object {} failed: {e}", o.key),
            }
        }
    }
    if removed > 0 {
        log::info!("removed {removed} orphaned objects (left by crashes or deleted indexes)");
    }
    removed
}

/// Fetches, checks and restores one index.
async fn load_one(
    store: &impl Objects,
    name: &str,
    engine: EngineConfig,
    reuse: &Reuse,
) -> Result<Loaded, LoadError> {
    check_name(name).map_err(|e| LoadError::refused(e.to_string()))?;
    let key = manifest_key(name);
    let bytes = store
        .get(&key)
        .await
        .map_err(|e| LoadError::reading(&key, e))?;
    let kind = codec::unframe(&bytes)
        .and_then(|(env, _)| codec::head(env))
        .map(|h| h.kind)
        .map_err(|e| LoadError::refused(format!("refused: {e}")))?;
    if kind.as_deref() == Some(KIND_MANIFEST) {
        return load_manifest(store, name, &bytes, engine, reuse).await;
    }
    load_single_object(name, bytes, engine).await
}

/// An index in one object (0.1.0's layout, or the whole-index object of the engine's
/// first segmented version): its unsealed points go to a first log record, and the first
/// save writes the current layout over it.
async fn load_single_object(
    name: &str,
    bytes: bytes::Bytes,
    engine: EngineConfig,
) -> Result<Loaded, LoadError> {
    let owned_name = name.to_string();
    let index = blocking(move || {
        let index = Index::from_one_object(&bytes, engine)?;
        if index.params().name != owned_name {
            return Err(format!(
                "file holds index {:?}, not {owned_name:?}",
                index.params().name
            ));
        }
        Ok(index)
    })
    .await
    .map_err(|e| LoadError::refused(format!("refused: {e}")))?;
    log::info!("index {name:?}: read from an older layout; the next save rewrites it");
    Ok(as_new_incarnation(index, None, None))
}

/// An index whose next save writes a new incarnation whole (its unsealed points as a
/// first log record).
fn as_new_incarnation(
    index: Index,
    warning: Option<String>,
    keep_incarnation: Option<String>,
) -> Loaded {
    let mut stored = Stored::new(new_incarnation());
    stored.pending = index.unsealed_as_log();
    Loaded {
        index,
        seq: 1,
        lsn: stored.pending.last_lsn,
        stored,
        dirty: true,
        warning,
        keep_incarnation,
        segments_kept: 0,
    }
}

/// An index in the current layout: its segments, then its log (see the module comment).
async fn load_manifest(
    store: &impl Objects,
    name: &str,
    bytes: &[u8],
    engine: EngineConfig,
    reuse: &Reuse,
) -> Result<Loaded, LoadError> {
    let (m, bits) =
        manifest::decode(bytes).map_err(|e| LoadError::refused(format!("refused: {e}")))?;
    if m.params.name != name {
        return Err(LoadError::refused(format!(
            "refused: manifest holds index {:?}, not {name:?}",
            m.params.name
        )));
    }
    let cache = engine
        .cache_root
        .map(|root| disk_cache::index_dir(root, name));
    let segments = match cache.filter(|_| m.params.on_disk) {
        Some(dir) => {
            let found = Found { name, m: &m, reuse };
            load_segments_cached(store, &found, bits, dir, !engine.replica).await?
        }
        None => {
            if let Some(root) = engine.cache_root {
                // Files of an earlier index of this name that kept its vectors on disk.
                disk_cache::remove_index(root, name);
            }
            load_segments(store, name, &m, bits, reuse).await?
        }
    };
    let segments_kept = segments
        .iter()
        .filter(|s| matches!(s.content, SegmentContent::Held(_)))
        .count();
    let (params, fields) = (m.params.clone(), m.fields.clone());
    let index = blocking(move || Index::from_storage(params, engine, fields, segments))
        .await
        .map_err(|e| LoadError::refused(format!("refused: {e}")))?;
    let index = Arc::new(index);
    let replayed = replay_log(store, name, &m, index.clone()).await?;
    let index = Arc::try_unwrap(index)
        .map_err(|_| LoadError::refused("the index is still shared after its load"))?;
    let backlog = index.replayed_backlog();
    if backlog > 0 {
        log::info!(
            "index {name:?}: {backlog} items replayed from the log are indexed again in the background (found by exact scan meanwhile; not counted against max_unsealed_points)"
        );
    }
    if replayed.warning.is_some() {
        // New changes must never take the lsns of the log objects that could not be
        // applied: the index goes on as a new incarnation, and the old one is left as it
        // is for now.
        let mut loaded = as_new_incarnation(index, replayed.warning, Some(m.incarnation.clone()));
        loaded.segments_kept = segments_kept;
        return Ok(loaded);
    }
    let stored = Stored {
        incarnation: m.incarnation.clone(),
        manifest: Some(StoredManifest {
            covered_lsn: m.covered_lsn,
            segments: m.segments.iter().map(|s| s.id).collect(),
        }),
        segments: m.segments.iter().map(|s| (s.id, s.bytes)).collect(),
        logs: replayed.applied,
        pending: Default::default(),
    };
    Ok(Loaded {
        index,
        seq: 0,
        lsn: replayed.next - 1,
        stored,
        dirty: false,
        warning: None,
        keep_incarnation: None,
        segments_kept,
    })
}

/// Streams each segment the manifest names into its arrays, checking that it is the
/// object the manifest names (length, index, incarnation, id, points).
async fn load_segments(
    store: &impl Objects,
    name: &str,
    m: &Manifest,
    bits: Vec<Vec<u8>>,
    reuse: &Reuse,
) -> Result<Vec<LoadedSegment>, LoadError> {
    let mut segments = Vec::with_capacity(m.segments.len());
    for (entry, tombstone_bits) in m.segments.iter().zip(bits) {
        let key = segment_key(name, m, entry);
        if let Some(held) = reuse.get(&key, entry) {
            segments.push(LoadedSegment {
                id: entry.id,
                content: SegmentContent::Held(held),
                tombstone_bits,
            });
            continue;
        }
        let mut reader = SegmentObjectReader::default();
        let len = fetch_segment(store, &key, |chunk| {
            reader.feed(chunk).map_err(|e| e.to_string())
        })
        .await?;
        let (env, arrays) = reader
            .finish()
            .map_err(|e| LoadError::refused(format!("refused: {key}: {e}")))?;
        check_segment(&key, name, m, entry, &env, len)?;
        segments.push(LoadedSegment {
            id: entry.id,
            content: SegmentContent::Stored(Box::new(arrays)),
            tombstone_bits,
        });
    }
    Ok(segments)
}

fn segment_key(name: &str, m: &Manifest, entry: &ManifestSegment) -> String {
    format!("{}{}", incarnation_dir(name, &m.incarnation), entry.object)
}

/// Streams the object at `key` into `feed`; answers its length.
async fn fetch_segment(
    store: &impl Objects,
    key: &str,
    feed: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<u64, LoadError> {
    store.get_stream(key, feed).await.map_err(|e| match e {
        StoreError::KeyNotFound(_) => LoadError::refused(format!(
            "refused: the manifest names {key}, which is missing"
        )),
        StoreError::Decode { message, .. } => {
            LoadError::refused(format!("refused: {key}: {message}"))
        }
        other => LoadError::reading(key, other),
    })
}

/// Checks that the segment object read from `key` (`len` bytes, envelope `env`) is the one
/// the manifest names: length, index, incarnation, id, points.
fn check_segment(
    key: &str,
    name: &str,
    m: &Manifest,
    entry: &ManifestSegment,
    env: &SegmentEnvelope,
    len: u64,
) -> Result<(), LoadError> {
    let matches = len == entry.bytes
        && env.index == name
        && env.incarnation == m.incarnation
        && env.segment.id == entry.id
        && env.segment.points == entry.points;
    if !matches {
        return Err(LoadError::refused(format!(
            "refused: {key} ({len} bytes, segment {} of {:?}) is not what the manifest names",
            env.segment.id, env.index
        )));
    }
    Ok(())
}

/// Where a load finds one index's segments: its name, its manifest, and the segments
/// already in memory.
struct Found<'a> {
    name: &'a str,
    m: &'a Manifest,
    reuse: &'a Reuse,
}

/// `load_segments` for an `on_disk` index: each segment is taken from memory (`reuse`) or
/// mapped from its cache file in `dir`. A file that is missing, fails its checks, or was
/// written from another object (or, unless `trust_own`, from a seal of this process) is
/// written again from storaged first. Files the manifest does not name are removed.
async fn load_segments_cached(
    store: &impl Objects,
    found: &Found<'_>,
    bits: Vec<Vec<u8>>,
    dir: PathBuf,
    trust_own: bool,
) -> Result<Vec<LoadedSegment>, LoadError> {
    let (name, m) = (found.name, found.m);
    let named: HashSet<u64> = m.segments.iter().map(|s| s.id).collect();
    let removed = disk_cache::collect(&dir, &named);
    if removed > 0 {
        log::info!("index {name:?}: removed {removed} cache files its manifest does not name");
    }
    std::fs::create_dir_all(&dir).map_err(|e| {
        LoadError::refused(format!(
            "creating the cache directory {}: {e}",
            dir.display()
        ))
    })?;
    let mut segments = Vec::with_capacity(m.segments.len());
    let (mut kept, mut mapped, mut fetched) = (0, 0, 0);
    for (entry, tombstone_bits) in m.segments.iter().zip(bits) {
        let source = CacheSource {
            key: segment_key(name, m, entry),
            bytes: entry.bytes,
        };
        if let Some(held) = found.reuse.get(&source.key, entry) {
            kept += 1;
            segments.push(LoadedSegment {
                id: entry.id,
                content: SegmentContent::Held(held),
                tombstone_bits,
            });
            continue;
        }
        let path = disk_cache::segment_path(&dir, entry.id);
        let usable = match open_cache(path.clone(), entry.points, m.params.dim).await {
            Ok((arrays, from)) if from.as_ref().map_or(trust_own, |f| *f == source) => Some(arrays),
            // A file of another object under this segment's number: replaced quietly.
            Ok(_) => None,
            Err(why) => {
                if path.exists() {
                    log::warn!("index {name:?}: {why}; writing it again from storaged");
                }
                None
            }
        };
        let arrays = match usable {
            Some(arrays) => {
                mapped += 1;
                arrays
            }
            None => {
                fetch_into_cache(store, found, entry, &source, (&dir, &path)).await?;
                fetched += 1;
                let (arrays, _) = open_cache(path, entry.points, m.params.dim)
                    .await
                    .map_err(|e| LoadError::refused(format!("refused: {e}")))?;
                arrays
            }
        };
        segments.push(LoadedSegment {
            id: entry.id,
            content: SegmentContent::Stored(Box::new(arrays)),
            tombstone_bits,
        });
    }
    log::info!(
        "index {name:?}: {mapped} segments mapped from cache files, {fetched} fetched from storaged into {}, {kept} kept in memory",
        dir.display()
    );
    Ok(segments)
}

/// Streams the object `source` names into a new cache file at `path` (through a temporary
/// file in `dir`), checking on the way that it is the object `entry` names.
async fn fetch_into_cache(
    store: &impl Objects,
    found: &Found<'_>,
    entry: &ManifestSegment,
    source: &CacheSource,
    (dir, path): (&Path, &Path),
) -> Result<(), LoadError> {
    let temp = disk_cache::temp_path(dir);
    let mut to_cache = ObjectToCache::create(&temp).map_err(LoadError::refused)?;
    let fetch = fetch_segment(store, &source.key, |c| to_cache.feed(c)).await;
    let written = fetch.and_then(|len| {
        let env = to_cache
            .finish(source.clone())
            .map_err(LoadError::refused)?;
        check_segment(&source.key, found.name, found.m, entry, &env, len)?;
        std::fs::rename(&temp, path).map_err(|e| LoadError::refused(e.to_string()))
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// A segment's cache file, opened (checked, vectors mapped) off the async threads, with
/// the object it was written from; it must hold `points` points of dim `dim`.
async fn open_cache(
    path: PathBuf,
    points: usize,
    dim: usize,
) -> Result<(SegmentArrays, Option<CacheSource>), String> {
    blocking(move || {
        let opened = cache_file::open(&path)?;
        if opened.header.points != points || opened.header.dim != dim {
            return Err(format!(
                "cache file {} holds {} points of dim {}, the manifest names {points} of dim {dim}",
                path.display(),
                opened.header.points,
                opened.header.dim
            ));
        }
        Ok((opened.arrays, opened.source))
    })
    .await
}

/// What the replay of the log applied.
struct Replayed {
    applied: Vec<StoredLog>,
    /// The lsn after the last one applied.
    next: u64,
    /// Why the replay stopped early (a gap or a damaged object), if it did.
    warning: Option<String>,
}

/// Applies the log objects after the manifest's covered lsn, in order, until the first
/// gap or damaged object. A storage error stops the whole load (it may be transient).
async fn replay_log(
    store: &impl Objects,
    name: &str,
    m: &Manifest,
    index: Arc<Index>,
) -> Result<Replayed, LoadError> {
    let dir = incarnation_dir(name, &m.incarnation);
    let listing = store
        .list(&dir)
        .await
        .map_err(|e| LoadError::reading(&dir, e))?;
    let mut logs: Vec<(u64, String)> = listing
        .iter()
        .filter_map(|o| {
            let object = o.key.strip_prefix(&dir)?;
            Some((parse_log_object(object)?, o.key.clone()))
        })
        .collect();
    logs.sort();
    let mut replayed = Replayed {
        applied: Vec::new(),
        next: m.covered_lsn + 1,
        warning: None,
    };
    let dim = m.params.dim;
    for (first, key) in logs {
        let next = replayed.next;
        if first > next {
            replayed.warning = Some(format!(
                "log stops at a gap: lsn {next} is missing before {key}; the changes from there on are not loaded (objects left in place)"
            ));
            break;
        }
        let bytes = store
            .get(&key)
            .await
            .map_err(|e| LoadError::reading(&key, e))?;
        let len = bytes.len() as u64;
        let decoded =
            blocking(move || log_object::decode(&bytes, dim).map_err(|e| e.to_string())).await;
        let (env, records) = match decoded {
            Ok(d) => d,
            Err(e) => {
                replayed.warning = Some(format!(
                    "log object {key} is damaged ({e}); the changes from lsn {next} on are not loaded (objects left in place)"
                ));
                break;
            }
        };
        if env.last_lsn < next {
            continue; // covered by the manifest already: collected as an orphan
        }
        let fresh: Vec<LogRecord> = records.into_iter().filter(|r| r.lsn() >= next).collect();
        let target = index.clone();
        blocking(move || target.replay(fresh))
            .await
            .map_err(|e| LoadError::refused(format!("refused: replaying {key}: {e}")))?;
        replayed.applied.push(StoredLog {
            first_lsn: first,
            last_lsn: env.last_lsn,
            bytes: len,
        });
        replayed.next = env.last_lsn + 1;
    }
    Ok(replayed)
}

/// Runs CPU work on the blocking pool; a panic becomes an error.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    actix_rt::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("loading panicked: {e}"))?
}
