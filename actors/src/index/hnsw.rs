//! `hnsw_rs` behind a type of ours: the graph builder of sealed segments, and the loader of
//! graphs dumped by vectord 0.1.0. Nothing searches an `hnsw_rs` graph any more: a built
//! or loaded graph is copied out into a `FlatGraph` (`export`) and dropped.
//!
//! Points are identified by their *point number* (`hnsw_rs`' `DataId`), which the segment
//! assigns densely from 0; item ids live in the segment's tables, not here.
//!
//! Known traps of `hnsw_rs` 0.3.5 handled here: its iterators panic on an
//! empty graph; a truncated dump makes its loader exit the process, so the codec checks
//! lengths and a checksum before a 0.1.0 dump gets here; it reloads with the distance
//! type's `Default` and only compares short type names, so the distance structs must keep
//! their names for 0.1.0 files to load.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::{Distance, Hnsw};

use super::sealed::{FlatGraph, PointLinks};
use crate::codec::v1::GraphDump;
use crate::distance::{CosineDistance, IpDistance, L2Distance, Metric};

/// `hnsw_rs` refuses to dump a graph built with any other number of layers.
const MAX_LAYERS: usize = 16;
/// Base name of the dump files inside a private temporary directory.
const DUMP_BASENAME: &str = "graph";
/// Temporary directories of 0.1.0 loads are named `<prefix><pid>-...`, so that those left
/// behind by a killed process can be found and removed (`remove_stale_temp_dirs`).
pub const TEMP_PREFIX: &str = "vectord-legacy-";

/// A graph over one of our three distances.
pub enum Graph {
    Cosine(Hnsw<'static, f32, CosineDistance>),
    L2(Hnsw<'static, f32, L2Distance>),
    Ip(Hnsw<'static, f32, IpDistance>),
}

/// Runs the same expression on whichever `Hnsw` the graph holds.
macro_rules! with_hnsw {
    ($graph:expr, $h:ident => $body:expr) => {
        match $graph {
            Graph::Cosine($h) => $body,
            Graph::L2($h) => $body,
            Graph::Ip($h) => $body,
        }
    };
}

impl Graph {
    /// An empty graph; `expected_points` only sizes the first allocation.
    pub fn new(metric: Metric, m: usize, ef_construction: usize, expected_points: usize) -> Graph {
        let cap = expected_points.max(1024);
        match metric {
            Metric::Cosine => Graph::Cosine(Hnsw::new(
                m,
                cap,
                MAX_LAYERS,
                ef_construction,
                CosineDistance,
            )),
            Metric::L2 => Graph::L2(Hnsw::new(m, cap, MAX_LAYERS, ef_construction, L2Distance)),
            Metric::Ip => Graph::Ip(Hnsw::new(m, cap, MAX_LAYERS, ef_construction, IpDistance)),
        }
    }

    /// Points in the graph, tombstoned ones included.
    pub fn len(&self) -> usize {
        with_hnsw!(self, h => h.get_nb_point())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts `(vector, point)` pairs; uses every core for big batches. The vectors must
    /// have the index's dimension (checked by the caller).
    pub fn insert(&self, points: &[(&[f32], usize)]) {
        if points.len() >= 64 {
            let batch: Vec<(&[f32], usize)> = points.to_vec();
            with_hnsw!(self, h => h.parallel_insert_slice(&batch));
        } else {
            for &(v, id) in points {
                with_hnsw!(self, h => h.insert_slice((v, id)));
            }
        }
    }

    /// Restores a graph from a dump. The dump must have passed the codec's length and
    /// checksum checks: `hnsw_rs` exits the process on some truncated inputs.
    pub fn load(metric: Metric, dump: &GraphDump) -> Result<Graph, String> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(|e| format!("creating a temporary directory: {e}"))?;
        write_file(
            &dir.path().join(format!("{DUMP_BASENAME}.hnsw.graph")),
            &dump.graph_file,
        )?;
        write_file(
            &dir.path().join(format!("{DUMP_BASENAME}.hnsw.data")),
            &dump.data_file,
        )?;
        let dir_path = dir.path();
        let loaded = catch_unwind(AssertUnwindSafe(|| -> Result<Graph, String> {
            Ok(match metric {
                Metric::Cosine => Graph::Cosine(load_hnsw(dir_path)?),
                Metric::L2 => Graph::L2(load_hnsw(dir_path)?),
                Metric::Ip => Graph::Ip(load_hnsw(dir_path)?),
            })
        }))
        .map_err(|_| "hnsw_rs panicked while loading the graph".to_string())??;
        Ok(loaded)
    }

    /// The top layer's first point: where searches start.
    fn entry_point(&self) -> Option<u32> {
        if self.is_empty() {
            return None;
        }
        with_hnsw!(self, h => {
            let pi = h.get_point_indexation();
            let top = pi.get_max_level_observed() as usize;
            pi.get_layer_iterator(top).next().map(|p| p.get_origin_id() as u32)
        })
    }

    /// Copies the graph out into the flat layout (neighbour lists of layers 0..=level of
    /// each point, in `hnsw_rs`' order: nearest first). `n` is the number of points, which
    /// must be numbered 0..n.
    pub fn export(&self, n: usize, m: usize) -> Result<FlatGraph, String> {
        let entry = self
            .entry_point()
            .ok_or("an empty graph has nothing to export")?;
        let mut links = Vec::with_capacity(n);
        with_hnsw!(self, h => {
            for point in h.get_point_indexation() {
                let level = point.get_point_id().0 as usize;
                let layers = point
                    .get_neighborhood_id()
                    .into_iter()
                    .take(level + 1)
                    .map(|layer| layer.iter().map(|nb| nb.get_origin_id() as u32).collect())
                    .collect();
                links.push(PointLinks {
                    point: point.get_origin_id() as u32,
                    layers,
                });
            }
        });
        if links.len() != n {
            return Err(format!("graph holds {} points, expected {n}", links.len()));
        }
        FlatGraph::from_links(n, m, links, entry)
    }

    /// Every point's vector with its point number (for graphs loaded from 0.1.0 files,
    /// whose vectors live in the graph).
    pub fn vectors(&self) -> Vec<(usize, Vec<f32>)> {
        let mut out = Vec::new();
        if self.is_empty() {
            return out;
        }
        with_hnsw!(self, h => {
            for point in h.get_point_indexation() {
                out.push((point.get_origin_id(), point.get_v().to_vec()));
            }
        });
        out
    }
}

/// Loads a dump written under `DUMP_BASENAME` in `dir`.
///
/// `load_hnsw` returns a graph that borrows its loader. Without mmap (the default options)
/// the loader copies every vector into the graph, so the borrow guards nothing the graph
/// uses; leaking the loader (a few hundred bytes per load) gives a `Hnsw<'static, ..>`
/// without `unsafe`, and the temporary files can go right away.
fn load_hnsw<D: Distance<f32> + Default + Send + Sync>(
    dir: &Path,
) -> Result<Hnsw<'static, f32, D>, String> {
    let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, DUMP_BASENAME)));
    let mut graph = io
        .load_hnsw::<f32, D>()
        .map_err(|e| format!("hnsw_rs reload failed: {e}"))?;
    // The loader turns this on; a freshly built graph has it off.
    graph.set_extend_candidates(false);
    Ok(graph)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Removes temporary directories of 0.1.0 loads left behind by vectord processes that no
/// longer run (a `kill -9` during a load). Returns how many were removed.
pub fn remove_stale_temp_dirs() -> usize {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}
