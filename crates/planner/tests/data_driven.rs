//! Data-driven planner tests: every file in test_data/ok plans and matches its rendered plan (`.plan`); every
//! file in test_data/err fails to plan and matches its diagnostics (`.diagnostics`). The examples under
//! examples/ all plan, and the explanation of every planner code holds. STRATUM_BLESS=1 rewrites snapshots.

use std::path::{Path, PathBuf};
use stratum_lang::Code;
use stratum_test_support::{DiskLoader as Loader, compare_snapshot as compare};

fn files(kind: &str) -> Vec<PathBuf> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "stratum"))
        .collect();
    files.sort();
    files
}

fn checked(path: &Path) -> stratum_lang::Checked {
    let name = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path).to_string_lossy().into_owned();
    let checked = stratum_lang::check(&name, &std::fs::read(path).unwrap(), &stratum_lang::NoImports);
    assert!(!checked.has_errors(), "{} must check cleanly: {:?}", path.display(), checked.diagnostics.first());
    checked
}

#[test]
fn ok_files_plan_and_match_their_snapshots() {
    let mut failures = Vec::new();
    for path in files("ok") {
        let checked = checked(&path);
        let planned = stratum_planner::plan(&checked);
        match &planned.plan {
            Some(plan) => {
                failures.extend(compare(&path.with_extension("plan"), &stratum_planner::render(plan, planned.optimal)))
            }
            None => failures.push(format!("{} should plan but: {:?}", path.display(), planned.diagnostics)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn err_files_fail_with_their_diagnostics_and_cover_every_planner_code() {
    let mut failures = Vec::new();
    let mut seen = Vec::new();
    for path in files("err") {
        let checked = checked(&path);
        let planned = stratum_planner::plan(&checked);
        if planned.plan.is_some() || planned.diagnostics.is_empty() {
            failures.push(format!("{} should fail to plan", path.display()));
            continue;
        }
        seen.extend(planned.diagnostics.iter().map(|diagnostic| diagnostic.code));
        let rendered: String = planned
            .diagnostics
            .iter()
            .map(|diagnostic| stratum_lang::render(diagnostic, &checked.sources, false) + "\n")
            .collect();
        failures.extend(compare(&path.with_extension("diagnostics"), &rendered));
    }
    let missing: Vec<&str> =
        Code::ALL.iter().filter(|code| code.is_planner() && !seen.contains(code)).map(|code| code.as_str()).collect();
    assert!(missing.is_empty(), "no planner test case produces {missing:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn planner_code_explanations_hold() {
    for code in Code::ALL.iter().filter(|code| code.is_planner()) {
        let explanation = code.explanation();
        let wrong = stratum_lang::check_text("wrong.stratum", explanation.wrong);
        let codes: Vec<Code> =
            stratum_planner::plan(&wrong).diagnostics.iter().map(|diagnostic| diagnostic.code).collect();
        assert!(codes.contains(code), "{}: the wrong example gives {codes:?}", code.as_str());
        let right = stratum_lang::check_text("right.stratum", explanation.right);
        let planned = stratum_planner::plan(&right);
        assert!(
            planned.plan.is_some(),
            "{}: the right example does not plan: {:?}",
            code.as_str(),
            planned.diagnostics
        );
    }
}

#[test]
fn every_example_plans() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for application in
        ["traffic/traffic.stratum", "predictive_maintenance/factory.stratum", "energy/substations.stratum"]
    {
        let path = root.join(application);
        let checked = stratum_lang::check(&path.to_string_lossy(), &std::fs::read(&path).unwrap(), &Loader);
        let planned = stratum_planner::plan(&checked);
        assert!(planned.plan.is_some(), "{application} does not plan: {:?}", planned.diagnostics);
    }
}

#[test]
fn a_plan_round_trips_through_json_and_diffs_against_itself_as_unchanged() {
    let path = files("ok").into_iter().next().expect("an ok case");
    let plan = stratum_planner::plan(&checked(&path)).plan.unwrap();
    let json = serde_json::to_string(&plan).unwrap();
    let back: stratum_core::plan::Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan);
    let changes = stratum_planner::diff(&back, &plan);
    assert!(changes.is_empty());
    assert_eq!(changes.unchanged, plan.assignments.len());
}
