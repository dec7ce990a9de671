//! Helpers shared by the integration tests: a file-system loader for imports and snapshot comparison.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Reads imports from disk, relative to the importing file, like the `stratum` binary does.
pub struct DiskLoader;

impl stratum_lang::SourceLoader for DiskLoader {
    fn load(&self, importer: &str, path: &str) -> Result<(String, Vec<u8>), stratum_core::Cause> {
        let joined = Path::new(importer).parent().unwrap_or(Path::new("")).join(path);
        let name = normalize(&joined);
        std::fs::read(&name).map(|bytes| (name, bytes)).map_err(stratum_core::Cause::from)
    }
}

fn normalize(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                parts.pop();
            }
            other => parts.push(other.as_os_str().to_string_lossy().into_owned()),
        }
    }
    parts.join("/")
}

/// Every diagnostic of a check, rendered without colour, one after another.
pub fn rendered_diagnostics(checked: &stratum_lang::Checked) -> String {
    checked.diagnostics.iter().map(|diagnostic| stratum_lang::render(diagnostic, &checked.sources, false)).collect()
}

pub fn test_data(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data").join(kind)
}

/// The `.stratum` files directly in a folder, sorted.
pub fn stratum_files(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", folder.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "stratum"))
        .collect();
    files.sort();
    files
}

/// The path relative to the crate, so snapshots do not depend on where the repository is checked out.
pub fn display_name(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path).to_string_lossy().into_owned()
}

/// Compares `actual` with the snapshot file, or rewrites it when STRATUM_BLESS is set. Returns a failure message.
pub fn compare_snapshot(snapshot: &Path, actual: &str) -> Option<String> {
    if std::env::var_os("STRATUM_BLESS").is_some() {
        std::fs::write(snapshot, actual).unwrap();
        return None;
    }
    let expected = std::fs::read_to_string(snapshot).unwrap_or_default();
    if expected == actual {
        return None;
    }
    Some(format!(
        "snapshot {} differs (run with STRATUM_BLESS=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
        snapshot.display()
    ))
}
