use super::{Backoff, Interval, validate_start_and_cap};
use crate::ConfigError;
use rand::RngExt;
use rand::rngs::SmallRng;
use std::time::Duration;

/// Decorrelated jitter: each delay is drawn uniformly between `base` and three times the
/// previous delay, capped at `max_delay`, as in `min(cap, U(base, 3 * previous))`.
///
/// This is the "decorrelated jitter" schedule of the AWS Architecture Blog post
/// "Exponential Backoff And Jitter". The first delay is drawn from `U(base, 3 * base)`. The
/// schedule draws its own randomness from the request's generator, so use it with
/// [`Jitter::None`](crate::Jitter::None): another jitter on top would shorten the delays
/// again and undo the spread that the schedule builds up.
///
/// Each step is one draw and a few saturating operations, and a delay at the cap stays
/// between `base` and the cap.
///
/// ```
/// use std::time::Duration;
/// use tower_backoff::backoff::{Backoff, Decorrelated};
///
/// let mut schedule =
///     Decorrelated::new(Duration::from_millis(100)).max_delay(Duration::from_secs(2));
/// schedule.validate()?;
/// let mut rng = rand::make_rng::<rand::rngs::SmallRng>();
/// let mut previous = Duration::from_millis(100);
/// for _ in 0..20 {
///     let delay = schedule.next_delay(&mut rng).unwrap();
///     assert!(delay >= Duration::from_millis(100));
///     assert!(delay <= (previous * 3).min(Duration::from_secs(2)));
///     previous = delay;
/// }
/// # Ok::<(), tower_backoff::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Decorrelated {
    base: Interval,
    max_delay: Interval,
    /// The delay the last step returned; `None` before the first step.
    previous: Option<Duration>,
}

impl Decorrelated {
    /// Creates a schedule with the smallest delay `base`, capped at 10 s.
    pub fn new(base: impl Into<Interval>) -> Self {
        Self {
            base: base.into(),
            max_delay: Duration::from_secs(10).into(),
            previous: None,
        }
    }

    /// Sets the cap (default 10 s). It must not be below `base`.
    #[must_use]
    pub fn max_delay(mut self, max_delay: impl Into<Interval>) -> Self {
        self.max_delay = max_delay.into();
        self
    }
}

impl Default for Decorrelated {
    /// Creates a schedule with a base of 100 ms, capped at 10 s, like
    /// [`Exponential::default`](super::Exponential::default).
    fn default() -> Self {
        Self::new(Duration::from_millis(100))
    }
}

impl Backoff for Decorrelated {
    fn next_delay(&mut self, rng: &mut SmallRng) -> Option<Duration> {
        let base = self.base.get();
        let cap = self.max_delay.get();
        let previous = self.previous.unwrap_or(base);

        // The draw is capped afterwards, so a range that reaches past the cap returns the
        // cap itself with the probability of the part beyond it. `saturating_sub` keeps the
        // span at zero if an invalid configuration put `previous` below `base`.
        let span = previous.saturating_mul(3).saturating_sub(base);
        let offset = Duration::try_from_secs_f64(span.as_secs_f64() * rng.random::<f64>())
            .unwrap_or(span)
            .min(span);
        let delay = base.saturating_add(offset).min(cap);

        self.previous = Some(delay);
        Some(delay)
    }

    fn max_delay(&self) -> Option<Duration> {
        Some(self.max_delay.get())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        validate_start_and_cap(self.base, "backoff.base", self.max_delay)
    }
}
