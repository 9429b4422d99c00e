//! gRPC calls through the retry layer: a tonic client channel wrapped in `ReplayBodyLayer`
//! and `RetryLayer` with `Replayable<GrpcClassifier>`, against a tonic health server on
//! 127.0.0.1 whose responses are scripted. Time is paused, so the recorded delays are exact.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_stream::Stream;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower::ServiceBuilder;
use tower_backoff::backoff::Constant;
use tower_backoff::body::{ReplayBody, ReplayBodyLayer, Replayable};
use tower_backoff::classify::GrpcClassifier;
use tower_backoff::hooks::{DelaySource, Event};
use tower_backoff::{BoxError, Jitter, RetryLayer, RetryPolicy};

/// One scripted response of the health server.
#[derive(Debug, Clone)]
enum Answer {
    /// Fails the call before any message, which tonic sends as a trailers-only response.
    Fail(Code, Option<&'static str>),
    /// Returns SERVING. For `watch`, the stream then fails with UNAVAILABLE.
    Serve,
}

#[derive(Default)]
struct Script {
    answers: Mutex<VecDeque<Answer>>,
    calls: AtomicUsize,
    /// The `grpc-previous-rpc-attempts` value of each call, if it had one.
    previous_attempts: Mutex<Vec<Option<String>>>,
}

impl Script {
    fn next_answer<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let previous = request
            .metadata()
            .get("grpc-previous-rpc-attempts")
            .map(|value| value.to_str().unwrap().to_owned());
        self.previous_attempts.lock().unwrap().push(previous);
        let answer = self.answers.lock().unwrap().pop_front();
        match answer.unwrap_or(Answer::Serve) {
            Answer::Serve => Ok(()),
            Answer::Fail(code, pushback) => {
                let mut status = Status::new(code, "scripted failure");
                if let Some(pushback) = pushback {
                    let value = pushback.parse().unwrap();
                    status
                        .metadata_mut()
                        .insert("grpc-retry-pushback-ms", value);
                }
                Err(status)
            }
        }
    }
}

struct ScriptedHealth(Arc<Script>);

fn serving() -> HealthCheckResponse {
    HealthCheckResponse {
        status: ServingStatus::Serving as i32,
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for ScriptedHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.0.next_answer(&request)?;
        Ok(Response::new(serving()))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        self.0.next_answer(&request)?;
        // One message, then a failure in the trailers: the call has started, so the client
        // must see the failure instead of a retry.
        let messages = [
            Ok(serving()),
            Err(Status::unavailable("stream failed after its first message")),
        ];
        Ok(Response::new(Box::pin(tokio_stream::iter(messages))))
    }
}

/// Starts a health server on 127.0.0.1 that gives the scripted responses in order, then
/// SERVING to every later call.
async fn start_server(answers: Vec<Answer>) -> (String, Arc<Script>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let script = Arc::new(Script {
        answers: Mutex::new(answers.into()),
        ..Script::default()
    });

    let service = HealthServer::new(ScriptedHealth(Arc::clone(&script)));
    tokio::spawn(async move {
        let incoming = TcpListenerStream::new(listener);
        let served = Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await;
        served.expect("the test server runs until the test ends");
    });
    (format!("http://{address}"), script)
}

type GrpcResponse = http::Response<tonic::body::Body>;

/// The delays before each retry, with their source.
type Delays = Arc<Mutex<Vec<(Duration, DelaySource)>>>;

/// Connects a health client whose channel retries through the layers under test.
async fn connect(
    address: String,
) -> (
    HealthClient<
        impl tonic::client::GrpcService<tonic::body::Body, ResponseBody = tonic::body::Body>,
    >,
    Delays,
) {
    let channel = Channel::from_shared(address)
        .unwrap()
        .connect()
        .await
        .unwrap();

    let delays: Delays = Arc::default();
    let seen = Arc::clone(&delays);
    let classifier = GrpcClassifier::default().previous_attempts_header(true);
    let policy = RetryPolicy::builder(Replayable::new(classifier))
        .backoff(Constant::new(Duration::from_millis(40)))
        .jitter(Jitter::None)
        .max_attempts(4)
        .on_retry(move |event: &Event<'_, GrpcResponse, BoxError>| {
            let delay = event.next_delay().zip(event.delay_source());
            seen.lock().unwrap().extend(delay);
        })
        .build()
        .unwrap();

    let service = ServiceBuilder::new()
        .layer(ReplayBodyLayer::default())
        .layer(RetryLayer::new(policy))
        .map_err(BoxError::from)
        .map_request(|request: http::Request<ReplayBody<tonic::body::Body>>| {
            request.map(tonic::body::Body::new)
        })
        .service(channel);
    (HealthClient::new(service), delays)
}

fn check_request() -> HealthCheckRequest {
    HealthCheckRequest {
        service: String::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn unary_retried_after_unavailable() {
    let (address, script) = start_server(vec![
        Answer::Fail(Code::Unavailable, None),
        Answer::Fail(Code::Unavailable, Some("250")),
    ])
    .await;
    let (mut client, delays) = connect(address).await;

    let response = client
        .check(check_request())
        .await
        .expect("SERVING after retries");

    assert_eq!(response.get_ref().status, ServingStatus::Serving as i32);
    assert_eq!(script.calls.load(Ordering::SeqCst), 3);
    let expected = [
        (Duration::from_millis(40), DelaySource::Schedule),
        (Duration::from_millis(250), DelaySource::Server),
    ];
    assert_eq!(*delays.lock().unwrap(), expected);
    let previous_attempts = [None, Some("1".to_owned()), Some("2".to_owned())];
    assert_eq!(*script.previous_attempts.lock().unwrap(), previous_attempts);
}

#[tokio::test(start_paused = true)]
async fn invalid_argument_returned_at_once() {
    let (address, script) = start_server(vec![Answer::Fail(Code::InvalidArgument, None)]).await;
    let (mut client, delays) = connect(address).await;

    let status = client.check(check_request()).await.unwrap_err();

    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(script.calls.load(Ordering::SeqCst), 1);
    assert!(delays.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn negative_pushback_not_retried() {
    let (address, script) = start_server(vec![Answer::Fail(Code::Unavailable, Some("-1"))]).await;
    let (mut client, _) = connect(address).await;

    let status = client.check(check_request()).await.unwrap_err();

    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(script.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn unavailable_retries_exhausted() {
    let failures = vec![Answer::Fail(Code::Unavailable, None); 4];
    let (address, script) = start_server(failures).await;
    let (mut client, delays) = connect(address).await;

    let status = client.check(check_request()).await.unwrap_err();

    assert_eq!(
        status.code(),
        Code::Unavailable,
        "the last status is returned"
    );
    assert_eq!(script.calls.load(Ordering::SeqCst), 4);
    assert_eq!(delays.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn streaming_not_retried_after_ok_head() {
    let (address, script) = start_server(Vec::new()).await;
    let (mut client, delays) = connect(address).await;

    let mut stream = client
        .watch(check_request())
        .await
        .expect("an OK head")
        .into_inner();
    let first = stream.message().await.expect("a first message");
    let failure = stream.message().await.unwrap_err();

    assert_eq!(
        first.map(|message| message.status),
        Some(ServingStatus::Serving as i32)
    );
    assert_eq!(failure.code(), Code::Unavailable);
    assert_eq!(
        script.calls.load(Ordering::SeqCst),
        1,
        "the started call is not retried"
    );
    assert!(delays.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn streaming_retried_before_head() {
    // A failure before the first message comes as a trailers-only response, so the call has
    // not started and is retried.
    let (address, script) = start_server(vec![Answer::Fail(Code::Unavailable, None)]).await;
    let (mut client, _) = connect(address).await;

    let mut stream = client
        .watch(check_request())
        .await
        .expect("an OK head")
        .into_inner();
    let first = stream.message().await.expect("a first message");

    assert_eq!(
        first.map(|message| message.status),
        Some(ServingStatus::Serving as i32)
    );
    assert_eq!(script.calls.load(Ordering::SeqCst), 2);
}
