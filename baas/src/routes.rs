//! The HTTP API.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use benchop::{MethodId, catalogue};
use protocol::api::{
    ApiError, JobAccepted, JobRequest, JobStatus, JobView, Leaderboard, LeaderboardMatrix, MethodView,
    ProblemView,
};

use crate::error::{AppError, error_response};
use crate::{AppState, jobs};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The OpenAPI description's fixed parts; paths and schemas come from the handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "benchop",
        description = "Which numerical method prices this option fastest at the accuracy I need? \
            Submit a BENCHOP problem as a job; workers price it with every applicable method, tuned to the \
            tolerance, and the job's ranking orders the methods by time. Errors are JSON \
            `{code, message, details}` with stable codes (see README)."
    ),
    tags(
        (name = "jobs", description = "Submit jobs and read their rankings"),
        (name = "catalogue", description = "The BENCHOP problems and the methods"),
        (name = "rankings", description = "Leaderboards across completed jobs"),
        (name = "health", description = "Liveness and readiness")
    )
)]
struct ApiDoc;

/// The router with every endpoint, `/openapi.json`, Swagger UI at `/docs`, JSON fallbacks, body limit,
/// tracing and a request timeout.
pub fn app(state: AppState) -> Router {
    let (router, openapi) = api_router().split_for_parts();
    router
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", openapi))
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

/// The OpenAPI description of the API, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().into_openapi()
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(problems))
        .routes(routes!(problem))
        .routes(routes!(methods))
        .routes(routes!(create_job, list_jobs))
        .routes(routes!(job))
        .routes(routes!(job_events))
        .routes(routes!(leaderboard))
        .routes(routes!(leaderboard_matrix))
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

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Alive", body = Object, example = json!({"status": "ok"}))))]
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the job store answers.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Ready", body = Object, example = json!({"status": "ready"})),
    (status = 503, description = "The store is unavailable", body = ApiError)
))]
async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

/// The BENCHOP catalogue: every problem with its parameters, evaluation points, reference values and
/// the methods that apply.
#[utoipa::path(get, path = "/v1/problems", tag = "catalogue", responses((status = 200, description = "Every problem", body = [ProblemView])))]
async fn problems() -> Json<Vec<ProblemView>> {
    Json(catalogue::cases().iter().map(ProblemView::from_case).collect())
}

/// One problem of the catalogue.
#[utoipa::path(get, path = "/v1/problems/{id}", tag = "catalogue",
    params(("id" = String, Path, description = "Problem id, e.g. `1aI`, `4a`", example = "1bI")),
    responses(
        (status = 200, description = "The problem", body = ProblemView),
        (status = 404, description = "No such problem (`unknown_problem`)", body = ApiError)
    ))]
async fn problem(Path(id): Path<String>) -> Result<Json<ProblemView>, AppError> {
    catalogue::case(&id)
        .map(|c| Json(ProblemView::from_case(c)))
        .ok_or(AppError::NotFound {
            code: "unknown_problem",
            what: format!("problem `{id}`"),
        })
}

/// The methods and the catalogue problems each applies to.
#[utoipa::path(get, path = "/v1/methods", tag = "catalogue", responses((status = 200, description = "Every method", body = [MethodView])))]
async fn methods() -> Json<Vec<MethodView>> {
    Json(MethodId::ALL.into_iter().map(MethodView::from_method).collect())
}

/// Submit a job: price a problem with several methods, each tuned to the tolerance, and rank them.
///
/// Only `problem` is required; `methods` defaults to every method that applies, `tolerance` to 1e-4
/// (range 1e-8…1e-2), `repeats` to 3 (1…20). The job is stored before the answer.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = JobRequest,
    responses(
        (status = 202, description = "Accepted; poll the `Location`", body = JobAccepted,
            headers(("Location" = String, description = "The job's URL"))),
        (status = 400, description = "Malformed body (`invalid_json`, `invalid_body`)", body = ApiError),
        (status = 404, description = "Unknown problem (`unknown_problem`)", body = ApiError),
        (status = 413, description = "Body over 64 KiB (`payload_too_large`)", body = ApiError),
        (status = 415, description = "Not JSON (`unsupported_media_type`)", body = ApiError),
        (status = 422, description = "Invalid field or method (`invalid_field`, `unknown_method`, \
            `method_not_applicable`, `no_applicable_method`)", body = ApiError)
    ))]
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

/// A job: status, progress, tasks and the ranking (complete once `status` is `completed`).
///
/// With `wait=N` the answer is held until the job completes or N seconds (at most 60) pass, so a simple
/// script can submit and then block on one GET.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(
        ("id" = String, Path, description = "Job id (UUID)"),
        ("wait" = Option<u64>, Query, description = "Seconds to wait for completion (0…60)")
    ),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 400, description = "Not a UUID (`invalid_id`) or bad query (`invalid_query`)", body = ApiError),
        (status = 404, description = "No such job (`job_not_found`)", body = ApiError)
    ))]
async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobView>, AppError> {
    let id = parse_id(&id)?;
    let Query(q) = query.map_err(query_rejection)?;
    let wait = Duration::from_secs(q.wait.unwrap_or(0).min(MAX_WAIT_SECS));
    let mut updates = state.updates.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let view = jobs::view(&state, id).await?.ok_or(AppError::NotFound {
            code: "job_not_found",
            what: format!("job {id}"),
        })?;
        if view.status == JobStatus::Completed || tokio::time::Instant::now() >= deadline {
            return Ok(Json(view));
        }
        // Wake on this job's next result, or at the deadline.
        let _ = tokio::time::timeout_at(deadline, async {
            while let Ok(u) = updates.recv().await {
                if u.job_id == id {
                    break;
                }
            }
        })
        .await;
    }
}

/// Longest `wait` on `GET /v1/jobs/{id}`.
pub const MAX_WAIT_SECS: u64 = 60;

#[derive(Debug, Deserialize)]
struct WaitQuery {
    wait: Option<u64>,
}

fn query_rejection(e: axum::extract::rejection::QueryRejection) -> AppError {
    AppError::BadRequest {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_query",
        message: e.body_text(),
        details: serde_json::Value::Null,
    }
}

/// Progress of a job as server-sent events: `progress` (`{done, total, failed, status}`) on every
/// result, then `completed` with the whole job, then the stream ends.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = String, Path, description = "Job id (UUID)")),
    responses(
        (status = 200, description = "`text/event-stream` of `progress` events and a final `completed` event \
            carrying the JobView", content_type = "text/event-stream", body = String),
        (status = 400, description = "Not a UUID (`invalid_id`)", body = ApiError),
        (status = 404, description = "No such job (`job_not_found`)", body = ApiError)
    ))]
async fn job_events(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, AppError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let id = parse_id(&id)?;
    // Subscribe before the first read, so no result between the two is missed.
    let updates = state.updates.subscribe();
    let first = jobs::view(&state, id).await?.ok_or(AppError::NotFound {
        code: "job_not_found",
        what: format!("job {id}"),
    })?;
    let event = |view: &JobView| -> Event {
        if view.status == JobStatus::Completed {
            Event::default()
                .event("completed")
                .json_data(view)
                .unwrap_or_default()
        } else {
            let p = view.progress;
            Event::default()
                .event("progress")
                .json_data(
                    json!({"done": p.done, "total": p.total, "failed": p.failed, "status": view.status}),
                )
                .unwrap_or_default()
        }
    };
    let stream = futures_util::stream::unfold(
        (state, updates, Some(first), false),
        move |(state, mut updates, pending, done)| async move {
            if done {
                return None;
            }
            let view = match pending {
                Some(v) => v,
                None => loop {
                    match updates.recv().await {
                        Ok(u) if u.job_id != id => {}
                        // A lagged receiver re-reads the job: nothing is lost, only coalesced.
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            match jobs::view(&state, id).await {
                                Ok(Some(v)) => break v,
                                _ => return None,
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                },
            };
            let finished = view.status == JobStatus::Completed;
            Some((
                Ok::<_, std::convert::Infallible>(event(&view)),
                (state, updates, None, finished),
            ))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

#[derive(Debug, Deserialize)]
struct ToleranceQuery {
    tolerance: Option<f64>,
}

/// A problem's leaderboard: every completed run per method aggregated (best and median time to the
/// tolerance, best error, runs), the service form of the BENCHOP paper's table.
#[utoipa::path(get, path = "/v1/rankings/{problem}", tag = "rankings",
    params(
        ("problem" = String, Path, description = "Problem id", example = "1bI"),
        ("tolerance" = Option<f64>, Query, description = "Tolerance of the runs to aggregate (default 1e-4)")
    ),
    responses(
        (status = 200, description = "The leaderboard", body = Leaderboard),
        (status = 404, description = "No such problem (`unknown_problem`)", body = ApiError)
    ))]
async fn leaderboard(
    State(state): State<AppState>,
    Path(problem): Path<String>,
    query: Result<Query<ToleranceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Leaderboard>, AppError> {
    let Query(q) = query.map_err(query_rejection)?;
    let case = catalogue::case(&problem).ok_or(AppError::NotFound {
        code: "unknown_problem",
        what: format!("problem `{problem}`"),
    })?;
    let tolerance = q.tolerance.unwrap_or(protocol::api::DEFAULT_TOLERANCE);
    let results = state
        .store
        .results_for_problem(case.id.to_owned(), tolerance)
        .await?;
    Ok(Json(Leaderboard {
        problem: case.id.to_owned(),
        tolerance,
        entries: crate::ranking::leaderboard(&results),
    }))
}

/// Best time to the tolerance for every problem × method, over all completed runs.
#[utoipa::path(get, path = "/v1/rankings", tag = "rankings",
    params(("tolerance" = Option<f64>, Query, description = "Tolerance of the runs (default 1e-4)")),
    responses((status = 200, description = "The matrix", body = LeaderboardMatrix)))]
async fn leaderboard_matrix(
    State(state): State<AppState>,
    query: Result<Query<ToleranceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<LeaderboardMatrix>, AppError> {
    let Query(q) = query.map_err(query_rejection)?;
    let tolerance = q.tolerance.unwrap_or(protocol::api::DEFAULT_TOLERANCE);
    let methods: Vec<String> = MethodId::ALL.iter().map(|m| m.name().to_owned()).collect();
    let mut problems = Vec::new();
    let mut best = Vec::new();
    for case in catalogue::cases() {
        let results = state
            .store
            .results_for_problem(case.id.to_owned(), tolerance)
            .await?;
        let board = crate::ranking::leaderboard(&results);
        problems.push(case.id.to_owned());
        best.push(
            methods
                .iter()
                .map(|m| board.iter().find(|e| &e.method == m).and_then(|e| e.best_time_s))
                .collect(),
        );
    }
    Ok(Json(LeaderboardMatrix {
        tolerance,
        problems,
        methods,
        best_time_s: best,
    }))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

/// Recent jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs",
    params(("limit" = Option<usize>, Query, description = "How many (1…500, default 50)")),
    responses(
        (status = 200, description = "`{items: [{id, problem, status, progress, created_ms}]}`", body = Object),
        (status = 400, description = "Bad query (`invalid_query`)", body = ApiError)
    ))]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_description_covers_every_endpoint_and_error_body() {
        let doc = serde_json::to_value(openapi()).unwrap();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1"),
            "{}",
            doc["openapi"]
        );
        for path in [
            "/healthz",
            "/readyz",
            "/v1/problems",
            "/v1/problems/{id}",
            "/v1/methods",
            "/v1/jobs",
            "/v1/jobs/{id}",
            "/v1/jobs/{id}/events",
            "/v1/rankings",
            "/v1/rankings/{problem}",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} missing from the spec");
        }
        assert!(doc["paths"]["/v1/jobs"]["post"]["requestBody"].is_object());
        for schema in [
            "JobRequest",
            "JobAccepted",
            "JobView",
            "RankEntry",
            "ProblemView",
            "MethodView",
            "ApiError",
        ] {
            assert!(
                doc["components"]["schemas"][schema].is_object(),
                "schema {schema} missing"
            );
        }
    }
}
