//! The HTTP contract of API.md, endpoint by endpoint and error by error, against the real
//! vectord binary (ephemeral mode).

mod common;

use common::*;
use serde_json::{json, Value};

fn code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"))
        .to_string()
}

/// Creates an index; the answer must be a 201, whose body is returned.
fn create(api: &Api, body: &Value) -> Value {
    let (s, b) = api.post("/vectors/index", body);
    assert_eq!(s, 201, "{body} -> {b}");
    b
}

/// Adds to `index`; the answer must be a 200, whose body is returned.
fn add(api: &Api, index: &str, body: &Value) -> Value {
    let (s, b) = api.post(&format!("/vectors/index/{index}/add"), body);
    assert_eq!(s, 200, "{body} -> {b}");
    b
}

/// Posts `body` to `path`: the answer must be a 400 whose message names `field`; returns
/// its body.
fn refused_naming(api: &Api, path: &str, body: &Value, field: &str) -> Value {
    let (s, b) = api.post(path, body);
    assert_eq!(s, 400, "{body} -> {b}");
    assert!(
        message(&b).contains(field),
        "{body}: message {:?} should name {field}",
        message(&b)
    );
    b
}

/// The `docs` index: cosine, dim 3, every other parameter left to its default.
fn docs() -> Value {
    json!({"name": "docs", "dim": 3, "distance": "cosine"})
}

/// Items a, b and c on the three axes; c without metadata.
fn abc() -> Value {
    json!({"items": [
        {"id": "a", "vector": [1.0, 0.0, 0.0], "metadata": {"lang": "en", "n": 1}},
        {"id": "b", "vector": [0.0, 2.0, 0.0], "metadata": {"lang": "fr"}},
        {"id": "c", "vector": [0.0, 0.0, 3.0]},
    ]})
}

/// Adds a, b and c to `docs`, then replaces a by [1, 1, 0] with {"lang": "de"}: the
/// answers of the two adds.
fn fill_docs(api: &Api) -> [Value; 2] {
    let replace_a =
        json!({"items": [{"id": "a", "vector": [1.0, 1.0, 0.0], "metadata": {"lang": "de"}}]});
    [abc(), replace_a].map(|body| add(api, "docs", &body))
}

/// A server of the test's own holding an empty `docs`.
fn with_docs() -> Ephemeral {
    let api = Ephemeral::start();
    create(&api, &docs());
    api
}

/// A server of the test's own whose `docs` holds a, b (metadata {"lang": "fr"}) and c
/// (no metadata), a replaced once (see `fill_docs`).
fn with_docs_filled() -> Ephemeral {
    let api = with_docs();
    fill_docs(&api);
    api
}

/// A server of the test's own with three indexes, created in an order that is not their
/// names': `docs`, `b-l2` (l2, dim 2, every parameter given) and `a.ip` (ip, dim 2).
/// Returns the server and the three creation answers.
fn with_the_three() -> (Ephemeral, [Value; 3]) {
    let api = Ephemeral::start();
    let created = [
        docs(),
        json!({"name": "b-l2", "dim": 2, "distance": "l2", "m": 8, "ef_construction": 50, "ef_search": 20}),
        json!({"name": "a.ip", "dim": 2, "distance": "ip"}),
    ]
    .map(|body| create(&api, &body));
    (api, created)
}

#[test]
fn health_and_readiness_answer_on_a_fresh_server() {
    let api = Ephemeral::start();
    let (s, b) = api.get("/health");
    assert_eq!(s, 200);
    assert_eq!(b["status"], "ok");
    assert_eq!(b["indexes"], 0);
    assert_eq!(b["persistence"], "ephemeral");
    assert_eq!(api.get("/ready").0, 200);
    // load balancers probe with HEAD
    let head = ureq::request("HEAD", &format!("{}/health", api.base)).call();
    assert_eq!(head.map(|r| r.status()).ok(), Some(200));
}

#[test]
fn create_index_fills_in_defaults_and_takes_given_parameters() {
    let (_api, [docs, l2, _]) = with_the_three();
    for (k, v) in [
        ("name", json!("docs")),
        ("dim", json!(3)),
        ("distance", json!("cosine")),
        ("m", json!(16)),
        ("ef_construction", json!(200)),
        ("ef_search", json!(64)),
        ("count", json!(0)),
    ] {
        assert_eq!(docs[k], v, "{k} in {docs}");
    }
    assert_eq!(
        (
            l2["m"].clone(),
            l2["ef_construction"].clone(),
            l2["ef_search"].clone()
        ),
        (json!(8), json!(50), json!(20))
    );
}

#[test]
fn create_index_refuses_a_name_in_use() {
    let api = with_docs();
    let (s, b) = api.post("/vectors/index", &docs());
    assert_eq!((s, code(&b)), (409, "index_exists"));
}

#[test]
fn create_index_validates_its_parameters() {
    let api = Ephemeral::start();
    // every invalid field is a 400 naming it
    let bad_creates = [
        (json!({"name": "", "dim": 3, "distance": "l2"}), "name"),
        (
            json!({"name": ".hidden", "dim": 3, "distance": "l2"}),
            "name",
        ),
        (json!({"name": "a/b", "dim": 3, "distance": "l2"}), "name"),
        (
            json!({"name": "x".repeat(129), "dim": 3, "distance": "l2"}),
            "name",
        ),
        (json!({"name": "ok", "dim": 0, "distance": "l2"}), "dim"),
        (json!({"name": "ok", "dim": 4097, "distance": "l2"}), "dim"),
        (json!({"name": "ok", "dim": -1, "distance": "l2"}), "dim"),
        (
            json!({"name": "ok", "dim": 3, "distance": "manhattan"}),
            "distance",
        ),
        (
            json!({"name": "ok", "dim": 3, "distance": "l2", "m": 1000}),
            "m",
        ),
        (
            json!({"name": "ok", "dim": 3, "distance": "l2", "ef_construction": 0}),
            "ef_construction",
        ),
        (
            json!({"name": "ok", "dim": 3, "distance": "l2", "ef_search": 0}),
            "ef_search",
        ),
        (
            json!({"name": "ok", "dim": 3, "distance": "l2", "colour": "red"}),
            "colour",
        ),
        (json!({"name": "ok", "distance": "l2"}), "dim"),
    ];
    for (body, field) in bad_creates {
        refused_naming(&api, "/vectors/index", &body, field);
    }
    let (s, b) = api.raw("POST", "/vectors/index", b"{not json");
    assert_eq!((s, code(&b)), (400, "invalid_json"));
    let (s, _) = api.raw("POST", "/vectors/index", b"");
    assert_eq!(s, 400);
    assert_eq!(
        api.get("/health").1["indexes"],
        0,
        "a refused create creates nothing"
    );
}

#[test]
fn list_is_sorted_by_name_and_get_answers_404_for_an_unknown_index() {
    let (api, _) = with_the_three();
    let (s, b) = api.get("/vectors/index");
    assert_eq!(s, 200);
    let names: Vec<&str> = b["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.ip", "b-l2", "docs"]);
    assert_eq!(api.get("/vectors/index/docs").1["dim"], 3);
    let (s, b) = api.get("/vectors/index/nope");
    assert_eq!((s, code(&b)), (404, "index_not_found"));
}

#[test]
fn add_upserts_and_answers_the_counts() {
    let api = with_docs();
    let [added, replaced] = fill_docs(&api);
    assert_eq!(added, json!({"added": 3, "count": 3}));
    assert_eq!(replaced, json!({"added": 1, "count": 3}));
}

#[test]
fn get_item_answers_normalized_cosine_vectors_and_metadata_or_404() {
    let api = with_docs_filled();
    // cosine vectors come back unit-normalized; metadata defaults to {}
    let (s, b) = api.get("/vectors/index/docs/items/a");
    assert_eq!(s, 200);
    assert_eq!(b["id"], "a");
    let v: Vec<f64> = b["vector"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert!(
        (v[0] - 0.70710677).abs() < 1e-6 && (v[1] - 0.70710677).abs() < 1e-6 && v[2] == 0.0,
        "{v:?}"
    );
    assert_eq!(b["metadata"], json!({"lang": "de"}));
    assert_eq!(
        api.get("/vectors/index/docs/items/c").1["metadata"],
        json!({})
    );
    let (s, b) = api.get("/vectors/index/docs/items/zzz");
    assert_eq!((s, code(&b)), (404, "item_not_found"));
    assert_eq!(api.get("/vectors/index/nope/items/a").0, 404);
}

#[test]
fn search_orders_by_distance_and_applies_filters() {
    let api = with_docs_filled();
    // nearest first with distance 0, ties by id, metadata returned
    let (s, b) = api.post(
        "/vectors/index/docs/search",
        &json!({"vector": [0.0, 0.0, 5.0], "k": 3}),
    );
    assert_eq!(s, 200, "{b}");
    let results = b["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["id"], "c");
    assert!(results[0]["distance"].as_f64().unwrap().abs() <= 1e-6);
    assert_eq!(results[1]["distance"], results[2]["distance"]);
    assert_eq!(
        (results[1]["id"].as_str(), results[2]["id"].as_str()),
        (Some("a"), Some("b"))
    );
    assert_eq!(results[1]["metadata"], json!({"lang": "de"}));
    // filter: every pair must match exactly
    let (_, b) = api.post(
        "/vectors/index/docs/search",
        &json!({"vector": [0.0, 0.0, 5.0], "k": 3, "filter": {"lang": "fr"}}),
    );
    assert_eq!(b["results"].as_array().unwrap().len(), 1);
    assert_eq!(b["results"][0]["id"], "b");
    let (_, b) = api.post(
        "/vectors/index/docs/search",
        &json!({"vector": [0.0, 0.0, 5.0], "k": 3, "filter": {"lang": "de", "n": 1}}),
    );
    assert_eq!(b["results"], json!([]));
}

#[test]
fn search_reports_l2_and_ip_distances_as_api_md_defines_them() {
    let (api, _) = with_the_three();
    add(
        &api,
        "b-l2",
        &json!({"items": [{"id": "p", "vector": [3.0, 4.0]}, {"id": "z", "vector": [0.0, 0.0]}]}),
    );
    let (_, b) = api.post(
        "/vectors/index/b-l2/search",
        &json!({"vector": [0.0, 0.0], "k": 2}),
    );
    assert_eq!(b["results"][0]["id"], "z");
    assert!(
        (b["results"][1]["distance"].as_f64().unwrap() - 5.0).abs() < 1e-5,
        "{b}"
    );
    add(
        &api,
        "a.ip",
        &json!({"items": [{"id": "p", "vector": [3.0, 4.0]}, {"id": "q", "vector": [-1.0, 0.0]}]}),
    );
    let (_, b) = api.post(
        "/vectors/index/a.ip/search",
        &json!({"vector": [1.0, 1.0], "k": 2}),
    );
    assert_eq!(b["results"][0]["id"], "p");
    assert!(
        (b["results"][0]["distance"].as_f64().unwrap() - (1.0 - 7.0)).abs() < 1e-5,
        "{b}"
    );
    assert!(
        (b["results"][1]["distance"].as_f64().unwrap() - 2.0).abs() < 1e-5,
        "{b}"
    );
}

#[test]
fn add_is_all_or_nothing_per_batch() {
    let api = with_docs_filled();
    // the error names the item; nothing stored changes
    let bad_adds = [
        (json!({"items": []}), "empty_batch", "items"),
        (
            json!({"items": [{"id": "ok", "vector": [1, 0, 0]}, {"id": "", "vector": [1, 0, 0]}]}),
            "invalid_id",
            "items[1]",
        ),
        (
            json!({"items": [{"id": "x".repeat(257), "vector": [1, 0, 0]}]}),
            "invalid_id",
            "items[0]",
        ),
        (
            json!({"items": [{"id": "ok", "vector": [1, 0, 0]}, {"id": "short", "vector": [1, 0]}]}),
            "wrong_dimension",
            "items[1]",
        ),
        (
            json!({"items": [{"id": "ok", "vector": [1, 0, 0]}, {"id": "zero", "vector": [0, 0, 0]}]}),
            "zero_vector",
            "items[1]",
        ),
        (
            json!({"items": [{"id": "ok", "vector": [1, 0, 0]}, {"id": "ok", "vector": [0, 1, 0]}]}),
            "duplicate_id",
            "items[1]",
        ),
        (
            json!({"items": [{"id": "ok", "vector": [1, 0, 0]}, {"id": "m", "vector": [0, 1, 0], "metadata": [1]}]}),
            "invalid_metadata",
            "items[1]",
        ),
        (
            json!({"items": [{"id": "ok", "vector": [1, 0, 0]}, {"id": "big", "vector": [1e39, 0, 0]}]}),
            "invalid_vector",
            "items[1]",
        ),
        (
            json!({"items": [{"id": "ok", "vector": [1, 0, 0]}, {"id": "s", "vector": [1, "x", 0]}]}),
            "invalid_json",
            "items[1].vector",
        ),
        (
            json!({"items": [{"id": "ok", "vector": [1, 0, 0], "extra": true}]}),
            "invalid_json",
            "extra",
        ),
        (
            json!({"items": [{"id": 5, "vector": [1, 0, 0]}]}),
            "invalid_json",
            "items[0].id",
        ),
        (json!({"itemz": []}), "invalid_json", "itemz"),
    ];
    for (body, want_code, want_text) in bad_adds {
        let b = refused_naming(&api, "/vectors/index/docs/add", &body, want_text);
        assert_eq!(code(&b), want_code, "{b}");
    }
    let (_, info) = api.get("/vectors/index/docs");
    assert_eq!(info["count"], 3, "a refused batch changed nothing");
    assert_eq!(api.get("/vectors/index/docs/items/ok").0, 404);
    assert_eq!(api.post("/vectors/index/nope/add", &abc()).0, 404);
    let (s, b) = api.raw(
        "POST",
        "/vectors/index/docs/add",
        br#"{"items": [{"id": "n", "vector": [NaN, 0, 0]}]}"#,
    );
    assert_eq!((s, code(&b)), (400, "invalid_json"));
}

#[test]
fn search_validates_its_parameters() {
    let api = with_docs_filled();
    let bad_searches = [
        (json!({"vector": [1, 0, 0], "k": 0}), "k"),
        (json!({"vector": [1, 0, 0], "k": 1001}), "k"),
        (json!({"vector": [1, 0, 0], "k": 10, "ef": 5}), "ef"),
        (json!({"vector": [1, 0, 0], "k": 10, "ef": 10001}), "ef"),
        (json!({"vector": [1, 0], "k": 1}), "vector"),
        (json!({"vector": [0, 0, 0], "k": 1}), "vector"),
        (
            json!({"vector": [1, 0, 0], "k": 1, "filter": [1]}),
            "filter",
        ),
        (json!({"vector": [1, 0, 0], "k": 1, "top": 3}), "top"),
        (json!({"k": 1}), "vector"),
    ];
    for (body, field) in bad_searches {
        refused_naming(&api, "/vectors/index/docs/search", &body, field);
    }
    assert_eq!(
        api.post(
            "/vectors/index/nope/search",
            &json!({"vector": [1, 0, 0], "k": 1})
        )
        .0,
        404
    );
}

#[test]
fn delete_item_removes_it_from_get_and_search() {
    let api = with_docs_filled();
    // gone from get and search, second delete 404
    assert_eq!(api.delete("/vectors/index/docs/items/c").0, 204);
    let (s, b) = api.delete("/vectors/index/docs/items/c");
    assert_eq!((s, code(&b)), (404, "item_not_found"));
    assert_eq!(api.get("/vectors/index/docs/items/c").0, 404);
    let (_, b) = api.post(
        "/vectors/index/docs/search",
        &json!({"vector": [0.0, 0.0, 5.0], "k": 10}),
    );
    let ids: Vec<&str> = b["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(api.get("/vectors/index/docs").1["count"], 2);
}

#[test]
fn item_routes_take_ids_with_url_special_characters() {
    let api = with_docs();
    let odd = "a b/c?d#e%f";
    add(
        &api,
        "docs",
        &json!({"items": [{"id": odd, "vector": [1, 2, 3]}]}),
    );
    let escaped = "a%20b%2Fc%3Fd%23e%25f";
    let (s, b) = api.get(&format!("/vectors/index/docs/items/{escaped}"));
    assert_eq!((s, b["id"].as_str()), (200, Some(odd)), "{b}");
    assert_eq!(
        api.delete(&format!("/vectors/index/docs/items/{escaped}"))
            .0,
        204
    );
}

#[test]
fn an_id_not_utf8_once_decoded_is_refused_not_read_as_another_items_id() {
    let api = with_docs();
    add(
        &api,
        "docs",
        &json!({"items": [{"id": "zz\u{FFFD}", "vector": [1, 2, 3]}]}),
    );
    for method in ["GET", "DELETE"] {
        let (s, b) = api.call(method, "/vectors/index/docs/items/zz%FF", None);
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (400, Some("invalid_id")),
            "{b}"
        );
    }
    assert_eq!(api.get("/vectors/index/docs/items/zz%EF%BF%BD").0, 200);
    assert_eq!(api.delete("/vectors/index/docs/items/zz%EF%BF%BD").0, 204);
}

#[test]
fn metadata_comes_back_exactly_as_sent_numbers_included() {
    let api = with_docs();
    let raw = r#"{"items": [{"id": "num", "vector": [1, 2, 3], "metadata": {"f": 1.4000000000000001, "g": 0.30000000000000004, "tiny": 5e-324, "big": 1.7976931348623157e308, "i": -9223372036854775808, "u": 18446744073709551615}}]}"#;
    assert_eq!(
        api.raw("POST", "/vectors/index/docs/add", raw.as_bytes()).0,
        200
    );
    let got = api.get("/vectors/index/docs/items/num").1["metadata"].clone();
    let sent: Value = serde_json::from_str::<Value>(raw).unwrap()["items"][0]["metadata"].clone();
    for key in ["f", "g", "tiny", "big"] {
        assert_eq!(
            got[key].as_f64().map(f64::to_bits),
            sent[key].as_f64().map(f64::to_bits),
            "{key}: {got}"
        );
    }
    assert_eq!(got["i"].as_i64(), Some(i64::MIN), "{got}");
    assert_eq!(got["u"].as_u64(), Some(u64::MAX), "{got}");
    assert_eq!(got["f"].to_string(), "1.4000000000000001");
    assert_eq!(api.delete("/vectors/index/docs/items/num").0, 204);
}

#[test]
fn flush_in_ephemeral_mode_persists_nothing() {
    let api = with_docs();
    let (s, b) = api.post("/vectors/index/docs/flush", &json!({}));
    assert_eq!((s, b), (200, json!({"persisted": false})));
    assert_eq!(api.post("/vectors/index/nope/flush", &json!({})).0, 404);
}

#[test]
fn metrics_count_indexes_items_requests_and_memory() {
    let (api, _) = with_the_three();
    fill_docs(&api);
    assert_eq!(api.delete("/vectors/index/docs/items/c").0, 204);
    let (s, b) = api.post(
        "/vectors/index/docs/search",
        &json!({"vector": [0.0, 0.0, 5.0], "k": 3}),
    );
    assert_eq!(s, 200, "{b}");
    // requests naming an index that does not exist, which must leave no series behind
    assert_eq!(api.get("/vectors/index/nope").0, 404);
    for (route, body) in [
        ("add", abc()),
        ("search", json!({"vector": [1, 0, 0], "k": 1})),
        ("flush", json!({})),
    ] {
        let (s, b) = api.post(&format!("/vectors/index/nope/{route}"), &body);
        assert_eq!(s, 404, "{route}: {b}");
    }
    let text = ureq::get(&format!("{}/metrics", api.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(text.contains("vectord_indexes 3"), "{text}");
    assert!(
        text.contains("vectord_index_items{index=\"docs\"} 2"),
        "{text}"
    );
    assert!(
        text.contains(
            "vectord_http_request_seconds_count{route=\"POST /vectors/index/{name}/search\",status=\"200\"}"
        ),
        "{text}"
    );
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
    // The allocator's own counters: the live heap holds at least the indexes' vectors.
    let allocator = |kind: &str| -> u64 {
        let prefix = format!("vectord_allocator_bytes{{kind=\"{kind}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {kind} bytes in {text}"))
    };
    let (allocated, resident) = (allocator("allocated"), allocator("resident"));
    assert!(
        allocated > 1000 && resident >= allocated,
        "{allocated} {resident}"
    );
    assert!(
        !text.contains("index=\"nope\""),
        "no series for unknown names: {text}"
    );
}

#[test]
fn unknown_routes_and_wrong_methods_answer_in_the_error_shape() {
    let api = with_docs();
    let (s, b) = api.get("/nowhere");
    assert_eq!((s, code(&b)), (404, "not_found"));
    // a known path with a method it does not take: 405 with Allow
    let resp = ureq::request("PUT", &format!("{}/vectors/index/docs", api.base)).call();
    let Err(ureq::Error::Status(405, resp)) = resp else {
        panic!("PUT on an index: {resp:?}");
    };
    assert_eq!(resp.header("Allow"), Some("GET, DELETE"));
    let b: serde_json::Value = resp.into_json().unwrap();
    assert_eq!(code(&b), "method_not_allowed");
    let (s, b) = api.get("/vectors/index/docs/add");
    assert_eq!((s, code(&b)), (405, "method_not_allowed"));
}

#[test]
fn delete_index_removes_it_and_only_it() {
    let (api, _) = with_the_three();
    assert_eq!(api.delete("/vectors/index/docs").0, 204);
    let (s, b) = api.delete("/vectors/index/docs");
    assert_eq!((s, code(&b)), (404, "index_not_found"));
    assert_eq!(api.get("/vectors/index/docs").0, 404);
    assert_eq!(api.get("/health").1["indexes"], 2);
}

#[test]
fn bodies_over_the_limit_get_413_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = vectord(
        dir.path(),
        &[
            "--ephemeral".into(),
            "--set".into(),
            "vectord.max_body_bytes=4096".into(),
        ],
        true,
    );
    let api = server.api();
    api.post(
        "/vectors/index",
        &json!({"name": "small", "dim": 4, "distance": "l2"}),
    );
    let body = add_body("x", &vectors(1, 200, 4));
    let (s, b) = api.post("/vectors/index/small/add", &body);
    assert_eq!((s, code(&b)), (413, "body_too_large"));
    assert_eq!(api.get("/vectors/index/small").1["count"], 0);
    assert_eq!(
        api.post(
            "/vectors/index/small/add",
            &add_body("x", &vectors(1, 5, 4))
        )
        .0,
        200
    );
}

#[test]
fn create_and_delete_racing_end_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let server = ephemeral(dir.path());
    let api = server.api();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let api = api.clone();
            std::thread::spawn(move || {
                for i in 0..40 {
                    if (i + t) % 2 == 0 {
                        let (s, _) = api.post(
                            "/vectors/index",
                            &json!({"name": "race", "dim": 2, "distance": "l2"}),
                        );
                        assert!(s == 201 || s == 409, "create: {s}");
                    } else {
                        let (s, _) = api.delete("/vectors/index/race");
                        assert!(s == 204 || s == 404, "delete: {s}");
                    }
                    let (s, _) = api.post(
                        "/vectors/index/race/add",
                        &json!({"items": [{"id": format!("{t}-{i}"), "vector": [1, 2]}]}),
                    );
                    assert!(s == 200 || s == 404, "add: {s}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Whatever the order was, the views agree with each other.
    let (s, info) = api.get("/vectors/index/race");
    let listed = api.get("/vectors/index").1["indexes"]
        .as_array()
        .unwrap()
        .len();
    let health = api.get("/health").1["indexes"].as_u64().unwrap() as usize;
    assert_eq!(listed, health);
    if s == 200 {
        assert_eq!(listed, 1);
        let count = info["count"].as_u64().unwrap();
        let (_, b) = api.post(
            "/vectors/index/race/search",
            &json!({"vector": [1, 2], "k": 1000}),
        );
        assert_eq!(b["results"].as_array().unwrap().len() as u64, count);
        assert_eq!(api.delete("/vectors/index/race").0, 204);
    } else {
        assert_eq!(listed, 0);
    }
    assert_eq!(api.get("/vectors/index/race").0, 404);
    assert_eq!(
        api.post(
            "/vectors/index",
            &json!({"name": "race", "dim": 2, "distance": "l2"})
        )
        .0,
        201
    );
    assert_eq!(
        api.get("/vectors/index/race").1["count"],
        0,
        "a new index of the name starts empty"
    );
}

#[test]
fn deletes_trigger_a_background_compaction_invisible_to_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = ephemeral(dir.path());
    let api = server.api();
    let data = vectors(31, 3000, 16);
    api.post(
        "/vectors/index",
        &json!({"name": "c", "dim": 16, "distance": "l2"}),
    );
    assert_eq!(
        api.post("/vectors/index/c/add", &add_body("v", &data)).0,
        200
    );
    for i in 0..1000 {
        assert_eq!(api.delete(&format!("/vectors/index/c/items/v{i}")).0, 204);
    }
    // searches and writes go on while it compacts
    for i in 0..50 {
        let (s, b) = api.post(
            "/vectors/index/c/search",
            &json!({"vector": data[1000 + i], "k": 10}),
        );
        assert_eq!(s, 200);
        assert_eq!(b["results"][0]["id"], format!("v{}", 1000 + i));
        assert_eq!(b["results"].as_array().unwrap().len(), 10);
    }
    let started = std::time::Instant::now();
    loop {
        let (_, info) = api.get("/vectors/index/c");
        assert_eq!(info["count"], 2000);
        // 1000 without a compaction; what is deleted while one runs stays behind
        if info["tombstones"].as_u64().unwrap() < 1000 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no compaction: {info}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for i in (0..3000).step_by(37) {
        let (s, b) = api.post(
            "/vectors/index/c/search",
            &json!({"vector": data[i], "k": 3}),
        );
        assert_eq!(s, 200);
        let first = b["results"][0]["id"].as_str().unwrap().to_string();
        if i < 1000 {
            assert_ne!(first, format!("v{i}"), "deleted item came back");
        } else {
            assert_eq!(first, format!("v{i}"));
        }
    }
    assert_eq!(api.get("/vectors/index/c/items/v5").0, 404);
    assert_eq!(
        api.get("/vectors/index/c/items/v2500").1["vector"]
            .as_array()
            .unwrap()
            .len(),
        16
    );
}

#[test]
fn counts_written_as_whole_floats_are_taken_and_fractions_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = ephemeral(dir.path());
    let api = server.api();
    let (s, info) = api.post(
        "/vectors/index",
        &json!({"name": "f", "dim": 4.0, "distance": "l2", "m": 16.0}),
    );
    assert_eq!(
        (s, info["dim"].clone(), info["m"].clone()),
        (201, json!(4), json!(16))
    );
    let (s, b) = api.post(
        "/vectors/index",
        &json!({"name": "g", "dim": 4.5, "distance": "l2"}),
    );
    assert_eq!((s, code(&b)), (400, "invalid_json"));
    assert!(
        b["error"]["message"].as_str().unwrap().contains("dim"),
        "{b}"
    );
    api.post(
        "/vectors/index/f/add",
        &add_body("a", &[vec![1.0, 2.0, 3.0, 4.0]]),
    );
    let (s, b) = api.post(
        "/vectors/index/f/search",
        &json!({"vector": [1, 2, 3, 4], "k": 1.0e1}),
    );
    assert_eq!((s, b["results"][0]["id"].clone()), (200, json!("a0")));
    let (s, b) = api.post(
        "/vectors/index/f/search",
        &json!({"vector": [1, 2, 3, 4], "k": -1}),
    );
    assert_eq!((s, code(&b)), (400, "invalid_json"));
}

/// The info fields that say whether an index's segments are settled.
fn settled(api: &Api, name: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (_, a) = api.get(&format!("/vectors/index/{name}"));
        std::thread::sleep(std::time::Duration::from_millis(300));
        let (_, b) = api.get(&format!("/vectors/index/{name}"));
        let shape = |i: &Value| (i["sealed_segments"].clone(), i["unsealed_count"].clone());
        if a["indexing"] == json!(false) && b["indexing"] == json!(false) && shape(&a) == shape(&b)
        {
            return json!([b["sealed_segments"], b["unsealed_count"]]);
        }
        assert!(
            started.elapsed().as_secs() < 120,
            "index {name} never settled: {b}"
        );
    }
}

#[test]
fn batch_search_answers_each_search_as_search_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = vectord(
        dir.path(),
        &[
            "--ephemeral".into(),
            "--set".into(),
            "vectord.seal_points=300".into(),
            "--set".into(),
            "vectord.seal_idle_ms=600000".into(),
            "--set".into(),
            "vectord.max_batch_searches=1000".into(),
            // More search threads than a small CI machine has cores, so that helpers can
            // join the long batch below wherever the test runs.
            "--set".into(),
            "vectord.search_threads=4".into(),
        ],
        true,
    );
    let api = server.api();
    let (s, b) = api.post(
        "/vectors/index",
        &json!({"name": "b", "dim": 16, "distance": "cosine"}),
    );
    assert_eq!(s, 201, "{b}");
    let data = vectors(7, 1000, 16);
    for part in data.chunks(250).enumerate() {
        let (s, b) = api.post(
            "/vectors/index/b/add",
            &add_body(&format!("p{}-", part.0), part.1),
        );
        assert_eq!(s, 200, "{b}");
    }
    settled(&api, "b");
    let extra = vectors(9, 50, 16);
    let (s, b) = api.post("/vectors/index/b/add", &add_body("g", &extra));
    assert_eq!(s, 200, "{b}");
    // Sealed segments and a growing one, so the batch crosses both kinds.
    let shape = settled(&api, "b");
    assert!(
        shape[0].as_u64().unwrap() >= 1 && shape[1].as_u64().unwrap() >= 1,
        "{shape}"
    );

    let queries = vectors(8, 40, 16);
    let searches: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| match i % 4 {
            0 => json!({"vector": q, "k": 1 + i % 10}),
            1 => json!({"vector": q, "k": 5, "ef": 20 + i}),
            2 => json!({"vector": q, "k": 7, "filter": {"group": 1}}),
            _ => json!({"vector": q, "k": 3, "ef": null, "filter": null}),
        })
        .collect();
    let (s, batch) = api.post(
        "/vectors/index/b/search/batch",
        &json!({ "searches": searches }),
    );
    assert_eq!(s, 200, "{batch}");
    let answers = batch["results"].as_array().expect("results is a list");
    assert_eq!(answers.len(), searches.len());
    for (i, search) in searches.iter().enumerate() {
        let (s, one) = api.post("/vectors/index/b/search", search);
        assert_eq!(s, 200, "{one}");
        assert_eq!(answers[i], one["results"], "search {i}: {search}");
        assert!(!one["results"].as_array().unwrap().is_empty());
    }
    for (i, answer) in answers.iter().enumerate().filter(|(i, _)| i % 4 == 2) {
        for hit in answer.as_array().unwrap() {
            assert_eq!(hit["metadata"]["group"], json!(1), "search {i}: {hit}");
        }
    }
    // A batch long enough (tens of milliseconds) for search threads to help the HTTP
    // worker: every answer still lands in its place.
    let helped = |api: &Api| -> u64 {
        let text = ureq::get(&format!("{}/metrics", api.base))
            .call()
            .expect("GET /metrics")
            .into_string()
            .expect("metrics text");
        text.lines()
            .find(|l| l.starts_with("vectord_batch_searches_total{ran_on=\"search_thread\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let helped_before = helped(&api);
    let many: Vec<Value> = vectors(10, 1000, 16)
        .iter()
        .enumerate()
        .map(|(i, q)| json!({"vector": q, "k": 1 + i % 10, "ef": 1000}))
        .collect();
    let (s, batch) = api.post(
        "/vectors/index/b/search/batch",
        &json!({ "searches": many }),
    );
    assert_eq!(s, 200, "{batch}");
    for (i, search) in many.iter().enumerate() {
        let (_, one) = api.post("/vectors/index/b/search", search);
        assert_eq!(batch["results"][i], one["results"], "search {i}");
    }
    assert!(
        helped(&api) > helped_before,
        "no search thread helped a batch of 1,000 wide searches"
    );
    assert_eq!(
        settled(&api, "b"),
        shape,
        "the index changed under the test"
    );
    // Exact matches come back first, each from its own search.
    let exact: Vec<Value> = [&data[3], &data[500], &data[999], &extra[7]]
        .iter()
        .map(|v| json!({"vector": v, "k": 1}))
        .collect();
    let (s, b) = api.post(
        "/vectors/index/b/search/batch",
        &json!({ "searches": exact }),
    );
    assert_eq!(s, 200, "{b}");
    let ids: Vec<&str> = b["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["p0-3", "p2-0", "p3-249", "g7"]);

    // Refusals name the search at fault; nothing is changed by them.
    let q = &queries[0];
    let refused = |body: Value| -> (u16, String, String) {
        let (s, b) = api.post("/vectors/index/b/search/batch", &body);
        (s, code(&b).to_string(), message(&b))
    };
    let (s, c, m) = refused(json!({"searches": []}));
    assert_eq!((s, c.as_str()), (400, "empty_batch"), "{m}");
    let (s, c, m) = refused(json!({"searches": vec![json!({"vector": q, "k": 1}); 1001]}));
    assert_eq!((s, c.as_str()), (400, "too_many_searches"), "{m}");
    assert!(m.contains("vectord.max_batch_searches"), "{m}");
    let (s, c, m) = refused(json!({"searches": vec![json!({"vector": q, "k": 1000}); 11]}));
    assert_eq!((s, c.as_str()), (400, "too_many_results"), "{m}");
    let (s, c, m) = refused(
        json!({"searches": [{"vector": q, "k": 1}, {"vector": q, "k": 1}, {"vector": q, "k": 1}, {"vector": [1, 2], "k": 1}]}),
    );
    assert_eq!((s, c.as_str()), (400, "wrong_dimension"), "{m}");
    assert!(m.contains("searches[3].vector"), "{m}");
    let (s, c, m) = refused(json!({"searches": [{"vector": q, "k": 1}, {"vector": q, "k": 0}]}));
    assert_eq!((s, c.as_str()), (400, "invalid_k"), "{m}");
    assert!(m.starts_with("searches[1]: "), "{m}");
    let (s, c, m) =
        refused(json!({"searches": [{"vector": q, "k": 5}, {"vector": q, "k": 5, "ef": 2}]}));
    assert_eq!((s, c.as_str()), (400, "invalid_ef"), "{m}");
    assert!(m.starts_with("searches[1]: "), "{m}");
    let (s, c, m) = refused(json!({"searches": [{"vector": q, "k": "x"}]}));
    assert_eq!((s, c.as_str()), (400, "invalid_json"), "{m}");
    assert!(m.contains("searches[0].k"), "{m}");
    let (s, c, m) = refused(json!({"searches": [{"vector": q, "k": 1, "kk": 1}]}));
    assert_eq!((s, c.as_str()), (400, "invalid_json"), "{m}");
    assert!(m.contains("unknown field"), "{m}");
    let (s, c, m) = refused(json!({"vector": q, "k": 1}));
    assert_eq!((s, c.as_str()), (400, "invalid_json"), "{m}");
    let (s, c, _) = refused(json!({"searches": [{"vector": vec![0.0; 16], "k": 1}]}));
    assert_eq!((s, c.as_str()), (400, "zero_vector"));
    let (s, b) = api.post(
        "/vectors/index/nope/search/batch",
        &json!({"searches": [{"vector": q, "k": 1}]}),
    );
    assert_eq!((s, code(&b)), (404, "index_not_found"));
    let (s, b) = api.get("/vectors/index/b/search/batch");
    assert_eq!((s, code(&b)), (405, "method_not_allowed"));
    let (_, info) = api.get("/vectors/index/b");
    assert_eq!(info["count"], json!(1050));
}

/// A request written on the socket as given (no URL library in between to rewrite the
/// path): its status and body.
fn raw_request(api: &Ephemeral, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = api.server.url.trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[test]
fn ids_that_no_http_client_can_address_are_refused_everywhere() {
    // httpx sends DELETE .../items/.. as DELETE /vectors/index/docs: such an item could
    // never be deleted, and trying would delete the index. So "." and ".." are no ids.
    let api = with_docs_filled();
    for id in [".", ".."] {
        let body = json!({"items": [{"id": "ok", "vector": [1.0, 0.0, 0.0]}, {"id": id, "vector": [1.0, 0.0, 0.0]}]});
        let (s, got) = api.post("/vectors/index/docs/add", &body);
        assert_eq!((s, code(&got)), (400, "invalid_id"), "{got}");
        assert!(message(&got).contains("items[1].id"), "{got}");
        // URL libraries rewrite even %2E segments, so the item routes are tried raw
        let escaped = id.replace('.', "%2E");
        for method in ["GET", "DELETE"] {
            let (s, got) = raw_request(
                &api,
                method,
                &format!("/vectors/index/docs/items/{escaped}"),
            );
            assert_eq!(s, 400, "{method} {id}: {got}");
            assert!(got.contains("invalid_id"), "{method} {id}: {got}");
        }
        for (s, got) in [
            api.post("/vectors/index/docs/get", &json!({"ids": ["a", id]})),
            api.post("/vectors/index/docs/delete", &json!({"ids": [id]})),
        ] {
            assert_eq!((s, code(&got)), (400, "invalid_id"), "{id}: {got}");
        }
    }
    // nothing was added or deleted; ids that merely start with dots are fine
    let (_, info) = api.get("/vectors/index/docs");
    assert_eq!(info["count"], 3);
    let body = json!({"items": [{"id": "...", "vector": [1.0, 0.0, 0.0]}, {"id": ".a", "vector": [0.0, 1.0, 0.0]}]});
    add(&api, "docs", &body);
    assert_eq!(api.get("/vectors/index/docs/items/%2E%2E%2E").0, 200);
    assert_eq!(api.delete("/vectors/index/docs/items/.a").0, 204);
}

#[test]
fn vectors_go_in_and_come_out_as_base64_of_little_endian_f32() {
    fn b64(v: &[f32]) -> String {
        // the standard alphabet, padded, written here apart from the server's encoder
        const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |n, &b| n << 8 | b as u32) << (8 * (3 - chunk.len()));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
    let api = with_docs();
    let v = [0.6f32, 0.8, 0.0];
    let body = json!({"items": [{"id": "b64", "vector": b64(&v), "metadata": {"lang": "en"}},
                                {"id": "num", "vector": [0.0, 1.0, 0.0]}]});
    add(&api, "docs", &body);
    let (_, item) = api.get("/vectors/index/docs/items/b64");
    let stored: Vec<f64> = item["vector"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(stored, v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
    // a base64 query finds it; results and items come back as base64 when asked
    let (s, found) = api.post(
        "/vectors/index/docs/search",
        &json!({"vector": b64(&v), "k": 1, "include": ["vector"], "vector_encoding": "base64"}),
    );
    assert_eq!(s, 200, "{found}");
    assert_eq!(found["results"][0]["id"], "b64");
    assert_eq!(found["results"][0]["vector"], b64(&v));
    let (s, got) = api.post(
        "/vectors/index/docs/get",
        &json!({"ids": ["num"], "include": ["vector"], "vector_encoding": "base64"}),
    );
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["items"][0]["vector"], b64(&[0.0, 1.0, 0.0]));
    let (_, batch) = api.post(
        "/vectors/index/docs/search/batch",
        &json!({"searches": [{"vector": b64(&[0.0, 1.0, 0.0]), "k": 1}]}),
    );
    assert_eq!(batch["results"][0][0]["id"], "num");
    // the same checks as numbers get, naming the item
    for (vector, want) in [
        (json!("not base64!"), "invalid_json"),
        (json!(b64(&[1.0, 2.0])), "wrong_dimension"),
        (json!(b64(&[f32::NAN, 1.0, 0.0])), "invalid_vector"),
        (json!(b64(&[0.0, 0.0, 0.0])), "zero_vector"),
        (json!("AAAA AA=="), "invalid_json"),
    ] {
        let body = json!({"items": [{"id": "ok", "vector": [1.0, 0.0, 0.0]}, {"id": "x", "vector": vector}]});
        let (s, got) = api.post("/vectors/index/docs/add", &body);
        assert_eq!((s, code(&got)), (400, want), "{vector}: {got}");
        assert!(message(&got).contains("items[1]"), "{got}");
    }
    let (_, info) = api.get("/vectors/index/docs");
    assert_eq!(info["count"], 2, "refused batches change nothing");
}
