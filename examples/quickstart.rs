//! Quick start: a real hyper client, wrapped in the retry layer, recovering from the scripted
//! failures of an HTTP server on 127.0.0.1.
//!
//! The server answers:
//! - `/flaky`: 503 twice, then 200. The delays come from the backoff schedule.
//! - `/rate-limited`: 429 with `Retry-After: 1` (seconds) once, then 200.
//! - `/rate-limited-until`: 429 with `Retry-After` as an HTTP-date 2 s after its `Date`
//!   header once, then 200.
//!
//! Run it with `cargo run --example quickstart`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::{Client, Error as ClientError};
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tower::{ServiceBuilder, ServiceExt};
use tower_backoff::backoff::Exponential;
use tower_backoff::classify::HttpClassifier;
use tower_backoff::hooks::Event;
use tower_backoff::{BoxError, Logging, RetryLayer, RetryPolicy};

type Outcome<'a> = Event<'a, Response<Incoming>, ClientError>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let address = start_server().await?;
    println!("server listening on http://{address}");

    let retries = Arc::new(AtomicU32::new(0));
    let counted_retries = Arc::clone(&retries);

    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Exponential::new(Duration::from_millis(200)).max_delay(Duration::from_secs(2)))
        .max_attempts(4)
        .max_elapsed(Duration::from_secs(10))
        // The hooks below print every attempt, so the default log events are switched off.
        .logging(Logging::off())
        .on_retry(move |event: &Outcome<'_>| {
            counted_retries.fetch_add(1, Ordering::Relaxed);
            let delay = event.next_delay().unwrap_or_default();
            let source = event.delay_source().map_or("", |source| source.as_str());
            println!(
                "  attempt {}: {} -> retrying in {} ms (delay from the {source})",
                event.attempt(),
                describe(event),
                delay.as_millis(),
            );
        })
        .on_success(|event: &Outcome<'_>| {
            println!("  attempt {}: {} -> done", event.attempt(), describe(event));
        })
        .on_give_up(|event: &Outcome<'_>| {
            let reason = event.reason().map_or("", |reason| reason.as_str());
            println!(
                "  attempt {}: {} -> giving up ({reason})",
                event.attempt(),
                describe(event)
            );
        })
        .build()?;

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let client = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .service(client);

    let mut requests = 0;
    let started = tokio::time::Instant::now();
    for path in ["/flaky", "/rate-limited", "/rate-limited-until"] {
        println!("GET {path}");
        let request = Request::get(format!("http://{address}{path}")).body(Full::default())?;
        let sent = tokio::time::Instant::now();
        let response = client.clone().oneshot(request).await?;
        println!(
            "  => {} in {} ms",
            response.status(),
            sent.elapsed().as_millis()
        );
        requests += 1;
    }

    let retries = retries.load(Ordering::Relaxed);
    println!(
        "summary: {requests} requests, {} attempts, {retries} retries, {} ms in all",
        requests + retries,
        started.elapsed().as_millis()
    );
    Ok(())
}

fn describe(event: &Outcome<'_>) -> String {
    match event.outcome() {
        Ok(response) => match response.headers().get(header::RETRY_AFTER) {
            Some(retry_after) => format!("{} (Retry-After: {retry_after:?})", response.status()),
            None => response.status().to_string(),
        },
        Err(error) => format!("error: {error}"),
    }
}

/// Starts the scripted server on a free port of 127.0.0.1 and returns its address.
async fn start_server() -> Result<SocketAddr, BoxError> {
    let hits: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let app = Router::new()
        .route("/{name}", axum::routing::get(scripted))
        .with_state(hits);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(address)
}

async fn scripted(
    State(hits): State<Arc<Mutex<HashMap<String, u32>>>>,
    Path(name): Path<String>,
) -> (StatusCode, HeaderMap, &'static str) {
    let hit = {
        let mut hits = hits.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = hits.entry(name.clone()).or_insert(0);
        *count += 1;
        *count
    };

    let mut headers = HeaderMap::new();
    match (name.as_str(), hit) {
        ("flaky", 1 | 2) => (StatusCode::SERVICE_UNAVAILABLE, headers, "busy, try again"),
        ("rate-limited", 1) => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            (StatusCode::TOO_MANY_REQUESTS, headers, "slow down")
        }
        ("rate-limited-until", 1) => {
            // Both headers come from one clock reading, so the delay is exactly 2 s.
            let now = SystemTime::now();
            let retry_at = now + Duration::from_secs(2);
            headers.insert(header::DATE, http_date(now));
            headers.insert(header::RETRY_AFTER, http_date(retry_at));
            (StatusCode::TOO_MANY_REQUESTS, headers, "slow down")
        }
        _ => (StatusCode::OK, headers, "hello"),
    }
}

fn http_date(time: SystemTime) -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date(time)).expect("an HTTP-date is a valid header")
}
