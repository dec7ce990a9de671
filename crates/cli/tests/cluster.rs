//! Stratum across machines, as separate processes on loopback: a control plane and three agents (edge, fog, cloud)
//! run an application whose data flows edge → fog → cloud through store-and-forward paths, with a model (trained
//! into the control plane's store, pulled by the fog agent) predicting on every window. Killing the fog agent
//! (SIGKILL) moves its stream to the cloud within the agent timeout and the data flows again; when it comes back
//! the stream returns and what the edge buffered for it is delivered; killing and restarting the control plane
//! loses nothing: the agents keep running, and it knows the application and the agents again. An impostor agent
//! (the join token, a held name) is refused and stops; agents' own APIs take only their own keys.
//!
//! Everything crosses over TLS, as `stratum server` runs by default: agents join with the bare join token (they
//! trust the authority the server proves with it) or with the join string the server wrote (which pins the
//! authority by its hash); commands trust the authority the server proves with their token, or its certificate.
//! An agent given the hash of another authority, or a token the server cannot prove its authority with, refuses
//! to join. Training on agents runs with `--plain-http`, the development mode.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use stratum_test_support::free_port;

const APP: &str = include_str!("../../control/test_data/cluster.stratum");

/// The operator's token, the viewer's and the agents' join token: three roles, three secrets.
const TOKEN: &str = "test-secret";
const VIEWER: &str = "test-viewer";
const JOIN: &str = "test-join";

/// A child process killed (SIGKILL) when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stratum(arguments: &[&str], folder: &Path) -> Process {
    // Each process's messages, for reading after a failure: `agent-fog1.log`, `server.log`.
    let name = match arguments {
        ["agent", "--name", name, ..] => format!("agent-{name}"),
        [command, ..] => command.to_string(),
        [] => "stratum".into(),
    };
    let log = std::fs::OpenOptions::new().create(true).append(true).open(folder.join(format!("{name}.log"))).unwrap();
    Process(
        Command::new(env!("CARGO_BIN_EXE_stratum"))
            .args(arguments)
            .current_dir(folder)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("the stratum binary runs"),
    )
}

/// Where the server keeps its authority's certificate, relative to the test's folder; commands trust it.
const CA: &str = "server/tls/ca.pem";

fn server(folder: &Path, port: u16, plain_http: bool) -> Process {
    server_with_timeout(folder, port, plain_http, "2s")
}

fn server_with_timeout(folder: &Path, port: u16, plain_http: bool, agent_timeout: &str) -> Process {
    let plain: &[&str] = if plain_http { &["--plain-http"] } else { &[] };
    control_plane(folder, port, "server", agent_timeout, plain)
}

/// `stratum server` on `port` with its state in `state_dir`, the test's tokens, and `more` arguments.
fn control_plane(folder: &Path, port: u16, state_dir: &str, agent_timeout: &str, more: &[&str]) -> Process {
    let listen = format!("127.0.0.1:{port}");
    stratum(
        &[
            &[
                "server",
                "--listen",
                &listen,
                "--state-dir",
                state_dir,
                "--token",
                TOKEN,
                "--viewer-token",
                VIEWER,
                "--join-token",
                JOIN,
                "--agent-timeout",
                agent_timeout,
            ],
            more,
        ]
        .concat(),
        folder,
    )
}

/// The join string the server wrote: its authority's hash and the join token.
fn join_string(folder: &Path) -> String {
    let path = folder.join("server/join-string");
    wait_until("the server's join string", Duration::from_secs(20), || path.is_file());
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

/// A control plane over TLS with `file` (in `folder`) applied: the process and its URL.
fn serving(folder: &Path, file: &str) -> (Process, String) {
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let control = server(folder, port, false);
    wait_until("the control plane", Duration::from_secs(20), || status(folder, &url).is_some());
    let applied = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["apply", file, "--server", &url, "--token", TOKEN])
        .current_dir(folder)
        .output()
        .unwrap();
    assert_eq!(applied.status.code(), Some(0), "{}", String::from_utf8_lossy(&applied.stderr));
    (control, url)
}

/// An agent that joins with the bare join token (over TLS, it trusts the authority the server proves with it).
fn agent(folder: &Path, url: &str, name: &str) -> Process {
    let data_dir = format!("agents/{name}");
    let arguments = [
        "agent",
        "--name",
        name,
        "--server",
        url,
        "--join-token",
        JOIN,
        "--data-dir",
        &data_dir,
        "--api",
        "127.0.0.1:0",
    ];
    stratum(&arguments, folder)
}

/// A request over TLS to a loopback port whose certificate must name `identity` and come from the cluster's
/// authority in `folder`: (status, body).
fn https(
    folder: &Path,
    port: u16,
    identity: &str,
    request: (&str, &str),
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let authority = std::fs::read_to_string(folder.join(CA)).unwrap();
    let tls = stratum_dataplane::tls::ClientTls::new(&authority, identity).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().use_preconfigured_tls(tls.config()).build().unwrap();
        let url = format!("https://127.0.0.1:{port}{}", request.1);
        let method = reqwest::Method::from_bytes(request.0.as_bytes()).unwrap();
        let mut call = client.request(method, url).header("content-type", "application/json").body(body.to_string());
        if let Some(token) = token {
            call = call.bearer_auth(token);
        }
        match call.send().await {
            Ok(response) => (response.status().as_u16(), response.text().await.unwrap_or_default()),
            Err(error) => (0, error.to_string()),
        }
    })
}

/// A prediction through the control plane's gateway: (status, body).
fn predict(folder: &Path, port: u16, service: &str, body: &str) -> (u16, String) {
    let path = format!("/v1/services/{service}/predict");
    https(folder, port, stratum_dataplane::tls::SERVER_IDENTITY, ("POST", &path), None, body)
}

/// `stratum status`: over TLS it trusts the authority the server proves with the viewer's token.
fn status(folder: &Path, url: &str) -> Option<Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["status", "--server", url, "--token", VIEWER, "--format", "json"])
        .current_dir(folder)
        .output()
        .ok()?;
    serde_json::from_slice(&output.stdout).ok()
}

fn host_of(status: &Value, component: &str) -> Option<String> {
    status["placement"].as_array()?.iter().find(|placed| placed["component"] == component)?["host"]
        .as_str()
        .map(String::from)
}

fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn windows(kept: &Path) -> usize {
    std::fs::read_to_string(kept).map_or(0, |text| text.lines().count())
}

/// The kept windows as (sensor, window_end).
fn kept_windows(kept: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(kept)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|window| {
            (
                window["sensor"].as_str().unwrap_or("").to_string(),
                window["window_end"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The end of the latest window kept so far ("" when none).
fn last_window(kept: &Path) -> String {
    kept_windows(kept).into_iter().map(|(_, end)| end).max().unwrap_or_default()
}

/// The windows ending after `after` that were kept more than once.
fn windows_twice(kept: &Path, after: &str) -> Vec<(String, String)> {
    let mut seen = std::collections::BTreeMap::new();
    for window in kept_windows(kept).into_iter().filter(|(_, end)| end.as_str() > after) {
        *seen.entry(window).or_insert(0) += 1;
    }
    seen.into_iter().filter(|(_, count)| *count > 1).map(|(window, _)| window).collect()
}

/// A fresh folder with the cluster application and its model trained into the control plane's store.
fn cluster_folder(name: &str) -> PathBuf {
    let folder: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    // The edge also keeps every reading it makes: what the windows should count (the tests' ground truth).
    let app = format!("{APP}\nsink produced: jsonl {{ from = readings  path = \"out/readings.jsonl\"  on = edge }}\n");
    std::fs::write(folder.join("cluster.stratum"), app).unwrap();
    // The model's history: a window is busy above 100 readings.
    let history: String = std::iter::once("n,busy\n".to_string())
        .chain((0..200).map(|n| format!("{},{}\n", n * 2, n * 2 > 100)))
        .collect();
    std::fs::write(folder.join("history.csv"), history).unwrap();
    let trained = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["train", "cluster.stratum", "--store", "server/models"])
        .current_dir(&folder)
        .output()
        .unwrap();
    assert_eq!(trained.status.code(), Some(0), "{}", String::from_utf8_lossy(&trained.stderr));
    folder
}

/// Runs an agent that must be refused: it ends with an error; what it said.
fn refused_agent(folder: &Path, url: &str, name: &str, join_token: &str, data_dir: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["agent", "--name", name, "--server", url, "--join-token", join_token, "--data-dir", data_dir])
        .current_dir(folder)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr).to_string();
    assert_ne!(output.status.code(), Some(0), "{said}");
    said
}

/// Sends a signal to a process (`STOP`, `CONT`).
fn signal(process: &Process, name: &str) {
    let sent = Command::new("kill").args([&format!("-{name}"), &process.0.id().to_string()]).status().unwrap();
    assert!(sent.success(), "kill -{name}");
}

/// Waits until the stream runs on the fog, before the edge starts: these tests measure moves from a steady start
/// (what the edge makes before the fog joins waits for it, as
/// `what_a_source_acknowledged_for_a_consumer_placed_nowhere_reaches_it_once_it_runs` shows).
fn wait_for_the_fog(folder: &Path, url: &str) {
    wait_until("counts on fog1", Duration::from_secs(20), || {
        status(folder, url).is_some_and(|status| host_of(&status, "counts").as_deref() == Some("fog1"))
    });
}

/// The windows the cloud kept against the readings the edge made (its own file of them): readings missing from
/// their windows and readings counted more than once, over the windows closed well before the last reading.
/// Each kept window is compared with the readings whose time falls in it, by sensor and second.
fn readings_lost_and_counted_twice(folder: &Path) -> (u64, u64, u64) {
    readings_against_windows(folder, "agents/cloud1/out/counts.jsonl")
}

/// As [`readings_lost_and_counted_twice`], for the windows kept in `kept` (relative to `folder`).
fn readings_against_windows(folder: &Path, kept: &str) -> (u64, u64, u64) {
    let mut made: std::collections::BTreeMap<(String, String), u64> = std::collections::BTreeMap::new();
    let produced = std::fs::read_to_string(folder.join("agents/edge1/out/readings.jsonl")).unwrap_or_default();
    for line in produced.lines() {
        let Ok(reading) = serde_json::from_str::<Value>(line) else { continue };
        let (Some(sensor), Some(time)) = (reading["sensor"].as_str(), reading["ts"].as_str()) else { continue };
        // "2026-12-02T12:09:03.123Z" falls in the window that starts at "2026-12-02T12:09:03Z".
        let Some(second) = time.get(..19) else { continue };
        *made.entry((sensor.to_string(), format!("{second}Z"))).or_default() += 1;
    }
    // Windows of the last seconds may still be on their way, and the edge writes its file about once a second.
    let Some(last) = made.keys().map(|(_, start)| start.clone()).max() else { return (0, 0, 0) };
    let (mut lost, mut twice, mut compared) = (0, 0, 0);
    for line in std::fs::read_to_string(folder.join(kept)).unwrap_or_default().lines() {
        let Ok(window) = serde_json::from_str::<Value>(line) else { continue };
        let (Some(sensor), Some(start), Some(n)) =
            (window["sensor"].as_str(), window["window_start"].as_str(), window["n"].as_u64())
        else {
            continue;
        };
        if start >= seconds_before(&last, 3).as_str() {
            continue;
        }
        let expected = made.get(&(sensor.to_string(), start.to_string())).copied().unwrap_or(0);
        lost += expected.saturating_sub(n);
        twice += n.saturating_sub(expected);
        compared += expected;
    }
    (lost, twice, compared)
}

/// "2026-12-02T12:09:03Z" less `seconds` (within the same hour, as the tests run).
fn seconds_before(time: &str, seconds: u32) -> String {
    let (head, rest) = time.split_at(14);
    let minute: u32 = rest[..2].parse().unwrap_or(0);
    let second: u32 = rest[3..5].parse().unwrap_or(0);
    let total = (minute * 60 + second).saturating_sub(seconds);
    format!("{head}{:02}:{:02}Z", total / 60, total % 60)
}

#[test]
fn a_stream_that_moves_onto_its_producers_machine_takes_what_was_on_its_way_first() {
    // No cloud: the killed fog's stream goes on on the edge, where its readings are made. What the edge had sent
    // towards the fog and the fog had not acknowledged waits in that path's log; the stream takes it from there
    // before anything newer (no path adopts it: the stream is local now), so every reading is counted once, none
    // too late, also after the fog comes back and the stream returns to it.
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster_two");
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let app = "app two
node edge1 { tier = edge  cpu = 2  memory = 2 GiB }
node fog1 { tier = fog  cpu = 4  memory = 8 GiB }
schema Reading { sensor: string  ts: timestamp  value: float }
source readings: generator { schema = Reading  rate = 200/s  on = edge1 }
stream counts {
  from = readings
  window = tumbling(1 s) by sensor
  select { n = count() }
  on = fog
}
sink kept: jsonl { from = counts  path = \"out/counts.jsonl\"  on = edge }
sink produced: jsonl { from = readings  path = \"out/readings.jsonl\"  on = edge }
";
    std::fs::write(folder.join("two.stratum"), app).unwrap();
    let (_control, url) = serving(&folder, "two.stratum");
    let fog = agent(&folder, &url, "fog1");
    wait_for_the_fog(&folder, &url);
    let _edge = agent(&folder, &url, "edge1");
    let kept = folder.join("agents/edge1/out/counts.jsonl");
    wait_until("windows at the edge", Duration::from_secs(30), || windows(&kept) >= 16);

    drop(fog);
    wait_until("counts to move to the edge", Duration::from_secs(15), || {
        status(&folder, &url).is_some_and(|status| host_of(&status, "counts").as_deref() == Some("edge1"))
    });
    let moved = windows(&kept);
    wait_until("windows from the edge", Duration::from_secs(30), || windows(&kept) >= moved + 24);
    let _fog = agent(&folder, &url, "fog1");
    wait_until("counts back on fog1", Duration::from_secs(20), || {
        status(&folder, &url).is_some_and(|status| host_of(&status, "counts").as_deref() == Some("fog1"))
    });
    let back = windows(&kept);
    wait_until("windows through fog1 again", Duration::from_secs(30), || windows(&kept) >= back + 40);

    let late: usize =
        ["fog1", "edge1"].iter().map(|agent| windows(&folder.join(format!("agents/{agent}/dead-letters.jsonl")))).sum();
    let twice = windows_twice(&kept, "");
    let (lost, counted_twice, compared) = readings_against_windows(&folder, "agents/edge1/out/counts.jsonl");
    eprintln!(
        "onto the producer's machine and back: {} windows kept twice, {late} readings too late, {lost} of \
         {compared} readings missing from their windows, {counted_twice} counted twice",
        twice.len()
    );
    assert!(twice.is_empty(), "windows kept twice: {twice:?}");
    assert_eq!(late, 0, "readings too late for their windows");
    assert!(compared > 1_000, "only {compared} readings compared");
    assert_eq!(lost, 0, "readings missing from their windows");
}

#[test]
fn what_a_source_acknowledged_for_a_consumer_placed_nowhere_reaches_it_once_it_runs() {
    // The edge joins before the fog: its HTTP source answers 200 while the sink that keeps the readings runs
    // nowhere. The edge keeps them in a waiting path; once the fog joins, the path to it adopts them, so every
    // acknowledged reading arrives, the early ones included.
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster_waiting");
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let ingest = free_port();
    let app = format!(
        "app waiting
node edge1 {{ tier = edge  cpu = 2  memory = 2 GiB }}
node fog1 {{ tier = fog  cpu = 4  memory = 8 GiB }}
schema Reading {{ id: int  sensor: string  ts: timestamp }}
source readings: http {{ path = \"/readings\"  port = {ingest}  schema = Reading  on = edge1 }}
sink received: jsonl {{ from = readings  path = \"out/received.jsonl\"  on = fog1 }}
"
    );
    std::fs::write(folder.join("waiting.stratum"), app).unwrap();
    let (_control, url) = serving(&folder, "waiting.stratum");
    let _edge = agent(&folder, &url, "edge1");
    let mut acknowledged = std::collections::BTreeSet::new();
    wait_until("the edge's source", Duration::from_secs(20), || {
        acknowledged.extend(push_readings(ingest, 0..50));
        !acknowledged.is_empty()
    });
    acknowledged.extend(push_readings(ingest, 50..2_000));
    let early = acknowledged.len();
    assert!(early >= 1_900, "only {early} of 2,000 readings acknowledged before the fog joined");
    // `status` says what runs nowhere yet, and that what it reads is kept.
    let said = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["status", "--server", &url, "--token", VIEWER])
        .current_dir(&folder)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&said.stdout);
    assert!(said.contains("waiting: received (planned on fog1"), "{said}");
    let _fog = agent(&folder, &url, "fog1");
    wait_until("the fog to run the sink", Duration::from_secs(20), || {
        status(&folder, &url).is_some_and(|status| host_of(&status, "received").as_deref() == Some("fog1"))
    });
    acknowledged.extend(push_readings(ingest, 2_000..3_000));
    let kept = folder.join("agents/fog1/out/received.jsonl");
    let received = || -> std::collections::BTreeSet<u64> {
        std::fs::read_to_string(&kept)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok()?["id"].as_u64())
            .collect()
    };
    let all_arrived = wait_until_or_timeout(Duration::from_secs(30), || acknowledged.is_subset(&received()));
    let missing = acknowledged.difference(&received()).count();
    eprintln!(
        "placed nowhere, then on the fog: {missing} of {} acknowledged readings missing ({early} acknowledged \
         before the fog joined)",
        acknowledged.len()
    );
    assert!(all_arrived && missing == 0, "{missing} acknowledged readings never arrived");
}

/// Pushes readings with the ids `ids` to an HTTP source at `/readings`, fifty at a time: the ids acknowledged (200).
fn push_readings(port: u16, ids: std::ops::Range<u64>) -> Vec<u64> {
    let mut acknowledged = Vec::new();
    for first in ids.clone().step_by(50) {
        let batch = first..(first + 50).min(ids.end);
        let body: String = batch
            .clone()
            .map(|id| format!(r#"{{"id": {id}, "sensor": "s{}", "ts": "2026-12-02T12:00:00Z"}}"#, id % 4) + "\n")
            .collect();
        if common::push(port, &body) == Some(200) {
            acknowledged.extend(batch);
        }
    }
    acknowledged
}

/// Waits up to `limit` for `condition`: whether it came true.
fn wait_until_or_timeout(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !condition() {
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    true
}

#[test]
fn a_fog_agent_stopped_and_woken_repeats_no_window() {
    // SIGSTOP of the fog agent for 8 s (the agent timeout is 2 s), then SIGCONT: its stream goes on at the cloud
    // from its last checkpoint copy, with what the edge had buffered for it; woken, the fog's lease has ended, so
    // its stale stream pauses until it is let go (without emitting), and the fog takes the stream back with the
    // cloud's state. No reading arrives too late, and the cloud's sink keeps each window once.
    let folder = cluster_folder("cluster_sigstop");
    let (_control, url) = serving(&folder, "cluster.stratum");
    let fog = agent(&folder, &url, "fog1");
    let _cloud = agent(&folder, &url, "cloud1");
    wait_for_the_fog(&folder, &url);
    let _edge = agent(&folder, &url, "edge1");
    let kept = folder.join("agents/cloud1/out/counts.jsonl");
    wait_until("windows at the cloud", Duration::from_secs(30), || windows(&kept) >= 8);

    signal(&fog, "STOP");
    wait_until("counts to move to the cloud", Duration::from_secs(10), || {
        status(&folder, &url).is_some_and(|status| host_of(&status, "counts").as_deref() == Some("cloud1"))
    });
    std::thread::sleep(Duration::from_secs(6));
    let stopped = windows(&kept);
    signal(&fog, "CONT");
    wait_until("counts back on fog1", Duration::from_secs(20), || {
        status(&folder, &url).is_some_and(|status| host_of(&status, "counts").as_deref() == Some("fog1"))
    });
    wait_until("windows through fog1 again", Duration::from_secs(30), || windows(&kept) >= stopped + 64);

    let twice = windows_twice(&kept, "");
    let late: usize = ["fog1", "cloud1"]
        .iter()
        .map(|agent| windows(&folder.join(format!("agents/{agent}/dead-letters.jsonl"))))
        .sum();
    let (lost, counted_twice, compared) = readings_lost_and_counted_twice(&folder);
    eprintln!(
        "SIGSTOP 8 s: {} windows kept twice, {late} readings too late, {lost} of {compared} readings missing from \
         their windows, {counted_twice} counted twice",
        twice.len(),
    );
    assert!(twice.is_empty(), "windows kept twice: {twice:?}");
    // The woken fog's lease had ended: its stale stream took nothing in and emitted nothing until it was let go.
    assert_eq!(late, 0, "readings too late for their windows");
    assert!(compared > 500, "only {compared} readings compared");
    // Before a receiver told a path's log made again from the one before, 13 and 196 went missing in two of eleven
    // runs; 1 of 3,210 in one CI run on an earlier commit, cause not established (docs/reliability.md).
    assert_eq!(lost, 0, "readings missing from their windows");
}

#[test]
fn agents_on_three_machines_survive_a_lost_agent_and_a_restarted_control_plane() {
    let folder = cluster_folder("cluster");
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let mut control = server(&folder, port, false);
    wait_until("the control plane", Duration::from_secs(20), || status(&folder, &url).is_some());
    // A command with neither a token nor the authority cannot know whom to trust, and is told how.
    let untrusting = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["status", "--server", &url])
        .env_remove("STRATUM_CA_CERT")
        .env_remove("STRATUM_TOKEN")
        .current_dir(&folder)
        .output()
        .unwrap();
    assert_eq!(untrusting.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&untrusting.stderr).contains("--ca-cert"), "{untrusting:?}");
    // Each token does what its role may: the join token cannot apply, reading needs a token.
    let refused = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["apply", "cluster.stratum", "--server", &url, "--token", JOIN])
        .env("STRATUM_CA_CERT", CA)
        .current_dir(&folder)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("refused the token"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let anonymous = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["status", "--server", &url])
        .env_remove("STRATUM_TOKEN")
        .env("STRATUM_CA_CERT", CA)
        .current_dir(&folder)
        .output()
        .unwrap();
    assert_eq!(anonymous.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("needs the operator's or the viewer's token"));
    let applied = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["apply", "cluster.stratum", "--server", &url, "--token", TOKEN])
        .env("STRATUM_CA_CERT", CA)
        .current_dir(&folder)
        .output()
        .unwrap();
    assert_eq!(applied.status.code(), Some(0), "{}", String::from_utf8_lossy(&applied.stderr));
    assert!(String::from_utf8_lossy(&applied.stdout).contains("applied `cluster` version 1"));

    // An agent given the hash of another authority will not join: whoever answers is not the cluster it means;
    // nor will one whose token the server cannot prove its authority with.
    let join = join_string(&folder);
    assert_eq!(join.rsplit_once(':').unwrap().1, JOIN);
    let misled = format!("stratum1:{}:{JOIN}", "ab".repeat(32));
    let said = refused_agent(&folder, &url, "edge9", &misled, "agents/misled");
    assert!(said.contains("not the") && said.contains("of the join string"), "{said}");
    let said = refused_agent(&folder, &url, "edge9", "not-the-join-token", "agents/unproven");
    assert!(said.contains("cannot prove its authority"), "{said}");

    let mut fog = agent(&folder, &url, "fog1");
    let _cloud = agent(&folder, &url, "cloud1");
    wait_for_the_fog(&folder, &url);
    let edge_metrics = free_port();
    let data_dir = "agents/edge1";
    let _edge = stratum(
        &[
            "agent",
            "--name",
            "edge1",
            "--server",
            &url,
            "--join-token",
            &join,
            "--data-dir",
            data_dir,
            "--api",
            &format!("127.0.0.1:{edge_metrics}"),
        ],
        &folder,
    );
    let kept = folder.join("agents/cloud1/out/counts.jsonl");
    wait_until("windows at the cloud", Duration::from_secs(30), || windows(&kept) >= 8);
    // Every agent has its own metrics too, for those who hold its own API key (kept in its data folder for a
    // scraper on its machine), over TLS with the certificate the control plane issued it (naming edge1, and no
    // other agent). The join token, which every machine holds, and another agent's key open nothing.
    let edge = stratum_dataplane::tls::agent_identity("edge1");
    let edge_key = std::fs::read_to_string(folder.join("agents/edge1/api.key")).unwrap();
    let fog_key = std::fs::read_to_string(folder.join("agents/fog1/api.key")).unwrap();
    let (code, text) = https(&folder, edge_metrics, &edge, ("GET", "/metrics"), Some(edge_key.trim()), "");
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("stratum_node_cpu_cores") && text.contains("component=\"readings\""), "{text}");
    for token in [None, Some("not-the-token"), Some(JOIN), Some(fog_key.trim())] {
        let (code, refused) = https(&folder, edge_metrics, &edge, ("GET", "/metrics"), token, "");
        assert_eq!(code, 401, "an agent's API without its own key ({token:?}): {refused}");
    }
    let fog_identity = stratum_dataplane::tls::agent_identity("fog1");
    let (code, mistaken) = https(&folder, edge_metrics, &fog_identity, ("GET", "/metrics"), Some(edge_key.trim()), "");
    assert_eq!(code, 0, "edge1's API passed for fog1's: {mistaken}");
    // An impostor: another machine with the join token, under a name that is held. It is refused and stops,
    // saying why and what to do; the real cloud agent runs on.
    let said = refused_agent(&folder, &url, "cloud1", &join, "agents/impostor");
    assert!(said.contains("held by another machine") && said.contains("stratum forget cloud1"), "{said}");
    let at_impostor = windows(&kept);
    wait_until("windows at the real cloud agent", Duration::from_secs(20), || windows(&kept) > at_impostor);
    // The batch on the cloud agent aggregates what it keeps; the tool on the edge agent runs, supervised.
    wait_until("the batch on cloud1", Duration::from_secs(20), || {
        folder.join("agents/cloud1/data/tallies.parquet").is_file()
    });
    wait_until("the tool on edge1", Duration::from_secs(20), || {
        std::fs::read_to_string(folder.join("agents/edge1/logs/beacon.log")).is_ok_and(|log| log.contains("beacon up"))
    });
    let before = status(&folder, &url).unwrap();
    assert_eq!(host_of(&before, "counts").as_deref(), Some("fog1"));
    // The service on the fog pulled its model and predicts on every window.
    let flags = folder.join("agents/fog1/out/flags.jsonl");
    wait_until("predictions at the fog", Duration::from_secs(20), || windows(&flags) >= 4);
    let first: Value = serde_json::from_str(std::fs::read_to_string(&flags).unwrap().lines().next().unwrap()).unwrap();
    assert!(first["prediction"].is_boolean() && first["n"].is_number(), "{first}");
    assert!(folder.join("agents/fog1/models/busy/v1.json").is_file());
    // The control plane's gateway forwards a prediction to the agent that runs the service.
    let (code, answer) = predict(&folder, port, "flags", r#"{"n": 300}"#);
    assert_eq!((code, answer.as_str()), (200, r#"{"prediction":true}"#));
    let (code, answer) = predict(&folder, port, "nothing", "{}");
    assert_eq!(code, 404, "{answer}");
    assert_eq!(before["agents"].as_array().unwrap().len(), 3);

    // The fog agent dies: its stream moves to the cloud (as the policy says) and windows keep coming.
    drop(fog);
    let lost = Instant::now();
    wait_until("counts to move", Duration::from_secs(10), || {
        status(&folder, &url).is_some_and(|status| host_of(&status, "counts").as_deref() == Some("cloud1"))
    });
    assert!(lost.elapsed() < Duration::from_secs(6), "moved {:?} after the kill (timeout 2 s)", lost.elapsed());
    let at_move = windows(&kept);
    wait_until("windows again after the move", Duration::from_secs(20), || windows(&kept) >= at_move + 8);
    // The service moved with it: the cloud agent pulled the model and predicts.
    let moved_flags = folder.join("agents/cloud1/out/flags.jsonl");
    wait_until("predictions at the cloud", Duration::from_secs(20), || windows(&moved_flags) >= 4);
    // And the gateway follows it, once the cloud agent's next heartbeat says it serves it (503 until then, with
    // Retry-After).
    wait_until("the gateway to follow the service", Duration::from_secs(10), || {
        predict(&folder, port, "flags", "{}").0 != 503
    });
    let (code, answer) = predict(&folder, port, "flags", r#"{"n": 10}"#);
    assert_eq!((code, answer.as_str()), (200, r#"{"prediction":false}"#));

    // Its open windows went on at the cloud: the control plane handed over the checkpoint fog1 sent last.
    let logs_of = |component: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_stratum"))
            .args(["logs", component, "--state-dir", "server"])
            .current_dir(&folder)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    wait_until("counts to take up fog1's checkpoint", Duration::from_secs(10), || {
        let events = logs_of("counts");
        events.contains("handed-over: its checkpoint goes to cloud1")
            && events.contains("resumed: took up the open windows of its checkpoint (on cloud1)")
    });

    // It comes back: the stream returns, and the readings the edge buffered for it flow. The move back is planned
    // (both agents run): the cloud hands the stream's open windows over instead of emitting them, so no window
    // is emitted twice (once by each) from here on.
    let before_return = last_window(&kept);
    fog = agent(&folder, &url, "fog1");
    wait_until("counts back on fog1", Duration::from_secs(15), || {
        status(&folder, &url).is_some_and(|status| host_of(&status, "counts").as_deref() == Some("fog1"))
    });
    // The control plane's /metrics has every agent's components, the path from the edge into fog1 among them.
    let path_in = || {
        let (_, text) =
            https(&folder, port, stratum_dataplane::tls::SERVER_IDENTITY, ("GET", "/metrics"), Some(VIEWER), "");
        let line = text.lines().find(|line| {
            line.starts_with("stratum_events_out_total{agent=\"fog1\",component=\"readings@edge1->fog1\"")
        })?;
        line.rsplit(' ').next()?.parse::<u64>().ok()
    };
    wait_until("the buffered readings at fog1", Duration::from_secs(20), || path_in().is_some_and(|events| events > 0));
    let back = windows(&kept);
    wait_until("windows through fog1 again", Duration::from_secs(20), || windows(&kept) >= back + 8);

    // The control plane dies and comes back on its state: the agents kept working meanwhile.
    drop(control);
    let while_down = windows(&kept);
    wait_until("windows while the control plane is down", Duration::from_secs(20), || windows(&kept) >= while_down + 4);
    control = server(&folder, port, false);
    wait_until("the control plane again", Duration::from_secs(20), || {
        status(&folder, &url).is_some_and(|status| {
            status["version"] == 1
                && host_of(&status, "counts").as_deref() == Some("fog1")
                && status["agents"].as_array().is_some_and(|agents| agents.iter().all(|agent| agent["alive"] == true))
        })
    });
    let after = windows(&kept);
    wait_until("windows after the restart", Duration::from_secs(20), || windows(&kept) >= after + 4);

    let events = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["logs", "counts", "--state-dir", "server"])
        .current_dir(&folder)
        .output()
        .unwrap();
    let events = String::from_utf8_lossy(&events.stdout);
    assert!(events.contains("moved to cloud1: fog1 is lost"), "{events}");
    assert!(events.contains("back on fog1, as planned"), "{events}");
    // The same, asked of the control plane from anywhere (the viewer's token, the authority it proves with it).
    let remote = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["logs", "counts", "--server", &url, "--token", VIEWER])
        .current_dir(&folder)
        .output()
        .unwrap();
    let remote = String::from_utf8_lossy(&remote.stdout);
    assert!(remote.contains("cluster  placement: moved to cloud1: fog1 is lost"), "{remote}");
    // Back on fog1 it took up what the cloud handed over (what fog1 kept from before it was killed is stale).
    assert!(events.contains("leaves cloud1 for fog1, handing its open windows over"), "{events}");
    assert!(events.contains("resumed: took up the open windows of its checkpoint (on fog1)"), "{events}");
    // And the cloud's sink took each window once, the one emitted again by the cloud after it took over from the
    // lost fog's last checkpoint copy included (a file sink keeps a ledger of the windows it wrote).
    let twice = windows_twice(&kept, "");
    eprintln!(
        "windows kept twice: {} (since the planned move back: {})",
        twice.len(),
        windows_twice(&kept, &before_return).len()
    );
    assert!(twice.is_empty(), "windows kept twice: {twice:?}");
    // What the edge had buffered for the lost fog went to the cloud with the stream (its path there adopted the
    // log the fog's path left): nothing arrived anywhere too late for its window.
    let late: usize = ["fog1", "cloud1"]
        .iter()
        .map(|agent| windows(&folder.join(format!("agents/{agent}/dead-letters.jsonl"))))
        .sum();
    eprintln!("readings too late for their windows: {late}");
    assert_eq!(late, 0, "readings arrived too late for their windows");
    // Every reading the edge made is in its window at the cloud, across the lost fog (whose stream went on from
    // the last checkpoint copy the control plane kept: the fog acknowledged only what such a copy held), its
    // return and the restarted control plane.
    let (lost, twice, compared) = readings_lost_and_counted_twice(&folder);
    eprintln!("readings missing from their windows: {lost} of {compared}; counted twice: {twice}");
    assert!(compared > 1_000, "only {compared} readings compared");
    assert_eq!(lost, 0, "readings missing from their windows");
    let tally = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["logs", "tally", "--state-dir", "server"])
        .current_dir(&folder)
        .output()
        .unwrap();
    let tally = String::from_utf8_lossy(&tally.stdout);
    assert!(
        tally.contains("batch: ") && tally.contains("rows into `tallies`") && tally.contains("(on cloud1)"),
        "{tally}"
    );
    drop(fog);
    drop(control);
}

const TRAINING_APP: &str = r#"app learn
node w1 { tier = cloud  cpu = 2  memory = 4 GiB }
node w2 { tier = cloud  cpu = 2  memory = 4 GiB }
schema Row { x: float  y: float  label: bool }
dataset rows { schema = Row  path = "data/rows.csv" }
model labeller: classifier {
  data = rows
  target = label
  features = [x, y]
  candidates {
    logistic_regression { c = [0.1, 1] }
    decision_tree { max_depth = [2, 4] }
  }
  evaluate = kfold(4, stratified) by accuracy
  train_on = cloud
  seed = 5
}
"#;

#[test]
fn training_on_agents_spreads_the_tasks_and_matches_a_local_run() {
    let folder: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster_training");
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(folder.join("data")).unwrap();
    std::fs::write(folder.join("learn.stratum"), TRAINING_APP).unwrap();
    let mut rows = String::from("x,y,label\n");
    for index in 0..400 {
        let (x, y) = ((index % 23) as f64 / 11.0, (index % 17) as f64 / 8.0);
        rows.push_str(&format!("{x},{y},{}\n", x + 0.3 * y > 1.2));
    }
    std::fs::write(folder.join("data/rows.csv"), rows).unwrap();
    let train = |arguments: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_stratum"))
            .args(["train", "learn.stratum", "--format", "json"])
            .args(arguments)
            .current_dir(&folder)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let local = train(&["--store", "local-models"]);

    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _control = server(&folder, port, true);
    wait_until("the control plane", Duration::from_secs(20), || status(&folder, &url).is_some());
    let _w1 = agent(&folder, &url, "w1");
    let _w2 = agent(&folder, &url, "w2");
    wait_until("two agents", Duration::from_secs(20), || {
        status(&folder, &url).is_some_and(|status| status["agents"].as_array().is_some_and(|agents| agents.len() == 2))
    });
    let remote = train(&["--server", &url, "--token", TOKEN]);

    // The same search, the same scores, the same winner: only where it ran differs.
    let entries = |report: &Value| -> Vec<(String, String, f64)> {
        report["models"][0]["leaderboard"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| (entry["algorithm"].to_string(), entry["params"].to_string(), entry["mean"].as_f64().unwrap()))
            .collect()
    };
    assert_eq!(entries(&local).len(), 4);
    assert_eq!(entries(&remote), entries(&local));
    let by_agent = remote["models"][0]["by_agent"].as_object().unwrap();
    assert_eq!(by_agent.values().map(|tasks| tasks.as_u64().unwrap()).sum::<u64>(), 16, "{by_agent:?}");
    assert_eq!(by_agent.len(), 2, "both machines trained: {by_agent:?}");
    assert!(folder.join("server/models/labeller/v1.json").is_file());

    // A machine gone for good is forgotten by an operator: `stratum forget`.
    let forget = |name: &str, token: &str| {
        Command::new(env!("CARGO_BIN_EXE_stratum"))
            .args(["forget", name, "--server", &url, "--token", token])
            .current_dir(&folder)
            .output()
            .unwrap()
    };
    let refused = forget("w2", VIEWER);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("operator's"), "{refused:?}");
    let unknown = forget("nobody", TOKEN);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("knows no agent `nobody`"), "{unknown:?}");
    let forgot = forget("w2", TOKEN);
    assert_eq!(forgot.status.code(), Some(0), "{forgot:?}");
    assert!(String::from_utf8_lossy(&forgot.stdout).contains("forgot `w2`"));
}

#[test]
fn a_control_plane_restored_from_a_backup_on_a_new_machine_takes_its_agents_back() {
    // The control plane's machine is lost after a backup taken while it ran: restored into a new state directory
    // and started on another port, it has the application, the model and the agents' keys, and its authority is
    // the one the agents trust, so the fog agent joins it again under its name and runs its stream.
    let folder = cluster_folder("cluster_backup");
    let (control, url) = serving(&folder, "cluster.stratum");
    let fog = agent(&folder, &url, "fog1");
    wait_for_the_fog(&folder, &url);
    let join_string = join_string(&folder);
    let backup = |arguments: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_stratum")).args(arguments).current_dir(&folder).output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let (code, said) = backup(&["server", "backup", "--state-dir", "server", "--to", "backup"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.starts_with("backed up server into backup: "), "{said}");
    let models_before = std::fs::read_dir(folder.join("server/models")).unwrap().count();
    drop(control);
    drop(fog);

    // The machine is gone; a damaged backup is refused before anything is written.
    std::fs::remove_dir_all(folder.join("server")).unwrap();
    std::fs::write(folder.join("backup/join-string"), "stratum1:tampered").unwrap();
    let (code, said) = backup(&["server", "restore", "--from", "backup", "--state-dir", "server"]);
    assert_ne!(code, Some(0));
    assert!(said.contains("backup/join-string: its contents are not what the backup recorded"), "{said}");
    assert!(!folder.join("server").exists(), "nothing written from a damaged backup");
    std::fs::write(folder.join("backup/join-string"), format!("{join_string}\n")).unwrap();
    let (code, said) = backup(&["server", "restore", "--from", "backup", "--state-dir", "server"]);
    assert_eq!(code, Some(0), "{said}");
    let (code, said) = backup(&["server", "restore", "--from", "backup", "--state-dir", "server"]);
    assert_ne!(code, Some(0), "a second restore over a store: {said}");
    assert!(said.contains("already has a state store"), "{said}");
    assert_eq!(std::fs::read_to_string(folder.join("server/join-string")).unwrap().trim(), join_string);
    assert_eq!(std::fs::read_dir(folder.join("server/models")).unwrap().count(), models_before);

    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let _control = server(&folder, port, false);
    wait_until("the restored control plane", Duration::from_secs(20), || {
        status(&folder, &url).is_some_and(|status| status["version"] == 1 && status["app"] == "cluster")
    });
    // The agents' keys came back with the store: another machine under the fog's name is refused.
    let said = refused_agent(&folder, &url, "fog1", JOIN, "agents/impostor");
    assert!(said.contains("stratum forget fog1"), "{said}");
    let _fog = agent(&folder, &url, "fog1");
    wait_for_the_fog(&folder, &url);
}

/// A replica of the control plane on the shared state store at `store`, with its own state directory and port.
fn replica(folder: &Path, state_dir: &str, port: u16, store: &str) -> Process {
    control_plane(folder, port, state_dir, "2s", &["--store", store])
}

#[test]
#[ignore = "needs PostgreSQL (CI's external stage)"]
fn a_killed_leader_hands_over_to_its_standby_and_the_agents_follow_without_losing_a_reading() {
    // Two replicas of the control plane share a state store on PostgreSQL: one leads, one waits. The agents know
    // both. The leader is killed (SIGKILL) while readings flow edge → fog → cloud; the standby takes the lead
    // within the lease, with the application's version, the agents and their keys, the model and the cluster's
    // authority (the agents trust it still); the agents follow it and never stop running what they were assigned.
    // Ground truth: every reading the edge made is counted once in the cloud's windows, across the takeover.
    let folder = cluster_folder("cluster_failover");
    let postgres = stratum_test_support::Postgres::start(&folder.join("postgres"));
    let (first_port, second_port) = (free_port(), free_port());
    let (first_url, second_url) =
        (format!("https://127.0.0.1:{first_port}"), format!("https://127.0.0.1:{second_port}"));
    let first = replica(&folder, "server", first_port, &postgres.url);
    wait_until("the first replica to lead", Duration::from_secs(30), || status(&folder, &first_url).is_some());
    let second = replica(&folder, "standby", second_port, &postgres.url);
    let log = folder.join("server.log");
    wait_until("the second replica to stand by", Duration::from_secs(20), || {
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains("standby: the control plane at"))
    });
    assert!(status(&folder, &second_url).is_none(), "a standby does not serve");
    let applied = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["apply", "cluster.stratum", "--server", &first_url, "--token", TOKEN])
        .current_dir(&folder)
        .output()
        .unwrap();
    assert_eq!(applied.status.code(), Some(0), "{}", String::from_utf8_lossy(&applied.stderr));
    let both = format!("{first_url},{second_url}");
    let _fog = agent(&folder, &both, "fog1");
    let _cloud = agent(&folder, &both, "cloud1");
    wait_for_the_fog(&folder, &first_url);
    let _edge = agent(&folder, &both, "edge1");
    let kept = folder.join("agents/cloud1/out/counts.jsonl");
    wait_until("windows in the cloud", Duration::from_secs(30), || windows(&kept) > 10);

    drop(first);
    let killed = Instant::now();
    wait_until("the standby to lead", Duration::from_secs(30), || {
        status(&folder, &second_url).is_some_and(|status| status["version"] == 1 && status["app"] == "cluster")
    });
    let takeover = killed.elapsed();
    let before = last_window(&kept);
    wait_until("the agents to heartbeat to the new leader", Duration::from_secs(20), || {
        status(&folder, &second_url).is_some_and(|status| {
            status["agents"]
                .as_array()
                .is_some_and(|agents| agents.len() == 3 && agents.iter().all(|agent| agent["alive"] == true))
                && host_of(&status, "counts").as_deref() == Some("fog1")
        })
    });
    wait_until("windows after the takeover", Duration::from_secs(30), || {
        kept_windows(&kept).iter().filter(|(_, end)| end.as_str() > before.as_str()).count() > 20
            && readings_lost_and_counted_twice(&folder).2 > 3_000
    });
    let (lost, twice, compared) = readings_lost_and_counted_twice(&folder);
    println!("takeover {:.1} s; readings lost {lost}, counted twice {twice}, of {compared}", takeover.as_secs_f64());
    assert_eq!((lost, twice), (0, 0), "readings lost and counted twice across the takeover");
    assert!(takeover < Duration::from_secs(15), "took {takeover:?}");
    // The model the first replica had is the new leader's too, and so is every window's prediction.
    assert!(folder.join("standby/models").is_dir(), "the shared model store came through the state store");

    // The first replica, started again, waits: the lead is taken.
    let _again = replica(&folder, "server", first_port, &postgres.url);
    std::thread::sleep(Duration::from_secs(3));
    assert!(status(&folder, &first_url).is_none(), "a replica that lost the lead does not take it back");
    assert!(status(&folder, &second_url).is_some_and(|status| status["version"] == 1));

    // The leader is paused (SIGSTOP) longer than its lease: the standby takes over; woken, the old leader finds
    // its lease gone and stops serving, saying so, instead of acting as a second control plane.
    signal(&second, "STOP");
    wait_until("the first replica to lead again", Duration::from_secs(30), || {
        status(&folder, &first_url).is_some_and(|status| status["version"] == 1)
    });
    signal(&second, "CONT");
    let mut second = second;
    let started = Instant::now();
    let stopped = loop {
        if let Some(exit) = second.0.try_wait().unwrap() {
            break exit;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the deposed leader still runs");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!stopped.success(), "{stopped:?}");
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("this control plane does not lead"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
    assert!(
        status(&folder, &first_url)
            .is_some_and(|status| status["agents"].as_array().is_some_and(|agents| agents.len() == 3))
    );
}

/// The application the simulator and the runtime are compared on: a generator on the edge, a stream and its sink
/// on the fog, a declared link between them.
const AGREE: &str = "app agree
node edge1 { tier = edge  cpu = 2  memory = 2 GiB }
node fog1 { tier = fog  cpu = 4  memory = 8 GiB }
link edge -> fog { latency = 1 ms  bandwidth = 100 Mbit/s }
schema Reading { sensor: string  ts: timestamp  value: float }
source readings: generator { schema = Reading  rate = 200/s  on = edge1 }
stream relayed { from = readings  on = fog }
sink kept: jsonl { from = relayed  path = \"out/kept.jsonl\"  on = fog }
";

#[test]
fn the_simulator_agrees_with_the_runtime_on_a_stopped_fog() {
    // The same file run by a control plane and two agents, and by `stratum simulate`: the fog is stopped (SIGSTOP)
    // for 5 s, shorter than the agent timeout, so the edge keeps what it makes for the fog in its path's log and
    // sends it once the fog wakes. The test's own ground truth: when each reading first appears in the fog's
    // sink (the file polled every 50 ms) against the time the generator gave it. Tolerances: the sink writes its
    // file every 0.1 s and the polling adds up to 50 ms, and the runtime's path resumes after a reconnect;
    // latencies agree within 1.5 s, the rate within 5 %.
    let folder: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster_agree");
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("agree.stratum"), AGREE).unwrap();
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let _control = server_with_timeout(&folder, port, false, "30s");
    wait_until("the control plane", Duration::from_secs(20), || status(&folder, &url).is_some());
    let applied = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["apply", "agree.stratum", "--server", &url, "--token", TOKEN])
        .current_dir(&folder)
        .output()
        .unwrap();
    assert_eq!(applied.status.code(), Some(0), "{}", String::from_utf8_lossy(&applied.stderr));
    let fog = agent(&folder, &url, "fog1");
    wait_until("relayed on fog1", Duration::from_secs(20), || {
        status(&folder, &url).is_some_and(|status| host_of(&status, "relayed").as_deref() == Some("fog1"))
    });
    let _edge = agent(&folder, &url, "edge1");

    // Polls the sink: (when first seen, when made) of every reading, in milliseconds since 1970.
    let kept = folder.join("agents/fog1/out/kept.jsonl");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let polling = {
        let (kept, stop) = (kept.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen: Vec<(i64, i64)> = Vec::new();
            let mut lines = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let now =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
                let text = std::fs::read_to_string(&kept).unwrap_or_default();
                // Only whole lines: the last may be half written.
                let whole: Vec<&str> = text.split_inclusive('\n').filter(|line| line.ends_with('\n')).collect();
                for line in &whole[lines.min(whole.len())..] {
                    let reading: Value = serde_json::from_str(line).unwrap();
                    let made = stratum_core::eval::parse_timestamp(reading["ts"].as_str().unwrap()).unwrap();
                    seen.push((now, made));
                }
                lines = lines.max(whole.len());
                std::thread::sleep(Duration::from_millis(50));
            }
            seen
        })
    };
    wait_until("readings at the fog", Duration::from_secs(30), || windows(&kept) > 200);
    std::thread::sleep(Duration::from_secs(8));
    signal(&fog, "STOP");
    std::thread::sleep(Duration::from_secs(5));
    signal(&fog, "CONT");
    std::thread::sleep(Duration::from_secs(10));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = polling.join().unwrap();

    // The runtime's figures over the readings made from 1 s after the first seen to 2 s before the end (those
    // made later may not have been seen yet).
    let first = seen.first().unwrap().1 + 1_000;
    let last = seen.iter().map(|(_, made)| *made).max().unwrap() - 2_000;
    let mut latencies: Vec<f64> =
        seen.iter().filter(|(_, made)| (first..=last).contains(made)).map(|(at, made)| (at - made) as f64).collect();
    latencies.sort_by(f64::total_cmp);
    let quantile = |fraction: f64| latencies[((latencies.len() - 1) as f64 * fraction) as usize];
    let rate = latencies.len() as f64 / ((last - first) as f64 / 1000.0);
    let runtime = (rate, quantile(0.5), quantile(0.95), quantile(0.99), *latencies.last().unwrap());

    // The simulator, on the same file: the same stop, inside a run as long as what was compared.
    let duration = format!("{}ms", last - first);
    let simulated = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["simulate", "agree.stratum", "--for", &duration, "--fail", "fog1@5s+5s", "--agent-timeout", "30s"])
        .args(["--step", "50ms", "--format", "json"])
        .current_dir(&folder)
        .output()
        .unwrap();
    assert_eq!(simulated.status.code(), Some(0), "{}", String::from_utf8_lossy(&simulated.stderr));
    let report: Value = serde_json::from_slice(&simulated.stdout).unwrap();
    let path = &report["paths"][0];
    let simulated_rate = path["records"].as_f64().unwrap() / report["simulated_seconds"].as_f64().unwrap();
    let simulation = (
        simulated_rate,
        path["p50_ms"].as_f64().unwrap(),
        path["p95_ms"].as_f64().unwrap(),
        path["p99_ms"].as_f64().unwrap(),
        path["max_ms"].as_f64().unwrap(),
    );
    eprintln!(
        "a fog stopped 5 s, {} readings compared: rate {:.1}/s runtime, {:.1}/s simulated; latency ms (runtime, \
         simulated): p50 {:.0}, {:.0}; p95 {:.0}, {:.0}; p99 {:.0}, {:.0}; max {:.0}, {:.0}",
        latencies.len(),
        runtime.0,
        simulation.0,
        runtime.1,
        simulation.1,
        runtime.2,
        simulation.2,
        runtime.3,
        simulation.3,
        runtime.4,
        simulation.4
    );
    assert!((runtime.0 - simulation.0).abs() <= simulation.0 * 0.05, "rates differ by more than 5 %");
    for (what, ours, theirs) in
        [("p50", runtime.1, simulation.1), ("p95", runtime.2, simulation.2), ("max", runtime.4, simulation.4)]
    {
        assert!((ours - theirs).abs() <= 1_500.0, "{what}: runtime {ours:.0} ms, simulated {theirs:.0} ms");
    }
}
