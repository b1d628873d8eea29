//! Items chosen by ids or by filter: `POST /vectors/index/{name}/get` (many items at once,
//! or the whole index page by page), `.../count` and `.../delete` (as one change).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use vectord_actors::filter::Filter;
use vectord_actors::index::{Extras, Item};
use vectord_actors::index_actor::DeleteItems;
use vectord_actors::params::check_addressable_id;

use super::errors::ApiError;
use super::schema::{ErrorBody, VectorEncoding, VectorOut};
use super::{body, AppState};

/// Items in a page when `limit` is not given, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

/// What to return of each item besides its id.
#[derive(Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Include {
    Metadata,
    Vector,
    Document,
}

/// Items by ids and/or filter. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"filter": {"lang": "en"}, "limit": 2, "include": ["metadata", "vector"]}))]
pub struct GetRequest {
    /// The items to read, at most `vectord.max_batch_items`; answered in this order, each
    /// once, ids that are not there left out. Without `ids`: every item, page by page.
    ids: Option<Vec<String>>,
    /// Only the items that pass it (see the search's `filter`).
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
    /// Items per page, 1-10,000 (default 100); with `ids`, at most this many of them.
    #[serde(default, deserialize_with = "body::whole_opt")]
    #[schema(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
    /// Where the page starts: the previous page's `next_cursor`. Not with `ids`.
    cursor: Option<String>,
    /// What to return of each item besides its id: `metadata`, `vector`, `document`
    /// (default `["metadata"]`).
    include: Option<Vec<Include>>,
    /// How vectors are written: `float` (JSON numbers, the default) or `base64` (of the
    /// little-endian f32 values).
    #[serde(default)]
    vector_encoding: VectorEncoding,
}

/// Items that pass a filter (all of them without one). Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"filter": {"year": {"$gte": 2021}}}))]
pub struct CountRequest {
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
}

/// Items to delete: those of `ids` (all when absent) that pass `filter` (all when
/// absent); one of the two at least. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"ids": ["a", "b"]}))]
pub struct DeleteRequest {
    /// At most `vectord.max_batch_items`; ids that are not there are no error.
    ids: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
}

/// One item, with what `include` asked for.
#[derive(Debug, Serialize, ToSchema)]
pub struct GotItem {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// As stored (unit length under cosine): numbers written with the fewest digits that
    /// read back as the same f32, or base64 as the request's `vector_encoding` says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<VectorOut>,
    /// With `"document"` in `include`: the item's document (`null` when it has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub document: Option<Option<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [{"id": "a", "metadata": {"lang": "en"}}], "next_cursor": "a"}))]
pub struct GetResponse {
    pub items: Vec<GotItem>,
    /// Where the next page starts (send it as `cursor`); null on the last page, and with
    /// `ids`.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"count": 3}))]
pub struct CountResponse {
    pub count: usize,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"deleted": 2, "count": 40}))]
pub struct DeleteResponse {
    /// Items deleted.
    pub deleted: usize,
    /// Live items after the delete.
    pub count: usize,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/vectors/index/{name}/get", "POST").route(web::post().to(get_items)),
    )
    .service(
        super::resource("/vectors/index/{name}/count", "POST").route(web::post().to(count_items)),
    )
    .service(
        super::resource("/vectors/index/{name}/delete", "POST").route(web::post().to(delete_items)),
    );
}

/// Many items at once, by ids and/or filter, or the whole index page by page (in id
/// order: a page holds the smallest ids after `cursor`).
#[utoipa::path(post, path = "/vectors/index/{name}/get", tag = "items", request_body = GetRequest,
    params(("name" = String, Path, description = "index name")),
    responses(
        (status = 200, body = GetResponse),
        (status = 400, description = "invalid filter, limit, cursor or include", body = ErrorBody),
        (status = 404, description = "no such index", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 503, description = "still loading (`not_ready`)", body = ErrorBody),
    ))]
pub async fn get_items(
    state: web::Data<AppState>,
    name: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (handle, request): (_, GetRequest) = state.index_and_body(&name, &req, payload).await?;
    let filter = filter(&state, request.filter.as_ref())?;
    let encoding = request.vector_encoding;
    let include = request.include.unwrap_or_else(|| vec![Include::Metadata]);
    let metadata = include.contains(&Include::Metadata);
    let extras = Extras {
        vector: include.contains(&Include::Vector),
        document: include.contains(&Include::Document),
    };
    let index = handle.index.clone();
    let (items, next) = match request.ids {
        Some(ids) => {
            if request.cursor.is_some() {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    "cursor pages through the whole index; it does not go with ids",
                ));
            }
            check_ids(&state, &ids)?;
            let limit = check_limit(request.limit.unwrap_or(MAX_LIMIT))?;
            let items = web::block(move || index.get_many(&ids, filter.as_ref(), extras)).await;
            let mut items = items.map_err(blocking_failed)?;
            items.truncate(limit);
            (items, None)
        }
        None => {
            let limit = check_limit(request.limit.unwrap_or(DEFAULT_LIMIT))?;
            let cursor = request.cursor;
            let page =
                web::block(move || index.page(filter.as_ref(), cursor.as_deref(), limit, extras))
                    .await
                    .map_err(blocking_failed)?;
            (page.items, page.next)
        }
    };
    Ok(HttpResponse::Ok().json(GetResponse {
        items: items
            .into_iter()
            .map(|item| got(item, metadata, extras, encoding))
            .collect(),
        next_cursor: next,
    }))
}

/// How many items pass a filter (all of them without one).
#[utoipa::path(post, path = "/vectors/index/{name}/count", tag = "items", request_body = CountRequest,
    params(("name" = String, Path, description = "index name")),
    responses(
        (status = 200, body = CountResponse),
        (status = 400, description = "invalid filter", body = ErrorBody),
        (status = 404, description = "no such index", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 503, description = "still loading (`not_ready`)", body = ErrorBody),
    ))]
pub async fn count_items(
    state: web::Data<AppState>,
    name: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (handle, request): (_, CountRequest) = state.index_and_body(&name, &req, payload).await?;
    let count = match filter(&state, request.filter.as_ref())? {
        None => handle.index.stats().count,
        Some(filter) => {
            let index = handle.index.clone();
            web::block(move || index.count_matching(&filter))
                .await
                .map_err(blocking_failed)?
        }
    };
    Ok(HttpResponse::Ok().json(CountResponse { count }))
}

/// Deletes the items of `ids` that pass `filter`, as one change: a search sees all of them
/// gone or none, and a restart keeps all or none.
#[utoipa::path(post, path = "/vectors/index/{name}/delete", tag = "items", request_body = DeleteRequest,
    params(("name" = String, Path, description = "index name")),
    responses(
        (status = 200, body = DeleteResponse),
        (status = 400, description = "no ids and no filter (`nothing_selected`), too many ids or an invalid filter", body = ErrorBody),
        (status = 404, description = "no such index", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 503, description = "too many writes wait for the index (`busy`), or still loading", body = ErrorBody),
    ))]
pub async fn delete_items(
    state: web::Data<AppState>,
    name: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (handle, request): (_, DeleteRequest) = state.index_and_body(&name, &req, payload).await?;
    let filter = filter(&state, request.filter.as_ref())?;
    if let Some(ids) = &request.ids {
        check_ids(&state, ids)?;
    }
    if request.ids.is_none() && filter.is_none() {
        return Err(ApiError::bad_request(
            "nothing_selected",
            "delete needs ids or a filter that is not empty (to delete every item, delete the index)",
        ));
    }
    let _queued = state.write_slot(&handle)?;
    let done = handle
        .actor
        .send(DeleteItems {
            ids: request.ids,
            filter,
        })
        .await??;
    Ok(HttpResponse::Ok().json(DeleteResponse {
        deleted: done.deleted,
        count: done.count,
    }))
}

/// The request's filter, read; none when absent or empty.
fn filter(state: &AppState, value: Option<&Value>) -> Result<Option<Filter>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let filter = Filter::parse(value, "filter", state.limits.filter())?;
    Ok((!filter.is_empty()).then_some(filter))
}

fn check_limit(limit: usize) -> Result<usize, ApiError> {
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit {limit} is not in 1-{MAX_LIMIT}"),
        ));
    }
    Ok(limit)
}

fn check_ids(state: &AppState, ids: &[String]) -> Result<(), ApiError> {
    let max = state.limits.max_batch_items;
    if ids.len() > max {
        return Err(ApiError::bad_request(
            "too_many_items",
            format!(
                "ids holds {} ids, more than the limit of {max} (vectord.max_batch_items)",
                ids.len()
            ),
        ));
    }
    for (i, id) in ids.iter().enumerate() {
        check_addressable_id(id, &format!("ids[{i}]"))?;
    }
    Ok(())
}

/// An item as answered: its vector only when asked for, written in `vector`'s encoding.
fn got(item: Item, metadata: bool, extras: Extras, encoding: VectorEncoding) -> GotItem {
    GotItem {
        id: item.id,
        metadata: metadata.then_some(item.metadata),
        vector: extras.vector.then(|| VectorOut::new(item.vector, encoding)),
        document: extras.document.then_some(item.document),
    }
}

fn blocking_failed(e: actix_web::error::BlockingError) -> ApiError {
    log::error!("reading items failed: {e}");
    ApiError::new(
        actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "reading items failed",
    )
}
