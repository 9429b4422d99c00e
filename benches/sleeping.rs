//! Measures the memory of 100,000 requests that sleep in backoff at the same time.
//!
//! Each retrying contender sends `REQUESTS` GET requests to a service that returns 503 for
//! the first attempt of every request and 200 for every later attempt. A `sleep_only` floor
//! creates bare `tokio::time::sleep` futures instead. All futures are created first and then
//! polled together on a current-thread runtime with paused time, so all of them sleep at
//! once. Jitter is off and the delay is constant, so every request must finish exactly
//! `DELAY` after the start. The binary checks that for each request and panics otherwise.
//!
//! The figures come from a counting global allocator: the peak of live heap bytes while the
//! requests sleep, minus the live bytes before, divided by the number of requests. They
//! include the boxed response future of each request and everything it allocates.
//!
//! Run with `cargo bench --bench sleeping`.

#[path = "common/tower_policy.rs"]
mod tower_policy;

use backon::{ConstantBuilder, Retryable};
use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::Full;
use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::fmt::Debug;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;
use tokio::time::Instant;
use tower::retry::backoff::ExponentialBackoffMaker;
use tower::util::rng::HasherRng;
use tower::{Layer, Service, ServiceExt};
use tower_backoff::backoff::Constant;
use tower_backoff::classify::HttpClassifier;
use tower_backoff::{Jitter, RetryLayer, RetryPolicy};
use tower_policy::{MAX_ATTEMPTS, RETRY_STATUSES, TowerPolicy};

/// Tracks live and peak heap bytes and counts allocations.
struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn record_growth(bytes: usize) {
    let live = LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK_BYTES.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// contract of `GlobalAlloc` is met exactly as `System` meets it. The counters only read the
// layouts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        record_growth(layout.size());
        // SAFETY: forwarded unchanged, see the impl.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        record_growth(layout.size());
        // SAFETY: forwarded unchanged, see the impl.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        if new_size >= layout.size() {
            record_growth(new_size - layout.size());
        } else {
            LIVE_BYTES.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged, see the impl.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged, see the impl.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

type Body = Full<Bytes>;

/// Requests in flight at once.
const REQUESTS: usize = 100_000;

/// The constant delay before the retry of every request.
const DELAY: Duration = Duration::from_secs(1);

fn get_request() -> Request<Body> {
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = Uri::from_static("http://127.0.0.1/");
    request
}

/// Returns a service that returns 503 for its first `REQUESTS` calls and 200 for every later
/// call. Every contender makes all first attempts before any retry, so each request
/// fails once and then succeeds.
fn fail_first_attempts() -> impl Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + 'static,
> + Clone
+ 'static {
    let calls = Arc::new(AtomicUsize::new(0));
    tower::service_fn(move |_request: Request<Body>| {
        // Counted at call time, not when the future first runs, so that the order of calls
        // alone decides the status.
        let first_attempt = calls.fetch_add(1, Ordering::Relaxed) < REQUESTS;
        async move {
            let status = if first_attempt {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            let mut response = Response::new(Full::new(Bytes::from_static(b"hello")));
            *response.status_mut() = status;
            Ok(response)
        }
    })
}

/// The figures of one contender.
struct Row {
    contender: &'static str,
    future_size: usize,
    bytes_per_request: f64,
    allocations_per_request: f64,
    on_schedule: usize,
}

/// Creates `REQUESTS` response futures with `start`, polls them all until they finish, and
/// counts the requests that finished with 200 exactly `DELAY` after the start.
fn run<F>(
    contender: &'static str,
    status: fn(&F::Output) -> StatusCode,
    mut start: impl AsyncFnMut() -> F,
) -> Row
where
    F: Future,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime starts");

    runtime.block_on(async {
        let mut futures: Vec<Option<Pin<Box<F>>>> = Vec::with_capacity(REQUESTS);
        let mut finished: Vec<Option<Duration>> = vec![None; REQUESTS];
        let live_before = LIVE_BYTES.load(Ordering::Relaxed);
        PEAK_BYTES.store(live_before, Ordering::Relaxed);
        let allocations_before = ALLOCATIONS.load(Ordering::Relaxed);
        let started = Instant::now();

        for _ in 0..REQUESTS {
            futures.push(Some(Box::pin(start().await)));
        }
        let future_size = size_of::<F>();

        let mut pending = REQUESTS;
        poll_fn(|context| {
            for (index, slot) in futures.iter_mut().enumerate() {
                let Some(future) = slot else { continue };
                if let Poll::Ready(output) = future.as_mut().poll(context) {
                    let code = status(&output);
                    if code == StatusCode::OK {
                        finished[index] = Some(started.elapsed());
                    }
                    *slot = None;
                    pending -= 1;
                }
            }
            if pending == 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;

        let peak = PEAK_BYTES.load(Ordering::Relaxed) - live_before;
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
        let on_schedule = finished
            .iter()
            .filter(|elapsed| **elapsed == Some(DELAY))
            .count();
        Row {
            contender,
            future_size,
            bytes_per_request: peak as f64 / REQUESTS as f64,
            allocations_per_request: allocations as f64 / REQUESTS as f64,
            on_schedule,
        }
    })
}

/// Readies `service` and calls it, which returns its response future unpolled.
async fn call<S>(service: &mut S) -> S::Future
where
    S: Service<Request<Body>>,
    S::Error: Debug,
{
    let ready = service.ready().await.expect("the service is ready");
    ready.call(get_request())
}

fn response_status<E>(outcome: &Result<Response<Body>, E>) -> StatusCode {
    match outcome {
        Ok(response) => response.status(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Sends a request and retries it once after `DELAY`, by hand and with no policy. It shows
/// what a sleeping request costs before a library adds its state.
async fn retry_by_hand<S>(
    mut service: S,
    request: Request<Body>,
) -> Result<Response<Body>, S::Error>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    let response = service.ready().await?.call(request.clone()).await?;
    if !RETRY_STATUSES.contains(&response.status().as_u16()) {
        return Ok(response);
    }
    drop(response);
    tokio::time::sleep(DELAY).await;
    service.ready().await?.call(request).await
}

/// An outcome that backon treats as an error: a retryable status or an error of the service.
enum BackonFailure<Res, E> {
    Status(Res),
    Service(E),
}

/// Returns 200 for the `sleep_only` floor, which has no response.
fn sleep_status(_: &()) -> StatusCode {
    StatusCode::OK
}

fn backon_status<E>(
    outcome: &Result<Response<Body>, BackonFailure<Response<Body>, E>>,
) -> StatusCode {
    match outcome {
        Ok(response) | Err(BackonFailure::Status(response)) => response.status(),
        Err(BackonFailure::Service(_)) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[expect(
    clippy::async_yields_async,
    reason = "each closure readies a service and returns its response future unpolled"
)]
fn main() {
    let mut rows = Vec::new();

    // The floor: a boxed tokio `Sleep` and nothing else, which shows what the runtime's
    // timer costs per sleeping request.
    rows.push(run("sleep_only", sleep_status, async || {
        tokio::time::sleep(DELAY)
    }));

    let service = fail_first_attempts();
    rows.push(run("retry_by_hand", response_status, async || {
        retry_by_hand(service.clone(), get_request())
    }));

    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(DELAY))
        .jitter(Jitter::None)
        .max_attempts(MAX_ATTEMPTS)
        .no_budget()
        .build()
        .expect("the policy is valid");
    let mut tower_backoff = RetryLayer::new(policy).layer(fail_first_attempts());
    rows.push(run("tower_backoff", response_status, async || {
        call(&mut tower_backoff).await
    }));

    let backoff_maker = ExponentialBackoffMaker::new(DELAY, DELAY, 0.0, HasherRng::default())
        .expect("the backoff settings are valid");
    let tower_policy = TowerPolicy::new(backoff_maker, None);
    let mut tower_retry = tower::retry::Retry::new(tower_policy, fail_first_attempts());
    rows.push(run("tower_retry", response_status, async || {
        call(&mut tower_retry).await
    }));

    let service = fail_first_attempts();
    let backoff = ConstantBuilder::default()
        .with_delay(DELAY)
        .with_max_times(MAX_ATTEMPTS as usize - 1);
    rows.push(run("backon", backon_status, async || {
        let service = service.clone();
        let request = get_request();
        let attempt = move || {
            let service = service.clone();
            let request = request.clone();
            async move {
                let response: Response<Body> = service
                    .oneshot(request)
                    .await
                    .map_err(BackonFailure::Service)?;
                if RETRY_STATUSES.contains(&response.status().as_u16()) {
                    return Err(BackonFailure::Status(response));
                }
                Ok(response)
            }
        };
        attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|failure| matches!(failure, BackonFailure::Status(_)))
    }));

    println!("{REQUESTS} requests sleeping {DELAY:?} in backoff at once (paused tokio time):");
    println!();
    println!(
        "| contender | response future (bytes) | peak heap per request (bytes) | allocations per request | finished at exactly {DELAY:?} |"
    );
    println!("|---|---:|---:|---:|---:|");
    let mut all_on_schedule = true;
    for row in &rows {
        println!(
            "| {} | {} | {:.1} | {:.2} | {} of {REQUESTS} |",
            row.contender,
            row.future_size,
            row.bytes_per_request,
            row.allocations_per_request,
            row.on_schedule
        );
        all_on_schedule &= row.on_schedule == REQUESTS;
    }
    assert!(
        all_on_schedule,
        "some requests did not finish with 200 exactly {DELAY:?} after the start"
    );
}
