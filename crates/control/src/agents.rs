//! The machines an application runs on, as the views show them: name, tier, labels, capacity and components.
//! Under `stratum up` there is one in-process agent per machine the plan uses — each declared node, and each pool
//! member the plan needs — sharing one data plane ([`agents_of`]); under `stratum server` each is an agent that
//! joined over the network, with what it measured and when it was last heard of ([`Joined`]).

use serde::Serialize;
use stratum_core::ir::{Application, Tier};
use stratum_core::plan::Plan;

/// A machine that runs part of the application, with what it runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Machine {
    /// Its name.
    pub name: String,
    /// None for an agent that did not say and that no node of the application names (yet).
    pub tier: Option<Tier>,
    /// The pool it is a member of, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Its labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Its cores.
    pub cpu: f64,
    /// Its memory, in bytes.
    pub memory_bytes: u64,
    /// (component, kind) assigned here, in plan order; several instances of a component appear once.
    pub components: Vec<(String, String)>,
    /// How an agent that joined over the network is doing; none for the in-process agents of `up`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joined: Option<Joined>,
}

/// An agent on its own machine, as its join and heartbeats tell.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Joined {
    /// Heard from within the agent timeout.
    pub alive: bool,
    /// Seconds since its last heartbeat.
    pub seconds_since_heartbeat: f64,
    /// Its architecture, as it measured it.
    pub arch: String,
    /// Free space on the disk of its data directory, when it joined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_free_bytes: Option<u64>,
    /// What the agent's process used over its last heartbeat's interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::usage::Usage>,
}

/// One agent per host the plan puts components on.
pub fn agents_of(application: &Application, plan: &Plan) -> Vec<Machine> {
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
            Machine {
                name: host.host.clone(),
                tier: Some(host.tier),
                pool: host.pool.clone(),
                labels,
                cpu: host.cpu_capacity,
                memory_bytes: host.memory_capacity.0,
                components,
                joined: None,
            }
        })
        .collect()
}
