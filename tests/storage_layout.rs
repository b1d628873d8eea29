//! The storage layout against the real binaries: manifest, segment and log objects; files
//! of vectord 0.1.0 loaded and rewritten; a gap in the log; the order of a delete across a
//! crash; orphaned objects collected at start-up; saves that cost what changed.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn named(files: &[PathBuf], part: &str) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|f| f.to_string_lossy().contains(part))
        .cloned()
        .collect()
}

/// `common::wait_sealed` with this file's bound.
fn wait_sealed(api: &Api, name: &str) {
    common::wait_sealed(api, name, Duration::from_secs(120));
}

#[test]
fn files_of_0_1_0_load_and_are_rewritten_in_the_current_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v0.1.0");
    std::fs::create_dir_all(root.join("_vectors")).unwrap();
    for f in std::fs::read_dir(data.join("_vectors")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), root.join("_vectors").join(f.file_name())).unwrap();
    }
    let expected: Value =
        serde_json::from_slice(&std::fs::read(data.join("expected.json")).unwrap()).unwrap();
    let store = storaged(dir.path(), &root, None);
    let check = |api: &Api| {
        for name in ["legacy-cosine", "legacy-l2", "legacy-ip", "legacy-empty"] {
            let want = &expected[name];
            let (s, info) = api.get(&format!("/vectors/index/{name}"));
            assert_eq!(s, 200, "{name}: {info}");
            assert_eq!(info["count"], want["count"], "{name}");
            for (id, item) in want["items"].as_object().unwrap().iter().step_by(7) {
                let (s, got) = api.get(&format!("/vectors/index/{name}/items/{id}"));
                assert_eq!(s, 200, "{name} {id}");
                assert_eq!(got["vector"], item["vector"], "{name} {id}");
                assert_eq!(got["metadata"], item["metadata"], "{name} {id}");
            }
            assert_eq!(
                api.get(&format!("/vectors/index/{name}/items/item-0")).0,
                404
            );
        }
    };
    let mut v = persistent(dir.path(), &store.url, &[]);
    check(&v.api());
    // the first save rewrites each index in the current layout
    for name in ["legacy-cosine", "legacy-l2", "legacy-ip", "legacy-empty"] {
        let (_, b) = v
            .api()
            .post(&format!("/vectors/index/{name}/flush"), &json!({}));
        assert_eq!(b, json!({"persisted": true}), "{name}");
        let manifest = std::fs::read(root.join(format!("_vectors/{name}.lhv1"))).unwrap();
        let text = String::from_utf8_lossy(&manifest);
        assert!(
            text.contains("\"kind\":\"manifest\""),
            "{name}: {text:.200}"
        );
    }
    assert!(!named(&files_under(&root), "seg-").is_empty());
    v.kill9();
    let v = persistent(dir.path(), &store.url, &[]);
    check(&v.api());
}

#[test]
fn a_gap_in_the_log_stops_the_replay_there_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    let mut v = persistent(dir.path(), &store.url, &[]);
    let api = v.api();
    api.post(
        "/vectors/index",
        &json!({"name": "g", "dim": 4, "distance": "l2"}),
    );
    for b in 0..4 {
        let body = add_body(&format!("b{b}-"), &vectors(b, 10, 4));
        api.post("/vectors/index/g/add", &body);
        // one flush, one log object
        assert_eq!(
            api.post("/vectors/index/g/flush", &json!({})).1["persisted"],
            true
        );
    }
    v.kill9();
    let logs = named(&files_under(&root.join("_vectors/g")), "log-");
    assert_eq!(logs.len(), 4, "{logs:?}");
    std::fs::remove_file(&logs[2]).unwrap();
    let v = persistent(dir.path(), &store.url, &[]);
    let (_, info) = v.api().get("/vectors/index/g");
    assert_eq!(info["count"], 20, "the two batches before the gap: {info}");
    assert_eq!(v.api().get("/vectors/index/g/items/b1-3").0, 200);
    assert_eq!(v.api().get("/vectors/index/g/items/b3-3").0, 404);
    let (_, health) = v.api().get("/health");
    assert_eq!(health["load_warnings"][0]["name"], "g", "{health}");
    assert!(health["load_warnings"][0]["warning"]
        .as_str()
        .unwrap()
        .contains("gap"));
    assert!(logs[3].exists(), "what follows a gap is left in place");
    // the index goes on as a new incarnation; its next start is clean
    assert_eq!(
        v.api().post("/vectors/index/g/flush", &json!({})).1["persisted"],
        true
    );
    drop(v);
    let v = persistent(dir.path(), &store.url, &[]);
    assert_eq!(v.api().get("/vectors/index/g").1["count"], 20);
    assert!(v.api().get("/health").1.get("load_warnings").is_none());
}

#[test]
fn delete_removes_the_manifest_first_and_start_up_collects_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    // every seal written at once, so that the delete has segment objects to remove
    let seal = [
        "--set",
        "vectord.seal_points=50",
        "--set",
        "vectord.manifest_log_bytes=0",
    ];
    let mut v = persistent(dir.path(), &store.url, &seal);
    let api = v.api();
    for name in ["d", "keep"] {
        api.post(
            "/vectors/index",
            &json!({"name": name, "dim": 4, "distance": "l2"}),
        );
        api.post(
            &format!("/vectors/index/{name}/add"),
            &add_body("i", &vectors(1, 120, 4)),
        );
        wait_sealed(&api, name);
        assert_eq!(
            api.post(&format!("/vectors/index/{name}/flush"), &json!({}))
                .1["persisted"],
            true
        );
    }
    // a crash right after the manifest went, before the rest: simulated by putting the
    // objects back
    let before = files_under(&root.join("_vectors/d"));
    assert!(!named(&before, "seg-").is_empty(), "{before:?}");
    let copies: Vec<(PathBuf, Vec<u8>)> = before
        .iter()
        .map(|f| (f.clone(), std::fs::read(f).unwrap()))
        .collect();
    assert_eq!(api.delete("/vectors/index/d").0, 204);
    assert!(!root.join("_vectors/d.lhv1").exists());
    v.kill9();
    for (path, bytes) in &copies {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    // and junk: another incarnation of a live index, a segment no manifest names
    let keep_dir = files_under(&root.join("_vectors/keep"))[0]
        .parent()
        .unwrap()
        .to_path_buf();
    let stray_incarnation = root.join("_vectors/keep/00000000000000aa/seg-0000000000000001.lhv1");
    std::fs::create_dir_all(stray_incarnation.parent().unwrap()).unwrap();
    std::fs::write(&stray_incarnation, b"old").unwrap();
    let stray_segment = keep_dir.join("seg-00000000000000ff.lhv1");
    std::fs::write(&stray_segment, b"crash before its manifest").unwrap();

    let v = persistent(dir.path(), &store.url, &seal);
    assert_eq!(
        v.api().get("/vectors/index/d").0,
        404,
        "a deleted index came back"
    );
    assert_eq!(v.api().get("/vectors/index/keep").1["count"], 120);
    assert!(files_under(&root.join("_vectors/d")).is_empty());
    assert!(!stray_incarnation.exists() && !stray_segment.exists());
    assert!(
        v.log_text().contains("orphaned objects"),
        "{}",
        v.log_text()
    );
    // the name is free, and a new index of that name starts from nothing
    assert_eq!(
        v.api()
            .post(
                "/vectors/index",
                &json!({"name": "d", "dim": 4, "distance": "l2"})
            )
            .0,
        201
    );
    assert_eq!(v.api().get("/vectors/index/d").1["count"], 0);
}

#[test]
fn a_small_change_to_a_big_index_writes_a_small_log_object() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    let v = persistent(
        dir.path(),
        &store.url,
        &["--set", "vectord.seal_points=2000"],
    );
    let api = v.api();
    api.post(
        "/vectors/index",
        &json!({"name": "big", "dim": 64, "distance": "cosine"}),
    );
    for (b, chunk) in vectors(5, 6000, 64).chunks(1000).enumerate() {
        api.post(
            "/vectors/index/big/add",
            &add_body(&format!("b{b}-"), chunk),
        );
    }
    wait_sealed(&api, "big");
    assert_eq!(
        api.post("/vectors/index/big/flush", &json!({})).1["persisted"],
        true
    );
    let total = |root: &Path| -> u64 {
        files_under(root)
            .iter()
            .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
            .sum()
    };
    let stored = total(&root);
    let files_before = files_under(&root);
    // ten vectors more: one small log object, nothing rewritten
    api.post(
        "/vectors/index/big/add",
        &add_body("t-", &vectors(6, 10, 64)),
    );
    assert_eq!(
        api.post("/vectors/index/big/flush", &json!({})).1["persisted"],
        true
    );
    let files_after = files_under(&root);
    let new: Vec<&PathBuf> = files_after
        .iter()
        .filter(|f| !files_before.contains(f))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(new[0].to_string_lossy().contains("log-"));
    let size = std::fs::metadata(new[0]).unwrap().len();
    // 10 vectors of 64 floats, ids and framing: about 3 KB against an index of 1.7 MB
    assert!(size < 4_000, "a 10-vector change wrote {size} bytes");
    assert!(stored > 1_000_000, "{stored}");
    let manifest = root.join("_vectors/big.lhv1");
    let m_before = std::fs::read(&manifest).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        std::fs::read(&manifest).unwrap(),
        m_before,
        "the manifest was rewritten"
    );
}

#[test]
fn seals_wait_in_the_log_until_it_is_long_and_the_shutdown_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    // 32-d vectors weigh about 150 bytes in the log: 1,000 of them stay under the bound,
    // 2,000 pass it
    let flags = [
        "--set",
        "vectord.seal_points=500",
        "--set",
        "vectord.manifest_log_bytes=200000",
    ];
    let mut v = persistent(dir.path(), &store.url, &flags);
    let api = v.api();
    api.post(
        "/vectors/index",
        &json!({"name": "lazy", "dim": 32, "distance": "l2"}),
    );
    let flush = |api: &Api| {
        assert_eq!(
            api.post("/vectors/index/lazy/flush", &json!({})).1["persisted"],
            true
        );
    };
    flush(&api); // the first manifest, naming no segment
    let all = vectors(9, 3000, 32);
    api.post("/vectors/index/lazy/add", &add_body("a", &all[..1000]));
    wait_sealed(&api, "lazy");
    flush(&api);
    let files = files_under(&root.join("_vectors/lazy"));
    assert!(
        named(&files, "seg-").is_empty(),
        "sealed, not yet written: {files:?}"
    );
    assert!(!named(&files, "log-").is_empty(), "{files:?}");

    // kill -9 now: the log alone brings everything back
    v.kill9();
    let mut v = persistent(dir.path(), &store.url, &flags);
    let api = v.api();
    assert_eq!(api.get("/vectors/index/lazy").1["count"], 1000);

    // past the bound: the next seal is written with a manifest, the log objects go
    api.post("/vectors/index/lazy/add", &add_body("b", &all[1000..2000]));
    wait_sealed(&api, "lazy");
    api.post("/vectors/index/lazy/add", &add_body("c", &all[2000..2010]));
    flush(&api);
    let files = files_under(&root.join("_vectors/lazy"));
    assert!(!named(&files, "seg-").is_empty(), "{files:?}");
    let logs = named(&files, "log-");
    assert!(logs.len() <= 2, "covered log objects are removed: {logs:?}");

    // a clean shutdown writes what it can under a manifest (c and d fill one segment)
    api.post("/vectors/index/lazy/add", &add_body("d", &all[2010..2500]));
    wait_sealed(&api, "lazy");
    assert!(v.terminate().success());
    let files = files_under(&root.join("_vectors/lazy"));
    assert!(named(&files, "log-").is_empty(), "checkpointed: {files:?}");
    let v = persistent(dir.path(), &store.url, &flags);
    let api = v.api();
    assert_eq!(api.get("/vectors/index/lazy").1["count"], 2500);
    for (i, id) in [(0, "a0"), (1500, "b500"), (2005, "c5"), (2499, "d489")] {
        let (s, item) = api.get(&format!("/vectors/index/lazy/items/{id}"));
        assert_eq!(s, 200, "{id}");
        let got: Vec<f32> = serde_json::from_value(item["vector"].clone()).unwrap();
        assert_eq!(got, all[i], "{id}");
    }
}

#[test]
fn a_log_tail_replayed_at_start_up_is_sealed_without_another_write() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    let mut v = persistent(dir.path(), &store.url, &[]);
    let api = v.api();
    api.post(
        "/vectors/index",
        &json!({"name": "tail", "dim": 16, "distance": "l2"}),
    );
    // more than an idle seal's minimum, fewer than a seal's worth: after the restart these
    // live only in the growing segment
    let all = vectors(5, 1500, 16);
    api.post("/vectors/index/tail/add", &add_body("t", &all));
    assert_eq!(
        api.post("/vectors/index/tail/flush", &json!({})).1["persisted"],
        true
    );
    v.kill9();
    let v = persistent(dir.path(), &store.url, &[]);
    let api = v.api();
    assert_eq!(api.get("/vectors/index/tail").1["count"], 1500);
    wait_sealed(&api, "tail");
    let (_, info) = api.get("/vectors/index/tail");
    assert!(info["sealed_segments"].as_u64().unwrap() >= 1, "{info}");
}
