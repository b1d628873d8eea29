//! The persistence benchmark (`--persistence`): what saves cost, through a real vectord
//! saving to a separate storaged process, so that the bytes storaged writes can be read
//! from the kernel (`wchar` in `/proc/<pid>/io`, every byte it hands to `write`).
//!
//! - **Trickle**: an index of `--trickle-vectors` vectors takes 10-vector batches about
//!   three times a second for `--trickle-seconds`; bytes written per byte of vectors
//!   changed, the time from a change to its durable save (`vectord_save_lag_seconds`),
//!   and vectord's peak resident size against its steady size.
//! - **Bulk**: `--bulk-vectors` vectors ingested into an empty index; total bytes written
//!   against the final size of the index's objects.
//! - **Reload** of the bulk index with a log tail after `kill -9`: time to ready, next to
//!   the time the bulk ingest took to index everything (a rebuild).

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use crate::http::{rss_bytes, Server};

/// Vectors per trickle batch, and the pause between batches.
const TRICKLE_BATCH: usize = 10;
const TRICKLE_EVERY: Duration = Duration::from_millis(333);

#[derive(Debug, Serialize, Default)]
pub struct PersistReport {
    pub trickle: Option<Trickle>,
    pub bulk: Option<Bulk>,
}

#[derive(Debug, Serialize, Default)]
pub struct Trickle {
    pub index_vectors: usize,
    pub dim: usize,
    pub seconds: f64,
    pub batches: usize,
    pub vector_bytes_changed: u64,
    /// Bytes storaged wrote while the trickle ran (and its last save).
    pub storaged_bytes_written: u64,
    pub write_amplification: f64,
    /// The same, once the trickled vectors were sealed into a segment and a new manifest
    /// was written (what the trickle costs in the end).
    pub storaged_bytes_written_with_seal: u64,
    pub write_amplification_with_seal: f64,
    /// Saves during the trickle, and the upper bound of the histogram bucket holding the
    /// 99th percentile of their lag (the time from the oldest change a save covers to the
    /// save's end).
    pub saves: u64,
    pub save_lag_p99_le_s: f64,
    pub save_lag_mean_s: f64,
    pub debounce_cap_s: f64,
    pub steady_rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub peak_over_steady: f64,
}

#[derive(Debug, Serialize, Default)]
pub struct Bulk {
    pub vectors: usize,
    pub dim: usize,
    /// From the first `add` until every vector is sealed and stored.
    pub ingest_s: f64,
    pub storaged_bytes_written: u64,
    pub final_object_bytes: u64,
    pub objects: usize,
    pub written_over_final: f64,
    pub peak_rss_bytes: u64,
    pub steady_rss_bytes: u64,
    /// The allocator's live heap, read right after the steady size.
    pub steady_heap_bytes: Option<u64>,
    pub log_tail_vectors: usize,
    /// `kill -9`, restart: until `/ready` answers (everything loaded, log replayed).
    pub reload_to_ready_s: f64,
    /// ...and until the replayed tail is sealed again.
    pub reload_to_sealed_s: f64,
}

/// A storaged and a vectord using it, on free loopback ports, data in `root`.
pub struct Pair {
    storaged: Child,
    storaged_url: String,
    pub vectord: Option<Server>,
    root: PathBuf,
    scratch: PathBuf,
    /// More flags for vectord.
    extra: Vec<String>,
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.vectord = None;
        let _ = self.storaged.kill();
        let _ = self.storaged.wait();
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("picking a port: {e}"))
}

fn sibling_binary(name: &str) -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = me.with_file_name(name);
    path.exists()
        .then_some(path.clone())
        .ok_or_else(|| format!("{} not found: cargo build --release", path.display()))
}

impl Pair {
    fn start(scratch: &Path, tag: &str) -> Result<Pair, String> {
        Pair::start_with(scratch, tag, Vec::new())
    }

    /// `start`, vectord with `extra` flags (every time it is started).
    pub fn start_with(scratch: &Path, tag: &str, extra: Vec<String>) -> Result<Pair, String> {
        let root = scratch.join(format!("storaged-{tag}"));
        std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        let port = free_port()?;
        let empty = scratch.join("bench-empty.toml");
        std::fs::write(&empty, "").map_err(|e| e.to_string())?;
        let storaged = Command::new(sibling_binary("storaged")?)
            .args(["--config", &empty.display().to_string()])
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(["--root", &root.display().to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting storaged: {e}"))?;
        let storaged_url = format!("http://127.0.0.1:{port}");
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(5))
            .build();
        let started = Instant::now();
        while agent.get(&format!("{storaged_url}/health")).call().is_err() {
            if started.elapsed() > Duration::from_secs(30) {
                return Err("storaged did not start".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut pair = Pair {
            storaged,
            storaged_url,
            vectord: None,
            root,
            scratch: scratch.to_path_buf(),
            extra,
        };
        pair.start_vectord()?;
        Ok(pair)
    }

    fn start_vectord(&mut self) -> Result<Duration, String> {
        let started = Instant::now();
        let mut server = self.spawn_vectord()?;
        server.wait_ready(Duration::from_secs(600))?;
        let took = started.elapsed();
        self.vectord = Some(server);
        Ok(took)
    }

    /// Starts a read replica of this storaged's indexes (polling every `poll_ms`), without
    /// waiting for it.
    pub fn spawn_replica(&self, poll_ms: u64, cache: &Path) -> Result<Server, String> {
        let args = vec![
            "--replica".into(),
            "--storaged-url".into(),
            self.storaged_url.clone(),
            "--set".into(),
            format!("vectord.replica_poll_ms={poll_ms}"),
            "--set".into(),
            format!("vectord.cache_dir={}", cache.display()),
        ];
        Server::spawn_with(&self.scratch, &args)
    }

    /// Starts vectord on this storaged, without waiting for it.
    pub fn spawn_vectord(&self) -> Result<Server, String> {
        let mut args = vec![
            "--set".into(),
            "vectord.embedded_storaged=false".into(),
            "--set".into(),
            format!("vectord.storaged_url={}", self.storaged_url),
        ];
        args.extend(self.extra.iter().cloned());
        Server::spawn_with(&self.scratch, &args)
    }

    pub fn vectord(&self) -> Result<&Server, String> {
        self.vectord
            .as_ref()
            .ok_or_else(|| "vectord is not running".into())
    }

    /// Bytes storaged has handed to `write` so far.
    fn storaged_written(&self) -> Result<u64, String> {
        let pid = self.storaged.id();
        let io = std::fs::read_to_string(format!("/proc/{pid}/io"))
            .map_err(|e| format!("/proc/{pid}/io: {e}"))?;
        io.lines()
            .find_map(|l| l.strip_prefix("wchar:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("/proc/{pid}/io has no wchar"))
    }

    /// Objects under `_vectors/` in storaged's directory: count and bytes.
    fn stored_objects(&self) -> (usize, u64) {
        fn walk(dir: &Path, acc: &mut (usize, u64)) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let Ok(meta) = e.metadata() else { continue };
                if meta.is_dir() {
                    walk(&e.path(), acc);
                } else if e.path().extension().is_some_and(|x| x == "lhv1") {
                    acc.0 += 1;
                    acc.1 += meta.len();
                }
            }
        }
        let mut acc = (0, 0);
        walk(&self.root, &mut acc);
        acc
    }
}

/// How long the steady size waits after the last work before it is sampled.
pub const SETTLE: Duration = Duration::from_secs(5);

/// The allocator's live heap (`vectord_allocator_bytes{kind="allocated"}`), from `/metrics`.
fn heap_bytes(server: &Server) -> Option<u64> {
    let text = server.metrics().ok()?;
    let line = text
        .lines()
        .find(|l| l.starts_with("vectord_allocator_bytes{kind=\"allocated\"}"))?;
    line.rsplit_once(' ')?.1.parse().ok()
}

/// Samples a process's resident size every 10 ms until stopped; keeps the peak.
struct RssSampler {
    stop: std::sync::Arc<AtomicBool>,
    peak: std::sync::Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let peak = std::sync::Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(rss) = rss_bytes(pid) {
                    p.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        RssSampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// The median of a few resident-size samples over `over`, taken once the allocator has
/// had time to hand back what the last seal or merge freed (it decays freed pages over
/// about a second, from a background thread: sampled at once, the resident size still
/// holds some of them, by an amount that depends on the moment).
fn steady_rss(pid: u32, over: Duration) -> u64 {
    std::thread::sleep(SETTLE);
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < over {
        samples.extend(rss_bytes(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or(0)
}

/// The buckets (upper bound, cumulative count), sum and count of a histogram in a
/// Prometheus text exposition.
fn histogram(text: &str, name: &str) -> (Vec<(f64, u64)>, f64, u64) {
    let mut buckets = Vec::new();
    let (mut sum, mut count) = (0.0, 0);
    for line in text.lines() {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if let Some(rest) = key.strip_prefix(&format!("{name}_bucket{{le=\"")) {
            let le = rest.trim_end_matches("\"}");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::NAN)
            };
            buckets.push((le, value.parse().unwrap_or(0)));
        } else if key == format!("{name}_sum") {
            sum = value.parse().unwrap_or(0.0);
        } else if key == format!("{name}_count") {
            count = value.parse().unwrap_or(0);
        }
    }
    (buckets, sum, count)
}

/// The upper bound of the bucket holding quantile `q` of the observations made between
/// two scrapes.
fn quantile_between(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> f64 {
    let total = after.last().map_or(0, |b| b.1) - before.last().map_or(0, |b| b.1);
    if total == 0 {
        return 0.0;
    }
    let want = (total as f64 * q).ceil() as u64;
    for (i, (le, n)) in after.iter().enumerate() {
        let was = before.get(i).map_or(0, |b| b.1);
        if n - was >= want {
            return *le;
        }
    }
    f64::INFINITY
}

/// `add` body of vectors `vectors` with ids `prefix{first + i}`.
fn add_body(prefix: &str, first: usize, vectors: &[Vec<f32>]) -> Vec<u8> {
    let items: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"id": format!("{prefix}{}", first + i), "vector": v}))
        .collect();
    json!({ "items": items }).to_string().into_bytes()
}

/// The `m` of the indexes this bench creates.
pub const M: usize = 16;

fn create(server: &Server, name: &str, dim: usize) -> Result<(), String> {
    let body = json!({"name": name, "dim": dim, "distance": "l2", "m": M, "ef_construction": 200});
    server.post_json("/vectors/index", &body).map(|_| ())
}

pub fn flush(server: &Server, name: &str) -> Result<(), String> {
    let answer = server.post_json(&format!("/vectors/index/{name}/flush"), &json!({}))?;
    if answer["persisted"] != true {
        return Err(format!("flush of {name} answered {answer}"));
    }
    Ok(())
}

/// Adds `vectors` in batches of 1,000 with ids `prefix0..`, encoding each batch just
/// before sending it (a million vectors' bodies at once would not fit comfortably).
pub fn ingest(
    server: &Server,
    name: &str,
    prefix: &str,
    vectors: &[Vec<f32>],
) -> Result<(), String> {
    for (b, chunk) in vectors.chunks(1000).enumerate() {
        server.add(name, &add_body(prefix, b * 1000, chunk))?;
        if b % 100 == 99 {
            eprint!(".");
            let _ = std::io::stderr().flush();
        }
    }
    eprintln!();
    Ok(())
}

pub fn trickle(scratch: &Path, n: usize, dim: usize, seconds: u64) -> Result<Trickle, String> {
    eprintln!("== persistence, trickle: {n} x {dim}-d, then 10-vector batches for {seconds} s");
    let pair = Pair::start(scratch, "trickle")?;
    let server = pair.vectord()?;
    let name = "trickle";
    create(server, name, dim)?;
    let base = vectord_actors::sample::seeded_vectors(31, n, dim);
    ingest(server, name, "", &base)?;
    drop(base);
    server.wait_sealed(name, Duration::from_secs(3600))?;
    flush(server, name)?;
    let pid = server.pid();
    let steady = steady_rss(pid, Duration::from_secs(3));

    let extra = vectord_actors::sample::seeded_vectors(32, 4000, dim);
    let lag_before = histogram(&server.metrics()?, "vectord_save_lag_seconds");
    let written_before = pair.storaged_written()?;
    let sampler = RssSampler::start(pid);
    let started = Instant::now();
    let mut batches = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        let at = batches * TRICKLE_BATCH;
        let Some(chunk) = extra.get(at..at + TRICKLE_BATCH) else {
            break;
        };
        server.add(name, &add_body("t", at, chunk))?;
        batches += 1;
        let next = TRICKLE_EVERY * batches as u32;
        if let Some(wait) = next.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The last batch's save, without forcing one: wait for the debounce to take it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.info(name)?["unsaved_for_ms"].as_u64().unwrap_or(0) > 0
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    flush(server, name)?;
    let written = pair.storaged_written()? - written_before;
    let lag_after = histogram(&server.metrics()?, "vectord_save_lag_seconds");
    // Then the idle seal (of 1,024 items or more): the trickled vectors become a segment,
    // written when the log is long enough to be replaced by a manifest.
    if batches * TRICKLE_BATCH >= 1024 {
        server.wait_sealed(name, Duration::from_secs(120))?;
        std::thread::sleep(Duration::from_millis(500));
        flush(server, name)?;
    }
    let written_with_seal = pair.storaged_written()? - written_before;
    let peak = sampler.finish();

    let changed = (batches * TRICKLE_BATCH * dim * 4) as u64;
    let saves = lag_after.2 - lag_before.2;
    Ok(Trickle {
        index_vectors: n,
        dim,
        seconds: elapsed,
        batches,
        vector_bytes_changed: changed,
        storaged_bytes_written: written,
        write_amplification: written as f64 / changed.max(1) as f64,
        storaged_bytes_written_with_seal: written_with_seal,
        write_amplification_with_seal: written_with_seal as f64 / changed.max(1) as f64,
        saves,
        save_lag_p99_le_s: quantile_between(&lag_before.0, &lag_after.0, 0.99),
        save_lag_mean_s: (lag_after.1 - lag_before.1) / saves.max(1) as f64,
        debounce_cap_s: 2.0,
        steady_rss_bytes: steady,
        peak_rss_bytes: peak,
        peak_over_steady: peak as f64 / steady.max(1) as f64,
    })
}

pub fn bulk(scratch: &Path, n: usize, dim: usize, tail: usize) -> Result<Bulk, String> {
    eprintln!("== persistence, bulk: {n} x {dim}-d into an empty index, then a reload with a {tail}-vector log tail");
    let mut pair = Pair::start(scratch, "bulk")?;
    let name = "bulk";
    let (ingest_s, written, peak, steady, heap) = {
        let server = pair.vectord()?;
        create(server, name, dim)?;
        let base = vectord_actors::sample::seeded_vectors(41, n, dim);
        let written_before = pair.storaged_written()?;
        let sampler = RssSampler::start(server.pid());
        let started = Instant::now();
        ingest(server, name, "", &base)?;
        drop(base);
        server.wait_sealed(name, Duration::from_secs(6 * 3600))?;
        flush(server, name)?;
        let ingest_s = started.elapsed().as_secs_f64();
        let peak = sampler.finish();
        let written = pair.storaged_written()? - written_before;
        let steady = steady_rss(server.pid(), Duration::from_secs(2));
        (ingest_s, written, peak, steady, heap_bytes(server))
    };
    let (objects, final_bytes) = pair.stored_objects();

    // The log tail: changes after the last manifest, then kill -9.
    {
        let server = pair.vectord()?;
        let more = vectord_actors::sample::seeded_vectors(42, tail, dim);
        ingest(server, name, "tail-", &more)?;
        flush(server, name)?;
    }
    pair.vectord = None; // kills vectord (SIGKILL) and waits for it
    let ready = pair.start_vectord()?;
    let server = pair.vectord()?;
    let started = Instant::now();
    let count = server.info(name)?["count"].as_u64().unwrap_or(0);
    if count != (n + tail) as u64 {
        return Err(format!(
            "reloaded index has {count} items, expected {}",
            n + tail
        ));
    }
    server.wait_sealed(name, Duration::from_secs(3600))?;
    let sealed = ready + started.elapsed();
    Ok(Bulk {
        vectors: n,
        dim,
        ingest_s,
        storaged_bytes_written: written,
        final_object_bytes: final_bytes,
        objects,
        written_over_final: written as f64 / final_bytes.max(1) as f64,
        peak_rss_bytes: peak,
        steady_rss_bytes: steady,
        steady_heap_bytes: heap,
        log_tail_vectors: tail,
        reload_to_ready_s: ready.as_secs_f64(),
        reload_to_sealed_s: sealed.as_secs_f64(),
    })
}

pub fn print(report: &PersistReport) {
    let mb = |b: u64| b as f64 / 1e6;
    if let Some(t) = &report.trickle {
        println!(
            "\n### persistence: trickle of 10-vector batches into a {} x {}-d index\n",
            t.index_vectors, t.dim
        );
        println!("| measure | value |\n|---|---|");
        println!("| batches, seconds | {} in {:.0} s |", t.batches, t.seconds);
        println!(
            "| storaged bytes written / vector bytes changed | {:.2} MB / {:.2} MB = {:.2}× |",
            mb(t.storaged_bytes_written),
            mb(t.vector_bytes_changed),
            t.write_amplification
        );
        println!(
            "| ... including the seal of the trickled vectors and its manifest | {:.2} MB = {:.2}× |",
            mb(t.storaged_bytes_written_with_seal),
            t.write_amplification_with_seal
        );
        println!(
            "| save lag p99 (change → durable), {} saves | ≤ {:.2} s (mean {:.2} s; debounce cap {:.0} s) |",
            t.saves, t.save_lag_p99_le_s, t.save_lag_mean_s, t.debounce_cap_s
        );
        println!(
            "| vectord resident size: peak during saves / steady | {:.0} MB / {:.0} MB = {:.3}× |",
            mb(t.peak_rss_bytes),
            mb(t.steady_rss_bytes),
            t.peak_over_steady
        );
    }
    if let Some(b) = &report.bulk {
        println!(
            "\n### persistence: bulk ingest of {} x {}-d, reload with a log tail\n",
            b.vectors, b.dim
        );
        println!("| measure | value |\n|---|---|");
        println!(
            "| storaged bytes written / final size of the index's objects | {:.0} MB / {:.0} MB ({} objects) = {:.2}× |",
            mb(b.storaged_bytes_written),
            mb(b.final_object_bytes),
            b.objects,
            b.written_over_final
        );
        println!(
            "| ingest until everything is sealed and stored (= a rebuild) | {:.0} s |",
            b.ingest_s
        );
        println!(
            "| reload after kill -9 with a {}-vector log tail: to ready / to sealed | {:.2} s / {:.1} s |",
            b.log_tail_vectors, b.reload_to_ready_s, b.reload_to_sealed_s
        );
        println!(
            "| rebuild / reload (to ready) | {:.0}× |",
            b.ingest_s / b.reload_to_ready_s.max(1e-9)
        );
        println!(
            "| vectord resident size: peak during the ingest / steady after | {:.0} MB / {:.0} MB |",
            mb(b.peak_rss_bytes),
            mb(b.steady_rss_bytes)
        );
        let floor = (b.dim * 4 + 2 * M * 4) as f64;
        let per_vector = |bytes: u64| bytes as f64 / b.vectors.max(1) as f64;
        println!(
            "| steady resident size per vector / floor (dim × 4 + 2·m × 4) | {:.0} / {floor:.0} bytes ({:.2}×) |",
            per_vector(b.steady_rss_bytes),
            per_vector(b.steady_rss_bytes) / floor
        );
        if let Some(heap) = b.steady_heap_bytes {
            println!(
                "| live heap per vector then (jemalloc's allocated) | {:.0} bytes ({:.2}×) |",
                per_vector(heap),
                per_vector(heap) / floor
            );
        }
    }
}
