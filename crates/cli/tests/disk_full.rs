//! The fault suite's full disk: `stratum up` runs from a folder on a small tmpfs, clients push readings over HTTP
//! until the disk is full, then space comes back. While nothing can be made durable no push is answered 200; once
//! space is back the same process answers 200 again, by itself; and every reading answered 200 is in the sink's
//! file. Needs root (the mount): CI's external stage runs it.

mod common;

use common::{alive, free_port, push, terminate};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const APP: &str = r#"app ingest
node laptop { tier = cloud  cpu = 2  memory = 4 GiB }
schema Reading { id: int  sensor: string  ts: timestamp }
source readings: http { path = "/readings"  port = PORT  schema = Reading }
sink raw: jsonl { from = readings  path = "out/raw.jsonl" }
"#;

#[test]
#[ignore = "needs root to mount a tmpfs; CI's external stage runs it"]
fn a_full_disk_costs_no_acknowledged_push_and_heals_by_itself() {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("disk_full");
    let _mount = stratum_test_support::Tmpfs::mount(&folder, "4m");
    let port = free_port();
    std::fs::write(folder.join("ingest.stratum"), APP.replace("PORT", &port.to_string())).unwrap();
    // Most of the disk taken by a file the test removes later: what is left fills within seconds.
    std::fs::write(folder.join("filler"), vec![0u8; 3 << 20]).unwrap();
    let mut running = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["up", "ingest.stratum", "--live", "--api", &format!("127.0.0.1:{}", free_port())])
        .current_dir(&folder)
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(std::env::temp_dir().join("stratum-disk-full.log")).unwrap()))
        .spawn()
        .unwrap();

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let client = {
        let (acknowledged, refused, stop, next) = (acknowledged.clone(), refused.clone(), stop.clone(), next.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let first = next.fetch_add(100, Ordering::Relaxed);
                let body: String = (first..first + 100)
                    .map(|id| {
                        format!(r#"{{"id": {id}, "sensor": "s{}", "ts": "2026-01-01T00:00:00Z"}}"#, id % 7) + "\n"
                    })
                    .collect();
                match push(port, &body) {
                    Some(200) => acknowledged.lock().unwrap().extend(first..first + 100),
                    Some(_) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    None => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })
    };
    // Pushes are answered, then the disk fills and they are refused.
    let started = Instant::now();
    while refused.load(Ordering::Relaxed) == 0 {
        assert!(started.elapsed() < Duration::from_secs(120), "the disk never filled");
        assert!(alive(&mut running), "stratum up ended when the disk filled");
        std::thread::sleep(Duration::from_millis(100));
    }
    let at_full = acknowledged.lock().unwrap().len();
    std::thread::sleep(Duration::from_secs(3));
    assert!(alive(&mut running), "stratum up ended on a full disk");
    // Space comes back: the same process answers 200 again, with no one restarting it.
    std::fs::remove_file(folder.join("filler")).unwrap();
    let freed = Instant::now();
    while acknowledged.lock().unwrap().len() < at_full + 1_000 {
        assert!(freed.elapsed() < Duration::from_secs(120), "pushes were not answered again after space came back");
        assert!(alive(&mut running), "stratum up ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "answered again {:.1} s after space came back; {} pushes refused while full",
        freed.elapsed().as_secs_f64(),
        refused.load(Ordering::Relaxed)
    );
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    terminate(&mut running);

    let acknowledged: BTreeSet<u64> = acknowledged.lock().unwrap().iter().copied().collect();
    let stored: BTreeSet<u64> = std::fs::read_to_string(folder.join("out/raw.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok()?["id"].as_u64())
        .collect();
    let lost = acknowledged.difference(&stored).count();
    eprintln!("{} readings acknowledged, {lost} lost", acknowledged.len());
    assert_eq!(lost, 0, "acknowledged readings were lost to the full disk");
}
