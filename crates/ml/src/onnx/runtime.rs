//! A small ONNX executor for imported models: the `ai.onnx.ml` operators that scikit-learn, XGBoost-style and
//! Stratum's own exports use, with onnxruntime's semantics (its binary-classification rules included), plus the
//! basic operators their graphs wire them with. Nodes run in file order, which ONNX requires to be topological.

use super::decode::{self, Graph, Node};
use super::ensemble::Ensemble;
use super::tensor::Tensor;
use crate::Error;
use std::collections::HashMap;

const SUPPORTED: &[&str] = &[
    "Identity",
    "Cast",
    "Reshape",
    "Flatten",
    "Concat",
    "Constant",
    "MatMul",
    "Gemm",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Relu",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "ArgMax",
    "ArrayFeatureExtractor",
    "ZipMap",
    "Scaler",
    "Imputer",
    "Normalizer",
    "Binarizer",
    "LinearClassifier",
    "LinearRegressor",
    "TreeEnsembleClassifier",
    "TreeEnsembleRegressor",
    "LabelEncoder",
];

/// A loaded model, ready to run.
#[derive(Clone, Debug)]
pub struct Session {
    graph: Graph,
    /// Tree ensembles compiled once, by node position.
    ensembles: Vec<Option<Ensemble>>,
}

pub(super) fn failure(node: &Node, message: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("ONNX node `{}`: {message}", node.op_type))
}

impl Session {
    /// Decodes a model and checks that every operator is supported.
    pub fn new(bytes: &[u8]) -> Result<Session, Error> {
        let graph = decode::graph(bytes)?;
        let mut missing: Vec<&str> =
            graph.nodes.iter().map(|node| node.op_type.as_str()).filter(|op| !SUPPORTED.contains(op)).collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            return Err(Error::Invalid(format!(
                "the ONNX model uses operators Stratum cannot run yet: {}",
                missing.join(", ")
            )));
        }
        let ensembles = graph
            .nodes
            .iter()
            .map(|node| {
                matches!(node.op_type.as_str(), "TreeEnsembleClassifier" | "TreeEnsembleRegressor")
                    .then(|| Ensemble::compile(node))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        Ok(Session { graph, ensembles })
    }

    /// The names of the graph's inputs.
    pub fn inputs(&self) -> &[String] {
        &self.graph.inputs
    }

    /// The names of the graph's outputs.
    pub fn outputs(&self) -> &[String] {
        &self.graph.outputs
    }

    /// How many columns an input takes, when the model declares it.
    pub fn input_width(&self, input: &str) -> Option<usize> {
        self.graph.input_widths.get(input).copied()
    }

    /// A `metadata_props` entry of the model.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.graph.metadata.get(key).map(String::as_str)
    }

    /// Runs the graph on named inputs and returns its outputs by name.
    pub fn run(&self, inputs: Vec<(String, Tensor)>) -> Result<HashMap<String, Tensor>, Error> {
        // Initializers are read in place; only computed values are kept here.
        let mut values: HashMap<String, Tensor> = inputs.into_iter().collect();
        for (node, ensemble) in self.graph.nodes.iter().zip(&self.ensembles) {
            let arguments: Vec<Option<&Tensor>> = node
                .inputs
                .iter()
                .map(|name| {
                    if name.is_empty() { None } else { values.get(name).or_else(|| self.graph.initializers.get(name)) }
                })
                .collect();
            let results = match ensemble {
                Some(ensemble) => ensemble.run(node, argument(node, &arguments, 0)?)?,
                None => run_node(node, &arguments)?,
            };
            for (name, result) in node.outputs.iter().zip(results) {
                values.insert(name.clone(), result);
            }
        }
        self.graph
            .outputs
            .iter()
            .map(|name| {
                values
                    .remove(name)
                    .or_else(|| self.graph.initializers.get(name).cloned())
                    .map(|value| (name.clone(), value))
                    .ok_or_else(|| Error::Invalid(format!("the ONNX graph never computes its output `{name}`")))
            })
            .collect()
    }
}

fn argument<'a>(node: &Node, arguments: &[Option<&'a Tensor>], index: usize) -> Result<&'a Tensor, Error> {
    arguments.get(index).copied().flatten().ok_or_else(|| failure(node, format!("input {index} is missing")))
}

pub(super) fn floats(node: &Node, tensor: &Tensor) -> Result<Vec<f32>, Error> {
    tensor.as_floats().ok_or_else(|| failure(node, "expected numbers, found strings"))
}

pub(super) fn float_matrix(rows: usize, columns: usize, data: Vec<f32>) -> Tensor {
    Tensor::Float { shape: vec![rows, columns], data }
}

fn sigmoid(value: f32) -> f32 {
    1.0 / (1.0 + (-value).exp())
}

fn softmax(row: &mut [f32]) {
    let largest = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for value in row.iter_mut() {
        *value = (*value - largest).exp();
        total += *value;
    }
    row.iter_mut().for_each(|value| *value /= total);
}

/// Applies a post-transform to each row of `width` scores.
pub(super) fn post_transform(name: &str, scores: &mut [f32], width: usize) {
    match name {
        "LOGISTIC" => scores.iter_mut().for_each(|value| *value = sigmoid(*value)),
        "SOFTMAX" => scores.chunks_mut(width.max(1)).for_each(softmax),
        "SOFTMAX_ZERO" => scores.chunks_mut(width.max(1)).for_each(|row| {
            let nonzero: Vec<usize> = (0..row.len()).filter(|index| row[*index] != 0.0).collect();
            let mut values: Vec<f32> = nonzero.iter().map(|index| row[*index]).collect();
            softmax(&mut values);
            for (index, value) in nonzero.iter().zip(values) {
                row[*index] = value;
            }
        }),
        _ => {}
    }
}

/// Labels as a tensor: strings when the model names its classes with strings, else integers.
pub(super) fn labels(node: &Node, indices: &[usize]) -> Tensor {
    let strings = node.texts("classlabels_strings");
    if !strings.is_empty() {
        return Tensor::Text {
            shape: vec![indices.len()],
            data: indices.iter().map(|index| strings[*index].clone()).collect(),
        };
    }
    let ints = node.ints("classlabels_int64s");
    Tensor::Int {
        shape: vec![indices.len()],
        data: indices.iter().map(|index| ints.get(*index).copied().unwrap_or(*index as i64)).collect(),
    }
}

pub(super) fn class_count(node: &Node) -> usize {
    node.texts("classlabels_strings").len().max(node.ints("classlabels_int64s").len())
}

/// Element-wise arithmetic with numpy-style broadcasting over trailing dimensions (a scalar, a row, or equal shapes).
fn elementwise(node: &Node, a: &Tensor, b: &Tensor, operation: fn(f32, f32) -> f32) -> Result<Tensor, Error> {
    let (x, y) = (floats(node, a)?, floats(node, b)?);
    let (shape, long, short, swapped) =
        if x.len() >= y.len() { (a.shape().to_vec(), x, y, false) } else { (b.shape().to_vec(), y, x, true) };
    if short.is_empty() || long.len() % short.len() != 0 {
        return Err(failure(node, "shapes cannot be broadcast"));
    }
    let data = long
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let other = short[index % short.len()];
            if swapped { operation(other, *value) } else { operation(*value, other) }
        })
        .collect();
    Ok(Tensor::Float { shape, data })
}

fn run_node(node: &Node, arguments: &[Option<&Tensor>]) -> Result<Vec<Tensor>, Error> {
    let input = || argument(node, arguments, 0);
    Ok(match node.op_type.as_str() {
        "Identity" | "ZipMap" => vec![input()?.clone()],
        "Constant" => match node.attributes.get("value") {
            Some(decode::Attribute::Tensor(tensor)) => vec![tensor.clone()],
            _ => match node.attributes.get("value_floats").or(node.attributes.get("value_float")) {
                Some(_) => {
                    let values = node.floats("value_floats");
                    let values = if values.is_empty() { node.floats("value_float") } else { values };
                    vec![Tensor::Float { shape: vec![values.len()], data: values }]
                }
                None => {
                    let values = node.ints("value_ints");
                    let values = if values.is_empty() { node.ints("value_int") } else { values };
                    vec![Tensor::Int { shape: vec![values.len()], data: values }]
                }
            },
        },
        "Cast" => {
            let tensor = input()?;
            let shape = tensor.shape().to_vec();
            vec![match node.int("to", 1) {
                1 | 10 | 11 => Tensor::Float { shape, data: floats(node, tensor)? },
                6 | 7 | 9 => Tensor::Int {
                    shape,
                    data: tensor.as_ints().ok_or_else(|| failure(node, "cannot cast strings to integers"))?,
                },
                8 => Tensor::Text {
                    shape,
                    data: match tensor {
                        Tensor::Text { data, .. } => data.clone(),
                        Tensor::Int { data, .. } => data.iter().map(i64::to_string).collect(),
                        Tensor::Float { data, .. } => data.iter().map(f32::to_string).collect(),
                    },
                },
                other => return Err(failure(node, format!("casting to element type {other} is not supported"))),
            }]
        }
        "Reshape" => {
            let tensor = input()?;
            let wanted = argument(node, arguments, 1)?.as_ints().unwrap_or_default();
            let total = tensor.len();
            let known: usize = wanted
                .iter()
                .enumerate()
                .map(|(index, size)| match size {
                    0 => tensor.shape().get(index).copied().unwrap_or(1),
                    -1 => 1,
                    size => *size as usize,
                })
                .product();
            let shape: Vec<usize> = wanted
                .iter()
                .enumerate()
                .map(|(index, size)| match size {
                    0 => tensor.shape().get(index).copied().unwrap_or(1),
                    -1 => total / known.max(1),
                    size => *size as usize,
                })
                .collect();
            vec![with_shape(tensor, shape)]
        }
        "Flatten" => {
            let tensor = input()?;
            let (rows, columns) = tensor.matrix_shape();
            vec![with_shape(tensor, vec![rows, columns])]
        }
        "Concat" => {
            let parts: Vec<&Tensor> = arguments.iter().flatten().copied().collect();
            let axis = node.int("axis", 1);
            let rows = parts.first().map_or(0, |part| part.matrix_shape().0);
            if axis == 0 || parts.iter().all(|part| part.shape().len() == 1) {
                let mut data = Vec::new();
                for part in &parts {
                    data.extend(floats(node, part)?);
                }
                vec![Tensor::Float { shape: vec![data.len()], data }]
            } else {
                let widths: Vec<usize> = parts.iter().map(|part| part.matrix_shape().1).collect();
                let values: Vec<Vec<f32>> = parts.iter().map(|part| floats(node, part)).collect::<Result<_, _>>()?;
                let mut data = Vec::with_capacity(rows * widths.iter().sum::<usize>());
                for row in 0..rows {
                    for (part, width) in values.iter().zip(&widths) {
                        data.extend_from_slice(&part[row * width..(row + 1) * width]);
                    }
                }
                vec![float_matrix(rows, widths.iter().sum(), data)]
            }
        }
        "MatMul" | "Gemm" => {
            let (a, b) = (input()?, argument(node, arguments, 1)?);
            let (mut a_rows, mut a_columns) = a.matrix_shape();
            let (mut b_rows, mut b_columns) = b.matrix_shape();
            let transpose_a = node.int("transA", 0) == 1;
            let transpose_b = node.int("transB", 0) == 1;
            if transpose_a {
                std::mem::swap(&mut a_rows, &mut a_columns);
            }
            if transpose_b {
                std::mem::swap(&mut b_rows, &mut b_columns);
            }
            if a_columns != b_rows {
                return Err(failure(node, format!("cannot multiply {a_rows}×{a_columns} by {b_rows}×{b_columns}")));
            }
            let (x, y) = (floats(node, a)?, floats(node, b)?);
            let alpha = node.float("alpha", 1.0);
            let beta = node.float("beta", 1.0);
            let bias = match arguments.get(2).copied().flatten() {
                Some(tensor) if node.op_type == "Gemm" => floats(node, tensor)?,
                _ => Vec::new(),
            };
            let mut data = vec![0.0f32; a_rows * b_columns];
            for i in 0..a_rows {
                for k in 0..a_columns {
                    let left = if transpose_a { x[k * a_rows + i] } else { x[i * a_columns + k] };
                    if left == 0.0 {
                        continue;
                    }
                    for j in 0..b_columns {
                        let right = if transpose_b { y[j * b_rows + k] } else { y[k * b_columns + j] };
                        data[i * b_columns + j] += left * right;
                    }
                }
            }
            for (index, value) in data.iter_mut().enumerate() {
                *value *= alpha;
                // The bias broadcasts: a full matrix, a row, a column, or one number.
                let added = match bias.len() {
                    0 => 0.0,
                    length if length == a_rows * b_columns => bias[index],
                    length if length == b_columns => bias[index % b_columns],
                    length if length == a_rows => bias[index / b_columns],
                    _ => bias[0],
                };
                *value += beta * added;
            }
            vec![float_matrix(a_rows, b_columns, data)]
        }
        "Add" => vec![elementwise(node, input()?, argument(node, arguments, 1)?, |a, b| a + b)?],
        "Sub" => vec![elementwise(node, input()?, argument(node, arguments, 1)?, |a, b| a - b)?],
        "Mul" => vec![elementwise(node, input()?, argument(node, arguments, 1)?, |a, b| a * b)?],
        "Div" => vec![elementwise(node, input()?, argument(node, arguments, 1)?, |a, b| a / b)?],
        "Relu" | "Sigmoid" | "Tanh" => {
            let tensor = input()?;
            let function: fn(f32) -> f32 = match node.op_type.as_str() {
                "Relu" => |value| value.max(0.0),
                "Sigmoid" => sigmoid,
                _ => f32::tanh,
            };
            vec![Tensor::Float {
                shape: tensor.shape().to_vec(),
                data: floats(node, tensor)?.into_iter().map(function).collect(),
            }]
        }
        "Softmax" => {
            let tensor = input()?;
            let (_, columns) = tensor.matrix_shape();
            let mut data = floats(node, tensor)?;
            data.chunks_mut(columns.max(1)).for_each(softmax);
            vec![Tensor::Float { shape: tensor.shape().to_vec(), data }]
        }
        "ArgMax" => {
            let tensor = input()?;
            let (rows, columns) = tensor.matrix_shape();
            let data = floats(node, tensor)?;
            let indices: Vec<i64> = (0..rows)
                .map(|row| {
                    let values = &data[row * columns..(row + 1) * columns];
                    let mut best = 0;
                    for (index, value) in values.iter().enumerate() {
                        if *value > values[best] {
                            best = index;
                        }
                    }
                    best as i64
                })
                .collect();
            let shape = if node.int("keepdims", 1) == 1 { vec![rows, 1] } else { vec![rows] };
            vec![Tensor::Int { shape, data: indices }]
        }
        "ArrayFeatureExtractor" => {
            let (data, indices) = (input()?, argument(node, arguments, 1)?.as_ints().unwrap_or_default());
            let (rows, columns) = data.matrix_shape();
            let pick = |row: usize, index: i64| row * columns + index.max(0) as usize;
            let positions: Vec<usize> = if data.shape().len() <= 1 {
                indices.iter().map(|index| index.max(&0).to_owned() as usize).collect()
            } else {
                (0..rows).flat_map(|row| indices.iter().map(move |index| pick(row, *index))).collect()
            };
            let shape = if data.shape().len() <= 1 { vec![1, positions.len()] } else { vec![rows, indices.len()] };
            vec![match data {
                Tensor::Float { data, .. } => {
                    Tensor::Float { shape, data: positions.iter().map(|position| data[*position]).collect() }
                }
                Tensor::Int { data, .. } => {
                    Tensor::Int { shape, data: positions.iter().map(|position| data[*position]).collect() }
                }
                Tensor::Text { data, .. } => {
                    Tensor::Text { shape, data: positions.iter().map(|position| data[*position].clone()).collect() }
                }
            }]
        }
        "Scaler" => {
            let tensor = input()?;
            let (offsets, scales) = (node.floats("offset"), node.floats("scale"));
            let (_, columns) = tensor.matrix_shape();
            let data = floats(node, tensor)?
                .iter()
                .enumerate()
                .map(|(index, value)| {
                    let column = index % columns.max(1);
                    let offset = offsets.get(column).or(offsets.first()).copied().unwrap_or(0.0);
                    let scale = scales.get(column).or(scales.first()).copied().unwrap_or(1.0);
                    (value - offset) * scale
                })
                .collect();
            vec![Tensor::Float { shape: tensor.shape().to_vec(), data }]
        }
        "Imputer" => {
            let tensor = input()?;
            let fill = node.floats("imputed_value_floats");
            let replaced = node.float("replaced_value_float", f32::NAN);
            let (_, columns) = tensor.matrix_shape();
            let data = floats(node, tensor)?
                .iter()
                .enumerate()
                .map(|(index, value)| {
                    let missing = if replaced.is_nan() { value.is_nan() } else { *value == replaced };
                    if missing {
                        fill.get(index % columns.max(1)).or(fill.first()).copied().unwrap_or(0.0)
                    } else {
                        *value
                    }
                })
                .collect();
            vec![Tensor::Float { shape: tensor.shape().to_vec(), data }]
        }
        "Normalizer" => {
            let tensor = input()?;
            let (_, columns) = tensor.matrix_shape();
            let mut data = floats(node, tensor)?;
            let norm = node.text("norm", "MAX");
            for row in data.chunks_mut(columns.max(1)) {
                let size: f32 = match norm.as_str() {
                    "L1" => row.iter().map(|value| value.abs()).sum(),
                    "L2" => row.iter().map(|value| value * value).sum::<f32>().sqrt(),
                    _ => row.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                };
                if size != 0.0 {
                    row.iter_mut().for_each(|value| *value /= size);
                }
            }
            vec![Tensor::Float { shape: tensor.shape().to_vec(), data }]
        }
        "Binarizer" => {
            let tensor = input()?;
            let threshold = node.float("threshold", 0.0);
            let data =
                floats(node, tensor)?.into_iter().map(|value| if value > threshold { 1.0 } else { 0.0 }).collect();
            vec![Tensor::Float { shape: tensor.shape().to_vec(), data }]
        }
        "LabelEncoder" => {
            let tensor = input()?;
            let shape = tensor.shape().to_vec();
            let (keys_ints, keys_strings) = (node.ints("keys_int64s"), node.texts("keys_strings"));
            let (values_ints, values_strings, values_floats) =
                (node.ints("values_int64s"), node.texts("values_strings"), node.floats("values_floats"));
            let position = |index: usize| -> Option<usize> {
                match tensor {
                    Tensor::Int { data, .. } => keys_ints.iter().position(|key| *key == data[index]),
                    Tensor::Text { data, .. } => keys_strings.iter().position(|key| *key == data[index]),
                    Tensor::Float { data, .. } => keys_ints.iter().position(|key| *key as f32 == data[index]),
                }
            };
            let count = tensor.len();
            vec![if !values_strings.is_empty() {
                let default = node.text("default_string", "_Unused");
                Tensor::Text {
                    shape,
                    data: (0..count)
                        .map(|index| position(index).map_or(default.clone(), |at| values_strings[at].clone()))
                        .collect(),
                }
            } else if !values_ints.is_empty() {
                let default = node.int("default_int64", -1);
                Tensor::Int {
                    shape,
                    data: (0..count).map(|index| position(index).map_or(default, |at| values_ints[at])).collect(),
                }
            } else {
                let default = node.float("default_float", -0.0);
                Tensor::Float {
                    shape,
                    data: (0..count).map(|index| position(index).map_or(default, |at| values_floats[at])).collect(),
                }
            }]
        }
        "LinearRegressor" => {
            let tensor = input()?;
            let (rows, columns) = tensor.matrix_shape();
            let x = floats(node, tensor)?;
            let coefficients = node.floats("coefficients");
            let intercepts = node.floats("intercepts");
            let targets = node.int("targets", 1).max(1) as usize;
            let mut data = vec![0.0; rows * targets];
            for row in 0..rows {
                for target in 0..targets {
                    let weights = &coefficients[target * columns..(target + 1) * columns];
                    data[row * targets + target] =
                        x[row * columns..(row + 1) * columns].iter().zip(weights).map(|(a, b)| a * b).sum::<f32>()
                            + intercepts.get(target).copied().unwrap_or(0.0);
                }
            }
            post_transform(&node.text("post_transform", "NONE"), &mut data, targets);
            vec![float_matrix(rows, targets, data)]
        }
        "LinearClassifier" => linear_classifier(node, input()?)?,
        other => return Err(failure(node, format!("`{other}` is not supported"))),
    })
}

fn with_shape(tensor: &Tensor, shape: Vec<usize>) -> Tensor {
    match tensor.clone() {
        Tensor::Float { data, .. } => Tensor::Float { shape, data },
        Tensor::Int { data, .. } => Tensor::Int { shape, data },
        Tensor::Text { data, .. } => Tensor::Text { shape, data },
    }
}

/// Writes one row's binary scores as onnxruntime does when it adds the second class.
pub(super) fn second_class(score: f32, add: i32, transform: &str) -> [f32; 2] {
    match add {
        0 | 1 => [1.0 - score, score],
        _ if transform == "LOGISTIC" => [sigmoid(-score), sigmoid(score)],
        _ => [-score, score],
    }
}

fn linear_classifier(node: &Node, tensor: &Tensor) -> Result<Vec<Tensor>, Error> {
    let (rows, columns) = tensor.matrix_shape();
    let x = floats(node, tensor)?;
    let coefficients = node.floats("coefficients");
    let intercepts = node.floats("intercepts");
    let targets = (coefficients.len() / columns.max(1)).max(1);
    let transform = node.text("post_transform", "NONE");
    let mut scores = vec![0.0f32; rows * targets];
    for row in 0..rows {
        for target in 0..targets {
            let weights = &coefficients[target * columns..(target + 1) * columns];
            scores[row * targets + target] =
                x[row * columns..(row + 1) * columns].iter().zip(weights).map(|(a, b)| a * b).sum::<f32>()
                    + intercepts.get(target).copied().unwrap_or(0.0);
        }
    }
    if targets == 1 && class_count(node) == 2 {
        let indices: Vec<usize> = scores.iter().map(|score| usize::from(*score > 0.0)).collect();
        post_transform(&transform, &mut scores, 1);
        let data: Vec<f32> = scores.iter().flat_map(|score| second_class(*score, 1, &transform)).collect();
        return Ok(vec![labels(node, &indices), float_matrix(rows, 2, data)]);
    }
    let indices: Vec<usize> = scores
        .chunks(targets)
        .map(|row| {
            let mut best = 0;
            for (index, value) in row.iter().enumerate() {
                if *value > row[best] {
                    best = index;
                }
            }
            best
        })
        .collect();
    post_transform(&transform, &mut scores, targets);
    Ok(vec![labels(node, &indices), float_matrix(rows, targets, scores)])
}
