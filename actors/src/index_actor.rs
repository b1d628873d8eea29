//! The actor that owns one index and applies its mutations one at a time, in arrival
//! order: add batches, item deletes, the installs of background jobs (seals, merges,
//! compactions), handing its changes to the persister, and the index's own deletion.
//!
//! The actor only sequences work. Every step that takes the index's write lock runs on the
//! blocking pool while the actor waits for it (`AtomicResponse`, `ctx.wait`), so the actor
//! thread, which all index actors share, never blocks: a long search holding one index's
//! read lock delays that index's next mutation, never another index's. (Planning a job
//! takes the read lock on the actor thread; no writer can be waiting then, since the
//! actor itself runs the writes, so it does not wait.) Searches and reads
//! do not go through the actor at all: they use the shared `Index` and run beside it.
//!
//! Background jobs: after each mutation the actor asks the index for due work — at most
//! one seal and one merge job at a time — builds it on the blocking pool with no lock
//! held, and installs it between two mutations. When the index has been idle for a while,
//! its growing segment is frozen and sealed too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::codec::log::LogBatch;
use crate::error::IndexError;
use crate::filter::Filter;
use crate::index::{AddOutcome, Fields, Index, JobKind, NewItem};
use crate::persist::persister::{IndexPeer, MarkDirty, SealNow, TakeChanges};
use crate::persist::save::Changes;

// The index actor's protocol (what the front and the registry ask of it). It also answers
// the persister's `TakeChanges` and `SealNow`, which the persister defines.

/// Add or replace a batch of items (checked inside the actor, all before any change).
#[derive(Message)]
#[rtype(result = "Result<AddOutcome, IndexError>")]
pub struct AddItems {
    pub items: Vec<NewItem>,
}

/// Apply log records a primary stored, in lsn order, as a start-up replay does (a replica
/// following it).
#[derive(Message)]
#[rtype(result = "Result<(), IndexError>")]
pub struct ApplyLog {
    pub records: Vec<crate::codec::log::LogRecord>,
}

/// Delete one item.
#[derive(Message)]
#[rtype(result = "Result<(), IndexError>")]
pub struct DeleteItem {
    pub id: String,
}

/// Delete the items of `ids` (all of them when none) that pass `filter` (all when none),
/// as one change: one log record, and a search sees all of them gone or none. Answers how
/// many were deleted; ids that are not there are no error.
#[derive(Message)]
#[rtype(result = "Result<DeletedItems, IndexError>")]
pub struct DeleteItems {
    pub ids: Option<Vec<String>>,
    pub filter: Option<Filter>,
}

/// What a `DeleteItems` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedItems {
    pub deleted: usize,
    /// Live items after it.
    pub count: usize,
}

/// Index more fields (`Index::declare_fields`): one logged change when it adds any;
/// answers every declared field. Sealed segments get the new indexes in the background.
#[derive(Message)]
#[rtype(result = "Result<Fields, IndexError>")]
pub struct DeclareFields {
    pub fields: Fields,
}

/// The index was removed from the registry: finish the mutation in progress, then stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DropIndex;

/// Wait before retrying a background job that failed.
const JOB_RETRY: Duration = Duration::from_secs(5);

/// When an idle index seals its growing segment.
#[derive(Debug, Clone, Copy)]
pub struct IdleSeal {
    /// Quiet time after the last write.
    pub after: Duration,
    /// Smaller growing segments stay as they are (scanning them is as fast as a graph).
    pub min_points: usize,
}

impl Default for IdleSeal {
    fn default() -> Self {
        IdleSeal {
            after: Duration::from_secs(1),
            min_points: 1024,
        }
    }
}

/// Where an index actor starts counting.
#[derive(Default)]
pub struct ActorStart {
    pub seq: u64,
    pub lsn: u64,
    /// Log records the index holds but storage does not (an index read from an old
    /// layout).
    pub pending: LogBatch,
}

pub struct IndexActor {
    name: String,
    /// Tells this index apart from an earlier or later index of the same name.
    generation: u64,
    index: Arc<Index>,
    /// Where changes are reported; none in ephemeral mode.
    persister: Option<Recipient<MarkDirty>>,
    /// Mutations applied so far (a new index starts at 1: its creation, which the
    /// registry reported to the persister); the persister saves up to a given count.
    seq: u64,
    /// Log sequence number of the last client mutation (adds and deletes only).
    lsn: u64,
    /// Log records not yet handed to the persister (none kept in ephemeral mode).
    pending: LogBatch,
    /// A job of that kind is being built.
    sealing: bool,
    merging: bool,
    idle_seal: IdleSeal,
    last_write: Instant,
    idle_check_pending: bool,
}

impl IndexActor {
    pub fn new(
        name: String,
        generation: u64,
        index: Arc<Index>,
        persister: Option<Recipient<MarkDirty>>,
        idle_seal: IdleSeal,
        start: ActorStart,
    ) -> Self {
        IndexActor {
            name,
            generation,
            index,
            persister,
            seq: start.seq,
            lsn: start.lsn,
            pending: start.pending,
            sealing: false,
            merging: false,
            idle_seal,
            last_write: Instant::now(),
            idle_check_pending: false,
        }
    }

    /// Records a mutation, tells the persister, and looks for due background work.
    fn changed(&mut self, ctx: &mut Context<Self>) {
        self.seq += 1;
        if let Some(persister) = &self.persister {
            persister.do_send(MarkDirty {
                name: self.name.clone(),
                generation: self.generation,
                seq: self.seq,
                index: peer(&ctx.address()),
            });
        }
        self.start_jobs(ctx);
    }

    /// A client write: also (re)arms the idle seal.
    fn written(&mut self, ctx: &mut Context<Self>) {
        self.last_write = Instant::now();
        self.changed(ctx);
        if !self.idle_check_pending {
            self.idle_check_pending = true;
            ctx.run_later(self.idle_seal.after, |act, ctx| act.idle_check(ctx));
        }
    }

    fn idle_check(&mut self, ctx: &mut Context<Self>) {
        let quiet = self.last_write.elapsed();
        if quiet < self.idle_seal.after {
            ctx.run_later(self.idle_seal.after - quiet, |act, ctx| act.idle_check(ctx));
            return;
        }
        self.idle_check_pending = false;
        let index = self.index.clone();
        let min = self.idle_seal.min_points;
        let freeze = blocking(self.name.clone(), "freezing", move || {
            index.freeze_if_at_least(min)
        });
        ctx.wait(freeze.into_actor(self).map(|froze, act, ctx| {
            if matches!(froze, Ok(true)) {
                act.changed(ctx);
            }
        }));
    }

    /// Starts the due background jobs that are not running yet.
    fn start_jobs(&mut self, ctx: &mut Context<Self>) {
        for kind in [JobKind::Seal, JobKind::Merge] {
            let running = match kind {
                JobKind::Seal => &mut self.sealing,
                JobKind::Merge => &mut self.merging,
            };
            if *running {
                continue;
            }
            let Some(job) = self.index.next_job(kind) else {
                continue;
            };
            *running = true;
            let segments = job.segments();
            let index = self.index.clone();
            let build = blocking(self.name.clone(), "building a segment", move || {
                index.build(job)
            });
            ctx.spawn(build.into_actor(self).map(move |built, act, ctx| {
                let kind_label = match kind {
                    JobKind::Seal => "seal",
                    JobKind::Merge => "merge",
                };
                let m = crate::metrics::metrics();
                let built = match built.and_then(|b| b.map_err(IndexError::Internal)) {
                    Ok(built) => {
                        m.jobs.with_label_values(&[kind_label, "ok"]).inc();
                        m.job_seconds
                            .with_label_values(&[kind_label])
                            .observe(built.took.as_secs_f64());
                        built
                    }
                    Err(e) => {
                        m.jobs.with_label_values(&[kind_label, "failed"]).inc();
                        log::error!(
                            "index {:?}: background job on segments {segments:?} failed, retrying in {} s: {e}",
                            act.name,
                            JOB_RETRY.as_secs()
                        );
                        act.index.release(&segments);
                        act.job_done(kind);
                        ctx.run_later(JOB_RETRY, |act, ctx| act.start_jobs(ctx));
                        return;
                    }
                };
                // Installed between two mutations, on the blocking pool.
                let install_segments = segments.clone();
                let index = act.index.clone();
                let install = blocking(act.name.clone(), "installing a segment", move || {
                    index.install(built)
                });
                ctx.wait(install.into_actor(act).map(move |report, act, ctx| {
                    act.job_done(kind);
                    match report {
                        Ok(report) => {
                            log::info!("index {:?}: {}", act.name, report.summary);
                            act.changed(ctx);
                        }
                        Err(_) => {
                            // The install panicked (logged by `blocking`): give the segments
                            // back so that a later job can take them.
                            act.index.release(&install_segments);
                            ctx.run_later(JOB_RETRY, |act, ctx| act.start_jobs(ctx));
                        }
                    }
                }));
            }));
        }
    }

    fn job_done(&mut self, kind: JobKind) {
        match kind {
            JobKind::Seal => self.sealing = false,
            JobKind::Merge => self.merging = false,
        }
    }
}

/// How the persister reaches an index actor.
pub fn peer(actor: &Addr<IndexActor>) -> IndexPeer {
    IndexPeer {
        take_changes: actor.clone().recipient(),
        seal_now: actor.clone().recipient(),
    }
}

impl Actor for IndexActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The mailbox is the back-pressure: let clients queue rather than fail.
        ctx.set_mailbox_capacity(1024);
        // A loaded index may hold frozen segments whose seal was cut short.
        self.start_jobs(ctx);
        // And a log tail replayed into the growing segment must be sealed even if no
        // client writes again: arm the idle seal as a write would.
        self.idle_check_pending = true;
        ctx.run_later(self.idle_seal.after, |act, ctx| act.idle_check(ctx));
    }
}

/// Runs `work` on the blocking pool; a panic in it becomes an error for this request
/// only (the index stays usable: see `Index::read`).
async fn blocking<T: Send + 'static>(
    index_name: String,
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, IndexError> {
    actix_rt::task::spawn_blocking(work).await.map_err(|e| {
        log::error!("index {index_name:?}: {what} failed: {e}");
        IndexError::Internal(format!("{what} failed on index {index_name:?}"))
    })
}

impl Handler<AddItems> for IndexActor {
    type Result = AtomicResponse<Self, Result<AddOutcome, IndexError>>;

    fn handle(&mut self, msg: AddItems, _: &mut Context<Self>) -> Self::Result {
        let index = self.index.clone();
        let lsn = self.lsn + 1;
        let logged = self.persister.is_some();
        let name = self.name.clone();
        let work = blocking(self.name.clone(), "add", move || {
            crate::faults::maybe_panic("add", &name);
            let items = index
                .params()
                .check_items_within(msg.items, &index.config().limits)?;
            let mut log = LogBatch::default();
            if logged {
                log.push_add(lsn, &crate::index::log_items(&items));
            }
            Ok((index.add(items, lsn)?, log))
        });
        AtomicResponse::new(Box::pin(work.into_actor(self).map(move |res, act, ctx| {
            let (outcome, log) = match res.and_then(|r| r) {
                Ok(done) => done,
                Err(e) => {
                    if matches!(e, IndexError::Busy { .. }) {
                        // Too much waits to be sealed: make sure the seal is under way.
                        act.start_jobs(ctx);
                    }
                    return Err(e);
                }
            };
            act.lsn = lsn;
            act.pending.append(log);
            act.written(ctx);
            Ok(outcome)
        })))
    }
}

impl Handler<ApplyLog> for IndexActor {
    type Result = AtomicResponse<Self, Result<(), IndexError>>;

    fn handle(&mut self, msg: ApplyLog, _: &mut Context<Self>) -> Self::Result {
        let index = self.index.clone();
        let work = blocking(self.name.clone(), "applying the primary's log", move || {
            index.replay(msg.records).map_err(IndexError::Internal)
        });
        AtomicResponse::new(Box::pin(work.into_actor(self).map(|res, act, ctx| {
            res.and_then(|r| r)?;
            act.written(ctx);
            Ok(())
        })))
    }
}

impl Handler<DeleteItem> for IndexActor {
    type Result = AtomicResponse<Self, Result<(), IndexError>>;

    fn handle(&mut self, msg: DeleteItem, _: &mut Context<Self>) -> Self::Result {
        let index = self.index.clone();
        let name = self.name.clone();
        let lsn = self.lsn + 1;
        let work = blocking(self.name.clone(), "delete", move || {
            if index.delete(&msg.id) {
                Ok(msg.id)
            } else {
                Err(IndexError::ItemNotFound {
                    index: name,
                    id: msg.id,
                })
            }
        });
        AtomicResponse::new(Box::pin(work.into_actor(self).map(move |res, act, ctx| {
            let id = res.and_then(|r| r)?;
            act.lsn = lsn;
            if act.persister.is_some() {
                act.pending.push_delete(lsn, &id);
            }
            act.written(ctx);
            Ok(())
        })))
    }
}

impl Handler<DeleteItems> for IndexActor {
    type Result = AtomicResponse<Self, Result<DeletedItems, IndexError>>;

    fn handle(&mut self, msg: DeleteItems, _: &mut Context<Self>) -> Self::Result {
        let index = self.index.clone();
        let lsn = self.lsn + 1;
        let work = blocking(self.name.clone(), "delete", move || {
            let chosen = match (msg.ids, &msg.filter) {
                (Some(ids), None) => ids,
                (Some(ids), Some(filter)) => index.ids_passing(&ids, filter),
                (None, Some(filter)) => index.matching_ids(filter),
                (None, None) => Vec::new(),
            };
            let deleted = index.delete_many(&chosen);
            (deleted, index.stats().count)
        });
        AtomicResponse::new(Box::pin(work.into_actor(self).map(move |res, act, ctx| {
            let (deleted, count) = res?;
            if !deleted.is_empty() {
                act.lsn = lsn;
                if act.persister.is_some() {
                    act.pending.push_delete_many(lsn, &deleted);
                }
                act.written(ctx);
            }
            Ok(DeletedItems {
                deleted: deleted.len(),
                count,
            })
        })))
    }
}

impl Handler<DeclareFields> for IndexActor {
    type Result = AtomicResponse<Self, Result<Fields, IndexError>>;

    fn handle(&mut self, msg: DeclareFields, _: &mut Context<Self>) -> Self::Result {
        let index = self.index.clone();
        let lsn = self.lsn + 1;
        let work = blocking(self.name.clone(), "declaring fields", move || {
            let before = index.fields();
            index
                .declare_fields(&msg.fields)
                .map(|all| (all != before, all, msg.fields))
        });
        AtomicResponse::new(Box::pin(work.into_actor(self).map(move |res, act, ctx| {
            let (changed, all, asked) = res??;
            if changed {
                act.lsn = lsn;
                if act.persister.is_some() {
                    act.pending.push_fields(lsn, &asked);
                }
                log::info!(
                    "index {:?}: fields {:?} declared for indexing; sealed segments are indexed in the background",
                    act.name,
                    asked.keys().collect::<Vec<_>>()
                );
                act.written(ctx);
            }
            Ok(all)
        })))
    }
}

impl Handler<TakeChanges> for IndexActor {
    type Result = AtomicResponse<Self, Result<Changes, IndexError>>;

    fn handle(&mut self, _: TakeChanges, _: &mut Context<Self>) -> Self::Result {
        let index = self.index.clone();
        let (seq, lsn) = (self.seq, self.lsn);
        let log = std::mem::take(&mut self.pending);
        let work = blocking(self.name.clone(), "describing segments", move || Changes {
            seq,
            lsn,
            log,
            sealed: index.sealed_segments(),
            covered_lsn: index.covered_lsn(lsn),
            params: index.params().clone(),
            fields: index.fields(),
        });
        AtomicResponse::new(Box::pin(work.into_actor(self)))
    }
}

impl Handler<SealNow> for IndexActor {
    type Result = ();

    fn handle(&mut self, _: SealNow, ctx: &mut Context<Self>) {
        let index = self.index.clone();
        let freeze = blocking(self.name.clone(), "freezing", move || {
            index.freeze_if_at_least(1)
        });
        ctx.wait(freeze.into_actor(self).map(|froze, act, ctx| {
            if matches!(froze, Ok(true)) {
                log::info!(
                    "index {:?}: its log has grown long: growing segment frozen for sealing",
                    act.name
                );
                act.changed(ctx);
            }
        }));
    }
}

impl Handler<DropIndex> for IndexActor {
    type Result = ();

    fn handle(&mut self, _: DropIndex, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
