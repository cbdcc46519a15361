//! Longstaff–Schwartz least-squares Monte Carlo for American options under Black–Scholes–Merton.
//!
//! Longstaff & Schwartz (2001), "Valuing American options by simulation: a simple least-squares
//! approach", Rev. Financ. Stud. 14(1); the two-pass form of Glasserman (2003), *Monte Carlo Methods in
//! Financial Engineering*, §8.6:
//! 1. Training: an independent set of antithetic GBM paths on `dates` equally spaced exercise dates;
//!    backward induction regresses the realised discounted cash flow of the in-the-money paths on the
//!    basis 1, x, x², x³ (x = S/K) at each date, giving an exercise rule "exercise when the payoff
//!    exceeds the fitted continuation value", stored as the boundary of that region nearest to the
//!    strike (a threshold in S per date, the shape of the optimal rule for a put or call under GBM).
//! 2. Pricing: fresh antithetic paths, simulated forward and stopped by that rule. The estimate is an
//!    unbiased estimate of the value of a feasible exercise policy, hence low-biased for the American
//!    price only through the policy's sub-optimality and the Bermudan restriction to `dates` dates
//!    (both small here, well below the standard error at the ladder's path counts) — and never biased
//!    upwards by fitting and pricing on the same paths.
//!
//! Reproducibility as in [`crate::method::mc`]: chunked Xoshiro256++ streams seeded from the seed and the
//! chunk index, sums reduced in chunk order, so the result is independent of the thread count.

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

use crate::instrument::VanillaOption;
use crate::model::BlackScholes;
use crate::{Cancel, Error};

/// Antithetic pairs per chunk of the pricing pass.
const CHUNK_PAIRS: usize = 2048;

/// Number of basis functions.
const BASIS: usize = 4;

fn basis(x: f64) -> [f64; BASIS] {
    [1.0, x, x * x, x * x * x]
}

/// Regression coefficients per exercise date (index 0 = first date after today); `None` where the
/// regression was not possible (too few in-the-money paths): never exercise there.
type Fit = Vec<Option<[f64; BASIS]>>;

/// The exercise rule of the pricing pass: per date, exercise when ln(S/K) is beyond a threshold (below
/// it for a put, above for a call); ±∞ for "never". The threshold is the boundary of the region where
/// the payoff exceeds the fitted continuation value, found by scanning x = S/K from the strike outwards.
type Policy = Vec<f64>;

fn thresholds(fit: &Fit, put: bool) -> Policy {
    let never = if put { f64::NEG_INFINITY } else { f64::INFINITY };
    fit.iter()
        .map(|beta| {
            let Some(beta) = beta else { return never };
            // Scan from the strike into the money in steps of 1e-4 (up to x = 0.05 or x = 20).
            let mut boundary = never;
            for i in 1..200_000 {
                let x = if put {
                    1.0 - 1e-4 * f64::from(i)
                } else {
                    1.0 + 1e-4 * f64::from(i)
                };
                if x <= 0.05 || x >= 20.0 {
                    break;
                }
                let ex = if put { 1.0 - x } else { x - 1.0 };
                if ex > dot(beta, x) {
                    boundary = x.ln();
                    break;
                }
            }
            boundary
        })
        .collect()
}

fn chunk_rng(seed: u64, chunk: usize, salt: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed ^ salt ^ (chunk as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Fit the exercise policy on `train_pairs` antithetic pairs of paths from `s0`.
#[allow(clippy::too_many_arguments)]
fn fit(
    m: &BlackScholes,
    opt: &VanillaOption,
    s0: f64,
    dates: usize,
    train_pairs: usize,
    seed: u64,
    cancel: &Cancel,
) -> Result<Fit, Error> {
    let k = opt.strike;
    let dt = opt.maturity / dates as f64;
    let drift = (m.r - 0.5 * m.sigma * m.sigma) * dt;
    let vol = m.sigma * dt.sqrt();
    let disc = (-m.r * dt).exp();
    let n = 2 * train_pairs;
    // Paths stored date-major as S/K: x[d·n + p].
    let mut x = vec![0.0f32; dates * n];
    let mut rng = chunk_rng(seed, 0, 0x5EED_7EA1_0000_0001);
    let mut cur = vec![0.0f64; n];
    cur.iter_mut().for_each(|c| *c = (s0 / k).ln());
    for d in 0..dates {
        cancel.check()?;
        for p in 0..train_pairs {
            let z: f64 = StandardNormal.sample(&mut rng);
            cur[2 * p] += drift + vol * z;
            cur[2 * p + 1] += drift - vol * z;
        }
        for p in 0..n {
            x[d * n + p] = cur[p].exp() as f32;
        }
    }
    let payoff = |xv: f64| opt.kind.payoff(xv, 1.0);
    // Cash flow (in units of K) of each path, discounted to the current date during the induction.
    let mut cash: Vec<f64> = (0..n)
        .map(|p| payoff(f64::from(x[(dates - 1) * n + p])))
        .collect();
    let mut policy: Fit = vec![None; dates];
    for d in (0..dates - 1).rev() {
        cancel.check()?;
        cash.iter_mut().for_each(|c| *c *= disc);
        let row = &x[d * n..(d + 1) * n];
        let mut a = [[0.0f64; BASIS]; BASIS];
        let mut b = [0.0f64; BASIS];
        let mut count = 0usize;
        for (p, &xv) in row.iter().enumerate() {
            let xv = f64::from(xv);
            if payoff(xv) <= 0.0 {
                continue;
            }
            count += 1;
            let f = basis(xv);
            for i in 0..BASIS {
                b[i] += f[i] * cash[p];
                for j in 0..BASIS {
                    a[i][j] += f[i] * f[j];
                }
            }
        }
        if count < 4 * BASIS {
            continue;
        }
        let Some(beta) = solve(a, b) else { continue };
        policy[d] = Some(beta);
        for (p, &xv) in row.iter().enumerate() {
            let xv = f64::from(xv);
            let ex = payoff(xv);
            if ex > 0.0 && ex > dot(&beta, xv) {
                cash[p] = ex;
            }
        }
    }
    Ok(policy)
}

fn dot(beta: &[f64; BASIS], x: f64) -> f64 {
    let f = basis(x);
    beta.iter().zip(&f).map(|(b, f)| b * f).sum()
}

/// Gaussian elimination with partial pivoting on the normal equations.
fn solve(mut a: [[f64; BASIS]; BASIS], mut b: [f64; BASIS]) -> Option<[f64; BASIS]> {
    for c in 0..BASIS {
        let piv = (c..BASIS).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[piv][c].abs() < 1e-300 {
            return None;
        }
        a.swap(c, piv);
        b.swap(c, piv);
        let pivot_row = a[c];
        for r in c + 1..BASIS {
            let f = a[r][c] / pivot_row[c];
            for (x, p) in a[r][c..].iter_mut().zip(&pivot_row[c..]) {
                *x -= f * p;
            }
            b[r] -= f * b[c];
        }
    }
    let mut out = [0.0; BASIS];
    for c in (0..BASIS).rev() {
        let s: f64 = (c + 1..BASIS).map(|j| a[c][j] * out[j]).sum();
        out[c] = (b[c] - s) / a[c][c];
    }
    out.iter().all(|v| v.is_finite()).then_some(out)
}

/// Price an American option at `spots` with `pairs` antithetic pairs in the pricing pass; returns values
/// and standard errors.
#[allow(clippy::too_many_arguments)]
pub(crate) fn price(
    m: &BlackScholes,
    opt: &VanillaOption,
    spots: &[f64],
    pairs: usize,
    train_pairs: usize,
    dates: usize,
    seed: u64,
    cancel: &Cancel,
) -> Result<(Vec<f64>, Vec<f64>), Error> {
    let k = opt.strike;
    let dt = opt.maturity / dates as f64;
    let drift = (m.r - 0.5 * m.sigma * m.sigma) * dt;
    let vol = m.sigma * dt.sqrt();
    let put = opt.kind == crate::OptionKind::Put;
    let policies: Vec<Policy> = spots
        .par_iter()
        .map(|&s0| fit(m, opt, s0, dates, train_pairs, seed, cancel).map(|f| thresholds(&f, put)))
        .collect::<Result<_, _>>()?;
    let chunks = pairs.div_ceil(CHUNK_PAIRS);
    let kind = opt.kind;
    let sums: Vec<Vec<(f64, f64)>> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            cancel.check()?;
            let count = CHUNK_PAIRS.min(pairs - c * CHUNK_PAIRS);
            let mut rng = chunk_rng(seed, c, 0x0D1C_E5EE_D000_0002);
            let mut acc = vec![(0.0, 0.0); spots.len()];
            let mut z = vec![0.0f64; dates];
            for _ in 0..count {
                z.iter_mut().for_each(|v| *v = StandardNormal.sample(&mut rng));
                for (i, &s0) in spots.iter().enumerate() {
                    let mut pair = [0.0; 2];
                    for (a, sign) in [1.0, -1.0].into_iter().enumerate() {
                        let mut lx = (s0 / k).ln();
                        let policy = &policies[i];
                        for (d, &zd) in z.iter().enumerate() {
                            lx += drift + sign * vol * zd;
                            let stop = if put { lx <= policy[d] } else { lx >= policy[d] };
                            if stop || d + 1 == dates {
                                let ex = kind.payoff(lx.exp(), 1.0);
                                pair[a] = ex * (-m.r * dt * (d + 1) as f64).exp();
                                break;
                            }
                        }
                    }
                    let y = 0.5 * (pair[0] + pair[1]) * k;
                    acc[i].0 += y;
                    acc[i].1 += y * y;
                }
            }
            Ok(acc)
        })
        .collect::<Result<_, Error>>()?;
    let n = pairs as f64;
    let mut values = Vec::with_capacity(spots.len());
    let mut errors = Vec::with_capacity(spots.len());
    for i in 0..spots.len() {
        let (s, q) = sums.iter().fold((0.0, 0.0), |(s, q), c| (s + c[i].0, q + c[i].1));
        let mean = s / n;
        let var = ((q / n - mean * mean) * n / (n - 1.0).max(1.0)).max(0.0);
        // The decision at t = 0: exercise at once when the intrinsic value exceeds the estimate.
        values.push(mean.max(kind.payoff(spots[i], k)));
        errors.push((var / n).sqrt());
    }
    Ok((values, errors))
}
