//! Accounts in the store: users with a role, and API tokens, each stored only as the SHA-256 of its
//! secret, with scopes, an expiry and a revocation time. Both backends keep them (migration 4).

use uuid::Uuid;

pub use protocol::accounts::{Role, Scope, ShareLevel, Visibility, parse_scopes, scopes_text};

use super::{Backend, Store, StoreError};

/// A user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Unique name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Created, Unix ms.
    pub created_ms: u64,
}

/// An API token as stored, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Public id (to list and revoke it).
    pub id: Uuid,
    /// Its user.
    pub user: String,
    /// What it allows.
    pub scopes: Vec<Scope>,
    /// Created, Unix ms.
    pub created_ms: u64,
    /// Expires at, Unix ms; `None` never.
    pub expires_ms: Option<u64>,
    /// Revoked at, Unix ms.
    pub revoked_ms: Option<u64>,
}

impl TokenRecord {
    /// Usable at `now_ms`: neither revoked nor expired.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.revoked_ms.is_none() && self.expires_ms.is_none_or(|e| now_ms < e)
    }
}

/// A user a job is shared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRecord {
    /// The user.
    pub user: String,
    /// What they may do.
    pub level: ShareLevel,
    /// Shared at, Unix ms.
    pub created_ms: u64,
}

/// A token looked up by its hash: the record and its user's role.
pub type TokenOwner = (TokenRecord, Role);

impl Store {
    /// Add a user; `false` when the name is taken.
    pub async fn add_user(&self, user: UserRecord) -> Result<bool, StoreError> {
        on_backend!(&self.backend, b => b.add_user(user).await)
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        on_backend!(&self.backend, b => b.users().await)
    }

    /// Whether any user exists (authentication is on from then on).
    pub async fn has_users(&self) -> Result<bool, StoreError> {
        on_backend!(&self.backend, b => b.has_users().await)
    }

    /// Store a token (its secret only as `hash`); `false` when its user does not exist.
    pub async fn add_token(&self, token: TokenRecord, hash: String) -> Result<bool, StoreError> {
        on_backend!(&self.backend, b => b.add_token(token, hash).await)
    }

    /// Tokens, newest first; of one user when `user` is given.
    pub async fn tokens(&self, user: Option<String>) -> Result<Vec<TokenRecord>, StoreError> {
        on_backend!(&self.backend, b => b.tokens(user).await)
    }

    /// Revoke a token at `now_ms` (a revoked token stays revoked at its first time); `None` when no
    /// token has this id.
    pub async fn revoke_token(&self, id: Uuid, now_ms: u64) -> Result<Option<TokenRecord>, StoreError> {
        on_backend!(&self.backend, b => b.revoke_token(id, now_ms).await)
    }

    /// The token whose secret hashes to `hash`, with its user's role.
    pub async fn token_by_hash(&self, hash: String) -> Result<Option<TokenOwner>, StoreError> {
        on_backend!(&self.backend, b => b.token_by_hash(hash).await)
    }
}

impl Store {
    /// A job's owner and visibility (`None`: no such job).
    pub async fn job_access(&self, id: Uuid) -> Result<Option<(Option<String>, Visibility)>, StoreError> {
        on_backend!(&self.backend, b => b.job_access(id).await)
    }

    /// What `user` may do with job `id` by a share.
    pub async fn share_level(&self, id: Uuid, user: String) -> Result<Option<ShareLevel>, StoreError> {
        on_backend!(&self.backend, b => b.share_level(id, user).await)
    }

    /// The users job `id` is shared with, by name.
    pub async fn shares(&self, id: Uuid) -> Result<Vec<ShareRecord>, StoreError> {
        on_backend!(&self.backend, b => b.shares(id).await)
    }

    /// Make job `id` private or public; `false`: no such job.
    pub async fn set_visibility(&self, id: Uuid, visibility: Visibility) -> Result<bool, StoreError> {
        let backend = self.backend.clone();
        self.write(async move { on_backend!(&backend, b => b.set_visibility(id, visibility).await) })
            .await
    }

    /// Share job `id` with `share.user` (or change its level); `false`: no such user.
    pub async fn share(&self, id: Uuid, share: ShareRecord) -> Result<bool, StoreError> {
        on_backend!(&self.backend, b => b.share(id, share).await)
    }

    /// Stop sharing job `id` with `user`; `false`: it was not shared with them.
    pub async fn unshare(&self, id: Uuid, user: String) -> Result<bool, StoreError> {
        on_backend!(&self.backend, b => b.unshare(id, user).await)
    }
}

impl Store {
    /// Store a share link of job `job_id` (its secret only as `hash`), made by `by`, working until
    /// `expires_ms`.
    pub async fn add_link(
        &self,
        hash: String,
        job_id: Uuid,
        by: String,
        now_ms: u64,
        expires_ms: u64,
    ) -> Result<(), StoreError> {
        on_backend!(&self.backend, b => b.add_link(hash, job_id, by, now_ms, expires_ms).await)
    }

    /// The job of the share link whose secret hashes to `hash`, if it still works at `now_ms`.
    pub async fn link_job(&self, hash: String, now_ms: u64) -> Result<Option<Uuid>, StoreError> {
        on_backend!(&self.backend, b => b.link_job(hash, now_ms).await)
    }
}

/// One user's tasks, for the quotas: without a result, and created since a time (with the oldest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskCounts {
    /// Tasks of the user's jobs without a result.
    pub in_flight: u64,
    /// Tasks of the user's jobs created since the time asked for.
    pub recent: u64,
    /// When the oldest of those was created, Unix ms.
    pub oldest_recent_ms: Option<u64>,
}

impl Store {
    /// The tasks of `owner`'s jobs: in flight, and created since `since_ms`.
    pub async fn owner_task_counts(&self, owner: String, since_ms: u64) -> Result<TaskCounts, StoreError> {
        on_backend!(&self.backend, b => b.owner_task_counts(owner, since_ms).await)
    }
}

/// Decode a visibility column.
pub(super) fn visibility_of(text: &str) -> Result<Visibility, StoreError> {
    text.parse().map_err(StoreError::Invalid)
}

/// Decode a share level column.
pub(super) fn level_of(text: &str) -> Result<ShareLevel, StoreError> {
    text.parse().map_err(StoreError::Invalid)
}

/// Decode a role or scopes column.
pub(super) fn role_of(text: &str) -> Result<Role, StoreError> {
    text.parse().map_err(StoreError::Invalid)
}

/// Decode a scopes column.
pub(super) fn scopes_of(text: &str) -> Result<Vec<Scope>, StoreError> {
    parse_scopes(text).map_err(StoreError::Invalid)
}
