//! `/health`, `/ready` and `/metrics`: the routes an operator and a supervisor use. They
//! never wait on an index, so they answer at once even while indexes are busy.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::AppState;

async fn health(state: web::Data<AppState>) -> HttpResponse {
    let failures: Vec<Value> = state
        .registry
        .failures()
        .into_iter()
        .map(|f| json!({ "name": f.name, "key": f.key, "error": f.error, "retrying": f.retrying }))
        .collect();
    let mut body = json!({
        "status": "ok",
        "indexes": state.registry.len(),
        "persistence": if state.persister.is_some() { "storaged" } else { "ephemeral" },
        "ready": state.ready.load(Ordering::Acquire),
    });
    if !failures.is_empty() {
        body["failed_indexes"] = Value::Array(failures);
    }
    // Indexes whose saves fail: what is in memory is not stored (see the index info).
    let failing: Vec<Value> = state
        .saves
        .as_ref()
        .map(|s| s.all())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, saves)| {
            let error = saves.last_error?;
            let since = saves
                .failing_since
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs());
            Some(json!({ "name": name, "error": error, "failing_since": since }))
        })
        .collect();
    if !failing.is_empty() {
        body["save_errors"] = Value::Array(failing);
    }
    let warnings: Vec<Value> = state
        .registry
        .load_warnings()
        .into_iter()
        .map(|(name, warning)| json!({ "name": name, "warning": warning }))
        .collect();
    if !warnings.is_empty() {
        body["load_warnings"] = Value::Array(warnings);
    }
    HttpResponse::Ok().json(body)
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if state.ready.load(Ordering::Acquire) {
        HttpResponse::Ok().json(json!({ "ready": true }))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({
            "ready": false,
            "error": { "code": "not_ready", "message": "loading persisted indexes" }
        }))
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(super::metrics::render(&state.registry))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready))
        .route("/metrics", web::get().to(metrics));
}

/// Middleware: one debug line per request, and the request metrics (by route pattern, so
/// that index names and item ids do not become label values).
pub async fn log_request(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.path().to_string();
    let res = next.call(req).await?;
    let status = res.status().as_u16();
    let took = started.elapsed();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let route = format!("{method} {route}");
    let status_label = status.to_string();
    let labels = [route.as_str(), status_label.as_str()];
    let m = vectord_actors::metrics::metrics();
    m.requests.with_label_values(&labels).inc();
    m.request_seconds
        .with_label_values(&labels)
        .observe(took.as_secs_f64());
    log::debug!("{method} {path} {status} {} us", took.as_micros());
    Ok(res)
}
