//! Fourier-cosine series expansion (COS) of the density (Fang & Oosterlee 2008, SIAM J. Sci. Comput. 31(2)).
//!
//! The density of y = ln(S_T/K) is expanded in cosines on a truncation interval [a, b] = x + c₁ ∓ L·√(c₂ + √c₄)
//! around x = ln(S/K) (Fang & Oosterlee 2008, eq. (49)), with S the effective spot S₀·Π(1 − fraction) for
//! discrete proportional dividends. The coefficients come from the characteristic function of ln(S_T/S)
//! (Black–Scholes–Merton, Heston in the "little Heston trap" form, Merton). Following the paper's advice, a
//! put is priced by the series (its payoff is bounded, so truncation errors stay small) and a call is obtained
//! by put–call parity.
//!
//! Black–Scholes Greeks are analytic in the series: Delta and Gamma differentiate e^{iu(x − a)} in x with
//! the interval held fixed, Vega differentiates the characteristic function in σ.
//!
//! The ladder runs over N, the number of terms: [`N_LADDER`], with L = [`DEFAULT_L`]. All points of a problem
//! share N, the width of the interval and the characteristic function values.

use num_complex::Complex64;

use super::charfn::{European, LogReturn};
use crate::instrument::OptionKind;
use crate::method::Estimate;
use crate::model::Model;
use crate::{Cancel, Error, Problem, Quantity};

/// The numbers of terms N of the ladder, cheapest first.
pub const N_LADDER: [usize; 17] = [
    8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192, 16384,
];

/// Truncation parameter L of the ladder for Black–Scholes and Merton (Fang & Oosterlee 2008 use 8–12).
pub const DEFAULT_L: f64 = 10.0;

/// Truncation parameter L of the ladder for Heston, whose tails are heavier (Fang & Oosterlee 2008, §5.2).
pub const HESTON_L: f64 = 12.0;

/// Largest accepted number of terms.
pub const MAX_TERMS: usize = 1 << 20;

/// One COS discretisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosConfig {
    /// Number of cosine terms N.
    pub n_terms: usize,
    /// Truncation parameter L: the interval is ±L·√(c₂ + √c₄) around the mean of ln(S_T/K).
    pub truncation_l: f64,
}

/// Does COS price `problem`? European vanillas without barrier on spots under Black–Scholes (any quantity),
/// Heston or Merton, with or without discrete proportional dividends.
///
/// ```
/// use benchop::{catalogue, method::cos};
/// assert!(cos::applies(&catalogue::case("4a").unwrap().problem));
/// assert!(!cos::applies(&catalogue::case("1cI").unwrap().problem)); // barrier
/// ```
pub fn applies(problem: &Problem) -> bool {
    European::from_problem(problem).is_some()
}

/// The discretisation at ladder `level`, `None` past its end or when COS does not apply.
///
/// ```
/// use benchop::{catalogue, method::cos};
/// let p = &catalogue::case("1aI").unwrap().problem;
/// assert_eq!(cos::level_config(p, 0).unwrap().n_terms, 8);
/// assert!(cos::level_config(p, cos::N_LADDER.len()).is_none());
/// ```
pub fn level_config(problem: &Problem, level: usize) -> Option<CosConfig> {
    if !applies(problem) {
        return None;
    }
    let truncation_l = if matches!(problem.model(), Model::Heston(_)) {
        HESTON_L
    } else {
        DEFAULT_L
    };
    N_LADDER.get(level).map(|&n_terms| CosConfig {
        n_terms,
        truncation_l,
    })
}

/// Price every point at ladder `level`; `Ok(None)` past the end of the ladder.
///
/// ```
/// use benchop::{catalogue, method::cos, Cancel};
/// let case = catalogue::case("1aI").unwrap();
/// let e = cos::price_level(&case.problem, 6, &Cancel::new()).unwrap().unwrap(); // N = 64
/// assert!(benchop::relerr(&e.values, &case.reference) < 1e-10);
/// ```
pub fn price_level(problem: &Problem, level: usize, cancel: &Cancel) -> Result<Option<Estimate>, Error> {
    if !applies(problem) {
        return Err(not_applicable());
    }
    match level_config(problem, level) {
        Some(config) => price(problem, &config, cancel).map(Some),
        None => Ok(None),
    }
}

fn not_applicable() -> Error {
    Error::NotApplicable {
        method: "cos",
        reason: "COS prices European options without barrier under BSM, Heston or Merton".into(),
    }
}

/// Price every point of `problem` with the COS method at `config`.
///
/// ```
/// use benchop::{catalogue, method::cos::{self, CosConfig}, Cancel};
/// let case = catalogue::case("1aI-Gamma").unwrap();
/// let config = CosConfig { n_terms: 128, truncation_l: 10.0 };
/// let e = cos::price(&case.problem, &config, &Cancel::new()).unwrap();
/// assert!(benchop::relerr(&e.values, &case.reference) < 1e-10);
/// ```
pub fn price(problem: &Problem, config: &CosConfig, cancel: &Cancel) -> Result<Estimate, Error> {
    cancel.check()?;
    let eu = European::from_problem(problem).ok_or_else(not_applicable)?;
    let n = config.n_terms;
    if n == 0 || n > MAX_TERMS {
        return Err(Error::invalid(
            "n_terms",
            format!("must lie in [1, {MAX_TERMS}], got {n}"),
        ));
    }
    let l = config.truncation_l;
    if !(l.is_finite() && l > 0.0) {
        return Err(Error::invalid(
            "truncation_l",
            format!("must be finite and positive, got {l}"),
        ));
    }
    let quantity = problem.quantity();
    let law = eu.law;
    let cum = law.cumulants();
    let half_width = l * (cum.c2 + cum.c4.sqrt()).sqrt();
    if !(half_width.is_finite() && half_width > 0.0) {
        return Err(Error::Numerical(format!(
            "degenerate truncation range, half width {half_width}"
        )));
    }
    let width = 2.0 * half_width;
    // x − a = w − c₁ for every point, so the characteristic-function factor is shared by all points.
    let shift = half_width - cum.c1;
    let us: Vec<f64> = (0..n).map(|k| k as f64 * std::f64::consts::PI / width).collect();
    let mut weights: Vec<Complex64> = us
        .iter()
        .map(|&u| {
            let z = Complex64::new(u, 0.0);
            (law.log_cf(z) + Complex64::new(0.0, u * shift)).exp()
        })
        .collect();
    weights[0] *= 0.5;
    // The series' derivative with respect to the quantity asked for: ∂/∂x → iu, ∂²/∂x² → −u², ∂/∂σ → ∂ln φ/∂σ.
    let factors: Vec<Complex64> = match (quantity, law) {
        (Quantity::Price, _) => weights.clone(),
        (Quantity::Delta, _) => weights
            .iter()
            .zip(&us)
            .map(|(w, &u)| w * Complex64::new(0.0, u))
            .collect(),
        (Quantity::Gamma, _) => weights
            .iter()
            .zip(&us)
            .map(|(w, &u)| w * (-u * u - Complex64::new(0.0, u)))
            .collect(),
        (Quantity::Vega, LogReturn::BlackScholes(m, t)) => weights
            .iter()
            .zip(&us)
            .map(|(w, &u)| w * Complex64::new(-m.sigma * t * u * u, -u * m.sigma * t))
            .collect(),
        (Quantity::Vega, _) => return Err(not_applicable()),
    };
    let disc_k = eu.discounted_strike();
    let disc = disc_k / eu.strike;
    let d = eu.dividend_factor;
    let mut values = Vec::with_capacity(eu.spots.len());
    for &spot in eu.spots {
        cancel.check()?;
        let s = spot * d;
        let x = (s / eu.strike).ln();
        let a = x + cum.c1 - half_width;
        let b = a + width;
        // Put: payoff K(1 − e^y)⁺ on [a, min(b, 0)] (Fang & Oosterlee 2008, eq. (29)).
        let mut series = 0.0;
        if a < 0.0 {
            let top = b.min(0.0);
            for (f, &u) in factors.iter().zip(&us) {
                let (chi, psi) = chi_psi(u, a, top);
                series += f.re * (psi - chi);
            }
        }
        let raw = disc * eu.strike * 2.0 / width * series;
        // raw is ∂ⁿP/∂xⁿ-type: convert to S₀ derivatives; Gamma's factor already holds (−u² − iu).
        let put = match quantity {
            Quantity::Price => raw,
            Quantity::Delta => d * raw / s,
            Quantity::Gamma => d * d * raw / (s * s),
            Quantity::Vega => raw,
        };
        let value = match (eu.kind, quantity) {
            (OptionKind::Put, _) => put,
            (OptionKind::Call, Quantity::Price) => put + s - disc_k,
            (OptionKind::Call, Quantity::Delta) => put + d,
            (OptionKind::Call, Quantity::Gamma | Quantity::Vega) => put,
        };
        if !value.is_finite() {
            return Err(Error::Numerical(format!("COS produced {value} at spot {spot}")));
        }
        values.push(value);
    }
    Ok(Estimate {
        values,
        std_errors: None,
        setting: format!("N={n}, L={l}"),
    })
}

/// χ_k(a, d) and ψ_k(a, d) of Fang & Oosterlee (2008, eqs. (22)–(23)) with the lower limit at a, for
/// u = kπ/(b − a): the cosine coefficients of e^y and 1 over [a, d].
fn chi_psi(u: f64, a: f64, d: f64) -> (f64, f64) {
    let (sin, cos) = (u * (d - a)).sin_cos();
    let ed = d.exp();
    let ea = a.exp();
    let chi = (cos * ed - ea + u * sin * ed) / (1.0 + u * u);
    let psi = if u == 0.0 { d - a } else { sin / u };
    (chi, psi)
}
