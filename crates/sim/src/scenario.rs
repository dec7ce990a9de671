//! What a simulation is asked: how long, in what steps, with which tiers scaled to how many machines, and which
//! machines fail and which links are cut when. Written on the command line as `--scale edge=5000`,
//! `--fail fog_downtown@10m` (or `@10m+5m` for a machine that comes back) and `--partition edge->fog@8h+10m`.

use stratum_core::ir::Tier;
use stratum_core::units::parse_duration_text;

/// How long the control plane waits for a machine's heartbeat before it counts it lost (the server's default).
pub const DEFAULT_AGENT_TIMEOUT_SECONDS: f64 = 10.0;

/// Everything a simulation is asked.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Simulated seconds.
    pub duration: f64,
    /// Seconds per step; by default the duration over 20,000, within 0.1 s and 5 s.
    pub step: Option<f64>,
    /// Tiers whose machines are multiplied (or cut) to a number.
    pub scale: Vec<ScaleTier>,
    /// Machines that stop.
    pub failures: Vec<Failure>,
    /// Links that are cut for a while.
    pub partitions: Vec<Partition>,
    /// Seconds without a heartbeat before a machine counts as lost and its work is placed elsewhere.
    pub agent_timeout: f64,
    /// Seconds one prediction takes, by model, as measured (a stored model's profile); a model not named here
    /// takes the planner's estimate from its candidates.
    pub prediction_seconds: std::collections::BTreeMap<String, f64>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            duration: 3600.0,
            step: None,
            scale: Vec::new(),
            failures: Vec::new(),
            partitions: Vec::new(),
            agent_timeout: DEFAULT_AGENT_TIMEOUT_SECONDS,
            prediction_seconds: Default::default(),
        }
    }
}

impl Scenario {
    /// The step the simulation takes: as asked, or the duration over 20,000 within 0.1 s and 5 s.
    pub fn step_seconds(&self) -> f64 {
        self.step.unwrap_or((self.duration / 20_000.0).clamp(0.1, 5.0))
    }
}

/// `edge=5000`: the tier's machines become this many copies of the ones the file declares.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleTier {
    /// The tier.
    pub tier: Tier,
    /// How many machines it has.
    pub nodes: u32,
}

/// `fog_downtown@10m` or `fog_downtown@10m+5m`: a machine stops at a time, for good or for a while.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The machine (a node's name, or a pool member's `POOL-N`).
    pub host: String,
    /// Seconds from the start.
    pub at: f64,
    /// Seconds until it is back; never, when absent.
    pub lasting: Option<f64>,
}

/// `edge->fog@8h+10m`: the links between two tiers (or named machines) carry nothing for a while.
#[derive(Clone, Debug, PartialEq)]
pub struct Partition {
    /// A tier or a machine at one end.
    pub from: String,
    /// A tier or a machine at the other end.
    pub to: String,
    /// Seconds from the start.
    pub at: f64,
    /// Seconds it lasts.
    pub lasting: f64,
}

/// Why a scenario's words were not understood.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A `--scale` is not `TIER=COUNT`.
    #[error("`--scale {0}`: write TIER=COUNT, such as edge=5000")]
    Scale(String),
    /// A `--fail` is not `MACHINE@TIME[+DURATION]`.
    #[error("`--fail {0}`: write MACHINE@TIME or MACHINE@TIME+DURATION, such as fog_downtown@10m+5m")]
    Fail(String),
    /// A `--partition` is not `FROM->TO@TIME+DURATION`.
    #[error("`--partition {0}`: write FROM->TO@TIME+DURATION, such as edge->fog@8h+10m")]
    Partition(String),
    /// A time in one of them is not a duration.
    #[error("`{written}`: {source}")]
    Time {
        /// What was written.
        written: String,
        /// Why it is not a duration.
        #[source]
        source: stratum_core::units::DurationTextError,
    },
}

fn seconds(written: &str, text: &str) -> Result<f64, ScenarioError> {
    parse_duration_text(text).map_err(|source| ScenarioError::Time { written: written.to_string(), source })
}

/// `TIME` or `TIME+DURATION`.
fn when(written: &str, text: &str) -> Result<(f64, Option<f64>), ScenarioError> {
    match text.split_once('+') {
        Some((at, lasting)) => Ok((seconds(written, at)?, Some(seconds(written, lasting)?))),
        None => Ok((seconds(written, text)?, None)),
    }
}

impl ScaleTier {
    /// Reads `TIER=COUNT`.
    pub fn parse(text: &str) -> Result<ScaleTier, ScenarioError> {
        let wrong = || ScenarioError::Scale(text.to_string());
        let (tier, count) = text.split_once('=').ok_or_else(wrong)?;
        let tier = Tier::from_name(tier.trim()).ok_or_else(wrong)?;
        let nodes = count.trim().parse::<u32>().ok().filter(|nodes| *nodes > 0).ok_or_else(wrong)?;
        Ok(ScaleTier { tier, nodes })
    }
}

impl Failure {
    /// Reads `MACHINE@TIME` or `MACHINE@TIME+DURATION`.
    pub fn parse(text: &str) -> Result<Failure, ScenarioError> {
        let (host, time) = text.split_once('@').ok_or_else(|| ScenarioError::Fail(text.to_string()))?;
        if host.trim().is_empty() {
            return Err(ScenarioError::Fail(text.to_string()));
        }
        let (at, lasting) = when(text, time)?;
        Ok(Failure { host: host.trim().to_string(), at, lasting })
    }
}

impl Partition {
    /// Reads `FROM->TO@TIME+DURATION`.
    pub fn parse(text: &str) -> Result<Partition, ScenarioError> {
        let wrong = || ScenarioError::Partition(text.to_string());
        let (ends, time) = text.split_once('@').ok_or_else(wrong)?;
        let (from, to) = ends.split_once("->").ok_or_else(wrong)?;
        let (at, lasting) = when(text, time)?;
        let lasting = lasting.ok_or_else(wrong)?;
        if from.trim().is_empty() || to.trim().is_empty() {
            return Err(wrong());
        }
        Ok(Partition { from: from.trim().to_string(), to: to.trim().to_string(), at, lasting })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_forms_are_read() {
        assert_eq!(ScaleTier::parse("edge=5000").unwrap(), ScaleTier { tier: Tier::Edge, nodes: 5000 });
        assert_eq!(
            Failure::parse("fog_downtown@10m").unwrap(),
            Failure { host: "fog_downtown".into(), at: 600.0, lasting: None }
        );
        assert_eq!(
            Failure::parse("fog_downtown@90s+2min").unwrap(),
            Failure { host: "fog_downtown".into(), at: 90.0, lasting: Some(120.0) }
        );
        assert_eq!(
            Partition::parse("edge->fog@8h+10m").unwrap(),
            Partition { from: "edge".into(), to: "fog".into(), at: 28_800.0, lasting: 600.0 }
        );
    }

    #[test]
    fn a_wrong_form_says_how_to_write_it() {
        for (result, expected) in [
            (ScaleTier::parse("edge").map(|_| ()), "write TIER=COUNT"),
            (ScaleTier::parse("mars=3").map(|_| ()), "write TIER=COUNT"),
            (ScaleTier::parse("edge=0").map(|_| ()), "write TIER=COUNT"),
            (Failure::parse("fog@soon").map(|_| ()), "`soon` is not a duration"),
            (Failure::parse("@10m").map(|_| ()), "write MACHINE@TIME"),
            (Partition::parse("edge->fog@8h").map(|_| ()), "FROM->TO@TIME+DURATION"),
            (Partition::parse("edge@8h+1m").map(|_| ()), "FROM->TO@TIME+DURATION"),
            (Partition::parse("edge->fog@8x+1m").map(|_| ()), "unknown unit `x`"),
        ] {
            let message = stratum_core::error_chain(&result.unwrap_err());
            assert!(message.contains(expected), "{message}");
        }
    }
}
