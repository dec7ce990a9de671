//! Leading among replicas of the control plane that share a state store on PostgreSQL ([`crate::state::Shared`]).
//! A replica waits as a standby until the lead is free (nobody holds it, or its holder's lease lapsed), takes it,
//! brings the files the cluster shares into its state directory, and from then on runs as the control plane: it
//! renews its lease, and keeps the shared files it changes in the store. A replica that cannot renew before its
//! lease could have lapsed stops leading (its caller stops serving); its writes are fenced in the store meanwhile.
//!
//! The files the cluster shares are those every replica must have to act as the same control plane: its
//! certificate authority (agents trust it), the secret path and API keys derive from, the model store agents pull
//! from, and the applied source. The state store holds everything else.

use crate::Error;
use crate::state::{Leader, Shared, StateStore};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

/// How long a lead lasts unless renewed: a dead leader's replacement takes over within about this long.
pub const LEASE: Duration = Duration::from_secs(5);

/// How often the leader renews its lease: four chances before it lapses.
const RENEW_EVERY: Duration = Duration::from_millis(1250);

/// How often a standby looks whether the lead is free.
const STANDBY_POLL: Duration = Duration::from_millis(500);

/// How often the leader looks for shared files that changed, to keep them in the store.
const MIRROR_EVERY: Duration = Duration::from_secs(1);

/// The files and folders of a state directory that every replica shares (see the module documentation).
const SHARED_PATHS: &[&str] = &["path.secret", "tls/ca.pem", "tls/ca.key", "models", "app"];

/// The lead this replica holds.
pub struct Lead {
    store: StateStore,
    holder: String,
}

/// A name for this replica, unique to this run: `HOST/ADDRESS/RANDOM`.
pub fn replica_name(address: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let random = crate::api::random_hex(4).unwrap_or_default();
    format!("{}/{address}/{random}", host.trim())
}

fn shared(store: &StateStore) -> Result<&Shared, Error> {
    store.shared().ok_or_else(|| Error::State("only a state store on PostgreSQL is shared by replicas".into()))
}

impl Lead {
    /// Waits until this replica (`holder`, its API at `address`) leads; `waiting` hears who leads meanwhile, once
    /// for each leader.
    pub async fn take(
        store: StateStore,
        holder: String,
        address: String,
        mut waiting: impl FnMut(&Leader),
    ) -> Result<Lead, Error> {
        let mut told: Option<i64> = None;
        loop {
            let (asked, name, at) = (store.clone(), holder.clone(), address.clone());
            let taken = blocking(move || shared(&asked)?.try_lead(&name, &at, LEASE)).await?;
            if taken {
                tracing::info!(holder = %holder, "this control plane leads");
                return Ok(Lead { store, holder });
            }
            let asked = store.clone();
            if let Ok(leader) = blocking(move || shared(&asked)?.leader()).await
                && told != Some(leader.term)
            {
                told = Some(leader.term);
                waiting(&leader);
            }
            tokio::time::sleep(STANDBY_POLL).await;
        }
    }

    /// This replica's name.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Renews the lease until `stop` turns true (then gives the lead up, so that a standby takes it at once) or
    /// until it cannot: the error says why this replica no longer leads.
    pub async fn keep(&self, mut stop: watch::Receiver<bool>) -> Result<(), Error> {
        // The store's clock starts a renewed lease after this replica sent the renewal: counted from the sending,
        // the lease here ends no later than the store's.
        let mut sent = Instant::now();
        let mut valid_until = sent + LEASE;
        loop {
            if stopped_after(&mut stop, RENEW_EVERY).await {
                let store = self.store.clone();
                let _ = blocking(move || shared(&store)?.resign()).await;
                return Ok(());
            }
            sent = Instant::now();
            let store = self.store.clone();
            let renewing = blocking(move || shared(&store)?.renew(LEASE));
            match tokio::time::timeout(valid_until.saturating_duration_since(Instant::now()), renewing).await {
                Ok(Ok(true)) => valid_until = sent + LEASE,
                Ok(Ok(false)) => return Err(Error::NotLeading("another replica took the lead".into())),
                Ok(Err(error)) if Instant::now() < valid_until => {
                    tracing::warn!(error = %stratum_core::error_chain(&error), "cannot renew the lead yet");
                }
                Ok(Err(error)) => {
                    return Err(Error::NotLeading(format!(
                        "its lease lapsed while the state store could not be reached: {}",
                        stratum_core::error_chain(&error)
                    )));
                }
                Err(_) => {
                    return Err(Error::NotLeading(
                        "its lease lapsed before it was renewed (the state store did not answer in time, or this \
                         process did not run)"
                            .into(),
                    ));
                }
            }
        }
    }

    /// Keeps the shared files of `state_dir` that change in the store, every second until `stop` turns true.
    pub async fn mirror(&self, state_dir: PathBuf, mut stop: watch::Receiver<bool>) {
        let mut mirror = Mirror::default();
        loop {
            let store = self.store.clone();
            let folder = state_dir.clone();
            let (kept, result) = blocking_owned(move || {
                let result = shared(&store).and_then(|shared| mirror.upload(shared, &folder));
                (mirror, result)
            })
            .await;
            mirror = kept;
            if let Err(error) = result {
                tracing::warn!(error = %stratum_core::error_chain(&error), "cannot keep the shared files in the store");
            }
            if stopped_after(&mut stop, MIRROR_EVERY).await {
                return;
            }
        }
    }
}

/// Waits `wait`, or less if `stop` turns true (or its sender is gone) meanwhile; whether it did.
async fn stopped_after(stop: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => false,
        _ = stop.wait_for(|stopped| *stopped) => true,
    }
}

/// Runs a blocking call of the state store off the runtime's threads.
async fn blocking<T: Send + 'static>(call: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(call).await.map_err(|error| Error::Task(stratum_core::error_chain(&error)))?
}

async fn blocking_owned<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(call).await {
        Ok(answer) => answer,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// The shared files of a state directory as last kept in the store: what changed since is kept again.
#[derive(Default)]
pub struct Mirror {
    seen: HashMap<PathBuf, (u64, SystemTime)>,
}

impl Mirror {
    /// Keeps in the store every shared file of `state_dir` that is new or changed since this mirror last looked;
    /// how many.
    pub fn upload(&mut self, shared: &Shared, state_dir: &Path) -> Result<usize, Error> {
        let (mut files, mut stamps) = (Vec::new(), Vec::new());
        for file in shared_files(state_dir) {
            let Ok(metadata) = std::fs::metadata(&file) else { continue };
            let stamp = (metadata.len(), metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH));
            if self.seen.get(&file) == Some(&stamp) {
                continue;
            }
            let content = std::fs::read(&file)
                .map_err(|error| Error::State(format!("reading {}: {error}", file.display()).into()))?;
            let relative = file.strip_prefix(state_dir).unwrap_or(&file).to_string_lossy().into_owned();
            files.push((relative, stratum_ml::data::sha256_hex(&content), content));
            stamps.push((file, stamp));
        }
        if files.is_empty() {
            return Ok(0);
        }
        shared.put_files(&files)?;
        self.seen.extend(stamps);
        Ok(files.len())
    }
}

/// Writes every shared file the store keeps into `state_dir` where it differs from the one there (secrets
/// readable by this user alone); how many it wrote. A replica does this when it takes the lead.
pub fn download(shared: &Shared, state_dir: &Path) -> Result<usize, Error> {
    let mut written = 0;
    for (relative, sha256) in shared.file_digests()? {
        let path = state_dir.join(&relative);
        // A path from the store stays inside the state directory.
        if relative.split('/').any(|part| part == ".." || part.is_empty()) || Path::new(&relative).is_absolute() {
            return Err(Error::State(
                format!("the store keeps a shared file outside a state directory: {relative}").into(),
            ));
        }
        if std::fs::read(&path).is_ok_and(|content| stratum_ml::data::sha256_hex(&content) == sha256) {
            continue;
        }
        let Some(content) = shared.file(&relative)? else { continue };
        let secret = relative == "path.secret" || relative.starts_with("tls/");
        let write = if secret { crate::files::write_secret } else { crate::files::write_whole };
        write(&path, &content).map_err(|error| Error::State(format!("writing {}: {error}", path.display()).into()))?;
        written += 1;
    }
    Ok(written)
}

/// The shared files under `state_dir` (whole files only: none a writer is still writing).
fn shared_files(state_dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders: Vec<PathBuf> = Vec::new();
    for path in SHARED_PATHS.iter().map(|shared| state_dir.join(shared)) {
        if path.is_dir() {
            folders.push(path);
        } else if path.is_file() {
            files.push(path);
        }
    }
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                folders.push(path);
            } else if !name.contains(".partial") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}
