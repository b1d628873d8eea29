//! vectord-bench: recall, search throughput and latency, ingest (acknowledged and indexed),
//! reload and memory, for our index in-process and for a running vectord over HTTP, and
//! optionally hnswlib on the same data, measured in one run on one machine so that the
//! ratios between them mean something. Prints tables and writes the same figures as JSON.
//!
//!   cargo build --release && target/release/vectord-bench --data path/to/minilm-dev --hnswlib
//!   target/release/vectord-bench --synthetic 100000 --dim 384
//!   target/release/vectord-bench --persistence    # what saves cost (docs/benchmarks.md)
//!   target/release/vectord-bench --smoke          # tiny run for CI: completes, recall sane

mod data;
mod filtered;
mod http;
mod int8;
mod on_disk;
mod persist;
mod raw;
mod replicas;
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde::Serialize;

use data::Dataset;

#[derive(Debug, Parser)]
#[command(
    name = "vectord-bench",
    about = "Benchmarks vectord in-process and over HTTP"
)]
struct Args {
    /// A directory of base.fvecs, query.fvecs, groundtruth.cosine.ivecs (e.g. minilm-dev).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Also (or instead) run on N synthetic vectors (ground truth cached).
    #[arg(long, value_name = "N")]
    synthetic: Option<usize>,
    /// Dimension of the synthetic vectors.
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Also run hnswlib (bench/hnswlib_bench.py, `pip install hnswlib numpy`) on the same
    /// data (a synthetic set is written out for it) and compare build speed and search
    /// throughput at equal recall.
    #[arg(long)]
    hnswlib: bool,
    /// Vectors ingested into a second index while the first is searched (0 = skip).
    #[arg(long, default_value_t = 100_000)]
    during_ingest: usize,
    /// A tiny run for CI: 3,000 synthetic 32-d vectors; fails if recall is not sane.
    #[arg(long)]
    smoke: bool,
    /// Send vectors over HTTP as base64 of little-endian f32 instead of JSON numbers.
    #[arg(long)]
    base64: bool,
    /// Queries to run (at most the data set's).
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// ef values to measure.
    #[arg(long, value_delimiter = ',', default_value = "16,24,32,48,64,128,256")]
    ef: Vec<usize>,
    /// Where to write the JSON report.
    #[arg(long, default_value = "bench-results/latest.json")]
    json: PathBuf,
    /// Where synthetic ground truth is cached.
    #[arg(long, default_value = "bench-results/cache")]
    cache: PathBuf,
    /// Skip the HTTP half.
    #[arg(long)]
    no_http: bool,
    /// Skip the bare hnsw_rs build that the index build is compared with (it takes about
    /// 15 minutes at a million vectors on 2 cores).
    #[arg(long)]
    no_raw_build: bool,
    /// Instead of the rest: compare a merge by insertion with a rebuild on each data set
    /// (a quarter built, our insert links in the rest, the whole built again).
    #[arg(long)]
    merge: bool,
    /// Instead of the rest: filtered search in-process on each data set at ef 64, without
    /// and with field indexes (filters from half the items to a thousandth, ranges, `$in`,
    /// `$and`), recall against an exact scan of the matching items (docs/benchmarks.md).
    #[arg(long)]
    filtered: bool,
    /// Instead of the rest: int8 quantization against f32 in-process on each data set
    /// (recall and 1-thread queries/s at each ef, with and without rescoring).
    #[arg(long)]
    int8: bool,
    /// Instead of the rest: an int8 + `on_disk` index over HTTP on each data set (real
    /// vectord and storaged): anonymous resident memory per vector against the f32
    /// floor, recall and queries/s at each ef, restart to first answer from the cache
    /// files and from storaged.
    #[arg(long)]
    on_disk: bool,
    /// With --on-disk: also restart vectord under a memory limit of half the f32 index's
    /// size (a cgroup; needs root), then the same data as an f32 index under that limit.
    #[arg(long)]
    memory_limit: bool,
    /// Instead of the rest: a read replica following a primary on each data set (real
    /// processes): start to ready, queries/s of each, lag under a steady write load.
    #[arg(long)]
    replicas: bool,
    /// With --replicas: vectors per second written to the primary, and for how long.
    #[arg(long, default_value_t = 1000)]
    write_rate: usize,
    #[arg(long, default_value_t = 60)]
    write_seconds: u64,
    /// With --replicas: the replica's poll interval (vectord.replica_poll_ms).
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// Run the persistence benchmark: a trickle into a loaded index, a bulk ingest, a
    /// reload with a log tail (vectord saving to a separate storaged).
    #[arg(long)]
    persistence: bool,
    /// Size and dimension of the index the trickle goes into.
    #[arg(long, default_value_t = 200_000)]
    trickle_vectors: usize,
    #[arg(long, default_value_t = 384)]
    trickle_dim: usize,
    #[arg(long, default_value_t = 60)]
    trickle_seconds: u64,
    /// Size and dimension of the bulk ingest (0 = skip).
    #[arg(long, default_value_t = 1_000_000)]
    bulk_vectors: usize,
    #[arg(long, default_value_t = 128)]
    bulk_dim: usize,
    /// Vectors added after the bulk ingest's last manifest, replayed on reload.
    #[arg(long, default_value_t = 20_000)]
    log_tail: usize,
}

/// The allocator vectord uses (jemalloc), counting live bytes so that the index's own heap size can be
/// read exactly (resident-size growth of this process undercounts: memory freed earlier,
/// such as the data file's buffer, is reused).
struct CountingAlloc;

static LIVE_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to jemalloc, a sound `GlobalAlloc`, with the
// caller's own layout and pointer; the only addition is a relaxed atomic counter, which
// neither allocates nor touches the memory handed out.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { tikv_jemallocator::Jemalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { tikv_jemallocator::Jemalloc.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { tikv_jemallocator::Jemalloc.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, std::sync::atomic::Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { tikv_jemallocator::Jemalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Bytes allocated and not yet freed, in this process.
pub fn live_heap_bytes() -> usize {
    LIVE_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

const K: usize = 10;
pub const BATCH: usize = 1000;
/// The ef of `--filtered` (the figures are at ef 64).
const FILTERED_EF: usize = 64;
/// Queries per request in the batch-search figures.
const SEARCH_BATCH: usize = 32;
/// Clients in the figure of many clients sending one query per request each.
const MANY_CLIENTS: usize = 8;

/// Search figures at one `ef`.
#[derive(Debug, Clone, Serialize)]
pub struct SearchFigures {
    pub ef: usize,
    pub recall_at_10: f64,
    pub qps_1_client: f64,
    pub qps_2_clients: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// CPU time vectord spent per HTTP search (all its threads, read from /proc), so that
    /// the server's own cost can be told apart from the client's on a shared machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_ms: Option<f64>,
}

impl SearchFigures {
    pub fn new(ef: usize, recall: f64, qps1: f64, qps2: f64, latencies: &[Duration]) -> Self {
        let mut ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let pick = |q: f64| quantile(&ms, q);
        SearchFigures {
            ef,
            recall_at_10: recall,
            qps_1_client: qps1,
            qps_2_clients: qps2,
            p50_ms: pick(0.50),
            p99_ms: pick(0.99),
            server_cpu_ms: None,
        }
    }
}

/// Passes over the queries per throughput figure, in-process and HTTP taking turns; the
/// best one counts, so that a hiccup of the shared machine does not pass for the speed of
/// the code, and both sides see the same moments of the machine.
const PASSES: usize = 3;

/// Runs query `i` with `one(i)` (returning the ids found) over all `n` queries: once for
/// the answers and latencies, then for throughput with one and with two clients.
pub fn measure<F>(
    ef: usize,
    n: usize,
    truth: &[Vec<usize>],
    one: F,
) -> Result<SearchFigures, String>
where
    F: Fn(usize) -> Result<Vec<usize>, String> + Sync,
{
    let run = |range: std::ops::Range<usize>| -> Result<(Vec<Vec<usize>>, Vec<Duration>), String> {
        let mut found = Vec::with_capacity(range.len());
        let mut lat = Vec::with_capacity(range.len());
        for i in range {
            let t = std::time::Instant::now();
            found.push(one(i)?);
            lat.push(t.elapsed());
        }
        Ok((found, lat))
    };
    let (found, lat) = run(0..n)?;
    let started = std::time::Instant::now();
    run(0..n)?;
    let qps1 = n as f64 / started.elapsed().as_secs_f64();
    let qps2 = two_clients(n, |range| run(range).map(|_| ()))?;
    let recall = data::mean_recall(&found, truth, K);
    Ok(SearchFigures::new(ef, recall, qps1, qps2, &lat))
}

/// Requests per second when two clients (threads) share `n` requests, each running
/// `run` over its half of `0..n`.
pub fn two_clients<F>(n: usize, run: F) -> Result<f64, String>
where
    F: Fn(std::ops::Range<usize>) -> Result<(), String> + Sync,
{
    clients(2, n, run)
}

/// Requests per second when `count` clients (threads) share `n` requests, each running
/// `run` over its share of `0..n`.
pub fn clients<F>(count: usize, n: usize, run: F) -> Result<f64, String>
where
    F: Fn(std::ops::Range<usize>) -> Result<(), String> + Sync,
{
    let share = n.div_ceil(count.max(1));
    let started = std::time::Instant::now();
    let results: Vec<_> = std::thread::scope(|s| {
        let run = &run;
        let threads: Vec<_> = (0..count.max(1))
            .map(|c| s.spawn(move || run(c * share..((c + 1) * share).min(n))))
            .collect();
        threads.into_iter().map(|t| t.join()).collect()
    });
    for r in results {
        r.map_err(|_| "a client thread panicked".to_string())??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

impl SearchFigures {
    /// Keeps the better throughput of two passes at the same ef (recall and latencies of
    /// the first).
    fn best_of(self, other: SearchFigures) -> SearchFigures {
        SearchFigures {
            qps_1_client: self.qps_1_client.max(other.qps_1_client),
            qps_2_clients: self.qps_2_clients.max(other.qps_2_clients),
            server_cpu_ms: match (self.server_cpu_ms, other.server_cpu_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            ..self
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    machine: Machine,
    k: usize,
    m: usize,
    ef_construction: usize,
    default_ef_search: usize,
    datasets: Vec<DatasetReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    persistence: Option<persist::PersistReport>,
}

#[derive(Debug, Serialize)]
struct Machine {
    cores: usize,
    cpu: String,
    /// The distance kernels vectord chose for this CPU.
    kernels: String,
}

#[derive(Debug, Serialize, Default)]
struct DatasetReport {
    name: String,
    vectors: usize,
    dim: usize,
    metric: String,
    queries: usize,
    /// A bare `hnsw_rs` graph of every vector, `parallel_insert` on all cores.
    raw_build_vectors_per_s: f64,
    /// One graph of every vector by our parallel insert, as a seal builds it, and its
    /// recall@10 at ef 64.
    graph_build_vectors_per_s: f64,
    graph_recall_at_64: f64,
    /// Our index in-process: batches added, segments sealed and merged as they fill.
    index_build_vectors_per_s: f64,
    sealed_segments: usize,
    reload_s: f64,
    rebuild_s: f64,
    encode_s: f64,
    file_bytes: usize,
    /// Heap bytes the index holds, per vector (allocations counted exactly).
    index_heap_bytes_per_vector: f64,
    floor_bytes_per_vector: f64,
    /// Vectors in a full growing segment, and ms per query of its exact scan (1 thread).
    growing_scan_vectors: usize,
    growing_scan_ms: f64,
    raw_search: Vec<SearchFigures>,
    hnswlib: Option<Hnswlib>,
    http: Option<HttpFigures>,
    ratios: Ratios,
}

/// What bench/hnswlib_bench.py reports.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct Hnswlib {
    library: String,
    build_vectors_per_s: f64,
    search: Vec<HnswlibRow>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct HnswlibRow {
    ef: usize,
    recall_at_10: f64,
    qps_1_thread: f64,
}

#[derive(Debug, Serialize, Default)]
struct HttpFigures {
    /// `add` in batches of 1,000, until the last batch is acknowledged.
    ingest_acknowledged_vectors_per_s: f64,
    /// From the first `add` until every vector is in a sealed segment.
    ingest_indexed_vectors_per_s: f64,
    /// The sealed segments of the server's index then (the searches compare like with
    /// like when the in-process index has as many).
    sealed_segments: usize,
    rss_bytes_per_vector: Option<f64>,
    search: Vec<SearchFigures>,
    /// The same queries at ef 64, `SEARCH_BATCH` to a request (`search/batch`): per query.
    batch_search: Option<SearchFigures>,
    /// `GET /health` per second with 2 clients: the HTTP exchange alone.
    health_qps_2_clients: Option<f64>,
    /// Search requests refused after decoding (`k` 0): everything but the search.
    request_path: Option<http::RequestPath>,
    /// Searches per second at ef 64, one query per request, with `MANY_CLIENTS` clients.
    qps_many_clients_at_64: Option<f64>,
    during_ingest: Option<DuringIngest>,
}

/// Searches on the loaded index while a second index takes an ingest.
#[derive(Debug, Serialize, Default)]
struct DuringIngest {
    vectors: usize,
    ingest_acknowledged_vectors_per_s: f64,
    ingest_indexed_vectors_per_s: f64,
    ef: usize,
    searches: usize,
    qps_1_client: f64,
    recall_at_10: f64,
    search_p50_ms: f64,
    search_p99_ms: f64,
    health_p99_ms: f64,
}

/// The targets of docs/benchmarks.md (section "Targets"), as measured.
#[derive(Debug, Serialize, Default)]
struct Ratios {
    /// recall@10 at the default ef (64), in-process.
    recall_at_default_ef: f64,
    /// Best 1-thread QPS at recall@10 >= 0.98, ours / hnswlib's (target >= 1.0).
    search_over_hnswlib_at_098: Option<f64>,
    /// HTTP / in-process search throughput with 2 clients at ef 64 (target >= 0.8).
    http_over_inprocess_2_clients: Option<f64>,
    /// The same with the queries sent `SEARCH_BATCH` to a request.
    http_batch_over_inprocess_2_clients: Option<f64>,
    /// Indexed HTTP ingest / raw parallel_insert build (the pipeline should cost nothing).
    indexed_ingest_over_raw_build: Option<f64>,
    /// One graph of every vector, our build / hnswlib's (target >= 1.0).
    graph_build_over_hnswlib: Option<f64>,
    /// rebuild time / reload time.
    reload_speedup: f64,
    /// resident bytes per vector / floor (target <= 1.3).
    memory_over_floor: Option<f64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    wire::BASE64.store(args.base64, std::sync::atomic::Ordering::Relaxed);
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vectord-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let sets = datasets(args)?;
    if sets.is_empty() && !args.persistence {
        return Err(
            "nothing to run: pass --data DIR, --synthetic N, --persistence or --smoke".into(),
        );
    }
    let efs: Vec<usize> = if args.smoke {
        vec![16, 64]
    } else {
        args.ef.clone()
    };
    let mut report = Report {
        machine: machine(),
        k: K,
        m: 16,
        ef_construction: 200,
        default_ef_search: 64,
        datasets: Vec::new(),
        persistence: None,
    };
    if run_alone(args, &sets, &efs)? {
        return Ok(());
    }
    let scratch = tempdir()?;
    for (set, dir) in &sets {
        eprintln!(
            "== {}: {} x {}-d, {} queries",
            set.name,
            set.base.len(),
            set.dim,
            set.queries.len()
        );
        let mut r = bench_one(set, dir.as_deref(), &efs, args, &scratch)?;
        r.ratios.search_over_hnswlib_at_098 = search_over_hnswlib(&r);
        report.datasets.push(r);
    }
    print_tables(&report);
    if args.persistence || args.smoke {
        report.persistence = Some(bench_persistence(args, &scratch)?);
    }
    write_report(&report, &args.json)?;
    let _ = std::fs::remove_dir_all(&scratch);
    if args.smoke {
        check_smoke(&report)?;
        println!("bench-smoke: 1 passed, 0 failed");
    }
    Ok(())
}

/// The modes that run instead of the rest (`--merge`, `--int8`, `--replicas`,
/// `--on-disk`, `--filtered`); false when none is asked for.
fn run_alone(
    args: &Args,
    sets: &[(Dataset, Option<PathBuf>)],
    efs: &[usize],
) -> Result<bool, String> {
    if args.merge {
        for (set, _) in sets {
            raw::merge_vs_rebuild(set, &raw::params(set, "merge"), efs)?;
        }
        return Ok(true);
    }
    if args.int8 {
        for (set, _) in sets {
            int8::int8(set, &raw::params(set, "int8"), efs, K)?;
        }
        return Ok(true);
    }
    if args.replicas {
        let scratch = tempdir()?;
        let load = replicas::Load {
            vectors_per_s: args.write_rate,
            seconds: args.write_seconds,
            poll_ms: args.poll_ms,
        };
        for (set, _) in sets {
            replicas::replicas(set, &scratch, K, &load)?;
        }
        let _ = std::fs::remove_dir_all(&scratch);
        return Ok(true);
    }
    if args.on_disk {
        let scratch = tempdir()?;
        for (set, _) in sets {
            on_disk::on_disk(set, &scratch, efs, K, args.memory_limit)?;
        }
        let _ = std::fs::remove_dir_all(&scratch);
        return Ok(true);
    }
    if args.filtered {
        for (set, _) in sets {
            filtered::filtered(set, &raw::params(set, "filtered"), FILTERED_EF, K)?;
        }
        return Ok(true);
    }
    Ok(false)
}

/// The data sets the flags name, each with its directory (`--data`), in the order smoke,
/// `--data`, `--synthetic`.
fn datasets(args: &Args) -> Result<Vec<(Dataset, Option<PathBuf>)>, String> {
    let mut sets: Vec<(Dataset, Option<PathBuf>)> = Vec::new();
    if args.smoke {
        sets.push((data::synthetic(3000, 32, 200, &args.cache)?, None));
    }
    if let Some(dir) = &args.data {
        if dir.join("base.fvecs").exists() {
            sets.push((data::load_fvecs_dir(dir, args.queries)?, Some(dir.clone())));
        } else {
            eprintln!(
                "vectord-bench: skipping {}: no base.fvecs there (pass the data set's directory)",
                dir.display()
            );
        }
    }
    if let Some(n) = args.synthetic {
        sets.push((
            data::synthetic(n, args.dim, args.queries.min(1000), &args.cache)?,
            None,
        ));
    }
    Ok(sets)
}

/// Our best 1-thread QPS at recall@10 >= 0.98 over hnswlib's, when both reached it.
fn search_over_hnswlib(r: &DatasetReport) -> Option<f64> {
    let h = r.hnswlib.as_ref()?;
    let ours = best_qps_at(
        r.raw_search
            .iter()
            .map(|s| (s.recall_at_10, s.qps_1_client)),
    )?;
    let theirs = best_qps_at(h.search.iter().map(|s| (s.recall_at_10, s.qps_1_thread)))?;
    Some(ours / theirs)
}

/// The persistence benchmark (`--persistence`; the smoke run takes it too, at a toy size),
/// printed.
fn bench_persistence(
    args: &Args,
    scratch: &std::path::Path,
) -> Result<persist::PersistReport, String> {
    let (tn, td, ts, bn, bd, tail) = if args.smoke {
        (2000, 32, 3, 5000, 32, 500)
    } else {
        let a = args;
        (
            a.trickle_vectors,
            a.trickle_dim,
            a.trickle_seconds,
            a.bulk_vectors,
            a.bulk_dim,
            a.log_tail,
        )
    };
    let mut p = persist::PersistReport::default();
    if tn > 0 {
        p.trickle = Some(persist::trickle(scratch, tn, td, ts)?);
    }
    if bn > 0 {
        p.bulk = Some(persist::bulk(scratch, bn, bd, tail)?);
    }
    persist::print(&p);
    Ok(p)
}

/// Writes the report as JSON to `path`, creating its directory.
fn write_report(report: &Report, path: &std::path::Path) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("figures written to {}", path.display());
    Ok(())
}

/// The smoke run's verdict: recall@10 at ef 64 (and over HTTP at every ef from 64) is at
/// least 0.9 on every data set.
fn check_smoke(report: &Report) -> Result<(), String> {
    for d in &report.datasets {
        let http_ok = d
            .http
            .as_ref()
            .is_none_or(|h| h.search.iter().all(|s| s.ef < 64 || s.recall_at_10 >= 0.9));
        if d.ratios.recall_at_default_ef < 0.9 || !http_ok {
            return Err(format!(
                "smoke: recall too low on {}: {:?}",
                d.name, d.ratios
            ));
        }
    }
    Ok(())
}

/// Highest 1-thread QPS among the settings with recall@10 >= 0.98.
fn best_qps_at(rows: impl Iterator<Item = (f64, f64)>) -> Option<f64> {
    rows.filter(|(recall, _)| *recall >= 0.98)
        .map(|(_, qps)| qps)
        .reduce(f64::max)
}

/// Runs bench/hnswlib_bench.py on the same data set directory.
fn run_hnswlib(
    dir: &std::path::Path,
    space: &str,
    queries: usize,
    efs: &[usize],
    scratch: &std::path::Path,
) -> Result<Hnswlib, String> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/hnswlib_bench.py");
    let out = scratch.join("hnswlib.json");
    eprintln!("hnswlib on {}...", dir.display());
    let ef_list: Vec<String> = efs.iter().map(|e| e.to_string()).collect();
    let status = std::process::Command::new("python3")
        .arg(&script)
        .args(["--data", &dir.display().to_string()])
        .args(["--space", space])
        .args(["--queries", &queries.to_string()])
        .args(["--ef", &ef_list.join(",")])
        .args(["--json", &out.display().to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("python3 {}: {e}", script.display()))?;
    if !status.success() {
        return Err(format!("{} failed ({status})", script.display()));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", out.display()))
}

fn bench_one(
    set: &Dataset,
    dir: Option<&std::path::Path>,
    efs: &[usize],
    args: &Args,
    scratch: &std::path::Path,
) -> Result<DatasetReport, String> {
    let p = raw::params(set, "bench");
    let n = set.base.len();
    let mut r = DatasetReport {
        name: set.name.clone(),
        vectors: n,
        dim: set.dim,
        metric: set.metric.as_str().into(),
        queries: set.queries.len(),
        floor_bytes_per_vector: (set.dim * 4 + 2 * p.m * 4) as f64,
        ..Default::default()
    };
    let index = bench_in_process_build(set, &p, args, &mut r)?;
    let server = if args.no_http {
        None
    } else {
        let (server, figures) = bench_http_ingest(set, scratch)?;
        r.http = Some(figures);
        Some(server)
    };
    eprintln!("searches at ef {efs:?}...");
    search_both(&index, server.as_ref(), set, efs, &mut r)?;
    if let (Some(server), Some(figures)) = (&server, r.http.as_mut()) {
        bench_http_searches(server, set, args, figures)?;
    }
    drop(server);
    if args.hnswlib {
        // A synthetic set goes to hnswlib as files, as a data set directory would.
        let written = match dir {
            Some(_) => None,
            None => Some(data::write_dir(set, &scratch.join(&set.name))?),
        };
        if let Some(dir) = dir.or(written.as_deref()) {
            bench_hnswlib(&index, set, dir, efs, args, scratch, &mut r);
        }
    }
    drop(index);
    fill_ratios(&mut r);
    Ok(r)
}

/// Our index in-process: its build (on a fresh heap, so that its heap size can be read
/// off), the bare hnsw_rs build it is compared with, its reload and the exact scan of a
/// growing segment. The index is returned for the searches.
fn bench_in_process_build(
    set: &Dataset,
    p: &vectord_actors::index::IndexParams,
    args: &Args,
    r: &mut DatasetReport,
) -> Result<std::sync::Arc<vectord_actors::index::Index>, String> {
    let n = set.base.len();
    eprintln!("index build in batches of {BATCH}, sealed as segments fill...");
    let heap_before = live_heap_bytes();
    let (index, build) = raw::build_index(set, p, BATCH);
    r.index_heap_bytes_per_vector = live_heap_bytes().saturating_sub(heap_before) as f64 / n as f64;
    r.index_build_vectors_per_s = n as f64 / build;
    r.rebuild_s = build;
    r.sealed_segments = index.stats().sealed_segments;
    eprintln!("one graph of every vector, as a seal builds it...");
    (r.graph_build_vectors_per_s, r.graph_recall_at_64) = raw::own_graph_build(set, p)?;
    if !args.no_raw_build {
        eprintln!("raw hnsw_rs parallel_insert build...");
        let raw_build = raw::raw_graph_build(set, p);
        r.raw_build_vectors_per_s = n as f64 / raw_build;
    }
    let (encode, load, bytes) = raw::reload(&index)?;
    r.encode_s = encode;
    r.reload_s = load;
    r.file_bytes = bytes;
    (r.growing_scan_vectors, r.growing_scan_ms) = raw::growing_scan_ms(set, p);
    Ok(index)
}

/// The searches at each ef, in-process and (with a server) over HTTP, `PASSES` times
/// taking turns; the best pass of each counts.
fn search_both(
    index: &std::sync::Arc<vectord_actors::index::Index>,
    server: Option<&http::Server>,
    set: &Dataset,
    efs: &[usize],
    r: &mut DatasetReport,
) -> Result<(), String> {
    for &ef in efs {
        let mut inproc: Option<SearchFigures> = None;
        let mut http: Option<SearchFigures> = None;
        for _ in 0..PASSES {
            let a = raw::search(index, set, ef, K);
            inproc = Some(match inproc {
                Some(best) => best.best_of(a),
                None => a,
            });
            if let Some(server) = server {
                let b = server.search("bench", set, ef, K)?;
                http = Some(match http {
                    Some(best) => best.best_of(b),
                    None => b,
                });
            }
        }
        r.raw_search.extend(inproc);
        if let (Some(h), Some(figures)) = (http, r.http.as_mut()) {
            figures.search.push(h);
        }
    }
    Ok(())
}

/// The HTTP figures beyond one search per request: batches, `/health`, the request path,
/// many clients, and searches during an ingest.
fn bench_http_searches(
    server: &http::Server,
    set: &Dataset,
    args: &Args,
    figures: &mut HttpFigures,
) -> Result<(), String> {
    let mut best: Option<SearchFigures> = None;
    for _ in 0..PASSES {
        let b = server.search_batches("bench", set, 64, K, SEARCH_BATCH)?;
        best = Some(match best {
            Some(best) => best.best_of(b),
            None => b,
        });
    }
    figures.batch_search = best;
    figures.health_qps_2_clients = Some(server.health_rate(20_000, PASSES)?);
    figures.request_path = Some(server.request_path("bench", set, PASSES)?);
    let mut best: f64 = 0.0;
    for _ in 0..PASSES {
        best = best.max(server.search_clients("bench", set, 64, K, MANY_CLIENTS)?);
    }
    figures.qps_many_clients_at_64 = Some(best);
    if args.during_ingest > 0 && !args.smoke {
        figures.during_ingest = Some(search_during_ingest(server, set, args.during_ingest)?);
    }
    Ok(())
}

/// hnswlib on the data set's directory (not measured is not an error), then our searches
/// again right after, so that both see the same moments of the machine.
fn bench_hnswlib(
    index: &std::sync::Arc<vectord_actors::index::Index>,
    set: &Dataset,
    dir: &std::path::Path,
    efs: &[usize],
    args: &Args,
    scratch: &std::path::Path,
    r: &mut DatasetReport,
) {
    let space = match set.metric {
        vectord_actors::distance::Metric::L2 => "l2",
        vectord_actors::distance::Metric::Cosine => "cosine",
        vectord_actors::distance::Metric::Ip => "ip",
    };
    match run_hnswlib(dir, space, args.queries, efs, scratch) {
        Ok(h) => {
            r.ratios.graph_build_over_hnswlib =
                Some(r.graph_build_vectors_per_s / h.build_vectors_per_s);
            r.hnswlib = Some(h);
        }
        Err(e) => eprintln!("vectord-bench: hnswlib not measured: {e}"),
    }
    for row in &mut r.raw_search {
        let again = raw::search(index, set, row.ef, K);
        *row = row.clone().best_of(again);
    }
}

/// The ratios of a data set's figures (but the hnswlib one, which `run` fills in).
fn fill_ratios(r: &mut DatasetReport) {
    let at = |list: &[SearchFigures], ef: usize| list.iter().find(|s| s.ef == ef).cloned();
    let default_ef = 64;
    r.ratios.recall_at_default_ef = at(&r.raw_search, default_ef).map_or(0.0, |s| s.recall_at_10);
    if let Some(h) = &r.http {
        if let (Some(one), Some(w)) = (at(&h.search, default_ef), at(&r.raw_search, default_ef)) {
            r.ratios.http_over_inprocess_2_clients = Some(one.qps_2_clients / w.qps_2_clients);
            r.ratios.http_batch_over_inprocess_2_clients = h
                .batch_search
                .as_ref()
                .map(|b| b.qps_2_clients / w.qps_2_clients);
        }
        r.ratios.indexed_ingest_over_raw_build = (r.raw_build_vectors_per_s > 0.0)
            .then(|| h.ingest_indexed_vectors_per_s / r.raw_build_vectors_per_s);
        r.ratios.memory_over_floor = h.rss_bytes_per_vector.map(|m| m / r.floor_bytes_per_vector);
    }
    r.ratios.reload_speedup = r.rebuild_s / r.reload_s.max(1e-9);
}

/// Starts vectord, ingests the data set over HTTP and waits until it is sealed; the
/// server is returned for the searches.
fn bench_http_ingest(
    set: &Dataset,
    scratch: &std::path::Path,
) -> Result<(http::Server, HttpFigures), String> {
    let n = set.base.len();
    let mut h = HttpFigures::default();
    let server = http::Server::start(scratch)?;
    std::thread::sleep(Duration::from_millis(300));
    let before = http::rss_bytes(server.pid());
    server.create("bench", set)?;
    eprintln!("HTTP ingest in batches of {BATCH}...");
    let started = std::time::Instant::now();
    let acknowledged = server.ingest("bench", &set.base, BATCH)?;
    h.ingest_acknowledged_vectors_per_s = n as f64 / acknowledged;
    server.wait_sealed("bench", Duration::from_secs(7200))?;
    h.ingest_indexed_vectors_per_s = n as f64 / started.elapsed().as_secs_f64();
    h.sealed_segments = server.info("bench")?["sealed_segments"]
        .as_u64()
        .unwrap_or(0) as usize;
    // Freed build memory goes back to the system within about a second (vectord's
    // jemalloc settings); give it a little more.
    std::thread::sleep(Duration::from_millis(
        std::env::var("BENCH_SETTLE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3000),
    ));
    if let (Some(b), Some(a)) = (before, http::rss_bytes(server.pid())) {
        h.rss_bytes_per_vector = Some(a.saturating_sub(b) as f64 / n as f64);
    }
    Ok((server, h))
}

/// Searches the loaded index at ef 64 (one client) and samples `/health` while a second
/// index takes `count` synthetic vectors of the same dimension, until they are sealed.
fn search_during_ingest(
    server: &http::Server,
    set: &Dataset,
    count: usize,
) -> Result<DuringIngest, String> {
    let ef = 64;
    let vectors = vectord_actors::sample::seeded_vectors(77, count, set.dim);
    let bodies = http::add_bodies(&vectors, BATCH);
    drop(vectors);
    let body =
        serde_json::json!({"name": "ingest", "dim": set.dim, "distance": set.metric.as_str()});
    let agent = ureq::agent();
    agent
        .post(&format!("{}/vectors/index", server.url))
        .send_json(body)
        .map_err(|e| format!("creating the ingest index: {e}"))?;
    eprintln!("searching while {count} vectors are ingested into another index...");
    let done = std::sync::atomic::AtomicBool::new(false);
    let (ack, indexed, searches, recall_sum, health) = std::thread::scope(|scope| {
        let ingest = scope.spawn(|| -> Result<(f64, f64), String> {
            let started = std::time::Instant::now();
            for b in &bodies {
                server.add("ingest", b)?;
            }
            let ack = started.elapsed().as_secs_f64();
            server.wait_sealed("ingest", Duration::from_secs(7200))?;
            let indexed = started.elapsed().as_secs_f64();
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok((ack, indexed))
        });
        let health = scope.spawn(|| {
            let mut samples = Vec::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(ms) = server.health_ms() {
                    samples.push(ms);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            samples
        });
        let mut searches = 0usize;
        let mut recall_sum = 0.0;
        let mut search_times = Vec::new();
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let i = searches % set.queries.len();
            let t = std::time::Instant::now();
            let found = server.search_one("bench", &set.queries[i], K, ef);
            search_times.push(t.elapsed().as_secs_f64() * 1000.0);
            if let Ok(found) = found {
                recall_sum += data::recall(&found, &set.truth[i], K);
                searches += 1;
            }
        }
        let times = ingest
            .join()
            .map_err(|_| "ingest thread panicked".to_string())?;
        let health = health.join().unwrap_or_default();
        let (ack, indexed) = times?;
        Ok::<_, String>((ack, indexed, (searches, search_times), recall_sum, health))
    })?;
    let (searches, mut search_times) = searches;
    let search_seconds = search_times.iter().sum::<f64>() / 1000.0;
    search_times.sort_by(f64::total_cmp);
    let mut health = health;
    health.sort_by(f64::total_cmp);
    Ok(DuringIngest {
        vectors: count,
        ingest_acknowledged_vectors_per_s: count as f64 / ack,
        ingest_indexed_vectors_per_s: count as f64 / indexed,
        ef,
        searches,
        qps_1_client: searches as f64 / search_seconds.max(1e-9),
        recall_at_10: recall_sum / searches.max(1) as f64,
        search_p50_ms: quantile(&search_times, 0.5),
        search_p99_ms: quantile(&search_times, 0.99),
        health_p99_ms: quantile(&health, 0.99),
    })
}

/// The `q` quantile of `sorted` (ascending); 0 for none.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

fn print_tables(report: &Report) {
    println!(
        "machine: {} cores, {} (kernels: {}); k={}, m={}, ef_construction={}",
        report.machine.cores,
        report.machine.cpu,
        report.machine.kernels,
        report.k,
        report.m,
        report.ef_construction
    );
    for d in &report.datasets {
        print_search_table(d);
        println!("\n| measure | value |");
        println!("|---|---|");
        print_build_rows(d);
        print_index_rows(d);
        print_http_rows(d);
    }
}

/// `v` with `digits` decimals, or `-`.
fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.digits$}"))
}

/// The data set's heading and its search table: in-process, HTTP and hnswlib at each ef.
fn print_search_table(d: &DatasetReport) {
    println!(
        "\n## {} ({} x {}-d, {}, {} queries)",
        d.name, d.vectors, d.dim, d.metric, d.queries
    );
    println!("| where | ef | recall@10 | QPS 1 client | QPS 2 clients | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|");
    let http = d.http.as_ref().map(|h| h.search.as_slice()).unwrap_or(&[]);
    for (label, list) in [("in-process", d.raw_search.as_slice()), ("HTTP", http)] {
        for s in list {
            println!(
                "| {label} | {} | {:.3} | {:.0} | {:.0} | {:.2} | {:.2} |",
                s.ef, s.recall_at_10, s.qps_1_client, s.qps_2_clients, s.p50_ms, s.p99_ms
            );
        }
    }
    if let Some(h) = &d.hnswlib {
        for s in &h.search {
            println!(
                "| {} | {} | {:.3} | {:.0} | - | - | - |",
                h.library, s.ef, s.recall_at_10, s.qps_1_thread
            );
        }
    }
}

/// Rows of the measure table: the builds, the HTTP ingest and its memory, and searches
/// during an ingest.
fn print_build_rows(d: &DatasetReport) {
    if d.raw_build_vectors_per_s > 0.0 {
        println!(
            "| raw hnsw_rs parallel_insert build | {:.0} vectors/s |",
            d.raw_build_vectors_per_s
        );
    }
    println!(
        "| index build in-process (sealed as segments fill; {} sealed segments) | {:.0} vectors/s |",
        d.sealed_segments, d.index_build_vectors_per_s
    );
    println!(
        "| one graph of every vector, our parallel insert (as a seal builds; all cores) | {:.0} vectors/s, recall@10 at ef 64 {:.3} |",
        d.graph_build_vectors_per_s, d.graph_recall_at_64
    );
    if let Some(h) = &d.hnswlib {
        let at_64 = h
            .search
            .iter()
            .find(|s| s.ef == 64)
            .map_or(f64::NAN, |s| s.recall_at_10);
        println!(
            "| {} build (all cores) | {:.0} vectors/s, recall@10 at ef 64 {at_64:.3} |",
            h.library, h.build_vectors_per_s
        );
        println!(
            "| one graph: our build / hnswlib's (target >= 1.0) | {} |",
            opt(d.ratios.graph_build_over_hnswlib, 2)
        );
    }
    if let Some(h) = &d.http {
        println!(
            "| HTTP ingest, acknowledged (batches of {BATCH}) | {:.0} vectors/s |",
            h.ingest_acknowledged_vectors_per_s
        );
        println!(
            "| HTTP ingest, indexed (until every vector is sealed; {} sealed segments) | {:.0} vectors/s |",
            h.sealed_segments, h.ingest_indexed_vectors_per_s
        );
        println!(
            "| resident memory per vector / floor | {} / {:.0} bytes ({}x) |",
            opt(h.rss_bytes_per_vector, 0),
            d.floor_bytes_per_vector,
            opt(d.ratios.memory_over_floor, 2)
        );
        if let Some(g) = &h.during_ingest {
            println!(
                "| search during a {}-vector ingest (ef {}) | {:.0} QPS, recall@10 {:.3}, p50 / p99 {:.2} / {:.2} ms, /health p99 {:.1} ms; ingest {:.0} vectors/s acknowledged, {:.0} indexed |",
                g.vectors, g.ef, g.qps_1_client, g.recall_at_10, g.search_p50_ms, g.search_p99_ms, g.health_p99_ms,
                g.ingest_acknowledged_vectors_per_s, g.ingest_indexed_vectors_per_s
            );
        }
    }
}

/// Rows of the measure table: the in-process index (reload, file, heap, recall, the scan
/// of a growing segment) and its search against hnswlib's.
fn print_index_rows(d: &DatasetReport) {
    println!(
        "| reload from LHV1 / rebuild | {:.3} s / {:.3} s ({:.1}x faster) |",
        d.reload_s, d.rebuild_s, d.ratios.reload_speedup
    );
    println!(
        "| LHV1 file | {} bytes ({:.0} per vector), encoded in {:.3} s |",
        d.file_bytes,
        d.file_bytes as f64 / d.vectors.max(1) as f64,
        d.encode_s
    );
    println!(
        "| index heap per vector / floor | {:.0} / {:.0} bytes ({:.2}x) |",
        d.index_heap_bytes_per_vector,
        d.floor_bytes_per_vector,
        d.index_heap_bytes_per_vector / d.floor_bytes_per_vector
    );
    println!(
        "| recall@10 at ef 64 | {:.3} |",
        d.ratios.recall_at_default_ef
    );
    println!(
        "| exact scan of a full growing segment ({} vectors), 1 thread, k 10 | {:.2} ms per query |",
        d.growing_scan_vectors, d.growing_scan_ms
    );
    println!(
        "| in-process search / hnswlib, 1 thread, best QPS at recall >= 0.98 (target >= 1.0) | {} |",
        opt(d.ratios.search_over_hnswlib_at_098, 2)
    );
}

/// Rows of the measure table: HTTP search against in-process search, what an HTTP
/// request costs around the search, and indexed ingest against the raw build.
fn print_http_rows(d: &DatasetReport) {
    // Searches compare like with like only over the same number of segments.
    let unlike = match &d.http {
        Some(h) if h.sealed_segments != d.sealed_segments => format!(
            " (unlike: {} segments over HTTP, {} in-process)",
            h.sealed_segments, d.sealed_segments
        ),
        _ => String::new(),
    };
    println!(
        "| HTTP / in-process search, 2 clients, ef 64 (target >= 0.8) | {}{unlike} |",
        opt(d.ratios.http_over_inprocess_2_clients, 2)
    );
    if let (Some(h), Some(w)) = (
        d.http
            .as_ref()
            .and_then(|h| h.search.iter().find(|s| s.ef == 64)),
        d.raw_search.iter().find(|s| s.ef == 64),
    ) {
        print_request_costs(d, h, w);
    }
    if let Some(b) = d.http.as_ref().and_then(|h| h.batch_search.as_ref()) {
        println!(
            "| HTTP / in-process search, 2 clients, ef 64, {SEARCH_BATCH} queries per `search/batch` request | {} (recall@10 {:.3}; 1 client {:.0}, 2 clients {:.0} queries/s; vectord CPU {:.3} ms per query) |",
            opt(d.ratios.http_batch_over_inprocess_2_clients, 2),
            b.recall_at_10,
            b.qps_1_client,
            b.qps_2_clients,
            b.server_cpu_ms.unwrap_or(f64::NAN)
        );
    }
    println!(
        "| indexed HTTP ingest / raw build | {} |",
        opt(d.ratios.indexed_ingest_over_raw_build, 2)
    );
}

/// Rows of the measure table at ef 64, from the HTTP search `h` and the in-process one
/// `w`: CPU per search, and the ceilings that `/health`, a refused request and many
/// clients put on HTTP against in-process.
fn print_request_costs(d: &DatasetReport, h: &SearchFigures, w: &SearchFigures) {
    if let Some(cpu) = h.server_cpu_ms {
        let inproc = 1000.0 / w.qps_1_client.max(1e-9);
        println!(
            "| CPU per search, ef 64: in-process / vectord over HTTP (client excluded) | {inproc:.3} / {cpu:.3} ms = {:.2} |",
            inproc / cpu.max(1e-9)
        );
    }
    if let Some(health) = d.http.as_ref().and_then(|h| h.health_qps_2_clients) {
        println!(
            "| GET /health, 2 clients (the HTTP exchange alone) / the ceiling it puts on HTTP / in-process at ef 64 | {health:.0} requests/s / {:.2} |",
            1.0 / (1.0 + w.qps_2_clients / health.max(1e-9))
        );
    }
    if let Some(p) = d.http.as_ref().and_then(|h| h.request_path.as_ref()) {
        // The search's CPU in-process with both cores searching (as both are busy
        // under 2 HTTP clients), against the search plus everything a request
        // costs the two cores around it: the best HTTP / in-process can be if no
        // core ever waited.
        let search = 2000.0 / w.qps_2_clients.max(1e-9);
        let around = p.server_cpu_ms + p.client_cpu_ms;
        println!(
            "| a search request refused after decoding (k 0), 2 clients: requests/s; CPU per request, vectord + client / the ceiling it puts on HTTP / in-process at ef 64 | {:.0} requests/s; {:.3} + {:.3} ms / {:.2} |",
            p.requests_per_s,
            p.server_cpu_ms,
            p.client_cpu_ms,
            search / (search + around)
        );
    }
    if let Some(many) = d.http.as_ref().and_then(|h| h.qps_many_clients_at_64) {
        println!(
            "| HTTP search, ef 64, one query per request, {MANY_CLIENTS} clients / in-process with 2 threads | {many:.0} / {:.0} queries/s = {:.2} |",
            w.qps_2_clients,
            many / w.qps_2_clients.max(1e-9)
        );
    }
}

fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    Machine {
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu,
        kernels: vectord_actors::distance::kernels().name.to_string(),
    }
}

fn tempdir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("vectord-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}
