//! The HTTP, Kafka and NATS connectors end to end: pushes answered by what the pipeline took, a webhook that
//! rides out a failing receiver, Kafka offsets committed (only for what became durable) so that a restarted
//! consumer goes on where it stopped,
//! and (in CI's external stage, against nats-server) NATS subjects with placeholders both ways.

mod common;

use common::{NatsServer, free_port};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratum_dataplane::{Pipeline, PipelineOptions, RunSummary};

fn options(directory: &std::path::Path) -> PipelineOptions {
    PipelineOptions { base_dir: directory.into(), fast_generators: true, ..PipelineOptions::default() }
}

/// Waits until `condition` holds, failing after 30 s with `what`.
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn events_out(summary: &RunSummary, component: &str) -> u64 {
    summary.components.iter().find(|m| m.component == component).map_or(0, |m| m.events_out)
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_pushes_are_answered_with_what_the_pipeline_took() {
    let port = free_port();
    let text = format!(
        r#"app push
schema Reading {{ sensor: string  value: float }}
source readings: http {{
  path = "/v1/readings"
  port = {port}
  schema = Reading
}}
sink kept: jsonl {{
  from = readings
  path = "out/kept.jsonl"
}}
"#
    );
    let application = common::application_from_text("push.stratum", &text);
    let directory = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::build(&application, &options(directory.path())).unwrap();
    let (stopper, dead_letters) = (pipeline.stopper(), pipeline.dead_letters.clone());
    let running = tokio::spawn(pipeline.run());
    let client = common::http_client();
    let url = format!("http://127.0.0.1:{port}/v1/readings");
    let post = |body: String| {
        let request = client.post(&url).body(body);
        async move {
            // The server starts with the pipeline: connection refused means not yet.
            loop {
                if let Ok(response) = request.try_clone().unwrap().send().await {
                    let status = response.status().as_u16();
                    return (status, serde_json::from_str::<Value>(&response.text().await.unwrap()).unwrap());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    let (status, answer) = post(r#"{"sensor": "a", "value": 1}"#.into()).await;
    assert_eq!((status, &answer["accepted"]), (200, &json!(1)), "{answer}");
    let (status, answer) = post(r#"[{"sensor": "b", "value": 2}, {"sensor": "c", "value": "high"}]"#.into()).await;
    assert_eq!((status, &answer["accepted"], &answer["rejected"]), (200, &json!(1), &json!(1)), "{answer}");
    assert!(answer["errors"][0].as_str().unwrap().contains("field `value`"), "{answer}");
    let (status, answer) = post("{\"sensor\": \"d\", \"value\": 4}\n{\"sensor\": \"e\", \"value\": 5}\n".into()).await;
    assert_eq!((status, &answer["accepted"]), (200, &json!(2)), "{answer}");
    let (status, answer) = post("not json".into()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["errors"][0].as_str().unwrap().starts_with("line 1: not JSON"), "{answer}");
    let wrong_path = client.post(format!("http://127.0.0.1:{port}/v1/other")).body("{}").send().await.unwrap();
    assert_eq!(wrong_path.status().as_u16(), 404);
    assert!(wrong_path.text().await.unwrap().contains("/v1/readings"), "a 404 lists the paths that exist");
    assert_eq!(client.get(&url).send().await.unwrap().status().as_u16(), 405);

    stopper.stop();
    let summary = running.await.unwrap().unwrap();
    assert_eq!(events_out(&summary, "readings"), 4);
    let sensors: Vec<Value> =
        lines(&directory.path().join("out/kept.jsonl")).iter().map(|l| l["sensor"].clone()).collect();
    assert_eq!(sensors, vec![json!("a"), json!("b"), json!("d"), json!("e")]);
    assert_eq!(dead_letters.in_memory().len(), 2, "the bad item and the bad line are dead letters");
    // The port is free again once the source has stopped.
    std::net::TcpListener::bind(("0.0.0.0", port)).expect("the HTTP source released its port");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_source_with_a_certificate_takes_pushes_over_https_only() {
    let port = free_port();
    let directory = tempfile::tempdir().unwrap();
    let (authority, certificate, key) = stratum_test_support::authority_and_certificate("ingest.example");
    std::fs::create_dir_all(directory.path().join("tls")).unwrap();
    std::fs::write(directory.path().join("tls/ingest.pem"), &certificate).unwrap();
    std::fs::write(directory.path().join("tls/ingest.key"), &key).unwrap();
    let text = format!(
        r#"app push
schema Reading {{ sensor: string  value: float }}
source readings: http {{
  path = "/v1/readings"
  port = {port}
  certificate = "tls/ingest.pem"
  private_key = "tls/ingest.key"
  schema = Reading
}}
sink kept: jsonl {{ from = readings  path = "out/kept.jsonl" }}
"#
    );
    let application = common::application_from_text("push.stratum", &text);
    let pipeline = Pipeline::build(&application, &options(directory.path())).unwrap();
    let stopper = pipeline.stopper();
    let running = tokio::spawn(pipeline.run());
    let _ = common::http_client();
    let tls = stratum_dataplane::tls::ClientTls::new(&authority, "ingest.example").unwrap();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls.config())
        .resolve("ingest.example", std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .unwrap();
    let url = format!("https://ingest.example:{port}/v1/readings");
    let answer = loop {
        if let Ok(response) = client.post(&url).body(r#"{"sensor": "a", "value": 1}"#).send().await {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(answer.status().as_u16(), 200, "{:?}", answer.text().await);
    // Plain HTTP to the same port gets no answer: the server speaks only TLS.
    let plain = common::http_client().post(format!("http://127.0.0.1:{port}/v1/readings")).body("{}").send().await;
    assert!(plain.is_err() || plain.is_ok_and(|response| response.status().as_u16() != 200));
    stopper.stop();
    running.await.unwrap().unwrap();
    let kept = lines(&directory.path().join("out/kept.jsonl"));
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["sensor"], "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_source_whose_certificate_cannot_be_read_says_which_file() {
    let directory = tempfile::tempdir().unwrap();
    let text = r#"app push
schema Reading { sensor: string  value: float }
source readings: http { path = "/in"  certificate = "tls/missing.pem"  private_key = "tls/missing.key"  schema = Reading }
sink kept: jsonl { from = readings  path = "out/kept.jsonl" }
"#;
    let application = common::application_from_text("push.stratum", text);
    let error = Pipeline::build(&application, &options(directory.path())).err().expect("refused").to_string();
    assert!(error.contains("readings") && error.contains("tls/missing.pem"), "{error}");
}

/// A webhook receiver on a free port that fails the first `failures` requests with 503 and keeps the records
/// of the others; a `refuse` receiver answers 422 to everything.
async fn receiver(failures: usize, refuse: bool) -> (u16, Arc<Mutex<Vec<Value>>>, Arc<AtomicUsize>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let requests = Arc::new(AtomicUsize::new(0));
    let (kept, counted) = (received.clone(), requests.clone());
    let handler = move |body: axum::body::Bytes| {
        let (kept, counted) = (kept.clone(), counted.clone());
        async move {
            let attempt = counted.fetch_add(1, Ordering::SeqCst);
            if refuse {
                return (axum::http::StatusCode::UNPROCESSABLE_ENTITY, "unknown sensor".to_string());
            }
            if attempt < failures {
                return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy".to_string());
            }
            let records: Vec<Value> = serde_json::from_slice(&body).unwrap();
            kept.lock().unwrap().extend(records);
            (axum::http::StatusCode::OK, String::new())
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = axum::Router::new().route("/hook", axum::routing::post(handler));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (port, received, requests)
}

fn webhook_app(port: u16, retries: u32) -> stratum_core::ir::Application {
    let text = format!(
        r#"app hook
schema Reading {{ sensor: string  ts: timestamp  value: float }}
source readings: generator {{
  schema = Reading
  rate = 100/s
  count = 2500
}}
sink hook: http {{
  from = readings
  url = "http://127.0.0.1:{port}/hook"
  retries = {retries}
}}
"#
    );
    common::application_from_text("hook.stratum", &text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_tries_again_until_the_receiver_takes_every_record() {
    let (port, received, requests) = receiver(3, false).await;
    let directory = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::build(&webhook_app(port, 5), &options(directory.path())).unwrap();
    let dead_letters = pipeline.dead_letters.clone();
    let summary = pipeline.run().await.unwrap();
    assert_eq!(received.lock().unwrap().len(), 2500, "every record arrived once, in requests of at most 1000");
    assert!(requests.load(Ordering::SeqCst) >= 3 + 3);
    let hook = summary.components.iter().find(|m| m.component == "hook").unwrap();
    assert_eq!(hook.errors, 3, "each failed attempt is counted");
    assert!(dead_letters.in_memory().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_webhook_keeps_its_records_as_dead_letters() {
    let (port, received, requests) = receiver(0, true).await;
    let directory = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::build(&webhook_app(port, 5), &options(directory.path())).unwrap();
    let dead_letters = pipeline.dead_letters.clone();
    pipeline.run().await.unwrap();
    assert!(received.lock().unwrap().is_empty());
    let letters = dead_letters.in_memory();
    assert_eq!(letters.len(), 2500, "every refused record is kept");
    assert!(letters[0].contains("422") && letters[0].contains("unknown sensor"), "{}", letters[0]);
    // A 422 will not change by asking again: one request per batch, no retries.
    assert!(requests.load(Ordering::SeqCst) <= 3 * 2, "{} requests", requests.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_webhook_gives_up_after_its_retries() {
    let port = free_port();
    let directory = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::build(&webhook_app(port, 1), &options(directory.path())).unwrap();
    let dead_letters = pipeline.dead_letters.clone();
    pipeline.run().await.unwrap();
    let letters = dead_letters.in_memory();
    assert_eq!(letters.len(), 2500);
    assert!(letters[0].contains("gave up after 2 attempts"), "{}", letters[0]);
}

fn kafka_producer_app(brokers: &str, count: u64) -> stratum_core::ir::Application {
    let text = format!(
        r#"app produce
schema Reading {{ sensor: string  ts: timestamp  value: float }}
source readings: generator {{
  schema = Reading
  rate = 1000/s
  count = {count}
}}
sink out: kafka {{
  from = readings
  topic = "readings"
  brokers = ["{brokers}"]
}}
"#
    );
    common::application_from_text("produce.stratum", &text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_consumer_goes_on_from_its_committed_offsets() {
    let kafka = rdkafka::mocking::MockCluster::new(1).unwrap();
    kafka.create_topic("readings", 3, 1).unwrap();
    let brokers = kafka.bootstrap_servers();
    let directory = tempfile::tempdir().unwrap();
    let consumer_text = format!(
        r#"app consume
schema Reading {{ sensor: string  ts: timestamp  value: float }}
source readings: kafka {{
  topic = "readings"
  brokers = ["{brokers}"]
  group = "archive"
  schema = Reading
}}
sink archive: jsonl {{
  from = readings
  path = "out/archive.jsonl"
}}
"#
    );
    let consumer_app = common::application_from_text("consume.stratum", &consumer_text);

    let produced = Pipeline::build(&kafka_producer_app(&brokers, 1000), &options(directory.path())).unwrap();
    let summary = produced.run().await.unwrap();
    assert_eq!(summary.components.iter().find(|m| m.component == "out").unwrap().errors, 0);

    // First run: read the 1000, then stop.
    let consumer = Pipeline::build(&consumer_app, &options(directory.path())).unwrap();
    let (stopper, metrics) = (consumer.stopper(), consumer.metrics.clone());
    let running = tokio::spawn(consumer.run());
    let taken = || metrics.snapshot().iter().find(|m| m.component == "readings").map_or(0, |m| m.events_out);
    wait_until("the first 1000 records", || taken() >= 1000).await;
    stopper.stop();
    running.await.unwrap().unwrap();
    assert_eq!(lines(&directory.path().join("out/archive.jsonl")).len(), 1000);

    // 500 more while no consumer runs; the same group goes on after what it committed.
    Pipeline::build(&kafka_producer_app(&brokers, 500), &options(directory.path())).unwrap().run().await.unwrap();
    let consumer = Pipeline::build(&consumer_app, &options(directory.path())).unwrap();
    let (stopper, metrics) = (consumer.stopper(), consumer.metrics.clone());
    let running = tokio::spawn(consumer.run());
    let taken = || metrics.snapshot().iter().find(|m| m.component == "readings").map_or(0, |m| m.events_out);
    wait_until("the next 500 records", || {
        eprintln!("taken {}", taken());
        taken() >= 500
    })
    .await;
    // Anything read again would arrive by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stopper.stop();
    let summary = running.await.unwrap().unwrap();
    assert_eq!(events_out(&summary, "readings"), 500, "the second run read only what was new");
    assert_eq!(lines(&directory.path().join("out/archive.jsonl")).len(), 1500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_consumer_commits_only_what_became_durable() {
    let kafka = rdkafka::mocking::MockCluster::new(1).unwrap();
    kafka.create_topic("readings", 1, 1).unwrap();
    let brokers = kafka.bootstrap_servers();
    let directory = tempfile::tempdir().unwrap();
    let consumer_app = common::application_from_text(
        "consume.stratum",
        &format!(
            r#"app consume
schema Reading {{ sensor: string  ts: timestamp  value: float }}
source readings: kafka {{ topic = "readings"  brokers = ["{brokers}"]  group = "archive"  schema = Reading }}
sink archive: jsonl {{ from = readings  path = "out/archive.jsonl" }}
"#
        ),
    );
    Pipeline::build(&kafka_producer_app(&brokers, 1000), &options(directory.path())).unwrap().run().await.unwrap();

    // The sink cannot write (a file stands where its directory should be): the run fails, and nothing it read
    // may count as consumed.
    std::fs::write(directory.path().join("out"), "in the way").unwrap();
    let failing = Pipeline::build(&consumer_app, &options(directory.path())).unwrap().run().await;
    assert!(failing.is_err(), "the sink could not write");

    // Once it can, the same group reads all of it again.
    std::fs::remove_file(directory.path().join("out")).unwrap();
    let consumer = Pipeline::build(&consumer_app, &options(directory.path())).unwrap();
    let stopper = consumer.stopper();
    let running = tokio::spawn(consumer.run());
    let archive = directory.path().join("out/archive.jsonl");
    wait_until("the 1000 records in the file", || lines(&archive).len() >= 1000).await;
    stopper.stop();
    running.await.unwrap().unwrap();
    assert_eq!(lines(&archive).len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_source_without_brokers_says_what_to_add() {
    let text = r#"app consume
schema Reading { sensor: string  value: float }
source readings: kafka {
  topic = "readings"
  schema = Reading
}
sink archive: jsonl {
  from = readings
  path = "out/archive.jsonl"
}
"#;
    let application = common::application_from_text("consume.stratum", text);
    let error = Pipeline::build(&application, &PipelineOptions::default()).err().unwrap();
    assert!(error.to_string().contains("brokers = [\"host:9092\"]"), "{error}");
}

/// An MQTT sink whose broker cannot be reached fails within a bounded time, saying so, rather than waiting forever
/// once the client's queue is full (its data plane is then started again after a backoff by whoever runs it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_sink_whose_broker_is_unreachable_fails_instead_of_waiting_forever() {
    let port = free_port();
    let text = "app publish\nschema Reading { sensor: string  value: float }\n\
        source readings: generator { schema = Reading  rate = 100000/s  count = 5000 }\n\
        sink out: mqtt { from = readings  topic = \"readings\" }\n";
    let application = common::application_from_text("publish.stratum", text);
    let directory = std::env::temp_dir().join(format!("stratum-mqtt-unreachable-{port}"));
    let options = PipelineOptions { mqtt_broker: Some(format!("mqtt://127.0.0.1:{port}")), ..options(&directory) };
    let running = Pipeline::build(&application, &options).unwrap().start();
    // Bounded by the sink's own wait (10 s without progress) after the client's first connection attempts; the
    // limit here only keeps a regression from hanging the test run.
    let started = Instant::now();
    while !running.is_finished() {
        assert!(started.elapsed() < Duration::from_secs(120), "the pipeline still waits on an unreachable broker");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let error = running.failure().expect("nothing could be published");
    assert!(error.contains("cannot deliver to MQTT broker 127.0.0.1"), "{error}");
    assert!(error.contains("is it running and reachable?"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server (CI's external stage)"]
async fn nats_subjects_carry_records_both_ways() {
    let nats = NatsServer::start();
    let text = r#"app nats_test
schema Detection { camera: string  ts: timestamp  speed_kmh: float }
source detections: nats {
  subject = "traffic.*.detections"
  url = "{NATS}"
  schema = Detection
}
stream fast {
  from = detections
  where = speed_kmh > 50
}
sink alerts: nats {
  from = fast
  subject = "alerts.{camera}"
  url = "{NATS}"
}
"#
    .replace("{NATS}", &nats.url);
    let application = common::application_from_text("nats.stratum", &text);
    let client = async_nats::connect(&nats.url).await.unwrap();
    let mut alerts = client.subscribe("alerts.>").await.unwrap();
    let directory = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::build(&application, &options(directory.path())).unwrap();
    let (stopper, metrics, dead_letters) =
        (pipeline.stopper(), pipeline.metrics.clone(), pipeline.dead_letters.clone());
    let running = tokio::spawn(pipeline.run());
    let subscribed = || metrics.snapshot().iter().any(|m| m.component == "detections" && m.events_in > 0);
    // The source subscribes once it runs; until it has seen a message, publish a probe (too slow to alert).
    wait_until("the source's subscription", || {
        let probe = r#"{"camera": "probe", "ts": "2026-01-01T00:00:00Z", "speed_kmh": 1}"#;
        futures_util::FutureExt::now_or_never(client.publish("traffic.probe.detections", probe.into()));
        subscribed()
    })
    .await;
    for index in 0..200 {
        let camera = format!("cam{}", index % 4);
        let detection = json!({ "camera": camera, "ts": "2026-01-01T00:00:00Z", "speed_kmh": index as f64 });
        client.publish(format!("traffic.{camera}.detections"), detection.to_string().into()).await.unwrap();
    }
    client.publish("traffic.cam0.detections", "{\"camera\": 1}".into()).await.unwrap();
    client.flush().await.unwrap();
    let mut received = Vec::new();
    while received.len() < 149 {
        let message = tokio::time::timeout(Duration::from_secs(10), futures_util::StreamExt::next(&mut alerts))
            .await
            .expect("alerts keep coming")
            .unwrap();
        let alert: Value = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(message.subject.as_str(), format!("alerts.{}", alert["camera"].as_str().unwrap()));
        received.push(alert);
    }
    assert!(received.iter().all(|alert| alert["speed_kmh"].as_f64().unwrap() > 50.0));
    wait_until("the bad message in the dead letters", || !dead_letters.in_memory().is_empty()).await;
    assert!(dead_letters.in_memory()[0].contains("subject traffic.cam0.detections"));
    stopper.stop();
    running.await.unwrap().unwrap();
}
