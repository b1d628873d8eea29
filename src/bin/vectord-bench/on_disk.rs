//! `--on-disk`: an index with int8 codes and its vectors on disk, over HTTP, through a real
//! vectord saving to a separate storaged (so that the resident memory read from
//! `/proc/<pid>/status` is the index's alone):
//!
//! - ingest to fully indexed; anonymous resident memory (`RssAnon`, what cannot be paged
//!   out to a file) per vector against the f32 floor (`4·dim + 2·m·4` bytes), after the
//!   ingest and after a restart;
//! - recall@k and one-client queries/s (10 queries per `search/batch`) at each ef;
//! - a restart: start to first answer from the cache files, and from storaged with the
//!   cache directory removed;
//! - with `--memory-limit`: vectord restarted in a cgroup limited to half the f32 index's
//!   size, page cache dropped first: queries/s cold (first pass) and warm; then the same
//!   data as a plain f32 index under the same limit.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::data::Dataset;
use crate::http::{status_bytes, Server};
use crate::persist::{flush, ingest, Pair, M, SETTLE};

const NAME: &str = "od";
/// Queries per `search/batch` request.
const BATCH: usize = 10;

pub fn on_disk(
    data: &Dataset,
    scratch: &Path,
    efs: &[usize],
    k: usize,
    memory_limit: bool,
) -> Result<(), String> {
    let n = data.base.len();
    let floor = (4 * data.dim + 2 * M * 4) as f64;
    let cache = scratch.join("od-cache");
    let extra = vec![
        "--set".into(),
        format!("vectord.cache_dir={}", cache.display()),
    ];
    eprintln!("== on_disk + int8: {} ({n} x {}-d)", data.name, data.dim);
    let mut pair = Pair::start_with(scratch, "ondisk", extra)?;
    let spec = json!({"quantization": {"type": "int8"}, "on_disk": true});
    let indexed_s = fill(pair.vectord()?, NAME, data, &spec)?;
    let server = pair.vectord()?;
    let after_ingest = steady_anon(server.pid());
    let info = server.info(NAME)?;
    println!(
        "\n## on_disk + int8: {} ({n} x {}-d, {}), over HTTP, 1 client, k {k}\n",
        data.name,
        data.dim,
        data.metric.as_str()
    );
    println!(
        "ingest to fully indexed: {indexed_s:.1} s ({:.0} vectors/s); info: memory_bytes_estimate {}, disk_bytes {}, sealed_segments {}",
        n as f64 / indexed_s,
        info["memory_bytes_estimate"],
        info["disk_bytes"],
        info["sealed_segments"]
    );
    print_anon("after the ingest", after_ingest, n, floor);
    search_rows(server, data, efs, k)?;

    // Restarts: from the cache files, then from storaged alone.
    pair.vectord
        .take()
        .ok_or("vectord is not running")?
        .stop()?;
    let (from_cache, first) = time_to_first_answer(&pair, data)?;
    println!("\nrestart, start to first answer: {from_cache:.3} s from the cache files");
    let restarted = steady_anon(first.pid());
    print_anon("after a restart from the cache", restarted, n, floor);
    first.stop()?;
    std::fs::remove_dir_all(&cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let (from_store, second) = time_to_first_answer(&pair, data)?;
    println!("restart, start to first answer: {from_store:.3} s from storaged (cache removed)");
    second.stop()?;
    if memory_limit {
        limited_runs(&mut pair, data, scratch, k, efs, floor)?;
    }
    Ok(())
}

/// Creates index `name` (`spec` adds to its parameters), ingests the data set and waits
/// until everything is indexed and stored; returns the seconds from the first add to
/// indexed.
pub fn fill(server: &Server, name: &str, data: &Dataset, spec: &Value) -> Result<f64, String> {
    let mut body = json!({"name": name, "dim": data.dim, "distance": data.metric.as_str(),
                          "m": M, "ef_construction": 200});
    for (key, value) in spec.as_object().into_iter().flatten() {
        body[key] = value.clone();
    }
    server.post_json("/vectors/index", &body)?;
    let started = Instant::now();
    ingest(server, name, "", &data.base)?;
    server.wait_sealed(name, Duration::from_secs(6 * 3600))?;
    let took = started.elapsed().as_secs_f64();
    flush(server, name)?;
    Ok(took)
}

/// The median anonymous resident size over two seconds, once the allocator has had time
/// to hand back what the last build freed.
fn steady_anon(pid: u32) -> u64 {
    std::thread::sleep(SETTLE);
    let mut samples: Vec<u64> = (0..20)
        .filter_map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            status_bytes(pid, "RssAnon:")
        })
        .collect();
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or(0)
}

fn print_anon(when: &str, anon: u64, n: usize, floor: f64) {
    let per = anon as f64 / n as f64;
    println!(
        "RssAnon {when}: {:.0} MiB, {per:.0} bytes per vector = {:.2}x the f32 floor ({floor:.0} bytes)",
        anon as f64 / (1 << 20) as f64,
        per / floor
    );
}

/// Recall and one-client queries/s at each ef (a first pass, then a timed one).
fn search_rows(server: &Server, data: &Dataset, efs: &[usize], k: usize) -> Result<(), String> {
    println!("\n| ef | recall@{k} | queries/s (1 client, {BATCH} per request) |");
    println!("|---:|---:|---:|");
    for &ef in efs {
        one_pass(server, NAME, data, ef, k)?;
        let (recall, qps) = one_pass(server, NAME, data, ef, k)?;
        println!("| {ef} | {recall:.3} | {qps:.0} |");
    }
    Ok(())
}

/// Every query once, `BATCH` per `search/batch` request, one client: recall@k and
/// queries/s (bodies encoded before the clock starts).
pub fn one_pass(
    server: &Server,
    name: &str,
    data: &Dataset,
    ef: usize,
    k: usize,
) -> Result<(f64, f64), String> {
    let path = format!("/vectors/index/{name}/search/batch");
    let bodies: Vec<Value> = data
        .queries
        .chunks(BATCH)
        .map(|qs| {
            let searches: Vec<Value> = qs
                .iter()
                .map(|q| json!({"vector": crate::wire::vector(q), "k": k, "ef": ef}))
                .collect();
            json!({ "searches": searches })
        })
        .collect();
    let started = Instant::now();
    let mut found: Vec<Vec<usize>> = Vec::with_capacity(data.queries.len());
    for body in &bodies {
        let answer = server.post_json(&path, body)?;
        for list in answer["results"].as_array().into_iter().flatten() {
            let ids = list.as_array().into_iter().flatten();
            found.push(ids.filter_map(|r| r["id"].as_str()?.parse().ok()).collect());
        }
    }
    let qps = data.queries.len() as f64 / started.elapsed().as_secs_f64();
    let recall = crate::data::mean_recall(&found, &data.truth, k);
    Ok((recall, qps))
}

/// Starts vectord and times it until a search of the index answers with results.
fn time_to_first_answer(pair: &Pair, data: &Dataset) -> Result<(f64, Server), String> {
    let started = Instant::now();
    let server = pair.spawn_vectord()?;
    let body = json!({"vector": data.queries[0], "k": 10});
    let path = format!("/vectors/index/{NAME}/search");
    loop {
        if let Ok(answer) = server.post_json(&path, &body) {
            if answer["results"].as_array().is_some_and(|r| !r.is_empty()) {
                return Ok((started.elapsed().as_secs_f64(), server));
            }
        }
        if started.elapsed() > Duration::from_secs(900) {
            return Err("no answer within 15 minutes".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// vectord restarted in a memory-limited cgroup (half the f32 index's size), on this
/// index and then on a plain f32 copy of the data.
fn limited_runs(
    pair: &mut Pair,
    data: &Dataset,
    scratch: &Path,
    k: usize,
    efs: &[usize],
    floor: f64,
) -> Result<(), String> {
    let limit = (data.base.len() as f64 * floor / 2.0) as u64;
    println!(
        "\nunder a memory limit of {:.0} MiB (half the f32 index's floor), page cache dropped:",
        limit as f64 / (1 << 20) as f64
    );
    let ef = *efs.last().unwrap_or(&64);
    let group = Cgroup::create(limit)?;
    drop_page_cache();
    let mut server = pair.spawn_vectord()?;
    group.add(server.pid())?;
    server.wait_ready(Duration::from_secs(900))?;
    for pass in ["cold", "warm"] {
        let (recall, qps) = one_pass(&server, NAME, data, ef, k)?;
        println!(
            "int8 + on_disk, ef {ef}, {pass}: recall@{k} {recall:.3}, {qps:.0} queries/s (1 client); RssAnon {:.0} MiB, cgroup peak {:.0} MiB",
            status_bytes(server.pid(), "RssAnon:").unwrap_or(0) as f64 / (1 << 20) as f64,
            group.peak() as f64 / (1 << 20) as f64
        );
    }
    server.stop()?;
    drop(group);

    eprintln!("== the same data as an f32 index");
    let cache = scratch.join("f32-cache");
    let extra = vec![
        "--set".into(),
        format!("vectord.cache_dir={}", cache.display()),
    ];
    let f32_pair = Pair::start_with(scratch, "f32", extra)?;
    fill(f32_pair.vectord()?, NAME, data, &json!({}))?;
    let f32_anon = status_bytes(f32_pair.vectord()?.pid(), "RssAnon:").unwrap_or(0);
    let mut f32_pair = f32_pair;
    f32_pair
        .vectord
        .take()
        .ok_or("vectord is not running")?
        .stop()?;
    let group = Cgroup::create(limit)?;
    drop_page_cache();
    let mut server = f32_pair.spawn_vectord()?;
    group.add(server.pid())?;
    match server.wait_ready(Duration::from_secs(900)) {
        Ok(()) => {
            let (recall, qps) = one_pass(&server, NAME, data, ef, k)?;
            println!(
                "f32 (RssAnon {:.0} MiB unlimited), ef {ef}: serves under the limit: recall@{k} {recall:.3}, {qps:.0} queries/s",
                f32_anon as f64 / (1 << 20) as f64,
            );
        }
        Err(e) => println!(
            "f32 (RssAnon {:.0} MiB unlimited): cannot serve under the limit: {e}; cgroup OOM kills: {}",
            f32_anon as f64 / (1 << 20) as f64,
            group.oom_kills()
        ),
    }
    Ok(())
}

fn drop_page_cache() {
    let _ = std::process::Command::new("sync").status();
    if std::fs::write("/proc/sys/vm/drop_caches", "1").is_err() {
        eprintln!("(could not drop the page cache: not root; the cold pass is warm-ish)");
    }
}

/// A cgroup (v1 memory controller) that limits the processes put in it; removed on drop.
struct Cgroup {
    dir: std::path::PathBuf,
}

impl Cgroup {
    fn create(limit: u64) -> Result<Cgroup, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = Path::new("/sys/fs/cgroup/memory")
            .join(format!("vectord-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| {
            format!(
                "creating {} (needs root and the cgroup v1 memory controller): {e}",
                dir.display()
            )
        })?;
        let group = Cgroup { dir };
        group.write("memory.limit_in_bytes", &limit.to_string())?;
        // No swap either, where the kernel accounts it.
        let _ = group.write("memory.memsw.limit_in_bytes", &limit.to_string());
        Ok(group)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        std::fs::write(self.dir.join(file), value)
            .map_err(|e| format!("{}/{file}: {e}", self.dir.display()))
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }

    fn add(&self, pid: u32) -> Result<(), String> {
        self.write("cgroup.procs", &pid.to_string())
    }

    fn peak(&self) -> u64 {
        self.read("memory.max_usage_in_bytes")
            .trim()
            .parse()
            .unwrap_or(0)
    }

    fn oom_kills(&self) -> String {
        let failcnt = self.read("memory.failcnt");
        let oom = self.read("memory.oom_control");
        format!(
            "failcnt {}, {}",
            failcnt.trim(),
            oom.lines()
                .find(|l| l.starts_with("oom_kill "))
                .unwrap_or("oom_kill ?")
        )
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Empty by now: its processes were stopped and waited for.
        let _ = std::fs::remove_dir(&self.dir);
    }
}
