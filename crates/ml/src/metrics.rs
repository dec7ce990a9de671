//! Metrics that judge a model on held-out rows: accuracy, f1 (binary, or macro over classes), ROC AUC (binary, or
//! macro one-vs-rest), log loss, RMSE, MAE, R², and the silhouette of a clustering.

use crate::matrix::Matrix;
use stratum_core::ir::Metric;

/// What a fitted model said about the test rows.
pub enum Predictions {
    /// Class indices and, per row, a probability for each class.
    Classes {
        /// The class index predicted for each row.
        labels: Vec<usize>,
        /// For each row, a probability per class.
        probabilities: Vec<Vec<f64>>,
        /// How many classes there are.
        classes: usize,
    },
    /// A value per row (regression).
    Values(Vec<f64>),
    /// A cluster index per row.
    Clusters(Vec<usize>),
}

/// Scores predictions against the truth (class indices, or values). Clustering needs the features instead.
pub fn score(
    metric: Metric,
    predictions: &Predictions,
    truth_classes: &[usize],
    truth_values: &[f64],
    features: &Matrix,
) -> f64 {
    match (metric, predictions) {
        (Metric::Accuracy, Predictions::Classes { labels, .. }) => {
            labels.iter().zip(truth_classes).filter(|(a, b)| a == b).count() as f64 / labels.len().max(1) as f64
        }
        (Metric::F1, Predictions::Classes { labels, classes, .. }) => f1(labels, truth_classes, *classes),
        (Metric::RocAuc, Predictions::Classes { probabilities, classes, .. }) => {
            roc_auc(probabilities, truth_classes, *classes)
        }
        (Metric::LogLoss, Predictions::Classes { probabilities, .. }) => {
            let total: f64 = probabilities
                .iter()
                .zip(truth_classes)
                .map(|(row, truth)| -row.get(*truth).copied().unwrap_or(0.0).clamp(1e-15, 1.0).ln())
                .sum();
            total / probabilities.len().max(1) as f64
        }
        (Metric::Rmse, Predictions::Values(values)) => {
            (values.iter().zip(truth_values).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / values.len().max(1) as f64)
                .sqrt()
        }
        (Metric::Mae, Predictions::Values(values)) => {
            values.iter().zip(truth_values).map(|(a, b)| (a - b).abs()).sum::<f64>() / values.len().max(1) as f64
        }
        (Metric::R2, Predictions::Values(values)) => {
            let mean = truth_values.iter().sum::<f64>() / truth_values.len().max(1) as f64;
            let total: f64 = truth_values.iter().map(|value| (value - mean).powi(2)).sum();
            let residual: f64 = values.iter().zip(truth_values).map(|(a, b)| (a - b).powi(2)).sum();
            if total == 0.0 { 0.0 } else { 1.0 - residual / total }
        }
        (Metric::Silhouette, Predictions::Clusters(assignment)) => silhouette(features, assignment),
        _ => f64::NAN,
    }
}

/// Binary F1 of the second class (the positive one, as `true` sorts after `false`), or the macro average.
fn f1(predicted: &[usize], truth: &[usize], classes: usize) -> f64 {
    let of_class = |class: usize| {
        let true_positive = predicted.iter().zip(truth).filter(|(p, t)| **p == class && **t == class).count() as f64;
        let predicted_positive = predicted.iter().filter(|p| **p == class).count() as f64;
        let actual_positive = truth.iter().filter(|t| **t == class).count() as f64;
        if predicted_positive + actual_positive == 0.0 {
            0.0
        } else {
            2.0 * true_positive / (predicted_positive + actual_positive)
        }
    };
    if classes == 2 { of_class(1) } else { (0..classes).map(of_class).sum::<f64>() / classes as f64 }
}

/// The probability that a random positive scores above a random negative, averaged one-vs-rest.
fn roc_auc(probabilities: &[Vec<f64>], truth: &[usize], classes: usize) -> f64 {
    let of_class = |class: usize| {
        let mut scored: Vec<(f64, bool)> = probabilities
            .iter()
            .zip(truth)
            .map(|(row, t)| (row.get(class).copied().unwrap_or(0.0), *t == class))
            .collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0));
        let positives = scored.iter().filter(|(_, positive)| *positive).count() as f64;
        let negatives = scored.len() as f64 - positives;
        if positives == 0.0 || negatives == 0.0 {
            return 0.5;
        }
        // Rank sum with ties averaged (Mann–Whitney U).
        let mut rank_sum = 0.0;
        let mut index = 0;
        while index < scored.len() {
            let tied = scored[index..].iter().take_while(|(score, _)| *score == scored[index].0).count();
            let average_rank = index as f64 + (tied as f64 + 1.0) / 2.0;
            rank_sum +=
                scored[index..index + tied].iter().filter(|(_, positive)| *positive).count() as f64 * average_rank;
            index += tied;
        }
        (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
    };
    if classes == 2 { of_class(1) } else { (0..classes).map(of_class).sum::<f64>() / classes as f64 }
}

/// Mean silhouette coefficient (Euclidean), on at most 2,000 rows so that it stays fast.
fn silhouette(features: &Matrix, assignment: &[usize]) -> f64 {
    let rows: Vec<usize> = (0..features.rows).step_by((features.rows / 2000).max(1)).collect();
    let clusters = assignment.iter().copied().max().map_or(0, |max| max + 1);
    if clusters < 2 {
        return 0.0;
    }
    let distance = |a: usize, b: usize| -> f64 {
        features.row(a).iter().zip(features.row(b)).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt()
    };
    let mut total = 0.0;
    for &row in &rows {
        let mut sums = vec![0.0; clusters];
        let mut counts = vec![0usize; clusters];
        for &other in &rows {
            if other != row {
                sums[assignment[other]] += distance(row, other);
                counts[assignment[other]] += 1;
            }
        }
        let own = assignment[row];
        if counts[own] == 0 {
            continue;
        }
        let within = sums[own] / counts[own] as f64;
        let nearest = (0..clusters)
            .filter(|cluster| *cluster != own && counts[*cluster] > 0)
            .map(|cluster| sums[cluster] / counts[cluster] as f64)
            .fold(f64::INFINITY, f64::min);
        if nearest.is_finite() {
            total += (nearest - within) / within.max(nearest);
        }
    }
    total / rows.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_metrics_match_hand_computation() {
        let truth = [0, 0, 1, 1];
        let predictions = Predictions::Classes {
            labels: vec![0, 1, 1, 1],
            probabilities: vec![vec![0.9, 0.1], vec![0.4, 0.6], vec![0.35, 0.65], vec![0.2, 0.8]],
            classes: 2,
        };
        let empty = Matrix::default();
        assert_eq!(score(Metric::Accuracy, &predictions, &truth, &[], &empty), 0.75);
        assert!((score(Metric::F1, &predictions, &truth, &[], &empty) - 0.8).abs() < 1e-12);
        // Positives score 0.65 and 0.8; negatives 0.1 and 0.6: every pair is ordered correctly.
        assert_eq!(score(Metric::RocAuc, &predictions, &truth, &[], &empty), 1.0);
    }

    #[test]
    fn regression_metrics() {
        let predictions = Predictions::Values(vec![2.0, 4.0]);
        let empty = Matrix::default();
        assert_eq!(score(Metric::Mae, &predictions, &[], &[1.0, 5.0], &empty), 1.0);
        assert_eq!(score(Metric::Rmse, &predictions, &[], &[1.0, 5.0], &empty), 1.0);
        assert!((score(Metric::R2, &predictions, &[], &[1.0, 5.0], &empty) - 0.75).abs() < 1e-12);
    }
}
