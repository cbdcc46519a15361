//! The jobs API beyond submit-and-poll, against a real baas: bearer tokens on mutating endpoints,
//! idempotency keys, listing with filters and cursor paging, per-job limits and CORS.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{self, Baas, Vhost};

async fn post_job(
    http: &reqwest::Client,
    baas: &Baas,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = http.post(format!("{}/v1/jobs", baas.base)).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// With tokens configured, every mutating endpoint refuses a request without a valid bearer token
/// (401, JSON, `WWW-Authenticate`), while reads stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_endpoints_refuse_requests_without_a_valid_token() {
    let vhost = Vhost::new("api-auth");
    let http = support::client();
    let baas = Baas::start_with(&vhost.url(), &[("BAAS_API_TOKENS", "tok-one,tok-two".to_owned())]).await;
    let body = json!({ "problem": "1aI", "methods": ["cos"] });

    let (status, err) = post_job(&http, &baas, &body, &[]).await;
    assert_eq!(status, 401, "{err}");
    assert_eq!(err["code"], "unauthorized");
    let (status, err) = post_job(&http, &baas, &body, &[("authorization", "Bearer nope")]).await;
    assert_eq!(status, 401, "{err}");
    let r = http
        .delete(format!("{}/v1/jobs/{}", baas.base, uuid::Uuid::new_v4()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let retry = http.post(format!("{}/v1/tasks/{}/retry", baas.base, uuid::Uuid::new_v4()));
    assert_eq!(support::expect(retry, 401).await["code"], "unauthorized");

    let (status, accepted) = post_job(&http, &baas, &body, &[("authorization", "Bearer tok-two")]).await;
    assert_eq!(status, 202, "{accepted}");
    // Reads need no token.
    let id = accepted["id"].as_str().unwrap();
    support::expect(http.get(format!("{}/v1/jobs/{id}", baas.base)), 200).await;
    support::expect(http.get(format!("{}/v1/problems", baas.base)), 200).await;
}

/// A retried POST with the same `Idempotency-Key` returns the job it created (200, same id) and
/// creates nothing; the same key with another body is a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_makes_a_retried_submission_return_the_same_job() {
    let vhost = Vhost::new("api-idem");
    let http = support::client();
    let baas = Baas::start(&vhost.url()).await;
    let body = json!({ "problem": "1aI", "methods": ["cos", "fd"] });
    let key = [("idempotency-key", "client-retry-42")];

    let (s1, first) = post_job(&http, &baas, &body, &key).await;
    let (s2, second) = post_job(&http, &baas, &body, &key).await;
    assert_eq!((s1, s2), (202, 200), "{first} {second}");
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["tasks"], 2);

    let list = support::expect(http.get(format!("{}/v1/jobs", baas.base)), 200).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "one job stored: {list:#}"
    );

    let other = json!({ "problem": "1aI", "methods": ["cos"] });
    let (status, err) = post_job(&http, &baas, &other, &key).await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["code"], "idempotency_conflict");
    assert_eq!(err["details"]["job_id"], first["id"]);
    let long = "k".repeat(201);
    let (status, err) = post_job(&http, &baas, &body, &[("idempotency-key", long.as_str())]).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["code"], "invalid_idempotency_key");
}

/// `GET /v1/jobs` filters by problem, status and time and pages with an opaque cursor; every job
/// appears on exactly one page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_lists_filter_and_page_with_a_cursor() {
    let vhost = Vhost::new("api-list");
    let http = support::client();
    let baas = Baas::start(&vhost.url()).await;
    let mut ids = Vec::new();
    for problem in ["1aI", "1aI", "1bI", "1aI", "4a"] {
        ids.push(
            baas.submit(&http, &json!({ "problem": problem, "methods": ["cos"] }))
                .await,
        );
    }
    let list = |query: String| {
        let http = http.clone();
        let base = baas.base.clone();
        async move {
            let r = http.get(format!("{base}/v1/jobs?{query}")).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };

    // Pages of two, newest first, until no cursor.
    let mut seen = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let (status, page) = list(query.clone()).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|j| j["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("limit=2&cursor={c}"),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "every job exactly once, newest first");

    let (_, by_problem) = list("problem=1aI".to_owned()).await;
    assert_eq!(by_problem["items"].as_array().unwrap().len(), 3, "{by_problem:#}");
    let (_, queued) = list("status=queued".to_owned()).await;
    assert_eq!(
        queued["items"].as_array().unwrap().len(),
        5,
        "no worker: all queued: {queued:#}"
    );
    let (_, none) = list("status=completed".to_owned()).await;
    assert!(none["items"].as_array().unwrap().is_empty());
    let (_, future) = list(format!("since_ms={}", protocol::task::now_ms() + 60_000)).await;
    assert!(future["items"].as_array().unwrap().is_empty());

    for bad in ["cursor=abc", "status=sleeping", "limit=-1", "colour=blue"] {
        let (status, err) = list(bad.to_owned()).await;
        assert_eq!(status, 400, "{bad}: {err}");
        assert!(
            err["code"] == "invalid_query" || err["code"] == "invalid_cursor",
            "{bad}: {err}"
        );
    }
}

/// Jobs over the per-job task limit are refused with 422 `job_too_large` and nothing is stored;
/// CORS answers only for configured origins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_jobs_are_refused_and_cors_follows_the_configuration() {
    let vhost = Vhost::new("api-limits");
    let http = support::client();
    let baas = Baas::start_with(
        &vhost.url(),
        &[
            ("BAAS_MAX_TASKS_PER_JOB", "10".to_owned()),
            ("BAAS_CORS_ORIGINS", "https://lab.example".to_owned()),
        ],
    )
    .await;
    let (status, err) = post_job(
        &http,
        &baas,
        &json!({ "problem": "1aI", "methods": ["cos", "fd"], "replicas": 6 }),
        &[],
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["code"], "job_too_large");
    assert_eq!(err["details"]["tasks"], 12);
    let (status, err) = post_job(&http, &baas, &json!({ "problem": "1aI", "replicas": 0 }), &[]).await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["details"]["field"], "replicas");
    let (status, ok) = post_job(
        &http,
        &baas,
        &json!({ "problem": "1aI", "methods": ["cos", "fd"], "replicas": 5 }),
        &[],
    )
    .await;
    assert_eq!(status, 202, "{ok}");
    assert_eq!(ok["tasks"], 10);

    let preflight = |origin: &'static str| {
        let http = http.clone();
        let url = format!("{}/v1/jobs", baas.base);
        async move {
            http.request(reqwest::Method::OPTIONS, url)
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .unwrap()
        }
    };
    let allowed = preflight("https://lab.example").await;
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("https://lab.example".to_owned())
    );
    let other = preflight("https://evil.example").await;
    assert!(other.headers().get("access-control-allow-origin").is_none());
}
