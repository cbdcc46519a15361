//! The one place errors become HTTP responses: JSON `{code, message, details}` with stable codes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use protocol::api::{ApiError, ValidationError};

use crate::store::StoreError;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed (bad JSON, bad id, too large, …).
    #[error("{message}")]
    BadRequest {
        /// HTTP status (400, 413, 415).
        status: StatusCode,
        /// Stable code.
        code: &'static str,
        /// Message.
        message: String,
        /// Details.
        details: Value,
    },
    /// The request is well-formed but refers to something invalid.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// No such resource.
    #[error("{what} not found")]
    NotFound {
        /// Stable code.
        code: &'static str,
        /// What was looked for.
        what: String,
    },
    /// The store failed: logged, reported as a 503 without internals.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A user's quota is used up: `429 quota_exceeded` with `Retry-After`.
    #[error("{message}")]
    QuotaExceeded {
        /// Message.
        message: String,
        /// Which limit, the numbers.
        details: Value,
        /// When to try again, in seconds.
        retry_after_secs: u64,
    },
}

impl AppError {
    /// `404 job_not_found`.
    pub fn job_not_found(id: uuid::Uuid) -> Self {
        AppError::NotFound {
            code: "job_not_found",
            what: format!("job {id}"),
        }
    }

    /// `404 unknown_problem`: the problem id is not in the catalogue.
    pub fn unknown_problem(id: &str) -> Self {
        AppError::Validation(ValidationError::UnknownProblem(id.to_owned()))
    }

    fn parts(&self) -> (StatusCode, &'static str, String, Value) {
        match self {
            AppError::BadRequest {
                status,
                code,
                message,
                details,
            } => (*status, code, message.clone(), details.clone()),
            AppError::Validation(v) => {
                let status = match v {
                    ValidationError::UnknownProblem(_) => StatusCode::NOT_FOUND,
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                let details = match v {
                    ValidationError::UnknownProblem(id) => serde_json::json!({ "problem": id }),
                    ValidationError::UnknownMethod(id) => serde_json::json!({ "method": id }),
                    ValidationError::InvalidField { field, .. } => serde_json::json!({ "field": field }),
                    // One entry per wrong field: `[{field: "problem.model.sigma", reason}]`.
                    ValidationError::InvalidProblem(errors) => serde_json::json!(errors),
                    _ => Value::Null,
                };
                // Where an API client finds the valid ids (the CLI names its own commands instead).
                let message = match v {
                    ValidationError::UnknownProblem(_) => {
                        format!("{v}; GET /v1/problems lists the catalogue")
                    }
                    ValidationError::UnknownMethod(_) => format!("{v}; GET /v1/methods lists them"),
                    _ => v.to_string(),
                };
                (status, v.code(), message, details)
            }
            AppError::NotFound { code, what } => (
                StatusCode::NOT_FOUND,
                code,
                format!("{what} not found"),
                Value::Null,
            ),
            AppError::QuotaExceeded { message, details, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exceeded",
                message.clone(),
                details.clone(),
            ),
            AppError::Store(e) => {
                tracing::error!(error = %e, "store failure");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the job store is unavailable; retry shortly".to_owned(),
                    Value::Null,
                )
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code, message, details) = self.parts();
        let mut response = (
            status,
            Json(ApiError {
                code: code.to_owned(),
                message,
                details,
            }),
        )
            .into_response();
        if let AppError::QuotaExceeded { retry_after_secs, .. } = self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after_secs),
            );
        }
        response
    }
}

/// A JSON error response outside the handlers (fallbacks, rejections).
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(ApiError {
            code: code.to_owned(),
            message: message.into(),
            details: Value::Null,
        }),
    )
        .into_response()
}
