//! The HTTP side: pages and assets, the JSON API (documented at `/openapi.json`), the live stream (SSE),
//! `/metrics`, auth, the URL prefix, and the controls.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use protocol::Control;
use protocol::amqp;

use crate::broker::{Broker, DeadLetter, QueueStats};
use crate::state::{DepthSample, Fold, TaskStatus, Tick, WorkerView};
use crate::store::{JobRow, Store, StoreError, TaskPage, TaskQuery, TaskRow, TimelineEntry};
use crate::{Config, Shared, lock};

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// Everything a handler needs.
#[derive(Clone)]
pub struct Hub(Arc<HubInner>);

struct HubInner {
    config: Config,
    shared: Shared,
    store: Option<Arc<Store>>,
    broker: Option<Broker>,
    http: reqwest::Client,
    queues: Mutex<Vec<QueueStats>>,
    control: tokio::sync::Mutex<Option<(lapin::Connection, lapin::Channel)>>,
}

impl Hub {
    /// A hub over `shared` (its store is the one the state writes to).
    pub fn new(config: Config, shared: Shared) -> Self {
        let store = lock(&shared).store.clone();
        let broker = (!config.amqp_url.is_empty())
            .then(|| Broker::new(&config.amqp_url, config.management_url.as_deref()));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self(Arc::new(HubInner {
            config,
            shared,
            store,
            broker,
            http,
            queues: Mutex::new(Vec::new()),
            control: tokio::sync::Mutex::new(None),
        }))
    }

    fn queues(&self) -> Vec<QueueStats> {
        match self.0.queues.lock() {
            Ok(q) => q.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    async fn store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiErr> {
        let store = self.0.store.clone().ok_or_else(|| {
            ApiErr::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_store",
                "the history store is not available",
            )
        })?;
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ApiErr::internal(e.to_string()))?
            .map_err(|e| match e {
                StoreError::BadQuery(m) => ApiErr::new(StatusCode::BAD_REQUEST, "bad_query", m),
                other => ApiErr::internal(other.to_string()),
            })
    }

    async fn baas_get(&self, path: &str) -> Option<Value> {
        if self.0.config.baas_url.is_empty() {
            return None;
        }
        let mut req = self
            .0
            .http
            .get(format!("{}{path}", self.0.config.baas_url.trim_end_matches('/')));
        if let Some(t) = &self.0.config.baas_token {
            req = req.bearer_auth(t);
        }
        let r = req.timeout(Duration::from_secs(2)).send().await.ok()?;
        if r.status().is_success() {
            r.json().await.ok()
        } else {
            None
        }
    }

    async fn publish(&self, control: &Control) -> Result<(), ApiErr> {
        if self.0.config.amqp_url.is_empty() {
            return Err(ApiErr::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_broker",
                "no broker to publish on",
            ));
        }
        let mut guard = self.0.control.lock().await;
        for attempt in 0..2 {
            if guard.is_none() {
                let conn = amqp::connect(&self.0.config.amqp_url, "monitor-control", Duration::from_secs(5))
                    .await
                    .map_err(|e| {
                        ApiErr::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "broker_unreachable",
                            e.to_string(),
                        )
                    })?;
                let ch = amqp::confirm_channel(&conn).await.map_err(|e| {
                    ApiErr::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "broker_unreachable",
                        e.to_string(),
                    )
                })?;
                amqp::declare_topology(&ch).await.map_err(|e| {
                    ApiErr::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "broker_unreachable",
                        e.to_string(),
                    )
                })?;
                *guard = Some((conn, ch));
            }
            if let Some((_, ch)) = guard.as_ref() {
                match amqp::publish_control(ch, control).await {
                    Ok(()) => return Ok(()),
                    Err(e) if attempt == 0 => {
                        tracing::warn!(error = %e, "control publish failed; reconnecting");
                        *guard = None;
                    }
                    Err(e) => {
                        return Err(ApiErr::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "broker_unreachable",
                            e.to_string(),
                        ));
                    }
                }
            }
        }
        Err(ApiErr::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker_unreachable",
            "control not published",
        ))
    }

    async fn baas_call(&self, method: reqwest::Method, path: &str) -> Result<Response, ApiErr> {
        if self.0.config.baas_url.is_empty() {
            return Err(ApiErr::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_baas",
                "no baas configured",
            ));
        }
        let url = format!("{}{path}", self.0.config.baas_url.trim_end_matches('/'));
        let mut req = self.0.http.request(method, url);
        if let Some(t) = &self.0.config.baas_token {
            req = req.bearer_auth(t);
        }
        let r = req
            .send()
            .await
            .map_err(|e| ApiErr::new(StatusCode::BAD_GATEWAY, "baas_unreachable", e.to_string()))?;
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let body: Value = r.json().await.unwrap_or(Value::Null);
        Ok((status, Json(body)).into_response())
    }

    fn check_writable(&self) -> Result<(), ApiErr> {
        if self.0.config.read_only {
            Err(ApiErr::new(
                StatusCode::FORBIDDEN,
                "read_only",
                "the monitor is read-only",
            ))
        } else {
            Ok(())
        }
    }
}

/// A JSON error `{code, message, details}`.
#[derive(Debug)]
pub struct ApiErr(StatusCode, &'static str, String);

impl ApiErr {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self(status, code, message.into())
    }
    fn internal(message: String) -> Self {
        Self(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
    fn not_found(what: &str) -> Self {
        Self(StatusCode::NOT_FOUND, "not_found", format!("no such {what}"))
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(json!({"code": self.1, "message": self.2, "details": {}})),
        )
            .into_response()
    }
}

/// The OpenAPI description's fixed parts.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "benchop monitor",
        description = "Live state of benchop's workers, tasks, jobs and queues, folded from the lifecycle \
            events; history in SQLite; controls over the control exchange and baas. When auth is configured \
            every call needs HTTP basic auth or a bearer token (`Authorization` header or `access_token` \
            query parameter)."
    ),
    tags(
        (name = "live", description = "Overview and the live stream"),
        (name = "workers", description = "Workers and their controls"),
        (name = "tasks", description = "Tasks: history, search, detail, controls"),
        (name = "jobs", description = "Jobs and their progress"),
        (name = "queues", description = "Broker queues and dead letters")
    )
)]
struct ApiDoc;

fn api_router() -> OpenApiRouter<Hub> {
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(overview))
        .routes(routes!(legacy_state))
        .routes(routes!(stream))
        .routes(routes!(workers))
        .routes(routes!(worker))
        .routes(routes!(worker_shutdown))
        .routes(routes!(worker_concurrency))
        .routes(routes!(tasks))
        .routes(routes!(task))
        .routes(routes!(task_revoke))
        .routes(routes!(task_retry))
        .routes(routes!(jobs))
        .routes(routes!(job))
        .routes(routes!(job_cancel))
        .routes(routes!(queues))
        .routes(routes!(dead_letters))
}

/// The OpenAPI description, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().into_openapi()
}

/// The dashboard of standalone mode (`benchop serve`): no broker, no baas calls, read-only.
pub fn app(shared: Shared) -> Router {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    router(Hub::new(Config::standalone(addr), shared))
}

/// The full router: under the configured prefix, behind auth.
pub fn router(hub: Hub) -> Router {
    let (api, doc) = api_router().split_for_parts();
    let doc = Arc::new(doc);
    let auth = axum::middleware::from_fn_with_state(hub.clone(), require_auth);
    let inner: Router = api
        .route(
            "/assets/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(move || async move { Json((*doc).clone()) }))
        .layer(auth.clone())
        .with_state(hub.clone());
    let prefix = hub.0.config.url_prefix.trim_end_matches('/').to_owned();
    // The page at `<prefix>/` (its asset and API URLs are relative); `<prefix>` redirects there.
    let page: Router = Router::new()
        .route(&format!("{prefix}/"), get(index))
        .layer(auth)
        .with_state(hub);
    if prefix.is_empty() {
        inner.merge(page)
    } else {
        let target = format!("{prefix}/");
        Router::new()
            .nest(&prefix, inner)
            .merge(page)
            .route(&prefix, get(move || async move { Redirect::permanent(&target) }))
    }
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

async fn index(State(hub): State<Hub>) -> Html<String> {
    let ro = if hub.0.config.read_only { "true" } else { "false" };
    Html(INDEX.replace("{{READ_ONLY}}", ro))
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a request carries the configured credentials (always, when none are configured).
fn authorized(config: &Config, req: &Request) -> bool {
    if config.basic_auth.is_none() && config.token.is_none() {
        return true;
    }
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if let (Some(want), Some(b64)) = (&config.basic_auth, header.strip_prefix("Basic "))
        && let Ok(got) = base64::engine::general_purpose::STANDARD.decode(b64.trim())
        && ct_eq(&got, want.as_bytes())
    {
        return true;
    }
    if let Some(want) = &config.token {
        if let Some(got) = header.strip_prefix("Bearer ")
            && ct_eq(got.trim().as_bytes(), want.as_bytes())
        {
            return true;
        }
        let query = req.uri().query().unwrap_or("");
        if query
            .split('&')
            .filter_map(|kv| kv.strip_prefix("access_token="))
            .any(|t| ct_eq(t.as_bytes(), want.as_bytes()))
        {
            return true;
        }
    }
    false
}

async fn require_auth(State(hub): State<Hub>, req: Request, next: Next) -> Response {
    // Liveness probes stay open; everything else needs the credentials when they are configured.
    if req.uri().path().ends_with("/healthz") || authorized(&hub.0.config, &req) {
        return next.run(req).await;
    }
    let challenge = if hub.0.config.basic_auth.is_some() {
        "Basic realm=\"benchop monitor\", charset=\"UTF-8\""
    } else {
        "Bearer realm=\"benchop monitor\""
    };
    let mut r = ApiErr::new(StatusCode::UNAUTHORIZED, "unauthorized", "credentials required").into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    r
}

async fn metrics(State(hub): State<Hub>) -> Response {
    let queues = hub.queues();
    let s = lock(&hub.0.shared);
    let Some(m) = s.metrics.clone() else {
        return ApiErr::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_metrics",
            "metrics unavailable",
        )
        .into_response();
    };
    let online = s.fold.workers().values().filter(|w| w.status == "online").count();
    m.set_state(
        online,
        s.fold.task_count(),
        s.sink.as_ref().map_or(0, |k| k.dropped()),
    );
    drop(s);
    m.set_queues(&queues);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        m.render(),
    )
        .into_response()
}

// ------------------------------------------------------------------------------------------- overview

/// A job's progress.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobProgress {
    /// The job.
    #[serde(flatten)]
    pub job: JobRow,
    /// `running`, `finished` or `unknown` (its `job.created` was missed).
    pub status: String,
}

/// Everything the live page shows at once; pushed on the stream whenever it changes.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Overview {
    /// Change counter.
    pub version: u64,
    /// Server time, Unix ms.
    pub now_ms: u64,
    /// Controls disabled.
    pub read_only: bool,
    /// Workers.
    pub workers: Vec<WorkerView>,
    /// Retained tasks by state.
    pub task_counts: BTreeMap<String, u64>,
    /// Events by routing key since start.
    pub event_counts: BTreeMap<String, u64>,
    /// Recent jobs with progress, newest first.
    pub jobs: Vec<JobProgress>,
    /// The most recently seen tasks, newest first.
    pub recent_tasks: Vec<TaskRow>,
    /// Tasks per second by state.
    pub throughput: Vec<Tick>,
    /// Runtime percentiles per method: `[p50, p90, p99, samples]`, ms.
    pub runtimes: BTreeMap<String, [u64; 4]>,
    /// Queue depth over time.
    pub depth: Vec<DepthSample>,
    /// Latest queue numbers.
    pub queues: Vec<QueueStats>,
    /// Tasks in memory.
    pub retained: usize,
    /// Tasks forgotten from memory (still in the history store).
    pub evicted: u64,
}

fn job_progress(job: JobRow) -> JobProgress {
    let status = if job.finished_ms.is_some() {
        "finished"
    } else if job.tasks == 0 {
        "unknown"
    } else {
        "running"
    };
    JobProgress {
        job,
        status: status.to_owned(),
    }
}

fn build_overview(hub: &Hub) -> Overview {
    let queues = hub.queues();
    let mut s = lock(&hub.0.shared);
    let now = protocol::task::now_ms();
    s.fold.expire(now);
    let f: &Fold = &s.fold;
    let mut task_counts: BTreeMap<String, u64> = TaskStatus::ALL
        .iter()
        .map(|t| (t.as_str().to_owned(), 0))
        .collect();
    for t in f.tasks() {
        *task_counts.entry(t.status.as_str().to_owned()).or_default() += 1;
    }
    Overview {
        version: f.version(),
        now_ms: now,
        read_only: hub.0.config.read_only,
        workers: f.workers().values().cloned().collect(),
        task_counts,
        event_counts: f.event_counts(),
        jobs: f
            .jobs()
            .take(20)
            .map(|j| job_progress(JobRow::of(j, f)))
            .collect(),
        recent_tasks: f
            .tasks()
            .rev()
            .take(50)
            .map(|t| TaskRow::of(t, f, None))
            .collect(),
        throughput: f.throughput().copied().collect(),
        runtimes: f.runtime_percentiles(),
        depth: f.depth().copied().collect(),
        queues,
        retained: f.task_count(),
        evicted: f.evicted(),
    }
}

/// The live overview (the same document the stream pushes).
#[utoipa::path(get, path = "/api/overview", tag = "live", responses((status = 200, body = Overview)))]
async fn overview(State(hub): State<Hub>) -> Json<Overview> {
    Json(build_overview(&hub))
}

/// Workers, the latest tasks by id and event counts (the first monitor's shape, kept for scripts).
#[utoipa::path(get, path = "/api/state", tag = "live", responses((status = 200, description = "`{workers: {name: worker}, tasks: {id: {state, method, job_id, worker, runtime_ms}}, event_counts}`; the 1000 most recent tasks")))]
async fn legacy_state(State(hub): State<Hub>) -> Json<Value> {
    let mut s = lock(&hub.0.shared);
    s.fold.expire(protocol::task::now_ms());
    let f = &s.fold;
    let tasks: serde_json::Map<String, Value> = f
        .tasks()
        .rev()
        .take(1000)
        .map(|t| {
            let name = |sym| Some(f.strings().name(sym)).filter(|n| !n.is_empty());
            (
                t.id.to_string(),
                json!({
                    "state": t.status.as_str(),
                    "method": name(t.method),
                    "job_id": (!t.job.is_nil()).then(|| t.job.to_string()),
                    "worker": name(t.worker),
                    "runtime_ms": (t.status == TaskStatus::Succeeded).then_some(t.runtime_ms),
                }),
            )
        })
        .collect();
    Json(json!({
        "workers": f.workers(),
        "tasks": tasks,
        "event_counts": f.event_counts(),
    }))
}

/// Server-sent events: an `overview` event now and whenever the state changes (at most every 250 ms).
#[utoipa::path(get, path = "/api/stream", tag = "live", responses((status = 200, description = "`text/event-stream` of `overview` events, each an Overview", content_type = "text/event-stream")))]
async fn stream(
    State(hub): State<Hub>,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
    let ticker = tokio::time::interval(Duration::from_millis(250));
    let s = futures_util::stream::unfold((hub, ticker, None::<u64>), |(hub, mut ticker, last)| async move {
        loop {
            ticker.tick().await;
            let version = {
                let mut s = lock(&hub.0.shared);
                s.fold.expire(protocol::task::now_ms());
                s.fold.version()
            };
            if last == Some(version) {
                continue;
            }
            let body = serde_json::to_string(&build_overview(&hub)).unwrap_or_default();
            let event = SseEvent::default().event("overview").data(body);
            return Some((Ok(event), (hub, ticker, Some(version))));
        }
    });
    Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

// ------------------------------------------------------------------------------------------- workers

/// Every worker seen.
#[utoipa::path(get, path = "/api/workers", tag = "workers", responses((status = 200, body = [WorkerView])))]
async fn workers(State(hub): State<Hub>) -> Json<Vec<WorkerView>> {
    let mut s = lock(&hub.0.shared);
    s.fold.expire(protocol::task::now_ms());
    Json(s.fold.workers().values().cloned().collect())
}

/// A worker and its recent tasks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkerDetail {
    /// The worker.
    pub worker: WorkerView,
    /// Its most recent tasks.
    pub tasks: TaskPage,
}

/// One worker with its recent tasks.
#[utoipa::path(get, path = "/api/workers/{name}", tag = "workers",
    params(("name" = String, Path, description = "Worker name")),
    responses((status = 200, body = WorkerDetail), (status = 404, description = "Unknown worker")))]
async fn worker(State(hub): State<Hub>, Path(name): Path<String>) -> Result<Json<WorkerDetail>, ApiErr> {
    let w = {
        let mut s = lock(&hub.0.shared);
        s.fold.expire(protocol::task::now_ms());
        s.fold.workers().get(&name).cloned()
    };
    let w = w.ok_or_else(|| ApiErr::not_found("worker"))?;
    let q = TaskQuery {
        worker: Some(name),
        per_page: Some(50),
        ..TaskQuery::default()
    };
    let tasks = hub.store(move |s| s.tasks(&q)).await?;
    Ok(Json(WorkerDetail { worker: w, tasks }))
}

/// New concurrency.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ConcurrencyBody {
    /// Task slots, 1 to 256.
    pub concurrency: u32,
}

/// Ask a worker to drain and exit.
#[utoipa::path(post, path = "/api/workers/{name}/shutdown", tag = "workers",
    params(("name" = String, Path, description = "Worker name (`*`: all)")),
    responses((status = 202, description = "Published"), (status = 403, description = "Read-only")))]
async fn worker_shutdown(State(hub): State<Hub>, Path(name): Path<String>) -> Result<Response, ApiErr> {
    hub.check_writable()?;
    hub.publish(&Control::Shutdown { worker: name.clone() }).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"published": "shutdown", "worker": name})),
    )
        .into_response())
}

/// Change how many tasks a worker runs at once.
#[utoipa::path(post, path = "/api/workers/{name}/concurrency", tag = "workers",
    params(("name" = String, Path, description = "Worker name (`*`: all)")),
    request_body = ConcurrencyBody,
    responses((status = 202, description = "Published"), (status = 400, description = "Out of range"), (status = 403, description = "Read-only")))]
async fn worker_concurrency(
    State(hub): State<Hub>,
    Path(name): Path<String>,
    Json(body): Json<ConcurrencyBody>,
) -> Result<Response, ApiErr> {
    hub.check_writable()?;
    if !(1..=256).contains(&body.concurrency) {
        return Err(ApiErr::new(
            StatusCode::BAD_REQUEST,
            "bad_concurrency",
            "concurrency must be 1 to 256",
        ));
    }
    hub.publish(&Control::SetConcurrency {
        worker: name.clone(),
        concurrency: body.concurrency,
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"published": "set_concurrency", "worker": name, "concurrency": body.concurrency})),
    )
        .into_response())
}

// --------------------------------------------------------------------------------------------- tasks

/// Tasks from all history: filters, search, time range, sorting, paging.
#[utoipa::path(get, path = "/api/tasks", tag = "tasks", params(TaskQuery),
    responses((status = 200, body = TaskPage), (status = 400, description = "Bad filter or sort")))]
async fn tasks(State(hub): State<Hub>, Query(q): Query<TaskQuery>) -> Result<Json<TaskPage>, ApiErr> {
    Ok(Json(hub.store(move |s| s.tasks(&q)).await?))
}

/// A task with its timeline and, from baas, its result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskDetail {
    /// The task.
    pub task: TaskRow,
    /// Its events, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// Its result from baas's ranking (prices, relerr, timings, setting), when baas answers.
    #[schema(value_type = Object)]
    pub result: Option<Value>,
    /// baas's view of the task (attempts, error), when baas answers.
    #[schema(value_type = Object)]
    pub baas_task: Option<Value>,
    /// The problem's parameters, when baas answers.
    #[schema(value_type = Object)]
    pub problem: Option<Value>,
}

/// One task: parameters, prices, relerr, timings, attempts, error, timeline.
#[utoipa::path(get, path = "/api/tasks/{id}", tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id")),
    responses((status = 200, body = TaskDetail), (status = 404, description = "Unknown task")))]
async fn task(State(hub): State<Hub>, Path(id): Path<Uuid>) -> Result<Json<TaskDetail>, ApiErr> {
    let (row, timeline) = hub
        .store(move |s| s.task(id))
        .await?
        .ok_or_else(|| ApiErr::not_found("task"))?;
    let (mut result, mut baas_task, mut problem) = (None, None, None);
    if let Some(job) = row.job_id
        && let Some(view) = hub.baas_get(&format!("/v1/jobs/{job}")).await
    {
        let method = row.method.clone().unwrap_or_default();
        result = view["ranking"]
            .as_array()
            .and_then(|r| r.iter().find(|e| e["method"] == method.as_str()).cloned());
        baas_task = view["tasks"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["id"] == id.to_string().as_str()).cloned());
        if let Some(p) = view["problem"].as_str() {
            problem = hub.baas_get(&format!("/v1/problems/{p}")).await;
        }
    }
    Ok(Json(TaskDetail {
        task: row,
        timeline,
        result,
        baas_task,
        problem,
    }))
}

/// Revocation options.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct RevokeBody {
    /// Also stop the task where it runs now.
    #[serde(default)]
    pub terminate: bool,
}

/// Revoke a task (with `terminate`, stop it where it runs).
#[utoipa::path(post, path = "/api/tasks/{id}/revoke", tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id")),
    request_body = RevokeBody,
    responses((status = 202, description = "Published"), (status = 403, description = "Read-only")))]
async fn task_revoke(
    State(hub): State<Hub>,
    Path(id): Path<Uuid>,
    body: Option<Json<RevokeBody>>,
) -> Result<Response, ApiErr> {
    hub.check_writable()?;
    let terminate = body.is_some_and(|b| b.terminate);
    hub.publish(&Control::RevokeTask {
        task_id: id,
        terminate,
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"published": "revoke_task", "task_id": id, "terminate": terminate})),
    )
        .into_response())
}

/// Retry a failed or dead-lettered task (through baas).
#[utoipa::path(post, path = "/api/tasks/{id}/retry", tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id")),
    responses((status = 202, description = "baas re-published it"), (status = 403, description = "Read-only"), (status = 502, description = "baas unreachable")))]
async fn task_retry(State(hub): State<Hub>, Path(id): Path<Uuid>) -> Result<Response, ApiErr> {
    hub.check_writable()?;
    hub.baas_call(reqwest::Method::POST, &format!("/v1/tasks/{id}/retry"))
        .await
}

// ---------------------------------------------------------------------------------------------- jobs

/// Recent jobs with progress, newest first.
#[utoipa::path(get, path = "/api/jobs", tag = "jobs", responses((status = 200, body = [JobProgress])))]
async fn jobs(State(hub): State<Hub>) -> Result<Json<Vec<JobProgress>>, ApiErr> {
    let rows = hub.store(|s| s.jobs(200)).await?;
    // Memory is fresher than the store (writes are batched): prefer it.
    let s = lock(&hub.0.shared);
    Ok(Json(
        rows.into_iter()
            .map(|r| {
                let fresh = s.fold.job(&r.job_id).map(|j| JobRow::of(j, &s.fold));
                job_progress(fresh.unwrap_or(r))
            })
            .collect(),
    ))
}

/// A job: progress, tasks, ranking as it fills in.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobDetail {
    /// Progress.
    pub job: JobProgress,
    /// Its tasks.
    pub tasks: Vec<TaskRow>,
    /// Ranking: baas's when it answers, else succeeded tasks by runtime.
    #[schema(value_type = Object)]
    pub ranking: Value,
    /// `baas` or `events`.
    pub ranking_source: String,
}

/// One job.
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, body = JobDetail), (status = 404, description = "Unknown job")))]
async fn job(State(hub): State<Hub>, Path(id): Path<Uuid>) -> Result<Json<JobDetail>, ApiErr> {
    let q = TaskQuery {
        job: Some(id),
        per_page: Some(500),
        sort: Some("first_ms".into()),
        order: Some("asc".into()),
        ..TaskQuery::default()
    };
    let (page, stored) = hub.store(move |s| Ok((s.tasks(&q)?, s.job(id)?))).await?;
    let fresh = {
        let s = lock(&hub.0.shared);
        s.fold.job(&id).map(|j| JobRow::of(j, &s.fold))
    };
    let row = fresh.or(stored).ok_or_else(|| ApiErr::not_found("job"))?;
    let (ranking, source) = match hub.baas_get(&format!("/v1/jobs/{id}")).await {
        Some(view) => (view["ranking"].clone(), "baas"),
        None => {
            let mut done: Vec<&TaskRow> = page.tasks.iter().filter(|t| t.state == "succeeded").collect();
            done.sort_by_key(|t| t.runtime_ms.unwrap_or(u64::MAX));
            let r: Vec<Value> = done
                .iter()
                .enumerate()
                .map(|(i, t)| json!({"rank": i + 1, "method": t.method, "runtime_ms": t.runtime_ms, "worker": t.worker}))
                .collect();
            (Value::Array(r), "events")
        }
    };
    Ok(Json(JobDetail {
        job: job_progress(row),
        tasks: page.tasks,
        ranking,
        ranking_source: source.to_owned(),
    }))
}

/// Cancel a job (through baas, which tells the workers).
#[utoipa::path(post, path = "/api/jobs/{id}/cancel", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 202, description = "baas cancelled it"), (status = 403, description = "Read-only"), (status = 502, description = "baas unreachable")))]
async fn job_cancel(State(hub): State<Hub>, Path(id): Path<Uuid>) -> Result<Response, ApiErr> {
    hub.check_writable()?;
    hub.baas_call(reqwest::Method::DELETE, &format!("/v1/jobs/{id}"))
        .await
}

// -------------------------------------------------------------------------------------------- queues

/// Queue numbers and their history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueuesView {
    /// Latest numbers per queue.
    pub queues: Vec<QueueStats>,
    /// Depth over time.
    pub depth: Vec<DepthSample>,
}

/// benchop's queues: ready, unacked, consumers, rates, oldest message age.
#[utoipa::path(get, path = "/api/queues", tag = "queues", responses((status = 200, body = QueuesView)))]
async fn queues(State(hub): State<Hub>) -> Json<QueuesView> {
    let queues = hub.queues();
    let depth = lock(&hub.0.shared).fold.depth().copied().collect();
    Json(QueuesView { queues, depth })
}

/// The head of the dead-letter queue (left in place).
#[utoipa::path(get, path = "/api/queues/dead", tag = "queues", responses((status = 200, body = [DeadLetter])))]
async fn dead_letters(State(hub): State<Hub>) -> Json<Vec<DeadLetter>> {
    match &hub.0.broker {
        Some(b) => Json(b.dead_letters(crate::broker::DEAD_PEEK).await),
        None => Json(Vec::new()),
    }
}

/// Poll the broker's queues every `queue_poll_secs` until `token` is cancelled.
pub async fn poll_queues(hub: Hub, token: CancellationToken) {
    let Some(broker) = hub.0.broker.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(hub.0.config.queue_poll_secs.max(1)));
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let oldest = lock(&hub.0.shared).fold.oldest_waiting_job_ms();
        let stats = broker.queues(oldest).await;
        let find = |n: &str| stats.iter().find(|q| q.name == n);
        let tasks = find(protocol::topology::TASKS_QUEUE);
        let sample = DepthSample {
            t: protocol::task::now_ms(),
            tasks_ready: tasks.map_or(0, |q| q.ready),
            tasks_unacked: tasks.and_then(|q| q.unacked).unwrap_or(0),
            dead: find(protocol::topology::DEAD_QUEUE).map_or(0, |q| q.ready),
        };
        if !stats.is_empty() {
            lock(&hub.0.shared).fold.push_depth(sample);
        }
        match hub.0.queues.lock() {
            Ok(mut q) => *q = stats,
            Err(p) => *p.into_inner() = stats,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub_with(config: Config) -> Hub {
        Hub::new(config, Arc::new(Mutex::new(crate::MonitorState::new(100))))
    }

    /// Serve `app` on a free port; returns its base URL.
    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn with_auth_on_every_page_and_api_call_needs_credentials() {
        let mut config = Config::standalone(([127, 0, 0, 1], 0).into());
        config.basic_auth = Some("ops:s3cret".into());
        config.token = Some("tok".into());
        config.url_prefix = "/monitor".into();
        let base = serve(router(hub_with(config))).await;
        let http = reqwest::Client::new();
        for path in [
            "/monitor/",
            "/monitor/api/overview",
            "/monitor/api/tasks",
            "/monitor/api/workers",
            "/monitor/metrics",
            "/monitor/openapi.json",
            "/monitor/assets/app.js",
            "/monitor/api/stream",
        ] {
            let r = http.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(r.status(), 401, "{path}");
            assert!(r.headers().contains_key("www-authenticate"), "{path}");
            let r = http
                .get(format!("{base}{path}"))
                .bearer_auth("nope")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{path}");
            let r = http
                .get(format!("{base}{path}"))
                .basic_auth("ops", Some("wrong"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{path}");
        }
        let r = http
            .get(format!("{base}/monitor/api/overview"))
            .basic_auth("ops", Some("s3cret"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = http
            .get(format!("{base}/monitor/api/workers"))
            .bearer_auth("tok")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = http
            .get(format!("{base}/monitor/api/tasks?access_token=tok"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = http
            .get(format!("{base}/monitor/"))
            .bearer_auth("tok")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("benchop monitor"));
        let r = http.get(format!("{base}/monitor/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        // Nothing is served outside the prefix.
        let r = http
            .get(format!("{base}/api/overview?access_token=tok"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }

    #[tokio::test]
    async fn read_only_refuses_controls_and_the_openapi_lists_every_endpoint() {
        let base = serve(router(hub_with(Config::standalone(([127, 0, 0, 1], 0).into())))).await;
        let http = reqwest::Client::new();
        let id = Uuid::new_v4();
        for path in [
            format!("/api/tasks/{id}/revoke"),
            format!("/api/tasks/{id}/retry"),
            format!("/api/jobs/{id}/cancel"),
            "/api/workers/w/shutdown".to_owned(),
        ] {
            let r = http.post(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(r.status(), 403, "{path}");
        }
        let doc: Value = http
            .get(format!("{base}/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for p in [
            "/api/overview",
            "/api/tasks",
            "/api/tasks/{id}",
            "/api/jobs/{id}",
            "/api/queues",
            "/api/queues/dead",
            "/api/workers/{name}/concurrency",
            "/api/stream",
        ] {
            assert!(
                doc["paths"][p].is_object(),
                "{p} missing from the OpenAPI document"
            );
        }
        let r = http
            .get(format!("{base}/api/tasks?state=bogus"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
    }
}
