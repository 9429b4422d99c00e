use super::{Backoff, Interval, validate_start_and_cap};
use crate::{ConfigError, ConfigErrorKind};
use rand::rngs::SmallRng;
use std::time::Duration;

/// Delays of `initial * factor^n`, capped at `max_delay`.
///
/// The default is 100 ms, doubling, capped at 10 s. Each step multiplies the previous delay,
/// and once the cap is reached the delay stays there without further arithmetic.
///
/// ```
/// use std::time::Duration;
/// use tower_backoff::backoff::{Backoff, Exponential};
///
/// let mut schedule = Exponential::new(Duration::from_secs(1)).max_delay(Duration::from_secs(16));
/// let mut rng = rand::make_rng::<rand::rngs::SmallRng>();
/// let delays: Vec<u64> = (0..6).map(|_| schedule.next_delay(&mut rng).unwrap().as_secs()).collect();
/// assert_eq!(delays, [1, 2, 4, 8, 16, 16]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Exponential {
    initial: Interval,
    factor: f64,
    max_delay: Interval,
    /// The delay the next step returns, in seconds; `None` before the first step. It is kept
    /// as a float so that growth below one nanosecond per step still accumulates.
    next_seconds: Option<f64>,
}

impl Exponential {
    /// Creates a schedule starting at `initial`, doubling, capped at 10 s.
    pub fn new(initial: impl Into<Interval>) -> Self {
        Self {
            initial: initial.into(),
            factor: 2.0,
            max_delay: Duration::from_secs(10).into(),
            next_seconds: None,
        }
    }

    /// Sets the growth factor (default 2). It must be finite and at least 1.
    #[must_use]
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Sets the cap (default 10 s). It must not be below the initial delay.
    #[must_use]
    pub fn max_delay(mut self, max_delay: impl Into<Interval>) -> Self {
        self.max_delay = max_delay.into();
        self
    }
}

impl Default for Exponential {
    fn default() -> Self {
        Self::new(Duration::from_millis(100))
    }
}

impl Backoff for Exponential {
    fn next_delay(&mut self, _rng: &mut SmallRng) -> Option<Duration> {
        let cap = self.max_delay.get();
        let cap_seconds = cap.as_secs_f64();
        let seconds = self
            .next_seconds
            .unwrap_or_else(|| self.initial.get().as_secs_f64())
            .min(cap_seconds);

        // Once at the cap the state stops changing; an overflow to infinity also ends there.
        self.next_seconds = Some((seconds * self.factor).min(cap_seconds));

        let delay = if seconds >= cap_seconds {
            cap
        } else {
            Duration::try_from_secs_f64(seconds).map_or(cap, |delay| delay.min(cap))
        };
        Some(delay)
    }

    fn max_delay(&self) -> Option<Duration> {
        Some(self.max_delay.get())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        validate_start_and_cap(self.initial, "backoff.initial", self.max_delay)?;
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return Err(ConfigError::new(
                "backoff.factor",
                self.factor,
                if self.factor.is_finite() {
                    ConfigErrorKind::TooSmall
                } else {
                    ConfigErrorKind::NotFinite
                },
                "a finite number >= 1",
            ));
        }
        Ok(())
    }
}
