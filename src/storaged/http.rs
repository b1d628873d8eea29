//! The HTTP face of storaged: routes, key extraction from the raw request path, and the
//! JSON error format of docs/API.md (`{"error":{"code","message"}}`).

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody, SizedStream};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::backend::Backend;
use super::keys::Key;
use super::object::BackendError;

/// What every handler shares.
pub struct State {
    pub store: Arc<Backend>,
    pub max_object_bytes: u64,
    /// When set, every request but `/health` needs `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
}

/// Middleware: refuses requests without the key when `storaged.api_key` is set (401 in
/// the usual error shape); `/health` stays open for supervisors.
pub async fn require_api_key(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let key = req
        .app_data::<web::Data<State>>()
        .and_then(|s| s.api_key.clone())
        .filter(|_| req.path() != "/health");
    if let Some(key) = key {
        if !crate::auth::has_key(req.headers(), &key) {
            let mut resp = error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong API key: send the header Authorization: Bearer <key>",
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return Ok(req.into_response(resp).map_into_right_body());
        }
    }
    next.call(req).await.map(|r| r.map_into_left_body())
}

/// Registers the storaged routes, with JSON errors for unknown routes and methods.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<State>) {
    cfg.app_data(state)
        .app_data(web::QueryConfig::default().error_handler(|err, _req| {
            let message = format!("bad query string: {err}");
            actix_web::error::InternalError::from_response(
                err,
                error(StatusCode::BAD_REQUEST, "bad_request", message),
            )
            .into()
        }))
        .service(
            web::resource("/health")
                .route(web::get().to(health))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/storage/put/{key:.*}")
                .route(web::put().to(put))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/storage/get/{key:.*}")
                .route(web::get().to(get))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/storage/delete/{key:.*}")
                .route(web::delete().to(delete))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/storage/list")
                .route(web::get().to(list))
                .default_service(web::to(method_not_allowed)),
        )
        .default_service(web::to(not_found));
}

/// The JSON error body of docs/API.md.
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "error": {"code": code, "message": message.into()}
    }))
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// The key of a `/storage/<op>/<key...>` request, from the raw (undecoded) path, so that an
/// escaped `/` stays inside its segment.
fn key_of(req: &HttpRequest) -> Result<Key, Box<HttpResponse>> {
    let raw = req.uri().path();
    // The route matched, so the first two segments are `storage` and the operation.
    let tail = raw
        .strip_prefix('/')
        .and_then(|p| p.splitn(3, '/').nth(2))
        .unwrap_or("");
    Key::from_wire(tail).map_err(|e| {
        log::warn!("storaged: {} {raw}: {e}", req.method());
        Box::new(error(StatusCode::BAD_REQUEST, "bad_key", e.to_string()))
    })
}

/// The response for a failed store operation on `key`.
fn backend_error(op: &str, key: &Key, err: BackendError) -> HttpResponse {
    let message = format!("{op} {key:?}: {err}", key = key.display());
    match err {
        BackendError::NotFound => {
            log::debug!("storaged: {message}");
            error(StatusCode::NOT_FOUND, "not_found", message)
        }
        BackendError::TooLarge { .. } => {
            log::warn!("storaged: {message}");
            error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
        }
        BackendError::Body(_) => {
            log::warn!("storaged: {message}");
            error(StatusCode::BAD_REQUEST, "bad_body", message)
        }
        BackendError::Storage(_) => {
            log::warn!("storaged: {message}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "storage_error", message)
        }
    }
}

async fn put(req: HttpRequest, body: web::Payload, state: web::Data<State>) -> HttpResponse {
    let key = match key_of(&req) {
        Ok(k) => k,
        Err(resp) => return *resp,
    };
    let limit = state.max_object_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return backend_error("put", &key, BackendError::TooLarge { limit });
    }
    match state.store.put(&key, body, limit).await {
        Ok(size) => {
            log::debug!("storaged: put {:?} ({size} bytes)", key.display());
            HttpResponse::Ok().json(json!({"key": key.display(), "size": size}))
        }
        Err(e) => backend_error("put", &key, e),
    }
}

async fn get(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let key = match key_of(&req) {
        Ok(k) => k,
        Err(resp) => return *resp,
    };
    match state.store.get(&key).await {
        Ok(obj) => {
            let shown = key.display();
            let body = futures::StreamExt::map(obj.body, move |chunk| {
                chunk.inspect_err(|e| log::warn!("storaged: get {shown:?}: read failed: {e}"))
            });
            HttpResponse::Ok()
                .content_type("application/octet-stream")
                .body(SizedStream::new(obj.size, body))
        }
        Err(e) => backend_error("get", &key, e),
    }
}

async fn delete(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let key = match key_of(&req) {
        Ok(k) => k,
        Err(resp) => return *resp,
    };
    match state.store.delete(&key).await {
        Ok(()) => {
            log::debug!("storaged: delete {:?}", key.display());
            HttpResponse::NoContent().finish()
        }
        Err(e) => backend_error("delete", &key, e),
    }
}

/// The `prefix` parameter of a list request, decoded; an error names what is wrong with it.
fn prefix_of(query: &str) -> Result<String, String> {
    let mut prefix = String::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "prefix" {
            continue;
        }
        let spaced = value.replace('+', " ");
        let bytes: Vec<u8> = percent_encoding::percent_decode_str(&spaced).collect();
        prefix = String::from_utf8(bytes)
            .map_err(|_| format!("prefix {value:?} is not UTF-8 once decoded"))?;
    }
    Ok(prefix)
}

async fn list(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let prefix = match prefix_of(req.query_string()) {
        Ok(p) => p,
        Err(message) => return error(StatusCode::BAD_REQUEST, "bad_prefix", message),
    };
    match state.store.list(&prefix).await {
        Ok(objects) => {
            let objects: Vec<_> = objects
                .into_iter()
                .map(|o| json!({"Key": o.key, "Size": o.size}))
                .collect();
            HttpResponse::Ok().json(json!({"prefix": prefix, "objects": objects}))
        }
        Err(e) => {
            let message = format!("list {prefix:?}: {e}");
            log::warn!("storaged: {message}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "storage_error", message)
        }
    }
}
