//! Radial basis function generated finite differences (RBF-FD) for the one-factor Black–Scholes PDE.
//!
//! - Space: nodes in S concentrated at the strike by a sinh map (as `fd-nu`), on a domain truncated a
//!   fixed number of standard deviations beyond the strike and the points. At every node the operator
//!   L = ½σ²S²∂²_S + rS∂_S − r is approximated on the 5 nearest nodes by the weights that make it exact
//!   for the Gaussian RBFs φ_j(S) = exp(−(ε|S − S_j|)²) centred at the stencil nodes and for the
//!   polynomials 1, S, S² (Fornberg & Flyer 2015, *A Primer on Radial Basis Functions with Applications
//!   to the Geosciences*, ch. 5; Milovanović & von Sydow 2018, "Radial basis function generated finite
//!   differences for option pricing problems", Comput. Math. Appl. 75). The shape parameter scales with
//!   the local node spacing h, ε = c/h, and the local systems are solved in scaled coordinates, which
//!   keeps them well conditioned; the polynomial terms keep the scheme convergent as h → 0.
//! - Time: BDF2 with a start of implicit Euler quarter steps, which also damps the payoff kink
//!   (the BENCHOP RBF codes use BDF2). The 5-point stencils make the system pentadiagonal: one banded
//!   LU factorisation per step size.
//! - Boundaries: Dirichlet at both ends from the discounted forward intrinsic value (the exercise value
//!   for American options), which is the solution there to far below the target accuracy; a knock-out
//!   barrier inside the truncated domain becomes the end of the domain with V = 0 (as in `fd`).
//! - American exercise: the operator splitting of Ikonen & Toivanen (2004) on each implicit step, as
//!   in `fd`: solve with the Lagrange multiplier λ of the previous step, project V ≥ payoff, update λ.
//! - Values at the evaluation points by the RBF-FD interpolation weights of their 5 nearest nodes.
//! - Richardson extrapolation over the node set refined twice (with twice the time steps), as `fd`.
//!
//! Applies to European (also knock-out) and American calls and puts under Black–Scholes–Merton at spots,
//! without dividends, prices only.

use crate::instrument::{Barrier, Exercise, VanillaOption};
use crate::method::Estimate;
use crate::model::{BlackScholes, Model};
use crate::problem::{Points, Quantity};
use crate::{Cancel, Error, Instrument, Problem};

/// Shape parameter in units of the inverse local spacing.
const SHAPE: f64 = 0.4;
/// Stencil size.
const STENCIL: usize = 5;
/// Truncation of the domain in standard deviations σ√T beyond the strike and the points.
const WIDTH: f64 = 6.0;
/// Levels of the ladder.
const LEVELS: usize = 12;

/// One discretisation setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RbfFdConfig {
    /// Number of node intervals.
    pub nodes: usize,
    /// Time steps.
    pub steps: usize,
}

/// Does RBF-FD price `problem`? European calls and puts under Black–Scholes–Merton, also with a
/// knock-out barrier, and American calls and puts (no barrier), without dividends, at spots, prices only.
pub fn applies(problem: &Problem) -> bool {
    matches!(problem.model(), Model::BlackScholes(_))
        && matches!(problem.instrument(), Instrument::Vanilla(o)
            if o.dividends.is_empty() && (o.exercise == Exercise::European || o.barrier.is_none()))
        && matches!(problem.points(), Points::Spots(_))
        && problem.quantity() == Quantity::Price
}

/// The setting at ladder `level` (0 = cheapest): nodes grow 1.4× per level from 24, time steps are
/// about half the nodes. Each level solves on this node set and on the one refined twice (twice the
/// steps) and Richardson-extrapolates, (4·V_fine − V_coarse)/3: the error of the scheme expands in h²
/// and Δt² (the quadratic terms bound the stencils' consistency order; BDF2 is second order).
///
/// ```
/// use benchop::method::rbf_fd;
/// use benchop::catalogue;
/// let p = &catalogue::case("1aI").unwrap().problem;
/// assert_eq!(rbf_fd::level_config(p, 0).unwrap().nodes, 24);
/// assert!(rbf_fd::level_config(p, 100).is_none());
/// ```
pub fn level_config(problem: &Problem, level: usize) -> Option<RbfFdConfig> {
    if level >= LEVELS || !applies(problem) {
        return None;
    }
    let nodes = (24.0 * 1.4f64.powi(level as i32)).round() as usize;
    Some(RbfFdConfig {
        nodes,
        steps: (nodes / 2).max(8),
    })
}

/// Price every point at ladder `level`; `Ok(None)` past the end of the ladder.
pub fn price_level(problem: &Problem, level: usize, cancel: &Cancel) -> Result<Option<Estimate>, Error> {
    match level_config(problem, level) {
        Some(cfg) => price(problem, &cfg, cancel).map(Some),
        None => Ok(None),
    }
}

/// Price every point of `problem` with the setting `cfg`.
pub fn price(problem: &Problem, cfg: &RbfFdConfig, cancel: &Cancel) -> Result<Estimate, Error> {
    let (Model::BlackScholes(bs), Instrument::Vanilla(opt), Points::Spots(spots)) =
        (problem.model(), problem.instrument(), problem.points())
    else {
        return Err(not_applicable());
    };
    if !applies(problem) {
        return Err(not_applicable());
    }
    if cfg.nodes < 2 * STENCIL || cfg.steps == 0 {
        return Err(Error::invalid(
            "rbf-fd config",
            "needs at least 10 node intervals and 1 time step",
        ));
    }
    let coarse = solve(bs, opt, spots, cfg, 1, cfg.steps, cancel)?;
    let fine = solve(bs, opt, spots, cfg, 2, 2 * cfg.steps, cancel)?;
    let values = coarse
        .iter()
        .zip(&fine)
        .map(|(c, f)| (4.0 * f - c) / 3.0)
        .collect();
    Ok(Estimate {
        values,
        std_errors: None,
        setting: format!(
            "nodes={} and {}, 5-point Gaussian RBF-FD stencils (ε·h={SHAPE}, + quadratics), BDF2 steps={} \
             and {}, Richardson",
            cfg.nodes + 1,
            2 * cfg.nodes + 1,
            cfg.steps,
            2 * cfg.steps
        ),
    })
}

fn not_applicable() -> Error {
    Error::NotApplicable {
        method: "rbf-fd",
        reason: "RBF-FD covers vanilla, knock-out and American prices under Black–Scholes at spots, \
                 without dividends"
            .into(),
    }
}

/// Solve the 8×8 (5 RBFs + 3 polynomial terms) saddle-point system for weights of up to three
/// right-hand sides; columns of `rhs` are operators. Gaussian elimination with partial pivoting.
#[allow(clippy::needless_range_loop)] // dense elimination reads clearest with indices
fn local_weights(xi: &[f64; STENCIL], rhs: &mut [[f64; 8]]) -> Option<()> {
    const M: usize = STENCIL + 3;
    let mut a = [[0.0f64; M]; M];
    for i in 0..STENCIL {
        for j in 0..STENCIL {
            let d = SHAPE * (xi[i] - xi[j]);
            a[i][j] = (-d * d).exp();
        }
        for k in 0..3 {
            let p = xi[i].powi(k as i32);
            a[i][STENCIL + k] = p;
            a[STENCIL + k][i] = p;
        }
    }
    for col in 0..M {
        let piv = (col..M).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[piv][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, piv);
        for r in rhs.iter_mut() {
            r.swap(col, piv);
        }
        for row in col + 1..M {
            let f = a[row][col] / a[col][col];
            if f == 0.0 {
                continue;
            }
            for c in col..M {
                a[row][c] -= f * a[col][c];
            }
            for r in rhs.iter_mut() {
                r[row] -= f * r[col];
            }
        }
    }
    for r in rhs.iter_mut() {
        for row in (0..M).rev() {
            let mut acc = r[row];
            for c in row + 1..M {
                acc -= a[row][c] * r[c];
            }
            r[row] = acc / a[row][row];
        }
    }
    Some(())
}

/// The first stencil node for evaluation position `i` (a node index or the node left of a point).
fn stencil_start(i: usize, n_nodes: usize) -> usize {
    i.saturating_sub(STENCIL / 2).min(n_nodes - STENCIL)
}

/// Weights of (value, d/dS, d²/dS²) at `x` on the 5 nodes from `start`.
fn weights(s: &[f64], start: usize, x: f64) -> Option<[[f64; STENCIL]; 3]> {
    let nodes = &s[start..start + STENCIL];
    let h = (nodes[STENCIL - 1] - nodes[0]) / (STENCIL - 1) as f64;
    let mut xi = [0.0; STENCIL];
    for (q, &sq) in xi.iter_mut().zip(nodes) {
        *q = (sq - x) / h;
    }
    // Right-hand sides: the operators applied to each basis function at ξ = 0.
    let c2 = SHAPE * SHAPE;
    let mut rhs = [[0.0f64; 8]; 3];
    for j in 0..STENCIL {
        let phi = (-c2 * xi[j] * xi[j]).exp();
        rhs[0][j] = phi;
        rhs[1][j] = 2.0 * c2 * xi[j] * phi;
        rhs[2][j] = (4.0 * c2 * c2 * xi[j] * xi[j] - 2.0 * c2) * phi;
    }
    rhs[0][STENCIL] = 1.0;
    rhs[1][STENCIL + 1] = 1.0;
    rhs[2][STENCIL + 2] = 2.0;
    local_weights(&xi, &mut rhs)?;
    let mut out = [[0.0; STENCIL]; 3];
    for j in 0..STENCIL {
        out[0][j] = rhs[0][j];
        out[1][j] = rhs[1][j] / h;
        out[2][j] = rhs[2][j] / (h * h);
    }
    Some(out)
}

/// A banded (pentadiagonal) matrix I − c·L with Dirichlet rows, LU-factorised without pivoting.
struct Banded {
    /// Row i holds columns i − BAND … i + BAND (the one-sided stencils next to the ends reach three
    /// columns away).
    lu: Vec<[f64; 2 * BAND + 1]>,
    n: usize,
}

/// Half bandwidth of the system.
const BAND: usize = STENCIL - 1;

impl Banded {
    fn new(l: &[(usize, [f64; STENCIL])], c: f64) -> Option<Self> {
        let n = l.len() + 2;
        let mut lu = vec![[0.0; 2 * BAND + 1]; n];
        // Row i stores columns i−BAND … i+BAND at offsets 0 … 2·BAND.
        lu[0][BAND] = 1.0;
        lu[n - 1][BAND] = 1.0;
        for (row, (start, w)) in l.iter().enumerate() {
            let i = row + 1;
            lu[i][BAND] = 1.0;
            for (q, &wq) in w.iter().enumerate() {
                let col = start + q;
                lu[i][col + BAND - i] -= c * wq;
            }
        }
        // In-place banded LU (Doolittle), no pivoting: the matrices are I − c·L with small c·L
        // relative to the identity on the diagonal.
        for k in 0..n {
            let piv = lu[k][BAND];
            if piv.abs() < 1e-300 {
                return None;
            }
            for i in k + 1..(k + BAND + 1).min(n) {
                let off = k + BAND - i;
                let f = lu[i][off] / piv;
                if f == 0.0 {
                    continue;
                }
                lu[i][off] = f;
                for j in k + 1..(k + BAND + 1).min(n) {
                    lu[i][j + BAND - i] -= f * lu[k][j + BAND - k];
                }
            }
        }
        Some(Self { lu, n })
    }

    #[allow(clippy::needless_range_loop)] // banded substitution: indices into two arrays
    fn solve(&self, b: &mut [f64]) {
        let n = self.n;
        for i in 0..n {
            let mut acc = b[i];
            for k in i.saturating_sub(BAND)..i {
                acc -= self.lu[i][k + BAND - i] * b[k];
            }
            b[i] = acc;
        }
        for i in (0..n).rev() {
            let mut acc = b[i];
            for k in i + 1..(i + BAND + 1).min(n) {
                acc -= self.lu[i][k + BAND - i] * b[k];
            }
            b[i] = acc / self.lu[i][BAND];
        }
    }
}

fn solve(
    bs: &BlackScholes,
    opt: &VanillaOption,
    spots: &[f64],
    cfg: &RbfFdConfig,
    refine: usize,
    steps: usize,
    cancel: &Cancel,
) -> Result<Vec<f64>, Error> {
    cancel.check()?;
    let (k, t, r, sigma) = (opt.strike, opt.maturity, bs.r, bs.sigma);
    let sd = sigma * t.sqrt();
    let spread = WIDTH * sd + r.abs() * t;
    let pmin = spots.iter().copied().fold(k, f64::min);
    let pmax = spots.iter().copied().fold(k, f64::max);
    let mut lo = pmin * (-spread).exp();
    let mut hi = pmax * spread.exp();
    let (mut lo_out, mut hi_out) = (false, false);
    match opt.barrier {
        Some(Barrier::UpAndOut(b)) if b <= hi * (WIDTH * sd).exp() => {
            hi = b;
            hi_out = true;
        }
        Some(Barrier::DownAndOut(b)) if b >= lo * (-WIDTH * sd).exp() => {
            lo = b;
            lo_out = true;
        }
        _ => {}
    }
    if lo >= hi {
        // Both ends knocked out, or a barrier on the far side of every point: worthless.
        return Ok(vec![0.0; spots.len()]);
    }
    let centre = if k > lo && k < hi { k } else { 0.5 * (lo + hi) };
    let s = crate::method::fd_adi::sinh_nodes(lo, hi, centre, k * sd, cfg.nodes, refine);
    let n = s.len();
    // Operator rows for the interior nodes.
    let mut l = Vec::with_capacity(n - 2);
    for i in 1..n - 1 {
        let start = stencil_start(i, n);
        let w = weights(&s, start, s[i]).ok_or_else(singular)?;
        let (a, b) = (0.5 * sigma * sigma * s[i] * s[i], r * s[i]);
        let mut row = [0.0; STENCIL];
        for q in 0..STENCIL {
            row[q] = a * w[2][q] + b * w[1][q] - if start + q == i { r } else { 0.0 };
        }
        l.push((start, row));
    }
    let kind = opt.kind;
    let american = opt.exercise == Exercise::American;
    let boundary = |x: f64, tau: f64, out: bool| {
        if out {
            0.0
        } else if american {
            kind.payoff(x, k * (-r * tau).exp()).max(kind.payoff(x, k))
        } else {
            kind.payoff(x, k * (-r * tau).exp())
        }
    };
    let payoff: Vec<f64> = s.iter().map(|&x| kind.payoff(x, k)).collect();
    let dt = t / steps as f64;
    const START: usize = 4;
    let (c_euler, c_bdf2) = (dt / START as f64, 2.0 * dt / 3.0);
    let euler = Banded::new(&l, c_euler).ok_or_else(singular)?;
    let bdf2 = Banded::new(&l, c_bdf2).ok_or_else(singular)?;
    let mut v = payoff.clone();
    v[0] = boundary(s[0], 0.0, lo_out);
    v[n - 1] = boundary(s[n - 1], 0.0, hi_out);
    let mut lambda = vec![0.0; n];
    // Ikonen & Toivanen (2004): the solve used c·λ on its right-hand side; V = max(g, Ṽ − cλ),
    // λ ← λ + (V − Ṽ)/c.
    let project = |v: &mut [f64], lambda: &mut [f64], c: f64| {
        for i in 1..n - 1 {
            let tilde = v[i];
            let new = payoff[i].max(tilde - c * lambda[i]);
            lambda[i] += (new - tilde) / c;
            v[i] = new;
        }
    };
    // Implicit Euler quarter steps over the first step.
    let mut prev = v.clone();
    let mut tau = 0.0;
    for _ in 0..START {
        cancel.check()?;
        tau += c_euler;
        if american {
            for i in 1..n - 1 {
                v[i] += c_euler * lambda[i];
            }
        }
        v[0] = boundary(s[0], tau, lo_out);
        v[n - 1] = boundary(s[n - 1], tau, hi_out);
        euler.solve(&mut v);
        if american {
            project(&mut v, &mut lambda, c_euler);
        }
    }
    // BDF2: (3V^{m+1} − 4V^m + V^{m−1})/(2Δt) = L·V^{m+1}.
    let mut rhs = vec![0.0; n];
    for _ in 1..steps {
        cancel.check()?;
        tau += dt;
        for q in 0..n {
            rhs[q] = (4.0 * v[q] - prev[q]) / 3.0;
            if american {
                rhs[q] += c_bdf2 * lambda[q];
            }
        }
        rhs[0] = boundary(s[0], tau, lo_out);
        rhs[n - 1] = boundary(s[n - 1], tau, hi_out);
        bdf2.solve(&mut rhs);
        if american {
            project(&mut rhs, &mut lambda, c_bdf2);
        }
        std::mem::swap(&mut prev, &mut v);
        std::mem::swap(&mut v, &mut rhs);
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(Error::Numerical("RBF-FD solution is not finite".into()));
    }
    spots
        .iter()
        .map(|&x| {
            if (lo_out && x <= lo) || (hi_out && x >= hi) {
                return Ok(0.0);
            }
            let j = s.partition_point(|&y| y <= x).clamp(1, n - 1) - 1;
            let start = stencil_start(j, n);
            let w = weights(&s, start, x).ok_or_else(singular)?;
            Ok((0..STENCIL).map(|q| w[0][q] * v[start + q]).sum())
        })
        .collect()
}

fn singular() -> Error {
    Error::Numerical("RBF-FD local system is singular".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stencil_weights_are_exact_for_quadratics() {
        let s = [1.0, 1.3, 1.7, 2.2, 2.8, 3.5];
        let w = weights(&s, 1, 2.0).unwrap();
        for (deg, (d0, d1, d2)) in [(0, (1.0, 0.0, 0.0)), (1, (2.0, 1.0, 0.0)), (2, (4.0, 4.0, 2.0))] {
            let f = |j: usize| s[1 + j].powi(deg);
            let apply = |row: &[f64; STENCIL]| (0..STENCIL).map(|j| row[j] * f(j)).sum::<f64>();
            assert!((apply(&w[0]) - d0).abs() < 1e-10, "deg {deg} value");
            assert!((apply(&w[1]) - d1).abs() < 1e-9, "deg {deg} d1");
            assert!((apply(&w[2]) - d2).abs() < 1e-8, "deg {deg} d2");
        }
    }
}
