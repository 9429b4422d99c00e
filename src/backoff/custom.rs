use super::Backoff;
use crate::ConfigError;
use rand::rngs::SmallRng;
use std::fmt;
use std::time::Duration;

/// A schedule read from any cloneable iterator of delays. See [`from_iter`].
#[derive(Debug, Clone)]
pub struct FromIter<I> {
    delays: I,
    max_delay: Option<Duration>,
}

/// Creates a schedule from an iterator of delays. When the iterator ends, the request gives
/// up.
///
/// Each request that needs a retry clones the iterator, so every request starts from the
/// first delay.
///
/// ```
/// use std::time::Duration;
/// use tower_backoff::backoff::{self, Backoff};
///
/// let mut schedule = backoff::from_iter([1, 5, 30].map(Duration::from_secs).into_iter());
/// let mut rng = rand::make_rng::<rand::rngs::SmallRng>();
/// assert_eq!(schedule.next_delay(&mut rng), Some(Duration::from_secs(1)));
/// ```
pub fn from_iter<I>(delays: I) -> FromIter<I>
where
    I: Iterator<Item = Duration> + Clone,
{
    FromIter {
        delays,
        max_delay: None,
    }
}

impl<I> FromIter<I> {
    /// Sets a cap on the delays after jitter. Without one, jitter may exceed the largest
    /// delay of the iterator.
    #[must_use]
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = Some(max_delay);
        self
    }
}

impl<I> Backoff for FromIter<I>
where
    I: Iterator<Item = Duration> + Clone,
{
    fn next_delay(&mut self, _rng: &mut SmallRng) -> Option<Duration> {
        let delay = self.delays.next()?;
        Some(self.max_delay.map_or(delay, |cap| delay.min(cap)))
    }

    fn max_delay(&self) -> Option<Duration> {
        self.max_delay
    }

    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// A schedule computed by a closure of the retry number (1 for the first retry). See
/// [`from_fn`].
#[derive(Clone)]
pub struct FromFn<F> {
    delay: F,
    retry: u32,
    max_delay: Option<Duration>,
}

/// Creates a schedule from a closure that maps the retry number (starting at 1) to a delay,
/// or to `None` to give up.
///
/// ```
/// use std::time::Duration;
/// use tower_backoff::backoff::{self, Backoff};
///
/// let mut schedule = backoff::from_fn(|retry| (retry <= 2).then(|| Duration::from_millis(50) * retry));
/// let mut rng = rand::make_rng::<rand::rngs::SmallRng>();
/// assert_eq!(schedule.next_delay(&mut rng), Some(Duration::from_millis(50)));
/// assert_eq!(schedule.next_delay(&mut rng), Some(Duration::from_millis(100)));
/// assert_eq!(schedule.next_delay(&mut rng), None);
/// ```
pub fn from_fn<F>(delay: F) -> FromFn<F>
where
    F: Fn(u32) -> Option<Duration> + Clone,
{
    FromFn {
        delay,
        retry: 0,
        max_delay: None,
    }
}

impl<F> FromFn<F> {
    /// Sets a cap on the delays after jitter.
    #[must_use]
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = Some(max_delay);
        self
    }
}

impl<F> Backoff for FromFn<F>
where
    F: Fn(u32) -> Option<Duration> + Clone,
{
    fn next_delay(&mut self, _rng: &mut SmallRng) -> Option<Duration> {
        self.retry = self.retry.saturating_add(1);
        let delay = (self.delay)(self.retry)?;
        Some(self.max_delay.map_or(delay, |cap| delay.min(cap)))
    }

    fn max_delay(&self) -> Option<Duration> {
        self.max_delay
    }

    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

impl<F> fmt::Debug for FromFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFn")
            .field("retry", &self.retry)
            .field("max_delay", &self.max_delay)
            .finish_non_exhaustive()
    }
}
