use super::Budget;
use crate::{ConfigError, ConfigErrorKind};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Token counts are kept in thousandths of a token, as gRPC core's retry throttle keeps them.
const MILLI: u64 = 1000;

/// The largest accepted `max_tokens`. Half of the bucket is the retry threshold, so a larger
/// bucket only delays throttling further.
const MAX_TOKENS_LIMIT: u32 = 1000;

/// gRPC-style retry throttling: a token bucket that failures drain and successes refill.
///
/// The bucket starts full at `max_tokens`. Each failed attempt takes one token and each
/// successful attempt adds `token_ratio` tokens, and the count stays between 0 and
/// `max_tokens`. Retries are allowed only while more than half of the tokens are left. When
/// there is more than one failure for every `1 / token_ratio` successes, the bucket drains
/// and the client stops retrying until successes refill it. These are the rules of the
/// `retryThrottling` setting of a gRPC service config, as gRPC core's
/// `ServerRetryThrottleData` applies them.
///
/// Unlike [`TpsBudget`](super::TpsBudget), throttling counts attempts, not requests, and
/// has no time window: the count changes only with outcomes. A withdrawal takes nothing,
/// because the failure that caused the retry already took its token.
///
/// ```
/// use tower_backoff::budget::{Budget, RetryThrottle};
///
/// let throttle = RetryThrottle::new(10, 0.1)?;
/// assert!(throttle.withdraw());
///
/// // Five failures leave 5 tokens, which is not more than half of 10.
/// for _ in 0..5 {
///     throttle.record(false);
/// }
/// assert_eq!(throttle.tokens(), 5.0);
/// assert!(!throttle.withdraw());
///
/// // Ten successes add one token.
/// for _ in 0..10 {
///     throttle.record(true);
/// }
/// assert!(throttle.withdraw());
/// # Ok::<(), tower_backoff::ConfigError>(())
/// ```
pub struct RetryThrottle {
    /// The bucket size in thousandths of a token.
    max_milli: u64,
    /// The refill per success in thousandths of a token, at least 1.
    ratio_milli: u64,
    /// The current count in thousandths of a token, always in `0..=max_milli`.
    tokens_milli: AtomicU64,
}

impl RetryThrottle {
    /// Creates a full bucket of `max_tokens` tokens that each success refills by
    /// `token_ratio`. With 10 and 0.1, retries stop while more than about one attempt in
    /// eleven fails.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when `max_tokens` is 0 or above 1000, or when `token_ratio` is NaN,
    /// infinite or below 0.001. `token_ratio` is rounded to three decimal places.
    pub fn new(max_tokens: u32, token_ratio: f64) -> Result<Self, ConfigError> {
        if max_tokens == 0 {
            return Err(ConfigError::new(
                "throttle.max_tokens",
                max_tokens,
                ConfigErrorKind::Zero,
                "between 1 and 1000 tokens",
            ));
        }
        if max_tokens > MAX_TOKENS_LIMIT {
            return Err(ConfigError::new(
                "throttle.max_tokens",
                max_tokens,
                ConfigErrorKind::TooLarge,
                "between 1 and 1000 tokens",
            ));
        }
        if !token_ratio.is_finite() {
            return Err(ConfigError::new(
                "throttle.token_ratio",
                token_ratio,
                ConfigErrorKind::NotFinite,
                "a finite ratio of at least 0.001",
            ));
        }
        // A float-to-integer cast saturates, and the count is clamped to the bucket size.
        let ratio_milli = (token_ratio * MILLI as f64).round() as u64;
        if ratio_milli == 0 {
            return Err(ConfigError::new(
                "throttle.token_ratio",
                token_ratio,
                ConfigErrorKind::TooSmall,
                "a finite ratio of at least 0.001",
            ));
        }

        let max_milli = u64::from(max_tokens) * MILLI;
        Ok(Self {
            max_milli,
            ratio_milli,
            tokens_milli: AtomicU64::new(max_milli),
        })
    }

    /// The bucket size.
    pub fn max_tokens(&self) -> f64 {
        self.max_milli as f64 / MILLI as f64
    }

    /// The tokens each success adds, rounded to three decimal places.
    pub fn token_ratio(&self) -> f64 {
        self.ratio_milli as f64 / MILLI as f64
    }

    /// The tokens left now, between 0 and [`max_tokens`](Self::max_tokens).
    pub fn tokens(&self) -> f64 {
        self.tokens_milli.load(Ordering::Acquire) as f64 / MILLI as f64
    }

    fn update(&self, change: impl Fn(u64) -> u64) {
        // The closure always returns `Some`, so the update cannot fail.
        let _ = self
            .tokens_milli
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tokens| {
                Some(change(tokens))
            });
    }
}

impl Budget for RetryThrottle {
    /// Does nothing: throttling counts outcomes, not requests.
    fn deposit(&self) {}

    /// Returns `true` while more than half of the tokens are left. Takes nothing.
    fn withdraw(&self) -> bool {
        self.tokens_milli.load(Ordering::Acquire) * 2 > self.max_milli
    }

    fn record(&self, success: bool) {
        if success {
            let max = self.max_milli;
            let ratio = self.ratio_milli;
            self.update(|tokens| tokens.saturating_add(ratio).min(max));
        } else {
            self.update(|tokens| tokens.saturating_sub(MILLI));
        }
    }
}

impl fmt::Debug for RetryThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryThrottle")
            .field("max_tokens", &self.max_tokens())
            .field("token_ratio", &self.token_ratio())
            .field("tokens", &self.tokens())
            .finish()
    }
}
