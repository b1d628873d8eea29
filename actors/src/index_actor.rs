//! The actor that owns one index and applies its mutations one at a time, in arrival
//! order: add batches, item deletes, compactions, snapshots for the persister, and the
//! index's own deletion.
//!
//! The actor itself only sequences work: each CPU-heavy step runs on the blocking pool
//! (never on an HTTP worker thread) while the actor waits for it (`AtomicResponse`), so
//! the next mutation starts only when the previous one is done. Searches and reads do not
//! go through the actor at all: they use the shared `Index` directly and run alongside.

use std::sync::Arc;

use actix::prelude::*;

use crate::error::IndexError;
use crate::index::{AddOutcome, Index};
use crate::messages::{AddItems, DeleteItem, DropIndex, MarkDirty, Snapshot, TakeSnapshot};
use crate::persister::Persister;

pub struct IndexActor {
    name: String,
    /// Tells this index apart from an earlier or later index of the same name.
    generation: u64,
    index: Arc<Index>,
    /// None in ephemeral mode.
    persister: Option<Addr<Persister>>,
    /// Mutations applied so far (a new index starts at 1: its creation, which the
    /// registry reported to the persister); the persister saves up to a given count.
    seq: u64,
    /// Tombstone share that triggers a compaction.
    compact_ratio: f64,
    /// A compaction is under way (at most one at a time).
    compacting: bool,
}

impl IndexActor {
    pub fn new(
        name: String,
        generation: u64,
        index: Arc<Index>,
        persister: Option<Addr<Persister>>,
        compact_ratio: f64,
        seq: u64,
    ) -> Self {
        IndexActor {
            name,
            generation,
            index,
            persister,
            seq,
            compact_ratio,
            compacting: false,
        }
    }

    /// Records a mutation and tells the persister.
    fn changed(&mut self, ctx: &mut Context<Self>) {
        self.seq += 1;
        if let Some(persister) = &self.persister {
            persister.do_send(MarkDirty {
                name: self.name.clone(),
                generation: self.generation,
                seq: self.seq,
                actor: ctx.address(),
            });
        }
        if self.index.needs_compaction(self.compact_ratio) {
            ctx.notify(Compact);
        }
    }
}

impl Actor for IndexActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The mailbox is the back-pressure: let clients queue rather than fail.
        ctx.set_mailbox_capacity(1024);
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
        let work = blocking(self.name.clone(), "add", move || {
            let items = index.params().check_items(msg.items)?;
            Ok(index.add(items))
        });
        AtomicResponse::new(Box::pin(work.into_actor(self).map(|res, act, ctx| {
            let outcome = res.and_then(|r| r)?;
            act.changed(ctx);
            Ok(outcome)
        })))
    }
}

impl Handler<DeleteItem> for IndexActor {
    type Result = Result<(), IndexError>;

    fn handle(&mut self, msg: DeleteItem, ctx: &mut Context<Self>) -> Self::Result {
        if !self.index.delete(&msg.id) {
            return Err(IndexError::ItemNotFound {
                index: self.name.clone(),
                id: msg.id,
            });
        }
        self.changed(ctx);
        Ok(())
    }
}

/// Sent to itself when tombstones pile up.
#[derive(Message)]
#[rtype(result = "()")]
struct Compact;

impl Handler<Compact> for IndexActor {
    type Result = ();

    /// Builds the new graph in the background while mutations go on, then finishes the
    /// compaction (catching up with those mutations) between two of them.
    fn handle(&mut self, _: Compact, ctx: &mut Context<Self>) {
        if self.compacting || !self.index.needs_compaction(self.compact_ratio) {
            return;
        }
        self.compacting = true;
        let started = std::time::Instant::now();
        let index = self.index.clone();
        let plan = blocking(self.name.clone(), "compaction", move || {
            index.plan_compaction()
        });
        ctx.spawn(plan.into_actor(self).map(move |plan, act, ctx| {
            let Ok(plan) = plan else {
                act.compacting = false;
                return;
            };
            let index = act.index.clone();
            let finish = blocking(act.name.clone(), "compaction", move || {
                index.finish_compaction(plan)
            });
            ctx.wait(finish.into_actor(act).map(move |dropped, act, ctx| {
                act.compacting = false;
                if let Ok(dropped) = dropped {
                    log::info!(
                        "index {:?}: compacted, dropped {dropped} tombstones, {} items left, {} ms",
                        act.name,
                        act.index.stats().count,
                        started.elapsed().as_millis()
                    );
                    act.changed(ctx);
                }
            }));
        }));
    }
}

impl Handler<TakeSnapshot> for IndexActor {
    type Result = AtomicResponse<Self, Result<Snapshot, IndexError>>;

    fn handle(&mut self, _: TakeSnapshot, _: &mut Context<Self>) -> Self::Result {
        let index = self.index.clone();
        let seq = self.seq;
        let name = self.name.clone();
        let work = blocking(self.name.clone(), "snapshot", move || {
            index.snapshot().map_err(|e| {
                log::error!("index {name:?}: encoding a snapshot failed: {e}");
                IndexError::Internal(format!("encoding index {name:?} failed: {e}"))
            })
        });
        AtomicResponse::new(Box::pin(work.into_actor(self).map(move |res, _, _| {
            let bytes = res.and_then(|r| r)?;
            Ok(Snapshot {
                seq,
                bytes: bytes.into(),
            })
        })))
    }
}

impl Handler<DropIndex> for IndexActor {
    type Result = ();

    fn handle(&mut self, _: DropIndex, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
