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

/// A Parquet file of several row groups is read a batch at a time, and a row whose value does not fit its column's
/// type goes to the dead letters naming its row, while every other row is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_source_reads_every_row_group_and_sends_a_row_that_does_not_fit_to_the_dead_letters() {
    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    use std::sync::Arc;
    let directory = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(directory.path().join("in")).unwrap();
    // 5,000 rows in row groups of 2,000; rows 10 and 4,001 (from 1) hold a count that is not a number. A column
    // the schema does not name is in the file too, and is not read.
    let rows = 5_000;
    let cameras: Vec<String> = (0..rows).map(|row| format!("cam{}", row % 7)).collect();
    let vehicles: Vec<String> =
        (0..rows).map(|row| if row == 9 || row == 4_000 { "many".to_string() } else { row.to_string() }).collect();
    let unused: Vec<String> = (0..rows).map(|row| "x".repeat(row % 50)).collect();
    let batch = RecordBatch::try_from_iter([
        ("camera", Arc::new(StringArray::from(cameras)) as ArrayRef),
        ("vehicles", Arc::new(StringArray::from(vehicles)) as ArrayRef),
        ("unused", Arc::new(StringArray::from(unused)) as ArrayRef),
    ])
    .unwrap();
    let file = std::fs::File::create(directory.path().join("in/counts.parquet")).unwrap();
    let properties =
        parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(2_000)).build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(properties)).unwrap();
    writer.write(&batch).unwrap();
    let metadata = writer.close().unwrap();
    assert_eq!(metadata.num_row_groups(), 3);

    let reader = common::application_from_text(
        "reader.stratum",
        "app reader\nschema Count { camera: string  vehicles: int }\nsource counts: file { path = \"in/counts.parquet\"  format = parquet  schema = Count }\nsink copy: csv { from = counts  path = \"out/copy.csv\" }\n",
    );
    let pipeline = Pipeline::build(&reader, &options(directory.path())).unwrap();
    let dead_letters = pipeline.dead_letters.clone();
    let read = pipeline.run().await.unwrap();
    let counts = read.components.iter().find(|m| m.component == "counts").unwrap();
    assert_eq!((counts.events_in, counts.events_out), (5_000, 4_998));
    let copy = std::fs::read_to_string(directory.path().join("out/copy.csv")).unwrap();
    let mut lines = copy.lines();
    assert_eq!(lines.next(), Some("camera,vehicles"));
    let expected: Vec<String> =
        (0..rows).filter(|row| *row != 9 && *row != 4_000).map(|row| format!("cam{},{row}", row % 7)).collect();
    assert_eq!(lines.collect::<Vec<_>>(), expected);
    let letters = dead_letters.in_memory();
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(letters[0].contains("row 10 ") && letters[0].contains("`many` is not an int"), "{letters:?}");
    assert!(letters[1].contains("row 4001 "), "{letters:?}");
}

/// `simulate` stands in for the outside world on both ends: a NATS source and a file source whose file is not on
/// this machine become generators, and a Kafka sink that names no brokers writes every record it is given to
/// `.stratum/simulated/NAME.jsonl` — counted against the records, line for line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulating_stands_in_for_missing_sources_and_for_sinks_that_name_no_server() {
    let text = r#"app outside
schema Reading { machine: string  ts: timestamp  value: float }
source readings: nats { subject = "plant.readings"  schema = Reading  rate = 100/s }
source orders: file { path = "/var/lib/not-here/orders.csv"  schema = Reading  mode = tail  rate = 10/s }
stream high {
  from = readings
  where = value > 0.5
}
sink queue: kafka { from = high  topic = "high-readings" }
sink order_log: jsonl { from = orders  path = "out/orders.jsonl" }
"#;
    let application = common::application_from_text("outside.stratum", text);
    // What simulating them costs, on average: the declared rates of the sources behind what runs.
    let rate = |only: &[&str]| {
        let only: Vec<String> = only.iter().map(|name| name.to_string()).collect();
        stratum_dataplane::pipeline::events_per_second(&application, &only).unwrap()
    };
    assert_eq!(rate(&[]), 110.0);
    assert_eq!(rate(&["order_log"]), 10.0);
    let directory = tempfile::tempdir().unwrap();
    let options = PipelineOptions { simulate: true, generator_limit: Some(2_000), ..options(directory.path()) };
    let summary = Pipeline::build(&application, &options).unwrap().run().await.unwrap();
    let metrics: BTreeMap<&str, _> = summary.components.iter().map(|m| (m.component.as_str(), m)).collect();
    assert_eq!(metrics["readings"].kind, "nats (simulated)");
    assert_eq!(metrics["orders"].kind, "file (simulated)");
    assert_eq!(metrics["queue"].kind, "kafka (simulated)");
    assert_eq!(metrics["readings"].events_out, 2_000);
    assert_eq!(metrics["orders"].events_out, 2_000);
    let written = std::fs::read_to_string(directory.path().join(".stratum/simulated/queue.jsonl")).unwrap();
    assert!(metrics["queue"].events_in > 0);
    assert_eq!(written.lines().count() as u64, metrics["queue"].events_in);
    assert_eq!(written.lines().count() as u64, metrics["high"].events_out);
    for line in written.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(record["value"].as_f64().unwrap() > 0.5, "{record}");
    }
}
