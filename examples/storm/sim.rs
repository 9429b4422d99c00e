//! The simulation core of the `storm` example: two studies that drive the real
//! [`RetryLayer`] around a fake backend on paused tokio time.
//!
//! The example prints and plots the results, and `tests/budget.rs` and
//! `tests/decorrelated.rs` include this file with `#[path]` to check the same figures, so
//! both run one piece of code. Every function here must run inside a runtime whose clock is
//! paused, so that simulated minutes take milliseconds and every run is reproducible.

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_backoff::backoff::{Decorrelated, Exponential};
use tower_backoff::budget::RetryThrottle;
use tower_backoff::classify::on_error;
use tower_backoff::{Jitter, Logging, RetryLayer, RetryPolicy};

/// The error type of the simulation functions.
pub type SimError = Box<dyn Error + Send + Sync>;

/// The retry limit each outage policy applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetChoice {
    /// No budget: every request may use all its attempts.
    None,
    /// The layer's default budget: 20% of requests plus 10 retries per second over 10 s.
    Default,
    /// gRPC-style throttling with 10 tokens and a token ratio of 0.1.
    Throttle,
}

impl BudgetChoice {
    /// Every choice, in the order the example prints them.
    pub const ALL: [BudgetChoice; 3] = [Self::None, Self::Default, Self::Throttle];

    /// The name used in tables and CSV rows.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "no_budget",
            Self::Default => "default_budget",
            Self::Throttle => "throttle",
        }
    }
}

/// The parameters of one outage run.
#[derive(Debug, Clone, Copy)]
pub struct OutageConfig {
    /// New requests per second, sent open-loop: arrivals do not wait for earlier requests.
    pub requests_per_second: u32,
    /// How long new requests arrive, in simulated time.
    pub duration: Duration,
    /// The probability that one attempt fails, between 0 and 1.
    pub failure_rate: f64,
    /// The attempts per request, counting the first.
    pub max_attempts: u32,
    /// The seed of the backend's failures and of the policy's jitter.
    pub seed: u64,
}

/// The counts of one outage run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutageResult {
    /// Requests sent to the layer.
    pub requests: u64,
    /// Attempts that reached the backend, first attempts included.
    pub attempts: u64,
    /// Requests that ended with a success.
    pub successes: u64,
}

impl OutageResult {
    /// Returns the attempts per request: 1 means no retries reached the backend.
    pub fn load_multiplier(&self) -> f64 {
        self.attempts as f64 / self.requests.max(1) as f64
    }

    /// Returns the share of requests that ended with a success.
    pub fn success_rate(&self) -> f64 {
        self.successes as f64 / self.requests.max(1) as f64
    }
}

/// The backend's error: the attempt failed and may be retried.
#[derive(Debug)]
pub struct Unavailable;

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("service unavailable")
    }
}

impl Error for Unavailable {}

/// One logical request. Its clones share the attempt counter, so the backend can tell which
/// attempt of which request it serves.
#[derive(Debug, Clone)]
struct Call {
    id: u64,
    attempts: Arc<AtomicU32>,
}

/// Sends `requests_per_second * duration` requests through a [`RetryLayer`] to a backend
/// whose attempts fail independently at `failure_rate`, and counts attempts and successes.
///
/// Whether an attempt fails depends only on the seed, the request and the attempt number,
/// so two runs with the same seed see the same failures, and their success rates differ
/// only where a budget stopped a retry.
pub async fn run_outage(
    config: OutageConfig,
    budget: BudgetChoice,
) -> Result<OutageResult, SimError> {
    let attempts = Arc::new(AtomicU64::new(0));
    let backend = {
        let attempts = Arc::clone(&attempts);
        let OutageConfig {
            failure_rate, seed, ..
        } = config;
        tower::service_fn(move |call: Call| {
            attempts.fetch_add(1, Ordering::Relaxed);
            let attempt = call.attempts.fetch_add(1, Ordering::Relaxed);
            let fails = attempt_draw(seed, call.id, attempt) < failure_rate;
            async move { if fails { Err(Unavailable) } else { Ok(()) } }
        })
    };

    let builder = RetryPolicy::builder(on_error(|_: &Unavailable| true))
        .max_attempts(config.max_attempts)
        .logging(Logging::off())
        .seed(config.seed);
    let policy = match budget {
        BudgetChoice::None => builder.no_budget().build()?,
        BudgetChoice::Default => builder.build()?,
        BudgetChoice::Throttle => builder.budget(RetryThrottle::new(10, 0.1)?).build()?,
    };
    let service = RetryLayer::new(policy).layer(backend);

    let requests = u64::from(config.requests_per_second) * config.duration.as_secs();
    let start = Instant::now();
    let mut handles = Vec::with_capacity(usize::try_from(requests)?);
    for id in 0..requests {
        let arrival =
            start + Duration::from_secs_f64(id as f64 / f64::from(config.requests_per_second));
        tokio::time::sleep_until(arrival).await;
        let call = Call {
            id,
            attempts: Arc::new(AtomicU32::new(0)),
        };
        handles.push(tokio::spawn(service.clone().oneshot(call)));
    }

    let mut successes = 0;
    for handle in handles {
        if handle.await?.is_ok() {
            successes += 1;
        }
    }

    Ok(OutageResult {
        requests,
        attempts: attempts.load(Ordering::Relaxed),
        successes,
    })
}

/// Returns a uniform number in `[0, 1)` for one attempt of one request.
fn attempt_draw(seed: u64, request: u64, attempt: u32) -> f64 {
    // Odd multipliers map distinct requests and attempts to distinct seeds.
    let mixed = seed
        ^ request.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(attempt).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    SmallRng::seed_from_u64(mixed).random::<f64>()
}

/// A delay schedule in the contention study.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Exponential backoff without jitter: every client that failed together retries
    /// together.
    Exponential,
    /// Exponential backoff with full jitter, `U(0, d)`.
    Full,
    /// Exponential backoff with equal jitter, `d/2 + U(0, d/2)`.
    Equal,
    /// Decorrelated jitter, `min(cap, U(base, 3 * previous))`, with no further jitter.
    Decorrelated,
}

impl Schedule {
    /// Every schedule, in the order the example prints them.
    pub const ALL: [Schedule; 4] = [
        Self::Exponential,
        Self::Full,
        Self::Equal,
        Self::Decorrelated,
    ];

    /// The name used in tables and CSV rows.
    pub fn name(self) -> &'static str {
        match self {
            Self::Exponential => "exponential",
            Self::Full => "full_jitter",
            Self::Equal => "equal_jitter",
            Self::Decorrelated => "decorrelated",
        }
    }
}

/// The smallest delay of every schedule in the contention study.
pub const CONTENTION_BASE: Duration = Duration::from_millis(10);

/// The cap of every schedule in the contention study.
pub const CONTENTION_CAP: Duration = Duration::from_secs(1);

/// The time between a call's read of the version and its compare-and-swap.
pub const WRITE_LATENCY: Duration = Duration::from_millis(5);

/// The attempt limit in the contention study, high enough that no client gives up in the
/// runs the example makes.
pub const CONTENTION_MAX_ATTEMPTS: u32 = 1000;

/// The counts of one contention run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentionResult {
    /// Calls that reached the resource, successful or not.
    pub total_calls: u64,
    /// The simulated time until the last client finished.
    pub completion: Duration,
    /// Clients that reached the attempt limit without a successful write.
    pub gave_up: u64,
}

/// Starts `clients` clients at the same instant, each of which must write once to one
/// resource under optimistic concurrency control, and counts the calls until all finish.
///
/// A call reads the resource's version, waits [`WRITE_LATENCY`], and then writes with a
/// compare-and-swap on that version. It fails, and is retried after the schedule's delay,
/// when another call wrote in between. There is no budget, so the schedule alone spreads
/// the retries.
pub async fn run_contention(
    schedule: Schedule,
    clients: u32,
    seed: u64,
) -> Result<ContentionResult, SimError> {
    let version = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let backend = {
        let calls = Arc::clone(&calls);
        tower::service_fn(move |_write: ()| {
            calls.fetch_add(1, Ordering::Relaxed);
            let version = Arc::clone(&version);
            let read = version.load(Ordering::Acquire);
            async move {
                tokio::time::sleep(WRITE_LATENCY).await;
                version
                    .compare_exchange(read, read + 1, Ordering::AcqRel, Ordering::Acquire)
                    .map(drop)
                    .map_err(|_| Unavailable)
            }
        })
    };

    let builder = RetryPolicy::builder(on_error(|_: &Unavailable| true))
        .max_attempts(CONTENTION_MAX_ATTEMPTS)
        .no_budget()
        .logging(Logging::off())
        .seed(seed);
    let exponential = Exponential::new(CONTENTION_BASE).max_delay(CONTENTION_CAP);
    let start = Instant::now();
    let outcomes = match schedule {
        Schedule::Exponential => {
            let policy = builder.backoff(exponential).jitter(Jitter::None).build()?;
            spawn_clients(RetryLayer::new(policy).layer(backend), clients).await?
        }
        Schedule::Full => {
            let policy = builder.backoff(exponential).jitter(Jitter::Full).build()?;
            spawn_clients(RetryLayer::new(policy).layer(backend), clients).await?
        }
        Schedule::Equal => {
            let policy = builder.backoff(exponential).jitter(Jitter::Equal).build()?;
            spawn_clients(RetryLayer::new(policy).layer(backend), clients).await?
        }
        Schedule::Decorrelated => {
            let decorrelated = Decorrelated::new(CONTENTION_BASE).max_delay(CONTENTION_CAP);
            let policy = builder.backoff(decorrelated).jitter(Jitter::None).build()?;
            spawn_clients(RetryLayer::new(policy).layer(backend), clients).await?
        }
    };

    let completion = outcomes
        .iter()
        .map(|(_, finished)| finished.duration_since(start))
        .max()
        .unwrap_or_default();
    let gave_up = outcomes.iter().filter(|(succeeded, _)| !succeeded).count();
    Ok(ContentionResult {
        total_calls: calls.load(Ordering::Relaxed),
        completion,
        gave_up: u64::try_from(gave_up)?,
    })
}

/// Starts one request per client at once on `service`, and returns for each client whether
/// it succeeded and when it finished.
async fn spawn_clients<S>(service: S, clients: u32) -> Result<Vec<(bool, Instant)>, SimError>
where
    S: tower::Service<(), Response = (), Error = Unavailable> + Clone + Send + 'static,
    S::Future: Send,
{
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move {
                let outcome = service.oneshot(()).await;
                (outcome.is_ok(), Instant::now())
            })
        })
        .collect();

    let mut outcomes = Vec::with_capacity(handles.len());
    for handle in handles {
        outcomes.push(handle.await?);
    }
    Ok(outcomes)
}
