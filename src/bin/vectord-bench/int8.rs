//! `--int8`: int8 quantization against f32, in-process, one thread: two indexes of the same
//! data built as vectord builds them (one plain, one with `"quantization": {"type": "int8"}`),
//! searched at each ef, the quantized one with rescoring (the default) and without.

use std::sync::Arc;

use vectord_actors::index::{Extras, Index, IndexParams, Rescore};
use vectord_actors::params::{Quantization, QuantizationKind};

use crate::data::Dataset;
use crate::{raw, SearchFigures, BATCH};

/// Builds both indexes, searches them and prints the table and the ratios.
pub fn int8(data: &Dataset, p: &IndexParams, efs: &[usize], k: usize) -> Result<(), String> {
    eprintln!("f32 index...");
    let (plain, plain_s) = raw::build_index(data, p, BATCH);
    let quantized = IndexParams {
        quantization: Some(Quantization {
            kind: QuantizationKind::Int8,
            quantile: 0.99,
        }),
        ..p.clone()
    };
    eprintln!("int8 index...");
    let (coded, coded_s) = raw::build_index(data, &quantized, BATCH);
    let n = data.base.len() as f64;
    println!(
        "\n## int8 quantization: {} ({} x {}-d, {}), in-process, 1 thread, k {k}",
        data.name,
        data.base.len(),
        data.dim,
        data.metric.as_str()
    );
    println!(
        "build: f32 {:.0} vectors/s, int8 {:.0} vectors/s; heap per vector: f32 {:.0} bytes, int8 {:.0} bytes",
        n / plain_s,
        n / coded_s,
        plain.stats().memory_bytes as f64 / n,
        coded.stats().memory_bytes as f64 / n
    );
    println!("| ef | f32 recall@10 | f32 q/s | int8 + rescore recall@10 | q/s | int8 alone recall@10 | q/s |");
    println!("|---|---|---|---|---|---|---|");
    let (mut f32_curve, mut int8_curve) = (Vec::new(), Vec::new());
    for &ef in efs {
        let f = raw::search(&plain, data, ef, k);
        let r = search(&coded, data, ef, k, Rescore::default());
        let a = search(
            &coded,
            data,
            ef,
            k,
            Rescore {
                rescore: false,
                ..Rescore::default()
            },
        );
        println!(
            "| {ef} | {:.3} | {:.0} | {:.3} | {:.0} | {:.3} | {:.0} |",
            f.recall_at_10,
            f.qps_1_client,
            r.recall_at_10,
            r.qps_1_client,
            a.recall_at_10,
            a.qps_1_client
        );
        f32_curve.push((f.recall_at_10, f.qps_1_client));
        int8_curve.push((r.recall_at_10, r.qps_1_client));
    }
    for target in [0.95, 0.98, 0.99] {
        match (best_at(&int8_curve, target), best_at(&f32_curve, target)) {
            (Some(q), Some(f)) => println!(
                "best q/s at recall@10 >= {target}: int8 + rescore {q:.0}, f32 {f:.0}: {:.2}x",
                q / f
            ),
            _ => println!("recall@10 {target}: not reached by both"),
        }
    }
    Ok(())
}

/// The best queries/s among the points of `curve` (recall, q/s) that reach `target`.
fn best_at(curve: &[(f64, f64)], target: f64) -> Option<f64> {
    curve
        .iter()
        .filter(|(r, _)| *r >= target)
        .map(|&(_, q)| q)
        .reduce(f64::max)
}

fn search(
    index: &Arc<Index>,
    data: &Dataset,
    ef: usize,
    k: usize,
    rescore: Rescore,
) -> SearchFigures {
    let queries = raw::checked_queries(data, index.params());
    let one = |i: usize| -> Result<Vec<usize>, String> {
        let hits = index.search_with(&queries[i], k, ef, None, Extras::default(), rescore);
        Ok(hits.iter().filter_map(|h| h.id.parse().ok()).collect())
    };
    crate::measure(ef, queries.len(), &data.truth, one).unwrap_or_else(|e| {
        eprintln!("int8 search failed: {e}");
        SearchFigures::new(ef, 0.0, 0.0, 0.0, &[])
    })
}
