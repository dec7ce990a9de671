//! Data types of record fields, and schemas: the named record types that flow from sources into models.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The type of a field or of an expression over fields.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "of")]
pub enum DataType {
    /// `bool`
    Bool,
    /// `int`: 64-bit.
    Int,
    /// `float`: 64-bit.
    Float,
    /// `string`
    String,
    /// `timestamp`: milliseconds since 1970, UTC.
    Timestamp,
    /// `duration`: seconds.
    Duration,
    /// `bytes`
    Bytes,
    /// `list<T>`
    List(Box<DataType>),
    /// `optional<T>`, or `T?`: may be missing.
    Optional(Box<DataType>),
}

impl DataType {
    /// The names a schema may use for the scalar types.
    pub const SCALAR_NAMES: &'static [&'static str] =
        &["bool", "int", "float", "string", "timestamp", "duration", "bytes"];

    /// The scalar type a schema names, if any.
    pub fn scalar_from_name(name: &str) -> Option<DataType> {
        Some(match name {
            "bool" => DataType::Bool,
            "int" => DataType::Int,
            "float" => DataType::Float,
            "string" => DataType::String,
            "timestamp" => DataType::Timestamp,
            "duration" => DataType::Duration,
            "bytes" => DataType::Bytes,
            _ => return None,
        })
    }

    /// The type without an `optional` wrapper: operations on an optional value see the inner type.
    pub fn without_optional(&self) -> &DataType {
        match self {
            DataType::Optional(inner) => inner.without_optional(),
            other => other,
        }
    }

    /// Whether it is a number (`int` or `float`, optional or not).
    pub fn is_numeric(&self) -> bool {
        matches!(self.without_optional(), DataType::Int | DataType::Float)
    }

    /// Whether a value of type `self` may be used where `expected` is needed (int widens to float).
    pub fn fits(&self, expected: &DataType) -> bool {
        let (actual, wanted) = (self.without_optional(), expected.without_optional());
        actual == wanted || (*actual == DataType::Int && *wanted == DataType::Float)
    }

    /// An estimate of the encoded size of one value, used when a source does not declare its event size.
    pub fn estimated_size(&self) -> u64 {
        match self {
            DataType::Bool => 1,
            DataType::Int | DataType::Float | DataType::Timestamp | DataType::Duration => 8,
            DataType::String => 24,
            DataType::Bytes => 256,
            DataType::List(inner) => 8 * inner.estimated_size(),
            DataType::Optional(inner) => inner.estimated_size(),
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Bool => formatter.write_str("bool"),
            DataType::Int => formatter.write_str("int"),
            DataType::Float => formatter.write_str("float"),
            DataType::String => formatter.write_str("string"),
            DataType::Timestamp => formatter.write_str("timestamp"),
            DataType::Duration => formatter.write_str("duration"),
            DataType::Bytes => formatter.write_str("bytes"),
            DataType::List(inner) => write!(formatter, "list<{inner}>"),
            DataType::Optional(inner) => write!(formatter, "optional<{inner}>"),
        }
    }
}

/// One field of a record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(flatten)]
    pub data_type: DataType,
    /// A private field may not leave the tier it was produced on unless it is aggregated away.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
}

impl Field {
    /// A field that is not private.
    pub fn new(name: impl Into<String>, data_type: DataType) -> Field {
        Field { name: name.into(), data_type, private: false }
    }
}

/// A named record type as declared with `schema`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Its name.
    pub name: String,
    /// Its fields, in order.
    pub fields: Vec<Field>,
}

/// Looks a field up by name in a list of fields.
pub fn find_field<'a>(fields: &'a [Field], name: &str) -> Option<&'a Field> {
    fields.iter().find(|field| field.name == name)
}

/// Prints fields as `{ a: int, b: string private }`, the way `--explain-schema` shows an inferred schema.
pub fn describe_fields(fields: &[Field]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|field| {
            let private = if field.private { " private" } else { "" };
            format!("{}: {}{private}", field.name, field.data_type)
        })
        .collect();
    format!("{{ {} }}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_widens_to_float_but_not_back() {
        assert!(DataType::Int.fits(&DataType::Float));
        assert!(!DataType::Float.fits(&DataType::Int));
        assert!(DataType::Optional(Box::new(DataType::Int)).fits(&DataType::Int));
    }

    #[test]
    fn fields_serialize_flat() {
        let field = Field { name: "plate".into(), data_type: DataType::String, private: true };
        let json = serde_json::to_string(&field).unwrap();
        assert_eq!(json, r#"{"name":"plate","type":"string","private":true}"#);
        let list = Field::new("xs", DataType::List(Box::new(DataType::Float)));
        assert_eq!(serde_json::to_string(&list).unwrap(), r#"{"name":"xs","type":"list","of":{"type":"float"}}"#);
    }
}
