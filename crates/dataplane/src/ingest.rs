//! A source's ingest log: where a source keeps what it took in, synced, before it acknowledges it to a sender
//! that cannot wait until the records are durable downstream ([`crate::ack`]): an MQTT broker stalls when its
//! window of unacknowledged messages is full, so a PUBACK has to come in milliseconds, not in a sink's second.
//!
//! The source appends each batch (one entry, one `fdatasync`: the durable [`Log`] of store-and-forward), then
//! acknowledges the batch's messages to the sender and sends it into the pipeline with an ack. Entries are
//! acknowledged in the log, in order, once their records are durable downstream, and deleted with their segments.
//! In the normal course nothing is read back; after a crash, the next run of the source sends what the log still
//! holds into the pipeline before anything new: at least once.

use crate::Error;
use crate::ack::{Ack, Settlement, commit_in_order};
use crate::component::{Context, Output};
use crate::log::{Log, LogOptions};
use crate::record::{Record, decode_batch, encode_batch};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stratum_core::ir::WhenFull;
use stratum_core::sync::lock;
use tokio::sync::mpsc;

/// The most an ingest log holds; a full log makes its source wait (and its sender with it) until the pipeline has
/// made room.
const MAX_BYTES: u64 = 256 << 20;

/// Where a source's ingest log lives under a data directory.
pub fn ingest_directory(data_dir: &Path, source: &str) -> PathBuf {
    data_dir.join("ingest").join(crate::checkpoint::file_name(source))
}

/// One source's ingest log (see the module documentation).
pub struct IngestLog {
    log: Arc<Mutex<Log>>,
    settled: mpsc::UnboundedSender<(u64, Settlement)>,
}

impl IngestLog {
    /// Opens the log in `directory`, and sends into the pipeline what a previous run kept and the pipeline did not
    /// make durable.
    pub async fn open(directory: &Path, output: &Output, context: &Context) -> Result<IngestLog, Error> {
        let directory = directory.to_path_buf();
        let log = tokio::task::spawn_blocking(move || {
            Log::open(&directory, LogOptions::bounded(MAX_BYTES, WhenFull::Reject))
        })
        .await
        .map_err(|error| Error::Transfer(error.into()))??;
        let log = Arc::new(Mutex::new(log));
        let (settled, settlements) = mpsc::unbounded_channel();
        let (acknowledged, component) = (log.clone(), context.component.clone());
        tokio::spawn(commit_in_order(settlements, move |sequence: u64| {
            if let Err(error) = lock(&acknowledged).acknowledge(sequence) {
                tracing::warn!(component, %error, "cannot acknowledge in the ingest log");
            }
        }));
        let ingest = IngestLog { log, settled };
        let mut from = lock(&ingest.log).first_unacknowledged();
        loop {
            let entries = lock(&ingest.log).read(from, 64, 16 << 20)?;
            let Some(last) = entries.last() else { break };
            from = last.sequence + 1;
            for entry in entries {
                match decode_batch(&entry.payload) {
                    Ok(records) => {
                        tracing::info!(
                            component = context.component,
                            records = records.len(),
                            "sending again what a previous run took in"
                        );
                        ingest.send(entry.sequence, records, output).await?;
                    }
                    Err(reason) => {
                        context.dead_letter(&format!("ingest log entry {}: {reason}", entry.sequence), "");
                        let (ack, settlement) = Ack::new();
                        ack.done();
                        ingest.sent(entry.sequence, settlement);
                    }
                }
            }
        }
        Ok(ingest)
    }

    /// Appends `records` durably; returns the entry's sequence number. Waits while the log is full.
    pub async fn keep(&self, records: &[Record]) -> Result<u64, Error> {
        let payload = encode_batch(records);
        let time = crate::record::wall_clock_milliseconds();
        loop {
            let log = self.log.clone();
            let payload = payload.clone();
            // Appending syncs the disk: not on the async threads.
            let appended = tokio::task::spawn_blocking(move || lock(&log).append(&payload, time))
                .await
                .map_err(|error| Error::Transfer(error.into()))??;
            match appended {
                Ok(sequence) => return Ok(sequence),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Sends the records of entry `sequence` into the pipeline; the entry is acknowledged once they are durable.
    /// Fails when the pipeline no longer takes records (they stay in the log for the next run).
    pub async fn send(&self, sequence: u64, records: Vec<Record>, output: &Output) -> Result<(), Error> {
        let (ack, settlement) = Ack::new();
        output.send_acked(records, ack.into()).await.map_err(|_| Error::Ended)?;
        self.sent(sequence, settlement);
        Ok(())
    }

    fn sent(&self, sequence: u64, settlement: Settlement) {
        let _ = self.settled.send((sequence, settlement));
    }
}
