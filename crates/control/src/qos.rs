//! Quality-of-service policies on one machine (`stratum up`): every few seconds the policies' conditions are measured
//! on their target services — latency percentiles from the requests of the last interval, the error rate, requests
//! in flight, or the service's own objectives (`slo_missed`) — and a condition that has held for the policy's `for`
//! time triggers its action: `scale_out` raises the service's floor of replicas by one (up to its `max`),
//! `shed_load(F)` turns away that fraction of its requests while the condition holds. Every action is an event with
//! the measurement that caused it. Moving work to another machine (`migrate`) needs machines: the control plane
//! does that when a machine is lost.

use crate::serving::ServicePool;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratum_core::ir::{Action, Application, BinaryOp, Condition, Policy};
use stratum_dataplane::metrics::{LATENCY_BUCKETS_MICROSECONDS, MetricsSnapshot};

/// The latency below which a fraction `percentile` of the requests counted in `buckets` fell, in seconds (the upper
/// bound of the bucket that holds it; the unbounded bucket counts as its lower bound).
pub fn percentile_seconds(buckets: &[u64], percentile: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let wanted = (percentile.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (index, count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= wanted {
            let bound = LATENCY_BUCKETS_MICROSECONDS
                .get(index)
                .or(LATENCY_BUCKETS_MICROSECONDS.last())
                .copied()
                .unwrap_or_default();
            return Some(bound as f64 / 1e6);
        }
    }
    None
}

/// The value of a signal for a service over an interval, or why it cannot be measured here.
fn measure(signal: &str, delta: &MetricsSnapshot, pool: &ServicePool) -> Result<Option<f64>, String> {
    let percentile = |fraction: f64| Ok(percentile_seconds(&delta.latency_buckets, fraction));
    match signal {
        "p50" => percentile(0.5),
        "p90" => percentile(0.9),
        "p95" => percentile(0.95),
        "p99" => percentile(0.99),
        "error_rate" => Ok((delta.events_in > 0).then(|| delta.errors as f64 / delta.events_in as f64)),
        "queue" => Ok(Some(pool.in_flight() as f64)),
        other => Err(format!("`{other}` is not measured for services on one machine yet")),
    }
}

fn holds(value: f64, op: BinaryOp, threshold: f64) -> bool {
    match op {
        BinaryOp::Greater => value > threshold,
        BinaryOp::GreaterOrEqual => value >= threshold,
        BinaryOp::Less => value < threshold,
        BinaryOp::LessOrEqual => value <= threshold,
        BinaryOp::Equal => value == threshold,
        BinaryOp::NotEqual => value != threshold,
        _ => false,
    }
}

/// The policies that act on services, with what they have seen.
pub struct PolicyEngine {
    rules: Vec<(Policy, String)>,
    previous: BTreeMap<String, MetricsSnapshot>,
    /// When each (policy, service) condition started to hold.
    since: BTreeMap<(String, String), Instant>,
    /// Signals already reported as not measurable, so that it is said once.
    reported: Vec<(String, String)>,
}

impl PolicyEngine {
    /// The (policy, service) pairs of the application: policies whose targets include services (or all).
    pub fn new(application: &Application) -> PolicyEngine {
        let mut rules = Vec::new();
        for policy in &application.policies {
            for service in &application.services {
                if policy.targets.is_empty() || policy.targets.contains(&service.name) {
                    rules.push((policy.clone(), service.name.clone()));
                }
            }
        }
        PolicyEngine { rules, previous: BTreeMap::new(), since: BTreeMap::new(), reported: Vec::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// One evaluation at `now`, given each service's request metrics; acts on the pools and returns the events
    /// (service, message).
    pub fn evaluate(
        &mut self,
        now: Instant,
        application: &Application,
        snapshots: &BTreeMap<String, MetricsSnapshot>,
        pools: &BTreeMap<String, Arc<ServicePool>>,
    ) -> Vec<(String, String)> {
        let mut events = Vec::new();
        let deltas: BTreeMap<String, MetricsSnapshot> = snapshots
            .iter()
            .map(|(service, snapshot)| {
                let delta =
                    self.previous.get(service).map_or_else(|| snapshot.clone(), |before| snapshot.since(before));
                (service.clone(), delta)
            })
            .collect();
        self.previous = snapshots.clone();
        for (policy, service) in &self.rules {
            let (Some(delta), Some(pool)) = (deltas.get(service), pools.get(service)) else { continue };
            let measured: Result<Option<(bool, String)>, String> = match &policy.condition {
                Condition::Threshold { signal, op, threshold } => measure(signal, delta, pool).map(|value| {
                    value.map(|value| {
                        (holds(value, *op, *threshold), format!("{signal} {value:.4} against {threshold:.4}"))
                    })
                }),
                Condition::SloMissed => {
                    let objectives =
                        application.services.iter().find(|item| &item.name == service).map(|item| &item.slo.latency);
                    Ok(objectives.into_iter().flatten().find_map(|target| {
                        let value = percentile_seconds(&delta.latency_buckets, target.percentile / 100.0)?;
                        Some((
                            value > target.at_most.0,
                            format!("p{} {:.4} s against {:.4} s", target.percentile, value, target.at_most.0),
                        ))
                    }))
                }
                Condition::NodeLost => Ok(None),
            };
            let key = (policy.name.clone(), service.clone());
            let (held, measurement) = match measured {
                Ok(Some((held, measurement))) => (held, measurement),
                Ok(None) => (false, String::new()),
                Err(reason) => {
                    if !self.reported.contains(&key) {
                        self.reported.push(key.clone());
                        events.push((service.clone(), format!("policy `{}`: {reason}", policy.name)));
                    }
                    continue;
                }
            };
            if !held {
                if self.since.remove(&key).is_some() && matches!(policy.action, Action::ShedLoad { .. }) {
                    pool.shed(0.0);
                    events.push((
                        service.clone(),
                        format!("policy `{}`: condition cleared, shedding stopped", policy.name),
                    ));
                }
                continue;
            }
            let since = *self.since.entry(key.clone()).or_insert(now);
            let sustained = policy.sustained.map_or(Duration::ZERO, |duration| Duration::from_secs_f64(duration.0));
            if now.duration_since(since) < sustained {
                continue;
            }
            match &policy.action {
                Action::ScaleOut => {
                    if let Some(floor) = pool.scale_out() {
                        events.push((
                            service.clone(),
                            format!("policy `{}`: {measurement}: at least {floor} replicas now", policy.name),
                        ));
                    }
                    // Measured again from now before scaling further.
                    self.since.insert(key, now);
                }
                Action::ShedLoad { fraction } => {
                    if pool.shed(*fraction) {
                        events.push((
                            service.clone(),
                            format!(
                                "policy `{}`: {measurement}: shedding {:.0}% of requests",
                                policy.name,
                                fraction * 100.0
                            ),
                        ));
                    }
                }
                Action::Migrate { .. } => {
                    if !self.reported.contains(&key) {
                        self.reported.push(key.clone());
                        events.push((
                            service.clone(),
                            format!(
                                "policy `{}`: {measurement}, but one machine has nowhere to migrate to",
                                policy.name
                            ),
                        ));
                    }
                }
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_bucket_that_holds_them() {
        let mut buckets = vec![0u64; LATENCY_BUCKETS_MICROSECONDS.len() + 1];
        buckets[1] = 90; // ≤ 50 µs
        buckets[8] = 9; // ≤ 10 ms
        buckets[10] = 1; // ≤ 250 ms
        assert_eq!(percentile_seconds(&buckets, 0.5), Some(50e-6));
        assert_eq!(percentile_seconds(&buckets, 0.95), Some(0.01));
        assert_eq!(percentile_seconds(&buckets, 0.99), Some(0.01));
        assert_eq!(percentile_seconds(&buckets, 1.0), Some(0.25));
        assert_eq!(percentile_seconds(&[0; 13], 0.99), None);
    }
}
