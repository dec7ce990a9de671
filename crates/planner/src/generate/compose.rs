//! A compose project that runs the application across containers on one host as it would run across machines:
//! the control plane, one agent container per machine of the plan (each with its own address, on the networks of
//! the tiers its links reach, with the machine's memory), the MQTT broker where the application needs one, the
//! application applied by a one-shot container once the control plane answers, and tools that run an image as
//! containers of their own. Tokens live in `secrets/*.env`, never in `compose.yaml`.

use super::runtime::{self, AGENT_DIR, APP_DIR, BROKER, CONTROL_PLANE, STATE_DIR};
use super::{Backend, Error, GeneratedFile, Input, machine_ports, object_name};
use serde_json::{Value, json};
use stratum_core::ir::{Tier, ToolRun};

pub(super) struct Compose;

/// The image of every Stratum container; `STRATUM_IMAGE` in the environment (or `.env`) overrides it.
fn image() -> String {
    format!("${{STRATUM_IMAGE:-{}}}", runtime::stratum_image())
}

fn network(tier: Tier) -> String {
    tier.name().to_string()
}

impl Backend for Compose {
    fn name(&self) -> &'static str {
        "compose"
    }

    fn description(&self) -> &'static str {
        "a compose project: the control plane and one agent container per machine, on a network per tier"
    }

    fn generate(&self, input: &Input) -> Result<Vec<GeneratedFile>, Error> {
        let application = input.application;
        let all_networks: Vec<String> = runtime::tiers(application).into_iter().map(network).collect();
        let top_networks: Vec<String> =
            runtime::tiers(application).last().map(|tier| vec![network(*tier)]).unwrap_or_default();
        let health = |url: Option<String>| {
            let mut check = json!({
                "test": ["CMD", "stratum", "health"],
                "interval": "2s",
                "timeout": "5s",
                "retries": 30,
                "start_period": "5s"
            });
            if let Some(url) = url {
                check["test"] = json!(["CMD", "stratum", "health", url]);
            }
            check
        };
        let mut services = serde_json::Map::new();
        let mut volumes = serde_json::Map::new();
        services.insert(
            CONTROL_PLANE.into(),
            json!({
                "image": image(),
                "command": runtime::server_command(),
                "env_file": ["secrets/server.env"],
                // The dashboard and the API, for the operator on this host only (STRATUM_API_PORT moves it).
                "ports": [format!("127.0.0.1:${{STRATUM_API_PORT:-{port}}}:{port}", port = runtime::API_PORT)],
                "volumes": [format!("server-state:{STATE_DIR}")],
                "networks": all_networks,
                "healthcheck": health(None),
                "restart": "unless-stopped"
            }),
        );
        volumes.insert("server-state".into(), json!({}));
        if runtime::needs_broker(application) {
            services.insert(
                BROKER.into(),
                json!({
                    "image": image(),
                    "command": runtime::broker_command(),
                    "networks": all_networks,
                    "healthcheck": health(Some(runtime::broker_health_url())),
                    "restart": "unless-stopped"
                }),
            );
        }
        services.insert(
            "apply".into(),
            json!({
                "image": image(),
                "command": runtime::apply_command(input.source_file(), CONTROL_PLANE),
                "env_file": ["secrets/operator.env"],
                "volumes": [format!("./app:{APP_DIR}:ro"), format!("server-state:{STATE_DIR}")],
                "networks": top_networks,
                // Runs once (compose's default restart policy is never).
                "depends_on": { CONTROL_PLANE: { "condition": "service_healthy" } }
            }),
        );
        for machine in runtime::machines(application) {
            let name = object_name(&machine.name);
            let tier = machine.machine.tier;
            let mut service = serde_json::Map::new();
            service.insert("image".into(), json!(image()));
            service.insert("hostname".into(), json!(name));
            service.insert(
                "command".into(),
                json!(runtime::agent_command(
                    application,
                    &machine.name,
                    tier.name(),
                    &runtime::Addresses { server: CONTROL_PLANE, advertise: &name, broker: BROKER },
                    false
                )),
            );
            service.insert("env_file".into(), json!(["secrets/join.env"]));
            service.insert(
                "environment".into(),
                json!({
                    // Generators stand in for cameras and sensors until the real sources exist: set
                    // STRATUM_SIMULATE=false (in `.env`) once they do.
                    "STRATUM_SIMULATE": "${STRATUM_SIMULATE:-true}",
                    "STRATUM_HEALTH_URL": runtime::agent_health_url()
                }),
            );
            let volume = format!("{name}-data");
            service.insert("volumes".into(), json!([format!("{volume}:{AGENT_DIR}")]));
            volumes.insert(volume, json!({}));
            let networks: Vec<String> = runtime::networks_of(application, tier).into_iter().map(network).collect();
            service.insert("networks".into(), json!(networks));
            let ports = machine_ports(input, &machine.name);
            if !ports.is_empty() {
                let published: Vec<String> = ports.iter().map(|port| format!("{port}:{port}")).collect();
                service.insert("ports".into(), json!(published));
            }
            // The machine's memory as the container's limit; its cores weigh its share of the host's CPU (a limit
            // of more cores than the host has would refuse to start on a laptop).
            service.insert("mem_limit".into(), json!(format!("{}m", machine.machine.memory.0.div_ceil(1 << 20))));
            service.insert("cpu_shares".into(), json!(((machine.machine.cpu * 1024.0).round() as u64).max(2)));
            let mut labels = serde_json::Map::new();
            labels.insert("io.stratum.machine".into(), json!(machine.name));
            labels.insert("io.stratum.tier".into(), json!(tier.name()));
            if let Some((pool, _)) = machine.pool {
                labels.insert("io.stratum.pool".into(), json!(pool));
            }
            service.insert("labels".into(), Value::Object(labels));
            service.insert("healthcheck".into(), health(None));
            if let Some((pool, false)) = machine.pool {
                // Members beyond the pool's minimum start with `--profile POOL` (or by name).
                service.insert("profiles".into(), json!([object_name(pool)]));
            }
            service.insert("depends_on".into(), json!([CONTROL_PLANE]));
            service.insert("restart".into(), json!("unless-stopped"));
            services.insert(name, Value::Object(service));
        }
        for tool in &application.tools {
            let ToolRun::Image(tool_image) = &tool.run else { continue };
            let host = input.plan.assignments.iter().find(|assignment| assignment.component == tool.name);
            let tier = host.map_or(Tier::Cloud, |assignment| assignment.tier);
            let mut service = serde_json::Map::new();
            service.insert("image".into(), json!(tool_image));
            if !tool.env.is_empty() {
                service.insert("environment".into(), json!(tool.env));
            }
            if !tool.ports.is_empty() {
                let published: Vec<String> = tool.ports.iter().map(|port| format!("{port}:{port}")).collect();
                service.insert("ports".into(), json!(published));
            }
            service.insert("networks".into(), json!([network(tier)]));
            if let Some(memory) = tool.resources.memory {
                service.insert("mem_limit".into(), json!(format!("{}m", memory.0.div_ceil(1 << 20))));
            }
            service.insert("labels".into(), json!({ "io.stratum.tool": tool.name }));
            service.insert("restart".into(), json!("unless-stopped"));
            services.insert(format!("tool-{}", object_name(&tool.name)), Value::Object(service));
        }
        let networks: serde_json::Map<String, Value> =
            all_networks.iter().map(|name| (name.clone(), json!({}))).collect();
        // No top-level `name`: compose v1 (docker-compose 1.x) refuses it; the project is named after the folder
        // or `-p`.
        let document = json!({
            "services": services,
            "volumes": volumes,
            "networks": networks
        });
        let mut files =
            vec![GeneratedFile::new("compose.yaml", super::yaml_documents("the compose file", &[document])?)];
        files.extend(input.files.iter().map(|(path, text)| GeneratedFile::new(format!("app/{path}"), text.clone())));
        let secrets = input.secrets;
        files.push(GeneratedFile::secret(
            "secrets/server.env",
            format!(
                "STRATUM_TOKEN={}\nSTRATUM_VIEWER_TOKEN={}\nSTRATUM_JOIN_TOKEN={}\n",
                secrets.operator, secrets.viewer, secrets.join
            ),
        ));
        files.push(GeneratedFile::secret("secrets/operator.env", format!("STRATUM_TOKEN={}\n", secrets.operator)));
        files.push(GeneratedFile::secret("secrets/join.env", format!("STRATUM_JOIN_TOKEN={}\n", secrets.join)));
        files.push(GeneratedFile::new("README.md", readme(input)));
        Ok(files)
    }
}

fn readme(input: &Input) -> String {
    let application = input.application;
    let pools: Vec<String> = application
        .pools
        .iter()
        .filter(|pool| pool.max > pool.min)
        .map(|pool| format!("`--profile {}`", object_name(&pool.name)))
        .collect();
    format!(
        "# {app} with compose\n\n\
         Build Stratum's image once (`docker build -t {image} -f Containerfile .` in Stratum's repository), then\n\n\
         \x20   docker compose up -d      # or docker-compose up -d\n\n\
         The control plane starts, one agent per machine joins it, and the `apply` container sends\n\
         `app/{file}` once the control plane answers (making the models its services serve ready first). The\n\
         dashboard is at https://127.0.0.1:{port}/ — sign in with `STRATUM_TOKEN` from `secrets/server.env`.\n\n\
         Everything between the machines runs over TLS, with certificates from the cluster's own authority, which\n\
         the control plane makes on its first start (in its volume). Agents and `apply` trust it because the\n\
         control plane proves it with their token. For a browser or `curl`, take its certificate once:\n\n\
         \x20   docker compose exec {control} cat {state}/tls/ca.pem > ca.pem\n\
         \x20   curl --cacert ca.pem -H \"Authorization: Bearer $STRATUM_TOKEN\" https://127.0.0.1:{port}/v1/status\n\n\
         - `secrets/*.env` hold the cluster's tokens; they are made once and kept when you generate again.\n\
         - Generators stand in for the application's sources until `STRATUM_SIMULATE=false` (in `.env`).\n\
         - Each machine is a container with its own address, on the network of its tier and of the tiers its\n\
         \x20 links reach; memory is limited as the machine declares it.\n\
         - A new version of the application: edit `app/{file}`, then `docker compose run --rm apply`.\n{pools}",
        app = application.name,
        image = runtime::stratum_image(),
        file = input.source_file(),
        port = runtime::API_PORT,
        control = runtime::CONTROL_PLANE,
        state = runtime::STATE_DIR,
        pools = if pools.is_empty() {
            String::new()
        } else {
            format!("- Pool members beyond each pool's `min` start with {}.\n", pools.join(", "))
        }
    )
}
