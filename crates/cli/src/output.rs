//! Terminal output: colour choice, the human summary of a checked application and a model search's leaderboard.

use std::io::IsTerminal;
use stratum_core::ir::Application;
use stratum_ml::Leaderboard;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Colour for standard error: on a terminal unless NO_COLOR is set (<https://no-color.org>), or when forced.
    pub(crate) fn for_stderr(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty()) && std::io::stderr().is_terminal()
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Human,
    Json,
}

/// Counts of every kind of item, in the order the language reference presents them.
pub(crate) fn counts(application: &Application) -> Vec<(&'static str, usize)> {
    vec![
        ("nodes", application.nodes.len()),
        ("pools", application.pools.len()),
        ("links", application.links.len()),
        ("schemas", application.schemas.len()),
        ("sources", application.sources.len()),
        ("streams", application.streams.len()),
        ("sinks", application.sinks.len()),
        ("datasets", application.datasets.len()),
        ("batches", application.batches.len()),
        ("models", application.models.len()),
        ("services", application.services.len()),
        ("tools", application.tools.len()),
        ("dashboards", application.dashboards.len()),
        ("policies", application.policies.len()),
    ]
}

/// "3 nodes, 1 pool, …" without the kinds the application has none of.
pub(crate) fn describe_counts(application: &Application) -> String {
    counts(application)
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .map(|(kind, count)| {
            let singular = match kind {
                "batches" => "batch",
                "policies" => "policy",
                other => other.trim_end_matches('s'),
            };
            if count == 1 { format!("{count} {singular}") } else { format!("{count} {kind}") }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The search's candidates by rank, with their scores or why they failed.
pub(crate) fn print_leaderboard(leaderboard: &Leaderboard) {
    let metric = leaderboard.metric.name();
    let direction = if leaderboard.higher_is_better { "higher is better" } else { "lower is better" };
    println!("leaderboard by {metric} ({direction})");
    println!("  {:>4}  {:<20} {:<40} {:>17}  {:>8}", "rank", "algorithm", "hyperparameters", metric, "fit");
    for entry in &leaderboard.entries {
        let params = entry.params.describe();
        let params = if params.chars().count() > 40 {
            format!("{}…", params.chars().take(39).collect::<String>())
        } else {
            params
        };
        match &entry.error {
            Some(error) => println!("  {:>4}  {:<20} {:<40} failed: {error}", entry.rank, entry.algorithm, params),
            None => println!(
                "  {:>4}  {:<20} {:<40} {:>17}  {:>6.2} s",
                entry.rank,
                entry.algorithm,
                params,
                format!("{:.4} ± {:.4}", entry.mean, entry.std),
                entry.fit_seconds
            ),
        }
    }
    if leaderboard.skipped > 0 {
        println!("  ({} candidates not evaluated: the time budget ran out)", leaderboard.skipped);
    }
}
