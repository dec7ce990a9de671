//! A pipeline: the components of an application (or of the part that feeds some chosen sinks) built from the IR,
//! joined by bounded channels and run as async tasks until their sources end or the pipeline is told to stop.
//! Stopping is a drain: sources stop, every operator and sink handles what is already in its channel, windows
//! still open are emitted, sinks write everything out.

use crate::Error;
use crate::component::{
    BuildContext, Context, DeadLetters, Delivery, Operator, Output, Sink, Source, build_operator, build_sink,
    build_source, sink_kind, source_kind, timed,
};
use crate::metrics::{MetricsSnapshot, Registry};
use crate::record::encoded_size;
use crate::remote::{Partition, RemoteSink, RemoteSource};
use crate::sinks::feed::{DEFAULT_FEED_LENGTH, Feed, FeedSink};
use crate::sources::generator;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratum_core::ir::{Application, ServiceInput, Sink as SinkItem, SourceKind};
use tokio::sync::{mpsc, watch};
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
}

/// What a component is, for listings.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ComponentInfo {
    pub name: String,
    /// `source`, `stream`, `sink` or `feed`.
    pub role: &'static str,
    pub kind: String,
}

pub struct Pipeline {
    tasks: Vec<Task>,
    pub components: Vec<ComponentInfo>,
    pub metrics: Arc<Registry>,
    /// The dashboard feeds, by the stream or source they follow.
    pub feeds: BTreeMap<String, Feed>,
    pub dead_letters: DeadLetters,
    stop: watch::Sender<bool>,
}

/// The outcome of a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunSummary {
    pub seconds: f64,
    pub components: Vec<MetricsSnapshot>,
}

/// Stops a running pipeline (a drain: see the module documentation).
#[derive(Clone)]
pub struct Stopper(watch::Sender<bool>);

impl Stopper {
    pub fn stop(&self) {
        self.0.send_replace(true);
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
    pub fn build_part<'a>(
        application: &'a Application,
        options: &PipelineOptions,
        partition: Option<Partition>,
    ) -> Result<Pipeline, Error> {
        let (selected, partition) = match partition {
            Some(partition) => {
                let names = partition
                    .components
                    .iter()
                    .map(|name| component_name(application, name))
                    .collect::<Result<BTreeSet<&'a str>, Error>>()?;
                (names, partition)
            }
            None => (select(application, &options.only)?, Partition::default()),
        };
        let context = BuildContext {
            application,
            base_dir: &options.base_dir,
            fast_generators: options.fast_generators,
            generator_limit: options.generator_limit,
            simulated_seconds: options.simulated_seconds,
            time_scale: options.time_scale,
            model_store: options.model_store.as_deref(),
            mqtt_broker: options.mqtt_broker.as_deref(),
        };
        let dead_letters = match &options.data_dir {
            Some(directory) => DeadLetters::to_file(&directory.join("dead-letters.jsonl"))?,
            None => DeadLetters::default(),
        };
        let metrics = Arc::new(Registry::default());
        let (stop, shutdown) = watch::channel(false);
        let new_context = |name: &str, kind: &str| Context {
            component: name.into(),
            metrics: metrics.register(name, kind),
            shutdown: shutdown.clone(),
            dead_letters: dead_letters.clone(),
        };

        // Consumers first: each gets one input channel; producers then get the senders of their consumers.
        let mut consumers: BTreeMap<&str, Vec<(mpsc::Sender<Delivery>, usize)>> = BTreeMap::new();
        let mut channel = |inputs: &[(&'a str, usize)]| {
            let (sender, receiver) = mpsc::channel(options.channel_capacity.max(1));
            for (input, port) in inputs {
                consumers.entry(*input).or_default().push((sender.clone(), *port));
            }
            receiver
        };
        let mut tasks = Vec::new();
        let mut components = Vec::new();
        let mut pending_operators = Vec::new();
        for sink in application.sinks.iter().filter(|sink| selected.contains(sink.name.as_str())) {
            let built = build_sink(sink, &context)?;
            let receiver = channel(&[(sink.from.as_str(), 0)]);
            components.push(ComponentInfo { name: sink.name.clone(), role: "sink", kind: sink_kind(sink).into() });
            tasks.push(Task {
                context: new_context(&sink.name, sink_kind(sink)),
                runner: Runner::Sink(built, receiver),
            });
        }
        // Every stream or source a dashboard panel shows gets a feed.
        let mut feeds = BTreeMap::new();
        for panel in application.dashboards.iter().flat_map(|dashboard| &dashboard.panels) {
            if !selected.contains(panel.source.as_str()) || feeds.contains_key(&panel.source) {
                continue;
            }
            let Some(fields) = application.fields_of(&panel.source) else { continue };
            let length = panel.last.map_or(DEFAULT_FEED_LENGTH, |last| (last as usize).max(DEFAULT_FEED_LENGTH));
            let feed = Feed::new(fields.to_vec(), length);
            let receiver = channel(&[(panel.source.as_str(), 0)]);
            let name = format!("{}-feed", panel.source);
            components.push(ComponentInfo { name: name.clone(), role: "feed", kind: "feed".into() });
            tasks.push(Task {
                context: new_context(&name, "feed"),
                runner: Runner::Sink(Box::new(FeedSink(feed.clone())), receiver),
            });
            feeds.insert(panel.source.clone(), feed);
        }
        for stream in application.streams.iter().filter(|stream| selected.contains(stream.name.as_str())) {
            let built = build_operator(stream, &context)?;
            let mut inputs = vec![(stream.from.as_str(), 0)];
            if let Some(join) = &stream.join {
                inputs.push((join.with.as_str(), 1));
            }
            let receiver = channel(&inputs);
            components.push(ComponentInfo { name: stream.name.clone(), role: "stream", kind: "stream".into() });
            pending_operators.push((stream.name.as_str(), "stream", built, receiver));
        }
        // A service that reads a stream: its operator appends predictions; its output is a sink like any other.
        for service in application.services.iter().filter(|service| selected.contains(service.name.as_str())) {
            let ServiceInput::Stream { name: input } = &service.input else { continue };
            let built = crate::stream::predict::build_service(service, &context)?;
            let receiver = channel(&[(input.as_str(), 0)]);
            components.push(ComponentInfo { name: service.name.clone(), role: "service", kind: "inference".into() });
            pending_operators.push((service.name.as_str(), "inference", built, receiver));
            if let Some(output) = &service.output {
                let sink = SinkItem {
                    name: format!("{}-output", service.name),
                    from: service.name.clone(),
                    kind: output.clone(),
                    fields: service.fields.clone(),
                    placement: service.placement.clone(),
                    resources: service.resources.clone(),
                };
                let built = build_sink(&sink, &context)?;
                let receiver = channel(&[(service.name.as_str(), 0)]);
                components.push(ComponentInfo { name: sink.name.clone(), role: "sink", kind: sink_kind(&sink).into() });
                tasks.push(Task {
                    context: new_context(&sink.name, sink_kind(&sink)),
                    runner: Runner::Sink(built, receiver),
                });
            }
        }
        // Paths to other machines: each takes its producer's records like any local consumer.
        for output in &partition.outputs {
            let producer = component_name(application, &output.producer)?;
            let data_dir = options.data_dir.as_deref().ok_or_else(|| Error::Build {
                component: output.path.clone(),
                message: "a path to another machine needs a data directory for its buffer".into(),
            })?;
            let buffer = application
                .sources
                .iter()
                .find(|source| source.name == producer)
                .and_then(|source| source.buffer.as_ref());
            let sink = RemoteSink::open(output, data_dir, RemoteSink::options_for(buffer))?;
            let receiver = channel(&[(producer, 0)]);
            components.push(ComponentInfo {
                name: output.path.clone(),
                role: "path out",
                kind: format!("to {}", output.to),
            });
            tasks.push(Task {
                context: new_context(&output.path, "path"),
                runner: Runner::Sink(Box::new(sink), receiver),
            });
        }
        for (name, kind, built, receiver) in pending_operators {
            let context = new_context(name, kind);
            let output = Output::new(consumers.remove(name).unwrap_or_default(), context.metrics.clone());
            tasks.push(Task { context, runner: Runner::Operator(built, receiver, output) });
        }
        for source in application.sources.iter().filter(|source| selected.contains(source.name.as_str())) {
            let external = !matches!(source.kind, SourceKind::Generator { .. } | SourceKind::File { .. });
            let (built, kind) = if options.simulate && external {
                (generator::simulating(source, &context), format!("{} (simulated)", source_kind(source)))
            } else {
                (build_source(source, &context)?, source_kind(source).to_string())
            };
            let context = new_context(&source.name, &kind);
            let output =
                Output::new(consumers.remove(source.name.as_str()).unwrap_or_default(), context.metrics.clone());
            components.push(ComponentInfo { name: source.name.clone(), role: "source", kind });
            tasks.push(Task { context, runner: Runner::Source(built, output) });
        }
        // Paths from other machines: each stands in for its producer towards the local consumers.
        for input in partition.inputs {
            let producer = component_name(application, &input.producer)?;
            let context = new_context(&input.path, "path");
            let output = Output::new(consumers.get(producer).cloned().unwrap_or_default(), context.metrics.clone());
            components.push(ComponentInfo { name: input.path.clone(), role: "path in", kind: "path".into() });
            tasks.push(Task {
                context,
                runner: Runner::Source(Box::new(RemoteSource { deliveries: input.deliveries }), output),
            });
        }
        Ok(Pipeline { tasks, components, metrics, feeds, dead_letters, stop })
    }

    /// A pipeline with no components, which ends as soon as it runs (when only batches are wanted).
    pub fn empty() -> Pipeline {
        Pipeline {
            tasks: Vec::new(),
            components: Vec::new(),
            metrics: Arc::new(Registry::default()),
            feeds: BTreeMap::new(),
            dead_letters: DeadLetters::default(),
            stop: watch::channel(false).0,
        }
    }

    /// A handle that stops the pipeline once it runs.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop.clone())
    }

    /// Runs every component until the sources end (or the pipeline is stopped) and everything has drained.
    /// Returns the first error of any component; the others still drain.
    pub async fn run(self) -> Result<RunSummary, Error> {
        let started = Instant::now();
        let mut running = JoinSet::new();
        for task in self.tasks {
            running.spawn(run_task(task));
        }
        let mut first_error = None;
        while let Some(joined) = running.join_next().await {
            let result = joined.unwrap_or_else(|panic| {
                Err(Error::Build { component: "pipeline".into(), message: format!("a component task failed: {panic}") })
            });
            if let Err(error) = result {
                tracing::error!(%error, "component failed; stopping the pipeline");
                self.stop.send_replace(true);
                first_error.get_or_insert(error);
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(RunSummary { seconds: started.elapsed().as_secs_f64(), components: self.metrics.snapshot() }),
        }
    }
}

const TICK: Duration = Duration::from_secs(1);

async fn run_task(task: Task) -> Result<(), Error> {
    let Task { context, runner } = task;
    match runner {
        Runner::Source(source, output) => source.run(output, context).await,
        Runner::Operator(mut operator, mut receiver, output) => {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let mut out = Vec::new();
                // Deliveries first: a tick (which may move an idle stream's watermark on with the wall clock)
                // only runs when the input is empty.
                tokio::select! {
                    biased;
                    delivery = receiver.recv() => match delivery {
                        Some(Delivery { port, batch }) => {
                            context.metrics.queue_depth.store(receiver.len() as u64, std::sync::atomic::Ordering::Relaxed);
                            context.metrics.count_in(batch.len(), batch.iter().map(encoded_size).sum());
                            timed(&context.metrics, || operator.process(port, batch, &mut out, &context));
                        }
                        None => {
                            operator.finish(&mut out, &context);
                            output.send(out).await.ok();
                            return Ok(());
                        }
                    },
                    _ = ticks.tick() => operator.tick(Instant::now(), &mut out, &context),
                }
                if output.send(out).await.is_err() {
                    // Everything downstream has gone: nothing more to do.
                    return Ok(());
                }
            }
        }
        Runner::Sink(mut sink, mut receiver) => {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    delivery = receiver.recv() => match delivery {
                        Some(Delivery { batch, .. }) => {
                            context.metrics.queue_depth.store(receiver.len() as u64, std::sync::atomic::Ordering::Relaxed);
                            let started = Instant::now();
                            let result = sink.write(batch, &context).await;
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

/// A component's name as the application spells it (borrowed from it), or an error naming what it has.
fn component_name<'a>(application: &'a Application, name: &str) -> Result<&'a str, Error> {
    application
        .sources
        .iter()
        .map(|source| source.name.as_str())
        .chain(application.streams.iter().map(|stream| stream.name.as_str()))
        .chain(application.sinks.iter().map(|sink| sink.name.as_str()))
        .chain(application.services.iter().map(|service| service.name.as_str()))
        .find(|known| *known == name)
        .ok_or_else(|| Error::Build {
            component: name.into(),
            message: format!("not a source, stream, service or sink of `{}`", application.name),
        })
}

/// The names of the components to run: `only` and everything upstream of them, or all components.
pub fn select<'a>(application: &'a Application, only: &'a [String]) -> Result<BTreeSet<&'a str>, Error> {
    let mut inputs: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for stream in &application.streams {
        let mut of = vec![stream.from.as_str()];
        if let Some(join) = &stream.join {
            of.push(join.with.as_str());
        }
        inputs.insert(&stream.name, of);
    }
    for sink in &application.sinks {
        inputs.insert(&sink.name, vec![sink.from.as_str()]);
    }
    for service in &application.services {
        if let ServiceInput::Stream { name } = &service.input {
            inputs.insert(&service.name, vec![name.as_str()]);
        }
    }
    for source in &application.sources {
        inputs.insert(&source.name, Vec::new());
    }
    let mut wanted: Vec<&str> =
        if only.is_empty() { inputs.keys().copied().collect() } else { only.iter().map(String::as_str).collect() };
    let mut selected = BTreeSet::new();
    while let Some(name) = wanted.pop() {
        let Some(upstream) = inputs.get(name) else {
            let known: Vec<&str> = inputs.keys().copied().collect();
            return Err(Error::Build {
                component: name.into(),
                message: format!(
                    "not a source, stream or sink of `{}` (it has: {})",
                    application.name,
                    known.join(", ")
                ),
            });
        };
        if selected.insert(name) {
            wanted.extend(upstream.iter().copied());
        }
    }
    Ok(selected)
}
