//! Building a sealed segment's graph by inserting its points (HNSW insertion as in hnswlib:
//! greedy descent, a beam of `ef_construction` per layer, the neighbour-selection
//! heuristic, back links pruned by the same heuristic). A seal inserts every point into a
//! graph of one (`new_graph`); a merge does not rebuild from nothing the graph it already
//! has: the merged segment takes the largest source's points and graph as they are, and
//! only the other sources' points are linked in (`extend_graph`).
//!
//! Inserts run on all cores. Every point's vector and layer are known before the first
//! insert, so the rows of all points are laid out up front and never move: a row is
//! written under its point's lock (striped), and read without one through atomics — a
//! reader may see a row mid-update, which is harmless, since every value ever written is
//! a point number in range and the walk only needs some neighbours, not the latest ones.

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Mutex;

use rayon::prelude::*;

use super::job_threads::job_threads;
use super::points::Points;
use super::scratch::{with_scratch, Scored, Scratch};
use super::sealed::{prefetch, FlatGraph};
use crate::distance::{kernels, Metric};

/// Layers a point may have above layer 0 (as `hnsw_rs` builds: 16 layers in all).
const MAX_LEVEL: u8 = 15;
/// Row locks, shared by points with the same number modulo this.
const LOCK_STRIPES: usize = 4096;

/// The graph of `points`: the first `base.points()` of them are `base`'s points with
/// `base`'s links, the rest are inserted. `seed` draws the new points' layers.
pub fn extend_graph(
    base: &FlatGraph,
    points: &Points,
    metric: Metric,
    ef_construction: usize,
    seed: u64,
) -> Result<FlatGraph, String> {
    insert_all(base, points, metric, ef_construction, seed, "merge")
}

/// The graph of every point of `points`, built from nothing by the same parallel insert:
/// point 0 alone first, then every other point inserted into it. What a seal builds.
pub fn new_graph(
    points: &Points,
    metric: Metric,
    m: usize,
    ef_construction: usize,
    seed: u64,
) -> Result<FlatGraph, String> {
    let first = FlatGraph::from_parts(
        1,
        m,
        vec![0; 1 + 2 * m],
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        0,
    )?;
    insert_all(&first, points, metric, ef_construction, seed, "build")
}

/// Inserts `points` from `base.points()` on into `base`, on the job threads of `job`.
fn insert_all(
    base: &FlatGraph,
    points: &Points,
    metric: Metric,
    ef_construction: usize,
    seed: u64,
    job: &'static str,
) -> Result<FlatGraph, String> {
    let kern = kernels();
    match metric {
        Metric::Cosine | Metric::Ip => {
            let dot = kern.dot;
            insert_with(base, points, ef_construction, seed, job, &|a, b| {
                1.0 - dot(a, b)
            })
        }
        Metric::L2 => {
            let l2 = kern.l2_squared;
            insert_with(base, points, ef_construction, seed, job, &|a, b| l2(a, b))
        }
    }
}

fn insert_with<D: Fn(&[f32], &[f32]) -> f32 + Sync>(
    base: &FlatGraph,
    points: &Points,
    ef_construction: usize,
    seed: u64,
    job: &'static str,
    distance: &D,
) -> Result<FlatGraph, String> {
    let from = base.points();
    let total = points.len();
    if total < from {
        return Err(format!(
            "{total} points cannot extend a graph of {from} points"
        ));
    }
    let graph = Growing::new(base, total, seed);
    let pool = job_threads(job)?;
    pool.install(|| {
        (from as u32..total as u32)
            .into_par_iter()
            .with_min_len(64)
            .for_each(|p| {
                with_scratch(|scratch| graph.insert(p, points, ef_construction, distance, scratch))
            })
    });
    drop(pool);
    graph.link_unreached(points, distance);
    graph.finish()
}

/// A graph whose rows are being filled in by several threads at once.
struct Growing {
    m: usize,
    width0: usize,
    width: usize,
    links0: Vec<AtomicU32>,
    upper_points: Vec<u32>,
    upper_levels: Vec<u8>,
    upper_start: Vec<u32>,
    upper: Vec<AtomicU32>,
    /// Layer of each point from `from` on.
    levels: Vec<u8>,
    from: usize,
    locks: Vec<Mutex<()>>,
    /// (entry point, its layer): where inserts and later searches start.
    top: Mutex<(u32, u8)>,
}

impl Growing {
    fn new(base: &FlatGraph, total: usize, seed: u64) -> Growing {
        let view = base.view();
        let m = view.m;
        let (width0, width) = (2 * m, m);
        let from = base.points();
        let mut links0: Vec<AtomicU32> = Vec::with_capacity(total * (1 + width0));
        links0.extend(view.links0.iter().map(|&v| AtomicU32::new(v)));
        links0.resize_with(total * (1 + width0), || AtomicU32::new(0));
        let mut upper_points = view.upper_points.to_vec();
        let mut upper_levels = view.upper_levels.to_vec();
        let mut upper_start = view.upper_start.to_vec();
        let mut upper: Vec<AtomicU32> = view.upper.iter().map(|&v| AtomicU32::new(v)).collect();
        // hnsw_rs' and hnswlib's layer law: P(layer >= l) = m^-l.
        let scale = 1.0 / (m.max(2) as f64).ln();
        let levels: Vec<u8> = (from..total)
            .map(|p| {
                let u = unit_random(seed, p as u64);
                ((-u.ln() * scale).floor() as u64).min(MAX_LEVEL as u64) as u8
            })
            .collect();
        for (i, &level) in levels.iter().enumerate() {
            if level > 0 {
                upper_points.push((from + i) as u32);
                upper_levels.push(level);
                upper_start.push(upper.len() as u32);
                upper.resize_with(upper.len() + level as usize * (1 + width), || {
                    AtomicU32::new(0)
                });
            }
        }
        let top_level = match view.upper_points.binary_search(&view.entry) {
            Ok(i) => view.upper_levels[i],
            Err(_) => 0,
        };
        Growing {
            m,
            width0,
            width,
            links0,
            upper_points,
            upper_levels,
            upper_start,
            upper,
            levels,
            from,
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            top: Mutex::new((view.entry, top_level)),
        }
    }

    /// The row of `p` at `level` (count, then up to the layer's width of neighbours), or
    /// None when `p` is not on that layer.
    fn row(&self, p: u32, level: u8) -> Option<&[AtomicU32]> {
        if level == 0 {
            let start = p as usize * (1 + self.width0);
            return self.links0.get(start..start + 1 + self.width0);
        }
        let i = self.upper_points.binary_search(&p).ok()?;
        if level > self.upper_levels[i] {
            return None;
        }
        let start = self.upper_start[i] as usize + (level as usize - 1) * (1 + self.width);
        self.upper.get(start..start + 1 + self.width)
    }

    /// Copies the neighbours of `p` at `level` into `out`.
    fn read(&self, p: u32, level: u8, out: &mut Vec<u32>) {
        out.clear();
        if let Some(row) = self.row(p, level) {
            // Acquire pairs with the Release in `write`: the neighbours counted are the
            // ones written before the count.
            let count = (row[0].load(Acquire) as usize).min(row.len() - 1);
            out.extend(row[1..1 + count].iter().map(|v| v.load(Relaxed)));
        }
    }

    /// Sets the neighbours of `p` at `level` (the caller holds `p`'s lock).
    fn write(&self, p: u32, level: u8, list: &[u32]) {
        if let Some(row) = self.row(p, level) {
            let count = list.len().min(row.len() - 1);
            for (slot, &q) in row[1..].iter().zip(&list[..count]) {
                slot.store(q, Relaxed);
            }
            row[0].store(count as u32, Release);
        }
    }

    fn lock(&self, p: u32) -> std::sync::MutexGuard<'_, ()> {
        // A poisoned stripe only means another insert panicked; the rows stay valid.
        self.locks[p as usize % LOCK_STRIPES]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn insert<D: Fn(&[f32], &[f32]) -> f32>(
        &self,
        p: u32,
        points: &Points,
        ef_construction: usize,
        distance: &D,
        scratch: &mut Scratch,
    ) {
        let level = self.levels[p as usize - self.from];
        let (entry, top_level) = *self.top.lock().unwrap_or_else(|e| e.into_inner());
        let v = points.vector(p as usize);
        let mut ep = Scored {
            distance: distance(v, points.vector(entry as usize)),
            point: entry,
        };
        let mut row = Vec::with_capacity(self.width0 + 1);
        for l in (level + 1..=top_level).rev() {
            ep = self.descend(v, ep, l, points, distance, &mut row);
        }
        for l in (0..=level.min(top_level)).rev() {
            let cap = if l == 0 { self.width0 } else { self.width };
            let mut found = self.beam(
                v,
                ep,
                l,
                ef_construction.max(cap),
                points,
                distance,
                scratch,
            );
            found.retain(|s| s.point != p);
            if let Some(&nearest) = found.first() {
                ep = nearest;
            }
            let mut chosen = select(&found, cap, points, distance);
            {
                let _guard = self.lock(p);
                // p is reachable from the layer above already, so a point inserted
                // meanwhile may have linked itself into p's row: keep those links too,
                // or that point could be left with no way in.
                self.read(p, l, &mut row);
                if !row.is_empty() {
                    let both = chosen
                        .iter()
                        .chain(row.iter().filter(|q| !chosen.contains(q)));
                    chosen = select(
                        &nearest_first(v, both, points, distance),
                        cap,
                        points,
                        distance,
                    );
                }
                self.write(p, l, &chosen);
            }
            for &q in &chosen {
                self.link_back(q, p, l, cap, points, distance, &mut row);
            }
        }
        if level > top_level {
            let mut top = self.top.lock().unwrap_or_else(|e| e.into_inner());
            if level > top.1 {
                *top = (p, level);
            }
        }
    }

    /// Greedy descent through one layer above the new point's own: from `ep`, moves to
    /// whichever neighbour is nearer to `v` until none is.
    fn descend<D: Fn(&[f32], &[f32]) -> f32>(
        &self,
        v: &[f32],
        mut ep: Scored,
        level: u8,
        points: &Points,
        distance: &D,
        row: &mut Vec<u32>,
    ) -> Scored {
        loop {
            let mut moved = false;
            self.read(ep.point, level, row);
            for &q in row.iter() {
                let d = distance(v, points.vector(q as usize));
                if d < ep.distance {
                    ep = Scored {
                        distance: d,
                        point: q,
                    };
                    moved = true;
                }
            }
            if !moved {
                return ep;
            }
        }
    }

    /// Adds `p` to the neighbours of `q` at `level`; a full row keeps the best `cap` by
    /// the selection heuristic.
    #[allow(clippy::too_many_arguments)]
    fn link_back<D: Fn(&[f32], &[f32]) -> f32>(
        &self,
        q: u32,
        p: u32,
        level: u8,
        cap: usize,
        points: &Points,
        distance: &D,
        row: &mut Vec<u32>,
    ) {
        let _guard = self.lock(q);
        self.read(q, level, row);
        if row.contains(&p) {
            return;
        }
        if row.len() < cap {
            row.push(p);
            self.write(q, level, row);
            return;
        }
        let candidates = row.iter().chain(std::iter::once(&p));
        let candidates = nearest_first(points.vector(q as usize), candidates, points, distance);
        let kept = select(&candidates, cap, points, distance);
        self.write(q, level, &kept);
    }

    /// The `ef` points nearest to `v` on layer `level`, from `ep`, nearest first.
    #[allow(clippy::too_many_arguments)]
    fn beam<D: Fn(&[f32], &[f32]) -> f32>(
        &self,
        v: &[f32],
        ep: Scored,
        level: u8,
        ef: usize,
        points: &Points,
        distance: &D,
        scratch: &mut Scratch,
    ) -> Vec<Scored> {
        scratch.start(points.len());
        scratch.enter(ep, true);
        let mut row = Vec::with_capacity(self.width0);
        while let Some(current) = scratch.next_candidate(ef) {
            self.read(current.point, level, &mut row);
            // As the search does: load the next neighbour's vector and visited mark while
            // this one's distance is computed.
            if let Some(&q) = row.first() {
                prefetch(points.vector(q as usize).as_ptr());
            }
            for (j, &q) in row.iter().enumerate() {
                if let Some(&next) = row.get(j + 1) {
                    prefetch(points.vector(next as usize).as_ptr());
                    prefetch(scratch.mark_address(next));
                }
                if !scratch.visit(q) {
                    continue;
                }
                let d = distance(v, points.vector(q as usize));
                scratch.offer(q, d, ef, || true);
            }
        }
        scratch.results()
    }

    /// Links every point that a walk from the entry point cannot reach at layer 0 (the
    /// heuristic's pruning of back links leaves a few so: points no other point links to,
    /// 1 in 3,000 random 24-d points in one of twelve builds, and now and then a small
    /// group linking only among itself): each from its nearest reached neighbour that can
    /// take it (among its own neighbours, else among every reached point), into free room
    /// or in place of that neighbour's farthest link to a point that others link to as
    /// well; what it reaches then counts as reached. Runs once the inserts are done, on one
    /// thread.
    fn link_unreached<D: Fn(&[f32], &[f32]) -> f32>(&self, points: &Points, distance: &D) {
        let n = self.links0.len() / (1 + self.width0);
        let mut linked = vec![0u32; n];
        let mut row = Vec::with_capacity(self.width0);
        for p in 0..n as u32 {
            self.read(p, 0, &mut row);
            for &q in &row {
                linked[q as usize] += 1;
            }
        }
        let entry = self.top.lock().unwrap_or_else(|e| e.into_inner()).0;
        let mut reached = vec![false; n];
        self.mark_reached(entry, &mut reached);
        for p in 0..n as u32 {
            if reached[p as usize] {
                continue;
            }
            self.read(p, 0, &mut row);
            let mut near: Vec<u32> = row
                .iter()
                .copied()
                .filter(|&q| reached[q as usize])
                .collect();
            if near.is_empty() {
                near = (0..n as u32).filter(|&q| reached[q as usize]).collect();
            }
            let v = points.vector(p as usize);
            for q in nearest_first(v, near.iter(), points, distance) {
                if self.link_from(q.point, p, &mut linked, points, distance) {
                    self.mark_reached(p, &mut reached);
                    break;
                }
            }
        }
    }

    /// Marks `from` and every point a layer-0 walk reaches from it.
    fn mark_reached(&self, from: u32, reached: &mut [bool]) {
        let mut stack = vec![from];
        let mut row = Vec::with_capacity(self.width0);
        while let Some(p) = stack.pop() {
            if std::mem::replace(&mut reached[p as usize], true) {
                continue;
            }
            self.read(p, 0, &mut row);
            stack.extend(row.iter().copied().filter(|&q| !reached[q as usize]));
        }
    }

    /// Adds a layer-0 link from `q` to `p`: into free room, or in place of `q`'s farthest
    /// link to a point that others link to as well. False when `q` can take none.
    fn link_from<D: Fn(&[f32], &[f32]) -> f32>(
        &self,
        q: u32,
        p: u32,
        linked: &mut [u32],
        points: &Points,
        distance: &D,
    ) -> bool {
        let mut theirs = Vec::with_capacity(self.width0);
        self.read(q, 0, &mut theirs);
        if theirs.len() >= self.width0 {
            let by_distance =
                nearest_first(points.vector(q as usize), theirs.iter(), points, distance);
            let Some(r) = by_distance
                .iter()
                .rev()
                .find(|r| linked[r.point as usize] > 1)
            else {
                return false;
            };
            linked[r.point as usize] -= 1;
            theirs.retain(|&x| x != r.point);
        }
        theirs.push(p);
        self.write(q, 0, &theirs);
        linked[p as usize] += 1;
        true
    }

    /// The finished graph, checked like a stored one.
    fn finish(self) -> Result<FlatGraph, String> {
        let n = self.links0.len() / (1 + self.width0);
        let (entry, _) = *self.top.lock().unwrap_or_else(|e| e.into_inner());
        FlatGraph::from_parts(
            n,
            self.m,
            self.links0.into_iter().map(AtomicU32::into_inner).collect(),
            self.upper_points,
            self.upper_levels,
            self.upper_start,
            self.upper.into_iter().map(AtomicU32::into_inner).collect(),
            entry,
        )
    }
}

/// `list` scored by distance to `v`, nearest first.
fn nearest_first<'a, D: Fn(&[f32], &[f32]) -> f32>(
    v: &[f32],
    list: impl Iterator<Item = &'a u32>,
    points: &Points,
    distance: &D,
) -> Vec<Scored> {
    let mut scored: Vec<Scored> = list
        .map(|&q| Scored {
            distance: distance(v, points.vector(q as usize)),
            point: q,
        })
        .collect();
    scored.sort_unstable();
    scored
}

/// hnswlib's neighbour heuristic: from `candidates` (nearest first), keep a candidate only
/// if it is nearer to the base point than to every one kept before it, up to `cap`. It
/// keeps links spread over directions instead of all into one cluster.
fn select<D: Fn(&[f32], &[f32]) -> f32>(
    candidates: &[Scored],
    cap: usize,
    points: &Points,
    distance: &D,
) -> Vec<u32> {
    if candidates.len() <= cap {
        // Room for all of them (hnswlib prunes only what does not fit).
        return candidates.iter().map(|c| c.point).collect();
    }
    let mut kept: Vec<u32> = Vec::with_capacity(cap);
    for c in candidates {
        if kept.len() >= cap {
            break;
        }
        let vc = points.vector(c.point as usize);
        if kept
            .iter()
            .all(|&k| distance(vc, points.vector(k as usize)) >= c.distance)
        {
            kept.push(c.point);
        }
    }
    kept
}

/// A number in (0, 1], the same for the same seed and point (splitmix64).
fn unit_random(seed: u64, p: u64) -> f64 {
    let mut z = seed ^ p.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}
