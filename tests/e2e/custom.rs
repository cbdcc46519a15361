//! Custom problems end to end, through a standalone server (`benchop serve`): a job's own problem is
//! validated with field paths, its reference is computed once by baas and shipped to the workers, and the
//! job view says which solver produced it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support;

fn values(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

async fn post_job(http: &reqwest::Client, base: &str, body: &Value) -> (u16, Value) {
    let r = http
        .post(format!("{base}/v1/jobs"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_heston_job_is_ranked_against_its_computed_reference() {
    let serve = support::Serve::start(2).await;
    let http = support::client();
    let spec = json!({
        "model": {"type": "heston", "s0": [90.0, 100.0, 110.0], "r": 0.03, "v0": 0.04, "kappa": 2.0,
                  "theta": 0.04, "sigma": 0.5, "rho": -0.7},
        "instrument": {"type": "european", "right": "call", "strike": 100.0, "maturity": 1.0}
    });
    let methods = ["closed-form", "cos", "fgl", "fft"];
    let (status, accepted) = post_job(
        &http,
        &serve.base,
        &json!({"problem": spec, "methods": methods, "repeats": 1}),
    )
    .await;
    assert_eq!(status, 202, "{accepted:#}");
    let id = accepted["id"].as_str().unwrap();
    let job = support::wait_job(&http, &serve.base, id, Duration::from_secs(180)).await;

    assert_eq!(job["problem"], "custom", "{job:#}");
    // (Written with floats, as the job echoes them.)
    assert_eq!(job["spec"], spec, "the job shows the problem it was given");
    let reference = &job["reference"];
    assert_eq!(reference["solver"], "closed-form", "{job:#}");
    assert_eq!(reference["error_estimate"], 0.0, "{job:#}");
    let reference = values(&reference["values"]);
    assert_eq!(reference.len(), 3);
    // Not a copy of a catalogue case: 4a has other parameters.
    let case_4a = benchop::catalogue::case("4a").unwrap();
    assert!(benchop::relerr(&reference, &case_4a.reference) > 1e-2);

    let ranking = job["ranking"].as_array().unwrap();
    assert_eq!(ranking.len(), methods.len(), "{job:#}");
    for e in ranking {
        assert_eq!(e["standing"], "reached", "{e:#}");
        // The error the worker reported is against the computed reference, and so is ours.
        let err = benchop::relerr(&values(&e["values"]), &reference);
        assert!(err <= 1e-4, "{}: relerr {err:e}: {e:#}", e["method"]);
        assert!((e["relerr"].as_f64().unwrap() - err).abs() <= 1e-12, "{e:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_custom_problems_are_refused_with_field_paths_and_fine_grid_references_say_so() {
    let serve = support::Serve::start(1).await;
    let http = support::client();
    let base = &serve.base;

    // Out-of-range values: 422 `invalid_problem`, one detail per wrong field.
    let (status, e) = post_job(
        &http,
        base,
        &json!({"problem": {
            "model": {"type": "black_scholes", "s0": [100, -1], "r": 0.03, "sigma": -0.2},
            "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 0}
        }}),
    )
    .await;
    assert_eq!(status, 422, "{e:#}");
    assert_eq!(e["code"], "invalid_problem", "{e:#}");
    let fields: Vec<&str> = e["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "problem.model.s0[1]",
            "problem.model.sigma",
            "problem.instrument.maturity"
        ],
        "{e:#}"
    );
    assert!(
        e["details"][1]["reason"].as_str().unwrap().contains("> 0"),
        "{e:#}"
    );

    // A spot already past its knock-out barrier.
    let (status, e) = post_job(
        &http,
        base,
        &json!({"problem": {
            "model": {"type": "black_scholes", "s0": [100, 130], "r": 0.03, "sigma": 0.2},
            "instrument": {"type": "barrier", "right": "call", "strike": 100, "maturity": 1,
                           "barrier": "up_and_out", "level": 125}
        }}),
    )
    .await;
    assert_eq!(
        (status, e["details"][0]["field"].as_str()),
        (422, Some("problem.model.s0[1]")),
        "{e:#}"
    );

    // A wrong shape (misspelt field): 400 `invalid_body`, the message names the path.
    let (status, e) = post_job(
        &http,
        base,
        &json!({"problem": {
            "model": {"type": "heston", "s0": [100], "r": 0.03, "v0": 0.04, "kappa": 2, "theta": 0.04,
                      "sigma": 0.5, "rhoo": -0.7},
            "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}
        }}),
    )
    .await;
    assert_eq!((status, e["code"].as_str()), (400, Some("invalid_body")), "{e:#}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("problem.model") && message.contains("rhoo"),
        "{e:#}"
    );

    // A method that does not apply to the custom problem (the fixed-point method covers American puts
    // and calls that are never exercised early, not calls at r < 0).
    let (status, e) = post_job(
        &http,
        base,
        &json!({"problem": {
            "model": {"type": "black_scholes", "s0": [100], "r": -0.01, "sigma": 0.2},
            "instrument": {"type": "american", "right": "call", "strike": 100, "maturity": 1}
        }, "methods": ["closed-form"]}),
    )
    .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (422, Some("method_not_applicable")),
        "{e:#}"
    );

    // An American put: the reference comes from the fixed-point method at a fine level, with its error
    // estimate.
    let (status, accepted) = post_job(
        &http,
        base,
        &json!({"problem": {
            "model": {"type": "black_scholes", "s0": [80, 90, 100], "r": 0.05, "sigma": 0.3},
            "instrument": {"type": "american", "right": "put", "strike": 95, "maturity": 1}
        }, "methods": ["cos", "tree"], "repeats": 1}),
    )
    .await;
    assert_eq!(status, 202, "{accepted:#}");
    let job = support::wait_job(
        &http,
        base,
        accepted["id"].as_str().unwrap(),
        Duration::from_secs(180),
    )
    .await;
    let solver = job["reference"]["solver"].as_str().unwrap();
    assert_eq!(solver, "closed-form", "{job:#}");
    let estimate = job["reference"]["error_estimate"].as_f64().unwrap();
    assert!(estimate > 0.0 && estimate <= 1e-9, "{job:#}");
    let reference = values(&job["reference"]["values"]);
    for e in job["ranking"].as_array().unwrap() {
        if e["standing"] == "reached" {
            assert!(
                benchop::relerr(&values(&e["values"]), &reference) <= 1e-4,
                "{e:#}"
            );
        }
    }
    assert!(
        job["ranking"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["standing"] == "reached"),
        "{job:#}"
    );

    // Local volatility from a formula crosses the wire as text and is priced by the workers' grids.
    let (status, accepted) = post_job(
        &http,
        base,
        &json!({"problem": {
            "model": {"type": "local_vol", "s0": [90, 100, 110], "r": 0.03,
                      "surface": {"type": "formula", "sigma": "0.2 + 0.1*exp(-t)*(S/100 - 1)^2"}},
            "instrument": {"type": "european", "right": "put", "strike": 100, "maturity": 1}
        }, "methods": ["fd"], "repeats": 1}),
    )
    .await;
    assert_eq!(status, 202, "{accepted:#}");
    let job = support::wait_job(
        &http,
        base,
        accepted["id"].as_str().unwrap(),
        Duration::from_secs(180),
    )
    .await;
    assert!(
        job["reference"]["solver"]
            .as_str()
            .unwrap()
            .ends_with("-richardson"),
        "{job:#}"
    );
    let entry = &job["ranking"][0];
    assert_eq!(entry["standing"], "reached", "{job:#}");
    assert!(benchop::relerr(&values(&entry["values"]), &values(&job["reference"]["values"])) <= 1e-4);
    // A formula with a syntax error is refused at its field.
    let (status, e) = post_job(
        &http,
        base,
        &json!({"problem": {
            "model": {"type": "local_vol", "s0": [100], "r": 0.03, "surface": {"type": "formula", "sigma": "0.2 +* S"}},
            "instrument": {"type": "european", "right": "put", "strike": 100, "maturity": 1}
        }}),
    )
    .await;
    assert_eq!(
        (status, e["details"][0]["field"].as_str()),
        (422, Some("problem.model.surface.sigma")),
        "{e:#}"
    );

    // The OpenAPI description carries an example per family.
    let doc: Value = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let examples =
        &doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["examples"];
    let types: Vec<&str> = examples
        .as_object()
        .unwrap()
        .values()
        .filter_map(|e| e["value"]["problem"]["model"]["type"].as_str())
        .collect();
    for family in ["black_scholes", "heston", "merton", "local_vol", "two_asset"] {
        assert!(types.contains(&family), "no {family} example: {examples:#}");
    }
}
