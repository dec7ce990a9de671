//! Loading a dataset (CSV, JSON lines or Parquet) into a typed table, by the dataset's schema, with precise errors.

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
            message: "cannot tell its format; use .csv, .jsonl or .parquet".into(),
        })?;
    let table = match format {
        FileFormat::Parquet => read_parquet(path, &shown, fields)?,
        FileFormat::Csv | FileFormat::Jsonl => {
            let bytes =
                std::fs::read(path).map_err(|error| Error::Read { path: shown.clone(), message: error.to_string() })?;
            if format == FileFormat::Csv {
                read_csv(&bytes, &shown, fields)?
            } else {
                read_jsonl(&bytes, &shown, fields)?
            }
        }
    };
    if table.rows.is_empty() {
        return Err(Error::Empty { path: shown });
    }
    Ok(table)
}

/// The files of a dataset: the file itself, or every `.parquet` file under a directory of parts (such as a
/// partitioned sink's output), in name order.
pub fn dataset_files(path: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut directories = vec![path.to_path_buf()];
    while let Some(directory) = directories.pop() {
        for entry in std::fs::read_dir(&directory)? {
            let entry = entry?.path();
            if entry.is_dir() {
                directories.push(entry);
            } else if entry.extension().is_some_and(|extension| extension == "parquet") {
                files.push(entry);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn read_parquet(path: &Path, shown: &str, fields: &[Field]) -> Result<Table, Error> {
    use arrow_array::{Array, cast::AsArray, types};
    use arrow_schema::{DataType as ArrowType, TimeUnit};
    let read_error = |message: String| Error::Read { path: shown.into(), message };
    let mut rows: Vec<Vec<Datum>> = Vec::new();
    for file in dataset_files(path).map_err(|error| read_error(error.to_string()))? {
        let opened = std::fs::File::open(&file).map_err(|error| read_error(error.to_string()))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(opened)
            .and_then(|builder| builder.build())
            .map_err(|error| read_error(format!("{}: {error}", file.display())))?;
        for batch in reader {
            let batch = batch.map_err(|error| read_error(format!("{}: {error}", file.display())))?;
            let schema = batch.schema();
            let mut columns = Vec::with_capacity(fields.len());
            for field in fields {
                let index = schema.index_of(&field.name).map_err(|_| Error::MissingColumn {
                    path: shown.into(),
                    column: field.name.clone(),
                    available: schema
                        .fields()
                        .iter()
                        .map(|column| column.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
                columns.push(batch.column(index).clone());
            }
            let first_row = rows.len();
            rows.extend((0..batch.num_rows()).map(|_| Vec::with_capacity(fields.len())));
            for (field, column) in fields.iter().zip(&columns) {
                for row in 0..batch.num_rows() {
                    let raw = if column.is_null(row) {
                        Datum::Null
                    } else {
                        match column.data_type() {
                            ArrowType::Boolean => Datum::Bool(column.as_boolean().value(row)),
                            ArrowType::Int8 => Datum::Int(column.as_primitive::<types::Int8Type>().value(row).into()),
                            ArrowType::Int16 => Datum::Int(column.as_primitive::<types::Int16Type>().value(row).into()),
                            ArrowType::Int32 => Datum::Int(column.as_primitive::<types::Int32Type>().value(row).into()),
                            ArrowType::Int64 => Datum::Int(column.as_primitive::<types::Int64Type>().value(row)),
                            ArrowType::UInt8 => Datum::Int(column.as_primitive::<types::UInt8Type>().value(row).into()),
                            ArrowType::UInt16 => {
                                Datum::Int(column.as_primitive::<types::UInt16Type>().value(row).into())
                            }
                            ArrowType::UInt32 => {
                                Datum::Int(column.as_primitive::<types::UInt32Type>().value(row).into())
                            }
                            ArrowType::UInt64 => {
                                Datum::Int(column.as_primitive::<types::UInt64Type>().value(row) as i64)
                            }
                            ArrowType::Float32 => {
                                Datum::Float(column.as_primitive::<types::Float32Type>().value(row).into())
                            }
                            ArrowType::Float64 => Datum::Float(column.as_primitive::<types::Float64Type>().value(row)),
                            ArrowType::Utf8 => Datum::Text(column.as_string::<i32>().value(row).to_string()),
                            ArrowType::LargeUtf8 => Datum::Text(column.as_string::<i64>().value(row).to_string()),
                            ArrowType::Utf8View => Datum::Text(column.as_string_view().value(row).to_string()),
                            ArrowType::Date32 => Datum::Timestamp(
                                i64::from(column.as_primitive::<types::Date32Type>().value(row)) * 86_400_000,
                            ),
                            ArrowType::Timestamp(unit, _) => {
                                let value = match unit {
                                    TimeUnit::Second => {
                                        column.as_primitive::<types::TimestampSecondType>().value(row) * 1000
                                    }
                                    TimeUnit::Millisecond => {
                                        column.as_primitive::<types::TimestampMillisecondType>().value(row)
                                    }
                                    TimeUnit::Microsecond => {
                                        column.as_primitive::<types::TimestampMicrosecondType>().value(row) / 1000
                                    }
                                    TimeUnit::Nanosecond => {
                                        column.as_primitive::<types::TimestampNanosecondType>().value(row) / 1_000_000
                                    }
                                };
                                Datum::Timestamp(value)
                            }
                            other => {
                                return Err(read_error(format!(
                                    "column `{}` has Parquet type {other}, which Stratum does not read",
                                    field.name
                                )));
                            }
                        }
                    };
                    let value = coerce(raw, &field.data_type).ok_or_else(|| Error::BadValue {
                        path: shown.into(),
                        line: first_row + row + 1,
                        column: field.name.clone(),
                        value: format!("a {} value", column.data_type()),
                        expected: expected(&field.data_type),
                    })?;
                    rows[first_row + row].push(value);
                }
            }
        }
    }
    Ok(Table { fields: fields.to_vec(), rows })
}

/// A typed value as the type the schema wants, when it fits (an int where a float is wanted, a text cell parsed).
fn coerce(value: Datum, data_type: &DataType) -> Option<Datum> {
    Some(match (value, data_type.without_optional()) {
        (Datum::Null, _) => Datum::Null,
        (Datum::Int(value), DataType::Float) => Datum::Float(value as f64),
        (Datum::Float(value), DataType::Int) if value.fract() == 0.0 => Datum::Int(value as i64),
        (Datum::Float(value), DataType::Duration) => Datum::Duration(value),
        (Datum::Text(text), wanted) if *wanted != DataType::String => parse_cell(&text, data_type)?,
        (value @ Datum::Bool(_), DataType::Bool)
        | (value @ Datum::Int(_), DataType::Int)
        | (value @ Datum::Float(_), DataType::Float)
        | (value @ Datum::Timestamp(_), DataType::Timestamp)
        | (value @ Datum::Text(_), DataType::String | DataType::Bytes) => value,
        (value, DataType::String) => Datum::Text(stratum_core::eval::text_of(&value)),
        _ => return None,
    })
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

/// Reads one JSON value as a value of the given type (`None` when it does not fit); an absent value is missing.
pub fn json_cell(value: Option<&serde_json::Value>, data_type: &DataType) -> Option<Datum> {
    match value {
        None | Some(serde_json::Value::Null) => Some(Datum::Null),
        Some(serde_json::Value::String(text)) => parse_cell(text, data_type),
        Some(serde_json::Value::Bool(value)) => match data_type.without_optional() {
            DataType::Bool => Some(Datum::Bool(*value)),
            _ => None,
        },
        Some(other) => parse_cell(&other.to_string(), data_type),
    }
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
            if rows.is_empty() && !object.contains_key(&field.name) {
                return Err(Error::MissingColumn {
                    path: path.into(),
                    column: field.name.clone(),
                    available: object.keys().cloned().collect::<Vec<_>>().join(", "),
                });
            }
            let value = json_cell(object.get(&field.name), &field.data_type);
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
