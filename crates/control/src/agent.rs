//! `stratum agent`: runs on every machine; connects out to the control plane, joins with the cluster's join token and
//! what the machine is, heartbeats every second with its components' metrics, and runs what it is assigned: its
//! part of the application's pipeline, with the paths to and from other machines through store-and-forward
//! buffers, and the models it needs pulled from the control plane by sha256 (refused when the bytes do not match).
//!
//! It keeps running what it was assigned while the control plane is unreachable, and re-joins when the control
//! plane no longer knows it (a control plane that lost its state).

use crate::Error;
use crate::part::{PartOptions, Report, RunningPart, Share};
use crate::protocol::{
    AgentEvent, Assignment, CheckpointCopy, Heartbeat, HeartbeatAnswer, Join, MeasuredResources, ModelRef,
    TrainingResult, TrainingWork,
};
use crate::reconcile::{self, Action, Backoff, Reconciler};
use crate::server::AGENT_KEY_HEADER;
use crate::serving::ServicePool;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratum_core::Cause;
use stratum_core::events::EventKind;
use stratum_core::ir::Tier;
use stratum_core::sync::lock;
use stratum_dataplane::PipelineOptions;
use stratum_dataplane::checkpoint::CheckpointCopies;
use stratum_dataplane::lease::Lease;
use stratum_dataplane::metrics::Registry;
use stratum_dataplane::remote::{Destination, Partition, RemoteInput, RemoteOutput};
use stratum_dataplane::tls::{ClientTls, Identity, SERVER_IDENTITY, ServerTls, agent_identity, certificate_sha256};
use stratum_dataplane::transfer::{Delivered, PathKey, PathKeys, Receiver};
use tokio::sync::{mpsc, watch};

/// How an agent runs: its control plane, name and tier, where it listens and keeps its data.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// The control plane, `https://host:port` (`http://` for one that runs without TLS); its replicas, when
    /// several share a state store: the agent follows the one that answers (the leader; the others do not listen).
    pub servers: Vec<String>,
    /// The cluster's join token: it lets the agent join and run what it is told, nothing more.
    pub join_token: String,
    /// The sha256 of the cluster's certificate authority, from the join string: over `https://` the agent trusts
    /// the authority whose certificate has this hash, and nothing else. Without it, the agent trusts the authority
    /// the control plane proves with the join token at the first join.
    pub authority_sha256: Option<String>,
    /// Its name: a node or pool member of the application.
    pub name: String,
    /// Its tier, when the application's node of that name does not say it.
    pub tier: Option<Tier>,
    /// Its labels, for placement.
    pub labels: BTreeMap<String, String>,
    /// Where other agents' data arrives.
    pub data_listen: SocketAddr,
    /// The address other agents reach `data_listen` at (its own address when it is a specific one).
    pub advertise: Option<String>,
    /// Buffers, models and dead letters.
    pub data_dir: PathBuf,
    /// Stand generators in for sources that need the outside world.
    pub simulate: bool,
    /// The MQTT broker for components that name none.
    pub mqtt_broker: Option<String>,
    /// Where the agent's own API listens, if anywhere: `/metrics`, and predictions of the services it runs
    /// (`POST /v1/services/{name}/predict`, which the control plane's gateway forwards to).
    pub api_listen: Option<SocketAddr>,
    /// Whether the agent starts tools that run a container image (off where the deployment runs them itself).
    pub image_tools: bool,
}

/// Searches kept ready at most (each holds its data in memory).
const PREPARED_KEPT: usize = 4;

/// Searches made ready, by (data sha256, model).
type Prepared = Arc<Mutex<HashMap<(String, String), Arc<stratum_ml::search::TrainingRun>>>>;

type Routes = Arc<Mutex<HashMap<String, mpsc::Sender<Delivered>>>>;

/// What the running part shows on the agent's API (replaced when the assignment changes).
#[derive(Default)]
struct ApiView {
    metrics: Option<Arc<Registry>>,
    services: BTreeMap<String, Arc<ServicePool>>,
    feeds: BTreeMap<String, stratum_dataplane::sinks::feed::Feed>,
}

type Shared = Arc<Mutex<ApiView>>;

struct RunningAssignment {
    key: String,
    part: RunningPart,
    /// What it runs, to start it again after a failure.
    assignment: Assignment,
    started: Instant,
}

/// An agent: joins its control plane, heartbeats, and runs what it is assigned (see the module documentation).
pub struct Agent {
    options: AgentOptions,
    client: reqwest::Client,
    data_address: String,
    routes: Routes,
    running: Option<RunningAssignment>,
    problems: Vec<String>,
    /// An assignment that failed to start, and when: tried again after a while, not every heartbeat.
    failed: Option<(String, Instant)>,
    current: Shared,
    api_address: Option<String>,
    /// Training tasks running now, and the results waiting for the next heartbeat.
    training_running: Arc<std::sync::atomic::AtomicUsize>,
    training_results: Arc<Mutex<Vec<TrainingResult>>>,
    /// Wakes the heartbeat loop early when a training task finishes.
    training_done: Arc<tokio::sync::Notify>,
    /// What its batches and tools did since the last heartbeat, for the control plane's events.
    events: Arc<Mutex<Vec<AgentEvent>>>,
    /// Searches made ready, by (data sha256, model): the data is read and prepared once per job, not per task.
    prepared: Prepared,
    /// What the agent's process uses, between heartbeats.
    usage: crate::usage::UsageMeter,
    /// The waits before starting a failed part again, and when the next start is due.
    restart_backoff: Backoff,
    restart_due: Option<Instant>,
    /// The checkpoints its pipelines wrote, waiting to be copied to the control plane: what they hold is
    /// acknowledged to its sources once the control plane kept them.
    copies: CheckpointCopies,
    /// How often it heartbeats: what the control plane said at the latest join or heartbeat (it grows with the
    /// fleet).
    heartbeat_interval: Duration,
    /// The lease it holds its stateful streams by, renewed by each answered heartbeat.
    lease: Lease,
    /// Its own key, issued by the control plane at its first join and kept in `DATA_DIR/agent.key`: only it can
    /// join or heartbeat under its name.
    key: Mutex<Option<String>>,
    /// The key its own API takes, handed over at each join and kept in `DATA_DIR/api.key` (a scraper on this
    /// machine reads it there); `None` until the first join.
    api_key: Arc<Mutex<Option<String>>>,
    /// The keys of the paths into this agent, from its assignment: the data receiver refuses any other.
    path_keys: PathKeys,
    /// The cluster's authority (PEM) and the certificate this agent presents on its data port and API (from its
    /// join), on a cluster with TLS.
    tls: Option<(String, ServerTls)>,
    /// Which of the control plane's replicas it talks to now (an index into `options.servers`, turning round).
    server_at: std::sync::atomic::AtomicUsize,
}

/// A heartbeat carries at most this much of checkpoints (the control plane takes heartbeats of up to 8 MB; what
/// does not fit goes with the next one).
const CHECKPOINT_UPLOAD_BYTES: usize = stratum_dataplane::checkpoint::MAX_COPY_BYTES;

impl Agent {
    /// Binds the data receiver and prepares the agent; `run` joins and works.
    ///
    /// Over `https://` it first comes to trust the cluster's authority (`trusted_authority`), waiting for the
    /// control plane to answer if it must ask it.
    pub async fn start(options: AgentOptions) -> Result<(Agent, tokio::task::JoinHandle<()>), Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let authority = trusted_authority(&options).await?;
        let tls = match authority {
            Some(authority) => Some((authority, ServerTls::waiting()?)),
            None => None,
        };
        let server_tls = tls.as_ref().map(|(_, server_tls)| server_tls.clone());
        let receiver = Receiver::bind(&options.data_listen.to_string(), server_tls.clone()).await?;
        let path_keys = receiver.keys();
        let bound = receiver.local_address()?;
        let data_address = options.advertise.clone().unwrap_or_else(|| {
            if bound.ip().is_unspecified() { format!("127.0.0.1:{}", bound.port()) } else { bound.to_string() }
        });
        // The host other machines reach this one at: the advertised one, else loopback for an agent that listens
        // on every address (the only one known to work from here).
        let reachable_host = match options.advertise.as_deref().and_then(|advertised| advertised.rsplit_once(':')) {
            Some((host, _)) => host.to_string(),
            None => "127.0.0.1".to_string(),
        };
        // Entries for paths this agent does not (yet) run are not acknowledged: their sender keeps them and tries
        // again, so nothing is lost while assignments change.
        let routes: Routes = Arc::default();
        let (deliveries, mut arriving) = mpsc::channel::<Delivered>(64);
        let routing = routes.clone();
        let router = tokio::spawn(async move {
            let receiving = tokio::spawn(receiver.run(deliveries));
            while let Some(delivered) = arriving.recv().await {
                let route = lock(&routing).get(&delivered.path).cloned();
                if let Some(route) = route {
                    let _ = route.send(delivered).await;
                }
            }
            receiving.abort();
        });
        let mut client = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if let Some((authority, _)) = &tls {
            client = client.use_preconfigured_tls(ClientTls::new(authority, SERVER_IDENTITY)?.config());
        }
        let client = client.build().map_err(|error| Error::Agent(error.into()))?;
        let current = Shared::default();
        let api_key = Arc::new(Mutex::new(kept_secret(&api_key_path(&options.data_dir))));
        let api_address = match options.api_listen {
            Some(address) => {
                let bound =
                    serve_api(address, current.clone(), options.data_dir.clone(), api_key.clone(), server_tls).await?;
                // The control plane's gateway forwards predictions here: an unspecified address is no address.
                Some(if bound.ip().is_unspecified() {
                    format!("{reachable_host}:{}", bound.port())
                } else {
                    bound.to_string()
                })
            }
            None => None,
        };
        let key = Mutex::new(kept_secret(&key_path(&options.data_dir)));
        let agent = Agent {
            options,
            client,
            data_address,
            routes,
            running: None,
            problems: Vec::new(),
            failed: None,
            current,
            api_address,
            training_running: Arc::default(),
            training_results: Arc::default(),
            training_done: Arc::default(),
            events: Arc::default(),
            prepared: Arc::default(),
            usage: crate::usage::UsageMeter::default(),
            restart_backoff: Backoff::default(),
            restart_due: None,
            copies: CheckpointCopies::default(),
            lease: Lease::until(Instant::now()),
            key,
            api_key,
            heartbeat_interval: HEARTBEAT_INTERVAL,
            path_keys,
            tls,
            server_at: std::sync::atomic::AtomicUsize::new(0),
        };
        Ok((agent, router))
    }

    /// The address other agents send it data at.
    pub fn data_address(&self) -> &str {
        &self.data_address
    }

    /// The address of its own API, when it serves one.
    pub fn api_address(&self) -> Option<&str> {
        self.api_address.as_deref()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server().trim_end_matches('/'))
    }

    /// The control plane's replica it talks to now.
    fn server(&self) -> &str {
        let at = self.server_at.load(std::sync::atomic::Ordering::Relaxed);
        self.options.servers.get(at % self.options.servers.len().max(1)).map_or("", String::as_str)
    }

    /// The replica it talks to did not answer: the next one may lead by now.
    fn next_server(&self) {
        if self.options.servers.len() > 1 {
            self.server_at.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(server = self.server(), "trying the next replica of the control plane");
        }
    }

    async fn join(&mut self) -> Result<(), Error> {
        let join = Join {
            name: self.options.name.clone(),
            tier: self.options.tier,
            labels: self.options.labels.clone(),
            resources: MeasuredResources::measure(&self.options.data_dir),
            data_address: self.data_address.clone(),
            api_address: self.api_address.clone(),
        };
        let response = self
            .with_key(self.client.post(self.url("/v1/agents/join")))
            .bearer_auth(&self.options.join_token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&join).unwrap_or_default())
            .send()
            .await
            .map_err(|error| {
                // A control plane whose state was made anew has a new authority, which this agent does not trust.
                let hint = match &self.tls {
                    Some(_) if format!("{error:?}").contains("certificate") => format!(
                        " (its certificate is not from the authority this agent trusts: if the control plane's state \
                         was made anew, remove {} and start the agent again)",
                        self.options.data_dir.join("tls").join("ca.pem").display()
                    ),
                    _ => String::new(),
                };
                Error::Agent(format!("cannot reach the control plane: {error}{hint}").into())
            })?;
        match response.status().as_u16() {
            200 => {
                #[derive(serde::Deserialize)]
                struct Joined {
                    key: Option<String>,
                    certificate: Option<String>,
                    certificate_key: Option<String>,
                    api_key: String,
                    heartbeat_milliseconds: Option<u64>,
                }
                let text = response.text().await.map_err(|error| Error::Agent(error.into()))?;
                let joined: Joined = serde_json::from_str(&text).map_err(|error| Error::Agent(error.into()))?;
                if let Some(key) = joined.key {
                    keep_secret(&key_path(&self.options.data_dir), "agent's key", &key)?;
                    *lock(&self.key) = Some(key);
                }
                keep_secret(&api_key_path(&self.options.data_dir), "key of its API", &joined.api_key)?;
                *lock(&self.api_key) = Some(joined.api_key);
                if let Some(milliseconds) = joined.heartbeat_milliseconds.filter(|milliseconds| *milliseconds > 0) {
                    self.heartbeat_interval = Duration::from_millis(milliseconds);
                }
                if let Some((_, server_tls)) = &self.tls {
                    let (Some(certificate_pem), Some(key_pem)) = (joined.certificate, joined.certificate_key) else {
                        return Err(Error::Refused(
                            "the control plane gave no certificate at join: it runs without TLS, so reach it at \
                             http://"
                                .into(),
                        ));
                    };
                    server_tls.present(&Identity { certificate_pem, key_pem })?;
                }
                Ok(())
            }
            401 => Err(Error::Refused("the control plane refused the join token".into())),
            403 => Err(Error::Refused(refusal_message(response).await)),
            status => Err(Error::Agent(
                format!("join answered {status}: {}", response.text().await.unwrap_or_default()).into(),
            )),
        }
    }

    /// A request to the control plane with the agent's key, when it has one.
    fn with_key(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match lock(&self.key).as_deref() {
            Some(key) => request.header(AGENT_KEY_HEADER, key),
            None => request,
        }
    }

    /// Joins (trying again until the control plane answers), then heartbeats and follows assignments until
    /// `stop` turns true; stopping drains the running pipeline.
    pub async fn run(self, stop: watch::Receiver<bool>) -> Result<(), Error> {
        let wake = self.training_done.clone();
        let beats = Heartbeats { agent: self, joined: false, refused: None };
        let mut beats = reconcile::run(beats, wake, stop).await;
        beats.agent.stop_running().await;
        beats.refused.map_or(Ok(()), Err)
    }

    async fn heartbeat(&mut self) -> Result<(), Error> {
        if let Some(running) = self.running.as_mut() {
            running.part.report_late_records();
        }
        let (services, feeds) = {
            let current = lock(&self.current);
            (
                current.services.values().map(|pool| pool.state()).collect(),
                current.feeds.iter().map(|(source, feed)| crate::protocol::FeedReport::of(source, feed)).collect(),
            )
        };
        // Taken before `handed-over/` is read: a state handed over since has its file there already.
        let sending = self.copies.take(CHECKPOINT_UPLOAD_BYTES);
        let checkpoints = sending
            .copies
            .iter()
            .map(|(component, file)| CheckpointCopy {
                component: component.clone(),
                file: String::from_utf8_lossy(file).into_owned(),
            })
            .collect();
        let checkpoints_removed = sending.removed.clone();
        let handed_over = self.handed_over();
        let sent_handed_over: Vec<String> = handed_over.iter().map(|copy| copy.component.clone()).collect();
        let beat = Heartbeat {
            checkpoints,
            checkpoints_removed,
            handed_over,
            running: self.running.as_ref().map(|running| running.key.clone()),
            metrics: self.running.as_ref().map(|running| running.part.metrics().snapshot()).unwrap_or_default(),
            problems: std::mem::take(&mut self.problems),
            results: std::mem::take(&mut *lock(&self.training_results)),
            events: std::mem::take(&mut *lock(&self.events)),
            training_slots: self.training_slots(),
            services,
            usage: self.usage.read(),
            feeds,
        };
        let sent = Instant::now();
        let answer = match self.send_heartbeat(&beat).await {
            Ok(Some(answer)) => answer,
            Ok(None) => {
                self.copies.put_back(sending);
                return self.join().await;
            }
            Err(error) => {
                // Sent again with the next heartbeat; meanwhile what they hold waits to be acknowledged.
                self.copies.put_back(sending);
                return Err(error);
            }
        };
        sending.arrived(&answer.checkpoints_kept);
        // The control plane has the states handed over: they are its to give on.
        for component in &sent_handed_over {
            let _ = std::fs::remove_file(stratum_dataplane::checkpoint::handed_over_path(
                &self.options.data_dir,
                component,
            ));
        }
        for work in answer.training {
            self.train(work);
        }
        // Before the assignment is followed: the streams it takes over take up these.
        let data_dir = &self.options.data_dir;
        for component in &answer.discard_checkpoints {
            stratum_dataplane::checkpoint::discard(data_dir, component);
        }
        for copy in &answer.take_up {
            if let Err(error) = stratum_dataplane::checkpoint::install(data_dir, &copy.component, copy.file.as_bytes())
            {
                self.problems.push(format!("cannot keep the checkpoint of `{}`: {error}", copy.component));
            }
        }
        let lease = Duration::from_millis(answer.lease_milliseconds);
        if let Some(milliseconds) = answer.heartbeat_milliseconds.filter(|milliseconds| *milliseconds > 0) {
            self.heartbeat_interval = Duration::from_millis(milliseconds);
        }
        if let Some(assignment) = answer.assignment {
            let retry = self
                .failed
                .as_ref()
                .is_none_or(|(key, when)| *key != assignment.key || when.elapsed() > Duration::from_secs(10));
            if retry && let Err(error) = self.follow(assignment.clone(), answer.hand_over).await {
                tracing::warn!(%error, "cannot run the assignment");
                // Problems go to the control plane's events as sentences.
                self.problems.push(stratum_core::error_chain(&error));
                self.failed = Some((assignment.key, Instant::now()));
            }
        }
        // Only once the assignment is followed: a stream that went on elsewhere while this agent was cut off has
        // been let go by then, and must not run on a renewed lease meanwhile.
        self.lease.renew(sent + lease);
        Ok(())
    }

    /// The states of streams that left this agent by handing them over, waiting for the control plane to have them
    /// (`DATA_DIR/checkpoints/handed-over/`). They are few and small: a stream moves now and then.
    fn handed_over(&self) -> Vec<CheckpointCopy> {
        let folder = stratum_dataplane::checkpoint::handed_over_directory(&self.options.data_dir);
        let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|entry| {
                let path = entry.path();
                let component = path.file_name()?.to_str()?.strip_suffix(".json")?.to_string();
                let file = std::fs::read_to_string(&path).ok()?;
                Some(CheckpointCopy { component, file })
            })
            .collect()
    }

    /// Sends a heartbeat; the answer, or `None` when the control plane does not know this agent (it joins again).
    async fn send_heartbeat(&self, beat: &Heartbeat) -> Result<Option<HeartbeatAnswer>, Error> {
        let response = self
            .with_key(self.client.post(self.url(&format!("/v1/agents/{}/heartbeat", self.options.name))))
            .bearer_auth(&self.options.join_token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(beat).unwrap_or_default())
            .send()
            .await
            .map_err(|error| Error::Agent(error.into()))?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            403 => return Err(Error::Refused(refusal_message(response).await)),
            status => return Err(Error::Agent(format!("heartbeat answered {status}").into())),
        }
        let text = response.text().await.map_err(|error| Error::Agent(error.into()))?;
        serde_json::from_str(&text).map(Some).map_err(|error| Error::Agent(error.into()))
    }

    /// One training task per core at a time.
    fn training_slots(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        cores.saturating_sub(self.training_running.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Runs a training task in the background: the data fetched by its sha256 and checked, laid out as the
    /// application reads it, the search made ready as the control plane made it, the task run; the result goes with
    /// the next heartbeat, which comes at once.
    fn train(&self, work: TrainingWork) {
        use std::sync::atomic::Ordering;
        self.training_running.fetch_add(1, Ordering::Relaxed);
        let (client, url, token) =
            (self.client.clone(), self.url(&format!("/v1/blobs/{}", work.task.data)), self.options.join_token.clone());
        let base = self.options.data_dir.join("training").join(&work.task.data);
        let (running, results, done) =
            (self.training_running.clone(), self.training_results.clone(), self.training_done.clone());
        let prepared = self.prepared.clone();
        tokio::spawn(async move {
            let outcome = async {
                let path = crate::training::data_path(&work.application, &work.model, &base)?;
                if !path.is_file() {
                    let response = client.get(&url).bearer_auth(&token).send().await.map_err(Cause::from)?;
                    if !response.status().is_success() {
                        let status = response.status();
                        return Err(format!("the data blob: the control plane answered {status}").into());
                    }
                    let bytes = response.bytes().await.map_err(Cause::from)?;
                    let actual = stratum_ml::data::sha256_hex(&bytes);
                    if actual != work.task.data {
                        return Err(format!("the data blob hashes to {actual}, not {}: refused", work.task.data).into());
                    }
                    crate::training::lay_out(&work.application, &work.model, &base, &bytes)?;
                }
                let (application, model, task) = (work.application.clone(), work.model.clone(), work.task.clone());
                tokio::task::spawn_blocking(move || {
                    let run = {
                        // Held while preparing, so that the tasks of one job wait for the first to read the data.
                        let mut prepared = lock(&prepared);
                        match prepared.get(&(task.data.clone(), model.clone())) {
                            Some(run) => run.clone(),
                            None => {
                                let run = stratum_ml::search::prepare_training(&application, &model, &base)?;
                                let run = Arc::new(run);
                                // A few recent searches are kept, not every one an agent ever ran.
                                if prepared.len() >= PREPARED_KEPT {
                                    prepared.clear();
                                }
                                prepared.insert((task.data.clone(), model.clone()), run.clone());
                                run
                            }
                        }
                    };
                    run.run(&task).map_err(Cause::from)
                })
                .await
                .map_err(Cause::from)?
            }
            .await
            // The reason goes to the control plane's leaderboard as text.
            .map_err(|error: Cause| stratum_core::error_chain(&*error));
            lock(&results).push(TrainingResult { job: work.job, index: work.index, outcome });
            running.fetch_sub(1, Ordering::Relaxed);
            done.notify_one();
        });
    }

    async fn stop_running(&mut self) {
        *lock(&self.current) = ApiView::default();
        if let Some(running) = self.running.take() {
            if let Err(error) = running.part.stop().await {
                self.problems.push(format!("the pipeline stopped with an error: {error}"));
            }
            lock(&self.routes).clear();
        }
    }

    /// A part whose data plane stopped on a component's error starts again, after a backoff; each step is an
    /// event for the control plane.
    async fn restart_if_failed(&mut self) {
        let Some(running) = &self.running else { return };
        let Some(failure) = running.part.failure() else { return };
        let now = Instant::now();
        let Some(due) = self.restart_due else {
            let wait = self.restart_backoff.after(running.started.elapsed());
            self.restart_due = Some(now + wait);
            let message = format!("stopped: {failure}; starting again in {} s", wait.as_secs());
            lock(&self.events).push(AgentEvent { component: "data plane".into(), kind: EventKind::Failed, message });
            return;
        };
        if now < due {
            return;
        }
        self.restart_due = None;
        let assignment = running.assignment.clone();
        self.stop_running().await;
        let (kind, message) = match self.follow(assignment, Vec::new()).await {
            Ok(()) => (EventKind::Restarted, "started again after the failure".to_string()),
            Err(error) => (EventKind::Failed, format!("could not start again: {error}")),
        };
        lock(&self.events).push(AgentEvent { component: "data plane".into(), kind, message });
    }

    /// Runs an assignment instead of what runs now: rolled out into the running part when there is one (only
    /// what changed restarts), otherwise started.
    /// Runs `assignment`; the streams in `hand_over` that leave this agent hand their state over as they go.
    async fn follow(&mut self, assignment: Assignment, hand_over: Vec<String>) -> Result<(), Error> {
        let application = assignment
            .application
            .clone()
            .ok_or_else(|| Error::Agent("the assignment came without its application".into()))?;
        for model in &assignment.models {
            self.fetch_model(model).await?;
        }
        // A channel for every path in; a path that runs on keeps its own, and drops this one.
        let mut senders = HashMap::new();
        let mut inputs = Vec::new();
        // The receiver takes exactly the paths assigned, each with its key.
        *lock(&self.path_keys) = assignment
            .inputs
            .iter()
            .filter_map(|input| PathKey::from_hex(&input.key).map(|key| (input.path.clone(), key)))
            .collect();
        for input in &assignment.inputs {
            let (sender, deliveries) = mpsc::channel(16);
            senders.insert(input.path.clone(), sender);
            inputs.push(RemoteInput { path: input.path.clone(), producer: input.producer.clone(), deliveries });
        }
        let outputs = assignment
            .outputs
            .iter()
            .map(|output| {
                let to = match &output.to {
                    Some(to) => Some(Destination {
                        address: to.address.clone(),
                        key: to.key.clone(),
                        tls: match &self.tls {
                            Some((authority, _)) => Some(ClientTls::pinned(
                                authority,
                                &agent_identity(&to.agent),
                                to.certificate_sha256.as_deref(),
                            )?),
                            None => None,
                        },
                    }),
                    None => None,
                };
                Ok(RemoteOutput {
                    path: output.path.clone(),
                    producer: output.producer.clone(),
                    consumers: output.consumers.clone(),
                    to,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let share = Share::Assigned {
            components: assignment.components.clone(),
            partition: Partition { components: Vec::new(), inputs, outputs },
            hand_over,
        };
        let followed = assignment.clone();
        match &mut self.running {
            Some(running) if !running.part.pipeline_finished() => {
                let rollout = running.part.update(&application, share).await?;
                running.key = assignment.key;
                running.assignment = followed;
                tracing::info!(
                    agent = self.options.name,
                    restarted = ?rollout.restarted,
                    started = ?rollout.started,
                    stopped = ?rollout.stopped,
                    unchanged = rollout.unchanged.len(),
                    "rolled out the new assignment"
                );
                let mut routes = lock(&self.routes);
                for path in rollout.stopped {
                    routes.remove(&path);
                }
                for path in rollout.started.into_iter().chain(rollout.restarted) {
                    if let Some(sender) = senders.remove(&path) {
                        routes.insert(path, sender);
                    }
                }
            }
            _ => {
                self.stop_running().await;
                let options = PartOptions {
                    pipeline: PipelineOptions {
                        base_dir: self.options.data_dir.clone(),
                        data_dir: Some(self.options.data_dir.clone()),
                        simulate: self.options.simulate,
                        model_store: Some(self.options.data_dir.join("models")),
                        mqtt_broker: self.options.mqtt_broker.clone(),
                        checkpoint_copies: Some(self.copies.clone()),
                        lease: Some(self.lease.clone()),
                        ..PipelineOptions::default()
                    },
                    logs_dir: self.options.data_dir.join("logs"),
                    // The control plane decides what needs other machines from what every agent reports.
                    cluster_decides: true,
                    image_tools: self.options.image_tools,
                };
                let events = self.events.clone();
                let report: Report = Arc::new(move |component: &str, kind: EventKind, message: String| {
                    lock(&events).push(AgentEvent { component: component.into(), kind, message });
                });
                let part = RunningPart::start(&application, share, options, report).await?;
                tracing::info!(agent = self.options.name, components = ?assignment.components, "running the assignment");
                lock(&self.routes).extend(senders);
                self.running = Some(RunningAssignment {
                    key: assignment.key,
                    part,
                    assignment: followed,
                    started: Instant::now(),
                });
            }
        }
        if let Some(running) = &self.running {
            *lock(&self.current) = ApiView {
                metrics: Some(running.part.metrics()),
                services: running.part.services(),
                feeds: running.part.feeds(),
            };
        }
        self.failed = None;
        self.restart_due = None;
        Ok(())
    }

    /// Makes a model artifact available locally: already there with the right sha256, or fetched and checked.
    async fn fetch_model(&self, model: &ModelRef) -> Result<(), Error> {
        let path = self.options.data_dir.join("models").join(&model.name).join(format!("v{}.json", model.version));
        if std::fs::read(&path).is_ok_and(|bytes| stratum_ml::data::sha256_hex(&bytes) == model.sha256) {
            return Ok(());
        }
        let response = self
            .client
            .get(self.url(&format!("/v1/models/{}/versions/{}", model.name, model.version)))
            .bearer_auth(&self.options.join_token)
            .send()
            .await
            .map_err(|error| Error::Agent(format!("model `{}`: {error}", model.name).into()))?;
        if !response.status().is_success() {
            return Err(Error::Agent(
                format!("model `{}` v{}: the control plane answered {}", model.name, model.version, response.status())
                    .into(),
            ));
        }
        let bytes =
            response.bytes().await.map_err(|error| Error::Agent(format!("model `{}`: {error}", model.name).into()))?;
        let actual = stratum_ml::data::sha256_hex(&bytes);
        if actual != model.sha256 {
            return Err(Error::Agent(
                format!(
                    "model `{}` v{} refused: its bytes hash to {actual}, not {}",
                    model.name, model.version, model.sha256
                )
                .into(),
            ));
        }
        // Written whole: a crash never leaves half a model behind.
        crate::files::write_whole(&path, &bytes)
            .map_err(|error| Error::Agent(format!("{}: {error}", path.display()).into()))?;
        tracing::info!(model = model.name, version = model.version, "model fetched and checked");
        Ok(())
    }
}

/// Serves the agent's API: `/metrics` (its machine's resources and its running components' standard metrics) and
/// predictions of the services it runs. Returns the address it listens on.
async fn serve_api(
    address: SocketAddr,
    current: Shared,
    data_dir: PathBuf,
    api_key: Arc<Mutex<Option<String>>>,
    tls: Option<ServerTls>,
) -> Result<SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| Error::Listen { address: address.to_string(), source: error })?;
    let bound = listener.local_addr().map_err(|error| Error::Listen { address: address.to_string(), source: error })?;
    let resources = MeasuredResources::measure(&data_dir);
    let metrics_of = current.clone();
    let router = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let current = metrics_of.clone();
                let resources = resources.clone();
                async move {
                    let mut text = format!(
                        "# HELP stratum_node_cpu_cores Cores of this machine.\n# TYPE stratum_node_cpu_cores gauge\n\
                         stratum_node_cpu_cores {}\n\
                         # HELP stratum_node_memory_bytes Memory of this machine.\n# TYPE stratum_node_memory_bytes gauge\n\
                         stratum_node_memory_bytes {}\n",
                        resources.cpu, resources.memory_bytes
                    );
                    let (metrics, services) = {
                        let current = lock(&current);
                        (current.metrics.clone(), current.services.values().cloned().collect::<Vec<_>>())
                    };
                    if let Some(registry) = metrics {
                        text.push_str(&registry.render_prometheus());
                    }
                    text.push_str(&crate::serving::render_pools(services.iter()));
                    text.push_str(&crate::usage::render_process_metrics());
                    text
                }
            }),
        )
        .route(
            "/v1/services/{name}/predict",
            axum::routing::post(move |axum::extract::Path(name): axum::extract::Path<String>, body: axum::body::Bytes| {
                let service = lock(&current).services.get(&name).cloned();
                async move {
                    match service {
                        Some(service) => crate::api::prediction_response(service.predict(&body).await),
                        None => crate::api::prediction_response(Err(crate::serving::unknown_service(
                            &name,
                            std::iter::empty(),
                        ))),
                    }
                }
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(crate::serving::PREDICTION_BODY_LIMIT))
        // Nothing here is for anyone: the control plane's gateway and a metrics scraper on this machine present
        // this agent's own API key (not the join token, which every machine holds).
        .layer(axum::middleware::from_fn(move |request: axum::extract::Request, next: axum::middleware::Next| {
            let api_key = lock(&api_key).clone();
            async move {
                let given = request
                    .headers()
                    .get(axum::http::header::AUTHORIZATION)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.strip_prefix("Bearer "));
                match (given, api_key) {
                    (Some(given), Some(api_key)) if crate::api::same_token(given, &api_key) => next.run(request).await,
                    _ => crate::api::error_response(
                        axum::http::StatusCode::UNAUTHORIZED,
                        crate::serving::ErrorCode::Unauthorized,
                        "an agent's API takes its own key, which the control plane hands it at join and it keeps in \
                         DATA_DIR/api.key: Authorization: Bearer API_KEY",
                    ),
                }
            }
        }))
        // Health checks (a container's, a probe's) need no token: the answer says nothing but that it runs.
        .merge(axum::Router::new().route("/health", axum::routing::get(|| async { "ok\n" })));
    use stratum_dataplane::connectors::http::{HEADER_TIMEOUT, serve};
    tokio::spawn(serve(listener, router, HEADER_TIMEOUT, tls, std::future::pending()));
    Ok(bound)
}

/// How soon an agent tries to join again: quickly at first, since a control plane that is starting answers soon.
const JOIN_BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));
/// How often an agent heartbeats when nothing wakes it sooner (a training task that finished), until the control
/// plane says otherwise at its join.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// The interval, give or take a tenth at random: agents that started together do not heartbeat in step.
fn jittered(interval: Duration) -> Duration {
    let fraction = getrandom::u32().map_or(0.5, |random| random as f64 / u32::MAX as f64);
    interval.mul_f64(0.9 + 0.2 * fraction)
}

/// An agent's loop as a reconciler: desired, what the control plane assigns in its answers; observed, what runs
/// here. A pass joins if it has not, heartbeats, and starts again a part whose data plane failed.
struct Heartbeats {
    agent: Agent,
    joined: bool,
    /// The control plane refused the join token: the loop ends with this error.
    refused: Option<Error>,
}

impl Reconciler for Heartbeats {
    type Error = Error;

    fn name(&self) -> &'static str {
        "agent"
    }

    async fn reconcile(&mut self) -> Result<Action, Error> {
        if !self.joined {
            match self.agent.join().await {
                Err(Error::Refused(message)) => {
                    self.refused = Some(Error::Refused(message));
                    return Ok(Action::Done);
                }
                result => result?,
            }
            self.joined = true;
            tracing::info!(agent = self.agent.options.name, data = self.agent.data_address, "joined");
        }
        if let Err(error) = self.agent.heartbeat().await {
            // The control plane may be restarting, or another replica taking over: keep running what was assigned.
            tracing::debug!(%error, "heartbeat failed");
            if !matches!(error, Error::Refused(_)) {
                self.agent.next_server();
            }
        }
        self.agent.restart_if_failed().await;
        Ok(Action::Requeue(jittered(self.agent.heartbeat_interval)))
    }

    /// Only joining fails a pass: tried again soon, the wait doubling to five seconds.
    fn backoff(&self) -> Backoff {
        Backoff::new(JOIN_BACKOFF.0, JOIN_BACKOFF.1)
    }

    fn error_policy(&mut self, error: &Error, backoff: &mut Backoff) -> Action {
        tracing::info!(%error, "cannot join yet; trying again");
        self.agent.next_server();
        Action::Requeue(backoff.after(Duration::ZERO))
    }
}

/// Where an agent keeps its own key.
/// The cluster's authority (PEM) an agent trusts, or `None` for a control plane reached over plain `http://`: the
/// one its join string pins by hash, else the one the control plane proves with the join token (see
/// [`crate::pki::fetch_authority`]); kept in `DATA_DIR/tls/ca.pem` from the first join on, so that
/// later starts trust the same authority without asking.
async fn trusted_authority(options: &AgentOptions) -> Result<Option<String>, Error> {
    let https = options.servers.iter().filter(|server| server.starts_with("https://")).count();
    if options.servers.is_empty() || (https > 0 && https < options.servers.len()) {
        return Err(Error::Refused(format!(
            "the control plane's replicas are reached all over https:// or all over http://, not {}",
            options.servers.join(", ")
        )));
    }
    if https == 0 {
        if options.authority_sha256.is_some() {
            return Err(Error::Refused(format!(
                "the join string names the cluster's authority, but {} is not https://: reach the control plane \
                 over TLS",
                options.servers.join(", ")
            )));
        }
        return Ok(None);
    }
    let kept = options.data_dir.join("tls").join("ca.pem");
    if let Ok(pem) = std::fs::read_to_string(&kept) {
        let pinned = options.authority_sha256.as_deref();
        if pinned.is_none() || certificate_sha256(&pem).is_ok_and(|hash| Some(hash.as_str()) == pinned) {
            return Ok(Some(pem));
        }
    }
    let mut wait = JOIN_BACKOFF.0;
    // Each replica in turn: the one that leads answers.
    for server in options.servers.iter().cycle() {
        match crate::pki::fetch_authority(server, &options.join_token, options.authority_sha256.as_deref()).await {
            Ok(Ok(pem)) => {
                crate::files::write_whole(&kept, pem.as_bytes())
                    .map_err(|error| Error::Agent(format!("{}: {error}", kept.display()).into()))?;
                return Ok(Some(pem));
            }
            Ok(Err(unreachable)) => {
                tracing::info!(%unreachable, "waiting for the control plane to give its authority");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(JOIN_BACKOFF.1);
            }
            Err(error) => return Err(error),
        }
    }
    Err(Error::Refused("no control plane to reach: give --server".into()))
}

fn key_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("agent.key")
}

fn api_key_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("api.key")
}

/// A secret an earlier run of this agent kept at `path`, if any.
fn kept_secret(path: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|key| key.trim().to_string()).filter(|key| !key.is_empty())
}

/// Keeps a secret (`what`, for the message) where only the agent's user can read it.
fn keep_secret(path: &std::path::Path, what: &str, secret: &str) -> Result<(), Error> {
    crate::files::write_secret(path, secret.as_bytes())
        .map_err(|error| Error::Agent(format!("cannot keep the {what} in {}: {error}", path.display()).into()))
}

/// The message of a refusal answer (`{"error": {"message": …}}`), or its text.
async fn refusal_message(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|answer| answer["error"]["message"].as_str().map(str::to_string))
        .unwrap_or(text)
}
