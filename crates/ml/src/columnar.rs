//! Records to Apache Arrow record batches, for Parquet files that DataFusion, DuckDB and pandas read: the
//! writing side of what `data.rs` reads. The data plane's file sinks and batch SQL's results both write through it.
//! Timestamps are milliseconds in UTC, durations are seconds as floats, every column is nullable.

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType as ArrowType, Field as ArrowField, Schema, TimeUnit};
use std::sync::Arc;
use stratum_core::eval::{Datum, text_of};
use stratum_core::types::{DataType, Field};

/// The Arrow schema of records with these fields.
pub fn arrow_schema(fields: &[Field]) -> Arc<Schema> {
    Arc::new(Schema::new(
        fields.iter().map(|field| ArrowField::new(&field.name, arrow_type(&field.data_type), true)).collect::<Vec<_>>(),
    ))
}

fn arrow_type(data_type: &DataType) -> ArrowType {
    match data_type.without_optional() {
        DataType::Bool => ArrowType::Boolean,
        DataType::Int => ArrowType::Int64,
        DataType::Float | DataType::Duration => ArrowType::Float64,
        DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        _ => ArrowType::Utf8,
    }
}

/// One record batch of the given records.
pub fn record_batch(fields: &[Field], records: &[Vec<Datum>]) -> Result<RecordBatch, ArrowError> {
    let columns: Vec<ArrayRef> = fields
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let values = records.iter().map(move |record| record.get(index).unwrap_or(&Datum::Null));
            let column: ArrayRef = match field.data_type.without_optional() {
                DataType::Bool => {
                    let mut builder = BooleanBuilder::with_capacity(records.len());
                    values.for_each(|value| {
                        builder.append_option(if let Datum::Bool(value) = value { Some(*value) } else { None })
                    });
                    Arc::new(builder.finish())
                }
                DataType::Int => {
                    let mut builder = Int64Builder::with_capacity(records.len());
                    values.for_each(|value| {
                        builder.append_option(if let Datum::Int(value) = value { Some(*value) } else { None })
                    });
                    Arc::new(builder.finish())
                }
                DataType::Float | DataType::Duration => {
                    let mut builder = Float64Builder::with_capacity(records.len());
                    values.for_each(|value| builder.append_option(value.as_f64().filter(|_| *value != Datum::Null)));
                    Arc::new(builder.finish())
                }
                DataType::Timestamp => {
                    let mut builder = TimestampMillisecondBuilder::with_capacity(records.len()).with_timezone("UTC");
                    values.for_each(|value| {
                        builder.append_option(if let Datum::Timestamp(value) = value { Some(*value) } else { None })
                    });
                    Arc::new(builder.finish())
                }
                _ => {
                    let mut builder = StringBuilder::with_capacity(records.len(), records.len() * 16);
                    values.for_each(|value| match value {
                        Datum::Null => builder.append_null(),
                        other => builder.append_value(text_of(other)),
                    });
                    Arc::new(builder.finish())
                }
            };
            column
        })
        .collect();
    RecordBatch::try_new(arrow_schema(fields), columns)
}
