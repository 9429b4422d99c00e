//! The [`Replayable`] classifier wrapper.

use super::replay::{ReplayBody, ReplayHandle};
use crate::classify::{Classify, Plan, Verdict};
use http::Request;

/// A classifier wrapper that retries a request only while its [`ReplayBody`] can send the
/// whole body again.
///
/// Before the first attempt it keeps a [`ReplayHandle`] next to the wrapped classifier's
/// facts. A request whose body is too large to record (its size hint exceeds the cap) is
/// planned as never retried, so it is sent once without being cloned. After each attempt, a
/// [`Verdict::Retry`] from the wrapped classifier becomes [`Verdict::Fatal`] when the body
/// cannot be replayed: it passed the cap, failed, or had not been sent to its end when the
/// outcome arrived. The outcome is then returned unchanged.
///
/// ```
/// use tower_backoff::body::{ReplayBodyLayer, Replayable};
/// use tower_backoff::classify::HttpClassifier;
/// use tower_backoff::{RetryLayer, RetryPolicy};
///
/// let policy = RetryPolicy::builder(Replayable::new(HttpClassifier::default())).build()?;
/// let stack = tower::ServiceBuilder::new()
///     .layer(ReplayBodyLayer::default())
///     .layer(RetryLayer::new(policy));
/// # drop(stack);
/// # Ok::<(), tower_backoff::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Replayable<C> {
    inner: C,
}

impl<C> Replayable<C> {
    /// Wraps a classifier.
    pub fn new(inner: C) -> Self {
        Self { inner }
    }

    /// The wrapped classifier.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    /// Returns the wrapped classifier.
    pub fn into_inner(self) -> C {
        self.inner
    }
}

/// The facts that [`Replayable`] keeps of a request: the wrapped classifier's facts and a handle to
/// the request body.
#[derive(Debug, Clone)]
pub struct ReplayableFacts<F> {
    inner: F,
    body: ReplayHandle,
}

impl<F> ReplayableFacts<F> {
    /// The wrapped classifier's facts.
    pub fn inner(&self) -> &F {
        &self.inner
    }

    /// The handle to the request body.
    pub fn body(&self) -> &ReplayHandle {
        &self.body
    }
}

impl<C, B, Res, E> Classify<Request<ReplayBody<B>>, Res, E> for Replayable<C>
where
    C: Classify<Request<ReplayBody<B>>, Res, E>,
{
    type Facts = ReplayableFacts<C::Facts>;

    fn plan(&self, request: &Request<ReplayBody<B>>) -> Plan<Self::Facts> {
        let body = request.body().handle();
        let may_replay = body.is_replayable();
        let plan = self
            .inner
            .plan(request)
            .map_facts(|inner| ReplayableFacts { inner, body });
        if may_replay { plan } else { plan.no_retry() }
    }

    fn classify(&self, facts: &Self::Facts, outcome: &Result<Res, E>) -> Verdict {
        let verdict = self.inner.classify(&facts.inner, outcome);
        if matches!(verdict, Verdict::Retry(_)) && !facts.body.is_replayable() {
            tracing::debug!(
                cap = facts.body.cap(),
                "not retrying: the request body cannot be replayed"
            );
            return Verdict::Fatal;
        }
        verdict
    }

    #[inline]
    fn prepare_attempt(&self, request: &mut Request<ReplayBody<B>>, attempt: u32) {
        self.inner.prepare_attempt(request, attempt);
    }
}
