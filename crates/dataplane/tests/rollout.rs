//! Rolling a new version of an application into a running pipeline: only the components whose definition changed
//! restart, nothing in flight is lost across the restart, windows of unchanged streams stay open, and a version
//! that cannot be built leaves the running one as it was.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use stratum_core::ir::SinkKind;
use stratum_dataplane::lease::Lease;
use stratum_dataplane::{Pipeline, PipelineOptions};

const VERSION_1: &str = r#"
app rollout

schema Detection {
  camera: string
  ts: timestamp
  speed_kmh: float
}

source detections: generator {
  schema = Detection
  rate = 50/s
  seed = 3
}

stream counts {
  from = detections
  window = tumbling(1 min) by camera
  select {
    vehicles = count()
  }
}

stream fast {
  from = detections
  where = speed_kmh > 80
}

sink raw: jsonl {
  from = detections
  path = "out/raw.jsonl"
}

sink windows: jsonl {
  from = counts
  path = "out/windows.jsonl"
}

sink fast_log: jsonl {
  from = fast
  path = "out/fast.jsonl"
}
"#;

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_what_changed_restarts_and_nothing_is_lost() {
    let directory = tempfile::tempdir().unwrap();
    // An hour of event time a minute: a one-minute window closes every second.
    let options = PipelineOptions { base_dir: directory.path().into(), time_scale: 60.0, ..PipelineOptions::default() };
    let version_1 = common::application_from_text("rollout.stratum", VERSION_1);
    let running = Pipeline::build(&version_1, &options).unwrap().start();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Version 2: a stricter filter, and a new sink.
    let text_2 = VERSION_1.replace("where = speed_kmh > 80", "where = speed_kmh > 100")
        + "\nsink slow_log: jsonl {\n  from = detections\n  path = \"out/slow.jsonl\"\n}\n";
    let version_2 = common::application_from_text("rollout.stratum", &text_2);
    let rollout = running.update(&version_2, &options, None, &[]).unwrap();
    assert_eq!(rollout.restarted, ["fast"]);
    assert_eq!(rollout.started, ["slow_log"]);
    assert!(rollout.stopped.is_empty(), "{rollout:?}");
    let unchanged: BTreeSet<&str> = rollout.unchanged.iter().map(String::as_str).collect();
    assert_eq!(unchanged, BTreeSet::from(["counts", "detections", "fast_log", "raw", "windows"]));
    let names: Vec<String> = running.components().into_iter().map(|component| component.name).collect();
    assert!(names.contains(&"slow_log".to_string()), "{names:?}");

    // The same version again changes nothing.
    let again = running.update(&version_2, &options, None, &[]).unwrap();
    assert!(again.is_empty(), "{again:?}");

    // A version that cannot be built (its sink writes into a dataset the application lacks) is refused, and the
    // running one goes on as it was.
    let mut broken = version_2.clone();
    let mut sink = broken.sinks[0].clone();
    sink.name = "broken".into();
    sink.kind = SinkKind::Dataset { into: "missing".into() };
    broken.sinks.push(sink);
    let error = running.update(&broken, &options, None, &[]).unwrap_err().to_string();
    assert!(error.contains("broken") && error.contains("missing"), "{error}");
    assert!(!running.components().iter().any(|component| component.name == "broken"));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Version 3 drops the slow log.
    let rollout = running.update(&version_2_without_slow_log(&version_2), &options, None, &[]).unwrap();
    assert_eq!(rollout.stopped, ["slow_log"]);
    assert!(rollout.restarted.is_empty() && rollout.started.is_empty(), "{rollout:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.stopper().stop();
    let summary = running.finished().await.unwrap();
    let metrics: BTreeMap<&str, _> = summary.components.iter().map(|m| (m.component.as_str(), m)).collect();
    assert!(!metrics.contains_key("slow_log"), "a removed component's metrics go with it");

    // The source never restarted: every detection it made reached the unchanged raw sink, once.
    let raw = lines(&directory.path().join("out/raw.jsonl"));
    assert_eq!(raw.len() as u64, metrics["detections"].events_out);
    assert!(raw.len() > 200, "{} detections", raw.len());
    // Every detection over 100 km/h passes both versions of `fast`: each one is in its log, across the restart.
    let fast: BTreeSet<String> =
        lines(&directory.path().join("out/fast.jsonl")).iter().map(|record| record.to_string()).collect();
    let over_100: Vec<&serde_json::Value> =
        raw.iter().filter(|record| record["speed_kmh"].as_f64().unwrap() > 100.0).collect();
    assert!(!over_100.is_empty());
    for record in over_100 {
        assert!(fast.contains(&record.to_string()), "lost across the restart: {record}");
    }
    // The window stream ran on: a restart would have emitted its open windows early, and then again.
    let windows = lines(&directory.path().join("out/windows.jsonl"));
    let mut seen = BTreeSet::new();
    for window in &windows {
        let key = (window["camera"].to_string(), window["window_start"].to_string());
        assert!(seen.insert(key), "window emitted twice: {window}");
    }
    assert!(windows.len() > 8, "{} windows", windows.len());
    let slow = lines(&directory.path().join("out/slow.jsonl"));
    assert!(!slow.is_empty(), "the new sink ran while it was part of the application");
}

fn version_2_without_slow_log(version_2: &stratum_core::ir::Application) -> stratum_core::ir::Application {
    let mut version_3 = version_2.clone();
    version_3.sinks.retain(|sink| sink.name != "slow_log");
    version_3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_that_ended_refuses_a_rollout() {
    let directory = tempfile::tempdir().unwrap();
    let options =
        PipelineOptions { base_dir: directory.path().into(), fast_generators: true, ..PipelineOptions::default() };
    let text = VERSION_1.replace("seed = 3", "seed = 3\n  count = 100");
    let application = common::application_from_text("rollout.stratum", &text);
    let running = Pipeline::build(&application, &options).unwrap().start();
    while !running.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let error = running.update(&application, &options, None, &[]).unwrap_err();
    assert!(matches!(error, stratum_dataplane::Error::Ended), "{error}");
}

/// Runs version 1 with day-long windows (none closes), then rolls in a version without `counts` and its sink,
/// `counts` handing its state over or not; returns its checkpoint file and the state it handed over, if any.
async fn leave(hand_over: &[String]) -> (Option<String>, Option<String>) {
    let directory = tempfile::tempdir().unwrap();
    let options = PipelineOptions {
        base_dir: directory.path().into(),
        data_dir: Some(directory.path().into()),
        ..PipelineOptions::default()
    };
    let text = VERSION_1.replace("tumbling(1 min)", "tumbling(1 d)");
    let version_1 = common::application_from_text("rollout.stratum", &text);
    let running = Pipeline::build(&version_1, &options).unwrap().start();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut version_2 = version_1.clone();
    version_2.streams.retain(|stream| stream.name != "counts");
    version_2.sinks.retain(|sink| sink.name != "windows");
    running.update(&version_2, &options, None, hand_over).unwrap();
    // Once the pipeline has ended, the retired stream has too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.stopper().stop();
    let _ = running.finished().await;
    let read = |path: std::path::PathBuf| std::fs::read_to_string(path).ok();
    (
        read(stratum_dataplane::checkpoint::checkpoint_path(directory.path(), "counts")),
        read(stratum_dataplane::checkpoint::handed_over_path(directory.path(), "counts")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_leaves_to_hand_its_state_over_keeps_its_open_windows_for_the_next_machine() {
    // Told to hand over: its open windows go to the handed-over file, for the next machine to take up (the
    // multi-process test, crates/cli/tests/cluster.rs, shows that no window is then emitted twice).
    let (checkpoint, handed) = leave(&["counts".to_string()]).await;
    let handed = handed.expect("the state was handed over");
    let file: serde_json::Value = serde_json::from_str(&handed).unwrap();
    assert_eq!(file["component"], "counts");
    assert!(file["state"].to_string().contains("camera"), "the open windows: {handed}");
    assert!(checkpoint.is_none(), "its checkpoint moved to the handed-over file");
    // Not told so: it drains as it always did, emitting what it held, and nothing is left to take up.
    assert_eq!(leave(&[]).await, (None, None));
}

/// Runs version 1 with one-second windows under a lease of three seconds, until its windows have paused for two
/// seconds past the lease's end; returns the pipeline, its folder and the lease.
async fn paused_for_its_lease() -> (stratum_dataplane::pipeline::RunningPipeline, tempfile::TempDir, Lease) {
    let directory = tempfile::tempdir().unwrap();
    let lease = Lease::until(Instant::now() + Duration::from_secs(3));
    let options = PipelineOptions {
        base_dir: directory.path().into(),
        data_dir: Some(directory.path().into()),
        lease: Some(lease.clone()),
        ..PipelineOptions::default()
    };
    let text = VERSION_1.replace("tumbling(1 min)", "tumbling(1 s)");
    let running = Pipeline::build(&common::application_from_text("rollout.stratum", &text), &options).unwrap().start();
    let windows = directory.path().join("out/windows.jsonl");
    let raw = directory.path().join("out/raw.jsonl");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(!lines(&windows).is_empty(), "windows while the lease was held");
    let (windows_then, raw_then) = (lines(&windows).len(), lines(&raw).len());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(lines(&windows).len(), windows_then, "no window once the lease ended");
    assert!(lines(&raw).len() > raw_then, "what keeps no state goes on");
    (running, directory, lease)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_lease_ended_pauses_and_goes_on_once_it_is_renewed() {
    // The agent could not reach the control plane for its agent timeout: the windowed stream pauses (another
    // machine may run it now), and goes on with its own state once the control plane answers again.
    let (running, directory, lease) = paused_for_its_lease().await;
    let windows = directory.path().join("out/windows.jsonl");
    let paused = lines(&windows).len();
    lease.renew(Instant::now() + Duration::from_secs(60));
    let started = Instant::now();
    while lines(&windows).len() <= paused {
        assert!(started.elapsed() < Duration::from_secs(10), "no window after the renewal");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.stopper().stop();
    let _ = running.finished().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_let_go_while_its_lease_had_ended_leaves_without_emitting() {
    // Cut off, its stream went on elsewhere: told to let it go, it leaves as after a crash — no window, no state
    // handed over — and keeps its last checkpoint (the control plane has a copy of it, or a newer one).
    let (running, directory, _lease) = paused_for_its_lease().await;
    let windows = directory.path().join("out/windows.jsonl");
    let paused = lines(&windows).len();
    let text = VERSION_1.replace("tumbling(1 min)", "tumbling(1 s)");
    let mut without = common::application_from_text("rollout.stratum", &text);
    without.streams.retain(|stream| stream.name != "counts");
    without.sinks.retain(|sink| sink.name != "windows");
    let options = PipelineOptions {
        base_dir: directory.path().into(),
        data_dir: Some(directory.path().into()),
        ..PipelineOptions::default()
    };
    running.update(&without, &options, None, &["counts".to_string()]).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.stopper().stop();
    let _ = running.finished().await;
    assert_eq!(lines(&windows).len(), paused, "it emitted nothing as it left");
    assert!(!stratum_dataplane::checkpoint::handed_over_path(directory.path(), "counts").exists());
    assert!(stratum_dataplane::checkpoint::checkpoint_path(directory.path(), "counts").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_comes_to_its_producers_machine_reads_what_waited_for_it_first() {
    // `raw` ran on no machine: what `detections` made for it waited here in a waiting path. When `raw` comes to
    // this machine, it reads that log out before anything newer, so it has every record from the start.
    use stratum_dataplane::remote::{Partition, RemoteOutput, waiting_path_name};
    let directory = tempfile::tempdir().unwrap();
    let options = PipelineOptions {
        base_dir: directory.path().into(),
        data_dir: Some(directory.path().into()),
        ..PipelineOptions::default()
    };
    let application = common::application_from_text("rollout.stratum", VERSION_1);
    let waiting = Partition {
        components: vec!["detections".into()],
        inputs: Vec::new(),
        outputs: vec![RemoteOutput {
            path: waiting_path_name("detections", "here", "raw"),
            producer: "detections".into(),
            consumers: vec!["raw".into()],
            to: None,
        }],
    };
    let started = now_milliseconds();
    let running = Pipeline::build_part(&application, &options, Some(waiting)).unwrap().start();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let came = now_milliseconds();
    // In the same rollout, `counts` now waits too: a new path of `detections`, which must not take `raw`'s log.
    let local = Partition {
        components: vec!["detections".into(), "raw".into()],
        inputs: Vec::new(),
        outputs: vec![RemoteOutput {
            path: waiting_path_name("detections", "here", "counts"),
            producer: "detections".into(),
            consumers: vec!["counts".into()],
            to: None,
        }],
    };
    running.update(&application, &options, Some(local), &[]).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    running.stopper().stop();
    let _ = running.finished().await;
    let raw = lines(&directory.path().join("out/raw.jsonl"));
    let times: Vec<i64> =
        raw.iter().filter_map(|record| record["ts"].as_str()).filter_map(stratum_core::eval::parse_timestamp).collect();
    let before = times.iter().filter(|time| **time < came).count();
    // 50 a second for 1.5 s before `raw` came.
    assert!(before >= 60, "only {before} of the records made before `raw` came reached it ({} in all)", raw.len());
    assert!(times.first().is_some_and(|first| *first - started < 500), "the first record is from the start");
    let ordered = times.windows(2).all(|pair| pair[0] <= pair[1]);
    assert!(ordered, "what waited came before anything newer");
}

fn now_milliseconds() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    since.as_millis() as i64
}
