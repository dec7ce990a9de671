//! `stratum simulate FILE`: what the application does over time on the machines it declares (or a scaled fleet),
//! with machines that fail and links that are cut, printed as a table or as JSON (the simulator: `stratum-sim`).

use crate::Outcome;
use crate::commands::checked_without_errors;
use crate::output::{ColorChoice, Format};
use std::path::PathBuf;
use stratum_sim::{Failure, Partition, ScaleTier, Scenario};

#[derive(clap::Args)]
pub(crate) struct SimulateArgs {
    /// The .stratum file to simulate.
    file: PathBuf,
    /// How long to simulate: 30s, 10min, 8h, 1d.
    #[arg(long = "for", value_name = "DURATION", default_value = "1h", value_parser = seconds)]
    duration: f64,
    /// Seconds per step (by default the duration over 20,000, within 0.1 s and 5 s).
    #[arg(long, value_name = "DURATION", value_parser = seconds)]
    step: Option<f64>,
    /// A tier's machines become this many copies of those the file declares: edge=5000.
    #[arg(long, value_name = "TIER=COUNT", value_parser = |text: &str| ScaleTier::parse(text))]
    scale: Vec<ScaleTier>,
    /// A machine stops at a time, for good or for a while: fog_downtown@10m, fog_downtown@10m+5m.
    #[arg(long, value_name = "MACHINE@TIME[+DURATION]", value_parser = |text: &str| Failure::parse(text))]
    fail: Vec<Failure>,
    /// The links between two tiers (or machines) are cut for a while: edge->fog@8h+10m.
    #[arg(long, value_name = "FROM->TO@TIME+DURATION", value_parser = |text: &str| Partition::parse(text))]
    partition: Vec<Partition>,
    /// How long the control plane waits for a heartbeat before it counts a machine lost (the server's
    /// --agent-timeout).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = seconds)]
    agent_timeout: f64,
    /// The model store whose profiles say how long a prediction takes (the planner's estimate for a model not in
    /// it).
    #[arg(long, default_value = ".stratum/models")]
    store: PathBuf,
    /// A table, or the report as JSON.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

fn seconds(text: &str) -> Result<f64, stratum_core::units::DurationTextError> {
    stratum_core::units::parse_duration_text(text)
}

pub(crate) fn simulate(args: SimulateArgs, color: ColorChoice) -> anyhow::Result<Outcome> {
    let Some(checked) = checked_without_errors(&args.file, color)? else { return Ok(Outcome::UserError) };
    let scenario = Scenario {
        duration: args.duration,
        step: args.step,
        scale: args.scale,
        failures: args.fail,
        partitions: args.partition,
        agent_timeout: args.agent_timeout,
        prediction_seconds: stratum_sim::measured_predictions(&checked.application, |model| {
            stratum_ml::ModelStore::new(&args.store).prediction_seconds(model)
        }),
    };
    let started = std::time::Instant::now();
    let report = stratum_sim::simulate(&checked.application, &scenario)?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Human => {
            print!("{}", report.render());
            println!("(simulated in {:.1} s)", started.elapsed().as_secs_f64());
        }
    }
    Ok(Outcome::Success)
}
