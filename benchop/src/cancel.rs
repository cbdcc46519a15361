//! Cooperative cancellation for long kernels.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::Error;

/// A cancellation flag with an optional deadline, checked by kernels between units of work.
///
/// Kernels call [`Cancel::check`] every few milliseconds of work (per time step, per path chunk), so
/// revoking a task or hitting its time limit actually stops the computation.
///
/// ```
/// let cancel = benchop::Cancel::new();
/// assert!(cancel.check().is_ok());
/// cancel.cancel();
/// assert!(cancel.check().is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
    deadline: Option<Instant>,
}

impl Cancel {
    /// A flag that is never raised unless [`Cancel::cancel`] is called.
    pub fn new() -> Self {
        Self::default()
    }

    /// A flag that also trips once `deadline` has passed.
    pub fn with_deadline(deadline: Instant) -> Self {
        Self {
            flag: Arc::default(),
            deadline: Some(deadline),
        }
    }

    /// Raise the flag; every clone sees it.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    /// `true` once cancelled or past the deadline.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// `Err(Error::Cancelled)` once cancelled or past the deadline.
    pub fn check(&self) -> Result<(), Error> {
        if self.flag.load(Ordering::Relaxed) {
            return Err(Error::Cancelled("revoked"));
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::Cancelled("time limit exceeded"));
        }
        Ok(())
    }
}
