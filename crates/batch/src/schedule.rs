//! Batches on their schedules: when each one is next due (`every = 1 h` counts from when scheduling started,
//! `cron = "0 * * * *"` follows the clock in UTC), and a loop that runs them as they come due until told to
//! stop. The clock is the application's ([`AppClock`]): the wall clock's on real machines, faster under
//! `stratum up --speed N`, so that an hourly batch runs every hour of the traffic the sources make. A run that fails is reported and the batch stays scheduled; runs missed while another was running are
//! not made up, the batch runs once and goes on from the next due time.

use crate::{BatchRun, Error, run};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use stratum_core::clock::AppClock;
use stratum_core::cron::CronSchedule;
use stratum_core::ir::{Application, Schedule};
use tokio::sync::watch;

/// When a batch with `schedule` is next due strictly after `after`, in Unix seconds; `every` schedules count
/// from `started`. `None` for a schedule that never fires.
pub fn next_due(schedule: &Schedule, started: f64, after: f64) -> Option<f64> {
    match schedule {
        Schedule::Every(interval) => {
            let interval = interval.0;
            if interval <= 0.0 {
                return None;
            }
            let periods = ((after - started) / interval).floor().max(0.0) + 1.0;
            let mut due = started + periods * interval;
            // Floating point may land exactly on `after`.
            if due <= after {
                due += interval;
            }
            Some(due)
        }
        Schedule::Cron(text) => {
            CronSchedule::parse(text).ok()?.next_after(after.floor() as i64).map(|seconds| seconds as f64)
        }
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_secs_f64()).unwrap_or_default()
}

/// Runs the batches named in `batches` (all of the application's when empty) each time they are due by the
/// application's clock, which runs `speed` times faster than the wall clock from now, until `stop` turns true;
/// `report` hears of every run. Relative paths are relative to `base`.
pub async fn run_on_schedule(
    application: &Application,
    base: &Path,
    batches: &[String],
    speed: f64,
    mut stop: watch::Receiver<bool>,
    mut report: impl FnMut(&str, Result<BatchRun, Error>),
) {
    let clock = AppClock::new(now(), speed);
    let started = clock.origin;
    let mut due: Vec<(&str, &Schedule, f64)> = application
        .batches
        .iter()
        .filter(|batch| batches.is_empty() || batches.contains(&batch.name))
        .filter_map(|batch| {
            next_due(&batch.schedule, started, started).map(|due| (batch.name.as_str(), &batch.schedule, due))
        })
        .collect();
    for (name, _, at) in &due {
        tracing::info!(batch = name, in_seconds = at - started, "batch scheduled");
    }
    while let Some(&(name, schedule, at)) = due.iter().min_by(|a, b| a.2.total_cmp(&b.2)) {
        let wait = Duration::from_secs_f64((clock.wall_time(at) - now()).max(0.0));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        let result = run(application, name, base).await;
        report(name, result);
        let next = next_due(schedule, started, clock.app_time(now()).max(at));
        due.retain(|(other, _, _)| *other != name);
        if let Some(next) = next {
            due.push((name, schedule, next));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratum_core::units::Duration as Seconds;

    #[test]
    fn every_counts_from_the_start_and_skips_what_was_missed() {
        let hourly = Schedule::Every(Seconds(3600.0));
        assert_eq!(next_due(&hourly, 1000.0, 1000.0), Some(4600.0));
        assert_eq!(next_due(&hourly, 1000.0, 4600.0), Some(8200.0));
        // A run that ended at 9000 (after the 8200 one was due) goes on at 11800, not 8200.
        assert_eq!(next_due(&hourly, 1000.0, 9000.0), Some(11800.0));
    }

    #[test]
    fn cron_follows_the_wall_clock() {
        let on_the_hour = Schedule::Cron("0 * * * *".into());
        // 2026-11-28T18:51:30Z is 1_795_891_890.
        assert_eq!(next_due(&on_the_hour, 0.0, 1_795_891_890.0), Some(1_795_892_400.0));
        assert_eq!(next_due(&Schedule::Cron("not cron".into()), 0.0, 0.0), None);
    }
}
