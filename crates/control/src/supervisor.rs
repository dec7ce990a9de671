//! `stratum up`'s supervisor, a [`Reconciler`]: desired, the version applied last (the first one, or one applied
//! from the editor through [`Versions`]); observed, what runs. A pass runs a newly applied version — rolled into the
//! running one when it can be, so that only what changed restarts, or in its place — and starts again a data plane
//! that a component's failure stopped, after the shared backoff and for as long as it takes (what stopped it — no
//! descriptors left, a full disk — may pass). What happens is told through [`Notice`]s, which the terminal and the
//! API show, and recorded as events.

use crate::Error;
use crate::reconcile::{Action, Backoff, Reconciler};
use crate::up::{Running, Stopped, UpOptions, UpProgress, up};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratum_core::events::EventKind;
use stratum_core::ir::Application;
use stratum_core::plan::Plan;
use stratum_core::sync::lock;
use stratum_dataplane::pipeline::Rollout;
use tokio::sync::Notify;

/// How often a pass runs when nothing is applied: a failure is noticed, and a stopped version started again, no
/// later than this.
const PASS_INTERVAL: Duration = Duration::from_secs(2);

/// What the supervisor did or saw.
pub enum Notice<'a> {
    /// How a version's models are made ready while it starts.
    Progress(&'a UpProgress),
    /// A version was applied and rolls into the running one: only what changed restarts.
    RollingOut,
    /// A version was applied and replaces the running one, which drains first.
    Draining {
        /// The version that drains.
        version: u32,
    },
    /// A version runs, in place of none or of the one before.
    Started(&'a Running),
    /// A version was applied and rolled into the running one.
    RolledOut {
        /// What runs now.
        running: &'a Running,
        /// What restarted and what ran on.
        rollout: &'a Rollout,
    },
    /// A version was applied but did not roll out; the running one (`version`) runs on.
    RolloutFailed {
        /// The version that runs on.
        version: u32,
        /// Why the new one did not roll out.
        error: &'a Error,
    },
    /// A version was applied but did not start; nothing runs until another is applied.
    StartFailed {
        /// Why.
        error: &'a Error,
    },
    /// A component failed and stopped the data plane; it starts again in `wait`.
    DataPlaneStopped {
        /// What failed.
        failure: &'a str,
        /// How long until it starts again.
        wait: Duration,
    },
    /// The data plane did not start again; it is tried again in `wait`.
    RestartFailed {
        /// Why.
        error: &'a Error,
        /// How long until the next try.
        wait: Duration,
    },
    /// The data plane started again.
    Restarted(&'a Running),
    /// The sources ran out: the data plane has ended; services, batches and the API go on.
    DataPlaneEnded,
    /// A pass found the version running (to show its events and status).
    Running(&'a Running),
}

/// Where new versions are handed to a running supervisor: the latest one wins, and it is run at once.
#[derive(Clone, Default)]
pub struct Versions {
    next: Arc<Mutex<Option<(Application, Plan)>>>,
    wake: Arc<Notify>,
}

impl Versions {
    /// Asks for `application` (checked and planned) to run in place of what runs now.
    pub fn apply(&self, application: Application, plan: Plan) {
        *lock(&self.next) = Some((application, plan));
        self.wake.notify_one();
    }

    /// What wakes the supervisor when a version is applied.
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    fn take(&self) -> Option<(Application, Plan)> {
        lock(&self.next).take()
    }
}

/// Keeps one machine's application running; see the module's documentation.
pub struct Supervisor {
    options: UpOptions,
    current: Option<Running>,
    /// A failed version, stopped once its backoff passed, waiting to start again.
    stopped: Option<Stopped>,
    restart_due: Option<Instant>,
    running_since: Instant,
    restart_backoff: Backoff,
    data_plane_ended: bool,
    versions: Versions,
    notify: Box<dyn FnMut(Notice<'_>) + Send>,
}

impl Supervisor {
    /// Supervises `running`, started by [`up`] with `options`; `notify` hears of everything.
    pub fn new(running: Running, options: UpOptions, notify: Box<dyn FnMut(Notice<'_>) + Send>) -> Supervisor {
        let mut supervisor = Supervisor {
            options,
            current: None,
            stopped: None,
            restart_due: None,
            running_since: Instant::now(),
            restart_backoff: Backoff::default(),
            data_plane_ended: false,
            versions: Versions::default(),
            notify,
        };
        supervisor.keep_broker(&running);
        supervisor.current = Some(running);
        supervisor
    }

    /// Where to hand it new versions.
    pub fn versions(&self) -> Versions {
        self.versions.clone()
    }

    /// Stops what runs: the data plane drains, tools stop. `None` when nothing ran (a version that did not start).
    pub async fn stop(self) -> Option<Result<stratum_dataplane::RunSummary, Error>> {
        match self.current {
            Some(running) => Some(running.stop().await),
            None => None,
        }
    }

    /// The embedded broker lives as long as the process: later versions use it, so that subscribers stay
    /// connected.
    fn keep_broker(&mut self, running: &Running) {
        if self.options.mqtt_broker.is_none() {
            self.options.mqtt_broker = running.deployment.running.broker_url.clone();
        }
    }

    /// Runs an applied version: rolled into the running one when it can be, otherwise in its place.
    async fn run_version(&mut self, application: Application, plan: Plan) {
        let notify = &mut self.notify;
        if let Some(running) = self.current.as_mut().filter(|running| running.can_update(&application)) {
            notify(Notice::RollingOut);
            match running.update(application, plan, &mut |progress| notify(Notice::Progress(&progress))).await {
                Ok(rollout) => notify(Notice::RolledOut { running, rollout: &rollout }),
                Err(error) => {
                    notify(Notice::RolloutFailed { version: running.deployment.running.version, error: &error })
                }
            }
            return;
        }
        let version = self.current.as_ref().map_or(0, |running| running.deployment.running.version);
        notify(Notice::Draining { version });
        // A version waiting to start again is replaced by the new one.
        self.stopped = None;
        self.restart_due = None;
        if let Some(old) = self.current.take()
            && let Err(error) = old.stop().await
        {
            tracing::warn!(%error, version, "the old version stopped with an error");
        }
        match up(application, plan, self.options.clone(), &mut |progress| notify(Notice::Progress(&progress))).await {
            Ok(started) => {
                notify(Notice::Started(&started));
                self.keep_broker(&started);
                self.data_plane_ended = false;
                self.running_since = Instant::now();
                self.current = Some(started);
            }
            Err(error) => notify(Notice::StartFailed { error: &error }),
        }
    }

    /// Starts a stopped version again once its backoff has passed.
    async fn start_again(&mut self, waiting: Stopped) {
        let now = Instant::now();
        if self.restart_due.is_some_and(|due| now < due) {
            self.stopped = Some(waiting);
            return;
        }
        match waiting.start().await {
            Ok(restarted) => {
                self.restart_due = None;
                self.running_since = Instant::now();
                (self.notify)(Notice::Restarted(&restarted));
                self.current = Some(restarted);
            }
            Err((error, waiting)) => {
                let wait = self.restart_backoff.after(Duration::ZERO);
                (self.notify)(Notice::RestartFailed { error: &error, wait });
                self.restart_due = Some(now + wait);
                self.stopped = Some(waiting);
            }
        }
    }
}

impl Reconciler for Supervisor {
    type Error = std::convert::Infallible;

    fn name(&self) -> &'static str {
        "up"
    }

    async fn reconcile(&mut self) -> Result<Action, Self::Error> {
        if let Some((application, plan)) = self.versions.take() {
            self.run_version(application, plan).await;
        }
        if let Some(waiting) = self.stopped.take() {
            self.start_again(waiting).await;
            return Ok(Action::Requeue(PASS_INTERVAL));
        }
        let Some(running) = self.current.as_mut() else { return Ok(Action::Requeue(PASS_INTERVAL)) };
        running.report_late_records();
        let running = &*running;
        (self.notify)(Notice::Running(running));
        // A component that failed stopped the data plane: it starts again after a backoff.
        if let Some(failure) = running.failure() {
            let now = Instant::now();
            match self.restart_due {
                None => {
                    let wait = self.restart_backoff.after(self.running_since.elapsed());
                    (self.notify)(Notice::DataPlaneStopped { failure: &failure, wait });
                    let message = format!("the data plane stopped: {failure}");
                    let (state, app) = (&running.deployment.state, &running.deployment.running.app);
                    let _ = state.record_event(app, EventKind::Failed, None, &message);
                    self.restart_due = Some(now + wait);
                }
                Some(due) if now >= due => {
                    // What remains of it is stopped; the next pass starts it again.
                    if let Some(failed) = self.current.take() {
                        self.stopped = Some(failed.halt().await);
                    }
                    return Ok(Action::Requeue(Duration::ZERO));
                }
                Some(_) => {}
            }
            return Ok(Action::Requeue(PASS_INTERVAL));
        }
        // Sources that ran out end the data plane; services, batches and the API go on until stopped.
        if running.pipeline_finished() && !self.data_plane_ended {
            self.data_plane_ended = true;
            (self.notify)(Notice::DataPlaneEnded);
        }
        Ok(Action::Requeue(PASS_INTERVAL))
    }
}
