//! Stratum's control plane: what runs an application rather than describing it. Today that is `stratum up` —
//! everything on one machine — built from parts the multi-machine control plane reuses: the durable state store
//! (`state`), the agents the plan places components on (`agents`), making models ready to serve (`models`),
//! inference over HTTP (`serving`) and the API (`api`).
//!
//! Start at [`up::up`]: it takes a checked application and its plan and returns a [`up::Running`] application.

pub mod agent;
pub mod agents;
pub mod api;
pub mod autoscale;
pub mod models;
pub mod placement;
pub mod protocol;
pub mod qos;
pub mod server;
pub mod serving;
pub mod state;
pub mod tools;
pub mod training;
pub mod up;

/// Everything that can go wrong while running an application.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("state store: {0}")]
    State(String),
    #[error("model `{model}`: {message}")]
    Model { model: String, message: String },
    #[error("service `{service}`: {message}")]
    Service { service: String, message: String },
    #[error("cannot listen on {address}: {message}")]
    Listen { address: String, message: String },
    #[error(transparent)]
    DataPlane(#[from] stratum_dataplane::Error),
    #[error("a task failed: {0}")]
    Task(String),
    #[error("agent: {0}")]
    Agent(String),
    #[error("{0}")]
    Refused(String),
}
