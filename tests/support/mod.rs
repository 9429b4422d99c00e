//! Shared pieces of the integration tests: a scripted HTTP service on paused time and a
//! recorder for hook events.

#![allow(dead_code)]

use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::Service;
use tower_backoff::hooks::{DelaySource, Event, GiveUpReason, Hooks};

pub type Outcome = Result<Response<String>, io::Error>;

/// One scripted step: how long the attempt takes, then a response or an error.
#[derive(Debug, Clone)]
pub struct Step {
    latency: Duration,
    answer: Result<ScriptedResponse, io::ErrorKind>,
}

/// The parts of a scripted response.
#[derive(Debug, Clone)]
struct ScriptedResponse {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: String,
}

/// A response with the given status and an empty body.
pub fn status(code: u16) -> Step {
    Step {
        latency: Duration::ZERO,
        answer: Ok(ScriptedResponse {
            status: StatusCode::from_u16(code).unwrap(),
            headers: Vec::new(),
            body: String::new(),
        }),
    }
}

/// A transport error of the given kind.
pub fn error(kind: io::ErrorKind) -> Step {
    Step {
        latency: Duration::ZERO,
        answer: Err(kind),
    }
}

impl Step {
    /// Makes the attempt take `latency` of (paused) time.
    pub fn after(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Adds a response header; the value may hold any bytes.
    pub fn header(mut self, name: &'static str, value: &[u8]) -> Self {
        if let Ok(response) = &mut self.answer {
            response.headers.push((
                HeaderName::from_static(name),
                HeaderValue::from_bytes(value).unwrap(),
            ));
        }
        self
    }

    /// Sets the response body.
    pub fn body(mut self, body: &str) -> Self {
        if let Ok(response) = &mut self.answer {
            response.body = body.to_owned();
        }
        self
    }
}

/// What the scripted service saw of one attempt.
#[derive(Debug, Clone)]
pub struct Call {
    /// When the attempt started, measured from the creation of the service.
    pub at: Duration,
    pub method: http::Method,
    pub body: String,
    pub headers: http::HeaderMap,
}

/// A service that responds from a script and records each call. After the script runs out,
/// it repeats the last step.
#[derive(Clone)]
pub struct Scripted {
    steps: Arc<Mutex<VecDeque<Step>>>,
    last: Arc<Mutex<Option<Step>>>,
    calls: Arc<Mutex<Vec<Call>>>,
    start: Instant,
}

impl Scripted {
    pub fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        Self {
            steps: Arc::new(Mutex::new(steps.into_iter().collect())),
            last: Arc::default(),
            calls: Arc::default(),
            start: Instant::now(),
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The start times of all attempts, in whole milliseconds.
    pub fn attempt_times_ms(&self) -> Vec<u128> {
        self.calls()
            .iter()
            .map(|call| call.at.as_millis())
            .collect()
    }

    fn next_step(&self) -> Step {
        let mut last = self.last.lock().unwrap();
        match self.steps.lock().unwrap().pop_front() {
            Some(step) => {
                *last = Some(step.clone());
                step
            }
            None => last.clone().expect("the script has at least one step"),
        }
    }
}

impl Service<Request<String>> for Scripted {
    type Response = Response<String>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Outcome> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<String>) -> Self::Future {
        self.calls.lock().unwrap().push(Call {
            at: self.start.elapsed(),
            method: request.method().clone(),
            body: request.body().clone(),
            headers: request.headers().clone(),
        });
        let step = self.next_step();
        Box::pin(async move {
            tokio::time::sleep(step.latency).await;
            match step.answer {
                Ok(scripted) => {
                    let mut response = Response::new(scripted.body);
                    *response.status_mut() = scripted.status;
                    response.headers_mut().extend(scripted.headers);
                    Ok(response)
                }
                Err(kind) => Err(io::Error::new(kind, "scripted transport error")),
            }
        })
    }
}

/// One hook call, as recorded by [`EventLog`].
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub hook: &'static str,
    pub attempt: u32,
    pub elapsed: Duration,
    pub next_delay: Option<Duration>,
    pub delay_source: Option<DelaySource>,
    pub reason: Option<GiveUpReason>,
}

/// Hooks that record every call.
#[derive(Debug, Clone, Default)]
pub struct EventLog(Arc<Mutex<Vec<Recorded>>>);

impl EventLog {
    pub fn events(&self) -> Vec<Recorded> {
        self.0.lock().unwrap().clone()
    }

    pub fn hooks(&self) -> Vec<(&'static str, u32)> {
        self.events()
            .iter()
            .map(|event| (event.hook, event.attempt))
            .collect()
    }

    pub fn delays(&self) -> Vec<Duration> {
        self.events()
            .iter()
            .filter_map(|event| event.next_delay)
            .collect()
    }

    pub fn reasons(&self) -> Vec<GiveUpReason> {
        self.events()
            .iter()
            .filter_map(|event| event.reason)
            .collect()
    }

    fn record<Res, E>(&self, hook: &'static str, event: &Event<'_, Res, E>) {
        self.0.lock().unwrap().push(Recorded {
            hook,
            attempt: event.attempt(),
            elapsed: event.elapsed(),
            next_delay: event.next_delay(),
            delay_source: event.delay_source(),
            reason: event.reason(),
        });
    }
}

impl<Res, E> Hooks<Res, E> for EventLog {
    fn on_retry(&self, event: &Event<'_, Res, E>) {
        self.record("retry", event);
    }

    fn on_give_up(&self, event: &Event<'_, Res, E>) {
        self.record("give_up", event);
    }

    fn on_success(&self, event: &Event<'_, Res, E>) {
        self.record("success", event);
    }
}

pub fn get() -> Request<String> {
    Request::get("/").body(String::new()).unwrap()
}

pub fn post(body: &str) -> Request<String> {
    Request::post("/").body(body.to_owned()).unwrap()
}

pub fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

pub fn millis(milliseconds: u64) -> Duration {
    Duration::from_millis(milliseconds)
}
