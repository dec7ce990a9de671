//! Batch SQL: a `batch` block's query runs with Apache DataFusion over the datasets and file sinks it reads
//! (CSV, JSON lines, Parquet files or directories of part files), and its result replaces the dataset it writes
//! `into`, converted to that dataset's schema. A query error says where in the query it is, so that the CLI can
//! point into the `.stratum` file.
//!
//! Kept apart from the data plane because DataFusion is the heaviest dependency of the workspace.

#![warn(missing_docs)]

pub mod schedule;

use datafusion::arrow::datatypes::DataType as ArrowType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Column;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, cast};
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionConfig, SessionContext};
use std::path::{Path, PathBuf};
use std::time::Instant;
use stratum_core::Cause;
use stratum_core::ir::{Application, FileFormat, SinkKind};
use stratum_core::types::Field;

/// Everything that can go wrong while running a batch.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The application has no batch of that name.
    #[error("there is no batch `{name}` in `{application}`")]
    NoBatch {
        /// The batch asked for.
        name: String,
        /// The application's name.
        application: String,
    },
    /// A table the query reads has no file yet.
    #[error("table `{table}` has no data yet: {path} does not exist; run the pipeline that fills it first")]
    NoData {
        /// The dataset or file sink the query names.
        table: String,
        /// Where its data would be.
        path: PathBuf,
    },
    /// The query is wrong; DataFusion's words, with where in the query when it knows.
    #[error("{message}")]
    Query {
        /// What is wrong, without the position (shown by pointing into the file).
        message: String,
        /// The line within the query text, from 1.
        line: Option<u64>,
        /// The column within that line, from 1.
        column: Option<u64>,
        /// DataFusion's suggestion, when it has one.
        help: Option<String>,
    },
    /// The result lacks a column of the target dataset's schema.
    #[error("the result has no column `{column}`, which dataset `{dataset}` needs (the result has: {found})")]
    MissingColumn {
        /// The missing column.
        column: String,
        /// The dataset the batch writes into.
        dataset: String,
        /// The result's columns, comma-separated.
        found: String,
    },
    /// The result could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The dataset's file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: Cause,
    },
}

/// What a batch run did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BatchRun {
    /// The batch's name.
    pub batch: String,
    /// The dataset it wrote.
    pub into: String,
    /// The dataset's file.
    pub path: PathBuf,
    /// Rows written.
    pub rows: usize,
    /// How long the query and the write took.
    pub seconds: f64,
}

/// Where a table that a query reads is stored, and in what format.
fn table_location(application: &Application, table: &str) -> Option<(String, FileFormat)> {
    if let Some(dataset) = application.datasets.iter().find(|dataset| dataset.name == table) {
        let location = dataset.location();
        let format = dataset.format.or_else(|| format_of(&location)).unwrap_or(FileFormat::Parquet);
        return Some((location, format));
    }
    application.sinks.iter().find(|sink| sink.name == table).and_then(|sink| match &sink.kind {
        SinkKind::File { path, format, .. } => Some((path.clone(), *format)),
        _ => None,
    })
}

fn format_of(path: &str) -> Option<FileFormat> {
    Path::new(path).extension().and_then(|extension| FileFormat::from_name(&extension.to_string_lossy()))
}

/// Runs the batch `name` of `application` once; relative paths are relative to `base`.
pub async fn run(application: &Application, name: &str, base: &Path) -> Result<BatchRun, Error> {
    let started = Instant::now();
    let batch = application
        .batches
        .iter()
        .find(|batch| batch.name == name)
        .ok_or_else(|| Error::NoBatch { name: name.into(), application: application.name.clone() })?;
    let config = SessionConfig::new().set_bool("datafusion.sql_parser.collect_spans", true);
    let context = SessionContext::new_with_config(config);
    for table in &batch.reads {
        let Some((location, format)) = table_location(application, table) else { continue };
        let path = base.join(&location);
        if !path.exists() {
            return Err(Error::NoData { table: table.clone(), path });
        }
        register(&context, table, &path, format).await.map_err(query_error)?;
    }
    let frame = context.sql(&batch.query).await.map_err(query_error)?;
    let dataset =
        application.datasets.iter().find(|dataset| dataset.name == batch.into).ok_or_else(|| Error::Query {
            message: format!("`into` names `{}`, which is not a dataset", batch.into),
            line: None,
            column: None,
            help: None,
        })?;
    let conformed = conform(frame, &dataset.fields, &dataset.name)?;
    let batches = conformed.collect().await.map_err(query_error)?;
    let location = dataset.location();
    let path = base.join(&location);
    let format = dataset.format.or_else(|| format_of(&location)).unwrap_or(FileFormat::Parquet);
    write(&path, format, &batches)?;
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    tracing::info!(batch = batch.name, into = dataset.name, rows, path = %path.display(), "batch done");
    Ok(BatchRun {
        batch: batch.name.clone(),
        into: dataset.name.clone(),
        path,
        rows,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn register(
    context: &SessionContext,
    table: &str,
    path: &Path,
    format: FileFormat,
) -> Result<(), DataFusionError> {
    let mut location = path.to_string_lossy().into_owned();
    if path.is_dir() && !location.ends_with('/') {
        location.push('/');
    }
    match format {
        FileFormat::Parquet => context.register_parquet(table, &location, ParquetReadOptions::default()).await,
        FileFormat::Csv => context.register_csv(table, &location, CsvReadOptions::new()).await,
        FileFormat::Jsonl => {
            context.register_json(table, &location, JsonReadOptions::default().file_extension(".jsonl")).await
        }
    }
}

/// The query's result with exactly the dataset's columns, in its order, cast to its types.
fn conform(
    frame: datafusion::dataframe::DataFrame,
    fields: &[Field],
    dataset: &str,
) -> Result<datafusion::dataframe::DataFrame, Error> {
    let schema = stratum_ml::columnar::arrow_schema(fields);
    let available: Vec<String> = frame.schema().fields().iter().map(|field| field.name().clone()).collect();
    let mut columns: Vec<Expr> = Vec::new();
    for (field, arrow_field) in fields.iter().zip(schema.fields()) {
        if !available.contains(&field.name) {
            return Err(Error::MissingColumn {
                column: field.name.clone(),
                dataset: dataset.into(),
                found: available.join(", "),
            });
        }
        let target: ArrowType = arrow_field.data_type().clone();
        columns.push(cast(Expr::Column(Column::from_name(&field.name)), target).alias(&field.name));
    }
    frame.select(columns).map_err(query_error)
}

/// Replaces the dataset's file with the result: written under a temporary name, then renamed, so a reader sees
/// the old result or the new one, never half of one.
fn write(path: &Path, format: FileFormat, batches: &[RecordBatch]) -> Result<(), Error> {
    let write_error = |source: Cause| Error::Write { path: path.to_path_buf(), source };
    if let Some(directory) = path.parent() {
        std::fs::create_dir_all(directory).map_err(|error| write_error(error.into()))?;
    }
    let temporary = path.with_file_name(format!(
        ".{}.tmp-{}",
        path.file_name().map(|name| name.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    let file = std::fs::File::create(&temporary).map_err(|error| write_error(error.into()))?;
    let schema = match batches.first() {
        Some(batch) => batch.schema(),
        None => std::sync::Arc::new(datafusion::arrow::datatypes::Schema::empty()),
    };
    let result: Result<std::fs::File, Cause> = match format {
        FileFormat::Parquet => (|| {
            let mut writer =
                datafusion::parquet::arrow::ArrowWriter::try_new(file, schema, None).map_err(Cause::from)?;
            for batch in batches {
                writer.write(batch).map_err(Cause::from)?;
            }
            writer.into_inner().map_err(Cause::from)
        })(),
        FileFormat::Csv => (|| {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(file);
            for batch in batches {
                writer.write(batch).map_err(Cause::from)?;
            }
            Ok(writer.into_inner())
        })(),
        FileFormat::Jsonl => (|| {
            let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(file);
            for batch in batches {
                writer.write(batch).map_err(Cause::from)?;
            }
            writer.finish().map_err(Cause::from)?;
            Ok(writer.into_inner())
        })(),
    };
    let file = result.map_err(write_error)?;
    file.sync_all().map_err(|error| write_error(error.into()))?;
    if path.is_dir() {
        // A directory of parts written by a dataset sink before: the batch's result replaces it.
        std::fs::remove_dir_all(path).map_err(|error| write_error(error.into()))?;
    }
    std::fs::rename(&temporary, path).map_err(|error| write_error(error.into()))
}

/// A DataFusion error as a query error, with its position in the query when known.
fn query_error(error: DataFusionError) -> Error {
    let diagnostic = error.diagnostic();
    let (line, column) = match diagnostic.and_then(|diagnostic| diagnostic.span) {
        Some(span) => (Some(span.start.line), Some(span.start.column)),
        // Without a diagnostic, DataFusion says where only in its message.
        None => stratum_core::sql::position_in_message(&error.to_string()),
    };
    let message = match diagnostic {
        Some(diagnostic) => diagnostic.message.clone(),
        None => error
            .strip_backtrace()
            .trim_start_matches("SQL error: ")
            .trim_start_matches("ParserError(\"")
            .trim_start_matches("Error during planning: ")
            .trim_end_matches("\")")
            .to_string(),
    };
    // The position is shown by pointing into the file.
    let message = message.split(" at Line: ").next().unwrap_or(&message).to_string();
    let help = diagnostic.and_then(|diagnostic| diagnostic.helps.first()).map(|help| help.message.clone());
    Error::Query { message, line, column, help }
}
