//! A log on a disk that fills up before the log does: one that drops its oldest data when full makes room on the
//! disk the same way, instead of failing its path; one that rejects says the disk is full. Needs root (the
//! mount): CI's external stage runs it.

use stratum_core::ir::WhenFull;
use stratum_dataplane::log::{Log, LogOptions};

#[test]
#[ignore = "needs root to mount a tmpfs; CI's external stage runs it"]
fn a_full_disk_makes_a_drop_oldest_log_drop_its_oldest_data() {
    let folder = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("log_disk_full");
    let _mount = stratum_test_support::Tmpfs::mount(&folder, "1m");
    // Bounded at 64 MiB, on a disk of 1 MiB: the disk fills first.
    let options = LogOptions { segment_bytes: 64 << 10, ..LogOptions::bounded(64 << 20, WhenFull::DropOldest) };
    let mut log = Log::open(&folder.join("dropping"), options).unwrap();
    let payload = vec![7u8; 4 << 10];
    for entry in 0..1_000u64 {
        let appended = log.append(&payload, entry as i64).unwrap_or_else(|error| panic!("entry {entry}: {error}"));
        assert_eq!(appended.ok(), Some(entry), "entry {entry} appended");
    }
    assert!(log.dropped() > 0, "4 MB written on a 1 MiB disk: the oldest went");
    // The newest entries are all there.
    let newest = log.read(990, 100, 1 << 20).unwrap();
    assert_eq!(newest.iter().map(|entry| entry.sequence).collect::<Vec<_>>(), (990..1_000).collect::<Vec<_>>());
    drop(log);

    // A log that rejects when full does not drop what it holds: the full disk is an error that says so.
    std::fs::remove_dir_all(folder.join("dropping")).unwrap();
    let options = LogOptions { segment_bytes: 64 << 10, ..LogOptions::bounded(64 << 20, WhenFull::Reject) };
    let mut log = Log::open(&folder.join("rejecting"), options).unwrap();
    let error = (0..1_000).find_map(|entry| log.append(&payload, entry).err()).expect("the disk filled up");
    assert!(error.to_string().contains("No space left") || format!("{error:?}").contains("StorageFull"), "{error}");
    assert_eq!(log.dropped(), 0);
}
