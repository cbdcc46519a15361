//! Monte Carlo with antithetic variates: value ± standard error at every evaluation point.
//!
//! - Reproducibility: paths are split into fixed-size chunks; chunk c draws from a Xoshiro256++
//!   generator seeded (through SplitMix64) with `seed ^ (c · 0x9E3779B97F4A7C15)`, and the per-chunk
//!   sums are reduced in chunk order. The result depends on the seed only, not on the number of rayon
//!   threads.
//! - Antithetic variates (Glasserman 2003, *Monte Carlo Methods in Financial Engineering*, §4.2): each
//!   sample is the mean of the payoffs of a path and its mirror image (normals negated); the standard
//!   error is that of these pair means.
//! - Models: Black–Scholes–Merton and Merton jump diffusion by exact sampling of the terminal value (a
//!   Poisson number of log-normal jumps, Merton 1976); Heston by the quadratic-exponential scheme of
//!   Andersen (2008), "Simple and efficient simulation of the Heston stochastic volatility model",
//!   J. Comput. Finance 11(3), with the central (γ₁ = γ₂ = ½) log-price discretisation and the
//!   variance driven by a uniform (see `QeScheme::pair`); knock-out
//!   barriers under Black–Scholes by exact sampling on a time grid with the Brownian-bridge crossing
//!   probability exp(−2·ln(B/S_i)·ln(B/S_{i+1})/(σ²Δt)) between grid points (Glasserman 2003, §6.4),
//!   which is unbiased for continuous monitoring; local volatility by the Euler scheme in log price
//!   (σ's time-only terms computed once per step, the paths of all points advanced together);
//!   the two-asset spread by exact correlated log-normals. Proportional dividends scale the spot by
//!   (1 − δ) at their dates.
//! - SABR with ρ = 0 and β < 1 (`sabr`): exact log-normal volatility on the time grid, ∫α² dt by the
//!   trapezoid rule, and the forward priced by its conditional expectation given it, the absorbed CEV
//!   price in closed form (conditional Monte Carlo: only the volatility path is random).
//! - Not covered: American exercise (except Black–Scholes puts), Greeks, SABR with ρ ≠ 0 (the
//!   conditional step of Chen, Oosterlee & van der Weide 2012 is first order in the step and biased by
//!   ~4e-2 relative at 4 steps per year on set II; its cost does not fit the ladder).

use rand::{Rng, RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

use crate::instrument::{Barrier, Exercise, OptionKind, VanillaOption};
use crate::method::Estimate;
use crate::model::{Heston, LocalVol, Merton, Model, Sabr, TwoAssetBlackScholes, VolSlice};
use crate::problem::{Points, Quantity};
use crate::{Cancel, Error, Instrument, Problem};

/// One discretisation setting of the Monte Carlo method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McConfig {
    /// Number of paths (antithetic pairs count as two paths); rounded up to an even number.
    pub paths: usize,
    /// Time steps per path for path-dependent or time-stepped models (Heston, barrier, local
    /// volatility); ignored by exact terminal sampling.
    pub steps: usize,
    /// Seed of the random number generators.
    pub seed: u64,
}

/// The seed the ladder uses.
pub const DEFAULT_SEED: u64 = 20_150_701;

/// Antithetic pairs per chunk: the unit of parallel work, of seeding and of cancellation checks.
const CHUNK_PAIRS: usize = 2048;

/// Antithetic pairs of the Longstaff–Schwartz training pass (the regression), independent of the level.
const LSM_TRAINING_PAIRS: usize = 32_768;

/// Path counts of the ladder, cheapest first.
const PATHS: [usize; 6] = [10_000, 40_000, 160_000, 640_000, 2_560_000, 10_000_000];

/// Does Monte Carlo price `problem`? European options under Black–Scholes (with knock-out barriers and
/// proportional dividends), Merton, Heston and local volatility (no barriers there), and the two-asset
/// spread; prices only.
pub fn applies(problem: &Problem) -> bool {
    if problem.quantity() != Quantity::Price {
        return false;
    }
    match (problem.model(), problem.instrument(), problem.points()) {
        (Model::TwoAsset(_), Instrument::Spread(_), Points::SpotPairs(_)) => true,
        (Model::BlackScholes(_), Instrument::Vanilla(opt), Points::Spots(_))
            if opt.exercise == Exercise::American =>
        {
            opt.barrier.is_none() && opt.dividends.is_empty()
        }
        (model, Instrument::Vanilla(opt), Points::Spots(_) | Points::Strikes { .. }) => {
            opt.exercise == Exercise::European
                && match model {
                    Model::BlackScholes(_) => true,
                    Model::Merton(_) | Model::Heston(_) => opt.barrier.is_none(),
                    Model::LocalVol(_) => opt.barrier.is_none(),
                    Model::Sabr(m) => {
                        opt.barrier.is_none() && opt.dividends.is_empty() && crate::method::sabr::supported(m)
                    }
                    _ => false,
                }
        }
        _ => false,
    }
}

/// How a problem is simulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// Exact terminal sampling (Black–Scholes, Merton, spread).
    Exact,
    /// Time-stepped with a cost per step that is moderate (Heston, barrier).
    Stepped,
    /// Euler steps for every point separately with σ evaluated at each (local volatility).
    PerPoint,
    /// Longstaff–Schwartz on exercise dates (American).
    Exercise,
}

fn scheme(problem: &Problem) -> Scheme {
    match (problem.model(), problem.instrument()) {
        (_, Instrument::Vanilla(o)) if o.exercise == Exercise::American => Scheme::Exercise,
        (Model::Heston(_) | Model::Sabr(_), _) => Scheme::Stepped,
        (Model::LocalVol(_), _) => Scheme::PerPoint,
        (Model::BlackScholes(_), Instrument::Vanilla(o)) if o.barrier.is_some() => Scheme::Stepped,
        _ => Scheme::Exact,
    }
}

/// The setting at ladder `level` (0 = cheapest), `None` past the end.
///
/// Paths grow 4× per level (1e4 … 2.56e6, and 1e7 for exact sampling). Time-stepped schemes use
/// steps that grow with the paths so that the discretisation bias stays below the standard error.
pub fn level_config(problem: &Problem, level: usize) -> Option<McConfig> {
    let t = problem.instrument().maturity();
    let per_year = |n: f64| ((n * t).ceil() as usize).max(4);
    let (levels, steps) = match scheme(problem) {
        Scheme::Exact => (6, 1),
        // Heston QE: 8 … 16 steps per year. Barrier: the bridge correction is exact, the grid only
        // needs to resolve the dividend dates.
        Scheme::Stepped => {
            if matches!(problem.model(), Model::Sabr(_)) {
                // One conditional step: the grid only integrates α² (trapezoid, error O(h²)).
                (5, per_year(32.0))
            } else if matches!(problem.model(), Model::Heston(_)) {
                (5, per_year([8.0, 8.0, 16.0, 16.0, 16.0][level.min(4)]))
            } else {
                (5, per_year(8.0))
            }
        }
        // Euler's bias on 3aI is below a third of the standard error at 32 steps. The 3aII surface
        // (SVI, anchored at S₀) needs finer steps: measured with coupled fine/coarse paths, the bias
        // falls by ~2.55× per halving of the step (O(Δt^1.35): the SVI parameters are smooth in √t,
        // not t) and is −2.1e-3, −8e-4, −3e-4, −1.3e-4 relative at S₀ = 110 with 16, 32, 64, 128
        // steps over its half year; the ladder keeps it within ~0.7 standard errors at every level.
        Scheme::PerPoint => {
            let anchored = matches!(problem.model(), Model::LocalVol(lv) if lv.anchored_at_spot());
            let per = if anchored {
                [32.0, 64.0, 128.0, 128.0]
            } else {
                [16.0, 32.0, 32.0, 32.0]
            };
            (4, per_year(per[level.min(3)]))
        }
        // 128 exercise dates per year (at least 16). Bermudan gap plus policy sub-optimality is
        // ~2e-3 relative on 1bI: below 4 standard errors up to 640k paths (the last level), not beyond.
        Scheme::Exercise => (4, ((128.0 * t).ceil() as usize).max(16)),
    };
    if level >= levels {
        return None;
    }
    Some(McConfig {
        paths: PATHS[level],
        steps,
        seed: DEFAULT_SEED,
    })
}

/// Price every point of `problem` at ladder `level`; `Ok(None)` past the end of the ladder.
pub fn price_level(problem: &Problem, level: usize, cancel: &Cancel) -> Result<Option<Estimate>, Error> {
    match level_config(problem, level) {
        Some(cfg) => price(problem, &cfg, cancel).map(Some),
        None => Ok(None),
    }
}

/// What one antithetic pair is simulated for.
#[derive(Debug, Clone)]
enum Task {
    /// S_T = s₀·D·e^X with X from Black–Scholes (σ), Merton or Heston; payoff per (s₀, K) point.
    Terminal {
        model: Model,
        t: f64,
        dividend: f64,
        kind: OptionKind,
        points: Vec<(f64, f64)>,
    },
    /// Black–Scholes knock-out barrier on a time grid with the Brownian-bridge correction.
    Barrier {
        r: f64,
        sigma: f64,
        opt: VanillaOption,
        points: Vec<(f64, f64)>,
    },
    /// Local volatility, Euler in log price, one path per point: `plan` holds (Δt, √Δt, ln(1 − δ)) per
    /// step, `slices[i][j]` σ on step j's left end for point i (one shared row unless anchored at S₀).
    Local {
        r: f64,
        kind: OptionKind,
        plan: Vec<(f64, f64, f64)>,
        slices: Vec<Vec<VolSlice>>,
        points: Vec<(f64, f64)>,
    },
    /// SABR with ρ = 0: exact log-normal volatility, the forward priced by its conditional (absorbed
    /// CEV) expectation given ∫α² dt (see `sabr`); points are (F₀ = S₀e^{rT}, K).
    Sabr {
        m: Sabr,
        t: f64,
        kind: OptionKind,
        points: Vec<(f64, f64)>,
    },
    /// Two-asset spread, exact.
    Spread {
        m: TwoAssetBlackScholes,
        t: f64,
        strike: f64,
        points: Vec<[f64; 2]>,
    },
}

/// Price every point of `problem` with the setting `cfg`.
pub fn price(problem: &Problem, cfg: &McConfig, cancel: &Cancel) -> Result<Estimate, Error> {
    if !applies(problem) {
        return Err(Error::NotApplicable {
            method: "mc",
            reason: "Monte Carlo covers European prices (no Greeks; American puts under Black–Scholes only)"
                .into(),
        });
    }
    if cfg.paths < 2 || cfg.steps == 0 {
        return Err(Error::invalid("mc config", "needs at least 2 paths and 1 step"));
    }
    if let (Model::BlackScholes(bs), Instrument::Vanilla(opt), Points::Spots(spots)) =
        (problem.model(), problem.instrument(), problem.points())
        && opt.exercise == Exercise::American
    {
        let pairs = cfg.paths.div_ceil(2);
        let (values, std_errors) = crate::method::mc_lsm::price(
            bs,
            opt,
            spots,
            pairs,
            LSM_TRAINING_PAIRS,
            cfg.steps,
            cfg.seed,
            cancel,
        )?;
        return Ok(Estimate {
            values,
            std_errors: Some(std_errors),
            setting: format!(
                "Longstaff–Schwartz, paths={} (pricing, antithetic) + {} (training), exercise dates={}, \
                 basis 1,x,x²,x³, seed={}",
                2 * pairs,
                2 * LSM_TRAINING_PAIRS,
                cfg.steps,
                cfg.seed
            ),
        });
    }
    let t = problem.instrument().maturity();
    let r = problem.model().rate();
    let task = match (problem.instrument(), problem.points()) {
        (Instrument::Spread(o), Points::SpotPairs(p)) => {
            let Model::TwoAsset(m) = *problem.model() else {
                unreachable_model()?
            };
            Task::Spread {
                m,
                t,
                strike: o.strike,
                points: p.clone(),
            }
        }
        (Instrument::Vanilla(opt), pts) => {
            let points: Vec<(f64, f64)> = match pts {
                Points::Spots(v) => v.iter().map(|&s| (s, opt.strike)).collect(),
                Points::Strikes { spot, strikes } => strikes.iter().map(|&k| (*spot, k)).collect(),
                Points::SpotPairs(_) => unreachable_model()?,
            };
            match *problem.model() {
                Model::BlackScholes(bs) if opt.barrier.is_some() => Task::Barrier {
                    r,
                    sigma: bs.sigma,
                    opt: opt.clone(),
                    points,
                },
                Model::LocalVol(lv) => local_task(&lv, opt, cfg.steps, points),
                Model::Sabr(m) => Task::Sabr {
                    m,
                    t,
                    kind: opt.kind,
                    points: points.iter().map(|&(s, k)| (s * (r * t).exp(), k)).collect(),
                },
                model => Task::Terminal {
                    model,
                    t,
                    dividend: opt.dividend_factor(),
                    kind: opt.kind,
                    points,
                },
            }
        }
        _ => unreachable_model()?,
    };
    let n_points = problem.points().len();
    let pairs = cfg.paths.div_ceil(2);
    let chunks = pairs.div_ceil(CHUNK_PAIRS);
    let steps = cfg.steps;
    let seed = cfg.seed;
    let sums: Vec<Vec<(f64, f64)>> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            cancel.check()?;
            let count = CHUNK_PAIRS.min(pairs - c * CHUNK_PAIRS);
            let mut rng =
                Xoshiro256PlusPlus::seed_from_u64(seed ^ (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            Ok(run_chunk(&task, steps, count, n_points, &mut rng))
        })
        .collect::<Result<_, Error>>()?;
    // Reduce in chunk order: the same numbers whatever the thread count.
    let mut sum = vec![0.0; n_points];
    let mut sum_sq = vec![0.0; n_points];
    for chunk in &sums {
        for (i, &(a, b)) in chunk.iter().enumerate() {
            sum[i] += a;
            sum_sq[i] += b;
        }
    }
    let disc = (-r * t).exp();
    let n = pairs as f64;
    let values: Vec<f64> = sum.iter().map(|s| disc * s / n).collect();
    let std_errors: Vec<f64> = sum
        .iter()
        .zip(&sum_sq)
        .map(|(s, q)| {
            let mean = s / n;
            let var = ((q / n - mean * mean) * n / (n - 1.0).max(1.0)).max(0.0);
            disc * (var / n).sqrt()
        })
        .collect();
    if values.iter().chain(&std_errors).any(|v| !v.is_finite()) {
        return Err(Error::Numerical("Monte Carlo produced a non-finite value".into()));
    }
    let setting = match scheme(problem) {
        Scheme::Exact => format!(
            "paths={}, antithetic, exact sampling, seed={}",
            2 * pairs,
            cfg.seed
        ),
        _ => format!(
            "paths={}, steps={}, antithetic, seed={}",
            2 * pairs,
            cfg.steps,
            cfg.seed
        ),
    };
    Ok(Estimate {
        values,
        std_errors: Some(std_errors),
        setting,
    })
}

fn unreachable_model<T>() -> Result<T, Error> {
    Err(Error::NotApplicable {
        method: "mc",
        reason: "model, instrument and points do not match".into(),
    })
}

/// Sum and sum of squares of the antithetic pair means of `count` pairs, per point (undiscounted).
fn run_chunk(
    task: &Task,
    steps: usize,
    count: usize,
    n_points: usize,
    rng: &mut Xoshiro256PlusPlus,
) -> Vec<(f64, f64)> {
    let mut acc = vec![(0.0, 0.0); n_points];
    let mut add = |i: usize, a: f64, b: f64| {
        let y = 0.5 * (a + b);
        acc[i].0 += y;
        acc[i].1 += y * y;
    };
    match task {
        Task::Terminal {
            model,
            t,
            dividend,
            kind,
            points,
        } => {
            let mut heston = match model {
                Model::Heston(h) => Some(QeScheme::new(h, *t, steps)),
                _ => None,
            };
            for _ in 0..count {
                let (x1, x2) = match model {
                    Model::BlackScholes(bs) => {
                        let z: f64 = rng.sample(StandardNormal);
                        let drift = (bs.r - 0.5 * bs.sigma * bs.sigma) * t;
                        let v = bs.sigma * t.sqrt() * z;
                        (drift + v, drift - v)
                    }
                    Model::Merton(m) => merton_pair(m, *t, rng),
                    Model::Heston(_) => match heston.as_mut() {
                        Some(qe) => qe.pair(rng),
                        None => (0.0, 0.0),
                    },
                    _ => (0.0, 0.0),
                };
                let (g1, g2) = (dividend * x1.exp(), dividend * x2.exp());
                for (i, &(s0, k)) in points.iter().enumerate() {
                    add(i, kind.payoff(s0 * g1, k), kind.payoff(s0 * g2, k));
                }
            }
        }
        Task::Barrier {
            r,
            sigma,
            opt,
            points,
        } => {
            let Some(barrier) = opt.barrier.map(LogBarrier::new) else {
                return acc;
            };
            // Per step: drift, σ√Δt, σ²Δt and the dividend's log jump (None without a dividend).
            let mut prev = 0.0;
            let plan: Vec<(f64, f64, f64, Option<f64>)> = time_grid(opt, steps)
                .into_iter()
                .map(|(time, div)| {
                    let dt = time - prev;
                    prev = time;
                    let jump = (div > 0.0).then(|| (1.0 - div).ln());
                    (
                        (r - 0.5 * sigma * sigma) * dt,
                        sigma * dt.sqrt(),
                        sigma * sigma * dt,
                        jump,
                    )
                })
                .collect();
            let start: Vec<f64> = points.iter().map(|&(s0, _)| s0.ln()).collect();
            let mut surv = vec![[1.0f64; 2]; points.len()];
            let mut log_s = vec![[0.0f64; 2]; points.len()];
            for _ in 0..count {
                surv.iter_mut().for_each(|s| *s = [1.0; 2]);
                log_s.iter_mut().zip(&start).for_each(|(x, &x0)| *x = [x0; 2]);
                for &(drift, vol, var, jump) in &plan {
                    let z: f64 = rng.sample(StandardNormal);
                    let v = vol * z;
                    for (surv, log_s) in surv.iter_mut().zip(log_s.iter_mut()) {
                        for (a, inc) in [drift + v, drift - v].into_iter().enumerate() {
                            if surv[a] == 0.0 {
                                continue;
                            }
                            let x0 = log_s[a];
                            let x1 = x0 + inc;
                            surv[a] *= barrier.bridge_survival(x0, x1, var);
                            log_s[a] = x1;
                            // A dividend drop at the end of the step (discrete jump, checked directly).
                            if let Some(jump) = jump {
                                log_s[a] += jump;
                                if barrier.distance(log_s[a]) <= 0.0 {
                                    surv[a] = 0.0;
                                }
                            }
                        }
                    }
                }
                for (i, &(_, k)) in points.iter().enumerate() {
                    let p1 = surv[i][0] * opt.kind.payoff(log_s[i][0].exp(), k);
                    let p2 = surv[i][1] * opt.kind.payoff(log_s[i][1].exp(), k);
                    add(i, p1, p2);
                }
            }
        }
        Task::Local {
            r,
            kind,
            plan,
            slices,
            points,
        } => {
            // Step-major over every point's path and its mirror image: the chains are independent, so
            // the latency of σ's square roots and divisions overlaps.
            let row = |i: usize| &slices[i.min(slices.len() - 1)];
            let start: Vec<f64> = points.iter().map(|&(s0, _)| s0.ln()).collect();
            let mut x = vec![[0.0f64; 2]; points.len()];
            for _ in 0..count {
                x.iter_mut().zip(&start).for_each(|(x, &x0)| *x = [x0; 2]);
                for (j, &(dt, sqrt_dt, jump)) in plan.iter().enumerate() {
                    let z: f64 = rng.sample(StandardNormal);
                    for (i, xi) in x.iter_mut().enumerate() {
                        let slice = &row(i)[j];
                        let (sa, sb) = (slice.sigma_log(xi[0]), slice.sigma_log(xi[1]));
                        xi[0] += (r - 0.5 * sa * sa) * dt + sa * sqrt_dt * z + jump;
                        xi[1] += (r - 0.5 * sb * sb) * dt - sb * sqrt_dt * z + jump;
                    }
                }
                for (i, (xi, &(_, k))) in x.iter().zip(points).enumerate() {
                    add(i, kind.payoff(xi[0].exp(), k), kind.payoff(xi[1].exp(), k));
                }
            }
        }
        Task::Sabr { m, t, kind, points } => {
            let h = t / steps as f64;
            let (drift, vol) = (-0.5 * m.nu * m.nu * h, m.nu * h.sqrt());
            let mut z = vec![0.0f64; steps];
            for _ in 0..count {
                z.iter_mut().for_each(|x| *x = rng.sample(StandardNormal));
                // ∫α² dt over the path and its mirror image, by the trapezoid rule on exact α.
                let mut total = [0.0; 2];
                for (a, sign) in [1.0, -1.0].into_iter().enumerate() {
                    let mut alpha = m.alpha;
                    for &zj in &z {
                        let next = alpha * (drift + vol * sign * zj).exp();
                        total[a] += 0.5 * h * (alpha * alpha + next * next);
                        alpha = next;
                    }
                }
                for (i, &(f0, k)) in points.iter().enumerate() {
                    let p1 = crate::method::sabr::cev_price(*kind, f0, k, total[0], m.beta);
                    let p2 = crate::method::sabr::cev_price(*kind, f0, k, total[1], m.beta);
                    add(i, p1, p2);
                }
            }
        }
        Task::Spread { m, t, strike, points } => {
            let rho_c = (1.0 - m.rho * m.rho).max(0.0).sqrt();
            let (v1, v2) = (m.sigma1 * t.sqrt(), m.sigma2 * t.sqrt());
            let (d1, d2) = (
                (m.r - 0.5 * m.sigma1 * m.sigma1) * t,
                (m.r - 0.5 * m.sigma2 * m.sigma2) * t,
            );
            for _ in 0..count {
                let za: f64 = rng.sample(StandardNormal);
                let zb: f64 = rng.sample(StandardNormal);
                let w1 = v1 * za;
                let w2 = v2 * (m.rho * za + rho_c * zb);
                let (g1p, g2p, g1m, g2m) =
                    ((d1 + w1).exp(), (d2 + w2).exp(), (d1 - w1).exp(), (d2 - w2).exp());
                for (i, &[s1, s2]) in points.iter().enumerate() {
                    add(
                        i,
                        (s1 * g1p - s2 * g2p - strike).max(0.0),
                        (s1 * g1m - s2 * g2m - strike).max(0.0),
                    );
                }
            }
        }
    }
    acc
}

/// The local-volatility task: the step plan and σ's time slices at the left end of every step.
fn local_task(lv: &LocalVol, opt: &VanillaOption, steps: usize, points: Vec<(f64, f64)>) -> Task {
    let grid = time_grid(opt, steps);
    let mut plan = Vec::with_capacity(grid.len());
    let mut prev = 0.0;
    for &(time, div) in &grid {
        let dt = time - prev;
        plan.push((dt, dt.sqrt(), if div > 0.0 { (1.0 - div).ln() } else { 0.0 }));
        prev = time;
    }
    let starts: Vec<f64> = std::iter::once(0.0)
        .chain(grid.iter().map(|g| g.0))
        .take(grid.len())
        .collect();
    let row = |s0: f64| starts.iter().map(|&t| lv.slice(t, s0)).collect::<Vec<_>>();
    let slices = if lv.anchored_at_spot() {
        points.iter().map(|&(s0, _)| row(s0)).collect()
    } else {
        vec![row(points.first().map_or(1.0, |p| p.0))]
    };
    Task::Local {
        r: lv.r,
        kind: opt.kind,
        plan,
        slices,
        points,
    }
}

/// The simulation times (end of each step) with the dividend fraction paid at that time (0 if none):
/// `steps` uniform steps with every dividend date inserted.
fn time_grid(opt: &VanillaOption, steps: usize) -> Vec<(f64, f64)> {
    let t = opt.maturity;
    let mut grid: Vec<(f64, f64)> = (1..=steps).map(|i| (t * i as f64 / steps as f64, 0.0)).collect();
    for d in &opt.dividends {
        match grid
            .iter_mut()
            .find(|(time, _)| (time - d.time).abs() <= 1e-12 * t)
        {
            Some(slot) => slot.1 = d.fraction,
            None => grid.push((d.time, d.fraction)),
        }
    }
    grid.sort_by(|a, b| a.0.total_cmp(&b.0));
    grid
}

/// A knock-out barrier in log price: `up` for up-and-out, `level` = ln B.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogBarrier {
    up: bool,
    level: f64,
}

impl LogBarrier {
    pub(crate) fn new(b: Barrier) -> Self {
        match b {
            Barrier::UpAndOut(l) => Self {
                up: true,
                level: l.ln(),
            },
            Barrier::DownAndOut(l) => Self {
                up: false,
                level: l.ln(),
            },
        }
    }

    /// Signed distance to the barrier, positive on the alive side.
    pub(crate) fn distance(&self, x: f64) -> f64 {
        if self.up { self.level - x } else { x - self.level }
    }

    /// Probability that a Brownian bridge in log price from x0 to x1 with variance `var` does not
    /// touch the barrier (0 if an end point is beyond it).
    pub(crate) fn bridge_survival(&self, x0: f64, x1: f64, var: f64) -> f64 {
        let (d0, d1) = (self.distance(x0), self.distance(x1));
        if d0 <= 0.0 || d1 <= 0.0 {
            return 0.0;
        }
        let x = 2.0 * d0 * d1 / var;
        // e^{−40} < 2⁻⁵⁴: 1 − e^{−x} rounds to exactly 1 beyond, so skipping exp changes nothing.
        if x > 40.0 { 1.0 } else { 1.0 - (-x).exp() }
    }
}

/// Log returns of an antithetic pair under Merton: the Poisson jump count is shared, the normals of
/// the diffusion and of the jump sizes are mirrored.
fn merton_pair(m: &Merton, t: f64, rng: &mut Xoshiro256PlusPlus) -> (f64, f64) {
    let kappa = (m.gamma + 0.5 * m.delta * m.delta).exp() - 1.0;
    let drift = (m.r - m.lambda * kappa - 0.5 * m.sigma * m.sigma) * t;
    // Poisson(λT) by inversion.
    let mean = m.lambda * t;
    let u: f64 = rng.random();
    let mut n = 0u32;
    let mut p = (-mean).exp();
    let mut cdf = p;
    while u > cdf && n < 10_000 {
        n += 1;
        p *= mean / n as f64;
        cdf += p;
        if p < 1e-300 && cdf < u {
            break;
        }
    }
    let z: f64 = rng.sample(StandardNormal);
    let zj: f64 = rng.sample(StandardNormal);
    let diffusion = m.sigma * t.sqrt() * z;
    let jumps_mean = n as f64 * m.gamma;
    let jumps_dev = (n as f64).sqrt() * m.delta * zj;
    (
        drift + diffusion + jumps_mean + jumps_dev,
        drift - diffusion + jumps_mean - jumps_dev,
    )
}

/// Andersen's (2008) quadratic-exponential scheme for the Heston variance with the central
/// log-price discretisation, for an antithetic pair of paths.
pub(crate) struct QeScheme {
    steps: usize,
    v0: f64,
    ekt: f64,
    theta: f64,
    c1: f64,
    c2: f64,
    k0: f64,
    k1: f64,
    k2: f64,
    k3: f64,
    k4: f64,
    r_dt: f64,
}

impl QeScheme {
    pub(crate) fn new(h: &Heston, t: f64, steps: usize) -> Self {
        let dt = t / steps as f64;
        let ekt = (-h.kappa * dt).exp();
        let s2 = h.sigma_v * h.sigma_v;
        let (g1, g2) = (0.5, 0.5);
        let k0 = -h.rho * h.kappa * h.theta * dt / h.sigma_v;
        let k1 = g1 * dt * (h.kappa * h.rho / h.sigma_v - 0.5) - h.rho / h.sigma_v;
        let k2 = g2 * dt * (h.kappa * h.rho / h.sigma_v - 0.5) + h.rho / h.sigma_v;
        let k3 = g1 * dt * (1.0 - h.rho * h.rho);
        let k4 = g2 * dt * (1.0 - h.rho * h.rho);
        Self {
            steps,
            v0: h.v0,
            ekt,
            theta: h.theta,
            c1: s2 * ekt * (1.0 - ekt) / h.kappa,
            c2: h.theta * s2 * (1.0 - ekt) * (1.0 - ekt) / (2.0 * h.kappa),
            k0,
            k1,
            k2,
            k3,
            k4,
            r_dt: h.r * dt,
        }
    }

    /// One step from variance v with the variance normal zv and the independent asset normal z:
    /// (increment of ln S, new variance).
    pub(crate) fn step(&self, v: f64, zv: f64, z: f64) -> (f64, f64) {
        let v1 = self.next_variance(v, zv);
        let var = (self.k3 * v + self.k4 * v1).max(0.0);
        (
            self.r_dt + self.k0 + self.k1 * v + self.k2 * v1 + var.sqrt() * z,
            v1,
        )
    }

    /// The initial variance.
    pub(crate) fn v0(&self) -> f64 {
        self.v0
    }

    /// One variance step from v with the normal zv (its uniform is Φ(zv)).
    fn next_variance(&self, v: f64, zv: f64) -> f64 {
        match self.branch(v) {
            Branch::Quadratic { a, b } => a * (b + zv) * (b + zv),
            Branch::Exponential { p, beta } => {
                // With u = Φ(zv): 0 when u ≤ p, else ln((1 − p)/(1 − u))/β, and 1 − u = Φ(−zv). statrs'
                // erfc (relative error ~1e-10, far below any sampling error here) is several times
                // faster than the full-precision Φ of the closed forms.
                let tail = 0.5 * statrs::function::erf::erfc(zv * std::f64::consts::FRAC_1_SQRT_2);
                if tail >= 1.0 - p {
                    0.0
                } else {
                    ((1.0 - p) / tail).ln() / beta
                }
            }
        }
    }

    /// Andersen's moment-matched law of the next variance given v (ψ_c = 1.5).
    fn branch(&self, v: f64) -> Branch {
        const PSI_C: f64 = 1.5;
        let m = self.theta + (v - self.theta) * self.ekt;
        let s2 = v * self.c1 + self.c2;
        let psi = s2 / (m * m);
        if psi <= PSI_C {
            let inv = 2.0 / psi;
            let b2 = inv - 1.0 + (inv * (inv - 1.0)).sqrt();
            Branch::Quadratic {
                a: m / (1.0 + b2),
                b: b2.sqrt(),
            }
        } else {
            let p = (psi - 1.0) / (psi + 1.0);
            Branch::Exponential {
                p,
                beta: (1.0 - p) / m,
            }
        }
    }

    /// Log returns ln(S_T/S₀) of an antithetic pair.
    ///
    /// The variance is driven by a uniform U (its antithetic image 1 − U): the exponential branch uses U
    /// itself and the quadratic one Z_V = Φ⁻¹(U) (Acklam's approximation, relative error < 1.15e-9),
    /// computed at most once per step; the law is that of `step` with Z_V normal and U = Φ(Z_V), without
    /// evaluating Φ, which dominated the cost when the Feller condition fails (most steps exponential).
    fn pair(&mut self, rng: &mut Xoshiro256PlusPlus) -> (f64, f64) {
        let mut out = [0.0; 2];
        let mut v = [self.v0; 2];
        for _ in 0..self.steps {
            let (u, u_comp) = open_uniform(rng);
            let z: f64 = rng.sample(StandardNormal);
            let mut zv = f64::NAN;
            for (a, sign) in [1.0, -1.0].into_iter().enumerate() {
                // This member's uniform and its complement: (U, 1 − U) or (1 − U, U).
                let (ua, ua_comp) = if a == 0 { (u, u_comp) } else { (u_comp, u) };
                let v1 = match self.branch(v[a]) {
                    Branch::Quadratic { a: scale, b } => {
                        if zv.is_nan() {
                            zv = crate::method::qmc::inverse_normal(u);
                        }
                        let x = b + sign * zv;
                        scale * x * x
                    }
                    Branch::Exponential { p, beta } => {
                        if ua <= p {
                            0.0
                        } else {
                            ((1.0 - p) / ua_comp).ln() / beta
                        }
                    }
                };
                let var = (self.k3 * v[a] + self.k4 * v1).max(0.0);
                out[a] += self.r_dt + self.k0 + self.k1 * v[a] + self.k2 * v1 + var.sqrt() * sign * z;
                v[a] = v1;
            }
        }
        (out[0], out[1])
    }
}

/// The two regimes of the QE scheme for the next variance.
#[derive(Debug, Clone, Copy)]
enum Branch {
    /// a·(b + Z_V)², Z_V standard normal.
    Quadratic { a: f64, b: f64 },
    /// 0 with probability p, else exponential with rate β.
    Exponential { p: f64, beta: f64 },
}

/// A uniform U on the open interval (0, 1) on the grid (k + ½)·2⁻⁵², with 1 − U, both exact.
fn open_uniform(rng: &mut Xoshiro256PlusPlus) -> (f64, f64) {
    const SCALE: f64 = 1.0 / (1u64 << 52) as f64;
    let k = (rng.next_u64() >> 12) as f64 + 0.5;
    (k * SCALE, ((1u64 << 52) as f64 - k) * SCALE)
}
