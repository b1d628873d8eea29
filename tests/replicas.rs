//! Read replicas on the real binaries: a primary and two replicas over one storaged on
//! local disk, and over S3 (moto in CI, Garage with `scripts/garage-test.sh`) with each
//! replica reading through a storaged of its own on the same bucket and prefix. What the
//! primary stores reaches both within the bound; deletes and re-creates propagate (no item
//! or index comes back); writes to a replica answer 409 `read_only`; a replica killed with
//! `kill -9` catches up after its restart; replicas keep answering when the primary is
//! gone; a replica started during an ingest converges.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use vectord::storaged::testing::{s3_server, unique_prefix};

/// Poll interval of the replicas under test.
const POLL_MS: u64 = 200;
/// How long a flushed change may take to show on a replica: two polls and a load, with
/// room for a slow shared machine.
const BOUND: Duration = Duration::from_secs(20);

fn replica(dir: &Path, storaged_url: &str, tag: &str) -> Proc {
    let args: Vec<String> = [
        "--replica",
        "--storaged-url",
        storaged_url,
        "--set",
        &format!("vectord.replica_poll_ms={POLL_MS}"),
        "--set",
        &format!(
            "vectord.cache_dir={}",
            dir.join(format!("cache-{tag}")).display()
        ),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    vectord(dir, &args, true)
}

fn count(api: &Api, name: &str) -> Option<u64> {
    let (s, b) = api.post(&format!("/vectors/index/{name}/count"), &json!({}));
    (s == 200).then(|| b["count"].as_u64()).flatten()
}

/// Waits until `check` holds on `api`; answers how long it took.
fn until(api: &Api, what: &str, check: impl Fn(&Api) -> bool) -> Duration {
    let started = Instant::now();
    while !check(api) {
        assert!(
            started.elapsed() < BOUND,
            "{what}: not seen on the replica within {BOUND:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

fn create(api: &Api, name: &str, dim: usize, distance: &str) {
    let body = json!({"name": name, "dim": dim, "distance": distance});
    let (s, b) = api.post("/vectors/index", &body);
    assert_eq!(s, 201, "{b}");
}

fn flush(api: &Api, name: &str) {
    let (s, b) = api.post(&format!("/vectors/index/{name}/flush"), &json!({}));
    assert_eq!(s, 200, "{b}");
}

#[test]
fn replicas_follow_adds_deletes_and_recreates_and_refuse_writes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    follow(dir.path(), [&store.url, &store.url, &store.url]);
}

#[test]
fn replicas_with_storaged_processes_of_their_own_follow_over_s3() {
    let test = "replicas_over_s3";
    let Some(s3) = s3_server(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix(test);
    let stores: Vec<Proc> = (0..3)
        .map(|_| storaged_with(dir.path(), s3.storaged_flags_at(prefix.clone()), None))
        .collect();
    follow(dir.path(), [&stores[0].url, &stores[1].url, &stores[2].url]);
}

/// The whole scenario: the primary saves through `urls[0]`, the replicas read through
/// `urls[1]` and `urls[2]`.
fn follow(dir: &Path, urls: [&str; 3]) {
    let mut primary = persistent(dir, urls[0], &[]);
    let p = primary.api();
    let mut r1 = replica(dir, urls[1], "r1");
    let r2 = replica(dir, urls[2], "r2");
    let data = vectors(5, 300, 8);
    create(&p, "docs", 8, "cosine");
    assert_eq!(
        p.post("/vectors/index/docs/add", &add_body("v", &data)).0,
        200
    );
    flush(&p, "docs");
    for r in [&r1, &r2] {
        let took = until(&r.api(), "300 items", |a| count(a, "docs") == Some(300));
        eprintln!("visible on a replica {took:?} after the flush");
        let (s, b) = r.api().post(
            "/vectors/index/docs/search",
            &json!({"vector": data[17], "k": 3}),
        );
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["results"][0]["id"], "v17");
    }

    // Writes are refused, reads answered.
    let a1 = r1.api();
    for (method, path, body) in [
        (
            "POST",
            "/vectors/index",
            json!({"name": "x", "dim": 2, "distance": "l2"}),
        ),
        ("POST", "/vectors/index/docs/add", add_body("w", &data[..1])),
        ("POST", "/vectors/index/docs/delete", json!({"ids": ["v1"]})),
        ("POST", "/vectors/index/docs/flush", json!({})),
        (
            "POST",
            "/vectors/index/docs/fields",
            json!({"fields": {"i": "integer"}}),
        ),
        ("DELETE", "/vectors/index/docs/items/v1", json!(null)),
        ("DELETE", "/vectors/index/docs", json!(null)),
    ] {
        let (s, b) = a1.call(method, path, (!body.is_null()).then_some(&body));
        assert_eq!(s, 409, "{method} {path}: {b}");
        assert_eq!(b["error"]["code"], "read_only", "{b}");
        assert!(
            b["error"]["message"].as_str().unwrap().contains("replica"),
            "{b}"
        );
    }
    assert_eq!(count(&a1, "docs"), Some(300), "nothing changed");
    let (_, health) = a1.get("/health");
    assert_eq!(health["role"], "replica", "{health}");
    assert_eq!(health["replicated"][0]["name"], "docs", "{health}");
    assert!(
        health["replicated"][0]["lag_ms"].as_u64().unwrap() < 10_000,
        "{health}"
    );
    let (_, info) = a1.get("/vectors/index/docs");
    assert!(
        info["replica"]["applied_lsn"].as_u64().unwrap() >= 1,
        "{info}"
    );

    // Deletes propagate.
    let (s, _) = p.post(
        "/vectors/index/docs/delete",
        &json!({"ids": ["v0", "v1", "v2"]}),
    );
    assert_eq!(s, 200);
    assert_eq!(p.delete("/vectors/index/docs/items/v3").0, 204);
    flush(&p, "docs");
    for r in [&r1, &r2] {
        until(&r.api(), "the deletes", |a| count(a, "docs") == Some(296));
        assert_eq!(r.api().get("/vectors/index/docs/items/v0").0, 404);
    }

    // An index deleted and created again: never the old items.
    assert_eq!(p.delete("/vectors/index/docs").0, 204);
    create(&p, "docs", 4, "l2");
    let fresh = vectors(6, 5, 4);
    assert_eq!(
        p.post("/vectors/index/docs/add", &add_body("n", &fresh)).0,
        200
    );
    flush(&p, "docs");
    for r in [&r1, &r2] {
        until(&r.api(), "the re-created index", |a| {
            a.get("/vectors/index/docs").1["dim"] == 4 && count(a, "docs") == Some(5)
        });
        assert_eq!(r.api().get("/vectors/index/docs/items/v10").0, 404);
    }
    // A deleted index disappears.
    create(&p, "gone", 2, "l2");
    flush(&p, "gone");
    until(&r2.api(), "index gone created", |a| {
        a.get("/vectors/index/gone").0 == 200
    });
    assert_eq!(p.delete("/vectors/index/gone").0, 204);
    until(&r2.api(), "index gone deleted", |a| {
        a.get("/vectors/index/gone").0 == 404
    });

    // A replica killed with kill -9 catches up after its restart.
    r1.kill9();
    assert_eq!(
        p.post(
            "/vectors/index/docs/add",
            &add_body("m", &vectors(7, 10, 4))
        )
        .0,
        200
    );
    flush(&p, "docs");
    let r1 = replica(dir, urls[1], "r1");
    until(&r1.api(), "the writes made while it was down", |a| {
        count(a, "docs") == Some(15)
    });

    // With the primary gone, replicas answer from the last stored state.
    primary.kill9();
    for r in [&r1, &r2] {
        until(&r.api(), "the last state", |a| count(a, "docs") == Some(15));
        let (s, b) = r.api().post(
            "/vectors/index/docs/search",
            &json!({"vector": fresh[2], "k": 1}),
        );
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["results"][0]["id"], "n2");
    }
}

#[test]
fn a_replica_started_during_an_ingest_converges_through_new_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    // Small segments and a manifest at every save: the replica follows by reloading.
    let primary = persistent(
        dir.path(),
        &store.url,
        &[
            "--set",
            "vectord.seal_points=200",
            "--set",
            "vectord.manifest_log_bytes=0",
        ],
    );
    let p = primary.api();
    create(&p, "live", 8, "l2");
    let data = vectors(9, 3000, 8);
    let mut replica_proc = None;
    for (b, chunk) in data.chunks(100).enumerate() {
        let body = add_body(&format!("b{b}-"), chunk);
        assert_eq!(p.post("/vectors/index/live/add", &body).0, 200);
        if b == 10 {
            flush(&p, "live");
            replica_proc = Some(replica(dir.path(), &store.url, "late"));
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    flush(&p, "live");
    let r = replica_proc.expect("started");
    until(&r.api(), "every item", |a| count(a, "live") == Some(3000));
    let (_, info) = r.api().get("/vectors/index/live");
    assert!(info["sealed_segments"].as_u64().unwrap() >= 1, "{info}");
    let answer: Value = r
        .api()
        .post(
            "/vectors/index/live/search",
            &json!({"vector": data[2500], "k": 1}),
        )
        .1;
    assert_eq!(answer["results"][0]["id"], "b25-0", "{answer}");
    // Its reloads for new manifests shared the segments it already held.
    let text = ureq::get(&format!("{}/metrics", r.url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let kept = text
        .lines()
        .find_map(|l| l.strip_prefix("vectord_replica_segments_loaded_total{from=\"memory\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        kept >= 1.0,
        "no segment kept in memory by a reload:\n{text}"
    );
}

#[test]
fn an_idle_primary_writes_a_manifest_covering_its_sealed_items() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    let primary = persistent(
        dir.path(),
        &store.url,
        &[
            "--set",
            "vectord.seal_points=500",
            "--set",
            "vectord.checkpoint_idle_ms=300",
        ],
    );
    let p = primary.api();
    create(&p, "idle", 8, "l2");
    assert_eq!(
        p.post(
            "/vectors/index/idle/add",
            &add_body("i", &vectors(3, 2000, 8))
        )
        .0,
        200
    );
    flush(&p, "idle");
    // The log is far from long: only the idle checkpoint writes a manifest with segments.
    let file = root.join("_vectors").join("idle.lhv1");
    let started = Instant::now();
    loop {
        let bytes = std::fs::read(&file).unwrap();
        let (m, _) = vectord_actors::codec::manifest::decode(&bytes).unwrap();
        let sealed: usize = m.segments.iter().map(|s| s.points).sum();
        if sealed == 2000 && m.covered_lsn >= 1 {
            break;
        }
        assert!(
            started.elapsed() < BOUND,
            "no manifest covering the sealed items: {} points in segments, covered lsn {}",
            sealed,
            m.covered_lsn
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A replica then loads segments: nothing of it waits to be indexed.
    let r = replica(dir.path(), &store.url, "idle");
    let (_, info) = r.api().get("/vectors/index/idle");
    assert_eq!(info["unsealed_count"], 0, "{info}");
    assert_eq!(info["count"], 2000, "{info}");
}
