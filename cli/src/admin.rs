//! `benchop admin`: users and API tokens, written to the job store directly (the same database a baas
//! uses: `BAAS_DATABASE_URL`, else `<data dir>/baas.db`), so the first admin can be made before anyone
//! holds a token. Over HTTP the same operations are `/v1/admin/…`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use baas::accounts::{self, AccountError};
use baas::store::{Role, Store, now_ms, parse_scopes};
use protocol::accounts::DEFAULT_TOKEN_LIFETIME;

use crate::table::{self, Col, Layout};

/// `benchop admin …`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    command: AdminCommand,
    /// The job store's database (as baas's `BAAS_DATABASE_URL`: postgres://… or a SQLite path).
    #[arg(long, env = "BAAS_DATABASE_URL", hide_env_values = true, global = true)]
    database_url: Option<String>,
    /// Without a database URL: the directory of the SQLite store (`<dir>/baas.db`), as baas's.
    #[arg(long, env = "BENCHOP_DATA_DIR", default_value = "data", global = true)]
    data_dir: PathBuf,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Users: `add`, `list`.
    #[command(subcommand)]
    User(UserCommand),
    /// API tokens: `create`, `list`, `revoke`.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user. From the first user on, the server asks every request for a token.
    Add {
        /// 1–64 lower-case letters, digits, `.`, `_` or `-`.
        name: String,
        /// user, operator or admin.
        #[arg(long, default_value = "user")]
        role: Role,
    },
    /// List the users.
    List,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token; its secret is printed once, on standard output, and stored only as a hash.
    Create {
        /// Its user.
        user: String,
        /// Comma-separated scopes: read, submit, manage, admin (admin only for an admin).
        #[arg(long, default_value = "read,submit")]
        scope: String,
        /// Lifetime: 90d, 12h, 30m or never.
        #[arg(long, default_value = DEFAULT_TOKEN_LIFETIME)]
        expires: String,
    },
    /// List tokens (without their secrets), newest first.
    List {
        /// Only this user's.
        user: Option<String>,
    },
    /// Revoke a token at once.
    Revoke {
        /// Its id (from `token create` or `token list`).
        id: String,
    },
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let store = match &args.database_url {
        Some(url) => Store::connect(url).await?,
        None => {
            std::fs::create_dir_all(&args.data_dir)
                .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
            Store::open(Some(&args.data_dir.join("baas.db")))?
        }
    };
    let now = now_ms();
    match args.command {
        AdminCommand::User(UserCommand::Add { name, role }) => {
            let user = accounts::add_user(&store, &name, role, now)
                .await
                .map_err(refusal)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&baas::admin::user_view(user))?);
            } else {
                println!("added user {} (role {})", user.name, user.role);
            }
        }
        AdminCommand::User(UserCommand::List) => {
            let users = store.users().await?;
            if args.json {
                let views: Vec<_> = users.into_iter().map(baas::admin::user_view).collect();
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                let layout = Layout::for_stdout(false);
                let mut t = layout.table([("user", Col::Word), ("role", Col::Word), ("created", Col::Word)]);
                for u in users {
                    t.add_row(vec![u.name, u.role.to_string(), utc(u.created_ms)]);
                }
                println!("{}", table::render(&t));
            }
        }
        AdminCommand::Token(TokenCommand::Create { user, scope, expires }) => {
            let scopes = parse_scopes(&scope).map_err(|e| anyhow::anyhow!("--scope: {e}"))?;
            let lifetime =
                accounts::parse_lifetime(&expires).map_err(|e| anyhow::anyhow!("--expires: {e}"))?;
            let (record, secret) = accounts::create_token(&store, &user, scopes, lifetime, now)
                .await
                .map_err(refusal)?;
            if args.json {
                let created = protocol::accounts::CreatedToken {
                    token: secret,
                    record: baas::admin::token_view(record),
                };
                println!("{}", serde_json::to_string_pretty(&created)?);
            } else {
                println!("{secret}");
                eprintln!(
                    "token {} for {} ({}), {}: shown this once; keep it secret",
                    record.id,
                    record.user,
                    baas::store::scopes_text(&record.scopes),
                    record
                        .expires_ms
                        .map_or("never expires".to_owned(), |e| format!("expires {}", utc(e)))
                );
            }
        }
        AdminCommand::Token(TokenCommand::List { user }) => {
            let tokens = store.tokens(user).await?;
            if args.json {
                let views: Vec<_> = tokens.into_iter().map(baas::admin::token_view).collect();
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                let layout = Layout::for_stdout(false);
                let mut t = layout.table([
                    ("id", Col::Word),
                    ("user", Col::Word),
                    ("scopes", Col::Word),
                    ("state", Col::Word),
                    ("expires", Col::Word),
                ]);
                for tok in tokens {
                    let state = if tok.revoked_ms.is_some() {
                        "revoked"
                    } else if tok.is_live(now) {
                        "live"
                    } else {
                        "expired"
                    };
                    t.add_row(vec![
                        tok.id.to_string(),
                        tok.user.clone(),
                        baas::store::scopes_text(&tok.scopes),
                        state.to_owned(),
                        tok.expires_ms.map_or("never".to_owned(), utc),
                    ]);
                }
                println!("{}", table::render(&t));
            }
        }
        AdminCommand::Token(TokenCommand::Revoke { id }) => {
            let id: uuid::Uuid = id.parse().map_err(|_| {
                anyhow::anyhow!("`{id}` is not a token id (a UUID; see `benchop admin token list`)")
            })?;
            match store.revoke_token(id, now).await? {
                Some(t) if args.json => {
                    println!("{}", serde_json::to_string_pretty(&baas::admin::token_view(t))?)
                }
                Some(t) => println!("revoked token {} of {}", t.id, t.user),
                None => anyhow::bail!("no token {id}"),
            }
        }
    }
    Ok(())
}

/// An account refusal as the CLI's one-line reason.
fn refusal(e: AccountError) -> anyhow::Error {
    match e {
        AccountError::Store(e) => anyhow::Error::new(e),
        other => anyhow::anyhow!("{other}"),
    }
}

/// Unix ms as an HTTP date (`Tue, 08 Dec 2026 00:25:15 GMT`).
fn utc(ms: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(utc(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(utc(951_782_400_000), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
