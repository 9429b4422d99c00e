//! Which HTTP requests and outcomes are retried, and what the caller gets back.

mod support;

use http::{Method, Request, Response, StatusCode};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::{EventLog, Scripted, error, get, post, secs, status};
use tower::{Layer, ServiceExt};
use tower_backoff::backoff::Constant;
use tower_backoff::classify::{Classify, HttpClassifier, Idempotent, Plan, Verdict};
use tower_backoff::hooks::GiveUpReason;
use tower_backoff::{Jitter, Logging, RetryLayer, RetryPolicy};

fn layer(
    classifier: HttpClassifier,
    log: &EventLog,
) -> RetryLayer<HttpClassifier, Constant, EventLog> {
    let policy = RetryPolicy::builder(classifier)
        .backoff(Constant::new(secs(1)))
        .jitter(Jitter::None)
        .logging(Logging::off())
        .hooks(log.clone())
        .build()
        .unwrap();
    RetryLayer::new(policy)
}

async fn send(
    script: Vec<support::Step>,
    request: Request<String>,
) -> (Result<Response<String>, io::Error>, Scripted, EventLog) {
    send_with(HttpClassifier::default(), script, request).await
}

async fn send_with(
    classifier: HttpClassifier,
    script: Vec<support::Step>,
    request: Request<String>,
) -> (Result<Response<String>, io::Error>, Scripted, EventLog) {
    let server = Scripted::new(script);
    let log = EventLog::default();
    let service = layer(classifier, &log).layer(server.clone());
    let outcome = service.oneshot(request).await;
    (outcome, server, log)
}

fn request(method: Method) -> Request<String> {
    Request::builder()
        .method(method)
        .uri("/")
        .body(String::new())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn get_503_twice_then_200() {
    let (outcome, server, log) = send(vec![status(503), status(503), status(200)], get()).await;
    assert_eq!(outcome.unwrap().status(), 200);
    assert_eq!(server.calls().len(), 3);
    assert_eq!(log.hooks(), [("retry", 1), ("retry", 2), ("success", 3)]);
}

#[tokio::test(start_paused = true)]
async fn get_500_not_retried_by_default() {
    let (outcome, server, log) = send(vec![status(500), status(200)], get()).await;
    assert_eq!(outcome.unwrap().status(), 500);
    assert_eq!(server.calls().len(), 1);
    assert_eq!(log.reasons(), [GiveUpReason::NotRetryable]);
}

#[tokio::test(start_paused = true)]
async fn get_500_retried_when_opted_in() {
    let classifier = HttpClassifier::default().retry_status(StatusCode::INTERNAL_SERVER_ERROR);
    let (outcome, server, _) = send_with(classifier, vec![status(500), status(200)], get()).await;
    assert_eq!(outcome.unwrap().status(), 200);
    assert_eq!(server.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn get_404_is_not_exhaustion() {
    let (outcome, server, log) = send(vec![status(404)], get()).await;
    assert_eq!(outcome.unwrap().status(), 404);
    assert_eq!(server.calls().len(), 1);
    assert_eq!(log.reasons(), [GiveUpReason::NotRetryable]);
}

#[tokio::test(start_paused = true)]
async fn post_503_not_retried() {
    let (outcome, server, log) = send(vec![status(503), status(200)], post("pay")).await;
    assert_eq!(outcome.unwrap().status(), 503);
    assert_eq!(server.calls().len(), 1);
    assert_eq!(log.reasons(), [GiveUpReason::NotRetryable]);
}

#[tokio::test(start_paused = true)]
async fn post_with_idempotency_key_retried() {
    let mut request = post("pay");
    request
        .headers_mut()
        .insert("idempotency-key", "3f1c9a2e-5b7d".parse().unwrap());
    let (outcome, server, _) = send(vec![status(503), status(200)], request).await;

    assert_eq!(outcome.unwrap().status(), 200);
    let calls = server.calls();
    assert_eq!(calls.len(), 2);
    for call in calls {
        assert_eq!(call.headers["idempotency-key"], "3f1c9a2e-5b7d");
        assert_eq!(call.body, "pay");
    }
}

#[tokio::test(start_paused = true)]
async fn post_marked_idempotent_retried() {
    let mut request = post("upsert");
    request.extensions_mut().insert(Idempotent);
    let (outcome, server, _) = send(vec![status(502), status(200)], request).await;
    assert_eq!(outcome.unwrap().status(), 200);
    assert_eq!(server.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn post_connection_refused_retried() {
    let script = vec![error(io::ErrorKind::ConnectionRefused), status(200)];
    let (outcome, server, _) = send(script, post("pay")).await;
    assert_eq!(outcome.unwrap().status(), 200);
    assert_eq!(server.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn post_connection_reset_not_retried() {
    let script = vec![error(io::ErrorKind::ConnectionReset), status(200)];
    let (outcome, server, log) = send(script, post("pay")).await;
    assert_eq!(outcome.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(server.calls().len(), 1);
    assert_eq!(log.reasons(), [GiveUpReason::NotRetryable]);
}

#[tokio::test(start_paused = true)]
async fn get_connection_reset_retried() {
    let script = vec![error(io::ErrorKind::ConnectionReset), status(200)];
    let (outcome, server, _) = send(script, get()).await;
    assert_eq!(outcome.unwrap().status(), 200);
    assert_eq!(server.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn transport_errors_can_be_switched_off() {
    let classifier = HttpClassifier::default().retry_transport_errors(false);
    let script = vec![error(io::ErrorKind::ConnectionRefused), status(200)];
    let (outcome, server, _) = send_with(classifier, script, get()).await;
    assert!(outcome.is_err());
    assert_eq!(server.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn put_and_delete_502_retried() {
    for method in [Method::PUT, Method::DELETE] {
        let (outcome, server, _) =
            send(vec![status(502), status(200)], request(method.clone())).await;
        assert_eq!(outcome.unwrap().status(), 200, "{method}");
        assert_eq!(server.calls().len(), 2, "{method}");
    }
}

#[tokio::test(start_paused = true)]
async fn every_method_retried_after_408_and_429() {
    for method in [Method::POST, Method::PATCH, Method::GET] {
        for code in [408, 429] {
            let (outcome, server, _) =
                send(vec![status(code), status(200)], request(method.clone())).await;
            assert_eq!(outcome.unwrap().status(), 200, "{method} {code}");
            assert_eq!(server.calls().len(), 2, "{method} {code}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn exhausted_returns_last_response_intact() {
    let script = vec![
        status(503).header("x-attempt", b"1").body("first"),
        status(503).header("x-attempt", b"2").body("second"),
        status(503)
            .header("x-attempt", b"3")
            .header("content-type", b"application/problem+json")
            .body("{\"title\":\"down\"}"),
    ];
    let (outcome, server, log) = send(script, get()).await;

    let response = outcome.unwrap();
    assert_eq!(server.calls().len(), 3);
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-attempt"], "3");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(response.body(), "{\"title\":\"down\"}");
    assert_eq!(log.reasons(), [GiveUpReason::Exhausted]);
}

#[tokio::test(start_paused = true)]
async fn exhausted_returns_last_error_intact() {
    let script = vec![error(io::ErrorKind::ConnectionRefused)];
    let (outcome, server, _) = send(script, get()).await;
    let error = outcome.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    assert_eq!(error.to_string(), "scripted transport error");
    assert_eq!(server.calls().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn retry_sends_same_body() {
    let request = Request::get("/search")
        .body(String::from("query=tower"))
        .unwrap();
    let (outcome, server, _) = send(vec![status(503), status(200)], request).await;
    assert_eq!(outcome.unwrap().status(), 200);
    let bodies: Vec<String> = server.calls().into_iter().map(|call| call.body).collect();
    assert_eq!(bodies, ["query=tower", "query=tower"]);
}

#[tokio::test(start_paused = true)]
async fn empty_status_list_retries_nothing() {
    let classifier = HttpClassifier::default().statuses([]);
    let (outcome, server, _) = send_with(classifier, vec![status(503), status(200)], get()).await;
    assert_eq!(outcome.unwrap().status(), 503);
    assert_eq!(server.calls().len(), 1);
}

/// A body that counts its clones.
#[derive(Debug)]
struct CountedBody(Arc<AtomicUsize>);

impl Clone for CountedBody {
    fn clone(&self) -> Self {
        self.0.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(&self.0))
    }
}

async fn count_clones(
    classifier: HttpClassifier,
    request: Request<()>,
    max_attempts: u32,
    status: u16,
) -> usize {
    let clones = Arc::new(AtomicUsize::new(0));
    let (parts, ()) = request.into_parts();
    let request = Request::from_parts(parts, CountedBody(Arc::clone(&clones)));
    let service = tower::service_fn(move |_request: Request<CountedBody>| async move {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        Ok::<_, io::Error>(response)
    });
    let policy = RetryPolicy::builder(classifier)
        .max_attempts(max_attempts)
        .logging(Logging::off())
        .build()
        .unwrap();
    RetryLayer::new(policy)
        .layer(service)
        .oneshot(request)
        .await
        .unwrap();
    clones.load(Ordering::Relaxed)
}

#[tokio::test(start_paused = true)]
async fn never_retryable_request_not_cloned() {
    let post = || Request::post("/").body(()).unwrap();
    let no_retry_for_post = HttpClassifier::default()
        .statuses([StatusCode::BAD_GATEWAY, StatusCode::SERVICE_UNAVAILABLE])
        .retry_transport_errors(false);
    assert_eq!(count_clones(no_retry_for_post, post(), 3, 200).await, 0);
    assert_eq!(
        count_clones(
            HttpClassifier::default()
                .statuses([])
                .retry_transport_errors(false),
            Request::get("/").body(()).unwrap(),
            3,
            200
        )
        .await,
        0
    );
    assert_eq!(
        count_clones(
            HttpClassifier::default(),
            Request::get("/").body(()).unwrap(),
            1,
            200
        )
        .await,
        0
    );

    let mut disabled = Request::get("/").body(()).unwrap();
    disabled
        .extensions_mut()
        .insert(tower_backoff::classify::RetryOverride::new().disable());
    assert_eq!(
        count_clones(HttpClassifier::default(), disabled, 3, 503).await,
        0
    );
}

#[tokio::test(start_paused = true)]
async fn retryable_request_cloned_once_per_retry() {
    // The default rules retry a POST after 408, 429 or a refused connection, so it is cloned
    // for a possible retry even when it succeeds.
    assert_eq!(
        count_clones(
            HttpClassifier::default(),
            Request::post("/").body(()).unwrap(),
            3,
            200
        )
        .await,
        1
    );
    // Three attempts: one clone kept for retries, one for the second attempt, and the last
    // attempt takes the kept request.
    assert_eq!(
        count_clones(
            HttpClassifier::default(),
            Request::get("/").body(()).unwrap(),
            3,
            503
        )
        .await,
        2
    );
}

#[tokio::test(start_paused = true)]
async fn attempt_header_numbers_each_attempt() {
    let classifier = HttpClassifier::default().attempt_header(Some("x-attempt".parse().unwrap()));
    let mut request = get();
    request
        .headers_mut()
        .insert("x-attempt", "stale".parse().unwrap());
    let script = vec![status(503), status(503), status(200)];
    let (outcome, server, _) = send_with(classifier, script, request).await;

    assert_eq!(outcome.unwrap().status(), 200);
    let numbers: Vec<String> = server
        .calls()
        .iter()
        .map(|call| call.headers["x-attempt"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(numbers, ["1", "2", "3"]);
}

/// `HttpClassifier` with a `prepare_attempt` that appends, rather than replaces, a header
/// with the attempt number.
struct AppendAttempt(HttpClassifier);

impl Classify<Request<String>, Response<String>, io::Error> for AppendAttempt {
    type Facts = <HttpClassifier as Classify<Request<String>, Response<String>, io::Error>>::Facts;

    fn plan(&self, request: &Request<String>) -> Plan<Self::Facts> {
        <HttpClassifier as Classify<_, Response<String>, io::Error>>::plan(&self.0, request)
    }

    fn classify(
        &self,
        facts: &Self::Facts,
        outcome: &Result<Response<String>, io::Error>,
    ) -> Verdict {
        <HttpClassifier as Classify<Request<String>, _, _>>::classify(&self.0, facts, outcome)
    }

    fn prepare_attempt(&self, request: &mut Request<String>, attempt: u32) {
        request.headers_mut().append("x-try", attempt.into());
    }
}

#[tokio::test(start_paused = true)]
async fn prepare_attempt_starts_from_caller_request() {
    let policy = RetryPolicy::builder(AppendAttempt(HttpClassifier::default()))
        .backoff(Constant::new(secs(1)))
        .jitter(Jitter::None)
        .logging(Logging::off())
        .build()
        .unwrap();
    let server = Scripted::new(vec![status(503), status(503), status(200)]);
    let service = RetryLayer::new(policy).layer(server.clone());

    let outcome = service.oneshot(get()).await;

    assert_eq!(outcome.unwrap().status(), 200);
    let calls = server.calls();
    assert_eq!(calls.len(), 3);
    for (call, attempt) in calls.iter().zip(["1", "2", "3"]) {
        let values: Vec<_> = call.headers.get_all("x-try").iter().collect();
        assert_eq!(values, [attempt]);
    }
}

#[tokio::test(start_paused = true)]
async fn attempt_header_off_by_default() {
    let (_, server, _) = send(vec![status(503), status(200)], get()).await;
    for call in server.calls() {
        assert!(!call.headers.contains_key("x-attempt"));
    }
}

#[tokio::test(start_paused = true)]
async fn attempt_header_on_unretried_request() {
    let classifier = HttpClassifier::default()
        .attempt_header(Some("x-attempt".parse().unwrap()))
        .statuses([])
        .retry_transport_errors(false);
    let (_, server, _) = send_with(classifier, vec![status(503)], get()).await;
    let calls = server.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].headers["x-attempt"], "1");
}
