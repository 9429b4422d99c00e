//! Attempt limits, deadlines and hooks, on paused time with a scripted service.

mod support;

use std::time::Duration;
use support::{EventLog, Recorded, Scripted, get, millis, secs, status};
use tower::{Layer, Service, ServiceExt};
use tower_backoff::backoff::{Backoff, Constant, Exponential};
use tower_backoff::classify::{ClassifyExt, HttpClassifier, RetryOverride};
use tower_backoff::hooks::{DelaySource, GiveUpReason};
use tower_backoff::{Jitter, Logging, RetryLayer, RetryPolicy, RetryPolicyBuilder};

fn builder() -> RetryPolicyBuilder<HttpClassifier> {
    RetryPolicy::builder(HttpClassifier::default())
        .jitter(Jitter::None)
        .logging(Logging::off())
}

fn layer<B: Backoff>(
    builder: RetryPolicyBuilder<HttpClassifier, B>,
    log: &EventLog,
) -> RetryLayer<HttpClassifier, B, EventLog> {
    RetryLayer::new(builder.hooks(log.clone()).build().unwrap())
}

#[tokio::test(start_paused = true)]
async fn one_attempt_allowed() {
    let server = Scripted::new([status(503)]);
    let log = EventLog::default();
    let service = layer(builder().max_attempts(1), &log).layer(server.clone());

    let response = service.oneshot(get()).await.unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(server.attempt_times_ms(), [0]);
    assert_eq!(log.hooks(), [("give_up", 1)]);
    assert_eq!(log.reasons(), [GiveUpReason::Exhausted]);
}

#[tokio::test(start_paused = true)]
async fn deadline_with_instant_failures() {
    let server = Scripted::new([status(503)]);
    let log = EventLog::default();
    let policy = builder()
        .backoff(Exponential::new(secs(1)).max_delay(secs(60)))
        .max_attempts(10)
        .max_elapsed(secs(10));
    let service = layer(policy, &log).layer(server.clone());

    let response = service.oneshot(get()).await.unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(server.attempt_times_ms(), [0, 1000, 3000, 7000]);
    let last = log.events().pop().unwrap();
    assert_eq!(last.reason, Some(GiveUpReason::Deadline));
    assert_eq!(last.elapsed, secs(7));
    assert_eq!(last.attempt, 4);
}

#[tokio::test(start_paused = true)]
async fn deadline_counts_slow_attempts() {
    let server = Scripted::new([status(503).after(secs(5))]);
    let log = EventLog::default();
    let policy = builder()
        .backoff(Exponential::new(secs(1)).max_delay(secs(60)))
        .max_attempts(10)
        .max_elapsed(secs(10));
    let service = layer(policy, &log).layer(server.clone());
    let start = tokio::time::Instant::now();

    service.oneshot(get()).await.unwrap();

    assert_eq!(server.attempt_times_ms(), [0, 6000]);
    assert_eq!(start.elapsed(), secs(11));
    assert_eq!(log.reasons(), [GiveUpReason::Deadline]);
}

#[tokio::test(start_paused = true)]
async fn timer_rounding_counts_toward_deadline() {
    // tokio ends this sleep at the next whole millisecond, 10 s, which is the deadline.
    let server = Scripted::new([status(503), status(200)]);
    let log = EventLog::default();
    let policy = builder()
        .backoff(Constant::new(Duration::from_micros(9_999_500)))
        .max_elapsed(secs(10));
    let service = layer(policy, &log).layer(server.clone());

    let response = service.oneshot(get()).await.unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(server.attempt_times_ms(), [0]);
    assert_eq!(log.reasons(), [GiveUpReason::Deadline]);
}

#[tokio::test(start_paused = true)]
async fn whole_millisecond_before_deadline_retried() {
    let server = Scripted::new([status(503), status(200)]);
    let log = EventLog::default();
    let policy = builder()
        .backoff(Constant::new(millis(9_998)))
        .max_elapsed(secs(10));
    let service = layer(policy, &log).layer(server.clone());

    let response = service.oneshot(get()).await.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(server.attempt_times_ms(), [0, 9_998]);
}

/// Sends a request that starts `offset` into one of tokio's millisecond ticks, fails after
/// `latency`, and would be retried after `delay`, with a deadline of `max_elapsed`. Returns
/// the start times of its attempts. Each case gets its own runtime, so that its ticks start
/// with the case.
fn run_off_tick(
    offset: Duration,
    latency: Duration,
    delay: Duration,
    max_elapsed: Duration,
) -> Vec<Duration> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        tokio::time::advance(offset).await;
        let server = Scripted::new([status(503).after(latency), status(200)]);
        let policy = builder()
            .backoff(Constant::new(delay))
            .max_elapsed(max_elapsed);
        let service = layer(policy, &EventLog::default()).layer(server.clone());
        service.oneshot(get()).await.unwrap();
        server.calls().iter().map(|call| call.at).collect()
    })
}

#[test]
fn retry_before_deadline_off_tick() {
    let micros = Duration::from_micros;
    for offset in [0, 100, 500, 900, 999] {
        for latency in [0, 1, 300, 700, 1_999] {
            for delay in [5_200, 5_500] {
                for margin in [1, 999, 1_001, 1_999, 2_000, 2_001, 3_000] {
                    let max_elapsed = micros(latency + delay + margin);
                    let starts =
                        run_off_tick(micros(offset), micros(latency), micros(delay), max_elapsed);
                    let case = format!(
                        "offset {offset} µs, latency {latency} µs, delay {delay} µs, deadline {max_elapsed:?}"
                    );
                    assert!(starts.len() <= 2, "{case}: {starts:?}");
                    if let Some(retry) = starts.get(1) {
                        assert!(*retry < max_elapsed, "{case}: retry at {retry:?}");
                    }
                    // The scripted attempt sleeps for its latency, and the timer ends
                    // even a zero-length sleep at the next tick, up to 1 ms late. With no
                    // latency, 3 ms of margin cover that and the 2 ms that the timer may
                    // add to the retry's sleep, so the request must be retried.
                    if latency == 0 && margin >= 3_000 {
                        assert_eq!(starts.len(), 2, "{case}: {starts:?}");
                    }
                }
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn first_attempt_succeeds() {
    let server = Scripted::new([status(200)]);
    let log = EventLog::default();
    let service = layer(builder(), &log).layer(server.clone());
    let start = tokio::time::Instant::now();

    let response = service.oneshot(get()).await.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(server.attempt_times_ms(), [0]);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(log.hooks(), [("success", 1)]);
}

#[tokio::test(start_paused = true)]
async fn success_reports_total_elapsed() {
    let server = Scripted::new([
        status(503).after(millis(500)),
        status(503).after(millis(500)),
        status(200).after(millis(500)),
    ]);
    let log = EventLog::default();
    let service = layer(builder().backoff(Constant::new(secs(1))), &log).layer(server.clone());

    service.oneshot(get()).await.unwrap();

    let success = log.events().pop().unwrap();
    assert_eq!(success.hook, "success");
    assert_eq!(success.attempt, 3);
    assert_eq!(success.elapsed, millis(3500));
}

#[tokio::test(start_paused = true)]
async fn hooks_for_three_failures() {
    let server = Scripted::new([status(503)]);
    let log = EventLog::default();
    let service = layer(builder().backoff(Constant::new(secs(1))), &log).layer(server.clone());

    service.oneshot(get()).await.unwrap();

    assert_eq!(
        log.events(),
        [
            Recorded {
                hook: "retry",
                attempt: 1,
                elapsed: Duration::ZERO,
                next_delay: Some(secs(1)),
                delay_source: Some(DelaySource::Schedule),
                reason: None,
            },
            Recorded {
                hook: "retry",
                attempt: 2,
                elapsed: secs(1),
                next_delay: Some(secs(1)),
                delay_source: Some(DelaySource::Schedule),
                reason: None,
            },
            Recorded {
                hook: "give_up",
                attempt: 3,
                elapsed: secs(2),
                next_delay: None,
                delay_source: None,
                reason: Some(GiveUpReason::Exhausted),
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn dropped_during_sleep_stops() {
    let server = Scripted::new([status(503)]);
    let log = EventLog::default();
    let mut service = layer(builder().backoff(Constant::new(secs(1))), &log).layer(server.clone());
    service.ready().await.unwrap();
    let mut future = Box::pin(service.call(get()));

    // Drive the first attempt until the future sleeps before the second one.
    let polled = tokio::time::timeout(millis(500), &mut future).await;
    assert!(polled.is_err(), "the request should still be sleeping");
    assert_eq!(server.calls().len(), 1);
    drop(future);

    tokio::time::sleep(secs(3600)).await;
    assert_eq!(server.calls().len(), 1);
    assert_eq!(log.hooks(), [("retry", 1)]);
}

#[tokio::test(start_paused = true)]
async fn override_sets_attempts_and_deadline() {
    let server = Scripted::new([status(503)]);
    let log = EventLog::default();
    let service = layer(builder().backoff(Constant::new(secs(1))), &log).layer(server.clone());

    let mut request = get();
    request.extensions_mut().insert(
        RetryOverride::new()
            .max_attempts(6)
            .max_elapsed(millis(3500)),
    );
    service.clone().oneshot(request).await.unwrap();

    assert_eq!(server.attempt_times_ms(), [0, 1000, 2000, 3000]);
    assert_eq!(log.reasons(), [GiveUpReason::Deadline]);
}

#[tokio::test(start_paused = true)]
async fn override_disables_retries() {
    let server = Scripted::new([status(503)]);
    let log = EventLog::default();
    let service = layer(builder(), &log).layer(server.clone());

    let mut request = get();
    request
        .extensions_mut()
        .insert(RetryOverride::new().disable());
    let response = service.oneshot(request).await.unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(server.calls().len(), 1);
    assert_eq!(log.hooks(), [("give_up", 1)]);
}

#[tokio::test(start_paused = true)]
async fn per_request_closure_limits() {
    let server = Scripted::new([status(503)]);
    let classifier = HttpClassifier::default().per_request(|request: &http::Request<String>| {
        if request.uri().path() == "/patient" {
            RetryOverride::new().max_attempts(5)
        } else {
            RetryOverride::new()
        }
    });
    let policy = RetryPolicy::builder(classifier)
        .backoff(Constant::new(secs(1)))
        .logging(Logging::off())
        .build()
        .unwrap();
    let service = RetryLayer::new(policy).layer(server.clone());

    let request = http::Request::get("/patient").body(String::new()).unwrap();
    service.clone().oneshot(request).await.unwrap();
    assert_eq!(server.calls().len(), 5);

    service.oneshot(get()).await.unwrap();
    assert_eq!(server.calls().len(), 8);
}
