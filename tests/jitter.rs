//! Each request draws its own jitter, and a seed makes the draws reproducible.

mod support;

use std::time::Duration;
use support::{EventLog, Scripted, get, secs, status};
use tower::{Layer, ServiceExt};
use tower_backoff::backoff::{Constant, Exponential, List};
use tower_backoff::classify::HttpClassifier;
use tower_backoff::{ConfigErrorKind, Jitter, Logging, RetryLayer, RetryPolicy};

fn layer(
    seed: Option<u64>,
    jitter: Jitter,
    log: &EventLog,
) -> RetryLayer<HttpClassifier, Exponential, EventLog> {
    let mut builder = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Exponential::new(secs(1)).max_delay(secs(100)))
        .jitter(jitter)
        .max_attempts(6)
        .logging(Logging::off())
        .hooks(log.clone());
    if let Some(seed) = seed {
        builder = builder.seed(seed);
    }
    RetryLayer::new(builder.build().unwrap())
}

/// Sends `requests` failing requests through one layer and returns each one's delays.
async fn delays_per_request(
    layer: &RetryLayer<HttpClassifier, Exponential, EventLog>,
    log: &EventLog,
    requests: usize,
) -> Vec<Vec<Duration>> {
    let mut sequences = Vec::new();
    for _ in 0..requests {
        let before = log.delays().len();
        let service = layer.layer(Scripted::new([status(503)]));
        service.oneshot(get()).await.unwrap();
        sequences.push(log.delays()[before..].to_vec());
    }
    sequences
}

#[tokio::test(start_paused = true)]
async fn two_requests_draw_different_jitter() {
    let log = EventLog::default();
    let layer = layer(None, Jitter::Full, &log);

    let sequences = delays_per_request(&layer, &log, 2).await;

    assert_eq!(sequences[0].len(), 5);
    assert_eq!(sequences[1].len(), 5);
    assert_ne!(sequences[0], sequences[1]);
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_draw_different_jitter() {
    let log = EventLog::default();
    let layer = layer(Some(1), Jitter::Full, &log);
    let first = layer.layer(Scripted::new([status(503), status(503), status(200)]));
    let second = layer.layer(Scripted::new([status(503), status(503), status(200)]));

    let (a, b) = tokio::join!(first.oneshot(get()), second.oneshot(get()));
    assert_eq!(a.unwrap().status(), 200);
    assert_eq!(b.unwrap().status(), 200);

    let delays = log.delays();
    assert_eq!(delays.len(), 4);
    let mut distinct = delays.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "{delays:?}");
}

#[tokio::test(start_paused = true)]
async fn seed_reproduces_jitter() {
    let first_log = EventLog::default();
    let second_log = EventLog::default();
    let first = delays_per_request(&layer(Some(42), Jitter::Full, &first_log), &first_log, 3).await;
    let second =
        delays_per_request(&layer(Some(42), Jitter::Full, &second_log), &second_log, 3).await;

    assert_eq!(first, second);
    assert_ne!(first[0], first[1]);
}

#[tokio::test(start_paused = true)]
async fn jittered_delays_within_schedule() {
    let log = EventLog::default();
    let layer = layer(Some(9), Jitter::Full, &log);

    for sequence in delays_per_request(&layer, &log, 20).await {
        for (retry, delay) in sequence.iter().enumerate() {
            let scheduled = secs(1 << retry);
            assert!(
                *delay <= scheduled,
                "retry {retry}: {delay:?} above {scheduled:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn no_jitter_gives_exact_schedule() {
    let log = EventLog::default();
    let layer = layer(None, Jitter::None, &log);

    let sequences = delays_per_request(&layer, &log, 2).await;

    let expected: Vec<Duration> = [1, 2, 4, 8, 16].into_iter().map(secs).collect();
    assert_eq!(sequences[0], expected);
    assert_eq!(sequences[1], expected);
}

/// Sends one request that fails five times through a layer with the given constant
/// schedule and jitter, and returns the delays of its retries.
async fn constant_delays(schedule: Constant, jitter: Jitter, seed: u64) -> Vec<Duration> {
    let log = EventLog::default();
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(schedule)
        .jitter(jitter)
        .max_attempts(6)
        .no_budget()
        .seed(seed)
        .logging(Logging::off())
        .hooks(log.clone())
        .build()
        .unwrap();
    let service = RetryLayer::new(policy).layer(Scripted::new([status(503)]));
    service.oneshot(get()).await.unwrap();
    log.delays()
}

#[tokio::test(start_paused = true)]
async fn additive_jitter_adds_to_constant() {
    let mut delays = Vec::new();
    for seed in 0..20 {
        delays.extend(
            constant_delays(
                Constant::new(secs(1)),
                Jitter::Additive(secs(1).into()),
                seed,
            )
            .await,
        );
    }

    assert_eq!(delays.len(), 100);
    assert!(delays.iter().all(|delay| *delay >= secs(1)), "{delays:?}");
    assert!(delays.iter().all(|delay| *delay <= secs(2)), "{delays:?}");
    assert!(
        delays
            .iter()
            .any(|delay| *delay > Duration::from_millis(1500)),
        "{delays:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn proportional_jitter_spreads_constant() {
    let mut delays = Vec::new();
    for seed in 0..20 {
        delays
            .extend(constant_delays(Constant::new(secs(1)), Jitter::Proportional(0.2), seed).await);
    }

    assert!(
        delays
            .iter()
            .all(|delay| *delay >= Duration::from_millis(800)),
        "{delays:?}"
    );
    assert!(
        delays
            .iter()
            .all(|delay| *delay <= Duration::from_millis(1200)),
        "{delays:?}"
    );
    assert!(
        delays
            .iter()
            .any(|delay| *delay > Duration::from_millis(1100)),
        "{delays:?}"
    );
    assert!(
        delays
            .iter()
            .any(|delay| *delay < Duration::from_millis(900)),
        "{delays:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn constant_cap_bounds_jitter() {
    let schedule = Constant::new(secs(1)).max_delay(Duration::from_millis(1100));
    let mut delays = Vec::new();
    for seed in 0..20 {
        delays.extend(constant_delays(schedule, Jitter::Additive(secs(1).into()), seed).await);
    }

    assert!(delays.iter().all(|delay| *delay >= secs(1)), "{delays:?}");
    assert!(
        delays
            .iter()
            .all(|delay| *delay <= Duration::from_millis(1100)),
        "{delays:?}"
    );
}

#[test]
fn constant_and_list_caps_validated() {
    let build = |schedule| {
        RetryPolicy::builder(HttpClassifier::default())
            .backoff(schedule)
            .build()
            .map(drop)
    };
    let error = build(Constant::new(secs(2)).max_delay(secs(1))).unwrap_err();
    assert_eq!(error.field(), "backoff.max_delay");
    assert_eq!(error.kind(), ConfigErrorKind::TooSmall);

    let list = |cap| {
        RetryPolicy::builder(HttpClassifier::default())
            .backoff(List::new([secs(1), secs(3), secs(2)]).max_delay(cap))
            .build()
            .map(drop)
    };
    let error = list(secs(2)).unwrap_err();
    assert_eq!(error.field(), "backoff.max_delay");
    assert_eq!(error.kind(), ConfigErrorKind::TooSmall);
    assert!(list(secs(3)).is_ok());
}
