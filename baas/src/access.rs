//! Who may see and change a job, once accounts exist: its owner, the users it is shared with (at
//! `read` or `manage`), everyone when it is public, and operators, admins and static tokens always.
//! A job the caller may not see answers exactly as a job that does not exist (`404`), so its
//! existence does not leak. Without users (no [`Principal`] on the request) every job is open.

use axum::http::StatusCode;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Principal;
use crate::error::AppError;
use crate::store::{Role, ShareLevel, Visibility};

/// What a request does with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// View or download it.
    Read,
    /// Cancel, retry, share or change its visibility.
    Manage,
}

/// Whether `p` sees and manages every job: operators, admins and static (service) tokens.
pub fn sees_all(p: &Principal) -> bool {
    matches!(p.role, None | Some(Role::Operator | Role::Admin))
}

/// The user whose view of the job list applies (`None`: every job).
pub fn list_viewer(principal: Option<&Principal>) -> Option<String> {
    principal.filter(|p| !sees_all(p)).map(|p| p.name.clone())
}

/// The owner a job submitted by `principal` gets, with its visibility: an account's jobs are its own
/// and private; jobs submitted without one (no users, or a static token) are public.
pub fn new_owner(principal: Option<&Principal>) -> (Option<String>, Visibility) {
    match principal {
        Some(p) if p.role.is_some() => (Some(p.name.clone()), Visibility::Private),
        _ => (None, Visibility::Public),
    }
}

/// Check that `principal` may do `need` with job `id`. A job that does not exist passes (the handler
/// answers its own `404`); one the caller may not see is `not_found` (the handler's `404`); one it may
/// only read is `403 not_allowed` for `Need::Manage`.
pub async fn check(
    state: &AppState,
    principal: Option<&Principal>,
    id: Uuid,
    need: Need,
    not_found: impl FnOnce() -> AppError,
) -> Result<(), AppError> {
    let Some(p) = principal else {
        return Ok(());
    };
    if sees_all(p) {
        return Ok(());
    }
    let Some((owner, visibility)) = state.store.job_access(id).await? else {
        return Ok(());
    };
    let Some(owner) = owner else {
        // Submitted without an account: everyone's, as before accounts.
        return Ok(());
    };
    if owner == p.name {
        return Ok(());
    }
    let share = state.store.share_level(id, p.name.clone()).await?;
    let readable = visibility == Visibility::Public || share.is_some();
    match need {
        _ if !readable => Err(not_found()),
        Need::Read => Ok(()),
        Need::Manage if share == Some(ShareLevel::Manage) => Ok(()),
        Need::Manage => Err(AppError::BadRequest {
            status: StatusCode::FORBIDDEN,
            code: "not_allowed",
            message: format!(
                "{} may read this job but not change it: its owner can share it at `manage`",
                p.name
            ),
            details: serde_json::Value::Null,
        }),
    }
}
