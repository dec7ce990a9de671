//! Writing a file whole or not at all: into a temporary file of this writer's own beside it, then renamed over it,
//! so a crash never leaves half a file and two writers of the same file never rename away each other's. And the
//! content-addressed blob store built on it (training data shipped to agents), under `STATE_DIR/blobs/`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path` whole, creating its folder when needed.
pub fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static WRITERS: AtomicU64 = AtomicU64::new(0);
    if let Some(folder) = path.parent().filter(|folder| !folder.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)?;
    }
    let writer = WRITERS.fetch_add(1, Ordering::Relaxed);
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".partial-{}-{writer}", std::process::id()));
    let written = std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Writes a secret (a key) to `path`, readable by this user alone, synced, creating its folder when needed.
pub fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(folder) = path.parent().filter(|folder| !folder.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Where the blob with this sha256 is (or would be) stored, if it is a sha256.
pub fn blob_path(state_dir: &Path, sha256: &str) -> Option<PathBuf> {
    let valid = sha256.len() == 64 && sha256.chars().all(|character| character.is_ascii_hexdigit());
    valid.then(|| state_dir.join("blobs").join(sha256))
}

/// Stores bytes under their sha256 in the blob store (whole, or not at all) and says which.
pub fn put_blob(state_dir: &Path, bytes: &[u8]) -> std::io::Result<String> {
    let sha256 = stratum_ml::data::sha256_hex(bytes);
    write_whole(&state_dir.join("blobs").join(&sha256), bytes)?;
    Ok(sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_of_one_file_all_succeed_and_leave_it_whole() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("deep/data.csv");
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| write_whole(&path, b"a,b\n1,2\n").unwrap());
            }
        });
        assert_eq!(std::fs::read(&path).unwrap(), b"a,b\n1,2\n");
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }
}
