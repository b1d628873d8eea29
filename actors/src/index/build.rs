//! Building the graph of a sealed segment: our own parallel HNSW insert (`insert`) links
//! every point on all cores, straight into the flat layout that searches read. It replaced
//! `hnsw_rs`' `parallel_insert` on the write path, which built the same graphs several times
//! slower and then had to be copied out (`docs/benchmarks.md`, "Seals by our own insert");
//! `hnsw_rs` stays for reading 0.1.0 files and as a reference in the recall tests.

use super::insert::new_graph;
use super::points::Points;
use super::sealed::FlatGraph;
use crate::distance::Metric;

/// Builds the graph of every point of `points` (tombstoned ones too: the numbering stays
/// the segment's, so its tombstones keep meaning the same points). None for no points.
/// `seed` draws the points' layers.
pub fn build_graph(
    points: &Points,
    metric: Metric,
    m: usize,
    ef_construction: usize,
    seed: u64,
) -> Result<Option<FlatGraph>, String> {
    if points.is_empty() {
        return Ok(None);
    }
    new_graph(points, metric, m, ef_construction, seed).map(Some)
}
