//! Classifiers built from closures.

use super::{Classify, Plan, RetryOverride, Verdict};
use std::fmt;

/// Retries errors for which a closure returns `true`. See [`on_error`].
#[derive(Clone, Copy)]
pub struct OnError<F> {
    retryable: F,
}

/// Creates a classifier that retries the errors for which `retryable` returns `true`, treats
/// other errors as fatal and every response as a success. This is Python backoff's
/// `on_exception`.
///
/// ```
/// use std::io;
/// use tower_backoff::classify::{on_error, Classify, Verdict};
///
/// let classifier = on_error(|error: &io::Error| error.kind() == io::ErrorKind::TimedOut);
/// let timed_out = Err(io::Error::from(io::ErrorKind::TimedOut));
/// assert_eq!(Classify::<(), (), _>::classify(&classifier, &(), &timed_out), Verdict::Retry(None));
/// ```
pub fn on_error<F>(retryable: F) -> OnError<F> {
    OnError { retryable }
}

impl<Req, Res, E, F> Classify<Req, Res, E> for OnError<F>
where
    F: Fn(&E) -> bool,
{
    type Facts = ();

    fn plan(&self, _request: &Req) -> Plan<()> {
        Plan::new(())
    }

    fn classify(&self, _facts: &(), outcome: &Result<Res, E>) -> Verdict {
        match outcome {
            Ok(_) => Verdict::Success,
            Err(error) if (self.retryable)(error) => Verdict::Retry(None),
            Err(_) => Verdict::Fatal,
        }
    }
}

/// Retries responses for which a closure returns `true`. See [`on_response`].
#[derive(Clone, Copy)]
pub struct OnResponse<F> {
    retryable: F,
}

/// Creates a classifier that retries the responses for which `retryable` returns `true`,
/// treats other responses as a success and every error as fatal. This is Python backoff's
/// `on_predicate`.
///
/// ```
/// use tower_backoff::classify::{on_response, Classify, Verdict};
///
/// // Poll until the job reports that it is done.
/// let classifier = on_response(|status: &&str| *status == "pending");
/// let outcome: Result<&str, ()> = Ok("pending");
/// assert_eq!(Classify::<(), _, _>::classify(&classifier, &(), &outcome), Verdict::Retry(None));
/// ```
pub fn on_response<F>(retryable: F) -> OnResponse<F> {
    OnResponse { retryable }
}

impl<Req, Res, E, F> Classify<Req, Res, E> for OnResponse<F>
where
    F: Fn(&Res) -> bool,
{
    type Facts = ();

    fn plan(&self, _request: &Req) -> Plan<()> {
        Plan::new(())
    }

    fn classify(&self, _facts: &(), outcome: &Result<Res, E>) -> Verdict {
        match outcome {
            Ok(response) if (self.retryable)(response) => Verdict::Retry(None),
            Ok(_) => Verdict::Success,
            Err(_) => Verdict::Fatal,
        }
    }
}

/// Classifies each outcome with a closure. See [`on_result`].
#[derive(Clone, Copy)]
pub struct OnResult<F> {
    classify: F,
}

/// Creates a classifier from a closure that maps each outcome to a [`Verdict`].
///
/// ```
/// use std::time::Duration;
/// use tower_backoff::classify::{on_result, Classify, Verdict};
///
/// let classifier = on_result(|outcome: &Result<u16, ()>| match outcome {
///     Ok(429) => Verdict::Retry(Some(Duration::from_secs(1))),
///     Ok(_) => Verdict::Success,
///     Err(()) => Verdict::Fatal,
/// });
/// assert_eq!(Classify::<(), _, _>::classify(&classifier, &(), &Ok(200)), Verdict::Success);
/// ```
pub fn on_result<F>(classify: F) -> OnResult<F> {
    OnResult { classify }
}

impl<Req, Res, E, F> Classify<Req, Res, E> for OnResult<F>
where
    F: Fn(&Result<Res, E>) -> Verdict,
{
    type Facts = ();

    fn plan(&self, _request: &Req) -> Plan<()> {
        Plan::new(())
    }

    fn classify(&self, _facts: &(), outcome: &Result<Res, E>) -> Verdict {
        (self.classify)(outcome)
    }
}

/// Makes some errors fatal on top of another classifier. See
/// [`ClassifyExt::give_up_if`](super::ClassifyExt::give_up_if).
#[derive(Clone, Copy)]
pub struct GiveUpIf<C, F> {
    inner: C,
    give_up: F,
}

impl<C, F> GiveUpIf<C, F> {
    pub(super) fn new(inner: C, give_up: F) -> Self {
        Self { inner, give_up }
    }
}

impl<Req, Res, E, C, F> Classify<Req, Res, E> for GiveUpIf<C, F>
where
    C: Classify<Req, Res, E>,
    F: Fn(&E) -> bool,
{
    type Facts = C::Facts;

    fn plan(&self, request: &Req) -> Plan<C::Facts> {
        self.inner.plan(request)
    }

    fn classify(&self, facts: &C::Facts, outcome: &Result<Res, E>) -> Verdict {
        match outcome {
            Err(error) if (self.give_up)(error) => Verdict::Fatal,
            _ => self.inner.classify(facts, outcome),
        }
    }

    #[inline]
    fn prepare_attempt(&self, request: &mut Req, attempt: u32) {
        self.inner.prepare_attempt(request, attempt);
    }
}

/// Applies a per-request [`RetryOverride`] on top of another classifier. See
/// [`ClassifyExt::per_request`](super::ClassifyExt::per_request).
#[derive(Clone, Copy)]
pub struct PerRequest<C, F> {
    inner: C,
    adjust: F,
}

impl<C, F> PerRequest<C, F> {
    pub(super) fn new(inner: C, adjust: F) -> Self {
        Self { inner, adjust }
    }
}

impl<Req, Res, E, C, F> Classify<Req, Res, E> for PerRequest<C, F>
where
    C: Classify<Req, Res, E>,
    F: Fn(&Req) -> RetryOverride,
{
    type Facts = C::Facts;

    fn plan(&self, request: &Req) -> Plan<C::Facts> {
        (self.adjust)(request).apply(self.inner.plan(request))
    }

    fn classify(&self, facts: &C::Facts, outcome: &Result<Res, E>) -> Verdict {
        self.inner.classify(facts, outcome)
    }

    #[inline]
    fn prepare_attempt(&self, request: &mut Req, attempt: u32) {
        self.inner.prepare_attempt(request, attempt);
    }
}

macro_rules! debug_without_closure {
    ($name:ident $(, $field:ident)?) => {
        impl<$($field: fmt::Debug,)? F> fmt::Debug for $name<$($field,)? F> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    $(.field("inner", &self.inner as &$field))?
                    .finish_non_exhaustive()
            }
        }
    };
}

debug_without_closure!(OnError);
debug_without_closure!(OnResponse);
debug_without_closure!(OnResult);
debug_without_closure!(GiveUpIf, C);
debug_without_closure!(PerRequest, C);
