//! The decorrelated-jitter schedule: its bounds, saturation and validation, its delays
//! through the layer, and the contention study of the storm simulation.

// The outage study of the shared simulation core is checked in tests/budget.rs.
#[allow(dead_code)]
#[path = "../examples/storm/sim.rs"]
mod sim;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use sim::Schedule;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{Layer, ServiceExt};
use tower_backoff::backoff::{Backoff, Decorrelated};
use tower_backoff::classify::on_error;
use tower_backoff::hooks::Event;
use tower_backoff::{ConfigErrorKind, Jitter, Logging, RetryLayer, RetryPolicy};

const BASE: Duration = Duration::from_millis(100);
const CAP: Duration = Duration::from_secs(5);

#[test]
fn decorrelated_stays_within_bounds() {
    for seed in 0..50 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut schedule = Decorrelated::new(BASE).max_delay(CAP);
        let mut previous = BASE;
        for step in 0..200 {
            let delay = schedule.next_delay(&mut rng).unwrap();
            assert!(delay >= BASE, "seed {seed} step {step}: {delay:?}");
            assert!(delay <= CAP, "seed {seed} step {step}: {delay:?}");
            assert!(delay <= previous * 3, "seed {seed} step {step}: {delay:?}");
            previous = delay;
        }
    }
}

#[test]
fn decorrelated_first_delay_is_up_to_three_bases() {
    let mut highest = Duration::ZERO;
    for seed in 0..1000 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let delay = Decorrelated::new(BASE).next_delay(&mut rng).unwrap();
        assert!(delay >= BASE, "seed {seed}: {delay:?}");
        assert!(delay <= BASE * 3, "seed {seed}: {delay:?}");
        highest = highest.max(delay);
    }
    // The draws spread over the range instead of sticking to the base.
    assert!(highest > BASE * 2, "highest first delay {highest:?}");
}

#[test]
fn decorrelated_reaches_cap() {
    let mut rng = SmallRng::seed_from_u64(3);
    let mut schedule = Decorrelated::new(BASE).max_delay(CAP);
    let at_cap = (0..1000)
        .map(|_| schedule.next_delay(&mut rng).unwrap())
        .filter(|&delay| delay == CAP)
        .count();
    assert!(at_cap > 0, "no delay reached the cap in 1000 steps");
}

#[test]
fn decorrelated_is_reproducible_per_seed() {
    let delays = |seed| {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut schedule = Decorrelated::default();
        (0..20)
            .map(|_| schedule.next_delay(&mut rng).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(delays(11), delays(11));
    assert_ne!(delays(11), delays(12));
}

#[test]
fn decorrelated_equal_base_and_cap_is_constant() {
    let mut rng = SmallRng::seed_from_u64(5);
    let mut schedule = Decorrelated::new(BASE).max_delay(BASE);
    for _ in 0..100 {
        assert_eq!(schedule.next_delay(&mut rng), Some(BASE));
    }
}

#[test]
fn decorrelated_saturates_without_cap() {
    let mut rng = SmallRng::seed_from_u64(9);
    let mut schedule = Decorrelated::new(Duration::from_secs(1)).max_delay(Duration::MAX);
    schedule.validate().unwrap();
    for _ in 0..1_000_000 {
        let delay = schedule.next_delay(&mut rng).unwrap();
        assert!(delay >= Duration::from_secs(1));
    }
    assert_eq!(Backoff::max_delay(&schedule), Some(Duration::MAX));
}

#[test]
fn decorrelated_invalid_parameters_are_rejected() {
    let cases = [
        (
            Decorrelated::new(Duration::ZERO),
            "backoff.base",
            ConfigErrorKind::Zero,
        ),
        (
            Decorrelated::new(-1.0),
            "backoff.base",
            ConfigErrorKind::TooSmall,
        ),
        (
            Decorrelated::new(f64::NAN),
            "backoff.base",
            ConfigErrorKind::NotFinite,
        ),
        (
            Decorrelated::new(BASE).max_delay(f64::INFINITY),
            "backoff.max_delay",
            ConfigErrorKind::NotFinite,
        ),
        (
            Decorrelated::new(CAP).max_delay(BASE),
            "backoff.max_delay",
            ConfigErrorKind::TooSmall,
        ),
    ];

    for (schedule, field, kind) in cases {
        let error = schedule.validate().unwrap_err();
        assert_eq!(error.field(), field, "{error}");
        assert_eq!(error.kind(), kind, "{error}");

        let error = RetryPolicy::builder(on_error(|_: &Failed| true))
            .backoff(schedule)
            .build()
            .unwrap_err();
        assert_eq!(error.field(), field, "{error}");
    }
}

#[test]
fn decorrelated_invalid_schedule_does_not_panic() {
    // An unvalidated schedule with its cap below its base still returns delays.
    let mut rng = SmallRng::seed_from_u64(1);
    let mut schedule = Decorrelated::new(CAP).max_delay(BASE);
    for _ in 0..10 {
        assert_eq!(schedule.next_delay(&mut rng), Some(BASE));
    }
}

#[derive(Debug)]
struct Failed;

#[tokio::test(start_paused = true)]
async fn decorrelated_delays_through_layer() {
    let delays = Arc::new(Mutex::new(Vec::new()));
    let recorder = Arc::clone(&delays);
    let policy = RetryPolicy::builder(on_error(|_: &Failed| true))
        .backoff(Decorrelated::new(BASE).max_delay(CAP))
        .jitter(Jitter::None)
        .max_attempts(30)
        .no_budget()
        .logging(Logging::off())
        .seed(21)
        .on_retry(move |event: &Event<'_, (), Failed>| {
            recorder.lock().unwrap().push(event.next_delay());
        })
        .build()
        .unwrap();
    let backend = tower::service_fn(|_request: ()| async { Err::<(), _>(Failed) });
    let service = RetryLayer::new(policy).layer(backend);

    let started = tokio::time::Instant::now();
    assert!(service.oneshot(()).await.is_err());
    let elapsed = started.elapsed();

    let delays: Vec<Duration> = delays.lock().unwrap().iter().flatten().copied().collect();
    assert_eq!(delays.len(), 29);
    let mut previous = BASE;
    for &delay in &delays {
        assert!(delay >= BASE, "{delay:?}");
        assert!(delay <= CAP, "{delay:?}");
        assert!(delay <= previous * 3, "{delay:?}");
        previous = delay;
    }
    // The backend returns at once, so the request lasts as long as its sleeps. Tokio's
    // timer rounds each deadline up to the next millisecond.
    let slept: Duration = delays.iter().sum();
    assert!(elapsed >= slept, "{elapsed:?} against {slept:?}");
    assert!(
        elapsed <= slept + Duration::from_millis(29),
        "{elapsed:?} against {slept:?}"
    );
}

/// Returns the total calls of one contention run with 100 clients.
async fn contention_calls(schedule: Schedule) -> u64 {
    let result = sim::run_contention(schedule, 100, 7).await.unwrap();
    assert_eq!(result.gave_up, 0, "{schedule:?}");
    result.total_calls
}

#[tokio::test(start_paused = true)]
async fn jitter_cuts_contention_calls() {
    let unjittered = contention_calls(Schedule::Exponential).await;
    // Without jitter the clients stay in lockstep and one write succeeds per round:
    // 100 + 99 + ... + 1 calls.
    assert_eq!(unjittered, 5050);

    for schedule in [Schedule::Full, Schedule::Decorrelated] {
        let calls = contention_calls(schedule).await;
        assert!(
            calls as f64 <= 0.6 * unjittered as f64,
            "{schedule:?}: {calls} calls against {unjittered} without jitter"
        );
    }
}
