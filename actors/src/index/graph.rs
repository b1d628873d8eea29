//! The HNSW graph of one index: `hnsw_rs` behind a type of ours, so that the rest of the
//! code neither names `hnsw_rs` nor cares which distance type the graph is built on.
//!
//! Points are identified by their *point number* (`hnsw_rs`' `DataId`), which the index
//! assigns densely from 0; item ids live in the index's tables, not here.
//!
//! Persistence goes through `hnsw_rs`' own dump and reload, so a reloaded graph is the very
//! graph that was saved (same layers, same neighbour lists) with no rebuild. The dump writes
//! two files; we read them into memory and the codec frames them into one object. Known
//! traps of `hnsw_rs` 0.3.5 handled here (see DESIGN.md): it dumps only with `max_layer` 16
//! and never an empty graph; a truncated file makes its loader exit the process, so the
//! codec checks lengths and a checksum before we get here; it reloads with the distance
//! type's `Default` and only compares short type names, so the distance structs must keep
//! their names for old files to load.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use hnsw_rs::api::AnnT;
use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::{Distance, FilterT, Hnsw, Point};

use crate::distance::{CosineDistance, IpDistance, L2Distance, Metric};

/// `hnsw_rs` refuses to dump a graph built with any other number of layers.
const MAX_LAYERS: usize = 16;
/// Base name of the dump files inside a private temporary directory.
const DUMP_BASENAME: &str = "graph";

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

/// A point of the graph: its vector (`get_v`) and point number (`get_origin_id`).
pub type GraphPoint = std::sync::Arc<Point<'static, f32>>;

/// The two files of an `hnsw_rs` dump, read into memory.
#[derive(Debug)]
pub struct GraphDump {
    pub graph_file: Vec<u8>,
    pub data_file: Vec<u8>,
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

    /// Up to `k` nearest points as `(point, graph distance)`, nearest first. `allowed`, when
    /// given, excludes points from the results (the walk still passes through them).
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allowed: Option<&dyn Fn(usize) -> bool>,
    ) -> Vec<(usize, f32)> {
        let found = match allowed {
            None => with_hnsw!(self, h => h.search(query, k, ef)),
            Some(f) => {
                let filter = PointFilter(f);
                with_hnsw!(self, h => h.search_filter(query, k, ef, Some(&filter)))
            }
        };
        found
            .into_iter()
            .map(|n| (n.get_origin_id(), n.get_distance()))
            .collect()
    }

    /// Number of points stored at each layer. `hnsw_rs` appends every new point at the
    /// end of its top layer, so these sizes mark where the next insert's points will be.
    pub fn layer_sizes(&self) -> Vec<usize> {
        with_hnsw!(self, h => {
            let pi = h.get_point_indexation();
            (0..MAX_LAYERS).map(|l| pi.get_layer_nb_point(l)).collect()
        })
    }

    /// The points stored after the given layer sizes (all of them for empty `since`),
    /// with their point numbers. The graph keeps its own copy of every vector; holding
    /// its points spares the index a second copy.
    pub fn points_since(&self, since: &[usize]) -> Vec<GraphPoint> {
        let mut out = Vec::new();
        // hnsw_rs' iterators panic on an empty graph.
        if self.is_empty() {
            return out;
        }
        with_hnsw!(self, h => {
            let pi = h.get_point_indexation();
            for l in 0..MAX_LAYERS {
                let from = since.get(l).copied().unwrap_or(0);
                if pi.get_layer_nb_point(l) > from {
                    out.extend(pi.get_layer_iterator(l).skip(from));
                }
            }
        });
        out
    }

    /// Dumps the graph to memory. The caller must make sure no insert runs meanwhile:
    /// `hnsw_rs` reads the point count before it locks the layers.
    pub fn dump(&self) -> Result<GraphDump, String> {
        if self.is_empty() {
            return Err("an empty graph has no dump".into());
        }
        let dir =
            tempfile::tempdir().map_err(|e| format!("creating a temporary directory: {e}"))?;
        let dumped = catch_unwind(AssertUnwindSafe(
            || with_hnsw!(self, h => h.file_dump(dir.path(), DUMP_BASENAME)),
        ))
        .map_err(|_| "hnsw_rs panicked while dumping".to_string())?
        .map_err(|e| format!("hnsw_rs dump failed: {e}"))?;
        // `hnsw_rs` picks another base name when the files exist already (always after a
        // reload): use the one it returns.
        let read = |suffix: &str| {
            let path = dir.path().join(format!("{dumped}.hnsw.{suffix}"));
            std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))
        };
        Ok(GraphDump {
            graph_file: read("graph")?,
            data_file: read("data")?,
        })
    }

    /// Restores a graph from a dump. The dump must have passed the codec's length and
    /// checksum checks: `hnsw_rs` exits the process on some truncated inputs.
    pub fn load(metric: Metric, dump: &GraphDump) -> Result<Graph, String> {
        let dir =
            tempfile::tempdir().map_err(|e| format!("creating a temporary directory: {e}"))?;
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

    /// Neighbour lists of every point on every layer, as point numbers sorted per list;
    /// used by tests to prove that a reload restores the exact graph.
    pub fn neighbour_lists(&self) -> Vec<(usize, Vec<Vec<usize>>)> {
        let mut out = Vec::new();
        if self.is_empty() {
            return out;
        }
        with_hnsw!(self, h => {
            for point in h.get_point_indexation() {
                let layers = point
                    .get_neighborhood_id()
                    .into_iter()
                    .map(|layer| {
                        let mut ids: Vec<usize> = layer.iter().map(|n| n.get_origin_id()).collect();
                        ids.sort_unstable();
                        ids
                    })
                    .collect();
                out.push((point.get_origin_id(), layers));
            }
        });
        out.sort_by_key(|(id, _)| *id);
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

/// Adapts a closure over point numbers to `hnsw_rs`' filter trait.
struct PointFilter<'a>(&'a dyn Fn(usize) -> bool);

impl FilterT for PointFilter<'_> {
    fn hnsw_filter(&self, id: &usize) -> bool {
        (self.0)(*id)
    }
}
