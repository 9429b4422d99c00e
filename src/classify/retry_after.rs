//! Server-given delays: `Retry-After` and similar headers.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A response header that carries the delay a server requests.
///
/// [`HttpClassifier`](super::HttpClassifier) reads its list of sources in order and uses the
/// first valid one. A missing, invalid, zero or past value is ignored, so the backoff schedule
/// decides the delay.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use http::HeaderMap;
/// use tower_backoff::classify::DelayHeader;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after-ms", "250".parse().unwrap());
/// let source = DelayHeader::Milliseconds("retry-after-ms".parse().unwrap());
/// assert_eq!(source.read(&headers, UNIX_EPOCH), Some(Duration::from_millis(250)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DelayHeader {
    /// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 section 10.2.3).
    RetryAfter,
    /// A header with a whole number of milliseconds, such as `retry-after-ms`.
    Milliseconds(HeaderName),
    /// A header with a whole number of seconds, such as `ratelimit-reset`.
    Seconds(HeaderName),
    /// A header with the Unix time in seconds at which to retry, such as
    /// `x-ratelimit-reset` on some APIs.
    UnixTime(HeaderName),
}

impl DelayHeader {
    /// Reads the delay from `headers`, with `now` as the time of the response.
    ///
    /// These headers carry one value, so a header repeated on several lines is invalid and
    /// ignored, as is the comma-joined line that a proxy may make of them.
    pub fn read(&self, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
        match self {
            DelayHeader::RetryAfter => {
                parse_retry_after(single(headers, &header::RETRY_AFTER)?, now)
            }
            DelayHeader::Milliseconds(name) => {
                parse_whole_number(single(headers, name)?).map(Duration::from_millis)
            }
            DelayHeader::Seconds(name) => {
                parse_whole_number(single(headers, name)?).map(Duration::from_secs)
            }
            DelayHeader::UnixTime(name) => {
                let at = parse_whole_number(single(headers, name)?)?;
                let at = UNIX_EPOCH.checked_add(Duration::from_secs(at))?;
                until(at, now)
            }
        }
        .filter(|delay| !delay.is_zero())
    }
}

/// Parses a `Retry-After` value, with `now` as the time of the response.
///
/// The value is delay-seconds (digits only) or an HTTP-date in any of the three forms of RFC
/// 9110 section 5.6.7, with optional surrounding spaces and tabs. Returns `None` for an
/// invalid value (a sign, a fraction, text, non-ASCII bytes), for zero and for a date that is
/// not in the future, so that the caller falls back to its backoff schedule. A number of
/// seconds too large for `u64` returns [`Duration::MAX`]: the server requests longer than any
/// cap.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::HeaderValue;
/// use tower_backoff::classify::parse_retry_after;
///
/// let now = httpdate::parse_http_date("Mon, 03 Jun 2019 11:00:00 GMT").unwrap();
/// let date = HeaderValue::from_static("Mon, 03 Jun 2019 11:00:40 GMT");
/// assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(40)));
/// assert_eq!(parse_retry_after(&HeaderValue::from_static("1.5"), now), None);
/// ```
pub fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = trim(value.to_str().ok()?);

    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        // Digits only, so a parse error can only be an overflow.
        let seconds = text
            .parse::<u64>()
            .map_or(Duration::MAX, Duration::from_secs);
        return Some(seconds).filter(|delay| !delay.is_zero());
    }

    let at = httpdate::parse_http_date(text).ok()?;
    until(at, now).filter(|delay| !delay.is_zero())
}

/// Reads the response's `Date` header, the server's idea of "now" for HTTP-dates.
pub(crate) fn response_date(headers: &HeaderMap) -> Option<SystemTime> {
    let value = headers.get(header::DATE)?.to_str().ok()?;
    httpdate::parse_http_date(trim(value)).ok()
}

/// Returns the value of a header that occurs exactly once.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    values.next().is_none().then_some(value)
}

fn parse_whole_number(value: &HeaderValue) -> Option<u64> {
    let text = trim(value.to_str().ok()?);
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().unwrap_or(u64::MAX))
}

fn until(at: SystemTime, now: SystemTime) -> Option<Duration> {
    at.duration_since(now).ok()
}

/// Removes the optional whitespace (spaces and tabs) that RFC 9110 allows around a value.
fn trim(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}
