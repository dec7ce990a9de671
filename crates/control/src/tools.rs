//! `tool` components as supervised child processes: a `command` runs as given, an `image` through a container
//! runtime (podman or docker, whichever is installed). Each is started with its `env`, its output kept in
//! `LOG_DIR/NAME.log` (what `stratum logs NAME` prints), health-checked on its first declared port, and restarted
//! with the shared backoff ([`Backoff`]: 1 s, 2 s, 4 s … at most 60 s; back to 1 s after ten healthy minutes)
//! whenever it exits, until the application stops. Every start, exit and restart is reported.

use crate::reconcile::Backoff;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use stratum_core::events::EventKind;
use stratum_core::ir::{Tool, ToolRun};
use tokio::sync::watch;

/// How often a running tool is checked for having exited.
const POLL: Duration = Duration::from_millis(200);

/// Something that happened to a tool.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolEvent {
    /// It started.
    Started {
        /// Its process id, when known.
        pid: Option<u32>,
    },
    /// It listens on its health port.
    Healthy {
        /// The port.
        port: u16,
    },
    /// It exited; it is started again after a while.
    Exited {
        /// How it exited (with the last line it wrote).
        status: String,
        /// When it starts again.
        restart_in: Duration,
    },
    /// It could not be started; it is tried again after a while.
    Failed {
        /// Why.
        message: String,
        /// When it is tried again.
        restart_in: Duration,
    },
    /// It was stopped (the application stops or changed).
    Stopped,
}

/// An event's kind and message, as the state store records it.
pub fn describe(event: &ToolEvent) -> (EventKind, String) {
    match event {
        ToolEvent::Started { pid } => {
            (EventKind::Tool, format!("started (pid {})", pid.map_or_else(|| "?".to_string(), |pid| pid.to_string())))
        }
        ToolEvent::Healthy { port } => (EventKind::Tool, format!("healthy: listening on port {port}")),
        ToolEvent::Exited { status, restart_in } => {
            (EventKind::ToolExited, format!("{status}; restarting in {} s", restart_in.as_secs()))
        }
        ToolEvent::Failed { message, restart_in } => {
            (EventKind::ToolExited, format!("{message}; trying again in {} s", restart_in.as_secs()))
        }
        ToolEvent::Stopped => (EventKind::Tool, "stopped".to_string()),
    }
}

/// How a tool is started: the program and its arguments, and the container it runs in, if it is an image.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    /// The program and its arguments.
    pub line: Vec<String>,
    /// The container it runs in, if it is an image.
    pub container: Option<Container>,
}

/// An image's container. It is stopped through its runtime, since killing the runtime's client (`docker run`)
/// would leave the container running. It is removed by name once it ended (not with `run --rm`: that removal
/// happens in the daemon after `stop` returned, so a supervisor that stopped would leave it for a moment), and
/// before every start, in case a crash left one of that name.
#[derive(Clone, Debug, PartialEq)]
pub struct Container {
    /// `podman` or `docker`.
    pub runtime: String,
    /// The container's name.
    pub name: String,
}

/// Why a tool cannot run on this machine at all.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NotLaunched {
    /// Its `command` is empty.
    #[error("its `command` is empty")]
    EmptyCommand,
    /// It runs an image, and the machine has no container runtime.
    #[error("image `{image}` needs a container runtime (podman or docker) on this machine")]
    NoRuntime {
        /// The image.
        image: String,
    },
}

/// How a tool runs on this machine, or why it cannot. An image runs through podman when it is installed (it needs
/// no daemon, so being installed means it can run), else through docker.
pub fn launch(tool: &Tool, application: &str) -> Result<Launch, NotLaunched> {
    let runtime = ["podman", "docker"].into_iter().find(|runtime| on_path(runtime));
    launch_with(tool, application, runtime)
}

fn launch_with(tool: &Tool, application: &str, runtime: Option<&str>) -> Result<Launch, NotLaunched> {
    match &tool.run {
        ToolRun::Command(command) if command.is_empty() => Err(NotLaunched::EmptyCommand),
        ToolRun::Command(command) => Ok(Launch { line: command.clone(), container: None }),
        ToolRun::Image(image) => {
            let runtime = runtime.ok_or_else(|| NotLaunched::NoRuntime { image: image.clone() })?;
            let name = format!("stratum-{application}-{}", tool.name);
            let mut line = vec![runtime.to_string(), "run".into(), "--name".into(), name.clone()];
            for port in &tool.ports {
                line.extend(["-p".into(), format!("{port}:{port}")]);
            }
            for (key, value) in &tool.env {
                line.extend(["-e".into(), format!("{key}={value}")]);
            }
            line.push(image.clone());
            Ok(Launch { line, container: Some(Container { runtime: runtime.to_string(), name }) })
        }
    }
}

/// How long a container is given to stop before its runtime kills it.
const CONTAINER_STOP_SECONDS: u32 = 10;

impl Container {
    /// Runs `RUNTIME ARGUMENTS… NAME` to its end, off the async threads; what it prints is not kept.
    async fn run(&self, arguments: &[&str]) {
        let mut command = Command::new(&self.runtime);
        command.args(arguments).arg(&self.name).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let _ = tokio::task::spawn_blocking(move || command.status()).await;
    }

    /// Removes the container of this name, whether it ended or a crash left it behind; it is gone once this
    /// returns.
    async fn remove(&self) {
        self.run(&["rm", "-f"]).await;
    }

    /// Stops the container, giving it time to end by itself, then removes it.
    async fn stop(&self) {
        self.run(&["stop", "-t", &CONTAINER_STOP_SECONDS.to_string()]).await;
        self.remove().await;
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|directory| directory.join(program).is_file()))
}

/// Where a tool's output goes.
pub fn log_path(log_dir: &Path, tool: &str) -> PathBuf {
    log_dir.join(format!("{tool}.log"))
}

fn spawn(line: &[String], tool: &Tool, log: &Path) -> Result<Child, String> {
    if let Some(directory) = log.parent() {
        std::fs::create_dir_all(directory)
            .map_err(|error| format!("cannot create {}: {error}", directory.display()))?;
    }
    let output = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|error| format!("cannot open {}: {error}", log.display()))?;
    let errors = output.try_clone().map_err(|error| format!("cannot open {} twice: {error}", log.display()))?;
    Command::new(&line[0])
        .args(&line[1..])
        .envs(&tool.env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(output))
        .stderr(Stdio::from(errors))
        .spawn()
        .map_err(|error| format!("cannot start `{}`: {error}", line[0]))
}

/// Runs a tool until `stop` turns true, restarting it whenever it exits; `report` hears of everything.
pub async fn supervise(
    tool: Tool,
    launch: Launch,
    log_dir: PathBuf,
    mut stop: watch::Receiver<bool>,
    report: impl Fn(&str, ToolEvent) + Send,
) {
    let log = log_path(&log_dir, &tool.name);
    let mut backoff = Backoff::default();
    loop {
        let started = Instant::now();
        let written_before = std::fs::metadata(&log).map_or(0, |metadata| metadata.len());
        if let Some(container) = &launch.container {
            container.remove().await;
        }
        let wait = match spawn(&launch.line, &tool, &log) {
            Ok(mut child) => {
                report(&tool.name, ToolEvent::Started { pid: Some(child.id()) });
                let health = health_check(tool.ports.first().copied());
                tokio::pin!(health);
                let mut healthy = tool.ports.is_empty();
                let status = loop {
                    tokio::select! {
                        _ = tokio::time::sleep(POLL) => {
                            if let Some(status) = exited(&mut child) {
                                break Some(status);
                            }
                        }
                        port = &mut health, if !healthy => {
                            healthy = true;
                            report(&tool.name, ToolEvent::Healthy { port });
                        }
                        _ = stop.wait_for(|stopped| *stopped) => break None,
                    }
                };
                let Some(status) = status else {
                    if let Some(container) = &launch.container {
                        container.stop().await;
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    report(&tool.name, ToolEvent::Stopped);
                    return;
                };
                if let Some(container) = &launch.container {
                    container.remove().await;
                }
                let wait = backoff.after(started.elapsed());
                // The exit (or why it could not be waited for) is told in the tool's event.
                let mut status =
                    status.map_or_else(|error| stratum_core::error_chain(&error), |status| status.to_string());
                // The first thing this run wrote usually says why it ended (a container runtime without its daemon,
                // a port taken).
                if let Some(said) = first_line_since(&log, written_before) {
                    status = format!("{status} ({said})");
                }
                report(&tool.name, ToolEvent::Exited { status, restart_in: wait });
                wait
            }
            Err(message) => {
                let wait = backoff.after(started.elapsed());
                report(&tool.name, ToolEvent::Failed { message, restart_in: wait });
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stopped| *stopped) => {
                report(&tool.name, ToolEvent::Stopped);
                return;
            }
        }
    }
}

/// The first line a tool wrote past `offset` in its log, shortened, if any.
fn first_line_since(log: &Path, offset: u64) -> Option<String> {
    let bytes = std::fs::read(log).ok()?;
    let text = String::from_utf8_lossy(bytes.get(offset as usize..)?);
    let line = text.lines().find(|line| !line.trim().is_empty())?.trim();
    Some(if line.chars().count() > 160 {
        format!("{}…", line.chars().take(160).collect::<String>())
    } else {
        line.to_string()
    })
}

/// The child's exit status once it has exited (polled: no thread waits for it).
fn exited(child: &mut Child) -> Option<Result<ExitStatus, std::io::Error>> {
    match child.try_wait() {
        Ok(Some(status)) => Some(Ok(status)),
        Ok(None) => None,
        Err(error) => Some(Err(error)),
    }
}

/// Resolves once something listens on `port` on loopback (never without a port).
async fn health_check(port: Option<u16>) -> u16 {
    let Some(port) = port else { return std::future::pending().await };
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return port;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::{Arc, Mutex};
    use stratum_core::ir::Placement;

    fn tool(command: &[&str]) -> Tool {
        Tool {
            name: "echoer".into(),
            run: ToolRun::Command(command.iter().map(|part| part.to_string()).collect()),
            ports: Vec::new(),
            env: [("GREETING".to_string(), "hello".to_string())].into(),
            placement: Placement::default(),
            resources: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_tool_that_exits_is_restarted_with_backoff_and_its_output_kept() {
        let directory = tempfile::tempdir().unwrap();
        let echoer = tool(&["sh", "-c", "echo \"$GREETING from the tool\"; exit 3"]);
        let launch = launch(&echoer, "demo").unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let (stop, stopped) = watch::channel(false);
        let supervisor = tokio::spawn(supervise(echoer, launch, directory.path().into(), stopped, move |_, event| {
            seen.lock().unwrap().push(event)
        }));
        // Started, exited (restart in 1 s), started again, exited (restart in 2 s).
        let started = Instant::now();
        while events.lock().unwrap().len() < 4 {
            assert!(started.elapsed() < Duration::from_secs(10), "{:?}", events.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send_replace(true);
        supervisor.await.unwrap();
        let events = events.lock().unwrap().clone();
        assert!(matches!(events[0], ToolEvent::Started { .. }));
        assert_eq!(
            events[1],
            ToolEvent::Exited {
                status: "exit status: 3 (hello from the tool)".into(),
                restart_in: Duration::from_secs(1)
            }
        );
        assert!(matches!(events[3], ToolEvent::Exited { restart_in, .. } if restart_in == Duration::from_secs(2)));
        assert_eq!(events.last(), Some(&ToolEvent::Stopped));
        let log = std::fs::read_to_string(log_path(directory.path(), "echoer")).unwrap();
        assert_eq!(log.lines().filter(|line| *line == "hello from the tool").count(), 2, "{log}");
    }

    #[test]
    fn an_image_without_a_container_runtime_says_what_it_needs() {
        let mut grafana = tool(&[]);
        grafana.run = ToolRun::Image("grafana/grafana:11.2.0".into());
        let error = launch_with(&grafana, "demo", None).unwrap_err().to_string();
        assert!(error.contains("needs a container runtime (podman or docker)"), "{error}");
        let launch = launch_with(&grafana, "demo", Some("docker")).unwrap();
        assert_eq!(launch.line[..4], ["docker", "run", "--name", "stratum-demo-echoer"]);
        assert_eq!(launch.line.last().unwrap(), "grafana/grafana:11.2.0");
        assert!(launch_with(&tool(&[]), "demo", None).is_err());
    }

    /// A stand-in for docker or podman that writes down how it is called. `run` waits like a container's client
    /// until `stop` (called with the same name) ends it; `rm` does nothing.
    const FAKE_RUNTIME: &str = r#"#!/bin/sh
here=$(dirname "$0")
echo "$*" >> "$here/calls"
case "$1" in
  run) echo $$ > "$here/running"; exec sleep 30 ;;
  stop) kill "$(cat "$here/running")" ;;
esac
"#;

    #[tokio::test]
    async fn an_image_is_stopped_through_its_runtime_and_a_leftover_container_removed_first() {
        use std::os::unix::fs::PermissionsExt;
        let directory = tempfile::tempdir().unwrap();
        let runtime = directory.path().join("runtime");
        std::fs::write(&runtime, FAKE_RUNTIME).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut grafana = tool(&[]);
        grafana.run = ToolRun::Image("grafana/grafana:11.2.0".into());
        let launch = launch_with(&grafana, "demo", Some(runtime.to_str().unwrap())).unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let (stop, stopped) = watch::channel(false);
        let supervisor = tokio::spawn(supervise(grafana, launch, directory.path().into(), stopped, move |_, event| {
            seen.lock().unwrap().push(event)
        }));
        let calls = directory.path().join("calls");
        let started = Instant::now();
        while !std::fs::read_to_string(&calls).unwrap_or_default().contains("run ") {
            assert!(started.elapsed() < Duration::from_secs(10), "the container was not started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(20), supervisor).await.expect("stopping took too long").unwrap();
        let calls = std::fs::read_to_string(&calls).unwrap();
        let calls: Vec<&str> = calls.lines().collect();
        assert_eq!(
            calls,
            [
                "rm -f stratum-demo-echoer",
                "run --name stratum-demo-echoer -e GREETING=hello grafana/grafana:11.2.0",
                "stop -t 10 stratum-demo-echoer",
                "rm -f stratum-demo-echoer",
            ]
        );
        let events = events.lock().unwrap().clone();
        assert!(matches!(events[0], ToolEvent::Started { .. }), "{events:?}");
        assert_eq!(events.last(), Some(&ToolEvent::Stopped), "{events:?}");
    }
}
