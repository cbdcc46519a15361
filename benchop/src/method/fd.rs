//! Finite differences for one-factor models: the Black–Scholes PDE in S under Black–Scholes–Merton or
//! local volatility, θ-scheme time stepping. Heston and the two-asset spread go to the 2-D ADI solver
//! (`fd_adi`, Hundsdorfer–Verwer with Richardson extrapolation), Merton jump diffusion to the PIDE
//! solver (`fd_pide`, d'Halluin–Forsyth–Vetzal fixed-point iteration with an FFT jump integral).
//!
//! - Space: three-point central differences on a uniform grid in S ([`Grid::Uniform`]) or on a grid
//!   concentrated at the strike by a sinh map, S = K + c·sinh ξ with ξ uniform (Tavella & Randall 2000,
//!   *Pricing Financial Instruments: the Finite Difference Method*, ch. 5). The domain is truncated a
//!   fixed number of standard deviations σ√T (plus the drift) beyond the strike and the evaluation points,
//!   so small-volatility problems get a narrow grid; Dirichlet conditions from the asymptotic values
//!   (discounted forward intrinsic value) hold at the ends, V = 0 at a knock-out barrier.
//! - Time: Crank–Nicolson with Rannacher start (Rannacher 1984; Giles & Carter 2006): implicit Euler
//!   half-steps at maturity and after each dividend date damp the payoff kink. Tridiagonal systems are
//!   solved by the Thomas algorithm.
//! - American exercise: the operator-splitting method of Ikonen & Toivanen (2004), "Operator splitting
//!   methods for American option pricing", Appl. Math. Lett. 17: solve the linear step with the
//!   Lagrange multiplier λ of the previous step, then project V ≥ payoff and update λ.
//! - Discrete proportional dividends: the jump condition V(S, t_d⁻) = V(S(1 − δ), t_d⁺) (Wilmott,
//!   *Paul Wilmott on Quantitative Finance*, ch. 8), by cubic interpolation on the grid.
//! - Greeks: Delta and Gamma by central differences on the grid, Vega by a central difference in σ with
//!   two more solves on the same grid.
//!
//! Values at the evaluation points are read off the grid by four-point (cubic) Lagrange interpolation;
//! on the uniform grid the spacing is chosen so that the strike and the points are nodes when possible.

use crate::instrument::{Barrier, Exercise, OptionKind, VanillaOption};
use crate::method::Estimate;
use crate::model::{LocalVol, Model};
use crate::problem::{Points, Quantity};
use crate::{Cancel, Error, Problem};

/// The spatial grid of the finite-difference solver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grid {
    /// Uniform in S.
    Uniform,
    /// Concentrated at the strike by a sinh map (Tavella & Randall 2000).
    NonUniform,
}

impl Grid {
    fn name(self) -> &'static str {
        match self {
            Grid::Uniform => "uniform",
            Grid::NonUniform => "sinh",
        }
    }
}

/// One discretisation setting of the finite-difference solver.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FdConfig {
    /// Grid type.
    pub grid: Grid,
    /// Target number of space steps (intervals) of the grid.
    pub space_steps: usize,
    /// Number of time steps over the life of the option (split among the dividend periods).
    pub time_steps: usize,
    /// Implicit-Euler half-steps at the start of each period (Rannacher smoothing); 0 gives pure
    /// Crank–Nicolson. Must be even: each pair replaces one Crank–Nicolson step.
    pub rannacher_half_steps: usize,
    /// Truncation of the domain in standard deviations σ√T beyond the strike and the points.
    pub width: f64,
    /// Concentration of the non-uniform grid: c = `stretch`·K·σ√T in S = K + c·sinh ξ.
    pub stretch: f64,
    /// Richardson extrapolation: combine this setting with one of half the space and time steps,
    /// (4·V_fine − V_coarse)/3.
    pub richardson: bool,
}

/// Relative bump of σ for Vega by central differences.
const VEGA_BUMP: f64 = 1e-3;

/// Number of levels in the ladder.
const LEVELS: usize = 16;

/// Does the finite-difference solver price `problem`? Single-asset options (European, American,
/// knock-out barrier, proportional dividends) under Black–Scholes–Merton or local volatility, at spots.
///
/// Two-factor problems go to the ADI solver ([`heston_applies`], [`spread_applies`]) and Merton jump
/// diffusion to the PIDE solver ([`merton_applies`]).
pub fn applies(problem: &Problem, grid: Grid) -> bool {
    if heston_applies(problem, grid)
        || spread_applies(problem, grid)
        || merton_applies(problem, grid)
        || sabr_applies(problem, grid)
    {
        return true;
    }
    let model_ok = matches!(problem.model(), Model::BlackScholes(_) | Model::LocalVol(_));
    let instrument_ok = matches!(problem.instrument(), crate::Instrument::Vanilla(_));
    let points_ok = matches!(problem.points(), Points::Spots(_));
    model_ok && instrument_ok && points_ok
}

/// The setting at ladder `level` (0 = cheapest), `None` past the end of the ladder.
///
/// Space steps: 24 at level 0, for problems that need little (1bII, where every spot is exercised at
/// once, is exact on any grid), then 40 growing by 1.5× per level; time steps are proportional (about
/// one per four space steps, at least 8).
pub fn level_config(problem: &Problem, grid: Grid, level: usize) -> Option<FdConfig> {
    let levels = match problem.model() {
        // Local volatility re-evaluates σ at every node and step; the SVI surface also needs one solve
        // per point. Keep its last level well under a second.
        Model::LocalVol(lv) if lv.anchored_at_spot() => LEVELS - 3,
        Model::LocalVol(_) => LEVELS - 1,
        _ => LEVELS,
    };
    if level >= levels {
        return None;
    }
    let space_steps = match level {
        0 => 24,
        _ => (40.0 * 1.5f64.powi(level as i32 - 1)).round() as usize,
    };
    let time_steps = (space_steps / 4).max(8);
    Some(FdConfig {
        grid,
        space_steps,
        time_steps,
        rannacher_half_steps: 4,
        width: 5.5,
        stretch: match grid {
            Grid::Uniform => 0.0,
            Grid::NonUniform => 1.0,
        },
        richardson: true,
    })
}

/// Price every point of `problem` at ladder `level`; `Ok(None)` past the end of the ladder.
pub fn price_level(
    problem: &Problem,
    grid: Grid,
    level: usize,
    cancel: &Cancel,
) -> Result<Option<Estimate>, Error> {
    if heston_applies(problem, grid) || spread_applies(problem, grid) || sabr_applies(problem, grid) {
        return adi_level(problem, grid, level, cancel);
    }
    if merton_applies(problem, grid) {
        return crate::method::fd_pide::price_level(problem, level, cancel);
    }
    match level_config(problem, grid, level) {
        Some(cfg) => price(problem, &cfg, cancel).map(Some),
        None => Ok(None),
    }
}

/// Does the 2-D ADI solver price this Heston problem? European calls and puts without barrier or
/// dividends at spots, prices only, on the non-uniform grid (a uniform grid in v cannot resolve v = 0
/// at a reasonable cost).
pub fn heston_applies(problem: &Problem, grid: Grid) -> bool {
    grid == Grid::NonUniform
        && matches!(problem.model(), Model::Heston(_))
        && matches!(problem.instrument(), crate::Instrument::Vanilla(o)
            if o.exercise == Exercise::European && o.barrier.is_none() && o.dividends.is_empty())
        && matches!(problem.points(), Points::Spots(_))
        && problem.quantity() == Quantity::Price
}

/// Does the 2-D ADI solver price this SABR problem? European calls and puts without barrier or dividends,
/// at strikes or spots, prices only, on either grid: the sinh grid reaches the far boundary the heavy CEV
/// tails need at little cost; the uniform grid (`fd`) stops nearer and needs more nodes in F.
pub fn sabr_applies(problem: &Problem, _grid: Grid) -> bool {
    matches!(problem.model(), Model::Sabr(_))
        && matches!(problem.instrument(), crate::Instrument::Vanilla(o)
            if o.exercise == Exercise::European && o.barrier.is_none() && o.dividends.is_empty())
        && matches!(problem.points(), Points::Spots(_) | Points::Strikes { .. })
        && problem.quantity() == Quantity::Price
}

/// Does the 2-D ADI solver price this spread problem? Two-asset Black–Scholes spread calls at spot
/// pairs, on either grid.
pub fn spread_applies(problem: &Problem, _grid: Grid) -> bool {
    matches!(problem.model(), Model::TwoAsset(_))
        && matches!(problem.instrument(), crate::Instrument::Spread(_))
        && matches!(problem.points(), Points::SpotPairs(_))
        && problem.quantity() == Quantity::Price
}

/// Does the PIDE solver price this Merton problem? European calls and puts without barrier or dividends
/// at spots, prices only, on the uniform log-price grid (`fd`; the FFT convolution needs it uniform).
pub fn merton_applies(problem: &Problem, grid: Grid) -> bool {
    grid == Grid::Uniform
        && matches!(problem.model(), Model::Merton(_))
        && matches!(problem.instrument(), crate::Instrument::Vanilla(o)
            if o.exercise == Exercise::European && o.barrier.is_none() && o.dividends.is_empty())
        && matches!(problem.points(), Points::Spots(_))
        && problem.quantity() == Quantity::Price
}

/// The ADI ladder for Heston and the spread (space steps grow by ~1.3× per level) and, from
/// `fd_adi::sabr_uniform_ladder`, for SABR on the uniform grid.
fn adi_config(problem: &Problem, grid: Grid, level: usize) -> Option<crate::method::fd_adi::AdiConfig> {
    const LADDER: [(usize, usize, usize); 10] = [
        (20, 10, 10),
        (26, 13, 13),
        (32, 16, 16),
        (50, 25, 25),
        (64, 32, 32),
        (80, 40, 40),
        (100, 50, 50),
        (128, 64, 64),
        (160, 80, 80),
        (200, 100, 100),
    ];
    // Heston: a finer ladder with about 0.36 v steps and 0.3 time steps per S step (the sinh grid in v
    // and the HV scheme with the damped start are accurate well before the S direction is), which lets
    // tuning stop close to the tolerance.
    const HESTON: [(usize, usize, usize); 14] = [
        (24, 9, 8),
        (28, 10, 9),
        (32, 12, 10),
        (36, 13, 11),
        (40, 14, 12),
        (46, 17, 14),
        (52, 19, 16),
        (60, 22, 18),
        (70, 25, 21),
        (80, 29, 24),
        (100, 36, 30),
        (128, 46, 38),
        (160, 58, 48),
        (200, 72, 60),
    ];
    let (nx, ny, steps) = match problem.model() {
        Model::Heston(_) => *HESTON.get(level)?,
        // SABR has ladders of its own: `fd_adi::sabr_level` on the sinh grid (`fd-nu`), this one on the
        // uniform grid.
        Model::Sabr(m) => {
            crate::method::fd_adi::sabr_uniform_ladder(m, problem.instrument().maturity(), level)?
        }
        Model::TwoAsset(_) => {
            let &(nx, _, steps) = LADDER.get(level)?;
            (nx, nx, steps)
        }
        _ => *LADDER.get(level)?,
    };
    Some(crate::method::fd_adi::AdiConfig {
        nx,
        ny,
        steps,
        stretched: grid == Grid::NonUniform,
        richardson: true,
    })
}

fn adi_level(
    problem: &Problem,
    grid: Grid,
    level: usize,
    cancel: &Cancel,
) -> Result<Option<Estimate>, Error> {
    let Some(cfg) = adi_config(problem, grid, level) else {
        return Ok(None);
    };
    let (values, info) = match (problem.model(), problem.instrument(), problem.points()) {
        (Model::Heston(m), crate::Instrument::Vanilla(o), Points::Spots(s)) => {
            crate::method::fd_adi::heston(m, o, s, &cfg, cancel)?
        }
        (Model::TwoAsset(m), crate::Instrument::Spread(o), Points::SpotPairs(p)) => {
            crate::method::fd_adi::spread(m, o, p, &cfg, cancel)?
        }
        (Model::Sabr(m), crate::Instrument::Vanilla(o), points) => {
            // Solve for the forward F = S·e^{rT} and discount at the end.
            let growth = (m.r * o.maturity).exp();
            let pairs: Vec<(f64, f64)> = match points {
                Points::Spots(s) => s.iter().map(|&s| (s * growth, o.strike)).collect(),
                Points::Strikes { spot, strikes } => strikes.iter().map(|&k| (spot * growth, k)).collect(),
                Points::SpotPairs(_) => return Err(not_applicable("SABR is a one-asset model")),
            };
            let (v, info) = crate::method::fd_adi::sabr(m, o.kind, o.maturity, &pairs, &cfg, cancel)?;
            (v.into_iter().map(|x| x / growth).collect(), info)
        }
        _ => return Err(not_applicable("not a Heston, SABR or spread problem")),
    };
    Ok(Some(Estimate {
        values,
        std_errors: None,
        setting: format!(
            "ADI Hundsdorfer–Verwer, grid={}, {}, t-steps={} (2 Douglas half-steps)",
            grid.name(),
            info,
            cfg.steps
        ),
    }))
}

/// Volatility of the PDE: constant or local.
#[derive(Debug, Clone, Copy)]
enum Vol {
    Const(f64),
    Local(LocalVol, f64),
}

impl Vol {
    fn at(&self, s: f64, t: f64) -> f64 {
        match *self {
            Vol::Const(v) => v,
            Vol::Local(lv, s0) => lv.sigma(s, t, s0),
        }
    }

    fn is_const(&self) -> bool {
        matches!(self, Vol::Const(_))
    }

    /// A volatility scale for choosing the domain: the largest σ near the strike and the points.
    fn scale(&self, strike: f64, points: &[f64], maturity: f64) -> f64 {
        match *self {
            Vol::Const(v) => v,
            Vol::Local(lv, s0) => {
                let mut m: f64 = 0.0;
                let mut probe = |s: f64| {
                    // Not at t = 0, where surfaces fitted to implied variance may be singular.
                    for t in [0.25 * maturity, 0.5 * maturity, maturity] {
                        let v = lv.sigma(s, t, s0);
                        if v.is_finite() {
                            m = m.max(v);
                        }
                    }
                };
                for f in [0.7, 0.85, 1.0, 1.2, 1.4] {
                    probe(strike * f);
                }
                points.iter().for_each(|&p| probe(p));
                m.clamp(1e-3, 1.5)
            }
        }
    }
}

/// Price every point of `problem` with the setting `cfg`.
pub fn price(problem: &Problem, cfg: &FdConfig, cancel: &Cancel) -> Result<Estimate, Error> {
    if !applies(problem, cfg.grid) {
        return Err(not_applicable(
            "not a single-asset option under Black–Scholes or local volatility at spots",
        ));
    }
    let min_steps = if cfg.richardson { 8 } else { 4 };
    if cfg.space_steps < min_steps
        || cfg.time_steps < 2
        || cfg.rannacher_half_steps % 2 == 1
        || cfg.width.is_nan()
        || cfg.width <= 0.0
    {
        return Err(Error::invalid(
            "fd config",
            "needs ≥ 4 (8 with Richardson) space steps, ≥ 2 time steps, even Rannacher steps, width > 0",
        ));
    }
    if cfg.grid == Grid::NonUniform && (cfg.stretch.is_nan() || cfg.stretch <= 0.0) {
        return Err(Error::invalid(
            "fd config",
            "the non-uniform grid needs a positive stretch",
        ));
    }
    let crate::Instrument::Vanilla(opt) = problem.instrument() else {
        return Err(not_applicable("not a single-asset option"));
    };
    let Points::Spots(spots) = problem.points() else {
        return Err(not_applicable("evaluation points must be spots"));
    };
    let r = problem.model().rate();
    let quantity = problem.quantity();
    let mut values = vec![0.0; spots.len()];
    // Points already knocked out are worth nothing (and so are their Greeks).
    let alive: Vec<usize> = (0..spots.len()).filter(|&i| is_alive(opt, spots[i])).collect();
    let mut solver = Solver::default();
    let mut info = String::new();
    // Groups of points priced on one grid with one volatility function.
    let groups: Vec<(Vol, Vec<usize>)> = match *problem.model() {
        Model::BlackScholes(bs) => vec![(Vol::Const(bs.sigma), alive.clone())],
        Model::LocalVol(lv) if lv.anchored_at_spot() => alive
            .iter()
            .map(|&i| (Vol::Local(lv, spots[i]), vec![i]))
            .collect(),
        Model::LocalVol(lv) => vec![(
            Vol::Local(lv, spots.first().copied().unwrap_or(1.0)),
            alive.clone(),
        )],
        _ => return Err(not_applicable("model is not Black–Scholes or local volatility")),
    };
    for (vol, members) in groups.iter().filter(|(_, m)| !m.is_empty()) {
        let pts: Vec<f64> = members.iter().map(|&i| spots[i]).collect();
        let scale = vol.scale(opt.strike, &pts, opt.maturity);
        let coarse_steps = if cfg.richardson {
            cfg.space_steps / 2
        } else {
            cfg.space_steps
        };
        let coarse = build_grid(
            opt,
            r,
            scale,
            &pts,
            cfg.grid,
            coarse_steps,
            cfg.width,
            cfg.stretch,
        );
        let coarse_time = if cfg.richardson {
            cfg.time_steps.div_ceil(2)
        } else {
            cfg.time_steps
        };
        let mut out = solver.point_values(opt, r, *vol, &coarse, &pts, quantity, coarse_time, cfg, cancel)?;
        info = coarse.describe();
        if cfg.richardson {
            // Richardson extrapolation in (h, Δt) → (h/2, Δt/2): the error of Rannacher-smoothed
            // Crank–Nicolson expands in h² and Δt² (Giles & Carter 2006).
            let fine = coarse.refine();
            let f = solver.point_values(opt, r, *vol, &fine, &pts, quantity, cfg.time_steps, cfg, cancel)?;
            for (o, f) in out.iter_mut().zip(&f) {
                *o = (4.0 * f - *o) / 3.0;
            }
            info = format!("{}, fine {} nodes, Richardson", info, fine.s.len());
        }
        for (k, &i) in members.iter().enumerate() {
            values[i] = out[k];
        }
    }
    if groups.len() > 1 {
        info.push_str(", one solve per point");
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(Error::Numerical(
            "finite differences produced a non-finite value".into(),
        ));
    }
    Ok(Estimate {
        values,
        std_errors: None,
        setting: format!(
            "grid={}, S-steps={}, t-steps={}, Rannacher half-steps={}{}",
            cfg.grid.name(),
            cfg.space_steps,
            cfg.time_steps,
            cfg.rannacher_half_steps,
            if info.is_empty() {
                String::new()
            } else {
                format!(", {info}")
            }
        ),
    })
}

fn not_applicable(reason: &str) -> Error {
    Error::NotApplicable {
        method: "fd",
        reason: reason.into(),
    }
}

fn is_alive(opt: &VanillaOption, s: f64) -> bool {
    match opt.barrier {
        Some(Barrier::UpAndOut(b)) => s < b,
        Some(Barrier::DownAndOut(b)) => s > b,
        None => true,
    }
}

/// The spatial grid: nodes in S, and the map that generated them (for refinement).
struct Nodes {
    s: Vec<f64>,
    /// `None` for a uniform grid, `Some((centre, c))` for S = centre + c·sinh ξ.
    sinh: Option<(f64, f64)>,
}

impl Nodes {
    fn describe(&self) -> String {
        format!(
            "S∈[{:.4}, {:.4}], {} nodes",
            self.s[0],
            self.s[self.s.len() - 1],
            self.s.len()
        )
    }

    /// The grid with a node inserted in the middle of every interval (in ξ for the sinh map).
    fn refine(&self) -> Nodes {
        let mut s = Vec::with_capacity(2 * self.s.len());
        for w in self.s.windows(2) {
            s.push(w[0]);
            s.push(match self.sinh {
                None => 0.5 * (w[0] + w[1]),
                Some((centre, c)) => {
                    let xi = 0.5 * (((w[0] - centre) / c).asinh() + ((w[1] - centre) / c).asinh());
                    centre + c * xi.sinh()
                }
            });
        }
        s.push(self.s[self.s.len() - 1]);
        Nodes { s, sinh: self.sinh }
    }
}

/// Choose the truncated domain and the nodes.
///
/// The domain spans `width` standard deviations σ√T plus the drift |r|T and the dividend yield beyond
/// the strike and the points. A knock-out barrier inside (or within `width` deviations of) the domain
/// becomes its end, where V = 0; a farther barrier has no effect above ~Φ(−width) and is ignored.
#[allow(clippy::too_many_arguments)]
fn build_grid(
    opt: &VanillaOption,
    r: f64,
    sigma: f64,
    points: &[f64],
    grid: Grid,
    n: usize,
    width: f64,
    stretch: f64,
) -> Nodes {
    let k = opt.strike;
    let t = opt.maturity;
    let sd = sigma * t.sqrt();
    let spread = width * sd + r.abs() * t - opt.dividend_factor().ln();
    let pmin = points.iter().copied().fold(k, f64::min);
    let pmax = points.iter().copied().fold(k, f64::max);
    let mut lo = pmin * (-spread).exp();
    let mut hi = pmax * spread.exp();
    let mut lo_barrier = false;
    let mut hi_barrier = false;
    match opt.barrier {
        Some(Barrier::UpAndOut(b)) if b <= hi * (width * sd).exp() => {
            hi = b;
            hi_barrier = true;
        }
        Some(Barrier::DownAndOut(b)) if b >= lo * (-width * sd).exp() => {
            lo = b;
            lo_barrier = true;
        }
        _ => {}
    }
    // The strike is a node, unless a barrier is on the wrong side of it (then the option is worthless
    // at the strike anyway, or the strike lies outside the domain).
    let centre = if k > lo && k < hi { k } else { 0.5 * (lo + hi) };
    match grid {
        Grid::Uniform => {
            let target = (hi - lo) / n as f64;
            // A spacing that puts the points (and a barrier end) on nodes when they are commensurate with
            // one within a factor √1.5 of the target; else the target itself (the strike stays a node,
            // the points are interpolated). The band keeps the spacings of successive ladder levels
            // (targets 1.5× apart) distinct: rounding g/target alone gave h = g = |S − K| for every
            // target above g/1.5, so one point's grid stopped refining for several levels (which looked
            // converged) and could be far coarser (or, for S ≈ K, far finer) than the target.
            let mut offsets: Vec<f64> = points.iter().map(|&p| (p - centre).abs()).collect();
            if hi_barrier {
                offsets.push(hi - centre);
            }
            if lo_barrier {
                offsets.push(centre - lo);
            }
            let band = 1.5f64.sqrt();
            let h = common_step(&offsets)
                .map(|g| g / (g / (target * band)).ceil().max(1.0))
                .filter(|&h| h > target / band)
                .unwrap_or(target);
            let mut n_lo = ((centre - lo) / h - 1e-9).ceil().max(1.0) as usize;
            let n_hi = ((hi - centre) / h - 1e-9).ceil().max(1.0) as usize;
            if centre - n_lo as f64 * h < 0.0 {
                n_lo = ((centre / h).floor() as usize).max(1);
            }
            let mut s: Vec<f64> = (0..=n_lo + n_hi)
                .map(|i| centre + (i as f64 - n_lo as f64) * h)
                .collect();
            // A barrier end sits exactly on the barrier (the last interval may be shorter).
            if lo_barrier || s[0] < 0.0 {
                s[0] = lo.max(0.0);
            }
            if hi_barrier {
                let last = s.len() - 1;
                s[last] = hi;
            }
            Nodes { s, sinh: None }
        }
        Grid::NonUniform => {
            let c = (stretch * k * sd).max(1e-6 * k);
            let x_lo = ((lo - centre) / c).asinh();
            let x_hi = ((hi - centre) / c).asinh();
            let d = (x_hi - x_lo) / n as f64;
            let n_lo = ((-x_lo / d).round() as usize).clamp(1, n - 1);
            let n_hi = n - n_lo;
            let d_lo = -x_lo / n_lo as f64;
            let d_hi = x_hi / n_hi as f64;
            let mut s: Vec<f64> = (0..=n)
                .map(|i| {
                    let x = if i <= n_lo {
                        (i as f64 - n_lo as f64) * d_lo
                    } else {
                        (i - n_lo) as f64 * d_hi
                    };
                    centre + c * x.sinh()
                })
                .collect();
            s[0] = lo;
            s[n] = hi;
            s[n_lo] = centre;
            Nodes {
                s,
                sinh: Some((centre, c)),
            }
        }
    }
}

/// The largest step g (a divisor of the smallest non-zero offset) of which every offset is a multiple.
fn common_step(offsets: &[f64]) -> Option<f64> {
    let nonzero: Vec<f64> = offsets.iter().copied().filter(|&o| o > 1e-12).collect();
    let min = nonzero.iter().copied().fold(f64::INFINITY, f64::min);
    if !min.is_finite() {
        return None;
    }
    (1..=64).map(|j| min / j as f64).find(|&g| {
        nonzero.iter().all(|&o| {
            let q = o / g;
            (q - q.round()).abs() < 1e-7 * q.max(1.0)
        })
    })
}

/// Work arrays of the time stepping, reused between solves.
#[derive(Default)]
struct Solver {
    /// Finite-difference weights of ∂/∂S and ∂²/∂S² per node: (minus, centre, plus).
    w1: Vec<[f64; 3]>,
    w2: Vec<[f64; 3]>,
    /// ln S per node, for local volatilities evaluated in log-spot.
    log_s: Vec<f64>,
    /// Operator L = ½σ²S²∂² + rS∂ − r per node: (sub, diag, super).
    op: Vec<[f64; 3]>,
    /// Thomas factorisation: sub-diagonal, reciprocal pivots, modified super-diagonal.
    sub: Vec<f64>,
    piv: Vec<f64>,
    sup: Vec<f64>,
    rhs: Vec<f64>,
    lambda: Vec<f64>,
    payoff: Vec<f64>,
    tmp: Vec<f64>,
}

/// Boundary behaviour of the option at time to maturity τ.
struct Ends<'a> {
    opt: &'a VanillaOption,
    r: f64,
    lo_barrier: bool,
    hi_barrier: bool,
}

impl Ends<'_> {
    /// Product of (1 − δ) over the dividends still to be paid after calendar time t.
    fn dividend_factor_after(&self, t: f64) -> f64 {
        self.opt
            .dividends
            .iter()
            .filter(|d| d.time > t)
            .map(|d| 1.0 - d.fraction)
            .product()
    }

    /// The asymptotic value far from the strike: the discounted forward intrinsic value, or the
    /// intrinsic value when exercise is better.
    fn asymptotic(&self, s: f64, tau: f64) -> f64 {
        let t = self.opt.maturity - tau;
        let fwd = s * self.dividend_factor_after(t);
        let disc_k = self.opt.strike * (-self.r * tau).exp();
        let euro = match self.opt.kind {
            OptionKind::Call => (fwd - disc_k).max(0.0),
            OptionKind::Put => (disc_k - fwd).max(0.0),
        };
        match self.opt.exercise {
            Exercise::European => euro,
            Exercise::American => euro.max(self.opt.kind.payoff(s, self.opt.strike)),
        }
    }

    fn lower(&self, s: f64, tau: f64) -> f64 {
        if self.lo_barrier {
            0.0
        } else {
            self.asymptotic(s, tau)
        }
    }

    fn upper(&self, s: f64, tau: f64) -> f64 {
        if self.hi_barrier {
            0.0
        } else {
            self.asymptotic(s, tau)
        }
    }
}

impl Solver {
    /// The quantity at the points `pts` from solves on `nodes` with `time_steps` steps.
    #[allow(clippy::too_many_arguments)]
    fn point_values(
        &mut self,
        opt: &VanillaOption,
        r: f64,
        vol: Vol,
        nodes: &Nodes,
        pts: &[f64],
        quantity: Quantity,
        time_steps: usize,
        cfg: &FdConfig,
        cancel: &Cancel,
    ) -> Result<Vec<f64>, Error> {
        let s = &nodes.s;
        let half = cfg.rannacher_half_steps;
        Ok(match (quantity, vol) {
            (Quantity::Vega, Vol::Const(sigma)) => {
                let h = VEGA_BUMP * sigma;
                let up = self.solve(opt, r, Vol::Const(sigma + h), s, time_steps, half, cancel)?;
                let down = self.solve(opt, r, Vol::Const(sigma - h), s, time_steps, half, cancel)?;
                pts.iter()
                    .map(|&x| (interpolate(s, &up, x) - interpolate(s, &down, x)) / (2.0 * h))
                    .collect()
            }
            (Quantity::Vega, Vol::Local(..)) => {
                return Err(not_applicable("vega is defined under Black–Scholes only"));
            }
            _ => {
                let v = self.solve(opt, r, vol, s, time_steps, half, cancel)?;
                let field = match quantity {
                    Quantity::Delta => derivative(s, &v, 1),
                    Quantity::Gamma => derivative(s, &v, 2),
                    _ => v,
                };
                pts.iter().map(|&x| interpolate(s, &field, x)).collect()
            }
        })
    }

    /// Solve backwards from maturity to today on the nodes `s`; returns V at every node.
    #[allow(clippy::too_many_arguments)]
    fn solve(
        &mut self,
        opt: &VanillaOption,
        r: f64,
        vol: Vol,
        s: &[f64],
        time_steps: usize,
        rannacher_half_steps: usize,
        cancel: &Cancel,
    ) -> Result<Vec<f64>, Error> {
        let n = s.len() - 1;
        let t_mat = opt.maturity;
        let ends = Ends {
            opt,
            r,
            lo_barrier: matches!(opt.barrier, Some(Barrier::DownAndOut(b)) if (s[0] - b).abs() <= 1e-12 * b),
            hi_barrier: matches!(opt.barrier, Some(Barrier::UpAndOut(b)) if (s[n] - b).abs() <= 1e-12 * b),
        };
        self.prepare(s);
        let american = opt.exercise == Exercise::American;
        let mut v: Vec<f64> = s.iter().map(|&x| opt.kind.payoff(x, opt.strike)).collect();
        if ends.lo_barrier {
            v[0] = 0.0;
        }
        if ends.hi_barrier {
            v[n] = 0.0;
        }
        self.payoff.clear();
        self.payoff.extend_from_slice(&v);
        self.lambda.clear();
        self.lambda.resize(n + 1, 0.0);

        // Periods between dividend dates, in time to maturity τ = T − t.
        let mut cuts: Vec<f64> = opt.dividends.iter().rev().map(|d| t_mat - d.time).collect();
        cuts.push(t_mat);
        let mut tau = 0.0;
        let mut factored: Option<(f64, f64)> = None;
        let mut div_index = opt.dividends.len();
        for &end in &cuts {
            let len = end - tau;
            let steps = ((time_steps as f64 * len / t_mat).ceil() as usize).max(rannacher_half_steps / 2 + 1);
            let dt = len / steps as f64;
            let mut schedule = Vec::with_capacity(2);
            if rannacher_half_steps > 0 {
                schedule.push((1.0, 0.5 * dt, rannacher_half_steps));
            }
            schedule.push((0.5, dt, steps - rannacher_half_steps / 2));
            for (theta, h, count) in schedule {
                for _ in 0..count {
                    cancel.check()?;
                    let t_mid = t_mat - (tau + 0.5 * h);
                    if !vol.is_const() || factored != Some((theta, h)) {
                        self.operator(s, r, vol, t_mid);
                        self.factor(theta * h);
                        factored = Some((theta, h));
                    }
                    tau += h;
                    let v_lo = ends.lower(s[0], tau);
                    let v_hi = ends.upper(s[n], tau);
                    self.step(&mut v, theta, h, v_lo, v_hi, american);
                }
            }
            tau = end;
            // Crossing a dividend date backwards: V(S, t_d⁻) = V(S(1 − δ), t_d⁺).
            if div_index > 0 && end < t_mat {
                div_index -= 1;
                let fraction = opt.dividends[div_index].fraction;
                self.tmp.clear();
                for (i, &x) in s.iter().enumerate() {
                    let y = x * (1.0 - fraction);
                    let value = if y < s[0] {
                        if ends.lo_barrier {
                            0.0
                        } else {
                            ends.lower(y, tau - 1e-12 * t_mat)
                        }
                    } else {
                        interpolate(s, &v, y)
                    };
                    self.tmp.push(if american {
                        value.max(self.payoff[i])
                    } else {
                        value
                    });
                }
                v.copy_from_slice(&self.tmp);
                if ends.hi_barrier {
                    v[n] = 0.0;
                }
                self.lambda.iter_mut().for_each(|l| *l = 0.0);
                factored = None;
            }
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(Error::Numerical(
                "finite-difference solution is not finite".into(),
            ));
        }
        Ok(v)
    }

    /// Finite-difference weights of the first and second derivative on the (non-uniform) nodes.
    fn prepare(&mut self, s: &[f64]) {
        let n = s.len() - 1;
        self.w1.clear();
        self.w2.clear();
        self.w1.resize(n + 1, [0.0; 3]);
        self.w2.resize(n + 1, [0.0; 3]);
        self.log_s.clear();
        self.log_s.extend(s.iter().map(|x| x.ln()));
        for i in 1..n {
            let hm = s[i] - s[i - 1];
            let hp = s[i + 1] - s[i];
            self.w1[i] = [
                -hp / (hm * (hm + hp)),
                (hp - hm) / (hm * hp),
                hm / (hp * (hm + hp)),
            ];
            self.w2[i] = [2.0 / (hm * (hm + hp)), -2.0 / (hm * hp), 2.0 / (hp * (hm + hp))];
        }
        for buf in [
            &mut self.sub,
            &mut self.piv,
            &mut self.sup,
            &mut self.rhs,
            &mut self.tmp,
        ] {
            buf.clear();
            buf.resize(n + 1, 0.0);
        }
        self.op.clear();
        self.op.resize(n + 1, [0.0; 3]);
    }

    /// L = ½σ²S²∂²_S + rS∂_S − r at calendar time t.
    #[allow(clippy::needless_range_loop)]
    fn operator(&mut self, s: &[f64], r: f64, vol: Vol, t: f64) {
        let n = s.len() - 1;
        // A local volatility's time-only parts once per time level, not once per node.
        let slice = match vol {
            Vol::Local(lv, s0) => Some(lv.slice(t, s0)),
            Vol::Const(_) => None,
        };
        for i in 1..n {
            let sig = match &slice {
                Some(slice) => slice.sigma_log(self.log_s[i]),
                None => vol.at(s[i], t),
            };
            let a = 0.5 * sig * sig * s[i] * s[i];
            let b = r * s[i];
            let (w1, w2) = (self.w1[i], self.w2[i]);
            self.op[i] = [
                a * w2[0] + b * w1[0],
                a * w2[1] + b * w1[1] - r,
                a * w2[2] + b * w1[2],
            ];
        }
    }

    /// Thomas factorisation of I − c·L on the interior nodes.
    fn factor(&mut self, c: f64) {
        let n = self.op.len() - 1;
        let mut prev_sup = 0.0;
        for i in 1..n {
            let [l, d, u] = self.op[i];
            let a = -c * l;
            let b = 1.0 - c * d;
            let p = 1.0 / (b - a * prev_sup);
            self.sub[i] = a;
            self.piv[i] = p;
            self.sup[i] = -c * u * p;
            prev_sup = self.sup[i];
        }
    }

    /// One θ-step of length h (operator already factored for θh), with the Ikonen–Toivanen splitting
    /// for American exercise.
    #[allow(clippy::needless_range_loop)]
    fn step(&mut self, v: &mut [f64], theta: f64, h: f64, v_lo: f64, v_hi: f64, american: bool) {
        let n = v.len() - 1;
        let e = (1.0 - theta) * h;
        for i in 1..n {
            let [l, d, u] = self.op[i];
            let mut x = v[i] + e * (l * v[i - 1] + d * v[i] + u * v[i + 1]);
            if american {
                x += h * self.lambda[i];
            }
            self.rhs[i] = x;
        }
        let c = theta * h;
        self.rhs[1] += c * self.op[1][0] * v_lo;
        self.rhs[n - 1] += c * self.op[n - 1][2] * v_hi;
        // Forward elimination and back substitution.
        let mut prev = 0.0;
        for i in 1..n {
            prev = (self.rhs[i] - self.sub[i] * prev) * self.piv[i];
            self.rhs[i] = prev;
        }
        v[n - 1] = self.rhs[n - 1];
        for i in (1..n - 1).rev() {
            v[i] = self.rhs[i] - self.sup[i] * v[i + 1];
        }
        v[0] = v_lo;
        v[n] = v_hi;
        if american {
            // Ikonen & Toivanen (2004): V = max(g, Ṽ − hλ), λ ← λ + (V − Ṽ)/h.
            for i in 1..n {
                let tilde = v[i];
                let new = self.payoff[i].max(tilde - h * self.lambda[i]);
                self.lambda[i] += (new - tilde) / h;
                v[i] = new;
            }
        }
    }
}

/// ∂V/∂S (`order` 1) or ∂²V/∂S² (`order` 2) at every node by three-point differences; the end nodes
/// copy their neighbours.
fn derivative(s: &[f64], v: &[f64], order: usize) -> Vec<f64> {
    let n = s.len() - 1;
    let mut out = vec![0.0; n + 1];
    for i in 1..n {
        let hm = s[i] - s[i - 1];
        let hp = s[i + 1] - s[i];
        out[i] = if order == 1 {
            (-hp / (hm * (hm + hp))) * v[i - 1]
                + ((hp - hm) / (hm * hp)) * v[i]
                + (hm / (hp * (hm + hp))) * v[i + 1]
        } else {
            2.0 * (v[i - 1] / (hm * (hm + hp)) - v[i] / (hm * hp) + v[i + 1] / (hp * (hm + hp)))
        };
    }
    out[0] = out[1];
    out[n] = out[n - 1];
    out
}

/// Four-point Lagrange interpolation of `v` on the nodes `s` at `x` (clamped to the domain).
fn interpolate(s: &[f64], v: &[f64], x: f64) -> f64 {
    let n = s.len();
    let j = s.partition_point(|&y| y <= x);
    if j > 0 && j <= n && (s[j - 1] - x).abs() <= 1e-13 * x.abs().max(1.0) {
        return v[j - 1];
    }
    if n < 4 {
        return v[j.clamp(1, n - 1) - 1];
    }
    // Nodes j−2 .. j+1 surround x (s[j−1] ≤ x < s[j]).
    let start = j.saturating_sub(2).min(n - 4);
    let mut acc = 0.0;
    for a in start..start + 4 {
        let mut w = 1.0;
        for b in start..start + 4 {
            if a != b {
                w *= (x - s[b]) / (s[a] - s[b]);
            }
        }
        acc += w * v[a];
    }
    acc
}
