//! The generated Ansible playbook, run for real (CI's external stage): three containers stand in for the
//! machines of `test_data/relay.stratum` — each boots systemd and runs sshd — and `ansible-playbook` configures
//! them over SSH as it would real machines: the binary installed, `stratum server` on the control host and
//! `stratum agent` on every node as systemd units, the application applied. The test then finds every agent joined
//! and the edge's readings in the cloud machine's sink.

mod containers;

use containers::{ok, repository, run};
use serde_yaml_ng::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const NETWORK: &str = "stratumtest-ansible";
const MACHINES: &[&str] = &["sensor_1", "gateway", "store_1"];

fn container(machine: &str) -> String {
    format!("stratumtest-ansible-{}", machine.replace('_', "-"))
}

/// The machines' containers, removed with their network when dropped.
struct Machines;

impl Drop for Machines {
    fn drop(&mut self) {
        for machine in MACHINES {
            let _ = run("docker", &["rm", "-f", &container(machine)], None);
        }
        let _ = run("docker", &["network", "rm", NETWORK], None);
    }
}

fn address(machine: &str) -> String {
    ok(
        "docker",
        &[
            "inspect",
            "-f",
            &format!("{{{{(index .NetworkSettings.Networks \"{NETWORK}\").IPAddress}}}}"),
            &container(machine),
        ],
        None,
    )
    .trim()
    .to_string()
}

#[test]
#[ignore = "needs Docker, debootstrap and ansible-playbook; CI's external stage runs it"]
fn the_playbook_configures_machines_that_then_run_the_application() {
    ok("bash", &[&repository().join("crates/cli/tests/containers/host-image.sh").to_string_lossy()], None);
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ansible");
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let key = folder.join("key");
    ok("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-f", &key.to_string_lossy()], None);

    // Leftovers of an earlier run go first; these go when the test ends, whatever happens.
    drop(Machines);
    let _machines = Machines;
    ok("docker", &["network", "create", NETWORK], None);
    for machine in MACHINES {
        ok(
            "docker",
            &[
                "run",
                "-d",
                "--name",
                &container(machine),
                "--hostname",
                &machine.replace('_', "-"),
                "--network",
                NETWORK,
                "-v",
                "/sys/fs/cgroup:/sys/fs/cgroup:ro",
                "--tmpfs",
                "/run",
                "--tmpfs",
                "/run/lock",
                "stratum-test/host:1",
                "/sbin/init",
            ],
            None,
        );
        ok("docker", &["exec", &container(machine), "mkdir", "-p", "-m", "700", "/root/.ssh"], None);
        ok(
            "docker",
            &["cp", &format!("{}.pub", key.display()), &format!("{}:/root/.ssh/authorized_keys", container(machine))],
            None,
        );
        ok("docker", &["exec", &container(machine), "chown", "root:root", "/root/.ssh/authorized_keys"], None);
    }

    // The playbook as `stratum generate ansible` writes it, the binary where its README says, and the inventory's
    // addresses the containers' (the file's nodes declare none).
    let generated = folder.join("generated");
    let file = repository().join("crates/cli/test_data/relay.stratum");
    ok(
        env!("CARGO_BIN_EXE_stratum"),
        &["generate", "ansible", &file.to_string_lossy(), "-o", &generated.to_string_lossy()],
        None,
    );
    std::fs::create_dir_all(generated.join("files")).unwrap();
    ok(
        "objcopy",
        &["--strip-debug", env!("CARGO_BIN_EXE_stratum"), &generated.join("files/stratum").to_string_lossy()],
        None,
    );
    let inventory_path = generated.join("inventory.yml");
    let mut inventory: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&inventory_path).unwrap()).unwrap();
    let control_machine = inventory["all"]["children"]["control"]["hosts"]
        .as_mapping()
        .and_then(|hosts| hosts.keys().next())
        .and_then(Value::as_str)
        .expect("a control host")
        .to_string();
    assert_eq!(control_machine, "store_1", "the control plane runs on the cloud node");
    let started = Instant::now();
    while MACHINES.iter().any(|machine| {
        run("docker", &["exec", &container(machine), "systemctl", "is-active", "ssh"], None).stdout != b"active\n"
    }) {
        assert!(started.elapsed() < Duration::from_secs(60), "sshd did not start in the machines' containers");
        std::thread::sleep(Duration::from_millis(250));
    }
    inventory["all"]["vars"]["stratum_control_host"] = Value::from(address(&control_machine));
    for group in ["edge", "fog", "cloud"] {
        for machine in MACHINES {
            if let Some(host) = inventory["all"]["children"][group]["hosts"].get_mut(*machine) {
                host["ansible_host"] = Value::from(address(machine));
            }
        }
    }
    std::fs::write(&inventory_path, serde_yaml_ng::to_string(&inventory).unwrap()).unwrap();

    let output = std::process::Command::new("ansible-playbook")
        .args([
            "-i",
            "inventory.yml",
            "playbook.yml",
            "-u",
            "root",
            "--private-key",
            &key.to_string_lossy(),
            "-e",
            "stratum_open_ports=false",
        ])
        .env("ANSIBLE_HOST_KEY_CHECKING", "False")
        .env("ANSIBLE_NOCOLOR", "1")
        .current_dir(&generated)
        .output()
        .expect("ansible-playbook runs; .ci/run installs it");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the playbook failed:\n{said}\n{}", String::from_utf8_lossy(&output.stderr));

    // What the playbook started: systemd units on every machine, the control plane on the control host.
    for machine in MACHINES {
        let state = run("docker", &["exec", &container(machine), "systemctl", "is-active", "stratum-agent"], None);
        assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "active", "stratum-agent on {machine}");
    }
    let state =
        run("docker", &["exec", &container(&control_machine), "systemctl", "is-active", "stratum-server"], None);
    assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "active");

    // Every agent joined, and the edge's readings reach the cloud machine's sink.
    let secrets: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(generated.join("secrets.yml")).unwrap()).unwrap();
    let token = secrets["stratum_token"].as_str().unwrap().to_string();
    // Over TLS: the certificate names the control plane (whatever address it is reached at) and comes from the
    // authority it made on its first start, taken from its machine.
    let authority = generated.join("ca.pem");
    let identity = stratum_dataplane::tls::SERVER_IDENTITY;
    let resolve = format!("{identity}:7070:{}", address(&control_machine));
    let api = format!("https://{identity}:7070");
    let started = Instant::now();
    loop {
        let ca = run(
            "docker",
            &[
                "exec",
                &container(&control_machine),
                "cat",
                &format!("{}/tls/ca.pem", stratum_planner::generate::runtime::STATE_DIR),
            ],
            None,
        );
        if ca.status.success() {
            std::fs::write(&authority, &ca.stdout).unwrap();
        }
        let status = run(
            "curl",
            &[
                "-s",
                "-m",
                "5",
                "--cacert",
                &authority.to_string_lossy(),
                "--resolve",
                &resolve,
                "-H",
                &format!("Authorization: Bearer {token}"),
                &format!("{api}/v1/status"),
            ],
            None,
        );
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
        let alive = status["agents"].as_array().into_iter().flatten().filter(|agent| agent["alive"] == true).count();
        let arrived =
            run("docker", &["exec", &container("store_1"), "cat", "/var/lib/stratum/agent/data/readings.jsonl"], None);
        if alive == MACHINES.len()
            && status["app"] == "relay"
            && arrived.stdout.split(|byte| *byte == b'\n').count() > 50
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the application did not run: {status}\n{}",
            String::from_utf8_lossy(
                &run(
                    "docker",
                    &[
                        "exec",
                        &container(&control_machine),
                        "journalctl",
                        "-u",
                        "stratum-server",
                        "-u",
                        "stratum-agent",
                        "--no-pager",
                        "-n",
                        "40"
                    ],
                    None
                )
                .stdout
            )
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
