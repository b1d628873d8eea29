//! The model test: a random sequence of operations against the real vectord and, in step,
//! against a plain in-test model of what the contract promises. After every step the answer
//! must agree with the model (ids, vectors, metadata, counts, exact-match searches,
//! filtered searches, both also in one batch search, the list of indexes); random filters
//! of the query language (nested `$and`/`$or`/`$not`, ranges, `$in`/`$nin`, `$exists`,
//! `$id`, numbers of mixed types and past 2^53) are evaluated by brute force in the test and
//! checked through search, get (paging), count and delete; every so often
//! all indexes are flushed and vectord restarted — by SIGTERM or by `kill -9`, alternately
//! — and everything is checked in full. Small segments (`seal_points` 100) make seals,
//! merges and compactions happen all the time under the sequence.
//!
//! Field indexes: one index declares every field at creation, another declares some
//! later (sealed segments then indexed in the background), the third has none; all three
//! must give the same answers, also across restarts (the declared fields come back).
//!
//! `MODEL_OPS` sets the number of operations (CI: 3,000; docs/testing.md gives the long run),
//! `MODEL_SEED` the seed. Prints the operations and checks done.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::*;
use serde_json::{json, Value};

const DIM: usize = 8;
/// Ids per index are drawn from this many, so that upserts and deletes hit live ids.
const POOL: u64 = 150;
/// Index names, with their distance; each is created, deleted and re-created as it goes.
const INDEXES: [(&str, &str); 3] = [("m-l2", "l2"), ("m-cos", "cosine"), ("m-l2b", "l2")];

/// A vector of exactly representable values in [-1, 1.25], never all zero.
fn random_vector(rng: &mut Rng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIM)
        .map(|_| (rng.below(2001) as f32 - 1000.0) / 1000.0)
        .collect();
    v[0] = 0.25 + rng.below(100) as f32 / 100.0;
    v
}

/// Metadata with a float of all its digits, an integer past 2^53, a nested value, a list
/// of strings, a boolean, and a field that is now a number, now a string (which a field
/// index of either kind holds only in part).
fn random_metadata(rng: &mut Rng) -> Value {
    let tag = ["a", "b", "c"][rng.below(3) as usize];
    let n = rng.below(50) * 20;
    json!({
        "tag": tag,
        // few values, so that filters meet their bounds exactly
        "n": if rng.below(8) == 0 { json!(n.to_string()) } else { json!(n) },
        "x": rng.below(1_000_000) as f64 / 7.0,
        "big": 9_007_199_254_740_993u64 + rng.below(10),
        "nested": {"list": [rng.below(5), "s"]},
        "tags": [tag, format!("t{}", rng.below(4)), format!("t{}", rng.below(4))],
        "flag": rng.below(3) == 0,
    })
}

/// The document of an item with metadata `meta`: derived from it, so that the model need
/// not hold it apart; none (`null`) for about half the items, empty for some, with text
/// JSON must escape for the others.
fn model_document(meta: &Value) -> Value {
    match meta["n"].as_u64().map(|n| n % 80) {
        Some(0) => json!(""),
        Some(n) if n < 40 => json!(format!("{}\n\"{}\" é {n}", meta["tag"], meta["x"])),
        _ => Value::Null,
    }
}

/// The fields indexed: all of them by the first index from its creation; some of them by
/// the second, declared during the run.
const ALL_FIELDS: &str = r#"{"tag": "keyword", "n": "integer", "x": "float", "big": "integer", "tags": "keyword", "flag": "bool"}"#;
const LATER_FIELDS: &str = r#"{"n": "float", "tags": "keyword", "flag": "bool", "tag": "keyword"}"#;

/// A random filter of the query language over the fields `random_metadata` writes (and
/// one it never writes), ids included, nested up to `depth` operators.
fn random_filter(rng: &mut Rng, depth: u32) -> Value {
    let roll = rng.below(if depth == 0 { 10 } else { 13 });
    match roll {
        10 => json!({"$and": [random_filter(rng, depth - 1), random_filter(rng, depth - 1)]}),
        11 => json!({"$or": [random_filter(rng, depth - 1), random_filter(rng, depth - 1)]}),
        12 => json!({"$not": random_filter(rng, depth - 1)}),
        _ => {
            let tag = ["a", "b", "c", "d"][rng.below(4) as usize];
            let n = rng.below(50) * 20;
            match roll {
                0 => json!({"tag": tag}),
                1 => json!({"tag": {"$in": [tag, "b"]}}),
                2 => json!({"tag": {"$nin": [tag]}}),
                3 => {
                    let op = ["$gt", "$gte", "$lt", "$lte"][rng.below(4) as usize];
                    json!({"n": {op: n}})
                }
                4 => json!({"n": {"$gte": n, "$lt": n + 300}}),
                5 => json!({"nested.list": {"$exists": false}, "x": {"$lt": n as f64 * 100.0}}),
                6 => json!({"n": {"$ne": n as f64}}),
                7 => {
                    json!({"$id": {"$in": [format!("id{}", rng.below(POOL)), format!("id{}", rng.below(POOL))]}})
                }
                8 => json!({"gone": {"$exists": rng.below(2) == 0}}),
                9 => match rng.below(4) {
                    0 => json!({"tags": {"$contains": format!("t{}", rng.below(5))}}),
                    1 => json!({"flag": rng.below(2) == 0, "tag": {"$in": [tag, "c"]}}),
                    2 => json!({"n": {"$in": [n.to_string(), n + 20]}}),
                    _ => json!({"n": n, "x": {"$gte": n as f64 * 100.0}}),
                },
                _ => json!({"big": {"$in": [9_007_199_254_740_993u64 + rng.below(10), 3]}}),
            }
        }
    }
}

/// Whether an item passes `filter`, by the rules of the query language, written apart from
/// the server's reader (brute force over the item's metadata).
fn passes(filter: &Value, id: &str, metadata: &Value) -> bool {
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                    x == y
                } else if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                    x == y
                } else {
                    x.as_f64() == y.as_f64()
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
            }
            _ => a == b,
        }
    }
    let Value::Object(terms) = filter else {
        panic!("random_filter writes objects")
    };
    terms.iter().all(|(key, operand)| match key.as_str() {
        "$and" => operand
            .as_array()
            .unwrap()
            .iter()
            .all(|f| passes(f, id, metadata)),
        "$or" => operand
            .as_array()
            .unwrap()
            .iter()
            .any(|f| passes(f, id, metadata)),
        "$not" => !passes(operand, id, metadata),
        "$id" => operand["$in"].as_array().unwrap().iter().any(|v| v == id),
        field => {
            let value = metadata.get(field);
            let ops = match operand {
                Value::Object(o) if o.keys().any(|k| k.starts_with('$')) => o.clone(),
                _ => [("$eq".to_string(), operand.clone())].into_iter().collect(),
            };
            ops.iter().all(|(op, want)| {
                let num = || value.and_then(Value::as_f64);
                let bound = want.as_f64().unwrap_or(f64::NAN);
                let in_list = || {
                    want.as_array()
                        .unwrap()
                        .iter()
                        .any(|w| value.is_some_and(|v| same(v, w)))
                };
                match op.as_str() {
                    "$eq" => value.is_some_and(|v| same(v, want)),
                    "$ne" => !value.is_some_and(|v| same(v, want)),
                    "$gt" => num().is_some_and(|v| v > bound),
                    "$gte" => num().is_some_and(|v| v >= bound),
                    "$lt" => num().is_some_and(|v| v < bound),
                    "$lte" => num().is_some_and(|v| v <= bound),
                    "$in" => in_list(),
                    "$nin" => !in_list(),
                    "$exists" => value.is_some() == (want == &json!(true)),
                    "$contains" => value
                        .and_then(Value::as_array)
                        .is_some_and(|items| items.iter().any(|v| same(v, want))),
                    other => panic!("random_filter writes no {other}"),
                }
            })
        }
    })
}

/// One index as the contract says it must be.
#[derive(Clone, Default)]
struct Model {
    distance: &'static str,
    items: BTreeMap<String, (Vec<f32>, Value)>,
    /// The fields indexed, as the index info lists them.
    fields: Value,
}

impl Model {
    /// The vector as the index stores it (unit length under cosine, normalized in f64).
    fn stored(&self, v: &[f32]) -> Vec<f32> {
        if self.distance != "cosine" {
            return v.to_vec();
        }
        let norm = v
            .iter()
            .map(|&x| (x as f64) * (x as f64))
            .sum::<f64>()
            .sqrt();
        v.iter().map(|&x| (x as f64 / norm) as f32).collect()
    }
}

struct Checker {
    api: Api,
    checks: u64,
}

impl Checker {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.checks += 1;
        assert!(ok, "{}", what());
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-6)
    }

    /// One item's GET against the model.
    fn item(&mut self, name: &str, model: &Model, id: &str) {
        let (s, body) = self.api.get(&format!("/vectors/index/{name}/items/{id}"));
        match model.items.get(id) {
            Some((v, meta)) => {
                self.check(s == 200, || format!("GET {name}/{id}: {s} {body}"));
                let got: Vec<f32> = serde_json::from_value(body["vector"].clone()).unwrap();
                let want = model.stored(v);
                self.check(Self::close(&got, &want), || {
                    format!("{name}/{id}: vector {got:?}, expected {want:?}")
                });
                self.check(body["metadata"] == *meta, || {
                    format!(
                        "{name}/{id}: metadata {}, expected {meta}",
                        body["metadata"]
                    )
                });
                let document = body.get("document").cloned().unwrap_or_default();
                self.check(document == model_document(meta), || {
                    format!("{name}/{id}: document {document}, expected that of {meta}")
                });
            }
            None => self.check(s == 404, || {
                format!("GET {name}/{id}: {s} {body}, expected 404")
            }),
        }
    }

    /// Searching a live item's vector finds it first at distance 0; every result is live
    /// with its model metadata.
    fn exact_search(&mut self, name: &str, model: &Model, id: &str) {
        let (v, _) = &model.items[id];
        let (s, body) = self.api.post(
            &format!("/vectors/index/{name}/search"),
            &json!({"vector": v, "k": 5, "ef": 200}),
        );
        self.check(s == 200, || format!("search {name}: {s} {body}"));
        self.exact_results(name, model, id, &body["results"]);
    }

    fn exact_results(&mut self, name: &str, model: &Model, id: &str, results: &Value) {
        let results = results.as_array().cloned().unwrap_or_default();
        self.check(results.len() == model.items.len().min(5), || {
            format!(
                "search {name}: {} results of {}",
                results.len(),
                model.items.len()
            )
        });
        let Some(first) = results.first() else {
            return;
        };
        self.check(
            first["id"] == id && first["distance"].as_f64().unwrap_or(1.0).abs() <= 1e-5,
            || format!("search {name} for {id}: first is {first}"),
        );
        for r in &results {
            let rid = r["id"].as_str().unwrap_or_default();
            let meta = model.items.get(rid).map(|(_, m)| m);
            self.check(meta == Some(&r["metadata"]), || {
                format!("search {name}: result {r} is not live as such in the model")
            });
        }
    }

    /// A filtered search returns min(k, matches) results, all matching.
    fn filtered_search(&mut self, name: &str, model: &Model, tag: &str, query: &[f32]) {
        let (s, body) = self.api.post(
            &format!("/vectors/index/{name}/search"),
            &json!({"vector": query, "k": 10, "filter": {"tag": tag}}),
        );
        self.check(s == 200, || format!("filtered search {name}: {s} {body}"));
        self.filtered_results(name, model, tag, &body["results"]);
    }

    fn filtered_results(&mut self, name: &str, model: &Model, tag: &str, results: &Value) {
        let matching = model
            .items
            .values()
            .filter(|(_, m)| m["tag"] == tag)
            .count();
        let results = results.as_array().cloned().unwrap_or_default();
        self.check(results.len() == matching.min(10), || {
            format!(
                "filtered search {name} tag {tag}: {} results, {matching} match",
                results.len()
            )
        });
        for r in &results {
            self.check(r["metadata"]["tag"] == tag, || {
                format!("{r} does not match {tag}")
            });
        }
    }

    /// The exact and the filtered search in one batch: each answer holds to its rules.
    fn batch_search(&mut self, name: &str, model: &Model, id: &str, tag: &str, query: &[f32]) {
        let (v, _) = &model.items[id];
        let (s, body) = self.api.post(
            &format!("/vectors/index/{name}/search/batch"),
            &json!({"searches": [
                {"vector": query, "k": 10, "filter": {"tag": tag}},
                {"vector": v, "k": 5, "ef": 200},
            ]}),
        );
        self.check(s == 200, || format!("batch search {name}: {s} {body}"));
        self.filtered_results(name, model, tag, &body["results"][0]);
        self.exact_results(name, model, id, &body["results"][1]);
    }

    /// The ids of the model's items that pass `filter`, in id order.
    fn matching(model: &Model, filter: &Value) -> Vec<String> {
        model
            .items
            .iter()
            .filter(|(id, (_, m))| passes(filter, id, m))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// A search under a random filter: min(k, matches) results, each passing it.
    fn query_search(&mut self, name: &str, model: &Model, filter: &Value, query: &[f32]) {
        let (s, body) = self.api.post(
            &format!("/vectors/index/{name}/search"),
            &json!({"vector": query, "k": 10, "filter": filter}),
        );
        self.check(s == 200, || format!("search {name} {filter}: {s} {body}"));
        let matching = Self::matching(model, filter);
        let results = body["results"].as_array().cloned().unwrap_or_default();
        self.check(results.len() == matching.len().min(10), || {
            format!(
                "search {name} {filter}: {} results, {} match",
                results.len(),
                matching.len()
            )
        });
        for r in &results {
            let rid = r["id"].as_str().unwrap_or_default();
            self.check(matching.iter().any(|m| m == rid), || {
                format!("search {name} {filter}: {rid} does not pass")
            });
        }
    }

    /// Paging through the items that pass `filter` gives exactly them, in id order; their
    /// count too.
    fn query_get_and_count(&mut self, name: &str, model: &Model, filter: &Value, limit: u64) {
        let mut got: Vec<String> = Vec::new();
        let mut cursor = Value::Null;
        loop {
            let (s, body) = self.api.post(
                &format!("/vectors/index/{name}/get"),
                &json!({"filter": filter, "limit": limit, "cursor": cursor, "include": ["metadata", "document"]}),
            );
            self.check(s == 200, || format!("get {name} {filter}: {s} {body}"));
            for item in body["items"].as_array().cloned().unwrap_or_default() {
                let id = item["id"].as_str().unwrap_or_default().to_string();
                let meta = model.items.get(&id).map(|(_, m)| m);
                self.check(
                    meta == Some(&item["metadata"])
                        && item["document"] == model_document(&item["metadata"]),
                    || format!("get {name}: {item} is not live as such in the model"),
                );
                got.push(id);
            }
            cursor = body["next_cursor"].clone();
            if cursor.is_null() || s != 200 {
                break;
            }
        }
        let want = Self::matching(model, filter);
        self.check(got == want, || {
            format!("get {name} {filter}: {got:?}, expected {want:?}")
        });
        let (_, body) = self.api.post(
            &format!("/vectors/index/{name}/count"),
            &json!({ "filter": filter }),
        );
        self.check(body["count"] == want.len(), || {
            format!("count {name} {filter}: {body}, expected {}", want.len())
        });
    }

    fn count(&mut self, name: &str, model: &Model) {
        let (s, info) = self.api.get(&format!("/vectors/index/{name}"));
        self.check(
            s == 200 && info["count"] == model.items.len() && info["fields"] == model.fields,
            || {
                format!(
                    "{name}: info {s} {info}, expected count {} and fields {}",
                    model.items.len(),
                    model.fields
                )
            },
        );
    }

    fn list(&mut self, models: &BTreeMap<&str, Model>) {
        let (_, body) = self.api.get("/vectors/index");
        let names: Vec<&str> = body["indexes"]
            .as_array()
            .map(|a| a.iter().filter_map(|i| i["name"].as_str()).collect())
            .unwrap_or_default();
        let want: Vec<&str> = models.keys().copied().collect();
        self.check(names == want, || {
            format!("indexes {names:?}, expected {want:?}")
        });
    }

    /// Everything, after a restart.
    fn all(&mut self, models: &BTreeMap<&str, Model>) {
        self.list(models);
        for (name, model) in models {
            self.count(name, model);
            for i in 0..POOL {
                self.item(name, model, &format!("id{i}"));
            }
            for id in model.items.keys().take(20) {
                self.exact_search(name, model, id);
            }
        }
    }
}

#[test]
fn random_operations_agree_with_the_model_across_restarts() {
    let ops: u64 = std::env::var("MODEL_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let seed: u64 = std::env::var("MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let restart_every = 250;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = storaged(dir.path(), &root, None);
    let flags = [
        "--set",
        "vectord.seal_points=100",
        "--set",
        "vectord.manifest_log_bytes=20000",
        "--set",
        "vectord.save_quiet_ms=20",
    ];
    let mut v = persistent(dir.path(), &store.url, &flags);
    let mut c = Checker {
        api: v.api(),
        checks: 0,
    };
    let mut rng = Rng(seed);
    let mut models: BTreeMap<&str, Model> = BTreeMap::new();
    let started = Instant::now();
    let mut restarts = 0;

    for step in 1..=ops {
        let (name, distance) = INDEXES[rng.below(INDEXES.len() as u64) as usize];
        let path = format!("/vectors/index/{name}");
        let Some(model) = models.get(name).cloned() else {
            let fields: Value = match name {
                "m-l2" => serde_json::from_str(ALL_FIELDS).unwrap(),
                _ => json!({}),
            };
            let (s, body) = c.api.post(
                "/vectors/index",
                &json!({"name": name, "dim": DIM, "distance": distance, "fields": fields}),
            );
            c.check(s == 201 && body["fields"] == fields, || {
                format!("step {step}: create {name}: {s} {body}")
            });
            models.insert(
                name,
                Model {
                    distance,
                    fields,
                    ..Model::default()
                },
            );
            continue;
        };
        let roll = rng.below(100);
        let id = format!("id{}", rng.below(POOL));
        match roll {
            // add (upsert) a batch of 1-5 distinct ids
            0..=37 => {
                let mut batch: BTreeMap<String, (Vec<f32>, Value)> = BTreeMap::new();
                for _ in 0..=rng.below(5) {
                    batch.insert(
                        format!("id{}", rng.below(POOL)),
                        (random_vector(&mut rng), random_metadata(&mut rng)),
                    );
                }
                let items: Vec<Value> = batch
                    .iter()
                    .map(|(id, (v, m))| json!({"id": id, "vector": v, "metadata": m, "document": model_document(m)}))
                    .collect();
                let (s, body) = c
                    .api
                    .post(&format!("{path}/add"), &json!({ "items": items }));
                let m = models.get_mut(name).unwrap();
                m.items.extend(batch.clone());
                c.check(s == 200 && body["count"] == m.items.len(), || {
                    format!(
                        "step {step}: add to {name}: {s} {body}, expected count {}",
                        m.items.len()
                    )
                });
            }
            38..=48 => {
                let (s, body) = c.api.delete(&format!("{path}/items/{id}"));
                let m = models.get_mut(name).unwrap();
                let want = if m.items.remove(&id).is_some() {
                    204
                } else {
                    404
                };
                c.check(s == want, || {
                    format!("step {step}: delete {name}/{id}: {s} {body}")
                });
                c.count(name, m);
            }
            49..=50 => {
                // a delete by filter (or by ids): one change
                let filter = random_filter(&mut rng, 2);
                let want = Checker::matching(&model, &filter);
                let body = if rng.below(2) == 0 {
                    json!({ "filter": filter })
                } else {
                    json!({"ids": [id.clone(), "nope"], "filter": filter})
                };
                let want: Vec<String> = match body.get("ids") {
                    Some(_) => want.into_iter().filter(|w| *w == id).collect(),
                    None => want,
                };
                let (s, got) = c.api.post(&format!("{path}/delete"), &body);
                let m = models.get_mut(name).unwrap();
                // An empty filter selects nothing on purpose (400); else the matches go.
                let empty = body["filter"] == json!({}) && body.get("ids").is_none();
                if empty {
                    c.check(s == 400, || {
                        format!("step {step}: delete {body}: {s} {got}")
                    });
                } else {
                    for w in &want {
                        m.items.remove(w);
                    }
                    c.check(
                        s == 200 && got["deleted"] == want.len() && got["count"] == m.items.len(),
                        || {
                            format!(
                                "step {step}: delete {name} {body}: {s} {got}, expected {} deleted",
                                want.len()
                            )
                        },
                    );
                }
            }
            51..=62 => c.item(name, &model, &id),
            63..=74 => {
                if model.items.contains_key(&id) && step % 3 == 0 {
                    let tag = ["a", "b", "c"][rng.below(3) as usize];
                    let query = random_vector(&mut rng);
                    c.batch_search(name, &model, &id, tag, &query);
                } else if model.items.contains_key(&id) {
                    c.exact_search(name, &model, &id);
                } else {
                    c.item(name, &model, &id);
                }
            }
            75..=80 => {
                let tag = ["a", "b", "c"][rng.below(3) as usize];
                let query = random_vector(&mut rng);
                c.filtered_search(name, &model, tag, &query);
            }
            81..=86 => {
                let filter = random_filter(&mut rng, 3);
                let query = random_vector(&mut rng);
                c.query_search(name, &model, &filter, &query);
            }
            87..=89 => {
                let filter = random_filter(&mut rng, 3);
                let limit = 1 + rng.below(60);
                c.query_get_and_count(name, &model, &filter, limit);
            }
            90..=93 => c.list(&models),
            94 if name == "m-cos" => {
                // fields declared on a live index: its sealed segments get them in the
                // background, while the searches above go on
                let fields: Value = serde_json::from_str(LATER_FIELDS).unwrap();
                let (s, body) = c
                    .api
                    .post(&format!("{path}/fields"), &json!({ "fields": fields }));
                c.check(s == 200 && body["fields"] == fields, || {
                    format!("step {step}: declare fields of {name}: {s} {body}")
                });
                models.get_mut(name).unwrap().fields = fields;
            }
            94 => {
                // another kind for a declared field is refused and changes nothing; the same
                // kind again is no change
                let (s, body) = c.api.post(
                    &format!("{path}/fields"),
                    &json!({"fields": {"tag": "integer"}}),
                );
                let want = match model.fields.get("tag") {
                    Some(kind) if kind != "integer" => 400,
                    _ => 200,
                };
                c.check(s == want, || {
                    format!("step {step}: redeclare tag of {name}: {s} {body}")
                });
                if s == 200 {
                    models.get_mut(name).unwrap().fields = body["fields"].clone();
                }
            }
            95..=96 => c.count(name, &model),
            _ => {
                let (s, body) = c.api.delete(&path);
                c.check(s == 204, || {
                    format!("step {step}: delete index {name}: {s} {body}")
                });
                models.remove(name);
                let (s, _) = c.api.get(&path);
                c.check(s == 404, || format!("step {step}: {name} still there"));
            }
        }

        if step % restart_every == 0 {
            for name in models.keys() {
                let (s, body) = c
                    .api
                    .post(&format!("/vectors/index/{name}/flush"), &json!({}));
                c.check(s == 200 && body["persisted"] == true, || {
                    format!("step {step}: flush {name}: {s} {body}")
                });
            }
            restarts += 1;
            if restarts % 2 == 0 {
                v.kill9();
            } else {
                assert!(v.terminate().success(), "SIGTERM exit status");
            }
            drop(v);
            v = persistent(dir.path(), &store.url, &flags);
            c.api = v.api();
            c.all(&models);
        }
    }
    c.all(&models);
    let health = c.api.get("/health").1;
    assert!(health.get("failed_indexes").is_none(), "{health}");
    assert!(health.get("load_warnings").is_none(), "{health}");
    eprintln!(
        "model test: {ops} operations, {restarts} restarts, {} checks, seed {seed}, {:.1} s",
        c.checks,
        started.elapsed().as_secs_f64()
    );
}
