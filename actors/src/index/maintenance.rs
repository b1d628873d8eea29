//! Background jobs on an index's segments, in three steps so that no lock is held while a
//! graph is built: `next_job` picks segments (under the read lock, marking them busy),
//! `build` does the slow part with no lock, `install` swaps the result in (under the write
//! lock, catching up with tombstones set meanwhile). The index actor runs them, at most one
//! job of each kind per index at a time.
//!
//! Kinds and policy (what Qdrant's optimizers do, simplified):
//! - **Seal**: a frozen segment gets its graph, in place (its points and numbering stay,
//!   so its tombstones keep their meaning). When several frozen segments wait (writes
//!   outran the builds), they are coalesced into one new segment, so a bulk load ends in
//!   few, large segments instead of many small ones, at no extra build cost.
//! - **Merge**: a sealed segment whose tombstones reach `compact_ratio` of its points is
//!   rebuilt without them; otherwise, size-tiered merging: a segment's tier is
//!   ⌊log_F(live / seal_points)⌋ with F = `merge_factor`, and when a tier holds F segments
//!   the F are merged into one (of the next tier). So a tier holds fewer than F segments,
//!   and an index of N points has at most (F − 1)·(1 + log_F(N / seal_points)) sealed
//!   segments, each point copied about log_F(N / seal_points) times over its life.
//!   Segments of `max_segment_points` live points or more are left alone, and no merge
//!   makes one larger: when the F smallest of a tier would, as many of them as fit are
//!   merged (two at least), so a large bulk load ends in segments near the ceiling.
//!   A merge keeps the largest source whole, graph and tombstones included, and links
//!   the other sources' live points into that graph (`insert`): `vectord-bench --merge`
//!   measured 5.3 s against 28.7 s for rebuilding with `hnsw_rs` (100k × 128, three
//!   quarters linked in), at better recall. Compaction still rebuilds (it drops points).

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bitset::BitSet;
use super::build::build_graph;
use super::codes::Codes;
use super::disk_cache::{self, CachedPoints};
use super::field_index::FieldIndexes;
use super::insert::extend_graph;
use super::points::Points;
use super::sealed::FlatGraph;
use super::{Fields, Index, IndexParams, Segment, State};

/// What kind of job (the actor runs one of each at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Building graphs of frozen segments.
    Seal,
    /// Merging and compacting sealed segments, and indexing fields declared after a
    /// segment was sealed.
    Merge,
}

/// A planned job: the segments it works on, shared with the index (immutable points).
pub struct Job {
    pub kind: JobKind,
    work: Work,
    /// The fields declared when it was planned: the segments it builds get their indexes.
    fields: Fields,
}

enum Work {
    /// Build the graph of one frozen segment, in place.
    Seal { segment: u64, points: Arc<Points> },
    /// Copy the live points of these segments into a new one and build its graph.
    Rebuild {
        sources: Vec<Source>,
        why: &'static str,
    },
    /// Copy the first source whole (tombstoned points too) with its graph, and insert the
    /// live points of the others into that graph.
    Extend {
        sources: Vec<Source>,
        graph: Arc<FlatGraph>,
    },
    /// Build the indexes of `Job::fields` for a sealed segment that lacks them.
    IndexFields { segment: u64, points: Arc<Points> },
}

struct Source {
    id: u64,
    points: Arc<Points>,
    /// Tombstones when the job was planned; later ones are caught up at install.
    deleted: BitSet,
}

/// What a job built, ready to install.
pub struct Built {
    pub kind: JobKind,
    work: BuiltWork,
    pub took: Duration,
}

enum BuiltWork {
    Sealed {
        segment: u64,
        graph: Option<FlatGraph>,
        fields: FieldIndexes,
        codes: Option<Codes>,
        /// The points again, vectors mapped from a cache file (`on_disk` indexes).
        cached: Option<CachedPoints>,
    },
    Indexed {
        segment: u64,
        fields: FieldIndexes,
    },
    Rebuilt(Rebuilt),
}

/// A merged or compacted segment, ready to install.
struct Rebuilt {
    sources: Vec<u64>,
    points: Box<Points>,
    graph: Option<FlatGraph>,
    /// (source position, point in source) of each new point.
    origins: Vec<(u32, u32)>,
    why: &'static str,
    fields: FieldIndexes,
    codes: Option<Codes>,
    cached: Option<CachedPoints>,
}

/// What an install did, for the log.
#[derive(Debug, Clone)]
pub struct JobReport {
    pub summary: String,
    /// The segment's new number, when the job gave it one (field indexes added).
    renumbered: Option<u64>,
}

impl Job {
    /// The segments the job works on.
    pub fn segments(&self) -> Vec<u64> {
        match &self.work {
            Work::Seal { segment, .. } | Work::IndexFields { segment, .. } => vec![*segment],
            Work::Rebuild { sources, .. } | Work::Extend { sources, .. } => {
                sources.iter().map(|s| s.id).collect()
            }
        }
    }
}

impl Index {
    /// Picks the next job of `kind`, if any is due, and marks its segments busy. Takes
    /// only the read lock; must not run concurrently with itself or `release`.
    pub fn next_job(&self, kind: JobKind) -> Option<Job> {
        let s = self.read();
        let chosen = match kind {
            JobKind::Seal => self.pick_seal(&s),
            JobKind::Merge => self.pick_merge(&s),
        }?;
        let mut fields = s.fields.clone();
        let work = match chosen {
            Pick::Seal(pos) => Work::Seal {
                segment: s.segments[pos].id,
                points: s.segments[pos].points.clone(),
            },
            Pick::IndexFields(pos) => {
                fields = s.segments[pos].fields.missing(&s.fields);
                Work::IndexFields {
                    segment: s.segments[pos].id,
                    points: s.segments[pos].points.clone(),
                }
            }
            Pick::Rebuild(positions, why) => {
                let source = |pos: usize| Source {
                    id: s.segments[pos].id,
                    points: s.segments[pos].points.clone(),
                    deleted: s.segments[pos].deleted.clone(),
                };
                // A merge keeps the graph of its largest segment and links the others'
                // points into it: rebuilding that graph would redo work already done.
                let largest = positions
                    .iter()
                    .copied()
                    .filter(|&pos| s.segments[pos].graph.is_some())
                    .max_by_key(|&pos| s.segments[pos].points.len());
                match (why, largest) {
                    ("merge", Some(base)) => Work::Extend {
                        sources: std::iter::once(base)
                            .chain(positions.iter().copied().filter(|&pos| pos != base))
                            .map(source)
                            .collect(),
                        graph: s.segments[base].graph.clone()?,
                    },
                    _ => Work::Rebuild {
                        sources: positions.iter().map(|&pos| source(pos)).collect(),
                        why,
                    },
                }
            }
        };
        let job = Job { kind, work, fields };
        for id in job.segments() {
            if let Some(pos) = s.position(id) {
                s.segments[pos].busy.store(true, Relaxed);
            }
        }
        self.jobs.fetch_add(1, Relaxed);
        Some(job)
    }

    /// Whether `next_job` would find work (a frozen segment to seal, segments to merge or
    /// compact, fields to index) that no running job holds.
    pub(super) fn work_due(&self) -> bool {
        let s = self.read();
        self.pick_seal(&s).is_some() || self.pick_merge(&s).is_some()
    }

    fn pick_seal(&self, s: &State) -> Option<Pick> {
        let frozen: Vec<usize> = (0..s.segments.len())
            .filter(|&i| s.segments[i].graph.is_none() && !s.segments[i].busy.load(Relaxed))
            .collect();
        match frozen.as_slice() {
            [] => None,
            [one] if !self.worth_compacting(&s.segments[*one]) => Some(Pick::Seal(*one)),
            _ => {
                // Coalesce, oldest first, up to the largest segment size.
                let mut total = 0;
                let picked: Vec<usize> = frozen
                    .into_iter()
                    .take_while(|&i| {
                        let first = total == 0;
                        total += s.segments[i].live();
                        first || total <= self.config.max_segment_points
                    })
                    .collect();
                Some(Pick::Rebuild(picked, "seal"))
            }
        }
    }

    fn pick_merge(&self, s: &State) -> Option<Pick> {
        let sealed: Vec<usize> = (0..s.segments.len())
            .filter(|&i| s.segments[i].graph.is_some() && !s.segments[i].busy.load(Relaxed))
            .collect();
        if let Some(&pos) = sealed
            .iter()
            .find(|&&i| self.worth_compacting(&s.segments[i]))
        {
            return Some(Pick::Rebuild(vec![pos], "compaction"));
        }
        let factor = self.config.merge_factor.max(2);
        let mut tiers: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
        for &i in &sealed {
            let live = s.segments[i].live();
            if live >= self.config.max_segment_points {
                continue;
            }
            tiers.entry(self.tier(live)).or_default().push(i);
        }
        for members in tiers.values_mut() {
            if members.len() < factor {
                continue;
            }
            members.sort_by_key(|&i| s.segments[i].live());
            // The F smallest, or as many of them as fit under the ceiling: near it, four
            // of a tier may not fit where two or three do, and leaving them all apart
            // would keep a bulk load at many segments (each search walks every one).
            let mut total = 0;
            let mut fitting: Vec<usize> = members
                .iter()
                .take(factor)
                .copied()
                .take_while(|&i| {
                    total += s.segments[i].live();
                    total <= self.config.max_segment_points
                })
                .collect();
            if fitting.len() >= 2 {
                fitting.sort_unstable();
                return Some(Pick::Rebuild(fitting, "merge"));
            }
        }
        sealed
            .into_iter()
            .find(|&i| !s.segments[i].fields.covers(&s.fields))
            .map(Pick::IndexFields)
    }

    /// ⌊log_F(live / seal_points)⌋, 0 below `seal_points`.
    fn tier(&self, live: usize) -> u32 {
        let factor = self.config.merge_factor.max(2);
        let mut bound = self.config.seal_points.max(1) * factor;
        let mut tier = 0;
        while live >= bound {
            tier += 1;
            bound = bound.saturating_mul(factor);
        }
        tier
    }

    fn worth_compacting(&self, seg: &Segment) -> bool {
        seg.deleted_count > 0
            && seg.deleted_count as f64 >= self.config.compact_ratio * seg.points.len() as f64
    }

    /// Runs a job's slow part: no lock is held, searches and writes go on. On failure,
    /// its segments must be given back with `release`.
    pub fn build(&self, job: Job) -> Result<Built, String> {
        let started = Instant::now();
        let p = &self.params;
        let work = match job.work {
            Work::Seal { segment, points } => {
                let graph =
                    build_graph(&points, p.distance, p.m, p.ef_construction, seed(segment))?;
                let fields = FieldIndexes::build(&points, &job.fields);
                let codes = codes_of(&points, p);
                BuiltWork::Sealed {
                    segment,
                    cached: self.spill(&points, graph.as_ref(), &fields, codes.as_ref()),
                    graph,
                    fields,
                    codes,
                }
            }
            Work::IndexFields { segment, points } => BuiltWork::Indexed {
                segment,
                fields: FieldIndexes::build(&points, &job.fields),
            },
            Work::Rebuild { sources, why } => {
                let (points, origins) = gather(&sources, false, p.dim);
                let first = sources.first().map_or(0, |s| s.id);
                let graph = build_graph(&points, p.distance, p.m, p.ef_construction, seed(first))?;
                let fields = FieldIndexes::build(&points, &job.fields);
                let codes = codes_of(&points, p);
                BuiltWork::Rebuilt(Rebuilt {
                    sources: sources.iter().map(|s| s.id).collect(),
                    cached: self.spill(&points, graph.as_ref(), &fields, codes.as_ref()),
                    fields,
                    codes,
                    points: Box::new(points),
                    graph,
                    origins,
                    why,
                })
            }
            Work::Extend { sources, graph } => {
                let base = sources.first().ok_or("a merge without segments")?;
                // The base keeps its numbering (its graph refers to it), tombstones and all.
                let (points, origins) = gather(&sources, true, p.dim);
                let layers = seed(base.id) ^ points.len() as u64;
                let graph = extend_graph(&graph, &points, p.distance, p.ef_construction, layers)?;
                let fields = FieldIndexes::build(&points, &job.fields);
                let codes = codes_of(&points, p);
                BuiltWork::Rebuilt(Rebuilt {
                    sources: sources.iter().map(|s| s.id).collect(),
                    cached: self.spill(&points, Some(&graph), &fields, codes.as_ref()),
                    fields,
                    codes,
                    points: Box::new(points),
                    graph: Some(graph),
                    origins,
                    why: "merge",
                })
            }
        };
        Ok(Built {
            kind: job.kind,
            work,
            took: started.elapsed(),
        })
    }

    /// Swaps a built job in, atomically for searches: tombstones set since the job was
    /// planned are carried over. Must not run concurrently with another mutation.
    pub fn install(&self, built: Built) -> JobReport {
        let mut s = self.write();
        let unsealed_before = s.unsealed_points();
        let report = self.install_into(&mut s, built);
        let sealed = unsealed_before.saturating_sub(s.unsealed_points());
        if sealed > 0 {
            self.drain_replayed_backlog(sealed);
        }
        self.refresh_stats(&s);
        self.jobs.fetch_sub(1, Relaxed);
        report
    }

    fn install_into(&self, s: &mut State, built: Built) -> JobReport {
        let took = built.took.as_millis();
        match built.work {
            BuiltWork::Sealed {
                segment,
                graph,
                fields,
                codes,
                cached,
            } => {
                let mapped = cached.and_then(|c| c.settle(segment));
                install_sealed(s, segment, (graph, fields, codes, mapped), took)
            }
            BuiltWork::Indexed { segment, fields } => {
                let report = install_indexed(s, segment, fields, took);
                if let (Some(dir), Some(id)) = (self.cache_dir(), report.renumbered) {
                    // The file keeps the field indexes it was written with: a restart
                    // builds the new ones again in the background.
                    let from = disk_cache::segment_path(&dir, segment);
                    let _ = std::fs::rename(from, disk_cache::segment_path(&dir, id));
                }
                report
            }
            BuiltWork::Rebuilt(rebuilt) => {
                if let Some(dir) = self.cache_dir() {
                    for &id in &rebuilt.sources {
                        let _ = std::fs::remove_file(disk_cache::segment_path(&dir, id));
                    }
                }
                install_rebuilt(s, rebuilt, took)
            }
        }
    }

    /// The directory of this index's cache files, when its vectors live on disk.
    pub(super) fn cache_dir(&self) -> Option<std::path::PathBuf> {
        let root = self.config.cache_root.filter(|_| self.params.on_disk)?;
        Some(disk_cache::index_dir(root, &self.params.name))
    }

    /// A new sealed segment's points with their vectors moved to a cache file (`on_disk`
    /// indexes); none otherwise, or when the file cannot be written (the vectors stay on
    /// the heap, and the index says why in the log).
    fn spill(
        &self,
        points: &Points,
        graph: Option<&FlatGraph>,
        fields: &FieldIndexes,
        codes: Option<&Codes>,
    ) -> Option<CachedPoints> {
        let (dir, graph) = (self.cache_dir()?, graph?);
        disk_cache::spill(&dir, points, graph, fields, codes)
            .map_err(|e| {
                log::warn!(
                    "index {:?}: a segment's vectors stay in RAM: {e}",
                    self.params.name
                )
            })
            .ok()
    }

    /// Gives back the segments of a job that failed, so that a later job can take them.
    pub fn release(&self, segments: &[u64]) {
        let s = self.read();
        for &id in segments {
            if let Some(pos) = s.position(id) {
                s.segments[pos].busy.store(false, Relaxed);
            }
        }
        self.jobs.fetch_sub(1, Relaxed);
    }
}

/// Swaps a merged or compacted segment in for its sources.
fn install_rebuilt(s: &mut State, r: Rebuilt, took: u128) -> JobReport {
    let Rebuilt {
        sources,
        points,
        graph,
        origins,
        why,
        fields,
        codes,
        cached,
    } = r;
    let positions: Vec<Option<usize>> = sources.iter().map(|&id| s.position(id)).collect();
    let mut deleted = BitSet::with_len(points.len());
    let mut deleted_count = 0;
    for (i, &(si, q)) in origins.iter().enumerate() {
        let gone = match positions[si as usize] {
            Some(pos) => s.segments[pos].deleted.get(q as usize),
            None => true,
        };
        if gone && deleted.set(i) {
            deleted_count += 1;
        }
    }
    let insert_at = positions.iter().flatten().copied().min().unwrap_or(0);
    s.segments.retain(|seg| !sources.contains(&seg.id));
    let n = points.len();
    let graph_codes = codes.filter(|_| graph.is_some()).map(Arc::new);
    let summary = if n > deleted_count {
        let id = s.next_id;
        s.next_id += 1;
        let at = insert_at.min(s.segments.len());
        let points = cached.and_then(|c| c.settle(id)).unwrap_or(*points);
        s.segments.insert(
            at,
            Segment {
                id,
                points: Arc::new(points),
                graph: graph.map(Arc::new),
                deleted,
                deleted_count,
                busy: AtomicBool::new(false),
                first_lsn: None,
                filters: Default::default(),
                fields: Arc::new(fields),
                codes: graph_codes,
            },
        );
        format!("{why}: segments {sources:?} became segment {id} ({n} points) in {took} ms")
    } else {
        format!("{why}: segments {sources:?} held no live item and were dropped")
    };
    JobReport {
        summary,
        renumbered: None,
    }
}

/// Gives a sealed segment the field indexes a job built for it.
/// A seal's graph, field indexes, codes, and its points with mapped vectors.
type SealParts = (
    Option<FlatGraph>,
    FieldIndexes,
    Option<Codes>,
    Option<Points>,
);

fn install_sealed(s: &mut State, segment: u64, parts: SealParts, took: u128) -> JobReport {
    let (graph, fields, codes, mapped) = parts;
    let Some(pos) = s.position(segment) else {
        return JobReport {
            summary: format!("segment {segment} vanished before its seal"),
            renumbered: None,
        };
    };
    let declared = s.fields.clone();
    let seg = &mut s.segments[pos];
    seg.codes = graph.is_some().then_some(codes).flatten().map(Arc::new);
    seg.graph = graph.map(Arc::new);
    seg.fields = Arc::new(seg.fields.with(fields, &declared));
    seg.first_lsn = None;
    if let Some(points) = mapped {
        seg.points = Arc::new(points);
    }
    seg.busy.store(false, Relaxed);
    JobReport {
        summary: format!(
            "sealed segment {segment} ({} points) in {took} ms",
            seg.points.len()
        ),
        renumbered: None,
    }
}

fn install_indexed(s: &mut State, segment: u64, fields: FieldIndexes, took: u128) -> JobReport {
    let Some(pos) = s.position(segment) else {
        return JobReport {
            summary: format!("segment {segment} vanished before its fields were indexed"),
            renumbered: None,
        };
    };
    // A new number: the segment is stored again, with its new indexes.
    let id = s.next_id;
    s.next_id += 1;
    let names: Vec<String> = fields.names();
    let declared = s.fields.clone();
    let seg = &mut s.segments[pos];
    seg.fields = Arc::new(seg.fields.with(fields, &declared));
    seg.id = id;
    seg.busy.store(false, Relaxed);
    JobReport {
        summary: format!(
            "indexed fields {names:?} of segment {segment} ({} points), now segment {id}, in {took} ms",
            seg.points.len()
        ),
        renumbered: Some(id),
    }
}

/// The points of a job's new segment, copied from its sources in order, with the (source
/// position, point in source) of each: the live points of every source, and all points of
/// the first when `first_whole` (a merge keeping that source's graph and numbering).
fn gather(sources: &[Source], first_whole: bool, dim: usize) -> (Points, Vec<(u32, u32)>) {
    let keeps = |si: usize, src: &Source, q: usize| (first_whole && si == 0) || !src.deleted.get(q);
    let n: usize = sources
        .iter()
        .enumerate()
        .map(|(si, src)| (0..src.points.len()).filter(|&q| keeps(si, src, q)).count())
        .sum();
    let mut points = Points::with_capacity(dim, n, n * 16);
    let mut origins = Vec::with_capacity(n);
    for (si, src) in sources.iter().enumerate() {
        for q in (0..src.points.len()).filter(|&q| keeps(si, src, q)) {
            points.push_from(&src.points, q);
            origins.push((si as u32, q as u32));
        }
    }
    (points, origins)
}

enum Pick {
    Seal(usize),
    IndexFields(usize),
    Rebuild(Vec<usize>, &'static str),
}

impl Segment {
    pub(super) fn live(&self) -> usize {
        self.points.len() - self.deleted_count
    }
}

/// The seed that draws the layers of a graph built for segment `id`: fixed per segment, so
/// that a segment built again draws the same layers.
fn seed(id: u64) -> u64 {
    id.wrapping_mul(0x9e37_79b9)
}

/// The int8 codes of a segment's points, when the index is quantized.
fn codes_of(points: &Points, p: &IndexParams) -> Option<Codes> {
    p.quantization
        .map(|q| Codes::build(points, p.distance, q.quantile as f32))
}
