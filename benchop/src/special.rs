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
