//! `/vectors/index`: create, list, describe, delete and flush indexes.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use vectord_actors::distance::Metric;
use vectord_actors::index::IndexParams;
use vectord_actors::messages::Flush;
use vectord_actors::registry::IndexHandle;

use super::errors::ApiError;
use super::{body, AppState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateIndex {
    name: String,
    dim: usize,
    distance: String,
    m: Option<usize>,
    ef_construction: Option<usize>,
    ef_search: Option<usize>,
}

async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    state.check_ready()?;
    let bytes = body::read(&req, payload, state.max_body_bytes).await?;
    let create: CreateIndex = body::json(&bytes)?;
    let distance = Metric::parse(&create.distance).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_distance",
            format!(
                "distance {:?} is not one of \"cosine\", \"l2\", \"ip\"",
                create.distance
            ),
        )
    })?;
    let d = state.defaults;
    let params = IndexParams {
        name: create.name,
        dim: create.dim,
        distance,
        m: create.m.unwrap_or(d.m),
        ef_construction: create.ef_construction.unwrap_or(d.ef_construction),
        ef_search: create.ef_search.unwrap_or(d.ef_search),
    };
    let handle = state.registry.create(params)?;
    Ok(HttpResponse::Created().json(info(&state, &handle)))
}

async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.check_ready()?;
    let indexes: Vec<Value> = state
        .registry
        .list()
        .iter()
        .map(|h| info(&state, h))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "indexes": indexes })))
}

async fn describe(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let handle = state.index(&name)?;
    Ok(HttpResponse::Ok().json(info(&state, &handle)))
}

async fn delete(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.check_ready()?;
    state.registry.delete(&name).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn flush(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let handle = state.index(&name)?;
    let persisted = match &state.persister {
        None => false,
        Some(p) => p
            .send(Flush {
                name: handle.name.clone(),
                generation: handle.generation,
            })
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    format!("persister unavailable: {e}"),
                )
            })??,
    };
    Ok(HttpResponse::Ok().json(json!({ "persisted": persisted })))
}

/// The index info of API.md, plus sizes, background indexing, and the saves (when the
/// index was last stored, since when changes wait, and the last save error if saves fail).
fn info(state: &AppState, handle: &IndexHandle) -> Value {
    let p = handle.index.params();
    let stats = handle.index.stats();
    let mut v = json!({
        "name": p.name,
        "dim": p.dim,
        "distance": p.distance.as_str(),
        "m": p.m,
        "ef_construction": p.ef_construction,
        "ef_search": p.ef_search,
        "count": stats.count,
        "tombstones": stats.tombstones,
        "memory_bytes_estimate": stats.memory_bytes,
        "sealed_segments": stats.sealed_segments,
        "unsealed_count": stats.unsealed_points,
        "indexing": handle.index.indexing(),
        "persistence": if state.persister.is_some() { "storaged" } else { "ephemeral" },
    });
    if let Some(saves) = state.saves.as_ref().and_then(|s| s.get(&handle.name)) {
        let epoch = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        if let Some(t) = saves.last_save {
            v["last_save_at"] = json!(epoch(t));
        }
        if let Some(t) = saves.unsaved_since {
            v["unsaved_for_ms"] = json!(t.elapsed().as_millis() as u64);
        }
        if let Some(e) = saves.last_error {
            v["last_save_error"] = json!(e);
        }
    }
    v
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/vectors/index", web::post().to(create))
        .route("/vectors/index", web::get().to(list))
        .route("/vectors/index/{name}", web::get().to(describe))
        .route("/vectors/index/{name}", web::delete().to(delete))
        .route("/vectors/index/{name}/flush", web::post().to(flush));
}
