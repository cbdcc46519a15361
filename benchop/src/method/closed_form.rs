//! Closed and semi-closed forms: the reference solvers of the benchmark.
//!
//! - Black–Scholes–Merton European price, Delta, Gamma, Vega (Black & Scholes 1973, Merton 1973); discrete
//!   proportional dividends by pricing on the effective spot S₀·Π(1 − fraction) (BENCHOP 2a).
//! - Continuously monitored knock-out barriers without rebate, up/down, call/put (Reiner & Rubinstein 1991,
//!   in the notation of Haug, *The Complete Guide to Option Pricing Formulas*, 2nd ed., §4.17.1), for
//!   Black–Scholes without dividends.
//! - Merton jump diffusion as the Poisson-weighted Black series (Merton 1976), summed until the remaining
//!   Poisson mass cannot move the price by 1e-17 relative.
//! - Heston by Lewis's single integral (Lewis 2000, 2001) over the "little Heston trap" characteristic function
//!   (Albrecher et al. 2007), with adaptive 16-point Gauss–Legendre quadrature on doubling intervals.
//! - Margrabe's exchange option for the spread with K = 0 (Margrabe 1978).
//! - American calls and puts under Black–Scholes–Merton without dividends or barriers: the European
//!   formula where early exercise never pays (calls at r ≥ 0, puts at r ≤ 0), and American puts by the
//!   Andersen–Lake–Offengenden fixed-point method (2016) otherwise: a spectral collocation of the early
//!   exercise boundary and the early-exercise premium integral (see `american_fp.rs`).
//!
//! The formulas are exact to rounding and their ladder has one level (level 0). American puts with
//! r > 0 have a ladder of increasing collocation nodes, fixed-point iterations and quadrature orders,
//! from ~1e-4 (level 0) to ~1e-12 relative (the last level) on ordinary parameters; Greeks of American
//! options are not offered.
//! Local volatility, SABR, American calls at r < 0 and spreads with K > 0 are not covered.

use std::sync::LazyLock;

use num_complex::Complex64;

use super::american_fp;
use super::charfn::LogReturn;
use super::normal::norm_cdf;
use crate::instrument::{Barrier, Exercise, Instrument, OptionKind, SpreadOption, VanillaOption};
use crate::method::Estimate;
use crate::model::{BlackScholes, Heston, Merton, Model, TwoAssetBlackScholes};
use crate::special::norm_pdf;
use crate::{Cancel, Error, Points, Problem, Quantity};

const NAME: &str = "closed-form";

fn not_applicable(reason: &str) -> Error {
    Error::NotApplicable {
        method: NAME,
        reason: reason.into(),
    }
}

/// Does a closed or semi-closed form price `problem`?
///
/// ```
/// use benchop::{catalogue, method::closed_form};
/// assert!(closed_form::applies(&catalogue::case("4a").unwrap().problem));
/// assert!(closed_form::applies(&catalogue::case("1bI").unwrap().problem)); // Andersen–Lake–Offengenden
/// assert!(!closed_form::applies(&catalogue::case("2b").unwrap().problem)); // American, discrete dividend
/// ```
pub fn applies(problem: &Problem) -> bool {
    match (problem.model(), problem.instrument(), problem.points()) {
        (Model::TwoAsset(_), Instrument::Spread(o), Points::SpotPairs(_)) => o.strike == 0.0,
        (Model::BlackScholes(m), Instrument::Vanilla(o), Points::Spots(_))
            if o.exercise == Exercise::American =>
        {
            problem.quantity() == Quantity::Price && american_fp::applies(m, o)
        }
        (model, Instrument::Vanilla(o), Points::Spots(_)) if o.exercise == Exercise::European => {
            match (model, o.barrier) {
                (Model::BlackScholes(_), None) => true,
                (Model::BlackScholes(_), Some(_)) => {
                    o.dividends.is_empty() && problem.quantity() == Quantity::Price
                }
                (Model::Heston(_) | Model::Merton(_), None) => true,
                _ => false,
            }
        }
        _ => false,
    }
}

/// Price every point at ladder `level`, `Ok(None)` past its end: the formulas have the single level 0,
/// American puts with r > 0 the Andersen–Lake–Offengenden ladder.
///
/// ```
/// use benchop::{catalogue, method::closed_form, Cancel};
/// let case = catalogue::case("1cI").unwrap();
/// let e = closed_form::price_level(&case.problem, 0, &Cancel::new()).unwrap().unwrap();
/// assert!(benchop::relerr(&e.values, &case.reference) < 1e-12);
/// assert!(closed_form::price_level(&case.problem, 1, &Cancel::new()).unwrap().is_none());
///
/// let american = catalogue::case("1bI").unwrap();
/// let e = closed_form::price_level(&american.problem, 1, &Cancel::new()).unwrap().unwrap();
/// assert!(benchop::relerr(&e.values, &american.reference) < 1e-4);
/// ```
pub fn price_level(problem: &Problem, level: usize, cancel: &Cancel) -> Result<Option<Estimate>, Error> {
    if let Some((model, option, spots)) = early_exercise(problem) {
        cancel.check()?;
        if !applies(problem) {
            return Err(not_applicable(
                "American options with discrete dividends or barriers, and their Greeks, are not covered",
            ));
        }
        return american_fp::price_level(model, option, spots, level, cancel);
    }
    if level > 0 {
        return Ok(None);
    }
    price(problem, cancel).map(Some)
}

/// The American options whose early exercise has a value (puts with r > 0): priced by the
/// Andersen–Lake–Offengenden ladder, not by a formula.
fn early_exercise(problem: &Problem) -> Option<(&BlackScholes, &VanillaOption, &[f64])> {
    match (problem.model(), problem.instrument(), problem.points()) {
        (Model::BlackScholes(m), Instrument::Vanilla(o), Points::Spots(spots))
            if o.exercise == Exercise::American && !american_fp::never_exercised_early(m, o) =>
        {
            Some((m, o, spots))
        }
        _ => None,
    }
}

/// Is the closed-form value of `problem` exact to rounding (a formula, one ladder level), rather than
/// the Andersen–Lake–Offengenden ladder with its discretisation error?
///
/// ```
/// use benchop::{catalogue, method::closed_form};
/// assert!(closed_form::is_exact(&catalogue::case("1aI").unwrap().problem));
/// assert!(!closed_form::is_exact(&catalogue::case("1bI").unwrap().problem)); // American put, r > 0
/// ```
pub fn is_exact(problem: &Problem) -> bool {
    early_exercise(problem).is_none()
}

/// Price every evaluation point of `problem` by its closed or semi-closed form. American puts with
/// r > 0 have none and are `NotApplicable` here; [`price_level`] prices them by the
/// Andersen–Lake–Offengenden ladder.
///
/// ```
/// use benchop::{catalogue, method::closed_form, Cancel};
/// let case = catalogue::case("6a").unwrap();
/// let e = closed_form::price(&case.problem, &Cancel::new()).unwrap();
/// assert!(benchop::relerr(&e.values, &case.reference) < 1e-12);
/// ```
pub fn price(problem: &Problem, cancel: &Cancel) -> Result<Estimate, Error> {
    cancel.check()?;
    if !applies(problem) {
        return Err(not_applicable(
            "no closed form for this model, instrument or quantity",
        ));
    }
    if !is_exact(problem) {
        return Err(not_applicable(
            "an American put with r > 0 has no closed form; `price_level` runs the \
             Andersen–Lake–Offengenden ladder",
        ));
    }
    let quantity = problem.quantity();
    let (values, setting) = match (problem.model(), problem.instrument(), problem.points()) {
        (Model::TwoAsset(m), Instrument::Spread(o), Points::SpotPairs(pairs)) => {
            let v = pairs
                .iter()
                .map(|&p| margrabe(m, o, p))
                .collect::<Result<Vec<_>, _>>()?;
            (v, "Margrabe formula")
        }
        (model, Instrument::Vanilla(o), Points::Spots(spots)) => {
            let mut values = Vec::with_capacity(spots.len());
            let setting = match model {
                Model::BlackScholes(m) if o.exercise == Exercise::American => {
                    let european = VanillaOption {
                        exercise: Exercise::European,
                        ..o.clone()
                    };
                    for &s in spots {
                        values.push(black_scholes(m, &european, s, quantity)?);
                    }
                    "Black–Scholes–Merton formula: early exercise never pays (q = 0)"
                }
                Model::BlackScholes(m) if o.barrier.is_some() => {
                    for &s in spots {
                        values.push(barrier(m, o, s)?);
                    }
                    "Reiner–Rubinstein barrier formula"
                }
                Model::BlackScholes(m) => {
                    for &s in spots {
                        values.push(black_scholes(m, o, s, quantity)?);
                    }
                    "Black–Scholes–Merton formula"
                }
                Model::Merton(m) => {
                    for &s in spots {
                        values.push(merton(m, o, s)?);
                    }
                    "Merton series, truncated at 1e-17"
                }
                Model::Heston(m) => {
                    cancel.check()?;
                    values = heston_many(m, o, spots)?;
                    "Lewis integral, adaptive Gauss–Legendre, tol 1e-14"
                }
                _ => return Err(not_applicable("model")),
            };
            (values, setting)
        }
        _ => return Err(not_applicable("points")),
    };
    Ok(Estimate {
        values,
        std_errors: None,
        setting: setting.into(),
    })
}

fn check_spot(spot: f64) -> Result<(), Error> {
    if spot.is_finite() && spot > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            "spot",
            format!("must be a finite positive number, got {spot}"),
        ))
    }
}

fn check_european(option: &VanillaOption, barrier_allowed: bool) -> Result<(), Error> {
    if option.exercise != Exercise::European {
        return Err(not_applicable("only European exercise has a closed form"));
    }
    if option.barrier.is_some() && !barrier_allowed {
        return Err(not_applicable("barrier options need the barrier formula"));
    }
    Ok(())
}

/// Black (1976) undiscounted price of a European option on a forward `f` with total standard deviation
/// `sd` = σ√T.
pub(crate) fn black(kind: OptionKind, f: f64, k: f64, sd: f64) -> f64 {
    if sd <= 0.0 || !sd.is_finite() {
        return kind.payoff(f, k);
    }
    let d1 = (f / k).ln() / sd + 0.5 * sd;
    let d2 = d1 - sd;
    match kind {
        OptionKind::Call => (f * norm_cdf(d1) - k * norm_cdf(d2)).max(0.0),
        OptionKind::Put => (k * norm_cdf(-d2) - f * norm_cdf(-d1)).max(0.0),
    }
}

/// Black–Scholes–Merton price or Greek of a European option at `spot`, discrete proportional dividends
/// included (the spot is scaled by Π(1 − fraction)). Vega is ∂U/∂σ.
///
/// ```
/// use benchop::{method::closed_form, model::BlackScholes, OptionKind, Quantity, VanillaOption};
/// let m = BlackScholes { r: 0.03, sigma: 0.15 };
/// let o = VanillaOption::european(OptionKind::Call, 100.0, 1.0);
/// let v = closed_form::black_scholes(&m, &o, 100.0, Quantity::Price).unwrap();
/// assert!((v - 7.485087593912603).abs() < 1e-12);
/// ```
pub fn black_scholes(
    model: &BlackScholes,
    option: &VanillaOption,
    spot: f64,
    quantity: Quantity,
) -> Result<f64, Error> {
    check_spot(spot)?;
    check_european(option, false)?;
    let t = option.maturity;
    let dividend = option.dividend_factor();
    let s = spot * dividend;
    let sd = model.sigma * t.sqrt();
    let disc = (-model.r * t).exp();
    let k = option.strike;
    let d1 = (s / (k * disc)).ln() / sd + 0.5 * sd;
    let call = option.kind == OptionKind::Call;
    Ok(match quantity {
        Quantity::Price => disc * black(option.kind, s / disc, k, sd),
        // ∂U/∂S₀ = D·∂U/∂S at the effective spot S = D·S₀.
        Quantity::Delta => dividend * if call { norm_cdf(d1) } else { -norm_cdf(-d1) },
        Quantity::Gamma => dividend * dividend * norm_pdf(d1) / (s * sd),
        Quantity::Vega => s * norm_pdf(d1) * t.sqrt(),
    })
}

/// ln Φ(x), accurate in both tails (asymptotic series below −30, Abramowitz & Stegun 26.2.12).
fn ln_norm_cdf(x: f64) -> f64 {
    if x > 0.0 {
        (-norm_cdf(-x)).ln_1p()
    } else if x > -30.0 {
        norm_cdf(x).ln()
    } else {
        let z = 1.0 / (x * x);
        let series = 1.0 - z * (1.0 - z * (3.0 - z * (15.0 - z * 105.0)));
        -0.5 * x * x - (-x).ln() - 0.5 * (2.0 * std::f64::consts::PI).ln() + series.ln()
    }
}

/// Price of a continuously monitored knock-out (up-and-out or down-and-out) call or put without rebate under
/// Black–Scholes without dividends (Reiner & Rubinstein 1991; Haug 2007, §4.17.1, terms A–D with b = r).
/// Zero once the spot is at or beyond the barrier.
///
/// ```
/// use benchop::{method::closed_form, model::BlackScholes, Barrier, OptionKind, VanillaOption};
/// let m = BlackScholes { r: 0.03, sigma: 0.15 };
/// let o = VanillaOption {
///     barrier: Some(Barrier::UpAndOut(125.0)),
///     ..VanillaOption::european(OptionKind::Call, 100.0, 1.0)
/// };
/// assert!((closed_form::barrier(&m, &o, 100.0).unwrap() - 3.294086516281595).abs() < 1e-12);
/// ```
pub fn barrier(model: &BlackScholes, option: &VanillaOption, spot: f64) -> Result<f64, Error> {
    check_spot(spot)?;
    check_european(option, true)?;
    let Some(bar) = option.barrier else {
        return black_scholes(model, option, spot, Quantity::Price);
    };
    if !option.dividends.is_empty() {
        return Err(not_applicable(
            "barrier options with discrete dividends have no closed form",
        ));
    }
    let (s, k, h, t, r, sigma) = (
        spot,
        option.strike,
        bar.level(),
        option.maturity,
        model.r,
        model.sigma,
    );
    let up = matches!(bar, Barrier::UpAndOut(_));
    if (up && s >= h) || (!up && s <= h) {
        return Ok(0.0);
    }
    let sd = sigma * t.sqrt();
    let disc = (-r * t).exp();
    let mu = (r - 0.5 * sigma * sigma) / (sigma * sigma);
    let phi = if option.kind == OptionKind::Call {
        1.0
    } else {
        -1.0
    };
    let eta = if up { -1.0 } else { 1.0 };
    let x1 = (s / k).ln() / sd + (1.0 + mu) * sd;
    let x2 = (s / h).ln() / sd + (1.0 + mu) * sd;
    let y1 = (h * h / (s * k)).ln() / sd + (1.0 + mu) * sd;
    let y2 = (h / s).ln() / sd + (1.0 + mu) * sd;
    let ln_hs = (h / s).ln();
    // (H/S)^p·Φ(x) in log space: for small σ the power overflows while Φ underflows.
    let pow_cdf = |p: f64, x: f64| (p * ln_hs + ln_norm_cdf(x)).exp();
    let a = phi * s * norm_cdf(phi * x1) - phi * k * disc * norm_cdf(phi * x1 - phi * sd);
    let b = phi * s * norm_cdf(phi * x2) - phi * k * disc * norm_cdf(phi * x2 - phi * sd);
    let c = phi * s * pow_cdf(2.0 * (mu + 1.0), eta * y1)
        - phi * k * disc * pow_cdf(2.0 * mu, eta * y1 - eta * sd);
    let d = phi * s * pow_cdf(2.0 * (mu + 1.0), eta * y2)
        - phi * k * disc * pow_cdf(2.0 * mu, eta * y2 - eta * sd);
    let strike_above = k >= h;
    let value = match (up, option.kind, strike_above) {
        (true, OptionKind::Call, true) | (false, OptionKind::Put, false) => 0.0,
        (true, OptionKind::Call, false) | (false, OptionKind::Put, true) => a - b + c - d,
        (true, OptionKind::Put, true) | (false, OptionKind::Call, false) => b - d,
        (true, OptionKind::Put, false) | (false, OptionKind::Call, true) => a - c,
    };
    if value.is_finite() {
        Ok(value.max(0.0))
    } else {
        Err(Error::Numerical(format!("barrier formula produced {value}")))
    }
}

/// Merton (1976) jump-diffusion price of a European option: the Poisson(λT)-weighted sum of Black prices
/// with forward F·e^{−λk̄T}(1 + k̄)ⁿ and variance σ²T + nδ², k̄ = e^{γ+δ²/2} − 1, summed until the
/// remaining Poisson mass bounds the rest below 1e-17 of max(F, K).
///
/// ```
/// use benchop::{method::closed_form, model::Merton, OptionKind, VanillaOption};
/// let m = Merton { r: 0.03, sigma: 0.15, lambda: 0.4, gamma: -0.5, delta: 0.4 };
/// let o = VanillaOption::european(OptionKind::Call, 100.0, 1.0);
/// assert!((closed_form::merton(&m, &o, 100.0).unwrap() - 14.336250885310660).abs() < 1e-11);
/// ```
pub fn merton(model: &Merton, option: &VanillaOption, spot: f64) -> Result<f64, Error> {
    check_spot(spot)?;
    check_european(option, false)?;
    let t = option.maturity;
    let s = spot * option.dividend_factor();
    let disc = (-model.r * t).exp();
    let k = option.strike;
    if model.lambda == 0.0 {
        return Ok(disc * black(option.kind, s / disc, k, model.sigma * t.sqrt()));
    }
    let kbar = (model.gamma + 0.5 * model.delta * model.delta).exp() - 1.0;
    let m = model.lambda * t; // Poisson mean of the jump count
    let m_prime = m * (1.0 + kbar); // under the share measure: weights of the call bound
    let mean = m.max(m_prime);
    let ln_f0 = (s / disc).ln() - model.lambda * kbar * t;
    let jump_ln = model.gamma + 0.5 * model.delta * model.delta; // ln(1 + k̄)
    let mut sum = 0.0;
    if mean > 1e6 {
        return Err(Error::Numerical(format!(
            "Merton series with λT(1 + k̄) = {mean:e} is too long"
        )));
    }
    let max_terms = (mean + 40.0 * mean.sqrt() + 200.0) as usize;
    for n in 0..=max_terms {
        let nf = n as f64;
        let ln_fact = statrs::function::gamma::ln_gamma(nf + 1.0);
        let ln_p = -m + nf * m.ln() - ln_fact;
        let ln_p_prime = -m_prime + nf * m_prime.ln() - ln_fact;
        let f_n = (ln_f0 + nf * jump_ln).exp();
        let sd = (model.sigma * model.sigma * t + nf * model.delta * model.delta).sqrt();
        sum += ln_p.exp() * black(option.kind, f_n, k, sd);
        if nf > mean {
            // Poisson tail beyond n is at most p_{n+1}/(1 − mean/(n + 2)).
            let ratio = (nf + 2.0) / (nf + 2.0 - mean);
            let bound = ratio * (ln_p.max(ln_p_prime) + (mean / (nf + 1.0)).ln()).exp();
            if bound < 1e-17 {
                return Ok(disc * sum);
            }
        }
    }
    Err(Error::Numerical(format!(
        "Merton series did not converge in {max_terms} terms"
    )))
}

/// 16-point Gauss–Legendre nodes and weights on [−1, 1], by Newton's method on P₁₆ (Golub & Welsch values
/// to machine precision).
static GAUSS_LEGENDRE: LazyLock<Vec<(f64, f64)>> = LazyLock::new(|| crate::special::gauss_legendre(16));

/// Heston (1993) European price by Lewis's formula (Lewis 2001, eq. (2.10) with contour Im u = −1/2):
/// C = S − √(SK)·e^{−rT}/π ∫₀^∞ Re[e^{−iuk} φ(u − i/2)] / (u² + 1/4) du, k = ln(K/S), where φ is the
/// characteristic function of ln(S_T/S) in the "little Heston trap" form (Albrecher et al. 2007). The
/// integral runs over [0, h], [h, 2h], [2h, 4h], … (h = 1/√c₂) with adaptive Gauss–Legendre on each piece
/// until the pieces and the integrand are negligible; puts by put–call parity. Robust when the Feller
/// condition fails and for short and long maturities.
///
/// ```
/// use benchop::{method::closed_form, model::Heston, OptionKind, VanillaOption};
/// let m = Heston { r: 0.03, v0: 0.0225, kappa: 2.0, theta: 0.0225, sigma_v: 0.25, rho: -0.5 };
/// let o = VanillaOption::european(OptionKind::Call, 100.0, 1.0);
/// assert!((closed_form::heston(&m, &o, 100.0).unwrap() - 7.379832496149447).abs() < 1e-10);
/// ```
pub fn heston(model: &Heston, option: &VanillaOption, spot: f64) -> Result<f64, Error> {
    Ok(heston_many(model, option, &[spot])?[0])
}

/// [`heston`] at several spots at once: the characteristic function does not depend on the spot, so
/// one adaptive integration with a vector of integrands (one per spot, refined until every component
/// meets its tolerance) evaluates it once per node for all of them.
fn heston_many(model: &Heston, option: &VanillaOption, spots: &[f64]) -> Result<Vec<f64>, Error> {
    for &spot in spots {
        check_spot(spot)?;
    }
    check_european(option, false)?;
    let t = option.maturity;
    let law = LogReturn::Heston(*model, t);
    let k = option.strike;
    let fwd: Vec<f64> = spots
        .iter()
        .map(|&spot| spot * option.dividend_factor())
        .collect();
    let lks: Vec<f64> = fwd.iter().map(|&s| (k / s).ln()).collect();
    let half = Complex64::new(0.0, -0.5);
    let f = |u: f64, out: &mut [f64]| {
        let cf = law.log_cf(Complex64::new(u, 0.0) + half);
        let scale = 1.0 / (u * u + 0.25);
        for (o, &lk) in out.iter_mut().zip(&lks) {
            *o = (cf + Complex64::new(0.0, -u * lk)).exp().re * scale;
        }
    };
    let bound = |u: f64| (law.log_cf(Complex64::new(u, 0.0) + half).re).exp() / (u * u + 0.25);
    // Target: 1e-15 of the spot in price, i.e. π·1e-15·√(S/K)·e^{rT} in the integral (the strictest
    // over the spots).
    let tol = fwd
        .iter()
        .map(|&s| std::f64::consts::PI * 1e-15 * (s / k).sqrt() * (model.r * t).exp())
        .fold(f64::INFINITY, f64::min);
    // Pieces start at the scale of 1/(u² + 1/4) or of the characteristic function, whichever is finer.
    let h = (1.0 / law.cumulants().c2.sqrt()).min(1.0);
    let n = spots.len();
    let (mut a, mut width) = (0.0, h);
    let mut integral = vec![0.0; n];
    let mut converged = false;
    let mut budget = 8_000;
    let mut work = VecWork::new(n);
    for _ in 0..64 {
        let b = a + width;
        let mut whole = vec![0.0; n];
        let mut whole_abs = vec![0.0; n];
        gauss_legendre_vec(&f, a, b, &mut whole, &mut whole_abs, &mut work);
        let mut piece = vec![0.0; n];
        let ok = adaptive_vec(&f, (a, b), &whole, tol, 30, &mut budget, &mut piece, &mut work);
        if !ok || piece.iter().any(|p| !p.is_finite()) {
            return Err(Error::Numerical(format!(
                "Heston integral did not converge on [{a}, {b}]"
            )));
        }
        for (i, p) in integral.iter_mut().zip(&piece) {
            *i += p;
        }
        a = b;
        width *= 2.0;
        if piece.iter().all(|p| p.abs() < tol) && bound(a) * a < tol {
            converged = true;
            break;
        }
    }
    if !converged {
        return Err(Error::Numerical("Heston integrand does not decay".into()));
    }
    let disc = (-model.r * t).exp();
    fwd.iter()
        .zip(&integral)
        .map(|(&s, &integral)| {
            let tail = (s * k).sqrt() * disc * integral / std::f64::consts::PI;
            let value = match option.kind {
                OptionKind::Call => s - tail,
                OptionKind::Put => k * disc - tail,
            };
            if value.is_finite() {
                Ok(value.max(0.0))
            } else {
                Err(Error::Numerical(format!("Heston integral produced {value}")))
            }
        })
        .collect()
}

/// Scratch for the vector quadrature: integrand values at one node.
struct VecWork {
    y: Vec<f64>,
}

impl VecWork {
    fn new(n: usize) -> Self {
        Self { y: vec![0.0; n] }
    }
}

/// 16-point Gauss–Legendre on [a, b] for a vector of integrands: the sums of w·f and w·|f| into `sum`
/// and `abs` (overwritten).
fn gauss_legendre_vec(
    f: &impl Fn(f64, &mut [f64]),
    a: f64,
    b: f64,
    sum: &mut [f64],
    abs: &mut [f64],
    work: &mut VecWork,
) {
    let (c, h) = (0.5 * (a + b), 0.5 * (b - a));
    sum.iter_mut().for_each(|x| *x = 0.0);
    abs.iter_mut().for_each(|x| *x = 0.0);
    for &(x, w) in GAUSS_LEGENDRE.iter() {
        f(c + h * x, &mut work.y);
        for ((s, a), &y) in sum.iter_mut().zip(abs.iter_mut()).zip(&work.y) {
            *s += h * w * y;
            *a += h * w * y.abs();
        }
    }
}

/// Adaptive bisection for a vector of integrands: a panel is accepted when every component's two halves
/// agree with its whole to `tol`, or to the rounding floor of the sum (a few hundred ulps of ∫|f|), below
/// which no subdivision can improve; the result is written to `out`. `budget` caps the number of
/// bisections, so a pathological integrand fails fast instead of hanging.
#[allow(clippy::too_many_arguments)]
fn adaptive_vec(
    f: &impl Fn(f64, &mut [f64]),
    (a, b): (f64, f64),
    whole: &[f64],
    tol: f64,
    depth: u32,
    budget: &mut u32,
    out: &mut [f64],
    work: &mut VecWork,
) -> bool {
    let n = whole.len();
    let m = 0.5 * (a + b);
    let (mut left, mut left_abs, mut right, mut right_abs) =
        (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    gauss_legendre_vec(f, a, m, &mut left, &mut left_abs, work);
    gauss_legendre_vec(f, m, b, &mut right, &mut right_abs, work);
    let mut done = true;
    for i in 0..n {
        let halves = left[i] + right[i];
        out[i] = halves;
        if !halves.is_finite() {
            return false;
        }
        let floor = 256.0 * f64::EPSILON * (left_abs[i] + right_abs[i]);
        if (halves - whole[i]).abs() > tol.max(floor) {
            done = false;
        }
    }
    if done {
        return true;
    }
    if depth == 0 || *budget == 0 {
        return false;
    }
    *budget -= 1;
    let mut l = vec![0.0; n];
    if !adaptive_vec(f, (a, m), &left, 0.5 * tol, depth - 1, budget, &mut l, work) {
        return false;
    }
    let mut r = vec![0.0; n];
    let ok = adaptive_vec(f, (m, b), &right, 0.5 * tol, depth - 1, budget, &mut r, work);
    for i in 0..n {
        out[i] = l[i] + r[i];
    }
    ok
}

/// Margrabe (1978) price of the exchange option (S₁ − S₂)⁺, the spread option with K = 0, under two correlated
/// geometric Brownian motions without dividends: S₁Φ(d₁) − S₂Φ(d₂), σ² = σ₁² + σ₂² − 2ρσ₁σ₂ (the rate drops
/// out).
///
/// ```
/// use benchop::{method::closed_form, model::TwoAssetBlackScholes, SpreadOption};
/// let m = TwoAssetBlackScholes { r: 0.03, sigma1: 0.15, sigma2: 0.15, rho: 0.5 };
/// let o = SpreadOption { strike: 0.0, maturity: 1.0 };
/// let v = closed_form::margrabe(&m, &o, [100.0, 100.0]).unwrap();
/// assert!((v - 5.978528810578943).abs() < 1e-12);
/// ```
pub fn margrabe(model: &TwoAssetBlackScholes, option: &SpreadOption, spots: [f64; 2]) -> Result<f64, Error> {
    check_spot(spots[0])?;
    check_spot(spots[1])?;
    if option.strike != 0.0 {
        return Err(not_applicable("Margrabe's formula needs a zero strike"));
    }
    let var = model.sigma1 * model.sigma1 + model.sigma2 * model.sigma2
        - 2.0 * model.rho * model.sigma1 * model.sigma2;
    let sd = (var.max(0.0) * option.maturity).sqrt();
    // Price in units of S₂: Black call on forward S₁/S₂ with strike 1.
    Ok(spots[1] * black(OptionKind::Call, spots[0] / spots[1], 1.0, sd))
}
