//! Serverless serving through the API as a client sees it: a service at zero replicas wakes on the first request
//! and answers it (held, not dropped); driven past its maximum it sheds load with 429 and `Retry-After` and stays
//! up; idle again, it goes back to zero; and a tampered model is refused.

mod common;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratum_control::api::{ServicesApi, router};
use stratum_control::serving::ServicePool;
use stratum_dataplane::metrics::Registry;

const APP: &str = r#"app serve
schema Row { x: float  y: float  label: bool }
dataset rows { schema = Row  path = "rows.csv" }
model labeller: classifier {
  data = rows
  target = label
  features = [x, y]
  candidates {
    random_forest { trees = 60  max_depth = 10 }
  }
  evaluate = holdout(0.25) by accuracy
  seed = 1
}
service labels: inference {
  model = labeller
  input = http { path = "/v1/labels" }
  scale {
    min = 0
    max = 1
    concurrency = 1
    idle = 3 s
  }
}
"#;

/// A folder with the application, its data and a trained model in `models/`.
fn trained(name: &str) -> (PathBuf, stratum_core::ir::Application) {
    common::trained_app(name, APP)
}

async fn serve(pool: Arc<ServicePool>, metrics: Arc<Registry>) -> String {
    let state = ServicesApi { services: BTreeMap::from([("labels".to_string(), pool)]), metrics };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(Arc::new(state))).await.unwrap() });
    format!("http://{address}")
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_wakes_from_zero_sheds_past_its_maximum_and_goes_back_to_zero() {
    let (folder, application) = trained("serving_scale");
    let metrics = Arc::new(Registry::default());
    let pool = ServicePool::new(&application, "labels", &folder.join("models"), &metrics).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let events = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let recorded = events.clone();
    tokio::spawn(pool.clone().autoscale(stopped, move |_, from, to, reason| {
        recorded.lock().unwrap().push(format!("{from}->{to} {reason}"));
    }));
    let base = serve(pool.clone(), metrics).await;
    let url = format!("{base}/v1/services/labels/predict");
    let http = client();

    // At zero: the first request waits for the cold start and is answered.
    assert_eq!(pool.replicas(), 0);
    let answer = http.post(&url).body(r#"{"x": 1.9, "y": 1.5}"#).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let answer: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert_eq!(answer, json!({ "prediction": true }));
    assert_eq!((pool.replicas(), pool.cold_starts()), (1, 1));

    // Past the maximum (one replica of one slot, so at most two requests in flight): 429 with Retry-After, and
    // every request that was taken is answered. Each request is a large batch, so that they overlap.
    let batch: Vec<Value> = (0..20_000).map(|index| json!({ "x": (index % 20) as f64 / 10.0, "y": 0.5 })).collect();
    let body = serde_json::to_string(&batch).unwrap();
    let requests = (0..24).map(|_| {
        let request = http.post(&url).body(body.clone());
        async move {
            let response = request.send().await.unwrap();
            let retry_after = response.headers().get("retry-after").map(|value| value.to_str().unwrap().to_string());
            (response.status().as_u16(), retry_after, response.text().await.unwrap())
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    let shed: Vec<_> = answers.iter().filter(|(status, _, _)| *status == 429).collect();
    let served: Vec<_> = answers.iter().filter(|(status, _, _)| *status == 200).collect();
    assert_eq!(
        shed.len() + served.len(),
        answers.len(),
        "only answers and 429s: {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(!shed.is_empty() && !served.is_empty(), "{} shed, {} served", shed.len(), served.len());
    assert_eq!(shed[0].1.as_deref(), Some("1"));
    let predictions: Value = serde_json::from_str(&served[0].2).unwrap();
    assert_eq!(predictions["predictions"].as_array().unwrap().len(), 20_000);
    assert_eq!(pool.rejected(), shed.len() as u64);
    // And it stays up.
    let again = http.post(&url).body(r#"{"x": 0.1, "y": 0.1}"#).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 200);

    // Idle for longer than `idle = 3 s`: back to zero.
    let started = Instant::now();
    while pool.replicas() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still {} replicas; {:?}",
            pool.replicas(),
            events.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(events.lock().unwrap().iter().any(|event| event == "1->0 idle"), "{:?}", events.lock().unwrap());
    let text = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("stratum_service_cold_starts_total{service=\"labels\"} 1"), "{text}");
    assert!(text.contains(&format!("stratum_service_rejected_total{{service=\"labels\"}} {}", shed.len())));
    stop.send_replace(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_say_what_the_model_takes_and_a_tampered_model_is_refused() {
    let (folder, application) = trained("serving_errors");
    let metrics = Arc::new(Registry::default());
    let pool = ServicePool::new(&application, "labels", &folder.join("models"), &metrics).unwrap();
    let base = serve(pool, metrics).await;
    let http = client();
    let wrong = http.post(format!("{base}/v1/services/labels/predict")).body(r#"[{"x": 1}]"#).send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 400);
    let message = wrong.text().await.unwrap();
    assert!(
        message.contains("item 0: field `y` is missing") && message.contains("takes x: float, y: float"),
        "{message}"
    );
    let unknown = http.post(format!("{base}/v1/services/other/predict")).body("{}").send().await.unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    assert!(unknown.text().await.unwrap().contains("services: labels"));

    // Change one byte of the stored model: loading it is refused, with the reason.
    let artifact = folder.join("models/labeller/v1.json");
    let text = std::fs::read_to_string(&artifact).unwrap();
    let tampered = text.replacen("\"threshold\": ", "\"threshold\": 1", 1);
    assert_ne!(text, tampered, "the artifact has a threshold to change");
    std::fs::write(&artifact, tampered).unwrap();
    let error =
        ServicePool::new(&application, "labels", &folder.join("models"), &Arc::new(Registry::default())).err().unwrap();
    assert!(error.to_string().contains("does not match its sha256"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs promtool (the Debian package prometheus; CI's external stage)"]
async fn metrics_pass_promtool() {
    let (folder, application) = trained("serving_promtool");
    let metrics = Arc::new(Registry::default());
    metrics.register("counts", "stream").count_in(10, 400);
    let pool = ServicePool::new(&application, "labels", &folder.join("models"), &metrics).unwrap();
    let base = serve(pool, metrics).await;
    let http = client();
    let answer =
        http.post(format!("{base}/v1/services/labels/predict")).body(r#"{"x": 1.0, "y": 1.0}"#).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let text = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (install the Debian package prometheus)");
    use std::io::Write;
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = promtool.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    // promtool exits 1 for lint warnings too (such as a counter without `_total`): only errors fail the format.
    assert!(!said.contains("error"), "promtool: {said}\n{text}");
    assert!(output.status.success() || said.contains("lint"), "promtool: {said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_scale_out_and_shed_load_on_what_they_measure() {
    let text = APP.replace("max = 1", "max = 3")
        + "policy faster { target = labels  when = p50 >= 0 ms  then = scale_out }\n"
        + "policy calm { target = labels  when = error_rate > 50%  then = shed_load(50%) }\n";
    let (folder, application) = common::trained_app("serving_policies", &text);
    let metrics = Arc::new(Registry::default());
    let pool = ServicePool::new(&application, "labels", &folder.join("models"), &metrics).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(pool.clone().autoscale(stopped, |_, _, _, _| {}));
    let pools = BTreeMap::from([("labels".to_string(), pool.clone())]);
    let mut engine = stratum_control::qos::PolicyEngine::new(&application, false);
    let snapshots = || {
        metrics
            .snapshot()
            .into_iter()
            .filter(|snapshot| snapshot.component == "labels-http")
            .map(|snapshot| ("labels".to_string(), snapshot))
            .collect::<BTreeMap<_, _>>()
    };

    // Requests answered: p50 ≥ 0 ms holds, so `faster` scales out, and the pool keeps two replicas.
    pool.predict(br#"{"x": 1.0, "y": 1.0}"#).await.unwrap();
    let events = engine.evaluate(Instant::now(), &application, &snapshots(), &pools, None);
    assert!(
        events
            .iter()
            .any(|(_, message)| message.contains("policy `faster`") && message.contains("at least 2 replicas")),
        "{events:?}"
    );
    let started = Instant::now();
    while pool.replicas() < 2 {
        assert!(started.elapsed() < Duration::from_secs(10), "still {} replicas", pool.replicas());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Mostly bad requests: the error rate passes 50% and `calm` sheds half of what comes next.
    for _ in 0..6 {
        assert!(pool.predict(br#"{"x": "wrong"}"#).await.is_err());
    }
    pool.predict(br#"{"x": 1.0, "y": 1.0}"#).await.unwrap();
    let events = engine.evaluate(Instant::now(), &application, &snapshots(), &pools, None);
    assert!(events.iter().any(|(_, message)| message.contains("shedding 50%")), "{events:?}");
    let mut shed = 0;
    for _ in 0..100 {
        if let Err(refusal) = pool.predict(br#"{"x": 1.0, "y": 1.0}"#).await {
            assert_eq!((refusal.status, refusal.retry_after_seconds), (503, Some(1)));
            shed += 1;
        }
    }
    assert!((40..=60).contains(&shed), "{shed} of 100 shed");
    stop.send_replace(true);
}
