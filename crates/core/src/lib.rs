//! Units, data types and the versioned intermediate representation (IR) shared by every Stratum crate.
//!
//! This crate does no IO and has no async code: it is the vocabulary the language front end produces and the
//! planner, ML engine, data plane and control plane consume.

#![warn(missing_docs)]

pub mod bytes;
pub mod cron;
pub mod eval;
pub mod events;
pub mod ir;
pub mod placement;
pub mod plan;
pub mod sync;
pub mod types;
pub mod units;
mod version;
pub mod vocabulary;

pub use ir::IR_VERSION;

/// What caused an error: another library's error, kept as the error's `source` so that the chain survives, or a
/// sentence of ours where there is none (`"…".into()`).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;
