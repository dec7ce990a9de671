//! Loading a dataset (CSV, JSON lines or Parquet) into a typed table, by the dataset's schema, with precise errors.

use crate::Error;
use std::path::Path;
use stratum_core::eval::{Datum, parse_timestamp};
use stratum_core::ir::FileFormat;
use stratum_core::types::{DataType, Field};

/// A table of rows, one `Datum` per field, in the schema's column order.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// The columns, in order.
    pub fields: Vec<Field>,
    /// The rows, a value per column.
    pub rows: Vec<Vec<Datum>>,
}

impl Table {
    /// The index of the column `name`, if there is one.
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
            source: "cannot tell its format; use .csv, .jsonl or .parquet".into(),
        })?;
    let table = match format {
        FileFormat::Parquet => read_parquet(path, fields)?,
        FileFormat::Csv | FileFormat::Jsonl => {
            let bytes =
                std::fs::read(path).map_err(|error| Error::Read { path: shown.clone(), source: error.into() })?;
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

fn read_parquet(path: &Path, fields: &[Field]) -> Result<Table, Error> {
    let mut rows = Vec::new();
    for batch in ParquetRows::open(path, fields)? {
        let batch = batch?;
        if let Some(rejected) = batch.rejected.into_iter().next() {
            return Err(rejected);
        }
        rows.extend(batch.rows);
    }
    Ok(Table { fields: fields.to_vec(), rows })
}

/// How many rows a Parquet batch holds.
const PARQUET_BATCH: usize = 1024;

/// Rows read from a Parquet file, or a directory of parts, a batch at a time: only the schema's columns are
/// read, and what is held at once is one row group's column chunks and one batch, however large the dataset.
pub struct ParquetRows {
    shown: String,
    fields: Vec<Field>,
    files: std::vec::IntoIter<std::path::PathBuf>,
    reader: Option<(std::path::PathBuf, parquet::arrow::arrow_reader::ParquetRecordBatchReader)>,
    /// Rows read before the current batch, across the files, for the row numbers errors name.
    rows_before: usize,
}

/// One batch of a Parquet dataset's rows: those that fit the schema, and an error for each row that does not
/// (a value its column's type cannot be taken as), naming its row.
#[derive(Debug, Default)]
pub struct RowBatch {
    /// The rows that fit, a value per field in the schema's order.
    pub rows: Vec<Vec<Datum>>,
    /// Why each other row does not fit ([`Error::BadRow`]).
    pub rejected: Vec<Error>,
}

impl ParquetRows {
    /// Opens a dataset's files (a file, or every `.parquet` part under a directory); they are read as the
    /// iterator is.
    pub fn open(path: &Path, fields: &[Field]) -> Result<Self, Error> {
        let shown = path.display().to_string();
        let files = dataset_files(path).map_err(|error| Error::Read { path: shown.clone(), source: error.into() })?;
        Ok(ParquetRows { shown, fields: fields.to_vec(), files: files.into_iter(), reader: None, rows_before: 0 })
    }

    fn read_error(&self, file: &Path, error: impl std::fmt::Display) -> Error {
        Error::Read { path: self.shown.clone(), source: format!("{}: {error}", file.display()).into() }
    }

    /// A reader of the next file's batches, projected onto the schema's columns.
    fn open_next(&mut self, file: std::path::PathBuf) -> Result<(), Error> {
        use parquet::arrow::ProjectionMask;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let opened = std::fs::File::open(&file)
            .map_err(|error| Error::Read { path: file.display().to_string(), source: error.into() })?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(opened).map_err(|error| self.read_error(&file, error))?;
        let schema = builder.schema().clone();
        let mut roots = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            let index = schema.index_of(&field.name).map_err(|_| Error::MissingColumn {
                path: self.shown.clone(),
                column: field.name.clone(),
                available: schema.fields().iter().map(|column| column.name().as_str()).collect::<Vec<_>>().join(", "),
            })?;
            roots.push(index);
        }
        let projection = ProjectionMask::roots(builder.parquet_schema(), roots);
        let reader = builder
            .with_projection(projection)
            .with_batch_size(PARQUET_BATCH)
            .build()
            .map_err(|error| self.read_error(&file, error))?;
        self.reader = Some((file, reader));
        Ok(())
    }

    /// A batch's rows as the schema's values.
    fn rows_of(&self, file: &Path, batch: &arrow_array::RecordBatch) -> Result<RowBatch, Error> {
        let schema = batch.schema();
        let mut columns = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            let index = schema.index_of(&field.name).map_err(|error| self.read_error(file, error))?;
            columns.push(batch.column(index));
        }
        let mut read = RowBatch { rows: Vec::with_capacity(batch.num_rows()), rejected: Vec::new() };
        'rows: for row in 0..batch.num_rows() {
            let mut values = Vec::with_capacity(self.fields.len());
            for (field, column) in self.fields.iter().zip(&columns) {
                let raw = parquet_value(column.as_ref(), row).map_err(|other| {
                    self.read_error(
                        file,
                        format!("column `{}` has Parquet type {other}, which Stratum does not read", field.name),
                    )
                })?;
                match coerce(raw, &field.data_type) {
                    Ok(value) => values.push(value),
                    Err(value) => {
                        read.rejected.push(Error::BadRow {
                            path: self.shown.clone(),
                            row: self.rows_before + row + 1,
                            column: field.name.clone(),
                            value: stratum_core::eval::text_of(&value),
                            expected: expected(&field.data_type),
                        });
                        continue 'rows;
                    }
                }
            }
            read.rows.push(values);
        }
        Ok(read)
    }
}

impl Iterator for ParquetRows {
    type Item = Result<RowBatch, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((file, reader)) = &mut self.reader {
                match reader.next() {
                    Some(Ok(batch)) => {
                        let file = file.clone();
                        let rows = self.rows_of(&file, &batch);
                        self.rows_before += batch.num_rows();
                        return Some(rows);
                    }
                    Some(Err(error)) => {
                        let file = file.clone();
                        let error = self.read_error(&file, error);
                        self.reader = None;
                        self.files = Vec::new().into_iter();
                        return Some(Err(error));
                    }
                    None => self.reader = None,
                }
            }
            let file = self.files.next()?;
            if let Err(error) = self.open_next(file) {
                self.files = Vec::new().into_iter();
                return Some(Err(error));
            }
        }
    }
}

/// One cell of an Arrow column as a value, or the column's type when Stratum does not read it.
fn parquet_value(column: &dyn arrow_array::Array, row: usize) -> Result<Datum, arrow_schema::DataType> {
    use arrow_array::{cast::AsArray, types};
    use arrow_schema::{DataType as ArrowType, TimeUnit};
    if column.is_null(row) {
        return Ok(Datum::Null);
    }
    Ok(match column.data_type() {
        ArrowType::Boolean => Datum::Bool(column.as_boolean().value(row)),
        ArrowType::Int8 => Datum::Int(column.as_primitive::<types::Int8Type>().value(row).into()),
        ArrowType::Int16 => Datum::Int(column.as_primitive::<types::Int16Type>().value(row).into()),
        ArrowType::Int32 => Datum::Int(column.as_primitive::<types::Int32Type>().value(row).into()),
        ArrowType::Int64 => Datum::Int(column.as_primitive::<types::Int64Type>().value(row)),
        ArrowType::UInt8 => Datum::Int(column.as_primitive::<types::UInt8Type>().value(row).into()),
        ArrowType::UInt16 => Datum::Int(column.as_primitive::<types::UInt16Type>().value(row).into()),
        ArrowType::UInt32 => Datum::Int(column.as_primitive::<types::UInt32Type>().value(row).into()),
        ArrowType::UInt64 => Datum::Int(column.as_primitive::<types::UInt64Type>().value(row) as i64),
        ArrowType::Float32 => Datum::Float(column.as_primitive::<types::Float32Type>().value(row).into()),
        ArrowType::Float64 => Datum::Float(column.as_primitive::<types::Float64Type>().value(row)),
        ArrowType::Utf8 => Datum::Text(column.as_string::<i32>().value(row).to_string()),
        ArrowType::LargeUtf8 => Datum::Text(column.as_string::<i64>().value(row).to_string()),
        ArrowType::Utf8View => Datum::Text(column.as_string_view().value(row).to_string()),
        ArrowType::Date32 => {
            Datum::Timestamp(i64::from(column.as_primitive::<types::Date32Type>().value(row)) * 86_400_000)
        }
        ArrowType::Timestamp(unit, _) => Datum::Timestamp(match unit {
            TimeUnit::Second => column.as_primitive::<types::TimestampSecondType>().value(row) * 1000,
            TimeUnit::Millisecond => column.as_primitive::<types::TimestampMillisecondType>().value(row),
            TimeUnit::Microsecond => column.as_primitive::<types::TimestampMicrosecondType>().value(row) / 1000,
            TimeUnit::Nanosecond => column.as_primitive::<types::TimestampNanosecondType>().value(row) / 1_000_000,
        }),
        other => return Err(other.clone()),
    })
}

/// A typed value as the type the schema wants, when it fits (an int where a float is wanted, a text cell parsed);
/// the value back when it does not, for the error to show.
fn coerce(value: Datum, data_type: &DataType) -> Result<Datum, Datum> {
    Ok(match (value, data_type.without_optional()) {
        (Datum::Null, _) => Datum::Null,
        (Datum::Int(value), DataType::Float) => Datum::Float(value as f64),
        (Datum::Float(value), DataType::Int) if value.fract() == 0.0 => Datum::Int(value as i64),
        (Datum::Float(value), DataType::Duration) => Datum::Duration(value),
        (Datum::Text(text), wanted) if *wanted != DataType::String => match parse_cell(&text, data_type) {
            Some(value) => value,
            None => return Err(Datum::Text(text)),
        },
        (value @ Datum::Bool(_), DataType::Bool)
        | (value @ Datum::Int(_), DataType::Int)
        | (value @ Datum::Float(_), DataType::Float)
        | (value @ Datum::Timestamp(_), DataType::Timestamp)
        | (value @ Datum::Text(_), DataType::String | DataType::Bytes) => value,
        (value, DataType::String) => Datum::Text(stratum_core::eval::text_of(&value)),
        (value, _) => return Err(value),
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

/// Files at least this large are parsed on several threads.
const PARALLEL_CSV_BYTES: usize = 1 << 20;

fn read_csv(bytes: &[u8], path: &str, fields: &[Field]) -> Result<Table, Error> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(bytes);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|error| Error::Read { path: path.into(), source: error.into() })?
        .iter()
        .map(|header| header.trim().to_string())
        .collect();
    let positions = column_positions(&headers, fields, path)?;
    // After the header: its line end too, of which the reader leaves the `\n` of a `\r\n`.
    let header_end = (reader.position().byte() as usize).min(bytes.len());
    let body_start = header_end + usize::from(bytes.get(header_end) == Some(&b'\n'));
    let body = &bytes[body_start..];
    // The rows after the header, split at line ends into one part per core and parsed side by side. Only where
    // no field is quoted: a quoted field may hold a line end, so a line end is not always a row's end.
    let parts = if body.len() >= PARALLEL_CSV_BYTES && !body.contains(&b'"') {
        std::thread::available_parallelism().map_or(1, usize::from).min(8)
    } else {
        1
    };
    let header_lines = bytes[..body_start].iter().filter(|byte| **byte == b'\n').count();
    let mut chunks = Vec::with_capacity(parts);
    let (mut start, mut first_line) = (0, header_lines + 1);
    for part in 1..=parts {
        let wanted = (body.len() * part / parts).max(start);
        let end = match body[wanted..].iter().position(|byte| *byte == b'\n') {
            Some(offset) if part < parts => wanted + offset + 1,
            _ => body.len(),
        };
        chunks.push((first_line, &body[start..end]));
        first_line += body[start..end].iter().filter(|byte| **byte == b'\n').count();
        start = end;
    }
    let parsed: Vec<Result<Vec<Vec<Datum>>, Error>> = if chunks.len() == 1 {
        vec![read_csv_rows(chunks[0].1, chunks[0].0, headers.len(), &positions, fields, path)]
    } else {
        std::thread::scope(|scope| {
            let running: Vec<_> = chunks
                .iter()
                .map(|(first_line, chunk)| {
                    let positions = &positions;
                    let width = headers.len();
                    scope.spawn(move || read_csv_rows(chunk, *first_line, width, positions, fields, path))
                })
                .collect();
            running.into_iter().map(|part| part.join().expect("a CSV part does not panic")).collect()
        })
    };
    let mut rows = Vec::new();
    for part in parsed {
        rows.extend(part?);
    }
    Ok(Table { fields: fields.to_vec(), rows })
}

/// The rows of a part of a CSV file without its header, whose first row is on line `first_line`; each must have
/// as many cells as the header (`width`).
fn read_csv_rows(
    chunk: &[u8],
    first_line: usize,
    width: usize,
    positions: &[usize],
    fields: &[Field],
    path: &str,
) -> Result<Vec<Vec<Datum>>, Error> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(chunk);
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => return Err(Error::Read { path: path.into(), source: error.into() }),
        }
        // One row a line, as in the files this reads (the csv crate's own line count is off for CRLF).
        let line = first_line + rows.len();
        if record.len() != width {
            return Err(Error::Read {
                path: path.into(),
                source: format!("line {line}: {} fields, but the header has {width}", record.len()).into(),
            });
        }
        let mut row = Vec::with_capacity(fields.len());
        for (field, position) in fields.iter().zip(positions) {
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
    Ok(rows)
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
        std::str::from_utf8(bytes).map_err(|_| Error::Read { path: path.into(), source: "not valid UTF-8".into() })?;
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).map_err(|error| {
            Error::Read { path: path.into(), source: format!("line {}: {error}", index + 1).into() }
        })?;
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

/// The content address of some bytes: their sha256 as lowercase hex. Models, datasets and files are named by it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    stratum_core::bytes::hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Vec<Field> {
        vec![Field::new("x", DataType::Float), Field::new("label", DataType::String), Field::new("ok", DataType::Bool)]
    }

    /// A large file is parsed in parts on several threads: the same rows in the same order, and an error names
    /// its line in the whole file, whichever part it falls in.
    #[test]
    fn a_large_csv_parses_in_parts_exactly_as_a_whole() {
        let rows = 60_000;
        let mut text = String::from("label,x,ok\r\n");
        for row in 0..rows {
            text.push_str(&format!("row{row},{}.25,{}\r\n", row, row % 2 == 0));
        }
        assert!(text.len() > PARALLEL_CSV_BYTES);
        let table = read_csv(text.as_bytes(), "big.csv", &fields()).unwrap();
        assert_eq!(table.rows.len(), rows);
        for (index, row) in table.rows.iter().enumerate() {
            let expected = vec![
                Datum::Float(index as f64 + 0.25),
                Datum::Text(format!("row{index}")),
                Datum::Bool(index % 2 == 0),
            ];
            assert_eq!(*row, expected, "row {index}");
        }
        let broken = text.replace("row45000,45000.25", "row45000,forty-five thousand");
        match read_csv(broken.as_bytes(), "big.csv", &fields()) {
            Err(Error::BadValue { line, value, .. }) => {
                assert_eq!((line, value.as_str()), (45_002, "forty-five thousand"))
            }
            other => panic!("{:?}", other.map(|table| table.rows.len())),
        }
        let ragged = text.replace("row50000,50000.25,true", "row50000,50000.25");
        let error = read_csv(ragged.as_bytes(), "big.csv", &fields()).unwrap_err().to_string();
        assert!(error.contains("line 50002: 2 fields, but the header has 3"), "{error}");
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
