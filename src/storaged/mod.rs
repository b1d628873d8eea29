//! storaged: a small object-storage service (docs/API.md, section "storaged").
//!
//! - `config`: its settings, the `[storaged]` section (`StoragedConfig`, `BackendKind`);
//! - `keys`: what a key is, how it is read off the wire and where it is stored;
//! - `backend`: the object store behind storaged (`Backend`): local disk (`local`: durable,
//!   atomic writes; any set of keys side by side) by default, or an S3-compatible bucket
//!   (`s3`), or any `object_store` store;
//! - `object`: what the backend hands back (an object, a listing's entries, its errors);
//! - `http`: the routes and the JSON error format.
//!
//! `server` builds the HTTP server for a `[storaged]` configuration; the `storaged` binary
//! runs it, and vectord can run it in-process.

pub mod backend;
pub mod config;
pub mod http;
pub mod keys;
pub mod local;
pub mod object;
pub mod s3;
#[doc(hidden)]
pub mod testing;

#[cfg(test)]
mod model_tests;

use std::io;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};

pub use self::config::{BackendKind, StoragedConfig};
pub use backend::Backend;
pub use s3::S3Config;

/// Builds (does not run) the storaged HTTP server for these settings.
///
/// For local disk, creates the root directory if needed and removes unfinished uploads left
/// in it by a crash; for S3, checks in the background that the bucket answers. Must be
/// called inside an actix/tokio runtime.
pub fn server(cfg: &StoragedConfig) -> io::Result<actix_web::dev::Server> {
    build(cfg, true)
}

/// Like `server`, but it ignores SIGINT/SIGTERM: for storaged embedded in vectord, which
/// must keep serving until vectord has saved everything, and then stops it.
pub fn server_without_signals(cfg: &StoragedConfig) -> io::Result<actix_web::dev::Server> {
    build(cfg, false)
}

fn build(cfg: &StoragedConfig, handle_signals: bool) -> io::Result<actix_web::dev::Server> {
    let store = Arc::new(Backend::open(cfg)?);
    let description = store.description().to_string();
    if cfg.backend == BackendKind::S3 {
        let store = store.clone();
        actix_web::rt::spawn(async move {
            match store.probe().await {
                Ok(()) => log::info!("storaged: {} answers", store.description()),
                Err(e) => log::warn!("storaged: {} does not answer yet: {e}", store.description()),
            }
        });
    }
    let state = web::Data::new(http::State {
        store,
        max_object_bytes: cfg.max_object_bytes as u64,
        api_key: cfg.api_key.clone(),
    });
    if cfg.api_key.is_some() {
        log::info!("storaged: requests need the API key (storaged.api_key), /health excepted");
    }
    let server = HttpServer::new(move || {
        let state = state.clone();
        App::new()
            .wrap(actix_web::middleware::from_fn(http::require_api_key))
            .configure(move |c| http::configure(c, state))
    });
    let server = if handle_signals {
        server
    } else {
        server.disable_signals()
    };
    let server = server
        .bind(&cfg.bind)
        .map_err(|e| io::Error::new(e.kind(), format!("storaged.bind {}: {e}", cfg.bind)))?;
    let addrs: Vec<String> = server.addrs().iter().map(|a| a.to_string()).collect();
    log::info!(
        "storaged: serving {description} on {} (objects up to {} bytes)",
        addrs.join(", "),
        cfg.max_object_bytes
    );
    Ok(server.run())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::dev::ServiceResponse;
    use actix_web::http::StatusCode;
    use actix_web::test::{self, TestRequest};
    use futures::future::LocalBoxFuture;
    use serde_json::Value;
    use std::rc::Rc;

    /// One backend under test: its name, its directory (local disk only) and the app.
    struct Fixture {
        name: &'static str,
        dir: Option<tempfile::TempDir>,
        app: TestApp,
    }

    /// The app on every backend (local disk, memory, and S3 when a server is available).
    async fn fixtures(test: &str, max_object_bytes: u64) -> Vec<Fixture> {
        let mut out = Vec::new();
        for t in testing::test_backends(test) {
            let state = web::Data::new(http::State {
                store: Arc::new(t.store),
                max_object_bytes,
                api_key: None,
            });
            out.push(Fixture {
                name: t.name,
                dir: t.dir,
                app: app(state).await,
            });
        }
        out
    }

    /// The app under test, as a function from request to response (the service type
    /// cannot be named here).
    type TestApp = Rc<dyn Fn(TestRequest) -> LocalBoxFuture<'static, ServiceResponse>>;

    async fn app(state: web::Data<http::State>) -> TestApp {
        let svc = Rc::new(
            test::init_service(App::new().configure(move |c| http::configure(c, state))).await,
        );
        Rc::new(move |req: TestRequest| {
            let svc = svc.clone();
            Box::pin(async move { test::call_service(&*svc, req.to_request()).await })
        })
    }

    async fn call(app: &TestApp, req: TestRequest) -> (StatusCode, Vec<u8>) {
        let resp = app(req).await;
        let status = resp.status();
        let body = test::read_body(resp).await.to_vec();
        (status, body)
    }

    async fn put(app: &TestApp, path: &str, data: &[u8]) -> (StatusCode, Value) {
        let req = TestRequest::put()
            .uri(&format!("/storage/put/{path}"))
            .set_payload(data.to_vec());
        let (status, body) = call(app, req).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn get(app: &TestApp, path: &str) -> (StatusCode, Vec<u8>) {
        call(app, TestRequest::get().uri(&format!("/storage/get/{path}"))).await
    }

    async fn delete(app: &TestApp, path: &str) -> StatusCode {
        let req = TestRequest::delete().uri(&format!("/storage/delete/{path}"));
        call(app, req).await.0
    }

    async fn list(app: &TestApp, query: &str) -> Value {
        let req = TestRequest::get().uri(&format!("/storage/list{query}"));
        let (status, body) = call(app, req).await;
        assert_eq!(status, StatusCode::OK);
        serde_json::from_slice(&body).unwrap()
    }

    fn listed_keys(body: &Value) -> Vec<String> {
        body["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["Key"].as_str().unwrap().to_string())
            .collect()
    }

    fn error_code(body: &Value) -> &str {
        body["error"]["code"].as_str().unwrap_or("")
    }

    /// Every file name under `dir`, relative, `/`-separated.
    fn files(dir: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    let rel = e.path().strip_prefix(dir).unwrap().to_owned();
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }

    #[actix_web::test]
    async fn round_trip_overwrite_and_missing() {
        for fx in fixtures("http_round_trip", 1 << 20).await {
            let app = &fx.app;
            let (status, body) = put(app, "dir/obj.bin", b"hello").await;
            assert_eq!(status, StatusCode::OK, "{}", fx.name);
            assert_eq!(body, serde_json::json!({"key": "dir/obj.bin", "size": 5}));
            let resp = app(TestRequest::get().uri("/storage/get/dir/obj.bin")).await;
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(
                resp.headers().get("content-type").unwrap(),
                "application/octet-stream"
            );
            assert_eq!(test::read_body(resp).await.as_ref(), b"hello");

            let (status, _) = put(app, "dir/obj.bin", b"bye").await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                get(app, "dir/obj.bin").await,
                (StatusCode::OK, b"bye".to_vec())
            );

            let (status, body) = put(app, "empty", b"").await;
            assert_eq!((status, body["size"].as_u64()), (StatusCode::OK, Some(0)));
            assert_eq!(get(app, "empty").await, (StatusCode::OK, Vec::new()));

            let (status, body) = get(app, "dir/nope").await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(error_code(&body), "not_found");
            assert!(body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("dir/nope"));
            // a "directory" is not an object
            assert_eq!(
                get(app, "dir").await.0,
                StatusCode::NOT_FOUND,
                "{}",
                fx.name
            );
        }
    }

    #[actix_web::test]
    async fn delete_is_idempotent() {
        for fx in fixtures("http_delete", 1 << 20).await {
            let app = &fx.app;
            put(app, "a/b", b"x").await;
            assert_eq!(delete(app, "a/b").await, StatusCode::NO_CONTENT);
            assert_eq!(delete(app, "a/b").await, StatusCode::NO_CONTENT);
            assert_eq!(delete(app, "never/was").await, StatusCode::NO_CONTENT);
            assert_eq!(delete(app, "a").await, StatusCode::NO_CONTENT);
            assert_eq!(
                get(app, "a/b").await.0,
                StatusCode::NOT_FOUND,
                "{}",
                fx.name
            );
            if let Some(dir) = &fx.dir {
                assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
            }
        }
    }

    #[actix_web::test]
    async fn list_by_prefix_sorted_with_sizes() {
        for fx in fixtures("http_list", 1 << 20).await {
            let app = &fx.app;
            for (k, v) in [
                ("_vectors/b.lhv1", &b"bb"[..]),
                ("_vectors/a.lhv1", b"a"),
                ("_vectors/sub/c", b"ccc"),
                ("_vectorsX", b"x"),
                ("other/z", b""),
            ] {
                assert_eq!(put(app, k, v).await.0, StatusCode::OK, "{}", fx.name);
            }
            let body = list(app, "?prefix=_vectors/").await;
            assert_eq!(
                body,
                serde_json::json!({"prefix": "_vectors/", "objects": [
                    {"Key": "_vectors/a.lhv1", "Size": 1},
                    {"Key": "_vectors/b.lhv1", "Size": 2},
                    {"Key": "_vectors/sub/c", "Size": 3},
                ]}),
                "{}",
                fx.name
            );
            let body = list(app, "?prefix=_vectors").await;
            assert_eq!(body["objects"].as_array().unwrap().len(), 4);
            let body = list(app, "?prefix=_vectors%2Fb").await;
            assert_eq!(listed_keys(&body), ["_vectors/b.lhv1"]);
            let body = list(app, "").await;
            assert_eq!(body["prefix"], "");
            assert_eq!(
                listed_keys(&body),
                [
                    "_vectors/a.lhv1",
                    "_vectors/b.lhv1",
                    "_vectors/sub/c",
                    "_vectorsX",
                    "other/z"
                ],
                "{}",
                fx.name
            );
            assert_eq!(
                list(app, "?prefix=nothing/").await["objects"],
                serde_json::json!([])
            );
            assert_eq!(
                list(app, "?prefix=other/z/").await["objects"],
                serde_json::json!([])
            );
        }
    }

    #[actix_web::test]
    async fn bad_keys_are_400() {
        for fx in fixtures("http_bad_keys", 1 << 20).await {
            let app = &fx.app;
            for path in [
                "a//b", "./x", "a/../b", "..", ".", "", "a/", "%2E%2E", "x/%2e", "a%zz",
            ] {
                let (status, body) = put(app, path, b"x").await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "put {path:?}");
                assert_eq!(error_code(&body), "bad_key", "put {path:?}");
                assert_eq!(
                    delete(app, path).await,
                    StatusCode::BAD_REQUEST,
                    "delete {path:?}"
                );
                assert_eq!(
                    get(app, path).await.0,
                    StatusCode::BAD_REQUEST,
                    "get {path:?}"
                );
            }
            assert!(listed_keys(&list(app, "").await).is_empty());
            if let Some(dir) = &fx.dir {
                assert!(files(dir.path()).is_empty());
            }
        }
    }

    #[actix_web::test]
    async fn escaped_segments_round_trip() {
        for fx in fixtures("http_escaped", 1 << 20).await {
            let app = &fx.app;
            let cases = [
                ("e/a%2Fb", "e/a%2Fb"),
                ("e/with%20space", "e/with space"),
                ("e/caf%C3%A9", "e/café"),
                ("e/100%25", "e/100%"),
                ("e/q%3Fh%23a%26", "e/q?h#a&"),
                ("e/nul%00", "e/nul\u{0}"),
                ("e/a%2F..%2F..%2Fb", "e/a%2F..%2F..%2Fb"),
                ("e/ends-in-colon:", "e/ends-in-colon:"),
                ("e/%3A", "e/:"),
                ("e/%23obj", "e/#obj"),
            ];
            for (i, (wire, _)) in cases.iter().enumerate() {
                let data = format!("object {i}");
                let (status, body) = put(app, wire, data.as_bytes()).await;
                assert_eq!(status, StatusCode::OK, "{} {wire}: {body}", fx.name);
            }
            for (i, (wire, _)) in cases.iter().enumerate() {
                let data = format!("object {i}");
                assert_eq!(get(app, wire).await, (StatusCode::OK, data.into_bytes()));
            }
            // a%2Fb is its own key, not a/b
            assert_eq!(get(app, "e/a/b").await.0, StatusCode::NOT_FOUND);
            let body = list(app, "?prefix=e/").await;
            let mut keys = listed_keys(&body);
            keys.sort();
            let mut expected: Vec<&str> = cases.iter().map(|(_, shown)| *shown).collect();
            expected.sort();
            assert_eq!(keys, expected, "{}", fx.name);
            // nothing escaped the root, and every object is one file directly under e/
            if let Some(dir) = &fx.dir {
                let names = files(dir.path());
                assert_eq!(names.len(), cases.len());
                assert!(names
                    .iter()
                    .all(|n| n.starts_with("e/") && n[2..].find('/').is_none()));
            }
            for (wire, _) in cases {
                assert_eq!(delete(app, wire).await, StatusCode::NO_CONTENT);
            }
            assert!(listed_keys(&list(app, "").await).is_empty());
        }
    }

    #[actix_web::test]
    async fn no_temp_file_is_visible_after_put() {
        for fx in fixtures("http_no_temp", 1 << 20).await {
            let app = &fx.app;
            for i in 0..5 {
                put(app, "t/obj", format!("v{i}").as_bytes()).await;
            }
            if let Some(dir) = &fx.dir {
                assert_eq!(files(dir.path()), ["t/obj"]);
            }
            let body = list(app, "").await;
            assert_eq!(
                body["objects"],
                serde_json::json!([{"Key": "t/obj", "Size": 2}])
            );
            // a temp file's name is never reachable as a key
            assert_eq!(get(app, "t/obj%231").await.0, StatusCode::NOT_FOUND);
        }
    }

    #[actix_web::test]
    async fn too_large_is_413_and_leaves_nothing() {
        for fx in fixtures("http_too_large", 16).await {
            let app = &fx.app;
            let (status, body) = put(app, "big", &[7u8; 17]).await;
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
            assert_eq!(error_code(&body), "payload_too_large");
            assert!(body["error"]["message"].as_str().unwrap().contains("big"));
            assert_eq!(put(app, "fits", &[7u8; 16]).await.0, StatusCode::OK);
            assert_eq!(listed_keys(&list(app, "").await), ["fits"], "{}", fx.name);
            if let Some(dir) = &fx.dir {
                assert_eq!(files(dir.path()), ["fits"]);
            }
        }
    }

    /// `a` and `a/b` are both objects, on every backend (S3 holds any such set; on local disk
    /// see the names of `local.rs`).
    #[actix_web::test]
    async fn keys_that_are_prefixes_of_each_other_are_all_stored() {
        for fx in fixtures("http_prefix_keys", 1 << 20).await {
            let app = &fx.app;
            for (k, v) in [("a/b", "1"), ("a", "2"), ("a/b/c", "3"), ("p:", "4")] {
                let (status, body) = put(app, k, v.as_bytes()).await;
                assert_eq!(status, StatusCode::OK, "{} put {k}: {body}", fx.name);
            }
            // PUT p/child, DELETE p/child, PUT p
            assert_eq!(put(app, "p/child", b"5").await.0, StatusCode::OK);
            assert_eq!(delete(app, "p/child").await, StatusCode::NO_CONTENT);
            assert_eq!(put(app, "p", b"6").await.0, StatusCode::OK);
            for (k, v) in [
                ("a/b", "1"),
                ("a", "2"),
                ("a/b/c", "3"),
                ("p:", "4"),
                ("p", "6"),
            ] {
                assert_eq!(
                    get(app, k).await,
                    (StatusCode::OK, v.as_bytes().to_vec()),
                    "{} get {k}",
                    fx.name
                );
            }
            assert_eq!(
                listed_keys(&list(app, "").await),
                ["a", "a/b", "a/b/c", "p", "p:"]
            );
        }
    }

    #[actix_web::test]
    async fn health_unknown_routes_and_methods() {
        for fx in fixtures("http_routes", 1 << 20).await {
            let app = &fx.app;
            let (status, body) = call(app, TestRequest::get().uri("/health")).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                serde_json::from_slice::<Value>(&body).unwrap(),
                serde_json::json!({"status": "ok"})
            );
            let (status, body) = call(app, TestRequest::get().uri("/nope")).await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            assert_eq!(
                error_code(&serde_json::from_slice(&body).unwrap()),
                "not_found"
            );
            let (status, body) = call(app, TestRequest::post().uri("/storage/put/x")).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(
                error_code(&serde_json::from_slice(&body).unwrap()),
                "method_not_allowed"
            );
            let (status, _) = call(app, TestRequest::get().uri("/storage/list?prefix=%FF")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
        }
    }
}
