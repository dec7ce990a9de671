//! The model editor's back end: checks and plans the text being edited as if it were the application's file (its
//! imports sent with it, or read from the file's folder, and only from there), says what applying it would
//! change, and writes an applied version's files.

use crate::views::{CheckReport, DiagnosticView, HostPlan, PlanSummary};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use stratum_control::files::write_whole;
use stratum_control::placement::Index;
use stratum_core::Cause;
use stratum_core::ir::Application;
use stratum_core::plan::Plan;
use stratum_lang::{Checked, Severity, SourceLoader};

/// Reads imports from the files sent with the text, then from the application's folder. A path that leads
/// outside the folder is refused: the editor takes text from the network, and must not turn into a way to read
/// any file the server can.
struct FolderLoader<'a> {
    folder: PathBuf,
    /// Files sent with the text, by their path relative to the folder.
    files: &'a BTreeMap<String, String>,
}

impl SourceLoader for FolderLoader<'_> {
    fn load(&self, importer: &str, path: &str) -> Result<(String, Vec<u8>), Cause> {
        let base = Path::new(importer).parent().unwrap_or(Path::new(""));
        let wanted = base.join(path);
        // Under a folder of `.` (a file named without one), names carry no folder to strip.
        let relative = relative_name(wanted.strip_prefix(&self.folder).unwrap_or(&wanted));
        if let Some(text) = relative.and_then(|relative| self.files.get(&relative)) {
            return Ok((wanted.to_string_lossy().into_owned(), text.clone().into_bytes()));
        }
        let resolved = wanted.canonicalize()?;
        let folder = self.folder.canonicalize()?;
        if !resolved.starts_with(&folder) {
            return Err(format!("the editor reads imports from {} only", folder.display()).into());
        }
        let bytes = std::fs::read(&resolved)?;
        Ok((wanted.to_string_lossy().into_owned(), bytes))
    }
}

/// What checking (and, when it has no errors, planning) a text gave.
pub(crate) struct Edited {
    pub report: CheckReport,
    /// The checked application and its plan, when both exist.
    pub planned: Option<(Application, Plan)>,
}

/// A path inside a folder as `a/b.stratum`, if it stays inside (no `..`, not absolute).
fn relative_name(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            std::path::Component::Normal(part) => parts.push(part.to_str()?.to_string()),
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Whether every file sent with a text may be written beside `file`: a relative path inside its folder, and not
/// the file itself.
pub(crate) fn check_file_names(file: &Path, files: &BTreeMap<String, String>) -> Result<(), String> {
    let own = file.file_name().and_then(|name| name.to_str()).unwrap_or_default();
    let folder = file.parent().unwrap_or(Path::new(""));
    for name in files.keys() {
        if name.chars().any(char::is_control) {
            return Err(format!("`{}` has a control character in its name", name.escape_debug()));
        }
        match relative_name(Path::new(name)) {
            Some(relative) if relative != own => {}
            _ => {
                return Err(format!(
                    "`{name}` is not a file beside the application's (a relative path inside its folder)"
                ));
            }
        }
        // A symbolic link inside the folder would let a write land outside it.
        let mut path = folder.to_path_buf();
        for part in Path::new(name).components() {
            path.push(part);
            if std::fs::symlink_metadata(&path).is_ok_and(|metadata| metadata.file_type().is_symlink()) {
                return Err(format!("`{name}` goes through a symbolic link in the application's folder"));
            }
        }
    }
    Ok(())
}

/// Writes an applied version: each file sent with it beside `file`, then `file` itself, each whole or not at all.
pub(crate) fn write_sources(file: &Path, source: &str, files: &BTreeMap<String, String>) -> std::io::Result<()> {
    let folder = file.parent().unwrap_or(Path::new(""));
    for (name, text) in files {
        write_whole(&folder.join(name), text.as_bytes())?;
    }
    write_whole(file, source.as_bytes())
}

/// Checks `text` as the content of `file` (importing `files` where given) and plans it; `current` is what runs
/// now, to compare with.
pub(crate) fn check_and_plan(
    file: &Path,
    text: &str,
    files: &BTreeMap<String, String>,
    current: Option<(&Application, &Plan)>,
) -> Edited {
    // A file named without a folder is in the working directory.
    let folder = file.parent().filter(|folder| !folder.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let folder = folder.to_path_buf();
    let name = file.to_string_lossy().into_owned();
    let checked = stratum_lang::check(&name, text.as_bytes(), &FolderLoader { folder, files });
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
    let errors = diagnostics.iter().filter(|diagnostic| diagnostic.severity == Severity::Error).count();
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
                code: json.code,
                severity: json.severity,
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
pub(crate) fn changes(running: &Application, running_plan: &Plan, next: &Application, next_plan: &Plan) -> Vec<String> {
    let before = hosts_by_component(running_plan);
    let after = hosts_by_component(next_plan);
    let names: BTreeSet<&str> = before.keys().chain(after.keys()).copied().collect();
    let list = |hosts: &BTreeSet<&str>| hosts.iter().copied().collect::<Vec<_>>().join(", ");
    let (running_index, next_index) = (Index::of(running), Index::of(next));
    let mut changes = Vec::new();
    for name in names {
        match (before.get(name), after.get(name)) {
            (None, Some(hosts)) => changes.push(format!("`{name}` is added on {}", list(hosts))),
            (Some(hosts), None) => changes.push(format!("`{name}` is removed from {}", list(hosts))),
            (Some(old), Some(new)) => {
                if old != new {
                    changes.push(format!("`{name}` moves from {} to {}", list(old), list(new)));
                }
                if running_index.definition(name) != next_index.definition(name) {
                    changes.push(format!("`{name}` changes"));
                }
            }
            (None, None) => {}
        }
    }
    // Policies are not components, but what they do changes how the application runs.
    let policy = |application: &Application, name: &str| {
        application.policies.iter().find(|policy| policy.name == name).map(|policy| format!("{policy:?}"))
    };
    let policies: BTreeSet<&str> =
        running.policies.iter().chain(&next.policies).map(|policy| policy.name.as_str()).collect();
    for name in policies {
        match (policy(running, name), policy(next, name)) {
            (None, Some(_)) => changes.push(format!("policy `{name}` is added")),
            (Some(_), None) => changes.push(format!("policy `{name}` is removed")),
            (Some(old), Some(new)) if old != new => changes.push(format!("policy `{name}` changes")),
            _ => {}
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::check_file_names;
    use std::collections::BTreeMap;

    #[test]
    fn files_sent_with_an_application_stay_inside_its_folder() {
        let folder = tempfile::tempdir().unwrap();
        let file = folder.path().join("app.stratum");
        let names = |name: &str| BTreeMap::from([(name.to_string(), String::new())]);
        assert!(check_file_names(&file, &names("shared.stratum")).is_ok());
        assert!(check_file_names(&file, &names("lib/shared.stratum")).is_ok());
        assert!(check_file_names(&file, &names("../outside.stratum")).is_err());
        assert!(check_file_names(&file, &names("/etc/outside.stratum")).is_err());
        let nul = check_file_names(&file, &names("a\0b.stratum")).unwrap_err();
        assert!(nul.contains("control character"), "{nul}");
        // A folder inside that is a link to elsewhere is refused, and so is a file that is one.
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), folder.path().join("lib")).unwrap();
        let linked = check_file_names(&file, &names("lib/shared.stratum")).unwrap_err();
        assert!(linked.contains("symbolic link"), "{linked}");
        std::os::unix::fs::symlink(elsewhere.path().join("x"), folder.path().join("x.stratum")).unwrap();
        assert!(check_file_names(&file, &names("x.stratum")).is_err());
    }
}
