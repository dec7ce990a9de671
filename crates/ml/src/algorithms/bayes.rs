//! Naive Bayes classifiers: Gaussian (per-class normal distributions), Bernoulli (features above 0 are present)
//! and multinomial (features are non-negative counts).

use crate::Error;
use crate::matrix::Matrix;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    Gaussian { means: Vec<f64>, variances: Vec<f64> },
    Bernoulli { log_present: Vec<f64>, log_absent: Vec<f64> },
    Multinomial { log_probabilities: Vec<f64> },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NaiveBayes {
    pub log_priors: Vec<f64>,
    pub variant: Variant,
    pub features: usize,
}

impl NaiveBayes {
    pub fn fit(x: &Matrix, labels: &[usize], classes: usize, variant: &str) -> Result<NaiveBayes, Error> {
        let features = x.columns;
        let mut counts = vec![0.0; classes];
        let mut sums = vec![0.0; classes * features];
        let mut squares = vec![0.0; classes * features];
        let mut present = vec![0.0; classes * features];
        for row in 0..x.rows {
            let class = labels[row];
            counts[class] += 1.0;
            let class_slots = class * features..(class + 1) * features;
            let slots = sums[class_slots.clone()]
                .iter_mut()
                .zip(&mut squares[class_slots.clone()])
                .zip(&mut present[class_slots]);
            // Branch-free: whether a value is positive is a coin flip on standardised data.
            for (((sum, square), present), value) in slots.zip(x.row(row)) {
                *sum += value;
                *square += value * value;
                *present += f64::from(u8::from(*value > 0.0));
            }
        }
        let total: f64 = counts.iter().sum();
        let log_priors = counts.iter().map(|count| (count / total).max(1e-300).ln()).collect();
        let variant = match variant {
            "gaussian" => {
                let means: Vec<f64> =
                    (0..classes * features).map(|index| sums[index] / counts[index / features].max(1.0)).collect();
                let mut variances: Vec<f64> = (0..classes * features)
                    .map(|index| squares[index] / counts[index / features].max(1.0) - means[index] * means[index])
                    .collect();
                // Smoothing as scikit-learn: add 1e-9 × the largest feature variance.
                let largest = variances.iter().copied().fold(0.0, f64::max);
                variances.iter_mut().for_each(|variance| *variance = variance.max(0.0) + 1e-9 * largest.max(1e-9));
                Variant::Gaussian { means, variances }
            }
            "bernoulli" => {
                let log_present: Vec<f64> = (0..classes * features)
                    .map(|index| ((present[index] + 1.0) / (counts[index / features] + 2.0)).ln())
                    .collect();
                let log_absent = (0..classes * features)
                    .map(|index| (1.0 - (present[index] + 1.0) / (counts[index / features] + 2.0)).ln())
                    .collect();
                Variant::Bernoulli { log_present, log_absent }
            }
            "multinomial" => {
                if x.values.iter().any(|value| *value < 0.0) {
                    return Err(Error::Invalid(
                        "multinomial naive Bayes needs non-negative features (counts); drop `standardize`".into(),
                    ));
                }
                let mut log_probabilities = vec![0.0; classes * features];
                for class in 0..classes {
                    let class_total: f64 =
                        sums[class * features..(class + 1) * features].iter().sum::<f64>() + features as f64;
                    for feature in 0..features {
                        log_probabilities[class * features + feature] =
                            ((sums[class * features + feature] + 1.0) / class_total).ln();
                    }
                }
                Variant::Multinomial { log_probabilities }
            }
            other => {
                return Err(Error::Invalid(format!(
                    "naive Bayes variant `{other}` is not available; use gaussian, bernoulli or multinomial"
                )));
            }
        };
        Ok(NaiveBayes { log_priors, variant, features })
    }

    pub fn probabilities(&self, x: &Matrix) -> Vec<Vec<f64>> {
        let classes = self.log_priors.len();
        let features = self.features;
        (0..x.rows)
            .map(|row| {
                let values = x.row(row);
                let mut scores: Vec<f64> = (0..classes)
                    .map(|class| {
                        let range = class * features..(class + 1) * features;
                        self.log_priors[class]
                            + match &self.variant {
                                Variant::Gaussian { means, variances } => values
                                    .iter()
                                    .zip(&means[range.clone()])
                                    .zip(&variances[range])
                                    .map(|((value, mean), variance)| {
                                        -0.5 * ((2.0 * std::f64::consts::PI * variance).ln()
                                            + (value - mean).powi(2) / variance)
                                    })
                                    .sum::<f64>(),
                                Variant::Bernoulli { log_present, log_absent } => values
                                    .iter()
                                    .zip(&log_present[range.clone()])
                                    .zip(&log_absent[range])
                                    .map(|((value, present), absent)| if *value > 0.0 { *present } else { *absent })
                                    .sum::<f64>(),
                                Variant::Multinomial { log_probabilities } => values
                                    .iter()
                                    .zip(&log_probabilities[range])
                                    .map(|(value, log)| value * log)
                                    .sum::<f64>(),
                            }
                    })
                    .collect();
                let largest = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let total: f64 = scores
                    .iter_mut()
                    .map(|score| {
                        *score = (*score - largest).exp();
                        *score
                    })
                    .sum();
                scores.iter().map(|score| score / total).collect()
            })
            .collect()
    }
}
