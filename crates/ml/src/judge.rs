//! Judging a retrained version against the one that serves, before it serves. A retrain holds out its data's
//! most recent rows (the file's order is taken as time order): the search and the refit never see them, and
//! both versions predict them and are scored by the model's metric. The new version serves only when it scores
//! better. The same rows measure drift: the serving version's score on them beside its score when it was
//! trained, and each feature's population stability index between the rows before them and them.

use crate::data::Table;
use crate::matrix::Matrix;
use crate::metrics::{Predictions, score};
use crate::prepare::{Examples, Target};
use crate::recent::{FeatureDrift, HeldOut, RECENT_FRACTION};
use crate::search::{Prediction, TrainReport, TrainedModel};
use serde::{Deserialize, Serialize};
use stratum_core::eval::Datum;
use stratum_core::ir::Metric;

/// A retrained version judged against the version that serves, on the rows its retrain held out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// The metric both were scored by.
    pub metric: Metric,
    /// How many rows they were scored on.
    pub rows: usize,
    /// The retrained version's score.
    pub candidate: f64,
    /// The version that served.
    pub serving_version: u32,
    /// Its score on the same rows.
    pub serving: f64,
    /// Its score when it was trained (its search's mean over the folds): the drift of its metric is the
    /// difference.
    pub serving_when_trained: f64,
    /// Each feature's drift from the older rows to the held-out ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<FeatureDrift>,
    /// The retrained version scored better, so it serves.
    pub promoted: bool,
}

impl Judgement {
    /// The judgement in a sentence, numbers first, for events and the terminal.
    pub fn describe(&self, candidate_version: u32) -> String {
        let metric = self.metric.name();
        let verdict = if self.promoted {
            format!("v{candidate_version} serves")
        } else if self.candidate.is_nan() || self.serving.is_nan() {
            format!("{metric} cannot be computed on these rows, so v{} serves on", self.serving_version)
        } else {
            format!("v{candidate_version} does not score better, so v{} serves on", self.serving_version)
        };
        // A serving version trained by another metric has no score of this one from then.
        let then = if self.serving_when_trained.is_nan() {
            String::new()
        } else {
            format!(" ({:.3} when trained)", self.serving_when_trained)
        };
        let mut text = format!(
            "on the latest {} rows, {metric}: v{candidate_version} {:.3}, v{} {:.3}{then}; {verdict}",
            self.rows, self.candidate, self.serving_version, self.serving
        );
        text.push_str(&describe_features(&self.drift));
        text
    }
}

/// Judges a retrain's winner against the version that serves (`serving`, `serving_version`, whose search scored
/// it `serving_when_trained`) on the rows the retrain held out. None when it held none out, or for clustering,
/// which has no truth to score against.
pub fn judge(
    report: &TrainReport,
    serving: &TrainedModel,
    serving_version: u32,
    serving_when_trained: f64,
) -> Option<Judgement> {
    let held_out = report.held_out.as_ref()?;
    let metric = report.leaderboard.metric;
    let candidate = score_on(&report.winner, &report.table, held_out, metric)?;
    let serving_score = score_on(serving, &report.table, held_out, metric)?;
    let promoted = if metric.higher_is_better() { candidate > serving_score } else { candidate < serving_score };
    Some(Judgement {
        metric,
        rows: held_out.table_rows.len(),
        candidate,
        serving_version,
        serving: serving_score,
        serving_when_trained,
        drift: held_out.drift.clone(),
        promoted,
    })
}

/// How the version that serves does on its data's most recent rows, against how it did when trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// The metric watched.
    pub metric: Metric,
    /// How many rows it was scored on: the most recent [`RECENT_FRACTION`] of them.
    pub rows: usize,
    /// Its score on them.
    pub now: f64,
    /// Its score when it was trained (its search's, by the same metric; otherwise on the rows before the recent
    /// ones).
    pub when_trained: f64,
    /// Each feature's drift from the older rows to the recent ones.
    pub features: Vec<FeatureDrift>,
}

impl Drift {
    /// How much worse it does now than when trained (negative when better).
    pub fn worse_by(&self) -> f64 {
        if self.metric.higher_is_better() { self.when_trained - self.now } else { self.now - self.when_trained }
    }

    /// The measurement in a sentence, for events.
    pub fn describe(&self, version: u32) -> String {
        let mut text = format!(
            "{} of v{version} on the latest {} rows: {:.3}, {:.3} when trained ({:+.3})",
            self.metric.name(),
            self.rows,
            self.now,
            self.when_trained,
            self.now - self.when_trained
        );
        text.push_str(&describe_features(&self.features));
        text
    }
}

/// How `model` does by `metric` on the most recent rows of `examples` (read from `table`), against
/// `when_trained` — its search's score, when it was judged by this metric — or else its score on the rows before
/// them. None when the metric cannot score its predictions.
pub(crate) fn drift_of(
    examples: &Examples,
    table: &Table,
    model: &TrainedModel,
    metric: Metric,
    when_trained: Option<f64>,
) -> Option<Drift> {
    let held = ((examples.rows as f64 * RECENT_FRACTION).round() as usize).max(1);
    let before = examples.rows.saturating_sub(held);
    let recent = HeldOut::of(examples, before);
    let now = score_on(model, table, &recent, metric)?;
    let when_trained = match when_trained {
        Some(score) => score,
        None => score_on(model, table, &HeldOut::rows(examples, 0..before), metric)?,
    };
    Some(Drift { metric, rows: recent.table_rows.len(), now, when_trained, features: recent.drift })
}

/// Each feature's stability index as the end of a sentence (`; feature drift (PSI): x 0.02, …`); nothing without
/// features.
fn describe_features(drift: &[FeatureDrift]) -> String {
    if drift.is_empty() {
        return String::new();
    }
    let features: Vec<String> = drift.iter().map(|drift| format!("{} {:.2}", drift.feature, drift.psi)).collect();
    format!("; feature drift (PSI): {}", features.join(", "))
}

/// A model's score by `metric` on the held-out rows, read from the table by field name (so a version trained on
/// other features or classes is scored the same way it serves).
fn score_on(model: &TrainedModel, table: &Table, held_out: &HeldOut, metric: Metric) -> Option<f64> {
    let readers: Vec<_> = held_out.table_rows.iter().map(|row| table.field_reader(&table.rows[*row])).collect();
    let records: Vec<&dyn Fn(&str) -> Datum> = readers.iter().map(|reader| reader as &dyn Fn(&str) -> Datum).collect();
    let predictions = model.predict(&records);
    let no_features = Matrix::new(0, 0);
    match &held_out.truth {
        Target::Classes { labels, classes } => {
            // Both sides in one class list: the data's classes and any the model knows that the data lost.
            let mut all: Vec<String> = classes.iter().chain(&model.classes).cloned().collect();
            all.sort();
            all.dedup();
            let place = |class: &str| all.binary_search_by(|known| known.as_str().cmp(class)).ok();
            let truth: Vec<usize> = labels.iter().filter_map(|label| place(&classes[*label])).collect();
            let mut predicted = Vec::with_capacity(predictions.len());
            let mut probabilities = Vec::with_capacity(predictions.len());
            for prediction in predictions {
                let Prediction::Class { label, probabilities: own } = prediction else { return None };
                predicted.push(place(&label).unwrap_or(0));
                let mut row = vec![0.0; all.len()];
                for (class, probability) in model.classes.iter().zip(own) {
                    if let Some(index) = place(class) {
                        row[index] = probability;
                    }
                }
                probabilities.push(row);
            }
            let predictions = Predictions::Classes { labels: predicted, probabilities, classes: all.len() };
            Some(score(metric, &predictions, &truth, &[], &no_features))
        }
        Target::Values(values) => {
            let predicted: Option<Vec<f64>> = predictions
                .into_iter()
                .map(|prediction| match prediction {
                    Prediction::Value(value) => Some(value),
                    _ => None,
                })
                .collect();
            Some(score(metric, &Predictions::Values(predicted?), &[], values, &no_features))
        }
        Target::None => None,
    }
}
