//! Property tests: any valid configuration, at any attempt number up to a million, gives
//! delays within `[0, cap]` from a schedule that never decreases and stops changing at its cap.

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::time::Duration;
use tower_backoff::Jitter;
use tower_backoff::backoff::{Backoff, Exponential, Fibonacci, Linear};

#[derive(Debug, Clone)]
enum Schedule {
    Exponential(Exponential),
    Fibonacci(Fibonacci),
    Linear(Linear),
}

impl Schedule {
    fn next(&mut self, rng: &mut SmallRng) -> Option<Duration> {
        match self {
            Schedule::Exponential(schedule) => schedule.next_delay(rng),
            Schedule::Fibonacci(schedule) => schedule.next_delay(rng),
            Schedule::Linear(schedule) => schedule.next_delay(rng),
        }
    }

    fn cap(&self) -> Duration {
        match self {
            Schedule::Exponential(schedule) => schedule.max_delay(),
            Schedule::Fibonacci(schedule) => schedule.max_delay(),
            Schedule::Linear(schedule) => schedule.max_delay(),
        }
        .unwrap()
    }

    fn validate(&self) {
        match self {
            Schedule::Exponential(schedule) => schedule.validate(),
            Schedule::Fibonacci(schedule) => schedule.validate(),
            Schedule::Linear(schedule) => schedule.validate(),
        }
        .unwrap();
    }
}

fn schedule() -> impl Strategy<Value = Schedule> {
    let initial = 1u64..=10_000_000_000;
    let extra = 0u64..=u64::MAX / 4;
    (0..3u8, initial, extra, 1.0f64..=64.0, 0u64..=10_000_000_000).prop_map(
        |(kind, initial_ns, extra_ns, factor, step_ns)| {
            let initial = Duration::from_nanos(initial_ns);
            let cap = initial.saturating_add(Duration::from_nanos(extra_ns));
            match kind {
                0 => Schedule::Exponential(Exponential::new(initial).factor(factor).max_delay(cap)),
                1 => Schedule::Fibonacci(Fibonacci::new(initial).max_delay(cap)),
                _ => Schedule::Linear(
                    Linear::new(initial, Duration::from_nanos(step_ns)).max_delay(cap),
                ),
            }
        },
    )
}

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        (0.0f64..=1.0).prop_map(Jitter::Proportional),
        (0u64..=u64::MAX).prop_map(|ns| Jitter::Additive(Duration::from_nanos(ns).into())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn schedules_stay_bounded(
        mut schedule in schedule(),
        jitter in jitter(),
        attempts in 1u32..=1_000_000,
        seed in any::<u64>(),
    ) {
        schedule.validate();
        let cap = schedule.cap();
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut previous = Duration::ZERO;
        let mut state_checks_left = 64;

        for _ in 0..attempts {
            let at_cap = previous == cap && state_checks_left > 0;
            let before = if at_cap { format!("{schedule:?}") } else { String::new() };
            let delay = schedule.next(&mut rng).expect("these schedules never end");
            prop_assert!(delay >= previous, "{delay:?} after {previous:?}");
            prop_assert!(delay <= cap, "{delay:?} above the cap {cap:?}");

            let jittered = jitter.apply(delay, &mut rng).min(cap);
            prop_assert!(jittered <= cap);

            if at_cap {
                // Constant work at the cap: the schedule's state no longer changes.
                prop_assert_eq!(before, format!("{schedule:?}"));
                state_checks_left -= 1;
            }
            previous = delay;
        }
    }
}
