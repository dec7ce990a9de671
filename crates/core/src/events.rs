//! The kinds of events a running application records — what the state store keeps, the API lists, the web
//! interface filters on and `stratum logs` prints — as one enum with one string form each, so that a kind is
//! written and matched by the compiler's rules, not by spelling.

use serde::{Deserialize, Serialize};

/// What happened. The string form (`as_str`, and serde's) is kebab-case: `agent-lost`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A version is starting (under `stratum up`): its models are made ready first.
    Starting,
    /// A version started running (under `stratum up`).
    Started,
    /// A version was applied to the control plane.
    Applied,
    /// A new version rolled into the running one; the message says what restarted.
    RolledOut,
    /// The data plane started again after a failure.
    Restarted,
    /// The application stopped.
    Stopped,
    /// Something failed: a data plane, a rollout, a policy's decision that could not be recorded.
    Failed,
    /// A served model was made ready: reused, trained or bootstrapped.
    Model,
    /// A model's search on the agents started or ended.
    Training,
    /// A service serves a model version.
    Serving,
    /// A service's pool changed its number of replicas.
    Scaled,
    /// A policy acted (or its condition cleared).
    Policy,
    /// A component moved, or cannot run anywhere.
    Placement,
    /// A stream took up the open windows of its checkpoint.
    Resumed,
    /// A lost agent's checkpoint went to the agent that takes over its stream.
    HandedOver,
    /// A batch ran.
    Batch,
    /// A batch failed.
    BatchFailed,
    /// A tool started, became healthy or stopped.
    Tool,
    /// A tool exited (and restarts after a backoff), or could not start.
    ToolExited,
    /// A tool cannot run on this machine at all (an image without a container runtime, an empty command).
    ToolNotStarted,
    /// The control plane started.
    ServerStarted,
    /// An agent joined the control plane.
    AgentJoined,
    /// An agent stopped heartbeating for longer than the agent timeout.
    AgentLost,
    /// A lost agent heartbeats again.
    AgentBack,
    /// An agent could not run (part of) what it was assigned.
    AgentProblem,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: &'static [EventKind] = &[
        EventKind::Starting,
        EventKind::Started,
        EventKind::Applied,
        EventKind::RolledOut,
        EventKind::Restarted,
        EventKind::Stopped,
        EventKind::Failed,
        EventKind::Model,
        EventKind::Training,
        EventKind::Serving,
        EventKind::Scaled,
        EventKind::Policy,
        EventKind::Placement,
        EventKind::Resumed,
        EventKind::HandedOver,
        EventKind::Batch,
        EventKind::BatchFailed,
        EventKind::Tool,
        EventKind::ToolExited,
        EventKind::ToolNotStarted,
        EventKind::ServerStarted,
        EventKind::AgentJoined,
        EventKind::AgentLost,
        EventKind::AgentBack,
        EventKind::AgentProblem,
    ];

    /// The kind's one string form.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Starting => "starting",
            EventKind::Started => "started",
            EventKind::Applied => "applied",
            EventKind::RolledOut => "rolled-out",
            EventKind::Restarted => "restarted",
            EventKind::Stopped => "stopped",
            EventKind::Failed => "failed",
            EventKind::Model => "model",
            EventKind::Training => "training",
            EventKind::Serving => "serving",
            EventKind::Scaled => "scaled",
            EventKind::Policy => "policy",
            EventKind::Placement => "placement",
            EventKind::Resumed => "resumed",
            EventKind::HandedOver => "handed-over",
            EventKind::Batch => "batch",
            EventKind::BatchFailed => "batch-failed",
            EventKind::Tool => "tool",
            EventKind::ToolExited => "tool-exited",
            EventKind::ToolNotStarted => "tool-not-started",
            EventKind::ServerStarted => "server-started",
            EventKind::AgentJoined => "agent-joined",
            EventKind::AgentLost => "agent-lost",
            EventKind::AgentBack => "agent-back",
            EventKind::AgentProblem => "agent-problem",
        }
    }

    /// The kind a string names, if any.
    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.iter().copied().find(|kind| kind.as_str() == text)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::EventKind;

    #[test]
    fn every_kind_has_one_string_form_that_serde_agrees_with() {
        // `as_str` matches without a wildcard, so a new kind must be given its string; this proves `ALL` lists
        // it too (the strings are distinct and each parses back) and that serde writes the same string.
        let mut seen = std::collections::BTreeSet::new();
        for kind in EventKind::ALL {
            assert!(seen.insert(kind.as_str()), "{} twice", kind.as_str());
            assert_eq!(EventKind::parse(kind.as_str()), Some(*kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::json!(kind.as_str()));
        }
        assert_eq!(EventKind::parse("agent_lost"), None);
        // Every arm of `as_str` (one per variant: the match has no wildcard) has its kind in `ALL`.
        let arms = include_str!("events.rs")
            .lines()
            .filter(|line| line.trim_start().starts_with("EventKind::") && line.contains(" => \""))
            .count();
        assert_eq!(arms, EventKind::ALL.len(), "a kind is missing from EventKind::ALL");
    }
}
