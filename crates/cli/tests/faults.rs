//! The fault suite, with real processes: `stratum up` killed with SIGKILL at random moments while clients push
//! readings over HTTP. Every reading answered 200 must be in the sink's file and counted by the windowed stream
//! once the application runs again; readings sent again after a crash may be there twice (at least once).

mod common;

use common::free_port;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Readings per push.
const PER_PUSH: u64 = 100;
const CLIENTS: usize = 4;
const KILLS: usize = 3;

fn app(port: u16) -> String {
    format!(
        r#"app ingest
node laptop {{ tier = cloud  cpu = 2  memory = 4 GiB }}
schema Reading {{ id: int  sensor: string  ts: timestamp }}
source readings: http {{ path = "/readings"  port = {port}  schema = Reading }}
stream per_sensor {{
  from = readings
  window = tumbling(1 d) by sensor
  select {{ n = count() }}
}}
sink raw: jsonl {{ from = readings  path = "out/raw.jsonl" }}
sink counts: jsonl {{ from = per_sensor  path = "out/counts.jsonl" }}
"#
    )
}

/// One push over a fresh connection: its status, or `None` when nothing answered (refused, reset by a kill).
fn push(port: u16, body: &str) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let request = format!(
        "POST /readings HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

/// Clients pushing readings with unique ids until told to stop; the ids answered 200 go to `acknowledged`.
fn clients(
    port: u16,
    next_id: &Arc<AtomicU64>,
    acknowledged: &Arc<Mutex<Vec<u64>>>,
    latencies: &Arc<Mutex<Vec<Duration>>>,
) -> (Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let threads = (0..CLIENTS)
        .map(|client| {
            let (stop, next_id, acknowledged) = (stop.clone(), next_id.clone(), acknowledged.clone());
            let latencies = latencies.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let first = next_id.fetch_add(PER_PUSH, Ordering::Relaxed);
                    let ids: Vec<u64> = (first..first + PER_PUSH).collect();
                    let body: String = ids
                        .iter()
                        .map(|id| {
                            format!(r#"{{"id": {id}, "sensor": "s{client}", "ts": "2026-01-01T00:00:00Z"}}"#) + "\n"
                        })
                        .collect();
                    let sent = Instant::now();
                    match push(port, &body) {
                        Some(200) => {
                            latencies.lock().unwrap().push(sent.elapsed());
                            acknowledged.lock().unwrap().extend(ids);
                        }
                        Some(_) => {}
                        None => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        })
        .collect();
    (stop, threads)
}

fn up(folder: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stratum"));
    command
        .args(["up", "ingest.stratum", "--live", "--api", &format!("127.0.0.1:{}", free_port())])
        .args(extra)
        .current_dir(folder)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[test]
fn no_acknowledged_push_is_lost_when_up_is_killed_at_random_moments() {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults_sigkill_http");
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let port = free_port();
    std::fs::write(folder.join("ingest.stratum"), app(port)).unwrap();
    let (next_id, acknowledged) = (Arc::new(AtomicU64::new(0)), Arc::new(Mutex::new(Vec::new())));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    // The moments are random, and printed, so that a failure can be told apart from the next run's.
    let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    for kill in 0..KILLS {
        let mut running = up(&folder, &[]).spawn().unwrap();
        let (stop, threads) = clients(port, &next_id, &acknowledged, &latencies);
        // Wait until pushes are being answered, then kill at a random moment within the next 3 s.
        let before = acknowledged.lock().unwrap().len();
        let started = Instant::now();
        while acknowledged.lock().unwrap().len() == before {
            assert!(started.elapsed() < Duration::from_secs(60), "no push was answered 200 (kill {kill})");
            std::thread::sleep(Duration::from_millis(20));
        }
        let moment = Duration::from_millis((seed.wrapping_mul(kill as u64 + 7) >> 3) % 3000);
        eprintln!("kill {kill}: {} ms after the first answer", moment.as_millis());
        std::thread::sleep(moment);
        running.kill().unwrap();
        running.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        threads.into_iter().for_each(|thread| thread.join().unwrap());
    }
    // Once more, without clients, to an end: streams emit what their checkpoints held.
    let last = up(&folder, &["--for", "3s"]).output().unwrap();
    assert_eq!(last.status.code(), Some(0), "{}", String::from_utf8_lossy(&last.stderr));

    let acknowledged: BTreeSet<u64> = acknowledged.lock().unwrap().iter().copied().collect();
    let stored: Vec<u64> =
        json_lines(&folder.join("out/raw.jsonl")).iter().map(|r| r["id"].as_u64().unwrap()).collect();
    let distinct: BTreeSet<u64> = stored.iter().copied().collect();
    let lost: Vec<&u64> = acknowledged.difference(&distinct).collect();
    let counted: u64 = json_lines(&folder.join("out/counts.jsonl")).iter().map(|w| w["n"].as_u64().unwrap()).sum();
    eprintln!(
        "{KILLS} kills: {} readings acknowledged, {} stored ({} twice), {} counted, {} lost",
        acknowledged.len(),
        stored.len(),
        stored.len() - distinct.len(),
        counted,
        lost.len()
    );
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let at = |quantile: f64| latencies[((latencies.len() - 1) as f64 * quantile) as usize].as_millis();
    eprintln!("time to a 200 over {} pushes: median {} ms, p99 {} ms", latencies.len(), at(0.5), at(0.99));
    assert!(
        lost.is_empty(),
        "{} acknowledged readings were lost, such as {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(
        counted >= acknowledged.len() as u64,
        "the stream counted {counted} of {} acknowledged",
        acknowledged.len()
    );
}
