//! MQTT end to end: a publisher sends detections to wildcard topics, the pipeline windows them and publishes the
//! counts back to MQTT; through the embedded broker (MQTT 3.1.1 and 5) and, in CI's external stage, through a
//! real Mosquitto. Messages acknowledged to the broker survive a crash (the source's ingest log).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratum_dataplane::connectors::mqtt::{BrokerAddress, EmbeddedBroker};
use stratum_dataplane::{Pipeline, PipelineOptions};
use stratum_test_support::{Mosquitto, free_port};

const APP: &str = r#"app mqtt_test
schema Detection { camera: string  ts: timestamp  class: string  speed_kmh: float }
source detections: mqtt {
  topic = "traffic/+/detections"
  schema = Detection
}
stream counts {
  from = detections
  where = class in ["car", "bus"]
  window = tumbling(1 min) by camera
  select {
    vehicles = count()
  }
}
sink published: mqtt {
  from = counts
  topic = "traffic/{camera}/counts"
}
"#;

/// Subscribes to `filter` and collects (topic, payload) of what arrives.
async fn subscriber(address: &BrokerAddress, filter: &str) -> Arc<Mutex<Vec<(String, serde_json::Value)>>> {
    let received = Arc::new(Mutex::new(Vec::new()));
    let collected = received.clone();
    let mut options =
        rumqttc::MqttOptions::new(format!("test-subscriber-{}", free_port()), &address.host, address.port);
    options.set_keep_alive(Duration::from_secs(10));
    let (client, mut event_loop) = rumqttc::AsyncClient::new(options, 100);
    client.subscribe(filter, rumqttc::QoS::AtLeastOnce).await.unwrap();
    tokio::spawn(async move {
        let _client = client;
        loop {
            match event_loop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish))) => {
                    let payload = serde_json::from_slice(&publish.payload).unwrap_or(serde_json::Value::Null);
                    collected.lock().unwrap().push((publish.topic.clone(), payload));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    // Let the subscription reach the broker.
    tokio::time::sleep(Duration::from_millis(300)).await;
    received
}

/// Publishes `count` detections over 4 cameras, 100 ms of event time apart, plus one malformed message.
async fn publish(address: &BrokerAddress, count: usize) {
    let mut options = rumqttc::MqttOptions::new(format!("test-publisher-{}", free_port()), &address.host, address.port);
    options.set_keep_alive(Duration::from_secs(10)).set_inflight(100);
    let (client, mut event_loop) = rumqttc::AsyncClient::new(options, 1000);
    let acknowledged = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = acknowledged.clone();
    let polling = tokio::spawn(async move {
        loop {
            match event_loop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    for index in 0..count {
        let camera = format!("cam-{}", index % 4);
        let payload = serde_json::json!({
            "camera": camera,
            "ts": stratum_core::eval::format_timestamp(1_767_225_600_000 + index as i64 * 100),
            "class": if index % 5 == 0 { "truck" } else { "car" },
            "speed_kmh": 40.0 + (index % 30) as f64,
        });
        client
            .publish(format!("traffic/{camera}/detections"), rumqttc::QoS::AtLeastOnce, false, payload.to_string())
            .await
            .unwrap();
    }
    client.publish("traffic/cam-0/detections", rumqttc::QoS::AtLeastOnce, false, "{\"camera\": 5}").await.unwrap();
    let started = Instant::now();
    while acknowledged.load(std::sync::atomic::Ordering::Relaxed) < count + 1 {
        assert!(started.elapsed() < Duration::from_secs(30), "the broker did not acknowledge the publications");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    polling.abort();
}

/// Runs the pipeline against `broker_url`; the test's own clients speak MQTT 3.1.1 to `test_url` (the same
/// broker).
async fn round_trip(broker_url: &str, test_url: &str) {
    // One application name per run: the source's client id (and so its broker session) comes from it.
    let name = format!("mqtt_test_{}", broker_url.split("://").next().unwrap());
    let application =
        common::application_from_text("mqtt.stratum", &APP.replace("app mqtt_test", &format!("app {name}")));
    let test_address = BrokerAddress::parse(test_url).unwrap();
    let received = subscriber(&test_address, "traffic/+/counts").await;
    let directory = tempfile::tempdir().unwrap();
    let options = PipelineOptions {
        base_dir: directory.path().into(),
        mqtt_broker: Some(broker_url.into()),
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::build(&application, &options).unwrap();
    let stopper = pipeline.stopper();
    let metrics = pipeline.metrics.clone();
    let dead_letters = pipeline.dead_letters.clone();
    let running = tokio::spawn(pipeline.run());
    // The source connects and subscribes before anything is published.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let count = 2000;
    tokio::time::timeout(Duration::from_secs(60), publish(&test_address, count)).await.expect("publishing finishes");
    let started = Instant::now();
    let events_in = |name: &str| metrics.snapshot().iter().find(|m| m.component == name).map_or(0, |m| m.events_in);
    while events_in("detections") < count as u64 + 1 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "only {} messages reached the source",
            events_in("detections")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stopper.stop();
    let summary = running.await.unwrap().unwrap();
    let source = summary.components.iter().find(|m| m.component == "detections").unwrap();
    assert_eq!(source.events_out, count as u64, "every well-formed message entered the pipeline");
    assert_eq!(source.dead_letters, 1);
    assert!(dead_letters.in_memory()[0].contains("field `ts` is missing"), "{:?}", dead_letters.in_memory());

    // The counts, published per camera once the stop drained the windows.
    let started = Instant::now();
    let expected_windows = 4 * 4; // 200 s of event time: minutes 0-3, for 4 cameras
    while received.lock().unwrap().len() < expected_windows {
        assert!(started.elapsed() < Duration::from_secs(20), "only {:?}", received.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), expected_windows);
    let mut per_camera: BTreeMap<String, i64> = BTreeMap::new();
    for (topic, payload) in &received {
        let camera = payload["camera"].as_str().unwrap();
        assert_eq!(topic, &format!("traffic/{camera}/counts"));
        *per_camera.entry(camera.into()).or_default() += payload["vehicles"].as_i64().unwrap();
    }
    // Every fifth detection is a truck, which the filter drops.
    assert_eq!(per_camera.values().sum::<i64>(), (count - count / 5) as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detections_flow_through_the_embedded_broker_over_mqtt_3_and_5() {
    let broker = EmbeddedBroker::start(
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
    )
    .unwrap();
    round_trip(&broker.url(), &broker.url()).await;
    round_trip(&broker.url5(), &broker.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Mosquitto; .ci/run installs it and runs this in its external stage"]
async fn detections_flow_through_mosquitto() {
    let directory = tempfile::tempdir().unwrap();
    // Mosquitto drops QoS 1 messages for a subscriber with more than `max_queued_messages` waiting (1000 by
    // default); a debug build behind a flood of publications can fall that far behind, so the queue is larger.
    let mosquitto = Mosquitto::start(directory.path(), "max_queued_messages 100000");
    let port = mosquitto.port;
    let url = format!("mqtt://127.0.0.1:{port}");
    round_trip(&url, &url).await;
    round_trip(&format!("mqtt5://127.0.0.1:{port}"), &url).await;
}

/// A crash, right after the broker got every PUBACK: the source had kept the messages in its ingest log before
/// acknowledging them, and its next run sends them on. Every acknowledged message reaches the file.
#[test]
fn messages_acknowledged_to_the_broker_survive_a_crash_right_after() {
    let broker = EmbeddedBroker::start(
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
    )
    .unwrap();
    let text = r#"app mqtt_ingest
schema Detection { camera: string  ts: timestamp  class: string  speed_kmh: float }
source detections: mqtt { topic = "traffic/+/detections"  schema = Detection }
sink kept: jsonl { from = detections  path = "out/kept.jsonl" }
"#;
    let application = common::application_from_text("ingest.stratum", text);
    let directory = tempfile::tempdir().unwrap();
    let options = PipelineOptions {
        base_dir: directory.path().into(),
        data_dir: Some(directory.path().join("data")),
        mqtt_broker: Some(broker.url()),
        ..PipelineOptions::default()
    };
    let address = BrokerAddress::parse(&broker.url()).unwrap();
    let count = 2000;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let running = runtime.block_on(async {
        let running = Pipeline::build(&application, &options).unwrap().start();
        // The source connects and subscribes before anything is published.
        tokio::time::sleep(Duration::from_millis(500)).await;
        tokio::time::timeout(Duration::from_secs(60), publish(&address, count)).await.expect("publishing finishes");
        running
    });
    std::mem::forget(running);
    runtime.shutdown_background();

    let kept = directory.path().join("out/kept.jsonl");
    let distinct = || -> std::collections::BTreeSet<String> {
        std::fs::read_to_string(&kept)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["ts"].as_str().unwrap().to_string())
            .collect()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let pipeline = Pipeline::build(&application, &options).unwrap();
        let stopper = pipeline.stopper();
        let running = tokio::spawn(pipeline.run());
        let started = Instant::now();
        while distinct().len() < count {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{} of {count} acknowledged messages reached the file",
                distinct().len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stopper.stop();
        running.await.unwrap().unwrap();
    });
    assert_eq!(distinct().len(), count);
}
