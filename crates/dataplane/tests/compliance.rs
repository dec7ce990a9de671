//! Metrics compliance: one pipeline holds a component of every registered source, operator and sink kind, and
//! every component must report the standard metrics — events and bytes in and out, errors, dead letters, the
//! processing latency histogram, queue depth. A kind added to the registry without a component here fails.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use stratum_dataplane::component::{OPERATORS, SINKS, SOURCES, sink_kind, source_kind};
use stratum_dataplane::mqtt::EmbeddedBroker;
use stratum_dataplane::{Pipeline, PipelineOptions};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_registered_kind_reports_the_standard_metrics() {
    let application = common::application("every_kind.stratum");
    let covered_sources: BTreeSet<&str> = application.sources.iter().map(source_kind).collect();
    let covered_sinks: BTreeSet<&str> = application.sinks.iter().map(sink_kind).collect();
    for entry in SOURCES {
        assert!(covered_sources.contains(entry.kind), "every_kind.stratum has no `{}` source", entry.kind);
    }
    for entry in SINKS {
        assert!(covered_sinks.contains(entry.kind), "every_kind.stratum has no `{}` sink", entry.kind);
    }
    assert_eq!(OPERATORS.len(), 1, "a new operator kind needs a component in every_kind.stratum");

    let directory = tempfile::tempdir().unwrap();
    let mut csv = String::from("sensor,ts,value\n");
    let mut jsonl = String::new();
    for index in 0..300 {
        csv.push_str(&format!("s{},2026-01-01T00:00:{:02}Z,{}\n", index % 3, index % 60, index));
        jsonl.push_str(&format!(
            "{{\"sensor\": \"s{}\", \"ts\": \"2026-01-01T00:00:00Z\", \"value\": {index}}}\n",
            index % 3
        ));
    }
    jsonl.push_str("{\"sensor\": \"s1\", \"ts\": \"yesterday\", \"value\": 1}\n");
    std::fs::write(directory.path().join("input.csv"), csv).unwrap();
    std::fs::write(directory.path().join("input.jsonl"), jsonl).unwrap();
    let broker = EmbeddedBroker::start(
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
    )
    .unwrap();
    let options = PipelineOptions {
        base_dir: directory.path().into(),
        fast_generators: true,
        mqtt_broker: Some(broker.url()),
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::build(&application, &options).unwrap();
    let metrics = pipeline.metrics.clone();
    let stopper = pipeline.stopper();
    let running = tokio::spawn(pipeline.run());
    // The MQTT source never ends by itself: stop once the windows (3 sensors × 6 windows of 10 s in 60 s of
    // event time) have come back through the broker.
    let started = Instant::now();
    let back = || metrics.snapshot().iter().find(|m| m.component == "from_mqtt").map_or(0, |m| m.events_out);
    tokio::time::sleep(Duration::from_millis(300)).await;
    while back() < 18 {
        assert!(started.elapsed() < Duration::from_secs(30), "only {} totals came back", back());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stopper.stop();
    let summary = running.await.unwrap().unwrap();

    for snapshot in &summary.components {
        let role = if application.sources.iter().any(|s| s.name == snapshot.component) {
            "source"
        } else if application.streams.iter().any(|s| s.name == snapshot.component) {
            "stream"
        } else {
            "sink"
        };
        let name = &snapshot.component;
        assert!(snapshot.events_in > 0 && snapshot.bytes_in > 0, "{name}: nothing counted in: {snapshot:?}");
        assert_eq!(snapshot.errors, 0, "{name}: {snapshot:?}");
        match role {
            "source" => assert!(snapshot.events_out > 0 && snapshot.bytes_out > 0, "{name}: nothing counted out"),
            "stream" => {
                assert!(snapshot.events_out > 0, "{name}: nothing counted out");
                assert!(snapshot.latency_count() > 0, "{name}: no processing latency");
            }
            _ => assert!(snapshot.latency_count() > 0, "{name}: no processing latency"),
        }
    }
    let from_jsonl = summary.components.iter().find(|m| m.component == "from_jsonl").unwrap();
    assert_eq!((from_jsonl.events_out, from_jsonl.dead_letters), (300, 1));
    let text = metrics.render_prometheus();
    for name in [
        "stratum_events_in_total",
        "stratum_bytes_out_total",
        "stratum_errors_total",
        "stratum_dead_letters_total",
        "stratum_queue_depth",
        "stratum_processing_seconds_bucket",
    ] {
        assert!(text.contains(&format!("{name}{{component=\"totals\"")), "{name} missing for totals");
    }
    let written = std::fs::read_to_string(directory.path().join("out/readings.csv")).unwrap();
    assert_eq!(written.lines().count(), 601, "the dataset got a header and every generated reading");
}
