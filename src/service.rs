//! The [`Retry`] service.

use crate::backoff::Backoff;
use crate::classify::Classify;
use crate::future::ResponseFuture;
use crate::hooks::Hooks;
use crate::policy::RetryPolicy;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tokio::time::Instant;
use tower_service::Service;

/// A service that retries failed requests of its inner service with backoff.
///
/// Create it with [`RetryLayer`](crate::RetryLayer). Retries go through clones of a copy
/// of the inner service that the `Retry` takes when it is created, and again at the first
/// call after each [`get_mut`](Self::get_mut). A request that succeeds at once clones no
/// service. Before every retry the clone is driven to readiness, and a `poll_ready` error
/// ends the request with that error.
///
/// For services whose clones are handles to shared state, such as hyper's client, tonic's
/// `Channel` and `tower::buffer::Buffer`, this is the same as cloning the inner service on
/// every call. A service that changes its own state in `poll_ready` or `call` sends its
/// retries from the state of the copy.
pub struct Retry<S, C, B, H> {
    inner: S,
    shared: Arc<Shared<S, C, B, H>>,
    /// Set by `get_mut`, so that the next call replaces the copy kept for retries.
    copy_stale: bool,
}

/// The policy and the copy of the inner service that a `Retry`, its clones and their
/// response futures share.
pub(crate) struct Shared<S, C, B, H> {
    pub(crate) policy: Arc<RetryPolicy<C, B, H>>,
    /// Locked only to clone it, before a retry. The lock keeps `Shared` `Sync` for any
    /// `Send` service, so that response futures stay `Send`.
    service: Mutex<S>,
}

impl<S: Clone, C, B, H> Shared<S, C, B, H> {
    fn new(policy: Arc<RetryPolicy<C, B, H>>, service: S) -> Self {
        Self {
            policy,
            service: Mutex::new(service),
        }
    }

    /// Returns a clone of the service kept for retries.
    pub(crate) fn clone_service(&self) -> S {
        // A panic in an earlier clone leaves the service itself intact.
        self.service
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl<S, C, B, H> Retry<S, C, B, H> {
    /// Wraps `inner` with a policy, and keeps a clone of `inner` for retries.
    pub fn new(inner: S, policy: Arc<RetryPolicy<C, B, H>>) -> Self
    where
        S: Clone,
    {
        Self {
            shared: Arc::new(Shared::new(policy, inner.clone())),
            inner,
            copy_stale: false,
        }
    }

    /// Returns a reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Returns a mutable reference to the inner service.
    ///
    /// The next call takes a new copy of the inner service for retries, so that retries
    /// of later requests see the changes.
    pub fn get_mut(&mut self) -> &mut S {
        self.copy_stale = true;
        &mut self.inner
    }

    /// Returns the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy<C, B, H> {
        &self.shared.policy
    }
}

impl<S: Clone, C, B, H> Retry<S, C, B, H> {
    /// Replaces the copy kept for retries after a change through `get_mut`. Futures of
    /// earlier requests keep the copy they started with.
    #[cold]
    fn refresh_copy(&mut self) {
        self.shared = Arc::new(Shared::new(
            Arc::clone(&self.shared.policy),
            self.inner.clone(),
        ));
        self.copy_stale = false;
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
        if self.copy_stale {
            self.refresh_copy();
        }
        let policy = &self.shared.policy;
        let started = Instant::now();
        let (facts, may_retry, max_attempts, max_elapsed) =
            policy.classifier.plan(&request).into_parts();
        let mut limits = policy.limits(max_attempts, max_elapsed);
        // One clock reading serves the budget and the elapsed time of the request.
        policy.deposit(started);

        // Each branch builds the whole future, so that the inner future and the copy are
        // written into it without intermediate copies. The copy is taken before
        // `prepare_attempt`, so that every later attempt starts from the caller's request
        // rather than from the first attempt's.
        let shared = Arc::clone(&self.shared);
        if may_retry && limits.allow_retry() {
            let copy = request.clone();
            shared.policy.classifier.prepare_attempt(&mut request, 1);
            ResponseFuture::new(
                self.inner.call(request),
                shared,
                facts,
                Some(copy),
                limits,
                started,
            )
        } else {
            // A request that is never retried gets one attempt, and no copy.
            limits.max_attempts = 1;
            shared.policy.classifier.prepare_attempt(&mut request, 1);
            ResponseFuture::new(
                self.inner.call(request),
                shared,
                facts,
                None,
                limits,
                started,
            )
        }
    }
}

impl<S: Clone, C, B, H> Clone for Retry<S, C, B, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            copy_stale: self.copy_stale,
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug, B: fmt::Debug, H> fmt::Debug for Retry<S, C, B, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("policy", &self.shared.policy)
            .finish()
    }
}
