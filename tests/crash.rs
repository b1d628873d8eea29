//! The crash loop: rounds of concurrent mixed writes (create, add, upsert, delete item,
//! delete index, re-create, flush) with `kill -9` of vectord — and in some rounds of
//! storaged first — at a random moment, then a restart and a check of every index against
//! a model of what the clients were told:
//! - every index loads (no failed load, no cut-short log);
//! - every write covered by a completed `flush` is back, with the same vector and
//!   metadata, unless a later write (acknowledged or cut off by the crash) replaced it;
//! - no flushed delete comes back, no index whose DELETE answered 204 comes back (unless
//!   re-created later).
//!
//! `CRASH_ROUNDS` sets the number of rounds (CI runs 20; see docs/testing.md for the long run),
//! `CRASH_SEED` the seed. Prints the rounds and the checks done.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const DIM: usize = 8;
const IDS: usize = 40;

/// What the model expects of one id: a vector and metadata, or nothing.
type Value2 = Option<(Vec<f32>, Value)>;

#[derive(Clone, Debug)]
enum Op {
    Put(String, Vec<f32>, Value),
    Del(String),
    Create,
    DropIndex,
}

/// One index as the clients know it.
#[derive(Default, Clone)]
struct Model {
    /// The state storage is known to hold (after a flush or a restart).
    base_exists: bool,
    base: HashMap<String, (Vec<f32>, Value)>,
    /// Writes since then: acknowledged, or cut off by the crash (may or may not be in).
    after: Vec<Op>,
    /// The state the clients were last told (for choosing operations).
    exists: bool,
    current: HashMap<String, (Vec<f32>, Value)>,
}

impl Model {
    fn durable(&mut self) {
        self.base_exists = self.exists;
        self.base = self.current.clone();
        self.after.clear();
    }

    /// The values an id may have after a crash.
    fn acceptable(&self, id: &str) -> Vec<Value2> {
        let mut out = vec![self.base.get(id).cloned()];
        for op in &self.after {
            match op {
                Op::Put(i, v, m) if i == id => out.push(Some((v.clone(), m.clone()))),
                Op::Del(i) if i == id => out.push(None),
                Op::Create | Op::DropIndex => out.push(None),
                _ => {}
            }
        }
        out
    }

    fn may_exist(&self) -> bool {
        self.base_exists || self.after.iter().any(|o| matches!(o, Op::Create))
    }

    fn may_be_gone(&self) -> bool {
        !self.base_exists || self.after.iter().any(|o| matches!(o, Op::DropIndex))
    }
}

/// A request's outcome: answered with a status, or cut off (the server died).
fn call(api: &Api, method: &str, path: &str, body: Option<&Value>) -> Option<(u16, Value)> {
    let req =
        ureq::request(method, &format!("{}{path}", api.base)).timeout(Duration::from_secs(20));
    let res = match body {
        Some(b) => req.send_json(b.clone()),
        None => req.call(),
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(_) => return None,
    };
    let status = resp.status();
    let text = resp.into_string().unwrap_or_default();
    Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// One client: random operations on its own indexes until `stop`.
fn client(
    api: Api,
    names: Vec<String>,
    models: &mut HashMap<String, Model>,
    rng: &mut Rng,
    stop: &AtomicBool,
    counter: &mut u64,
) {
    while !stop.load(Ordering::Relaxed) {
        let name = &names[rng.below(names.len() as u64) as usize];
        let model = models.get_mut(name).unwrap();
        let r = rng.below(100);
        if !model.exists {
            let body = json!({"name": name, "dim": DIM, "distance": "l2"});
            match call(&api, "POST", "/vectors/index", Some(&body)) {
                Some((201, _)) => {
                    model.exists = true;
                    model.current.clear();
                    model.after.push(Op::Create);
                }
                Some((409, b)) if b["error"]["code"] == "index_deleting" => {}
                Some((s, b)) => panic!("create {name}: {s} {b}"),
                None => {
                    model.after.push(Op::Create);
                    return;
                }
            }
            continue;
        }
        if r < 55 {
            let n = 1 + rng.below(15) as usize;
            let mut seen = std::collections::HashSet::new();
            let mut items = Vec::new();
            let mut ops = Vec::new();
            for _ in 0..n {
                let id = format!("i{}", rng.below(IDS as u64));
                if !seen.insert(id.clone()) {
                    continue;
                }
                *counter += 1;
                let vector: Vec<f32> = (0..DIM)
                    .map(|_| (rng.below(2000) as f32) / 100.0 - 10.0)
                    .collect();
                let meta = json!({"v": *counter, "tag": format!("t{}", rng.below(5))});
                items.push(json!({"id": id, "vector": vector, "metadata": meta}));
                ops.push(Op::Put(id, vector, meta));
            }
            let path = format!("/vectors/index/{name}/add");
            match call(&api, "POST", &path, Some(&json!({"items": items}))) {
                Some((200, _)) => {
                    for op in ops {
                        if let Op::Put(id, v, m) = &op {
                            model.current.insert(id.clone(), (v.clone(), m.clone()));
                        }
                        model.after.push(op);
                    }
                }
                Some((503, _)) => {} // busy: nothing was changed
                Some((s, b)) => panic!("add {name}: {s} {b}"),
                None => {
                    model.after.extend(ops);
                    return;
                }
            }
        } else if r < 75 {
            let id = format!("i{}", rng.below(IDS as u64));
            let path = format!("/vectors/index/{name}/items/{id}");
            match call(&api, "DELETE", &path, None) {
                Some((204, _)) => {
                    model.current.remove(&id);
                    model.after.push(Op::Del(id));
                }
                Some((404, _)) => {}
                Some((s, b)) => panic!("delete item {name}/{id}: {s} {b}"),
                None => {
                    model.after.push(Op::Del(id));
                    return;
                }
            }
        } else if r < 95 {
            let path = format!("/vectors/index/{name}/flush");
            match call(&api, "POST", &path, Some(&json!({}))) {
                Some((200, b)) => {
                    assert_eq!(b, json!({"persisted": true}));
                    model.durable();
                }
                Some((503, _)) => {} // storaged is down: not stored
                Some((s, b)) => panic!("flush {name}: {s} {b}"),
                None => return,
            }
        } else {
            match call(&api, "DELETE", &format!("/vectors/index/{name}"), None) {
                Some((204, _)) => {
                    model.exists = false;
                    model.current.clear();
                    model.durable();
                }
                Some((503, _)) => {
                    // gone from memory, stored copy still there (retried)
                    model.exists = false;
                    model.current.clear();
                    model.after.push(Op::DropIndex);
                }
                Some((s, b)) => panic!("delete index {name}: {s} {b}"),
                None => {
                    model.after.push(Op::DropIndex);
                    return;
                }
            }
        }
    }
}

/// Checks the restarted server against the models; then makes them match what it holds.
fn check_and_resync(api: &Api, models: &mut HashMap<String, Model>, checks: &mut usize) {
    let (_, health) = api.get("/health");
    assert!(
        health.get("failed_indexes").is_none(),
        "failed loads: {health}"
    );
    assert!(
        health.get("load_warnings").is_none(),
        "cut-short logs: {health}"
    );
    for (name, model) in models.iter_mut() {
        let (status, info) = api.get(&format!("/vectors/index/{name}"));
        let exists = status == 200;
        if exists {
            assert!(model.may_exist(), "{name} came back: {info}");
        } else {
            assert!(model.may_be_gone(), "{name} is gone");
        }
        *checks += 1;
        model.exists = exists;
        model.current.clear();
        if !exists {
            model.durable();
            continue;
        }
        for i in 0..IDS {
            let id = format!("i{i}");
            let (s, got) = api.get(&format!("/vectors/index/{name}/items/{id}"));
            let actual: Value2 = match s {
                200 => Some((
                    serde_json::from_value(got["vector"].clone()).unwrap(),
                    got["metadata"].clone(),
                )),
                404 => None,
                other => panic!("get {name}/{id}: {other} {got}"),
            };
            let ok = model.acceptable(&id).contains(&actual);
            assert!(
                ok,
                "{name}/{id} is {actual:?}, expected one of {:?}",
                model.acceptable(&id)
            );
            *checks += 1;
            if let Some(v) = actual {
                model.current.insert(id, v);
            }
        }
        assert_eq!(info["count"], model.current.len(), "{name}: {info}");
        model.durable();
    }
}

#[test]
fn kill_9_at_random_moments_loses_no_flushed_write_and_resurrects_nothing() {
    let rounds: usize = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let sport = free_port();
    let mut store = storaged(dir.path(), &root, Some(sport));
    let flags = [
        "--set",
        "vectord.seal_points=30",
        "--set",
        "vectord.merge_factor=2",
        "--set",
        "vectord.save_quiet_ms=10",
        "--set",
        "vectord.save_max_delay_ms=100",
        "--set",
        "vectord.seal_idle_ms=200",
        "--set",
        "vectord.storage_timeout_s=5",
        // a manifest once a few KB of log wait: crashes land both before and after one
        "--set",
        "vectord.manifest_log_bytes=4000",
    ];
    let mut v = persistent(dir.path(), &store.url, &flags);
    let workers = 3;
    let names: Vec<Vec<String>> = (0..workers)
        .map(|w| vec![format!("w{w}-a"), format!("w{w}-b")])
        .collect();
    let mut models: Vec<HashMap<String, Model>> = names
        .iter()
        .map(|ns| ns.iter().map(|n| (n.clone(), Model::default())).collect())
        .collect();
    let mut rng = Rng(seed);
    let mut checks = 0;
    let mut counter = 0u64;
    let started = Instant::now();
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let kill_storaged = round % 4 == 3;
        let api = v.api();
        let mut seeds: Vec<u64> = (0..workers).map(|_| rng.next()).collect();
        let run_ms = 300 + rng.below(1200);
        let outage_ms = 100 + rng.below(800);
        std::thread::scope(|scope| {
            let handles: Vec<_> = models
                .iter_mut()
                .zip(&names)
                .zip(seeds.iter_mut())
                .enumerate()
                .map(|(w, ((models, names), s))| {
                    let (api, stop) = (api.clone(), stop.clone());
                    let names = names.clone();
                    let mut counter = counter + (w as u64) * 1_000_000_000;
                    scope.spawn(move || {
                        let mut rng = Rng(*s);
                        client(api, names, models, &mut rng, &stop, &mut counter);
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(run_ms));
            if kill_storaged {
                // storaged dies first: writes go on, flushes answer 503
                store.kill9();
                std::thread::sleep(Duration::from_millis(outage_ms));
                store = storaged(dir.path(), &root, Some(sport));
                std::thread::sleep(Duration::from_millis(outage_ms));
            }
            v.kill9();
            stop.store(true, Ordering::Relaxed);
            for h in handles {
                h.join().unwrap();
            }
        });
        counter += 10_000;
        v = persistent(dir.path(), &store.url, &flags);
        for m in &mut models {
            check_and_resync(&v.api(), m, &mut checks);
        }
        eprintln!(
            "crash round {}/{rounds}: {} killed after {run_ms} ms; {checks} checks so far",
            round + 1,
            if kill_storaged {
                "storaged and vectord"
            } else {
                "vectord"
            }
        );
    }
    eprintln!(
        "crash loop: {rounds} rounds survived, {checks} checks, 0 failures, {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
