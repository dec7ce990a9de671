//! Stratum's control plane: what runs an application rather than describing it — `stratum up` (everything on one
//! machine, [`up::up`]) and `stratum server` with a `stratum agent` on every machine ([`server::Server`],
//! [`agent::Agent`]). Both are built from the same parts: the durable state store (`state`), placement
//! (`placement`), making models ready (`models`), inference served by autoscaled pools (`serving`), and what a
//! running application shows to the API ([`deployment::Deployment`], which both implement; the HTTP API and the web
//! interface are the `stratum-api` crate).

#![warn(missing_docs)]

pub mod agent;
pub mod agents;
pub mod api;
pub mod backup;
pub mod deployment;
pub mod files;
pub mod lead;
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

/// Everything that can go wrong while running applications.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The state store failed.
    #[error("state store: {0}")]
    State(#[source] Cause),
    /// A model could not be made ready.
    #[error("model `{model}`: {source}")]
    Model {
        /// The model.
        model: String,
        /// Why.
        #[source]
        source: Cause,
    },
    /// A service could not start.
    #[error("service `{service}`: {source}")]
    Service {
        /// The service.
        service: String,
        /// Why.
        #[source]
        source: Cause,
    },
    /// An address could not be listened on.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The data plane failed.
    #[error(transparent)]
    DataPlane(#[from] stratum_dataplane::Error),
    /// A background task failed (it panicked or was cancelled).
    #[error("a task failed: {0}")]
    Task(String),
    /// An agent failed to talk with its control plane or to run its part.
    #[error("agent: {0}")]
    Agent(#[source] Cause),
    /// The control plane refused the agent (a held name, a wrong token); the message says what to do.
    #[error("{0}")]
    Refused(String),
    /// TLS could not be set up.
    #[error("TLS: {0}")]
    Tls(#[source] Cause),
    /// The control plane gave no answer yet (it is not up, or not reachable): worth trying again.
    #[error("no answer from {url} yet: {source}")]
    Unreachable {
        /// What was asked.
        url: String,
        /// Why there is no answer.
        #[source]
        source: Cause,
    },
    /// A backup could not be made or restored: which file, and why.
    #[error("backup: {}: {source}", path.display())]
    Backup {
        /// The file or folder.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: Cause,
    },
    /// This control plane no longer leads the replicas sharing its state store (another took the lead): it
    /// writes nothing more.
    #[error("this control plane does not lead: {0}")]
    NotLeading(String),
    /// A join string is not one: what is wrong with it.
    #[error("{0}")]
    JoinString(&'static str),
}
