//! Tools that run a container image, under real Docker (CI's external stage): the supervisor starts the image's
//! container, sees it listen on its port (healthy), keeps its output, restarts it with backoff when it exits, and
//! stops it through Docker — no container of its name is left. The images are built here: one from this build's
//! binary that serves a port (`stratum broker`), one that greets and exits.

mod containers;

use containers::{base_image, context_with_binary, docker_build, ok};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratum_control::tools::{ToolEvent, launch, log_path, supervise};
use stratum_core::ir::{Placement, Tool, ToolRun};
use tokio::sync::watch;

fn tool(name: &str, image: &str, ports: Vec<u16>) -> Tool {
    Tool {
        name: name.into(),
        run: ToolRun::Image(image.into()),
        ports,
        env: [("GREETING".to_string(), "hello".to_string())].into(),
        placement: Placement::default(),
        resources: Default::default(),
    }
}

fn containers_named(name: &str) -> String {
    ok("docker", &["ps", "-a", "--filter", &format!("name=^{name}$"), "--format", "{{.Names}}"], None)
}

async fn wait_until(what: &str, events: &Arc<Mutex<Vec<ToolEvent>>>, done: impl Fn(&[ToolEvent]) -> bool) {
    let started = Instant::now();
    while !done(&events.lock().unwrap()) {
        assert!(started.elapsed() < Duration::from_secs(60), "{what}: {:?}", events.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
#[ignore = "needs Docker; CI's external stage runs it"]
async fn an_image_tool_runs_in_docker_from_start_to_stop() {
    base_image();
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (port, port_v5) = (free(), free());
    let serving = context_with_binary(
        "tool-serving",
        "FROM debian:bookworm-slim\nCOPY stratum /usr/local/bin/stratum\nENTRYPOINT [\"stratum\", \"broker\"]\n",
    );
    docker_build(&serving, "stratum-test/serving-tool:1", None);
    let greeting = context_with_binary(
        "tool-greeting",
        "FROM debian:bookworm-slim\nCMD [\"sh\", \"-c\", \"echo \\\"$GREETING from the container\\\"; exit 3\"]\n",
    );
    docker_build(&greeting, "stratum-test/greeting-tool:1", None);
    let logs = tempfile::tempdir().unwrap();

    // A tool that exits: its output kept, restarted after 1 s, then 2 s.
    let greeter = tool("greeter", "stratum-test/greeting-tool:1", Vec::new());
    let launched = launch(&greeter, "dockertest").expect("docker is on the path");
    assert_eq!(launched.line[0], "docker");
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let (stop, stopped) = watch::channel(false);
    let supervisor = tokio::spawn(supervise(greeter, launched, logs.path().into(), stopped, move |_, event| {
        seen.lock().unwrap().push(event)
    }));
    wait_until("started, exited, started, exited", &events, |events| {
        events.iter().filter(|event| matches!(event, ToolEvent::Exited { .. })).count() >= 2
    })
    .await;
    stop.send_replace(true);
    supervisor.await.unwrap();
    let events = events.lock().unwrap().clone();
    assert!(matches!(events[0], ToolEvent::Started { .. }), "{events:?}");
    assert_eq!(
        events[1],
        ToolEvent::Exited {
            status: "exit status: 3 (hello from the container)".into(),
            restart_in: Duration::from_secs(1)
        }
    );
    let log = std::fs::read_to_string(log_path(logs.path(), "greeter")).unwrap();
    assert!(log.lines().filter(|line| *line == "hello from the container").count() >= 2, "{log}");
    assert_eq!(containers_named("stratum-dockertest-greeter"), "");

    // A tool that serves: healthy once its published port answers, stopped through Docker.
    let server = tool("server", "stratum-test/serving-tool:1", vec![port]);
    let mut launched = launch(&server, "dockertest").unwrap();
    // The image's entry point takes its listeners as arguments; the port is the tool's.
    let image = launched.line.pop().unwrap();
    launched.line.extend([
        image,
        "--listen".into(),
        format!("0.0.0.0:{port}"),
        "--listen-v5".into(),
        format!("0.0.0.0:{port_v5}"),
    ]);
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let (stop, stopped) = watch::channel(false);
    let supervisor = tokio::spawn(supervise(server, launched, logs.path().into(), stopped, move |_, event| {
        seen.lock().unwrap().push(event)
    }));
    wait_until("healthy", &events, |events| events.contains(&ToolEvent::Healthy { port })).await;
    assert_eq!(containers_named("stratum-dockertest-server"), "stratum-dockertest-server\n");
    stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(30), supervisor).await.expect("stopping took too long").unwrap();
    assert_eq!(events.lock().unwrap().last(), Some(&ToolEvent::Stopped));
    assert_eq!(containers_named("stratum-dockertest-server"), "", "no container is left behind");
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err(), "nothing listens any more");
}
