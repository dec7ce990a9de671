//! A pipeline: the components of an application (or of the part that feeds some chosen sinks) built from the IR,
//! joined by bounded channels and run as async tasks until their sources end or the pipeline is told to stop.
//! Stopping is a drain: sources stop, every operator and sink handles what is already in its channel, windows
//! still open are emitted, sinks write everything out.
//!
//! A running pipeline takes new versions of its application ([`RunningPipeline::update`]): each component has a
//! fingerprint (its definition and everything it is built from: the schemas it reads, the models it loads), and a
//! rollout builds only the components whose fingerprint changed, rewires producers to them, drains the instances
//! they replace (the new one starts once the old one has finished, so a file, a port or a log is never held by
//! both) and stops the components that went away. Everything else runs on untouched, its windows still open.

mod rollout;
mod specs;

pub use specs::{SIMULATED_SINKS, events_per_second, select, served_model, simulated_sink, simulated_source};

use crate::Error;
use crate::ack::{Acks, Settled};
use crate::checkpoint::{Checkpoint, CheckpointCopies, Checkpointing};
use crate::component::{Context, DeadLetters, Delivery, Operator, Output, Sink, Source, timed};
use crate::metrics::{MetricsSnapshot, Registry};
use crate::record::encoded_size;
use crate::remote::Partition;
use crate::sinks::feed::Feed;
use rollout::{Pending, Wiring, roll_out};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratum_core::ir::Application;
use stratum_core::sync::lock;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// How a pipeline is built.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    /// Relative paths in the application are relative to this directory.
    pub base_dir: PathBuf,
    /// Dead letters go to `DATA_DIR/dead-letters.jsonl`; without one they are kept in memory.
    pub data_dir: Option<PathBuf>,
    /// Run only these sinks, streams or services and everything they read from (everything when empty).
    pub only: Vec<String>,
    /// Replace sources that need the outside world (MQTT, NATS, Kafka, HTTP) by generators of their schema and rate.
    pub simulate: bool,
    /// Generators make events as fast as they can, with event times spaced by the declared rate.
    pub fast_generators: bool,
    /// Every generator (declared or simulated) stops after at most this many events.
    pub generator_limit: Option<u64>,
    /// With `fast_generators`, every generator stops once its event time has covered this many seconds (a day
    /// of simulated history, say).
    pub simulated_seconds: Option<f64>,
    /// Real-time generators run this many times faster than the clock, event time included (1 by default).
    pub time_scale: f64,
    /// Where `predict(service)` finds models.
    pub model_store: Option<PathBuf>,
    /// The MQTT broker of components that name none.
    pub mqtt_broker: Option<String>,
    /// Batches a component's input channel holds before its producers wait.
    pub channel_capacity: usize,
    /// On an agent: checkpoints count only once copied off the machine (see [`CheckpointCopies`]).
    pub checkpoint_copies: Option<CheckpointCopies>,
    /// On an agent: windowed and joining streams run only while it holds this lease (see [`crate::lease`]).
    pub lease: Option<crate::lease::Lease>,
}

impl Default for PipelineOptions {
    fn default() -> PipelineOptions {
        PipelineOptions {
            base_dir: PathBuf::from("."),
            data_dir: None,
            only: Vec::new(),
            simulate: false,
            fast_generators: false,
            generator_limit: None,
            simulated_seconds: None,
            time_scale: 1.0,
            model_store: None,
            mqtt_broker: None,
            channel_capacity: 16,
            checkpoint_copies: None,
            lease: None,
        }
    }
}

enum Runner {
    Source(Box<dyn Source>, Output),
    Operator(Box<dyn Operator>, mpsc::Receiver<Delivery>, Output),
    Sink(Box<dyn Sink>, mpsc::Receiver<Delivery>),
}

struct Task {
    context: Context,
    runner: Runner,
    /// Where an operator's state is checkpointed (with a data directory, unless generators make up history).
    checkpoint: Option<Checkpoint>,
}

/// What a component is, for listings.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ComponentInfo {
    /// The component's name.
    pub name: String,
    /// `source`, `stream`, `service`, `sink`, `feed`, `path in` or `path out`.
    pub role: &'static str,
    /// Its kind (`mqtt`, `tumbling window`, `to 10.0.0.2:7071` …).
    pub kind: String,
}

struct Shared {
    wiring: Mutex<Wiring>,
    metrics: Arc<Registry>,
    dead_letters: DeadLetters,
    /// The first component error, which stopped the pipeline.
    failure: Mutex<Option<String>>,
}

impl Shared {
    fn new(dead_letters: DeadLetters) -> (Arc<Shared>, mpsc::UnboundedReceiver<Pending>) {
        let (spawn, pending) = mpsc::unbounded_channel();
        let wiring = Wiring {
            slots: BTreeMap::new(),
            order: Vec::new(),
            routes: BTreeMap::new(),
            retired: Vec::new(),
            stopping: false,
            ended: false,
            spawn,
        };
        let shared = Shared {
            wiring: Mutex::new(wiring),
            metrics: Arc::new(Registry::default()),
            dead_letters,
            failure: Mutex::new(None),
        };
        (Arc::new(shared), pending)
    }

    fn stop(&self) {
        let mut wiring = lock(&self.wiring);
        wiring.stopping = true;
        for slot in wiring.slots.values() {
            slot.stop.send_replace(true);
        }
        for stop in &wiring.retired {
            stop.send_replace(true);
        }
    }

    fn components(&self) -> Vec<ComponentInfo> {
        let wiring = lock(&self.wiring);
        wiring.order.iter().filter_map(|name| wiring.slots.get(name)).map(|slot| slot.info.clone()).collect()
    }

    fn feeds(&self) -> BTreeMap<String, Feed> {
        lock(&self.wiring).slots.values().filter_map(|slot| slot.feed.clone()).collect()
    }
}

/// A pipeline built and not yet running.
pub struct Pipeline {
    shared: Arc<Shared>,
    pending: mpsc::UnboundedReceiver<Pending>,
    /// Every component's metrics.
    pub metrics: Arc<Registry>,
    /// Where records that cannot be processed go.
    pub dead_letters: DeadLetters,
    /// Streams that took up the open windows of their checkpoint.
    pub resumed: Vec<String>,
}

/// A running pipeline: it can be stopped, and it takes new versions of its application.
pub struct RunningPipeline {
    shared: Arc<Shared>,
    /// Every component's metrics.
    pub metrics: Arc<Registry>,
    /// Where records that cannot be processed go.
    pub dead_letters: DeadLetters,
    task: tokio::task::JoinHandle<Result<RunSummary, Error>>,
}

/// The outcome of a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunSummary {
    /// How long it ran.
    pub seconds: f64,
    /// Every component's counters at the end.
    pub components: Vec<MetricsSnapshot>,
}

/// What a rollout did, by component name.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Rollout {
    /// New components.
    pub started: Vec<String>,
    /// Components whose definition (or what they are built from) changed: drained and started again.
    pub restarted: Vec<String>,
    /// Components the new version no longer has: drained and gone.
    pub stopped: Vec<String>,
    /// Components that ran on untouched.
    pub unchanged: Vec<String>,
    /// Streams among the started and restarted that took up the open windows of their checkpoint.
    pub resumed: Vec<String>,
}

impl Rollout {
    /// Whether the rollout changed anything.
    pub fn is_empty(&self) -> bool {
        self.started.is_empty() && self.restarted.is_empty() && self.stopped.is_empty()
    }
}

/// Stops a running pipeline (a drain: see the module documentation).
#[derive(Clone)]
pub struct Stopper(Arc<Shared>);

impl Stopper {
    /// Stops the pipeline: sources stop, and the rest drains.
    pub fn stop(&self) {
        self.0.stop();
    }
}

impl Pipeline {
    /// Builds every selected component, or returns the first that cannot be built.
    pub fn build(application: &Application, options: &PipelineOptions) -> Result<Pipeline, Error> {
        Pipeline::build_part(application, options, None)
    }

    /// Builds one machine's part of a pipeline: exactly the partition's components, joined to the rest of the
    /// application through the partition's remote inputs and outputs (see [`crate::remote`]). Without a partition,
    /// the selected components (`options.only` and what they read, or everything).
    pub fn build_part(
        application: &Application,
        options: &PipelineOptions,
        partition: Option<Partition>,
    ) -> Result<Pipeline, Error> {
        let dead_letters = match &options.data_dir {
            Some(directory) => DeadLetters::to_file(&directory.join("dead-letters.jsonl"))?,
            None => DeadLetters::default(),
        };
        let (shared, pending) = Shared::new(dead_letters);
        let rollout = roll_out(&shared, application, options, partition, &[])?;
        Ok(Pipeline {
            metrics: shared.metrics.clone(),
            dead_letters: shared.dead_letters.clone(),
            shared,
            pending,
            resumed: rollout.resumed,
        })
    }

    /// A pipeline with no components, which ends as soon as it runs (when only batches are wanted).
    pub fn empty() -> Pipeline {
        let (shared, pending) = Shared::new(DeadLetters::default());
        Pipeline {
            metrics: shared.metrics.clone(),
            dead_letters: shared.dead_letters.clone(),
            shared,
            pending,
            resumed: Vec::new(),
        }
    }

    /// A handle that stops the pipeline once it runs.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.shared.clone())
    }

    /// The components, in the order the application gives them.
    pub fn components(&self) -> Vec<ComponentInfo> {
        self.shared.components()
    }

    /// Runs every component until the sources end (or the pipeline is stopped) and everything has drained.
    /// Returns the first error of any component; the others still drain.
    pub async fn run(self) -> Result<RunSummary, Error> {
        supervise(self.shared, self.pending).await
    }

    /// Runs the pipeline in a task of its own; the handle stops it, rolls out new versions and waits for it.
    pub fn start(self) -> RunningPipeline {
        RunningPipeline {
            metrics: self.metrics.clone(),
            dead_letters: self.dead_letters.clone(),
            shared: self.shared.clone(),
            task: tokio::spawn(supervise(self.shared, self.pending)),
        }
    }
}

impl RunningPipeline {
    /// What stops it.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.shared.clone())
    }

    /// What runs, for listings.
    pub fn components(&self) -> Vec<ComponentInfo> {
        self.shared.components()
    }

    /// The dashboard feeds, by the stream or source each follows.
    pub fn feeds(&self) -> BTreeMap<String, Feed> {
        self.shared.feeds()
    }

    /// Whether every component has ended (the sources ran out, or a component failed and the rest drained).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// The error of the component that failed and stopped the pipeline, if one did.
    pub fn failure(&self) -> Option<String> {
        lock(&self.shared.failure).clone()
    }

    /// Rolls out a new version of the application (or of this machine's part of it): see the module
    /// documentation. A component that cannot be built fails the rollout before anything running is touched.
    /// `options` must be the ones the pipeline was built with, but for `only`.
    /// Rolls `application` in (see the module documentation). Streams in `hand_over` that go from here hand their state over
    /// (for another machine to take up) instead of emitting what they hold.
    pub fn update(
        &self,
        application: &Application,
        options: &PipelineOptions,
        partition: Option<Partition>,
        hand_over: &[String],
    ) -> Result<Rollout, Error> {
        roll_out(&self.shared, application, options, partition, hand_over)
    }

    /// Waits until everything has ended (after [`Stopper::stop`], a drain).
    pub async fn finished(self) -> Result<RunSummary, Error> {
        self.task.await.unwrap_or_else(|panic| {
            Err(Error::Build { component: "pipeline".into(), message: format!("the pipeline task failed: {panic}") })
        })
    }
}

/// Runs the tasks a build or a rollout hands it until none runs and none waits to; the first error stops the
/// pipeline (the rest drain) and is returned.
async fn supervise(shared: Arc<Shared>, mut pending: mpsc::UnboundedReceiver<Pending>) -> Result<RunSummary, Error> {
    let started = Instant::now();
    let mut running = JoinSet::new();
    let mut first_error = None;
    loop {
        if running.is_empty() {
            // Decided under the wiring's lock, so that no rollout slips in between the last task and the end.
            let next = {
                let mut wiring = lock(&shared.wiring);
                let next = pending.try_recv().ok();
                wiring.ended = next.is_none();
                next
            };
            match next {
                Some(task) => {
                    running.spawn(run_pending(task));
                    continue;
                }
                None => break,
            }
        }
        tokio::select! {
            Some(task) = pending.recv() => {
                running.spawn(run_pending(task));
            }
            Some(joined) = running.join_next() => {
                let result = joined.unwrap_or_else(|panic| {
                    Err(Error::Build { component: "pipeline".into(), message: format!("a component task failed: {panic}") })
                });
                if let Err(error) = result {
                    tracing::error!(%error, "component failed; stopping the pipeline");
                    // The failure as people read it (`stratum up`'s status, the API); the error itself is returned.
                    lock(&shared.failure).get_or_insert_with(|| stratum_core::error_chain(&error));
                    shared.stop();
                    first_error.get_or_insert(error);
                }
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(RunSummary { seconds: started.elapsed().as_secs_f64(), components: shared.metrics.snapshot() }),
    }
}

async fn run_pending(pending: Pending) -> Result<(), Error> {
    let Pending { task, after, done } = pending;
    if let Some(mut after) = after {
        // Ended, or gone (its task panicked): either way it no longer holds anything.
        let _ = after.wait_for(|ended| *ended).await;
    }
    let result = run_task(task).await;
    done.send_replace(true);
    result
}

const TICK: Duration = Duration::from_secs(1);
/// How often a stream paused for its lease looks whether it was let go.
const LEASE_POLL: Duration = Duration::from_millis(250);
/// Sinks are flushed more often: each decides when what it holds is due, sooner while sources wait to
/// acknowledge it.
const SINK_TICK: Duration = Duration::from_millis(100);

async fn run_task(task: Task) -> Result<(), Error> {
    let Task { context, runner, checkpoint } = task;
    match runner {
        Runner::Source(source, output) => source.run(output, context).await,
        Runner::Operator(operator, receiver, output) => {
            run_operator(operator, receiver, output, context, checkpoint.map(Checkpointing::new)).await
        }
        Runner::Sink(mut sink, mut receiver) => {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + SINK_TICK, SINK_TICK);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    delivery = receiver.recv() => match delivery {
                        Some(Delivery { batch, acks, .. }) => {
                            context.metrics.queue_depth.store(receiver.len() as u64, std::sync::atomic::Ordering::Relaxed);
                            let started = Instant::now();
                            let result = sink.write(batch, acks, &context).await;
                            context.metrics.observe_latency(started.elapsed());
                            if let Err(error) = result {
                                context.metrics.count_error();
                                sink.finish(&context).await.ok();
                                return Err(error);
                            }
                        }
                        None => return sink.finish(&context).await,
                    },
                    _ = ticks.tick() => {
                        if let Err(error) = sink.flush(&context).await {
                            context.metrics.count_error();
                            return Err(error);
                        }
                    }
                }
            }
        }
    }
}

/// Runs an operator: feeds it its deliveries and the clock's ticks and sends on what it emits. A stateless
/// operator's records carry on the acknowledgements of what they were made from; a checkpointed one's are settled
/// by its checkpoints (see [`Checkpointing`]).
async fn run_operator(
    mut operator: Box<dyn Operator>,
    mut receiver: mpsc::Receiver<Delivery>,
    output: Output,
    context: Context,
    mut checkpointing: Option<Checkpointing>,
) -> Result<(), Error> {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if let Some(checkpointing) = &checkpointing
            && checkpointing.lease_ended()
        {
            // Its agent may no longer hold this stream (another may run it now): it pauses — takes nothing in,
            // closes no window, emits nothing — until the lease is renewed. Let go meanwhile (retired, or the
            // pipeline stops), it leaves as after a crash, emitting nothing: its last kept checkpoint and its
            // producers' logs hold everything it had. The agent renews the lease only once it has let go what
            // went on elsewhere, so that is looked at after every wait.
            loop {
                if receiver.is_closed() || context.stopping() {
                    return Ok(());
                }
                if !checkpointing.lease_ended() {
                    break;
                }
                checkpointing.lease_renewed_or(LEASE_POLL).await;
            }
        }
        let mut out = Vec::new();
        let mut taken = Acks::none();
        // Sources waiting on what it took in make a snapshot due sooner.
        let snapshot_due = checkpointing.as_ref().and_then(Checkpointing::waited_on);
        // Deliveries before ticks: a tick (which may move an idle stream's watermark on with the wall clock) only
        // runs when the input is empty. A settled snapshot comes first of all: it is rare and frees memory.
        tokio::select! {
            biased;
            outcome = settled(&mut checkpointing) => {
                if let Some(checkpointing) = &mut checkpointing {
                    checkpointing.complete(outcome, &context).await;
                }
                continue;
            }
            delivery = receiver.recv() => match delivery {
                Some(Delivery { port, batch, acks }) => {
                    context.metrics.queue_depth.store(receiver.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    context.metrics.count_in(batch.len(), batch.iter().map(encoded_size).sum());
                    timed(&context.metrics, || operator.process(port, batch, &mut out, &context));
                    taken = acks;
                    if let Some(checkpointing) = &mut checkpointing {
                        checkpointing.take(std::mem::take(&mut taken));
                    }
                }
                None => {
                    // Retired to go on elsewhere: the state goes to the next machine, nothing is emitted here.
                    if let Some(checkpointing) = checkpointing.take_if(|checkpointing| checkpointing.handing_over()) {
                        checkpointing.hand_over(operator.save(), &context).await;
                        return Ok(());
                    }
                    operator.finish(&mut out, &context);
                    let acks = checkpointing.as_ref().map_or_else(Acks::none, Checkpointing::emitted);
                    output.send_acked(out, acks).await.ok();
                    // Its consumers' inputs end with its output (unless a successor shares it).
                    drop(output);
                    if let Some(checkpointing) = checkpointing {
                        checkpointing.finish(&context).await;
                    }
                    return Ok(());
                }
            },
            _ = ticks.tick() => {
                operator.tick(Instant::now(), &mut out, &context);
                if let Some(checkpointing) = &mut checkpointing && !out.is_empty() {
                    checkpointing.touch();
                }
            }
            _ = sleep_until(snapshot_due) => {}
        }
        let acks = match &checkpointing {
            Some(checkpointing) => checkpointing.emitted(),
            None => taken,
        };
        if output.send_acked(out, acks).await.is_err() {
            // Everything downstream has gone: nothing more to do.
            return Ok(());
        }
        if let Some(checkpointing) = &mut checkpointing {
            checkpointing.snapshot_if_due(operator.as_ref());
        }
    }
}

/// Waits until `instant`; forever when there is none.
async fn sleep_until(instant: Option<Instant>) {
    match instant {
        Some(instant) => tokio::time::sleep_until(instant.into()).await,
        None => std::future::pending().await,
    }
}

/// The outcome of the oldest snapshot waiting for its outputs; forever when there is none.
async fn settled(checkpointing: &mut Option<Checkpointing>) -> Settled {
    match checkpointing {
        Some(checkpointing) => checkpointing.settled().await,
        None => std::future::pending().await,
    }
}
