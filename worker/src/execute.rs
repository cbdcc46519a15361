//! Turning one task into one result: resolve, tune, time. Synchronous and CPU-bound: call it from a
//! blocking thread, never from the async runtime.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use benchop::{Cancel, MethodId, Problem, catalogue, tune};
use protocol::task::Probe;
use protocol::{FailureKind, Measurement, Outcome, ProblemRef, SCHEMA_VERSION, TaskMessage, TaskResult};

/// Price, tune and time one task. Never panics on bad input: every problem becomes a failed outcome.
pub fn execute(task: &TaskMessage, worker: &str, cancel: &Cancel) -> TaskResult {
    let started_ms = protocol::task::now_ms();
    let outcome = match task.probe {
        Some(probe) => probe_outcome(probe, cancel),
        None => outcome(task, cancel),
    };
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

/// Run a load-testing probe instead of a kernel: a success with no values, timed like a kernel run.
fn probe_outcome(probe: Probe, cancel: &Cancel) -> Outcome {
    let start = Instant::now();
    let setting = match probe {
        Probe::Noop => "probe: noop".to_owned(),
        Probe::Spin { micros } => {
            let until = start + Duration::from_micros(micros.min(protocol::task::MAX_PROBE_MICROS));
            while Instant::now() < until {
                if cancel.check().is_err() {
                    return failed(FailureKind::Cancelled, "probe cancelled");
                }
                std::hint::spin_loop();
            }
            format!("probe: spin {micros} µs")
        }
    };
    Outcome::Succeeded(Measurement {
        values: Vec::new(),
        std_errors: None,
        reference: Vec::new(),
        relerr: 0.0,
        reached: true,
        level: 0,
        setting,
        times_s: vec![start.elapsed().as_secs_f64()],
        threads: 1,
    })
}

fn failed(kind: FailureKind, reason: impl Into<String>) -> Outcome {
    Outcome::Failed {
        kind,
        reason: reason.into(),
    }
}

/// A task's problem and the reference values it is measured against.
struct Resolved {
    /// The problem id (`custom` for a custom problem).
    id: String,
    problem: Cow<'static, Problem>,
    reference: Cow<'static, [f64]>,
}

/// Look a catalogue problem up, or rebuild a custom one from its spec, with the reference baas shipped.
fn resolve(problem: &ProblemRef) -> Result<Resolved, (FailureKind, String)> {
    match problem {
        ProblemRef::Catalogue(id) => {
            let case = catalogue::case(id)
                .ok_or_else(|| (FailureKind::Invalid, format!("unknown problem `{id}`")))?;
            Ok(Resolved {
                id: case.id.to_owned(),
                problem: Cow::Borrowed(&case.problem),
                reference: Cow::Borrowed(&case.reference),
            })
        }
        ProblemRef::Custom(custom) => {
            let problem = custom.spec.to_problem().map_err(|errors| {
                let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
                (
                    FailureKind::Invalid,
                    format!("invalid custom problem: {}", reasons.join("; ")),
                )
            })?;
            let values = &custom.reference.values;
            if values.len() != problem.points().len() || values.iter().any(|v| !v.is_finite() || *v == 0.0) {
                return Err((
                    FailureKind::Invalid,
                    format!(
                        "the custom problem's reference has {} value(s) for {} point(s), \
                         or a zero or non-finite one",
                        values.len(),
                        problem.points().len()
                    ),
                ));
            }
            Ok(Resolved {
                id: protocol::api::CUSTOM_PROBLEM_ID.to_owned(),
                problem: Cow::Owned(problem),
                reference: Cow::Owned(values.clone()),
            })
        }
    }
}

fn outcome(task: &TaskMessage, cancel: &Cancel) -> Outcome {
    let case = match resolve(&task.problem) {
        Ok(r) => r,
        Err((kind, reason)) => return failed(kind, reason),
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
                    .zip(case.reference.iter())
                    .map(|(s, r)| 2.0 * s / r.abs())
                    .fold(0.0, f64::max)
            });
            Outcome::Succeeded(Measurement {
                reached: relerr <= task.tolerance && statistical <= task.tolerance,
                values: estimate.values,
                std_errors: estimate.std_errors,
                reference: case.reference.to_vec(),
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
            probe: None,
        }
    }

    #[test]
    fn probes_run_instead_of_the_kernel() {
        let mut t = task("nope", "nope");
        t.probe = Some(Probe::Noop);
        let r = execute(&t, "w", &cancel_for(&t));
        let Outcome::Succeeded(m) = r.outcome else {
            panic!("{:?}", r.outcome)
        };
        assert!(m.reached && m.values.is_empty() && m.times_s.len() == 1);
        t.probe = Some(Probe::Spin { micros: 2000 });
        let Outcome::Succeeded(m) = execute(&t, "w", &cancel_for(&t)).outcome else {
            panic!("spin failed")
        };
        assert!(m.times_s[0] >= 0.002, "{:?}", m.times_s);
        let cancel = Cancel::new();
        cancel.cancel();
        assert!(matches!(
            execute(&t, "w", &cancel).outcome,
            Outcome::Failed {
                kind: FailureKind::Cancelled,
                ..
            }
        ));
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

    fn custom(spec: serde_json::Value, reference: Vec<f64>, method: &str) -> TaskMessage {
        TaskMessage {
            problem: ProblemRef::Custom(Box::new(protocol::CustomProblem {
                spec: serde_json::from_value(spec).unwrap(),
                reference: protocol::problem_spec::ReferenceInfo {
                    solver: "closed-form".into(),
                    setting: "test".into(),
                    error_estimate: Some(0.0),
                    values: reference,
                },
            })),
            ..task("1aI", method)
        }
    }

    fn heston_4a() -> serde_json::Value {
        serde_json::json!({
            "model": {"type": "heston", "s0": [90, 100, 110], "r": 0.03, "v0": 0.0225, "kappa": 2,
                      "theta": 0.0225, "sigma": 0.25, "rho": -0.5},
            "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}
        })
    }

    #[test]
    fn a_custom_task_is_measured_against_the_reference_it_carries() {
        let case = catalogue::case("4a").unwrap();
        let t = custom(heston_4a(), case.reference.clone(), "cos");
        let r = execute(&t, "w", &cancel_for(&t));
        let Outcome::Succeeded(m) = r.outcome else {
            panic!("{:?}", r.outcome)
        };
        assert!(m.reached, "relerr {}", m.relerr);
        assert_eq!(m.reference, case.reference);
        // A reference off by 1% is what the error is measured against: the task misses.
        let shifted: Vec<f64> = case.reference.iter().map(|v| v * 1.01).collect();
        let t = custom(heston_4a(), shifted, "cos");
        let Outcome::Succeeded(m) = execute(&t, "w", &cancel_for(&t)).outcome else {
            panic!("cos failed")
        };
        assert!(
            !m.reached && (m.relerr - 0.01 / 1.01).abs() < 1e-4,
            "relerr {}",
            m.relerr
        );
    }

    #[test]
    fn a_custom_task_with_a_bad_spec_or_reference_is_invalid() {
        let mut bad = heston_4a();
        bad["model"]["rho"] = serde_json::json!(2.0);
        for t in [
            custom(bad, vec![1.0, 2.0, 3.0], "cos"),
            custom(heston_4a(), vec![1.0, 2.0], "cos"),
            custom(heston_4a(), vec![1.0, 0.0, 3.0], "cos"),
        ] {
            let r = execute(&t, "w", &cancel_for(&t));
            assert!(
                matches!(
                    r.outcome,
                    Outcome::Failed {
                        kind: FailureKind::Invalid,
                        ..
                    }
                ),
                "{:?}",
                r.outcome
            );
        }
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
