//! Metric series for the live views: once a second, every component's event rates and latency, every service's
//! request rate, latency percentiles and replicas, and the process's CPU and memory, kept for the last
//! [`CAPACITY`] samples. Rates and percentiles cover the interval since the previous sample, so a chart shows what
//! happens now rather than averages since the start.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;
use stratum_control::deployment::Deployment;
use stratum_control::qos::percentile_seconds;
use stratum_control::usage::{process_cpu_seconds, process_memory_bytes};
use stratum_dataplane::metrics::MetricsSnapshot;

/// Fifteen minutes of one-second samples.
pub(crate) const CAPACITY: usize = 900;

#[derive(Default)]
pub(crate) struct SeriesBuffer {
    /// Milliseconds since 1970 of each sample, oldest first.
    timestamps: VecDeque<i64>,
    /// Each series' value at each sample (none where it had no value then).
    series: BTreeMap<String, VecDeque<Option<f64>>>,
    previous: BTreeMap<String, MetricsSnapshot>,
    previous_at: Option<Instant>,
    previous_cpu_seconds: Option<f64>,
    version: u32,
}

/// The series' names: `component:NAME:in_per_second`, `component:NAME:out_per_second`, `component:NAME:p99_ms`,
/// `service:NAME:requests_per_second`, `service:NAME:p50_ms` (and `p95_ms`, `p99_ms`), `service:NAME:replicas`,
/// `service:NAME:in_flight`, `process:cpu_percent`, `process:memory_mib` (the control plane's process, which under
/// `stratum up` runs everything), and `node:NAME:cpu_percent`, `node:NAME:memory_mib` for each agent that reports
/// its process from its own machine.
pub(crate) fn series_name(scope: &str, name: &str, measure: &str) -> String {
    format!("{scope}:{name}:{measure}")
}

impl SeriesBuffer {
    /// Takes one sample of every series from `deployment`, which runs `version`.
    pub(crate) fn sample(&mut self, deployment: &dyn Deployment, version: u32, now: Instant) {
        if version != self.version {
            // A new version restarts every counter: rates start again from its first sample.
            self.previous.clear();
            self.previous_at = None;
            self.version = version;
        }
        let mut values = BTreeMap::new();
        let snapshots = deployment.metrics();
        let seconds = self.previous_at.map(|at| now.duration_since(at).as_secs_f64()).filter(|seconds| *seconds > 0.0);
        let mut intervals: BTreeMap<&str, MetricsSnapshot> = BTreeMap::new();
        if let Some(seconds) = seconds {
            for snapshot in &snapshots {
                let Some(before) = self.previous.get(&snapshot.component) else { continue };
                let delta = snapshot.since(before);
                let name = snapshot.component.as_str();
                values.insert(series_name("component", name, "in_per_second"), delta.events_in as f64 / seconds);
                values.insert(series_name("component", name, "out_per_second"), delta.events_out as f64 / seconds);
                if let Some(p99) = percentile_seconds(&delta.latency_buckets, 0.99) {
                    values.insert(series_name("component", name, "p99_ms"), p99 * 1e3);
                }
                intervals.insert(name, delta);
            }
            if let Some(cpu_seconds) = process_cpu_seconds() {
                if let Some(before) = self.previous_cpu_seconds {
                    values.insert("process:cpu_percent".into(), (cpu_seconds - before).max(0.0) / seconds * 100.0);
                }
                self.previous_cpu_seconds = Some(cpu_seconds);
            }
        }
        for machine in deployment.machines() {
            let Some(usage) = machine.joined.and_then(|joined| joined.usage) else { continue };
            values.insert(series_name("node", &machine.name, "cpu_percent"), usage.cpu_percent);
            values.insert(
                series_name("node", &machine.name, "memory_mib"),
                usage.memory_bytes as f64 / (1u64 << 20) as f64,
            );
        }
        for pool in deployment.services() {
            let name = &pool.name;
            values.insert(series_name("service", name, "replicas"), pool.replicas as f64);
            values.insert(series_name("service", name, "in_flight"), pool.in_flight as f64);
            let http = intervals.get(format!("{name}-http").as_str());
            if let (Some(http), Some(seconds)) = (http, seconds) {
                values.insert(series_name("service", name, "requests_per_second"), http.events_in as f64 / seconds);
            }
            // Latency of the requests over HTTP when there were any, of the stream part's batches otherwise.
            let measured = http.filter(|delta| delta.latency_count() > 0).or_else(|| intervals.get(name.as_str()));
            for (measure, percentile) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
                if let Some(latency) = measured.and_then(|delta| percentile_seconds(&delta.latency_buckets, percentile))
                {
                    values.insert(series_name("service", name, measure), latency * 1e3);
                }
            }
        }
        if let Some(bytes) = process_memory_bytes() {
            values.insert("process:memory_mib".into(), bytes as f64 / (1u64 << 20) as f64);
        }
        self.previous = snapshots.into_iter().map(|snapshot| (snapshot.component.clone(), snapshot)).collect();
        self.previous_at = Some(now);
        self.push(stratum_control::state::now_milliseconds(), values);
    }

    fn push(&mut self, at_milliseconds: i64, mut values: BTreeMap<String, f64>) {
        if self.timestamps.len() == CAPACITY {
            self.timestamps.pop_front();
            for column in self.series.values_mut() {
                column.pop_front();
            }
        }
        self.timestamps.push_back(at_milliseconds);
        for (name, column) in self.series.iter_mut() {
            column.push_back(values.remove(name));
        }
        let length = self.timestamps.len();
        for (name, value) in values {
            let mut column: VecDeque<Option<f64>> = std::iter::repeat_n(None, length - 1).collect();
            column.push_back(Some(value));
            self.series.insert(name, column);
        }
        // A series without a value in the whole window (a component of an earlier version) is dropped.
        self.series.retain(|_, column| column.iter().any(Option::is_some));
    }

    /// The samples taken after `since_milliseconds`, of the series whose names start with `prefix`.
    pub(crate) fn view(&self, since_milliseconds: i64, prefix: &str) -> (Vec<i64>, BTreeMap<String, Vec<Option<f64>>>) {
        let skip = self.timestamps.iter().take_while(|at| **at <= since_milliseconds).count();
        let timestamps = self.timestamps.iter().skip(skip).copied().collect();
        let series = self
            .series
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, column)| (name.clone(), column.iter().skip(skip).copied().collect()))
            .collect();
        (timestamps, series)
    }

    /// A series' value at the latest sample.
    pub(crate) fn latest(&self, name: &str) -> Option<f64> {
        self.series.get(name).and_then(|column| column.back().copied().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_line_up_with_the_samples_and_roll_over() {
        let mut buffer = SeriesBuffer::default();
        buffer.push(1, BTreeMap::from([("a".to_string(), 1.0)]));
        buffer.push(2, BTreeMap::from([("b".to_string(), 2.0)]));
        let (timestamps, series) = buffer.view(0, "");
        assert_eq!(timestamps, [1, 2]);
        assert_eq!(series["a"], [Some(1.0), None]);
        assert_eq!(series["b"], [None, Some(2.0)]);
        assert_eq!(buffer.latest("b"), Some(2.0));
        assert_eq!(buffer.latest("a"), None);
        let (timestamps, series) = buffer.view(1, "b");
        assert_eq!((timestamps, series.len()), (vec![2], 1));
        for at in 3..(3 + CAPACITY as i64) {
            buffer.push(at, BTreeMap::from([("b".to_string(), at as f64)]));
        }
        let (timestamps, series) = buffer.view(0, "");
        assert_eq!(timestamps.len(), CAPACITY);
        assert!(!series.contains_key("a"), "a series with no value left is dropped");
        assert_eq!(series["b"].len(), CAPACITY);
    }
}
