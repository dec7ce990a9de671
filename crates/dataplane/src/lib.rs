//! Stratum's data plane: the sources, stream operators and sinks of an application, built from its IR and run as
//! async tasks joined by bounded channels, plus the durable store-and-forward log that carries data between nodes.
//!
//! Start at [`pipeline::Pipeline`]: it builds every component of an application (or of the part upstream of some
//! sinks) from the IR through the registry in [`registry`], wires them and runs them until their sources end or
//! the pipeline is stopped.

#![warn(missing_docs)]

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
    Build {
        /// The component.
        component: String,
        /// What is wrong, and how to fix it.
        message: String,
    },
    /// A component cannot reach what it needs to start (a broker, a server).
    #[error("`{component}`: {what}: {source}")]
    Connect {
        /// The component.
        component: String,
        /// What it tried to reach.
        what: String,
        /// Why it could not.
        #[source]
        source: Cause,
    },
    /// A component asks for something this version of Stratum does not do.
    #[error("`{component}`: {what} is not available yet in this version of Stratum")]
    Unsupported {
        /// The component.
        component: String,
        /// What it asks for.
        what: String,
    },
    /// A component cannot read a file.
    #[error("`{component}`: cannot read {path}: {source}")]
    Read {
        /// The component.
        component: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Cause,
    },
    /// A component cannot write a file.
    #[error("`{component}`: cannot write {path}: {source}")]
    Write {
        /// The component.
        component: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Cause,
    },
    /// A sink cannot deliver to its target (a broker, a webhook).
    #[error("`{component}`: cannot deliver to {target}: {source}")]
    Deliver {
        /// The sink.
        component: String,
        /// Where it delivers.
        target: String,
        /// Why it could not.
        #[source]
        source: Cause,
    },
    /// A store-and-forward log failed.
    #[error("buffer {path}: {source}")]
    Log {
        /// The log's folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: Cause,
    },
    /// A stream's checkpoint could not be read or written.
    #[error("checkpoint {path}: {source}")]
    Checkpoint {
        /// The checkpoint's file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Cause,
    },
    /// Input or output failed outside any one component.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A data path between machines failed.
    #[error("transfer: {0}")]
    Transfer(#[source] Cause),
    /// TLS could not be set up.
    #[error("TLS: {context}: {source}")]
    Tls {
        /// What was being set up.
        context: String,
        /// Why it failed.
        #[source]
        source: Cause,
    },
    /// The embedded MQTT broker failed.
    #[error("MQTT broker: {0}")]
    Broker(#[source] Cause),
    /// A service or stream has no model to predict with.
    #[error("`{component}`: {source}")]
    Model {
        /// The service or stream.
        component: String,
        /// Why it has no model.
        #[source]
        source: Box<stream::predict::NoPredictor>,
    },
    /// The pipeline has ended; a new version needs a new one.
    #[error("the pipeline has ended: start it again to run a new version")]
    Ended,
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
