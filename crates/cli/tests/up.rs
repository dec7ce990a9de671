//! `stratum up` as a user runs it, on a copy of the traffic example: the model is bootstrapped from simulated
//! history and trained, windows are emitted, the congestion service answers over HTTP and publishes its decisions
//! and the signal plans over MQTT, `/metrics` shows it all, and a second `up` reuses the trained model.

mod common;

use common::{OPERATOR_TOKEN, Up, VIEWER_TOKEN, free_port, traffic_copy};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_the_traffic_application_end_to_end() {
    let folder = traffic_copy("up_traffic");
    let api = free_port();
    let up = Up::start(&folder, api, 30);
    up.line("trained v1", Duration::from_secs(240));
    let broker = up.line("embedded MQTT broker:", Duration::from_secs(30));
    up.line("API:", Duration::from_secs(30));
    let dashboard = up.line("dashboard: ", Duration::from_secs(1));
    assert!(dashboard.contains(&format!("http://127.0.0.1:{api}/#token={OPERATOR_TOKEN}")), "{dashboard}");

    // Signal decisions and the service's congestion calls, as MQTT subscribers see them.
    let url = broker.rsplit("mqtt://").next().unwrap().trim().to_string();
    let (host, port) = url.rsplit_once(':').unwrap();
    let mut options = rumqttc::MqttOptions::new("up-test", host, port.parse().unwrap());
    options.set_keep_alive(Duration::from_secs(10));
    let (client, mut event_loop) = rumqttc::AsyncClient::new(options, 100);
    client.subscribe("traffic/+/signal", rumqttc::QoS::AtLeastOnce).await.unwrap();
    client.subscribe("traffic/+/congestion", rumqttc::QoS::AtLeastOnce).await.unwrap();
    let topics = Arc::new(Mutex::new(Vec::<(String, Value)>::new()));
    let seen = topics.clone();
    tokio::spawn(async move {
        let _client = client;
        while let Ok(event) = event_loop.poll().await {
            if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish)) = event {
                let payload = serde_json::from_slice(&publish.payload).unwrap_or(Value::Null);
                seen.lock().unwrap().push((publish.topic.clone(), payload));
            }
        }
    });

    // reqwest comes without a TLS crypto provider in this workspace: the program chooses one (ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{api}");
    let started = Instant::now();
    let count_of = |status: &Value, name: &str| {
        status["agents"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|agent| agent["components"].as_array().unwrap().iter())
            .find(|component| component["name"] == name)
            .map_or(0, |component| component["events_out"].as_u64().unwrap())
    };
    loop {
        let status: Value = serde_json::from_str(
            &http
                .get(format!("{base}/v1/status"))
                .bearer_auth(OPERATOR_TOKEN)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(status["app"], "traffic");
        if count_of(&status, "counts") > 0 && count_of(&status, "signal_timing") > 0 {
            assert_eq!(status["models"][0]["model"], "congestion");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(25), "no windows or predictions yet: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let rush_hour = r#"{"window_end": "2026-01-01T08:00:00Z", "vehicles": 70000, "avg_speed": 31.5}"#;
    let answer = http.post(format!("{base}/v1/services/signal_timing/predict")).body(rush_hour).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let answer: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert!(answer["prediction"].is_boolean(), "{answer}");
    let wrong = http.post(format!("{base}/v1/services/signal_timing/predict")).body(r#"{"vehicles": "many"}"#);
    let wrong = wrong.send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 400);
    assert!(wrong.text().await.unwrap().contains("takes window_end: timestamp"));
    let metrics =
        http.get(format!("{base}/metrics")).bearer_auth(OPERATOR_TOKEN).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("stratum_processing_seconds_bucket{component=\"signal_timing-http\""), "{metrics}");
    assert!(metrics.contains("stratum_events_out_total{component=\"counts\""));

    let started = Instant::now();
    loop {
        let topics = topics.lock().unwrap().clone();
        let signals = topics.iter().filter(|(topic, _)| topic.ends_with("/signal")).count();
        let congestion: Vec<&Value> =
            topics.iter().filter(|(topic, _)| topic.ends_with("/congestion")).map(|(_, payload)| payload).collect();
        if signals > 0 && !congestion.is_empty() {
            assert!(congestion[0]["prediction"].is_boolean(), "{:?}", congestion[0]);
            assert!(congestion[0]["vehicles"].is_number());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "signals {signals}, congestion {}", congestion.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, stdout, stderr) = up.finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("signal_timing-output"), "the summary lists every component: {stdout}");
    assert!(folder.join("data/history").is_dir() && folder.join("data/congestion_history.parquet").is_file());

    // The image tool: `stratum logs` says what became of it.
    let logs =
        Command::new(env!("CARGO_BIN_EXE_stratum")).args(["logs", "grafana"]).current_dir(&folder).output().unwrap();
    assert_eq!(logs.status.code(), Some(0));
    let text = String::from_utf8_lossy(&logs.stdout);
    // Without podman or docker it is not started, with the reason; with one it is started (and, without a
    // daemon, exits quoting why).
    let not_started = text.contains("tool-not-started: image `grafana/grafana:11.2.0` needs a container runtime");
    assert!(not_started || text.contains("tool: started (pid"), "{text}");

    // The same data: the next `up` reuses the model instead of training again.
    let again = Up::start(&folder, free_port(), 2);
    again.line("reusing it", Duration::from_secs(60));
    let (code, _, stderr) = again.finish();
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn up_supervises_command_tools_and_logs_shows_their_output() {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("up_tools");
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let app = r#"app tools
node laptop { tier = cloud  cpu = 2  memory = 4 GiB }
schema Reading { sensor: string  value: float }
source readings: generator { schema = Reading  rate = 10/s }
sink kept: jsonl { from = readings  path = "out/kept.jsonl" }
tool helper {
  command = ["sh", "-c", "echo \"helper says $GREETING\"; exit 1"]
  env = { GREETING: "hi" }
}
"#;
    std::fs::write(folder.join("tools.stratum"), app).unwrap();
    let up = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["up", "tools.stratum", "--for", "3s", "--api", &format!("127.0.0.1:{}", free_port())])
        .current_dir(&folder)
        .output()
        .unwrap();
    assert_eq!(up.status.code(), Some(0), "{}", String::from_utf8_lossy(&up.stderr));
    let logs =
        Command::new(env!("CARGO_BIN_EXE_stratum")).args(["logs", "helper"]).current_dir(&folder).output().unwrap();
    assert_eq!(logs.status.code(), Some(0));
    let text = String::from_utf8_lossy(&logs.stdout);
    // Exits at once, so it is restarted after 1 s and again after 2 s within the 3 s run.
    assert!(text.matches("helper says hi").count() >= 2, "{text}");
    assert!(text.contains("tool-exited: exit status: 1 (helper says hi); restarting in 1 s"), "{text}");
    let unknown =
        Command::new(env!("CARGO_BIN_EXE_stratum")).args(["logs", "nobody"]).current_dir(&folder).output().unwrap();
    assert_eq!(unknown.status.code(), Some(1));
}

/// The editor's apply, end to end: `POST /v1/apply` with a changed file writes it, `stratum up` drains the running
/// version and starts the new one, and the API serves it; a viewer may check but not apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_applied_through_the_api_replaces_the_running_one() {
    const APP: &str = "app tiny\n\
        node box { tier = edge  cpu = 2  memory = 2 GiB }\n\
        schema Reading { sensor: string  ts: timestamp  value: float }\n\
        source readings: generator { schema = Reading  rate = 20/s }\n\
        sink kept: jsonl { from = readings  path = \"out/kept.jsonl\" }\n";
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("up_apply");
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("tiny.stratum"), APP).unwrap();
    let api = free_port();
    let up = Up::start_file(&folder, "tiny.stratum", api, 60);
    up.line("press Ctrl-C to stop", Duration::from_secs(60));

    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{api}");
    let next = APP.replace("rate = 20/s", "rate = 40/s");
    let body = serde_json::json!({ "source": next }).to_string();
    let as_viewer = http.post(format!("{base}/v1/apply")).bearer_auth(VIEWER_TOKEN).body(body.clone());
    assert_eq!(as_viewer.send().await.unwrap().status().as_u16(), 403);
    let check = http.post(format!("{base}/v1/check")).bearer_auth(VIEWER_TOKEN).body(body.clone());
    let report: Value = serde_json::from_str(&check.send().await.unwrap().text().await.unwrap()).unwrap();
    assert_eq!(report["changes"], serde_json::json!(["`readings` changes"]), "{report}");
    let applied = http.post(format!("{base}/v1/apply")).bearer_auth(OPERATOR_TOKEN).body(body).send().await.unwrap();
    assert_eq!(applied.status().as_u16(), 202);
    assert_eq!(std::fs::read_to_string(folder.join("tiny.stratum")).unwrap(), next);

    let started = Instant::now();
    loop {
        let app = http.get(format!("{base}/v1/app")).bearer_auth(VIEWER_TOKEN).send().await.unwrap();
        let app: Value = serde_json::from_str(&app.text().await.unwrap()).unwrap();
        if app["version"] == 2 && app["phase"] == "running" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "version 2 does not run: {app}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    up.line("a new version was applied from the editor", Duration::from_secs(1));
    up.interrupt();
    let (code, _, stderr) = up.finish();
    assert_eq!(code, 0, "{stderr}");
}

/// A crash, for real: `stratum up` killed with SIGKILL leaves its stream's open windows in a checkpoint, and the
/// next `up` of the same stream takes them up and emits them when it ends.
#[test]
fn the_next_up_after_a_kill_takes_up_the_open_windows() {
    let app = |rate: &str| {
        format!(
            "app counts\nnode laptop {{ tier = cloud  cpu = 2  memory = 4 GiB }}\n\
             schema Detection {{ camera: string  ts: timestamp  speed_kmh: float }}\n\
             source detections: generator {{ schema = Detection  rate = {rate} }}\n\
             stream per_day {{\n  from = detections\n  window = tumbling(1 d) by camera\n  select {{ vehicles = count() }}\n}}\n\
             sink days: jsonl {{ from = per_day  path = \"out/days.jsonl\" }}\n"
        )
    };
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("up_checkpoint");
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("counts.stratum"), app("200/s")).unwrap();
    let mut first = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["up", "counts.stratum", "--api", &format!("127.0.0.1:{}", free_port())])
        .current_dir(&folder)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let checkpoint = folder.join(".stratum/run/checkpoints/per_day.json");
    let started = std::time::Instant::now();
    while !checkpoint.exists() || started.elapsed() < Duration::from_secs(4) {
        assert!(started.elapsed() < Duration::from_secs(60), "no checkpoint at {}", checkpoint.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let vehicles = |value: &serde_json::Value| value.as_i64().unwrap();
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
    // Every camera's count in every open window (two days' windows if the run crossed midnight).
    let held: i64 = saved["state"]["windows"]["open"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|window| window[1].as_array().unwrap())
        .map(|entry| vehicles(&entry[1][0]["Count"]))
        .sum();
    assert!(held >= 200, "{held}");
    let emitted = || -> i64 {
        std::fs::read_to_string(folder.join("out/days.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|line| vehicles(&serde_json::from_str::<serde_json::Value>(line).unwrap()["vehicles"]))
            .sum()
    };
    let emitted_before = emitted();

    // The same stream, its source slowed to a trickle: what it emits is mostly what the checkpoint held.
    std::fs::write(folder.join("counts.stratum"), app("1/s")).unwrap();
    let second = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["up", "counts.stratum", "--for", "2s", "--api", &format!("127.0.0.1:{}", free_port())])
        .current_dir(&folder)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(0), "{}", String::from_utf8_lossy(&second.stderr));
    let emitted = emitted() - emitted_before;
    assert!((held..=held + 10).contains(&emitted), "held {held}, emitted {emitted}");
    assert!(!checkpoint.exists(), "a clean end leaves no checkpoint");
    let logs =
        Command::new(env!("CARGO_BIN_EXE_stratum")).args(["logs", "per_day"]).current_dir(&folder).output().unwrap();
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(text.contains("resumed: took up the open windows of its checkpoint"), "{text}");
}

#[test]
fn up_serves_plain_http_to_other_machines_only_when_told_so() {
    // `stratum up` has no TLS: an API other machines reach would carry its tokens in the clear. Refused, saying
    // what to do, before anything starts.
    let folder = traffic_copy("up_plain_http");
    let up = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .args(["up", "traffic.stratum", "--for", "1s", "--api", &format!("0.0.0.0:{}", free_port())])
        .current_dir(&folder)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&up.stderr);
    assert_eq!(up.status.code(), Some(1), "{said}");
    assert!(said.contains("--plain-http") && said.contains("stratum server"), "{said}");
    assert!(!folder.join(".stratum").exists(), "nothing started");
}
