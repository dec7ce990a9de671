//! How the API describes what runs: each view of [`crate::views`] built from the running application (its IR,
//! plan, agents, metrics, feeds, state store and model store), read once per answer.

use crate::plane::{ApiState, Snapshot, lock};
use crate::series::series_name;
use crate::views::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use stratum_control::agents::Machine;
use stratum_control::deployment::Deployment;
use stratum_core::eval::Datum;
use stratum_core::ir::{Chart, ModelOrigin, Panel, ServiceInput, Tier};
use stratum_dataplane::metrics::MetricsSnapshot;
use stratum_dataplane::record::{datum_to_json, event_time_position};

fn tier_rank(tier: Option<Tier>) -> usize {
    tier.and_then(|tier| Tier::NAMES.iter().position(|name| *name == tier.name())).unwrap_or(Tier::NAMES.len())
}

/// A tier's name; `unknown` for an agent that did not say and that the application does not name.
fn tier_name(tier: Option<Tier>) -> String {
    tier.map_or("unknown", Tier::name).to_string()
}

impl ApiState {
    fn latest(&self, name: &str) -> Option<f64> {
        lock(&self.series).latest(name)
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

    /// Every agent with its components and how it is doing.
    pub fn agents_view(&self, deployment: &dyn Deployment) -> Vec<AgentView> {
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

    /// Where each instance of each component runs now.
    pub fn placement_view(&self, deployment: &dyn Deployment) -> Vec<PlacedView> {
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
    pub fn components_view(&self, snapshot: &Snapshot) -> Vec<ComponentView> {
        let snapshots = snapshot.deployment.metrics();
        let mut seen = std::collections::BTreeSet::new();
        snapshot
            .running
            .plan
            .assignments
            .iter()
            .filter(|assignment| seen.insert(assignment.component.clone()))
            .map(|assignment| self.component_view(&snapshots, &assignment.component, assignment.kind.name()))
            .collect()
    }

    /// The application as a graph: tiers, machines, components, and the data paths with their rates.
    pub fn topology(&self, snapshot: &Snapshot) -> Topology {
        let snapshots = snapshot.deployment.metrics();
        let mut tiers: Vec<TierView> = Vec::new();
        let mut agents = snapshot.deployment.machines();
        agents.sort_by_key(|agent| tier_rank(agent.tier));
        let plan = &snapshot.running.plan;
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
        let placement = snapshot.deployment.placement();
        let index = stratum_control::placement::Index::of(&snapshot.running.application);
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
            for producer in index.inputs(consumer) {
                let rate = self.latest(&series_name("component", producer, "out_per_second"));
                for from_node in hosts_of(producer) {
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

    /// Every service with its replicas, load and latency against its targets.
    pub fn services_view(&self, snapshot: &Snapshot) -> Vec<ServiceView> {
        let served = snapshot.deployment.state().served_models(&snapshot.running.app).unwrap_or_default();
        let pools = snapshot.deployment.services();
        snapshot
            .running
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
        if let Some(known) = lock(&self.model_versions).get(&key) {
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
        lock(&self.model_versions).insert(key, view.clone());
        Some(view)
    }

    /// Every model with its stored versions and the services that serve it.
    pub fn models_view(&self, snapshot: &Snapshot) -> Vec<ModelView> {
        let store = stratum_ml::ModelStore::new(self.config.state_dir.join("models"));
        let served = snapshot.deployment.state().served_models(&snapshot.running.app).unwrap_or_default();
        snapshot
            .running
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

    /// Every dashboard with its panels' data now.
    pub fn dashboards_view(&self, snapshot: &Snapshot) -> Vec<DashboardView> {
        snapshot
            .running
            .application
            .dashboards
            .iter()
            .map(|dashboard| DashboardView {
                name: dashboard.name.clone(),
                panels: dashboard.panels.iter().map(|panel| panel_view(snapshot, panel)).collect(),
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
fn panel_view(snapshot: &Snapshot, panel: &Panel) -> PanelView {
    PanelView {
        title: panel.title.clone(),
        chart: chart_name(panel.chart).to_string(),
        source: panel.source.clone(),
        field: panel.field.clone(),
        group_by: panel.group_by.clone(),
        data: panel_data(snapshot, panel),
    }
}

fn label_of(datum: Option<&Datum>) -> String {
    match datum {
        Some(Datum::Text(text)) => text.clone(),
        Some(other) => datum_to_json(other).to_string(),
        None => "all".into(),
    }
}

fn panel_data(snapshot: &Snapshot, panel: &Panel) -> PanelData {
    let Some(feed) = snapshot.deployment.feed(&panel.source) else {
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
