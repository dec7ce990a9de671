//! k-nearest neighbours (Euclidean, brute force), for classification and regression.

use super::classes;
use crate::matrix::Matrix;
use crate::metrics::Predictions;
use crate::prepare::Target;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Knn {
    pub examples: Matrix,
    pub target: Target,
    pub k: usize,
    /// Weigh neighbours by 1/distance instead of equally.
    pub by_distance: bool,
}

impl Knn {
    pub fn fit(x: &Matrix, target: &Target, k: usize, by_distance: bool) -> Knn {
        Knn { examples: x.clone(), target: target.clone(), k: k.max(1), by_distance }
    }

    fn neighbours(&self, values: &[f64]) -> Vec<(f64, usize)> {
        let mut distances: Vec<(f64, usize)> = (0..self.examples.rows)
            .map(|row| {
                let distance: f64 = self.examples.row(row).iter().zip(values).map(|(a, b)| (a - b).powi(2)).sum();
                (distance.sqrt(), row)
            })
            .collect();
        let k = self.k.min(distances.len());
        if k < distances.len() {
            distances.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        }
        distances.truncate(k);
        distances
    }

    fn weight(&self, distance: f64) -> f64 {
        if self.by_distance { 1.0 / distance.max(1e-12) } else { 1.0 }
    }

    pub fn predict(&self, x: &Matrix) -> Predictions {
        match &self.target {
            Target::Classes { labels, classes: names } => classes(
                (0..x.rows)
                    .map(|row| {
                        let mut votes = vec![0.0; names.len()];
                        for (distance, neighbour) in self.neighbours(x.row(row)) {
                            votes[labels[neighbour]] += self.weight(distance);
                        }
                        let total: f64 = votes.iter().sum();
                        votes.iter().map(|vote| vote / total.max(1e-300)).collect()
                    })
                    .collect(),
            ),
            Target::Values(values) => Predictions::Values(
                (0..x.rows)
                    .map(|row| {
                        let neighbours = self.neighbours(x.row(row));
                        let total: f64 = neighbours.iter().map(|(distance, _)| self.weight(*distance)).sum();
                        neighbours
                            .iter()
                            .map(|(distance, neighbour)| self.weight(*distance) * values[*neighbour])
                            .sum::<f64>()
                            / total.max(1e-300)
                    })
                    .collect(),
            ),
            Target::None => Predictions::Clusters(vec![0; x.rows]),
        }
    }
}
