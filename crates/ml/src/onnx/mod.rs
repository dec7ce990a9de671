//! Export of trained models to ONNX, so that any ONNX runtime can serve them: linear models and SVMs as
//! `LinearClassifier`/`LinearRegressor`, trees, forests and gradient boosting as `TreeEnsembleClassifier`/
//! `TreeEnsembleRegressor` (the `ai.onnx.ml` operators scikit-learn models export to), and the MLP as `Gemm`,
//! `Relu` and `Softmax`. When every feature is a plain numeric column, the graph takes those raw columns and
//! imputes and scales them itself (`Imputer`, `Scaler`); otherwise it takes the prepared feature vector.
//!
//! Outputs: classifiers give `label` (the class name) and `probabilities` (N × classes); regressors `variable`.

pub mod decode;
mod ensemble;
pub mod onnxruntime;
mod proto;
pub mod runtime;
pub mod tensor;

use crate::Error;
use crate::algorithms::Fitted;
use crate::search::TrainedModel;
use proto::{Attribute, FLOAT, INT64, Message, STRING, float_tensor, node, value_info};
use stratum_core::ir::Expr;

const ML: &str = "ai.onnx.ml";

/// What the exported graph takes as input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// The raw numeric columns, in this order; the graph imputes and scales them.
    RawColumns(Vec<String>),
    /// The prepared feature vector (after feature expressions, one-hot encoding, imputation and scaling).
    Prepared(Vec<String>),
}

/// Which graph input an exported model takes, decided by its preparation.
pub fn input_kind(model: &TrainedModel) -> InputKind {
    let preparation = &model.preparation;
    let raw: Option<Vec<String>> = preparation
        .features
        .iter()
        .map(|feature| match &feature.expr {
            Expr::Field { name } if !feature.categorical => Some(name.clone()),
            _ => None,
        })
        .collect();
    match raw {
        Some(columns) => InputKind::RawColumns(columns),
        None => InputKind::Prepared(preparation.output_names.clone()),
    }
}

/// The ONNX bytes of a trained model.
pub fn export(model: &TrainedModel, name: &str) -> Result<Vec<u8>, Error> {
    let kind = input_kind(model);
    let width = model.preparation.output_names.len() as i64;
    let mut nodes = Vec::new();
    let mut initializers = Vec::new();
    let input_name = match &kind {
        InputKind::RawColumns(_) => "features",
        InputKind::Prepared(_) => "prepared",
    };
    let mut current = input_name.to_string();
    if let InputKind::RawColumns(_) = kind {
        let fill = &model.preparation.fill;
        if fill.iter().any(Option::is_some) {
            let values: Vec<f32> = fill.iter().map(|value| value.unwrap_or(0.0) as f32).collect();
            nodes.push(node(
                "Imputer",
                ML,
                &[&current],
                &["imputed"],
                &[
                    Attribute::Floats("imputed_value_floats", values),
                    Attribute::Float("replaced_value_float", f32::NAN),
                ],
            ));
            current = "imputed".into();
        }
        let scaling = &model.preparation.scaling;
        if scaling.iter().any(|(offset, scale)| *offset != 0.0 || *scale != 1.0) {
            let offsets: Vec<f32> = scaling.iter().map(|(offset, _)| *offset as f32).collect();
            let scales: Vec<f32> = scaling.iter().map(|(_, scale)| (1.0 / scale) as f32).collect();
            nodes.push(node(
                "Scaler",
                ML,
                &[&current],
                &["scaled"],
                &[Attribute::Floats("offset", offsets), Attribute::Floats("scale", scales)],
            ));
            current = "scaled".into();
        }
    }
    let classes = &model.classes;
    let classifier_outputs = || {
        vec![
            value_info("label", STRING, &[None]),
            value_info("probabilities", FLOAT, &[None, Some(classes.len() as i64)]),
        ]
    };
    let regressor_outputs = || vec![value_info("variable", FLOAT, &[None, Some(1)])];
    let outputs = match &model.fitted {
        Fitted::Linear(linear) => {
            nodes.push(node(
                "LinearRegressor",
                ML,
                &[&current],
                &["variable"],
                &[
                    Attribute::Floats("coefficients", to_f32(&linear.weights)),
                    Attribute::Floats("intercepts", vec![linear.intercept as f32]),
                    Attribute::Int("targets", 1),
                ],
            ));
            regressor_outputs()
        }
        Fitted::Logistic(logistic) => {
            nodes.push(linear_classifier(&current, &logistic.weights, &logistic.intercepts, 0.5, classes));
            classifier_outputs()
        }
        Fitted::Svm(svm) => {
            nodes.push(linear_classifier(&current, &svm.weights, &svm.intercepts, 1.0, classes));
            classifier_outputs()
        }
        Fitted::Tree(tree) => {
            let ensemble = Ensemble::from_trees(std::slice::from_ref(&tree.tree), 1.0, tree.classes);
            nodes.push(ensemble.node(&current, classes, &[], "NONE"));
            if tree.classes == 0 { regressor_outputs() } else { classifier_outputs() }
        }
        Fitted::Forest(forest) => {
            let ensemble = Ensemble::from_trees(&forest.trees, 1.0 / forest.trees.len().max(1) as f64, forest.classes);
            nodes.push(ensemble.node(&current, classes, &[], "NONE"));
            if forest.classes == 0 { regressor_outputs() } else { classifier_outputs() }
        }
        Fitted::Boosting(boosting) => {
            use crate::algorithms::tree::BoostingLoss;
            let ensemble = Ensemble::from_rounds(&boosting.rounds, boosting.learning_rate);
            let (transform, is_classifier) = match boosting.loss {
                BoostingLoss::Squared => ("NONE", false),
                BoostingLoss::Binary => ("LOGISTIC", true),
                BoostingLoss::Multiclass => ("SOFTMAX", true),
            };
            nodes.push(ensemble.node(
                &current,
                if is_classifier { classes } else { &[] },
                &to_f32(&boosting.initial),
                transform,
            ));
            if is_classifier { classifier_outputs() } else { regressor_outputs() }
        }
        Fitted::Mlp(mlp) => {
            initializers.push(float_tensor(
                "first_weights",
                &[mlp.hidden as i64, mlp.inputs as i64],
                &to_f32(&mlp.first),
            ));
            initializers.push(float_tensor("first_bias", &[mlp.hidden as i64], &to_f32(&mlp.first_bias)));
            initializers.push(float_tensor(
                "second_weights",
                &[mlp.outputs as i64, mlp.hidden as i64],
                &to_f32(&mlp.second),
            ));
            initializers.push(float_tensor("second_bias", &[mlp.outputs as i64], &to_f32(&mlp.second_bias)));
            nodes.push(node(
                "Gemm",
                "",
                &[&current, "first_weights", "first_bias"],
                &["hidden_linear"],
                &[Attribute::Int("transB", 1)],
            ));
            nodes.push(node("Relu", "", &["hidden_linear"], &["hidden"], &[]));
            if mlp.classes == 0 {
                nodes.push(node(
                    "Gemm",
                    "",
                    &["hidden", "second_weights", "second_bias"],
                    &["variable"],
                    &[Attribute::Int("transB", 1)],
                ));
                regressor_outputs()
            } else {
                nodes.push(node(
                    "Gemm",
                    "",
                    &["hidden", "second_weights", "second_bias"],
                    &["logits"],
                    &[Attribute::Int("transB", 1)],
                ));
                nodes.push(node("Softmax", "", &["logits"], &["probabilities"], &[Attribute::Int("axis", 1)]));
                nodes.push(node(
                    "ArgMax",
                    "",
                    &["probabilities"],
                    &["class_index"],
                    &[Attribute::Int("axis", 1), Attribute::Int("keepdims", 0)],
                ));
                let keys: Vec<i64> = (0..classes.len() as i64).collect();
                nodes.push(node(
                    "LabelEncoder",
                    ML,
                    &["class_index"],
                    &["label"],
                    &[
                        Attribute::Ints("keys_int64s", keys),
                        Attribute::Texts("values_strings", classes.clone()),
                        Attribute::Text("default_string", ""),
                    ],
                ));
                classifier_outputs()
            }
        }
        Fitted::Knn(_) | Fitted::NaiveBayes(_) | Fitted::KMeans(_) | Fitted::Dbscan(_) => {
            let algorithm = match &model.fitted {
                Fitted::Knn(_) => "knn",
                Fitted::NaiveBayes(_) => "naive_bayes",
                Fitted::KMeans(_) => "kmeans",
                _ => "dbscan",
            };
            return Err(Error::Invalid(format!("ONNX export of `{algorithm}` models is not available yet")));
        }
    };
    let inputs = vec![value_info(
        input_name,
        FLOAT,
        &[
            None,
            Some(match &kind {
                InputKind::RawColumns(columns) => columns.len() as i64,
                InputKind::Prepared(_) => width,
            }),
        ],
    )];
    let _ = INT64;
    Ok(proto::model(name, nodes, initializers, inputs, outputs))
}

fn to_f32(values: &[f64]) -> Vec<f32> {
    values.iter().map(|value| *value as f32).collect()
}

/// A linear classifier with softmax: a binary model's single weight vector becomes two opposite halves, so that
/// softmax([-s·k, s·k]) reproduces the model's probabilities (k = ½ for the logistic sigmoid, 1 for the SVM's).
fn linear_classifier(
    input: &str,
    weights: &[f64],
    intercepts: &[f64],
    binary_factor: f64,
    classes: &[String],
) -> Message {
    let (coefficients, biases): (Vec<f64>, Vec<f64>) = if intercepts.len() == 1 {
        let mut coefficients: Vec<f64> = weights.iter().map(|w| -w * binary_factor).collect();
        coefficients.extend(weights.iter().map(|w| w * binary_factor));
        (coefficients, vec![-intercepts[0] * binary_factor, intercepts[0] * binary_factor])
    } else {
        (weights.to_vec(), intercepts.to_vec())
    };
    node(
        "LinearClassifier",
        ML,
        &[input],
        &["label", "probabilities"],
        &[
            Attribute::Floats("coefficients", to_f32(&coefficients)),
            Attribute::Floats("intercepts", to_f32(&biases)),
            Attribute::Texts("classlabels_strings", classes.to_vec()),
            Attribute::Text("post_transform", "SOFTMAX"),
        ],
    )
}

/// The flattened node and leaf-weight tables of a tree ensemble.
#[derive(Default)]
struct Ensemble {
    tree_ids: Vec<i64>,
    node_ids: Vec<i64>,
    feature_ids: Vec<i64>,
    values: Vec<f32>,
    modes: Vec<String>,
    true_ids: Vec<i64>,
    false_ids: Vec<i64>,
    weight_tree_ids: Vec<i64>,
    weight_node_ids: Vec<i64>,
    weight_outputs: Vec<i64>,
    weights: Vec<f32>,
}

impl Ensemble {
    fn add_tree(&mut self, tree_id: i64, tree: &crate::algorithms::tree::Tree, scale: f64, output: Option<i64>) {
        for (index, tree_node) in tree.nodes.iter().enumerate() {
            self.tree_ids.push(tree_id);
            self.node_ids.push(index as i64);
            let leaf = tree_node.feature == u32::MAX;
            self.feature_ids.push(if leaf { 0 } else { i64::from(tree_node.feature) });
            self.values.push(if leaf { 0.0 } else { tree_node.threshold as f32 });
            self.modes.push(if leaf { "LEAF" } else { "BRANCH_LEQ" }.to_string());
            self.true_ids.push(if leaf { 0 } else { i64::from(tree_node.left) });
            self.false_ids.push(if leaf { 0 } else { i64::from(tree_node.right) });
            if leaf {
                // A two-class model carries one column, the positive class's probability: onnxruntime then labels
                // a row positive when it exceeds 0.5 and writes [1 - p, p] (with a column per class it would label
                // any positive score as the positive class).
                let binary = output.is_none() && tree_node.value.len() == 2;
                for (position, value) in tree_node.value.iter().enumerate() {
                    if binary && position == 0 {
                        continue;
                    }
                    self.weight_tree_ids.push(tree_id);
                    self.weight_node_ids.push(index as i64);
                    // The single column of a binary model is id 0, as scikit-learn's exports have it.
                    let id = if binary { 0 } else { output.unwrap_or(position as i64) };
                    self.weight_outputs.push(id);
                    self.weights.push((value * scale) as f32);
                }
            }
        }
    }

    /// Trees averaged with `scale`; each leaf carries one weight per class (or one value for regression).
    fn from_trees(trees: &[crate::algorithms::tree::Tree], scale: f64, _classes: usize) -> Ensemble {
        let mut ensemble = Ensemble::default();
        for (index, tree) in trees.iter().enumerate() {
            ensemble.add_tree(index as i64, tree, scale, None);
        }
        ensemble
    }

    /// Boosting rounds: tree k of each round adds to output k, scaled by the learning rate.
    fn from_rounds(rounds: &[Vec<crate::algorithms::tree::Tree>], learning_rate: f64) -> Ensemble {
        let mut ensemble = Ensemble::default();
        let mut tree_id = 0;
        for round in rounds {
            for (output, tree) in round.iter().enumerate() {
                ensemble.add_tree(tree_id, tree, learning_rate, Some(output as i64));
                tree_id += 1;
            }
        }
        ensemble
    }

    /// A `TreeEnsembleClassifier` when `classes` is not empty, else a `TreeEnsembleRegressor`.
    fn node(self, input: &str, classes: &[String], base_values: &[f32], post_transform: &str) -> Message {
        let mut attributes = vec![
            Attribute::Ints("nodes_treeids", self.tree_ids),
            Attribute::Ints("nodes_nodeids", self.node_ids),
            Attribute::Ints("nodes_featureids", self.feature_ids),
            Attribute::Floats("nodes_values", self.values),
            Attribute::Texts("nodes_modes", self.modes),
            Attribute::Ints("nodes_truenodeids", self.true_ids),
            Attribute::Ints("nodes_falsenodeids", self.false_ids),
            Attribute::Text("post_transform", post_transform),
        ];
        if !base_values.is_empty() {
            attributes.push(Attribute::Floats("base_values", base_values.to_vec()));
        }
        if classes.is_empty() {
            attributes.extend([
                Attribute::Ints("target_treeids", self.weight_tree_ids),
                Attribute::Ints("target_nodeids", self.weight_node_ids),
                Attribute::Ints("target_ids", self.weight_outputs),
                Attribute::Floats("target_weights", self.weights),
                Attribute::Int("n_targets", 1),
                Attribute::Text("aggregate_function", "SUM"),
            ]);
            return node("TreeEnsembleRegressor", ML, &[input], &["variable"], &attributes);
        }
        attributes.extend([
            Attribute::Ints("class_treeids", self.weight_tree_ids),
            Attribute::Ints("class_nodeids", self.weight_node_ids),
            Attribute::Ints("class_ids", self.weight_outputs),
            Attribute::Floats("class_weights", self.weights),
            Attribute::Texts("classlabels_strings", classes.to_vec()),
        ]);
        node("TreeEnsembleClassifier", ML, &[input], &["label", "probabilities"], &attributes)
    }
}
