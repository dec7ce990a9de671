//! Stratum's data plane: the sources, stream operators and sinks of an application, built from its IR and run as
//! async tasks joined by bounded channels, plus the durable store-and-forward log that carries data between nodes.
//!
//! Start at [`pipeline::Pipeline`]: it builds every component of an application (or of the part upstream of some
//! sinks) from the IR through the registry in [`registry`], wires them and runs them until their sources end or
//! the pipeline is stopped.

pub mod ack;
pub mod checkpoint;
pub mod component;
pub mod connectors;
pub mod ingest;
pub mod lease;
pub mod log;
pub mod metrics;
pub mod pipeline;
pub mod record;
pub mod registry;
pub mod remote;
pub mod sinks;
mod sources;
pub mod stream;
pub mod tls;
pub mod transfer;

pub use pipeline::{Pipeline, PipelineOptions, RunSummary};
pub use record::{Batch, Record};

use std::path::PathBuf;
use stratum_core::Cause;

/// Everything that can go wrong while building or running a pipeline. Where another library's error is the cause,
/// it is kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A component cannot be built from its IR item as it stands.
    #[error("`{component}`: {message}")]
    Build { component: String, message: String },
    /// A component cannot reach what it needs to start (a broker, a server).
    #[error("`{component}`: {what}: {source}")]
    Connect {
        component: String,
        what: String,
        #[source]
        source: Cause,
    },
    #[error("`{component}`: {what} is not available yet in this version of Stratum")]
    Unsupported { component: String, what: String },
    #[error("`{component}`: cannot read {path}: {source}")]
    Read {
        component: String,
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error("`{component}`: cannot write {path}: {source}")]
    Write {
        component: String,
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error("`{component}`: cannot deliver to {target}: {source}")]
    Deliver {
        component: String,
        target: String,
        #[source]
        source: Cause,
    },
    #[error("buffer {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error("checkpoint {path}: {source}")]
    Checkpoint {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("transfer: {0}")]
    Transfer(#[source] Cause),
    #[error("TLS: {context}: {source}")]
    Tls {
        context: String,
        #[source]
        source: Cause,
    },
    #[error("MQTT broker: {0}")]
    Broker(#[source] Cause),
    /// A service or stream has no model to predict with.
    #[error("`{component}`: {source}")]
    Model {
        component: String,
        #[source]
        source: Box<stream::predict::NoPredictor>,
    },
    #[error("the pipeline has ended: start it again to run a new version")]
    Ended,
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
