//! MQTT end to end: events per second from a publisher through a broker into the pipeline's MQTT source and a
//! keyed window, through the embedded broker and through Mosquitto, next to Mosquitto's own limit measured with
//! its tools (mosquitto_pub -l piping lines to mosquitto_sub -C) in the same run. Every message is QoS 1. Each
//! pipeline runs twice: acknowledging what is in the pipeline (no data directory), and with its ingest log.
//!
//! Run: `cargo bench -p stratum-dataplane --bench mqtt` (needs the Debian package `mosquitto` and
//! `mosquitto-clients`); STRATUM_MQTT_BENCH_MESSAGES sets the count (default 200,000).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use stratum_dataplane::connectors::mqtt::{BrokerAddress, EmbeddedBroker};
use stratum_dataplane::{Pipeline, PipelineOptions};
use stratum_test_support::{Mosquitto, free_port};

const APP: &str = r#"app mqtt_bench
schema Detection { camera: string  ts: timestamp  speed_kmh: float }
source detections: mqtt {
  topic = "bench/+/detections"
  schema = Detection
}
stream counts {
  from = detections
  where = speed_kmh >= 0
  window = tumbling(1 min) by camera
  select {
    vehicles = count()
    avg_speed = avg(speed_kmh)
  }
}
sink out: jsonl { from = counts  path = "counts.jsonl" }
"#;

fn payload(index: usize) -> String {
    format!(
        "{{\"camera\":\"cam-{}\",\"ts\":\"{}\",\"speed_kmh\":{}}}",
        index % 100,
        stratum_core::eval::format_timestamp(1_767_225_600_000 + index as i64),
        (index % 120) as f64
    )
}

/// Messages per second from the first publication until the pipeline's source has taken them all. A `durable`
/// pipeline has a data directory: its source keeps each batch in its ingest log (synced) before acknowledging it.
async fn through_pipeline(url: &str, messages: usize, durable: bool) -> f64 {
    let checked = stratum_lang::check_text(
        "bench.stratum",
        &APP.replace("app mqtt_bench", &format!("app bench_{}", free_port())),
    );
    let application = checked.application;
    let directory = tempfile::tempdir().unwrap();
    let options = PipelineOptions {
        base_dir: directory.path().into(),
        mqtt_broker: Some(url.into()),
        data_dir: durable.then(|| directory.path().join("data")),
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::build(&application, &options).unwrap();
    let metrics = pipeline.metrics.clone();
    let stopper = pipeline.stopper();
    let running = tokio::spawn(pipeline.run());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let address = BrokerAddress::parse(url).unwrap();
    let mut options =
        rumqttc::MqttOptions::new(format!("bench-publisher-{}", free_port()), &address.host, address.port);
    options.set_keep_alive(Duration::from_secs(30)).set_inflight(1000);
    let (client, mut event_loop) = rumqttc::AsyncClient::new(options, 10_000);
    let polling = tokio::spawn(async move { while event_loop.poll().await.is_ok() {} });
    let started = Instant::now();
    let publishing = tokio::spawn(async move {
        for index in 0..messages {
            client
                .publish(
                    format!("bench/cam-{}/detections", index % 100),
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    payload(index),
                )
                .await
                .unwrap();
        }
        client
    });
    let taken = || metrics.snapshot().iter().find(|m| m.component == "detections").map_or(0, |m| m.events_out);
    while taken() < messages as u64 {
        assert!(started.elapsed() < Duration::from_secs(300), "only {} of {messages} arrived", taken());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(publishing.await);
    polling.abort();
    stopper.stop();
    running.await.unwrap().unwrap();
    messages as f64 / seconds
}

/// Mosquitto's own tools: mosquitto_sub waits for `messages` messages while mosquitto_pub -l publishes lines, in
/// runs of 20,000 (mosquitto_pub -l at QoS 1 ends before delivering everything when given many more at once).
fn mosquitto_tools(port: u16, messages: usize) -> f64 {
    let mut subscriber = Command::new("mosquitto_sub")
        .args(["-p", &port.to_string(), "-t", "tools/#", "-q", "1", "-C", &messages.to_string(), "-W", "300"])
        .stdout(Stdio::null())
        .spawn()
        .expect("mosquitto_sub runs (Debian package mosquitto-clients)");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    for first in (0..messages).step_by(20_000) {
        let lines: String = (first..(first + 20_000).min(messages)).map(|index| payload(index) + "\n").collect();
        let mut publisher = Command::new("mosquitto_pub")
            .args(["-p", &port.to_string(), "-t", "tools/detections", "-q", "1", "-l"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("mosquitto_pub runs");
        publisher.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
        publisher.wait().unwrap();
    }
    let status = subscriber.wait().unwrap();
    assert!(status.success(), "mosquitto_sub did not receive every message in time");
    messages as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let messages: usize =
        std::env::var("STRATUM_MQTT_BENCH_MESSAGES").ok().and_then(|text| text.parse().ok()).unwrap_or(200_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let embedded = EmbeddedBroker::start(
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
    )
    .unwrap();
    let rate = runtime.block_on(through_pipeline(&embedded.url(), messages, false));
    println!("publisher -> embedded broker (rumqttd) -> pipeline: {rate:.0} messages/s");
    let durable = runtime.block_on(through_pipeline(&embedded.url(), messages, true));
    println!("publisher -> embedded broker (rumqttd) -> pipeline with its ingest log: {durable:.0} messages/s");
    println!("ratio with / without the ingest log: {:.2}", durable / rate);

    let directory = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start(directory.path(), "max_queued_messages 1000000\nmax_inflight_messages 1000");
    let port = mosquitto.port;
    let through = runtime.block_on(through_pipeline(&format!("mqtt://127.0.0.1:{port}"), messages, false));
    println!("publisher -> Mosquitto -> pipeline: {through:.0} messages/s");
    let durable = runtime.block_on(through_pipeline(&format!("mqtt://127.0.0.1:{port}"), messages, true));
    println!("publisher -> Mosquitto -> pipeline with its ingest log: {durable:.0} messages/s");
    let tools = mosquitto_tools(port, messages);
    println!("mosquitto_pub -> Mosquitto -> mosquitto_sub: {tools:.0} messages/s");
    println!("ratio pipeline / Mosquitto's tools: {:.2}", through / tools);
}
