//! Tuning a method to a tolerance and timing it by the benchmark's rules.

use std::time::{Duration, Instant};

use crate::method::{Estimate, MethodId};
use crate::{Cancel, Error, Problem, relerr};

/// The cheapest ladder level found for a tolerance.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuned {
    /// The ladder level used (0 = cheapest).
    pub level: usize,
    /// The estimate at that level.
    pub estimate: Estimate,
    /// Its relative error against the reference.
    pub relerr: f64,
    /// Whether it reached the tolerance; when `false`, `level` is the most accurate level tried.
    pub reached: bool,
}

/// Smallest and largest tolerance the tuner accepts.
pub const TOLERANCE_RANGE: (f64, f64) = (1e-8, 1e-2);

/// Walk the method's ladder from the cheapest level up and stop at the first that reaches `tol`.
///
/// A deterministic method reaches `tol` when `relerr ≤ tol`. A stochastic one must also be accurate
/// statistically, not by luck: `relerr ≤ tol` **and** twice its largest relative standard error
/// `≤ tol`. When no level reaches `tol`, the most accurate level tried is returned with
/// `reached = false`, so a ranking can report the miss with its error tier.
///
/// ```
/// use benchop::{catalogue, tune, Cancel, MethodId};
/// let case = catalogue::case("1aI").unwrap();
/// let t = tune::tune(MethodId::ClosedForm, &case.problem, &case.reference, 1e-4, &Cancel::new()).unwrap();
/// assert!(t.reached && t.relerr < 1e-12);
/// ```
pub fn tune(
    method: MethodId,
    problem: &Problem,
    reference: &[f64],
    tol: f64,
    cancel: &Cancel,
) -> Result<Tuned, Error> {
    check_tolerance(tol)?;
    let mut best: Option<Tuned> = None;
    for level in 0.. {
        cancel.check()?;
        let Some(estimate) = method.price(problem, level, cancel)? else {
            break;
        };
        let err = relerr(&estimate.values, reference);
        let statistical = estimate.std_errors.as_ref().map_or(0.0, |se| {
            se.iter()
                .zip(reference)
                .map(|(s, r)| 2.0 * s / r.abs())
                .fold(0.0, f64::max)
        });
        let reached = err <= tol && statistical <= tol;
        let candidate = Tuned {
            level,
            estimate,
            relerr: err,
            reached,
        };
        if reached {
            return Ok(candidate);
        }
        if best.as_ref().is_none_or(|b| err < b.relerr) {
            best = Some(candidate);
        }
    }
    best.ok_or_else(|| Error::Numerical(format!("method {method} has an empty ladder for this problem")))
}

/// Reject tolerances outside [`TOLERANCE_RANGE`].
pub fn check_tolerance(tol: f64) -> Result<(), Error> {
    let (lo, hi) = TOLERANCE_RANGE;
    if tol.is_finite() && (lo..=hi).contains(&tol) {
        Ok(())
    } else {
        Err(Error::invalid(
            "tolerance",
            format!("must lie in [{lo:e}, {hi:e}], got {tol}"),
        ))
    }
}

/// Time `repeats` runs of `method` at `level` after one untimed warm-up run (the benchmark's rule).
///
/// Returns the wall time of each timed run and the estimate of the last one.
pub fn measure(
    method: MethodId,
    problem: &Problem,
    level: usize,
    repeats: usize,
    cancel: &Cancel,
) -> Result<(Vec<Duration>, Estimate), Error> {
    let missing = || Error::Numerical(format!("level {level} is past the end of {method}'s ladder"));
    let mut last = method.price(problem, level, cancel)?.ok_or_else(missing)?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        cancel.check()?;
        let start = Instant::now();
        last = method.price(problem, level, cancel)?.ok_or_else(missing)?;
        times.push(start.elapsed());
    }
    Ok((times, last))
}
