//! The start-up load: every manifest `_vectors/<name>.lhv1` in storaged becomes an index in
//! the registry, loaded in parallel, each within a timeout.
//!
//! An index loads from its manifest: its sealed segments are streamed straight into their
//! arrays (nothing is rebuilt), then the log objects after the manifest's covered lsn are
//! applied in order, stopping at the first gap or damaged object (reported in `/health`;
//! what follows it cannot be applied safely and is left in place). Files of the older
//! one-object layouts (0.1.0's, with an `hnsw_rs` dump) load too, and are rewritten in the
//! current layout by the first save.
//!
//! A file that fails its checks is refused, logged, left in place and reported in
//! `/health`; its name stays reserved (the registry refuses to create an index over it)
//! until an operator deletes or repairs it. A load that failed for a transient reason
//! (storaged unreachable, slow or failing) is retried in the background with backoff.
//!
//! Once everything is loaded, objects that no manifest needs are deleted: segment objects a
//! crash left before their manifest was written, log objects a manifest covers, the objects
//! of earlier incarnations and of deleted indexes.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::layout::{
    incarnation_dir, name_of_manifest, new_incarnation, split_index_object, KEY_PREFIX,
};
use super::save::{Stored, StoredLog, StoredManifest};
use crate::codec::log::{self as log_object, LogRecord};
use crate::codec::manifest::{self, parse_log_object, KIND_MANIFEST};
use crate::codec::segment::SegmentObjectReader;
use crate::codec::{self};
use crate::index::params::check_name;
use crate::index::storage::LoadedSegment;
use crate::index::{EngineConfig, Index};
use crate::index_actor::ActorStart;
use crate::registry::{LoadFailure, Registry};
use crate::storeclient::{ObjectInfo, StoreClient, StoreError};

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// What the start-up load found.
#[derive(Debug, Default)]
pub struct RehydrateReport {
    pub loaded: usize,
    pub failed: usize,
    /// Failed for a transient reason; `retry_failed_loads` keeps trying them.
    pub retrying: usize,
    /// Objects no manifest needed, deleted after the load.
    pub orphans_removed: usize,
}

/// An index as loaded.
pub struct Loaded {
    pub index: Index,
    pub start: ActorStart,
    pub stored: Stored,
    /// Read from an old layout: to be saved in the current one at once.
    pub dirty: bool,
    /// Why the log replay stopped early, if it did.
    pub warning: Option<String>,
    /// An earlier incarnation whose objects stay untouched by this start's cleanup (the
    /// one whose log was cut short: its objects are left for an operator to look at).
    pub keep_incarnation: Option<String>,
}

/// What the cleanup after the load must keep of one index.
struct Keep {
    incarnation: String,
    objects: HashSet<String>,
    also: Option<String>,
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

/// Loads every index into the registry, `parallel` at a time, each within `timeout`, then
/// deletes orphaned objects. Errors only when storaged cannot list its objects.
pub async fn rehydrate(
    store: &StoreClient,
    registry: &Registry,
    timeout: Duration,
    parallel: usize,
) -> Result<RehydrateReport, StoreError> {
    let objects = store.list(KEY_PREFIX).await?;
    let names: Vec<String> = objects
        .iter()
        .filter_map(|o| name_of_manifest(&o.key).map(str::to_string))
        .collect();
    let total = names.len();
    log::info!("loading {total} persisted indexes from storaged");
    let mut report = RehydrateReport::default();
    let engine = registry.engine();
    let mut loads = futures::stream::iter(names.into_iter().map(|name| {
        let store = store.clone();
        async move {
            let started = Instant::now();
            let result = load_within(&store, &name, timeout, engine).await;
            (name, result, started.elapsed())
        }
    }))
    .buffer_unordered(parallel.max(1));
    let mut done = 0;
    let mut needed: HashMap<String, Keep> = HashMap::new();
    while let Some((name, result, took)) = loads.next().await {
        done += 1;
        let keep = result.as_ref().ok().map(|l| Keep {
            incarnation: l.stored.incarnation.clone(),
            objects: needed_objects(&l.stored),
            also: l.keep_incarnation.clone(),
        });
        match install(registry, &name, result, false) {
            Ok(count) => {
                report.loaded += 1;
                log::info!(
                    "loaded index {done}/{total}: {name:?}, {count} items, {} ms",
                    took.as_millis()
                );
                if let Some(keep) = keep {
                    needed.insert(name, keep);
                }
            }
            Err(failure) => {
                report.failed += 1;
                if failure.retrying {
                    report.retrying += 1;
                }
                log::error!(
                    "index {done}/{total}: {} not loaded, file left in place{}: {}",
                    failure.key,
                    if failure.retrying { ", will retry" } else { "" },
                    failure.error
                );
                registry.record_failure(failure);
            }
        }
    }
    report.orphans_removed = collect_orphans(store, registry, &objects, &needed).await;
    Ok(report)
}

/// The object names (inside the incarnation directory) a loaded index still needs.
fn needed_objects(stored: &Stored) -> HashSet<String> {
    stored
        .segments
        .keys()
        .map(|&id| manifest::segment_object(id))
        .chain(
            stored
                .logs
                .iter()
                .map(|l| manifest::log_object(l.first_lsn)),
        )
        .collect()
}

/// Deletes the objects under `_vectors/<name>/` that nothing needs (see the module
/// comment); objects of a name whose manifest failed to load are left alone.
async fn collect_orphans(
    store: &StoreClient,
    registry: &Registry,
    objects: &[ObjectInfo],
    needed: &HashMap<String, Keep>,
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
        if registry.has_failure(name) {
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

/// Retries, with backoff, every load that failed for a transient reason, until each one
/// loads or fails for good (or is deleted by an operator). Runs until none is left.
pub async fn retry_failed_loads(store: StoreClient, registry: &Registry, timeout: Duration) {
    let mut wait = FIRST_RETRY;
    loop {
        let pending: Vec<LoadFailure> = registry
            .failures()
            .into_iter()
            .filter(|f| f.retrying)
            .collect();
        if pending.is_empty() {
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_RETRY);
        for failure in pending {
            // Deleted by an operator meanwhile?
            if !registry.has_failure(&failure.name) {
                continue;
            }
            let result = load_within(&store, &failure.name, timeout, registry.engine()).await;
            match install(registry, &failure.name, result, true) {
                Ok(count) => log::info!("index {:?} loaded on retry, {count} items", failure.name),
                Err(again) => {
                    if registry.has_failure(&failure.name) {
                        if !again.retrying {
                            log::error!(
                                "{} not loaded, file left in place: {}",
                                again.key,
                                again.error
                            );
                        }
                        registry.record_failure(again);
                    }
                }
            }
        }
    }
}

/// Puts a loaded index into the registry, or describes why it is not there.
fn install(
    registry: &Registry,
    name: &str,
    result: Result<Loaded, LoadError>,
    retry: bool,
) -> Result<usize, LoadFailure> {
    let failure = |message: String, retrying: bool| LoadFailure {
        name: name.to_string(),
        key: super::layout::manifest_key(name),
        error: message,
        retrying,
    };
    let loaded = result.map_err(|e| failure(e.message, e.transient))?;
    if let Some(w) = &loaded.warning {
        log::error!("index {name:?}: {w}");
    }
    let handle = if retry {
        registry.insert_retried(loaded)
    } else {
        registry.insert_loaded(loaded)
    }
    .map_err(|e| failure(e.to_string(), false))?;
    Ok(handle.index.stats().count)
}

async fn load_within(
    store: &StoreClient,
    name: &str,
    timeout: Duration,
    engine: EngineConfig,
) -> Result<Loaded, LoadError> {
    match tokio::time::timeout(timeout, load_one(store, name, engine)).await {
        Ok(result) => result,
        Err(_) => Err(LoadError {
            message: format!("timed out after {} s", timeout.as_secs()),
            transient: true,
        }),
    }
}

/// Fetches, checks and restores one index.
async fn load_one(
    store: &StoreClient,
    name: &str,
    engine: EngineConfig,
) -> Result<Loaded, LoadError> {
    check_name(name).map_err(|e| LoadError::refused(e.to_string()))?;
    let key = super::layout::manifest_key(name);
    let bytes = store
        .get(&key)
        .await
        .map_err(|e| LoadError::reading(&key, e))?;
    let kind = codec::unframe(&bytes)
        .and_then(|(env, _)| codec::head(env))
        .map(|h| h.kind)
        .map_err(|e| LoadError::refused(format!("refused: {e}")))?;
    if kind.as_deref() == Some(KIND_MANIFEST) {
        return load_manifest(store, name, &bytes, engine).await;
    }
    // An index in one object (0.1.0's layout, or the whole-index object of the engine's
    // first segmented version): its unsealed points go to a first log record, and the
    // first save writes the current layout over it.
    let owned_name = name.to_string();
    let index = blocking(move || {
        let index = Index::decode(&bytes, engine)?;
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
    let mut stored = Stored::new(new_incarnation());
    stored.pending = index.unsealed_as_log();
    let start = ActorStart {
        seq: 1,
        lsn: stored.pending.last_lsn,
        pending: Default::default(),
    };
    log::info!("index {name:?}: read from an older layout; the next save rewrites it");
    Ok(Loaded {
        index,
        start,
        stored,
        dirty: true,
        warning: None,
        keep_incarnation: None,
    })
}

async fn load_manifest(
    store: &StoreClient,
    name: &str,
    bytes: &[u8],
    engine: EngineConfig,
) -> Result<Loaded, LoadError> {
    let (m, bits) =
        manifest::decode(bytes).map_err(|e| LoadError::refused(format!("refused: {e}")))?;
    if m.params.name != name {
        return Err(LoadError::refused(format!(
            "refused: manifest holds index {:?}, not {name:?}",
            m.params.name
        )));
    }
    let dir = incarnation_dir(name, &m.incarnation);
    let mut segments = Vec::with_capacity(m.segments.len());
    for (entry, tombstone_bits) in m.segments.iter().zip(bits) {
        let key = format!("{dir}{}", entry.object);
        let mut reader = SegmentObjectReader::default();
        let len = store
            .get_stream(&key, |chunk| reader.feed(chunk).map_err(|e| e.to_string()))
            .await
            .map_err(|e| match e {
                StoreError::KeyNotFound(_) => LoadError::refused(format!(
                    "refused: the manifest names {key}, which is missing"
                )),
                StoreError::Decode { message, .. } => {
                    LoadError::refused(format!("refused: {key}: {message}"))
                }
                other => LoadError::reading(&key, other),
            })?;
        let (env, arrays) = reader
            .finish()
            .map_err(|e| LoadError::refused(format!("refused: {key}: {e}")))?;
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
        segments.push(LoadedSegment {
            id: entry.id,
            arrays,
            tombstone_bits,
        });
    }
    let params = m.params.clone();
    let index = blocking(move || Index::from_storage(params, engine, segments))
        .await
        .map_err(|e| LoadError::refused(format!("refused: {e}")))?;

    // The log after the manifest.
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
    let mut next = m.covered_lsn + 1;
    let mut applied = Vec::new();
    let mut warning = None;
    let dim = m.params.dim;
    let index = std::sync::Arc::new(index);
    for (first, key) in logs {
        if first > next {
            warning = Some(format!(
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
                warning = Some(format!(
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
        applied.push(StoredLog {
            first_lsn: first,
            last_lsn: env.last_lsn,
            bytes: len,
        });
        next = env.last_lsn + 1;
    }
    let index = std::sync::Arc::try_unwrap(index)
        .map_err(|_| LoadError::refused("the index is still shared after its load"))?;
    let backlog = index.replayed_backlog();
    if backlog > 0 {
        log::info!(
            "index {:?}: {backlog} items replayed from the log are indexed again in the background (found by exact scan meanwhile; not counted against max_unsealed_points)",
            m.params.name
        );
    }
    if warning.is_some() {
        // New changes must never take the lsns of the log objects that could not be
        // applied: the index goes on as a new incarnation, written whole by its first
        // save (its unsealed points as a first log record), and the old one is left
        // as it is for now.
        let mut stored = Stored::new(new_incarnation());
        stored.pending = index.unsealed_as_log();
        let lsn = stored.pending.last_lsn;
        return Ok(Loaded {
            index,
            start: ActorStart {
                seq: 1,
                lsn,
                pending: Default::default(),
            },
            stored,
            dirty: true,
            warning,
            keep_incarnation: Some(m.incarnation.clone()),
        });
    }
    let stored = Stored {
        incarnation: m.incarnation.clone(),
        manifest: Some(StoredManifest {
            covered_lsn: m.covered_lsn,
            segments: m.segments.iter().map(|s| s.id).collect(),
        }),
        segments: m.segments.iter().map(|s| (s.id, s.bytes)).collect(),
        logs: applied,
        pending: Default::default(),
    };
    Ok(Loaded {
        index,
        start: ActorStart {
            seq: 0,
            lsn: next - 1,
            pending: Default::default(),
        },
        stored,
        dirty: false,
        warning,
        keep_incarnation: None,
    })
}

/// Runs CPU work on the blocking pool; a panic becomes an error.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    actix_rt::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("loading panicked: {e}"))?
}
