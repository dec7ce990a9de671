//! The algorithms, implemented here so that every fitted model is plain data: serializable into an artifact and,
//! later, exportable to ONNX node by node. One `fit` entry point dispatches on the algorithm's name; every fitted
//! model predicts through [`Fitted::predict`].

mod bayes;
mod cluster;
mod linear;
mod mlp;
mod neighbors;
pub mod tree;

use crate::Error;
use crate::matrix::Matrix;
use crate::metrics::Predictions;
use crate::prepare::Target;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use stratum_core::ir::Value;

/// One candidate's hyperparameters, as chosen by the search.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Params(pub BTreeMap<String, Value>);

impl Params {
    /// The number `name`, or `default` when it is not set (or not a number).
    pub fn number(&self, name: &str, default: f64) -> f64 {
        match self.0.get(name) {
            Some(Value::Int(value)) => *value as f64,
            Some(Value::Float(value)) => *value,
            _ => default,
        }
    }

    /// The whole number `name` (rounded, at least 0), or `default`.
    pub fn whole(&self, name: &str, default: usize) -> usize {
        self.number(name, default as f64).round().max(0.0) as usize
    }

    /// The word `name`, or `default` when it is not set (or not a word).
    pub fn word<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        match self.0.get(name) {
            Some(Value::String(value)) => value,
            _ => default,
        }
    }

    /// `trees=100, max_depth=8`, for leaderboards.
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(name, value)| {
                let shown = match value {
                    Value::Bool(value) => value.to_string(),
                    Value::Int(value) => value.to_string(),
                    Value::Float(value) => stratum_core::units::trim_number(*value),
                    Value::String(value) => value.clone(),
                };
                format!("{name}={shown}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A fitted model of any algorithm. Serialized as its fields with the algorithm's name first (`"algorithm":
/// "forest"`); read back by [`Fitted`]'s own `Deserialize`, below.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "algorithm", rename_all = "snake_case")]
pub enum Fitted {
    /// Linear regression.
    Linear(linear::LinearModel),
    /// Logistic regression.
    Logistic(linear::LogisticModel),
    /// A linear support vector machine.
    Svm(linear::LinearSvm),
    /// One decision tree.
    Tree(tree::TreeModel),
    /// A random forest.
    Forest(tree::Forest),
    /// Gradient-boosted trees.
    Boosting(tree::Boosting),
    /// k nearest neighbours.
    Knn(neighbors::Knn),
    /// Gaussian naive Bayes.
    NaiveBayes(bayes::NaiveBayes),
    /// k-means clustering.
    KMeans(cluster::KMeans),
    /// DBSCAN clustering.
    Dbscan(cluster::Dbscan),
    /// A multi-layer perceptron.
    Mlp(mlp::Mlp),
}

/// The algorithms' names as artifacts spell them.
const ALGORITHMS: &[&str] =
    &["linear", "logistic", "svm", "tree", "forest", "boosting", "knn", "naive_bayes", "k_means", "dbscan", "mlp"];

/// Reads the tag and then the rest of the map straight into the algorithm's model. What serde derives for an
/// internally tagged enum first copies the whole map into a tree of values (it cannot know where the tag is),
/// which for a forest of large trees doubled the time a replica takes to load its model. Stratum writes the tag
/// first; a map that does not start with it is refused with that reason.
impl<'de> Deserialize<'de> for Fitted {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Fitted, D::Error> {
        deserializer.deserialize_map(FittedVisitor)
    }
}

struct FittedVisitor;

impl<'de> serde::de::Visitor<'de> for FittedVisitor {
    type Value = Fitted;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a fitted model: a map whose first key is `algorithm`")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Fitted, A::Error> {
        use serde::de::Error as _;
        let key: Option<String> = map.next_key()?;
        if key.as_deref() != Some("algorithm") {
            return Err(A::Error::custom("a fitted model must start with its `algorithm`"));
        }
        let algorithm: String = map.next_value()?;
        let rest = serde::de::value::MapAccessDeserializer::new(map);
        Ok(match algorithm.as_str() {
            "linear" => Fitted::Linear(Deserialize::deserialize(rest)?),
            "logistic" => Fitted::Logistic(Deserialize::deserialize(rest)?),
            "svm" => Fitted::Svm(Deserialize::deserialize(rest)?),
            "tree" => Fitted::Tree(Deserialize::deserialize(rest)?),
            "forest" => Fitted::Forest(Deserialize::deserialize(rest)?),
            "boosting" => Fitted::Boosting(Deserialize::deserialize(rest)?),
            "knn" => Fitted::Knn(Deserialize::deserialize(rest)?),
            "naive_bayes" => Fitted::NaiveBayes(Deserialize::deserialize(rest)?),
            "k_means" => Fitted::KMeans(Deserialize::deserialize(rest)?),
            "dbscan" => Fitted::Dbscan(Deserialize::deserialize(rest)?),
            "mlp" => Fitted::Mlp(Deserialize::deserialize(rest)?),
            other => return Err(A::Error::unknown_variant(other, ALGORITHMS)),
        })
    }
}

impl Fitted {
    /// What the model says about each row of `x` (prepared features).
    pub fn predict(&self, x: &Matrix) -> Predictions {
        match self {
            Fitted::Linear(model) => Predictions::Values(model.predict(x)),
            Fitted::Logistic(model) => classes(model.probabilities(x)),
            Fitted::Svm(model) => classes(model.probabilities(x)),
            Fitted::Tree(model) => model.predict(x),
            Fitted::Forest(model) => model.predict(x),
            Fitted::Boosting(model) => model.predict(x),
            Fitted::Knn(model) => model.predict(x),
            Fitted::NaiveBayes(model) => classes(model.probabilities(x)),
            Fitted::KMeans(model) => Predictions::Clusters(model.assign(x)),
            Fitted::Dbscan(model) => Predictions::Clusters(model.assign(x)),
            Fitted::Mlp(model) => model.predict(x),
        }
    }
}

/// Predictions from per-class probabilities: the most probable class of each row, the first one on a tie (as
/// scikit-learn, numpy and ONNX runtimes choose).
pub(crate) fn classes(probabilities: Vec<Vec<f64>>) -> Predictions {
    let count = probabilities.first().map_or(0, Vec::len);
    let labels = probabilities
        .iter()
        .map(|row| {
            let mut best = 0;
            for (index, probability) in row.iter().enumerate() {
                if *probability > row[best] {
                    best = index;
                }
            }
            best
        })
        .collect();
    Predictions::Classes { labels, probabilities, classes: count }
}

/// Fits `algorithm` with `params` on the prepared features and target.
pub fn fit(algorithm: &str, params: &Params, x: &Matrix, target: &Target, seed: u64) -> Result<Fitted, Error> {
    let invalid = |message: String| Err(Error::Invalid(message));
    match (algorithm, target) {
        ("linear_regression", Target::Values(y)) => Ok(Fitted::Linear(linear::LinearModel::ridge(x, y, 0.0))),
        ("ridge", Target::Values(y)) => {
            Ok(Fitted::Linear(linear::LinearModel::ridge(x, y, params.number("alpha", 1.0))))
        }
        ("lasso", Target::Values(y)) => {
            Ok(Fitted::Linear(linear::LinearModel::elastic_net(x, y, params.number("alpha", 1.0), 1.0)))
        }
        ("elastic_net", Target::Values(y)) => Ok(Fitted::Linear(linear::LinearModel::elastic_net(
            x,
            y,
            params.number("alpha", 1.0),
            params.number("l1_ratio", 0.5),
        ))),
        ("logistic_regression", Target::Classes { labels, classes }) => {
            let penalty = params.word("penalty", "l2");
            Ok(Fitted::Logistic(linear::LogisticModel::fit(
                x,
                labels,
                classes.len(),
                params.number("c", 1.0),
                penalty,
                params.whole("max_iter", 200),
            )))
        }
        ("svm", Target::Classes { labels, classes }) => {
            Ok(Fitted::Svm(linear::LinearSvm::fit(x, labels, classes.len(), params.number("c", 1.0), seed)))
        }
        ("svm", Target::Values(_)) => {
            invalid("`svm` regression is not available yet; use ridge or gradient_boosting".into())
        }
        ("decision_tree", _) | ("random_forest", _) | ("gradient_boosting", _) => {
            tree::fit(algorithm, params, x, target, seed)
        }
        ("knn", _) => Ok(Fitted::Knn(neighbors::Knn::fit(
            x,
            target,
            params.whole("k", 5),
            params.word("weights", "uniform") == "distance",
        ))),
        ("naive_bayes", Target::Classes { labels, classes }) => {
            bayes::NaiveBayes::fit(x, labels, classes.len(), params.word("variant", "gaussian")).map(Fitted::NaiveBayes)
        }
        ("kmeans", _) => {
            Ok(Fitted::KMeans(cluster::KMeans::fit(x, params.whole("k", 8), params.whole("max_iter", 300), seed)))
        }
        ("dbscan", _) => {
            Ok(Fitted::Dbscan(cluster::Dbscan::fit(x, params.number("eps", 0.5), params.whole("min_samples", 5))))
        }
        ("mlp", _) => Ok(Fitted::Mlp(mlp::Mlp::fit(
            x,
            target,
            params.whole("hidden", 64),
            params.number("learning_rate", 0.001),
            params.whole("epochs", 50),
            seed,
        ))),
        (other, _) => invalid(format!("`{other}` cannot learn this kind of target")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every algorithm's fitted model reads back as it was written, through the hand-written `Deserialize`.
    #[test]
    fn every_fitted_model_round_trips_through_json() {
        let x = Matrix::from_rows(&(0..40).map(|row| vec![row as f64, (row % 7) as f64]).collect::<Vec<_>>());
        let classes = Target::Classes {
            labels: (0..40).map(|row| usize::from(row >= 20)).collect(),
            classes: vec!["no".into(), "yes".into()],
        };
        let values = Target::Values((0..40).map(|row| row as f64 * 0.5).collect());
        let mut names = std::collections::BTreeSet::new();
        for (algorithm, target) in [
            ("linear_regression", &values),
            ("logistic_regression", &classes),
            ("svm", &classes),
            ("decision_tree", &classes),
            ("random_forest", &classes),
            ("gradient_boosting", &values),
            ("knn", &classes),
            ("naive_bayes", &classes),
            ("kmeans", &Target::None),
            ("dbscan", &Target::None),
            ("mlp", &classes),
        ] {
            let fitted = fit(algorithm, &Params::default(), &x, target, 1).unwrap();
            let text = serde_json::to_string(&fitted).unwrap();
            let tag =
                serde_json::from_str::<serde_json::Value>(&text).unwrap()["algorithm"].as_str().unwrap().to_string();
            assert!(text.starts_with(&format!("{{\"algorithm\":\"{tag}\"")), "{algorithm}: the tag comes first");
            assert_eq!(serde_json::from_str::<Fitted>(&text).unwrap(), fitted, "{algorithm}");
            names.insert(tag);
        }
        assert_eq!(names, ALGORITHMS.iter().map(|name| name.to_string()).collect(), "every algorithm is covered");
    }

    #[test]
    fn a_fitted_model_without_its_algorithm_first_is_refused() {
        let error = serde_json::from_str::<Fitted>(r#"{"weights": [1.0], "algorithm": "linear"}"#).unwrap_err();
        assert!(error.to_string().contains("must start with its `algorithm`"), "{error}");
        let error = serde_json::from_str::<Fitted>(r#"{"algorithm": "quantum"}"#).unwrap_err();
        assert!(error.to_string().contains("unknown variant `quantum`"), "{error}");
    }
}
