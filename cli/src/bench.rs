//! `benchop bench`: the BENCHOP table on this machine — every case × method, tuned to the tolerance,
//! timed on one core and on all cores, optionally beside QuantLib's engines of the same class.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use comfy_table::Cell;
use serde::{Deserialize, Serialize};

use benchop::{Cancel, MethodId, catalogue, tune};
use protocol::api::TimeStats;

use crate::table::{Col, Layout, ratio, render, wrap};

/// Options of `benchop bench`.
pub struct Options {
    /// Case ids to run (all when empty).
    pub cases: Vec<String>,
    /// Method ids to run (all that apply when empty).
    pub methods: Vec<String>,
    /// Tolerance.
    pub tolerance: f64,
    /// Timed runs after the warm-up.
    pub repeats: usize,
    /// Seconds a method may spend tuning and timing one case.
    pub time_limit: Duration,
    /// Also run scripts/quantlib_bench.py and print the ratios.
    pub quantlib: bool,
}

/// One measured (case, method) pair.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    case: String,
    method: String,
    reached: bool,
    relerr: Option<f64>,
    level: Option<usize>,
    setting: Option<String>,
    one_thread: Option<TimeStats>,
    all_threads: Option<TimeStats>,
    threads: usize,
    error: Option<String>,
    /// Stochastic methods: standard errors of the timed estimate.
    std_errors: Option<Vec<f64>>,
    /// Stochastic methods: one-thread time to reach 2·se ≤ tolerance·|reference| (see [`precision`]).
    time_to_precision_s: Option<f64>,
    quantlib: Option<QlRow>,
}

/// A row of scripts/quantlib_bench.py's JSON output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QlRow {
    case: String,
    method: String,
    engine: String,
    reached: bool,
    relerr: Option<f64>,
    mean_s: Option<f64>,
    min_s: Option<f64>,
    #[serde(default)]
    setting: Option<String>,
    /// Monte Carlo rows: standard errors at the timed setting.
    #[serde(default)]
    std_errors: Option<Vec<f64>>,
    /// Monte Carlo rows: time to reach 2·se ≤ tolerance·|reference|, by the same rule as ours.
    #[serde(default)]
    time_to_precision_s: Option<f64>,
}

/// Time to precision of a stochastic method, the standard measure of Monte Carlo efficiency
/// (work-normalised variance; Glasserman 2003, §1.1.3), applied identically to QuantLib's MC engines by
/// scripts/quantlib_bench.py.
///
/// The benchmark's tolerance is far beyond Monte Carlo's reach in seconds, so the comparison is the
/// time each engine would need to meet the tuner's statistical criterion `2·se_i ≤ tol·|ref_i|` at
/// every point. Cost model T(N) = F + c·N: with the runs at N₁ < N₂ samples taking T₁ and T₂, the
/// N-independent part is F = (T₁N₂ − T₂N₁)/(N₂ − N₁), clamped to [0, T₂] (0 when T₂ ≤ T₁); as se falls
/// as 1/√N, the time to precision is F + (T₂ − F)·(s/tol)² with s = maxᵢ 2·se_i/|ref_i| at N₂; a run
/// that already meets the criterion (s ≤ tol) counts with its own time T₂ (no extrapolation down).
pub fn precision(t1: Option<(f64, f64)>, (t2, n2): (f64, f64), s: f64, tol: f64) -> f64 {
    if s <= tol {
        return t2;
    }
    let fixed = match t1 {
        Some((t1, n1)) if t2 > t1 && n2 > n1 => ((t1 * n2 - t2 * n1) / (n2 - n1)).clamp(0.0, t2),
        _ => 0.0,
    };
    fixed + (t2 - fixed) * (s / tol).powi(2)
}

/// Samples of a stochastic method at a ladder level (paths, or points × replicates), `None` past the
/// end of the ladder or for deterministic methods.
fn samples(method: MethodId, problem: &benchop::Problem, level: usize) -> Option<f64> {
    match method {
        MethodId::Mc => benchop::method::mc::level_config(problem, level).map(|c| c.paths as f64),
        MethodId::Qmc => {
            benchop::method::qmc::level_config(problem, level).map(|c| (c.points * c.replicates) as f64)
        }
        _ => None,
    }
}

fn stats(times: &[Duration]) -> Option<TimeStats> {
    TimeStats::of(&times.iter().map(Duration::as_secs_f64).collect::<Vec<_>>())
}

fn measure_pair(
    case: &catalogue::Case,
    method: MethodId,
    opts: &Options,
    pools: &[rayon::ThreadPool; 2],
) -> Row {
    let mut row = Row {
        case: case.id.to_owned(),
        method: method.name().to_owned(),
        reached: false,
        relerr: None,
        level: None,
        setting: None,
        one_thread: None,
        all_threads: None,
        threads: pools[1].current_num_threads(),
        error: None,
        std_errors: None,
        time_to_precision_s: None,
        quantlib: None,
    };
    let cancel = Cancel::with_deadline(Instant::now() + opts.time_limit);
    let tuned =
        pools[1].install(|| tune::tune(method, &case.problem, &case.reference, opts.tolerance, &cancel));
    let tuned = match tuned {
        Ok(t) => t,
        Err(e) => {
            row.error = Some(e.to_string());
            return row;
        }
    };
    row.reached = tuned.reached;
    row.relerr = Some(tuned.relerr);
    row.level = Some(tuned.level);
    row.setting = Some(tuned.estimate.setting.clone());
    if method.is_stochastic() {
        return measure_stochastic(case, method, opts, pools, &cancel, row, &tuned);
    }
    for (i, pool) in pools.iter().enumerate() {
        match pool.install(|| tune::measure(method, &case.problem, tuned.level, opts.repeats, &cancel)) {
            Ok((times, _)) if i == 0 => row.one_thread = stats(&times),
            Ok((times, _)) => row.all_threads = stats(&times),
            Err(e) => row.error = Some(e.to_string()),
        }
    }
    row
}

/// A stochastic method is timed at the level it reached the tolerance at, or else at the most accurate
/// level of its ladder (not the one whose relerr happened to be smallest), and gets its time to
/// precision from that run and one at the level below (see [`precision`]).
fn measure_stochastic(
    case: &catalogue::Case,
    method: MethodId,
    opts: &Options,
    pools: &[rayon::ThreadPool; 2],
    cancel: &Cancel,
    mut row: Row,
    tuned: &tune::Tuned,
) -> Row {
    let problem = &case.problem;
    let level = if tuned.reached {
        tuned.level
    } else {
        (0..)
            .take_while(|&l| samples(method, problem, l).is_some())
            .last()
            .unwrap_or(tuned.level)
    };
    let mut timed = None;
    for (i, pool) in pools.iter().enumerate() {
        match pool.install(|| tune::measure(method, problem, level, opts.repeats, cancel)) {
            Ok((times, estimate)) if i == 0 => {
                row.one_thread = stats(&times);
                timed = Some(estimate);
            }
            Ok((times, _)) => row.all_threads = stats(&times),
            Err(e) => row.error = Some(e.to_string()),
        }
    }
    let (Some(estimate), Some(t2)) = (timed, row.one_thread) else {
        return row;
    };
    let below = match level.checked_sub(1) {
        Some(l) => match pools[0].install(|| tune::measure(method, problem, l, opts.repeats, cancel)) {
            Ok((times, _)) => stats(&times)
                .zip(samples(method, problem, l))
                .map(|(t, n)| (t.mean_s, n)),
            Err(e) => {
                row.error = Some(e.to_string());
                None
            }
        },
        None => None,
    };
    let se = estimate.std_errors.clone().unwrap_or_default();
    let reference = &case.reference;
    let s = se
        .iter()
        .zip(reference)
        .map(|(e, r)| 2.0 * e / r.abs())
        .fold(0.0, f64::max);
    let agrees = estimate
        .values
        .iter()
        .zip(reference)
        .zip(&se)
        .all(|((v, r), e)| (v - r).abs() <= 4.0 * e);
    if let Some(n2) = samples(method, problem, level)
        && agrees
    {
        row.time_to_precision_s = Some(precision(below, (t2.mean_s, n2), s, opts.tolerance));
    }
    row.level = Some(level);
    row.relerr = Some(benchop::relerr(&estimate.values, reference));
    row.setting = Some(estimate.setting);
    row.std_errors = Some(se);
    row
}

/// Run the benchmark and return its rows.
pub fn run(opts: &Options) -> anyhow::Result<Vec<Row>> {
    let cases: Vec<&catalogue::Case> = if opts.cases.is_empty() {
        catalogue::cases().iter().collect()
    } else {
        opts.cases
            .iter()
            .map(|id| {
                catalogue::case(id).with_context(|| {
                    format!("unknown problem `{id}`; `benchop problems` lists the catalogue")
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let methods: Vec<MethodId> = if opts.methods.is_empty() {
        MethodId::ALL.to_vec()
    } else {
        opts.methods
            .iter()
            .map(|m| {
                MethodId::from_name(m)
                    .with_context(|| format!("unknown method `{m}`; `benchop methods` lists them"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    if let Err(benchop::Error::InvalidParameter { reason, .. }) =
        benchop::tune::check_tolerance(opts.tolerance)
    {
        bail!("invalid --tolerance: {reason}");
    }
    if opts.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    let all = std::thread::available_parallelism().map_or(1, usize::from);
    let pools = [
        rayon::ThreadPoolBuilder::new().num_threads(1).build()?,
        rayon::ThreadPoolBuilder::new().num_threads(all).build()?,
    ];
    let mut rows = Vec::new();
    for case in &cases {
        for &method in methods.iter().filter(|m| m.applies_to(&case.problem)) {
            eprintln!("bench: {} × {method}", case.id);
            rows.push(measure_pair(case, method, opts, &pools));
        }
    }
    if opts.quantlib {
        let ql = quantlib(opts, &cases)?;
        let mut by_key: HashMap<(String, String), QlRow> = HashMap::new();
        for r in ql {
            // Keep the fastest QuantLib engine of each class that reached the tolerance; Monte Carlo
            // engines by their time to precision.
            let key = (r.case.clone(), r.method.clone());
            let time = |q: &QlRow| q.time_to_precision_s.or(q.mean_s).unwrap_or(f64::INFINITY);
            let better = by_key.get(&key).is_none_or(|old| {
                (r.reached && !old.reached) || (r.reached == old.reached && time(&r) < time(old))
            });
            if better {
                by_key.insert(key, r);
            }
        }
        for row in &mut rows {
            row.quantlib = by_key.remove(&(row.case.clone(), row.method.clone()));
        }
        // QuantLib's FD engines are one class; where only our strike-concentrated grid applies (Heston),
        // compare it with them.
        for row in rows
            .iter_mut()
            .filter(|r| r.method == MethodId::FdNu.name() && r.quantlib.is_none())
        {
            row.quantlib = by_key.remove(&(row.case.clone(), MethodId::Fd.name().to_owned()));
        }
        // QuantLib classes benchop has no method of its own for (e.g. its American approximation).
        let mut rest: Vec<QlRow> = by_key.into_values().collect();
        rest.sort_by(|a, b| (&a.case, &a.method).cmp(&(&b.case, &b.method)));
        for r in rest {
            rows.push(Row {
                case: r.case.clone(),
                method: format!("({} only in QuantLib)", r.method),
                reached: false,
                relerr: None,
                level: None,
                setting: None,
                one_thread: None,
                all_threads: None,
                threads: all,
                error: None,
                std_errors: None,
                time_to_precision_s: None,
                quantlib: Some(r),
            });
        }
    }
    Ok(rows)
}

fn quantlib(opts: &Options, cases: &[&catalogue::Case]) -> anyhow::Result<Vec<QlRow>> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/quantlib_bench.py");
    let ids: Vec<&str> = cases.iter().map(|c| c.id).collect();
    let out = Command::new("python3")
        .arg(&script)
        .args([
            "--tolerance",
            &opts.tolerance.to_string(),
            "--repeats",
            &opts.repeats.to_string(),
        ])
        .args(["--cases", &ids.join(",")])
        .args(if opts.methods.is_empty() {
            Vec::new()
        } else {
            vec!["--methods".to_owned(), opts.methods.join(",")]
        })
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run python3 {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}); is QuantLib installed (`pip install QuantLib`)?",
            script.display(),
            out.status
        );
    }
    serde_json::from_slice(&out.stdout).context("QuantLib script printed no valid JSON")
}

fn fmt_time(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// The BENCHOP table: case, method, reached, relerr, the times on one and on all threads, QuantLib's time
/// and our speed-up over it (with `--quantlib`) and the setting; `--wide` adds the ladder level and the
/// name of QuantLib's engine.
pub fn table(rows: &[Row], layout: Layout) -> String {
    let threads = rows.first().map_or(1, |r| r.threads);
    let with_ql = rows.iter().any(|r| r.quantlib.is_some());
    let mut columns = vec![
        ("case".to_owned(), Col::Word),
        ("method".to_owned(), Col::Word),
        ("1e-4?".to_owned(), Col::Word),
        ("relerr".to_owned(), Col::Num),
    ];
    if layout.wide {
        columns.push(("level".to_owned(), Col::Num));
    }
    columns.extend([
        ("1 thread".to_owned(), Col::Num),
        (format!("{threads} threads"), Col::Num),
    ]);
    if with_ql {
        if layout.wide {
            columns.push(("QuantLib engine".to_owned(), Col::Text));
        }
        columns.extend([("QuantLib".to_owned(), Col::Num), ("faster".to_owned(), Col::Num)]);
    }
    columns.push(("setting".to_owned(), Col::Text));
    let mut t = layout.table(columns);
    for r in rows {
        let mut cells = vec![
            Cell::new(&r.case),
            Cell::new(&r.method),
            Cell::new(match (&r.error, r.reached) {
                (Some(_), _) => "error",
                (None, true) => "yes",
                (None, false) if r.relerr.is_some() => "missed",
                (None, false) => "",
            }),
            Cell::new(r.relerr.map_or(String::new(), |e| format!("{e:.1e}"))),
        ];
        if layout.wide {
            cells.push(Cell::new(r.level.map_or(String::new(), |l| l.to_string())));
        }
        cells.extend([
            Cell::new(r.one_thread.map_or(String::new(), |s| fmt_time(s.mean_s))),
            Cell::new(r.all_threads.map_or(String::new(), |s| fmt_time(s.mean_s))),
        ]);
        if with_ql {
            let q = r.quantlib.as_ref();
            let speedup = match (
                q.and_then(|q| q.reached.then_some(q.mean_s).flatten()),
                r.one_thread,
                q.and_then(|q| q.time_to_precision_s).zip(r.time_to_precision_s),
            ) {
                (Some(ql), Some(ours), _) if r.reached && ours.mean_s > 0.0 => ratio(ql / ours.mean_s),
                (_, _, Some((ql, ours))) if ours > 0.0 => format!("{} ᵖ", ratio(ql / ours)),
                _ => String::new(),
            };
            if layout.wide {
                cells.push(Cell::new(q.map_or(String::new(), |q| q.engine.clone())));
            }
            // QuantLib's time, marked when its engine missed the tolerance.
            let missed = if q.is_some_and(|q| !q.reached) { " ✗" } else { "" };
            cells.push(Cell::new(
                q.and_then(|q| q.mean_s)
                    .map_or(String::new(), |t| format!("{}{missed}", fmt_time(t))),
            ));
            cells.push(Cell::new(speedup));
        }
        cells.push(Cell::new(
            r.error.clone().or_else(|| r.setting.clone()).unwrap_or_default(),
        ));
        t.add_row(cells);
    }
    let mut out = render(&t);
    if with_ql {
        out += "\n✗ QuantLib's engine missed the tolerance within its budget.";
    }
    out += &precision_note(rows, layout, with_ql);
    out
}

/// Under the table: the time-to-precision figures behind the ᵖ ratios of stochastic methods.
fn precision_note(rows: &[Row], layout: Layout, with_ql: bool) -> String {
    let lines: Vec<String> = rows
        .iter()
        .filter(|r| {
            r.time_to_precision_s.is_some() || r.quantlib.as_ref().is_some_and(|q| q.std_errors.is_some())
        })
        .map(|r| {
            let worst = |se: &Option<Vec<f64>>| {
                let reference = catalogue::case(&r.case)
                    .map(|c| c.reference.clone())
                    .unwrap_or_default();
                se.as_ref().map_or(String::from("?"), |se| {
                    let s = se
                        .iter()
                        .zip(&reference)
                        .map(|(e, x)| e / x.abs())
                        .fold(0.0, f64::max);
                    format!("{s:.1e}")
                })
            };
            let ours = match (r.one_thread, r.time_to_precision_s) {
                (Some(t), Some(p)) => format!(
                    "ours {} at se/ref ≤ {} → {}",
                    fmt_time(t.mean_s),
                    worst(&r.std_errors),
                    fmt_time(p)
                ),
                (Some(t), None) => format!(
                    "ours {} at se/ref ≤ {} (disagrees with the reference beyond 4 se)",
                    fmt_time(t.mean_s),
                    worst(&r.std_errors)
                ),
                _ => String::from("ours: not measured"),
            };
            let theirs = match r.quantlib.as_ref() {
                Some(q) => match (q.mean_s, q.time_to_precision_s) {
                    (Some(t), Some(p)) => format!(
                        "{} {} at se/ref ≤ {} → {}",
                        q.engine,
                        fmt_time(t),
                        worst(&q.std_errors),
                        fmt_time(p)
                    ),
                    (Some(t), None) => format!(
                        "{} {} at se/ref ≤ {} (disagrees with the reference beyond 4 se)",
                        q.engine,
                        fmt_time(t),
                        worst(&q.std_errors)
                    ),
                    _ => format!("{}: no time", q.engine),
                },
                None => String::from("no QuantLib engine of this class"),
            };
            wrap(
                &format!("{} {}: {ours}; {theirs}", r.case, r.method),
                layout,
                "  ",
                "    ",
            )
        })
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n");
    if with_ql {
        out += &wrap(
            "ᵖ stochastic methods: `faster` compares the one-thread times to precision, i.e. to reach \
             2·se ≤ tolerance·|reference| at every point, extrapolated from the most accurate affordable run \
             as F + (T − F)·(s/tol)² (F: the part of the time independent of the sample count, from the run \
             one level below; s: max 2·se/|ref|; T itself when s ≤ tol), identically for QuantLib's MC engines \
             (scripts/quantlib_bench.py), at the same time steps; only where both agree with the reference \
             within 4 se.",
            layout,
            "",
            "",
        );
    } else {
        out += &wrap(
            "Stochastic methods, time to precision (2·se ≤ tolerance·|reference| at every point, \
             extrapolated from the most accurate affordable run):",
            layout,
            "",
            "",
        );
    }
    for l in lines {
        out += &l;
    }
    out
}

/// One line per case: its fastest method reaching the tolerance on one thread.
pub fn winners(rows: &[Row]) -> String {
    let mut out = String::new();
    let mut seen = Vec::new();
    for r in rows {
        if seen.contains(&&r.case) {
            continue;
        }
        seen.push(&r.case);
        let best = rows
            .iter()
            .filter(|x| x.case == r.case && x.reached)
            .filter_map(|x| x.one_thread.map(|t| (x, t.mean_s)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let reached = rows.iter().filter(|x| x.case == r.case && x.reached).count();
        match best {
            Some((x, t)) => {
                out += &format!(
                    "{:<12} fastest: {:<12} {:>10}   ({reached} method(s) reach the tolerance)\n",
                    r.case,
                    x.method,
                    fmt_time(t)
                );
            }
            None => out += &format!("{:<12} no method reaches the tolerance\n", r.case),
        }
    }
    out
}
