//! The registry: index name → the index and its actor. The HTTP front looks names up here
//! and routes each request to that index's own actor (mutations) or to the shared index
//! (searches and reads), so a flood of writes to one index never queues requests for
//! another.
//!
//! A name is in one of four states, all kept under one lock so that a create and a delete
//! racing each other end in one of the two orders, never in a mix:
//! - **live**: an index is loaded and serving;
//! - **deleting**: its index was deleted and its stored copy is being removed. The name is
//!   reserved until the removal is durable, so a new index of that name can never have its
//!   first save undone by the old index's delete, and an old save can never overwrite it;
//! - **failed**: a stored index of that name could not be loaded at start-up. Its file is
//!   left in place, and the name is reserved until an operator deletes it (or a retry of a
//!   transient failure loads it), so a create can never overwrite it;
//! - free.
//!
//! Each index gets a generation number, so that the persister can tell a deleted index
//! from a later one of the same name.
//!
//! `startup` fills the registry from storaged at start-up (it calls the loader).

mod startup;

pub use startup::RehydrateReport;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use actix::prelude::*;
use futures::channel::oneshot;

use crate::error::IndexError;
use crate::index::{EngineConfig, Fields, Index, IndexParams};
use crate::index_actor::{self, ActorStart, DropIndex, IdleSeal, IndexActor};
pub use crate::persist::loader::LoadFailure;
use crate::persist::loader::Loaded;
use crate::persist::persister::{Adopt, Forget, MarkDirty, Persister};

/// What the front needs to serve one index.
#[derive(Clone)]
pub struct IndexHandle {
    pub name: String,
    pub generation: u64,
    /// For searches and reads, which run beside the actor.
    pub index: Arc<Index>,
    /// For mutations, which the actor applies one at a time.
    pub actor: Addr<IndexActor>,
    /// Writes (adds, item deletes) accepted and not yet answered, to bound the backlog.
    pub pending_writes: Arc<std::sync::atomic::AtomicUsize>,
}

/// The names and what each one stands for (see the module comment).
#[derive(Default)]
struct Names {
    live: HashMap<String, IndexHandle>,
    /// Name → generation of the delete in progress.
    deleting: HashMap<String, u64>,
    failed: HashMap<String, LoadFailure>,
    /// Loaded indexes whose log replay stopped early (see `load_warnings`).
    warnings: HashMap<String, String>,
}

pub struct Registry {
    names: Mutex<Names>,
    next_generation: AtomicU64,
    /// None in ephemeral mode.
    persister: Option<Addr<Persister>>,
    /// Where index actors run.
    arbiter: ArbiterHandle,
    /// How indexes shape their segments.
    engine: EngineConfig,
    idle_seal: IdleSeal,
}

/// What a delete removes.
enum Doomed {
    Index(IndexHandle),
    /// Only a stored copy that failed to load.
    StoredCopy,
}

impl Registry {
    pub fn new(
        persister: Option<Addr<Persister>>,
        arbiter: ArbiterHandle,
        engine: EngineConfig,
        idle_seal: IdleSeal,
    ) -> Registry {
        Registry {
            names: Mutex::new(Names::default()),
            next_generation: AtomicU64::new(1),
            persister,
            arbiter,
            engine,
            idle_seal,
        }
    }

    /// How indexes shape their segments (for loading indexes).
    pub fn engine(&self) -> EngineConfig {
        self.engine
    }

    fn names(&self) -> MutexGuard<'_, Names> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_persistent(&self) -> bool {
        self.persister.is_some()
    }

    pub fn persister(&self) -> Option<&Addr<Persister>> {
        self.persister.as_ref()
    }

    /// Creates an empty index. `IndexExists` when the name is taken, `NameUnavailable` when
    /// it is reserved (being deleted, or a stored index of that name failed to load).
    /// `fields` are indexed from the start (stored with the index's first save).
    pub fn create(&self, params: IndexParams, fields: Fields) -> Result<IndexHandle, IndexError> {
        params.check()?;
        let mut names = self.names();
        names.check_free(&params.name)?;
        let max = self.engine.limits.max_indexes;
        if names.live.len() >= max {
            return Err(IndexError::NameUnavailable {
                code: "too_many_indexes",
                message: format!(
                    "vectord holds {} indexes, the limit (vectord.max_indexes is {max}); delete one first",
                    names.live.len()
                ),
            });
        }
        let start = ActorStart {
            seq: 1,
            ..ActorStart::default()
        };
        if let (Some(root), true) = (self.engine.cache_root, params.on_disk) {
            // Whatever a crash during an earlier delete of the name left behind.
            crate::index::disk_cache::remove_index(root, &params.name);
        }
        let index = Index::new(params, self.engine);
        index.declare_fields(&fields)?;
        let handle = self.start(index, start);
        // The persister hears of the new index before the client does, so a `flush` sent
        // right after the create waits for its first save (the index's mutation 1).
        if let Some(persister) = &self.persister {
            persister.do_send(MarkDirty {
                name: handle.name.clone(),
                generation: handle.generation,
                seq: 1,
                index: index_actor::peer(&handle.actor),
            });
        }
        names.live.insert(handle.name.clone(), handle.clone());
        let p = handle.index.params();
        log::info!(
            "index {:?} created: dim {}, {}, m {}, ef_construction {}, ef_search {}",
            handle.name,
            p.dim,
            p.distance.as_str(),
            p.m,
            p.ef_construction,
            p.ef_search
        );
        Ok(handle)
    }

    /// Adds an index loaded from storage, and tells the persister what storage holds of
    /// it; refused when the name is live or being deleted meanwhile. Clears a load failure
    /// recorded for the name.
    pub fn insert_loaded(&self, loaded: Loaded) -> Result<IndexHandle, IndexError> {
        self.insert_loaded_as(loaded, false)
    }

    /// `insert_loaded` for a retried load: refused unless the name's load failure is still
    /// recorded (an operator may have deleted the stored copy while the retry ran).
    pub fn insert_retried(&self, loaded: Loaded) -> Result<IndexHandle, IndexError> {
        self.insert_loaded_as(loaded, true)
    }

    fn insert_loaded_as(&self, loaded: Loaded, retry: bool) -> Result<IndexHandle, IndexError> {
        let Loaded {
            index,
            seq,
            lsn,
            stored,
            dirty,
            warning,
            ..
        } = loaded;
        let name = index.params().name.clone();
        let mut names = self.names();
        if names.live.contains_key(&name) {
            return Err(IndexError::IndexExists(name));
        }
        if names.deleting.contains_key(&name) {
            return Err(IndexError::NameUnavailable {
                code: "index_deleting",
                message: format!("index {name:?} is being deleted"),
            });
        }
        if retry && !names.failed.contains_key(&name) {
            return Err(IndexError::IndexNotFound(name));
        }
        names.failed.remove(&name);
        let start = ActorStart {
            seq,
            lsn,
            pending: Default::default(),
        };
        let handle = self.start(index, start);
        if let Some(persister) = &self.persister {
            persister.do_send(Adopt {
                name: name.clone(),
                generation: handle.generation,
                index: index_actor::peer(&handle.actor),
                stored,
                dirty,
            });
        }
        if let Some(w) = warning {
            names.warnings.insert(name.clone(), w);
        }
        names.live.insert(name, handle.clone());
        Ok(handle)
    }

    /// Puts in an index a replica loaded (`replica`), in place of the one of that name it
    /// served until now, if any: searches already running finish on the old one, the next
    /// ones see the new one. Nothing is persisted (a replica has no persister).
    pub fn swap_in_followed(&self, loaded: Loaded) -> IndexHandle {
        let start = ActorStart {
            seq: loaded.seq,
            lsn: loaded.lsn,
            pending: Default::default(),
        };
        let handle = self.start(loaded.index, start);
        let mut names = self.names();
        if let Some(old) = names.live.insert(handle.name.clone(), handle.clone()) {
            old.actor.do_send(DropIndex);
        }
        handle
    }

    /// Takes out an index whose primary deleted it (a replica); its cache files go too.
    pub fn drop_followed(&self, name: &str) {
        let old = self.names().live.remove(name);
        if let Some(old) = old {
            old.actor.do_send(DropIndex);
            if let Some(root) = self.engine.cache_root {
                crate::index::disk_cache::remove_index(root, name);
            }
            log::info!("index {name:?} deleted by the primary: no longer served");
        }
    }

    /// A problem found while loading index `name` that did not stop it from loading (a
    /// log replay cut short), for `/health`.
    pub fn load_warnings(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .names()
            .warnings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.sort();
        out
    }

    fn start(&self, index: Index, start: ActorStart) -> IndexHandle {
        let index = Arc::new(index);
        let name = index.params().name.clone();
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (n, i, p, idle) = (
            name.clone(),
            index.clone(),
            self.persister.clone().map(Addr::recipient),
            self.idle_seal,
        );
        let actor = IndexActor::start_in_arbiter(&self.arbiter, move |_| {
            IndexActor::new(n, generation, i, p, idle, start)
        });
        IndexHandle {
            name,
            generation,
            index,
            actor,
            pending_writes: Default::default(),
        }
    }

    pub fn get(&self, name: &str) -> Option<IndexHandle> {
        self.names().live.get(name).cloned()
    }

    /// Every index, sorted by name.
    pub fn list(&self) -> Vec<IndexHandle> {
        let sorted: BTreeMap<String, IndexHandle> = self
            .names()
            .live
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        sorted.into_values().collect()
    }

    pub fn len(&self) -> usize {
        self.names().live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Deletes an index, or the stored copy of one that failed to load. At once: the name
    /// leaves the live map (new requests get 404) and is reserved; the actor is told to
    /// stop after the mutation in progress; the persister is told to remove the stored
    /// copy. All three happen before this returns its future, so dropping the future (a
    /// client that hangs up, a graceful stop) cannot cut the sequence short.
    ///
    /// The future answers `Ok` once the stored copy is removed (the name is free again and
    /// the index cannot come back after a restart), or `StorageUnavailable` when the first
    /// removal attempt failed: the removal is then retried in the background, and the name
    /// stays reserved until it succeeds.
    pub fn delete(
        self: &Arc<Self>,
        name: &str,
    ) -> impl Future<Output = Result<(), IndexError>> + 'static {
        let registry = self.clone();
        let name = name.to_string();
        let started = self.start_delete(&name);
        async move {
            let (generation, first, removed) = started?;
            let Some(first) = first else {
                registry.finish_delete(&name, generation);
                return Ok(());
            };
            // Whatever happens to this future, the reservation ends once the removal is
            // durable.
            let background = registry.clone();
            let bg_name = name.clone();
            actix_rt::spawn(async move {
                if removed.await.is_ok() {
                    background.finish_delete(&bg_name, generation);
                }
            });
            let outcome = first.await.unwrap_or_else(|_| {
                Err(IndexError::StorageUnavailable(
                    "the persister stopped before removing the stored copy".into(),
                ))
            });
            if outcome.is_ok() {
                // Before the client hears 204: a create right after must find the name free.
                registry.finish_delete(&name, generation);
            }
            outcome
        }
    }

    /// The synchronous half of `delete`: the name changes state and the messages are sent.
    #[allow(clippy::type_complexity)]
    fn start_delete(
        &self,
        name: &str,
    ) -> Result<
        (
            u64,
            Option<oneshot::Receiver<Result<(), IndexError>>>,
            oneshot::Receiver<()>,
        ),
        IndexError,
    > {
        let mut names = self.names();
        let doomed = if let Some(handle) = names.live.remove(name) {
            Doomed::Index(handle)
        } else if names.failed.contains_key(name) && !names.deleting.contains_key(name) {
            Doomed::StoredCopy
        } else {
            return Err(IndexError::IndexNotFound(name.to_string()));
        };
        let generation = match &doomed {
            Doomed::Index(h) => h.generation,
            Doomed::StoredCopy => self.next_generation.fetch_add(1, Ordering::Relaxed),
        };
        names.deleting.insert(name.to_string(), generation);
        drop(names);
        match &doomed {
            Doomed::Index(handle) => {
                handle.actor.do_send(DropIndex);
                // Mapped files stay readable until their segments are dropped.
                if let Some(root) = self.engine.cache_root {
                    crate::index::disk_cache::remove_index(root, name);
                }
                log::info!(
                    "index {name:?} deleted ({} items)",
                    handle.index.stats().count
                );
            }
            Doomed::StoredCopy => {
                log::info!("index {name:?}: removing the stored copy that failed to load")
            }
        }
        let (tx, rx) = oneshot::channel();
        let first = self.persister.as_ref().map(|p| {
            let (first_tx, first_rx) = oneshot::channel();
            p.do_send(Forget {
                name: name.to_string(),
                generation,
                first_attempt: first_tx,
                removed: tx,
            });
            first_rx
        });
        Ok((generation, first, rx))
    }

    /// Ends the reservation of a delete (once its removal is durable).
    fn finish_delete(&self, name: &str, generation: u64) {
        let mut names = self.names();
        if names.deleting.get(name) == Some(&generation) {
            names.deleting.remove(name);
            names.failed.remove(name);
            names.warnings.remove(name);
        }
    }

    /// Records a stored index that failed to load; the name is reserved meanwhile.
    pub fn record_failure(&self, failure: LoadFailure) {
        self.names().failed.insert(failure.name.clone(), failure);
    }

    /// Whether a load failure is still recorded for `name` (not loaded, not deleted).
    pub fn has_failure(&self, name: &str) -> bool {
        self.names().failed.contains_key(name)
    }

    /// Persisted indexes that failed to load, sorted by name.
    pub fn failures(&self) -> Vec<LoadFailure> {
        let mut out: Vec<LoadFailure> = self.names().failed.values().cloned().collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

impl Names {
    fn check_free(&self, name: &str) -> Result<(), IndexError> {
        if self.live.contains_key(name) {
            return Err(IndexError::IndexExists(name.to_string()));
        }
        if self.deleting.contains_key(name) {
            return Err(IndexError::NameUnavailable {
                code: "index_deleting",
                message: format!(
                    "index {name:?} is being deleted and its stored copy is not removed yet; \
                     try again once DELETE /vectors/index/{name} answers 204"
                ),
            });
        }
        if let Some(f) = self.failed.get(name) {
            return Err(IndexError::NameUnavailable {
                code: "index_load_failed",
                message: format!(
                    "a stored index {name:?} exists ({}) but could not be loaded: {}; \
                     repair the file, or DELETE /vectors/index/{name} to remove it",
                    f.key, f.error
                ),
            });
        }
        Ok(())
    }
}
