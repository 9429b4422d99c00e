use super::{Backoff, Interval, validate_cap};
use crate::ConfigError;
use rand::rngs::SmallRng;
use std::time::Duration;

/// Delays of `initial + step * n`, capped at `max_delay`.
///
/// ```
/// use std::time::Duration;
/// use tower_backoff::backoff::{Backoff, Linear};
///
/// let mut schedule = Linear::new(Duration::from_secs(1), Duration::from_secs(2))
///     .max_delay(Duration::from_secs(6));
/// let mut rng = rand::make_rng::<rand::rngs::SmallRng>();
/// let delays: Vec<u64> = (0..5).map(|_| schedule.next_delay(&mut rng).unwrap().as_secs()).collect();
/// assert_eq!(delays, [1, 3, 5, 6, 6]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Linear {
    initial: Interval,
    step: Interval,
    max_delay: Interval,
    /// The delay the next step returns; `None` before the first step.
    next: Option<Duration>,
}

impl Linear {
    /// Creates a schedule starting at `initial` and growing by `step`, capped at 10 s.
    pub fn new(initial: impl Into<Interval>, step: impl Into<Interval>) -> Self {
        Self {
            initial: initial.into(),
            step: step.into(),
            max_delay: Duration::from_secs(10).into(),
            next: None,
        }
    }

    /// Sets the cap (default 10 s). It must not be below the initial delay.
    #[must_use]
    pub fn max_delay(mut self, max_delay: impl Into<Interval>) -> Self {
        self.max_delay = max_delay.into();
        self
    }
}

impl Backoff for Linear {
    fn next_delay(&mut self, _rng: &mut SmallRng) -> Option<Duration> {
        let cap = self.max_delay.get();
        let delay = self.next.unwrap_or_else(|| self.initial.get().min(cap));
        self.next = Some(delay.saturating_add(self.step.get()).min(cap));
        Some(delay)
    }

    fn max_delay(&self) -> Option<Duration> {
        Some(self.max_delay.get())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let initial = self.initial.validate("backoff.initial")?;
        self.step.validate("backoff.step")?;
        let max_delay = self.max_delay.validate("backoff.max_delay")?;
        validate_cap(initial, max_delay)
    }
}
