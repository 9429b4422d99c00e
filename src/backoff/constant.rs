use super::{Backoff, Interval};
use crate::{ConfigError, ConfigErrorKind};
use rand::rngs::SmallRng;
use std::sync::Arc;
use std::time::Duration;

/// The same delay before every retry.
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
}

impl Constant {
    /// Creates a schedule that always waits `interval`.
    pub fn new(interval: impl Into<Interval>) -> Self {
        Self {
            interval: interval.into(),
        }
    }
}

impl Backoff for Constant {
    fn next_delay(&mut self, _rng: &mut SmallRng) -> Option<Duration> {
        Some(self.interval.get())
    }

    fn max_delay(&self) -> Option<Duration> {
        Some(self.interval.get())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.interval.validate("backoff.interval").map(drop)
    }
}

/// A finite list of delays. When the list ends, the request gives up.
///
/// A list of two delays allows at most two retries, whatever `max_attempts` says.
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
        }
    }
}

impl Backoff for List {
    fn next_delay(&mut self, _rng: &mut SmallRng) -> Option<Duration> {
        let delay = self.intervals.get(self.position)?.get();
        self.position += 1;
        Some(delay)
    }

    fn max_delay(&self) -> Option<Duration> {
        self.intervals.iter().map(|interval| interval.get()).max()
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
        for interval in self.intervals.iter() {
            interval.validate("backoff.intervals")?;
        }
        Ok(())
    }
}
