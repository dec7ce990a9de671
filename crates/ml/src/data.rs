//! Loading a dataset (CSV or JSON lines) into a typed table, by the dataset's schema, with precise errors.

use crate::Error;
use std::path::Path;
use stratum_core::eval::{Datum, parse_timestamp};
use stratum_core::ir::FileFormat;
use stratum_core::types::{DataType, Field};

/// A table of rows, one `Datum` per field, in the schema's column order.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub fields: Vec<Field>,
    pub rows: Vec<Vec<Datum>>,
}

impl Table {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|field| field.name == name)
    }

    /// A reader of one row's fields by name, for expression evaluation.
    pub fn field_reader<'t>(&'t self, row: &'t [Datum]) -> impl Fn(&str) -> Datum + 't {
        move |name: &str| self.column_index(name).map(|index| row[index].clone()).unwrap_or(Datum::Null)
    }
}

/// Reads a dataset file, taking its format from `format` or the file's extension.
pub fn load(path: &Path, format: Option<FileFormat>, fields: &[Field]) -> Result<Table, Error> {
    let shown = path.display().to_string();
    let format = format
        .or_else(|| match path.extension().and_then(|extension| extension.to_str()) {
            Some("csv") => Some(FileFormat::Csv),
            Some("jsonl" | "json" | "ndjson") => Some(FileFormat::Jsonl),
            Some("parquet") => Some(FileFormat::Parquet),
            _ => None,
        })
        .ok_or_else(|| Error::Read {
            path: shown.clone(),
            message: "cannot tell its format; use .csv or .jsonl".into(),
        })?;
    let bytes = std::fs::read(path).map_err(|error| Error::Read { path: shown.clone(), message: error.to_string() })?;
    let table = match format {
        FileFormat::Csv => read_csv(&bytes, &shown, fields)?,
        FileFormat::Jsonl => read_jsonl(&bytes, &shown, fields)?,
        FileFormat::Parquet => {
            return Err(Error::Read {
                path: shown,
                message: "Parquet datasets are not readable for training yet; export the data as CSV or JSON lines"
                    .into(),
            });
        }
    };
    if table.rows.is_empty() {
        return Err(Error::Empty { path: shown });
    }
    Ok(table)
}

fn expected(data_type: &DataType) -> String {
    match data_type.without_optional() {
        DataType::Bool => "a bool (true/false)".into(),
        DataType::Int => "an int".into(),
        DataType::Float => "a number".into(),
        DataType::Timestamp => "a timestamp (such as 2026-11-28T13:05:00Z, or seconds since 1970)".into(),
        DataType::Duration => "a duration in seconds".into(),
        other => format!("{other}"),
    }
}

/// Parses one textual cell as the field's type; an empty cell is a missing value.
pub fn parse_cell(text: &str, data_type: &DataType) -> Option<Datum> {
    let text = text.trim();
    if text.is_empty()
        || text.eq_ignore_ascii_case("null")
        || text.eq_ignore_ascii_case("nan") && !matches!(data_type.without_optional(), DataType::String)
    {
        return Some(Datum::Null);
    }
    Some(match data_type.without_optional() {
        DataType::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Datum::Bool(true),
            "false" | "0" | "no" => Datum::Bool(false),
            _ => return None,
        },
        DataType::Int => Datum::Int(
            text.parse::<i64>()
                .ok()
                .or_else(|| text.parse::<f64>().ok().filter(|value| value.fract() == 0.0).map(|value| value as i64))?,
        ),
        DataType::Float => Datum::Float(text.parse::<f64>().ok()?),
        DataType::Timestamp => Datum::Timestamp(
            parse_timestamp(text).or_else(|| text.parse::<f64>().ok().map(|seconds| (seconds * 1000.0) as i64))?,
        ),
        DataType::Duration => Datum::Duration(text.parse::<f64>().ok()?),
        _ => Datum::Text(text.to_string()),
    })
}

fn read_csv(bytes: &[u8], path: &str, fields: &[Field]) -> Result<Table, Error> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(bytes);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|error| Error::Read { path: path.into(), message: error.to_string() })?
        .iter()
        .map(|header| header.trim().to_string())
        .collect();
    let positions = column_positions(&headers, fields, path)?;
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|error| Error::Read { path: path.into(), message: error.to_string() })?;
        let line = index + 2;
        let mut row = Vec::with_capacity(fields.len());
        for (field, position) in fields.iter().zip(&positions) {
            let text = record.get(*position).unwrap_or("");
            let value = parse_cell(text, &field.data_type).ok_or_else(|| Error::BadValue {
                path: path.into(),
                line,
                column: field.name.clone(),
                value: text.to_string(),
                expected: expected(&field.data_type),
            })?;
            row.push(value);
        }
        rows.push(row);
    }
    Ok(Table { fields: fields.to_vec(), rows })
}

fn column_positions(headers: &[String], fields: &[Field], path: &str) -> Result<Vec<usize>, Error> {
    fields
        .iter()
        .map(|field| {
            headers.iter().position(|header| *header == field.name).ok_or_else(|| Error::MissingColumn {
                path: path.into(),
                column: field.name.clone(),
                available: headers.join(", "),
            })
        })
        .collect()
}

fn read_jsonl(bytes: &[u8], path: &str, fields: &[Field]) -> Result<Table, Error> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| Error::Read { path: path.into(), message: "not valid UTF-8".into() })?;
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
            .map_err(|error| Error::Read { path: path.into(), message: format!("line {}: {error}", index + 1) })?;
        let mut row = Vec::with_capacity(fields.len());
        for field in fields {
            let value = match object.get(&field.name) {
                None if rows.is_empty() => {
                    return Err(Error::MissingColumn {
                        path: path.into(),
                        column: field.name.clone(),
                        available: object.keys().cloned().collect::<Vec<_>>().join(", "),
                    });
                }
                None | Some(serde_json::Value::Null) => Some(Datum::Null),
                Some(serde_json::Value::String(text)) => parse_cell(text, &field.data_type),
                Some(serde_json::Value::Bool(value)) => match field.data_type.without_optional() {
                    DataType::Bool => Some(Datum::Bool(*value)),
                    _ => None,
                },
                Some(other) => parse_cell(&other.to_string(), &field.data_type),
            };
            let value = value.ok_or_else(|| Error::BadValue {
                path: path.into(),
                line: index + 1,
                column: field.name.clone(),
                value: object.get(&field.name).map(|value| value.to_string()).unwrap_or_default(),
                expected: expected(&field.data_type),
            })?;
            row.push(value);
        }
        rows.push(row);
    }
    Ok(Table { fields: fields.to_vec(), rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Vec<Field> {
        vec![Field::new("x", DataType::Float), Field::new("label", DataType::String), Field::new("ok", DataType::Bool)]
    }

    #[test]
    fn csv_is_typed_by_the_schema() {
        let table = read_csv(b"label,x,ok\na,1.5,true\nb,,false\n", "t.csv", &fields()).unwrap();
        assert_eq!(table.rows[0], vec![Datum::Float(1.5), Datum::Text("a".into()), Datum::Bool(true)]);
        assert_eq!(table.rows[1][0], Datum::Null);
    }

    #[test]
    fn bad_values_and_missing_columns_say_where() {
        let error = read_csv(b"label,x,ok\na,abc,true\n", "t.csv", &fields()).unwrap_err().to_string();
        assert_eq!(error, "`t.csv` line 2, column `x`: `abc` is not a number");
        let error = read_csv(b"label,x\na,1\n", "t.csv", &fields()).unwrap_err().to_string();
        assert_eq!(error, "`t.csv` has no column `ok`; it has: label, x");
    }

    #[test]
    fn json_lines_read_too() {
        let table = read_jsonl(b"{\"x\": 2, \"label\": \"a\", \"ok\": false}\n", "t.jsonl", &fields()).unwrap();
        assert_eq!(table.rows[0], vec![Datum::Float(2.0), Datum::Text("a".into()), Datum::Bool(false)]);
    }
}
