//! The errors of the numerics layer.

/// Why a problem could not be built or priced.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter is outside its domain (non-finite, negative volatility, …).
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// The parameter's name as the catalogue and the API spell it.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The method does not price this kind of problem.
    #[error("method `{method}` does not apply to this problem: {reason}")]
    NotApplicable {
        /// The method's public id.
        method: &'static str,
        /// Which feature of the problem it cannot handle.
        reason: String,
    },
    /// The computation was cancelled (revoked or over its time limit).
    #[error("cancelled: {0}")]
    Cancelled(&'static str),
    /// The method produced a non-finite number or failed to converge.
    #[error("numerical failure: {0}")]
    Numerical(String),
}

impl Error {
    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name,
            reason: reason.into(),
        }
    }
}
