//! Stratum's control plane: what runs an application rather than describing it — `stratum up` (everything on one
//! machine, [`up::up`]) and `stratum server` with a `stratum agent` on every machine ([`server::Server`],
//! [`agent::Agent`]). Both are built from the same parts: the durable state store (`state`), placement
//! (`placement`), making models ready (`models`), inference served by autoscaled pools (`serving`), and what a
//! running application shows to the API ([`deployment::Deployment`], which both implement; the HTTP API and the web
//! interface are the `stratum-api` crate).

pub mod agent;
pub mod agents;
pub mod api;
mod autoscale;
pub mod deployment;
pub mod files;
pub mod models;
mod part;
pub mod pki;
pub mod placement;
pub mod protocol;
pub mod qos;
pub mod reconcile;
pub mod server;
pub mod serving;
pub mod state;
pub mod supervisor;
pub mod tools;
pub mod training;
pub mod up;
pub mod usage;

/// Everything that can go wrong while running an application. Where another library's error is the cause, it is
/// kept as the source.
use stratum_core::Cause;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("state store: {0}")]
    State(#[source] Cause),
    #[error("model `{model}`: {source}")]
    Model {
        model: String,
        #[source]
        source: Cause,
    },
    #[error("service `{service}`: {source}")]
    Service {
        service: String,
        #[source]
        source: Cause,
    },
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    DataPlane(#[from] stratum_dataplane::Error),
    #[error("a task failed: {0}")]
    Task(String),
    #[error("agent: {0}")]
    Agent(#[source] Cause),
    #[error("{0}")]
    Refused(String),
    #[error("TLS: {0}")]
    Tls(#[source] Cause),
}
