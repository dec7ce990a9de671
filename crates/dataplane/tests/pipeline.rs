//! End-to-end runs of pipelines built from checked `.stratum` files: generator → filter → keyed window → Parquet
//! and JSON lines files, checked record by record against an independent computation over the same events.

mod common;

use std::collections::BTreeMap;
use stratum_dataplane::{Pipeline, PipelineOptions};

fn options(directory: &std::path::Path) -> PipelineOptions {
    PipelineOptions { base_dir: directory.into(), fast_generators: true, ..PipelineOptions::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_filter_window_to_parquet_and_jsonl() {
    let application = common::application("counts.stratum");
    let directory = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::build(&application, &options(directory.path())).unwrap();
    let summary = pipeline.run().await.unwrap();
    let metrics: BTreeMap<&str, _> = summary.components.iter().map(|m| (m.component.as_str(), m)).collect();
    assert_eq!(metrics["detections"].events_out, 20_000);
    assert_eq!(metrics["counts"].events_in, 20_000);
    // 20,000 events at 100/s on average; at midnight, where simulated time starts, traffic is light and they
    // span about 17 minutes: several windows for each of 8 cameras (counted exactly against the raw events below).
    let windows = metrics["counts"].events_out;
    assert!(windows > 8 * 4, "{windows} windows");
    assert_eq!(metrics["history"].events_in, windows);

    let files: Vec<_> = walk(&directory.path().join("out/history"));
    assert!(files.iter().all(|file| file.extension().is_some_and(|extension| extension == "parquet")), "{files:?}");
    assert_eq!(files.len(), 8, "one part per camera (all in hour 0): {files:?}");
    let speeding = std::fs::read_to_string(directory.path().join("out/speeding.jsonl")).unwrap();
    assert_eq!(speeding.lines().count() as u64, metrics["speeding_events"].events_out);
    let first: serde_json::Value = serde_json::from_str(speeding.lines().next().unwrap()).unwrap();
    assert_eq!(
        first.as_object().unwrap().keys().cloned().collect::<Vec<_>>(),
        ["camera", "speed_kmh", "ts", "vehicle"]
    );
    assert!(first["ts"].as_str().unwrap().starts_with("2026-01-01T00:"), "{first}");

    // The windows, computed independently from the raw events.
    let mut expected: BTreeMap<(String, i64), Vec<f64>> = BTreeMap::new();
    let raw = std::fs::read_to_string(directory.path().join("out/raw.jsonl")).unwrap();
    for line in raw.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        let speed = event["speed_kmh"].as_f64().unwrap();
        if !["car", "truck", "bus"].contains(&event["class"].as_str().unwrap()) || speed < 0.0 {
            continue;
        }
        let time = stratum_core::eval::parse_timestamp(event["ts"].as_str().unwrap()).unwrap();
        expected
            .entry((event["camera"].as_str().unwrap().to_string(), time / 60_000 * 60_000))
            .or_default()
            .push(speed);
    }
    assert_eq!(windows as usize, expected.len(), "one window per camera and minute that had vehicles");
    let mut found = BTreeMap::new();
    for file in &files {
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
                .unwrap()
                .build()
                .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let column = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
            let cameras = column("camera");
            let cameras = cameras.as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
            let starts = column("window_start");
            let starts = starts.as_any().downcast_ref::<arrow_array::TimestampMillisecondArray>().unwrap();
            let vehicles = column("vehicles");
            let vehicles = vehicles.as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
            let averages = column("avg_speed");
            let averages = averages.as_any().downcast_ref::<arrow_array::Float64Array>().unwrap();
            let speeding = column("speeding");
            let speeding = speeding.as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
            let fastest = column("fastest");
            let fastest = fastest.as_any().downcast_ref::<arrow_array::Float64Array>().unwrap();
            for row in 0..batch.num_rows() {
                found.insert(
                    (cameras.value(row).to_string(), starts.value(row)),
                    (vehicles.value(row), averages.value(row), speeding.value(row), fastest.value(row)),
                );
            }
        }
    }
    assert_eq!(found.len(), expected.len());
    for (key, speeds) in &expected {
        let (vehicles, average, speeding, fastest) = found[key];
        assert_eq!(vehicles, speeds.len() as i64, "{key:?}");
        assert!((average - speeds.iter().sum::<f64>() / speeds.len() as f64).abs() < 1e-9, "{key:?}");
        assert_eq!(speeding, speeds.iter().filter(|speed| **speed > 60.0).count() as i64, "{key:?}");
        assert_eq!(fastest, speeds.iter().copied().fold(f64::MIN, f64::max), "{key:?}");
    }
}

fn walk(directory: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_written_by_one_pipeline_is_read_by_another() {
    let application = common::application("counts.stratum");
    let directory = tempfile::tempdir().unwrap();
    let written = Pipeline::build(&application, &options(directory.path())).unwrap().run().await.unwrap();
    let windows = written.components.iter().find(|m| m.component == "history").unwrap().events_in;
    let reader = common::application_from_text(
        "reader.stratum",
        "app reader\nschema Count { camera: string  window_start: timestamp  window_end: timestamp  vehicles: int }\nsource history: file { path = \"out/history\"  format = parquet  schema = Count }\nsink copy: csv { from = history  path = \"out/copy.csv\" }\n",
    );
    let read = Pipeline::build(&reader, &options(directory.path())).unwrap().run().await.unwrap();
    assert_eq!(read.components.iter().find(|m| m.component == "history").unwrap().events_out, windows);
    let copy = std::fs::read_to_string(directory.path().join("out/copy.csv")).unwrap();
    assert_eq!(copy.lines().count() as u64, windows + 1);
    assert!(copy.starts_with("camera,window_start,window_end,vehicles\n"), "{copy}");
}
