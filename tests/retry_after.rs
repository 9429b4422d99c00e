//! `Retry-After`: parsing, and how the layer acts on it.

mod support;

use http::HeaderValue;
use std::time::{Duration, SystemTime};
use support::{EventLog, Scripted, get, post, secs, status};
use tower::{Layer, ServiceExt};
use tower_backoff::backoff::Constant;
use tower_backoff::classify::{DelayHeader, HttpClassifier, parse_retry_after};
use tower_backoff::hooks::{DelaySource, GiveUpReason};
use tower_backoff::{Jitter, Logging, RetryLayer, RetryPolicy};

const NOW: &str = "Mon, 03 Jun 2019 11:00:00 GMT";

fn now() -> SystemTime {
    httpdate::parse_http_date(NOW).unwrap()
}

fn parse(value: &[u8]) -> Option<Duration> {
    parse_retry_after(&HeaderValue::from_bytes(value).unwrap(), now())
}

#[test]
fn parses_delay_seconds() {
    assert_eq!(parse(b"120"), Some(secs(120)));
    assert_eq!(parse(b"30"), Some(secs(30)));
    assert_eq!(parse(b" 30\t"), Some(secs(30)));
    assert_eq!(parse(b"007"), Some(secs(7)));
}

#[test]
fn zero_means_schedule() {
    assert_eq!(parse(b"0"), None);
    assert_eq!(parse(b"000"), None);
}

#[test]
fn invalid_values_ignored() {
    for value in [
        &b"-1"[..],
        b"+1",
        b"1.5",
        b"",
        b"   ",
        b"soon",
        b"1e3",
        b"0x10",
        b"12 34",
        b"\xB2",
        b"3\xB2",
        b"Mon, 03 Jun 2019 11:00:40",
        b"Mon, 32 Jun 2019 11:00:40 GMT",
    ] {
        assert_eq!(parse(value), None, "{:?}", String::from_utf8_lossy(value));
    }
}

#[test]
fn huge_numbers_do_not_overflow() {
    assert_eq!(parse(b"99999999999"), Some(secs(99_999_999_999)));
    assert_eq!(parse(b"18446744073709551615"), Some(secs(u64::MAX)));
    assert_eq!(parse(b"18446744073709551616"), Some(Duration::MAX));
    assert_eq!(parse(&[b'9'; 400]), Some(Duration::MAX));
}

#[test]
fn parses_http_dates() {
    assert_eq!(parse(b"Mon, 03 Jun 2019 11:00:40 GMT"), Some(secs(40)));
    assert_eq!(parse(b"Mon, 03 Jun 2019 11:30:12 GMT"), Some(secs(1812)));
    assert_eq!(parse(b"Monday, 03-Jun-19 11:00:40 GMT"), Some(secs(40)));
    assert_eq!(parse(b"Mon Jun  3 11:00:40 2019"), Some(secs(40)));
    assert_eq!(parse(b"  Mon, 03 Jun 2019 11:00:40 GMT "), Some(secs(40)));
}

#[test]
fn past_or_present_date_means_schedule() {
    assert_eq!(parse(b"Mon, 03 Jun 2019 10:00:00 GMT"), None);
    assert_eq!(parse(NOW.as_bytes()), None);
}

#[test]
fn other_delay_headers() {
    let mut headers = http::HeaderMap::new();
    headers.insert("retry-after-ms", HeaderValue::from_static("1500"));
    headers.insert("ratelimit-reset", HeaderValue::from_static("4"));
    headers.insert("x-ratelimit-reset", HeaderValue::from_static("1559559620"));
    headers.insert("x-broken", HeaderValue::from_static("-4"));

    let milliseconds = DelayHeader::Milliseconds("retry-after-ms".parse().unwrap());
    let seconds = DelayHeader::Seconds("ratelimit-reset".parse().unwrap());
    let unix_time = DelayHeader::UnixTime("x-ratelimit-reset".parse().unwrap());
    let broken = DelayHeader::Seconds("x-broken".parse().unwrap());
    let missing = DelayHeader::Seconds("x-missing".parse().unwrap());

    assert_eq!(
        milliseconds.read(&headers, now()),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(seconds.read(&headers, now()), Some(secs(4)));
    assert_eq!(unix_time.read(&headers, now()), Some(secs(20)));
    assert_eq!(broken.read(&headers, now()), None);
    assert_eq!(missing.read(&headers, now()), None);
    assert_eq!(DelayHeader::RetryAfter.read(&headers, now()), None);
}

/// What the layer did with one 429 response: the delay it slept and where that came from, or
/// the reason it returned the response at once.
#[derive(Debug, PartialEq)]
enum Acted {
    Slept(Duration, DelaySource),
    Returned(GiveUpReason),
}

/// Sends a GET that meets one 429 carrying `headers`, then a 200, with a schedule of a
/// constant 7 s so that a schedule delay is easy to tell from a server delay.
async fn act_on(headers: &[(&'static str, &[u8])], max_retry_after: Duration) -> Acted {
    let mut first = status(429).header("date", NOW.as_bytes());
    for (name, value) in headers {
        first = first.header(name, value);
    }
    let server = Scripted::new([first, status(200)]);
    let log = EventLog::default();
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(secs(7)))
        .jitter(Jitter::None)
        .max_retry_after(max_retry_after)
        .logging(Logging::off())
        .hooks(log.clone())
        .build()
        .unwrap();
    let service = RetryLayer::new(policy).layer(server.clone());

    let response = service.oneshot(get()).await.unwrap();

    let first_event = log.events().remove(0);
    match first_event.reason {
        Some(reason) => {
            assert_eq!(response.status(), 429);
            assert_eq!(server.calls().len(), 1);
            Acted::Returned(reason)
        }
        None => {
            let delay = first_event.next_delay.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(server.attempt_times_ms(), [0, delay.as_millis()]);
            Acted::Slept(delay, first_event.delay_source.unwrap())
        }
    }
}

const SCHEDULE: Acted = Acted::Slept(Duration::from_secs(7), DelaySource::Schedule);
const TOO_LONG: Acted = Acted::Returned(GiveUpReason::ServerDelayTooLong);

#[tokio::test(start_paused = true)]
async fn server_delay_table() {
    let minute = secs(60);
    let hour = secs(3600);
    let cases: [(&[u8], Duration, Acted); 15] = [
        (b"120", minute, TOO_LONG),
        (b"30", minute, Acted::Slept(secs(30), DelaySource::Server)),
        (b"0", minute, SCHEDULE),
        (b"-1", minute, SCHEDULE),
        (b"+1", minute, SCHEDULE),
        (b"1.5", minute, SCHEDULE),
        (b"", minute, SCHEDULE),
        (b"soon", minute, SCHEDULE),
        (b"\xB2", minute, SCHEDULE),
        (b"99999999999", minute, TOO_LONG),
        (b"18446744073709551616", minute, TOO_LONG),
        (
            b"Mon, 03 Jun 2019 11:00:40 GMT",
            minute,
            Acted::Slept(secs(40), DelaySource::Server),
        ),
        (b"Mon, 03 Jun 2019 11:30:12 GMT", minute, TOO_LONG),
        (
            b"Mon, 03 Jun 2019 11:30:12 GMT",
            hour,
            Acted::Slept(secs(1812), DelaySource::Server),
        ),
        (b"Mon, 03 Jun 2019 10:00:00 GMT", minute, SCHEDULE),
    ];
    for (value, max_retry_after, expected) in cases {
        let acted = act_on(&[("retry-after", value)], max_retry_after).await;
        assert_eq!(
            acted,
            expected,
            "Retry-After: {:?}",
            String::from_utf8_lossy(value)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn full_jitter_never_shortens_server_delay() {
    for seed in 0..50 {
        let server = Scripted::new([status(429).header("retry-after", b"30"), status(200)]);
        let log = EventLog::default();
        let policy = RetryPolicy::builder(HttpClassifier::default())
            .seed(seed)
            .logging(Logging::off())
            .hooks(log.clone())
            .build()
            .unwrap();
        let service = RetryLayer::new(policy).layer(server.clone());

        service.oneshot(get()).await.unwrap();

        assert_eq!(log.delays(), [secs(30)], "seed {seed}");
        assert_eq!(server.attempt_times_ms(), [0, 30_000], "seed {seed}");
    }
}

async fn deadline_case(first_attempt: Duration) -> (Scripted, EventLog) {
    let server = Scripted::new([
        status(429).header("retry-after", b"5").after(first_attempt),
        status(200),
    ]);
    let log = EventLog::default();
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .max_elapsed(secs(20))
        .logging(Logging::off())
        .hooks(log.clone())
        .build()
        .unwrap();
    let service = RetryLayer::new(policy).layer(server.clone());
    service.oneshot(get()).await.unwrap();
    (server, log)
}

#[tokio::test(start_paused = true)]
async fn server_delay_within_deadline() {
    // 20 s of the deadline are left after the first attempt.
    let (server, log) = deadline_case(Duration::ZERO).await;
    assert_eq!(server.attempt_times_ms(), [0, 5000]);
    assert_eq!(log.delays(), [secs(5)]);
}

#[tokio::test(start_paused = true)]
async fn server_delay_past_deadline() {
    // The first attempt takes 17 s, so 3 s are left: less than the 5 s asked for.
    let (server, log) = deadline_case(secs(17)).await;
    assert_eq!(server.calls().len(), 1);
    assert_eq!(log.reasons(), [GiveUpReason::Deadline]);
}

#[tokio::test(start_paused = true)]
async fn endless_429_returns_last_response() {
    let server = Scripted::new([status(429)
        .header("retry-after", b"1")
        .header("x-request", b"kept")
        .body("quota exceeded")]);
    let log = EventLog::default();
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .max_attempts(4)
        .logging(Logging::off())
        .hooks(log.clone())
        .build()
        .unwrap();
    let service = RetryLayer::new(policy).layer(server.clone());

    let response = service.oneshot(get()).await.unwrap();

    assert_eq!(server.attempt_times_ms(), [0, 1000, 2000, 3000]);
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["x-request"], "kept");
    assert_eq!(response.body(), "quota exceeded");
    assert_eq!(log.reasons(), [GiveUpReason::Exhausted]);
}

#[tokio::test(start_paused = true)]
async fn post_503_with_retry_after_not_retried() {
    let server = Scripted::new([status(503).header("retry-after", b"2"), status(200)]);
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .logging(Logging::off())
        .build()
        .unwrap();
    let service = RetryLayer::new(policy).layer(server.clone());

    let response = service.oneshot(post("order")).await.unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "2");
    assert_eq!(server.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn post_429_retried_after_delay() {
    let server = Scripted::new([status(429).header("retry-after", b"2"), status(200)]);
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .logging(Logging::off())
        .build()
        .unwrap();
    let service = RetryLayer::new(policy).layer(server.clone());

    let response = service.oneshot(post("order")).await.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(server.attempt_times_ms(), [0, 2000]);
    let bodies: Vec<String> = server.calls().into_iter().map(|call| call.body).collect();
    assert_eq!(bodies, ["order", "order"]);
}

#[tokio::test(start_paused = true)]
async fn delay_headers_read_in_order() {
    let classifier = HttpClassifier::default().delay_headers([
        DelayHeader::Milliseconds("retry-after-ms".parse().unwrap()),
        DelayHeader::RetryAfter,
    ]);
    let server = Scripted::new([
        status(503)
            .header("retry-after-ms", b"250")
            .header("retry-after", b"9"),
        status(503)
            .header("retry-after-ms", b"bad")
            .header("retry-after", b"3"),
        status(200),
    ]);
    let log = EventLog::default();
    let policy = RetryPolicy::builder(classifier)
        .logging(Logging::off())
        .hooks(log.clone())
        .build()
        .unwrap();
    let service = RetryLayer::new(policy).layer(server.clone());

    service.oneshot(get()).await.unwrap();

    assert_eq!(log.delays(), [Duration::from_millis(250), secs(3)]);
    assert_eq!(server.attempt_times_ms(), [0, 250, 3250]);
}

/// Runs the date cases in a child process of this test binary with a far-off local time
/// zone, because the parser must read HTTP-dates as UTC whatever `TZ` says.
#[test]
fn http_dates_ignore_local_time_zone() {
    for zone in ["Pacific/Kiritimati", "America/St_Johns", "UTC"] {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "http_dates_in_child_zone",
                "--include-ignored",
                "--quiet",
            ])
            .env("TZ", zone)
            .env("TOWER_BACKOFF_TZ_CHILD", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "TZ={zone}: {stdout}");
        assert!(stdout.contains("1 passed"), "TZ={zone}: {stdout}");
    }
}

#[test]
#[ignore = "run by http_dates_ignore_local_time_zone with TZ set"]
fn http_dates_in_child_zone() {
    assert_eq!(std::env::var("TOWER_BACKOFF_TZ_CHILD").as_deref(), Ok("1"));
    assert_eq!(parse(b"Mon, 03 Jun 2019 11:30:12 GMT"), Some(secs(1812)));
    assert_eq!(parse(b"Mon, 03 Jun 2019 11:00:40 GMT"), Some(secs(40)));
    assert_eq!(parse(b"Mon, 03 Jun 2019 10:00:00 GMT"), None);
}
