//! What Stratum's tests share, so that each helper is written once: checking a `.stratum` file into its IR, a
//! loader that reads imports from disk as the `stratum` binary does, snapshot files that `STRATUM_BLESS=1`
//! rewrites, a free port, and a real Mosquitto and PostgreSQL for the tests that need them. A dev-dependency of the
//! other crates; nothing ships it.

#![warn(missing_docs)]

use std::path::Path;
use stratum_core::Cause;
use stratum_core::ir::Application;
use stratum_lang::{Severity, SourceLoader};

/// Reads imports from disk, relative to the importing file, like the `stratum` binary does
/// (`stratum_lang::source::import_path`).
pub struct DiskLoader;

impl SourceLoader for DiskLoader {
    fn load(&self, importer: &str, path: &str) -> Result<(String, Vec<u8>), Cause> {
        let joined = stratum_lang::source::import_path(importer, path);
        let bytes = std::fs::read(&joined)?;
        Ok((joined.to_string_lossy().into_owned(), bytes))
    }
}

pub use stratum_lang::source::normalize;

/// The IR of an application given as text, which must check without errors.
pub fn application_from_text(name: &str, text: &str) -> Application {
    let checked = stratum_lang::check_text(name, text);
    let errors: Vec<&str> = checked
        .diagnostics
        .iter()
        .filter(|diagnostic| diagnostic.severity() == Severity::Error)
        .map(|diagnostic| diagnostic.message.as_str())
        .collect();
    assert!(errors.is_empty(), "{name} has errors: {errors:?}");
    checked.application
}

/// Compares `actual` with the snapshot file, or rewrites the file when `STRATUM_BLESS` is set. Returns why they
/// differ, for the test to collect and report.
pub fn compare_snapshot(snapshot: &Path, actual: &str) -> Option<String> {
    if std::env::var_os("STRATUM_BLESS").is_some() {
        if let Some(folder) = snapshot.parent() {
            std::fs::create_dir_all(folder).unwrap_or_else(|error| panic!("{}: {error}", folder.display()));
        }
        std::fs::write(snapshot, actual).unwrap_or_else(|error| panic!("{}: {error}", snapshot.display()));
        return None;
    }
    let expected = std::fs::read_to_string(snapshot).unwrap_or_default();
    if expected == actual {
        return None;
    }
    Some(format!(
        "snapshot {} differs (run with STRATUM_BLESS=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
        snapshot.display()
    ))
}

/// A free TCP port on loopback (free when asked; tests bind it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("loopback has a free port")
}

/// A Mosquitto broker of its own on a free loopback port, stopped when dropped (so that a failed test leaves
/// none behind). Needs the Debian package `mosquitto`.
pub struct Mosquitto {
    child: std::process::Child,
    /// The port it listens on, at 127.0.0.1.
    pub port: u16,
}

impl Mosquitto {
    /// Starts it with its configuration in `folder`: anonymous, nothing persisted, and `settings` (more lines of
    /// `mosquitto.conf`); waits until it accepts connections.
    pub fn start(folder: &Path, settings: &str) -> Mosquitto {
        let port = free_port();
        let config = folder.join("mosquitto.conf");
        let text = format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{settings}\n");
        std::fs::write(&config, text).unwrap_or_else(|error| panic!("{}: {error}", config.display()));
        let child = std::process::Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto runs (Debian package `mosquitto`)");
        let mosquitto = Mosquitto { child, port };
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "mosquitto did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        mosquitto
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A PostgreSQL server of its own (Debian's `postgresql`) on a free loopback port, its data in `folder`, stopped
/// when dropped; it trusts every local connection and does not sync (the tests test Stratum's fencing and
/// failover, not PostgreSQL's durability). Run as root, it runs as the `postgres` user, since PostgreSQL refuses
/// root.
pub struct Postgres {
    child: std::process::Child,
    /// Its address for the state store: `postgres://stratum@127.0.0.1:PORT/postgres`.
    pub url: String,
}

impl Postgres {
    /// Makes a database cluster in `folder` (made empty first) and starts its server; waits until it accepts
    /// connections.
    pub fn start(folder: &Path) -> Postgres {
        Postgres::start_with(folder, &[], &[])
    }

    /// As [`Postgres::start`], with `files` (name, content) written into `folder` first, readable by the server's
    /// user alone (a certificate and its key), and `settings` (`-c NAME=VALUE`) on its command line.
    pub fn start_with(folder: &Path, files: &[(&str, &str)], settings: &[&str]) -> Postgres {
        let binaries = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| versions.flatten().map(|version| version.path().join("bin")).max())
            .expect("PostgreSQL is installed (Debian package `postgresql`)");
        let _ = std::fs::remove_dir_all(folder);
        std::fs::create_dir_all(folder).expect("a folder for PostgreSQL");
        for (name, content) in files {
            use std::os::unix::fs::PermissionsExt;
            let path = folder.join(name);
            std::fs::write(&path, content).expect("a file for PostgreSQL");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("its mode");
        }
        let root = std::process::Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout == b"0\n");
        let as_owner = |program: &str| {
            let mut command = if root {
                let mut command = std::process::Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(binaries.join(program));
                command
            } else {
                std::process::Command::new(binaries.join(program))
            };
            command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
            command
        };
        if root {
            let owned = std::process::Command::new("chown").args(["-R", "postgres"]).arg(folder).status();
            assert!(owned.is_ok_and(|status| status.success()), "chown {} to postgres", folder.display());
        }
        let data = folder.join("data");
        let made = as_owner("initdb")
            .args(["-A", "trust", "-U", "stratum", "--no-sync", "-E", "UTF8", "-D"])
            .arg(&data)
            .status()
            .expect("initdb runs");
        assert!(made.success(), "initdb -D {}", data.display());
        let port = free_port();
        let log = std::fs::File::create(folder.join("postgres.log")).expect("a log for PostgreSQL");
        let child = as_owner("postgres")
            .stderr(log)
            .args(["-p", &port.to_string(), "-k"])
            .arg(folder)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(settings.iter().flat_map(|setting| ["-c", setting]))
            .arg("-D")
            .arg(&data)
            .spawn()
            .expect("postgres runs");
        let server = Postgres { child, url: format!("postgres://stratum@127.0.0.1:{port}/postgres") };
        let started = std::time::Instant::now();
        // The port answers a little before the server takes connections; a startup packet's answer is enough.
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < std::time::Duration::from_secs(30), "postgres did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        server
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A certificate authority made for the run and a certificate it signed for `name`: (the authority's certificate,
/// the certificate, its private key), each PEM.
pub fn authority_and_certificate(name: &str) -> (String, String, String) {
    let mut parameters = rcgen::CertificateParams::default();
    parameters.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    parameters.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let authority_key = rcgen::KeyPair::generate().expect("a key");
    let authority = parameters.self_signed(&authority_key).expect("an authority");
    let issuer = rcgen::Issuer::new(parameters, authority_key);
    let key = rcgen::KeyPair::generate().expect("a key");
    let certificate = rcgen::CertificateParams::new(vec![name.to_string()])
        .and_then(|parameters| parameters.signed_by(&key, &issuer))
        .expect("a certificate");
    (authority.pem(), certificate.pem(), key.serialize_pem())
}

/// A tmpfs mounted for a test that needs a full disk, unmounted when dropped. Needs root: the tests that use it
/// are ignored but in CI's external stage.
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it: `4m`) at `folder`, made empty first.
    pub fn mount(folder: &Path, size: &str) -> Tmpfs {
        let _ = std::process::Command::new("umount").arg("-l").arg(folder).status();
        let _ = std::fs::remove_dir_all(folder);
        std::fs::create_dir_all(folder).expect("a folder to mount on");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(folder)
            .status()
            .expect("mount runs");
        assert!(mounted.success(), "mount -t tmpfs (run as root)");
        Tmpfs(folder.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_that_differs_says_how() {
        let folder = std::env::temp_dir().join(format!("stratum-test-support-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        let snapshot = folder.join("one.txt");
        std::fs::write(&snapshot, "old\n").unwrap();
        assert_eq!(compare_snapshot(&snapshot, "old\n"), None);
        let differs = compare_snapshot(&snapshot, "new\n").unwrap();
        assert!(differs.contains("--- expected\nold\n\n--- actual\nnew\n"), "{differs}");
        std::fs::remove_dir_all(&folder).unwrap();
    }
}
