//! k-nearest neighbours (Euclidean, brute force), for classification and regression.
//!
//! Brute force is what scikit-learn picks too once there are more than 15 features. As there, distances come from a
//! matrix product (‖q‖² + ‖e‖² − 2 q·e for a block of queries against a block of examples), and a running top-k per
//! query rejects most examples with one comparison instead of sorting every distance.

use super::classes;
use crate::matrix::{Matrix, dot, multiply_by_transpose};
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

    /// For each row of `x`, the k nearest examples as (distance, row), nearest first; ties go to the earlier row.
    fn neighbours(&self, x: &Matrix) -> Vec<Vec<(f64, usize)>> {
        const QUERY_BLOCK: usize = 64;
        const EXAMPLE_BLOCK: usize = 1024;
        let examples = &self.examples;
        let columns = examples.columns;
        let k = self.k.min(examples.rows);
        let example_norms: Vec<f64> = (0..examples.rows).map(|row| dot(examples.row(row), examples.row(row))).collect();
        let mut products = vec![0.0; QUERY_BLOCK * EXAMPLE_BLOCK];
        let mut all = Vec::with_capacity(x.rows);
        for query_start in (0..x.rows).step_by(QUERY_BLOCK) {
            let queries = QUERY_BLOCK.min(x.rows - query_start);
            let query_values = &x.values[query_start * columns..(query_start + queries) * columns];
            let query_norms: Vec<f64> = query_values.chunks_exact(columns.max(1)).map(|row| dot(row, row)).collect();
            // Sorted by (squared distance, row); rows arrive in ascending order, so an equal distance never displaces.
            let mut nearest: Vec<Vec<(f64, usize)>> = vec![Vec::with_capacity(k + 1); queries];
            for example_start in (0..examples.rows).step_by(EXAMPLE_BLOCK) {
                let count = EXAMPLE_BLOCK.min(examples.rows - example_start);
                let example_values = &examples.values[example_start * columns..(example_start + count) * columns];
                multiply_by_transpose(query_values, queries, example_values, count, columns, &mut products);
                let norms = &example_norms[example_start..example_start + count];
                for (query, best) in nearest.iter_mut().enumerate() {
                    let row_products = &products[query * count..(query + 1) * count];
                    let query_norm = query_norms.get(query).copied().unwrap_or(0.0);
                    // Eight distances at a time in a loop the compiler vectorises; a chunk is looked at one by one
                    // only when it holds one nearer than the current k-th (rare once the first rows are seen).
                    let mut chunk_start = 0;
                    for (product_chunk, norm_chunk) in row_products.chunks(8).zip(norms.chunks(8)) {
                        let mut distances = [f64::INFINITY; 8];
                        for ((distance, product), norm) in distances.iter_mut().zip(product_chunk).zip(norm_chunk) {
                            *distance = (query_norm + norm - 2.0 * product).max(0.0);
                        }
                        let limit = if best.len() == k { best[k - 1].0 } else { f64::INFINITY };
                        if distances.iter().fold(f64::INFINITY, |least, distance| least.min(*distance)) < limit {
                            for (offset, distance) in distances.iter().take(product_chunk.len()).enumerate() {
                                if best.len() == k && *distance >= best[k - 1].0 {
                                    continue;
                                }
                                let position = best.partition_point(|(other, _)| other <= distance);
                                best.insert(position, (*distance, example_start + chunk_start + offset));
                                best.truncate(k);
                            }
                        }
                        chunk_start += product_chunk.len();
                    }
                }
            }
            all.extend(
                nearest
                    .into_iter()
                    .map(|best| best.into_iter().map(|(distance, row)| (distance.sqrt(), row)).collect::<Vec<_>>()),
            );
        }
        all
    }

    fn weight(&self, distance: f64) -> f64 {
        if self.by_distance { 1.0 / distance.max(1e-12) } else { 1.0 }
    }

    pub fn predict(&self, x: &Matrix) -> Predictions {
        match &self.target {
            Target::Classes { labels, classes: names } => classes(
                self.neighbours(x)
                    .into_iter()
                    .map(|neighbours| {
                        let mut votes = vec![0.0; names.len()];
                        for (distance, neighbour) in neighbours {
                            votes[labels[neighbour]] += self.weight(distance);
                        }
                        let total: f64 = votes.iter().sum();
                        votes.iter().map(|vote| vote / total.max(1e-300)).collect()
                    })
                    .collect(),
            ),
            Target::Values(values) => Predictions::Values(
                self.neighbours(x)
                    .into_iter()
                    .map(|neighbours| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_top_k_matches_a_full_sort_with_ties_to_the_earlier_row() {
        let rows = 50;
        let mut data = Vec::new();
        for row in 0..rows {
            // Repeating values make many equal distances.
            data.extend([(row % 7) as f64, (row % 3) as f64, 1.0, (row % 5) as f64, 0.5]);
        }
        let examples = Matrix { rows, columns: 5, values: data };
        let knn = Knn::fit(&examples, &Target::Values(vec![0.0; rows]), 6, false);
        // More queries than one block, so block edges are crossed too.
        let queries = Matrix {
            rows: 70,
            columns: 5,
            values: (0..70).flat_map(|query| [(query % 4) as f64, 1.0, 1.0, (query % 6) as f64, 0.5]).collect(),
        };
        let found = knn.neighbours(&queries);
        for (query, neighbours) in found.iter().enumerate() {
            let mut expected: Vec<(f64, usize)> = (0..rows)
                .map(|row| {
                    let distance: f64 =
                        examples.row(row).iter().zip(queries.row(query)).map(|(a, b)| (a - b).powi(2)).sum();
                    (distance.sqrt(), row)
                })
                .collect();
            expected.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            expected.truncate(6);
            let rows_found: Vec<usize> = neighbours.iter().map(|(_, row)| *row).collect();
            let rows_expected: Vec<usize> = expected.iter().map(|(_, row)| *row).collect();
            assert_eq!(rows_found, rows_expected, "query {query}");
            for ((ours, _), (exact, _)) in neighbours.iter().zip(&expected) {
                assert!((ours - exact).abs() < 1e-6, "query {query}: {ours} vs {exact}");
            }
        }
    }
}
