//! The generated compose project, run for real: Docker containers, each machine with its own address, built
//! from the image the repository's Containerfile makes out of the binary these tests were built with (no second
//! compile). CI's external stage runs these (`--include-ignored`); they need Docker with compose, debootstrap (for
//! the base image, made once by deploy/base-image.sh) and objcopy.
//!
//! - The traffic example: every machine joins, data flows from the edge containers to the cloud sink, a
//!   prediction through the control plane's gateway answers from the fog container, `docker kill` of the fog
//!   container moves its components to the cloud container within the agent timeout, and `docker restart` of the
//!   control plane leaves the agents working and the application known.
//! - A relay application: the edge container is cut off its network for 30 s; every reading its generator made
//!   (a known count) reaches the cloud sink afterwards, in order, none lost.
//!
//! Figures (time to running, failover, records lost) are printed for docs/benchmarks.md.

mod containers;

use containers::{build_image, ok, repository, run};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use stratum_planner::generate::runtime::{CONTROL_PLANE, STATE_DIR};
use stratum_test_support::free_port;

/// `docker compose` where the machine has it, `docker-compose` otherwise.
fn compose_program() -> (&'static str, Vec<&'static str>) {
    if run("docker", &["compose", "version"], None).status.success() {
        ("docker", vec!["compose"])
    } else {
        ("docker-compose", Vec::new())
    }
}

/// A compose project of a generated folder, taken down with its volumes when dropped.
struct Project {
    name: String,
    folder: PathBuf,
    api: String,
    token: String,
}

impl Project {
    fn compose(&self, arguments: &[&str]) -> Output {
        let (program, mut words) = compose_program();
        words.extend(["-p", &self.name]);
        words.extend(arguments);
        let mut command = Command::new(program);
        command.args(&words).current_dir(&self.folder).env("STRATUM_API_PORT", self.api.rsplit(':').next().unwrap());
        command.output().expect("compose runs")
    }

    fn container(&self, service: &str) -> String {
        format!("{}_{service}_1", self.name).replace("_", if compose_program().0 == "docker" { "-" } else { "_" })
    }

    /// The cluster's authority, as the generated README says to take it: from the control plane's volume. Empty
    /// until the control plane has made it.
    fn authority(&self) -> PathBuf {
        let path = self.folder.join("ca.pem");
        if !path.is_file() {
            let output = self.compose(&["exec", "-T", CONTROL_PLANE, "cat", &format!("{STATE_DIR}/tls/ca.pem")]);
            if output.status.success() && output.stdout.starts_with(b"-----BEGIN CERTIFICATE-----") {
                std::fs::write(&path, &output.stdout).unwrap();
            }
        }
        path
    }

    /// `curl` over TLS to the control plane, trusting only the cluster's authority (its certificate names
    /// 127.0.0.1, where compose publishes the API).
    fn curl(&self, arguments: &[&str]) -> Output {
        let authority = self.authority();
        let mut words = vec!["-s", "-m", "10", "--cacert", authority.to_str().unwrap()];
        words.extend(arguments);
        run("curl", &words, None)
    }

    fn get(&self, path: &str) -> Value {
        let output =
            self.curl(&["-H", &format!("Authorization: Bearer {}", self.token), &format!("{}{path}", self.api)]);
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
    }

    /// Where each component runs now, by the control plane's status.
    fn placement(&self) -> Vec<(String, bool, Vec<String>)> {
        let status = self.get("/v1/status");
        status["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|agent| {
                let components = agent["components"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|component| component["running"].as_bool().unwrap_or(true))
                    .filter_map(|component| component["name"].as_str().map(str::to_string))
                    .collect();
                (
                    agent["name"].as_str().unwrap_or_default().to_string(),
                    agent["alive"].as_bool().unwrap_or(false),
                    components,
                )
            })
            .collect()
    }

    fn runs_on(&self, agent: &str, component: &str) -> bool {
        self.placement()
            .iter()
            .any(|(name, alive, components)| name == agent && *alive && components.iter().any(|c| c == component))
    }

    fn lines(&self, service: &str, path: &str) -> Vec<String> {
        let output = run("docker", &["exec", &self.container(service), "cat", path], None);
        String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect()
    }

    fn logs(&self) -> String {
        String::from_utf8_lossy(&self.compose(&["logs", "--no-color", "--tail", "40"]).stdout).into_owned()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--remove-orphans", "-t", "5"]);
    }
}

fn wait_for(what: &str, limit: Duration, project: &Project, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}\n{}", project.logs());
        std::thread::sleep(Duration::from_millis(250));
    }
    started.elapsed()
}

/// No registry can be reached here, so a tool's image (the traffic example's Grafana) that is not on the machine is
/// stood in for by a small image of the same name that runs until stopped: compose starts the tool's container as
/// it would start the real one.
fn stand_in_for_tool_images(folder: &Path) {
    let compose = std::fs::read_to_string(folder.join("compose.yaml")).unwrap();
    let document: serde_json::Value = serde_yaml_ng::from_str(&compose).unwrap();
    for (name, service) in document["services"].as_object().unwrap() {
        let Some(image) = service["image"].as_str().filter(|_| name.starts_with("tool-")) else { continue };
        if run("docker", &["image", "inspect", image], None).status.success() {
            continue;
        }
        containers::base_image();
        let context = Path::new(env!("CARGO_TARGET_TMPDIR")).join("images").join(name);
        let _ = std::fs::remove_dir_all(&context);
        std::fs::create_dir_all(&context).unwrap();
        std::fs::write(context.join("Containerfile"), "FROM debian:bookworm-slim\nCMD [\"sleep\", \"infinity\"]\n")
            .unwrap();
        containers::docker_build(&context, image, None);
    }
}

/// Generates the compose project of `file` and brings it up; returns once the application runs.
fn up(file: &Path, name: &str) -> (Project, Duration) {
    build_image();
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compose").join(name);
    let _ = std::fs::remove_dir_all(&folder);
    ok(
        env!("CARGO_BIN_EXE_stratum"),
        &["generate", "compose", &file.to_string_lossy(), "-o", &folder.to_string_lossy()],
        None,
    );
    stand_in_for_tool_images(&folder);
    let secrets = std::fs::read_to_string(folder.join("secrets/server.env")).unwrap();
    let token = secrets.lines().find_map(|line| line.strip_prefix("STRATUM_TOKEN=")).unwrap().to_string();
    let project = Project {
        name: format!("stratumtest{name}"),
        folder,
        api: format!("https://127.0.0.1:{}", free_port()),
        token,
    };
    let _ = project.compose(&["down", "-v", "--remove-orphans"]);
    let started = Instant::now();
    let output = project.compose(&["up", "-d"]);
    assert!(output.status.success(), "compose up failed:\n{}", String::from_utf8_lossy(&output.stderr));
    wait_for("the application applied and running", Duration::from_secs(240), &project, || {
        let app = project.get("/v1/app");
        app["phase"] == "running" && app["version"] == 1
    });
    (project, started.elapsed())
}

#[test]
#[ignore = "needs Docker with compose; CI's external stage runs it"]
fn the_traffic_example_runs_across_containers() {
    let (project, to_running) = up(&repository().join("examples/traffic/traffic.stratum"), "traffic");
    let agents = ["cam_5th_main", "cam_5th_oak", "fog_downtown", "cloud_workers-1"];
    wait_for("every machine joined and runs its part", Duration::from_secs(60), &project, || {
        let placement = project.placement();
        agents.iter().all(|agent| placement.iter().any(|(name, alive, _)| name == agent && *alive))
            && project.runs_on("fog_downtown", "counts")
            && project.runs_on("cloud_workers-1", "speeding_log")
    });
    println!("figure: compose up to the application running: {:.1} s", to_running.as_secs_f64());

    // Edge → cloud: the speeding log on the cloud container fills with records the edge containers produced.
    let log = "/var/lib/stratum/agent/data/speeding.jsonl";
    wait_for("records from the edge in the cloud sink", Duration::from_secs(60), &project, || {
        project.lines("cloud-workers-1", log).len() > 20
    });
    let record: Value = serde_json::from_str(&project.lines("cloud-workers-1", log)[0]).unwrap();
    assert!(record["vehicle"].is_string() && record["speed_kmh"].as_f64().unwrap() > 80.0, "{record}");

    // A prediction through the control plane's gateway, answered by the fog container that serves it.
    assert!(project.runs_on("fog_downtown", "signal_timing"));
    let answer = project.curl(&[
        "-X",
        "POST",
        &format!("{}/v1/services/signal_timing/predict", project.api),
        "-d",
        r#"{"window_end": "2026-01-01T08:00:00Z", "vehicles": 70000, "avg_speed": 31.5}"#,
    ]);
    let answer: Value = serde_json::from_slice(&answer.stdout).unwrap_or(Value::Null);
    assert!(answer["prediction"].is_boolean(), "the gateway answered {answer}");

    // The fog container killed: its streams move to the cloud container within the agent timeout (10 s) and
    // run there; the service needs a GPU no other machine has, so it waits, with an event that says so.
    ok("docker", &["kill", &project.container("fog-downtown")], None);
    let failover =
        wait_for("the fog's streams running on the cloud container", Duration::from_secs(30), &project, || {
            ["counts", "counts_with_weather", "signal_plan"]
                .iter()
                .all(|component| project.runs_on("cloud_workers-1", component))
        });
    println!(
        "figure: fog container killed → its streams running on the cloud container: {:.1} s",
        failover.as_secs_f64()
    );
    let events = project.get("/v1/events?limit=1000");
    let events = events["events"].as_array().cloned().unwrap_or_default();
    assert!(events.iter().any(|event| event["kind"] == "agent-lost" && event["component"] == "fog_downtown"));
    assert!(
        events.iter().any(|event| event["component"] == "signal_timing"
            && event["message"].as_str().unwrap_or_default().starts_with("not running")),
        "the service that cannot move says so"
    );
    assert!(
        !events.iter().any(|event| event["kind"] == "agent-problem"),
        "the cloud agent runs what moved to it: {events:?}"
    );

    // The control plane restarted: the agents carry on (the cloud sink keeps filling meanwhile) and it knows the
    // application and every agent again.
    let before = project.lines("cloud-workers-1", log).len();
    ok("docker", &["restart", "-t", "5", &project.container("control-plane")], None);
    wait_for("the restarted control plane knows the application", Duration::from_secs(60), &project, || {
        project.get("/v1/app")["version"] == 1
    });
    wait_for("the agents back with the restarted control plane", Duration::from_secs(60), &project, || {
        let placement = project.placement();
        ["cam_5th_main", "cam_5th_oak", "cloud_workers-1"]
            .iter()
            .all(|agent| placement.iter().any(|(name, alive, _)| name == agent && *alive))
    });
    wait_for("records still arriving after the restart", Duration::from_secs(30), &project, || {
        project.lines("cloud-workers-1", log).len() > before
    });
}

/// A timestamp as the sink writes it (`…:53Z`, `…:53.027Z`: no fraction when it is zero) in a form whose text
/// order is time order: the fraction always three digits.
fn comparable(timestamp: &str) -> String {
    let bare = timestamp.trim_end_matches('Z');
    let (seconds, fraction) = bare.split_once('.').unwrap_or((bare, ""));
    format!("{seconds}.{fraction:0<3}Z")
}

#[test]
#[ignore = "needs Docker with compose; CI's external stage runs it"]
fn a_partitioned_edge_loses_nothing() {
    let (project, _) = up(&repository().join("crates/cli/test_data/relay.stratum"), "relay");
    let archive = "/var/lib/stratum/agent/data/readings.jsonl";
    wait_for("readings arriving in the cloud", Duration::from_secs(60), &project, || {
        !project.lines("store-1", archive).is_empty()
    });
    // Cut the edge container off the only network it has for 30 s; it keeps generating and buffers.
    let network = format!("{}_edge", project.name);
    let sensor = project.container("sensor-1");
    ok("docker", &["network", "disconnect", &network, &sensor], None);
    let cut_at = project.lines("store-1", archive).len();
    std::thread::sleep(Duration::from_secs(30));
    let during = project.lines("store-1", archive).len();
    ok("docker", &["network", "connect", "--alias", "sensor-1", &network, &sensor], None);
    assert!(during <= cut_at + 50, "nothing crosses a cut network ({cut_at} then {during})");
    let expected = 4000;
    let last_arrived = wait_for("every reading in the cloud", Duration::from_secs(120), &project, || {
        project.lines("store-1", archive).len() >= expected
    });
    std::thread::sleep(Duration::from_secs(3));
    let lines = project.lines("store-1", archive);
    let records: Vec<Value> = lines.iter().map(|line| serde_json::from_str(line).unwrap()).collect();
    let distinct: BTreeSet<&String> = lines.iter().collect();
    let lost = expected - distinct.len().min(expected);
    let duplicated = lines.len() - distinct.len();
    println!(
        "figure: 30 s partition of the edge: {expected} readings made, {} arrived, {lost} lost, {duplicated} duplicated; the last {:.1} s after the heal (the generator makes readings for 80 s)",
        lines.len(),
        last_arrived.as_secs_f64()
    );
    assert_eq!(lost, 0, "every reading the edge made reaches the cloud");
    assert_eq!(distinct.len(), expected, "no reading the generator did not make");
    // In order: one producer, one path, its log delivered in sequence.
    let times: Vec<String> = records.iter().map(|record| comparable(record["ts"].as_str().unwrap())).collect();
    if let Some(at) = times.windows(2).position(|pair| pair[0] > pair[1]) {
        panic!(
            "the readings arrive in the order they were made, but record {at} comes before an older one:\n{}",
            lines[at.saturating_sub(3)..(at + 4).min(lines.len())].join("\n")
        );
    }
}
