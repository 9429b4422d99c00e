//! The [`RetryLayer`].

use crate::policy::RetryPolicy;
use crate::service::Retry;
use std::fmt;
use std::sync::Arc;
use tower_layer::Layer;

/// A [`Layer`] that wraps services in [`Retry`].
///
/// Every service the layer wraps shares one policy, and with it one retry budget.
///
/// ```
/// use std::time::Duration;
/// use tower::{ServiceBuilder, ServiceExt};
/// use tower_backoff::{classify::on_error, RetryLayer, RetryPolicy};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let policy = RetryPolicy::builder(on_error(|_: &std::io::Error| true)).build()?;
/// let service = ServiceBuilder::new()
///     .layer(RetryLayer::new(policy))
///     .service_fn(|name: &'static str| async move { Ok::<_, std::io::Error>(name.len()) });
/// assert_eq!(service.oneshot("tower").await?, 5);
/// # Ok(())
/// # }
/// ```
pub struct RetryLayer<C, B, H> {
    policy: Arc<RetryPolicy<C, B, H>>,
}

impl<C, B, H> RetryLayer<C, B, H> {
    /// Creates a layer from a built policy.
    pub fn new(policy: RetryPolicy<C, B, H>) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy<C, B, H> {
        &self.policy
    }
}

impl<S: Clone, C, B, H> Layer<S> for RetryLayer<C, B, H> {
    type Service = Retry<S, C, B, H>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(inner, Arc::clone(&self.policy))
    }
}

impl<C, B, H> Clone for RetryLayer<C, B, H> {
    fn clone(&self) -> Self {
        Self {
            policy: Arc::clone(&self.policy),
        }
    }
}

impl<C: fmt::Debug, B: fmt::Debug, H> fmt::Debug for RetryLayer<C, B, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("policy", &self.policy)
            .finish()
    }
}
