//! The `Service` contract: readiness before every attempt, and readiness errors.

use http::{Request, Response};
use std::time::Duration;
use tokio_test::{assert_pending, assert_ready, task};
use tower::Layer;
use tower_backoff::backoff::Constant;
use tower_backoff::classify::HttpClassifier;
use tower_backoff::{Jitter, Logging, RetryLayer, RetryPolicy};
use tower_test::mock;

fn layer() -> RetryLayer<HttpClassifier, Constant, ()> {
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(Duration::from_secs(1)))
        .jitter(Jitter::None)
        .logging(Logging::off())
        .build()
        .unwrap();
    RetryLayer::new(policy)
}

fn status(code: u16) -> Response<String> {
    let mut response = Response::new(String::new());
    *response.status_mut() = code.try_into().unwrap();
    response
}

fn get() -> Request<String> {
    Request::get("/").body(String::new()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn retry_waits_for_readiness() {
    let (inner, mut handle) = mock::pair::<Request<String>, Response<String>>();
    let mut service = mock::Spawn::new(layer().layer(inner));

    handle.allow(1);
    assert_ready!(service.poll_ready()).unwrap();
    let mut response = task::spawn(service.call(get()));

    let first = handle.next_request().await.unwrap();
    first.1.send_response(status(503));
    assert_pending!(response.poll());

    // After the sleep the layer polls the inner service, which is not ready: no call yet.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_pending!(response.poll());
    assert!(handle.poll_request().is_pending());

    handle.allow(1);
    assert!(response.is_woken());
    assert_pending!(response.poll());
    let second = handle.next_request().await.unwrap();
    second.1.send_response(status(200));

    let response = assert_ready!(response.poll()).unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn readiness_error_ends_request() {
    let (inner, mut handle) = mock::pair::<Request<String>, Response<String>>();
    let mut service = mock::Spawn::new(layer().layer(inner));

    handle.allow(1);
    assert_ready!(service.poll_ready()).unwrap();
    let mut response = task::spawn(service.call(get()));

    let first = handle.next_request().await.unwrap();
    first.1.send_response(status(503));
    assert_pending!(response.poll());

    handle.send_error("connection pool closed");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let error = assert_ready!(response.poll()).unwrap_err();
    assert_eq!(error.to_string(), "connection pool closed");
    assert!(handle.poll_request().is_pending());
}

#[tokio::test]
async fn poll_ready_forwards_inner_state() {
    let (inner, mut handle) = mock::pair::<Request<String>, Response<String>>();
    let mut service = mock::Spawn::new(layer().layer(inner));

    handle.allow(0);
    assert_pending!(service.poll_ready());
    handle.allow(1);
    assert_ready!(service.poll_ready()).unwrap();

    handle.send_error("inner failed");
    let error = assert_ready!(service.poll_ready()).unwrap_err();
    assert_eq!(error.to_string(), "inner failed");
}
