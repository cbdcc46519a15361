//! Pricing methods ("engines") and the dispatch from a [`MethodId`] to its kernel.
//!
//! Every method exposes a *ladder* of discretisation levels, cheapest first. `price(problem, level)`
//! prices all evaluation points at one level; [`crate::tune`] walks the ladder to find the cheapest level
//! that reaches a tolerance. Kernels check a [`Cancel`] flag between units of work.

mod american_fp;
mod charfn;
pub mod closed_form;
pub mod cos;
mod cos_bermudan;
pub mod fd;
mod fd_adi;
mod fd_pide;
pub mod fft;
pub mod fgl;
pub mod mc;
mod mc_lsm;
pub(crate) mod normal;
pub mod qmc;
pub mod rbf_fd;
mod sabr;
pub mod tree;

use crate::{Cancel, Error, Problem};

/// The result of pricing every evaluation point of a problem once.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// One value per evaluation point (price or Greek, as the problem asks).
    pub values: Vec<f64>,
    /// Monte Carlo standard error per point; `None` for deterministic methods.
    pub std_errors: Option<Vec<f64>>,
    /// Human-readable discretisation, e.g. `N=64, L=10` or `paths=1e6, seed=42`.
    pub setting: String,
}

/// The methods benchop knows, by public id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum MethodId {
    /// Closed and semi-closed forms (BSM + Greeks, barrier, dividends, Merton series, Heston, Margrabe),
    /// and American puts by the Andersen–Lake–Offengenden fixed-point method.
    ClosedForm,
    /// Fourier-cosine expansion (Fang & Oosterlee 2008).
    Cos,
    /// Carr–Madan FFT of the damped call price (Carr & Madan 1999).
    Fft,
    /// Finite differences, Crank–Nicolson with Rannacher start, uniform grid.
    Fd,
    /// Finite differences on a grid concentrated at the strike.
    FdNu,
    /// Binomial tree with Richardson extrapolation.
    Tree,
    /// Monte Carlo with antithetic variates.
    Mc,
    /// Fourier inversion with Gauss–Laguerre quadrature.
    Fgl,
    /// Quasi-Monte Carlo on scrambled Sobol points.
    Qmc,
    /// Radial basis function generated finite differences.
    RbfFd,
}

impl MethodId {
    /// Every method, in a stable order.
    pub const ALL: [MethodId; 10] = [
        MethodId::ClosedForm,
        MethodId::Cos,
        MethodId::Fft,
        MethodId::Fd,
        MethodId::FdNu,
        MethodId::Tree,
        MethodId::Mc,
        MethodId::Fgl,
        MethodId::Qmc,
        MethodId::RbfFd,
    ];

    /// The public id used by the API and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            MethodId::ClosedForm => "closed-form",
            MethodId::Cos => "cos",
            MethodId::Fft => "fft",
            MethodId::Fd => "fd",
            MethodId::FdNu => "fd-nu",
            MethodId::Tree => "tree",
            MethodId::Mc => "mc",
            MethodId::Fgl => "fgl",
            MethodId::Qmc => "qmc",
            MethodId::RbfFd => "rbf-fd",
        }
    }

    /// One-line description.
    pub fn description(self) -> &'static str {
        match self {
            MethodId::ClosedForm => {
                "Closed and semi-closed forms: Black–Scholes–Merton with Greeks, continuous barriers \
                 (Reiner–Rubinstein), proportional dividends, Merton series, Heston (Lewis integral), \
                 Margrabe; American puts by the Andersen–Lake–Offengenden fixed-point method (spectral \
                 collocation of the exercise boundary, 2016); American calls without dividends at r ≥ 0 as European"
            }
            MethodId::Cos => {
                "Fourier-cosine expansion (Fang & Oosterlee 2008); Bermudan COS with Richardson extrapolation \
                 for American and barrier options (2009); 2-D COS for the spread (Ruijter & Oosterlee 2012)"
            }
            MethodId::Fft => {
                "Carr–Madan FFT of the damped call price with Simpson weights (Carr & Madan 1999)"
            }
            MethodId::Fd => {
                "Finite differences on uniform grids with Richardson extrapolation: Crank–Nicolson with \
                 Rannacher start, American by operator splitting (Ikonen & Toivanen 2004), barriers, dividend \
                 jumps, local volatility; Merton PIDE (d'Halluin, Forsyth & Vetzal 2005); 2-D ADI for the spread \
                 and for SABR (uniform in F and ln α)"
            }
            MethodId::FdNu => {
                "Finite differences on grids concentrated at the strike (sinh stretching), as fd; plus 2-D \
                 Hundsdorfer–Verwer ADI for Heston, SABR (in F and ln α, absorbing at F = 0) and the spread \
                 ('t Hout & Foulon 2010)"
            }
            MethodId::Tree => "Leisen–Reimer binomial tree with Richardson extrapolation",
            MethodId::Mc => {
                "Monte Carlo with antithetic variates, seeded, value ± standard error: exact sampling, \
                 Andersen QE for Heston, Brownian-bridge barriers, Longstaff–Schwartz for American puts, \
                 conditional (closed-form CEV given ∫α²) for SABR with ρ = 0"
            }
            MethodId::Fgl => {
                "Fourier inversion with Gauss–Laguerre quadrature along a saddle-point-damped contour \
                 (Lord & Kahl 2007)"
            }
            MethodId::Qmc => {
                "Randomised quasi-Monte Carlo: 16 Owen-scrambled Sobol sequences, Brownian-bridge paths, \
                 value ± standard error over the scramblings; SABR with ρ = 0 conditionally, as mc"
            }
            MethodId::RbfFd => {
                "Radial basis function generated finite differences: 5-node Gaussian RBF stencils with \
                 quadratic terms on nodes concentrated at the strike, BDF2 in time (Milovanović & von \
                 Sydow 2018)"
            }
        }
    }

    /// Parse a public id (ASCII case-insensitive).
    ///
    /// ```
    /// use benchop::MethodId;
    /// assert_eq!(MethodId::from_name("COS"), Some(MethodId::Cos));
    /// assert_eq!(MethodId::from_name("nope"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<MethodId> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Does the method price this problem?
    pub fn applies_to(self, problem: &Problem) -> bool {
        match self {
            MethodId::ClosedForm => closed_form::applies(problem),
            MethodId::Cos => cos::applies(problem),
            MethodId::Fft => fft::applies(problem),
            MethodId::Fd => fd::applies(problem, fd::Grid::Uniform),
            MethodId::FdNu => fd::applies(problem, fd::Grid::NonUniform),
            MethodId::Tree => tree::applies(problem),
            MethodId::Mc => mc::applies(problem),
            MethodId::Fgl => fgl::applies(problem),
            MethodId::Qmc => qmc::applies(problem),
            MethodId::RbfFd => rbf_fd::applies(problem),
        }
    }

    /// `true` for methods whose estimates carry a statistical error.
    pub fn is_stochastic(self) -> bool {
        matches!(self, MethodId::Mc | MethodId::Qmc)
    }

    /// Price every point at ladder `level` (0 = cheapest). `Ok(None)` past the end of the ladder.
    pub fn price(self, problem: &Problem, level: usize, cancel: &Cancel) -> Result<Option<Estimate>, Error> {
        if !self.applies_to(problem) {
            return Err(Error::NotApplicable {
                method: self.name(),
                reason: "not in its coverage".into(),
            });
        }
        let estimate = match self {
            MethodId::ClosedForm => closed_form::price_level(problem, level, cancel),
            MethodId::Cos => cos::price_level(problem, level, cancel),
            MethodId::Fft => fft::price_level(problem, level, cancel),
            MethodId::Fd => fd::price_level(problem, fd::Grid::Uniform, level, cancel),
            MethodId::FdNu if fd::sabr_applies(problem, fd::Grid::NonUniform) => {
                fd_adi::sabr_level(problem, level, cancel)
            }
            MethodId::FdNu => fd::price_level(problem, fd::Grid::NonUniform, level, cancel),
            MethodId::Tree => tree::price_level(problem, level, cancel),
            MethodId::Mc => mc::price_level(problem, level, cancel),
            MethodId::Fgl => fgl::price_level(problem, level, cancel),
            MethodId::Qmc => qmc::price_level(problem, level, cancel),
            MethodId::RbfFd => rbf_fd::price_level(problem, level, cancel),
        }?;
        if let Some(e) = &estimate
            && (e.values.len() != problem.points().len() || e.values.iter().any(|v| !v.is_finite()))
        {
            return Err(Error::Numerical(format!(
                "{} produced {} values, non-finite or of the wrong count",
                self.name(),
                e.values.len()
            )));
        }
        let mut estimate = estimate;
        if let Some(e) = &mut estimate
            && !self.is_stochastic()
        {
            respect_early_exercise(problem, &mut e.values);
        }
        Ok(estimate)
    }
}

/// An American price is never below its exercise value, but interpolating between grid nodes and
/// Richardson-extrapolating across grids or exercise frequencies can dip a hair under it deep in the
/// exercise region. Deterministic estimates are projected back onto the bound (a no-arbitrage fact, not a
/// tolerance); stochastic ones are left alone, since lifting noisy estimates would bias them.
fn respect_early_exercise(problem: &Problem, values: &mut [f64]) {
    let (crate::Instrument::Vanilla(o), crate::Quantity::Price) = (problem.instrument(), problem.quantity())
    else {
        return;
    };
    if o.exercise != crate::Exercise::American {
        return;
    }
    let exercise: Vec<f64> = match problem.points() {
        crate::Points::Spots(spots) => spots.iter().map(|&s| o.kind.payoff(s, o.strike)).collect(),
        crate::Points::Strikes { spot, strikes } => {
            strikes.iter().map(|&k| o.kind.payoff(*spot, k)).collect()
        }
        crate::Points::SpotPairs(_) => return,
    };
    for (v, x) in values.iter_mut().zip(exercise) {
        *v = v.max(x);
    }
}

impl std::fmt::Display for MethodId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
