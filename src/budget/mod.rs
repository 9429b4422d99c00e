//! Retry budgets: a limit on retries across all requests, so that retries cannot multiply
//! the load on a failing service.
//!
//! The layer deposits once for each request that enters it and withdraws once before each
//! retry. When a withdrawal fails, the request ends with its current outcome and the give-up
//! reason [`GiveUpReason::Budget`](crate::hooks::GiveUpReason::Budget).

use std::fmt;

/// A shared limit on retries.
///
/// Implementations are shared by every clone of one layer, so they must be thread-safe and
/// cheap on the hot path.
pub trait Budget: fmt::Debug + Send + Sync {
    /// Records one request entering the layer.
    fn deposit(&self);

    /// Takes the right to one retry. Returns `false` when the budget is empty.
    fn withdraw(&self) -> bool;
}
