//! The control plane as the API reads it ([`Deployment`]): the applied version, the agents and what each runs,
//! their metrics, service pools and dashboard records from their last heartbeats, and predictions through the
//! gateway ([`super::gateway`]).

use super::{Server, lock};
use crate::agents::{Joined, Machine};
use crate::deployment::{Deployment, FeedRecords, Prediction, RunningVersion};
use crate::placement::Placed;
use crate::protocol::FeedReport;
use crate::serving::ServiceState;
use crate::state::StateStore;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use stratum_dataplane::metrics::MetricsSnapshot;

impl Deployment for Server {
    fn running(&self) -> Option<Arc<RunningVersion>> {
        let cluster = lock(&self.cluster);
        let applied = cluster.applied.as_ref()?;
        let not_running = cluster
            .placed
            .iter()
            .filter(|placed| placed.host.is_none())
            .map(|placed| (placed.component.clone(), format!("waiting: {} has not joined or is lost", placed.planned)))
            .collect();
        Some(Arc::new(RunningVersion {
            app: applied.application.name.clone(),
            version: applied.version,
            application: applied.application.clone(),
            plan: applied.plan.clone(),
            started: applied.since,
            broker_url: None,
            not_running,
        }))
    }

    /// The agents that joined, each with the components it was assigned and how it is doing.
    fn machines(&self) -> Vec<Machine> {
        let cluster = lock(&self.cluster);
        // Looked up by name, once per component: the API samples this every second, under the cluster's lock, for
        // fleets of thousands.
        let kinds: HashMap<&str, &'static str> = cluster
            .applied
            .iter()
            .flat_map(|applied| applied.plan.assignments.iter())
            .map(|assignment| (assignment.component.as_str(), assignment.kind.name()))
            .collect();
        let kind_of = |component: &str| kinds.get(component).copied().unwrap_or("component").to_string();
        cluster
            .agents
            .iter()
            .map(|(name, agent)| {
                let planned = cluster.applied.as_ref().and_then(|applied| applied.host(name));
                let components = cluster
                    .assignments
                    .get(name)
                    .map(|assignment| {
                        assignment.components.iter().map(|component| (component.clone(), kind_of(component))).collect()
                    })
                    .unwrap_or_default();
                Machine {
                    name: name.clone(),
                    tier: agent.join.tier.or(planned.map(|host| host.tier)),
                    pool: planned.and_then(|host| host.pool.clone()),
                    labels: agent.join.labels.clone(),
                    cpu: agent.join.resources.cpu,
                    memory_bytes: agent.join.resources.memory_bytes,
                    components,
                    joined: Some(Joined {
                        alive: !agent.lost,
                        seconds_since_heartbeat: agent.last_seen.elapsed().as_secs_f64(),
                        arch: agent.join.resources.arch.clone(),
                        disk_free_bytes: agent.join.resources.disk_free_bytes,
                        // What a lost agent used is not what it uses now.
                        usage: agent.usage.filter(|_| !agent.lost),
                    }),
                }
            })
            .collect()
    }

    fn placement(&self) -> Vec<Placed> {
        lock(&self.cluster).placed.clone()
    }

    /// The metrics the live agents reported last (a lost agent's are not current).
    fn metrics(&self) -> Vec<MetricsSnapshot> {
        let cluster = lock(&self.cluster);
        cluster.agents.values().filter(|agent| !agent.lost).flat_map(|agent| agent.metrics.iter().cloned()).collect()
    }

    fn services(&self) -> Vec<ServiceState> {
        let cluster = lock(&self.cluster);
        let mut services: BTreeMap<String, ServiceState> = BTreeMap::new();
        for state in cluster.agents.values().filter(|agent| !agent.lost).flat_map(|agent| &agent.services) {
            services
                .entry(state.name.clone())
                .or_insert_with(|| ServiceState { name: state.name.clone(), ..ServiceState::default() })
                .add(state);
        }
        services.into_values().collect()
    }

    /// The records every live agent reported for `source`, oldest first.
    fn feed(&self, source: &str) -> Option<FeedRecords> {
        let cluster = lock(&self.cluster);
        let mut reports = cluster
            .agents
            .values()
            .filter(|agent| !agent.lost)
            .flat_map(|agent| agent.feeds.iter().filter(|report| report.source == source))
            .peekable();
        let fields = reports.peek()?.fields.clone();
        let records = reports.flat_map(FeedReport::records).collect();
        Some(FeedRecords { fields, records })
    }

    fn state(&self) -> &StateStore {
        &self.state
    }

    /// Predictions go through the control plane's gateway.
    fn predict(&self, service: String, body: Vec<u8>) -> Prediction<'_> {
        Box::pin(self.forward_prediction(service, body))
    }

    fn prometheus(&self) -> String {
        let cluster = lock(&self.cluster);
        let label = |name: &str| format!("agent=\"{name}\",");
        let snapshots: Vec<(String, MetricsSnapshot)> = cluster
            .agents
            .iter()
            .flat_map(|(name, agent)| agent.metrics.iter().map(move |snapshot| (label(name), snapshot.clone())))
            .collect();
        let mut text = stratum_dataplane::metrics::render_prometheus(&snapshots);
        let services: Vec<(String, ServiceState)> = cluster
            .agents
            .iter()
            .flat_map(|(name, agent)| agent.services.iter().map(move |state| (label(name), state.clone())))
            .collect();
        text.push_str(&crate::serving::render_prometheus(&services));
        let alive = cluster.agents.values().filter(|agent| !agent.lost).count();
        text.push_str(
            "# HELP stratum_agents Agents known to the control plane, by state.\n# TYPE stratum_agents gauge\n",
        );
        text.push_str(&format!("stratum_agents{{state=\"alive\"}} {alive}\n"));
        text.push_str(&format!("stratum_agents{{state=\"lost\"}} {}\n", cluster.agents.len() - alive));
        text
    }
}
