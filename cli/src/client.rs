//! The HTTP client commands of `benchop`: submit, status, watch, cancel, leaderboard, plot against a
//! running server (`benchop serve`, or baas with workers).
//!
//! Every failure becomes a [`ClientError`] with a one-line message and a distinct exit code
//! ([`ClientError::exit_code`], listed in the README), so scripts can tell an unreachable server from an
//! unknown job or a refused request.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use protocol::api::{ApiError, JobAccepted, JobRequest, JobStatus, JobView, Leaderboard};

use crate::table::{self, Layout};

/// Exit code: the server could not be reached.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code: the job, problem or endpoint does not exist (HTTP 404).
pub const EXIT_NOT_FOUND: u8 = 4;
/// Exit code: the server refused the request as invalid (HTTP 400, 409, 413, 415, 422).
pub const EXIT_REFUSED: u8 = 5;
/// Exit code: no or a wrong token (HTTP 401, 403).
pub const EXIT_UNAUTHORIZED: u8 = 6;
/// Exit code: the server failed (HTTP 5xx) or answered something unreadable.
pub const EXIT_SERVER: u8 = 7;
/// Exit code: the watched job was cancelled.
pub const EXIT_CANCELLED: u8 = 8;

/// Longest `wait` the server honours on `GET /v1/jobs/{id}` (its `MAX_WAIT_SECS`).
const POLL_WAIT_SECS: u64 = 30;

/// Where the server is and how to authenticate (flattened into every client command).
#[derive(Debug, Clone, clap::Args)]
pub struct Remote {
    /// Base URL of the benchop API.
    #[arg(long, env = "BENCHOP_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API token, sent as `Authorization: Bearer <token>`.
    #[arg(long, env = "BENCHOP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// What a client command failed with; each kind has its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection (refused, DNS, time-out).
    #[error("cannot reach the server at {server}: {reason} (is it running? set --server or BENCHOP_SERVER)")]
    Unreachable {
        /// Base URL.
        server: String,
        /// Why, in one line.
        reason: String,
    },
    /// The server answered with an error body.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// Message.
        message: String,
    },
    /// The answer could not be read.
    #[error("unreadable answer from the server: {0}")]
    Protocol(String),
    /// Writing output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The watched job was cancelled.
    #[error("job {0} was cancelled")]
    Cancelled(String),
}

impl ClientError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Unreachable { .. } => EXIT_UNREACHABLE,
            ClientError::Api { status, .. } => match *status {
                404 => EXIT_NOT_FOUND,
                401 | 403 => EXIT_UNAUTHORIZED,
                s if s >= 500 => EXIT_SERVER,
                _ => EXIT_REFUSED,
            },
            ClientError::Protocol(_) => EXIT_SERVER,
            ClientError::Io(_) => 1,
            ClientError::Cancelled(_) => EXIT_CANCELLED,
        }
    }
}

/// A small blocking-free client over reqwest.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client for `remote`.
    pub fn new(remote: &Remote) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Self {
            http,
            base: remote.server.trim_end_matches('/').to_owned(),
            token: remote.token.clone().filter(|t| !t.is_empty()),
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn transport(&self, e: reqwest::Error) -> ClientError {
        if e.is_connect() || e.is_timeout() || e.is_request() {
            // The innermost cause is the informative one ("Connection refused").
            let mut reason = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                reason = s.to_string();
                source = s.source();
            }
            ClientError::Unreachable {
                server: self.base.clone(),
                reason,
            }
        } else {
            ClientError::Protocol(e.to_string())
        }
    }

    /// Send, and turn a non-2xx answer into [`ClientError::Api`].
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let response = request.send().await.map_err(|e| self.transport(e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ApiError>(&body) {
            Ok(e) => ClientError::Api {
                status: status.as_u16(),
                message: cli_message(&e),
                code: e.code,
            },
            Err(_) => ClientError::Api {
                status: status.as_u16(),
                code: status
                    .canonical_reason()
                    .unwrap_or("error")
                    .to_lowercase()
                    .replace(' ', "_"),
                message: format!("the server answered {status}"),
            },
        })
    }

    async fn json<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, ClientError> {
        let response = self.send(request).await?;
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// `POST /v1/jobs`.
    pub async fn submit(&self, request: &JobRequest) -> Result<JobAccepted, ClientError> {
        self.json(
            self.request(Method::POST, "/v1/jobs")
                .timeout(Duration::from_secs(30))
                .json(request),
        )
        .await
    }

    /// `GET /v1/jobs/{id}?wait=…`.
    pub async fn job(&self, id: &str, wait_secs: u64) -> Result<JobView, ClientError> {
        self.json(
            self.request(Method::GET, &format!("/v1/jobs/{}?wait={wait_secs}", encode(id)))
                .timeout(Duration::from_secs(wait_secs + 30)),
        )
        .await
    }

    /// `DELETE /v1/jobs/{id}`.
    pub async fn cancel(&self, id: &str) -> Result<JobView, ClientError> {
        self.json(
            self.request(Method::DELETE, &format!("/v1/jobs/{}", encode(id)))
                .timeout(Duration::from_secs(30)),
        )
        .await
    }

    /// `PUT /v1/jobs/{id}/visibility`.
    pub async fn set_visibility(
        &self,
        id: &str,
        visibility: protocol::accounts::Visibility,
    ) -> Result<protocol::accounts::SharesView, ClientError> {
        let body = protocol::accounts::SetVisibility { visibility };
        self.json(
            self.request(Method::PUT, &format!("/v1/jobs/{}/visibility", encode(id)))
                .timeout(Duration::from_secs(30))
                .json(&body),
        )
        .await
    }

    /// `PUT /v1/jobs/{id}/shares/{user}`, or with no level `DELETE` it.
    pub async fn share(
        &self,
        id: &str,
        user: &str,
        level: Option<protocol::accounts::ShareLevel>,
    ) -> Result<protocol::accounts::SharesView, ClientError> {
        let path = format!("/v1/jobs/{}/shares/{}", encode(id), encode(user));
        let request = match level {
            Some(level) => self
                .request(Method::PUT, &path)
                .json(&protocol::accounts::SetShare { level }),
            None => self.request(Method::DELETE, &path),
        };
        self.json(request.timeout(Duration::from_secs(30))).await
    }

    /// `POST /v1/jobs/{id}/links`.
    pub async fn create_link(
        &self,
        id: &str,
        expires_in: &str,
    ) -> Result<protocol::accounts::CreatedLink, ClientError> {
        let body = protocol::accounts::NewLink {
            expires_in: expires_in.to_owned(),
        };
        self.json(
            self.request(Method::POST, &format!("/v1/jobs/{}/links", encode(id)))
                .timeout(Duration::from_secs(30))
                .json(&body),
        )
        .await
    }

    /// `GET /v1/rankings/{problem}`.
    pub async fn leaderboard(
        &self,
        problem: &str,
        tolerance: Option<f64>,
    ) -> Result<Leaderboard, ClientError> {
        let mut path = format!("/v1/rankings/{}", encode(problem));
        if let Some(t) = tolerance {
            path.push_str(&format!("?tolerance={t:e}"));
        }
        self.json(self.request(Method::GET, &path).timeout(Duration::from_secs(30)))
            .await
    }

    /// An SVG chart: `GET /v1/jobs/{id}/plot.svg` or `GET /v1/rankings/{problem}/plot.svg`.
    pub async fn plot(&self, path: &str) -> Result<String, ClientError> {
        let response = self
            .send(self.request(Method::GET, path).timeout(Duration::from_secs(30)))
            .await?;
        response.text().await.map_err(|e| self.transport(e))
    }

    /// Follow a job to its end: the server-sent events of `GET /v1/jobs/{id}/events` when the stream
    /// works, polling `GET /v1/jobs/{id}?wait=` otherwise. `progress` sees `(done, total)`.
    pub async fn watch(&self, id: &str, mut progress: impl FnMut(u32, u32)) -> Result<JobView, ClientError> {
        match self.follow_events(id, &mut progress).await {
            Ok(Some(view)) => return Ok(view),
            // The stream ended early or broke: poll instead (below).
            Ok(None) => {}
            // Unknown job, bad id, no token: polling would say the same.
            Err(e @ ClientError::Api { .. }) => return Err(e),
            Err(e) => tracing::debug!(error = %e, "event stream failed; polling"),
        }
        loop {
            let view = self.job(id, POLL_WAIT_SECS).await?;
            progress(view.progress.done, view.progress.total);
            if view.status.is_final() {
                return Ok(view);
            }
        }
    }

    /// Read the event stream; `Ok(None)` when it ended without the final event.
    async fn follow_events(
        &self,
        id: &str,
        progress: &mut impl FnMut(u32, u32),
    ) -> Result<Option<JobView>, ClientError> {
        let mut response = self
            .send(
                self.request(Method::GET, &format!("/v1/jobs/{}/events", encode(id)))
                    .header(reqwest::header::ACCEPT, "text/event-stream"),
            )
            .await?;
        let mut parser = SseParser::default();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            for event in parser.push(&chunk) {
                match event.name.as_str() {
                    "progress" => {
                        let p: Value = serde_json::from_str(&event.data)
                            .map_err(|e| ClientError::Protocol(e.to_string()))?;
                        let n = |k: &str| p[k].as_u64().and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
                        progress(n("done"), n("total"));
                    }
                    "completed" | "cancelled" => {
                        let view: JobView = serde_json::from_str(&event.data)
                            .map_err(|e| ClientError::Protocol(e.to_string()))?;
                        progress(view.progress.done, view.progress.total);
                        return Ok(Some(view));
                    }
                    _ => {}
                }
            }
        }
        Ok(None)
    }
}

/// Where the CLI's user finds the valid ids after a refusal with this code.
fn hint(code: &str) -> Option<&'static str> {
    match code {
        "unknown_problem" => Some("`benchop problems` lists the catalogue"),
        "unknown_method" => Some("`benchop methods` lists them"),
        _ => None,
    }
}

/// A server's refusal in the CLI's words: an unknown id names the command that lists the valid ones
/// (the API's message names the endpoint instead).
fn cli_message(e: &ApiError) -> String {
    let id = |key: &str| e.details.get(key).and_then(Value::as_str);
    match (e.code.as_str(), hint(&e.code)) {
        ("unknown_problem", Some(h)) if id("problem").is_some() => {
            format!("unknown problem `{}`; {h}", id("problem").unwrap_or_default())
        }
        ("unknown_method", Some(h)) if id("method").is_some() => {
            format!("unknown method `{}`; {h}", id("method").unwrap_or_default())
        }
        _ => e.message.clone(),
    }
}

/// A job request refused before it was sent, in the CLI's words: flags for fields, commands for
/// catalogues.
pub fn refusal(e: &protocol::api::ValidationError) -> String {
    use protocol::api::ValidationError as V;
    match e {
        V::InvalidField { field, reason } => format!("invalid --{field}: {reason}"),
        _ => match hint(e.code()) {
            Some(h) => format!("{e}; {h}"),
            None => e.to_string(),
        },
    }
}

/// Percent-encode a path segment (ids and problem names are plain, but a typo must not change the path).
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` field (`message` when absent).
    pub name: String,
    /// `data:` lines joined by newlines.
    pub data: String,
}

/// An incremental `text/event-stream` parser (the parts the benchop API uses: `event`, `data`, comments).
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: String,
    name: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    /// Feed bytes; returns the events completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.push_str(&String::from_utf8_lossy(bytes));
        let mut events = Vec::new();
        while let Some(end) = self.buffer.find('\n') {
            let line: String = self.buffer.drain(..=end).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() || self.name.is_some() {
                    events.push(SseEvent {
                        name: self.name.take().unwrap_or_else(|| "message".to_owned()),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
            } else if line.starts_with(':') {
                // A comment: the server's keep-alive.
            } else {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => self.name = Some(value.to_owned()),
                    "data" => self.data.push(value.to_owned()),
                    _ => {}
                }
            }
        }
        events
    }
}

/// `benchop submit`: options of the job.
#[derive(Debug, Clone, clap::Args)]
pub struct SubmitArgs {
    /// Problem id, e.g. 1aI (see `benchop problems`).
    pub problem: String,
    /// Comma-separated methods (default: every method that applies).
    #[arg(long, value_delimiter = ',')]
    pub methods: Option<Vec<String>>,
    /// Relative-error tolerance (default 1e-4).
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// Timed runs per task (default 3).
    #[arg(long)]
    pub repeats: Option<u32>,
    /// Work-precision sweep: price every ladder level of every method (see `benchop plot`).
    #[arg(long)]
    pub ladder: bool,
    /// Wait for the job to finish (with a progress bar) and print its ranking.
    #[arg(long)]
    pub wait: bool,
}

/// Which chart `benchop plot` downloads.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PlotKind {
    /// Relative error against time, log-log, one series per method.
    WorkPrecision,
    /// Time to the tolerance per method.
    Bars,
}

impl PlotKind {
    fn query(self) -> &'static str {
        match self {
            PlotKind::WorkPrecision => "work-precision",
            PlotKind::Bars => "bars",
        }
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<(), ClientError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ClientError::Protocol(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
fn progress_bar(id: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} job {prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} tasks",
    ) {
        bar.set_style(style);
    }
    bar.set_prefix(id.chars().take(8).collect::<String>());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Follow a job with a progress bar (none with `--json`), then report it.
async fn watch_and_report(client: &Client, id: &str, json: bool, layout: Layout) -> Result<(), ClientError> {
    let bar = (!json).then(|| progress_bar(id));
    let view = client
        .watch(id, |done, total| {
            if let Some(bar) = &bar {
                bar.set_length(u64::from(total));
                bar.set_position(u64::from(done));
            }
        })
        .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let view = view?;
    report(&view, json, layout)?;
    if view.status == JobStatus::Cancelled {
        return Err(ClientError::Cancelled(view.id.to_string()));
    }
    Ok(())
}

/// Print a job: JSON, or a summary, the ranking and (for ladder jobs) the work-precision table.
fn report(view: &JobView, json: bool, layout: Layout) -> Result<(), ClientError> {
    if json {
        return print_json(view);
    }
    let p = view.progress;
    let mut out = std::io::stdout().lock();
    // Two short lines rather than one of 90 columns: the id alone, then the state.
    writeln!(out, "job {} on {}", view.id, view.problem)?;
    writeln!(
        out,
        "{}: {}/{} tasks done, {} failed; tolerance {:e}",
        view.status.as_str(),
        p.done,
        p.total,
        p.failed,
        view.tolerance
    )?;
    if !view.ranking.is_empty() {
        writeln!(out, "{}", table::ranking(view, layout))?;
    }
    if !view.work_precision.is_empty() {
        writeln!(
            out,
            "work precision (every level):\n{}",
            table::work_precision(view, layout)
        )?;
    }
    Ok(())
}

/// `benchop submit`.
pub async fn submit(
    remote: &Remote,
    args: SubmitArgs,
    json: bool,
    layout: Layout,
) -> Result<(), ClientError> {
    let client = Client::new(remote)?;
    let mut request = JobRequest::for_problem(&args.problem);
    request.methods = args.methods;
    request.tolerance = args.tolerance;
    request.repeats = args.repeats;
    request.ladder = args.ladder.then_some(true);
    let accepted = client.submit(&request).await?;
    let id = accepted.id.to_string();
    if args.wait {
        if !json {
            eprintln!("submitted job {id} ({} tasks)", accepted.tasks);
        }
        return watch_and_report(&client, &id, json, layout).await;
    }
    if json {
        return print_json(&accepted);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "submitted job {id}: {} tasks on {}\nfollow it with: benchop watch {id}",
        accepted.tasks, args.problem
    )?;
    Ok(())
}

/// `benchop status`.
pub async fn status(remote: &Remote, id: &str, json: bool, layout: Layout) -> Result<(), ClientError> {
    let view = Client::new(remote)?.job(id, 0).await?;
    report(&view, json, layout)
}

/// `benchop watch`.
pub async fn watch(remote: &Remote, id: &str, json: bool, layout: Layout) -> Result<(), ClientError> {
    watch_and_report(&Client::new(remote)?, id, json, layout).await
}

/// `benchop cancel`.
pub async fn cancel(remote: &Remote, id: &str, json: bool, layout: Layout) -> Result<(), ClientError> {
    let view = Client::new(remote)?.cancel(id).await?;
    if !json {
        eprintln!("cancelled job {id}");
    }
    report(&view, json, layout)
}

/// `job:<id>` (or a bare id) as the job id.
fn job_target(target: &str) -> Result<&str, ClientError> {
    let id = target.strip_prefix("job:").unwrap_or(target);
    if id.is_empty() {
        return Err(ClientError::Api {
            status: 400,
            code: "invalid_id".into(),
            message: format!("`{target}` names no job: use job:<id>"),
        });
    }
    Ok(id)
}

/// `benchop share` / `benchop unshare`: with a user, share at `level` (`None`: stop sharing); without
/// one, make the job public (`level` given) or private again.
pub async fn share(
    remote: &Remote,
    target: &str,
    user: Option<&str>,
    level: Option<protocol::accounts::ShareLevel>,
    json: bool,
) -> Result<(), ClientError> {
    use protocol::accounts::Visibility;
    let id = job_target(target)?;
    let client = Client::new(remote)?;
    let view = match user {
        Some(user) => client.share(id, user, level).await?,
        None => {
            let visibility = if level.is_some() {
                Visibility::Public
            } else {
                Visibility::Private
            };
            client.set_visibility(id, visibility).await?
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&view).map_err(|e| ClientError::Protocol(e.to_string()))?
        );
        return Ok(());
    }
    let shares: Vec<String> = view
        .shares
        .iter()
        .map(|s| format!("{} ({})", s.user, s.level.as_str()))
        .collect();
    println!(
        "job {id}: {}, owner {}, shared with {}",
        view.visibility.as_str(),
        view.owner.as_deref().unwrap_or("none"),
        if shares.is_empty() {
            "nobody".to_owned()
        } else {
            shares.join(", ")
        }
    );
    Ok(())
}

/// `benchop share job:<id> --link`: print a share link (the secret is shown once).
pub async fn link(remote: &Remote, target: &str, expires_in: &str, json: bool) -> Result<(), ClientError> {
    let id = job_target(target)?;
    let created = Client::new(remote)?.create_link(id, expires_in).await?;
    let url = format!("{}{}", remote.server.trim_end_matches('/'), created.path);
    if json {
        println!(
            "{}",
            serde_json::json!({ "url": url, "expires_ms": created.expires_ms })
        );
    } else {
        println!("{url}");
        eprintln!("anyone with this link may read job {id} until it expires; it is shown this once");
    }
    Ok(())
}

/// `benchop leaderboard`.
pub async fn leaderboard(
    remote: &Remote,
    problem: &str,
    tolerance: Option<f64>,
    json: bool,
    layout: Layout,
) -> Result<(), ClientError> {
    let board = Client::new(remote)?.leaderboard(problem, tolerance).await?;
    if json {
        return print_json(&board);
    }
    let mut out = std::io::stdout().lock();
    if board.entries.is_empty() {
        writeln!(
            out,
            "no completed runs of {} at tolerance {:e} yet",
            board.problem, board.tolerance
        )?;
    } else {
        writeln!(
            out,
            "{} at tolerance {:e}:\n{}",
            board.problem,
            board.tolerance,
            table::leaderboard(&board, layout)
        )?;
    }
    Ok(())
}

/// What `benchop plot` draws.
#[derive(Debug, Clone)]
pub enum PlotTarget {
    /// A job.
    Job(String),
    /// A problem's leaderboard.
    Problem(String),
}

/// `benchop plot`: download the SVG to `output` (stdout when `None`).
pub async fn plot(
    remote: &Remote,
    target: PlotTarget,
    kind: PlotKind,
    output: Option<PathBuf>,
    json: bool,
) -> Result<(), ClientError> {
    let path = match &target {
        PlotTarget::Job(id) => format!("/v1/jobs/{}/plot.svg?kind={}", encode(id), kind.query()),
        PlotTarget::Problem(p) => format!("/v1/rankings/{}/plot.svg?kind={}", encode(p), kind.query()),
    };
    let svg = Client::new(remote)?.plot(&path).await?;
    match output {
        Some(file) => {
            std::fs::write(&file, &svg)?;
            if json {
                print_json(&serde_json::json!({ "file": file, "bytes": svg.len() }))?;
            } else {
                eprintln!("wrote {} ({} bytes)", file.display(), svg.len());
            }
        }
        None => std::io::stdout().lock().write_all(svg.as_bytes())?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sse_parser_handles_events_split_across_chunks_and_keep_alives() {
        let mut p = SseParser::default();
        let mut events = p.push(b"event: progress\ndata: {\"done\":1,");
        assert!(events.is_empty());
        events.extend(p.push(b"\"total\":3}\n\n:\n\nevent: completed\r\ndata: {}\r\n"));
        events.extend(p.push(b"\r\n"));
        assert_eq!(
            events,
            vec![
                SseEvent {
                    name: "progress".into(),
                    data: r#"{"done":1,"total":3}"#.into()
                },
                SseEvent {
                    name: "completed".into(),
                    data: "{}".into()
                },
            ]
        );
    }

    #[test]
    fn each_failure_kind_has_its_own_exit_code() {
        let api = |status: u16| ClientError::Api {
            status,
            code: "x".into(),
            message: "m".into(),
        };
        let codes = [
            ClientError::Unreachable {
                server: "s".into(),
                reason: "r".into(),
            }
            .exit_code(),
            api(404).exit_code(),
            api(422).exit_code(),
            api(401).exit_code(),
            api(503).exit_code(),
            ClientError::Cancelled("j".into()).exit_code(),
        ];
        assert_eq!(
            codes,
            [
                EXIT_UNREACHABLE,
                EXIT_NOT_FOUND,
                EXIT_REFUSED,
                EXIT_UNAUTHORIZED,
                EXIT_SERVER,
                EXIT_CANCELLED
            ]
        );
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode("1aI"), "1aI");
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }
}
