//! Histogram-based decision trees, and the ensembles built from them: random forests and gradient boosting.
//! Features are binned once into at most 255 quantile bins; a split is searched over bin boundaries with
//! per-bin statistics, which is what makes LightGBM and scikit-learn's HistGradientBoosting fast.

use super::{Fitted, Params, classes};
use crate::Error;
use crate::matrix::{Matrix, Random};
use crate::metrics::Predictions;
use crate::prepare::Target;
use serde::{Deserialize, Serialize};

const MAX_BINS: usize = 255;
const LEAF: u32 = u32::MAX;

/// A node: a split (`feature`, `threshold`; values ≤ threshold go left) or a leaf with its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// The feature a split tests.
    pub feature: u32,
    /// The split's threshold: values at or below it go left.
    pub threshold: f64,
    /// The index of the left child.
    pub left: u32,
    /// The index of the right child.
    pub right: u32,
    /// A leaf's value: the predicted value, or a probability per class.
    pub value: Vec<f64>,
}

/// A decision tree: its nodes, the root first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Its nodes; children refer to them by index.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// The value of the leaf a row of feature values ends in.
    pub fn leaf(&self, values: &[f64]) -> &[f64] {
        let mut index = 0;
        loop {
            let node = &self.nodes[index];
            if node.feature == LEAF {
                return &node.value;
            }
            index = if values[node.feature as usize] <= node.threshold { node.left } else { node.right } as usize;
        }
    }
}

/// What a split minimises.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Criterion {
    Gini,
    Entropy,
    SquaredError,
    /// Second-order boosting: statistics are (count, gradient, hessian).
    Newton {
        lambda: f64,
    },
}

impl Criterion {
    /// The cost of a node with statistics `stat` (lower is better); splits maximise parent − left − right.
    fn cost(self, stat: &[f64]) -> f64 {
        match self {
            Criterion::Gini => {
                let n: f64 = stat.iter().sum();
                if n == 0.0 { 0.0 } else { n - stat.iter().map(|c| c * c).sum::<f64>() / n }
            }
            Criterion::Entropy => {
                let n: f64 = stat.iter().sum();
                stat.iter().filter(|c| **c > 0.0).map(|c| -c * (c / n).ln()).sum()
            }
            Criterion::SquaredError => {
                if stat[0] == 0.0 {
                    0.0
                } else {
                    stat[2] - stat[1] * stat[1] / stat[0]
                }
            }
            Criterion::Newton { lambda } => -0.5 * stat[1] * stat[1] / (stat[2] + lambda).max(1e-12),
        }
    }

    fn count(self, stat: &[f64]) -> f64 {
        match self {
            Criterion::Gini | Criterion::Entropy => stat.iter().sum(),
            _ => stat[0],
        }
    }

    fn leaf(self, stat: &[f64]) -> Vec<f64> {
        match self {
            Criterion::Gini | Criterion::Entropy => {
                let n: f64 = stat.iter().sum();
                stat.iter().map(|c| c / n.max(1e-12)).collect()
            }
            Criterion::SquaredError => vec![stat[1] / stat[0].max(1e-12)],
            Criterion::Newton { lambda } => vec![-stat[1] / (stat[2] + lambda).max(1e-12)],
        }
    }
}

/// Features binned once: per feature the thresholds between bins, and each row's bin.
struct Binned {
    thresholds: Vec<Vec<f64>>,
    /// Per feature with at most [`MAX_BINS`] distinct values, those values (bin `k` holds the `k`-th): a split then
    /// goes midway between the values on either side of it in its node, as CART places it.
    values: Vec<Option<Vec<f64>>>,
    /// rows × features, row-major.
    bins: Vec<u8>,
    features: usize,
}

fn bin(x: &Matrix) -> Binned {
    let features = x.columns;
    let mut thresholds = Vec::with_capacity(features);
    let mut exact = Vec::with_capacity(features);
    for feature in 0..features {
        let mut values: Vec<f64> = (0..x.rows).map(|row| x.get(row, feature)).collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        let edges: Vec<f64> = if values.len() <= MAX_BINS {
            let edges = values.windows(2).map(|pair| (pair[0] + pair[1]) / 2.0).collect();
            // Missing values (NaN) sort last and have no bin of their own: they cannot be a split's neighbour.
            exact.push((!values.iter().any(|value| value.is_nan())).then(|| values.clone()));
            edges
        } else {
            exact.push(None);
            let mut edges: Vec<f64> = (1..MAX_BINS)
                .map(|index| {
                    let position = index * (values.len() - 1) / MAX_BINS;
                    (values[position] + values[position + 1]) / 2.0
                })
                .collect();
            edges.dedup();
            edges
        };
        thresholds.push(edges);
    }
    let mut bins = vec![0u8; x.rows * features];
    for row in 0..x.rows {
        for feature in 0..features {
            let value = x.get(row, feature);
            bins[row * features + feature] = thresholds[feature].partition_point(|edge| *edge < value) as u8;
        }
    }
    Binned { thresholds, values: exact, bins, features }
}

struct Settings {
    criterion: Criterion,
    max_depth: usize,
    min_samples_split: usize,
    /// The fewest rows a leaf may hold.
    min_samples_leaf: f64,
    /// How many features each split considers (all when equal to the number of features).
    max_features: usize,
}

/// Where each feature's bins start in a node histogram (`width` statistics per bin), and its total length.
fn histogram_layout(binned: &Binned, width: usize) -> (Vec<usize>, usize) {
    let mut offsets = Vec::with_capacity(binned.features);
    let mut length = 0;
    for thresholds in &binned.thresholds {
        offsets.push(length);
        length += (thresholds.len() + 1) * width;
    }
    (offsets, length)
}

/// The histograms of every feature for a set of rows, in one pass over the rows (each row's bins are contiguous).
fn all_histograms(
    binned: &Binned,
    row_stats: &[f64],
    width: usize,
    rows: &[u32],
    offsets: &[usize],
    length: usize,
) -> Vec<f64> {
    // The common widths get a copy of the loop with the width known at compile time: unrolled, one bounds check.
    match width {
        3 => histograms_of_width::<3>(binned, row_stats, rows, offsets, length),
        4 => histograms_of_width::<4>(binned, row_stats, rows, offsets, length),
        _ => {
            let features = binned.features;
            let mut histogram = vec![0.0; length];
            for row in rows {
                let row = *row as usize;
                let stats = &row_stats[row * width..(row + 1) * width];
                let bins = &binned.bins[row * features..(row + 1) * features];
                for (offset, bin) in offsets.iter().zip(bins) {
                    let start = offset + *bin as usize * width;
                    for (slot, value) in histogram[start..start + width].iter_mut().zip(stats) {
                        *slot += value;
                    }
                }
            }
            histogram
        }
    }
}

fn histograms_of_width<const WIDTH: usize>(
    binned: &Binned,
    row_stats: &[f64],
    rows: &[u32],
    offsets: &[usize],
    length: usize,
) -> Vec<f64> {
    let features = binned.features;
    let mut histogram = vec![0.0; length];
    for row in rows {
        let row = *row as usize;
        let stats: [f64; WIDTH] = row_stats[row * WIDTH..(row + 1) * WIDTH].try_into().expect("WIDTH statistics");
        let bins = &binned.bins[row * features..(row + 1) * features];
        for (offset, bin) in offsets.iter().zip(bins) {
            let start = offset + *bin as usize * WIDTH;
            let slots: &mut [f64; WIDTH] =
                (&mut histogram[start..start + WIDTH]).try_into().expect("a bin holds WIDTH statistics");
            for (slot, value) in slots.iter_mut().zip(stats) {
                *slot += value;
            }
        }
    }
    histogram
}

/// The search for one feature's best split over its histogram: bins are added left to right, and each boundary
/// that leaves at least `min_leaf` rows on both sides is scored by how much it lowers the cost.
struct Scan<'a> {
    criterion: Criterion,
    total: &'a [f64],
    parent_cost: f64,
    min_leaf: f64,
    /// A split must lower the cost by more than this.
    minimum_gain: f64,
}

impl Scan<'_> {
    /// The best (gain, bin) with statistics of a width fixed at compile time: the loops below unroll.
    fn best<const WIDTH: usize>(&self, histogram: &[f64]) -> Option<(f64, usize)> {
        let total: [f64; WIDTH] = self.total.try_into().ok()?;
        self.best_with(histogram, total, [0.0; WIDTH], [0.0; WIDTH])
    }

    fn best_any(&self, histogram: &[f64]) -> Option<(f64, usize)> {
        let width = self.total.len();
        self.best_with(histogram, self.total.to_vec(), vec![0.0; width], vec![0.0; width])
    }

    /// `total`, `left` and `right` are arrays when the width is known at compile time, so every loop unrolls.
    fn best_with<S: AsMut<[f64]> + AsRef<[f64]>>(
        &self,
        histogram: &[f64],
        total: S,
        mut left: S,
        mut right: S,
    ) -> Option<(f64, usize)> {
        let width = left.as_ref().len().max(1);
        let mut best: Option<(f64, usize)> = None;
        let bins = histogram.len() / width;
        for (bin, stats) in histogram.chunks_exact(width).take(bins.saturating_sub(1)).enumerate() {
            for (slot, value) in left.as_mut().iter_mut().zip(stats) {
                *slot += value;
            }
            if self.criterion.count(left.as_ref()) < self.min_leaf {
                continue;
            }
            for ((slot, all), part) in right.as_mut().iter_mut().zip(total.as_ref()).zip(left.as_ref()) {
                *slot = all - part;
            }
            if self.criterion.count(right.as_ref()) < self.min_leaf {
                break;
            }
            let gain = self.parent_cost - self.criterion.cost(left.as_ref()) - self.criterion.cost(right.as_ref());
            if gain > self.minimum_gain && best.is_none_or(|(best_gain, _)| gain > best_gain) {
                best = Some((gain, bin));
            }
        }
        best
    }
}

/// A node still to be split.
struct Pending {
    node: usize,
    rows: Vec<u32>,
    depth: usize,
    /// The node's histograms for all features, when splits consider all features.
    histogram: Option<Vec<f64>>,
}

/// Grows one tree on `rows` (repeats allowed, for bootstrap samples), with per-row statistics of width `width`.
/// When every split considers every feature, a node's histograms are built once for all features, and a
/// child's are derived by subtracting its sibling's from the parent's (only the smaller child is counted).
/// With `leaf_of_row`, each grown row's leaf is written there (boosting then updates scores without walking the tree).
fn grow(
    binned: &Binned,
    row_stats: &[f64],
    width: usize,
    rows: Vec<u32>,
    settings: &Settings,
    random: &mut Random,
    mut leaf_of_row: Option<&mut [u32]>,
) -> Tree {
    let features = binned.features;
    let all_features = settings.max_features >= features;
    let (offsets, length) = histogram_layout(binned, width);
    let mut nodes: Vec<Node> = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    nodes.push(Node { feature: LEAF, threshold: 0.0, left: 0, right: 0, value: Vec::new() });
    let root_histogram = all_features.then(|| all_histograms(binned, row_stats, width, &rows, &offsets, length));
    pending.push(Pending { node: 0, rows, depth: 0, histogram: root_histogram });
    let mut feature_order: Vec<usize> = (0..features).collect();
    let mut scratch: Vec<f64> = Vec::new();
    while let Some(Pending { node, rows, depth, histogram }) = pending.pop() {
        let mut total = vec![0.0; width];
        match &histogram {
            // Every row sits in one bin of the first feature, so its bins add up to the node's total.
            Some(histogram) if features > 0 => {
                let bins = binned.thresholds[0].len() + 1;
                for stats in histogram[offsets[0]..offsets[0] + bins * width].chunks_exact(width) {
                    total.iter_mut().zip(stats).for_each(|(slot, value)| *slot += value);
                }
            }
            _ => {
                for row in &rows {
                    let stats = &row_stats[*row as usize * width..(*row as usize + 1) * width];
                    total.iter_mut().zip(stats).for_each(|(slot, value)| *slot += value);
                }
            }
        }
        nodes[node].value = settings.criterion.leaf(&total);
        let mut record_leaf = |rows: &[u32]| {
            if let Some(leaves) = leaf_of_row.as_deref_mut() {
                rows.iter().for_each(|row| leaves[*row as usize] = node as u32);
            }
        };
        let count = settings.criterion.count(&total);
        if depth >= settings.max_depth || (count as usize) < settings.min_samples_split || rows.len() < 2 {
            record_leaf(&rows);
            continue;
        }
        let parent_cost = settings.criterion.cost(&total);
        // As CART (and scikit-learn) does, a node that is not pure is split even when no single split lowers its
        // cost: a later split may (two features that only separate the classes together). Boosting's Newton
        // steps split only on a gain, as histogram boosting does.
        let minimum_gain = match settings.criterion {
            Criterion::Newton { .. } => 1e-12,
            _ if parent_cost > 1e-9 => -1e-12,
            _ => 1e-12,
        };
        // Features are visited in a fresh random order at every node: with `max_features` that draws the features
        // considered, and among features whose best splits gain exactly as much, the first visited wins, so ties
        // are broken at random (as scikit-learn does) rather than always toward the first columns.
        random.shuffle(&mut feature_order);
        let candidates = &feature_order[..settings.max_features.min(features)];
        let mut best: Option<(f64, usize, usize)> = None;
        for &feature in candidates {
            let bins = binned.thresholds[feature].len() + 1;
            if bins < 2 {
                continue;
            }
            let feature_histogram: &[f64] = match &histogram {
                Some(histogram) => &histogram[offsets[feature]..offsets[feature] + bins * width],
                None => {
                    scratch.clear();
                    scratch.resize(bins * width, 0.0);
                    for row in &rows {
                        let bin = binned.bins[*row as usize * features + feature] as usize;
                        let stats = &row_stats[*row as usize * width..(*row as usize + 1) * width];
                        for (slot, value) in scratch[bin * width..(bin + 1) * width].iter_mut().zip(stats) {
                            *slot += value;
                        }
                    }
                    &scratch
                }
            };
            let scan = Scan {
                criterion: settings.criterion,
                total: &total,
                parent_cost,
                min_leaf: settings.min_samples_leaf,
                minimum_gain,
            };
            // The common widths (two classes; squared error and Newton's three) get a scan unrolled at compile time.
            let found = match width {
                2 => scan.best::<2>(feature_histogram),
                3 => scan.best::<3>(feature_histogram),
                _ => scan.best_any(feature_histogram),
            };
            if let Some((gain, bin)) = found
                && best.is_none_or(|(best_gain, _, _)| gain > best_gain)
            {
                best = Some((gain, feature, bin));
            }
        }
        let Some((_, feature, bin)) = best else {
            record_leaf(&rows);
            continue;
        };
        let mut left_rows = Vec::with_capacity(rows.len());
        let mut right_rows = Vec::with_capacity(rows.len());
        // The nearest bins this node has on either side of the split.
        let (mut left_edge, mut right_edge) = (0, usize::MAX);
        for row in &rows {
            let row_bin = binned.bins[*row as usize * features + feature] as usize;
            if row_bin <= bin {
                left_rows.push(*row);
                left_edge = left_edge.max(row_bin);
            } else {
                right_rows.push(*row);
                right_edge = right_edge.min(row_bin);
            }
        }
        // Children that may split again keep histograms: the smaller one counted, the larger one subtracted.
        let (left_histogram, right_histogram) = match histogram {
            Some(mut parent) if depth + 1 < settings.max_depth => {
                let left_is_smaller = left_rows.len() <= right_rows.len();
                let smaller_rows = if left_is_smaller { &left_rows } else { &right_rows };
                let smaller = all_histograms(binned, row_stats, width, smaller_rows, &offsets, length);
                for (slot, value) in parent.iter_mut().zip(&smaller) {
                    *slot -= value;
                }
                if left_is_smaller { (Some(smaller), Some(parent)) } else { (Some(parent), Some(smaller)) }
            }
            _ => (None, None),
        };
        let left = nodes.len();
        nodes.push(Node { feature: LEAF, threshold: 0.0, left: 0, right: 0, value: Vec::new() });
        nodes.push(Node { feature: LEAF, threshold: 0.0, left: 0, right: 0, value: Vec::new() });
        let split = &mut nodes[node];
        split.feature = feature as u32;
        // Every boundary between the node's nearest values splits its rows alike; the one midway between them
        // generalises best (the first boundary would send a new value just above the left one to the right).
        split.threshold = match &binned.values[feature] {
            Some(values) if right_edge < values.len() => (values[left_edge] + values[right_edge]) / 2.0,
            _ => binned.thresholds[feature][bin],
        };
        split.left = left as u32;
        split.right = left as u32 + 1;
        split.value.clear();
        pending.push(Pending { node: left, rows: left_rows, depth: depth + 1, histogram: left_histogram });
        pending.push(Pending { node: left + 1, rows: right_rows, depth: depth + 1, histogram: right_histogram });
    }
    Tree { nodes }
}

/// One decision tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TreeModel {
    /// The tree.
    pub tree: Tree,
    /// Number of classes, or 0 for regression.
    pub classes: usize,
}

impl TreeModel {
    /// What the tree says about each row of `x`.
    pub fn predict(&self, x: &Matrix) -> Predictions {
        if self.classes == 0 {
            return Predictions::Values((0..x.rows).map(|row| self.tree.leaf(x.row(row))[0]).collect());
        }
        classes((0..x.rows).map(|row| self.tree.leaf(x.row(row)).to_vec()).collect())
    }
}

/// Trees on bootstrap samples with random feature subsets; predictions are averaged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    /// The trees.
    pub trees: Vec<Tree>,
    /// Number of classes, or 0 for regression.
    pub classes: usize,
}

impl Forest {
    /// What the forest says about each row of `x`: its trees' leaves averaged.
    pub fn predict(&self, x: &Matrix) -> Predictions {
        let width = self.classes.max(1);
        let mut sums = vec![0.0; x.rows * width];
        for tree in &self.trees {
            for row in 0..x.rows {
                for (slot, value) in sums[row * width..(row + 1) * width].iter_mut().zip(tree.leaf(x.row(row))) {
                    *slot += value;
                }
            }
        }
        let count = self.trees.len().max(1) as f64;
        if self.classes == 0 {
            return Predictions::Values(sums.iter().map(|sum| sum / count).collect());
        }
        classes(sums.chunks(width).map(|chunk| chunk.iter().map(|sum| sum / count).collect()).collect())
    }
}

/// How a boosted model turns its raw scores into predictions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoostingLoss {
    /// Regression: the score is the value.
    Squared,
    /// Two classes: the score is a log-odds.
    Binary,
    /// More classes: one score per class, through softmax.
    Multiclass,
}

/// Gradient-boosted trees: raw score = initial + learning_rate · Σ tree outputs (one tree per class per round).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Boosting {
    /// How scores become predictions.
    pub loss: BoostingLoss,
    /// The score before any tree (one per class for several classes).
    pub initial: Vec<f64>,
    /// How much of each tree's output is added.
    pub learning_rate: f64,
    /// rounds × outputs.
    pub rounds: Vec<Vec<Tree>>,
    /// Number of classes, or 0 for regression.
    pub classes: usize,
}

impl Boosting {
    fn raw_scores(&self, values: &[f64]) -> Vec<f64> {
        let mut scores = self.initial.clone();
        for round in &self.rounds {
            for (score, tree) in scores.iter_mut().zip(round) {
                *score += self.learning_rate * tree.leaf(values)[0];
            }
        }
        scores
    }

    /// What the boosted trees say about each row of `x`.
    pub fn predict(&self, x: &Matrix) -> Predictions {
        let scores: Vec<Vec<f64>> = (0..x.rows).map(|row| self.raw_scores(x.row(row))).collect();
        match self.loss {
            BoostingLoss::Squared => Predictions::Values(scores.iter().map(|score| score[0]).collect()),
            BoostingLoss::Binary => classes(
                scores
                    .iter()
                    .map(|score| {
                        let positive = 1.0 / (1.0 + (-score[0]).exp());
                        vec![1.0 - positive, positive]
                    })
                    .collect(),
            ),
            BoostingLoss::Multiclass => classes(
                scores
                    .into_iter()
                    .map(|mut score| {
                        softmax(&mut score);
                        score
                    })
                    .collect(),
            ),
        }
    }
}

fn softmax(scores: &mut [f64]) {
    let largest = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = scores
        .iter_mut()
        .map(|score| {
            *score = (*score - largest).exp();
            *score
        })
        .sum();
    scores.iter_mut().for_each(|score| *score /= total);
}

/// Per-row statistics for CART: one-hot class counts, or (1, y, y²).
fn cart_stats(target: &Target) -> (Vec<f64>, usize, usize) {
    match target {
        Target::Classes { labels, classes } => {
            let width = classes.len();
            let mut stats = vec![0.0; labels.len() * width];
            for (row, label) in labels.iter().enumerate() {
                stats[row * width + label] = 1.0;
            }
            (stats, width, width)
        }
        Target::Values(values) => (values.iter().flat_map(|y| [1.0, *y, y * y]).collect(), 3, 0),
        Target::None => (Vec::new(), 3, 0),
    }
}

/// Fits one tree-based `algorithm` (`decision_tree`, `random_forest`, `gradient_boosting`) with `params`.
pub fn fit(algorithm: &str, params: &Params, x: &Matrix, target: &Target, seed: u64) -> Result<Fitted, Error> {
    if matches!(target, Target::None) {
        return Err(Error::Invalid(format!("`{algorithm}` needs a target")));
    }
    let binned = bin(x);
    let mut random = Random::new(seed);
    let rows: Vec<u32> = (0..x.rows as u32).collect();
    let classification = matches!(target, Target::Classes { .. });
    let max_depth = match params.0.get("max_depth") {
        Some(_) => params.whole("max_depth", usize::MAX),
        None if algorithm == "gradient_boosting" => 3,
        None => usize::MAX,
    };
    let min_samples_split = params.whole("min_samples_split", 2);
    match algorithm {
        "decision_tree" | "random_forest" => {
            let criterion =
                match (params.word("criterion", if classification { "gini" } else { "squared_error" }), classification)
                {
                    ("gini", true) => Criterion::Gini,
                    ("entropy", true) => Criterion::Entropy,
                    ("squared_error", false) => Criterion::SquaredError,
                    (other, _) => {
                        let kind = if classification {
                            "classification (gini, entropy)"
                        } else {
                            "regression (squared_error)"
                        };
                        return Err(Error::Invalid(format!("criterion `{other}` does not apply to {kind}")));
                    }
                };
            let (stats, width, classes) = cart_stats(target);
            if algorithm == "decision_tree" {
                let settings = Settings {
                    criterion,
                    max_depth,
                    min_samples_split,
                    min_samples_leaf: 1.0,
                    max_features: x.columns,
                };
                return Ok(Fitted::Tree(TreeModel {
                    tree: grow(&binned, &stats, width, rows, &settings, &mut random, None),
                    classes,
                }));
            }
            let default_fraction =
                if classification { (x.columns as f64).sqrt() / x.columns.max(1) as f64 } else { 1.0 };
            let fraction = params.number("max_features", default_fraction);
            let max_features = ((x.columns as f64 * fraction).round() as usize).clamp(1, x.columns.max(1));
            let settings = Settings { criterion, max_depth, min_samples_split, min_samples_leaf: 1.0, max_features };
            let count = params.whole("trees", 100).max(1);
            let trees = (0..count)
                .map(|_| {
                    let sample: Vec<u32> = (0..x.rows).map(|_| random.below(x.rows) as u32).collect();
                    grow(&binned, &stats, width, sample, &settings, &mut random, None)
                })
                .collect();
            Ok(Fitted::Forest(Forest { trees, classes }))
        }
        "gradient_boosting" => {
            let learning_rate = params.number("learning_rate", 0.1);
            let subsample = params.number("subsample", 1.0);
            // As scikit-learn's HistGradientBoosting: no L2 penalty on leaf values, at least 20 rows per leaf.
            let settings = Settings {
                criterion: Criterion::Newton { lambda: 0.0 },
                max_depth,
                min_samples_split,
                min_samples_leaf: 20.0,
                max_features: x.columns,
            };
            let (loss, outputs, class_count) = match target {
                Target::Classes { classes, .. } if classes.len() == 2 => (BoostingLoss::Binary, 1, 2),
                Target::Classes { classes, .. } => (BoostingLoss::Multiclass, classes.len(), classes.len()),
                _ => (BoostingLoss::Squared, 1, 0),
            };
            let initial: Vec<f64> = match target {
                Target::Values(values) => vec![values.iter().sum::<f64>() / values.len().max(1) as f64],
                Target::Classes { labels, classes } => {
                    let mut counts = vec![0.0; classes.len()];
                    labels.iter().for_each(|label| counts[*label] += 1.0);
                    let n = labels.len().max(1) as f64;
                    if loss == BoostingLoss::Binary {
                        let p = (counts[1] / n).clamp(1e-6, 1.0 - 1e-6);
                        vec![(p / (1.0 - p)).ln()]
                    } else {
                        counts.iter().map(|count| (count / n).max(1e-6).ln()).collect()
                    }
                }
                Target::None => vec![0.0],
            };
            let mut scores: Vec<Vec<f64>> = vec![initial.clone(); x.rows];
            let mut rounds = Vec::new();
            // Bins and thresholds send a row the same way unless the value is missing (bin 0, but `NaN <= t` fails).
            let whole_sample = subsample >= 1.0 && !x.values.iter().any(|value| value.is_nan());
            let mut leaf_of_row = vec![0u32; if whole_sample { x.rows } else { 0 }];
            for _ in 0..params.whole("rounds", 100).max(1) {
                let sample: Vec<u32> = if subsample < 1.0 {
                    (0..x.rows as u32).filter(|_| random.next_f64() < subsample).collect()
                } else {
                    (0..x.rows as u32).collect()
                };
                let mut trees = Vec::with_capacity(outputs);
                let probabilities: Vec<Vec<f64>> = match loss {
                    BoostingLoss::Multiclass => scores
                        .iter()
                        .map(|score| {
                            let mut p = score.clone();
                            softmax(&mut p);
                            p
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                for output in 0..outputs {
                    let mut stats = vec![0.0; x.rows * 3];
                    for row in 0..x.rows {
                        let (gradient, hessian) = match (loss, target) {
                            (BoostingLoss::Squared, Target::Values(values)) => (scores[row][0] - values[row], 1.0),
                            (BoostingLoss::Binary, Target::Classes { labels, .. }) => {
                                let p = 1.0 / (1.0 + (-scores[row][0]).exp());
                                (p - f64::from(u8::from(labels[row] == 1)), (p * (1.0 - p)).max(1e-12))
                            }
                            (_, Target::Classes { labels, .. }) => {
                                let p = probabilities[row][output];
                                (p - f64::from(u8::from(labels[row] == output)), (p * (1.0 - p)).max(1e-12))
                            }
                            _ => (0.0, 1.0),
                        };
                        stats[row * 3] = 1.0;
                        stats[row * 3 + 1] = gradient;
                        stats[row * 3 + 2] = hessian;
                    }
                    let whole = whole_sample.then_some(leaf_of_row.as_mut_slice());
                    let tree = grow(&binned, &stats, 3, sample.clone(), &settings, &mut random, whole);
                    if whole_sample {
                        // Every row was grown, so its leaf is known: the same one walking the tree would reach.
                        for (row, leaf) in leaf_of_row.iter().enumerate() {
                            scores[row][output] += learning_rate * tree.nodes[*leaf as usize].value[0];
                        }
                    } else {
                        for (row, score) in scores.iter_mut().enumerate() {
                            score[output] += learning_rate * tree.leaf(x.row(row))[0];
                        }
                    }
                    trees.push(tree);
                }
                rounds.push(trees);
            }
            Ok(Fitted::Boosting(Boosting { loss, initial, learning_rate, rounds, classes: class_count }))
        }
        other => Err(Error::Invalid(format!("`{other}` is not a tree algorithm"))),
    }
}
