//! `stratum up`: a whole application on this machine. The control plane (state store, API, batch schedules) and
//! one in-process agent per machine of the plan; the models the services need made ready (reused, trained, or
//! bootstrapped from simulated history and trained); the embedded MQTT broker when a component needs it; then
//! every source, stream, service and sink in one data plane, with sources that need the outside world simulated
//! unless asked to connect for real. Runs until stopped; stopping drains. The HTTP API and the web interface
//! over a running application live in the `stratum-api` crate: they read [`Deployed`] as a [`Deployment`].

use crate::Error;
use crate::agents::{Machine, agents_of};
use crate::deployment::{DeployedVersion, Deployment, FeedRecords, Prediction, ServiceState};
use crate::models::{ModelOptions, ModelProgress, ensure_models};
use crate::placement::Placed;
use crate::serving::ServicePool;
use crate::state::{ServedModel, StateStore};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use stratum_core::ir::{Application, ServiceInput, SinkKind, SourceKind};
use stratum_core::plan::Plan;
use stratum_dataplane::connectors::mqtt::EmbeddedBroker;
use stratum_dataplane::metrics::Registry;
use stratum_dataplane::pipeline::Stopper;
use stratum_dataplane::sinks::feed::Feed;
use stratum_dataplane::{Pipeline, PipelineOptions, RunSummary};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Relative paths of the application are relative to this directory (the file's).
    pub base_dir: PathBuf,
    /// The state store, the model store and the dead letters live here.
    pub state_dir: PathBuf,
    /// An MQTT broker to use instead of the embedded one.
    pub mqtt_broker: Option<String>,
    /// Stand generators in for sources that need the outside world (MQTT, NATS, Kafka, HTTP).
    pub simulate: bool,
    /// How much simulated history bootstraps a missing training dataset.
    pub bootstrap_hours: f64,
    /// Simulated sources run this many times faster than the clock (60: an hour of data in a minute).
    pub time_scale: f64,
}

/// What `up` is doing, for the user to see.
#[derive(Clone, Debug)]
pub enum UpProgress {
    Model(ModelProgress),
    Broker { url: String },
}

/// What a running version is made of, shared with whoever watches it (the API reads it while the runner owns the
/// [`Running`] that stops it).
pub struct Deployed {
    pub current: Arc<DeployedVersion>,
    pub agents: Vec<Machine>,
    pub metrics: Arc<Registry>,
    /// The HTTP part of each service, by name: predictions go here.
    pub services: BTreeMap<String, Arc<ServicePool>>,
    /// The latest records of each stream or source a dashboard panel shows.
    pub feeds: BTreeMap<String, Feed>,
    pub state: Arc<StateStore>,
}

impl Deployment for Deployed {
    fn current(&self) -> Option<Arc<DeployedVersion>> {
        Some(self.current.clone())
    }

    fn machines(&self) -> Vec<Machine> {
        self.agents.clone()
    }

    /// Everything runs where the plan put it: the in-process agents do not get lost.
    fn placement(&self) -> Vec<Placed> {
        self.current
            .plan
            .assignments
            .iter()
            .map(|assignment| Placed {
                component: assignment.component.clone(),
                instance: assignment.instance,
                planned: assignment.host.clone(),
                host: Some(assignment.host.clone()),
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
    pub deployed: Arc<Deployed>,
    pipeline: JoinHandle<Result<RunSummary, stratum_dataplane::Error>>,
    stopper: Stopper,
    stop_batches: watch::Sender<bool>,
    /// Stops what runs beside the data plane: service autoscalers, policies, tools.
    stop_beside: watch::Sender<bool>,
    batches: JoinHandle<()>,
    tools: Vec<JoinHandle<()>>,
}

/// The MQTT sinks and sources (and service outputs) that name no broker need one.
fn needs_broker(application: &Application, simulate: bool) -> bool {
    application.sinks.iter().any(|sink| matches!(sink.kind, SinkKind::Mqtt { .. }))
        || application.services.iter().any(|service| matches!(service.output, Some(SinkKind::Mqtt { .. })))
        || (!simulate
            && application.sources.iter().any(|source| matches!(source.kind, SourceKind::Mqtt { broker: None, .. })))
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

/// Starts everything; returns once it all runs.
pub async fn up(
    application: Application,
    plan: Plan,
    options: UpOptions,
    progress: &mut (dyn FnMut(UpProgress) + Send),
) -> Result<Running, Error> {
    let started = Instant::now();
    let app = application.name.clone();
    let state = Arc::new(StateStore::open(&options.state_dir.join("state.db"))?);
    let ir = serde_json::to_string(&application).map_err(|error| Error::State(error.to_string()))?;
    let plan_text = serde_json::to_string(&plan).map_err(|error| Error::State(error.to_string()))?;
    let version = state.record_version(&app, &ir, &plan_text)?;
    let agents = agents_of(&application, &plan);
    state.record_event(&app, "starting", None, &format!("version {version} on {} agents", agents.len()))?;

    // Models first: services and `predict()` load them when the data plane is built.
    let model_store = options.state_dir.join("models");
    let model_options = ModelOptions {
        base_dir: options.base_dir.clone(),
        model_store: model_store.clone(),
        bootstrap_hours: options.bootstrap_hours,
    };
    let mut model_events = Vec::new();
    let ready = ensure_models(&application, &model_options, &mut |event: ModelProgress| {
        model_events.push(event.clone());
        progress(UpProgress::Model(event));
    })
    .await;
    for event in &model_events {
        let (model, message) = match event {
            ModelProgress::Trained { model, version, algorithm, metric, score, seconds } => {
                (model, format!("trained v{version}: {algorithm}, {metric} {score:.3}, in {seconds:.1} s"))
            }
            ModelProgress::Reused { model, version } => (model, format!("reused v{version}: trained on the same data")),
            ModelProgress::Bootstrapped { model, events, rows } => {
                (model, format!("bootstrapped its data from {events} simulated events: {rows} rows"))
            }
            _ => continue,
        };
        state.record_event(&app, "model", Some(model), &message)?;
    }
    let ready = ready.inspect_err(|error| {
        let _ = state.record_event(&app, "failed", None, &error.to_string());
    })?;
    for service in &application.services {
        if let Some(model) = ready.iter().find(|model| model.model == service.model) {
            state.record_served_model(
                &app,
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

    let mut broker_url = options.mqtt_broker.clone();
    if broker_url.is_none() && needs_broker(&application, options.simulate) {
        let (v4, v5) = broker_addresses();
        let broker = EmbeddedBroker::start(v4, v5)?;
        progress(UpProgress::Broker { url: broker.url() });
        broker_url = Some(broker.url());
    }

    let pipeline_options = PipelineOptions {
        base_dir: options.base_dir.clone(),
        data_dir: Some(options.state_dir.join("run")),
        simulate: options.simulate,
        time_scale: options.time_scale,
        model_store: Some(model_store.clone()),
        mqtt_broker: broker_url.clone(),
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::build(&application, &pipeline_options)?;
    let metrics = pipeline.metrics.clone();
    let stopper = pipeline.stopper();

    let mut services = BTreeMap::new();
    let (stop_beside, beside_stopped) = watch::channel(false);
    for service in &application.services {
        let pool = ServicePool::new(&application, &service.name, &model_store, &metrics)?;
        let (scale_state, scale_app) = (state.clone(), app.clone());
        tokio::spawn(pool.clone().autoscale(beside_stopped.clone(), move |service, from, to, reason| {
            let message = format!("{from} → {to} replicas ({reason})");
            let _ = scale_state.record_event(&scale_app, "scaled", Some(service), &message);
        }));
        services.insert(service.name.clone(), pool);
    }
    // Quality-of-service policies on the services, measured every few seconds.
    let (qos_state, qos_app) = (state.clone(), app.clone());
    tokio::spawn(crate::qos::run_policies(
        application.clone(),
        services.clone(),
        metrics.clone(),
        false,
        beside_stopped.clone(),
        move |service, message| {
            let _ = qos_state.record_event(&qos_app, "policy", Some(service), message);
        },
    ));
    // Tools: supervised child processes; one that cannot run here (an image without a container runtime) says why.
    let mut not_running: Vec<(String, String)> = Vec::new();
    let mut tools = Vec::new();
    for tool in &application.tools {
        match crate::tools::command_line(tool, &app) {
            Ok(line) => {
                let (tool_state, tool_app) = (state.clone(), app.clone());
                tools.push(tokio::spawn(crate::tools::supervise(
                    tool.clone(),
                    line,
                    options.state_dir.join("logs"),
                    beside_stopped.clone(),
                    move |name, event| record_tool_event(&tool_state, &tool_app, name, event),
                )));
            }
            Err(reason) => {
                state.record_event(&app, "tool-not-started", Some(&tool.name), &reason)?;
                not_running.push((tool.name.clone(), reason));
            }
        }
    }
    not_running.extend(
        application
            .services
            .iter()
            .filter(|service| matches!(service.input, ServiceInput::Http { .. }))
            .map(|service| (service.name.clone(), "answers on the API only".to_string())),
    );

    let feeds = pipeline.feeds.clone();
    let pipeline = tokio::spawn(pipeline.run());
    let (stop_batches, batches_stopped) = watch::channel(false);
    let (batch_application, batch_base, batch_state, batch_app) =
        (application.clone(), options.base_dir.clone(), state.clone(), app.clone());
    // Batch runs are events: the state store keeps them, the API and the CLI show them.
    let batches = tokio::spawn(async move {
        stratum_batch::schedule::run_on_schedule(
            &batch_application,
            &batch_base,
            &[],
            batches_stopped,
            |name, result| {
                let (kind, message) = match result {
                    Ok(run) => ("batch", format!("{} rows into `{}` in {:.2} s", run.rows, run.into, run.seconds)),
                    Err(error) => ("batch-failed", error.to_string()),
                };
                let _ = batch_state.record_event(&batch_app, kind, Some(name), &message);
            },
        )
        .await;
    });
    state.record_event(&app, "started", None, &format!("version {version}"))?;
    let current = DeployedVersion {
        app,
        version,
        application: Arc::new(application),
        plan: Arc::new(plan),
        started,
        broker_url,
        not_running,
    };
    let deployed = Deployed { current: Arc::new(current), agents, metrics, services, feeds, state };
    Ok(Running { deployed: Arc::new(deployed), pipeline, stopper, stop_batches, stop_beside, batches, tools })
}

fn record_tool_event(state: &StateStore, app: &str, tool: &str, event: crate::tools::ToolEvent) {
    let (kind, message) = crate::tools::describe(&event);
    let _ = state.record_event(app, kind, Some(tool), &message);
}

impl Running {
    /// Whether the data plane has ended by itself (its sources ran out, or a component failed).
    pub fn pipeline_finished(&self) -> bool {
        self.pipeline.is_finished()
    }

    /// Stops everything: the data plane drains (open windows are emitted, files written), the batch scheduler
    /// stops after a running batch, tools are stopped.
    pub async fn stop(self) -> Result<RunSummary, Error> {
        self.stopper.stop();
        self.stop_batches.send_replace(true);
        self.stop_beside.send_replace(true);
        let summary = self.pipeline.await.map_err(|error| Error::Task(error.to_string()))?;
        let _ = self.batches.await;
        for tool in self.tools {
            let _ = tool.await;
        }
        let outcome = match &summary {
            Ok(summary) => format!("after {:.1} s", summary.seconds),
            Err(error) => format!("with an error: {error}"),
        };
        self.deployed.state.record_event(&self.deployed.current.app, "stopped", None, &outcome)?;
        Ok(summary?)
    }
}
