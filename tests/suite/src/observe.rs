//! What the observability scenarios read: every span created in the test
//! process (a small capturing `tracing` layer) and every metric recorded (a
//! small in-process `metrics` recorder). Both are global, installed once per
//! test binary; scenarios tell their records apart by the client id.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use metrics::{Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// One span as it was created, with the fields recorded on it since.
#[derive(Debug, Clone)]
pub struct CapturedSpan {
    /// The span's name.
    pub name: &'static str,
    /// Its parent's index in [`Spans::all`], if it has one.
    pub parent: Option<usize>,
    /// Its fields, each as text (strings unquoted).
    pub fields: BTreeMap<String, String>,
}

impl CapturedSpan {
    /// The field `name`, if recorded.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// The spans captured in this process.
#[derive(Debug, Default)]
pub struct Spans(Mutex<Vec<CapturedSpan>>);

impl Spans {
    fn lock(&self) -> MutexGuard<'_, Vec<CapturedSpan>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every span so far, in creation order.
    pub fn all(&self) -> Vec<CapturedSpan> {
        self.lock().clone()
    }
}

/// Starts capturing spans (once per process) and returns the capture.
pub fn spans() -> &'static Spans {
    static SPANS: OnceLock<&'static Spans> = OnceLock::new();
    SPANS.get_or_init(|| {
        let spans: &'static Spans = Box::leak(Box::default());
        let subscriber = tracing_subscriber::registry().with(Capture(spans));
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber in this binary");
        spans
    })
}

/// A span's index in [`Spans`], kept in its registry extensions (span ids
/// are reused once a span closes; indexes are not).
struct Index(usize);

struct Capture(&'static Spans);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        let parent = if let Some(parent) = attributes.parent() {
            context.span(parent)
        } else if attributes.is_contextual() {
            context.lookup_current()
        } else {
            None
        };
        let parent = parent.and_then(|span| span.extensions().get::<Index>().map(|index| index.0));
        let mut fields = BTreeMap::new();
        attributes.record(&mut Fields(&mut fields));
        let mut spans = self.0.lock();
        spans.push(CapturedSpan {
            name: attributes.metadata().name(),
            parent,
            fields,
        });
        let index = spans.len() - 1;
        drop(spans);
        if let Some(span) = context.span(id) {
            span.extensions_mut().insert(Index(index));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, context: Context<'_, S>) {
        let Some(index) = context
            .span(id)
            .and_then(|span| span.extensions().get::<Index>().map(|index| index.0))
        else {
            return;
        };
        if let Some(span) = self.0.lock().get_mut(index) {
            values.record(&mut Fields(&mut span.fields));
        }
    }
}

/// Every metric recorded in this process, by name and labels.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<HashMap<Key, Arc<AtomicU64>>>,
    gauges: Mutex<HashMap<Key, Arc<AtomicU64>>>,
    histograms: Mutex<HashMap<Key, Arc<Samples>>>,
}

#[derive(Debug, Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(value);
    }
}

fn matches(key: &Key, name: &str, labels: &[(&str, &str)]) -> bool {
    key.name() == name
        && labels
            .iter()
            .all(|(k, v)| key.labels().any(|label| label.key() == *k && label.value() == *v))
}

impl Metrics {
    /// The sum of the counters named `name` whose labels include `labels`.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters
            .iter()
            .filter(|(key, _)| matches(key, name, labels))
            .map(|(_, value)| value.load(Ordering::Relaxed))
            .sum()
    }

    /// The gauge named `name` with exactly these labels' values among its own.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let gauges = self.gauges.lock().unwrap_or_else(PoisonError::into_inner);
        gauges
            .iter()
            .find(|(key, _)| matches(key, name, labels))
            .map(|(_, value)| f64::from_bits(value.load(Ordering::Relaxed)))
    }

    /// The values of label `label` on the gauges named `name` whose labels include `labels`.
    pub fn gauge_label_values(&self, name: &str, labels: &[(&str, &str)], label: &str) -> Vec<String> {
        let gauges = self.gauges.lock().unwrap_or_else(PoisonError::into_inner);
        let mut values: Vec<String> = gauges
            .keys()
            .filter(|key| matches(key, name, labels))
            .flat_map(|key| {
                key.labels()
                    .filter(|l| l.key() == label)
                    .map(|l| l.value().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        values.sort();
        values
    }

    /// Every sample of the histograms named `name` whose labels include `labels`.
    pub fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        let histograms = self.histograms.lock().unwrap_or_else(PoisonError::into_inner);
        histograms
            .iter()
            .filter(|(key, _)| matches(key, name, labels))
            .flat_map(|(_, samples)| samples.0.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .collect()
    }
}

struct Installed(&'static Metrics);

impl Recorder for Installed {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.0.counters.lock().unwrap_or_else(PoisonError::into_inner);
        Counter::from_arc(Arc::clone(counters.entry(key.clone()).or_default()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut gauges = self.0.gauges.lock().unwrap_or_else(PoisonError::into_inner);
        Gauge::from_arc(Arc::clone(gauges.entry(key.clone()).or_default()))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut histograms = self.0.histograms.lock().unwrap_or_else(PoisonError::into_inner);
        Histogram::from_arc(Arc::clone(histograms.entry(key.clone()).or_default()))
    }
}

/// Installs the recorder (once per process) and returns what it holds.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<&'static Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let metrics: &'static Metrics = Box::leak(Box::default());
        metrics::set_global_recorder(Installed(metrics)).expect("no other recorder in this binary");
        metrics
    })
}
