//! # benchop: the numerics of the BENCHOP option-pricing benchmark
//!
//! Pure numerics: models, instruments, pricing methods, the problem catalogue of BENCHOP
//! (von Sydow et al. 2015, BENCHOP–SLV 2019), the error measure `relerr`, and tuning a method to a
//! tolerance. No I/O, no async, no serde: the services wrap it.
//!
//! ## Layout
//! - [`model`], [`instrument`], [`problem`]: the nouns; a [`Problem`] is validated once at construction.
//! - [`catalogue`]: every BENCHOP case with its published reference values.
//! - [`method`]: one module per method, each a ladder of discretisation levels; [`MethodId`] dispatches.
//! - [`tune`]: the cheapest level that reaches a tolerance, and timing by the benchmark's rules.
//! - [`Cancel`]: cooperative cancellation checked inside kernels.
//!
//! ## Coverage (method × case), generated from `MethodId::applies_to` and checked by `tests/coverage_table.rs`
//!
//! ✓: the method reaches relerr ≤ 1e-4 on every case of the group (proved by `tests/reference.rs`);
//! ±: a stochastic method, agreeing with the reference within four standard errors (it may or may not
//! reach 1e-4 in reasonable time; a ranking reports misses with their error tier); a list names the cases
//! of the group that are covered. SABR: fd-nu and fd by 2-D ADI in (F, ln α), on a sinh and on a uniform
//! grid; mc and qmc by conditional simulation, which needs ρ = 0 (set I only).
//!
//! | method | 1a I/II | Greeks | 1b I/II | 1c I/II | 2a | 2b | 3a I/II | 4a | 5a | 6a | SLV-Heston | SABR I/II |
//! |---|---|---|---|---|---|---|---|---|---|---|---|---|
//! | closed-form | ✓ | ✓ | ✓ | ✓ | ✓ |  |  | ✓ | ✓ | ✓ | ✓ |  |
//! | cos | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |  | ✓ | ✓ | ✓ | ✓ |  |
//! | fft | ✓ |  |  |  | ✓ |  |  | ✓ | ✓ |  | ✓ |  |
//! | fd | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |  | ✓ | ✓ |  | ✓ |
//! | fd-nu | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |  | ✓ | ✓ | ✓ |
//! | tree | ✓ |  | ✓ |  | ✓ | ✓ |  |  |  |  |  |  |
//! | mc | ± |  | ± | ± | ± |  | ± | ± | ± | ± | ± | SLV-SABR-I |
//! | fgl | ✓ |  |  |  | ✓ |  |  | ✓ | ✓ |  | ✓ |  |
//! | qmc | ± |  |  | ± | ± |  |  | ± | ± | ± | ± | SLV-SABR-I |
//! | rbf-fd | ✓ |  | ✓ | ✓ |  |  |  |  |  |  |  |  |

#![warn(missing_docs)]

mod cancel;
pub mod catalogue;
mod error;
pub mod formula;
pub mod instrument;
pub mod method;
pub mod model;
pub mod problem;
pub mod reference;
pub mod special;
pub mod tune;

pub use cancel::Cancel;
pub use error::Error;
pub use instrument::{Barrier, Dividend, Exercise, Instrument, OptionKind, SpreadOption, VanillaOption};
pub use method::{Estimate, MethodId};
pub use problem::{Points, Problem, Quantity, relerr};
