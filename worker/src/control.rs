//! Control commands from the monitor and baas (revoke a task, cancel a job, shut down, change the
//! concurrency), received on the worker's own exclusive, auto-delete queue bound to the control exchange.
//!
//! Revoked task ids and cancelled job ids are kept in bounded sets (oldest forgotten first). A running
//! task that is terminated, or whose job is cancelled, is stopped through its `benchop::Cancel`, which
//! every kernel checks, and reported as `FailureKind::Cancelled`; a later delivery of a revoked task is
//! acked and reported cancelled without running.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use benchop::Cancel;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use protocol::Control;
use protocol::amqp::AmqpError;
use protocol::topology::CONTROL_EXCHANGE;

/// Revoked tasks and cancelled jobs remembered at most (each).
pub const REMEMBERED: usize = 10_000;

/// What the worker's loop must do after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Drain and exit (the SIGTERM path).
    Shutdown,
    /// Run this many tasks at once from now on.
    SetConcurrency(u16),
}

/// A set that forgets its oldest members beyond a bound.
#[derive(Debug, Default)]
struct Bounded {
    set: HashSet<Uuid>,
    order: VecDeque<Uuid>,
}

impl Bounded {
    fn insert(&mut self, id: Uuid) {
        if self.set.insert(id) {
            self.order.push_back(id);
            while self.order.len() > REMEMBERED {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    fn contains(&self, id: &Uuid) -> bool {
        self.set.contains(id)
    }
}

#[derive(Debug, Default)]
struct Inner {
    revoked: Bounded,
    cancelled_jobs: Bounded,
    running: HashMap<Uuid, (Uuid, Cancel)>,
}

/// The worker's record of revocations and of the tasks it runs now.
#[derive(Debug, Default)]
pub struct Registry(Mutex<Inner>);

impl Registry {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Apply a command; returns what the worker `name` must do beyond stopping tasks.
    pub fn apply(&self, control: &Control, name: &str) -> Option<Action> {
        match control {
            Control::RevokeTask { task_id, terminate } => {
                let mut g = self.inner();
                g.revoked.insert(*task_id);
                if *terminate && let Some((_, cancel)) = g.running.get(task_id) {
                    cancel.cancel();
                }
                None
            }
            Control::CancelJob { job_id } => {
                let mut g = self.inner();
                g.cancelled_jobs.insert(*job_id);
                for (job, cancel) in g.running.values() {
                    if job == job_id {
                        cancel.cancel();
                    }
                }
                None
            }
            Control::Shutdown { .. } if control.addresses(name) => Some(Action::Shutdown),
            Control::SetConcurrency { concurrency, .. } if control.addresses(name) => Some(
                Action::SetConcurrency(u16::try_from(*concurrency).unwrap_or(u16::MAX).max(1)),
            ),
            Control::Shutdown { .. } | Control::SetConcurrency { .. } => None,
        }
    }

    /// Whether a task must not run (it, or its job, was revoked).
    pub fn is_revoked(&self, task_id: &Uuid, job_id: &Uuid) -> bool {
        let g = self.inner();
        g.revoked.contains(task_id) || g.cancelled_jobs.contains(job_id)
    }

    /// A task starts running with `cancel`; a later terminate or job cancel raises it.
    pub fn started(&self, task_id: Uuid, job_id: Uuid, cancel: Cancel) {
        let mut g = self.inner();
        // Revoked between the check and now: stop at the first check.
        if g.revoked.contains(&task_id) || g.cancelled_jobs.contains(&job_id) {
            cancel.cancel();
        }
        g.running.insert(task_id, (job_id, cancel));
    }

    /// The task ended.
    pub fn finished(&self, task_id: &Uuid) {
        self.inner().running.remove(task_id);
    }
}

/// Bind an exclusive, auto-delete, server-named queue to the control exchange, apply every command to
/// `worker`'s registry and forward the actions addressed to it, until the channel closes or `stop` is
/// cancelled.
pub async fn listen(
    channel: lapin::Channel,
    worker: std::sync::Arc<crate::Worker>,
    actions: mpsc::Sender<Action>,
    stop: CancellationToken,
) -> Result<(), AmqpError> {
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let queue = channel
        .queue_declare("".into(), options, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            CONTROL_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let consume = BasicConsumeOptions {
        no_ack: true,
        exclusive: true,
        ..BasicConsumeOptions::default()
    };
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "control".into(),
            consume,
            FieldTable::default(),
        )
        .await?;
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            n = consumer.next() => n,
        };
        let Some(delivery) = next else { return Ok(()) };
        let delivery = delivery?;
        match Control::decode(&delivery.data) {
            Ok(control) => {
                tracing::info!(?control, "control command");
                if let Some(action) = worker.control.apply(&control, worker.name()) {
                    let _ = actions.send(action).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "undecodable control command ignored"),
        }
    }
}

/// The host's one-minute load average (`/proc/loadavg`), when readable.
pub fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminate_and_job_cancel_stop_running_tasks_and_later_deliveries() {
        let r = Registry::default();
        let (t1, t2, job, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let (c1, c2) = (Cancel::new(), Cancel::new());
        r.started(t1, job, c1.clone());
        r.started(t2, other, c2.clone());
        // Revoke without terminate: the running execution goes on, later deliveries are skipped.
        assert_eq!(
            r.apply(
                &Control::RevokeTask {
                    task_id: t2,
                    terminate: false
                },
                "w"
            ),
            None
        );
        assert!(!c2.is_cancelled());
        assert!(r.is_revoked(&t2, &other));
        r.apply(
            &Control::RevokeTask {
                task_id: t2,
                terminate: true,
            },
            "w",
        );
        assert!(c2.is_cancelled());
        // Cancelling a job stops its running tasks and any later one.
        r.apply(&Control::CancelJob { job_id: job }, "w");
        assert!(c1.is_cancelled());
        assert!(r.is_revoked(&Uuid::new_v4(), &job));
        r.finished(&t1);
        // A task registered after its job was cancelled is stopped at once.
        let c3 = Cancel::new();
        r.started(Uuid::new_v4(), job, c3.clone());
        assert!(c3.is_cancelled());
    }

    #[test]
    fn worker_commands_apply_only_to_their_worker() {
        let r = Registry::default();
        assert_eq!(r.apply(&Control::Shutdown { worker: "a".into() }, "b"), None);
        assert_eq!(
            r.apply(&Control::Shutdown { worker: "a".into() }, "a"),
            Some(Action::Shutdown)
        );
        assert_eq!(
            r.apply(
                &Control::SetConcurrency {
                    worker: "*".into(),
                    concurrency: 0
                },
                "b"
            ),
            Some(Action::SetConcurrency(1))
        );
    }

    #[test]
    fn the_sets_are_bounded() {
        let r = Registry::default();
        let first = Uuid::new_v4();
        r.apply(
            &Control::RevokeTask {
                task_id: first,
                terminate: false,
            },
            "w",
        );
        for _ in 0..REMEMBERED {
            r.apply(
                &Control::RevokeTask {
                    task_id: Uuid::new_v4(),
                    terminate: false,
                },
                "w",
            );
        }
        assert!(!r.is_revoked(&first, &Uuid::nil()));
        assert_eq!(r.inner().revoked.set.len(), REMEMBERED);
    }
}
