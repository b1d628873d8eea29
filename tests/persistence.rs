//! Persistence against the real binaries: the seed's G1P acceptance (kill -9, restart, same
//! state and exact graph), storaged outages, corrupted files, delete racing a save, and the
//! final flush on SIGTERM.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn results(api: &Api, index: &str, q: &[f32], k: usize) -> Vec<(String, f64)> {
    results_at(api, index, q, k, 128)
}

fn results_at(api: &Api, index: &str, q: &[f32], k: usize, ef: usize) -> Vec<(String, f64)> {
    let (s, b) = api.post(
        &format!("/vectors/index/{index}/search"),
        &json!({"vector": q, "k": k, "ef": ef}),
    );
    assert_eq!(s, 200, "{b}");
    b["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["distance"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn g1p_kill9_restart_keeps_everything_and_delete_removes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    let mut v = persistent(dir.path(), &store.url, &[]);
    let api = v.api();
    let dim = 24;
    let data = vectors(11, 3000, dim);
    for (name, distance) in [("g-cos", "cosine"), ("g-l2", "l2"), ("g-ip", "ip")] {
        assert_eq!(
            api.post(
                "/vectors/index",
                &json!({"name": name, "dim": dim, "distance": distance})
            )
            .0,
            201
        );
        assert_eq!(
            api.post(&format!("/vectors/index/{name}/add"), &add_body("v", &data))
                .0,
            200
        );
        assert_eq!(
            api.delete(&format!("/vectors/index/{name}/items/v7")).0,
            204
        );
        assert_eq!(
            api.post(&format!("/vectors/index/{name}/flush"), &json!({}))
                .1,
            json!({"persisted": true})
        );
    }
    let queries = vectors(12, 30, dim);
    let before: Vec<Vec<Vec<(String, f64)>>> = ["g-cos", "g-l2", "g-ip"]
        .iter()
        .map(|n| queries.iter().map(|q| results(&api, n, q, 20)).collect())
        .collect();

    v.kill9();
    let v = persistent(dir.path(), &store.url, &[]);
    let api = v.api();
    assert_eq!(api.get("/health").1["indexes"], 3);
    for (i, name) in ["g-cos", "g-l2", "g-ip"].iter().enumerate() {
        assert_eq!(
            api.get(&format!("/vectors/index/{name}")).1["count"],
            2999,
            "{name}"
        );
        assert_eq!(api.get(&format!("/vectors/index/{name}/items/v7")).0, 404);
        // the exact graph: the same neighbour lists, distances and order for every query
        let after: Vec<Vec<(String, f64)>> =
            queries.iter().map(|q| results(&api, name, q, 20)).collect();
        assert_eq!(
            after, before[i],
            "{name}: search results changed across the restart"
        );
        if *name != "g-ip" {
            // Every stored vector intact and reachable: searched with ef as large as the
            // index (at ef 128 an approximate search may miss one point in tens of
            // thousands once the items are sealed into a graph).
            for (j, vector) in data.iter().enumerate().filter(|(j, _)| *j != 7) {
                let top = results_at(&api, name, vector, 1, 3000);
                assert_eq!(top[0].0, format!("v{j}"), "{name}");
                assert!(
                    top[0].1.abs() <= 1e-5,
                    "{name}: v{j} at distance {}",
                    top[0].1
                );
            }
        }
    }

    let file = root.join("_vectors").join("g-l2.lhv1");
    assert!(file.exists());
    assert_eq!(api.delete("/vectors/index/g-l2").0, 204);
    assert!(!file.exists(), "DELETE must remove _vectors/g-l2.lhv1");
    for name in ["g-cos", "g-ip"] {
        assert_eq!(api.delete(&format!("/vectors/index/{name}")).0, 204);
    }
    drop(v);
    let v = persistent(dir.path(), &store.url, &[]);
    assert_eq!(v.api().get("/health").1["indexes"], 0);
    assert_eq!(v.api().get("/vectors/index/g-l2").0, 404);
}

/// storaged down for `OUTAGE_SECONDS` (30 by default) under writes and reads: both go on,
/// `/health` shows the backlog, `flush` answers 503 meanwhile, and once storaged is back
/// everything is stored without any request, and comes back after a restart.
#[test]
fn storaged_outage_is_survived_and_the_latest_state_saved_once_it_is_back() {
    let outage = Duration::from_secs(
        std::env::var("OUTAGE_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let port = free_port();
    let mut store = storaged(dir.path(), &root, Some(port));
    let v = persistent(
        dir.path(),
        &store.url,
        &[
            "--set",
            "vectord.save_quiet_ms=50",
            "--set",
            "vectord.storage_timeout_s=2",
        ],
    );
    let api = v.api();
    api.post(
        "/vectors/index",
        &json!({"name": "o", "dim": 4, "distance": "l2"}),
    );
    assert_eq!(
        api.post("/vectors/index/o/flush", &json!({})).1,
        json!({"persisted": true})
    );

    store.kill9();
    let down = Instant::now();
    let mut written = 0;
    let mut saw_backlog = false;
    let mut saw_503 = false;
    while down.elapsed() < outage {
        let (s, _) = api.post(
            "/vectors/index/o/add",
            &json!({"items": [{"id": format!("x{written}"), "vector": [written, 1, 2, 3]}]}),
        );
        assert_eq!(s, 200, "writes go on while storaged is down");
        written += 1;
        let (s, found) = api.post(
            "/vectors/index/o/search",
            &json!({"vector": [written - 1, 1, 2, 3], "k": 1}),
        );
        assert_eq!(s, 200, "searches go on while storaged is down");
        assert_eq!(found["results"][0]["id"], format!("x{}", written - 1));
        let health = api.get("/health").1;
        saw_backlog |= health["save_errors"][0]["name"] == "o";
        if written % 20 == 0 {
            let (s, b) = api.post("/vectors/index/o/flush", &json!({}));
            assert_eq!(
                (s, b["error"]["code"].as_str()),
                (503, Some("storage_unavailable")),
                "{b}"
            );
            saw_503 = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(saw_backlog, "/health never showed the failing saves");
    assert!(saw_503, "no flush was tried during the outage");
    let (_, info) = api.get("/vectors/index/o");
    assert_eq!(info["count"], written);
    assert!(info["unsaved_for_ms"].as_u64().unwrap_or(0) > 0, "{info}");

    // storaged comes back on the same port: the retry saves without any request
    let _store = storaged(dir.path(), &root, Some(port));
    let back = Instant::now();
    let last = format!("x{}", written - 1);
    loop {
        // the last item reached a log object of the index
        let stored = files_under(&root.join("_vectors").join("o"))
            .into_iter()
            .any(|f| {
                std::fs::read(f)
                    .unwrap_or_default()
                    .windows(last.len())
                    .any(|w| w == last.as_bytes())
            });
        if stored {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "latest state not saved after storaged came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        api.post("/vectors/index/o/flush", &json!({})).1,
        json!({"persisted": true})
    );
    assert!(api.get("/health").1.get("save_errors").is_none());
    drop(v);
    let v = persistent(dir.path(), &_store.url, &[]);
    assert_eq!(v.api().get("/vectors/index/o").1["count"], written);
    eprintln!(
        "outage: {} s down, {written} writes, saved {:.1} s after storaged came back",
        outage.as_secs(),
        back.elapsed().as_secs_f64()
    );
}

/// Flips one byte in the middle of a file.
fn damage(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() * 2 / 3;
    bytes[at] ^= 0xff;
    std::fs::write(path, &bytes).unwrap();
}

#[test]
fn damaged_objects_are_reported_and_the_good_indexes_load() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    let small_segments = ["--set", "vectord.seal_points=100"];
    let mut v = persistent(dir.path(), &store.url, &small_segments);
    let api = v.api();
    let names = ["good1", "bad-seg", "bad-log", "good2"];
    for name in names {
        api.post(
            "/vectors/index",
            &json!({"name": name, "dim": 8, "distance": "cosine"}),
        );
        for batch in vectors(3, 300, 8).chunks(100).enumerate() {
            let body = add_body(&format!("b{}-", batch.0), batch.1);
            api.post(&format!("/vectors/index/{name}/add"), &body);
        }
    }
    // sealed segments each (300 items), then ten items that only a log object holds
    for name in names {
        let started = Instant::now();
        loop {
            let (_, info) = api.get(&format!("/vectors/index/{name}"));
            if info["unsealed_count"] == 0 && info["indexing"] == false {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "{info}");
            std::thread::sleep(Duration::from_millis(50));
        }
        api.post(
            &format!("/vectors/index/{name}/add"),
            &add_body("tail-", &vectors(4, 10, 8)),
        );
    }
    assert!(v.terminate().success());
    let idx = |name: &str| root.join("_vectors").join(name);
    let segment = files_under(&idx("bad-seg"))
        .into_iter()
        .find(|f| f.to_string_lossy().contains("seg-"))
        .expect("bad-seg has segment objects");
    damage(&segment);
    let logs: Vec<_> = files_under(&idx("bad-log"))
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("log-"))
        .collect();
    let last_log = logs.last().expect("bad-log has a log object").clone();
    damage(&last_log);
    // and a truncated manifest, and one that is not LHV1 at all
    let good = std::fs::read(root.join("_vectors").join("good1.lhv1")).unwrap();
    std::fs::write(
        root.join("_vectors").join("short.lhv1"),
        &good[..good.len() / 2],
    )
    .unwrap();
    std::fs::write(root.join("_vectors").join("junk.lhv1"), b"hello").unwrap();

    let v = persistent(dir.path(), &store.url, &small_segments);
    let (_, health) = v.api().get("/health");
    assert_eq!(health["indexes"], 3, "{health}");
    let failed: Vec<&str> = health["failed_indexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["bad-seg", "junk", "short"], "{health}");
    let bad_entry = &health["failed_indexes"][0];
    assert!(
        bad_entry["error"].as_str().unwrap().contains("checksum"),
        "{bad_entry}"
    );
    for name in ["good1", "good2"] {
        assert_eq!(
            v.api().get(&format!("/vectors/index/{name}")).1["count"],
            310
        );
    }
    // a damaged log object stops the replay there: reported, the rest loads
    assert_eq!(v.api().get("/vectors/index/bad-log").1["count"], 300);
    assert_eq!(health["load_warnings"][0]["name"], "bad-log", "{health}");
    assert!(
        health["load_warnings"][0]["warning"]
            .as_str()
            .unwrap()
            .contains("damaged"),
        "{health}"
    );
    // nothing damaged is deleted or changed
    assert!(segment.exists() && last_log.exists());
    assert!(
        v.log_text().contains("bad-seg.lhv1 not loaded"),
        "{}",
        v.log_text()
    );
}

#[test]
fn a_save_in_flight_never_brings_a_deleted_index_back() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    // no debounce: every write starts a save at once, so deletes land on saves in flight
    let v = persistent(
        dir.path(),
        &store.url,
        &[
            "--set",
            "vectord.save_quiet_ms=0",
            "--set",
            "vectord.save_max_delay_ms=0",
        ],
    );
    let api = v.api();
    let data = vectors(5, 2000, 16);
    for round in 0..15 {
        let name = format!("r{}", round % 3);
        assert_eq!(
            api.post(
                "/vectors/index",
                &json!({"name": name, "dim": 16, "distance": "l2"})
            )
            .0,
            201
        );
        assert_eq!(
            api.post(
                &format!("/vectors/index/{name}/add"),
                &add_body("x", &data[..200 * (1 + round % 5)])
            )
            .0,
            200
        );
        std::thread::sleep(Duration::from_millis((round * 7 % 40) as u64));
        assert_eq!(api.delete(&format!("/vectors/index/{name}")).0, 204);
    }
    // one survivor, to prove saves still work
    api.post(
        "/vectors/index",
        &json!({"name": "keep", "dim": 16, "distance": "l2"}),
    );
    api.post("/vectors/index/keep/add", &add_body("k", &data[..10]));
    assert_eq!(
        api.post("/vectors/index/keep/flush", &json!({})).1["persisted"],
        true
    );
    std::thread::sleep(Duration::from_millis(500));
    let manifests: Vec<String> = std::fs::read_dir(root.join("_vectors"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".lhv1"))
        .collect();
    assert_eq!(manifests, ["keep.lhv1"]);
    for r in ["r0", "r1", "r2"] {
        let left = files_under(&root.join("_vectors").join(r));
        assert!(left.is_empty(), "objects of deleted {r} left: {left:?}");
    }
    drop(v);
    let v = persistent(dir.path(), &store.url, &[]);
    let (_, list) = v.api().get("/vectors/index");
    let names: Vec<&str> = list["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["keep"]);
}

#[test]
fn sigterm_saves_pending_changes_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    // a long debounce: nothing would be saved before the signal without the final flush
    let mut v = persistent(
        dir.path(),
        &store.url,
        &[
            "--set",
            "vectord.save_quiet_ms=60000",
            "--set",
            "vectord.save_max_delay_ms=60000",
        ],
    );
    let api = v.api();
    api.post(
        "/vectors/index",
        &json!({"name": "t", "dim": 4, "distance": "cosine"}),
    );
    api.post("/vectors/index/t/add", &add_body("i", &vectors(9, 500, 4)));
    let status = v.terminate();
    assert!(status.success(), "exit status {status:?}\n{}", v.log_text());
    let v = persistent(dir.path(), &store.url, &[]);
    let (_, info) = v.api().get("/vectors/index/t");
    assert_eq!(info["count"], 500, "{info}");
}

#[test]
fn the_default_command_is_persistent_with_embedded_storaged() {
    let dir = tempfile::tempdir().unwrap();
    let sport = free_port();
    let data = dir.path().join("data");
    let args = |sport: u16| -> Vec<String> {
        vec![
            "--storaged-bind".into(),
            format!("127.0.0.1:{sport}"),
            "--storaged-url".into(),
            format!("http://127.0.0.1:{sport}"),
            "--data-dir".into(),
            data.display().to_string(),
        ]
    };
    let mut v = vectord(dir.path(), &args(sport), true);
    let api = v.api();
    assert_eq!(api.get("/health").1["persistence"], "storaged");
    api.post(
        "/vectors/index",
        &json!({"name": "e", "dim": 3, "distance": "l2"}),
    );
    api.post(
        "/vectors/index/e/add",
        &json!({"items": [{"id": "one", "vector": [1, 2, 3], "metadata": {"k": "v"}}]}),
    );
    assert_eq!(
        api.post("/vectors/index/e/flush", &json!({})).1["persisted"],
        true
    );
    v.kill9();
    assert!(data.join("_vectors").join("e.lhv1").exists());
    let v = vectord(dir.path(), &args(sport), true);
    let (_, item) = v.api().get("/vectors/index/e/items/one");
    assert_eq!(
        item,
        json!({"id": "one", "vector": [1.0, 2.0, 3.0], "metadata": {"k": "v"}})
    );
    let _: Value = item;
}
