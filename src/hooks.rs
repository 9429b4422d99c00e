//! Hooks: code that runs before each retry, on give-up and on success.
//!
//! Each hook receives an [`Event`] with the attempt number (1 for the first attempt), the
//! time elapsed since the request entered the layer, the next delay (for `on_retry`), the
//! give-up reason (for `on_give_up`) and a reference to the attempt's outcome. Hooks run
//! inline in the response future, so they should be quick.
//!
//! # Examples
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use tower_backoff::{classify::on_error, hooks::Event, RetryPolicy};
//!
//! let retries = Arc::new(AtomicU32::new(0));
//! let counter = Arc::clone(&retries);
//! let policy = RetryPolicy::builder(on_error(|_: &std::io::Error| true))
//!     .on_retry(move |event: &Event<'_, String, std::io::Error>| {
//!         counter.fetch_add(1, Ordering::Relaxed);
//!         println!("attempt {} failed, retrying in {:?}", event.attempt(), event.next_delay());
//!     })
//!     .build()
//!     .unwrap();
//! # drop(policy);
//! ```

use std::fmt;
use std::time::Duration;
use tokio::time::Instant;

/// Why the layer stopped retrying and returned a failed outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUpReason {
    /// The attempt limit was reached.
    Exhausted,
    /// A finite backoff schedule ran out of delays.
    ScheduleEnded,
    /// The next sleep would end at or after the `max_elapsed` deadline, or less than 2 ms
    /// before it. tokio's millisecond timer could end such a sleep after the deadline.
    Deadline,
    /// The classifier found the outcome fatal.
    NotRetryable,
    /// The server asked for a delay longer than `max_retry_after`.
    ServerDelayTooLong,
    /// The retry budget had no retry left.
    Budget,
    /// The inner service's `poll_ready` failed before a retry; its error is returned.
    NotReady,
}

impl GiveUpReason {
    /// A short name for logs and metrics, such as `"exhausted"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            GiveUpReason::Exhausted => "exhausted",
            GiveUpReason::ScheduleEnded => "schedule ended",
            GiveUpReason::Deadline => "deadline",
            GiveUpReason::NotRetryable => "not retryable",
            GiveUpReason::ServerDelayTooLong => "server delay too long",
            GiveUpReason::Budget => "budget",
            GiveUpReason::NotReady => "not ready",
        }
    }
}

impl fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the delay before a retry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DelaySource {
    /// The backoff schedule, after jitter.
    Schedule,
    /// The server, through `Retry-After` or a similar header, used exactly.
    Server,
}

impl DelaySource {
    /// A short name for logs, `"schedule"` or `"server"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DelaySource::Schedule => "schedule",
            DelaySource::Server => "server",
        }
    }
}

/// What a hook learns about an attempt.
pub struct Event<'a, Res, E> {
    pub(crate) attempt: u32,
    /// When the request entered the layer.
    pub(crate) started: Instant,
    /// The elapsed time the policy measured for its deadline; `None` when it measured
    /// nothing, so that [`Event::elapsed`] reads the clock only when asked.
    pub(crate) elapsed: Option<Duration>,
    pub(crate) next_delay: Option<(Duration, DelaySource)>,
    pub(crate) reason: Option<GiveUpReason>,
    pub(crate) outcome: &'a Result<Res, E>,
}

impl<'a, Res, E> Event<'a, Res, E> {
    /// The attempt that just ended, counting from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Returns the time since the request entered the layer, including this attempt.
    ///
    /// Before a retry this is the value the policy compared with `max_elapsed`. After a
    /// success or a fatal outcome the clock is read at the call, which keeps the success
    /// path free of clock reads when no hook or log event reads it.
    pub fn elapsed(&self) -> Duration {
        self.elapsed.unwrap_or_else(|| self.started.elapsed())
    }

    /// The sleep before the next attempt; set for `on_retry` only.
    pub fn next_delay(&self) -> Option<Duration> {
        self.next_delay.map(|(delay, _)| delay)
    }

    /// Where the next delay came from; set for `on_retry` only.
    pub fn delay_source(&self) -> Option<DelaySource> {
        self.next_delay.map(|(_, source)| source)
    }

    /// Why the layer gave up; set for `on_give_up` only.
    pub fn reason(&self) -> Option<GiveUpReason> {
        self.reason
    }

    /// The outcome of the attempt.
    pub fn outcome(&self) -> &'a Result<Res, E> {
        self.outcome
    }
}

impl<Res, E> fmt::Debug for Event<'_, Res, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("attempt", &self.attempt)
            .field("elapsed", &self.elapsed())
            .field("next_delay", &self.next_delay)
            .field("reason", &self.reason)
            .field(
                "outcome",
                &if self.outcome.is_ok() {
                    "response"
                } else {
                    "error"
                },
            )
            .finish()
    }
}

/// Callbacks for the three moments of a request's life in the layer.
///
/// `()` is the implementation that does nothing. The builder methods
/// [`on_retry`](crate::RetryPolicyBuilder::on_retry),
/// [`on_give_up`](crate::RetryPolicyBuilder::on_give_up) and
/// [`on_success`](crate::RetryPolicyBuilder::on_success) add closures.
pub trait Hooks<Res, E> {
    /// Runs after a failed attempt, before the sleep that precedes the next one.
    fn on_retry(&self, _event: &Event<'_, Res, E>) {}

    /// Runs when the layer returns a failed outcome.
    fn on_give_up(&self, _event: &Event<'_, Res, E>) {}

    /// Runs when the layer returns a successful outcome.
    fn on_success(&self, _event: &Event<'_, Res, E>) {}
}

impl<Res, E> Hooks<Res, E> for () {}

macro_rules! closure_hook {
    ($(#[$doc:meta])* $name:ident, $method:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name<H, F> {
            inner: H,
            hook: F,
        }

        impl<H, F> $name<H, F> {
            pub(crate) fn new(inner: H, hook: F) -> Self {
                Self { inner, hook }
            }
        }

        impl<H: fmt::Debug, F> fmt::Debug for $name<H, F> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("inner", &self.inner)
                    .finish_non_exhaustive()
            }
        }

        impl<Res, E, H, F> Hooks<Res, E> for $name<H, F>
        where
            H: Hooks<Res, E>,
            F: Fn(&Event<'_, Res, E>),
        {
            fn on_retry(&self, event: &Event<'_, Res, E>) {
                self.inner.on_retry(event);
                closure_hook!(@call $method on_retry self event);
            }

            fn on_give_up(&self, event: &Event<'_, Res, E>) {
                self.inner.on_give_up(event);
                closure_hook!(@call $method on_give_up self event);
            }

            fn on_success(&self, event: &Event<'_, Res, E>) {
                self.inner.on_success(event);
                closure_hook!(@call $method on_success self event);
            }
        }
    };
    (@call on_retry on_retry $self:ident $event:ident) => { ($self.hook)($event) };
    (@call on_give_up on_give_up $self:ident $event:ident) => { ($self.hook)($event) };
    (@call on_success on_success $self:ident $event:ident) => { ($self.hook)($event) };
    (@call $other:ident $method:ident $self:ident $event:ident) => {};
}

closure_hook!(
    /// Hooks with a closure added for `on_retry`.
    OnRetry,
    on_retry
);
closure_hook!(
    /// Hooks with a closure added for `on_give_up`.
    OnGiveUp,
    on_give_up
);
closure_hook!(
    /// Hooks with a closure added for `on_success`.
    OnSuccess,
    on_success
);
