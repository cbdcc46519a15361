//! Accounts: a baas without users is open; `benchop admin` (on the store) makes the first admin, and
//! from then on every request but the catalogue and health needs a token, whose scopes, revocation and
//! failure limit the server enforces; the admin API manages users and tokens over HTTP.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{self, Baas, Vhost};

/// Run `benchop admin <args>` on `baas`'s store; returns stdout (the command must succeed).
pub(crate) fn admin(baas: &Baas, args: &[&str]) -> String {
    let out = Command::new(support::bin("benchop"))
        .arg("admin")
        .args(args)
        .envs(baas.store_env())
        .output()
        .expect("run benchop admin");
    assert!(
        out.status.success(),
        "benchop admin {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `benchop admin <args>` that must fail; returns its one-line reason.
fn admin_refused(baas: &Baas, args: &[&str]) -> String {
    let out = Command::new(support::bin("benchop"))
        .arg("admin")
        .args(args)
        .envs(baas.store_env())
        .output()
        .expect("run benchop admin");
    assert!(!out.status.success(), "benchop admin {args:?} was accepted");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = http.request(method, url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_user_turns_authentication_on_and_tokens_carry_scopes_and_revocation() {
    use reqwest::Method;
    let vhost = Vhost::new("accounts");
    let baas = Baas::start(&vhost.url()).await;
    let http = support::client();
    let url = |p: &str| format!("{}{p}", baas.base);

    // No user: open, anonymous.
    let (s, me) = call(&http, Method::GET, &url("/v1/me"), None, None).await;
    assert_eq!(
        (s, &me["authentication"]),
        (StatusCode::OK, &json!(false)),
        "{me}"
    );
    assert_eq!(
        call(&http, Method::GET, &url("/v1/jobs"), None, None).await.0,
        StatusCode::OK
    );

    // The first admin, from the command line, on the store.
    assert!(admin(&baas, &["user", "add", "root", "--role", "admin"]).contains("root"));
    let root = admin(
        &baas,
        &[
            "token",
            "create",
            "root",
            "--scope",
            "read,submit,admin",
            "--expires",
            "1h",
        ],
    );
    let root = root.trim();
    assert!(root.starts_with("bop_") && root.len() == 68, "{root}");
    let err = admin_refused(&baas, &["user", "add", "root"]);
    assert!(err.contains("exists already"), "{err}");
    let err = admin_refused(&baas, &["token", "create", "nobody"]);
    assert!(err.contains("no user `nobody`"), "{err}");

    // The server notices within a second: reads need a token now; catalogue and health do not.
    let start = Instant::now();
    loop {
        let (s, body) = call(&http, Method::GET, &url("/v1/jobs"), None, None).await;
        if s == StatusCode::UNAUTHORIZED {
            assert_eq!(body["code"], "unauthorized", "{body}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "authentication never came on"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for open in ["/v1/problems", "/v1/problems/1aI", "/healthz", "/openapi.json"] {
        assert_eq!(
            call(&http, Method::GET, &url(open), None, None).await.0,
            StatusCode::OK,
            "{open}"
        );
    }
    let (s, me) = call(&http, Method::GET, &url("/v1/me"), Some(root), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (&me["authentication"], &me["name"], &me["role"]),
        (&json!(true), &json!("root"), &json!("admin")),
        "{me}"
    );

    // Users and tokens over the admin API: what is refused, and why.
    let refusals = [
        (
            json!({"name": "alice"}),
            StatusCode::CREATED,
            None,
            "/v1/admin/users",
        ),
        (
            json!({"name": "alice"}),
            StatusCode::CONFLICT,
            Some("user_exists"),
            "/v1/admin/users",
        ),
        (
            json!({"name": "Alice!"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_field"),
            "/v1/admin/users",
        ),
        (
            json!({"user": "alice", "scopes": ["admin"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("scope_not_allowed"),
            "/v1/admin/tokens",
        ),
        (
            json!({"user": "alice", "expires_in": "5y"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_field"),
            "/v1/admin/tokens",
        ),
        (
            json!({"user": "bob"}),
            StatusCode::NOT_FOUND,
            Some("user_not_found"),
            "/v1/admin/tokens",
        ),
    ];
    for (body, status, code, path) in refusals {
        let (s, answer) = call(&http, Method::POST, &url(path), Some(root), Some(body.clone())).await;
        assert_eq!(s, status, "{body} → {answer}");
        if let Some(code) = code {
            assert_eq!(answer["code"], code, "{body} → {answer}");
        }
    }
    let (s, reader) = call(
        &http,
        Method::POST,
        &url("/v1/admin/tokens"),
        Some(root),
        Some(json!({"user": "alice", "scopes": ["read"], "expires_in": "30m"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{reader}");
    let reader_token = reader["token"].as_str().unwrap().to_owned();
    let reader_id = reader["record"]["id"].as_str().unwrap().to_owned();
    assert!(reader["record"]["expires_ms"].as_u64().is_some(), "{reader}");

    // Scopes: read may read, not submit, not administer.
    let job = json!({ "problem": "1aI", "methods": ["closed-form"] });
    assert_eq!(
        call(&http, Method::GET, &url("/v1/jobs"), Some(&reader_token), None)
            .await
            .0,
        StatusCode::OK
    );
    let body = refused(
        &http,
        Method::POST,
        &url("/v1/jobs"),
        Some(&reader_token),
        Some(job.clone()),
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    )
    .await;
    assert_eq!(body["details"]["needed"], "submit", "{body}");
    let (s, _) = call(
        &http,
        Method::GET,
        &url("/v1/admin/users"),
        Some(&reader_token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let submitter = admin(&baas, &["token", "create", "alice", "--scope", "read,submit"]);
    let (s, accepted) = call(
        &http,
        Method::POST,
        &url("/v1/jobs"),
        Some(submitter.trim()),
        Some(job),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");

    // Listing shows no secret; revocation takes effect on the next request.
    let (s, list) = call(
        &http,
        Method::GET,
        &url("/v1/admin/tokens?user=alice"),
        Some(root),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert!(
        !list.to_string().contains(&reader_token[4..]),
        "a secret in the listing"
    );
    let listed = admin(&baas, &["token", "list", "--json"]);
    assert!(
        !listed.contains(&reader_token[4..]) && !listed.contains(root),
        "a secret in the CLI listing"
    );
    let (s, revoked) = call(
        &http,
        Method::DELETE,
        &url(&format!("/v1/admin/tokens/{reader_id}")),
        Some(root),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_ms"].as_u64().is_some(), "{revoked}");
    let (s, body) = call(&http, Method::GET, &url("/v1/jobs"), Some(&reader_token), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body["message"].as_str().unwrap().contains("revoked"), "{body}");
    let (s, _) = call(
        &http,
        Method::DELETE,
        &url(&format!("/v1/admin/tokens/{}", uuid::Uuid::new_v4())),
        Some(root),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(admin(&baas, &["token", "list", "alice"]).contains("revoked"));

    // Guessing is cut off: after 10 failures in a minute this client gets 429, even with a good token.
    // (The first failure was the revoked token above.)
    for i in 0..9 {
        let (s, _) = call(
            &http,
            Method::GET,
            &url("/v1/jobs"),
            Some(&format!("bop_guess{i}")),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let r = http.get(url("/v1/jobs")).bearer_auth(root).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "too_many_failures", "{body}");
}

/// Run `benchop <args>` against `baas` as the holder of `token`; returns stdout (must succeed).
fn client_cmd(baas: &Baas, token: &str, args: &[&str]) -> String {
    let out = Command::new(support::bin("benchop"))
        .args(args)
        .env("BENCHOP_SERVER", &baas.base)
        .env("BENCHOP_TOKEN", token)
        .output()
        .expect("run benchop");
    assert!(
        out.status.success(),
        "benchop {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `method url` as the holder of `token` must be refused with `status` and `code`; returns the answer.
async fn refused(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
    status: StatusCode,
    code: &str,
) -> Value {
    let (s, answer) = call(http, method.clone(), url, token, body).await;
    assert_eq!(
        (s, answer["code"].as_str()),
        (status, Some(code)),
        "{method} {url}: {answer}"
    );
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_private_to_its_owner_until_shared_or_made_public() {
    use reqwest::Method;
    let vhost = Vhost::new("ownership");
    let baas = Baas::start(&vhost.url()).await;
    let _worker = crate::resilience::worker("owner-w", &vhost.url(), &[]);
    let http = support::client();
    let url = |p: &str| format!("{}{p}", baas.base);
    admin(&baas, &["user", "add", "root", "--role", "admin"]);
    admin(&baas, &["user", "add", "alice"]);
    admin(&baas, &["user", "add", "bob"]);
    let token = |user: &str| {
        admin(&baas, &["token", "create", user, "--scope", "read,submit,manage"])
            .trim()
            .to_owned()
    };
    let (root, alice, bob) = (token("root"), token("alice"), token("bob"));

    let (s, accepted) = call(
        &http,
        Method::POST,
        &url("/v1/jobs"),
        Some(&alice),
        Some(json!({ "problem": "1aI", "methods": ["closed-form"] })),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_owned();
    let job_url = url(&format!("/v1/jobs/{id}?wait=30"));
    let (s, job) = call(&http, Method::GET, &job_url, Some(&alice), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (&job["owner"], &job["visibility"], &job["status"]),
        (&json!("alice"), &json!("private"), &json!("completed")),
        "{job}"
    );

    let listed = |token: String| {
        let (http, url) = (http.clone(), url("/v1/jobs"));
        let id = id.clone();
        async move {
            let (_, list) = call(&http, Method::GET, &url, Some(&token), None).await;
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|j| j["id"] == id.as_str())
        }
    };
    let board = |token: String| {
        let (http, url) = (http.clone(), url("/v1/rankings/1aI"));
        async move {
            let (s, board) = call(&http, Method::GET, &url, Some(&token), None).await;
            assert_eq!(s, StatusCode::OK, "{board}");
            board["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["method"] == "closed-form")
        }
    };

    // Private: another user cannot tell it exists; its owner and an admin can.
    let (s, body) = call(&http, Method::GET, &job_url, Some(&bob), None).await;
    assert_eq!(
        (s, &body["code"]),
        (StatusCode::NOT_FOUND, &json!("job_not_found")),
        "{body}"
    );
    let (s, _) = call(
        &http,
        Method::DELETE,
        &url(&format!("/v1/jobs/{id}")),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(
        &http,
        Method::GET,
        &url(&format!("/v1/jobs/{id}/plot.svg")),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        call(&http, Method::GET, &job_url, Some(&root), None).await.0,
        StatusCode::OK
    );
    assert!(listed(alice.clone()).await && listed(root.clone()).await && !listed(bob.clone()).await);
    assert!(
        board(alice.clone()).await,
        "the owner's leaderboard has the owner's private run"
    );
    assert!(!board(bob.clone()).await, "another user's leaderboard does not");

    // Shared at read: bob sees it and lists it, but may not change it.
    let shared = client_cmd(&baas, &alice, &["share", &format!("job:{id}"), "bob", "read"]);
    assert!(shared.contains("bob (read)"), "{shared}");
    assert_eq!(
        call(&http, Method::GET, &job_url, Some(&bob), None).await.0,
        StatusCode::OK
    );
    assert!(listed(bob.clone()).await);
    refused(
        &http,
        Method::DELETE,
        &url(&format!("/v1/jobs/{id}")),
        Some(&bob),
        None,
        StatusCode::FORBIDDEN,
        "not_allowed",
    )
    .await;
    refused(
        &http,
        Method::PUT,
        &url(&format!("/v1/jobs/{id}/visibility")),
        Some(&bob),
        Some(json!({"visibility": "public"})),
        StatusCode::FORBIDDEN,
        "not_allowed",
    )
    .await;
    assert!(!board(bob.clone()).await, "a share is not a public run");

    // At manage: bob may act on it (the job is done, so a cancel is refused for that reason only).
    let (s, shares) = call(
        &http,
        Method::PUT,
        &url(&format!("/v1/jobs/{id}/shares/bob")),
        Some(&alice),
        Some(json!({"level": "manage"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{shares}");
    assert_eq!(
        shares["shares"],
        json!([{"user": "bob", "level": "manage", "created_ms": shares["shares"][0]["created_ms"]}])
    );
    refused(
        &http,
        Method::DELETE,
        &url(&format!("/v1/jobs/{id}")),
        Some(&bob),
        None,
        StatusCode::CONFLICT,
        "job_finished",
    )
    .await;
    refused(
        &http,
        Method::PUT,
        &url(&format!("/v1/jobs/{id}/shares/nobody")),
        Some(&alice),
        Some(json!({"level": "read"})),
        StatusCode::NOT_FOUND,
        "user_not_found",
    )
    .await;

    // A share link: anyone holding it reads the job, without a token; a made-up one reads nothing.
    let link = client_cmd(
        &baas,
        &alice,
        &["share", &format!("job:{id}"), "--link", "--expires", "1h"],
    );
    let link = link.trim();
    assert!(
        link.starts_with(&format!("{}/v1/shared/bop_", baas.base)),
        "{link}"
    );
    let (s, shared_job) = call(&http, Method::GET, link, None, None).await;
    assert_eq!(
        (s, &shared_job["id"]),
        (StatusCode::OK, &json!(id)),
        "{shared_job}"
    );
    refused(
        &http,
        Method::GET,
        &url("/v1/shared/bop_0000"),
        None,
        None,
        StatusCode::NOT_FOUND,
        "link_not_found",
    )
    .await;
    refused(
        &http,
        Method::POST,
        &url(&format!("/v1/jobs/{id}/links")),
        Some(&alice),
        Some(json!({"expires_in": "never"})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;

    // Sharing a job that does not exist is a 404, also for an admin (who passes every access check).
    let missing = uuid::Uuid::new_v4();
    for (method, path, body) in [
        (
            Method::PUT,
            format!("/v1/jobs/{missing}/shares/bob"),
            json!({"level": "read"}),
        ),
        (
            Method::POST,
            format!("/v1/jobs/{missing}/links"),
            json!({"expires_in": "1h"}),
        ),
        (
            Method::PUT,
            format!("/v1/jobs/{missing}/visibility"),
            json!({"visibility": "public"}),
        ),
    ] {
        refused(
            &http,
            method,
            &url(&path),
            Some(&root),
            Some(body),
            StatusCode::NOT_FOUND,
            "job_not_found",
        )
        .await;
    }

    // Unshared: hidden again.
    client_cmd(&baas, &alice, &["unshare", &format!("job:{id}"), "bob"]);
    assert_eq!(
        call(&http, Method::GET, &job_url, Some(&bob), None).await.0,
        StatusCode::NOT_FOUND
    );

    // Public: everyone reads it, and it counts on everyone's leaderboard; private again hides it.
    let public = client_cmd(&baas, &alice, &["share", &format!("job:{id}"), "--public"]);
    assert!(public.contains("public"), "{public}");
    assert_eq!(
        call(&http, Method::GET, &job_url, Some(&bob), None).await.0,
        StatusCode::OK
    );
    assert!(board(bob.clone()).await && listed(bob.clone()).await);
    client_cmd(&baas, &alice, &["unshare", &format!("job:{id}"), "--public"]);
    assert_eq!(
        call(&http, Method::GET, &job_url, Some(&bob), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(!board(bob.clone()).await);
}

/// Who may do what on each job endpoint, as a table: the owner, users it is shared with at read and at
/// manage, another user, an admin, a token without the scope, a revoked token and no token at all. The
/// server logs at debug level meanwhile, and no secret may appear in its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_endpoint_answers_each_kind_of_caller_as_the_table_says() {
    use reqwest::Method;
    let vhost = Vhost::new("access-table");
    let log = std::env::temp_dir().join(format!("benchop-access-{}.log", uuid::Uuid::new_v4().simple()));
    let baas = Baas::start_logged(&vhost.url(), &log).await;
    let _worker = crate::resilience::worker("access-w", &vhost.url(), &[]);
    let http = support::client();
    let url = |p: &str| format!("{}{p}", baas.base);
    admin(&baas, &["user", "add", "root", "--role", "admin"]);
    for user in ["alice", "bob", "carol", "dave", "erin"] {
        admin(&baas, &["user", "add", user]);
    }
    let token = |user: &str, scope: &str| {
        admin(&baas, &["token", "create", user, "--scope", scope])
            .trim()
            .to_owned()
    };
    let all = "read,submit,manage";
    let owner = token("alice", all);
    let reader = token("bob", all);
    let manager = token("carol", all);
    let other = token("dave", all);
    let root = token("root", all);
    let read_only = token("alice", "read");
    let revoked = token("erin", all);
    let listed = admin(&baas, &["token", "list", "erin", "--json"]);
    let erin_id = serde_json::from_str::<Value>(&listed).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    admin(&baas, &["token", "revoke", &erin_id]);

    let (s, accepted) = call(
        &http,
        Method::POST,
        &url("/v1/jobs"),
        Some(&owner),
        Some(json!({ "problem": "1aI", "methods": ["closed-form"] })),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_owned();
    let (_, job) = call(
        &http,
        Method::GET,
        &url(&format!("/v1/jobs/{id}?wait=30")),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    let task = job["tasks"][0]["id"].as_str().unwrap().to_owned();
    for (user, level) in [("bob", "read"), ("carol", "manage")] {
        let (s, _) = call(
            &http,
            Method::PUT,
            &url(&format!("/v1/jobs/{id}/shares/{user}")),
            Some(&owner),
            Some(json!({ "level": level })),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }

    // Each endpoint once per caller. The job is completed, so cancel and retry answer 409 to whoever
    // may act on it; the other writes leave the job as it was (private, a share with root).
    let endpoints: Vec<(&str, Method, String, Option<Value>)> = vec![
        ("view", Method::GET, format!("/v1/jobs/{id}"), None),
        ("plot", Method::GET, format!("/v1/jobs/{id}/plot.svg"), None),
        ("shares", Method::GET, format!("/v1/jobs/{id}/shares"), None),
        ("cancel", Method::DELETE, format!("/v1/jobs/{id}"), None),
        ("retry", Method::POST, format!("/v1/tasks/{task}/retry"), None),
        (
            "visibility",
            Method::PUT,
            format!("/v1/jobs/{id}/visibility"),
            Some(json!({"visibility": "private"})),
        ),
        (
            "share",
            Method::PUT,
            format!("/v1/jobs/{id}/shares/root"),
            Some(json!({"level": "read"})),
        ),
        (
            "link",
            Method::POST,
            format!("/v1/jobs/{id}/links"),
            Some(json!({"expires_in": "1h"})),
        ),
    ];
    use StatusCode as S;
    let (ok, made, done, missing, denied, anon) = (
        S::OK,
        S::CREATED,
        S::CONFLICT,
        S::NOT_FOUND,
        S::FORBIDDEN,
        S::UNAUTHORIZED,
    );
    #[rustfmt::skip]
    let table: Vec<(&str, Option<&str>, [StatusCode; 8])> = vec![
        //                              view     plot     shares   cancel   retry    visib.   share    link
        ("owner",         Some(&owner),    [ok,      ok,      ok,      done,    done,    ok,      ok,      made]),
        ("shared read",   Some(&reader),   [ok,      ok,      ok,      denied,  denied,  denied,  denied,  denied]),
        ("shared manage", Some(&manager),  [ok,      ok,      ok,      done,    done,    ok,      ok,      made]),
        ("other user",    Some(&other),    [missing, missing, missing, missing, missing, missing, missing, missing]),
        ("admin",         Some(&root),     [ok,      ok,      ok,      done,    done,    ok,      ok,      made]),
        ("read scope",    Some(&read_only),[ok,      ok,      ok,      denied,  denied,  denied,  denied,  denied]),
        ("revoked",       Some(&revoked),  [anon,    anon,    anon,    anon,    anon,    anon,    anon,    anon]),
        ("anonymous",     None,            [anon,    anon,    anon,    anon,    anon,    anon,    anon,    anon]),
    ];
    let mut wrong = Vec::new();
    for (who, token, expected) in &table {
        for ((what, method, path, body), want) in endpoints.iter().zip(expected) {
            let (got, answer) = call(&http, method.clone(), &url(path), *token, body.clone()).await;
            if got != *want {
                wrong.push(format!("{who} {what}: {got} (expected {want}) {answer}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // A share link read, for the log check below.
    let (s, link) = call(
        &http,
        Method::POST,
        &url(&format!("/v1/jobs/{id}/links")),
        Some(&owner),
        Some(json!({"expires_in": "1h"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let link_path = link["path"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&http, Method::GET, &url(&link_path), None, None).await.0,
        StatusCode::OK
    );

    // No secret in the server's log, at debug level.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("token created") || text.contains("share link created"),
        "the log is empty?\n{text}"
    );
    for secret in [&owner, &reader, &manager, &other, &root, &read_only, &revoked] {
        assert!(!text.contains(&secret[4..]), "a token appears in the log");
    }
    let link_secret = link_path.trim_start_matches("/v1/shared/bop_");
    assert!(
        text.contains("/v1/shared/…"),
        "the link read is not in the debug log?\n{text}"
    );
    assert!(!text.contains(link_secret), "a share link appears in the log");
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_quotas_of_tasks_in_flight_and_per_day_answer_429_with_retry_after() {
    use reqwest::Method;
    let vhost = Vhost::new("quotas");
    let baas = Baas::start_with(
        &vhost.url(),
        &[
            ("BAAS_USER_MAX_TASKS_IN_FLIGHT", "3".to_owned()),
            ("BAAS_USER_MAX_TASKS_PER_DAY", "5".to_owned()),
        ],
    )
    .await;
    let http = support::client();
    let url = |p: &str| format!("{}{p}", baas.base);
    for user in ["alice", "bob"] {
        admin(&baas, &["user", "add", user]);
    }
    let alice = admin(&baas, &["token", "create", "alice"]).trim().to_owned();
    let bob = admin(&baas, &["token", "create", "bob"]).trim().to_owned();
    let two = json!({ "problem": "1aI", "methods": ["closed-form", "cos"] });
    let submit = |token: String, body: Value| {
        let (http, url) = (http.clone(), url("/v1/jobs"));
        async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            (r.status(), retry, r.json::<Value>().await.unwrap())
        }
    };

    // No worker yet: tasks stay in flight. 2 of 3 used; 2 more would be 4.
    let (s, _, first) = submit(alice.clone(), two.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{first}");
    let (s, retry, body) = submit(alice.clone(), two.clone()).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("quota_exceeded")),
        "{body}"
    );
    assert_eq!(
        (body["details"]["quota"].as_str(), retry),
        (Some("tasks_in_flight"), Some(10)),
        "{body}"
    );
    // Quotas are per user; a job larger than a quota can never pass.
    let (s, _, body) = submit(bob.clone(), two.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let four = json!({ "problem": "1aI", "methods": ["closed-form", "cos"], "replicas": 2 });
    let (s, _, body) = submit(alice.clone(), four).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("job_too_large")),
        "{body}"
    );

    // With a worker the first job finishes; in flight frees up, the day's count does not: 2 + 2 of 5
    // pass, then 2 more would be 6.
    let _worker = crate::resilience::worker("quota-w", &vhost.url(), &[]);
    let id = first["id"].as_str().unwrap();
    let (_, job) = call(
        &http,
        Method::GET,
        &url(&format!("/v1/jobs/{id}?wait=60")),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    let (s, _, second) = submit(alice.clone(), two.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{second}");
    let id = second["id"].as_str().unwrap();
    let (_, job) = call(
        &http,
        Method::GET,
        &url(&format!("/v1/jobs/{id}?wait=60")),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    let (s, retry, body) = submit(alice.clone(), two).await;
    assert_eq!(
        (s, body["details"]["quota"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("tasks_per_day")),
        "{body}"
    );
    let retry = retry.expect("Retry-After");
    assert!(
        (86_000..=86_400).contains(&retry),
        "retry after {retry} s: when the first job's tasks age out"
    );
}
