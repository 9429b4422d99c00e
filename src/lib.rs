//! Retry any [`tower::Service`](tower_service::Service) with backoff.
//!
//! `tower-backoff` brings the features of Python's `backoff` library to tower middleware,
//! with what production HTTP and gRPC clients need on top: classification of 429, 5xx and
//! transport errors by idempotency, `Retry-After`, per-request limits and hooks.
//!
//! # Overview
//!
//! A [`RetryLayer`] contains one [`RetryPolicy`], made of:
//!
//! - a [classifier](classify) that inspects the request and each outcome and returns
//!   success, retry (optionally after a server-given delay) or fatal;
//! - a [backoff schedule](backoff) with [`Jitter`];
//! - limits: `max_attempts` (counting the first attempt), `max_elapsed` over all attempts and
//!   sleeps, and `max_retry_after` for server-given delays;
//! - [hooks] and [`tracing`] events.
//!
//! On give-up the caller gets the last response or error unchanged: a 503 stays a 503 with
//! its headers and body. Time comes from `tokio::time`, so `tokio::time::pause()` makes every
//! schedule testable to the millisecond.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_backoff::{classify::HttpClassifier, RetryLayer, RetryPolicy};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = RetryPolicy::builder(HttpClassifier::default())
//!     .max_attempts(4)
//!     .max_elapsed(Duration::from_secs(10))
//!     .build()?;
//!
//! // A stand-in for an HTTP client: always answers 200.
//! let client = tower::service_fn(|_request: Request<String>| async {
//!     Ok::<_, std::io::Error>(Response::new(String::from("hello")))
//! });
//!
//! let client = ServiceBuilder::new().layer(RetryLayer::new(policy)).service(client);
//! let response = client.oneshot(Request::new(String::new())).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod backoff;
pub mod body;
pub mod budget;
pub mod classify;
mod error;
pub mod future;
pub mod hooks;
mod jitter;
mod layer;
mod logging;
mod policy;
mod service;

pub use error::{ConfigError, ConfigErrorKind};
pub use jitter::Jitter;
pub use layer::RetryLayer;
pub use logging::Logging;
pub use policy::{RetryPolicy, RetryPolicyBuilder};
pub use service::Retry;

/// A type-erased error, as returned by `tower::timeout` and most tower middleware.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
