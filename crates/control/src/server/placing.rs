//! The control plane's placement loop: which agents are alive, where every component runs, and what each agent
//! runs — one level-triggered pass ([`Server::reconcile`]) when something it depends on changed (an agent joined,
//! was lost or came back, a version was applied, a state was handed over, a policy moved a component, a model
//! file changed), and every few seconds regardless ([`Placement`], a [`Reconciler`]). Twice a second the loop
//! only looks for agents that went silent: with ten thousand agents, placing everything twice a second would cost
//! the control plane its cores while nothing changes.

use super::{Cluster, HAND_OVER_WAIT, Handover, Server, lock, stateful_streams};
use crate::placement::{LiveAgent, Placed, assignments, place};
use crate::qos::Host;
use crate::reconcile::{Action, Reconciler};
use crate::state::ServedModel;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratum_core::events::EventKind;
use stratum_dataplane::metrics::MetricsSnapshot;

/// Notes the windowed and joining streams that move from one live agent to another (one instance before and
/// after): they wait for the agent they leave to hand their state over. Settles those whose state came, whose
/// agent was lost, or that waited [`HAND_OVER_WAIT`]: whichever agent runs the stream next (the one it left,
/// should it be placed back meanwhile) takes up what came, or the last copy of its checkpoint.
fn track_handovers(cluster: &mut Cluster, placed: &[Placed], events: &mut Vec<Event>) {
    let Some(deployed) = &cluster.applied else { return };
    let stateful: BTreeSet<String> =
        stateful_streams(&deployed.application).map(|stream| stream.name.clone()).collect();
    // The one host of each stateful stream with one instance (a map each: a scan per stream would cost the
    // fleet's size squared).
    let only_hosts = |placed: &[Placed]| -> HashMap<String, Option<String>> {
        let mut instances: HashMap<&str, Vec<&Option<String>>> = HashMap::new();
        for placed in placed.iter().filter(|placed| stateful.contains(&placed.component)) {
            instances.entry(&placed.component).or_default().push(&placed.host);
        }
        instances
            .into_iter()
            .filter(|(_, hosts)| hosts.len() == 1)
            .map(|(component, hosts)| (component.to_string(), hosts[0].clone()))
            .collect()
    };
    let (hosts_before, hosts_now) = (only_hosts(&cluster.placed), only_hosts(placed));
    let lost = |cluster: &Cluster, agent: &str| cluster.agents.get(agent).is_none_or(|record| record.lost);
    // A state handed over for a stream the applied version no longer has goes nowhere.
    cluster.handed.retain(|component, _| stateful.contains(component));
    for component in &stateful {
        if cluster.handovers.contains_key(component) {
            continue;
        }
        let (Some(Some(from)), Some(Some(to))) = (hosts_before.get(component).cloned(), hosts_now.get(component))
        else {
            continue;
        };
        if &from != to && !lost(cluster, &from) {
            let message = format!("leaves {from} for {to}, handing its open windows over");
            events.push((EventKind::HandedOver, Some(component.clone()), message));
            cluster.handovers.insert(component.clone(), Handover { from, since: Instant::now(), arrived: false });
        }
    }
    let settled: Vec<String> = cluster
        .handovers
        .iter()
        .filter(|(component, handover)| {
            handover.arrived
                || lost(cluster, &handover.from)
                || handover.since.elapsed() > HAND_OVER_WAIT
                || !stateful.contains(*component)
        })
        .map(|(component, _)| component.clone())
        .collect();
    for component in settled {
        let Some(handover) = cluster.handovers.remove(&component) else { continue };
        // A state that came is in `handed` already; a lost agent's streams go on from the last copy of their
        // checkpoint, as `hand_over` gives it.
        if handover.arrived || lost(cluster, &handover.from) {
            continue;
        }
        if handover.since.elapsed() > HAND_OVER_WAIT {
            let from = &handover.from;
            let message = format!(
                "{from} did not hand its state over within {} s: it goes on from its last copy",
                HAND_OVER_WAIT.as_secs()
            );
            events.push((EventKind::HandedOver, Some(component.clone()), message));
            if let Some((holder, copy)) = cluster.checkpoints.get(&component)
                && holder == from
            {
                let copy = copy.clone();
                cluster.checkpoints_changed.insert(component.clone());
                cluster.handed.insert(component, copy);
            }
        }
    }
}

/// How often the `migrate` policies are measured.
const POLICY_INTERVAL: Duration = Duration::from_secs(2);

/// How often the loop looks for lost agents when nothing wakes it: an agent that stops heartbeating is noticed no
/// later.
const PLACEMENT_INTERVAL: Duration = Duration::from_millis(500);

/// How often placement places everything even when nothing it knows of changed: the level-triggered safety net.
const FULL_PASS_INTERVAL: Duration = Duration::from_secs(5);

/// A gap between two looks for lost agents longer than this means the control plane did not run meanwhile (the
/// loop looks every [`PLACEMENT_INTERVAL`]).
const STALLED: Duration = Duration::from_secs(2);

/// How long the control plane did not run, if it did not, between its last look for lost agents at `last` and
/// `now`: the gap beyond the loop's interval, when the gap is longer than [`STALLED`].
fn stall(last: Option<Instant>, now: Instant) -> Duration {
    match last.map(|last| now.saturating_duration_since(last)) {
        Some(gap) if gap > STALLED => gap - PLACEMENT_INTERVAL,
        _ => Duration::ZERO,
    }
}

/// An event the pass records once the cluster's lock is released: kind, component, message.
type Event = (EventKind, Option<String>, String);

/// The placement loop as a reconciler: desired, the applied version's plan; observed, the agents' heartbeats.
pub(crate) struct Placement(pub(crate) Arc<Server>);

impl Reconciler for Placement {
    type Error = std::convert::Infallible;

    fn name(&self) -> &'static str {
        "placement"
    }

    async fn reconcile(&mut self) -> Result<Action, Self::Error> {
        self.0.pass(false);
        Ok(Action::Requeue(PLACEMENT_INTERVAL))
    }
}

impl Server {
    /// One whole pass of the control loop, now: who is alive (observe), where everything runs (decide, purely,
    /// in [`place`]), what each agent runs and what changed (act). Its events are recorded once the cluster is
    /// unlocked.
    pub fn reconcile(&self) {
        self.pass(true);
    }

    /// Wakes the loop for a whole pass soon: many joins (a fleet that starts) share one.
    pub(super) fn place_soon(&self) {
        lock(&self.cluster).changed = true;
        self.placement_wake.notify_one();
    }

    /// A pass of the loop: lost agents are always looked for; everything is placed again when something changed,
    /// when `whole`, or when the last whole pass is [`FULL_PASS_INTERVAL`] old.
    fn pass(&self, whole: bool) {
        let mut events: Vec<Event> = Vec::new();
        let serving = {
            let mut cluster = lock(&self.cluster);
            let lost_now = self.mark_lost(&mut cluster, &mut events);
            let model_files = self.model_files(&mut cluster, &mut events);
            let policies_moved = self.evaluate_policies(&mut cluster, &mut events);
            let models_changed = cluster.model_files != model_files;
            let due = cluster.placed_at.is_none_or(|at| at.elapsed() >= FULL_PASS_INTERVAL);
            // A stream on its way between agents settles by time as well.
            let changed = std::mem::take(&mut cluster.changed);
            if !(whole || changed || lost_now || policies_moved || models_changed || due)
                && cluster.handovers.is_empty()
            {
                drop(cluster);
                return self.flush(events);
            }
            cluster.placed_at = Some(Instant::now());
            cluster.model_files = model_files.clone();
            let live = self.live_agents(&cluster);
            let lost: Vec<String> =
                cluster.agents.iter().filter(|(_, agent)| agent.lost).map(|(name, _)| name.clone()).collect();
            // Nothing applied yet: agents are known, nothing is placed.
            let Some(deployed) = &cluster.applied else {
                drop(cluster);
                return self.flush(events);
            };
            let placed = place(
                &deployed.application,
                &deployed.plan,
                &live,
                &lost,
                cluster.policies.moved(),
                cluster.policies.added(),
            );
            events.extend(placement_events(&cluster.placed, &placed, &lost));
            track_handovers(&mut cluster, &placed, &mut events);
            self.store_checkpoints(&mut cluster);
            // A stream being handed over runs nowhere until its state has come; what it reads waits meanwhile.
            let held: BTreeSet<String> = cluster.handovers.keys().cloned().collect();
            let Some(deployed) = &cluster.applied else { return };
            let assigned = assignments(
                &deployed.application,
                deployed.version,
                &placed,
                &live,
                &model_files,
                &self.path_secret,
                &held,
            );
            let serving: Vec<(String, String, u32, String)> = deployed
                .application
                .services
                .iter()
                .filter_map(|service| {
                    let (version, sha256) = model_files.get(&service.model)?;
                    (cluster.served.get(&service.name).map(|served| &served.version) != Some(version))
                        .then(|| (service.name.clone(), service.model.clone(), *version, sha256.clone()))
                })
                .collect();
            // An agent whose part did not change keeps the very assignment it had.
            let assigned = assigned
                .into_iter()
                .map(|(agent, assignment)| {
                    let kept = cluster.assignments.get(&agent).filter(|old| old.key == assignment.key).cloned();
                    (agent, kept.unwrap_or_else(|| Arc::new(assignment)))
                })
                .collect();
            cluster.placed = placed;
            cluster.assignments = assigned;
            serving
        };
        self.record_served(serving);
        // Events take the lock again (for the application's name): only once it is released.
        self.flush(events);
    }

    /// Agents silent for longer than the timeout are lost from now on; whether any was. Time the control plane
    /// itself did not run (see [`stall`]) does not count as their silence: a server starved of CPU has not heard
    /// heartbeats that were sent.
    fn mark_lost(&self, cluster: &mut Cluster, events: &mut Vec<Event>) -> bool {
        let now = Instant::now();
        let stalled = stall(cluster.looked_at.replace(now), now);
        if !stalled.is_zero() {
            tracing::warn!(stalled_seconds = stalled.as_secs_f64(), "the control plane did not run for a while");
            for agent in cluster.agents.values_mut() {
                agent.last_seen = (agent.last_seen + stalled).min(now);
            }
        }
        let timeout = self.options.agent_timeout;
        let mut any = false;
        for (name, agent) in cluster.agents.iter_mut() {
            if agent.last_seen.elapsed() > timeout && !agent.lost {
                agent.lost = true;
                any = true;
                let message = format!("no heartbeat for {} s", timeout.as_secs_f64());
                events.push((EventKind::AgentLost, Some(name.clone()), message));
            }
        }
        any
    }

    /// The live agents as placement sees them: a machine of the plan holds what its node declares; another, what
    /// its agent measured.
    fn live_agents(&self, cluster: &Cluster) -> Vec<LiveAgent> {
        cluster
            .agents
            .iter()
            .filter(|(_, agent)| !agent.lost)
            .filter_map(|(name, agent)| {
                let tier = agent.join.tier.or_else(|| self.planned_tier(cluster, name))?;
                let planned = cluster.applied.as_ref().and_then(|deployed| deployed.host(name));
                Some(LiveAgent {
                    name: name.clone(),
                    tier,
                    data_address: agent.join.data_address.clone(),
                    labels: self.labels_of(cluster, name, &agent.join.labels),
                    arch: agent.join.resources.arch.clone(),
                    cpu: planned.map_or(agent.join.resources.cpu, |host| host.cpu_capacity),
                    memory_bytes: planned.map_or(agent.join.resources.memory_bytes, |host| host.memory_capacity.0),
                    accelerators: self
                        .node_of(cluster, name)
                        .map(|node| node.machine.accelerators.clone())
                        .unwrap_or_default(),
                    certificate_sha256: agent.certificate_sha256.clone(),
                })
            })
            .collect()
    }

    /// Evaluates the `migrate` policies every few seconds on what the live agents reported; what they move, placement
    /// moves. Whether they moved or added anything.
    fn evaluate_policies(&self, cluster: &mut Cluster, events: &mut Vec<Event>) -> bool {
        let now = Instant::now();
        if cluster.policies_evaluated.is_some_and(|at| now.duration_since(at) < POLICY_INTERVAL) {
            return false;
        }
        let Some(deployed) = &cluster.applied else { return false };
        // An application without policies has nothing to measure: the fleet's metrics are not summed for nothing.
        if deployed.application.policies.is_empty() {
            return false;
        }
        cluster.policies_evaluated = Some(now);
        let (application, version) = (deployed.application.clone(), deployed.version);
        let mut snapshots: BTreeMap<String, MetricsSnapshot> = BTreeMap::new();
        for snapshot in cluster.agents.values().filter(|agent| !agent.lost).flat_map(|agent| &agent.metrics) {
            match snapshots.get_mut(&snapshot.component) {
                Some(total) => total.add(snapshot),
                None => {
                    snapshots.insert(snapshot.component.clone(), snapshot.clone());
                }
            }
        }
        let mut policies = std::mem::take(&mut cluster.policies);
        let host_of = |component: &str| {
            let name = cluster.placed.iter().find(|placed| placed.component == component)?.host.clone()?;
            let agent = cluster.agents.get(&name)?;
            let tier = agent.join.tier.or_else(|| self.planned_tier(cluster, &name))?;
            Some(Host { name, tier, usage: agent.usage })
        };
        let (moved_before, added_before) = (policies.moved().clone(), policies.added().clone());
        let machines = cluster.agents.values().filter(|agent| !agent.lost).count();
        for (component, message) in policies.evaluate(now, &application, &snapshots, &host_of, machines) {
            events.push((EventKind::Policy, Some(component), message));
        }
        // What policies did is durable: a restarted control plane places it the same way.
        let app = &application.name;
        for (component, tier) in policies.moved() {
            if moved_before.get(component) == Some(tier) {
                continue;
            }
            if let Err(error) = self.state.record_migration(app, version, component, tier.name()) {
                events.push((
                    EventKind::Failed,
                    Some(component.clone()),
                    format!("the migration was not recorded: {error}"),
                ));
            }
        }
        for (component, count) in policies.added() {
            if added_before.get(component) == Some(count) {
                continue;
            }
            if let Err(error) = self.state.record_added_instances(app, version, component, *count) {
                let message = format!("the added instance was not recorded: {error}");
                events.push((EventKind::Failed, Some(component.clone()), message));
            }
        }
        let changed = policies.moved() != &moved_before || policies.added() != &added_before;
        cluster.policies = policies;
        changed
    }

    /// Records which model version each service serves now (the views show it), once per change.
    fn record_served(&self, serving: Vec<(String, String, u32, String)>) {
        let app = self.app();
        let store = stratum_ml::ModelStore::new(self.options.state_dir.join("models"));
        for (service, model, version, sha256) in serving {
            let data_sha256 =
                store.load(&model, Some(version)).map(|artifact| artifact.data_sha256).unwrap_or_default();
            let served = ServedModel { service: service.clone(), model: model.clone(), version, sha256, data_sha256 };
            if self.state.record_served_model(&app, &served).is_ok() {
                self.event(EventKind::Serving, Some(&service), &format!("`{model}` v{version}"));
                lock(&self.cluster).served.insert(service, served);
            }
        }
    }

    fn flush(&self, events: Vec<Event>) {
        for (kind, component, message) in events {
            tracing::info!(kind = kind.as_str(), component, message, "control plane");
            self.event(kind, component.as_deref(), &message);
        }
    }

    /// (latest version, sha256 of its file) of each model of the application in the server's model store. A file
    /// that changed since its version was recorded as served (by hand, or by someone who should not have) is
    /// refused, with an event: no agent gets it. The file's digest covers everything in it — the model, and the
    /// score, inputs, profile and leaderboard it was chosen by.
    fn model_files(&self, cluster: &mut Cluster, events: &mut Vec<Event>) -> BTreeMap<String, (u32, String)> {
        let Some(deployed) = &cluster.applied else { return BTreeMap::new() };
        let store = stratum_ml::ModelStore::new(self.options.state_dir.join("models"));
        let mut files = BTreeMap::new();
        let names: Vec<String> = deployed.application.models.iter().map(|model| model.name.clone()).collect();
        for name in names {
            let Some(version) = store.serving(&name).ok().flatten() else { continue };
            let path = self.options.state_dir.join("models").join(&name).join(format!("v{version}.json"));
            let Ok(modified) = std::fs::metadata(&path).and_then(|metadata| metadata.modified()) else { continue };
            let known =
                cluster.model_hashes.get(&path).filter(|(when, _)| *when == modified).map(|(_, hash)| hash.clone());
            let hash = match known {
                Some(hash) => hash,
                None => {
                    let Ok(bytes) = std::fs::read(&path) else { continue };
                    let hash = stratum_ml::data::sha256_hex(&bytes);
                    cluster.model_hashes.insert(path.clone(), (modified, hash.clone()));
                    hash
                }
            };
            let recorded = cluster
                .served
                .values()
                .find(|served| served.model == name && served.version == version)
                .map(|served| served.sha256.clone());
            if let Some(recorded) = recorded
                && recorded != hash
            {
                if cluster.refused_models.insert((path.clone(), modified)) {
                    let message = format!(
                        "`{name}` v{version} refused: {} changed since it was served (sha256 {recorded}, now {hash}); \
                         put the recorded file back, or train a new version",
                        path.display()
                    );
                    events.push((EventKind::Failed, Some(name.clone()), message));
                }
                continue;
            }
            files.insert(name, (version, hash));
        }
        files
    }
}

/// What changed between two placements, as events: an instance added by a policy, a component moved, back where
/// it was planned, or waiting for a machine.
fn placement_events(before: &[Placed], now: &[Placed], lost: &[String]) -> Vec<Event> {
    let mut events = Vec::new();
    let lost: HashSet<&str> = lost.iter().map(String::as_str).collect();
    let before: HashMap<(&str, u32), &Placed> =
        before.iter().map(|placed| ((placed.component.as_str(), placed.instance), placed)).collect();
    for now in now {
        let before = before.get(&(now.component.as_str(), now.instance)).copied();
        if now.added && before.is_none() {
            let message = match &now.host {
                Some(host) => format!("one more instance on {host}, added by a policy"),
                None => "one more instance, but no other live agent can take it".to_string(),
            };
            events.push((EventKind::Placement, Some(now.component.clone()), message));
            continue;
        }
        let moved = before.is_some_and(|before| before.host != now.host)
            || before.is_none() && now.host.as_ref() != Some(&now.planned);
        if !moved {
            continue;
        }
        let was_running = before.is_some_and(|before| before.host.is_some());
        let message = match (&now.host, now.host.as_ref() == Some(&now.planned)) {
            (Some(host), true) if was_running => format!("back on {host}, as planned"),
            (Some(host), true) => format!("running on {host}, as planned"),
            (Some(host), false) if lost.contains(now.planned.as_str()) => {
                format!("moved to {host}: {} is lost", now.planned)
            }
            (Some(host), false) => format!("moved to {host} from {} by a policy", now.planned),
            (None, _) if lost.contains(now.planned.as_str()) => format!(
                "not running: {} is lost and no live agent has the tier, labels, architecture and room it needs",
                now.planned
            ),
            (None, _) => format!("waiting for {} to join", now.planned),
        };
        events.push((EventKind::Placement, Some(now.component.clone()), message));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_gap_far_longer_than_the_loop_s_interval_is_a_stall() {
        let now = Instant::now();
        assert_eq!(stall(None, now), Duration::ZERO, "the first look");
        assert_eq!(stall(Some(now - Duration::from_millis(600)), now), Duration::ZERO, "on time");
        assert_eq!(stall(Some(now - Duration::from_millis(1900)), now), Duration::ZERO, "late, within reason");
        assert_eq!(stall(Some(now - Duration::from_secs(5)), now), Duration::from_millis(4500), "stalled");
    }
}
