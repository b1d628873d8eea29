//! The persistence actor: debounces saves of changed indexes to storaged, performs them one
//! at a time per index, retries failures with backoff, deletes the stored copy of deleted
//! indexes, and answers `flush` once the state it asked for is stored.
//!
//! Each index has a slot. A save or delete for a name never overlaps another one for the
//! same name, and a deleted index's slot cancels its pending saves, waits for a save in
//! flight, then removes the stored copy, so a deleted index can never come back. What a
//! save writes and in which order is in `save`; the changes are taken by the index actor
//! between two mutations, and the network writes happen here, with no lock held.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::channel::oneshot;

use super::layout::{manifest_key, new_incarnation};
use super::save::{self, Changes, SaveError, Saved, Stored};
use super::status::PersistStatus;
use crate::error::IndexError;
use crate::metrics::metrics;
use crate::storaged_client::StoragedClient;

// The persister's protocol: what it is told and asked (by index actors, the registry, the
// HTTP front and the shutdown), then what it asks of an index actor.

/// Index `name` (of this `generation`) changed; `seq` counts its mutations so far.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct MarkDirty {
    pub name: String,
    pub generation: u64,
    pub seq: u64,
    pub index: IndexPeer,
}

/// Answer once everything index `name` (of `generation`) had when this arrived is stored.
/// Answers `Ok(true)` when saved, `StorageUnavailable` when the save it waited for failed,
/// `IndexNotFound` when the index was deleted meanwhile.
#[derive(Message)]
#[rtype(result = "Result<bool, IndexError>")]
pub struct Flush {
    pub name: String,
    pub generation: u64,
}

/// Index `name` of `generation` was deleted (or, for a stored index that failed to load,
/// is to be removed): cancel its pending saves, wait for a save in flight, then delete its
/// stored copy. `first_attempt` hears the outcome of the first attempt; a failed attempt is
/// retried with backoff, and `removed` fires once the stored copy is gone for good. Sent
/// with `do_send`, which queues it even when the persister's mailbox is full (an
/// `Addr::send` would defer it to the first poll of its future, and a client that hangs up
/// before that would lose the delete).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forget {
    pub name: String,
    pub generation: u64,
    pub first_attempt: oneshot::Sender<Result<(), IndexError>>,
    pub removed: oneshot::Sender<()>,
}

/// At shutdown: save everything pending now; answers when done or when storaged failed.
#[derive(Message)]
#[rtype(result = "Result<(), IndexError>")]
pub struct FlushAll;

/// From the start-up load: index `name` of `generation` is stored as `stored` says;
/// `dirty` when it must be saved at once (read from an old layout).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Adopt {
    pub name: String,
    pub generation: u64,
    pub index: IndexPeer,
    pub stored: Stored,
    pub dirty: bool,
}

/// To an index actor, between two mutations: hand over the log records collected since
/// the last call and describe the sealed segments, for a save.
#[derive(Message)]
#[rtype(result = "Result<Changes, IndexError>")]
pub struct TakeChanges;

/// To an index actor: freeze the growing segment now (its log has grown long), so that a
/// seal lets the next manifest cover the log.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SealNow;

/// How the persister reaches one index's actor.
#[derive(Clone)]
pub struct IndexPeer {
    pub take_changes: Recipient<TakeChanges>,
    pub seal_now: Recipient<SealNow>,
}

/// How often slots are checked for due work.
const TICK: Duration = Duration::from_millis(25);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub struct Persister {
    store: StoragedClient,
    quiet: Duration,
    max_delay: Duration,
    /// Saves and deletes running at once, at most (so that a restart of storaged does not
    /// start every index's save together).
    max_concurrent: usize,
    /// See `Stored::log_is_long`.
    manifest_log_bytes: u64,
    /// An index quiet this long (no write, no seal or merge installed) gets a checkpoint:
    /// a manifest naming its sealed segments when they changed, so that a restart, or a
    /// replica, loads them instead of indexing the log (or merging) again.
    checkpoint_idle: Option<Duration>,
    slots: HashMap<String, Slot>,
    status: Arc<PersistStatus>,
}

/// The persistence state of one index: one generation of one name. A later index of the
/// same name gets a fresh slot, once the delete of this one is durable (the registry keeps
/// the name reserved until then), so nothing of one generation (counters, waiters, errors)
/// leaks into the next.
struct Slot {
    generation: u64,
    /// The index's actor; none once the index is deleted.
    actor: Option<IndexPeer>,
    /// Latest mutation count reported, and latest one stored.
    dirty_seq: u64,
    saved_seq: u64,
    /// When the oldest unsaved change and the latest change arrived.
    first_dirty: Option<Instant>,
    last_dirty: Instant,
    /// A save or delete is in flight.
    busy: bool,
    /// The index was deleted: its stored copy must be removed; nothing is saved any more.
    delete: Option<PendingDelete>,
    /// After a failure, the next attempt waits until then (unless asked for at once).
    retry_at: Option<Instant>,
    backoff: Duration,
    /// A `flush` (or the shutdown) asked for an attempt now, backoff or not.
    attempt_now: bool,
    /// `flush` callers, each with the mutation count it waits for.
    flush_waiters: Vec<(u64, oneshot::Sender<Result<bool, IndexError>>)>,
    /// What storage holds of this index (taken by a save in flight, then put back).
    stored: Stored,
    /// The incarnation (kept here too: a delete needs it while a save holds `stored`).
    incarnation: String,
    /// The index was asked to seal for its log's sake and has not yet been covered.
    seal_asked: bool,
    /// The shutdown asked for a checkpoint: the next save writes a manifest covering all
    /// it can, so that the next start replays no more log than it must.
    checkpoint: bool,
    /// The idle checkpoint of the current quiet period was asked for.
    idle_checkpointed: bool,
}

/// A delete waiting to be carried out (or retried).
struct PendingDelete {
    /// Answered after the next attempt, whatever its outcome.
    attempt_waiters: Vec<oneshot::Sender<Result<(), IndexError>>>,
    /// Fired once the stored copy is gone.
    removed: Vec<oneshot::Sender<()>>,
}

impl Slot {
    fn new(generation: u64, now: Instant, stored: Stored) -> Slot {
        Slot {
            incarnation: stored.incarnation.clone(),
            stored,
            seal_asked: false,
            checkpoint: false,
            idle_checkpointed: false,
            generation,
            actor: None,
            dirty_seq: 0,
            saved_seq: 0,
            first_dirty: None,
            last_dirty: now,
            busy: false,
            delete: None,
            retry_at: None,
            backoff: FIRST_BACKOFF,
            attempt_now: false,
            flush_waiters: Vec::new(),
        }
    }

    /// Asks for the checkpoint of this quiet period, once the index has been quiet for
    /// `idle`. The save writes a manifest only if it would name other segments or cover
    /// more of the log than the stored one (after seals, or merges).
    fn checkpoint_if_idle(&mut self, now: Instant, idle: Option<Duration>) {
        let quiet_for = now.duration_since(self.last_dirty);
        if idle.is_some_and(|after| quiet_for >= after)
            && !self.idle_checkpointed
            && !self.dirty()
            && self.actor.is_some()
        {
            self.idle_checkpointed = true;
            self.checkpoint = true;
        }
    }

    fn dirty(&self) -> bool {
        self.delete.is_none() && self.actor.is_some() && self.dirty_seq > self.saved_seq
    }

    /// Whether the slot may start an attempt now (not in backoff, or asked to).
    fn may_attempt(&self, now: Instant) -> bool {
        self.attempt_now || self.retry_at.is_none_or(|t| now >= t)
    }

    fn failed(&mut self, now: Instant) {
        self.retry_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    fn succeeded(&mut self) {
        self.retry_at = None;
        self.backoff = FIRST_BACKOFF;
    }

    /// Answers the flush waiters whose mutation count is stored (`done` or less).
    fn answer_flushes_up_to(&mut self, done: u64) {
        let (ready, waiting): (Vec<_>, Vec<_>) = self
            .flush_waiters
            .drain(..)
            .partition(|(target, _)| *target <= done);
        self.flush_waiters = waiting;
        for (_, tx) in ready {
            let _ = tx.send(Ok(true));
        }
    }

    /// Answers every flush waiter with `result`.
    fn answer_flushes(&mut self, result: impl Fn() -> Result<bool, IndexError>) {
        for (_, tx) in self.flush_waiters.drain(..) {
            let _ = tx.send(result());
        }
    }
}

/// Counts a successful save in the metrics, and logs it.
fn record_save(name: &str, saved: &Saved, started: Instant, oldest_change: Option<Instant>) {
    let m = metrics();
    m.saves.with_label_values(&["ok"]).inc();
    m.save_bytes.inc_by(saved.bytes_written);
    m.save_seconds.observe(started.elapsed().as_secs_f64());
    if let Some(t) = oldest_change {
        m.save_lag_seconds.observe(t.elapsed().as_secs_f64());
    }
    log::debug!(
        "index {name:?}: saved {} bytes{} in {} ms",
        saved.bytes_written,
        if saved.manifest_written {
            " and a new manifest"
        } else {
            ""
        },
        started.elapsed().as_millis()
    );
}

/// The work a tick decided to start for one slot.
enum Op {
    Save { actor: IndexPeer },
    Delete,
}

impl Persister {
    pub fn new(
        store: StoragedClient,
        quiet: Duration,
        max_delay: Duration,
        max_concurrent: usize,
        manifest_log_bytes: u64,
    ) -> Persister {
        Persister {
            store,
            quiet,
            max_delay,
            max_concurrent: max_concurrent.max(1),
            manifest_log_bytes,
            checkpoint_idle: None,
            slots: HashMap::new(),
            status: Arc::new(PersistStatus::default()),
        }
    }

    /// Checkpoints indexes quiet for `after` (see `checkpoint_idle`); never when none.
    pub fn checkpoint_when_idle(mut self, after: Option<Duration>) -> Persister {
        self.checkpoint_idle = after;
        self
    }

    /// What is known about each index's saves (shared, readable at any time).
    pub fn status(&self) -> Arc<PersistStatus> {
        self.status.clone()
    }

    /// Starts the saves and deletes that are due, up to `max_concurrent` in flight:
    /// deletes first, then the indexes whose oldest unsaved change is oldest.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let mut due = Vec::new();
        let mut running = 0;
        let idle = self.checkpoint_idle;
        for (name, slot) in &mut self.slots {
            if slot.busy {
                running += 1;
                continue;
            }
            slot.checkpoint_if_idle(now, idle);
            if !slot.may_attempt(now) {
                continue;
            }
            if slot.delete.is_some() {
                due.push((None, name.clone(), slot.generation, Op::Delete));
            } else if slot.dirty() || (slot.checkpoint && slot.actor.is_some()) {
                let quiet = now.duration_since(slot.last_dirty) >= self.quiet;
                let capped = slot
                    .first_dirty
                    .is_some_and(|t| now.duration_since(t) >= self.max_delay);
                if quiet || capped || slot.attempt_now {
                    if let Some(actor) = slot.actor.clone() {
                        let since = Some(slot.first_dirty.unwrap_or(now));
                        due.push((since, name.clone(), slot.generation, Op::Save { actor }));
                    }
                }
            }
        }
        due.sort_by_key(|(since, _, _, _)| *since);
        for (_, name, generation, op) in due {
            if running >= self.max_concurrent {
                break;
            }
            running += 1;
            if let Some(slot) = self.slots.get_mut(&name) {
                slot.busy = true;
                slot.attempt_now = false;
            }
            match op {
                Op::Save { actor } => self.start_save(ctx, name, generation, actor),
                Op::Delete => self.start_delete(ctx, name, generation),
            }
        }
        // Forget slots with nothing left to do and no index behind them.
        let status = &self.status;
        self.slots.retain(|name, s| {
            let keep =
                s.actor.is_some() || s.busy || s.delete.is_some() || !s.flush_waiters.is_empty();
            if !keep {
                status.remove(name);
            }
            keep
        });
        // The backlog, for the metrics.
        let m = metrics();
        let dirty: Vec<&Slot> = self.slots.values().filter(|s| s.dirty()).collect();
        m.dirty_indexes.set(dirty.len() as i64);
        let oldest = dirty
            .iter()
            .filter_map(|s| s.first_dirty)
            .min()
            .map_or(0, |t| now.duration_since(t).as_secs());
        m.oldest_unsaved_seconds.set(oldest as i64);
        m.flush_waiters.set(
            self.slots
                .values()
                .map(|s| s.flush_waiters.len())
                .sum::<usize>() as i64,
        );
        m.log_bytes_waiting.set(
            self.slots
                .values()
                .map(|s| s.stored.log_bytes())
                .sum::<u64>() as i64,
        );
    }

    /// Takes the index's changes from its actor, then stores them (`save::save`), with no
    /// lock held; `save_done` books the outcome.
    fn start_save(
        &mut self,
        ctx: &mut Context<Self>,
        name: String,
        generation: u64,
        actor: IndexPeer,
    ) {
        let store = self.store.clone();
        let started = Instant::now();
        let Some(slot) = self.slots.get_mut(&name) else {
            return;
        };
        let mut stored = std::mem::take(&mut slot.stored);
        let oldest_change = slot.first_dirty;
        let checkpoint = std::mem::take(&mut slot.checkpoint);
        let long_log = self.manifest_log_bytes;
        let index = name.clone();
        let work = async move {
            let changes = match actor.take_changes.send(TakeChanges).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return (stored, Err(SaveError::Snapshot(e.to_string()))),
                // The actor stopped: the index was deleted; the delete follows.
                Err(_) => return (stored, Err(SaveError::Gone)),
            };
            let result =
                save::save(&store, &index, changes, &mut stored, long_log, checkpoint).await;
            (stored, result)
        };
        ctx.spawn(work.into_actor(self).map(move |(stored, res), act, _| {
            act.save_done(&name, generation, stored, res, (started, oldest_change));
        }));
    }

    /// Books a save's outcome in the index's slot: what is stored, flush waiters answered,
    /// the status and metrics, a retry after a failure.
    fn save_done(
        &mut self,
        name: &str,
        generation: u64,
        stored: Stored,
        result: Result<Saved, SaveError>,
        (started, oldest_change): (Instant, Option<Instant>),
    ) {
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        if slot.generation != generation {
            return; // cannot happen: a slot outlives its busy operation
        }
        slot.stored = stored;
        slot.busy = false;
        match result {
            Ok(saved) => {
                record_save(name, &saved, started, oldest_change);
                slot.succeeded();
                slot.saved_seq = slot.saved_seq.max(saved.seq);
                if slot.saved_seq >= slot.dirty_seq {
                    slot.first_dirty = None;
                }
                let clean = slot.first_dirty.is_none();
                self.status.update(name, |s| {
                    s.last_save = Some(std::time::SystemTime::now());
                    s.last_error = None;
                    s.failing_since = None;
                    if clean {
                        s.unsaved_since = None;
                    }
                });
                slot.answer_flushes_up_to(slot.saved_seq);
                // A long log: have the growing segment sealed, so that a manifest can
                // cover it (asked once until that happens).
                let long = slot.stored.log_is_long(self.manifest_log_bytes);
                if saved.manifest_written {
                    slot.seal_asked = false;
                }
                if long && !slot.seal_asked {
                    if let Some(actor) = &slot.actor {
                        slot.seal_asked = true;
                        actor.seal_now.do_send(SealNow);
                    }
                }
            }
            // The index was deleted meanwhile (its actor is gone): nothing more to save;
            // the delete answers the waiters.
            Err(SaveError::Gone) => {
                slot.actor = None;
            }
            Err(e) => {
                metrics().saves.with_label_values(&["failed"]).inc();
                self.status.update(name, |s| {
                    s.last_error = Some(e.to_string());
                    s.failing_since
                        .get_or_insert_with(std::time::SystemTime::now);
                });
                log::warn!(
                    "index {name:?}: saving to {} failed, will retry in {} ms: {e}",
                    manifest_key(name),
                    slot.backoff.as_millis()
                );
                slot.failed(Instant::now());
                let message = format!("saving index {name:?} failed: {e}");
                slot.answer_flushes(|| Err(IndexError::StorageUnavailable(message.clone())));
            }
        }
    }

    fn start_delete(&mut self, ctx: &mut Context<Self>, name: String, generation: u64) {
        let store = self.store.clone();
        let index = name.clone();
        let incarnation = self
            .slots
            .get(&name)
            .map(|s| s.incarnation.clone())
            .filter(|i| !i.is_empty());
        let work = async move { save::remove(&store, &index, incarnation.as_deref()).await };
        ctx.spawn(work.into_actor(self).map(move |res, act, _| {
            let Some(slot) = act.slots.get_mut(&name) else { return };
            if slot.generation != generation {
                return;
            }
            slot.busy = false;
            match res {
                Ok(()) => {
                    metrics().deletes.with_label_values(&["ok"]).inc();
                    act.status.remove(&name);
                    log::info!("index {name:?}: removed {} from storage", manifest_key(&name));
                    // This generation is over: the name may be used again from now on.
                    if let Some(slot) = act.slots.remove(&name) {
                        if let Some(pending) = slot.delete {
                            for tx in pending.attempt_waiters {
                                let _ = tx.send(Ok(()));
                            }
                            for tx in pending.removed {
                                let _ = tx.send(());
                            }
                        }
                    }
                }
                Err(e) => {
                    metrics().deletes.with_label_values(&["failed"]).inc();
                    log::warn!(
                        "index {name:?}: removing {} failed, will retry in {} ms: {e}",
                        manifest_key(&name),
                        slot.backoff.as_millis()
                    );
                    slot.failed(Instant::now());
                    if let Some(pending) = &mut slot.delete {
                        for tx in pending.attempt_waiters.drain(..) {
                            let _ = tx.send(Err(IndexError::StorageUnavailable(format!(
                                "index {name:?} is deleted from memory, but removing its stored copy failed \
                                 (retried in the background; until then the name stays reserved and the \
                                 index would come back after a restart): {e}"
                            ))));
                        }
                    }
                }
            }
        }));
    }
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
        // A created index (the registry reports its creation) starts a new incarnation.
        let fresh = || Slot::new(msg.generation, now, Stored::new(new_incarnation()));
        let slot = self.slots.entry(msg.name.clone()).or_insert_with(fresh);
        if msg.generation < slot.generation || slot.delete.is_some() {
            return; // a late word from a deleted index
        }
        if msg.generation > slot.generation {
            // A clean slot of an earlier index (the registry reserves a name until the
            // delete of its previous index is done, so no delete can be pending here).
            let mut old = std::mem::replace(slot, fresh());
            old.answer_flushes(|| Err(IndexError::IndexNotFound(msg.name.clone())));
        }
        slot.actor = Some(msg.index);
        slot.idle_checkpointed = false;
        slot.dirty_seq = slot.dirty_seq.max(msg.seq);
        slot.first_dirty.get_or_insert(now);
        slot.last_dirty = now;
        self.status.update(&msg.name, |s| {
            s.unsaved_since.get_or_insert(now);
        });
    }
}

impl Handler<Flush> for Persister {
    type Result = ResponseFuture<Result<bool, IndexError>>;

    fn handle(&mut self, msg: Flush, _: &mut Context<Self>) -> Self::Result {
        let Some(slot) = self.slots.get_mut(&msg.name) else {
            // No slot: nothing was changed since the index was loaded (a created index
            // has a slot from before its creation was answered).
            return Box::pin(async { Ok(true) });
        };
        if slot.generation != msg.generation || slot.delete.is_some() {
            let name = msg.name;
            return Box::pin(async move { Err(IndexError::IndexNotFound(name)) });
        }
        if !slot.dirty() {
            return Box::pin(async { Ok(true) });
        }
        let (tx, rx) = oneshot::channel();
        slot.flush_waiters.push((slot.dirty_seq, tx));
        slot.attempt_now = true;
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(IndexError::Internal("the persister dropped a flush".into()))
            })
        })
    }
}

impl Handler<Forget> for Persister {
    type Result = ();

    fn handle(&mut self, msg: Forget, _: &mut Context<Self>) {
        let name = msg.name;
        // No slot: an index loaded and never changed, or a stored copy that failed to
        // load (its incarnation unknown: its other objects wait for the start-up cleanup).
        let slot = self
            .slots
            .entry(name.clone())
            .or_insert_with(|| Slot::new(msg.generation, Instant::now(), Stored::default()));
        if msg.generation < slot.generation {
            // Cannot happen while the registry reserves names; never delete a newer
            // index's copy.
            log::error!(
                "index {name:?}: delete of generation {} after generation {} started; ignored",
                msg.generation,
                slot.generation
            );
            let _ = msg.first_attempt.send(Ok(()));
            let _ = msg.removed.send(());
            return;
        }
        slot.generation = msg.generation;
        slot.actor = None;
        slot.first_dirty = None;
        slot.attempt_now = true;
        slot.answer_flushes(|| Err(IndexError::IndexNotFound(name.clone())));
        let pending = slot.delete.get_or_insert_with(|| PendingDelete {
            attempt_waiters: Vec::new(),
            removed: Vec::new(),
        });
        pending.attempt_waiters.push(msg.first_attempt);
        pending.removed.push(msg.removed);
    }
}

impl Handler<FlushAll> for Persister {
    type Result = ResponseFuture<Result<(), IndexError>>;

    fn handle(&mut self, _: FlushAll, _: &mut Context<Self>) -> Self::Result {
        let mut flushes = Vec::new();
        let mut deletes = Vec::new();
        for slot in self.slots.values_mut() {
            if slot.delete.is_none() && slot.actor.is_some() && !slot.stored.logs.is_empty() {
                slot.checkpoint = true;
            }
            if slot.dirty() || slot.checkpoint {
                let (tx, rx) = oneshot::channel();
                slot.flush_waiters.push((slot.dirty_seq, tx));
                slot.attempt_now = true;
                flushes.push(rx);
            }
            if let Some(pending) = &mut slot.delete {
                let (tx, rx) = oneshot::channel();
                pending.attempt_waiters.push(tx);
                slot.attempt_now = true;
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

impl Handler<Adopt> for Persister {
    type Result = ();

    fn handle(&mut self, msg: Adopt, _: &mut Context<Self>) {
        let now = Instant::now();
        let mut slot = Slot::new(msg.generation, now, msg.stored);
        slot.actor = Some(msg.index);
        if msg.dirty {
            slot.dirty_seq = 1;
            slot.first_dirty = Some(now);
        }
        self.slots.insert(msg.name, slot);
    }
}
