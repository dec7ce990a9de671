//! `stratum server`: the control plane for real machines. It keeps the applied application, the agents that joined
//! and every event in its state store; agents connect to it (never the other way round), heartbeat, and are told
//! what to run. A reconcile loop, level-triggered, runs twice a second: agents silent for longer than the timeout
//! are lost, every component is placed (see [`crate::placement`]), and each agent's assignment follows — so a lost
//! agent's components move to others, and come back when it does. A restarted server reads its state back and
//! the agents, which kept running, carry on.

use crate::Error;
use crate::api::{error_response, json_response, same_token};
use crate::placement::{LiveAgent, Placed, assignments, place};
use crate::protocol::{Apply, Assignment, Heartbeat, HeartbeatAnswer, Join, TrainingRequest};
use crate::state::StateStore;
use crate::training::{JobState, TrainingJob};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use stratum_core::ir::Application;
use stratum_core::plan::Plan;
use stratum_dataplane::metrics::MetricsSnapshot;
use tokio::sync::watch;

#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    /// The operator's token: `stratum apply`, `stratum train --server`, and everything a viewer may.
    pub token: String,
    /// The viewer's token, if viewers may read status, events and metrics.
    pub viewer_token: Option<String>,
    /// The token agents join with; it lets them run what they are told, and nothing an operator does.
    pub join_token: String,
    /// An agent silent for this long is lost.
    pub agent_timeout: Duration,
}

struct Deployed {
    application: Application,
    plan: Plan,
    version: u32,
}

struct AgentRecord {
    join: Join,
    last_seen: Instant,
    lost: bool,
    metrics: Vec<MetricsSnapshot>,
}

#[derive(Default)]
struct Cluster {
    deployed: Option<Deployed>,
    agents: BTreeMap<String, AgentRecord>,
    placed: Vec<Placed>,
    assignments: BTreeMap<String, Assignment>,
    /// sha256 of model files by path, with the modification time it was computed for.
    model_hashes: BTreeMap<PathBuf, (SystemTime, String)>,
    jobs: BTreeMap<u64, TrainingJob>,
}

pub struct Server {
    options: ServerOptions,
    state: StateStore,
    cluster: Mutex<Cluster>,
    started: Instant,
    /// Forwards predictions to the agents that run the services.
    gateway: reqwest::Client,
    /// Spreads requests over a service's replicas on several agents.
    next_replica: std::sync::atomic::AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Server {
    /// Opens the state store and reads back the applied application and the agents that had joined (they count as
    /// alive until the timeout says otherwise).
    pub fn open(options: ServerOptions) -> Result<Arc<Server>, Error> {
        let state = StateStore::open(&options.state_dir.join("state.db"))?;
        let mut cluster = Cluster::default();
        if let Some((app, version, ir, plan)) = state.latest_deployment()? {
            let application: Application =
                serde_json::from_str(&ir).map_err(|error| Error::State(format!("`{app}` v{version}: {error}")))?;
            let plan: Plan =
                serde_json::from_str(&plan).map_err(|error| Error::State(format!("`{app}` v{version}: {error}")))?;
            cluster.deployed = Some(Deployed { application, plan, version });
        }
        for (name, description) in state.agents()? {
            if let Ok(join) = serde_json::from_str::<Join>(&description) {
                cluster
                    .agents
                    .insert(name, AgentRecord { join, last_seen: Instant::now(), lost: false, metrics: Vec::new() });
            }
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let gateway = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|error| Error::State(format!("HTTP client: {error}")))?;
        let server = Arc::new(Server {
            options,
            state,
            cluster: Mutex::new(cluster),
            started: Instant::now(),
            gateway,
            next_replica: std::sync::atomic::AtomicUsize::new(0),
        });
        server.event("server-started", None, &format!("{} agents known", lock(&server.cluster).agents.len()));
        Ok(server)
    }

    fn app(&self) -> String {
        lock(&self.cluster).deployed.as_ref().map_or_else(|| "-".into(), |deployed| deployed.application.name.clone())
    }

    fn event(&self, kind: &str, component: Option<&str>, message: &str) {
        let _ = self.state.record_event(&self.app(), kind, component, message);
    }

    /// Serves the API and runs the reconcile loop until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> Result<(), Error> {
        let listener = tokio::net::TcpListener::bind(self.options.listen)
            .await
            .map_err(|error| Error::Listen { address: self.options.listen.to_string(), message: error.to_string() })?;
        let reconciler = self.clone();
        let mut reconcile_stop = stop.clone();
        let reconciling = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = tick.tick() => reconciler.reconcile(),
                    _ = reconcile_stop.wait_for(|stopped| *stopped) => return,
                }
            }
        });
        let router = axum::Router::new()
            .route("/v1/agents/join", post(join))
            .route("/v1/agents/{name}/heartbeat", post(heartbeat))
            .route("/v1/apps", post(apply))
            .route("/v1/models/{name}/{version}", get(model))
            .route("/v1/services/{name}/predict", post(gateway))
            .route("/v1/blobs", post(put_blob))
            .route("/v1/blobs/{sha256}", get(get_blob))
            .route("/v1/training", post(start_training))
            .route("/v1/training/{job}", get(training_status))
            .route("/v1/status", get(status))
            .route("/v1/events", get(events))
            .route("/metrics", get(metrics))
            .with_state(self.clone());
        let served = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        });
        let result = served
            .await
            .map_err(|error| Error::Listen { address: self.options.listen.to_string(), message: error.to_string() });
        reconciling.abort();
        result
    }

    /// One pass of the control loop: who is alive, where everything runs, what each agent runs.
    pub fn reconcile(&self) {
        let mut events: Vec<(&'static str, Option<String>, String)> = Vec::new();
        {
            let mut cluster = lock(&self.cluster);
            let timeout = self.options.agent_timeout;
            for (name, agent) in cluster.agents.iter_mut() {
                let silent = agent.last_seen.elapsed() > timeout;
                if silent && !agent.lost {
                    agent.lost = true;
                    events.push((
                        "agent-lost",
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
                    Some(LiveAgent { name: name.clone(), tier, data_address: agent.join.data_address.clone() })
                })
                .collect();
            let lost: Vec<String> =
                cluster.agents.iter().filter(|(_, agent)| agent.lost).map(|(name, _)| name.clone()).collect();
            if let Some(deployed) = &cluster.deployed {
                let placed = place(&deployed.application, &deployed.plan, &live, &lost);
                for now in &placed {
                    let before = cluster
                        .placed
                        .iter()
                        .find(|old| old.component == now.component && old.instance == now.instance);
                    let moved = before.is_some_and(|before| before.host != now.host)
                        || before.is_none() && now.host.as_ref() != Some(&now.planned);
                    if moved {
                        let was_running = before.is_some_and(|before| before.host.is_some());
                        let message = match (&now.host, now.host.as_ref() == Some(&now.planned)) {
                            (Some(host), true) if was_running => format!("back on {host}, as planned"),
                            (Some(host), true) => format!("running on {host}, as planned"),
                            (Some(host), false) => format!("moved to {host}: {} is lost", now.planned),
                            (None, _) if lost.contains(&now.planned) => {
                                format!("not running: {} is lost and no live agent can take it", now.planned)
                            }
                            (None, _) => format!("waiting for {} to join", now.planned),
                        };
                        events.push(("placement", Some(now.component.clone()), message));
                    }
                }
                let assigned = assignments(&deployed.application, deployed.version, &placed, &live, &model_files);
                cluster.placed = placed;
                cluster.assignments = assigned;
            }
        }
        // Events take the lock again (for the application's name): only once it is released.
        self.flush(events);
    }

    fn flush(&self, events: Vec<(&'static str, Option<String>, String)>) {
        for (kind, component, message) in events {
            tracing::info!(kind, component, message, "control plane");
            self.event(kind, component.as_deref(), &message);
        }
    }

    /// Takes an agent's training results and gives it tasks of running jobs, if its tier trains them.
    fn train_on_agent(
        &self,
        cluster: &mut Cluster,
        agent: &str,
        tier: Option<stratum_core::ir::Tier>,
        results: Vec<crate::protocol::TrainingResult>,
        slots: usize,
    ) -> Vec<crate::protocol::TrainingWork> {
        for result in results {
            if let Some(job) = cluster.jobs.get_mut(&result.job) {
                job.record(agent, result);
            }
        }
        let live: Vec<(String, Option<stratum_core::ir::Tier>, bool)> = cluster
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
            let remaining = slots.saturating_sub(work.len());
            work.extend(job.hand_out(agent, remaining, lost));
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
                server.event("training", Some(&snapshot.model), &message);
                if let Some(job) = lock(&server.cluster).jobs.get_mut(&id) {
                    job.state = state;
                }
            });
        }
    }

    /// The tier of the application's node named like the agent, when the agent did not say.
    fn planned_tier(&self, cluster: &Cluster, name: &str) -> Option<stratum_core::ir::Tier> {
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
                    let hash = stratum_ml::artifact::sha256_hex(&bytes);
                    cluster.model_hashes.insert(path, (modified, hash.clone()));
                    hash
                }
            };
            files.insert(name, (version, hash));
        }
        files
    }
}

/// Who a token says the caller is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    Operator,
    Viewer,
    Agent,
}

const READERS: &[Caller] = &[Caller::Operator, Caller::Viewer];
const OPERATORS: &[Caller] = &[Caller::Operator];
const AGENTS: &[Caller] = &[Caller::Agent];

fn caller_of(server: &Server, token: &str) -> Option<Caller> {
    let options = &server.options;
    if same_token(token, &options.token) {
        Some(Caller::Operator)
    } else if same_token(token, &options.join_token) {
        Some(Caller::Agent)
    } else if options.viewer_token.as_deref().is_some_and(|viewer| same_token(token, viewer)) {
        Some(Caller::Viewer)
    } else {
        None
    }
}

/// Whether `token` belongs to one of the callers `allowed`; the answer to give otherwise (boxed: a response is
/// large, and this is the rare path).
fn allow(server: &Server, token: Option<&str>, allowed: &[Caller]) -> Result<Caller, Box<Response>> {
    match token.and_then(|token| caller_of(server, token)) {
        None => Err(Box::new(error_response(StatusCode::UNAUTHORIZED, "unauthorized", "wrong or missing token"))),
        Some(caller) if allowed.contains(&caller) => Ok(caller),
        Some(caller) => Err(Box::new(error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the {caller:?} token cannot do this; it needs the {:?} token", allowed[0]).to_lowercase(),
        ))),
    }
}

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

/// A request that carries its token in its body.
trait Authenticated: serde::de::DeserializeOwned {
    fn token(&self) -> &str;
}

macro_rules! authenticated {
    ($($request:ty),*) => {
        $(impl Authenticated for $request {
            fn token(&self) -> &str {
                &self.token
            }
        })*
    };
}

authenticated!(Join, Heartbeat, Apply, TrainingRequest);

/// The request in `body` if it parses and carries the token of one of the callers `allowed`.
fn authenticated<T: Authenticated>(server: &Server, body: &[u8], allowed: &[Caller]) -> Result<T, Box<Response>> {
    let request: T =
        serde_json::from_slice(body).map_err(|error| Box::new(bad_request(format!("bad request: {error}"))))?;
    allow(server, Some(request.token()), allowed)?;
    Ok(request)
}

fn bad_request(message: String) -> Response {
    error_response(StatusCode::BAD_REQUEST, "bad_request", message)
}

async fn join(State(server): State<Arc<Server>>, body: Bytes) -> Response {
    let mut join: Join = match authenticated(&server, &body, AGENTS) {
        Ok(join) => join,
        Err(response) => return *response,
    };
    join.token.clear();
    let name = join.name.clone();
    let _ = server.state.record_agent(&name, &serde_json::to_string(&join).unwrap_or_default());
    let message = format!(
        "{} cores, {:.1} GiB, {}; data at {}",
        join.resources.cpu,
        join.resources.memory_bytes as f64 / (1u64 << 30) as f64,
        join.resources.arch,
        join.data_address
    );
    lock(&server.cluster)
        .agents
        .insert(name.clone(), AgentRecord { join, last_seen: Instant::now(), lost: false, metrics: Vec::new() });
    server.event("agent-joined", Some(&name), &message);
    server.reconcile();
    json_response(StatusCode::OK, json!({ "heartbeat_milliseconds": 1000 }))
}

async fn heartbeat(State(server): State<Arc<Server>>, Path(name): Path<String>, body: Bytes) -> Response {
    let beat: Heartbeat = match authenticated(&server, &body, AGENTS) {
        Ok(beat) => beat,
        Err(response) => return *response,
    };
    let (back, answer, training) = {
        let mut cluster = lock(&server.cluster);
        let Some(agent) = cluster.agents.get_mut(&name) else {
            return error_response(StatusCode::NOT_FOUND, "not_found", format!("no agent `{name}`: join first"));
        };
        agent.last_seen = Instant::now();
        agent.metrics = beat.metrics;
        let back = std::mem::replace(&mut agent.lost, false);
        let tier = agent.join.tier.or_else(|| server.planned_tier(&cluster, &name));
        let assignment = cluster.assignments.get(&name).cloned();
        let answer = match assignment {
            Some(assignment) if beat.running.as_ref() != Some(&assignment.key) => Some(assignment),
            _ => None,
        };
        let training = server.train_on_agent(&mut cluster, &name, tier, beat.results, beat.training_slots);
        (back, answer, training)
    };
    server.finish_training_jobs();
    for problem in &beat.problems {
        server.event("agent-problem", Some(&name), problem);
    }
    for event in &beat.events {
        server.event(&event.kind, Some(&event.component), &format!("{} (on {name})", event.message));
    }
    if back {
        server.event("agent-back", Some(&name), "heartbeats again");
        server.reconcile();
    }
    let answer = HeartbeatAnswer { assignment: answer, training };
    json_response(StatusCode::OK, serde_json::to_value(answer).unwrap_or(Value::Null))
}

async fn apply(State(server): State<Arc<Server>>, body: Bytes) -> Response {
    let apply: Apply = match authenticated(&server, &body, OPERATORS) {
        Ok(apply) => apply,
        Err(response) => return *response,
    };
    let app = apply.application.name.clone();
    let ir = serde_json::to_string(&apply.application).unwrap_or_default();
    let plan = serde_json::to_string(&apply.plan).unwrap_or_default();
    let version = match server.state.record_version(&app, &ir, &plan) {
        Ok(version) => version,
        Err(error) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", error.to_string()),
    };
    lock(&server.cluster).deployed = Some(Deployed { application: apply.application, plan: apply.plan, version });
    server.event("applied", None, &format!("version {version}"));
    server.reconcile();
    json_response(StatusCode::OK, json!({ "app": app, "version": version }))
}

async fn model(
    State(server): State<Arc<Server>>,
    Path((name, version)): Path<(String, u32)>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = allow(&server, bearer(&headers), &[Caller::Agent, Caller::Operator]) {
        return *response;
    }
    if name.contains(['/', '\\', '.']) {
        return bad_request("not a model name".into());
    }
    let path = server.options.state_dir.join("models").join(&name).join(format!("v{version}.json"));
    match std::fs::read(&path) {
        Ok(bytes) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(_) => error_response(StatusCode::NOT_FOUND, "not_found", format!("no model `{name}` version {version}")),
    }
}

/// The gateway: a prediction goes to a live agent that runs the service (in turn when there are several), and its
/// answer — predictions, or a refusal with its status and `Retry-After` — comes back as it is.
async fn gateway(State(server): State<Arc<Server>>, Path(name): Path<String>, body: Bytes) -> Response {
    let targets: Vec<String> = {
        let cluster = lock(&server.cluster);
        let known = cluster
            .deployed
            .as_ref()
            .is_some_and(|deployed| deployed.application.services.iter().any(|service| service.name == name));
        if !known {
            let services: Vec<&str> = cluster
                .deployed
                .iter()
                .flat_map(|deployed| deployed.application.services.iter().map(|service| service.name.as_str()))
                .collect();
            return crate::api::no_service(&name, &services);
        }
        cluster
            .placed
            .iter()
            .filter(|placed| placed.component == name)
            .filter_map(|placed| placed.host.as_ref())
            .filter_map(|host| cluster.agents.get(host).filter(|agent| !agent.lost)?.join.api_address.clone())
            .collect()
    };
    if targets.is_empty() {
        let message = format!("no live agent serves `{name}` over HTTP (agents serve it when started with --api)");
        let mut response = error_response(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(1));
        return response;
    }
    let target = &targets[server.next_replica.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % targets.len()];
    let forwarded = server
        .gateway
        .post(format!("http://{target}/v1/services/{name}/predict"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    match forwarded {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let retry_after = answer.headers().get("retry-after").cloned();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response();
            if let Some(value) = retry_after.and_then(|value| header::HeaderValue::from_bytes(value.as_bytes()).ok()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Err(error) => error_response(StatusCode::BAD_GATEWAY, "bad_gateway", format!("agent at {target}: {error}")),
    }
}

fn blob_path(server: &Server, sha256: &str) -> Option<PathBuf> {
    let valid = sha256.len() == 64 && sha256.chars().all(|character| character.is_ascii_hexdigit());
    valid.then(|| server.options.state_dir.join("blobs").join(sha256))
}

/// `POST /v1/blobs`: stores bytes under their sha256 (the content-addressed blob store) and says which.
async fn put_blob(State(server): State<Arc<Server>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(response) = allow(&server, bearer(&headers), OPERATORS) {
        return *response;
    }
    let sha256 = stratum_ml::artifact::sha256_hex(&body);
    let Some(path) = blob_path(&server, &sha256) else { return bad_request("not a sha256".into()) };
    let written = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| {
        let temporary = path.with_extension("partial");
        std::fs::write(&temporary, &body).and_then(|()| std::fs::rename(&temporary, &path))
    });
    match written {
        Ok(()) => json_response(StatusCode::OK, json!({ "sha256": sha256, "bytes": body.len() })),
        Err(error) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", error.to_string()),
    }
}

async fn get_blob(State(server): State<Arc<Server>>, Path(sha256): Path<String>, headers: HeaderMap) -> Response {
    if let Err(response) = allow(&server, bearer(&headers), &[Caller::Agent, Caller::Operator]) {
        return *response;
    }
    let Some(path) = blob_path(&server, &sha256) else { return bad_request("not a sha256".into()) };
    match std::fs::read(&path) {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(_) => error_response(StatusCode::NOT_FOUND, "not_found", format!("no blob {sha256}")),
    }
}

/// `POST /v1/training`: a model's search, run on the agents.
async fn start_training(State(server): State<Arc<Server>>, body: Bytes) -> Response {
    let request: TrainingRequest = match authenticated(&server, &body, OPERATORS) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let Some(blob) = blob_path(&server, &request.data_sha256) else { return bad_request("not a sha256".into()) };
    let Ok(bytes) = std::fs::read(&blob) else {
        let message = format!("no blob {}: upload the data first", request.data_sha256);
        return error_response(StatusCode::NOT_FOUND, "not_found", message);
    };
    let id = {
        let cluster = lock(&server.cluster);
        cluster.jobs.keys().next_back().map_or(1, |last| last + 1)
    };
    let base = server.options.state_dir.join("training").join(id.to_string());
    let job = crate::training::lay_out(&request.application, &request.model, &base, &bytes)
        .and_then(|()| TrainingJob::new(id, request.application, &request.model, base, &request.data_sha256));
    match job {
        Ok(job) => {
            let message = format!(
                "{} tasks on the agents{}",
                job.total(),
                job.tier.map(|tier| format!(" of the {} tier", tier.name())).unwrap_or_default()
            );
            let model = job.model.clone();
            lock(&server.cluster).jobs.insert(id, job);
            server.event("training", Some(&model), &message);
            json_response(StatusCode::OK, json!({ "job": id }))
        }
        Err(error) => bad_request(error.to_string()),
    }
}

async fn training_status(State(server): State<Arc<Server>>, Path(job): Path<u64>, headers: HeaderMap) -> Response {
    if let Err(response) = allow(&server, bearer(&headers), READERS) {
        return *response;
    }
    let cluster = lock(&server.cluster);
    let Some(job) = cluster.jobs.get(&job) else {
        return error_response(StatusCode::NOT_FOUND, "not_found", format!("no training job {job}"));
    };
    json_response(
        StatusCode::OK,
        json!({
            "job": job.id,
            "model": job.model,
            "tasks": job.total(),
            "finished": job.finished(),
            "by_agent": job.by_agent,
            "result": job.state,
        }),
    )
}

async fn status(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    if let Err(response) = allow(&server, bearer(&headers), READERS) {
        return *response;
    }
    let cluster = lock(&server.cluster);
    let agents: Vec<Value> = cluster
        .agents
        .iter()
        .map(|(name, agent)| {
            let components =
                cluster.assignments.get(name).map(|assignment| assignment.components.clone()).unwrap_or_default();
            json!({
                "name": name,
                "tier": agent.join.tier,
                "alive": !agent.lost,
                "seconds_since_heartbeat": agent.last_seen.elapsed().as_secs_f64(),
                "resources": agent.join.resources,
                "components": components,
                "metrics": agent.metrics,
            })
        })
        .collect();
    let placement: Vec<Value> = cluster
        .placed
        .iter()
        .map(|placed| json!({ "component": placed.component, "instance": placed.instance, "planned": placed.planned, "host": placed.host }))
        .collect();
    let deployed = cluster.deployed.as_ref();
    json_response(
        StatusCode::OK,
        json!({
            "app": deployed.map(|deployed| deployed.application.name.clone()),
            "version": deployed.map(|deployed| deployed.version),
            "uptime_seconds": server.started.elapsed().as_secs_f64(),
            "agents": agents,
            "placement": placement,
        }),
    )
}

async fn events(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    if let Err(response) = allow(&server, bearer(&headers), READERS) {
        return *response;
    }
    match server.state.events(&server.app(), 500) {
        Ok(events) => json_response(StatusCode::OK, json!({ "events": events })),
        Err(error) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", error.to_string()),
    }
}

async fn metrics(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    if let Err(response) = allow(&server, bearer(&headers), READERS) {
        return *response;
    }
    let cluster = lock(&server.cluster);
    let snapshots: Vec<(String, MetricsSnapshot)> = cluster
        .agents
        .iter()
        .flat_map(|(name, agent)| {
            agent.metrics.iter().map(move |snapshot| (format!("agent=\"{name}\","), snapshot.clone()))
        })
        .collect();
    let mut text = stratum_dataplane::metrics::render_prometheus(&snapshots);
    let alive = cluster.agents.values().filter(|agent| !agent.lost).count();
    text.push_str("# HELP stratum_agents Agents known to the control plane, by state.\n# TYPE stratum_agents gauge\n");
    text.push_str(&format!("stratum_agents{{state=\"alive\"}} {alive}\n"));
    text.push_str(&format!("stratum_agents{{state=\"lost\"}} {}\n", cluster.agents.len() - alive));
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
