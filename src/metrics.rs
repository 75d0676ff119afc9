//! Process-wide Prometheus metrics: counters and histograms bumped on the data path with
//! atomics (no lock on the relay's per-message path), rendered as Prometheus text by `admin`.
//!
//! Gauges that describe current state (streams live, blocks, list sizes, inspection lag) are not
//! kept here: the admin API reads them from the relay and the matcher at scrape time, so they
//! cannot drift from the truth.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters by label values (list name, result, reason). Bumped at most a few times per
/// sampled frame or per connection, so a mutex is cheap enough and keeps label sets exact.
#[derive(Debug)]
pub struct LabeledCounter {
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl LabeledCounter {
    const fn new(labels: &'static [&'static str]) -> LabeledCounter {
        LabeledCounter {
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds `n` to the counter with these label values (in the order of the label names).
    pub fn add(&self, values: &[&str], n: u64) {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        *self.map().entry(key).or_insert(0) += n;
    }

    /// Adds one to the counter with these label values.
    pub fn inc(&self, values: &[&str]) {
        self.add(values, 1);
    }

    /// The count for these label values (0 when never bumped).
    pub fn get(&self, values: &[&str]) -> u64 {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        self.map().get(&key).copied().unwrap_or(0)
    }

    fn snapshot(&self) -> Vec<(Vec<String>, u64)> {
        self.map().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<String>, u64>> {
        crate::locks::Locked::locked(&self.values)
    }
}

/// A histogram of durations with fixed bucket bounds in seconds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        // Buckets are stored non-cumulative; rendering adds them up.
        if let Some(i) = self.bounds.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Every counter and histogram of the process.
#[derive(Debug)]
pub struct Metrics {
    /// Broadcaster connections by how they ended.
    pub connections: LabeledCounter,
    /// Media payload bytes received from broadcasters.
    pub bytes_received: Counter,
    /// Media payload bytes forwarded to the platform.
    pub bytes_forwarded: Counter,
    /// Frames out of the decoders.
    pub frames_decoded: Counter,
    /// Frames the samplers picked.
    pub frames_sampled: Counter,
    /// Frames hashed.
    pub frames_hashed: Counter,
    /// Packets or frames a decoder rejected.
    pub decode_errors: Counter,
    /// Frame lookups by list.
    pub lookups: LabeledCounter,
    /// Frames that matched by list.
    pub matches: LabeledCounter,
    /// Streams cut by reason.
    pub cuts: LabeledCounter,
    /// What cuts offered the learning media bank, by outcome.
    pub bank_learnings: LabeledCounter,
    /// List reloads by list and result.
    pub list_reloads: LabeledCounter,
    /// Streams found uninspectable, by kind of cause.
    pub uninspectable: LabeledCounter,
    /// From the first counted match to the cut.
    pub cut_latency: Histogram,
    /// Hashing one sampled frame (PDQ and its dihedrals, letterbox detection).
    pub hash_duration: Histogram,
    /// Locks found poisoned by a panic and recovered.
    pub locks_poisoned: Counter,
    /// Operations sent to the cluster store (Redis), by kind.
    pub cluster_ops: LabeledCounter,
    /// Cluster store calls that failed or missed their deadline.
    pub cluster_errors: Counter,
    /// Cluster updates not sent (the queue to the store was full).
    pub cluster_dropped: Counter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    connections: LabeledCounter::new(&["result"]),
    bytes_received: Counter::default(),
    bytes_forwarded: Counter::default(),
    frames_decoded: Counter::default(),
    frames_sampled: Counter::default(),
    frames_hashed: Counter::default(),
    decode_errors: Counter::default(),
    lookups: LabeledCounter::new(&["list"]),
    matches: LabeledCounter::new(&["list"]),
    cuts: LabeledCounter::new(&["reason"]),
    bank_learnings: LabeledCounter::new(&["result"]),
    list_reloads: LabeledCounter::new(&["list", "result"]),
    uninspectable: LabeledCounter::new(&["cause"]),
    cut_latency: Histogram::new(&[0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0]),
    hash_duration: Histogram::new(&[0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0]),
    locks_poisoned: Counter::default(),
    cluster_ops: LabeledCounter::new(&["op"]),
    cluster_errors: Counter::default(),
    cluster_dropped: Counter::default(),
});

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// Writes every counter and histogram.
    pub fn render(&self, out: &mut Exposition) {
        out.labeled(
            "hashgate_connections_total",
            "Broadcaster connections by how they ended.",
            &self.connections,
        );
        let counters = [
            (
                "hashgate_received_bytes_total",
                "Media payload bytes received from broadcasters.",
                &self.bytes_received,
            ),
            (
                "hashgate_forwarded_bytes_total",
                "Media payload bytes forwarded to the platform.",
                &self.bytes_forwarded,
            ),
            (
                "hashgate_frames_decoded_total",
                "Video frames decoded for inspection.",
                &self.frames_decoded,
            ),
            (
                "hashgate_frames_sampled_total",
                "Decoded frames picked by the sampler.",
                &self.frames_sampled,
            ),
            (
                "hashgate_frames_hashed_total",
                "Sampled frames hashed.",
                &self.frames_hashed,
            ),
            (
                "hashgate_decode_errors_total",
                "Video packets or frames the decoder rejected.",
                &self.decode_errors,
            ),
            (
                "hashgate_lock_poisoned_total",
                "Locks found poisoned by a panic and recovered (each is also logged).",
                &self.locks_poisoned,
            ),
            (
                "hashgate_cluster_errors_total",
                "Cluster store (Redis) calls that failed or missed their deadline.",
                &self.cluster_errors,
            ),
            (
                "hashgate_cluster_dropped_total",
                "Cluster updates dropped because the queue to the store was full.",
                &self.cluster_dropped,
            ),
        ];
        for (name, help, counter) in counters {
            out.family(name, help, "counter");
            out.sample(name, &[], counter.get() as f64);
        }
        out.labeled(
            "hashgate_lookups_total",
            "Hashed frames looked up, by list.",
            &self.lookups,
        );
        out.labeled(
            "hashgate_matches_total",
            "Hashed frames that matched, by list.",
            &self.matches,
        );
        out.labeled(
            "hashgate_cuts_total",
            "Streams cut, by reason (match, uninspectable, operator).",
            &self.cuts,
        );
        out.labeled(
            "hashgate_bank_learnings_total",
            "Cuts whose frames the learning media bank was offered, by result (learned, known, full, busy, error).",
            &self.bank_learnings,
        );
        out.labeled(
            "hashgate_uninspectable_total",
            "Streams inspection could not cover, by cause (codec, picture_size, blind, overload, failure).",
            &self.uninspectable,
        );
        out.labeled(
            "hashgate_list_reloads_total",
            "List reloads by list and result (ok, error: the previous list stays in force).",
            &self.list_reloads,
        );
        out.labeled(
            "hashgate_cluster_ops_total",
            "Operations sent to the cluster store (Redis), by kind.",
            &self.cluster_ops,
        );
        out.histogram(
            "hashgate_cut_latency_seconds",
            "From the arrival of the first counted matching frame to the cut.",
            &self.cut_latency,
        );
        out.histogram(
            "hashgate_hash_duration_seconds",
            "Time to hash one sampled frame.",
            &self.hash_duration,
        );
    }
}

/// Prometheus text exposition format (version 0.0.4), written family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// The `Content-Type` of the text.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// Starts a metric family.
    pub fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// Writes one sample.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
    }

    /// Writes a gauge family with one unlabeled sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, help, "gauge");
        self.sample(name, &[], value);
    }

    fn labeled(&mut self, name: &str, help: &str, counter: &LabeledCounter) {
        self.family(name, help, "counter");
        for (values, count) in counter.snapshot() {
            let labels: Vec<(&str, &str)> = counter
                .labels
                .iter()
                .zip(values.iter())
                .map(|(l, v)| (*l, v.as_str()))
                .collect();
            self.sample(name, &labels, count as f64);
        }
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.family(name, help, "histogram");
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (bound, count) in h.bounds.iter().zip(&h.buckets) {
            cumulative += count.load(Ordering::Relaxed);
            self.sample(&bucket, &[("le", &number(*bound))], cumulative as f64);
        }
        let total = h.count.load(Ordering::Relaxed);
        self.sample(&bucket, &[("le", "+Inf")], total as f64);
        let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        self.sample(&format!("{name}_sum"), &[], sum);
        self.sample(&format!("{name}_count"), &[], total as f64);
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.text
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(5));
        let mut out = Exposition::default();
        out.histogram("x_seconds", "help", &h);
        let text = out.finish();
        assert!(text.contains("x_seconds_bucket{le=\"0.1\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("x_seconds_sum 5.55\n"), "{text}");
        assert!(text.contains("x_seconds_count 3\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let c = LabeledCounter::new(&["list"]);
        c.inc(&["a \"b\"\\c\nd"]);
        let mut out = Exposition::default();
        out.labeled("l_total", "help", &c);
        assert!(out
            .finish()
            .contains("l_total{list=\"a \\\"b\\\"\\\\c\\nd\"} 1\n"));
    }
}
