//! What one machine runs of an application: its part of the data plane, the service pools that answer requests
//! (each with its autoscaler), the services' policies, its batches on their schedules and its tools. Both
//! `stratum up` (the whole application) and each agent (what the control plane assigns it) run one. A new version
//! rolls out by what changed: the data plane restarts only the components whose definition changed (see
//! [`stratum_dataplane::pipeline`]), and a service pool, a tool or the batch schedule is replaced only when its own
//! definition (or a service's model) changed.

use crate::Error;
use crate::serving::ServicePool;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratum_core::events::EventKind;
use stratum_core::ir::Application;
use stratum_dataplane::metrics::Registry;
use stratum_dataplane::pipeline::{Rollout, RunningPipeline};
use stratum_dataplane::remote::Partition;
use stratum_dataplane::sinks::feed::Feed;
use stratum_dataplane::{Pipeline, PipelineOptions, RunSummary};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where a part runs from.
#[derive(Clone, Debug)]
pub(crate) struct PartOptions {
    /// How the data plane is built (its model store is the services' too).
    pub pipeline: PipelineOptions,
    /// Tools write their output here.
    pub logs_dir: PathBuf,
    /// What needs other machines — `migrate`, and `scale_out` onto more machines — is decided elsewhere (by the
    /// control plane of `stratum server`).
    pub cluster_decides: bool,
    /// Whether this machine starts the tools that run a container image. A deployment that runs them as
    /// containers of their own (the generated compose file and Kubernetes manifests) turns this off.
    pub image_tools: bool,
}

/// Which components of the application a machine runs: all of them (`stratum up`), or an agent's assignment
/// with its paths to and from other machines, and the streams that leave it to hand their state over to the
/// machine that runs them next.
pub(crate) enum Share {
    Everything,
    Assigned { components: Vec<String>, partition: Partition, hand_over: Vec<String> },
}

/// Something that happened to a component beside the data plane (a pool scaled, a policy acted, a batch ran, a
/// tool started or exited): the component, the event's kind and its message.
pub(crate) type Report = Arc<dyn Fn(&str, EventKind, String) + Send + Sync>;

/// A task beside the data plane, with the stop it listens to.
struct Beside {
    fingerprint: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

struct Pool {
    fingerprint: String,
    pool: Arc<ServicePool>,
    autoscaler: watch::Sender<bool>,
}

/// A running part.
pub(crate) struct RunningPart {
    pipeline: RunningPipeline,
    options: PartOptions,
    report: Report,
    pools: BTreeMap<String, Pool>,
    policies: Option<Beside>,
    batches: Option<Beside>,
    tools: BTreeMap<String, Beside>,
    /// Components placed here that do not run, with the reason (an image without a container runtime).
    pub not_running: Vec<(String, String)>,
    /// Each stream's late records told of so far, and when.
    late_reported: BTreeMap<String, (u64, Instant)>,
}

/// How often a stream's late records are told of as an event.
const LATE_EVENT_INTERVAL: Duration = Duration::from_secs(60);

/// What the components of a share are: data-plane components, services, batches and tools by name.
struct Members {
    data_plane: Option<Vec<String>>,
    services: Vec<String>,
    batches: Vec<String>,
    tools: Vec<String>,
}

fn members(application: &Application, share: &Share, image_tools: bool) -> Members {
    let runs = |name: &str| match share {
        Share::Everything => true,
        Share::Assigned { components, .. } => components.iter().any(|component| component == name),
    };
    let is_beside = |name: &String| {
        application.batches.iter().any(|batch| &batch.name == name)
            || application.tools.iter().any(|tool| &tool.name == name)
    };
    Members {
        data_plane: match share {
            Share::Everything => None,
            Share::Assigned { components, .. } => {
                Some(components.iter().filter(|name| !is_beside(name)).cloned().collect())
            }
        },
        services: application.services.iter().map(|service| &service.name).filter(|name| runs(name)).cloned().collect(),
        batches: application.batches.iter().map(|batch| &batch.name).filter(|name| runs(name)).cloned().collect(),
        tools: application
            .tools
            .iter()
            .filter(|tool| image_tools || !matches!(tool.run, stratum_core::ir::ToolRun::Image(_)))
            .map(|tool| &tool.name)
            .filter(|name| runs(name))
            .cloned()
            .collect(),
    }
}

fn partition_of(share: Share, data_plane: Option<Vec<String>>) -> Option<Partition> {
    match (share, data_plane) {
        (Share::Assigned { partition, .. }, Some(components)) => Some(Partition { components, ..partition }),
        _ => None,
    }
}

/// Streams that took up their checkpoint are events: a crash before did not cost them their open windows.
fn report_resumed(report: &Report, resumed: &[String]) {
    for stream in resumed {
        report(stream, EventKind::Resumed, "took up the open windows of its checkpoint".to_string());
    }
}

impl RunningPart {
    /// Builds and starts everything of `share`; nothing runs when something cannot be built.
    pub(crate) async fn start(
        application: &Application,
        share: Share,
        options: PartOptions,
        report: Report,
    ) -> Result<RunningPart, Error> {
        let members = members(application, &share, options.image_tools);
        let pipeline =
            Pipeline::build_part(application, &options.pipeline, partition_of(share, members.data_plane.clone()))?;
        report_resumed(&report, &pipeline.resumed);
        let mut part = RunningPart {
            pipeline: pipeline.start(),
            options,
            report,
            pools: BTreeMap::new(),
            policies: None,
            batches: None,
            tools: BTreeMap::new(),
            not_running: Vec::new(),
            late_reported: BTreeMap::new(),
        };
        part.roll_out_beside(application, &members, &mut Rollout::default()).await?;
        Ok(part)
    }

    /// Rolls out a new version: only what changed restarts (see the module documentation). A component that
    /// cannot be built fails the rollout before anything running is touched. When the data plane has ended (its
    /// sources ran out), the answer is [`stratum_dataplane::Error::Ended`]: start the part again.
    pub(crate) async fn update(&mut self, application: &Application, share: Share) -> Result<Rollout, Error> {
        self.roll_out(application, share, true).await
    }

    /// Loads the models' newest versions into what serves them and what calls them with `predict()`: an update to
    /// the same application, except that a data plane that has ended (its sources ran out) is left as it is and
    /// only the service pools are replaced.
    pub(crate) async fn reload_models(&mut self, application: &Application) -> Result<Rollout, Error> {
        let data_plane = !self.pipeline_finished();
        self.roll_out(application, Share::Everything, data_plane).await
    }

    async fn roll_out(&mut self, application: &Application, share: Share, data_plane: bool) -> Result<Rollout, Error> {
        let members = members(application, &share, self.options.image_tools);
        // Service pools are built first too: a model that cannot be loaded leaves everything as it was.
        let mut pools = BTreeMap::new();
        for service in &members.services {
            let fingerprint = self.pool_fingerprint(application, service);
            if self.pools.get(service).is_none_or(|pool| pool.fingerprint != fingerprint) {
                let pool = ServicePool::new(application, service, self.model_store(), &self.pipeline.metrics)?;
                pools.insert(service.clone(), (fingerprint, pool));
            }
        }
        let hand_over = match &share {
            Share::Assigned { hand_over, .. } => hand_over.clone(),
            Share::Everything => Vec::new(),
        };
        let mut rollout = Rollout::default();
        if data_plane {
            rollout = self.pipeline.update(
                application,
                &self.options.pipeline,
                partition_of(share, members.data_plane.clone()),
                &hand_over,
            )?;
            report_resumed(&self.report, &rollout.resumed);
        }
        // Pools that changed (their stream part restarted with the data plane, if they have one).
        for (service, (fingerprint, pool)) in pools {
            self.start_pool(service.clone(), fingerprint, pool, &mut rollout);
        }
        for gone in self.pools.keys().filter(|name| !members.services.contains(name)).cloned().collect::<Vec<_>>() {
            if let Some(pool) = self.pools.remove(&gone) {
                pool.autoscaler.send_replace(true);
                self.pipeline.metrics.remove(&crate::serving::requests_component(&gone));
                note(&mut rollout.stopped, &gone);
            }
        }
        self.roll_out_beside(application, &members, &mut rollout).await?;
        Ok(rollout)
    }

    fn model_store(&self) -> &std::path::Path {
        self.options.pipeline.model_store.as_deref().unwrap_or(std::path::Path::new("models"))
    }

    /// A service pool is replaced when its service, its model or the model's newest version changes.
    fn pool_fingerprint(&self, application: &Application, service: &str) -> String {
        stratum_dataplane::pipeline::served_model(application, service, Some(self.model_store())).to_string()
    }

    fn start_pool(&mut self, service: String, fingerprint: String, pool: Arc<ServicePool>, rollout: &mut Rollout) {
        let (autoscaler, stopped) = watch::channel(false);
        let report = self.report.clone();
        tokio::spawn(pool.clone().autoscale(stopped, move |service, from, to, reason| {
            report(service, EventKind::Scaled, format!("{from} → {to} replicas ({reason})"));
        }));
        match self.pools.insert(service.clone(), Pool { fingerprint, pool, autoscaler }) {
            Some(old) => {
                old.autoscaler.send_replace(true);
                note(&mut rollout.restarted, &service);
            }
            None => note(&mut rollout.started, &service),
        }
    }

    /// Pools (on the first start), policies, batches and tools of a version.
    async fn roll_out_beside(
        &mut self,
        application: &Application,
        members: &Members,
        rollout: &mut Rollout,
    ) -> Result<(), Error> {
        for service in &members.services {
            if !self.pools.contains_key(service) {
                let fingerprint = self.pool_fingerprint(application, service);
                let pool = ServicePool::new(application, service, self.model_store(), &self.pipeline.metrics)?;
                self.start_pool(service.clone(), fingerprint, pool, rollout);
            }
        }
        // Policies measure from scratch with each version: they are not components and hold nothing.
        if let Some(policies) = self.policies.take() {
            policies.stop.send_replace(true);
        }
        let (stop, stopped) = watch::channel(false);
        let report = self.report.clone();
        let task = tokio::spawn(crate::qos::run_policies(
            application.clone(),
            self.services(),
            self.pipeline.metrics.clone(),
            self.options.cluster_decides,
            stopped,
            move |service, message| report(service, EventKind::Policy, message.to_string()),
        ));
        self.policies = Some(Beside { fingerprint: String::new(), stop, task });

        let batches: Vec<_> =
            application.batches.iter().filter(|batch| members.batches.contains(&batch.name)).collect();
        let fingerprint = json!({ "batches": batches, "datasets": application.datasets }).to_string();
        if self.batches.as_ref().is_none_or(|running| running.fingerprint != fingerprint) {
            if let Some(old) = self.batches.take() {
                // A batch that is running finishes first.
                old.stop.send_replace(true);
                let _ = old.task.await;
            }
            if !members.batches.is_empty() {
                let (stop, stopped) = watch::channel(false);
                let (application, base, names, report) = (
                    application.clone(),
                    self.options.pipeline.base_dir.clone(),
                    members.batches.clone(),
                    self.report.clone(),
                );
                let speed = self.options.pipeline.time_scale;
                let task = tokio::spawn(async move {
                    let schedule = stratum_batch::schedule::run_on_schedule;
                    schedule(&application, &base, &names, speed, stopped, |name, result| {
                        let (kind, message) = match result {
                            Ok(run) => (
                                EventKind::Batch,
                                format!("{} rows into `{}` in {:.2} s", run.rows, run.into, run.seconds),
                            ),
                            // An event's message is a sentence for people.
                            Err(error) => (EventKind::BatchFailed, stratum_core::error_chain(&error)),
                        };
                        report(name, kind, message);
                    })
                    .await;
                });
                self.batches = Some(Beside { fingerprint, stop, task });
            }
        }

        self.not_running.retain(|(name, _)| members.tools.contains(name));
        for name in self.tools.keys().filter(|name| !members.tools.contains(name)).cloned().collect::<Vec<_>>() {
            if let Some(tool) = self.tools.remove(&name) {
                tool.stop.send_replace(true);
                let _ = tool.task.await;
                note(&mut rollout.stopped, &name);
            }
        }
        for tool in application.tools.iter().filter(|tool| members.tools.contains(&tool.name)) {
            let fingerprint = json!(tool).to_string();
            if self.tools.get(&tool.name).is_some_and(|running| running.fingerprint == fingerprint) {
                continue;
            }
            // The old process is stopped before the new one starts: they may want the same port.
            let restarting = match self.tools.remove(&tool.name) {
                Some(old) => {
                    old.stop.send_replace(true);
                    let _ = old.task.await;
                    true
                }
                None => false,
            };
            self.not_running.retain(|(name, _)| name != &tool.name);
            match crate::tools::launch(tool, &application.name) {
                Ok(launch) => {
                    let (stop, stopped) = watch::channel(false);
                    let report = self.report.clone();
                    let task = tokio::spawn(crate::tools::supervise(
                        tool.clone(),
                        launch,
                        self.options.logs_dir.clone(),
                        stopped,
                        move |name, event| {
                            let (kind, message) = crate::tools::describe(&event);
                            report(name, kind, message);
                        },
                    ));
                    self.tools.insert(tool.name.clone(), Beside { fingerprint, stop, task });
                    note(if restarting { &mut rollout.restarted } else { &mut rollout.started }, &tool.name);
                }
                Err(not_launched) => {
                    // Told in an event and in what does not run: sentences for people.
                    let reason = not_launched.to_string();
                    (self.report)(&tool.name, EventKind::ToolNotStarted, reason.clone());
                    self.not_running.push((tool.name.clone(), reason));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn metrics(&self) -> Arc<Registry> {
        self.pipeline.metrics.clone()
    }

    pub(crate) fn feeds(&self) -> BTreeMap<String, Feed> {
        self.pipeline.feeds()
    }

    /// The service pools, by service.
    pub(crate) fn services(&self) -> BTreeMap<String, Arc<ServicePool>> {
        self.pools.iter().map(|(name, pool)| (name.clone(), pool.pool.clone())).collect()
    }

    /// Whether the data plane has ended by itself (its sources ran out, or a component failed).
    pub(crate) fn pipeline_finished(&self) -> bool {
        self.pipeline.is_finished()
    }

    /// Why the data plane stopped, when a component failed (it stops and drains the rest).
    /// Tells, as an event at most once a minute per stream, of records that reached a stream after their windows
    /// had closed (each is in the dead letters), with what to change.
    pub(crate) fn report_late_records(&mut self) {
        let now = Instant::now();
        for snapshot in self.pipeline.metrics.snapshot() {
            if snapshot.kind != "stream" || snapshot.dropped == 0 {
                continue;
            }
            let (told, at) = self.late_reported.get(&snapshot.component).copied().unwrap_or((0, now));
            let due = told == 0 || now.duration_since(at) >= LATE_EVENT_INTERVAL;
            if snapshot.dropped > told && due {
                let message = format!(
                    "{} records arrived after their windows closed and went to the dead letters; if the producer runs \
                     slower than real time, give the stream `idle = never` or a longer `idle`, or a larger `lateness`",
                    snapshot.dropped - told
                );
                (self.report)(&snapshot.component, EventKind::LateRecords, message);
                self.late_reported.insert(snapshot.component.clone(), (snapshot.dropped, now));
            }
        }
    }

    pub(crate) fn failure(&self) -> Option<String> {
        self.pipeline.failure()
    }

    /// Stops everything: the data plane drains (open windows are emitted, files written), a running batch
    /// finishes, tools are stopped.
    pub(crate) async fn stop(self) -> Result<RunSummary, Error> {
        self.pipeline.stopper().stop();
        for pool in self.pools.values() {
            pool.autoscaler.send_replace(true);
        }
        let beside: Vec<Beside> =
            self.policies.into_iter().chain(self.batches).chain(self.tools.into_values()).collect();
        for task in &beside {
            task.stop.send_replace(true);
        }
        let summary = self.pipeline.finished().await;
        for task in beside {
            let _ = task.task.await;
        }
        Ok(summary?)
    }
}

fn note(names: &mut Vec<String>, name: &str) {
    if !names.iter().any(|known| known == name) {
        names.push(name.to_string());
    }
}
