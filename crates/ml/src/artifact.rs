//! Model artifacts and the local model store. An artifact is versioned and content-addressed: its id is the
//! sha256 of the fitted model (preparation + algorithm), and it carries the schema, hyperparameters, the
//! leaderboard it won, a fingerprint of the training data and a profile measured on the training machine.

use crate::Error;
use crate::algorithms::Params;
use crate::search::{Leaderboard, TrainReport, TrainedModel};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Instant;
use stratum_core::ir::{Metric, Task};
use stratum_core::types::{DataType, Field};

/// The artifact format; bumped when its shape changes.
pub const ARTIFACT_VERSION: u32 = 1;

/// How the model behaves on this machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// One record at a time, preparation included, in microseconds.
    pub latency_p50_us: f64,
    pub latency_p99_us: f64,
    /// Records per second when predicting (up to 10,000 of) the training records at once.
    pub batch_rows_per_second: f64,
    /// The training process's peak resident memory, when the system reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    /// The serialized model's size.
    pub size_bytes: u64,
    pub machine: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub artifact_version: u32,
    pub name: String,
    pub version: u32,
    /// sha256 of the serialized `model`.
    pub sha256: String,
    /// Seconds since 1970-01-01 when the artifact was made.
    pub created: u64,
    pub task: Task,
    pub algorithm: String,
    pub params: Params,
    pub inputs: Vec<Field>,
    pub output: DataType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    pub metric: Metric,
    pub score: f64,
    pub leaderboard: Leaderboard,
    /// sha256 of the training data file, and how many rows were used.
    pub data_sha256: String,
    pub rows: usize,
    pub profile: Profile,
    pub model: TrainedModel,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The process's peak resident memory (Linux `VmHWM`), if known.
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kibibytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kibibytes * 1024)
}

/// Measures a trained model on records of its training data.
pub fn profile(report: &TrainReport, serialized_size: usize) -> Profile {
    let table = &report.table;
    let sample: Vec<&Vec<stratum_core::eval::Datum>> = table.rows.iter().take(1000).collect();
    let mut latencies: Vec<f64> = Vec::with_capacity(sample.len());
    for row in &sample {
        let reader = table.field_reader(row);
        let started = Instant::now();
        let _ = report.winner.predict(&[&reader]);
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
    }
    latencies.sort_by(f64::total_cmp);
    let percentile = |fraction: f64| {
        latencies.get(((latencies.len() as f64 - 1.0) * fraction).round() as usize).copied().unwrap_or(0.0)
    };
    // Batch throughput on at most 10,000 records: enough to measure, and bounded for slow predictors (kNN).
    let readers: Vec<_> = table.rows.iter().take(10_000).map(|row| table.field_reader(row)).collect();
    let references: Vec<&dyn Fn(&str) -> stratum_core::eval::Datum> =
        readers.iter().map(|reader| reader as &dyn Fn(&str) -> stratum_core::eval::Datum).collect();
    let started = Instant::now();
    let _ = report.winner.predict(&references);
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    Profile {
        latency_p50_us: percentile(0.5),
        latency_p99_us: percentile(0.99),
        batch_rows_per_second: readers.len() as f64 / seconds,
        peak_memory_bytes: peak_memory(),
        size_bytes: serialized_size as u64,
        machine: format!(
            "{} cores, {}",
            std::thread::available_parallelism().map_or(1, usize::from),
            std::env::consts::ARCH
        ),
    }
}

/// Artifacts on disk: `ROOT/NAME/vN.json`, one file per version.
pub struct ModelStore {
    pub root: PathBuf,
}

impl ModelStore {
    pub fn new(root: impl Into<PathBuf>) -> ModelStore {
        ModelStore { root: root.into() }
    }

    fn store_error(path: &Path, error: impl std::fmt::Display) -> Error {
        Error::Store(format!("`{}`: {error}", path.display()))
    }

    /// Turns a training report into a profiled artifact and saves it as the next version.
    pub fn save(
        &self,
        report: &TrainReport,
        inputs: Vec<Field>,
        output: DataType,
    ) -> Result<(Artifact, PathBuf), Error> {
        let model_bytes = serde_json::to_vec(&report.winner).map_err(|error| Error::Store(error.to_string()))?;
        let sha256 = sha256_hex(&model_bytes);
        let folder = self.root.join(&report.model);
        std::fs::create_dir_all(&folder).map_err(|error| Self::store_error(&folder, error))?;
        let version = self.versions(&report.model)?.last().map_or(1, |last| last + 1);
        let best = &report.leaderboard.entries[0];
        let artifact = Artifact {
            artifact_version: ARTIFACT_VERSION,
            name: report.model.clone(),
            version,
            sha256,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs()),
            task: report.winner.task,
            algorithm: report.algorithm.clone(),
            params: report.params.clone(),
            inputs,
            output,
            classes: report.winner.classes.clone(),
            metric: report.leaderboard.metric,
            score: best.mean,
            leaderboard: report.leaderboard.clone(),
            data_sha256: report.data_fingerprint.clone(),
            rows: report.rows,
            profile: profile(report, model_bytes.len()),
            model: report.winner.clone(),
        };
        let path = folder.join(format!("v{version}.json"));
        let text = serde_json::to_string_pretty(&artifact).map_err(|error| Error::Store(error.to_string()))?;
        std::fs::write(&path, text).map_err(|error| Self::store_error(&path, error))?;
        Ok((artifact, path))
    }

    /// The versions stored for a model, ascending.
    pub fn versions(&self, name: &str) -> Result<Vec<u32>, Error> {
        let folder = self.root.join(name);
        let Ok(entries) = std::fs::read_dir(&folder) else { return Ok(Vec::new()) };
        let mut versions: Vec<u32> = entries
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                name.strip_prefix('v')?.strip_suffix(".json")?.parse().ok()
            })
            .collect();
        versions.sort_unstable();
        Ok(versions)
    }

    /// The names of the stored models.
    pub fn models(&self) -> Result<Vec<String>, Error> {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return Ok(Vec::new()) };
        let mut names: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().is_dir())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Loads one version of a model (the latest when `version` is None).
    pub fn load(&self, name: &str, version: Option<u32>) -> Result<Artifact, Error> {
        let version = match version {
            Some(version) => version,
            None => *self
                .versions(name)?
                .last()
                .ok_or_else(|| Error::Store(format!("no model `{name}` in `{}`", self.root.display())))?,
        };
        let path = self.root.join(name).join(format!("v{version}.json"));
        let text = std::fs::read_to_string(&path).map_err(|error| Self::store_error(&path, error))?;
        let artifact: Artifact = serde_json::from_str(&text).map_err(|error| Self::store_error(&path, error))?;
        let bytes = serde_json::to_vec(&artifact.model).map_err(|error| Error::Store(error.to_string()))?;
        if sha256_hex(&bytes) != artifact.sha256 {
            return Err(Self::store_error(
                &path,
                "its model does not match its sha256; the file was changed or damaged",
            ));
        }
        Ok(artifact)
    }
}
