//! What changes between two plans: the components to start, stop and move. Later stages restart only these.

use serde::Serialize;
use std::collections::BTreeMap;
use stratum_core::plan::Plan;

/// One component instance, as `name#instance`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The component.
    pub component: String,
    /// Which of its instances (0-based).
    pub instance: u32,
    /// The host it ran on, for a removed or moved instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The host it runs on now, for an added or moved instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// What changes between two plans: instances added, removed and moved, and how many stay where they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PlanDiff {
    /// Instances only the new plan has.
    pub added: Vec<Change>,
    /// Instances only the old plan has.
    pub removed: Vec<Change>,
    /// Instances on another host in the new plan.
    pub moved: Vec<Change>,
    /// How many instances stay on their host.
    pub unchanged: usize,
}

impl PlanDiff {
    /// Whether nothing is added, removed or moved.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.moved.is_empty()
    }
}

/// Compares an old plan with a new one, instance by instance.
pub fn diff(old: &Plan, new: &Plan) -> PlanDiff {
    let index = |plan: &Plan| -> BTreeMap<(String, u32), String> {
        plan.assignments
            .iter()
            .map(|assignment| ((assignment.component.clone(), assignment.instance), assignment.host.clone()))
            .collect()
    };
    let (before, after) = (index(old), index(new));
    let mut result = PlanDiff::default();
    for ((component, instance), host) in &after {
        match before.get(&(component.clone(), *instance)) {
            None => result.added.push(Change {
                component: component.clone(),
                instance: *instance,
                from: None,
                to: Some(host.clone()),
            }),
            Some(previous) if previous != host => result.moved.push(Change {
                component: component.clone(),
                instance: *instance,
                from: Some(previous.clone()),
                to: Some(host.clone()),
            }),
            Some(_) => result.unchanged += 1,
        }
    }
    for ((component, instance), host) in &before {
        if !after.contains_key(&(component.clone(), *instance)) {
            result.removed.push(Change {
                component: component.clone(),
                instance: *instance,
                from: Some(host.clone()),
                to: None,
            });
        }
    }
    result
}
