//! Turning one task into one result: resolve, tune, time. Synchronous and CPU-bound: call it from a
//! blocking thread, never from the async runtime.

use std::time::{Duration, Instant};

use benchop::{Cancel, MethodId, catalogue, tune};
use protocol::{FailureKind, Measurement, Outcome, ProblemRef, SCHEMA_VERSION, TaskMessage, TaskResult};

/// Price, tune and time one task. Never panics on bad input: every problem becomes a failed outcome.
pub fn execute(task: &TaskMessage, worker: &str, cancel: &Cancel) -> TaskResult {
    let started_ms = protocol::task::now_ms();
    let outcome = outcome(task, cancel);
    TaskResult {
        schema_version: SCHEMA_VERSION,
        task_id: task.task_id,
        job_id: task.job_id,
        method: task.method.clone(),
        worker: worker.to_owned(),
        started_ms,
        finished_ms: protocol::task::now_ms(),
        outcome,
    }
}

/// The cancellation flag for a task: its time limit counted from now.
pub fn cancel_for(task: &TaskMessage) -> Cancel {
    Cancel::with_deadline(Instant::now() + Duration::from_millis(task.time_limit_ms.max(1)))
}

fn failed(kind: FailureKind, reason: impl Into<String>) -> Outcome {
    Outcome::Failed {
        kind,
        reason: reason.into(),
    }
}

fn outcome(task: &TaskMessage, cancel: &Cancel) -> Outcome {
    let ProblemRef::Catalogue(id) = &task.problem;
    let Some(case) = catalogue::case(id) else {
        return failed(FailureKind::Invalid, format!("unknown problem `{id}`"));
    };
    let Some(method) = MethodId::from_name(&task.method) else {
        return failed(FailureKind::Invalid, format!("unknown method `{}`", task.method));
    };
    if !method.applies_to(&case.problem) {
        return failed(
            FailureKind::NotApplicable,
            format!("{method} does not apply to {}", case.id),
        );
    }
    if task.repeats == 0 || task.repeats > protocol::api::MAX_REPEATS {
        return failed(
            FailureKind::Invalid,
            format!("repeats {} out of range", task.repeats),
        );
    }
    let tuned = match task.level {
        None => tune::tune(method, &case.problem, &case.reference, task.tolerance, cancel).map(|t| t.level),
        Some(level) => Ok(level as usize),
    };
    let measured = tuned.and_then(|level| {
        tune::measure(method, &case.problem, level, task.repeats as usize, cancel).map(|m| (level, m))
    });
    match measured {
        Ok((level, (times, estimate))) => {
            let relerr = benchop::relerr(&estimate.values, &case.reference);
            let statistical = estimate.std_errors.as_ref().map_or(0.0, |se| {
                se.iter()
                    .zip(&case.reference)
                    .map(|(s, r)| 2.0 * s / r.abs())
                    .fold(0.0, f64::max)
            });
            Outcome::Succeeded(Measurement {
                reached: relerr <= task.tolerance && statistical <= task.tolerance,
                values: estimate.values,
                std_errors: estimate.std_errors,
                reference: case.reference.clone(),
                relerr,
                level: u32::try_from(level).unwrap_or(u32::MAX),
                setting: estimate.setting,
                times_s: times.iter().map(Duration::as_secs_f64).collect(),
                threads: u32::try_from(rayon_threads()).unwrap_or(u32::MAX),
            })
        }
        Err(benchop::Error::Cancelled(why)) if why.contains("time limit") => failed(
            FailureKind::TimedOut,
            format!("stopped after the task's time limit of {} ms", task.time_limit_ms),
        ),
        Err(benchop::Error::Cancelled(why)) => failed(FailureKind::Cancelled, why),
        Err(e @ benchop::Error::NotApplicable { .. }) => failed(FailureKind::NotApplicable, e.to_string()),
        Err(e @ benchop::Error::InvalidParameter { .. }) => failed(FailureKind::Invalid, e.to_string()),
        Err(e) => failed(FailureKind::Numerical, e.to_string()),
    }
}

fn rayon_threads() -> usize {
    // benchop's kernels run on rayon's global pool; its size is the thread count to report.
    rayon::current_num_threads()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn task(problem: &str, method: &str) -> TaskMessage {
        TaskMessage {
            schema_version: SCHEMA_VERSION,
            task_id: Uuid::new_v4(),
            job_id: Uuid::new_v4(),
            problem: ProblemRef::Catalogue(problem.into()),
            method: method.into(),
            tolerance: 1e-4,
            repeats: 2,
            level: None,
            time_limit_ms: 60_000,
        }
    }

    #[test]
    fn a_closed_form_task_reaches_the_tolerance_and_is_timed() {
        let t = task("1aI", "closed-form");
        let r = execute(&t, "w", &cancel_for(&t));
        let Outcome::Succeeded(m) = r.outcome else {
            panic!("{:?}", r.outcome)
        };
        assert!(m.reached && m.relerr < 1e-10);
        assert_eq!(m.times_s.len(), 2);
        assert_eq!(r.task_id, t.task_id);
    }

    #[test]
    fn bad_tasks_fail_with_a_reason_instead_of_panicking() {
        for (p, m, kind) in [
            ("nope", "cos", FailureKind::Invalid),
            ("1aI", "nope", FailureKind::Invalid),
            ("6a", "tree", FailureKind::NotApplicable),
        ] {
            let t = task(p, m);
            let r = execute(&t, "w", &cancel_for(&t));
            assert!(
                matches!(r.outcome, Outcome::Failed { kind: k, .. } if k == kind),
                "{p} {m}: {:?}",
                r.outcome
            );
        }
    }

    #[test]
    fn a_revoked_task_reports_cancelled() {
        let t = task("1aI", "closed-form");
        let cancel = Cancel::new();
        cancel.cancel();
        let r = execute(&t, "w", &cancel);
        assert!(
            matches!(
                r.outcome,
                Outcome::Failed {
                    kind: FailureKind::Cancelled,
                    ..
                }
            ),
            "{:?}",
            r.outcome
        );
    }
}
