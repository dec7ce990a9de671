//! The sinks this version runs: files (CSV, JSON lines, Parquet; partitioned by fields and by time), datasets,
//! and the in-memory feeds that dashboards read.

pub mod feed;
pub mod file;
