//! `stratum up`: the whole application on this machine — checked, planned, its models made ready, every component
//! started — with where things run, the dashboard and API to use, and live status and events until Ctrl-C; a
//! version applied from the web editor replaces the running one.

use crate::Outcome;
use crate::commands::{checked_without_errors, planned_or_report};
use crate::output::ColorChoice;
use crate::running::{parse_duration, print_metrics, runtime, status_line};
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use stratum_api::{ApiConfig, ApiState, Phase, Tokens};
use stratum_control::models::{BOOTSTRAP_HOURS, ModelProgress};
use stratum_control::supervisor::{Notice, Supervisor};
use stratum_control::up::{UpOptions, UpProgress, describe_rollout, up};
use stratum_core::ir::Application;
use stratum_core::plan::Plan;

#[derive(clap::Args)]
pub(crate) struct UpArgs {
    /// The .stratum file to run.
    file: PathBuf,
    /// Where the web interface and the API listen: a loopback address, unless --plain-http says otherwise.
    #[arg(long, default_value = "127.0.0.1:7070", value_name = "ADDRESS")]
    api: SocketAddr,
    /// Serve the API on an address other machines reach, in plain HTTP (tokens cross the network in the clear):
    /// `stratum up` is for one machine; `stratum server` serves TLS.
    #[arg(long)]
    plain_http: bool,
    /// The operator's API token (reads and applies); a random one is made and printed otherwise.
    #[arg(long, env = "STRATUM_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The viewer's API token (reads only); a random one is made and printed otherwise.
    #[arg(long, env = "STRATUM_VIEWER_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    viewer_token: Option<String>,
    /// The state store, the model store and the dead letters.
    #[arg(long, default_value = ".stratum")]
    state_dir: PathBuf,
    /// Connect sources to the outside world (MQTT, NATS, Kafka, HTTP) instead of simulating them.
    #[arg(long)]
    live: bool,
    /// The application's clock runs this many times faster than the wall clock: simulated sources, batch
    /// schedules and retraining follow it (`--speed 60` shows an hour in a minute).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Hours of simulated history to train on when a model's dataset does not exist yet [default: 24, or fewer
    /// when its sources would make more than 20 million events in a day].
    #[arg(long, value_name = "HOURS")]
    bootstrap_hours: Option<f64>,
    /// The MQTT broker for components that name none; the embedded one otherwise.
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    /// Stop after this long (`30s`, `5min`); otherwise on Ctrl-C.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    run_for: Option<Duration>,
}

#[derive(clap::Args)]
pub(crate) struct LogsArgs {
    /// A component of an application that `stratum up` runs or ran: a tool's output, and its events.
    component: String,
    /// The state directory `stratum up` used.
    #[arg(long, default_value = ".stratum")]
    state_dir: PathBuf,
    /// Events shown at most.
    #[arg(long, default_value_t = 50)]
    events: usize,
    /// With --server: the component's events across the machines of a cluster, from its control plane (the
    /// operator's or the viewer's token); a tool's own output stays on its machine.
    #[command(flatten)]
    reach: crate::reach::Reach,
}

impl LogsArgs {
    /// With `--server`: the control plane to ask, the token and the authority to trust.
    pub(crate) fn remote(&self) -> Option<(&str, Option<&str>, Option<&Path>)> {
        let server = self.reach.server.as_deref()?;
        Some((server, self.reach.token.as_deref(), self.reach.ca_cert.as_deref()))
    }

    pub(crate) fn component(&self) -> &str {
        &self.component
    }

    pub(crate) fn events(&self) -> usize {
        self.events
    }
}

/// `stratum logs COMPONENT`: the component's events from the state store, then a tool's own output (with
/// `--server`, `cluster::remote_logs` asks a control plane instead).
pub(crate) fn logs(args: LogsArgs) -> anyhow::Result<Outcome> {
    let database = args.state_dir.join("state.db");
    if !database.exists() {
        anyhow::bail!("no state in {} (run `stratum up FILE` first, or give --state-dir)", args.state_dir.display());
    }
    let state = stratum_control::state::StateStore::open(&database)?;
    let events = state.component_events(&args.component, args.events)?;
    let log = stratum_control::tools::log_path(&args.state_dir.join("logs"), &args.component);
    if events.is_empty() && !log.exists() {
        anyhow::bail!("nothing recorded for `{}` in {}", args.component, args.state_dir.display());
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

pub(crate) fn run(args: UpArgs, color: ColorChoice) -> anyhow::Result<Outcome> {
    let positive = |value: f64| value.is_finite() && value > 0.0;
    if !positive(args.speed) || !args.bootstrap_hours.is_none_or(positive) {
        anyhow::bail!("--speed and --bootstrap-hours must be positive numbers");
    }
    if !args.api.ip().is_loopback() && !args.plain_http {
        eprintln!(
            "error: `stratum up` serves its API in plain HTTP, and {} is reachable from other machines: the \
             tokens would cross the network in the clear. Listen on loopback (--api 127.0.0.1:{}), say that plain \
             HTTP is meant (--plain-http), or run the application across machines with `stratum server`, which \
             serves TLS (README, \"Deploy beyond one machine\")",
            args.api,
            args.api.port()
        );
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
        mqtt_broker: args.broker.clone(),
        simulate: !args.live,
        bootstrap_hours: args.bootstrap_hours,
        time_scale: args.speed,
    };
    let tokens = match (args.token.clone(), args.viewer_token.clone()) {
        (Some(operator), Some(viewer)) => Tokens { operator, viewer, join: None },
        (operator, viewer) => {
            let random = Tokens::random()?;
            Tokens {
                operator: operator.unwrap_or(random.operator),
                viewer: viewer.unwrap_or(random.viewer),
                join: None,
            }
        }
    };
    let runtime = runtime()?;
    runtime.block_on(run_up(args, application, plan, options, tokens))
}

/// Serves the API from the start (it says `starting` while models train), runs the application, and runs each
/// version applied from the editor in its place until stopped.
async fn run_up(
    args: UpArgs,
    application: Application,
    plan: Plan,
    options: UpOptions,
    tokens: Tokens,
) -> anyhow::Result<Outcome> {
    let listener = match tokio::net::TcpListener::bind(args.api).await {
        Ok(listener) => listener,
        Err(error) => {
            anyhow::bail!("cannot serve the API on {}: {error} (choose another address with --api)", args.api);
        }
    };
    let address = listener.local_addr()?;
    let config =
        ApiConfig { tokens: tokens.clone(), source_file: args.file.clone(), state_dir: args.state_dir.clone() };
    let (plane, mut reloads) = ApiState::new(config, None);
    let (stop_api, api_stopped) = tokio::sync::watch::channel(false);
    let api = tokio::spawn(stratum_api::serve(listener, plane.clone(), None, api_stopped));
    let base = format!("http://{address}");
    eprintln!("dashboard: {base}/#token={}", tokens.operator);

    // Events of earlier runs in this state directory are history; those from this start on (a tool started, a
    // stream that took up its checkpoint) are news.
    let starting_at_milliseconds = stratum_control::state::now_milliseconds();
    let running = match up(application, plan, options.clone(), &mut |progress| print_progress(&progress)).await {
        Ok(running) => running,
        Err(error) => {
            eprintln!("error: {error}");
            stop_api.send_replace(true);
            let _ = api.await;
            return Ok(Outcome::UserError);
        }
    };
    plane.set_deployment(Some(running.deployment.clone()));
    print_started(&running, args.live, &base, &tokens);

    // What the supervisor does is shown here and in the API; events of this run are printed as they come.
    let mut seen_events: BTreeSet<i64> = running
        .deployment
        .state
        .events(&running.deployment.running.app, 1000)
        .unwrap_or_default()
        .iter()
        .filter(|event| event.at_milliseconds < starting_at_milliseconds)
        .map(|event| event.id)
        .collect();
    let interactive = std::io::stderr().is_terminal();
    let began = Instant::now();
    let shown = plane.clone();
    let (live, base_url, shown_tokens) = (args.live, base.clone(), tokens.clone());
    let notify = move |notice: Notice<'_>| match notice {
        Notice::Progress(progress) => print_progress(progress),
        Notice::RollingOut => eprintln!("a new version was applied from the editor: rolling it out …"),
        Notice::Draining { version } => {
            eprintln!("a new version was applied from the editor: draining version {version} …");
            shown.set_deployment(None);
        }
        Notice::Started(running) => {
            shown.set_deployment(Some(running.deployment.clone()));
            print_started(running, live, &base_url, &shown_tokens);
        }
        Notice::RolledOut { running, rollout } => {
            shown.set_deployment(Some(running.deployment.clone()));
            eprintln!("version {} runs: {}", running.deployment.running.version, describe_rollout(rollout));
        }
        Notice::RolloutFailed { version, error } => {
            eprintln!(
                "error: the new version did not roll out: {error}; version {version} runs on; fix it in the editor and apply again"
            );
            let reason = format!("the new version did not roll out ({error}); version {version} runs on");
            shown.set_phase(Phase::Failed(reason));
        }
        Notice::StartFailed { error } => {
            eprintln!("error: the new version did not start: {error}; fix it in the editor and apply again");
            // The API shows the phase's reason as text.
            shown.set_phase(Phase::Failed(stratum_core::error_chain(&error)));
        }
        Notice::DataPlaneStopped { failure, wait } => {
            eprintln!("the data plane stopped: {failure}; starting it again in {} s", wait.as_secs());
        }
        Notice::RestartFailed { error, wait } => {
            eprintln!("error: the data plane did not start again: {error}; trying again in {} s", wait.as_secs());
            shown.set_deployment(None);
            shown.set_phase(Phase::Failed(format!("{error}; trying again in {} s", wait.as_secs())));
        }
        Notice::Restarted(running) => {
            shown.set_deployment(Some(running.deployment.clone()));
            eprintln!("the data plane started again");
        }
        Notice::DataPlaneEnded => eprintln!("the data plane has ended; services and the API run until Ctrl-C"),
        Notice::ModelServed { running, model, version } => {
            shown.set_deployment(Some(running.deployment.clone()));
            eprintln!("model `{model}`: v{version} serves");
        }
        Notice::Running(running) => {
            for event in running.deployment.state.events(&running.deployment.running.app, 50).unwrap_or_default() {
                if seen_events.insert(event.id) {
                    let component = event.component.map(|component| format!(" `{component}`")).unwrap_or_default();
                    eprintln!("event: {}{component}: {}", event.kind, event.message);
                }
            }
            if interactive {
                eprintln!("{}", status_line(&running.deployment.metrics.snapshot(), began.elapsed()));
            }
        }
    };
    let supervisor = Supervisor::new(running, options, Box::new(notify));
    let versions = supervisor.versions();
    let wake = versions.wake();
    // Versions applied from the editor go to the supervisor, which runs the latest.
    let forwarding = tokio::spawn(async move {
        while let Some(reload) = reloads.recv().await {
            versions.apply(reload.application, reload.plan);
        }
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let supervising = stratum_control::reconcile::run(supervisor, wake, stopped);
    tokio::pin!(supervising);
    let deadline = args.run_for.map(|limit| tokio::time::Instant::now() + limit);
    let supervisor = tokio::select! {
        supervisor = &mut supervising => supervisor,
        _ = crate::running::shutdown_requested() => {
            eprintln!("\nstopping: draining the data plane …");
            stop.send_replace(true);
            supervising.await
        }
        _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => {
            stop.send_replace(true);
            supervising.await
        }
    };
    forwarding.abort();
    plane.set_deployment(None);
    let summary = supervisor.stop().await;
    stop_api.send_replace(true);
    let _ = api.await;
    match summary {
        Some(Ok(summary)) => {
            print_metrics(&summary.components, summary.seconds);
            Ok(Outcome::Success)
        }
        Some(Err(error)) => Err(error.into()),
        None => Ok(Outcome::UserError),
    }
}

fn print_progress(progress: &UpProgress) {
    match progress {
        UpProgress::Model(progress) => eprintln!("{}", describe_model_progress(progress)),
        UpProgress::Broker { url } => eprintln!("embedded MQTT broker: {url}"),
    }
}

/// One line for each step of making a served model ready (under `up`, and `apply --prepare-models`).
pub(crate) fn describe_model_progress(progress: &ModelProgress) -> String {
    match progress {
        ModelProgress::Bootstrapping { model, dataset, hours, rate, shortened, sinks, batches } => format!(
            "model `{model}`: dataset `{dataset}` has no data yet; simulating {hours:.1} h of history ({rate:.0} events/s) through {} and running {}{}",
            sinks.join(", "),
            if batches.is_empty() { "nothing else".to_string() } else { format!("batch {}", batches.join(", ")) },
            if *shortened {
                format!(
                    " — fewer than {BOOTSTRAP_HOURS} h, which would be {:.0} million events; `--bootstrap-hours {BOOTSTRAP_HOURS}` asks for them",
                    rate * BOOTSTRAP_HOURS * 3600.0 / 1e6
                )
            } else {
                String::new()
            }
        ),
        ModelProgress::Bootstrapped { model, events, rows } => {
            format!("model `{model}`: {events} simulated events gave {rows} rows to train on")
        }
        ModelProgress::Training { model } => format!("model `{model}`: training …"),
        ModelProgress::Trained { model, version, algorithm, metric, score, seconds } => format!(
            "model `{model}`: trained v{version} — {algorithm}, {metric} {score:.3} (cross-validated), in {seconds:.1} s"
        ),
        ModelProgress::Reused { model, version } => {
            format!("model `{model}`: v{version} in the store was trained on the same data; reusing it")
        }
        ModelProgress::Judged { model, version, judgement } => {
            format!("model `{model}`: {}", judgement.describe(*version))
        }
        ModelProgress::Imported { model, version, path } => {
            format!("model `{model}`: imported `{path}` into the model store as v{version}")
        }
        ModelProgress::Kept { model, version } => format!("model `{model}`: v{version}, imported before, serves"),
    }
}

fn print_started(running: &stratum_control::up::Running, live: bool, base: &str, tokens: &Tokens) {
    let application = &running.deployment.running.application;
    eprintln!("version {} runs; agents (one per machine, in this process):", running.deployment.running.version);
    for agent in &running.deployment.agents {
        let components: Vec<String> = agent
            .components
            .iter()
            .map(|(name, _)| match running.deployment.running.not_running.iter().find(|(other, _)| other == name) {
                Some((_, reason)) => format!("{name} (not running: {reason})"),
                None => name.clone(),
            })
            .collect();
        eprintln!("  {:<18} {:<6} {}", agent.name, agent.tier.map_or("-", |tier| tier.name()), components.join(", "));
    }
    if !live {
        let simulated: Vec<&str> = application
            .sources
            .iter()
            .filter(|source| stratum_dataplane::pipeline::simulated_source(source, running.base_dir()))
            .map(|source| source.name.as_str())
            .collect();
        if !simulated.is_empty() {
            eprintln!("simulated sources (use --live to connect them): {}", simulated.join(", "));
        }
        let sinks: Vec<String> = application
            .sinks
            .iter()
            .filter(|sink| stratum_dataplane::pipeline::simulated_sink(sink).is_some())
            .map(|sink| sink.name.clone())
            .collect();
        if !sinks.is_empty() {
            eprintln!(
                "simulated sinks (no server named; written to {}/NAME.jsonl): {}",
                stratum_dataplane::pipeline::SIMULATED_SINKS,
                sinks.join(", ")
            );
        }
    }
    eprintln!("dashboard: {base}/#token={}", tokens.operator);
    eprintln!("API:       {base}/v1/openapi.json — send `Authorization: Bearer {}`", tokens.operator);
    eprintln!("           (read-only token for viewers: {})", tokens.viewer);
    eprintln!("metrics:   {base}/metrics");
    for service in &application.services {
        eprintln!("predict:   curl -X POST {base}/v1/services/{}/predict -d '{{…}}'", service.name);
    }
    eprintln!("press Ctrl-C to stop (it drains: open windows are emitted, files written)");
}
