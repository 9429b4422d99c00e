//! Retry budgets: a limit on retries across all requests, so that retries cannot multiply
//! the load on a failing service.
//!
//! The layer deposits once for each request that enters it and withdraws once before each
//! retry. When a withdrawal fails, the request ends with its current outcome and the give-up
//! reason [`GiveUpReason::Budget`](crate::hooks::GiveUpReason::Budget).
//!
//! | budget | retries allowed |
//! |---|---|
//! | [`TpsBudget`] (default) | a ratio of recent requests plus a floor per second |
//! | [`RetryThrottle`] | any while a bucket that failures drain is more than half full |
//!
//! [`RetryPolicy::builder`](crate::RetryPolicy::builder) starts with [`TpsBudget::default`]:
//! 20% of requests plus 10 retries per second over 10 s. Replace it with
//! [`budget`](crate::RetryPolicyBuilder::budget) or remove it with
//! [`no_budget`](crate::RetryPolicyBuilder::no_budget).
//!
//! # Examples
//!
//! ```
//! use tower_backoff::{budget::RetryThrottle, classify::on_error, RetryPolicy};
//!
//! let policy = RetryPolicy::builder(on_error(|_: &std::io::Error| true))
//!     .budget(RetryThrottle::new(10, 0.1)?)
//!     .build()?;
//! assert_eq!(policy.max_attempts(), 3);
//! # Ok::<(), tower_backoff::ConfigError>(())
//! ```

mod throttle;
mod tps;

pub use throttle::RetryThrottle;
pub use tps::{TpsBudget, TpsBudgetBuilder};

use std::fmt;
use tokio::time::Instant;

/// A shared limit on retries.
///
/// Implementations are shared by every clone of one layer, so they must be thread-safe and
/// cheap on the hot path.
pub trait Budget: fmt::Debug + Send + Sync {
    /// Records one request entering the layer.
    fn deposit(&self);

    /// Records one request entering the layer at `now`, a time the layer has read already.
    ///
    /// The layer calls this method, so that one clock reading serves the budget and the
    /// request. Budgets that use time override it; the default calls
    /// [`deposit`](Self::deposit).
    fn deposit_at(&self, now: Instant) {
        let _ = now;
        self.deposit();
    }

    /// Takes the right to one retry. Returns `false` when the budget is empty.
    fn withdraw(&self) -> bool;

    /// Records the outcome of one attempt: `true` when the classifier found it a success,
    /// `false` when it found it a retryable failure. A fatal outcome (a 404, say) is not
    /// recorded, because it carries no information about whether the server is overloaded.
    ///
    /// The layer calls this after every attempt, before it calls `withdraw`. Budgets
    /// that count only requests, like [`TpsBudget`], keep the default, which does nothing.
    fn record(&self, success: bool) {
        let _ = success;
    }

    /// Returns whether [`record`](Self::record) does anything. The layer calls this once,
    /// when the policy is built, and skips `record` on every attempt when it returns
    /// `false`. The default is `true`, so that a budget that overrides `record` always
    /// receives the outcomes.
    fn records_outcomes(&self) -> bool {
        true
    }
}
