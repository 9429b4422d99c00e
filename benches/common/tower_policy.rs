//! The `tower::retry::Policy` that the benchmarks compare this crate's layer with, and the
//! limits that every contender shares. Both benchmark binaries include this file.

use http::{Request, Response};
use std::sync::Arc;
use tower::retry::Policy;
use tower::retry::backoff::{Backoff, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use tower::retry::budget::{Budget, TpsBudget};

/// The statuses that the tower, backon and hand-written contenders retry. This crate's
/// `HttpClassifier` retries these and 408.
pub const RETRY_STATUSES: [u16; 4] = [429, 502, 503, 504];

/// The attempt limit of every contender, counting the first attempt.
pub const MAX_ATTEMPTS: u32 = 3;

/// A `tower::retry::Policy` that does what this crate's layer does on the same request. It
/// clones the request, retries 429, 502, 503, 504 and errors up to `MAX_ATTEMPTS`, and
/// sleeps with tower's exponential backoff. When it has a budget, it deposits once per
/// request in it.
#[derive(Clone)]
pub struct TowerPolicy {
    /// Attempts finished so far; tower clones the policy for each request.
    attempts: u32,
    backoff_maker: ExponentialBackoffMaker,
    /// Created at the first retry, as tower's `MakeBackoff` intends.
    backoff: Option<ExponentialBackoff>,
    budget: Option<Arc<TpsBudget>>,
}

impl TowerPolicy {
    /// Creates a policy whose delays come from `backoff_maker`, and which deposits in
    /// `budget` when it has one.
    pub fn new(backoff_maker: ExponentialBackoffMaker, budget: Option<Arc<TpsBudget>>) -> Self {
        Self {
            attempts: 0,
            backoff_maker,
            backoff: None,
            budget,
        }
    }
}

impl<B: Clone, ResBody, E> Policy<Request<B>, Response<ResBody>, E> for TowerPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _request: &mut Request<B>,
        result: &mut Result<Response<ResBody>, E>,
    ) -> Option<Self::Future> {
        self.attempts += 1;
        if self.attempts == 1
            && let Some(budget) = &self.budget
        {
            budget.deposit();
        }

        let retryable = match result {
            Ok(response) => RETRY_STATUSES.contains(&response.status().as_u16()),
            Err(_) => true,
        };
        if !retryable || self.attempts >= MAX_ATTEMPTS {
            return None;
        }
        if let Some(budget) = &self.budget
            && !budget.withdraw()
        {
            return None;
        }

        let backoff = self
            .backoff
            .get_or_insert_with(|| self.backoff_maker.make_backoff());
        Some(backoff.next_backoff())
    }

    fn clone_request(&mut self, request: &Request<B>) -> Option<Request<B>> {
        Some(request.clone())
    }
}
