//! Property tests of the store-and-forward log: random appends, acknowledgements, reads, crashes (with torn
//! writes) and reopenings, checked against a model of what must be there.

use proptest::prelude::*;
use std::collections::VecDeque;
use std::io::Write;
use stratum_core::ir::WhenFull;
use stratum_dataplane::log::{Log, LogOptions};

#[derive(Clone, Debug)]
enum Operation {
    Append(usize),
    /// Acknowledge this fraction of what is pending.
    Acknowledge(f64),
    Read(usize),
    /// Close and open again.
    Reopen,
    /// A crash in the middle of an append: some bytes of an entry reach the file, then the process dies.
    TornAppend(usize),
}

fn operations() -> impl Strategy<Value = Vec<Operation>> {
    prop::collection::vec(
        prop_oneof![
            6 => (0usize..300).prop_map(Operation::Append),
            2 => (0.0f64..=1.0).prop_map(Operation::Acknowledge),
            2 => (1usize..20).prop_map(Operation::Read),
            1 => Just(Operation::Reopen),
            1 => (1usize..40).prop_map(Operation::TornAppend),
        ],
        1..120,
    )
}

fn options(max_bytes: u64, when_full: WhenFull) -> LogOptions {
    LogOptions { segment_bytes: 1024, ..LogOptions::bounded(max_bytes, when_full) }
}

fn payload(sequence: u64, size: usize) -> Vec<u8> {
    (0..size).map(|index| (sequence as usize * 31 + index) as u8).collect()
}

fn last_segment(directory: &std::path::Path) -> Option<std::path::PathBuf> {
    let mut segments: Vec<_> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "segment"))
        .collect();
    segments.sort();
    segments.pop()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// With room for everything, the log holds exactly the appended entries not yet acknowledged, in order,
    /// whatever crashes happen in between.
    #[test]
    fn nothing_acknowledged_to_a_producer_is_lost(operations in operations()) {
        let directory = tempfile::tempdir().unwrap();
        let mut log = Log::open(directory.path(), options(u64::MAX / 2, WhenFull::Reject)).unwrap();
        let mut model: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
        for operation in operations {
            match operation {
                Operation::Append(size) => {
                    let sequence = log.next_sequence();
                    let data = payload(sequence, size);
                    prop_assert_eq!(log.append(&data, 0).unwrap(), Ok(sequence));
                    model.push_back((sequence, data));
                }
                Operation::Acknowledge(fraction) => {
                    let count = (model.len() as f64 * fraction) as usize;
                    if count > 0 {
                        let (last, _) = model[count - 1];
                        log.acknowledge(last).unwrap();
                        model.drain(..count);
                    }
                }
                Operation::Read(count) => {
                    let from = log.first_unacknowledged();
                    let read = log.read(from, count, usize::MAX).unwrap();
                    let expected: Vec<_> = model.iter().take(count).cloned().collect();
                    prop_assert_eq!(read.into_iter().map(|entry| (entry.sequence, entry.payload)).collect::<Vec<_>>(), expected);
                }
                Operation::Reopen => {
                    drop(log);
                    log = Log::open(directory.path(), options(u64::MAX / 2, WhenFull::Reject)).unwrap();
                }
                Operation::TornAppend(bytes) => {
                    drop(log);
                    if let Some(segment) = last_segment(directory.path()) {
                        let mut file = std::fs::OpenOptions::new().append(true).open(segment).unwrap();
                        file.write_all(&vec![0xAB; bytes]).unwrap();
                    }
                    log = Log::open(directory.path(), options(u64::MAX / 2, WhenFull::Reject)).unwrap();
                }
            }
            let all = log.read(0, usize::MAX, usize::MAX).unwrap();
            prop_assert_eq!(all.into_iter().map(|entry| (entry.sequence, entry.payload)).collect::<Vec<_>>(), model.iter().cloned().collect::<Vec<_>>());
        }
    }

    /// A bounded log that drops its oldest entries keeps a contiguous run of the newest ones, stays within its
    /// size, and counts every entry it dropped.
    #[test]
    fn a_full_log_drops_only_the_oldest_and_counts_them(sizes in prop::collection::vec(0usize..200, 1..200), reopen_every in 5usize..50) {
        let directory = tempfile::tempdir().unwrap();
        let limit = 4096;
        let mut log = Log::open(directory.path(), options(limit, WhenFull::DropOldest)).unwrap();
        let mut dropped = 0;
        for (index, size) in sizes.iter().enumerate() {
            let sequence = log.next_sequence();
            prop_assert_eq!(log.append(&payload(sequence, *size), 0).unwrap(), Ok(sequence));
            prop_assert!(log.bytes() <= limit);
            if index % reopen_every == 0 {
                dropped += log.dropped();
                drop(log);
                log = Log::open(directory.path(), options(limit, WhenFull::DropOldest)).unwrap();
            }
        }
        dropped += log.dropped();
        let kept = log.read(0, usize::MAX, usize::MAX).unwrap();
        prop_assert_eq!(kept.last().map(|entry| entry.sequence), Some(sizes.len() as u64 - 1));
        prop_assert!(kept.windows(2).all(|pair| pair[1].sequence == pair[0].sequence + 1));
        prop_assert_eq!(dropped + kept.len() as u64, sizes.len() as u64);
        for entry in kept {
            prop_assert_eq!(&entry.payload, &payload(entry.sequence, sizes[entry.sequence as usize]));
        }
    }
}
