//! A read replica's follower: it serves every index a primary stores, read-only, and keeps
//! each one up to date by polling the store (`vectord.role = "replica"`).
//!
//! Every poll (`vectord.replica_poll_ms`, 1 s by default) costs one listing of `_vectors/`
//! and one GET per index manifest (a few kilobytes each); when nothing changed, that is
//! all. Then, per index:
//! - a manifest the replica has not seen (a new index, a new incarnation after a delete and
//!   re-create, or new segments because the primary wrote a manifest): the index is loaded
//!   whole, as a start-up does (segments read, not rebuilt; its log replayed), and swapped
//!   in at once — searches see the old state or the new one, never a mix. Segments the
//!   served index already holds (same object) are shared, not read again;
//! - otherwise, log objects after the last one applied are read in lsn order and applied
//!   through the index's actor, each as a whole. A gap (an object listed after one that
//!   is not there yet) is waited for, never skipped; a log object that cannot be read or
//!   decoded is tried again at the next poll;
//! - an index whose manifest is gone was deleted by the primary: it is no longer served.
//!
//! The replica never writes to the store: no saves, no collection of orphaned objects.
//! How far behind it may be is `lag_ms` (see `FollowStatus`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::codec::log as log_object;
use crate::codec::manifest::{self, parse_log_object};
use crate::index_actor::ApplyLog;
use crate::metrics::metrics;
use crate::persist::layout::{incarnation_dir, manifest_key};
use crate::persist::loader;
use crate::registry::Registry;
use crate::storaged_client::{ObjectInfo, StoragedClient};

/// What `/health`, the index info and `/metrics` show of one followed index.
#[derive(Debug, Clone, Copy, Default)]
pub struct Followed {
    /// The last log sequence number of the primary's that the replica applied.
    pub applied_lsn: u64,
    /// When a poll last started after which the replica had applied everything stored:
    /// the replica's view is at most this old.
    pub current_at: Option<Instant>,
}

impl Followed {
    /// How old the replica's view of the index may be, in milliseconds.
    pub fn lag_ms(&self) -> u64 {
        self.current_at
            .map_or(u64::MAX, |t| t.elapsed().as_millis() as u64)
    }
}

/// The follower's view, shared with the HTTP front.
#[derive(Default)]
pub struct FollowStatus {
    indexes: Mutex<BTreeMap<String, Followed>>,
    /// Whether a first poll has completed (the replica is ready).
    polled: std::sync::atomic::AtomicBool,
}

impl FollowStatus {
    pub fn get(&self, name: &str) -> Option<Followed> {
        self.lock().get(name).copied()
    }

    pub fn all(&self) -> BTreeMap<String, Followed> {
        self.lock().clone()
    }

    pub fn is_ready(&self) -> bool {
        self.polled.load(std::sync::atomic::Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Followed>> {
        self.indexes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the follower knows of one index it serves.
struct Tracked {
    /// The manifest's bytes the served index was loaded from.
    manifest: bytes::Bytes,
    incarnation: String,
    /// The first lsn not applied yet.
    next_lsn: u64,
    /// The segments the served index was loaded with: a reload for a new manifest of the
    /// same incarnation takes those still in memory instead of reading them again.
    reuse: loader::Reuse,
}

/// Follows the store until the process stops (spawned on the HTTP runtime).
pub async fn follow(
    store: StoragedClient,
    registry: Arc<Registry>,
    every: Duration,
    timeout: Duration,
    status: Arc<FollowStatus>,
) {
    let mut tracked: HashMap<String, Tracked> = HashMap::new();
    loop {
        let started = Instant::now();
        match poll(&store, &registry, &mut tracked, timeout, &status, started).await {
            Ok(()) => {
                if !status
                    .polled
                    .swap(true, std::sync::atomic::Ordering::AcqRel)
                {
                    log::info!(
                        "replica: following {} indexes, polling every {} ms",
                        tracked.len(),
                        every.as_millis()
                    );
                }
            }
            Err(e) => log::warn!("replica: polling storaged failed, will retry: {e}"),
        }
        tokio::time::sleep(every.saturating_sub(started.elapsed())).await;
    }
}

/// One poll over every stored index.
async fn poll(
    store: &StoragedClient,
    registry: &Registry,
    tracked: &mut HashMap<String, Tracked>,
    timeout: Duration,
    status: &FollowStatus,
    started: Instant,
) -> Result<(), String> {
    let objects = loader::list_objects(store)
        .await
        .map_err(|e| format!("listing: {e}"))?;
    let names: HashSet<String> = loader::stored_names(&objects).into_iter().collect();
    for gone in tracked
        .keys()
        .filter(|n| !names.contains(*n))
        .cloned()
        .collect::<Vec<_>>()
    {
        tracked.remove(&gone);
        status.lock().remove(&gone);
        registry.drop_followed(&gone);
    }
    for name in names {
        let current = match follow_one(store, registry, &objects, &name, tracked, timeout).await {
            Ok(current) => current,
            Err(e) => {
                log::warn!("replica: index {name:?}: {e}");
                false
            }
        };
        let Some(t) = tracked.get(&name) else {
            continue;
        };
        let mut all = status.lock();
        let entry = all.entry(name).or_default();
        entry.applied_lsn = t.next_lsn.saturating_sub(1);
        if current {
            entry.current_at = Some(started);
        }
    }
    Ok(())
}

/// Brings one index up to what is stored; true when it is current (nothing stored that it
/// has not applied).
async fn follow_one(
    store: &StoragedClient,
    registry: &Registry,
    objects: &[ObjectInfo],
    name: &str,
    tracked: &mut HashMap<String, Tracked>,
    timeout: Duration,
) -> Result<bool, String> {
    let key = manifest_key(name);
    let bytes = store
        .get(&key)
        .await
        .map_err(|e| format!("reading {key}: {e}"))?;
    let known = tracked.get(name).is_some_and(|t| t.manifest == bytes);
    if !known {
        let (m, _) = manifest::decode(&bytes).map_err(|e| {
            format!(
                "{key} is not a manifest ({e}); a primary rewrites older layouts at its first save"
            )
        })?;
        let empty = loader::Reuse::default();
        let reuse = tracked.get(name).map_or(&empty, |t| &t.reuse);
        let started = Instant::now();
        let loaded = loader::load_reusing(store, name, timeout, registry.engine(), reuse)
            .await
            .map_err(|f| f.error)?;
        if let Some(w) = &loaded.warning {
            // Most likely a log object listed but not readable yet: try again.
            return Err(format!("not loaded yet, will retry: {w}"));
        }
        let next_lsn = loaded.lsn + 1;
        let count = loaded.index.stats().count;
        let fresh = !tracked.contains_key(name);
        let reuse = loader::Reuse::of(name, &loaded);
        let (kept, segments) = (loaded.segments_kept, loaded.stored.segments.len());
        registry.swap_in_followed(loaded);
        let took = started.elapsed();
        let counters = metrics();
        counters.replica_load_seconds.observe(took.as_secs_f64());
        counters
            .replica_segments_loaded
            .with_label_values(&["memory"])
            .inc_by(kept as u64);
        counters
            .replica_segments_loaded
            .with_label_values(&["store"])
            .inc_by(segments.saturating_sub(kept) as u64);
        log::info!(
            "replica: index {name:?} {} from its manifest in {} ms: {count} items, {kept} of {segments} segments kept in memory, applied up to lsn {}",
            if fresh { "loaded" } else { "reloaded" },
            took.as_millis(),
            next_lsn - 1
        );
        tracked.insert(
            name.to_string(),
            Tracked {
                manifest: bytes,
                incarnation: m.incarnation,
                next_lsn,
                reuse,
            },
        );
        return Ok(true);
    }
    apply_new_logs(store, registry, objects, name, tracked).await
}

/// Applies the log objects of the tracked incarnation after the last one applied, in
/// order; true when none is left (no gap waiting for an object).
async fn apply_new_logs(
    store: &StoragedClient,
    registry: &Registry,
    objects: &[ObjectInfo],
    name: &str,
    tracked: &mut HashMap<String, Tracked>,
) -> Result<bool, String> {
    let Some(t) = tracked.get_mut(name) else {
        return Ok(false);
    };
    let dir = incarnation_dir(name, &t.incarnation);
    let mut logs: Vec<(u64, &str)> = objects
        .iter()
        .filter_map(|o| Some((parse_log_object(o.key.strip_prefix(&dir)?)?, o.key.as_str())))
        .filter(|&(first, _)| first >= t.next_lsn)
        .collect();
    logs.sort_unstable();
    let Some(handle) = registry.get(name) else {
        return Ok(false);
    };
    let dim = handle.index.params().dim;
    for (first, key) in logs {
        if first > t.next_lsn {
            return Ok(false); // lsn t.next_lsn is not stored yet: wait for it
        }
        let bytes = store
            .get(key)
            .await
            .map_err(|e| format!("reading {key}: {e}"))?;
        let (env, records) =
            log_object::decode(&bytes, dim).map_err(|e| format!("decoding {key}: {e}"))?;
        let records: Vec<_> = records
            .into_iter()
            .filter(|r| r.lsn() >= t.next_lsn)
            .collect();
        handle
            .actor
            .send(ApplyLog { records })
            .await
            .map_err(|e| format!("applying {key}: {e}"))?
            .map_err(|e| format!("applying {key}: {e}"))?;
        t.next_lsn = env.last_lsn + 1;
    }
    Ok(true)
}
