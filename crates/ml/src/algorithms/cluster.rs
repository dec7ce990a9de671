//! Clustering: k-means (k-means++ start, Lloyd iterations) and DBSCAN (density-based, finds its own number of
//! clusters; points in no dense region form a cluster of their own, "noise").

use crate::matrix::{Matrix, Random};
use serde::{Deserialize, Serialize};

fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KMeans {
    pub centroids: Matrix,
}

impl KMeans {
    pub fn fit(x: &Matrix, k: usize, max_iter: usize, seed: u64) -> KMeans {
        let k = k.clamp(1, x.rows.max(1));
        let mut random = Random::new(seed);
        // k-means++: each next centroid is drawn with probability proportional to its squared distance.
        let mut centroids = Matrix::new(k, x.columns);
        if x.rows == 0 {
            return KMeans { centroids };
        }
        centroids.row_mut(0).copy_from_slice(x.row(random.below(x.rows)));
        let mut nearest: Vec<f64> = (0..x.rows).map(|row| squared_distance(x.row(row), centroids.row(0))).collect();
        for chosen in 1..k {
            let total: f64 = nearest.iter().sum();
            let mut target = random.next_f64() * total;
            let mut pick = x.rows - 1;
            for (row, distance) in nearest.iter().enumerate() {
                target -= distance;
                if target <= 0.0 {
                    pick = row;
                    break;
                }
            }
            centroids.row_mut(chosen).copy_from_slice(x.row(pick));
            for (row, distance) in nearest.iter_mut().enumerate() {
                *distance = distance.min(squared_distance(x.row(row), centroids.row(chosen)));
            }
        }
        let mut model = KMeans { centroids };
        for _ in 0..max_iter.max(1) {
            let assignment = model.assign(x);
            let mut sums = Matrix::new(k, x.columns);
            let mut counts = vec![0usize; k];
            for (row, cluster) in assignment.iter().enumerate() {
                counts[*cluster] += 1;
                for (slot, value) in sums.row_mut(*cluster).iter_mut().zip(x.row(row)) {
                    *slot += value;
                }
            }
            let mut moved: f64 = 0.0;
            for cluster in 0..k {
                if counts[cluster] == 0 {
                    continue;
                }
                let updated: Vec<f64> = sums.row(cluster).iter().map(|sum| sum / counts[cluster] as f64).collect();
                moved = moved.max(squared_distance(&updated, model.centroids.row(cluster)));
                model.centroids.row_mut(cluster).copy_from_slice(&updated);
            }
            if moved < 1e-10 {
                break;
            }
        }
        model
    }

    pub fn assign(&self, x: &Matrix) -> Vec<usize> {
        (0..x.rows)
            .map(|row| {
                (0..self.centroids.rows)
                    .map(|cluster| (squared_distance(x.row(row), self.centroids.row(cluster)), cluster))
                    .min_by(|a, b| a.0.total_cmp(&b.0))
                    .map_or(0, |(_, cluster)| cluster)
            })
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dbscan {
    /// The core points and the cluster of each; new points join the cluster of a core point within `eps`.
    pub cores: Matrix,
    pub core_clusters: Vec<usize>,
    pub eps: f64,
    /// The cluster index given to noise (one past the last cluster).
    pub noise: usize,
}

impl Dbscan {
    pub fn fit(x: &Matrix, eps: f64, min_samples: usize) -> Dbscan {
        let limit = eps * eps;
        let neighbours: Vec<Vec<usize>> = (0..x.rows)
            .map(|row| (0..x.rows).filter(|other| squared_distance(x.row(row), x.row(*other)) <= limit).collect())
            .collect();
        let core: Vec<bool> = neighbours.iter().map(|list| list.len() >= min_samples.max(1)).collect();
        let mut cluster_of = vec![usize::MAX; x.rows];
        let mut clusters = 0;
        for start in 0..x.rows {
            if !core[start] || cluster_of[start] != usize::MAX {
                continue;
            }
            let mut frontier = vec![start];
            cluster_of[start] = clusters;
            while let Some(point) = frontier.pop() {
                for &neighbour in &neighbours[point] {
                    if cluster_of[neighbour] == usize::MAX {
                        cluster_of[neighbour] = clusters;
                        if core[neighbour] {
                            frontier.push(neighbour);
                        }
                    }
                }
            }
            clusters += 1;
        }
        let core_rows: Vec<usize> = (0..x.rows).filter(|row| core[*row]).collect();
        Dbscan {
            cores: x.select_rows(&core_rows),
            core_clusters: core_rows.iter().map(|row| cluster_of[*row]).collect(),
            eps,
            noise: clusters,
        }
    }

    pub fn assign(&self, x: &Matrix) -> Vec<usize> {
        let limit = self.eps * self.eps;
        (0..x.rows)
            .map(|row| {
                (0..self.cores.rows)
                    .map(|core| (squared_distance(x.row(row), self.cores.row(core)), core))
                    .filter(|(distance, _)| *distance <= limit)
                    .min_by(|a, b| a.0.total_cmp(&b.0))
                    .map_or(self.noise, |(_, core)| self.core_clusters[core])
            })
            .collect()
    }
}
