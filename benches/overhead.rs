//! Measures what a retry middleware adds to requests that succeed on the first attempt.
//!
//! - Group `success_path`: an in-process `tower::service_fn` that returns 200 for every
//!   GET, called bare, through `tower::retry::Retry`, through this crate's `RetryLayer` and
//!   through backon's `Retryable`.
//! - Group `loopback`: a hyper-util client talking HTTP/1.1 to a hyper server on
//!   127.0.0.1, called bare, through `RetryLayer` and through `tower::retry::Retry`.
//!
//! After the criterion groups, the binary prints the heap allocations per call and the size
//! of each contender's response future, counted by the global allocator below, and a
//! comparison in which the contenders take turns (see `compare_in_rounds`).
//!
//! Run with `cargo bench --bench overhead`; add `-- --quick` for a short run.

#[path = "common/tower_policy.rs"]
mod tower_policy;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::fmt::Debug;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tower::retry::backoff::ExponentialBackoffMaker;
use tower::retry::budget::TpsBudget;
use tower::util::rng::HasherRng;
use tower::{Layer, Service, ServiceExt};
use tower_backoff::classify::HttpClassifier;
use tower_backoff::{RetryLayer, RetryPolicy};
use tower_policy::{MAX_ATTEMPTS, RETRY_STATUSES, TowerPolicy};

/// Counts every allocation, so that the report can divide the count by the number of calls.
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// contract of `GlobalAlloc` is met exactly as `System` meets it.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged, see the impl.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged, see the impl.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged, see the impl.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged, see the impl.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

type Body = Full<Bytes>;

/// Calls per contender in the allocation count, after as many warm-up calls.
const COUNTED_CALLS: u32 = 10_000;

/// Rounds of the interleaved comparison, and calls per contender in each round of each
/// group.
const ROUNDS: usize = 30;
const SUCCESS_CALLS_PER_ROUND: u64 = 100_000;
const LOOPBACK_CALLS_PER_ROUND: u64 = 2_000;

/// The outcome of one call: the status, and the size in bytes of the response future that
/// the contender created for it.
struct Sent {
    status: StatusCode,
    future_size: usize,
}

/// Returns a GET without headers, built without a heap allocation: the URI is static.
fn get_request(uri: Uri) -> Request<Body> {
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = uri;
    request
}

/// Returns 200 with a small body for every request, as the in-process service of
/// `success_path`.
///
/// Takes `CONTENDER` so that each contender gets its own copy. With one shared function,
/// LLVM inlines its future into the response future of one contender and calls it from
/// the others, and the contender it picks changes from build to build.
async fn answer_ok<const CONTENDER: u8>(
    _request: Request<Body>,
) -> Result<Response<Body>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"hello"))))
}

impl TowerPolicy {
    /// Creates the policy of `success_path` and `loopback`: 100 ms doubling to 10 s, like
    /// this crate's default schedule, with tower's default budget when `with_budget` is set.
    fn exponential(with_budget: bool) -> Self {
        let backoff_maker = ExponentialBackoffMaker::new(
            Duration::from_millis(100),
            Duration::from_secs(10),
            0.99,
            HasherRng::default(),
        )
        .expect("the backoff settings are valid");
        let budget = with_budget.then(|| Arc::new(TpsBudget::default()));
        Self::new(backoff_maker, budget)
    }
}

/// This crate's layer with `HttpClassifier` and every policy default, which include a
/// `TpsBudget`. Without `with_budget`, the budget is removed.
fn tower_backoff_layer(
    with_budget: bool,
) -> RetryLayer<HttpClassifier, tower_backoff::backoff::Exponential, ()> {
    let mut builder = RetryPolicy::builder(HttpClassifier::default());
    if !with_budget {
        builder = builder.no_budget();
    }
    RetryLayer::new(builder.build().expect("the default policy is valid"))
}

/// backon's exponential schedule with the same settings as the other contenders.
fn backon_builder() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(10))
        .with_max_times(MAX_ATTEMPTS as usize - 1)
}

/// Sends one request through a tower service and records the size of its response future.
async fn send<S, ResBody>(service: &mut S, request: Request<Body>) -> (Response<ResBody>, usize)
where
    S: Service<Request<Body>, Response = Response<ResBody>>,
    S::Error: Debug,
{
    let ready = service.ready().await.expect("the service is ready");
    let future = ready.call(request);
    let future_size = size_of_val(&future);
    let response = future.await.expect("the request succeeds");
    (response, future_size)
}

/// Sends one request through an in-process contender of `success_path`.
async fn send_in_process<S>(service: &mut S, uri: &Uri) -> Sent
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Error: Debug,
{
    let (response, future_size) = send(service, get_request(uri.clone())).await;
    Sent {
        status: response.status(),
        future_size,
    }
}

/// An outcome that backon treats as an error: a retryable status or an error of the service.
enum BackonFailure<Res, E> {
    Status(Res),
    Service(E),
}

/// Sends one request through backon's `Retryable`. Like any backon user with a tower
/// service, it clones the service and the request for each attempt and turns retryable
/// statuses into errors and back.
async fn send_backon<S, ResBody>(service: &S, request: &Request<Body>) -> (Response<ResBody>, usize)
where
    S: Service<Request<Body>, Response = Response<ResBody>> + Clone,
    S::Error: Debug,
{
    let attempt = || {
        let service = service.clone();
        let request = request.clone();
        async move {
            let response = service
                .oneshot(request)
                .await
                .map_err(BackonFailure::Service)?;
            if RETRY_STATUSES.contains(&response.status().as_u16()) {
                return Err(BackonFailure::Status(response));
            }
            Ok(response)
        }
    };
    let future = attempt
        .retry(backon_builder())
        .sleep(tokio::time::sleep)
        .when(|failure| matches!(failure, BackonFailure::Status(_)));
    let future_size = size_of_val(&future);
    let response = match future.await {
        Ok(response) | Err(BackonFailure::Status(response)) => response,
        Err(BackonFailure::Service(error)) => panic!("the request failed: {error:?}"),
    };
    (response, future_size)
}

/// Times `iterations` calls of `call` in one `block_on`, as criterion's `to_async` does.
/// Unlike `to_async`, this lets the call borrow its service mutably.
fn time_calls(
    runtime: &Runtime,
    iterations: u64,
    call: &mut impl AsyncFnMut() -> Sent,
) -> Duration {
    runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..iterations {
            black_box(call().await.status);
        }
        start.elapsed()
    })
}

/// Counts the heap allocations per call over `COUNTED_CALLS` calls, after as many warm-up
/// calls, and returns them with the size of the response future.
fn count_allocations(runtime: &Runtime, call: &mut impl AsyncFnMut() -> Sent) -> (f64, usize) {
    runtime.block_on(async {
        let mut future_size = 0;
        for _ in 0..COUNTED_CALLS {
            let sent = call().await;
            assert!(sent.status.is_success(), "warm-up call got {}", sent.status);
            future_size = sent.future_size;
        }

        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..COUNTED_CALLS {
            black_box(call().await.status);
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        (allocations as f64 / f64::from(COUNTED_CALLS), future_size)
    })
}

/// One row of the allocation report.
struct AllocationRow {
    group: &'static str,
    contender: &'static str,
    allocations_per_call: f64,
    future_size: usize,
}

/// Runs one contender: a criterion benchmark, then the allocation count.
///
/// With `OVERHEAD_LOOP=<group>/<contender>:<calls>` in the environment, it instead runs only
/// the named contender for that many calls and nothing else, for `perf stat -e task-clock`,
/// whose CPU time varies less than wall time on a shared machine.
fn run_contender(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &Runtime,
    rows: &mut Vec<AllocationRow>,
    (group_name, contender): (&'static str, &'static str),
    call: &mut impl AsyncFnMut() -> Sent,
) {
    if let Some((name, calls)) = loop_request() {
        if name == format!("{group_name}/{contender}") {
            time_calls(runtime, calls, call);
        }
        return;
    }

    group.bench_function(contender, |bencher| {
        bencher.iter_custom(|iterations| time_calls(runtime, iterations, call));
    });
    let (allocations_per_call, future_size) = count_allocations(runtime, call);
    rows.push(AllocationRow {
        group: group_name,
        contender,
        allocations_per_call,
        future_size,
    });
}

/// Reads `OVERHEAD_LOOP`, described at `run_contender`.
fn loop_request() -> Option<(String, u64)> {
    let value = std::env::var("OVERHEAD_LOOP").ok()?;
    let (name, calls) = value
        .rsplit_once(':')
        .expect("OVERHEAD_LOOP must be <group>/<contender>:<calls>");
    let calls = calls
        .parse()
        .expect("the call count in OVERHEAD_LOOP must be an integer");
    Some((name.to_owned(), calls))
}

fn current_thread_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime starts")
}

fn success_path(criterion: &mut Criterion, rows: &mut Vec<AllocationRow>) -> Vec<RoundsRow> {
    const GROUP: &str = "success_path";
    let runtime = current_thread_runtime();
    let uri = Uri::from_static("http://127.0.0.1/");
    let mut group = criterion.benchmark_group(GROUP);
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(60);

    let mut bare_service = tower::service_fn(answer_ok::<0>);
    let mut bare = async || send_in_process(&mut bare_service, &uri).await;
    run_contender(&mut group, &runtime, rows, (GROUP, "bare"), &mut bare);

    let mut tower_layered = tower::retry::Retry::new(
        TowerPolicy::exponential(true),
        tower::service_fn(answer_ok::<1>),
    );
    let mut tower_retry = async || send_in_process(&mut tower_layered, &uri).await;
    run_contender(
        &mut group,
        &runtime,
        rows,
        (GROUP, "tower_retry"),
        &mut tower_retry,
    );

    let mut layered = tower_backoff_layer(true).layer(tower::service_fn(answer_ok::<2>));
    let mut tower_backoff = async || send_in_process(&mut layered, &uri).await;
    run_contender(
        &mut group,
        &runtime,
        rows,
        (GROUP, "tower_backoff"),
        &mut tower_backoff,
    );

    let backon_service = tower::service_fn(answer_ok::<3>);
    run_contender(
        &mut group,
        &runtime,
        rows,
        (GROUP, "backon"),
        &mut async || {
            let (response, future_size) =
                send_backon(&backon_service, &get_request(uri.clone())).await;
            Sent {
                status: response.status(),
                future_size,
            }
        },
    );

    // The same two layers without their budgets, which shows what each budget's deposit
    // costs.
    let mut tower_no_budget = tower::retry::Retry::new(
        TowerPolicy::exponential(false),
        tower::service_fn(answer_ok::<4>),
    );
    run_contender(
        &mut group,
        &runtime,
        rows,
        (GROUP, "tower_retry_no_budget"),
        &mut async || send_in_process(&mut tower_no_budget, &uri).await,
    );

    let mut no_budget = tower_backoff_layer(false).layer(tower::service_fn(answer_ok::<5>));
    run_contender(
        &mut group,
        &runtime,
        rows,
        (GROUP, "tower_backoff_no_budget"),
        &mut async || send_in_process(&mut no_budget, &uri).await,
    );

    group.finish();
    if loop_request().is_some() {
        return Vec::new();
    }
    compare_in_rounds(GROUP, SUCCESS_CALLS_PER_ROUND, |index, calls| match index {
        0 => time_calls(&runtime, calls, &mut bare),
        1 => time_calls(&runtime, calls, &mut tower_retry),
        _ => time_calls(&runtime, calls, &mut tower_backoff),
    })
}

/// Returns 200 with the same body as `answer_ok`, as the handler of the loopback server.
async fn serve_ok(_request: Request<hyper::body::Incoming>) -> Result<Response<Body>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"hello"))))
}

/// Starts an HTTP/1.1 server on 127.0.0.1 that returns 200 with a small body for every
/// request, and returns its address.
async fn start_loopback_server() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("binding 127.0.0.1 succeeds");
    let address = listener.local_addr().expect("the listener has an address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = hyper::service::service_fn(serve_ok);
            tokio::spawn(async move {
                // A connection error ends only that connection, and the client reports it.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

/// Sends one request to the loopback server and reads the whole response body, so that
/// the connection returns to the pool.
async fn send_loopback<S>(service: &mut S, uri: &Uri) -> Sent
where
    S: Service<Request<Body>, Response = Response<hyper::body::Incoming>>,
    S::Error: Debug,
{
    let (response, future_size) = send(service, get_request(uri.clone())).await;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body arrives");
    black_box(body.to_bytes());
    Sent {
        status,
        future_size,
    }
}

fn loopback(criterion: &mut Criterion, rows: &mut Vec<AllocationRow>) -> Vec<RoundsRow> {
    const GROUP: &str = "loopback";
    let runtime = current_thread_runtime();
    let address = runtime.block_on(start_loopback_server());
    let uri: Uri = format!("http://{address}/")
        .parse()
        .expect("the server address is a valid URI");
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();

    let mut group = criterion.benchmark_group(GROUP);
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .sample_size(50);

    let mut bare_client = client.clone();
    let mut bare = async || send_loopback(&mut bare_client, &uri).await;
    run_contender(&mut group, &runtime, rows, (GROUP, "bare"), &mut bare);

    let mut layered = tower_backoff_layer(true).layer(client.clone());
    let mut tower_backoff = async || send_loopback(&mut layered, &uri).await;
    run_contender(
        &mut group,
        &runtime,
        rows,
        (GROUP, "tower_backoff"),
        &mut tower_backoff,
    );

    let mut tower_layered =
        tower::retry::Retry::new(TowerPolicy::exponential(true), client.clone());
    let mut tower_retry = async || send_loopback(&mut tower_layered, &uri).await;
    run_contender(
        &mut group,
        &runtime,
        rows,
        (GROUP, "tower_retry"),
        &mut tower_retry,
    );

    group.finish();
    if loop_request().is_some() {
        return Vec::new();
    }
    compare_in_rounds(
        GROUP,
        LOOPBACK_CALLS_PER_ROUND,
        |index, calls| match index {
            0 => time_calls(&runtime, calls, &mut bare),
            1 => time_calls(&runtime, calls, &mut tower_retry),
            _ => time_calls(&runtime, calls, &mut tower_backoff),
        },
    )
}

/// The cost of one layer over the rounds of `compare_in_rounds`. `added_ns` contains the
/// first quartile, median and third quartile of its time per call minus that of `bare` in
/// the same round, and `throughput_change` the median change in calls per second, in
/// percent.
struct RoundsRow {
    group: &'static str,
    contender: &'static str,
    added_ns: [f64; 3],
    throughput_change: f64,
}

/// The contenders of `compare_in_rounds`, in the order of its `run` indexes.
const ROUND_CONTENDERS: [&str; 3] = ["bare", "tower_retry", "tower_backoff"];

/// Runs `ROUNDS` rounds in which `bare`, `tower_retry` and `tower_backoff` each make
/// `calls` calls in turn, through `run(index, calls)`, and returns what each layer adds
/// to a call compared with `bare` in the same round.
///
/// Criterion measures one contender after the other, several seconds each, so a change in
/// the machine's load between two contenders shows up as a difference between them. Here
/// the contenders alternate within a fraction of a second, and the first contender of each
/// round rotates, so such a change affects all of them alike.
fn compare_in_rounds(
    group: &'static str,
    calls: u64,
    mut run: impl FnMut(usize, u64) -> Duration,
) -> Vec<RoundsRow> {
    let contenders = ROUND_CONTENDERS.len();
    let mut added = vec![Vec::new(); contenders - 1];
    let mut changes = vec![Vec::new(); contenders - 1];
    for round in 0..ROUNDS {
        let mut per_call = [0.0; ROUND_CONTENDERS.len()];
        for step in 0..contenders {
            let index = (round + step) % contenders;
            per_call[index] = run(index, calls).as_secs_f64() * 1e9 / calls as f64;
        }
        for layer in 1..contenders {
            added[layer - 1].push(per_call[layer] - per_call[0]);
            changes[layer - 1].push((per_call[0] / per_call[layer] - 1.0) * 100.0);
        }
    }

    (1..contenders)
        .map(|layer| RoundsRow {
            group,
            contender: ROUND_CONTENDERS[layer],
            added_ns: quartiles(&mut added[layer - 1]),
            throughput_change: quartiles(&mut changes[layer - 1])[1],
        })
        .collect()
}

/// Returns the first quartile, the median and the third quartile of `values`.
fn quartiles(values: &mut [f64]) -> [f64; 3] {
    values.sort_by(f64::total_cmp);
    let last = (values.len() - 1) as f64;
    [0.25, 0.5, 0.75].map(|quantile| values[(last * quantile).round() as usize])
}

/// Prints the allocation report and the interleaved comparison as Markdown tables on
/// standard error.
fn print_report(rows: &[AllocationRow], rounds: &[RoundsRow]) {
    eprintln!();
    eprintln!(
        "Heap allocations per call over {COUNTED_CALLS} calls after warm-up, and response future sizes:"
    );
    eprintln!();
    eprintln!("| group | contender | allocations per call | response future (bytes) |");
    eprintln!("|---|---|---:|---:|");
    for row in rows {
        eprintln!(
            "| {} | {} | {:.2} | {} |",
            row.group, row.contender, row.allocations_per_call, row.future_size
        );
    }

    eprintln!();
    eprintln!(
        "What each layer adds to a call, against bare in the same round, over {ROUNDS} rounds in which the contenders take turns:"
    );
    eprintln!();
    eprintln!(
        "| group | contender | added per call, median (ns) | first and third quartile (ns) | throughput change, median |"
    );
    eprintln!("|---|---|---:|---:|---:|");
    for row in rounds {
        let [first, median, third] = row.added_ns;
        eprintln!(
            "| {} | {} | {median:.1} | {first:.1}, {third:.1} | {:+.2}% |",
            row.group, row.contender, row.throughput_change
        );
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let mut rows = Vec::new();
    let mut rounds = success_path(&mut criterion, &mut rows);
    rounds.extend(loopback(&mut criterion, &mut rows));
    if loop_request().is_none() {
        criterion.final_summary();
        print_report(&rows, &rounds);
    }
}
