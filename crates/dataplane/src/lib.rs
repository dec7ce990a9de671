//! Stratum's data plane: the sources, stream operators and sinks of an application, built from its IR and run as
//! async tasks joined by bounded channels, plus the durable store-and-forward log that carries data between nodes.
//!
//! Start at [`pipeline::Pipeline`]: it builds every component of an application (or of the part upstream of some
//! sinks) from the IR through the registry in [`registry`], wires them and runs them until their sources end or
//! the pipeline is stopped.

pub mod checkpoint;
pub mod columnar;
pub mod component;
pub mod connectors;
pub mod log;
pub mod metrics;
pub mod pipeline;
pub mod record;
pub mod registry;
pub mod remote;
pub mod sinks;
pub mod sources;
pub mod stream;
pub mod transfer;

pub use pipeline::{Pipeline, PipelineOptions, RunSummary};
pub use record::{Batch, Record};

use std::path::PathBuf;

/// Everything that can go wrong while building or running a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{component}`: {message}")]
    Build { component: String, message: String },
    #[error("`{component}`: {what} is not available yet in this version of Stratum")]
    Unsupported { component: String, what: String },
    #[error("`{component}`: cannot read {path}: {message}")]
    Read { component: String, path: PathBuf, message: String },
    #[error("`{component}`: cannot write {path}: {message}")]
    Write { component: String, path: PathBuf, message: String },
    #[error("`{component}`: cannot deliver to {target}: {message}")]
    Deliver { component: String, target: String, message: String },
    #[error("buffer {path}: {message}")]
    Log { path: PathBuf, message: String },
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("transfer: {0}")]
    Transfer(String),
    #[error("MQTT broker: {0}")]
    Broker(String),
    #[error("the pipeline has ended: start it again to run a new version")]
    Ended,
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
