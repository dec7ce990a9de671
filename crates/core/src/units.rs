//! Physical units of the language: sizes, durations, event rates, bandwidth, money per hour, fractions.
//!
//! A quantity is written as a number followed by a unit (`4 GiB`, `5 ms`, `50/s`, `100 Mbit/s`, `0.34 USD/h`,
//! `80%`). The front end looks the unit up here, checks its dimension against what the attribute expects and
//! stores the value in the base unit of that dimension, so that nothing downstream ever converts units again.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a quantity measures. Two quantities can only be compared when their dimensions agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// Bytes (`B`, `KiB`, `MiB`, `GiB`, `TiB`, and decimal `kB`, `MB`, `GB`, `TB`).
    Size,
    /// Seconds (`ms`, `s`, `min`, `h`, `d`).
    Duration,
    /// Events per second (`50/s`, `3000/min`).
    Rate,
    /// Bits per second (`bit/s`, `kbit/s`, `Mbit/s`, `Gbit/s`).
    Bandwidth,
    /// An amount of money per hour (`0.34 USD/h`).
    MoneyPerHour,
    /// A plain fraction from a percentage (`80%` is 0.8).
    Fraction,
    /// A count of trials, for search budgets (`50 trials`).
    Trials,
}

impl Dimension {
    /// A human description with example units, used in diagnostics.
    pub fn describe(self) -> &'static str {
        match self {
            Dimension::Size => "a size (B, KiB, MiB, GiB, TiB)",
            Dimension::Duration => "a duration (ms, s, min, h, d)",
            Dimension::Rate => "a rate (for example 50/s or 3000/min)",
            Dimension::Bandwidth => "a bandwidth (kbit/s, Mbit/s, Gbit/s)",
            Dimension::MoneyPerHour => "a cost per hour (for example 0.34 USD/h)",
            Dimension::Fraction => "a percentage (for example 80%)",
            Dimension::Trials => "a number of trials (for example 50 trials)",
        }
    }

    /// A short example of a correct value, used in help lines.
    pub fn example(self) -> &'static str {
        match self {
            Dimension::Size => "4 GiB",
            Dimension::Duration => "5 ms",
            Dimension::Rate => "50/s",
            Dimension::Bandwidth => "100 Mbit/s",
            Dimension::MoneyPerHour => "0.34 USD/h",
            Dimension::Fraction => "80%",
            Dimension::Trials => "50 trials",
        }
    }
}

/// A unit resolved from its spelling: its dimension, the factor to the base unit, and for money the currency.
#[derive(Clone, Debug, PartialEq)]
pub struct Unit {
    /// What it measures.
    pub dimension: Dimension,
    /// Multiply a value in this unit by `factor` to get the base unit of the dimension.
    pub factor: f64,
    /// For money, the currency (`USD`).
    pub currency: Option<String>,
}

const SIZE_UNITS: &[(&str, f64)] = &[
    ("B", 1.0),
    ("KiB", 1024.0),
    ("MiB", 1024.0 * 1024.0),
    ("GiB", 1024.0 * 1024.0 * 1024.0),
    ("TiB", 1024.0 * 1024.0 * 1024.0 * 1024.0),
    ("kB", 1e3),
    ("KB", 1e3),
    ("MB", 1e6),
    ("GB", 1e9),
    ("TB", 1e12),
];

const DURATION_UNITS: &[(&str, f64)] = &[("ms", 0.001), ("s", 1.0), ("min", 60.0), ("h", 3600.0), ("d", 86400.0)];

const BANDWIDTH_UNITS: &[(&str, f64)] = &[("bit", 1.0), ("kbit", 1e3), ("Kbit", 1e3), ("Mbit", 1e6), ("Gbit", 1e9)];

/// Every unit spelling the language accepts, for did-you-mean suggestions.
pub fn known_unit_spellings() -> Vec<String> {
    let mut all: Vec<String> = SIZE_UNITS.iter().map(|(name, _)| name.to_string()).collect();
    all.extend(DURATION_UNITS.iter().map(|(name, _)| name.to_string()));
    all.extend(BANDWIDTH_UNITS.iter().map(|(name, _)| format!("{name}/s")));
    all.extend(["/s", "/min", "/h", "USD/h", "EUR/h", "%", "trials"].map(String::from));
    all
}

fn duration_factor(name: &str) -> Option<f64> {
    DURATION_UNITS.iter().find(|(unit, _)| *unit == name).map(|(_, factor)| *factor)
}

/// A duration as typed on a command line, in seconds: `30s`, `500ms`, `5min` (or `5m`), `2h`, `1d`, `1.5 s`; a
/// bare number is seconds.
pub fn parse_duration_text(text: &str) -> Result<f64, DurationTextError> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| DurationTextError::NotADuration(text.to_string()))?;
    let factor = match unit.trim() {
        "" => 1.0,
        "m" => 60.0,
        unit => duration_factor(unit).ok_or_else(|| DurationTextError::UnknownUnit(unit.to_string()))?,
    };
    Ok(number * factor)
}

/// Why a duration typed on a command line was not understood.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DurationTextError {
    /// It does not start with a number.
    #[error("`{0}` is not a duration such as 30s or 5min")]
    NotADuration(String),
    /// Its unit is none of the duration units.
    #[error("unknown unit `{0}`: use ms, s, min, h or d")]
    UnknownUnit(String),
}

/// Why a unit spelling was not understood.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum UnitError {
    /// No unit is spelled so.
    #[error("unknown unit `{0}`")]
    Unknown(String),
}

/// Looks up a unit as written after a number: `GiB`, `ms`, `/s`, `Mbit/s`, `USD/h`, `%`, `trials`.
pub fn parse_unit(spelling: &str) -> Result<Unit, UnitError> {
    let unknown = || UnitError::Unknown(spelling.to_string());
    let plain = |dimension, factor| Unit { dimension, factor, currency: None };
    if spelling == "%" {
        return Ok(plain(Dimension::Fraction, 0.01));
    }
    if spelling == "trials" || spelling == "trial" {
        return Ok(plain(Dimension::Trials, 1.0));
    }
    if let Some((numerator, per)) = spelling.split_once('/') {
        let per_seconds = duration_factor(per).ok_or_else(unknown)?;
        if numerator.is_empty() || numerator == "events" {
            return Ok(plain(Dimension::Rate, 1.0 / per_seconds));
        }
        if let Some((_, bits)) = BANDWIDTH_UNITS.iter().find(|(unit, _)| *unit == numerator) {
            return Ok(plain(Dimension::Bandwidth, bits / per_seconds));
        }
        if numerator.len() == 3 && numerator.chars().all(|c| c.is_ascii_uppercase()) {
            return Ok(Unit {
                dimension: Dimension::MoneyPerHour,
                // Money is kept per hour: 1 USD/min is 60 USD/h.
                factor: 3600.0 / per_seconds,
                currency: Some(numerator.to_string()),
            });
        }
        return Err(unknown());
    }
    match spelling {
        "Mbps" => return Ok(plain(Dimension::Bandwidth, 1e6)),
        "Gbps" => return Ok(plain(Dimension::Bandwidth, 1e9)),
        "kbps" => return Ok(plain(Dimension::Bandwidth, 1e3)),
        _ => {}
    }
    if let Some((_, factor)) = SIZE_UNITS.iter().find(|(unit, _)| *unit == spelling) {
        return Ok(plain(Dimension::Size, *factor));
    }
    if let Some(factor) = duration_factor(spelling) {
        return Ok(plain(Dimension::Duration, factor));
    }
    Err(unknown())
}

/// A size in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// In bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        const STEPS: &[(&str, u64)] = &[("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (name, size) in STEPS {
            if self.0 >= *size {
                return write!(formatter, "{} {name}", trim_number(self.0 as f64 / *size as f64));
            }
        }
        write!(formatter, "{} B", self.0)
    }
}

/// A duration in seconds (fractions allowed: 5 ms is 0.005).
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Duration(pub f64);

impl Duration {
    /// In seconds.
    pub fn seconds(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0;
        // The largest unit in which the value is at least 1, so 47721 s reads as 13.256 h.
        let (value, unit) = if seconds == 0.0 {
            (0.0, "s")
        } else if seconds < 1.0 {
            (seconds * 1000.0, "ms")
        } else if seconds < 60.0 {
            (seconds, "s")
        } else if seconds < 3600.0 {
            (seconds / 60.0, "min")
        } else if seconds < 86400.0 {
            (seconds / 3600.0, "h")
        } else {
            (seconds / 86400.0, "d")
        };
        write!(formatter, "{} {unit}", trim_number(value))
    }
}

/// An event rate in events per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventRate(pub f64);

impl fmt::Display for EventRate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/s", trim_number(self.0))
    }
}

/// A bandwidth in bits per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bandwidth(pub f64);

impl fmt::Display for Bandwidth {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        const STEPS: &[(&str, f64)] = &[("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)];
        for (name, size) in STEPS {
            if self.0 >= *size {
                return write!(formatter, "{} {name}", trim_number(self.0 / size));
            }
        }
        write!(formatter, "{} bit/s", trim_number(self.0))
    }
}

/// Money per hour, with its currency (`0.34 USD/h`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HourlyCost {
    /// How much per hour.
    pub amount: f64,
    /// In which currency.
    pub currency: String,
}

impl fmt::Display for HourlyCost {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} {}/h", trim_number(self.amount), self.currency)
    }
}

/// Prints a number without a trailing `.0` and with at most three decimals.
pub fn trim_number(value: f64) -> String {
    let rounded = (value * 1000.0).round() / 1000.0;
    if rounded.fract() == 0.0 && rounded.abs() < 1e15 { format!("{}", rounded as i64) } else { format!("{rounded}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_binary_or_decimal_as_written() {
        assert_eq!(parse_unit("GiB").unwrap().factor, 1073741824.0);
        assert_eq!(parse_unit("GB").unwrap().factor, 1e9);
        assert_eq!(parse_unit("KiB").unwrap().dimension, Dimension::Size);
    }

    #[test]
    fn compound_units_resolve_to_base_units() {
        let rate = parse_unit("/min").unwrap();
        assert_eq!(rate.dimension, Dimension::Rate);
        assert!((rate.factor - 1.0 / 60.0).abs() < 1e-12);
        let bandwidth = parse_unit("Mbit/s").unwrap();
        assert_eq!((bandwidth.dimension, bandwidth.factor), (Dimension::Bandwidth, 1e6));
        let money = parse_unit("USD/h").unwrap();
        assert_eq!(money.dimension, Dimension::MoneyPerHour);
        assert_eq!(money.factor, 1.0);
        assert_eq!(money.currency.as_deref(), Some("USD"));
        let per_day = parse_unit("EUR/d").unwrap();
        assert!((per_day.factor - 1.0 / 24.0).abs() < 1e-12);
    }

    #[test]
    fn unknown_units_are_errors() {
        assert_eq!(parse_unit("parsecs"), Err(UnitError::Unknown("parsecs".into())));
        assert!(parse_unit("Mbit/fortnight").is_err());
        assert!(parse_unit("usd/h").is_err());
    }

    #[test]
    fn values_display_in_the_largest_whole_unit() {
        assert_eq!(ByteSize(4 << 30).to_string(), "4 GiB");
        assert_eq!(ByteSize(1536 << 20).to_string(), "1.5 GiB");
        assert_eq!(Duration(0.005).to_string(), "5 ms");
        assert_eq!(Duration(86400.0).to_string(), "1 d");
        assert_eq!(Duration(90.0).to_string(), "1.5 min");
        assert_eq!(Duration(47721.859).to_string(), "13.256 h");
        assert_eq!(Bandwidth(1e8).to_string(), "100 Mbit/s");
        assert_eq!(EventRate(50.0).to_string(), "50/s");
    }
}
