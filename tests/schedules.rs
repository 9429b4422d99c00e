//! Delay schedules, jitter bounds and configuration checks.

mod support;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::time::Duration;
use support::{EventLog, Scripted, get, millis, secs, status};
use tower::ServiceExt;
use tower_backoff::backoff::{Backoff, Constant, Exponential, Fibonacci, Linear, List};
use tower_backoff::classify::HttpClassifier;
use tower_backoff::hooks::GiveUpReason;
use tower_backoff::{ConfigErrorKind, Jitter, Logging, RetryLayer, RetryPolicy};

fn rng() -> SmallRng {
    SmallRng::seed_from_u64(7)
}

fn take(mut schedule: impl Backoff, count: usize) -> Vec<Duration> {
    schedule.validate().unwrap();
    let mut rng = rng();
    (0..count)
        .map(|_| schedule.next_delay(&mut rng).unwrap())
        .collect()
}

fn seconds(values: &[f64]) -> Vec<Duration> {
    values
        .iter()
        .map(|value| Duration::from_secs_f64(*value))
        .collect()
}

#[test]
fn exponential_doubles_up_to_cap() {
    let schedule = Exponential::new(secs(1)).max_delay(secs(16));
    assert_eq!(
        take(schedule, 6),
        seconds(&[1.0, 2.0, 4.0, 8.0, 16.0, 16.0])
    );
}

#[test]
fn exponential_cap_between_powers() {
    let schedule = Exponential::new(millis(500))
        .factor(2.0)
        .max_delay(secs(120));
    assert_eq!(
        take(schedule, 10),
        seconds(&[0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 120.0, 120.0])
    );
}

#[test]
fn exponential_default_is_100ms_doubling_to_10s() {
    let delays = take(Exponential::default(), 9);
    assert_eq!(delays[0], millis(100));
    assert_eq!(delays[1], millis(200));
    assert_eq!(delays[6], millis(6400));
    assert_eq!(delays[7], secs(10));
    assert_eq!(delays[8], secs(10));
}

#[test]
fn fibonacci_reaches_cap() {
    let schedule = Fibonacci::new(secs(1)).max_delay(secs(8));
    assert_eq!(
        take(schedule, 7),
        seconds(&[1.0, 1.0, 2.0, 3.0, 5.0, 8.0, 8.0])
    );
}

#[test]
fn fibonacci_cap_is_exact() {
    let schedule = Fibonacci::new(secs(1)).max_delay(secs(4));
    assert_eq!(take(schedule, 6), seconds(&[1.0, 1.0, 2.0, 3.0, 4.0, 4.0]));
}

#[test]
fn constant_repeats() {
    assert_eq!(take(Constant::new(secs(2)), 3), seconds(&[2.0, 2.0, 2.0]));
}

#[test]
fn linear_grows_by_step_to_cap() {
    let schedule = Linear::new(secs(1), secs(2)).max_delay(secs(6));
    assert_eq!(take(schedule, 5), seconds(&[1.0, 3.0, 5.0, 6.0, 6.0]));
}

#[test]
fn list_ends_after_last_interval() {
    let mut schedule = List::new([secs(1), secs(2)]);
    let mut rng = rng();
    assert_eq!(schedule.next_delay(&mut rng), Some(secs(1)));
    assert_eq!(schedule.next_delay(&mut rng), Some(secs(2)));
    assert_eq!(schedule.next_delay(&mut rng), None);
    assert_eq!(schedule.next_delay(&mut rng), None);
}

#[tokio::test(start_paused = true)]
async fn list_schedule_ends_request() {
    let server = Scripted::new([status(503)]);
    let log = EventLog::default();
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(List::new([secs(1), secs(2)]))
        .jitter(Jitter::None)
        .max_attempts(10)
        .logging(Logging::off())
        .hooks(log.clone())
        .build()
        .unwrap();
    let client = RetryLayer::new(policy);
    let service = tower::Layer::layer(&client, server.clone());

    let response = service.oneshot(get()).await.unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(server.attempt_times_ms(), [0, 1000, 3000]);
    assert_eq!(log.reasons(), [GiveUpReason::ScheduleEnded]);
}

#[test]
fn exponential_millionth_delay_is_cap() {
    let mut schedule = Exponential::new(secs(1)).max_delay(secs(10));
    let mut rng = rng();
    let mut last = Duration::ZERO;
    for _ in 0..1_000_000 {
        last = schedule.next_delay(&mut rng).unwrap();
    }
    assert_eq!(last, secs(10));
}

#[test]
fn full_jitter_stays_within_cap() {
    let cap = secs(10);
    let jitter = Jitter::Full;
    let mut schedule = Exponential::new(secs(1)).max_delay(cap);
    let mut rng = rng();
    for _ in 0..1_000_000 {
        let delay = jitter.apply(schedule.next_delay(&mut rng).unwrap(), &mut rng);
        assert!(delay <= cap, "{delay:?} is above the cap");
    }
}

#[test]
fn full_jitter_stays_random_at_cap() {
    let cap = secs(2);
    let mut schedule = Exponential::new(millis(100)).max_delay(cap);
    let mut rng = rng();
    for _ in 0..49 {
        schedule.next_delay(&mut rng);
    }
    let at_fiftieth = schedule.next_delay(&mut rng).unwrap();
    assert_eq!(at_fiftieth, cap);

    let samples: Vec<Duration> = (0..1000)
        .map(|_| Jitter::Full.apply(at_fiftieth, &mut rng))
        .collect();
    assert!(samples.iter().all(|delay| *delay <= cap));
    let below_half = samples.iter().filter(|delay| **delay < secs(1)).count();
    // A uniform draw lands below half of the cap about 500 times in 1000.
    assert!(
        (350..=650).contains(&below_half),
        "{below_half} of 1000 below 1 s"
    );
}

#[test]
fn equal_and_proportional_jitter_bounds() {
    let mut rng = rng();
    for _ in 0..10_000 {
        let equal = Jitter::Equal.apply(secs(4), &mut rng);
        assert!(equal >= secs(2), "equal: {equal:?}");
        assert!(equal <= secs(4), "equal: {equal:?}");
        let proportional = Jitter::Proportional(0.2).apply(secs(10), &mut rng);
        assert!(proportional >= secs(8), "proportional: {proportional:?}");
        assert!(proportional <= secs(12), "proportional: {proportional:?}");
        let additive = Jitter::Additive(secs(1).into()).apply(secs(3), &mut rng);
        assert!(additive >= secs(3), "additive: {additive:?}");
        assert!(additive <= secs(4), "additive: {additive:?}");
    }
}

fn build_error(
    policy: tower_backoff::RetryPolicyBuilder<HttpClassifier, impl Backoff>,
) -> (String, ConfigErrorKind, String) {
    let Err(error) = policy.build() else {
        panic!("the policy was accepted");
    };
    (error.field().to_owned(), error.kind(), error.to_string())
}

#[test]
fn initial_above_cap_rejected() {
    let builder = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Exponential::new(secs(1)).max_delay(millis(10)));
    let (field, kind, message) = build_error(builder);
    assert_eq!(field, "backoff.max_delay");
    assert_eq!(kind, ConfigErrorKind::TooSmall);
    assert!(message.contains("10ms"), "{message}");
}

#[test]
fn factor_nan_or_below_one_rejected() {
    for factor in [f64::NAN, 0.5, -2.0, f64::INFINITY] {
        let builder = RetryPolicy::builder(HttpClassifier::default())
            .backoff(Exponential::new(secs(1)).factor(factor));
        let (field, _, message) = build_error(builder);
        assert_eq!(field, "backoff.factor", "factor {factor}");
        assert!(message.contains(&format!("{factor:?}")), "{message}");
    }
}

#[test]
fn negative_interval_rejected() {
    let builder = RetryPolicy::builder(HttpClassifier::default()).backoff(Constant::new(-1.0));
    let (field, kind, message) = build_error(builder);
    assert_eq!(field, "backoff.interval");
    assert_eq!(kind, ConfigErrorKind::TooSmall);
    assert!(message.contains("-1.0"), "{message}");
}

#[test]
fn float_intervals_accepted() {
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Exponential::new(0.25).max_delay(2.5))
        .max_elapsed(30.0)
        .build()
        .unwrap();
    assert_eq!(policy.max_elapsed(), Some(secs(30)));
}

#[test]
fn zero_attempts_rejected() {
    let builder = RetryPolicy::builder(HttpClassifier::default()).max_attempts(0);
    let (field, kind, _) = build_error(builder);
    assert_eq!(field, "max_attempts");
    assert_eq!(kind, ConfigErrorKind::Zero);
}

#[test]
fn other_invalid_values_rejected() {
    let cases = [
        (
            RetryPolicy::builder(HttpClassifier::default())
                .backoff(Exponential::new(Duration::ZERO)),
            "backoff.initial",
        ),
        (
            RetryPolicy::builder(HttpClassifier::default()).backoff(Exponential::new(f64::NAN)),
            "backoff.initial",
        ),
    ];
    for (builder, expected) in cases {
        assert_eq!(build_error(builder).0, expected);
    }

    let fibonacci = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Fibonacci::new(secs(5)).max_delay(secs(1)));
    assert_eq!(build_error(fibonacci).0, "backoff.max_delay");

    let linear =
        RetryPolicy::builder(HttpClassifier::default()).backoff(Linear::new(secs(1), -0.5));
    assert_eq!(build_error(linear).0, "backoff.step");

    let empty =
        RetryPolicy::builder(HttpClassifier::default()).backoff(List::new(Vec::<Duration>::new()));
    assert_eq!(build_error(empty).1, ConfigErrorKind::Empty);

    let negative_in_list =
        RetryPolicy::builder(HttpClassifier::default()).backoff(List::new([1.0, -3.0]));
    assert_eq!(build_error(negative_in_list).0, "backoff.intervals");

    let jitter = RetryPolicy::builder(HttpClassifier::default()).jitter(Jitter::Proportional(1.5));
    assert_eq!(build_error(jitter).0, "jitter.proportional");

    let additive = RetryPolicy::builder(HttpClassifier::default())
        .jitter(Jitter::Additive(f64::INFINITY.into()));
    assert_eq!(build_error(additive).0, "jitter.additive");

    let deadline = RetryPolicy::builder(HttpClassifier::default()).max_elapsed(-5.0);
    assert_eq!(build_error(deadline).0, "max_elapsed");

    let zero_deadline = RetryPolicy::builder(HttpClassifier::default()).max_elapsed(Duration::ZERO);
    assert_eq!(build_error(zero_deadline).1, ConfigErrorKind::Zero);

    let retry_after = RetryPolicy::builder(HttpClassifier::default()).max_retry_after(f64::NAN);
    assert_eq!(build_error(retry_after).0, "max_retry_after");
}

#[test]
fn huge_float_interval_rejected() {
    let builder = RetryPolicy::builder(HttpClassifier::default()).backoff(Constant::new(1e300));
    let (field, kind, message) = build_error(builder);
    assert_eq!(field, "backoff.interval");
    assert_eq!(kind, ConfigErrorKind::TooLarge);
    assert!(message.contains("1e300"), "{message}");
}

#[test]
fn huge_factor_saturates_at_cap() {
    let schedule = Exponential::new(secs(1)).factor(1e308).max_delay(secs(30));
    assert_eq!(take(schedule, 4), seconds(&[1.0, 30.0, 30.0, 30.0]));
}

#[test]
fn max_duration_cap_never_overflows() {
    let mut exponential = Exponential::new(secs(1)).max_delay(Duration::MAX);
    let mut fibonacci = Fibonacci::new(secs(1)).max_delay(Duration::MAX);
    let mut linear = Linear::new(secs(1), Duration::MAX / 2).max_delay(Duration::MAX);
    let mut rng = rng();
    for _ in 0..10_000 {
        exponential.next_delay(&mut rng).unwrap();
        fibonacci.next_delay(&mut rng).unwrap();
        linear.next_delay(&mut rng).unwrap();
    }
    assert_eq!(linear.next_delay(&mut rng), Some(Duration::MAX));
    assert_eq!(fibonacci.next_delay(&mut rng), Some(Duration::MAX));
    let huge = exponential.next_delay(&mut rng).unwrap();
    assert!(huge > secs(1 << 60), "{huge:?}");
    // Jitter on the largest delay saturates instead of overflowing.
    let additive = Jitter::Additive(Duration::MAX.into());
    assert_eq!(additive.apply(Duration::MAX, &mut rng), Duration::MAX);
    for jitter in [Jitter::Full, Jitter::Equal, Jitter::Proportional(1.0)] {
        jitter.apply(Duration::MAX, &mut rng);
    }
}
