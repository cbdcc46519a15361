//! Placeholder: being written.

use crate::method::Estimate;
use crate::{Cancel, Error, Problem};

/// Grid type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grid {
    /// Uniform in S.
    Uniform,
    /// Concentrated at the strike.
    NonUniform,
}

/// Does this method price `problem`?
pub fn applies(_problem: &Problem, _grid: Grid) -> bool {
    false
}

/// Price every point at ladder `level`; `Ok(None)` past the end of the ladder.
pub fn price_level(
    _problem: &Problem,
    _grid: Grid,
    _level: usize,
    _cancel: &Cancel,
) -> Result<Option<Estimate>, Error> {
    Ok(None)
}
