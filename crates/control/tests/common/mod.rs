//! What the `stratum up` tests share: options for a run in a folder, and waiting for a condition.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};
use stratum_control::up::UpOptions;

/// `up` in `folder`: its state under `.stratum`, external sources simulated.
pub(crate) fn options(folder: &Path) -> UpOptions {
    UpOptions {
        base_dir: folder.into(),
        state_dir: folder.join(".stratum"),
        mqtt_broker: None,
        simulate: true,
        bootstrap_hours: 1.0,
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
