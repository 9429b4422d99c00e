//! Jitter: randomness added to each delay so that clients that failed together do not retry
//! together.
//!
//! | jitter | delay for a scheduled `d` |
//! |---|---|
//! | [`Jitter::None`] | `d` |
//! | [`Jitter::Full`] (default) | `U(0, d)` |
//! | [`Jitter::Equal`] | `d/2 + U(0, d/2)` |
//! | [`Jitter::Proportional`] | `d * U(1 - p, 1 + p)` |
//! | [`Jitter::Additive`] | `d + U(0, s)` |
//!
//! The policy applies jitter first and the schedule's cap after it, so a jittered delay never
//! exceeds the cap. A delay that the server asked for is never jittered.
//!
//! ```
//! use std::time::Duration;
//! use tower_backoff::Jitter;
//!
//! let mut rng = rand::make_rng::<rand::rngs::SmallRng>();
//! let delay = Jitter::Equal.apply(Duration::from_secs(4), &mut rng);
//! assert!(delay >= Duration::from_secs(2) && delay <= Duration::from_secs(4));
//! ```

use crate::backoff::Interval;
use crate::{ConfigError, ConfigErrorKind};
use rand::RngExt;
use rand::rngs::SmallRng;
use std::time::Duration;

/// How a scheduled delay is randomized.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// The delay is used as scheduled.
    None,
    /// A uniform delay between zero and the scheduled delay, as in AWS's "full jitter" and
    /// Python's `backoff.full_jitter`.
    #[default]
    Full,
    /// Half the scheduled delay plus a uniform share of the other half.
    Equal,
    /// The scheduled delay times a uniform factor in `[1 - p, 1 + p]`, with `p` in `[0, 1]`.
    /// gRPC uses `p = 0.2`.
    Proportional(f64),
    /// The scheduled delay plus a uniform delay between zero and the given interval, as in
    /// Python's `backoff.random_jitter` (one second).
    Additive(Interval),
}

impl Jitter {
    /// Returns the jittered delay for a scheduled delay `delay`.
    ///
    /// The result saturates instead of overflowing. The policy caps it afterwards.
    pub fn apply(&self, delay: Duration, rng: &mut SmallRng) -> Duration {
        match *self {
            Jitter::None => delay,
            Jitter::Full => scale(delay, rng.random::<f64>()),
            Jitter::Equal => {
                let half = delay / 2;
                half.saturating_add(scale(delay - half, rng.random::<f64>()))
            }
            Jitter::Proportional(spread) => {
                let factor = 1.0 - spread + 2.0 * spread * rng.random::<f64>();
                scale(delay, factor)
            }
            Jitter::Additive(extra) => {
                delay.saturating_add(scale(extra.get(), rng.random::<f64>()))
            }
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            Jitter::Proportional(spread) if !(0.0..=1.0).contains(&spread) => {
                Err(ConfigError::new(
                    "jitter.proportional",
                    spread,
                    if !spread.is_finite() {
                        ConfigErrorKind::NotFinite
                    } else if spread < 0.0 {
                        ConfigErrorKind::TooSmall
                    } else {
                        ConfigErrorKind::TooLarge
                    },
                    "a fraction between 0 and 1",
                ))
            }
            Jitter::Additive(extra) => extra.validate("jitter.additive").map(drop),
            _ => Ok(()),
        }
    }
}

/// Multiplies `delay` by `factor`, saturating at `Duration::MAX`. A negative factor, which
/// only an unvalidated spread above 1 can produce, gives zero.
fn scale(delay: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(delay.as_secs_f64() * factor.max(0.0)).unwrap_or(Duration::MAX)
}
