//! Stratum across machines, as separate processes on loopback: a control plane and three agents (edge, fog, cloud)
//! run an application whose data flows edge → fog → cloud through store-and-forward paths, with a model (trained
//! into the control plane's store, pulled by the fog agent) predicting on every window. Killing the fog agent
//! (SIGKILL) moves its stream to the cloud within the agent timeout and the data flows again; when it comes back
//! the stream returns and what the edge buffered for it is delivered; killing and restarting the control plane
//! loses nothing: the agents keep running, and it knows the application and the agents again. An impostor agent
//! (the join token, a held name) is refused and stops; agents' own APIs refuse callers without the join token.

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

fn server(folder: &Path, port: u16) -> Process {
    let listen = format!("127.0.0.1:{port}");
    stratum(
        &[
            "server",
            "--listen",
            &listen,
            "--state-dir",
            "server",
            "--token",
            TOKEN,
            "--viewer-token",
            VIEWER,
            "--join-token",
            JOIN,
            "--agent-timeout",
            "2s",
        ],
        folder,
    )
}

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

/// A prediction through the control plane's gateway: (status, body).
fn predict(port: u16, service: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /v1/services/{service}/predict HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    (status, response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default())
}

fn status(folder: &Path, url: &str) -> Option<Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["status", "--server", url, "--token", VIEWER, "--format", "json"])
        .current_dir(folder)
        .output()
        .ok()?;
    serde_json::from_slice(&output.stdout).ok()
}

/// The body of `GET path` on a loopback port (HTTP/1.0: the server closes when done), with a bearer token if given.
fn http_get(port: u16, path: &str, token: Option<&str>) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let authorization = token.map(|token| format!("Authorization: Bearer {token}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n{authorization}\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
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

#[test]
fn agents_on_three_machines_survive_a_lost_agent_and_a_restarted_control_plane() {
    let folder: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster");
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("cluster.stratum"), APP).unwrap();
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
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut control = server(&folder, port);
    wait_until("the control plane", Duration::from_secs(20), || status(&folder, &url).is_some());
    // Each token does what its role may: the join token cannot apply, reading needs a token.
    let refused = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["apply", "cluster.stratum", "--server", &url, "--token", JOIN])
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
        .current_dir(&folder)
        .output()
        .unwrap();
    assert_eq!(anonymous.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("needs the operator's or the viewer's token"));
    let applied = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["apply", "cluster.stratum", "--server", &url, "--token", TOKEN])
        .current_dir(&folder)
        .output()
        .unwrap();
    assert_eq!(applied.status.code(), Some(0), "{}", String::from_utf8_lossy(&applied.stderr));
    assert!(String::from_utf8_lossy(&applied.stdout).contains("applied `cluster` version 1"));

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
            JOIN,
            "--data-dir",
            data_dir,
            "--api",
            &format!("127.0.0.1:{edge_metrics}"),
        ],
        &folder,
    );
    let mut fog = agent(&folder, &url, "fog1");
    let _cloud = agent(&folder, &url, "cloud1");
    let kept = folder.join("agents/cloud1/out/counts.jsonl");
    wait_until("windows at the cloud", Duration::from_secs(30), || windows(&kept) >= 8);
    // Every agent has its own metrics too, for those who hold the join token.
    let text = http_get(edge_metrics, "/metrics", Some(JOIN));
    assert!(text.contains("stratum_node_cpu_cores") && text.contains("component=\"readings\""), "{text}");
    for token in [None, Some("not-the-token")] {
        let refused = http_get(edge_metrics, "/metrics", token);
        assert!(refused.contains("unauthorized"), "an agent's API without the join token: {refused}");
    }
    // An impostor: another machine with the join token, under a name that is held. It is refused and stops,
    // saying why and what to do; the real cloud agent runs on.
    let impostor = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["agent", "--name", "cloud1", "--server", &url, "--join-token", JOIN, "--data-dir", "agents/impostor"])
        .current_dir(&folder)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&impostor.stderr);
    assert_ne!(impostor.status.code(), Some(0), "{said}");
    assert!(said.contains("held by another machine") && said.contains("DELETE /v1/agents/cloud1"), "{said}");
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
    let (code, answer) = predict(port, "flags", r#"{"n": 300}"#);
    assert_eq!((code, answer.as_str()), (200, r#"{"prediction":true}"#));
    let (code, answer) = predict(port, "nothing", "{}");
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
    wait_until("the gateway to follow the service", Duration::from_secs(10), || predict(port, "flags", "{}").0 != 503);
    let (code, answer) = predict(port, "flags", r#"{"n": 10}"#);
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

    // It comes back: the stream returns, and the readings the edge buffered for it flow.
    fog = agent(&folder, &url, "fog1");
    wait_until("counts back on fog1", Duration::from_secs(15), || {
        status(&folder, &url).is_some_and(|status| host_of(&status, "counts").as_deref() == Some("fog1"))
    });
    // The control plane's /metrics has every agent's components, the path from the edge into fog1 among them.
    let path_in = || {
        let text = http_get(port, "/metrics", Some(VIEWER));
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
    control = server(&folder, port);
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
    // Back on fog1 it starts empty: the cloud emitted what it held when it let the stream go, and what fog1 kept
    // from before it was killed is stale.
    assert!(!events.contains("resumed: took up the open windows of its checkpoint (on fog1)"), "{events}");
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
    let _control = server(&folder, port);
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
}
