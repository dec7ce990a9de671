//! Rules of the house that a linter does not check: every Rust file of the repository starts with a `//!` comment
//! that says what it is for.

use std::path::{Path, PathBuf};

fn rust_files(folder: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            // Build output and the fuzzer's corpus are not the project's source.
            if !matches!(name.as_str(), "target" | "corpus" | "artifacts" | ".git" | "node_modules") {
                rust_files(&path, found);
            }
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
}

#[test]
fn every_rust_file_says_what_it_is_for() {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for folder in ["crates", "fuzz", "bench"] {
        if repository.join(folder).is_dir() {
            rust_files(&repository.join(folder), &mut files);
        }
    }
    assert!(files.len() > 100, "the walk finds the sources ({} files)", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|file| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            !text.lines().next().is_some_and(|line| line.starts_with("//!"))
        })
        .map(|file| file.strip_prefix(&repository).unwrap_or(file).display().to_string())
        .collect();
    assert!(missing.is_empty(), "these files do not start with a `//!` comment saying what they are for: {missing:?}");
}
