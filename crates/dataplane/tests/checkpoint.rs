//! Checkpoints: a data plane that dies (its runtime dropped mid-run, as in a crash: no stream finishes) leaves its
//! windowed stream's open windows on disk, and the next run of the same stream takes them up and emits them.

mod common;

use std::path::Path;
use std::time::Duration;
use stratum_dataplane::{Pipeline, PipelineOptions};

const APP: &str = r#"
app checkpoints

schema Detection {
  camera: string
  ts: timestamp
  speed_kmh: float
}

source detections: generator {
  schema = Detection
  rate = 200/s
  seed = 5
}

stream per_day {
  from = detections
  window = tumbling(1 d) by camera
  select {
    vehicles = count()
    fastest = max(speed_kmh)
  }
}

sink days: jsonl {
  from = per_day
  path = "out/days.jsonl"
}
"#;

/// The vehicles counted in a checkpoint file's open windows.
fn checkpointed_vehicles(path: &Path) -> i64 {
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let open = file["state"]["windows"]["open"].as_array().unwrap();
    open.iter()
        .flat_map(|window| window[1].as_array().unwrap())
        .map(|entry| entry[1][0]["Count"].as_i64().expect("the first aggregate is a count"))
        .sum()
}

fn emitted_vehicles(path: &Path) -> i64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["vehicles"].as_i64().unwrap())
        .sum()
}

#[test]
fn a_killed_stream_takes_up_its_open_windows_from_its_checkpoint() {
    let directory = tempfile::tempdir().unwrap();
    let application = common::application_from_text("checkpoints.stratum", APP);
    let options = PipelineOptions {
        base_dir: directory.path().into(),
        data_dir: Some(directory.path().join("data")),
        ..PipelineOptions::default()
    };
    let checkpoint = directory.path().join("data/checkpoints/per_day.json");

    // The first run dies once the stream has checkpointed twice.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let first = Pipeline::build(&application, &options).unwrap();
    let running = runtime.block_on(async { first.start() });
    let started = std::time::Instant::now();
    while !checkpoint.exists() || started.elapsed() < Duration::from_millis(2500) {
        assert!(started.elapsed() < Duration::from_secs(20), "no checkpoint at {}", checkpoint.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::mem::forget(running);
    runtime.shutdown_background();
    let held = checkpointed_vehicles(&checkpoint);
    assert!(held >= 200, "about a second of detections at least: {held}");
    // A day's window stays open unless the run crossed midnight; what closed was emitted by the first run.
    let emitted_before = emitted_vehicles(&directory.path().join("out/days.jsonl"));

    // The second run of the same stream has no new input: it takes up the checkpoint, and ending emits it.
    let second = PipelineOptions { generator_limit: Some(0), ..options.clone() };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let pipeline = Pipeline::build(&application, &second).unwrap();
    assert_eq!(pipeline.resumed, ["per_day"]);
    let summary = runtime.block_on(pipeline.run()).unwrap();
    let stream = summary.components.iter().find(|component| component.component == "per_day").unwrap();
    assert_eq!(stream.errors, 0, "the checkpoint was taken up");
    let emitted = emitted_vehicles(&directory.path().join("out/days.jsonl")) - emitted_before;
    assert_eq!(emitted, held, "every vehicle the checkpoint held is in an emitted window");
    assert!(!checkpoint.exists(), "a stream that ended cleanly leaves no checkpoint");
}
