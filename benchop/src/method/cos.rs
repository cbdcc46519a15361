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
//!
//! Beyond European options:
//! - American options and continuously monitored up-and-out calls under Black–Scholes–Merton go to the
//!   Bermudan COS engine (Fang & Oosterlee 2009, Numer. Math. 114: early-exercise point by Newton, Hankel +
//!   Toeplitz matrix-vector products by FFT), with the 4-point repeated Richardson extrapolation in the number
//!   of exercise dates for American options and Richardson extrapolation in √Δt over the monitoring frequency
//!   for barriers. American calls with proportional dividends (r ≥ 0) are exact Bermudan problems with one
//!   exercise date just before each dividend.
//! - The spread call (S₁ − S₂ − K)⁺ under two-asset Black–Scholes is priced by the 2-D COS method (Ruijter &
//!   Oosterlee 2012, SIAM J. Sci. Comput. 34(5), "Two-dimensional Fourier cosine series expansion method for
//!   pricing financial options"), ladder over N per dimension ([`SPREAD_N_LADDER`]).

use std::f64::consts::PI;

use num_complex::Complex64;

use super::charfn::{European, LogReturn};
use super::cos_bermudan;
use crate::instrument::{Instrument, OptionKind, SpreadOption};
use crate::method::Estimate;
use crate::model::{Model, TwoAssetBlackScholes};
use crate::problem::Points;
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
/// Heston or Merton, with or without discrete proportional dividends; under Black–Scholes also prices of
/// American calls and puts (American puts without dividends, American calls with proportional dividends
/// when r ≥ 0) and of continuously monitored up-and-out calls without dividends; and spread calls under
/// two-asset Black–Scholes.
///
/// ```
/// use benchop::{catalogue, method::cos};
/// assert!(cos::applies(&catalogue::case("4a").unwrap().problem));
/// assert!(cos::applies(&catalogue::case("1bI").unwrap().problem)); // Bermudan COS + Richardson
/// assert!(cos::applies(&catalogue::case("6a").unwrap().problem)); // 2-D COS
/// assert!(!cos::applies(&catalogue::case("3aI").unwrap().problem)); // local volatility
/// ```
pub fn applies(problem: &Problem) -> bool {
    European::from_problem(problem).is_some() || cos_bermudan::applies(problem) || spread_applies(problem)
}

/// Numbers of terms per dimension of the 2-D COS ladder for the spread option, cheapest first.
pub const SPREAD_N_LADDER: [usize; 8] = [16, 24, 32, 40, 48, 64, 96, 128];

/// Truncation parameter L of the 2-D COS interval (Ruijter & Oosterlee 2012 use L = 8–10).
pub const SPREAD_L: f64 = 8.0;

fn spread_applies(problem: &Problem) -> bool {
    matches!(
        (problem.model(), problem.instrument(), problem.points()),
        (Model::TwoAsset(_), Instrument::Spread(_), Points::SpotPairs(_))
    ) && problem.quantity() == Quantity::Price
}

/// The discretisation of the European ladder at `level`, `None` past its end or when the problem is not a
/// European vanilla (American, barrier and spread problems have ladders of their own).
///
/// ```
/// use benchop::{catalogue, method::cos};
/// let p = &catalogue::case("1aI").unwrap().problem;
/// assert_eq!(cos::level_config(p, 0).unwrap().n_terms, 8);
/// assert!(cos::level_config(p, cos::N_LADDER.len()).is_none());
/// ```
pub fn level_config(problem: &Problem, level: usize) -> Option<CosConfig> {
    European::from_problem(problem)?;
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

/// Price every point at ladder `level`; `Ok(None)` past the end of the ladder. European vanillas use
/// [`N_LADDER`]; American options climb (Richardson base 2^d, density of terms), barriers (monitoring
/// frequency, density), spreads [`SPREAD_N_LADDER`].
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
    if cos_bermudan::applies(problem) {
        return cos_bermudan::price_level(problem, level, cancel);
    }
    if let (Model::TwoAsset(m), Instrument::Spread(o), Points::SpotPairs(pairs)) =
        (problem.model(), problem.instrument(), problem.points())
    {
        return match SPREAD_N_LADDER.get(level) {
            Some(&n) => price_spread(m, o, pairs, n, SPREAD_L, cancel).map(Some),
            None => Ok(None),
        };
    }
    match level_config(problem, level) {
        Some(config) => price(problem, &config, cancel).map(Some),
        None => Ok(None),
    }
}

fn not_applicable() -> Error {
    Error::NotApplicable {
        method: "cos",
        reason: "COS prices European options under BSM, Heston or Merton, American and barrier options \
                 under BSM, and spreads under two-asset BSM"
            .into(),
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

/// 2-D COS price of the spread call (S₁ − S₂ − K)⁺ under two correlated geometric Brownian motions
/// (Ruijter & Oosterlee 2012, eq. (2.10)) with `n` terms per dimension and truncation parameter `l`.
///
/// In absolute log prices y = (ln S₁(T), ln S₂(T)) on [a₁, b₁] × [a₂, b₂] (covering every evaluation pair by
/// ±L standard deviations around its mean), v = e^{−rT} Σ'Σ' ½[Re(φ(u₁, u₂)e^{−i(u₁a₁+u₂a₂)}) +
/// Re(φ(u₁, −u₂)e^{−i(u₁a₁−u₂a₂)})]·V_{k₁k₂}. The payoff coefficients V are shared by every pair: the inner
/// integral over y₁ > ln(e^{y₂} + K) is analytic (χ and ψ of Fang & Oosterlee 2008), the outer one over y₂
/// runs with Gauss–Legendre on the pieces where the inner limits are smooth. The Gaussian factor of φ is
/// shared too, so each pair costs O(n²).
pub fn price_spread(
    model: &TwoAssetBlackScholes,
    option: &SpreadOption,
    pairs: &[[f64; 2]],
    n: usize,
    l: f64,
    cancel: &Cancel,
) -> Result<Estimate, Error> {
    cancel.check()?;
    if !(4..=4096).contains(&n) {
        return Err(Error::invalid(
            "n_terms",
            format!("must lie in [4, 4096], got {n}"),
        ));
    }
    if !(l.is_finite() && l > 0.0) {
        return Err(Error::invalid(
            "truncation_l",
            format!("must be finite and positive, got {l}"),
        ));
    }
    let t = option.maturity;
    let k = option.strike;
    let sig = [model.sigma1, model.sigma2];
    let mu = [
        (model.r - 0.5 * sig[0] * sig[0]) * t,
        (model.r - 0.5 * sig[1] * sig[1]) * t,
    ];
    let mut lo = [f64::INFINITY; 2];
    let mut hi = [f64::NEG_INFINITY; 2];
    for p in pairs {
        for d in 0..2 {
            if !(p[d].is_finite() && p[d] > 0.0) {
                return Err(Error::invalid("spot", format!("must be positive, got {}", p[d])));
            }
            let centre = p[d].ln() + mu[d];
            let half = l * sig[d] * t.sqrt();
            lo[d] = lo[d].min(centre - half);
            hi[d] = hi[d].max(centre + half);
        }
    }
    let (a1, b1, a2, b2) = (lo[0], hi[0], lo[1], hi[1]);
    let (w1, w2) = (b1 - a1, b2 - a2);
    let u1: Vec<f64> = (0..n).map(|j| j as f64 * PI / w1).collect();
    let u2: Vec<f64> = (0..n).map(|j| j as f64 * PI / w2).collect();
    // Payoff coefficients P[k1][k2] = ∫∫ payoff cos(u1(y1−a1)) cos(u2(y2−a2)) dy (without 4/(w1 w2)).
    let mut cuts = vec![a2];
    let ea1 = a1.exp();
    let eb1 = b1.exp();
    if ea1 > k {
        let p1 = (ea1 - k).ln();
        if p1 > a2 && p1 < b2 {
            cuts.push(p1);
        }
    }
    let top = if eb1 > k { (eb1 - k).ln().min(b2) } else { a2 };
    cuts.push(top.max(a2));
    let mut p = vec![0.0; n * n];
    let nodes_per_unit = PI * (n as f64 / w1 + n as f64 / w2) / 2.0;
    let mut inner = vec![0.0; n];
    let mut outer = vec![0.0; n];
    for piece in cuts.windows(2) {
        let (lo2, hi2) = (piece[0], piece[1]);
        if hi2 <= lo2 {
            continue;
        }
        let q = ((hi2 - lo2) * nodes_per_unit).ceil() as usize + 24;
        let gl = crate::special::gauss_legendre(q);
        let (c, h) = (0.5 * (lo2 + hi2), 0.5 * (hi2 - lo2));
        for &(x, w) in &gl {
            cancel.check()?;
            let y2 = c + h * x;
            let e2 = y2.exp();
            let lower = (e2 + k).ln().max(a1);
            if lower >= b1 {
                continue;
            }
            let el = lower.exp();
            // Inner integral over y1 ∈ [lower, b1] of (e^{y1} − e^{y2} − K) cos(u1(y1 − a1)).
            for (j, (o, &u)) in inner.iter_mut().zip(&u1).enumerate() {
                let (sl, cl) = (u * (lower - a1)).sin_cos();
                let (sb, cb) = (u * w1).sin_cos();
                let chi = (cb * eb1 - cl * el + u * (sb * eb1 - sl * el)) / (1.0 + u * u);
                let psi = if j == 0 { b1 - lower } else { (sb - sl) / u };
                *o = chi - (e2 + k) * psi;
            }
            for (o, &u) in outer.iter_mut().zip(&u2) {
                *o = h * w * (u * (y2 - a2)).cos();
            }
            for (row, &iv) in p.chunks_exact_mut(n).zip(&inner) {
                for (cell, &ov) in row.iter_mut().zip(&outer) {
                    *cell += iv * ov;
                }
            }
        }
    }
    // Shared Gaussian factors g± = exp(−T/2 (σ₁²u₁² ± 2ρσ₁σ₂u₁u₂ + σ₂²u₂²)), with the Σ' halving.
    let cross = model.rho * sig[0] * sig[1] * t;
    let mut pc = vec![0.0; n * n];
    let mut ps = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let base = 0.5 * t * (sig[0] * sig[0] * u1[i] * u1[i] + sig[1] * sig[1] * u2[j] * u2[j]);
            let gp = (-base - cross * u1[i] * u2[j]).exp();
            let gm = (-base + cross * u1[i] * u2[j]).exp();
            let half = if i == 0 { 0.5 } else { 1.0 } * if j == 0 { 0.5 } else { 1.0 };
            pc[i * n + j] = 0.5 * half * p[i * n + j] * (gp + gm);
            ps[i * n + j] = 0.5 * half * p[i * n + j] * (gp - gm);
        }
    }
    let scale = (-model.r * t).exp() * 4.0 / (w1 * w2);
    let mut values = Vec::with_capacity(pairs.len());
    for pair in pairs {
        cancel.check()?;
        let d1 = pair[0].ln() + mu[0] - a1;
        let d2 = pair[1].ln() + mu[1] - a2;
        let e1: Vec<(f64, f64)> = u1.iter().map(|&u| (u * d1).sin_cos()).collect();
        let e2: Vec<(f64, f64)> = u2.iter().map(|&u| (u * d2).sin_cos()).collect();
        let mut sum = 0.0;
        for (i, &(s1, c1)) in e1.iter().enumerate() {
            let (rc, rs) = (&pc[i * n..(i + 1) * n], &ps[i * n..(i + 1) * n]);
            let (mut cc, mut ss) = (0.0, 0.0);
            for ((&(s2, c2), &a), &b) in e2.iter().zip(rc).zip(rs) {
                cc += a * c2;
                ss += b * s2;
            }
            sum += c1 * cc - s1 * ss;
        }
        let value = (scale * sum).max(0.0);
        if !value.is_finite() {
            return Err(Error::Numerical(format!("2-D COS produced {value}")));
        }
        values.push(value);
    }
    Ok(Estimate {
        values,
        std_errors: None,
        setting: format!("N={n}x{n}, L={l}"),
    })
}
