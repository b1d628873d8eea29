//! One vector index, without actors or HTTP: its graph, the tables that map graph points to
//! items (id, vector, metadata), tombstones, search, and compaction.
//!
//! Concurrency contract: searches and reads may run from any thread at any time. Mutations
//! (`add`, `delete`, `compact`, `snapshot`) must be serialized by the caller — the index
//! actor does that — because `hnsw_rs` cannot dump while inserting and a compaction must
//! not miss a concurrent write. One `RwLock` guards the tables and the current graph
//! together, so a search always sees a graph and tables that belong to each other; writers
//! hold it only to append or flip entries, never while the graph works.

pub mod graph;
pub mod params;

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::{Map, Value};

use crate::codec::{self, Envelope, ItemRecord};
use crate::distance::Metric;
use graph::{Graph, GraphDump};
pub use params::{IndexParams, NewItem};

/// Below this many candidates a search scans them all: exact, and as fast as the graph.
const BRUTE_FORCE_MAX: usize = 1024;

/// An index: parameters plus state behind one lock.
pub struct Index {
    params: IndexParams,
    state: RwLock<State>,
}

/// Everything that changes, kept together so that readers see one consistent version.
struct State {
    graph: Arc<Graph>,
    /// Item id of each point; empty once the point is tombstoned.
    ids: Vec<String>,
    /// Metadata of each point; emptied once the point is tombstoned.
    metadata: Vec<Map<String, Value>>,
    /// False for tombstoned points (deleted or replaced ids), which the graph still holds.
    live: Vec<bool>,
    /// All vectors, `dim` values per point, as stored (unit length under cosine).
    vectors: Vec<f32>,
    /// Live item id → point.
    by_id: HashMap<String, usize>,
    tombstones: usize,
}

/// What an `add` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddOutcome {
    pub added: usize,
    pub count: usize,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub distance: f32,
    pub metadata: Map<String, Value>,
}

/// A stored item, as `GET .../items/{id}` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    pub vector: Vec<f32>,
    pub metadata: Map<String, Value>,
}

/// Sizes for `/health`, the index info and metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct IndexStats {
    pub count: usize,
    pub points: usize,
    pub tombstones: usize,
    /// Rough resident size: vectors, tables and graph links.
    pub memory_bytes: usize,
}

impl Index {
    pub fn new(params: IndexParams) -> Index {
        let graph = Graph::new(params.distance, params.m, params.ef_construction, 0);
        Index {
            state: RwLock::new(State::empty(Arc::new(graph))),
            params,
        }
    }

    pub fn params(&self) -> &IndexParams {
        &self.params
    }

    // A panic while a lock is held (none is expected: all input is checked first) must
    // not make the index unusable for good: the tables are only changed by code that
    // cannot panic halfway, so the data behind a poisoned lock is still consistent.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self) -> IndexStats {
        let s = self.read();
        let points = s.live.len();
        let dim = self.params.dim;
        // Per point: the vector twice (ours and the graph's copy), about 2·m links of
        // ~40 bytes in `hnsw_rs` at layer 0, and the id and metadata tables.
        let per_point = 2 * dim * 4 + 2 * self.params.m * 40 + 96;
        IndexStats {
            count: s.by_id.len(),
            points,
            tombstones: s.tombstones,
            memory_bytes: points * per_point,
        }
    }

    /// Adds a checked batch (see `IndexParams::check_items`): new ids are inserted, known
    /// ids replaced. Must not run concurrently with another mutation.
    pub fn add(&self, items: Vec<NewItem>) -> AddOutcome {
        let added = items.len();
        let mut vectors = Vec::with_capacity(added);
        let (graph, first_point, count) = {
            let mut s = self.write();
            let first_point = s.live.len();
            s.vectors.reserve(added * self.params.dim);
            for item in items {
                if let Some(old) = s.by_id.remove(&item.id) {
                    s.tombstone(old);
                }
                let point = s.live.len();
                s.vectors.extend_from_slice(&item.vector);
                s.by_id.insert(item.id.clone(), point);
                s.ids.push(item.id);
                s.metadata.push(item.metadata);
                s.live.push(true);
                vectors.push(item.vector);
            }
            (s.graph.clone(), first_point, s.by_id.len())
        };
        // The slow part runs without the lock: searches go on, and they cannot see the
        // new points in the graph until they are linked in.
        let points: Vec<(&[f32], usize)> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (v.as_slice(), first_point + i))
            .collect();
        graph.insert(&points);
        AddOutcome { added, count }
    }

    /// Tombstones an item; false when the id is not there.
    pub fn delete(&self, id: &str) -> bool {
        let mut s = self.write();
        match s.by_id.remove(id) {
            Some(point) => {
                s.tombstone(point);
                true
            }
            None => false,
        }
    }

    pub fn get(&self, id: &str) -> Option<Item> {
        let s = self.read();
        let &point = s.by_id.get(id)?;
        Some(Item {
            id: id.to_string(),
            vector: s.vector(point, self.params.dim).to_vec(),
            metadata: s.metadata[point].clone(),
        })
    }

    /// True when tombstones make up at least `ratio` of the graph's points.
    pub fn needs_compaction(&self, ratio: f64) -> bool {
        let s = self.read();
        s.tombstones >= 64 && s.tombstones as f64 >= ratio * s.live.len() as f64
    }

    /// The `k` live items nearest to `query` (checked, and normalized under cosine) that
    /// match every pair of `filter`, nearest first, ties by id.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&Map<String, Value>>,
    ) -> Vec<Hit> {
        let s = self.read();
        let dim = self.params.dim;
        let live_count = s.by_id.len();
        if live_count == 0 {
            return Vec::new();
        }
        let points: Vec<usize> = match filter.filter(|f| !f.is_empty()) {
            Some(filter) => {
                let allowed: Vec<usize> = (0..s.live.len())
                    .filter(|&p| s.live[p] && matches(&s.metadata[p], filter))
                    .collect();
                // A small allowed set is scanned: the graph walk would visit mostly
                // excluded points (hnsw_rs' filtered search never stops early).
                if allowed.len() <= BRUTE_FORCE_MAX || allowed.len() * 10 <= live_count {
                    return s.exact(&self.params, query, k, allowed.into_iter());
                }
                let mut mask = vec![false; s.live.len()];
                allowed.iter().for_each(|&p| mask[p] = true);
                s.graph_search(
                    query,
                    k,
                    ef,
                    allowed.len(),
                    Some(&|p: usize| mask.get(p).copied().unwrap_or(false)),
                )
            }
            None if live_count <= BRUTE_FORCE_MAX => {
                let all = (0..s.live.len()).filter(|&p| s.live[p]);
                return s.exact(&self.params, query, k, all);
            }
            None if s.tombstones == 0 => s.graph_search(query, k, ef, live_count, None),
            None => {
                let live = &s.live;
                s.graph_search(
                    query,
                    k,
                    ef,
                    live_count,
                    Some(&|p: usize| live.get(p).copied().unwrap_or(false)),
                )
            }
        };
        match points {
            // The graph could not find enough (heavily filtered, or points still being
            // linked in): fall back to an exact scan so `k` live matches still come back.
            found if found.len() < k.min(live_count) && filter.is_some_and(|f| !f.is_empty()) => {
                let f = filter.cloned().unwrap_or_default();
                let allowed =
                    (0..s.live.len()).filter(|&p| s.live[p] && matches(&s.metadata[p], &f));
                s.exact(&self.params, query, k, allowed)
            }
            found => s.hits(&self.params, query, k, found.into_iter(), dim),
        }
    }

    /// Rebuilds the graph from the live points only, dropping tombstones; searches keep
    /// using the old graph until the new one is swapped in. Must not run concurrently with
    /// another mutation. Returns the number of tombstones dropped.
    pub fn compact(&self) -> usize {
        let dim = self.params.dim;
        let mut fresh = {
            let s = self.read();
            let mut fresh = State::empty(Arc::new(Graph::new(
                self.params.distance,
                self.params.m,
                self.params.ef_construction,
                s.by_id.len(),
            )));
            fresh.vectors.reserve(s.by_id.len() * dim);
            for p in (0..s.live.len()).filter(|&p| s.live[p]) {
                let point = fresh.live.len();
                fresh.vectors.extend_from_slice(s.vector(p, dim));
                fresh.by_id.insert(s.ids[p].clone(), point);
                fresh.ids.push(s.ids[p].clone());
                fresh.metadata.push(s.metadata[p].clone());
                fresh.live.push(true);
            }
            fresh
        };
        let points: Vec<(&[f32], usize)> = (0..fresh.live.len())
            .map(|p| (fresh.vector(p, dim), p))
            .collect();
        fresh.graph.insert(&points);
        drop(points);
        let mut s = self.write();
        let dropped = s.tombstones;
        std::mem::swap(&mut *s, &mut fresh);
        dropped
    }

    /// Encodes the index as one LHV1 object. Must not run concurrently with another
    /// mutation (the graph dump needs a still graph); searches go on meanwhile.
    pub fn snapshot(&self) -> Result<Vec<u8>, String> {
        let s = self.read();
        let dump = if s.graph.is_empty() {
            None
        } else {
            Some(s.graph.dump()?)
        };
        let items = (0..s.live.len())
            .filter(|&p| s.live[p])
            .map(|p| ItemRecord {
                point: p,
                id: s.ids[p].clone(),
                metadata: s.metadata[p].clone(),
            })
            .collect();
        let tombstones = (0..s.live.len()).filter(|&p| !s.live[p]).collect();
        let envelope = Envelope {
            format: codec::FORMAT_NAME.to_string(),
            version: codec::VERSION,
            params: self.params.clone(),
            points: s.live.len(),
            items,
            tombstones,
            graph: None,
        };
        drop(s);
        codec::encode(envelope, dump.as_ref())
    }

    /// Restores an index from a decoded LHV1 object, checking that envelope and graph agree.
    pub fn restore(envelope: Envelope, graph: Option<GraphDump>) -> Result<Index, String> {
        let params = envelope.params;
        params
            .check()
            .map_err(|e| format!("bad index parameters: {e}"))?;
        let dim = params.dim;
        let n = envelope.points;
        let graph = match graph {
            Some(dump) => Graph::load(params.distance, &dump)?,
            None if n == 0 => Graph::new(params.distance, params.m, params.ef_construction, 0),
            None => return Err(format!("{n} points but no graph")),
        };
        if graph.len() != n {
            return Err(format!(
                "envelope lists {n} points, graph holds {}",
                graph.len()
            ));
        }
        let mut state = State::empty(Arc::new(Graph::new(params.distance, 2, 1, 0)));
        state.vectors = vec![0.0; n * dim];
        let mut seen = vec![false; n];
        let mut bad = None;
        graph.for_each_point(|p, v| {
            if p >= n || v.len() != dim || seen[p] {
                bad.get_or_insert(format!(
                    "graph point {p} (dim {}) does not fit {n} points of dim {dim}",
                    v.len()
                ));
                return;
            }
            seen[p] = true;
            state.vectors[p * dim..(p + 1) * dim].copy_from_slice(v);
        });
        if let Some(bad) = bad {
            return Err(bad);
        }
        state.ids = vec![String::new(); n];
        state.metadata = vec![Map::new(); n];
        state.live = vec![false; n];
        for item in envelope.items {
            let p = item.point;
            if p >= n || state.live[p] || !seen[p] {
                return Err(format!(
                    "item {:?} has a bad or repeated point {p}",
                    item.id
                ));
            }
            if state.by_id.insert(item.id.clone(), p).is_some() {
                return Err(format!("item id {:?} appears twice", item.id));
            }
            state.live[p] = true;
            state.ids[p] = item.id;
            state.metadata[p] = item.metadata;
        }
        for p in envelope.tombstones {
            if p >= n || state.live[p] {
                return Err(format!("tombstone {p} is out of range or live"));
            }
            state.tombstones += 1;
        }
        if state.by_id.len() + state.tombstones != n {
            return Err(format!(
                "{} items and {} tombstones do not cover {n} points",
                state.by_id.len(),
                state.tombstones
            ));
        }
        state.graph = Arc::new(graph);
        Ok(Index {
            params,
            state: RwLock::new(state),
        })
    }

    /// Neighbour lists of the graph (for tests of the exact round trip).
    pub fn neighbour_lists(&self) -> Vec<(usize, Vec<Vec<usize>>)> {
        self.read().graph.neighbour_lists()
    }
}

impl State {
    fn empty(graph: Arc<Graph>) -> State {
        State {
            graph,
            ids: Vec::new(),
            metadata: Vec::new(),
            live: Vec::new(),
            vectors: Vec::new(),
            by_id: HashMap::new(),
            tombstones: 0,
        }
    }

    fn vector(&self, point: usize, dim: usize) -> &[f32] {
        &self.vectors[point * dim..(point + 1) * dim]
    }

    fn tombstone(&mut self, point: usize) {
        self.live[point] = false;
        self.ids[point] = String::new();
        self.metadata[point] = Map::new();
        self.tombstones += 1;
    }

    /// Graph search, widening `ef` until `k` allowed points come back or the graph has
    /// been searched as wide as it is.
    fn graph_search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allowed_count: usize,
        allowed: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<usize> {
        let want = k.min(allowed_count);
        let total = self.graph.len().max(1);
        let mut ef = ef.max(k);
        loop {
            let found = self.graph.search(query, k, ef, allowed);
            let known = found
                .into_iter()
                .map(|(p, _)| p)
                .filter(|&p| p < self.live.len() && self.live[p]);
            let found: Vec<usize> = known.collect();
            if found.len() >= want || ef >= total {
                return found;
            }
            ef = (ef * 4).min(total);
        }
    }

    /// Exact search over the given points.
    fn exact(
        &self,
        params: &IndexParams,
        query: &[f32],
        k: usize,
        points: impl Iterator<Item = usize>,
    ) -> Vec<Hit> {
        self.hits(params, query, k, points, params.dim)
    }

    /// Scores points with the reported distance, keeps the best `k`, sorted by distance
    /// then id.
    fn hits(
        &self,
        params: &IndexParams,
        query: &[f32],
        k: usize,
        points: impl Iterator<Item = usize>,
        dim: usize,
    ) -> Vec<Hit> {
        let metric: Metric = params.distance;
        let mut scored: Vec<(f32, usize)> = points
            .map(|p| (metric.reported(query, self.vector(p, dim)), p))
            .collect();
        let by_distance_then_id = |a: &(f32, usize), b: &(f32, usize)| {
            a.0.total_cmp(&b.0)
                .then_with(|| self.ids[a.1].cmp(&self.ids[b.1]))
        };
        if scored.len() > k {
            scored.select_nth_unstable_by(k - 1, by_distance_then_id);
            scored.truncate(k);
        }
        scored.sort_by(by_distance_then_id);
        scored
            .into_iter()
            .map(|(distance, p)| Hit {
                id: self.ids[p].clone(),
                distance,
                metadata: self.metadata[p].clone(),
            })
            .collect()
    }
}

/// True when `metadata` holds every key of `filter` with exactly that value.
pub fn matches(metadata: &Map<String, Value>, filter: &Map<String, Value>) -> bool {
    filter
        .iter()
        .all(|(key, want)| metadata.get(key) == Some(want))
}

#[cfg(test)]
mod tests;
