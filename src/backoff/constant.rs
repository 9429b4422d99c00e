use super::{Backoff, Interval, validate_cap, validate_cap_above};
use crate::{ConfigError, ConfigErrorKind};
use rand::rngs::SmallRng;
use std::sync::Arc;
use std::time::Duration;

/// The same delay before every retry.
///
/// The schedule has no cap unless [`max_delay`](Constant::max_delay) sets one, so jitter
/// that adds time (proportional, additive) may take a delay above the interval.
///
/// ```
/// use std::time::Duration;
/// use tower_backoff::backoff::{Backoff, Constant};
///
/// let mut schedule = Constant::new(Duration::from_secs(2));
/// let mut rng = rand::make_rng::<rand::rngs::SmallRng>();
/// assert_eq!(schedule.next_delay(&mut rng), Some(Duration::from_secs(2)));
/// assert_eq!(schedule.next_delay(&mut rng), Some(Duration::from_secs(2)));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Constant {
    interval: Interval,
    max_delay: Option<Interval>,
}

impl Constant {
    /// Creates a schedule that always waits `interval`.
    pub fn new(interval: impl Into<Interval>) -> Self {
        Self {
            interval: interval.into(),
            max_delay: None,
        }
    }

    /// Sets a cap on the delays after jitter. It must not be below the interval.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_backoff::{backoff::Constant, classify::HttpClassifier, Jitter, RetryPolicy};
    ///
    /// // Delays of 1 s plus up to 0.5 s of jitter, never above 1.2 s.
    /// let schedule = Constant::new(Duration::from_secs(1)).max_delay(Duration::from_millis(1200));
    /// let policy = RetryPolicy::builder(HttpClassifier::default())
    ///     .backoff(schedule)
    ///     .jitter(Jitter::Additive(Duration::from_millis(500).into()))
    ///     .build();
    /// assert!(policy.is_ok());
    ///
    /// let too_small = Constant::new(Duration::from_secs(1)).max_delay(Duration::from_millis(900));
    /// assert!(RetryPolicy::builder(HttpClassifier::default()).backoff(too_small).build().is_err());
    /// ```
    #[must_use]
    pub fn max_delay(mut self, max_delay: impl Into<Interval>) -> Self {
        self.max_delay = Some(max_delay.into());
        self
    }
}

impl Backoff for Constant {
    fn next_delay(&mut self, _rng: &mut SmallRng) -> Option<Duration> {
        Some(self.interval.get())
    }

    fn max_delay(&self) -> Option<Duration> {
        self.max_delay.map(Interval::get)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let interval = self.interval.validate("backoff.interval")?;
        match self.max_delay {
            Some(max_delay) => validate_cap(interval, max_delay.validate("backoff.max_delay")?),
            None => Ok(()),
        }
    }
}

/// A finite list of delays. When the list ends, the request gives up.
///
/// A list of two delays allows at most two retries, whatever the value of `max_attempts`.
/// As with [`Constant`], jitter may take a delay above the largest interval unless
/// [`max_delay`](List::max_delay) sets a cap.
///
/// ```
/// use std::time::Duration;
/// use tower_backoff::backoff::{Backoff, List};
///
/// let mut schedule = List::new([Duration::from_secs(1), Duration::from_secs(2)]);
/// let mut rng = rand::make_rng::<rand::rngs::SmallRng>();
/// assert_eq!(schedule.next_delay(&mut rng), Some(Duration::from_secs(1)));
/// assert_eq!(schedule.next_delay(&mut rng), Some(Duration::from_secs(2)));
/// assert_eq!(schedule.next_delay(&mut rng), None);
/// ```
#[derive(Debug, Clone)]
pub struct List {
    intervals: Arc<[Interval]>,
    position: usize,
    max_delay: Option<Interval>,
}

impl List {
    /// Creates a schedule from the given delays, used in order.
    pub fn new<I>(intervals: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Interval>,
    {
        Self {
            intervals: intervals.into_iter().map(Into::into).collect(),
            position: 0,
            max_delay: None,
        }
    }

    /// Sets a cap on the delays after jitter. It must not be below the largest interval.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_backoff::{backoff::List, classify::HttpClassifier, RetryPolicy};
    ///
    /// let secs = Duration::from_secs;
    /// let capped = List::new([secs(1), secs(3)]).max_delay(secs(4));
    /// assert!(RetryPolicy::builder(HttpClassifier::default()).backoff(capped).build().is_ok());
    ///
    /// let below_largest = List::new([secs(1), secs(3)]).max_delay(secs(2));
    /// assert!(RetryPolicy::builder(HttpClassifier::default()).backoff(below_largest).build().is_err());
    /// ```
    #[must_use]
    pub fn max_delay(mut self, max_delay: impl Into<Interval>) -> Self {
        self.max_delay = Some(max_delay.into());
        self
    }
}

impl Backoff for List {
    fn next_delay(&mut self, _rng: &mut SmallRng) -> Option<Duration> {
        let delay = self.intervals.get(self.position)?.get();
        self.position += 1;
        Some(delay)
    }

    fn max_delay(&self) -> Option<Duration> {
        self.max_delay.map(Interval::get)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.intervals.is_empty() {
            return Err(ConfigError::new(
                "backoff.intervals",
                "[]",
                ConfigErrorKind::Empty,
                "at least one interval",
            ));
        }
        let mut largest = Duration::ZERO;
        for interval in self.intervals.iter() {
            largest = largest.max(interval.validate("backoff.intervals")?);
        }
        let Some(max_delay) = self.max_delay else {
            return Ok(());
        };
        validate_cap_above(
            largest,
            max_delay.validate("backoff.max_delay")?,
            "a cap at or above the largest interval",
        )
    }
}
