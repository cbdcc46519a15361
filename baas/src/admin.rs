//! `/v1/me` and the accounts API under `/v1/admin/` (the `admin` scope): users and their tokens. The same
//! operations run from the command line as `benchop admin …`, on the store directly.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use protocol::accounts::{CreatedToken, NewToken, NewUser, TokenView, UserView, WhoAmI};
use protocol::api::ApiError;

use crate::AppState;
use crate::accounts::{self, AccountError};
use crate::auth::Principal;
use crate::error::AppError;
use crate::routes::{json_rejection, parse_uuid};
use crate::store::{TokenRecord, UserRecord, now_ms};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list_users, create_user))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

impl From<AccountError> for AppError {
    fn from(e: AccountError) -> Self {
        let (status, code) = match e {
            AccountError::Store(e) => return AppError::Store(e),
            AccountError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            AccountError::UserExists(_) => (StatusCode::CONFLICT, "user_exists"),
            AccountError::NoSuchUser(_) => (StatusCode::NOT_FOUND, "user_not_found"),
            AccountError::ScopeNotAllowed { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "scope_not_allowed"),
            AccountError::Random(_) => (StatusCode::SERVICE_UNAVAILABLE, "no_randomness"),
        };
        AppError::BadRequest {
            status,
            code,
            message: e.to_string(),
            details: serde_json::Value::Null,
        }
    }
}

/// The wire form of a user record.
pub fn user_view(u: UserRecord) -> UserView {
    UserView {
        name: u.name,
        role: u.role,
        created_ms: u.created_ms,
    }
}

/// The wire form of a token record.
pub fn token_view(t: TokenRecord) -> TokenView {
    TokenView {
        id: t.id,
        user: t.user,
        scopes: t.scopes,
        created_ms: t.created_ms,
        expires_ms: t.expires_ms,
        revoked_ms: t.revoked_ms,
    }
}

/// Who the bearer token belongs to and what it allows; anonymous while no user exists.
#[utoipa::path(get, path = "/v1/me", tag = "accounts",
    security((), ("bearer" = [])),
    responses((status = 200, description = "The caller", body = WhoAmI)))]
async fn me(State(state): State<AppState>, principal: Option<Extension<Principal>>) -> Json<WhoAmI> {
    let authentication = state.accounts.enabled(&state.store).await;
    Json(match principal {
        Some(Extension(p)) => WhoAmI {
            authentication,
            name: Some(p.name),
            role: p.role,
            scopes: p.scopes,
        },
        None => WhoAmI {
            authentication,
            name: None,
            role: None,
            scopes: Vec::new(),
        },
    })
}

/// Every user, by name.
#[utoipa::path(get, path = "/v1/admin/users", tag = "accounts",
    security((), ("bearer" = ["admin"])),
    responses((status = 200, description = "The users", body = Vec<UserView>)))]
async fn list_users(State(state): State<AppState>) -> Result<Json<Vec<UserView>>, AppError> {
    let users = state.store.users().await?;
    Ok(Json(users.into_iter().map(user_view).collect()))
}

/// Add a user. From the first user on, every request but the catalogue and health needs a token.
#[utoipa::path(post, path = "/v1/admin/users", tag = "accounts",
    security((), ("bearer" = ["admin"])),
    request_body = NewUser,
    responses(
        (status = 201, description = "Added", body = UserView),
        (status = 400, description = "Not JSON of this shape (`invalid_json`, `invalid_body`)", body = ApiError),
        (status = 409, description = "The name is taken (`user_exists`)", body = ApiError),
        (status = 413, description = "Body too large (`payload_too_large`)", body = ApiError),
        (status = 415, description = "Not JSON (`unsupported_media_type`)", body = ApiError),
        (status = 422, description = "Not a user name (`invalid_field`)", body = ApiError)
    ))]
async fn create_user(
    State(state): State<AppState>,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(new) = body.map_err(json_rejection)?;
    let user = accounts::add_user(&state.store, &new.name, new.role, now_ms()).await?;
    state.accounts.switch_on();
    tracing::info!(user = %user.name, role = %user.role, "user added");
    Ok((StatusCode::CREATED, Json(user_view(user))).into_response())
}

/// Query of `GET /v1/admin/tokens`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TokensQuery {
    /// Only this user's tokens.
    user: Option<String>,
}

/// Tokens, newest first, without their secrets.
#[utoipa::path(get, path = "/v1/admin/tokens", tag = "accounts",
    params(TokensQuery),
    security((), ("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The tokens", body = Vec<TokenView>),
        (status = 400, description = "Bad query (`invalid_query`)", body = ApiError)
    ))]
async fn list_tokens(
    State(state): State<AppState>,
    query: Result<Query<TokensQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<TokenView>>, AppError> {
    let Query(query) = query.map_err(|e| AppError::BadRequest {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_query",
        message: e.body_text(),
        details: serde_json::Value::Null,
    })?;
    let tokens = state.store.tokens(query.user).await?;
    Ok(Json(tokens.into_iter().map(token_view).collect()))
}

/// Create a token for a user. The secret is in this response only; the store keeps its hash.
#[utoipa::path(post, path = "/v1/admin/tokens", tag = "accounts",
    security((), ("bearer" = ["admin"])),
    request_body = NewToken,
    responses(
        (status = 201, description = "Created: the secret, shown once, and the record", body = CreatedToken),
        (status = 400, description = "Not JSON of this shape (`invalid_json`, `invalid_body`)", body = ApiError),
        (status = 404, description = "No such user (`user_not_found`)", body = ApiError),
        (status = 413, description = "Body too large (`payload_too_large`)", body = ApiError),
        (status = 415, description = "Not JSON (`unsupported_media_type`)", body = ApiError),
        (status = 422, description = "Bad lifetime or no scope (`invalid_field`), or a scope the user's \
            role does not allow (`scope_not_allowed`)", body = ApiError)
    ))]
async fn create_token(
    State(state): State<AppState>,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(new) = body.map_err(json_rejection)?;
    let lifetime = accounts::parse_lifetime(&new.expires_in).map_err(AccountError::Invalid)?;
    let mut scopes = new.scopes;
    scopes.sort_unstable();
    scopes.dedup();
    let (record, secret) =
        accounts::create_token(&state.store, &new.user, scopes, lifetime, now_ms()).await?;
    tracing::info!(user = %record.user, token = %record.id, "token created");
    let body = CreatedToken {
        token: secret,
        record: token_view(record),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Revoke a token at once (on every replica: each request looks its token up). Revoking twice is
/// harmless and keeps the first time.
#[utoipa::path(delete, path = "/v1/admin/tokens/{id}", tag = "accounts",
    params(("id" = uuid::Uuid, Path, description = "Token id (UUID)")),
    security((), ("bearer" = ["admin"])),
    responses(
        (status = 200, description = "Revoked", body = TokenView),
        (status = 400, description = "Not a UUID (`invalid_id`)", body = ApiError),
        (status = 404, description = "No such token (`token_not_found`)", body = ApiError)
    ))]
async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TokenView>, AppError> {
    let id = parse_uuid(&id, "token")?;
    match state.store.revoke_token(id, now_ms()).await? {
        Some(t) => {
            tracing::info!(user = %t.user, token = %t.id, "token revoked");
            Ok(Json(token_view(t)))
        }
        None => Err(AppError::NotFound {
            code: "token_not_found",
            what: format!("token {id}"),
        }),
    }
}
