//! Custom problems: a job's own model, instrument and evaluation points, as JSON, validated into a
//! [`benchop::Problem`] with one message per wrong field.
//!
//! ```
//! use protocol::problem_spec::ProblemSpec;
//! let spec: ProblemSpec = serde_json::from_value(serde_json::json!({
//!     "model": {"type": "black_scholes", "s0": [90, 100, 110], "r": 0.03, "sigma": 0.15},
//!     "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}
//! })).unwrap();
//! assert_eq!(spec.to_problem().unwrap(), benchop::catalogue::case("1aI").unwrap().problem);
//!
//! let bad: ProblemSpec = serde_json::from_value(serde_json::json!({
//!     "model": {"type": "black_scholes", "s0": [100], "r": 0.03, "sigma": -0.2},
//!     "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}
//! })).unwrap();
//! assert_eq!(bad.to_problem().unwrap_err()[0].field, "problem.model.sigma");
//! ```

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use benchop::instrument::{Barrier, Dividend, Exercise, Instrument, OptionKind, SpreadOption, VanillaOption};
use benchop::model::{BlackScholes, Heston, LocalVol, LocalVolSurface, Merton, Model, TwoAssetBlackScholes};
use benchop::{Points, Problem, Quantity};

/// The most evaluation points a custom problem may have.
pub const MAX_SPEC_POINTS: usize = 50;
/// The most discrete dividends an instrument may have.
pub const MAX_DIVIDENDS: usize = 12;
/// The longest maturity, in years.
pub const MAX_MATURITY: f64 = 30.0;
/// The largest |r|.
pub const MAX_RATE: f64 = 1.0;
/// The largest volatility (and volatility of variance).
pub const MAX_VOLATILITY: f64 = 5.0;

/// A problem defined by the job itself: a model with its spots, and an instrument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "model": {"type": "heston", "s0": [90, 100, 110], "r": 0.03, "v0": 0.04, "kappa": 2, "theta": 0.04, "sigma": 0.5, "rho": -0.7},
    "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}
}))]
pub struct ProblemSpec {
    /// The model of the underlying, with the spot values to price at.
    pub model: ModelSpec,
    /// What is priced.
    pub instrument: InstrumentSpec,
    /// `price` (default), or a Greek (`delta`, `gamma`, `vega`: European options under Black–Scholes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<QuantitySpec>,
}

/// The model of the underlying; `s0` lists the spot values the problem is priced at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSpec {
    /// Black–Scholes–Merton.
    BlackScholes {
        /// Spot values S₀ (1 to 50).
        s0: Vec<f64>,
        /// Risk-free rate, continuously compounded.
        r: f64,
        /// Volatility.
        sigma: f64,
    },
    /// Heston stochastic volatility.
    Heston {
        /// Spot values S₀ (1 to 50).
        s0: Vec<f64>,
        /// Risk-free rate.
        r: f64,
        /// Initial variance V₀.
        v0: f64,
        /// Mean-reversion speed κ.
        kappa: f64,
        /// Long-run variance θ.
        theta: f64,
        /// Volatility of variance σᵥ.
        sigma: f64,
        /// Correlation ρ of asset and variance, inside (−1, 1).
        rho: f64,
    },
    /// Merton jump diffusion with log-normal jumps.
    Merton {
        /// Spot values S₀ (1 to 50).
        s0: Vec<f64>,
        /// Risk-free rate.
        r: f64,
        /// Diffusion volatility.
        sigma: f64,
        /// Jump intensity λ per year.
        lambda: f64,
        /// Mean γ of the log jump size.
        gamma: f64,
        /// Standard deviation δ of the log jump size.
        delta: f64,
    },
    /// Local volatility σ(S, t) from one of the surfaces.
    LocalVol {
        /// Spot values S₀ (1 to 50).
        s0: Vec<f64>,
        /// Risk-free rate.
        r: f64,
        /// The surface.
        surface: SurfaceSpec,
    },
    /// Two correlated geometric Brownian motions (spread and exchange options).
    TwoAsset {
        /// Spot pairs (S₁, S₂) (1 to 50).
        s0: Vec<[f64; 2]>,
        /// Risk-free rate.
        r: f64,
        /// Volatility of the first asset.
        sigma1: f64,
        /// Volatility of the second asset.
        sigma2: f64,
        /// Correlation, inside (−1, 1).
        rho: f64,
    },
}

/// A local volatility surface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SurfaceSpec {
    /// BENCHOP 3aI: σ(S,t) = 0.15 + 0.15·(0.5 + 2t)·(S/100 − 1.2)² / ((S/100)² + 1.44).
    #[serde(rename = "benchop_3ai")]
    Benchop3ai,
    /// BENCHOP 3aII: Dupire local volatility of the SVI implied-variance surface, anchored at each S₀.
    #[serde(rename = "benchop_3aii_svi")]
    Benchop3aiiSvi,
    /// A formula σ(S, t) in `S` and `t`: numbers, `+ - * / ^`, parentheses, `exp`, `ln`, `sqrt`, `abs`,
    /// `tanh`, `min(a, b)`, `max(a, b)`; at most 48 operations and 12 numbers. It must lie in (0, 5]
    /// wherever it is sampled: spots from a twentieth of the strike and the spots to five times them, times
    /// from 0 to maturity.
    Formula {
        /// E.g. `0.2 + 0.1*exp(-t)*(S/100 - 1)^2`.
        sigma: String,
    },
}

/// Call or put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Right {
    /// Pays (S − K)⁺.
    Call,
    /// Pays (K − S)⁺.
    Put,
}

/// The direction of a knock-out barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BarrierKind {
    /// Dies when S rises to the level (every S₀ must lie below it).
    UpAndOut,
    /// Dies when S falls to the level (every S₀ must lie above it).
    DownAndOut,
}

/// A discrete proportional dividend: at `time` the spot drops by `fraction`·S.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DividendSpec {
    /// Payment time in years, inside (0, maturity), increasing from one dividend to the next.
    pub time: f64,
    /// Fraction of the spot paid, in [0, 1).
    pub fraction: f64,
}

/// What is priced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum InstrumentSpec {
    /// Exercised at maturity only.
    European {
        /// Call or put.
        right: Right,
        /// Strike K.
        strike: f64,
        /// Maturity T in years.
        maturity: f64,
        /// Discrete proportional dividends (at most 12).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        dividends: Vec<DividendSpec>,
    },
    /// Exercisable at any time up to maturity.
    American {
        /// Call or put.
        right: Right,
        /// Strike K.
        strike: f64,
        /// Maturity T in years.
        maturity: f64,
        /// Discrete proportional dividends (at most 12).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        dividends: Vec<DividendSpec>,
    },
    /// European knock-out option, continuously monitored, no rebate.
    Barrier {
        /// Call or put.
        right: Right,
        /// Strike K.
        strike: f64,
        /// Maturity T in years.
        maturity: f64,
        /// `up_and_out` or `down_and_out`.
        barrier: BarrierKind,
        /// Barrier level.
        level: f64,
        /// Discrete proportional dividends (at most 12).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        dividends: Vec<DividendSpec>,
    },
    /// European spread call (S₁ − S₂ − K)⁺ on the two-asset model.
    Spread {
        /// Strike K ≥ 0.
        strike: f64,
        /// Maturity T in years.
        maturity: f64,
    },
    /// European exchange option (S₁ − S₂)⁺ (Margrabe) on the two-asset model.
    Exchange {
        /// Maturity T in years.
        maturity: f64,
    },
}

/// The quantity computed at each point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuantitySpec {
    /// The option value.
    Price,
    /// ∂U/∂S.
    Delta,
    /// ∂²U/∂S².
    Gamma,
    /// ∂U/∂σ.
    Vega,
}

/// One wrong field of a request: `{field: "problem.model.sigma", reason: "must be > 0, got -0.2"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// Path of the field in the request body, e.g. `problem.model.s0[2]`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// The reference a job's errors are measured against, and how it was obtained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReferenceInfo {
    /// `published` (catalogue), `closed-form`, `cos`, `fgl`, `fft`, `fd-richardson`, `fd-nu-richardson`,
    /// or `tree-richardson`.
    pub solver: String,
    /// The solver's setting, or where a published reference comes from.
    pub setting: String,
    /// Estimated relative error of the reference values (`0` for exact closed forms, the difference to
    /// the next-coarser level for the American fixed-point method; absent when published).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_estimate: Option<f64>,
    /// Reference value per evaluation point.
    pub values: Vec<f64>,
}

impl ReferenceInfo {
    /// The wire form of a computed reference.
    pub fn computed(r: &benchop::reference::Reference) -> Self {
        Self {
            solver: r.solver(),
            setting: r.setting.clone(),
            error_estimate: Some(r.error_estimate),
            values: r.values.clone(),
        }
    }

    /// A catalogue case's published reference.
    pub fn published(case: &benchop::catalogue::Case) -> Self {
        Self {
            solver: "published".to_owned(),
            setting: case.reference_note.to_owned(),
            error_estimate: None,
            values: case.reference.clone(),
        }
    }
}

/// Collects field errors under a path prefix.
struct Check {
    errors: Vec<FieldError>,
}

impl Check {
    fn fail(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError::new(field, reason));
    }

    /// `lo < v ≤ hi` (or `lo ≤ v` when `closed_below`).
    fn range(&mut self, field: &str, v: f64, lo: f64, hi: f64, closed_below: bool) {
        let ok = v.is_finite() && v <= hi && (if closed_below { v >= lo } else { v > lo });
        if !ok {
            let open = if closed_below { "[" } else { "(" };
            self.fail(field, format!("must lie in {open}{lo}, {hi}], got {v}"));
        }
    }

    fn positive(&mut self, field: &str, v: f64, hi: f64) {
        if !(v.is_finite() && v > 0.0) {
            self.fail(field, format!("must be > 0, got {v}"));
        } else if v > hi {
            self.fail(field, format!("must be at most {hi}, got {v}"));
        }
    }

    fn correlation(&mut self, field: &str, v: f64) {
        if !(v.is_finite() && v > -1.0 && v < 1.0) {
            self.fail(field, format!("must lie strictly inside (-1, 1), got {v}"));
        }
    }

    fn count(&mut self, field: &str, n: usize) {
        if n == 0 {
            self.fail(field, "give at least one spot value");
        } else if n > MAX_SPEC_POINTS {
            self.fail(
                field,
                format!("at most {MAX_SPEC_POINTS} evaluation points, got {n}"),
            );
        }
    }

    fn spots(&mut self, field: &str, s0: &[f64]) {
        self.count(field, s0.len());
        for (i, &s) in s0.iter().enumerate() {
            self.positive(&format!("{field}[{i}]"), s, 1e9);
        }
    }
}

const MODEL: &str = "problem.model";
const INSTRUMENT: &str = "problem.instrument";

impl ProblemSpec {
    /// The number of evaluation points (spot values or spot pairs).
    pub fn point_count(&self) -> usize {
        match &self.model {
            ModelSpec::BlackScholes { s0, .. }
            | ModelSpec::Heston { s0, .. }
            | ModelSpec::Merton { s0, .. }
            | ModelSpec::LocalVol { s0, .. } => s0.len(),
            ModelSpec::TwoAsset { s0, .. } => s0.len(),
        }
    }

    /// A one-line description, e.g. `American put under Heston, K = 100, T = 1, 3 spots`.
    pub fn title(&self) -> String {
        let model = match &self.model {
            ModelSpec::BlackScholes { .. } => "Black–Scholes",
            ModelSpec::Heston { .. } => "Heston",
            ModelSpec::Merton { .. } => "Merton jump diffusion",
            ModelSpec::LocalVol { .. } => "local volatility",
            ModelSpec::TwoAsset { .. } => "two-asset Black–Scholes",
        };
        let right = |r: &Right| match r {
            Right::Call => "call",
            Right::Put => "put",
        };
        let what = match &self.instrument {
            InstrumentSpec::European { right: r, .. } => format!("European {}", right(r)),
            InstrumentSpec::American { right: r, .. } => format!("American {}", right(r)),
            InstrumentSpec::Barrier {
                right: r, barrier, ..
            } => {
                let b = match barrier {
                    BarrierKind::UpAndOut => "up-and-out",
                    BarrierKind::DownAndOut => "down-and-out",
                };
                format!("{b} barrier {}", right(r))
            }
            InstrumentSpec::Spread { .. } => "spread call".to_owned(),
            InstrumentSpec::Exchange { .. } => "exchange option".to_owned(),
        };
        format!("custom: {what} under {model}, {} point(s)", self.point_count())
    }

    /// Validate into a benchop problem. Every wrong field is reported, each with its path in the
    /// request body (`problem.model.sigma`, `problem.instrument.dividends[1].time`, …).
    pub fn to_problem(&self) -> Result<Problem, Vec<FieldError>> {
        let mut c = Check { errors: Vec::new() };
        let (model, points) = self.model(&mut c);
        let instrument = self.instrument(&mut c);
        self.barrier_side(&mut c);
        if let (Model::LocalVol(lv), Instrument::Vanilla(o), true) =
            (&model, &instrument, c.errors.is_empty())
        {
            sample_formula(&mut c, lv, o, &points);
        }
        let quantity = match self.quantity.unwrap_or(QuantitySpec::Price) {
            QuantitySpec::Price => Quantity::Price,
            QuantitySpec::Delta => Quantity::Delta,
            QuantitySpec::Gamma => Quantity::Gamma,
            QuantitySpec::Vega => Quantity::Vega,
        };
        if quantity != Quantity::Price
            && !(matches!(self.model, ModelSpec::BlackScholes { .. })
                && matches!(self.instrument, InstrumentSpec::European { .. }))
        {
            c.fail(
                "problem.quantity",
                "Greeks are defined for European options under black_scholes only",
            );
        }
        match (&self.model, &self.instrument) {
            (ModelSpec::TwoAsset { .. }, InstrumentSpec::Spread { .. } | InstrumentSpec::Exchange { .. }) => {
            }
            (ModelSpec::TwoAsset { .. }, _) => c.fail(
                format!("{INSTRUMENT}.type"),
                "the two_asset model prices spread and exchange options only",
            ),
            (_, InstrumentSpec::Spread { .. } | InstrumentSpec::Exchange { .. }) => c.fail(
                format!("{MODEL}.type"),
                "spread and exchange options need the two_asset model",
            ),
            _ => {}
        }
        if !c.errors.is_empty() {
            return Err(c.errors);
        }
        // Everything benchop checks was checked above with a path; a refusal here names its parameter.
        Problem::new(model, instrument, quantity, points).map_err(|e| {
            let field = match &e {
                benchop::Error::InvalidParameter { name, .. } => format!("problem ({name})"),
                _ => "problem".to_owned(),
            };
            vec![FieldError::new(field, e.to_string())]
        })
    }

    fn model(&self, c: &mut Check) -> (Model, Points) {
        let rate = |c: &mut Check, r: f64| {
            c.range(&format!("{MODEL}.r"), r, -MAX_RATE, MAX_RATE, true);
        };
        let f = |name: &str| format!("{MODEL}.{name}");
        match &self.model {
            ModelSpec::BlackScholes { s0, r, sigma } => {
                c.spots(&f("s0"), s0);
                rate(c, *r);
                c.positive(&f("sigma"), *sigma, MAX_VOLATILITY);
                (
                    Model::BlackScholes(BlackScholes { r: *r, sigma: *sigma }),
                    Points::Spots(s0.clone()),
                )
            }
            ModelSpec::Heston {
                s0,
                r,
                v0,
                kappa,
                theta,
                sigma,
                rho,
            } => {
                c.spots(&f("s0"), s0);
                rate(c, *r);
                c.positive(&f("v0"), *v0, MAX_VOLATILITY);
                c.positive(&f("kappa"), *kappa, 100.0);
                c.positive(&f("theta"), *theta, MAX_VOLATILITY);
                c.positive(&f("sigma"), *sigma, MAX_VOLATILITY);
                c.correlation(&f("rho"), *rho);
                (
                    Model::Heston(Heston {
                        r: *r,
                        v0: *v0,
                        kappa: *kappa,
                        theta: *theta,
                        sigma_v: *sigma,
                        rho: *rho,
                    }),
                    Points::Spots(s0.clone()),
                )
            }
            ModelSpec::Merton {
                s0,
                r,
                sigma,
                lambda,
                gamma,
                delta,
            } => {
                c.spots(&f("s0"), s0);
                rate(c, *r);
                c.positive(&f("sigma"), *sigma, MAX_VOLATILITY);
                c.range(&f("lambda"), *lambda, 0.0, 100.0, true);
                c.range(&f("gamma"), *gamma, -5.0, 5.0, true);
                c.range(&f("delta"), *delta, 0.0, MAX_VOLATILITY, true);
                (
                    Model::Merton(Merton {
                        r: *r,
                        sigma: *sigma,
                        lambda: *lambda,
                        gamma: *gamma,
                        delta: *delta,
                    }),
                    Points::Spots(s0.clone()),
                )
            }
            ModelSpec::LocalVol { s0, r, surface } => {
                c.spots(&f("s0"), s0);
                rate(c, *r);
                let surface = match surface {
                    SurfaceSpec::Benchop3ai => LocalVolSurface::Benchop3aI,
                    SurfaceSpec::Benchop3aiiSvi => LocalVolSurface::SviBenchop3aII,
                    SurfaceSpec::Formula { sigma } => match benchop::formula::Formula::parse(sigma) {
                        Ok(f) => LocalVolSurface::Formula(f),
                        Err(e) => {
                            c.fail(format!("{MODEL}.surface.sigma"), e.to_string());
                            LocalVolSurface::Benchop3aI
                        }
                    },
                };
                (
                    Model::LocalVol(LocalVol { r: *r, surface }),
                    Points::Spots(s0.clone()),
                )
            }
            ModelSpec::TwoAsset {
                s0,
                r,
                sigma1,
                sigma2,
                rho,
            } => {
                c.count(&f("s0"), s0.len());
                for (i, pair) in s0.iter().enumerate() {
                    for (j, &s) in pair.iter().enumerate() {
                        c.positive(&format!("{MODEL}.s0[{i}][{j}]"), s, 1e9);
                    }
                }
                rate(c, *r);
                c.positive(&f("sigma1"), *sigma1, MAX_VOLATILITY);
                c.positive(&f("sigma2"), *sigma2, MAX_VOLATILITY);
                c.correlation(&f("rho"), *rho);
                (
                    Model::TwoAsset(TwoAssetBlackScholes {
                        r: *r,
                        sigma1: *sigma1,
                        sigma2: *sigma2,
                        rho: *rho,
                    }),
                    Points::SpotPairs(s0.clone()),
                )
            }
        }
    }

    fn instrument(&self, c: &mut Check) -> Instrument {
        let f = |name: &str| format!("{INSTRUMENT}.{name}");
        let kind = |r: &Right| match r {
            Right::Call => OptionKind::Call,
            Right::Put => OptionKind::Put,
        };
        let vanilla = |c: &mut Check, right: &Right, strike: f64, maturity: f64, divs: &[DividendSpec]| {
            c.positive(&f("strike"), strike, 1e9);
            c.positive(&f("maturity"), maturity, MAX_MATURITY);
            if divs.len() > MAX_DIVIDENDS {
                c.fail(
                    f("dividends"),
                    format!("at most {MAX_DIVIDENDS} dividends, got {}", divs.len()),
                );
            }
            let mut last = 0.0;
            for (i, d) in divs.iter().enumerate() {
                let field = format!("{INSTRUMENT}.dividends[{i}]");
                if !(d.time.is_finite() && d.time > last && d.time < maturity) {
                    c.fail(
                        format!("{field}.time"),
                        format!(
                            "must lie inside ({last}, maturity = {maturity}) and after the previous dividend, got {}",
                            d.time
                        ),
                    );
                }
                if !(d.fraction.is_finite() && (0.0..1.0).contains(&d.fraction)) {
                    c.fail(
                        format!("{field}.fraction"),
                        format!("must lie in [0, 1), got {}", d.fraction),
                    );
                }
                if d.time.is_finite() {
                    last = d.time.max(last);
                }
            }
            VanillaOption {
                dividends: divs
                    .iter()
                    .map(|d| Dividend {
                        time: d.time,
                        fraction: d.fraction,
                    })
                    .collect(),
                ..VanillaOption::european(kind(right), strike, maturity)
            }
        };
        match &self.instrument {
            InstrumentSpec::European {
                right,
                strike,
                maturity,
                dividends,
            } => Instrument::Vanilla(vanilla(c, right, *strike, *maturity, dividends)),
            InstrumentSpec::American {
                right,
                strike,
                maturity,
                dividends,
            } => Instrument::Vanilla(VanillaOption {
                exercise: Exercise::American,
                ..vanilla(c, right, *strike, *maturity, dividends)
            }),
            InstrumentSpec::Barrier {
                right,
                strike,
                maturity,
                barrier,
                level,
                dividends,
            } => {
                c.positive(&f("level"), *level, 1e9);
                Instrument::Vanilla(VanillaOption {
                    barrier: Some(match barrier {
                        BarrierKind::UpAndOut => Barrier::UpAndOut(*level),
                        BarrierKind::DownAndOut => Barrier::DownAndOut(*level),
                    }),
                    ..vanilla(c, right, *strike, *maturity, dividends)
                })
            }
            InstrumentSpec::Spread { strike, maturity } => {
                c.range(&f("strike"), *strike, 0.0, 1e9, true);
                c.positive(&f("maturity"), *maturity, MAX_MATURITY);
                Instrument::Spread(SpreadOption {
                    strike: *strike,
                    maturity: *maturity,
                })
            }
            InstrumentSpec::Exchange { maturity } => {
                c.positive(&f("maturity"), *maturity, MAX_MATURITY);
                Instrument::Spread(SpreadOption {
                    strike: 0.0,
                    maturity: *maturity,
                })
            }
        }
    }

    /// A knock-out option priced from a spot already past its barrier is dead: refuse such spots.
    fn barrier_side(&self, c: &mut Check) {
        let InstrumentSpec::Barrier { barrier, level, .. } = &self.instrument else {
            return;
        };
        let spots: &[f64] = match &self.model {
            ModelSpec::BlackScholes { s0, .. }
            | ModelSpec::Heston { s0, .. }
            | ModelSpec::Merton { s0, .. }
            | ModelSpec::LocalVol { s0, .. } => s0,
            ModelSpec::TwoAsset { .. } => return,
        };
        for (i, &s) in spots.iter().enumerate() {
            let alive = match barrier {
                BarrierKind::UpAndOut => s < *level,
                BarrierKind::DownAndOut => s > *level,
            };
            if !alive {
                let side = match barrier {
                    BarrierKind::UpAndOut => "below",
                    BarrierKind::DownAndOut => "above",
                };
                c.fail(
                    format!("{MODEL}.s0[{i}]"),
                    format!("must lie {side} the barrier level {level}, got {s} (the option is already knocked out)"),
                );
            }
        }
    }

    /// Refuse a reference with a value too close to zero for a relative error to mean anything.
    pub fn check_reference(&self, values: &[f64]) -> Result<(), Vec<FieldError>> {
        let errors: Vec<FieldError> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| !(v.is_finite() && v.abs() >= MIN_REFERENCE))
            .map(|(i, v)| {
                FieldError::new(
                    format!("{MODEL}.s0[{i}]"),
                    format!(
                        "the reference value at this point is {v:e}: below {MIN_REFERENCE:e}, a relative error \
                         against it means nothing; choose points where the option is worth something"
                    ),
                )
            })
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// Examples, one per family, as the OpenAPI description and the README show them.
    pub fn examples() -> Vec<(&'static str, serde_json::Value)> {
        use serde_json::json;
        vec![
            (
                "European call, Black–Scholes",
                json!({"model": {"type": "black_scholes", "s0": [90, 100, 110], "r": 0.03, "sigma": 0.2},
                       "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 0.5}}),
            ),
            (
                "American put, Black–Scholes",
                json!({"model": {"type": "black_scholes", "s0": [80, 90, 100], "r": 0.05, "sigma": 0.3},
                       "instrument": {"type": "american", "right": "put", "strike": 95, "maturity": 1}}),
            ),
            (
                "Up-and-out barrier call",
                json!({"model": {"type": "black_scholes", "s0": [90, 100, 110], "r": 0.03, "sigma": 0.2},
                       "instrument": {"type": "barrier", "right": "call", "strike": 100, "maturity": 1,
                                      "barrier": "up_and_out", "level": 140}}),
            ),
            (
                "European call with a discrete dividend",
                json!({"model": {"type": "black_scholes", "s0": [90, 100, 110], "r": 0.03, "sigma": 0.2},
                       "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1,
                                      "dividends": [{"time": 0.5, "fraction": 0.02}]}}),
            ),
            (
                "European call, Heston",
                json!({"model": {"type": "heston", "s0": [90, 100, 110], "r": 0.03, "v0": 0.04, "kappa": 2,
                                 "theta": 0.04, "sigma": 0.5, "rho": -0.7},
                       "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}}),
            ),
            (
                "European put, Merton jump diffusion",
                json!({"model": {"type": "merton", "s0": [90, 100, 110], "r": 0.03, "sigma": 0.2,
                                 "lambda": 0.5, "gamma": -0.1, "delta": 0.15},
                       "instrument": {"type": "european", "right": "put", "strike": 100, "maturity": 1}}),
            ),
            (
                "European call, local volatility (BENCHOP 3aI surface)",
                json!({"model": {"type": "local_vol", "s0": [95, 105], "r": 0.02, "surface": {"type": "benchop_3ai"}},
                       "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 0.75}}),
            ),
            (
                "European put, local volatility from a formula",
                json!({"model": {"type": "local_vol", "s0": [90, 100, 110], "r": 0.03,
                                 "surface": {"type": "formula", "sigma": "0.2 + 0.1*exp(-t)*(S/100 - 1)^2"}},
                       "instrument": {"type": "european", "right": "put", "strike": 100, "maturity": 1}}),
            ),
            (
                "Spread call, two-asset Black–Scholes",
                json!({"model": {"type": "two_asset", "s0": [[100, 90], [100, 100]], "r": 0.03,
                                 "sigma1": 0.2, "sigma2": 0.3, "rho": 0.4},
                       "instrument": {"type": "spread", "strike": 5, "maturity": 1}}),
            ),
        ]
    }
}

/// Check a formula surface where the kernels will evaluate it: spots log-spaced from a twentieth to five
/// times the strike and the spots, times from 0 to maturity.
fn sample_formula(c: &mut Check, lv: &LocalVol, o: &VanillaOption, points: &Points) {
    let LocalVolSurface::Formula(f) = lv.surface else {
        return;
    };
    let Points::Spots(spots) = points else {
        return;
    };
    let lo = spots.iter().copied().fold(o.strike, f64::min) / 20.0;
    let hi = spots.iter().copied().fold(o.strike, f64::max) * 5.0;
    const N_S: usize = 60;
    const N_T: usize = 12;
    for i in 0..=N_S {
        let s = lo * (hi / lo).powf(i as f64 / N_S as f64);
        for j in 0..=N_T {
            let t = o.maturity * j as f64 / N_T as f64;
            let v = f.eval(s, t);
            if !(v.is_finite() && v > 0.0 && v <= MAX_VOLATILITY) {
                c.fail(
                    format!("{MODEL}.surface.sigma"),
                    format!("σ(S = {s:.4}, t = {t:.4}) = {v}: must lie in (0, {MAX_VOLATILITY}] on the pricing domain"),
                );
                return;
            }
        }
    }
}

/// The smallest reference value a custom problem may have (relative errors need a non-vanishing denominator).
pub const MIN_REFERENCE: f64 = 1e-8;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> ProblemSpec {
        serde_json::from_value(v).unwrap()
    }

    fn fields(v: serde_json::Value) -> Vec<String> {
        spec(v)
            .to_problem()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn every_example_validates() {
        for (name, v) in ProblemSpec::examples() {
            let s: ProblemSpec = serde_json::from_value(v).unwrap_or_else(|e| panic!("{name}: {e}"));
            let p = s.to_problem().unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(p.points().len(), s.point_count(), "{name}");
            assert!(
                benchop::MethodId::ALL.iter().any(|m| m.applies_to(&p)),
                "{name}: no method applies"
            );
        }
    }

    #[test]
    fn specs_equal_to_catalogue_cases_build_the_same_problems() {
        let cases = [
            (
                "1bI",
                json!({"model": {"type": "black_scholes", "s0": [90, 100, 110], "r": 0.03, "sigma": 0.15},
                       "instrument": {"type": "american", "right": "put", "strike": 100, "maturity": 1}}),
            ),
            (
                "1cI",
                json!({"model": {"type": "black_scholes", "s0": [90, 100, 110], "r": 0.03, "sigma": 0.15},
                       "instrument": {"type": "barrier", "right": "call", "strike": 100, "maturity": 1,
                                      "barrier": "up_and_out", "level": 125}}),
            ),
            (
                "2b",
                json!({"model": {"type": "black_scholes", "s0": [90, 100, 110], "r": 0.03, "sigma": 0.15},
                       "instrument": {"type": "american", "right": "call", "strike": 100, "maturity": 0.5,
                                      "dividends": [{"time": 0.4, "fraction": 0.03}]}}),
            ),
            (
                "3aI",
                json!({"model": {"type": "local_vol", "s0": [90, 100, 110], "r": 0.03, "surface": {"type": "benchop_3ai"}},
                       "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}}),
            ),
            (
                "4a",
                json!({"model": {"type": "heston", "s0": [90, 100, 110], "r": 0.03, "v0": 0.0225, "kappa": 2,
                                 "theta": 0.0225, "sigma": 0.25, "rho": -0.5},
                       "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}}),
            ),
            (
                "5a",
                json!({"model": {"type": "merton", "s0": [90, 100, 110], "r": 0.03, "sigma": 0.15,
                                 "lambda": 0.4, "gamma": -0.5, "delta": 0.4},
                       "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}}),
            ),
            (
                "6a",
                json!({"model": {"type": "two_asset", "s0": [[100, 90], [100, 100], [100, 110], [90, 100], [110, 100]],
                                 "r": 0.03, "sigma1": 0.15, "sigma2": 0.15, "rho": 0.5},
                       "instrument": {"type": "exchange", "maturity": 1}}),
            ),
            (
                "1aI-Vega",
                json!({"model": {"type": "black_scholes", "s0": [90, 100, 110], "r": 0.03, "sigma": 0.15},
                       "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1},
                       "quantity": "vega"}),
            ),
        ];
        for (id, v) in cases {
            let case = benchop::catalogue::case(id).unwrap();
            assert_eq!(spec(v).to_problem().unwrap(), case.problem, "{id}");
        }
    }

    #[test]
    fn bad_fields_are_named_with_their_path() {
        let heston = |field: &str, value: serde_json::Value| {
            let mut m = json!({"type": "heston", "s0": [90, 100], "r": 0.03, "v0": 0.04, "kappa": 2,
                               "theta": 0.04, "sigma": 0.5, "rho": -0.7});
            m[field] = value;
            json!({"model": m, "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}})
        };
        assert_eq!(fields(heston("rho", json!(-1.0))), ["problem.model.rho"]);
        assert_eq!(fields(heston("v0", json!(0))), ["problem.model.v0"]);
        assert_eq!(fields(heston("kappa", json!(-2))), ["problem.model.kappa"]);
        assert_eq!(fields(heston("theta", json!(1e9))), ["problem.model.theta"]);
        assert_eq!(fields(heston("sigma", json!(-0.5))), ["problem.model.sigma"]);
        assert_eq!(fields(heston("r", json!(3.0))), ["problem.model.r"]);
        assert_eq!(
            fields(heston("s0", json!([100, -5, 0]))),
            ["problem.model.s0[1]", "problem.model.s0[2]"]
        );
        assert_eq!(fields(heston("s0", json!([]))), ["problem.model.s0"]);
        assert_eq!(fields(heston("s0", json!(vec![100; 51]))), ["problem.model.s0"]);

        // Black–Scholes: several errors at once, model and instrument.
        assert_eq!(
            fields(
                json!({"model": {"type": "black_scholes", "s0": [100], "r": 0.03, "sigma": 0},
                          "instrument": {"type": "european", "right": "put", "strike": -1, "maturity": 0}})
            ),
            [
                "problem.model.sigma",
                "problem.instrument.strike",
                "problem.instrument.maturity"
            ]
        );
        // Merton.
        assert_eq!(
            fields(
                json!({"model": {"type": "merton", "s0": [100], "r": 0.03, "sigma": 0.2, "lambda": -1,
                                    "gamma": 0, "delta": -0.1},
                          "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}})
            ),
            ["problem.model.lambda", "problem.model.delta"]
        );
        // Local volatility.
        assert_eq!(
            fields(
                json!({"model": {"type": "local_vol", "s0": [100], "r": f64::MAX, "surface": {"type": "benchop_3ai"}},
                          "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}})
            ),
            ["problem.model.r"]
        );
        // Formulas: a syntax error, and one that turns negative on the pricing domain.
        let lv = |sigma: &str| {
            json!({"model": {"type": "local_vol", "s0": [100], "r": 0.03, "surface": {"type": "formula", "sigma": sigma}},
                   "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}})
        };
        assert_eq!(fields(lv("0.2 + *S")), ["problem.model.surface.sigma"]);
        assert_eq!(fields(lv("0.2 - 0.001*S")), ["problem.model.surface.sigma"]);
        assert_eq!(fields(lv("sqrt(t - 0.5)")), ["problem.model.surface.sigma"]);
        assert!(spec(lv("0.2 + 0.001*S")).to_problem().is_ok());
        // Barrier: spots on the wrong side, a bad level.
        assert_eq!(
            fields(
                json!({"model": {"type": "black_scholes", "s0": [90, 130], "r": 0.03, "sigma": 0.2},
                          "instrument": {"type": "barrier", "right": "call", "strike": 100, "maturity": 1,
                                         "barrier": "up_and_out", "level": 125}})
            ),
            ["problem.model.s0[1]"]
        );
        assert_eq!(
            fields(
                json!({"model": {"type": "black_scholes", "s0": [90], "r": 0.03, "sigma": 0.2},
                          "instrument": {"type": "barrier", "right": "put", "strike": 100, "maturity": 1,
                                         "barrier": "down_and_out", "level": 95}})
            ),
            ["problem.model.s0[0]"]
        );
        // Dividends.
        assert_eq!(
            fields(
                json!({"model": {"type": "black_scholes", "s0": [90], "r": 0.03, "sigma": 0.2},
                          "instrument": {"type": "american", "right": "call", "strike": 100, "maturity": 1,
                                         "dividends": [{"time": 0.5, "fraction": 0.02}, {"time": 0.4, "fraction": 1.5}]}})
            ),
            [
                "problem.instrument.dividends[1].time",
                "problem.instrument.dividends[1].fraction"
            ]
        );
        // Two assets.
        assert_eq!(
            fields(
                json!({"model": {"type": "two_asset", "s0": [[100, 0]], "r": 0.03, "sigma1": 0.2, "sigma2": 0.2,
                                    "rho": 1.0},
                          "instrument": {"type": "spread", "strike": -1, "maturity": 1}})
            ),
            [
                "problem.model.s0[0][1]",
                "problem.model.rho",
                "problem.instrument.strike"
            ]
        );
        // Mismatched model and instrument.
        assert_eq!(
            fields(
                json!({"model": {"type": "two_asset", "s0": [[100, 90]], "r": 0.03, "sigma1": 0.2,
                                    "sigma2": 0.2, "rho": 0.1},
                          "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}})
            ),
            ["problem.instrument.type"]
        );
        assert_eq!(
            fields(
                json!({"model": {"type": "heston", "s0": [100], "r": 0.03, "v0": 0.04, "kappa": 2,
                                    "theta": 0.04, "sigma": 0.5, "rho": -0.7},
                          "instrument": {"type": "exchange", "maturity": 1}})
            ),
            ["problem.model.type"]
        );
        // Greeks outside Black–Scholes European.
        assert_eq!(
            fields(
                json!({"model": {"type": "black_scholes", "s0": [100], "r": 0.03, "sigma": 0.2},
                          "instrument": {"type": "american", "right": "put", "strike": 100, "maturity": 1},
                          "quantity": "delta"})
            ),
            ["problem.quantity"]
        );
    }

    #[test]
    fn unknown_fields_and_types_are_refused_when_parsing() {
        for v in [
            json!({"model": {"type": "black_scholes", "s0": [100], "r": 0.03, "sigma": 0.2, "sigmaa": 1},
                   "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}}),
            json!({"model": {"type": "sabr", "s0": [100], "r": 0.03},
                   "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}}),
            json!({"model": {"type": "black_scholes", "s0": [100], "r": 0.03, "sigma": 0.2},
                   "instrument": {"type": "european", "right": "straddle", "strike": 100, "maturity": 1}}),
        ] {
            assert!(serde_json::from_value::<ProblemSpec>(v.clone()).is_err(), "{v}");
        }
    }

    #[test]
    fn tiny_references_are_refused_at_their_point() {
        let s = spec(ProblemSpec::examples()[0].1.clone());
        assert!(s.check_reference(&[1.0, 2.0, 3.0]).is_ok());
        let e = s.check_reference(&[1.0, 1e-12, 3.0]).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "problem.model.s0[1]");
    }

    #[test]
    fn every_example_gets_a_reference_accurate_enough_for_the_default_tolerance() {
        for (name, v) in ProblemSpec::examples() {
            let s = spec(v);
            let started = std::time::Instant::now();
            let r = benchop::reference::compute(&s.to_problem().unwrap(), &benchop::Cancel::new()).unwrap();
            println!(
                "{name}: {} in {:.2} s, error estimate {:.1e}",
                r.solver(),
                started.elapsed().as_secs_f64(),
                r.error_estimate
            );
            assert!(r.error_estimate <= 1e-5, "{name}: {}", r.source());
            assert!(s.check_reference(&r.values).is_ok(), "{name}: {:?}", r.values);
        }
    }

    #[test]
    fn custom_specs_of_catalogue_cases_reproduce_their_references() {
        // (case, the spec, the values to compare with, tolerance): closed and semi-closed forms match the
        // published digits; the American put matches the converged values of shared/BENCHOP.md (the
        // published ones are ~1e-5 low).
        #[allow(clippy::type_complexity)]
        let cases: [(&str, serde_json::Value, Option<[f64; 3]>); 5] = [
            (
                "1aI",
                json!({"model": {"type": "black_scholes", "s0": [90, 100, 110], "r": 0.03, "sigma": 0.15},
                       "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}}),
                None,
            ),
            (
                "1cI",
                json!({"model": {"type": "black_scholes", "s0": [90, 100, 110], "r": 0.03, "sigma": 0.15},
                       "instrument": {"type": "barrier", "right": "call", "strike": 100, "maturity": 1,
                                      "barrier": "up_and_out", "level": 125}}),
                None,
            ),
            (
                "4a",
                json!({"model": {"type": "heston", "s0": [90, 100, 110], "r": 0.03, "v0": 0.0225, "kappa": 2,
                                 "theta": 0.0225, "sigma": 0.25, "rho": -0.5},
                       "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}}),
                None,
            ),
            (
                "5a",
                json!({"model": {"type": "merton", "s0": [90, 100, 110], "r": 0.03, "sigma": 0.15,
                                 "lambda": 0.4, "gamma": -0.5, "delta": 0.4},
                       "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}}),
                None,
            ),
            (
                "1bI",
                json!({"model": {"type": "black_scholes", "s0": [90, 100, 110], "r": 0.03, "sigma": 0.15},
                       "instrument": {"type": "american", "right": "put", "strike": 100, "maturity": 1}}),
                Some([10.7265416158, 4.8206437862, 1.8282251049]),
            ),
        ];
        for (id, v, converged) in cases {
            let case = benchop::catalogue::case(id).unwrap();
            let r =
                benchop::reference::compute(&spec(v).to_problem().unwrap(), &benchop::Cancel::new()).unwrap();
            let expected = converged.map_or(case.reference.clone(), |c| c.to_vec());
            let err = benchop::relerr(&r.values, &expected);
            assert!(err <= 1e-6, "{id}: {} is {err:e} from the reference", r.source());
        }
    }

    #[test]
    fn a_formula_surface_equal_to_3ai_prices_like_the_built_in_surface() {
        let v = json!({"model": {"type": "local_vol", "s0": [90, 100, 110], "r": 0.03, "surface": {"type": "formula",
                                 "sigma": "0.15 + 0.15*(0.5 + 2*t)*(S/100 - 1.2)^2/((S/100)^2 + 1.44)"}},
                       "instrument": {"type": "european", "right": "call", "strike": 100, "maturity": 1}});
        let p = spec(v).to_problem().unwrap();
        let case = benchop::catalogue::case("3aI").unwrap();
        let cancel = benchop::Cancel::new();
        let r = benchop::reference::compute(&p, &cancel).unwrap();
        let builtin = benchop::reference::compute(&case.problem, &cancel).unwrap();
        assert_eq!(r.solver(), builtin.solver());
        assert!(
            benchop::relerr(&r.values, &builtin.values) < 1e-12,
            "{r:?} {builtin:?}"
        );
        // 3aI is published to 6 digits.
        assert!(
            benchop::relerr(&r.values, &case.reference) < 2e-5,
            "{}",
            r.source()
        );
    }

    #[test]
    fn job_requests_take_an_id_or_a_spec_and_name_the_path_of_a_shape_error() {
        use crate::api::{JobRequest, ProblemInput};
        let r: JobRequest = serde_json::from_value(json!({"problem": "1aI"})).unwrap();
        assert_eq!(r.problem, ProblemInput::Catalogue("1aI".into()));
        let (_, example) = &ProblemSpec::examples()[4];
        let r: JobRequest = serde_json::from_value(json!({"problem": example, "methods": ["cos"]})).unwrap();
        assert!(matches!(r.problem, ProblemInput::Custom(_)));
        // The request serialises back to the same spec (the idempotency check compares it).
        let back: ProblemSpec =
            serde_json::from_value(serde_json::to_value(&r).unwrap()["problem"].clone()).unwrap();
        assert_eq!(back, spec(example.clone()));

        let mut bad = example.clone();
        bad["model"]["sigmaa"] = json!(1);
        let e = serde_json::from_value::<JobRequest>(json!({"problem": bad})).unwrap_err();
        assert!(e.to_string().contains("problem.model"), "{e}");
        assert!(e.to_string().contains("sigmaa"), "{e}");
        let e = serde_json::from_value::<JobRequest>(json!({"problem": 42})).unwrap_err();
        assert!(e.to_string().contains("catalogue id"), "{e}");

        let mut bad = example.clone();
        bad["model"]["rho"] = json!(-3);
        let r: JobRequest = serde_json::from_value(json!({"problem": bad})).unwrap();
        let e = r.validate().unwrap_err();
        assert_eq!(e.code(), "invalid_problem");
        let crate::api::ValidationError::InvalidProblem(fields) = e else {
            unreachable!()
        };
        assert_eq!(fields[0].field, "problem.model.rho");

        // Valid, but no method prices an American option under Heston yet.
        let mut american = example.clone();
        american["instrument"]["type"] = json!("american");
        let r: JobRequest = serde_json::from_value(json!({"problem": american})).unwrap();
        let e = r.validate().unwrap_err();
        assert_eq!(e.code(), "no_applicable_method");
        assert!(e.to_string().contains("American call under Heston"), "{e}");
    }

    #[test]
    fn a_validated_custom_job_computes_and_ships_its_reference() {
        use crate::api::JobRequest;
        let (_, example) = &ProblemSpec::examples()[1];
        let r: JobRequest = serde_json::from_value(json!({"problem": example})).unwrap();
        let mut valid = r.validate().unwrap();
        assert_eq!(valid.problem.id(), "custom");
        assert_eq!(valid.problem.points(), 3);
        assert!(valid.problem.reference().is_none());
        valid.compute_reference(&benchop::Cancel::new()).unwrap();
        let reference = valid.problem.reference().unwrap();
        // An American put: the Andersen–Lake–Offengenden fixed point, with an estimated error.
        assert_eq!(reference.solver, "closed-form");
        let estimate = reference.error_estimate.unwrap();
        assert!(estimate > 0.0 && estimate <= 1e-9, "{estimate}");
        let crate::ProblemRef::Custom(task) = valid.problem.task_ref() else {
            unreachable!()
        };
        assert_eq!(task.reference, reference);

        // Out of time: refused with a clear code, not a hang.
        let mut valid = r.validate().unwrap();
        let cancel = benchop::Cancel::new();
        cancel.cancel();
        assert_eq!(
            valid.compute_reference(&cancel).unwrap_err().code(),
            "reference_unavailable"
        );
    }

    #[test]
    fn specs_round_trip() {
        for (name, v) in ProblemSpec::examples() {
            let s = spec(v.clone());
            assert_eq!(spec(serde_json::to_value(&s).unwrap()), s, "{name}");
        }
    }
}
