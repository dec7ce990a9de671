//! A model's `retrain = every(…)` under `stratum up`, on the application's clock (here 3,600 times the wall
//! clock's pace, so an hourly retrain comes due every second): while its data is unchanged nothing is trained and
//! an event says so; once the data changed, a new version is trained on all but the latest rows and judged against
//! the serving one on those: it serves in its place when it scores better (its predictions are the new data's), and
//! the event carries the numbers and its leaderboard; a version that does not score better is stored and the
//! serving one serves on. Rolled back in the store, the old version serves again, pinned.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratum_control::deployment::Deployment;
use stratum_control::supervisor::{Notice, Supervisor};
use stratum_control::up::up;

const APP: &str = r#"app retrained
node laptop { tier = cloud  cpu = 2  memory = 4 GiB }
schema Row { x: float  y: float  label: bool }
dataset rows { schema = Row  path = "rows.csv" }
model labeller: classifier {
  data = rows
  target = label
  features = [x, y]
  candidates {
    decision_tree { max_depth = 6 }
    logistic_regression {}
  }
  evaluate = holdout(0.25) by accuracy
  retrain = every(1 h)
  seed = 1
}
service labels: inference {
  model = labeller
  input = http { path = "/v1/labels" }
}
"#;

/// 400 rows labelled `x + y > 2`, or the opposite where `inverted(row)`; written whole (renamed into place), as a
/// batch writes a dataset.
fn write_rows(folder: &std::path::Path, inverted: impl Fn(usize) -> bool) {
    let mut csv = String::from("x,y,label\n");
    for index in 0..400 {
        let (x, y) = ((index % 20) as f64 / 10.0, (index % 7) as f64 / 3.0);
        csv.push_str(&format!("{x},{y},{}\n", (x + y > 2.0) != inverted(index)));
    }
    std::fs::write(folder.join("rows.csv.partial"), csv).unwrap();
    std::fs::rename(folder.join("rows.csv.partial"), folder.join("rows.csv")).unwrap();
}

/// A version the supervisor said serves, and the deployment that serves it.
type Served = (u32, Arc<dyn Deployment>);

async fn label(deployment: &Arc<dyn Deployment>) -> bool {
    let answer = deployment.predict("labels".into(), br#"{"x": 1.9, "y": 2.0}"#.to_vec()).await.unwrap();
    answer["prediction"].as_bool().unwrap_or_else(|| panic!("{answer}"))
}

async fn wait_long(what: &str, mut condition: impl FnMut() -> bool, context: impl Fn() -> Vec<String>) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < Duration::from_secs(120), "timed out waiting for {what}; events: {:#?}", context());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_retrain_trains_only_changed_data_and_serves_the_new_version() {
    let folder = tempfile::tempdir().unwrap();
    write_rows(folder.path(), |_| false);
    let mut options = common::options(folder.path());
    options.time_scale = 3600.0;
    let checked = stratum_lang::check_text("retrained.stratum", APP);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let plan = stratum_planner::plan(&checked).plan.expect("a plan");
    let running = up(checked.application, plan, options.clone(), &mut |_| {}).await.unwrap();
    let first: Arc<dyn Deployment> = running.deployment.clone();
    assert!(label(&first).await, "v1 learnt x + y > 2");
    let state = running.deployment.state.clone();
    let events = move || -> Vec<String> {
        state.events("retrained", 200).unwrap().into_iter().map(|event| event.message).collect::<Vec<_>>()
    };

    let served: Arc<Mutex<Vec<Served>>> = Arc::default();
    let heard = served.clone();
    let notify = Box::new(move |notice: Notice<'_>| {
        if let Notice::ModelServed { running, model, version } = notice {
            assert_eq!(model, "labeller");
            let deployment: Arc<dyn Deployment> = running.deployment.clone();
            heard.lock().unwrap().push((version, deployment));
        }
    });
    let supervisor = Supervisor::new(running, options, notify);
    let wake = supervisor.versions().wake();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let supervising = tokio::spawn(stratum_control::reconcile::run(supervisor, wake, stopped));

    // Due every second; the data is what v1 learnt from: nothing is trained.
    wait_long(
        "a retrain that finds the data unchanged",
        || events().iter().any(|message| message.contains("its data has not changed since v1")),
        &events,
    )
    .await;
    assert!(served.lock().unwrap().is_empty());

    write_rows(folder.path(), |_| true);
    wait_long("v2 served", || !served.lock().unwrap().is_empty(), &events).await;
    let (version, deployment) = served.lock().unwrap()[0].clone();
    assert_eq!(version, 2);
    assert!(!label(&deployment).await, "v2 learnt the opposite");
    let messages = events();
    let retrained = messages.iter().find(|message| message.starts_with("retrained on schedule: v2")).unwrap();
    assert!(retrained.contains("in place of v1"), "{retrained}");
    // Held out of v2's training, the latest fifth of the rows judged it: v1 gets every one of them wrong.
    assert!(
        retrained.contains("on the latest 80 rows, accuracy: v2 1.000, v1 0.000 (1.000 when trained); v2 serves"),
        "{retrained}"
    );
    assert!(retrained.contains("leaderboard by accuracy: "), "{retrained}");
    assert!(retrained.contains("decision_tree") && retrained.contains("logistic_regression"), "{retrained}");
    let store = stratum_ml::ModelStore::new(folder.path().join(".stratum/models"));
    assert_eq!(store.versions("labeller").unwrap(), [1, 2]);

    // The older rows turn to noise (each point labelled both ways, in alternate blocks) while the latest keep v2's
    // rule: the new version, trained on the older ones, scores worse than v2 on the latest and is stored without
    // serving.
    write_rows(folder.path(), |row| row >= 320 || (row / 20) % 2 == 0);
    wait_long(
        "v3 held back",
        || events().iter().any(|message| message.starts_with("retrain due: trained v3 on the changed data")),
        &events,
    )
    .await;
    let messages = events();
    let held = messages.iter().find(|message| message.starts_with("retrain due: trained v3")).unwrap();
    assert!(held.contains("v2 1.000 (1.000 when trained); v3 does not score better, so v2 serves on"), "{held}");
    assert_eq!(store.versions("labeller").unwrap(), [1, 2, 3]);
    assert_eq!(store.serving("labeller").unwrap(), Some(2));
    assert_eq!(served.lock().unwrap().len(), 1, "nothing else served");

    // Rolled back in the store (what `stratum model rollback labeller` does): v1 serves again, pinned, and the
    // retrains that come due leave it serving.
    store.choose("labeller", &stratum_ml::Serving { version: 1, pinned: true }).unwrap();
    wait_long("v1 served again", || served.lock().unwrap().len() == 2, &events).await;
    let (version, deployment) = served.lock().unwrap()[1].clone();
    assert_eq!(version, 1);
    assert!(label(&deployment).await, "v1 answers again");
    wait_long(
        "a retrain that leaves the pinned version",
        || {
            events()
                .iter()
                .any(|message| message.contains("v3 was trained on this data already; v1 is pinned and serves on"))
        },
        &events,
    )
    .await;
    let messages = events();
    assert!(
        messages.iter().any(|message| message.starts_with("v1 serves, as chosen in the model store, pinned; was v2")),
        "{messages:#?}"
    );
    assert_eq!(served.lock().unwrap().len(), 2, "nothing else served");
    assert_eq!(store.versions("labeller").unwrap(), [1, 2, 3], "nothing trained on the same data");

    stop.send_replace(true);
    let supervisor = supervising.await.unwrap();
    supervisor.stop().await.unwrap().unwrap();
}

/// `retrain = drift(accuracy, 0.1)`: each change of the data is measured (the serving version scored on its latest
/// rows, against its score when trained); a change it still does well on trains nothing, one it does worse on by
/// more than the threshold retrains it, and the new version serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drift_past_its_threshold_retrains_and_a_small_one_does_not() {
    let folder = tempfile::tempdir().unwrap();
    write_rows(folder.path(), |_| false);
    let options = common::options(folder.path());
    let source = APP.replace("retrain = every(1 h)", "retrain = drift(accuracy, 0.1)");
    let checked = stratum_lang::check_text("retrained.stratum", &source);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let plan = stratum_planner::plan(&checked).plan.expect("a plan");
    let running = up(checked.application, plan, options.clone(), &mut |_| {}).await.unwrap();
    let state = running.deployment.state.clone();
    let events = move || -> Vec<String> {
        state.events("retrained", 200).unwrap().into_iter().map(|event| event.message).collect::<Vec<_>>()
    };
    let served: Arc<Mutex<Vec<u32>>> = Arc::default();
    let heard = served.clone();
    let notify = Box::new(move |notice: Notice<'_>| {
        if let Notice::ModelServed { version, .. } = notice {
            heard.lock().unwrap().push(version);
        }
    });
    let supervisor = Supervisor::new(running, options, notify);
    let wake = supervisor.versions().wake();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let supervising = tokio::spawn(stratum_control::reconcile::run(supervisor, wake, stopped));

    // A tenth of the oldest rows turn: the latest rows still follow v1's rule, so v1 does as well as ever there.
    write_rows(folder.path(), |row| row < 40);
    wait_long("a small drift", || events().iter().any(|message| message.starts_with("drift: ")), &events).await;
    let messages = events();
    let small = messages.iter().find(|message| message.starts_with("drift: ")).unwrap();
    assert!(
        small.starts_with("drift: accuracy of v1 on the latest 80 rows: 1.000, 1.000 when trained (+0.000)"),
        "{small}"
    );
    assert!(small.contains("feature drift (PSI): x 0.00, y 0.00"), "{small}");

    // Every label turns: v1 gets the latest rows all wrong, a drift far past 0.1.
    write_rows(folder.path(), |_| true);
    wait_long("v2 served on drift", || !served.lock().unwrap().is_empty(), &events).await;
    assert_eq!(*served.lock().unwrap(), [2]);
    let messages = events();
    assert!(
        messages.iter().any(|message| message
            .starts_with("drift: accuracy of v1 on the latest 80 rows: 0.000, 1.000 when trained (-1.000)")),
        "{messages:#?}"
    );
    let retrained = messages.iter().find(|message| message.starts_with("retrained on drift: v2")).unwrap();
    assert!(retrained.contains("in place of v1"), "{retrained}");
    assert!(retrained.contains("v2 1.000, v1 0.000"), "{retrained}");
    // One retrain for one change: nothing else was trained.
    let store = stratum_ml::ModelStore::new(folder.path().join(".stratum/models"));
    assert_eq!(store.versions("labeller").unwrap(), [1, 2]);

    stop.send_replace(true);
    let supervisor = supervising.await.unwrap();
    supervisor.stop().await.unwrap().unwrap();
}
