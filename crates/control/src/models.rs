//! The models an application's services need, ready in the model store before anything serves them: a stored
//! artifact trained on the data as it is now is reused; otherwise the model is trained. When its training data
//! does not exist yet — the first `stratum up` on a laptop — it is bootstrapped: the sinks that feed the data run
//! on simulated sources over a stretch of simulated history, and the batches that write the dataset run once.

use crate::Error;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use stratum_core::Cause;
use stratum_core::ir::{Application, ModelOrigin, SinkKind};
use stratum_dataplane::{Pipeline, PipelineOptions};
use stratum_ml::{Judgement, ModelStore, StoredModel};

/// What happened while making a model ready, for the user to see.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelProgress {
    /// The model's dataset does not exist: simulating `hours` of history through `sinks`, then `batches`.
    Bootstrapping {
        /// The model.
        model: String,
        /// Its dataset.
        dataset: String,
        /// Hours of history simulated.
        hours: f64,
        /// Events a second its sources make, on average.
        rate: f64,
        /// Fewer hours than a day, so that the history is at most [`BOOTSTRAP_EVENTS`] events.
        shortened: bool,
        /// The sinks that fill the dataset.
        sinks: Vec<String>,
        /// The batches that fill it from what the sinks kept.
        batches: Vec<String>,
    },
    /// The dataset was made from simulated history.
    Bootstrapped {
        /// The model.
        model: String,
        /// Events simulated.
        events: u64,
        /// Rows the dataset got.
        rows: usize,
    },
    /// The model is being trained.
    Training {
        /// The model.
        model: String,
    },
    /// The model was trained and stored.
    Trained {
        /// The model.
        model: String,
        /// Its new version.
        version: u32,
        /// The winning algorithm.
        algorithm: String,
        /// The metric it was judged by.
        metric: String,
        /// Its score.
        score: f64,
        /// How long training took.
        seconds: f64,
    },
    /// A retrained version was judged against the version that served, on the most recent rows its training
    /// held out: it serves only when it scored better.
    Judged {
        /// The model.
        model: String,
        /// The retrained version.
        version: u32,
        /// The numbers, and whether it serves.
        judgement: Judgement,
    },
    /// An `onnx` model's file was imported into the store: it was not there, or it changed.
    Imported {
        /// The model.
        model: String,
        /// Its new version.
        version: u32,
        /// The file, as the application names it.
        path: String,
    },
    /// An `onnx` model's stored version serves as it is: its file is the one imported before (or is not there).
    Kept {
        /// The model.
        model: String,
        /// The version that serves.
        version: u32,
    },
    /// A stored version trained on the same data was reused.
    Reused {
        /// The model.
        model: String,
        /// The version reused.
        version: u32,
    },
}

/// A model ready to serve.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadyModel {
    /// The model.
    pub model: String,
    /// Its version in the store.
    pub version: u32,
    /// The sha256 of the model.
    pub sha256: String,
    /// The sha256 of the data it was trained on.
    pub data_sha256: String,
}

/// How models are made ready.
pub struct ModelOptions {
    /// Relative paths of the application are relative to this directory.
    pub base_dir: PathBuf,
    /// The model store.
    pub model_store: PathBuf,
    /// How much simulated history a missing dataset is bootstrapped from; by default a day
    /// ([`BOOTSTRAP_HOURS`]), or less when a day would be more than [`BOOTSTRAP_EVENTS`].
    pub bootstrap_hours: Option<f64>,
}

/// The models that the application's services serve (and that `predict()` calls reach), each once.
pub fn served_models(application: &Application) -> Vec<String> {
    let mut models = BTreeSet::new();
    for service in &application.services {
        models.insert(service.model.clone());
    }
    models.into_iter().collect()
}

/// Makes every served model ready: reused, trained, or bootstrapped and trained.
pub async fn ensure_models(
    application: &Application,
    options: &ModelOptions,
    progress: &mut (dyn FnMut(ModelProgress) + Send),
) -> Result<Vec<ReadyModel>, Error> {
    let mut ready = Vec::new();
    for model in served_models(application) {
        ready.push(ensure_model(application, &model, options, progress).await?);
    }
    Ok(ready)
}

/// Makes one served model ready: reused when a stored version was trained on the same data, trained otherwise
/// (its dataset bootstrapped first when it has none).
pub(crate) async fn ensure_model(
    application: &Application,
    model: &str,
    options: &ModelOptions,
    progress: &mut (dyn FnMut(ModelProgress) + Send),
) -> Result<ReadyModel, Error> {
    let item = application
        .models
        .iter()
        .find(|item| item.name == model)
        .ok_or_else(|| Error::Model { model: model.into(), source: "no such model in the application".into() })?;
    let store = ModelStore::new(&options.model_store);
    let training = match &item.origin {
        ModelOrigin::Trained(training) => training,
        ModelOrigin::Onnx { path } => return ensure_imported(&store, item, path, options, progress),
    };
    let fingerprint = match stratum_ml::search::data_fingerprint(application, model, &options.base_dir) {
        Ok(fingerprint) => fingerprint,
        Err(stratum_ml::Error::NoData { .. }) => {
            bootstrap(application, model, &training.data, options, progress).await?;
            stratum_ml::search::data_fingerprint(application, model, &options.base_dir)
                .map_err(|error| Error::Model { model: model.into(), source: error.into() })?
        }
        Err(error) => return Err(Error::Model { model: model.into(), source: error.into() }),
    };
    // The newest version was trained on this data already: nothing to train (the version that serves may be an
    // older one an operator pinned).
    let newest = store.versions(model).ok().and_then(|versions| versions.last().copied());
    if let Some(newest) = newest
        && let Ok(StoredModel::Trained(artifact)) = store.load_any(model, Some(newest))
        && artifact.data_sha256 == fingerprint
        && let Ok(serving) = store.load_any(model, None)
    {
        progress(ModelProgress::Reused { model: model.into(), version: serving.version() });
        return Ok(ReadyModel {
            model: model.into(),
            version: serving.version(),
            sha256: serving.sha256().into(),
            data_sha256: fingerprint,
        });
    }
    progress(ModelProgress::Training { model: model.into() });
    // A version that serves already is replaced only by one that scores better on the most recent rows, which
    // the new one's training does not see.
    let serving = match store.load_any(model, None) {
        Ok(StoredModel::Trained(artifact)) => Some(artifact),
        _ => None,
    };
    let held_out = if serving.is_some() { stratum_ml::recent::RECENT_FRACTION } else { 0.0 };
    let (application_copy, model_name, base) = (application.clone(), model.to_string(), options.base_dir.clone());
    let report = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let run = stratum_ml::search::prepare_retraining(&application_copy, &model_name, &base, held_out)?;
        stratum_ml::search::train_prepared(run, started, &mut |_| {})
    })
    .await
    .map_err(|error| Error::Model { model: model.into(), source: error.into() })?
    .map_err(|error| Error::Model { model: model.into(), source: error.into() })?;
    let judgement = serving.as_ref().and_then(|serving| {
        // The score its own search gave it, when it was judged by the same metric.
        let when_trained = if serving.metric == report.leaderboard.metric { serving.score } else { f64::NAN };
        stratum_ml::judge(&report, &serving.model, serving.version, when_trained)
    });
    let (artifact, _) = store
        .save_judged(&report, item.inputs.clone(), item.output.clone(), judgement.clone())
        .map_err(|error| Error::Model { model: model.into(), source: error.into() })?;
    progress(ModelProgress::Trained {
        model: model.into(),
        version: artifact.version,
        algorithm: artifact.algorithm.clone(),
        metric: artifact.metric.name().into(),
        score: artifact.score,
        seconds: report.elapsed.as_secs_f64(),
    });
    if let Some(judgement) = judgement {
        progress(ModelProgress::Judged { model: model.into(), version: artifact.version, judgement });
    }
    // The new version serves, unless an operator pinned another or it did not score better than the one that
    // served.
    let serving =
        store.load_any(model, None).map_err(|error| Error::Model { model: model.into(), source: error.into() })?;
    Ok(ReadyModel {
        model: model.into(),
        version: serving.version(),
        sha256: serving.sha256().into(),
        data_sha256: fingerprint,
    })
}

/// Makes an `onnx` model ready: its file is imported into the store on first use, and again when it changed (no
/// stored version has its bytes); otherwise the version that serves is used as stored. Without the file, a stored
/// version (one `stratum model import` made) serves.
fn ensure_imported(
    store: &ModelStore,
    item: &stratum_core::ir::Model,
    path: &str,
    options: &ModelOptions,
    progress: &mut (dyn FnMut(ModelProgress) + Send),
) -> Result<ReadyModel, Error> {
    let model = item.name.as_str();
    let failed = |source: Cause| Error::Model { model: model.into(), source };
    let file = options.base_dir.join(path);
    let bytes = match std::fs::read(&file) {
        Ok(bytes) => Some(bytes),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(failed(format!("cannot read `{}`: {error}", file.display()).into())),
    };
    let stored: Vec<StoredModel> = store
        .versions(model)
        .map_err(|error| failed(error.into()))?
        .into_iter()
        .filter_map(|version| store.load_any(model, Some(version)).ok())
        .collect();
    let changed = bytes.as_deref().filter(|bytes| {
        let sha256 = stratum_ml::data::sha256_hex(bytes);
        !stored.iter().any(|version| version.sha256() == sha256)
    });
    if let Some(bytes) = changed {
        let (artifact, _) =
            store.import_onnx(model, bytes, Some(item.inputs.clone()), &file).map_err(|error| failed(error.into()))?;
        progress(ModelProgress::Imported { model: model.into(), version: artifact.version, path: path.into() });
    } else if stored.is_empty() {
        return Err(failed(
            format!(
                "`{}` does not exist and the model store has no version of it: put the ONNX file there, or import one with `stratum model import {model} FILE`",
                file.display()
            )
            .into(),
        ));
    }
    let serving = store.load_any(model, None).map_err(|error| failed(error.into()))?;
    if changed.is_none() {
        progress(ModelProgress::Kept { model: model.into(), version: serving.version() });
    }
    Ok(ReadyModel {
        model: model.into(),
        version: serving.version(),
        sha256: serving.sha256().into(),
        data_sha256: String::new(),
    })
}

/// Hours of simulated history a missing dataset is bootstrapped from, unless told otherwise.
pub const BOOTSTRAP_HOURS: f64 = 24.0;

/// The most events a bootstrap simulates unless told how many hours: sources of thousands of events a second make
/// hundreds of millions a day, which takes longer than the start of `stratum up` on a laptop should (the traffic
/// example's day is about 10 million).
pub const BOOTSTRAP_EVENTS: f64 = 20e6;

/// How many hours of history a bootstrap simulates for sources making `rate` events a second: the hours asked
/// for, or a day, shortened to [`BOOTSTRAP_EVENTS`] (and whether it was).
fn bootstrap_hours(asked: Option<f64>, rate: f64) -> (f64, bool) {
    match asked {
        Some(hours) => (hours, false),
        None => {
            let affordable = BOOTSTRAP_EVENTS / rate / 3600.0;
            (BOOTSTRAP_HOURS.min(affordable), affordable < BOOTSTRAP_HOURS)
        }
    }
}

/// Fills a model's missing dataset from simulated history: the sinks the producing batches read (or that write
/// the dataset directly) run on simulated sources for `bootstrap_hours` of event time, then the batches run.
async fn bootstrap(
    application: &Application,
    model: &str,
    dataset: &str,
    options: &ModelOptions,
    progress: &mut (dyn FnMut(ModelProgress) + Send),
) -> Result<(), Error> {
    let failed = |source: Cause| Error::Model { model: model.into(), source };
    let batches: Vec<&stratum_core::ir::Batch> =
        application.batches.iter().filter(|batch| batch.into == dataset).collect();
    let mut sinks: BTreeSet<String> = batches
        .iter()
        .flat_map(|batch| &batch.reads)
        .filter(|table| application.sinks.iter().any(|sink| &sink.name == *table))
        .cloned()
        .collect();
    sinks.extend(
        application
            .sinks
            .iter()
            .filter(|sink| matches!(&sink.kind, SinkKind::Dataset { into } if into == dataset))
            .map(|sink| sink.name.clone()),
    );
    if sinks.is_empty() {
        return Err(failed(format!(
            "dataset `{dataset}` has no data and nothing in the application writes it; give it a `path` to existing data"
        ).into()));
    }
    let sinks: Vec<String> = sinks.into_iter().collect();
    let batch_names: Vec<String> = batches.iter().map(|batch| batch.name.clone()).collect();
    let rate =
        stratum_dataplane::pipeline::events_per_second(application, &sinks).map_err(|error| failed(error.into()))?;
    let (hours, shortened) = bootstrap_hours(options.bootstrap_hours, rate);
    progress(ModelProgress::Bootstrapping {
        model: model.into(),
        dataset: dataset.into(),
        hours,
        rate,
        shortened,
        sinks: sinks.clone(),
        batches: batch_names.clone(),
    });
    let pipeline_options = PipelineOptions {
        base_dir: options.base_dir.clone(),
        only: sinks,
        simulate: true,
        fast_generators: true,
        simulated_seconds: Some(hours * 3600.0),
        model_store: Some(options.model_store.clone()),
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::build(application, &pipeline_options).map_err(|error| failed(error.into()))?;
    let summary = pipeline.run().await.map_err(|error| failed(error.into()))?;
    let sources: BTreeSet<&str> = application.sources.iter().map(|source| source.name.as_str()).collect();
    let events = summary
        .components
        .iter()
        .filter(|metrics| sources.contains(metrics.component.as_str()))
        .map(|metrics| metrics.events_out)
        .sum();
    let mut rows = 0;
    for batch in &batch_names {
        let run = stratum_batch::run(application, batch, &options.base_dir)
            .await
            .map_err(|error| failed(format!("batch `{batch}`: {error}").into()))?;
        rows = run.rows;
    }
    progress(ModelProgress::Bootstrapped { model: model.into(), events, rows });
    Ok(())
}

/// Where a model store lives by default: next to the state, under the file's directory.
pub fn default_store(state_dir: &Path) -> PathBuf {
    state_dir.join("models")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bootstrap_simulates_a_day_unless_it_would_be_more_than_its_event_budget() {
        // The traffic example's detections: 100 a second make 8.6 million a day.
        assert_eq!(bootstrap_hours(None, 100.0), (24.0, false));
        // The energy example's meters: 4,000 a second would make 346 million; 20 million take 1.39 hours.
        let (hours, shortened) = bootstrap_hours(None, 4000.0);
        assert!(shortened && (hours - 20e6 / 4000.0 / 3600.0).abs() < 1e-9, "{hours}");
        // Hours asked for are simulated whatever they cost.
        assert_eq!(bootstrap_hours(Some(24.0), 4000.0), (24.0, false));
    }
}
