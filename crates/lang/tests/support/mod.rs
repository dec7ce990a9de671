//! Helpers shared by the language's integration tests: test data folders and rendered diagnostics (the loader
//! and snapshots come from `stratum-test-support`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

// Each test file uses its own part.
#[allow(unused_imports)]
pub(crate) use stratum_test_support::{DiskLoader, compare_snapshot};

/// Every diagnostic of a check, rendered without colour, one after another.
pub(crate) fn rendered_diagnostics(checked: &stratum_lang::Checked) -> String {
    checked.diagnostics.iter().map(|diagnostic| stratum_lang::render(diagnostic, &checked.sources, false)).collect()
}

pub(crate) fn test_data(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data").join(kind)
}

/// The `.stratum` files directly in a folder, sorted.
pub(crate) fn stratum_files(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", folder.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "stratum"))
        .collect();
    files.sort();
    files
}

/// The path relative to the crate, so snapshots do not depend on where the repository is checked out.
pub(crate) fn display_name(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path).to_string_lossy().into_owned()
}
