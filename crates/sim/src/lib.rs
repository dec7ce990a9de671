//! `stratum simulate`: what a planned application does over time — load at the declared rates, links with their
//! latency, bandwidth and loss, path buffers with their limits and policies, services autoscaled by the control
//! plane's own autoscaler, machines that fail and links that are cut — before any hardware is bought.
//!
//! Pure: no IO. It takes the checked IR and a [`Scenario`], plans with the planner's own search (after scaling the
//! tiers the scenario names), and returns a [`Report`]. The model is a fluid one advanced in fixed steps
//! (`run.rs` says exactly what happens in a step), so a day of a city of thousands of machines takes seconds.

#![warn(missing_docs)]
mod costs;
pub mod report;
mod run;
mod scale;
pub mod scenario;

pub use report::Report;
pub use scenario::{Failure, Partition, ScaleTier, Scenario, ScenarioError};

use stratum_core::ir::Application;
use stratum_planner::model::Problem;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scenario's words were not understood.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// `--scale` names a tier the file has no node of.
    #[error("--scale: the file declares no {tier} node to copy")]
    NothingToScale {
        /// The tier.
        tier: &'static str,
    },
    /// A copy's name is already a node's.
    #[error("--scale: a copy would be named `{name}`, which a node of the file already is")]
    NameTaken {
        /// The name.
        name: String,
    },
    /// The (scaled) application fits on no placement.
    #[error("no placement fits{scaled}: `{component}` fits on no machine ({reason})")]
    NoPlacement {
        /// The first component that fits nowhere.
        component: String,
        /// `" with the tiers scaled"` when the scenario scaled them.
        scaled: &'static str,
        /// Why, on the machine that came closest: the planner's own words.
        reason: String,
    },
    /// `--fail` names a machine the plan does not have.
    #[error("--fail: no machine is named `{name}` (a node's name, or a pool member's POOL-N)")]
    UnknownMachine {
        /// The name.
        name: String,
    },
    /// `--partition` names two ends no link joins.
    #[error("--partition: no link joins `{from}` and `{to}` (name two tiers, or two machines a link names)")]
    UnknownLink {
        /// One end.
        from: String,
        /// The other end.
        to: String,
    },
    /// The scenario asks for nothing to simulate.
    #[error("the duration must be longer than zero and the step shorter than the duration")]
    NothingToRun,
}

/// Each of the application's models whose prediction time `measured` knows (a model store's profiles: the caller
/// reads them, the simulator does no IO), for [`Scenario::prediction_seconds`].
pub fn measured_predictions(
    application: &Application,
    measured: impl Fn(&str) -> Option<f64>,
) -> std::collections::BTreeMap<String, f64> {
    application.models.iter().filter_map(|model| Some((model.name.clone(), measured(&model.name)?))).collect()
}

/// Simulates a checked application (free of errors) under a scenario.
pub fn simulate(application: &Application, scenario: &Scenario) -> Result<Report, Error> {
    let step = scenario.step_seconds();
    if scenario.duration <= 0.0 || step <= 0.0 || step > scenario.duration {
        return Err(Error::NothingToRun);
    }
    let mut application = application.clone();
    for scale in &scenario.scale {
        scale::scale(&mut application, scale.tier, scale.nodes)?;
    }
    let problem = Problem::from_application(&application);
    // A placement within every constraint; or, when only the links' bandwidth stands in the way, one that
    // ignores it — the simulation then shows what the overload does (queues, drops) instead of refusing.
    let mut within_bandwidth = true;
    let solution = match stratum_planner::search::solve(&problem) {
        Some(solution) => solution,
        None => {
            let mut unlimited = problem.clone();
            unlimited.links.iter_mut().for_each(|link| link.capacity = None);
            within_bandwidth = false;
            match stratum_planner::search::solve(&unlimited) {
                Some(solution) => solution,
                None => return Err(no_placement(&problem, scenario)),
            }
        }
    };
    let mut report = run::run(&application, &problem, &solution.assignment, scenario)?;
    if !within_bandwidth {
        report.notes.insert(
            0,
            "no placement keeps within the links' bandwidth (`stratum plan` refuses it); this one ignores bandwidth, and the links' figures show the overload".into(),
        );
    }
    Ok(report)
}

/// Why no placement fits, in the planner's own words for the first component that fits nowhere.
fn no_placement(problem: &Problem, scenario: &Scenario) -> Error {
    let (component, reason) = match stratum_planner::search::first_failure(problem) {
        Some((state, component)) => {
            // A rejection other than the static ones (tier, labels) says what ran out: cores, memory, bandwidth.
            let rejections: Vec<_> =
                (0..problem.hosts.len()).filter_map(|host| state.evaluate(component, host).err()).collect();
            let reason = rejections
                .iter()
                .find(|rejection| !matches!(rejection, stratum_planner::search::Rejection::Static(_)))
                .or(rejections.first())
                .map_or_else(|| "run `stratum plan` on the file to see why".into(), |rejection| rejection.describe());
            (problem.components[component].name.clone(), reason)
        }
        None => (String::new(), "run `stratum plan` on the file to see why".into()),
    };
    let scaled = if scenario.scale.is_empty() { "" } else { " with the tiers scaled" };
    Error::NoPlacement { component, scaled, reason }
}
