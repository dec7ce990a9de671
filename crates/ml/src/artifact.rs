//! Model artifacts and the local model store. An artifact is versioned and content-addressed: its id is the
//! sha256 of the fitted model (preparation + algorithm), and it carries the schema, hyperparameters, the
//! leaderboard it won, a fingerprint of the training data and a profile measured on the training machine.

use crate::Error;
use crate::algorithms::Params;
use crate::data::sha256_hex;
use crate::imported::ImportedModel;
use crate::judge::{Drift, Judgement, drift_of};
use crate::prepare::examples;
use crate::search::{Leaderboard, TrainReport, TrainedModel, load_training_data, training_of};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use stratum_core::eval::Datum;
use stratum_core::ir::{Application, Metric, Task};
use stratum_core::types::{DataType, Field};

/// The artifact format; bumped when its shape changes.
pub const ARTIFACT_VERSION: u32 = 1;

/// How the model behaves on this machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// One record at a time, preparation included, in microseconds.
    pub latency_p50_us: f64,
    /// One record at a time, preparation included, in microseconds: the 99th percentile.
    pub latency_p99_us: f64,
    /// Records per second when predicting (up to 10,000 of) the training records at once.
    pub batch_rows_per_second: f64,
    /// The training process's peak resident memory, when the system reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    /// The serialized model's size.
    pub size_bytes: u64,
    /// The machine it was measured on.
    pub machine: String,
}

/// A trained model as the store keeps it: the model with everything about how it was made and judged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// The artifact format ([`ARTIFACT_VERSION`]).
    pub artifact_version: u32,
    /// The model's name in the application.
    pub name: String,
    /// Its version in the store, from 1.
    pub version: u32,
    /// sha256 of the serialized `model`.
    pub sha256: String,
    /// Seconds since 1970-01-01 when the artifact was made.
    pub created: u64,
    /// Classification, regression or clustering.
    pub task: Task,
    /// The winning algorithm.
    pub algorithm: String,
    /// Its hyperparameters.
    pub params: Params,
    /// The fields a record to predict on has.
    pub inputs: Vec<Field>,
    /// The type of what it predicts.
    pub output: DataType,
    /// A classifier's classes, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// The metric it was judged by.
    pub metric: Metric,
    /// Its mean score over the folds.
    pub score: f64,
    /// Every candidate's scores.
    pub leaderboard: Leaderboard,
    /// sha256 of the training data file, and how many rows were used.
    pub data_sha256: String,
    /// How many rows it was trained on.
    pub rows: usize,
    /// How it runs on the machine that trained it.
    pub profile: Profile,
    /// How it compared with the version that served when it was retrained, on the most recent rows; none for a
    /// version trained without one to compare with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judgement: Option<Judgement>,
    /// The fitted model itself.
    pub model: TrainedModel,
}

impl Artifact {
    /// Measures how this version does on its model's data's most recent rows by `metric` — the metric a
    /// `retrain = drift(metric, threshold)` watches — against how it did when trained. None when the data is the
    /// very data it was trained on (it has seen every row: there is nothing new to measure it on).
    pub fn drift(&self, application: &Application, base: &Path, metric: Metric) -> Result<Option<Drift>, Error> {
        let (found, training) = training_of(application, &self.name)?;
        let (table, fingerprint) = load_training_data(application, training, base)?;
        if fingerprint == self.data_sha256 {
            return Ok(None);
        }
        let examples = examples(&table, training, found.task)?;
        let when_trained = (self.metric == metric).then_some(self.score);
        drift_of(&examples, &table, &self.model, metric, when_trained)
            .map(Some)
            .ok_or_else(|| Error::Invalid(format!("model `{}` cannot be scored by {}", self.name, metric.name())))
    }
}

/// The process's peak resident memory (Linux `VmHWM`), if known.
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kibibytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kibibytes * 1024)
}

type Record<'a> = &'a dyn Fn(&str) -> Datum;

/// Times `predict` one record at a time (up to 1,000 records or half a second) and on one batch sized to take about
/// a second at the single-record pace (100 to 10,000 records), so slow predictors such as kNN profile quickly too.
fn measure(records: &[Record<'_>], predict: impl Fn(&[Record<'_>]), serialized_size: usize) -> Profile {
    let mut latencies: Vec<f64> = Vec::with_capacity(records.len().min(1000));
    let budget = Instant::now();
    for record in records.iter().take(1000) {
        let started = Instant::now();
        predict(&[*record]);
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
        if budget.elapsed().as_secs_f64() >= 0.5 {
            break;
        }
    }
    latencies.sort_by(f64::total_cmp);
    let percentile = |fraction: f64| {
        latencies.get(((latencies.len() as f64 - 1.0) * fraction).round() as usize).copied().unwrap_or(0.0)
    };
    let batch_size = (1e6 / percentile(0.5).max(1e-3)).clamp(100.0, 10_000.0) as usize;
    let batch = &records[..records.len().min(batch_size)];
    let started = Instant::now();
    predict(batch);
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    Profile {
        latency_p50_us: percentile(0.5),
        latency_p99_us: percentile(0.99),
        batch_rows_per_second: batch.len() as f64 / seconds,
        peak_memory_bytes: peak_memory(),
        size_bytes: serialized_size as u64,
        machine: format!(
            "{} cores, {}",
            std::thread::available_parallelism().map_or(1, usize::from),
            std::env::consts::ARCH
        ),
    }
}

/// Measures a trained model on records of its training data.
pub fn profile(report: &TrainReport, serialized_size: usize) -> Profile {
    let table = &report.table;
    let readers: Vec<_> = table.rows.iter().take(10_000).map(|row| table.field_reader(row)).collect();
    let records: Vec<Record<'_>> = readers.iter().map(|reader| reader as Record<'_>).collect();
    measure(
        &records,
        |batch| {
            report.winner.predict(batch);
        },
        serialized_size,
    )
}

/// Measures an imported model on records of zeros (it comes without data).
pub fn profile_imported(model: &ImportedModel, serialized_size: usize) -> Profile {
    let zeros = |_: &str| Datum::Float(0.0);
    let records: Vec<Record<'_>> = vec![&zeros; 10_000];
    measure(
        &records,
        |batch| {
            let _ = model.predict(batch);
        },
        serialized_size,
    )
}

/// An ONNX model imported into the store (`stratum model import`); its bytes live next to it in `vN.onnx`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImportedArtifact {
    /// The artifact format ([`ARTIFACT_VERSION`]).
    pub artifact_version: u32,
    /// Always `onnx`: tells an imported artifact from a trained one on disk.
    pub origin: String,
    /// The model's name in the application.
    pub name: String,
    /// Its version in the store, from 1.
    pub version: u32,
    /// sha256 of the ONNX file.
    pub sha256: String,
    /// Seconds since 1970-01-01 when it was imported.
    pub created: u64,
    /// The file it was imported from.
    pub source: String,
    /// The fields a record to predict on has.
    pub inputs: Vec<Field>,
    /// The names of the model's outputs.
    pub outputs: Vec<String>,
    /// What ran it when it was imported and profiled: `stratum` (Stratum's own executor) or `onnxruntime`.
    #[serde(default = "own_engine")]
    pub engine: String,
    /// How it ran when imported.
    pub profile: Profile,
}

fn own_engine() -> String {
    "stratum".into()
}

/// A model in the store: trained by Stratum or imported from ONNX.
#[derive(Clone, Debug, PartialEq)]
pub enum StoredModel {
    /// Trained by Stratum.
    Trained(Box<Artifact>),
    /// Imported from ONNX.
    Imported(Box<ImportedArtifact>),
}

impl StoredModel {
    /// The model's name.
    pub fn name(&self) -> &str {
        match self {
            StoredModel::Trained(artifact) => &artifact.name,
            StoredModel::Imported(artifact) => &artifact.name,
        }
    }

    /// Its version in the store.
    pub fn version(&self) -> u32 {
        match self {
            StoredModel::Trained(artifact) => artifact.version,
            StoredModel::Imported(artifact) => artifact.version,
        }
    }

    /// How fast it predicts, measured when it was stored.
    pub fn profile(&self) -> &Profile {
        match self {
            StoredModel::Trained(artifact) => &artifact.profile,
            StoredModel::Imported(artifact) => &artifact.profile,
        }
    }

    /// The sha256 of the model (the fitted model, or the ONNX file).
    pub fn sha256(&self) -> &str {
        match self {
            StoredModel::Trained(artifact) => &artifact.sha256,
            StoredModel::Imported(artifact) => &artifact.sha256,
        }
    }
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

/// Writes a store file whole or not at all: into `FILE.partial`, synced, then renamed over `FILE`, so that a reader
/// (an agent pulling the model, a backup copying the store) never sees half of it.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut file = std::fs::File::create(&partial)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}

/// Which version of a model serves, when an operator or a promotion chose one (`ROOT/NAME/serving.json`); without
/// it, the newest version serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Serving {
    /// The version that serves.
    pub version: u32,
    /// Pinned: new versions (a retrain's) are stored but do not serve until promoted.
    pub pinned: bool,
}

/// Artifacts on disk: `ROOT/NAME/vN.json`, one file per version, and `ROOT/NAME/serving.json` when a version other
/// than the newest was chosen to serve.
pub struct ModelStore {
    /// The folder that holds a folder per model.
    pub root: PathBuf,
}

impl ModelStore {
    /// The store under `root`.
    pub fn new(root: impl Into<PathBuf>) -> ModelStore {
        ModelStore { root: root.into() }
    }

    /// Seconds one prediction of the serving version of `name` takes, by its profile's median; none when
    /// the store does not have it (or cannot read it).
    pub fn prediction_seconds(&self, name: &str) -> Option<f64> {
        self.load_any(name, None).ok().map(|stored| stored.profile().latency_p50_us / 1e6)
    }

    fn store_error(path: &Path, error: impl std::fmt::Display) -> Error {
        Error::Store(format!("`{}`: {error}", path.display()).into())
    }

    /// Turns a training report into a profiled artifact and saves it as the next version, which serves unless
    /// another is pinned.
    pub fn save(
        &self,
        report: &TrainReport,
        inputs: Vec<Field>,
        output: DataType,
    ) -> Result<(Artifact, PathBuf), Error> {
        self.save_judged(report, inputs, output, None)
    }

    /// [`ModelStore::save`] for a retrain judged against the version that served: a version that did not score
    /// better is stored (to look at, or to promote by hand) but the one that served goes on serving.
    pub fn save_judged(
        &self,
        report: &TrainReport,
        inputs: Vec<Field>,
        output: DataType,
        judgement: Option<Judgement>,
    ) -> Result<(Artifact, PathBuf), Error> {
        let held_back = judgement.as_ref().is_some_and(|judgement| !judgement.promoted);
        let model_bytes = serde_json::to_vec(&report.winner).map_err(|error| Error::Store(error.into()))?;
        let sha256 = sha256_hex(&model_bytes);
        let (folder, version) = self.next_version(&report.model)?;
        let best = &report.leaderboard.entries[0];
        let artifact = Artifact {
            artifact_version: ARTIFACT_VERSION,
            name: report.model.clone(),
            version,
            sha256,
            created: now_seconds(),
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
            judgement,
            model: report.winner.clone(),
        };
        // A version held back is never the newest unchosen one, not even for a moment: the version that serves is
        // chosen first (unpinned, so that a later version that scores better serves in its turn).
        if held_back
            && let Some(serving) = self.serving(&report.model)?
            && !self.chosen(&report.model)?.is_some_and(|chosen| chosen.pinned)
        {
            self.choose(&report.model, &Serving { version: serving, pinned: false })?;
        }
        let path = folder.join(format!("v{version}.json"));
        let text = serde_json::to_string_pretty(&artifact).map_err(|error| Error::Store(error.into()))?;
        write_whole(&path, text.as_bytes()).map_err(|error| Self::store_error(&path, error))?;
        if !held_back {
            self.follow_new(&report.model, version)?;
        }
        Ok((artifact, path))
    }

    /// A version just stored serves, unless another is pinned: a version chosen without a pin gives way to it.
    fn follow_new(&self, name: &str, version: u32) -> Result<(), Error> {
        match self.chosen(name)? {
            Some(chosen) if !chosen.pinned => self.choose(name, &Serving { version, pinned: false }),
            _ => Ok(()),
        }
    }

    /// Which version serves, if one was chosen (see [`Serving`]); None when the newest serves.
    pub fn chosen(&self, name: &str) -> Result<Option<Serving>, Error> {
        let path = self.root.join(name).join("serving.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| Self::store_error(&path, error)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(Self::store_error(&path, error)),
        }
    }

    /// The version of `name` that serves: the chosen one, or else the newest; None when none is stored.
    pub fn serving(&self, name: &str) -> Result<Option<u32>, Error> {
        let versions = self.versions(name)?;
        Ok(match self.chosen(name)? {
            Some(chosen) if versions.contains(&chosen.version) => Some(chosen.version),
            _ => versions.last().copied(),
        })
    }

    /// Makes `version` of `name` the one that serves, pinned or not. The version must be stored.
    pub fn choose(&self, name: &str, serving: &Serving) -> Result<(), Error> {
        Self::check_name(name)?;
        if !self.versions(name)?.contains(&serving.version) {
            let stored = self.versions(name)?.iter().map(|version| format!("v{version}")).collect::<Vec<_>>();
            let stored = if stored.is_empty() { "none".to_string() } else { stored.join(", ") };
            return Err(Error::Store(
                format!("`{name}` has no version {} in `{}` (stored: {stored})", serving.version, self.root.display())
                    .into(),
            ));
        }
        let path = self.root.join(name).join("serving.json");
        let text = serde_json::to_vec(serving).map_err(|error| Error::Store(error.into()))?;
        write_whole(&path, &text).map_err(|error| Self::store_error(&path, error))
    }

    /// Whether `version` of `name` was held back by the promotion gate: retrained, judged against the version that
    /// served, and not better, so it never served on its own (a rollback passes over it).
    pub fn held_back(&self, name: &str, version: u32) -> bool {
        matches!(
            self.load_any(name, Some(version)),
            Ok(StoredModel::Trained(artifact)) if artifact.judgement.as_ref().is_some_and(|judgement| !judgement.promoted)
        )
    }

    /// The versions stored for a model, ascending.
    pub fn versions(&self, name: &str) -> Result<Vec<u32>, Error> {
        let folder = self.root.join(name);
        // Only a folder that does not exist means "no versions": a listing that fails (no descriptors left, no
        // permission) is an error that says so, never an empty store.
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(Self::store_error(&folder, error)),
        };
        let mut versions: Vec<u32> = Vec::new();
        for entry in entries {
            let name = entry.map_err(|error| Self::store_error(&folder, error))?.file_name();
            let name = name.to_string_lossy();
            if let Some(version) = name.strip_prefix('v').and_then(|rest| rest.strip_suffix(".json")) {
                versions.extend(version.parse::<u32>().ok());
            }
        }
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

    /// Names become folder names, so they are kept to characters that cannot leave the store.
    fn check_name(name: &str) -> Result<(), Error> {
        if name.is_empty() || !name.chars().all(|character| character.is_alphanumeric() || "_-".contains(character)) {
            return Err(Error::Store(
                format!("`{name}` cannot name a model: use letters, digits, `_` and `-` only").into(),
            ));
        }
        Ok(())
    }

    /// Creates the model's folder and picks its next version number.
    fn next_version(&self, name: &str) -> Result<(PathBuf, u32), Error> {
        Self::check_name(name)?;
        let folder = self.root.join(name);
        std::fs::create_dir_all(&folder).map_err(|error| Self::store_error(&folder, error))?;
        let version = self.versions(name)?.last().map_or(1, |last| last + 1);
        Ok((folder, version))
    }

    /// Imports an ONNX model as the next version of `name`, after proving Stratum can run it and profiling it.
    /// Without `inputs`, the input columns come from the model's `stratum.inputs` metadata.
    pub fn import_onnx(
        &self,
        name: &str,
        bytes: &[u8],
        inputs: Option<Vec<Field>>,
        source: &Path,
    ) -> Result<(ImportedArtifact, PathBuf), Error> {
        Self::check_name(name)?;
        let model = ImportedModel::from_bytes(bytes, inputs)
            .map_err(|error| Error::Invalid(format!("`{}`: {error}", source.display())))?;
        let (folder, version) = self.next_version(name)?;
        let artifact = ImportedArtifact {
            artifact_version: ARTIFACT_VERSION,
            origin: String::from("onnx"),
            name: name.to_string(),
            version,
            sha256: sha256_hex(bytes),
            created: now_seconds(),
            source: source.display().to_string(),
            inputs: model.inputs().to_vec(),
            outputs: model.outputs().to_vec(),
            engine: model.engine().to_string(),
            profile: profile_imported(&model, bytes.len()),
        };
        let onnx_path = folder.join(format!("v{version}.onnx"));
        write_whole(&onnx_path, bytes).map_err(|error| Self::store_error(&onnx_path, error))?;
        let path = folder.join(format!("v{version}.json"));
        let text = serde_json::to_string_pretty(&artifact).map_err(|error| Error::Store(error.into()))?;
        write_whole(&path, text.as_bytes()).map_err(|error| Self::store_error(&path, error))?;
        self.follow_new(name, version)?;
        Ok((artifact, path))
    }

    /// The ONNX bytes of an imported model, checked against its sha256.
    pub fn imported_bytes(&self, artifact: &ImportedArtifact) -> Result<Vec<u8>, Error> {
        let path = self.root.join(&artifact.name).join(format!("v{}.onnx", artifact.version));
        let bytes = std::fs::read(&path).map_err(|error| Self::store_error(&path, error))?;
        if sha256_hex(&bytes) != artifact.sha256 {
            return Err(Self::store_error(&path, "it does not match its sha256; the file was changed or damaged"));
        }
        Ok(bytes)
    }

    /// Loads one version of a model (the one that serves when `version` is None: see [`ModelStore::serving`]),
    /// trained or imported.
    pub fn load_any(&self, name: &str, version: Option<u32>) -> Result<StoredModel, Error> {
        let version = match version {
            Some(version) => version,
            None => self
                .serving(name)?
                .ok_or_else(|| Error::Store(format!("no model `{name}` in `{}`", self.root.display()).into()))?,
        };
        let path = self.root.join(name).join(format!("v{version}.json"));
        let bytes = std::fs::read(&path).map_err(|error| Self::store_error(&path, error))?;
        // Straight into the trained artifact (what serving cold-starts on; no intermediate tree of values); an
        // imported one, small, is the other possibility.
        let artifact: Artifact = match serde_json::from_slice(&bytes) {
            Ok(artifact) => artifact,
            Err(error) => match serde_json::from_slice::<ImportedArtifact>(&bytes) {
                Ok(artifact) if artifact.origin == "onnx" => {
                    self.imported_bytes(&artifact)?;
                    return Ok(StoredModel::Imported(Box::new(artifact)));
                }
                _ => return Err(Self::store_error(&path, error)),
            },
        };
        let bytes = serde_json::to_vec(&artifact.model).map_err(|error| Error::Store(error.into()))?;
        if sha256_hex(&bytes) != artifact.sha256 {
            return Err(Self::store_error(
                &path,
                "its model does not match its sha256; the file was changed or damaged",
            ));
        }
        Ok(StoredModel::Trained(Box::new(artifact)))
    }

    /// Loads one version of a trained model (the one that serves when `version` is None).
    pub fn load(&self, name: &str, version: Option<u32>) -> Result<Artifact, Error> {
        match self.load_any(name, version)? {
            StoredModel::Trained(artifact) => Ok(*artifact),
            StoredModel::Imported(artifact) => Err(Error::Store(
                format!("`{name}` version {} is an imported ONNX model, not one Stratum trained", artifact.version)
                    .into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ModelStore;

    #[test]
    fn a_listing_that_fails_is_an_error_not_an_empty_store() {
        let folder = tempfile::tempdir().unwrap();
        let store = ModelStore::new(folder.path());
        assert_eq!(store.versions("absent").unwrap(), Vec::<u32>::new(), "a model never saved has no versions");
        // A model's folder that cannot be listed (here a file stands where it should be; descriptors running out
        // fails the same way) must not read as "no versions".
        std::fs::write(folder.path().join("blocked"), "a file, not a folder").unwrap();
        let error = store.versions("blocked").unwrap_err().to_string();
        assert!(error.contains("blocked"), "{error}");
        assert!(store.load_any("blocked", None).is_err());
    }

    #[test]
    fn the_chosen_version_serves_else_the_newest() {
        let folder = tempfile::tempdir().unwrap();
        let store = ModelStore::new(folder.path());
        std::fs::create_dir_all(folder.path().join("m")).unwrap();
        assert_eq!(store.serving("m").unwrap(), None);
        for version in 1..=3 {
            std::fs::write(folder.path().join(format!("m/v{version}.json")), "{}").unwrap();
        }
        assert_eq!(store.serving("m").unwrap(), Some(3), "the newest serves when none was chosen");
        store.choose("m", &super::Serving { version: 2, pinned: true }).unwrap();
        assert_eq!(store.serving("m").unwrap(), Some(2));
        assert_eq!(store.chosen("m").unwrap(), Some(super::Serving { version: 2, pinned: true }));
        let error = store.choose("m", &super::Serving { version: 7, pinned: false }).unwrap_err().to_string();
        assert!(error.contains("no version 7") && error.contains("v1, v2, v3"), "{error}");
        // A chosen version that is gone (deleted by hand) is not served: the newest is.
        std::fs::remove_file(folder.path().join("m/v2.json")).unwrap();
        assert_eq!(store.serving("m").unwrap(), Some(3));
    }
}
