//! Prometheus metrics at `/metrics`: events by type, task runtime by method, workers online, queue depth
//! and oldest age. Labels are low-cardinality (event type, method, queue); never ids or worker names.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::broker::QueueStats;

/// The monitor's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    events: IntCounterVec,
    runtime: HistogramVec,
    workers_online: IntGauge,
    tasks_retained: IntGauge,
    store_dropped: IntGauge,
    queue_ready: IntGaugeVec,
    queue_unacked: IntGaugeVec,
    queue_consumers: IntGaugeVec,
    queue_oldest: GaugeVec,
}

impl Metrics {
    /// Fresh metrics in their own registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let events = IntCounterVec::new(
            Opts::new(
                "benchop_monitor_events_total",
                "Lifecycle events received, by type",
            ),
            &["type"],
        )?;
        let runtime = HistogramVec::new(
            HistogramOpts::new(
                "benchop_task_runtime_seconds",
                "Wall time of succeeded tasks (tuning and timing), by method",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
            ]),
            &["method"],
        )?;
        let workers_online = IntGauge::new("benchop_workers_online", "Workers online (heartbeat seen)")?;
        let tasks_retained = IntGauge::new("benchop_monitor_tasks_retained", "Tasks held in memory")?;
        let store_dropped = IntGauge::new(
            "benchop_monitor_history_dropped",
            "History writes dropped (writer behind)",
        )?;
        let queue_ready = IntGaugeVec::new(
            Opts::new("benchop_queue_ready", "Messages ready, by queue"),
            &["queue"],
        )?;
        let queue_unacked = IntGaugeVec::new(
            Opts::new("benchop_queue_unacked", "Messages unacked, by queue"),
            &["queue"],
        )?;
        let queue_consumers = IntGaugeVec::new(
            Opts::new("benchop_queue_consumers", "Consumers, by queue"),
            &["queue"],
        )?;
        let queue_oldest = GaugeVec::new(
            Opts::new(
                "benchop_queue_oldest_age_seconds",
                "Age of the oldest message, by queue",
            ),
            &["queue"],
        )?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(runtime.clone()))?;
        registry.register(Box::new(workers_online.clone()))?;
        registry.register(Box::new(tasks_retained.clone()))?;
        registry.register(Box::new(store_dropped.clone()))?;
        registry.register(Box::new(queue_ready.clone()))?;
        registry.register(Box::new(queue_unacked.clone()))?;
        registry.register(Box::new(queue_consumers.clone()))?;
        registry.register(Box::new(queue_oldest.clone()))?;
        Ok(Self {
            registry,
            events,
            runtime,
            workers_online,
            tasks_retained,
            store_dropped,
            queue_ready,
            queue_unacked,
            queue_consumers,
            queue_oldest,
        })
    }

    /// Count one event.
    pub fn event(&self, routing_key: &str) {
        self.events.with_label_values(&[routing_key]).inc();
    }

    /// Observe a succeeded task's runtime.
    pub fn runtime(&self, method: &str, runtime_ms: u64) {
        let method = if method.is_empty() { "unknown" } else { method };
        self.runtime
            .with_label_values(&[method])
            .observe(runtime_ms as f64 / 1000.0);
    }

    /// Set the gauges read from the state.
    pub fn set_state(&self, workers_online: usize, retained: usize, dropped: u64) {
        self.workers_online
            .set(i64::try_from(workers_online).unwrap_or(i64::MAX));
        self.tasks_retained
            .set(i64::try_from(retained).unwrap_or(i64::MAX));
        self.store_dropped.set(i64::try_from(dropped).unwrap_or(i64::MAX));
    }

    /// Set the queue gauges.
    pub fn set_queues(&self, queues: &[QueueStats]) {
        let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        for q in queues {
            let l = [q.name.as_str()];
            self.queue_ready.with_label_values(&l).set(int(q.ready));
            self.queue_consumers.with_label_values(&l).set(int(q.consumers));
            if let Some(u) = q.unacked {
                self.queue_unacked.with_label_values(&l).set(int(u));
            }
            self.queue_oldest
                .with_label_values(&l)
                .set(q.oldest_age_ms.map_or(0.0, |ms| ms as f64 / 1000.0));
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "metrics not encoded");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_with_low_cardinality_labels() {
        let m = Metrics::new().unwrap();
        m.event("task.succeeded");
        m.runtime("cos", 1500);
        m.set_state(2, 10, 0);
        m.set_queues(&[QueueStats {
            name: "benchop.tasks".into(),
            ready: 3,
            unacked: Some(1),
            consumers: 2,
            oldest_age_ms: Some(4000),
            ..QueueStats::default()
        }]);
        let text = m.render();
        assert!(
            text.contains(r#"benchop_monitor_events_total{type="task.succeeded"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"benchop_task_runtime_seconds_count{method="cos"} 1"#),
            "{text}"
        );
        assert!(text.contains("benchop_workers_online 2"), "{text}");
        assert!(
            text.contains(r#"benchop_queue_ready{queue="benchop.tasks"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"benchop_queue_oldest_age_seconds{queue="benchop.tasks"} 4"#),
            "{text}"
        );
    }
}
