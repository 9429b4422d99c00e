//! A tonic client whose channel retries UNAVAILABLE calls.
//!
//! The example starts a gRPC health server on 127.0.0.1 that fails the first two `Check`
//! calls with UNAVAILABLE, the second one with a `grpc-retry-pushback-ms` header, and then
//! returns SERVING. The client stacks `ReplayBodyLayer` and `RetryLayer` with
//! `Replayable<GrpcClassifier>` over a tonic `Channel` and prints one line per attempt.
//! A last call names a service with a space in it, which the server rejects with
//! INVALID_ARGUMENT; that status is returned at once.
//!
//! Run it with `cargo run --example tonic_client`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Mutex;
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
use tower_backoff::backoff::Exponential;
use tower_backoff::body::{ReplayBody, ReplayBodyLayer, Replayable};
use tower_backoff::classify::GrpcClassifier;
use tower_backoff::hooks::Event;
use tower_backoff::{BoxError, RetryLayer, RetryPolicy};

/// A health service that fails calls with the statuses queued in `failures`, in order, and
/// rejects service names with spaces.
struct FlakyHealth {
    failures: Mutex<VecDeque<Status>>,
}

impl FlakyHealth {
    fn next_failure(&self) -> Option<Status> {
        self.failures.lock().ok()?.pop_front()
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for FlakyHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        if request.get_ref().service.contains(' ') {
            return Err(Status::invalid_argument("a service name has no spaces"));
        }
        if let Some(status) = self.next_failure() {
            return Err(status);
        }
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        Err(Status::unimplemented("this example serves Check only"))
    }
}

/// Returns the statuses that the first calls fail with.
fn scripted_failures() -> Result<VecDeque<Status>, BoxError> {
    let mut pushback = Status::unavailable("overloaded, come back later");
    pushback
        .metadata_mut()
        .insert("grpc-retry-pushback-ms", "300".parse()?);

    Ok(VecDeque::from([
        Status::unavailable("starting up"),
        pushback,
    ]))
}

type GrpcResponse = http::Response<tonic::body::Body>;

/// Describes the outcome of an attempt by its gRPC status.
fn describe(event: &Event<'_, GrpcResponse, BoxError>) -> String {
    match event.outcome() {
        Ok(response) => match response.headers().get("grpc-status") {
            Some(code) => {
                let code = code.to_str().ok().and_then(|code| code.parse().ok());
                let code = Code::from_i32(code.unwrap_or(Code::Unknown as i32));
                format!("{code:?}")
            }
            None => String::from("OK (response started)"),
        },
        Err(error) => format!("transport error: {error}"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let health = FlakyHealth {
        failures: Mutex::new(scripted_failures()?),
    };
    tokio::spawn(
        Server::builder()
            .add_service(HealthServer::new(health))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    let policy = RetryPolicy::builder(Replayable::new(GrpcClassifier::default()))
        .backoff(Exponential::new(Duration::from_millis(50)))
        .max_attempts(4)
        .on_retry(|event: &Event<'_, GrpcResponse, BoxError>| {
            let delay = event.next_delay().unwrap_or_default();
            let source = event.delay_source().map_or("", |source| source.as_str());
            println!(
                "attempt {}: {}, retrying in {delay:?} ({source} delay)",
                event.attempt(),
                describe(event)
            );
        })
        .on_success(|event: &Event<'_, GrpcResponse, BoxError>| {
            println!("attempt {}: {}", event.attempt(), describe(event));
        })
        .on_give_up(|event: &Event<'_, GrpcResponse, BoxError>| {
            let reason = event.reason().map_or("", |reason| reason.as_str());
            println!(
                "attempt {}: {}, giving up ({reason})",
                event.attempt(),
                describe(event)
            );
        })
        .build()?;

    let channel = Channel::from_shared(format!("http://{address}"))?
        .connect()
        .await?;
    let service = ServiceBuilder::new()
        .layer(ReplayBodyLayer::default())
        .layer(RetryLayer::new(policy))
        .map_err(BoxError::from)
        // The channel takes tonic's own body type, so the replay body is boxed into it.
        .map_request(|request: http::Request<ReplayBody<tonic::body::Body>>| {
            request.map(tonic::body::Body::new)
        })
        .service(channel);
    let mut client = HealthClient::new(service);

    let request = |service: &str| HealthCheckRequest {
        service: service.to_owned(),
    };

    println!("Check #1: fails twice with UNAVAILABLE");
    let response = client.check(request("")).await?;
    let status = ServingStatus::try_from(response.get_ref().status)?;
    println!("Check #1 returned {}", status.as_str_name());

    println!("Check #2: fails with INVALID_ARGUMENT");
    match client.check(request("bad name")).await {
        Ok(_) => return Err("the second call was expected to fail".into()),
        Err(status) => println!(
            "Check #2 returned {:?}: {}",
            status.code(),
            status.message()
        ),
    }
    Ok(())
}
