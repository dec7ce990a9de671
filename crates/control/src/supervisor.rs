//! `stratum up`'s supervisor, a [`Reconciler`]: desired, the version applied last (the first one, or one applied
//! from the editor through [`Versions`]); observed, what runs. A pass runs a newly applied version — rolled into the
//! running one when it can be, so that only what changed restarts, or in its place — and starts again a data plane
//! that a component's failure stopped, after the shared backoff and for as long as it takes (what stopped it — no
//! descriptors left, a full disk — may pass). It also retrains each served model whose `retrain = every(…)` came
//! due by the application's clock (`--speed` times the wall clock's pace) or whose `retrain = drift(…)` saw the
//! serving version do worse on the latest data than its threshold allows, and serves the versions an operator
//! chose in the model store. What happens is told through [`Notice`]s, which the terminal and the API show, and
//! recorded as events.

use crate::Error;
use crate::reconcile::{Action, Backoff, Reconciler};
use crate::up::{RetrainTrigger, Retrained, Running, Stopped, UpOptions, UpProgress, up};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratum_core::clock::AppClock;
use stratum_core::events::EventKind;
use stratum_core::ir::{Application, Metric, ModelOrigin, Retrain, Schedule};
use stratum_core::plan::Plan;
use stratum_core::sync::lock;
use stratum_core::units::Duration as Interval;
use stratum_dataplane::pipeline::Rollout;
use tokio::sync::Notify;

/// How often a pass runs when nothing is applied: a failure is noticed, and a stopped version started again, no
/// later than this.
const PASS_INTERVAL: Duration = Duration::from_secs(2);

/// How often, at most, the data of a model whose `retrain = drift(…)` watches it is looked at again: a change
/// there is measured (the whole data set is read and the serving version scored on its latest rows).
const DRIFT_INTERVAL: Duration = Duration::from_secs(10);

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
    /// Another version of a model serves now: a scheduled retrain trained it, or it was chosen in the model store
    /// (`stratum model promote|rollback|pin`).
    ModelServed {
        /// What runs now.
        running: &'a Running,
        /// The model.
        model: &'a str,
        /// Its new version.
        version: u32,
    },
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
    /// The application's clock (`--speed` times the wall clock's pace), which retrain schedules follow.
    clock: AppClock,
    /// When each served model's `retrain = every(…)` is next due, in the application's time, and its interval.
    retrain_due: BTreeMap<String, (f64, Interval)>,
    /// When the data of each model a `retrain = drift(…)` watches was last looked at, and its fingerprint then.
    drift_seen: BTreeMap<String, (Instant, String)>,
}

impl Supervisor {
    /// Supervises `running`, started by [`up`] with `options`; `notify` hears of everything.
    pub fn new(running: Running, options: UpOptions, notify: Box<dyn FnMut(Notice<'_>) + Send>) -> Supervisor {
        let clock = AppClock::new(wall_clock(), options.time_scale);
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
            clock,
            retrain_due: BTreeMap::new(),
            drift_seen: BTreeMap::new(),
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

    /// Keeps one due time for each model the running version serves whose `retrain = every(…)` says when: a model
    /// new to the schedule is first due one interval from now, by the application's clock.
    fn schedule_retrains(&mut self, application: &Application, now: f64) {
        let intervals: BTreeMap<String, Interval> = served_retrains(application)
            .filter_map(|(model, retrain)| match retrain {
                Retrain::Every { interval } if interval.0 > 0.0 => Some((model, interval)),
                _ => None,
            })
            .collect();
        self.retrain_due.retain(|model, (_, interval)| intervals.get(model) == Some(interval));
        for (model, interval) in intervals {
            self.retrain_due.entry(model).or_insert((now + interval.0, interval));
        }
    }

    /// Retrains the first model that is due, if one is, and schedules its next retrain an interval after this
    /// one was due (or after now, when it ran late by more than an interval: missed retrains are not made up).
    async fn retrain_due_model(&mut self, now: f64) {
        let Some((model, (due, interval))) =
            self.retrain_due.iter().find(|(_, (due, _))| *due <= now).map(|(model, due)| (model.clone(), *due))
        else {
            return;
        };
        let Some(running) = self.current.as_mut() else { return };
        let notify = &mut self.notify;
        retrain(running, notify, &model, RetrainTrigger::Schedule).await;
        let after = self.clock.app_time(wall_clock()).max(due);
        let next = stratum_batch::schedule::next_due(&Schedule::Every(interval), due, after).unwrap_or(f64::INFINITY);
        self.retrain_due.insert(model, (next, interval));
    }

    /// Measures each model whose `retrain = drift(metric, threshold)` watches its data, when that data changed
    /// (looked at every [`DRIFT_INTERVAL`] at most), and retrains it when the serving version does worse than
    /// `threshold` allows.
    async fn watch_drift(&mut self) {
        let Some(running) = self.current.as_mut() else { return };
        let application = running.deployment.running.application.clone();
        for (model, metric, threshold) in drift_watched(&application) {
            if self.drift_seen.get(&model).is_some_and(|(seen, _)| seen.elapsed() < DRIFT_INTERVAL) {
                continue;
            }
            let (copy, name, base) = (application.clone(), model.clone(), self.options.base_dir.clone());
            let fingerprint =
                tokio::task::spawn_blocking(move || stratum_ml::search::data_fingerprint(&copy, &name, &base)).await;
            // No data yet: nothing to measure.
            let Ok(Ok(fingerprint)) = fingerprint else { continue };
            let changed = self.drift_seen.get(&model).is_none_or(|(_, seen)| *seen != fingerprint);
            self.drift_seen.insert(model.clone(), (Instant::now(), fingerprint));
            if !changed {
                continue;
            }
            match running.measure_drift(&model, metric).await {
                Ok(Some(worse)) if worse > threshold => {
                    retrain(running, &mut self.notify, &model, RetrainTrigger::Drift).await;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(model, %error, "cannot measure the model's drift"),
            }
        }
    }

    /// Serves the versions chosen in the model store since the last pass (`stratum model promote|rollback|pin`).
    async fn follow_store(&mut self) {
        let Some(running) = self.current.as_mut() else { return };
        match running.follow_store().await {
            Ok(changed) => {
                for (model, version) in changed {
                    (self.notify)(Notice::ModelServed { running, model: &model, version });
                }
            }
            Err(error) => tracing::warn!(%error, "cannot serve the versions chosen in the model store"),
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
        let application = running.deployment.running.application.clone();
        let now = self.clock.app_time(wall_clock());
        self.follow_store().await;
        self.schedule_retrains(&application, now);
        self.retrain_due_model(now).await;
        self.watch_drift().await;
        // The next pass comes by the next retrain's due time at the latest.
        let now = self.clock.app_time(wall_clock());
        let next_retrain =
            self.retrain_due.values().map(|(due, _)| (self.clock.wall_time(*due) - self.clock.wall_time(now)).max(0.0));
        let wait = next_retrain.fold(PASS_INTERVAL, |wait, seconds| {
            wait.min(Duration::try_from_secs_f64(seconds).unwrap_or(PASS_INTERVAL))
        });
        Ok(Action::Requeue(wait))
    }
}

/// Trains `model` again for `trigger`; a new version that serves is told. A failure is an event (the retrain
/// says why), and the model is tried again at its next due time or data change.
async fn retrain(
    running: &mut Running,
    notify: &mut Box<dyn FnMut(Notice<'_>) + Send>,
    model: &str,
    trigger: RetrainTrigger,
) {
    match running.retrain(model, trigger, &mut |progress| notify(Notice::Progress(&progress))).await {
        Ok(Retrained::Served { version }) => notify(Notice::ModelServed { running, model, version }),
        Ok(Retrained::Unchanged) => {}
        Err(error) => tracing::warn!(model, %error, trigger = trigger.as_str(), "the retrain failed"),
    }
}

/// The served models a `retrain = drift(metric, threshold)` watches, with its metric and threshold.
fn drift_watched(application: &Application) -> Vec<(String, Metric, f64)> {
    served_retrains(application)
        .filter_map(|(model, retrain)| match retrain {
            Retrain::Drift { metric, threshold } => Some((model, metric, threshold)),
            _ => None,
        })
        .collect()
}

/// The served models trained by Stratum that say when to train them again, with what they say.
fn served_retrains(application: &Application) -> impl Iterator<Item = (String, Retrain)> + '_ {
    crate::models::served_models(application).into_iter().filter_map(|model| {
        let item = application.models.iter().find(|item| item.name == model)?;
        let ModelOrigin::Trained(training) = &item.origin else { return None };
        let retrain = training.retrain.clone()?;
        Some((model, retrain))
    })
}

/// The wall clock, in Unix seconds.
fn wall_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_secs_f64())
        .unwrap_or_default()
}
