//! The one answer to "may this machine run this component?" — its tier, the tier its private data must stay on,
//! its node, its pool, its labels, its architecture and its accelerators — used by the planner when it places
//! and by the control plane whenever it places again (a lost machine, a policy's move, an added instance). Room
//! (cores, memory, disk) is each caller's own: the planner counts what the plan reserves, the control plane what
//! runs now.

use crate::ir::{Accelerator, Arch, Placement, Tier};
use std::collections::BTreeMap;

/// What a machine offers that placement rules look at.
#[derive(Clone, Copy, Debug)]
pub struct MachineFacts<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its tier.
    pub tier: Tier,
    /// The pool it is a member of, if any.
    pub pool: Option<&'a str>,
    /// Its labels.
    pub labels: &'a BTreeMap<String, String>,
    /// Its architecture, when known (an agent that reports one Stratum does not know has none).
    pub arch: Option<Arch>,
    /// Its accelerators.
    pub accelerators: &'a [Accelerator],
}

/// Whether the component's stated tier (`on = fog`) binds. The plan keeps it; when its machine is lost or a
/// policy moves it, the control plane may take it to the nearest tier instead. Private data binds always.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TierRule {
    /// The stated tier binds (planning).
    Stated,
    /// The component may move to the nearest tier (its machine was lost, or a policy moves it).
    MayMove,
}

/// Why a machine can never take a component. Cheap to produce: the words are made only when shown.
#[derive(Clone, Debug, PartialEq)]
pub enum Rejection<'a> {
    /// The component states another tier.
    Tier {
        /// The machine's tier.
        has: Tier,
        /// The tier stated.
        wanted: Tier,
    },
    /// The component handles private data that may not leave its tier.
    PrivateData {
        /// The machine's tier.
        has: Tier,
        /// The private data's tier.
        wanted: Tier,
    },
    /// The component is pinned to another node (named).
    NotNode(&'a str),
    /// The component runs in a pool (named) the machine is not a member of.
    NotInPool(&'a str),
    /// The machine lacks a label the component asks for.
    Label {
        /// The label's key.
        key: &'a str,
        /// The value asked for.
        value: &'a str,
    },
    /// The machine has another architecture (or an unknown one).
    Arch {
        /// The machine's, if known.
        has: Option<Arch>,
        /// The one asked for.
        wanted: Arch,
    },
    /// The machine has too few accelerators of a kind.
    Accelerators {
        /// The kind.
        kind: &'a str,
        /// How many it has.
        has: u32,
        /// How many the component asks for.
        wanted: u32,
    },
}

impl std::fmt::Display for Rejection<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let arch = |arch: &Arch| format!("{arch:?}").to_lowercase();
        match self {
            Rejection::Tier { has, wanted } => write!(formatter, "is on {}, not {}", has.name(), wanted.name()),
            Rejection::PrivateData { has, wanted } => write!(
                formatter,
                "is on {}, but the component reads private fields that must stay on {}",
                has.name(),
                wanted.name()
            ),
            Rejection::NotNode(node) => write!(formatter, "is not `{node}`"),
            Rejection::NotInPool(pool) => write!(formatter, "is not in pool `{pool}`"),
            Rejection::Label { key, value } => write!(formatter, "lacks the label {key}: \"{value}\""),
            Rejection::Arch { has: Some(has), wanted } => write!(formatter, "is {}, not {}", arch(has), arch(wanted)),
            Rejection::Arch { has: None, wanted } => {
                write!(formatter, "is of an unknown architecture, not {}", arch(wanted))
            }
            Rejection::Accelerators { kind, has, wanted } => {
                write!(formatter, "has {has} x \"{kind}\", needs {wanted}")
            }
        }
    }
}

/// Why `machine` can never run a component placed as `placement` that needs `accelerators` (None: it may).
pub fn rule_out<'a>(
    machine: &MachineFacts,
    placement: &'a Placement,
    accelerators: &'a [Accelerator],
    tier_rule: TierRule,
) -> Option<Rejection<'a>> {
    if tier_rule == TierRule::Stated
        && let Some(wanted) = placement.tier
        && machine.tier != wanted
    {
        return Some(Rejection::Tier { has: machine.tier, wanted });
    }
    if let Some(wanted) = placement.private_data_tier
        && machine.tier != wanted
    {
        return Some(Rejection::PrivateData { has: machine.tier, wanted });
    }
    if let Some(node) = &placement.node
        && machine.name != node
    {
        return Some(Rejection::NotNode(node));
    }
    if let Some(pool) = &placement.pool
        && machine.pool != Some(pool.as_str())
    {
        return Some(Rejection::NotInPool(pool));
    }
    for (key, value) in &placement.labels {
        if machine.labels.get(key) != Some(value) {
            return Some(Rejection::Label { key, value });
        }
    }
    if let Some(wanted) = placement.arch
        && machine.arch != Some(wanted)
    {
        return Some(Rejection::Arch { has: machine.arch, wanted });
    }
    for wanted in accelerators {
        let has: u32 = machine
            .accelerators
            .iter()
            .filter(|accelerator| accelerator.kind == wanted.kind)
            .map(|accelerator| accelerator.count)
            .sum();
        if has < wanted.count {
            return Some(Rejection::Accelerators { kind: &wanted.kind, has, wanted: wanted.count });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_data_binds_even_where_the_stated_tier_may_move() {
        let labels = BTreeMap::new();
        let cloud = MachineFacts {
            name: "cloud1",
            tier: Tier::Cloud,
            pool: None,
            labels: &labels,
            arch: None,
            accelerators: &[],
        };
        let placement =
            Placement { tier: Some(Tier::Edge), private_data_tier: Some(Tier::Edge), ..Placement::default() };
        assert_eq!(
            rule_out(&cloud, &placement, &[], TierRule::Stated),
            Some(Rejection::Tier { has: Tier::Cloud, wanted: Tier::Edge })
        );
        let moving = rule_out(&cloud, &placement, &[], TierRule::MayMove).expect("refused");
        assert_eq!(moving.to_string(), "is on cloud, but the component reads private fields that must stay on edge");
        let free = Placement { tier: Some(Tier::Edge), ..Placement::default() };
        assert_eq!(rule_out(&cloud, &free, &[], TierRule::MayMove), None);
        let pinned = Placement { node: Some("fog1".into()), ..Placement::default() };
        assert_eq!(rule_out(&cloud, &pinned, &[], TierRule::MayMove), Some(Rejection::NotNode("fog1")));
    }
}
