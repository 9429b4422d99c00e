//! Request bodies that can be sent more than once.
//!
//! A retry layer clones the request for each attempt. An `http::Request<B>` whose body `B`
//! is `Clone`, such as `String` or `Full<Bytes>`, needs nothing more. A streaming body
//! (a channel, a file, a `hyper::body::Incoming` being proxied) can be read only once, so
//! this module records it while the first attempt sends it:
//!
//! - [`ReplayBodyLayer`] wraps each request body in a [`ReplayBody`]. Place it outside the
//!   [`RetryLayer`](crate::RetryLayer), so that the inner client receives
//!   `Request<ReplayBody<B>>`.
//! - [`Replayable`] wraps the policy's classifier, so that a request is retried only while
//!   its body can be replayed.
//!
//! # When a request is replayed
//!
//! A request is sent again, with the same data frames and trailers, when the classifier
//! returns a retry verdict and the body is replayable at that moment:
//!
//! - the first attempt sent the body to its end, and the data frames added up to at most
//!   the cap (64 KiB by default, set with [`ReplayBodyLayer::new`]). Trailers do not count
//!   towards the cap;
//! - or no attempt has read the body yet, for example when the connection was refused.
//!
//! A request is sent once, never rejected, and its first outcome is returned when:
//!
//! - the body's size hint says it is larger than the cap. It is streamed without being
//!   recorded, and the request is not cloned;
//! - the body passes the cap while it streams. The attempt goes on and sends every byte, but
//!   the recording is dropped, so the memory held never exceeds the cap;
//! - the outcome (a response or an error) arrives before the body was sent to its end, for
//!   example when a server answers before it reads the body;
//! - the body returns an error;
//! - over HTTP/1.1, the body has an exact size hint but does not report
//!   [`is_end_stream`](http_body::Body::is_end_stream) after its last data frame. hyper
//!   stops polling it once it has written `Content-Length` bytes, so the end is never seen.
//!   `Full` and `Empty` report their end.
//!
//! A retry never sends a truncated, empty or duplicated body: a clone that cannot send the
//! whole body returns a [`ReplayError`] at its first poll instead. With [`Replayable`] such
//! a retry never starts. Without it, the retry fails with a body error from the client.
//!
//! # Examples
//!
//! ```
//! use bytes::Bytes;
//! use http::{Method, Request, Response, StatusCode};
//! use http_body::Frame;
//! use http_body_util::{BodyExt, StreamBody};
//! use std::sync::{Arc, Mutex};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_backoff::body::{ReplayBody, ReplayBodyLayer, Replayable};
//! use tower_backoff::classify::HttpClassifier;
//! use tower_backoff::{BoxError, RetryLayer, RetryPolicy};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! # tokio::time::pause();
//! let policy = RetryPolicy::builder(Replayable::new(HttpClassifier::default())).build()?;
//!
//! // A stand-in for an HTTP client: reads the body, answers 503 once, then 200.
//! let received = Arc::new(Mutex::new(Vec::new()));
//! let log = Arc::clone(&received);
//! let client = tower::service_fn(move |request: Request<ReplayBody<_>>| {
//!     let log = Arc::clone(&log);
//!     async move {
//!         let body = request.into_body().collect().await?.to_bytes();
//!         let mut log = log.lock().unwrap();
//!         log.push(body);
//!         let status = if log.len() == 1 { 503 } else { 200 };
//!         Ok::<_, BoxError>(Response::builder().status(status).body(())?)
//!     }
//! });
//!
//! let client = ServiceBuilder::new()
//!     .layer(ReplayBodyLayer::default())
//!     .layer(RetryLayer::new(policy))
//!     .service(client);
//!
//! // A streaming body that can be read only once.
//! let chunks = ["hello, ", "world"].map(|chunk| Ok::<_, BoxError>(Frame::data(Bytes::from(chunk))));
//! let body = StreamBody::new(tokio_stream::iter(chunks));
//! let request = Request::builder().method(Method::PUT).uri("/greeting").body(body)?;
//!
//! let response = client.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(*received.lock().unwrap(), ["hello, world", "hello, world"]);
//! # Ok(())
//! # }
//! ```

mod classify;
mod layer;
mod replay;

pub use classify::{Replayable, ReplayableFacts};
pub use layer::{ReplayBodyLayer, ReplayBodyService};
pub use replay::{DEFAULT_CAP, ReplayBody, ReplayError, ReplayHandle};
