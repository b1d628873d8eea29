//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' annotations and
//! the body types (`utoipa`), served at `GET /openapi.json`. `tests/openapi.rs` checks that
//! the document and the server agree.

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{index_api, item_api, schema, search_api, select_api, service_api};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vectord",
        description = "Named HNSW indexes over HTTP: create, add (upsert), search with metadata filters, delete; persisted to storaged. Every error is {\"error\": {\"code\", \"message\"}}. When an API key is configured (vectord.api_key), every route but /health, /ready, /openapi.json and /ui (and /metrics with vectord.metrics_public) needs `Authorization: Bearer <key>`, and answers 401 `unauthorized` without it. A method a path does not take answers 405 `method_not_allowed` with `Allow`."
    ),
    paths(
        service_api::health,
        service_api::ready,
        service_api::metrics,
        index_api::create,
        index_api::list,
        index_api::describe,
        index_api::delete,
        index_api::flush,
        index_api::declare_fields,
        item_api::add,
        item_api::get_item,
        item_api::delete_item,
        select_api::get_items,
        select_api::count_items,
        select_api::delete_items,
        search_api::search,
        search_api::search_batch,
    ),
    components(schemas(
        schema::ErrorBody,
        schema::ErrorDetail,
        schema::IndexInfo,
        schema::IndexList,
        schema::AddResponse,
        schema::ItemResponse,
        schema::SearchResponse,
        schema::SearchResult,
        schema::BatchSearchResponse,
        schema::FlushResponse,
        schema::Health,
        schema::FailedIndex,
        schema::LoadWarning,
        schema::SaveErrorInfo,
        schema::Ready,
        index_api::CreateIndex,
        index_api::DeclareFieldsRequest,
        index_api::FieldKindName,
        index_api::QuantizationShape,
        index_api::QuantizationType,
        schema::FieldsResponse,
        schema::VectorEncoding,
        schema::VectorIn,
        schema::VectorOut,
        item_api::AddRequest,
        item_api::AddItem,
        search_api::SearchRequest,
        search_api::BatchSearchRequest,
        select_api::GetRequest,
        select_api::CountRequest,
        select_api::DeleteRequest,
        select_api::Include,
        select_api::GotItem,
        select_api::GetResponse,
        select_api::CountResponse,
        select_api::DeleteResponse,
    )),
    modifiers(&BearerKey),
    tags(
        (name = "indexes", description = "create, list, describe, delete and flush indexes"),
        (name = "items", description = "add (upsert), read, count and delete items, one by one or chosen by ids or filter"),
        (name = "search", description = "nearest neighbours with metadata filters"),
        (name = "service", description = "health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// The optional bearer key, as a security scheme: every operation behind it may be called
/// with the key or, when none is configured, without; and lists its 401.
struct BearerKey;

/// Paths that never need the key.
const OPEN_PATHS: [&str; 2] = ["/health", "/ready"];

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "api_key",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
        let unauthorized = ResponseBuilder::new()
            .description(
                "an API key is configured and the request did not carry it (`unauthorized`)",
            )
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            if OPEN_PATHS.contains(&path.as_str()) {
                continue;
            }
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                op.security = Some(vec![
                    SecurityRequirement::new("api_key", Vec::<String>::new()),
                    SecurityRequirement::default(),
                ]);
                op.responses
                    .responses
                    .insert("401".to_string(), unauthorized.clone().into());
            }
        }
    }
}

async fn spec() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/openapi.json", "GET").route(web::get().to(spec)));
}
