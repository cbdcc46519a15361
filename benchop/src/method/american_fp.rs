//! American options under Black–Scholes–Merton by the fixed-point spectral collocation method of Andersen,
//! Lake & Offengenden, "High Performance American Option Pricing", J. Computational Finance 20(1), 2016,
//! 39–87 (SSRN 2547027; ALO below).
//!
//! The model has no continuous dividend yield (q = 0), which settles most cases at once:
//! - an American call is worth its European value when r ≥ 0 (Merton 1973): it is never exercised early;
//! - an American put is worth its European value when r ≤ 0: the European put already dominates K − S,
//!   since K·e^{−rτ} ≥ K.
//!
//! What remains is the put with r > 0. With τ the time to maturity and B(τ) its early exercise boundary
//! (B(0⁺) = K, falling towards the perpetual boundary B∞ = 2rK/(2r + σ²)), Kim's (1990) integral
//! representation gives, for S > B(T),
//!
//! V(S) = p_E(S) + ∫₀^T rK e^{−rt} Φ(−d₋(t, S/B(T − t))) dt,  d± (t, z) = (ln z + (r ± σ²/2)t)/(σ√t),
//!
//! and V(S) = K − S at or below B(T). The boundary solves B = f(B) for either of ALO's two fixed-point
//! systems, written here for q = 0 with d± = d±(τ, B(τ)/K) outside the integrals:
//! - smooth pasting (with densities; QuantLib's `QdFpAmericanEngine` calls it `FP_A`):
//!   f_SP = [B φ(d₊)/(σ√τ) + rK ∫₀^τ e^{−r(τ−u)} φ(d₋(τ − u, B(τ)/B(u)))/(σ√(τ − u)) du]
//!   / [φ(d₊)/(σ√τ) + Φ(d₊)];
//! - value matching (with distribution functions; QuantLib's `FP_B`):
//!   f_VM = [K e^{−rτ} Φ(d₋) + rK ∫₀^τ e^{−r(τ−u)} Φ(d₋(τ − u, B(τ)/B(u))) du] / Φ(d₊).
//!
//! The smooth-pasting iteration converges fastest on ordinary parameters (BENCHOP 1bI: 2e-7 after three
//! iterations, against 1e-5 for value matching), but it diverges when the kernel e^{−rs} φ(c√s)/√s,
//! c = (r − σ²/2)/σ, is concentrated on a small part of [0, T] (c²T large) and ω = 2r/σ² > 3. A
//! linearisation of ours explains why: on errors that oscillate from node to node, the
//! integrals dominate the Jacobians, with ∂ln f_SP/∂ln B = −(ω − 1)/2 · ∂ln f_VM/∂ln B, and the latter
//! tends to +1 as the kernel concentrates (which is why value matching then crawls). The iteration map
//! is therefore the weighted mean w·f_SP + (1 − w)·f_VM, which has the same fixed point: w = 1 while
//! c²T ≤ 1/2 (an empirical threshold: up to it pure smooth pasting converged to 1e-10 on every parameter
//! set tried), and w = min(1, 2/(ω + 1)) beyond, which cancels that Jacobian. With it the levels converge
//! on every parameter set tried (ω up to 2000, c²T up to 25), and at the finest levels the pure
//! smooth-pasting and the pure value-matching iterations agree to 1e-11 where both converge.
//!
//! As in ALO:
//! - H(x) = ln²(B/K) is interpolated in x = √τ on n + 1 Chebyshev–Lobatto nodes (B itself has a
//!   √(τ ln τ) corner at τ = 0, which the square and the √τ variable smooth out);
//! - the start is M. Li's QD+ approximation of the boundary (as in QuantLib's `QdPlusAmericanEngine`),
//!   one Newton root per node;
//! - m iterations, the first a Jacobi–Newton step on the terms outside the integrals;
//! - l-point Gauss–Legendre quadrature in the iteration, p points for the premium.
//!
//! Both integrals are taken in an angle: with τ − u = τ sin²ϑ the weight 1/√(τ − u) cancels and the
//! boundary is needed at √u = √τ cos ϑ, smooth in ϑ at both ends; the premium likewise with t = T sin²ϑ.
//! The boundary is computed once per call and shared by every spot; spots at or below B∞ skip it.
//!
//! Φ is Cody's rational approximation (ACM TOMS Algorithm 715, 1993): at least as accurate as the
//! crate's `norm_cdf` (more so near |x| ≈ 2, where its series cancels) and cheaper, a rational function
//! and one exponential, which matters at a few hundred evaluations per price.

use std::f64::consts::{FRAC_PI_4, PI};
use std::sync::LazyLock;

use crate::instrument::{Exercise, OptionKind, VanillaOption};
use crate::method::Estimate;
use crate::model::BlackScholes;
use crate::{Cancel, Error};

/// One rung of the ladder: the four accuracy parameters of ALO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Setting {
    /// Chebyshev intervals n: the boundary is collocated at n + 1 nodes, one of them τ = 0.
    nodes: usize,
    /// Fixed-point iterations m (the first a partial Jacobi–Newton step).
    iterations: usize,
    /// Gauss–Legendre order l of the integrals in the fixed-point system.
    quadrature: usize,
    /// Gauss–Legendre order p of the early-exercise premium.
    price_quadrature: usize,
}

const fn setting(nodes: usize, iterations: usize, quadrature: usize, price_quadrature: usize) -> Setting {
    Setting {
        nodes,
        iterations,
        quadrature,
        price_quadrature,
    }
}

/// The ladder, cheapest first. On BENCHOP 1bI the relative errors are about 4e-5, 3e-6, 2e-7, 2e-8,
/// 3e-9, 2e-10, 4e-11, 4e-12 and 6e-13. Beyond the first levels the error is mostly the interpolation's
/// (it falls with n), so m, l and p grow more slowly than n.
const LADDER: [Setting; 9] = [
    setting(5, 1, 6, 12),
    setting(5, 2, 8, 12),
    setting(8, 3, 12, 24),
    setting(12, 4, 16, 32),
    setting(16, 6, 24, 48),
    setting(24, 8, 32, 64),
    setting(32, 12, 48, 96),
    setting(48, 16, 64, 128),
    setting(64, 24, 96, 192),
];

/// A Gauss–Legendre node on ϑ ∈ [0, π/2]: sin ϑ, cos ϑ and the weight (dϑ included).
#[derive(Debug, Clone, Copy)]
struct AngleNode {
    sin: f64,
    cos: f64,
    weight: f64,
}

fn angle_rule(order: usize) -> Vec<AngleNode> {
    crate::special::gauss_legendre(order)
        .into_iter()
        .map(|(y, w)| {
            let theta = FRAC_PI_4 * (1.0 + y);
            AngleNode {
                sin: theta.sin(),
                cos: theta.cos(),
                weight: FRAC_PI_4 * w,
            }
        })
        .collect()
}

/// Everything about a setting that does not depend on the problem.
struct Plan {
    setting: Setting,
    /// cos(jkπ/n), row j: the Chebyshev–Lobatto transform.
    transform: Vec<f64>,
    fixed_point: Vec<AngleNode>,
    premium: Vec<AngleNode>,
}

impl Plan {
    fn new(setting: Setting) -> Self {
        let n = setting.nodes;
        let mut transform = Vec::with_capacity((n + 1) * (n + 1));
        for j in 0..=n {
            for k in 0..=n {
                transform.push((PI * (j * k) as f64 / n as f64).cos());
            }
        }
        Self {
            setting,
            transform,
            fixed_point: angle_rule(setting.quadrature),
            premium: angle_rule(setting.price_quadrature),
        }
    }
}

static PLANS: LazyLock<Vec<Plan>> = LazyLock::new(|| LADDER.iter().map(|&s| Plan::new(s)).collect());

const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_677_939_946_059_934;

#[cfg(test)]
fn pdf(x: f64) -> f64 {
    FRAC_1_SQRT_2PI * (-0.5 * x * x).exp()
}

/// Φ(x) for |x| ≤ 0.674 (Cody's first interval). The coefficients are Cody's, to the 20 digits he
/// published, so they can be checked against the source.
#[allow(clippy::excessive_precision)]
fn cdf_central(x: f64) -> f64 {
    const A: [f64; 5] = [
        2.235_252_035_460_683_928_7,
        161.028_231_068_555_878_81,
        1_067.689_485_460_370_958_2,
        18_154.981_253_343_561_249,
        0.065_682_337_918_207_449_113,
    ];
    const B: [f64; 4] = [
        47.202_581_904_688_241_87,
        976.098_551_737_776_693_22,
        10_260.932_208_618_978_205,
        45_507.789_335_026_729_956,
    ];
    let s = x * x;
    let num = (((A[4] * s + A[0]) * s + A[1]) * s + A[2]) * s + A[3];
    let den = (((s + B[0]) * s + B[1]) * s + B[2]) * s + B[3];
    0.5 + x * num / den
}

/// 1 − Φ(y) for y > 0.674, given gauss = e^{−y²/2} (Cody's second and third intervals).
#[allow(clippy::excessive_precision)]
fn cdf_tail(y: f64, gauss: f64) -> f64 {
    const C: [f64; 9] = [
        0.398_941_512_088_134_667_64,
        8.883_149_794_388_375_941_2,
        93.506_656_132_177_855_979,
        597.270_276_394_800_262_26,
        2_494.537_585_290_372_671_1,
        6_848.190_450_536_282_332_6,
        11_602.651_437_647_350_124,
        9_842.714_838_383_978_021_8,
        1.076_557_677_372_019_231_7e-8,
    ];
    const D: [f64; 8] = [
        22.266_688_044_328_115_691,
        235.387_901_782_624_998_61,
        1_519.377_599_407_554_805,
        6_485.558_298_266_760_755,
        18_615.571_640_885_098_091,
        34_900.952_721_145_977_266,
        38_912.003_286_093_271_411,
        19_685.429_676_859_990_727,
    ];
    const P: [f64; 6] = [
        0.215_898_534_057_956_99,
        0.127_401_161_160_247_363_9,
        0.022_235_277_870_649_807,
        0.001_421_619_193_227_893_466,
        2.911_287_495_116_879_2e-5,
        0.023_073_441_764_940_173_03,
    ];
    const Q: [f64; 5] = [
        1.284_260_096_144_911_21,
        0.468_238_212_480_865_118,
        0.065_988_137_868_928_551_5,
        0.003_782_396_332_027_582_44,
        7.297_515_550_839_662_05e-5,
    ];
    if y <= 5.656_854_249_492_38 {
        let (mut num, mut den) = (C[8] * y, y);
        for (c, d) in C[..7].iter().zip(&D[..7]) {
            num = (num + c) * y;
            den = (den + d) * y;
        }
        gauss * (num + C[7]) / (den + D[7])
    } else if y < 38.5 {
        let s = 1.0 / (y * y);
        let (mut num, mut den) = (P[5] * s, s);
        for (p, q) in P[..4].iter().zip(&Q[..4]) {
            num = (num + p) * s;
            den = (den + q) * s;
        }
        gauss * (FRAC_1_SQRT_2PI - s * (num + P[4]) / (den + Q[4])) / y
    } else {
        0.0
    }
}

/// Standard normal distribution function by Cody's rational Chebyshev approximations (W. J. Cody,
/// "Algorithm 715: SPECFUN", ACM TOMS 19 (1993), function ANORM): 0.5 + x·R(x²) for |x| ≤ 0.674,
/// e^{−x²/2}·R(|x|) up to √32 and e^{−x²/2}/|x|·(1/√(2π) − R(1/x²)) beyond; ~1e-16 relative.
fn cdf(x: f64) -> f64 {
    let y = x.abs();
    if y <= 0.674_489_75 {
        return cdf_central(x);
    }
    if x.is_nan() {
        return f64::NAN;
    }
    let tail = cdf_tail(y, (-0.5 * y * y).exp());
    if x > 0.0 { 1.0 - tail } else { tail }
}

/// (Φ(x), φ(x)) with one exponential.
fn cdf_pdf(x: f64) -> (f64, f64) {
    let gauss = (-0.5 * x * x).exp();
    let y = x.abs();
    let cdf = if y <= 0.674_489_75 {
        cdf_central(x)
    } else {
        let tail = cdf_tail(y, gauss);
        if x > 0.0 { 1.0 - tail } else { tail }
    };
    (cdf, FRAC_1_SQRT_2PI * gauss)
}

/// Is the American option worth exactly its European value? With q = 0: calls when r ≥ 0, puts when
/// r ≤ 0 (module docs).
pub(crate) fn never_exercised_early(model: &BlackScholes, option: &VanillaOption) -> bool {
    match option.kind {
        OptionKind::Call => model.r >= 0.0,
        OptionKind::Put => model.r <= 0.0,
    }
}

/// Is this an American option the closed form covers? Plain calls and puts without dividends or
/// barriers, except calls at r < 0, which may be exercised early and which the put method does not cover.
pub(crate) fn applies(model: &BlackScholes, option: &VanillaOption) -> bool {
    option.exercise == Exercise::American
        && option.barrier.is_none()
        && option.dividends.is_empty()
        && (option.kind == OptionKind::Put || model.r >= 0.0)
}

/// Price an American put with r > 0 at `spots` with the setting of ladder `level`; `Ok(None)` past the
/// end of the ladder.
pub(crate) fn price_level(
    model: &BlackScholes,
    option: &VanillaOption,
    spots: &[f64],
    level: usize,
    cancel: &Cancel,
) -> Result<Option<Estimate>, Error> {
    let Some(plan) = PLANS.get(level) else {
        return Ok(None);
    };
    let weight = smooth_pasting_weight(model, option.maturity);
    price_with(model, option, spots, plan, weight, cancel).map(Some)
}

/// The weight w of the smooth-pasting map in the iteration (module docs): 1 while c²T ≤ 1/2, else
/// min(1, 2/(ω + 1)).
fn smooth_pasting_weight(model: &BlackScholes, maturity: f64) -> f64 {
    let (r, s2) = (model.r, model.sigma * model.sigma);
    let c2t = (r - 0.5 * s2).powi(2) / s2 * maturity;
    if c2t <= 0.5 {
        1.0
    } else {
        (2.0 / (2.0 * r / s2 + 1.0)).min(1.0)
    }
}

fn price_with(
    model: &BlackScholes,
    option: &VanillaOption,
    spots: &[f64],
    plan: &Plan,
    weight: f64,
    cancel: &Cancel,
) -> Result<Estimate, Error> {
    cancel.check()?;
    if !applies(model, option) || option.kind != OptionKind::Put || model.r <= 0.0 {
        return Err(Error::NotApplicable {
            method: "closed-form",
            reason: "the Andersen–Lake–Offengenden method prices American puts with r > 0".into(),
        });
    }
    let Setting {
        nodes: n,
        iterations: m,
        quadrature: l,
        price_quadrature: p,
    } = plan.setting;
    let (k, r, sigma) = (option.strike, model.r, model.sigma);
    let perpetual = k * 2.0 * r / (2.0 * r + sigma * sigma);
    let mut setting = format!("Andersen–Lake–Offengenden n={n}, m={m}, l={l}, p={p}");
    // The boundary stays above the perpetual one, so below that every spot is exercised at once.
    let values = if spots.iter().all(|&s| s <= perpetual) {
        setting += &format!(": every spot at or below B∞ = {perpetual:.6}, exercised at once");
        spots.iter().map(|&s| k - s).collect()
    } else {
        if weight < 1.0 {
            setting += &format!(", smooth-pasting weight {weight:.3}");
        }
        let boundary = Boundary::solve(model, option, plan, weight, cancel)?;
        cancel.check()?;
        boundary.prices(plan, spots)
    };
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        return Err(Error::Numerical(format!(
            "Andersen–Lake–Offengenden produced {v}"
        )));
    }
    Ok(Estimate {
        values,
        std_errors: None,
        setting,
    })
}

/// The exercise boundary as H(z) = ln²(B/K), a Chebyshev series in z = 2√(τ/T) − 1.
struct Boundary {
    k: f64,
    t: f64,
    r: f64,
    sigma: f64,
    /// Chebyshev coefficients of H.
    coef: Vec<f64>,
}

impl Boundary {
    /// ln B at z ∈ [−1, 1] (Clenshaw's recurrence).
    fn ln_at(&self, z: f64) -> f64 {
        let (mut b1, mut b2) = (0.0, 0.0);
        for &c in self.coef[1..].iter().rev() {
            let b0 = c + 2.0 * z * b1 - b2;
            b2 = b1;
            b1 = b0;
        }
        let h = self.coef[0] + z * b1 - b2;
        self.k.ln() - h.max(0.0).sqrt()
    }

    /// B at time to maturity τ ∈ [0, T].
    #[cfg(test)]
    fn at(&self, tau: f64) -> f64 {
        self.ln_at(2.0 * (tau / self.t).sqrt() - 1.0).exp()
    }

    /// Chebyshev–Lobatto coefficients from the values at z_k = cos(kπ/n).
    fn fit(&mut self, transform: &[f64], values: &[f64]) {
        let n = values.len() - 1;
        for (j, c) in self.coef.iter_mut().enumerate() {
            let row = &transform[j * (n + 1)..(j + 1) * (n + 1)];
            let mut s = 0.5 * (values[0] * row[0] + values[n] * row[n]);
            for (v, cos) in values[1..n].iter().zip(&row[1..n]) {
                s += v * cos;
            }
            *c = if j == 0 || j == n { s } else { 2.0 * s } / n as f64;
        }
    }

    /// Collocate the boundary: QD+ start, then `iterations` steps of b ← w·f_SP(b) + (1 − w)·f_VM(b)
    /// at every node at once (Jacobi), the first a Jacobi–Newton step.
    fn solve(
        model: &BlackScholes,
        option: &VanillaOption,
        plan: &Plan,
        weight: f64,
        cancel: &Cancel,
    ) -> Result<Self, Error> {
        let n = plan.setting.nodes;
        let (k, t, r, sigma) = (option.strike, option.maturity, model.r, model.sigma);
        let mut boundary = Self {
            k,
            t,
            r,
            sigma,
            coef: vec![0.0; n + 1],
        };
        let ln_k = k.ln();
        let perpetual = k * 2.0 * r / (2.0 * r + sigma * sigma);
        // x_i = √τ_i at z_i = cos(iπ/n): i = 0 is τ = T, i = n is τ = 0, where H = 0.
        let x: Vec<f64> = (0..=n)
            .map(|i| 0.5 * t.sqrt() * (1.0 + (PI * i as f64 / n as f64).cos()))
            .collect();
        let mut h: Vec<f64> = x[..n]
            .iter()
            .map(|&xi| (qd_plus(k, r, sigma, xi * xi) / k).ln().powi(2))
            .chain([0.0])
            .collect();
        let mut next = h.clone();
        let mu = r - 0.5 * sigma * sigma;
        for iteration in 0..plan.setting.iterations {
            cancel.check()?;
            boundary.fit(&plan.transform, &h);
            for i in 0..n {
                let (xi, zi) = (x[i], 2.0 * x[i] / t.sqrt() - 1.0);
                let (tau, v) = (xi * xi, sigma * xi);
                let ln_b = ln_k - h[i].sqrt();
                let b = ln_b.exp();
                let dp = (ln_b - ln_k) / v + (r / sigma + 0.5 * sigma) * xi;
                let (cdf_dp, pdf_dp) = cdf_pdf(dp);
                let a = pdf_dp / v;
                // With τ − u = s = τ sin²ϑ: ∫ e^{−rs} φ(d₋)/(σ√s) du = (2√τ/σ) ∫ e^{−rs} φ(d₋) cos ϑ dϑ
                // and ∫ e^{−rs} Φ(d₋) du = 2τ ∫ e^{−rs} Φ(d₋) sin ϑ cos ϑ dϑ.
                let (mut with_pdf, mut with_cdf) = (0.0, 0.0);
                if weight == 1.0 {
                    for node in &plan.fixed_point {
                        let s = tau * node.sin * node.sin;
                        let ln_bu = boundary.ln_at((1.0 + zi) * node.cos - 1.0);
                        let d = (ln_b - ln_bu + mu * s) / (v * node.sin);
                        with_pdf += node.weight * node.cos * (-r * s - 0.5 * d * d).exp();
                    }
                    with_pdf *= FRAC_1_SQRT_2PI;
                } else {
                    for node in &plan.fixed_point {
                        let s = tau * node.sin * node.sin;
                        let ln_bu = boundary.ln_at((1.0 + zi) * node.cos - 1.0);
                        let d = (ln_b - ln_bu + mu * s) / (v * node.sin);
                        let (cdf_d, pdf_d) = cdf_pdf(d);
                        let w = node.weight * node.cos * (-r * s).exp();
                        with_pdf += w * pdf_d;
                        with_cdf += w * node.sin * cdf_d;
                    }
                }
                let (num_sp, den_sp) = (b * a + r * k * 2.0 * xi / sigma * with_pdf, a + cdf_dp);
                let f_sp = num_sp / den_sp;
                let (num_vm, den_vm) = (
                    k * (-r * tau).exp() * cdf(dp - v) + r * k * 2.0 * tau * with_cdf,
                    cdf_dp,
                );
                let f_vm = if weight < 1.0 { num_vm / den_vm } else { 0.0 };
                let f = weight * f_sp + (1.0 - weight) * f_vm;
                let mut b_new = f;
                if iteration == 0 {
                    // Jacobi–Newton on f(b) − b with the derivatives of the terms outside the integrals
                    // (as ALO), using K e^{−rτ} φ(d₋) = b φ(d₊): for smooth pasting ∂num/∂b =
                    // a(1 − d₊/v) and ∂den/∂b = (a/b)(1 − d₊/v), for value matching a and a/b.
                    let slope_sp = a * (1.0 - dp / v) * (den_sp - num_sp / b) / (den_sp * den_sp);
                    let slope_vm = if weight < 1.0 {
                        a * (den_vm - num_vm / b) / (den_vm * den_vm)
                    } else {
                        0.0
                    };
                    let slope = weight * slope_sp + (1.0 - weight) * slope_vm;
                    let newton = b - (f - b) / (slope - 1.0);
                    if newton.is_finite() && newton > 0.0 {
                        b_new = newton;
                    }
                }
                if !b_new.is_finite() {
                    return Err(Error::Numerical(format!(
                        "Andersen–Lake–Offengenden iteration produced {b_new} at τ = {tau}"
                    )));
                }
                // The boundary lies between the perpetual one and K.
                next[i] = (b_new.clamp(perpetual, k) / k).ln().powi(2);
            }
            std::mem::swap(&mut h, &mut next);
        }
        boundary.fit(&plan.transform, &h);
        Ok(boundary)
    }

    /// European put plus the early-exercise premium ∫₀^T rK e^{−rt} Φ(−d₋(t, S/B(T − t))) dt, with
    /// t = T sin²ϑ; K − S at or below B(T).
    fn prices(&self, plan: &Plan, spots: &[f64]) -> Vec<f64> {
        let (k, t, r, sigma) = (self.k, self.t, self.r, self.sigma);
        let mu = r - 0.5 * sigma * sigma;
        let sd = sigma * t.sqrt();
        // Per node: ln B − μt (the spot-free part of −d₋'s numerator), σ√t, and the weight.
        let nodes: Vec<(f64, f64, f64)> = plan
            .premium
            .iter()
            .map(|node| {
                let s = t * node.sin * node.sin;
                let weight = node.weight * 2.0 * t * node.sin * node.cos * r * k * (-r * s).exp();
                (self.ln_at(2.0 * node.cos - 1.0) - mu * s, sd * node.sin, weight)
            })
            .collect();
        let ln_bt = self.ln_at(1.0);
        let ln_disc_k = k.ln() - r * t;
        spots
            .iter()
            .map(|&spot| {
                let ln_s = spot.ln();
                if ln_s <= ln_bt {
                    return k - spot;
                }
                let dp = (ln_s - ln_disc_k) / sd + 0.5 * sd;
                let european = ln_disc_k.exp() * cdf(sd - dp) - spot * cdf(-dp);
                let premium: f64 = nodes
                    .iter()
                    .map(|&(shift, vol, weight)| weight * cdf((shift - ln_s) / vol))
                    .sum();
                european.max(0.0) + premium.max(0.0)
            })
            .collect()
    }
}

/// M. Li's QD+ exercise boundary of an American put with q = 0 at time to maturity τ, the start ALO
/// recommend (in the notation of QuantLib's `QdPlusAmericanEngine`): the root S of
/// Φ(d₊)S − β(K − S − p) + αΘ/(r e^{−rτ}) = 0, p and Θ the European put and its time decay, by
/// Newton's method from the seed of Barone-Adesi & Whaley (1987). Only a starting point: a relative
/// step below 1e-6 ends it, and a failed root still leaves a point in [B∞, K].
fn qd_plus(k: f64, r: f64, sigma: f64, tau: f64) -> f64 {
    let s2 = sigma * sigma;
    let disc = (-r * tau).exp();
    let h = -(-r * tau).exp_m1();
    let omega = 2.0 * r / s2;
    let root = ((omega - 1.0).powi(2) + 8.0 * r / (s2 * h)).sqrt();
    let lambda = 0.5 * (-(omega - 1.0) - root);
    let lambda_prime = 2.0 * r / (s2 * h * h * root);
    let denom = 2.0 * lambda + omega - 1.0;
    let alpha = 2.0 * disc * r / (s2 * denom);
    let beta = alpha * (1.0 / h + lambda_prime / denom) - lambda;
    let v = sigma * tau.sqrt();
    let perpetual = k * 2.0 * r / (2.0 * r + s2);
    let seed = perpetual + (k - perpetual) * ((r * tau - 2.0 * v) * k / (k - perpetual)).exp();
    let mut s = if seed.is_finite() { seed } else { k };
    for _ in 0..40 {
        let dp = (s / (k * disc)).ln() / v + 0.5 * v;
        let dm = dp - v;
        let (cdf_dp, pdf_dp) = cdf_pdf(dp);
        let cdf_mdm = cdf(-dm);
        let put = k * disc * cdf_mdm - s * (1.0 - cdf_dp);
        let theta = r * k * disc * cdf_mdm - 0.5 * s2 * s / v * pdf_dp;
        let charm = -pdf_dp * (r / v - dm / (2.0 * tau));
        let f = cdf_dp * s - beta * (k - s - put) + alpha * theta / (r * disc);
        let slope = cdf_dp * (1.0 + beta) + pdf_dp / v + alpha / (r * disc) * charm;
        let next = (s - f / slope).clamp(perpetual, k);
        if !next.is_finite() {
            break;
        }
        let done = (next - s).abs() < 1e-6 * k;
        s = next;
        if done {
            break;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(r: f64, sigma: f64) -> BlackScholes {
        BlackScholes { r, sigma }
    }

    fn put(strike: f64, maturity: f64) -> VanillaOption {
        VanillaOption::american(OptionKind::Put, strike, maturity)
    }

    #[test]
    fn cody_matches_the_series_and_high_precision_values() {
        for i in -3700..800 {
            let x = i as f64 * 0.01;
            let (a, b) = (cdf(x), crate::method::normal::norm_cdf(x));
            // Relative in the lower tail, absolute above (where 1 − Φ is the tail of −x). The series
            // loses a digit and a half to cancellation near |x| ≈ 2.1; exp(−x²/2) carries a rounding
            // error of about x²/2 ulps into the far tail.
            let err = if x <= 0.0 {
                (a - b).abs() / b
            } else {
                (a - b).abs()
            };
            let tol = if x.abs() <= 6.0 { 3e-14 } else { 1e-13 };
            assert!(err < tol, "Φ({x}): {a:e} vs {b:e}");
            assert!((cdf(x) + cdf(-x) - 1.0).abs() < 2e-16, "{x}");
            let (c, p) = cdf_pdf(x);
            assert_eq!(c, cdf(x));
            assert!((p - pdf(x)).abs() <= 1e-16 * pdf(x), "{x}");
        }
        // Φ(x) at 30 digits (mpmath, as in `normal.rs`; −2.12 by the Taylor series at 50 digits).
        for (x, want) in [
            (-30.0, 4.906713927148187e-198),
            (-3.0, 0.0013498980316300945),
            (-2.12, 0.0170030226476328),
            (-1.0, 0.15865525393145705),
            (-0.3, 0.3820885778110474),
            (0.1, 0.539827837277029),
            (1.2, 0.8849303297782917),
        ] {
            let got = cdf(x);
            assert!(
                ((got - want) / want).abs() < 2e-15,
                "Φ({x}) = {got:e}, want {want:e}"
            );
        }
        assert!(cdf(f64::NAN).is_nan());
    }

    /// The boundary falls from K at τ = 0 towards B∞, and QD+ is within a few tenths of a percent.
    #[test]
    fn the_boundary_falls_from_the_strike_towards_the_perpetual_boundary() {
        for (r, sigma, t) in [
            (0.03, 0.15, 1.0),
            (0.05, 0.3, 2.0),
            (0.1, 0.01, 0.25),
            (0.5, 0.2, 5.0),
        ] {
            let (m, o) = (model(r, sigma), put(100.0, t));
            let plan = &PLANS[LADDER.len() - 1];
            let weight = smooth_pasting_weight(&m, t);
            let b = Boundary::solve(&m, &o, plan, weight, &Cancel::new()).unwrap();
            let perpetual = 100.0 * 2.0 * r / (2.0 * r + sigma * sigma);
            // H(0) = 0 up to rounding in the Chebyshev sums, ~n·ε·max H, which the square root magnifies
            // to ~√(n·ε·max H) ≤ 1e-8 in ln B.
            assert!((b.at(0.0) / 100.0 - 1.0).abs() < 1e-8, "B(0) = {}", b.at(0.0));
            let mut last = b.at(0.0);
            for i in 1..=200 {
                let tau = t * (i as f64 / 200.0).powi(2);
                let now = b.at(tau);
                // Monotone and above B∞ up to the interpolation error (~1e-8 at the finest level for
                // r = 0.5, where B has flattened out at B∞ long before T).
                assert!(
                    now <= last * (1.0 + 1e-7),
                    "r={r} σ={sigma}: B({tau}) = {now} > {last}"
                );
                assert!(
                    now >= perpetual * (1.0 - 1e-7),
                    "r={r} σ={sigma}: B({tau}) = {now} < B∞"
                );
                last = now;
            }
            let qd = qd_plus(100.0, r, sigma, t);
            assert!(
                (qd / b.at(t) - 1.0).abs() < 5e-3,
                "r={r} σ={sigma}: QD+ {qd} vs {}",
                b.at(t)
            );
        }
    }

    /// ALO's two fixed-point systems are different maps with the same fixed point: iterated alone at
    /// fine settings where both converge, they agree to 1e-11, and so does the weighted iteration.
    #[test]
    fn both_fixed_point_systems_give_the_same_prices() {
        let plan = &PLANS[LADDER.len() - 1];
        for (r, sigma, t, spots) in [
            (0.03, 0.15, 1.0, [90.0, 100.0, 110.0]),
            (0.05, 0.3, 1.0, [80.0, 95.0, 110.0]),
            (0.06, 0.35, 2.0, [70.0, 100.0, 140.0]),
        ] {
            let (m, o) = (model(r, sigma), put(100.0, t));
            let price = |w| {
                price_with(&m, &o, &spots, plan, w, &Cancel::new())
                    .unwrap()
                    .values
            };
            let (sp, vm, mixed) = (price(1.0), price(0.0), price(0.4));
            assert!(crate::relerr(&vm, &sp) < 1e-11, "{sp:?} vs {vm:?}");
            assert!(crate::relerr(&mixed, &sp) < 1e-11, "{sp:?} vs {mixed:?}");
        }
    }

    /// Concentrated kernels (c²T ≫ 1, ω ≫ 3) make the pure smooth-pasting iteration diverge; the
    /// weighted one converges: its finest levels agree with each other and with value matching.
    #[test]
    fn the_weighted_iteration_converges_where_smooth_pasting_alone_diverges() {
        let (m, o) = (model(0.5, 0.2), put(100.0, 5.0));
        let spots = [97.0, 105.0, 120.0];
        let weight = smooth_pasting_weight(&m, 5.0);
        assert!((weight - 2.0 / 26.0).abs() < 1e-15);
        let at = |level: usize, w: f64| {
            price_with(&m, &o, &spots, &PLANS[level], w, &Cancel::new())
                .unwrap()
                .values
        };
        let top = LADDER.len() - 1;
        let (finest, next) = (at(top, weight), at(top - 1, weight));
        assert!(crate::relerr(&next, &finest) < 1e-8, "{next:?} vs {finest:?}");
        assert!(crate::relerr(&at(top, 0.0), &finest) < 1e-6);
        let diverged = crate::relerr(&at(top, 1.0), &finest);
        assert!(diverged > 1e-4, "smooth pasting alone: {diverged:e}");
    }

    #[test]
    fn spots_below_the_perpetual_boundary_are_exercised_without_a_boundary() {
        // BENCHOP 1bII: B∞ = 99.95, every spot is exercised now.
        let (m, o) = (model(0.1, 0.01), put(100.0, 0.25));
        for plan in PLANS.iter() {
            let e = price_with(&m, &o, &[97.0, 98.0, 99.0], plan, 1.0, &Cancel::new()).unwrap();
            assert_eq!(e.values, [3.0, 2.0, 1.0]);
        }
    }

    #[test]
    fn calls_and_non_positive_rates_are_refused_here() {
        let cancel = Cancel::new();
        let call = VanillaOption::american(OptionKind::Call, 100.0, 1.0);
        for (m, o) in [(model(0.03, 0.2), call), (model(0.0, 0.2), put(100.0, 1.0))] {
            assert!(matches!(
                price_level(&m, &o, &[100.0], 0, &cancel),
                Err(Error::NotApplicable { .. })
            ));
        }
        assert!(
            price_level(
                &model(0.03, 0.2),
                &put(100.0, 1.0),
                &[100.0],
                LADDER.len(),
                &cancel
            )
            .unwrap()
            .is_none()
        );
        cancel.cancel();
        assert!(matches!(
            price_level(&model(0.03, 0.2), &put(100.0, 1.0), &[100.0], 0, &cancel),
            Err(Error::Cancelled(_))
        ));
    }
}
