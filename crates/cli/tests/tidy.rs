//! Rules of the house that a linter does not check: every Rust file of the repository starts with a `//!` comment
//! that says what it is for, no crate's top-level modules import each other in a circle, and an error becomes a
//! message only with its causes.

use std::collections::{BTreeMap, BTreeSet};
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

/// An error turned into text with `to_string()` loses its causes: code outside tests says it with
/// `stratum_core::error_chain`, or gives the reason in a comment on the line before.
#[test]
fn errors_become_messages_with_their_causes() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&crates).unwrap() {
        let source = entry.unwrap().path().join("src");
        if source.is_dir() {
            rust_files(&source, &mut files);
        }
    }
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        // Tests assert on messages: the rule is for the code they test.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let lines: Vec<&str> = code.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            let said = ["error.to_string()", "failure.to_string()", "cause.to_string()"]
                .iter()
                .any(|pattern| line.contains(pattern));
            let reason = index > 0 && lines[index - 1].trim_start().starts_with("//");
            if said && !reason {
                found.push(format!("{}:{}", file.strip_prefix(&crates).unwrap_or(file).display(), index + 1));
            }
        }
    }
    assert!(files.len() > 100, "the walk finds the sources ({} files)", files.len());
    assert!(found.is_empty(), "an error's text without its causes (use stratum_core::error_chain): {found:?}");
}

/// The top-level modules of one crate that each top-level module names through `crate::…`, outside comments and
/// test modules.
fn module_imports(source: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(source, &mut files);
    let top_of = |file: &Path| -> Option<String> {
        let relative = file.strip_prefix(source).ok()?;
        let first = relative.components().next()?.as_os_str().to_string_lossy().into_owned();
        let name = first.trim_end_matches(".rs").to_string();
        (!matches!(name.as_str(), "lib" | "main" | "bin")).then_some(name)
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|file| top_of(file)).collect();
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(module) = top_of(file) else { continue };
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: String =
            code.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        let mut named = BTreeSet::new();
        for (index, _) in code.match_indices("crate::") {
            let rest = &code[index + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a, b::c};`: every first segment in the braces.
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for item in group.split(',') {
                    named.insert(item.trim().split("::").next().unwrap_or_default().to_string());
                }
            } else {
                named.insert(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
            }
        }
        let entry = imports.entry(module.clone()).or_default();
        entry.extend(named.into_iter().filter(|name| *name != module && modules.contains(name)));
    }
    imports
}

/// A circle through `start`, if its imports lead back to it.
fn circle_from(start: &str, imports: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((module, path)) = stack.pop() {
        for next in imports.get(&module).into_iter().flatten() {
            if next == start {
                return Some(path.clone());
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_crate_has_modules_that_import_each_other_in_a_circle() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut circles = Vec::new();
    let mut modules = 0;
    for entry in std::fs::read_dir(&crates).unwrap() {
        let source = entry.unwrap().path().join("src");
        if !source.is_dir() {
            continue;
        }
        let imports = module_imports(&source);
        modules += imports.len();
        let mut reported = BTreeSet::new();
        for module in imports.keys() {
            if let Some(circle) = circle_from(module, &imports)
                && circle.iter().all(|member| reported.insert(member.clone()))
            {
                let name = source.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
                circles.push(format!("{name}: {} -> {}", circle.join(" -> "), circle[0]));
            }
        }
    }
    assert!(modules > 50, "the walk finds the modules ({modules})");
    assert!(
        circles.is_empty(),
        "these modules import each other in a circle; move what both need into a module of its own: {circles:#?}"
    );
}

#[test]
fn the_circle_check_finds_a_circle() {
    let imports: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
        ("d".to_string(), BTreeSet::from(["a".to_string()])),
    ]
    .into();
    assert_eq!(circle_from("a", &imports), Some(vec!["a".to_string(), "b".to_string(), "c".to_string()]));
    assert_eq!(circle_from("d", &imports), None);
}
