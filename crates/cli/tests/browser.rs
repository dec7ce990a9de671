//! The web interface in a real browser: `stratum up` on the traffic example, then headless Chromium driven through
//! chromedriver (WebDriver) opens the dashboard URL `up` printed and finds the topology with its machines and live
//! rates, a service chart that updates, the congestion model's leaderboard, the file's operations dashboard, a
//! simulation of the running version with a cut link (its charts and timeline), and a diagnostic in the editor
//! after an error is typed in. Screenshots of each view are kept as test artifacts in
//! `$CARGO_TARGET_TMPDIR/browser/`.
//!
//! Needs `chromium` and `chromedriver` (Debian: chromium, chromium-driver; CI's external stage installs them), so
//! it is ignored in the plain test run: `cargo test -p stratum --test browser -- --include-ignored`.

mod common;

use common::{OPERATOR_TOKEN, Up, free_port, traffic_copy};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> Driver {
    let program = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let port = free_port();
    let child = Command::new(&program)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("`{program}` must be installed (Debian: chromium-driver): {error}"));
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver { child, url: format!("http://127.0.0.1:{port}") }
}

async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    let mut options = json!({
        "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-extensions", "--no-first-run",
            "--window-size=1400,1000",
        ],
    });
    if let Ok(binary) = std::env::var("CHROMIUM") {
        options["binary"] = Value::String(binary);
    }
    capabilities.insert("goog:chromeOptions".into(), options);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with headless Chromium")
}

fn screenshots() -> PathBuf {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

async fn screenshot(client: &Client, name: &str) {
    let path = screenshots().join(format!("{name}.png"));
    std::fs::write(&path, client.screenshot().await.unwrap()).unwrap();
    println!("screenshot: {}", path.display());
}

async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("no `{css}` on the page: {error}"))
}

/// Polls a JavaScript expression until it is true.
async fn wait_until(client: &Client, what: &str, expression: &str) {
    let started = Instant::now();
    loop {
        let value = client.execute(&format!("return Boolean({expression});"), Vec::new()).await.unwrap();
        if value == Value::Bool(true) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{what}: `{expression}` stayed false");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn open_tab(client: &Client, view: &str) {
    client.find(Locator::Css(&format!("#tabs a[data-view='{view}']"))).await.unwrap().click().await.unwrap();
    wait_until(client, view, &format!("!document.getElementById('view-{view}').hidden")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver: run in CI's external stage"]
async fn the_dashboard_shows_the_running_traffic_application() {
    let folder = traffic_copy("browser_traffic");
    let up = Up::start(&folder, free_port(), 600);
    let line = up.line("dashboard: ", Duration::from_secs(240));
    let url = line.split_whitespace().last().unwrap().to_string();
    assert!(url.ends_with(&format!("#token={OPERATOR_TOKEN}")), "{url}");
    up.line("press Ctrl-C to stop", Duration::from_secs(240));

    let driver = start_driver();
    let client = browser(&driver).await;
    client.goto(&url).await.unwrap();

    // Topology: the machines of every tier, the components on them, and live rates on the paths between machines.
    wait_for(&client, "#topology [data-node='fog_downtown'] [data-component='counts']").await;
    for node in ["cam_5th_main", "cam_5th_oak", "fog_downtown", "cloud_workers-1"] {
        wait_for(&client, &format!("#topology [data-node='{node}']")).await;
    }
    for tier in ["edge", "fog", "cloud"] {
        wait_for(&client, &format!("#topology [data-tier='{tier}']")).await;
    }
    wait_until(
        &client,
        "a live rate on the path from the cameras to the fog",
        "[...document.querySelectorAll('#topology [data-edge-rate=\"detections->counts\"]')].some(e => /\\d/.test(e.textContent))",
    )
    .await;
    assert!(client.current_url().await.unwrap().fragment().is_some_and(|fragment| !fragment.contains("token")));
    screenshot(&client, "topology").await;

    // The signal service: meeting its latency target, with a latency chart that updates.
    open_tab(&client, "services").await;
    wait_for(&client, "[data-service='signal_timing'][data-meets-target='true']").await;
    let updates = "Number(document.getElementById('service-signal_timing-latency').dataset.updates || 0)";
    wait_until(&client, "the latency chart drawn", &format!("{updates} >= 1")).await;
    let before = client.execute(&format!("return {updates};"), Vec::new()).await.unwrap().as_f64().unwrap();
    wait_until(&client, "the latency chart updated", &format!("{updates} > {before}")).await;
    screenshot(&client, "services").await;

    // The congestion model's leaderboard: one row per candidate evaluated.
    open_tab(&client, "models").await;
    wait_for(&client, "[data-model='congestion'] table.leaderboard tbody tr").await;
    let rows = client.find_all(Locator::Css("[data-model='congestion'] table.leaderboard tbody tr")).await.unwrap();
    assert!(rows.len() >= 9, "every candidate of the file: {} rows", rows.len());
    screenshot(&client, "models").await;

    // The operations dashboard of the file: its three panels, the line chart drawn with points.
    open_tab(&client, "dashboards").await;
    for panel in ["Vehicles per minute", "Speeding", "Signal decisions"] {
        wait_for(&client, &format!("[data-dashboard='operations'] [data-panel='{panel}']")).await;
    }
    wait_until(
        &client,
        "the vehicles chart has points",
        "Number(document.querySelector(\"[data-panel='Vehicles per minute'] .chart\").dataset.points || 0) > 0",
    )
    .await;
    screenshot(&client, "dashboards").await;

    // Simulate: an hour of the running version with the edge-to-fog link cut for ten minutes; its charts drawn
    // from the report's series, and the cut in what happened.
    open_tab(&client, "simulate").await;
    client
        .execute("document.getElementById('simulate-partition').value = 'edge->fog@20m+10m';", Vec::new())
        .await
        .unwrap();
    client.find(Locator::Css("#simulate-run")).await.unwrap().click().await.unwrap();
    wait_until(
        &client,
        "the links chart drawn",
        "Number(document.getElementById('simulate-links-chart').dataset.points || 0) > 0",
    )
    .await;
    wait_until(
        &client,
        "the cut in what happened",
        "document.getElementById('simulate-timeline').textContent.includes('edge -> fog cut for 10m 0s')",
    )
    .await;
    screenshot(&client, "simulate").await;

    // The editor: an error typed in (near the top, where the editor draws lines) shows its diagnostic, from the
    // check API, in the list and in the gutter.
    open_tab(&client, "editor").await;
    wait_until(
        &client,
        "the source loaded",
        "document.getElementById('editor').CodeMirror.getValue().includes('app traffic')",
    )
    .await;
    client
        .execute(
            "const editor = document.getElementById('editor').CodeMirror; \
             editor.replaceRange('stream broken { from = nowhere }\\n', {line: 3, ch: 0});",
            Vec::new(),
        )
        .await
        .unwrap();
    let diagnostic = wait_for(&client, "#diagnostics li[data-code='E0102']").await;
    let text = diagnostic.text().await.unwrap();
    assert!(text.contains("nowhere"), "{text}");
    wait_for(&client, ".CodeMirror-lint-marker-error").await;
    assert!(client.find(Locator::Css("#apply")).await.unwrap().attr("disabled").await.unwrap().is_some());
    screenshot(&client, "editor").await;

    client.close().await.unwrap();
    drop(driver);
    up.interrupt();
    let (code, _, stderr) = up.finish();
    assert_eq!(code, 0, "{stderr}");
}
