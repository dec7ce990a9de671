//! The most recent rows of a model's data, which a retrain holds out of its search to judge the new version on
//! ([`mod@crate::judge`]), and how far each feature moved into them from the rows before: the population stability
//! index.

use crate::prepare::{Examples, RawColumn, Target};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// The share of a model's rows a retrain holds out: the most recent fifth.
pub const RECENT_FRACTION: f64 = 0.2;

/// How many bins a numeric feature's stability index compares: the deciles of the rows before the window.
const PSI_BINS: usize = 10;

/// The smallest share a bin counts with, so that an empty bin gives a large index rather than an infinite one
/// (the usual floor for the population stability index).
const PSI_FLOOR: f64 = 1e-4;

/// How far one feature's values in the most recent rows moved from the rows before them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    /// The feature.
    pub feature: String,
    /// Its population stability index: under 0.1 little changed, 0.1 to 0.25 a moderate shift, above 0.25 a
    /// large one.
    pub psi: f64,
}

/// The rows a retrain held out, with what they are needed for.
#[derive(Clone, Debug, PartialEq)]
pub struct HeldOut {
    /// Their places in the training table.
    pub table_rows: Vec<usize>,
    /// Their targets, as the examples had them (class indices into the examples' classes, or values).
    pub(crate) truth: Target,
    /// Each feature's drift from the rows before them to them.
    pub drift: Vec<FeatureDrift>,
}

impl HeldOut {
    /// The examples from `train_rows` on, held out of a search that used the ones before.
    pub(crate) fn of(examples: &Examples, train_rows: usize) -> HeldOut {
        let drift = examples
            .names
            .iter()
            .zip(&examples.columns)
            .filter_map(|(name, column)| {
                let psi = match column {
                    RawColumn::Numeric(values) => numeric_psi(&values[..train_rows], &values[train_rows..]),
                    RawColumn::Categorical(values) => categorical_psi(&values[..train_rows], &values[train_rows..]),
                }?;
                Some(FeatureDrift { feature: name.clone(), psi })
            })
            .collect();
        HeldOut { drift, ..HeldOut::rows(examples, train_rows..examples.rows) }
    }

    /// The examples `range`, without their drift.
    pub(crate) fn rows(examples: &Examples, range: Range<usize>) -> HeldOut {
        let rows: Vec<usize> = range.collect();
        HeldOut {
            table_rows: rows.iter().map(|row| examples.table_rows[*row]).collect(),
            truth: examples.target.subset(&rows),
            drift: Vec::new(),
        }
    }
}

/// The population stability index of a number from `before` to `recent`, over the deciles of `before`; none when
/// either side has no values.
fn numeric_psi(before: &[f64], recent: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = before.iter().copied().filter(|value| value.is_finite()).collect();
    let recent: Vec<f64> = recent.iter().copied().filter(|value| value.is_finite()).collect();
    if sorted.is_empty() || recent.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = (1..PSI_BINS).map(|bin| sorted[bin * sorted.len() / PSI_BINS]).collect();
    edges.dedup();
    let bin_of = |value: &f64| edges.partition_point(|edge| edge <= value);
    let shares = |values: &[f64]| {
        let mut counts = vec![0usize; edges.len() + 1];
        for value in values {
            counts[bin_of(value)] += 1;
        }
        counts.into_iter().map(|count| count as f64 / values.len() as f64).collect::<Vec<f64>>()
    };
    Some(psi(&shares(&sorted), &shares(&recent)))
}

/// The population stability index of a category from `before` to `recent`, each category a bin (a missing value
/// too); none when either side is empty.
fn categorical_psi(before: &[Option<String>], recent: &[Option<String>]) -> Option<f64> {
    if before.is_empty() || recent.is_empty() {
        return None;
    }
    let mut categories: Vec<&Option<String>> = before.iter().chain(recent).collect();
    categories.sort();
    categories.dedup();
    let shares = |values: &[Option<String>]| -> Vec<f64> {
        categories
            .iter()
            .map(|category| values.iter().filter(|value| *value == *category).count() as f64 / values.len() as f64)
            .collect()
    };
    Some(psi(&shares(before), &shares(recent)))
}

/// Σ (recent − before) · ln(recent / before) over the bins, each share floored at [`PSI_FLOOR`].
fn psi(before: &[f64], recent: &[f64]) -> f64 {
    before
        .iter()
        .zip(recent)
        .map(|(before, recent)| {
            let (before, recent) = (before.max(PSI_FLOOR), recent.max(PSI_FLOOR));
            (recent - before) * (recent / before).ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_distribution_is_stable_and_a_shifted_one_is_not() {
        let before: Vec<f64> = (0..1000).map(|value| (value % 100) as f64).collect();
        let same: Vec<f64> = (0..200).map(|value| (value % 100) as f64).collect();
        let shifted: Vec<f64> = (0..200).map(|value| (value % 100) as f64 + 50.0).collect();
        let stable = numeric_psi(&before, &same).expect("both sides have values");
        let moved = numeric_psi(&before, &shifted).expect("both sides have values");
        assert!(stable < 0.01, "{stable}");
        // Half the recent values fall above every decile of the rows before: a large shift by the usual reading.
        assert!(moved > 0.25, "{moved}");
        assert_eq!(numeric_psi(&before, &[f64::NAN]), None);
    }

    #[test]
    fn categories_that_change_shares_drift() {
        let text = |value: &str| Some(value.to_string());
        let before: Vec<Option<String>> = (0..100).map(|row| text(if row % 2 == 0 { "car" } else { "bus" })).collect();
        let same = before.clone();
        let buses: Vec<Option<String>> = (0..100).map(|row| text(if row % 10 == 0 { "car" } else { "bus" })).collect();
        assert!(categorical_psi(&before, &same).expect("not empty") < 1e-9);
        // 0.5 → 0.1 and 0.5 → 0.9: (0.1 − 0.5)·ln(0.2) + (0.9 − 0.5)·ln(1.8) = 0.879.
        let drift = categorical_psi(&before, &buses).expect("not empty");
        assert!((drift - 0.879).abs() < 1e-3, "{drift}");
    }
}
