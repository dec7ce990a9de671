//! `stratum server backup|restore`: a control plane's state directory, copied whole and consistently while the
//! server runs, and put back on a machine that replaces it.
//!
//! A backup is a folder: the state store as one SQLite file made with `VACUUM INTO` (a consistent snapshot, taken
//! in a read transaction while the server goes on writing), the model store (each file written whole and renamed
//! into place, so a backup never copies half of one), the cluster's authority and secrets (`tls/`, `path.secret`, `join-string`: without them agents would
//! not trust the restored server, nor it their paths), the applied file (`app/`), and `MANIFEST.json` with each
//! file's size and sha256. Restore checks every file against the manifest before it writes anything, and writes
//! into a state directory that has no state store yet (or, with `force`, replaces it); secrets keep owner-only
//! permissions. Training scratch (`training/`) is not kept: a job in flight is run again.

use crate::Error;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use stratum_core::Cause;

/// The state store's file in a state directory and in a backup.
const STATE_FILE: &str = "state.db";
/// What a backup keeps besides the state store: folders and files of the state directory.
const KEPT: &[&str] = &["models", "tls", "app", "path.secret", "join-string"];
/// The manifest's file in a backup.
const MANIFEST: &str = "MANIFEST.json";

/// What a backup holds, and each file's size and sha256, by its path relative to the backup.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// When it was made, in milliseconds since 1970.
    pub made_at_milliseconds: i64,
    /// The Stratum version that made it.
    pub stratum_version: String,
    /// Each file: (bytes, sha256 in hex).
    pub files: BTreeMap<String, (u64, String)>,
}

impl Manifest {
    /// The bytes of every file together.
    pub fn bytes(&self) -> u64 {
        self.files.values().map(|(bytes, _)| bytes).sum()
    }
}

fn io_error(path: &Path, error: std::io::Error) -> Error {
    Error::Backup { path: path.to_path_buf(), source: error.into() }
}

/// Copies `state_dir` (of a running or stopped server) into a new folder `to`, and returns its manifest.
pub fn backup(state_dir: &Path, to: &Path) -> Result<Manifest, Error> {
    let store = state_dir.join(STATE_FILE);
    if !store.is_file() {
        return Err(Error::Backup {
            path: store,
            source: "no state store here: is this a `stratum server` state directory (its --state-dir)?".into(),
        });
    }
    if to.exists() && std::fs::read_dir(to).map_err(|error| io_error(to, error))?.next().is_some() {
        return Err(Error::Backup {
            path: to.to_path_buf(),
            source: "it is not empty: a backup goes into a new folder".into(),
        });
    }
    std::fs::create_dir_all(to).map_err(|error| io_error(to, error))?;
    // A snapshot in one read transaction: the server's writes after it began are not in it, and none is torn.
    let connection = rusqlite::Connection::open_with_flags(&store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|error| Error::Backup { path: store.clone(), source: error.into() })?;
    let target = to.join(STATE_FILE);
    connection
        .execute("VACUUM INTO ?1", [target.to_string_lossy().as_ref()])
        .map_err(|error| Error::Backup { path: store.clone(), source: error.into() })?;
    drop(connection);
    for kept in KEPT {
        let from = state_dir.join(kept);
        if from.exists() {
            copy_tree(&from, &to.join(kept))?;
        }
    }
    let manifest = Manifest {
        made_at_milliseconds: crate::state::now_milliseconds(),
        stratum_version: env!("CARGO_PKG_VERSION").to_string(),
        files: digests(to)?,
    };
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|error| Error::Backup { path: to.join(MANIFEST), source: error.into() })?;
    std::fs::write(to.join(MANIFEST), text).map_err(|error| io_error(&to.join(MANIFEST), error))?;
    sync_tree(to)?;
    Ok(manifest)
}

/// Puts a backup back into `state_dir`, after checking every file against its manifest. Refuses a state
/// directory that has a state store already, unless `force` (then the backup's files replace those it has).
pub fn restore(from: &Path, state_dir: &Path, force: bool) -> Result<Manifest, Error> {
    let manifest_path = from.join(MANIFEST);
    let text = std::fs::read(&manifest_path).map_err(|error| io_error(&manifest_path, error))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|error| Error::Backup { path: manifest_path.clone(), source: Cause::from(error) })?;
    let found = digests(from)?;
    for (file, expected) in &manifest.files {
        match found.get(file) {
            Some(actual) if actual == expected => {}
            Some(_) => {
                return Err(Error::Backup {
                    path: from.join(file),
                    source: "its contents are not what the backup recorded (sha256 differs): the backup is damaged"
                        .into(),
                });
            }
            None => {
                return Err(Error::Backup { path: from.join(file), source: "missing from the backup".into() });
            }
        }
    }
    if let Some(extra) = found.keys().find(|file| !manifest.files.contains_key(*file)) {
        return Err(Error::Backup { path: from.join(extra), source: "not in the backup's manifest".into() });
    }
    if state_dir.join(STATE_FILE).exists() && !force {
        return Err(Error::Backup {
            path: state_dir.to_path_buf(),
            source: "it already has a state store; restore into a new --state-dir, or stop its server and pass --force to replace it".into(),
        });
    }
    std::fs::create_dir_all(state_dir).map_err(|error| io_error(state_dir, error))?;
    // A stale journal beside the old store would be replayed into the restored one.
    for stale in ["state.db-wal", "state.db-shm"] {
        let path = state_dir.join(stale);
        if path.exists() {
            std::fs::remove_file(&path).map_err(|error| io_error(&path, error))?;
        }
    }
    for file in manifest.files.keys() {
        let (source, target) = (from.join(file), state_dir.join(file));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|error| io_error(parent, error))?;
        }
        std::fs::copy(&source, &target).map_err(|error| io_error(&source, error))?;
    }
    sync_tree(state_dir)?;
    Ok(manifest)
}

/// Copies a file or a folder (recursively), keeping permissions (secrets stay owner-only).
fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    if from.is_dir() {
        std::fs::create_dir_all(to).map_err(|error| io_error(to, error))?;
        for entry in std::fs::read_dir(from).map_err(|error| io_error(from, error))? {
            let entry = entry.map_err(|error| io_error(from, error))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        return Ok(());
    }
    // A file the model store is still writing (`FILE.partial`, renamed once whole) is not part of the store.
    if from.extension().is_some_and(|extension| extension == "partial") {
        return Ok(());
    }
    std::fs::copy(from, to).map(|_| ()).map_err(|error| io_error(from, error))
}

/// Every file under `root` (not the manifest): its path relative to `root`, size and sha256.
fn digests(root: &Path) -> Result<BTreeMap<String, (u64, String)>, Error> {
    let mut files = BTreeMap::new();
    for path in walk(root)?.into_iter().filter(|path| !path.is_dir()) {
        let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
        if relative == MANIFEST {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|error| io_error(&path, error))?;
        files.insert(relative, (bytes.len() as u64, stratum_ml::data::sha256_hex(&bytes)));
    }
    Ok(files)
}

/// Syncs every file and folder under `root`, so that a backup (or a restore) survives a power cut once it is done.
fn sync_tree(root: &Path) -> Result<(), Error> {
    for path in walk(root)? {
        std::fs::File::open(&path).and_then(|file| file.sync_all()).map_err(|error| io_error(&path, error))?;
    }
    Ok(())
}

/// Every file and folder under `root`, `root` included; a folder comes after what it holds.
fn walk(root: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut found = Vec::new();
    let mut folders: Vec<PathBuf> = vec![root.to_path_buf()];
    let mut seen_folders = Vec::new();
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).map_err(|error| io_error(&folder, error))? {
            let path = entry.map_err(|error| io_error(&folder, error))?.path();
            if path.is_dir() { folders.push(path) } else { found.push(path) }
        }
        seen_folders.push(folder);
    }
    found.extend(seen_folders.into_iter().rev());
    Ok(found)
}
