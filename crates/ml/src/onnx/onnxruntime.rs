//! ONNX Runtime as a second engine for imported models, for the graphs Stratum's own executor cannot run (the
//! convolutions and attention of PyTorch and TensorFlow exports, say). It is never linked into the binary: it is
//! loaded at run time from a `libonnxruntime` the user provides — `STRATUM_ONNXRUNTIME=/path/to/libonnxruntime.so`,
//! such as the one the PyPI `onnxruntime` wheel ships in `onnxruntime/capi/` — so the default build stays pure
//! Rust and a machine without the library simply does not have this engine.
//!
//! Which engine runs a model is [`Choice`]'s (`STRATUM_ONNX_BACKEND`): by default Stratum's own executor runs
//! every model it can, and ONNX Runtime the others; the parity tests against Python's onnxruntime are what let the
//! own executor serve the scikit-learn family (see docs/ml.md).

use super::tensor::Tensor;
use crate::Error;
use ort::environment::Environment;
use ort::session::Session;
use ort::value::{DynValue, TensorElementType, ValueType};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use stratum_core::sync::lock;

/// The variable that names the ONNX Runtime library.
pub const LIBRARY_VARIABLE: &str = "STRATUM_ONNXRUNTIME";
/// The variable that chooses the engine: `auto` (the default), `native` or `onnxruntime`.
pub const CHOICE_VARIABLE: &str = "STRATUM_ONNX_BACKEND";

/// Which engine runs imported models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Stratum's own executor when it can run the model, ONNX Runtime (when present) otherwise.
    Auto,
    /// Stratum's own executor.
    Native,
    /// ONNX Runtime.
    OnnxRuntime,
}

impl Choice {
    /// The choice `STRATUM_ONNX_BACKEND` makes, or why its value is not one.
    pub fn from_environment() -> Result<Choice, Error> {
        match std::env::var(CHOICE_VARIABLE).as_deref() {
            Err(_) | Ok("") | Ok("auto") => Ok(Choice::Auto),
            Ok("native") => Ok(Choice::Native),
            Ok("onnxruntime") => Ok(Choice::OnnxRuntime),
            Ok(other) => Err(Error::Invalid(format!(
                "{CHOICE_VARIABLE}=`{other}` is not an ONNX engine: auto, native or onnxruntime"
            ))),
        }
    }
}

/// The library a host named (before first use), over `STRATUM_ONNXRUNTIME`.
static LIBRARY: OnceLock<PathBuf> = OnceLock::new();

/// Loads ONNX Runtime from `path` rather than from `STRATUM_ONNXRUNTIME`; it takes effect before the first model
/// that needs ONNX Runtime loads it.
pub fn use_library(path: &Path) {
    let _ = LIBRARY.set(path.to_path_buf());
}

/// The library, loaded once per process and kept for its life (or why it could not be).
fn environment() -> Result<&'static Environment, Error> {
    static LOADED: OnceLock<Result<Environment, String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let named = LIBRARY.get().cloned().or_else(|| std::env::var_os(LIBRARY_VARIABLE).map(PathBuf::from));
            let path = named.ok_or_else(|| {
                format!(
                    "ONNX Runtime is not available: set {LIBRARY_VARIABLE} to a libonnxruntime (`pip install \
                     onnxruntime` ships one in site-packages/onnxruntime/capi/)"
                )
            })?;
            let builder = ort::init_from(&path)
                .map_err(|error| format!("cannot load ONNX Runtime from {}: {error}", path.display()))?;
            // Kept as text: the outcome is cached for the process, and every later session reports it again.
            builder.with_name("stratum").build().map_err(|error| stratum_core::error_chain(&error))
        })
        .as_ref()
        .map_err(|message| Error::Invalid(message.clone()))
}

/// Whether ONNX Runtime can be loaded here (or why not).
pub fn available() -> Result<(), Error> {
    environment().map(|_| ())
}

/// A model loaded into ONNX Runtime.
pub struct OrtSession {
    /// Running takes the session mutably; requests to one model take turns (each run uses ONNX Runtime's threads).
    session: Mutex<Session>,
    inputs: Vec<String>,
    outputs: Vec<String>,
    input_widths: HashMap<String, usize>,
    metadata: HashMap<String, String>,
}

impl std::fmt::Debug for OrtSession {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("OrtSession").field("inputs", &self.inputs).field("outputs", &self.outputs).finish()
    }
}

fn ort_error(error: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("ONNX Runtime: {error}"))
}

impl OrtSession {
    /// A session of ONNX Runtime over a model's bytes.
    pub fn new(bytes: &[u8]) -> Result<OrtSession, Error> {
        let session = Session::builder(environment()?)
            .map_err(ort_error)?
            .with_intra_threads(1)
            .map_err(ort_error)?
            .commit_from_memory(bytes)
            .map_err(ort_error)?;
        let inputs: Vec<String> = session.inputs().iter().map(|input| input.name().to_string()).collect();
        let outputs: Vec<String> = session.outputs().iter().map(|output| output.name().to_string()).collect();
        // The width of a [batch, columns] input, when the model fixes it.
        let input_widths = session
            .inputs()
            .iter()
            .filter_map(|input| {
                let shape = input.dtype().tensor_shape()?;
                let width = *shape.get(1)?;
                (shape.len() == 2 && width > 0).then(|| (input.name().to_string(), width as usize))
            })
            .collect();
        let mut metadata = HashMap::new();
        if let Ok(model) = session.metadata() {
            for key in model.custom_keys().unwrap_or_default() {
                if let Some(value) = model.custom(&key) {
                    metadata.insert(key, value);
                }
            }
        }
        Ok(OrtSession { session: Mutex::new(session), inputs, outputs, input_widths, metadata })
    }

    /// The names of the model's inputs.
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }

    /// The names of the model's outputs.
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    /// The fixed last dimension of an input, when it declares one.
    pub fn input_width(&self, input: &str) -> Option<usize> {
        self.input_widths.get(input).copied()
    }

    /// The model's metadata value for `key`, if any.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// Runs the model on float inputs; its tensor outputs come back by name (other outputs, such as the maps of a
    /// `ZipMap`, are left out: Stratum's own executor runs the models that have them).
    pub fn run(&self, inputs: Vec<(String, Tensor)>) -> Result<HashMap<String, Tensor>, Error> {
        let mut values: Vec<(String, ort::session::SessionInputValue<'static>)> = Vec::new();
        for (name, tensor) in inputs {
            let Tensor::Float { shape, data } = tensor else {
                return Err(Error::Invalid(format!("input `{name}`: Stratum feeds ONNX Runtime float inputs")));
            };
            let value = ort::value::Tensor::from_array((shape, data)).map_err(ort_error)?;
            values.push((name, value.into()));
        }
        let mut session = lock(&self.session);
        let outputs = session.run(values).map_err(ort_error)?;
        let mut tensors = HashMap::new();
        for (name, value) in &outputs {
            if let Some(tensor) = tensor_of(&value)? {
                tensors.insert(name.to_string(), tensor);
            }
        }
        Ok(tensors)
    }
}

/// An output as a tensor of Stratum's executor, if it is a tensor of numbers, bools or strings.
fn tensor_of(value: &DynValue) -> Result<Option<Tensor>, Error> {
    let ValueType::Tensor { ty, .. } = value.dtype() else { return Ok(None) };
    let shape_of = |shape: &[i64]| shape.iter().map(|dimension| (*dimension).max(0) as usize).collect::<Vec<_>>();
    let floats = |data: Vec<f32>, shape: &[i64]| Tensor::Float { shape: shape_of(shape), data };
    let ints = |data: Vec<i64>, shape: &[i64]| Tensor::Int { shape: shape_of(shape), data };
    let tensor = match ty {
        TensorElementType::Float32 => {
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(ort_error)?;
            floats(data.to_vec(), shape)
        }
        TensorElementType::Float64 => {
            let (shape, data) = value.try_extract_tensor::<f64>().map_err(ort_error)?;
            floats(data.iter().map(|value| *value as f32).collect(), shape)
        }
        TensorElementType::Int64 => {
            let (shape, data) = value.try_extract_tensor::<i64>().map_err(ort_error)?;
            ints(data.to_vec(), shape)
        }
        TensorElementType::Int32 => {
            let (shape, data) = value.try_extract_tensor::<i32>().map_err(ort_error)?;
            ints(data.iter().map(|value| i64::from(*value)).collect(), shape)
        }
        TensorElementType::Bool => {
            let (shape, data) = value.try_extract_tensor::<bool>().map_err(ort_error)?;
            ints(data.iter().map(|value| i64::from(*value)).collect(), shape)
        }
        TensorElementType::String => {
            let (shape, data) = value.try_extract_strings().map_err(ort_error)?;
            Tensor::Text { shape: shape_of(shape), data }
        }
        _ => return Ok(None),
    };
    Ok(Some(tensor))
}
