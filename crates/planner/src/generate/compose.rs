//! A compose file that runs the whole application on one host: a service per component with the plan's
//! resources, an MQTT broker when the application uses MQTT, and the Stratum control plane.

use super::{AGENT_PORT, Backend, Error, GeneratedFile, Input, by_component, object_name, ports, stratum_image};
use serde_json::{Value, json};
use stratum_core::ir::{SinkKind, SourceKind, ToolRun};

pub struct Compose;

impl Backend for Compose {
    fn name(&self) -> &'static str {
        "compose"
    }

    fn description(&self) -> &'static str {
        "a compose file that runs the whole application on one host"
    }

    fn generate(&self, input: &Input) -> Result<Vec<GeneratedFile>, Error> {
        let application = input.application;
        let uses_mqtt = application.sources.iter().any(|source| matches!(source.kind, SourceKind::Mqtt { .. }))
            || application.sinks.iter().any(|sink| matches!(sink.kind, SinkKind::Mqtt { .. }))
            || application.services.iter().any(|service| matches!(service.output, Some(SinkKind::Mqtt { .. })));
        let plan_mount =
            json!({ "type": "bind", "source": "./plan.json", "target": "/etc/stratum/plan.json", "read_only": true });
        let mut services = serde_json::Map::new();
        let mut volumes = serde_json::Map::new();
        services.insert(
            "control-plane".into(),
            json!({
                "image": stratum_image(),
                "command": ["server", "--plan", "/etc/stratum/plan.json"],
                "ports": [format!("{AGENT_PORT}:{AGENT_PORT}")],
                "volumes": [plan_mount.clone()],
                "restart": "unless-stopped"
            }),
        );
        if uses_mqtt {
            services.insert(
                "broker".into(),
                json!({
                    "image": "eclipse-mosquitto:2",
                    "command": ["mosquitto", "-c", "/mosquitto-no-auth.conf"],
                    "ports": ["1883:1883"],
                    "restart": "unless-stopped"
                }),
            );
        }
        for (component, assignments) in by_component(input.plan) {
            let name = object_name(component);
            let first = assignments[0];
            let mut service = serde_json::Map::new();
            match application.tools.iter().find(|tool| tool.name == component).map(|tool| &tool.run) {
                Some(ToolRun::Image(image)) => {
                    service.insert("image".into(), json!(image));
                }
                Some(ToolRun::Command(command)) => {
                    service.insert("image".into(), json!("debian:12-slim"));
                    service.insert("command".into(), json!(command));
                }
                None => {
                    service.insert("image".into(), json!(stratum_image()));
                    service.insert(
                        "command".into(),
                        json!(["run", "--plan", "/etc/stratum/plan.json", "--component", component]),
                    );
                }
            }
            if let Some(tool) = application.tools.iter().find(|tool| tool.name == component)
                && !tool.env.is_empty()
            {
                service.insert("environment".into(), json!(tool.env));
            }
            let mut labels = serde_json::Map::new();
            labels.insert("stratum.io/component".into(), json!(component));
            labels.insert("stratum.io/kind".into(), json!(first.kind.name()));
            labels.insert("stratum.io/tier".into(), json!(first.tier.name()));
            labels.insert("stratum.io/planned-host".into(), json!(first.host));
            service.insert("labels".into(), Value::Object(labels));
            let mut mounts = vec![plan_mount.clone()];
            let keeps_files = application.sinks.iter().any(|sink| {
                sink.name == component && matches!(sink.kind, SinkKind::File { .. } | SinkKind::Dataset { .. })
            });
            if keeps_files {
                let volume = format!("{name}-data");
                mounts.push(json!({ "type": "volume", "source": volume, "target": "/var/lib/stratum" }));
                volumes.insert(volume, json!({}));
            }
            service.insert("volumes".into(), json!(mounts));
            let listening = ports(application, component);
            if !listening.is_empty() {
                // Services answer inside the compose network; tools and HTTP sources are published on the host.
                let published = application.tools.iter().any(|tool| tool.name == component)
                    || application.sources.iter().any(|source| source.name == component);
                let entries: Vec<String> = listening
                    .iter()
                    .map(|port| if published { format!("{port}:{port}") } else { port.to_string() })
                    .collect();
                service.insert(if published { "ports" } else { "expose" }.into(), json!(entries));
            }
            let resources = json!({
                "cpus": format!("{}", first.requests.cpu),
                "memory": format!("{}M", first.requests.memory.0.div_ceil(1 << 20))
            });
            let mut reservations = resources.clone();
            if !first.requests.accelerators.is_empty() {
                let devices: Vec<Value> = first
                    .requests
                    .accelerators
                    .iter()
                    .map(|accelerator| json!({ "capabilities": ["gpu"], "count": accelerator.count }))
                    .collect();
                reservations["devices"] = json!(devices);
            }
            service.insert(
                "deploy".into(),
                json!({ "replicas": assignments.len(), "resources": { "limits": resources, "reservations": reservations } }),
            );
            let mut depends_on = vec!["control-plane"];
            if uses_mqtt {
                depends_on.push("broker");
            }
            service.insert("depends_on".into(), json!(depends_on));
            service.insert(
                "restart".into(),
                json!(if first.kind.name() == "batch" || first.kind.name() == "training" {
                    "no"
                } else {
                    "unless-stopped"
                }),
            );
            services.insert(name, Value::Object(service));
        }
        let mut document = json!({ "name": object_name(&application.name), "services": services });
        if !volumes.is_empty() {
            document["volumes"] = Value::Object(volumes);
        }
        Ok(vec![
            GeneratedFile {
                path: "compose/compose.yaml".into(),
                contents: super::yaml_documents("the compose file", &[document])?,
            },
            GeneratedFile {
                path: "compose/plan.json".into(),
                contents: serde_json::to_string_pretty(input.plan)? + "\n",
            },
        ])
    }
}
