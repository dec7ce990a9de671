//! How many replicas a service should have, decided from the requests it is serving — modelled on Knative's
//! autoscaler. Pure: it is given samples and the time, and answers; the serving pool acts on the answer, and
//! `stratum simulate` runs the same code on the load it simulates. It lives in core because both the control
//! plane and the simulator use it, and neither depends on the other.
//!
//! - **Stable mode**: replicas = ⌈average concurrency over the stable window (60 s, or the idle time when that is
//!   shorter) / target concurrency⌉.
//! - **Panic mode**: when the panic window (a tenth of the stable one) asks for at least twice the current replicas, scale to that at
//!   once and do not scale down until the stable window has passed without panicking again.
//! - **Scale to zero**: with `min = 0`, a service that has had no request for its `idle` time goes to zero; until
//!   then it keeps at least one replica.
//! - **Predictive** (`predictive = true`): the request rate is forecast with Holt's double exponential smoothing
//!   (level and trend) over 10-second buckets, plus the daily season when a day of history exists
//!   (Holt–Winters); by Little's law the forecast rate times the recent latency is the concurrency to expect one
//!   bucket ahead, and the service scales to it ahead of the load. Reactive decisions still apply: the larger wins.

use std::collections::VecDeque;

/// What a service's `scale` block says, with the windows of the algorithm.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalePolicy {
    /// Fewest replicas.
    pub min: u32,
    /// Most replicas.
    pub max: u32,
    /// In-flight requests one replica is meant to handle.
    pub target_concurrency: f64,
    /// Seconds without a request before a `min = 0` service goes to zero.
    pub idle_seconds: f64,
    /// Whether the request rate is forecast and scaled ahead of.
    pub predictive: bool,
    /// Seconds the stable average looks back.
    pub stable_window_seconds: f64,
    /// Seconds the panic average looks back.
    pub panic_window_seconds: f64,
    /// The panic window must ask for this many times the current replicas to panic.
    pub panic_threshold: f64,
}

impl ScalePolicy {
    /// Knative's windows (60 s stable, a tenth of it to panic), shortened to the idle time when that is shorter,
    /// so that `idle = 30 s` means thirty seconds.
    pub fn new(min: u32, max: u32, concurrency: u32, idle_seconds: Option<f64>, predictive: bool) -> ScalePolicy {
        let idle_seconds = idle_seconds.unwrap_or(300.0);
        let stable_window_seconds = 60.0_f64.min(idle_seconds).max(1.0);
        ScalePolicy {
            min,
            max: max.max(min).max(1),
            target_concurrency: f64::from(concurrency.max(1)),
            idle_seconds,
            predictive,
            stable_window_seconds,
            panic_window_seconds: stable_window_seconds / 10.0,
            panic_threshold: 2.0,
        }
    }
}

/// A decision and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// How many replicas to run.
    pub replicas: u32,
    /// Which rule decided: `stable`, `panic`, `predictive`, `warm until idle` or `idle`.
    pub reason: &'static str,
}

/// Seconds per bucket of the request-rate history the forecast reads.
const BUCKET_SECONDS: f64 = 10.0;
/// Buckets in a day: the season of Holt–Winters.
const SEASON: usize = (86_400.0 / BUCKET_SECONDS) as usize;
/// Smoothing of the level, the trend and the season.
const ALPHA: f64 = 0.5;
const BETA: f64 = 0.3;
const GAMMA: f64 = 0.1;

/// One service's autoscaler: what it has observed, and its decisions.
pub struct Autoscaler {
    /// The service's policy.
    pub policy: ScalePolicy,
    /// (time, in-flight requests) samples within the stable window.
    samples: VecDeque<(f64, f64)>,
    last_request: Option<f64>,
    panicking_until: Option<f64>,
    /// Requests per second in each finished bucket, oldest first (at most two seasons).
    rates: VecDeque<f64>,
    bucket_start: Option<f64>,
    bucket_requests: u64,
    /// Seconds a request takes, smoothed: turns a forecast rate into a concurrency.
    latency_seconds: f64,
    /// The forecast from `rates`, made again only when a bucket ends: it reads the whole history, and decisions
    /// come twenty times a bucket.
    forecast: Option<f64>,
}

impl Autoscaler {
    /// An autoscaler that has observed nothing yet.
    pub fn new(policy: ScalePolicy) -> Autoscaler {
        Autoscaler {
            policy,
            samples: VecDeque::new(),
            last_request: None,
            panicking_until: None,
            rates: VecDeque::new(),
            bucket_start: None,
            bucket_requests: 0,
            latency_seconds: 0.0,
            forecast: None,
        }
    }

    /// Records the in-flight requests at `now` and the requests that arrived since the last sample.
    pub fn observe(&mut self, now: f64, in_flight: f64, arrived: u64) {
        self.samples.push_back((now, in_flight));
        while self.samples.front().is_some_and(|(time, _)| *time < now - self.policy.stable_window_seconds) {
            self.samples.pop_front();
        }
        if arrived > 0 || in_flight > 0.0 {
            self.last_request = Some(now);
        }
        let start = *self.bucket_start.get_or_insert(now);
        self.bucket_requests += arrived;
        if now - start >= BUCKET_SECONDS {
            self.rates.push_back(self.bucket_requests as f64 / (now - start));
            if self.rates.len() > 2 * SEASON {
                self.rates.pop_front();
            }
            self.bucket_start = Some(now);
            self.bucket_requests = 0;
            self.forecast = self.forecast_from_history();
        }
    }

    /// Records how long a request took.
    pub fn observe_latency(&mut self, seconds: f64) {
        self.latency_seconds =
            if self.latency_seconds == 0.0 { seconds } else { 0.9 * self.latency_seconds + 0.1 * seconds };
    }

    fn average(&self, now: f64, window: f64) -> f64 {
        let recent: Vec<f64> =
            self.samples.iter().filter(|(time, _)| *time >= now - window).map(|(_, value)| *value).collect();
        if recent.is_empty() { 0.0 } else { recent.iter().sum::<f64>() / recent.len() as f64 }
    }

    fn replicas_for(&self, concurrency: f64) -> u32 {
        (concurrency / self.policy.target_concurrency).ceil().min(f64::from(u32::MAX)) as u32
    }

    /// The request rate expected one bucket ahead, when there is history enough to say.
    pub fn forecast_rate(&self) -> Option<f64> {
        self.forecast
    }

    /// Holt(–Winters) over the whole history of bucket rates.
    fn forecast_from_history(&self) -> Option<f64> {
        if self.rates.len() < 3 {
            return None;
        }
        let seasonal = self.rates.len() > SEASON;
        let mut level = self.rates[0];
        let mut trend = self.rates[1] - self.rates[0];
        let mut season = vec![0.0; SEASON];
        if seasonal {
            let mean = self.rates.iter().take(SEASON).sum::<f64>() / SEASON as f64;
            for (index, rate) in self.rates.iter().take(SEASON).enumerate() {
                season[index] = rate - mean;
            }
            level = mean;
            trend = 0.0;
        }
        let start = if seasonal { SEASON } else { 1 };
        for index in start..self.rates.len() {
            let rate = self.rates[index];
            let seasonal_part = if seasonal { season[index % SEASON] } else { 0.0 };
            let previous_level = level;
            level = ALPHA * (rate - seasonal_part) + (1.0 - ALPHA) * (level + trend);
            trend = BETA * (level - previous_level) + (1.0 - BETA) * trend;
            if seasonal {
                season[index % SEASON] = GAMMA * (rate - level) + (1.0 - GAMMA) * seasonal_part;
            }
        }
        let next_season = if seasonal { season[self.rates.len() % SEASON] } else { 0.0 };
        Some((level + trend + next_season).max(0.0))
    }

    /// How many replicas the service should have at `now`, having `current`.
    pub fn decide(&mut self, now: f64, current: u32) -> Decision {
        let policy = &self.policy;
        let stable = self.replicas_for(self.average(now, policy.stable_window_seconds));
        let panic = self.replicas_for(self.average(now, policy.panic_window_seconds));
        let mut decision = Decision { replicas: stable, reason: "stable" };
        if current > 0 && f64::from(panic) >= policy.panic_threshold * f64::from(current) || current == 0 && panic > 1 {
            self.panicking_until = Some(now + policy.stable_window_seconds);
        }
        if self.panicking_until.is_some_and(|until| now < until) {
            decision = Decision { replicas: panic.max(current).max(stable), reason: "panic" };
        }
        if policy.predictive
            && let Some(rate) = self.forecast_rate()
        {
            let expected = self.replicas_for(rate * self.latency_seconds.max(1e-3));
            if expected > decision.replicas {
                decision = Decision { replicas: expected, reason: "predictive" };
            }
        }
        let recently_used = self.last_request.is_some_and(|last| now - last < self.policy.idle_seconds);
        if decision.replicas == 0 && recently_used {
            decision = Decision { replicas: 1, reason: "warm until idle" };
        }
        if decision.replicas == 0 && policy.min == 0 {
            decision.reason = "idle";
        }
        decision.replicas = decision.replicas.clamp(policy.min, policy.max);
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min: u32, max: u32) -> ScalePolicy {
        ScalePolicy::new(min, max, 10, Some(300.0), false)
    }

    #[test]
    fn stable_load_sets_replicas_by_target_concurrency() {
        let mut scaler = Autoscaler::new(policy(1, 8));
        for second in 0..60 {
            scaler.observe(f64::from(second), 25.0, 25);
        }
        assert_eq!(scaler.decide(60.0, 3), Decision { replicas: 3, reason: "stable" });
    }

    #[test]
    fn a_burst_panics_up_at_once_and_holds_for_the_stable_window() {
        let mut scaler = Autoscaler::new(policy(1, 8));
        for second in 0..54 {
            scaler.observe(f64::from(second), 5.0, 5);
        }
        for second in 54..60 {
            scaler.observe(f64::from(second), 70.0, 70);
        }
        // The stable average is only ~12 in flight (2 replicas), but the last 6 s ask for 7.
        let decision = scaler.decide(60.0, 1);
        assert_eq!(decision, Decision { replicas: 7, reason: "panic" });
        // The burst ends; the panic holds the replicas until a stable window has passed.
        for second in 60..100 {
            scaler.observe(f64::from(second), 1.0, 1);
        }
        assert_eq!(scaler.decide(100.0, 7).replicas, 7);
        for second in 100..125 {
            scaler.observe(f64::from(second), 1.0, 1);
        }
        assert_eq!(scaler.decide(125.0, 7), Decision { replicas: 1, reason: "stable" });
    }

    #[test]
    fn never_beyond_max_nor_below_min() {
        let mut scaler = Autoscaler::new(policy(2, 4));
        for second in 0..60 {
            scaler.observe(f64::from(second), 500.0, 500);
        }
        assert_eq!(scaler.decide(60.0, 4).replicas, 4);
        let mut quiet = Autoscaler::new(policy(2, 4));
        quiet.observe(0.0, 0.0, 0);
        assert_eq!(quiet.decide(1000.0, 2).replicas, 2);
    }

    #[test]
    fn scale_to_zero_only_after_the_idle_time() {
        let mut scaler = Autoscaler::new(ScalePolicy::new(0, 4, 10, Some(120.0), false));
        scaler.observe(0.0, 1.0, 1);
        for second in 1..50 {
            scaler.observe(f64::from(second), 0.0, 0);
        }
        assert_eq!(scaler.decide(50.0, 1).replicas, 1);
        for second in 50..62 {
            scaler.observe(f64::from(second), 0.0, 0);
        }
        // The stable window has no request left, but the idle time has not passed.
        assert_eq!(scaler.decide(62.0, 1), Decision { replicas: 1, reason: "warm until idle" });
        for second in 62..130 {
            scaler.observe(f64::from(second), 0.0, 0);
        }
        assert_eq!(scaler.decide(130.0, 1), Decision { replicas: 0, reason: "idle" });
        // A request while at zero: one replica (the request waits for it).
        scaler.observe(131.0, 1.0, 1);
        assert_eq!(scaler.decide(131.0, 0).replicas, 1);
    }

    #[test]
    fn a_rising_rate_is_forecast_and_served_ahead() {
        let mut scaler = Autoscaler::new(ScalePolicy::new(1, 20, 10, None, true));
        scaler.observe_latency(0.5);
        // The rate climbs by 10 requests/s every 10 s; in flight stays low (we look at the rate only).
        for second in 0..=120 {
            let rate = 10.0 * (f64::from(second) / 10.0).floor();
            scaler.observe(f64::from(second), 1.0, rate as u64);
        }
        let forecast = scaler.forecast_rate().unwrap();
        assert!(forecast > 110.0, "forecast {forecast}");
        let decision = scaler.decide(120.0, 1);
        assert_eq!(decision.reason, "predictive");
        // 120+ requests/s × 0.5 s = 60+ in flight: at least 6 replicas of 10.
        assert!(decision.replicas >= 6, "{decision:?}");
    }

    #[test]
    fn a_daily_season_is_learned() {
        let mut scaler = Autoscaler::new(ScalePolicy::new(1, 50, 10, None, true));
        // A day and eight hours: quiet (5/s) except a daily peak (100/s) from 08:00 to 09:00. Each sample counts
        // the requests of the 10 s before it.
        let peak = |second: u64| (second % 86_400) / 3_600 == 8;
        scaler.observe(0.0, 0.0, 0);
        let end = 86_400 + 8 * 3_600;
        for second in (10..=end).step_by(10) {
            let rate = if peak(second - 10) { 100 } else { 5 };
            scaler.observe(second as f64, 0.0, rate * 10);
        }
        // At 08:00 on the second day, before any of its peak arrived, the season says the peak is coming.
        let forecast = scaler.forecast_rate().unwrap();
        assert!(forecast > 50.0, "forecast {forecast}");
    }
}
