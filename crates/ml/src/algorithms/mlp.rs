//! A multi-layer perceptron with one hidden ReLU layer, trained with Adam on mini-batches: softmax output for
//! classification, linear output for regression.

use super::classes;
use crate::matrix::{Matrix, Random};
use crate::metrics::Predictions;
use crate::prepare::Target;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mlp {
    /// hidden × inputs, then hidden biases, then outputs × hidden, then output biases.
    pub first: Vec<f64>,
    pub first_bias: Vec<f64>,
    pub second: Vec<f64>,
    pub second_bias: Vec<f64>,
    pub inputs: usize,
    pub hidden: usize,
    pub outputs: usize,
    /// Number of classes, or 0 for regression.
    pub classes: usize,
}

impl Mlp {
    fn forward(&self, values: &[f64], hidden: &mut [f64], output: &mut [f64]) {
        for (unit, slot) in hidden.iter_mut().enumerate() {
            let weights = &self.first[unit * self.inputs..(unit + 1) * self.inputs];
            *slot = (weights.iter().zip(values).map(|(w, v)| w * v).sum::<f64>() + self.first_bias[unit]).max(0.0);
        }
        for (unit, slot) in output.iter_mut().enumerate() {
            let weights = &self.second[unit * self.hidden..(unit + 1) * self.hidden];
            *slot = weights.iter().zip(hidden.iter()).map(|(w, h)| w * h).sum::<f64>() + self.second_bias[unit];
        }
        if self.classes > 0 {
            let largest = output.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = output
                .iter_mut()
                .map(|score| {
                    *score = (*score - largest).exp();
                    *score
                })
                .sum();
            output.iter_mut().for_each(|score| *score /= total);
        }
    }

    pub fn fit(x: &Matrix, target: &Target, hidden: usize, learning_rate: f64, epochs: usize, seed: u64) -> Mlp {
        let (classes, outputs) = match target {
            Target::Classes { classes, .. } => (classes.len(), classes.len()),
            _ => (0, 1),
        };
        let (inputs, hidden) = (x.columns, hidden.max(1));
        let mut random = Random::new(seed);
        // He initialisation for ReLU.
        let mut normal = |scale: f64| {
            let (u, v) = (random.next_f64().max(1e-300), random.next_f64());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos() * scale
        };
        let first_scale = (2.0 / inputs.max(1) as f64).sqrt();
        let second_scale = (2.0 / hidden as f64).sqrt();
        let mut model = Mlp {
            first: (0..hidden * inputs).map(|_| normal(first_scale)).collect(),
            first_bias: vec![0.0; hidden],
            second: (0..outputs * hidden).map(|_| normal(second_scale)).collect(),
            second_bias: vec![0.0; outputs],
            inputs,
            hidden,
            outputs,
            classes,
        };
        let sizes = [model.first.len(), hidden, model.second.len(), outputs];
        let mut first_moment: Vec<Vec<f64>> = sizes.iter().map(|size| vec![0.0; *size]).collect();
        let mut second_moment: Vec<Vec<f64>> = sizes.iter().map(|size| vec![0.0; *size]).collect();
        let mut gradients: Vec<Vec<f64>> = sizes.iter().map(|size| vec![0.0; *size]).collect();
        let (beta1, beta2, epsilon) = (0.9, 0.999, 1e-8);
        let mut step = 0i32;
        let mut order: Vec<usize> = (0..x.rows).collect();
        let mut hidden_values = vec![0.0; hidden];
        let mut output = vec![0.0; outputs];
        let batch = 32usize;
        for _ in 0..epochs.max(1) {
            random.shuffle(&mut order);
            for chunk in order.chunks(batch) {
                gradients.iter_mut().for_each(|gradient| gradient.iter_mut().for_each(|value| *value = 0.0));
                for &row in chunk {
                    let values = x.row(row);
                    model.forward(values, &mut hidden_values, &mut output);
                    // Output error: softmax + cross-entropy or identity + squared error give the same form.
                    let errors: Vec<f64> = match target {
                        Target::Classes { labels, .. } => {
                            (0..outputs).map(|unit| output[unit] - f64::from(u8::from(labels[row] == unit))).collect()
                        }
                        Target::Values(values) => vec![output[0] - values[row]],
                        Target::None => vec![0.0; outputs],
                    };
                    let mut hidden_errors = vec![0.0; hidden];
                    for (unit, error) in errors.iter().enumerate() {
                        gradients[3][unit] += error;
                        for h in 0..hidden {
                            gradients[2][unit * hidden + h] += error * hidden_values[h];
                            hidden_errors[h] += error * model.second[unit * hidden + h];
                        }
                    }
                    for h in 0..hidden {
                        if hidden_values[h] <= 0.0 {
                            continue;
                        }
                        gradients[1][h] += hidden_errors[h];
                        for (input, value) in values.iter().enumerate() {
                            gradients[0][h * inputs + input] += hidden_errors[h] * value;
                        }
                    }
                }
                step += 1;
                let scale = 1.0 / chunk.len() as f64;
                let correction1 = 1.0 - beta1_powi(beta1, step);
                let correction2 = 1.0 - beta1_powi(beta2, step);
                let parameters: [&mut Vec<f64>; 4] =
                    [&mut model.first, &mut model.first_bias, &mut model.second, &mut model.second_bias];
                for (index, parameter) in parameters.into_iter().enumerate() {
                    for (position, value) in parameter.iter_mut().enumerate() {
                        let gradient = gradients[index][position] * scale;
                        first_moment[index][position] =
                            beta1 * first_moment[index][position] + (1.0 - beta1) * gradient;
                        second_moment[index][position] =
                            beta2 * second_moment[index][position] + (1.0 - beta2) * gradient * gradient;
                        let corrected = first_moment[index][position] / correction1;
                        let variance = second_moment[index][position] / correction2;
                        *value -= learning_rate * corrected / (variance.sqrt() + epsilon);
                    }
                }
            }
        }
        model
    }

    pub fn predict(&self, x: &Matrix) -> Predictions {
        let mut hidden = vec![0.0; self.hidden];
        let mut output = vec![0.0; self.outputs];
        let rows: Vec<Vec<f64>> = (0..x.rows)
            .map(|row| {
                self.forward(x.row(row), &mut hidden, &mut output);
                output.clone()
            })
            .collect();
        if self.classes > 0 { classes(rows) } else { Predictions::Values(rows.iter().map(|row| row[0]).collect()) }
    }
}

fn beta1_powi(beta: f64, step: i32) -> f64 {
    beta.powi(step)
}
