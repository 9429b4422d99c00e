//! The default classifier for gRPC clients such as tonic.

use super::plan::RetryOverride;
use super::transport::classify_transport_error;
use super::{Classify, Idempotent, Plan, TransportError, Verdict};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use std::time::Duration;

/// The gRPC status code `OK`.
const OK: i32 = 0;
/// The gRPC status code `UNKNOWN`.
const UNKNOWN: i32 = 2;
/// The gRPC status code `PERMISSION_DENIED`.
const PERMISSION_DENIED: i32 = 7;
/// The gRPC status code `UNIMPLEMENTED`.
const UNIMPLEMENTED: i32 = 12;
/// The gRPC status code `INTERNAL`.
const INTERNAL: i32 = 13;
/// The gRPC status code `UNAVAILABLE`, the only code retried by default.
const UNAVAILABLE: i32 = 14;
/// The gRPC status code `UNAUTHENTICATED`.
const UNAUTHENTICATED: i32 = 16;

const GRPC_STATUS: &str = "grpc-status";
const GRPC_RETRY_PUSHBACK_MS: &str = "grpc-retry-pushback-ms";
/// The request header with the number of earlier attempts of a call, which gRPC clients
/// send on every retry (gRFC A6).
const GRPC_PREVIOUS_RPC_ATTEMPTS: HeaderName =
    HeaderName::from_static("grpc-previous-rpc-attempts");

/// The default gRPC classifier.
///
/// It works on `http::Request<B>` and `http::Response<B>`, so it fits a tonic `Channel`
/// or any other gRPC client built on the `http` crate. Status codes are the numbers of the
/// gRPC specification; with tonic, `tonic::Code::Unavailable as i32` is 14.
///
/// - A response is classified by its head. A `grpc-status` header in the head means a
///   trailers-only response: the call failed before any message. Its code is retried when
///   it is one of the retryable codes (default `UNAVAILABLE`, 14), for every call, because
///   that list states which failures the caller considers safe to repeat.
/// - A retryable response's `grpc-retry-pushback-ms` header sets the exact delay before the
///   next attempt. A negative or invalid value, or more than one value, means that the
///   server requests no retry, so the response is fatal.
/// - A repeated `grpc-status` header is read by its first value, as tonic 0.14 reads it.
/// - With [`previous_attempts_header`](GrpcClassifier::previous_attempts_header), each
///   retry carries `grpc-previous-rpc-attempts` with the number of earlier attempts.
/// - A head with `grpc-status: 0` (OK), or with no `grpc-status` at all, is a success: the
///   server has started its response, so the call is committed and never retried, even if
///   its trailers later carry an error.
/// - A head with an HTTP status other than 200 and no `grpc-status` comes from a proxy, not
///   from a gRPC server. Its status is mapped to a gRPC code as the gRPC project's HTTP to
///   gRPC status mapping does: 429, 502, 503 and 504 become `UNAVAILABLE`.
/// - A transport error that proves the request was never sent is retried for every call.
///   Other transport errors are retried only for calls marked with [`Idempotent`], because
///   a gRPC call may change state on the server (see [`TransportError`]).
///
/// A [`RetryOverride`] request extension changes the limits of one call, or switches its
/// retries off, as it does for [`HttpClassifier`](super::HttpClassifier).
///
/// ```
/// use std::time::Duration;
/// use http::{Request, Response};
/// use tower_backoff::classify::{Classify, GrpcClassifier, Verdict};
///
/// let classifier = GrpcClassifier::default();
/// let call = Request::post("/grpc.health.v1.Health/Check").body(()).unwrap();
/// let plan = Classify::<_, Response<()>, std::io::Error>::plan(&classifier, &call);
/// let classify = |response: Response<()>| {
///     Classify::<Request<()>, _, std::io::Error>::classify(&classifier, plan.facts(), &Ok(response))
/// };
///
/// let unavailable = Response::builder()
///     .header("grpc-status", "14")
///     .header("grpc-retry-pushback-ms", "250")
///     .body(())
///     .unwrap();
/// assert_eq!(classify(unavailable), Verdict::Retry(Some(Duration::from_millis(250))));
///
/// let invalid_argument = Response::builder().header("grpc-status", "3").body(()).unwrap();
/// assert_eq!(classify(invalid_argument), Verdict::Fatal);
///
/// let streaming = Response::builder().body(()).unwrap();
/// assert_eq!(classify(streaming), Verdict::Success);
/// ```
#[derive(Debug, Clone)]
pub struct GrpcClassifier {
    codes: Vec<i32>,
    retry_transport_errors: bool,
    previous_attempts_header: bool,
}

/// The facts that [`GrpcClassifier`] keeps of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcFacts {
    idempotent: bool,
}

impl GrpcFacts {
    /// Returns whether the call is marked with [`Idempotent`].
    pub fn idempotent(&self) -> bool {
        self.idempotent
    }
}

impl Default for GrpcClassifier {
    fn default() -> Self {
        Self {
            codes: vec![UNAVAILABLE],
            retry_transport_errors: true,
            previous_attempts_header: false,
        }
    }
}

impl GrpcClassifier {
    /// Replaces the retryable status codes. An empty list retries no response.
    #[must_use]
    pub fn retryable_codes(mut self, codes: impl IntoIterator<Item = i32>) -> Self {
        self.codes = codes.into_iter().collect();
        self
    }

    /// Adds one retryable status code, for example `RESOURCE_EXHAUSTED` (8).
    #[must_use]
    pub fn retry_code(mut self, code: i32) -> Self {
        if !self.codes.contains(&code) {
            self.codes.push(code);
        }
        self
    }

    /// Sets whether transport errors are retried (default `true`).
    #[must_use]
    pub fn retry_transport_errors(mut self, retry: bool) -> Self {
        self.retry_transport_errors = retry;
        self
    }

    /// Sets whether each retry carries `grpc-previous-rpc-attempts`, the number of earlier
    /// attempts of the call, as gRPC's own clients send it (default `false`). The first
    /// attempt carries no such header, so one that the caller set is removed.
    ///
    /// ```
    /// use http::{Request, Response};
    /// use tower_backoff::classify::{Classify, GrpcClassifier};
    ///
    /// let classifier = GrpcClassifier::default().previous_attempts_header(true);
    /// let mut call = Request::post("/grpc.health.v1.Health/Check").body(()).unwrap();
    /// Classify::<_, Response<()>, std::io::Error>::prepare_attempt(&classifier, &mut call, 3);
    /// assert_eq!(call.headers()["grpc-previous-rpc-attempts"], "2");
    /// ```
    #[must_use]
    pub fn previous_attempts_header(mut self, send: bool) -> Self {
        self.previous_attempts_header = send;
        self
    }

    /// Returns the retryable status codes.
    pub fn codes(&self) -> &[i32] {
        &self.codes
    }

    fn classify_response<B>(&self, response: &Response<B>) -> Verdict {
        let code = match response_code(response) {
            None | Some(OK) => return Verdict::Success,
            Some(code) => code,
        };
        if !self.codes.contains(&code) {
            return Verdict::Fatal;
        }

        match pushback(response.headers()) {
            Pushback::Absent => Verdict::Retry(None),
            Pushback::Delay(delay) => Verdict::Retry(Some(delay)),
            Pushback::DoNotRetry => Verdict::Fatal,
        }
    }

    fn classify_error<E: TransportError>(&self, facts: GrpcFacts, error: &E) -> Verdict {
        classify_transport_error(error, facts.idempotent, self.retry_transport_errors)
    }
}

impl<B, ResBody, E> Classify<Request<B>, Response<ResBody>, E> for GrpcClassifier
where
    E: TransportError,
{
    type Facts = GrpcFacts;

    fn plan(&self, request: &Request<B>) -> Plan<GrpcFacts> {
        let facts = GrpcFacts {
            idempotent: request.extensions().get::<Idempotent>().is_some(),
        };
        let mut plan = Plan::new(facts);
        if self.codes.is_empty() && !self.retry_transport_errors {
            plan = plan.no_retry();
        }
        RetryOverride::apply_from(request, plan)
    }

    fn classify(&self, facts: &GrpcFacts, outcome: &Result<Response<ResBody>, E>) -> Verdict {
        match outcome {
            Ok(response) => self.classify_response(response),
            Err(error) => self.classify_error(*facts, error),
        }
    }

    #[inline(always)]
    fn prepare_attempt(&self, request: &mut Request<B>, attempt: u32) {
        if self.previous_attempts_header {
            set_previous_attempts(request, attempt);
        }
    }
}

/// Sets `grpc-previous-rpc-attempts` to the number of attempts before `attempt`, or removes
/// it from the first attempt.
fn set_previous_attempts<B>(request: &mut Request<B>, attempt: u32) {
    let headers = request.headers_mut();
    match attempt.checked_sub(1).filter(|previous| *previous > 0) {
        Some(previous) => {
            headers.insert(GRPC_PREVIOUS_RPC_ATTEMPTS, HeaderValue::from(previous));
        }
        None => {
            headers.remove(GRPC_PREVIOUS_RPC_ATTEMPTS);
        }
    }
}

/// Returns the gRPC status code in a response head, or `None` when the head carries none
/// because the server has started a normal response.
fn response_code<B>(response: &Response<B>) -> Option<i32> {
    if let Some(value) = response.headers().get(GRPC_STATUS) {
        // A malformed code is UNKNOWN, as tonic 0.14 reads it.
        return Some(parse_code(value.as_bytes()).unwrap_or(UNKNOWN));
    }

    let status = response.status();
    if status == StatusCode::OK {
        return None;
    }
    Some(code_for_http_status(status))
}

/// Parses a status code written as gRPC writes it: the decimal digits of 0 to 16, with no
/// sign, padding or leading zero. tonic 0.14 reads any other spelling as UNKNOWN too.
fn parse_code(bytes: &[u8]) -> Option<i32> {
    let canonical = match bytes {
        [digit] => digit.is_ascii_digit(),
        [b'1', digit] => digit.is_ascii_digit(),
        _ => false,
    };
    if !canonical {
        return None;
    }
    let code = std::str::from_utf8(bytes).ok()?.parse::<i32>().ok()?;
    (code <= 16).then_some(code)
}

/// Maps the HTTP status of a response without `grpc-status`, which a proxy sent, to a gRPC
/// code. The table is the one tonic 0.14 uses, taken from the gRPC project's document
/// "HTTP to gRPC Status Code Mapping".
fn code_for_http_status(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 => INTERNAL,
        401 => UNAUTHENTICATED,
        403 => PERMISSION_DENIED,
        404 => UNIMPLEMENTED,
        429 | 502 | 503 | 504 => UNAVAILABLE,
        _ => UNKNOWN,
    }
}

/// The `grpc-retry-pushback-ms` header of a retryable response, parsed.
enum Pushback {
    /// No header: the backoff schedule decides the delay.
    Absent,
    /// Retry after exactly this delay.
    Delay(Duration),
    /// A negative or invalid value, or more than one value, by which the server requests
    /// no retry.
    DoNotRetry,
}

fn pushback(headers: &HeaderMap) -> Pushback {
    let mut values = headers.get_all(GRPC_RETRY_PUSHBACK_MS).iter();
    let Some(value) = values.next() else {
        return Pushback::Absent;
    };
    // Two values leave the server's request unclear, so they count as an invalid one, as
    // a repeated `Retry-After` does.
    if values.next().is_some() {
        return Pushback::DoNotRetry;
    }
    let Ok(text) = value.to_str() else {
        return Pushback::DoNotRetry;
    };

    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Pushback::DoNotRetry;
    }
    // Digits only, so a parse error can only be an overflow. Such a delay is longer than any
    // cap, so the policy's `max_retry_after` turns it into a give-up.
    let delay = text
        .parse::<u64>()
        .map_or(Duration::MAX, Duration::from_millis);
    Pushback::Delay(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)]) -> Response<()> {
        let mut builder = Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    type Outcome = Result<Response<()>, std::io::Error>;

    fn classify(classifier: &GrpcClassifier, call: &Request<()>, outcome: Outcome) -> Verdict {
        let plan = Classify::<_, Response<()>, std::io::Error>::plan(classifier, call);
        Classify::<Request<()>, _, _>::classify(classifier, plan.facts(), &outcome)
    }

    fn verdict(classifier: &GrpcClassifier, response: Response<()>) -> Verdict {
        let call = Request::post("/test.Service/Call").body(()).unwrap();
        classify(classifier, &call, Ok(response))
    }

    #[test]
    fn grpc_status_table() {
        let classifier = GrpcClassifier::default();
        // The HTTP status, the response headers and the expected verdict.
        type Case = (u16, &'static [(&'static str, &'static str)], Verdict);
        let cases: &[Case] = &[
            (200, &[], Verdict::Success),
            (200, &[("grpc-status", "0")], Verdict::Success),
            (200, &[("grpc-status", "14")], Verdict::Retry(None)),
            (200, &[("grpc-status", " 14 ")], Verdict::Fatal),
            (200, &[("grpc-status", "3")], Verdict::Fatal),
            (200, &[("grpc-status", "4")], Verdict::Fatal),
            (200, &[("grpc-status", "8")], Verdict::Fatal),
            (200, &[("grpc-status", "unavailable")], Verdict::Fatal),
            (503, &[], Verdict::Retry(None)),
            (502, &[], Verdict::Retry(None)),
            (429, &[], Verdict::Retry(None)),
            (404, &[], Verdict::Fatal),
            (500, &[], Verdict::Fatal),
            // The gRPC code wins over the HTTP status.
            (503, &[("grpc-status", "3")], Verdict::Fatal),
        ];
        for (status, headers, expected) in cases {
            let actual = verdict(&classifier, response(*status, headers));
            assert_eq!(actual, *expected, "status {status}, headers {headers:?}");
        }
    }

    #[test]
    fn pushback_table() {
        let classifier = GrpcClassifier::default();
        let cases: &[(&str, Verdict)] = &[
            ("0", Verdict::Retry(Some(Duration::ZERO))),
            ("250", Verdict::Retry(Some(Duration::from_millis(250)))),
            (
                "99999999999999999999999",
                Verdict::Retry(Some(Duration::MAX)),
            ),
            ("-1", Verdict::Fatal),
            ("1.5", Verdict::Fatal),
            ("soon", Verdict::Fatal),
            ("", Verdict::Fatal),
        ];
        for (value, expected) in cases {
            let unavailable = response(
                200,
                &[("grpc-status", "14"), ("grpc-retry-pushback-ms", value)],
            );
            assert_eq!(
                verdict(&classifier, unavailable),
                *expected,
                "pushback {value:?}"
            );
        }
    }

    /// Runs `prepare_attempt` of `classifier` for `attempt` on a request that the caller
    /// sent with `grpc-previous-rpc-attempts: 7`, and returns the header's values after it.
    fn previous_attempts_after(classifier: &GrpcClassifier, attempt: u32) -> Vec<String> {
        let mut request = Request::builder()
            .header(GRPC_PREVIOUS_RPC_ATTEMPTS, "7")
            .body(())
            .unwrap();
        Classify::<_, Response<()>, std::io::Error>::prepare_attempt(
            classifier,
            &mut request,
            attempt,
        );
        request
            .headers()
            .get_all(GRPC_PREVIOUS_RPC_ATTEMPTS)
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn previous_attempts_counts_earlier() {
        let classifier = GrpcClassifier::default().previous_attempts_header(true);
        assert!(previous_attempts_after(&classifier, 1).is_empty());
        assert_eq!(previous_attempts_after(&classifier, 2), ["1"]);
        assert_eq!(previous_attempts_after(&classifier, 5), ["4"]);
    }

    #[test]
    fn previous_attempts_off_by_default() {
        let classifier = GrpcClassifier::default();
        assert_eq!(previous_attempts_after(&classifier, 1), ["7"]);
        assert_eq!(previous_attempts_after(&classifier, 3), ["7"]);
    }

    #[test]
    fn repeated_pushback_not_retried() {
        let classifier = GrpcClassifier::default();
        for values in [["10", "-1"], ["10", "10"]] {
            let mut unavailable = response(200, &[("grpc-status", "14")]);
            for value in values {
                unavailable
                    .headers_mut()
                    .append(GRPC_RETRY_PUSHBACK_MS, value.parse().unwrap());
            }
            assert_eq!(
                verdict(&classifier, unavailable),
                Verdict::Fatal,
                "pushback {values:?}"
            );
        }
    }

    #[test]
    fn repeated_status_read_by_first_value() {
        let classifier = GrpcClassifier::default();
        let mut ok_first = response(200, &[("grpc-status", "0")]);
        ok_first
            .headers_mut()
            .append(GRPC_STATUS, "14".parse().unwrap());
        assert_eq!(verdict(&classifier, ok_first), Verdict::Success);

        let mut unavailable_first = response(200, &[("grpc-status", "14")]);
        unavailable_first
            .headers_mut()
            .append(GRPC_STATUS, "0".parse().unwrap());
        assert_eq!(
            verdict(&classifier, unavailable_first),
            Verdict::Retry(None)
        );
    }

    #[test]
    fn pushback_on_fatal_code_ignored() {
        let classifier = GrpcClassifier::default();
        let denied = response(
            200,
            &[("grpc-status", "7"), ("grpc-retry-pushback-ms", "10")],
        );
        assert_eq!(verdict(&classifier, denied), Verdict::Fatal);
    }

    #[test]
    fn configured_codes() {
        let classifier = GrpcClassifier::default().retryable_codes([8]);
        let exhausted = response(200, &[("grpc-status", "8")]);
        assert_eq!(verdict(&classifier, exhausted), Verdict::Retry(None));
        let unavailable = response(200, &[("grpc-status", "14")]);
        assert_eq!(verdict(&classifier, unavailable), Verdict::Fatal);

        let classifier = GrpcClassifier::default().retry_code(8);
        assert_eq!(classifier.codes(), [UNAVAILABLE, 8]);
    }

    #[test]
    fn transport_errors_by_idempotency() {
        let classifier = GrpcClassifier::default();
        let refused = || Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let reset = || Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset));

        let call = Request::post("/test.Service/Call").body(()).unwrap();
        assert_eq!(
            classify(&classifier, &call, refused()),
            Verdict::Retry(None)
        );
        assert_eq!(classify(&classifier, &call, reset()), Verdict::Fatal);

        let mut marked = Request::post("/test.Service/Call").body(()).unwrap();
        marked.extensions_mut().insert(Idempotent);
        assert_eq!(
            classify(&classifier, &marked, refused()),
            Verdict::Retry(None)
        );
        assert_eq!(
            classify(&classifier, &marked, reset()),
            Verdict::Retry(None)
        );

        let off = GrpcClassifier::default().retry_transport_errors(false);
        assert_eq!(classify(&off, &marked, refused()), Verdict::Fatal);
    }

    #[test]
    fn retry_override_applies() {
        let classifier = GrpcClassifier::default();
        let mut call = Request::post("/test.Service/Call").body(()).unwrap();
        call.extensions_mut()
            .insert(RetryOverride::new().max_attempts(7));
        let plan = Classify::<_, Response<()>, std::io::Error>::plan(&classifier, &call);
        assert_eq!(plan.attempts_override(), Some(7));
        assert!(plan.may_retry());

        call.extensions_mut().insert(RetryOverride::new().disable());
        let plan = Classify::<_, Response<()>, std::io::Error>::plan(&classifier, &call);
        assert!(!plan.may_retry());
    }

    #[test]
    fn nothing_retryable_plans_no_retry() {
        let classifier = GrpcClassifier::default()
            .retryable_codes([])
            .retry_transport_errors(false);
        let call = Request::post("/test.Service/Call").body(()).unwrap();
        let plan = Classify::<_, Response<()>, std::io::Error>::plan(&classifier, &call);
        assert!(!plan.may_retry());
    }
}
