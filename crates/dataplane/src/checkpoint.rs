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

use crate::Error;
use crate::ack::{Ack, Acks, Settled, Settlement};
use crate::component::{Context, Operator};
use serde_json::value::RawValue;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    pub fn new(data_dir: &Path, component: &str, fingerprint: &str) -> Checkpoint {
        Checkpoint {
            path: checkpoint_path(data_dir, component),
            handed_over: handed_over_path(data_dir, component),
            fingerprint: fingerprint.to_string(),
            last_saved: Instant::now(),
            changed: false,
            hand_over: Arc::default(),
        }
    }

    /// The switch that makes the stream, once its input ends, hand its state over instead of emitting it.
    pub fn hand_over_flag(&self) -> Arc<AtomicBool> {
        self.hand_over.clone()
    }

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

/// Writes a component's state durably over its checkpoint, or removes the checkpoint when it holds nothing.
async fn write_state(path: PathBuf, component: &str, fingerprint: &str, state: Option<Vec<u8>>) -> Result<(), Error> {
    let Some(state) = state else {
        return match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("removing {}", path.display()))(error))
            }
            _ => Ok(()),
        };
    };
    // The state goes in as it is, not parsed again: it is most of the file.
    let quoted = |text: &str| serde_json::Value::from(text).to_string();
    let mut bytes = format!("{{\"component\":{},\"fingerprint\":{},\"state\":", quoted(component), quoted(fingerprint))
        .into_bytes();
    bytes.extend_from_slice(&state);
    bytes.push(b'}');
    let target = path.clone();
    tokio::task::spawn_blocking(move || write_replacing(&target, &bytes))
        .await
        .map_err(|error| Error::Checkpoint { path, source: error.into() })?
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
}

struct Snapshot {
    emitted: Settlement,
    /// `None`: the operator holds nothing, and the file goes.
    state: Option<Vec<u8>>,
    taken: Acks,
}

impl Checkpointing {
    pub fn new(checkpoint: Checkpoint) -> Checkpointing {
        Checkpointing { checkpoint, taken: Acks::none(), emitted: Ack::new(), waiting: VecDeque::new() }
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
            Ok(()) => snapshot.taken.done(),
            Err(error) => {
                context.metrics.count_error();
                tracing::warn!(component = context.component, %error, "cannot checkpoint");
            }
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
            Ok(()) => tracing::info!(component = context.component, "handed its state over"),
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
