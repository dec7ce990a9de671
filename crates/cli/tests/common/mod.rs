//! What the tests of `stratum up` share: a free port, a copy of the traffic example, and a running `stratum up`
//! whose output lines are collected.
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The API tokens the tests start `stratum up` with.
pub(crate) const OPERATOR_TOKEN: &str = "test-operator";
pub(crate) const VIEWER_TOKEN: &str = "test-viewer";

pub(crate) use stratum_test_support::free_port;

/// A running `stratum up` whose stderr lines are collected as they come.
pub(crate) struct Up {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Up {
    /// `stratum up traffic.stratum` an hour a minute, with 12 h of history to train on.
    pub(crate) fn start(folder: &Path, api: u16, seconds: u32) -> Up {
        Up::start_file(folder, "traffic.stratum", api, seconds)
    }

    pub(crate) fn start_file(folder: &Path, file: &str, api: u16, seconds: u32) -> Up {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stratum"))
            .args(["up", file, "--speed", "60", "--bootstrap-hours", "12"])
            .args(["--api", &format!("127.0.0.1:{api}"), "--for", &format!("{seconds}s")])
            .args(["--state-dir", ".stratum", "--token", OPERATOR_TOKEN, "--viewer-token", VIEWER_TOKEN])
            .current_dir(folder)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the stratum binary runs");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (stderr, collected) = (child.stderr.take().unwrap(), lines.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                collected.lock().unwrap().push(line);
            }
        });
        Up { child, lines }
    }

    /// Waits for a stderr line containing `text` and returns it.
    pub(crate) fn line(&self, text: &str, timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self.lines.lock().unwrap().iter().find(|line| line.contains(text)) {
                return line.clone();
            }
            assert!(started.elapsed() < timeout, "no `{text}` in:\n{}", self.lines.lock().unwrap().join("\n"));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it as Ctrl-C does (it drains and exits).
    pub(crate) fn interrupt(&self) {
        let status = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    pub(crate) fn finish(mut self) -> (i32, String, String) {
        let status = self.child.wait().unwrap();
        let mut stdout = String::new();
        std::io::Read::read_to_string(self.child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        (status.code().unwrap_or(-1), stdout, self.lines.lock().unwrap().join("\n"))
    }
}

pub(crate) fn traffic_copy(name: &str) -> PathBuf {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/traffic");
    for file in ["traffic.stratum", "shared.stratum"] {
        std::fs::copy(examples.join(file), folder.join(file)).unwrap();
    }
    folder
}

/// A request over a fresh connection to a loopback port, given whole (headers and body): its status and body, or
/// `None` when nothing answered within 30 s (refused, reset by a kill).
pub(crate) fn request(port: u16, bytes: &[u8]) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    stream.write_all(bytes).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, answer.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()))
}

/// A whole `POST path` of a JSON body, closing the connection after the answer.
pub(crate) fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// One push of readings to an HTTP source at `/readings`: its status, or `None` when nothing answered.
pub(crate) fn push(port: u16, body: &str) -> Option<u16> {
    request(port, &post("/readings", body.as_bytes())).map(|(status, _)| status)
}

/// Whether the process is still the one started (it has not exited).
pub(crate) fn alive(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

/// Stops `stratum up` as an operator does (SIGTERM: it drains what runs) and waits for it.
pub(crate) fn terminate(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let started = Instant::now();
    while alive(child) {
        assert!(started.elapsed() < Duration::from_secs(30), "stratum up did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The fault suite's ingest application around `source` (its `source readings: …` line): every reading goes to a
/// file as it is (`out/raw.jsonl`) and is counted per sensor in a day-long window (`out/counts.jsonl`).
pub(crate) fn ingest_app(source: &str) -> String {
    format!(
        r#"app ingest
node laptop {{ tier = cloud  cpu = 2  memory = 4 GiB }}
schema Reading {{ id: int  sensor: string  ts: timestamp }}
{source}
stream per_sensor {{
  from = readings
  window = tumbling(1 d) by sensor
  select {{ n = count() }}
}}
sink raw: jsonl {{ from = readings  path = "out/raw.jsonl" }}
sink counts: jsonl {{ from = per_sensor  path = "out/counts.jsonl" }}
"#
    )
}

/// `stratum up` of `folder/ingest.stratum` with real sources (`extra` arguments after), its messages appended to
/// `folder/up.log`.
pub(crate) fn up_ingest(folder: &Path, extra: &[&str]) -> Command {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(folder.join("up.log")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_stratum"));
    command
        .args(["up", "ingest.stratum", "--live", "--api", &format!("127.0.0.1:{}", free_port())])
        .args(extra)
        .current_dir(folder)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    command
}
