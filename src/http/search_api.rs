//! `/vectors/index/{name}/search`: nearest neighbours, optionally filtered by metadata.
//! Searches run straight against the index (not through its actor), so they go on while
//! the index takes writes, at most `search_threads` at once: cheap ones on the HTTP worker
//! when the index's lock is free, the others on the blocking pool.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::body::{self, Plain};
use super::errors::ApiError;
use super::schema::{ErrorBody, SearchResponse, SearchResult};
use super::AppState;

/// Searches up to this `ef` (without filter) run on the HTTP worker itself...
const INLINE_MAX_EF: usize = 256;
/// ...when the index has at most this many unsealed points to scan.
const INLINE_MAX_UNSEALED: usize = 4096;

/// A search. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"vector": [1, 0.1, 0, 0], "k": 5, "filter": {"lang": "en"}}))]
pub struct SearchRequest {
    /// The query: `dim` finite numbers.
    #[serde(deserialize_with = "body::f32_vector")]
    #[schema(min_items = 1, max_items = 4096)]
    pub vector: Vec<f32>,
    /// 1-1000.
    #[serde(deserialize_with = "body::whole")]
    #[schema(minimum = 1, maximum = 1000)]
    pub k: usize,
    /// k-10000 (default max(k, the index's ef_search)).
    #[serde(default, deserialize_with = "body::whole_opt")]
    #[schema(minimum = 1, maximum = 10000)]
    pub ef: Option<usize>,
    /// Metadata key -> value; a result matches every pair exactly.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Map<String, Value>>,
}

/// The `k` live items nearest to the query (that match the filter), nearest first.
#[utoipa::path(post, path = "/vectors/index/{name}/search", tag = "search", request_body = SearchRequest,
    params(("name" = String, Path, description = "index name")),
    responses(
        (status = 200, body = SearchResponse),
        (status = 400, description = "invalid query, k, ef or filter", body = ErrorBody),
        (status = 404, description = "no such index", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 503, description = "still loading (`not_ready`)", body = ErrorBody),
    ))]
pub async fn search(
    state: web::Data<AppState>,
    name: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let handle = state.index(&name)?;
    let bytes = body::read(&req, payload, state.max_body_bytes).await?;
    let request = decode(&bytes)?;
    let params = handle.index.params();
    let ef = params.check_search(request.k, request.ef)?;
    if let Some(f) = &request.filter {
        if f.len() > state.limits.max_filter_keys {
            return Err(ApiError::bad_request(
                "too_many_filter_keys",
                format!(
                    "filter has {} keys, more than the limit of {} (vectord.max_filter_keys)",
                    f.len(),
                    state.limits.max_filter_keys
                ),
            ));
        }
    }
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
    let failed = |e: String| {
        log::error!("index {:?}: search failed: {e}", handle.name);
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("search on index {:?} failed", handle.name),
        )
    };
    // A search without filter, of moderate width, over an index with few unsealed points
    // (which are scanned) takes well under a millisecond: it runs right here, on the HTTP
    // worker, if the index's lock is free (a hand-off to the blocking pool and back costs
    // as much as the search itself). Anything else goes to the blocking pool, so that no
    // worker ever waits behind an index's writer or a long search.
    let cheap = request.filter.is_none()
        && ef <= INLINE_MAX_EF
        && index.stats().unsealed_points <= INLINE_MAX_UNSEALED;
    let inline = if cheap {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            vectord_actors::faults::maybe_panic("search", &handle.name);
            index.try_search(&query, k, ef, None)
        }))
        .map_err(|_| failed("panicked".into()))?
    } else {
        None
    };
    let hits = match inline {
        Some(hits) => hits,
        None => {
            let name = handle.name.clone();
            web::block(move || {
                vectord_actors::faults::maybe_panic("search", &name);
                index.search(&query, k, ef, request.filter.as_ref())
            })
            .await
            .map_err(|e| failed(e.to_string()))?
        }
    };
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

/// The search request in `bytes`: the usual shape (vector, k, ef) decoded in one pass,
/// anything else (a filter, an error to explain) by serde.
pub fn decode(bytes: &[u8]) -> Result<SearchRequest, ApiError> {
    if let Some(fields) = body::plain_object(bytes, &["vector", "k", "ef", "filter"]) {
        let (mut vector, mut k, mut ef) = (None, None, None);
        let mut plain = true;
        for (key, value) in fields {
            match (key, value) {
                ("vector", Plain::Numbers(v)) => vector = Some(v),
                ("k", Plain::Whole(n)) => k = Some(n),
                ("ef", Plain::Whole(n)) => ef = Some(n),
                ("ef" | "filter", Plain::Null) => {}
                _ => plain = false,
            }
        }
        if let (true, Some(vector), Some(k)) = (plain, vector, k) {
            return Ok(SearchRequest {
                vector,
                k,
                ef,
                filter: None,
            });
        }
    }
    body::json(bytes)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/vectors/index/{name}/search", "POST").route(web::post().to(search)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(body: &str) -> (Vec<f32>, usize, Option<usize>, bool) {
        let r = decode(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {}", e.message));
        (r.vector, r.k, r.ef, r.filter.is_some())
    }

    fn refused(body: &str) -> String {
        match decode(body.as_bytes()) {
            Ok(_) => panic!("{body} accepted"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn the_one_pass_decoder_agrees_with_serde() {
        // Decoded by the one-pass path.
        assert_eq!(
            parts(r#"{"vector":[1,-2.5,3e2],"k":3}"#),
            (vec![1.0, -2.5, 300.0], 3, None, false)
        );
        assert_eq!(
            parts(" {\n \"k\" : 2 , \"ef\":null, \"vector\" : [ 0.1 ] , \"filter\": null } "),
            (vec![0.1], 2, None, false)
        );
        assert_eq!(
            parts(r#"{"ef":40,"vector":[],"k":1}"#),
            (vec![], 1, Some(40), false)
        );
        // Left to serde, with the same meaning.
        assert_eq!(
            parts(r#"{"vector":[1],"k":2.0,"filter":{"a":1}}"#),
            (vec![1.0], 2, None, true)
        );
        assert_eq!(
            parts(r#"{"vect\u006fr":[1],"k":2}"#),
            (vec![1.0], 2, None, false)
        );
        // Refused either way, with the field named.
        assert!(refused(r#"{"vector":[1],"k":1,"k":2}"#).contains("duplicate field"));
        assert!(refused(r#"{"vector":[1],"k":1,"kk":2}"#).contains("unknown field"));
        assert!(refused(r#"{"vector":[1,],"k":1}"#).contains("vector"));
        assert!(refused(r#"{"vector":[01],"k":1}"#).contains("vector"));
        assert!(refused(r#"{"vector":null,"k":1}"#).contains("vector"));
        assert!(refused(r#"{"vector":[1],"k":-1}"#).contains("k"));
        assert!(refused(r#"{"vector":[1],"k":99999999999999999999999}"#).contains("k"));
        assert!(refused(r#"{"vector":[1]}"#).contains("missing field `k`"));
        assert!(refused(r#"{"vector":[1],"k":1} x"#).contains("trailing"));
        assert!(refused(r#"{"vector":[1],"k":1"#).contains("EOF"));
    }
}
