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
            LocalVolSurface::Benchop3aI => benchop_3ai(s, 0.15 * (0.5 + 2.0 * t)),
            LocalVolSurface::SviBenchop3aII => SviSlice::new(self.r, s0, t).sigma_log(s.ln()),
            LocalVolSurface::Formula(f) => formula_vol(&f, s, t),
        }
    }

    /// σ(·, t) on the time slice `t`, evaluated from ln S: the parts that depend on t only are computed
    /// once, so a Monte Carlo step costs one cheap evaluation per path.
    pub(crate) fn slice(&self, t: f64, s0: f64) -> VolSlice {
        match self.surface {
            LocalVolSurface::Benchop3aI => VolSlice::Benchop3aI(0.15 * (0.5 + 2.0 * t)),
            LocalVolSurface::SviBenchop3aII => VolSlice::Svi(SviSlice::new(self.r, s0, t)),
            LocalVolSurface::Formula(f) => VolSlice::Formula(f, t),
        }
    }

    /// `true` when σ depends on the evaluation spot, so each spot needs its own solve.
    pub fn anchored_at_spot(&self) -> bool {
        matches!(self.surface, LocalVolSurface::SviBenchop3aII)
    }
}

/// σ(·, t) of a [`LocalVol`] on one time slice (see [`LocalVol::slice`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum VolSlice {
    /// 3aI with its time factor 0.15·(0.5 + 2t).
    Benchop3aI(f64),
    /// 3aII.
    Svi(SviSlice),
    /// A user's formula at time t.
    Formula(crate::formula::Formula, f64),
}

impl VolSlice {
    /// σ at ln S = `log_s`; equal to [`LocalVol::sigma`] at S = e^{log_s} up to rounding.
    pub(crate) fn sigma_log(&self, log_s: f64) -> f64 {
        match self {
            VolSlice::Benchop3aI(level) => benchop_3ai(log_s.exp(), *level),
            VolSlice::Svi(slice) => slice.sigma_log(log_s),
            VolSlice::Formula(f, t) => formula_vol(f, log_s.exp(), *t),
        }
    }
}

/// The 3aI surface 0.15 + level·(S/100 − 1.2)²/((S/100)² + 1.44), level = 0.15·(0.5 + 2t).
fn benchop_3ai(s: f64, level: f64) -> f64 {
    let x = s / 100.0;
    0.15 + level * (x - 1.2).powi(2) / (x * x + 1.44)
}

/// Validation samples a formula over the pricing domain; between samples a kernel must still get a
/// usable volatility.
fn formula_vol(f: &crate::formula::Formula, s: f64, t: f64) -> f64 {
    let v = f.eval(s, t);
    if v.is_nan() {
        MIN_FORMULA_VOL
    } else {
        v.clamp(MIN_FORMULA_VOL, MAX_FORMULA_VOL)
    }
}

/// Smallest volatility a formula surface yields (smaller values are clamped up to it).
pub const MIN_FORMULA_VOL: f64 = 1e-4;
/// Largest volatility a formula surface yields.
pub const MAX_FORMULA_VOL: f64 = 5.0;

/// The 3aII surface on the time slice t: the SVI parameters and their t-derivatives (shared/BENCHOP.md,
/// 3aII), and the log-forward ln(S₀e^{rt}) that anchors x = log(S/(S₀e^{rt})).
///
/// shared/BENCHOP.md calls the formula the total implied variance, but read that way the Dupire volatility
/// is absurd (≈ 187 near t = 0) and no method comes near the published 3aII values. Read as the implied
/// *variance* v (total variance w = t·v), finite differences converge to the published values to ~1e-5,
/// so that is the reading used here.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SviSlice {
    t: f64,
    log_forward: f64,
    a: f64,
    b: f64,
    c: f64,
    m: f64,
    q2: f64,
    /// ∂v/∂t at fixed x is `vt0 + db·y + dc·root + c·(qdq − dm·y)/root`, y = x − m.
    vt0: f64,
    db: f64,
    dc: f64,
    dm: f64,
    qdq: f64,
}

impl SviSlice {
    fn new(r: f64, s0: f64, t: f64) -> Self {
        // Dupire's formula has a finite limit as t → 0 but 0/0 terms at t = 0 itself: evaluate just after.
        let t = t.max(1e-8);
        let st = t.sqrt();
        let st4 = (t + 0.04).sqrt();
        let (a, da) = (0.01 + 0.03 * st4, 0.015 / st4);
        let (rt, drt) = (0.06 * (1.0 - 0.87 * st), -0.06 * 0.87 * 0.5 / st);
        let (l, dl) = (0.31 * (1.0 - 0.7 * st), -0.31 * 0.7 * 0.5 / st);
        let (m, dm) = (0.03 + 0.01 * t, 0.01);
        let (q, dq) = (0.15 * (0.4 + 0.6 * st4), 0.15 * 0.6 * 0.5 / st4);
        let (b, db) = (0.5 * (rt - l), 0.5 * (drt - dl));
        let (c, dc) = (0.5 * (rt + l), 0.5 * (drt + dl));
        Self {
            t,
            log_forward: s0.ln() + r * t,
            a,
            b,
            c,
            m,
            q2: q * q,
            vt0: da - b * dm,
            db,
            dc,
            dm,
            qdq: q * dq,
        }
    }

    /// Dupire local volatility from the total implied variance (Gatheral 2006, eq. 1.10) at ln S.
    fn sigma_log(&self, log_s: f64) -> f64 {
        let t = self.t;
        let x = log_s - self.log_forward;
        // v(t, x) and ∂v/∂t (at fixed x: y depends on t through m), ∂v/∂x, ∂²v/∂x².
        let y = x - self.m;
        let root = (y * y + self.q2).sqrt();
        let inv_root = 1.0 / root;
        let v = self.a + self.b * y + self.c * root;
        let vx = self.b + self.c * y * inv_root;
        let vxx = self.c * self.q2 * inv_root * inv_root * inv_root;
        let vt = self.vt0 + self.db * y + self.dc * root + self.c * (self.qdq - self.dm * y) * inv_root;
        let (w, wt, wx, wxx) = (t * v, v + t * vt, t * vx, t * vxx);
        let inv_w = 1.0 / w;
        let xw = x * inv_w;
        let denom = 1.0 - xw * wx + 0.25 * (-0.25 - inv_w + xw * xw) * wx * wx + 0.5 * wxx;
        let var = wt / denom;
        if var.is_finite() && var > 0.0 {
            var.sqrt()
        } else {
            // Outside the arbitrage-free region Dupire's formula fails; fall back to the implied volatility.
            v.max(1e-8).sqrt()
        }
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
