//! The sinks this version runs: files (CSV, JSON lines, Parquet; partitioned by fields and by time), datasets,
//! and the in-memory feeds that dashboards read; file sinks that read a windowed stream take each window once.

pub mod feed;
pub mod file;
pub mod windows;
