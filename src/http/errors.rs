//! The one place where errors become HTTP responses:
//! `{"error":{"code":"<snake_case>","message":"..."}}` with the status docs/API.md
//! gives.

use super::schema::{ErrorBody, ErrorDetail};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use vectord_actors::error::IndexError;

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (503 busy).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(s) = self.retry_after_s {
            response.insert_header(("Retry-After", s.to_string()));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
            },
        })
    }
}

impl From<IndexError> for ApiError {
    fn from(e: IndexError) -> Self {
        let message = e.to_string();
        match e {
            IndexError::Invalid { code, .. } => Self::new(StatusCode::BAD_REQUEST, code, message),
            IndexError::IndexNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "index_not_found", message)
            }
            IndexError::ItemNotFound { .. } => {
                Self::new(StatusCode::NOT_FOUND, "item_not_found", message)
            }
            IndexError::IndexExists(_) => Self::new(StatusCode::CONFLICT, "index_exists", message),
            IndexError::NameUnavailable { code, .. } => {
                Self::new(StatusCode::CONFLICT, code, message)
            }
            IndexError::StorageUnavailable(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                message,
            ),
            IndexError::Busy { retry_after_s, .. } => ApiError {
                retry_after_s: Some(retry_after_s),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
            },
            IndexError::NotReady(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message)
            }
            IndexError::Internal(_) => {
                log::error!("internal error: {message}");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    /// The actor is gone: its index was deleted while the request waited.
    fn from(_: actix::MailboxError) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "index_not_found",
            "the index was deleted",
        )
    }
}
