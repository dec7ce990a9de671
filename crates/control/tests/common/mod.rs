//! What the control plane's tests share: options for a `stratum up` run in a folder, waiting for a condition, and
//! a folder with an application's data and its model `labeller` trained.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use stratum_control::up::UpOptions;

/// `up` in `folder`: its state under `.stratum`, external sources simulated.
pub(crate) fn options(folder: &Path) -> UpOptions {
    UpOptions {
        base_dir: folder.into(),
        state_dir: folder.join(".stratum"),
        mqtt_broker: None,
        simulate: true,
        bootstrap_hours: Some(1.0),
        time_scale: 1.0,
    }
}

/// Waits (at most 20 s) until `condition` holds.
pub(crate) async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A folder named `name` with 400 rows of `x, y, label` and the model `labeller` of `text` trained on them into
/// `models/`.
pub(crate) fn trained_app(name: &str, text: &str) -> (PathBuf, stratum_core::ir::Application) {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let mut csv = String::from("x,y,label\n");
    for index in 0..400 {
        let (x, y) = ((index % 20) as f64 / 10.0, (index % 7) as f64 / 3.0);
        csv.push_str(&format!("{x},{y},{}\n", x + y > 2.0));
    }
    std::fs::write(folder.join("rows.csv"), csv).unwrap();
    let checked = stratum_lang::check_text("serve.stratum", text);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let application = checked.application;
    let report = stratum_ml::train(&application, "labeller", &folder, &mut |_| {}).unwrap();
    let model = &application.models[0];
    stratum_ml::ModelStore::new(folder.join("models"))
        .save(&report, model.inputs.clone(), model.output.clone())
        .unwrap();
    (folder, application)
}
