//! Reading ONNX files: the protobuf messages of a model's graph (nodes with their attributes, initializers,
//! inputs and outputs), decoded by hand like `proto.rs` encodes them.

use super::tensor::Tensor;
use crate::Error;
use std::collections::HashMap;

/// A protobuf field: its number and its value.
enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

fn invalid(what: &str) -> Error {
    Error::Invalid(format!("not a valid ONNX file: {what}"))
}

fn read_varint(bytes: &[u8], position: &mut usize) -> Result<u64, Error> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*position).ok_or_else(|| invalid("a number runs past the end"))?;
        *position += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(invalid("a number is too long"))
}

/// The fields of one message, in order.
fn fields(bytes: &[u8]) -> Result<Vec<(u32, Value<'_>)>, Error> {
    let mut position = 0;
    let mut fields = Vec::new();
    while position < bytes.len() {
        let key = read_varint(bytes, &mut position)?;
        let (number, wire_type) = ((key >> 3) as u32, key & 7);
        let value = match wire_type {
            0 => Value::Varint(read_varint(bytes, &mut position)?),
            1 => {
                let chunk = bytes.get(position..position + 8).ok_or_else(|| invalid("a field runs past the end"))?;
                position += 8;
                Value::Fixed64(u64::from_le_bytes(chunk.try_into().expect("eight bytes")))
            }
            2 => {
                let length = read_varint(bytes, &mut position)? as usize;
                let chunk =
                    bytes.get(position..position + length).ok_or_else(|| invalid("a field runs past the end"))?;
                position += length;
                Value::Bytes(chunk)
            }
            5 => {
                let chunk = bytes.get(position..position + 4).ok_or_else(|| invalid("a field runs past the end"))?;
                position += 4;
                Value::Fixed32(u32::from_le_bytes(chunk.try_into().expect("four bytes")))
            }
            other => return Err(invalid(&format!("unknown wire type {other}"))),
        };
        fields.push((number, value));
    }
    Ok(fields)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Repeated floats, packed or not.
fn push_floats(values: &mut Vec<f32>, value: &Value) -> Result<(), Error> {
    match value {
        Value::Fixed32(bits) => values.push(f32::from_bits(*bits)),
        Value::Bytes(bytes) => {
            values.extend(bytes.chunks_exact(4).map(|chunk| f32::from_le_bytes(chunk.try_into().expect("four bytes"))))
        }
        _ => return Err(invalid("a float list has the wrong wire type")),
    }
    Ok(())
}

/// Repeated integers, packed or not.
fn push_ints(values: &mut Vec<i64>, value: &Value) -> Result<(), Error> {
    match value {
        Value::Varint(number) => values.push(*number as i64),
        Value::Bytes(bytes) => {
            let mut position = 0;
            while position < bytes.len() {
                values.push(read_varint(bytes, &mut position)? as i64);
            }
        }
        _ => return Err(invalid("an integer list has the wrong wire type")),
    }
    Ok(())
}

/// An attribute's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Attribute {
    /// One float.
    Float(f32),
    /// One integer.
    Int(i64),
    /// One string.
    Text(String),
    /// A tensor.
    Tensor(Tensor),
    /// Floats.
    Floats(Vec<f32>),
    /// Integers.
    Ints(Vec<i64>),
    /// Strings.
    Texts(Vec<String>),
}

/// One operation of a graph.
#[derive(Clone, Debug)]
pub struct Node {
    /// The operator: `MatMul`, `TreeEnsembleClassifier` …
    pub op_type: String,
    /// Its operator set's domain (`ai.onnx.ml`, or empty for the default).
    pub domain: String,
    /// The names of the values it reads.
    pub inputs: Vec<String>,
    /// The names of the values it makes.
    pub outputs: Vec<String>,
    /// Its attributes by name.
    pub attributes: HashMap<String, Attribute>,
}

impl Node {
    /// The floats of attribute `name` (none when it has none).
    pub fn floats(&self, name: &str) -> Vec<f32> {
        match self.attributes.get(name) {
            Some(Attribute::Floats(values)) => values.clone(),
            Some(Attribute::Float(value)) => vec![*value],
            Some(Attribute::Tensor(tensor)) => tensor.as_floats().unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// The integers of attribute `name` (none when it has none).
    pub fn ints(&self, name: &str) -> Vec<i64> {
        match self.attributes.get(name) {
            Some(Attribute::Ints(values)) => values.clone(),
            Some(Attribute::Int(value)) => vec![*value],
            _ => Vec::new(),
        }
    }

    /// The strings of attribute `name` (none when it has none).
    pub fn texts(&self, name: &str) -> Vec<String> {
        match self.attributes.get(name) {
            Some(Attribute::Texts(values)) => values.clone(),
            Some(Attribute::Text(value)) => vec![value.clone()],
            _ => Vec::new(),
        }
    }

    /// The integer attribute `name`, or `default`.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        match self.attributes.get(name) {
            Some(Attribute::Int(value)) => *value,
            _ => default,
        }
    }

    /// The float attribute `name`, or `default`.
    pub fn float(&self, name: &str, default: f32) -> f32 {
        match self.attributes.get(name) {
            Some(Attribute::Float(value)) => *value,
            _ => default,
        }
    }

    /// The string attribute `name`, or `default`.
    pub fn text(&self, name: &str, default: &str) -> String {
        match self.attributes.get(name) {
            Some(Attribute::Text(value)) => value.clone(),
            _ => default.to_string(),
        }
    }
}

/// A model's graph.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Its operations, in the order the file gives them.
    pub nodes: Vec<Node>,
    /// Constant tensors by name (weights).
    pub initializers: HashMap<String, Tensor>,
    /// The names of its inputs (not the initializers).
    pub inputs: Vec<String>,
    /// The names of its outputs.
    pub outputs: Vec<String>,
    /// The fixed last dimension of inputs that declare one: the column count of a `[batch, columns]` input.
    pub input_widths: HashMap<String, usize>,
    /// The model's `metadata_props`: free key/value text a producer attaches, such as the input column names.
    pub metadata: HashMap<String, String>,
}

fn tensor(bytes: &[u8]) -> Result<(String, Tensor), Error> {
    let mut dimensions = Vec::new();
    let mut data_type = 0;
    let mut floats = Vec::new();
    let mut ints = Vec::new();
    let mut texts = Vec::new();
    let mut doubles = Vec::new();
    let mut raw: &[u8] = &[];
    let mut name = String::new();
    for (number, value) in fields(bytes)? {
        match (number, &value) {
            (1, _) => push_ints(&mut dimensions, &value)?,
            (2, Value::Varint(kind)) => data_type = *kind,
            (4, _) => push_floats(&mut floats, &value)?,
            (5 | 7, _) => push_ints(&mut ints, &value)?,
            (6, Value::Bytes(bytes)) => texts.push(text(bytes)),
            (8, Value::Bytes(bytes)) => name = text(bytes),
            (9, Value::Bytes(bytes)) => raw = bytes,
            (10, Value::Fixed64(bits)) => doubles.push(f64::from_bits(*bits)),
            (10, Value::Bytes(bytes)) => {
                doubles.extend(bytes.chunks_exact(8).map(|chunk| f64::from_le_bytes(chunk.try_into().expect("eight"))))
            }
            _ => {}
        }
    }
    let shape: Vec<usize> = dimensions.iter().map(|dimension| (*dimension).max(0) as usize).collect();
    let tensor = match data_type {
        1 => {
            if !raw.is_empty() {
                floats = raw.chunks_exact(4).map(|chunk| f32::from_le_bytes(chunk.try_into().expect("four"))).collect();
            }
            Tensor::Float { shape, data: floats }
        }
        11 => {
            if !raw.is_empty() {
                doubles =
                    raw.chunks_exact(8).map(|chunk| f64::from_le_bytes(chunk.try_into().expect("eight"))).collect();
            }
            Tensor::Float { shape, data: doubles.iter().map(|value| *value as f32).collect() }
        }
        6 | 7 => {
            if !raw.is_empty() {
                ints = if data_type == 7 {
                    raw.chunks_exact(8).map(|chunk| i64::from_le_bytes(chunk.try_into().expect("eight"))).collect()
                } else {
                    raw.chunks_exact(4)
                        .map(|chunk| i64::from(i32::from_le_bytes(chunk.try_into().expect("four"))))
                        .collect()
                };
            }
            Tensor::Int { shape, data: ints }
        }
        8 => Tensor::Text { shape, data: texts },
        9 => {
            let values: Vec<i64> =
                if raw.is_empty() { ints } else { raw.iter().map(|byte| i64::from(*byte)).collect() };
            Tensor::Int { shape, data: values }
        }
        other => return Err(Error::Invalid(format!("ONNX tensors of element type {other} are not supported"))),
    };
    Ok((name, tensor))
}

fn attribute(bytes: &[u8]) -> Result<(String, Attribute), Error> {
    let mut name = String::new();
    let mut kind = 0;
    let (mut float, mut int, mut string, mut tensor_value) = (0.0f32, 0i64, String::new(), None);
    let (mut floats, mut ints, mut strings) = (Vec::new(), Vec::new(), Vec::new());
    for (number, value) in fields(bytes)? {
        match (number, &value) {
            (1, Value::Bytes(bytes)) => name = text(bytes),
            (2, Value::Fixed32(bits)) => float = f32::from_bits(*bits),
            (3, Value::Varint(number)) => int = *number as i64,
            (4, Value::Bytes(bytes)) => string = text(bytes),
            (5, Value::Bytes(bytes)) => tensor_value = Some(tensor(bytes)?.1),
            (7, _) => push_floats(&mut floats, &value)?,
            (8, _) => push_ints(&mut ints, &value)?,
            (9, Value::Bytes(bytes)) => strings.push(text(bytes)),
            (20, Value::Varint(number)) => kind = *number,
            _ => {}
        }
    }
    let value = match kind {
        1 => Attribute::Float(float),
        2 => Attribute::Int(int),
        3 => Attribute::Text(string),
        4 => Attribute::Tensor(tensor_value.ok_or_else(|| invalid("a tensor attribute has no tensor"))?),
        6 => Attribute::Floats(floats),
        7 => Attribute::Ints(ints),
        8 => Attribute::Texts(strings),
        other => {
            return Err(Error::Invalid(format!("ONNX attribute `{name}` has a type ({other}) that is not supported")));
        }
    };
    Ok((name, value))
}

fn node(bytes: &[u8]) -> Result<Node, Error> {
    let mut node = Node {
        op_type: String::new(),
        domain: String::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        attributes: HashMap::new(),
    };
    for (number, value) in fields(bytes)? {
        if let Value::Bytes(bytes) = value {
            match number {
                1 => node.inputs.push(text(bytes)),
                2 => node.outputs.push(text(bytes)),
                4 => node.op_type = text(bytes),
                5 => {
                    let (name, value) = attribute(bytes)?;
                    node.attributes.insert(name, value);
                }
                7 => node.domain = text(bytes),
                _ => {}
            }
        }
    }
    Ok(node)
}

/// The first nested field `number` of a message, if it is a sub-message.
fn sub_message(bytes: &[u8], number: u32) -> Result<Option<&[u8]>, Error> {
    Ok(fields(bytes)?.into_iter().find_map(|(field, value)| match value {
        Value::Bytes(inner) if field == number => Some(inner),
        _ => None,
    }))
}

/// A `ValueInfoProto`'s name and, for a tensor whose last dimension is a fixed number, that number (the column
/// count of a `[batch, columns]` input).
fn value_info(bytes: &[u8]) -> Result<(String, Option<usize>), Error> {
    let mut name = None;
    for (number, value) in fields(bytes)? {
        if let (1, Value::Bytes(bytes)) = (number, value) {
            name = Some(text(bytes));
        }
    }
    let name = name.ok_or_else(|| invalid("an input or output has no name"))?;
    // type (2) → tensor_type (1) → shape (2) → dim (1, repeated) → dim_value (1).
    let mut width = None;
    if let Some(shape) = sub_message(bytes, 2)?
        .map(|kind| sub_message(kind, 1))
        .transpose()?
        .flatten()
        .map(|tensor_type| sub_message(tensor_type, 2))
        .transpose()?
        .flatten()
    {
        let dimensions: Vec<&[u8]> = fields(shape)?
            .into_iter()
            .filter_map(|(number, value)| match value {
                Value::Bytes(dimension) if number == 1 => Some(dimension),
                _ => None,
            })
            .collect();
        if let Some(last) = dimensions.last() {
            width = fields(last)?.into_iter().find_map(|(number, value)| match value {
                Value::Varint(size) if number == 1 => Some(size as usize),
                _ => None,
            });
        }
    }
    Ok((name, width))
}

/// Decodes a `ModelProto` into its graph.
pub fn graph(bytes: &[u8]) -> Result<Graph, Error> {
    let model = fields(bytes)?;
    let graph_bytes = model
        .iter()
        .find_map(|(number, value)| match (number, value) {
            (7, Value::Bytes(bytes)) => Some(*bytes),
            _ => None,
        })
        .ok_or_else(|| invalid("no graph"))?;
    let mut graph = Graph::default();
    for (number, value) in &model {
        if let (14, Value::Bytes(entry)) = (number, value) {
            let mut key = String::new();
            let mut text_value = String::new();
            for (entry_number, entry_value) in fields(entry)? {
                match (entry_number, entry_value) {
                    (1, Value::Bytes(bytes)) => key = text(bytes),
                    (2, Value::Bytes(bytes)) => text_value = text(bytes),
                    _ => {}
                }
            }
            graph.metadata.insert(key, text_value);
        }
    }
    for (number, value) in fields(graph_bytes)? {
        let Value::Bytes(bytes) = value else { continue };
        match number {
            1 => graph.nodes.push(node(bytes)?),
            5 => {
                let (name, tensor) = tensor(bytes)?;
                graph.initializers.insert(name, tensor);
            }
            11 => {
                let (name, width) = value_info(bytes)?;
                if let Some(width) = width {
                    graph.input_widths.insert(name.clone(), width);
                }
                graph.inputs.push(name);
            }
            12 => graph.outputs.push(value_info(bytes)?.0),
            _ => {}
        }
    }
    // Initializers may also be listed among the inputs; only the others are fed by the caller.
    graph.inputs.retain(|input| !graph.initializers.contains_key(input));
    Ok(graph)
}
