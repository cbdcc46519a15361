//! Placeholder: being written.

use crate::method::Estimate;
use crate::{Cancel, Error, Problem};

/// Does this method price `problem`?
pub fn applies(_problem: &Problem) -> bool {
    false
}

/// Price every point at ladder `level`; `Ok(None)` past the end of the ladder.
pub fn price_level(_problem: &Problem, _level: usize, _cancel: &Cancel) -> Result<Option<Estimate>, Error> {
    Ok(None)
}
