//! Accounts without HTTP: new tokens and their hashes, user names, expiry durations. The store keeps
//! users and tokens ([`crate::store::UserRecord`], [`crate::store::TokenRecord`]); the middleware in
//! [`crate::auth`] checks them; the API (`/v1/admin/…`) and `benchop admin` create them.

use std::time::Duration;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store::{Role, Scope, Store, StoreError, TokenRecord, UserRecord};

/// What every token starts with, so a leaked one is easy to recognise (and to grep for).
pub const TOKEN_PREFIX: &str = "bop_";

/// A new random secret (256 bits from the operating system) and its hash, the only form stored.
pub fn new_secret() -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let secret = format!("{TOKEN_PREFIX}{}", hex(&bytes));
    let hash = hash_secret(&secret);
    Ok((secret, hash))
}

/// The stored form of a token's secret: SHA-256, hex. The secret is 256 random bits, so a fast hash
/// is enough (nothing to brute-force), and a lookup by hash compares no secret bytes at all.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A user name: 1–64 of lower-case ASCII letters, digits, `.`, `_` and `-`, starting with a letter or
/// digit.
pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a user name: 1–64 lower-case letters, digits, `.`, `_` or `-`, starting with a letter or digit"
        ))
    }
}

/// `90d`, `12h`, `30m` or `never` (→ `None`): how long a token lives.
pub fn parse_lifetime(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    if text == "never" {
        return Ok(None);
    }
    let err = || format!("`{text}` is not a lifetime: use e.g. 90d, 12h, 30m or never");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().map_err(|_| err())?;
    let secs = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        _ => return Err(err()),
    };
    if n == 0 || n > 3_650 * 86_400 / secs {
        return Err(format!(
            "`{text}`: a lifetime is at least 1 minute and at most 10 years"
        ));
    }
    Ok(Some(Duration::from_secs(n * secs)))
}

/// Why an account could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A name, role, scope or lifetime is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The user name is taken.
    #[error("user `{0}` exists already")]
    UserExists(String),
    /// No such user.
    #[error("no user `{0}`")]
    NoSuchUser(String),
    /// The user's role does not allow a requested scope.
    #[error("a token of {user} (role {role}) cannot have the `{scope}` scope")]
    ScopeNotAllowed {
        /// The user.
        user: String,
        /// Their role.
        role: Role,
        /// The scope asked for.
        scope: Scope,
    },
    /// The operating system gave no randomness.
    #[error("no randomness for a token: {0}")]
    Random(#[from] getrandom::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Add user `name` with `role`.
pub async fn add_user(
    store: &Store,
    name: &str,
    role: Role,
    now_ms: u64,
) -> Result<UserRecord, AccountError> {
    check_user_name(name).map_err(AccountError::Invalid)?;
    let user = UserRecord {
        name: name.to_owned(),
        role,
        created_ms: now_ms,
    };
    if store.add_user(user.clone()).await? {
        Ok(user)
    } else {
        Err(AccountError::UserExists(name.to_owned()))
    }
}

/// A new token for `user` with `scopes`, living `lifetime` (`None`: until revoked). Returns the record
/// and the secret, which is shown once and stored only as its hash.
pub async fn create_token(
    store: &Store,
    user: &str,
    scopes: Vec<Scope>,
    lifetime: Option<Duration>,
    now_ms: u64,
) -> Result<(TokenRecord, String), AccountError> {
    if scopes.is_empty() {
        return Err(AccountError::Invalid("a token needs at least one scope".into()));
    }
    let users = store.users().await?;
    let Some(owner) = users.iter().find(|u| u.name == user) else {
        return Err(AccountError::NoSuchUser(user.to_owned()));
    };
    if let Some(&scope) = scopes.iter().find(|s| !owner.role.allows(**s)) {
        return Err(AccountError::ScopeNotAllowed {
            user: user.to_owned(),
            role: owner.role,
            scope,
        });
    }
    let (secret, hash) = new_secret()?;
    let record = TokenRecord {
        id: Uuid::new_v4(),
        user: user.to_owned(),
        scopes,
        created_ms: now_ms,
        expires_ms: lifetime.map(|d| now_ms.saturating_add(d.as_millis() as u64)),
        revoked_ms: None,
    };
    if !store.add_token(record.clone(), hash).await? {
        return Err(AccountError::NoSuchUser(user.to_owned()));
    }
    Ok((record, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_prefixed_and_stored_only_as_their_hash() {
        let (a, ha) = new_secret().unwrap();
        let (b, hb) = new_secret().unwrap();
        assert_ne!(a, b);
        assert!(
            a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64,
            "{a}"
        );
        assert_eq!(ha, hash_secret(&a));
        assert_ne!(ha, hb);
        assert!(!ha.contains(&a[TOKEN_PREFIX.len()..]));
        // SHA-256 of "abc" (FIPS 180-2, appendix B.1).
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn names_and_lifetimes_are_checked() {
        for good in ["alice", "bob-2", "x", "a.b_c"] {
            check_user_name(good).unwrap();
        }
        for bad in ["", "Alice", "-a", "a b", "ä", &"a".repeat(65)] {
            assert!(check_user_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_lifetime("90d").unwrap(),
            Some(Duration::from_secs(90 * 86_400))
        );
        assert_eq!(
            parse_lifetime("12h").unwrap(),
            Some(Duration::from_secs(12 * 3_600))
        );
        assert_eq!(parse_lifetime("30m").unwrap(), Some(Duration::from_secs(1_800)));
        assert_eq!(parse_lifetime("never").unwrap(), None);
        for bad in ["", "d", "0d", "5", "5y", "-1d", "99999d"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }
}
