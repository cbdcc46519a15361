//! Fourier inversion of the characteristic function along a saddle-point contour with Gauss–Laguerre
//! quadrature (FGL).
//!
//! With k = ln(K/S) (S the effective spot S₀·Π(1 − fraction)) and X = ln(S_T/S), the damped representation of
//! Carr & Madan (1999, eq. (6)) reads V(k)/S = e^{−αk}/π ∫₀^∞ Re[e^{−ivk} ψ(v)] dv,
//! ψ(v) = e^{−rT} φ(v − (α + 1)i) / ((α + iv)(α + 1 + iv)); for α > 0 it is the call, for α < −1 the put (the
//! residue at the pole is put–call parity; Lord & Kahl 2007, "Optimal Fourier inversion in semi-analytical
//! option pricing", J. Comput. Finance 10(4)). The damping is the saddle point of the integrand on the real
//! axis: α* minimises h(α) = −αk + ln E[e^{(α+1)X}] − ln(α(α + 1)) over both branches (Lord & Kahl 2007, §4),
//! and the branch with the smaller minimum (the out-of-the-money option) is integrated; the other option
//! follows by parity. Through the saddle point the integrand is close to a Gaussian of width 1/√h''(α*)
//! in v, so the quadrature scales Gauss–Laguerre nodes to it: ∫₀^∞ f(v) dv ≈ s Σ wᵢ e^{xᵢ} f(s xᵢ). This is the
//! idea of the BENCHOP FGL code (Fourier inversion along a saddle-point contour with Gauss–Laguerre nodes).
//! Because the contour adapts to σ√T and to the moneyness, tiny volatilities (1aII, σ√T = 0.005) are no harder
//! than ordinary ones.
//!
//! Models: Black–Scholes–Merton, Heston (damping restricted to where E[S_T^{α+1}] is finite, Andersen &
//! Piterbarg 2007), Merton; discrete proportional dividends through the effective spot. Prices only.
//! The ladder runs over the number of Gauss–Laguerre nodes, [`NODE_LADDER`].

use std::f64::consts::PI;

use num_complex::Complex64;

use super::charfn::{European, LogReturn, heston_explosion_time};
use crate::instrument::OptionKind;
use crate::method::Estimate;
use crate::{Cancel, Error, Problem, Quantity};

/// Numbers of Gauss–Laguerre nodes of the ladder, cheapest first.
pub const NODE_LADDER: [usize; 10] = [8, 12, 16, 24, 32, 48, 64, 96, 128, 192];

/// Largest number of nodes [`price`] accepts (the Laguerre recurrence stays in range of f64 below it).
pub const MAX_NODES: usize = 256;

/// Node scale: v = SCALE·width/√n · x for Gauss–Laguerre node x, width = 1/√h''(α*) (tuned on the BENCHOP
/// cases: 1aI, 1aII, 2a, 4a, 5a and the Feller-violating Heston case all converge spectrally with it).
const SCALE: f64 = 2.0;

fn not_applicable() -> Error {
    Error::NotApplicable {
        method: "fgl",
        reason: "FGL prices European vanillas under BSM, Heston or Merton".into(),
    }
}

/// Does FGL price `problem`? Prices of European vanillas without barrier on spots under Black–Scholes,
/// Heston or Merton, with or without discrete proportional dividends.
///
/// ```
/// use benchop::{catalogue, method::fgl};
/// assert!(fgl::applies(&catalogue::case("4a").unwrap().problem));
/// assert!(!fgl::applies(&catalogue::case("1bI").unwrap().problem)); // American
/// ```
pub fn applies(problem: &Problem) -> bool {
    problem.quantity() == Quantity::Price && European::from_problem(problem).is_some()
}

/// Price every point at ladder `level`; `Ok(None)` past the end of the ladder.
///
/// ```
/// use benchop::{catalogue, method::fgl, Cancel};
/// let case = catalogue::case("1aII").unwrap();
/// let e = fgl::price_level(&case.problem, 4, &Cancel::new()).unwrap().unwrap();
/// assert!(benchop::relerr(&e.values, &case.reference) < 1e-6);
/// ```
pub fn price_level(problem: &Problem, level: usize, cancel: &Cancel) -> Result<Option<Estimate>, Error> {
    if !applies(problem) {
        return Err(not_applicable());
    }
    match NODE_LADDER.get(level) {
        Some(&n) => price(problem, n, cancel).map(Some),
        None => Ok(None),
    }
}

/// Gauss–Laguerre nodes xᵢ and scaled weights wᵢe^{xᵢ} for n nodes, by Newton's method on the three-term
/// recurrence with the initial guesses of Press et al., *Numerical Recipes* (2007), §4.6 (`gaulag`), and
/// wᵢ = 1/(xᵢ L_n'(xᵢ)²) (Abramowitz & Stegun 25.4.45).
fn gauss_laguerre(n: usize) -> Result<Vec<(f64, f64)>, Error> {
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(n);
    let nf = n as f64;
    let mut z: f64 = 0.0;
    for i in 0..n {
        z = match i {
            0 => 3.0 / (1.0 + 2.4 * nf),
            1 => z + 15.0 / (1.0 + 2.5 * nf),
            _ => {
                let ai = (i - 1) as f64;
                z + (1.0 + 2.55 * ai) / (1.9 * ai) * (z - out[i - 2].0)
            }
        };
        let mut deriv = 1.0;
        for _ in 0..200 {
            let (mut p1, mut p2) = (1.0, 0.0);
            for j in 0..n {
                let p3 = p2;
                p2 = p1;
                let jf = j as f64;
                p1 = ((2.0 * jf + 1.0 - z) * p2 - jf * p3) / (jf + 1.0);
            }
            deriv = nf * (p1 - p2) / z;
            let step = p1 / deriv;
            z -= step;
            if step.abs() <= 1e-15 * z.abs() {
                break;
            }
        }
        let weight = (z - z.ln() - 2.0 * deriv.abs().ln()).exp();
        if !(z.is_finite() && weight.is_finite() && (i == 0 || z > out[i - 1].0)) {
            return Err(Error::Numerical(format!(
                "Gauss–Laguerre nodes failed for n = {n}"
            )));
        }
        out.push((z, weight));
    }
    Ok(out)
}

/// h(α) = −αk + ln E[e^{(α+1)X}] − ln(α(α + 1)): the log of the integrand at v = 0 (without constants);
/// +∞ where the moment does not exist.
fn log_integrand(law: &LogReturn, k: f64, alpha: f64) -> f64 {
    if let LogReturn::Heston(m, t) = *law
        && heston_explosion_time(&m, alpha + 1.0) <= 1.05 * t
    {
        return f64::INFINITY;
    }
    let moment = law.log_cf(Complex64::new(0.0, -(alpha + 1.0))).re;
    let value = -alpha * k + moment - (alpha * (alpha + 1.0)).ln();
    if value.is_finite() { value } else { f64::INFINITY }
}

/// Golden-section minimum of `f` over t ∈ [lo, hi].
fn golden(f: impl Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
    let g = 0.5 * (5f64.sqrt() - 1.0);
    let (mut c, mut d) = (hi - g * (hi - lo), lo + g * (hi - lo));
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..120 {
        if fc < fd {
            hi = d;
            d = c;
            fd = fc;
            c = hi - g * (hi - lo);
            fc = f(c);
        } else {
            lo = c;
            c = d;
            fc = fd;
            d = lo + g * (hi - lo);
            fd = f(d);
        }
        // The contour only has to pass near the saddle point: the integral does not depend on α, and
        // the quadrature error hardly changes within 0.1 % of α* (t is ln|α − pole|). 1e-10 here cost
        // twice the time for the same values.
        if hi - lo < 1e-3 {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// The saddle-point damping α* and the value of h there, on the call (α > 0) or the put (α < −1) branch.
fn saddle(law: &LogReturn, k: f64, kind: OptionKind) -> (f64, f64) {
    // Search in log distance from the branch's pole: α = e^t (call) or α = −1 − e^t (put).
    let to_alpha = |t: f64| match kind {
        OptionKind::Call => t.exp(),
        OptionKind::Put => -1.0 - t.exp(),
    };
    let t = golden(|t| log_integrand(law, k, to_alpha(t)), -12.0, 14.0);
    let alpha = to_alpha(t);
    (alpha, log_integrand(law, k, alpha))
}

/// Price every point of `problem` with `nodes` Gauss–Laguerre nodes.
///
/// ```
/// use benchop::{catalogue, method::fgl, Cancel};
/// let case = catalogue::case("5a").unwrap();
/// let e = fgl::price(&case.problem, 64, &Cancel::new()).unwrap();
/// assert!(benchop::relerr(&e.values, &case.reference) < 1e-6);
/// ```
pub fn price(problem: &Problem, nodes: usize, cancel: &Cancel) -> Result<Estimate, Error> {
    cancel.check()?;
    if !applies(problem) {
        return Err(not_applicable());
    }
    if !(2..=MAX_NODES).contains(&nodes) {
        return Err(Error::invalid(
            "nodes",
            format!("must lie in [2, {MAX_NODES}], got {nodes}"),
        ));
    }
    let eu = European::from_problem(problem).ok_or_else(not_applicable)?;
    let law = eu.law;
    let rt = law.rate() * law.maturity();
    let gl = gauss_laguerre(nodes)?;
    let disc_k = eu.discounted_strike();
    let mut values = Vec::with_capacity(eu.spots.len());
    for &spot in eu.spots {
        cancel.check()?;
        let s = spot * eu.dividend_factor;
        let k = (eu.strike / s).ln();
        let (call_alpha, call_h) = saddle(&law, k, OptionKind::Call);
        let (put_alpha, put_h) = saddle(&law, k, OptionKind::Put);
        let (kind, alpha) = if call_h <= put_h {
            (OptionKind::Call, call_alpha)
        } else {
            (OptionKind::Put, put_alpha)
        };
        if !log_integrand(&law, k, alpha).is_finite() {
            return Err(Error::Numerical(format!("no admissible damping at spot {spot}")));
        }
        // Curvature of h at the saddle point: the integrand's Gaussian width in v is 1/√h''.
        let step = 1e-3 * (1.0 + alpha.abs());
        let h0 = log_integrand(&law, k, alpha);
        let curvature = (log_integrand(&law, k, alpha + step) - 2.0 * h0
            + log_integrand(&law, k, alpha - step))
            / (step * step);
        let width = if curvature.is_finite() && curvature > 0.0 {
            1.0 / curvature.sqrt()
        } else {
            1.0 / law.cumulants().c2.sqrt()
        };
        // The nodes reach about 4n: the scaled range 4n·s = 4·SCALE·√n·width grows with n, so heavier than
        // Gaussian tails (Heston) are covered as the ladder climbs while the spacing near v = 0 shrinks.
        let scale = SCALE * width / (nodes as f64).sqrt();
        let mut integral = 0.0;
        for &(x, w) in &gl {
            let v = scale * x;
            let z = Complex64::new(v, -(alpha + 1.0));
            let num = law.log_cf(z) + Complex64::new(-alpha * k - rt - h0, -v * k);
            let den = Complex64::new(alpha, v) * Complex64::new(alpha + 1.0, v);
            integral += w * (num.exp() / den).re;
        }
        // The integrand was scaled by e^{−h₀} to keep it O(1); undo in log space.
        let option = s * (h0.exp() * scale * integral / PI);
        let value = match (eu.kind, kind) {
            (OptionKind::Call, OptionKind::Call) | (OptionKind::Put, OptionKind::Put) => option,
            (OptionKind::Call, OptionKind::Put) => option + s - disc_k,
            (OptionKind::Put, OptionKind::Call) => option - s + disc_k,
        };
        if !value.is_finite() {
            return Err(Error::Numerical(format!("FGL produced {value} at spot {spot}")));
        }
        values.push(value.max(0.0));
    }
    Ok(Estimate {
        values,
        std_errors: None,
        setting: format!("nodes={nodes}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laguerre_integrates_polynomials() {
        for n in [8, 64, 192, 256] {
            let gl = gauss_laguerre(n).unwrap();
            // ∫ e^{−x} x^m dx = m!, with scaled weights w e^x: Σ w e^{x} e^{−x} x^m.
            for m in 0..4 {
                let sum: f64 = gl.iter().map(|&(x, w)| w * (-x).exp() * x.powi(m)).sum();
                let want = (1..=m).product::<i32>() as f64;
                assert!((sum - want).abs() < 1e-10 * want, "n={n} m={m}: {sum}");
            }
        }
    }
}
