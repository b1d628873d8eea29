//! The HTTP front of vectord: thin handlers that decode and check a request, route it by
//! index name to that index's actor (mutations) or to the index itself (reads), and map
//! the outcome through `errors`. One file per resource, each registering its own routes.

pub mod auth;
pub mod body;
pub mod decimal;
pub mod errors;
pub mod index_api;
pub mod item_api;
pub mod metrics;
pub mod openapi;
pub mod replica;
pub mod schema;
pub mod search_api;
pub mod select_api;
pub mod service_api;
pub mod ui_api;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::web;
use vectord_actors::persist::persister::Persister;
use vectord_actors::persist::status::PersistStatus;
use vectord_actors::registry::{IndexHandle, Registry};

use errors::ApiError;

/// Shared by every worker.
pub struct AppState {
    pub registry: Arc<Registry>,
    pub persister: Option<Addr<Persister>>,
    /// Set once start-up loading is done; index routes answer 503 before.
    pub ready: Arc<AtomicBool>,
    /// Bounds searches running at once, so a burst queues instead of spawning hundreds
    /// of blocking threads.
    pub search_permits: Arc<tokio::sync::Semaphore>,
    pub max_body_bytes: usize,
    pub defaults: IndexDefaults,
    /// What is known about each index's saves; none in ephemeral mode and on a replica.
    pub saves: Option<Arc<PersistStatus>>,
    /// A read replica's view of what it follows; none on a primary. Writes answer 409
    /// `read_only` when set.
    pub following: Option<Arc<vectord_actors::replica::FollowStatus>>,
    /// Limits on what clients send.
    pub limits: vectord_actors::index::Limits,
    /// Bytes of write bodies held at once, in KiB permits (see `body::read_budgeted`).
    pub write_budget: Arc<tokio::sync::Semaphore>,
    /// Writes waiting per index, at most.
    pub max_queued_writes: usize,
    /// The API key, when requests must carry one (see `auth`).
    pub api_key: Option<String>,
    pub metrics_public: bool,
}

/// Index parameters used when a create request leaves them out.
#[derive(Debug, Clone, Copy)]
pub struct IndexDefaults {
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
}

/// A place in an index's write queue, given back when dropped.
pub struct WriteSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for WriteSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AppState {
    /// A place in the index's write queue, or 503 busy when `max_queued_writes` writes
    /// already wait for it.
    pub fn write_slot(&self, handle: &IndexHandle) -> Result<WriteSlot, ApiError> {
        let queued = handle.pending_writes.fetch_add(1, Ordering::AcqRel);
        let slot = WriteSlot(handle.pending_writes.clone());
        if queued >= self.max_queued_writes {
            vectord_actors::metrics::metrics()
                .busy_rejections
                .with_label_values(&["index_queue"])
                .inc();
            return Err(ApiError {
                retry_after_s: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    format!(
                        "{queued} writes already wait for index {:?} (vectord.max_queued_writes); retry shortly",
                        handle.name
                    ),
                )
            });
        }
        Ok(slot)
    }

    /// The index named in the path, and the request's JSON body decoded.
    pub async fn index_and_body<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        req: &actix_web::HttpRequest,
        payload: web::Payload,
    ) -> Result<(IndexHandle, T), ApiError> {
        let handle = self.index(name)?;
        let bytes = body::read(req, payload, self.max_body_bytes).await?;
        Ok((handle, body::json(&bytes)?))
    }

    /// The index of that name, once the service is ready.
    pub fn index(&self, name: &str) -> Result<IndexHandle, ApiError> {
        self.check_ready()?;
        self.registry.get(name).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "index_not_found",
                format!("index {name:?} not found"),
            )
        })
    }

    pub fn check_ready(&self) -> Result<(), ApiError> {
        if self.ready.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "vectord is still loading its indexes; see GET /ready",
            ))
        }
    }
}

/// Registers every route, and JSON answers for unknown ones. The router tries routes in
/// this order, a pattern match each (~1 µs for a pattern with `{name}`): search and add,
/// the requests that come by the thousand, first. No two patterns match the same path,
/// so the order changes nothing else.
pub fn configure(cfg: &mut web::ServiceConfig) {
    search_api::configure(cfg);
    item_api::configure(cfg);
    select_api::configure(cfg);
    service_api::configure(cfg);
    index_api::configure(cfg);
    ui_api::configure(cfg);
    openapi::configure(cfg);
}

/// A route's resource: any method but those in `allow` (comma-separated, as in the `Allow`
/// header) gets 405 `method_not_allowed`, in the JSON error shape, with `Allow`.
pub fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |req: actix_web::HttpRequest| async move {
        use actix_web::ResponseError;
        let mut resp = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{} {} is not supported; allowed: {allow}",
                req.method(),
                req.path()
            ),
        )
        .error_response();
        resp.headers_mut().insert(
            actix_web::http::header::ALLOW,
            actix_web::http::header::HeaderValue::from_static(allow),
        );
        resp
    }))
}

/// For `App::default_service`: unknown paths get the JSON error shape too.
pub async fn not_found(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", req.method(), req.path()),
    ))
}
