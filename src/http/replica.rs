//! What a read replica (`vectord.role = "replica"`) changes in the HTTP front: every write
//! answers 409 `read_only` before its body is read, and the index info, `/health` and
//! `/metrics` say how far behind the primary each index may be.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};

use super::errors::ApiError;
use super::schema::ReplicaInfo;
use super::AppState;

/// Whether a request only reads: GET and HEAD, and the POSTs that search, get or count.
fn reads_only(method: &Method, path: &str) -> bool {
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => true,
        Method::POST => {
            path.starts_with("/vectors/index/")
                && ["/search", "/search/batch", "/get", "/count"]
                    .iter()
                    .any(|end| path.ends_with(end))
        }
        _ => false,
    }
}

/// Middleware: on a replica, refuses every request that would change something.
pub async fn refuse_writes(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let replica = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.following.is_some());
    if replica && !reads_only(req.method(), req.path()) {
        let answer = ApiError::new(
            StatusCode::CONFLICT,
            "read_only",
            format!(
                "{} {}: this vectord is a read replica (vectord.role = \"replica\"); send writes to the primary",
                req.method(),
                req.path()
            ),
        )
        .error_response();
        return Ok(req.into_response(answer).map_into_right_body());
    }
    next.call(req).await.map(|r| r.map_into_left_body())
}

/// What a replica knows of index `name`: none on a primary.
pub fn info(state: &AppState, name: &str) -> Option<ReplicaInfo> {
    let followed = state.following.as_ref()?.get(name)?;
    Some(ReplicaInfo {
        applied_lsn: followed.applied_lsn,
        lag_ms: followed.lag_ms(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_gets_and_counts_are_reads_everything_else_writes() {
        for path in [
            "/vectors/index/a/search",
            "/vectors/index/a/search/batch",
            "/vectors/index/a/get",
            "/vectors/index/a/count",
        ] {
            assert!(reads_only(&Method::POST, path), "{path}");
        }
        for path in [
            "/vectors/index",
            "/vectors/index/a/add",
            "/vectors/index/a/delete",
            "/vectors/index/a/fields",
            "/vectors/index/a/flush",
        ] {
            assert!(!reads_only(&Method::POST, path), "{path}");
        }
        assert!(!reads_only(&Method::DELETE, "/vectors/index/a"));
        assert!(!reads_only(
            &Method::DELETE,
            "/vectors/index/a/items/search"
        ));
        assert!(reads_only(&Method::GET, "/vectors/index/a"));
    }
}
