//! The kinds of events a running application records — what the state store keeps, the API lists, the web
//! interface filters on and `stratum logs` prints — as one enum with one string form each, so that a kind is
//! written and matched by the compiler's rules, not by spelling.

crate::vocabulary! {
    /// What happened. The string form (`as_str`, and serde's) is kebab-case: `agent-lost`.
    pub enum EventKind {
        /// A version is starting (under `stratum up`): its models are made ready first.
        Starting = "starting",
        /// A version started running (under `stratum up`).
        Started = "started",
        /// A version was applied to the control plane.
        Applied = "applied",
        /// A new version rolled into the running one; the message says what restarted.
        RolledOut = "rolled-out",
        /// The data plane started again after a failure.
        Restarted = "restarted",
        /// The application stopped.
        Stopped = "stopped",
        /// Something failed: a data plane, a rollout, a policy's decision that could not be recorded.
        Failed = "failed",
        /// A served model was made ready: reused, trained or bootstrapped.
        Model = "model",
        /// A model's search on the agents started or ended.
        Training = "training",
        /// A service serves a model version.
        Serving = "serving",
        /// A service's pool changed its number of replicas.
        Scaled = "scaled",
        /// A policy acted (or its condition cleared).
        Policy = "policy",
        /// A component moved, or cannot run anywhere.
        Placement = "placement",
        /// A stream took up the open windows of its checkpoint.
        Resumed = "resumed",
        /// Records reached a stream after their windows had closed; they are in the dead letters.
        LateRecords = "late-records",
        /// A lost agent's checkpoint went to the agent that takes over its stream.
        HandedOver = "handed-over",
        /// A batch ran.
        Batch = "batch",
        /// A batch failed.
        BatchFailed = "batch-failed",
        /// A tool started, became healthy or stopped.
        Tool = "tool",
        /// A tool exited (and restarts after a backoff), or could not start.
        ToolExited = "tool-exited",
        /// A tool cannot run on this machine at all (an image without a container runtime, an empty command).
        ToolNotStarted = "tool-not-started",
        /// The control plane started.
        ServerStarted = "server-started",
        /// An agent joined the control plane.
        AgentJoined = "agent-joined",
        /// An agent stopped heartbeating for longer than the agent timeout.
        AgentLost = "agent-lost",
        /// A lost agent heartbeats again.
        AgentBack = "agent-back",
        /// An agent could not run (part of) what it was assigned.
        AgentProblem = "agent-problem",
    }
}

#[cfg(test)]
mod tests {
    use super::EventKind;

    #[test]
    fn every_kind_has_one_string_form() {
        let mut seen = std::collections::BTreeSet::new();
        for kind in EventKind::ALL {
            assert!(seen.insert(kind.as_str()), "{} twice", kind.as_str());
            assert_eq!(EventKind::parse(kind.as_str()), Some(*kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::json!(kind.as_str()));
        }
        assert_eq!(EventKind::parse("agent_lost"), None);
    }
}
