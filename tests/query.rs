//! The query language over HTTP, against the real vectord binary (ephemeral mode): filters
//! in Chroma's `where` syntax on search and batch search, and 400 `invalid_filter` naming
//! where a filter cannot be read.

mod common;

use common::*;
use serde_json::{json, Value};

/// A server of the test's own with index `books` (l2, dim 2) holding five books.
fn with_books() -> Ephemeral {
    let api = Ephemeral::start();
    let (s, b) = api.post(
        "/vectors/index",
        &json!({"name": "books", "dim": 2, "distance": "l2"}),
    );
    assert_eq!(s, 201, "{b}");
    let items = json!({"items": [
        {"id": "dune", "vector": [1.0, 0.0], "metadata": {"year": 1965, "lang": "en", "tags": ["sf", "classic"], "price": 9.5}},
        {"id": "solaris", "vector": [2.0, 0.0], "metadata": {"year": 1961.0, "lang": "pl", "tags": ["sf"]}},
        {"id": "emma", "vector": [3.0, 0.0], "metadata": {"year": 1815, "lang": "en", "tags": ["classic"], "price": 4}},
        {"id": "rust-book", "vector": [4.0, 0.0], "metadata": {"year": 2018, "lang": "en", "tags": ["tech"], "price": 39.99}},
        {"id": "no-meta", "vector": [5.0, 0.0]},
    ]});
    let (s, b) = api.post("/vectors/index/books/add", &items);
    assert_eq!(s, 200, "{b}");
    api
}

/// The ids a filtered search returns, nearest first (k 10, from [0, 0]: in insertion order).
fn found(api: &Api, filter: Value) -> Vec<String> {
    let (s, b) = api.post(
        "/vectors/index/books/search",
        &json!({"vector": [0.0, 0.0], "k": 10, "filter": filter}),
    );
    assert_eq!(s, 200, "{filter}: {b}");
    ids(&b["results"])
}

fn ids(results: &Value) -> Vec<String> {
    results
        .as_array()
        .unwrap_or_else(|| panic!("no results in {results}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn search_filters_take_chromas_operators() {
    let api = with_books();
    let cases = [
        (json!({"lang": "en"}), vec!["dune", "emma", "rust-book"]),
        (json!({"lang": {"$eq": "pl"}}), vec!["solaris"]),
        (json!({"lang": {"$ne": "en"}}), vec!["solaris", "no-meta"]),
        (
            json!({"year": {"$gte": 1961, "$lt": 2000}}),
            vec!["dune", "solaris"],
        ),
        (json!({"year": {"$gt": 2000}}), vec!["rust-book"]),
        (json!({"year": {"$lte": 1815}}), vec!["emma"]),
        (json!({"year": 1961}), vec!["solaris"]),
        (json!({"price": {"$in": [4, 9.5]}}), vec!["dune", "emma"]),
        (
            json!({"lang": {"$nin": ["en"]}}),
            vec!["solaris", "no-meta"],
        ),
        (
            json!({"tags": {"$contains": "classic"}}),
            vec!["dune", "emma"],
        ),
        (
            json!({"tags": {"$not_contains": "sf"}}),
            vec!["emma", "rust-book", "no-meta"],
        ),
        (
            json!({"price": {"$exists": false}}),
            vec!["solaris", "no-meta"],
        ),
        (
            json!({"$or": [{"lang": "pl"}, {"$and": [{"lang": "en"}, {"price": {"$lt": 5}}]}]}),
            vec!["solaris", "emma"],
        ),
        (json!({"$not": {"lang": "en"}}), vec!["solaris", "no-meta"]),
        (
            json!({"$id": {"$in": ["emma", "dune", "nope"]}}),
            vec!["dune", "emma"],
        ),
        (json!({"$id": "no-meta"}), vec!["no-meta"]),
        (
            json!({"$id": {"$nin": ["dune"]}, "lang": "en"}),
            vec!["emma", "rust-book"],
        ),
        // across types nothing matches
        (json!({"year": "1965"}), vec![]),
        (
            json!({}),
            vec!["dune", "solaris", "emma", "rust-book", "no-meta"],
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(found(&api, filter.clone()), want, "{filter}");
    }
    // every filtered search scanned the one (growing) segment, and the metric says so
    let text = ureq::get(&format!("{}/metrics", api.api.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let scans: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("vectord_filtered_segment_searches_total{plan=\"scan\"} "))
        .unwrap_or_else(|| panic!("no scan plan counted in\n{text}"))
        .parse()
        .unwrap();
    assert_eq!(scans, 18.0, "18 non-empty filters, one segment each");
}

#[test]
fn a_filter_that_cannot_be_read_is_400_naming_where() {
    let api = with_books();
    let cases = [
        (json!({"year": {"$gtee": 2021}}), "filter.year.$gtee"),
        (json!({"$nor": [{"a": 1}]}), "filter.$nor"),
        (
            json!({"$or": [{"a": 1}, {"year": {"$gte": "2021"}}]}),
            "filter.$or[1].year.$gte",
        ),
        (json!({"id": {"$in": 3}}), "filter.id.$in"),
        (json!([{"a": 1}]), "filter"),
        (json!("lang"), "filter"),
    ];
    for (filter, path) in cases {
        let (s, b) = api.post(
            "/vectors/index/books/search",
            &json!({"vector": [0.0, 0.0], "k": 3, "filter": filter}),
        );
        assert_eq!(s, 400, "{filter}: {b}");
        assert_eq!(b["error"]["code"], "invalid_filter", "{filter}: {b}");
        let message = b["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{path}:")),
            "{filter}: {message}"
        );
    }
}

#[test]
fn batch_searches_take_filters_and_name_the_search_that_is_wrong() {
    let api = with_books();
    let (s, b) = api.post(
        "/vectors/index/books/search/batch",
        &json!({"searches": [
            {"vector": [0.0, 0.0], "k": 10, "filter": {"year": {"$lt": 1962}}},
            {"vector": [0.0, 0.0], "k": 10, "filter": {"tags": {"$contains": "tech"}}},
        ]}),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(ids(&b["results"][0]), ["solaris", "emma"]);
    assert_eq!(ids(&b["results"][1]), ["rust-book"]);
    let (s, b) = api.post(
        "/vectors/index/books/search/batch",
        &json!({"searches": [
            {"vector": [0.0, 0.0], "k": 10},
            {"vector": [0.0, 0.0], "k": 10, "filter": {"$or": []}},
        ]}),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_filter")),
        "{b}"
    );
    let message = b["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("searches[1].filter.$or:"), "{message}");
}

fn got_ids(body: &Value) -> Vec<String> {
    ids(&body["items"])
}

#[test]
fn get_reads_many_items_by_ids_in_their_order() {
    let api = with_books();
    let (s, b) = api.post(
        "/vectors/index/books/get",
        &json!({"ids": ["emma", "nope", "dune", "emma"]}),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(got_ids(&b), ["emma", "dune"]);
    assert_eq!(b["items"][0]["metadata"]["year"], 1815);
    assert!(
        b["items"][0].get("vector").is_none(),
        "vectors only on request"
    );
    assert_eq!(b["next_cursor"], Value::Null);
    let (_, b) = api.post(
        "/vectors/index/books/get",
        &json!({"ids": ["emma", "dune"], "filter": {"year": {"$lt": 1900}}, "include": ["vector"]}),
    );
    assert_eq!(got_ids(&b), ["emma"]);
    assert_eq!(b["items"][0]["vector"], json!([3.0, 0.0]));
    assert!(b["items"][0].get("metadata").is_none(), "{b}");
    let (_, b) = api.post(
        "/vectors/index/books/get",
        &json!({"ids": ["rust-book", "emma", "dune"], "limit": 2}),
    );
    assert_eq!(got_ids(&b), ["rust-book", "emma"]);
    let (s, b) = api.post(
        "/vectors/index/books/get",
        &json!({"ids": ["emma"], "cursor": "a"}),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{b}"
    );
    let (s, b) = api.post("/vectors/index/books/get", &json!({"include": ["vectors"]}));
    assert_eq!(s, 400, "{b}");
}

#[test]
fn get_pages_through_the_whole_index_by_id() {
    let api = with_books();
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    let mut pages = 0;
    loop {
        let (s, b) = api.post(
            "/vectors/index/books/get",
            &json!({"limit": 2, "cursor": cursor}),
        );
        assert_eq!(s, 200, "{b}");
        seen.extend(got_ids(&b));
        pages += 1;
        cursor = b["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
        // an item added behind the cursor is not seen; one ahead of it is
        if pages == 1 {
            let (s, _) = api.post(
                "/vectors/index/books/add",
                &json!({"items": [
                    {"id": "aaa", "vector": [1.0, 1.0]},
                    {"id": "zzz", "vector": [1.0, 1.0]},
                ]}),
            );
            assert_eq!(s, 200);
        }
    }
    assert_eq!(
        seen,
        ["dune", "emma", "no-meta", "rust-book", "solaris", "zzz"]
    );
    assert_eq!(pages, 3);
    let (_, b) = api.post(
        "/vectors/index/books/get",
        &json!({"filter": {"lang": "en"}, "limit": 10}),
    );
    assert_eq!(got_ids(&b), ["dune", "emma", "rust-book"]);
    assert_eq!(b["next_cursor"], Value::Null);
    for limit in [0, 10_001] {
        let (s, b) = api.post("/vectors/index/books/get", &json!({"limit": limit}));
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (400, Some("invalid_limit")),
            "{b}"
        );
    }
}

#[test]
fn count_counts_what_a_filter_passes() {
    let api = with_books();
    let count = |filter: Value| {
        let (s, b) = api.post("/vectors/index/books/count", &json!({"filter": filter}));
        assert_eq!(s, 200, "{b}");
        b["count"].as_u64().unwrap()
    };
    assert_eq!(count(Value::Null), 5);
    assert_eq!(count(json!({})), 5);
    assert_eq!(count(json!({"lang": "en"})), 3);
    assert_eq!(
        count(json!({"tags": {"$contains": "sf"}, "year": {"$gt": 1962}})),
        1
    );
    // a body is an object (serde alone would read the struct from a list)
    for body in [json!([{}]), json!([null]), json!(3)] {
        for route in ["get", "count", "delete"] {
            let (s, b) = api.post(&format!("/vectors/index/books/{route}"), &body);
            assert_eq!(
                (s, b["error"]["code"].as_str()),
                (400, Some("invalid_json")),
                "{route} {body}: {b}"
            );
        }
    }
    let (s, b) = api.post(
        "/vectors/index/books/count",
        &json!({"filter": {"$and": 1}}),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_filter")),
        "{b}"
    );
    let (s, _) = api.post("/vectors/index/nope/count", &json!({}));
    assert_eq!(s, 404);
}

#[test]
fn delete_by_ids_or_filter_is_one_change() {
    let api = with_books();
    let (s, b) = api.post(
        "/vectors/index/books/delete",
        &json!({"ids": ["dune", "nope", "dune"]}),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b, json!({"deleted": 1, "count": 4}));
    let (s, b) = api.post(
        "/vectors/index/books/delete",
        &json!({"filter": {"lang": "en"}}),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b, json!({"deleted": 2, "count": 2}));
    assert_eq!(found(&api, json!({})), ["solaris", "no-meta"]);
    // ids and filter: the ids that pass the filter
    let (_, b) = api.post(
        "/vectors/index/books/delete",
        &json!({"ids": ["solaris", "no-meta"], "filter": {"lang": "pl"}}),
    );
    assert_eq!(b, json!({"deleted": 1, "count": 1}));
    for body in [json!({}), json!({"filter": {}})] {
        let (s, b) = api.post("/vectors/index/books/delete", &body);
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (400, Some("nothing_selected")),
            "{b}"
        );
    }
    let (s, b) = api.post("/vectors/index/books/delete", &json!({"ids": []}));
    assert_eq!((s, &b), (200, &json!({"deleted": 0, "count": 1})));
    assert_eq!(api.get("/vectors/index/books").1["count"], 1);
}

#[test]
fn a_delete_by_filter_survives_a_kill_9_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    let mut v = persistent(dir.path(), &store.url, &[]);
    let api = v.api();
    let (s, _) = api.post(
        "/vectors/index",
        &json!({"name": "t", "dim": 2, "distance": "l2"}),
    );
    assert_eq!(s, 201);
    let items: Vec<Value> = (0..300)
        .map(
            |i| json!({"id": format!("i{i}"), "vector": [i as f32, 1.0], "metadata": {"g": i % 3}}),
        )
        .collect();
    assert_eq!(
        api.post("/vectors/index/t/add", &json!({"items": items})).0,
        200
    );
    let (_, b) = api.post("/vectors/index/t/delete", &json!({"filter": {"g": 1}}));
    assert_eq!(b, json!({"deleted": 100, "count": 200}));
    assert_eq!(api.post("/vectors/index/t/flush", &json!({})).0, 200);
    v.kill9();
    let v = persistent(dir.path(), &store.url, &[]);
    let api = v.api();
    let (_, b) = api.post("/vectors/index/t/count", &json!({"filter": {"g": 1}}));
    assert_eq!(b["count"], 0, "{b}");
    assert_eq!(api.get("/vectors/index/t").1["count"], 200);
}

#[test]
fn search_returns_vectors_on_request() {
    let api = with_books();
    let (s, b) = api.post(
        "/vectors/index/books/search",
        &json!({"vector": [0.0, 0.0], "k": 2, "include": ["metadata", "vector"]}),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["results"][0]["vector"], json!([1.0, 0.0]));
    assert_eq!(b["results"][1]["vector"], json!([2.0, 0.0]));
    assert_eq!(b["results"][0]["metadata"]["year"], 1965);
    let (_, b) = api.post(
        "/vectors/index/books/search/batch",
        &json!({"searches": [
            {"vector": [0.0, 0.0], "k": 1, "include": ["vector"], "filter": {"lang": "pl"}},
            {"vector": [0.0, 0.0], "k": 1},
        ]}),
    );
    assert_eq!(b["results"][0][0]["vector"], json!([2.0, 0.0]), "{b}");
    assert!(
        b["results"][1][0].get("vector").is_none(),
        "only on request: {b}"
    );
    let (s, _) = api.post(
        "/vectors/index/books/search",
        &json!({"vector": [0.0, 0.0], "k": 2, "include": ["everything"]}),
    );
    assert_eq!(s, 400);
}

#[test]
fn the_ceiling_of_k_is_a_setting() {
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = ["--ephemeral", "--set", "vectord.max_k=3000"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let v = vectord(dir.path(), &args, true);
    let api = v.api();
    let (s, _) = api.post(
        "/vectors/index",
        &json!({"name": "t", "dim": 2, "distance": "l2"}),
    );
    assert_eq!(s, 201);
    let items: Vec<Value> = (0..2500)
        .map(|i| json!({"id": format!("i{i}"), "vector": [i as f32, 1.0]}))
        .collect();
    assert_eq!(
        api.post("/vectors/index/t/add", &json!({"items": items})).0,
        200
    );
    let (s, b) = api.post(
        "/vectors/index/t/search",
        &json!({"vector": [0.0, 1.0], "k": 2000}),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["results"].as_array().unwrap().len(), 2000);
    let (s, b) = api.post(
        "/vectors/index/t/search",
        &json!({"vector": [0.0, 1.0], "k": 3001}),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_k")),
        "{b}"
    );
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("vectord.max_k"),
        "{b}"
    );
}

#[test]
fn deletes_by_filter_racing_adds_lose_nothing_else() {
    let api = Ephemeral::start();
    let (s, _) = api.post(
        "/vectors/index",
        &json!({"name": "r", "dim": 2, "distance": "l2"}),
    );
    assert_eq!(s, 201);
    let adder = {
        let api = api.api.clone();
        std::thread::spawn(move || {
            for b in 0..60 {
                let items: Vec<Value> = (0..50)
                    .map(|i| {
                        let n = b * 50 + i;
                        json!({"id": format!("i{n}"), "vector": [n as f32, 1.0], "metadata": {"g": n % 2}})
                    })
                    .collect();
                let (s, body) = api.post("/vectors/index/r/add", &json!({ "items": items }));
                assert_eq!(s, 200, "{body}");
            }
        })
    };
    let mut deleted = 0;
    for _ in 0..30 {
        let (s, b) = api.post("/vectors/index/r/delete", &json!({"filter": {"g": 1}}));
        assert_eq!(s, 200, "{b}");
        deleted += b["deleted"].as_u64().unwrap();
    }
    adder.join().unwrap();
    let (_, b) = api.post("/vectors/index/r/delete", &json!({"filter": {"g": 1}}));
    deleted += b["deleted"].as_u64().unwrap();
    assert_eq!(deleted, 1500, "every odd item deleted exactly once");
    let count = |filter: Value| {
        api.post("/vectors/index/r/count", &json!({ "filter": filter }))
            .1["count"]
            .clone()
    };
    assert_eq!(count(json!({"g": 1})), 0);
    assert_eq!(count(json!({"g": 0})), 1500, "no even item lost");
    assert_eq!(api.get("/vectors/index/r").1["count"], 1500);
}
