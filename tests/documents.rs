//! Item documents against the real binaries: stored with an add, returned by get and
//! search only when asked for, replaced by an upsert, limited by a setting, and the same
//! after a `kill -9` and restart, from the log and from sealed segments alike.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// A document with what JSON must escape, and text outside ASCII.
const TRICKY: &str = "line one\nline \"two\"\t\\ back-slash, é, 漢字, 🦀, \u{0001}";

fn ok(api: &Api, path: &str, body: &Value) -> Value {
    let (s, b) = api.post(path, body);
    assert_eq!(s, 200, "{path}: {b}");
    b
}

/// Items `d0..d{n}` at `(i, 1)`: every even one with a document, every fourth of those
/// the tricky one, the odd ones without.
fn items(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut item =
                json!({"id": format!("d{i}"), "vector": [i as f32, 1.0], "metadata": {"i": i}});
            if i.is_multiple_of(2) {
                item["document"] = json!(document(i));
            }
            item
        })
        .collect()
}

fn document(i: usize) -> String {
    if i.is_multiple_of(8) {
        format!("{TRICKY} #{i}")
    } else {
        format!("chunk {i}")
    }
}

fn expected(i: usize) -> Value {
    if i.is_multiple_of(2) {
        json!(document(i))
    } else {
        Value::Null
    }
}

/// Every item's document read back three ways (one item, many by id, pages), and found by
/// search with `include`.
fn check_all(api: &Api, n: usize) {
    for i in (0..n).step_by(37).chain([n - 1]) {
        let (s, b) = api.get(&format!("/vectors/index/t/items/d{i}"));
        assert_eq!(s, 200, "{b}");
        // one item: the key is there only when the item has a document
        assert_eq!(
            b.get("document").cloned().unwrap_or(Value::Null),
            expected(i),
            "d{i}"
        );
    }
    let ids: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
    let got = ok(
        api,
        "/vectors/index/t/get",
        &json!({"ids": ids, "include": ["document"]}),
    );
    let items = got["items"].as_array().unwrap();
    assert_eq!(items.len(), n);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["document"], expected(i), "d{i}");
        assert!(
            item.get("metadata").is_none(),
            "metadata not asked for: {item}"
        );
    }
    let mut cursor = Value::Null;
    let mut seen = 0;
    loop {
        let page = ok(
            api,
            "/vectors/index/t/get",
            &json!({"limit": 97, "cursor": cursor, "include": ["metadata", "document"]}),
        );
        for item in page["items"].as_array().unwrap() {
            let i = item["metadata"]["i"].as_u64().unwrap() as usize;
            assert_eq!(item["document"], expected(i), "d{i}");
            seen += 1;
        }
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(seen, n);
    for i in [0, 1, 8, n - 2] {
        let body = json!({"vector": [i as f32, 1.0], "k": 1, "include": ["document"]});
        let hit = &ok(api, "/vectors/index/t/search", &body)["results"][0];
        assert_eq!(hit["id"], format!("d{i}"));
        assert_eq!(hit["document"], expected(i), "d{i}");
    }
}

#[test]
fn documents_are_stored_returned_on_request_and_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    let small = ["--set", "vectord.seal_points=200"];
    let mut v = persistent(dir.path(), &store.url, &small);
    let api = v.api();
    let (s, _) = api.post(
        "/vectors/index",
        &json!({"name": "t", "dim": 2, "distance": "l2"}),
    );
    assert_eq!(s, 201);
    let n = 1000;
    for chunk in items(n).chunks(250) {
        ok(&api, "/vectors/index/t/add", &json!({"items": chunk}));
    }
    check_all(&api, n);

    // asked for nothing: no document anywhere; search answers as before documents
    let plain = ok(
        &api,
        "/vectors/index/t/search",
        &json!({"vector": [0.0, 1.0], "k": 3}),
    );
    for hit in plain["results"].as_array().unwrap() {
        assert!(hit.get("document").is_none(), "{hit}");
    }
    let got = ok(&api, "/vectors/index/t/get", &json!({"ids": ["d0"]}));
    assert!(got["items"][0].get("document").is_none(), "{got}");
    // a batch search takes include per search
    let batch = ok(
        &api,
        "/vectors/index/t/search/batch",
        &json!({"searches": [
            {"vector": [2.0, 1.0], "k": 1, "include": ["document"]},
            {"vector": [2.0, 1.0], "k": 1},
        ]}),
    );
    assert_eq!(batch["results"][0][0]["document"], "chunk 2");
    assert!(batch["results"][1][0].get("document").is_none());

    // every item sealed (segments hold the documents), then kill -9 and restart
    ok(&api, "/vectors/index/t/flush", &json!({}));
    wait_sealed(&api, "t", Duration::from_secs(120));
    ok(&api, "/vectors/index/t/flush", &json!({}));
    v.kill9();
    let mut v = persistent(dir.path(), &store.url, &small);
    let api = v.api();
    check_all(&api, n);

    // an upsert replaces the document (or drops it); new items wait in the log
    let changes = json!({"items": [
        {"id": "d0", "vector": [0.0, 1.0], "metadata": {"i": 1}},
        {"id": "d1", "vector": [1.0, 1.0], "metadata": {"i": 0}, "document": document(0)},
        {"id": "new", "vector": [5000.0, 1.0], "document": ""},
    ]});
    ok(&api, "/vectors/index/t/add", &changes);
    let check_changes = |api: &Api| {
        let got = ok(
            api,
            "/vectors/index/t/get",
            &json!({"ids": ["d0", "d1", "new"], "include": ["document"]}),
        );
        assert_eq!(got["items"][0]["document"], Value::Null);
        assert_eq!(got["items"][1]["document"], json!(document(0)));
        assert_eq!(got["items"][2]["document"], "", "an empty document is one");
    };
    check_changes(&api);
    ok(&api, "/vectors/index/t/flush", &json!({}));
    v.kill9();
    let v = persistent(dir.path(), &store.url, &small);
    let api = v.api();
    check_changes(&api);
    assert_eq!(api.get("/vectors/index/t").1["count"], n + 1);
}

#[test]
fn documents_are_checked_and_a_refused_batch_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let v = vectord(
        dir.path(),
        &[
            "--ephemeral".into(),
            "--set".into(),
            "vectord.max_document_bytes=100".into(),
        ],
        true,
    );
    let api = v.api();
    let (s, _) = api.post(
        "/vectors/index",
        &json!({"name": "t", "dim": 2, "distance": "l2"}),
    );
    assert_eq!(s, 201);
    ok(
        &api,
        "/vectors/index/t/add",
        &json!({"items": [{"id": "a", "vector": [1.0, 0.0], "document": "kept"}]}),
    );
    let big = "é".repeat(51); // 102 bytes, 51 characters: the limit is in bytes
    let cases = [
        (
            json!({"items": [{"id": "a", "vector": [1.0, 1.0]}, {"id": "b", "vector": [1.0, 0.0], "document": big}]}),
            "document_too_large",
            "items[1].document is 102 bytes",
        ),
        (
            json!({"items": [{"id": "a", "vector": [1.0, 1.0], "document": 7}]}),
            "invalid_json",
            "document",
        ),
        (
            json!({"items": [{"id": "a", "vector": [1.0, 1.0], "document": ["x"]}]}),
            "invalid_json",
            "document",
        ),
    ];
    for (body, code, text) in cases {
        let (s, b) = api.post("/vectors/index/t/add", &body);
        assert_eq!(s, 400, "{body}: {b}");
        assert_eq!(b["error"]["code"], code, "{b}");
        assert!(
            b["error"]["message"].as_str().unwrap().contains(text),
            "{b}"
        );
    }
    // nothing of the refused batches landed
    let got = ok(
        &api,
        "/vectors/index/t/get",
        &json!({"ids": ["a", "b"], "include": ["document", "vector"]}),
    );
    assert_eq!(
        got["items"],
        json!([{"id": "a", "vector": [1.0, 0.0], "document": "kept"}])
    );
    // exactly at the limit is taken; `null` is no document
    let at_limit = "x".repeat(100);
    ok(
        &api,
        "/vectors/index/t/add",
        &json!({"items": [{"id": "b", "vector": [0.0, 1.0], "document": at_limit}, {"id": "c", "vector": [0.0, 2.0], "document": null}]}),
    );
    let (_, b) = api.get("/vectors/index/t/items/b");
    assert_eq!(b["document"], json!(at_limit));
    let (_, c) = api.get("/vectors/index/t/items/c");
    assert!(c.get("document").is_none(), "{c}");
    // include names what it takes
    let (s, b) = api.post(
        "/vectors/index/t/get",
        &json!({"ids": ["a"], "include": ["documents"]}),
    );
    assert_eq!(s, 400, "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("document"),
        "{b}"
    );
}

#[test]
fn an_escaped_id_and_a_document_take_the_same_path_to_the_same_item() {
    // The one-pass decoder reads documents with escapes; an escaped id sends the whole
    // body through serde instead. Both must store the same text.
    let v = Ephemeral::start();
    let (s, _) = v.post(
        "/vectors/index",
        &json!({"name": "t", "dim": 2, "distance": "l2"}),
    );
    assert_eq!(s, 201);
    let raw = format!(
        r#"{{"items": [{{"id": "plain", "vector": [1, 0], "document": {0}}}, {{"id": "\u0065scaped", "vector": [0, 1], "document": {0}}}]}}"#,
        serde_json::to_string(TRICKY).unwrap()
    );
    let (s, b) = v.raw("POST", "/vectors/index/t/add", raw.as_bytes());
    assert_eq!(s, 200, "{b}");
    let got = ok(
        &v,
        "/vectors/index/t/get",
        &json!({"ids": ["plain", "escaped"], "include": ["document"]}),
    );
    assert_eq!(got["items"][0]["document"], TRICKY);
    assert_eq!(got["items"][1]["document"], TRICKY);
}
