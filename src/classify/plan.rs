use std::time::Duration;

/// What a classifier decided about a request before its first attempt.
///
/// ```
/// use std::time::Duration;
/// use tower_backoff::classify::Plan;
///
/// let plan = Plan::new(()).max_attempts(5).max_elapsed(Duration::from_secs(30));
/// assert!(plan.may_retry());
/// assert!(!Plan::new(()).no_retry().may_retry());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan<F> {
    facts: F,
    may_retry: bool,
    max_attempts: Option<u32>,
    max_elapsed: Option<Duration>,
}

impl<F> Plan<F> {
    /// Creates a plan that keeps `facts` and allows retries under the policy's limits.
    pub fn new(facts: F) -> Self {
        Self {
            facts,
            may_retry: true,
            max_attempts: None,
            max_elapsed: None,
        }
    }

    /// Marks the request as never retried. It is sent once, without being cloned.
    #[must_use]
    pub fn no_retry(mut self) -> Self {
        self.may_retry = false;
        self
    }

    /// Overrides the policy's `max_attempts` for this request. Zero counts as one attempt.
    #[must_use]
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    /// Overrides the policy's `max_elapsed` for this request.
    #[must_use]
    pub fn max_elapsed(mut self, max_elapsed: Duration) -> Self {
        self.max_elapsed = Some(max_elapsed);
        self
    }

    /// Replaces the facts and keeps the rest of the plan, for a classifier that wraps
    /// another one.
    pub fn map_facts<G>(self, map: impl FnOnce(F) -> G) -> Plan<G> {
        Plan {
            facts: map(self.facts),
            may_retry: self.may_retry,
            max_attempts: self.max_attempts,
            max_elapsed: self.max_elapsed,
        }
    }

    /// The facts the classifier kept.
    pub fn facts(&self) -> &F {
        &self.facts
    }

    /// Whether any outcome of this request may be retried.
    pub fn may_retry(&self) -> bool {
        self.may_retry
    }

    /// The attempt limit set for this request, if any.
    pub fn attempts_override(&self) -> Option<u32> {
        self.max_attempts
    }

    /// The deadline set for this request, if any.
    pub fn elapsed_override(&self) -> Option<Duration> {
        self.max_elapsed
    }

    #[inline]
    pub(crate) fn into_parts(self) -> (F, bool, Option<u32>, Option<Duration>) {
        (
            self.facts,
            self.may_retry,
            self.max_attempts,
            self.max_elapsed,
        )
    }
}

/// A change to the retry policy for one request.
///
/// [`HttpClassifier`](super::HttpClassifier) reads it from the request extensions when the
/// request enters the layer, and [`ClassifyExt::per_request`](super::ClassifyExt::per_request)
/// takes it from a closure for any request type.
///
/// ```
/// use std::time::Duration;
/// use tower_backoff::classify::RetryOverride;
///
/// let mut request = http::Request::get("/report").body(()).unwrap();
/// request
///     .extensions_mut()
///     .insert(RetryOverride::new().max_attempts(5).max_elapsed(Duration::from_secs(20)));
///
/// let mut health_check = http::Request::get("/health").body(()).unwrap();
/// health_check.extensions_mut().insert(RetryOverride::new().disable());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOverride {
    disabled: bool,
    max_attempts: Option<u32>,
    max_elapsed: Option<Duration>,
}

impl RetryOverride {
    /// Creates an override that changes nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Switches retries off: the request is sent once, without being cloned.
    #[must_use]
    pub fn disable(mut self) -> Self {
        self.disabled = true;
        self
    }

    /// Sets the attempt limit, counting the first attempt. Zero counts as one attempt.
    #[must_use]
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    /// Sets the deadline over all attempts and sleeps.
    #[must_use]
    pub fn max_elapsed(mut self, max_elapsed: Duration) -> Self {
        self.max_elapsed = Some(max_elapsed);
        self
    }

    #[inline]
    pub(crate) fn apply<F>(&self, mut plan: Plan<F>) -> Plan<F> {
        if self.disabled {
            plan = plan.no_retry();
        }
        if let Some(max_attempts) = self.max_attempts {
            plan = plan.max_attempts(max_attempts);
        }
        if let Some(max_elapsed) = self.max_elapsed {
            plan = plan.max_elapsed(max_elapsed);
        }
        plan
    }

    /// Applies the override that `request` carries as an extension, if any, to `plan`.
    #[inline]
    pub(crate) fn apply_from<B, F>(request: &http::Request<B>, plan: Plan<F>) -> Plan<F> {
        match request.extensions().get::<Self>() {
            Some(retry_override) => retry_override.apply(plan),
            None => plan,
        }
    }
}
