//! Quality-of-service policies. Every few seconds each policy's condition is measured on its targets — latency
//! percentiles and the error rate of the last interval, the queue, the service's own objectives (`slo_missed`), or
//! the busy share of the CPU and memory of the machine the target runs on (`cpu > 85%`) — and a condition that has
//! held for the policy's `for` time triggers its action. Where the pools are ([`PolicyEngine`]: `stratum up`, and
//! each agent for the services it runs), `scale_out` raises a service's floor of replicas by one (up to its `max`)
//! and `shed_load(F)` turns away that fraction of its requests while the condition holds. Where the machines are
//! ([`ClusterPolicies`]: the control plane of `stratum server`), `migrate(TIER)` moves the target to a live
//! machine of that tier (the next tier up when it names none: edge → fog → cloud), for as long as this version of
//! the application runs. Every action is an event with the measurement that caused it; `node_lost → migrate` is
//! placement's ([`crate::placement`]).

use crate::serving::ServicePool;
use crate::usage::Usage;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratum_core::ir::{Action, Application, BinaryOp, Condition, LatencyTarget, Policy, Signal, Tier};
use stratum_dataplane::metrics::{LATENCY_BUCKETS_MICROSECONDS, MetricsSnapshot, Registry};
use tokio::sync::watch;

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

/// What a policy's condition is measured on: one target over the last interval.
pub struct Measured<'a> {
    /// The target's metrics over the interval (none before a second evaluation).
    pub delta: Option<&'a MetricsSnapshot>,
    /// Requests in flight (a service) or batches waiting (another component).
    pub queue: Option<f64>,
    /// The machine the target runs on.
    pub machine: Option<Usage>,
    /// The target's latency objectives (a service's `slo`).
    pub objectives: &'a [LatencyTarget],
}

/// The value of a signal (none while there is nothing to measure yet). Every signal the checker accepts is
/// measured here: the match has no fallback.
fn measure(signal: Signal, measured: &Measured) -> Option<f64> {
    let percentile =
        |fraction: f64| measured.delta.and_then(|delta| percentile_seconds(&delta.latency_buckets, fraction));
    match signal {
        Signal::P50 | Signal::P90 | Signal::P95 | Signal::P99 => signal.percentile().and_then(percentile),
        Signal::ErrorRate => {
            measured.delta.and_then(|delta| (delta.events_in > 0).then(|| delta.errors as f64 / delta.events_in as f64))
        }
        Signal::Queue => measured.queue,
        Signal::Cpu => measured.machine.and_then(|usage| usage.machine_cpu),
        Signal::Memory => measured.machine.and_then(|usage| usage.machine_memory),
    }
}

/// Whether a condition holds, with what was measured (none while there is nothing to measure), or why it cannot
/// be measured.
pub(crate) fn condition_holds(condition: &Condition, measured: &Measured) -> Result<Option<(bool, String)>, String> {
    match condition {
        Condition::Threshold { signal, op, threshold } => Ok(measure(*signal, measured)
            .map(|value| (holds(value, *op, *threshold), format!("{signal} {value:.4} against {threshold:.4}")))),
        Condition::SloMissed => Ok(measured.objectives.iter().find_map(|target| {
            let value = percentile_seconds(&measured.delta?.latency_buckets, target.percentile / 100.0)?;
            Some((
                value > target.at_most.0,
                format!("p{} {:.4} s against {:.4} s", target.percentile, value, target.at_most.0),
            ))
        })),
        Condition::NodeLost => Ok(None),
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

/// What a (policy, target) condition has done since the last evaluation.
enum Holding {
    /// It does not hold; it did before.
    Cleared,
    /// It does not hold, cannot be measured, or holds for less than the policy's `for` time.
    Waiting,
    /// It has held long enough: act, saying what was measured.
    Act(String),
}

/// When each (policy, target) condition started to hold.
#[derive(Default)]
struct Conditions {
    since: BTreeMap<(String, String), Instant>,
    /// Conditions already reported as not measurable, so that it is said once.
    reported: Vec<(String, String)>,
}

impl Conditions {
    /// Measures `policy`'s condition on `target` and says what it has done; a condition that cannot be measured is
    /// reported once in `events`.
    fn update(
        &mut self,
        policy: &Policy,
        target: &str,
        measured: &Measured,
        now: Instant,
        events: &mut Vec<(String, String)>,
    ) -> Holding {
        let key = (policy.name.clone(), target.to_string());
        let (held, measurement) = match condition_holds(&policy.condition, measured) {
            Ok(Some(result)) => result,
            Ok(None) => (false, String::new()),
            Err(reason) => {
                self.report_once(&key, events, format!("policy `{}`: {reason}", policy.name));
                return Holding::Waiting;
            }
        };
        if !held {
            return if self.since.remove(&key).is_some() { Holding::Cleared } else { Holding::Waiting };
        }
        let since = *self.since.entry(key).or_insert(now);
        let sustained = policy.sustained.map_or(Duration::ZERO, |duration| Duration::from_secs_f64(duration.0));
        if now.duration_since(since) < sustained { Holding::Waiting } else { Holding::Act(measurement) }
    }

    /// Says once why a condition cannot be measured.
    fn report_once(&mut self, key: &(String, String), events: &mut Vec<(String, String)>, message: String) {
        if !self.reported.contains(key) {
            self.reported.push(key.clone());
            events.push((key.1.clone(), message));
        }
    }
}

/// A service's latency objectives (none for another component).
fn objectives_of<'a>(application: &'a Application, name: &str) -> &'a [LatencyTarget] {
    application.services.iter().find(|item| item.name == name).map_or(&[], |item| item.slo.latency.as_slice())
}

/// Each component's metrics since the previous evaluation (the first time, since it started).
fn deltas(
    previous: &mut BTreeMap<String, MetricsSnapshot>,
    snapshots: &BTreeMap<String, MetricsSnapshot>,
) -> BTreeMap<String, MetricsSnapshot> {
    let deltas = snapshots
        .iter()
        .map(|(name, snapshot)| {
            let delta = previous.get(name).map_or_else(|| snapshot.clone(), |before| snapshot.since(before));
            (name.clone(), delta)
        })
        .collect();
    *previous = snapshots.clone();
    deltas
}

/// The policies that act on services' pools, with what they have seen.
pub struct PolicyEngine {
    rules: Vec<(Policy, String)>,
    previous: BTreeMap<String, MetricsSnapshot>,
    conditions: Conditions,
    /// Whether what needs other machines is someone else's to act on (an agent's control plane: `migrate`, and
    /// `scale_out` on a machine's `cpu` or `memory`), rather than impossible or done here.
    cluster_decides: bool,
}

impl PolicyEngine {
    /// The (policy, service) pairs of the application: policies whose targets include services (or all). An agent
    /// passes `cluster_decides`: its control plane decides what needs other machines.
    pub fn new(application: &Application, cluster_decides: bool) -> PolicyEngine {
        let mut rules = Vec::new();
        for policy in &application.policies {
            for service in &application.services {
                if policy.targets.is_empty() || policy.targets.contains(&service.name) {
                    rules.push((policy.clone(), service.name.clone()));
                }
            }
        }
        PolicyEngine { rules, previous: BTreeMap::new(), conditions: Conditions::default(), cluster_decides }
    }

    /// Whether there are no policies.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// One evaluation at `now`, given each service's request metrics and this machine's use; acts on the pools
    /// (services without a pool here are skipped) and returns the events (service, message).
    pub fn evaluate(
        &mut self,
        now: Instant,
        application: &Application,
        snapshots: &BTreeMap<String, MetricsSnapshot>,
        pools: &BTreeMap<String, Arc<ServicePool>>,
        machine: Option<Usage>,
    ) -> Vec<(String, String)> {
        let mut events = Vec::new();
        let deltas = deltas(&mut self.previous, snapshots);
        for (policy, service) in &self.rules {
            let Some(pool) = pools.get(service) else { continue };
            let needs_other_machines = match policy.action {
                Action::Migrate { .. } => true,
                Action::ScaleOut => scales_onto_machines(application, policy, service),
                Action::ShedLoad { .. } => false,
            };
            if needs_other_machines && self.cluster_decides {
                continue;
            }
            let measured = Measured {
                delta: deltas.get(service),
                queue: Some(pool.in_flight() as f64),
                machine,
                objectives: objectives_of(application, service),
            };
            let key = (policy.name.clone(), service.clone());
            let measurement = match self.conditions.update(policy, service, &measured, now, &mut events) {
                Holding::Cleared => {
                    if matches!(policy.action, Action::ShedLoad { .. }) {
                        pool.shed(0.0);
                        events.push((
                            service.clone(),
                            format!("policy `{}`: condition cleared, shedding stopped", policy.name),
                        ));
                    }
                    continue;
                }
                Holding::Waiting => continue,
                Holding::Act(measurement) => measurement,
            };
            match &policy.action {
                Action::ScaleOut => {
                    if let Some(floor) = pool.scale_out() {
                        events.push((
                            service.clone(),
                            format!("policy `{}`: {measurement}: at least {floor} replicas now", policy.name),
                        ));
                    }
                    // Measured again from now before scaling further.
                    self.conditions.since.insert(key, now);
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
                    let message =
                        format!("policy `{}`: {measurement}, but one machine has nowhere to migrate to", policy.name);
                    self.conditions.report_once(&key, &mut events, message);
                }
            }
        }
        events
    }
}

/// Runs the policies on `pools` every five seconds until `stop` turns true, measuring the requests of each service
/// over HTTP and this machine's use; each event goes to `on_event(service, message)`.
pub async fn run_policies(
    application: Application,
    pools: BTreeMap<String, Arc<ServicePool>>,
    metrics: Arc<Registry>,
    cluster_decides: bool,
    mut stop: watch::Receiver<bool>,
    on_event: impl Fn(&str, &str) + Send + 'static,
) {
    let mut engine = PolicyEngine::new(&application, cluster_decides);
    if engine.is_empty() {
        return;
    }
    let mut machine = crate::usage::UsageMeter::default();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        // A service's requests are counted as `NAME-http`.
        let snapshots: BTreeMap<String, MetricsSnapshot> = metrics
            .snapshot()
            .into_iter()
            .filter_map(|snapshot| {
                let service = snapshot.component.strip_suffix("-http")?.to_string();
                pools.contains_key(&service).then_some((service, snapshot))
            })
            .collect();
        let usage = machine.read();
        for (service, message) in engine.evaluate(Instant::now(), &application, &snapshots, &pools, usage) {
            on_event(&service, &message);
        }
    }
}

/// Whether a `scale_out` policy on `service` adds machines rather than replicas: when what it measures is the
/// machine (`cpu`, `memory`) — more replicas on an overloaded machine do not help — and the service takes requests
/// over HTTP (the gateway spreads them over every instance; a service reading a stream would read it twice).
pub fn scales_onto_machines(application: &Application, policy: &Policy, service: &str) -> bool {
    let on_the_machine = matches!(&policy.condition, Condition::Threshold { signal, .. } if signal.of_machine());
    let over_http = application
        .services
        .iter()
        .any(|item| item.name == service && matches!(item.input, stratum_core::ir::ServiceInput::Http { .. }));
    matches!(policy.action, Action::ScaleOut) && on_the_machine && over_http
}

/// Where a target runs now, as the control plane knows it.
pub struct Host {
    /// The machine.
    pub name: String,
    /// Its tier.
    pub tier: Tier,
    /// What the machine used over its agent's last heartbeat.
    pub usage: Option<Usage>,
}

/// The tier after `tier` going up: edge → fog → cloud.
fn tier_above(tier: Tier) -> Option<Tier> {
    match tier {
        Tier::Edge => Some(Tier::Fog),
        Tier::Fog => Some(Tier::Cloud),
        Tier::Cloud => None,
    }
}

/// The policies the control plane acts on, because they need other machines — `migrate` (other than on
/// `node_lost`, which is placement's) and `scale_out` onto more machines ([`scales_onto_machines`]) — with what
/// they have done: the components moved, the instances added.
#[derive(Default)]
pub struct ClusterPolicies {
    rules: Vec<(Policy, String)>,
    previous: BTreeMap<String, MetricsSnapshot>,
    conditions: Conditions,
    /// The tier each moved component runs on now.
    moved: BTreeMap<String, Tier>,
    /// The instances each service runs on machines beyond its planned one.
    added: BTreeMap<String, u32>,
}

impl ClusterPolicies {
    /// The (policy, component) pairs: `migrate` policies, on their targets (every component the agents run when
    /// a policy names none), and `scale_out` policies that add machines, on their services.
    pub fn new(application: &Application) -> ClusterPolicies {
        let components: Vec<&str> = application
            .sources
            .iter()
            .map(|item| item.name.as_str())
            .chain(application.streams.iter().map(|item| item.name.as_str()))
            .chain(application.sinks.iter().map(|item| item.name.as_str()))
            .chain(application.services.iter().map(|item| item.name.as_str()))
            .collect();
        let mut rules = Vec::new();
        for policy in &application.policies {
            let targeted =
                |component: &str| policy.targets.is_empty() || policy.targets.iter().any(|target| target == component);
            let chosen: Vec<&str> = match policy.action {
                Action::Migrate { .. } if policy.condition != Condition::NodeLost => {
                    components.iter().copied().filter(|component| targeted(component)).collect()
                }
                Action::ScaleOut => application
                    .services
                    .iter()
                    .map(|service| service.name.as_str())
                    .filter(|service| targeted(service) && scales_onto_machines(application, policy, service))
                    .collect(),
                _ => Vec::new(),
            };
            rules.extend(chosen.into_iter().map(|component| (policy.clone(), component.to_string())));
        }
        ClusterPolicies { rules, ..ClusterPolicies::default() }
    }

    /// The instances each service runs beyond its planned one, on other machines, for placement.
    pub fn added(&self) -> &BTreeMap<String, u32> {
        &self.added
    }

    /// The tier each moved component must run on, for placement.
    pub fn moved(&self) -> &BTreeMap<String, Tier> {
        &self.moved
    }

    /// Takes back what a control plane before a restart had moved and added (its state store kept it).
    pub fn restore(
        &mut self,
        moved: impl IntoIterator<Item = (String, Tier)>,
        added: impl IntoIterator<Item = (String, u32)>,
    ) {
        self.moved.extend(moved);
        self.added.extend(added);
    }

    /// One evaluation at `now`, given each component's metrics (all its instances together) and where it runs;
    /// returns the events (component, message) of what it moved.
    pub fn evaluate(
        &mut self,
        now: Instant,
        application: &Application,
        snapshots: &BTreeMap<String, MetricsSnapshot>,
        host_of: &dyn Fn(&str) -> Option<Host>,
        machines: usize,
    ) -> Vec<(String, String)> {
        let mut events = Vec::new();
        let deltas = deltas(&mut self.previous, snapshots);
        for (policy, component) in &self.rules {
            let Some(host) = host_of(component) else { continue };
            // A service answering over HTTP counts its requests as `NAME-http`.
            let delta = deltas.get(component).or_else(|| deltas.get(&crate::serving::requests_component(component)));
            let measured = Measured {
                delta,
                queue: delta.map(|delta| delta.queue_depth as f64),
                machine: host.usage,
                objectives: objectives_of(application, component),
            };
            let Holding::Act(measurement) = self.conditions.update(policy, component, &measured, now, &mut events)
            else {
                continue;
            };
            let key = (policy.name.clone(), component.clone());
            let to = match policy.action {
                Action::Migrate { to } => to,
                _ => {
                    // Scaling out onto one more machine, while there is a machine it does not run on yet.
                    let added = self.added.entry(component.clone()).or_default();
                    if (*added as usize) + 1 >= machines {
                        let message = format!(
                            "policy `{}`: {measurement} on {}, but `{component}` runs on every machine already",
                            policy.name, host.name
                        );
                        self.conditions.report_once(&key, &mut events, message);
                    } else {
                        *added += 1;
                        events.push((
                            component.clone(),
                            format!(
                                "policy `{}`: {measurement} on {} ({}): one more instance on another machine ({} in all)",
                                policy.name,
                                host.name,
                                host.tier.name(),
                                *added + 1
                            ),
                        ));
                    }
                    // Measured again from now before adding another.
                    self.conditions.since.insert(key, now);
                    continue;
                }
            };
            let tier = match to.or_else(|| tier_above(host.tier)) {
                Some(tier) => tier,
                None => {
                    let message =
                        format!("policy `{}`: {measurement}, but {} is on the last tier", policy.name, host.name);
                    self.conditions.report_once(&key, &mut events, message);
                    continue;
                }
            };
            if tier == host.tier || self.moved.get(component) == Some(&tier) {
                continue;
            }
            self.moved.insert(component.clone(), tier);
            let message = format!(
                "policy `{}`: {measurement} on {} ({}): migrating to the {} tier",
                policy.name,
                host.name,
                host.tier.name(),
                tier.name()
            );
            events.push((component.clone(), message));
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(component: &str, latency_bucket: usize, count: u64) -> MetricsSnapshot {
        let mut snapshot = MetricsSnapshot { component: component.into(), ..MetricsSnapshot::default() };
        snapshot.latency_buckets = vec![0; LATENCY_BUCKETS_MICROSECONDS.len() + 1];
        snapshot.latency_buckets[latency_bucket] = count;
        snapshot.events_in = count;
        snapshot
    }

    #[test]
    fn a_migrate_policy_moves_its_target_once_its_condition_has_held_long_enough() {
        let text = "app moving\n\
            node edge1 { tier = edge  cpu = 2  memory = 2 GiB }\n\
            node fog1 { tier = fog  cpu = 4  memory = 8 GiB }\n\
            schema Reading { sensor: string  ts: timestamp  value: float }\n\
            source readings: generator { schema = Reading  rate = 10/s  on = edge1 }\n\
            stream counts { from = readings  window = tumbling(1 s)  select { n = count() }  on = edge }\n\
            sink kept: jsonl { from = counts  path = \"out/counts.jsonl\"  on = fog }\n\
            policy slow { target = counts  when = p99 > 5 ms for 10 s  then = migrate }\n\
            policy busy { target = kept  when = cpu > 90%  then = migrate(cloud) }\n";
        let checked = stratum_lang::check_text("moving.stratum", text);
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        let application = checked.application;
        let mut policies = ClusterPolicies::new(&application);
        let busy_edge = |component: &str| {
            let (name, tier) = if component == "counts" { ("edge1", Tier::Edge) } else { ("fog1", Tier::Fog) };
            let usage = Usage { cpu_percent: 10.0, memory_bytes: 1, machine_cpu: Some(0.5), machine_memory: None };
            Some(Host { name: name.into(), tier, usage: Some(usage) })
        };
        let start = Instant::now();
        // Fast batches: nothing happens.
        let fast = BTreeMap::from([("counts".to_string(), snapshot("counts", 1, 10))]);
        assert!(policies.evaluate(start, &application, &fast, &busy_edge, 3).is_empty());
        // Slow from now on (≤ 250 ms): held, but not yet for 10 s.
        let mut slow = snapshot("counts", 10, 10);
        slow.latency_buckets[1] = 10;
        slow.events_in = 20;
        let slow = BTreeMap::from([("counts".to_string(), slow)]);
        assert!(policies.evaluate(start + Duration::from_secs(5), &application, &slow, &busy_edge, 3).is_empty());
        let mut slower = slow["counts"].clone();
        slower.latency_buckets[10] = 20;
        slower.events_in = 30;
        let slower = BTreeMap::from([("counts".to_string(), slower)]);
        let events = policies.evaluate(start + Duration::from_secs(16), &application, &slower, &busy_edge, 3);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].1.contains("policy `slow`: p99 0.2500") && events[0].1.contains("to the fog tier"));
        assert_eq!(policies.moved(), &BTreeMap::from([("counts".to_string(), Tier::Fog)]));
        // `kept` runs on a machine at 50% CPU: under 90%, it stays.
        assert!(!policies.moved().contains_key("kept"));
    }

    /// `scale_out` on a machine's CPU adds machines for a service answering over HTTP, one at a time, measured
    /// again in between, while there is a machine left; on a latency signal it stays the pools' (more replicas).
    #[test]
    fn scale_out_on_an_overloaded_machine_adds_machines_for_an_http_service() {
        let text = "app growing\n\
            node fog1 { tier = fog  cpu = 4  memory = 8 GiB }\n\
            node fog2 { tier = fog  cpu = 4  memory = 8 GiB }\n\
            schema Row { n: int  busy: bool }\n\
            dataset rows { schema = Row  path = \"rows.csv\" }\n\
            model m: classifier { data = rows  target = busy  features = [n]\n\
              candidates { decision_tree { max_depth = [2] } }  evaluate = holdout(0.25) by accuracy }\n\
            service answers: inference { model = m  input = http { path = \"/v1/answers\" }  on = fog1 }\n\
            policy crowded { target = answers  when = cpu > 80% for 10 s  then = scale_out }\n\
            policy slow { target = answers  when = p99 > 50 ms  then = scale_out }\n";
        let checked = stratum_lang::check_text("growing.stratum", text);
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        let application = checked.application;
        let crowded = &application.policies[0];
        assert!(scales_onto_machines(&application, crowded, "answers"));
        assert!(!scales_onto_machines(&application, &application.policies[1], "answers"), "latency: more replicas");

        let mut policies = ClusterPolicies::new(&application);
        let loaded = |cpu: f64| {
            move |_: &str| {
                let usage = Usage { cpu_percent: 10.0, memory_bytes: 1, machine_cpu: Some(cpu), machine_memory: None };
                Some(Host { name: "fog1".into(), tier: Tier::Fog, usage: Some(usage) })
            }
        };
        let none = BTreeMap::new();
        let start = Instant::now();
        assert!(policies.evaluate(start, &application, &none, &loaded(0.95), 3).is_empty());
        let events = policies.evaluate(start + Duration::from_secs(11), &application, &none, &loaded(0.95), 3);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(
            events[0].1.contains("policy `crowded`: cpu 0.9500") && events[0].1.contains("(2 in all)"),
            "{events:?}"
        );
        assert_eq!(policies.added(), &BTreeMap::from([("answers".to_string(), 1)]));
        // Measured again from then: not before another 10 s, and then the third machine; no fourth.
        assert!(policies.evaluate(start + Duration::from_secs(15), &application, &none, &loaded(0.95), 3).is_empty());
        policies.evaluate(start + Duration::from_secs(22), &application, &none, &loaded(0.95), 3);
        assert_eq!(policies.added()["answers"], 2);
        let events = policies.evaluate(start + Duration::from_secs(33), &application, &none, &loaded(0.95), 3);
        assert!(events[0].1.contains("runs on every machine already"), "{events:?}");
        assert_eq!(policies.added()["answers"], 2);
    }

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
