//! `/vectors/index`: create, list, describe, delete and flush indexes.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;
use vectord_actors::distance::Metric;
use vectord_actors::index::{Fields, IndexParams};
use vectord_actors::index_actor::DeclareFields;
use vectord_actors::params::{parse_fields, Quantization};
use vectord_actors::persist::persister::Flush;
use vectord_actors::registry::IndexHandle;

use super::errors::ApiError;
use super::schema::{ErrorBody, FieldsResponse, FlushResponse, IndexInfo, IndexList};
use super::{body, AppState};

/// A new index. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "docs", "dim": 384, "distance": "cosine", "fields": {"lang": "keyword", "year": "integer"}}))]
pub struct CreateIndex {
    /// 1-128 characters of `[A-Za-z0-9._-]`, not starting with `.`.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]*$"
    )]
    pub name: String,
    /// 1-4096.
    #[serde(deserialize_with = "body::whole")]
    #[schema(minimum = 1, maximum = 4096)]
    pub dim: usize,
    /// `cosine` (1 - cos), `l2` (Euclidean, not squared) or `ip` (1 - dot).
    #[schema(pattern = "^(cosine|l2|ip)$")]
    pub distance: String,
    /// 2-128 (default 16).
    #[serde(default, deserialize_with = "body::whole_opt")]
    #[schema(minimum = 2, maximum = 128)]
    pub m: Option<usize>,
    /// 1-10000 (default 200).
    #[serde(default, deserialize_with = "body::whole_opt")]
    #[schema(minimum = 1, maximum = 10000)]
    pub ef_construction: Option<usize>,
    /// 1-10000 (default 64).
    #[serde(default, deserialize_with = "body::whole_opt")]
    #[schema(minimum = 1, maximum = 10000)]
    pub ef_search: Option<usize>,
    /// Metadata fields to index, by name (at most 64, names up to 1,024 bytes). Filters
    /// on them are answered from the indexes.
    #[schema(value_type = Option<BTreeMap<String, FieldKindName>>)]
    pub fields: Option<serde_json::Value>,
    /// `{"type": "int8", "quantile": 0.99}`: sealed segments keep one byte per value, walk
    /// their graphs on those and rescore the best candidates with the f32 vectors (default:
    /// none). `quantile` (0.5-1, default 0.99) is the share of values the byte range covers.
    #[schema(value_type = Option<QuantizationShape>)]
    pub quantization: Option<serde_json::Value>,
    /// Sealed segments' f32 vectors live in files under `vectord.cache_dir`, memory-mapped,
    /// instead of in RAM (default false). With int8 quantization, searches touch them only
    /// to rescore.
    #[serde(default)]
    pub on_disk: Option<bool>,
}

/// What a field index holds: `keyword` (strings, and the strings of arrays), `integer`
/// and `float` (numbers), `bool`.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // named in the OpenAPI document only: `params::parse_fields` reads the kinds
pub enum FieldKindName {
    Keyword,
    Integer,
    Float,
    Bool,
}

/// How an index compresses its vectors for searches (`params::Quantization` reads it).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // named in the OpenAPI document only
pub struct QuantizationShape {
    /// `int8`: one byte per value.
    #[serde(rename = "type")]
    kind: QuantizationType,
    /// Share of the values the byte range covers (default 0.99).
    #[schema(minimum = 0.5, maximum = 1.0)]
    quantile: Option<f64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // named in the OpenAPI document only
pub enum QuantizationType {
    Int8,
}

/// More fields to index. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"fields": {"price": "float", "tags": "keyword"}}))]
pub struct DeclareFieldsRequest {
    /// By name (at most 64 in all). A field already indexed keeps its kind (the same
    /// kind again is no change; another is 400 `invalid_fields`).
    #[schema(value_type = BTreeMap<String, FieldKindName>)]
    pub fields: serde_json::Value,
}

/// Creates an index.
#[utoipa::path(post, path = "/vectors/index", tag = "indexes", request_body = CreateIndex,
    responses(
        (status = 201, description = "created", body = IndexInfo),
        (status = 400, description = "invalid parameters or body", body = ErrorBody),
        (status = 409, description = "the name is taken (`index_exists`), being deleted (`index_deleting`), held by an index that failed to load (`index_load_failed`), or the index limit is reached (`too_many_indexes`)", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 503, description = "still loading (`not_ready`)", body = ErrorBody),
    ))]
pub async fn create(
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
    let fields = match &create.fields {
        Some(value) => parse_fields(value)?,
        None => Fields::new(),
    };
    let d = state.defaults;
    let params = IndexParams {
        name: create.name,
        dim: create.dim,
        distance,
        m: create.m.unwrap_or(d.m),
        ef_construction: create.ef_construction.unwrap_or(d.ef_construction),
        ef_search: create.ef_search.unwrap_or(d.ef_search),
        quantization: create
            .quantization
            .filter(|q| !q.is_null())
            .map(|mut q| {
                // `"quantile": null` is the default, as the OpenAPI document allows.
                if let Some(o) = q.as_object_mut() {
                    if o.get("quantile").is_some_and(serde_json::Value::is_null) {
                        o.remove("quantile");
                    }
                }
                serde_json::from_value::<Quantization>(q).map_err(|e| {
                    ApiError::bad_request(
                        "invalid_quantization",
                        format!(
                            "quantization: {e} (expected {{\"type\": \"int8\", \"quantile\": 0.5-1}})"
                        ),
                    )
                })
            })
            .transpose()?,
        on_disk: create.on_disk.unwrap_or(false),
    };
    let handle = state.registry.create(params, fields)?;
    Ok(HttpResponse::Created().json(info(&state, &handle)))
}

/// Every index, sorted by name.
#[utoipa::path(get, path = "/vectors/index", tag = "indexes",
    responses(
        (status = 200, body = IndexList),
        (status = 503, description = "still loading (`not_ready`)", body = ErrorBody),
    ))]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.check_ready()?;
    let indexes = state
        .registry
        .list()
        .iter()
        .map(|h| info(&state, h))
        .collect();
    Ok(HttpResponse::Ok().json(IndexList { indexes }))
}

/// One index.
#[utoipa::path(get, path = "/vectors/index/{name}", tag = "indexes",
    params(("name" = String, Path, description = "index name")),
    responses(
        (status = 200, body = IndexInfo),
        (status = 404, description = "no such index", body = ErrorBody),
        (status = 503, description = "still loading (`not_ready`)", body = ErrorBody),
    ))]
pub async fn describe(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let handle = state.index(&name)?;
    Ok(HttpResponse::Ok().json(info(&state, &handle)))
}

/// Deletes an index and its stored copy.
#[utoipa::path(delete, path = "/vectors/index/{name}", tag = "indexes",
    params(("name" = String, Path, description = "index name")),
    responses(
        (status = 204, description = "deleted, stored copy removed: the index never comes back"),
        (status = 404, description = "no such index", body = ErrorBody),
        (status = 503, description = "removing the stored copy failed (`storage_unavailable`; retried in the background) or still loading (`not_ready`)", body = ErrorBody),
    ))]
pub async fn delete(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.check_ready()?;
    state.registry.delete(&name).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Indexes more metadata fields. Segments already sealed are indexed in the background
/// (`indexing` is true meanwhile); filters work all along, by reading metadata until then.
#[utoipa::path(post, path = "/vectors/index/{name}/fields", tag = "indexes",
    request_body = DeclareFieldsRequest,
    params(("name" = String, Path, description = "index name")),
    responses(
        (status = 200, description = "every field the index now indexes", body = FieldsResponse),
        (status = 400, description = "invalid or conflicting fields (`invalid_fields`) or body", body = ErrorBody),
        (status = 404, description = "no such index", body = ErrorBody),
        (status = 503, description = "still loading (`not_ready`)", body = ErrorBody),
    ))]
pub async fn declare_fields(
    state: web::Data<AppState>,
    name: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (handle, request): (_, DeclareFieldsRequest) =
        state.index_and_body(&name, &req, payload).await?;
    let fields = parse_fields(&request.fields)?;
    let _queued = state.write_slot(&handle)?;
    let all = handle.actor.send(DeclareFields { fields }).await??;
    Ok(HttpResponse::Ok().json(FieldsResponse {
        fields: field_kinds(&all),
    }))
}

/// Each field's kind as the API writes it.
fn field_kinds(fields: &Fields) -> BTreeMap<String, String> {
    fields
        .iter()
        .map(|(name, kind)| (name.clone(), kind.as_str().to_string()))
        .collect()
}

/// Waits until every change made to the index before this request is stored.
#[utoipa::path(post, path = "/vectors/index/{name}/flush", tag = "indexes",
    params(("name" = String, Path, description = "index name")),
    responses(
        (status = 200, body = FlushResponse),
        (status = 404, description = "no such index", body = ErrorBody),
        (status = 503, description = "the save failed (`storage_unavailable`) or still loading (`not_ready`)", body = ErrorBody),
    ))]
pub async fn flush(
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
    Ok(HttpResponse::Ok().json(FlushResponse { persisted }))
}

/// The index info of docs/API.md, plus sizes, background indexing, and the saves (when the
/// index was last stored, since when changes wait, and the last save error if saves fail).
fn info(state: &AppState, handle: &IndexHandle) -> IndexInfo {
    let p = handle.index.params();
    let stats = handle.index.stats();
    let saves = state.saves.as_ref().and_then(|s| s.get(&handle.name));
    let epoch = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    IndexInfo {
        name: p.name.clone(),
        dim: p.dim,
        distance: p.distance.as_str().to_string(),
        m: p.m,
        ef_construction: p.ef_construction,
        ef_search: p.ef_search,
        quantization: p
            .quantization
            .map(|q| serde_json::json!({"type": "int8", "quantile": q.quantile})),
        rescoring: p.quantization.map(|_| {
            serde_json::json!({"rescore": true, "oversampling": vectord_actors::index::DEFAULT_OVERSAMPLING})
        }),
        fields: field_kinds(&handle.index.fields()),
        count: stats.count,
        tombstones: stats.tombstones,
        memory_bytes_estimate: stats.memory_bytes,
        on_disk: p.on_disk,
        disk_bytes: stats.disk_bytes,
        replica: super::replica::info(state, &handle.name),
        sealed_segments: stats.sealed_segments,
        unsealed_count: stats.unsealed_points,
        indexing: handle.index.indexing(),
        persistence: persistence(state).to_string(),
        last_save_at: saves.as_ref().and_then(|s| s.last_save).map(epoch),
        unsaved_for_ms: saves
            .as_ref()
            .and_then(|s| s.unsaved_since)
            .map(|t| t.elapsed().as_millis() as u64),
        last_save_error: saves.and_then(|s| s.last_error),
    }
}

/// `storaged` or `ephemeral` (a replica serves what storaged holds).
pub fn persistence(state: &AppState) -> &'static str {
    if state.persister.is_some() || state.following.is_some() {
        "storaged"
    } else {
        "ephemeral"
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/vectors/index", "GET, POST")
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .service(
        super::resource("/vectors/index/{name}", "GET, DELETE")
            .route(web::get().to(describe))
            .route(web::delete().to(delete)),
    )
    .service(super::resource("/vectors/index/{name}/flush", "POST").route(web::post().to(flush)))
    .service(
        super::resource("/vectors/index/{name}/fields", "POST")
            .route(web::post().to(declare_fields)),
    );
}
