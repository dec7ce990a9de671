//! The Plan: where every component instance of an application runs, with the resources it was given and why.
//! Versioned and serializable; the only contract between the planner, the control plane and the agents.

use crate::ir::Tier;
use crate::units::{Bandwidth, ByteSize, Duration};
use serde::{Deserialize, Serialize};

/// Bumped whenever the shape of the Plan changes in a way a consumer could notice.
pub const PLAN_VERSION: u32 = 1;

/// Reads `plan_version` and refuses any but [`PLAN_VERSION`].
fn plan_version<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    crate::version::expect(deserializer, "Plan", PLAN_VERSION)
}

/// Where every component instance of an application runs, what each machine and link carries, and how that
/// scores: what the planner makes and the control plane follows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Checked on every read, like the IR's version.
    #[serde(deserialize_with = "plan_version")]
    pub plan_version: u32,
    /// The application's name.
    pub app: String,
    /// One entry per component instance, sorted by component then instance.
    pub assignments: Vec<Assignment>,
    /// Every machine the plan uses or could use, with what is allocated on it.
    pub hosts: Vec<HostUsage>,
    /// Traffic the plan puts on each declared (or assumed) link.
    pub links: Vec<LinkUsage>,
    /// How the plan scores against the application's objective.
    pub objective: Objective,
}

/// What kind of component an assignment runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentKind {
    /// A `source`.
    Source,
    /// A `stream`.
    Stream,
    /// A `sink`.
    Sink,
    /// A `batch`.
    Batch,
    /// A model's training.
    Training,
    /// An inference `service`.
    Service,
    /// A `tool`.
    Tool,
}

impl ComponentKind {
    /// Its name, as the language spells the item.
    pub fn name(self) -> &'static str {
        match self {
            ComponentKind::Source => "source",
            ComponentKind::Stream => "stream",
            ComponentKind::Sink => "sink",
            ComponentKind::Batch => "batch",
            ComponentKind::Training => "training",
            ComponentKind::Service => "service",
            ComponentKind::Tool => "tool",
        }
    }
}

/// Resources reserved for one component instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Requests {
    /// Cores.
    pub cpu: f64,
    /// Memory.
    pub memory: ByteSize,
    /// Disk.
    #[serde(default)]
    pub disk: ByteSize,
    /// Accelerators.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accelerators: Vec<crate::ir::Accelerator>,
}

/// One component instance on one host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The component.
    pub component: String,
    /// Its kind.
    pub kind: ComponentKind,
    /// 0-based; per-node sources and service replicas have several instances.
    pub instance: u32,
    /// The machine it runs on.
    pub host: String,
    /// That machine's tier.
    pub tier: Tier,
    /// What it reserves there.
    pub requests: Requests,
    /// Why this host: the constraints that applied and what the choice optimised.
    pub reason: String,
}

/// Allocation on one host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostUsage {
    /// The machine.
    pub host: String,
    /// Its tier.
    pub tier: Tier,
    /// The pool this host is a member of, if it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Whether the plan needs this host running (pool members above the pool's minimum may stay off).
    pub in_use: bool,
    /// Cores its components reserve.
    pub cpu_used: f64,
    /// Its cores.
    pub cpu_capacity: f64,
    /// Memory its components reserve.
    pub memory_used: ByteSize,
    /// Its memory.
    pub memory_capacity: ByteSize,
    /// Its disk, when the file says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_capacity: Option<ByteSize>,
    /// Disk its components reserve.
    pub disk_used: ByteSize,
}

/// Traffic on one link between tiers or hosts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkUsage {
    /// One end (a tier or a host).
    pub from: String,
    /// The other end.
    pub to: String,
    /// Its latency.
    pub latency: Duration,
    /// None when the link's bandwidth is not limited (a link the file did not declare).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Bandwidth>,
    /// The traffic the plan puts on it.
    pub used: Bandwidth,
    /// The link was not declared in the file; the planner assumed it.
    #[serde(default)]
    pub assumed: bool,
}

/// How good the plan is, lowest first: latency on data paths, then traffic across tiers, then money.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// The sum over data paths of their network latency, in milliseconds.
    pub path_latency_ms: f64,
    /// Bits per second crossing between tiers.
    pub cross_tier_traffic: Bandwidth,
    /// Money per hour for the pool members the plan needs.
    pub hourly_cost: f64,
    /// The single number the planner minimises (see docs/planner.md).
    pub score: f64,
}
