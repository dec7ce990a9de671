//! `stratum run-pipeline` and `stratum run-batch`: the data plane on one machine, until the control plane runs
//! applications across machines.

use crate::Outcome;
use crate::commands::checked_without_errors;
use crate::output::{ColorChoice, Format};
use anyhow::Context as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use stratum_dataplane::metrics::MetricsSnapshot;
use stratum_dataplane::{Pipeline, PipelineOptions};
use stratum_lang::{Code, Diagnostic};

#[derive(clap::Args)]
pub(crate) struct RunPipelineArgs {
    /// The .stratum file whose sources, streams and sinks to run.
    file: PathBuf,
    /// Run only these sinks, streams or batches, and what they read from (comma-separated; all of them
    /// otherwise). Batches run on their schedules (`every`, `cron`) for as long as the pipeline runs.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Stand generators in for sources that need the outside world (MQTT, NATS, Kafka, HTTP), with their
    /// schemas and rates.
    #[arg(long)]
    simulate: bool,
    /// Generators make events as fast as they can (event times still follow the declared rate).
    #[arg(long)]
    fast: bool,
    /// Every generator (declared, or standing in with `--simulate`) stops after at most this many events.
    #[arg(long, value_name = "N")]
    events: Option<u64>,
    /// Stop after this long, for example `30s`, `5min` (otherwise when the sources end or on Ctrl-C).
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    run_for: Option<Duration>,
    /// Where dead letters go (`DIR/dead-letters.jsonl`).
    #[arg(long, default_value = ".stratum/run")]
    data_dir: PathBuf,
    /// The model store that `predict(service)` loads models from.
    #[arg(long, default_value = ".stratum/models")]
    store: PathBuf,
    /// The MQTT broker for components that name none (`mqtt://host:port`, or `mqtt5://` for MQTT 5); without it
    /// Stratum starts its embedded broker on 127.0.0.1:1883 (MQTT 5 on 1884).
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

#[derive(clap::Args)]
pub(crate) struct RunBatchArgs {
    /// The .stratum file.
    file: PathBuf,
    /// The batch to run once, now.
    name: String,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

/// `30s`, `500ms`, `5min`, `2h`, `1.5 s` (core's [`stratum_core::units::parse_duration_text`]).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    // clap shows the message as the argument's error.
    stratum_core::units::parse_duration_text(text).map(Duration::from_secs_f64).map_err(|error| error.to_string())
}

/// Resolves when the user or the system asks the process to stop: Ctrl-C (SIGINT) on a terminal, SIGTERM from
/// `docker stop`, Kubernetes or systemd. Either way what runs drains before the process ends.
pub(crate) async fn shutdown_requested() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops this process cleanly");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

pub(crate) fn run_pipeline(args: RunPipelineArgs, color: ColorChoice) -> anyhow::Result<Outcome> {
    let Some(checked) = checked_without_errors(&args.file, color)? else { return Ok(Outcome::UserError) };
    let application = &checked.application;
    let runtime = runtime()?;
    // `--only` may name batches as well as components; batches run on their schedules beside the pipeline.
    let (batches, components): (Vec<String>, Vec<String>) =
        args.only.iter().cloned().partition(|name| application.batches.iter().any(|batch| &batch.name == name));
    let scheduled: Vec<String> = if args.only.is_empty() {
        application.batches.iter().map(|batch| batch.name.clone()).collect()
    } else {
        batches
    };
    // Only batches named: no pipeline components at all.
    let pipeline_wanted = args.only.is_empty() || !components.is_empty();
    // The embedded broker starts only when a component that runs needs it.
    let selected = match stratum_dataplane::pipeline::select(application, &components) {
        Ok(selected) => selected,
        Err(error) => {
            anyhow::bail!("{error}");
        }
    };
    let selected = if pipeline_wanted { selected } else { Default::default() };
    let needs_broker = stratum_dataplane::connectors::mqtt::needs_machine_broker(
        application,
        &|name| selected.contains(name),
        args.simulate,
    );
    let mut broker = args.broker.clone();
    if needs_broker && broker.is_none() {
        let (v4, v5) = ("127.0.0.1:1883".parse()?, "127.0.0.1:1884".parse()?);
        match runtime.block_on(async { stratum_dataplane::connectors::mqtt::EmbeddedBroker::start(v4, v5) }) {
            Ok(embedded) => {
                if args.format == Format::Human {
                    eprintln!("embedded MQTT broker: {} (MQTT 5: {})", embedded.url(), embedded.url5());
                }
                broker = Some(embedded.url());
            }
            Err(error) => {
                eprintln!("error: {error}");
                eprintln!("help: if a broker already listens there, use it with `--broker mqtt://127.0.0.1:1883`");
                return Ok(Outcome::UserError);
            }
        }
    }
    let options = PipelineOptions {
        base_dir: args.file.parent().map(Path::to_path_buf).unwrap_or_default(),
        data_dir: Some(args.data_dir.clone()),
        only: components,
        simulate: args.simulate,
        fast_generators: args.fast,
        generator_limit: args.events,
        model_store: Some(args.store.clone()),
        mqtt_broker: broker,
        ..PipelineOptions::default()
    };
    let built = if pipeline_wanted { Pipeline::build(application, &options) } else { Ok(Pipeline::empty()) };
    let pipeline = match built {
        Ok(pipeline) => pipeline,
        Err(error) => {
            eprintln!("error: {error}");
            if matches!(error, stratum_dataplane::Error::Unsupported { .. }) {
                let runnable: Vec<&str> = application
                    .sinks
                    .iter()
                    .filter(|sink| {
                        stratum_dataplane::registry::SINKS.iter().any(|entry| entry.kind == sink.kind.name())
                    })
                    .map(|sink| sink.name.as_str())
                    .collect();
                let simulate =
                    if args.simulate { "" } else { "`--simulate` stands generators in for external sources; " };
                eprintln!(
                    "help: {simulate}`--only {}` runs the sinks this version can write and what feeds them",
                    runnable.join(",")
                );
            }
            return Ok(Outcome::UserError);
        }
    };
    let human = args.format == Format::Human;
    if human {
        eprintln!("running `{}`:", application.name);
        for component in &pipeline.components() {
            eprintln!("  {:<7} {:<24} {}", component.role, component.name, component.kind);
        }
        for name in &scheduled {
            let schedule = application.batches.iter().find(|batch| &batch.name == name).map(|batch| &batch.schedule);
            let when = match schedule {
                Some(stratum_core::ir::Schedule::Every(interval)) => format!("every {interval}"),
                Some(stratum_core::ir::Schedule::Cron(cron)) => format!("cron \"{cron}\" (UTC)"),
                None => String::new(),
            };
            eprintln!("  {:<7} {:<24} {when}", "batch", name);
        }
        eprintln!("dead letters: {}", args.data_dir.join("dead-letters.jsonl").display());
        eprintln!("press Ctrl-C to stop (it drains: open windows are emitted, files written)");
    }
    let metrics = pipeline.metrics.clone();
    let stopper = pipeline.stopper();
    let interactive = human && std::io::stderr().is_terminal();
    let base = options.base_dir.clone();
    let (stop_batches, batches_stopped) = tokio::sync::watch::channel(false);
    let mut batch_runs: Vec<serde_json::Value> = Vec::new();
    let mut batch_failed = false;
    let summary = runtime.block_on(async {
        let mut run = tokio::spawn(pipeline.run());
        let mut pipeline_done = None;
        let schedule = stratum_batch::schedule::run_on_schedule(
            application,
            &base,
            &scheduled,
            options.time_scale,
            batches_stopped,
            |name, result| {
                report_batch(&checked, name, &result, human, color);
                batch_failed |= result.is_err();
                batch_runs.push(match result {
                    Ok(run) => serde_json::json!(run),
                    // `--format json` prints the reason as text.
                    Err(error) => serde_json::json!({ "batch": name, "error": stratum_core::error_chain(&error) }),
                });
            },
        );
        tokio::pin!(schedule);
        let mut schedule_done = scheduled.is_empty();
        let started = Instant::now();
        let mut status = tokio::time::interval(Duration::from_secs(2));
        let deadline = args.run_for.map(|limit| tokio::time::Instant::now() + limit);
        let mut stopping = false;
        loop {
            if pipeline_done.is_some() && schedule_done {
                break;
            }
            tokio::select! {
                result = &mut run, if pipeline_done.is_none() => {
                    let result = result.context("the pipeline task failed").and_then(|result| result.map_err(anyhow::Error::from));
                    if result.is_err() || scheduled.is_empty() {
                        stop_batches.send_replace(true);
                    } else if !stopping && human && pipeline_wanted {
                        eprintln!("the pipeline has ended; batches stay scheduled until Ctrl-C or the end of `--for`");
                    }
                    pipeline_done = Some(result);
                }
                _ = &mut schedule, if !schedule_done => schedule_done = true,
                _ = shutdown_requested(), if !stopping => {
                    eprintln!("\nstopping: draining the pipeline …");
                    stopper.stop();
                    stop_batches.send_replace(true);
                    stopping = true;
                }
                _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() && !stopping => {
                    stopper.stop();
                    stop_batches.send_replace(true);
                    stopping = true;
                }
                _ = status.tick(), if interactive => {
                    eprintln!("{}", status_line(&metrics.snapshot(), started.elapsed()));
                }
            }
        }
        pipeline_done.unwrap_or_else(|| Err(anyhow::anyhow!("the pipeline did not finish")))
    });
    let summary = match summary {
        Ok(summary) => summary,
        Err(error) => {
            anyhow::bail!("{error:#}");
        }
    };
    match args.format {
        Format::Json => {
            let mut report = serde_json::to_value(&summary)?;
            report["batches"] = serde_json::Value::Array(batch_runs);
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Format::Human => print_metrics(&summary.components, summary.seconds),
    }
    Ok(if batch_failed { Outcome::UserError } else { Outcome::Success })
}

/// Tells of one batch run: its result, or its error (a query error as a diagnostic pointing into the file).
fn report_batch(
    checked: &stratum_lang::Checked,
    name: &str,
    result: &Result<stratum_batch::BatchRun, stratum_batch::Error>,
    human: bool,
    color: ColorChoice,
) {
    match result {
        Ok(run) if human => eprintln!("{}", describe_batch_run(run)),
        Ok(_) => {}
        Err(stratum_batch::Error::Query { message, line, column, help }) => {
            let diagnostic = query_diagnostic(checked, name, message, line.zip(*column), help.clone());
            eprintln!("{}", stratum_lang::render(&diagnostic, &checked.sources, color.for_stderr()));
        }
        Err(error) => eprintln!("error: batch `{name}`: {error}"),
    }
}

fn describe_batch_run(run: &stratum_batch::BatchRun) -> String {
    format!(
        "batch `{}`: {} rows into `{}` ({}) in {:.2} s",
        run.batch,
        run.rows,
        run.into,
        run.path.display(),
        run.seconds
    )
}

pub(crate) fn status_line(snapshots: &[MetricsSnapshot], elapsed: Duration) -> String {
    let parts: Vec<String> = snapshots
        .iter()
        .map(|snapshot| format!("{} {}", snapshot.component, snapshot.events_out.max(snapshot.events_in)))
        .collect();
    format!("[{:>5.0}s] {}", elapsed.as_secs_f64(), parts.join(" · "))
}

pub(crate) fn print_metrics(snapshots: &[MetricsSnapshot], seconds: f64) {
    println!(
        "{:<24} {:<20} {:>12} {:>12} {:>8} {:>8} {:>8} {:>10}",
        "component", "kind", "events in", "events out", "dead", "dropped", "errors", "events/s"
    );
    for snapshot in snapshots {
        let rate = snapshot.events_in.max(snapshot.events_out) as f64 / seconds.max(1e-9);
        println!(
            "{:<24} {:<20} {:>12} {:>12} {:>8} {:>8} {:>8} {:>10.0}",
            snapshot.component,
            snapshot.kind,
            snapshot.events_in,
            snapshot.events_out,
            snapshot.dead_letters,
            snapshot.dropped,
            snapshot.errors,
            rate
        );
    }
    println!("ran for {seconds:.2} s");
}

pub(crate) fn run_batch(args: RunBatchArgs, color: ColorChoice) -> anyhow::Result<Outcome> {
    let Some(checked) = checked_without_errors(&args.file, color)? else { return Ok(Outcome::UserError) };
    let base = args.file.parent().map(Path::to_path_buf).unwrap_or_default();
    let result = runtime()?.block_on(stratum_batch::run(&checked.application, &args.name, &base));
    match (&result, args.format) {
        (Ok(run), Format::Json) => println!("{}", serde_json::to_string_pretty(run)?),
        (Ok(run), Format::Human) => println!("{}", describe_batch_run(run)),
        (Err(_), _) => report_batch(&checked, &args.name, &result, true, color),
    }
    Ok(if result.is_ok() { Outcome::Success } else { Outcome::UserError })
}

/// A query error as a diagnostic pointing into the query string in the file (at the query when DataFusion did
/// not say where).
fn query_diagnostic(
    checked: &stratum_lang::Checked,
    batch: &str,
    message: &str,
    position: Option<(u64, u64)>,
    help: Option<String>,
) -> Diagnostic {
    let span =
        checked.spans.attribute(batch, "query").unwrap_or_else(|| stratum_lang::source::Span::new(checked.root, 0, 0));
    let text = checked.sources.get(span.file).slice(span);
    let opening = if text.starts_with("\"\"\"") { 3 } else { 1 };
    let query = checked
        .application
        .batches
        .iter()
        .find(|item| item.name == batch)
        .map(|item| item.query.as_str())
        .unwrap_or_default();
    let pointed =
        position.and_then(|(line, column)| stratum_core::sql::offset_in_query(query, line, column)).map(|offset| {
            let start = span.start as usize + opening + offset;
            let word = query[offset..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(query.len() - offset)
                .max(1);
            stratum_lang::source::Span::new(span.file, start, start + word)
        });
    Diagnostic::new(Code::QueryError, pointed.unwrap_or(span), format!("batch `{batch}`: {message}"))
        .label(if pointed.is_some() { "here" } else { "in this query" })
        .help(help.unwrap_or_else(|| {
            "tables are the datasets and file sinks the query names, with the fields of their schemas as columns; \
             the SQL is DataFusion's (https://datafusion.apache.org/user-guide/sql/)"
                .into()
        }))
}
