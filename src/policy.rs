//! The retry policy: schedule, jitter, limits, classifier, hooks and budget in one value.

use crate::backoff::{Backoff, Exponential, Interval};
use crate::budget::{Budget, TpsBudget};
use crate::classify::Verdict;
use crate::hooks::{DelaySource, Event, GiveUpReason, Hooks, OnGiveUp, OnRetry, OnSuccess};
use crate::{ConfigError, ConfigErrorKind, Jitter, Logging};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// The complete configuration of a [`RetryLayer`](crate::RetryLayer).
///
/// Build one with [`RetryPolicy::builder`]; every value is checked when it is built.
///
/// | setting | default |
/// |---|---|
/// | backoff | [`Exponential`]: 100 ms, x2, cap 10 s |
/// | jitter | [`Jitter::Full`] |
/// | `max_attempts` | 3, counting the first attempt |
/// | `max_elapsed` | none |
/// | `max_retry_after` | 60 s |
/// | budget | [`TpsBudget::default`]: 20% of requests plus 10 retries per second over 10 s |
/// | logging | [`Logging::default`] |
///
/// ```
/// use std::time::Duration;
/// use tower_backoff::{backoff::Fibonacci, classify::HttpClassifier, Jitter, RetryPolicy};
///
/// let policy = RetryPolicy::builder(HttpClassifier::default())
///     .backoff(Fibonacci::new(Duration::from_millis(200)).max_delay(Duration::from_secs(5)))
///     .jitter(Jitter::Proportional(0.2))
///     .max_attempts(5)
///     .max_elapsed(Duration::from_secs(30))
///     .build()?;
/// assert_eq!(policy.max_attempts(), 5);
/// # Ok::<(), tower_backoff::ConfigError>(())
/// ```
pub struct RetryPolicy<C, B = Exponential, H = ()> {
    pub(crate) classifier: C,
    backoff: B,
    jitter: Jitter,
    max_attempts: u32,
    max_elapsed: Option<Duration>,
    max_retry_after: Duration,
    pub(crate) hooks: H,
    pub(crate) logging: Logging,
    budget: Option<PolicyBudget>,
    /// Whether the budget wants the outcome of each attempt, asked once at build time.
    budget_records: bool,
    seed: u64,
    /// Requests that have drawn a random number generator so far, which makes each request's
    /// generator different.
    rng_draws: AtomicU64,
}

impl<C> RetryPolicy<C> {
    /// Starts a policy with the given classifier and the defaults above.
    pub fn builder(classifier: C) -> RetryPolicyBuilder<C> {
        RetryPolicyBuilder {
            classifier,
            backoff: Exponential::default(),
            jitter: Jitter::default(),
            max_attempts: 3,
            max_elapsed: None,
            max_retry_after: Duration::from_secs(60).into(),
            hooks: (),
            logging: Logging::default(),
            budget: Some(PolicyBudget::Tps(TpsBudget::default())),
            seed: None,
        }
    }
}

impl<C, B, H> RetryPolicy<C, B, H> {
    /// The classifier.
    pub fn classifier(&self) -> &C {
        &self.classifier
    }

    /// The total number of attempts, counting the first.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The deadline over all attempts and sleeps, if any.
    pub fn max_elapsed(&self) -> Option<Duration> {
        self.max_elapsed
    }

    /// The maximum server-given delay the layer waits for.
    pub fn max_retry_after(&self) -> Duration {
        self.max_retry_after
    }

    #[inline]
    pub(crate) fn deposit(&self, now: Instant) {
        if let Some(budget) = &self.budget {
            budget.deposit_at(now);
        }
    }

    /// Reports an outcome to the budget, if it keeps outcomes.
    #[inline]
    fn record(&self, success: bool) {
        if !self.budget_records {
            return;
        }
        if let Some(budget) = &self.budget {
            budget.get().record(success);
        }
    }

    /// Creates the random number generator of one request.
    pub(crate) fn request_rng(&self) -> SmallRng {
        let draw = self.rng_draws.fetch_add(1, Ordering::Relaxed);
        // Multiplying by an odd constant maps distinct draws to distinct seeds.
        SmallRng::seed_from_u64(self.seed ^ draw.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

/// An upper bound on the time that tokio's timer adds to a sleep. The timer rounds the end
/// of a sleep up to the next whole-millisecond tick. It then parks for whole milliseconds
/// counted from the start of the current tick, which can add almost another millisecond
/// (tokio 1.54, `deadline_to_tick` in `runtime/time/source.rs` and `park_internal` in
/// `runtime/time/mod.rs`). The deadline check adds this time, so that the timer cannot
/// start a retry at or after the deadline.
const TIMER_ROUNDING: Duration = Duration::from_nanos(1_999_999);

/// The budget of a policy. A [`TpsBudget`], the default, is called directly, so that its
/// deposit on every request can be inlined. Any other budget is called through the trait.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "a policy has one budget and lives in an `Arc`, and boxing the default \
              budget would add a pointer to follow on every deposit"
)]
enum PolicyBudget {
    Tps(TpsBudget),
    Other(Box<dyn Budget>),
}

impl PolicyBudget {
    fn new<T: Budget + 'static>(budget: T) -> Self {
        let mut budget = Some(budget);
        let tps = (&mut budget as &mut dyn Any)
            .downcast_mut::<Option<TpsBudget>>()
            .and_then(Option::take);
        match (tps, budget) {
            (Some(tps), _) => Self::Tps(tps),
            (None, Some(other)) => Self::Other(Box::new(other)),
            // The downcast takes the budget only when it returns it.
            (None, None) => unreachable!("a budget is either taken as a TpsBudget or kept"),
        }
    }

    #[inline]
    fn get(&self) -> &dyn Budget {
        match self {
            Self::Tps(tps) => tps,
            Self::Other(other) => other.as_ref(),
        }
    }

    #[inline]
    fn deposit_at(&self, now: Instant) {
        match self {
            Self::Tps(tps) => tps.deposit_at(now),
            Self::Other(other) => other.deposit_at(now),
        }
    }
}

/// The limits that apply to one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_attempts: u32,
    pub(crate) max_elapsed: Option<Duration>,
}

impl Limits {
    /// Whether these limits leave room for a retry. A zero deadline, which only a
    /// per-request override can set, ends every request after its first attempt.
    #[inline]
    pub(crate) fn allow_retry(&self) -> bool {
        self.max_attempts > 1 && self.max_elapsed != Some(Duration::ZERO)
    }
}

/// The per-request state of the schedule, created at the first retry.
#[derive(Debug)]
pub(crate) struct ScheduleState<B> {
    backoff: B,
    rng: SmallRng,
}

/// What the future does after an attempt.
pub(crate) enum Decision {
    Return,
    Sleep(Duration),
}

impl<C, B: Backoff, H> RetryPolicy<C, B, H> {
    /// Decides what follows an attempt and runs the hooks and log events for it.
    ///
    /// A success, the common case, takes a short path that is inlined into the response
    /// future. A failure calls [`Self::decide_failure`].
    #[inline(always)]
    pub(crate) fn decide<Res, E>(
        &self,
        verdict: Verdict,
        outcome: &Result<Res, E>,
        attempt: u32,
        started: Instant,
        limits: Limits,
        schedule: &mut Option<ScheduleState<B>>,
    ) -> Decision
    where
        H: Hooks<Res, E>,
    {
        // Built only where it is read, so that a success with logging off and no hooks
        // builds none.
        let event = || Event {
            attempt,
            started,
            elapsed: None,
            next_delay: None,
            reason: None,
            outcome,
        };

        if verdict == Verdict::Success {
            self.record(true);
            self.logging.success_event(event);
            self.hooks.on_success(&event());
            return Decision::Return;
        }
        self.decide_failure(verdict, event(), limits, schedule)
    }

    /// Decides what follows a failed attempt: a sleep before the next one, or giving up.
    #[inline(never)]
    fn decide_failure<Res, E>(
        &self,
        verdict: Verdict,
        mut event: Event<'_, Res, E>,
        limits: Limits,
        schedule: &mut Option<ScheduleState<B>>,
    ) -> Decision
    where
        H: Hooks<Res, E>,
    {
        let server_delay = match verdict {
            Verdict::Retry(server_delay) => server_delay,
            Verdict::Fatal => return self.give_up(&mut event, GiveUpReason::NotRetryable),
            // `decide` handles a success before it calls this function.
            Verdict::Success => return Decision::Return,
        };
        self.record(false);

        // Measured after the attempt, so that a slow attempt counts towards the deadline.
        let elapsed = event.started.elapsed();
        event.elapsed = Some(elapsed);
        match self.next_delay(server_delay, event.attempt, elapsed, limits, schedule) {
            Ok(next_delay) => {
                event.next_delay = Some(next_delay);
                self.logging.retry_event(&event);
                self.hooks.on_retry(&event);
                Decision::Sleep(next_delay.0)
            }
            Err(reason) => self.give_up(&mut event, reason),
        }
    }

    pub(crate) fn give_up<Res, E>(
        &self,
        event: &mut Event<'_, Res, E>,
        reason: GiveUpReason,
    ) -> Decision
    where
        H: Hooks<Res, E>,
    {
        event.reason = Some(reason);
        self.logging.give_up_event(event, reason);
        self.hooks.on_give_up(event);
        Decision::Return
    }

    /// Returns the delay before the next attempt, or why there is none. The budget is asked
    /// last, so that a request that gives up for another reason spends nothing.
    fn next_delay(
        &self,
        server_delay: Option<Duration>,
        attempt: u32,
        elapsed: Duration,
        limits: Limits,
        schedule: &mut Option<ScheduleState<B>>,
    ) -> Result<(Duration, DelaySource), GiveUpReason> {
        if attempt >= limits.max_attempts {
            return Err(GiveUpReason::Exhausted);
        }

        let state = schedule.get_or_insert_with(|| ScheduleState {
            backoff: self.backoff.clone(),
            rng: self.request_rng(),
        });
        // The schedule advances even when the server sets this delay. Later delays keep
        // growing, and a finite schedule limits the retries in both cases.
        let scheduled = state
            .backoff
            .next_delay(&mut state.rng)
            .ok_or(GiveUpReason::ScheduleEnded)?;

        let next_delay = match server_delay {
            Some(delay) if delay > self.max_retry_after => {
                return Err(GiveUpReason::ServerDelayTooLong);
            }
            Some(delay) => (delay, DelaySource::Server),
            None => (
                self.jittered(scheduled, &state.backoff, &mut state.rng),
                DelaySource::Schedule,
            ),
        };

        if let Some(max_elapsed) = limits.max_elapsed {
            let wake = elapsed
                .checked_add(next_delay.0)
                .and_then(|wake| wake.checked_add(TIMER_ROUNDING));
            if wake.is_none_or(|wake| wake >= max_elapsed) {
                return Err(GiveUpReason::Deadline);
            }
        }

        if let Some(budget) = &self.budget {
            if !budget.get().withdraw() {
                return Err(GiveUpReason::Budget);
            }
        }

        Ok(next_delay)
    }

    fn jittered(&self, delay: Duration, backoff: &B, rng: &mut SmallRng) -> Duration {
        let jittered = self.jitter.apply(delay, rng);
        match backoff.max_delay() {
            Some(cap) => jittered.min(cap),
            None => jittered,
        }
    }

    /// Returns the limits for a request, after the classifier's per-request overrides.
    #[inline]
    pub(crate) fn limits(
        &self,
        max_attempts: Option<u32>,
        max_elapsed: Option<Duration>,
    ) -> Limits {
        Limits {
            max_attempts: max_attempts.unwrap_or(self.max_attempts).max(1),
            max_elapsed: max_elapsed.or(self.max_elapsed),
        }
    }
}

impl<C: fmt::Debug, B: fmt::Debug, H> fmt::Debug for RetryPolicy<C, B, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("classifier", &self.classifier)
            .field("backoff", &self.backoff)
            .field("jitter", &self.jitter)
            .field("max_attempts", &self.max_attempts)
            .field("max_elapsed", &self.max_elapsed)
            .field("max_retry_after", &self.max_retry_after)
            .field("logging", &self.logging)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// A builder for [`RetryPolicy`]. Values are checked in [`build`](Self::build).
#[must_use]
pub struct RetryPolicyBuilder<C, B = Exponential, H = ()> {
    classifier: C,
    backoff: B,
    jitter: Jitter,
    max_attempts: u32,
    max_elapsed: Option<Interval>,
    max_retry_after: Interval,
    hooks: H,
    logging: Logging,
    budget: Option<PolicyBudget>,
    seed: Option<u64>,
}

impl<C, B, H> RetryPolicyBuilder<C, B, H> {
    /// Sets the backoff schedule (default [`Exponential::default`]).
    pub fn backoff<B2: Backoff>(self, backoff: B2) -> RetryPolicyBuilder<C, B2, H> {
        RetryPolicyBuilder {
            classifier: self.classifier,
            backoff,
            jitter: self.jitter,
            max_attempts: self.max_attempts,
            max_elapsed: self.max_elapsed,
            max_retry_after: self.max_retry_after,
            hooks: self.hooks,
            logging: self.logging,
            budget: self.budget,
            seed: self.seed,
        }
    }

    /// Sets the jitter (default [`Jitter::Full`]).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the total number of attempts, counting the first (default 3). Zero is rejected.
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Sets one deadline over all attempts and sleeps of a request (default none).
    ///
    /// Elapsed time is measured after each attempt. A sleep that would end at or after the
    /// deadline is not taken: the last outcome is returned at once. Because tokio's timer
    /// can end a sleep up to 2 ms late, a sleep that would end less than 2 ms before the
    /// deadline is not taken either. An attempt in flight is not cancelled; put
    /// `tower::timeout` inside the retry layer for that.
    ///
    /// The wait for the inner service's readiness before a retry is not bounded either,
    /// because the failed outcome is released before the sleep and nothing is left to
    /// return. Put `tower::load_shed` inside the retry layer to turn an unready service into
    /// an error, which the deadline then ends. Below `load_shed`, a `ConcurrencyLimit` that
    /// is full sheds every retry until a permit is free for the retry's own clone. A clone
    /// that the caller keeps after a shed call stays queued for the next permit, and takes it.
    pub fn max_elapsed(mut self, max_elapsed: impl Into<Interval>) -> Self {
        self.max_elapsed = Some(max_elapsed.into());
        self
    }

    /// Sets the maximum server-given delay the layer waits for (default 60 s). When a server
    /// requests a longer delay, its response is returned at once.
    pub fn max_retry_after(mut self, max_retry_after: impl Into<Interval>) -> Self {
        self.max_retry_after = max_retry_after.into();
        self
    }

    /// Sets the levels of the `tracing` events (default [`Logging::default`]).
    pub fn logging(mut self, logging: Logging) -> Self {
        self.logging = logging;
        self
    }

    /// Sets the retry budget shared by every clone of the layer (default
    /// [`TpsBudget::default`]).
    pub fn budget(mut self, budget: impl Budget + 'static) -> Self {
        self.budget = Some(PolicyBudget::new(budget));
        self
    }

    /// Removes the retry budget.
    pub fn no_budget(mut self) -> Self {
        self.budget = None;
        self
    }

    /// Seeds the random number generators, for reproducible jitter. Each request still
    /// draws its own sequence. Without a seed, one is drawn from the operating system.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Adds a closure that runs before each retry.
    pub fn on_retry<F>(self, hook: F) -> RetryPolicyBuilder<C, B, OnRetry<H, F>> {
        self.map_hooks(|hooks| OnRetry::new(hooks, hook))
    }

    /// Adds a closure that runs when the layer returns a failed outcome.
    pub fn on_give_up<F>(self, hook: F) -> RetryPolicyBuilder<C, B, OnGiveUp<H, F>> {
        self.map_hooks(|hooks| OnGiveUp::new(hooks, hook))
    }

    /// Adds a closure that runs when the layer returns a successful outcome.
    pub fn on_success<F>(self, hook: F) -> RetryPolicyBuilder<C, B, OnSuccess<H, F>> {
        self.map_hooks(|hooks| OnSuccess::new(hooks, hook))
    }

    /// Replaces the hooks with any [`Hooks`] implementation.
    pub fn hooks<H2>(self, hooks: H2) -> RetryPolicyBuilder<C, B, H2> {
        self.map_hooks(|_| hooks)
    }

    fn map_hooks<H2>(self, map: impl FnOnce(H) -> H2) -> RetryPolicyBuilder<C, B, H2> {
        RetryPolicyBuilder {
            classifier: self.classifier,
            backoff: self.backoff,
            jitter: self.jitter,
            max_attempts: self.max_attempts,
            max_elapsed: self.max_elapsed,
            max_retry_after: self.max_retry_after,
            hooks: map(self.hooks),
            logging: self.logging,
            budget: self.budget,
            seed: self.seed,
        }
    }

    /// Checks every value and builds the policy.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first invalid field and its value: zero attempts, a
    /// negative or non-finite interval, a schedule whose cap is below its initial delay, a
    /// growth factor below 1 or NaN, or a jitter fraction outside `[0, 1]`.
    pub fn build(self) -> Result<RetryPolicy<C, B, H>, ConfigError>
    where
        B: Backoff,
    {
        if self.max_attempts == 0 {
            return Err(ConfigError::new(
                "max_attempts",
                0,
                ConfigErrorKind::Zero,
                "at least 1, counting the first attempt",
            ));
        }
        self.backoff.validate()?;
        self.jitter.validate()?;
        let max_elapsed = self
            .max_elapsed
            .map(|interval| interval.validate("max_elapsed"))
            .transpose()?;
        if max_elapsed == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                "max_elapsed",
                Duration::ZERO,
                ConfigErrorKind::Zero,
                "a deadline above zero; use max_attempts(1) for no retries",
            ));
        }
        let max_retry_after = self.max_retry_after.validate("max_retry_after")?;

        Ok(RetryPolicy {
            classifier: self.classifier,
            backoff: self.backoff,
            jitter: self.jitter,
            max_attempts: self.max_attempts,
            max_elapsed,
            max_retry_after,
            hooks: self.hooks,
            logging: self.logging,
            budget_records: self
                .budget
                .as_ref()
                .is_some_and(|budget| budget.get().records_outcomes()),
            budget: self.budget,
            seed: self.seed.unwrap_or_else(rand::random),
            rng_draws: AtomicU64::new(0),
        })
    }
}

impl<C: fmt::Debug, B: fmt::Debug, H> fmt::Debug for RetryPolicyBuilder<C, B, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicyBuilder")
            .field("classifier", &self.classifier)
            .field("backoff", &self.backoff)
            .field("jitter", &self.jitter)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}
