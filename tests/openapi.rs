//! The OpenAPI document and the server agree: every route the server has is in the
//! document, and every answer to a walk through the API (successes and each kind of
//! error) has a status the document lists for that operation and a body that validates
//! against the documented schema. (`.ci/run` also runs schemathesis against the live
//! server: random requests generated from the document.)

mod common;

use common::*;
use serde_json::{json, Value};

/// Validates `value` against `schema` (the subset utoipa emits: $ref, type, properties,
/// required, items, oneOf/anyOf/allOf); returns what does not fit.
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        return validate(doc, &doc["components"]["schemas"][name], value, at, errors);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let fits = options.iter().any(|o| {
                let mut e = Vec::new();
                validate(doc, o, value, at, &mut e);
                e.is_empty()
            });
            if !fits {
                errors.push(format!("{at}: {value} fits no {key} option"));
            }
            return;
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate(doc, s, value, at, errors);
        }
        return;
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => true,
        });
        if !ok {
            errors.push(format!("{at}: {value} is not of type {t}"));
            return;
        }
    }
    if let (Some(props), Some(obj)) = (schema.get("properties"), value.as_object()) {
        for req in schema["required"].as_array().into_iter().flatten() {
            let name = req.as_str().unwrap_or("");
            if !obj.contains_key(name) {
                errors.push(format!("{at}: required field {name} missing in {value}"));
            }
        }
        for (name, v) in obj {
            match props.get(name) {
                Some(p) => validate(doc, p, v, &format!("{at}.{name}"), errors),
                None => errors.push(format!("{at}: field {name} is not documented")),
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            validate(doc, items, v, &format!("{at}[{i}]"), errors);
        }
    }
}

/// Checks one answer against the operation `method path_template` of the document.
fn conforms(doc: &Value, method: &str, template: &str, status: u16, body: &Value) {
    let op = &doc["paths"][template][method.to_lowercase()];
    assert!(op.is_object(), "{method} {template} is not documented");
    let response = &op["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {template} answered {status}, which the document does not list: {body}"
    );
    if let Some(schema) = response["content"]["application/json"].get("schema") {
        let mut errors = Vec::new();
        validate(doc, schema, body, "body", &mut errors);
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: {errors:?}"
        );
    }
}

#[test]
fn the_document_covers_every_route_and_every_answer_fits_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = ephemeral(dir.path());
    let api = server.api();
    let (s, doc) = api.get("/openapi.json");
    assert_eq!(s, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (path, methods) in [
        ("/health", vec!["get"]),
        ("/ready", vec!["get"]),
        ("/metrics", vec!["get"]),
        ("/vectors/index", vec!["get", "post"]),
        ("/vectors/index/{name}", vec!["get", "delete"]),
        ("/vectors/index/{name}/add", vec!["post"]),
        ("/vectors/index/{name}/search", vec!["post"]),
        ("/vectors/index/{name}/items/{id}", vec!["get", "delete"]),
        ("/vectors/index/{name}/flush", vec!["post"]),
    ] {
        for m in methods {
            assert!(doc["paths"][path][m].is_object(), "{m} {path} missing");
        }
    }
    let check = |method: &str, template: &str, path: &str, body: Option<Value>| {
        let (status, answer) = api.call(method, path, body.as_ref());
        conforms(&doc, method, template, status, &answer);
        (status, answer)
    };
    let idx = "/vectors/index";
    let one = "/vectors/index/{name}";
    // successes
    check("GET", "/health", "/health", None);
    check("GET", "/ready", "/ready", None);
    let (s, _) = check(
        "POST",
        idx,
        idx,
        Some(json!({"name": "d", "dim": 3, "distance": "cosine"})),
    );
    assert_eq!(s, 201);
    check("GET", idx, idx, None);
    check("GET", one, "/vectors/index/d", None);
    let add = "/vectors/index/{name}/add";
    let (s, _) = check(
        "POST",
        add,
        "/vectors/index/d/add",
        Some(
            json!({"items": [{"id": "a", "vector": [1, 2, 3], "metadata": {"k": [1, {"x": null}]}}, {"id": "b", "vector": [3, 2, 1]}]}),
        ),
    );
    assert_eq!(s, 200);
    let item = "/vectors/index/{name}/items/{id}";
    check("GET", item, "/vectors/index/d/items/a", None);
    let search = "/vectors/index/{name}/search";
    let (s, _) = check(
        "POST",
        search,
        "/vectors/index/d/search",
        Some(json!({"vector": [1, 2, 3], "k": 2, "filter": {"k": [1, {"x": null}]}})),
    );
    assert_eq!(s, 200);
    check(
        "POST",
        "/vectors/index/{name}/flush",
        "/vectors/index/d/flush",
        Some(json!({})),
    );
    // errors
    for body in [
        json!({"name": ".bad", "dim": 3, "distance": "cosine"}),
        json!({"name": "x", "dim": 0, "distance": "cosine"}),
        json!({"name": "x", "dim": 3, "distance": "manhattan"}),
        json!({"name": "x", "dim": 3, "distance": "l2", "extra": 1}),
        json!({"name": "d", "dim": 3, "distance": "l2"}),
    ] {
        let (s, _) = check("POST", idx, idx, Some(body));
        assert!(s == 400 || s == 409);
    }
    for body in [
        json!({"items": []}),
        json!({"items": [{"id": "a", "vector": [1, 2]}]}),
        json!({"items": [{"id": "z", "vector": [0, 0, 0]}]}),
        json!({"items": [{"id": "m", "vector": [1, 2, 3], "metadata": 5}]}),
    ] {
        assert_eq!(
            check("POST", add, "/vectors/index/d/add", Some(body)).0,
            400
        );
    }
    assert_eq!(
        check(
            "POST",
            add,
            "/vectors/index/nope/add",
            Some(json!({"items": []}))
        )
        .0,
        404
    );
    for body in [
        json!({"vector": [1, 2, 3], "k": 0}),
        json!({"vector": [1, 2, 3], "k": 5, "ef": 2}),
        json!({"vector": [1, 2], "k": 5}),
        json!({"vector": [1, 2, 3], "k": 5, "filter": 3}),
    ] {
        assert_eq!(
            check("POST", search, "/vectors/index/d/search", Some(body)).0,
            400
        );
    }
    assert_eq!(
        check("GET", item, "/vectors/index/d/items/nope", None).0,
        404
    );
    assert_eq!(
        check("GET", item, "/vectors/index/d/items/zz%FF", None).0,
        400
    );
    assert_eq!(
        check("DELETE", item, "/vectors/index/d/items/a", None).0,
        204
    );
    assert_eq!(
        check("DELETE", item, "/vectors/index/d/items/a", None).0,
        404
    );
    assert_eq!(check("GET", one, "/vectors/index/nope", None).0, 404);
    assert_eq!(check("DELETE", one, "/vectors/index/d", None).0, 204);
    assert_eq!(check("DELETE", one, "/vectors/index/d", None).0, 404);
    assert_eq!(
        check(
            "POST",
            "/vectors/index/{name}/flush",
            "/vectors/index/d/flush",
            Some(json!({}))
        )
        .0,
        404
    );
}
