//! The control plane as the API sees it: who may call it, the deployment running now (a `stratum up`'s version,
//! swapped when a new one is applied, or a `stratum server` with its agents), the metric series sampled from it,
//! and the channel that asks the runner for a new version.

use crate::series::SeriesBuffer;
use crate::views::{ModelVersionView, PhaseName};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use stratum_control::deployment::{Deployment, RunningVersion};
use stratum_control::server::Server;
use stratum_core::ir::Application;
use stratum_core::plan::Plan;
pub(crate) use stratum_core::sync::lock;
use tokio::sync::mpsc;

/// Who may call what: operators read and change, viewers read, agents (with the cluster's join token) join,
/// heartbeat and fetch what they run. Predictions and the OpenAPI document are open to anyone who can reach the
/// port, like any service endpoint.
#[derive(Clone, Debug)]
pub struct Tokens {
    /// The operator's token: reads and applies.
    pub operator: String,
    /// The viewer's token: reads only.
    pub viewer: String,
    /// None where no agent joins over the network (`stratum up`).
    pub join: Option<String>,
}

impl Tokens {
    /// Fresh random tokens (32 hex digits each), for a `stratum up` that was given none.
    pub fn random() -> Result<Tokens, crate::Error> {
        Ok(Tokens { operator: random_token()?, viewer: random_token()?, join: None })
    }
}

fn random_token() -> Result<String, crate::Error> {
    stratum_control::api::random_hex(16).map_err(crate::Error::Token)
}

/// How the API is set up.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// The API's tokens.
    pub tokens: Tokens,
    /// The application's `.stratum` file: the editor shows it, and applying a new version writes it (and the files
    /// it imports, beside it).
    pub source_file: PathBuf,
    /// The state directory of the run: the model store is in `models/` under it, the blob store in `blobs/`.
    pub state_dir: PathBuf,
}

/// A new version the editor applied, for the runner to start in place of the running one. The source is already
/// written to the file, checked and planned.
pub struct Reload {
    /// The new version's application.
    pub application: Application,
    /// Its plan.
    pub plan: Plan,
}

/// The deployment (a `stratum up`'s, or a `stratum server`) and the version it runs, read once per request so
/// that one answer describes one version.
pub struct Snapshot {
    pub deployment: Arc<dyn Deployment>,
    pub running: Arc<RunningVersion>,
}

/// Why a new version does not run.
pub(crate) enum Refused {
    /// Another version is starting.
    Busy,
    Failed(stratum_control::Error),
}

/// What the application is doing, as far as the API can tell.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// Its first version is starting (models train).
    Starting,
    /// It runs.
    Running,
    /// A new version was applied; the old one drains and the new one starts.
    Restarting,
    /// Its last start failed, for this reason.
    Failed(String),
}

impl Phase {
    /// The phase's name, without the failure's reason.
    pub fn name(&self) -> PhaseName {
        match self {
            Phase::Starting => PhaseName::Starting,
            Phase::Running => PhaseName::Running,
            Phase::Restarting => PhaseName::Restarting,
            Phase::Failed(_) => PhaseName::Failed,
        }
    }
}

/// The API's state: its configuration, what runs (see [`ApiState::deployment`]), its phase, and where applied versions go.
pub struct ApiState {
    /// How the API is set up.
    pub config: ApiConfig,
    /// The multi-machine control plane, whose agents call the agents' routes; none under `stratum up`.
    pub server: Option<Arc<Server>>,
    live: RwLock<Option<Arc<dyn Deployment>>>,
    phase: Mutex<Phase>,
    pub(crate) series: Mutex<SeriesBuffer>,
    reloads: mpsc::Sender<Reload>,
    /// Model versions read from the store once: an artifact does not change after it is saved.
    pub(crate) model_versions: Mutex<BTreeMap<(String, u32), Arc<ModelVersionView>>>,
}

impl ApiState {
    /// The control plane, and the receiving end of the versions applied through the API. With a `server`, the
    /// API reads it, serves its agents, and runs from the start (with no version until one is applied).
    pub fn new(config: ApiConfig, server: Option<Arc<Server>>) -> (Arc<ApiState>, mpsc::Receiver<Reload>) {
        let (reloads, received) = mpsc::channel(1);
        let live: Option<Arc<dyn Deployment>> = server.clone().map(|server| server as Arc<dyn Deployment>);
        let phase = if live.is_some() { Phase::Running } else { Phase::Starting };
        let plane = ApiState {
            config,
            server,
            live: RwLock::new(live),
            phase: Mutex::new(phase),
            series: Mutex::new(SeriesBuffer::default()),
            reloads,
            model_versions: Mutex::new(BTreeMap::new()),
        };
        (Arc::new(plane), received)
    }

    /// The application now running (none while it starts).
    pub fn deployment(&self) -> Option<Arc<dyn Deployment>> {
        self.live.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Serves `live` from now on.
    pub fn set_deployment(&self, live: Option<Arc<dyn Deployment>>) {
        let running = live.is_some();
        *self.live.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = live;
        if running {
            self.set_phase(Phase::Running);
        }
    }

    /// What the application is doing now.
    pub fn phase(&self) -> Phase {
        lock(&self.phase).clone()
    }

    /// Says what the application is doing now.
    pub fn set_phase(&self, phase: Phase) {
        *lock(&self.phase) = phase;
    }

    /// Runs a new version: a server rolls it out to its agents at once; `stratum up`'s runner is asked to drain
    /// the running version and start this one.
    pub(crate) fn request_reload(&self, reload: Reload) -> Result<(), Refused> {
        if let Some(server) = &self.server {
            return server.deploy(reload.application, reload.plan).map(|_| ()).map_err(Refused::Failed);
        }
        let mut phase = lock(&self.phase);
        if matches!(*phase, Phase::Restarting | Phase::Starting) || self.reloads.try_send(reload).is_err() {
            return Err(Refused::Busy);
        }
        *phase = Phase::Restarting;
        Ok(())
    }

    /// The deployment and its running version, when a version runs.
    pub fn snapshot(&self) -> Option<Snapshot> {
        let deployment = self.deployment()?;
        let running = deployment.running()?;
        Some(Snapshot { deployment, running })
    }

    /// Takes one sample of every series from the running application.
    pub fn sample(&self) {
        if let Some(snapshot) = self.snapshot() {
            lock(&self.series).sample(snapshot.deployment.as_ref(), snapshot.running.version, Instant::now());
        }
    }
}
