//! The HTTP API.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use uuid::Uuid;

use benchop::{MethodId, catalogue};
use protocol::api::{JobRequest, JobView, MethodView, ProblemView};

use crate::error::{AppError, error_response};
use crate::{AppState, jobs};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The router with every endpoint, JSON fallbacks, body limit, tracing and a request timeout.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/problems", get(problems))
        .route("/v1/problems/{id}", get(problem))
        .route("/v1/methods", get(methods))
        .route("/v1/jobs", post(create_job).get(list_jobs))
        .route("/v1/jobs/{id}", get(job))
        .fallback(|| async { error_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serve `app(state)` on `listener` until `token` is cancelled, then finish in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    token: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(token.cancelled_owned())
        .await
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

async fn problems() -> Json<Vec<ProblemView>> {
    Json(catalogue::cases().iter().map(ProblemView::from_case).collect())
}

async fn problem(Path(id): Path<String>) -> Result<Json<ProblemView>, AppError> {
    catalogue::case(&id)
        .map(|c| Json(ProblemView::from_case(c)))
        .ok_or(AppError::NotFound {
            code: "unknown_problem",
            what: format!("problem `{id}`"),
        })
}

async fn methods() -> Json<Vec<MethodView>> {
    Json(MethodId::ALL.into_iter().map(MethodView::from_method).collect())
}

async fn create_job(
    State(state): State<AppState>,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(request) = body.map_err(json_rejection)?;
    let accepted = jobs::submit(&state, request).await?;
    let location = accepted.links.self_.clone();
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(accepted),
    )
        .into_response())
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    let (status, code) = match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        // A well-formed JSON document of the wrong shape (missing or unknown field, wrong type).
        StatusCode::UNPROCESSABLE_ENTITY => (StatusCode::BAD_REQUEST, "invalid_body"),
        _ => (StatusCode::BAD_REQUEST, "invalid_json"),
    };
    AppError::BadRequest {
        status,
        code,
        message: rejection.body_text(),
        details: json!({ "limit_bytes": MAX_BODY_BYTES }),
    }
}

fn parse_id(id: &str) -> Result<Uuid, AppError> {
    id.parse().map_err(|_| AppError::BadRequest {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_id",
        message: format!("`{id}` is not a job id (a UUID)"),
        details: serde_json::Value::Null,
    })
}

async fn job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobView>, AppError> {
    let id = parse_id(&id)?;
    jobs::view(&state, id).await?.map(Json).ok_or(AppError::NotFound {
        code: "job_not_found",
        what: format!("job {id}"),
    })
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

async fn list_jobs(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, AppError> {
    let Query(q) = query.map_err(|e| AppError::BadRequest {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_query",
        message: e.body_text(),
        details: serde_json::Value::Null,
    })?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let jobs = state.store.recent_jobs(limit).await?;
    let items: Vec<_> = jobs
        .iter()
        .map(|j| {
            json!({
                "id": j.id,
                "problem": j.problem,
                "status": if j.finished_ms.is_some() { "completed" } else if j.n_done == 0 { "queued" } else { "running" },
                "progress": { "total": j.n_tasks, "done": j.n_done },
                "created_ms": j.created_ms,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}
