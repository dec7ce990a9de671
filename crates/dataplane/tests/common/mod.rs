//! Helpers shared by the data plane's integration tests: checking a `.stratum` file into its IR.
#![allow(dead_code)]

use stratum_core::ir::Application;

/// The IR of a test application in `tests/apps/`, which must check without errors.
pub(crate) fn application(name: &str) -> Application {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    application_from_text(name, &text)
}

pub(crate) use stratum_test_support::{application_from_text, free_port};

/// A `nats-server` child process on a free loopback port, stopped when dropped. The external peer of the NATS
/// tests: the Debian package `nats-server`.
pub(crate) struct NatsServer {
    child: std::process::Child,
    pub url: String,
}

impl NatsServer {
    pub(crate) fn start() -> NatsServer {
        let port = free_port();
        let child = std::process::Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start nats-server (install the Debian package nats-server): {error}")
            });
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "nats-server did not listen on {port}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        NatsServer { child, url: format!("nats://127.0.0.1:{port}") }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client. reqwest comes without a TLS crypto provider in this workspace: the program chooses one (ring).
pub(crate) fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
