//! The [`Retry`] service.

use crate::backoff::Backoff;
use crate::classify::Classify;
use crate::future::ResponseFuture;
use crate::hooks::Hooks;
use crate::policy::RetryPolicy;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Instant;
use tower_service::Service;

/// A service that retries failed requests of its inner service with backoff.
///
/// Create it with [`RetryLayer`](crate::RetryLayer). Before every retry it drives its own
/// clone of the inner service to readiness; a `poll_ready` error ends the request with that
/// error.
pub struct Retry<S, C, B, H> {
    inner: S,
    policy: Arc<RetryPolicy<C, B, H>>,
}

impl<S, C, B, H> Retry<S, C, B, H> {
    /// Wraps `inner` with a policy.
    pub fn new(inner: S, policy: Arc<RetryPolicy<C, B, H>>) -> Self {
        Self { inner, policy }
    }

    /// Returns a reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Returns a mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Returns the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy<C, B, H> {
        &self.policy
    }
}

impl<S, Req, C, B, H> Service<Req> for Retry<S, C, B, H>
where
    S: Service<Req> + Clone,
    Req: Clone,
    C: Classify<Req, S::Response, S::Error>,
    B: Backoff,
    H: Hooks<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, Req, C, B, H>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Req) -> Self::Future {
        let started = Instant::now();
        let (facts, may_retry, max_attempts, max_elapsed) =
            self.policy.classifier.plan(&request).into_parts();
        let limits = self.policy.limits(max_attempts, max_elapsed);
        // One clock reading serves the budget and the elapsed time of the request.
        self.policy.deposit(started);

        // The clones stay two separate `Option`s, like the future's fields, because building
        // one optional pair first copies both clones again on every request.
        let retryable = may_retry && limits.allow_retry();
        let service = retryable.then(|| self.inner.clone());
        // Cloned before `prepare_attempt`, so that every later attempt starts from the
        // caller's request rather than from the first attempt's.
        let copy = retryable.then(|| request.clone());
        self.policy.classifier.prepare_attempt(&mut request, 1);
        let future = self.inner.call(request);

        ResponseFuture::new(
            future,
            Arc::clone(&self.policy),
            facts,
            (service, copy),
            limits,
            started,
        )
    }
}

impl<S: Clone, C, B, H> Clone for Retry<S, C, B, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            policy: Arc::clone(&self.policy),
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug, B: fmt::Debug, H> fmt::Debug for Retry<S, C, B, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish()
    }
}
