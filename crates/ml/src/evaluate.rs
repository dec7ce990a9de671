//! How candidates are evaluated: the train/test splits of k-fold, stratified k-fold, hold-out and time-ordered
//! evaluation, all reproducible from a seed.

use crate::matrix::Random;
use crate::prepare::Target;
use stratum_core::ir::Evaluation;

/// One split: the rows to train on and the rows to test on.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Split {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// The splits of an evaluation strategy over `rows` rows. Time-ordered splits keep the file's row order (rows are
/// assumed to be in time order) and test on the last fraction.
pub(crate) fn splits(evaluation: &Evaluation, rows: usize, target: &Target, seed: u64) -> Vec<Split> {
    let mut random = Random::new(seed);
    match evaluation {
        Evaluation::Kfold { folds, stratified } => {
            let folds = (*folds as usize).clamp(2, rows.max(2));
            let mut fold_of = vec![0usize; rows];
            match (stratified, target) {
                (true, Target::Classes { labels, classes }) => {
                    // Deal each class's shuffled rows round-robin over the folds, so every fold keeps the proportions.
                    let mut next = 0;
                    for class in 0..classes.len() {
                        let mut members: Vec<usize> = (0..rows).filter(|row| labels[*row] == class).collect();
                        random.shuffle(&mut members);
                        for row in members {
                            fold_of[row] = next % folds;
                            next += 1;
                        }
                    }
                }
                _ => {
                    let mut order: Vec<usize> = (0..rows).collect();
                    random.shuffle(&mut order);
                    for (position, row) in order.into_iter().enumerate() {
                        fold_of[row] = position % folds;
                    }
                }
            }
            (0..folds)
                .map(|fold| Split {
                    train: (0..rows).filter(|row| fold_of[*row] != fold).collect(),
                    test: (0..rows).filter(|row| fold_of[*row] == fold).collect(),
                })
                .collect()
        }
        Evaluation::Holdout { fraction } => {
            let mut order: Vec<usize> = (0..rows).collect();
            random.shuffle(&mut order);
            let test_rows = ((rows as f64 * fraction).round() as usize).clamp(1, rows.saturating_sub(1).max(1));
            let (test, train) = order.split_at(test_rows);
            let (mut train, mut test) = (train.to_vec(), test.to_vec());
            train.sort_unstable();
            test.sort_unstable();
            vec![Split { train, test }]
        }
        Evaluation::TimeSplit { fraction } => {
            let test_rows = ((rows as f64 * fraction).round() as usize).clamp(1, rows.saturating_sub(1).max(1));
            let boundary = rows - test_rows;
            vec![Split { train: (0..boundary).collect(), test: (boundary..rows).collect() }]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_partition_the_rows() {
        let splits = splits(&Evaluation::Kfold { folds: 3, stratified: false }, 10, &Target::None, 1);
        let mut tested: Vec<usize> = splits.iter().flat_map(|split| split.test.clone()).collect();
        tested.sort();
        assert_eq!(tested, (0..10).collect::<Vec<_>>());
        assert!(splits.iter().all(|split| split.train.len() + split.test.len() == 10));
    }

    #[test]
    fn stratified_folds_keep_class_proportions() {
        let labels: Vec<usize> = (0..100).map(|row| usize::from(row % 4 == 0)).collect();
        let target = Target::Classes { labels: labels.clone(), classes: vec!["a".into(), "b".into()] };
        for split in splits(&Evaluation::Kfold { folds: 5, stratified: true }, 100, &target, 3) {
            let positives = split.test.iter().filter(|row| labels[**row] == 1).count();
            assert_eq!(positives, 5);
        }
    }

    #[test]
    fn time_split_tests_on_the_latest_rows() {
        let split = &splits(&Evaluation::TimeSplit { fraction: 0.2 }, 10, &Target::None, 0)[0];
        assert_eq!(split.test, vec![8, 9]);
    }
}
