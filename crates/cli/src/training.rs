//! `stratum train` and `stratum model`: the ML engine on the command line.

use crate::Outcome;
use crate::commands::checked_without_errors;
use crate::output::{ColorChoice, Format};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use stratum_core::ir::ModelOrigin;
use stratum_core::types::{DataType, Field};
use stratum_core::units::{ByteSize, trim_number};
use stratum_ml::artifact::Profile;
use stratum_ml::search::Leaderboard;
use stratum_ml::{Artifact, ModelStore, StoredModel};

/// Where models are stored unless `--store` says otherwise, relative to the current directory.
const DEFAULT_STORE: &str = ".stratum/models";

#[derive(clap::Args)]
pub(crate) struct TrainArgs {
    /// The .stratum file whose models to train.
    file: PathBuf,
    /// Train only this model (all trained models of the file otherwise).
    #[arg(long)]
    model: Option<String>,
    /// The model store to save into.
    #[arg(long, default_value = DEFAULT_STORE)]
    store: PathBuf,
    /// How to print the leaderboards and artifacts.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// With --server: train on that control plane's agents (the data uploaded, the tasks spread over the agents,
    /// the winner saved in the control plane's store).
    #[command(flatten)]
    reach: crate::reach::Reach,
}

#[derive(clap::Subcommand)]
pub(crate) enum ModelCommand {
    /// List the models in the store with their latest version.
    List {
        #[arg(long, default_value = DEFAULT_STORE)]
        store: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Export a model to ONNX, so any ONNX runtime can serve it.
    Export {
        name: String,
        /// A version (the latest otherwise).
        #[arg(long)]
        version: Option<u32>,
        /// The .onnx file to write.
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, default_value = DEFAULT_STORE)]
        store: PathBuf,
    },
    /// Import an ONNX file (from scikit-learn, PyTorch, TensorFlow or a generated notebook) as the model's next version.
    Import {
        /// The .onnx file.
        file: PathBuf,
        /// The name to store it under.
        #[arg(long)]
        name: String,
        /// The input columns in the order the model takes them, comma-separated (default: the model's
        /// `stratum.inputs` metadata, which Stratum's notebooks write).
        #[arg(long, value_delimiter = ',')]
        inputs: Option<Vec<String>>,
        #[arg(long, default_value = DEFAULT_STORE)]
        store: PathBuf,
        /// How to print the imported artifact.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Serve a version of a model (the newest otherwise); versions trained later serve in their turn. A running
    /// `stratum up` on this store serves it within seconds.
    Promote {
        name: String,
        /// The version to serve.
        version: Option<u32>,
        #[arg(long, default_value = DEFAULT_STORE)]
        store: PathBuf,
    },
    /// Serve the version before the one that serves now (passing over versions the promotion gate held back),
    /// pinned: versions trained later (a scheduled retrain's) are stored but do not serve until promoted.
    Rollback {
        name: String,
        #[arg(long, default_value = DEFAULT_STORE)]
        store: PathBuf,
    },
    /// Keep a version serving (the one that serves now otherwise): versions trained later are stored but do not
    /// serve until promoted.
    Pin {
        name: String,
        /// The version to serve.
        version: Option<u32>,
        #[arg(long, default_value = DEFAULT_STORE)]
        store: PathBuf,
    },
    /// Show a model's artifact: schema, hyperparameters, leaderboard, profile.
    Show {
        name: String,
        /// A version (the latest otherwise).
        #[arg(long)]
        version: Option<u32>,
        #[arg(long, default_value = DEFAULT_STORE)]
        store: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
}

fn progress_bar(done: usize, total: usize, elapsed: f64) -> String {
    const WIDTH: usize = 30;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    let eta =
        if done == 0 { String::from("…") } else { format!("{:.0} s", elapsed / done as f64 * (total - done) as f64) };
    format!(
        "\r[{}{}] {done}/{total} tasks  {elapsed:.1} s  ETA {eta}   ",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled)
    )
}

pub(crate) fn train(args: TrainArgs, color: ColorChoice) -> anyhow::Result<Outcome> {
    let Some(checked) = checked_without_errors(&args.file, color)? else { return Ok(Outcome::UserError) };
    let application = &checked.application;
    let models: Vec<_> = application
        .models
        .iter()
        .filter(|model| matches!(model.origin, ModelOrigin::Trained(_)))
        .filter(|model| args.model.as_ref().is_none_or(|wanted| *wanted == model.name))
        .collect();
    if models.is_empty() {
        let what = args
            .model
            .as_ref()
            .map(|name| format!("no trained model named `{name}`"))
            .unwrap_or_else(|| "no model to train".into());
        anyhow::bail!("`{}` has {what}", args.file.display());
    }
    let base = args.file.parent().map(Path::to_path_buf).unwrap_or_default();
    if let Some(server) = &args.reach.server {
        let Some(token) = &args.reach.token else {
            anyhow::bail!("training on a control plane needs its token: --token T (or STRATUM_TOKEN)");
        };
        let names: Vec<String> = models.iter().map(|model| model.name.clone()).collect();
        return crate::cluster::train_remotely(
            application,
            &names,
            &base,
            server,
            args.reach.ca_cert.as_deref(),
            token,
            args.format,
        );
    }
    let store = ModelStore::new(&args.store);
    let interactive = args.format == Format::Human && std::io::stderr().is_terminal();
    let mut reports = Vec::new();
    let mut outcome = Outcome::Success;
    for model in models {
        if args.format == Format::Human {
            eprintln!("training `{}` …", model.name);
        }
        let mut on_progress = |progress: stratum_ml::Progress| {
            if interactive {
                eprint!("{}", progress_bar(progress.done, progress.total, progress.elapsed.as_secs_f64()));
                let _ = std::io::stderr().flush();
            }
        };
        let report = match stratum_ml::train(application, &model.name, &base, &mut on_progress) {
            Ok(report) => report,
            Err(error) => {
                if interactive {
                    eprintln!();
                }
                eprintln!("error: cannot train `{}`: {error}", model.name);
                outcome = Outcome::UserError;
                continue;
            }
        };
        if interactive {
            eprintln!();
        }
        let (artifact, path) = store.save(&report, model.inputs.clone(), model.output.clone())?;
        match args.format {
            Format::Human => print_training(&report.leaderboard, &artifact, &path, report.elapsed.as_secs_f64()),
            Format::Json => reports.push(json!({
                "model": model.name,
                "rows": report.rows,
                "seconds": report.elapsed.as_secs_f64(),
                "leaderboard": report.leaderboard,
                "artifact": {
                    "name": artifact.name,
                    "version": artifact.version,
                    "sha256": artifact.sha256,
                    "path": path.display().to_string(),
                    "algorithm": artifact.algorithm,
                    "params": artifact.params,
                    "score": artifact.score,
                    "profile": artifact.profile,
                }
            })),
        }
    }
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&json!({ "models": reports }))?);
    }
    Ok(outcome)
}

fn print_profile(profile: &Profile) {
    let memory =
        profile.peak_memory_bytes.map(|bytes| format!(", peak memory {}", ByteSize(bytes))).unwrap_or_default();
    println!(
        "profile: {} µs p50, {} µs p99 per record; {} records/s in batch; {}{memory} ({})",
        trim_number(profile.latency_p50_us),
        trim_number(profile.latency_p99_us),
        trim_number(profile.batch_rows_per_second.round()),
        ByteSize(profile.size_bytes),
        profile.machine
    );
}

fn print_training(leaderboard: &Leaderboard, artifact: &Artifact, path: &Path, seconds: f64) {
    crate::output::print_leaderboard(leaderboard);
    println!(
        "winner: {} ({}), refit on all {} rows; trained in {seconds:.1} s",
        artifact.algorithm,
        artifact.params.describe(),
        artifact.rows
    );
    println!(
        "saved `{}` version {} (sha256 {}) to {}",
        artifact.name,
        artifact.version,
        &artifact.sha256[..16],
        path.display()
    );
    print_profile(&artifact.profile);
}

/// Makes a version of a model the one that serves, and says what changed.
fn choose(store: &Path, name: &str, version: Option<u32>, pinned: bool, rollback: bool) -> anyhow::Result<Outcome> {
    let store = ModelStore::new(store);
    let versions = store.versions(name)?;
    let Some(serving) = store.serving(name)? else {
        eprintln!("error: no model `{name}` in `{}`", store.root.display());
        eprintln!("help: `stratum model list --store DIR` lists what a store holds");
        return Ok(Outcome::UserError);
    };
    let version = match (version, rollback) {
        (Some(version), _) => version,
        (None, false) if pinned => serving,
        (None, false) => *versions.last().unwrap_or(&serving),
        // The version that served before: a version the promotion gate held back never served.
        (None, true) => {
            match versions.iter().rev().find(|version| **version < serving && !store.held_back(name, **version)) {
                Some(previous) => *previous,
                None => {
                    eprintln!(
                        "error: `{name}` v{serving} serves and no version before it is stored; nothing to roll back to"
                    );
                    return Ok(Outcome::UserError);
                }
            }
        }
    };
    if let Err(error) = store.choose(name, &stratum_ml::Serving { version, pinned }) {
        eprintln!("error: {}", stratum_core::error_chain(&error));
        return Ok(Outcome::UserError);
    }
    let was = if serving == version { " (it served already)".to_string() } else { format!(" in place of v{serving}") };
    let then = if pinned {
        format!("pinned: versions trained later do not serve until `stratum model promote {name}`")
    } else {
        "versions trained later serve in their turn".to_string()
    };
    println!("`{name}`: v{version} serves{was}; {then}");
    println!("a running `stratum up` on {} serves it within seconds", store.root.display());
    Ok(Outcome::Success)
}

pub(crate) fn model(command: ModelCommand) -> anyhow::Result<Outcome> {
    match command {
        ModelCommand::Promote { name, version, store } => choose(&store, &name, version, false, false),
        ModelCommand::Rollback { name, store } => choose(&store, &name, None, true, true),
        ModelCommand::Pin { name, version, store } => choose(&store, &name, version, true, false),
        ModelCommand::Export { name, version, output, store } => {
            let store = ModelStore::new(store);
            let artifact = match store.load_any(&name, version) {
                Ok(StoredModel::Trained(artifact)) => artifact,
                Ok(StoredModel::Imported(artifact)) => {
                    // An imported model is already ONNX: export hands back the file it came from.
                    let bytes = store.imported_bytes(&artifact)?;
                    std::fs::write(&output, &bytes)
                        .map_err(|error| anyhow::anyhow!("cannot write `{}`: {error}", output.display()))?;
                    println!(
                        "wrote imported `{}` version {} to {} ({})",
                        artifact.name,
                        artifact.version,
                        output.display(),
                        ByteSize(bytes.len() as u64)
                    );
                    return Ok(Outcome::Success);
                }
                Err(error) => {
                    anyhow::bail!("{error}");
                }
            };
            let bytes = match stratum_ml::onnx::export(&artifact.model, &artifact.name) {
                Ok(bytes) => bytes,
                Err(error) => {
                    anyhow::bail!("{error}");
                }
            };
            std::fs::write(&output, &bytes)
                .map_err(|error| anyhow::anyhow!("cannot write `{}`: {error}", output.display()))?;
            let input = match stratum_ml::onnx::input_kind(&artifact.model) {
                stratum_ml::onnx::InputKind::RawColumns(columns) => {
                    format!("input `features`: the columns {} (imputed and scaled in the graph)", columns.join(", "))
                }
                stratum_ml::onnx::InputKind::Prepared(columns) => {
                    format!("input `prepared`: the prepared features {}", columns.join(", "))
                }
            };
            println!(
                "wrote `{}` version {} to {} ({}); {input}",
                artifact.name,
                artifact.version,
                output.display(),
                ByteSize(bytes.len() as u64)
            );
            Ok(Outcome::Success)
        }
        ModelCommand::List { store, format } => {
            let store = ModelStore::new(store);
            let mut rows = Vec::new();
            for name in store.models()? {
                let versions = store.versions(&name)?;
                let latest = store.load_any(&name, None)?;
                rows.push((name, versions, latest));
            }
            match format {
                Format::Json => {
                    let list: Vec<_> = rows
                        .iter()
                        .map(|(name, versions, latest)| {
                            let summary = match latest {
                                StoredModel::Trained(artifact) => json!({ "version": artifact.version, "sha256": artifact.sha256, "origin": "trained", "algorithm": artifact.algorithm, "metric": artifact.metric, "score": artifact.score }),
                                StoredModel::Imported(artifact) => json!({ "version": artifact.version, "sha256": artifact.sha256, "origin": "onnx", "source": artifact.source }),
                            };
                            json!({ "name": name, "versions": versions, "latest": summary })
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                Format::Human => {
                    if rows.is_empty() {
                        println!("no models in {}", store.root.display());
                    }
                    for (name, versions, latest) in rows {
                        let summary = match &latest {
                            StoredModel::Trained(artifact) => {
                                format!("{:<20} {} {:.4}", artifact.algorithm, artifact.metric.name(), artifact.score)
                            }
                            StoredModel::Imported(artifact) => {
                                format!("{:<20} from {}", "imported onnx", artifact.source)
                            }
                        };
                        println!(
                            "{name:<24} v{:<4} {summary}   ({} version(s), sha256 {})",
                            latest.version(),
                            versions.len(),
                            &latest.sha256()[..12]
                        );
                    }
                }
            }
            Ok(Outcome::Success)
        }
        ModelCommand::Import { file, name, inputs, store, format } => {
            let store = ModelStore::new(store);
            let bytes = match std::fs::read(&file) {
                Ok(bytes) => bytes,
                Err(error) => {
                    anyhow::bail!("cannot read `{}`: {error}", file.display());
                }
            };
            let inputs = inputs
                .map(|names| names.iter().map(|name| Field::new(name.trim(), DataType::Float)).collect::<Vec<_>>());
            match store.import_onnx(&name, &bytes, inputs, &file) {
                Ok((artifact, _)) if format == Format::Json => {
                    println!("{}", serde_json::to_string_pretty(&artifact)?);
                    Ok(Outcome::Success)
                }
                Ok((artifact, path)) => {
                    println!(
                        "imported `{}` version {} (sha256 {}) to {}",
                        artifact.name,
                        artifact.version,
                        &artifact.sha256[..16],
                        path.display()
                    );
                    let columns: Vec<&str> = artifact.inputs.iter().map(|field| field.name.as_str()).collect();
                    println!(
                        "inputs: {}; outputs: {}; runs on {}",
                        columns.join(", "),
                        artifact.outputs.join(", "),
                        match artifact.engine.as_str() {
                            "onnxruntime" => "ONNX Runtime (STRATUM_ONNXRUNTIME)",
                            _ => "Stratum's own ONNX executor",
                        }
                    );
                    print_profile(&artifact.profile);
                    Ok(Outcome::Success)
                }
                Err(error) => Err(anyhow::anyhow!("{error}")),
            }
        }
        ModelCommand::Show { name, version, store, format } => {
            let store = ModelStore::new(store);
            let artifact = match store.load_any(&name, version) {
                Ok(StoredModel::Trained(artifact)) => artifact,
                Ok(StoredModel::Imported(artifact)) => {
                    match format {
                        Format::Json => println!("{}", serde_json::to_string_pretty(&artifact)?),
                        Format::Human => {
                            println!(
                                "{} version {} — imported ONNX from {}, sha256 {}",
                                artifact.name, artifact.version, artifact.source, artifact.sha256
                            );
                            let columns: Vec<&str> = artifact.inputs.iter().map(|field| field.name.as_str()).collect();
                            println!("inputs: {}", columns.join(", "));
                            println!("outputs: {}", artifact.outputs.join(", "));
                            print_profile(&artifact.profile);
                        }
                    }
                    return Ok(Outcome::Success);
                }
                Err(error) => {
                    anyhow::bail!("{error}");
                }
            };
            match format {
                Format::Json => {
                    let mut value = serde_json::to_value(&artifact)?;
                    // The fitted parameters are large and meant for machines; `export` will write them.
                    if let Some(object) = value.as_object_mut() {
                        object.remove("model");
                    }
                    println!("{}", serde_json::to_string_pretty(&value)?);
                }
                Format::Human => {
                    println!(
                        "{} version {} — {:?}, sha256 {}",
                        artifact.name, artifact.version, artifact.task, artifact.sha256
                    );
                    println!("algorithm: {} ({})", artifact.algorithm, artifact.params.describe());
                    let inputs: Vec<String> =
                        artifact.inputs.iter().map(|field| format!("{}: {}", field.name, field.data_type)).collect();
                    println!("inputs: {}", inputs.join(", "));
                    println!(
                        "output: {}{}",
                        artifact.output,
                        if artifact.classes.is_empty() {
                            String::new()
                        } else {
                            format!(" (classes {})", artifact.classes.join(", "))
                        }
                    );
                    println!("trained on {} rows (data sha256 {})", artifact.rows, &artifact.data_sha256[..16]);
                    crate::output::print_leaderboard(&artifact.leaderboard);
                    print_profile(&artifact.profile);
                }
            }
            Ok(Outcome::Success)
        }
    }
}
