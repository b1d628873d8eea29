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
use graph::{Graph, GraphDump, GraphPoint};
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
    /// False for tombstoned points (deleted or replaced ids), which the graph still holds,
    /// and for points of a batch still being inserted.
    live: Vec<bool>,
    /// Each point as the graph stores it (vector included); `None` while its batch is
    /// being inserted. The graph's copy is the only copy of a vector.
    points: Vec<Option<GraphPoint>>,
    /// Live item id → point.
    by_id: HashMap<String, usize>,
    tombstones: usize,
}

/// A new graph built from the live points of an earlier moment (see `plan_compaction`).
pub struct CompactionPlan {
    graph: Graph,
    /// Old point number of each new point, in order.
    kept: Vec<usize>,
    /// Points that existed when the plan was made.
    watermark: usize,
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
        // Per point in `hnsw_rs`: the vector, about 2·m links at layer 0 of ~40 bytes each
        // (an allocation per link), 16 per-layer lists; plus our id and metadata tables.
        let per_point = dim * 4 + 2 * self.params.m * 40 + 16 * 24 + 128;
        IndexStats {
            count: s.by_id.len(),
            points,
            tombstones: s.tombstones,
            memory_bytes: points * per_point,
        }
    }

    /// Adds a checked batch (see `IndexParams::check_items`): new ids are inserted, known
    /// ids replaced. The whole batch becomes visible at once, when it is linked into the
    /// graph; until then searches and reads see the index as it was. Must not run
    /// concurrently with another mutation.
    pub fn add(&self, items: Vec<NewItem>) -> AddOutcome {
        let added = items.len();
        // Reserve point numbers; the points stay hidden (not live) for now.
        let (graph, first) = {
            let mut s = self.write();
            let first = s.live.len();
            let n = first + added;
            s.ids.resize(n, String::new());
            s.metadata.resize(n, Map::new());
            s.live.resize(n, false);
            s.points.resize(n, None);
            (s.graph.clone(), first)
        };
        // The slow part runs without the lock, so searches go on.
        let before = graph.layer_sizes();
        let batch: Vec<(&[f32], usize)> = items
            .iter()
            .enumerate()
            .map(|(i, item)| (item.vector.as_slice(), first + i))
            .collect();
        graph.insert(&batch);
        drop(batch);
        let new_points = graph.points_since(&before);
        // Publish the batch in one step.
        let mut s = self.write();
        for point in new_points {
            let p = point.get_origin_id();
            if let Some(slot) = s.points.get_mut(p) {
                *slot = Some(point);
            }
        }
        for (i, item) in items.into_iter().enumerate() {
            let p = first + i;
            if let Some(old) = s.by_id.insert(item.id.clone(), p) {
                s.tombstone(old);
            }
            s.ids[p] = item.id;
            s.metadata[p] = item.metadata;
            s.live[p] = s.points[p].is_some();
        }
        AddOutcome {
            added,
            count: s.by_id.len(),
        }
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
            vector: s.vector(point)?.to_vec(),
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
        let metric = self.params.distance;
        let live_count = s.by_id.len();
        if live_count == 0 {
            return Vec::new();
        }
        let filter = filter.filter(|f| !f.is_empty());
        let allowed: Option<Vec<usize>> = filter.map(|f| {
            (0..s.live.len())
                .filter(|&p| s.live[p] && matches(&s.metadata[p], f))
                .collect()
        });
        let candidates = allowed.as_ref().map_or(live_count, |a| a.len());
        // A small candidate set is scanned exactly: as fast as the graph, and under a
        // narrow filter the graph walk would visit mostly excluded points (hnsw_rs'
        // filtered search never stops early).
        if candidates <= BRUTE_FORCE_MAX || candidates * 10 <= live_count {
            return match allowed {
                Some(a) => s.exact(metric, query, k, a.into_iter()),
                None => s.exact(metric, query, k, (0..s.live.len()).filter(|&p| s.live[p])),
            };
        }
        let found = match &allowed {
            Some(a) => {
                let mut mask = vec![false; s.live.len()];
                a.iter().for_each(|&p| mask[p] = true);
                let allow = |p: usize| mask.get(p).copied().unwrap_or(false);
                s.graph_search(metric, query, k, ef, candidates, Some(&allow))
            }
            // Every point of the graph is live: no filter needed.
            None if live_count == s.live.len() => {
                s.graph_search(metric, query, k, ef, candidates, None)
            }
            None => {
                let allow = |p: usize| s.live.get(p).copied().unwrap_or(false);
                s.graph_search(metric, query, k, ef, candidates, Some(&allow))
            }
        };
        if found.len() < k.min(candidates) {
            // The graph could not reach enough matches even searched wide: scan exactly,
            // so that `k` live matches still come back.
            return match allowed {
                Some(a) => s.exact(metric, query, k, a.into_iter()),
                None => s.exact(metric, query, k, (0..s.live.len()).filter(|&p| s.live[p])),
            };
        }
        s.hits(k, found)
    }

    /// Rebuilds the graph without its tombstones in one go (`plan_compaction` then
    /// `finish_compaction`). Returns the number of tombstones dropped.
    pub fn compact(&self) -> usize {
        let plan = self.plan_compaction();
        self.finish_compaction(plan)
    }

    /// The slow half of a compaction: builds a new graph of the points live now. Holds no
    /// lock while building, so searches go on and so may mutations (the index actor lets
    /// them through); `finish_compaction` catches up with what they did.
    pub fn plan_compaction(&self) -> CompactionPlan {
        let (kept, vectors, watermark) = {
            let s = self.read();
            let kept: Vec<usize> = (0..s.live.len())
                .filter(|&p| s.live[p] && s.points[p].is_some())
                .collect();
            let vectors: Vec<GraphPoint> =
                kept.iter().filter_map(|&p| s.points[p].clone()).collect();
            // Points of a batch still being inserted sit after every kept point.
            let watermark = kept.last().map_or(0, |p| p + 1);
            (kept, vectors, watermark)
        };
        let graph = Graph::new(
            self.params.distance,
            self.params.m,
            self.params.ef_construction,
            kept.len(),
        );
        let batch: Vec<(&[f32], usize)> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (v.get_v(), i))
            .collect();
        graph.insert(&batch);
        CompactionPlan {
            graph,
            kept,
            watermark,
        }
    }

    /// The quick half: links in the points added since the plan was made, drops the ones
    /// deleted or replaced since, and swaps the new graph in. Must not run concurrently
    /// with another mutation.
    pub fn finish_compaction(&self, plan: CompactionPlan) -> usize {
        let CompactionPlan {
            graph,
            kept,
            watermark,
        } = plan;
        // Points added after the plan (old numbers from the watermark on) get new numbers
        // after the kept ones.
        let (added, dropped) = {
            let s = self.read();
            let added: Vec<(usize, GraphPoint)> = (watermark..s.live.len())
                .filter(|&p| s.live[p])
                .filter_map(|p| Some((p, s.points[p].clone()?)))
                .collect();
            (added, s.tombstones)
        };
        let base = kept.len();
        let batch: Vec<(&[f32], usize)> = added
            .iter()
            .enumerate()
            .map(|(i, (_, v))| (v.get_v(), base + i))
            .collect();
        graph.insert(&batch);
        drop(batch);
        let old_of: Vec<usize> = kept
            .into_iter()
            .chain(added.iter().map(|(p, _)| *p))
            .collect();
        drop(added);

        let mut fresh = State::empty(Arc::new(Graph::new(self.params.distance, 2, 1, 0)));
        fresh.points = vec![None; old_of.len()];
        for point in graph.points_since(&[]) {
            let p = point.get_origin_id();
            if p < fresh.points.len() {
                fresh.points[p] = Some(point);
            }
        }
        fresh.graph = Arc::new(graph);
        let mut s = self.write();
        fresh.live = vec![false; old_of.len()];
        fresh.ids = vec![String::new(); old_of.len()];
        fresh.metadata = vec![Map::new(); old_of.len()];
        for (new, &old) in old_of.iter().enumerate() {
            if s.live[old] && fresh.points[new].is_some() {
                fresh.live[new] = true;
                fresh.ids[new] = std::mem::take(&mut s.ids[old]);
                fresh.metadata[new] = std::mem::take(&mut s.metadata[old]);
                fresh.by_id.insert(fresh.ids[new].clone(), new);
            } else {
                // deleted or replaced while the new graph was being built
                fresh.tombstones += 1;
            }
        }
        std::mem::swap(&mut *s, &mut fresh);
        dropped.saturating_sub(s.tombstones)
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
        state.points = vec![None; n];
        for point in graph.points_since(&[]) {
            let p = point.get_origin_id();
            let v = point.get_v();
            if p >= n || v.len() != dim || state.points[p].is_some() {
                return Err(format!(
                    "graph point {p} (dim {}) does not fit {n} points of dim {dim}",
                    v.len()
                ));
            }
            state.points[p] = Some(point);
        }
        state.ids = vec![String::new(); n];
        state.metadata = vec![Map::new(); n];
        state.live = vec![false; n];
        for item in envelope.items {
            let p = item.point;
            if p >= n || state.live[p] || state.points[p].is_none() {
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
            points: Vec::new(),
            by_id: HashMap::new(),
            tombstones: 0,
        }
    }

    /// The vector of a point, once its batch is linked in.
    fn vector(&self, point: usize) -> Option<&[f32]> {
        self.points.get(point)?.as_ref().map(|p| p.get_v())
    }

    fn tombstone(&mut self, point: usize) {
        self.live[point] = false;
        self.ids[point] = String::new();
        self.metadata[point] = Map::new();
        self.tombstones += 1;
    }

    /// Graph search, widening `ef` until `k` allowed points come back or the graph has
    /// been searched as wide as it is. Returns live points with their API distances.
    fn graph_search(
        &self,
        metric: Metric,
        query: &[f32],
        k: usize,
        ef: usize,
        allowed_count: usize,
        allowed: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<(f32, usize)> {
        let want = k.min(allowed_count);
        let total = self.graph.len().max(1);
        let mut ef = ef.max(k);
        loop {
            let found: Vec<(f32, usize)> = self
                .graph
                .search(query, k, ef, allowed)
                .into_iter()
                .filter(|&(p, _)| self.live.get(p).copied().unwrap_or(false))
                .map(|(p, d)| (metric.from_graph(d), p))
                .collect();
            if found.len() >= want || ef >= total {
                return found;
            }
            ef = (ef * 4).min(total);
        }
    }

    /// Exact search over the given points.
    fn exact(
        &self,
        metric: Metric,
        query: &[f32],
        k: usize,
        points: impl Iterator<Item = usize>,
    ) -> Vec<Hit> {
        let scored = points
            .filter_map(|p| Some((metric.reported(query, self.vector(p)?), p)))
            .collect();
        self.hits(k, scored)
    }

    /// Keeps the best `k` of scored points, sorted by distance then id.
    fn hits(&self, k: usize, mut scored: Vec<(f32, usize)>) -> Vec<Hit> {
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
