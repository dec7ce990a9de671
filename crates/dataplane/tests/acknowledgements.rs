//! End-to-end acknowledgements: an HTTP push is answered 200 only once its records are durable — in the sink's
//! synced file, or in a stream's synced checkpoint — so a crash right after the answer loses none of them; and a
//! push that cannot be made durable is answered 503, never 200. A tailed file goes on after a crash from the
//! position kept once the lines before it were durable.

mod common;

use common::free_port;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use stratum_dataplane::{Pipeline, PipelineOptions};

fn options(directory: &Path) -> PipelineOptions {
    PipelineOptions { base_dir: directory.into(), data_dir: Some(directory.join("data")), ..PipelineOptions::default() }
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// Posts `body` until the server is up; the status and the answer.
async fn post(client: &reqwest::Client, url: &str, body: String) -> (u16, Value) {
    let started = Instant::now();
    loop {
        if let Ok(response) = client.post(url).body(body.clone()).send().await {
            let status = response.status().as_u16();
            return (status, serde_json::from_str(&response.text().await.unwrap()).unwrap());
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the HTTP source never listened at {url}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn push_app(port: u16, middle: &str, sink_from: &str) -> String {
    format!(
        r#"app acks
schema Reading {{ sensor: string  ts: timestamp  value: float }}
source readings: http {{
  path = "/readings"
  port = {port}
  schema = Reading
}}
{middle}
sink kept: jsonl {{
  from = {sink_from}
  path = "out/kept.jsonl"
}}
"#
    )
}

fn reading(sensor: &str, value: usize) -> String {
    json!({ "sensor": sensor, "ts": "2026-01-01T00:00:00Z", "value": value }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_answered_only_once_its_records_are_in_the_synced_file() {
    let port = free_port();
    let application = common::application_from_text("acks.stratum", &push_app(port, "", "readings"));
    let directory = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::build(&application, &options(directory.path())).unwrap();
    let stopper = pipeline.stopper();
    let running = tokio::spawn(pipeline.run());
    let (client, url) = (common::http_client(), format!("http://127.0.0.1:{port}/readings"));
    let file = directory.path().join("out/kept.jsonl");
    for push in 0..5 {
        let body = format!("{}\n{}\n", reading("a", 2 * push), reading("b", 2 * push + 1));
        let (status, answer) = post(&client, &url, body).await;
        assert_eq!((status, &answer["accepted"]), (200, &json!(2)), "{answer}");
        // The sink writes about once a second: the answer waited for it.
        let kept = lines(&file);
        assert_eq!(kept.len(), 2 * (push + 1), "answered 200 before the records were in {}", file.display());
        assert_eq!(kept.last().unwrap()["value"], json!((2 * push + 1) as f64));
    }
    stopper.stop();
    running.await.unwrap().unwrap();
}

#[test]
fn a_push_into_a_window_survives_a_crash_right_after_its_answer() {
    let port = free_port();
    let window =
        "stream per_sensor {\n  from = readings\n  window = tumbling(1 d) by sensor\n  select { n = count() }\n}";
    let application = common::application_from_text("acks.stratum", &push_app(port, window, "per_sensor"));
    let directory = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/readings");

    // Every push is answered, and the process dies at once after the last answer: no stream finishes.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let running =
        runtime.block_on(async { Pipeline::build(&application, &options(directory.path())).unwrap().start() });
    let accepted: usize = runtime.block_on(async {
        let client = common::http_client();
        let mut accepted = 0;
        for push in 0..4 {
            let body: String = (0..25).map(|index| reading(["a", "b"][index % 2], push) + "\n").collect();
            let (status, answer) = post(&client, &url, body).await;
            assert_eq!(status, 200, "{answer}");
            accepted += answer["accepted"].as_u64().unwrap() as usize;
        }
        accepted
    });
    std::mem::forget(running);
    runtime.shutdown_background();
    assert_eq!(accepted, 100);

    // The next run takes up the checkpoint and, stopped, emits the windows: every answered reading is counted.
    // (On another port: the dead runtime's server is still registered in this process, as it would not be in a
    // process that really died.)
    let application = common::application_from_text("acks.stratum", &push_app(free_port(), window, "per_sensor"));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let pipeline = Pipeline::build(&application, &options(directory.path())).unwrap();
        assert_eq!(pipeline.resumed, ["per_sensor"], "the stream took up its checkpoint");
        let stopper = pipeline.stopper();
        let running = tokio::spawn(pipeline.run());
        tokio::time::sleep(Duration::from_millis(300)).await;
        stopper.stop();
        running.await.unwrap().unwrap();
    });
    let counted: i64 =
        lines(&directory.path().join("out/kept.jsonl")).iter().map(|window| window["n"].as_i64().unwrap()).sum();
    assert_eq!(counted, accepted as i64, "readings answered 200 were lost in the crash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_cannot_be_made_durable_is_answered_503() {
    let port = free_port();
    let application = common::application_from_text("acks.stratum", &push_app(port, "", "readings"));
    let directory = tempfile::tempdir().unwrap();
    // A file where the sink's directory should be: the sink cannot write.
    std::fs::write(directory.path().join("out"), "in the way").unwrap();
    let pipeline = Pipeline::build(&application, &options(directory.path())).unwrap();
    let running = tokio::spawn(pipeline.run());
    let client = common::http_client();
    let (status, answer) = post(&client, &format!("http://127.0.0.1:{port}/readings"), reading("a", 1)).await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("send them again"), "{answer}");
    let error = running.await.unwrap().unwrap_err().to_string();
    assert!(error.contains("kept"), "the sink's failure stops the pipeline: {error}");
}

const TAIL_APP: &str = r#"app tail
schema Reading { sensor: string  value: int }
source readings: file {
  path = "in/readings.csv"
  format = csv
  mode = tail
  schema = Reading
}
sink kept: jsonl {
  from = readings
  path = "out/kept.jsonl"
}
"#;

fn append_readings(path: &Path, values: std::ops::Range<usize>) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    if file.metadata().unwrap().len() == 0 {
        writeln!(file, "sensor,value").unwrap();
    }
    for value in values {
        writeln!(file, "s{},{value}", value % 3).unwrap();
    }
}

/// Runs the tailing app until the sink holds `expected` lines, then dies (the runtime dropped: no component
/// finishes) once its position is kept.
fn tail_until_crash(directory: &Path, expected: usize) {
    let application = common::application_from_text("tail.stratum", TAIL_APP);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let running = runtime.block_on(async { Pipeline::build(&application, &options(directory)).unwrap().start() });
    let (kept, offsets) = (directory.join("out/kept.jsonl"), directory.join("data/offsets/readings.json"));
    let input_length = std::fs::metadata(directory.join("in/readings.csv")).unwrap().len();
    let started = Instant::now();
    loop {
        let position: Option<Value> = std::fs::read(&offsets).ok().and_then(|text| serde_json::from_slice(&text).ok());
        if lines(&kept).len() >= expected && position.is_some_and(|position| position["offset"] == json!(input_length))
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the file was not read to its end and its position kept");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::mem::forget(running);
    runtime.shutdown_background();
}

#[test]
fn a_tailed_file_goes_on_from_its_kept_position_after_a_crash() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(directory.path().join("in")).unwrap();
    let input = directory.path().join("in/readings.csv");
    append_readings(&input, 0..100);
    tail_until_crash(directory.path(), 100);

    // Lines written while it was down are read; none of the first run's again.
    append_readings(&input, 100..150);
    tail_until_crash(directory.path(), 150);
    let values: Vec<i64> =
        lines(&directory.path().join("out/kept.jsonl")).iter().map(|l| l["value"].as_i64().unwrap()).collect();
    assert_eq!(values, (0..150).collect::<Vec<i64>>(), "every line once, in order");

    // A file replaced by another (a rotated log) is read from its start.
    std::fs::remove_file(&input).unwrap();
    append_readings(&input, 1000..1010);
    tail_until_crash(directory.path(), 160);
    let values: Vec<i64> =
        lines(&directory.path().join("out/kept.jsonl")).iter().map(|l| l["value"].as_i64().unwrap()).collect();
    assert_eq!(values[150..], (1000..1010).collect::<Vec<i64>>());
}
