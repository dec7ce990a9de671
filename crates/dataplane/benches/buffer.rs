//! Store-and-forward throughput and recovery: appends 1 GiB to the durable log in 64 KiB entries (what a batch
//! of about 500 records encodes to) with each sync policy, then measures how long reopening it after a crash
//! takes (the process ends without closing the log; nothing is acknowledged), and how long forwarding all of it
//! to a receiver on loopback takes.
//!
//! Run: `cargo bench -p stratum-dataplane --bench buffer` (set STRATUM_BUFFER_BENCH_MIB for another size).

use std::time::Instant;
use stratum_core::ir::WhenFull;
use stratum_dataplane::log::{Log, LogOptions, SyncPolicy};

fn main() {
    let mebibytes: u64 =
        std::env::var("STRATUM_BUFFER_BENCH_MIB").ok().and_then(|text| text.parse().ok()).unwrap_or(1024);
    let entry = vec![0x5Au8; 64 << 10];
    let entries = mebibytes * 16;
    for (name, sync) in
        [("every append (fdatasync)", SyncPolicy::EveryAppend), ("never (page cache)", SyncPolicy::Never)]
    {
        let directory =
            tempfile::tempdir_in(std::env::var("STRATUM_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into())).unwrap();
        let options = LogOptions { sync, ..LogOptions::bounded((2 * mebibytes) << 20, WhenFull::Reject) };
        let mut log = Log::open(directory.path(), options.clone()).unwrap();
        let started = Instant::now();
        for index in 0..entries {
            log.append(&entry, index as i64).unwrap().unwrap();
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "append, sync {name}: {mebibytes} MiB in {seconds:.2} s = {:.0} MB/s, {:.0} appends/s",
            (mebibytes << 20) as f64 / 1e6 / seconds,
            entries as f64 / seconds
        );
        // A crash: the log is not closed, nothing was acknowledged.
        std::mem::forget(log);
        let started = Instant::now();
        let mut reopened = Log::open(directory.path(), options).unwrap();
        let recovery = started.elapsed().as_secs_f64();
        assert_eq!(reopened.pending(), entries);
        println!("recovery with {mebibytes} MiB buffered: {:.3} s", recovery);
        let started = Instant::now();
        let mut sequence = 0;
        let mut read = 0u64;
        loop {
            let batch = reopened.read(sequence, 256, 16 << 20).unwrap();
            let Some(last) = batch.last() else { break };
            sequence = last.sequence + 1;
            read += batch.iter().map(|entry| entry.payload.len() as u64).sum::<u64>();
            reopened.acknowledge(last.sequence).unwrap();
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "read and acknowledge everything: {:.0} MB/s; {} segment(s) left",
            read as f64 / 1e6 / seconds,
            reopened.segment_count()
        );
    }
}
