//! `stratum up`: the whole application on this machine — checked, planned, its models made ready, every component
//! started — with where things run, the URLs to use, and live status and events until Ctrl-C.

use crate::Outcome;
use crate::commands::{checked_without_errors, planned_or_report};
use crate::output::ColorChoice;
use crate::running::{parse_duration, print_metrics, runtime, status_line};
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use stratum_control::models::ModelProgress;
use stratum_control::up::{UpOptions, UpProgress, up};

#[derive(clap::Args)]
pub struct UpArgs {
    /// The .stratum file to run.
    file: PathBuf,
    /// Where the API (status, events, metrics, predictions) listens.
    #[arg(long, default_value = "127.0.0.1:7070", value_name = "ADDRESS")]
    api: SocketAddr,
    /// The state store, the model store and the dead letters.
    #[arg(long, default_value = ".stratum")]
    state_dir: PathBuf,
    /// Connect sources to the outside world (MQTT, NATS, Kafka, HTTP) instead of simulating them.
    #[arg(long)]
    live: bool,
    /// Simulated sources run this many times faster than the clock: `--speed 60` shows an hour in a minute.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Hours of simulated history to train on when a model's dataset does not exist yet.
    #[arg(long, default_value_t = 24.0, value_name = "HOURS")]
    bootstrap_hours: f64,
    /// The MQTT broker for components that name none; the embedded one otherwise.
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    /// Stop after this long (`30s`, `5min`); otherwise on Ctrl-C.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    run_for: Option<Duration>,
}

#[derive(clap::Args)]
pub struct LogsArgs {
    /// A component of an application that `stratum up` runs or ran: a tool's output, and its events.
    component: String,
    /// The state directory `stratum up` used.
    #[arg(long, default_value = ".stratum")]
    state_dir: PathBuf,
    /// Events shown at most.
    #[arg(long, default_value_t = 50)]
    events: usize,
}

/// `stratum logs COMPONENT`: the component's events from the state store, then a tool's own output.
pub fn logs(args: LogsArgs) -> anyhow::Result<Outcome> {
    let database = args.state_dir.join("state.db");
    if !database.exists() {
        eprintln!("error: no state in {} (run `stratum up FILE` first, or give --state-dir)", args.state_dir.display());
        return Ok(Outcome::UserError);
    }
    let state = stratum_control::state::StateStore::open(&database)?;
    let events = state.component_events(&args.component, args.events)?;
    let log = stratum_control::tools::log_path(&args.state_dir.join("logs"), &args.component);
    if events.is_empty() && !log.exists() {
        eprintln!("error: nothing recorded for `{}` in {}", args.component, args.state_dir.display());
        return Ok(Outcome::UserError);
    }
    for (app, event) in &events {
        let at = stratum_core::eval::format_timestamp(event.at_milliseconds);
        println!("{at}  {app}  {}: {}", event.kind, event.message);
    }
    if log.exists() {
        println!("--- {} ---", log.display());
        let text = std::fs::read_to_string(&log)?;
        print!("{text}");
    }
    Ok(Outcome::Success)
}

pub fn run(args: UpArgs, color: ColorChoice) -> anyhow::Result<Outcome> {
    let positive = |value: f64| value.is_finite() && value > 0.0;
    if !positive(args.speed) || !positive(args.bootstrap_hours) {
        eprintln!("error: --speed and --bootstrap-hours must be positive numbers");
        return Ok(Outcome::UserError);
    }
    let Some(checked) = checked_without_errors(&args.file, color)? else { return Ok(Outcome::UserError) };
    let Some((plan, _)) = planned_or_report(&checked, &args.file, color) else { return Ok(Outcome::UserError) };
    let application = checked.application.clone();
    eprintln!(
        "`{}`: checked, planned on {} machines",
        application.name,
        plan.hosts.iter().filter(|host| host.in_use).count()
    );
    let options = UpOptions {
        base_dir: args.file.parent().map(Path::to_path_buf).unwrap_or_default(),
        state_dir: args.state_dir.clone(),
        api_address: args.api,
        mqtt_broker: args.broker.clone(),
        simulate: !args.live,
        bootstrap_hours: args.bootstrap_hours,
        time_scale: args.speed,
    };
    let runtime = runtime()?;
    let started = runtime.block_on(up(application.clone(), plan, options, &mut |progress| print_progress(&progress)));
    let running = match started {
        Ok(running) => running,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(Outcome::UserError);
        }
    };
    print_started(&running, &application, args.live);

    let interactive = std::io::stderr().is_terminal();
    let (metrics, state, app) = (running.metrics.clone(), running.state.clone(), running.app.clone());
    let summary = runtime.block_on(async move {
        let began = Instant::now();
        let deadline = args.run_for.map(|limit| tokio::time::Instant::now() + limit);
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut data_plane_ended = false;
        let mut seen_events: BTreeSet<i64> =
            state.events(&app, 1000).unwrap_or_default().iter().map(|event| event.id).collect();
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("\nstopping: draining the data plane …");
                    break;
                }
                _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => break,
                _ = tick.tick() => {
                    for event in state.events(&app, 50).unwrap_or_default() {
                        if seen_events.insert(event.id) {
                            let component = event.component.map(|component| format!(" `{component}`")).unwrap_or_default();
                            eprintln!("event: {}{component}: {}", event.kind, event.message);
                        }
                    }
                    if interactive {
                        eprintln!("{}", status_line(&metrics.snapshot(), began.elapsed()));
                    }
                    // Sources that ran out end the data plane; services, batches and the API go on until stopped.
                    if running.pipeline_finished() && !data_plane_ended {
                        data_plane_ended = true;
                        eprintln!("the data plane has ended; services and the API run until Ctrl-C");
                    }
                }
            }
        }
        running.stop().await
    });
    match summary {
        Ok(summary) => {
            print_metrics(&summary.components, summary.seconds);
            Ok(Outcome::Success)
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(Outcome::UserError)
        }
    }
}

fn print_progress(progress: &UpProgress) {
    match progress {
        UpProgress::Model(ModelProgress::Bootstrapping { model, dataset, hours, sinks, batches }) => eprintln!(
            "model `{model}`: dataset `{dataset}` has no data yet; simulating {hours} h of history through {} and running {}",
            sinks.join(", "),
            if batches.is_empty() { "nothing else".to_string() } else { format!("batch {}", batches.join(", ")) }
        ),
        UpProgress::Model(ModelProgress::Bootstrapped { model, events, rows }) => {
            eprintln!("model `{model}`: {events} simulated events gave {rows} rows to train on")
        }
        UpProgress::Model(ModelProgress::Training { model }) => eprintln!("model `{model}`: training …"),
        UpProgress::Model(ModelProgress::Trained { model, version, algorithm, metric, score, seconds }) => eprintln!(
            "model `{model}`: trained v{version} — {algorithm}, {metric} {score:.3} (cross-validated), in {seconds:.1} s"
        ),
        UpProgress::Model(ModelProgress::Reused { model, version }) => {
            eprintln!("model `{model}`: v{version} in the store was trained on the same data; reusing it")
        }
        UpProgress::Broker { url } => eprintln!("embedded MQTT broker: {url}"),
    }
}

fn print_started(running: &stratum_control::up::Running, application: &stratum_core::ir::Application, live: bool) {
    eprintln!("agents (one per machine, in this process):");
    for agent in &running.agents {
        let components: Vec<String> = agent
            .components
            .iter()
            .map(|(name, _)| match running.not_running.iter().find(|(other, _)| other == name) {
                Some((_, reason)) => format!("{name} (not running: {reason})"),
                None => name.clone(),
            })
            .collect();
        eprintln!("  {:<18} {:<6} {}", agent.name, agent.tier.name(), components.join(", "));
    }
    if !live {
        let simulated: Vec<&str> = application
            .sources
            .iter()
            .filter(|source| {
                !matches!(
                    source.kind,
                    stratum_core::ir::SourceKind::Generator { .. } | stratum_core::ir::SourceKind::File { .. }
                )
            })
            .map(|source| source.name.as_str())
            .collect();
        if !simulated.is_empty() {
            eprintln!("simulated sources (use --live to connect them): {}", simulated.join(", "));
        }
    }
    let api = &running.api_url;
    eprintln!("API:      {api}/v1/status   events: {api}/v1/events");
    eprintln!("metrics:  {api}/metrics");
    for service in &application.services {
        eprintln!("predict:  curl -X POST {api}/v1/services/{}/predict -d '{{…}}'", service.name);
    }
    eprintln!("press Ctrl-C to stop (it drains: open windows are emitted, files written)");
}
