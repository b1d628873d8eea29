//! Tests of the index without actors: the helpers they share; one file per concern.

mod backpressure;
mod filters;
mod items;
mod jobs;
mod recall;
mod round_trips;

use super::*;
use crate::distance::Metric;
use serde_json::json;

use crate::sample::seeded_vectors as random_vectors;

fn params(distance: Metric, dim: usize) -> IndexParams {
    IndexParams {
        name: "test".into(),
        dim,
        distance,
        m: 16,
        ef_construction: 200,
        ef_search: 64,
        quantization: None,
        on_disk: false,
    }
}

/// Small segments, so that tests of a few thousand points see many of them.
fn small(seal_points: usize) -> EngineConfig {
    EngineConfig {
        seal_points,
        max_unsealed_points: 1_000_000,
        ..EngineConfig::default()
    }
}

fn items(vectors: &[Vec<f32>], prefix: &str, p: &IndexParams) -> Vec<NewItem> {
    items_from(0, vectors, prefix, p)
}

/// Items `prefix{first}..`, with metadata `{"i": number, "parity": number % 2}`.
fn items_from(first: usize, vectors: &[Vec<f32>], prefix: &str, p: &IndexParams) -> Vec<NewItem> {
    let raw = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (first + i, v))
        .map(|(i, v)| NewItem {
            document: None,
            id: format!("{prefix}{i}"),
            vector: v.clone(),
            metadata: serde_json::from_value(json!({"i": i, "parity": i % 2})).unwrap(),
        })
        .collect();
    p.check_items(raw).unwrap()
}

/// Adds in batches of `batch`, as clients do.
fn add_all(index: &Index, data: &[Vec<f32>], prefix: &str, batch: usize) {
    let p = index.params().clone();
    for (b, chunk) in data.chunks(batch).enumerate() {
        index
            .add(items_from(b * batch, chunk, prefix, &p), 0)
            .unwrap();
    }
}

/// Runs background jobs until none is due, as the index actor does.
fn settle(index: &Index) {
    loop {
        let mut ran = false;
        for kind in [JobKind::Seal, JobKind::Merge] {
            if let Some(job) = index.next_job(kind) {
                let built = index.build(job).unwrap();
                index.install(built);
                ran = true;
            }
        }
        if !ran {
            return;
        }
    }
}

fn query(p: &IndexParams, v: &[f32]) -> Vec<f32> {
    p.check_vector(v.to_vec(), "q").unwrap()
}

/// Exact top-k ids by the API's distance.
fn brute_force(p: &IndexParams, data: &[Vec<f32>], q: &[f32], k: usize) -> Vec<usize> {
    let mut all: Vec<(f32, usize)> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (p.distance.reported(q, &query(p, v)), i))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    all.into_iter().take(k).map(|(_, i)| i).collect()
}

fn ids(hits: &[Hit]) -> Vec<String> {
    hits.iter().map(|h| h.id.clone()).collect()
}

/// A filter, as a request would send it.
fn filter_of(value: Value) -> crate::filter::Filter {
    crate::filter::Filter::parse(&value, "filter", crate::params::Limits::default().filter())
        .unwrap()
}
