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

/// The one result per method that ranks a work-precision (ladder) job, whose tasks price every level:
/// the cheapest level that reached the tolerance (the level tuning would pick), else the most accurate
/// level, else the method's first failure.
pub fn per_method<'a>(results: impl IntoIterator<Item = &'a TaskResult>) -> Vec<&'a TaskResult> {
    let mut by_method: std::collections::BTreeMap<&str, Vec<&TaskResult>> = Default::default();
    for r in results {
        by_method.entry(r.method.as_str()).or_default().push(r);
    }
    by_method
        .into_values()
        .filter_map(|rs| {
            let measured = || {
                rs.iter().filter_map(|r| match &r.outcome {
                    Outcome::Succeeded(m) => Some((*r, m)),
                    Outcome::Failed { .. } => None,
                })
            };
            measured()
                .filter(|(_, m)| m.reached)
                .min_by_key(|(_, m)| m.level)
                .or_else(|| measured().min_by(|a, b| a.1.relerr.total_cmp(&b.1.relerr)))
                .map(|(r, _)| r)
                .or_else(|| rs.first().copied())
        })
        .collect()
}

/// Pool the replicas of each method (a job with `replicas > 1` prices every method several times):
/// one result per method whose timed runs are all the replicas' runs together, whose error is the
/// worst replica's and which reached the tolerance only if every replica did. Failed replicas are
/// dropped when another replica succeeded; a method with no success keeps its first failure. With one
/// task per method this is the identity.
pub fn pool_replicas<'a>(results: impl IntoIterator<Item = &'a TaskResult>) -> Vec<TaskResult> {
    let mut by_method: std::collections::BTreeMap<&str, Vec<&TaskResult>> = Default::default();
    for r in results {
        by_method.entry(r.method.as_str()).or_default().push(r);
    }
    by_method
        .into_values()
        .filter_map(|rs| {
            let mut pooled: Option<TaskResult> = None;
            for r in &rs {
                let Outcome::Succeeded(m) = &r.outcome else {
                    continue;
                };
                match &mut pooled {
                    None => pooled = Some((*r).clone()),
                    Some(p) => {
                        if let Outcome::Succeeded(acc) = &mut p.outcome {
                            acc.times_s.extend_from_slice(&m.times_s);
                            acc.reached &= m.reached;
                            if m.relerr > acc.relerr {
                                acc.relerr = m.relerr;
                                acc.values.clone_from(&m.values);
                                acc.std_errors.clone_from(&m.std_errors);
                                acc.level = m.level;
                                acc.setting.clone_from(&m.setting);
                            }
                        }
                    }
                }
            }
            pooled.or_else(|| rs.first().map(|r| (*r).clone()))
        })
        .collect()
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
    fn replicas_pool_into_one_entry_per_method() {
        let failed = TaskResult {
            outcome: Outcome::Failed {
                kind: FailureKind::Panicked,
                reason: "boom".into(),
            },
            ..result("cos", 0.0, false, &[])
        };
        let results = vec![
            result("cos", 1e-6, true, &[0.001, 0.002]),
            failed.clone(),
            result("cos", 3e-6, true, &[0.004]),
            result("fd", 5e-5, true, &[0.01]),
            result("fd", 2e-4, false, &[0.02]),
            TaskResult {
                method: "mc".into(),
                ..failed
            },
        ];
        let pooled = pool_replicas(&results);
        let ranked = rank(&pooled);
        let cos = ranked.iter().find(|e| e.method == "cos").unwrap();
        assert_eq!(cos.time.unwrap().runs, 3);
        assert_eq!(cos.relerr, Some(3e-6));
        assert_eq!(cos.standing, Standing::Reached);
        let fd = ranked.iter().find(|e| e.method == "fd").unwrap();
        assert_eq!(fd.standing, Standing::Missed, "one replica missed");
        assert_eq!(fd.relerr, Some(2e-4));
        assert_eq!(
            ranked.iter().find(|e| e.method == "mc").unwrap().standing,
            Standing::Failed
        );
        assert_eq!(ranked.len(), 3);
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

    fn at_level(method: &str, level: u32, relerr: f64, reached: bool) -> TaskResult {
        let mut r = result(method, relerr, reached, &[0.001 * f64::from(level + 1)]);
        if let Outcome::Succeeded(m) = &mut r.outcome {
            m.level = level;
        }
        r
    }

    #[test]
    fn a_ladder_job_ranks_each_method_by_its_cheapest_level_that_reached() {
        let timed_out = TaskResult {
            outcome: Outcome::Failed {
                kind: FailureKind::TimedOut,
                reason: "slow".into(),
            },
            ..result("mc", 0.0, false, &[])
        };
        let results = vec![
            at_level("fd", 0, 1e-2, false),
            at_level("fd", 2, 5e-6, true),
            at_level("fd", 1, 5e-5, true),
            at_level("tree", 0, 3e-3, false),
            at_level("tree", 1, 8e-4, false),
            timed_out.clone(),
            timed_out,
        ];
        let chosen = per_method(&results);
        let summary: Vec<_> = chosen
            .iter()
            .map(|r| match &r.outcome {
                Outcome::Succeeded(m) => (r.method.as_str(), Some(m.level)),
                Outcome::Failed { .. } => (r.method.as_str(), None),
            })
            .collect();
        assert_eq!(summary, vec![("fd", Some(1)), ("mc", None), ("tree", Some(1))]);
        let ranked = rank(chosen);
        assert_eq!(ranked.len(), 3);
        assert_eq!((ranked[0].method.as_str(), ranked[0].level), ("fd", Some(1)));
        assert_eq!(ranked[1].tier.as_deref(), Some("1e-3"));
    }
}

/// A ladder job's method counts as one run on a leaderboard: where one job priced a method at several
/// levels, keep its [`per_method`] choice; other results (tuned tasks, replicas) stay as they are.
fn collapse_ladders<'a>(results: impl IntoIterator<Item = &'a TaskResult>) -> Vec<&'a TaskResult> {
    let mut by_job: std::collections::BTreeMap<(uuid::Uuid, &str), Vec<&TaskResult>> = Default::default();
    for r in results {
        by_job.entry((r.job_id, r.method.as_str())).or_default().push(r);
    }
    by_job
        .into_values()
        .flat_map(|rs| {
            let mut levels: Vec<u32> = rs
                .iter()
                .filter_map(|r| match &r.outcome {
                    Outcome::Succeeded(m) => Some(m.level),
                    Outcome::Failed { .. } => None,
                })
                .collect();
            levels.sort_unstable();
            levels.dedup();
            if levels.len() > 1 { per_method(rs) } else { rs }
        })
        .collect()
}

/// Aggregate every result of a problem into its leaderboard: methods that reached the tolerance at
/// least once, by their best time; then the others by their best error.
pub fn leaderboard<'a>(
    results: impl IntoIterator<Item = &'a TaskResult>,
) -> Vec<protocol::api::LeaderboardEntry> {
    use std::collections::BTreeMap;
    let mut by_method: BTreeMap<&str, Vec<&TaskResult>> = BTreeMap::new();
    for r in collapse_ladders(results) {
        by_method.entry(r.method.as_str()).or_default().push(r);
    }
    let mut entries: Vec<protocol::api::LeaderboardEntry> = by_method
        .into_iter()
        .map(|(method, rs)| {
            let measured: Vec<&protocol::Measurement> = rs
                .iter()
                .filter_map(|r| match &r.outcome {
                    Outcome::Succeeded(m) => Some(m),
                    Outcome::Failed { .. } => None,
                })
                .collect();
            let mut reached: Vec<(f64, &TaskResult, &protocol::Measurement)> = rs
                .iter()
                .filter_map(|r| match &r.outcome {
                    Outcome::Succeeded(m) if m.reached => {
                        TimeStats::of(&m.times_s).map(|t| (t.mean_s, *r, m))
                    }
                    _ => None,
                })
                .collect();
            reached.sort_by(|a, b| a.0.total_cmp(&b.0));
            let times: Vec<f64> = reached.iter().map(|x| x.0).collect();
            protocol::api::LeaderboardEntry {
                rank: None,
                method: method.to_owned(),
                runs: u32::try_from(rs.len()).unwrap_or(u32::MAX),
                reached: u32::try_from(reached.len()).unwrap_or(u32::MAX),
                best_time_s: times.first().copied(),
                median_time_s: TimeStats::of(&times).map(|t| t.median_s),
                best_relerr: measured.iter().map(|m| m.relerr).min_by(f64::total_cmp),
                threads: reached.first().map(|x| x.2.threads),
                worker: reached.first().map(|x| x.1.worker.clone()),
            }
        })
        .collect();
    entries.sort_by(|a, b| match (a.best_time_s, b.best_time_s) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a
            .best_relerr
            .unwrap_or(f64::INFINITY)
            .total_cmp(&b.best_relerr.unwrap_or(f64::INFINITY)),
    });
    let mut rank = 0;
    for e in &mut entries {
        if e.best_time_s.is_some() {
            rank += 1;
            e.rank = Some(rank);
        }
    }
    entries
}

#[cfg(test)]
mod leaderboard_tests {
    use super::*;
    use protocol::{Measurement, SCHEMA_VERSION};
    use uuid::Uuid;

    fn run(method: &str, reached: bool, relerr: f64, time: f64) -> TaskResult {
        TaskResult {
            schema_version: SCHEMA_VERSION,
            task_id: Uuid::new_v4(),
            job_id: Uuid::new_v4(),
            method: method.into(),
            worker: format!("w-{time}"),
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
                times_s: vec![time],
                threads: 2,
            }),
        }
    }

    #[test]
    fn best_and_median_times_over_runs_that_reached() {
        let rs = [
            run("fd", true, 5e-5, 0.003),
            run("fd", true, 6e-5, 0.001),
            run("fd", true, 6e-5, 0.002),
            run("cos", true, 1e-6, 0.0001),
            run("mc", false, 2e-3, 0.2),
            run("mc", false, 1e-3, 0.4),
        ];
        let board = leaderboard(&rs);
        let summary: Vec<_> = board
            .iter()
            .map(|e| {
                (
                    e.method.as_str(),
                    e.rank,
                    e.runs,
                    e.reached,
                    e.best_time_s,
                    e.median_time_s,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("cos", Some(1), 1, 1, Some(0.0001), Some(0.0001)),
                ("fd", Some(2), 3, 3, Some(0.001), Some(0.002)),
                ("mc", None, 2, 0, None, None),
            ]
        );
        assert_eq!(board[2].best_relerr, Some(1e-3));
        assert_eq!(board[1].worker.as_deref(), Some("w-0.001"));
    }

    #[test]
    fn a_ladder_job_counts_as_one_run_at_its_cheapest_level_that_reached() {
        let sweep = Uuid::new_v4();
        let level = |level: u32, reached: bool, time: f64| {
            let mut r = run("fd", reached, if reached { 1e-5 } else { 1e-2 }, time);
            r.job_id = sweep;
            if let Outcome::Succeeded(m) = &mut r.outcome {
                m.level = level;
            }
            r
        };
        let rs = [
            level(0, false, 0.001),
            level(1, true, 0.002),
            level(2, true, 0.004),
            run("fd", true, 5e-5, 0.003),
        ];
        let board = leaderboard(&rs);
        assert_eq!(board.len(), 1);
        assert_eq!((board[0].runs, board[0].reached), (2, 2), "the sweep is one run");
        assert_eq!(board[0].best_time_s, Some(0.002));
        assert_eq!(board[0].median_time_s, Some(0.0025));
    }
}
