//! API keys: when `vectord.api_key` is set, every request needs `Authorization: Bearer
//! <key>`, except `/health` and `/ready` (for supervisors and load balancers), the web
//! console's static files and `/openapi.json` (which hold no data: the console sends the
//! key on its API calls), and `/metrics` when `vectord.metrics_public` is set. A missing or
//! wrong key gets 401 in the usual error shape. The bearer-token check itself is
//! `crate::auth`, shared with storaged.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};

use crate::auth::has_key;

use super::errors::ApiError;
use super::AppState;

/// Whether `path` is served without a key.
fn open_path(path: &str, metrics_public: bool) -> bool {
    path == "/health"
        || path == "/ready"
        || path == "/openapi.json"
        || path == "/ui"
        || path.starts_with("/ui/")
        || (metrics_public && path == "/metrics")
}

/// The 401 answer.
pub fn unauthorized() -> actix_web::HttpResponse {
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or wrong API key: send the header Authorization: Bearer <key>",
    )
    .error_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    resp
}

/// Middleware: refuses requests without the key when one is configured.
pub async fn require_api_key(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let key = req.app_data::<web::Data<AppState>>().and_then(|s| {
        let open = open_path(req.path(), s.metrics_public);
        s.api_key.clone().filter(|_| !open)
    });
    if let Some(key) = key {
        if !has_key(req.headers(), &key) {
            return Ok(req.into_response(unauthorized()).map_into_right_body());
        }
    }
    next.call(req).await.map(|r| r.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_paths_need_no_key() {
        assert!(open_path("/health", false) && open_path("/ui/app.js", false));
        assert!(!open_path("/metrics", false) && open_path("/metrics", true));
        assert!(!open_path("/vectors/index", true) && !open_path("/uix", false));
    }
}
