//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' annotations and
//! the body types (`utoipa`), served at `GET /openapi.json`. `tests/openapi.rs` checks that
//! the document and the server agree.

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{index_api, item_api, schema, search_api, service_api};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vectord",
        description = "Named HNSW indexes over HTTP: create, add (upsert), search with metadata filters, delete; persisted to storaged. Every error is {\"error\": {\"code\", \"message\"}}. When an API key is configured, every route but /health, /ready and /ui needs `Authorization: Bearer <key>` (401 otherwise)."
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
        item_api::add,
        item_api::get_item,
        item_api::delete_item,
        search_api::search,
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
        schema::FlushResponse,
        schema::Health,
        schema::FailedIndex,
        schema::LoadWarning,
        schema::SaveErrorInfo,
        schema::Ready,
        index_api::CreateIndex,
        item_api::AddRequest,
        item_api::AddItem,
        search_api::SearchRequest,
    )),
    modifiers(&BearerKey),
    tags(
        (name = "indexes", description = "create, list, describe, delete and flush indexes"),
        (name = "items", description = "add (upsert), read and delete items"),
        (name = "search", description = "nearest neighbours with metadata filters"),
        (name = "service", description = "health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// The optional bearer key, as a security scheme (required only when configured).
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "api_key",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

async fn spec() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(spec));
}
