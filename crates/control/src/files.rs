//! Writing a file whole or not at all: into a temporary file of this writer's own beside it, then renamed over it,
//! so a crash never leaves half a file and two writers of the same file never rename away each other's.

use std::path::Path;
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
