//! Imported models: an ONNX file declared with `model NAME: onnx { path  input  output }`, run by Stratum's own
//! executor — or, for graphs it cannot run, by ONNX Runtime when the user provides it (see
//! [`crate::onnx::onnxruntime`]). Records are turned into the graph's float input in the order of the declared
//! input schema, and the outputs into the same [`Prediction`]s trained models give.

use crate::Error;
use crate::onnx::onnxruntime::{Choice, OrtSession};
use crate::onnx::runtime::Session;
use crate::onnx::tensor::Tensor;
use crate::search::Prediction;
use std::collections::HashMap;
use std::path::Path;
use stratum_core::eval::{Datum, evaluate};
use stratum_core::ir::Expr;
use stratum_core::types::Field;

/// The `metadata_props` key under which a producer (such as Stratum's generated notebooks) lists the input columns,
/// comma-separated and in order, so `stratum model import` needs no `--inputs`.
pub const INPUTS_METADATA_KEY: &str = "stratum.inputs";

/// The `metadata_props` key under which a producer lists the input columns computed from a record's fields, as JSON
/// `[{"name": …, "expr": <a Stratum expression>}]` (a notebook's `hour_of_day(ts)`): the imported model computes
/// them as a trained one does, so it predicts from the same raw records.
pub const FEATURES_METADATA_KEY: &str = "stratum.features";

#[derive(serde::Deserialize)]
struct ComputedFeature {
    name: String,
    expr: Expr,
    /// The value when the expression has none (a one-hot column of a missing category is 0).
    #[serde(default)]
    missing: Option<f64>,
}

/// What runs a model's graph.
enum Engine {
    Native(Session),
    OnnxRuntime(OrtSession),
}

impl Engine {
    /// The engine `STRATUM_ONNX_BACKEND` chooses: by default Stratum's own, and ONNX Runtime for the graphs it
    /// cannot run.
    fn load(bytes: &[u8]) -> Result<Engine, Error> {
        match Choice::from_environment()? {
            Choice::Native => Session::new(bytes).map(Engine::Native),
            Choice::OnnxRuntime => OrtSession::new(bytes).map(Engine::OnnxRuntime),
            Choice::Auto => match Session::new(bytes) {
                Ok(session) => Ok(Engine::Native(session)),
                Err(native) => OrtSession::new(bytes)
                    .map(Engine::OnnxRuntime)
                    .map_err(|onnxruntime| Error::Invalid(format!("{native}; {onnxruntime}"))),
            },
        }
    }

    fn inputs(&self) -> &[String] {
        match self {
            Engine::Native(session) => session.inputs(),
            Engine::OnnxRuntime(session) => session.inputs(),
        }
    }

    fn outputs(&self) -> &[String] {
        match self {
            Engine::Native(session) => session.outputs(),
            Engine::OnnxRuntime(session) => session.outputs(),
        }
    }

    fn input_width(&self, input: &str) -> Option<usize> {
        match self {
            Engine::Native(session) => session.input_width(input),
            Engine::OnnxRuntime(session) => session.input_width(input),
        }
    }

    fn metadata(&self, key: &str) -> Option<&str> {
        match self {
            Engine::Native(session) => session.metadata(key),
            Engine::OnnxRuntime(session) => session.metadata(key),
        }
    }

    fn run(&self, inputs: Vec<(String, Tensor)>) -> Result<HashMap<String, Tensor>, Error> {
        match self {
            Engine::Native(session) => session.run(inputs),
            Engine::OnnxRuntime(session) => session.run(inputs),
        }
    }
}

/// An imported ONNX model, loaded and ready to predict with the engine chosen for it.
pub struct ImportedModel {
    session: Engine,
    inputs: Vec<Field>,
    /// Per input column, the expression that computes it from a record (and its value when the expression has
    /// none), when it is not a field of the record.
    computed: Vec<Option<(Expr, Option<f64>)>>,
}

impl ImportedModel {
    /// Loads an ONNX file whose input takes `inputs` (the declared schema's fields, in order).
    pub fn load(path: &Path, inputs: Vec<Field>) -> Result<ImportedModel, Error> {
        let bytes = std::fs::read(path)
            .map_err(|error| Error::Read { path: path.display().to_string(), source: error.into() })?;
        ImportedModel::from_bytes(&bytes, Some(inputs))
            .map_err(|error| Error::Invalid(format!("`{}`: {error}", path.display())))
    }

    /// Reads an ONNX model. Without `inputs`, the input columns come from the model's `stratum.inputs` metadata.
    pub fn from_bytes(bytes: &[u8], inputs: Option<Vec<Field>>) -> Result<ImportedModel, Error> {
        let session = Engine::load(bytes)?;
        if session.inputs().len() != 1 {
            return Err(Error::Invalid(format!(
                "the model takes {} inputs; Stratum feeds imported models one float input of the schema's fields",
                session.inputs().len()
            )));
        }
        let inputs = match inputs {
            Some(inputs) => inputs,
            None => session
                .metadata(INPUTS_METADATA_KEY)
                .map(|names| {
                    names.split(',').map(|name| Field::new(name.trim(), stratum_core::types::DataType::Float)).collect()
                })
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "the model does not say which columns it takes (no `{INPUTS_METADATA_KEY}` metadata); \
                         name them in order with --inputs a,b,c"
                    ))
                })?,
        };
        if let Some(width) = session.input_width(&session.inputs()[0])
            && width != inputs.len()
        {
            return Err(Error::Invalid(format!(
                "the model takes {width} input columns, but {} are named ({})",
                inputs.len(),
                inputs.iter().map(|field| field.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        let computed = match session.metadata(FEATURES_METADATA_KEY) {
            None => vec![None; inputs.len()],
            Some(text) => {
                let features: Vec<ComputedFeature> = serde_json::from_str(text).map_err(|error| {
                    Error::Invalid(format!("its `{FEATURES_METADATA_KEY}` metadata is not a list of features: {error}"))
                })?;
                inputs
                    .iter()
                    .map(|field| {
                        let feature = features.iter().find(|feature| feature.name == field.name)?;
                        Some((feature.expr.clone(), feature.missing))
                    })
                    .collect()
            }
        };
        let model = ImportedModel { session, inputs, computed };
        // One row of zeros proves the graph runs with this many columns before anyone relies on it.
        let zeros = |_: &str| Datum::Float(0.0);
        model.predict(&[&zeros]).map_err(|error| {
            Error::Invalid(format!("the model does not run on {} input columns: {error}", model.inputs.len()))
        })?;
        Ok(model)
    }

    /// What runs it: `stratum` (Stratum's own executor) or `onnxruntime`.
    pub fn engine(&self) -> &'static str {
        match self.session {
            Engine::Native(_) => "stratum",
            Engine::OnnxRuntime(_) => "onnxruntime",
        }
    }

    /// The columns the model takes, in order.
    pub fn inputs(&self) -> &[Field] {
        &self.inputs
    }

    /// The graph's output names.
    pub fn outputs(&self) -> &[String] {
        self.session.outputs()
    }

    /// Predicts records read by field name; missing numbers are NaN, bools 0 or 1.
    pub fn predict(&self, records: &[&dyn Fn(&str) -> Datum]) -> Result<Vec<Prediction>, Error> {
        let columns = self.inputs.len();
        let mut data = Vec::with_capacity(records.len() * columns);
        for record in records {
            for (field, computed) in self.inputs.iter().zip(&self.computed) {
                let value = match computed {
                    Some((expr, missing)) => evaluate(expr, *record).as_f64().or(*missing),
                    None => record(&field.name).as_f64(),
                };
                data.push(value.map_or(f32::NAN, |value| value as f32));
            }
        }
        let input = Tensor::Float { shape: vec![records.len(), columns], data };
        let outputs = self.session.run(vec![(self.session.inputs()[0].clone(), input)])?;
        let labels = outputs
            .iter()
            .find(|(name, tensor)| name.contains("label") && !matches!(tensor, Tensor::Float { .. }))
            .map(|(_, tensor)| tensor);
        let probabilities = outputs.iter().find(|(name, _)| name.contains("probab")).map(|(_, tensor)| tensor);
        let rows = records.len();
        match (labels, probabilities) {
            (Some(labels), Some(probabilities)) => {
                let names: Vec<String> = match labels {
                    Tensor::Text { data, .. } => data.clone(),
                    Tensor::Int { data, .. } => data.iter().map(i64::to_string).collect(),
                    Tensor::Float { data, .. } => data.iter().map(f32::to_string).collect(),
                };
                let (_, width) = probabilities.matrix_shape();
                let values = probabilities.as_floats().unwrap_or_default();
                Ok((0..rows)
                    .map(|row| Prediction::Class {
                        label: names.get(row).cloned().unwrap_or_default(),
                        probabilities: values[row * width..(row + 1) * width]
                            .iter()
                            .map(|value| f64::from(*value))
                            .collect(),
                    })
                    .collect())
            }
            _ => {
                let first = self
                    .session
                    .outputs()
                    .first()
                    .and_then(|name| outputs.get(name))
                    .ok_or_else(|| Error::Invalid("the ONNX model has no output".into()))?;
                let (_, width) = first.matrix_shape();
                let values = first.as_floats().unwrap_or_default();
                Ok((0..rows).map(|row| Prediction::Value(f64::from(values[row * width.max(1)]))).collect())
            }
        }
    }
}
