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
        Starting = "starting",
        Running = "running",
        /// A new version was applied; the old one drains and the new one starts.
        Restarting = "restarting",
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
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    #[schemars(schema_with = "error_code_schema")]
    pub code: ErrorCode,
    pub message: String,
}

/// The application and how it runs.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct AppView {
    /// None until the first version has started.
    pub name: Option<String>,
    pub version: Option<u32>,
    #[schemars(schema_with = "phase_schema")]
    pub phase: PhaseName,
    /// Why the last start failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub uptime_seconds: f64,
    /// The `.stratum` file the editor shows.
    pub source_file: String,
    pub broker_url: Option<String>,
    pub not_running: Vec<NotRunning>,
    /// Whether the caller may apply new versions (an operator).
    pub can_apply: bool,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct NotRunning {
    pub component: String,
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct SourceView {
    pub file: String,
    pub text: String,
}

/// The plan of the running version, as `stratum plan --format json` prints it.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PlanView {
    pub version: u32,
    pub plan: Value,
}

/// The application as a graph: tiers as bands, machines in them, components on machines, data paths as edges.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Topology {
    pub tiers: Vec<TierView>,
    pub edges: Vec<EdgeView>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct TierView {
    pub tier: String,
    pub nodes: Vec<NodeView>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct NodeView {
    pub name: String,
    pub tier: String,
    /// The pool the machine belongs to, if any.
    pub pool: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub cpu_capacity: f64,
    pub cpu_planned: f64,
    pub memory_capacity_bytes: u64,
    pub memory_planned_bytes: u64,
    pub components: Vec<ComponentView>,
    /// For an agent on its own machine: heard from within the timeout, and what its process uses.
    pub alive: Option<bool>,
    pub cpu_percent: Option<f64>,
    pub memory_used_bytes: Option<u64>,
}

/// A data path: records of `from` read by `to`, between the machines they run on.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct EdgeView {
    pub from: String,
    pub to: String,
    pub from_node: String,
    pub to_node: String,
    /// Records per second on the path over the last second (the producer's output rate).
    pub events_per_second: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ComponentView {
    pub name: String,
    /// `source`, `stream`, `sink`, `service`, `batch`, `training` or `tool`.
    pub kind: String,
    /// Running in the data plane now (batches, training and tools are not: see the events).
    pub running: bool,
    pub events_in: u64,
    pub events_out: u64,
    pub errors: u64,
    pub dead_letters: u64,
    pub queue_depth: u64,
    pub in_per_second: Option<f64>,
    pub out_per_second: Option<f64>,
    /// The 99th percentile of the time to process a batch over the last second, in milliseconds.
    pub p99_ms: Option<f64>,
}

/// An agent: one per machine, with its components. Agents on their own machines (`stratum server`) also say
/// whether they are alive and what their process uses; the in-process agents of `stratum up` do not.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct AgentView {
    pub name: String,
    pub tier: String,
    pub pool: Option<String>,
    pub cpu: f64,
    pub memory_bytes: u64,
    pub components: Vec<ComponentView>,
    /// Heard from within the timeout; none for in-process agents.
    pub alive: Option<bool>,
    pub seconds_since_heartbeat: Option<f64>,
    /// The machine's architecture, as the agent measured it.
    pub arch: Option<String>,
    /// Free space on the disk of the agent's data directory, as it measured when it joined.
    pub disk_free_bytes: Option<u64>,
    /// CPU of the agent's process over its last heartbeat, in percent of one core.
    pub cpu_percent: Option<f64>,
    pub memory_used_bytes: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct AgentsView {
    pub agents: Vec<AgentView>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ComponentsView {
    pub components: Vec<ComponentView>,
}

/// An inference service now: replicas, load and latency against its targets.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ServiceView {
    pub name: String,
    pub model: String,
    pub model_version: Option<u32>,
    /// `stream NAME` or `http`.
    pub input: String,
    pub replicas: u64,
    pub in_flight: u64,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub requests_per_second: Option<f64>,
    /// Records per second through the stream part.
    pub processed_per_second: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub targets: Vec<TargetView>,
    /// Every latency target met over the last second (none without measurements).
    pub meets_targets: Option<bool>,
    pub cold_starts: u64,
    /// Requests turned away (429 and 503).
    pub rejected: u64,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct TargetView {
    /// `p99 <= 20 ms`
    pub target: String,
    pub percentile: f64,
    pub at_most_ms: f64,
    pub measured_ms: Option<f64>,
    pub met: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ServicesView {
    pub services: Vec<ServiceView>,
}

/// The models of the application: what the store holds, and which services serve them.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ModelsView {
    pub models: Vec<ModelView>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ModelView {
    pub name: String,
    /// `classification`, `regression`, `clustering` or `forecasting`.
    pub task: String,
    pub metric: String,
    pub served_by: Vec<ServedBy>,
    /// Stored versions, newest first; each with its training run's leaderboard and profile.
    pub versions: Vec<ModelVersionView>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ServedBy {
    pub service: String,
    pub version: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ModelVersionView {
    pub version: u32,
    /// Seconds since 1970.
    pub created: u64,
    pub algorithm: String,
    pub params: Value,
    pub metric: String,
    pub score: f64,
    pub rows: usize,
    pub sha256: String,
    pub data_sha256: String,
    pub profile: ProfileView,
    pub leaderboard: Vec<LeaderboardEntry>,
    /// Candidates the time budget left out.
    pub skipped: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ProfileView {
    pub latency_p50_us: f64,
    pub latency_p99_us: f64,
    pub batch_rows_per_second: f64,
    pub peak_memory_bytes: Option<u64>,
    pub size_bytes: u64,
    pub machine: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct LeaderboardEntry {
    pub rank: usize,
    pub algorithm: String,
    pub params: Value,
    pub mean: f64,
    pub std: f64,
    pub fit_seconds: f64,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct EventsView {
    pub events: Vec<EventView>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct EventView {
    pub id: i64,
    pub at_milliseconds: i64,
    pub kind: String,
    pub component: Option<String>,
    pub message: String,
}

/// Samples of metric series: `timestamps_milliseconds[i]` is when `series[name][i]` was measured.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct SeriesView {
    pub timestamps_milliseconds: Vec<i64>,
    pub series: BTreeMap<String, Vec<Option<f64>>>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct DashboardsView {
    pub dashboards: Vec<DashboardView>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct DashboardView {
    pub name: String,
    pub panels: Vec<PanelView>,
}

/// A panel of a dashboard the file declares, with its data now.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PanelView {
    pub title: String,
    /// `line`, `bar`, `table`, `stat` or `map` (shown as a table).
    pub chart: String,
    pub source: String,
    pub field: Option<String>,
    pub group_by: Option<String>,
    pub data: PanelData,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PanelData {
    /// One line per group: (event time in milliseconds, value) points.
    Lines {
        lines: Vec<Line>,
    },
    /// The sum of the field per group over the records held.
    Bars {
        bars: Vec<Bar>,
    },
    Table {
        columns: Vec<String>,
        rows: Vec<Vec<Value>>,
    },
    Stat {
        value: Option<f64>,
        records: usize,
    },
    /// The source has no feed here (not running, or not a stream or source).
    Empty {
        reason: String,
    },
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Line {
    pub label: String,
    pub points: Vec<(i64, f64)>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Bar {
    pub label: String,
    pub value: f64,
}

/// Text to check (and plan), as the editor holds it; `stratum apply` also sends the files it imports.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct SourceText {
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
    pub errors: usize,
    pub warnings: usize,
    pub diagnostics: Vec<DiagnosticView>,
    pub plan: Option<PlanSummary>,
    /// What applying it would change in the running application.
    pub changes: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct DiagnosticView {
    #[schemars(schema_with = "diagnostic_code_schema")]
    pub code: Code,
    #[schemars(schema_with = "severity_schema")]
    pub severity: Severity,
    pub file: String,
    /// 1-based.
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub message: String,
    pub label: String,
    pub help: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PlanSummary {
    pub hosts: Vec<HostPlan>,
    /// Every alternative was explored.
    pub optimal: bool,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct HostPlan {
    pub host: String,
    pub tier: String,
    pub cpu_used: f64,
    pub cpu_capacity: f64,
    pub components: Vec<String>,
}

/// An agent joined; it heartbeats this often.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct JoinAnswer {
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
    pub forgotten: String,
}

/// Bytes stored in the blob store.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct BlobAnswer {
    pub sha256: String,
    pub bytes: u64,
}

/// A training job started on the agents: `GET /v1/training/{job}` follows it.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct TrainingStarted {
    pub job: u64,
}

/// A new version was accepted: the running one drains, then the new one starts.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ApplyAnswer {
    pub from_version: Option<u32>,
    pub changes: Vec<String>,
}

/// Everything at once, as `stratum up` has always answered `/v1/status`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct StatusView {
    /// None on a `stratum server` to which no application is applied yet.
    pub app: Option<String>,
    pub version: Option<u32>,
    pub uptime_seconds: f64,
    pub agents: Vec<AgentView>,
    pub services: Vec<ServiceView>,
    pub models: Vec<ServedModelView>,
    /// Where each instance of each component runs now.
    pub placement: Vec<PlacedView>,
}

/// One instance of a component: the machine the plan put it on, and the one it runs on now (none while no
/// machine can run it).
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct PlacedView {
    pub component: String,
    pub instance: u32,
    pub planned: String,
    pub host: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ServedModelView {
    pub service: String,
    pub model: String,
    pub version: u32,
    pub sha256: String,
}
