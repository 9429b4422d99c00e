//! Classifiers: which outcomes are a success, which are worth another attempt, and which
//! are fatal.
//!
//! A classifier works in two steps. Before the first attempt, [`Classify::plan`] looks at
//! the request and keeps what it needs (for HTTP, whether the request is idempotent) in a
//! small [`Plan`]. The plan also says whether the request may be retried at all: a request
//! that can never be retried is sent without being cloned. After each attempt,
//! [`Classify::classify`] turns the plan and the outcome into a [`Verdict`].
//!
//! Built-in classifiers:
//!
//! - [`HttpClassifier`]: statuses, idempotency, transport errors and `Retry-After`.
//! - [`GrpcClassifier`]: `grpc-status` codes and `grpc-retry-pushback-ms` for tonic and
//!   other gRPC clients.
//! - [`Replayable`]: wraps another classifier so that a request whose streaming body can no
//!   longer be replayed is not retried (see [`body`](crate::body)).
//! - [`on_error`], [`on_response`] and [`on_result`]: closures, like Python backoff's
//!   `on_exception` and `on_predicate`.
//! - [`ClassifyExt::give_up_if`]: a fatal-error predicate on top of any classifier, like
//!   Python backoff's `giveup`.
//! - [`ClassifyExt::per_request`]: per-request limits on top of any classifier.
//!
//! # Examples
//!
//! ```
//! use tower_backoff::classify::{on_error, Classify, ClassifyExt, Verdict};
//!
//! #[derive(Debug)]
//! enum DbError { Timeout, Conflict, BadQuery }
//!
//! // Retry timeouts and conflicts, but give up at once on a bad query.
//! let classifier = on_error(|error: &DbError| !matches!(error, DbError::BadQuery))
//!     .give_up_if(|error: &DbError| matches!(error, DbError::Conflict));
//!
//! // Requests are `&str` queries, responses are row counts.
//! let classify = |outcome: Result<u32, DbError>| {
//!     let plan = Classify::<&str, u32, DbError>::plan(&classifier, &"SELECT 1");
//!     Classify::<&str, u32, DbError>::classify(&classifier, plan.facts(), &outcome)
//! };
//! assert_eq!(classify(Err(DbError::Timeout)), Verdict::Retry(None));
//! assert_eq!(classify(Err(DbError::Conflict)), Verdict::Fatal);
//! assert_eq!(classify(Ok(1)), Verdict::Success);
//! ```

mod closure;
mod grpc;
mod http;
mod plan;
mod retry_after;
mod transport;

pub use crate::body::Replayable;
pub use closure::{
    GiveUpIf, OnError, OnResponse, OnResult, PerRequest, on_error, on_response, on_result,
};
pub use grpc::{GrpcClassifier, GrpcFacts};
pub use http::{HttpClassifier, HttpFacts, Idempotent};
pub use plan::{Plan, RetryOverride};
pub use retry_after::{DelayHeader, parse_retry_after};
pub use transport::{TransportError, TransportFailure};

use std::time::Duration;

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The outcome is a success: return it.
    Success,
    /// The outcome is a failure worth another attempt, optionally after a delay that the
    /// server asked for. `None` means the backoff schedule decides the delay.
    Retry(Option<Duration>),
    /// The outcome is a failure that another attempt would not fix: return it now.
    Fatal,
}

/// Decides, for a request and each outcome of it, whether to retry.
///
/// `Req` is the request type, `Res` and `E` the inner service's response and error types.
pub trait Classify<Req, Res, E> {
    /// What the classifier keeps of the request between attempts.
    type Facts;

    /// Looks at the request before the first attempt.
    fn plan(&self, request: &Req) -> Plan<Self::Facts>;

    /// Classifies the outcome of one attempt.
    fn classify(&self, facts: &Self::Facts, outcome: &Result<Res, E>) -> Verdict;

    /// Changes the request of attempt number `attempt` (1 for the first) just before it is
    /// sent, for example to set a header with the attempt number. The default leaves the
    /// request unchanged.
    fn prepare_attempt(&self, request: &mut Req, attempt: u32) {
        let _ = (request, attempt);
    }
}

/// Combinators for every classifier.
pub trait ClassifyExt: Sized {
    /// Makes errors for which `give_up` returns `true` fatal, whatever the verdict of the
    /// inner classifier. This is Python backoff's `giveup`.
    fn give_up_if<F>(self, give_up: F) -> GiveUpIf<Self, F> {
        GiveUpIf::new(self, give_up)
    }

    /// Lets a closure change the limits of each request through a [`RetryOverride`]: switch
    /// retries off, or set its attempt limit or deadline. This is Python backoff's callable
    /// `max_tries` and `max_time`.
    fn per_request<F>(self, adjust: F) -> PerRequest<Self, F> {
        PerRequest::new(self, adjust)
    }
}

impl<C> ClassifyExt for C {}
