//! int8 quantization through the HTTP API on the real binaries: created with an index,
//! shown in its info, searched with and without rescoring, refused when malformed, and the
//! same after a restart.

mod common;

use common::*;
use serde_json::{json, Value};

fn ids(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_int8_index_answers_like_a_plain_one_and_keeps_its_setting() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    let small = ["--set", "vectord.seal_points=500"];
    let mut v = persistent(dir.path(), &store.url, &small);
    let api = v.api();
    let dim = 32;
    for (name, quantization) in [
        ("plain", Value::Null),
        ("int8", json!({"type": "int8", "quantile": 0.99})),
    ] {
        let (s, info) = api.post(
            "/vectors/index",
            &json!({"name": name, "dim": dim, "distance": "cosine", "quantization": quantization}),
        );
        assert_eq!(s, 201, "{info}");
        assert_eq!(
            info.get("quantization").cloned().unwrap_or(Value::Null),
            quantization
        );
    }
    let data = vectors(21, 2000, dim);
    for name in ["plain", "int8"] {
        assert_eq!(
            api.post(&format!("/vectors/index/{name}/add"), &add_body("v", &data))
                .0,
            200
        );
        assert_eq!(
            api.post(&format!("/vectors/index/{name}/flush"), &json!({}))
                .0,
            200
        );
    }
    wait_sealed(&api, "int8", std::time::Duration::from_secs(60));
    // each vector finds itself first, with and without rescoring
    let check = |api: &Api| {
        for i in (0..2000).step_by(97) {
            let q = &data[i];
            let (s, rescored) = api.post(
                "/vectors/index/int8/search",
                &json!({"vector": q, "k": 5, "ef": 64}),
            );
            assert_eq!(s, 200, "{rescored}");
            assert_eq!(ids(&rescored)[0], format!("v{i}"));
            assert!(rescored["results"][0]["distance"].as_f64().unwrap() < 1e-5);
            let (_, alone) = api.post(
                "/vectors/index/int8/search",
                &json!({"vector": q, "k": 5, "ef": 64, "rescore": false}),
            );
            assert_eq!(ids(&alone)[0], format!("v{i}"), "{alone}");
            let (_, plain) = api.post(
                "/vectors/index/plain/search",
                &json!({"vector": q, "k": 1, "ef": 64}),
            );
            assert_eq!(ids(&plain)[0], format!("v{i}"));
        }
    };
    check(&api);
    let (s, b) = api.post(
        "/vectors/index/int8/search",
        &json!({"vector": data[0], "k": 5, "oversampling": 1.5, "include": ["vector"]}),
    );
    assert_eq!(s, 200, "{b}");
    // a restart loads the setting and computes the codes again
    v.kill9();
    let v = persistent(dir.path(), &store.url, &small);
    let api = v.api();
    let (_, info) = api.get("/vectors/index/int8");
    assert_eq!(
        info["quantization"],
        json!({"type": "int8", "quantile": 0.99})
    );
    check(&api);
}

#[test]
fn malformed_quantization_and_search_options_are_refused() {
    let v = Ephemeral::start();
    for (body, code) in [
        (json!({"type": "int4"}), "invalid_quantization"),
        (
            json!({"type": "int8", "quantile": 1.5}),
            "invalid_quantization",
        ),
        (json!({"type": "int8", "extra": 1}), "invalid_quantization"),
        (json!("int8"), "invalid_quantization"),
    ] {
        let (s, b) = v.post(
            "/vectors/index",
            &json!({"name": "q", "dim": 4, "distance": "l2", "quantization": body}),
        );
        assert_eq!(s, 400, "{body}: {b}");
        assert_eq!(b["error"]["code"], code, "{b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("quantization"),
            "{b}"
        );
    }
    assert_eq!(v.get("/vectors/index/q").0, 404, "nothing was created");
    let (s, _) = v.post(
        "/vectors/index",
        &json!({"name": "q", "dim": 2, "distance": "l2", "quantization": {"type": "int8"}}),
    );
    assert_eq!(s, 201);
    let (_, info) = v.get("/vectors/index/q");
    assert_eq!(
        info["quantization"],
        json!({"type": "int8", "quantile": 0.99})
    );
    let (s, info) = v.post(
        "/vectors/index",
        &json!({"name": "q2", "dim": 2, "distance": "l2", "quantization": {"type": "int8", "quantile": null}}),
    );
    assert_eq!(s, 201, "a null quantile is the default: {info}");
    assert_eq!(info["quantization"]["quantile"], 0.99);
    for oversampling in [0.5, 101.0] {
        let (s, b) = v.post(
            "/vectors/index/q/search",
            &json!({"vector": [1, 0], "k": 1, "oversampling": oversampling}),
        );
        assert_eq!(s, 400, "{b}");
        assert_eq!(b["error"]["code"], "invalid_oversampling");
    }
}
