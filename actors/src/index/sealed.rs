//! The graph of a sealed segment in a flat, read-optimized layout, and its beam search.
//!
//! Layer 0 is one `u32` array with a fixed-width row per point: the neighbour count, then
//! up to 2·m neighbour numbers (hnswlib's layout, without the vector). The few points above
//! layer 0 (about 1 in m) keep their upper rows in a second array, found by binary search
//! during the greedy descent. Vectors stay in the segment's `Points`, one contiguous array.
//! A search allocates nothing per candidate: its visited marks and heaps are per-thread
//! scratch space (`scratch`), and it takes no lock.
//!
//! A seal builds its graph by our own parallel insert (`build`, `insert`); a merge grows the
//! largest source's graph by inserting the other points. A walk scores points through a
//! `Scorer`: by their f32 vectors, or by their int8 codes (`codes`).

use std::cmp::Reverse;

use super::codes::{Codes, QueryCodes};
use super::points::Points;
use super::scratch::{Nearest, Scored, Scratch};
use crate::codec::segment::GraphView;

pub struct FlatGraph {
    /// Most neighbours of a point at layer 0 (2·m).
    width0: usize,
    /// Most neighbours of a point at an upper layer (m).
    width: usize,
    /// Layer 0: `1 + width0` values per point: the count, then the neighbours.
    links0: Vec<u32>,
    /// Points with a level of 1 or more, ascending.
    upper_points: Vec<u32>,
    /// Level of each of `upper_points`.
    upper_levels: Vec<u8>,
    /// Where each of `upper_points`' rows start in `upper`: `1 + width` values per layer
    /// 1..=level, the count, then the neighbours.
    upper_start: Vec<u32>,
    upper: Vec<u32>,
    /// Where every search starts: a point of the top layer.
    entry: u32,
    max_level: u8,
}

/// The neighbour lists of one point, as the builder hands them over.
pub struct PointLinks {
    pub point: u32,
    /// Layer 0 first; one list per layer 0..=level.
    pub layers: Vec<Vec<u32>>,
}

impl FlatGraph {
    /// Lays out a graph of `n` points from every point's neighbour lists. Lists longer than
    /// the widths are cut, neighbours out of range dropped (neither happens with `hnsw_rs`).
    pub fn from_links(
        n: usize,
        m: usize,
        mut links: Vec<PointLinks>,
        entry: u32,
    ) -> Result<FlatGraph, String> {
        let (width0, width) = (2 * m, m);
        if n == 0 {
            return Err("a graph needs at least one point".into());
        }
        if entry as usize >= n {
            return Err(format!("entry point {entry} is not among {n} points"));
        }
        let mut links0 = vec![0u32; n * (1 + width0)];
        links.sort_by_key(|l| l.point);
        let mut upper_points = Vec::new();
        let mut upper_levels = Vec::new();
        let mut upper_start = Vec::new();
        let mut upper = Vec::new();
        let fill = |row: &mut [u32], list: &[u32], width: usize| {
            let kept: Vec<u32> = list
                .iter()
                .copied()
                .filter(|&q| (q as usize) < n)
                .take(width)
                .collect();
            row[0] = kept.len() as u32;
            row[1..1 + kept.len()].copy_from_slice(&kept);
        };
        for l in &links {
            let p = l.point as usize;
            if p >= n {
                return Err(format!("point {p} is not among {n} points"));
            }
            if let Some(layer0) = l.layers.first() {
                fill(
                    &mut links0[p * (1 + width0)..(p + 1) * (1 + width0)],
                    layer0,
                    width0,
                );
            }
            let level = l.layers.len().saturating_sub(1);
            if level > 0 {
                if upper_points.last() == Some(&l.point) {
                    return Err(format!("point {p} is listed twice"));
                }
                upper_points.push(l.point);
                upper_levels.push(level.min(u8::MAX as usize) as u8);
                upper_start.push(upper.len() as u32);
                for list in &l.layers[1..] {
                    let start = upper.len();
                    upper.resize(start + 1 + width, 0);
                    fill(&mut upper[start..], list, width);
                }
            }
        }
        FlatGraph::from_parts(
            n,
            m,
            links0,
            upper_points,
            upper_levels,
            upper_start,
            upper,
            entry,
        )
    }

    /// Rebuilds a graph from its stored arrays, checking everything a search relies on, so
    /// that no stored bytes can make a search read out of bounds or loop.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        n: usize,
        m: usize,
        links0: Vec<u32>,
        upper_points: Vec<u32>,
        upper_levels: Vec<u8>,
        upper_start: Vec<u32>,
        upper: Vec<u32>,
        entry: u32,
    ) -> Result<FlatGraph, String> {
        let (width0, width) = (2 * m, m);
        if n == 0 || entry as usize >= n {
            return Err(format!("entry point {entry} is not among {n} points"));
        }
        if links0.len() != n * (1 + width0) {
            return Err(format!(
                "layer 0 holds {} values, {n} points need {}",
                links0.len(),
                n * (1 + width0)
            ));
        }
        let row_ok = |row: &[u32], w: usize| {
            let count = row[0] as usize;
            count <= w && row[1..1 + count].iter().all(|&q| (q as usize) < n)
        };
        if !links0.chunks(1 + width0).all(|row| row_ok(row, width0)) {
            return Err("a layer-0 row has a bad count or neighbour".into());
        }
        let u = upper_points.len();
        if upper_levels.len() != u || upper_start.len() != u {
            return Err("upper-layer tables disagree in length".into());
        }
        let mut expected_start = 0usize;
        for i in 0..u {
            if upper_points[i] as usize >= n || (i > 0 && upper_points[i] <= upper_points[i - 1]) {
                return Err("upper-layer points are not ascending point numbers".into());
            }
            let level = upper_levels[i] as usize;
            if level == 0 || upper_start[i] as usize != expected_start {
                return Err("an upper-layer row is misplaced".into());
            }
            for layer in 0..level {
                let start = expected_start + layer * (1 + width);
                let Some(row) = upper.get(start..start + 1 + width) else {
                    return Err("upper-layer rows run past their array".into());
                };
                if !row_ok(row, width) {
                    return Err("an upper-layer row has a bad count or neighbour".into());
                }
            }
            expected_start += level * (1 + width);
        }
        if expected_start != upper.len() {
            return Err("upper-layer array has stray values".into());
        }
        let max_level = match upper_points.binary_search(&entry) {
            Ok(i) => upper_levels[i],
            Err(_) => 0,
        };
        if upper_levels.iter().any(|&l| l > max_level) {
            return Err("the entry point is not on the top layer".into());
        }
        Ok(FlatGraph {
            width0,
            width,
            links0,
            upper_points,
            upper_levels,
            upper_start,
            upper,
            entry,
            max_level,
        })
    }

    pub fn points(&self) -> usize {
        self.links0.len() / (1 + self.width0)
    }

    pub fn m(&self) -> usize {
        self.width
    }

    pub fn entry(&self) -> u32 {
        self.entry
    }

    /// The arrays to store.
    pub fn view(&self) -> GraphView<'_> {
        GraphView {
            m: self.width,
            entry: self.entry,
            links0: &self.links0,
            upper_points: &self.upper_points,
            upper_levels: &self.upper_levels,
            upper_start: &self.upper_start,
            upper: &self.upper,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        (self.links0.capacity()
            + self.upper_points.capacity()
            + self.upper_start.capacity()
            + self.upper.capacity())
            * 4
            + self.upper_levels.capacity()
    }

    #[inline]
    fn row0(&self, p: u32) -> &[u32] {
        let start = p as usize * (1 + self.width0);
        let count = self.links0[start] as usize;
        &self.links0[start + 1..start + 1 + count]
    }

    /// Neighbours of `p` at `level` ≥ 1 (empty when `p` is not on that layer).
    fn upper_row(&self, p: u32, level: u8) -> &[u32] {
        let Ok(i) = self.upper_points.binary_search(&p) else {
            return &[];
        };
        if level > self.upper_levels[i] {
            return &[];
        }
        let start = self.upper_start[i] as usize + (level as usize - 1) * (1 + self.width);
        let count = self.upper[start] as usize;
        &self.upper[start + 1..start + 1 + count]
    }

    /// Every point's neighbour lists, each sorted (for tests of exact round trips).
    pub fn neighbour_lists(&self) -> Vec<Vec<Vec<u32>>> {
        (0..self.points() as u32)
            .map(|p| {
                let mut layers = vec![self.row0(p).to_vec()];
                if let Ok(i) = self.upper_points.binary_search(&p) {
                    for level in 1..=self.upper_levels[i] {
                        layers.push(self.upper_row(p, level).to_vec());
                    }
                }
                layers.iter_mut().for_each(|l| l.sort_unstable());
                layers
            })
            .collect()
    }

    /// Greedy descent through the upper layers: the point of layer 1 where the beam
    /// search on layer 0 starts, and its distance to the query.
    #[inline]
    fn descend(&self, scorer: &impl Scorer) -> (u32, f32) {
        let mut ep = self.entry;
        let mut d_ep = scorer.distance(ep);
        for level in (1..=self.max_level).rev() {
            loop {
                let mut moved = false;
                for &q in self.upper_row(ep, level) {
                    let d = scorer.distance(q);
                    if d < d_ep {
                        (ep, d_ep) = (q, d);
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        (ep, d_ep)
    }

    /// Up to `ef` accepted points nearest to `query`, nearest first. `distance` must be
    /// the index's search distance; `accept` says which points may be returned (the walk
    /// goes through the others too). With few accepted points the walk goes on until `ef`
    /// of them are found or the graph is exhausted.
    pub fn search(
        &self,
        points: &Points,
        query: &[f32],
        ef: usize,
        distance: &impl Fn(&[f32], &[f32]) -> f32,
        accept: &impl Fn(u32) -> bool,
        scratch: &mut Scratch,
    ) -> Vec<Scored> {
        let scorer = VectorScorer {
            points,
            query,
            distance,
        };
        self.search_by(&scorer, ef, accept, scratch)
    }

    /// `search`, with distances from `scorer` (the vectors, or their int8 codes).
    pub fn search_by(
        &self,
        scorer: &impl Scorer,
        ef: usize,
        accept: &impl Fn(u32) -> bool,
        scratch: &mut Scratch,
    ) -> Vec<Scored> {
        let n = self.points();
        if n == 0 || ef == 0 {
            return Vec::new();
        }
        scratch.start(n);
        let (ep, d_ep) = self.descend(scorer);
        // Beam search on layer 0.
        let first = Scored {
            distance: d_ep,
            point: ep,
        };
        scratch.enter(first, accept(ep));
        while let Some(current) = scratch.next_candidate(ef) {
            // The next candidate's row will be read soon: start loading it now.
            if let Some(Nearest(Reverse(next))) = scratch.candidates.peek() {
                prefetch(
                    self.links0
                        .as_ptr()
                        .wrapping_add(next.point as usize * (1 + self.width0)),
                );
            }
            let row = self.row0(current.point);
            if let Some(&q) = row.first() {
                scorer.prefetch(q);
            }
            for (j, &q) in row.iter().enumerate() {
                if let Some(&next) = row.get(j + 1) {
                    scorer.prefetch(next);
                    prefetch(scratch.mark_address(next));
                }
                if !scratch.visit(q) {
                    continue;
                }
                let d = scorer.distance(q);
                scratch.offer(q, d, ef, || accept(q));
            }
        }
        scratch.results()
    }
}

impl FlatGraph {
    /// `search` for a filter that few points pass and that is cheap to try (a column
    /// read): only accepted points are scored and followed, and a rejected neighbour's
    /// own neighbours are looked at in its place (ACORN-1's two-hop expansion), up to the
    /// width of a row per point. The walk thus stays among accepted points, which stay
    /// connected through the points between them, and spends no distance on the others.
    pub fn search_two_hop(
        &self,
        scorer: &impl Scorer,
        ef: usize,
        accept: &impl Fn(u32) -> bool,
        scratch: &mut Scratch,
    ) -> Vec<Scored> {
        let n = self.points();
        if n == 0 || ef == 0 {
            return Vec::new();
        }
        scratch.start(n);
        let (ep, d_ep) = self.descend(scorer);
        let first = Scored {
            distance: d_ep,
            point: ep,
        };
        scratch.enter(first, accept(ep));
        let mut next = Vec::with_capacity(self.width0);
        while let Some(current) = scratch.next_candidate(ef) {
            next.clear();
            'gather: for &q in self.row0(current.point) {
                if !scratch.visit(q) {
                    continue;
                }
                if accept(q) {
                    next.push(q);
                } else {
                    for &r in self.row0(q) {
                        if next.len() >= self.width0 {
                            break 'gather;
                        }
                        if accept(r) && scratch.visit(r) {
                            next.push(r);
                        }
                    }
                }
                if next.len() >= self.width0 {
                    break;
                }
            }
            for &q in &next {
                let d = scorer.distance(q);
                scratch.offer(q, d, ef, || true);
            }
        }
        scratch.results()
    }
}

/// What a graph walk asks of the points it meets: the distance of point `p` to the query
/// (the search distance: squared under L2), and a hint that `p` will be scored soon.
pub trait Scorer {
    fn distance(&self, p: u32) -> f32;
    fn prefetch(&self, p: u32);
}

/// Scores points by their vectors as stored.
pub struct VectorScorer<'a, D> {
    pub points: &'a Points,
    pub query: &'a [f32],
    pub distance: &'a D,
}

impl<D: Fn(&[f32], &[f32]) -> f32> Scorer for VectorScorer<'_, D> {
    #[inline]
    fn distance(&self, p: u32) -> f32 {
        (self.distance)(self.query, self.points.vector(p as usize))
    }

    #[inline]
    fn prefetch(&self, p: u32) {
        prefetch(self.points.vector(p as usize).as_ptr());
    }
}

/// Scores points by their int8 codes (`codes`).
pub struct CodeScorer<'a> {
    pub codes: &'a Codes,
    pub query: &'a QueryCodes,
}

impl Scorer for CodeScorer<'_> {
    #[inline]
    fn distance(&self, p: u32) -> f32 {
        self.codes.distance(self.query, p)
    }

    #[inline]
    fn prefetch(&self, p: u32) {
        prefetch(self.codes.address(p));
    }
}

/// Asks the CPU to start loading the cache line at `p`: a hint with no effect on results.
#[inline(always)]
pub(super) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and never changes memory, whatever the address
    // (Intel SDM, PREFETCHh: "a hint ... does not affect program behavior"); SSE is part of
    // the x86-64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
