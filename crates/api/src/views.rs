//! What the API answers, as types: each derives its JSON schema for the OpenAPI document, and each is built here
//! from the running application (its IR, plan, agents, metrics, feeds, state store and model store).

use crate::plane::{ControlPlane, Live, Now};
use crate::series::series_name;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use stratum_control::agents::Machine;
use stratum_core::eval::Datum;
use stratum_core::ir::{Chart, ModelOrigin, Panel, ServiceInput, Tier};
use stratum_dataplane::metrics::MetricsSnapshot;
use stratum_dataplane::record::{datum_to_json, event_time_position};

/// An error: a stable code to act on and a message for people.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// `unauthorized`, `forbidden`, `not_found`, `method_not_allowed`, `bad_request`, `invalid_application`,
    /// `conflict`, `unavailable`, `too_large`, `overloaded`, `bad_gateway` or `internal`.
    pub code: String,
    pub message: String,
}

/// The application and how it runs.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct AppView {
    /// None until the first version has started.
    pub name: Option<String>,
    pub version: Option<u32>,
    /// `starting`, `running`, `restarting` or `failed`.
    pub phase: String,
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
    pub code: String,
    /// `error` or `warning`.
    pub severity: String,
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

fn tier_rank(tier: Option<Tier>) -> usize {
    tier.and_then(|tier| Tier::NAMES.iter().position(|name| *name == tier.name())).unwrap_or(Tier::NAMES.len())
}

/// A tier's name; `unknown` for an agent that did not say and that the application does not name.
fn tier_name(tier: Option<Tier>) -> String {
    tier.map_or("unknown", Tier::name).to_string()
}

impl ControlPlane {
    fn latest(&self, name: &str) -> Option<f64> {
        crate::plane::lock(&self.series).latest(name)
    }

    /// A component with its counters from `snapshots` (the data plane's metrics, taken once per answer).
    fn component_view(&self, snapshots: &[MetricsSnapshot], name: &str, kind: &str) -> ComponentView {
        let snapshot = snapshots.iter().find(|snapshot| snapshot.component == name);
        let value = |field: fn(&MetricsSnapshot) -> u64| snapshot.map_or(0, field);
        ComponentView {
            name: name.to_string(),
            kind: kind.to_string(),
            running: snapshot.is_some(),
            events_in: value(|snapshot| snapshot.events_in),
            events_out: value(|snapshot| snapshot.events_out),
            errors: value(|snapshot| snapshot.errors),
            dead_letters: value(|snapshot| snapshot.dead_letters),
            queue_depth: value(|snapshot| snapshot.queue_depth),
            in_per_second: self.latest(&series_name("component", name, "in_per_second")),
            out_per_second: self.latest(&series_name("component", name, "out_per_second")),
            p99_ms: self.latest(&series_name("component", name, "p99_ms")),
        }
    }

    /// The components of one agent.
    fn agent_components(&self, snapshots: &[MetricsSnapshot], agent: &Machine) -> Vec<ComponentView> {
        agent.components.iter().map(|(name, kind)| self.component_view(snapshots, name, kind)).collect()
    }

    pub fn agents_view(&self, deployment: &Live) -> Vec<AgentView> {
        let snapshots = deployment.metrics();
        deployment
            .machines()
            .into_iter()
            .map(|agent| {
                let joined = agent.joined.as_ref();
                let usage = joined.and_then(|joined| joined.usage);
                AgentView {
                    name: agent.name.clone(),
                    tier: tier_name(agent.tier),
                    pool: agent.pool.clone(),
                    cpu: agent.cpu,
                    memory_bytes: agent.memory_bytes,
                    components: self.agent_components(&snapshots, &agent),
                    alive: joined.map(|joined| joined.alive),
                    seconds_since_heartbeat: joined.map(|joined| joined.seconds_since_heartbeat),
                    arch: joined.map(|joined| joined.arch.clone()),
                    disk_free_bytes: joined.and_then(|joined| joined.disk_free_bytes),
                    cpu_percent: usage.map(|usage| usage.cpu_percent),
                    memory_used_bytes: usage.map(|usage| usage.memory_bytes),
                }
            })
            .collect()
    }

    pub fn placement_view(&self, deployment: &Live) -> Vec<PlacedView> {
        deployment
            .placement()
            .into_iter()
            .map(|placed| PlacedView {
                component: placed.component,
                instance: placed.instance,
                planned: placed.planned,
                host: placed.host,
            })
            .collect()
    }

    /// Every component of the plan once, with the data plane's counters (several instances count together).
    pub fn components_view(&self, live: &Now) -> Vec<ComponentView> {
        let snapshots = live.deployment.metrics();
        let mut seen = std::collections::BTreeSet::new();
        live.current
            .plan
            .assignments
            .iter()
            .filter(|assignment| seen.insert(assignment.component.clone()))
            .map(|assignment| self.component_view(&snapshots, &assignment.component, assignment.kind.name()))
            .collect()
    }

    pub fn topology(&self, live: &Now) -> Topology {
        let snapshots = live.deployment.metrics();
        let mut tiers: Vec<TierView> = Vec::new();
        let mut agents = live.deployment.machines();
        agents.sort_by_key(|agent| tier_rank(agent.tier));
        let plan = &live.current.plan;
        for agent in agents {
            let usage = plan.hosts.iter().find(|host| host.host == agent.name);
            let node = NodeView {
                name: agent.name.clone(),
                tier: tier_name(agent.tier),
                pool: agent.pool.clone(),
                labels: agent.labels.clone(),
                cpu_capacity: agent.cpu,
                cpu_planned: usage.map_or(0.0, |usage| usage.cpu_used),
                memory_capacity_bytes: agent.memory_bytes,
                memory_planned_bytes: usage.map_or(0, |usage| usage.memory_used.0),
                components: self.agent_components(&snapshots, &agent),
                alive: agent.joined.as_ref().map(|joined| joined.alive),
                cpu_percent: agent.joined.as_ref().and_then(|joined| Some(joined.usage?.cpu_percent)),
                memory_used_bytes: agent.joined.as_ref().and_then(|joined| Some(joined.usage?.memory_bytes)),
            };
            match tiers.iter_mut().find(|tier| tier.tier == node.tier) {
                Some(tier) => tier.nodes.push(node),
                None => tiers.push(TierView { tier: node.tier.clone(), nodes: vec![node] }),
            }
        }
        // Data paths follow where components run now, which is where the plan put them unless a machine was lost.
        let mut edges = Vec::new();
        let placement = live.deployment.placement();
        let hosts_of = |component: &str| -> std::collections::BTreeSet<String> {
            placement
                .iter()
                .filter(|placed| placed.component == component)
                .filter_map(|placed| placed.host.clone())
                .collect()
        };
        for consumer in plan.assignments.iter().map(|assignment| assignment.component.as_str()) {
            if edges.iter().any(|edge: &EdgeView| edge.to == consumer) {
                continue;
            }
            for producer in stratum_control::placement::inputs_of(&live.current.application, consumer) {
                let rate = self.latest(&series_name("component", &producer, "out_per_second"));
                for from_node in hosts_of(&producer) {
                    for to_node in hosts_of(consumer) {
                        edges.push(EdgeView {
                            from: producer.clone(),
                            to: consumer.to_string(),
                            from_node: from_node.clone(),
                            to_node,
                            events_per_second: rate,
                        });
                    }
                }
            }
        }
        Topology { tiers, edges }
    }

    pub fn services_view(&self, live: &Now) -> Vec<ServiceView> {
        let served = live.deployment.state().served_models(&live.current.app).unwrap_or_default();
        let pools = live.deployment.services();
        live.current
            .application
            .services
            .iter()
            .map(|service| {
                let pool = pools.iter().find(|pool| pool.name == service.name);
                let measure = |what: &str| self.latest(&series_name("service", &service.name, what));
                let targets: Vec<TargetView> = service
                    .slo
                    .latency
                    .iter()
                    .map(|target| {
                        let measured = match target.percentile {
                            p if p <= 50.0 => measure("p50_ms"),
                            p if p <= 95.0 => measure("p95_ms"),
                            _ => measure("p99_ms"),
                        };
                        let at_most_ms = target.at_most.seconds() * 1e3;
                        TargetView {
                            target: format!("p{} <= {} ms", target.percentile, at_most_ms),
                            percentile: target.percentile,
                            at_most_ms,
                            measured_ms: measured,
                            met: measured.map(|measured| measured <= at_most_ms),
                        }
                    })
                    .collect();
                let meets_targets = if targets.iter().any(|target| target.met.is_none()) || targets.is_empty() {
                    None
                } else {
                    Some(targets.iter().all(|target| target.met == Some(true)))
                };
                ServiceView {
                    name: service.name.clone(),
                    model: service.model.clone(),
                    model_version: served.iter().find(|model| model.service == service.name).map(|model| model.version),
                    input: match &service.input {
                        ServiceInput::Stream { name } => format!("stream {name}"),
                        ServiceInput::Http { .. } => "http".into(),
                    },
                    replicas: pool.map_or(0, |pool| pool.replicas),
                    in_flight: pool.map_or(0, |pool| pool.in_flight),
                    min_replicas: service.scale.min,
                    max_replicas: service.scale.max,
                    requests_per_second: measure("requests_per_second"),
                    processed_per_second: self.latest(&series_name("component", &service.name, "in_per_second")),
                    p50_ms: measure("p50_ms"),
                    p95_ms: measure("p95_ms"),
                    p99_ms: measure("p99_ms"),
                    targets,
                    meets_targets,
                    cold_starts: pool.map_or(0, |pool| pool.cold_starts),
                    rejected: pool.map_or(0, |pool| pool.rejected),
                }
            })
            .collect()
    }

    /// One stored version of a model, read from the store once.
    fn model_version(&self, store: &stratum_ml::ModelStore, name: &str, version: u32) -> Option<Arc<ModelVersionView>> {
        let key = (name.to_string(), version);
        if let Some(known) = crate::plane::lock(&self.model_versions).get(&key) {
            return Some(known.clone());
        }
        let artifact = store.load(name, Some(version)).ok()?;
        let params = |params: &stratum_ml::algorithms::Params| serde_json::to_value(params).unwrap_or(Value::Null);
        let view = Arc::new(ModelVersionView {
            version,
            created: artifact.created,
            algorithm: artifact.algorithm.clone(),
            params: params(&artifact.params),
            metric: artifact.metric.name().to_string(),
            score: artifact.score,
            rows: artifact.rows,
            sha256: artifact.sha256.clone(),
            data_sha256: artifact.data_sha256.clone(),
            profile: ProfileView {
                latency_p50_us: artifact.profile.latency_p50_us,
                latency_p99_us: artifact.profile.latency_p99_us,
                batch_rows_per_second: artifact.profile.batch_rows_per_second,
                peak_memory_bytes: artifact.profile.peak_memory_bytes,
                size_bytes: artifact.profile.size_bytes,
                machine: artifact.profile.machine.clone(),
            },
            leaderboard: artifact
                .leaderboard
                .entries
                .iter()
                .map(|entry| LeaderboardEntry {
                    rank: entry.rank,
                    algorithm: entry.algorithm.clone(),
                    params: params(&entry.params),
                    mean: entry.mean,
                    std: entry.std,
                    fit_seconds: entry.fit_seconds,
                    error: entry.error.clone(),
                })
                .collect(),
            skipped: artifact.leaderboard.skipped,
        });
        crate::plane::lock(&self.model_versions).insert(key, view.clone());
        Some(view)
    }

    pub fn models_view(&self, live: &Now) -> Vec<ModelView> {
        let store = stratum_ml::ModelStore::new(self.config.state_dir.join("models"));
        let served = live.deployment.state().served_models(&live.current.app).unwrap_or_default();
        live.current
            .application
            .models
            .iter()
            .map(|model| {
                let mut versions: Vec<ModelVersionView> = store
                    .versions(&model.name)
                    .unwrap_or_default()
                    .into_iter()
                    .rev()
                    .filter_map(|version| self.model_version(&store, &model.name, version))
                    .map(|view| (*view).clone())
                    .collect();
                versions.truncate(20);
                ModelView {
                    name: model.name.clone(),
                    task: model.task.name().to_string(),
                    metric: match &model.origin {
                        ModelOrigin::Trained(training) => training.metric.name().to_string(),
                        ModelOrigin::Onnx { .. } => "imported".to_string(),
                    },
                    served_by: served
                        .iter()
                        .filter(|served| served.model == model.name)
                        .map(|served| ServedBy { service: served.service.clone(), version: served.version })
                        .collect(),
                    versions,
                }
            })
            .collect()
    }

    pub fn dashboards_view(&self, live: &Now) -> Vec<DashboardView> {
        live.current
            .application
            .dashboards
            .iter()
            .map(|dashboard| DashboardView {
                name: dashboard.name.clone(),
                panels: dashboard.panels.iter().map(|panel| panel_view(live, panel)).collect(),
            })
            .collect()
    }
}

fn chart_name(chart: Chart) -> &'static str {
    match chart {
        Chart::Line => "line",
        Chart::Bar => "bar",
        Chart::Table => "table",
        Chart::Stat => "stat",
        Chart::Map => "map",
    }
}

/// A panel's data from its source's feed: the latest records the data plane kept for it.
fn panel_view(live: &Now, panel: &Panel) -> PanelView {
    PanelView {
        title: panel.title.clone(),
        chart: chart_name(panel.chart).to_string(),
        source: panel.source.clone(),
        field: panel.field.clone(),
        group_by: panel.group_by.clone(),
        data: panel_data(live, panel),
    }
}

fn label_of(datum: Option<&Datum>) -> String {
    match datum {
        Some(Datum::Text(text)) => text.clone(),
        Some(other) => datum_to_json(other).to_string(),
        None => "all".into(),
    }
}

fn panel_data(live: &Now, panel: &Panel) -> PanelData {
    let Some(feed) = live.deployment.feed(&panel.source) else {
        return PanelData::Empty { reason: format!("`{}` has no records here", panel.source) };
    };
    let fields = &feed.fields;
    let position = |name: &Option<String>| name.as_ref().and_then(|name| fields.iter().position(|f| &f.name == name));
    let (value_at, group_at, time_at) =
        (position(&panel.field), position(&panel.group_by), event_time_position(fields));
    let mut records = feed.records;
    // The panel's range counts back from the newest event time; `last N` keeps the newest records.
    if let (Some(range), Some(time_at)) = (panel.range, time_at) {
        let newest = records.iter().filter_map(|record| time_of(record.get(time_at))).max();
        if let Some(newest) = newest {
            let oldest = newest - (range.seconds() * 1e3) as i64;
            records.retain(|record| time_of(record.get(time_at)).is_some_and(|at| at >= oldest));
        }
    }
    if let Some(last) = panel.last {
        let skip = records.len().saturating_sub(last as usize);
        records.drain(..skip);
    }
    let value = |record: &Vec<Datum>| value_at.and_then(|at| record.get(at)).and_then(Datum::as_f64);
    let group = |record: &Vec<Datum>| label_of(group_at.and_then(|at| record.get(at)));
    match panel.chart {
        Chart::Line => {
            let mut lines: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
            for (index, record) in records.iter().enumerate() {
                let Some(y) = value(record) else { continue };
                let x = time_at.and_then(|at| time_of(record.get(at))).unwrap_or(index as i64);
                lines.entry(group(record)).or_default().push((x, y));
            }
            PanelData::Lines {
                lines: lines
                    .into_iter()
                    .map(|(label, mut points)| {
                        points.sort_by_key(|(x, _)| *x);
                        Line { label, points }
                    })
                    .collect(),
            }
        }
        Chart::Bar => {
            let mut bars: BTreeMap<String, f64> = BTreeMap::new();
            for record in &records {
                *bars.entry(group(record)).or_default() += value(record).unwrap_or(0.0);
            }
            PanelData::Bars { bars: bars.into_iter().map(|(label, value)| Bar { label, value }).collect() }
        }
        Chart::Stat => PanelData::Stat { value: records.last().and_then(value), records: records.len() },
        Chart::Table | Chart::Map => PanelData::Table {
            columns: fields.iter().map(|field| field.name.clone()).collect(),
            rows: records.iter().rev().map(|record| record.iter().map(datum_to_json).collect()).collect(),
        },
    }
}

fn time_of(datum: Option<&Datum>) -> Option<i64> {
    match datum {
        Some(Datum::Timestamp(milliseconds)) => Some(*milliseconds),
        _ => None,
    }
}
