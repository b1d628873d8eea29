//! API keys and configured limits against the real binary.

mod common;

use common::*;
use serde_json::json;

const KEY: &str = "test-key-0123456789abcdef";

fn with_key(api: &Api, method: &str, path: &str, key: Option<&str>) -> u16 {
    let mut req = ureq::request(method, &format!("{}{path}", api.base));
    if let Some(k) = key {
        req = req.set("Authorization", &format!("Bearer {k}"));
    }
    match req.call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, r)) => {
            if s == 401 {
                let body: serde_json::Value = r.into_json().unwrap();
                assert_eq!(body["error"]["code"], "unauthorized", "{body}");
            }
            s
        }
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

#[test]
fn an_api_key_guards_everything_but_health_ready_and_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    for source in [
        vec!["--set".to_string(), format!("vectord.api_key={KEY}")],
        vec![
            "--set".to_string(),
            format!("vectord.api_key_file={}", key_file.display()),
        ],
    ] {
        let mut args = vec!["--ephemeral".to_string()];
        args.extend(source);
        let v = vectord(dir.path(), &args, true);
        let api = v.api();
        assert_eq!(with_key(&api, "GET", "/health", None), 200);
        assert_eq!(with_key(&api, "GET", "/ready", None), 200);
        assert_eq!(with_key(&api, "GET", "/ui", None), 200);
        assert_eq!(with_key(&api, "GET", "/ui/app.js", None), 200);
        for path in ["/vectors/index", "/metrics", "/vectors/index/x"] {
            assert_eq!(with_key(&api, "GET", path, None), 401, "{path}");
            assert_eq!(
                with_key(&api, "GET", path, Some("wrong-key-0123456789")),
                401,
                "{path}"
            );
        }
        assert_eq!(with_key(&api, "GET", "/vectors/index", Some(KEY)), 200);
        assert_eq!(with_key(&api, "GET", "/metrics", Some(KEY)), 200);
        // the key is needed for writes too, and then they work
        let create = |key: Option<&str>| {
            let mut req = ureq::post(&format!("{}/vectors/index", api.base));
            if let Some(k) = key {
                req = req.set("Authorization", &format!("Bearer {k}"));
            }
            match req.send_json(json!({"name": "s", "dim": 2, "distance": "l2"})) {
                Ok(r) => r.status(),
                Err(ureq::Error::Status(s, _)) => s,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(create(None), 401);
        assert_eq!(create(Some(KEY)), 201);
        assert!(!v.log_text().contains(KEY), "the key was logged");
    }
    // a short key is refused at start-up, without echoing it
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vectord"))
        .args(["--ephemeral", "--set", "vectord.api_key=short"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("vectord.api_key") && !err.contains("short\""),
        "{err}"
    );
}

#[test]
fn metrics_can_be_left_open() {
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = [
        "--ephemeral",
        "--set",
        &format!("vectord.api_key={KEY}"),
        "--set",
        "vectord.metrics_public=true",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let v = vectord(dir.path(), &args, true);
    assert_eq!(with_key(&v.api(), "GET", "/metrics", None), 200);
    assert_eq!(with_key(&v.api(), "GET", "/vectors/index", None), 401);
}

#[test]
fn configured_limits_answer_4xx_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = [
        "--ephemeral",
        "--set",
        "vectord.max_batch_items=5",
        "--set",
        "vectord.max_metadata_bytes=40",
        "--set",
        "vectord.max_id_bytes=8",
        "--set",
        "vectord.max_filter_keys=2",
        "--set",
        "vectord.max_filter_depth=2",
        "--set",
        "vectord.max_indexes=2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let v = vectord(dir.path(), &args, true);
    let api = v.api();
    for name in ["a", "b"] {
        assert_eq!(
            api.post(
                "/vectors/index",
                &json!({"name": name, "dim": 2, "distance": "l2"})
            )
            .0,
            201
        );
    }
    let (s, b) = api.post(
        "/vectors/index",
        &json!({"name": "c", "dim": 2, "distance": "l2"}),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("too_many_indexes")),
        "{b}"
    );
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("vectord.max_indexes"));
    let items = |n: usize| json!({"items": (0..n).map(|i| json!({"id": format!("i{i}"), "vector": [i, 1]})).collect::<Vec<_>>()});
    let (s, b) = api.post("/vectors/index/a/add", &items(6));
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("too_many_items")),
        "{b}"
    );
    assert_eq!(api.post("/vectors/index/a/add", &items(5)).0, 200);
    let (s, b) = api.post(
        "/vectors/index/a/add",
        &json!({"items": [{"id": "m", "vector": [1, 1], "metadata": {"text": "x".repeat(50)}}]}),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("metadata_too_large")),
        "{b}"
    );
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("items[0].metadata"));
    let (s, b) = api.post(
        "/vectors/index/a/add",
        &json!({"items": [{"id": "123456789", "vector": [1, 1]}]}),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_id")),
        "{b}"
    );
    let (s, b) = api.post(
        "/vectors/index/a/search",
        &json!({"vector": [1, 1], "k": 1, "filter": {"a": 1, "b": 2, "c": 3}}),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_filter")),
        "{b}"
    );
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("vectord.max_filter_keys"),
        "{b}"
    );
    let deep = json!({"$not": {"$not": {"$not": {"a": 1}}}});
    let (s, b) = api.post(
        "/vectors/index/a/search",
        &json!({"vector": [1, 1], "k": 1, "filter": deep}),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_filter")),
        "{b}"
    );
    let message = b["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("filter.$not.$not.$not")
            && message.contains("vectord.max_filter_depth"),
        "{b}"
    );
    assert_eq!(
        api.get("/vectors/index/a").1["count"],
        5,
        "refused writes changed nothing"
    );
}

#[test]
fn storaged_with_a_key_refuses_requests_without_it_and_vectord_sends_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    std::fs::write(dir.path().join("none.toml"), "").unwrap();
    let port = free_port();
    let args: Vec<String> = [
        "--config",
        &dir.path().join("none.toml").display().to_string(),
        "--bind",
        &format!("127.0.0.1:{port}"),
        "--root",
        &root.display().to_string(),
        "--set",
        &format!("storaged.api_key={KEY}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let store = Proc::start(
        "storaged",
        env!("CARGO_BIN_EXE_storaged"),
        &args,
        port,
        &dir.path().join("storaged.log"),
        "/health",
    );
    let sapi = store.api();
    assert_eq!(with_key(&sapi, "GET", "/health", None), 200);
    assert_eq!(with_key(&sapi, "GET", "/storage/list?prefix=", None), 401);
    assert_eq!(
        with_key(
            &sapi,
            "GET",
            "/storage/list?prefix=",
            Some("wrong-key-0123456789")
        ),
        401
    );
    assert_eq!(
        with_key(&sapi, "GET", "/storage/list?prefix=", Some(KEY)),
        200
    );
    assert_eq!(with_key(&sapi, "GET", "/storage/get/x", None), 401);

    let v = persistent(
        dir.path(),
        &store.url,
        &["--set", &format!("storaged.api_key={KEY}")],
    );
    let api = v.api();
    api.post(
        "/vectors/index",
        &json!({"name": "guarded", "dim": 4, "distance": "l2"}),
    );
    api.post(
        "/vectors/index/guarded/add",
        &add_body("g", &vectors(3, 20, 4)),
    );
    assert_eq!(
        api.post("/vectors/index/guarded/flush", &json!({})).1,
        json!({"persisted": true})
    );
    assert!(root.join("_vectors/guarded.lhv1").exists());
    assert!(!store.log_text().contains(KEY), "the key is never logged");
}
