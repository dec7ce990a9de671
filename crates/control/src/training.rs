//! Training on the agents: the control plane lays out a model's search (the same tasks, in the same order, as a
//! one-machine run with the same seed), hands its (candidate, fold) tasks to the agents of the model's `train_on`
//! tier — a few at a time each, so that with several agents the tasks spread over the machines — collects the
//! outcomes, and assembles the leaderboard and refits the winner itself, saving it in its model store. The data
//! travels as a content-addressed blob: uploaded once, fetched by each agent by its sha256 and checked.

use crate::Error;
use crate::protocol::{TrainingResult, TrainingWork};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use stratum_core::Cause;
use stratum_core::ir::{Application, ModelOrigin, Tier};
use stratum_ml::search::{TaskOutcome, TrainingTask, prepare_training, training_data_location, training_of};

/// A task handed out is handed out again when its agent has not answered within this time.
const TASK_TIMEOUT: Duration = Duration::from_secs(120);
/// For this long after a job starts, an agent takes at most its share of the tasks (the tasks over the agents
/// that can train it), so that they spread over the machines even when one asks first and works fast; then
/// whoever has a free core takes what is left, so that a slow or silent agent holds nobody up.
const FAIR_SHARE_WINDOW: Duration = Duration::from_secs(3);

/// How a job is doing, as `GET /v1/training/{job}` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// Tasks are running on the agents.
    Running,
    /// Every task is done; the leaderboard is being assembled and the winner refitted.
    Finishing,
    /// The winner is stored.
    Done {
        /// Its version.
        version: u32,
        /// Its algorithm.
        algorithm: String,
        /// The metric it was judged by.
        metric: String,
        /// Its score.
        score: f64,
    },
    /// The job failed.
    Failed {
        /// Why.
        reason: String,
    },
}

/// A training job: a model's search split into tasks for the agents.
#[derive(Clone)]
pub struct TrainingJob {
    /// Its number.
    pub id: u64,
    /// The model.
    pub model: String,
    /// The application, as checked.
    pub application: Application,
    /// Where the job's data is laid out as the application expects it.
    pub base: PathBuf,
    /// The tier whose agents train, from the model's `train_on` (any agent when it names none).
    pub tier: Option<Tier>,
    tasks: Vec<TrainingTask>,
    outcomes: Vec<Option<Result<TaskOutcome, String>>>,
    given: Vec<Option<(String, Instant)>>,
    started: Instant,
    budget: Option<Duration>,
    /// Tasks each agent ran.
    pub by_agent: BTreeMap<String, usize>,
    /// How it is doing.
    pub state: JobState,
}

/// Where a model's training data goes under `base`: the dataset's path as the application writes it.
pub fn data_path(application: &Application, model: &str, base: &Path) -> Result<PathBuf, Error> {
    let failed = |source: Cause| Error::Model { model: model.into(), source };
    let (_, training) = training_of(application, model).map_err(|error| failed(error.into()))?;
    let (path, _, _) = training_data_location(application, training).map_err(|error| failed(error.into()))?;
    let relative = Path::new(&path);
    if relative.is_absolute() || relative.components().any(|part| matches!(part, std::path::Component::ParentDir)) {
        return Err(failed(
            format!("its data path `{path}` must stay inside the application's folder to be shipped").into(),
        ));
    }
    Ok(base.join(relative))
}

/// Writes a blob where the application reads the model's data, once.
pub fn lay_out(application: &Application, model: &str, base: &Path, bytes: &[u8]) -> Result<(), Error> {
    let path = data_path(application, model, base)?;
    if path.is_file() {
        return Ok(());
    }
    let io = |error: std::io::Error| Error::Model {
        model: model.into(),
        source: format!("{}: {error}", path.display()).into(),
    };
    // An agent's tasks of one job may lay the data out at the same time: each writes whole, on its own.
    crate::files::write_whole(&path, bytes).map_err(io)
}

impl TrainingJob {
    /// Lays out the search of `model` from the data under `base`, which must hash to `data_sha256`.
    pub fn new(
        id: u64,
        application: Application,
        model: &str,
        base: PathBuf,
        data_sha256: &str,
    ) -> Result<TrainingJob, Error> {
        let failed = |source: Cause| Error::Model { model: model.into(), source };
        let (tasks, budget) = {
            let run = prepare_training(&application, model, &base).map_err(|error| failed(error.into()))?;
            if run.fingerprint() != data_sha256 {
                return Err(failed(format!("the data hashes to {}, not {data_sha256}", run.fingerprint()).into()));
            }
            (run.tasks.clone(), run.budget())
        };
        let tier = application.models.iter().find(|item| item.name == model).and_then(|item| match &item.origin {
            ModelOrigin::Trained(training) => training.placement.tier.or_else(|| {
                let pool = training.placement.pool.as_ref()?;
                application.pools.iter().find(|candidate| &candidate.name == pool).map(|pool| pool.machine.tier)
            }),
            ModelOrigin::Onnx { .. } => None,
        });
        let count = tasks.len();
        Ok(TrainingJob {
            id,
            model: model.into(),
            application,
            base,
            tier,
            tasks,
            outcomes: vec![None; count],
            given: vec![None; count],
            started: Instant::now(),
            budget,
            by_agent: BTreeMap::new(),
            state: JobState::Running,
        })
    }

    /// Tasks in all.
    pub fn total(&self) -> usize {
        self.tasks.len()
    }

    /// Tasks finished.
    pub fn finished(&self) -> usize {
        self.outcomes.iter().filter(|outcome| outcome.is_some()).count()
    }

    fn past_budget(&self) -> bool {
        self.budget.is_some_and(|budget| self.started.elapsed() >= budget)
    }

    /// Up to `slots` tasks for `agent`, one of `peers` agents that can train the job: those never given, or
    /// given to an agent that is lost or silent too long; at first no more than its share (see
    /// `FAIR_SHARE_WINDOW`).
    pub fn hand_out(
        &mut self,
        agent: &str,
        slots: usize,
        peers: usize,
        lost: impl Fn(&str) -> bool,
    ) -> Vec<TrainingWork> {
        if self.state != JobState::Running || self.past_budget() {
            return Vec::new();
        }
        let slots = if peers > 1 && self.started.elapsed() < FAIR_SHARE_WINDOW {
            let share = self.tasks.len().div_ceil(peers);
            let held = self.given.iter().flatten().filter(|(holder, _)| holder == agent).count();
            slots.min(share.saturating_sub(held))
        } else {
            slots
        };
        let mut work = Vec::new();
        for index in 0..self.tasks.len() {
            if work.len() >= slots {
                break;
            }
            let free = self.outcomes[index].is_none()
                && self.given[index]
                    .as_ref()
                    .is_none_or(|(holder, when)| lost(holder) || when.elapsed() > TASK_TIMEOUT);
            if free {
                self.given[index] = Some((agent.to_string(), Instant::now()));
                work.push(TrainingWork {
                    job: self.id,
                    index,
                    model: self.model.clone(),
                    application: self.application.clone(),
                    task: self.tasks[index].clone(),
                });
            }
        }
        work
    }

    /// Takes a task's result from `agent`.
    pub fn record(&mut self, agent: &str, result: TrainingResult) {
        if let Some(slot) = self.outcomes.get_mut(result.index)
            && slot.is_none()
        {
            *slot = Some(result.outcome);
            *self.by_agent.entry(agent.to_string()).or_default() += 1;
        }
    }

    /// Every task has an outcome; or the budget has passed and none is still out, or what is still out has had
    /// the task timeout to come back (its agent may be gone).
    pub fn complete(&self) -> bool {
        let outstanding_done =
            || self.given.iter().zip(&self.outcomes).all(|(given, outcome)| given.is_none() || outcome.is_some());
        let waited_enough = || self.budget.is_some_and(|budget| self.started.elapsed() >= budget + TASK_TIMEOUT);
        self.state == JobState::Running
            && !self.outcomes.is_empty()
            && (self.outcomes.iter().all(Option::is_some)
                || self.past_budget() && (outstanding_done() || waited_enough()))
    }

    /// Assembles the leaderboard, refits the winner and saves it in `store`; the job's new state.
    pub fn finish(&self, store: &stratum_ml::ModelStore) -> JobState {
        let finished = || -> Result<JobState, stratum_ml::Error> {
            let run = prepare_training(&self.application, &self.model, &self.base)?;
            let report = run.finish(self.outcomes.clone(), self.started.elapsed())?;
            let item = self.application.models.iter().find(|item| item.name == self.model);
            let item = item.ok_or_else(|| stratum_ml::Error::Invalid("no such model".into()))?;
            let (artifact, _) = store.save(&report, item.inputs.clone(), item.output.clone())?;
            Ok(JobState::Done {
                version: artifact.version,
                algorithm: artifact.algorithm,
                metric: artifact.metric.name().into(),
                score: artifact.score,
            })
        };
        // The job's state is what `GET /v1/training/{job}` answers: the reason is text.
        finished().unwrap_or_else(|error| JobState::Failed { reason: stratum_core::error_chain(&error) })
    }
}
