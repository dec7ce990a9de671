//! `file` sources: CSV (with a header line) and JSON lines, read once or tailed as the file grows, and Parquet
//! (a file or a directory of parts) read once. Each line is decoded against the schema; a line that does not fit
//! goes to the dead-letter output with its line number.
//!
//! A tailed file's position is kept durably (with a data directory, in `DATA_DIR/offsets/SOURCE.json`) once the
//! lines before it are durable downstream ([`crate::ack`]), and the next run goes on from there instead of reading
//! the whole file again: what a crash costs is the lines read since, read a second time. A file that was replaced
//! or cut shorter than the position is read from its start.

use crate::Error;
use crate::ack::{Ack, commit_in_order};
use crate::component::{BoxFuture, BuildContext, Context, Output, Source};
use crate::record::{BadRecord, Record, from_csv_cells, from_json_line};
use std::path::{Path, PathBuf};
use std::time::Duration;
use stratum_core::Cause;
use stratum_core::ir::{FileFormat, Source as SourceItem, SourceKind};
use stratum_core::types::Field;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};
use tokio::sync::mpsc;

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
    let offsets = match (tail, context.data_dir) {
        (true, Some(data_dir)) => Some(offset_path(data_dir, &source.name)),
        _ => None,
    };
    Ok(Box::new(FileSource {
        path: context.resolve(path),
        format: *format,
        tail: *tail,
        fields: source.fields.clone(),
        offsets,
    }))
}

pub(crate) struct FileSource {
    pub path: PathBuf,
    pub format: FileFormat,
    pub tail: bool,
    pub fields: Vec<Field>,
    /// Where a tailed file's position is kept, when there is a data directory.
    pub offsets: Option<PathBuf>,
}

/// Where a source's position in its file is kept under a data directory.
fn offset_path(data_dir: &Path, source: &str) -> PathBuf {
    data_dir.join("offsets").join(format!("{}.json", crate::checkpoint::file_name(source)))
}

/// How far into its file a source is: every line before `offset` (a byte position, after `line` lines) is
/// durable downstream. The file is told by its path and inode, so a replaced file is read from its start.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Position {
    path: PathBuf,
    inode: u64,
    offset: u64,
    line: usize,
}

fn inode(metadata: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        std::os::unix::fs::MetadataExt::ino(metadata)
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        0
    }
}

/// The position a previous run kept for this file, if it still applies.
fn resume(offsets: &Path, file: &Path, metadata: &std::fs::Metadata, component: &str) -> Option<Position> {
    let text = std::fs::read(offsets).ok()?;
    let position: Position = match serde_json::from_slice(&text) {
        Ok(position) => position,
        Err(error) => {
            tracing::warn!(component, path = %offsets.display(), %error, "reading the file from its start: its kept position cannot be read");
            return None;
        }
    };
    if position.path != file || position.inode != inode(metadata) || position.offset > metadata.len() {
        tracing::info!(component, path = %file.display(), "reading the file from its start: it was replaced or cut");
        return None;
    }
    Some(position)
}

impl Source for FileSource {
    fn run(self: Box<Self>, output: Output, mut context: Context) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(async move {
            let component = context.component.clone();
            let read_error =
                |source: Cause| Error::Read { component: component.clone(), path: self.path.clone(), source };
            if self.format == FileFormat::Parquet {
                return read_parquet(&self.path, &self.fields, &output, &context).await.map_err(read_error);
            }
            let file = tokio::fs::File::open(&self.path).await.map_err(|error| read_error(error.into()))?;
            let metadata = file.metadata().await.map_err(|error| read_error(error.into()))?;
            let mut resumed =
                self.offsets.as_deref().and_then(|offsets| resume(offsets, &self.path, &metadata, &context.component));
            let mut position = Position { path: self.path.clone(), inode: inode(&metadata), offset: 0, line: 0 };
            let positions_kept = self.offsets.clone().map(|offsets| {
                let (sender, settled) = mpsc::unbounded_channel();
                let component = context.component.clone();
                // Each position is kept once the lines before it are durable.
                tokio::spawn(commit_in_order(settled, move |position: Position| {
                    let bytes = serde_json::to_vec(&position).unwrap_or_default();
                    if let Err(error) = crate::checkpoint::write_replacing(&offsets, &bytes) {
                        tracing::warn!(component, %error, "cannot keep the file's position");
                    }
                }));
                sender
            });
            // Sends a batch; with kept positions, with an ack whose settlement keeps the position after it — only
            // when it moved: an idle tailed file is polled ten times a second, and must not be synced as often.
            let last_sent = std::sync::atomic::AtomicU64::new(u64::MAX);
            let send = |records: Vec<Record>, position: &Position| {
                let moved = last_sent.swap(position.offset, std::sync::atomic::Ordering::Relaxed) != position.offset;
                let acked = positions_kept.as_ref().filter(|_| moved).map(|kept| {
                    let (ack, settlement) = Ack::new();
                    let _ = kept.send((position.clone(), settlement));
                    ack
                });
                output.send_acked(records, acked.map(Into::into).unwrap_or_default())
            };
            let mut reader = BufReader::new(file);
            let mut positions: Option<Vec<usize>> = None;
            let mut line = String::new();
            let mut pending = String::new();
            let mut number = 0usize;
            let mut records: Vec<Record> = Vec::with_capacity(BATCH);
            loop {
                // A kept position is taken up once the header (for CSV) is read: lines before it are skipped.
                let header_read = self.format != FileFormat::Csv || positions.is_some();
                if let Some(kept) = resumed.take_if(|kept| header_read && kept.offset > position.offset) {
                    reader
                        .seek(std::io::SeekFrom::Start(kept.offset))
                        .await
                        .map_err(|error| read_error(error.into()))?;
                    tracing::info!(component = context.component, line = kept.line, "going on from the kept position");
                    number = kept.line;
                    position = kept;
                }
                line.clear();
                let read = reader.read_line(&mut line).await.map_err(|error| read_error(error.into()))?;
                let complete = line.ends_with('\n');
                if read > 0 && !complete && self.tail {
                    // A writer is in the middle of a line: keep the part and wait for the rest.
                    pending.push_str(&line);
                    continue;
                }
                if read == 0 {
                    if send(std::mem::take(&mut records), &position).await.is_err() || !self.tail {
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
                position.offset += (pending.len().max(line.len())) as u64;
                position.line = number;
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
                    && send(std::mem::replace(&mut records, Vec::with_capacity(BATCH)), &position).await.is_err()
                {
                    return Ok(());
                }
                if context.stopping() {
                    send(records, &position).await.ok();
                    return Ok(());
                }
            }
        })
    }
}

/// Reads a Parquet file (or a directory of parts) by the same reader as training data, a batch at a time on a
/// blocking thread, each batch sent on before the next is read (at most two wait between them): memory follows
/// the batch and the row group, not the file. A row whose value its column's type cannot be taken as goes to the
/// dead letters, named by its row.
async fn read_parquet(path: &Path, fields: &[Field], output: &Output, context: &Context) -> Result<(), Cause> {
    let rows = stratum_ml::data::ParquetRows::open(path, fields)?;
    let (batches, mut read) = mpsc::channel(2);
    let reading = tokio::task::spawn_blocking(move || {
        for batch in rows {
            let failed = batch.is_err();
            if batches.blocking_send(batch).is_err() || failed {
                break;
            }
        }
    });
    let shown = path.display().to_string();
    while let Some(batch) = read.recv().await {
        let batch = batch?;
        if !batch.rejected.is_empty() {
            context.dead_letter_all(batch.rejected.iter().map(|rejected| {
                // The dead letter's text is the error itself: it names the row, the column and what was wanted.
                (stratum_core::error_chain(rejected), format!("a row of {shown}"))
            }));
        }
        let bytes = batch.rows.iter().map(crate::record::encoded_size).sum();
        context.metrics.count_in(batch.rows.len() + batch.rejected.len(), bytes);
        if context.stopping() || output.send(batch.rows).await.is_err() {
            break;
        }
    }
    // Dropping the receiver ends the reading thread at its next batch.
    drop(read);
    reading.await?;
    Ok(())
}

fn csv_cells(line: &str) -> Result<csv::StringRecord, BadRecord> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(line.as_bytes());
    match reader.records().next() {
        Some(Ok(record)) => Ok(record),
        Some(Err(error)) => Err(BadRecord(format!("not CSV: {error}"))),
        None => Err(BadRecord("an empty CSV line".into())),
    }
}
