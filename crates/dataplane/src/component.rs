//! What every component is: one trait per kind of component (a [`Source`] produces records, an [`Operator`]
//! transforms them, a [`Sink`] writes them out), the [`Output`] that sends a component's records to its
//! consumers over bounded channels, the [`Context`] each one runs with. The kinds this version
//! can build are listed in [`crate::registry`].

use crate::Error;
use crate::ack::Acks;
use crate::metrics::ComponentMetrics;
use crate::record::{Batch, Record, encoded_size};
use serde_json::json;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use stratum_core::Cause;
use stratum_core::ir::Application;
use stratum_core::sync::lock;
use tokio::sync::{mpsc, watch};

/// A future that a component returns from a trait method.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A batch on its way into a component, with the input it arrived on (a join has two: 0 is `from`, 1 is `with`)
/// and the receiving component's shares in the acknowledgements of its records ([`crate::ack`]).
#[derive(Debug)]
pub struct Delivery {
    /// The consumer's input it arrives on (a join's second input is 1).
    pub port: usize,
    /// The records.
    pub batch: Batch,
    /// What settles once the consumer made them durable.
    pub acks: Acks,
}

/// Produces records: reads a broker, a file, a socket, or makes them up.
pub trait Source: Send + 'static {
    /// Runs until the source has nothing more to give (a file read once, a generator's count) or `context`
    /// says to stop. Records go to `output`; waiting on a full output is the backpressure.
    fn run(self: Box<Self>, output: Output, context: Context) -> BoxFuture<'static, Result<(), Error>>;
}

/// Transforms records in memory. Synchronous on purpose: the runtime gives it batches and sends on what it puts
/// in `out`, so operators are plain code, easy to test and fast.
pub trait Operator: Send + 'static {
    /// Takes a batch that arrived on input `port`, putting what it emits in `out`.
    fn process(&mut self, port: usize, batch: Batch, out: &mut Vec<Record>, context: &Context);
    /// Called about once a second of wall-clock time, so that state bound to time (windows, join buffers) moves
    /// on even when no records arrive.
    fn tick(&mut self, now: Instant, out: &mut Vec<Record>, context: &Context);
    /// Called once when every input has ended: emit everything still held.
    fn finish(&mut self, out: &mut Vec<Record>, context: &Context);
    /// Whether it holds records between batches (open windows, a join's buffers). Such an operator is
    /// checkpointed, and the records it took in are acknowledged once a synced checkpoint holds them; the records
    /// of one that holds nothing are acknowledged with what it makes of them.
    fn keeps_state(&self) -> bool {
        false
    }
    /// What it holds between batches (open windows, records waiting to be joined), as JSON, for a checkpoint;
    /// `None` when it holds nothing worth keeping.
    fn save(&self) -> Option<Vec<u8>> {
        None
    }
    /// Takes up the state (what [`Operator::save`] gave) that an instance with the same definition saved.
    fn restore(&mut self, _state: &[u8]) -> Result<(), Cause> {
        Ok(())
    }
}

/// Writes records out of the application.
pub trait Sink: Send + 'static {
    /// Writes (or takes in, to write later) `batch`. `acks` are marked done once the records are durable where
    /// the sink puts them — synced to a file, acknowledged by a broker — which may be in a later call; a sink that
    /// fails drops them unfinished.
    fn write<'a>(&'a mut self, batch: Batch, acks: Acks, context: &'a Context) -> BoxFuture<'a, Result<(), Error>>;
    /// Called about ten times a second: a sink writes out what it has held long enough (it may wait to make larger
    /// files). Sinks that hold nothing between writes keep this default.
    fn flush<'a>(&'a mut self, _context: &'a Context) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
    /// Called once when its input has ended or the pipeline stops: write out and make durable everything held.
    fn finish<'a>(&'a mut self, _context: &'a Context) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
}

/// What a component runs with.
#[derive(Clone)]
pub struct Context {
    /// The component's name.
    pub component: String,
    /// Its metrics.
    pub metrics: Arc<ComponentMetrics>,
    /// Turns true when the pipeline stops.
    pub shutdown: watch::Receiver<bool>,
    /// Where records that cannot be processed go.
    pub dead_letters: DeadLetters,
}

impl Context {
    /// Whether the pipeline is stopping.
    pub fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Waits until the pipeline is told to stop.
    pub async fn stopped(&mut self) {
        while !*self.shutdown.borrow_and_update() {
            if self.shutdown.changed().await.is_err() {
                // The pipeline that could stop us is gone: wait forever, the task will be dropped.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Sends a record that did not fit, with the reason, to the dead-letter output and counts it.
    pub fn dead_letter(&self, reason: &str, raw: &str) {
        self.dead_letter_all([(reason.to_string(), raw.to_string())]);
    }

    /// Sends records that did not fit, each with its reason `(reason, raw)`, to the dead-letter output at once (one
    /// sync for all), and counts them.
    pub fn dead_letter_all(&self, letters: impl IntoIterator<Item = (String, String)>) {
        let mut written = 0;
        let result = self.dead_letters.write(&self.component, letters, &mut written);
        for _ in 0..written {
            self.metrics.count_dead_letter();
        }
        if let Err(error) = result {
            // The disk is failing: its sinks fail too, and the data plane starts again.
            self.metrics.count_error();
            tracing::error!(component = self.component, %error, "cannot keep dead letters");
        }
    }
}

/// The dead-letter output of a pipeline: JSON lines with the component, the reason and the raw input, in a file
/// when the pipeline has a data directory, otherwise kept in memory (tests read them there).
#[derive(Clone, Default)]
pub struct DeadLetters {
    inner: Arc<Mutex<DeadLetterTarget>>,
}

enum DeadLetterTarget {
    Memory(Vec<String>),
    File(std::fs::File),
}

impl Default for DeadLetterTarget {
    fn default() -> DeadLetterTarget {
        DeadLetterTarget::Memory(Vec::new())
    }
}

/// The in-memory dead letters are capped so that a flood of bad input cannot exhaust memory.
const DEAD_LETTERS_IN_MEMORY: usize = 10_000;

impl DeadLetters {
    /// Dead letters appended to `path` (created with its directory).
    pub fn to_file(path: &Path) -> Result<DeadLetters, Error> {
        if let Some(directory) = path.parent() {
            std::fs::create_dir_all(directory).map_err(Error::io(format!("creating {}", directory.display())))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(Error::io(format!("opening {}", path.display())))?;
        Ok(DeadLetters { inner: Arc::new(Mutex::new(DeadLetterTarget::File(file))) })
    }

    /// Appends `letters` (reason, raw) and syncs them: a record may be acknowledged to its source once it is in
    /// the dead letters (a late record, a message that did not fit), so they are as durable as a sink's records.
    /// `written` counts those taken.
    fn write(
        &self,
        component: &str,
        letters: impl IntoIterator<Item = (String, String)>,
        written: &mut usize,
    ) -> std::io::Result<()> {
        let mut target = lock(&self.inner);
        let mut text = String::new();
        for (reason, raw) in letters {
            tracing::debug!(component, reason = %reason, "dead letter");
            let line = json!({ "component": component, "reason": reason, "raw": raw }).to_string();
            *written += 1;
            match &mut *target {
                DeadLetterTarget::File(_) => {
                    text.push_str(&line);
                    text.push('\n');
                }
                DeadLetterTarget::Memory(lines) => {
                    if lines.len() < DEAD_LETTERS_IN_MEMORY {
                        lines.push(line);
                    }
                }
            }
        }
        match &mut *target {
            DeadLetterTarget::File(file) if !text.is_empty() => {
                file.write_all(text.as_bytes())?;
                file.sync_data()
            }
            _ => Ok(()),
        }
    }

    /// The dead letters kept in memory, as JSON lines (none when they go to a file).
    pub fn in_memory(&self) -> Vec<String> {
        match &*lock(&self.inner) {
            DeadLetterTarget::Memory(lines) => lines.clone(),
            DeadLetterTarget::File(_) => Vec::new(),
        }
    }
}

/// Where a component's records go: one bounded channel per consumer. Sending waits while a consumer's channel is
/// full, which slows the producer down to the pace of its slowest consumer instead of growing memory.
#[derive(Clone)]
pub struct Output {
    routes: Routes,
    metrics: Arc<ComponentMetrics>,
}

/// One consumer's input, as its producer sees it.
pub struct Route {
    /// The consuming component.
    pub consumer: String,
    /// Its input.
    pub sender: mpsc::Sender<Delivery>,
    /// Which of the consumer's inputs this is.
    pub port: usize,
}

/// The consumers of one producer. Shared by the producer's [`Output`] (by both instances while a rollout replaces
/// it) and the pipeline, which rewires it when consumers come, go or are replaced. The senders live only here, so
/// a consumer's input ends when every producer feeding it has ended or no longer routes to it.
pub type Routes = Arc<Mutex<Vec<Route>>>;

/// Every consumer has gone away; the producer should stop.
#[derive(Debug)]
pub struct Closed;

impl Output {
    /// An output sending to `routes`, counted in `metrics`.
    pub fn new(routes: Routes, metrics: Arc<ComponentMetrics>) -> Output {
        Output { routes, metrics }
    }

    /// Sends records to every consumer and counts them out.
    pub async fn send(&self, records: Vec<Record>) -> Result<(), Closed> {
        self.send_acked(records, Acks::none()).await
    }

    /// Sends records with the acknowledgements they carry: each consumer gets a share of each.
    pub async fn send_acked(&self, records: Vec<Record>, acks: Acks) -> Result<(), Closed> {
        if records.is_empty() {
            // Nothing goes on, so nothing is left to make durable.
            acks.done();
            return Ok(());
        }
        let bytes: usize = records.iter().map(encoded_size).sum();
        self.metrics.count_out(records.len(), bytes);
        let batch: Batch = Arc::new(records);
        // The senders are taken out of the lock: sending may wait, and the pipeline must be able to rewire meanwhile.
        let consumers: Vec<(mpsc::Sender<Delivery>, usize)> = {
            let routes = lock(&self.routes);
            routes.iter().map(|route| (route.sender.clone(), route.port)).collect()
        };
        let mut delivered = false;
        for (sender, port) in &consumers {
            // A consumer that has gone drops its share unfinished: what it did not take is not durable.
            let delivery = Delivery { port: *port, batch: batch.clone(), acks: acks.share() };
            delivered |= sender.send(delivery).await.is_ok();
        }
        // The consumers hold their shares now; records with none to go to are no longer needed.
        acks.done();
        if delivered || consumers.is_empty() { Ok(()) } else { Err(Closed) }
    }
}

/// What building a component from the IR may use besides the item itself.
pub struct BuildContext<'a> {
    /// The application the component is part of.
    pub application: &'a Application,
    /// Relative paths in the file are relative to this directory (the `.stratum` file's).
    pub base_dir: &'a Path,
    /// Generators make events as fast as they can, with event times spaced by the declared rate, instead of in
    /// real time (tests and benchmarks).
    pub fast_generators: bool,
    /// Generators stop after at most this many events.
    pub generator_limit: Option<u64>,
    /// Fast generators stop once their event time has covered this many seconds.
    pub simulated_seconds: Option<f64>,
    /// Real-time generators run this many times faster than the clock (event time too): 60 shows an hour of
    /// data in a minute.
    pub time_scale: f64,
    /// The model store that `predict(service)` loads models from.
    pub model_store: Option<&'a Path>,
    /// The MQTT broker for components that name none (`mqtt://…` or `mqtt5://…`).
    pub mqtt_broker: Option<&'a str>,
    /// Where components keep what must outlive the process (a tailed file's position); none in tests.
    pub data_dir: Option<&'a Path>,
}

impl BuildContext<'_> {
    /// A path from the file, resolved against the file's directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() { path.to_path_buf() } else { self.base_dir.join(path) }
    }
}

/// Times one call and records it as the component's processing latency.
pub fn timed<T>(metrics: &ComponentMetrics, work: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = work();
    metrics.observe_latency(started.elapsed());
    result
}
