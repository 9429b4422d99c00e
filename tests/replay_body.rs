//! Streaming request bodies through the retry layer: a hyper-util client, wrapped in
//! `ReplayBodyLayer` and `RetryLayer` with a `Replayable` classifier, against a real hyper
//! server on 127.0.0.1 over HTTP/1.1 and HTTP/2 (h2c with prior knowledge).
//!
//! The server hashes the body bytes and keeps the trailers of every attempt, so each test
//! checks that a retry carries exactly what the first attempt sent.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tower::{ServiceBuilder, ServiceExt};
use tower_backoff::backoff::Constant;
use tower_backoff::body::{
    DEFAULT_CAP, ReplayBody, ReplayBodyLayer, ReplayError, ReplayHandle, Replayable,
};
use tower_backoff::classify::HttpClassifier;
use tower_backoff::{BoxError, RetryLayer, RetryPolicy};

/// The body type the tests send: any stream of frames, boxed.
type TestBody = UnsyncBoxBody<Bytes, BoxError>;

const MIB: u64 = 1024 * 1024;
const CAP: u64 = DEFAULT_CAP as u64;

/// Chunk sizes in bytes, used in turn, so that frame boundaries fall at uneven places.
const CHUNK_SIZES: [u64; 7] = [1, 7, 1000, 4096, 16_384, 333, 65_536];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// One scripted response of the server.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// Reads the whole body, then responds with this status.
    ReadThen(u16),
    /// Responds with this status without reading the body.
    Early(u16),
}

/// What the server received in one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Received {
    len: u64,
    hash: u64,
    trailers: Option<HeaderMap>,
    /// Whether the body reached its end without a stream error.
    complete: bool,
}

struct TestServer {
    address: SocketAddr,
    attempts: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl TestServer {
    /// Starts a server that gives the scripted responses in order, then reads the body and
    /// responds 200.
    async fn start(answers: Vec<Answer>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let attempts = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(answers);

        let (attempts_seen, received_log) = (Arc::clone(&attempts), Arc::clone(&received));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (attempts, received, answers) = (
                    Arc::clone(&attempts_seen),
                    Arc::clone(&received_log),
                    Arc::clone(&answers),
                );
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let attempt = attempts.fetch_add(1, Ordering::SeqCst);
                    let answer = answers
                        .get(attempt)
                        .copied()
                        .unwrap_or(Answer::ReadThen(200));
                    let received = Arc::clone(&received);
                    async move {
                        let status = match answer {
                            Answer::Early(status) => status,
                            Answer::ReadThen(status) => {
                                let body = read_body(request.into_body()).await;
                                received.lock().unwrap().push(body);
                                status
                            }
                        };
                        let response = Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::from_static(b"scripted")))
                            .unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(async move {
                    // Serves HTTP/1.1 and HTTP/2 with prior knowledge on the same port. A
                    // connection the client drops early ends with an error that is expected.
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });

        Self {
            address,
            attempts,
            received,
        }
    }

    fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn uri(&self) -> String {
        format!("http://{}/upload", self.address)
    }
}

/// Reads a request body frame by frame, without holding it in memory.
async fn read_body(mut body: Incoming) -> Received {
    let mut received = Received {
        len: 0,
        hash: FNV_OFFSET,
        trailers: None,
        complete: true,
    };
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            received.complete = false;
            break;
        };
        if let Some(data) = frame.data_ref() {
            received.len += data.len() as u64;
            received.hash = fnv1a(received.hash, data);
        } else if let Some(trailers) = frame.trailers_ref() {
            received.trailers = Some(trailers.clone());
        }
    }
    received
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Continues a 64-bit FNV-1a hash over `bytes`.
fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Returns the chunks of a generated body of `len` bytes, created one at a time.
fn generated_chunks(len: u64) -> impl Iterator<Item = Bytes> + Send + 'static {
    let mut offset = 0u64;
    let mut index = 0usize;
    std::iter::from_fn(move || {
        if offset >= len {
            return None;
        }
        let size = CHUNK_SIZES[index % CHUNK_SIZES.len()].min(len - offset);
        let chunk: Vec<u8> = (offset..offset + size)
            .map(|position| (position.wrapping_mul(31) ^ (position >> 11)) as u8)
            .collect();
        offset += size;
        index += 1;
        Some(Bytes::from(chunk))
    })
}

fn trailers(len: u64) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-body-length", HeaderValue::from(len));
    trailers.insert("x-producer", HeaderValue::from_static("replay-body-test"));
    trailers
}

/// What the server must receive for a generated body of `len` bytes with trailers.
fn expected(len: u64) -> Received {
    let hash = generated_chunks(len).fold(FNV_OFFSET, |hash, chunk| fnv1a(hash, &chunk));
    Received {
        len,
        hash,
        trailers: Some(trailers(len)),
        complete: true,
    }
}

/// Returns a streaming body of `len` generated bytes in chunks of varied sizes, then trailers.
fn generated_body(len: u64) -> TestBody {
    let data = generated_chunks(len).map(|chunk| Ok(Frame::data(chunk)));
    let frames = data.chain(std::iter::once(Ok(Frame::trailers(trailers(len)))));
    StreamBody::new(tokio_stream::iter(frames)).boxed_unsync()
}

/// Returns a body fed from a channel, as a proxy or an upload would produce it.
fn channel_body() -> (mpsc::Sender<Result<Frame<Bytes>, BoxError>>, TestBody) {
    let (sender, receiver) = mpsc::channel(4);
    let body = StreamBody::new(ReceiverStream::new(receiver)).boxed_unsync();
    (sender, body)
}

/// Sends a generated body of `len` bytes and its trailers through a channel.
fn spawn_producer(sender: mpsc::Sender<Result<Frame<Bytes>, BoxError>>, len: u64) {
    tokio::spawn(async move {
        for chunk in generated_chunks(len) {
            if sender.send(Ok(Frame::data(chunk))).await.is_err() {
                return;
            }
        }
        let _ = sender.send(Ok(Frame::trailers(trailers(len)))).await;
    });
}

fn request(method: Method, uri: String, body: TestBody) -> Request<TestBody> {
    Request::builder()
        .method(method)
        .uri(uri)
        // HTTP/1.1 sends only the trailer fields that this header declares.
        .header("trailer", "x-body-length, x-producer")
        .body(body)
        .unwrap()
}

fn client(protocol: Protocol) -> Client<HttpConnector, ReplayBody<TestBody>> {
    let mut builder = Client::builder(TokioExecutor::new());
    builder.http2_only(protocol == Protocol::Http2);
    builder.build_http()
}

/// Sends one request through `ReplayBodyLayer` and `RetryLayer` to a hyper-util client,
/// and returns the response status with the replay handle of the request.
async fn send(
    protocol: Protocol,
    cap: usize,
    request: Request<TestBody>,
) -> (StatusCode, ReplayHandle) {
    let client = client(protocol);

    // Zero delays: these tests check bodies, not schedules.
    let policy = RetryPolicy::builder(Replayable::new(HttpClassifier::default()))
        .backoff(Constant::new(Duration::ZERO))
        .max_attempts(3)
        .build()
        .unwrap();

    let handles = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&handles);
    let service = ServiceBuilder::new()
        .layer(ReplayBodyLayer::new(cap))
        .layer(RetryLayer::new(policy))
        .map_request(move |request: Request<ReplayBody<TestBody>>| {
            seen.lock().unwrap().push(request.body().handle());
            request
        })
        .service(client);

    let response = service.oneshot(request).await.expect("a response");
    let handle = handles.lock().unwrap()[0].clone();
    (response.status(), handle)
}

async fn check_put_sizes(protocol: Protocol) {
    for len in [0, 1, CAP - 1, CAP, CAP + 1, 10 * MIB] {
        let server = TestServer::start(vec![Answer::ReadThen(503)]).await;
        let put = request(Method::PUT, server.uri(), generated_body(len));

        let (status, handle) = send(protocol, DEFAULT_CAP, put).await;

        let received = server.received();
        let original = expected(len);
        for (attempt, body) in received.iter().enumerate() {
            assert_eq!(
                *body,
                original,
                "{protocol:?}, {len} bytes, attempt {}",
                attempt + 1
            );
        }
        if len <= CAP {
            assert_eq!(received.len(), 2, "{protocol:?}, {len} bytes: retried once");
            assert_eq!(status, StatusCode::OK, "{protocol:?}, {len} bytes");
            assert!(handle.is_complete(), "{protocol:?}, {len} bytes: recorded");
        } else {
            assert_eq!(received.len(), 1, "{protocol:?}, {len} bytes: sent once");
            assert_eq!(
                status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{protocol:?}, {len} bytes"
            );
            assert!(
                !handle.is_replayable(),
                "{protocol:?}, {len} bytes: not replayable"
            );
        }
        assert!(
            handle.max_buffered_bytes() <= DEFAULT_CAP,
            "{protocol:?}, {len} bytes"
        );
    }
}

#[tokio::test]
async fn put_sizes_replayed_http1() {
    check_put_sizes(Protocol::Http1).await;
}

#[tokio::test]
async fn put_sizes_replayed_http2() {
    check_put_sizes(Protocol::Http2).await;
}

async fn check_post_channel(protocol: Protocol) {
    // Within the cap: a 408 means that the server did not process the request, so even a POST
    // is retried, with the same bytes and trailers.
    let server = TestServer::start(vec![Answer::ReadThen(408)]).await;
    let (sender, body) = channel_body();
    spawn_producer(sender, 20_000);

    let (status, _) = send(
        protocol,
        DEFAULT_CAP,
        request(Method::POST, server.uri(), body),
    )
    .await;

    assert_eq!(status, StatusCode::OK, "{protocol:?}");
    assert_eq!(
        server.received(),
        [expected(20_000), expected(20_000)],
        "{protocol:?}"
    );

    // Above the cap: sent once in full, and the 408 is returned.
    let server = TestServer::start(vec![Answer::ReadThen(408)]).await;
    let (sender, body) = channel_body();
    spawn_producer(sender, 3 * CAP);

    let (status, handle) = send(
        protocol,
        DEFAULT_CAP,
        request(Method::POST, server.uri(), body),
    )
    .await;

    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{protocol:?}");
    assert_eq!(server.received(), [expected(3 * CAP)], "{protocol:?}");
    assert!(!handle.is_replayable(), "{protocol:?}");
}

#[tokio::test]
async fn post_channel_body_http1() {
    check_post_channel(Protocol::Http1).await;
}

#[tokio::test]
async fn post_channel_body_http2() {
    check_post_channel(Protocol::Http2).await;
}

async fn check_early_response(protocol: Protocol) {
    let server = TestServer::start(vec![Answer::Early(503)]).await;
    let (sender, body) = channel_body();
    // The first chunk goes out; the rest of the body is held back until the response
    // arrives, so the response certainly comes before the end of the body.
    sender
        .send(Ok(Frame::data(Bytes::from_static(b"first chunk"))))
        .await
        .unwrap();

    let (status, handle) = send(
        protocol,
        DEFAULT_CAP,
        request(Method::PUT, server.uri(), body),
    )
    .await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{protocol:?}");
    assert_eq!(server.attempts(), 1, "{protocol:?}: not retried");
    assert!(!handle.is_replayable(), "{protocol:?}");

    // The producer may now find the body gone; that must not panic anything.
    let _ = sender
        .send(Ok(Frame::data(Bytes::from_static(b"late chunk"))))
        .await;
    drop(sender);
}

#[tokio::test]
async fn early_response_not_retried_http1() {
    check_early_response(Protocol::Http1).await;
}

#[tokio::test]
async fn early_response_not_retried_http2() {
    check_early_response(Protocol::Http2).await;
}

#[tokio::test]
async fn hundred_mib_buffer_stays_capped() {
    const LEN: u64 = 100 * MIB;
    const CHUNK: u64 = 64 * 1024;

    let server = TestServer::start(vec![Answer::ReadThen(503)]).await;
    // One 64 KiB chunk, shared by every frame, so the test itself keeps only 64 KiB in memory.
    let chunk = Bytes::from(vec![0xa5; CHUNK as usize]);
    let frames = (0..LEN / CHUNK).map(move |_| Ok::<_, BoxError>(Frame::data(chunk.clone())));
    let body = StreamBody::new(tokio_stream::iter(frames)).boxed_unsync();

    let (status, handle) = send(
        Protocol::Http1,
        DEFAULT_CAP,
        request(Method::PUT, server.uri(), body),
    )
    .await;

    let received = server.received();
    assert_eq!(received.len(), 1, "sent once");
    assert_eq!(received[0].len, LEN);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(handle.max_buffered_bytes() <= DEFAULT_CAP);
    assert_eq!(
        handle.buffered_bytes(),
        0,
        "the recording is dropped at the cap"
    );
}

#[tokio::test]
async fn size_hint_above_cap_not_buffered() {
    let server = TestServer::start(vec![Answer::ReadThen(503)]).await;
    let len = CAP + 1;
    let bytes: Vec<u8> = generated_chunks(len)
        .flat_map(|chunk| chunk.to_vec())
        .collect();
    let body = Full::new(Bytes::from(bytes))
        .map_err(BoxError::from)
        .boxed_unsync();
    assert_eq!(body.size_hint().exact(), Some(len));

    let (status, handle) = send(
        Protocol::Http1,
        DEFAULT_CAP,
        request(Method::PUT, server.uri(), body),
    )
    .await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.attempts(), 1);
    assert_eq!(server.received()[0].len, len);
    assert_eq!(server.received()[0].hash, expected(len).hash);
    assert_eq!(handle.max_buffered_bytes(), 0, "never recorded");
}

#[tokio::test]
async fn small_cap_applies() {
    // A 100-byte cap: 100 bytes are replayed, 101 bytes are sent once.
    for (len, attempts) in [(100, 2), (101, 1)] {
        let server = TestServer::start(vec![Answer::ReadThen(503)]).await;
        let put = request(Method::PUT, server.uri(), generated_body(len));

        let (_, handle) = send(Protocol::Http2, 100, put).await;

        assert_eq!(server.received().len(), attempts, "{len} bytes");
        assert!(
            server.received().iter().all(|body| *body == expected(len)),
            "{len} bytes"
        );
        assert!(handle.max_buffered_bytes() <= 100, "{len} bytes");
    }
}

async fn check_without_replayable(protocol: Protocol) {
    // A plain `HttpClassifier` retries the 503 even though the body passed the cap. The
    // retry's body then fails at its first poll, so the server never receives a second
    // complete body, and the caller gets an error instead of a wrong upload.
    let server = TestServer::start(vec![Answer::ReadThen(503)]).await;
    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(Duration::ZERO))
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(ReplayBodyLayer::default())
        .layer(RetryLayer::new(policy))
        .service(client(protocol));
    let put = request(Method::PUT, server.uri(), generated_body(2 * CAP));

    let outcome = service.oneshot(put).await;

    assert!(outcome.is_err(), "{protocol:?}: the retry fails");
    let received = server.received();
    let complete: Vec<&Received> = received.iter().filter(|body| body.complete).collect();
    assert_eq!(
        complete,
        [&expected(2 * CAP)],
        "{protocol:?}: one complete body"
    );
}

#[tokio::test]
async fn without_replayable_no_partial_retry_http1() {
    check_without_replayable(Protocol::Http1).await;
}

#[tokio::test]
async fn without_replayable_no_partial_retry_http2() {
    check_without_replayable(Protocol::Http2).await;
}

/// A body with an exact size hint that finds its end only at the poll after its last data
/// frame, as a stream of a known length does.
struct KnownLength {
    inner: TestBody,
    len: u64,
}

impl Body for KnownLength {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.len)
    }
}

#[tokio::test]
async fn known_length_http1_sent_once() {
    // hyper drops an HTTP/1.1 body after `Content-Length` bytes without polling its end, so
    // the recording never completes and the 503 is returned instead of a retry.
    let server = TestServer::start(vec![Answer::ReadThen(503)]).await;
    let data = generated_chunks(5000).map(|chunk| Ok(Frame::data(chunk)));
    let inner = StreamBody::new(tokio_stream::iter(data)).boxed_unsync();
    let body = KnownLength { inner, len: 5000 }.boxed_unsync();

    let (status, handle) = send(
        Protocol::Http1,
        DEFAULT_CAP,
        request(Method::PUT, server.uri(), body),
    )
    .await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.attempts(), 1);
    assert_eq!(server.received()[0].len, 5000);
    assert!(!handle.is_replayable());
}

#[tokio::test]
async fn unread_body_retried_after_refused_connection() {
    // The first attempt fails before it reads the body, as a refused connection does, so
    // the second attempt streams the whole body from the start.
    let calls = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let (calls_seen, bodies_seen) = (Arc::clone(&calls), Arc::clone(&bodies));
    let inner = tower::service_fn(move |request: Request<ReplayBody<TestBody>>| {
        let call = calls_seen.fetch_add(1, Ordering::SeqCst);
        let bodies = Arc::clone(&bodies_seen);
        async move {
            if call == 0 {
                return Err(io::Error::from(io::ErrorKind::ConnectionRefused));
            }
            let body = request
                .into_body()
                .collect()
                .await
                .map_err(io::Error::other)?;
            bodies.lock().unwrap().push(body.to_bytes());
            Ok(Response::new(()))
        }
    });
    let policy = RetryPolicy::builder(Replayable::new(HttpClassifier::default()))
        .backoff(Constant::new(Duration::ZERO))
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(ReplayBodyLayer::default())
        .layer(RetryLayer::new(policy))
        .service(inner);

    let (sender, body) = channel_body();
    spawn_producer(sender, 5000);
    let response = service
        .oneshot(request(Method::POST, "http://localhost/".into(), body))
        .await;

    assert!(response.is_ok());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let expected_bytes: Vec<u8> = generated_chunks(5000)
        .flat_map(|chunk| chunk.to_vec())
        .collect();
    assert_eq!(*bodies.lock().unwrap(), [Bytes::from(expected_bytes)]);
}

/// Collects every frame of a body: data frames as they came, then the trailers.
async fn frames<B>(mut body: B) -> Result<(Vec<Bytes>, Option<HeaderMap>), B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut data = Vec::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Some(chunk) = frame.data_ref() {
            data.push(chunk.clone());
        } else if let Some(map) = frame.trailers_ref() {
            trailers = Some(map.clone());
        }
    }
    Ok((data, trailers))
}

#[tokio::test]
async fn clone_replays_same_frames() {
    let chunks = ["", "a", "bc", "", "def"].map(Bytes::from);
    let data = chunks
        .clone()
        .map(|chunk| Ok::<_, BoxError>(Frame::data(chunk)));
    let frames_in = data.into_iter().chain([Ok(Frame::trailers(trailers(6)))]);
    let first = ReplayBody::new(StreamBody::new(tokio_stream::iter(frames_in)));
    let second = first.clone();
    let third = second.clone();

    let sent = frames(first).await.unwrap();
    assert_eq!(sent, (chunks.to_vec(), Some(trailers(6))));
    assert_eq!(frames(second).await.unwrap(), sent);
    assert_eq!(frames(third).await.unwrap(), sent);
}

#[tokio::test]
async fn replay_keeps_exact_size_hint() {
    let first = ReplayBody::new(Full::new(Bytes::from_static(b"twelve bytes")));
    let second = first.clone();
    assert_eq!(first.size_hint().exact(), Some(12));

    frames(first).await.unwrap();

    assert_eq!(second.size_hint().exact(), Some(12));
    assert!(!second.is_end_stream());
}

#[tokio::test]
async fn empty_body_is_replayable() {
    let first = ReplayBody::new(Full::new(Bytes::new()));
    let second = first.clone();
    let handle = first.handle();

    // hyper checks the end of an empty body without polling it.
    assert!(first.is_end_stream());
    drop(first);

    assert!(handle.is_complete());
    assert!(second.is_end_stream());
    assert_eq!(frames(second).await.unwrap(), (Vec::new(), None));
}

#[tokio::test]
async fn clone_during_stream_errors() {
    let (sender, body) = channel_body();
    let mut first = ReplayBody::new(body);
    let second = first.clone();
    let handle = first.handle();

    sender
        .send(Ok(Frame::data(Bytes::from_static(b"part"))))
        .await
        .unwrap();
    let frame = first.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "part");

    // The first clone is still streaming: the second must not send a partial body.
    let error = frames(second).await.unwrap_err();
    assert_eq!(
        error.downcast_ref::<ReplayError>(),
        Some(&ReplayError::StillStreaming)
    );
    assert!(!handle.is_replayable());

    // Dropped before the end: what was recorded is a prefix, so nothing is replayable.
    drop(first);
    assert!(!handle.is_replayable());
    assert_eq!(handle.buffered_bytes(), 0);
    assert!(
        sender.is_closed(),
        "the wrapped body is dropped with its streaming clone"
    );
}

#[tokio::test]
async fn failed_body_not_replayable() {
    let frames_in: [Result<Frame<Bytes>, BoxError>; 2] = [
        Ok(Frame::data(Bytes::from_static(b"start"))),
        Err("disk read failed".into()),
    ];
    let first = ReplayBody::new(StreamBody::new(tokio_stream::iter(frames_in)));
    let second = first.clone();
    let handle = first.handle();

    assert!(frames(first).await.is_err());

    assert!(!handle.is_replayable());
    let error = frames(second).await.unwrap_err();
    assert_eq!(
        error.downcast_ref::<ReplayError>(),
        Some(&ReplayError::NotRecorded)
    );
}
