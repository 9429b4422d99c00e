//! The error returned when a retry policy is built from invalid configuration.

use std::fmt;

/// Why a configuration value was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The value is zero where at least one is required.
    Zero,
    /// The value is NaN or infinite.
    NotFinite,
    /// The value is below the smallest allowed value.
    TooSmall,
    /// The value is above the largest allowed value.
    TooLarge,
    /// A list that must contain at least one element is empty.
    Empty,
}

/// An invalid configuration value, rejected when a schedule or policy is built.
///
/// The message names the field, the rejected value and what is expected, for example
/// `invalid backoff.factor: 0.5 (expected a finite number >= 1)`.
///
/// ```
/// use std::time::Duration;
/// use tower_backoff::{backoff::Exponential, ConfigErrorKind, RetryPolicy};
///
/// let error = RetryPolicy::builder(tower_backoff::classify::HttpClassifier::default())
///     .backoff(Exponential::new(Duration::from_secs(1)).factor(0.5))
///     .build()
///     .unwrap_err();
/// assert_eq!(error.field(), "backoff.factor");
/// assert_eq!(error.kind(), ConfigErrorKind::TooSmall);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    value: String,
    kind: ConfigErrorKind,
    expected: &'static str,
}

impl ConfigError {
    pub(crate) fn new(
        field: &'static str,
        value: impl fmt::Debug,
        kind: ConfigErrorKind,
        expected: &'static str,
    ) -> Self {
        Self {
            field,
            value: format!("{value:?}"),
            kind,
            expected,
        }
    }

    /// The name of the rejected field, such as `max_attempts` or `backoff.factor`.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The rejected value, formatted with `Debug`.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why the value was rejected.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}: {} (expected {})",
            self.field, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}
