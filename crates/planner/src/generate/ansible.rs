//! Ansible for bare-metal fleets: an inventory with the machines grouped by tier (from the nodes' addresses) and a
//! playbook that installs the `stratum` binary and the plan, a systemd unit for `stratum agent` with the node's
//! name and the control plane to join, and opens the ports the node's components listen on.

use super::{AGENT_PORT, Backend, Error, GeneratedFile, Input, ports};
use serde_json::json;
use std::collections::BTreeSet;
use stratum_core::ir::Tier;

pub struct Ansible;

const UNIT: &str = "[Unit]
Description=Stratum agent for {{ stratum_app }}
After=network-online.target
Wants=network-online.target

[Service]
User=stratum
ExecStart=/usr/local/bin/stratum agent --name {{ stratum_node }} --join {{ stratum_control_plane }} --plan /etc/stratum/plan.json
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
";

impl Backend for Ansible {
    fn name(&self) -> &'static str {
        "ansible"
    }

    fn description(&self) -> &'static str {
        "an Ansible inventory and playbook that install the Stratum agent on every node"
    }

    fn generate(&self, input: &Input) -> Result<Vec<GeneratedFile>, Error> {
        let application = input.application;
        // The control plane runs as far from the edge as the declared nodes go: a cloud node, else a fog node.
        let control_plane = [Tier::Cloud, Tier::Fog, Tier::Edge]
            .iter()
            .find_map(|tier| application.nodes.iter().find(|node| node.machine.tier == *tier))
            .map(|node| node.address.clone().unwrap_or_else(|| node.name.clone()))
            .unwrap_or_else(|| "localhost".to_string());
        let mut groups = serde_json::Map::new();
        for tier in [Tier::Edge, Tier::Fog, Tier::Cloud] {
            let mut hosts = serde_json::Map::new();
            for node in application.nodes.iter().filter(|node| node.machine.tier == tier) {
                let mut open: BTreeSet<u16> = BTreeSet::from([AGENT_PORT]);
                for assignment in input.plan.assignments.iter().filter(|assignment| assignment.host == node.name) {
                    open.extend(ports(application, &assignment.component));
                }
                hosts.insert(
                    node.name.clone(),
                    json!({
                        "ansible_host": node.address.clone().unwrap_or_else(|| node.name.clone()),
                        "stratum_node": node.name,
                        "stratum_ports": open.into_iter().collect::<Vec<_>>()
                    }),
                );
            }
            if !hosts.is_empty() {
                groups.insert(tier.name().to_string(), json!({ "hosts": hosts }));
            }
        }
        let inventory = json!({
            "all": {
                "vars": {
                    "stratum_app": application.name,
                    "stratum_control_plane": format!("{control_plane}:{AGENT_PORT}")
                },
                "children": groups
            }
        });
        let playbook = json!([{
            "name": format!("Install the Stratum agent for {}", application.name),
            "hosts": "all",
            "become": true,
            "vars": { "stratum_binary": "{{ playbook_dir }}/files/stratum" },
            "tasks": [
                { "name": "Create the stratum user", "ansible.builtin.user": { "name": "stratum", "system": true, "create_home": false } },
                { "name": "Create the configuration directory", "ansible.builtin.file": { "path": "/etc/stratum", "state": "directory", "mode": "0755" } },
                {
                    "name": "Install the stratum binary",
                    "ansible.builtin.copy": { "src": "{{ stratum_binary }}", "dest": "/usr/local/bin/stratum", "mode": "0755" },
                    "notify": "Restart the agent"
                },
                {
                    "name": "Install the plan",
                    "ansible.builtin.copy": { "src": "{{ playbook_dir }}/files/plan.json", "dest": "/etc/stratum/plan.json", "mode": "0644" },
                    "notify": "Restart the agent"
                },
                {
                    "name": "Install the agent's systemd unit",
                    "ansible.builtin.copy": { "content": UNIT, "dest": "/etc/systemd/system/stratum-agent.service", "mode": "0644" },
                    "notify": "Restart the agent"
                },
                {
                    "name": "Open the ports of the agent and its components",
                    "ansible.builtin.iptables": {
                        "chain": "INPUT",
                        "protocol": "tcp",
                        "destination_port": "{{ item }}",
                        "jump": "ACCEPT",
                        "comment": "stratum"
                    },
                    "loop": "{{ stratum_ports }}"
                },
                {
                    "name": "Start the agent",
                    "ansible.builtin.systemd_service": { "name": "stratum-agent", "enabled": true, "state": "started", "daemon_reload": true }
                }
            ],
            "handlers": [{
                "name": "Restart the agent",
                "ansible.builtin.systemd_service": { "name": "stratum-agent", "state": "restarted", "daemon_reload": true }
            }]
        }]);
        let readme = format!(
            "# Ansible for {app}\n\nPut the `stratum` binary for the nodes' architecture at `files/stratum`, then run\n\n    ansible-playbook -i inventory.yml playbook.yml\n\nPool members are created by their provider and join the control plane themselves; only the declared nodes are\nin the inventory. Set `stratum_control_plane` in `inventory.yml` if the control plane runs elsewhere.\n",
            app = application.name
        );
        Ok(vec![
            GeneratedFile {
                path: "ansible/inventory.yml".into(),
                contents: super::yaml_documents("the inventory", &[inventory])?,
            },
            GeneratedFile {
                path: "ansible/playbook.yml".into(),
                contents: super::yaml_documents("the playbook", &[playbook])?,
            },
            GeneratedFile {
                path: "ansible/files/plan.json".into(),
                contents: serde_json::to_string_pretty(input.plan)? + "\n",
            },
            GeneratedFile { path: "ansible/README.md".into(), contents: readme },
        ])
    }
}
