//! `vectord-bench --filtered`: filtered search in-process, first by reading metadata (no
//! field indexes), then with field indexes declared on the same index (same graphs), for
//! filters of every width. Item `i` carries a keyword of 100 values (`kw`), an integer in
//! 0..1000 (`n`) and a float in [0, 100) (`price`), drawn from a hash of `i` so that they
//! have nothing to do with where the vector lies.
//!
//! For each filter: recall@10 against an exact scan of the matching items, the first
//! search's time against the median of the repeated ones, queries/s against the
//! unfiltered search at the same ef and against that exact scan; then `get` of 1,000 ids,
//! `delete` by a 1 % filter, and the memory of the field indexes per point.

use std::time::Instant;

use serde_json::{json, Map, Value};
use vectord_actors::distance::{kernels, Metric};
use vectord_actors::filter::Filter;
use vectord_actors::index::{Index, IndexParams};
use vectord_actors::params::{parse_fields, Limits};

use crate::data::Dataset;
use crate::raw::{build_index_with, checked_queries, settle, stored};

/// The metadata of item `i`.
fn metadata(i: usize) -> Map<String, Value> {
    let h = mix(i as u64);
    let value = json!({
        "kw": format!("k{}", h % 100),
        "n": (h >> 8) % 1000,
        "price": ((h >> 20) % 100_000) as f64 / 1000.0,
    });
    value.as_object().cloned().unwrap_or_default()
}

/// splitmix64's finalizer: neighbouring items get unrelated values.
fn mix(x: u64) -> u64 {
    let mut h = x.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// The filters measured: a name and the filter.
fn filters() -> Vec<(&'static str, Value)> {
    vec![
        ("50 % (n < 500)", json!({"n": {"$lt": 500}})),
        ("10 % (n < 100)", json!({"n": {"$lt": 100}})),
        ("1 % (kw = k7)", json!({"kw": "k7"})),
        ("0.1 % (n = 7)", json!({"n": 7})),
        (
            "$in of 3 keywords (3 %)",
            json!({"kw": {"$in": ["k1", "k2", "k3"]}}),
        ),
        (
            "1 % range (40 <= price < 41)",
            json!({"price": {"$gte": 40, "$lt": 41}}),
        ),
        (
            "$and keyword, range (0.5 %)",
            json!({"$and": [{"kw": "k3"}, {"price": {"$lt": 50}}]}),
        ),
        (
            "$and 20 keywords, n < 250 (5 %)",
            json!({"$and": [
                {"kw": {"$in": (0..20).map(|j| format!("k{j}")).collect::<Vec<_>>()}},
                {"n": {"$lt": 250}}
            ]}),
        ),
    ]
}

/// One filter's figures in one mode.
struct Row {
    recall: f64,
    first_ms: f64,
    repeated_ms: f64,
    qps: f64,
}

/// The `k` nearest of `matching` to `q`, by an exact scan (as the index measures
/// distance: 1 - dot of unit vectors under cosine, squared L2).
fn exact(base: &[Vec<f32>], matching: &[usize], q: &[f32], metric: Metric, k: usize) -> Vec<usize> {
    let kern = kernels();
    let mut scored: Vec<(f32, usize)> = matching
        .iter()
        .map(|&i| {
            let d = match metric {
                Metric::L2 => (kern.l2_squared)(q, &base[i]),
                Metric::Cosine | Metric::Ip => 1.0 - (kern.dot)(q, &base[i]),
            };
            (d, i)
        })
        .collect();
    let k = k.min(scored.len());
    if k > 0 && k < scored.len() {
        scored.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
        scored.truncate(k);
    }
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    scored.into_iter().map(|(_, i)| i).collect()
}

/// First searches measured per filter: each a variant never searched before.
const FIRSTS: usize = 5;

/// `value` inside `depth` `$and`s of one: the same filter, and another to the segments'
/// memory of filter results (keyed by the filter's text).
fn nested(value: &Value, depth: usize) -> Value {
    (0..depth).fold(value.clone(), |v, _| json!({ "$and": [v] }))
}

/// Searches the first `FIRSTS` queries with a fresh variant of the filter each (first
/// searches), then every query with `f`, twice (recall, then queries/s, one thread); the
/// repeated time is that of the same first queries in the second pass, so that both
/// times are of the same queries.
fn run(
    index: &Index,
    queries: &[Vec<f32>],
    truth: &[Vec<usize>],
    (f, fresh): (Option<&Filter>, &[Filter]),
    ef: usize,
    k: usize,
) -> Row {
    let ms = |q: &[f32], f: Option<&Filter>| {
        let started = Instant::now();
        let hits = index.search(q, k, ef, f);
        (started.elapsed().as_secs_f64() * 1000.0, hits)
    };
    let firsts: Vec<f64> = fresh
        .iter()
        .zip(queries)
        .map(|(v, q)| ms(q, Some(v)).0)
        .collect();
    let mut recall = 0.0;
    for (q, t) in queries.iter().zip(truth) {
        let found: Vec<usize> = ms(q, f)
            .1
            .iter()
            .filter_map(|h| h.id.parse().ok())
            .collect();
        recall += crate::data::recall(&found, t, k);
    }
    let mut repeated = Vec::new();
    let started = Instant::now();
    for (i, q) in queries.iter().enumerate() {
        let (took, hits) = ms(q, f);
        std::hint::black_box(hits);
        if i < firsts.len() {
            repeated.push(took);
        }
    }
    let qps = queries.len() as f64 / started.elapsed().as_secs_f64().max(1e-9);
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    Row {
        recall: recall / queries.len().max(1) as f64,
        first_ms: mean(&firsts),
        repeated_ms: mean(&repeated),
        qps,
    }
}

// long-fn: one table's steps in order, each a few lines; split, they would pass a dozen values around.
pub fn filtered(data: &Dataset, p: &IndexParams, ef: usize, k: usize) -> Result<(), String> {
    eprintln!("building {} with metadata...", data.name);
    let (index, took) = build_index_with(data, p, crate::BATCH, &metadata);
    eprintln!(
        "  built in {took:.1} s, {} segments",
        index.segments().len()
    );
    let queries = checked_queries(data, p);
    if queries.len() < 2 {
        return Err("--filtered needs at least 2 queries".into());
    }
    let base = stored(data, p);
    let n = base.len();
    // Deep enough for the nested variants.
    let limits = vectord_actors::filter::FilterLimits {
        max_depth: 32,
        ..Limits::default().filter()
    };
    // Each filter twice: as written (searched without field indexes), and inside an
    // `$and` of one, which means the same but is another filter to the segments' memory
    // of filter results, so that its first search with field indexes is a first search.
    let parse = |v: Value| Filter::parse(&v, "filter", limits).map_err(|e| e.to_string());
    let mut parsed: Vec<(&str, Filter, Filter, Vec<usize>)> = Vec::new();
    let mut fresh: Vec<[Vec<Filter>; 2]> = Vec::new();
    for (name, value) in filters() {
        let f = parse(value.clone())?;
        let matching: Vec<usize> = (0..n)
            .filter(|&i| f.matches(&i.to_string(), Some(&metadata(i))))
            .collect();
        let variants = |from: usize| -> Result<Vec<Filter>, String> {
            (from..from + FIRSTS)
                .map(|d| parse(nested(&value, d)))
                .collect()
        };
        fresh.push([variants(2)?, variants(2 + FIRSTS)?]);
        parsed.push((name, f, parse(nested(&value, 1))?, matching));
    }
    // Ground truth, and the exact scan's queries/s, per filter.
    let mut truths = Vec::new();
    let mut scan_qps = Vec::new();
    for (name, _, _, matching) in &parsed {
        eprintln!("  exact scan of the items passing {name}...");
        let started = Instant::now();
        let truth: Vec<Vec<usize>> = queries
            .iter()
            .map(|q| exact(&base, matching, q, p.distance, k))
            .collect();
        scan_qps.push(queries.len() as f64 / started.elapsed().as_secs_f64().max(1e-9));
        truths.push(truth);
    }
    let all: Vec<usize> = (0..n).collect();
    let truth_all: Vec<Vec<usize>> = queries
        .iter()
        .map(|q| exact(&base, &all, q, p.distance, k))
        .collect();
    let unfiltered = run(&index, &queries, &truth_all, (None, &[]), ef, k);

    let measure_all = |index: &Index, second: bool| -> Vec<Row> {
        parsed
            .iter()
            .zip(&truths)
            .zip(&fresh)
            .map(|(((_, f, again, _), truth), fresh)| {
                let f = if second { again } else { f };
                run(
                    index,
                    &queries,
                    truth,
                    (Some(f), &fresh[second as usize]),
                    ef,
                    k,
                )
            })
            .collect()
    };
    let without = measure_all(&index, false);
    let before = index.stats().memory_bytes;
    let declared = parse_fields(&json!({"kw": "keyword", "n": "integer", "price": "float"}))
        .map_err(|e| e.to_string())?;
    index.declare_fields(&declared).map_err(|e| e.to_string())?;
    let started = Instant::now();
    settle(&index);
    let indexing_s = started.elapsed().as_secs_f64();
    let field_bytes = index.stats().memory_bytes.saturating_sub(before);
    let with = measure_all(&index, true);

    println!(
        "\n## filtered search, in-process: {} ({n} x {}-d), ef {ef}, k {k}, {} queries",
        data.name,
        data.dim,
        queries.len()
    );
    println!(
        "Unfiltered: recall@10 {:.3}, {:.0} queries/s (1 thread).",
        unfiltered.recall, unfiltered.qps
    );
    println!("First: the mean of {FIRSTS} first searches (each a variant of the filter never searched); repeated: the same queries again.");
    println!("| filter | passing | field indexes | recall@10 | first ms | repeated ms | QPS | / unfiltered | exact scan QPS |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (i, (name, _, _, matching)) in parsed.iter().enumerate() {
        for (mode, row) in [("no", &without[i]), ("yes", &with[i])] {
            println!(
                "| {name} | {:.2} % | {mode} | {:.3} | {:.2} | {:.2} | {:.0} | {:.2} | {:.0} |",
                matching.len() as f64 * 100.0 / n as f64,
                row.recall,
                row.first_ms,
                row.repeated_ms,
                row.qps,
                row.qps / unfiltered.qps.max(1e-9),
                scan_qps[i]
            );
        }
    }
    println!(
        "Field indexes (kw keyword, n integer, price float): {:.1} bytes per point, built for the sealed segments in {indexing_s:.1} s.",
        field_bytes as f64 / n.max(1) as f64
    );

    // Items by ids and by filter.
    let ids: Vec<String> = (0..1000).map(|j| ((j * 7919) % n).to_string()).collect();
    let started = Instant::now();
    let got = index.get_many(
        &ids,
        None,
        vectord_actors::index::Extras {
            vector: true,
            document: false,
        },
    );
    let get_ms = started.elapsed().as_secs_f64() * 1000.0;
    let one_percent = &parsed[2].2;
    let started = Instant::now();
    let chosen = index.matching_ids(one_percent);
    let deleted = index.delete_many(&chosen);
    let delete_ms = started.elapsed().as_secs_f64() * 1000.0;
    println!(
        "get of 1,000 ids (with vectors): {get_ms:.2} ms ({} found); delete by a 1 % filter: {delete_ms:.2} ms ({} items).",
        got.len(),
        deleted.len()
    );
    Ok(())
}
