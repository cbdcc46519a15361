//! Carr–Madan FFT of the damped call price (Carr & Madan 1999, J. Comput. Finance 2(4)).
//!
//! With k = ln(K/S) (S the effective spot S₀·Π(1 − fraction)) and X = ln(S_T/S),
//! C(k)/S = e^{−αk}/π ∫₀^∞ Re[e^{−ivk} ψ(v)] dv with ψ(v) = e^{−rT} φ(v − (α + 1)i) / ((α + iv)(α + 1 + iv))
//! (Carr & Madan 1999, eq. (6)), evaluated with N Simpson-weighted nodes v_j = jη and one FFT over the
//! log-strike grid k_u = k + (u − N/2)·2π/(Nη). The grid is centred on each evaluation point, so the point
//! is a node and no interpolation error enters: one FFT of size N per point. Puts by put–call parity.
//!
//! The upper limit Nη = v_max is fixed per problem where the envelope of the integrand falls below 1e-12,
//! so the ladder over N = 2⁶ … 2¹⁶ refines η. The damping α is [`DEFAULT_ALPHA`]; under Heston it is lowered
//! until E[S_T^{α+1}] stays finite up to 1.5 times the maturity (moment explosion, Andersen & Piterbarg 2007).
//! Models: Black–Scholes–Merton, Heston, Merton; prices only (no Greeks).

use std::f64::consts::PI;

use num_complex::Complex64;
use rustfft::FftPlanner;

use super::charfn::{European, LogReturn, heston_explosion_time};
use crate::instrument::OptionKind;
use crate::method::Estimate;
use crate::{Cancel, Error, Problem, Quantity};

/// log₂ of the smallest and largest FFT size of the ladder.
pub const LOG2_N_RANGE: (u32, u32) = (6, 16);

/// Damping parameter α used unless the model's moments force a smaller one.
pub const DEFAULT_ALPHA: f64 = 1.5;

/// Largest upper integration limit v_max the ladder resolves: beyond it even 2¹⁶ nodes are spaced more than
/// η = 0.5 apart and the method does not apply (total volatility σ√T below roughly 1e-3).
pub const MAX_UPPER_LIMIT: f64 = 32768.0;

/// Largest accepted FFT size.
pub const MAX_N: usize = 1 << 22;

/// One Carr–Madan discretisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FftConfig {
    /// FFT size N (number of integration nodes).
    pub n: usize,
    /// Spacing η of the integration nodes in the Fourier variable.
    pub eta: f64,
    /// Damping α > 0 of the call price.
    pub alpha: f64,
}

fn not_applicable() -> Error {
    Error::NotApplicable {
        method: "fft",
        reason: "FFT prices European options without barrier under BSM, Heston or Merton".into(),
    }
}

/// The damping for this model, `None` when no admissible α exists (Heston moment explosion).
fn damping(law: &LogReturn) -> Option<f64> {
    match law {
        LogReturn::Heston(m, t) => [DEFAULT_ALPHA, 1.0, 0.75, 0.5, 0.25, 0.1]
            .into_iter()
            .find(|&alpha| heston_explosion_time(m, alpha + 1.0) > 1.5 * t),
        _ => Some(DEFAULT_ALPHA),
    }
}

/// Does the FFT method price `problem`? European vanilla prices without barrier on spots under
/// Black–Scholes, Heston (when some damping α keeps E[S_T^{α+1}] finite) or Merton, as long as the
/// integrand decays before [`MAX_UPPER_LIMIT`] (1aII, σ√T = 0.005, needs v_max = 2048).
///
/// ```
/// use benchop::{catalogue, method::fft};
/// assert!(fft::applies(&catalogue::case("5a").unwrap().problem));
/// assert!(!fft::applies(&catalogue::case("1aI-Delta").unwrap().problem)); // no Greeks
/// ```
pub fn applies(problem: &Problem) -> bool {
    problem.quantity() == Quantity::Price
        && European::from_problem(problem).is_some_and(|eu| {
            damping(&eu.law).is_some_and(|alpha| upper_limit(&eu, alpha) <= MAX_UPPER_LIMIT)
        })
}

/// ψ(v) = e^{−rT} φ(v − (α+1)i) / ((α + iv)(α + 1 + iv)) (Carr & Madan 1999, eq. (6)).
fn psi(law: &LogReturn, alpha: f64, v: f64) -> Complex64 {
    let disc = -law.rate() * law.maturity();
    let num = (law.log_cf(Complex64::new(v, -(alpha + 1.0))) + disc).exp();
    num / (Complex64::new(alpha, v) * Complex64::new(alpha + 1.0, v))
}

/// Where the integrand's envelope, weighted by the damping undo e^{−αk} at the worst point, makes the
/// remaining integral negligible (1e-12 of the effective spot).
fn upper_limit(eu: &European<'_>, alpha: f64) -> f64 {
    let k_min = eu
        .spots
        .iter()
        .map(|&s| (eu.strike / (s * eu.dividend_factor)).ln())
        .fold(f64::INFINITY, f64::min);
    let undo = (-alpha * k_min).exp() / PI;
    let mut v = 8.0;
    while v < 2.0 * MAX_UPPER_LIMIT {
        if psi(&eu.law, alpha, v).norm() * v * undo < 1e-12 {
            break;
        }
        v *= 2.0;
    }
    v
}

/// The discretisation at ladder `level`: N = 2^(6 + level) up to 2¹⁶, η = v_max/N. `None` past the end of the
/// ladder or when the method does not apply.
///
/// ```
/// use benchop::{catalogue, method::fft};
/// let c = fft::level_config(&catalogue::case("1aI").unwrap().problem, 2).unwrap();
/// assert_eq!(c.n, 256);
/// ```
pub fn level_config(problem: &Problem, level: usize) -> Option<FftConfig> {
    if !applies(problem) {
        return None;
    }
    let log2 = LOG2_N_RANGE.0 as usize + level;
    if log2 > LOG2_N_RANGE.1 as usize {
        return None;
    }
    let eu = European::from_problem(problem)?;
    let alpha = damping(&eu.law)?;
    let n = 1usize << log2;
    Some(FftConfig {
        n,
        eta: upper_limit(&eu, alpha) / n as f64,
        alpha,
    })
}

/// Price every point at ladder `level`; `Ok(None)` past the end of the ladder.
///
/// ```
/// use benchop::{catalogue, method::fft, Cancel};
/// let case = catalogue::case("4a").unwrap();
/// let e = fft::price_level(&case.problem, 4, &Cancel::new()).unwrap().unwrap(); // N = 1024
/// assert!(benchop::relerr(&e.values, &case.reference) < 1e-6);
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

/// Price every point of `problem` by Carr–Madan at `config`.
///
/// ```
/// use benchop::{catalogue, method::fft::{self, FftConfig}, Cancel};
/// let case = catalogue::case("1aI").unwrap();
/// let config = FftConfig { n: 4096, eta: 0.05, alpha: 1.5 };
/// let e = fft::price(&case.problem, &config, &Cancel::new()).unwrap();
/// assert!(benchop::relerr(&e.values, &case.reference) < 1e-8);
/// ```
pub fn price(problem: &Problem, config: &FftConfig, cancel: &Cancel) -> Result<Estimate, Error> {
    cancel.check()?;
    if !applies(problem) {
        return Err(not_applicable());
    }
    let eu = European::from_problem(problem).ok_or_else(not_applicable)?;
    let FftConfig { n, eta, alpha } = *config;
    if !(4..=MAX_N).contains(&n) || n % 2 != 0 {
        return Err(Error::invalid(
            "n",
            format!("must be even and lie in [4, {MAX_N}], got {n}"),
        ));
    }
    if !(eta.is_finite() && eta > 0.0) {
        return Err(Error::invalid(
            "eta",
            format!("must be finite and positive, got {eta}"),
        ));
    }
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(Error::invalid(
            "alpha",
            format!("must be finite and positive, got {alpha}"),
        ));
    }
    if let LogReturn::Heston(m, t) = eu.law
        && heston_explosion_time(&m, alpha + 1.0) <= t
    {
        return Err(Error::invalid(
            "alpha",
            format!("E[S_T^{}] is infinite under these Heston parameters", alpha + 1.0),
        ));
    }
    // Simpson-weighted integrand at v_j = jη (Carr & Madan 1999, eq. (24)); shared by all points.
    let weighted: Vec<Complex64> = (0..n)
        .map(|j| {
            let w = if j == 0 {
                1.0
            } else if j % 2 == 1 {
                4.0
            } else {
                2.0
            };
            psi(&eu.law, alpha, j as f64 * eta) * (w * eta / 3.0)
        })
        .collect();
    let lambda = 2.0 * PI / (n as f64 * eta);
    let fft = FftPlanner::new().plan_fft_forward(n);
    let mut buffer = vec![Complex64::new(0.0, 0.0); n];
    let disc_k = eu.discounted_strike();
    let mut values = Vec::with_capacity(eu.spots.len());
    for &spot in eu.spots {
        cancel.check()?;
        let s = spot * eu.dividend_factor;
        let k = (eu.strike / s).ln();
        // k_u = k₀ + λu with the point at u = N/2.
        let k0 = k - lambda * (n / 2) as f64;
        for (j, (b, w)) in buffer.iter_mut().zip(&weighted).enumerate() {
            *b = w * Complex64::new(0.0, -(j as f64) * eta * k0).exp();
        }
        fft.process(&mut buffer);
        let call = s * (-alpha * k).exp() / PI * buffer[n / 2].re;
        let value = match eu.kind {
            OptionKind::Call => call,
            OptionKind::Put => call - s + disc_k,
        };
        if !value.is_finite() {
            return Err(Error::Numerical(format!("FFT produced {value} at spot {spot}")));
        }
        values.push(value);
    }
    Ok(Estimate {
        values,
        std_errors: None,
        setting: format!("N={n}, eta={eta:.4}, alpha={alpha}"),
    })
}
