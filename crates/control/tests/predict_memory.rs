//! What one large prediction request costs in memory: a 7 MB body of 350,000 records answered by a service must
//! not grow the process by more than four times the body (issue: one anonymous request took 65 times its body).
//! Its own test binary, so that the process's high-water mark (Linux `VmHWM`) measures this request alone.

mod common;

use std::sync::Arc;
use stratum_control::serving::ServicePool;
use stratum_dataplane::metrics::Registry;

const APP: &str = r#"app serve
schema Row { x: float  y: float  label: bool }
dataset rows { schema = Row  path = "rows.csv" }
model labeller: classifier {
  data = rows
  target = label
  features = [x, y]
  candidates { logistic_regression {} }
  evaluate = holdout(0.25) by accuracy
  seed = 1
}
service labels: inference {
  model = labeller
  input = http { path = "/v1/labels" }
  scale { min = 1  max = 1 }
}
"#;

/// The process's peak resident memory so far, in bytes.
fn peak_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse::<u64>().ok()).expect("a number of KiB") * 1024
}

#[tokio::test]
async fn a_large_request_costs_at_most_four_times_its_body() {
    let (folder, application) = common::trained_app("predict_memory", APP);
    let pool = ServicePool::new(&application, "labels", &folder.join("models"), &Arc::new(Registry::default()))
        .expect("the service starts");

    // Warm: the replica, the runtime and the allocator's first arenas are in place before measuring.
    let small = pool.predict(br#"[{"x": 1.0, "y": 0.5}]"#).await.expect("a small request is answered");
    assert_eq!(small["predictions"].as_array().map(Vec::len), Some(1));

    let mut body = String::from("[");
    for index in 0..350_000 {
        if index > 0 {
            body.push(',');
        }
        body.push_str(&format!("{{\"x\": {}.25, \"y\": 0.{}}}", index % 3, index % 10));
    }
    body.push(']');
    let body = body.into_bytes();
    let before = peak_bytes();
    let answer = pool.predict(&body).await.expect("the large request is answered");
    let after = peak_bytes();
    assert_eq!(answer["predictions"].as_array().map(Vec::len), Some(350_000), "every record is predicted");
    let grown = after.saturating_sub(before);
    assert!(
        grown <= 4 * body.len() as u64,
        "the request grew the process by {grown} bytes, more than four times its body of {} bytes",
        body.len()
    );
    println!(
        "body {} bytes, peak grew by {grown} bytes ({:.2}× the body)",
        body.len(),
        grown as f64 / body.len() as f64
    );
}
