use super::Budget;
use crate::backoff::Interval;
use crate::{ConfigError, ConfigErrorKind};
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// The number of time slots the window is divided into. A deposit or withdrawal expires
/// when its slot leaves the window, so it counts for between 9/10 of the window and the
/// whole window.
const SLOTS: usize = 10;

/// A sliding-window retry budget: retries may add at most `retry_ratio` of the requests
/// seen in the last `window`, plus `min_retries_per_second`.
///
/// The defaults are a ratio of 0.2 (20%), 10 retries per second and a 10 s window, the
/// defaults of Finagle's `RetryBudget` since Finagle 6.31. Under a total outage at 1,000
/// requests per second they let through about 200 + 10 retries per second, so the backend
/// receives about 1.21 attempts per request instead of `max_attempts`.
///
/// The floor is kept as a reserve of `min_retries_per_second * window` retries that every
/// window starts with, so a client with little traffic can still retry.
///
/// Time comes from [`tokio::time::Instant`], so `tokio::time::pause()` controls the window
/// in tests. The hot path uses a ring of ten time slots with one atomic counter each for
/// deposits and withdrawals, and takes no lock.
///
/// NOTE: Withdrawals that race each other all see the same balance, so concurrent
/// withdrawals may overdraw the budget by up to the number of threads withdrawing at once.
///
/// ```
/// use std::time::Duration;
/// use tower_backoff::budget::{Budget, TpsBudget};
///
/// let budget = TpsBudget::builder()
///     .retry_ratio(0.5)
///     .min_retries_per_second(0.0)
///     .window(Duration::from_secs(10))
///     .build()?;
///
/// for _ in 0..4 {
///     budget.deposit();
/// }
/// // Four requests earn two retries at a ratio of 0.5, and there is no floor.
/// assert!(budget.withdraw());
/// assert!(budget.withdraw());
/// assert!(!budget.withdraw());
/// # Ok::<(), tower_backoff::ConfigError>(())
/// ```
pub struct TpsBudget {
    retry_ratio: f64,
    min_retries_per_second: f64,
    window: Duration,
    /// Retries available in every window whatever the traffic: the floor times the window
    /// in seconds.
    reserve: f64,
    /// The length of one slot in nanoseconds, at least 1.
    slot_nanos: u64,
    /// The time slot numbers are counted from.
    start: Instant,
    deposits: [SlotCounter; SLOTS],
    withdrawals: [SlotCounter; SLOTS],
}

impl TpsBudget {
    /// Starts a builder with the default ratio, floor and window.
    pub fn builder() -> TpsBudgetBuilder {
        TpsBudgetBuilder::default()
    }

    /// The share of recent requests that may be retried, such as 0.2 for 20%.
    pub fn retry_ratio(&self) -> f64 {
        self.retry_ratio
    }

    /// The retries per second allowed whatever the traffic.
    pub fn min_retries_per_second(&self) -> f64 {
        self.min_retries_per_second
    }

    /// The length of the sliding window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Returns the number of retries the budget would allow now, rounded down.
    ///
    /// This is a snapshot: other clones of the layer may deposit or withdraw at once.
    pub fn available(&self) -> u64 {
        let (deposits, withdrawals) = self.totals(self.current_slot());
        let balance = self.balance(deposits, withdrawals);
        if balance <= 0.0 {
            0
        } else {
            // A float-to-integer cast saturates, so an unlimited reserve gives `u64::MAX`.
            balance as u64
        }
    }

    /// Returns the number of the time slot that contains the current instant.
    fn current_slot(&self) -> u64 {
        self.slot_at(Instant::now())
    }

    /// Returns the number of the time slot that contains `now`.
    ///
    /// Each thread remembers the last slot it computed, with the instants where that slot
    /// starts and ends, so that the deposits of one slot on one thread compare instants
    /// instead of subtracting and dividing them.
    #[inline]
    fn slot_at(&self, now: Instant) -> u64 {
        if let Some(last) = LAST_SLOT.with(Cell::get) {
            if last.budget_start == self.start
                && last.slot_nanos == self.slot_nanos
                && last.slot_start <= now
                && now < last.slot_end
            {
                return last.slot;
            }
        }
        self.compute_slot(now)
    }

    /// Computes the slot that contains `now`, and remembers it for this thread.
    #[inline(never)]
    fn compute_slot(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start);
        // A u64 of nanoseconds lasts 584 years, and a 64-bit division is several times
        // cheaper than the 128-bit one.
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let slot = nanos / self.slot_nanos;

        // The product is at most `nanos`, so it cannot overflow. A slot whose end does not
        // fit an `Instant` is not remembered.
        let slot_start = self
            .start
            .checked_add(Duration::from_nanos(slot * self.slot_nanos));
        let slot_end =
            slot_start.and_then(|start| start.checked_add(Duration::from_nanos(self.slot_nanos)));
        if let (Some(slot_start), Some(slot_end)) = (slot_start, slot_end) {
            LAST_SLOT.with(|last| {
                last.set(Some(LastSlot {
                    budget_start: self.start,
                    slot_nanos: self.slot_nanos,
                    slot,
                    slot_start,
                    slot_end,
                }));
            });
        }
        slot
    }

    /// Sums the deposits and withdrawals of the slots that are still inside the window.
    fn totals(&self, slot: u64) -> (u64, u64) {
        let deposits = self.deposits.iter().map(|counter| counter.live(slot)).sum();
        let withdrawals = self
            .withdrawals
            .iter()
            .map(|counter| counter.live(slot))
            .sum();
        (deposits, withdrawals)
    }

    /// Returns the retries left: the earned share of requests plus the reserve, minus the
    /// retries already taken.
    fn balance(&self, deposits: u64, withdrawals: u64) -> f64 {
        self.retry_ratio * deposits as f64 + self.reserve - withdrawals as f64
    }
}

/// The last slot that a thread computed. It is valid for every budget with the same start
/// and slot length, because those two decide the slot of an instant.
#[derive(Clone, Copy)]
struct LastSlot {
    budget_start: Instant,
    slot_nanos: u64,
    slot: u64,
    slot_start: Instant,
    slot_end: Instant,
}

thread_local! {
    static LAST_SLOT: Cell<Option<LastSlot>> = const { Cell::new(None) };
}

impl Default for TpsBudget {
    /// Creates a budget of 20% of requests plus 10 retries per second over 10 s.
    fn default() -> Self {
        TpsBudgetBuilder::default().build_valid()
    }
}

impl Budget for TpsBudget {
    fn deposit(&self) {
        self.deposit_at(Instant::now());
    }

    #[inline]
    fn deposit_at(&self, now: Instant) {
        let slot = self.slot_at(now);
        self.deposits[slot_index(slot)].increment(slot);
    }

    fn records_outcomes(&self) -> bool {
        false
    }

    fn withdraw(&self) -> bool {
        let slot = self.current_slot();
        let (deposits, withdrawals) = self.totals(slot);
        if self.balance(deposits, withdrawals) < 1.0 {
            return false;
        }
        self.withdrawals[slot_index(slot)].increment(slot);
        true
    }
}

impl fmt::Debug for TpsBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TpsBudget")
            .field("retry_ratio", &self.retry_ratio)
            .field("min_retries_per_second", &self.min_retries_per_second)
            .field("window", &self.window)
            .field("available", &self.available())
            .finish()
    }
}

/// A builder for [`TpsBudget`]. Values are checked in [`build`](Self::build).
///
/// ```
/// use tower_backoff::{budget::TpsBudget, ConfigErrorKind};
///
/// // 25% of requests plus 5 retries per second, over 30 s.
/// let budget = TpsBudget::builder()
///     .retry_ratio(0.25)
///     .min_retries_per_second(5.0)
///     .window(30.0)
///     .build()?;
/// assert_eq!(budget.window().as_secs(), 30);
///
/// let error = TpsBudget::builder().retry_ratio(f64::NAN).build().unwrap_err();
/// assert_eq!(error.field(), "budget.retry_ratio");
/// assert_eq!(error.kind(), ConfigErrorKind::NotFinite);
/// # Ok::<(), tower_backoff::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct TpsBudgetBuilder {
    retry_ratio: f64,
    min_retries_per_second: f64,
    window: Interval,
}

impl Default for TpsBudgetBuilder {
    fn default() -> Self {
        Self {
            retry_ratio: 0.2,
            min_retries_per_second: 10.0,
            window: Duration::from_secs(10).into(),
        }
    }
}

impl TpsBudgetBuilder {
    /// Sets the share of recent requests that may be retried (default 0.2). It must be
    /// finite and between 0 and 1000.
    pub fn retry_ratio(mut self, retry_ratio: f64) -> Self {
        self.retry_ratio = retry_ratio;
        self
    }

    /// Sets the retries per second allowed whatever the traffic (default 10). It must be
    /// finite and not negative.
    pub fn min_retries_per_second(mut self, min_retries_per_second: f64) -> Self {
        self.min_retries_per_second = min_retries_per_second;
        self
    }

    /// Sets the length of the sliding window (default 10 s). It must be above zero.
    pub fn window(mut self, window: impl Into<Interval>) -> Self {
        self.window = window.into();
        self
    }

    /// Checks every value and builds the budget. The window starts now.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first invalid field and its value: a ratio that is NaN,
    /// infinite, negative or above 1000, a floor that is NaN, infinite or negative, or a
    /// window that is zero, negative or not finite.
    pub fn build(self) -> Result<TpsBudget, ConfigError> {
        self.validate()?;
        Ok(self.build_valid())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let ratio = self.retry_ratio;
        if !ratio.is_finite() {
            return Err(ConfigError::new(
                "budget.retry_ratio",
                ratio,
                ConfigErrorKind::NotFinite,
                "a finite ratio between 0 and 1000",
            ));
        }
        if !(0.0..=1000.0).contains(&ratio) {
            return Err(ConfigError::new(
                "budget.retry_ratio",
                ratio,
                if ratio < 0.0 {
                    ConfigErrorKind::TooSmall
                } else {
                    ConfigErrorKind::TooLarge
                },
                "a finite ratio between 0 and 1000",
            ));
        }

        let floor = self.min_retries_per_second;
        if !(floor.is_finite() && floor >= 0.0) {
            return Err(ConfigError::new(
                "budget.min_retries_per_second",
                floor,
                if floor.is_finite() {
                    ConfigErrorKind::TooSmall
                } else {
                    ConfigErrorKind::NotFinite
                },
                "a finite number of retries per second, 0 or more",
            ));
        }

        let window = self.window.validate("budget.window")?;
        if window.is_zero() {
            return Err(ConfigError::new(
                "budget.window",
                window,
                ConfigErrorKind::Zero,
                "a window above zero",
            ));
        }
        Ok(())
    }

    /// Builds the budget from values that [`validate`](Self::validate) accepted.
    fn build_valid(self) -> TpsBudget {
        let window = self.window.get();
        TpsBudget {
            retry_ratio: self.retry_ratio,
            min_retries_per_second: self.min_retries_per_second,
            window,
            reserve: self.min_retries_per_second * window.as_secs_f64(),
            slot_nanos: u64::try_from(window.as_nanos() / SLOTS as u128)
                .unwrap_or(u64::MAX)
                .max(1),
            start: Instant::now(),
            deposits: Default::default(),
            withdrawals: Default::default(),
        }
    }
}

/// Returns the position of a time slot in the ring.
#[inline]
fn slot_index(slot: u64) -> usize {
    // The remainder is below `SLOTS`, so the cast cannot truncate.
    (slot % SLOTS as u64) as usize
}

/// A counter for one position of the ring, packed with the slot number it counts for, so
/// that one compare-and-swap both resets a stale slot and counts.
///
/// The upper 32 bits are the low 32 bits of the slot number, and the lower 32 bits are the
/// count, which saturates at `u32::MAX`.
#[derive(Debug, Default)]
struct SlotCounter(AtomicU64);

impl SlotCounter {
    /// Adds one to the count of `slot`, first clearing what an older slot left here.
    #[inline]
    fn increment(&self, slot: u64) {
        let tag = slot_tag(slot);
        // The closure always returns `Some`, so the update cannot fail.
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |packed| {
                let stored = packed >> 32;
                // The stored slot is ours or newer: a thread that read the clock just
                // before a newer slot began may arrive after that slot was written, and
                // then counts into the newer slot.
                let ahead = stored.wrapping_sub(tag) & u64::from(u32::MAX);
                if ahead < 1 << 31 {
                    let count = (packed as u32).saturating_add(1);
                    Some(stored << 32 | u64::from(count))
                } else {
                    Some(tag << 32 | 1)
                }
            });
    }

    /// Returns the count if it belongs to one of the `SLOTS` slots ending at `current`, and
    /// zero otherwise.
    ///
    /// NOTE: Slot numbers are compared modulo 2^32, so a position left untouched for about
    /// 2^32 slots (136 years with the default window) could be counted once more.
    fn live(&self, current: u64) -> u64 {
        let packed = self.0.load(Ordering::Acquire);
        let age = slot_tag(current).wrapping_sub(packed >> 32) & u64::from(u32::MAX);
        if age < SLOTS as u64 {
            u64::from(packed as u32)
        } else {
            0
        }
    }
}

/// Returns the low 32 bits of a slot number.
#[inline]
fn slot_tag(slot: u64) -> u64 {
    slot & u64::from(u32::MAX)
}
