//! The standard metrics every component emits — events and bytes in and out, errors, dead letters, drops,
//! processing latency and queue depth — kept in atomics so that counting costs no lock, and rendered in the
//! Prometheus text format or as a serializable snapshot.

use serde::Serialize;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stratum_core::sync::lock;

/// Upper bounds, in microseconds, of the processing latency buckets (the last bucket is unbounded).
pub const LATENCY_BUCKETS_MICROSECONDS: [u64; 12] =
    [10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 250_000, 1_000_000];

/// The metrics of one component instance.
#[derive(Debug, Default)]
pub struct ComponentMetrics {
    /// The component's name.
    pub component: String,
    /// The registered kind, for example `generator`, `stream`, `file`.
    pub kind: String,
    /// Records taken in.
    pub events_in: AtomicU64,
    /// Records sent on.
    pub events_out: AtomicU64,
    /// Bytes taken in.
    pub bytes_in: AtomicU64,
    /// Bytes sent on.
    pub bytes_out: AtomicU64,
    /// Failures that did not stop the component (a write retried, a record it could not handle).
    pub errors: AtomicU64,
    /// Records that did not fit the schema, sent to the dead-letter output with the reason.
    pub dead_letters: AtomicU64,
    /// Records dropped on purpose: too late for their window, or by a full buffer's policy.
    pub dropped: AtomicU64,
    /// Batches waiting in the component's input channel when it last received one.
    pub queue_depth: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_MICROSECONDS.len() + 1],
    latency_sum_microseconds: AtomicU64,
}

impl ComponentMetrics {
    /// Counts records and bytes taken in.
    pub fn count_in(&self, events: usize, bytes: usize) {
        self.events_in.fetch_add(events as u64, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts records and bytes sent on.
    pub fn count_out(&self, events: usize, bytes: usize) {
        self.events_out.fetch_add(events as u64, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts an error.
    pub fn count_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a record sent to the dead letters.
    pub fn count_dead_letter(&self) {
        self.dead_letters.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts records dropped (a full buffer, late records).
    pub fn count_dropped(&self, events: u64) {
        self.dropped.fetch_add(events, Ordering::Relaxed);
    }

    /// Records how long handling one batch took.
    pub fn observe_latency(&self, elapsed: Duration) {
        let microseconds = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        let bucket = LATENCY_BUCKETS_MICROSECONDS
            .iter()
            .position(|bound| microseconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS_MICROSECONDS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_microseconds.fetch_add(microseconds, Ordering::Relaxed);
    }

    /// Its counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        MetricsSnapshot {
            component: self.component.clone(),
            kind: self.kind.clone(),
            events_in: load(&self.events_in),
            events_out: load(&self.events_out),
            bytes_in: load(&self.bytes_in),
            bytes_out: load(&self.bytes_out),
            errors: load(&self.errors),
            dead_letters: load(&self.dead_letters),
            dropped: load(&self.dropped),
            queue_depth: load(&self.queue_depth),
            latency_buckets: self.latency_buckets.iter().map(load).collect(),
            latency_sum_microseconds: load(&self.latency_sum_microseconds),
        }
    }
}

/// The metrics of one component at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct MetricsSnapshot {
    /// The component's name.
    pub component: String,
    /// Its kind (`mqtt`, `stream`, `path` …).
    pub kind: String,
    /// Records taken in.
    pub events_in: u64,
    /// Records sent on.
    pub events_out: u64,
    /// Bytes taken in.
    pub bytes_in: u64,
    /// Bytes sent on.
    pub bytes_out: u64,
    /// Errors.
    pub errors: u64,
    /// Records sent to the dead letters.
    pub dead_letters: u64,
    /// Records dropped.
    pub dropped: u64,
    /// Records waiting (in a buffer, a channel).
    pub queue_depth: u64,
    /// Counts per bucket of [`LATENCY_BUCKETS_MICROSECONDS`], then the unbounded one.
    pub latency_buckets: Vec<u64>,
    /// The sum of the latencies measured, in microseconds.
    pub latency_sum_microseconds: u64,
}

impl MetricsSnapshot {
    /// How many batches were timed.
    pub fn latency_count(&self) -> u64 {
        self.latency_buckets.iter().sum()
    }

    /// What the component did since `before` (an earlier snapshot of it): the counters' differences, the latency
    /// histogram of that interval alone, and the queue depth now. A component that restarted in between (its
    /// counters went back) counts from zero.
    pub fn since(&self, before: &MetricsSnapshot) -> MetricsSnapshot {
        let mut delta = self.clone();
        for (now, then) in [
            (&mut delta.events_in, before.events_in),
            (&mut delta.events_out, before.events_out),
            (&mut delta.bytes_in, before.bytes_in),
            (&mut delta.bytes_out, before.bytes_out),
            (&mut delta.errors, before.errors),
            (&mut delta.dead_letters, before.dead_letters),
            (&mut delta.dropped, before.dropped),
            (&mut delta.latency_sum_microseconds, before.latency_sum_microseconds),
        ] {
            *now = now.saturating_sub(then);
        }
        for (now, then) in delta.latency_buckets.iter_mut().zip(&before.latency_buckets) {
            *now = now.saturating_sub(*then);
        }
        delta
    }

    /// Counts another instance of the same component (on another machine) in with this one.
    pub fn add(&mut self, other: &MetricsSnapshot) {
        for (total, more) in [
            (&mut self.events_in, other.events_in),
            (&mut self.events_out, other.events_out),
            (&mut self.bytes_in, other.bytes_in),
            (&mut self.bytes_out, other.bytes_out),
            (&mut self.errors, other.errors),
            (&mut self.dead_letters, other.dead_letters),
            (&mut self.dropped, other.dropped),
            (&mut self.queue_depth, other.queue_depth),
            (&mut self.latency_sum_microseconds, other.latency_sum_microseconds),
        ] {
            *total += more;
        }
        if self.latency_buckets.len() < other.latency_buckets.len() {
            self.latency_buckets.resize(other.latency_buckets.len(), 0);
        }
        for (total, more) in self.latency_buckets.iter_mut().zip(&other.latency_buckets) {
            *total += more;
        }
    }
}

/// The metrics of every component of a pipeline.
#[derive(Debug, Default)]
pub struct Registry {
    components: Mutex<Vec<Arc<ComponentMetrics>>>,
}

impl Registry {
    /// The metrics of a component: those it already has when a component of that name and kind was registered
    /// before (a component restarted by a rollout counts on), otherwise new ones.
    pub fn register(&self, component: &str, kind: &str) -> Arc<ComponentMetrics> {
        let mut components = lock(&self.components);
        if let Some(existing) = components.iter().find(|metrics| metrics.component == component && metrics.kind == kind)
        {
            return existing.clone();
        }
        components.retain(|metrics| metrics.component != component);
        let metrics = Arc::new(ComponentMetrics {
            component: component.into(),
            kind: kind.into(),
            ..ComponentMetrics::default()
        });
        components.push(metrics.clone());
        metrics
    }

    /// Forgets a component that no longer runs.
    pub fn remove(&self, component: &str) {
        self.components
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|metrics| metrics.component != component);
    }

    /// Every component's counters now.
    pub fn snapshot(&self) -> Vec<MetricsSnapshot> {
        self.components
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|metrics| metrics.snapshot())
            .collect()
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render_prometheus(&self) -> String {
        let snapshots: Vec<(String, MetricsSnapshot)> =
            self.snapshot().into_iter().map(|snapshot| (String::new(), snapshot)).collect();
        render_prometheus(&snapshots)
    }
}

/// Snapshots in the Prometheus text exposition format (version 0.0.4); each comes with labels to add before its
/// own (`agent="fog1",` on the control plane, which shows every agent's components), or none.
pub fn render_prometheus(snapshots: &[(String, MetricsSnapshot)]) -> String {
    let mut out = String::new();
    type Read = fn(&MetricsSnapshot) -> u64;
    let counters: [(&str, &str, Read); 8] = [
        ("stratum_events_in_total", "Events received.", |s| s.events_in),
        ("stratum_events_out_total", "Events sent on.", |s| s.events_out),
        ("stratum_bytes_in_total", "Bytes received.", |s| s.bytes_in),
        ("stratum_bytes_out_total", "Bytes sent on.", |s| s.bytes_out),
        ("stratum_errors_total", "Errors that did not stop the component.", |s| s.errors),
        ("stratum_dead_letters_total", "Records that did not fit the schema.", |s| s.dead_letters),
        ("stratum_dropped_total", "Records dropped by lateness or a full buffer.", |s| s.dropped),
        ("stratum_queue_depth", "Batches waiting in the input channel.", |s| s.queue_depth),
    ];
    for (name, help, value) in counters {
        let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (extra, snapshot) in snapshots {
            let _ = writeln!(
                out,
                "{name}{{{extra}component=\"{}\",kind=\"{}\"}} {}",
                snapshot.component,
                snapshot.kind,
                value(snapshot)
            );
        }
    }
    let name = "stratum_processing_seconds";
    let _ = writeln!(out, "# HELP {name} Time to handle one batch.\n# TYPE {name} histogram");
    for (extra, snapshot) in snapshots {
        let labels = format!("{extra}component=\"{}\",kind=\"{}\"", snapshot.component, snapshot.kind);
        let mut cumulative = 0;
        for (bound, count) in LATENCY_BUCKETS_MICROSECONDS.iter().zip(&snapshot.latency_buckets) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{}\"}} {cumulative}", *bound as f64 / 1e6);
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", snapshot.latency_count());
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", snapshot.latency_sum_microseconds as f64 / 1e6);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", snapshot.latency_count());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_every_standard_metric_per_component() {
        let registry = Registry::default();
        let metrics = registry.register("counts", "stream");
        metrics.count_in(10, 400);
        metrics.observe_latency(Duration::from_micros(70));
        metrics.observe_latency(Duration::from_secs(5));
        let text = registry.render_prometheus();
        assert!(text.contains("stratum_events_in_total{component=\"counts\",kind=\"stream\"} 10"), "{text}");
        assert!(
            text.contains("stratum_processing_seconds_bucket{component=\"counts\",kind=\"stream\",le=\"0.0001\"} 1"),
            "{text}"
        );
        assert!(text.contains("stratum_processing_seconds_count{component=\"counts\",kind=\"stream\"} 2"), "{text}");
    }
}
