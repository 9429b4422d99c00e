//! The default `tracing` events: one per retry, one per give-up, and their levels.

mod support;

use std::sync::{Arc, Mutex};
use support::{Scripted, get, secs, status};
use tower::{Layer, ServiceExt};
use tower_backoff::backoff::Constant;
use tower_backoff::classify::HttpClassifier;
use tower_backoff::{Jitter, Logging, RetryLayer, RetryPolicy};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// One captured event: its level and its fields as text.
#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    fields: Vec<(String, String)>,
}

impl Captured {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

struct FieldVisitor<'a>(&'a mut Vec<(String, String)>);

impl Visit for FieldVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let mut fields = Vec::new();
        event.record(&mut FieldVisitor(&mut fields));
        self.0.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            fields,
        });
    }
}

async fn run(logging: Logging, script: Vec<support::Step>) -> Vec<Captured> {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let policy = RetryPolicy::builder(HttpClassifier::default())
        .backoff(Constant::new(secs(2)))
        .jitter(Jitter::None)
        .logging(logging)
        .build()
        .unwrap();
    let service = RetryLayer::new(policy).layer(Scripted::new(script));
    service.oneshot(get()).await.unwrap();

    capture.0.lock().unwrap().clone()
}

#[tokio::test(start_paused = true)]
async fn default_levels_for_retry_and_give_up() {
    let events = run(Logging::default(), vec![status(503)]).await;

    assert_eq!(events.len(), 3);
    assert_eq!(events[0].level, Level::WARN);
    assert_eq!(events[0].field("attempt"), Some("1"));
    assert_eq!(events[0].field("delay_ms"), Some("2000"));
    assert_eq!(events[0].field("delay_source"), Some("schedule"));
    assert_eq!(events[0].field("outcome"), Some("response"));
    assert_eq!(events[1].level, Level::WARN);
    assert_eq!(events[1].field("attempt"), Some("2"));
    assert_eq!(events[2].level, Level::ERROR);
    assert_eq!(events[2].field("attempt"), Some("3"));
    assert_eq!(events[2].field("reason"), Some("exhausted"));
    assert_eq!(events[2].field("elapsed_ms"), Some("4000"));
}

#[tokio::test(start_paused = true)]
async fn first_attempt_fatal_logged_at_debug() {
    let events = run(Logging::default(), vec![status(404)]).await;

    assert_eq!(events.len(), 1);
    assert_eq!(events[0].level, Level::DEBUG);
    assert_eq!(events[0].field("reason"), Some("not retryable"));
}

#[tokio::test(start_paused = true)]
async fn success_logged_at_debug() {
    let events = run(Logging::default(), vec![status(503), status(200)]).await;

    assert_eq!(events.len(), 2);
    assert_eq!(events[1].level, Level::DEBUG);
    assert_eq!(events[1].field("attempt"), Some("2"));
}

#[tokio::test(start_paused = true)]
async fn logging_off_emits_nothing() {
    let events = run(Logging::off(), vec![status(503)]).await;
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test(start_paused = true)]
async fn custom_levels_used() {
    let logging = Logging::default()
        .retry(Some(Level::INFO))
        .give_up(Some(Level::WARN))
        .other(None);
    let events = run(logging, vec![status(503)]).await;

    let levels: Vec<Level> = events.iter().map(|event| event.level).collect();
    assert_eq!(levels, [Level::INFO, Level::INFO, Level::WARN]);
}
