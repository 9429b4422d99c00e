//! The [`ReplayBodyLayer`] and the [`ReplayBodyService`] it creates.

use super::replay::{DEFAULT_CAP, ReplayBody};
use http::Request;
use http_body::Body;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// A [`Layer`] that wraps each request body in a [`ReplayBody`], so that a
/// [`RetryLayer`](crate::RetryLayer) inside it can clone requests whose body is a stream.
///
/// Place it outside the retry layer, and give the retry policy a
/// [`Replayable`](super::Replayable) classifier.
#[derive(Debug, Clone, Copy)]
pub struct ReplayBodyLayer {
    cap: usize,
}

impl ReplayBodyLayer {
    /// Creates a layer whose bodies record at most `cap` bytes of data frames.
    pub fn new(cap: usize) -> Self {
        Self { cap }
    }

    /// Returns the maximum number of data bytes each body records.
    pub fn cap(&self) -> usize {
        self.cap
    }
}

impl Default for ReplayBodyLayer {
    /// Creates a layer with the default cap of 64 KiB.
    fn default() -> Self {
        Self::new(DEFAULT_CAP)
    }
}

impl<S> Layer<S> for ReplayBodyLayer {
    type Service = ReplayBodyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ReplayBodyService {
            inner,
            cap: self.cap,
        }
    }
}

/// A service that wraps each request body in a [`ReplayBody`] and passes the request on.
///
/// Create it with [`ReplayBodyLayer`].
#[derive(Debug, Clone)]
pub struct ReplayBodyService<S> {
    inner: S,
    cap: usize,
}

impl<S> ReplayBodyService<S> {
    /// Wraps `inner`, with bodies that record at most `cap` bytes of data frames.
    pub fn new(inner: S, cap: usize) -> Self {
        Self { inner, cap }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Returns the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for ReplayBodyService<S>
where
    S: Service<Request<ReplayBody<B>>>,
    B: Body,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let cap = self.cap;
        self.inner
            .call(request.map(|body| ReplayBody::with_cap(body, cap)))
    }
}
