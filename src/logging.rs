//! The `tracing` events the layer emits by default.

use crate::hooks::{Event, GiveUpReason};
use std::time::Duration;
use tracing::Level;
use tracing::level_filters::LevelFilter;

/// Emits a `tracing` event at a level chosen at run time.
macro_rules! emit {
    ($level:expr, $($fields:tt)+) => {
        match $level {
            Level::ERROR => tracing::event!(target: "tower_backoff", Level::ERROR, $($fields)+),
            Level::WARN => tracing::event!(target: "tower_backoff", Level::WARN, $($fields)+),
            Level::INFO => tracing::event!(target: "tower_backoff", Level::INFO, $($fields)+),
            Level::DEBUG => tracing::event!(target: "tower_backoff", Level::DEBUG, $($fields)+),
            Level::TRACE => tracing::event!(target: "tower_backoff", Level::TRACE, $($fields)+),
        }
    };
}

/// Levels of the layer's `tracing` events, or `None` to switch an event off.
///
/// By default a retry is logged at `WARN` and a give-up after retries at `ERROR`, like Python
/// backoff's default logger. A success, and a fatal outcome on the first attempt (an ordinary
/// 404, say), are logged at `DEBUG`. Each event has the fields `attempt`, `elapsed_ms`,
/// `outcome` (`"response"` or `"error"`) and, as they apply, `delay_ms`, `delay_source` and
/// `reason`.
///
/// ```
/// use tower_backoff::Logging;
/// use tracing::Level;
///
/// let quiet = Logging::off();
/// let custom = Logging::default().retry(Some(Level::INFO)).give_up(Some(Level::WARN));
/// # drop((quiet, custom));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logging {
    retry: Option<Level>,
    give_up: Option<Level>,
    other: Option<Level>,
}

impl Default for Logging {
    fn default() -> Self {
        Self {
            retry: Some(Level::WARN),
            give_up: Some(Level::ERROR),
            other: Some(Level::DEBUG),
        }
    }
}

impl Logging {
    /// No events at all.
    pub fn off() -> Self {
        Self {
            retry: None,
            give_up: None,
            other: None,
        }
    }

    /// Sets the level of the event before each retry.
    #[must_use]
    pub fn retry(mut self, level: Option<Level>) -> Self {
        self.retry = level;
        self
    }

    /// Sets the level of the event when the layer gives up after at least one retry, or
    /// for any reason other than a fatal outcome.
    #[must_use]
    pub fn give_up(mut self, level: Option<Level>) -> Self {
        self.give_up = level;
        self
    }

    /// Sets the level of the events for a success and for a fatal outcome of the first
    /// attempt.
    #[must_use]
    pub fn other(mut self, level: Option<Level>) -> Self {
        self.other = level;
        self
    }

    pub(crate) fn retry_event<Res, E>(&self, event: &Event<'_, Res, E>) {
        let Some(level) = enabled(self.retry) else {
            return;
        };
        let (delay, source) = event
            .next_delay
            .map_or((Duration::ZERO, ""), |(delay, source)| {
                (delay, source.as_str())
            });
        emit!(
            level,
            attempt = event.attempt,
            elapsed_ms = millis(event.elapsed()),
            outcome = outcome_name(event),
            delay_ms = millis(delay),
            delay_source = source,
            "attempt failed, retrying"
        );
    }

    pub(crate) fn give_up_event<Res, E>(&self, event: &Event<'_, Res, E>, reason: GiveUpReason) {
        let ordinary = reason == GiveUpReason::NotRetryable && event.attempt == 1;
        let level = if ordinary { self.other } else { self.give_up };
        let Some(level) = enabled(level) else { return };
        emit!(
            level,
            attempt = event.attempt,
            elapsed_ms = millis(event.elapsed()),
            outcome = outcome_name(event),
            reason = reason.as_str(),
            "giving up"
        );
    }

    /// Records the success event, if its level is enabled, with the event that `event`
    /// builds.
    #[inline]
    pub(crate) fn success_event<'a, Res: 'a, E: 'a>(
        &self,
        event: impl FnOnce() -> Event<'a, Res, E>,
    ) {
        if let Some(level) = enabled(self.other) {
            emit_success(level, &event());
        }
    }
}

/// Records the success event. Kept out of line, so that the check in
/// [`Logging::success_event`] is all that the success path inlines.
#[inline(never)]
fn emit_success<Res, E>(level: Level, event: &Event<'_, Res, E>) {
    emit!(
        level,
        attempt = event.attempt,
        elapsed_ms = millis(event.elapsed()),
        outcome = outcome_name(event),
        "attempt succeeded"
    );
}

/// Returns the level if an event at it could be recorded now. One atomic load decides this
/// before the per-level call sites are reached, which keeps the success path cheap when no
/// subscriber listens.
#[inline]
fn enabled(level: Option<Level>) -> Option<Level> {
    level.filter(|level| *level <= LevelFilter::current())
}

fn outcome_name<Res, E>(event: &Event<'_, Res, E>) -> &'static str {
    if event.outcome.is_ok() {
        "response"
    } else {
        "error"
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
