use super::{Backoff, Interval, validate_start_and_cap};
use crate::ConfigError;
use rand::rngs::SmallRng;
use std::time::Duration;

/// Delays of `initial * fib(n)`: 1, 1, 2, 3, 5, 8 ... times `initial`, capped at
/// `max_delay`.
///
/// The cap is exact: with 1 s and a cap of 4 s the delays are 1, 1, 2, 3, 4, 4 s.
///
/// ```
/// use std::time::Duration;
/// use tower_backoff::backoff::{Backoff, Fibonacci};
///
/// let mut schedule = Fibonacci::new(Duration::from_secs(1)).max_delay(Duration::from_secs(8));
/// let mut rng = rand::make_rng::<rand::rngs::SmallRng>();
/// let delays: Vec<u64> = (0..7).map(|_| schedule.next_delay(&mut rng).unwrap().as_secs()).collect();
/// assert_eq!(delays, [1, 1, 2, 3, 5, 8, 8]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Fibonacci {
    initial: Interval,
    max_delay: Interval,
    /// The next two delays; `None` before the first step.
    pair: Option<(Duration, Duration)>,
}

impl Fibonacci {
    /// Creates a schedule of multiples of `initial`, capped at 10 s.
    pub fn new(initial: impl Into<Interval>) -> Self {
        Self {
            initial: initial.into(),
            max_delay: Duration::from_secs(10).into(),
            pair: None,
        }
    }

    /// Sets the cap (default 10 s). It must not be below the initial delay.
    #[must_use]
    pub fn max_delay(mut self, max_delay: impl Into<Interval>) -> Self {
        self.max_delay = max_delay.into();
        self
    }
}

impl Default for Fibonacci {
    fn default() -> Self {
        Self::new(Duration::from_millis(100))
    }
}

impl Backoff for Fibonacci {
    fn next_delay(&mut self, _rng: &mut SmallRng) -> Option<Duration> {
        let cap = self.max_delay.get();
        let (current, following) = self.pair.unwrap_or_else(|| {
            let initial = self.initial.get().min(cap);
            (initial, initial)
        });

        // Once the smaller term reaches the cap, the pair stops changing.
        let sum = current.saturating_add(following).min(cap);
        self.pair = Some((following.min(cap), sum));

        Some(current.min(cap))
    }

    fn max_delay(&self) -> Option<Duration> {
        Some(self.max_delay.get())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        validate_start_and_cap(self.initial, "backoff.initial", self.max_delay)
    }
}
