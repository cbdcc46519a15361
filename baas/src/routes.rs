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

use crate::access::{self, Need};
use crate::error::{AppError, error_response};
use crate::{AppState, jobs};

/// Whose private runs a leaderboard adds to the public ones: the caller's own.
fn board_viewer(principal: Option<&axum::Extension<crate::auth::Principal>>) -> Option<String> {
    principal.map(|p| p.0.name.clone())
}

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
    modifiers(&BearerScheme),
    components(schemas(PlotKind)),
    tags(
        (name = "jobs", description = "Submit jobs and read their rankings"),
        (name = "catalogue", description = "The BENCHOP problems and the methods"),
        (name = "rankings", description = "Leaderboards across completed jobs"),
        (name = "accounts", description = "Who am I; users and tokens (the `admin` scope)"),
        (name = "health", description = "Liveness and readiness")
    )
)]
struct ApiDoc;

/// Declares the `bearer` security scheme the mutating endpoints name (required only when tokens are set).
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The router with every endpoint, `/openapi.json`, Swagger UI at `/docs`, JSON fallbacks, body limit,
/// tracing and a request timeout.
pub fn app(state: AppState) -> Router {
    let (router, mut openapi) = api_router().split_for_parts();
    add_job_examples(&mut openapi);
    add_auth_responses(&mut openapi);
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
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_token,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .layer(cors(&state.cors_origins))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// The tracing span of a request: method and path, without the query, and a share link's secret left out
/// (the path is its whole authentication).
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let path = request.uri().path();
    let path = if path.starts_with("/v1/shared/") {
        "/v1/shared/…"
    } else {
        path
    };
    tracing::debug_span!("request", method = %request.method(), path = %path)
}

/// `POST /v1/jobs` request examples: a catalogue problem, then one custom problem per family
/// (`protocol::problem_spec::ProblemSpec::examples`, which a test validates).
fn add_job_examples(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::example::ExampleBuilder;
    let Some(content) = openapi
        .paths
        .paths
        .get_mut("/v1/jobs")
        .and_then(|p| p.post.as_mut())
        .and_then(|op| op.request_body.as_mut())
        .and_then(|body| match body {
            RefOr::T(body) => body.content.get_mut("application/json"),
            RefOr::Ref(_) => None,
        })
        .and_then(|content| match content {
            RefOr::T(content) => Some(content),
            RefOr::Ref(_) => None,
        })
    else {
        return;
    };
    let mut examples = vec![(
        "catalogue".to_owned(),
        "A BENCHOP problem by id".to_owned(),
        json!({"problem": "4a", "methods": ["cos", "fft", "closed-form"], "tolerance": 1e-4, "repeats": 3}),
    )];
    for (i, (summary, spec)) in protocol::problem_spec::ProblemSpec::examples()
        .into_iter()
        .enumerate()
    {
        examples.push((
            format!("custom-{}", i + 1),
            format!("Custom: {summary}"),
            json!({ "problem": spec }),
        ));
    }
    for (name, summary, value) in examples {
        let example = ExampleBuilder::new().summary(summary).value(Some(value)).build();
        content.examples.insert(name, RefOr::T(example));
    }
}

/// CORS for the configured origins (none: no CORS headers, browsers allow only same-origin use).
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let layer = CorsLayer::new()
        .allow_methods([
            axum::http::Method::GET,
            axum::http::Method::POST,
            axum::http::Method::PUT,
            axum::http::Method::DELETE,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::HeaderName::from_static("idempotency-key"),
        ]);
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        let list: Vec<header::HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}

/// The OpenAPI description of the API, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut openapi = api_router().into_openapi();
    add_auth_responses(&mut openapi);
    openapi
}

/// The answers of the authentication middleware (`crate::auth::require_token`) on every operation it
/// guards: `401` without a valid token, `403` without the scope, `429` after too many failures.
fn add_auth_responses(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                            "ApiError",
                        ))))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in openapi.paths.paths.iter_mut() {
        if crate::auth::is_public(path) {
            continue;
        }
        let ops = [
            item.get.as_mut(),
            item.post.as_mut(),
            item.delete.as_mut(),
            item.put.as_mut(),
            item.patch.as_mut(),
        ];
        for op in ops.into_iter().flatten() {
            let responses = &mut op.responses.responses;
            responses.entry("401".into()).or_insert_with(|| {
                error("A token is needed and none, or no valid one, was given (`unauthorized`)")
            });
            responses
                .entry("403".into())
                .or_insert_with(|| error("The token lacks the scope this needs (`insufficient_scope`)"));
            responses.entry("429".into()).or_insert_with(|| {
                error(
                    "Too many failed authentications from this address (`too_many_failures`, `Retry-After`)",
                )
            });
        }
    }
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(readyz))
        .routes(routes!(problems))
        .routes(routes!(problem))
        .routes(routes!(methods))
        .routes(routes!(create_job, list_jobs))
        .routes(routes!(job, cancel_job))
        .routes(routes!(retry_task))
        .routes(routes!(job_events))
        .routes(routes!(leaderboard))
        .routes(routes!(job_plot))
        .routes(routes!(leaderboard_plot))
        .routes(routes!(leaderboard_matrix))
        .merge(crate::admin::router())
        .merge(crate::sharing::router())
}

/// Serve `app(state)` on `listener` until `token` is cancelled, then finish in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    token: CancellationToken,
) -> std::io::Result<()> {
    // The peer's address reaches the middleware, which counts failed authentications per client.
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(token.cancelled_owned())
    .await
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Alive", body = Object, example = json!({"status": "ok"}))))]
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Prometheus metrics (text exposition format): HTTP requests and latency by route, jobs accepted,
/// tasks published, results by outcome, dead letters, publish failures.
#[utoipa::path(get, path = "/metrics", tag = "health", responses(
    (status = 200, description = "Metrics in the Prometheus text format", content_type = "text/plain", body = String)
))]
async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
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
async fn problems() -> Response {
    // The catalogue is static: serialise it once (it is the hottest read endpoint under load).
    static BODY: std::sync::OnceLock<axum::body::Bytes> = std::sync::OnceLock::new();
    let body = BODY.get_or_init(|| {
        let views: Vec<ProblemView> = catalogue::cases().iter().map(ProblemView::from_case).collect();
        serde_json::to_vec(&views).unwrap_or_default().into()
    });
    ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response()
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
        .ok_or_else(|| AppError::unknown_problem(&id))
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
///
/// `problem` is a catalogue id or a custom problem `{model, instrument}` (see the examples): its reference
/// is computed here, before the answer, by the best available solver (closed or semi-closed form, else a
/// converged Fourier method or a Richardson-extrapolated fine grid), and the job's `reference` says which.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = JobRequest,
    responses(
        (status = 202, description = "Accepted; poll the `Location`", body = JobAccepted,
            headers(("Location" = String, description = "The job's URL"))),
        (status = 400, description = "Malformed body (`invalid_json`, `invalid_body`)", body = ApiError),
        (status = 404, description = "Unknown problem (`unknown_problem`)", body = ApiError),
        (status = 413, description = "Body over 64 KiB (`payload_too_large`)", body = ApiError),
        (status = 415, description = "Not JSON (`unsupported_media_type`)", body = ApiError),
        (status = 422, description = "Invalid field or method (`invalid_field`, `unknown_method`, \
            `method_not_applicable`, `no_applicable_method`), invalid custom problem (`invalid_problem`, \
            `details: [{field, reason}]`), or no reference for it in time (`reference_unavailable`)", body = ApiError),
        (status = 429, description = "The user's quota of tasks in flight or per day is used up (`quota_exceeded`, \
            `Retry-After`), or too many failed authentications (`too_many_failures`)", body = ApiError,
            headers(("Retry-After" = u64, description = "Seconds to wait")))
    ))]
async fn create_job(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    principal: Option<axum::Extension<crate::auth::Principal>>,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    let key = idempotency_key(&headers)?;
    let Json(request) = body.map_err(json_rejection)?;
    let owner = access::new_owner(principal.as_ref().map(|p| &p.0));
    let (accepted, created) = jobs::submit_once(&state, request, key, owner).await?;
    let location = accepted.links.self_.clone();
    // A replayed request (same Idempotency-Key and body) gets the original job with 200.
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, [(header::LOCATION, location)], Json(accepted)).into_response())
}

/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 200;

fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, AppError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = |reason: &str| AppError::BadRequest {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_idempotency_key",
        message: format!("Idempotency-Key {reason}"),
        details: json!({ "max_bytes": MAX_IDEMPOTENCY_KEY_BYTES }),
    };
    let key = value.to_str().map_err(|_| bad("must be visible ASCII"))?.trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(bad("must be 1 to 200 characters"));
    }
    Ok(Some(key.to_owned()))
}

/// Cancel a job: tasks without a result are revoked (running ones are stopped by their workers) and
/// recorded as `cancelled`; results that arrive later are ignored. Cancelling twice is harmless.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "Job id (UUID)")),
    security((), ("bearer" = [])),
    responses(
        (status = 202, description = "Cancelled; the job as it is now", body = JobView),
        (status = 400, description = "Not a UUID (`invalid_id`)", body = ApiError),
        (status = 401, description = "Tokens are configured and none was given (`unauthorized`)", body = ApiError),
        (status = 404, description = "No such job (`job_not_found`)", body = ApiError),
        (status = 409, description = "The job already completed (`job_finished`)", body = ApiError)
    ))]
async fn cancel_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let principal = principal.map(|p| p.0);
    access::check(&state, principal.as_ref(), id, Need::Manage, || {
        AppError::job_not_found(id)
    })
    .await?;
    let view = jobs::cancel(&state, id).await?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// Run a failed or dead-lettered task again (same task id; its job re-opens until the result arrives).
#[utoipa::path(post, path = "/v1/tasks/{id}/retry", tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "Task id (UUID)")),
    security((), ("bearer" = [])),
    responses(
        (status = 202, description = "Re-queued", body = Object,
            example = json!({"task_id": "8d0c4f7e-3f5a-4c8e-9a59-0c5f0e0b7a11", "job_id": "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9", "status": "queued"})),
        (status = 400, description = "Not a UUID (`invalid_id`)", body = ApiError),
        (status = 401, description = "Tokens are configured and none was given (`unauthorized`)", body = ApiError),
        (status = 404, description = "No such task (`task_not_found`)", body = ApiError),
        (status = 409, description = "The task has not failed (`task_not_failed`) or its job was cancelled (`job_cancelled`)", body = ApiError)
    ))]
async fn retry_task(
    State(state): State<AppState>,
    Path(id): Path<String>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let principal = principal.map(|p| p.0);
    if principal.is_some()
        && let Some(message) = state.store.task_message(id).await?
    {
        let not_found = || AppError::NotFound {
            code: "task_not_found",
            what: format!("task {id}"),
        };
        access::check(
            &state,
            principal.as_ref(),
            message.job_id,
            Need::Manage,
            not_found,
        )
        .await?;
    }
    let task = jobs::retry(&state, id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "task_id": task.task_id, "job_id": task.job_id, "status": "queued" })),
    )
        .into_response())
}

pub(crate) fn json_rejection(rejection: JsonRejection) -> AppError {
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
    parse_uuid(id, "job")
}

/// `id` as the UUID of a `what` (`job`, `token`), or `400 invalid_id`.
pub(crate) fn parse_uuid(id: &str, what: &str) -> Result<Uuid, AppError> {
    id.parse().map_err(|_| AppError::BadRequest {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_id",
        message: format!("`{id}` is not a {what} id (a UUID)"),
        details: serde_json::Value::Null,
    })
}

/// A job: status, progress, tasks and the ranking (complete once `status` is `completed`).
///
/// With `wait=N` the answer is held until the job completes or N seconds (at most 60) pass, so a simple
/// script can submit and then block on one GET.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(
        ("id" = uuid::Uuid, Path, description = "Job id (UUID)"),
        ("wait" = Option<u64>, Query, maximum = 60, description = "Seconds to wait for completion (0…60)"),
        ("tasks" = Option<String>, Query, description = "Which tasks to list: `all` (default), `failed`, or \
            `none` (cheap polling of big jobs: while the job runs only its counters are read and the ranking \
            is empty)")
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
    principal: Option<axum::Extension<crate::auth::Principal>>,
) -> Result<Json<JobView>, AppError> {
    let id = parse_id(&id)?;
    let principal = principal.map(|p| p.0);
    access::check(&state, principal.as_ref(), id, Need::Read, || {
        AppError::job_not_found(id)
    })
    .await?;
    let Query(q) = query.map_err(query_rejection)?;
    let wait = Duration::from_secs(q.wait.unwrap_or(0).min(MAX_WAIT_SECS));
    let mut updates = state.updates.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let view = jobs::view_with(&state, id, q.tasks.unwrap_or_default())
            .await?
            .ok_or_else(|| AppError::job_not_found(id))?;
        if view.status.is_final() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(view));
        }
        // Wake on this job's next update, or at the deadline; re-read every few seconds regardless, in
        // case an update from another replica was lost.
        let wake = deadline.min(tokio::time::Instant::now() + jobs::RECHECK);
        let _ = tokio::time::timeout_at(wake, async {
            while let Ok(u) = updates.recv().await {
                if u.job_id == id || u.job_id == jobs::EVERY_JOB {
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
    tasks: Option<jobs::TaskList>,
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
    params(("id" = uuid::Uuid, Path, description = "Job id (UUID)")),
    responses(
        (status = 200, description = "`text/event-stream` of `progress` events and a final `completed` event \
            carrying the JobView", content_type = "text/event-stream", body = protocol::api::SseFrame),
        (status = 400, description = "Not a UUID (`invalid_id`)", body = ApiError),
        (status = 404, description = "No such job (`job_not_found`)", body = ApiError)
    ))]
async fn job_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
) -> Result<Response, AppError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let id = parse_id(&id)?;
    let principal = principal.map(|p| p.0);
    access::check(&state, principal.as_ref(), id, Need::Read, || {
        AppError::job_not_found(id)
    })
    .await?;
    // Subscribe before the first read, so no result between the two is missed.
    let updates = state.updates.subscribe();
    let first = jobs::view(&state, id)
        .await?
        .ok_or_else(|| AppError::job_not_found(id))?;
    let event = |view: &JobView| -> Event {
        if view.status.is_final() {
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
        (state, updates, Some(first), false, None),
        move |(state, mut updates, pending, done, last)| async move {
            if done {
                return None;
            }
            let view = match pending {
                Some(v) => v,
                None => loop {
                    // Re-read every few seconds even without an update (one from another replica may
                    // be lost); send only when the progress changed.
                    match tokio::time::timeout(jobs::RECHECK, updates.recv()).await {
                        Ok(Ok(u)) if u.job_id != id && u.job_id != jobs::EVERY_JOB => continue,
                        Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return None,
                        // An update, a lagged receiver (nothing is lost, only coalesced) or the timer.
                        _ => {}
                    }
                    match jobs::view(&state, id).await {
                        Ok(Some(v)) if Some((v.progress, v.status)) != last => break v,
                        Ok(Some(_)) => {}
                        _ => return None,
                    }
                },
            };
            let finished = view.status.is_final();
            let last = Some((view.progress, view.status));
            Some((
                Ok::<_, std::convert::Infallible>(event(&view)),
                (state, updates, None, finished, last),
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
        (status = 400, description = "Bad query (`invalid_query`)", body = ApiError),
        (status = 404, description = "No such problem (`unknown_problem`)", body = ApiError)
    ))]
async fn leaderboard(
    State(state): State<AppState>,
    Path(problem): Path<String>,
    query: Result<Query<ToleranceQuery>, axum::extract::rejection::QueryRejection>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
) -> Result<Json<Leaderboard>, AppError> {
    let Query(q) = query.map_err(query_rejection)?;
    let case = catalogue::case(&problem).ok_or_else(|| AppError::unknown_problem(&problem))?;
    let tolerance = q.tolerance.unwrap_or(protocol::api::DEFAULT_TOLERANCE);
    let results = state
        .store
        .results_for_problem(case.id.to_owned(), tolerance, board_viewer(principal.as_ref()))
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
    responses(
        (status = 200, description = "The matrix", body = LeaderboardMatrix),
        (status = 400, description = "Bad query (`invalid_query`)", body = ApiError)
    ))]
async fn leaderboard_matrix(
    State(state): State<AppState>,
    query: Result<Query<ToleranceQuery>, axum::extract::rejection::QueryRejection>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
) -> Result<Json<LeaderboardMatrix>, AppError> {
    let Query(q) = query.map_err(query_rejection)?;
    let tolerance = q.tolerance.unwrap_or(protocol::api::DEFAULT_TOLERANCE);
    let methods: Vec<String> = MethodId::ALL.iter().map(|m| m.name().to_owned()).collect();
    let mut problems = Vec::new();
    let mut best = Vec::new();
    for case in catalogue::cases() {
        let results = state
            .store
            .results_for_problem(case.id.to_owned(), tolerance, board_viewer(principal.as_ref()))
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
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
    status: Option<JobStatus>,
    problem: Option<String>,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
}

/// Jobs, newest first, filtered by status, problem and creation time, paged by cursor: pass the answer's
/// `next_cursor` as `cursor` for the next page (absent on the last page).
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs",
    params(
        ("limit" = Option<usize>, Query, description = "Page size (1…500, default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("status" = Option<JobStatus>, Query, description = "Only jobs in this status"),
        ("problem" = Option<String>, Query, description = "Only jobs on this problem id"),
        ("since_ms" = Option<u64>, Query, description = "Created at or after (Unix ms)"),
        ("until_ms" = Option<u64>, Query, description = "Created before (Unix ms)")
    ),
    responses(
        (status = 200, description = "`{items: [{id, problem, status, progress, created_ms, finished_ms}], next_cursor}`", body = Object,
            example = json!({"items": [{"id": "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9", "problem": "1aI", "status": "completed",
                "progress": {"total": 9, "done": 9}, "created_ms": 1_700_000_000_000_u64, "finished_ms": 1_700_000_001_100_u64}], "next_cursor": "41"})),
        (status = 400, description = "Bad query (`invalid_query`, `invalid_cursor`)", body = ApiError)
    ))]
async fn list_jobs(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
) -> Result<Json<serde_json::Value>, AppError> {
    let Query(q) = query.map_err(query_rejection)?;
    let before_seq = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| AppError::BadRequest {
                    status: StatusCode::BAD_REQUEST,
                    code: "invalid_cursor",
                    message: format!("`{c}` is not a cursor from a previous page"),
                    details: serde_json::Value::Null,
                })?,
        ),
    };
    let filter = crate::store::JobFilter {
        status: q.status,
        problem: q.problem,
        since_ms: q.since_ms,
        until_ms: q.until_ms,
        before_seq,
        viewer: access::list_viewer(principal.as_ref().map(|p| &p.0)),
        limit: q.limit.unwrap_or(50).clamp(1, 500),
    };
    let (jobs, next) = state.store.list_jobs(filter).await?;
    let items: Vec<_> = jobs
        .iter()
        .map(|j| {
            json!({
                "id": j.id,
                "problem": j.problem,
                "status": j.status(),
                "progress": { "total": j.n_tasks, "done": j.n_done },
                "created_ms": j.created_ms,
                "finished_ms": j.finished_ms,
                "owner": j.owner,
                "visibility": j.visibility,
            })
        })
        .collect();
    Ok(Json(
        json!({ "items": items, "next_cursor": next.map(|n| n.to_string()) }),
    ))
}

/// Which chart a plot endpoint draws.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
enum PlotKind {
    /// Relative error against time, log-log, one series per method, the tolerance as a dashed line.
    #[default]
    WorkPrecision,
    /// Time to the tolerance per method, log scale.
    Bars,
}

#[derive(Debug, Deserialize)]
struct PlotQuery {
    kind: Option<PlotKind>,
    tolerance: Option<f64>,
}

fn svg(body: String) -> Response {
    ([(header::CONTENT_TYPE, "image/svg+xml")], body).into_response()
}

/// A job as an SVG chart: the work-precision diagram (every level of every method for a ladder job, one
/// point per method otherwise) or, with `kind=bars`, the time to the tolerance per method.
#[utoipa::path(get, path = "/v1/jobs/{id}/plot.svg", tag = "jobs",
    params(
        ("id" = uuid::Uuid, Path, description = "Job id (UUID)"),
        ("kind" = Option<PlotKind>, Query, description = "`work-precision` (default) or `bars`")
    ),
    responses(
        (status = 200, description = "The chart", content_type = "image/svg+xml", body = String),
        (status = 400, description = "Not a UUID (`invalid_id`) or bad query (`invalid_query`)", body = ApiError),
        (status = 404, description = "No such job (`job_not_found`)", body = ApiError)
    ))]
async fn job_plot(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<PlotQuery>, axum::extract::rejection::QueryRejection>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let principal = principal.map(|p| p.0);
    access::check(&state, principal.as_ref(), id, Need::Read, || {
        AppError::job_not_found(id)
    })
    .await?;
    let Query(q) = query.map_err(query_rejection)?;
    let view = jobs::view(&state, id)
        .await?
        .ok_or_else(|| AppError::job_not_found(id))?;
    let status = view.status.as_str();
    Ok(svg(match q.kind.unwrap_or_default() {
        PlotKind::WorkPrecision => crate::plot::work_precision(
            &format!("{}: relative error against time ({status})", view.problem),
            view.tolerance,
            &crate::plot::job_series(&view),
        ),
        PlotKind::Bars => crate::plot::bars(
            &format!("{}: time to relerr {:e} ({status})", view.problem, view.tolerance),
            &crate::plot::job_bars(&view),
        ),
    }))
}

/// A problem's leaderboard as an SVG chart: every recorded run of every method as a work-precision
/// diagram or, with `kind=bars`, each method's best time to the tolerance.
#[utoipa::path(get, path = "/v1/rankings/{problem}/plot.svg", tag = "rankings",
    params(
        ("problem" = String, Path, description = "Problem id", example = "1bI"),
        ("kind" = Option<PlotKind>, Query, description = "`work-precision` (default) or `bars`"),
        ("tolerance" = Option<f64>, Query, description = "Tolerance of the runs (default 1e-4)")
    ),
    responses(
        (status = 200, description = "The chart", content_type = "image/svg+xml", body = String),
        (status = 400, description = "Bad query (`invalid_query`)", body = ApiError),
        (status = 404, description = "No such problem (`unknown_problem`)", body = ApiError)
    ))]
async fn leaderboard_plot(
    State(state): State<AppState>,
    Path(problem): Path<String>,
    query: Result<Query<PlotQuery>, axum::extract::rejection::QueryRejection>,
    principal: Option<axum::Extension<crate::auth::Principal>>,
) -> Result<Response, AppError> {
    let Query(q) = query.map_err(query_rejection)?;
    let case = catalogue::case(&problem).ok_or_else(|| AppError::unknown_problem(&problem))?;
    let tolerance = q.tolerance.unwrap_or(protocol::api::DEFAULT_TOLERANCE);
    let results = state
        .store
        .results_for_problem(case.id.to_owned(), tolerance, board_viewer(principal.as_ref()))
        .await?;
    Ok(svg(match q.kind.unwrap_or_default() {
        PlotKind::WorkPrecision => crate::plot::work_precision(
            &format!("{}: every recorded run, relative error against time", case.id),
            tolerance,
            &crate::plot::results_series(&results),
        ),
        PlotKind::Bars => crate::plot::bars(
            &format!("{}: best time to relerr {tolerance:e}", case.id),
            &crate::plot::leaderboard_bars(&Leaderboard {
                problem: case.id.to_owned(),
                tolerance,
                entries: crate::ranking::leaderboard(&results),
            }),
        ),
    }))
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
            "/metrics",
            "/readyz",
            "/v1/problems",
            "/v1/problems/{id}",
            "/v1/methods",
            "/v1/jobs",
            "/v1/jobs/{id}",
            "/v1/jobs/{id}/events",
            "/v1/tasks/{id}/retry",
            "/v1/rankings",
            "/v1/rankings/{problem}",
            "/v1/jobs/{id}/plot.svg",
            "/v1/rankings/{problem}/plot.svg",
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
