//! `stratum server`: the control plane for real machines. It keeps the applied application, the agents that joined
//! and every event in its state store; agents connect to it (never the other way round), heartbeat, and are told
//! what to run. A reconcile loop, level-triggered, runs twice a second: agents silent for longer than the timeout
//! are lost, every component is placed (see [`crate::placement`]), and each agent's assignment follows — so a lost
//! agent's components move to others, and come back when it does. A restarted server reads its state back and
//! the agents, which kept running, carry on.
//!
//! The server speaks no HTTP itself: the `stratum-api` crate serves its routes (the agents' protocol among them,
//! behind the join token) and its web interface, and reads it as a [`Deployment`] like a `stratum up`.

use crate::Error;
use crate::agents::{Joined, Machine};
use crate::deployment::{DeployedVersion, Deployment, FeedRecords, Prediction};
use crate::placement::{LiveAgent, Placed, assignments, place};
use crate::protocol::{Assignment, CheckpointCopy, FeedReport, Heartbeat, HeartbeatAnswer, Join, TrainingRequest};
use crate::qos::{ClusterPolicies, Host};
use crate::serving::Refusal;
use crate::serving::ServiceState;
use crate::state::{ServedModel, StateStore};
use crate::training::{JobState, TrainingJob};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use stratum_core::events::EventKind;
use stratum_core::ir::{Application, Tier};
use stratum_core::plan::Plan;
use stratum_dataplane::metrics::MetricsSnapshot;
use tokio::sync::watch;

#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The state store, the model store agents pull from, the blob store and the application's source.
    pub state_dir: PathBuf,
    /// An agent silent for this long is lost.
    pub agent_timeout: Duration,
}

/// The version applied last.
struct Applied {
    application: Arc<Application>,
    plan: Arc<Plan>,
    version: u32,
    since: Instant,
}

struct AgentRecord {
    join: Join,
    last_seen: Instant,
    lost: bool,
    metrics: Vec<MetricsSnapshot>,
    services: Vec<ServiceState>,
    usage: Option<crate::usage::Usage>,
    feeds: Vec<FeedReport>,
}

impl AgentRecord {
    fn new(join: Join) -> AgentRecord {
        AgentRecord {
            join,
            last_seen: Instant::now(),
            lost: false,
            metrics: Vec::new(),
            services: Vec::new(),
            usage: None,
            feeds: Vec::new(),
        }
    }
}

#[derive(Default)]
struct Cluster {
    deployed: Option<Applied>,
    agents: BTreeMap<String, AgentRecord>,
    placed: Vec<Placed>,
    assignments: BTreeMap<String, Assignment>,
    /// sha256 of model files by path, with the modification time it was computed for.
    model_hashes: BTreeMap<PathBuf, (SystemTime, String)>,
    jobs: BTreeMap<u64, TrainingJob>,
    /// The model version each service serves, as recorded in the state store.
    served: BTreeMap<String, u32>,
    /// The applied version's `migrate` policies, and when they were last evaluated.
    policies: ClusterPolicies,
    policies_evaluated: Option<Instant>,
    /// The newest checkpoint of each stream, and the agent that holds that state (it sent it, or it was handed
    /// it): what a stream takes up when it moves off a lost agent (see [`hand_over`]).
    checkpoints: BTreeMap<String, (String, CheckpointCopy)>,
}

pub struct Server {
    options: ServerOptions,
    state: StateStore,
    cluster: Mutex<Cluster>,
    /// Forwards predictions to the agents that run the services.
    gateway: reqwest::Client,
    /// Spreads requests over a service's replicas on several agents.
    next_replica: std::sync::atomic::AtomicUsize,
}

/// How a training job is doing, as `GET /v1/training/{job}` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TrainingStatus {
    pub job: u64,
    pub model: String,
    pub tasks: usize,
    pub finished: usize,
    /// Tasks each agent ran.
    pub by_agent: BTreeMap<String, usize>,
    pub result: JobState,
}

impl Cluster {
    /// Runs `version` of the application from now on, with its own policies.
    fn apply(&mut self, application: Application, plan: Plan, version: u32) {
        self.policies = ClusterPolicies::new(&application);
        self.deployed =
            Some(Applied { application: Arc::new(application), plan: Arc::new(plan), version, since: Instant::now() });
    }
}

/// How often the `migrate` policies are measured.
const POLICY_INTERVAL: Duration = Duration::from_secs(2);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keeps the checkpoints an agent sent of the streams placed on it (a copy of a stream placed elsewhere is stale:
/// a restarted agent sending what it had before its stream moved away), and forgets those it says ended cleanly.
fn keep_checkpoints(cluster: &mut Cluster, agent: &str, copies: Vec<CheckpointCopy>, removed: Vec<String>) {
    let placed_here = |component: &str| {
        cluster.placed.iter().any(|placed| placed.component == component && placed.host.as_deref() == Some(agent))
    };
    let fresh: Vec<CheckpointCopy> = copies.into_iter().filter(|copy| placed_here(&copy.component)).collect();
    for copy in fresh {
        cluster.checkpoints.insert(copy.component.clone(), (agent.to_string(), copy));
    }
    for component in removed {
        if cluster.checkpoints.get(&component).is_some_and(|(from, _)| from == agent) {
            cluster.checkpoints.remove(&component);
        }
    }
}

/// What goes with an assignment for `agent` besides it: the checkpoints of the streams it takes over from a lost
/// agent (it takes them up: the open windows live on; from now on it holds that state, so they are handed once),
/// and the streams whose state another agent still holds (that one drains them and emits their windows; a
/// checkpoint this agent kept of them from before is stale).
fn hand_over(cluster: &mut Cluster, agent: &str, assignment: &Assignment) -> (Vec<CheckpointCopy>, Vec<String>) {
    let (mut take_up, mut discard) = (Vec::new(), Vec::new());
    for component in &assignment.components {
        let Some((from, copy)) = cluster.checkpoints.get(component) else { continue };
        if from == agent {
            continue;
        }
        if cluster.agents.get(from).is_none_or(|record| record.lost) {
            let copy = copy.clone();
            cluster.checkpoints.insert(component.clone(), (agent.to_string(), copy.clone()));
            take_up.push(copy);
        } else {
            discard.push(component.clone());
        }
    }
    (take_up, discard)
}

impl Server {
    /// Opens the state store and reads back the applied application and the agents that had joined (they count as
    /// alive until the timeout says otherwise).
    pub fn open(options: ServerOptions) -> Result<Arc<Server>, Error> {
        let state = StateStore::open(&options.state_dir.join("state.db"))?;
        let mut cluster = Cluster::default();
        if let Some((app, version, ir, plan)) = state.latest_deployment()? {
            let application: Application = serde_json::from_str(&ir)
                .map_err(|error| Error::State(format!("`{app}` v{version}: {error}").into()))?;
            let plan: Plan = serde_json::from_str(&plan)
                .map_err(|error| Error::State(format!("`{app}` v{version}: {error}").into()))?;
            cluster.apply(application, plan, version);
            // What policies had moved stays moved, and what they added stays added: placement would otherwise undo
            // it until they measure again.
            let moved = state
                .migrations(&app, version)?
                .into_iter()
                .filter_map(|(component, tier)| Tier::from_name(&tier).map(|tier| (component, tier)));
            cluster.policies.restore(moved, state.added_instances(&app, version)?);
        }
        for (name, description) in state.agents()? {
            if let Ok(join) = serde_json::from_str::<Join>(&description) {
                cluster.agents.insert(name, AgentRecord::new(join));
            }
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let gateway = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|error| Error::State(format!("HTTP client: {error}").into()))?;
        let server = Arc::new(Server {
            options,
            state,
            cluster: Mutex::new(cluster),
            gateway,
            next_replica: std::sync::atomic::AtomicUsize::new(0),
        });
        server.event(EventKind::ServerStarted, None, &format!("{} agents known", lock(&server.cluster).agents.len()));
        Ok(server)
    }

    fn app(&self) -> String {
        lock(&self.cluster)
            .deployed
            .as_ref()
            .map_or_else(|| crate::state::NO_APP.into(), |deployed| deployed.application.name.clone())
    }

    fn event(&self, kind: EventKind, component: Option<&str>, message: &str) {
        let _ = self.state.record_event(&self.app(), kind, component, message);
    }

    /// Runs the reconcile loop until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tick.tick() => self.reconcile(),
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
    }

    /// A new version of the application (checked and planned): recorded, then rolled out by the next reconcile.
    pub fn deploy(&self, application: Application, plan: Plan) -> Result<u32, Error> {
        let app = application.name.clone();
        let ir = serde_json::to_string(&application).map_err(|error| Error::State(error.into()))?;
        let plan_text = serde_json::to_string(&plan).map_err(|error| Error::State(error.into()))?;
        let version = self.state.record_version(&app, &ir, &plan_text)?;
        lock(&self.cluster).apply(application, plan, version);
        self.event(EventKind::Applied, None, &format!("version {version}"));
        self.reconcile();
        Ok(version)
    }

    /// An agent joins (or joins again): it is alive from now on, and the next reconcile gives it work.
    pub fn join(&self, join: Join) {
        let name = join.name.clone();
        let _ = self.state.record_agent(&name, &serde_json::to_string(&join).unwrap_or_default());
        let gibibytes = |bytes: u64| bytes as f64 / (1u64 << 30) as f64;
        let disk = join.resources.disk_free_bytes.map(|bytes| format!(", {:.1} GiB disk free", gibibytes(bytes)));
        let message = format!(
            "{} cores, {:.1} GiB, {}{}; data at {}",
            join.resources.cpu,
            gibibytes(join.resources.memory_bytes),
            join.resources.arch,
            disk.unwrap_or_default(),
            join.data_address
        );
        lock(&self.cluster).agents.insert(name.clone(), AgentRecord::new(join));
        self.event(EventKind::AgentJoined, Some(&name), &message);
        self.reconcile();
    }

    /// An agent's heartbeat: what it reports is kept, and the answer says what it should run and train. None for
    /// an agent that has not joined (it joins again).
    pub fn heartbeat(self: &Arc<Self>, name: &str, beat: Heartbeat) -> Option<HeartbeatAnswer> {
        let (back, answer, training) = {
            let mut cluster = lock(&self.cluster);
            let agent = cluster.agents.get_mut(name)?;
            agent.last_seen = Instant::now();
            agent.metrics = beat.metrics;
            agent.services = beat.services;
            agent.usage = beat.usage;
            agent.feeds = beat.feeds;
            let back = std::mem::replace(&mut agent.lost, false);
            let tier = agent.join.tier.or_else(|| self.planned_tier(&cluster, name));
            keep_checkpoints(&mut cluster, name, beat.checkpoints, beat.checkpoints_removed);
            let assignment = cluster.assignments.get(name).cloned();
            let answer = match assignment {
                Some(assignment) if beat.running.as_ref() != Some(&assignment.key) => {
                    let (take_up, discard) = hand_over(&mut cluster, name, &assignment);
                    Some((assignment, take_up, discard))
                }
                _ => None,
            };
            let training = self.train_on_agent(&mut cluster, name, tier, beat.results, beat.training_slots);
            (back, answer, training)
        };
        self.finish_training_jobs();
        for problem in &beat.problems {
            self.event(EventKind::AgentProblem, Some(name), problem);
        }
        for event in &beat.events {
            self.event(event.kind, Some(&event.component), &format!("{} (on {name})", event.message));
        }
        if back {
            self.event(EventKind::AgentBack, Some(name), "heartbeats again");
            self.reconcile();
        }
        let (assignment, take_up, discard_checkpoints) = match answer {
            Some((assignment, take_up, discard)) => (Some(assignment), take_up, discard),
            None => (None, Vec::new(), Vec::new()),
        };
        for copy in &take_up {
            self.event(EventKind::HandedOver, Some(&copy.component), &format!("its checkpoint goes to {name}"));
        }
        Some(HeartbeatAnswer { assignment, take_up, discard_checkpoints, training })
    }

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
            .map_err(|error| refused(400, error.to_string()))?;
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

    /// One pass of the control loop: who is alive, where everything runs, what each agent runs.
    pub fn reconcile(&self) {
        let mut events: Vec<(EventKind, Option<String>, String)> = Vec::new();
        let mut serving = Vec::new();
        {
            let mut cluster = lock(&self.cluster);
            let timeout = self.options.agent_timeout;
            for (name, agent) in cluster.agents.iter_mut() {
                let silent = agent.last_seen.elapsed() > timeout;
                if silent && !agent.lost {
                    agent.lost = true;
                    events.push((
                        EventKind::AgentLost,
                        Some(name.clone()),
                        format!("no heartbeat for {} s", timeout.as_secs_f64()),
                    ));
                }
            }
            let model_files = self.model_files(&mut cluster);
            let live: Vec<LiveAgent> = cluster
                .agents
                .iter()
                .filter(|(_, agent)| !agent.lost)
                .filter_map(|(name, agent)| {
                    let tier = agent.join.tier.or_else(|| self.planned_tier(&cluster, name))?;
                    // A machine of the plan holds what its node declares; another, what its agent measured.
                    let planned = cluster
                        .deployed
                        .as_ref()
                        .and_then(|deployed| deployed.plan.hosts.iter().find(|host| &host.host == name));
                    Some(LiveAgent {
                        name: name.clone(),
                        tier,
                        data_address: agent.join.data_address.clone(),
                        labels: self.labels_of(&cluster, name, &agent.join.labels),
                        arch: agent.join.resources.arch.clone(),
                        cpu: planned.map_or(agent.join.resources.cpu, |host| host.cpu_capacity),
                        memory_bytes: planned.map_or(agent.join.resources.memory_bytes, |host| host.memory_capacity.0),
                        accelerators: self
                            .node_of(&cluster, name)
                            .map(|node| node.machine.accelerators.clone())
                            .unwrap_or_default(),
                    })
                })
                .collect();
            let lost: Vec<String> =
                cluster.agents.iter().filter(|(_, agent)| agent.lost).map(|(name, _)| name.clone()).collect();
            self.evaluate_policies(&mut cluster, &mut events);
            if let Some(deployed) = &cluster.deployed {
                let placed = place(
                    &deployed.application,
                    &deployed.plan,
                    &live,
                    &lost,
                    cluster.policies.moved(),
                    cluster.policies.added(),
                );
                for now in &placed {
                    let before = cluster
                        .placed
                        .iter()
                        .find(|old| old.component == now.component && old.instance == now.instance);
                    if now.added && before.is_none() {
                        let message = match &now.host {
                            Some(host) => format!("one more instance on {host}, added by a policy"),
                            None => "one more instance, but no other live agent can take it".to_string(),
                        };
                        events.push((EventKind::Placement, Some(now.component.clone()), message));
                        continue;
                    }
                    let moved = before.is_some_and(|before| before.host != now.host)
                        || before.is_none() && now.host.as_ref() != Some(&now.planned);
                    if moved {
                        let was_running = before.is_some_and(|before| before.host.is_some());
                        let message = match (&now.host, now.host.as_ref() == Some(&now.planned)) {
                            (Some(host), true) if was_running => format!("back on {host}, as planned"),
                            (Some(host), true) => format!("running on {host}, as planned"),
                            (Some(host), false) if lost.contains(&now.planned) => {
                                format!("moved to {host}: {} is lost", now.planned)
                            }
                            (Some(host), false) => format!("moved to {host} from {} by a policy", now.planned),
                            (None, _) if lost.contains(&now.planned) => {
                                format!(
                                    "not running: {} is lost and no live agent has the tier, labels, architecture \
                                     and room it needs",
                                    now.planned
                                )
                            }
                            (None, _) => format!("waiting for {} to join", now.planned),
                        };
                        events.push((EventKind::Placement, Some(now.component.clone()), message));
                    }
                }
                let assigned = assignments(&deployed.application, deployed.version, &placed, &live, &model_files);
                for service in &deployed.application.services {
                    let Some((version, sha256)) = model_files.get(&service.model) else { continue };
                    if cluster.served.get(&service.name) != Some(version) {
                        serving.push((service.name.clone(), service.model.clone(), *version, sha256.clone()));
                    }
                }
                cluster.placed = placed;
                cluster.assignments = assigned;
            }
        }
        self.record_served(serving);
        // Events take the lock again (for the application's name): only once it is released.
        self.flush(events);
    }

    /// Evaluates the `migrate` policies every few seconds on what the live agents reported; what they move, placement
    /// moves.
    fn evaluate_policies(&self, cluster: &mut Cluster, events: &mut Vec<(EventKind, Option<String>, String)>) {
        let now = Instant::now();
        if cluster.policies_evaluated.is_some_and(|at| now.duration_since(at) < POLICY_INTERVAL) {
            return;
        }
        let Some(deployed) = &cluster.deployed else { return };
        cluster.policies_evaluated = Some(now);
        let (application, version) = (deployed.application.clone(), deployed.version);
        let mut snapshots: BTreeMap<String, MetricsSnapshot> = BTreeMap::new();
        for snapshot in cluster.agents.values().filter(|agent| !agent.lost).flat_map(|agent| &agent.metrics) {
            match snapshots.get_mut(&snapshot.component) {
                Some(total) => total.add(snapshot),
                None => {
                    snapshots.insert(snapshot.component.clone(), snapshot.clone());
                }
            }
        }
        let mut policies = std::mem::take(&mut cluster.policies);
        let host_of = |component: &str| {
            let name = cluster.placed.iter().find(|placed| placed.component == component)?.host.clone()?;
            let agent = cluster.agents.get(&name)?;
            let tier = agent.join.tier.or_else(|| self.planned_tier(cluster, &name))?;
            Some(Host { name, tier, usage: agent.usage })
        };
        let (moved_before, added_before) = (policies.moved().clone(), policies.added().clone());
        let machines = cluster.agents.values().filter(|agent| !agent.lost).count();
        for (component, message) in policies.evaluate(now, &application, &snapshots, &host_of, machines) {
            events.push((EventKind::Policy, Some(component), message));
        }
        // What policies did is durable: a restarted control plane places it the same way.
        let app = &application.name;
        for (component, tier) in policies.moved() {
            if moved_before.get(component) == Some(tier) {
                continue;
            }
            if let Err(error) = self.state.record_migration(app, version, component, tier.name()) {
                events.push((
                    EventKind::Failed,
                    Some(component.clone()),
                    format!("the migration was not recorded: {error}"),
                ));
            }
        }
        for (component, count) in policies.added() {
            if added_before.get(component) == Some(count) {
                continue;
            }
            if let Err(error) = self.state.record_added_instances(app, version, component, *count) {
                let message = format!("the added instance was not recorded: {error}");
                events.push((EventKind::Failed, Some(component.clone()), message));
            }
        }
        cluster.policies = policies;
    }

    /// Records which model version each service serves now (the views show it), once per change.
    fn record_served(&self, serving: Vec<(String, String, u32, String)>) {
        let app = self.app();
        let store = stratum_ml::ModelStore::new(self.options.state_dir.join("models"));
        for (service, model, version, sha256) in serving {
            let data_sha256 =
                store.load(&model, Some(version)).map(|artifact| artifact.data_sha256).unwrap_or_default();
            let served = ServedModel { service: service.clone(), model: model.clone(), version, sha256, data_sha256 };
            if self.state.record_served_model(&app, &served).is_ok() {
                lock(&self.cluster).served.insert(service.clone(), version);
                self.event(EventKind::Serving, Some(&service), &format!("`{model}` v{version}"));
            }
        }
    }

    fn flush(&self, events: Vec<(EventKind, Option<String>, String)>) {
        for (kind, component, message) in events {
            tracing::info!(kind = kind.as_str(), component, message, "control plane");
            self.event(kind, component.as_deref(), &message);
        }
    }

    /// Takes an agent's training results and gives it tasks of running jobs, if its tier trains them.
    fn train_on_agent(
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
    fn finish_training_jobs(self: &Arc<Self>) {
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

    /// The application's node named like an agent, if there is one.
    fn node_of<'a>(&self, cluster: &'a Cluster, name: &str) -> Option<&'a stratum_core::ir::Node> {
        cluster.deployed.as_ref()?.application.nodes.iter().find(|node| node.name == name)
    }

    /// An agent's labels: those it was started with, over those its node declares in the application.
    fn labels_of(&self, cluster: &Cluster, name: &str, own: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let declared = self.node_of(cluster, name).map(|node| node.machine.labels.clone()).unwrap_or_default();
        declared.into_iter().chain(own.clone()).collect()
    }

    /// The tier of the application's node named like the agent, when the agent did not say.
    fn planned_tier(&self, cluster: &Cluster, name: &str) -> Option<Tier> {
        let deployed = cluster.deployed.as_ref()?;
        deployed.plan.hosts.iter().find(|host| host.host == name).map(|host| host.tier)
    }

    /// (latest version, sha256 of its file) of each model of the application in the server's model store.
    fn model_files(&self, cluster: &mut Cluster) -> BTreeMap<String, (u32, String)> {
        let Some(deployed) = &cluster.deployed else { return BTreeMap::new() };
        let store = stratum_ml::ModelStore::new(self.options.state_dir.join("models"));
        let mut files = BTreeMap::new();
        let names: Vec<String> = deployed.application.models.iter().map(|model| model.name.clone()).collect();
        for name in names {
            let Some(version) = store.versions(&name).ok().and_then(|versions| versions.last().copied()) else {
                continue;
            };
            let path = self.options.state_dir.join("models").join(&name).join(format!("v{version}.json"));
            let Ok(modified) = std::fs::metadata(&path).and_then(|metadata| metadata.modified()) else { continue };
            let known =
                cluster.model_hashes.get(&path).filter(|(when, _)| *when == modified).map(|(_, hash)| hash.clone());
            let hash = match known {
                Some(hash) => hash,
                None => {
                    let Ok(bytes) = std::fs::read(&path) else { continue };
                    let hash = stratum_ml::data::sha256_hex(&bytes);
                    cluster.model_hashes.insert(path, (modified, hash.clone()));
                    hash
                }
            };
            files.insert(name, (version, hash));
        }
        files
    }
}

impl Deployment for Server {
    fn current(&self) -> Option<Arc<DeployedVersion>> {
        let cluster = lock(&self.cluster);
        let applied = cluster.deployed.as_ref()?;
        let not_running = cluster
            .placed
            .iter()
            .filter(|placed| placed.host.is_none())
            .map(|placed| (placed.component.clone(), format!("waiting: {} has not joined or is lost", placed.planned)))
            .collect();
        Some(Arc::new(DeployedVersion {
            app: applied.application.name.clone(),
            version: applied.version,
            application: applied.application.clone(),
            plan: applied.plan.clone(),
            started: applied.since,
            broker_url: None,
            not_running,
        }))
    }

    /// The agents that joined, each with the components it was assigned and how it is doing.
    fn machines(&self) -> Vec<Machine> {
        let cluster = lock(&self.cluster);
        let kind_of = |component: &str| {
            cluster
                .deployed
                .as_ref()
                .and_then(|applied| {
                    applied.plan.assignments.iter().find(|assignment| assignment.component == component)
                })
                .map_or("component", |assignment| assignment.kind.name())
                .to_string()
        };
        cluster
            .agents
            .iter()
            .map(|(name, agent)| {
                let planned = cluster
                    .deployed
                    .as_ref()
                    .and_then(|applied| applied.plan.hosts.iter().find(|host| &host.host == name));
                let components = cluster
                    .assignments
                    .get(name)
                    .map(|assignment| {
                        assignment.components.iter().map(|component| (component.clone(), kind_of(component))).collect()
                    })
                    .unwrap_or_default();
                Machine {
                    name: name.clone(),
                    tier: agent.join.tier.or(planned.map(|host| host.tier)),
                    pool: planned.and_then(|host| host.pool.clone()),
                    labels: agent.join.labels.clone(),
                    cpu: agent.join.resources.cpu,
                    memory_bytes: agent.join.resources.memory_bytes,
                    components,
                    joined: Some(Joined {
                        alive: !agent.lost,
                        seconds_since_heartbeat: agent.last_seen.elapsed().as_secs_f64(),
                        arch: agent.join.resources.arch.clone(),
                        disk_free_bytes: agent.join.resources.disk_free_bytes,
                        // What a lost agent used is not what it uses now.
                        usage: agent.usage.filter(|_| !agent.lost),
                    }),
                }
            })
            .collect()
    }

    fn placement(&self) -> Vec<Placed> {
        lock(&self.cluster).placed.clone()
    }

    /// The metrics the live agents reported last (a lost agent's are not current).
    fn metrics(&self) -> Vec<MetricsSnapshot> {
        let cluster = lock(&self.cluster);
        cluster.agents.values().filter(|agent| !agent.lost).flat_map(|agent| agent.metrics.iter().cloned()).collect()
    }

    fn services(&self) -> Vec<ServiceState> {
        let cluster = lock(&self.cluster);
        let mut services: BTreeMap<String, ServiceState> = BTreeMap::new();
        for state in cluster.agents.values().filter(|agent| !agent.lost).flat_map(|agent| &agent.services) {
            services
                .entry(state.name.clone())
                .or_insert_with(|| ServiceState { name: state.name.clone(), ..ServiceState::default() })
                .add(state);
        }
        services.into_values().collect()
    }

    /// The records every live agent reported for `source`, oldest first.
    fn feed(&self, source: &str) -> Option<FeedRecords> {
        let cluster = lock(&self.cluster);
        let mut reports = cluster
            .agents
            .values()
            .filter(|agent| !agent.lost)
            .flat_map(|agent| agent.feeds.iter().filter(|report| report.source == source))
            .peekable();
        let fields = reports.peek()?.fields.clone();
        let records = reports.flat_map(FeedReport::records).collect();
        Some(FeedRecords { fields, records })
    }

    fn state(&self) -> &StateStore {
        &self.state
    }

    /// The gateway: a prediction goes to a live agent that runs the service (in turn when there are several), and
    /// its answer — predictions, or a refusal with its status and `Retry-After` — comes back as it is.
    fn predict(&self, service: String, body: Vec<u8>) -> Prediction<'_> {
        Box::pin(async move {
            let targets: Vec<String> = {
                let cluster = lock(&self.cluster);
                let services: Vec<&String> = cluster
                    .deployed
                    .iter()
                    .flat_map(|applied| applied.application.services.iter().map(|service| &service.name))
                    .collect();
                if !services.contains(&&service) {
                    return Err(crate::serving::unknown_service(&service, services.into_iter()));
                }
                // Agents placement gave the service to, once they say they serve it (an agent that has just been
                // given it may still be loading its model).
                cluster
                    .placed
                    .iter()
                    .filter(|placed| placed.component == service)
                    .filter_map(|placed| placed.host.as_ref())
                    .filter_map(|host| cluster.agents.get(host).filter(|agent| !agent.lost))
                    .filter(|agent| agent.services.iter().any(|state| state.name == service))
                    .filter_map(|agent| agent.join.api_address.clone())
                    .collect()
            };
            if targets.is_empty() {
                return Err(Refusal {
                    status: 503,
                    message: format!(
                        "no live agent serves `{service}` over HTTP (agents serve it when started with --api)"
                    ),
                    retry_after_seconds: Some(1),
                });
            }
            let turn = self.next_replica.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let target = &targets[turn % targets.len()];
            forward(&self.gateway, target, &service, body).await
        })
    }

    fn prometheus(&self) -> String {
        let cluster = lock(&self.cluster);
        let label = |name: &str| format!("agent=\"{name}\",");
        let snapshots: Vec<(String, MetricsSnapshot)> = cluster
            .agents
            .iter()
            .flat_map(|(name, agent)| agent.metrics.iter().map(move |snapshot| (label(name), snapshot.clone())))
            .collect();
        let mut text = stratum_dataplane::metrics::render_prometheus(&snapshots);
        let services: Vec<(String, ServiceState)> = cluster
            .agents
            .iter()
            .flat_map(|(name, agent)| agent.services.iter().map(move |state| (label(name), state.clone())))
            .collect();
        text.push_str(&crate::serving::render_prometheus(&services));
        let alive = cluster.agents.values().filter(|agent| !agent.lost).count();
        text.push_str(
            "# HELP stratum_agents Agents known to the control plane, by state.\n# TYPE stratum_agents gauge\n",
        );
        text.push_str(&format!("stratum_agents{{state=\"alive\"}} {alive}\n"));
        text.push_str(&format!("stratum_agents{{state=\"lost\"}} {}\n", cluster.agents.len() - alive));
        text
    }
}

/// Sends a prediction request to the agent at `target` and reads its answer back.
async fn forward(
    client: &reqwest::Client,
    target: &str,
    service: &str,
    body: Vec<u8>,
) -> Result<serde_json::Value, Refusal> {
    let bad_gateway = |message: String| Refusal { status: 502, message, retry_after_seconds: None };
    let answer = client
        .post(format!("http://{target}/v1/services/{service}/predict"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|error| bad_gateway(format!("agent at {target}: {error}")))?;
    let status = answer.status().as_u16();
    let retry_after_seconds = answer.headers().get("retry-after").and_then(|value| value.to_str().ok()?.parse().ok());
    let bytes = answer.bytes().await.map_err(|error| bad_gateway(format!("agent at {target}: {error}")))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|error| bad_gateway(format!("agent at {target} answered no JSON: {error}")))?;
    if status == 200 {
        return Ok(value);
    }
    let message = value["error"]["message"].as_str().map_or_else(|| value.to_string(), str::to_string);
    Err(Refusal { status, message, retry_after_seconds })
}
