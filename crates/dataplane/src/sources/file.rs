//! `file` sources: CSV (with a header line) and JSON lines, read once or tailed as the file grows, and Parquet
//! (a file or a directory of parts) read once. Each line is decoded against the schema; a line that does not fit
//! goes to the dead-letter output with its line number.

use crate::Error;
use crate::component::{BoxFuture, BuildContext, Context, Output, Source};
use crate::record::{BadRecord, Record, from_csv_cells, from_json_line};
use std::path::PathBuf;
use std::time::Duration;
use stratum_core::Cause;
use stratum_core::ir::{FileFormat, Source as SourceItem, SourceKind};
use stratum_core::types::Field;
use tokio::io::{AsyncBufReadExt, BufReader};

const BATCH: usize = 1024;
/// How often a tailed file is checked for new lines once its end is reached.
const TAIL_POLL: Duration = Duration::from_millis(100);

pub(crate) fn build(source: &SourceItem, context: &BuildContext) -> Result<Box<dyn Source>, Error> {
    let SourceKind::File { path, format, tail } = &source.kind else {
        return Err(Error::Build { component: source.name.clone(), message: "not a file source".into() });
    };
    if *format == FileFormat::Parquet && *tail {
        return Err(Error::Unsupported {
            component: source.name.clone(),
            what: "tailing Parquet (its files are written whole; read them once)".into(),
        });
    }
    Ok(Box::new(FileSource {
        path: context.resolve(path),
        format: *format,
        tail: *tail,
        fields: source.fields.clone(),
    }))
}

pub(crate) struct FileSource {
    pub path: PathBuf,
    pub format: FileFormat,
    pub tail: bool,
    pub fields: Vec<Field>,
}

impl Source for FileSource {
    fn run(self: Box<Self>, output: Output, mut context: Context) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(async move {
            let component = context.component.clone();
            let read_error =
                |source: Cause| Error::Read { component: component.clone(), path: self.path.clone(), source };
            if self.format == FileFormat::Parquet {
                // A Parquet file (or a directory of parts) is read whole, by the same reader as training data.
                let (path, fields) = (self.path.clone(), self.fields.clone());
                let table = tokio::task::spawn_blocking(move || {
                    stratum_ml::data::load(&path, Some(FileFormat::Parquet), &fields)
                })
                .await
                .map_err(|error| read_error(error.into()))?
                .map_err(|error| read_error(error.into()))?;
                for chunk in table.rows.chunks(BATCH) {
                    let bytes = chunk.iter().map(crate::record::encoded_size).sum();
                    context.metrics.count_in(chunk.len(), bytes);
                    if context.stopping() || output.send(chunk.to_vec()).await.is_err() {
                        break;
                    }
                }
                return Ok(());
            }
            let file = tokio::fs::File::open(&self.path).await.map_err(|error| read_error(error.into()))?;
            let mut reader = BufReader::new(file);
            let mut positions: Option<Vec<usize>> = None;
            let mut line = String::new();
            let mut pending = String::new();
            let mut number = 0usize;
            let mut records: Vec<Record> = Vec::with_capacity(BATCH);
            loop {
                line.clear();
                let read = reader.read_line(&mut line).await.map_err(|error| read_error(error.into()))?;
                let complete = line.ends_with('\n');
                if read > 0 && !complete && self.tail {
                    // A writer is in the middle of a line: keep the part and wait for the rest.
                    pending.push_str(&line);
                    continue;
                }
                if read == 0 {
                    if output.send(std::mem::take(&mut records)).await.is_err() || !self.tail {
                        return Ok(());
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(TAIL_POLL) => continue,
                        _ = context.stopped() => return Ok(()),
                    }
                }
                let text = if pending.is_empty() {
                    line.as_str()
                } else {
                    pending.push_str(&line);
                    pending.as_str()
                };
                number += 1;
                let text = text.trim_end_matches(['\n', '\r']);
                if text.trim().is_empty() {
                    pending.clear();
                    continue;
                }
                let decoded = match self.format {
                    FileFormat::Csv => match &positions {
                        None => {
                            let headers: Vec<&str> =
                                text.split(',').map(|header| header.trim().trim_matches('"')).collect();
                            let found: Result<Vec<usize>, String> = self
                                .fields
                                .iter()
                                .map(|field| {
                                    headers.iter().position(|header| *header == field.name).ok_or_else(|| {
                                        format!(
                                            "the header has no column `{}` (it has: {})",
                                            field.name,
                                            headers.join(", ")
                                        )
                                    })
                                })
                                .collect();
                            positions = Some(found.map_err(|message| read_error(message.into()))?);
                            pending.clear();
                            continue;
                        }
                        Some(positions) => {
                            csv_cells(text).and_then(|cells| from_csv_cells(&cells, positions, &self.fields))
                        }
                    },
                    _ => from_json_line(text, &self.fields),
                };
                context.metrics.count_in(1, text.len());
                match decoded {
                    Ok(record) => records.push(record),
                    Err(reason) => context.dead_letter(&format!("line {number}: {reason}"), text),
                }
                pending.clear();
                if records.len() >= BATCH
                    && output.send(std::mem::replace(&mut records, Vec::with_capacity(BATCH))).await.is_err()
                {
                    return Ok(());
                }
                if context.stopping() {
                    output.send(records).await.ok();
                    return Ok(());
                }
            }
        })
    }
}

fn csv_cells(line: &str) -> Result<csv::StringRecord, BadRecord> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(line.as_bytes());
    match reader.records().next() {
        Some(Ok(record)) => Ok(record),
        Some(Err(error)) => Err(BadRecord(format!("not CSV: {error}"))),
        None => Err(BadRecord("an empty CSV line".into())),
    }
}
