//! Checkpoints of what streams hold between batches (open windows, records waiting to be joined), so that a data
//! plane that crashed or was killed takes up its windows where they were instead of starting them empty.
//!
//! A stateful operator's state is written every [`CHECKPOINT_INTERVAL`] while it changes, to
//! `DATA_DIR/checkpoints/COMPONENT.json` (written to a temporary file, synced, then renamed over the old one, so a
//! crash leaves the old checkpoint or the new one, never half of one). The file names the component's fingerprint
//! (its definition and what it reads), and only an instance with the same fingerprint takes it up: a stream whose
//! definition changed starts empty. A stream that ends cleanly emits everything it held and removes its file.
//!
//! A stream that moves to another machine while both run hands its state over instead: told so when it is retired
//! ([`Checkpoint::hand_over_flag`]), it takes in what it was sent, writes its state once more, and emits nothing; the
//! file is moved to `DATA_DIR/checkpoints/handed-over/COMPONENT.json`, which the agent sends to the control plane for
//! the stream's next machine to take up. No window is emitted half on each machine.
//!
//! What a crash costs: nothing acknowledged. The records a stream took in since its last checkpoint were not yet
//! acknowledged to their sources ([`Checkpointing`]), which send them again; a window that closed since may be
//! emitted a second time, with what the checkpoint held of it.
//!
//! On a machine that can be lost for good (an agent), a checkpoint on its own disk does not make what it holds
//! durable: the stream goes on elsewhere from the last copy the control plane has. There the pipeline is given
//! [`CheckpointCopies`]: each checkpoint written waits there for the agent to send it, and what it holds is
//! acknowledged only once the control plane said it kept the copy.

use crate::Error;
use crate::ack::{Ack, Acks, Settled, Settlement};
use crate::component::{Context, Operator};
use crate::lease::Lease;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratum_core::sync::lock;

/// How often a changing state is written.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// How often it is written while sources wait to acknowledge what the stream took in (an HTTP client waits for
/// its answer until a checkpoint holds its records).
pub const ACKED_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// Where checkpoints live under a data directory.
pub fn checkpoint_directory(data_dir: &Path) -> PathBuf {
    data_dir.join("checkpoints")
}

/// A component's checkpoint file under a data directory.
pub fn checkpoint_path(data_dir: &Path, component: &str) -> PathBuf {
    checkpoint_directory(data_dir).join(format!("{}.json", file_name(component)))
}

/// A component's name as a file name. A name is an identifier of the language; anything else is spelled out all
/// the same, so that no name can point outside the directory it is kept in.
pub(crate) fn file_name(component: &str) -> String {
    component.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

/// Where the states of streams that were handed over wait until the control plane has them.
pub fn handed_over_directory(data_dir: &Path) -> PathBuf {
    checkpoint_directory(data_dir).join("handed-over")
}

/// Where a component's state waits once it was handed over.
pub fn handed_over_path(data_dir: &Path, component: &str) -> PathBuf {
    handed_over_directory(data_dir).join(format!("{}.json", file_name(component)))
}

/// Puts a checkpoint file that another machine wrote (handed over by the control plane) where the component's
/// next instance here takes it up.
pub fn install(data_dir: &Path, component: &str, file: &[u8]) -> Result<(), Error> {
    write_replacing(&checkpoint_path(data_dir, component), file)
}

/// Removes a component's checkpoint here: its state went on elsewhere, so what this machine kept is stale.
pub fn discard(data_dir: &Path, component: &str) {
    let _ = std::fs::remove_file(checkpoint_path(data_dir, component));
}

/// One component's checkpoint file, and when it was last written.
pub struct Checkpoint {
    path: PathBuf,
    /// Where the state goes when the stream hands it over ([`handed_over_path`]).
    handed_over: PathBuf,
    fingerprint: String,
    last_saved: Instant,
    changed: bool,
    /// Set when the stream is retired to hand its state over rather than emit it.
    hand_over: Arc<AtomicBool>,
    /// On an agent: where written checkpoints wait to be copied off the machine before what they hold counts.
    copies: Option<CheckpointCopies>,
    /// On an agent: the lease it holds the stream by (see [`crate::lease`]).
    lease: Option<Lease>,
}

/// A checkpoint file as it is read back (written by [`Checkpoint::save`] with these fields); the state stays text
/// for the operator to read.
#[derive(serde::Deserialize)]
struct File<'a> {
    fingerprint: String,
    #[serde(borrow)]
    state: &'a RawValue,
}

impl Checkpoint {
    /// The checkpoint of `component` (as defined by `fingerprint`) under `data_dir`.
    pub fn new(data_dir: &Path, component: &str, fingerprint: &str) -> Checkpoint {
        Checkpoint {
            path: checkpoint_path(data_dir, component),
            handed_over: handed_over_path(data_dir, component),
            fingerprint: fingerprint.to_string(),
            last_saved: Instant::now(),
            changed: false,
            hand_over: Arc::default(),
            copies: None,
            lease: None,
        }
    }

    /// Runs the stream only while `lease` is held (see [`crate::lease`]).
    pub fn leased(mut self, lease: Option<Lease>) -> Checkpoint {
        self.lease = lease;
        self
    }

    /// Acknowledges what a checkpoint holds only once a copy of it left the machine (see [`CheckpointCopies`]).
    pub fn copied_by(mut self, copies: Option<CheckpointCopies>) -> Checkpoint {
        self.copies = copies;
        self
    }

    /// The switch that makes the stream, once its input ends, hand its state over instead of emitting it.
    pub fn hand_over_flag(&self) -> Arc<AtomicBool> {
        self.hand_over.clone()
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state a predecessor with the same fingerprint saved, if any. A checkpoint of another definition is
    /// removed (that stream starts empty); one that cannot be read is an error, and left for people to look at.
    pub fn load(&self) -> Result<Option<Vec<u8>>, Error> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(Error::io(format!("reading {}", self.path.display()))(error)),
        };
        let file: File<'_> = serde_json::from_slice(&text).map_err(|error| Error::Checkpoint {
            path: self.path.clone(),
            source: format!("not a checkpoint: {error}").into(),
        })?;
        if file.fingerprint != self.fingerprint {
            self.remove();
            return Ok(None);
        }
        Ok(Some(file.state.get().as_bytes().to_vec()))
    }

    /// Restores into `operator` what its predecessor checkpointed; whether there was something to take up. A
    /// checkpoint that cannot be taken up is reported and the operator starts empty: the data that flows on
    /// matters more than the state that was lost.
    pub fn take_up(&self, operator: &mut dyn Operator, context: &Context) -> bool {
        let restored = match self.load() {
            Ok(None) => return false,
            Ok(Some(state)) => operator
                .restore(&state)
                .map_err(|message| Error::Checkpoint { path: self.path.clone(), source: message }),
            Err(error) => Err(error),
        };
        match restored {
            Ok(()) => {
                tracing::info!(component = context.component, "took up its checkpoint");
                true
            }
            Err(error) => {
                context.metrics.count_error();
                tracing::warn!(
                    component = context.component,
                    %error,
                    "starting empty: the checkpoint cannot be taken up"
                );
                false
            }
        }
    }

    /// Notes that the state may have changed (a batch was taken in, a tick moved time on).
    pub fn touch(&mut self) {
        self.changed = true;
    }

    /// Whether the state should be written now.
    pub fn due(&self) -> bool {
        self.changed && self.last_saved.elapsed() >= CHECKPOINT_INTERVAL
    }

    /// When the state is due, at [`ACKED_CHECKPOINT_INTERVAL`], while acknowledgements wait on it.
    fn due_soon(&self) -> Instant {
        self.last_saved + ACKED_CHECKPOINT_INTERVAL
    }

    /// Restarts the interval: a state was taken to be written.
    fn saved(&mut self) {
        self.last_saved = Instant::now();
        self.changed = false;
    }

    /// Removes the file: the component ended and emitted everything it held.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes a component's state durably over its checkpoint, or removes the checkpoint when it holds nothing; the
/// file written, if one was.
async fn write_state(
    path: PathBuf,
    component: &str,
    fingerprint: &str,
    state: Option<Vec<u8>>,
) -> Result<Option<Arc<[u8]>>, Error> {
    let Some(state) = state else {
        return match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("removing {}", path.display()))(error))
            }
            _ => Ok(None),
        };
    };
    // The state goes in as it is, not parsed again: it is most of the file.
    let quoted = |text: &str| serde_json::Value::from(text).to_string();
    let mut bytes = format!("{{\"component\":{},\"fingerprint\":{},\"state\":", quoted(component), quoted(fingerprint))
        .into_bytes();
    bytes.extend_from_slice(&state);
    bytes.push(b'}');
    let (target, file) = (path.clone(), Arc::<[u8]>::from(bytes));
    let written = file.clone();
    tokio::task::spawn_blocking(move || write_replacing(&target, &written))
        .await
        .map_err(|error| Error::Checkpoint { path, source: error.into() })??;
    Ok(Some(file))
}

/// A stateful operator's checkpoints, and the acknowledgements they settle.
///
/// What an operator took in is acknowledged once a synced checkpoint holds it (or what it made of it). A
/// checkpoint is written only once everything the operator emitted before it is durable downstream: otherwise a
/// crash just after it would lose a window that closed before it, which the checkpoint no longer holds. So the
/// state is taken every [`CHECKPOINT_INTERVAL`] (a snapshot), and written when the outputs sent before it settle;
/// snapshots wait in order, and the operator goes on meanwhile.
pub struct Checkpointing {
    checkpoint: Checkpoint,
    /// Shares in what it took in since the last snapshot.
    taken: Acks,
    /// The ack its outputs carry until the next snapshot, and its settlement.
    emitted: (Ack, Settlement),
    /// Snapshots waiting for the outputs sent before them, oldest first.
    waiting: VecDeque<Snapshot>,
    /// What the snapshots written since the stream was told to hand its state over hold (with copies): it counts
    /// once the control plane has the state handed over.
    handing: Acks,
}

struct Snapshot {
    emitted: Settlement,
    /// `None`: the operator holds nothing, and the file goes.
    state: Option<Vec<u8>>,
    taken: Acks,
}

impl Checkpointing {
    /// Checkpointing into `checkpoint`.
    pub fn new(checkpoint: Checkpoint) -> Checkpointing {
        Checkpointing {
            checkpoint,
            taken: Acks::none(),
            emitted: Ack::new(),
            waiting: VecDeque::new(),
            handing: Acks::none(),
        }
    }

    /// Holds the shares of records the operator took in until a checkpoint holds them.
    pub fn take(&mut self, acks: Acks) {
        self.taken.extend(acks);
        self.checkpoint.touch();
    }

    /// Notes that time moved the state on (windows closed by a tick).
    pub fn touch(&mut self) {
        self.checkpoint.touch();
    }

    /// A share for what the operator sends on now.
    pub fn emitted(&self) -> Acks {
        self.emitted.0.clone().into()
    }

    /// Takes a snapshot of `operator` when one is due: every [`CHECKPOINT_INTERVAL`] while its state changes,
    /// sooner while sources wait on what it took in.
    pub fn snapshot_if_due(&mut self, operator: &dyn Operator) {
        let soon = !self.taken.is_empty() && Instant::now() >= self.checkpoint.due_soon();
        if self.checkpoint.due() || soon {
            self.snapshot(operator.save());
        }
    }

    /// When a snapshot falls due because sources wait on what the operator took in; `None` while none waits.
    pub fn waited_on(&self) -> Option<Instant> {
        (!self.taken.is_empty()).then(|| self.checkpoint.due_soon())
    }

    fn snapshot(&mut self, state: Option<Vec<u8>>) {
        self.checkpoint.saved();
        let (ack, emitted) = std::mem::replace(&mut self.emitted, Ack::new());
        ack.done();
        self.waiting.push_back(Snapshot { emitted, state, taken: std::mem::take(&mut self.taken) });
    }

    /// Whether a snapshot waits for its outputs.
    pub fn waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Waits until the outputs before the oldest snapshot settle (forever when none waits).
    pub async fn settled(&mut self) -> Settled {
        match self.waiting.front_mut() {
            Some(snapshot) => (&mut snapshot.emitted).await,
            None => std::future::pending().await,
        }
    }

    /// Writes the oldest snapshot, whose outputs settled as `outcome`, and settles what it holds: done once the
    /// file is synced; unfinished when the outputs failed or the file cannot be written (the previous checkpoint
    /// stays, and the sources send those records again).
    pub async fn complete(&mut self, outcome: Settled, context: &Context) {
        let Some(snapshot) = self.waiting.pop_front() else { return };
        if outcome == Settled::Failed {
            return;
        }
        let checkpoint = &self.checkpoint;
        match write_state(checkpoint.path.clone(), &context.component, &checkpoint.fingerprint, snapshot.state).await {
            Ok(file) => match (&checkpoint.copies, file) {
                // What a handed-over state holds counts once the control plane has it (see `hand_over`).
                (Some(_), _) if self.handing_over() => self.handing.extend(snapshot.taken),
                (Some(copies), Some(file)) => copies.written(&context.component, file, snapshot.taken),
                (Some(copies), None) => {
                    copies.removed(&context.component);
                    snapshot.taken.done();
                }
                (None, _) => snapshot.taken.done(),
            },
            Err(error) => {
                context.metrics.count_error();
                tracing::warn!(component = context.component, %error, "cannot checkpoint");
            }
        }
    }

    /// Whether the lease its agent holds the stream by has ended: it must not go on (see [`crate::lease`]).
    pub fn lease_ended(&self) -> bool {
        self.checkpoint.lease.as_ref().is_some_and(|lease| !lease.held())
    }

    /// Waits until the lease is renewed, or `poll` passed (a renewal just before the wait began is seen then).
    pub async fn lease_renewed_or(&self, poll: Duration) {
        if let Some(lease) = &self.checkpoint.lease {
            let _ = tokio::time::timeout(poll, lease.renewed()).await;
        }
    }

    /// Whether the stream was retired to hand its state over.
    pub fn handing_over(&self) -> bool {
        self.checkpoint.hand_over.load(Ordering::Acquire)
    }

    /// At the end of a stream that hands its state over: writes `state`, what the operator holds (once what it
    /// emitted before is durable downstream), settles what it took in, and moves the file where the agent sends it
    /// from. An operator that holds nothing leaves an empty file: the next machine starts it empty, without waiting.
    pub async fn hand_over(mut self, state: Option<Vec<u8>>, context: &Context) {
        self.snapshot(state);
        while self.waiting() {
            let outcome = self.settled().await;
            self.complete(outcome, context).await;
        }
        let (from, to) = (&self.checkpoint.path, &self.checkpoint.handed_over);
        let moved = match std::fs::read(from) {
            Ok(file) => write_replacing(to, &file).map(|()| self.checkpoint.remove()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => write_replacing(to, b""),
            Err(error) => Err(Error::io(format!("reading {}", from.display()))(error)),
        };
        match moved {
            Ok(()) => {
                tracing::info!(component = context.component, "handed its state over");
                let held = std::mem::take(&mut self.handing);
                match &self.checkpoint.copies {
                    Some(copies) => copies.handed_over(&context.component, held),
                    None => held.done(),
                }
            }
            Err(error) => {
                context.metrics.count_error();
                tracing::warn!(component = context.component, %error, "cannot hand its state over");
            }
        }
    }

    /// After the operator emitted everything it held at the end: waits until that is durable downstream, then
    /// removes the file (nothing is left to take up) and settles everything it took in.
    pub async fn finish(mut self, context: &Context) {
        self.snapshot(None);
        while self.waiting() {
            let outcome = self.settled().await;
            self.complete(outcome, context).await;
        }
    }
}

/// A checkpoint larger than this is not copied off its machine: what it holds counts once it is synced there (a
/// control plane takes heartbeats of up to 8 MB, and they carry the copies).
pub const MAX_COPY_BYTES: usize = 4 << 20;

/// The checkpoints written on an agent, waiting to be copied to the control plane, and the acknowledgements that
/// wait for the copies to arrive there; shared by the agent's pipeline (which adds) and its heartbeat (which
/// sends). Only the newest checkpoint of a stream waits: it holds everything the older ones held.
#[derive(Clone, Default)]
pub struct CheckpointCopies(Arc<Mutex<Copies>>);

impl std::fmt::Debug for CheckpointCopies {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("CheckpointCopies")
    }
}

#[derive(Default)]
struct Copies {
    waiting: BTreeMap<String, (Arc<[u8]>, Acks)>,
    /// Streams that ended cleanly: nothing of them is left to take up.
    removed: BTreeSet<String>,
    /// What states handed over hold, by stream (the agent sends those files from `handed-over/`).
    handed_over: BTreeMap<String, Acks>,
}

/// What one heartbeat carries off: the newest checkpoint of streams that wrote one since, the streams that ended,
/// and what waits on them. [`Sending::arrived`] once the control plane kept them; dropped, what they hold is not
/// acknowledged and their sources send it again.
#[derive(Default)]
pub struct Sending {
    /// (stream, checkpoint file).
    pub copies: Vec<(String, Arc<[u8]>)>,
    /// Streams whose checkpoint was removed (they ended, or moved away).
    pub removed: Vec<String>,
    acks: BTreeMap<String, Acks>,
    handed_over: BTreeMap<String, Acks>,
}

impl CheckpointCopies {
    fn written(&self, component: &str, file: Arc<[u8]>, taken: Acks) {
        if file.len() > MAX_COPY_BYTES {
            tracing::warn!(
                component,
                bytes = file.len(),
                "a checkpoint too large to copy off the machine: what it holds is acknowledged once synced here"
            );
            taken.done();
            return;
        }
        let mut copies = lock(&self.0);
        copies.removed.remove(component);
        match copies.waiting.get_mut(component) {
            Some((waiting, acks)) => {
                *waiting = file;
                acks.extend(taken);
            }
            None => {
                copies.waiting.insert(component.to_string(), (file, taken));
            }
        }
    }

    /// The stream ended cleanly after emitting everything it held downstream, durably: what its copies waited on
    /// is no longer needed.
    fn removed(&self, component: &str) {
        let mut copies = lock(&self.0);
        if let Some((_, acks)) = copies.waiting.remove(component) {
            acks.done();
        }
        copies.removed.insert(component.to_string());
    }

    fn handed_over(&self, component: &str, acks: Acks) {
        lock(&self.0).handed_over.entry(component.to_string()).or_default().extend(acks);
    }

    /// Takes what waits, newest checkpoints up to `room` bytes in all (the rest waits for the next heartbeat). The
    /// states handed over are taken too: take them before reading `handed-over/`, where their files already are.
    pub fn take(&self, room: usize) -> Sending {
        let mut copies = lock(&self.0);
        let mut sending = Sending {
            removed: std::mem::take(&mut copies.removed).into_iter().collect(),
            handed_over: std::mem::take(&mut copies.handed_over),
            ..Sending::default()
        };
        let mut room = room;
        let fitting: Vec<String> = copies
            .waiting
            .iter()
            .filter(|(_, (file, _))| {
                let fits = file.len() <= room;
                room = room.saturating_sub(if fits { file.len() } else { 0 });
                fits
            })
            .map(|(component, _)| component.clone())
            .collect();
        for component in fitting {
            if let Some((file, acks)) = copies.waiting.remove(&component) {
                sending.copies.push((component.clone(), file));
                sending.acks.insert(component, acks);
            }
        }
        sending
    }

    /// Puts back what a heartbeat that failed carried: sent again with the next one, behind any newer checkpoint
    /// of the same stream (which holds what it held).
    pub fn put_back(&self, sending: Sending) {
        let mut copies = lock(&self.0);
        let Sending { copies: files, removed, mut acks, handed_over } = sending;
        for (component, file) in files {
            let taken = acks.remove(&component).unwrap_or_default();
            match copies.waiting.get_mut(&component) {
                Some((_, waiting)) => waiting.extend(taken),
                None => {
                    copies.waiting.insert(component, (file, taken));
                }
            }
        }
        for component in removed {
            if !copies.waiting.contains_key(&component) {
                copies.removed.insert(component);
            }
        }
        for (component, acks) in handed_over {
            copies.handed_over.entry(component).or_default().extend(acks);
        }
    }
}

impl Sending {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.copies.is_empty() && self.removed.is_empty() && self.handed_over.is_empty()
    }

    /// The control plane kept the checkpoints and handed-over states of the streams in `kept`: what they hold is
    /// acknowledged. What it did not keep (a stream no longer placed here, a state it did not wait for) is not:
    /// its sources send it again, to wherever the stream runs now.
    pub fn arrived(mut self, kept: &[String]) {
        for component in kept {
            for acks in [self.acks.remove(component), self.handed_over.remove(component)].into_iter().flatten() {
                acks.done();
            }
        }
    }
}

/// Writes `bytes` to a temporary file next to `path`, syncs it, and renames it over `path`.
pub(crate) fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let directory = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(directory).map_err(Error::io(format!("creating {}", directory.display())))?;
    let temporary = path.with_extension("json.partial");
    let mut file = std::fs::File::create(&temporary).map_err(Error::io(format!("creating {}", temporary.display())))?;
    file.write_all(bytes).map_err(Error::io(format!("writing {}", temporary.display())))?;
    file.sync_data().map_err(Error::io(format!("syncing {}", temporary.display())))?;
    std::fs::rename(&temporary, path).map_err(Error::io(format!("renaming {}", temporary.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(component: &str) -> Context {
        Context {
            component: component.into(),
            metrics: crate::metrics::Registry::default().register(component, "stream"),
            shutdown: tokio::sync::watch::channel(false).1,
            dead_letters: crate::component::DeadLetters::default(),
        }
    }

    /// Writes one snapshot holding `ack`'s records, as the stream's loop would.
    async fn checkpoint_holding(checkpointing: &mut Checkpointing, ack: Ack, state: &[u8]) {
        checkpointing.take(ack.into());
        checkpointing.snapshot(Some(state.to_vec()));
        let outcome = checkpointing.settled().await;
        checkpointing.complete(outcome, &context("counts")).await;
    }

    async fn pending(settlement: &mut Settlement) -> bool {
        tokio::time::timeout(Duration::from_millis(20), settlement).await.is_err()
    }

    #[tokio::test]
    async fn with_copies_what_a_checkpoint_holds_counts_once_the_control_plane_kept_its_copy() {
        let directory = tempfile::tempdir().unwrap();
        let copies = CheckpointCopies::default();
        let checkpoint = Checkpoint::new(directory.path(), "counts", "definition").copied_by(Some(copies.clone()));
        let mut checkpointing = Checkpointing::new(checkpoint);

        let (first, mut first_settled) = Ack::new();
        checkpoint_holding(&mut checkpointing, first, br#"{"open":1}"#).await;
        assert!(checkpointing.checkpoint.path().exists(), "synced here");
        assert!(pending(&mut first_settled).await, "not acknowledged while only this machine has it");

        // A heartbeat that fails puts its copy back; a newer checkpoint takes its place and its acks.
        let failed = copies.take(MAX_COPY_BYTES);
        assert_eq!(failed.copies.len(), 1);
        let (second, mut second_settled) = Ack::new();
        checkpoint_holding(&mut checkpointing, second, br#"{"open":2}"#).await;
        copies.put_back(failed);
        let sending = copies.take(MAX_COPY_BYTES);
        assert_eq!(sending.copies.len(), 1, "only the newest checkpoint goes");
        assert!(String::from_utf8_lossy(&sending.copies[0].1).contains(r#"{"open":2}"#));
        assert!(pending(&mut first_settled).await && pending(&mut second_settled).await);
        sending.arrived(&["counts".to_string()]);
        assert_eq!(first_settled.await, Settled::Durable);
        assert_eq!(second_settled.await, Settled::Durable);

        // A copy the control plane did not keep (the stream runs elsewhere now) acknowledges nothing.
        let (third, third_settled) = Ack::new();
        checkpoint_holding(&mut checkpointing, third, br#"{"open":3}"#).await;
        copies.take(MAX_COPY_BYTES).arrived(&[]);
        assert_eq!(third_settled.await, Settled::Failed);

        // A stream that ends cleanly needs no copy: what it held is durable downstream; its end is told.
        let (fourth, fourth_settled) = Ack::new();
        checkpointing.take(fourth.into());
        checkpointing.finish(&context("counts")).await;
        assert_eq!(fourth_settled.await, Settled::Durable);
        let sending = copies.take(MAX_COPY_BYTES);
        assert_eq!((sending.copies.len(), sending.removed.as_slice()), (0, ["counts".to_string()].as_slice()));
    }

    #[tokio::test]
    async fn a_state_handed_over_counts_once_the_control_plane_has_it() {
        let directory = tempfile::tempdir().unwrap();
        let copies = CheckpointCopies::default();
        let checkpoint = Checkpoint::new(directory.path(), "counts", "definition").copied_by(Some(copies.clone()));
        checkpoint.hand_over_flag().store(true, Ordering::Release);
        let mut checkpointing = Checkpointing::new(checkpoint);
        let (ack, mut settled) = Ack::new();
        checkpointing.take(ack.into());
        checkpointing.hand_over(Some(br#"{"open":1}"#.to_vec()), &context("counts")).await;
        assert!(handed_over_path(directory.path(), "counts").exists());
        assert!(pending(&mut settled).await, "the control plane does not have it yet");
        let sending = copies.take(MAX_COPY_BYTES);
        assert!(sending.copies.is_empty(), "the agent sends it from handed-over/");
        sending.arrived(&["counts".to_string()]);
        assert_eq!(settled.await, Settled::Durable);
    }

    #[tokio::test]
    async fn a_checkpoint_is_taken_up_only_by_the_same_definition() {
        let directory = tempfile::tempdir().unwrap();
        let mut checkpoint = Checkpoint::new(directory.path(), "per_minute", "definition 1");
        assert!(checkpoint.load().unwrap().is_none());
        assert!(!checkpoint.due(), "nothing changed");
        checkpoint.touch();
        checkpoint.saved();
        write_state(
            checkpoint.path.clone(),
            "per \"minute\"",
            &checkpoint.fingerprint,
            Some(br#"{"open":[1,2]}"#.to_vec()),
        )
        .await
        .unwrap();
        assert_eq!(checkpoint.load().unwrap(), Some(br#"{"open":[1,2]}"#.to_vec()));
        assert!(!checkpoint.due(), "just saved");

        // A changed stream does not take up the old state, and the stale file goes.
        let changed = Checkpoint::new(directory.path(), "per_minute", "definition 2");
        assert!(changed.load().unwrap().is_none());
        assert!(!changed.path().exists());

        std::fs::write(checkpoint.path(), "{ torn").unwrap();
        let error = checkpoint.load().unwrap_err().to_string();
        assert!(error.contains("per_minute.json") && error.contains("not a checkpoint"), "{error}");
    }
}
