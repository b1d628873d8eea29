//! Reliability of persistence against the real binaries: no acknowledged write is lost and
//! no deleted index comes back, across deletes racing saves, re-creates, failing storage and
//! restarts. A fault-injecting proxy between vectord and storaged makes storage slow or
//! failing on chosen requests.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::proxy::{Action, FaultProxy};
use common::*;
use serde_json::{json, Value};

fn create(api: &Api, name: &str, dim: usize) -> (u16, Value) {
    api.post(
        "/vectors/index",
        &json!({"name": name, "dim": dim, "distance": "l2"}),
    )
}

fn flush(api: &Api, name: &str) -> (u16, Value) {
    api.post(&format!("/vectors/index/{name}/flush"), &json!({}))
}

/// Waits until `check` holds, or fails the test after `limit`.
fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn create_then_flush_never_answers_true_before_the_index_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    let mut v = persistent(dir.path(), &store.url, &[]);
    let api = v.api();
    // Keep the actors' thread and the blocking pool busy meanwhile.
    create(&api, "busy", 32);
    let busy_api = api.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let busy = std::thread::spawn(move || {
        let data = vectors(1, 2000, 32);
        while !stop2.load(Ordering::Relaxed) {
            busy_api.post("/vectors/index/busy/add", &add_body("b", &data));
        }
    });
    for i in 0..200 {
        let name = format!("cf{i}");
        assert_eq!(create(&api, &name, 4).0, 201);
        assert_eq!(flush(&api, &name), (200, json!({"persisted": true})));
    }
    stop.store(true, Ordering::Relaxed);
    busy.join().unwrap();
    v.kill9();
    let v = persistent(dir.path(), &store.url, &[]);
    for i in 0..200 {
        assert_eq!(
            v.api().get(&format!("/vectors/index/cf{i}")).0,
            200,
            "cf{i} was flushed but is gone after kill -9"
        );
    }
}

#[test]
fn a_recreated_index_survives_the_delete_of_its_predecessor() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    // A slow store (as S3 can be) widens every window between a save and a delete.
    let proxy = FaultProxy::start(&store.url);
    proxy.set_rule(|method, _| {
        if method == "PUT" {
            Action::Delay(Duration::from_millis(300))
        } else {
            Action::Forward
        }
    });
    let mut v = persistent(
        dir.path(),
        &proxy.url,
        &[
            "--set",
            "vectord.save_quiet_ms=0",
            "--set",
            "vectord.save_max_delay_ms=0",
        ],
    );
    let api = v.api();
    let big = vectors(2, 3000, 16);
    for round in 0..4 {
        assert_eq!(create(&api, "x", 16).0, 201);
        let adder = {
            let api = api.clone();
            let body = add_body("old", &big);
            std::thread::spawn(move || api.post("/vectors/index/x/add", &body).0)
        };
        std::thread::sleep(Duration::from_millis(20 + 40 * round));
        let (status, body) = api.delete("/vectors/index/x");
        assert_eq!(status, 204, "{body}");
        let added = adder.join().unwrap();
        assert!(added == 200 || added == 404, "add answered {added}");
        // The name is free the moment DELETE answered.
        assert_eq!(create(&api, "x", 16).0, 201);
        let fresh = add_body(&format!("new{round}-"), &big[..5]);
        assert_eq!(api.post("/vectors/index/x/add", &fresh).0, 200);
        assert_eq!(flush(&api, "x"), (200, json!({"persisted": true})));
        if round < 3 {
            assert_eq!(api.delete("/vectors/index/x").0, 204);
        }
    }
    std::thread::sleep(Duration::from_millis(800));
    v.kill9();
    let v = persistent(dir.path(), &store.url, &[]);
    let (status, info) = v.api().get("/vectors/index/x");
    assert_eq!(status, 200, "the flushed re-created index is gone: {info}");
    assert_eq!(info["count"], 5, "{info}");
    assert_eq!(v.api().get("/vectors/index/x/items/new3-0").0, 200);
    assert_eq!(v.api().get("/vectors/index/x/items/old0").0, 404);
}

#[test]
fn delete_answers_204_only_once_the_stored_copy_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    let proxy = FaultProxy::start(&store.url);
    let mut v = persistent(dir.path(), &proxy.url, &[]);
    let api = v.api();
    assert_eq!(create(&api, "d", 4).0, 201);
    api.post("/vectors/index/d/add", &add_body("i", &vectors(3, 50, 4)));
    assert_eq!(flush(&api, "d").1, json!({"persisted": true}));
    let file = root.join("_vectors/d.lhv1");
    assert!(file.exists());

    // storaged refuses deletes: DELETE must not claim success
    proxy.set_rule(|method, _| {
        if method == "DELETE" {
            Action::Fail(500)
        } else {
            Action::Forward
        }
    });
    let (status, body) = api.delete("/vectors/index/d");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
    assert_eq!(api.get("/vectors/index/d").0, 404);
    let (status, body) = create(&api, "d", 4);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("index_deleting")),
        "{body}"
    );
    // failed removals are retried with backoff, not in a tight loop
    let before = proxy.seen.lock().unwrap().len();
    std::thread::sleep(Duration::from_secs(2));
    let deletes = proxy.seen.lock().unwrap()[before..]
        .iter()
        .filter(|r| r.starts_with("DELETE"))
        .count();
    assert!(
        (1..=6).contains(&deletes),
        "{deletes} delete attempts in 2 s"
    );
    assert!(file.exists());
    // a crash now: the index was not deleted (the client was told so), it comes back
    v.kill9();
    proxy.set_rule(|_, _| Action::Forward);
    let mut v = persistent(dir.path(), &proxy.url, &[]);
    let api = v.api();
    assert_eq!(api.get("/vectors/index/d").1["count"], 50);

    // storaged fails the first attempt only: 503, then the retry removes the file and
    // frees the name, with no further request
    let failed_once = Arc::new(AtomicBool::new(false));
    let f = failed_once.clone();
    proxy.set_rule(move |method, _| {
        if method == "DELETE" && !f.swap(true, Ordering::SeqCst) {
            Action::Fail(500)
        } else {
            Action::Forward
        }
    });
    assert_eq!(api.delete("/vectors/index/d").0, 503);
    eventually(Duration::from_secs(10), "the retried delete", || {
        !file.exists()
    });
    eventually(Duration::from_secs(5), "the name to be free", || {
        create(&api, "d", 4).0 == 201
    });
    assert_eq!(api.delete("/vectors/index/d").0, 204);
    assert!(!file.exists());
    v.kill9();
    let v = persistent(dir.path(), &store.url, &[]);
    assert_eq!(v.api().get("/vectors/index/d").0, 404);
}

/// One kind of request of the storm below.
type Request = Box<dyn Fn(&Api) -> (u16, Value) + Send>;

#[test]
fn flush_delete_and_create_of_one_name_always_answer() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
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
    let rounds = 150;
    let spawn = |f: Request, allowed: &'static [u16]| {
        let api = api.clone();
        std::thread::spawn(move || {
            for _ in 0..rounds {
                // The client's timeout (120 s) would fail a wedged request; every answer
                // must come well before.
                let started = Instant::now();
                let (status, body) = f(&api);
                assert!(allowed.contains(&status), "{status} {body}");
                assert!(started.elapsed() < Duration::from_secs(10));
            }
        })
    };
    let threads = vec![
        spawn(Box::new(|a| flush(a, "s")), &[200, 404]),
        spawn(Box::new(|a| a.delete("/vectors/index/s")), &[204, 404]),
        spawn(Box::new(|a| create(a, "s", 4)), &[201, 409]),
        spawn(
            Box::new(|a| {
                a.post(
                    "/vectors/index/s/add",
                    &json!({"items": [{"id": "a", "vector": [1, 2, 3, 4]}]}),
                )
            }),
            &[200, 404],
        ),
    ];
    for t in threads {
        t.join().unwrap();
    }
    // whatever state the race left, it is stored exactly
    let exists = api.get("/vectors/index/s").0 == 200;
    if exists {
        assert_eq!(flush(&api, "s").1, json!({"persisted": true}));
    }
    let count = api.get("/vectors/index/s").1["count"].clone();
    drop(v);
    let v = persistent(dir.path(), &store.url, &[]);
    let (status, info) = v.api().get("/vectors/index/s");
    assert_eq!(status == 200, exists, "{info}");
    if exists {
        assert_eq!(info["count"], count);
    }
}

#[test]
fn a_name_whose_load_failed_is_reserved_until_it_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    let v = persistent(dir.path(), &store.url, &[]);
    assert_eq!(create(&v.api(), "bad", 4).0, 201);
    v.api()
        .post("/vectors/index/bad/add", &add_body("i", &vectors(3, 20, 4)));
    assert_eq!(flush(&v.api(), "bad").1["persisted"], true);
    drop(v);
    let file = root.join("_vectors/bad.lhv1");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x55;
    std::fs::write(&file, &bytes).unwrap();

    let v = persistent(dir.path(), &store.url, &[]);
    let api = v.api();
    let (status, body) = create(&api, "bad", 4);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("index_load_failed")),
        "{body}"
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("DELETE"));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        bytes,
        "the bad file was changed"
    );
    assert_eq!(api.get("/health").1["failed_indexes"][0]["retrying"], false);
    // the operator removes it
    assert_eq!(api.delete("/vectors/index/bad").0, 204);
    assert!(!file.exists());
    assert!(api.get("/health").1.get("failed_indexes").is_none());
    assert_eq!(create(&api, "bad", 4).0, 201);
}

#[test]
fn a_transient_load_failure_is_retried_until_the_index_loads() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    let v = persistent(dir.path(), &store.url, &[]);
    for name in ["t", "ok"] {
        assert_eq!(create(&v.api(), name, 4).0, 201);
        v.api().post(
            &format!("/vectors/index/{name}/add"),
            &add_body("i", &vectors(4, 30, 4)),
        );
        assert_eq!(flush(&v.api(), name).1["persisted"], true);
    }
    drop(v);

    let proxy = FaultProxy::start(&store.url);
    proxy.set_rule(|method, path| {
        if method == "GET" && path.contains("/t.lhv1") {
            Action::Fail(500)
        } else {
            Action::Forward
        }
    });
    let v = persistent(dir.path(), &proxy.url, &[]);
    let api = v.api();
    assert_eq!(api.get("/vectors/index/ok").1["count"], 30);
    let health = api.get("/health").1;
    assert_eq!(health["failed_indexes"][0]["name"], "t", "{health}");
    assert_eq!(health["failed_indexes"][0]["retrying"], true, "{health}");
    assert_eq!(create(&api, "t", 4).1["error"]["code"], "index_load_failed");
    proxy.set_rule(|_, _| Action::Forward);
    eventually(Duration::from_secs(15), "t to load on retry", || {
        api.get("/vectors/index/t").0 == 200
    });
    assert_eq!(api.get("/vectors/index/t").1["count"], 30);
    assert!(api.get("/health").1.get("failed_indexes").is_none());
}

#[test]
fn kill_9_loses_at_most_the_writes_of_the_last_save_window() {
    // With healthy storage a write acknowledged at t is stored by t + save_max_delay_ms
    // (2 s by default) + the time of one save. Writes every 50 ms keep the index from
    // ever being quiet, so only the cap makes it save.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    for round in 0..3 {
        let mut v = persistent(dir.path(), &store.url, &[]);
        let api = v.api();
        let name = format!("w{round}");
        assert_eq!(create(&api, &name, 4).0, 201);
        let mut acked: Vec<(usize, Instant)> = Vec::new();
        let started = Instant::now();
        let run = Duration::from_millis(3000 + 700 * round as u64);
        let mut i = 0;
        while started.elapsed() < run {
            let body = json!({"items": [{"id": format!("x{i}"), "vector": [i, 1, 2, 3]}]});
            assert_eq!(
                api.post(&format!("/vectors/index/{name}/add"), &body).0,
                200
            );
            acked.push((i, Instant::now()));
            i += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        let killed = Instant::now();
        v.kill9();
        let v = persistent(dir.path(), &store.url, &[]);
        let api = v.api();
        // the bound: 2 s cap, plus a save (well under 500 ms here)
        let bound = Duration::from_millis(2500);
        let mut kept_late = 0;
        for (i, at) in &acked {
            let present = api.get(&format!("/vectors/index/{name}/items/x{i}")).0 == 200;
            if killed.duration_since(*at) > bound {
                assert!(
                    present,
                    "x{i}, acknowledged {:?} before the kill, is lost",
                    killed.duration_since(*at)
                );
            } else if present {
                kept_late += 1;
            }
        }
        eprintln!(
            "round {round}: {} writes, the last {kept_late} within the window survived too",
            acked.len()
        );
        drop(v);
    }
}

#[test]
fn after_a_crash_the_index_takes_writes_while_it_indexes_its_log_again() {
    // Items sealed in memory but not yet under a stored manifest come back from the log
    // unsealed after a kill -9: here 20,000, ten times the second run's
    // max_unsealed_points. They must not make `add` busy until they are indexed again.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    let never_a_new_manifest = ["--set", "vectord.manifest_log_bytes=1099511627776"];
    let mut first = never_a_new_manifest.to_vec();
    first.extend(["--set", "vectord.seal_points=2000"]);
    let mut v = persistent(dir.path(), &store.url, &first);
    let api = v.api();
    let dim = 128;
    assert_eq!(create(&api, "c", dim).0, 201);
    // The index's first manifest is stored now, empty: every item added after it stays in
    // the log only.
    assert_eq!(flush(&api, "c"), (200, json!({"persisted": true})));
    let vectors = vectord_actors::sample::seeded_vectors(5, 21_000, dim);
    for (b, chunk) in vectors[..20_000].chunks(1000).enumerate() {
        let items: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| json!({"id": format!("a{}", b * 1000 + i), "vector": v}))
            .collect();
        let (status, body) = api.post("/vectors/index/c/add", &json!({ "items": items }));
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(flush(&api, "c"), (200, json!({"persisted": true})));
    v.kill9();

    let mut second = never_a_new_manifest.to_vec();
    second.extend([
        "--set",
        "vectord.seal_points=1000",
        "--set",
        "vectord.max_unsealed_points=2000",
    ]);
    let v = persistent(dir.path(), &store.url, &second);
    let api = v.api();
    let (_, info) = api.get("/vectors/index/c");
    let unsealed = info["unsealed_count"].as_u64().unwrap();
    assert!(
        unsealed > 2000,
        "only {unsealed} items came back unsealed: the test needs more than 2,000"
    );
    let items: Vec<Value> = vectors[20_000..]
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"id": format!("b{i}"), "vector": v}))
        .collect();
    let (status, body) = api.post("/vectors/index/c/add", &json!({ "items": items }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 21_000);
    eventually(Duration::from_secs(300), "everything sealed again", || {
        api.get("/vectors/index/c").1["unsealed_count"] == 0
    });
    let (_, info) = api.get("/vectors/index/c");
    assert_eq!(info["count"], 21_000);
}
