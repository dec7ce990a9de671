//! Metrics compliance: one pipeline holds a component of every registered source, operator and sink kind, and
//! every component must report the standard metrics — events and bytes in and out, errors, dead letters, the
//! processing latency histogram, queue depth. A kind added to the registry without a component here fails.
//!
//! NATS needs a server: the first test covers every kind but NATS on embedded peers (rumqttd, an rdkafka mock
//! cluster, our own HTTP source); the second, run in CI's external stage, adds NATS against a real nats-server.

mod common;

use common::{NatsServer, free_port};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use stratum_dataplane::connectors::mqtt::EmbeddedBroker;
use stratum_dataplane::registry::{OPERATORS, SINKS, SOURCES};
use stratum_dataplane::{Pipeline, PipelineOptions};

/// Kinds that need a peer outside the process, covered only by the external test.
const EXTERNAL_KINDS: &[&str] = &["nats"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_registered_kind_reports_the_standard_metrics() {
    every_kind_reports_the_standard_metrics(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server (CI's external stage)"]
async fn nats_components_report_the_standard_metrics_too() {
    let nats = NatsServer::start();
    every_kind_reports_the_standard_metrics(Some(&nats)).await;
}

async fn every_kind_reports_the_standard_metrics(nats: Option<&NatsServer>) {
    let kafka = rdkafka::mocking::MockCluster::new(1).unwrap();
    kafka.create_topic("doubled", 2, 1).unwrap();
    let http_port = free_port();
    let app_directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps");
    let mut text = std::fs::read_to_string(app_directory.join("every_kind.stratum")).unwrap();
    if let Some(nats) = nats {
        text.push_str(&std::fs::read_to_string(app_directory.join("every_kind_nats.stratum")).unwrap());
        text = text.replace("{NATS}", &nats.url);
    }
    let text = text.replace("{KAFKA}", &kafka.bootstrap_servers()).replace("{HTTP_PORT}", &http_port.to_string());
    let application = common::application_from_text("every_kind.stratum", &text);
    let covered_sources: BTreeSet<&str> = application.sources.iter().map(|source| source.kind.name()).collect();
    let covered_sinks: BTreeSet<&str> = application.sinks.iter().map(|sink| sink.kind.name()).collect();
    let required = |kind: &str| nats.is_some() || !EXTERNAL_KINDS.contains(&kind);
    for entry in SOURCES.iter().filter(|entry| required(entry.kind)) {
        assert!(covered_sources.contains(entry.kind), "every_kind.stratum has no `{}` source", entry.kind);
    }
    for entry in SINKS.iter().filter(|entry| required(entry.kind)) {
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
    // The source's persistent session exists before the pipeline runs, so that the broker keeps the totals the
    // sink publishes even if they come before the source has subscribed (as after a restart).
    subscribe_ahead(broker.v4, "stratum-every_kind-from_mqtt", "totals/#").await;
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
    // Broker sources never end by themselves: stop once everything has come back — the windows (3 sensors × 6
    // windows of 10 s in 60 s of event time) through MQTT, the 300 doubled readings through Kafka and then the
    // webhook, and readings the test publishes over NATS.
    let publisher = match nats {
        Some(nats) => Some(async_nats::connect(&nats.url).await.unwrap()),
        None => None,
    };
    let started = Instant::now();
    let out_of =
        |component: &str| metrics.snapshot().iter().find(|m| m.component == component).map_or(0, |m| m.events_out);
    let mut waiting_for = vec![("from_mqtt", 18), ("from_kafka", 300), ("from_http", 300)];
    if nats.is_some() {
        waiting_for.push(("from_nats", 1));
    }
    loop {
        let missing: Vec<_> = waiting_for.iter().filter(|(component, wanted)| out_of(component) < *wanted).collect();
        if missing.is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "still waiting for {missing:?}");
        // NATS delivers only to subscribers present when a message is published: publish until one arrives.
        if let Some(publisher) = &publisher {
            let reading = r#"{"sensor": "s9", "ts": "2026-01-01T00:00:00Z", "value": 1.5}"#;
            publisher.publish("readings.s9", reading.into()).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
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
    let through_http = std::fs::read_to_string(directory.path().join("out/http_back.jsonl")).unwrap();
    assert!(through_http.lines().count() >= 300, "the doubled readings came back through Kafka and the webhook");
}

/// Opens a persistent MQTT session with a subscription, and leaves it for the client id's next connection.
async fn subscribe_ahead(broker: std::net::SocketAddr, client_id: &str, filter: &str) {
    let mut options = rumqttc::MqttOptions::new(client_id, broker.ip().to_string(), broker.port());
    options.set_clean_session(false).set_keep_alive(Duration::from_secs(10));
    let (client, mut event_loop) = rumqttc::AsyncClient::new(options, 10);
    client.subscribe(filter, rumqttc::QoS::AtLeastOnce).await.unwrap();
    loop {
        match event_loop.poll().await.unwrap() {
            rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => break,
            _ => continue,
        }
    }
    client.disconnect().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(1), async { while event_loop.poll().await.is_ok() {} }).await;
}
