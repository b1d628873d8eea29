//! In-process measurements: our index code with no HTTP in between.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Map;
use vectord_actors::codec;
use vectord_actors::index::graph::Graph;
use vectord_actors::index::{Index, IndexParams, NewItem};

use crate::data::{recall, Dataset};
use crate::SearchFigures;

pub fn params(data: &Dataset, name: &str) -> IndexParams {
    IndexParams {
        name: name.into(),
        dim: data.dim,
        distance: data.metric,
        m: 16,
        ef_construction: 200,
        ef_search: 64,
    }
}

/// The vectors as the index stores them (unit length under cosine).
pub fn stored(data: &Dataset, p: &IndexParams) -> Vec<Vec<f32>> {
    data.base
        .iter()
        .map(|v| {
            p.check_vector(v.clone(), "base")
                .unwrap_or_else(|_| vec![0.0; p.dim])
        })
        .collect()
}

/// Seconds to build a bare `hnsw_rs` graph of every vector with `parallel_insert`.
pub fn raw_graph_build(data: &Dataset, p: &IndexParams) -> f64 {
    let vectors = stored(data, p);
    let started = Instant::now();
    let graph = Graph::new(p.distance, p.m, p.ef_construction, vectors.len());
    let points: Vec<(&[f32], usize)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (v.as_slice(), i))
        .collect();
    graph.insert(&points);
    started.elapsed().as_secs_f64()
}

/// Builds our index in batches of `batch`; returns it and the seconds it took.
pub fn build_index(data: &Dataset, p: &IndexParams, batch: usize) -> (Arc<Index>, f64) {
    let index = Index::new(p.clone());
    let started = Instant::now();
    for (b, chunk) in data.base.chunks(batch).enumerate() {
        let items = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| NewItem {
                id: (b * batch + i).to_string(),
                vector: v.clone(),
                metadata: Map::new(),
            })
            .collect();
        match p.check_items(items) {
            Ok(items) => {
                index.add(items);
            }
            Err(e) => eprintln!("batch {b} refused: {e}"),
        }
    }
    (Arc::new(index), started.elapsed().as_secs_f64())
}

/// Recall, throughput with 1 and 2 threads, and latency percentiles at one `ef`.
pub fn search(index: &Arc<Index>, data: &Dataset, ef: usize, k: usize) -> SearchFigures {
    let p = index.params().clone();
    let queries: Vec<Vec<f32>> = data
        .queries
        .iter()
        .map(|q| {
            p.check_vector(q.clone(), "query")
                .unwrap_or_else(|_| vec![0.0; p.dim])
        })
        .collect();
    let run = |qs: &[Vec<f32>]| -> (Vec<Vec<usize>>, Vec<Duration>) {
        let mut found = Vec::with_capacity(qs.len());
        let mut lat = Vec::with_capacity(qs.len());
        for q in qs {
            let t = Instant::now();
            let hits = index.search(q, k, ef, None);
            lat.push(t.elapsed());
            found.push(hits.iter().filter_map(|h| h.id.parse().ok()).collect());
        }
        (found, lat)
    };
    // one thread
    let started = Instant::now();
    let (found, mut lat) = run(&queries);
    let qps1 = queries.len() as f64 / started.elapsed().as_secs_f64();
    // two threads, each on half the queries
    let started = Instant::now();
    let half = queries.len().div_ceil(2);
    std::thread::scope(|s| {
        let a = s.spawn(|| run(&queries[..half]));
        let b = s.spawn(|| run(&queries[half..]));
        let _ = (a.join(), b.join());
    });
    let qps2 = queries.len() as f64 / started.elapsed().as_secs_f64();
    let r = found
        .iter()
        .zip(&data.truth)
        .map(|(f, t)| recall(f, t, k))
        .sum::<f64>()
        / queries.len().max(1) as f64;
    SearchFigures::new(ef, r, qps1, qps2, &mut lat)
}

/// Seconds to encode, and to decode and restore, the index's LHV1 file, and its size.
pub fn reload(index: &Index) -> Result<(f64, f64, usize), String> {
    let started = Instant::now();
    let bytes = index.snapshot()?;
    let encode = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let (envelope, dump) = codec::decode(&bytes).map_err(|e| e.to_string())?;
    let restored = Index::restore(envelope, dump)?;
    let load = started.elapsed().as_secs_f64();
    if restored.stats().count != index.stats().count {
        return Err("restored index has another count".into());
    }
    Ok((encode, load, bytes.len()))
}
