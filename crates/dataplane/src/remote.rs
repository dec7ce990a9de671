//! The edges of a pipeline that runs on several machines. A [`Partition`] is one machine's part: the components it
//! runs, the records it receives from components on other machines, and the records it sends to them.
//!
//! Each data path that leaves the machine goes through the durable store-and-forward [`Log`]: a [`RemoteSink`]
//! appends every batch of its producer to the log of its path (so it survives the process and the uplink) and a
//! [`Forwarder`] sends the log to the consuming machine's receiver, which acknowledges an entry only once a
//! [`RemoteSource`] has put its records into that machine's pipeline. Paths are named
//! `PRODUCER@PRODUCER_HOST->CONSUMER_HOST`. When the consumers move to another machine (theirs was lost, or they
//! were placed elsewhere), the log of the path they left may still hold entries that machine never acknowledged:
//! the producer's path to the consumers' new machine **adopts** them (they go out first), so that nothing waits for
//! a machine that may never come back, and nothing arrives there late once it does.

use crate::Error;
use crate::ack::{Ack, Acks, Settled};
use crate::component::{BoxFuture, Context, Output, Sink, Source};
use crate::log::{Log, LogOptions};
use crate::record::{Batch, decode_batch, encode_batch};
use crate::transfer::{Delivered, Forwarder, ForwarderState, PathKey};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stratum_core::ir::WhenFull;
use stratum_core::sync::lock;
use tokio::sync::{mpsc, watch};

/// A buffer of this size (rejecting when full: the producer waits) for paths whose source declares none.
pub use stratum_core::ir::DEFAULT_PATH_BUFFER;
/// How long stopping waits for a path's log to be acknowledged before leaving the rest on disk for later.
const DRAIN_WAIT: Duration = Duration::from_secs(5);
/// How long a new path gives the producer's other paths to say they are finishing before it sends.
const SIBLING_GRACE: Duration = Duration::from_millis(500);
/// How often a path looks for logs of its producer that no path sends any more.
const ADOPT_INTERVAL: Duration = Duration::from_secs(2);

/// The path logs held in this process, with how many hold each (a rollout's new instance of a path and the old one
/// share a log for a while) and how many of those are finishing: a log no one holds is left over, and another
/// path of its producer may adopt it.
static OPEN_LOGS: Mutex<BTreeMap<PathBuf, Holders>> = Mutex::new(BTreeMap::new());

#[derive(Default)]
struct Holders {
    holding: usize,
    finishing: usize,
    /// Holders that read a log a path left for a consumer that came here ([`take_left_over_first`]): a path of the
    /// same name that starts meanwhile opens its log only once they are done.
    reading: usize,
}

/// Holds a path's log in [`OPEN_LOGS`] while it lives.
struct Holding {
    directory: PathBuf,
    finishing: bool,
    reading: bool,
}

impl Holding {
    /// Holds `directory`.
    fn hold(directory: &Path) -> Holding {
        lock(&OPEN_LOGS).entry(directory.to_path_buf()).or_default().holding += 1;
        Holding { directory: directory.to_path_buf(), finishing: false, reading: false }
    }

    /// Holds `directory` if no one else does.
    fn hold_if_free(directory: &Path) -> Option<Holding> {
        let mut open = lock(&OPEN_LOGS);
        let holders = open.entry(directory.to_path_buf()).or_default();
        if holders.holding > 0 {
            return None;
        }
        holders.holding += 1;
        Some(Holding { directory: directory.to_path_buf(), finishing: false, reading: false })
    }

    /// Holds `directory` to read it out for a consumer that came here, if no one else holds it.
    fn read_if_free(directory: &Path) -> Option<Holding> {
        let mut holding = Holding::hold_if_free(directory)?;
        holding.reading = true;
        if let Some(holders) = lock(&OPEN_LOGS).get_mut(directory) {
            holders.reading += 1;
        }
        Some(holding)
    }

    /// Whether no one else holds its directory.
    fn alone(&self) -> bool {
        lock(&OPEN_LOGS).get(&self.directory).is_none_or(|holders| holders.holding <= 1)
    }

    /// Whether a reader holds `directory` (see [`Holders::reading`]).
    fn being_read(directory: &Path) -> bool {
        lock(&OPEN_LOGS).get(directory).is_some_and(|holders| holders.reading > 0)
    }

    /// Its sink is finishing (its path is no longer assigned): a sibling that starts waits for it to let go.
    fn finish(&mut self) {
        if !std::mem::replace(&mut self.finishing, true)
            && let Some(holders) = lock(&OPEN_LOGS).get_mut(&self.directory)
        {
            holders.finishing += 1;
        }
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        let mut open = lock(&OPEN_LOGS);
        if let Some(holders) = open.get_mut(&self.directory) {
            holders.holding -= 1;
            holders.finishing -= usize::from(self.finishing);
            holders.reading -= usize::from(self.reading);
            if holders.holding == 0 {
                open.remove(&self.directory);
            }
        }
    }
}

/// The file-name prefix of the logs of `path`'s producer on its machine, whatever machine they lead to.
fn sibling_prefix(path: &str) -> Option<String> {
    let (from, _) = path.split_once("->")?;
    Some(log_directory(Path::new(""), &format!("{from}->")).file_name()?.to_string_lossy().into_owned())
}

/// Whether a log of another path of the same producer is held, by a sink that is finishing when `finishing`.
fn sibling_held(directory: &Path, prefix: &str, finishing: bool) -> bool {
    lock(&OPEN_LOGS).iter().any(|(other, holders)| {
        other != directory
            && other.parent() == directory.parent()
            && (!finishing || holders.finishing > 0)
            && other.file_name().is_some_and(|name| name.to_string_lossy().starts_with(prefix))
    })
}

/// A wait for a path's log that another holds, which says so every [`DRAIN_WAIT`] while it lasts.
struct Waiting {
    what: &'static str,
    directory: PathBuf,
    started: std::time::Instant,
    told: Duration,
}

impl Waiting {
    fn new(what: &'static str, directory: &Path) -> Waiting {
        Waiting { what, directory: directory.to_path_buf(), started: std::time::Instant::now(), told: Duration::ZERO }
    }

    /// Sleeps a little, telling the log when the wait has grown by another drain wait.
    async fn still(&mut self) {
        let waited = self.started.elapsed();
        if waited >= self.told + DRAIN_WAIT {
            self.told = waited;
            tracing::warn!(
                directory = %self.directory.display(),
                waited_seconds = waited.as_secs(),
                "still waiting for {}",
                self.what
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One machine's part of a pipeline.
#[derive(Default)]
pub struct Partition {
    /// The components this machine runs (sources, streams, services, sinks by name).
    pub components: Vec<String>,
    /// Records arriving from other machines, by path.
    pub inputs: Vec<RemoteInput>,
    /// Records leaving for other machines, by path.
    pub outputs: Vec<RemoteOutput>,
}

/// Records of `producer` (running elsewhere) arriving on `path`; the agent's receiver delivers them here.
pub struct RemoteInput {
    /// The path's name.
    pub path: String,
    /// The producer on the other machine.
    pub producer: String,
    /// What arrives on it.
    pub deliveries: mpsc::Receiver<Delivered>,
}

/// Records of the local `producer` leaving on `path` for its `consumers` on another machine, or waiting for them.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteOutput {
    /// The path's name.
    pub path: String,
    /// The local producer it carries.
    pub producer: String,
    /// The components the path leads to: it adopts what waited for them (see [`waiting_path_name`]).
    pub consumers: Vec<String>,
    /// The machine that receives it; `None` for a waiting path, whose entries stay in its log.
    pub to: Option<Destination>,
}

/// The receiver of a path: its address, the path's key (hex, as the control plane hands it out: see
/// [`PathKey`]), and TLS to it (`None` on a cluster without TLS).
#[derive(Clone, Debug, PartialEq)]
pub struct Destination {
    /// The receiver's data address.
    pub address: String,
    /// The path's key.
    pub key: String,
    /// TLS to the receiving agent (`None` on a cluster without TLS).
    pub tls: Option<crate::tls::ClientTls>,
}

/// The path between a producer on one host and its consumers on another.
pub fn path_name(producer: &str, producer_host: &str, consumer_host: &str) -> String {
    format!("{producer}@{producer_host}->{consumer_host}")
}

/// The path that keeps what `producer` makes on `producer_host` for `consumer` while no machine runs that consumer
/// (its machine has not joined, or none may take it): a log with no receiver, which the path to the machine that
/// takes the consumer adopts, or the consumer reads out itself if it comes to the producer's machine. Without it,
/// a source's acknowledgement would promise records that reach no one.
pub fn waiting_path_name(producer: &str, producer_host: &str, consumer: &str) -> String {
    waiting_path_from(&format!("{producer}@{producer_host}"), consumer)
}

/// The waiting path for `consumer` of the producer a path name's `PRODUCER@HOST` part names (`""` for every
/// consumer: the prefix that all its waiting paths share). A `?` stands where a path to a machine names the
/// machine: no machine is named so.
fn waiting_path_from(from: &str, consumer: &str) -> String {
    format!("{from}->?{consumer}")
}

/// The consumer a waiting path keeps records for; `None` for a path to a machine.
pub fn waiting_for(path: &str) -> Option<&str> {
    path.split_once("->")?.1.strip_prefix('?')
}

/// Where a path's log lives under a data directory: its name with anything but letters, digits, `-` and `_`
/// spelled out, so that no path can name a place outside the directory.
pub fn log_directory(data_dir: &Path, path: &str) -> PathBuf {
    let safe: String = path
        .chars()
        .map(|character| match character {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => character.to_string(),
            '@' => "_at_".into(),
            '>' => "_to_".into(),
            other => format!("_{:x}_", other as u32),
        })
        .collect();
    data_dir.join("buffers").join(safe)
}

/// A consumer that came to this machine in place of one a path of its producer led to (the stream of a lost fog
/// going on on the edge that makes its readings): what that path had not delivered waits in its log, and no path
/// adopts it (the consumer is local now). Before anything newer, the consumer takes it from there: `live` (what
/// its producer sends it from now on) waits until the logs in `left_over` are read out, once the path that held
/// each has let go. An entry is acknowledged in its log once every consumer here made it durable, and a log read
/// out is removed; one that fails stays, for whoever takes it next (at least once).
pub(crate) async fn take_left_over_first(
    left_over: Vec<PathBuf>,
    mut live: Vec<(mpsc::Receiver<crate::component::Delivery>, mpsc::Sender<crate::component::Delivery>, usize)>,
) {
    use crate::component::Delivery;
    for directory in left_over {
        // The path retired by the same rollout drains towards the machine that was lost for a while first. It lets
        // go within its drain wait, or later on a machine short of CPU: however long it takes, the consumer waits
        // (what comes live waits too) — reading on without these entries would count them late or never.
        let mut waiting = Waiting::new("a retired path's log, to read it out first", &directory);
        let holding = loop {
            // Nobody to read it for any more (the consumer moved on): it stays for whoever takes it next.
            if !directory.exists() || live.iter().all(|(_, consumer, _)| consumer.is_closed()) {
                break None;
            }
            if let Some(holding) = Holding::read_if_free(&directory) {
                break Some(holding);
            }
            waiting.still().await;
        };
        let Some(holding) = holding else { continue };
        let log = match Log::open(&directory, LogOptions::bounded(DEFAULT_PATH_BUFFER, WhenFull::Reject)) {
            Ok(log) => Arc::new(Mutex::new(log)),
            Err(error) => {
                tracing::warn!(directory = %directory.display(), %error, "cannot read a path's log left over");
                continue;
            }
        };
        let (settling, settlements) = mpsc::unbounded_channel();
        let acknowledging = {
            let log = log.clone();
            tokio::spawn(crate::ack::commit_in_order(settlements, move |sequence: u64| {
                let _ = lock(&log).acknowledge(sequence);
            }))
        };
        let mut next = lock(&log).first_unacknowledged();
        let mut taken = 0usize;
        'reading: loop {
            let entries = match lock(&log).read(next, 256, 4 << 20) {
                Ok(entries) => entries,
                Err(error) => {
                    tracing::warn!(directory = %directory.display(), %error, "cannot read a path's log left over");
                    break;
                }
            };
            let Some(last) = entries.last().map(|entry| entry.sequence) else { break };
            for entry in entries {
                let records = match decode_batch(&entry.payload) {
                    Ok(records) => records,
                    Err(reason) => {
                        // Its log checked it when it was read back: this is a bug, not bad input. Said, and passed.
                        tracing::error!(directory = %directory.display(), entry = entry.sequence, %reason, "an entry left over cannot be decoded");
                        continue;
                    }
                };
                let batch = Batch::from(records);
                let (ack, settlement) = Ack::new();
                let acks = Acks::from(ack);
                for (_, consumer, port) in &live {
                    let delivery = Delivery { port: *port, batch: batch.clone(), acks: acks.share() };
                    if consumer.send(delivery).await.is_err() {
                        break 'reading;
                    }
                }
                acks.done();
                taken += batch.len();
                let _ = settling.send((entry.sequence, settlement));
            }
            next = last + 1;
        }
        drop(settling);
        let _ = acknowledging.await;
        // Read out, it goes — unless a path of the same name started meanwhile (the consumer went back where it
        // came from): that path's sink opens it once this lets go, and finds every entry acknowledged.
        if lock(&log).pending() == 0 && holding.alone() {
            drop(log);
            let _ = std::fs::remove_dir_all(&directory);
        }
        drop(holding);
        tracing::info!(directory = %directory.display(), records = taken, "took what a path left for a consumer that came here");
    }
    // From now on, what the producer sends goes straight on.
    let forwarding: Vec<_> = live
        .drain(..)
        .map(|(mut receiver, consumer, _)| {
            tokio::spawn(async move {
                while let Some(delivery) = receiver.recv().await {
                    if consumer.send(delivery).await.is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    for forwarder in forwarding {
        let _ = forwarder.await;
    }
}

/// Puts what arrives on a path into the pipeline, and acknowledges it once it is durable here.
pub struct RemoteSource {
    /// What arrives on the path.
    pub deliveries: mpsc::Receiver<Delivered>,
}

impl Source for RemoteSource {
    fn run(mut self: Box<Self>, output: Output, mut context: Context) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(async move {
            loop {
                let delivered = tokio::select! {
                    delivered = self.deliveries.recv() => delivered,
                    _ = context.stopped() => None,
                };
                let Some(mut delivered) = delivered else { return Ok(()) };
                // The bytes go into records; what waits for the acknowledgement holds no copy of them.
                let payload = std::mem::take(&mut delivered.payload);
                context.metrics.count_in(0, payload.len());
                match decode_batch(&payload) {
                    Ok(records) => {
                        context.metrics.count_in(records.len(), 0);
                        let (ack, settlement) = Ack::new();
                        if output.send_acked(records, ack.into()).await.is_err() {
                            // Not acknowledged: the sender keeps it and sends it again.
                            return Ok(());
                        }
                        // Acknowledged to the sender once durable here; the next entries go in meanwhile.
                        tokio::spawn(async move {
                            if settlement.await == Settled::Durable {
                                delivered.done();
                            }
                        });
                    }
                    Err(reason) => {
                        context.dead_letter(&format!("path {}: {reason}", delivered.path), "");
                        delivered.done();
                    }
                }
            }
        })
    }
}

/// Appends every batch of its producer to the path's durable log; a forwarder sends the log on.
pub struct RemoteSink {
    path: String,
    directory: PathBuf,
    options: LogOptions,
    /// Opened when the sink first runs, not when it is built: a rollout builds a path's new instance while the old
    /// one still drains into the same log.
    log: Option<Arc<Mutex<Log>>>,
    /// Marks the path's log as held while this sink lives.
    holding: Holding,
    /// When it last looked for left-over logs of its producer to adopt.
    adopted_at: Option<std::time::Instant>,
    consumers: Vec<String>,
    to: Option<Destination>,
    stop: watch::Sender<bool>,
    forwarder: Option<tokio::task::JoinHandle<Result<(), Error>>>,
    state: watch::Receiver<ForwarderState>,
}

impl RemoteSink {
    /// The sink of `output.path`, whose log (with what it still holds) lives under `data_dir`.
    pub fn open(output: &RemoteOutput, data_dir: &Path, options: LogOptions) -> RemoteSink {
        let (stop, _) = watch::channel(false);
        let (_, state) = watch::channel(ForwarderState::default());
        let directory = log_directory(data_dir, &output.path);
        RemoteSink {
            path: output.path.clone(),
            // Held from the start, before its log opens: a path that is assigned is nobody's to adopt.
            holding: Holding::hold(&directory),
            directory,
            options,
            log: None,
            adopted_at: None,
            consumers: output.consumers.clone(),
            to: output.to.clone(),
            stop,
            forwarder: None,
            state,
        }
    }

    /// Options for a path: the producing source's buffer when it declares one, otherwise a bounded log that makes
    /// the producer wait when full.
    pub fn options_for(policy: Option<&stratum_core::ir::BufferPolicy>) -> LogOptions {
        policy.map_or_else(|| LogOptions::bounded(DEFAULT_PATH_BUFFER, WhenFull::Reject), LogOptions::from_policy)
    }

    /// Its log, opened at first use — not while a consumer that came here reads it out (a path of the same name
    /// before this one left it): `None` until that reader is done.
    fn log(&mut self) -> Result<Option<Arc<Mutex<Log>>>, Error> {
        if let Some(log) = &self.log {
            return Ok(Some(log.clone()));
        }
        if Holding::being_read(&self.directory) {
            return Ok(None);
        }
        let log = Arc::new(Mutex::new(Log::open(&self.directory, self.options.clone())?));
        self.log = Some(log.clone());
        Ok(Some(log))
    }

    /// Its log, waiting for a reader to be done with it first (see [`RemoteSink::log`]).
    async fn log_when_free(&mut self) -> Result<Arc<Mutex<Log>>, Error> {
        let mut waiting =
            Waiting::new("a consumer that came here to read out what an earlier path left", &self.directory);
        loop {
            if let Some(log) = self.log()? {
                return Ok(log);
            }
            waiting.still().await;
        }
    }

    /// Before its first entry: waits for the paths of its producer that are finishing to let their logs go (each
    /// does within its drain wait, or later on a machine short of CPU), and adopts what they left, so that it goes
    /// out before anything newer.
    async fn adopt_first(&mut self, log: &Arc<Mutex<Log>>) -> Result<(), Error> {
        if self.adopted_at.is_some() {
            return Ok(());
        }
        if let Some(prefix) = sibling_prefix(&self.path) {
            // A path retired by the same rollout reaches its end a moment later: it has that moment to say so.
            if sibling_held(&self.directory, &prefix, false) {
                tokio::time::sleep(SIBLING_GRACE).await;
            }
            // However long they take (a machine short of CPU): what they left goes out before anything newer.
            let mut waiting =
                Waiting::new("this producer's finishing paths, to send what they left first", &self.directory);
            while sibling_held(&self.directory, &prefix, true) {
                waiting.still().await;
            }
        }
        self.adopt_left_over(log)
    }

    /// Takes in, to send first, the entries of this producer's other paths whose logs no one holds any more (the
    /// consumers they led to moved, most likely here), and removes those logs once empty. What does not fit stays
    /// for the next look.
    fn adopt_left_over(&mut self, log: &Arc<Mutex<Log>>) -> Result<(), Error> {
        self.adopted_at = Some(std::time::Instant::now());
        let (Some(prefix), Some(buffers)) = (sibling_prefix(&self.path), self.directory.parent()) else {
            return Ok(());
        };
        let Ok(entries) = std::fs::read_dir(buffers) else { return Ok(()) };
        for entry in entries.flatten() {
            let directory = entry.path();
            if directory == self.directory
                || !entry.file_name().to_string_lossy().starts_with(&prefix)
                || !self.may_adopt(&directory)
            {
                continue;
            }
            let Some(_holding) = Holding::hold_if_free(&directory) else { continue };
            let mut left = Log::open(&directory, self.options.clone())?;
            let mut adopted = 0;
            loop {
                let entries = left.read(left.first_unacknowledged(), 256, 4 << 20)?;
                let Some(last) = entries.last().map(|entry| entry.sequence) else { break };
                let mut log = lock(log);
                for entry in &entries {
                    if log.append(&entry.payload, entry.time)?.is_err() {
                        // Full: what is taken stays taken; the rest waits for the next look.
                        if entry.sequence > left.first_unacknowledged() {
                            left.acknowledge(entry.sequence - 1)?;
                        }
                        tracing::info!(path = self.path, from = %directory.display(), adopted, "adopting paused: the log is full");
                        return Ok(());
                    }
                    adopted += 1;
                }
                drop(log);
                left.acknowledge(last)?;
            }
            drop(left);
            let _ = std::fs::remove_dir_all(&directory);
            if adopted > 0 {
                tracing::info!(path = self.path, from = %directory.display(), adopted, "adopted what a path it replaces left");
            }
        }
        Ok(())
    }

    /// Whether this path may adopt `directory`, the log of another path of its producer: any path's that led to a
    /// machine, but a waiting path's only when it waited for one of this path's consumers (it is theirs alone).
    fn may_adopt(&self, directory: &Path) -> bool {
        let Some((from, _)) = self.path.split_once("->") else { return false };
        let file_name = |path: &str| log_directory(Path::new(""), path).file_name().map(|name| name.to_os_string());
        let (Some(name), Some(waiting)) = (directory.file_name(), file_name(&waiting_path_from(from, ""))) else {
            return false;
        };
        if !name.to_string_lossy().starts_with(&*waiting.to_string_lossy()) {
            return true;
        }
        self.consumers.iter().any(|consumer| file_name(&waiting_path_from(from, consumer)).as_deref() == Some(name))
    }

    /// Starts sending the log to the receiver; a waiting path has none, and keeps its entries.
    fn start_forwarding(&mut self) -> Result<(), Error> {
        let Some(to) = &self.to else { return Ok(()) };
        if self.forwarder.is_some() {
            return Ok(());
        }
        let key = PathKey::from_hex(&to.key)
            .ok_or_else(|| Error::Transfer(format!("path `{}` came without a valid key", self.path).into()))?;
        let (address, tls) = (to.address.clone(), to.tls.clone());
        let Some(log) = self.log()? else { return Ok(()) };
        let (state_sender, state) = watch::channel(ForwarderState::default());
        self.state = state;
        let forwarder = Forwarder { log, path: self.path.clone(), to: address, key, tls };
        self.forwarder = Some(tokio::spawn(forwarder.run(self.stop.subscribe(), state_sender)));
        Ok(())
    }

    fn pending(&mut self) -> Result<u64, Error> {
        Ok(self.log()?.map_or(0, |log| lock(&log).pending()))
    }
}

impl Sink for RemoteSink {
    fn write<'a>(&'a mut self, batch: Batch, acks: Acks, context: &'a Context) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let log = self.log_when_free().await?;
            self.start_forwarding()?;
            self.adopt_first(&log).await?;
            let payload = encode_batch(&batch);
            context.metrics.count_in(batch.len(), payload.len());
            let time = crate::record::wall_clock_milliseconds();
            loop {
                let appended = {
                    let mut log = lock(&log);
                    let dropped_before = log.dropped();
                    let appended = log.append(&payload, time)?;
                    context.metrics.count_dropped(log.dropped() - dropped_before);
                    context.metrics.queue_depth.store(log.pending(), std::sync::atomic::Ordering::Relaxed);
                    appended
                };
                match appended {
                    // In the log, synced: durable here, and the path's receiver takes it on from there.
                    Ok(_) => {
                        acks.done();
                        return Ok(());
                    }
                    // Full and rejecting: wait for the uplink to drain it (the producer waits with us).
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
    }

    fn flush<'a>(&'a mut self, _context: &'a Context) -> BoxFuture<'a, Result<(), Error>> {
        // Entries left from an earlier run go out even before new ones arrive; a path the consumers left is
        // adopted once the sink that drained it has let it go.
        Box::pin(async move {
            if let Some(log) = self.log.clone()
                && self.adopted_at.is_none_or(|at| at.elapsed() >= ADOPT_INTERVAL)
            {
                self.adopt_left_over(&log)?;
            }
            if self.pending()? > 0 {
                self.start_forwarding()?;
            }
            Ok(())
        })
    }

    fn finish<'a>(&'a mut self, context: &'a Context) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.holding.finish();
            self.stop.send_replace(true);
            let Some(mut forwarder) = self.forwarder.take() else { return Ok(()) };
            match tokio::time::timeout(DRAIN_WAIT, &mut forwarder).await {
                Ok(Ok(result)) => result?,
                Ok(Err(error)) => return Err(Error::Transfer(error.into())),
                Err(_) => {
                    // The rest stays in the log, durable, for when this path runs again; the forwarder must be gone
                    // before anything opens the log again.
                    forwarder.abort();
                    let _ = forwarder.await;
                    let pending = self.pending().unwrap_or(0);
                    tracing::info!(component = context.component, path = self.path, pending, "left for later");
                }
            }
            Ok(())
        })
    }
}
