//! Special functions shared by the kernels.

/// Standard normal cumulative distribution function Φ(x), accurate to ~1e-16 relative in the tails.
///
/// ```
/// assert!((benchop::special::norm_cdf(0.0) - 0.5).abs() < 1e-16);
/// assert!((benchop::special::norm_cdf(1.96) - 0.9750021048517795).abs() < 1e-15);
/// ```
pub fn norm_cdf(x: f64) -> f64 {
    // statrs' erfc is off by up to ~1e-10 relative near |x| ≈ 1, which 16-digit references expose.
    crate::method::normal::norm_cdf(x)
}

/// Standard normal density φ(x).
///
/// ```
/// assert!((benchop::special::norm_pdf(0.0) - 0.3989422804014327).abs() < 1e-16);
/// ```
pub fn norm_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Gauss–Legendre nodes and weights on [−1, 1] for `n` points, by Newton's method on the Legendre
/// polynomial from Tricomi's initial guesses (Press et al., Numerical Recipes, §4.6).
///
/// ```
/// let gl = benchop::special::gauss_legendre(5);
/// let integral: f64 = gl.iter().map(|(x, w)| w * x.powi(8)).sum(); // exact up to degree 9
/// assert!((integral - 2.0 / 9.0).abs() < 1e-15);
/// ```
pub fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, x);
            for j in 2..=n {
                let jf = j as f64;
                let p2 = ((2.0 * jf - 1.0) * x * p1 - (jf - 1.0) * p0) / jf;
                p0 = p1;
                p1 = p2;
            }
            dp = n as f64 * (x * p1 - p0) / (x * x - 1.0);
            let step = p1 / dp;
            x -= step;
            if step.abs() < 1e-15 {
                break;
            }
        }
        out.push((x, 2.0 / ((1.0 - x * x) * dp * dp)));
    }
    out
}
