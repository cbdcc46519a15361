//! A pricing problem: model + instrument + quantity + evaluation points, validated once.

use crate::Error;
use crate::instrument::{Exercise, Instrument};
use crate::model::{Model, positive};

/// What is computed at each evaluation point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantity {
    /// The option value U.
    Price,
    /// ∂U/∂S.
    Delta,
    /// ∂²U/∂S².
    Gamma,
    /// ∂U/∂σ (Black–Scholes volatility).
    Vega,
}

impl Quantity {
    /// Lower-case name as the API spells it.
    pub fn name(self) -> &'static str {
        match self {
            Quantity::Price => "price",
            Quantity::Delta => "delta",
            Quantity::Gamma => "gamma",
            Quantity::Vega => "vega",
        }
    }
}

/// Where the quantity is evaluated.
#[derive(Debug, Clone, PartialEq)]
pub enum Points {
    /// Spot prices S₀ of a single-asset problem (the instrument's strike applies).
    Spots(Vec<f64>),
    /// Strikes at a fixed spot (BENCHOP–SLV SABR cases); each replaces the instrument's strike.
    Strikes {
        /// The spot S₀.
        spot: f64,
        /// The strikes.
        strikes: Vec<f64>,
    },
    /// Spot pairs (S₁, S₂) of a two-asset problem.
    SpotPairs(Vec<[f64; 2]>),
}

impl Points {
    /// Number of evaluation points.
    pub fn len(&self) -> usize {
        match self {
            Points::Spots(v) => v.len(),
            Points::Strikes { strikes, .. } => strikes.len(),
            Points::SpotPairs(v) => v.len(),
        }
    }

    /// `true` when there are no points.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The most evaluation points a problem may have.
pub const MAX_POINTS: usize = 1000;

/// A validated pricing problem.
///
/// ```
/// use benchop::{Problem, Quantity, Points, OptionKind, VanillaOption, Instrument};
/// use benchop::model::{Model, BlackScholes};
/// let p = Problem::new(
///     Model::BlackScholes(BlackScholes { r: 0.03, sigma: 0.15 }),
///     Instrument::Vanilla(VanillaOption::european(OptionKind::Call, 100.0, 1.0)),
///     Quantity::Price,
///     Points::Spots(vec![90.0, 100.0, 110.0]),
/// ).unwrap();
/// assert_eq!(p.points().len(), 3);
/// assert!(Problem::new(*p.model(), p.instrument().clone(), Quantity::Price, Points::Spots(vec![-1.0])).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    model: Model,
    instrument: Instrument,
    quantity: Quantity,
    points: Points,
}

impl Problem {
    /// Validate the parts and their combination.
    pub fn new(
        model: Model,
        instrument: Instrument,
        quantity: Quantity,
        points: Points,
    ) -> Result<Self, Error> {
        model.validate()?;
        instrument.validate()?;
        if points.is_empty() {
            return Err(Error::invalid(
                "points",
                "at least one evaluation point is required",
            ));
        }
        if points.len() > MAX_POINTS {
            return Err(Error::invalid(
                "points",
                format!("at most {MAX_POINTS} evaluation points"),
            ));
        }
        match (&points, instrument.dimension()) {
            (Points::Spots(v), 1) => v.iter().try_for_each(|&s| positive("spot", s))?,
            (Points::Strikes { spot, strikes }, 1) => {
                positive("spot", *spot)?;
                strikes.iter().try_for_each(|&k| positive("strike", k))?;
            }
            (Points::SpotPairs(v), 2) => v.iter().flatten().try_for_each(|&s| positive("spot", s))?,
            _ => {
                return Err(Error::invalid(
                    "points",
                    "evaluation points do not match the instrument's assets",
                ));
            }
        }
        let two_asset_model = matches!(model, Model::TwoAsset(_));
        if two_asset_model != (instrument.dimension() == 2) {
            return Err(Error::invalid(
                "model",
                "a two-asset model goes with a two-asset instrument",
            ));
        }
        if quantity != Quantity::Price {
            let vanilla_bs = matches!(model, Model::BlackScholes(_))
                && matches!(&instrument, Instrument::Vanilla(o) if o.exercise == Exercise::European);
            if !vanilla_bs {
                return Err(Error::invalid(
                    "quantity",
                    "Greeks are defined for European options under Black–Scholes only",
                ));
            }
        }
        Ok(Self {
            model,
            instrument,
            quantity,
            points,
        })
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The instrument.
    pub fn instrument(&self) -> &Instrument {
        &self.instrument
    }

    /// The quantity computed at each point.
    pub fn quantity(&self) -> Quantity {
        self.quantity
    }

    /// The evaluation points.
    pub fn points(&self) -> &Points {
        &self.points
    }

    /// The same problem with another quantity (used to compute Greeks by bumping prices).
    pub fn with_quantity(&self, quantity: Quantity) -> Result<Self, Error> {
        Self::new(self.model, self.instrument.clone(), quantity, self.points.clone())
    }

    /// The same problem with other evaluation points.
    pub fn with_points(&self, points: Points) -> Result<Self, Error> {
        Self::new(self.model, self.instrument.clone(), self.quantity, points)
    }

    /// The same problem under another model (used for vega by bumping σ).
    pub fn with_model(&self, model: Model) -> Result<Self, Error> {
        Self::new(model, self.instrument.clone(), self.quantity, self.points.clone())
    }
}

/// The benchmark's error measure: `max_i |computed_i − reference_i| / |reference_i|`.
///
/// Returns `f64::INFINITY` when the lengths differ or a value is not finite, so a broken result never
/// "reaches" a tolerance.
///
/// ```
/// let e = benchop::relerr(&[1.0001, 2.0], &[1.0, 2.0]);
/// assert!((e - 1e-4).abs() < 1e-12);
/// assert_eq!(benchop::relerr(&[f64::NAN], &[1.0]), f64::INFINITY);
/// ```
pub fn relerr(computed: &[f64], reference: &[f64]) -> f64 {
    if computed.len() != reference.len() || computed.is_empty() {
        return f64::INFINITY;
    }
    let mut worst: f64 = 0.0;
    for (&c, &r) in computed.iter().zip(reference) {
        let e = (c - r).abs() / r.abs();
        if !e.is_finite() {
            return f64::INFINITY;
        }
        worst = worst.max(e);
    }
    worst
}
