//! Binomial trees for single-asset options under Black–Scholes–Merton.
//!
//! - Leisen & Reimer (1996), "Binomial models for option valuation — examining and improving
//!   convergence", Applied Mathematical Finance 3: an odd number of steps n, up-probabilities from the
//!   Peizer–Pratt method-2 inversion h(z) = ½ + sign(z)·½·√(1 − exp(−(z/(n + ⅓ + 0.1/(n+1)))²·(n + ⅙)))
//!   with p = h(d₂), p′ = h(d₁), u = e^{rΔt}p′/p, d = (e^{rΔt} − p·u)/(1 − p). The tree is centred on
//!   the strike, so each evaluation point gets its own tree.
//! - Discrete proportional dividends keep the tree recombining: node prices after a dividend date are
//!   multiplied by (1 − δ) (Hull, *Options, Futures and Other Derivatives*, ch. 21); d₁, d₂ use the
//!   dividend-adjusted spot S₀·Π(1 − δ). The step count is nudged so dividend dates fall on steps.
//! - American exercise by comparing with the intrinsic value at every node. A European value needs no
//!   backward induction: it is the binomial expectation of the terminal payoffs, summed in O(n).
//! - Richardson extrapolation in n (Leisen 1998, "Pricing the American put option: a detailed
//!   convergence analysis for binomial models", J. Econ. Dyn. Control 22): the Leisen–Reimer error
//!   behaves like c/n² for European and like c/n for American options, so two trees with n₁ and
//!   n₂ ≈ 2n₁ steps give (n₂ᵖ·P₂ − n₁ᵖ·P₁)/(n₂ᵖ − n₁ᵖ).

use crate::instrument::{Exercise, OptionKind, VanillaOption};
use crate::method::Estimate;
use crate::model::Model;
use crate::problem::{Points, Quantity};
use crate::{Cancel, Error, Instrument, Problem};

/// One discretisation setting of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeConfig {
    /// Number of time steps of the (finer) tree; made odd and aligned with dividend dates.
    pub steps: usize,
    /// Extrapolate with a second tree of about half the steps (Richardson).
    pub richardson: bool,
}

/// Step counts of the ladder (before alignment), cheapest first.
const LADDER: [usize; 17] = [
    25, 51, 75, 101, 151, 201, 301, 401, 601, 801, 1201, 1601, 2401, 3201, 4801, 6401, 9601,
];

/// Does the tree price `problem`? European and American calls and puts (with proportional dividends)
/// under Black–Scholes–Merton; no barriers, no Greeks.
pub fn applies(problem: &Problem) -> bool {
    let Instrument::Vanilla(opt) = problem.instrument() else {
        return false;
    };
    matches!(problem.model(), Model::BlackScholes(_))
        && opt.barrier.is_none()
        && problem.quantity() == Quantity::Price
        && matches!(problem.points(), Points::Spots(_) | Points::Strikes { .. })
}

/// The setting at ladder `level` (0 = cheapest), `None` past the end.
pub fn level_config(_problem: &Problem, level: usize) -> Option<TreeConfig> {
    LADDER.get(level).map(|&steps| TreeConfig {
        steps,
        richardson: true,
    })
}

/// Price every point of `problem` at ladder `level`; `Ok(None)` past the end of the ladder.
pub fn price_level(problem: &Problem, level: usize, cancel: &Cancel) -> Result<Option<Estimate>, Error> {
    match level_config(problem, level) {
        Some(cfg) => price(problem, &cfg, cancel).map(Some),
        None => Ok(None),
    }
}

/// Price every point of `problem` with the setting `cfg`.
pub fn price(problem: &Problem, cfg: &TreeConfig, cancel: &Cancel) -> Result<Estimate, Error> {
    if !applies(problem) {
        return Err(Error::NotApplicable {
            method: "tree",
            reason: "only European/American calls and puts under Black–Scholes".into(),
        });
    }
    let (Model::BlackScholes(bs), Instrument::Vanilla(opt)) = (problem.model(), problem.instrument()) else {
        return Err(Error::NotApplicable {
            method: "tree",
            reason: "not a Black–Scholes vanilla option".into(),
        });
    };
    if cfg.steps < 3 {
        return Err(Error::invalid("tree config", "needs at least 3 steps"));
    }
    let pairs: Vec<(f64, f64)> = match problem.points() {
        Points::Spots(v) => v.iter().map(|&s| (s, opt.strike)).collect(),
        Points::Strikes { spot, strikes } => strikes.iter().map(|&k| (*spot, k)).collect(),
        Points::SpotPairs(_) => return Err(Error::invalid("points", "a tree prices single-asset points")),
    };
    let fine = align_steps(opt, cfg.steps);
    let coarse = align_steps(opt, cfg.steps / 2);
    let power = if opt.exercise == Exercise::American { 1 } else { 2 };
    let mut work = Vec::new();
    let mut values = Vec::with_capacity(pairs.len());
    for &(s0, k) in &pairs {
        let p_fine = leisen_reimer(opt, bs.r, bs.sigma, s0, k, fine, &mut work, cancel)?;
        let value = if cfg.richardson {
            let p_coarse = leisen_reimer(opt, bs.r, bs.sigma, s0, k, coarse, &mut work, cancel)?;
            let (a, b) = ((fine as f64).powi(power), (coarse as f64).powi(power));
            (a * p_fine - b * p_coarse) / (a - b)
        } else {
            p_fine
        };
        if !value.is_finite() {
            return Err(Error::Numerical("tree produced a non-finite value".into()));
        }
        values.push(value);
    }
    let setting = if cfg.richardson {
        format!("Leisen–Reimer steps={fine} and {coarse}, Richardson (order {power})")
    } else {
        format!("Leisen–Reimer steps={fine}")
    };
    Ok(Estimate {
        values,
        std_errors: None,
        setting,
    })
}

/// The odd step count nearest above `target` (at least 3) that puts the dividend dates on steps, or
/// the best such count within +20% when none does exactly.
fn align_steps(opt: &VanillaOption, target: usize) -> usize {
    let first = (target.max(3)) | 1;
    if opt.dividends.is_empty() {
        return first;
    }
    let miss = |n: usize| {
        opt.dividends
            .iter()
            .map(|d| {
                let x = d.time / opt.maturity * n as f64;
                (x - x.round()).abs()
            })
            .fold(0.0, f64::max)
    };
    let last = first + first / 5 + 2;
    let mut best = (first, miss(first));
    for n in (first..=last).step_by(2) {
        let m = miss(n);
        if m < 1e-9 {
            return n;
        }
        if m < best.1 {
            best = (n, m);
        }
    }
    best.0
}

/// Peizer–Pratt method-2 inversion of the binomial distribution (Leisen & Reimer 1996).
fn peizer_pratt(z: f64, n: usize) -> f64 {
    let n = n as f64;
    let q = z / (n + 1.0 / 3.0 + 0.1 / (n + 1.0));
    let root = (1.0 - (-q * q * (n + 1.0 / 6.0)).exp()).max(0.0).sqrt();
    0.5 + 0.5 * z.signum() * root
}

/// One Leisen–Reimer tree with `n` (odd) steps.
#[allow(clippy::too_many_arguments)]
fn leisen_reimer(
    opt: &VanillaOption,
    r: f64,
    sigma: f64,
    s0: f64,
    k: f64,
    n: usize,
    v: &mut Vec<f64>,
    cancel: &Cancel,
) -> Result<f64, Error> {
    let t = opt.maturity;
    let dt = t / n as f64;
    let vol = sigma * t.sqrt();
    let d1 = ((s0 * opt.dividend_factor() / k).ln() + (r + 0.5 * sigma * sigma) * t) / vol;
    let d2 = d1 - vol;
    let growth = (r * dt).exp();
    let mut p = peizer_pratt(d2, n);
    let mut u = growth * peizer_pratt(d1, n) / p;
    let mut d = (growth - p * u) / (1.0 - p);
    if !(p > 1e-12 && p < 1.0 - 1e-12 && d > 0.0 && u > d) {
        // Far from the strike the inversion saturates: fall back to Cox–Ross–Rubinstein.
        u = (sigma * dt.sqrt()).exp();
        d = 1.0 / u;
        p = (growth - d) / (u - d);
        if !(p > 0.0 && p < 1.0) {
            return Err(Error::Numerical(format!(
                "binomial probabilities out of range with {n} steps"
            )));
        }
    }
    let disc = (-r * dt).exp();
    let (pu, pd) = (disc * p, disc * (1.0 - p));
    let ratio = u / d;
    // Dividend factor applying to node prices at step i: dividends paid at or before t_i, where a
    // dividend on a step still counts as unpaid there (exercise just before the payment).
    let div_at = |i: usize| -> f64 {
        let ti = i as f64 * dt;
        opt.dividends
            .iter()
            .filter(|dv| dv.time < ti - 1e-9 * dt)
            .map(|dv| 1.0 - dv.fraction)
            .product()
    };
    // Steps right before a dividend payment (where exercise jumps in value) get a smoothed max.
    let smooth_at = |i: usize| -> bool {
        opt.dividends.iter().any(|dv| {
            let x = dv.time / dt;
            (x - i as f64).abs() < 0.5 + 1e-9
        })
    };
    let kind = opt.kind;
    let payoff = |s: f64| match kind {
        OptionKind::Call => (s - k).max(0.0),
        OptionKind::Put => (k - s).max(0.0),
    };
    if opt.exercise == Exercise::European {
        let ln_s0 = (s0 * div_at(n)).ln() + n as f64 * d.ln();
        return Ok(european_sum(n, p, disc, ln_s0, ratio, kind, k));
    }
    v.clear();
    let mut s = s0 * div_at(n) * d.powi(n as i32);
    for _ in 0..=n {
        v.push(payoff(s));
        s *= ratio;
    }
    let american = opt.exercise == Exercise::American;
    let mut prem = Vec::with_capacity(n + 1);
    for i in (0..n).rev() {
        if i % 64 == 0 {
            cancel.check()?;
        }
        if american && smooth_at(i) {
            // Cell-averaged exercise (smoothing of the max, cf. Heston & Zhou 2000): the exercise
            // premium f = g − c, linear between nodes, is averaged over each node's cell, so the
            // kink at the exercise boundary does not make the error oscillate with n.
            let mut s = s0 * div_at(i) * d.powi(i as i32);
            prem.clear();
            for j in 0..=i {
                let cont = pd * v[j] + pu * v[j + 1];
                v[j] = cont;
                prem.push(payoff(s) - cont);
                s *= ratio;
            }
            for j in 0..=i {
                let f = prem[j];
                let fl = if j > 0 { 0.5 * (prem[j - 1] + f) } else { f };
                let fr = if j < i { 0.5 * (prem[j + 1] + f) } else { f };
                v[j] += 0.5 * (positive_mean(fl, f) + positive_mean(f, fr));
            }
        } else if american {
            let mut s = s0 * div_at(i) * d.powi(i as i32);
            for j in 0..=i {
                let cont = pd * v[j] + pu * v[j + 1];
                v[j] = cont.max(payoff(s));
                s *= ratio;
            }
        } else {
            for j in 0..=i {
                v[j] = pd * v[j] + pu * v[j + 1];
            }
        }
    }
    Ok(v[0])
}

/// The value of a European option on the tree without the backward induction: the discounted
/// expectation of the payoff over the binomial law of the number of up moves,
/// e^{−rT}·Σ_j C(n, j) p^j (1 − p)^{n−j} g(S_j), S_j = S₀'·d^n·(u/d)^j, which is what the induction
/// computes (to rounding) in O(n) instead of O(n²). The probabilities and node prices are built outwards
/// from the mode by their ratios; a side stops once the probabilities fall below 1e-18 of the mode's
/// (the payoffs grow at most geometrically, far more slowly) or the payoff has become zero there (it
/// stays zero further out).
fn european_sum(n: usize, p: f64, disc_step: f64, ln_s0: f64, ratio: f64, kind: OptionKind, k: f64) -> f64 {
    use statrs::function::gamma::ln_gamma;
    let nf = n as f64;
    let mode = (((nf + 1.0) * p).floor() as usize).min(n);
    let m = mode as f64;
    let ln_pmf = ln_gamma(nf + 1.0) - ln_gamma(m + 1.0) - ln_gamma(nf - m + 1.0)
        + m * p.ln()
        + (nf - m) * (1.0 - p).ln();
    let pm = ln_pmf.exp();
    let odds = p / (1.0 - p);
    let cutoff = 1e-18 * pm;
    let s_mode = (ln_s0 + m * ratio.ln()).exp();
    let mut sum = pm * kind.payoff(s_mode, k);
    let (mut w, mut s) = (pm, s_mode);
    for j in mode..n {
        w *= (nf - j as f64) / (j as f64 + 1.0) * odds;
        s *= ratio;
        let g = kind.payoff(s, k);
        if w < cutoff || (g == 0.0 && kind == OptionKind::Put) {
            break;
        }
        sum += w * g;
    }
    let (mut w, mut s) = (pm, s_mode);
    for j in (1..=mode).rev() {
        w *= j as f64 / (nf - j as f64 + 1.0) / odds;
        s /= ratio;
        let g = kind.payoff(s, k);
        if w < cutoff || (g == 0.0 && kind == OptionKind::Call) {
            break;
        }
        sum += w * g;
    }
    disc_step.powi(n as i32) * sum
}

/// Mean of max(f, 0) for f linear from `a` to `b`.
fn positive_mean(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo >= 0.0 {
        0.5 * (a + b)
    } else if hi <= 0.0 {
        0.0
    } else {
        hi * hi / (2.0 * (hi - lo))
    }
}
