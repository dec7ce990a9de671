//! Tensors of the ONNX executor: floats, integers or strings, with a shape.

/// A tensor: its shape and its elements in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    /// Of 32-bit floats.
    Float {
        /// Its dimensions.
        shape: Vec<usize>,
        /// Its elements.
        data: Vec<f32>,
    },
    /// Of 64-bit integers.
    Int {
        /// Its dimensions.
        shape: Vec<usize>,
        /// Its elements.
        data: Vec<i64>,
    },
    /// Of strings.
    Text {
        /// Its dimensions.
        shape: Vec<usize>,
        /// Its elements.
        data: Vec<String>,
    },
}

impl Tensor {
    /// Its dimensions.
    pub fn shape(&self) -> &[usize] {
        match self {
            Tensor::Float { shape, .. } | Tensor::Int { shape, .. } | Tensor::Text { shape, .. } => shape,
        }
    }

    /// How many elements it has.
    pub fn len(&self) -> usize {
        match self {
            Tensor::Float { data, .. } => data.len(),
            Tensor::Int { data, .. } => data.len(),
            Tensor::Text { data, .. } => data.len(),
        }
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as floats (integers converted), or None for strings.
    pub fn as_floats(&self) -> Option<Vec<f32>> {
        match self {
            Tensor::Float { data, .. } => Some(data.clone()),
            Tensor::Int { data, .. } => Some(data.iter().map(|value| *value as f32).collect()),
            Tensor::Text { .. } => None,
        }
    }

    /// Its elements as integers, when it is an integer tensor.
    pub fn as_ints(&self) -> Option<Vec<i64>> {
        match self {
            Tensor::Int { data, .. } => Some(data.clone()),
            Tensor::Float { data, .. } => Some(data.iter().map(|value| *value as i64).collect()),
            Tensor::Text { .. } => None,
        }
    }

    /// (rows, columns) of a matrix; a vector is one row.
    pub fn matrix_shape(&self) -> (usize, usize) {
        match self.shape() {
            [] => (1, 1),
            [columns] => (1, *columns),
            [rows, rest @ ..] => (*rows, rest.iter().product()),
        }
    }
}
