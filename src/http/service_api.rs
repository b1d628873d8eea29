//! `/health`, `/ready` and `/metrics`: the routes an operator and a supervisor use. They
//! never wait on an index, so they answer at once even while indexes are busy.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};

use super::schema::{
    ErrorDetail, FailedIndex, Health, LoadWarning, Ready, ReplicaIndex, SaveErrorInfo,
};
use super::AppState;

/// Whether vectord is up, and what it holds; answers at once, whatever the indexes do.
#[utoipa::path(get, path = "/health", tag = "service",
    responses((status = 200, body = Health)))]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let failed_indexes = state
        .registry
        .failures()
        .into_iter()
        .map(|f| FailedIndex {
            name: f.name,
            key: f.key,
            error: f.error,
            retrying: f.retrying,
        })
        .collect();
    // Indexes whose saves fail: what is in memory is not stored (see the index info).
    let save_errors = state
        .saves
        .as_ref()
        .map(|s| s.all())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, saves)| {
            Some(SaveErrorInfo {
                name,
                error: saves.last_error?,
                failing_since: saves
                    .failing_since
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs()),
            })
        })
        .collect();
    let load_warnings = state
        .registry
        .load_warnings()
        .into_iter()
        .map(|(name, warning)| LoadWarning { name, warning })
        .collect();
    let replicated = state
        .following
        .as_ref()
        .map(|f| f.all())
        .unwrap_or_default()
        .into_iter()
        .map(|(name, f)| ReplicaIndex {
            name,
            applied_lsn: f.applied_lsn,
            lag_ms: f.lag_ms(),
        })
        .collect();
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
        indexes: state.registry.len(),
        persistence: super::index_api::persistence(&state).into(),
        role: if state.following.is_some() {
            "replica"
        } else {
            "primary"
        }
        .into(),
        ready: state.ready.load(Ordering::Acquire),
        replicated,
        failed_indexes,
        load_warnings,
        save_errors,
    })
}

/// 200 once the start-up load of persisted indexes is done, 503 before.
#[utoipa::path(get, path = "/ready", tag = "service",
    responses(
        (status = 200, body = Ready),
        (status = 503, description = "still loading", body = Ready),
    ))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if state.ready.load(Ordering::Acquire) {
        HttpResponse::Ok().json(Ready {
            ready: true,
            error: None,
        })
    } else {
        HttpResponse::ServiceUnavailable().json(Ready {
            ready: false,
            error: Some(ErrorDetail {
                code: "not_ready".into(),
                message: "loading persisted indexes".into(),
            }),
        })
    }
}

/// The metrics, in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(super::metrics::render(
            &state.registry,
            state.following.as_deref(),
        ))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // HEAD too, for load balancers and uptime checks that probe with it.
    cfg.service(
        super::resource("/health", "GET, HEAD")
            .route(web::get().to(health))
            .route(web::head().to(health)),
    )
    .service(
        super::resource("/ready", "GET, HEAD")
            .route(web::get().to(ready))
            .route(web::head().to(ready)),
    )
    .service(super::resource("/metrics", "GET").route(web::get().to(metrics)));
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
