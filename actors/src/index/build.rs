//! Building the graph of a sealed segment: `hnsw_rs` links every point (on all cores, with
//! `parallel_insert`), then the graph is copied out into the flat layout and the `hnsw_rs`
//! structure dropped. The copy costs about 37 ms per 10k points, and the flat search runs
//! at 3× `hnsw_rs`' own speed at identical recall (measured when the flat layout came in;
//! `vectord-bench` compares them again: `docs/benchmarks.md`).

use super::hnsw::Graph;
use super::job_threads::job_threads;
use super::points::Points;
use super::sealed::FlatGraph;
use crate::distance::Metric;

/// Builds the graph of every point of `points` (tombstoned ones too: the numbering stays
/// the segment's, so its tombstones keep meaning the same points). None for no points.
pub fn build_graph(
    points: &Points,
    metric: Metric,
    m: usize,
    ef_construction: usize,
) -> Result<Option<FlatGraph>, String> {
    let n = points.len();
    if n == 0 {
        return Ok(None);
    }
    let pool = job_threads("build")?;
    let flat = pool.install(|| -> Result<FlatGraph, String> {
        let graph = Graph::new(metric, m, ef_construction, n);
        let batch: Vec<(&[f32], usize)> = (0..n).map(|p| (points.vector(p), p)).collect();
        // hnsw_rs asserts on its invariants; a panic must cost this build only.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| graph.insert(&batch)))
            .map_err(|_| "hnsw_rs panicked while building a graph".to_string())?;
        drop(batch);
        graph.export(n, m)
    })?;
    drop(pool);
    Ok(Some(flat))
}
