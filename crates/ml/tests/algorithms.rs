//! Every algorithm learns what it should on synthetic data with a known answer: separable classes, a linear
//! function, well-separated clusters.

use stratum_core::ir::{Metric, Value};
use stratum_ml::algorithms::{Params, fit};
use stratum_ml::matrix::{Matrix, Random};
use stratum_ml::metrics::{Predictions, score};
use stratum_ml::prepare::Target;

/// Three Gaussian classes in four dimensions (two informative), 300 rows.
fn classes(seed: u64) -> (Matrix, Vec<usize>) {
    let mut random = Random::new(seed);
    let mut normal = || {
        let (u, v) = (random.next_f64().max(1e-300), random.next_f64());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    };
    let centres = [(0.0, 0.0), (4.0, 0.0), (0.0, 4.0)];
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for index in 0..300 {
        let class = index % 3;
        rows.push(vec![centres[class].0 + normal(), centres[class].1 + normal(), normal(), normal()]);
        labels.push(class);
    }
    (Matrix::from_rows(&rows), labels)
}

fn params(pairs: &[(&str, Value)]) -> Params {
    Params(pairs.iter().map(|(name, value)| (name.to_string(), value.clone())).collect())
}

fn accuracy(algorithm: &str, parameters: &Params) -> f64 {
    let (train_x, train_labels) = classes(1);
    let (test_x, test_labels) = classes(2);
    let target = Target::Classes { labels: train_labels, classes: vec!["a".into(), "b".into(), "c".into()] };
    let fitted = fit(algorithm, parameters, &train_x, &target, 7).unwrap();
    score(Metric::Accuracy, &fitted.predict(&test_x), &test_labels, &[], &test_x)
}

#[test]
fn classifiers_separate_gaussian_classes() {
    let cases: Vec<(&str, Params)> = vec![
        ("logistic_regression", Params::default()),
        ("logistic_regression", params(&[("penalty", Value::String("l1".into()))])),
        ("decision_tree", params(&[("max_depth", Value::Int(4))])),
        ("random_forest", params(&[("trees", Value::Int(30))])),
        ("gradient_boosting", params(&[("rounds", Value::Int(50))])),
        ("knn", params(&[("k", Value::Int(5))])),
        ("naive_bayes", Params::default()),
        ("svm", Params::default()),
        (
            "mlp",
            params(&[("hidden", Value::Int(16)), ("epochs", Value::Int(60)), ("learning_rate", Value::Float(0.01))]),
        ),
    ];
    for (algorithm, parameters) in cases {
        let accuracy = accuracy(algorithm, &parameters);
        assert!(accuracy > 0.9, "{algorithm} ({}) reached only {accuracy}", parameters.describe());
    }
}

#[test]
fn regressors_recover_a_linear_function() {
    let mut random = Random::new(3);
    let rows: Vec<Vec<f64>> = (0..400).map(|_| vec![random.next_f64() * 4.0, random.next_f64() * 4.0]).collect();
    let y: Vec<f64> =
        rows.iter().map(|row| 3.0 * row[0] - 2.0 * row[1] + 1.0 + (random.next_f64() - 0.5) * 0.1).collect();
    let x = Matrix::from_rows(&rows);
    let target = Target::Values(y.clone());
    for (algorithm, parameters, bound) in [
        ("linear_regression", Params::default(), 0.05),
        ("ridge", params(&[("alpha", Value::Float(0.1))]), 0.05),
        ("lasso", params(&[("alpha", Value::Float(0.001))]), 0.05),
        ("elastic_net", params(&[("alpha", Value::Float(0.001))]), 0.05),
        ("gradient_boosting", params(&[("rounds", Value::Int(200))]), 0.5),
        ("random_forest", params(&[("trees", Value::Int(50))]), 0.6),
        ("decision_tree", Params::default(), 0.8),
        ("knn", params(&[("k", Value::Int(5))]), 0.6),
    ] {
        let fitted = fit(algorithm, &parameters, &x, &target, 1).unwrap();
        let rmse = score(Metric::Rmse, &fitted.predict(&x), &[], &y, &x);
        assert!(rmse < bound, "{algorithm}: rmse {rmse} (bound {bound})");
    }
}

#[test]
fn clustering_finds_separated_groups() {
    let (x, labels) = classes(5);
    // DBSCAN's noise points count as one scattered cluster, which lowers its silhouette.
    for (algorithm, parameters, least_silhouette) in [
        ("kmeans", params(&[("k", Value::Int(3))]), 0.3),
        ("dbscan", params(&[("eps", Value::Float(1.5)), ("min_samples", Value::Int(5))]), 0.1),
    ] {
        let fitted = fit(algorithm, &parameters, &x, &Target::None, 11).unwrap();
        let Predictions::Clusters(assignment) = fitted.predict(&x) else { panic!("{algorithm} must cluster") };
        // Most rows of each true class share one cluster.
        for class in 0..3 {
            let members: Vec<usize> =
                (0..x.rows).filter(|row| labels[*row] == class).map(|row| assignment[row]).collect();
            let most =
                (0..10).map(|cluster| members.iter().filter(|member| **member == cluster).count()).max().unwrap();
            assert!(most as f64 / members.len() as f64 > 0.7, "{algorithm}: class {class} is split");
        }
        let silhouette = score(Metric::Silhouette, &fitted.predict(&x), &[], &[], &x);
        assert!(silhouette > least_silhouette, "{algorithm}: silhouette {silhouette}");
    }
}

#[test]
fn the_same_seed_gives_the_same_model() {
    let (x, labels) = classes(9);
    let target = Target::Classes { labels, classes: vec!["a".into(), "b".into(), "c".into()] };
    let parameters = params(&[("trees", Value::Int(10))]);
    assert_eq!(
        fit("random_forest", &parameters, &x, &target, 42).unwrap(),
        fit("random_forest", &parameters, &x, &target, 42).unwrap()
    );
}
