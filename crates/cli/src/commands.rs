//! The subcommands: `check`, `fmt`, `explain`, `plan` and `generate`.

use crate::Outcome;
use crate::loader::{FileLoader, normalize};
use crate::output::{ColorChoice, Format, counts, describe_counts};
use anyhow::Context;
use serde_json::json;
use std::path::{Path, PathBuf};
use stratum_lang::{Code, Severity};

#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    /// The .stratum file to check.
    file: PathBuf,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Print the checked model instead of a summary: `ir` prints the versioned IR as JSON.
    #[arg(long, value_name = "WHAT", value_parser = ["ir"])]
    emit: Option<String>,
    /// Print the inferred schema of a source, stream, sink, dataset or schema.
    #[arg(long, value_name = "NAME")]
    explain_schema: Option<String>,
}

#[derive(clap::Args)]
pub(crate) struct FmtArgs {
    /// The files to format in place.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Change nothing; exit with 1 if a file is not formatted.
    #[arg(long)]
    check: bool,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

#[derive(clap::Args)]
pub(crate) struct ExplainArgs {
    /// A diagnostic code such as E0102; without one, every code is listed.
    code: Option<String>,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))
}

pub(crate) fn check(args: CheckArgs, color: ColorChoice) -> anyhow::Result<Outcome> {
    let bytes = read(&args.file)?;
    let name = normalize(&args.file).to_string_lossy().into_owned();
    let checked = stratum_lang::check(&name, &bytes, &FileLoader);
    let errors = checked.diagnostics.iter().filter(|diagnostic| diagnostic.severity() == Severity::Error).count();
    let warnings = checked.diagnostics.len() - errors;
    let application = &checked.application;

    match args.format {
        Format::Json if args.emit.is_none() => {
            let diagnostics: Vec<_> =
                checked.diagnostics.iter().map(|diagnostic| diagnostic.to_json(&checked.sources)).collect();
            let summary: serde_json::Map<String, serde_json::Value> =
                counts(application).into_iter().map(|(kind, count)| (kind.to_string(), json!(count))).collect();
            let mut report = json!({
                "file": name,
                "app": application.name,
                "ok": errors == 0,
                "errors": errors,
                "warnings": warnings,
                "diagnostics": diagnostics,
                "summary": summary,
            });
            if let Some(wanted) = &args.explain_schema {
                report["schema"] = json!({ "name": wanted, "fields": schema_of(application, wanted) });
            }
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        _ => {
            let color = color.for_stderr();
            for diagnostic in &checked.diagnostics {
                eprintln!("{}", stratum_lang::render(diagnostic, &checked.sources, color));
            }
            if errors > 0 {
                eprintln!("error: `{name}` has {}", plural(errors, "error") + &warnings_suffix(warnings));
            } else if args.emit.is_some() {
                println!("{}", serde_json::to_string_pretty(application)?);
            } else if let Some(wanted) = &args.explain_schema {
                match schema_of(application, wanted) {
                    Some(fields) => println!("{wanted} {}", stratum_core::types::describe_fields(&fields)),
                    None => {
                        anyhow::bail!("`{wanted}` is not a source, stream, sink, dataset or schema of `{name}`");
                    }
                }
            } else {
                let title = application.title.as_deref().map(|title| format!(" ({title})")).unwrap_or_default();
                println!("checked `{name}`: app `{}`{title}", application.name);
                let counts = describe_counts(application);
                if !counts.is_empty() {
                    println!("  {counts}");
                }
                println!(
                    "  {}",
                    if warnings == 0 { "no problems found".to_string() } else { plural(warnings, "warning") }
                );
            }
        }
    }
    if let Some(wanted) = &args.explain_schema
        && errors == 0
        && schema_of(application, wanted).is_none()
    {
        return Ok(Outcome::UserError);
    }
    Ok(if errors > 0 { Outcome::UserError } else { Outcome::Success })
}

/// The fields of any named thing that has a schema.
fn schema_of(application: &stratum_core::ir::Application, name: &str) -> Option<Vec<stratum_core::types::Field>> {
    application
        .fields_of(name)
        .map(<[_]>::to_vec)
        .or_else(|| application.schemas.iter().find(|schema| schema.name == name).map(|schema| schema.fields.clone()))
}

fn plural(count: usize, word: &str) -> String {
    if count == 1 { format!("1 {word}") } else { format!("{count} {word}s") }
}

fn warnings_suffix(warnings: usize) -> String {
    if warnings == 0 { String::new() } else { format!(" and {}", plural(warnings, "warning")) }
}

pub(crate) fn fmt(args: FmtArgs, color: ColorChoice) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::Success;
    let mut results = Vec::new();
    for path in &args.files {
        let bytes = read(path)?;
        let name = path.display().to_string();
        // A file that is not UTF-8 is refused as `check` refuses it: rewriting it would replace the bytes it does
        // not understand, and the result would check clean.
        let Ok(text) = std::str::from_utf8(&bytes) else {
            let checked = stratum_lang::check(&name, &bytes, &stratum_lang::NoImports);
            for diagnostic in checked.diagnostics.iter().filter(|diagnostic| diagnostic.code == Code::InvalidCharacter)
            {
                eprintln!("{}", stratum_lang::render(diagnostic, &checked.sources, color.for_stderr()));
            }
            eprintln!("error: `{name}` is not UTF-8; it was not formatted");
            results.push(json!({ "file": name, "formatted": false, "error": "not UTF-8" }));
            outcome = Outcome::UserError;
            continue;
        };
        let formatted = match stratum_lang::format::format(text) {
            Ok(formatted) => formatted,
            Err(diagnostics) => {
                let checked = stratum_lang::check(&name, &bytes, &stratum_lang::NoImports);
                for diagnostic in diagnostics {
                    eprintln!("{}", stratum_lang::render(&diagnostic, &checked.sources, color.for_stderr()));
                }
                eprintln!("error: `{name}` has syntax errors; it was not formatted");
                results.push(json!({ "file": name, "formatted": false, "error": "syntax errors" }));
                outcome = Outcome::UserError;
                continue;
            }
        };
        let changed = formatted != text;
        results.push(json!({ "file": name, "changed": changed }));
        if args.check {
            if changed {
                if args.format == Format::Human {
                    println!("would reformat `{name}`");
                }
                outcome = Outcome::UserError;
            }
        } else if changed {
            std::fs::write(path, formatted).with_context(|| format!("cannot write `{name}`"))?;
            if args.format == Format::Human {
                println!("formatted `{name}`");
            }
        }
    }
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&json!({ "files": results }))?);
    }
    Ok(outcome)
}

pub(crate) fn explain(args: ExplainArgs) -> anyhow::Result<Outcome> {
    let Some(code_text) = args.code else {
        match args.format {
            Format::Json => {
                let all: Vec<_> = Code::ALL
                    .iter()
                    .map(|code| json!({ "code": code.as_str(), "title": code.explanation().title }))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            }
            Format::Human => {
                for code in Code::ALL {
                    println!("{}  {}", code.as_str(), code.explanation().title);
                }
            }
        }
        return Ok(Outcome::Success);
    };
    let Some(code) = Code::parse(&code_text) else {
        anyhow::bail!("`{code_text}` is not a Stratum diagnostic code; `stratum explain` lists them all");
    };
    let explanation = code.explanation();
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "code": code.as_str(),
                "severity": code.severity(),
                "title": explanation.title,
                "explanation": explanation.text,
                "wrong": explanation.wrong,
                "right": explanation.right,
            }))?
        ),
        Format::Human => {
            println!("{}: {}\n", code.as_str(), explanation.title);
            println!("{}\n", wrap(explanation.text, 100));
            println!("Wrong:\n");
            for line in explanation.wrong.lines() {
                println!("    {line}");
            }
            println!("\nRight:\n");
            for line in explanation.right.lines() {
                println!("    {line}");
            }
        }
    }
    Ok(Outcome::Success)
}

/// Wraps prose at word boundaries.
fn wrap(text: &str, width: usize) -> String {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines.join("\n")
}

#[derive(clap::Args)]
pub(crate) struct PlanArgs {
    /// The .stratum file to plan.
    file: PathBuf,
    /// How to print the plan: a table, or the versioned Plan as JSON.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Show every machine considered for a component: the constraint that ruled it out, or its score.
    #[arg(long, value_name = "COMPONENT")]
    explain: Option<String>,
    /// Show what would be added, moved and removed compared with a previous plan (JSON from `--format json`).
    #[arg(long, value_name = "OLD.json")]
    diff: Option<PathBuf>,
}

/// Checks a file and prints its diagnostics; returns the result only when it has no errors.
pub(crate) fn checked_without_errors(file: &Path, color: ColorChoice) -> anyhow::Result<Option<stratum_lang::Checked>> {
    let bytes = read(file)?;
    let name = normalize(file).to_string_lossy().into_owned();
    let checked = stratum_lang::check(&name, &bytes, &FileLoader);
    for diagnostic in &checked.diagnostics {
        eprintln!("{}", stratum_lang::render(diagnostic, &checked.sources, color.for_stderr()));
    }
    if checked.has_errors() {
        let errors = checked.diagnostics.iter().filter(|diagnostic| diagnostic.severity() == Severity::Error).count();
        eprintln!("error: `{name}` has {}; fix them before planning", plural(errors, "error"));
        return Ok(None);
    }
    Ok(Some(checked))
}

/// Plans a checked application, printing why when it cannot be placed. Returns the plan and whether it is optimal.
pub(crate) fn planned_or_report(
    checked: &stratum_lang::Checked,
    file: &Path,
    color: ColorChoice,
) -> Option<(stratum_core::plan::Plan, bool)> {
    let planned = stratum_planner::plan(checked);
    for diagnostic in &planned.diagnostics {
        eprintln!("{}", stratum_lang::render(diagnostic, &checked.sources, color.for_stderr()));
    }
    if planned.plan.is_none() {
        eprintln!("error: `{}` cannot be placed", file.display());
    }
    planned.plan.map(|plan| (plan, planned.optimal))
}

pub(crate) fn plan(args: PlanArgs, color: ColorChoice) -> anyhow::Result<Outcome> {
    let Some(checked) = checked_without_errors(&args.file, color)? else { return Ok(Outcome::UserError) };
    if let Some(component) = &args.explain {
        let Some(candidates) = stratum_planner::explain(&checked, component) else {
            eprintln!(
                "error: `{component}` is not a placed component, or the application cannot be planned (run `stratum plan` without --explain)"
            );
            return Ok(Outcome::UserError);
        };
        match args.format {
            Format::Json => {
                let rows: Vec<_> = candidates
                    .iter()
                    .map(|candidate| match &candidate.verdict {
                        Ok(score) => json!({ "host": candidate.host, "tier": candidate.tier, "score": score, "chosen": candidate.chosen }),
                        Err(reason) => json!({ "host": candidate.host, "tier": candidate.tier, "ruled_out": reason }),
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&json!({ "component": component, "candidates": rows }))?);
            }
            Format::Human => {
                println!("machines for `{component}` (lower score is better):");
                for candidate in candidates {
                    let marker = if candidate.chosen { "→" } else { " " };
                    match candidate.verdict {
                        Ok(score) => println!(
                            "{marker} {:<22} {:<6} score {}",
                            candidate.host,
                            candidate.tier.name(),
                            stratum_core::units::trim_number(score)
                        ),
                        Err(reason) => {
                            println!("{marker} {:<22} {:<6} ruled out: {reason}", candidate.host, candidate.tier.name())
                        }
                    }
                }
            }
        }
        return Ok(Outcome::Success);
    }
    let Some((plan, optimal)) = planned_or_report(&checked, &args.file, color) else { return Ok(Outcome::UserError) };
    if let Some(old_path) = &args.diff {
        let old: stratum_core::plan::Plan = serde_json::from_slice(&read(old_path)?).with_context(|| {
            format!("`{}` is not a plan written by `stratum plan --format json`", old_path.display())
        })?;
        let changes = stratum_planner::diff(&old, &plan);
        match args.format {
            Format::Json => println!("{}", serde_json::to_string_pretty(&changes)?),
            Format::Human => {
                for change in &changes.added {
                    println!("+ {}#{} on {}", change.component, change.instance, change.to.as_deref().unwrap_or("?"));
                }
                for change in &changes.moved {
                    println!(
                        "~ {}#{} moves from {} to {}",
                        change.component,
                        change.instance,
                        change.from.as_deref().unwrap_or("?"),
                        change.to.as_deref().unwrap_or("?")
                    );
                }
                for change in &changes.removed {
                    println!(
                        "- {}#{} leaves {}",
                        change.component,
                        change.instance,
                        change.from.as_deref().unwrap_or("?")
                    );
                }
                println!("{} unchanged", changes.unchanged);
            }
        }
        return Ok(Outcome::Success);
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
        Format::Human => print!("{}", stratum_planner::render(&plan, optimal)),
    }
    Ok(Outcome::Success)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Target {
    /// Kubernetes manifests: the control plane, one agent per node (edge nodes as KubeEdge labels them).
    Kubernetes,
    /// A compose project: the control plane and one agent container per machine, on a network per tier.
    Compose,
    /// An Ansible inventory and playbook: the control plane on a control host, an agent on every node.
    Ansible,
    /// A Jupyter notebook that reproduces one model block in pandas and scikit-learn (`--model`; `-o` is the
    /// .ipynb file).
    Notebook,
}

#[derive(clap::Args)]
pub(crate) struct GenerateArgs {
    /// What to generate.
    #[arg(value_enum)]
    target: Target,
    /// The .stratum file to plan and generate for.
    file: PathBuf,
    /// The directory to write into (created if missing; files of the same name are replaced); for a notebook, the
    /// .ipynb file.
    #[arg(short, long, value_name = "PATH")]
    output: PathBuf,
    /// The model block a notebook reproduces.
    #[arg(long, required_if_eq("target", "notebook"))]
    model: Option<String>,
    /// For Kubernetes: keep the control plane's state in this PostgreSQL store
    /// (`postgres://USER:PASSWORD@HOST:5432/DB`, kept in the Secret) and run two replicas of it, one leading.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// How to print the list of files written.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

pub(crate) fn generate(args: GenerateArgs, color: ColorChoice) -> anyhow::Result<Outcome> {
    let Some(checked) = checked_without_errors(&args.file, color)? else { return Ok(Outcome::UserError) };
    let name = match args.target {
        Target::Kubernetes => "kubernetes",
        Target::Compose => "compose",
        Target::Ansible => "ansible",
        // A notebook reproduces one model block; it needs no plan.
        Target::Notebook => return generate_notebook(&args, &checked.application),
    };
    if args.store.is_some() && name != "kubernetes" {
        eprintln!(
            "error: --store is for `generate kubernetes`; for {name}, start `stratum server --store URL` on two \
             machines by hand (docs/deploy.md, \"Replicas on PostgreSQL\")"
        );
        return Ok(Outcome::UserError);
    }
    let Some((plan, _)) = planned_or_report(&checked, &args.file, color) else { return Ok(Outcome::UserError) };
    let backend = stratum_planner::generate::backend(name).context("every target has a backend")?;
    let files = match application_files(&checked, &args.file) {
        Ok(files) => files,
        Err(message) => {
            anyhow::bail!("{message}");
        }
    };
    let root = args.file.file_name().map_or_else(|| "app.stratum".to_string(), |name| name.to_string_lossy().into());
    let source = std::fs::read_to_string(&args.file)?;
    let files: Vec<(String, String)> = std::iter::once((root, source)).chain(files).collect();
    let tokens = stratum_api::Tokens::random()?;
    let secrets = stratum_planner::generate::Secrets {
        operator: tokens.operator,
        viewer: tokens.viewer,
        join: stratum_api::Tokens::random()?.operator,
        store: args.store.clone(),
    };
    let input = stratum_planner::generate::Input {
        application: &checked.application,
        plan: &plan,
        files: &files,
        secrets: &secrets,
    };
    let generated = backend.generate(&input)?;
    // The cluster's tokens are made once: generating again keeps every secrets file that is there, so that
    // running machines and the files agree.
    let keep_secrets = generated.iter().any(|file| file.secret && args.output.join(&file.path).exists());
    if keep_secrets && args.store.is_some() {
        eprintln!(
            "note: the secrets file from before is kept (the cluster's tokens stay): add STRATUM_STORE, the store's \
             address, to it by hand if it has none"
        );
    }
    let mut written = Vec::new();
    for file in &generated {
        let path = args.output.join(&file.path);
        if file.secret && keep_secrets {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create `{}`", parent.display()))?;
        }
        std::fs::write(&path, &file.contents).with_context(|| format!("cannot write `{}`", path.display()))?;
        if file.secret {
            restrict_to_owner(&path)?;
        }
        written.push(path.display().to_string());
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&json!({ "target": name, "files": written }))?),
        Format::Human => {
            println!("wrote {} for `{}`:", backend.description(), checked.application.name);
            for path in written {
                println!("  {path}");
            }
        }
    }
    Ok(Outcome::Success)
}

/// A file of secrets is readable by its owner only.
fn restrict_to_owner(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict `{}` to its owner", path.display()))
}

/// The files an application imports, by their path relative to its folder (where a control plane keeps them);
/// an import from outside the folder is an error that says what to do.
pub(crate) fn application_files(
    checked: &stratum_lang::Checked,
    file: &Path,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let folder = normalize(file.parent().unwrap_or(Path::new("")));
    let mut files = std::collections::BTreeMap::new();
    for (id, imported) in checked.sources.files() {
        if id == checked.root {
            continue;
        }
        match Path::new(&imported.name).strip_prefix(&folder) {
            Ok(relative) => {
                files.insert(relative.to_string_lossy().replace('\\', "/"), imported.text.clone());
            }
            Err(_) => {
                return Err(format!(
                    "`{}` imports {}, outside its folder; a control plane keeps an application's files in one \
                     folder: move it beside the application",
                    file.display(),
                    imported.name
                ));
            }
        }
    }
    Ok(files)
}

/// Writes the notebook for `--model`, reading the data from where the notebook can find it: relative to the
/// notebook when the data lies under its folder, absolute otherwise.
fn generate_notebook(args: &GenerateArgs, application: &stratum_core::ir::Application) -> anyhow::Result<Outcome> {
    let model = args.model.as_deref().context("clap requires --model for notebooks")?;
    let base = args.file.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let data_path = match stratum_ml::search::training_of(application, model)
        .and_then(|(_, training)| stratum_ml::search::training_data_location(application, training))
    {
        Ok((path, _, _)) => base.join(path),
        Err(error) => {
            anyhow::bail!("{error}");
        }
    };
    let data_path = std::fs::canonicalize(&data_path).unwrap_or(data_path);
    let notebook_folder =
        args.output.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(notebook_folder)
        .with_context(|| format!("cannot create `{}`", notebook_folder.display()))?;
    let notebook_folder = std::fs::canonicalize(notebook_folder)?;
    let embedded = data_path.strip_prefix(&notebook_folder).unwrap_or(&data_path);
    let text = match stratum_ml::notebook::notebook(application, model, &embedded.to_string_lossy()) {
        Ok(text) => text,
        Err(error) => {
            anyhow::bail!("{error}");
        }
    };
    std::fs::write(&args.output, text).with_context(|| format!("cannot write `{}`", args.output.display()))?;
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "target": "notebook", "files": [args.output.display().to_string()] })
            )?
        ),
        Format::Human => println!(
            "wrote a scikit-learn notebook for model `{model}` to {}; run it with `jupyter notebook {}`",
            args.output.display(),
            args.output.display()
        ),
    }
    Ok(Outcome::Success)
}
