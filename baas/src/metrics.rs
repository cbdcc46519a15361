//! Prometheus metrics of baas, served at `GET /metrics` (text exposition format).
//!
//! Labels are low-cardinality by construction: routes are the matched path templates
//! (`/v1/jobs/{id}`), never raw URLs; outcomes and statuses are small fixed sets.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::AppState;

/// baas's metrics in a registry of their own.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by method, route template and status.
    pub http_requests: IntCounterVec,
    /// HTTP latency by method and route template.
    pub http_seconds: HistogramVec,
    /// Jobs accepted.
    pub jobs_accepted: IntCounter,
    /// Tasks published and confirmed by the broker.
    pub tasks_published: IntCounter,
    /// Results consumed, by what recording them did (`new`, `duplicate`, `unknown_task`).
    pub results: IntCounterVec,
    /// Tasks dead-lettered by the broker and recorded as failed.
    pub dead_letters: IntCounter,
    /// Publish attempts that failed (retried by the republisher).
    pub publish_failures: IntCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, registered.
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("baas".to_owned()), None).unwrap_or_default();
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by method, route and status"),
            &["method", "route", "status"],
        )
        .unwrap_or_else(|_| unreachable_metric());
        let http_seconds = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP latency by method and route",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0,
            ]),
            &["method", "route"],
        )
        .unwrap_or_else(|_| unreachable_metric());
        let counter =
            |name: &str, help: &str| IntCounter::new(name, help).unwrap_or_else(|_| unreachable_metric());
        let jobs_accepted = counter("jobs_accepted_total", "Jobs accepted");
        let tasks_published = counter(
            "tasks_published_total",
            "Tasks published and confirmed by the broker",
        );
        let dead_letters = counter("dead_letters_total", "Tasks dead-lettered by the broker");
        let publish_failures = counter("publish_failures_total", "Publish attempts that failed");
        let results = IntCounterVec::new(
            Opts::new("results_total", "Results consumed by what recording them did"),
            &["recorded"],
        )
        .unwrap_or_else(|_| unreachable_metric());
        for c in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_seconds.clone()),
            Box::new(jobs_accepted.clone()),
            Box::new(tasks_published.clone()),
            Box::new(results.clone()),
            Box::new(dead_letters.clone()),
            Box::new(publish_failures.clone()),
        ] {
            // Names are fixed and distinct: registration cannot collide.
            let _ = registry.register(c);
        }
        Self {
            registry,
            http_requests,
            http_seconds,
            jobs_accepted,
            tasks_published,
            results,
            dead_letters,
            publish_failures,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Metric construction fails only on invalid names or label sets, which are literals here.
fn unreachable_metric() -> ! {
    panic!("invalid metric definition (a bug: names and labels are literals)")
}

/// Middleware: count and time every request by its route template.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = request.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    let m = &state.metrics;
    m.http_requests
        .with_label_values(&[method.as_str(), route.as_str(), response.status().as_str()])
        .inc();
    m.http_seconds
        .with_label_values(&[method.as_str(), route.as_str()])
        .observe(start.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_the_text_format_with_the_baas_prefix() {
        let m = Metrics::new();
        m.jobs_accepted.inc();
        m.results.with_label_values(&["duplicate"]).inc();
        let text = m.render();
        assert!(text.contains("baas_jobs_accepted_total 1"), "{text}");
        assert!(
            text.contains("baas_results_total{recorded=\"duplicate\"} 1"),
            "{text}"
        );
    }
}
