//! Instruments: what is being priced.

use crate::Error;
use crate::model::{non_negative, positive};

/// Call or put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionKind {
    /// Pays (S − K)⁺.
    Call,
    /// Pays (K − S)⁺.
    Put,
}

impl OptionKind {
    /// The payoff at spot `s` for strike `k`.
    ///
    /// ```
    /// use benchop::OptionKind;
    /// assert_eq!(OptionKind::Call.payoff(110.0, 100.0), 10.0);
    /// assert_eq!(OptionKind::Put.payoff(110.0, 100.0), 0.0);
    /// ```
    pub fn payoff(self, s: f64, k: f64) -> f64 {
        match self {
            OptionKind::Call => (s - k).max(0.0),
            OptionKind::Put => (k - s).max(0.0),
        }
    }
}

/// When the option may be exercised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exercise {
    /// At maturity only.
    European,
    /// At any time up to maturity.
    American,
}

/// A continuously monitored knock-out barrier without rebate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Barrier {
    /// The option dies when S reaches the level from below.
    UpAndOut(f64),
    /// The option dies when S reaches the level from above.
    DownAndOut(f64),
}

impl Barrier {
    /// The barrier level.
    pub fn level(&self) -> f64 {
        match *self {
            Barrier::UpAndOut(b) | Barrier::DownAndOut(b) => b,
        }
    }
}

/// A discrete proportional dividend: at `time` the spot drops by `fraction`·S.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dividend {
    /// Payment time, in years from today, inside (0, T).
    pub time: f64,
    /// Proportion of the spot paid, in [0, 1).
    pub fraction: f64,
}

/// A single-asset option: vanilla, American, barrier, with optional discrete dividends.
#[derive(Debug, Clone, PartialEq)]
pub struct VanillaOption {
    /// Call or put.
    pub kind: OptionKind,
    /// Strike K.
    pub strike: f64,
    /// Maturity T in years.
    pub maturity: f64,
    /// European or American.
    pub exercise: Exercise,
    /// Optional knock-out barrier.
    pub barrier: Option<Barrier>,
    /// Discrete proportional dividends, sorted by time.
    pub dividends: Vec<Dividend>,
}

impl VanillaOption {
    /// A plain European option.
    pub fn european(kind: OptionKind, strike: f64, maturity: f64) -> Self {
        Self {
            kind,
            strike,
            maturity,
            exercise: Exercise::European,
            barrier: None,
            dividends: Vec::new(),
        }
    }

    /// A plain American option.
    pub fn american(kind: OptionKind, strike: f64, maturity: f64) -> Self {
        Self {
            exercise: Exercise::American,
            ..Self::european(kind, strike, maturity)
        }
    }

    /// Product of (1 − fraction) over all dividends: the factor a proportional dividend stream scales S by.
    pub fn dividend_factor(&self) -> f64 {
        self.dividends.iter().map(|d| 1.0 - d.fraction).product()
    }
}

/// A European spread option on two assets paying (S₁ − S₂ − K)⁺ (K = 0: Margrabe's exchange option).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpreadOption {
    /// Strike K ≥ 0.
    pub strike: f64,
    /// Maturity T in years.
    pub maturity: f64,
}

/// What is being priced.
#[derive(Debug, Clone, PartialEq)]
pub enum Instrument {
    /// A single-asset option.
    Vanilla(VanillaOption),
    /// A two-asset spread option.
    Spread(SpreadOption),
}

impl Instrument {
    /// Maturity in years.
    pub fn maturity(&self) -> f64 {
        match self {
            Instrument::Vanilla(o) => o.maturity,
            Instrument::Spread(o) => o.maturity,
        }
    }

    /// The number of underlying assets.
    pub fn dimension(&self) -> usize {
        match self {
            Instrument::Vanilla(_) => 1,
            Instrument::Spread(_) => 2,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        match self {
            Instrument::Vanilla(o) => {
                positive("strike", o.strike)?;
                positive("maturity", o.maturity)?;
                if let Some(b) = o.barrier {
                    positive("barrier", b.level())?;
                    if o.exercise == Exercise::American {
                        return Err(Error::invalid(
                            "barrier",
                            "American barrier options are not supported",
                        ));
                    }
                }
                let mut last = 0.0;
                for d in &o.dividends {
                    if !(d.time > last && d.time < o.maturity) {
                        return Err(Error::invalid(
                            "dividends",
                            "dividend times must be increasing and inside (0, maturity)",
                        ));
                    }
                    non_negative("dividend fraction", d.fraction)?;
                    if d.fraction >= 1.0 {
                        return Err(Error::invalid("dividend fraction", "must be below 1"));
                    }
                    last = d.time;
                }
                Ok(())
            }
            Instrument::Spread(o) => {
                non_negative("strike", o.strike)?;
                positive("maturity", o.maturity)
            }
        }
    }
}
