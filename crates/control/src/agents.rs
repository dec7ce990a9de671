//! The agents of `stratum up`: one per machine the plan uses — each declared node, and each pool member the plan
//! needs — with that machine's name, tier, labels and capacity, and the components the plan assigns to it. On
//! one machine they run in-process and share one data plane; their status is the metrics of their components
//! (the API's views read them).

use serde::Serialize;
use stratum_core::ir::{Application, Tier};
use stratum_core::plan::Plan;

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
