//! Building a ranking from task results, by the benchmark's rules: methods that reached the tolerance
//! ordered by mean time, then misses with their error tier (ordered by error), then failures.

use protocol::api::{RankEntry, Standing, TimeStats};
use protocol::{Outcome, TaskResult};

/// The error tier of a miss: `1e-3` when relerr ≤ 1e-3, else `fail` (BENCHOP's reporting).
pub fn tier(relerr: f64) -> &'static str {
    if relerr <= 1e-3 { "1e-3" } else { "fail" }
}

/// Rank the results received so far.
pub fn rank<'a>(results: impl IntoIterator<Item = &'a TaskResult>) -> Vec<RankEntry> {
    let mut reached = Vec::new();
    let mut missed = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        let mut entry = RankEntry {
            rank: None,
            method: r.method.clone(),
            standing: Standing::Failed,
            tier: None,
            values: Vec::new(),
            std_errors: None,
            relerr: None,
            level: None,
            setting: None,
            time: None,
            threads: None,
            worker: Some(r.worker.clone()),
            reason: None,
        };
        match &r.outcome {
            Outcome::Succeeded(m) => {
                entry.values = m.values.clone();
                entry.std_errors = m.std_errors.clone();
                entry.relerr = Some(m.relerr);
                entry.level = Some(m.level);
                entry.setting = Some(m.setting.clone());
                entry.time = TimeStats::of(&m.times_s);
                entry.threads = Some(m.threads);
                if m.reached {
                    entry.standing = Standing::Reached;
                    reached.push(entry);
                } else {
                    entry.standing = Standing::Missed;
                    entry.tier = Some(tier(m.relerr).to_owned());
                    missed.push(entry);
                }
            }
            Outcome::Failed { kind, reason } => {
                entry.reason = Some(format!(
                    "{}: {reason}",
                    serde_json::to_value(kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                ));
                failed.push(entry);
            }
        }
    }
    let mean = |e: &RankEntry| e.time.map_or(f64::INFINITY, |t| t.mean_s);
    reached.sort_by(|a, b| mean(a).total_cmp(&mean(b)).then_with(|| a.method.cmp(&b.method)));
    for (i, e) in reached.iter_mut().enumerate() {
        e.rank = Some(u32::try_from(i + 1).unwrap_or(u32::MAX));
    }
    missed.sort_by(|a, b| {
        a.relerr
            .unwrap_or(f64::INFINITY)
            .total_cmp(&b.relerr.unwrap_or(f64::INFINITY))
            .then_with(|| a.method.cmp(&b.method))
    });
    failed.sort_by(|a, b| a.method.cmp(&b.method));
    reached.into_iter().chain(missed).chain(failed).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{FailureKind, Measurement, SCHEMA_VERSION};
    use uuid::Uuid;

    fn result(method: &str, relerr: f64, reached: bool, times: &[f64]) -> TaskResult {
        TaskResult {
            schema_version: SCHEMA_VERSION,
            task_id: Uuid::new_v4(),
            job_id: Uuid::nil(),
            method: method.into(),
            worker: "w".into(),
            started_ms: 0,
            finished_ms: 1,
            outcome: Outcome::Succeeded(Measurement {
                values: vec![1.0],
                std_errors: None,
                reference: vec![1.0],
                relerr,
                reached,
                level: 0,
                setting: String::new(),
                times_s: times.to_vec(),
                threads: 1,
            }),
        }
    }

    #[test]
    fn reached_by_time_then_misses_by_error_then_failures() {
        let failed = TaskResult {
            outcome: Outcome::Failed {
                kind: FailureKind::TimedOut,
                reason: "slow".into(),
            },
            ..result("mc", 0.0, false, &[])
        };
        let results = vec![
            failed,
            result("fd", 5e-5, true, &[0.003, 0.002, 0.004]),
            result("tree", 2e-3, false, &[0.1]),
            result("cos", 1e-9, true, &[0.0001, 0.0002, 0.0003]),
            result("fft", 5e-4, false, &[0.01]),
        ];
        let r = rank(&results);
        let order: Vec<_> = r
            .iter()
            .map(|e| (e.method.as_str(), e.standing, e.rank, e.tier.as_deref()))
            .collect();
        assert_eq!(
            order,
            vec![
                ("cos", Standing::Reached, Some(1), None),
                ("fd", Standing::Reached, Some(2), None),
                ("fft", Standing::Missed, None, Some("1e-3")),
                ("tree", Standing::Missed, None, Some("fail")),
                ("mc", Standing::Failed, None, None),
            ]
        );
        assert_eq!(r[1].time.unwrap().median_s, 0.003);
        assert!(r[4].reason.as_deref().unwrap().contains("timed_out"));
    }
}
