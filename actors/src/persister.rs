//! The persistence actor: debounces saves of changed indexes to storaged, performs them one
//! at a time per index, retries failures with backoff, deletes the stored copy of deleted
//! indexes, and answers `flush` once the state it asked for is stored. Also the start-up
//! load (`rehydrate`).
//!
//! Each index name has a slot. A save or delete for a name never overlaps another one for
//! the same name, and a slot remembers the index's generation, so a save that was pending or
//! in flight when its index was deleted can never bring the index back: the delete runs
//! after it and wins. The snapshot is taken by the index actor between two mutations; the
//! network write happens here, with no lock held.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::channel::oneshot;
use futures::StreamExt;

use crate::codec;
use crate::error::IndexError;
use crate::index::params::check_name;
use crate::index::Index;
use crate::index_actor::IndexActor;
use crate::messages::{Flush, FlushAll, Forget, MarkDirty, TakeSnapshot};
use crate::registry::{LoadFailure, Registry};
use crate::storeclient::{StoreClient, StoreError};

/// Where index `name` is stored.
pub fn object_key(name: &str) -> String {
    format!("{KEY_PREFIX}{name}{KEY_SUFFIX}")
}
pub const KEY_PREFIX: &str = "_vectors/";
pub const KEY_SUFFIX: &str = ".lhv1";

/// How often slots are checked for due work.
const TICK: Duration = Duration::from_millis(25);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Save and delete counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct PersistStats {
    pub saves_ok: std::sync::atomic::AtomicU64,
    pub saves_failed: std::sync::atomic::AtomicU64,
    pub bytes_saved: std::sync::atomic::AtomicU64,
    pub deletes_ok: std::sync::atomic::AtomicU64,
    pub deletes_failed: std::sync::atomic::AtomicU64,
}

pub struct Persister {
    store: StoreClient,
    quiet: Duration,
    max_delay: Duration,
    slots: HashMap<String, Slot>,
    stats: Arc<PersistStats>,
}

/// The persistence state of one index name.
struct Slot {
    generation: u64,
    /// The actor to snapshot; none once the index is deleted.
    actor: Option<Addr<IndexActor>>,
    /// Latest mutation count reported, and latest one stored, for `generation`.
    dirty_seq: u64,
    saved_seq: u64,
    /// When the oldest unsaved change and the latest change arrived.
    first_dirty: Option<Instant>,
    last_dirty: Instant,
    /// A save or delete is in flight.
    busy: bool,
    /// The stored object must be removed (its index was deleted) before anything else.
    delete_pending: bool,
    retry_at: Option<Instant>,
    backoff: Duration,
    /// `flush` callers, each with the mutation count it waits for.
    flush_waiters: Vec<(u64, oneshot::Sender<Result<bool, IndexError>>)>,
    forget_waiters: Vec<oneshot::Sender<Result<(), IndexError>>>,
    /// Last outcome, for the index info.
    pub last_error: Option<String>,
}

impl Slot {
    fn new(generation: u64, now: Instant) -> Slot {
        Slot {
            generation,
            actor: None,
            dirty_seq: 0,
            saved_seq: 0,
            first_dirty: None,
            last_dirty: now,
            busy: false,
            delete_pending: false,
            retry_at: None,
            backoff: FIRST_BACKOFF,
            flush_waiters: Vec::new(),
            forget_waiters: Vec::new(),
            last_error: None,
        }
    }

    fn dirty(&self) -> bool {
        self.actor.is_some() && self.dirty_seq > self.saved_seq
    }

    fn failed(&mut self, now: Instant) {
        self.retry_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    fn succeeded(&mut self) {
        self.retry_at = None;
        self.backoff = FIRST_BACKOFF;
        self.last_error = None;
    }
}

/// The work a tick decided to start for one slot.
enum Op {
    Save { actor: Addr<IndexActor> },
    Delete,
}

impl Persister {
    pub fn new(store: StoreClient, quiet: Duration, max_delay: Duration) -> Persister {
        Persister {
            store,
            quiet,
            max_delay,
            slots: HashMap::new(),
            stats: Arc::new(PersistStats::default()),
        }
    }

    pub fn stats(&self) -> Arc<PersistStats> {
        self.stats.clone()
    }

    /// Starts every save or delete that is due.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let mut due = Vec::new();
        for (name, slot) in &mut self.slots {
            if slot.busy {
                continue;
            }
            let waiting = !slot.flush_waiters.is_empty() || !slot.forget_waiters.is_empty();
            if !waiting && slot.retry_at.is_some_and(|t| now < t) {
                continue;
            }
            if slot.delete_pending {
                due.push((name.clone(), slot.generation, Op::Delete));
            } else if slot.dirty() {
                let quiet = now.duration_since(slot.last_dirty) >= self.quiet;
                let capped = slot
                    .first_dirty
                    .is_some_and(|t| now.duration_since(t) >= self.max_delay);
                if quiet || capped || waiting {
                    if let Some(actor) = slot.actor.clone() {
                        due.push((name.clone(), slot.generation, Op::Save { actor }));
                    }
                }
            }
        }
        for (name, generation, op) in due {
            if let Some(slot) = self.slots.get_mut(&name) {
                slot.busy = true;
            }
            match op {
                Op::Save { actor } => self.start_save(ctx, name, generation, actor),
                Op::Delete => self.start_delete(ctx, name, generation),
            }
        }
        // Forget slots with nothing left to do and no index behind them.
        self.slots.retain(|_, s| {
            s.actor.is_some() || s.busy || s.delete_pending || !s.flush_waiters.is_empty()
        });
    }

    fn start_save(
        &mut self,
        ctx: &mut Context<Self>,
        name: String,
        generation: u64,
        actor: Addr<IndexActor>,
    ) {
        let store = self.store.clone();
        let key = object_key(&name);
        let started = Instant::now();
        let work = async move {
            let snapshot = match actor.send(TakeSnapshot).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(SaveError::Snapshot(e.to_string())),
                // The actor stopped: the index was deleted; the Forget will follow.
                Err(_) => return Err(SaveError::Gone),
            };
            let len = snapshot.bytes.len();
            store
                .put(&key, snapshot.bytes)
                .await
                .map_err(SaveError::Store)?;
            Ok((snapshot.seq, len))
        };
        ctx.spawn(work.into_actor(self).map(move |res, act, _| {
            let Some(slot) = act.slots.get_mut(&name) else {
                return;
            };
            slot.busy = false;
            let now = Instant::now();
            let same_index = slot.generation == generation;
            match res {
                Ok((seq, len)) => {
                    act.stats
                        .saves_ok
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    act.stats
                        .bytes_saved
                        .fetch_add(len as u64, std::sync::atomic::Ordering::Relaxed);
                    log::debug!(
                        "index {name:?}: saved {len} bytes to {} in {} ms",
                        object_key(&name),
                        started.elapsed().as_millis()
                    );
                    if !same_index {
                        return;
                    }
                    slot.succeeded();
                    slot.saved_seq = slot.saved_seq.max(seq);
                    if slot.saved_seq >= slot.dirty_seq {
                        slot.first_dirty = None;
                    }
                    let saved = slot.saved_seq;
                    let (done, waiting): (Vec<_>, Vec<_>) = slot
                        .flush_waiters
                        .drain(..)
                        .partition(|(target, _)| *target <= saved);
                    slot.flush_waiters = waiting;
                    for (_, tx) in done {
                        let _ = tx.send(Ok(true));
                    }
                }
                Err(SaveError::Gone) => {}
                Err(e) => {
                    act.stats
                        .saves_failed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    log::warn!(
                        "index {name:?}: saving {} failed, will retry in {} ms: {e}",
                        object_key(&name),
                        slot.backoff.as_millis()
                    );
                    slot.last_error = Some(e.to_string());
                    slot.failed(now);
                    for (_, tx) in slot.flush_waiters.drain(..) {
                        let _ = tx.send(Err(IndexError::StorageUnavailable(format!(
                            "saving index {name:?} failed: {e}"
                        ))));
                    }
                }
            }
        }));
    }

    fn start_delete(&mut self, ctx: &mut Context<Self>, name: String, generation: u64) {
        let store = self.store.clone();
        let key = object_key(&name);
        let work = async move { store.delete(&key).await };
        ctx.spawn(work.into_actor(self).map(move |res, act, _| {
            let Some(slot) = act.slots.get_mut(&name) else { return };
            slot.busy = false;
            match res {
                Ok(()) => {
                    act.stats.deletes_ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    log::info!("index {name:?}: removed {} from storage", object_key(&name));
                    slot.succeeded();
                    slot.delete_pending = false;
                    for tx in slot.forget_waiters.drain(..) {
                        let _ = tx.send(Ok(()));
                    }
                }
                Err(e) => {
                    act.stats.deletes_failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    log::warn!(
                        "index {name:?} (generation {generation}): removing {} failed, will retry: {e}",
                        object_key(&name)
                    );
                    slot.last_error = Some(e.to_string());
                    slot.failed(Instant::now());
                    for tx in slot.forget_waiters.drain(..) {
                        let _ = tx.send(Err(IndexError::StorageUnavailable(format!(
                            "removing index {name:?} from storage failed: {e}"
                        ))));
                    }
                }
            }
        }));
    }
}

#[derive(Debug, thiserror::Error)]
enum SaveError {
    #[error("index is gone")]
    Gone,
    #[error("snapshot failed: {0}")]
    Snapshot(String),
    #[error("{0}")]
    Store(StoreError),
}

impl Actor for Persister {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
    }
}

impl Handler<MarkDirty> for Persister {
    type Result = ();

    fn handle(&mut self, msg: MarkDirty, _: &mut Context<Self>) {
        let now = Instant::now();
        let slot = self
            .slots
            .entry(msg.name.clone())
            .or_insert_with(|| Slot::new(msg.generation, now));
        if msg.generation < slot.generation {
            return; // a late word from a deleted index
        }
        if msg.generation > slot.generation || slot.actor.is_none() {
            // A new index under this name. A delete still pending for the old one runs
            // first (tick order), so the old state cannot outlive a failed first save.
            slot.generation = msg.generation;
            slot.saved_seq = 0;
            slot.dirty_seq = 0;
            slot.first_dirty = None;
        }
        slot.actor = Some(msg.actor);
        slot.dirty_seq = slot.dirty_seq.max(msg.seq);
        slot.first_dirty.get_or_insert(now);
        slot.last_dirty = now;
    }
}

impl Handler<Flush> for Persister {
    type Result = ResponseFuture<Result<bool, IndexError>>;

    fn handle(&mut self, msg: Flush, _: &mut Context<Self>) -> Self::Result {
        let Some(slot) = self.slots.get_mut(&msg.name) else {
            return Box::pin(async { Ok(true) });
        };
        if !slot.dirty() {
            return Box::pin(async { Ok(true) });
        }
        let (tx, rx) = oneshot::channel();
        let target = slot.dirty_seq;
        slot.flush_waiters.push((target, tx));
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(IndexError::Internal("the persister dropped a flush".into()))
            })
        })
    }
}

impl Handler<Forget> for Persister {
    type Result = ResponseFuture<Result<(), IndexError>>;

    fn handle(&mut self, msg: Forget, _: &mut Context<Self>) -> Self::Result {
        let slot = self
            .slots
            .entry(msg.name.clone())
            .or_insert_with(|| Slot::new(msg.generation, Instant::now()));
        if msg.generation < slot.generation && slot.saved_seq > 0 {
            // A newer index of this name has already overwritten the object.
            return Box::pin(async { Ok(()) });
        }
        if msg.generation >= slot.generation {
            slot.generation = msg.generation;
            slot.actor = None;
            slot.first_dirty = None;
            for (_, tx) in slot.flush_waiters.drain(..) {
                let _ = tx.send(Ok(false));
            }
        }
        slot.delete_pending = true;
        let (tx, rx) = oneshot::channel();
        slot.forget_waiters.push(tx);
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(IndexError::Internal(
                    "the persister dropped a delete".into(),
                ))
            })
        })
    }
}

impl Handler<FlushAll> for Persister {
    type Result = ResponseFuture<Result<(), IndexError>>;

    fn handle(&mut self, _: FlushAll, _: &mut Context<Self>) -> Self::Result {
        let mut flushes = Vec::new();
        let mut deletes = Vec::new();
        for slot in self.slots.values_mut() {
            if slot.dirty() {
                let (tx, rx) = oneshot::channel();
                slot.flush_waiters.push((slot.dirty_seq, tx));
                flushes.push(rx);
            }
            if slot.delete_pending {
                let (tx, rx) = oneshot::channel();
                slot.forget_waiters.push(tx);
                deletes.push(rx);
            }
        }
        Box::pin(async move {
            let mut first_error = None;
            for rx in flushes {
                if let Ok(Err(e)) = rx.await {
                    first_error.get_or_insert(e);
                }
            }
            for rx in deletes {
                if let Ok(Err(e)) = rx.await {
                    first_error.get_or_insert(e);
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }
}

/// Saves the last-seen error of a name, for the index info.
#[derive(Message)]
#[rtype(result = "Option<String>")]
pub struct LastError {
    pub name: String,
}

impl Handler<LastError> for Persister {
    type Result = Option<String>;

    fn handle(&mut self, msg: LastError, _: &mut Context<Self>) -> Option<String> {
        self.slots.get(&msg.name).and_then(|s| s.last_error.clone())
    }
}

/// What the start-up load found.
#[derive(Debug, Default)]
pub struct RehydrateReport {
    pub loaded: usize,
    pub failed: usize,
}

/// Loads every `_vectors/*.lhv1` into the registry, `parallel` at a time, each within
/// `timeout`. A file that fails is logged, recorded in the registry for `/health`, and
/// left in place; the others load.
pub async fn rehydrate(
    store: &StoreClient,
    registry: &Registry,
    timeout: Duration,
    parallel: usize,
) -> Result<RehydrateReport, StoreError> {
    let objects = store.list(KEY_PREFIX).await?;
    let keys: Vec<String> = objects
        .into_iter()
        .map(|o| o.key)
        .filter(|k| k.ends_with(KEY_SUFFIX))
        .collect();
    let total = keys.len();
    log::info!("loading {total} persisted indexes from storaged");
    let mut report = RehydrateReport::default();
    let mut done = 0;
    let mut loads = futures::stream::iter(keys.into_iter().map(|key| {
        let store = store.clone();
        async move {
            let started = Instant::now();
            let result = match tokio::time::timeout(timeout, load_one(&store, &key)).await {
                Ok(r) => r,
                Err(_) => Err(format!("timed out after {} s", timeout.as_secs())),
            };
            (key, result, started.elapsed())
        }
    }))
    .buffer_unordered(parallel.max(1));
    while let Some((key, result, took)) = loads.next().await {
        done += 1;
        let name = key
            .strip_prefix(KEY_PREFIX)
            .and_then(|k| k.strip_suffix(KEY_SUFFIX))
            .unwrap_or(&key)
            .to_string();
        let result =
            result.and_then(|index| registry.insert_loaded(index).map_err(|e| e.to_string()));
        match result {
            Ok(handle) => {
                report.loaded += 1;
                log::info!(
                    "loaded index {done}/{total}: {name:?}, {} items, {} ms",
                    handle.index.stats().count,
                    took.as_millis()
                );
            }
            Err(error) => {
                report.failed += 1;
                log::error!("index {done}/{total}: {key} not loaded, file left in place: {error}");
                registry.record_failure(LoadFailure { name, key, error });
            }
        }
    }
    Ok(report)
}

/// Fetches, checks and restores one index.
async fn load_one(store: &StoreClient, key: &str) -> Result<Index, String> {
    let name = key
        .strip_prefix(KEY_PREFIX)
        .and_then(|k| k.strip_suffix(KEY_SUFFIX))
        .ok_or_else(|| format!("{key} is not an index file"))?
        .to_string();
    check_name(&name).map_err(|e| e.to_string())?;
    let bytes = store.get(key).await.map_err(|e| format!("reading: {e}"))?;
    let restored = actix_rt::task::spawn_blocking(move || -> Result<Index, String> {
        let (envelope, dump) = codec::decode(&bytes).map_err(|e| format!("refused: {e}"))?;
        if envelope.params.name != name {
            return Err(format!(
                "file holds index {:?}, not {name:?}",
                envelope.params.name
            ));
        }
        Index::restore(envelope, dump).map_err(|e| format!("refused: {e}"))
    })
    .await
    .map_err(|e| format!("loading panicked: {e}"))?;
    restored
}
