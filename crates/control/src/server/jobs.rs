//! Training on the agents, as the control plane runs it: a job per model search ([`crate::training::TrainingJob`]),
//! its tasks handed to agents with their heartbeats, and the scheduler ([`TrainingScheduler`], a [`Reconciler`])
//! that finishes the jobs whose tasks are done — leaderboard, refit, artifact in the store.

use super::{Cluster, Server, lock};
use crate::protocol::TrainingRequest;
use crate::reconcile::{Action, Reconciler};
use crate::serving::Refusal;
use crate::training::{JobState, TrainingJob};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use stratum_core::events::EventKind;
use stratum_core::ir::Tier;

/// How a training job is doing, as `GET /v1/training/{job}` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TrainingStatus {
    /// The job.
    pub job: u64,
    /// The model it trains.
    pub model: String,
    /// Its tasks.
    pub tasks: usize,
    /// Tasks finished.
    pub finished: usize,
    /// Tasks each agent ran.
    pub by_agent: BTreeMap<String, usize>,
    /// How it is doing.
    pub result: JobState,
}

/// How often the scheduler looks for finished jobs when no heartbeat wakes it (a job past its time budget ends
/// without one).
const SCHEDULER_INTERVAL: Duration = Duration::from_secs(1);

/// Finishes training jobs whose tasks are all done.
pub(crate) struct TrainingScheduler(pub(crate) Arc<Server>);

impl Reconciler for TrainingScheduler {
    type Error = std::convert::Infallible;

    fn name(&self) -> &'static str {
        "training"
    }

    async fn reconcile(&mut self) -> Result<Action, Self::Error> {
        self.0.finish_training_jobs();
        Ok(Action::Requeue(SCHEDULER_INTERVAL))
    }
}

impl Server {
    /// A model's search, run on the agents, from data already in the blob store.
    pub fn start_training(&self, request: TrainingRequest) -> Result<u64, Refusal> {
        let refused = |status: u16, message: String| Refusal { status, message, retry_after_seconds: None };
        let Some(blob) = crate::files::blob_path(&self.options.state_dir, &request.data_sha256) else {
            return Err(refused(400, format!("`{}` is not a sha256", request.data_sha256)));
        };
        let Ok(bytes) = std::fs::read(&blob) else {
            return Err(refused(404, format!("no blob {}: upload the data first", request.data_sha256)));
        };
        let id = lock(&self.cluster).jobs.keys().next_back().map_or(1, |last| last + 1);
        let base = self.options.state_dir.join("training").join(id.to_string());
        let job = crate::training::lay_out(&request.application, &request.model, &base, &bytes)
            .and_then(|()| TrainingJob::new(id, request.application, &request.model, base, &request.data_sha256))
            // The refusal's message is the answer's text.
            .map_err(|error| refused(400, stratum_core::error_chain(&error)))?;
        let message = format!(
            "{} tasks on the agents{}",
            job.total(),
            job.tier.map(|tier| format!(" of the {} tier", tier.name())).unwrap_or_default()
        );
        let model = job.model.clone();
        lock(&self.cluster).jobs.insert(id, job);
        self.event(EventKind::Training, Some(&model), &message);
        Ok(id)
    }

    /// How training job `job` is doing, if there is one.
    pub fn training_status(&self, job: u64) -> Option<TrainingStatus> {
        let cluster = lock(&self.cluster);
        let job = cluster.jobs.get(&job)?;
        Some(TrainingStatus {
            job: job.id,
            model: job.model.clone(),
            tasks: job.total(),
            finished: job.finished(),
            by_agent: job.by_agent.clone(),
            result: job.state.clone(),
        })
    }

    /// Takes an agent's training results and gives it tasks of running jobs, if its tier trains them.
    pub(super) fn train_on_agent(
        &self,
        cluster: &mut Cluster,
        agent: &str,
        tier: Option<Tier>,
        results: Vec<crate::protocol::TrainingResult>,
        slots: usize,
    ) -> Vec<crate::protocol::TrainingWork> {
        for result in results {
            if let Some(job) = cluster.jobs.get_mut(&result.job) {
                job.record(agent, result);
            }
        }
        // Most heartbeats come while nothing trains: the fleet is not listed for them.
        if !cluster.jobs.values().any(|job| job.state == JobState::Running) {
            return Vec::new();
        }
        let live: Vec<(String, Option<Tier>, bool)> = cluster
            .agents
            .iter()
            .map(|(name, record)| {
                (name.clone(), record.join.tier.or_else(|| self.planned_tier(cluster, name)), record.lost)
            })
            .collect();
        let lost = |name: &str| live.iter().any(|(other, _, lost)| other == name && *lost);
        let mut work = Vec::new();
        for job in cluster.jobs.values_mut() {
            // The model's `train_on` tier trains it when one of its agents is alive; any agent otherwise.
            let tier_alive =
                job.tier.is_some_and(|wanted| live.iter().any(|(_, tier, lost)| *tier == Some(wanted) && !lost));
            if tier_alive && job.tier != tier {
                continue;
            }
            let peers = live.iter().filter(|(_, tier, lost)| !lost && (!tier_alive || *tier == job.tier)).count();
            let remaining = slots.saturating_sub(work.len());
            work.extend(job.hand_out(agent, remaining, peers, lost));
        }
        work
    }

    /// Finishes the jobs whose tasks are all done: leaderboard, refit, artifact in the store.
    pub(super) fn finish_training_jobs(self: &Arc<Self>) {
        let ready: Vec<u64> =
            lock(&self.cluster).jobs.values().filter(|job| job.complete()).map(|job| job.id).collect();
        for id in ready {
            // Marked as no longer running at once, so that one finish runs; the result replaces it.
            let snapshot = {
                let mut cluster = lock(&self.cluster);
                let Some(job) = cluster.jobs.get_mut(&id) else { continue };
                job.state = JobState::Finishing;
                job.clone()
            };
            let server = self.clone();
            tokio::task::spawn_blocking(move || {
                let store = stratum_ml::ModelStore::new(server.options.state_dir.join("models"));
                let state = snapshot.finish(&store);
                let message = match &state {
                    JobState::Done { version, algorithm, metric, score } => {
                        format!("trained v{version} on the agents: {algorithm}, {metric} {score:.3}")
                    }
                    JobState::Failed { reason } => format!("training failed: {reason}"),
                    JobState::Running | JobState::Finishing => String::new(),
                };
                server.event(EventKind::Training, Some(&snapshot.model), &message);
                if let Some(job) = lock(&server.cluster).jobs.get_mut(&id) {
                    job.state = state;
                }
            });
        }
    }
}
