//! What this process uses of its machine — CPU time and resident memory — read from Linux's `/proc`; the API's
//! series and the agents' heartbeats report it. Elsewhere the readings are absent, never wrong.

use serde::{Deserialize, Serialize};
use std::time::Instant;

/// A process's use of its machine over the last interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// CPU time over wall time in the interval, in percent of one core (200 is two cores busy).
    pub cpu_percent: f64,
    pub memory_bytes: u64,
}

/// Turns CPU-time readings into a rate: each [`UsageMeter::read`] covers the time since the previous one.
#[derive(Default)]
pub struct UsageMeter {
    previous: Option<(Instant, f64)>,
}

impl UsageMeter {
    /// The use since the previous reading (none the first time, or where `/proc` is missing).
    pub fn read(&mut self) -> Option<Usage> {
        let now = Instant::now();
        let cpu_seconds = process_cpu_seconds()?;
        let previous = self.previous.replace((now, cpu_seconds));
        let (at, before) = previous?;
        let seconds = now.duration_since(at).as_secs_f64();
        (seconds > 0.0).then(|| Usage {
            cpu_percent: (cpu_seconds - before).max(0.0) / seconds * 100.0,
            memory_bytes: process_memory_bytes().unwrap_or(0),
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reports_its_cpu_and_memory() {
        assert!(process_cpu_seconds().is_some_and(|seconds| seconds >= 0.0));
        assert!(process_memory_bytes().is_some_and(|bytes| bytes > 0));
        let mut meter = UsageMeter::default();
        assert_eq!(meter.read(), None, "the first reading has no interval");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let usage = meter.read().expect("a second reading");
        assert!(usage.cpu_percent >= 0.0 && usage.memory_bytes > 0, "{usage:?}");
    }
}
