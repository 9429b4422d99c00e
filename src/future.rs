//! The response future of [`Retry`](crate::Retry).
//!
//! [`ResponseFuture`] runs the attempts and sleeps of one request. It is a state machine with
//! one state per phase (an attempt in flight, a sleep, waiting for the inner service to be
//! ready), allocates nothing and spawns no task, so dropping it cancels whatever is pending.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use tower::{Service, ServiceExt};
//! use tower_backoff::{backoff::Constant, classify::on_error, Jitter, RetryLayer, RetryPolicy};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = RetryPolicy::builder(on_error(|_: &std::io::Error| true))
//!     .backoff(Constant::new(Duration::from_secs(1)))
//!     .jitter(Jitter::None)
//!     .build()?;
//! let mut service = tower::ServiceBuilder::new()
//!     .layer(RetryLayer::new(policy))
//!     .service_fn(|_: ()| async { Err::<(), _>(std::io::Error::other("down")) });
//!
//! let future = service.ready().await?.call(());
//! // Dropping the future during its first sleep ends the request: no second attempt runs.
//! assert!(tokio::time::timeout(Duration::from_millis(500), future).await.is_err());
//! # Ok(())
//! # }
//! ```

use crate::backoff::Backoff;
use crate::classify::Classify;
use crate::hooks::{Event, GiveUpReason, Hooks};
use crate::policy::{Decision, Limits, ScheduleState};
use crate::service::Shared;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

pin_project! {
    /// The future returned by [`Retry`](crate::Retry): runs attempts and sleeps until the
    /// policy returns an outcome.
    ///
    /// Dropping it cancels the attempt or sleep in progress; nothing runs afterwards.
    pub struct ResponseFuture<S, Req, C, B, H>
    where
        S: Service<Req>,
        C: Classify<Req, S::Response, S::Error>,
    {
        #[pin]
        state: State<S::Future>,
        shared: Arc<Shared<S, C, B, H>>,
        facts: C::Facts,
        // The clone of the service that sends the retries, taken before the first retry.
        service: Option<S>,
        // The request to send next, or `None` for a request that is never retried, which is
        // not cloned. The last allowed attempt takes it instead of cloning it.
        request: Option<Req>,
        // Created at the first retry.
        schedule: Option<ScheduleState<B>>,
        attempt: u32,
        limits: Limits,
        started: Instant,
    }
}

pin_project! {
    #[project = StateProjection]
    enum State<F> {
        // An attempt is in flight.
        Calling {
            #[pin]
            future: F,
        },
        // Waiting out the delay before the next attempt.
        Sleeping {
            #[pin]
            sleep: Sleep,
        },
        // Waiting for the inner service to become ready for the next attempt.
        Readying,
    }
}

impl<S, Req, C, B, H> ResponseFuture<S, Req, C, B, H>
where
    S: Service<Req>,
    C: Classify<Req, S::Response, S::Error>,
{
    #[inline]
    pub(crate) fn new(
        future: S::Future,
        shared: Arc<Shared<S, C, B, H>>,
        facts: C::Facts,
        request: Option<Req>,
        limits: Limits,
        started: Instant,
    ) -> Self {
        Self {
            state: State::Calling { future },
            shared,
            facts,
            service: None,
            request,
            schedule: None,
            attempt: 1,
            limits,
            started,
        }
    }
}

impl<S, Req, C, B, H> Future for ResponseFuture<S, Req, C, B, H>
where
    S: Service<Req> + Clone,
    Req: Clone,
    C: Classify<Req, S::Response, S::Error>,
    B: Backoff,
    H: Hooks<S::Response, S::Error>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProjection::Calling { future } => {
                    // The outcome stays inside the inner future's `Poll`, which is returned
                    // as it is, so that it is not copied on the way out.
                    let polled = future.poll(cx);
                    let Poll::Ready(outcome) = &polled else {
                        return Poll::Pending;
                    };
                    let policy = &this.shared.policy;
                    let verdict = policy.classifier.classify(this.facts, outcome);
                    // A request that is never retried has a limit of one attempt, so the
                    // policy only runs the hooks for it.
                    let decision = policy.decide(
                        verdict,
                        outcome,
                        *this.attempt,
                        *this.started,
                        *this.limits,
                        this.schedule,
                    );
                    match decision {
                        Decision::Return => return polled,
                        Decision::Sleep(delay) => {
                            // The failed outcome is dropped here, which releases its
                            // connection before the sleep.
                            drop(polled);
                            this.state.set(State::Sleeping {
                                sleep: tokio::time::sleep(delay),
                            });
                        }
                    }
                }
                StateProjection::Sleeping { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Readying);
                }
                StateProjection::Readying => {
                    let ready = ready!(start_retry(
                        this.shared,
                        this.service,
                        this.request,
                        this.attempt,
                        this.limits.max_attempts,
                        cx,
                    ));
                    match ready {
                        Ok(future) => this.state.set(State::Calling { future }),
                        Err(error) => {
                            let outcome = Err(error);
                            let mut event = Event {
                                attempt: *this.attempt,
                                started: *this.started,
                                elapsed: None,
                                next_delay: None,
                                reason: None,
                                outcome: &outcome,
                            };
                            this.shared
                                .policy
                                .give_up(&mut event, GiveUpReason::NotReady);
                            return Poll::Ready(outcome);
                        }
                    }
                }
            }
        }
    }
}

/// Drives the service for retries to readiness and sends the next attempt through it, or
/// returns the readiness error.
///
/// It runs only before a retry, so it stays out of line, which keeps the response future's
/// `poll` small on the success path.
#[inline(never)]
fn start_retry<S, Req, C, B, H>(
    shared: &Shared<S, C, B, H>,
    service: &mut Option<S>,
    request: &mut Option<Req>,
    attempt: &mut u32,
    max_attempts: u32,
    cx: &mut Context<'_>,
) -> Poll<Result<S::Future, S::Error>>
where
    S: Service<Req> + Clone,
    Req: Clone,
    C: Classify<Req, S::Response, S::Error>,
{
    let service = match service {
        Some(service) => service,
        None => service.insert(shared.clone_service()),
    };
    ready!(service.poll_ready(cx))?;

    *attempt += 1;
    let next = if *attempt < max_attempts {
        request.clone()
    } else {
        request.take()
    };
    let Some(mut next) = next else {
        unreachable!("the request is taken only for the last attempt");
    };
    shared
        .policy
        .classifier
        .prepare_attempt(&mut next, *attempt);
    Poll::Ready(Ok(service.call(next)))
}

impl<S, Req, C, B, H> fmt::Debug for ResponseFuture<S, Req, C, B, H>
where
    S: Service<Req>,
    C: Classify<Req, S::Response, S::Error>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Calling { .. } => "calling",
            State::Sleeping { .. } => "sleeping",
            State::Readying => "readying",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("attempt", &self.attempt)
            .field("request_kept", &self.request.is_some())
            .finish_non_exhaustive()
    }
}
