//! The few ONNX protobuf messages an exported model needs, written by hand: the protobuf wire format is small
//! (varints and length-delimited fields), and this spares a code generator and a protoc in the build.

/// Appends protobuf fields to a buffer.
#[derive(Default)]
pub(super) struct Message {
    bytes: Vec<u8>,
}

fn varint(bytes: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        bytes.push((value as u8) | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
}

impl Message {
    pub(super) fn new() -> Message {
        Message::default()
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        varint(&mut self.bytes, (u64::from(field) << 3) | u64::from(wire_type));
    }

    pub(super) fn int(mut self, field: u32, value: i64) -> Message {
        self.key(field, 0);
        varint(&mut self.bytes, value as u64);
        self
    }

    pub(super) fn float(mut self, field: u32, value: f32) -> Message {
        self.key(field, 5);
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub(super) fn bytes(mut self, field: u32, value: &[u8]) -> Message {
        self.key(field, 2);
        varint(&mut self.bytes, value.len() as u64);
        self.bytes.extend_from_slice(value);
        self
    }

    pub(super) fn string(self, field: u32, value: &str) -> Message {
        self.bytes(field, value.as_bytes())
    }

    pub(super) fn message(self, field: u32, value: Message) -> Message {
        self.bytes(field, &value.bytes)
    }

    pub(super) fn packed_floats(self, field: u32, values: &[f32]) -> Message {
        let bytes: Vec<u8> = values.iter().flat_map(|value| value.to_le_bytes()).collect();
        self.bytes(field, &bytes)
    }

    pub(super) fn packed_ints(self, field: u32, values: &[i64]) -> Message {
        let mut bytes = Vec::new();
        for value in values {
            varint(&mut bytes, *value as u64);
        }
        self.bytes(field, &bytes)
    }

    pub(super) fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// ONNX tensor element types.
pub(super) const FLOAT: i64 = 1;
pub(super) const INT64: i64 = 7;
pub(super) const STRING: i64 = 8;

/// An attribute of a node (`AttributeProto`).
pub(super) enum Attribute<'a> {
    Int(&'a str, i64),
    Float(&'a str, f32),
    Text(&'a str, &'a str),
    Floats(&'a str, Vec<f32>),
    Ints(&'a str, Vec<i64>),
    Texts(&'a str, Vec<String>),
}

impl Attribute<'_> {
    pub(super) fn encode(&self) -> Message {
        // AttributeProto: name = 1, f = 2, i = 3, s = 4, floats = 7, ints = 8, strings = 9, type = 20.
        match self {
            Attribute::Float(name, value) => Message::new().string(1, name).float(2, *value).int(20, 1),
            Attribute::Int(name, value) => Message::new().string(1, name).int(3, *value).int(20, 2),
            Attribute::Text(name, value) => Message::new().string(1, name).bytes(4, value.as_bytes()).int(20, 3),
            Attribute::Floats(name, values) => Message::new().string(1, name).packed_floats(7, values).int(20, 6),
            Attribute::Ints(name, values) => Message::new().string(1, name).packed_ints(8, values).int(20, 7),
            Attribute::Texts(name, values) => {
                let mut message = Message::new().string(1, name);
                for value in values {
                    message = message.bytes(9, value.as_bytes());
                }
                message.int(20, 8)
            }
        }
    }
}

/// A node (`NodeProto`): input = 1, output = 2, name = 3, op_type = 4, attribute = 5, domain = 7.
pub(super) fn node(
    op_type: &str,
    domain: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: &[Attribute],
) -> Message {
    let mut message = Message::new();
    for input in inputs {
        message = message.string(1, input);
    }
    for output in outputs {
        message = message.string(2, output);
    }
    message = message.string(3, &format!("{op_type}_{}", outputs.first().copied().unwrap_or(""))).string(4, op_type);
    for attribute in attributes {
        message = message.message(5, attribute.encode());
    }
    if !domain.is_empty() {
        message = message.string(7, domain);
    }
    message
}

/// A tensor value's description (`ValueInfoProto`) with a batch dimension `N` and fixed other dimensions.
pub(super) fn value_info(name: &str, element_type: i64, dimensions: &[Option<i64>]) -> Message {
    let mut shape = Message::new();
    for dimension in dimensions {
        // Dimension: dim_value = 1, dim_param = 2.
        shape = shape.message(
            1,
            match dimension {
                Some(size) => Message::new().int(1, *size),
                None => Message::new().string(2, "N"),
            },
        );
    }
    // TypeProto.tensor_type = 1 { elem_type = 1, shape = 2 }.
    let tensor = Message::new().int(1, element_type).message(2, shape);
    Message::new().string(1, name).message(2, Message::new().message(1, tensor))
}

/// A constant float tensor (`TensorProto`: dims = 1, data_type = 2, float_data = 4, name = 8).
pub(super) fn float_tensor(name: &str, dimensions: &[i64], values: &[f32]) -> Message {
    Message::new().packed_ints(1, dimensions).int(2, FLOAT).packed_floats(4, values).string(8, name)
}

/// A whole model (`ModelProto`): ir_version = 1, producer_name = 2, producer_version = 3, graph = 7,
/// opset_import = 8 (domain = 1, version = 2). Graph: node = 1, name = 2, initializer = 5, input = 11, output = 12.
pub(super) fn model(
    name: &str,
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    inputs: Vec<Message>,
    outputs: Vec<Message>,
) -> Vec<u8> {
    let mut graph = Message::new();
    for node in nodes {
        graph = graph.message(1, node);
    }
    graph = graph.string(2, name);
    for initializer in initializers {
        graph = graph.message(5, initializer);
    }
    for input in inputs {
        graph = graph.message(11, input);
    }
    for output in outputs {
        graph = graph.message(12, output);
    }
    Message::new()
        .int(1, 8)
        .string(2, "stratum")
        .string(3, env!("CARGO_PKG_VERSION"))
        .message(7, graph)
        .message(8, Message::new().string(1, "").int(2, 17))
        .message(8, Message::new().string(1, "ai.onnx.ml").int(2, 3))
        .finish()
}
