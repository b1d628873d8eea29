//! Search over every segment of an index: sealed segments by graph, frozen and growing ones
//! by exact scan; each applies its tombstones and the metadata filter, and the best `k` of
//! all of them are merged.
//!
//! Segments are searched one after the other on the calling thread. Under load the
//! search permits already keep every core busy with whole searches, where splitting one
//! search over threads would only add hand-offs; an index normally holds a few segments
//! (see `maintenance`).
//!
//! Guarantees kept from 0.1.0: `k` results come back whenever `k` live items match (a
//! graph walk that finds too few is widened, then replaced by an exact scan); a filter that
//! few points pass is answered by scanning exactly those points, since a graph walk would
//! mostly visit points it must skip.
//!
//! How a sealed segment is searched under a filter (its plan):
//! - with **field indexes** for the filter's conditions (`field_index`), the indexes say
//!   which points may pass, reading no metadata: when they are few (`scan_is_cheaper`),
//!   exactly those are checked and scanned (`index_scan`); else the graph walk tries the
//!   filter on the points it meets (`index_walk`, two hops when the filter is exact and
//!   passes under a quarter); the result is remembered from the second search;
//! - without: a filter that a segment remembers (`filter_cache`) or that few points pass
//!   is answered the same ways from a bitset of the matching points (`scan`, `walk`); in
//!   a large segment, how many pass is first estimated on a sample, so that a filter most
//!   points pass costs a walk (`sampled_walk`), not a pass over every point's metadata.

use std::collections::BinaryHeap;

use super::bitset::BitSet;
use super::codes::Codes;
use super::field_index::{FieldIndexes, Found};
use super::filter_cache::{FilterCache, Matches};
use super::points::Points;
use super::scratch::{with_scratch, Scored, Scratch};
use super::sealed::{CodeScorer, FlatGraph, Scorer, VectorScorer};
use super::{Hit, State};
use crate::distance::{kernels, Metric};
use crate::filter::{Filter, Lookup};

/// Below this many candidates a segment is scanned: exact, and as fast as a graph walk.
const SCAN_MAX: usize = 1024;

/// One segment as a search sees it.
struct View<'a> {
    points: &'a Points,
    graph: Option<&'a FlatGraph>,
    deleted: &'a BitSet,
    deleted_count: usize,
    /// Where a sealed segment remembers its last filters' results.
    filters: Option<&'a FilterCache>,
    /// A sealed segment's field indexes.
    fields: Option<&'a FieldIndexes>,
    /// A sealed segment's int8 codes (quantized indexes).
    codes: Option<&'a Codes>,
}

/// How a search of a quantized index uses the codes: its graph walks are scored on them,
/// then (with `rescore`) the best `k × oversampling` found in each segment are scored
/// again on the f32 vectors, which decide the order and the distances returned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rescore {
    pub rescore: bool,
    pub oversampling: f32,
}

impl Default for Rescore {
    fn default() -> Self {
        Rescore {
            rescore: true,
            oversampling: DEFAULT_OVERSAMPLING,
        }
    }
}

/// Candidates rescored per result asked for, unless the search says otherwise.
pub const DEFAULT_OVERSAMPLING: f32 = 4.0;

/// A result candidate: ordered by the distance the client sees, then id (API.md: ties by
/// id). Comparing reported distances (not search distances) matters where two search
/// distances report the same: a square root or a clamp at 0 can merge them.
#[derive(Debug, Clone, Copy)]
struct Candidate<'a> {
    distance: f32,
    id: &'a str,
    view: usize,
    point: u32,
}

impl PartialEq for Candidate<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Candidate<'_> {}
impl PartialOrd for Candidate<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then_with(|| self.id.cmp(other.id))
    }
}

pub(super) fn search(
    state: &State,
    metric: Metric,
    query: &[f32],
    k: usize,
    ef: usize,
    filter: Option<&Filter>,
    rescore: Rescore,
) -> Vec<Hit> {
    let mut views: Vec<View> = state
        .segments
        .iter()
        .map(|s| View {
            points: &s.points,
            graph: s.graph.as_deref(),
            deleted: &s.deleted,
            deleted_count: s.deleted_count,
            filters: s.graph.is_some().then_some(&s.filters),
            fields: s.graph.is_some().then_some(&*s.fields),
            codes: s.codes.as_deref(),
        })
        .collect();
    views.push(View {
        points: &state.growing.points,
        graph: None,
        deleted: &state.growing.deleted,
        deleted_count: state.growing.deleted_count,
        filters: None,
        fields: None,
        codes: None,
    });
    let filter = filter.filter(|f| !f.is_empty());
    let kern = kernels();
    match metric {
        Metric::Cosine | Metric::Ip => {
            let dot = kern.dot;
            run(&views, metric, query, k, ef, filter, rescore, &|a, b| {
                1.0 - dot(a, b)
            })
        }
        Metric::L2 => {
            let l2 = kern.l2_squared;
            run(&views, metric, query, k, ef, filter, rescore, &|a, b| {
                l2(a, b)
            })
        }
    }
}

/// The search distance (what the graph orders by) as the API reports it.
fn reported(metric: Metric, d: f32) -> f32 {
    match metric {
        Metric::Cosine => d.max(0.0),
        Metric::L2 => d.max(0.0).sqrt(),
        Metric::Ip => d,
    }
}

#[allow(clippy::too_many_arguments)]
fn run<D: Fn(&[f32], &[f32]) -> f32>(
    views: &[View],
    metric: Metric,
    query: &[f32],
    k: usize,
    ef: usize,
    filter: Option<&Filter>,
    rescore: Rescore,
    distance: &D,
) -> Vec<Hit> {
    let search = Search {
        metric,
        query,
        k,
        ef,
        rescore,
        filter,
        lookup: filter.and_then(Filter::lookup),
        distance,
    };
    let mut all: Vec<Candidate> = with_scratch(|scratch| {
        views
            .iter()
            .enumerate()
            .flat_map(|(i, v)| search.segment_top(i, v, scratch))
            .collect()
    });
    all.sort_unstable();
    all.truncate(k);
    all.into_iter()
        .map(|c| Hit {
            id: c.id.to_string(),
            distance: c.distance,
            metadata: views[c.view].points.metadata_owned(c.point as usize),
            vector: Vec::new(),
            document: None,
        })
        .collect()
}

/// One search's parameters, shared by the segments it runs over.
struct Search<'q, D> {
    metric: Metric,
    query: &'q [f32],
    k: usize,
    ef: usize,
    /// How a quantized segment's codes are used.
    rescore: Rescore,
    /// Its key (equal filters have equal keys) names it in the segments' filter caches.
    filter: Option<&'q Filter>,
    /// What field indexes can answer of the filter, and whether that is all of it.
    lookup: Option<(Lookup<'q>, bool)>,
    /// The search distance (what graphs are ordered by).
    distance: &'q D,
}

impl<D: Fn(&[f32], &[f32]) -> f32> Search<'_, D> {
    /// One graph walk of segment `v` at `ef`, nearest first: scored on the f32 vectors,
    /// or, for a segment with codes, on the codes and then rescored (see `Rescore`).
    fn graph_search(
        &self,
        v: &View,
        graph: &FlatGraph,
        ef: usize,
        two_hop: bool,
        accept: &impl Fn(u32) -> bool,
        scratch: &mut Scratch,
    ) -> Vec<Scored> {
        let exact = VectorScorer {
            points: v.points,
            query: self.query,
            distance: self.distance,
        };
        let Some(codes) = v.codes else {
            return match two_hop {
                true => graph.search_two_hop(&exact, ef, accept, scratch),
                false => graph.search_by(&exact, ef, accept, scratch),
            };
        };
        let query = codes.quantize(self.query);
        let coded = CodeScorer {
            codes,
            query: &query,
        };
        let mut found = match two_hop {
            true => graph.search_two_hop(&coded, ef, accept, scratch),
            false => graph.search_by(&coded, ef, accept, scratch),
        };
        if self.rescore.rescore {
            let keep = (self.k as f32 * self.rescore.oversampling).ceil() as usize;
            found.truncate(keep.max(self.k));
            for f in &mut found {
                f.distance = exact.distance(f.point);
            }
            found.sort_unstable();
        }
        found
    }

    /// The best `k` matches of one segment.
    fn segment_top<'a>(
        &self,
        index: usize,
        v: &View<'a>,
        scratch: &mut Scratch,
    ) -> Vec<Candidate<'a>> {
        let n = v.points.len();
        let live = n - v.deleted_count;
        if live == 0 {
            return Vec::new();
        }
        let alive = |p: u32| !v.deleted.get(p as usize);
        let Some(graph) = v.graph else {
            if self.filter.is_some() {
                count_plan(Plan::Scan);
            }
            let matching = |p: u32| alive(p) && self.filter.is_none_or(|f| matches(v.points, p, f));
            return self.scan(index, v, (0..n as u32).filter(|&p| matching(p)));
        };
        match self.filter {
            None if live <= SCAN_MAX => self.scan(index, v, (0..n as u32).filter(|&p| alive(p))),
            None if v.deleted_count == 0 => {
                self.walk(index, v, graph, Walk::over(live), &|_| true, scratch)
            }
            None => self.walk(index, v, graph, Walk::over(live), &alive, scratch),
            Some(f) => self.filtered(index, v, graph, f, scratch),
        }
    }

    /// A sealed segment searched under filter `f`: from the result it remembers, else
    /// from its field indexes, else by reading metadata (on a sample first when large).
    fn filtered<'a>(
        &self,
        index: usize,
        v: &View<'a>,
        graph: &FlatGraph,
        f: &Filter,
        scratch: &mut Scratch,
    ) -> Vec<Candidate<'a>> {
        let (n, live) = (v.points.len(), v.points.len() - v.deleted_count);
        let alive = |p: u32| !v.deleted.get(p as usize);
        let cache = v.filters.zip(Some(f.key()));
        if let Some(found) = cache.and_then(|(cache, key)| cache.get(key)) {
            return self.remembered(index, v, graph, &found, scratch);
        }
        let indexed = self.lookup.as_ref().zip(v.fields);
        if let Some(((lookup, complete), fields)) = indexed {
            if let Some(found) = fields.find(lookup, v.points) {
                let exact = *complete && found.exact();
                return self.by_field_indexes(index, v, graph, (f, exact, cache), &found, scratch);
            }
        }
        let first_time =
            n > EXACT_FILTER_MAX && !cache.is_some_and(|(cache, key)| cache.asked_before(key));
        if first_time {
            // A large segment's first search with this filter tries it on a sample. One
            // that most points pass then costs a walk that tries it on the points it meets
            // (a few thousand), not a pass over every point's metadata; from its second
            // search, that pass is made once and remembered. A wrong estimate costs time,
            // never results: a walk finding fewer than k ends in a scan.
            let matching = |p: u32| alive(p) && matches(v.points, p, f);
            if !few_pass(estimate_passing(n, &matching), live) {
                count_plan(Plan::SampledWalk);
                let how = Walk::over(usize::MAX);
                return self.walk(index, v, graph, how, &matching, scratch);
            }
        }
        let found = std::sync::Arc::new(matching_points(v.points, f));
        if let Some((cache, key)) = cache {
            cache.put(key.to_string(), found.clone());
        }
        self.remembered(index, v, graph, &found, scratch)
    }

    /// A sealed segment searched with the points that match a filter, as a bitset.
    fn remembered<'a>(
        &self,
        index: usize,
        v: &View<'a>,
        graph: &FlatGraph,
        found: &Matches,
        scratch: &mut Scratch,
    ) -> Vec<Candidate<'a>> {
        let alive = |p: u32| !v.deleted.get(p as usize);
        // Points deleted since the result was remembered do not count.
        let passing = found.count - found.bits.count_common(v.deleted);
        let live = v.points.len() - v.deleted_count;
        if scan_is_cheaper(passing, live, self.ef.max(self.k)) {
            count_plan(Plan::Scan);
            let points = found.bits.ones().map(|p| p as u32);
            return self.scan(index, v, points.filter(|&p| alive(p)));
        }
        count_plan(Plan::Walk);
        let accept = |p: u32| found.bits.get(p as usize) && alive(p);
        let how = Walk {
            allowed: passing,
            two_hop: passing * TWO_HOP_SHARE < live,
        };
        self.walk(index, v, graph, how, &accept, scratch)
    }

    /// A sealed segment searched with what its field indexes `found` for filter `f`
    /// (`exact`: every point found passes it, with no look at its metadata).
    fn by_field_indexes<'a>(
        &self,
        index: usize,
        v: &View<'a>,
        graph: &FlatGraph,
        (f, exact, cache): (&Filter, bool, Option<(&FilterCache, &str)>),
        found: &Found,
        scratch: &mut Scratch,
    ) -> Vec<Candidate<'a>> {
        let passing = |p: u32| {
            !v.deleted.get(p as usize) && found.passes(p) && (exact || matches(v.points, p, f))
        };
        // About (at most) this many pass.
        let at_most = found.estimate();
        let live = v.points.len() - v.deleted_count;
        let n = v.points.len();
        // The result is remembered (a bitset of the segment): an exact one when it is
        // scanned, any from the filter's second search (the candidates checked against
        // the metadata when the lookup is not exact), so that repeats read neither the
        // indexes nor the metadata again, and a wide estimate of an inexact lookup costs
        // one walk, not one per search.
        let remember = |candidates: &[u32]| {
            let (cache, key) = cache?;
            let mut bits = BitSet::with_len(n);
            let count = candidates
                .iter()
                .filter(|&&p| (exact || matches(v.points, p, f)) && bits.set(p as usize))
                .count();
            let matches = std::sync::Arc::new(Matches { bits, count });
            cache.put(key.to_string(), matches.clone());
            Some(matches)
        };
        if scan_is_cheaper(at_most, live, self.ef.max(self.k)) {
            count_plan(Plan::IndexScan);
            // Gathered points passed the columns already.
            let candidates = found.gather(n);
            if exact {
                remember(&candidates);
            }
            let alive = |p: u32| !v.deleted.get(p as usize);
            let candidates = candidates
                .into_iter()
                .filter(|&p| alive(p) && (exact || matches(v.points, p, f)));
            return self.scan(index, v, candidates);
        }
        if cache.is_some_and(|(cache, key)| cache.asked_before(key)) {
            if let Some(matches) = remember(&found.gather(n)) {
                return self.remembered(index, v, graph, &matches, scratch);
            }
        }
        count_plan(Plan::IndexWalk);
        // A filter the columns answer exactly is cheap to try on every point met: below
        // a quarter of the points, the walk follows passing points only (two hops).
        let how = Walk {
            allowed: at_most,
            two_hop: exact && at_most * TWO_HOP_SHARE < live,
        };
        self.walk(index, v, graph, how, &passing, scratch)
    }

    /// Graph search, widening `ef` until `k` accepted points come back (or all `allowed`
    /// of them) or the graph has been searched as wide as it is; then an exact scan if
    /// still short.
    fn walk<'a>(
        &self,
        index: usize,
        v: &View<'a>,
        graph: &FlatGraph,
        how: Walk,
        accept: &impl Fn(u32) -> bool,
        scratch: &mut Scratch,
    ) -> Vec<Candidate<'a>> {
        let k = self.k;
        let want = k.min(how.allowed);
        let total = v.points.len();
        let mut ef = self.ef.max(k);
        loop {
            let found = self.graph_search(v, graph, ef, how.two_hop, accept, scratch);
            if found.len() >= want {
                // Sorted by distance: only the first k (and any reporting the same
                // distance as the k-th, which their ids will order) can be results.
                let reported: Vec<f32> = found
                    .iter()
                    .map(|s| reported(self.metric, s.distance))
                    .collect();
                let mut keep = k.min(found.len());
                while keep < found.len() && reported[keep] == reported[keep - 1] {
                    keep += 1;
                }
                let mut out: Vec<Candidate> = found[..keep]
                    .iter()
                    .zip(&reported)
                    .map(|(s, &distance)| Candidate {
                        distance,
                        id: v.points.id(s.point as usize),
                        view: index,
                        point: s.point,
                    })
                    .collect();
                out.sort_unstable();
                out.truncate(k);
                return out;
            }
            if ef >= total {
                break;
            }
            ef = (ef * 4).min(total);
        }
        self.scan(index, v, (0..total as u32).filter(|&p| accept(p)))
    }

    /// Exact search over the given points.
    fn scan<'a>(
        &self,
        index: usize,
        v: &View<'a>,
        points: impl Iterator<Item = u32>,
    ) -> Vec<Candidate<'a>> {
        let k = self.k;
        // The best k so far, worst on top. The heap orders by reported distance then id,
        // so among points at equal distance the smaller ids stay (API.md: ties by id).
        let mut best: BinaryHeap<Candidate> = BinaryHeap::with_capacity(k + 1);
        // The vectors of the next few points are loaded while this one is measured: the
        // points of a filtered scan lie far apart in memory.
        let mut points = points.peekable();
        let mut ahead: std::collections::VecDeque<u32> = std::collections::VecDeque::new();
        while ahead.len() < SCAN_AHEAD {
            let Some(p) = points.next() else { break };
            prefetch_vector(v.points, p);
            ahead.push_back(p);
        }
        while let Some(p) = ahead.pop_front() {
            if let Some(next) = points.next() {
                prefetch_vector(v.points, next);
                ahead.push_back(next);
            }
            let d = reported(
                self.metric,
                (self.distance)(self.query, v.points.vector(p as usize)),
            );
            if best.len() >= k {
                if let Some(worst) = best.peek() {
                    if d > worst.distance {
                        continue;
                    }
                }
            }
            best.push(Candidate {
                distance: d,
                id: v.points.id(p as usize),
                view: index,
                point: p,
            });
            if best.len() > k {
                best.pop();
            }
        }
        best.into_sorted_vec()
    }
}

/// Points whose vectors a scan loads ahead of the one it measures.
const SCAN_AHEAD: usize = 8;

/// Asks the CPU to load the vector of point `p`.
#[inline]
fn prefetch_vector(points: &Points, p: u32) {
    let vector = points.vector(p as usize);
    // One hint per cache line.
    for line in vector.chunks(16) {
        super::sealed::prefetch(line.as_ptr());
    }
}

/// Segments up to this many points have a filter tried on every point (about 15 ns each,
/// in order: 0.5 ms at most); larger ones on a sample first. The unit tests use a smaller
/// bound, so that both ways are tried on segments they can build in a moment.
const EXACT_FILTER_MAX: usize = if cfg!(test) { 2_048 } else { 32_768 };
/// Whether a filter that `passing` of a segment's `live` points pass is best answered by
/// scanning those points: when they are few, or a tenth or less (a walk would mostly
/// meet points it must skip).
fn few_pass(passing: usize, live: usize) -> bool {
    passing <= SCAN_MAX || passing * 10 <= live
}

/// A filter that fewer than one point in this many pass is walked among passing points
/// only (two hops), when checking a point is cheap: measured with `vectord-bench
/// --filtered`, two hops were 4x faster at 3 %, 1.7x at 10 % and slower at 50 %.
const TWO_HOP_SHARE: usize = 4;

/// How a graph walk runs.
#[derive(Clone, Copy)]
struct Walk {
    /// At most this many points are accepted: a walk finding them all is done.
    allowed: usize,
    /// Followed through accepted points only (`FlatGraph::search_two_hop`).
    two_hop: bool,
}

impl Walk {
    fn over(allowed: usize) -> Walk {
        Walk {
            allowed,
            two_hop: false,
        }
    }
}

/// Distance computations of a graph walk at `ef` with no filter, per unit of `ef` (about,
/// for m 16): a walk under a filter that a share s of the points pass costs about as
/// many over s.
/// `vectord-bench --filtered` on 100k x 128: a scan of 1 % and 3 % beat a walk, 10 %
/// did not (docs/benchmarks.md).
const WALK_COST: u128 = 10;

/// Whether scanning the `matches` points a filter passes costs less than a graph walk
/// (at `ef`) over a segment of `live` points that tries it on the points it meets: a
/// scan costs `matches` distances, a walk about `WALK_COST · ef · live / matches`.
fn scan_is_cheaper(matches: usize, live: usize, ef: usize) -> bool {
    matches <= SCAN_MAX || (matches as u128).pow(2) <= WALK_COST * ef as u128 * live as u128
}

/// Every point of a segment tried on the filter, in order (which the memory prefetches
/// well): the result a segment remembers.
fn matching_points(points: &Points, filter: &Filter) -> Matches {
    let mut bits = BitSet::with_len(points.len());
    let mut count = 0;
    for p in 0..points.len() {
        if matches(points, p as u32, filter) {
            bits.set(p);
            count += 1;
        }
    }
    Matches { bits, count }
}

/// Points of a segment on which a filter is tried to estimate how many pass it (in no
/// order: about 0.1 µs each).
const FILTER_SAMPLE: u64 = 256;

/// About how many of the points `0..n` pass `matching`: all of them tried when they are
/// few, else `FILTER_SAMPLE` spread over the segment by a hash of their rank (the same
/// points every time, and blind to regular patterns in ids or insertion order).
fn estimate_passing(n: usize, matching: &impl Fn(u32) -> bool) -> usize {
    if n as u64 <= FILTER_SAMPLE * 4 {
        return (0..n as u32).filter(|&p| matching(p)).count();
    }
    let passed = (0..FILTER_SAMPLE)
        .filter(|&j| {
            // splitmix64's finalizer: consecutive ranks land far apart.
            let mut h = j.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            h ^= h >> 31;
            matching((h % n as u64) as u32)
        })
        .count();
    (passed as u64 * n as u64 / FILTER_SAMPLE) as usize
}

/// How a segment was searched under a filter (`vectord_filtered_segment_searches_total`).
#[derive(Clone, Copy)]
enum Plan {
    Scan,
    Walk,
    SampledWalk,
    IndexScan,
    IndexWalk,
}

fn count_plan(plan: Plan) {
    // The counters, looked up once: a filtered search pays an atomic add per segment.
    static COUNTERS: std::sync::LazyLock<[prometheus::IntCounter; 5]> =
        std::sync::LazyLock::new(|| {
            let m = &crate::metrics::metrics().filtered_segment_searches;
            ["scan", "walk", "sampled_walk", "index_scan", "index_walk"]
                .map(|plan| m.with_label_values(&[plan]))
        });
    COUNTERS[plan as usize].inc();
}

/// Whether point `p` (its id and metadata) passes `filter`.
pub(super) fn matches(points: &Points, p: u32, filter: &Filter) -> bool {
    filter.matches(points.id(p as usize), points.metadata(p as usize))
}

#[cfg(test)]
mod tests {
    use super::{estimate_passing, FILTER_SAMPLE};

    #[test]
    fn the_share_a_filter_passes_is_estimated_closely_whatever_the_pattern() {
        let n = 20_000;
        for groups in [1, 2, 3, 10, 16, 64, 100] {
            let estimate = estimate_passing(n, &|p| (p as usize).is_multiple_of(groups)) as f64;
            let exact = n.div_ceil(groups) as f64;
            let share = 1.0 / groups as f64;
            // Within 4 standard deviations of the sample's.
            let sd = n as f64 * (share * (1.0 - share) / FILTER_SAMPLE as f64).sqrt();
            assert!(
                (estimate - exact).abs() <= 4.0 * sd + 1.0,
                "1/{groups}: estimated {estimate}, exactly {exact}"
            );
        }
        // runs of consecutive points pass, as items added together often share metadata
        let estimate = estimate_passing(n, &|p| p < 5_000) as f64;
        let sd = n as f64 * (0.25f64 * 0.75 / FILTER_SAMPLE as f64).sqrt();
        assert!(
            (estimate - 5_000.0).abs() <= 4.0 * sd,
            "runs: estimated {estimate}"
        );
        // small segments are counted exactly
        assert_eq!(estimate_passing(100, &|p| p % 3 == 0), 34);
        assert_eq!(estimate_passing(n, &|_| false), 0);
        assert_eq!(estimate_passing(n, &|_| true), n);
    }
}
