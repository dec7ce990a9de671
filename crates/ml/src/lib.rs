//! Rapid model development: load a dataset, prepare it, search the candidate algorithms with cross-validation in
//! parallel, pick the best by the declared metric, refit it on all the data, and store it as a profiled,
//! content-addressed artifact. Reads the IR's `model` blocks; knows nothing of the language's syntax.

#![warn(missing_docs)]
// Numeric kernels index several arrays (rows, weights, gradients) with one loop index; rewriting them as iterator
// chains would hide the arithmetic that matters.
#![allow(clippy::needless_range_loop)]

pub mod algorithms;
pub mod artifact;
pub mod columnar;
pub mod data;
mod evaluate;
pub mod imported;
pub mod judge;
pub mod matrix;
pub mod metrics;
pub mod notebook;
pub mod onnx;
pub mod prepare;
pub mod recent;
pub mod search;

pub use artifact::{Artifact, ImportedArtifact, ModelStore, Serving, StoredModel};
pub use judge::{Judgement, judge};
pub use search::{Leaderboard, Progress, TrainReport, train};

use stratum_core::Cause;

/// Everything that can go wrong while training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: Cause,
    },
    /// A data file lacks a column the schema names.
    #[error("`{path}` has no column `{column}`; it has: {available}")]
    MissingColumn {
        /// The file.
        path: String,
        /// The column missing.
        column: String,
        /// The columns it has, listed.
        available: String,
    },
    /// A value in a data file does not fit its column's type.
    #[error("`{path}` line {line}, column `{column}`: `{value}` is not {expected}")]
    BadValue {
        /// The file.
        path: String,
        /// The line (1-based).
        line: usize,
        /// The column.
        column: String,
        /// The value as written.
        value: String,
        /// What the type wants.
        expected: String,
    },
    /// A value in a Parquet dataset does not fit its column's type.
    #[error("`{path}` row {row} (from 1, across its parts), column `{column}`: `{value}` is not {expected}")]
    BadRow {
        /// The file or directory of parts.
        path: String,
        /// The row (1-based, counted across the dataset's parts in name order).
        row: usize,
        /// The column.
        column: String,
        /// The value as read.
        value: String,
        /// What the type wants.
        expected: String,
    },
    /// A data file has no rows.
    #[error("`{path}` has no rows")]
    Empty {
        /// The file.
        path: String,
    },
    /// A dataset has nothing to train on.
    #[error("dataset `{dataset}` has no data to train on: {reason}")]
    NoData {
        /// The dataset.
        dataset: String,
        /// Why there is none.
        reason: String,
    },
    /// A classifier's target has one class only.
    #[error("the target `{target}` has only one class (`{class}`) in the data; a classifier needs at least two")]
    OneClass {
        /// The target column.
        target: String,
        /// Its only class.
        class: String,
    },
    /// A feature has missing values and no imputation.
    #[error("feature `{feature}` has missing values; add an imputation step such as `prepare = [impute(median)]`")]
    MissingValues {
        /// The feature.
        feature: String,
    },
    /// A feature or the target has an infinite value, which no algorithm can learn from (missing values are empty
    /// cells, `null` or `NaN`, and are imputed).
    #[error(
        "{column} `{name}` is {value} in row {row} of the data (counting rows from 1); an infinite value cannot be learned from: fix the data, or leave such rows out with `prepare = [filter(…)]`"
    )]
    NonFinite {
        /// `feature` or `target`.
        column: &'static str,
        /// Its name.
        name: String,
        /// The value.
        value: f64,
        /// The data's row, from 1.
        row: usize,
    },
    /// A model or its data is not usable as given; the message says how.
    #[error("{0}")]
    Invalid(String),
    /// A model's notebook could not be written.
    #[error("notebook for model `{model}`: {source}")]
    Notebook {
        /// The model.
        model: String,
        /// Why.
        #[source]
        source: Cause,
    },
    /// The model store could not be read or written.
    #[error("model store: {0}")]
    Store(#[source] Cause),
}
