//! A running application as whoever watches it sees it — the API and the web interface read nothing else. Two
//! things run applications: `stratum up` ([`crate::up::UpDeployment`], everything in this process) and `stratum server`
//! ([`crate::server::Server`], agents on other machines reporting in their heartbeats). Both answer the same
//! questions through [`Deployment`], so every view works the same on a laptop and across machines.

use crate::agents::Machine;
use crate::placement::Placed;
use crate::serving::{Refusal, ServiceState};
use crate::state::StateStore;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use stratum_core::ir::Application;
use stratum_core::plan::Plan;
use stratum_core::types::Field;
use stratum_dataplane::metrics::MetricsSnapshot;
use stratum_dataplane::record::Record;

/// The version of the application that runs now.
#[derive(Clone, Debug)]
pub struct RunningVersion {
    /// The application's name.
    pub app: String,
    /// The version.
    pub version: u32,
    /// The application.
    pub application: Arc<Application>,
    /// Its plan.
    pub plan: Arc<Plan>,
    /// When it started.
    pub started: Instant,
    /// The MQTT broker components without one of their own use, when there is one.
    pub broker_url: Option<String>,
    /// Components of the plan this version does not run, with the reason.
    pub not_running: Vec<(String, String)>,
}

/// The latest records of a stream or source that a dashboard panel shows.
#[derive(Clone, Debug, Default)]
pub struct FeedRecords {
    /// The fields of the records.
    pub fields: Vec<Field>,
    /// Oldest first.
    pub records: Vec<Record>,
}

/// A prediction on its way: the answer, or why there is none.
pub type Prediction<'a> = Pin<Box<dyn Future<Output = Result<Value, Refusal>> + Send + 'a>>;

/// What runs, where, and how it is doing.
pub trait Deployment: Send + Sync {
    /// The version running now; none before one is applied.
    fn running(&self) -> Option<Arc<RunningVersion>>;
    /// The machines that run it, each with the components it runs.
    fn machines(&self) -> Vec<Machine>;
    /// Where each instance of each component runs now (`host` is none while nothing can run it).
    fn placement(&self) -> Vec<Placed>;
    /// Every running component's standard metrics, as counted since it started.
    fn metrics(&self) -> Vec<MetricsSnapshot>;
    /// Each service's replicas, by service (replicas on several machines add up).
    fn services(&self) -> Vec<ServiceState>;
    /// The latest records of `source` (a stream or source a dashboard panel shows), if it runs and has any.
    fn feed(&self, source: &str) -> Option<FeedRecords>;
    /// The state store: events, versions, served models.
    fn state(&self) -> &StateStore;
    /// Predictions of `service` for a request body (one JSON object or an array of them).
    fn predict(&self, service: String, body: Vec<u8>) -> Prediction<'_>;
    /// Every metric in the Prometheus text format.
    fn prometheus(&self) -> String;
}
