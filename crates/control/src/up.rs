//! `stratum up`: a whole application on this machine. The control plane (state store, API, batch schedules) and
//! one in-process agent per machine of the plan; the models the services need made ready (reused, trained, or
//! bootstrapped from simulated history and trained); the embedded MQTT broker when a component needs it; then
//! every source, stream, service and sink in one data plane, with sources that need the outside world simulated
//! unless asked to connect for real. Runs until stopped; stopping drains. The HTTP API and the web interface
//! over a running application live in the `stratum-api` crate: they read [`UpDeployment`] as a [`Deployment`].

use crate::Error;
use crate::agents::{Machine, agents_of};
use crate::deployment::{Deployment, FeedRecords, Prediction, RunningVersion};
use crate::models::{ModelOptions, ModelProgress, ensure_model, ensure_models};
use crate::part::{PartOptions, Report, RunningPart, Share};
use crate::placement::Placed;
use crate::serving::ServicePool;
use crate::serving::ServiceState;
use crate::state::{ServedModel, StateStore};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use stratum_core::events::EventKind;
use stratum_core::ir::{Application, ServiceInput};
use stratum_core::plan::Plan;
use stratum_dataplane::connectors::mqtt::EmbeddedBroker;
use stratum_dataplane::metrics::Registry;
use stratum_dataplane::pipeline::Rollout;
use stratum_dataplane::sinks::feed::Feed;
use stratum_dataplane::{PipelineOptions, RunSummary};

/// How `stratum up` runs an application.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Relative paths of the application are relative to this directory (the file's).
    pub base_dir: PathBuf,
    /// The state store, the model store and the dead letters live here.
    pub state_dir: PathBuf,
    /// An MQTT broker to use instead of the embedded one.
    pub mqtt_broker: Option<String>,
    /// Stand generators in for sources that need the outside world (MQTT, NATS, Kafka, HTTP, a file not on this
    /// machine), and files for NATS and Kafka sinks that name no server (see `stratum_dataplane::pipeline`).
    pub simulate: bool,
    /// How much simulated history bootstraps a missing training dataset (by default a day, or less for sources
    /// too busy for a day to be simulated quickly: see [`crate::models::BOOTSTRAP_EVENTS`]).
    pub bootstrap_hours: Option<f64>,
    /// Simulated sources run this many times faster than the clock (60: an hour of data in a minute).
    pub time_scale: f64,
}

/// What `up` is doing, for the user to see.
#[derive(Clone, Debug)]
pub enum UpProgress {
    /// A model is being made ready.
    Model(ModelProgress),
    /// The embedded MQTT broker listens.
    Broker {
        /// Its URL.
        url: String,
    },
}

/// What a running version is made of, shared with whoever watches it (the API reads it while the runner owns the
/// [`Running`] that stops it).
pub struct UpDeployment {
    /// The running version.
    pub running: Arc<RunningVersion>,
    /// The in-process agents, one per machine of the plan.
    pub agents: Vec<Machine>,
    /// Every component's metrics.
    pub metrics: Arc<Registry>,
    /// The HTTP part of each service, by name: predictions go here.
    pub services: BTreeMap<String, Arc<ServicePool>>,
    /// The latest records of each stream or source a dashboard panel shows.
    pub feeds: BTreeMap<String, Feed>,
    /// The state store.
    pub state: Arc<StateStore>,
}

impl Deployment for UpDeployment {
    fn running(&self) -> Option<Arc<RunningVersion>> {
        Some(self.running.clone())
    }

    fn machines(&self) -> Vec<Machine> {
        self.agents.clone()
    }

    /// Everything runs where the plan put it: the in-process agents do not get lost.
    fn placement(&self) -> Vec<Placed> {
        self.running
            .plan
            .assignments
            .iter()
            .map(|assignment| Placed {
                component: assignment.component.clone(),
                instance: assignment.instance,
                planned: assignment.host.clone(),
                host: Some(assignment.host.clone()),
                added: false,
            })
            .collect()
    }

    fn metrics(&self) -> Vec<stratum_dataplane::metrics::MetricsSnapshot> {
        self.metrics.snapshot()
    }

    fn services(&self) -> Vec<ServiceState> {
        self.services.values().map(|pool| pool.state()).collect()
    }

    fn feed(&self, source: &str) -> Option<FeedRecords> {
        let feed = self.feeds.get(source)?;
        Some(FeedRecords { fields: feed.fields.as_ref().clone(), records: feed.latest() })
    }

    fn state(&self) -> &StateStore {
        &self.state
    }

    fn predict(&self, service: String, body: Vec<u8>) -> Prediction<'_> {
        Box::pin(async move {
            match self.services.get(&service) {
                Some(pool) => pool.predict(&body).await,
                None => Err(crate::serving::unknown_service(&service, self.services.keys())),
            }
        })
    }

    fn prometheus(&self) -> String {
        let mut text = self.metrics.render_prometheus();
        text.push_str(&crate::serving::render_pools(self.services.values()));
        text
    }
}

/// A running application.
pub struct Running {
    /// What runs.
    pub deployment: Arc<UpDeployment>,
    part: RunningPart,
    options: UpOptions,
}

/// A version whose data plane failed and is stopped, waiting to be started again.
pub struct Stopped {
    /// What ran.
    pub deployment: Arc<UpDeployment>,
    options: UpOptions,
}

impl Stopped {
    /// Starts the version's data plane, pools, batches and tools as `up` started them; when they cannot start,
    /// the version stays stopped (and is given back) with the reason, which is also an event.
    pub async fn start(self) -> Result<Running, (Error, Stopped)> {
        let Stopped { deployment, options } = self;
        let application = &deployment.running.application;
        let report = report_to(deployment.state.clone(), application.name.clone());
        let part = match RunningPart::start(application, Share::Everything, part_options(&options), report).await {
            Ok(part) => part,
            Err(error) => {
                let message = format!("the data plane did not start again: {error}");
                let _ = deployment.state.record_event(&application.name, EventKind::Failed, None, &message);
                return Err((error, Stopped { deployment, options }));
            }
        };
        let deployment = Arc::new(UpDeployment {
            running: deployment.running.clone(),
            agents: deployment.agents.clone(),
            metrics: part.metrics(),
            services: part.services(),
            feeds: part.feeds(),
            state: deployment.state.clone(),
        });
        let _ = deployment.state.record_event(
            &application.name,
            EventKind::Restarted,
            None,
            "the data plane started again",
        );
        Ok(Running { deployment, part, options })
    }
}

/// Whether the whole application (what `up` runs) needs the machine's broker.
fn needs_broker(application: &Application, simulate: bool) -> bool {
    stratum_dataplane::connectors::mqtt::needs_machine_broker(application, &|_| true, simulate)
}

/// The standard MQTT ports when free, otherwise any free ones: `up` must not fail because a broker (or an earlier
/// `up`) already listens on 1883.
fn broker_addresses() -> (SocketAddr, SocketAddr) {
    let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    let any = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    };
    if free(1883) && free(1884) {
        (SocketAddr::from(([127, 0, 0, 1], 1883)), SocketAddr::from(([127, 0, 0, 1], 1884)))
    } else {
        (any(), any())
    }
}

/// Records a version (unless it is the latest already) and makes the models its services need ready; returns
/// the version.
async fn prepare_version(
    state: &StateStore,
    application: &Application,
    plan: &Plan,
    options: &UpOptions,
    progress: &mut (dyn FnMut(UpProgress) + Send),
) -> Result<u32, Error> {
    let app = &application.name;
    let ir = serde_json::to_string(application).map_err(|error| Error::State(error.into()))?;
    let plan_text = serde_json::to_string(plan).map_err(|error| Error::State(error.into()))?;
    let version = state.record_version(app, &ir, &plan_text)?;
    state.record_event(
        app,
        EventKind::Starting,
        None,
        &format!("version {version} on {} agents", agents_of(application, plan).len()),
    )?;

    // Models first: services and `predict()` load them when the data plane is built.
    let mut model_events = Vec::new();
    let ready = ensure_models(application, &model_options(options), &mut |event: ModelProgress| {
        model_events.push(event.clone());
        progress(UpProgress::Model(event));
    })
    .await;
    for event in &model_events {
        if let Some((model, message)) = model_event(event) {
            state.record_event(app, EventKind::Model, Some(model), &message)?;
        }
    }
    let ready = ready.inspect_err(|error| {
        // An event's message is a sentence for people.
        let _ = state.record_event(app, EventKind::Failed, None, &stratum_core::error_chain(&error));
    })?;
    for service in &application.services {
        if let Some(model) = ready.iter().find(|model| model.model == service.model) {
            state.record_served_model(
                app,
                &ServedModel {
                    service: service.name.clone(),
                    model: model.model.clone(),
                    version: model.version,
                    sha256: model.sha256.clone(),
                    data_sha256: model.data_sha256.clone(),
                },
            )?;
        }
    }
    Ok(version)
}

/// Where `up` keeps and makes its models.
fn model_options(options: &UpOptions) -> ModelOptions {
    ModelOptions {
        base_dir: options.base_dir.clone(),
        model_store: options.state_dir.join("models"),
        bootstrap_hours: options.bootstrap_hours,
    }
}

/// A step of making a model ready as an event's message, for the steps worth one.
fn model_event(event: &ModelProgress) -> Option<(&str, String)> {
    match event {
        ModelProgress::Trained { model, version, algorithm, metric, score, seconds } => {
            Some((model, format!("trained v{version}: {algorithm}, {metric} {score:.3}, in {seconds:.1} s")))
        }
        ModelProgress::Reused { model, version } => {
            Some((model, format!("reused v{version}: trained on the same data")))
        }
        ModelProgress::Judged { model, version, judgement } => Some((model, judgement.describe(*version))),
        ModelProgress::Imported { model, version, path } => Some((model, format!("imported v{version} from `{path}`"))),
        ModelProgress::Kept { model, version } => Some((model, format!("v{version}, imported before, serves"))),
        ModelProgress::Bootstrapped { model, events, rows } => {
            Some((model, format!("bootstrapped its data from {events} simulated events: {rows} rows")))
        }
        _ => None,
    }
}

/// Why a model is trained again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetrainTrigger {
    /// Its `retrain = every(…)` came due.
    Schedule,
    /// Its `retrain = drift(metric, threshold)` saw the serving version do worse than the threshold allows.
    Drift,
}

impl RetrainTrigger {
    /// How events say it.
    pub fn as_str(self) -> &'static str {
        match self {
            RetrainTrigger::Schedule => "on schedule",
            RetrainTrigger::Drift => "on drift",
        }
    }
}

/// What a retrain that came due did (its event says the rest).
#[derive(Debug, PartialEq)]
pub enum Retrained {
    /// Nothing new serves: the data had not changed, or the version that serves is pinned.
    Unchanged,
    /// A new version was trained on the changed data and serves now.
    Served {
        /// The new version.
        version: u32,
    },
}

/// The leaderboard of a stored version in a line: each candidate's algorithm and mean score, best first.
fn leaderboard_line(store: &std::path::Path, model: &str, version: u32) -> String {
    let Ok(artifact) = stratum_ml::ModelStore::new(store).load(model, Some(version)) else { return String::new() };
    let board = &artifact.leaderboard;
    let entries: Vec<String> = board
        .entries
        .iter()
        .take(5)
        .map(|entry| match &entry.error {
            Some(_) => format!("{} failed", entry.algorithm),
            None => format!("{} {:.3} ± {:.3}", entry.algorithm, entry.mean, entry.std),
        })
        .collect();
    let more = board.entries.len().saturating_sub(entries.len());
    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
    format!("; leaderboard by {}: {}{more}", board.metric.name(), entries.join(", "))
}

/// How `up` runs its part: everything, with the events going to the state store.
fn part_options(options: &UpOptions) -> PartOptions {
    PartOptions {
        pipeline: PipelineOptions {
            base_dir: options.base_dir.clone(),
            data_dir: Some(options.state_dir.join("run")),
            simulate: options.simulate,
            time_scale: options.time_scale,
            model_store: Some(options.state_dir.join("models")),
            mqtt_broker: options.mqtt_broker.clone(),
            ..PipelineOptions::default()
        },
        logs_dir: options.state_dir.join("logs"),
        cluster_decides: false,
        image_tools: true,
    }
}

fn report_to(state: Arc<StateStore>, app: String) -> Report {
    Arc::new(move |component: &str, kind: EventKind, message: String| {
        let _ = state.record_event(&app, kind, Some(component), &message);
    })
}

/// What does not run of a version: tools that cannot start here, and services that answer on the API only.
fn not_running(application: &Application, part: &RunningPart) -> Vec<(String, String)> {
    let mut not_running = part.not_running.clone();
    not_running.extend(
        application
            .services
            .iter()
            .filter(|service| matches!(service.input, ServiceInput::Http { .. }))
            .map(|service| (service.name.clone(), "answers on the API only".to_string())),
    );
    not_running
}

/// Starts everything; returns once it all runs.
pub async fn up(
    application: Application,
    plan: Plan,
    mut options: UpOptions,
    progress: &mut (dyn FnMut(UpProgress) + Send),
) -> Result<Running, Error> {
    let started = Instant::now();
    let app = application.name.clone();
    let state = Arc::new(StateStore::open(&options.state_dir.join("state.db"))?);
    let version = prepare_version(&state, &application, &plan, &options, progress).await?;

    if options.mqtt_broker.is_none() && needs_broker(&application, options.simulate) {
        let (v4, v5) = broker_addresses();
        let broker = EmbeddedBroker::start(v4, v5)?;
        progress(UpProgress::Broker { url: broker.url() });
        options.mqtt_broker = Some(broker.url());
    }
    let report = report_to(state.clone(), app.clone());
    let part = RunningPart::start(&application, Share::Everything, part_options(&options), report).await?;
    state.record_event(&app, EventKind::Started, None, &format!("version {version}"))?;
    let agents = agents_of(&application, &plan);
    let current = RunningVersion {
        app,
        version,
        not_running: not_running(&application, &part),
        application: Arc::new(application),
        plan: Arc::new(plan),
        started,
        broker_url: options.mqtt_broker.clone(),
    };
    let deployment = UpDeployment {
        running: Arc::new(current),
        agents,
        metrics: part.metrics(),
        services: part.services(),
        feeds: part.feeds(),
        state,
    };
    Ok(Running { deployment: Arc::new(deployment), part, options })
}

impl Running {
    /// The folder the application's relative paths are relative to.
    pub fn base_dir(&self) -> &std::path::Path {
        &self.options.base_dir
    }

    /// Whether the data plane has ended by itself (its sources ran out, or a component failed).
    pub fn pipeline_finished(&self) -> bool {
        self.part.pipeline_finished()
    }

    /// Records late for their windows, told of as events (see `part.rs`).
    pub(crate) fn report_late_records(&mut self) {
        self.part.report_late_records();
    }

    /// Why the data plane stopped, when a component failed (the rest drained).
    pub fn failure(&self) -> Option<String> {
        self.part.failure()
    }

    /// Starts this version's data plane, pools, batches and tools again after a failure: what remains of them is
    /// stopped first (a tool's port, a sink's file), then everything starts as `up` started it. When it cannot
    /// start (the cause may still be there: descriptors exhausted, a disk full), the version comes back
    /// [`Stopped`], to be started again later: a supervisor never gives up on it.
    pub async fn restart(self) -> Result<Running, (Error, Stopped)> {
        self.halt().await.start().await
    }

    /// Stops what remains of a failed version (a tool's port, a sink's file), keeping what it needs to start again.
    pub async fn halt(self) -> Stopped {
        let Running { deployment, part, options } = self;
        let _ = part.stop().await;
        Stopped { deployment, options }
    }

    /// Whether a new version can roll out into this one, rather than replace it: its data plane still runs, and
    /// it has the broker the new version needs.
    pub fn can_update(&self, application: &Application) -> bool {
        !self.pipeline_finished()
            && (self.options.mqtt_broker.is_some() || !needs_broker(application, self.options.simulate))
    }

    /// Rolls out a new version while this one runs on: its models are made ready first (the running version
    /// serves meanwhile), then only the components that changed restart (see `part.rs`).
    pub async fn update(
        &mut self,
        application: Application,
        plan: Plan,
        progress: &mut (dyn FnMut(UpProgress) + Send),
    ) -> Result<Rollout, Error> {
        let started = Instant::now();
        let state = self.deployment.state.clone();
        let app = application.name.clone();
        let version = prepare_version(&state, &application, &plan, &self.options, progress).await?;
        let rollout = self.part.update(&application, Share::Everything).await.inspect_err(|error| {
            let _ = state.record_event(
                &app,
                EventKind::Failed,
                None,
                &format!("version {version} did not roll out: {error}"),
            );
        })?;
        state.record_event(
            &app,
            EventKind::RolledOut,
            None,
            &format!("version {version}: {}", describe_rollout(&rollout)),
        )?;
        let current = RunningVersion {
            app,
            version,
            not_running: not_running(&application, &self.part),
            application: Arc::new(application),
            plan: Arc::new(plan),
            started,
            broker_url: self.options.mqtt_broker.clone(),
        };
        self.deployment = Arc::new(UpDeployment {
            agents: agents_of(&current.application, &current.plan),
            running: Arc::new(current),
            metrics: self.part.metrics(),
            services: self.part.services(),
            feeds: self.part.feeds(),
            state,
        });
        Ok(rollout)
    }

    /// Trains `model` again, as its `retrain = every(…)` or `drift(…)` asks (`trigger`): when its data changed
    /// since the version that serves, a new version is trained on all but the most recent rows (on this machine;
    /// the running version serves meanwhile), judged against the serving one on those rows, and — when it scores
    /// better and no operator pinned the serving one — rolled out to what serves it and what calls it with
    /// `predict()`; when the data did not change, nothing is trained. Each outcome is an event, with the
    /// judgement's numbers and the new version's leaderboard.
    pub async fn retrain(
        &mut self,
        model: &str,
        trigger: RetrainTrigger,
        progress: &mut (dyn FnMut(UpProgress) + Send),
    ) -> Result<Retrained, Error> {
        let state = self.deployment.state.clone();
        let running = self.deployment.running.clone();
        let (app, application) = (&running.app, &running.application);
        let options = model_options(&self.options);
        // The version its services serve now, as recorded when it was made ready or last retrained.
        let served = state.served_models(app)?;
        let before = served.iter().find(|served| served.model == model).map(|served| served.version);
        let mut events = Vec::new();
        let ready = ensure_model(application, model, &options, &mut |event: ModelProgress| {
            events.push(event.clone());
            progress(UpProgress::Model(event));
        })
        .await;
        for event in &events {
            if let Some((model, message)) =
                model_event(event).filter(|_| matches!(event, ModelProgress::Bootstrapped { .. }))
            {
                state.record_event(app, EventKind::Model, Some(model), &message)?;
            }
        }
        let ready = ready.inspect_err(|error| {
            let message = format!("the retrain {} failed: {}", trigger.as_str(), stratum_core::error_chain(error));
            let _ = state.record_event(app, EventKind::Failed, Some(model), &message);
        })?;
        let trained = events.iter().find_map(|event| match event {
            ModelProgress::Trained { version, algorithm, metric, score, seconds, .. } => {
                Some((*version, format!("{algorithm}, {metric} {score:.3}, in {seconds:.1} s")))
            }
            _ => None,
        });
        // How the new version compared with the one that served, on the most recent rows.
        let judged = events.iter().find_map(|event| match event {
            ModelProgress::Judged { version, judgement, .. } => Some((*version, judgement)),
            _ => None,
        });
        if trained.is_none() && Some(ready.version) != before {
            // Another version was chosen in the store meanwhile (promote, rollback, pin): the supervisor's next
            // look at the store serves it.
            return Ok(Retrained::Unchanged);
        }
        if Some(ready.version) == before {
            let message = match trained {
                Some((version, _)) if judged.is_some_and(|(_, judgement)| !judgement.promoted) => format!(
                    "retrain due: trained v{version} on the changed data; {}{}",
                    judged.map(|(version, judgement)| judgement.describe(version)).unwrap_or_default(),
                    leaderboard_line(&options.model_store, model, version),
                ),
                Some((version, _)) => format!(
                    "retrain due: trained v{version} on the changed data{}; v{} is pinned and serves on (`stratum model promote {model}` serves v{version})",
                    leaderboard_line(&options.model_store, model, version),
                    ready.version
                ),
                None => {
                    let store = stratum_ml::ModelStore::new(&options.model_store);
                    match store.versions(model).ok().and_then(|versions| versions.last().copied()) {
                        Some(newest) if newest != ready.version => {
                            let pinned = store.chosen(model).ok().flatten().is_some_and(|chosen| chosen.pinned);
                            let why = if pinned { "is pinned" } else { "scored better on the most recent rows" };
                            format!(
                                "retrain due: v{newest} was trained on this data already; v{} {why} and serves on",
                                ready.version
                            )
                        }
                        _ => format!("retrain due: its data has not changed since v{}, which serves on", ready.version),
                    }
                }
            };
            state.record_event(app, EventKind::Model, Some(model), &message)?;
            return Ok(Retrained::Unchanged);
        }
        let rollout = self.serve(model, &ready).await.inspect_err(|error| {
            let message =
                format!("v{} was trained but did not roll out: {}", ready.version, stratum_core::error_chain(error));
            let _ = state.record_event(app, EventKind::Failed, Some(model), &message);
        })?;
        let replaced = before.map(|version| format!(" in place of v{version}")).unwrap_or_default();
        let judged = judged.map(|(version, judgement)| format!("{}; ", judgement.describe(version)));
        let message = format!(
            "retrained {}: v{} ({}) serves{replaced}; {}{}{}",
            trigger.as_str(),
            ready.version,
            trained.map(|(_, how)| how).unwrap_or_default(),
            judged.unwrap_or_default(),
            describe_rollout(&rollout),
            leaderboard_line(&options.model_store, model, ready.version)
        );
        state.record_event(app, EventKind::Model, Some(model), &message)?;
        Ok(Retrained::Served { version: ready.version })
    }

    /// Measures how the version of `model` that serves does on its data's most recent rows by `metric`, against
    /// how it did when trained, and records it as an event. Returns how much worse it does (negative when
    /// better); none when no trained version serves or the data is the one it was trained on.
    pub async fn measure_drift(&self, model: &str, metric: stratum_core::ir::Metric) -> Result<Option<f64>, Error> {
        let running = self.deployment.running.clone();
        let options = model_options(&self.options);
        let store = stratum_ml::ModelStore::new(&options.model_store);
        let Ok(stratum_ml::StoredModel::Trained(artifact)) = store.load_any(model, None) else { return Ok(None) };
        let (application, base) = (running.application.clone(), options.base_dir.clone());
        let version = artifact.version;
        let drift = tokio::task::spawn_blocking(move || artifact.drift(&application, &base, metric))
            .await
            .map_err(|error| Error::Model { model: model.into(), source: error.into() })?
            .map_err(|error| Error::Model { model: model.into(), source: error.into() })?;
        // Its data is the data it was trained on.
        let Some(drift) = drift else { return Ok(None) };
        let message = format!("drift: {}", drift.describe(version));
        self.deployment.state.record_event(&running.app, EventKind::Model, Some(model), &message)?;
        Ok(Some(drift.worse_by()))
    }

    /// Serves the version of each served model the store says serves (`stratum model promote|rollback|pin` choose
    /// it), where it is not the one that serves now: loaded into what serves it, each change an event. Returns
    /// the models that changed, with the version that serves now.
    pub async fn follow_store(&mut self) -> Result<Vec<(String, u32)>, Error> {
        let state = self.deployment.state.clone();
        let running = self.deployment.running.clone();
        let store = stratum_ml::ModelStore::new(model_options(&self.options).model_store);
        let served = state.served_models(&running.app)?;
        let mut changed = Vec::new();
        for model in crate::models::served_models(&running.application) {
            let before = served.iter().find(|served| served.model == model).map(|served| served.version);
            // Which version serves is a file name and a small file away; the artifact is read only on a change.
            let Some(version) = store.serving(&model).ok().flatten().filter(|version| Some(*version) != before) else {
                continue;
            };
            let Ok(stored) = store.load_any(&model, Some(version)) else { continue };
            let data_sha256 = match &stored {
                stratum_ml::StoredModel::Trained(artifact) => artifact.data_sha256.clone(),
                stratum_ml::StoredModel::Imported(_) => String::new(),
            };
            let ready = crate::models::ReadyModel {
                model: model.clone(),
                version: stored.version(),
                sha256: stored.sha256().into(),
                data_sha256,
            };
            let pinned = store.chosen(&model).ok().flatten().is_some_and(|chosen| chosen.pinned);
            let rollout = self.serve(&model, &ready).await?;
            let was = before.map(|version| format!("; was v{version}")).unwrap_or_default();
            let pinned = if pinned { ", pinned" } else { "" };
            let message = format!(
                "v{} serves, as chosen in the model store{pinned}{was}; {}",
                ready.version,
                describe_rollout(&rollout)
            );
            state.record_event(&running.app, EventKind::Model, Some(&model), &message)?;
            changed.push((model, ready.version));
        }
        Ok(changed)
    }

    /// Loads the version of `model` that serves in the store into what serves it and what calls it with
    /// `predict()`, and records it as served.
    async fn serve(&mut self, model: &str, ready: &crate::models::ReadyModel) -> Result<Rollout, Error> {
        let state = self.deployment.state.clone();
        let running = self.deployment.running.clone();
        let rollout = self.part.reload_models(&running.application).await?;
        for service in running.application.services.iter().filter(|service| service.model == model) {
            let served = ServedModel {
                service: service.name.clone(),
                model: model.to_string(),
                version: ready.version,
                sha256: ready.sha256.clone(),
                data_sha256: ready.data_sha256.clone(),
            };
            state.record_served_model(&running.app, &served)?;
        }
        // Predictions go to the new pools from now on.
        self.deployment = Arc::new(UpDeployment {
            running,
            agents: self.deployment.agents.clone(),
            metrics: self.part.metrics(),
            services: self.part.services(),
            feeds: self.part.feeds(),
            state,
        });
        Ok(rollout)
    }

    /// Stops everything: the data plane drains (open windows are emitted, files written), the batch scheduler
    /// stops after a running batch, tools are stopped.
    pub async fn stop(self) -> Result<RunSummary, Error> {
        let summary = self.part.stop().await;
        let outcome = match &summary {
            Ok(summary) => format!("after {:.1} s", summary.seconds),
            Err(error) => format!("with an error: {error}"),
        };
        self.deployment.state.record_event(&self.deployment.running.app, EventKind::Stopped, None, &outcome)?;
        summary
    }
}

/// A rollout in a sentence, for events and the terminal.
pub fn describe_rollout(rollout: &Rollout) -> String {
    let mut parts = Vec::new();
    for (verb, names) in
        [("restarted", &rollout.restarted), ("started", &rollout.started), ("stopped", &rollout.stopped)]
    {
        if !names.is_empty() {
            parts.push(format!("{verb} {}", names.join(", ")));
        }
    }
    if parts.is_empty() {
        parts.push("nothing changed".into());
    }
    parts.push(format!("{} unchanged", rollout.unchanged.len()));
    parts.join("; ")
}
