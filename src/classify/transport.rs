//! Transport errors: did the request reach the server?

use super::Verdict;
use std::convert::Infallible;
use std::error::Error;
use std::io;

/// How far a request got before a transport error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportFailure {
    /// The request provably never left the client (connection refused, connect timeout), so
    /// it is safe to retry for every method.
    NotSent,
    /// The request may have reached the server (connection reset, incomplete response,
    /// per-attempt timeout), so only idempotent requests are retried.
    MaybeSent,
}

/// An error type that [`HttpClassifier`](super::HttpClassifier) can inspect for transport
/// failures.
///
/// The implementations walk the error's `source()` chain. A refused connection
/// ([`io::ErrorKind::ConnectionRefused`]) or, with the `hyper-util` feature, a hyper-util
/// client error for which `is_connect()` is true counts as [`TransportFailure::NotSent`].
/// Any other error counts as [`TransportFailure::MaybeSent`].
///
/// Implement it for your own error type to tell the classifier which errors are not
/// transport failures at all (return `None`: the error is fatal).
///
/// ```
/// use std::io;
/// use tower_backoff::classify::{TransportError, TransportFailure};
///
/// let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
/// assert_eq!(refused.transport_failure(), Some(TransportFailure::NotSent));
///
/// let boxed: tower_backoff::BoxError = Box::new(io::Error::from(io::ErrorKind::ConnectionReset));
/// assert_eq!(boxed.transport_failure(), Some(TransportFailure::MaybeSent));
/// ```
pub trait TransportError {
    /// Returns how far the request got, or `None` if this is not a transport failure.
    fn transport_failure(&self) -> Option<TransportFailure>;
}

impl TransportError for Box<dyn Error + Send + Sync> {
    fn transport_failure(&self) -> Option<TransportFailure> {
        Some(inspect_chain(&**self))
    }
}

impl TransportError for Box<dyn Error> {
    fn transport_failure(&self) -> Option<TransportFailure> {
        Some(inspect_chain(&**self))
    }
}

impl TransportError for io::Error {
    fn transport_failure(&self) -> Option<TransportFailure> {
        Some(inspect_chain(self))
    }
}

#[cfg(feature = "hyper-util")]
impl TransportError for hyper_util::client::legacy::Error {
    fn transport_failure(&self) -> Option<TransportFailure> {
        Some(inspect_chain(self))
    }
}

impl TransportError for Infallible {
    fn transport_failure(&self) -> Option<TransportFailure> {
        match *self {}
    }
}

/// Returns the verdict for a transport error: a request that was never sent is retried for
/// every method, one that may have been sent only when it is idempotent, and any other
/// error is fatal.
pub(crate) fn classify_transport_error<E: TransportError>(
    error: &E,
    idempotent: bool,
    retry_transport_errors: bool,
) -> Verdict {
    if !retry_transport_errors {
        return Verdict::Fatal;
    }
    match error.transport_failure() {
        Some(TransportFailure::NotSent) => Verdict::Retry(None),
        Some(TransportFailure::MaybeSent) if idempotent => Verdict::Retry(None),
        _ => Verdict::Fatal,
    }
}

fn inspect_chain(error: &(dyn Error + 'static)) -> TransportFailure {
    let mut current = Some(error);
    while let Some(error) = current {
        if is_not_sent(error) {
            return TransportFailure::NotSent;
        }
        current = error.source();
    }
    TransportFailure::MaybeSent
}

fn is_not_sent(error: &(dyn Error + 'static)) -> bool {
    if let Some(io_error) = error.downcast_ref::<io::Error>() {
        return io_error.kind() == io::ErrorKind::ConnectionRefused;
    }

    #[cfg(feature = "hyper-util")]
    if let Some(client_error) = error.downcast_ref::<hyper_util::client::legacy::Error>() {
        return client_error.is_connect();
    }

    false
}
