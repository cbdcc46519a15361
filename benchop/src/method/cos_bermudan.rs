//! Bermudan COS: early exercise and discrete barrier monitoring by Fourier-cosine expansions (Fang &
//! Oosterlee 2009, "Pricing early-exercise and discrete barrier options by Fourier-cosine series
//! expansions", Numer. Math. 114(1), 27–62).
//!
//! In x = ln(S/K) on a fixed interval [a, b] the value at each exercise (monitoring) date t_m is carried by
//! its cosine coefficients V_k(t_m). Going back one date, the continuation value is
//! c(x) = e^{−rΔt} Σ'_j Re[φ(u_j; Δt) e^{iu_j(x−a)}] V_j(t_{m+1}), u_j = jπ/(b − a) (eq. (3.3)), and the new
//! coefficients split at the early-exercise point x* (c = g, found by Newton's method):
//! V_k(t_m) = G_k(exercise region) + C_k(continuation region) (eq. (3.9)). G_k is the payoff's analytic
//! coefficient (χ, ψ of eqs. (22)–(23) of Fang & Oosterlee 2008); C_k = Re Σ_j w_j M_{kj} with
//! M = (Hankel + Toeplitz)/π in the notation of §3.2, multiplied in O(N log N) by three FFTs of length 2N
//! (the reversal the Hankel part needs folds into the same transform of w, so one inverse FFT serves both).
//!
//! - American options: Bermudan prices with M = 2^d, 2^{d+1}, 2^{d+2}, 2^{d+3} equally spaced dates are
//!   combined by the 4-point repeated Richardson extrapolation of Chang, Chung & Stapleton (2007) as used by
//!   Fang & Oosterlee (2009, eq. (5.1)): v = (64 v(2^{d+3}) − 56 v(2^{d+2}) + 14 v(2^{d+1}) − v(2^d))/21.
//!   All four share the interval and N. Immediate exercise at t = 0 is allowed, so a deep in-the-money put
//!   (BENCHOP 1bII) prices at exactly K − S.
//! - American calls with discrete proportional dividends and r ≥ 0: early exercise is only ever optimal
//!   just before a dividend (Merton 1973), so the exact Bermudan problem has those dates, T and t = 0; the
//!   dividend enters the next step's characteristic function as the shift e^{iu ln(1 − δ)}. No extrapolation.
//! - Continuously monitored up-and-out calls: the value is set to zero beyond the barrier at M discrete
//!   monitoring dates (eq. (4.2)); the discrete-monitoring error is an expansion in √Δt (Broadie, Glasserman
//!   & Kou 1997; Howison & Steinberg 2007), removed by Richardson extrapolation over M/8, M/4, M/2, M (eliminating √Δt, Δt, Δt^{3/2}).
//!
//! The interval is [min x₀ + c₁ − L√c₂, max x₀ + c₁ + L√c₂] with the cumulants of ln(S_T/S₀) over the whole
//! maturity (eq. (49) of Fang & Oosterlee 2008), shared by every evaluation point; N is chosen so that the
//! one-step characteristic function is resolved, N ≈ q·(b − a)/√(c₂(Δt_min)), with q the ladder's density.

use std::f64::consts::PI;
use std::sync::Arc;

use num_complex::Complex64;
use rustfft::{Fft, FftPlanner};

use super::charfn::LogReturn;
use crate::instrument::{Barrier, Exercise, Instrument, OptionKind, VanillaOption};
use crate::method::Estimate;
use crate::model::Model;
use crate::problem::Points;
use crate::{Cancel, Error, Problem, Quantity};

/// Truncation parameter L of the interval (Fang & Oosterlee 2009 use L = 8–10 for early exercise).
const TRUNCATION_L: f64 = 10.0;

/// Largest N the kernel accepts (the ladders stay far below).
const MAX_TERMS: usize = 1 << 16;

/// Re-synchronise the e^{imθ} recurrences with a direct evaluation every this many steps.
const RESYNC: usize = 32;

/// What the Bermudan engine prices.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// American option without dividends: Richardson over Bermudan prices.
    American,
    /// American call with discrete proportional dividends and r ≥ 0: exercise just before the dividends.
    AmericanCallDividends,
    /// Continuously monitored knock-out barrier: Richardson over discretely monitored prices.
    Barrier(Barrier),
}

fn classify(problem: &Problem) -> Option<(Kind, &VanillaOption, &[f64])> {
    let (Model::BlackScholes(m), Instrument::Vanilla(o), Points::Spots(spots)) =
        (problem.model(), problem.instrument(), problem.points())
    else {
        return None;
    };
    if problem.quantity() != Quantity::Price {
        return None;
    }
    let kind = match (o.exercise, o.barrier) {
        // A call with r ≥ 0 is only exercised just before dividends (without any it is European).
        (Exercise::American, None) if o.kind == OptionKind::Call && m.r >= 0.0 => Kind::AmericanCallDividends,
        (Exercise::American, None) if o.dividends.is_empty() => Kind::American,
        // Up-and-out calls only: a down-and-out put (payoff jumping at the barrier on the exercise side) made
        // the √Δt extrapolation erratic in tests, so it is not claimed.
        (Exercise::European, Some(b @ Barrier::UpAndOut(_)))
            if o.dividends.is_empty() && o.kind == OptionKind::Call =>
        {
            Kind::Barrier(b)
        }
        _ => return None,
    };
    Some((kind, o, spots))
}

/// Does the Bermudan COS engine price `problem`? Prices under Black–Scholes–Merton at spots of American
/// puts without dividends, American calls (with or without proportional dividends) when r ≥ 0 or without
/// dividends, and continuously monitored up-and-out calls without dividends.
pub(crate) fn applies(problem: &Problem) -> bool {
    classify(problem).is_some()
}

/// American ladder: (d, q): the Richardson base 2^d and the density q.
const AMERICAN_LADDER: [(u32, f64); 7] = [
    (1, 0.75),
    (2, 0.75),
    (2, 1.0),
    (3, 1.0),
    (4, 1.0),
    (5, 1.0),
    (6, 1.0),
];

/// Ladder of the dividend call: density q with one date per dividend.
const DIVIDEND_LADDER: [f64; 8] = [0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0];

/// Barrier ladder: (finest M, q); the extrapolation uses M/8, M/4, M/2 and M monitoring dates.
const BARRIER_LADDER: [(usize, f64); 4] = [(64, 1.5), (128, 1.5), (256, 1.5), (512, 1.5)];

/// Price every point at ladder `level`; `Ok(None)` past the end of the ladder.
pub(crate) fn price_level(
    problem: &Problem,
    level: usize,
    cancel: &Cancel,
) -> Result<Option<Estimate>, Error> {
    let Some((kind, option, spots)) = classify(problem) else {
        return Err(not_applicable());
    };
    let Model::BlackScholes(model) = *problem.model() else {
        return Err(not_applicable());
    };
    let law = |t: f64| LogReturn::BlackScholes(model, t);
    match kind {
        Kind::American => {
            let Some(&(d, q)) = AMERICAN_LADDER.get(level) else {
                return Ok(None);
            };
            american(&law, option, spots, d, q, cancel).map(Some)
        }
        Kind::AmericanCallDividends => {
            let Some(&q) = DIVIDEND_LADDER.get(level) else {
                return Ok(None);
            };
            dividend_call(&law, option, spots, q, cancel).map(Some)
        }
        Kind::Barrier(barrier) => {
            let Some(&(m, q)) = BARRIER_LADDER.get(level) else {
                return Ok(None);
            };
            knock_out(&law, option, barrier, spots, m, q, cancel).map(Some)
        }
    }
}

fn not_applicable() -> Error {
    Error::NotApplicable {
        method: "cos",
        reason: "Bermudan COS prices American options and knock-out barriers under BSM".into(),
    }
}

/// The interval [a, b] in x = ln(S/K) for every spot, and N for the finest step `dt_min`.
fn interval(
    law: &dyn Fn(f64) -> LogReturn,
    option: &VanillaOption,
    spots: &[f64],
    dt_min: f64,
    density: f64,
) -> Result<(f64, f64, usize), Error> {
    let cum = law(option.maturity).cumulants();
    let half = TRUNCATION_L * (cum.c2 + cum.c4.sqrt()).sqrt();
    let xs = spots.iter().map(|&s| (s / option.strike).ln());
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
        (l.min(x), h.max(x))
    });
    let a = lo + cum.c1.min(0.0) - half;
    let b = hi + cum.c1.max(0.0) + half;
    let step_sd = law(dt_min).cumulants().c2.sqrt();
    let n = (density * (b - a) / step_sd).ceil();
    if !(a.is_finite() && b.is_finite() && b > a && n.is_finite()) {
        return Err(Error::Numerical("degenerate COS interval".into()));
    }
    if n > MAX_TERMS as f64 {
        return Err(Error::Numerical(format!(
            "Bermudan COS would need {n} terms (limit {MAX_TERMS})"
        )));
    }
    let n = ((n as usize).max(16) + 1) & !1;
    Ok((a, b, n))
}

/// The cosine grid on [a, b] with its FFT plans and buffers.
struct Grid {
    n: usize,
    a: f64,
    b: f64,
    u: Vec<f64>,
    fwd: Arc<dyn Fft<f64>>,
    inv: Arc<dyn Fft<f64>>,
    scratch: Vec<Complex64>,
    buf_w: Vec<Complex64>,
    buf_g: Vec<Complex64>,
    buf_h: Vec<Complex64>,
}

/// e^{imθ} for m = 0..len by recurrence, re-synchronised every [`RESYNC`] terms.
fn cis_table(theta: f64, len: usize, out: &mut Vec<Complex64>) {
    out.clear();
    let step = Complex64::from_polar(1.0, theta);
    let mut e = Complex64::new(1.0, 0.0);
    for m in 0..len {
        if m % RESYNC == 0 {
            e = Complex64::from_polar(1.0, m as f64 * theta);
        }
        out.push(e);
        e *= step;
    }
}

impl Grid {
    fn new(n: usize, a: f64, b: f64) -> Self {
        let mut planner = FftPlanner::new();
        let fwd = planner.plan_fft_forward(2 * n);
        let inv = planner.plan_fft_inverse(2 * n);
        let scratch_len = fwd.get_inplace_scratch_len().max(inv.get_inplace_scratch_len());
        let zero = Complex64::new(0.0, 0.0);
        Self {
            n,
            a,
            b,
            u: (0..n).map(|k| k as f64 * PI / (b - a)).collect(),
            fwd,
            inv,
            scratch: vec![zero; scratch_len],
            buf_w: vec![zero; 2 * n],
            buf_g: vec![zero; 2 * n],
            buf_h: vec![zero; 2 * n],
        }
    }

    fn theta(&self, x: f64) -> f64 {
        PI * (x - self.a) / (self.b - self.a)
    }

    /// c(x) = Re Σ_j w_j e^{iu_j(x−a)} and its derivative in x.
    fn eval(&self, w: &[Complex64], x: f64) -> (f64, f64) {
        let theta = self.theta(x);
        let step = Complex64::from_polar(1.0, theta);
        let mut e = Complex64::new(1.0, 0.0);
        let (mut value, mut slope) = (0.0, 0.0);
        for (j, (wj, &u)) in w.iter().zip(&self.u).enumerate() {
            if j % RESYNC == 0 {
                e = Complex64::from_polar(1.0, j as f64 * theta);
            }
            let z = wj * e;
            value += z.re;
            slope -= u * z.im;
            e *= step;
        }
        (value, slope)
    }

    /// out_k += Re Σ_j w_j M_{kj}(x₁, x₂): the cosine coefficients of the continuation value over [x₁, x₂]
    /// (Fang & Oosterlee 2009, eqs. (3.10)–(3.13)), by FFT.
    fn add_continuation(&mut self, w: &[Complex64], x1: f64, x2: f64, out: &mut [f64]) {
        if x2 <= x1 {
            return;
        }
        let n = self.n;
        let len = 2 * n;
        let (z1, z2) = (self.theta(x1), self.theta(x2));
        // F(m) = ∫_{z₁}^{z₂} e^{imz} dz for m = 0..2N−1; F(−m) = conj F(m).
        let mut e1 = Vec::with_capacity(len);
        let mut e2 = Vec::with_capacity(len);
        cis_table(z1, len, &mut e1);
        cis_table(z2, len, &mut e2);
        let f = |m: usize| -> Complex64 {
            if m == 0 {
                Complex64::new(z2 - z1, 0.0)
            } else {
                (e2[m] - e1[m]) * Complex64::new(0.0, -1.0 / m as f64)
            }
        };
        // Toeplitz part T_k = Σ_j F(j − k) w_j: g[m] = F(−m), g[2N − m] = F(m).
        self.buf_g[0] = f(0);
        self.buf_g[n] = Complex64::new(0.0, 0.0);
        for m in 1..n {
            let fm = f(m);
            self.buf_g[m] = fm.conj();
            self.buf_g[len - m] = fm;
        }
        // Hankel part H_k = Σ_j F(j + k) w_j: h[m] = F(m).
        for m in 0..len {
            self.buf_h[m] = f(m);
        }
        self.buf_w[..n].copy_from_slice(w);
        self.buf_w[n..].fill(Complex64::new(0.0, 0.0));
        self.fwd.process_with_scratch(&mut self.buf_g, &mut self.scratch);
        self.fwd.process_with_scratch(&mut self.buf_h, &mut self.scratch);
        self.fwd.process_with_scratch(&mut self.buf_w, &mut self.scratch);
        // T = IFFT(G·W), H = IFFT(Ĥ·W(−f)): one inverse transform of the sum.
        for fi in 0..len {
            let mirror = self.buf_w[(len - fi) % len];
            self.buf_g[fi] = self.buf_g[fi] * self.buf_w[fi] + self.buf_h[fi] * mirror;
        }
        self.inv.process_with_scratch(&mut self.buf_g, &mut self.scratch);
        let scale = 1.0 / (PI * len as f64);
        for (o, r) in out.iter_mut().zip(&self.buf_g[..n]) {
            *o += r.re * scale;
        }
    }

    /// out_k += 2/(b − a) ∫_{x₁}^{x₂} g(x) cos(u_k(x − a)) dx for the payoff g = K(e^x − 1) (call) or
    /// K(1 − e^x) (put) (Fang & Oosterlee 2008, eqs. (22)–(23)).
    fn add_payoff(&self, kind: OptionKind, strike: f64, x1: f64, x2: f64, out: &mut [f64]) {
        if x2 <= x1 {
            return;
        }
        let sign = match kind {
            OptionKind::Call => 1.0,
            OptionKind::Put => -1.0,
        };
        let c = sign * 2.0 * strike / (self.b - self.a);
        let (ex1, ex2) = (x1.exp(), x2.exp());
        let mut t1 = Vec::with_capacity(self.n);
        let mut t2 = Vec::with_capacity(self.n);
        cis_table(self.theta(x1), self.n, &mut t1);
        cis_table(self.theta(x2), self.n, &mut t2);
        for (k, o) in out.iter_mut().enumerate() {
            let u = self.u[k];
            let (c1, s1, c2, s2) = (t1[k].re, t1[k].im, t2[k].re, t2[k].im);
            let chi = (c2 * ex2 - c1 * ex1 + u * (s2 * ex2 - s1 * ex1)) / (1.0 + u * u);
            let psi = if k == 0 { x2 - x1 } else { (s2 - s1) / u };
            *o += c * (chi - psi);
        }
    }
}

fn payoff(kind: OptionKind, strike: f64, x: f64) -> (f64, f64) {
    let ex = x.exp();
    match kind {
        OptionKind::Call if x > 0.0 => (strike * (ex - 1.0), strike * ex),
        OptionKind::Put if x < 0.0 => (strike * (1.0 - ex), -strike * ex),
        _ => (0.0, 0.0),
    }
}

/// The early-exercise point x* where the continuation value meets the payoff, by Newton's method safeguarded
/// by bisection (Fang & Oosterlee 2009, §3.1). Returns the boundary of the exercise region: a put is exercised
/// on [a, x*], a call on [x*, b].
fn exercise_point(grid: &Grid, w: &[Complex64], kind: OptionKind, strike: f64, guess: f64) -> f64 {
    let f = |x: f64| {
        let (c, dc) = grid.eval(w, x);
        let (g, dg) = payoff(kind, strike, x);
        (c - g, dc - dg)
    };
    // Bracket: the exercise side of the strike, inside [a, b].
    let (mut lo, mut hi) = match kind {
        OptionKind::Put => (grid.a, grid.b.min(0.0)),
        OptionKind::Call => (grid.a.max(0.0), grid.b),
    };
    if hi <= lo {
        return match kind {
            OptionKind::Put => grid.a,
            OptionKind::Call => grid.b,
        };
    }
    // f < 0 (exercise) on the far side, f > 0 (continue) at the strike.
    let (far, near) = match kind {
        OptionKind::Put => (lo, hi),
        OptionKind::Call => (hi, lo),
    };
    if f(far).0 >= 0.0 {
        return far;
    }
    if f(near).0 <= 0.0 {
        return near;
    }
    let mut x = guess.clamp(lo, hi);
    if !(x > lo && x < hi) {
        x = 0.5 * (lo + hi);
    }
    let tol = 1e-14 * (grid.b - grid.a);
    for _ in 0..100 {
        let (v, dv) = f(x);
        // Keep the bracket: the exercise side has f < 0.
        let exercise_side = v < 0.0;
        match (kind, exercise_side) {
            (OptionKind::Put, true) | (OptionKind::Call, false) => lo = x,
            _ => hi = x,
        }
        let newton = x - v / dv;
        let next = if dv != 0.0 && newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if (next - x).abs() < tol || hi - lo < tol {
            return next;
        }
        x = next;
    }
    x
}

/// e^{−rΔt}φ(u_j; Δt)·shift, with the j = 0 term halved (the Σ' of the COS formula).
fn step_factor(grid: &Grid, law: &LogReturn, shift: f64) -> Vec<Complex64> {
    let disc = -law.rate() * law.maturity();
    let mut v: Vec<Complex64> = grid
        .u
        .iter()
        .map(|&u| (law.log_cf(Complex64::new(u, 0.0)) + Complex64::new(disc, u * shift)).exp())
        .collect();
    v[0] *= 0.5;
    v
}

/// What happens at each date.
#[derive(Debug, Clone, Copy)]
enum DateRule {
    /// max(payoff, continuation).
    Exercise,
    /// Continuation on [lo, hi] (the alive region), zero outside.
    Alive(f64, f64),
}

/// Backward recursion over the steps (step m runs from date m to date m + 1; the last date is maturity) and
/// the value at each x₀ at date 0.
fn backward(
    grid: &mut Grid,
    option: &VanillaOption,
    factors: &[&[Complex64]],
    rule: DateRule,
    xs: &[f64],
    cancel: &Cancel,
) -> Result<Vec<f64>, Error> {
    let (kind, strike) = (option.kind, option.strike);
    let n = grid.n;
    let (a, b) = (grid.a, grid.b);
    let (alive_lo, alive_hi) = match rule {
        DateRule::Exercise => (a, b),
        DateRule::Alive(lo, hi) => (lo.max(a), hi.min(b)),
    };
    let mut v = vec![0.0; n];
    match kind {
        OptionKind::Call => grid.add_payoff(kind, strike, alive_lo.max(0.0), alive_hi, &mut v),
        OptionKind::Put => grid.add_payoff(kind, strike, alive_lo, alive_hi.min(0.0), &mut v),
    }
    let mut w = vec![Complex64::new(0.0, 0.0); n];
    let mut x_star = match kind {
        OptionKind::Put => 0.0,
        OptionKind::Call => 0.0,
    };
    for m in (0..factors.len()).rev() {
        cancel.check()?;
        for ((wj, f), vj) in w.iter_mut().zip(factors[m]).zip(&v) {
            *wj = f * vj;
        }
        if m == 0 {
            break;
        }
        v.fill(0.0);
        match rule {
            DateRule::Exercise => {
                x_star = exercise_point(grid, &w, kind, strike, x_star);
                match kind {
                    OptionKind::Put => {
                        grid.add_payoff(kind, strike, a, x_star, &mut v);
                        grid.add_continuation(&w, x_star, b, &mut v);
                    }
                    OptionKind::Call => {
                        grid.add_continuation(&w, a, x_star, &mut v);
                        grid.add_payoff(kind, strike, x_star, b, &mut v);
                    }
                }
            }
            DateRule::Alive(..) => grid.add_continuation(&w, alive_lo, alive_hi, &mut v),
        }
    }
    Ok(xs
        .iter()
        .map(|&x| match rule {
            DateRule::Exercise => grid.eval(&w, x).0.max(payoff(kind, strike, x).0),
            DateRule::Alive(lo, hi) if x > lo && x < hi => grid.eval(&w, x).0.max(0.0),
            DateRule::Alive(..) => 0.0,
        })
        .collect())
}

fn finish(values: Vec<f64>, setting: String) -> Result<Estimate, Error> {
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        return Err(Error::Numerical(format!("Bermudan COS produced {v}")));
    }
    Ok(Estimate {
        values,
        std_errors: None,
        setting,
    })
}

/// American option: 4-point repeated Richardson over Bermudan prices with 2^d … 2^{d+3} dates.
fn american(
    law: &dyn Fn(f64) -> LogReturn,
    option: &VanillaOption,
    spots: &[f64],
    d: u32,
    density: f64,
    cancel: &Cancel,
) -> Result<Estimate, Error> {
    let t = option.maturity;
    let finest = 1usize << (d + 3);
    let (a, b, n) = interval(law, option, spots, t / finest as f64, density)?;
    let mut grid = Grid::new(n, a, b);
    let xs: Vec<f64> = spots.iter().map(|&s| (s / option.strike).ln()).collect();
    let mut prices = Vec::with_capacity(4);
    for i in 0..4 {
        let m = 1usize << (d + i);
        let factor = step_factor(&grid, &law(t / m as f64), 0.0);
        let factors = vec![factor.as_slice(); m];
        prices.push(backward(
            &mut grid,
            option,
            &factors,
            DateRule::Exercise,
            &xs,
            cancel,
        )?);
    }
    let values = (0..spots.len())
        .map(|p| (64.0 * prices[3][p] - 56.0 * prices[2][p] + 14.0 * prices[1][p] - prices[0][p]) / 21.0)
        .map(|v| v.max(0.0))
        .collect();
    finish(
        values,
        format!("N={n}, L={TRUNCATION_L}, Richardson M={}..{finest}", 1usize << d),
    )
}

/// American call with proportional dividends, r ≥ 0: exact Bermudan with dates just before each dividend.
fn dividend_call(
    law: &dyn Fn(f64) -> LogReturn,
    option: &VanillaOption,
    spots: &[f64],
    density: f64,
    cancel: &Cancel,
) -> Result<Estimate, Error> {
    let mut times = vec![0.0];
    times.extend(option.dividends.iter().map(|d| d.time));
    times.push(option.maturity);
    let dt_min = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(f64::INFINITY, f64::min);
    // The interval must also hold the dividend drops: widen it by ln Π(1 − δ) below.
    let drop = option.dividend_factor().ln();
    let (a, b, n) = interval(law, option, spots, dt_min, density)?;
    let mut grid = Grid::new(n, a + drop, b);
    let owned: Vec<Vec<Complex64>> = times
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            // Step i starts at date i; the dividend paid at date i (i ≥ 1) drops the spot after exercise.
            let shift = if i == 0 {
                0.0
            } else {
                (1.0 - option.dividends[i - 1].fraction).ln()
            };
            step_factor(&grid, &law(w[1] - w[0]), shift)
        })
        .collect();
    let factors: Vec<&[Complex64]> = owned.iter().map(Vec::as_slice).collect();
    let xs: Vec<f64> = spots.iter().map(|&s| (s / option.strike).ln()).collect();
    let values = backward(&mut grid, option, &factors, DateRule::Exercise, &xs, cancel)?;
    finish(
        values,
        format!(
            "N={n}, L={TRUNCATION_L}, exercise before {} dividend(s)",
            option.dividends.len()
        ),
    )
}

/// Continuously monitored knock-out: discretely monitored prices with M/8, M/4, M/2, M dates,
/// extrapolated in √Δt.
fn knock_out(
    law: &dyn Fn(f64) -> LogReturn,
    option: &VanillaOption,
    barrier: Barrier,
    spots: &[f64],
    finest: usize,
    density: f64,
    cancel: &Cancel,
) -> Result<Estimate, Error> {
    let (ratio, levels) = (2usize, 4usize);
    let t = option.maturity;
    let (a, b, n) = interval(law, option, spots, t / finest as f64, density)?;
    let h = (barrier.level() / option.strike).ln();
    let rule = match barrier {
        Barrier::UpAndOut(_) => DateRule::Alive(f64::NEG_INFINITY, h),
        Barrier::DownAndOut(_) => DateRule::Alive(h, f64::INFINITY),
    };
    let mut grid = Grid::new(n, a, b);
    let xs: Vec<f64> = spots.iter().map(|&s| (s / option.strike).ln()).collect();
    let mut prices = Vec::with_capacity(levels);
    for i in 0..levels {
        let m = finest / ratio.pow((levels - 1 - i) as u32);
        let factor = step_factor(&grid, &law(t / m as f64), 0.0);
        let factors = vec![factor.as_slice(); m];
        prices.push(backward(&mut grid, option, &factors, rule, &xs, cancel)?);
    }
    // Richardson in h = √Δt (ratio √ratio per level): eliminate h, h², h³.
    let mut table = prices;
    for order in 1..levels {
        let factor = (ratio as f64).sqrt().powi(order as i32);
        table = table
            .windows(2)
            .map(|w| {
                w[1].iter()
                    .zip(&w[0])
                    .map(|(fine, coarse)| (factor * fine - coarse) / (factor - 1.0))
                    .collect()
            })
            .collect();
    }
    let values = table.remove(0).into_iter().map(|v| v.max(0.0)).collect();
    finish(
        values,
        format!(
            "N={n}, L={TRUNCATION_L}, Richardson M={}..{finest}",
            finest / ratio.pow(levels as u32 - 1)
        ),
    )
}
