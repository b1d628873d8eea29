//! In-process measurements: our index code with no HTTP in between.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use vectord_actors::distance::{kernels, Metric};
use vectord_actors::index::build::build_graph;
use vectord_actors::index::hnsw::Graph;
use vectord_actors::index::insert::extend_graph;
use vectord_actors::index::points::Points;
use vectord_actors::index::scratch::with_scratch;
use vectord_actors::index::sealed::FlatGraph;
use vectord_actors::index::{EngineConfig, Index, IndexParams, JobKind, NewItem};

use crate::data::Dataset;
use crate::SearchFigures;

pub fn params(data: &Dataset, name: &str) -> IndexParams {
    IndexParams {
        name: name.into(),
        dim: data.dim,
        distance: data.metric,
        m: 16,
        ef_construction: 200,
        ef_search: 64,
        quantization: None,
        on_disk: false,
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

/// One graph of every vector built by our parallel insert, as a seal builds it: its
/// vectors/s, and its recall@10 at ef 64 over the data set's queries.
pub fn own_graph_build(data: &Dataset, p: &IndexParams) -> Result<(f64, f64), String> {
    let mut points = Points::with_capacity(p.dim, data.base.len(), data.base.len() * 8);
    for (i, v) in stored(data, p).iter().enumerate() {
        points.push(&i.to_string(), v, Map::new(), None);
    }
    let started = Instant::now();
    let graph = build_graph(&points, p.distance, p.m, p.ef_construction, 1)?
        .ok_or("no vectors to build a graph of")?;
    let vps = data.base.len() as f64 / started.elapsed().as_secs_f64();
    Ok((vps, graph_recall(&graph, &points, data, p, 64)))
}

/// Runs the index's background jobs until none is due, as its actor would.
pub fn settle(index: &Index) {
    loop {
        let mut ran = false;
        for kind in [JobKind::Seal, JobKind::Merge] {
            if let Some(job) = index.next_job(kind) {
                match index.build(job) {
                    Ok(built) => {
                        // One line per job: where a large build spends its time.
                        eprintln!("  {}", index.install(built).summary);
                        ran = true;
                    }
                    Err(e) => eprintln!("background job failed: {e}"),
                }
            }
        }
        if !ran {
            return;
        }
    }
}

/// Builds our index as vectord builds it for a client: batches of `batch` added
/// (acknowledged at once), and each growing segment sealed as soon as it is frozen, with
/// the merges the policy then calls for, as vectord's background does when it keeps up;
/// the tail sealed at the end. The index thus has the segments the server's has after the
/// same ingest, so that in-process and HTTP searches do the same work. Returns the index
/// and the seconds it all took.
pub fn build_index(data: &Dataset, p: &IndexParams, batch: usize) -> (Arc<Index>, f64) {
    build_index_with(data, p, batch, &|_| Map::new())
}

/// `build_index`, item `i` carrying `metadata(i)`.
pub fn build_index_with(
    data: &Dataset,
    p: &IndexParams,
    batch: usize,
    metadata: &dyn Fn(usize) -> Map<String, Value>,
) -> (Arc<Index>, f64) {
    let index = Index::new(p.clone(), EngineConfig::default());
    let started = Instant::now();
    for (b, chunk) in data.base.chunks(batch).enumerate() {
        let items = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| NewItem {
                document: None,
                id: (b * batch + i).to_string(),
                vector: v.clone(),
                metadata: metadata(b * batch + i),
            })
            .collect();
        match p
            .check_items(items)
            .map(|items| index.add(items, b as u64 + 1))
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) | Err(e) => eprintln!("batch {b} refused: {e}"),
        }
        settle(&index);
    }
    index.freeze_if_at_least(1);
    settle(&index);
    (Arc::new(index), started.elapsed().as_secs_f64())
}

/// The queries as the index takes them (unit length under cosine); a query it refuses
/// becomes zeros, which finds nothing and shows as lost recall.
pub fn checked_queries(data: &Dataset, p: &IndexParams) -> Vec<Vec<f32>> {
    data.queries
        .iter()
        .map(|q| {
            p.check_vector(q.clone(), "query")
                .unwrap_or_else(|_| vec![0.0; p.dim])
        })
        .collect()
}

/// Recall, throughput with 1 and 2 threads, and latency percentiles at one `ef`.
pub fn search(index: &Arc<Index>, data: &Dataset, ef: usize, k: usize) -> SearchFigures {
    let p = index.params().clone();
    let queries = checked_queries(data, &p);
    let one = |i: usize| -> Result<Vec<usize>, String> {
        let hits = index.search(&queries[i], k, ef, None);
        Ok(hits.iter().filter_map(|h| h.id.parse().ok()).collect())
    };
    crate::measure(ef, queries.len(), &data.truth, one).unwrap_or_else(|e| {
        eprintln!("in-process search failed: {e}");
        SearchFigures::new(ef, 0.0, 0.0, 0.0, &[])
    })
}

/// Milliseconds per query of an exact scan over a full growing segment (the first
/// `seal_points` vectors, never sealed), one thread, k 10: what a search pays on top of
/// the graphs while a segment fills up. Returns the number of vectors scanned too.
pub fn growing_scan_ms(data: &Dataset, p: &IndexParams) -> (usize, f64) {
    let config = EngineConfig::default();
    let n = data.base.len().min(config.seal_points);
    let index = Index::new(p.clone(), config);
    let items = data.base[..n]
        .iter()
        .enumerate()
        .map(|(i, v)| NewItem {
            document: None,
            id: i.to_string(),
            vector: v.clone(),
            metadata: Map::new(),
        })
        .collect();
    if let Err(e) = p.check_items(items).map(|items| index.add(items, 1)) {
        eprintln!("growing-scan index refused its batch: {e}");
        return (0, 0.0);
    }
    let queries: Vec<Vec<f32>> = data
        .queries
        .iter()
        .take(200)
        .filter_map(|q| p.check_vector(q.clone(), "query").ok())
        .collect();
    let started = Instant::now();
    for q in &queries {
        std::hint::black_box(index.search(q, 10, 64, None));
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0 / queries.len().max(1) as f64;
    (n, ms)
}

/// Seconds to encode, and to decode and restore, the index's LHV1 file, and its size.
pub fn reload(index: &Index) -> Result<(f64, f64, usize), String> {
    let started = Instant::now();
    let bytes = index.to_one_object()?;
    let encode = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let restored = Index::from_one_object(&bytes, EngineConfig::default())?;
    let load = started.elapsed().as_secs_f64();
    if restored.stats().count != index.stats().count {
        return Err("restored index has another count".into());
    }
    Ok((encode, load, bytes.len()))
}

/// A merge by insertion against a rebuild, on one data set: a seal's build makes the graph of
/// the first quarter of the vectors (as a seal would), our insert links the other three
/// quarters into it (as a merge does), and a seal's build makes the graph of all of them (as a
/// merge did before). Prints the seconds of each and recall@10 of both graphs at each ef,
/// searched the same way.
pub fn merge_vs_rebuild(data: &Dataset, p: &IndexParams, efs: &[usize]) -> Result<(), String> {
    let vectors = stored(data, p);
    let n = vectors.len();
    let mut all = Points::with_capacity(p.dim, n, n * 8);
    for (i, v) in vectors.iter().enumerate() {
        all.push(&i.to_string(), v, Map::new(), None);
    }
    let mut quarter = Points::with_capacity(p.dim, n / 4, n * 2);
    for i in 0..n / 4 {
        quarter.push_from(&all, i);
    }
    let timed = |what: &str, f: &dyn Fn() -> Result<Option<FlatGraph>, String>| {
        eprintln!("{what}...");
        let started = Instant::now();
        let graph = f()?.ok_or("no points to build a graph of")?;
        Ok::<_, String>((graph, started.elapsed().as_secs_f64()))
    };
    let (base, base_s) = timed("build of the first quarter", &|| {
        build_graph(&quarter, p.distance, p.m, p.ef_construction, 1)
    })?;
    let (extended, extend_s) = timed("linking the other three quarters into it", &|| {
        extend_graph(&base, &all, p.distance, p.ef_construction, 1).map(Some)
    })?;
    let (rebuilt, rebuild_s) = timed("build of all of them", &|| {
        build_graph(&all, p.distance, p.m, p.ef_construction, 2)
    })?;
    let recall = |graph: &FlatGraph, ef: usize| graph_recall(graph, &all, data, p, ef);
    let inserted = n - n / 4;
    println!(
        "\n## merge by insertion vs rebuild: {} ({n} x {}-d)",
        data.name, p.dim
    );
    println!("| measure | value |\n|---|---|");
    println!("| build of the first {} points | {base_s:.1} s |", n / 4);
    println!(
        "| merge: {inserted} points linked into that graph by our insert | {extend_s:.1} s ({:.0} points/s) |",
        inserted as f64 / extend_s.max(1e-9)
    );
    println!(
        "| rebuild: build of all {n} points | {rebuild_s:.1} s ({:.0} points/s); merge / rebuild time {:.2} |",
        n as f64 / rebuild_s.max(1e-9),
        extend_s / rebuild_s.max(1e-9)
    );
    for &ef in efs {
        println!(
            "| recall@10 at ef {ef}: merged / rebuilt graph | {:.3} / {:.3} |",
            recall(&extended, ef),
            recall(&rebuilt, ef)
        );
    }
    Ok(())
}

/// Recall@10 of one graph over `points` at `ef`, searched as a sealed segment is.
fn graph_recall(
    graph: &FlatGraph,
    points: &Points,
    data: &Dataset,
    p: &IndexParams,
    ef: usize,
) -> f64 {
    let queries = checked_queries(data, p);
    let kern = kernels();
    let (dot, l2) = (kern.dot, kern.l2_squared);
    let distance = |a: &[f32], b: &[f32]| match p.distance {
        Metric::L2 => l2(a, b),
        Metric::Cosine | Metric::Ip => 1.0 - dot(a, b),
    };
    let total: f64 = queries
        .iter()
        .zip(&data.truth)
        .map(|(q, truth)| {
            let found: Vec<usize> =
                with_scratch(|s| graph.search(points, q, ef.max(10), &distance, &|_| true, s))
                    .iter()
                    .map(|s| s.point as usize)
                    .collect();
            crate::data::recall(&found, truth, 10)
        })
        .sum();
    total / queries.len().max(1) as f64
}
