//! Field cases and their neighbours, written from a reviewer's reading of the documented
//! behaviour: hostile `Retry-After` values, boundaries of the limits, schedules with extreme
//! values, readiness, dropped futures, budgets, replayed bodies and odd gRPC statuses.
//!
//! A test marked `` states the behaviour the crate should have and
//! fails today; remove the attribute once the defect is fixed.

mod support;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use proptest::prelude::*;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use support::{EventLog, Scripted, error, get, millis, post, secs, status};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_backoff::backoff::{self, Backoff, Constant, Exponential, List};
use tower_backoff::body::{ReplayBody, ReplayBodyLayer, Replayable};
use tower_backoff::budget::{Budget, TpsBudget};
use tower_backoff::classify::{
    Classify, GrpcClassifier, HttpClassifier, RetryOverride, Verdict, parse_retry_after,
};
use tower_backoff::hooks::{DelaySource, GiveUpReason};
use tower_backoff::{BoxError, ConfigErrorKind, Jitter, Logging, RetryLayer, RetryPolicy};

/// The clock of every HTTP-date case: the `Date` header of the scripted responses.
const DATE: &str = "Mon, 03 Jun 2019 11:00:00 GMT";

fn date_now() -> SystemTime {
    httpdate::parse_http_date(DATE).unwrap()
}

fn parse(value: &[u8]) -> Option<Duration> {
    parse_retry_after(&HeaderValue::from_bytes(value).unwrap(), date_now())
}

/// What the layer did after the first response of a GET.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Slept(Duration, DelaySource),
    Returned(GiveUpReason),
}

/// The scheduled delay used by [`first_action`], so that it cannot be confused with a
/// server's delay.
const SCHEDULED: Duration = Duration::from_secs(7);

/// Sends a GET that meets `first`, then a 200, under a constant 7 s schedule without jitter,
/// and reports what the layer did after the first response.
async fn first_action(first: support::Step, max_retry_after: Duration) -> Action {
    let server = Scripted::new([first, status(200)]);
    let log = EventLog::default();
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(SCHEDULED))
        .jitter(Jitter::None)
        .max_retry_after(max_retry_after)
        .logging(Logging::off())
        .hooks(log.clone())
        .build()
        .unwrap();
    let response = RetryLayer::new(policy)
        .layer(server.clone())
        .oneshot(get())
        .await
        .unwrap();

    let event = log.events().remove(0);
    match event.reason {
        Some(reason) => {
            assert_ne!(response.status(), 200, "a give-up returns the failure");
            assert_eq!(server.calls().len(), 1);
            Action::Returned(reason)
        }
        None => {
            let delay = event.next_delay.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(server.attempt_times_ms(), [0, delay.as_millis()]);
            Action::Slept(delay, event.delay_source.unwrap())
        }
    }
}

fn too_many(retry_after: &[u8]) -> support::Step {
    status(429)
        .header("date", DATE.as_bytes())
        .header("retry-after", retry_after)
}

// ---------------------------------------------------------------------------------------
// Retry-After values
// ---------------------------------------------------------------------------------------

#[test]
fn retry_after_trims_outer_whitespace() {
    assert_eq!(parse(b"\t12\t"), Some(secs(12)));
    assert_eq!(parse(b" \t 12 \t "), Some(secs(12)));
    assert_eq!(parse(b"1\t2"), None);
    assert_eq!(parse(b"\t"), None);
}

#[test]
fn retry_after_non_ascii_digits_invalid() {
    // Full-width digits, Arabic-Indic digits, a no-break space and a superscript two.
    for value in ["\u{ff11}\u{ff12}", "\u{661}\u{662}", "12\u{a0}", "\u{b2}"] {
        assert_eq!(parse(value.as_bytes()), None, "{value:?}");
    }
}

#[test]
fn header_values_reject_line_breaks() {
    // The `http` crate rejects these bytes in a header value, so a parsed response never
    // contains them and the parser needs no rule for them.
    for value in [&b"5\r\n"[..], b"5\n", b"\r5", b"5\x00", b"5\x7f"] {
        assert!(HeaderValue::from_bytes(value).is_err(), "{value:?}");
    }
}

#[test]
fn retry_after_pre_epoch_dates_ignored() {
    assert_eq!(parse(b"Thu, 01 Jan 1970 00:00:00 GMT"), None);
    assert_eq!(parse(b"Wed, 31 Dec 1969 23:59:59 GMT"), None);
    assert_eq!(parse(b"Mon, 01 Jan 1900 00:00:00 GMT"), None);
    assert_eq!(parse(b"Sat, 01 Jan 0000 00:00:00 GMT"), None);
}

#[test]
fn retry_after_far_dates_no_overflow() {
    let year_9999 = parse(b"Fri, 31 Dec 9999 23:59:59 GMT").unwrap();
    assert!(year_9999 > secs(250_000_000_000));
    // A five-digit year is not an HTTP-date.
    assert_eq!(parse(b"Sat, 01 Jan 10000 00:00:00 GMT"), None);
}

#[test]
fn retry_after_long_leading_zeros() {
    assert_eq!(parse(b"0000000000000000000000000001"), Some(secs(1)));
    assert_eq!(parse(&[b'0'; 400]), None);
}

#[test]
fn retry_after_date_one_second_ahead() {
    assert_eq!(parse(b"Mon, 03 Jun 2019 11:00:01 GMT"), Some(secs(1)));
    assert_eq!(parse(b"Mon, 03 Jun 2019 10:59:59 GMT"), None);
}

#[tokio::test(start_paused = true)]
async fn year_9999_date_returns_at_once() {
    let action = first_action(too_many(b"Fri, 31 Dec 9999 23:59:59 GMT"), secs(60)).await;
    assert_eq!(action, Action::Returned(GiveUpReason::ServerDelayTooLong));
}

#[tokio::test(start_paused = true)]
async fn pre_epoch_date_uses_schedule() {
    let action = first_action(too_many(b"Wed, 31 Dec 1969 23:59:59 GMT"), secs(60)).await;
    assert_eq!(action, Action::Slept(SCHEDULED, DelaySource::Schedule));
}

#[tokio::test(start_paused = true)]
async fn retry_after_equal_cap_waited() {
    let action = first_action(too_many(b"60"), secs(60)).await;
    assert_eq!(action, Action::Slept(secs(60), DelaySource::Server));

    let action = first_action(too_many(b"61"), secs(60)).await;
    assert_eq!(action, Action::Returned(GiveUpReason::ServerDelayTooLong));
}

#[tokio::test(start_paused = true)]
async fn zero_cap_returns_every_server_delay() {
    let action = first_action(too_many(b"1"), Duration::ZERO).await;
    assert_eq!(action, Action::Returned(GiveUpReason::ServerDelayTooLong));
    // No server delay: the schedule still applies.
    let action = first_action(too_many(b"0"), Duration::ZERO).await;
    assert_eq!(action, Action::Slept(SCHEDULED, DelaySource::Schedule));
}

#[tokio::test(start_paused = true)]
async fn unicode_retry_after_uses_schedule() {
    let action = first_action(too_many("\u{ff13}\u{ff10}".as_bytes()), secs(60)).await;
    assert_eq!(action, Action::Slept(SCHEDULED, DelaySource::Schedule));
}

/// Checks that two `Retry-After` lines act like their combined line, in either order.
/// RFC 9110 section 5.3 lets any hop combine repeated field lines into one comma-separated
/// line without changing the meaning of the message.
#[tokio::test(start_paused = true)]

async fn repeated_retry_after_matches_combined_line() {
    let combined = first_action(too_many(b"5, 120"), secs(60)).await;
    assert_eq!(combined, Action::Slept(SCHEDULED, DelaySource::Schedule));

    let short_first = too_many(b"5").header("retry-after", b"120");
    let long_first = too_many(b"120").header("retry-after", b"5");
    assert_eq!(first_action(short_first, secs(60)).await, combined);
    assert_eq!(first_action(long_first, secs(60)).await, combined);
}

#[test]
fn script_sends_repeated_lines() {
    // Guards the test above: the script really sends two `Retry-After` lines.
    let step = too_many(b"5").header("retry-after", b"120");
    let server = Scripted::new([step]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let response = runtime.block_on(server.oneshot(get())).unwrap();
    let lines: Vec<_> = response.headers().get_all("retry-after").iter().collect();
    assert_eq!(lines, ["5", "120"]);
}

// ---------------------------------------------------------------------------------------
// Server delays, deadlines and attempt limits at their exact boundaries
// ---------------------------------------------------------------------------------------

async fn deadline_run(
    first: support::Step,
    schedule: Constant,
    max_elapsed: Duration,
) -> (Scripted, EventLog) {
    let server = Scripted::new([first, status(503)]);
    let log = EventLog::default();
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(schedule)
        .jitter(Jitter::None)
        .max_attempts(10)
        .max_elapsed(max_elapsed)
        .logging(Logging::off())
        .hooks(log.clone())
        .build()
        .unwrap();
    RetryLayer::new(policy)
        .layer(server.clone())
        .oneshot(get())
        .await
        .unwrap();
    (server, log)
}

#[tokio::test(start_paused = true)]
async fn server_delay_at_deadline_skipped() {
    let (server, log) = deadline_run(too_many(b"5"), Constant::new(secs(1)), secs(5)).await;
    assert_eq!(server.attempt_times_ms(), [0]);
    assert_eq!(log.reasons(), [GiveUpReason::Deadline]);
}

#[tokio::test(start_paused = true)]
async fn server_delay_before_deadline_taken() {
    let deadline = secs(5) + millis(2);
    let (server, log) = deadline_run(too_many(b"5"), Constant::new(secs(1)), deadline).await;
    // Then a 503 at 5 s, whose 1 s sleep would pass the deadline.
    assert_eq!(server.attempt_times_ms(), [0, 5000]);
    assert_eq!(log.reasons(), [GiveUpReason::Deadline]);
}

#[tokio::test(start_paused = true)]
async fn scheduled_sleep_at_deadline_skipped() {
    let (server, log) = deadline_run(status(503), Constant::new(secs(1)), secs(1)).await;
    assert_eq!(server.attempt_times_ms(), [0]);
    assert_eq!(log.reasons(), [GiveUpReason::Deadline]);

    // tokio's timer could end the sleep up to 2 ms late, at or after the deadline.
    for margin in [
        Duration::from_nanos(1),
        millis(1),
        millis(2) - Duration::from_nanos(1),
    ] {
        let (server, log) =
            deadline_run(status(503), Constant::new(secs(1)), secs(1) + margin).await;
        assert_eq!(server.attempt_times_ms(), [0], "margin {margin:?}");
        assert_eq!(log.reasons(), [GiveUpReason::Deadline], "margin {margin:?}");
    }

    let deadline = secs(1) + millis(2);
    let (server, log) = deadline_run(status(503), Constant::new(secs(1)), deadline).await;
    assert_eq!(server.attempt_times_ms(), [0, 1000]);
    assert_eq!(log.reasons(), [GiveUpReason::Deadline]);
}

#[tokio::test(start_paused = true)]
async fn max_constant_delay_hits_deadline() {
    let (server, log) = deadline_run(status(503), Constant::new(Duration::MAX), secs(10)).await;
    assert_eq!(server.attempt_times_ms(), [0]);
    assert_eq!(log.reasons(), [GiveUpReason::Deadline]);
}

#[tokio::test(start_paused = true)]
async fn max_constant_delay_sleeps_without_panic() {
    let server = Scripted::new([status(503)]);
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(Duration::MAX))
        .jitter(Jitter::None)
        .logging(Logging::off())
        .build()
        .unwrap();
    let request = RetryLayer::new(policy).layer(server.clone()).oneshot(get());
    let waited = tokio::time::timeout(secs(365 * 24 * 3600), request).await;
    assert!(waited.is_err(), "the request sleeps for ever");
    assert_eq!(server.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn zero_constant_delay_retries_at_once() {
    let server = Scripted::new([status(503)]);
    let log = EventLog::default();
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(Duration::ZERO))
        .max_attempts(4)
        .logging(Logging::off())
        .hooks(log.clone())
        .build()
        .unwrap();
    let response = RetryLayer::new(policy)
        .layer(server.clone())
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(server.attempt_times_ms(), [0, 0, 0, 0]);
    assert_eq!(log.delays(), [Duration::ZERO; 3]);
    assert_eq!(log.reasons(), [GiveUpReason::Exhausted]);
}

#[tokio::test(start_paused = true)]
async fn hooks_never_repeat_attempt_numbers() {
    let server = Scripted::new([status(503)]);
    let log = EventLog::default();
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(millis(10)))
        .max_attempts(6)
        .logging(Logging::off())
        .hooks(log.clone())
        .build()
        .unwrap();
    RetryLayer::new(policy)
        .layer(server)
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(
        log.hooks(),
        [
            ("retry", 1),
            ("retry", 2),
            ("retry", 3),
            ("retry", 4),
            ("retry", 5),
            ("give_up", 6)
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Finite schedules
// ---------------------------------------------------------------------------------------

/// Sends a GET to a server that always returns 429 with `Retry-After: 2`, under a finite
/// schedule and with room for ten attempts.
async fn finite_schedule_under_server_delays<B: Backoff>(schedule: B) -> (Scripted, EventLog) {
    let server = Scripted::new([status(429).header("retry-after", b"2")]);
    let log = EventLog::default();
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(schedule)
        .jitter(Jitter::None)
        .max_attempts(10)
        .no_budget()
        .logging(Logging::off())
        .hooks(log.clone())
        .build()
        .unwrap();
    RetryLayer::new(policy)
        .layer(server.clone())
        .oneshot(get())
        .await
        .unwrap();
    (server, log)
}

#[tokio::test(start_paused = true)]
async fn list_end_stops_retries() {
    let server = Scripted::new([status(503)]);
    let log = EventLog::default();
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(List::new([secs(1)]))
        .jitter(Jitter::None)
        .max_attempts(10)
        .logging(Logging::off())
        .hooks(log.clone())
        .build()
        .unwrap();
    RetryLayer::new(policy)
        .layer(server.clone())
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(server.attempt_times_ms(), [0, 1000]);
    assert_eq!(log.reasons(), [GiveUpReason::ScheduleEnded]);
}

/// Checks the `List` docs: "A list of two delays allows at most two retries, whatever
/// `max_attempts` says", and the request gives up when the list ends.
#[tokio::test(start_paused = true)]

async fn list_end_final_with_server_delays() {
    let (server, log) = finite_schedule_under_server_delays(List::new([secs(1)])).await;
    assert_eq!(server.attempt_times_ms(), [0, 2000]);
    assert_eq!(log.reasons(), [GiveUpReason::ScheduleEnded]);
}

/// Checks the `from_fn` docs, which define a `None` delay as "give up".
#[tokio::test(start_paused = true)]

async fn from_fn_none_final_with_server_delays() {
    let schedule = backoff::from_fn(|retry| (retry <= 2).then_some(secs(1)));
    let (server, log) = finite_schedule_under_server_delays(schedule).await;
    assert_eq!(server.attempt_times_ms(), [0, 2000, 4000]);
    assert_eq!(log.reasons(), [GiveUpReason::ScheduleEnded]);
}

#[test]
fn exponential_float_seconds_exact() {
    let mut schedule = Exponential::new(0.5).max_delay(120.0);
    schedule.validate().unwrap();
    let mut rng = rand::make_rng::<rand::rngs::SmallRng>();
    let delays: Vec<Duration> = (0..11)
        .map(|_| schedule.next_delay(&mut rng).unwrap())
        .collect();
    let expected: Vec<Duration> = [500, 1000, 2000, 4000, 8000, 16_000, 32_000, 64_000]
        .into_iter()
        .chain([120_000; 3])
        .map(millis)
        .collect();
    assert_eq!(delays, expected);
}

#[test]
fn exponential_factor_one_stays_constant() {
    let mut schedule = Exponential::new(secs(3)).factor(1.0);
    schedule.validate().unwrap();
    let mut rng = rand::make_rng::<rand::rngs::SmallRng>();
    for _ in 0..1000 {
        assert_eq!(schedule.next_delay(&mut rng), Some(secs(3)));
    }
}

// ---------------------------------------------------------------------------------------
// Jitter at its extremes
// ---------------------------------------------------------------------------------------

async fn jittered_delays(jitter: Jitter, schedule: Exponential, count: usize) -> Vec<Duration> {
    let mut delays = Vec::new();
    for seed in 0..count as u64 {
        let server = Scripted::new([status(503), status(200)]);
        let log = EventLog::default();
        let policy = RetryPolicy::builder(HttpClassifier::default())
            .backoff(schedule)
            .jitter(jitter)
            .seed(seed)
            .no_budget()
            .logging(Logging::off())
            .hooks(log.clone())
            .build()
            .unwrap();
        RetryLayer::new(policy)
            .layer(server)
            .oneshot(get())
            .await
            .unwrap();
        delays.extend(log.delays());
    }
    delays
}

#[tokio::test(start_paused = true)]
async fn full_proportional_spread_within_cap() {
    let schedule = Exponential::new(secs(1)).max_delay(secs(1));
    let delays = jittered_delays(Jitter::Proportional(1.0), schedule, 200).await;
    assert_eq!(delays.len(), 200);
    assert!(delays.iter().all(|delay| *delay <= secs(1)), "{delays:?}");
    assert!(
        delays.iter().any(|delay| *delay < millis(500)),
        "{delays:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn zero_proportional_spread_is_exact() {
    let schedule = Exponential::new(secs(2)).max_delay(secs(10));
    let delays = jittered_delays(Jitter::Proportional(0.0), schedule, 20).await;
    assert_eq!(delays, [secs(2); 20]);
}

#[tokio::test(start_paused = true)]
async fn max_additive_jitter_capped() {
    let schedule = Exponential::new(secs(1)).max_delay(secs(10));
    let delays = jittered_delays(Jitter::Additive(Duration::MAX.into()), schedule, 50).await;
    assert_eq!(delays.len(), 50);
    assert!(
        delays
            .iter()
            .all(|delay| *delay >= secs(1) && *delay <= secs(10)),
        "{delays:?}"
    );
}

#[test]
fn out_of_range_spreads_rejected() {
    for spread in [1.5, f64::INFINITY, f64::NAN, -0.5] {
        let built = RetryPolicy::builder(HttpClassifier::default())
            .jitter(Jitter::Proportional(spread))
            .build();
        let error = built.unwrap_err();
        assert_eq!(error.field(), "jitter.proportional", "{spread}");
    }
}

/// Checks the error kind of a negative spread, which is below the smallest allowed value,
/// so "too large" misleads the user.
#[test]

fn negative_spread_not_reported_too_large() {
    let error = RetryPolicy::builder(HttpClassifier::default())
        .jitter(Jitter::Proportional(-0.5))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            error.kind(),
            ConfigErrorKind::TooSmall | ConfigErrorKind::NotFinite
        ),
        "{:?}",
        error.kind()
    );
}

#[test]
fn invalid_float_intervals_rejected_everywhere() {
    let rejected = |built: Result<_, tower_backoff::ConfigError>| built.unwrap_err().kind();
    let policy = || RetryPolicy::builder(HttpClassifier::default());
    let cases = [
        (-1.0, ConfigErrorKind::TooSmall),
        (-0.000_001, ConfigErrorKind::TooSmall),
        (f64::NAN, ConfigErrorKind::NotFinite),
        (f64::INFINITY, ConfigErrorKind::NotFinite),
        (f64::NEG_INFINITY, ConfigErrorKind::NotFinite),
        (1e300, ConfigErrorKind::TooLarge),
    ];
    for (seconds, kind) in cases {
        assert_eq!(
            rejected(policy().max_elapsed(seconds).build().map(drop)),
            kind,
            "max_elapsed {seconds}"
        );
        assert_eq!(
            rejected(policy().max_retry_after(seconds).build().map(drop)),
            kind,
            "max_retry_after {seconds}"
        );
        assert_eq!(
            rejected(policy().backoff(Constant::new(seconds)).build().map(drop)),
            kind,
            "constant {seconds}"
        );
        assert_eq!(
            rejected(
                policy()
                    .jitter(Jitter::Additive(seconds.into()))
                    .build()
                    .map(drop)
            ),
            kind,
            "additive jitter {seconds}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Per-request overrides and cloning
// ---------------------------------------------------------------------------------------

/// A body that counts its clones.
#[derive(Debug)]
struct CountedBody(Arc<AtomicUsize>);

impl Clone for CountedBody {
    fn clone(&self) -> Self {
        self.0.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(&self.0))
    }
}

/// Sends a GET with `retry_override` to a service that always returns 503. Returns the
/// number of calls and the number of body clones.
async fn override_run(retry_override: RetryOverride) -> (usize, usize) {
    let clones = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let service = tower::service_fn(move |_request: Request<CountedBody>| {
        counter.fetch_add(1, Ordering::Relaxed);
        async {
            let mut response = Response::new(());
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            Ok::<_, io::Error>(response)
        }
    });
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(secs(1)))
        .logging(Logging::off())
        .build()
        .unwrap();
    let mut request = Request::get("/")
        .body(CountedBody(Arc::clone(&clones)))
        .unwrap();
    request.extensions_mut().insert(retry_override);
    let response = RetryLayer::new(policy)
        .layer(service)
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    (
        calls.load(Ordering::Relaxed),
        clones.load(Ordering::Relaxed),
    )
}

#[tokio::test(start_paused = true)]
async fn zero_attempt_override_sends_once() {
    assert_eq!(
        override_run(RetryOverride::new().max_attempts(0)).await,
        (1, 0)
    );
    assert_eq!(
        override_run(RetryOverride::new().max_attempts(1)).await,
        (1, 0)
    );
    assert_eq!(override_run(RetryOverride::new().disable()).await, (1, 0));
}

#[tokio::test(start_paused = true)]
async fn five_attempt_override_clone_count() {
    // Five attempts make four clones: one kept for retries and one for each of the three
    // middle attempts. The last attempt takes the kept request.
    assert_eq!(
        override_run(RetryOverride::new().max_attempts(5)).await,
        (5, 4)
    );
}

/// Checks that a zero deadline, which rules out every retry because every sleep ends at or
/// after it, does not clone the request.
#[tokio::test(start_paused = true)]

async fn zero_deadline_override_not_cloned() {
    let run = override_run(RetryOverride::new().max_elapsed(Duration::ZERO)).await;
    assert_eq!(run, (1, 0));
}

#[tokio::test(start_paused = true)]
async fn zero_deadline_override_sends_once() {
    let (calls, _clones) = override_run(RetryOverride::new().max_elapsed(Duration::ZERO)).await;
    assert_eq!(calls, 1);
}

// ---------------------------------------------------------------------------------------
// What the caller gets on give-up
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn give_up_returns_last_error() {
    let server = Scripted::new([
        error(io::ErrorKind::ConnectionReset),
        error(io::ErrorKind::TimedOut),
        error(io::ErrorKind::ConnectionAborted),
    ]);
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(secs(1)))
        .logging(Logging::off())
        .build()
        .unwrap();
    let error = RetryLayer::new(policy)
        .layer(server.clone())
        .oneshot(get())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
    assert_eq!(server.calls().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn give_up_returns_last_mixed_outcome() {
    let server = Scripted::new([
        status(503).body("first"),
        error(io::ErrorKind::ConnectionReset),
        status(502).header("x-last", b"yes").body("last"),
    ]);
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(secs(1)))
        .logging(Logging::off())
        .build()
        .unwrap();
    let response = RetryLayer::new(policy)
        .layer(server)
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["x-last"], "yes");
    assert_eq!(response.body(), "last");
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_503_not_retried() {
    for method in [Method::POST, Method::PATCH, Method::CONNECT] {
        let server = Scripted::new([status(503).body("busy"), status(200)]);
        let policy = RetryPolicy::builder(HttpClassifier::default())
            .logging(Logging::off())
            .build()
            .unwrap();
        let request = Request::builder()
            .method(method.clone())
            .uri("/")
            .body(String::from("payload"))
            .unwrap();
        let response = RetryLayer::new(policy)
            .layer(server.clone())
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(response.status(), 503, "{method}");
        assert_eq!(response.body(), "busy", "{method}");
        assert_eq!(server.calls().len(), 1, "{method}");
    }
}

#[tokio::test(start_paused = true)]
async fn safe_methods_retried_after_503() {
    for method in [Method::HEAD, Method::OPTIONS, Method::TRACE] {
        let server = Scripted::new([status(503), status(200)]);
        let policy = RetryPolicy::builder(HttpClassifier::default())
            .logging(Logging::off())
            .build()
            .unwrap();
        let request = Request::builder()
            .method(method.clone())
            .uri("/")
            .body(String::new())
            .unwrap();
        let response = RetryLayer::new(policy)
            .layer(server.clone())
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{method}");
        assert_eq!(server.calls().len(), 2, "{method}");
    }
}

#[tokio::test(start_paused = true)]
async fn idempotency_key_post_resent_identically() {
    let server = Scripted::new([status(503), status(503), status(200)]);
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .logging(Logging::off())
        .build()
        .unwrap();
    let mut request = post("{\"amount\":10}");
    request
        .headers_mut()
        .insert("idempotency-key", HeaderValue::from_static("3f1c-77"));
    let response = RetryLayer::new(policy)
        .layer(server.clone())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let calls = server.calls();
    assert_eq!(calls.len(), 3);
    for call in calls {
        assert_eq!(call.method, Method::POST);
        assert_eq!(call.body, "{\"amount\":10}");
        assert_eq!(call.headers.get_all("idempotency-key").iter().count(), 1);
        assert_eq!(call.headers["idempotency-key"], "3f1c-77");
    }
}

// ---------------------------------------------------------------------------------------
// Readiness and dropped futures
// ---------------------------------------------------------------------------------------

/// A service that is ready once and returns 503. Afterwards it is either never ready again
/// or fails its readiness check.
#[derive(Clone)]
struct ReadyOnce {
    polls_left: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
    fail_afterwards: bool,
}

impl ReadyOnce {
    fn new(fail_afterwards: bool) -> Self {
        Self {
            polls_left: Arc::new(AtomicUsize::new(1)),
            calls: Arc::default(),
            fail_afterwards,
        }
    }
}

impl Service<Request<String>> for ReadyOnce {
    type Response = Response<String>;
    type Error = io::Error;
    type Future = std::future::Ready<Result<Response<String>, io::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        let left = self.polls_left.load(Ordering::Relaxed);
        if left > 0 {
            self.polls_left.store(left - 1, Ordering::Relaxed);
            return Poll::Ready(Ok(()));
        }
        if self.fail_afterwards {
            Poll::Ready(Err(io::Error::other("pool closed")))
        } else {
            // Never ready again, and never wakes the task.
            Poll::Pending
        }
    }

    fn call(&mut self, _request: Request<String>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut response = Response::new(String::from("unavailable"));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        std::future::ready(Ok(response))
    }
}

#[tokio::test(start_paused = true)]
async fn readiness_error_returned_as_not_ready() {
    let inner = ReadyOnce::new(true);
    let log = EventLog::default();
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(secs(1)))
        .jitter(Jitter::None)
        .logging(Logging::off())
        .hooks(log.clone())
        .build()
        .unwrap();
    let error = RetryLayer::new(policy)
        .layer(inner.clone())
        .oneshot(get())
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "pool closed");
    assert_eq!(inner.calls.load(Ordering::Relaxed), 1);
    assert_eq!(log.hooks(), [("retry", 1), ("give_up", 1)]);
    assert_eq!(log.reasons(), [GiveUpReason::NotReady]);
}

#[tokio::test(start_paused = true)]
async fn never_ready_service_not_called() {
    let inner = ReadyOnce::new(false);
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(secs(1)))
        .logging(Logging::off())
        .build()
        .unwrap();
    let request = RetryLayer::new(policy).layer(inner.clone()).oneshot(get());
    let waited = tokio::time::timeout(secs(3600), request).await;
    assert!(waited.is_err());
    assert_eq!(inner.calls.load(Ordering::Relaxed), 1);
}

/// The layer waits for readiness before a retry without a deadline, as it waits for an
/// attempt in flight. `tower::load_shed` inside the layer turns "not ready" into an error,
/// so `max_elapsed` then ends the request on time.
#[tokio::test(start_paused = true)]
async fn load_shed_bounds_readiness_wait() {
    let inner = ReadyOnce::new(false);
    let log = EventLog::default();
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(secs(1)))
        .jitter(Jitter::None)
        .max_attempts(100)
        .max_elapsed(secs(5))
        .logging(Logging::off())
        .hooks(log.clone())
        .build()
        .unwrap();
    let service = tower::ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .load_shed()
        .service(inner.clone());
    let start = tokio::time::Instant::now();

    let error = tokio::time::timeout(secs(3600), service.oneshot(get()))
        .await
        .expect("the request should end by its deadline")
        .unwrap_err();

    assert!(error.is::<tower::load_shed::error::Overloaded>(), "{error}");
    assert_eq!(start.elapsed(), secs(4));
    assert_eq!(inner.calls.load(Ordering::Relaxed), 1);
    assert_eq!(log.reasons(), [GiveUpReason::Deadline]);
}

/// Sets a flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[tokio::test(start_paused = true)]
async fn drop_mid_attempt_cancels_attempt() {
    let calls = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicBool::new(false));
    let (counter, flag) = (Arc::clone(&calls), Arc::clone(&cancelled));
    let inner = tower::service_fn(move |_request: Request<String>| {
        counter.fetch_add(1, Ordering::Relaxed);
        let guard = DropFlag(Arc::clone(&flag));
        async move {
            tokio::time::sleep(secs(10)).await;
            drop(guard);
            Ok::<_, io::Error>(Response::new(String::new()))
        }
    });
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .logging(Logging::off())
        .build()
        .unwrap();
    let mut service = RetryLayer::new(policy).layer(inner);
    service.ready().await.unwrap();
    let mut future = Box::pin(service.call(get()));

    assert!(tokio::time::timeout(secs(5), &mut future).await.is_err());
    assert!(!cancelled.load(Ordering::Relaxed));
    drop(future);
    assert!(cancelled.load(Ordering::Relaxed), "the attempt is dropped");

    tokio::time::sleep(secs(3600)).await;
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

// ---------------------------------------------------------------------------------------
// Budgets
// ---------------------------------------------------------------------------------------

/// A budget that allows `allowed` withdrawals and counts every call. Its clones share the
/// counts.
#[derive(Debug, Default, Clone)]
struct CountingBudget {
    allowed: usize,
    deposits: Arc<AtomicUsize>,
    withdrawals: Arc<AtomicUsize>,
    records: Arc<Mutex<Vec<bool>>>,
}

impl Budget for CountingBudget {
    fn deposit(&self) {
        self.deposits.fetch_add(1, Ordering::Relaxed);
    }

    fn withdraw(&self) -> bool {
        self.withdrawals.fetch_add(1, Ordering::Relaxed) < self.allowed
    }

    fn record(&self, success: bool) {
        self.records.lock().unwrap().push(success);
    }
}

async fn budget_run(
    budget: CountingBudget,
    script: Vec<support::Step>,
    max_attempts: u32,
    max_elapsed: Option<Duration>,
) -> (Result<Response<String>, io::Error>, Scripted, EventLog) {
    let server = Scripted::new(script);
    let log = EventLog::default();
    let mut builder = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(secs(1)))
        .jitter(Jitter::None)
        .max_attempts(max_attempts)
        .budget(budget)
        .logging(Logging::off());
    if let Some(deadline) = max_elapsed {
        builder = builder.max_elapsed(deadline);
    }
    let policy = builder.hooks(log.clone()).build().unwrap();
    let outcome = RetryLayer::new(policy)
        .layer(server.clone())
        .oneshot(get())
        .await;
    (outcome, server, log)
}

#[tokio::test(start_paused = true)]
async fn empty_budget_returns_first_failure() {
    let budget = CountingBudget::default();
    let script = vec![status(503).header("x-id", b"one").body("down"), status(200)];
    let (outcome, server, log) = budget_run(budget.clone(), script, 3, None).await;
    let response = outcome.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-id"], "one");
    assert_eq!(response.body(), "down");
    assert_eq!(server.calls().len(), 1);
    assert_eq!(log.reasons(), [GiveUpReason::Budget]);
    assert_eq!(budget.deposits.load(Ordering::Relaxed), 1);
    assert_eq!(*budget.records.lock().unwrap(), [false]);
}

#[tokio::test(start_paused = true)]
async fn budget_withdrawn_only_before_retry() {
    // The attempt limit ends the request: no withdrawal.
    let budget = CountingBudget::default();
    let (_, _, log) = budget_run(budget.clone(), vec![status(503)], 1, None).await;
    assert_eq!(log.reasons(), [GiveUpReason::Exhausted]);
    assert_eq!(budget.withdrawals.load(Ordering::Relaxed), 0);

    // The deadline ends the request: no withdrawal.
    let budget = CountingBudget::default();
    let (_, _, log) = budget_run(budget.clone(), vec![status(503)], 3, Some(secs(1))).await;
    assert_eq!(log.reasons(), [GiveUpReason::Deadline]);
    assert_eq!(budget.withdrawals.load(Ordering::Relaxed), 0);

    // A fatal outcome: no withdrawal and nothing recorded.
    let budget = CountingBudget::default();
    let (_, _, log) = budget_run(budget.clone(), vec![status(404)], 3, None).await;
    assert_eq!(log.reasons(), [GiveUpReason::NotRetryable]);
    assert_eq!(budget.withdrawals.load(Ordering::Relaxed), 0);
    assert!(budget.records.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn budget_runs_out_between_retries() {
    let budget = CountingBudget {
        allowed: 2,
        ..CountingBudget::default()
    };
    let (outcome, server, log) = budget_run(budget.clone(), vec![status(503)], 10, None).await;
    assert_eq!(outcome.unwrap().status(), 503);
    assert_eq!(server.attempt_times_ms(), [0, 1000, 2000]);
    assert_eq!(log.reasons(), [GiveUpReason::Budget]);
    assert_eq!(budget.withdrawals.load(Ordering::Relaxed), 3);
    assert_eq!(*budget.records.lock().unwrap(), [false, false, false]);
}

#[tokio::test(start_paused = true)]
async fn zero_tps_budget_blocks_retry() {
    let server = Scripted::new([status(503), status(200)]);
    let log = EventLog::default();
    let budget = TpsBudget::builder()
        .retry_ratio(0.0)
        .min_retries_per_second(0.0)
        .build()
        .unwrap();
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .budget(budget)
        .logging(Logging::off())
        .hooks(log.clone())
        .build()
        .unwrap();
    let response = RetryLayer::new(policy)
        .layer(server.clone())
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(server.calls().len(), 1);
    assert_eq!(log.reasons(), [GiveUpReason::Budget]);
}

// ---------------------------------------------------------------------------------------
// Replayed bodies through the layers, with an in-process service that reads each body
// ---------------------------------------------------------------------------------------

type StreamedBody = UnsyncBoxBody<Bytes, BoxError>;

/// What the service read from one attempt's body.
#[derive(Debug, Clone, PartialEq)]
struct Read {
    data: Vec<u8>,
    trailers: Option<HeaderMap>,
    failed: bool,
}

/// Reads a body to its end, or to its first error.
async fn read_body<B>(body: B) -> Read
where
    B: Body<Data = Bytes>,
{
    let mut body = std::pin::pin!(body);
    let mut read = Read {
        data: Vec::new(),
        trailers: None,
        failed: false,
    };
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => read.data.extend_from_slice(&data),
                Err(frame) => read.trailers = frame.into_trailers().ok(),
            },
            Err(_) => {
                read.failed = true;
                break;
            }
        }
    }
    read
}

type BodyFuture = Pin<Box<dyn Future<Output = Result<Response<()>, BoxError>> + Send>>;

/// Sends `request` through `ReplayBodyLayer` (with `cap`) and a retry layer whose
/// classifier is `Replayable<HttpClassifier>`. The inner service reads each body and
/// responds with the next status of `statuses`, repeating the last one. Returns the final
/// status and what every attempt read.
async fn replay_run(
    request: Request<StreamedBody>,
    cap: usize,
    statuses: &[u16],
) -> (StatusCode, Vec<Read>) {
    let reads = Arc::new(Mutex::new(Vec::<Read>::new()));
    let log = Arc::clone(&reads);
    let statuses = statuses.to_vec();
    let inner = tower::service_fn(move |request: Request<ReplayBody<StreamedBody>>| {
        let log = Arc::clone(&log);
        let statuses = statuses.clone();
        let future: BodyFuture = Box::pin(async move {
            let read = read_body(request.into_body()).await;
            let mut log = log.lock().unwrap();
            log.push(read);
            let code = statuses[(log.len() - 1).min(statuses.len() - 1)];
            Ok(Response::builder().status(code).body(())?)
        });
        future
    });
    let policy = RetryPolicy::builder(Replayable::new(HttpClassifier::default()))
        .backoff(Constant::new(secs(1)))
        .max_attempts(4)
        .logging(Logging::off())
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(cap))
        .layer(RetryLayer::new(policy))
        .service(inner);
    let response = service.oneshot(request).await.unwrap();
    let reads = reads.lock().unwrap().clone();
    (response.status(), reads)
}

fn streamed(frames: Vec<Result<Frame<Bytes>, BoxError>>) -> StreamedBody {
    StreamBody::new(tokio_stream::iter(frames)).boxed_unsync()
}

fn put(body: StreamedBody) -> Request<StreamedBody> {
    Request::put("/object").body(body).unwrap()
}

fn checksum_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc123"));
    trailers
}

#[tokio::test(start_paused = true)]
async fn trailers_only_body_replayed() {
    let body = streamed(vec![Ok(Frame::trailers(checksum_trailers()))]);
    let (status, reads) = replay_run(put(body), 64, &[503, 200]).await;
    assert_eq!(status, 200);
    let expected = Read {
        data: Vec::new(),
        trailers: Some(checksum_trailers()),
        failed: false,
    };
    assert_eq!(reads, [expected.clone(), expected]);
}

#[tokio::test(start_paused = true)]
async fn empty_bodies_replayed_empty() {
    let empty = Read {
        data: Vec::new(),
        trailers: None,
        failed: false,
    };
    for body in [
        streamed(Vec::new()),
        Empty::<Bytes>::new().map_err(BoxError::from).boxed_unsync(),
        Full::new(Bytes::new())
            .map_err(BoxError::from)
            .boxed_unsync(),
        streamed(vec![
            Ok(Frame::data(Bytes::new())),
            Ok(Frame::data(Bytes::new())),
        ]),
    ] {
        let (status, reads) = replay_run(put(body), 64, &[503, 503, 200]).await;
        assert_eq!(status, 200);
        assert_eq!(reads, [empty.clone(), empty.clone(), empty.clone()]);
    }
}

#[tokio::test(start_paused = true)]
async fn data_and_trailers_replayed_exactly() {
    let chunks = ["{\"a\":", "", "1", ",\"b\":[2,3]}"];
    let mut frames: Vec<Result<Frame<Bytes>, BoxError>> = chunks
        .iter()
        .map(|chunk| Ok(Frame::data(Bytes::from_static(chunk.as_bytes()))))
        .collect();
    frames.push(Ok(Frame::trailers(checksum_trailers())));
    let (status, reads) = replay_run(put(streamed(frames)), 64, &[502, 504, 200]).await;
    assert_eq!(status, 200);
    let expected = Read {
        data: b"{\"a\":1,\"b\":[2,3]}".to_vec(),
        trailers: Some(checksum_trailers()),
        failed: false,
    };
    assert_eq!(reads, [expected.clone(), expected.clone(), expected]);
}

#[tokio::test(start_paused = true)]
async fn body_at_cap_replayed() {
    let frames = vec![
        Ok(Frame::data(Bytes::from_static(b"12345678"))),
        Ok(Frame::data(Bytes::from_static(b"abcdefgh"))),
    ];
    let (status, reads) = replay_run(put(streamed(frames)), 16, &[503, 200]).await;
    assert_eq!(status, 200);
    assert_eq!(reads.len(), 2);
    assert_eq!(reads[0].data, b"12345678abcdefgh");
    assert_eq!(reads[0], reads[1]);
}

#[tokio::test(start_paused = true)]
async fn body_above_cap_sent_once() {
    let frames = vec![
        Ok(Frame::data(Bytes::from_static(b"12345678"))),
        Ok(Frame::data(Bytes::from_static(b"abcdefghi"))),
        Ok(Frame::trailers(checksum_trailers())),
    ];
    let request = Request::post("/upload").body(streamed(frames)).unwrap();
    let (status, reads) = replay_run(request, 16, &[408, 200]).await;
    assert_eq!(status, 408);
    assert_eq!(
        reads,
        [Read {
            data: b"12345678abcdefghi".to_vec(),
            trailers: Some(checksum_trailers()),
            failed: false,
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn known_size_above_cap_not_retried() {
    let body = Full::new(Bytes::from(vec![b'x'; 100]))
        .map_err(BoxError::from)
        .boxed_unsync();
    let (status, reads) = replay_run(put(body), 10, &[503, 200]).await;
    assert_eq!(status, 503);
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].data.len(), 100);
}

#[tokio::test(start_paused = true)]
async fn body_error_mid_stream_not_retried() {
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
        Ok(Frame::data(Bytes::from_static(b"first half"))),
        Err("disk read failed".into()),
        Ok(Frame::data(Bytes::from_static(b"never read"))),
    ];
    let (status, reads) = replay_run(put(streamed(frames)), 64, &[503, 200]).await;
    assert_eq!(status, 503);
    assert_eq!(
        reads,
        [Read {
            data: b"first half".to_vec(),
            trailers: None,
            failed: true,
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn body_error_at_start_not_retried() {
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![Err("no such file".into())];
    let (status, reads) = replay_run(put(streamed(frames)), 64, &[503, 200]).await;
    assert_eq!(status, 503);
    assert_eq!(reads.len(), 1);
    assert!(reads[0].failed);
    assert!(reads[0].data.is_empty());
}

// ---------------------------------------------------------------------------------------
// gRPC
// ---------------------------------------------------------------------------------------

fn grpc_verdict(headers: &[(&str, &[u8])]) -> Verdict {
    grpc_verdict_with(&GrpcClassifier::default(), 200, headers)
}

fn grpc_verdict_with(
    classifier: &GrpcClassifier,
    http_status: u16,
    headers: &[(&str, &[u8])],
) -> Verdict {
    let call = Request::post("/pkg.Service/Method").body(()).unwrap();
    let mut response = Response::builder().status(http_status);
    for (name, value) in headers {
        response = response.header(*name, HeaderValue::from_bytes(value).unwrap());
    }
    let response = response.body(()).unwrap();
    let plan = Classify::<_, Response<()>, io::Error>::plan(classifier, &call);
    Classify::<Request<()>, _, io::Error>::classify(classifier, plan.facts(), &Ok(response))
}

#[test]
fn grpc_odd_status_not_retried() {
    for code in [
        &b""[..],
        b"-14",
        b"-1",
        b"17",
        b"99999999999",
        b"18446744073709551616",
        b"1 4",
        b"14.0",
        b"0x0e",
        b"UNAVAILABLE",
        "\u{b9}\u{2074}".as_bytes(),
    ] {
        assert_eq!(
            grpc_verdict(&[("grpc-status", code)]),
            Verdict::Fatal,
            "grpc-status {:?}",
            String::from_utf8_lossy(code)
        );
    }
    assert_eq!(
        grpc_verdict(&[("grpc-status", &b"14"[..])]),
        Verdict::Retry(None)
    );
}

/// Checks that signed or zero-padded codes are UNKNOWN, as the classifier's docs promise
/// ("as tonic 0.14 reads it"). In tonic 0.14.9, `Code::from_bytes` accepts only the
/// spellings "0" to "16" without sign or leading zero, and maps anything else to UNKNOWN.
#[test]
fn grpc_signed_padded_status_unknown() {
    for code in ["+14", "014", "0014"] {
        assert_eq!(
            grpc_verdict(&[("grpc-status", code.as_bytes())]),
            Verdict::Fatal,
            "grpc-status {code:?} retried as UNAVAILABLE"
        );
    }
    for code in ["-0", "+0", "00"] {
        assert_eq!(
            grpc_verdict(&[("grpc-status", code.as_bytes())]),
            Verdict::Fatal,
            "grpc-status {code:?} taken as OK"
        );
    }
}

#[test]
fn grpc_pushback_values() {
    let unavailable = |pushback: &[u8]| {
        grpc_verdict(&[
            ("grpc-status", &b"14"[..]),
            ("grpc-retry-pushback-ms", pushback),
        ])
    };
    assert_eq!(unavailable(b""), Verdict::Fatal);
    assert_eq!(unavailable(b"-0"), Verdict::Fatal);
    assert_eq!(unavailable(b"-5"), Verdict::Fatal);
    assert_eq!(unavailable(b"+5"), Verdict::Fatal);
    assert_eq!(unavailable(b"5ms"), Verdict::Fatal);
    assert_eq!(unavailable("\u{665}".as_bytes()), Verdict::Fatal);
    assert_eq!(unavailable(b"\t250 "), Verdict::Retry(Some(millis(250))));
    assert_eq!(unavailable(b"0"), Verdict::Retry(Some(Duration::ZERO)));
    assert_eq!(
        unavailable(b"99999999999999999999"),
        Verdict::Retry(Some(Duration::MAX))
    );
    // A pushback on a code that is not retried changes nothing.
    assert_eq!(
        grpc_verdict(&[
            ("grpc-status", &b"3"[..]),
            ("grpc-retry-pushback-ms", &b"10"[..])
        ]),
        Verdict::Fatal
    );
}

#[test]
fn grpc_status_beats_http_status() {
    let classifier = GrpcClassifier::default();
    assert_eq!(
        grpc_verdict_with(&classifier, 503, &[("grpc-status", &b"0"[..])]),
        Verdict::Success
    );
    assert_eq!(
        grpc_verdict_with(&classifier, 200, &[("grpc-status", &b"14"[..])]),
        Verdict::Retry(None)
    );
    assert_eq!(
        grpc_verdict_with(&classifier, 504, &[]),
        Verdict::Retry(None)
    );
    assert_eq!(grpc_verdict_with(&classifier, 500, &[]), Verdict::Fatal);
}

/// A trailers-only gRPC response, as a service function returns it.
fn trailers_only(code: &'static str, pushback: Option<&'static str>) -> Response<()> {
    let mut response = Response::builder()
        .header("content-type", "application/grpc")
        .header("grpc-status", code);
    if let Some(pushback) = pushback {
        response = response.header("grpc-retry-pushback-ms", pushback);
    }
    response.body(()).unwrap()
}

async fn grpc_run(answers: Vec<Response<()>>) -> (Response<()>, Vec<Duration>, EventLog) {
    let answers = Arc::new(Mutex::new(answers));
    let start = tokio::time::Instant::now();
    let times = Arc::new(Mutex::new(Vec::new()));
    let (queue, seen) = (Arc::clone(&answers), Arc::clone(&times));
    let inner = tower::service_fn(move |_call: Request<()>| {
        seen.lock().unwrap().push(start.elapsed());
        let mut queue = queue.lock().unwrap();
        let answer = if queue.len() > 1 {
            queue.remove(0)
        } else {
            let last = &queue[0];
            let mut copy = Response::new(());
            *copy.status_mut() = last.status();
            *copy.headers_mut() = last.headers().clone();
            copy
        };
        std::future::ready(Ok::<_, io::Error>(answer))
    });
    let log = EventLog::default();
    let policy = RetryPolicy::builder(GrpcClassifier::default())
        .backoff(Constant::new(secs(1)))
        .jitter(Jitter::None)
        .max_attempts(4)
        .logging(Logging::off())
        .hooks(log.clone())
        .build()
        .unwrap();
    let call = Request::post("/pkg.Service/Method").body(()).unwrap();
    let response = RetryLayer::new(policy)
        .layer(inner)
        .oneshot(call)
        .await
        .unwrap();
    let times = times.lock().unwrap().clone();
    (response, times, log)
}

#[tokio::test(start_paused = true)]
async fn grpc_huge_pushback_returns_at_once() {
    let (response, times, log) =
        grpc_run(vec![trailers_only("14", Some("99999999999999999999"))]).await;
    assert_eq!(response.headers()["grpc-status"], "14");
    assert_eq!(times, [Duration::ZERO]);
    assert_eq!(log.reasons(), [GiveUpReason::ServerDelayTooLong]);
}

#[tokio::test(start_paused = true)]
async fn grpc_pushback_waited_then_schedule() {
    let (response, times, log) = grpc_run(vec![
        trailers_only("14", Some("2500")),
        trailers_only("14", None),
        Response::new(()),
    ])
    .await;
    assert_eq!(response.headers().get("grpc-status"), None);
    assert_eq!(times, [Duration::ZERO, millis(2500), millis(3500)]);
    assert_eq!(log.hooks(), [("retry", 1), ("retry", 2), ("success", 3)]);
}

#[tokio::test(start_paused = true)]
async fn grpc_endless_unavailable_returns_last() {
    let (response, times, log) = grpc_run(vec![trailers_only("14", None)]).await;
    assert_eq!(response.headers()["grpc-status"], "14");
    assert_eq!(times.len(), 4);
    assert_eq!(log.reasons(), [GiveUpReason::Exhausted]);
}

// ---------------------------------------------------------------------------------------
// Nothing panics, whatever a server sends
// ---------------------------------------------------------------------------------------

/// Header bytes that the `http` crate accepts: visible ASCII, space, tab and any byte
/// above 0x7f.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![0x20u8..0x7f, Just(b'\t'), 0x80u8..=0xff];
    prop::collection::vec(byte, 0..40)
}

/// Strings shaped like HTTP-dates, with out-of-range fields.
fn date_like() -> impl Strategy<Value = Vec<u8>> {
    "[A-Za-z]{3}, [0-9]{1,3} [A-Za-z]{3} [0-9]{1,5} [0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2} GMT"
        .prop_map(String::into_bytes)
}

fn digits() -> impl Strategy<Value = Vec<u8>> {
    "[0-9]{1,30}".prop_map(String::into_bytes)
}

fn any_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![header_bytes(), date_like(), digits()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn hostile_headers_never_panic(
        code in 100u16..1000,
        retry_after in any_value(),
        date in any_value(),
        pushback in any_value(),
    ) {
        let mut step = status(code);
        step = step.header("retry-after", &retry_after);
        step = step.header("date", &date);
        step = step.header("grpc-retry-pushback-ms", &pushback);
        step = step.header("grpc-status", &retry_after);

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let (http_status, http_calls) = runtime.block_on(async {
            let server = Scripted::new([step.clone()]);
            let policy = RetryPolicy::builder(HttpClassifier::default())
                .logging(Logging::off())
                .build()
                .unwrap();
            let response = RetryLayer::new(policy)
                .layer(server.clone())
                .oneshot(get())
                .await
                .unwrap();
            (response.status().as_u16(), server.calls().len())
        });
        prop_assert_eq!(http_status, code);
        prop_assert!((1..=3).contains(&http_calls));

        let value = HeaderValue::from_bytes(&retry_after).unwrap();
        if let Some(delay) = parse_retry_after(&value, date_now()) {
            prop_assert!(!delay.is_zero());
        }

        let verdict = grpc_verdict(&[
            ("grpc-status", &retry_after),
            ("grpc-retry-pushback-ms", &pushback),
        ]);
        prop_assert!(matches!(verdict, Verdict::Fatal | Verdict::Retry(_) | Verdict::Success));
    }
}

/// Checks that a factor above 1 keeps the schedule growing at nanosecond scale, where
/// `initial * factor` is less than one nanosecond above `initial`.
#[test]

fn exponential_small_steps_keep_growing() {
    let mut rng = rand::make_rng::<rand::rngs::SmallRng>();

    let mut nanos = Exponential::new(Duration::from_nanos(1))
        .factor(1.4)
        .max_delay(secs(1));
    nanos.validate().unwrap();
    let tenth = (0..11).filter_map(|_| nanos.next_delay(&mut rng)).last();
    // 1.4^10 is about 28.9, so the eleventh delay is about 29 ns.
    assert!(tenth.unwrap() >= Duration::from_nanos(28), "{tenth:?}");

    let mut micros = Exponential::new(Duration::from_micros(1))
        .factor(1.0004)
        .max_delay(secs(1));
    micros.validate().unwrap();
    let last = (0..10_001)
        .filter_map(|_| micros.next_delay(&mut rng))
        .last();
    // 1.0004^10000 is about e^4, or 54.6.
    assert!(last.unwrap() >= Duration::from_micros(54), "{last:?}");
}
