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
