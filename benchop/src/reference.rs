//! Reference values for any problem: the best available solver, and what it was.
//!
//! Catalogue cases carry published references. A user's own parameters need one computed: a closed or
//! semi-closed form where one applies, otherwise a converged deterministic method, walked up its ladder
//! until two successive levels agree, with the difference as the error estimate (the grid methods
//! already Richardson-extrapolate internally). American puts under Black–Scholes–Merton come from the
//! closed-form method's Andersen–Lake–Offengenden ladder, which is walked the same way (its finest levels
//! agree to ~1e-11) and so carries an error estimate too.
//!
//! The error estimate of a ladder method comes from the relative changes between its finest levels,
//! `d_k = max_i |v_k,i − v_k−1,i| / |v_k,i|`: the larger of `d_k−1` and the geometric tail
//! `d_k · ρ/(1 − ρ)` (ρ = d_k/d_k−1, capped at 0.9) that remains when the changes keep shrinking at the
//! observed rate, and never less than `d_k`. Taking the previous change too guards against a lucky small
//! step of an oscillating ladder (a Richardson-extrapolated tree can land two levels within 1e-7 of each
//! other while both are 5e-7 off); the tail covers slowly converging grids whose levels refine by only
//! 1.5× (their errors shrink by less than half per level).

use crate::method::{MethodId, closed_form};
use crate::{Cancel, Error, Problem};

/// A computed reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// One value per evaluation point.
    pub values: Vec<f64>,
    /// The method that produced it.
    pub method: MethodId,
    /// Its setting at the level used.
    pub setting: String,
    /// Estimated relative error from the changes between the finest ladder levels (see the module docs;
    /// `0` for formulas, exact to rounding).
    pub error_estimate: f64,
}

impl Reference {
    /// The solver's short name as the API reports it: `closed-form` for closed and semi-closed forms,
    /// `cos`, `fgl` or `fft` for a converged Fourier method, `fd-richardson`, `fd-nu-richardson` or
    /// `tree-richardson` for a Richardson-extrapolated fine grid or tree.
    ///
    /// ```
    /// use benchop::{catalogue, reference, Cancel};
    /// let case = catalogue::case("4a").unwrap();
    /// assert_eq!(reference::compute(&case.problem, &Cancel::new()).unwrap().solver(), "closed-form");
    /// ```
    pub fn solver(&self) -> String {
        match self.method {
            MethodId::ClosedForm | MethodId::Cos | MethodId::Fgl | MethodId::Fft => {
                self.method.name().to_owned()
            }
            m => format!("{}-richardson", m.name()),
        }
    }

    /// A one-line description for users, e.g. `closed-form (Black–Scholes–Merton formula)`.
    pub fn source(&self) -> String {
        if self.method == MethodId::ClosedForm && self.error_estimate == 0.0 {
            format!("{} ({})", self.method, self.setting)
        } else {
            format!(
                "{} at `{}`, estimated relative error {:.1e}",
                self.method, self.setting, self.error_estimate
            )
        }
    }
}

/// Deterministic methods in the order they are trusted as references: exact first, then spectral,
/// then grids and trees.
const PREFERENCE: [MethodId; 7] = [
    MethodId::ClosedForm,
    MethodId::Cos,
    MethodId::Fgl,
    MethodId::Fft,
    MethodId::FdNu,
    MethodId::Fd,
    MethodId::Tree,
];

/// Relative agreement of two successive levels that counts as converged.
pub const CONVERGED: f64 = 1e-9;

/// The best available reference for `problem`.
///
/// ```
/// use benchop::{catalogue, reference, MethodId, Cancel};
/// let case = catalogue::case("1bI").unwrap();
/// let r = reference::compute(&case.problem, &Cancel::new()).unwrap();
/// // American put: the Andersen–Lake–Offengenden ladder, converged to far below the published values'
/// // own error (~1e-5, shared/BENCHOP.md).
/// assert_eq!(r.method, MethodId::ClosedForm);
/// assert!(r.error_estimate > 0.0 && r.error_estimate <= reference::CONVERGED);
/// assert!(benchop::relerr(&r.values, &case.reference) < 2e-5);
/// let converged = [10.7265416158, 4.8206437862, 1.8282251049];
/// assert!(benchop::relerr(&r.values, &converged) < 1e-10);
/// ```
///
/// When `cancel` fires (a time budget), the best reference found so far is returned with its honest error
/// estimate; the cancellation is an error only when nothing was found yet.
pub fn compute(problem: &Problem, cancel: &Cancel) -> Result<Reference, Error> {
    let mut best: Option<Reference> = None;
    for method in PREFERENCE.into_iter().filter(|m| m.applies_to(problem)) {
        let r = match converge(method, problem, cancel) {
            Ok(r) => r,
            Err(Error::Cancelled(why)) => return best.ok_or(Error::Cancelled(why)),
            Err(e) => return Err(e),
        };
        if r.error_estimate <= CONVERGED {
            return Ok(r);
        }
        if best.as_ref().is_none_or(|b| r.error_estimate < b.error_estimate) {
            best = Some(r);
        }
    }
    best.ok_or_else(|| Error::NotApplicable {
        method: "reference",
        reason: "no deterministic method applies to this problem".into(),
    })
}

fn converge(method: MethodId, problem: &Problem, cancel: &Cancel) -> Result<Reference, Error> {
    let mut prev: Option<Vec<f64>> = None;
    let mut prev_change = f64::INFINITY;
    let mut best: Option<Reference> = None;
    for level in 0.. {
        let estimate = match method.price(problem, level, cancel) {
            Ok(Some(e)) => e,
            Ok(None) => break,
            // Out of time: the levels so far, with their error estimate, are the answer.
            Err(Error::Cancelled(why)) => {
                return best
                    .filter(|b| b.error_estimate.is_finite())
                    .ok_or(Error::Cancelled(why));
            }
            Err(e) => return Err(e),
        };
        let change = prev.as_ref().map_or(f64::INFINITY, |p| {
            p.iter()
                .zip(&estimate.values)
                .map(|(a, b)| (a - b).abs() / b.abs().max(f64::MIN_POSITIVE))
                .fold(0.0, f64::max)
        });
        let error_estimate = if method == MethodId::ClosedForm && closed_form::is_exact(problem) {
            0.0
        } else {
            estimate_error(change, prev_change)
        };
        prev_change = change;
        prev = Some(estimate.values.clone());
        let r = Reference {
            values: estimate.values,
            method,
            setting: estimate.setting,
            error_estimate,
        };
        if error_estimate <= CONVERGED {
            return Ok(r);
        }
        if best.as_ref().is_none_or(|b| error_estimate <= b.error_estimate) {
            best = Some(r);
        }
    }
    best.ok_or_else(|| Error::Numerical(format!("{method} has an empty ladder for this problem")))
}

/// The error estimate of a ladder level from its change `d_k` and the previous change `d_k−1` (module docs).
fn estimate_error(change: f64, prev_change: f64) -> f64 {
    if !(change.is_finite() && prev_change.is_finite()) {
        return f64::INFINITY;
    }
    let ratio = if prev_change > 0.0 {
        (change / prev_change).min(0.9)
    } else {
        0.9
    };
    let tail = change * ratio / (1.0 - ratio);
    change.max(prev_change).max(tail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue;

    #[test]
    fn computed_references_agree_with_the_published_ones() {
        for id in ["1aI", "1cI", "2a", "4a", "5a", "6a", "1bI", "2b", "3aI"] {
            let case = catalogue::case(id).unwrap();
            let r = compute(&case.problem, &Cancel::new()).unwrap();
            let err = crate::relerr(&r.values, &case.reference);
            // The published 1bI values are ~1e-5 below the converged ones (shared/BENCHOP.md), and
            // 3aI is published to 6 digits.
            assert!(
                err < 2e-5,
                "{id}: {} differs from the published reference by {err:e}",
                r.source()
            );
            assert!(r.error_estimate < 1e-5, "{id}: {}", r.source());
        }
    }

    #[test]
    fn error_estimates_cover_the_previous_step_and_the_geometric_tail() {
        assert_eq!(estimate_error(1e-6, f64::INFINITY), f64::INFINITY);
        // An oscillating ladder: a lucky small step does not make a small estimate.
        assert_eq!(estimate_error(1e-7, 3e-6), 3e-6);
        // Slow geometric convergence, ratio 0.8: the remaining tail is 4 times the last step.
        assert!((estimate_error(0.8e-6, 1e-6) - 3.2e-6).abs() < 1e-15);
        // Not converging: capped at a ratio of 0.9.
        assert!((estimate_error(2e-6, 1e-6) - 18e-6).abs() < 1e-15);
    }

    /// Problems without a formula: the reference's error estimate must cover its distance to every
    /// other converged deterministic method (if both estimates are honest, the two values lie within the
    /// sum of the estimates of each other). American puts get theirs from the closed-form method's
    /// Andersen–Lake–Offengenden ladder, with an estimate; the others from converged grids.
    #[test]
    fn fine_grid_error_estimates_are_honest_against_other_methods() {
        use crate::instrument::{Dividend, Instrument, OptionKind, VanillaOption};
        use crate::model::{BlackScholes, LocalVol, LocalVolSurface, Model};
        use crate::problem::{Points, Quantity};
        let american = |kind, k: f64, t: f64, r: f64, sigma: f64, dividends: Vec<Dividend>| {
            Problem::new(
                Model::BlackScholes(BlackScholes { r, sigma }),
                Instrument::Vanilla(VanillaOption {
                    dividends,
                    ..VanillaOption::american(kind, k, t)
                }),
                Quantity::Price,
                Points::Spots(vec![80.0, 95.0, 110.0]),
            )
            .unwrap()
        };
        let problems = [
            (american(OptionKind::Put, 95.0, 1.0, 0.05, 0.3, Vec::new()), true),
            (
                american(OptionKind::Put, 100.0, 0.25, 0.01, 0.4, Vec::new()),
                true,
            ),
            (
                american(
                    OptionKind::Call,
                    100.0,
                    1.0,
                    0.03,
                    0.2,
                    vec![Dividend {
                        time: 0.5,
                        fraction: 0.04,
                    }],
                ),
                false,
            ),
            (
                Problem::new(
                    Model::LocalVol(LocalVol {
                        r: 0.02,
                        surface: LocalVolSurface::Benchop3aI,
                    }),
                    Instrument::Vanilla(VanillaOption::european(OptionKind::Call, 100.0, 0.75)),
                    Quantity::Price,
                    Points::Spots(vec![95.0, 105.0]),
                )
                .unwrap(),
                false,
            ),
        ];
        for (problem, by_alo) in &problems {
            let r = compute(problem, &Cancel::new()).unwrap();
            if *by_alo {
                assert_eq!(r.solver(), "closed-form", "{}", r.source());
                assert!(
                    r.error_estimate > 0.0 && r.error_estimate <= CONVERGED,
                    "{}",
                    r.source()
                );
                assert!(r.source().contains("Andersen–Lake–Offengenden"), "{}", r.source());
            } else {
                assert_ne!(r.method, MethodId::ClosedForm);
                assert!(r.solver() != "closed-form");
            }
            let mut others = 0;
            for m in PREFERENCE
                .into_iter()
                .filter(|&m| m != r.method && m.applies_to(problem))
            {
                let other = converge(m, problem, &Cancel::new()).unwrap();
                if other.error_estimate > 1e-4 {
                    continue; // not converged enough to judge anything
                }
                others += 1;
                let distance = crate::relerr(&r.values, &other.values);
                assert!(
                    distance <= r.error_estimate + other.error_estimate,
                    "{problem:?}: {} and {} differ by {distance:e}, more than their estimates say",
                    r.source(),
                    other.source()
                );
            }
            assert!(
                others > 0,
                "{problem:?}: no second method to check {} against",
                r.source()
            );
        }
    }
}
