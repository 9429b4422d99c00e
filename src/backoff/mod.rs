//! Backoff schedules: the delay before each retry, before jitter.
//!
//! A schedule is a small value that the policy clones for each request that needs a retry.
//! Each call to [`Backoff::next_delay`] returns the delay before the next retry, or `None`
//! when a finite schedule has run out, which ends the request. Every built-in schedule does
//! constant work per step and saturates instead of overflowing, so the millionth retry costs
//! the same as the second. The deterministic schedules stay at their cap once they reach it,
//! and [`Decorrelated`] keeps drawing between its base and its cap.
//!
//! | schedule | delays |
//! |---|---|
//! | [`Exponential`] | `initial * factor^n`, capped (the default: 100 ms, x2, cap 10 s) |
//! | [`Fibonacci`] | `initial * fib(n)`: 1, 1, 2, 3, 5 ..., capped |
//! | [`Constant`] | the same interval forever |
//! | [`List`] | a finite list of intervals, then the request gives up |
//! | [`Linear`] | `initial + step * n`, capped |
//! | [`Decorrelated`] | `min(cap, U(base, 3 * previous))`, the AWS formula; use it with [`Jitter::None`](crate::Jitter::None) |
//! | [`FromIter`], [`FromFn`] | any `Iterator<Item = Duration>`, or a closure of the retry number |
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tower_backoff::backoff::{Backoff, Fibonacci};
//!
//! let mut schedule = Fibonacci::new(Duration::from_secs(1)).max_delay(Duration::from_secs(4));
//! schedule.validate().unwrap();
//! let mut rng = rand::make_rng::<rand::rngs::SmallRng>();
//! let delays: Vec<u64> = (0..6)
//!     .map(|_| schedule.next_delay(&mut rng).unwrap().as_secs())
//!     .collect();
//! assert_eq!(delays, [1, 1, 2, 3, 4, 4]);
//! ```

mod constant;
mod custom;
mod decorrelated;
mod exponential;
mod fibonacci;
mod interval;
mod linear;

pub use constant::{Constant, List};
pub use custom::{FromFn, FromIter, from_fn, from_iter};
pub use decorrelated::Decorrelated;
pub use exponential::Exponential;
pub use fibonacci::Fibonacci;
pub use interval::Interval;
pub use linear::Linear;

use crate::{ConfigError, ConfigErrorKind};
use rand::rngs::SmallRng;
use std::time::Duration;

/// A delay schedule.
///
/// The policy keeps one configured value and clones it when a request first needs a retry,
/// so the clone carries the per-request state (for example the current delay).
pub trait Backoff: Clone {
    /// Returns the delay before the next retry and advances the schedule, or `None` when the
    /// schedule has ended.
    ///
    /// `rng` is the request's own random number generator, for schedules that draw their
    /// delays at random.
    fn next_delay(&mut self, rng: &mut SmallRng) -> Option<Duration>;

    /// The largest delay this schedule returns, if it has one.
    ///
    /// Jitter is applied before this cap, so a jittered delay never exceeds it.
    fn max_delay(&self) -> Option<Duration>;

    /// Checks the configuration, naming the invalid field and value.
    ///
    /// The policy calls this when it is built.
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Checks that the first delay (`initial`, or `base` for the decorrelated schedule) is above
/// zero and that `max_delay` is not below it.
fn validate_start_and_cap(
    start: Interval,
    start_field: &'static str,
    max_delay: Interval,
) -> Result<(), ConfigError> {
    let start = start.validate(start_field)?;
    if start.is_zero() {
        return Err(ConfigError::new(
            start_field,
            start,
            ConfigErrorKind::Zero,
            "a delay above zero",
        ));
    }
    validate_cap(start, max_delay.validate("backoff.max_delay")?)
}

/// Checks that `max_delay` is not below the first delay.
fn validate_cap(start: Duration, max_delay: Duration) -> Result<(), ConfigError> {
    validate_cap_above(start, max_delay, "a cap at or above the first delay")
}

/// Checks that `max_delay` is not below `floor`, and describes the valid caps as `expected`
/// otherwise.
fn validate_cap_above(
    floor: Duration,
    max_delay: Duration,
    expected: &'static str,
) -> Result<(), ConfigError> {
    if max_delay < floor {
        return Err(ConfigError::new(
            "backoff.max_delay",
            max_delay,
            ConfigErrorKind::TooSmall,
            expected,
        ));
    }
    Ok(())
}
