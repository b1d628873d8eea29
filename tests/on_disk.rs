//! `on_disk` indexes on the real binaries: sealed segments' vectors live in cache files
//! under `vectord.cache_dir` (mapped), the index info says how many bytes are where, a
//! restart maps the files instead of reading storaged, and a file that is damaged or gone
//! is written again from storaged, with every answer the same as before.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const DIM: usize = 32;
const N: usize = 3000;

fn small() -> [&'static str; 2] {
    ["--set", "vectord.seal_points=1000"]
}

fn cache_files(cache: &Path) -> Vec<std::path::PathBuf> {
    files_under(cache)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "vdc"))
        .collect()
}

/// What a client sees of the index: searches with every extra, a get and the count.
fn answers(api: &Api, data: &[Vec<f32>]) -> Vec<Value> {
    let mut out = Vec::new();
    for i in (0..N).step_by(251) {
        let (s, b) = api.post(
            "/vectors/index/docs/search",
            &json!({"vector": data[i], "k": 5, "ef": 64,
                    "include": ["vector", "metadata", "document"]}),
        );
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["results"][0]["id"], format!("v{i}"), "{b}");
        out.push(b);
        let (_, exact) = api.post(
            "/vectors/index/docs/search",
            &json!({"vector": data[i], "k": 3, "rescore": false, "filter": {"group": 1}}),
        );
        out.push(exact);
    }
    out.push(api.get("/vectors/index/docs/items/v7").1);
    out.push(api.post("/vectors/index/docs/count", &json!({})).1);
    out
}

#[test]
fn an_on_disk_index_maps_its_vectors_and_comes_back_the_same_from_its_cache_or_from_storaged() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    let mut v = persistent(dir.path(), &store.url, &small());
    let cache = dir.path().join("cache");
    let api = v.api();
    let data = vectors(31, N, DIM);
    let mut body = add_body("v", &data);
    for (i, item) in body["items"].as_array_mut().unwrap().iter_mut().enumerate() {
        item["document"] = json!(format!("text of item {i}"));
    }
    for (name, on_disk) in [("docs", true), ("plain", false)] {
        let (s, info) = api.post(
            "/vectors/index",
            &json!({"name": name, "dim": DIM, "distance": "cosine", "on_disk": on_disk,
                    "quantization": {"type": "int8"}}),
        );
        assert_eq!(s, 201, "{info}");
        assert_eq!(info["on_disk"], on_disk);
        assert_eq!(
            info["rescoring"],
            json!({"rescore": true, "oversampling": 4.0})
        );
        let add = format!("/vectors/index/{name}/add");
        assert_eq!(api.post(&add, &body).0, 200);
        wait_sealed(&api, name, Duration::from_secs(120));
    }
    let (_, docs) = api.get("/vectors/index/docs");
    let (_, plain) = api.get("/vectors/index/plain");
    let vector_bytes = (N * DIM * 4) as i64;
    assert!(
        docs["disk_bytes"].as_i64().unwrap() > vector_bytes,
        "{docs}"
    );
    assert_eq!(plain["disk_bytes"], 0, "{plain}");
    let saved = plain["memory_bytes_estimate"].as_i64().unwrap()
        - docs["memory_bytes_estimate"].as_i64().unwrap();
    assert!(
        saved >= vector_bytes * 9 / 10,
        "the vectors left the heap: {saved} bytes less than {plain}"
    );
    let files = cache_files(&cache);
    assert!(!files.is_empty());
    assert!(
        files.iter().all(|f| f.starts_with(cache.join("docs"))),
        "{files:?}"
    );
    let text = ureq::get(&format!("{}/metrics", v.url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        text.contains("vectord_index_disk_bytes{index=\"docs\"}"),
        "{text}"
    );
    let before = answers(&api, &data);
    assert_eq!(before.last().unwrap()["count"], N);

    // A restart maps the files (storaged is not read for the segments).
    assert!(v.terminate().success());
    let stray = cache.join("docs").join("seg-00000000000000ff.vdc");
    std::fs::write(&stray, b"left by a crash").unwrap();
    let mut v = persistent(dir.path(), &store.url, &small());
    assert_eq!(answers(&v.api(), &data), before);
    assert!(
        !stray.exists(),
        "a file the manifest does not name is removed"
    );
    let log = v.log_text();
    assert!(
        log.contains("segments mapped from cache files, 0 fetched"),
        "{log}"
    );

    // A damaged file is written again from storaged.
    v.kill9();
    let files = cache_files(&cache.join("docs"));
    let mut bytes = std::fs::read(&files[0]).unwrap();
    bytes[100] ^= 0x40;
    std::fs::write(&files[0], &bytes).unwrap();
    let mut v = persistent(dir.path(), &store.url, &small());
    assert_eq!(answers(&v.api(), &data), before);
    assert!(v.log_text().contains("writing it again from storaged"));
    assert_ne!(std::fs::read(&files[0]).unwrap(), bytes, "rewritten");

    // And so are missing ones.
    v.kill9();
    std::fs::remove_dir_all(cache.join("docs")).unwrap();
    let v = persistent(dir.path(), &store.url, &small());
    let api = v.api();
    assert_eq!(answers(&api, &data), before);
    assert_eq!(cache_files(&cache.join("docs")).len(), files.len());

    // Deletes and upserts keep working on mapped segments; a deleted index takes its
    // files along.
    let (s, b) = api.post("/vectors/index/docs/delete", &json!({"ids": ["v0", "v1"]}));
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        api.post("/vectors/index/docs/count", &json!({})).1["count"],
        N - 2
    );
    assert_eq!(api.delete("/vectors/index/docs").0, 204);
    assert!(!cache.join("docs").exists());
}

#[test]
fn on_disk_must_be_a_boolean() {
    let v = Ephemeral::start();
    let (s, b) = v.post(
        "/vectors/index",
        &json!({"name": "x", "dim": 2, "distance": "l2", "on_disk": "yes"}),
    );
    assert_eq!(s, 400, "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("on_disk"),
        "{b}"
    );
    assert_eq!(v.get("/vectors/index/x").0, 404);
}
