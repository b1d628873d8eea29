//! One vector index, without actors or HTTP: a set of segments, as Qdrant and Milvus keep
//! theirs.
//!
//! - The **growing segment** takes every `add`: vectors appended to one flat array, ids,
//!   metadata. An `add` is acknowledged as soon as the batch is appended, and its items
//!   are searchable at once, by an exact scan of the segment.
//! - When it holds `seal_points` points (or the index has been idle a while), it is
//!   **frozen**: it stops changing and a new growing segment takes the writes. A frozen
//!   segment is still searched by scanning until its graph is built in the background.
//! - A **sealed** segment has a graph (built by `hnsw_rs`, copied into a flat layout) and is
//!   searched by our own beam search. Its points never change again; deletes and upserts
//!   only set bits in its tombstone set.
//! - In the background, frozen segments are sealed, small sealed segments are merged and
//!   segments with many tombstones rebuilt without them (`maintenance`). Each job builds
//!   without any lock and is swapped in atomically, so searches and writes go on.
//!
//! An id is live in at most one segment: adding an id tombstones its earlier copy, wherever
//! it is. Each segment finds ids through its own table; a lookup asks the segments in turn.
//!
//! Concurrency: searches and reads take the read lock for their whole run (every segment
//! they see belongs to the same moment); mutations take the write lock for as long as an
//! append or a bit flip takes, and builds none. Mutations must be serialized by the caller
//! (the index actor), so that jobs are planned and installed between two of them.

pub mod bitset;
pub mod build;
pub mod codes;
pub mod disk_cache;
mod documents;
pub mod field_index;
mod filter_cache;
pub mod hnsw;
mod ids;
pub mod insert;
mod items;
pub mod job_threads;
mod maintenance;
pub mod one_object;
pub mod persisted;
pub mod points;
pub mod scratch;
pub mod sealed;
mod search;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::{Map, Value};

use crate::codec::log::AddedItem;
use crate::error::IndexError;
use crate::filter::Filter;
pub use crate::params::{FieldKind, Fields, IndexParams, Limits, NewItem};
use bitset::BitSet;
pub use items::Page;
pub use maintenance::{Built, Job, JobKind, JobReport};
use points::Points;
use sealed::FlatGraph;
pub use search::{Rescore, DEFAULT_OVERSAMPLING};

/// How the engine shapes an index's segments; the same for every index of a process.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// The growing segment is frozen (then sealed) once it holds this many points.
    pub seal_points: usize,
    /// An `add` answers busy (503) when the points waiting to be sealed (growing and
    /// frozen) would pass this, so that memory cannot grow without limit when writes
    /// outrun graph builds.
    pub max_unsealed_points: usize,
    /// A sealed segment whose tombstones reach this share of its points is rebuilt.
    pub compact_ratio: f64,
    /// Size-tiered merging: when this many sealed segments are in one size tier (sizes
    /// within a factor of `merge_factor` of each other), they are merged into one.
    pub merge_factor: usize,
    /// Sealed segments of this many live points or more are not merged any more (only
    /// compacted alone).
    pub max_segment_points: usize,
    /// Limits on what clients send.
    pub limits: Limits,
    /// Where `on_disk` indexes keep their cache files (`vectord.cache_dir`), one directory
    /// per index; none: their vectors stay on the heap. A `&'static` (the configuration
    /// lives as long as the process) keeps this configuration `Copy`.
    pub cache_root: Option<&'static std::path::Path>,
    /// This process is a read replica. Its own seals take segment numbers that its
    /// primary's segments will have too, so a load maps only the cache files written from
    /// the stored objects it names (a primary's own seals are the segments it stores).
    pub replica: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            seal_points: 20_000,
            max_unsealed_points: 200_000,
            compact_ratio: 0.25,
            merge_factor: 4,
            max_segment_points: 2_000_000,
            limits: Limits::default(),
            cache_root: None,
            replica: false,
        }
    }
}

/// An index: parameters plus its segments behind one lock.
pub struct Index {
    params: IndexParams,
    config: EngineConfig,
    state: RwLock<State>,
    /// The sizes as of the last mutation, so that `/health`, `/metrics` and the index
    /// info never wait for the index's lock (a long search or a write can hold it).
    stats: Mutex<IndexStats>,
    /// Background jobs planned and not yet installed or given up.
    jobs: AtomicUsize,
    /// Points replayed from the log at start-up that are not sealed yet (lowered as seals
    /// install): they do not count against `max_unsealed_points`, so that a restart after
    /// a crash, which may bring back more than that to index again, does not make `add`
    /// busy until they are.
    replayed_backlog: AtomicUsize,
}

/// Every segment of the index, kept together so that readers see one consistent version.
struct State {
    growing: Growing,
    /// Frozen and sealed segments, oldest first.
    segments: Vec<Segment>,
    /// Number of the next segment.
    next_id: u64,
    /// The fields with a field index, as declared: every sealed segment gets their
    /// indexes (in the background for a segment sealed before a field was declared).
    fields: Fields,
}

/// The segment that takes new items.
struct Growing {
    id: u64,
    points: Points,
    deleted: BitSet,
    deleted_count: usize,
    /// Log sequence number of the first mutation whose items are here: the log objects
    /// from that one on are needed to rebuild the segment after a restart.
    first_lsn: Option<u64>,
}

/// A segment that no longer changes, but for its tombstones.
struct Segment {
    id: u64,
    points: Arc<Points>,
    /// None while frozen (searched by scanning); the graph once sealed.
    graph: Option<Arc<FlatGraph>>,
    deleted: BitSet,
    deleted_count: usize,
    /// A background job is working on it; no other job may take it. Atomic so that jobs
    /// are planned and given up under the read lock (only the index actor does either,
    /// one at a time), never waiting behind a long search.
    busy: AtomicBool,
    /// For a frozen segment: the log sequence number of its first mutation (see
    /// `Growing`); none once sealed (its points are then stored as a segment object).
    first_lsn: Option<u64>,
    /// Results of the filters searched last (sealed segments only).
    filters: filter_cache::FilterCache,
    /// Its field indexes (sealed segments only; see `field_index`).
    fields: Arc<field_index::FieldIndexes>,
    /// int8 codes of its vectors (sealed segments of a quantized index only; `codes`).
    codes: Option<Arc<codes::Codes>>,
}

/// Where a live item is.
#[derive(Debug, Clone, Copy)]
enum Loc {
    Growing(u32),
    /// Position in `State::segments`, point.
    Segment(usize, u32),
}

/// What an `add` did.
/// A checked batch, as its log record takes it.
pub fn log_items(items: &[NewItem]) -> Vec<AddedItem<'_>> {
    items
        .iter()
        .map(|i| AddedItem {
            id: &i.id,
            vector: &i.vector,
            metadata: &i.metadata,
            document: i.document.as_deref(),
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddOutcome {
    pub added: usize,
    pub count: usize,
    /// The growing segment was frozen by this add: a seal job is waiting.
    pub froze: bool,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub distance: f32,
    pub metadata: Map<String, Value>,
    /// The item's vector as stored, when the search asked for it (else empty).
    pub vector: Vec<f32>,
    /// The item's document, when the search asked for it and the item has one.
    pub document: Option<String>,
}

/// What a read copies of each item besides its id and metadata: vectors and documents
/// can be large, and are copied only when asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extras {
    pub vector: bool,
    pub document: bool,
}

/// A stored item, as `GET .../items/{id}` returns it (when read through `Extras`, its
/// vector and document only if asked for).
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    pub vector: Vec<f32>,
    pub metadata: Map<String, Value>,
    pub document: Option<String>,
}

/// Sizes for `/health`, the index info and metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct IndexStats {
    /// Live items.
    pub count: usize,
    /// Points in all segments, tombstoned ones included.
    pub points: usize,
    pub tombstones: usize,
    /// Bytes the index holds on the heap: vectors, ids, metadata, graphs, tombstones.
    pub memory_bytes: usize,
    /// Bytes of the cache files its sealed segments' vectors are mapped from (`on_disk`).
    pub disk_bytes: usize,
    /// Sealed segments (searched by graph).
    pub sealed_segments: usize,
    /// Points not yet in a sealed segment (growing and frozen; searched by scanning).
    pub unsealed_points: usize,
}

/// One segment, for tests and the index info.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub id: u64,
    pub points: usize,
    pub tombstones: usize,
    pub sealed: bool,
    pub growing: bool,
}

impl Index {
    pub fn new(params: IndexParams, config: EngineConfig) -> Index {
        let dim = params.dim;
        Index::from_state(
            params,
            config,
            State {
                growing: Growing::new(1, dim),
                segments: Vec::new(),
                next_id: 2,
                fields: Fields::new(),
            },
        )
    }

    fn from_state(params: IndexParams, config: EngineConfig, mut state: State) -> Index {
        // Codes a loaded segment did not store (written before its index was quantized, or
        // by a layout without them) are computed from its vectors: about a tenth of a
        // second per million 128-d vectors.
        if let Some(q) = params.quantization {
            let missing = |s: &&mut Segment| s.graph.is_some() && s.codes.is_none();
            for seg in state.segments.iter_mut().filter(missing) {
                let codes = codes::Codes::build(&seg.points, params.distance, q.quantile as f32);
                seg.codes = Some(Arc::new(codes));
            }
        }
        let stats = Mutex::new(state.stats());
        Index {
            params,
            config,
            state: RwLock::new(state),
            stats,
            jobs: AtomicUsize::new(0),
            replayed_backlog: AtomicUsize::new(0),
        }
    }

    pub fn params(&self) -> &IndexParams {
        &self.params
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The fields with a field index.
    pub fn fields(&self) -> Fields {
        self.read().fields.clone()
    }

    /// Declares more fields to index (see `params::merge_fields` for what is refused);
    /// returns every declared field. Segments sealed from now on get their indexes when
    /// sealed, the others from background jobs (`maintenance`). Must not run concurrently
    /// with another mutation.
    pub fn declare_fields(&self, more: &Fields) -> Result<Fields, IndexError> {
        let mut s = self.write();
        let all = crate::params::merge_fields(&s.fields, more)?;
        s.fields = all.clone();
        Ok(all)
    }

    /// Whether some sealed segment still lacks the index of a declared field.
    pub fn fields_pending(&self) -> bool {
        let s = self.read();
        s.segments
            .iter()
            .any(|seg| seg.graph.is_some() && !seg.fields.covers(&s.fields))
    }

    // A panic while a lock is held (none is expected: all input is checked first) must
    // not make the index unusable for good: the state is only changed by code that cannot
    // panic halfway, so the data behind a poisoned lock is still consistent.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The sizes as of the last mutation (never waits for the index's lock).
    pub fn stats(&self) -> IndexStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the sizes after a mutation (called with the write lock held), or after a
    /// filtered search (whose segments may have remembered a filter's result). Computed
    /// under the stats lock, so that the last to record saw every change before it.
    fn refresh_stats(&self, s: &State) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        *stats = s.stats();
    }

    /// Whether background jobs (seals, merges, compactions) are under way or due. Due
    /// counts too: between one job's install and the next one's start, no job runs.
    pub fn indexing(&self) -> bool {
        self.jobs.load(Ordering::Relaxed) > 0 || self.work_due()
    }

    /// Every segment, oldest first, the growing one last.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let s = self.read();
        let mut out: Vec<SegmentInfo> = s
            .segments
            .iter()
            .map(|seg| SegmentInfo {
                id: seg.id,
                points: seg.points.len(),
                tombstones: seg.deleted_count,
                sealed: seg.graph.is_some(),
                growing: false,
            })
            .collect();
        out.push(SegmentInfo {
            id: s.growing.id,
            points: s.growing.points.len(),
            tombstones: s.growing.deleted_count,
            sealed: false,
            growing: true,
        });
        out
    }

    /// Adds a checked batch (see `IndexParams::check_items`): new ids are appended to the
    /// growing segment, known ids replaced (their old copy tombstoned). The whole batch
    /// becomes visible at once. Refused with `Busy` while too many points wait to be sealed.
    /// `lsn` is the mutation's log sequence number. Must not run concurrently with another
    /// mutation.
    pub fn add(&self, items: Vec<NewItem>, lsn: u64) -> Result<AddOutcome, IndexError> {
        self.add_inner(items, lsn, true)
    }

    /// `add` for a batch replayed from the log at start-up: never refused as busy.
    pub(crate) fn add_inner(
        &self,
        items: Vec<NewItem>,
        lsn: u64,
        back_pressure: bool,
    ) -> Result<AddOutcome, IndexError> {
        let added = items.len();
        let mut s = self.write();
        let unsealed = s.unsealed_points();
        let replayed = self.replayed_backlog.load(Ordering::Relaxed).min(unsealed);
        let waiting = unsealed - replayed;
        if back_pressure && waiting > 0 && waiting + added > self.config.max_unsealed_points {
            let besides = if replayed > 0 {
                format!(", besides {replayed} replayed from its log at start-up")
            } else {
                String::new()
            };
            return Err(IndexError::Busy {
                message: format!(
                    "index {:?} has {waiting} items waiting to be indexed (limit {}){besides}; retry shortly",
                    self.params.name, self.config.max_unsealed_points
                ),
                retry_after_s: 2,
            });
        }
        s.growing.first_lsn.get_or_insert(lsn);
        for item in items {
            if let Some(loc) = s.locate(&item.id) {
                s.tombstone(loc);
            }
            s.growing.points.push(
                &item.id,
                &item.vector,
                item.metadata,
                item.document.as_deref(),
            );
        }
        let froze = s.growing.points.len() >= self.config.seal_points;
        if froze {
            s.freeze();
        }
        self.refresh_stats(&s);
        Ok(AddOutcome {
            added,
            count: s.count(),
            froze,
        })
    }

    /// After a replay: every point waiting to be sealed now came from the log.
    fn mark_replayed_backlog(&self) {
        let unsealed = self.read().unsealed_points();
        self.replayed_backlog.store(unsealed, Ordering::Relaxed);
    }

    /// `sealed` points were just sealed: the replayed ones go first (they are the oldest).
    /// Called under the index's write lock, as `add_inner` reads it: a plain
    /// read-then-write is enough.
    fn drain_replayed_backlog(&self, sealed: usize) {
        let left = self.replayed_backlog.load(Ordering::Relaxed);
        self.replayed_backlog
            .store(left.saturating_sub(sealed), Ordering::Relaxed);
    }

    /// Points replayed from the log at start-up and not sealed yet.
    pub fn replayed_backlog(&self) -> usize {
        self.replayed_backlog.load(Ordering::Relaxed)
    }

    /// Tombstones an item; false when the id is not there.
    pub fn delete(&self, id: &str) -> bool {
        let mut s = self.write();
        match s.locate(id) {
            Some(loc) => {
                s.tombstone(loc);
                self.refresh_stats(&s);
                true
            }
            None => false,
        }
    }

    pub fn get(&self, id: &str) -> Option<Item> {
        let s = self.read();
        let (points, p) = s.point_of(id)?;
        let p = p as usize;
        Some(Item {
            id: id.to_string(),
            vector: points.vector(p).to_vec(),
            metadata: points.metadata_owned(p),
            document: points.document(p).map(str::to_string),
        })
    }

    /// The `k` live items nearest to `query` (checked, and normalized under cosine) that
    /// match every pair of `filter`, nearest first, ties by id. Sealed segments are searched
    /// by graph with `ef`, the others scanned.
    pub fn search(&self, query: &[f32], k: usize, ef: usize, filter: Option<&Filter>) -> Vec<Hit> {
        let (extras, rescore) = (Extras::default(), Rescore::default());
        self.search_with(query, k, ef, filter, extras, rescore)
    }

    /// `search`, with each result's vector as stored and/or its document, as `extras`
    /// asks (read under the same lock as the search, so the vector is the one the
    /// distance was computed from), and a quantized index's codes used as `rescore` says.
    #[allow(clippy::too_many_arguments)]
    pub fn search_with(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&Filter>,
        extras: Extras,
        rescore: Rescore,
    ) -> Vec<Hit> {
        let s = self.read();
        let mut hits = search::search(&s, self.params.distance, query, k, ef, filter, rescore);
        // Each hit is looked up again only for what it must carry besides its metadata.
        if extras != Extras::default() {
            for hit in &mut hits {
                if let Some((points, p)) = s.point_of(&hit.id) {
                    let p = p as usize;
                    if extras.vector {
                        hit.vector = points.vector(p).to_vec();
                    }
                    if extras.document {
                        hit.document = points.document(p).map(str::to_string);
                    }
                }
            }
        }
        self.refresh_stats_if_filters_changed(&s, filter);
        hits
    }

    /// After a filtered search: records the sizes again if a segment remembered or forgot
    /// a filter's result (or noted a filter) meanwhile.
    fn refresh_stats_if_filters_changed(&self, s: &State, filter: Option<&Filter>) {
        if filter.is_some_and(|f| !f.is_empty())
            && s.segments
                .iter()
                .fold(false, |changed, seg| seg.filters.take_changed() | changed)
        {
            self.refresh_stats(s);
        }
    }

    /// `search`, but only if the index's lock is free right now (None otherwise): for
    /// callers that must not wait behind a writer, such as an HTTP worker thread.
    pub fn try_search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&Filter>,
    ) -> Option<Vec<Hit>> {
        let s = match self.state.try_read() {
            Ok(s) => s,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        let rescore = Rescore::default();
        let hits = search::search(&s, self.params.distance, query, k, ef, filter, rescore);
        self.refresh_stats_if_filters_changed(&s, filter);
        Some(hits)
    }

    /// Freezes the growing segment if it holds at least `min_points` points (for an index
    /// that has been idle a while); true when it did.
    pub fn freeze_if_at_least(&self, min_points: usize) -> bool {
        let mut s = self.write();
        if s.growing.points.len() >= min_points.max(1) {
            s.freeze();
            self.refresh_stats(&s);
            true
        } else {
            false
        }
    }

    /// Neighbour lists of every sealed segment's graph, by segment id (for tests of exact
    /// round trips).
    pub fn neighbour_lists(&self) -> Vec<(u64, Vec<Vec<Vec<u32>>>)> {
        self.read()
            .segments
            .iter()
            .filter_map(|seg| Some((seg.id, seg.graph.as_ref()?.neighbour_lists())))
            .collect()
    }
}

impl Growing {
    fn new(id: u64, dim: usize) -> Growing {
        Growing {
            id,
            points: Points::new(dim),
            deleted: BitSet::default(),
            deleted_count: 0,
            first_lsn: None,
        }
    }
}

impl State {
    fn stats(&self) -> IndexStats {
        let g = &self.growing;
        let mut stats = IndexStats {
            points: g.points.len(),
            tombstones: g.deleted_count,
            memory_bytes: g.points.heap_bytes() + g.deleted.heap_bytes(),
            unsealed_points: g.points.len(),
            ..IndexStats::default()
        };
        for seg in &self.segments {
            stats.points += seg.points.len();
            stats.tombstones += seg.deleted_count;
            stats.memory_bytes += seg.points.heap_bytes()
                + seg.deleted.heap_bytes()
                + seg.graph.as_ref().map_or(0, |g| g.heap_bytes())
                + seg.filters.heap_bytes()
                + seg.fields.heap_bytes()
                + seg.codes.as_ref().map_or(0, |c| c.heap_bytes());
            stats.disk_bytes += seg.points.mapped_bytes();
            match seg.graph {
                Some(_) => stats.sealed_segments += 1,
                None => stats.unsealed_points += seg.points.len(),
            }
        }
        stats.count = stats.points - stats.tombstones;
        stats
    }

    /// Where `id` is live, if anywhere.
    /// Where the live item `id` is: its segment's points and its number.
    fn point_of(&self, id: &str) -> Option<(&Points, u32)> {
        Some(match self.locate(id)? {
            Loc::Growing(p) => (&self.growing.points, p),
            Loc::Segment(i, p) => (&*self.segments[i].points, p),
        })
    }

    fn locate(&self, id: &str) -> Option<Loc> {
        if let Some(p) = self.growing.points.find(id) {
            if !self.growing.deleted.get(p as usize) {
                return Some(Loc::Growing(p));
            }
        }
        for (i, seg) in self.segments.iter().enumerate().rev() {
            if let Some(p) = seg.points.find(id) {
                if !seg.deleted.get(p as usize) {
                    return Some(Loc::Segment(i, p));
                }
            }
        }
        None
    }

    fn tombstone(&mut self, loc: Loc) {
        match loc {
            Loc::Growing(p) => {
                if self.growing.deleted.set(p as usize) {
                    self.growing.deleted_count += 1;
                }
            }
            Loc::Segment(i, p) => {
                let seg = &mut self.segments[i];
                if seg.deleted.set(p as usize) {
                    seg.deleted_count += 1;
                }
            }
        }
    }

    fn count(&self) -> usize {
        let growing = self.growing.points.len() - self.growing.deleted_count;
        growing
            + self
                .segments
                .iter()
                .map(|s| s.points.len() - s.deleted_count)
                .sum::<usize>()
    }

    /// Points not yet in a sealed segment.
    fn unsealed_points(&self) -> usize {
        self.growing.points.len()
            + self
                .segments
                .iter()
                .filter(|s| s.graph.is_none())
                .map(|s| s.points.len())
                .sum::<usize>()
    }

    /// Turns the growing segment into a frozen one and starts a new growing segment.
    fn freeze(&mut self) {
        if self.growing.points.is_empty() {
            return;
        }
        let dim = self.growing.points.dim();
        let next = Growing::new(self.next_id, dim);
        self.next_id += 1;
        let mut old = std::mem::replace(&mut self.growing, next);
        old.points.shrink_to_fit();
        self.segments.push(Segment {
            id: old.id,
            points: Arc::new(old.points),
            graph: None,
            deleted: old.deleted,
            deleted_count: old.deleted_count,
            busy: AtomicBool::new(false),
            first_lsn: old.first_lsn,
            filters: Default::default(),
            fields: Default::default(),
            codes: None,
        });
    }

    fn position(&self, segment: u64) -> Option<usize> {
        self.segments.iter().position(|s| s.id == segment)
    }
}

#[cfg(test)]
mod tests;
