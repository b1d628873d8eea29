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
        .body(state.metrics.render(&state.registry))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready))
        .route("/metrics", web::get().to(metrics));
}

/// Middleware: one debug line per request, and the status counters for `/metrics`.
pub async fn log_request(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.path().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    let status = res.status().as_u16();
    if let Some(state) = state {
        state.metrics.observe_request(status);
    }
    log::debug!(
        "{method} {path} {status} {} us",
        started.elapsed().as_micros()
    );
    Ok(res)
}
