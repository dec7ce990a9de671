//! The model editor's back end: checks and plans the text being edited as if it were the application's file (its
//! imports read from the file's folder, and only from there), and says what applying it would change.

use crate::views::{CheckReport, DiagnosticView, HostPlan, PlanSummary};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use stratum_control::placement::definition;
use stratum_core::ir::Application;
use stratum_core::plan::Plan;
use stratum_lang::{Checked, Severity, SourceLoader};

/// Reads imports from the application's folder. A path that leads outside it is refused: the editor takes text
/// from the network, and must not turn into a way to read any file the server can.
struct FolderLoader {
    folder: PathBuf,
}

impl SourceLoader for FolderLoader {
    fn load(&self, importer: &str, path: &str) -> Result<(String, Vec<u8>), String> {
        let base = Path::new(importer).parent().unwrap_or(Path::new(""));
        let wanted = base.join(path);
        let resolved = wanted.canonicalize().map_err(|error| error.to_string())?;
        let folder = self.folder.canonicalize().map_err(|error| error.to_string())?;
        if !resolved.starts_with(&folder) {
            return Err(format!("the editor reads imports from {} only", folder.display()));
        }
        let bytes = std::fs::read(&resolved).map_err(|error| error.to_string())?;
        Ok((wanted.to_string_lossy().into_owned(), bytes))
    }
}

/// What checking (and, when it has no errors, planning) a text gave.
pub struct Edited {
    pub report: CheckReport,
    /// The checked application and its plan, when both exist.
    pub planned: Option<(Application, Plan)>,
}

/// Checks `text` as the content of `file` and plans it; `current` is what runs now, to compare with.
pub fn check_and_plan(file: &Path, text: &str, current: Option<(&Application, &Plan)>) -> Edited {
    // A file named without a folder is in the working directory.
    let folder = file.parent().filter(|folder| !folder.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let folder = folder.to_path_buf();
    let name = file.to_string_lossy().into_owned();
    let checked = stratum_lang::check(&name, text.as_bytes(), &FolderLoader { folder });
    let mut diagnostics = diagnostics_of(&checked, &checked.diagnostics);
    let mut planned = None;
    let mut plan_summary = None;
    if !checked.has_errors() {
        let result = stratum_planner::plan(&checked);
        diagnostics.extend(diagnostics_of(&checked, &result.diagnostics));
        if let Some(plan) = result.plan {
            plan_summary = Some(summary_of(&plan, result.optimal));
            planned = Some((checked.application.clone(), plan));
        }
    }
    let errors = diagnostics.iter().filter(|diagnostic| diagnostic.severity == "error").count();
    let changes = match (&planned, current) {
        (Some((application, plan)), Some((running, running_plan))) => changes(running, running_plan, application, plan),
        _ => Vec::new(),
    };
    Edited {
        report: CheckReport {
            ok: errors == 0 && planned.is_some(),
            errors,
            warnings: diagnostics.len() - errors,
            diagnostics,
            plan: plan_summary,
            changes,
        },
        planned,
    }
}

fn diagnostics_of(checked: &Checked, diagnostics: &[stratum_lang::Diagnostic]) -> Vec<DiagnosticView> {
    diagnostics
        .iter()
        .map(|diagnostic| {
            let json = diagnostic.to_json(&checked.sources);
            DiagnosticView {
                code: json.code.to_string(),
                severity: match json.severity {
                    Severity::Error => "error",
                    _ => "warning",
                }
                .to_string(),
                file: json.file,
                line: json.line,
                column: json.column,
                end_line: json.end_line,
                end_column: json.end_column,
                message: json.message,
                label: json.label,
                help: json.help,
            }
        })
        .collect()
}

fn summary_of(plan: &Plan, optimal: bool) -> PlanSummary {
    let hosts = plan
        .hosts
        .iter()
        .filter(|host| host.in_use)
        .map(|host| {
            let components: BTreeSet<String> = plan
                .assignments
                .iter()
                .filter(|assignment| assignment.host == host.host)
                .map(|assignment| assignment.component.clone())
                .collect();
            HostPlan {
                host: host.host.clone(),
                tier: host.tier.name().to_string(),
                cpu_used: host.cpu_used,
                cpu_capacity: host.cpu_capacity,
                components: components.into_iter().collect(),
            }
        })
        .collect();
    PlanSummary { hosts, optimal }
}

/// Where each component runs, by name: its hosts.
fn hosts_by_component(plan: &Plan) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut hosts: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for assignment in &plan.assignments {
        hosts.entry(&assignment.component).or_default().insert(&assignment.host);
    }
    hosts
}

/// What applying `next` in place of `running` changes, one sentence per component, in name order.
pub fn changes(running: &Application, running_plan: &Plan, next: &Application, next_plan: &Plan) -> Vec<String> {
    let before = hosts_by_component(running_plan);
    let after = hosts_by_component(next_plan);
    let names: BTreeSet<&str> = before.keys().chain(after.keys()).copied().collect();
    let list = |hosts: &BTreeSet<&str>| hosts.iter().copied().collect::<Vec<_>>().join(", ");
    let mut changes = Vec::new();
    for name in names {
        match (before.get(name), after.get(name)) {
            (None, Some(hosts)) => changes.push(format!("`{name}` is added on {}", list(hosts))),
            (Some(hosts), None) => changes.push(format!("`{name}` is removed from {}", list(hosts))),
            (Some(old), Some(new)) => {
                if old != new {
                    changes.push(format!("`{name}` moves from {} to {}", list(old), list(new)));
                }
                if definition(running, name) != definition(next, name) {
                    changes.push(format!("`{name}` changes"));
                }
            }
            (None, None) => {}
        }
    }
    changes
}
