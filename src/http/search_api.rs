//! `/vectors/index/{name}/search`: nearest neighbours, optionally filtered by metadata.
//! Searches run on the blocking pool, at most `search_threads` at once, straight against
//! the index (not through its actor), so they go on while the index takes writes.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::errors::ApiError;
use super::{body, AppState};

/// Searches up to this `ef` (without filter) run on the HTTP worker itself.
const INLINE_MAX_EF: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchRequest {
    #[serde(deserialize_with = "body::f32_vector")]
    vector: Vec<f32>,
    k: usize,
    ef: Option<usize>,
    filter: Option<Map<String, Value>>,
}

#[derive(Serialize)]
struct SearchResponse {
    results: Vec<SearchResult>,
}

#[derive(Serialize)]
struct SearchResult {
    id: String,
    distance: f32,
    metadata: Map<String, Value>,
}

async fn search(
    state: web::Data<AppState>,
    name: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let handle = state.index(&name)?;
    let bytes = body::read(&req, payload, state.max_body_bytes).await?;
    let request: SearchRequest = body::json(&bytes)?;
    let params = handle.index.params();
    let ef = params.check_search(request.k, request.ef)?;
    let query = params.check_vector(request.vector, "vector")?;
    let _permit = state.search_permits.acquire().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "vectord is shutting down",
        )
    })?;
    let index = handle.index.clone();
    let k = request.k;
    let started = std::time::Instant::now();
    let failed = |e: String| {
        log::error!("index {:?}: search failed: {e}", handle.name);
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("search on index {:?} failed", handle.name),
        )
    };
    // A search without filter and of moderate width takes well under a millisecond: it
    // runs right here, on the HTTP worker (a hand-off to the blocking pool and back costs
    // as much as the search itself). Wider or filtered searches, which can take long, go
    // to the blocking pool so that they never hold up other requests on this worker.
    let inline = request.filter.is_none() && ef <= INLINE_MAX_EF;
    let hits = if inline {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            index.search(&query, k, ef, None)
        }))
        .map_err(|_| failed("panicked".into()))?
    } else {
        web::block(move || index.search(&query, k, ef, request.filter.as_ref()))
            .await
            .map_err(|e| failed(e.to_string()))?
    };
    state.metrics.observe_search(started.elapsed());
    let results: Vec<SearchResult> = hits
        .into_iter()
        .map(|h| SearchResult {
            id: h.id,
            distance: h.distance,
            metadata: h.metadata,
        })
        .collect();
    Ok(HttpResponse::Ok().json(SearchResponse { results }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/vectors/index/{name}/search", web::post().to(search));
}
