//! The sources this version runs: synthetic events from a schema, and files read once or tailed.

pub(crate) mod file;
pub(crate) mod generator;
