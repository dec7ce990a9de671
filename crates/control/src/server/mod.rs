//! `stratum server`: the control plane for real machines. It keeps the applied application, the agents that joined
//! and every event in its state store; agents connect to it (never the other way round), heartbeat, and are told
//! what to run. A reconcile loop, level-triggered, runs twice a second: agents silent for longer than the timeout
//! are lost, every component is placed (see [`crate::placement`]), and each agent's assignment follows — so a lost
//! agent's components move to others, and come back when it does. A restarted server reads its state back and
//! the agents, which kept running, carry on.
//!
//! The server speaks no HTTP itself: the `stratum-api` crate serves its routes (the agents' protocol among them,
//! behind the join token) and its web interface, and reads it as a [`Deployment`](crate::deployment::Deployment) like a `stratum up`.

use crate::Error;
use crate::placement::Placed;
use crate::protocol::{Assignment, CheckpointCopy, FeedReport, Heartbeat, HeartbeatAnswer, Join};
use crate::qos::ClusterPolicies;
use crate::serving::{Refusal, ServiceState};
use crate::state::{CheckpointChange, KeptCheckpoint, StateStore};
use crate::training::TrainingJob;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use stratum_core::events::EventKind;
use stratum_core::ir::{Application, Tier};
use stratum_core::plan::Plan;
use stratum_core::sync::lock;
use stratum_dataplane::metrics::MetricsSnapshot;
use tokio::sync::{Notify, watch};

mod gateway;
mod jobs;
mod placing;
mod views;

use crate::reconcile;
use jobs::TrainingScheduler;
pub use jobs::TrainingStatus;
use placing::Placement;

/// An agent as the state store keeps it: what it said at its latest join, and the certificate it was issued then
/// (a record from before certificates were pinned reads as the join alone).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredAgent {
    #[serde(flatten)]
    join: Join,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate_sha256: Option<String>,
}

/// What an agent gets when it joins.
#[derive(Debug)]
pub struct Joined {
    /// Its own key, issued at its first join.
    pub key: Option<String>,
    /// Its certificate and key, on a cluster with TLS.
    pub identity: Option<stratum_dataplane::tls::Identity>,
    /// The key its own API takes: derived from the control plane's secret and its own key, presented by the gateway.
    pub api_key: String,
}

/// How a control plane runs: its state directory, tokens, agent timeout and TLS.
#[derive(Clone)]
pub struct ServerOptions {
    /// The state store, the model store agents pull from, the blob store and the application's source.
    pub state_dir: PathBuf,
    /// An agent silent for this long is lost.
    pub agent_timeout: Duration,
    /// The cluster's join token, which the gateway presents to the agents' APIs.
    pub join_token: String,
    /// The cluster's certificate authority: the server signs each agent's certificate with it at join, and the
    /// gateway trusts the agents through it. `None` for a cluster without TLS (loopback development).
    pub authority: Option<Arc<crate::pki::Authority>>,
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token stays out of logs.
        formatter
            .debug_struct("ServerOptions")
            .field("state_dir", &self.state_dir)
            .field("agent_timeout", &self.agent_timeout)
            .field("tls", &self.authority.is_some())
            .finish_non_exhaustive()
    }
}

/// The version applied last.
struct AppliedVersion {
    application: Arc<Application>,
    plan: Arc<Plan>,
    version: u32,
    since: Instant,
    /// The application's nodes and the plan's machines by name (a heartbeat looks its agent up in them: a list
    /// would cost the fleet's size on every one).
    nodes: HashMap<String, usize>,
    hosts: HashMap<String, usize>,
}

impl AppliedVersion {
    fn new(application: Application, plan: Plan, version: u32) -> AppliedVersion {
        let nodes = application.nodes.iter().enumerate().map(|(at, node)| (node.name.clone(), at)).collect();
        let hosts = plan.hosts.iter().enumerate().map(|(at, host)| (host.host.clone(), at)).collect();
        AppliedVersion {
            application: Arc::new(application),
            plan: Arc::new(plan),
            version,
            since: Instant::now(),
            nodes,
            hosts,
        }
    }

    /// The application's node named `name`.
    fn node(&self, name: &str) -> Option<&stratum_core::ir::Node> {
        self.nodes.get(name).map(|at| &self.application.nodes[*at])
    }

    /// The plan's machine named `name`.
    fn host(&self, name: &str) -> Option<&stratum_core::plan::HostUsage> {
        self.hosts.get(name).map(|at| &self.plan.hosts[*at])
    }
}

struct AgentRecord {
    join: Join,
    /// The sha256 of the certificate issued at its latest join (on a cluster with TLS): the only one paths to it
    /// and the gateway take.
    certificate_sha256: Option<String>,
    /// The key its own API takes, which the gateway presents (see [`api_key_of`]).
    api_key: String,
    last_seen: Instant,
    lost: bool,
    /// It came back after it was lost, and has not had an assignment since: the streams it ran may have gone on
    /// elsewhere meanwhile.
    came_back: bool,
    metrics: Vec<MetricsSnapshot>,
    services: Vec<ServiceState>,
    usage: Option<crate::usage::Usage>,
    feeds: Vec<FeedReport>,
}

impl AgentRecord {
    fn new(stored: StoredAgent, api_key: String) -> AgentRecord {
        AgentRecord {
            join: stored.join,
            certificate_sha256: stored.certificate_sha256,
            api_key,
            last_seen: Instant::now(),
            lost: false,
            came_back: false,
            metrics: Vec::new(),
            services: Vec::new(),
            usage: None,
            feeds: Vec::new(),
        }
    }
}

#[derive(Default)]
struct Cluster {
    applied: Option<AppliedVersion>,
    agents: BTreeMap<String, AgentRecord>,
    placed: Vec<Placed>,
    /// What each agent runs; a heartbeat compares keys, and the assignment is copied only to be sent.
    assignments: BTreeMap<String, Arc<Assignment>>,
    /// Something placement depends on changed since its last pass (an agent joined, was lost or came back, a
    /// version was applied, a state was handed over): the next pass places again. Otherwise the loop's pass only
    /// looks for lost agents (see [`placing`]).
    changed: bool,
    /// When placement last placed everything, changed or not.
    placed_at: Option<Instant>,
    /// When the loop last looked for lost agents (see `placing::stall`).
    looked_at: Option<Instant>,
    /// The model files that pass placed with.
    model_files: BTreeMap<String, (u32, String)>,
    /// sha256 of model files by path, with the modification time it was computed for.
    model_hashes: BTreeMap<PathBuf, (SystemTime, String)>,
    jobs: BTreeMap<u64, TrainingJob>,
    /// The model each service serves, by service, as recorded in the state store (with its file's sha256).
    served: BTreeMap<String, crate::state::ServedModel>,
    /// Model files refused because they changed since they were recorded as served, with the modification time
    /// they were refused at (told once each).
    refused_models: BTreeSet<(PathBuf, SystemTime)>,
    /// The applied version's `migrate` policies, and when they were last evaluated.
    policies: ClusterPolicies,
    policies_evaluated: Option<Instant>,
    /// The newest checkpoint of each stream, and the agent that holds that state (it sent it, or it was handed
    /// it): what a stream takes up when it moves off a lost agent (see [`hand_over`]).
    checkpoints: BTreeMap<String, (String, CheckpointCopy)>,
    /// Windowed and joining streams on their way from one live agent to another, by stream (see [`Handover`]).
    handovers: BTreeMap<String, Handover>,
    /// States handed over, waiting for the assignment of the stream's next agent, which takes them up.
    handed: BTreeMap<String, CheckpointCopy>,
    /// Streams whose entry in `checkpoints` or `handed` changed since they were last written to the state store
    /// (see [`Server::store_checkpoints`]).
    checkpoints_changed: BTreeSet<String>,
}

/// A stateful stream that moves while the agent it leaves runs: it runs on neither until that agent has handed its
/// state over (the next one takes it up: no window is emitted half on each), that agent was lost, or
/// [`HAND_OVER_WAIT`] passed (the next one then goes on from the last copy of its checkpoint).
struct Handover {
    from: String,
    since: Instant,
    /// Its state came (it waits in `Cluster::handed`, kept in the state store, for the next agent).
    arrived: bool,
}

/// About how many heartbeats a second the control plane takes from a large fleet (see
/// [`Server::heartbeat_interval`]).
const HEARTBEATS_PER_SECOND: f64 = 2000.0;

/// How long a stream that moves waits for the agent it leaves to hand its state over.
const HAND_OVER_WAIT: Duration = Duration::from_secs(10);

/// The control plane of many machines: agents join it and run what it assigns (see the module documentation).
pub struct Server {
    options: ServerOptions,
    state: StateStore,
    cluster: Mutex<Cluster>,
    /// Forwards predictions to the agents that run the services.
    gateway: gateway::Clients,
    /// Spreads requests over a service's replicas on several agents.
    next_replica: std::sync::atomic::AtomicUsize,
    /// Wakes the training scheduler when agents report results.
    training_wake: Arc<Notify>,
    /// Wakes the placement loop for a whole pass.
    placement_wake: Arc<Notify>,
    /// The sha256 of the key issued to each agent name the state store was asked about (none: no key yet), so
    /// that a heartbeat is checked without a read of the store.
    keys: Mutex<HashMap<String, Option<String>>>,
    /// The secret every data path's key and every agent's API key are derived from (`STATE_DIR/path.secret`,
    /// made at the first start).
    path_secret: Vec<u8>,
}

impl Cluster {
    /// What the state store must change for the streams whose kept state changed since it was last written: each
    /// as the cluster keeps it now (the marks stay until the store took them).
    fn checkpoint_changes(&self) -> Vec<CheckpointChange> {
        let mut changes = Vec::with_capacity(self.checkpoints_changed.len() * 2);
        for component in self.checkpoints_changed.iter().cloned() {
            changes.push(match self.checkpoints.get(&component) {
                Some((holder, copy)) => CheckpointChange::Keep(KeptCheckpoint {
                    component: component.clone(),
                    holder: Some(holder.clone()),
                    file: copy.file.clone(),
                }),
                None => CheckpointChange::Forget { component: component.clone(), handed: false },
            });
            changes.push(match self.handed.get(&component) {
                Some(copy) => CheckpointChange::Keep(KeptCheckpoint {
                    component: component.clone(),
                    holder: None,
                    file: copy.file.clone(),
                }),
                None => CheckpointChange::Forget { component, handed: true },
            });
        }
        changes
    }

    /// Runs `version` of the application from now on, with its own policies.
    fn apply(&mut self, application: Application, plan: Plan, version: u32) {
        self.policies = ClusterPolicies::new(&application);
        self.applied = Some(AppliedVersion::new(application, plan, version));
        self.changed = true;
    }
}

/// Keeps the checkpoints an agent sent of the streams whose state it holds, and forgets those it says ended
/// cleanly; the streams whose copy it kept. An agent holds a stream's state while the stream is placed on it, or
/// is on its way from it to another agent (the state it hands over holds what these held). Any other copy is
/// stale: an agent that was cut off, sending what it took in after its stream went on elsewhere — kept, what it
/// acknowledged would be lost with the state it then throws away.
fn keep_checkpoints(
    cluster: &mut Cluster,
    agent: &str,
    copies: Vec<CheckpointCopy>,
    removed: Vec<String>,
) -> Vec<String> {
    let holds = |component: &str| match cluster.handovers.get(component) {
        Some(handover) => handover.from == agent,
        None => {
            cluster.placed.iter().any(|placed| placed.component == component && placed.host.as_deref() == Some(agent))
        }
    };
    let fresh: Vec<CheckpointCopy> = copies.into_iter().filter(|copy| holds(&copy.component)).collect();
    let mut kept = Vec::with_capacity(fresh.len());
    for copy in fresh {
        kept.push(copy.component.clone());
        cluster.checkpoints_changed.insert(copy.component.clone());
        cluster.checkpoints.insert(copy.component.clone(), (agent.to_string(), copy));
    }
    for component in removed {
        if cluster.checkpoints.get(&component).is_some_and(|(from, _)| from == agent) {
            cluster.checkpoints.remove(&component);
            cluster.checkpoints_changed.insert(component);
        }
    }
    kept
}

/// What goes with an assignment for `agent` besides it: the checkpoints of the streams it takes over from a lost
/// agent (it takes them up: the open windows live on; from now on it holds that state, so they are handed once),
/// and the streams whose state another agent still holds (that one drains them and emits their windows; a
/// checkpoint this agent kept of them from before is stale).
fn hand_over(cluster: &mut Cluster, agent: &str, assignment: &Assignment) -> (Vec<CheckpointCopy>, Vec<String>) {
    let (mut take_up, mut discard) = (Vec::new(), Vec::new());
    for component in &assignment.components {
        // A state handed over for it: the stream goes on with it here; an empty one, it starts empty.
        if let Some(copy) = cluster.handed.remove(component) {
            cluster.checkpoints_changed.insert(component.clone());
            if copy.file.is_empty() {
                cluster.checkpoints.remove(component);
                discard.push(component.clone());
            } else {
                cluster.checkpoints.insert(component.clone(), (agent.to_string(), copy.clone()));
                take_up.push(copy);
            }
            continue;
        }
        let Some((from, copy)) = cluster.checkpoints.get(component) else { continue };
        if from == agent {
            continue;
        }
        if cluster.agents.get(from).is_none_or(|record| record.lost) {
            let copy = copy.clone();
            cluster.checkpoints_changed.insert(component.clone());
            cluster.checkpoints.insert(component.clone(), (agent.to_string(), copy.clone()));
            take_up.push(copy);
        } else {
            discard.push(component.clone());
        }
    }
    (take_up, discard)
}

/// The streams that leave `agent` with `assignment` by handing their state over instead of emitting it: those on
/// their way to another agent, and, when it is back from being lost, every stateful stream it is not given (it may
/// still run ones that went on elsewhere meanwhile; what it sends of those is not waited for).
fn leaving(cluster: &mut Cluster, agent: &str, assignment: &Assignment) -> Vec<String> {
    let mut leaving: Vec<String> = cluster
        .handovers
        .iter()
        .filter(|(_, handover)| handover.from == agent && !handover.arrived)
        .map(|(component, _)| component.clone())
        .collect();
    let came_back = cluster.agents.get_mut(agent).is_some_and(|record| std::mem::replace(&mut record.came_back, false));
    if let (true, Some(deployed)) = (came_back, &cluster.applied) {
        for stream in stateful_streams(&deployed.application) {
            if !assignment.components.contains(&stream.name) && !leaving.contains(&stream.name) {
                leaving.push(stream.name.clone());
            }
        }
    }
    leaving
}

/// The streams that hold state between batches (windows, joins): what a move hands over.
fn stateful_streams(application: &Application) -> impl Iterator<Item = &stratum_core::ir::Stream> {
    application.streams.iter().filter(|stream| stream.window.is_some() || stream.join.is_some())
}

impl Server {
    /// Opens the embedded state store in the state directory, and runs on it (see [`Server::open_with`]).
    pub fn open(options: ServerOptions) -> Result<Arc<Server>, Error> {
        let state = StateStore::open(&options.state_dir.join("state.db"))?;
        Server::open_with(options, state)
    }

    /// Reads back from `state` the applied application and the agents that had joined (they count as alive until
    /// the timeout says otherwise). On a store replicas share, this replica must lead already (see
    /// [`crate::lead::Lead`]).
    pub fn open_with(options: ServerOptions, state: StateStore) -> Result<Arc<Server>, Error> {
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
            // What each service served, with the digest its file had then: what it is verified against.
            for served in state.served_models(&app)? {
                cluster.served.insert(served.service.clone(), served);
            }
        }
        let path_secret = path_secret(&options.state_dir)?;
        for (name, description) in state.agents()? {
            if let Ok(stored) = serde_json::from_str::<StoredAgent>(&description) {
                let api_key = api_key_of(&path_secret, &name, state.agent_key(&name)?.as_deref());
                cluster.agents.insert(name, AgentRecord::new(stored, api_key));
            }
        }
        // The streams' states: what agents acknowledged their sources for, kept for when an agent is lost.
        for kept in state.kept_checkpoints()? {
            let copy = CheckpointCopy { component: kept.component.clone(), file: kept.file };
            match kept.holder {
                Some(holder) => cluster.checkpoints.insert(kept.component, (holder, copy)).map(|_| ()),
                None => cluster.handed.insert(kept.component, copy).map(|_| ()),
            };
        }
        let gateway = gateway::Clients::new(options.authority.as_ref().map(|authority| authority.certificate_pem()))?;
        let server = Arc::new(Server {
            path_secret,
            options,
            state,
            cluster: Mutex::new(cluster),
            gateway,
            next_replica: std::sync::atomic::AtomicUsize::new(0),
            training_wake: Arc::new(Notify::new()),
            placement_wake: Arc::new(Notify::new()),
            keys: Mutex::default(),
        });
        server.event(EventKind::ServerStarted, None, &format!("{} agents known", lock(&server.cluster).agents.len()));
        Ok(server)
    }

    fn app(&self) -> String {
        lock(&self.cluster)
            .applied
            .as_ref()
            .map_or_else(|| crate::state::NO_APP.into(), |deployed| deployed.application.name.clone())
    }

    fn event(&self, kind: EventKind, component: Option<&str>, message: &str) {
        let _ = self.state.record_event(&self.app(), kind, component, message);
    }

    /// Runs the control plane's loops — placement and the training scheduler — until `stop` turns true.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let placement = reconcile::run(Placement(self.clone()), self.placement_wake.clone(), stop.clone());
        let training = reconcile::run(TrainingScheduler(self.clone()), self.training_wake.clone(), stop);
        tokio::join!(placement, training);
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

    /// Checks the key an agent presents (header [`AGENT_KEY_HEADER`]) against the one issued to its name at its
    /// first join. A name no key was issued for needs none (it has not joined yet, or was forgotten).
    pub fn check_agent_key(&self, name: &str, key: Option<&str>) -> Result<(), Refusal> {
        let issued = self.issued_key(name).map_err(|error| Refusal {
            status: 500,
            message: format!("the state store cannot say which key `{name}` holds: {error}"),
            retry_after_seconds: Some(1),
        })?;
        match (issued, key) {
            (None, _) => Ok(()),
            (Some(issued), Some(key)) if stratum_ml::data::sha256_hex(key.as_bytes()) == issued => Ok(()),
            (Some(_), presented) => Err(Refusal {
                status: 403,
                message: format!(
                    "the agent name `{name}` is held by another machine, and this one {} its key. If this machine \
                     replaces it, an operator forgets the old one first: `stratum forget {name}` (DELETE /v1/agents/{name})",
                    if presented.is_some() { "did not present" } else { "presented no" }
                ),
                retry_after_seconds: None,
            }),
        }
    }

    /// The sha256 of the key issued to `name`, if any: from memory once the state store said.
    fn issued_key(&self, name: &str) -> Result<Option<String>, Error> {
        if let Some(known) = lock(&self.keys).get(name) {
            return Ok(known.clone());
        }
        let issued = self.state.agent_key(name)?;
        lock(&self.keys).insert(name.to_string(), issued.clone());
        Ok(issued)
    }

    /// How often agents heartbeat (told at each join and in every heartbeat's answer): every second while the fleet
    /// is small; in a larger one so that the control plane takes about 2,000 heartbeats a second, yet at least three
    /// times per agent timeout (never more often than once a second), so that a lost agent is noticed as soon.
    pub fn heartbeat_interval(&self) -> Duration {
        self.interval_for(lock(&self.cluster).agents.len())
    }

    /// The heartbeat interval for a fleet of `agents` (see [`Server::heartbeat_interval`]).
    fn interval_for(&self, agents: usize) -> Duration {
        let spread = Duration::from_secs_f64(agents as f64 / HEARTBEATS_PER_SECOND);
        spread.min(self.options.agent_timeout / 3).max(Duration::from_secs(1))
    }

    /// The cluster's authority (PEM), when it runs with TLS.
    pub fn authority_pem(&self) -> Option<&str> {
        self.options.authority.as_ref().map(|authority| authority.certificate_pem())
    }

    /// An operator forgets an agent (a machine that is gone for good, or is being replaced): its record and its
    /// key go, its components are placed elsewhere, and the next join under its name is a new machine with a new
    /// key. Whether it was known.
    pub fn forget_agent(&self, name: &str) -> Result<bool, Error> {
        let stored = self.state.forget_agent(name)?;
        lock(&self.keys).remove(name);
        let known = lock(&self.cluster).agents.remove(name).is_some();
        if stored || known {
            let message = "forgotten by an operator: the next join under its name is a new machine";
            self.event(EventKind::AgentLost, Some(name), message);
            self.reconcile();
        }
        Ok(stored || known)
    }

    /// An agent joins (or joins again): it is alive from now on, and the next reconcile gives it work. `key` is the
    /// one it holds, if any (see [`Server::check_agent_key`]); the answer is the key issued to it when it had none,
    /// and on a cluster with TLS a new certificate naming it ([`stratum_dataplane::tls::agent_identity`]), which
    /// it presents on its data port and its API.
    pub fn join(&self, join: Join, key: Option<&str>) -> Result<Joined, Refusal> {
        self.check_agent_key(&join.name, key)?;
        let identity = match &self.options.authority {
            Some(authority) => {
                Some(authority.issue(&stratum_dataplane::tls::agent_identity(&join.name), &[]).map_err(|error| {
                    Refusal {
                        status: 400,
                        message: format!("no certificate can name the agent `{}`: {error}", join.name),
                        retry_after_seconds: None,
                    }
                })?)
            }
            None => None,
        };
        // The agent's key: the one it holds, or a new one for a name that has none; its API's key follows from it.
        let (issued, key_sha256) = match self.issued_key(&join.name) {
            Ok(Some(held)) => (None, held),
            _ => {
                let key = crate::api::random_hex(32).map_err(|error| Refusal {
                    status: 500,
                    message: format!("no randomness for an agent key: {error}"),
                    retry_after_seconds: Some(1),
                })?;
                let key_sha256 = stratum_ml::data::sha256_hex(key.as_bytes());
                self.state.record_agent_key(&join.name, &key_sha256).map_err(|error| Refusal {
                    status: 500,
                    message: format!("cannot keep the agent's key: {error}"),
                    retry_after_seconds: Some(1),
                })?;
                lock(&self.keys).insert(join.name.clone(), Some(key_sha256.clone()));
                (Some(key), key_sha256)
            }
        };
        let api_key = api_key_of(&self.path_secret, &join.name, Some(&key_sha256));
        let certificate_sha256 = match &identity {
            Some(identity) => {
                Some(stratum_dataplane::tls::certificate_sha256(&identity.certificate_pem).map_err(|error| {
                    Refusal {
                        status: 500,
                        message: format!("the certificate issued to `{}` cannot be read: {error}", join.name),
                        retry_after_seconds: None,
                    }
                })?)
            }
            None => None,
        };
        self.admit(StoredAgent { join, certificate_sha256 }, api_key.clone());
        Ok(Joined { key: issued, identity, api_key })
    }

    fn admit(&self, stored: StoredAgent, api_key: String) {
        let join = &stored.join;
        let name = join.name.clone();
        let _ = self.state.record_agent(&name, &serde_json::to_string(&stored).unwrap_or_default());
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
        lock(&self.cluster).agents.insert(name.clone(), AgentRecord::new(stored, api_key));
        self.event(EventKind::AgentJoined, Some(&name), &message);
        self.place_soon();
    }

    /// An agent's heartbeat: what it reports is kept, and the answer says what it should run and train. None for
    /// an agent that has not joined (it joins again).
    pub fn heartbeat(self: &Arc<Self>, name: &str, beat: Heartbeat) -> Option<HeartbeatAnswer> {
        let (back, handed_over, answer, training, checkpoints_kept, leased, interval) = {
            let mut cluster = lock(&self.cluster);
            let agent = cluster.agents.get_mut(name)?;
            agent.last_seen = Instant::now();
            agent.metrics = beat.metrics;
            agent.services = beat.services;
            agent.usage = beat.usage;
            agent.feeds = beat.feeds;
            let back = std::mem::replace(&mut agent.lost, false);
            agent.came_back |= back;
            let tier = agent.join.tier.or_else(|| self.planned_tier(&cluster, name));
            let mut kept = keep_checkpoints(&mut cluster, name, beat.checkpoints, beat.checkpoints_removed);
            let mut handed_over = false;
            for copy in beat.handed_over {
                if let Some(handover) = cluster.handovers.get_mut(&copy.component)
                    && handover.from == name
                {
                    handover.arrived = true;
                    handed_over = true;
                    kept.push(copy.component.clone());
                    cluster.checkpoints_changed.insert(copy.component.clone());
                    cluster.handed.insert(copy.component.clone(), copy);
                }
            }
            let assignment = cluster.assignments.get(name).cloned();
            // The lease goes only to an agent that runs, or is told, what it is assigned: one that is back from
            // being lost has none until the next pass gives it one, and may run streams that went on elsewhere.
            let leased = assignment.is_some();
            let answer = match assignment {
                Some(assignment) if beat.running.as_ref() != Some(&assignment.key) => {
                    let (take_up, discard) = hand_over(&mut cluster, name, &assignment);
                    let leaving = leaving(&mut cluster, name, &assignment);
                    Some((assignment, take_up, discard, leaving))
                }
                _ => None,
            };
            let training = self.train_on_agent(&mut cluster, name, tier, beat.results, beat.training_slots);
            // Counted under the lock this heartbeat holds anyway: a heartbeat takes it once.
            let interval = self.interval_for(cluster.agents.len());
            // The agent acknowledges what the copies hold once they are durable here: none, if they are not.
            if !self.store_checkpoints(&mut cluster) {
                kept.clear();
            }
            (back, handed_over, answer, training, kept, leased, interval)
        };
        // Results came in: the scheduler looks for finished jobs now.
        self.training_wake.notify_one();
        for problem in &beat.problems {
            self.event(EventKind::AgentProblem, Some(name), problem);
        }
        for event in &beat.events {
            self.event(event.kind, Some(&event.component), &format!("{} (on {name})", event.message));
        }
        if back {
            self.event(EventKind::AgentBack, Some(name), "heartbeats again");
        }
        // A stream's state came, or the agent is back: placement looks again.
        if back || handed_over {
            self.place_soon();
        }
        let (assignment, take_up, discard_checkpoints, hand_over) = match answer {
            // Copied only now, to be sent: most heartbeats find the agent runs its assignment already.
            Some((assignment, take_up, discard, hand_over)) => {
                (Some(Assignment::clone(&assignment)), take_up, discard, hand_over)
            }
            None => (None, Vec::new(), Vec::new(), Vec::new()),
        };
        for copy in &take_up {
            self.event(EventKind::HandedOver, Some(&copy.component), &format!("its checkpoint goes to {name}"));
        }
        let lease_milliseconds = if leased { self.options.agent_timeout.as_millis() as u64 } else { 0 };
        Some(HeartbeatAnswer {
            assignment,
            take_up,
            discard_checkpoints,
            hand_over,
            training,
            checkpoints_kept,
            lease_milliseconds,
            heartbeat_milliseconds: Some(interval.as_millis() as u64),
        })
    }

    /// Writes what changed of the streams' kept states to the state store, under the cluster's lock (so that a
    /// newer state is never overwritten by an older one); whether it could.
    fn store_checkpoints(&self, cluster: &mut Cluster) -> bool {
        match self.state.change_checkpoints(&cluster.checkpoint_changes()) {
            Ok(()) => {
                cluster.checkpoints_changed.clear();
                true
            }
            Err(error) => {
                tracing::warn!(%error, "cannot keep the streams' checkpoints in the state store");
                false
            }
        }
    }

    /// The application's node named like an agent, if there is one.
    fn node_of<'a>(&self, cluster: &'a Cluster, name: &str) -> Option<&'a stratum_core::ir::Node> {
        cluster.applied.as_ref()?.node(name)
    }

    /// An agent's labels: those it was started with, over those its node declares in the application.
    fn labels_of(&self, cluster: &Cluster, name: &str, own: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let declared = self.node_of(cluster, name).map(|node| node.machine.labels.clone()).unwrap_or_default();
        declared.into_iter().chain(own.clone()).collect()
    }

    /// The tier of the application's node named like the agent, when the agent did not say.
    fn planned_tier(&self, cluster: &Cluster, name: &str) -> Option<Tier> {
        cluster.applied.as_ref()?.host(name).map(|host| host.tier)
    }
}

/// The key the API of the agent `name` takes, and only that agent's: derived from the control plane's secret and
/// the sha256 of the agent's own key (so it outlives restarts, and a machine that replaced a forgotten one under
/// its name has another); handed to the agent at each join, kept in its record, and presented by the gateway. A
/// machine that holds the join token, or another agent's key, cannot call it.
fn api_key_of(path_secret: &[u8], name: &str, issued_key_sha256: Option<&str>) -> String {
    // No path is named with spaces: this key is no path's.
    let label = format!("api of agent {name} {}", issued_key_sha256.unwrap_or_default());
    stratum_dataplane::transfer::PathKey::derive_hex(path_secret, &label)
}

/// The header an agent presents its own key in, with every join and heartbeat.
pub const AGENT_KEY_HEADER: &str = "x-stratum-agent-key";

/// The control plane's secret for path keys: read from `STATE_DIR/path.secret`, or made (32 random bytes, mode
/// 0600) at the first start. It outlives restarts, so that running paths keep their keys.
fn path_secret(state_dir: &std::path::Path) -> Result<Vec<u8>, Error> {
    use std::io::Write;
    let path = state_dir.join("path.secret");
    match std::fs::read(&path) {
        Ok(secret) if secret.len() == 32 => return Ok(secret),
        Ok(_) => return Err(Error::State(format!("{} is not a path secret (32 bytes)", path.display()).into())),
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::State(format!("reading {}: {error}", path.display()).into()));
        }
        Err(_) => {}
    }
    let mut secret = vec![0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|error| Error::State(format!("no randomness for the path secret: {error}").into()))?;
    let io = |error: std::io::Error| Error::State(format!("writing {}: {error}", path.display()).into());
    std::fs::create_dir_all(state_dir).map_err(io)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(io)?;
    file.write_all(&secret).and_then(|()| file.sync_all()).map_err(io)?;
    Ok(secret)
}
