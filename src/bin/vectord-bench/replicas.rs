//! `--replicas`: a read replica following a primary over one storaged (real processes on
//! loopback; one machine, so the replica's work competes with the primary's):
//!
//! - replica start to ready (its first poll loads the index) and to the first answer;
//! - search queries/s of the replica and of the primary on the same data, one at a time
//!   (1 client, 10 queries per `search/batch`), so what following costs is visible;
//! - replica lag under a steady write load (`--write-rate` vectors/s for
//!   `--write-seconds`, in batches every 100 ms): for each batch, the time from the
//!   primary's acknowledgement to the batch's last item answering on the replica, p50 /
//!   p99 / max, against the bound `save_max_delay_ms + 2 × poll`;
//! - then the replica's load for the primary's next manifest (its idle seal and checkpoint
//!   after the load stops): how long it took and how many segments it kept in memory.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::data::Dataset;
use crate::http::Server;
use crate::on_disk::{fill, one_pass};
use crate::persist::Pair;

const NAME: &str = "followed";
/// The primary's default `vectord.save_max_delay_ms`.
const SAVE_MAX_DELAY_MS: u64 = 2000;

pub struct Load {
    pub vectors_per_s: usize,
    pub seconds: u64,
    pub poll_ms: u64,
}

pub fn replicas(
    data: &Dataset,
    scratch: &std::path::Path,
    k: usize,
    load: &Load,
) -> Result<(), String> {
    let n = data.base.len();
    eprintln!("== replicas: {} ({n} x {}-d)", data.name, data.dim);
    let pair = Pair::start_with(scratch, "replicas", Vec::new())?;
    let primary = pair.vectord()?;
    let indexed = fill(primary, NAME, data, &json!({}))?;
    // The primary's idle checkpoint: a manifest naming every sealed segment.
    std::thread::sleep(Duration::from_secs(7));
    println!(
        "\n## read replica: {} ({n} x {}-d), one machine, poll {} ms\n",
        data.name, data.dim, load.poll_ms
    );
    println!("primary: ingest to indexed and stored {indexed:.1} s");
    let started = Instant::now();
    let mut replica = pair.spawn_replica(load.poll_ms, &scratch.join("replica-cache"))?;
    replica.wait_ready(Duration::from_secs(900))?;
    let ready = started.elapsed().as_secs_f64();
    let info = replica.info(NAME)?;
    println!(
        "replica start to ready (index loaded): {ready:.2} s; count {}, unsealed {}",
        info["count"], info["unsealed_count"]
    );
    replica.wait_sealed(NAME, Duration::from_secs(3600))?;
    println!(
        "replica start to fully indexed: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    println!("\n| ef 64, 1 client, 10 per request | recall@{k} | queries/s |\n|---|---:|---:|");
    for (who, server) in [("primary", primary), ("replica", &replica)] {
        one_pass(server, NAME, data, 64, k)?;
        let (recall, qps) = one_pass(server, NAME, data, 64, k)?;
        println!("| {who} | {recall:.3} | {qps:.0} |");
    }
    lag_under_load(primary, &replica, data.dim, load)?;
    next_manifest_load(&replica)
}

/// Waits for the replica's next load (the primary's manifest naming the segment its idle
/// seal made of the written items) and prints what it cost, from the replica's metrics.
fn next_manifest_load(replica: &Server) -> Result<(), String> {
    let loads = |text: &str| {
        let value = |prefix: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (
            value("vectord_replica_load_seconds_count "),
            value("vectord_replica_load_seconds_sum "),
            value("vectord_replica_segments_loaded_total{from=\"memory\"} "),
            value("vectord_replica_segments_loaded_total{from=\"store\"} "),
        )
    };
    let before = loads(&replica.metrics()?);
    let started = Instant::now();
    let after = loop {
        let now = loads(&replica.metrics()?);
        if now.0 > before.0 {
            break now;
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err("the replica loaded no new manifest within 300 s".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "replica load for the primary's next manifest: {:.0} ms, {} segments kept in memory, {} read (found {:.1} s after the load stopped)",
        (after.1 - before.1) * 1000.0,
        after.2 - before.2,
        after.3 - before.3,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes at a steady rate on the primary while a prober finds each batch on the replica.
fn lag_under_load(
    primary: &Server,
    replica: &Server,
    dim: usize,
    load: &Load,
) -> Result<(), String> {
    const EVERY: Duration = Duration::from_millis(100);
    let per_batch = (load.vectors_per_s / 10).max(1);
    let batches = (load.seconds * 10) as usize;
    let vectors = vectord_actors::sample::seeded_vectors(77, per_batch * batches, dim);
    let (tx, rx) = mpsc::channel::<(String, Instant)>();
    let item_path = |id: &str| format!("/vectors/index/{NAME}/items/{id}");
    let lags = std::thread::scope(|scope| -> Result<Vec<f64>, String> {
        let prober = scope.spawn(|| {
            let mut lags = Vec::new();
            for (id, acked) in rx {
                let deadline = acked + Duration::from_secs(120);
                while replica.get_json(&item_path(&id)).is_err() {
                    if Instant::now() > deadline {
                        return Err(format!("{id} never showed on the replica"));
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                lags.push(acked.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(lags)
        });
        let started = Instant::now();
        for (b, chunk) in vectors.chunks(per_batch).enumerate() {
            let items: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, v)| json!({"id": format!("w{}", b * per_batch + i), "vector": v}))
                .collect();
            let body = json!({ "items": items }).to_string();
            primary.add(NAME, body.as_bytes())?;
            let last = format!("w{}", b * per_batch + chunk.len() - 1);
            tx.send((last, Instant::now())).map_err(|e| e.to_string())?;
            if let Some(wait) = (EVERY * (b as u32 + 1)).checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        drop(tx);
        prober
            .join()
            .map_err(|_| "the prober panicked".to_string())?
    })?;
    let mut sorted = lags.clone();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)];
    println!(
        "\nlag under {} vectors/s for {} s (acknowledged on the primary -> found on the replica), {} batches: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; bound save_max_delay_ms + 2 x poll = {} ms",
        load.vectors_per_s,
        load.seconds,
        sorted.len(),
        at(0.5),
        at(0.99),
        sorted.last().copied().unwrap_or(0.0),
        SAVE_MAX_DELAY_MS + 2 * load.poll_ms
    );
    Ok(())
}
