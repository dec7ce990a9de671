//! What the API answers, as types: each derives its JSON schema for the OpenAPI document. `describe.rs`
//! builds them from the running application.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use stratum_control::serving::ErrorCode;
use stratum_lang::codes::{Code, Severity};

stratum_core::vocabulary! {
    /// What the application is doing, as far as the API can tell.
    pub enum PhaseName {
        /// Its first version is starting (models train).
        Starting = "starting",
        /// It runs.
        Running = "running",
        /// A new version was applied; the old one drains and the new one starts.
        Restarting = "restarting",
        /// Its last start failed (the app view says why).
        Failed = "failed",
    }
}

/// The JSON schema of a vocabulary: a string that is one of its string forms.
fn one_of(names: impl Iterator<Item = &'static str>) -> Schema {
    let names: Vec<&str> = names.collect();
    schemars::json_schema!({ "type": "string", "enum": names })
}

fn error_code_schema(_: &mut SchemaGenerator) -> Schema {
    one_of(ErrorCode::ALL.iter().map(|code| code.as_str()))
}

fn phase_schema(_: &mut SchemaGenerator) -> Schema {
    one_of(PhaseName::ALL.iter().map(|phase| phase.as_str()))
}

fn diagnostic_code_schema(_: &mut SchemaGenerator) -> Schema {
    one_of(Code::ALL.iter().map(|code| code.as_str()))
}

fn severity_schema(_: &mut SchemaGenerator) -> Schema {
    one_of(Severity::ALL.iter().map(|severity| severity.as_str()))
}

/// An error: a stable code to act on and a message for people.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// A stable code to act on.
    #[schemars(schema_with = "error_code_schema")]
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

/// The application and how it runs.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct AppView {
    /// None until the first version has started.
    pub name: Option<String>,
    /// The running version; none until one has started.
    pub version: Option<u32>,
    /// What the application is doing.
    #[schemars(schema_with = "phase_schema")]
    pub phase: PhaseName,
    /// Why the last start failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Seconds since the running version started.
    pub uptime_seconds: f64,
    /// The `.stratum` file the editor shows.
    pub source_file: String,
    /// The MQTT broker components without one of their own use, if any.
    pub broker_url: Option<String>,
    /// Components of the plan that do not run, with why.
    pub not_running: Vec<NotRunning>,
    /// Whether the caller may apply new versions (an operator).
    pub can_apply: bool,
}

/// A component of the plan that does not run.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct NotRunning {
    /// The component.
    pub component: String,
    /// Why it does not run.
    pub reason: String,
}

/// The application's `.stratum` file.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct SourceView {
    /// Its path.
    pub file: String,
    /// Its text.
    pub text: String,
}

/// The plan of the running version, as `stratum plan --format json` prints it.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PlanView {
    /// The running version.
    pub version: u32,
    /// The plan.
    pub plan: Value,
}

/// The application as a graph: tiers as bands, machines in them, components on machines, data paths as edges.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Topology {
    /// Each tier with its machines.
    pub tiers: Vec<TierView>,
    /// The data paths.
    pub edges: Vec<EdgeView>,
}

/// A tier and its machines.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct TierView {
    /// `edge`, `fog` or `cloud`.
    pub tier: String,
    /// Its machines.
    pub nodes: Vec<NodeView>,
}

/// A machine of the plan, with its components.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct NodeView {
    /// Its name.
    pub name: String,
    /// Its tier.
    pub tier: String,
    /// The pool the machine belongs to, if any.
    pub pool: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its cores.
    pub cpu_capacity: f64,
    /// The cores its components are planned to take.
    pub cpu_planned: f64,
    /// Its memory, in bytes.
    pub memory_capacity_bytes: u64,
    /// The memory its components are planned to take, in bytes.
    pub memory_planned_bytes: u64,
    /// The components on it.
    pub components: Vec<ComponentView>,
    /// For an agent on its own machine: heard from within the timeout, and what its process uses.
    pub alive: Option<bool>,
    /// CPU of the agent's process, in percent of one core.
    pub cpu_percent: Option<f64>,
    /// Memory of the agent's process, in bytes.
    pub memory_used_bytes: Option<u64>,
}

/// A data path: records of `from` read by `to`, between the machines they run on.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct EdgeView {
    /// The producer.
    pub from: String,
    /// The consumer.
    pub to: String,
    /// The machine the producer runs on.
    pub from_node: String,
    /// The machine the consumer runs on.
    pub to_node: String,
    /// Records per second on the path over the last second (the producer's output rate).
    pub events_per_second: Option<f64>,
}

/// A component with its counters and rates.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ComponentView {
    /// Its name.
    pub name: String,
    /// `source`, `stream`, `sink`, `service`, `batch`, `training` or `tool`.
    pub kind: String,
    /// Running in the data plane now (batches, training and tools are not: see the events).
    pub running: bool,
    /// Records taken in.
    pub events_in: u64,
    /// Records sent on.
    pub events_out: u64,
    /// Errors.
    pub errors: u64,
    /// Records sent to the dead letters.
    pub dead_letters: u64,
    /// Records waiting.
    pub queue_depth: u64,
    /// Records taken in per second over the last second.
    pub in_per_second: Option<f64>,
    /// Records sent on per second over the last second.
    pub out_per_second: Option<f64>,
    /// The 99th percentile of the time to process a batch over the last second, in milliseconds.
    pub p99_ms: Option<f64>,
}

/// An agent: one per machine, with its components. Agents on their own machines (`stratum server`) also say
/// whether they are alive and what their process uses; the in-process agents of `stratum up` do not.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct AgentView {
    /// Its name.
    pub name: String,
    /// Its tier.
    pub tier: String,
    /// The pool it is a member of, if any.
    pub pool: Option<String>,
    /// Its cores.
    pub cpu: f64,
    /// Its memory, in bytes.
    pub memory_bytes: u64,
    /// The components it runs.
    pub components: Vec<ComponentView>,
    /// Heard from within the timeout; none for in-process agents.
    pub alive: Option<bool>,
    /// Seconds since its last heartbeat; none for in-process agents.
    pub seconds_since_heartbeat: Option<f64>,
    /// The machine's architecture, as the agent measured it.
    pub arch: Option<String>,
    /// Free space on the disk of the agent's data directory, as it measured when it joined.
    pub disk_free_bytes: Option<u64>,
    /// CPU of the agent's process over its last heartbeat, in percent of one core.
    pub cpu_percent: Option<f64>,
    /// Memory of the agent's process, in bytes.
    pub memory_used_bytes: Option<u64>,
}

/// The agents.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct AgentsView {
    /// Every agent.
    pub agents: Vec<AgentView>,
}

/// The components.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ComponentsView {
    /// Every component of the running version.
    pub components: Vec<ComponentView>,
}

/// An inference service now: replicas, load and latency against its targets.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ServiceView {
    /// Its name.
    pub name: String,
    /// The model it serves.
    pub model: String,
    /// The model's version it serves now.
    pub model_version: Option<u32>,
    /// `stream NAME` or `http`.
    pub input: String,
    /// Replicas now.
    pub replicas: u64,
    /// Requests being answered now.
    pub in_flight: u64,
    /// The fewest replicas it scales to.
    pub min_replicas: u32,
    /// The most replicas it scales to.
    pub max_replicas: u32,
    /// Requests per second over the last second.
    pub requests_per_second: Option<f64>,
    /// Records per second through the stream part.
    pub processed_per_second: Option<f64>,
    /// The median latency over the last second, in milliseconds.
    pub p50_ms: Option<f64>,
    /// The 95th percentile latency, in milliseconds.
    pub p95_ms: Option<f64>,
    /// The 99th percentile latency, in milliseconds.
    pub p99_ms: Option<f64>,
    /// Its latency targets, each against what was measured.
    pub targets: Vec<TargetView>,
    /// Every latency target met over the last second (none without measurements).
    pub meets_targets: Option<bool>,
    /// Replicas started from zero.
    pub cold_starts: u64,
    /// Requests turned away (429 and 503).
    pub rejected: u64,
}

/// A latency target against what was measured.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct TargetView {
    /// `p99 <= 20 ms`
    pub target: String,
    /// The percentile (0.99 for p99).
    pub percentile: f64,
    /// The bound, in milliseconds.
    pub at_most_ms: f64,
    /// What was measured over the last second, in milliseconds.
    pub measured_ms: Option<f64>,
    /// Whether it was met; none without measurements.
    pub met: Option<bool>,
}

/// The services.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ServicesView {
    /// Every service.
    pub services: Vec<ServiceView>,
}

/// The models of the application: what the store holds, and which services serve them.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ModelsView {
    /// Every model.
    pub models: Vec<ModelView>,
}

/// A model: what the store holds of it, and which services serve it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ModelView {
    /// Its name.
    pub name: String,
    /// `classification`, `regression`, `clustering` or `forecasting`.
    pub task: String,
    /// The metric it is judged by.
    pub metric: String,
    /// The services that serve it, with the version each serves.
    pub served_by: Vec<ServedBy>,
    /// Stored versions, newest first; each with its training run's leaderboard and profile.
    pub versions: Vec<ModelVersionView>,
}

/// A service serving a model.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ServedBy {
    /// The service.
    pub service: String,
    /// The model's version it serves.
    pub version: u32,
}

/// A stored version of a model.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ModelVersionView {
    /// Its version.
    pub version: u32,
    /// Seconds since 1970.
    pub created: u64,
    /// The winning algorithm.
    pub algorithm: String,
    /// Its hyperparameters.
    pub params: Value,
    /// The metric it was judged by.
    pub metric: String,
    /// Its score.
    pub score: f64,
    /// How many rows it was trained on.
    pub rows: usize,
    /// The sha256 of the model.
    pub sha256: String,
    /// The sha256 of its training data.
    pub data_sha256: String,
    /// How it ran on the machine that trained it.
    pub profile: ProfileView,
    /// Every candidate's scores.
    pub leaderboard: Vec<LeaderboardEntry>,
    /// Candidates the time budget left out.
    pub skipped: usize,
}

/// How a model runs on the machine that trained it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ProfileView {
    /// One record at a time, preparation included: the median, in microseconds.
    pub latency_p50_us: f64,
    /// One record at a time: the 99th percentile, in microseconds.
    pub latency_p99_us: f64,
    /// Records per second in a batch.
    pub batch_rows_per_second: f64,
    /// The training process's peak memory, when known.
    pub peak_memory_bytes: Option<u64>,
    /// The model's size.
    pub size_bytes: u64,
    /// The machine it was measured on.
    pub machine: String,
}

/// One candidate of a training run.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct LeaderboardEntry {
    /// Its rank, 1 the best.
    pub rank: usize,
    /// The algorithm.
    pub algorithm: String,
    /// Its hyperparameters.
    pub params: Value,
    /// The mean score over the folds.
    pub mean: f64,
    /// The scores' standard deviation.
    pub std: f64,
    /// Mean seconds to fit one fold.
    pub fit_seconds: f64,
    /// Why it could not be evaluated, if it could not.
    pub error: Option<String>,
}

/// The latest events.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct EventsView {
    /// Newest first.
    pub events: Vec<EventView>,
}

/// Something that happened to the application.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct EventView {
    /// Its id, increasing.
    pub id: i64,
    /// When, in milliseconds since 1970.
    pub at_milliseconds: i64,
    /// Its kind (`agent-lost`, `scaled` …).
    pub kind: String,
    /// The component (or agent) it concerns, if one.
    pub component: Option<String>,
    /// What happened, for people.
    pub message: String,
}

/// Samples of metric series: `timestamps_milliseconds[i]` is when `series[name][i]` was measured.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct SeriesView {
    /// When each sample was taken, in milliseconds since 1970.
    pub timestamps_milliseconds: Vec<i64>,
    /// Each series' samples, by series name; none where it had no value.
    pub series: BTreeMap<String, Vec<Option<f64>>>,
}

/// The dashboards.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct DashboardsView {
    /// Every dashboard the file declares.
    pub dashboards: Vec<DashboardView>,
}

/// A dashboard with its panels.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct DashboardView {
    /// Its name.
    pub name: String,
    /// Its panels.
    pub panels: Vec<PanelView>,
}

/// A panel of a dashboard the file declares, with its data now.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PanelView {
    /// Its title.
    pub title: String,
    /// `line`, `bar`, `table`, `stat` or `map` (shown as a table).
    pub chart: String,
    /// The stream or source it shows.
    pub source: String,
    /// The field it shows, if one.
    pub field: Option<String>,
    /// The field it groups by, if one.
    pub group_by: Option<String>,
    /// Its data now.
    pub data: PanelData,
}

/// A panel's data, by the chart it is.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PanelData {
    /// One line per group: (event time in milliseconds, value) points.
    Lines {
        /// The lines.
        lines: Vec<Line>,
    },
    /// The sum of the field per group over the records held.
    Bars {
        /// The bars.
        bars: Vec<Bar>,
    },
    /// The latest records.
    Table {
        /// The columns.
        columns: Vec<String>,
        /// The rows, newest first.
        rows: Vec<Vec<Value>>,
    },
    /// One number: the latest value of the field, or how many records.
    Stat {
        /// The latest value, if any.
        value: Option<f64>,
        /// How many records the feed holds.
        records: usize,
    },
    /// The source has no feed here (not running, or not a stream or source).
    Empty {
        /// Why.
        reason: String,
    },
}

/// One line of a line chart.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Line {
    /// Its group.
    pub label: String,
    /// Its points.
    pub points: Vec<(i64, f64)>,
}

/// One bar of a bar chart.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Bar {
    /// Its group.
    pub label: String,
    /// Its value.
    pub value: f64,
}

/// Text to check (and plan), as the editor holds it; `stratum apply` also sends the files it imports.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct SourceText {
    /// The `.stratum` text.
    pub source: String,
    /// Files the source imports, by their path relative to the application's file; those not given are read
    /// from the application's folder. Applying writes them there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
}

/// What checking and planning a text found.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct CheckReport {
    /// No errors, and a plan.
    pub ok: bool,
    /// How many errors.
    pub errors: usize,
    /// How many warnings.
    pub warnings: usize,
    /// Every diagnostic.
    pub diagnostics: Vec<DiagnosticView>,
    /// The plan, when the text checks clean and places.
    pub plan: Option<PlanSummary>,
    /// What applying it would change in the running application.
    pub changes: Vec<String>,
}

/// A diagnostic, located by line and column.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct DiagnosticView {
    /// Its stable code.
    #[schemars(schema_with = "diagnostic_code_schema")]
    pub code: Code,
    /// Error or warning.
    #[schemars(schema_with = "severity_schema")]
    pub severity: Severity,
    /// The file it is in.
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// Where it ends: the line.
    pub end_line: usize,
    /// Where it ends: the column.
    pub end_column: usize,
    /// The problem.
    pub message: String,
    /// What the primary span's label says.
    pub label: String,
    /// The fix, if there is one.
    pub help: Option<String>,
}

/// A plan in brief: each machine's load.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PlanSummary {
    /// Each machine.
    pub hosts: Vec<HostPlan>,
    /// Every alternative was explored.
    pub optimal: bool,
}

/// A machine's load in a plan.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct HostPlan {
    /// The machine.
    pub host: String,
    /// Its tier.
    pub tier: String,
    /// The cores its components take.
    pub cpu_used: f64,
    /// Its cores.
    pub cpu_capacity: f64,
    /// The components on it.
    pub components: Vec<String>,
}

/// An agent joined; it heartbeats this often.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct JoinAnswer {
    /// How often it heartbeats, in milliseconds.
    pub heartbeat_milliseconds: u64,
    /// The agent's own key, issued at its first join: it presents it (header `x-stratum-agent-key`) with every
    /// later join and heartbeat, and no other machine can join or heartbeat under its name without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// On a cluster with TLS, a new certificate naming the agent (PEM), signed by the cluster's authority: it
    /// presents it on its data port and its API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// The certificate's private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_key: Option<String>,
    /// The key the agent's own API takes (bearer token), and no other agent's: the gateway presents it.
    pub api_key: String,
}

/// An agent an operator forgot.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ForgetAnswer {
    /// The agent forgotten.
    pub forgotten: String,
}

/// A model file sent to the control plane's model store.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ModelFileAnswer {
    /// The model.
    pub model: String,
    /// The file (`vN.json`, `vN.onnx`).
    pub file: String,
    /// Whether it was new here (false: the store had this very file).
    pub kept: bool,
}

/// Bytes stored in the blob store.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct BlobAnswer {
    /// The blob's sha256 (its address).
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
}

/// A training job started on the agents: `GET /v1/training/{job}` follows it.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct TrainingStarted {
    /// The job's number.
    pub job: u64,
}

/// A new version was accepted: the running one drains, then the new one starts.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ApplyAnswer {
    /// The version that ran before, if any.
    pub from_version: Option<u32>,
    /// What changed, one line each.
    pub changes: Vec<String>,
}

/// Everything at once, as `stratum up` has always answered `/v1/status`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct StatusView {
    /// None on a `stratum server` to which no application is applied yet.
    pub app: Option<String>,
    /// The running version.
    pub version: Option<u32>,
    /// Seconds since it started.
    pub uptime_seconds: f64,
    /// Every agent.
    pub agents: Vec<AgentView>,
    /// Every service.
    pub services: Vec<ServiceView>,
    /// The model each service serves.
    pub models: Vec<ServedModelView>,
    /// Where each instance of each component runs now.
    pub placement: Vec<PlacedView>,
}

/// One instance of a component: the machine the plan put it on, and the one it runs on now (none while no
/// machine can run it).
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PlacedView {
    /// The component.
    pub component: String,
    /// Its instance number.
    pub instance: u32,
    /// The machine the plan put it on.
    pub planned: String,
    /// The machine it runs on now; none while no machine can run it.
    pub host: Option<String>,
}

/// The model a service serves, by the digest of its file.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ServedModelView {
    /// The service.
    pub service: String,
    /// The model.
    pub model: String,
    /// Its version.
    pub version: u32,
    /// The sha256 of the artifact file served.
    pub sha256: String,
}

/// A simulation of the running version (`stratum simulate` on its file as it runs now).
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct SimulateRequest {
    /// How long to simulate, such as `1h` or `1d` (at most 7 days; 1 hour when not given).
    #[serde(default)]
    pub duration: Option<String>,
    /// Seconds per step, such as `1s` (by default the duration over 20,000, within 0.1 s and 5 s).
    #[serde(default)]
    pub step: Option<String>,
    /// Tiers scaled to a number of machines, such as `edge=5000` (at most 20,000 machines a tier).
    #[serde(default)]
    pub scale: Vec<String>,
    /// Machines that stop, such as `fog_downtown@10m` or `fog_downtown@10m+5m`.
    #[serde(default)]
    pub fail: Vec<String>,
    /// Links cut for a while, such as `edge->fog@8h+10m`.
    #[serde(default)]
    pub partition: Vec<String>,
    /// How long the control plane waits for a heartbeat before it counts a machine lost (10 s when not given).
    #[serde(default)]
    pub agent_timeout: Option<String>,
}
