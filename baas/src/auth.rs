//! Authentication: accounts' tokens (in the store, see [`crate::accounts`]) and static tokens.
//!
//! Static tokens come from `BAAS_API_TOKENS` (comma-separated) and/or a file (`--api-token-file`, one
//! per line), never from a message or a log line. With no user and no static token the API is open,
//! which is the right default only for the loopback address baas binds by default; the moment a user
//! exists, every request but the catalogue, health and the API description needs a token
//! ([`require_token`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::accounts;
use crate::error::AppError;
use crate::store::{Role, Scope, Store, now_ms};

/// Reading the token file failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct TokenError {
    path: String,
    source: std::io::Error,
}

/// The accepted bearer tokens.
#[derive(Default)]
pub struct Tokens(Vec<String>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

impl Tokens {
    /// Tokens from a list (empty entries ignored).
    pub fn new<I: IntoIterator<Item = String>>(tokens: I) -> Self {
        Self(
            tokens
                .into_iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty() && !t.starts_with('#'))
                .collect(),
        )
    }

    /// Tokens from `BAAS_API_TOKENS` and the optional file.
    pub fn from_env_and_file(file: Option<&Path>) -> Result<Self, TokenError> {
        let mut all: Vec<String> = std::env::var("BAAS_API_TOKENS")
            .unwrap_or_default()
            .split(',')
            .map(str::to_owned)
            .collect();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| TokenError {
                path: path.display().to_string(),
                source,
            })?;
            all.extend(text.lines().map(str::to_owned));
        }
        Ok(Self::new(all))
    }

    /// No token configured: the API is open.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether `presented` is one of the tokens (compared in constant time per token).
    pub fn accepts(&self, presented: &str) -> bool {
        self.0.iter().fold(false, |ok, t| {
            ok | constant_time_eq(t.as_bytes(), presented.as_bytes())
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Failed authentications one client may make per [`FAILURE_WINDOW_MS`] before it gets `429`.
pub const FAILURE_LIMIT: u32 = 10;
/// The window of [`FAILURE_LIMIT`].
pub const FAILURE_WINDOW_MS: u64 = 60_000;
/// How often a server without users asks the store whether one was added (by `benchop admin` or
/// another replica).
pub const USERS_RECHECK_MS: u64 = 1_000;
/// Clients remembered by the failure counter before the oldest windows are dropped.
const FAILURE_CLIENTS: usize = 10_000;

/// Who made a request, as the middleware established it (in the request's extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User name; `static-token` for a token of `BAAS_API_TOKENS`.
    pub name: String,
    /// The user's role (`None` for a static token).
    pub role: Option<Role>,
    /// What the token allows.
    pub scopes: Vec<Scope>,
}

/// This process's view of the accounts: whether authentication is on (some user exists), and the
/// failed authentications per client.
#[derive(Debug, Default)]
pub struct Accounts {
    on: AtomicBool,
    checked_ms: AtomicU64,
    failures: Mutex<HashMap<IpAddr, (u64, u32)>>,
}

impl Accounts {
    /// Whether some user exists. Once on, on until restart; while off, the store is asked at most every
    /// [`USERS_RECHECK_MS`]. A store failure while off keeps it off and is logged.
    pub async fn enabled(&self, store: &Store) -> bool {
        if self.on.load(Ordering::Relaxed) {
            return true;
        }
        let now = now_ms();
        let last = self.checked_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < USERS_RECHECK_MS
            || self
                .checked_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        match store.has_users().await {
            Ok(true) => {
                self.switch_on();
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::error!(error = %e, "cannot tell whether users exist");
                false
            }
        }
    }

    /// A user exists now: authentication is on.
    pub fn switch_on(&self) {
        if !self.on.swap(true, Ordering::Relaxed) {
            tracing::info!("a user exists: every API request but the catalogue and health needs a token");
        }
    }

    /// Seconds until `client` may try again, when it failed too often.
    fn blocked(&self, client: IpAddr, now: u64) -> Option<u64> {
        let failures = self.failures.lock().ok()?;
        let &(start, n) = failures.get(&client)?;
        let end = start + FAILURE_WINDOW_MS;
        (n >= FAILURE_LIMIT && now < end).then(|| (end - now).div_ceil(1000).max(1))
    }

    /// Count a failed authentication of `client`.
    fn failed(&self, client: IpAddr, now: u64) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        if failures.len() >= FAILURE_CLIENTS {
            failures.retain(|_, (start, _)| now < *start + FAILURE_WINDOW_MS);
        }
        let entry = failures.entry(client).or_insert((now, 0));
        if now >= entry.0 + FAILURE_WINDOW_MS {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

/// Paths anyone may read: health, metrics, the API description, the problem catalogue, and share links
/// (their secret is their authentication).
pub(crate) fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
        || path.starts_with("/docs")
        || path == "/v1/problems"
        || path.starts_with("/v1/problems/")
        || path.starts_with("/v1/shared/")
}

/// The scope a request needs (when authentication is on).
fn needed_scope(method: &Method, path: &str) -> Scope {
    if path == "/v1/admin" || path.starts_with("/v1/admin/") {
        Scope::Admin
    } else if matches!(*method, Method::GET | Method::HEAD) {
        Scope::Read
    } else if path.starts_with("/v1/jobs/")
        && (path.ends_with("/visibility") || path.contains("/shares") || path.ends_with("/links"))
    {
        Scope::Manage
    } else {
        Scope::Submit
    }
}

/// The client's address: the peer, or, when the peer is this host (a reverse proxy such as the shipped
/// nginx), the last address the proxy appended to `X-Forwarded-For`.
fn client_ip(request: &Request) -> IpAddr {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    if !peer.is_loopback() {
        return peer;
    }
    request
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(peer)
}

/// Middleware. With no user in the store the API is as open as before accounts: a static token of
/// `BAAS_API_TOKENS` guards the mutating requests when one is configured. Once a user exists every
/// request but [`is_public`] needs a bearer token with the scope [`needed_scope`] names: an account's
/// token (looked up by its hash; revoked and expired ones refused), or a static token (scopes read,
/// submit and manage). Failed authentications are counted per client; past [`FAILURE_LIMIT`] in a
/// window the client gets `429` without its token being looked at.
pub async fn require_token(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if *request.method() == Method::OPTIONS || is_public(path) {
        return next.run(request).await;
    }
    let needed = needed_scope(request.method(), path);
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    let users_on = state.accounts.enabled(&state.store).await;
    if !users_on && (needed == Scope::Read || state.auth.is_empty()) {
        return next.run(request).await;
    }
    let client = client_ip(&request);
    let now = now_ms();
    if let Some(retry_after) = state.accounts.blocked(client, now) {
        return too_many_failures(retry_after);
    }
    let Some(presented) = presented else {
        return unauthorized("this endpoint needs `Authorization: Bearer <token>`");
    };
    let principal = if state.auth.accepts(&presented) {
        Principal {
            name: "static-token".into(),
            role: None,
            scopes: vec![Scope::Read, Scope::Submit, Scope::Manage],
        }
    } else if !users_on {
        state.accounts.failed(client, now);
        return unauthorized("the bearer token is not valid");
    } else {
        match state.store.token_by_hash(accounts::hash_secret(&presented)).await {
            Ok(Some((token, role))) if token.is_live(now) => Principal {
                name: token.user,
                role: Some(role),
                scopes: token.scopes,
            },
            Ok(found) => {
                state.accounts.failed(client, now);
                return unauthorized(match found {
                    Some((t, _)) if t.revoked_ms.is_some() => "the bearer token was revoked",
                    Some(_) => "the bearer token has expired",
                    None => "the bearer token is not valid",
                });
            }
            Err(e) => return AppError::Store(e).into_response(),
        }
    };
    if !principal.scopes.contains(&needed) {
        return AppError::BadRequest {
            status: StatusCode::FORBIDDEN,
            code: "insufficient_scope",
            message: format!("this request needs a token with the `{needed}` scope"),
            details: serde_json::json!({ "needed": needed.as_str() }),
        }
        .into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

fn too_many_failures(retry_after: u64) -> Response {
    let mut response = AppError::BadRequest {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: "too_many_failures",
        message: format!("too many failed authentications from this address; retry in {retry_after} s"),
        details: serde_json::json!({ "retry_after_secs": retry_after }),
    }
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after));
    response
}

fn unauthorized(message: &str) -> Response {
    let mut response = AppError::BadRequest {
        status: StatusCode::UNAUTHORIZED,
        code: "unauthorized",
        message: message.to_owned(),
        details: serde_json::Value::Null,
    }
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"benchop\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_need_the_scope_of_what_they_do() {
        for public in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/docs/",
            "/v1/problems",
            "/v1/problems/1aI",
        ] {
            assert!(is_public(public), "{public}");
        }
        for guarded in [
            "/v1/jobs",
            "/v1/me",
            "/v1/problemsx",
            "/v1/rankings/1aI",
            "/v1/admin/users",
        ] {
            assert!(!is_public(guarded), "{guarded}");
        }
        assert_eq!(needed_scope(&Method::GET, "/v1/jobs"), Scope::Read);
        assert_eq!(needed_scope(&Method::HEAD, "/v1/jobs/x"), Scope::Read);
        assert_eq!(needed_scope(&Method::POST, "/v1/jobs"), Scope::Submit);
        assert_eq!(needed_scope(&Method::DELETE, "/v1/jobs/x"), Scope::Submit);
        assert_eq!(needed_scope(&Method::GET, "/v1/admin/tokens"), Scope::Admin);
        assert_eq!(needed_scope(&Method::POST, "/v1/admin"), Scope::Admin);
        assert_eq!(needed_scope(&Method::GET, "/v1/administrators"), Scope::Read);
        assert_eq!(needed_scope(&Method::PUT, "/v1/jobs/x/visibility"), Scope::Manage);
        assert_eq!(needed_scope(&Method::PUT, "/v1/jobs/x/shares/bob"), Scope::Manage);
        assert_eq!(
            needed_scope(&Method::DELETE, "/v1/jobs/x/shares/bob"),
            Scope::Manage
        );
        assert_eq!(needed_scope(&Method::GET, "/v1/jobs/x/shares"), Scope::Read);
        assert_eq!(needed_scope(&Method::POST, "/v1/jobs/x/links"), Scope::Manage);
        assert!(is_public("/v1/shared/bop_x"));
    }

    #[test]
    fn failures_are_limited_per_client_and_window() {
        let accounts = Accounts::default();
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for _ in 0..FAILURE_LIMIT - 1 {
            accounts.failed(a, 1_000);
        }
        assert_eq!(accounts.blocked(a, 1_000), None);
        accounts.failed(a, 2_000);
        assert_eq!(
            accounts.blocked(a, 2_000),
            Some(59),
            "until the window that began at 1 s ends"
        );
        assert_eq!(accounts.blocked(b, 2_000), None, "another client is not affected");
        assert_eq!(
            accounts.blocked(a, 1_000 + FAILURE_WINDOW_MS),
            None,
            "a new window"
        );
        accounts.failed(a, 1_000 + FAILURE_WINDOW_MS);
        assert_eq!(
            accounts.blocked(a, 1_000 + FAILURE_WINDOW_MS),
            None,
            "counting starts again"
        );
    }

    #[test]
    fn tokens_match_exactly_and_debug_hides_them() {
        let t = Tokens::new(["s3cret".to_owned(), " ".to_owned(), "# comment".to_owned()]);
        assert_eq!(t.len(), 1);
        assert!(t.accepts("s3cret"));
        assert!(!t.accepts("s3cre"));
        assert!(!t.accepts("s3cret2"));
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
