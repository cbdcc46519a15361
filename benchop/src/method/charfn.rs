//! Characteristic functions of the log-return X = ln(S_T / S₀) for the one-asset models that have one in
//! closed form (Black–Scholes–Merton, Heston, Merton), their cumulants, and the European set-up shared by
//! the Fourier methods (closed-form Heston, COS, FFT).
//!
//! Discrete proportional dividends only scale the spot (S_T = S₀·Π(1 − fraction)·e^X), so every kernel
//! prices with the effective spot S₀·Π(1 − fraction) and the same characteristic function.

use num_complex::Complex64;

use crate::instrument::{Exercise, Instrument, OptionKind};
use crate::model::{BlackScholes, Heston, Merton, Model};
use crate::problem::{Points, Problem};

/// A model together with a maturity: everything the characteristic function of X = ln(S_T/S₀) needs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LogReturn {
    BlackScholes(BlackScholes, f64),
    Heston(Heston, f64),
    Merton(Merton, f64),
}

/// The cumulants c₁, c₂, c₄ of X, used for the COS truncation range (Fang & Oosterlee 2008, eq. 49).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cumulants {
    pub(crate) c1: f64,
    pub(crate) c2: f64,
    pub(crate) c4: f64,
}

impl LogReturn {
    /// `None` for models without a closed-form characteristic function.
    pub(crate) fn new(model: &Model, maturity: f64) -> Option<Self> {
        match *model {
            Model::BlackScholes(m) => Some(Self::BlackScholes(m, maturity)),
            Model::Heston(m) => Some(Self::Heston(m, maturity)),
            Model::Merton(m) => Some(Self::Merton(m, maturity)),
            _ => None,
        }
    }

    pub(crate) fn rate(&self) -> f64 {
        match self {
            Self::BlackScholes(m, _) => m.r,
            Self::Heston(m, _) => m.r,
            Self::Merton(m, _) => m.r,
        }
    }

    pub(crate) fn maturity(&self) -> f64 {
        match *self {
            Self::BlackScholes(_, t) | Self::Heston(_, t) | Self::Merton(_, t) => t,
        }
    }

    /// ln φ(u) with φ(u) = E[exp(i u X)], for complex u inside the strip of regularity.
    pub(crate) fn log_cf(&self, u: Complex64) -> Complex64 {
        let i = Complex64::i();
        match *self {
            Self::BlackScholes(m, t) => {
                let s2 = m.sigma * m.sigma;
                i * u * (m.r - 0.5 * s2) * t - 0.5 * s2 * t * u * u
            }
            Self::Merton(m, t) => {
                // Merton (1976): Brownian part plus compound Poisson with N(γ, δ²) log-jumps,
                // compensated so that E[e^X] = e^{rT}.
                let s2 = m.sigma * m.sigma;
                let kbar = (m.gamma + 0.5 * m.delta * m.delta).exp() - 1.0;
                let drift = m.r - 0.5 * s2 - m.lambda * kbar;
                let jump = (i * u * m.gamma - 0.5 * m.delta * m.delta * u * u).exp() - 1.0;
                i * u * drift * t - 0.5 * s2 * t * u * u + m.lambda * t * jump
            }
            Self::Heston(m, t) => heston_log_cf(&m, t, u),
        }
    }

    /// Cumulants of X. Closed forms for BSM and Merton; for Heston they are read off ln φ on the real axis
    /// by Richardson-extrapolated differences (the closed form of c₂ in Fang & Oosterlee 2008, Table 11,
    /// loses all digits to cancellation as κ → 0, the numerical one does not).
    pub(crate) fn cumulants(&self) -> Cumulants {
        match *self {
            Self::BlackScholes(m, t) => Cumulants {
                c1: (m.r - 0.5 * m.sigma * m.sigma) * t,
                c2: m.sigma * m.sigma * t,
                c4: 0.0,
            },
            Self::Merton(m, t) => {
                let (g, d2) = (m.gamma, m.delta * m.delta);
                let kbar = (g + 0.5 * d2).exp() - 1.0;
                Cumulants {
                    c1: (m.r - 0.5 * m.sigma * m.sigma - m.lambda * kbar + m.lambda * g) * t,
                    c2: (m.sigma * m.sigma + m.lambda * (g * g + d2)) * t,
                    c4: m.lambda * (g.powi(4) + 6.0 * g * g * d2 + 3.0 * d2 * d2) * t,
                }
            }
            Self::Heston(m, t) => {
                // Re ln φ(h) = −c₂h²/2 + c₄h⁴/24 − …, Im ln φ(h) = c₁h − c₃h³/6 + …; h is refined until
                // h√c₂ = 0.1, where the neglected terms are below 1e-6 relative for any sane kurtosis.
                let re = |h: f64| -2.0 * self.log_cf(Complex64::new(h, 0.0)).re / (h * h);
                let im = |h: f64| self.log_cf(Complex64::new(h, 0.0)).im / h;
                let guess = m.v0.max(m.theta) * t;
                let mut c2 = guess;
                let (mut c4, mut c1) = (0.0, 0.0);
                for _ in 0..3 {
                    let h = 0.1 / c2.sqrt();
                    let (r1, r2) = (re(h), re(0.5 * h));
                    let next = (4.0 * r2 - r1) / 3.0;
                    c4 = (16.0 * (r2 - r1) / (h * h)).abs();
                    c1 = (4.0 * im(0.5 * h) - im(h)) / 3.0;
                    if !(next.is_finite() && next > 0.0) {
                        break;
                    }
                    c2 = next;
                }
                Cumulants {
                    c1,
                    c2,
                    c4: if c4.is_finite() { c4 } else { 0.0 },
                }
            }
        }
    }
}

/// ln(1 + z) / s for z = s·zs with |z| possibly tiny: the series keeps full relative accuracy.
fn ln_1p_over(zs: Complex64, s: f64) -> Complex64 {
    let z = zs * s;
    if z.norm() < 1e-3 {
        // z − z²/2 + z³/3 − z⁴/4 + z⁵/5, truncation error below 1e-18 relative.
        zs * (1.0 - z * (0.5 - z * (1.0 / 3.0 - z * (0.25 - z * 0.2))))
    } else {
        (1.0 + z).ln() / s
    }
}

/// Heston log characteristic function in the "little Heston trap" form (Albrecher, Mayer, Schoutens &
/// Tistaert 2007, eq. (2)): g = (ξ − d)/(ξ + d) with e^{−dT}, which stays on the principal branch of the
/// logarithm. Rewritten so that no term divides by σᵥ² before the cancellation: ξ − d = −σᵥ²(iu + u²)/(ξ + d),
/// which keeps the σᵥ → 0 limit (Black–Scholes with deterministic variance) accurate.
fn heston_log_cf(m: &Heston, t: f64, u: Complex64) -> Complex64 {
    let i = Complex64::i();
    let s2 = m.sigma_v * m.sigma_v;
    let xi = m.kappa - m.rho * m.sigma_v * i * u;
    let a = i * u + u * u;
    let d = (xi * xi + s2 * a).sqrt();
    let xpd = xi + d;
    let xmd_s2 = -a / xpd; // (ξ − d)/σᵥ²
    let g = xmd_s2 * s2 / xpd;
    let e = (-d * t).exp();
    // ln((1 − g e^{−dT})/(1 − g)) = ln(1 + z), z = g (1 − e^{−dT})/(1 − g).
    let zs = xmd_s2 / xpd * (1.0 - e) / (1.0 - g);
    let log_s2 = ln_1p_over(zs, s2);
    let c = i * u * m.r * t + m.kappa * m.theta * (xmd_s2 * t - 2.0 * log_s2);
    let dd = xmd_s2 * (1.0 - e) / (1.0 - g * e);
    c + m.v0 * dd
}

/// Moment explosion time T*(ω) of E[S_T^ω] under Heston (Andersen & Piterbarg 2007, Prop. 3.1).
pub(crate) fn heston_explosion_time(m: &Heston, omega: f64) -> f64 {
    let b = m.rho * m.sigma_v * omega - m.kappa;
    let disc = b * b - m.sigma_v * m.sigma_v * omega * (omega - 1.0);
    if disc >= 0.0 {
        if b < 0.0 {
            f64::INFINITY
        } else {
            let s = disc.sqrt();
            ((b + s) / (b - s)).ln() / s
        }
    } else {
        let s = (-disc).sqrt();
        let angle = if b == 0.0 {
            std::f64::consts::FRAC_PI_2
        } else if b < 0.0 {
            std::f64::consts::PI + (s / b).atan()
        } else {
            (s / b).atan()
        };
        2.0 / s * angle
    }
}

/// A European vanilla problem on spots under a model with a characteristic function: what COS, FFT and the
/// Heston integral need.
#[derive(Debug, Clone)]
pub(crate) struct European<'a> {
    pub(crate) law: LogReturn,
    pub(crate) kind: OptionKind,
    pub(crate) strike: f64,
    /// Π(1 − fraction) over the dividends: prices use the effective spot S₀ times this.
    pub(crate) dividend_factor: f64,
    pub(crate) spots: &'a [f64],
}

impl<'a> European<'a> {
    /// `None` unless the problem is a European option without barrier, on spots, under BSM, Heston or Merton.
    pub(crate) fn from_problem(problem: &'a Problem) -> Option<Self> {
        let Instrument::Vanilla(o) = problem.instrument() else {
            return None;
        };
        let Points::Spots(spots) = problem.points() else {
            return None;
        };
        if o.exercise != Exercise::European || o.barrier.is_some() {
            return None;
        }
        Some(Self {
            law: LogReturn::new(problem.model(), o.maturity)?,
            kind: o.kind,
            strike: o.strike,
            dividend_factor: o.dividend_factor(),
            spots,
        })
    }

    /// K e^{−rT}.
    pub(crate) fn discounted_strike(&self) -> f64 {
        self.strike * (-self.law.rate() * self.law.maturity()).exp()
    }
}
