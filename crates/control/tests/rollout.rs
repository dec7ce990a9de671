//! A new version rolled into a running `stratum up`: a tool whose command changed is stopped, then started anew
//! (its output shows the new command); the data plane's unchanged components run on.

mod common;

use common::{options, wait_for};
use stratum_control::up::up;

const APP: &str = r#"app tooled
node laptop { tier = cloud  cpu = 2  memory = 4 GiB }
schema Reading { sensor: string  ts: timestamp  value: float }
source readings: generator { schema = Reading  rate = 100/s }
sink kept: jsonl { from = readings  path = "out/readings.jsonl" }
tool beacon {
  command = ["sh", "-c", "echo beacon one; sleep 600"]
}
"#;

fn checked(text: &str) -> (stratum_core::ir::Application, stratum_core::plan::Plan) {
    let checked = stratum_lang::check_text("tooled.stratum", text);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let plan = stratum_planner::plan(&checked).plan.expect("a plan");
    (checked.application, plan)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_tool_is_stopped_and_started_anew_while_the_data_plane_runs_on() {
    let folder = tempfile::tempdir().unwrap();
    let options = options(folder.path());
    let (application, plan) = checked(APP);
    let mut running = up(application, plan, options, &mut |_| {}).await.unwrap();
    let log = folder.path().join(".stratum/logs/beacon.log");
    let output = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the first command's output", || output().contains("beacon one")).await;

    let (application, plan) = checked(&APP.replace("beacon one", "beacon two"));
    let rollout = running.update(application, plan, &mut |_| {}).await.unwrap();
    assert_eq!(rollout.restarted, ["beacon"], "{rollout:?}");
    let mut unchanged = rollout.unchanged.clone();
    unchanged.sort();
    assert_eq!(unchanged, ["kept", "readings"]);
    wait_for("the new command's output", || output().contains("beacon two")).await;
    let events = running.deployment.state.events("tooled", 100).unwrap();
    let tool_events: Vec<&str> = events
        .iter()
        .filter(|event| event.component.as_deref() == Some("beacon"))
        .map(|event| event.kind.as_str())
        .collect();
    // Started, stopped for the new version, started again.
    assert!(tool_events.iter().filter(|kind| **kind == "tool").count() >= 2, "{events:?}");
    running.stop().await.unwrap();
}
