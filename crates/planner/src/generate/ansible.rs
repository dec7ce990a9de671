//! Ansible for fleets of real machines: an inventory with the machines grouped by tier (from the nodes'
//! addresses) and the control host, a vars file holding the tokens (meant for `ansible-vault encrypt`), and a
//! playbook that installs the `stratum` binary, runs `stratum server` (and the MQTT broker, where the application
//! needs one) on the control host and `stratum agent` on every node as systemd services, then applies the
//! application. The command lines are Stratum's runtime's ([`super::runtime`]), with the hosts as inventory
//! variables.

use super::runtime::{self, AGENT_DIR, APP_DIR, STATE_DIR};
use super::{Backend, Error, GeneratedFile, Input, machine_ports};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use stratum_core::ir::Tier;

pub(super) struct Ansible;

/// A systemd unit running one Stratum command, its secrets from an environment file only root reads.
fn unit(description: &str, command: &[String], environment: Option<&str>) -> String {
    let environment = environment.map(|file| format!("EnvironmentFile={file}\n")).unwrap_or_default();
    format!(
        "[Unit]\nDescription={description}\nAfter=network-online.target\nWants=network-online.target\n\n\
         [Service]\nUser=stratum\n{environment}ExecStart=/usr/local/bin/stratum {}\nRestart=always\nRestartSec=2\n\
         LimitNOFILE=65536\n\n[Install]\nWantedBy=multi-user.target\n",
        command.join(" ")
    )
}

fn task(name: &str, module: &str, arguments: Value) -> Value {
    let mut task = serde_json::Map::new();
    task.insert("name".into(), json!(name));
    task.insert(module.into(), arguments);
    Value::Object(task)
}

fn service(name: &str, contents: String) -> Vec<Value> {
    vec![
        json!({
            "name": format!("Install the {name} unit"),
            "ansible.builtin.copy": { "content": contents, "dest": format!("/etc/systemd/system/{name}.service"), "mode": "0644" },
            "notify": format!("Restart {name}")
        }),
        task(
            &format!("Start {name}"),
            "ansible.builtin.systemd_service",
            json!({ "name": name, "enabled": true, "state": "started", "daemon_reload": true }),
        ),
    ]
}

fn handler(name: &str) -> Value {
    task(
        &format!("Restart {name}"),
        "ansible.builtin.systemd_service",
        json!({ "name": name, "state": "restarted", "daemon_reload": true }),
    )
}

impl Backend for Ansible {
    fn name(&self) -> &'static str {
        "ansible"
    }

    fn description(&self) -> &'static str {
        "an Ansible inventory and playbook: the control plane on the control host, an agent on every node"
    }

    fn generate(&self, input: &Input) -> Result<Vec<GeneratedFile>, Error> {
        let application = input.application;
        // The control plane runs as far from the edge as the declared nodes go: a cloud node, else a fog node.
        let control = [Tier::Cloud, Tier::Fog, Tier::Edge]
            .iter()
            .find_map(|tier| application.nodes.iter().find(|node| node.machine.tier == *tier));
        let control_name = control.map_or_else(|| "control".to_string(), |node| node.name.clone());
        let control_address = control.and_then(|node| node.address.clone()).unwrap_or_else(|| control_name.clone());
        let mut groups = serde_json::Map::new();
        for tier in [Tier::Edge, Tier::Fog, Tier::Cloud] {
            let mut hosts = serde_json::Map::new();
            for node in application.nodes.iter().filter(|node| node.machine.tier == tier) {
                let mut open: BTreeSet<u16> = BTreeSet::from([runtime::DATA_PORT, runtime::AGENT_API_PORT]);
                open.extend(machine_ports(input, &node.name));
                if node.name == control_name {
                    open.insert(runtime::API_PORT);
                    if runtime::needs_broker(application) {
                        open.extend([runtime::BROKER_PORT, runtime::BROKER_PORT + 1]);
                    }
                }
                hosts.insert(
                    node.name.clone(),
                    json!({
                        "ansible_host": node.address.clone().unwrap_or_else(|| node.name.clone()),
                        "stratum_node": node.name,
                        "stratum_tier": tier.name(),
                        "stratum_ports": open.into_iter().collect::<Vec<_>>()
                    }),
                );
            }
            if !hosts.is_empty() {
                groups.insert(tier.name().to_string(), json!({ "hosts": hosts }));
            }
        }
        groups.insert("control".into(), json!({ "hosts": { control_name.clone(): {} } }));
        let inventory = json!({
            "all": {
                "vars": {
                    "stratum_app": application.name,
                    "stratum_control_host": control_address
                },
                "children": groups
            }
        });
        // Inventory variables stand where the command lines name hosts; the binary's tests fill them in and parse.
        let addresses = runtime::Addresses {
            server: "{{stratum_control_host}}",
            advertise: "{{ansible_host}}",
            broker: "{{stratum_control_host}}",
        };
        let agent = runtime::agent_command(application, "{{stratum_node}}", "{{stratum_tier}}", &addresses, true);
        let base_tasks = vec![
            task(
                "Create the stratum user",
                "ansible.builtin.user",
                json!({ "name": "stratum", "system": true, "create_home": false }),
            ),
            task(
                "Create the configuration directory",
                "ansible.builtin.file",
                json!({ "path": "/etc/stratum", "state": "directory", "mode": "0755" }),
            ),
            task(
                "Install the stratum binary",
                "ansible.builtin.copy",
                json!({ "src": "{{ stratum_binary }}", "dest": "/usr/local/bin/stratum", "mode": "0755" }),
            ),
            json!({
                "name": "Open the ports of Stratum and its components",
                "ansible.builtin.iptables": {
                    "chain": "INPUT", "protocol": "tcp", "destination_port": "{{ item }}", "jump": "ACCEPT", "comment": "stratum"
                },
                "loop": "{{ stratum_ports }}",
                "when": "stratum_open_ports | default(true) | bool"
            }),
        ];
        let mut control_tasks = vec![
            task(
                "Create the control plane's state directory",
                "ansible.builtin.file",
                json!({ "path": STATE_DIR, "state": "directory", "owner": "stratum", "mode": "0700" }),
            ),
            task(
                "Create the application's directory",
                "ansible.builtin.file",
                json!({ "path": APP_DIR, "state": "directory", "mode": "0755" }),
            ),
            task(
                "Write the control plane's tokens",
                "ansible.builtin.copy",
                json!({
                    "content": "STRATUM_TOKEN={{ stratum_token }}\nSTRATUM_VIEWER_TOKEN={{ stratum_viewer_token }}\nSTRATUM_JOIN_TOKEN={{ stratum_join_token }}\n",
                    "dest": "/etc/stratum/server.env",
                    "owner": "root",
                    "mode": "0600"
                }),
            ),
        ];
        control_tasks.extend(service(
            "stratum-server",
            unit("Stratum control plane", &runtime::server_command(), Some("/etc/stratum/server.env")),
        ));
        if runtime::needs_broker(application) {
            control_tasks
                .extend(service("stratum-broker", unit("Stratum MQTT broker", &runtime::broker_command(), None)));
        }
        for (path, _) in input.files {
            control_tasks.push(task(
                &format!("Install the application's {path}"),
                "ansible.builtin.copy",
                json!({ "src": format!("{{{{ playbook_dir }}}}/app/{path}"), "dest": format!("{APP_DIR}/{path}"), "mode": "0644" }),
            ));
        }
        let mut agent_tasks = vec![
            task(
                "Create the agent's data directory",
                "ansible.builtin.file",
                json!({ "path": AGENT_DIR, "state": "directory", "owner": "stratum", "mode": "0700" }),
            ),
            task(
                "Write the join token",
                "ansible.builtin.copy",
                json!({ "content": "STRATUM_JOIN_TOKEN={{ stratum_join_token }}\n", "dest": "/etc/stratum/agent.env", "owner": "root", "mode": "0600" }),
            ),
        ];
        agent_tasks.extend(service("stratum-agent", unit("Stratum agent", &agent, Some("/etc/stratum/agent.env"))));
        let apply = json!({
            "name": "Apply the application once the control plane answers",
            "ansible.builtin.command": { "argv": std::iter::once("/usr/local/bin/stratum".to_string()).chain(runtime::apply_command(input.source_file(), "127.0.0.1")).collect::<Vec<_>>() },
            "environment": { "STRATUM_TOKEN": "{{ stratum_token }}" },
            "become_user": "stratum",
            "register": "applied",
            "retries": 30,
            "delay": 2,
            "until": "applied.rc == 0",
            "changed_when": true
        });
        let playbook = json!([
            {
                "name": format!("Install Stratum for {}", application.name),
                "hosts": "all",
                "become": true,
                "vars": { "stratum_binary": "{{ playbook_dir }}/files/stratum" },
                "vars_files": ["secrets.yml"],
                "tasks": base_tasks
            },
            {
                "name": "Run the control plane",
                "hosts": "control",
                "become": true,
                "vars_files": ["secrets.yml"],
                "tasks": control_tasks,
                "handlers": [handler("stratum-server"), handler("stratum-broker")]
            },
            {
                "name": "Run an agent on every node",
                "hosts": "all",
                "become": true,
                "vars_files": ["secrets.yml"],
                "tasks": agent_tasks,
                "handlers": [handler("stratum-agent")]
            },
            {
                "name": format!("Apply {}", application.name),
                "hosts": "control",
                "become": true,
                "vars_files": ["secrets.yml"],
                "tasks": [apply]
            }
        ]);
        let secrets = json!({
            "stratum_token": input.secrets.operator,
            "stratum_viewer_token": input.secrets.viewer,
            "stratum_join_token": input.secrets.join
        });
        let readme = format!(
            "# Ansible for {app}\n\n\
             Put the `stratum` binary for the nodes' architecture at `files/stratum`, protect the tokens with\n\
             `ansible-vault encrypt secrets.yml`, then run\n\n    ansible-playbook -i inventory.yml playbook.yml --ask-vault-pass\n\n\
             The control plane runs on `{control}` (group `control`; set `stratum_control_host` in `inventory.yml` to\n\
             the address agents reach it at), an agent on every node. Pool members are created by their provider:\n\
             run `stratum agent --pool POOL --name HOST` on each (docs/deploy.md).\n\n\
             Everything between the machines runs over TLS, with certificates from the cluster's own authority,\n\
             which the control plane makes on its first start (`{state}/tls/ca.pem` on `{control}`);\n\
             agents and `stratum apply` trust it because the control plane proves it with their token.\n",
            app = application.name,
            control = control_name,
            state = runtime::STATE_DIR,
        );
        let mut files = vec![
            GeneratedFile::new("inventory.yml", super::yaml_documents("the inventory", &[inventory])?),
            GeneratedFile::new("playbook.yml", super::yaml_documents("the playbook", &[playbook])?),
            GeneratedFile::secret("secrets.yml", super::yaml_documents("the secrets", &[secrets])?),
            GeneratedFile::new("README.md", readme),
        ];
        files.extend(input.files.iter().map(|(path, text)| GeneratedFile::new(format!("app/{path}"), text.clone())));
        Ok(files)
    }
}
