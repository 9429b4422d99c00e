//! Retry budgets: the sliding window of `TpsBudget`, gRPC-style throttling, one deposit per
//! request through the layer, and the load multiplier of the outage simulation.

// The contention study of the shared simulation core is checked in tests/decorrelated.rs.
#[allow(dead_code)]
#[path = "../examples/storm/sim.rs"]
mod sim;

use sim::{BudgetChoice, OutageConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tower::{Layer, ServiceExt};
use tower_backoff::budget::{Budget, RetryThrottle, TpsBudget};
use tower_backoff::classify::on_error;
use tower_backoff::hooks::{Event, GiveUpReason};
use tower_backoff::{ConfigErrorKind, Logging, RetryLayer, RetryPolicy};

fn budget(ratio: f64, floor: f64, window: Duration) -> TpsBudget {
    TpsBudget::builder()
        .retry_ratio(ratio)
        .min_retries_per_second(floor)
        .window(window)
        .build()
        .unwrap()
}

/// Withdraws until the budget rejects a withdrawal, and returns how many succeeded.
fn drain(budget: &impl Budget) -> u64 {
    let mut withdrawn = 0;
    while budget.withdraw() {
        withdrawn += 1;
        assert!(withdrawn <= 1_000_000, "the budget never ran out");
    }
    withdrawn
}

#[tokio::test(start_paused = true)]
async fn tps_ratio_limits_retries() {
    let budget = budget(0.25, 0.0, Duration::from_secs(10));
    for _ in 0..100 {
        budget.deposit();
    }

    assert_eq!(budget.available(), 25);
    assert_eq!(drain(&budget), 25);
    assert_eq!(budget.available(), 0);
}

#[tokio::test(start_paused = true)]
async fn tps_zero_ratio_and_floor_allow_nothing() {
    let budget = budget(0.0, 0.0, Duration::from_secs(10));
    for _ in 0..1000 {
        budget.deposit();
    }

    assert!(!budget.withdraw());
}

#[tokio::test(start_paused = true)]
async fn tps_floor_allows_retries_per_window() {
    // 10 retries per second over 10 s is a reserve of 100 retries.
    let budget = budget(0.0, 10.0, Duration::from_secs(10));
    assert_eq!(drain(&budget), 100);

    // The withdrawals expire with the window, and the reserve is whole again.
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(drain(&budget), 100);
}

#[tokio::test(start_paused = true)]
async fn tps_deposits_expire_after_window() {
    let budget = budget(1.0, 0.0, Duration::from_secs(10));
    for _ in 0..10 {
        budget.deposit();
    }

    // A deposit counts for at least 9/10 of the window: the ring has ten slots.
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(budget.available(), 10);

    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(budget.available(), 0);
    assert!(!budget.withdraw());
}

#[tokio::test(start_paused = true)]
async fn tps_window_slides() {
    let budget = budget(1.0, 0.0, Duration::from_secs(10));
    for _ in 0..5 {
        budget.deposit();
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    for _ in 0..3 {
        budget.deposit();
    }
    assert_eq!(budget.available(), 8);

    // The first five deposits leave the window, and the last three stay.
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(budget.available(), 3);

    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(budget.available(), 0);
}

#[tokio::test(start_paused = true)]
async fn tps_withdrawals_expire_after_window() {
    let budget = budget(1.0, 0.0, Duration::from_secs(10));
    for _ in 0..4 {
        budget.deposit();
    }
    assert_eq!(drain(&budget), 4);

    // Fresh deposits after the window are not used up by the old withdrawals.
    tokio::time::advance(Duration::from_secs(10)).await;
    for _ in 0..2 {
        budget.deposit();
    }
    assert_eq!(drain(&budget), 2);
}

#[tokio::test(start_paused = true)]
async fn tps_defaults_are_finagle_defaults() {
    let budget = TpsBudget::default();
    assert_eq!(budget.retry_ratio(), 0.2);
    assert_eq!(budget.min_retries_per_second(), 10.0);
    assert_eq!(budget.window(), Duration::from_secs(10));

    // The floor alone: 10 per second over 10 s.
    assert_eq!(budget.available(), 100);
    for _ in 0..1000 {
        budget.deposit();
    }
    assert_eq!(budget.available(), 300);
}

#[tokio::test(start_paused = true)]
async fn tps_tiny_window_does_not_panic() {
    let budget = budget(1.0, 1.0, Duration::from_nanos(1));
    budget.deposit();
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(!budget.withdraw());
}

/// A budget and the instants of its deposits, to count what its window should hold.
struct Recorded {
    budget: TpsBudget,
    start: tokio::time::Instant,
    slot: Duration,
    deposits: Vec<tokio::time::Instant>,
}

impl Recorded {
    /// Creates a budget with ratio 1 and no floor, so that it allows one retry per deposit
    /// in its window.
    fn new(window: Duration) -> Self {
        Self {
            start: tokio::time::Instant::now(),
            budget: budget(1.0, 0.0, window),
            slot: window / 10,
            deposits: Vec::new(),
        }
    }

    fn deposit_at(&mut self, now: tokio::time::Instant) {
        self.budget.deposit_at(now);
        self.deposits.push(now);
    }

    /// Counts the deposits whose slot is one of the ten that end with the current one.
    fn expected(&self) -> u64 {
        let slot_of = |instant: tokio::time::Instant| {
            instant.saturating_duration_since(self.start).as_nanos() / self.slot.as_nanos()
        };
        let current = slot_of(tokio::time::Instant::now());
        let live = self
            .deposits
            .iter()
            .filter(|deposit| current - slot_of(**deposit) < 10)
            .count();
        u64::try_from(live).unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn tps_budgets_keep_own_slots() {
    // Two budgets with other starts and slot lengths take turns on one thread, in runs of
    // deposits within one slot and in alternation.
    let mut long = Recorded::new(Duration::from_secs(10));
    tokio::time::advance(Duration::from_millis(7)).await;
    let mut short = Recorded::new(Duration::from_millis(300));

    for step in 0..400 {
        tokio::time::advance(Duration::from_millis(13)).await;
        let now = tokio::time::Instant::now();
        for _ in 0..step % 3 {
            long.deposit_at(now);
        }
        short.deposit_at(now);
        long.deposit_at(now);

        assert_eq!(
            long.budget.available(),
            long.expected(),
            "long, step {step}"
        );
        assert_eq!(
            short.budget.available(),
            short.expected(),
            "short, step {step}"
        );
    }
}

/// Deposits into `first` and `second` in turn on one thread, in steps of `step`, and checks
/// each budget against its model after every step.
async fn alternate(mut first: Recorded, mut second: Recorded, step: Duration) {
    for round in 0..300 {
        tokio::time::advance(step).await;
        let now = tokio::time::Instant::now();
        first.deposit_at(now);
        second.deposit_at(now);
        first.deposit_at(now);

        assert_eq!(
            first.budget.available(),
            first.expected(),
            "first, round {round}"
        );
        assert_eq!(
            second.budget.available(),
            second.expected(),
            "second, round {round}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn tps_same_start_other_windows() {
    // Created at one instant, the budgets differ only in their slot length.
    let first = Recorded::new(Duration::from_secs(1));
    let second = Recorded::new(Duration::from_millis(700));
    alternate(first, second, Duration::from_millis(17)).await;
}

#[tokio::test(start_paused = true)]
async fn tps_same_window_other_starts() {
    // With the same slot length, the budgets differ only in their start.
    let first = Recorded::new(Duration::from_secs(1));
    tokio::time::advance(Duration::from_millis(50)).await;
    let second = Recorded::new(Duration::from_secs(1));
    alternate(first, second, Duration::from_millis(17)).await;
}

#[tokio::test(start_paused = true)]
async fn tps_earlier_instant_in_own_slot() {
    let mut budget = Recorded::new(Duration::from_secs(10));
    let created = tokio::time::Instant::now();
    // Slot 23 of 1 s. None of the earlier deposits below falls on its position in the ring
    // of ten, where a deposit that arrives late counts in the newer slot.
    tokio::time::advance(Duration::from_secs(23)).await;
    let now = tokio::time::Instant::now();

    budget.deposit_at(now);
    // 12 s ago is outside the window, 5 s ago inside it, and an instant before the
    // budget's start counts in its first slot, which has left the window.
    budget.deposit_at(now - Duration::from_secs(12));
    budget.deposit_at(now - Duration::from_secs(5));
    budget.deposit_at(created - Duration::from_secs(1));
    budget.deposit_at(now);

    assert_eq!(budget.expected(), 3);
    assert_eq!(budget.budget.available(), 3);
}

#[test]
fn tps_counts_every_concurrent_deposit() {
    // The threads use the real clock. A deposit counts for at least 54 s of the 60 s window,
    // far longer than the test runs.
    let budget = Arc::new(budget(0.5, 0.0, Duration::from_secs(60)));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let budget = Arc::clone(&budget);
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    budget.deposit();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }

    assert_eq!(budget.available(), 20_000);
}

#[test]
fn throttle_stays_within_bounds_concurrently() {
    let throttle = Arc::new(RetryThrottle::new(10, 0.5).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let throttle = Arc::clone(&throttle);
            std::thread::spawn(move || {
                for step in 0..20_000 {
                    throttle.record((step + thread) % 3 == 0);
                    let tokens = throttle.tokens();
                    assert!((0.0..=10.0).contains(&tokens), "tokens {tokens}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn tps_invalid_parameters_are_rejected() {
    let cases = [
        (
            TpsBudget::builder().retry_ratio(f64::NAN),
            "budget.retry_ratio",
            ConfigErrorKind::NotFinite,
        ),
        (
            TpsBudget::builder().retry_ratio(f64::INFINITY),
            "budget.retry_ratio",
            ConfigErrorKind::NotFinite,
        ),
        (
            TpsBudget::builder().retry_ratio(-0.1),
            "budget.retry_ratio",
            ConfigErrorKind::TooSmall,
        ),
        (
            TpsBudget::builder().retry_ratio(1000.5),
            "budget.retry_ratio",
            ConfigErrorKind::TooLarge,
        ),
        (
            TpsBudget::builder().min_retries_per_second(-1.0),
            "budget.min_retries_per_second",
            ConfigErrorKind::TooSmall,
        ),
        (
            TpsBudget::builder().min_retries_per_second(f64::NAN),
            "budget.min_retries_per_second",
            ConfigErrorKind::NotFinite,
        ),
        (
            TpsBudget::builder().window(Duration::ZERO),
            "budget.window",
            ConfigErrorKind::Zero,
        ),
        (
            TpsBudget::builder().window(-1.0),
            "budget.window",
            ConfigErrorKind::TooSmall,
        ),
        (
            TpsBudget::builder().window(f64::NAN),
            "budget.window",
            ConfigErrorKind::NotFinite,
        ),
    ];

    for (builder, field, kind) in cases {
        let error = builder.build().unwrap_err();
        assert_eq!(error.field(), field, "{error}");
        assert_eq!(error.kind(), kind, "{error}");
    }
}

#[test]
fn tps_limits_are_accepted() {
    let cases = [
        TpsBudget::builder().retry_ratio(0.0),
        TpsBudget::builder().retry_ratio(1000.0),
        TpsBudget::builder().min_retries_per_second(0.0),
        TpsBudget::builder().window(Duration::from_nanos(1)),
        TpsBudget::builder().window(Duration::MAX),
    ];
    for builder in cases {
        assert!(builder.build().is_ok(), "{builder:?}");
    }
}

#[test]
fn throttle_invalid_parameters_are_rejected() {
    let cases = [
        (0, 0.1, "throttle.max_tokens", ConfigErrorKind::Zero),
        (1001, 0.1, "throttle.max_tokens", ConfigErrorKind::TooLarge),
        (
            10,
            f64::NAN,
            "throttle.token_ratio",
            ConfigErrorKind::NotFinite,
        ),
        (
            10,
            f64::INFINITY,
            "throttle.token_ratio",
            ConfigErrorKind::NotFinite,
        ),
        (10, 0.0, "throttle.token_ratio", ConfigErrorKind::TooSmall),
        (10, -1.0, "throttle.token_ratio", ConfigErrorKind::TooSmall),
        (
            10,
            0.0004,
            "throttle.token_ratio",
            ConfigErrorKind::TooSmall,
        ),
    ];
    for (max_tokens, token_ratio, field, kind) in cases {
        let error = RetryThrottle::new(max_tokens, token_ratio).unwrap_err();
        assert_eq!(error.field(), field, "{error}");
        assert_eq!(error.kind(), kind, "{error}");
    }
}

#[test]
fn throttle_allows_retries_above_half() {
    let throttle = RetryThrottle::new(4, 1.6).unwrap();
    assert_eq!(throttle.tokens(), 4.0);

    throttle.record(false);
    assert_eq!(throttle.tokens(), 3.0);
    assert!(throttle.withdraw());

    // Two tokens of four is not more than half.
    throttle.record(false);
    assert_eq!(throttle.tokens(), 2.0);
    assert!(!throttle.withdraw());

    throttle.record(true);
    assert_eq!(throttle.tokens(), 3.6);
    assert!(throttle.withdraw());

    // A withdrawal takes nothing, and deposits change nothing.
    throttle.deposit();
    assert_eq!(throttle.tokens(), 3.6);
}

#[test]
fn throttle_stays_within_bounds_direct() {
    let throttle = RetryThrottle::new(10, 0.1).unwrap();

    for _ in 0..100_000 {
        throttle.record(true);
        assert!(throttle.tokens() <= 10.0, "tokens {}", throttle.tokens());
    }
    assert_eq!(throttle.tokens(), 10.0);

    for _ in 0..100_000 {
        throttle.record(false);
        assert!(throttle.tokens() >= 0.0, "tokens {}", throttle.tokens());
    }
    assert_eq!(throttle.tokens(), 0.0);
    assert!(!throttle.withdraw());

    // Recovery from empty: 51 successes reach 5.1 tokens, just above half.
    for _ in 0..50 {
        throttle.record(true);
    }
    assert!(!throttle.withdraw());
    throttle.record(true);
    assert!(throttle.withdraw());
}

/// A budget that forwards to a shared `RetryThrottle` and checks its bounds after every
/// outcome, so the layer's own calls are checked.
#[derive(Debug, Clone)]
struct CheckedThrottle {
    inner: Arc<RetryThrottle>,
    lowest: Arc<AtomicU64>,
    highest: Arc<AtomicU64>,
}

impl CheckedThrottle {
    fn new(max_tokens: u32, token_ratio: f64) -> Self {
        Self {
            inner: Arc::new(RetryThrottle::new(max_tokens, token_ratio).unwrap()),
            lowest: Arc::new(AtomicU64::new(u64::MAX)),
            highest: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The lowest and highest token counts seen, in thousandths of a token.
    fn range(&self) -> (f64, f64) {
        let lowest = self.lowest.load(Ordering::Relaxed) as f64 / 1000.0;
        let highest = self.highest.load(Ordering::Relaxed) as f64 / 1000.0;
        (lowest, highest)
    }
}

impl Budget for CheckedThrottle {
    fn deposit(&self) {
        self.inner.deposit();
    }

    fn withdraw(&self) -> bool {
        self.inner.withdraw()
    }

    fn record(&self, success: bool) {
        self.inner.record(success);
        let milli = (self.inner.tokens() * 1000.0).round() as u64;
        self.lowest.fetch_min(milli, Ordering::Relaxed);
        self.highest.fetch_max(milli, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Failed;

/// Sends `requests` requests through a layer with `budget` to a backend whose attempts all
/// succeed when `succeeds` is true and all fail otherwise, and returns how many attempts it
/// served.
async fn run_layer(budget: impl Budget + 'static, requests: u64, succeeds: bool) -> u64 {
    let attempts = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&attempts);
    let backend = tower::service_fn(move |_request: u64| {
        counter.fetch_add(1, Ordering::Relaxed);
        async move { if succeeds { Ok(()) } else { Err(Failed) } }
    });
    let policy = RetryPolicy::builder(on_error(|_: &Failed| true))
        .budget(budget)
        .max_attempts(3)
        .logging(Logging::off())
        .seed(1)
        .build()
        .unwrap();
    let service = RetryLayer::new(policy).layer(backend);

    for request in 0..requests {
        let _ = service.clone().oneshot(request).await;
    }
    attempts.load(Ordering::Relaxed)
}

#[tokio::test(start_paused = true)]
async fn throttle_stays_within_bounds_through_layer() {
    let healthy = CheckedThrottle::new(10, 0.1);
    let attempts = run_layer(healthy.clone(), 5000, true).await;
    assert_eq!(attempts, 5000);
    assert_eq!(healthy.range(), (10.0, 10.0));

    let failing = CheckedThrottle::new(10, 0.1);
    let attempts = run_layer(failing.clone(), 5000, false).await;
    let (lowest, highest) = failing.range();
    assert_eq!(lowest, 0.0);
    assert!(highest <= 10.0, "highest {highest}");
    assert_eq!(failing.inner.tokens(), 0.0);
    // Retries stop once 5 of the 10 tokens are gone: 5000 first attempts, and retries only
    // while more than half of the bucket is left.
    assert!(attempts <= 5005, "attempts {attempts}");
}

/// A budget that counts the layer's calls and forwards them to a real `TpsBudget`.
#[derive(Debug, Clone)]
struct CountingBudget {
    inner: Arc<TpsBudget>,
    deposits: Arc<AtomicU64>,
    withdrawals: Arc<AtomicU64>,
    records: Arc<AtomicU64>,
}

impl Budget for CountingBudget {
    fn deposit(&self) {
        self.deposits.fetch_add(1, Ordering::Relaxed);
        self.inner.deposit();
    }

    fn withdraw(&self) -> bool {
        self.withdrawals.fetch_add(1, Ordering::Relaxed);
        self.inner.withdraw()
    }

    fn record(&self, success: bool) {
        self.records.fetch_add(1, Ordering::Relaxed);
        self.inner.record(success);
    }
}

#[tokio::test(start_paused = true)]
async fn one_deposit_per_request() {
    let budget = CountingBudget {
        inner: Arc::new(TpsBudget::default()),
        deposits: Arc::new(AtomicU64::new(0)),
        withdrawals: Arc::new(AtomicU64::new(0)),
        records: Arc::new(AtomicU64::new(0)),
    };

    // Every request fails twice and then succeeds, so each uses all three attempts.
    let calls = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&calls);
    let backend = tower::service_fn(move |_request: u64| {
        let call = counter.fetch_add(1, Ordering::Relaxed);
        async move { if call % 3 == 2 { Ok(()) } else { Err(Failed) } }
    });
    let policy = RetryPolicy::builder(on_error(|_: &Failed| true))
        .budget(budget.clone())
        .max_attempts(3)
        .logging(Logging::off())
        .build()
        .unwrap();
    let service = RetryLayer::new(policy).layer(backend);

    for request in 0..20 {
        assert!(service.clone().oneshot(request).await.is_ok());
    }

    assert_eq!(budget.deposits.load(Ordering::Relaxed), 20);
    assert_eq!(budget.withdrawals.load(Ordering::Relaxed), 40);
    assert_eq!(budget.records.load(Ordering::Relaxed), 60);
    assert_eq!(calls.load(Ordering::Relaxed), 60);
}

#[tokio::test(start_paused = true)]
async fn default_budget_is_on() {
    let reasons = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorder = Arc::clone(&reasons);
    let backend = tower::service_fn(|_request: u64| async { Err::<(), _>(Failed) });
    let policy = RetryPolicy::builder(on_error(|_: &Failed| true))
        .max_attempts(3)
        .logging(Logging::off())
        .on_give_up(move |event: &Event<'_, (), Failed>| {
            recorder.lock().unwrap().push(event.reason());
        })
        .build()
        .unwrap();
    let service = RetryLayer::new(policy).layer(backend);

    // 200 requests that each need two retries need more than the floor of 10 retries per
    // second and 20% of the requests allow while they run.
    for request in 0..200 {
        assert!(service.clone().oneshot(request).await.is_err());
    }

    let reasons = reasons.lock().unwrap();
    let budget = reasons
        .iter()
        .filter(|&&reason| reason == Some(GiveUpReason::Budget))
        .count();
    assert_eq!(reasons.len(), 200);
    assert!(budget > 0, "the default budget never stopped a retry");
}

fn outage(failure_rate: f64) -> OutageConfig {
    OutageConfig {
        requests_per_second: 1000,
        duration: Duration::from_secs(60),
        failure_rate,
        max_attempts: 3,
        seed: 7,
    }
}

#[tokio::test(start_paused = true)]
async fn default_budget_caps_total_outage() {
    let result = sim::run_outage(outage(1.0), BudgetChoice::Default)
        .await
        .unwrap();

    assert_eq!(result.requests, 60_000);
    assert_eq!(result.successes, 0);
    assert!(
        result.load_multiplier() <= 1.25,
        "load multiplier {}",
        result.load_multiplier()
    );
}

#[tokio::test(start_paused = true)]
async fn no_budget_total_outage_uses_every_attempt() {
    let result = sim::run_outage(outage(1.0), BudgetChoice::None)
        .await
        .unwrap();

    assert_eq!(result.attempts, 3 * result.requests);
    assert_eq!(result.load_multiplier(), 3.0);
}

#[tokio::test(start_paused = true)]
async fn default_budget_blocks_nothing_at_low_failure() {
    let unlimited = sim::run_outage(outage(0.1), BudgetChoice::None)
        .await
        .unwrap();
    let budgeted = sim::run_outage(outage(0.1), BudgetChoice::Default)
        .await
        .unwrap();

    assert_eq!(budgeted.successes, unlimited.successes);
    assert_eq!(budgeted.attempts, unlimited.attempts);
    // Three attempts that each fail at 0.1 all fail for about one request in a thousand.
    assert!(
        unlimited.success_rate() > 0.998,
        "success rate {}",
        unlimited.success_rate()
    );
}

#[tokio::test(start_paused = true)]
async fn throttle_limits_total_outage() {
    let result = sim::run_outage(outage(1.0), BudgetChoice::Throttle)
        .await
        .unwrap();

    // Five failures empty the upper half of the bucket, and no success refills it.
    assert!(
        result.attempts <= result.requests + 5,
        "attempts {}",
        result.attempts
    );
}

#[tokio::test(start_paused = true)]
async fn throttle_ignores_fatal_outcomes() {
    let throttle = CheckedThrottle::new(10, 0.1);
    let attempts = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&attempts);
    let backend = tower::service_fn(move |_request: u64| {
        counter.fetch_add(1, Ordering::Relaxed);
        async move { Err::<(), _>(Failed) }
    });
    // Every error is fatal, like a stream of 404 responses from a healthy server.
    let policy = RetryPolicy::builder(on_error(|_: &Failed| false))
        .budget(throttle.clone())
        .logging(Logging::off())
        .build()
        .unwrap();
    let service = RetryLayer::new(policy).layer(backend);

    for request in 0..100 {
        let _ = service.clone().oneshot(request).await;
    }

    assert_eq!(attempts.load(Ordering::Relaxed), 100);
    assert_eq!(throttle.inner.tokens(), 10.0);
}
