//! Examples are tested programs: every application under examples/ (a file with an `app` line) checks with
//! no diagnostics at all, and is already formatted.

mod support;

use std::path::{Path, PathBuf};

fn application_files(folder: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            application_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "stratum") {
            found.push(path);
        }
    }
}

#[test]
fn every_example_checks_clean_and_is_formatted() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files = Vec::new();
    application_files(&root, &mut files);
    files.sort();
    let applications: Vec<&PathBuf> = files
        .iter()
        .filter(|path| std::fs::read_to_string(path).unwrap().lines().any(|line| line.starts_with("app ")))
        .collect();
    assert!(applications.len() >= 3, "expected at least three example applications, found {applications:?}");
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        match stratum_lang::format::format(&text) {
            Ok(formatted) if formatted == text => {}
            Ok(_) => {
                failures.push(format!("{} is not formatted: run `stratum fmt {}`", path.display(), path.display()))
            }
            Err(_) => failures.push(format!("{} has syntax errors", path.display())),
        }
    }
    for path in applications {
        let checked = stratum_lang::check(&path.to_string_lossy(), &std::fs::read(path).unwrap(), &support::DiskLoader);
        if !checked.diagnostics.is_empty() {
            let rendered = support::rendered_diagnostics(&checked);
            failures.push(format!("{}:\n{rendered}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
