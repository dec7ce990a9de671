//! The durable store-and-forward buffer: an append-only log of entries on disk, split into segment files, with
//! acknowledgements. Every data path that leaves a node goes through one, so that nothing is lost while the
//! uplink is down or when the process dies.
//!
//! Layout: a directory with `SEQUENCE.segment` files (named by the sequence number of their first entry) and an
//! `acknowledged` file. An entry is `[payload length u32][crc32c u32][sequence u64][time ms i64][payload]`, little
//! endian; the checksum covers sequence, time and payload.
//!
//! Guarantees:
//! - **Durability.** With [`SyncPolicy::EveryAppend`] (the default) `append` returns only after the entry is
//!   written and `fdatasync`ed: an entry acknowledged to its producer survives a crash of the process or the
//!   machine. With [`SyncPolicy::Never`] the operating system decides when data reaches the disk: a process crash
//!   loses nothing, a power cut may lose the last seconds.
//! - **Recovery.** Opening the log scans only the newest segment and cuts it at the first torn or corrupt entry
//!   (an append the crash interrupted, which was therefore never acknowledged). Older segments were complete
//!   when the next one was started.
//! - **At least once, in order.** Entries are read in sequence order from the first unacknowledged one; after a
//!   restart everything not acknowledged is read again. Acknowledging is durable too (the `acknowledged` file is
//!   replaced atomically), and segments whose entries are all acknowledged are deleted, so sent data does not
//!   fill the disk.
//! - **Bounds.** The log never holds more than `max_bytes`: when an append would pass it, `drop_oldest` deletes
//!   the oldest segments (acknowledged or not) and counts their entries as dropped, `reject` refuses the append.
//!   Segments whose newest entry is older than `ttl` are deleted and counted as dropped too.

use crate::Error;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use stratum_core::Cause;
use stratum_core::ir::{BufferPolicy, WhenFull};

const HEADER: usize = 4 + 4 + 8 + 8;
/// The largest entry accepted (a batch of records).
pub const MAX_ENTRY_BYTES: usize = 64 << 20;

/// When appended entries are forced to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// `fdatasync` before `append` returns (the default).
    EveryAppend,
    /// Leave it to the operating system (survives a process crash, not a power cut).
    Never,
}

/// How a log is bounded and synced.
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// The most it holds, in bytes.
    pub max_bytes: u64,
    /// How long an entry may wait before it is dropped, if at all.
    pub ttl: Option<Duration>,
    /// What an append to a full log does.
    pub when_full: WhenFull,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// When appends are synced to disk.
    pub sync: SyncPolicy,
}

impl LogOptions {
    /// Options for a buffer of at most `max_bytes`, with segments of an eighth of it (between 64 KiB and 64 MiB).
    pub fn bounded(max_bytes: u64, when_full: WhenFull) -> LogOptions {
        LogOptions {
            max_bytes,
            ttl: None,
            when_full,
            segment_bytes: (max_bytes / 8).clamp(64 << 10, 64 << 20),
            sync: SyncPolicy::EveryAppend,
        }
    }

    /// Options for the buffer a source declares (`buffer { max = 512 MiB  ttl = 6 h  when_full = drop_oldest }`).
    pub fn from_policy(policy: &BufferPolicy) -> LogOptions {
        LogOptions {
            ttl: Some(Duration::from_secs_f64(policy.ttl.0.max(0.0))),
            ..LogOptions::bounded(policy.max.0, policy.when_full)
        }
    }
}

/// One entry read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its sequence number in the log.
    pub sequence: u64,
    /// Milliseconds since the epoch when it was appended.
    pub time: i64,
    /// Its bytes.
    pub payload: Vec<u8>,
}

#[derive(Debug)]
struct Segment {
    first: u64,
    /// One past the sequence number of its last entry.
    end: u64,
    bytes: u64,
    path: PathBuf,
    /// When its newest entry was appended (ms since the epoch).
    newest: i64,
}

/// Where the next sequential read continues: (sequence, segment first sequence, byte offset).
type Cursor = (u64, u64, u64);

/// A durable, bounded, segmented log of entries (see the module documentation).
pub struct Log {
    directory: PathBuf,
    options: LogOptions,
    segments: VecDeque<Segment>,
    active: Option<File>,
    next: u64,
    /// Every entry before this one is acknowledged.
    acknowledged: u64,
    dropped: u64,
    cursor: Option<Cursor>,
    /// Made when the log's directory was: a log made again under the same name (a path's log removed once
    /// adopted, and the path back later) numbers its entries from the start again, and a receiver must not take
    /// them for the entries of the one before.
    id: String,
}

/// An append refused because the log is full and its policy is `reject`.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

impl Log {
    /// Opens (or creates) the log in `directory`, recovering from a crash if there was one.
    pub fn open(directory: &Path, options: LogOptions) -> Result<Log, Error> {
        let error = |source: std::io::Error| Error::Log { path: directory.to_path_buf(), source: source.into() };
        std::fs::create_dir_all(directory).map_err(error)?;
        let mut firsts: Vec<u64> = Vec::new();
        for entry in std::fs::read_dir(directory).map_err(error)? {
            let entry = entry.map_err(error)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(first) = name.strip_suffix(".segment").and_then(|stem| stem.parse::<u64>().ok()) {
                firsts.push(first);
            } else if name.ends_with(".tmp") {
                // A replacement of the acknowledged file that a crash interrupted.
                std::fs::remove_file(entry.path()).ok();
            }
        }
        firsts.sort_unstable();
        let acknowledged = read_acknowledged(&directory.join("acknowledged")).map_err(error)?;
        let mut segments = VecDeque::new();
        for (index, first) in firsts.iter().enumerate() {
            let path = segment_path(directory, *first);
            let metadata = std::fs::metadata(&path).map_err(error)?;
            let newest = metadata
                .modified()
                .ok()
                .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |elapsed| elapsed.as_millis() as i64);
            let end = firsts.get(index + 1).copied().unwrap_or(*first);
            segments.push_back(Segment { first: *first, end, bytes: metadata.len(), path, newest });
        }
        // The newest segment: find its end and cut a torn tail.
        if let Some(last) = segments.back_mut() {
            let (end, valid_bytes, newest) = scan(&last.path, last.first).map_err(error)?;
            if valid_bytes < last.bytes {
                tracing::warn!(path = %last.path.display(), cut = last.bytes - valid_bytes, "cutting a torn tail after a crash");
                let file = OpenOptions::new().write(true).open(&last.path).map_err(error)?;
                file.set_len(valid_bytes).map_err(error)?;
                file.sync_all().map_err(error)?;
            }
            last.end = end;
            last.bytes = valid_bytes;
            if newest != 0 {
                last.newest = newest;
            }
        }
        let next = segments.back().map_or(acknowledged, |last| last.end.max(acknowledged));
        let id = log_id(directory).map_err(error)?;
        let mut log = Log {
            directory: directory.to_path_buf(),
            options,
            segments,
            active: None,
            next,
            acknowledged,
            dropped: 0,
            cursor: None,
            id,
        };
        log.delete_acknowledged_segments()?;
        Ok(log)
    }

    /// Which log this is, among the logs ever made under its directory's name.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn error(&self, source: impl Into<Cause>) -> Error {
        Error::Log { path: self.directory.clone(), source: source.into() }
    }

    /// Appends one entry and returns its sequence number; `Ok(Err(Full))` when the log is full and rejects.
    pub fn append(&mut self, payload: &[u8], time: i64) -> Result<Result<u64, Full>, Error> {
        if payload.len() > MAX_ENTRY_BYTES {
            return Err(self
                .error(format!("an entry of {} bytes is larger than the limit of {MAX_ENTRY_BYTES}", payload.len())));
        }
        let size = (HEADER + payload.len()) as u64;
        while self.bytes() + size > self.options.max_bytes {
            match self.options.when_full {
                WhenFull::Reject => return Ok(Err(Full)),
                WhenFull::DropOldest => {
                    if self.segments.len() <= 1 && self.segments.front().is_none_or(|segment| segment.bytes == 0) {
                        // Nothing left to drop: the entry alone is larger than the log.
                        return Ok(Err(Full));
                    }
                    if !self.drop_oldest_segment()? {
                        return Ok(Err(Full));
                    }
                }
            }
        }
        let needs_new_segment = match self.segments.back() {
            None => true,
            Some(last) => last.bytes > 0 && last.bytes + size > self.options.segment_bytes,
        };
        if needs_new_segment || self.active.is_none() {
            self.start_segment(needs_new_segment)?;
        }
        let sequence = self.next;
        let mut buffer = Vec::with_capacity(size as usize);
        buffer.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buffer.extend_from_slice(&[0; 4]);
        buffer.extend_from_slice(&sequence.to_le_bytes());
        buffer.extend_from_slice(&time.to_le_bytes());
        buffer.extend_from_slice(payload);
        let checksum = crc32c(&buffer[8..]);
        buffer[4..8].copy_from_slice(&checksum.to_le_bytes());
        let sync = self.options.sync == SyncPolicy::EveryAppend;
        let Some(last) = self.segments.back_mut() else { return Err(self.error("no segment to append to")) };
        let Some(file) = self.active.as_mut() else { return Err(self.error("no segment open for appending")) };
        let written = file.write_all(&buffer).and_then(|()| if sync { file.sync_data() } else { Ok(()) });
        if let Err(error) = written {
            // Cut what a failed write left (a disk that filled up), so that later entries do not follow a torn one.
            file.set_len(last.bytes).ok();
            // A disk full before the log is: a log that drops its oldest data when full makes room the same way
            // (while it has a segment before the one it writes).
            if error.kind() == std::io::ErrorKind::StorageFull
                && self.options.when_full == WhenFull::DropOldest
                && self.segments.len() > 1
                && self.drop_oldest_segment()?
            {
                return self.append(payload, time);
            }
            return Err(self.error(error));
        }
        last.bytes += size;
        last.end = sequence + 1;
        last.newest = time;
        self.next = sequence + 1;
        Ok(Ok(sequence))
    }

    fn start_segment(&mut self, new: bool) -> Result<(), Error> {
        if new {
            if let Some(file) = self.active.take() {
                file.sync_all().map_err(|e| self.error(e))?;
            }
            let path = segment_path(&self.directory, self.next);
            self.segments.push_back(Segment { first: self.next, end: self.next, bytes: 0, path, newest: 0 });
        }
        let path = self.segments.back().map(|segment| segment.path.clone()).ok_or_else(|| self.error("no segment"))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| self.error(format!("{}: {e}", path.display())))?;
        if new {
            // Make the new file's name durable, so that recovery finds it.
            if let Ok(directory) = File::open(&self.directory) {
                directory.sync_all().ok();
            }
        }
        self.active = Some(file);
        Ok(())
    }

    /// Deletes the oldest segment, counting its unacknowledged entries as dropped. False when only the segment
    /// being written is left.
    fn drop_oldest_segment(&mut self) -> Result<bool, Error> {
        if self.segments.len() <= 1 {
            // The only segment is the one being written: start a new one so the old one can go.
            if self.segments.front().is_some_and(|segment| segment.bytes > 0) {
                self.start_segment(true)?;
            } else {
                return Ok(false);
            }
        }
        let Some(oldest) = self.segments.pop_front() else { return Ok(false) };
        let lost = oldest.end.saturating_sub(oldest.first.max(self.acknowledged));
        self.dropped += lost;
        self.acknowledged = self.acknowledged.max(oldest.end);
        std::fs::remove_file(&oldest.path).map_err(|e| self.error(e))?;
        if lost > 0 {
            tracing::warn!(path = %self.directory.display(), lost, "buffer full: dropped the oldest entries");
        }
        self.cursor = None;
        self.write_acknowledged()?;
        Ok(true)
    }

    /// Deletes segments whose newest entry is older than the ttl.
    pub fn expire(&mut self, now: i64) -> Result<u64, Error> {
        let Some(ttl) = self.options.ttl else { return Ok(0) };
        let before = self.dropped;
        while self
            .segments
            .front()
            .is_some_and(|segment| segment.bytes > 0 && now - segment.newest > ttl.as_millis() as i64)
        {
            if !self.drop_oldest_segment()? {
                break;
            }
        }
        Ok(self.dropped - before)
    }

    /// Up to `max_entries` entries (and about `max_bytes`) from sequence `from` on, in order.
    pub fn read(&mut self, from: u64, max_entries: usize, max_bytes: usize) -> Result<Vec<Entry>, Error> {
        let from = from.max(self.acknowledged).max(self.segments.front().map_or(0, |segment| segment.first));
        let mut entries = Vec::new();
        let mut bytes = 0;
        let Some(mut index) = self.segments.iter().position(|segment| segment.first <= from && from < segment.end)
        else {
            return Ok(entries);
        };
        let mut sequence = from;
        while index < self.segments.len() && entries.len() < max_entries && bytes < max_bytes {
            let segment = &self.segments[index];
            let offset = match self.cursor {
                Some((at, first, offset)) if at == sequence && first == segment.first => offset,
                _ => 0,
            };
            let mut file = BufReader::new(File::open(&segment.path).map_err(|e| self.error(e))?);
            file.seek(SeekFrom::Start(offset)).map_err(|e| self.error(e))?;
            let mut position = offset;
            loop {
                if position >= segment.bytes || entries.len() >= max_entries || bytes >= max_bytes {
                    break;
                }
                let Some((entry, size)) = read_entry(&mut file).map_err(|e| self.error(e))? else { break };
                position += size;
                if entry.sequence >= sequence {
                    bytes += entry.payload.len();
                    sequence = entry.sequence + 1;
                    entries.push(entry);
                }
            }
            self.cursor = Some((sequence, segment.first, position));
            if sequence < segment.end {
                break;
            }
            index += 1;
        }
        Ok(entries)
    }

    /// Marks every entry up to and including `sequence` as delivered, durably, and deletes segments that hold
    /// nothing else.
    pub fn acknowledge(&mut self, sequence: u64) -> Result<(), Error> {
        let acknowledged = (sequence + 1).min(self.next);
        if acknowledged <= self.acknowledged {
            return Ok(());
        }
        self.acknowledged = acknowledged;
        self.write_acknowledged()?;
        self.delete_acknowledged_segments()
    }

    fn write_acknowledged(&self) -> Result<(), Error> {
        let path = self.directory.join("acknowledged");
        let temporary = self.directory.join("acknowledged.tmp");
        let mut bytes = self.acknowledged.to_le_bytes().to_vec();
        bytes.extend_from_slice(&crc32c(&bytes).to_le_bytes());
        let mut file = File::create(&temporary).map_err(|e| self.error(e))?;
        file.write_all(&bytes).map_err(|e| self.error(e))?;
        if self.options.sync == SyncPolicy::EveryAppend {
            file.sync_data().map_err(|e| self.error(e))?;
        }
        std::fs::rename(&temporary, &path).map_err(|e| self.error(e))
    }

    fn delete_acknowledged_segments(&mut self) -> Result<(), Error> {
        // The segment being written stays even when all of it is acknowledged.
        while self.segments.len() > 1 && self.segments.front().is_some_and(|segment| segment.end <= self.acknowledged) {
            if let Some(segment) = self.segments.pop_front() {
                std::fs::remove_file(&segment.path).map_err(|e| self.error(e))?;
            }
        }
        Ok(())
    }

    /// The sequence number the next append gets.
    pub fn next_sequence(&self) -> u64 {
        self.next
    }

    /// The first entry not yet acknowledged.
    pub fn first_unacknowledged(&self) -> u64 {
        self.acknowledged
    }

    /// Entries waiting for acknowledgement.
    pub fn pending(&self) -> u64 {
        self.next - self.acknowledged
    }

    /// Entries dropped by the full-buffer policy or the ttl since the log was opened.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes on disk in segments.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|segment| segment.bytes).sum()
    }

    /// How many segment files it has.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

fn segment_path(directory: &Path, first: u64) -> PathBuf {
    directory.join(format!("{first:020}.segment"))
}

fn read_acknowledged(path: &Path) -> std::io::Result<u64> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() == 12 && crc32c(&bytes[..8]).to_le_bytes() == bytes[8..12] => {
            Ok(u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default()))
        }
        Ok(_) => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "the acknowledged file is damaged")),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(error),
    }
}

/// Reads one entry; `None` at the end or at a torn or corrupt entry. Returns the entry and its size on disk.
fn read_entry(reader: &mut impl Read) -> std::io::Result<Option<(Entry, u64)>> {
    let mut header = [0u8; HEADER];
    if !read_fully(reader, &mut header)? {
        return Ok(None);
    }
    let length = u32::from_le_bytes(header[0..4].try_into().unwrap_or_default()) as usize;
    let checksum = u32::from_le_bytes(header[4..8].try_into().unwrap_or_default());
    if length > MAX_ENTRY_BYTES {
        return Ok(None);
    }
    let mut payload = vec![0u8; length];
    if !read_fully(reader, &mut payload)? {
        return Ok(None);
    }
    let mut covered = crc32c_update(!0, &header[8..]);
    covered = crc32c_update(covered, &payload);
    if !covered != checksum {
        return Ok(None);
    }
    let sequence = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
    let time = i64::from_le_bytes(header[16..24].try_into().unwrap_or_default());
    Ok(Some((Entry { sequence, time, payload }, (HEADER + length) as u64)))
}

/// Fills `buffer`; false when the input ends first.
fn read_fully(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => return Ok(false),
            Ok(count) => filled += count,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(true)
}

/// Scans a segment: (one past its last valid sequence, bytes of valid entries, time of its newest entry).
fn scan(path: &Path, first: u64) -> std::io::Result<(u64, u64, i64)> {
    let mut reader = BufReader::new(File::open(path)?);
    let (mut end, mut valid, mut newest) = (first, 0u64, 0i64);
    while let Some((entry, size)) = read_entry(&mut reader)? {
        if entry.sequence != end {
            break;
        }
        end = entry.sequence + 1;
        valid += size;
        newest = entry.time;
    }
    Ok((end, valid, newest))
}

/// CRC-32C (Castagnoli), the checksum of iSCSI, ext4 and Kafka's record batches.
pub fn crc32c(bytes: &[u8]) -> u32 {
    !crc32c_update(!0, bytes)
}

fn crc32c_update(mut crc: u32, bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut index = 0;
        while index < 256 {
            let mut value = index as u32;
            let mut bit = 0;
            while bit < 8 {
                value = if value & 1 != 0 { (value >> 1) ^ 0x82F6_3B78 } else { value >> 1 };
                bit += 1;
            }
            table[index] = value;
            index += 1;
        }
        table
    };
    for byte in bytes {
        crc = TABLE[((crc ^ u32::from(*byte)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

/// The log's id, kept in `DIRECTORY/id`; made (16 random bytes, hex) with the directory.
fn log_id(directory: &Path) -> std::io::Result<String> {
    let path = directory.join("id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    let id = stratum_core::bytes::hex(&bytes);
    let temporary = directory.join("id.tmp");
    let mut file = File::create(&temporary)?;
    file.write_all(id.as_bytes())?;
    file.sync_data()?;
    std::fs::rename(&temporary, &path)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    fn options(max_bytes: u64, when_full: WhenFull) -> LogOptions {
        LogOptions { segment_bytes: 200, ..LogOptions::bounded(max_bytes, when_full) }
    }

    #[test]
    fn entries_come_back_in_order_and_acknowledged_segments_are_deleted() {
        let directory = tempfile::tempdir().unwrap();
        let mut log = Log::open(directory.path(), options(1 << 20, WhenFull::Reject)).unwrap();
        for index in 0..50u64 {
            assert_eq!(log.append(format!("event {index}").as_bytes(), 1000 + index as i64).unwrap(), Ok(index));
        }
        assert!(log.segment_count() > 3);
        let read = log.read(0, 100, usize::MAX).unwrap();
        assert_eq!(read.len(), 50);
        assert!(read.iter().enumerate().all(
            |(index, entry)| entry.sequence == index as u64 && entry.payload == format!("event {index}").as_bytes()
        ));
        // Reading in small steps continues where the last read stopped.
        let mut sequence = 0;
        let mut pieces = Vec::new();
        while let Some(last) =
            log.read(sequence, 7, usize::MAX).unwrap().into_iter().inspect(|entry| pieces.push(entry.sequence)).last()
        {
            sequence = last.sequence + 1;
        }
        assert_eq!(pieces, (0..50).collect::<Vec<_>>());
        log.acknowledge(39).unwrap();
        assert_eq!(log.read(0, 100, usize::MAX).unwrap().first().map(|entry| entry.sequence), Some(40));
        let segments = log.segment_count();
        drop(log);
        let mut reopened = Log::open(directory.path(), options(1 << 20, WhenFull::Reject)).unwrap();
        assert_eq!(reopened.segment_count(), segments);
        assert_eq!(reopened.first_unacknowledged(), 40);
        assert_eq!(reopened.next_sequence(), 50);
        assert_eq!(reopened.read(0, 100, usize::MAX).unwrap().len(), 10);
    }

    #[test]
    fn a_torn_tail_is_cut_on_reopen() {
        let directory = tempfile::tempdir().unwrap();
        let mut log = Log::open(directory.path(), options(1 << 20, WhenFull::Reject)).unwrap();
        for index in 0..3u64 {
            log.append(&[index as u8; 10], 0).unwrap().unwrap();
        }
        drop(log);
        let segment = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|e| e == "segment"))
            .unwrap();
        let length = std::fs::metadata(&segment).unwrap().len();
        OpenOptions::new().write(true).open(&segment).unwrap().set_len(length - 3).unwrap();
        let mut log = Log::open(directory.path(), options(1 << 20, WhenFull::Reject)).unwrap();
        assert_eq!(log.next_sequence(), 2);
        assert_eq!(log.append(b"after", 0).unwrap(), Ok(2));
        assert_eq!(
            log.read(0, 10, usize::MAX).unwrap().iter().map(|entry| entry.sequence).collect::<Vec<_>>(),
            [0, 1, 2]
        );
    }

    #[test]
    fn a_full_log_rejects_or_drops_the_oldest_and_counts_them() {
        let directory = tempfile::tempdir().unwrap();
        let mut rejecting = Log::open(&directory.path().join("reject"), options(1000, WhenFull::Reject)).unwrap();
        let accepted = (0..100).filter(|_| rejecting.append(&[7; 76], 0).unwrap().is_ok()).count();
        assert_eq!(accepted, 10, "1000 bytes hold ten 100-byte entries");
        assert!(rejecting.bytes() <= 1000);

        let mut dropping = Log::open(&directory.path().join("drop"), options(1000, WhenFull::DropOldest)).unwrap();
        for index in 0..100u64 {
            dropping.append(&index.to_le_bytes().repeat(10)[..76], 0).unwrap().unwrap();
        }
        assert!(dropping.bytes() <= 1000);
        let kept = dropping.read(0, 1000, usize::MAX).unwrap();
        assert_eq!(kept.last().unwrap().sequence, 99, "the newest entries stay");
        assert_eq!(dropping.dropped() + kept.len() as u64, 100, "every entry is either kept or counted as dropped");
        assert!(kept.windows(2).all(|pair| pair[1].sequence == pair[0].sequence + 1));
    }

    #[test]
    fn a_sources_buffer_policy_becomes_log_options() {
        let policy = BufferPolicy {
            max: stratum_core::units::ByteSize(512 << 20),
            ttl: stratum_core::units::Duration(6.0 * 3600.0),
            when_full: WhenFull::DropOldest,
        };
        let options = LogOptions::from_policy(&policy);
        assert_eq!(
            (options.max_bytes, options.when_full, options.ttl),
            (512 << 20, WhenFull::DropOldest, Some(Duration::from_secs(6 * 3600)))
        );
        assert_eq!(options.segment_bytes, 64 << 20);
        assert_eq!(options.sync, SyncPolicy::EveryAppend);
    }

    #[test]
    fn segments_older_than_the_ttl_expire() {
        let directory = tempfile::tempdir().unwrap();
        let mut log = Log::open(
            directory.path(),
            LogOptions { ttl: Some(Duration::from_secs(60)), ..options(1 << 20, WhenFull::Reject) },
        )
        .unwrap();
        for index in 0..20 {
            log.append(&[1; 50], index * 10_000).unwrap().unwrap();
        }
        let expired = log.expire(200_000).unwrap();
        assert!(expired > 0);
        let left = log.read(0, 100, usize::MAX).unwrap();
        assert_eq!(expired + left.len() as u64, 20);
        assert!(
            left.iter().all(|entry| 200_000 - entry.time <= 60_000 + 30_000),
            "only segments with recent entries remain"
        );
    }
}
