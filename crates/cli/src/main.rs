//! The `stratum` command: checks, formats, explains, plans, trains and runs Stratum applications.
//!
//! Exit codes: 0 success, 1 a problem in the user's input (diagnostics, an unformatted file, a bad argument),
//! 2 an internal error (a bug in Stratum: please report it).

mod cluster;
mod commands;
#[cfg(test)]
mod generated_commands;
mod loader;
mod output;
mod reach;
mod running;
mod simulate;
mod training;
mod up;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The command line; generated deployments are tested against it (`tests` below), so what they run parses.
#[derive(Parser)]
#[command(
    name = "stratum",
    version,
    about = "Describe, check and run ML analytics applications across edge, fog and cloud"
)]
struct Cli {
    /// When to colour diagnostics: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, global = true, value_enum, default_value_t = output::ColorChoice::Auto)]
    color: output::ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a .stratum file: syntax, names, types, units, privacy, dataflow and training soundness.
    Check(commands::CheckArgs),
    /// Format .stratum files canonically (keeps comments).
    Fmt(commands::FmtArgs),
    /// Explain a diagnostic code with a wrong and a right example, or list all codes.
    Explain(commands::ExplainArgs),
    /// Decide where every component runs across edge, fog and cloud, and prove it fits machines and network.
    Plan(commands::PlanArgs),
    /// What the application does over time, before any machine is bought: load, links, buffers, services,
    /// failures and partitions, on the machines the file declares or a scaled fleet.
    Simulate(simulate::SimulateArgs),
    /// Write infrastructure code for the plan: kubernetes, compose or ansible.
    Generate(commands::GenerateArgs),
    /// Train the models of a file: search the candidates, print a leaderboard, save the winner as an artifact.
    Train(training::TrainArgs),
    /// The local model store: list, show, export and import models.
    #[command(subcommand)]
    Model(training::ModelCommand),
    /// Run the sources, streams and sinks of a file on this machine (until the control plane runs them).
    RunPipeline(running::RunPipelineArgs),
    /// Run one batch query of a file now, writing the dataset it fills.
    RunBatch(running::RunBatchArgs),
    /// Run a whole application on this machine: models made ready, every component started, an API to use it.
    Up(up::UpArgs),
    /// What happened to a component of a running (or stopped) application: its events, and a tool's output.
    Logs(up::LogsArgs),
    /// The control plane for real machines: agents join it, `apply` sends it applications.
    Server(cluster::ServerArgs),
    /// The agent of one machine: joins a control plane and runs what it assigns.
    Agent(cluster::AgentArgs),
    /// Check and plan a file and send it to a control plane, which rolls it out to its agents.
    Apply(cluster::ApplyArgs),
    /// Agents and the components they run, from a control plane (or `stratum up`).
    Status(cluster::StatusArgs),
    /// Forget an agent that is gone for good or replaced: its key goes, its components move elsewhere, and the
    /// next join under its name is a new machine.
    Forget(cluster::ForgetArgs),
    /// The embedded MQTT broker on its own, for deployments across machines.
    Broker(cluster::BrokerArgs),
    /// Whether the Stratum process at an address answers (the container image's health check).
    Health(cluster::HealthArgs),
}

/// What a command reports back to `main`. A command that fails returns its error instead, which `main` prints (the
/// one path from an error to the exit code); `UserError` is for problems it has reported itself, such as
/// diagnostics or an error with a hint beside it.
pub enum Outcome {
    Success,
    /// The input has problems; they have been reported.
    UserError,
}

/// What goes wrong while things run — a broker that cannot be reached, a prediction that failed, a replica that
/// did not start — is logged by the libraries as warnings; they go to stderr, one line each. `STRATUM_LOG` shows
/// more or less, in `RUST_LOG`'s syntax (`info`, `stratum_control=debug`, `off`). The embedded MQTT broker's own
/// log (rumqttd: a client that connected and left, a link dropped at shutdown) is left out unless asked for;
/// whether it runs is Stratum's to say.
fn show_warnings() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATUM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rumqttd=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .try_init();
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { ExitCode::from(1) } else { ExitCode::SUCCESS };
        }
    };
    let color = cli.color;
    show_warnings();
    // A reader that stops early (`stratum … | head`) closes stdout; printing then fails, which is not a bug.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_broken_pipe(info.payload()) {
            default_hook(info);
        }
    }));
    let result = std::panic::catch_unwind(move || match cli.command {
        Command::Check(args) => commands::check(args, color),
        Command::Fmt(args) => commands::fmt(args, color),
        Command::Explain(args) => commands::explain(args),
        Command::Plan(args) => commands::plan(args, color),
        Command::Simulate(args) => simulate::simulate(args, color),
        Command::Generate(args) => commands::generate(args, color),
        Command::Train(args) => training::train(args, color),
        Command::Model(command) => training::model(command),
        Command::RunPipeline(args) => running::run_pipeline(args, color),
        Command::RunBatch(args) => running::run_batch(args, color),
        Command::Up(args) => up::run(args, color),
        Command::Logs(args) => match args.remote() {
            Some((server, token, ca_cert)) => {
                cluster::remote_logs(server, token, ca_cert, args.component(), args.events())
            }
            None => up::logs(args),
        },
        Command::Server(args) => cluster::server(args),
        Command::Agent(args) => cluster::agent(args),
        Command::Apply(args) => cluster::apply(args, color),
        Command::Status(args) => cluster::status(args),
        Command::Forget(args) => cluster::forget(args),
        Command::Broker(args) => cluster::broker(args),
        Command::Health(args) => cluster::health(args),
    });
    match result {
        Ok(Ok(Outcome::Success)) => ExitCode::SUCCESS,
        Ok(Ok(Outcome::UserError)) => ExitCode::from(1),
        Ok(Err(error)) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::from(1)
        }
        Err(payload) if is_broken_pipe(payload.as_ref()) => ExitCode::SUCCESS,
        Err(_) => {
            eprintln!("internal error: stratum crashed; this is a bug, please report it with the input that caused it");
            ExitCode::from(2)
        }
    }
}

/// The one way a command's error reaches the user: the error and its causes on one line. Stratum's own errors say
/// their cause in their message (and keep it as their source), so a cause whose words are already there is not said
/// twice.
fn one_line(error: &anyhow::Error) -> String {
    stratum_core::error_chain(error.as_ref())
}

/// Whether a panic came from writing to a closed pipe.
fn is_broken_pipe(payload: &(dyn std::any::Any + Send)) -> bool {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    message.contains("Broken pipe")
}

#[cfg(test)]
mod tests {
    use super::Cli;

    #[test]
    fn an_error_that_says_its_cause_is_not_repeated_but_a_context_gets_its_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let own = stratum_dataplane::Error::Io { context: "reading x".into(), source: io };
        assert_eq!(super::one_line(&anyhow::Error::from(own)), "reading x: no such file");
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let context = anyhow::Error::from(io).context("cannot read `x`");
        assert_eq!(super::one_line(&context), "cannot read `x`: no such file");
    }
    use clap::CommandFactory;

    /// Every argument read from the environment whose name says it holds a secret, in every subcommand.
    fn secret_arguments(command: &clap::Command, found: &mut Vec<(String, String, bool)>) {
        for argument in command.get_arguments() {
            if let Some(variable) = argument.get_env().and_then(|name| name.to_str())
                && variable.contains("TOKEN")
            {
                found.push((command.get_name().to_string(), variable.to_string(), argument.is_hide_env_values_set()));
            }
        }
        for subcommand in command.get_subcommands() {
            secret_arguments(subcommand, found);
        }
    }

    #[test]
    fn help_never_prints_a_secret_from_the_environment() {
        let mut found = Vec::new();
        secret_arguments(&Cli::command(), &mut found);
        assert!(found.len() >= 5, "the token arguments are found: {found:?}");
        let shown: Vec<_> = found.iter().filter(|(_, _, hidden)| !hidden).collect();
        assert!(shown.is_empty(), "--help would print these secrets' values: {shown:?}");
    }
}
