//! What a simulation found, as data (serialised to JSON by the command) and as the table `stratum simulate` prints:
//! links, end-to-end latency per path, buffers, services with their replicas over time, what happened when, and
//! the cost.

use schemars::JsonSchema;
use serde::Serialize;
use std::fmt::Write;

/// Everything a simulation found.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct Report {
    /// The application.
    pub app: String,
    /// Seconds simulated.
    pub simulated_seconds: f64,
    /// Seconds per step.
    pub step_seconds: f64,
    /// Machines planned on (nodes and pool members).
    pub machines: usize,
    /// Component instances placed.
    pub instances: usize,
    /// Records made by the sources.
    pub records_made: f64,
    /// Records that reached the end of their path (a sink, a service, a stream nothing reads).
    pub records_delivered: f64,
    /// Records still on their way at the end (in a path's log, waiting for a link or a machine).
    pub records_in_flight: f64,
    /// Records a full `drop_oldest` buffer dropped, or that outlived their buffer's `ttl`.
    pub records_dropped: f64,
    /// Records a full `block` buffer kept the source from taking in (left with the sender: a broker, a client).
    pub records_held_back: f64,
    /// Records made on a machine while it was down, or kept in its logs when it never came back.
    pub records_lost_with_machines: f64,
    /// Each link's use.
    pub links: Vec<LinkReport>,
    /// End-to-end latency per path, from a record's making to its arrival at the path's end.
    pub paths: Vec<PathReport>,
    /// Path buffers, by producer and consumer.
    pub buffers: Vec<BufferReport>,
    /// Services.
    pub services: Vec<ServiceReport>,
    /// What happened when: failures, detections, moves, partitions and their healing.
    pub timeline: Vec<Happening>,
    /// What the machines in use cost.
    pub cost: Cost,
    /// What the simulation leaves out, said once.
    pub notes: Vec<String>,
    /// Figures over time, for plots.
    pub series: Series,
}

/// Figures over time: at most 240 points, each what an interval of steps did.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct Series {
    /// The end of each interval, in seconds from the start.
    pub seconds: Vec<f64>,
    /// For each of the report's `links`, in its order: its use in each interval, as a fraction of its bandwidth
    /// (bits per second for a link that is not limited).
    pub link_use: Vec<Vec<f64>>,
    /// Bytes waiting in every path's log at each interval's end.
    pub buffered_bytes: Vec<f64>,
    /// Records a second arriving at the ends of their paths.
    pub arriving_per_second: Vec<f64>,
    /// The age of the oldest record that arrived in each interval, in seconds.
    pub oldest_arrival_seconds: Vec<f64>,
    /// For each service, in the order of `services`: its replicas across its machines at each interval's end.
    pub replicas: Vec<Vec<u32>>,
}

/// One link's use over the run.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct LinkReport {
    /// One end (a tier or a machine).
    pub from: String,
    /// The other end.
    pub to: String,
    /// Its bandwidth in bits per second; none for a link assumed between tiers, which is not limited.
    pub capacity_bits_per_second: Option<f64>,
    /// Bytes it carried.
    pub bytes: f64,
    /// Its mean use, as a fraction of its bandwidth.
    pub mean_utilisation: f64,
    /// Its highest use in one step.
    pub peak_utilisation: f64,
    /// Seconds it was cut.
    pub down_seconds: f64,
}

/// End-to-end latency of the records that reached one path's end.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct PathReport {
    /// The path, such as `detections → counts → history`.
    pub path: String,
    /// Records (or windows' results) that arrived.
    pub records: f64,
    /// Median, in milliseconds.
    pub p50_ms: f64,
    /// 95th percentile, in milliseconds.
    pub p95_ms: f64,
    /// 99th percentile, in milliseconds.
    pub p99_ms: f64,
    /// The largest, in milliseconds.
    pub max_ms: f64,
}

/// The path buffers between one producer and one consumer (one per pair of instances).
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct BufferReport {
    /// The producing component.
    pub from: String,
    /// The consuming component.
    pub to: String,
    /// How many paths (pairs of instances on different machines, or waiting for one).
    pub paths: usize,
    /// The most one path held, in bytes.
    pub peak_bytes_one_path: f64,
    /// The most all of them held at once, in bytes.
    pub peak_bytes_all: f64,
    /// Records dropped (full `drop_oldest` buffer, or older than its `ttl`).
    pub dropped: f64,
    /// Records a full `block` buffer kept its source from taking in.
    pub held_back: f64,
    /// The buffer each path may hold, in bytes.
    pub limit_bytes: f64,
}

/// One service.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct ServiceReport {
    /// Its name.
    pub name: String,
    /// Requests (records) it answered.
    pub requests: f64,
    /// Median latency, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, in milliseconds.
    pub p99_ms: f64,
    /// Its tightest latency objective, as `p99 <= 20 ms`, if it has one.
    pub objective: Option<String>,
    /// The share of requests slower than that objective.
    pub objective_missed: f64,
    /// Replicas started from zero.
    pub cold_starts: u64,
    /// The most replicas at once, across its machines (`series.replicas` has them over time).
    pub max_replicas: u32,
}

/// Something that happened at a time.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct Happening {
    /// Seconds from the start.
    pub at: f64,
    /// What.
    pub what: String,
}

/// What the machines cost.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct Cost {
    /// The machines in use, per hour.
    pub hourly: f64,
    /// Over the simulated time.
    pub total: f64,
}

/// Seconds as people read them: `8h 0m 0s`, `12.5 s`, `40 ms`.
pub fn seconds_text(seconds: f64) -> String {
    if seconds < 1.0 {
        return format!("{:.0} ms", seconds * 1000.0);
    }
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let whole = seconds.round() as u64;
    let (hours, minutes, rest) = (whole / 3600, whole / 60 % 60, whole % 60);
    if hours > 0 { format!("{hours}h {minutes}m {rest}s") } else { format!("{minutes}m {rest}s") }
}

fn count(value: f64) -> String {
    let whole = value.round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn bytes(value: f64) -> String {
    stratum_core::units::ByteSize(value.max(0.0).round() as u64).to_string()
}

fn milliseconds(value: f64) -> String {
    if value >= 1000.0 { seconds_text(value / 1000.0) } else { format!("{value:.1} ms") }
}

impl Report {
    /// The report as the table `stratum simulate` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: {} simulated in steps of {} on {} machines, {} instances",
            self.app,
            seconds_text(self.simulated_seconds),
            seconds_text(self.step_seconds),
            count(self.machines as f64),
            count(self.instances as f64)
        );
        let _ = writeln!(
            out,
            "records: {} made, {} delivered, {} on their way at the end, {} dropped, {} held back at sources, {} lost with machines",
            count(self.records_made),
            count(self.records_delivered),
            count(self.records_in_flight),
            count(self.records_dropped),
            count(self.records_held_back),
            count(self.records_lost_with_machines)
        );
        if !self.timeline.is_empty() {
            let _ = writeln!(out, "\nwhat happened");
            for happening in &self.timeline {
                let _ = writeln!(out, "  {:>12}  {}", seconds_text(happening.at), happening.what);
            }
        }
        let _ = writeln!(out, "\nlinks                         bandwidth      carried    mean use  peak use  cut for");
        for link in &self.links {
            let capacity = link.capacity_bits_per_second.map_or("not limited".to_string(), |bits| {
                if bits >= 1e9 { format!("{:.1} Gbit/s", bits / 1e9) } else { format!("{:.1} Mbit/s", bits / 1e6) }
            });
            let _ = writeln!(
                out,
                "  {:<28}{:>12}  {:>11}  {:>8.1}%  {:>7.1}%  {}",
                format!("{} -> {}", link.from, link.to),
                capacity,
                bytes(link.bytes),
                link.mean_utilisation * 100.0,
                link.peak_utilisation * 100.0,
                if link.down_seconds > 0.0 { seconds_text(link.down_seconds) } else { "-".into() }
            );
        }
        let width = self.paths.iter().map(|path| path.path.chars().count()).max().unwrap_or(0).max(18) + 2;
        let _ = writeln!(
            out,
            "\n{:<width$}{:>10} {:>10} {:>10} {:>10} {:>10}",
            "end-to-end latency", "records", "p50", "p95", "p99", "max"
        );
        for path in &self.paths {
            let _ = writeln!(
                out,
                "  {:<inner$}{:>10} {:>10} {:>10} {:>10} {:>10}",
                path.path,
                count(path.records),
                milliseconds(path.p50_ms),
                milliseconds(path.p95_ms),
                milliseconds(path.p99_ms),
                milliseconds(path.max_ms),
                inner = width - 2
            );
        }
        if !self.buffers.is_empty() {
            let _ = writeln!(
                out,
                "\nbuffers                                 paths  peak one path   peak all   dropped  held back      limit"
            );
            for buffer in &self.buffers {
                let _ = writeln!(
                    out,
                    "  {:<38}{:>6}  {:>13}  {:>9}  {:>8}  {:>9}  {:>9}",
                    format!("{} -> {}", buffer.from, buffer.to),
                    count(buffer.paths as f64),
                    bytes(buffer.peak_bytes_one_path),
                    bytes(buffer.peak_bytes_all),
                    count(buffer.dropped),
                    count(buffer.held_back),
                    bytes(buffer.limit_bytes)
                );
            }
        }
        if !self.services.is_empty() {
            let _ = writeln!(
                out,
                "\nservices                requests        p50        p99  objective            missed  max replicas  cold starts"
            );
            for service in &self.services {
                let _ = writeln!(
                    out,
                    "  {:<20}{:>10} {:>10} {:>10}  {:<18}{:>7.2}%  {:>12}  {:>11}",
                    service.name,
                    count(service.requests),
                    milliseconds(service.p50_ms),
                    milliseconds(service.p99_ms),
                    service.objective.as_deref().unwrap_or("-"),
                    service.objective_missed * 100.0,
                    service.max_replicas,
                    service.cold_starts
                );
            }
        }
        let _ = writeln!(out, "\ncost: {:.2} an hour, {:.2} over the run", self.cost.hourly, self.cost.total);
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}
