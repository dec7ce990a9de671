//! What this machine has (cores, memory, free disk), what this process uses of it (CPU time and resident memory)
//! and how busy the whole machine is, read from Linux's `/proc`; the agents' joins and heartbeats, the API's
//! series and the control plane's policies (`cpu > 85%`) use them. Elsewhere the readings are absent, never wrong.

use serde::{Deserialize, Serialize};
use std::time::Instant;

/// What an agent measured of its machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeasuredResources {
    /// Its cores.
    pub cpu: f64,
    /// Its memory, in bytes.
    pub memory_bytes: u64,
    /// Its architecture (`x86_64`, `aarch64`, `armv7`).
    pub arch: String,
    /// Space left for the agent's data (buffers, models, files) on the disk that holds its data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_free_bytes: Option<u64>,
}

impl MeasuredResources {
    /// This machine: its cores, its memory (from /proc/meminfo where there is one), its architecture and the
    /// free space of the disk that holds `data_dir`.
    pub fn measure(data_dir: &std::path::Path) -> MeasuredResources {
        MeasuredResources {
            // The standard library counts a container's CPU quota too.
            cpu: std::thread::available_parallelism().map_or(1.0, |cores| cores.get() as f64),
            memory_bytes: memory_bytes().unwrap_or(0),
            arch: std::env::consts::ARCH.into(),
            disk_free_bytes: disk_free_bytes(data_dir),
        }
    }
}

/// The space an unprivileged process may still use on the disk that holds `path` (its nearest existing folder).
fn disk_free_bytes(path: &std::path::Path) -> Option<u64> {
    let existing = path.ancestors().find(|folder| folder.exists())?;
    let stats = rustix::fs::statvfs(existing).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// A process's use of its machine over the last interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// CPU time over wall time in the interval, in percent of one core (200 is two cores busy).
    pub cpu_percent: f64,
    /// The process's resident memory, in bytes.
    pub memory_bytes: u64,
    /// The whole machine's CPU busy over the interval, as a fraction of all its cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_cpu: Option<f64>,
    /// The whole machine's memory in use (all but what is available), as a fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_memory: Option<f64>,
}

/// Turns CPU-time readings into rates: each [`UsageMeter::read`] covers the time since the previous one.
#[derive(Default)]
pub struct UsageMeter {
    previous: Option<(Instant, f64)>,
    previous_machine: Option<MachineTicks>,
}

impl UsageMeter {
    /// The use since the previous reading (none the first time, or where `/proc` is missing).
    pub fn read(&mut self) -> Option<Usage> {
        let now = Instant::now();
        let machine = machine_ticks();
        let machine_cpu = match (self.previous_machine, machine) {
            (Some(before), Some(now)) if now.total > before.total => {
                Some(1.0 - (now.idle - before.idle) as f64 / (now.total - before.total) as f64)
            }
            _ => None,
        };
        self.previous_machine = machine;
        let cpu_seconds = process_cpu_seconds()?;
        let previous = self.previous.replace((now, cpu_seconds));
        let (at, before) = previous?;
        let seconds = now.duration_since(at).as_secs_f64();
        (seconds > 0.0).then(|| Usage {
            cpu_percent: (cpu_seconds - before).max(0.0) / seconds * 100.0,
            memory_bytes: process_memory_bytes().unwrap_or(0),
            machine_cpu: machine_cpu.map(|busy| busy.clamp(0.0, 1.0)),
            machine_memory: machine_memory(),
        })
    }
}

/// The machine's CPU time since boot, in ticks: all of it, and the idle part (idle and waiting for IO).
#[derive(Clone, Copy, Debug)]
struct MachineTicks {
    total: u64,
    idle: u64,
}

/// From the first line of `/proc/stat`: `cpu user nice system idle iowait irq softirq steal …`.
fn machine_ticks() -> Option<MachineTicks> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).take(8).filter_map(|field| field.parse().ok()).collect();
    (ticks.len() >= 5).then(|| MachineTicks { total: ticks.iter().sum(), idle: ticks[3] + ticks[4] })
}

/// The fraction of the machine's memory in use, from `MemTotal` and `MemAvailable` in `/proc/meminfo`.
fn machine_memory() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<f64> {
        meminfo.lines().find(|line| line.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()
    };
    let (total, available) = (field("MemTotal:")?, field("MemAvailable:")?);
    (total > 0.0).then(|| ((total - available) / total).clamp(0.0, 1.0))
}

/// CPU time this process has used (user and system, every thread), from Linux's `/proc/self/stat`; the kernel
/// counts it in ticks of 1/100 s on every architecture Stratum runs on.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / 100.0)
}

/// This process's resident memory, from Linux's `/proc/self/status`.
pub fn process_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kibibytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kibibytes * 1024)
}

/// The memory this machine offers the process: the machine's, or less where a container's memory limit (cgroup
/// v2 `memory.max`, v1 `memory.limit_in_bytes`) says so — a machine of a compose deployment or a pod is as large
/// as its limit, not as the host under it.
pub fn memory_bytes() -> Option<u64> {
    let machine = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
        text.lines()
            .find(|line| line.starts_with("MemTotal:"))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|value| value.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    });
    let limit = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        // `max` (v2) and a huge number (v1) both mean no limit; either way the machine's memory decides.
        .and_then(|text| text.trim().parse::<u64>().ok());
    match (machine, limit) {
        (Some(machine), Some(limit)) => Some(machine.min(limit)),
        (machine, _) => machine,
    }
}

/// Descriptors this process has open, from `/proc/self/fd` (the listing itself holds one while it reads).
pub fn open_descriptors() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(entries.count().saturating_sub(1) as u64)
}

/// The most descriptors this process may open (its soft limit), from `/proc/self/limits`.
pub fn max_descriptors() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// This process's resources under the names Prometheus's client libraries use for every process (`process_*`),
/// so that dashboards and alerts written for them work on Stratum's `/metrics` (under `up`, the control plane and
/// every agent). A reading that `/proc` does not give is left out, never written as zero.
pub fn render_process_metrics() -> String {
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: Option<f64>| {
        if let Some(value) = value {
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
        }
    };
    metric(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        process_cpu_seconds(),
    );
    metric(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        process_memory_bytes().map(|bytes| bytes as f64),
    );
    metric(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        open_descriptors().map(|count| count as f64),
    );
    metric(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        max_descriptors().map(|count| count as f64),
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of one metric in Prometheus's text.
    fn value(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    }

    #[test]
    fn process_metrics_count_what_really_is_open() {
        // Ten more files open, ten more counted. Tests run on threads of one process and others may open or close
        // files in between, so a quiet moment is waited for: one of several tries sees exactly the ten.
        let mut seen = Vec::new();
        let text = loop {
            let before = value(&render_process_metrics(), "process_open_fds");
            let files: Vec<std::fs::File> = (0..10).map(|_| std::fs::File::open("/proc/self/stat").unwrap()).collect();
            let text = render_process_metrics();
            drop(files);
            seen.push(value(&text, "process_open_fds") - before);
            if seen.last() == Some(&10.0) {
                break text;
            }
            assert!(seen.len() < 50, "the count never rose by the ten files opened: {seen:?}");
        };
        assert!(value(&text, "process_max_fds") >= value(&text, "process_open_fds"), "{text}");
        assert!(value(&text, "process_resident_memory_bytes") > 1e6, "{text}");
        assert!(value(&text, "process_cpu_seconds_total") >= 0.0, "{text}");
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"), "{text}");
    }

    #[test]
    fn this_process_reports_its_cpu_and_memory() {
        assert!(process_cpu_seconds().is_some_and(|seconds| seconds >= 0.0));
        assert!(process_memory_bytes().is_some_and(|bytes| bytes > 0));
        let mut meter = UsageMeter::default();
        assert_eq!(meter.read(), None, "the first reading has no interval");
        std::thread::sleep(std::time::Duration::from_millis(60));
        let usage = meter.read().expect("a second reading");
        assert!(usage.cpu_percent >= 0.0 && usage.memory_bytes > 0, "{usage:?}");
        assert!(usage.machine_cpu.is_some_and(|busy| (0.0..=1.0).contains(&busy)), "{usage:?}");
        assert!(usage.machine_memory.is_some_and(|used| used > 0.0 && used < 1.0), "{usage:?}");
    }
}
