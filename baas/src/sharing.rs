//! Sharing a job: `GET /v1/jobs/{id}/shares`, `PUT /v1/jobs/{id}/visibility` and `PUT`/`DELETE
//! /v1/jobs/{id}/shares/{user}`. Reading the shares needs read access to the job; changing them needs
//! `manage` access (the owner, a user it is shared with at `manage`, an operator or admin) and a token
//! with the `manage` scope.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use protocol::accounts::{CreatedLink, NewLink, SetShare, SetVisibility, ShareView, SharesView};
use protocol::api::{ApiError, JobView};

use crate::access::{self, Need};
use crate::accounts::{self, AccountError};
use crate::auth::Principal;
use crate::error::AppError;
use crate::routes::{json_rejection, parse_uuid};
use crate::store::{ShareRecord, now_ms};
use crate::{AppState, jobs};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(shares))
        .routes(routes!(set_visibility))
        .routes(routes!(share, unshare))
        .routes(routes!(create_link))
        .routes(routes!(shared_job))
}

/// The job id in `id`, once the job exists and `principal` may do `need` with it (404 when it does not
/// exist or the caller may not see it).
async fn checked(
    state: &AppState,
    principal: Option<Extension<Principal>>,
    id: &str,
    need: Need,
) -> Result<Uuid, AppError> {
    let id = parse_uuid(id, "job")?;
    let principal = principal.map(|p| p.0);
    access::check(state, principal.as_ref(), id, need, || {
        AppError::job_not_found(id)
    })
    .await?;
    // `access::check` passes a job that does not exist (and everything for operators and admins).
    if state.store.job_access(id).await?.is_none() {
        return Err(AppError::job_not_found(id));
    }
    Ok(id)
}

/// The job's owner, visibility and shares as stored now.
async fn shares_view(state: &AppState, id: Uuid) -> Result<SharesView, AppError> {
    let (owner, visibility) = state
        .store
        .job_access(id)
        .await?
        .ok_or_else(|| AppError::job_not_found(id))?;
    let shares = state
        .store
        .shares(id)
        .await?
        .into_iter()
        .map(|s| ShareView {
            user: s.user,
            level: s.level,
            created_ms: s.created_ms,
        })
        .collect();
    Ok(SharesView {
        owner,
        visibility,
        shares,
    })
}

/// Who may see the job: its owner, visibility and the users it is shared with.
#[utoipa::path(get, path = "/v1/jobs/{id}/shares", tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "Job id (UUID)")),
    security((), ("bearer" = ["read"])),
    responses(
        (status = 200, description = "Owner, visibility, shares", body = SharesView),
        (status = 400, description = "Not a UUID (`invalid_id`)", body = ApiError),
        (status = 404, description = "No such job (`job_not_found`)", body = ApiError)
    ))]
async fn shares(
    State(state): State<AppState>,
    Path(id): Path<String>,
    principal: Option<Extension<Principal>>,
) -> Result<Json<SharesView>, AppError> {
    let id = checked(&state, principal, &id, Need::Read).await?;
    Ok(Json(shares_view(&state, id).await?))
}

/// Make the job public (everyone may read it; it counts on leaderboards) or private again.
#[utoipa::path(put, path = "/v1/jobs/{id}/visibility", tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "Job id (UUID)")),
    security((), ("bearer" = ["manage"])),
    request_body = SetVisibility,
    responses(
        (status = 200, description = "Owner, visibility, shares", body = SharesView),
        (status = 400, description = "Not a UUID (`invalid_id`) or not JSON of this shape (`invalid_json`, \
            `invalid_body`)", body = ApiError),
        (status = 404, description = "No such job (`job_not_found`)", body = ApiError),
        (status = 413, description = "Body too large (`payload_too_large`)", body = ApiError),
        (status = 415, description = "Not JSON (`unsupported_media_type`)", body = ApiError)
    ))]
async fn set_visibility(
    State(state): State<AppState>,
    Path(id): Path<String>,
    principal: Option<Extension<Principal>>,
    body: Result<Json<SetVisibility>, JsonRejection>,
) -> Result<Json<SharesView>, AppError> {
    let Json(body) = body.map_err(json_rejection)?;
    let id = checked(&state, principal, &id, Need::Manage).await?;
    if !state.store.set_visibility(id, body.visibility).await? {
        return Err(AppError::job_not_found(id));
    }
    Ok(Json(shares_view(&state, id).await?))
}

/// Share the job with a user at `read` (view, download) or `manage` (also cancel, retry, share), or
/// change the level of an existing share.
#[utoipa::path(put, path = "/v1/jobs/{id}/shares/{user}", tag = "jobs",
    params(
        ("id" = uuid::Uuid, Path, description = "Job id (UUID)"),
        ("user" = String, Path, description = "User name")
    ),
    security((), ("bearer" = ["manage"])),
    request_body = SetShare,
    responses(
        (status = 200, description = "Owner, visibility, shares", body = SharesView),
        (status = 400, description = "Not a UUID (`invalid_id`) or not JSON of this shape (`invalid_json`, \
            `invalid_body`)", body = ApiError),
        (status = 404, description = "No such job (`job_not_found`) or user (`user_not_found`)", body = ApiError),
        (status = 413, description = "Body too large (`payload_too_large`)", body = ApiError),
        (status = 415, description = "Not JSON (`unsupported_media_type`)", body = ApiError)
    ))]
async fn share(
    State(state): State<AppState>,
    Path((id, user)): Path<(String, String)>,
    principal: Option<Extension<Principal>>,
    body: Result<Json<SetShare>, JsonRejection>,
) -> Result<Json<SharesView>, AppError> {
    let Json(body) = body.map_err(json_rejection)?;
    let id = checked(&state, principal, &id, Need::Manage).await?;
    let record = ShareRecord {
        user: user.clone(),
        level: body.level,
        created_ms: now_ms(),
    };
    if !state.store.share(id, record).await? {
        return Err(AppError::NotFound {
            code: "user_not_found",
            what: format!("user {user}"),
        });
    }
    Ok(Json(shares_view(&state, id).await?))
}

/// Stop sharing the job with a user.
#[utoipa::path(delete, path = "/v1/jobs/{id}/shares/{user}", tag = "jobs",
    params(
        ("id" = uuid::Uuid, Path, description = "Job id (UUID)"),
        ("user" = String, Path, description = "User name")
    ),
    security((), ("bearer" = ["manage"])),
    responses(
        (status = 200, description = "Owner, visibility, shares", body = SharesView),
        (status = 400, description = "Not a UUID (`invalid_id`)", body = ApiError),
        (status = 404, description = "No such job (`job_not_found`), or not shared with the user \
            (`share_not_found`)", body = ApiError)
    ))]
async fn unshare(
    State(state): State<AppState>,
    Path((id, user)): Path<(String, String)>,
    principal: Option<Extension<Principal>>,
) -> Result<Json<SharesView>, AppError> {
    let id = checked(&state, principal, &id, Need::Manage).await?;
    if !state.store.unshare(id, user.clone()).await? {
        return Err(AppError::NotFound {
            code: "share_not_found",
            what: format!("a share of job {id} with {user}"),
        });
    }
    Ok(Json(shares_view(&state, id).await?))
}

/// A link that lets anyone who has it read the job, without an account, until it expires. The secret is
/// in this answer only; the store keeps its hash.
#[utoipa::path(post, path = "/v1/jobs/{id}/links", tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "Job id (UUID)")),
    security((), ("bearer" = ["manage"])),
    request_body = NewLink,
    responses(
        (status = 201, description = "The link's path (shown once) and expiry", body = CreatedLink),
        (status = 400, description = "Not a UUID (`invalid_id`) or not JSON of this shape (`invalid_json`, \
            `invalid_body`)", body = ApiError),
        (status = 404, description = "No such job (`job_not_found`)", body = ApiError),
        (status = 413, description = "Body too large (`payload_too_large`)", body = ApiError),
        (status = 415, description = "Not JSON (`unsupported_media_type`)", body = ApiError),
        (status = 422, description = "Not a lifetime, or `never` (`invalid_field`)", body = ApiError)
    ))]
async fn create_link(
    State(state): State<AppState>,
    Path(id): Path<String>,
    principal: Option<Extension<Principal>>,
    body: Result<Json<NewLink>, JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<CreatedLink>), AppError> {
    let Json(body) = body.map_err(json_rejection)?;
    let lifetime = accounts::parse_lifetime(&body.expires_in)
        .map_err(AccountError::Invalid)?
        .ok_or_else(|| AccountError::Invalid("a share link always expires: give e.g. 7d".into()))?;
    let by = principal
        .as_ref()
        .map_or_else(|| "anonymous".to_owned(), |p| p.0.name.clone());
    let id = checked(&state, principal, &id, Need::Manage).await?;
    let (secret, hash) = accounts::new_secret().map_err(AccountError::from)?;
    let now = now_ms();
    let expires_ms = now.saturating_add(lifetime.as_millis() as u64);
    state
        .store
        .add_link(hash, id, by.clone(), now, expires_ms)
        .await?;
    tracing::info!(job = %id, by = %by, expires_ms, "share link created");
    Ok((
        axum::http::StatusCode::CREATED,
        Json(CreatedLink {
            path: format!("/v1/shared/{secret}"),
            expires_ms,
        }),
    ))
}

/// The job a share link names, for anyone who has the link, until it expires (no token needed).
#[utoipa::path(get, path = "/v1/shared/{secret}", tag = "jobs",
    params(("secret" = String, Path, description = "The link's secret")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 404, description = "No such link, or it expired (`link_not_found`)", body = ApiError)
    ))]
async fn shared_job(
    State(state): State<AppState>,
    Path(secret): Path<String>,
) -> Result<Json<JobView>, AppError> {
    let not_found = || AppError::NotFound {
        code: "link_not_found",
        what: "share link".into(),
    };
    let Some(id) = state
        .store
        .link_job(accounts::hash_secret(&secret), now_ms())
        .await?
    else {
        return Err(not_found());
    };
    jobs::view(&state, id).await?.map(Json).ok_or_else(not_found)
}
