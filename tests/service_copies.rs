//! Which copy of the inner service each attempt goes through, and how often the layer
//! clones it.

use http::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service, ServiceExt};
use tower_backoff::backoff::Constant;
use tower_backoff::classify::HttpClassifier;
use tower_backoff::{Jitter, Logging, Retry, RetryLayer, RetryPolicy};

/// A service that returns 503 while `failures` is above zero and 200 after that. Each call
/// records the service's `tag`, and each clone counts itself in `clones`.
struct Tagged {
    tag: u32,
    failures: Arc<AtomicUsize>,
    calls: Arc<Mutex<Vec<u32>>>,
    clones: Arc<AtomicUsize>,
}

impl Tagged {
    fn new() -> Self {
        Self {
            tag: 1,
            failures: Arc::new(AtomicUsize::new(0)),
            calls: Arc::default(),
            clones: Arc::default(),
        }
    }

    /// Makes the next `count` calls return 503.
    fn fail_next(&self, count: usize) {
        self.failures.store(count, Ordering::Relaxed);
    }

    /// Returns the tags of the calls so far, and clears the record.
    fn take_calls(&self) -> Vec<u32> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn clones(&self) -> usize {
        self.clones.load(Ordering::Relaxed)
    }
}

impl Clone for Tagged {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::Relaxed);
        Self {
            tag: self.tag,
            failures: Arc::clone(&self.failures),
            calls: Arc::clone(&self.calls),
            clones: Arc::clone(&self.clones),
        }
    }
}

impl Service<Request<String>> for Tagged {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<String>) -> Self::Future {
        self.calls.lock().unwrap().push(self.tag);
        let failing = self
            .failures
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        let mut response = Response::new(String::new());
        if failing {
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        }
        ready(Ok(response))
    }
}

fn retry(service: Tagged) -> Retry<Tagged, HttpClassifier, Constant, ()> {
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(Duration::from_secs(1)))
        .jitter(Jitter::None)
        .max_attempts(4)
        .no_budget()
        .logging(Logging::off())
        .build()
        .unwrap();
    RetryLayer::new(policy).layer(service)
}

async fn send(service: &mut Retry<Tagged, HttpClassifier, Constant, ()>) -> StatusCode {
    let request = Request::new(String::new());
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    response.status()
}

#[tokio::test(start_paused = true)]
async fn success_clones_no_service() {
    let inner = Tagged::new();
    let probe = inner.clone();
    let mut service = retry(inner);
    let clones_after_layer = probe.clones();

    for _ in 0..5 {
        assert_eq!(send(&mut service).await, StatusCode::OK);
    }

    assert_eq!(probe.clones(), clones_after_layer);
    assert_eq!(probe.take_calls().len(), 5);
}

#[tokio::test(start_paused = true)]
async fn retries_share_one_clone() {
    let inner = Tagged::new();
    let probe = inner.clone();
    let mut service = retry(inner);
    let clones_after_layer = probe.clones();

    probe.fail_next(3);
    assert_eq!(send(&mut service).await, StatusCode::OK);

    assert_eq!(probe.take_calls(), [1, 1, 1, 1]);
    assert_eq!(probe.clones(), clones_after_layer + 1);
}

#[tokio::test(start_paused = true)]
async fn get_mut_changes_later_retries() {
    let inner = Tagged::new();
    let probe = inner.clone();
    let mut service = retry(inner);

    probe.fail_next(1);
    assert_eq!(send(&mut service).await, StatusCode::OK);
    assert_eq!(probe.take_calls(), [1, 1]);

    service.get_mut().tag = 2;
    probe.fail_next(1);
    assert_eq!(send(&mut service).await, StatusCode::OK);
    assert_eq!(probe.take_calls(), [2, 2]);
}

#[tokio::test(start_paused = true)]
async fn in_flight_request_keeps_its_copy() {
    let inner = Tagged::new();
    let probe = inner.clone();
    let mut service = retry(inner);

    probe.fail_next(1);
    let request = Request::new(String::new());
    let in_flight = service.ready().await.unwrap().call(request);
    service.get_mut().tag = 2;
    assert_eq!(in_flight.await.unwrap().status(), StatusCode::OK);

    assert_eq!(probe.take_calls(), [1, 1]);
}

/// A service that is `Send` but not `Sync`, because of its `Cell`. Each copy returns 503
/// for its first call and 200 after that.
#[derive(Clone, Default)]
struct NotSync {
    calls: std::cell::Cell<u32>,
}

impl Service<Request<String>> for NotSync {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<String>) -> Self::Future {
        self.calls.set(self.calls.get() + 1);
        let mut response = Response::new(String::new());
        if self.calls.get() == 1 {
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        }
        ready(Ok(response))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_send_for_non_sync_service() {
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(Duration::from_millis(1)))
        .jitter(Jitter::None)
        .logging(Logging::off())
        .build()
        .unwrap();
    let mut service = RetryLayer::new(policy).layer(NotSync::default());
    let future = service
        .ready()
        .await
        .unwrap()
        .call(Request::new(String::new()));

    // Spawning on a multi-thread runtime requires the future to be `Send`.
    let response = tokio::spawn(future).await.unwrap().unwrap();

    // Every copy returns 503 for its first call. The first attempt and the first retry are
    // each the first call of their copy, and the second retry reuses the retry's clone.
    assert_eq!(response.status(), StatusCode::OK);
}
