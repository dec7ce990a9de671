//! The agents of `stratum up`: one per machine the plan uses — each declared node, and each pool member the plan
//! needs — with that machine's name, tier, labels and capacity, and the components the plan assigns to it. On
//! one machine they run in-process and share one data plane; their status is the metrics of their components.

use serde::Serialize;
use stratum_core::ir::{Application, Tier};
use stratum_core::plan::Plan;
use stratum_dataplane::metrics::MetricsSnapshot;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LocalAgent {
    pub name: String,
    pub tier: Tier,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub cpu: f64,
    pub memory_bytes: u64,
    /// (component, kind) assigned here, in plan order; several instances of a component appear once.
    pub components: Vec<(String, String)>,
}

/// One agent per host the plan puts components on.
pub fn agents_of(application: &Application, plan: &Plan) -> Vec<LocalAgent> {
    plan.hosts
        .iter()
        .filter(|host| host.in_use)
        .map(|host| {
            let mut components: Vec<(String, String)> = Vec::new();
            for assignment in plan.assignments.iter().filter(|assignment| assignment.host == host.host) {
                if !components.iter().any(|(name, _)| *name == assignment.component) {
                    components.push((assignment.component.clone(), assignment.kind.name().to_string()));
                }
            }
            let labels = application
                .nodes
                .iter()
                .find(|node| node.name == host.host)
                .map(|node| node.machine.labels.clone())
                .or_else(|| {
                    let pool = host.pool.as_deref()?;
                    application.pools.iter().find(|item| item.name == pool).map(|item| item.machine.labels.clone())
                })
                .unwrap_or_default();
            LocalAgent {
                name: host.host.clone(),
                tier: host.tier,
                pool: host.pool.clone(),
                labels,
                cpu: host.cpu_capacity,
                memory_bytes: host.memory_capacity.0,
                components,
            }
        })
        .collect()
}

/// What an agent reports: its components' metrics (the pipeline's, by component name).
#[derive(Clone, Debug, Serialize)]
pub struct AgentStatus {
    pub name: String,
    pub tier: Tier,
    pub components: Vec<ComponentStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ComponentStatus {
    pub name: String,
    pub kind: String,
    /// Running in the data plane (false for components this version does not run yet, such as tools).
    pub running: bool,
    pub events_in: u64,
    pub events_out: u64,
    pub errors: u64,
    pub dead_letters: u64,
}

impl LocalAgent {
    pub fn status(&self, snapshots: &[MetricsSnapshot]) -> AgentStatus {
        let components = self
            .components
            .iter()
            .map(|(name, kind)| {
                let snapshot = snapshots.iter().find(|snapshot| &snapshot.component == name);
                ComponentStatus {
                    name: name.clone(),
                    kind: kind.clone(),
                    running: snapshot.is_some(),
                    events_in: snapshot.map_or(0, |snapshot| snapshot.events_in),
                    events_out: snapshot.map_or(0, |snapshot| snapshot.events_out),
                    errors: snapshot.map_or(0, |snapshot| snapshot.errors),
                    dead_letters: snapshot.map_or(0, |snapshot| snapshot.dead_letters),
                }
            })
            .collect();
        AgentStatus { name: self.name.clone(), tier: self.tier, components }
    }
}
