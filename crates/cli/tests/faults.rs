//! The fault suite, with real processes: `stratum up` killed with SIGKILL at random moments while clients push
//! readings over HTTP. Every reading answered 200 must be in the sink's file and counted by the windowed stream
//! once the application runs again; readings sent again after a crash may be there twice (at least once). Idle
//! connections that take every descriptor the process may open, and hostile requests (bodies too large or
//! nested too deeply, headers dripped a byte at a time), cost nothing answered 200 and need no one to restart it.

mod common;

use common::{alive, free_port, ingest_app, post, push, request, terminate, up_ingest};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Readings per push.
const PER_PUSH: u64 = 100;
const CLIENTS: usize = 4;
const KILLS: usize = 3;

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

/// A fresh folder holding the ingest application, and the port its HTTP source listens on.
fn ingest_folder(name: &str) -> (PathBuf, u16) {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let port = free_port();
    let source = format!(r#"source readings: http {{ path = "/readings"  port = {port}  schema = Reading }}"#);
    std::fs::write(folder.join("ingest.stratum"), ingest_app(&source)).unwrap();
    (folder, port)
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[test]
fn no_acknowledged_push_is_lost_when_up_is_killed_at_random_moments() {
    let (folder, port) = ingest_folder("faults_sigkill_http");
    let (next_id, acknowledged) = (Arc::new(AtomicU64::new(0)), Arc::new(Mutex::new(Vec::new())));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    // The moments are random, and printed, so that a failure can be told apart from the next run's.
    let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    for kill in 0..KILLS {
        let mut running = up_ingest(&folder, &[]).spawn().unwrap();
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
    let last = up_ingest(&folder, &["--for", "3s"]).output().unwrap();
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

#[test]
fn up_recovers_by_itself_when_idle_connections_take_every_descriptor() {
    // 256 descriptors for the whole process, and 300 connections that never send a request: the HTTP source's
    // server takes what it can, the kernel queues the rest. The server closes each after the header timeout
    // (10 s), and the same process answers pushes again; nothing it answered 200 is lost.
    let (folder, port) = ingest_folder("faults_descriptors");
    let api = free_port();
    let mut running = Command::new("sh")
        .args(["-c", &format!("ulimit -n 256 && exec \"$0\" up ingest.stratum --live --api 127.0.0.1:{api}")])
        .arg(env!("CARGO_BIN_EXE_stratum"))
        .current_dir(&folder)
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(folder.join("up.log")).unwrap()))
        .spawn()
        .unwrap();
    let (next_id, acknowledged) = (Arc::new(AtomicU64::new(0)), Arc::new(Mutex::new(Vec::new())));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let (stop, threads) = clients(port, &next_id, &acknowledged, &latencies);
    let answered = || acknowledged.lock().unwrap().len();
    let started = Instant::now();
    while answered() == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "no push was answered 200");
        std::thread::sleep(Duration::from_millis(20));
    }
    let idle: Vec<std::net::TcpStream> =
        (0..300).filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok()).collect();
    eprintln!("{} idle connections held", idle.len());
    std::thread::sleep(Duration::from_secs(12));
    drop(idle);
    // Pushes are answered 200 again, by the same process, with no one restarting it.
    let after_idle = answered();
    let recovered = Instant::now();
    while answered() < after_idle + 1_000 {
        assert!(alive(&mut running), "stratum up ended: {}", std::fs::read_to_string(folder.join("up.log")).unwrap());
        assert!(
            recovered.elapsed() < Duration::from_secs(90),
            "pushes were not answered again: {}",
            std::fs::read_to_string(folder.join("up.log")).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("answered again {:.1} s after the idle connections went", recovered.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    threads.into_iter().for_each(|thread| thread.join().unwrap());
    terminate(&mut running);

    let acknowledged: BTreeSet<u64> = acknowledged.lock().unwrap().iter().copied().collect();
    let stored: BTreeSet<u64> =
        json_lines(&folder.join("out/raw.jsonl")).iter().map(|r| r["id"].as_u64().unwrap()).collect();
    let lost = acknowledged.difference(&stored).count();
    eprintln!("{} readings acknowledged, {lost} lost", acknowledged.len());
    assert_eq!(lost, 0, "acknowledged readings were lost");
}

#[test]
fn hostile_requests_are_refused_and_the_servers_go_on_serving() {
    // Bodies too large, nested too deeply, and a client that sends its headers a byte at a time, to the HTTP
    // source: each is refused with a status that says why (or disconnected), and ordinary pushes are answered
    // after them by the same process. (The prediction route's bounds: crates/control/tests/predict_memory.rs.)
    let (folder, port) = ingest_folder("faults_hostile");
    let mut running = up_ingest(&folder, &[]).spawn().unwrap();
    let reading = br#"{"id": 1, "sensor": "s", "ts": "2026-01-01T00:00:00Z"}"#;
    let started = Instant::now();
    while request(port, &post("/readings", reading)).map(|(status, _)| status) != Some(200) {
        assert!(started.elapsed() < Duration::from_secs(60), "the HTTP source never answered");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Larger than the source takes (16 MiB): refused before it is read whole.
    let huge = vec![b' '; 17 << 20];
    let (status, _) = request(port, &post("/readings", &huge)).expect("an answer to a huge body");
    assert_eq!(status, 413);
    // Nested 100,000 deep: a parse error with its place, not a crashed process.
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (status, body) = request(port, &post("/readings", nested.as_bytes())).expect("an answer to a nested body");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("recursion limit") || body.contains("not JSON"), "{body}");
    let nested_object = format!("{}1{}", r#"{"a":"#.repeat(50_000), "}".repeat(50_000));
    let (status, body) =
        request(port, &post("/readings", nested_object.as_bytes())).expect("an answer to a nested object");
    assert_eq!(status, 400, "{body}");
    // Headers a byte at a time: the connection is closed at the header timeout (10 s), not held.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let dripped = Instant::now();
    let mut closed = false;
    for byte in b"POST /readings HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ".iter().cycle().take(40) {
        if slow.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    let mut rest = Vec::new();
    closed = closed || slow.read_to_end(&mut rest).is_ok();
    assert!(closed, "a client dripping its headers was not disconnected");
    assert!(dripped.elapsed() < Duration::from_secs(20), "held for {:?}", dripped.elapsed());

    // Ordinary pushes still answered, by the same process.
    assert_eq!(request(port, &post("/readings", reading)).map(|(status, _)| status), Some(200));
    assert!(alive(&mut running));
    terminate(&mut running);
}
