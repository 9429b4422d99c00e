//! End to end: a hyper-util client wrapped in the layer against a real axum server on
//! 127.0.0.1, with scripted failures. Time is paused, so the recorded delays are exact.

mod support;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use support::{EventLog, secs};
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_backoff::backoff::Constant;
use tower_backoff::classify::HttpClassifier;
use tower_backoff::hooks::{DelaySource, GiveUpReason};
use tower_backoff::{Jitter, Logging, RetryLayer, RetryPolicy, RetryPolicyBuilder};

/// One scripted response of the server.
#[derive(Clone)]
enum Answer {
    Status(u16),
    RetryAfterSeconds(u16, &'static str),
    /// A 429 whose `Retry-After` is an HTTP-date this many seconds after its `Date` header.
    RetryAfterDate(u64),
    Detailed(u16, &'static str, &'static str),
}

#[derive(Default)]
struct Script {
    answers: Vec<Answer>,
    seen: Vec<(Duration, Method, Bytes)>,
}

type Shared = Arc<Mutex<Script>>;

struct TestServer {
    address: SocketAddr,
    script: Shared,
}

impl TestServer {
    /// Starts a server that sends the scripted responses in order, then 200 to every later request.
    async fn start(answers: Vec<Answer>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, answers)
    }

    fn serve(listener: tokio::net::TcpListener, answers: Vec<Answer>) -> Self {
        let address = listener.local_addr().unwrap();
        let script: Shared = Arc::new(Mutex::new(Script {
            answers,
            seen: Vec::new(),
        }));
        let app = Router::new()
            .fallback(answer)
            .with_state((Arc::clone(&script), Instant::now()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, script }
    }

    fn url(&self) -> String {
        format!("http://{}/resource", self.address)
    }

    fn attempt_times_ms(&self) -> Vec<u128> {
        let script = self.script.lock().unwrap();
        script
            .seen
            .iter()
            .map(|(at, _, _)| at.as_millis())
            .collect()
    }

    fn bodies(&self) -> Vec<Bytes> {
        let script = self.script.lock().unwrap();
        script
            .seen
            .iter()
            .map(|(_, _, body)| body.clone())
            .collect()
    }
}

async fn answer(
    State((script, start)): State<(Shared, Instant)>,
    method: Method,
    body: Bytes,
) -> (StatusCode, HeaderMap, &'static str) {
    let answer = {
        let mut script = script.lock().unwrap();
        script.seen.push((start.elapsed(), method, body));
        if script.answers.is_empty() {
            Answer::Status(200)
        } else {
            script.answers.remove(0)
        }
    };

    let mut headers = HeaderMap::new();
    match answer {
        Answer::Status(code) => (StatusCode::from_u16(code).unwrap(), headers, ""),
        Answer::RetryAfterSeconds(code, value) => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static(value));
            (StatusCode::from_u16(code).unwrap(), headers, "")
        }
        Answer::RetryAfterDate(seconds) => {
            let now = SystemTime::now();
            let date = |time| HeaderValue::from_str(&httpdate::fmt_http_date(time)).unwrap();
            headers.insert(header::DATE, date(now));
            headers.insert(header::RETRY_AFTER, date(now + secs(seconds)));
            (StatusCode::TOO_MANY_REQUESTS, headers, "")
        }
        Answer::Detailed(code, marker, body) => {
            headers.insert("x-marker", HeaderValue::from_static(marker));
            (StatusCode::from_u16(code).unwrap(), headers, body)
        }
    }
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;
type ClientEvent<'a> = tower_backoff::hooks::Event<
    'a,
    http::Response<hyper::body::Incoming>,
    hyper_util::client::legacy::Error,
>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

fn builder() -> RetryPolicyBuilder<HttpClassifier, Constant> {
    RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(secs(1)))
        .jitter(Jitter::None)
        .logging(Logging::off())
}

fn request(method: Method, url: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn get_503_then_200() {
    let server = TestServer::start(vec![Answer::Status(503)]).await;
    let log = EventLog::default();
    let service = RetryLayer::new(builder().hooks(log.clone()).build().unwrap()).layer(client());

    let response = service
        .oneshot(request(Method::GET, &server.url(), ""))
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(server.attempt_times_ms(), [0, 1000]);
    assert_eq!(log.hooks(), [("retry", 1), ("success", 2)]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_waited_exactly() {
    let server = TestServer::start(vec![Answer::RetryAfterSeconds(429, "3")]).await;
    let log = EventLog::default();
    let service = RetryLayer::new(builder().hooks(log.clone()).build().unwrap()).layer(client());

    let response = service
        .oneshot(request(Method::GET, &server.url(), ""))
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(server.attempt_times_ms(), [0, 3000]);
    assert_eq!(log.delays(), [secs(3)]);
    assert_eq!(log.events()[0].delay_source, Some(DelaySource::Server));
}

#[tokio::test(start_paused = true)]
async fn retry_after_date_waited_exactly() {
    let server = TestServer::start(vec![Answer::RetryAfterDate(2)]).await;
    let log = EventLog::default();
    let service = RetryLayer::new(builder().hooks(log.clone()).build().unwrap()).layer(client());

    let response = service
        .oneshot(request(Method::GET, &server.url(), ""))
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(server.attempt_times_ms(), [0, 2000]);
    assert_eq!(log.delays(), [secs(2)]);
    assert_eq!(log.events()[0].delay_source, Some(DelaySource::Server));
}

#[tokio::test(start_paused = true)]
async fn post_not_retried_on_503() {
    let server = TestServer::start(vec![Answer::Status(503)]).await;
    let log = EventLog::default();
    let service = RetryLayer::new(builder().hooks(log.clone()).build().unwrap()).layer(client());

    let response = service
        .oneshot(request(Method::POST, &server.url(), "order=1"))
        .await
        .unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(server.attempt_times_ms(), [0]);
    assert_eq!(log.reasons(), [GiveUpReason::NotRetryable]);
}

#[tokio::test(start_paused = true)]
async fn post_retried_after_connection_refused() {
    // A port that was free a moment ago is closed, so the first connection is refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);

    let (opened_tx, opened_rx) = tokio::sync::oneshot::channel::<()>();
    let opened_tx = Mutex::new(Some(opened_tx));
    let server = Arc::new(Mutex::new(None));
    let started = Arc::clone(&server);
    tokio::spawn(async move {
        // The server opens the port when the layer reports the first failure.
        opened_rx.await.unwrap();
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        *started.lock().unwrap() = Some(TestServer::serve(listener, Vec::new()));
    });

    let policy = builder()
        .on_retry(move |event: &ClientEvent<'_>| {
            assert!(event.outcome().as_ref().unwrap_err().is_connect());
            if let Some(sender) = opened_tx.lock().unwrap().take() {
                sender.send(()).unwrap();
            }
        })
        .build()
        .unwrap();
    let service = RetryLayer::new(policy).layer(client());

    let url = format!("http://{address}/resource");
    let response = service
        .oneshot(request(Method::POST, &url, "order=1"))
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let server = server.lock().unwrap().take().unwrap();
    assert_eq!(server.bodies(), [Bytes::from_static(b"order=1")]);
}

#[tokio::test(start_paused = true)]
async fn last_503_returned_intact() {
    let server = TestServer::start(vec![
        Answer::Detailed(503, "first", "down 1"),
        Answer::Detailed(503, "second", "down 2"),
        Answer::Detailed(503, "third", "down for maintenance"),
    ])
    .await;
    let log = EventLog::default();
    let service = RetryLayer::new(builder().hooks(log.clone()).build().unwrap()).layer(client());

    let response = service
        .oneshot(request(Method::GET, &server.url(), ""))
        .await
        .unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-marker"], "third");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "down for maintenance");
    assert_eq!(server.attempt_times_ms(), [0, 1000, 2000]);
    assert_eq!(log.reasons(), [GiveUpReason::Exhausted]);
}

#[tokio::test(start_paused = true)]
async fn max_elapsed_reached() {
    let server = TestServer::start(vec![Answer::Status(503); 20]).await;
    let log = EventLog::default();
    let policy = builder()
        .max_attempts(20)
        .max_elapsed(Duration::from_millis(4500))
        .hooks(log.clone())
        .build()
        .unwrap();
    let service = RetryLayer::new(policy).layer(client());

    let response = service
        .oneshot(request(Method::GET, &server.url(), ""))
        .await
        .unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(server.attempt_times_ms(), [0, 1000, 2000, 3000, 4000]);
    assert_eq!(log.reasons(), [GiveUpReason::Deadline]);
}

#[tokio::test(start_paused = true)]
async fn retry_resends_full_body() {
    let server = TestServer::start(vec![Answer::Status(503)]).await;
    let service = RetryLayer::new(builder().build().unwrap()).layer(client());

    let response = service
        .oneshot(request(Method::PUT, &server.url(), "{\"name\":\"tower\"}"))
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let body = Bytes::from_static(b"{\"name\":\"tower\"}");
    assert_eq!(server.bodies(), [body.clone(), body]);
}
