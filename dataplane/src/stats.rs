//! What the answered requests add to the Python server's metrics, as one JSON document (the
//! contract `kubeloop.contracts.dataplane.DataPlaneStats`): cumulative counts since start, which
//! the Python server adds to its own series at each scrape. Only successful inferences are
//! answered here, so every count is of code 200.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::answer;
use crate::model::OutputData;

/// `kubeloop_serving.metrics.LATENCY_BUCKETS`, checked against it by the contract's test.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// `kubeloop_serving.metrics.PREDICTION_BUCKETS`.
pub const PREDICTION_BUCKETS: [f64; 24] = [
    -1000.0, -100.0, -10.0, -2.0, -1.0, -0.5, -0.1, 0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7,
    0.8, 0.9, 0.95, 1.0, 2.0, 10.0, 100.0, 1000.0,
];
/// `kubeloop_serving.predictions.MAX_CLASSES`: labels beyond it are counted as "other".
const MAX_CLASSES: usize = 50;
const OTHER_CLASS: &str = "other";

/// Counts per bucket (not cumulative; the last is +Inf) and the sum of what was counted.
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new(bounds: usize) -> Self {
        Self {
            counts: vec![0; bounds + 1],
            sum: 0.0,
        }
    }

    /// Prometheus' "le": the first bound at or above the value.
    fn observe(&mut self, bounds: &[f64], value: f64) {
        self.counts[bounds.partition_point(|&bound| bound < value)] += 1;
        self.sum += value;
    }
}

struct Counts {
    requests: u64,
    duration: Histogram,
    prediction: Histogram,
    classes: BTreeMap<String, u64>,
}

pub struct Stats {
    counts: Mutex<Counts>,
    inflight: AtomicI64,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        Self {
            counts: Mutex::new(Counts {
                requests: 0,
                duration: Histogram::new(LATENCY_BUCKETS.len()),
                prediction: Histogram::new(PREDICTION_BUCKETS.len()),
                classes: BTreeMap::new(),
            }),
            inflight: AtomicI64::new(0),
        }
    }

    /// Counts a request as in flight until the guard is dropped.
    pub fn started(&self) -> InFlight<'_> {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.inflight)
    }

    /// One answered request: its duration and its first output (values, or labels by class).
    pub fn answered(&self, seconds: f64, first_output: Option<&OutputData>) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        counts.requests += 1;
        counts.duration.observe(&LATENCY_BUCKETS, seconds);
        match first_output {
            Some(OutputData::F32(values)) => values
                .iter()
                .for_each(|&v| counts.prediction_value(f64::from(v))),
            Some(OutputData::F64(values)) => {
                values.iter().for_each(|&v| counts.prediction_value(v))
            }
            Some(OutputData::I64(labels)) => labels
                .iter()
                .for_each(|label| counts.class(label.to_string())),
            Some(OutputData::I32(labels)) => labels
                .iter()
                .for_each(|label| counts.class(label.to_string())),
            Some(OutputData::U8(labels)) => labels
                .iter()
                .for_each(|label| counts.class(label.to_string())),
            Some(OutputData::Bool(labels)) => labels
                .iter()
                .for_each(|&label| counts.class((if label { "True" } else { "False" }).into())),
            None => {}
        }
    }

    /// The JSON document of the contract.
    pub fn document(&self) -> Vec<u8> {
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(b"{\"requests\":");
        out.extend_from_slice(counts.requests.to_string().as_bytes());
        out.extend_from_slice(b",\"inflight\":");
        out.extend_from_slice(self.inflight.load(Ordering::Relaxed).to_string().as_bytes());
        out.extend_from_slice(b",\"duration\":");
        histogram(&mut out, &LATENCY_BUCKETS, &counts.duration);
        out.extend_from_slice(b",\"prediction\":");
        histogram(&mut out, &PREDICTION_BUCKETS, &counts.prediction);
        out.extend_from_slice(b",\"classes\":{");
        for (index, (label, count)) in counts.classes.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            answer::string(&mut out, label);
            out.push(b':');
            out.extend_from_slice(count.to_string().as_bytes());
        }
        out.extend_from_slice(b"}}");
        out
    }
}

impl Counts {
    fn prediction_value(&mut self, value: f64) {
        if !value.is_nan() {
            self.prediction.observe(&PREDICTION_BUCKETS, value);
        }
    }

    fn class(&mut self, label: String) {
        let known = self.classes.len() < MAX_CLASSES || self.classes.contains_key(&label);
        *self
            .classes
            .entry(if known { label } else { OTHER_CLASS.into() })
            .or_insert(0) += 1;
    }
}

fn histogram(out: &mut Vec<u8>, bounds: &[f64], histogram: &Histogram) {
    out.extend_from_slice(b"{\"bounds\":[");
    for (index, bound) in bounds.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(ryu::Buffer::new().format_finite(*bound).as_bytes());
    }
    out.extend_from_slice(b"],\"counts\":[");
    for (index, count) in histogram.counts.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(count.to_string().as_bytes());
    }
    out.extend_from_slice(b"],\"sum\":");
    // JSON has no infinities; Python's json module reads these words (an output of inf makes the
    // Python server's own sum infinite too)
    match histogram.sum {
        sum if sum.is_finite() => {
            out.extend_from_slice(ryu::Buffer::new().format_finite(sum).as_bytes())
        }
        sum if sum.is_nan() => out.extend_from_slice(b"NaN"),
        sum if sum > 0.0 => out.extend_from_slice(b"Infinity"),
        _ => out.extend_from_slice(b"-Infinity"),
    }
    out.push(b'}');
}

pub struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
