//! API tokens for the mutating endpoints.
//!
//! Tokens come from `BAAS_API_TOKENS` (comma-separated) and/or a file (`--api-token-file`, one per line),
//! never from a message or a log line. With no token configured the API is open, which is the right
//! default only for the loopback address baas binds by default.

use std::path::Path;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::AppError;

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

/// Middleware: mutating requests (anything but GET, HEAD, OPTIONS) need a valid bearer token when tokens
/// are configured.
pub async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || state.auth.is_empty() {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(t) if state.auth.accepts(t.trim()) => next.run(request).await,
        Some(_) => unauthorized("the bearer token is not valid"),
        None => unauthorized("this endpoint needs `Authorization: Bearer <token>`"),
    }
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
    fn tokens_match_exactly_and_debug_hides_them() {
        let t = Tokens::new(["s3cret".to_owned(), " ".to_owned(), "# comment".to_owned()]);
        assert_eq!(t.len(), 1);
        assert!(t.accepts("s3cret"));
        assert!(!t.accepts("s3cre"));
        assert!(!t.accepts("s3cret2"));
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
