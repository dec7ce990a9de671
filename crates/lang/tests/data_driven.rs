//! Data-driven tests: every file in test_data/ok checks clean and matches its IR snapshot (`.ir.json`); every
//! file in test_data/err matches its rendered diagnostics (`.diagnostics`). Run with STRATUM_BLESS=1 to rewrite
//! the snapshots, then review the diff.

mod support;

use std::collections::BTreeSet;
use stratum_lang::Code;
use support::*;

/// Runs the front end the way `stratum check` does, from the crate directory so names are relative.
fn check_file(path: &std::path::Path) -> stratum_lang::Checked {
    let bytes = std::fs::read(path).unwrap();
    let name = display_name(path);
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
    stratum_lang::check(&name, &bytes, &DiskLoader)
}

#[test]
fn ok_files_check_clean_and_match_their_ir() {
    let mut failures = Vec::new();
    let files = stratum_files(&test_data("ok"));
    assert!(files.len() >= 5, "expected the ok cases in test_data/ok");
    for path in files {
        let checked = check_file(&path);
        if !checked.diagnostics.is_empty() {
            let rendered = support::rendered_diagnostics(&checked);
            failures.push(format!("{} should be clean but has:\n{rendered}", path.display()));
            continue;
        }
        let ir = serde_json::to_string_pretty(&checked.application).unwrap() + "\n";
        failures.extend(compare_snapshot(&path.with_extension("ir.json"), &ir));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn err_files_match_their_diagnostics_and_cover_every_code() {
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    let files = stratum_files(&test_data("err"));
    for path in files {
        let checked = check_file(&path);
        if checked.diagnostics.is_empty() {
            failures.push(format!("{} should have diagnostics but is clean", path.display()));
            continue;
        }
        seen.extend(checked.diagnostics.iter().map(|diagnostic| diagnostic.code));
        let rendered: String = checked
            .diagnostics
            .iter()
            .map(|diagnostic| stratum_lang::render(diagnostic, &checked.sources, false) + "\n")
            .collect();
        failures.extend(compare_snapshot(&path.with_extension("diagnostics"), &rendered));
    }
    // Planner codes are covered by the planner's own test data, run-time codes by the CLI's tests.
    let missing: Vec<&str> = Code::ALL
        .iter()
        .filter(|code| !code.is_planner() && !code.is_runtime() && !seen.contains(code))
        .map(|code| code.as_str())
        .collect();
    assert!(missing.is_empty(), "no test_data/err case produces {missing:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn one_bad_line_does_not_hide_the_rest() {
    let checked = check_file(&test_data("err").join("syntax_error_recovers.stratum"));
    let codes: Vec<&str> = checked.diagnostics.iter().map(|diagnostic| diagnostic.code.as_str()).collect();
    // Two syntax errors (one per bad line) and nothing else: the attributes after them are still read.
    assert_eq!(codes, ["E0004", "E0004"], "{:#?}", checked.diagnostics);
    // Node `a` lost its cpu to the first error, so only `b` (whose bad disk is optional) and `c` are lowered.
    let nodes: Vec<&str> = checked.application.nodes.iter().map(|node| node.name.as_str()).collect();
    assert_eq!(nodes, ["b", "c"]);
}
