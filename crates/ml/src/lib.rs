//! Rapid model development: load a dataset, prepare it, search the candidate algorithms with cross-validation in
//! parallel, pick the best by the declared metric, refit it on all the data, and store it as a profiled,
//! content-addressed artifact. Reads the IR's `model` blocks; knows nothing of the language's syntax.

// Numeric kernels index several arrays (rows, weights, gradients) with one loop index; rewriting them as iterator
// chains would hide the arithmetic that matters.
#![allow(clippy::needless_range_loop)]

pub mod algorithms;
pub mod artifact;
pub mod columnar;
pub mod data;
mod evaluate;
pub mod imported;
pub mod matrix;
pub mod metrics;
pub mod notebook;
pub mod onnx;
pub mod prepare;
pub mod search;

pub use artifact::{Artifact, ImportedArtifact, ModelStore, StoredModel};
pub use search::{Leaderboard, Progress, TrainReport, train};

use stratum_core::Cause;

/// Everything that can go wrong while training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: Cause,
    },
    #[error("`{path}` has no column `{column}`; it has: {available}")]
    MissingColumn { path: String, column: String, available: String },
    #[error("`{path}` line {line}, column `{column}`: `{value}` is not {expected}")]
    BadValue { path: String, line: usize, column: String, value: String, expected: String },
    #[error("`{path}` has no rows")]
    Empty { path: String },
    #[error("dataset `{dataset}` has no data to train on: {reason}")]
    NoData { dataset: String, reason: String },
    #[error("the target `{target}` has only one class (`{class}`) in the data; a classifier needs at least two")]
    OneClass { target: String, class: String },
    #[error("feature `{feature}` has missing values; add an imputation step such as `prepare = [impute(median)]`")]
    MissingValues { feature: String },
    #[error("{0}")]
    Invalid(String),
    #[error("notebook for model `{model}`: {source}")]
    Notebook {
        model: String,
        #[source]
        source: Cause,
    },
    #[error("model store: {0}")]
    Store(#[source] Cause),
}
