//! File sinks and dataset sinks. A path with an extension and no `partition_by` is one file that CSV and JSON
//! lines append to; otherwise the path is a directory of Hive-style partitions (`camera=cam-1/`) holding one file
//! per hour of event time for CSV and JSON lines, and immutable part files for Parquet. Files are written out
//! every few seconds and at the end; a Parquet part appears under its final name only once complete (written to a
//! temporary name, synced, then renamed), so a reader such as a batch query never sees half a file.

use crate::Error;
use crate::ack::Acks;
use crate::component::{BoxFuture, BuildContext, Context, Sink};
use crate::record::{Batch, Record, datum_to_cell, event_time_position, into_records, to_json_object};
use crate::sinks::windows::WindowLedger;
use parquet::arrow::ArrowWriter;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use stratum_core::Cause;
use stratum_core::eval::{Datum, format_timestamp};
use stratum_core::ir::{FileFormat, Sink as SinkItem, SinkKind};
use stratum_core::types::Field;
use stratum_ml::columnar::record_batch;

/// Parquet parts are written when this many rows wait for one partition, or when the oldest has waited
/// [`PARQUET_MAX_WAIT`]; larger files read faster.
const PARQUET_ROWS: usize = 100_000;
const PARQUET_MAX_WAIT: Duration = Duration::from_secs(10);
/// CSV and JSON lines are appended at least this often, and sooner while a source waits to acknowledge what
/// they hold (an HTTP client waits for its answer): see [`crate::ack`].
const TEXT_MAX_WAIT: Duration = Duration::from_secs(1);
const TEXT_ACKED_WAIT: Duration = Duration::from_millis(100);

/// Builds a CSV, JSON lines or Parquet sink.
pub fn build(sink: &SinkItem, context: &BuildContext) -> Result<Box<dyn Sink>, Error> {
    let SinkKind::File { path, format, partition_by } = &sink.kind else {
        return Err(Error::Build { component: sink.name.clone(), message: "not a file sink".into() });
    };
    let windows = WindowLedger::of(&sink.name, &sink.from, &sink.fields, context.application, context.data_dir)?;
    FileSink::new(&sink.name, context.resolve(path), *format, sink.fields.clone(), &sink.fields, partition_by)
        .map(|file| Box::new(FileSink { windows, ..file }) as Box<dyn Sink>)
}

/// A sink `into` a dataset: the dataset's file, in the dataset's format and column order.
pub fn build_dataset(sink: &SinkItem, context: &BuildContext) -> Result<Box<dyn Sink>, Error> {
    let SinkKind::Dataset { into } = &sink.kind else {
        return Err(Error::Build { component: sink.name.clone(), message: "not a dataset sink".into() });
    };
    let build_error = |message: String| Error::Build { component: sink.name.clone(), message };
    let dataset = context
        .application
        .datasets
        .iter()
        .find(|dataset| dataset.name == *into)
        .ok_or_else(|| build_error(format!("no dataset `{into}`")))?;
    let format = dataset.format.unwrap_or(FileFormat::Parquet);
    let windows = WindowLedger::of(&sink.name, &sink.from, &sink.fields, context.application, context.data_dir)?;
    FileSink::new(&sink.name, context.resolve(&dataset.location()), format, dataset.fields.clone(), &sink.fields, &[])
        .map(|file| Box::new(FileSink { windows, ..file }) as Box<dyn Sink>)
}

/// A file sink: CSV, JSON lines or Parquet, synced before it acknowledges.
pub struct FileSink {
    component: String,
    root: PathBuf,
    single_file: bool,
    format: FileFormat,
    /// The fields written.
    fields: Vec<Field>,
    /// For each written field, its position in the incoming records; `None` when they are the same fields.
    columns: Option<Vec<usize>>,
    partitions: Vec<(String, usize)>,
    time: Option<usize>,
    /// Records waiting to be written, by target (a file, or for Parquet a partition and hour), with shares in
    /// their acknowledgements: done once the target's file is synced.
    pending: BTreeMap<PathBuf, (Vec<Record>, Acks)>,
    oldest: Option<Instant>,
    sequence: u64,
    /// When it reads a windowed stream: the windows it took, so that it takes each once.
    windows: Option<WindowLedger>,
}

impl FileSink {
    /// A sink writing `fields` (found by name among `incoming`, the fields of the records it receives) under `root`.
    pub fn new(
        component: &str,
        root: PathBuf,
        format: FileFormat,
        fields: Vec<Field>,
        incoming: &[Field],
        partition_by: &[String],
    ) -> Result<FileSink, Error> {
        let position = |name: &str| {
            incoming.iter().position(|field| field.name == name).ok_or_else(|| Error::Build {
                component: component.into(),
                message: format!("its input has no field `{name}`"),
            })
        };
        let columns = fields.iter().map(|field| position(&field.name)).collect::<Result<Vec<_>, _>>()?;
        let columns = (!columns.iter().copied().eq(0..incoming.len())).then_some(columns);
        let partitions =
            partition_by.iter().map(|name| Ok((name.clone(), position(name)?))).collect::<Result<Vec<_>, Error>>()?;
        let single_file = partitions.is_empty() && root.extension().is_some() && format != FileFormat::Parquet;
        Ok(FileSink {
            component: component.into(),
            single_file,
            root,
            format,
            time: event_time_position(incoming),
            fields,
            columns,
            partitions,
            pending: BTreeMap::new(),
            oldest: None,
            sequence: 0,
            windows: None,
        })
    }

    fn target(&self, record: &Record) -> PathBuf {
        if self.single_file {
            return self.root.clone();
        }
        let mut directory = self.root.clone();
        for (name, position) in &self.partitions {
            directory.push(format!("{name}={}", partition_value(record.get(*position).unwrap_or(&Datum::Null))));
        }
        let hour = match self.time.and_then(|position| record.get(position)) {
            Some(Datum::Timestamp(time)) => format_timestamp(time.div_euclid(3_600_000) * 3_600_000)[..13].to_string(),
            _ => "undated".to_string(),
        };
        directory.join(format!("part-{hour}.{}", self.format.extension()))
    }

    fn write_error(&self, path: &Path, source: impl Into<Cause>) -> Error {
        Error::Write { component: self.component.clone(), path: path.to_path_buf(), source: source.into() }
    }

    /// Writes the pending records of every target (all of them, or only those due).
    fn write_out(&mut self, everything: bool) -> Result<(), Error> {
        let acked = self.pending.values().any(|(_, acks)| !acks.is_empty());
        let wait = match self.format {
            FileFormat::Parquet => PARQUET_MAX_WAIT,
            _ if acked => TEXT_ACKED_WAIT,
            _ => TEXT_MAX_WAIT,
        };
        let due = everything || self.oldest.is_some_and(|oldest| oldest.elapsed() >= wait);
        let targets: Vec<PathBuf> = self
            .pending
            .iter()
            .filter(|(_, (records, _))| due || (self.format == FileFormat::Parquet && records.len() >= PARQUET_ROWS))
            .map(|(target, _)| target.clone())
            .collect();
        for target in targets {
            let (records, acks) = self.pending.remove(&target).unwrap_or_default();
            self.write_file(&target, &records)?;
            acks.done();
        }
        if self.pending.is_empty() {
            self.oldest = None;
            // Every window it took is in a synced file now.
            if let Some(windows) = &mut self.windows {
                windows.written()?;
            }
        }
        Ok(())
    }

    fn write_file(&mut self, target: &Path, records: &[Record]) -> Result<(), Error> {
        if let Some(directory) = target.parent() {
            std::fs::create_dir_all(directory).map_err(|error| self.write_error(directory, error))?;
        }
        // Records are copied only when the written columns differ from the incoming ones (a dataset's order).
        let projected: std::borrow::Cow<[Record]> = match &self.columns {
            None => std::borrow::Cow::Borrowed(records),
            Some(columns) => std::borrow::Cow::Owned(
                records
                    .iter()
                    .map(|record| {
                        columns.iter().map(|position| record.get(*position).cloned().unwrap_or(Datum::Null)).collect()
                    })
                    .collect(),
            ),
        };
        match self.format {
            FileFormat::Parquet => {
                self.sequence += 1;
                let stem = target.file_stem().and_then(|stem| stem.to_str()).unwrap_or("part");
                let unique = format!("{stem}-{}-{:06}", std::process::id(), self.sequence);
                let final_path = target.with_file_name(format!("{unique}.parquet"));
                let temporary = target.with_file_name(format!(".{unique}.parquet.tmp"));
                let batch =
                    record_batch(&self.fields, &projected).map_err(|error| self.write_error(&final_path, error))?;
                let written = (|| -> Result<(), Cause> {
                    let file = std::fs::File::create(&temporary)?;
                    let mut writer = ArrowWriter::try_new(file, batch.schema(), None)?;
                    writer.write(&batch)?;
                    writer.into_inner()?.sync_all()?;
                    std::fs::rename(&temporary, &final_path)?;
                    Ok(())
                })();
                if let Err(error) = written {
                    // A part that could not be written whole (a full disk) takes no room.
                    let _ = std::fs::remove_file(&temporary);
                    return Err(self.write_error(&final_path, error));
                }
            }
            FileFormat::Csv | FileFormat::Jsonl => {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(target)
                    .map_err(|error| self.write_error(target, error))?;
                let length = file.metadata().map(|metadata| metadata.len()).ok();
                let new = length.is_none_or(|length| length == 0);
                let mut text = String::new();
                if self.format == FileFormat::Csv {
                    let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
                    if new {
                        writer
                            .write_record(self.fields.iter().map(|field| field.name.as_str()))
                            .map_err(|error| self.write_error(target, error))?;
                    }
                    for record in projected.iter() {
                        writer
                            .write_record(record.iter().map(datum_to_cell))
                            .map_err(|error| self.write_error(target, error))?;
                    }
                    text =
                        String::from_utf8_lossy(&writer.into_inner().map_err(|error| self.write_error(target, error))?)
                            .into_owned();
                } else {
                    for record in projected.iter() {
                        text.push_str(&serde_json::Value::Object(to_json_object(record, &self.fields)).to_string());
                        text.push('\n');
                    }
                }
                if let Err(error) = file.write_all(text.as_bytes()).and_then(|()| file.sync_data()) {
                    // What a failed write left (half a line on a full disk) goes: the file holds whole records
                    // only, and the records are written again whole once they come again.
                    if let Some(length) = length {
                        let _ = file.set_len(length);
                    }
                    return Err(self.write_error(target, error));
                }
            }
        }
        tracing::debug!(component = self.component, path = %target.display(), rows = records.len(), "written");
        Ok(())
    }
}

/// A partition value as a directory name: safe characters as they are, others percent-encoded (so `..` or `/`
/// in data cannot leave the sink's directory).
fn partition_value(value: &Datum) -> String {
    let text = match value {
        Datum::Null => return "__null__".into(),
        other => stratum_core::eval::text_of(other),
    };
    let mut encoded = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_') || (byte == b'.' && !encoded.is_empty()) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

impl Sink for FileSink {
    fn write<'a>(&'a mut self, batch: Batch, acks: Acks, context: &'a Context) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let records = into_records(batch);
            let bytes = records.iter().map(crate::record::encoded_size).sum();
            context.metrics.count_in(records.len(), bytes);
            let mut previous: Option<PathBuf> = None;
            let mut again = 0;
            for record in records {
                // A window it took before (emitted again after a move or a crash): the first one stands.
                if let Some(windows) = &mut self.windows
                    && !windows.take(&record)
                {
                    again += 1;
                    continue;
                }
                let target = self.target(&record);
                let (waiting, shares) = self.pending.entry(target.clone()).or_default();
                // Each target the batch reaches holds a share, so the batch is durable once every one is synced.
                if previous.as_ref() != Some(&target) {
                    shares.extend(acks.share());
                }
                waiting.push(record);
                previous = Some(target);
            }
            acks.done();
            if again > 0 {
                tracing::info!(component = context.component, windows = again, "dropped windows it had taken before");
            }
            self.oldest.get_or_insert_with(Instant::now);
            // File writes block, but briefly: at most one flush's worth of rows, and only when one is due.
            self.write_out(false)
        })
    }

    fn flush<'a>(&'a mut self, _context: &'a Context) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { self.write_out(false) })
    }

    fn finish<'a>(&'a mut self, _context: &'a Context) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { self.write_out(true) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_values_cannot_escape_the_directory() {
        assert_eq!(partition_value(&Datum::Text("cam-1".into())), "cam-1");
        assert_eq!(partition_value(&Datum::Text("../etc".into())), "%2E.%2Fetc");
        assert_eq!(partition_value(&Datum::Text("v1.2".into())), "v1.2");
        assert_eq!(partition_value(&Datum::Text("a/b c".into())), "a%2Fb%20c");
        assert_eq!(partition_value(&Datum::Null), "__null__");
    }
}
