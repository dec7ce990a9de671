//! A component that fails stops the data plane, which says why; started again once the cause is gone, the same
//! version runs and data flows (what `stratum up` and each agent do, after a backoff).

mod common;

use common::{options, wait_for};
use std::path::Path;
use stratum_control::up::up;

const APP: &str = r#"app failing
node laptop { tier = cloud  cpu = 2  memory = 4 GiB }
schema Reading { sensor: string  ts: timestamp  value: float }
source readings: generator { schema = Reading  rate = 200/s }
sink kept: jsonl { from = readings  path = "blocked/readings.jsonl" }
"#;

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| text.lines().count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_data_plane_starts_again_once_its_cause_is_gone() {
    let folder = tempfile::tempdir().unwrap();
    // The sink's folder is a file: every write fails.
    std::fs::write(folder.path().join("blocked"), "not a folder").unwrap();
    let checked = stratum_lang::check_text("failing.stratum", APP);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let plan = stratum_planner::plan(&checked).plan.expect("a plan");
    let options = options(folder.path());
    let running = up(checked.application, plan, options, &mut |_| {}).await.unwrap();
    wait_for("the sink to fail", || running.failure().is_some()).await;
    let failure = running.failure().unwrap();
    assert!(failure.contains("`kept`") && failure.contains("blocked"), "{failure}");

    // The cause goes away; the same version starts again and the readings arrive.
    std::fs::remove_file(folder.path().join("blocked")).unwrap();
    let running = running.restart().await.map_err(|(error, _)| error).unwrap();
    let written = folder.path().join("blocked/readings.jsonl");
    wait_for("readings in the file", || lines(&written) > 0).await;
    assert_eq!(running.failure(), None);
    let events = running.deployment.state.events("failing", 50).unwrap();
    assert!(events.iter().any(|event| event.kind == stratum_core::events::EventKind::Restarted), "{events:?}");
    running.stop().await.unwrap();
}
