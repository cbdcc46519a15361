//! SABR building blocks for the simulation methods: the absorbed CEV law conditional on the volatility
//! path and its option prices.
//!
//! Given the volatility path, dF = α_t F^β dW is a time-changed CEV process: with v = ∫α² dt,
//! X = F^{2(1−β)}/(1−β)² is a squared Bessel process of dimension δ = (1−2β)/(1−β) < 2 run for time v,
//! absorbed at 0 (the BENCHOP–SLV convention). Its law (Revuz & Yor, ch. XI; the CEV form of Schroder
//! 1989) is a mixture: X_v = 2v·G with G ~ Gamma(n + 1) with weight w_n = e^{−λ}λ^{n+μ}/Γ(n+μ+1),
//! λ = X₀/(2v), μ = 1/(2(1−β)), and the remaining mass Q(μ, λ) absorbed at 0. For β = ½ (μ = 1) this
//! is F_v = (v/2)·Gamma(N) with N ~ Poisson(2F₀/v), F_v = 0 when N = 0.
//!
//! With ρ = 0 the forward's noise is independent of the volatility path, so the SABR price is the
//! expectation over volatility paths of this closed-form CEV price (conditional Monte Carlo).

use statrs::function::gamma::{checked_gamma_ur, ln_gamma};

use crate::instrument::OptionKind;
use crate::model::Sabr;

/// Does the conditional simulation price these parameters? β < 1 and ρ = 0.
pub(crate) fn supported(m: &Sabr) -> bool {
    m.beta < 1.0 && m.rho == 0.0
}

/// E[payoff(F_v)] for the absorbed CEV started at `f` after integrated variance `v`: the conditional
/// SABR price given the volatility path (undiscounted, on the forward).
pub(crate) fn cev_price(kind: OptionKind, f: f64, k: f64, v: f64, beta: f64) -> f64 {
    if f <= 0.0 {
        return kind.payoff(0.0, k);
    }
    if v <= 1e-300 {
        return kind.payoff(f, k);
    }
    let call = cev_call(f, k, v, beta);
    match kind {
        OptionKind::Call => call,
        // Put–call parity: the absorbed CEV is a martingale.
        OptionKind::Put => call - f + k,
    }
}

fn cev_call(f: f64, k: f64, v: f64, beta: f64) -> f64 {
    let q = 1.0 - beta;
    let mu = 0.5 / q;
    let c2v = q * q * 2.0 * v;
    let lambda = f.powf(2.0 * q) / c2v;
    let g = k.powf(2.0 * q) / c2v;
    if lambda > 1e6 {
        // Variance tiny against F (absorption has probability e^{−λ}-small): the law of F is Gaussian
        // to O(λ^{−1/2}) with the local normal volatility F^β; Bachelier.
        let sd = f.powf(beta) * v.sqrt();
        let d = (f - k) / sd;
        let phi = (-0.5 * d * d).exp() / (2.0 * std::f64::consts::PI).sqrt();
        return (f - k) * crate::special::norm_cdf(d) + sd * phi;
    }
    // F = scale·G^μ.
    let scale = c2v.powf(mu);
    let spread = 10.0 * lambda.sqrt() + 20.0;
    let n_lo = (lambda - spread).max(0.0).floor();
    let n_hi = (lambda + spread).ceil();
    // Weight, Γ(n+1+μ)/Γ(n+1), Q(n+1, g), Q(n+1+μ, g) and the increments of the two Q's at n_lo.
    let mut n = n_lo;
    let mut ln_w = -lambda + (n + mu) * lambda.ln() - ln_gamma(n + mu + 1.0);
    let mut ratio_ln = ln_gamma(n + 1.0 + mu) - ln_gamma(n + 1.0);
    let (Ok(mut q_int), Ok(mut q_frac)) = (checked_gamma_ur(n + 1.0, g), checked_gamma_ur(n + 1.0 + mu, g))
    else {
        return (f - k).max(0.0);
    };
    // Q(a+1, g) = Q(a, g) + e^{−g} g^a / Γ(a+1).
    let ln_g = g.ln();
    let mut ln_t_int = -g + (n + 1.0) * ln_g - ln_gamma(n + 2.0);
    let mut ln_t_frac = -g + (n + 1.0 + mu) * ln_g - ln_gamma(n + 2.0 + mu);
    let mut sum = 0.0;
    while n <= n_hi {
        let w = ln_w.exp();
        sum += w * (scale * ratio_ln.exp() * q_frac - k * q_int);
        q_int += ln_t_int.exp();
        q_frac += ln_t_frac.exp();
        ln_w += lambda.ln() - (n + mu + 1.0).ln();
        ratio_ln += (n + 1.0 + mu).ln() - (n + 1.0).ln();
        ln_t_int += ln_g - (n + 2.0).ln();
        ln_t_frac += ln_g - (n + 2.0 + mu).ln();
        n += 1.0;
    }
    sum.max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cev_price_has_the_right_limits_and_parity() {
        // Small variance: intrinsic value plus a small time value.
        let c = cev_price(OptionKind::Call, 1.0, 0.9, 1e-8, 0.5);
        assert!((c - 0.1).abs() < 1e-6, "{c}");
        // Martingale: a zero-strike call is the forward; puts by parity are non-negative.
        for beta in [0.0, 0.3, 0.5, 0.7] {
            let c0 = cev_price(OptionKind::Call, 0.5, 1e-9, 0.3, beta);
            assert!((c0 - 0.5).abs() < 1e-8, "beta {beta}: {c0}");
            let p = cev_price(OptionKind::Put, 0.5, 0.6, 0.3, beta);
            assert!(p > 0.1 - 1e-12, "beta {beta}: {p}");
        }
    }

    #[test]
    fn the_cev_price_agrees_with_poisson_gamma_sampling_for_beta_one_half() {
        use rand::{RngExt, SeedableRng};
        use rand_distr::{Distribution, Gamma, Poisson};
        // β = ½: F_v = (v/2)·Gamma(N) with N ~ Poisson(2F₀/v), 0 when N = 0.
        let (f, k, v) = (0.5, 0.45, 0.4);
        let exact = cev_price(OptionKind::Call, f, k, v, 0.5);
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        let poisson = Poisson::new(2.0 * f / v).unwrap();
        let n = 400_000;
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let count: f64 = poisson.sample(&mut rng);
            let fv = if count < 0.5 {
                0.0
            } else {
                0.5 * v * rng.sample(Gamma::new(count, 1.0).unwrap())
            };
            let x = (fv - k).max(0.0);
            s += x;
            s2 += x * x;
        }
        let mean = s / n as f64;
        let se = ((s2 / n as f64 - mean * mean) / n as f64).sqrt();
        assert!((mean - exact).abs() < 4.0 * se, "{mean} ± {se} vs {exact}");
    }
}
