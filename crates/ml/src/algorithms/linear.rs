//! Linear models: least squares and ridge (closed form), lasso and elastic net (coordinate descent), multinomial
//! logistic regression (L-BFGS, or proximal gradient for an L1 penalty), and a linear SVM (dual coordinate
//! descent, one class against the rest).

use crate::matrix::{Matrix, Random, dot, solve_spd};
use serde::{Deserialize, Serialize};

/// y = x · weights + intercept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    pub weights: Vec<f64>,
    pub intercept: f64,
}

fn column_means(x: &Matrix) -> Vec<f64> {
    let mut means = vec![0.0; x.columns];
    for row in 0..x.rows {
        for (mean, value) in means.iter_mut().zip(x.row(row)) {
            *mean += value;
        }
    }
    means.iter_mut().for_each(|mean| *mean /= x.rows.max(1) as f64);
    means
}

impl LinearModel {
    /// Least squares with an L2 penalty `alpha` (0 is ordinary least squares), on centred data so the intercept is
    /// not penalised.
    pub fn ridge(x: &Matrix, y: &[f64], alpha: f64) -> LinearModel {
        let n = x.columns;
        let means = column_means(x);
        let y_mean = y.iter().sum::<f64>() / y.len().max(1) as f64;
        let mut gram = vec![0.0; n * n];
        let mut moment = vec![0.0; n];
        let mut centred = vec![0.0; n];
        for row in 0..x.rows {
            for (slot, (value, mean)) in centred.iter_mut().zip(x.row(row).iter().zip(&means)) {
                *slot = value - mean;
            }
            let target = y[row] - y_mean;
            for i in 0..n {
                moment[i] += centred[i] * target;
                for j in 0..=i {
                    gram[i * n + j] += centred[i] * centred[j];
                }
            }
        }
        for i in 0..n {
            for j in 0..i {
                gram[j * n + i] = gram[i * n + j];
            }
        }
        // A tiny ridge keeps ordinary least squares solvable when columns are collinear (one-hot blocks are).
        let mut penalty = alpha.max(1e-8);
        let weights = loop {
            let mut system = gram.clone();
            for i in 0..n {
                system[i * n + i] += penalty;
            }
            if let Some(weights) = solve_spd(&system, &moment, n) {
                break weights;
            }
            penalty = penalty.max(1e-8) * 100.0;
            if penalty > 1e12 {
                break vec![0.0; n];
            }
        };
        let intercept = y_mean - dot(&weights, &means);
        LinearModel { weights, intercept }
    }

    /// Minimises 1/(2n)·|y − Xw|² + alpha·(l1_ratio·|w|₁ + (1 − l1_ratio)/2·|w|²), as scikit-learn's ElasticNet.
    pub fn elastic_net(x: &Matrix, y: &[f64], alpha: f64, l1_ratio: f64) -> LinearModel {
        let (rows, n) = (x.rows as f64, x.columns);
        let means = column_means(x);
        let y_mean = y.iter().sum::<f64>() / y.len().max(1) as f64;
        // Column-major centred copy for fast coordinate updates.
        let mut columns = vec![vec![0.0; x.rows]; n];
        for row in 0..x.rows {
            for (column, value) in x.row(row).iter().enumerate() {
                columns[column][row] = value - means[column];
            }
        }
        let norms: Vec<f64> = columns.iter().map(|column| column.iter().map(|v| v * v).sum::<f64>() / rows).collect();
        let mut residual: Vec<f64> = y.iter().map(|value| value - y_mean).collect();
        let mut weights = vec![0.0; n];
        let (l1, l2) = (alpha * l1_ratio, alpha * (1.0 - l1_ratio));
        for _ in 0..1000 {
            let mut largest_change: f64 = 0.0;
            for j in 0..n {
                if norms[j] == 0.0 {
                    continue;
                }
                let old = weights[j];
                let rho = columns[j].iter().zip(&residual).map(|(a, b)| a * b).sum::<f64>() / rows + norms[j] * old;
                let new = soft_threshold(rho, l1) / (norms[j] + l2);
                if new != old {
                    for (value, r) in columns[j].iter().zip(residual.iter_mut()) {
                        *r -= (new - old) * value;
                    }
                    weights[j] = new;
                    largest_change = largest_change.max((new - old).abs());
                }
            }
            if largest_change < 1e-7 {
                break;
            }
        }
        let intercept = y_mean - dot(&weights, &means);
        LinearModel { weights, intercept }
    }

    pub fn predict(&self, x: &Matrix) -> Vec<f64> {
        (0..x.rows).map(|row| dot(x.row(row), &self.weights) + self.intercept).collect()
    }
}

fn soft_threshold(value: f64, threshold: f64) -> f64 {
    if value > threshold {
        value - threshold
    } else if value < -threshold {
        value + threshold
    } else {
        0.0
    }
}

/// Softmax regression: one weight vector and intercept per class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogisticModel {
    /// classes × features, row-major.
    pub weights: Vec<f64>,
    pub intercepts: Vec<f64>,
    pub classes: usize,
}

fn softmax(scores: &mut [f64]) {
    let largest = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut total = 0.0;
    for score in scores.iter_mut() {
        *score = (*score - largest).exp();
        total += *score;
    }
    scores.iter_mut().for_each(|score| *score /= total);
}

impl LogisticModel {
    /// Minimises C·Σ cross-entropy + ½|W|² (scikit-learn's formulation) with L-BFGS; `l1` uses proximal gradient;
    /// `none` drops the penalty.
    pub fn fit(x: &Matrix, labels: &[usize], classes: usize, c: f64, penalty: &str, max_iter: usize) -> LogisticModel {
        let features = x.columns;
        // Two classes need one weight vector (the second class's against the first), as scikit-learn fits them;
        // more classes get one each (softmax).
        let vectors = if classes == 2 { 1 } else { classes };
        let size = vectors * (features + 1);
        let l2 = if penalty == "l2" { 1.0 / c.max(1e-12) } else { 0.0 };
        let objective = |parameters: &[f64], gradient: &mut [f64]| -> f64 {
            gradient.iter_mut().for_each(|value| *value = 0.0);
            let mut loss = 0.0;
            let mut scores = vec![0.0; classes];
            for row in 0..x.rows {
                let values = x.row(row);
                if vectors == 1 {
                    let score = dot(&parameters[..features], values) + parameters[features];
                    let positive = labels[row] == 1;
                    // log(1 + e^-s) for the positive class, log(1 + e^s) for the negative, computed stably.
                    // One exponential serves both, computed stably: e = exp(-|s|) never overflows.
                    let signed = if positive { score } else { -score };
                    let small = (-score.abs()).exp();
                    loss += (-signed).max(0.0) + small.ln_1p();
                    let probability = if score >= 0.0 { 1.0 / (1.0 + small) } else { small / (1.0 + small) };
                    let error = probability - f64::from(u8::from(positive));
                    for (slot, value) in gradient[..features].iter_mut().zip(values) {
                        *slot += error * value;
                    }
                    gradient[features] += error;
                    continue;
                }
                for class in 0..classes {
                    let offset = class * (features + 1);
                    scores[class] = dot(&parameters[offset..offset + features], values) + parameters[offset + features];
                }
                softmax(&mut scores);
                loss -= scores[labels[row]].max(1e-300).ln();
                for class in 0..classes {
                    let error = scores[class] - f64::from(u8::from(class == labels[row]));
                    let offset = class * (features + 1);
                    for (slot, value) in gradient[offset..offset + features].iter_mut().zip(values) {
                        *slot += error * value;
                    }
                    gradient[offset + features] += error;
                }
            }
            for vector in 0..vectors {
                let offset = vector * (features + 1);
                for index in offset..offset + features {
                    loss += 0.5 * l2 * parameters[index] * parameters[index];
                    gradient[index] += l2 * parameters[index];
                }
            }
            loss
        };
        let parameters = if penalty == "l1" {
            proximal_gradient(&objective, size, features, classes, 1.0 / c.max(1e-12), max_iter.max(100) * 5)
        } else {
            // scikit-learn stops at a 1e-4 gradient on the mean loss; this loss is a sum over rows.
            lbfgs(&objective, vec![0.0; size], max_iter.max(1), 1e-4 * x.rows.max(1) as f64)
        };
        let mut weights = Vec::with_capacity(vectors * features);
        let mut intercepts = Vec::with_capacity(vectors);
        for vector in 0..vectors {
            let offset = vector * (features + 1);
            weights.extend_from_slice(&parameters[offset..offset + features]);
            intercepts.push(parameters[offset + features]);
        }
        LogisticModel { weights, intercepts, classes }
    }

    pub fn probabilities(&self, x: &Matrix) -> Vec<Vec<f64>> {
        let features = x.columns;
        if self.intercepts.len() == 1 {
            return (0..x.rows)
                .map(|row| {
                    let positive =
                        1.0 / (1.0 + (-(dot(&self.weights[..features], x.row(row)) + self.intercepts[0])).exp());
                    vec![1.0 - positive, positive]
                })
                .collect();
        }
        (0..x.rows)
            .map(|row| {
                let mut scores: Vec<f64> = (0..self.classes)
                    .map(|class| {
                        dot(&self.weights[class * features..(class + 1) * features], x.row(row))
                            + self.intercepts[class]
                    })
                    .collect();
                softmax(&mut scores);
                scores
            })
            .collect()
    }
}

/// Limited-memory BFGS with a backtracking (Armijo) line search.
/// Stops when every gradient component is within `tolerance` (scikit-learn's lbfgs criterion), when an
/// iteration no longer improves, or after `iterations`.
pub(crate) fn lbfgs(
    objective: &dyn Fn(&[f64], &mut [f64]) -> f64,
    mut x: Vec<f64>,
    iterations: usize,
    tolerance: f64,
) -> Vec<f64> {
    const MEMORY: usize = 10;
    let n = x.len();
    let mut gradient = vec![0.0; n];
    let mut value = objective(&x, &mut gradient);
    let mut steps: Vec<(Vec<f64>, Vec<f64>, f64)> = Vec::new();
    for _ in 0..iterations {
        let gradient_norm = gradient.iter().map(|g| g * g).sum::<f64>().sqrt();
        if gradient.iter().all(|g| g.abs() <= tolerance) {
            break;
        }
        // Two-loop recursion for the search direction.
        let mut direction: Vec<f64> = gradient.iter().map(|g| -g).collect();
        let mut alphas = Vec::with_capacity(steps.len());
        for (s, y, rho) in steps.iter().rev() {
            let alpha = rho * dot(s, &direction);
            for (d, y) in direction.iter_mut().zip(y) {
                *d -= alpha * y;
            }
            alphas.push(alpha);
        }
        if let Some((s, y, _)) = steps.last() {
            let scale = dot(s, y) / dot(y, y).max(1e-300);
            direction.iter_mut().for_each(|d| *d *= scale);
        } else {
            let scale = 1.0 / gradient_norm.max(1e-12);
            direction.iter_mut().for_each(|d| *d *= scale);
        }
        for ((s, y, rho), alpha) in steps.iter().zip(alphas.iter().rev()) {
            let beta = rho * dot(y, &direction);
            for (d, s) in direction.iter_mut().zip(s) {
                *d += (alpha - beta) * s;
            }
        }
        let slope = dot(&gradient, &direction);
        if slope >= 0.0 {
            direction = gradient.iter().map(|g| -g).collect();
            steps.clear();
        }
        let slope = dot(&gradient, &direction);
        let mut step = 1.0;
        let mut candidate = vec![0.0; n];
        let mut candidate_gradient = vec![0.0; n];
        let mut accepted = false;
        for _ in 0..40 {
            for ((c, x), d) in candidate.iter_mut().zip(&x).zip(&direction) {
                *c = x + step * d;
            }
            let candidate_value = objective(&candidate, &mut candidate_gradient);
            if candidate_value <= value + 1e-4 * step * slope {
                let s: Vec<f64> = candidate.iter().zip(&x).map(|(a, b)| a - b).collect();
                let y: Vec<f64> = candidate_gradient.iter().zip(&gradient).map(|(a, b)| a - b).collect();
                let curvature = dot(&s, &y);
                if curvature > 1e-12 {
                    steps.push((s, y, 1.0 / curvature));
                    if steps.len() > MEMORY {
                        steps.remove(0);
                    }
                }
                let improvement = value - candidate_value;
                x.clone_from(&candidate);
                gradient.clone_from(&candidate_gradient);
                value = candidate_value;
                accepted = true;
                if improvement < 1e-10 * value.abs().max(1.0) {
                    return x;
                }
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            break;
        }
    }
    x
}

/// Proximal gradient descent for an L1 penalty `lambda` on the weights (not the intercepts).
fn proximal_gradient(
    objective: &dyn Fn(&[f64], &mut [f64]) -> f64,
    size: usize,
    features: usize,
    classes: usize,
    lambda: f64,
    iterations: usize,
) -> Vec<f64> {
    let mut x = vec![0.0; size];
    let mut gradient = vec![0.0; size];
    let mut step = 1.0;
    let mut value = objective(&x, &mut gradient);
    for _ in 0..iterations {
        let mut candidate = x.clone();
        let mut candidate_gradient = vec![0.0; size];
        loop {
            for index in 0..size {
                let moved = x[index] - step * gradient[index];
                let is_intercept = index % (features + 1) == features;
                candidate[index] = if is_intercept { moved } else { soft_threshold(moved, step * lambda) };
            }
            let candidate_value = objective(&candidate, &mut candidate_gradient);
            let difference: Vec<f64> = candidate.iter().zip(&x).map(|(a, b)| a - b).collect();
            let bound = value + dot(&gradient, &difference) + dot(&difference, &difference) / (2.0 * step);
            if candidate_value <= bound || step < 1e-12 {
                let change = value - candidate_value;
                x = candidate;
                gradient = candidate_gradient;
                value = candidate_value;
                if change.abs() < 1e-9 * value.abs().max(1.0) {
                    return x;
                }
                break;
            }
            step *= 0.5;
        }
        let _ = classes;
    }
    x
}

/// A linear support vector classifier: one weight vector per class (one against the rest), hinge loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearSvm {
    pub weights: Vec<f64>,
    pub intercepts: Vec<f64>,
    pub classes: usize,
}

impl LinearSvm {
    /// Dual coordinate descent for the L2-regularised hinge loss (liblinear's solver), bias as an extra feature.
    pub fn fit(x: &Matrix, labels: &[usize], classes: usize, c: f64, seed: u64) -> LinearSvm {
        let features = x.columns;
        let models = if classes == 2 { 1 } else { classes };
        let mut weights = Vec::with_capacity(models * features);
        let mut intercepts = Vec::with_capacity(models);
        let norms: Vec<f64> = (0..x.rows).map(|row| dot(x.row(row), x.row(row)) + 1.0).collect();
        let mut random = Random::new(seed);
        for model in 0..models {
            let positive = if classes == 2 { 1 } else { model };
            let signs: Vec<f64> = labels.iter().map(|label| if *label == positive { 1.0 } else { -1.0 }).collect();
            let mut w = vec![0.0; features + 1];
            let mut alpha = vec![0.0; x.rows];
            let mut order: Vec<usize> = (0..x.rows).collect();
            for _ in 0..200 {
                random.shuffle(&mut order);
                let mut largest: f64 = 0.0;
                for &row in &order {
                    let values = x.row(row);
                    let margin = signs[row] * (dot(&w[..features], values) + w[features]) - 1.0;
                    let projected = if alpha[row] == 0.0 {
                        margin.min(0.0)
                    } else if alpha[row] == c {
                        margin.max(0.0)
                    } else {
                        margin
                    };
                    largest = largest.max(projected.abs());
                    if projected.abs() > 1e-12 {
                        let old = alpha[row];
                        alpha[row] = (old - margin / norms[row]).clamp(0.0, c);
                        let delta = (alpha[row] - old) * signs[row];
                        for (slot, value) in w[..features].iter_mut().zip(values) {
                            *slot += delta * value;
                        }
                        w[features] += delta;
                    }
                }
                if largest < 1e-3 {
                    break;
                }
            }
            intercepts.push(w[features]);
            weights.extend_from_slice(&w[..features]);
        }
        LinearSvm { weights, intercepts, classes }
    }

    /// Decision values turned into probabilities with a softmax (a binary model scores the second class).
    pub fn probabilities(&self, x: &Matrix) -> Vec<Vec<f64>> {
        let features = x.columns;
        (0..x.rows)
            .map(|row| {
                let decisions: Vec<f64> = (0..self.intercepts.len())
                    .map(|model| {
                        dot(&self.weights[model * features..(model + 1) * features], x.row(row))
                            + self.intercepts[model]
                    })
                    .collect();
                let mut scores = if self.classes == 2 { vec![-decisions[0], decisions[0]] } else { decisions };
                softmax(&mut scores);
                scores
            })
            .collect()
    }
}
