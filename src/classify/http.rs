//! The default classifier for HTTP clients.

use super::retry_after::response_date;
use super::transport::classify_transport_error;
use super::{Classify, DelayHeader, Plan, RetryOverride, TransportError, Verdict};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use std::time::{Duration, SystemTime};

/// The default HTTP classifier.
///
/// - Retries the statuses 408, 429, 502, 503 and 504 (configurable; 500 is opt-in).
/// - 408 and 429 mean the server did not process the request, so they are retried for every
///   method. Every other status is retried only for idempotent requests: the methods GET,
///   HEAD, OPTIONS, TRACE, PUT and DELETE (RFC 9110 section 9.2.2), a request with an
///   `Idempotency-Key` header, or one marked with [`Idempotent`].
/// - A transport error that proves the request was never sent is retried for every method;
///   other transport errors only for idempotent requests (see [`TransportError`]).
/// - A retryable response's `Retry-After` header (seconds or HTTP-date) sets the delay.
///   Other headers can be added with [`delay_headers`](Self::delay_headers).
/// - Statuses below 400 are a success. Other responses and errors are fatal: they are
///   returned at once.
///
/// A request that no outcome could make retryable under these rules is not cloned.
///
/// ```
/// use http::{Request, Response};
/// use tower_backoff::classify::{Classify, HttpClassifier, Verdict};
///
/// type Http = dyn Classify<Request<()>, Response<()>, std::io::Error, Facts = tower_backoff::classify::HttpFacts>;
///
/// let classifier = HttpClassifier::default();
/// let post = Request::post("/orders").body(()).unwrap();
/// let plan = <HttpClassifier as Classify<_, Response<()>, std::io::Error>>::plan(&classifier, &post);
///
/// let unavailable = Response::builder().status(503).body(()).unwrap();
/// let verdict = (&classifier as &Http).classify(plan.facts(), &Ok(unavailable));
/// assert_eq!(verdict, Verdict::Fatal);
///
/// let too_many = Response::builder().status(429).body(()).unwrap();
/// let verdict = (&classifier as &Http).classify(plan.facts(), &Ok(too_many));
/// assert_eq!(verdict, Verdict::Retry(None));
/// ```
#[derive(Debug, Clone)]
pub struct HttpClassifier {
    statuses: StatusSet,
    idempotent_methods: Vec<Method>,
    idempotency_key: Option<HeaderName>,
    retry_transport_errors: bool,
    delay_headers: Vec<DelayHeader>,
    attempt_header: Option<HeaderName>,
}

/// A request extension that marks one request as idempotent, so that
/// [`HttpClassifier`] retries it like a GET.
///
/// ```
/// use tower_backoff::classify::Idempotent;
///
/// let mut request = http::Request::post("/upsert").body(()).unwrap();
/// request.extensions_mut().insert(Idempotent);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Idempotent;

/// What [`HttpClassifier`] keeps of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpFacts {
    idempotent: bool,
}

impl HttpFacts {
    /// Whether the request may be repeated without changing the outcome.
    pub fn idempotent(&self) -> bool {
        self.idempotent
    }
}

impl Default for HttpClassifier {
    fn default() -> Self {
        Self {
            statuses: [408, 429, 502, 503, 504]
                .into_iter()
                .filter_map(|code| StatusCode::from_u16(code).ok())
                .collect(),
            idempotent_methods: vec![
                Method::GET,
                Method::HEAD,
                Method::OPTIONS,
                Method::TRACE,
                Method::PUT,
                Method::DELETE,
            ],
            idempotency_key: Some(HeaderName::from_static("idempotency-key")),
            retry_transport_errors: true,
            delay_headers: vec![DelayHeader::RetryAfter],
            attempt_header: None,
        }
    }
}

impl HttpClassifier {
    /// Replaces the set of retryable statuses. An empty set retries no response.
    #[must_use]
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.statuses = statuses.into_iter().collect();
        self
    }

    /// Adds one retryable status, for example 500.
    #[must_use]
    pub fn retry_status(mut self, status: StatusCode) -> Self {
        self.statuses.insert(status);
        self
    }

    /// Replaces the list of idempotent methods.
    #[must_use]
    pub fn idempotent_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.idempotent_methods = methods.into_iter().collect();
        self
    }

    /// Sets the header whose presence marks a request as idempotent (default
    /// `Idempotency-Key`), or `None` to ignore such headers.
    #[must_use]
    pub fn idempotency_key(mut self, header: Option<HeaderName>) -> Self {
        self.idempotency_key = header;
        self
    }

    /// Sets whether transport errors are retried (default `true`).
    #[must_use]
    pub fn retry_transport_errors(mut self, retry: bool) -> Self {
        self.retry_transport_errors = retry;
        self
    }

    /// Replaces the headers read, in order, for a server-given delay (default
    /// `Retry-After` alone). An empty list always uses the backoff schedule.
    #[must_use]
    pub fn delay_headers(mut self, headers: impl IntoIterator<Item = DelayHeader>) -> Self {
        self.delay_headers = headers.into_iter().collect();
        self
    }

    /// Sets a header that carries the attempt number (1 for the first attempt) on every
    /// attempt, so that servers and logs can tell retries apart (default none). A header of
    /// that name already on the request is replaced.
    #[must_use]
    pub fn attempt_header(mut self, header: Option<HeaderName>) -> Self {
        self.attempt_header = header;
        self
    }

    #[inline]
    fn is_idempotent<B>(&self, request: &Request<B>) -> bool {
        self.idempotent_methods.contains(request.method())
            || self
                .idempotency_key
                .as_ref()
                .is_some_and(|name| request.headers().contains_key(name))
            || request.extensions().get::<Idempotent>().is_some()
    }

    /// Whether any outcome of a request with these facts could be retried.
    #[inline]
    fn may_retry(&self, facts: HttpFacts) -> bool {
        if facts.idempotent {
            return self.retry_transport_errors || !self.statuses.is_empty();
        }
        self.retry_transport_errors
            || self.statuses.contains(StatusCode::REQUEST_TIMEOUT)
            || self.statuses.contains(StatusCode::TOO_MANY_REQUESTS)
    }

    #[inline]
    fn classify_response<B>(&self, facts: HttpFacts, response: &Response<B>) -> Verdict {
        let status = response.status();
        let not_processed =
            status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS;

        if self.statuses.contains(status) && (facts.idempotent || not_processed) {
            return Verdict::Retry(self.server_delay(response));
        }
        if status.as_u16() < 400 {
            return Verdict::Success;
        }
        Verdict::Fatal
    }

    fn server_delay<B>(&self, response: &Response<B>) -> Option<Duration> {
        if self.delay_headers.is_empty() {
            return None;
        }

        // The response's own Date header is the server's clock, which makes an HTTP-date
        // immune to skew between the two machines.
        let headers = response.headers();
        let now = response_date(headers).unwrap_or_else(SystemTime::now);
        self.delay_headers
            .iter()
            .find_map(|source| source.read(headers, now))
    }

    fn classify_error<E: TransportError>(&self, facts: HttpFacts, error: &E) -> Verdict {
        classify_transport_error(error, facts.idempotent, self.retry_transport_errors)
    }
}

impl<B, ResBody, E> Classify<Request<B>, Response<ResBody>, E> for HttpClassifier
where
    E: TransportError,
{
    type Facts = HttpFacts;

    #[inline]
    fn plan(&self, request: &Request<B>) -> Plan<HttpFacts> {
        let facts = HttpFacts {
            idempotent: self.is_idempotent(request),
        };
        let mut plan = Plan::new(facts);
        if !self.may_retry(facts) {
            plan = plan.no_retry();
        }
        RetryOverride::apply_from(request, plan)
    }

    #[inline]
    fn classify(&self, facts: &HttpFacts, outcome: &Result<Response<ResBody>, E>) -> Verdict {
        match outcome {
            Ok(response) => self.classify_response(*facts, response),
            Err(error) => self.classify_error(*facts, error),
        }
    }

    #[inline(always)]
    fn prepare_attempt(&self, request: &mut Request<B>, attempt: u32) {
        if let Some(name) = &self.attempt_header {
            set_attempt_header(request, name, attempt);
        }
    }
}

/// Sets the attempt header, kept out of line so that a classifier without one checks only
/// the `Option` on every request.
#[inline(never)]
fn set_attempt_header<B>(request: &mut Request<B>, name: &HeaderName, attempt: u32) {
    request
        .headers_mut()
        .insert(name.clone(), HeaderValue::from(attempt));
}

/// A set of status codes, one bit per code from 0 to 1023.
#[derive(Clone, Default, PartialEq, Eq)]
struct StatusSet([u64; 16]);

impl StatusSet {
    fn insert(&mut self, status: StatusCode) {
        let code = usize::from(status.as_u16());
        self.0[code / 64] |= 1 << (code % 64);
    }

    fn contains(&self, status: StatusCode) -> bool {
        let code = usize::from(status.as_u16());
        self.0[code / 64] & (1 << (code % 64)) != 0
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|word| *word == 0)
    }
}

impl FromIterator<StatusCode> for StatusSet {
    fn from_iter<I: IntoIterator<Item = StatusCode>>(statuses: I) -> Self {
        let mut set = Self::default();
        statuses.into_iter().for_each(|status| set.insert(status));
        set
    }
}

impl std::fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let codes =
            (0..1024u16).filter(|code| self.0[usize::from(*code) / 64] & (1 << (code % 64)) != 0);
        f.debug_set().entries(codes).finish()
    }
}
