//! What agents and the control plane say to each other: JSON over HTTP, always from the agent to the server (edge
//! machines sit behind NAT), with the cluster's join token as the bearer token. An agent joins with what it is;
//! then it heartbeats every second with what it runs, its components' metrics, its services' replicas, what its
//! process uses and the latest records of the dashboards' streams it runs; the answer is what it should run.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use stratum_core::ir::{Application, Tier};
use stratum_dataplane::metrics::MetricsSnapshot;

pub use crate::usage::MeasuredResources;
use crate::usage::Usage;

/// `POST /v1/agents/join`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Join {
    /// The agent's name.
    pub name: String,
    /// The tier the agent says it is on; the application's node of the same name decides when it says none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// What it measured of its machine.
    pub resources: MeasuredResources,
    /// Where other agents send it data (`host:port`).
    pub data_address: String,
    /// Where it answers predictions for the services it runs (`host:port`), when it serves an API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_address: Option<String>,
}

/// `POST /v1/agents/{name}/heartbeat`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The key of the assignment it runs, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<String>,
    /// Its components' counters.
    #[serde(default)]
    pub metrics: Vec<MetricsSnapshot>,
    /// What went wrong since the last heartbeat (a model that failed its check, a component that failed to
    /// start), for the control plane's events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Training tasks it finished since the last heartbeat.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<TrainingResult>,
    /// How many more training tasks it would take now.
    #[serde(default)]
    pub training_slots: usize,
    /// What its batches and tools did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<AgentEvent>,
    /// The replicas of the services it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<crate::serving::ServiceState>,
    /// What its process used since the last heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The latest records of the streams and sources it runs that a dashboard panel shows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feeds: Vec<FeedReport>,
    /// Checkpoints of the streams it runs that changed since it last sent them (every few seconds at most).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<CheckpointCopy>,
    /// Streams whose checkpoint it sent and that ended cleanly since: nothing of them is left to hand over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints_removed: Vec<String>,
    /// The states of streams it was told to hand over (see [`HeartbeatAnswer::hand_over`]), written as they left
    /// it; an empty file: the stream held nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handed_over: Vec<CheckpointCopy>,
}

/// A stream's checkpoint file, as an agent wrote it (its text names the stream's fingerprint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointCopy {
    /// The stream.
    pub component: String,
    /// The checkpoint file's text.
    pub file: String,
}

/// The newest records of a dashboard's stream on one agent, each a row of JSON values in the order of `fields`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedReport {
    /// The stream or source.
    pub source: String,
    /// Its fields.
    pub fields: Vec<stratum_core::types::Field>,
    /// Its newest records.
    pub rows: Vec<Vec<serde_json::Value>>,
}

impl FeedReport {
    /// At most this many records of a feed go with a heartbeat: enough for a panel, small on the wire.
    pub const RECORDS: usize = 200;

    /// The newest records (at most [`FeedReport::RECORDS`]) of `feed`, which follows `source`.
    pub fn of(source: &str, feed: &stratum_dataplane::sinks::feed::Feed) -> FeedReport {
        FeedReport {
            source: source.to_string(),
            fields: feed.fields.as_ref().clone(),
            rows: feed
                .newest(Self::RECORDS)
                .iter()
                .map(|record| record.iter().map(stratum_dataplane::record::datum_to_json).collect())
                .collect(),
        }
    }

    /// The records again, typed by the fields (a value that does not fit is missing).
    pub fn records(&self) -> Vec<stratum_dataplane::record::Record> {
        self.rows
            .iter()
            .map(|row| {
                self.fields
                    .iter()
                    .zip(row)
                    .map(|(field, value)| {
                        stratum_ml::data::json_cell(Some(value), &field.data_type)
                            .unwrap_or(stratum_core::eval::Datum::Null)
                    })
                    .collect()
            })
            .collect()
    }
}

/// Something a batch or a tool on an agent did, for the control plane's events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentEvent {
    /// The batch or tool.
    pub component: String,
    /// What happened.
    pub kind: stratum_core::events::EventKind,
    /// What happened, for people.
    pub message: String,
}

/// The answer to a heartbeat: what to run, unless the agent runs it already.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    /// What to run, when it differs from what the agent runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<Assignment>,
    /// With an assignment: checkpoints of streams it takes over from a lost agent, to take up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub take_up: Vec<CheckpointCopy>,
    /// With an assignment: streams whose state went on on another agent; a checkpoint of them here is stale.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discard_checkpoints: Vec<String>,
    /// With an assignment: streams that move from this agent to another while both run. They leave by handing
    /// their state over (sent back in `Heartbeat::handed_over`), emitting nothing, so that the next agent goes on
    /// with their open windows instead of both emitting half of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hand_over: Vec<String>,
    /// Training tasks to run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub training: Vec<TrainingWork>,
    /// The streams whose checkpoint (or state handed over) from this heartbeat the control plane kept, durably:
    /// what they hold may be acknowledged to its sources. Others are not kept (the stream runs elsewhere now).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints_kept: Vec<String>,
    /// How long the agent holds its stateful streams, counted from when it sent this heartbeat: the control
    /// plane's agent timeout (see `stratum_dataplane::lease`); none (0) to an agent that has no assignment yet.
    pub lease_milliseconds: u64,
    /// How often to heartbeat from now on: it grows with the fleet (see `Server::heartbeat_interval`), so agents
    /// that joined a small fleet slow down as it grows. None from a control plane that does not say (keep the
    /// interval told at the join).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_milliseconds: Option<u64>,
}

/// One (candidate, fold) task of a model's search, for an agent: it fetches the data by its sha256
/// (`GET /v1/blobs/SHA256`), puts it where the application reads it, makes the search ready exactly as the
/// control plane did, and runs the task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingWork {
    /// The job.
    pub job: u64,
    /// The task's place in the job.
    pub index: usize,
    /// The model.
    pub model: String,
    /// The application, as the control plane checked it.
    pub application: Application,
    /// The candidate and fold to fit and score.
    pub task: stratum_ml::search::TrainingTask,
}

/// What a task of a training job came to, as an agent reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingResult {
    /// The job.
    pub job: u64,
    /// The task's place in the job.
    pub index: usize,
    /// Its score and fit time, or why it failed: text, as it crosses the wire from the agent that ran it.
    pub outcome: Result<stratum_ml::search::TaskOutcome, String>,
}

/// `POST /v1/training`: train a model of an application on the agents, from data uploaded as a blob.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainingRequest {
    /// The application, checked.
    pub application: Application,
    /// The model to train.
    pub model: String,
    /// The sha256 of the uploaded data.
    pub data_sha256: String,
}

/// What one agent runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// Identifies the assignment: equal keys, equal assignments.
    pub key: String,
    /// The application (its part is named by `components`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<Application>,
    /// The application's version.
    pub version: u32,
    /// The components it runs.
    pub components: Vec<String>,
    /// The paths into it.
    pub inputs: Vec<PathIn>,
    /// The paths out of it.
    pub outputs: Vec<PathOut>,
    /// The models it loads.
    pub models: Vec<ModelRef>,
}

/// A path into the agent; `key` (hex) authenticates its frames (`stratum_dataplane::transfer::PathKey`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PathIn {
    /// The path's name.
    pub path: String,
    /// The producer on the other machine.
    pub producer: String,
    /// The path's key.
    pub key: String,
}

/// A path out of the agent for `consumers`, to the agent that runs them, or — while none does — a waiting path
/// whose entries stay in its log (see `stratum_dataplane::remote::waiting_path_name`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PathOut {
    /// The path's name.
    pub path: String,
    /// The local producer it carries.
    pub producer: String,
    /// The components it leads to.
    pub consumers: Vec<String>,
    /// The agent it leads to; none for a waiting path.
    pub to: Option<PathTo>,
}

/// Where a path leads: the data address of the agent `agent` (whose certificate names it, and on a cluster with
/// TLS hashes to `certificate_sha256`: the one the control plane issued at its latest join); `key` as in
/// [`PathIn`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PathTo {
    /// The agent.
    pub agent: String,
    /// Its data address.
    pub address: String,
    /// The path's key.
    pub key: String,
    /// The sha256 of the certificate issued at its latest join (TLS only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_sha256: Option<String>,
}

/// A model artifact an agent needs, by the sha256 of its file: fetched from `GET /v1/models/{name}/{version}`
/// and refused if its bytes do not hash to `sha256`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ModelRef {
    /// The model.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// The sha256 of its artifact file.
    pub sha256: String,
}
