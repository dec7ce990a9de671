//! The search: expand each candidate's hyperparameter space (grid over listed values, seeded random samples from
//! ranges, capped by a trial budget), evaluate every (candidate, fold) task on worker threads within the time
//! budget, rank the candidates by the metric, and refit the winner on all the data.
//!
//! A task is a self-contained, serializable unit ([`TrainingTask`]: data by content hash, candidate, fold, seed →
//! [`TaskOutcome`]), so the control plane can later ship tasks to other machines.

use crate::Error;
use crate::algorithms::{self, Fitted, Params};
use crate::data::{self, Table};
use crate::evaluate::{Split, splits};
use crate::matrix::Random;
use crate::metrics::{Predictions, score};
use crate::prepare::{Examples, Preparation, Target, examples};
use crate::recent::HeldOut;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use stratum_core::ir::{Application, Metric, Model, ModelOrigin, ParameterSpace, Task, Training, Value};

/// How many values a range contributes when no trial budget says otherwise.
const SAMPLES_PER_RANGE: usize = 5;

/// One unit of work: fit one candidate on one fold's training rows and score it on its test rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingTask {
    /// sha256 of the dataset file: a worker elsewhere fetches the data by this.
    pub data: String,
    /// The candidate's algorithm.
    pub algorithm: String,
    /// Its hyperparameters.
    pub params: Params,
    /// Which fold to train on and score.
    pub fold: usize,
    /// The seed of its randomness.
    pub seed: u64,
}

/// What a task produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskOutcome {
    /// The fold's score.
    pub score: f64,
    /// Seconds the fit took.
    pub fit_seconds: f64,
}

/// One row of the leaderboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Its rank, 1 the best.
    pub rank: usize,
    /// The algorithm.
    pub algorithm: String,
    /// Its hyperparameters.
    pub params: Params,
    /// The mean score over the folds.
    pub mean: f64,
    /// The scores' standard deviation.
    pub std: f64,
    /// Each fold's score.
    pub folds: Vec<f64>,
    /// Mean seconds to fit one fold.
    pub fit_seconds: f64,
    /// Why the candidate could not be evaluated, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every candidate tried, best first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    /// The metric the candidates are ranked by.
    pub metric: Metric,
    /// Higher scores are better (accuracy), not lower (error).
    pub higher_is_better: bool,
    /// The candidates, best first.
    pub entries: Vec<Entry>,
    /// Candidates not evaluated because the time budget ran out.
    pub skipped: usize,
}

/// Progress of a search, reported as tasks finish.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Tasks finished.
    pub done: usize,
    /// Tasks in all.
    pub total: usize,
    /// Time since the search started.
    pub elapsed: Duration,
}

/// The fitted winner, with what serving needs: the preparation, the model, the class names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainedModel {
    /// The preparation fitted on the training rows.
    pub preparation: Preparation,
    /// The model.
    pub fitted: Fitted,
    /// A classifier's classes, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// Classification, regression or clustering.
    pub task: Task,
}

/// Everything a training run produced.
pub struct TrainReport {
    /// The model's name.
    pub model: String,
    /// Every candidate's scores.
    pub leaderboard: Leaderboard,
    /// The winner, refitted on all rows.
    pub winner: TrainedModel,
    /// The winner's algorithm.
    pub algorithm: String,
    /// Its hyperparameters.
    pub params: Params,
    /// The data it was trained on.
    pub table: Table,
    /// How many rows were used.
    pub rows: usize,
    /// The most recent rows, held out of the search and the refit to judge the winner against the version that
    /// serves ([`mod@crate::judge`]); none when every row was used.
    pub held_out: Option<HeldOut>,
    /// The sha256 of the training data.
    pub data_fingerprint: String,
    /// How long the run took.
    pub elapsed: Duration,
}

/// The training block of a model, or why it has none.
pub fn training_of<'a>(application: &'a Application, model: &str) -> Result<(&'a Model, &'a Training), Error> {
    let found = application
        .models
        .iter()
        .find(|candidate| candidate.name == model)
        .ok_or_else(|| Error::Invalid(format!("there is no model `{model}` in `{}`", application.name)))?;
    match &found.origin {
        ModelOrigin::Trained(training) => Ok((found, training)),
        ModelOrigin::Onnx { .. } => {
            Err(Error::Invalid(format!("model `{model}` is imported from ONNX; there is nothing to train")))
        }
    }
}

/// Where a model's training data lives: a dataset with a path, or a file sink's output; its path (relative to the
/// application's folder), format (None: by extension) and fields.
pub fn training_data_location(
    application: &Application,
    training: &Training,
) -> Result<(String, Option<stratum_core::ir::FileFormat>, Vec<stratum_core::types::Field>), Error> {
    use stratum_core::ir::SinkKind;
    if let Some(dataset) = application.datasets.iter().find(|dataset| dataset.name == training.data) {
        Ok((dataset.location(), dataset.format, dataset.fields.clone()))
    } else if let Some(sink) = application.sinks.iter().find(|sink| sink.name == training.data) {
        match &sink.kind {
            SinkKind::File { path, format, .. } => Ok((path.clone(), Some(*format), sink.fields.clone())),
            _ => Err(Error::NoData { dataset: sink.name.clone(), reason: "it is not a file sink".into() }),
        }
    } else {
        Err(Error::NoData { dataset: training.data.clone(), reason: "no dataset or file sink has this name".into() })
    }
}

/// Loads a model's training data and fingerprints its file.
pub fn load_training_data(
    application: &Application,
    training: &Training,
    base: &Path,
) -> Result<(Table, String), Error> {
    let (full, format, fields) = existing_training_data(application, training, base)?;
    // The fingerprint (a hash of every byte) is taken on another core while the data is parsed.
    let (table, fingerprint) = std::thread::scope(|scope| {
        let fingerprint = scope.spawn(|| fingerprint_files(&full));
        let table = data::load(&full, format, &fields);
        (table, fingerprint.join().expect("hashing does not panic"))
    });
    Ok((table?, fingerprint?))
}

/// The fingerprint of a model's training data as it is now, without reading it as a table: what tells whether a
/// stored artifact was trained on this data. An error when there is none (yet).
pub fn data_fingerprint(application: &Application, model: &str, base: &Path) -> Result<String, Error> {
    let (_, training) = training_of(application, model)?;
    let (full, _, _) = existing_training_data(application, training, base)?;
    fingerprint_files(&full)
}

type DataLocation = (std::path::PathBuf, Option<stratum_core::ir::FileFormat>, Vec<stratum_core::types::Field>);

fn existing_training_data(application: &Application, training: &Training, base: &Path) -> Result<DataLocation, Error> {
    let (path, format, fields) = training_data_location(application, training)?;
    let full = base.join(&path);
    if !full.exists() {
        return Err(Error::NoData {
            dataset: training.data.clone(),
            reason: format!(
                "{} does not exist yet; run what fills it first (`stratum run-pipeline`, `stratum run-batch`) or give a `path` to existing data",
                full.display()
            ),
        });
    }
    Ok((full, format, fields))
}

/// sha256 over every file of a dataset (all parts of a directory), in name order.
fn fingerprint_files(full: &Path) -> Result<String, Error> {
    let read_error = |error: std::io::Error| Error::Read { path: full.display().to_string(), source: error.into() };
    let mut bytes = Vec::new();
    for file in data::dataset_files(full).map_err(read_error)? {
        bytes.extend(std::fs::read(&file).map_err(read_error)?);
    }
    Ok(data::sha256_hex(&bytes))
}

/// Expands candidates into concrete (algorithm, params) combinations.
pub fn combinations(training: &Training, seed: u64) -> Vec<(String, Params)> {
    let mut random = Random::new(seed ^ 0xC0FFEE);
    let mut all = Vec::new();
    for candidate in &training.candidates {
        let mut grid: Vec<Params> = vec![Params::default()];
        for (name, space) in &candidate.parameters {
            let values: Vec<Value> = match space {
                ParameterSpace::Values { values } => values.clone(),
                ParameterSpace::Range { min, max, integer } => (0..SAMPLES_PER_RANGE)
                    .map(|_| {
                        // Wide positive ranges are sampled on a log scale, as C or alpha usually are.
                        let fraction = random.next_f64();
                        let value = if *min > 0.0 && max / min >= 100.0 {
                            (min.ln() + fraction * (max.ln() - min.ln())).exp()
                        } else {
                            min + fraction * (max - min)
                        };
                        if *integer { Value::Int(value.round() as i64) } else { Value::Float(value) }
                    })
                    .collect(),
            };
            grid = grid
                .into_iter()
                .flat_map(|params| {
                    values.iter().map(move |value| {
                        let mut next = params.clone();
                        next.0.insert(name.clone(), value.clone());
                        next
                    })
                })
                .collect();
        }
        // Integer ranges can draw the same value twice; each combination is evaluated once.
        for params in grid {
            let combination = (candidate.algorithm.clone(), params);
            if !all.contains(&combination) {
                all.push(combination);
            }
        }
    }
    if let Some(trials) = training.budget.trials
        && all.len() > trials as usize
    {
        random.shuffle(&mut all);
        all.truncate(trials as usize);
    }
    all
}

fn truth(target: &Target, rows: &[usize]) -> (Vec<usize>, Vec<f64>) {
    match target {
        Target::Classes { labels, .. } => (rows.iter().map(|row| labels[*row]).collect(), Vec::new()),
        Target::Values(values) => (Vec::new(), rows.iter().map(|row| values[*row]).collect()),
        Target::None => (Vec::new(), Vec::new()),
    }
}

/// Runs one task: prepare on the training rows, fit, predict the test rows, score.
fn run_task(
    examples: &Examples,
    training: &Training,
    split: &Split,
    algorithm: &str,
    params: &Params,
    seed: u64,
) -> Result<TaskOutcome, Error> {
    let started = Instant::now();
    let (preparation, train_x) = Preparation::fit_transform(examples, &split.train, training)?;
    let fitted = algorithms::fit(algorithm, params, &train_x, &examples.target.subset(&split.train), seed)?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let test_x = preparation.transform(examples, &split.test);
    let predictions = fitted.predict(&test_x);
    let (classes, values) = truth(&examples.target, &split.test);
    Ok(TaskOutcome { score: score(training.metric, &predictions, &classes, &values, &test_x), fit_seconds })
}

/// A training run made ready: the data loaded and fingerprinted, the examples, the folds, and the tasks of the
/// search — the same ones, in the same order, wherever it is made ready from the same data and seed. The tasks
/// can then run anywhere (worker threads here, agents on other machines) and [`TrainingRun::finish`] turns their
/// outcomes into the leaderboard and the refitted winner.
pub struct TrainingRun {
    model: String,
    task: Task,
    training: Training,
    seed: u64,
    table: Table,
    fingerprint: String,
    examples: Examples,
    candidates: Vec<(String, Params)>,
    folds: Vec<Split>,
    /// The examples the search and the refit use, the first ones; the rest are held out.
    train_rows: usize,
    /// The tasks, one per candidate and fold, to run anywhere.
    pub tasks: Vec<TrainingTask>,
}

/// Loads a model's data and lays out its search.
pub fn prepare_training(application: &Application, model: &str, base: &Path) -> Result<TrainingRun, Error> {
    prepare_retraining(application, model, base, 0.0)
}

/// Loads a model's data and lays out its search on all but the most recent `held_out` fraction of its rows (the
/// file's order is taken as time order), which are kept to judge the winner against the version that serves.
pub fn prepare_retraining(
    application: &Application,
    model: &str,
    base: &Path,
    held_out: f64,
) -> Result<TrainingRun, Error> {
    let (found, training) = training_of(application, model)?;
    let seed = training.seed.unwrap_or(0);
    let (table, fingerprint) = load_training_data(application, training, base)?;
    let examples = examples(&table, training, found.task)?;
    let candidates = combinations(training, seed);
    let held = (examples.rows as f64 * held_out.clamp(0.0, 1.0)).round() as usize;
    let train_rows = examples.rows - held;
    if held > 0 && train_rows < 2 {
        return Err(Error::NoData {
            dataset: training.data.clone(),
            reason: format!("{} rows are too few to hold {held} of them out and train on the rest", examples.rows),
        });
    }
    if let stratum_core::ir::Evaluation::Kfold { folds, .. } = training.evaluation
        && train_rows < folds as usize
    {
        return Err(Error::Invalid(format!(
            "dataset `{}`: {train_rows} rows to train on are fewer than the {folds} folds of `kfold({folds})`: add rows, or evaluate with fewer folds",
            training.data
        )));
    }
    let folds = splits(&training.evaluation, train_rows, &examples.target, seed);
    let tasks: Vec<TrainingTask> = candidates
        .iter()
        .flat_map(|(algorithm, params)| {
            (0..folds.len()).map(|fold| TrainingTask {
                data: fingerprint.clone(),
                algorithm: algorithm.clone(),
                params: params.clone(),
                fold,
                seed,
            })
        })
        .collect();
    Ok(TrainingRun {
        model: model.to_string(),
        task: found.task,
        training: training.clone(),
        seed,
        table,
        fingerprint,
        examples,
        candidates,
        folds,
        train_rows,
        tasks,
    })
}

impl TrainingRun {
    /// The fingerprint of the data the run was made ready from.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The time budget of the search, if the model has one.
    pub fn budget(&self) -> Option<Duration> {
        self.training.budget.time.map(|time| Duration::from_secs_f64(time.0))
    }

    /// How many tasks may run at once on this machine.
    pub fn parallel(&self) -> usize {
        self.training.parallel.max(1) as usize
    }

    /// Runs one task of the search.
    pub fn run(&self, task: &TrainingTask) -> Result<TaskOutcome, Error> {
        if task.data != self.fingerprint {
            return Err(Error::Invalid(format!(
                "the task is for data {}, not the data here ({})",
                task.data, self.fingerprint
            )));
        }
        let split =
            self.folds.get(task.fold).ok_or_else(|| Error::Invalid(format!("there is no fold {}", task.fold)))?;
        run_task(&self.examples, &self.training, split, &task.algorithm, &task.params, task.seed)
    }

    /// The leaderboard from the tasks' outcomes (in task order; `None` for a task that did not run), and the
    /// winner refitted on all the data. A failed task's reason is text: it may come from another machine, and
    /// the leaderboard shows it as it is.
    pub fn finish(
        self,
        outcomes: Vec<Option<Result<TaskOutcome, String>>>,
        elapsed: Duration,
    ) -> Result<TrainReport, Error> {
        self.finish_with(outcomes, elapsed, None)
    }

    /// The candidate refitted on all the data: what [`TrainingRun::finish`] does for the winner.
    fn refit(&self, algorithm: &str, params: &Params) -> Result<TrainedModel, Error> {
        let examples = &self.examples;
        let all_rows: Vec<usize> = (0..self.train_rows).collect();
        let (preparation, x) = Preparation::fit_transform(examples, &all_rows, &self.training)?;
        let target = examples.target.subset(&all_rows);
        let fitted = algorithms::fit(algorithm, params, &x, &target, self.seed)?;
        let classes = match &examples.target {
            Target::Classes { classes, .. } => classes.clone(),
            _ => Vec::new(),
        };
        Ok(TrainedModel { preparation, fitted, classes, task: self.task })
    }

    /// [`TrainingRun::finish`], given the refit of a candidate made beforehand: used when it is the winner.
    fn finish_with(
        self,
        outcomes: Vec<Option<Result<TaskOutcome, String>>>,
        elapsed: Duration,
        refitted: Option<(&str, &Params, Result<TrainedModel, Error>)>,
    ) -> Result<TrainReport, Error> {
        let (training, folds, model) = (&self.training, &self.folds, self.model.as_str());
        let higher = training.metric.higher_is_better();
        let mut entries = Vec::new();
        let mut skipped = 0;
        for (candidate, (algorithm, params)) in self.candidates.iter().enumerate() {
            let results = &outcomes[candidate * folds.len()..(candidate + 1) * folds.len()];
            if results.iter().any(Option::is_none) {
                skipped += 1;
                continue;
            }
            let mut scores = Vec::new();
            let mut seconds = 0.0;
            let mut error = None;
            for result in results.iter().flatten() {
                match result {
                    Ok(outcome) => {
                        scores.push(outcome.score);
                        seconds += outcome.fit_seconds;
                    }
                    Err(message) => error = Some(message.clone()),
                }
            }
            let mean = if scores.is_empty() { f64::NAN } else { scores.iter().sum::<f64>() / scores.len() as f64 };
            let std = if scores.len() < 2 {
                0.0
            } else {
                (scores.iter().map(|score| (score - mean).powi(2)).sum::<f64>() / scores.len() as f64).sqrt()
            };
            entries.push(Entry {
                rank: 0,
                algorithm: algorithm.clone(),
                params: params.clone(),
                mean,
                std,
                folds: scores,
                fit_seconds: seconds / folds.len() as f64,
                error,
            });
        }
        entries.sort_by(|a, b| {
            let (x, y) = (a.mean, b.mean);
            match (x.is_nan(), y.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ if higher => y.total_cmp(&x),
                _ => x.total_cmp(&y),
            }
        });
        for (rank, entry) in entries.iter_mut().enumerate() {
            entry.rank = rank + 1;
        }
        let leaderboard = Leaderboard { metric: training.metric, higher_is_better: higher, entries, skipped };
        let Some(best) = leaderboard.entries.first().filter(|entry| entry.error.is_none() && !entry.mean.is_nan())
        else {
            let reason = leaderboard
                .entries
                .iter()
                .find_map(|entry| entry.error.clone())
                .unwrap_or_else(|| "the time budget ran out before any candidate was evaluated".into());
            return Err(Error::Invalid(format!("no candidate of model `{model}` could be evaluated: {reason}")));
        };
        let (algorithm, params) = (best.algorithm.clone(), best.params.clone());
        let winner = match refitted {
            Some((refitted_algorithm, refitted_params, winner))
                if refitted_algorithm == algorithm && *refitted_params == params =>
            {
                winner?
            }
            _ => self.refit(&algorithm, &params)?,
        };
        let held_out = (self.train_rows < self.examples.rows).then(|| HeldOut::of(&self.examples, self.train_rows));
        Ok(TrainReport {
            model: model.to_string(),
            leaderboard,
            winner,
            algorithm,
            params,
            rows: self.train_rows,
            held_out,
            table: self.table,
            data_fingerprint: self.fingerprint,
            elapsed,
        })
    }
}

/// Trains one model of an application on this machine: the whole search on worker threads, then the refit of the
/// winner.
pub fn train(
    application: &Application,
    model: &str,
    base: &Path,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<TrainReport, Error> {
    let started = Instant::now();
    let run = prepare_training(application, model, base)?;
    train_prepared(run, started, on_progress)
}

/// Runs a training run made ready (started at `started`, which its time budget counts from) on this machine:
/// the whole search on worker threads, then the refit of the winner.
pub fn train_prepared(
    run: TrainingRun,
    started: Instant,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<TrainReport, Error> {
    let deadline = run.budget().map(|budget| started + budget);
    let workers = run.parallel().min(std::thread::available_parallelism().map_or(1, usize::from)).max(1);
    let tasks = &run.tasks;
    let outcomes: Mutex<Vec<Option<Result<TaskOutcome, String>>>> = Mutex::new(vec![None; tasks.len()]);
    // With a single candidate the winner is known from the start: its refit on all the data runs beside the
    // folds, first (the longest task first keeps the workers evenly busy), instead of alone after them.
    let single = match run.candidates.as_slice() {
        [(algorithm, params)] if workers > 1 => Some((algorithm.as_str(), params)),
        _ => None,
    };
    let refitted: Mutex<Option<Result<TrainedModel, Error>>> = Mutex::new(None);
    let first_task = usize::from(single.is_some());
    let next = AtomicUsize::new(0);
    let (finished, reports) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let finished = finished.clone();
            let (next, outcomes, run, refitted) = (&next, &outcomes, &run, &refitted);
            scope.spawn(move || {
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    if let Some((algorithm, params)) = single.filter(|_| index == 0) {
                        *refitted.lock().expect("no worker panics holding the lock") =
                            Some(run.refit(algorithm, params));
                        continue;
                    }
                    let index = index - first_task;
                    // Past the time budget no new task starts; what runs finishes.
                    if index >= tasks.len() || deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                        break;
                    }
                    // Kept as the leaderboard shows it, as a remote agent's outcome comes.
                    let outcome = run.run(&tasks[index]).map_err(|error| stratum_core::error_chain(&error));
                    outcomes.lock().expect("no worker panics holding the lock")[index] = Some(outcome);
                    let _ = finished.send(());
                }
            });
        }
        // Report progress as tasks finish; the channel closes when the last worker exits.
        drop(finished);
        let mut done = 0;
        on_progress(Progress { done, total: tasks.len(), elapsed: started.elapsed() });
        while reports.recv().is_ok() {
            done += 1;
            on_progress(Progress { done, total: tasks.len(), elapsed: started.elapsed() });
        }
    });
    let outcomes = outcomes.into_inner().expect("workers are done");
    let refitted = refitted.into_inner().expect("workers are done");
    let elapsed = started.elapsed();
    match (single, refitted) {
        (Some((algorithm, params)), Some(winner)) => {
            let (algorithm, params) = (algorithm.to_string(), params.clone());
            run.finish_with(outcomes, elapsed, Some((&algorithm, &params, winner)))
        }
        _ => run.finish(outcomes, elapsed),
    }
}

/// A prediction for one record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prediction {
    /// A classifier's: the class, and a probability for each class (in the model's class order).
    Class {
        /// The class predicted.
        label: String,
        /// A probability per class.
        probabilities: Vec<f64>,
    },
    /// A regressor's value.
    Value(f64),
    /// A clustering's cluster.
    Cluster(usize),
}

impl TrainedModel {
    /// The one inference entry point: prepare records (read by field name) and predict them.
    pub fn predict(&self, records: &[&dyn Fn(&str) -> stratum_core::eval::Datum]) -> Vec<Prediction> {
        let rows: Vec<Vec<f64>> = records.iter().map(|record| self.preparation.transform_record(*record)).collect();
        let x = crate::matrix::Matrix::from_rows(&rows);
        let mut x = x;
        if rows.is_empty() {
            x.columns = self.preparation.output_names.len();
        }
        match self.fitted.predict(&x) {
            Predictions::Classes { labels, probabilities, .. } => labels
                .into_iter()
                .zip(probabilities)
                .map(|(label, probabilities)| Prediction::Class {
                    label: self.classes.get(label).cloned().unwrap_or_default(),
                    probabilities,
                })
                .collect(),
            Predictions::Values(values) => values.into_iter().map(Prediction::Value).collect(),
            Predictions::Clusters(clusters) => clusters.into_iter().map(Prediction::Cluster).collect(),
        }
    }
}
