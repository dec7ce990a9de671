//! Terminal output: colour choice and the human summary of a checked application.

use std::io::IsTerminal;
use stratum_core::ir::Application;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Colour for standard error: on a terminal unless NO_COLOR is set (https://no-color.org), or when forced.
    pub fn for_stderr(self) -> bool {
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
pub enum Format {
    Human,
    Json,
}

/// Counts of every kind of item, in the order the language reference presents them.
pub fn counts(application: &Application) -> Vec<(&'static str, usize)> {
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
pub fn describe_counts(application: &Application) -> String {
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
