use crate::{ConfigError, ConfigErrorKind};
use std::time::Duration;

/// A configured length of time: a [`Duration`], or seconds as `f64` from a configuration
/// file.
///
/// A float that is negative, NaN, infinite or too large for a `Duration` is kept as given
/// and rejected when the policy is built, with the field name and value in the error.
///
/// ```
/// use std::time::Duration;
/// use tower_backoff::backoff::Interval;
///
/// assert_eq!(Interval::from(1.5).validate("interval").unwrap(), Duration::from_millis(1500));
/// assert!(Interval::from(-1.0).validate("interval").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval(Result<Duration, f64>);

impl Interval {
    /// Returns the duration, or an error naming `field` when the value is invalid.
    pub fn validate(self, field: &'static str) -> Result<Duration, ConfigError> {
        self.0.map_err(|seconds| {
            let kind = if !seconds.is_finite() {
                ConfigErrorKind::NotFinite
            } else if seconds < 0.0 {
                ConfigErrorKind::TooSmall
            } else {
                ConfigErrorKind::TooLarge
            };
            ConfigError::new(
                field,
                seconds,
                kind,
                "a finite, non-negative number of seconds that fits a Duration",
            )
        })
    }

    /// The duration after a successful [`validate`](Self::validate); zero otherwise.
    pub(crate) fn get(self) -> Duration {
        self.0.unwrap_or(Duration::ZERO)
    }
}

impl From<Duration> for Interval {
    fn from(duration: Duration) -> Self {
        Self(Ok(duration))
    }
}

impl From<f64> for Interval {
    fn from(seconds: f64) -> Self {
        Self(Duration::try_from_secs_f64(seconds).map_err(|_| seconds))
    }
}
