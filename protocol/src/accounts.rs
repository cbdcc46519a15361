//! Accounts on the wire: roles, token scopes, and the bodies of `/v1/me` and `/v1/admin/…`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// What a user may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Submits and reads their own work.
    User,
    /// Also watches and controls the workers (the monitor).
    Operator,
    /// Also manages users and tokens.
    Admin,
}

impl Role {
    /// Every role, least privileged first.
    pub const ALL: [Role; 3] = [Role::User, Role::Operator, Role::Admin];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether a token of this role's user may carry `scope`.
    pub fn allows(self, scope: Scope) -> bool {
        scope != Scope::Admin || self == Role::Admin
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`: use user, operator or admin"))
    }
}

/// What a token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read jobs, rankings and plots.
    Read,
    /// Submit, cancel and retry jobs.
    Submit,
    /// Manage what is shared (later: shares, deletion).
    Manage,
    /// Manage users and tokens.
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Submit, Scope::Manage, Scope::Admin];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Submit => "submit",
            Scope::Manage => "manage",
            Scope::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scope::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown scope `{s}`: use read, submit, manage or admin"))
    }
}

/// `read,submit` → scopes (sorted, without repeats); the stored form is [`scopes_text`].
pub fn parse_scopes(text: &str) -> Result<Vec<Scope>, String> {
    let mut scopes = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<Scope>, _>>()?;
    scopes.sort_unstable();
    scopes.dedup();
    if scopes.is_empty() {
        return Err("no scope given: use read, submit, manage or admin (comma-separated)".into());
    }
    Ok(scopes)
}

/// Scopes as stored: comma-separated names.
pub fn scopes_text(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

/// A user (`GET /v1/admin/users`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// Unique name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Created, Unix ms.
    pub created_ms: u64,
}

/// `POST /v1/admin/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 1–64 lower-case letters, digits, `.`, `_` or `-`, starting with a letter or digit.
    #[schema(example = "alice", pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub name: String,
    /// Role; `user` when absent.
    #[serde(default = "default_role")]
    pub role: Role,
}

fn default_role() -> Role {
    Role::User
}

/// A token without its secret (`GET /v1/admin/tokens`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// Public id, to revoke it.
    pub id: Uuid,
    /// Its user.
    pub user: String,
    /// What it allows.
    pub scopes: Vec<Scope>,
    /// Created, Unix ms.
    pub created_ms: u64,
    /// Expires at, Unix ms; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// Revoked at, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<u64>,
}

/// `POST /v1/admin/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// The user it is for.
    #[schema(example = "alice")]
    pub user: String,
    /// What it allows; `["read", "submit"]` when absent. `admin` only for an admin.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<Scope>,
    /// How long it lives: `90d`, `12h`, `30m` or `never`; `90d` when absent.
    #[serde(default = "default_lifetime")]
    #[schema(example = "90d")]
    pub expires_in: String,
}

fn default_scopes() -> Vec<Scope> {
    vec![Scope::Read, Scope::Submit]
}

/// A token's lifetime when none is asked for.
pub const DEFAULT_TOKEN_LIFETIME: &str = "90d";

fn default_lifetime() -> String {
    DEFAULT_TOKEN_LIFETIME.to_owned()
}

/// A new token: its secret, shown this once (only its hash is stored), and its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The bearer token: `Authorization: Bearer <token>`.
    pub token: String,
    /// The stored record.
    pub record: TokenView,
}

/// `GET /v1/me`: who the token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// Whether authentication is on (some user exists). Off, every request is anonymous.
    pub authentication: bool,
    /// User name; `static-token` for a token of `BAAS_API_TOKENS`; absent when anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The user's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// What the token allows.
    pub scopes: Vec<Scope>,
}

/// Who may see a job besides its owner, operators and admins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Its owner, and the users it is shared with (the default for a job with an owner).
    Private,
    /// Everyone; listed on leaderboards (every job submitted without an account is public).
    Public,
}

impl Visibility {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Public => "public",
        }
    }
}

impl std::str::FromStr for Visibility {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "private" => Ok(Visibility::Private),
            "public" => Ok(Visibility::Public),
            _ => Err(format!("unknown visibility `{s}`: use private or public")),
        }
    }
}

/// What a user a job is shared with may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ShareLevel {
    /// View and download.
    Read,
    /// Also cancel, retry and share it further.
    Manage,
}

impl ShareLevel {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ShareLevel::Read => "read",
            ShareLevel::Manage => "manage",
        }
    }
}

impl std::str::FromStr for ShareLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(ShareLevel::Read),
            "manage" => Ok(ShareLevel::Manage),
            _ => Err(format!("unknown share level `{s}`: use read or manage")),
        }
    }
}

/// One user a job is shared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShareView {
    /// The user.
    pub user: String,
    /// What they may do.
    pub level: ShareLevel,
    /// Shared at, Unix ms.
    pub created_ms: u64,
}

/// `GET /v1/jobs/{id}/shares`: who may see a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SharesView {
    /// The owner; absent for a job submitted without an account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Private or public.
    pub visibility: Visibility,
    /// The users it is shared with.
    pub shares: Vec<ShareView>,
}

/// `PUT /v1/jobs/{id}/visibility`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetVisibility {
    /// Private or public.
    pub visibility: Visibility,
}

/// `PUT /v1/jobs/{id}/shares/{user}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetShare {
    /// What the user may do.
    pub level: ShareLevel,
}

/// `POST /v1/jobs/{id}/links`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    /// How long the link works: `7d`, `12h`, `30m` (a link always expires); `7d` when absent.
    #[serde(default = "default_link_lifetime")]
    #[schema(example = "7d")]
    pub expires_in: String,
}

/// A link's lifetime when none is asked for.
pub const DEFAULT_LINK_LIFETIME: &str = "7d";

fn default_link_lifetime() -> String {
    DEFAULT_LINK_LIFETIME.to_owned()
}

/// A share link: anyone who has it may read the job until it expires, without an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedLink {
    /// The link's path on this server (`/v1/shared/<secret>`); the secret is shown this once.
    pub path: String,
    /// Expires at, Unix ms.
    pub expires_ms: u64,
}
