//! Models of the underlying: the stochastic processes a problem is priced under.
//!
//! Parameter structs are plain data with public fields (as QuantLib's processes); they are validated
//! once, when a [`Problem`](crate::Problem) is built, so kernels can rely on them.

use crate::Error;

/// Geometric Brownian motion, Black–Scholes–Merton (Black & Scholes 1973, Merton 1973).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlackScholes {
    /// Risk-free rate, continuously compounded.
    pub r: f64,
    /// Volatility.
    pub sigma: f64,
}

/// Heston stochastic volatility (Heston 1993).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Heston {
    /// Risk-free rate.
    pub r: f64,
    /// Initial variance V₀.
    pub v0: f64,
    /// Mean-reversion speed κ.
    pub kappa: f64,
    /// Long-run variance θ.
    pub theta: f64,
    /// Volatility of variance σᵥ.
    pub sigma_v: f64,
    /// Correlation ρ between the asset and its variance.
    pub rho: f64,
}

/// Merton jump diffusion with log-normal jumps (Merton 1976).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Merton {
    /// Risk-free rate.
    pub r: f64,
    /// Diffusion volatility.
    pub sigma: f64,
    /// Jump intensity λ.
    pub lambda: f64,
    /// Mean γ of the log jump size.
    pub gamma: f64,
    /// Standard deviation δ of the log jump size.
    pub delta: f64,
}

/// Local volatility σ(S, t) given by one of the BENCHOP surfaces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LocalVolSurface {
    /// 3aI: σ(S,t) = 0.15 + 0.15·(0.5 + 2t)·(S/100 − 1.2)² / ((S/100)² + 1.44).
    Benchop3aI,
    /// 3aII: Dupire local volatility of the SVI total implied variance surface. The surface is anchored
    /// at the evaluation spot S₀ (x = log(S/(S₀e^{rt}))), so each S₀ is its own pricing problem.
    SviBenchop3aII,
    /// A user's formula σ(S, t) (see [`crate::formula`]); values outside (0, 5] are clamped into it.
    Formula(crate::formula::Formula),
}

/// Local volatility model dS = r S dt + σ(S,t) S dW (Dupire 1994).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalVol {
    /// Risk-free rate.
    pub r: f64,
    /// The surface σ(S, t).
    pub surface: LocalVolSurface,
}

/// SABR stochastic-alpha-beta-rho (Hagan et al. 2002), BENCHOP–SLV.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sabr {
    /// Risk-free rate.
    pub r: f64,
    /// Initial volatility α.
    pub alpha: f64,
    /// CEV exponent β ∈ [0, 1].
    pub beta: f64,
    /// Correlation ρ.
    pub rho: f64,
    /// Volatility of volatility ν.
    pub nu: f64,
}

/// Two correlated geometric Brownian motions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwoAssetBlackScholes {
    /// Risk-free rate.
    pub r: f64,
    /// Volatility of the first asset.
    pub sigma1: f64,
    /// Volatility of the second asset.
    pub sigma2: f64,
    /// Correlation of the two Brownian motions.
    pub rho: f64,
}

/// The model a problem is priced under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    /// Black–Scholes–Merton.
    BlackScholes(BlackScholes),
    /// Heston stochastic volatility.
    Heston(Heston),
    /// Merton jump diffusion.
    Merton(Merton),
    /// Local volatility.
    LocalVol(LocalVol),
    /// SABR.
    Sabr(Sabr),
    /// Two-asset Black–Scholes.
    TwoAsset(TwoAssetBlackScholes),
}

impl Model {
    /// The risk-free rate, which every model has.
    pub fn rate(&self) -> f64 {
        match self {
            Model::BlackScholes(m) => m.r,
            Model::Heston(m) => m.r,
            Model::Merton(m) => m.r,
            Model::LocalVol(m) => m.r,
            Model::Sabr(m) => m.r,
            Model::TwoAsset(m) => m.r,
        }
    }

    /// Short name of the model family, as the API lists it.
    pub fn family(&self) -> &'static str {
        match self {
            Model::BlackScholes(_) => "black_scholes",
            Model::Heston(_) => "heston",
            Model::Merton(_) => "merton",
            Model::LocalVol(_) => "local_vol",
            Model::Sabr(_) => "sabr",
            Model::TwoAsset(_) => "two_asset_black_scholes",
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        finite("r", self.rate())?;
        match *self {
            Model::BlackScholes(m) => positive("sigma", m.sigma),
            Model::Heston(m) => {
                positive("v0", m.v0)?;
                positive("kappa", m.kappa)?;
                positive("theta", m.theta)?;
                positive("sigma_v", m.sigma_v)?;
                correlation("rho", m.rho)
            }
            Model::Merton(m) => {
                positive("sigma", m.sigma)?;
                non_negative("lambda", m.lambda)?;
                finite("gamma", m.gamma)?;
                non_negative("delta", m.delta)
            }
            Model::LocalVol(_) => Ok(()),
            Model::Sabr(m) => {
                positive("alpha", m.alpha)?;
                if !(0.0..=1.0).contains(&m.beta) {
                    return Err(Error::invalid(
                        "beta",
                        format!("must lie in [0, 1], got {}", m.beta),
                    ));
                }
                correlation("rho", m.rho)?;
                non_negative("nu", m.nu)
            }
            Model::TwoAsset(m) => {
                positive("sigma1", m.sigma1)?;
                positive("sigma2", m.sigma2)?;
                correlation("rho", m.rho)
            }
        }
    }
}

impl LocalVol {
    /// The local volatility σ(S, t) for the problem whose evaluation spot is `s0`
    /// (only surfaces anchored at the spot, like 3aII, depend on it).
    ///
    /// ```
    /// use benchop::model::{LocalVol, LocalVolSurface};
    /// let lv = LocalVol { r: 0.03, surface: LocalVolSurface::Benchop3aI };
    /// // At S = 120 the quadratic term vanishes.
    /// assert!((lv.sigma(120.0, 0.3, 100.0) - 0.15).abs() < 1e-15);
    /// ```
    pub fn sigma(&self, s: f64, t: f64, s0: f64) -> f64 {
        match self.surface {
            LocalVolSurface::Benchop3aI => {
                let x = s / 100.0;
                0.15 + 0.15 * (0.5 + 2.0 * t) * (x - 1.2).powi(2) / (x * x + 1.44)
            }
            LocalVolSurface::SviBenchop3aII => svi_local_vol(self.r, s0, s, t),
            // Validation samples the formula over the pricing domain; between samples a kernel must still
            // get a usable volatility.
            LocalVolSurface::Formula(f) => {
                let v = f.eval(s, t);
                if v.is_nan() {
                    MIN_FORMULA_VOL
                } else {
                    v.clamp(MIN_FORMULA_VOL, MAX_FORMULA_VOL)
                }
            }
        }
    }

    /// `true` when σ depends on the evaluation spot, so each spot needs its own solve.
    pub fn anchored_at_spot(&self) -> bool {
        matches!(self.surface, LocalVolSurface::SviBenchop3aII)
    }
}

/// Smallest volatility a formula surface yields (smaller values are clamped up to it).
pub const MIN_FORMULA_VOL: f64 = 1e-4;
/// Largest volatility a formula surface yields.
pub const MAX_FORMULA_VOL: f64 = 5.0;

/// The 3aII SVI formula v(T, x) and its derivatives ∂v/∂T, ∂v/∂x, ∂²v/∂x².
///
/// shared/BENCHOP.md calls the formula the total implied variance, but read that way the Dupire volatility
/// is absurd (≈ 187 near t = 0) and no method comes near the published 3aII values. Read as the implied
/// *variance* (total variance w = T·v), finite differences converge to the published values to ~1e-5, so
/// that is the reading used here.
fn svi_variance(t: f64, x: f64) -> (f64, f64, f64, f64) {
    // Parameters and their T-derivatives (shared/BENCHOP.md, 3aII).
    let st = t.max(1e-12).sqrt();
    let st4 = (t + 0.04).sqrt();
    let a = 0.01 + 0.03 * st4;
    let da = 0.015 / st4;
    let rt = 0.06 * (1.0 - 0.87 * st);
    let drt = -0.06 * 0.87 * 0.5 / st;
    let l = 0.31 * (1.0 - 0.7 * st);
    let dl = -0.31 * 0.7 * 0.5 / st;
    let m = 0.03 + 0.01 * t;
    let dm = 0.01;
    let q = 0.15 * (0.4 + 0.6 * st4);
    let dq = 0.15 * 0.6 * 0.5 / st4;
    let b = 0.5 * (rt - l);
    let db = 0.5 * (drt - dl);
    let c = 0.5 * (rt + l);
    let dc = 0.5 * (drt + dl);
    let y = x - m;
    let root = (y * y + q * q).sqrt();
    let w = a + b * y + c * root;
    let wx = b + c * y / root;
    let wxx = c * q * q / (root * root * root);
    // ∂w/∂T at fixed x: y depends on T through m.
    let droot = (-y * dm + q * dq) / root;
    let wt = da + db * y - b * dm + dc * root + c * droot;
    (w, wt, wx, wxx)
}

/// Dupire local volatility from total implied variance (Gatheral 2006, eq. 1.10), x = log(S / (S₀ e^{rt})).
fn svi_local_vol(r: f64, s0: f64, s: f64, t: f64) -> f64 {
    // The formula has a finite limit as t → 0 but 0/0 terms at t = 0 itself: evaluate just after it.
    let t = t.max(1e-8);
    let x = (s / (s0 * (r * t).exp())).ln();
    let (v, vt, vx, vxx) = svi_variance(t, x);
    let (w, wt, wx, wxx) = (t * v, v + t * vt, t * vx, t * vxx);
    let denom = 1.0 - x / w * wx + 0.25 * (-0.25 - 1.0 / w + x * x / (w * w)) * wx * wx + 0.5 * wxx;
    let var = wt / denom;
    if var.is_finite() && var > 0.0 {
        var.sqrt()
    } else {
        // Outside the arbitrage-free region Dupire's formula fails; fall back to the implied volatility.
        v.max(1e-8).sqrt()
    }
}

pub(crate) fn finite(name: &'static str, v: f64) -> Result<(), Error> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid(name, format!("must be finite, got {v}")))
    }
}

pub(crate) fn positive(name: &'static str, v: f64) -> Result<(), Error> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            name,
            format!("must be a finite positive number, got {v}"),
        ))
    }
}

pub(crate) fn non_negative(name: &'static str, v: f64) -> Result<(), Error> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            name,
            format!("must be finite and non-negative, got {v}"),
        ))
    }
}

fn correlation(name: &'static str, v: f64) -> Result<(), Error> {
    if v.is_finite() && (-1.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(Error::invalid(name, format!("must lie in [-1, 1], got {v}")))
    }
}
