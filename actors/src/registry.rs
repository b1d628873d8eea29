//! The registry: index name → the index and its actor. The HTTP front looks names up here
//! and routes each request to that index's own actor (mutations) or to the shared index
//! (searches and reads), so a flood of writes to one index never queues requests for
//! another.
//!
//! Create and delete take the map's lock for the whole check-and-change, so a create and a
//! delete of the same name racing each other end in one of the two orders, never in a mix.
//! Each index gets a generation number, so that the persister can tell a deleted index
//! from a newer one of the same name.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use actix::prelude::*;

use crate::error::IndexError;
use crate::index::{Index, IndexParams};
use crate::index_actor::IndexActor;
use crate::messages::{DropIndex, Forget};
use crate::persister::Persister;

/// What the front needs to serve one index.
#[derive(Clone)]
pub struct IndexHandle {
    pub name: String,
    pub generation: u64,
    /// For searches and reads, which run beside the actor.
    pub index: Arc<Index>,
    /// For mutations, which the actor applies one at a time.
    pub actor: Addr<IndexActor>,
}

/// A persisted index that could not be loaded at start-up; its file is left in place.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    pub name: String,
    pub key: String,
    pub error: String,
}

pub struct Registry {
    indexes: Mutex<HashMap<String, IndexHandle>>,
    failures: Mutex<Vec<LoadFailure>>,
    next_generation: AtomicU64,
    /// None in ephemeral mode.
    persister: Option<Addr<Persister>>,
    /// Where index actors run.
    arbiter: ArbiterHandle,
    compact_ratio: f64,
}

impl Registry {
    pub fn new(
        persister: Option<Addr<Persister>>,
        arbiter: ArbiterHandle,
        compact_ratio: f64,
    ) -> Registry {
        Registry {
            indexes: Mutex::new(HashMap::new()),
            failures: Mutex::new(Vec::new()),
            next_generation: AtomicU64::new(1),
            persister,
            arbiter,
            compact_ratio,
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, IndexHandle>> {
        self.indexes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_persistent(&self) -> bool {
        self.persister.is_some()
    }

    pub fn persister(&self) -> Option<&Addr<Persister>> {
        self.persister.as_ref()
    }

    /// Creates an empty index; `IndexExists` when the name is taken.
    pub fn create(&self, params: IndexParams) -> Result<IndexHandle, IndexError> {
        params.check()?;
        let mut map = self.map();
        if map.contains_key(&params.name) {
            return Err(IndexError::IndexExists(params.name));
        }
        let handle = self.start(Index::new(params), true);
        map.insert(handle.name.clone(), handle.clone());
        log::info!(
            "index {:?} created: dim {}, {}, m {}, ef_construction {}, ef_search {}",
            handle.name,
            handle.index.params().dim,
            handle.index.params().distance.as_str(),
            handle.index.params().m,
            handle.index.params().ef_construction,
            handle.index.params().ef_search
        );
        Ok(handle)
    }

    /// Adds an index loaded from storage; refused when the name is taken meanwhile.
    pub fn insert_loaded(&self, index: Index) -> Result<IndexHandle, IndexError> {
        let mut map = self.map();
        let name = index.params().name.clone();
        if map.contains_key(&name) {
            return Err(IndexError::IndexExists(name));
        }
        let handle = self.start(index, false);
        map.insert(name, handle.clone());
        Ok(handle)
    }

    fn start(&self, index: Index, new_index: bool) -> IndexHandle {
        let index = Arc::new(index);
        let name = index.params().name.clone();
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (n, i, p, r) = (
            name.clone(),
            index.clone(),
            self.persister.clone(),
            self.compact_ratio,
        );
        let actor = IndexActor::start_in_arbiter(&self.arbiter, move |_| {
            IndexActor::new(n, generation, i, p, r, new_index)
        });
        IndexHandle {
            name,
            generation,
            index,
            actor,
        }
    }

    pub fn get(&self, name: &str) -> Option<IndexHandle> {
        self.map().get(name).cloned()
    }

    /// Every index, sorted by name.
    pub fn list(&self) -> Vec<IndexHandle> {
        let sorted: BTreeMap<String, IndexHandle> = self
            .map()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        sorted.into_values().collect()
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Deletes an index: at once from the map (new requests get 404 and the name is free
    /// again), then its actor finishes the mutation in progress and stops, then its stored
    /// copy is removed.
    pub async fn delete(&self, name: &str) -> Result<(), IndexError> {
        let handle = self
            .map()
            .remove(name)
            .ok_or_else(|| IndexError::IndexNotFound(name.to_string()))?;
        // An error only means the actor has stopped already.
        let _ = handle.actor.send(DropIndex).await;
        log::info!(
            "index {name:?} deleted ({} items)",
            handle.index.stats().count
        );
        if let Some(persister) = &self.persister {
            let forget = Forget {
                name: name.to_string(),
                generation: handle.generation,
            };
            match persister.send(forget).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    log::warn!("index {name:?}: stored copy not removed yet, retrying: {e}")
                }
                Err(e) => log::error!("index {name:?}: persister unreachable: {e}"),
            }
        }
        Ok(())
    }

    pub fn record_failure(&self, failure: LoadFailure) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(failure);
    }

    /// Persisted indexes that failed to load at start-up.
    pub fn failures(&self) -> Vec<LoadFailure> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
