//! Kubernetes manifests that run Stratum's own runtime: the control plane as a Deployment (one replica,
//! Recreate) with a PersistentVolumeClaim and a Service — or, given a PostgreSQL state store, two replicas of which
//! one leads; one agent per node of the plan, a DaemonSet pinned by
//! the node label `stratum.io/node` (edge agents tolerate and select KubeEdge's edge nodes); each pool's members as
//! a StatefulSet on the nodes labelled `stratum.io/pool`, its replicas between the pool's `min` and `max`; the
//! MQTT broker where the application needs one; a Job that applies the application; tools that run an image as
//! Deployments. The tokens are a Secret in a file of their own (`secret.yaml`), never in the manifests.

use super::runtime::{self, AGENT_DIR, APP_DIR, BROKER, CONTROL_PLANE, STATE_DIR};
use super::{Backend, Error, GeneratedFile, Input, machine_ports, object_name};
use serde_json::{Value, json};
use stratum_core::ir::{Tier, ToolRun};

pub(super) struct Kubernetes;

/// The label KubeEdge puts on edge nodes, and the taint it sets on them.
const EDGE_ROLE: &str = "node-role.kubernetes.io/edge";
/// The node label that names the plan's node a Kubernetes node is (its DNS form: `cam-5th-main`).
pub(super) const NODE_LABEL: &str = "stratum.io/node";
/// The node label that puts a Kubernetes node in one of the plan's pools.
pub(super) const POOL_LABEL: &str = "stratum.io/pool";
/// The Secret holding the tokens.
const SECRET: &str = "stratum-tokens";

impl Backend for Kubernetes {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn description(&self) -> &'static str {
        "Kubernetes manifests: the control plane, one agent per node of the plan (edge nodes as KubeEdge labels them)"
    }

    fn generate(&self, input: &Input) -> Result<Vec<GeneratedFile>, Error> {
        let application = input.application;
        let app = object_name(&application.name);
        let namespace = format!("stratum-{app}");
        let context = Context { app: &app, namespace: &namespace };
        let mut documents = vec![
            json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": { "name": namespace, "labels": { "app.kubernetes.io/part-of": app } }
            }),
            app_files(input, &context),
        ];
        documents.extend(control_plane(input, &context));
        if runtime::needs_broker(application) {
            documents.extend(broker(&context));
        }
        for machine in runtime::machines(application).iter().filter(|machine| machine.pool.is_none()) {
            documents.push(node_agent(input, &context, &machine.name, machine.machine.tier));
        }
        for pool in &application.pools {
            documents.push(pool_agents(input, &context, pool));
        }
        documents.push(apply_job(input, &context));
        for tool in &application.tools {
            if let ToolRun::Image(image) = &tool.run {
                documents.extend(tool_objects(input, &context, tool, image));
            }
        }
        let mut data = json!({
            "STRATUM_TOKEN": input.secrets.operator,
            "STRATUM_VIEWER_TOKEN": input.secrets.viewer,
            "STRATUM_JOIN_TOKEN": input.secrets.join
        });
        if let Some(store) = &input.secrets.store {
            data["STRATUM_STORE"] = json!(store);
        }
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": context.metadata(SECRET, "tokens"),
            "type": "Opaque",
            "stringData": data
        });
        Ok(vec![
            GeneratedFile::new(format!("{app}.yaml"), super::yaml_documents("the Kubernetes manifests", &documents)?),
            GeneratedFile::secret("secret.yaml", super::yaml_documents("the Kubernetes Secret", &[secret])?),
        ])
    }
}

struct Context<'a> {
    app: &'a str,
    namespace: &'a str,
}

impl Context<'_> {
    fn labels(&self, name: &str, role: &str) -> Value {
        json!({
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/part-of": self.app,
            "app.kubernetes.io/component": role,
            "app.kubernetes.io/managed-by": "stratum"
        })
    }

    fn metadata(&self, name: &str, role: &str) -> Value {
        json!({ "name": name, "namespace": self.namespace, "labels": self.labels(name, role) })
    }

    fn selector(&self, name: &str) -> Value {
        json!({ "matchLabels": { "app.kubernetes.io/name": name } })
    }
}

/// The application's files as a ConfigMap; keys cannot hold `/`, so each file's key is its path with `/` as
/// `__`, and the volume puts it back at its path.
fn app_files(input: &Input, context: &Context) -> Value {
    let data: serde_json::Map<String, Value> =
        input.files.iter().map(|(path, text)| (config_key(path), json!(text))).collect();
    json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": context.metadata("app", "application"), "data": data })
}

fn config_key(path: &str) -> String {
    path.replace('/', "__")
}

fn app_volume(input: &Input) -> Value {
    let items: Vec<Value> =
        input.files.iter().map(|(path, _)| json!({ "key": config_key(path), "path": path })).collect();
    json!({ "name": "app", "configMap": { "name": "app", "items": items } })
}

fn image_container(name: &str, args: Vec<String>) -> serde_json::Map<String, Value> {
    let mut container = serde_json::Map::new();
    container.insert("name".into(), json!(name));
    container.insert("image".into(), json!(runtime::stratum_image()));
    container.insert("args".into(), json!(args));
    container
}

fn secret_env(keys: &[&str]) -> Vec<Value> {
    keys.iter()
        .map(|key| json!({ "name": key, "valueFrom": { "secretKeyRef": { "name": SECRET, "key": key } } }))
        .collect()
}

fn health_probe(url: Option<String>) -> Value {
    let mut command = vec!["stratum".to_string(), "health".to_string()];
    command.extend(url);
    json!({ "exec": { "command": command }, "periodSeconds": 5, "failureThreshold": 3 })
}

/// How many replicas of the control plane run on a shared state store: one leads, the other takes over.
const CONTROL_PLANE_REPLICAS: u32 = 2;

/// The control plane: one replica on a volume of its own, or, on a shared PostgreSQL store, two that one leads.
/// Only the leader listens, so only it is ready and the Service routes to it alone; the standby's state directory
/// is scratch (it takes the shared files from the store when it leads), and the two prefer different nodes. Both
/// are replaced together on an update (`Recreate`): a rolling update would wait forever for the new standby to be
/// ready.
fn control_plane(input: &Input, context: &Context) -> Vec<Value> {
    let shared = input.secrets.store.is_some();
    let mut container = image_container("server", runtime::server_command());
    let mut env = vec!["STRATUM_TOKEN", "STRATUM_VIEWER_TOKEN", "STRATUM_JOIN_TOKEN"];
    if shared {
        env.push("STRATUM_STORE");
    }
    container.insert("env".into(), json!(secret_env(&env)));
    container.insert("ports".into(), json!([{ "name": "api", "containerPort": runtime::API_PORT }]));
    container.insert("readinessProbe".into(), health_probe(None));
    container.insert("volumeMounts".into(), json!([{ "name": "state", "mountPath": STATE_DIR }]));
    let mut pod = json!({ "securityContext": { "fsGroup": USER_ID }, "containers": [container] });
    let mut documents = Vec::new();
    if shared {
        pod["volumes"] = json!([{ "name": "state", "emptyDir": {} }]);
        pod["affinity"] = json!({
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [{
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": { "matchLabels": { "app.kubernetes.io/name": CONTROL_PLANE } },
                        "topologyKey": "kubernetes.io/hostname"
                    }
                }]
            }
        });
    } else {
        pod["volumes"] = json!([{ "name": "state", "persistentVolumeClaim": { "claimName": "control-plane-state" } }]);
        documents.push(json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": context.metadata("control-plane-state", "control-plane"),
            "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "10Gi" } } }
        }));
    }
    documents.extend([
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": context.metadata(CONTROL_PLANE, "control-plane"),
            "spec": {
                "replicas": if shared { CONTROL_PLANE_REPLICAS } else { 1 },
                // Two control planes on one volume must never run at once; on a shared store see above.
                "strategy": { "type": "Recreate" },
                "selector": context.selector(CONTROL_PLANE),
                "template": {
                    "metadata": { "labels": context.labels(CONTROL_PLANE, "control-plane") },
                    "spec": pod
                }
            }
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": context.metadata(CONTROL_PLANE, "control-plane"),
            "spec": {
                "selector": { "app.kubernetes.io/name": CONTROL_PLANE },
                "ports": [{ "name": "api", "port": runtime::API_PORT, "targetPort": runtime::API_PORT, "protocol": "TCP" }]
            }
        }),
    ]);
    documents
}

fn broker(context: &Context) -> Vec<Value> {
    let mut container = image_container(BROKER, runtime::broker_command());
    container.insert(
        "ports".into(),
        json!([
            { "name": "mqtt", "containerPort": runtime::BROKER_PORT },
            { "name": "mqtt5", "containerPort": runtime::BROKER_PORT + 1 }
        ]),
    );
    container.insert("readinessProbe".into(), health_probe(Some(runtime::broker_health_url())));
    vec![
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": context.metadata(BROKER, "broker"),
            "spec": {
                "replicas": 1,
                "selector": context.selector(BROKER),
                "template": { "metadata": { "labels": context.labels(BROKER, "broker") }, "spec": { "containers": [container] } }
            }
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": context.metadata(BROKER, "broker"),
            "spec": {
                "selector": { "app.kubernetes.io/name": BROKER },
                "ports": [
                    { "name": "mqtt", "port": runtime::BROKER_PORT, "targetPort": runtime::BROKER_PORT, "protocol": "TCP" },
                    { "name": "mqtt5", "port": runtime::BROKER_PORT + 1, "targetPort": runtime::BROKER_PORT + 1, "protocol": "TCP" }
                ]
            }
        }),
    ]
}

/// The Services' names, and the pod's own IP from the downward API (pods reach each other by pod IP).
fn in_cluster() -> runtime::Addresses<'static> {
    runtime::Addresses { server: CONTROL_PLANE, advertise: "$(POD_IP)", broker: BROKER }
}

/// An agent's container: its address from the downward API (pods reach each other by pod IP), the join token
/// from the Secret, its data on the node's disk.
fn agent_container(input: &Input, args: Vec<String>, machine: &str) -> serde_json::Map<String, Value> {
    let mut container = image_container("agent", args);
    let mut env = vec![
        json!({ "name": "POD_IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } }),
        json!({ "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }),
        json!({ "name": "STRATUM_HEALTH_URL", "value": runtime::agent_health_url() }),
    ];
    env.extend(secret_env(&["STRATUM_JOIN_TOKEN"]));
    container.insert("env".into(), json!(env));
    let mut ports = vec![
        json!({ "name": "data", "containerPort": runtime::DATA_PORT }),
        json!({ "name": "agent-api", "containerPort": runtime::AGENT_API_PORT }),
    ];
    for port in machine_ports(input, machine) {
        ports.push(json!({ "containerPort": port, "hostPort": port }));
    }
    container.insert("ports".into(), json!(ports));
    container.insert("readinessProbe".into(), health_probe(None));
    container.insert("volumeMounts".into(), json!([{ "name": "data", "mountPath": AGENT_DIR }]));
    container
}

/// The agent's data on the node's disk, so that buffered data outlives the pod.
fn agent_volume(name: &str) -> Value {
    json!({ "name": "data", "hostPath": { "path": format!("/var/lib/stratum/{name}"), "type": "DirectoryOrCreate" } })
}

/// The user the image runs as; volumes are made its own.
const USER_ID: u32 = 10001;

/// A host directory is created as root: this makes it the image's user's before the agent starts.
fn own_data() -> Value {
    json!({
        "name": "own-data",
        "image": runtime::stratum_image(),
        "command": ["chown", format!("{USER_ID}:{USER_ID}"), AGENT_DIR],
        "securityContext": { "runAsUser": 0 },
        "volumeMounts": [{ "name": "data", "mountPath": AGENT_DIR }]
    })
}

fn placement_on(tier: Tier, selector: (&str, String)) -> serde_json::Map<String, Value> {
    let mut spec = serde_json::Map::new();
    let mut node_selector = serde_json::Map::new();
    node_selector.insert(selector.0.into(), json!(selector.1));
    if tier == Tier::Edge {
        node_selector.insert(EDGE_ROLE.into(), json!(""));
        spec.insert("tolerations".into(), json!([{ "key": EDGE_ROLE, "operator": "Exists", "effect": "NoSchedule" }]));
    }
    spec.insert("nodeSelector".into(), Value::Object(node_selector));
    spec
}

fn node_agent(input: &Input, context: &Context, machine: &str, tier: Tier) -> Value {
    let name = format!("agent-{}", object_name(machine));
    let args = runtime::agent_command(input.application, machine, tier.name(), &in_cluster(), false);
    let mut spec = placement_on(tier, (NODE_LABEL, object_name(machine)));
    spec.insert("initContainers".into(), json!([own_data()]));
    spec.insert("containers".into(), json!([agent_container(input, args, machine)]));
    spec.insert("volumes".into(), json!([agent_volume(&object_name(machine))]));
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": context.metadata(&name, "agent"),
        "spec": {
            "selector": context.selector(&name),
            "template": { "metadata": { "labels": context.labels(&name, "agent") }, "spec": spec }
        }
    })
}

/// A pool's members: a StatefulSet whose pod `agent-POOL-K` is the plan's member `POOL-(K+1)` (`--pool`), one per
/// node of the pool; scaling it between `min` and `max` (the cluster autoscaler adds nodes to the pool) adds or
/// removes members.
fn pool_agents(input: &Input, context: &Context, pool: &stratum_core::ir::Pool) -> Value {
    let name = format!("agent-{}", object_name(&pool.name));
    let tier = pool.machine.tier;
    let mut args = runtime::agent_command(input.application, "$(POD_NAME)", tier.name(), &in_cluster(), false);
    args.extend(["--pool".to_string(), pool.name.clone()]);
    let first_member = format!("{}-1", pool.name);
    let mut spec = placement_on(tier, (POOL_LABEL, object_name(&pool.name)));
    spec.insert("initContainers".into(), json!([own_data()]));
    spec.insert("containers".into(), json!([agent_container(input, args, &first_member)]));
    spec.insert(
        "affinity".into(),
        json!({
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": { "matchLabels": { "app.kubernetes.io/name": name } },
                    "topologyKey": "kubernetes.io/hostname"
                }]
            }
        }),
    );
    spec.insert("volumes".into(), json!([agent_volume(&object_name(&pool.name))]));
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": context.metadata(&name, "agent"),
        "spec": {
            "serviceName": name,
            "replicas": pool.min.max(1),
            "podManagementPolicy": "Parallel",
            "selector": context.selector(&name),
            "template": { "metadata": { "labels": context.labels(&name, "agent") }, "spec": spec }
        }
    })
}

/// Applies the application once the control plane answers (the Job retries until it does), on the control
/// plane's node so that it can make the models ready in its volume.
/// The Job that applies the application, with its served models prepared: in the control plane's volume when it
/// has one (on its node), else in scratch of its own, from where `apply` sends them to the control plane.
fn apply_job(input: &Input, context: &Context) -> Value {
    let mut container = image_container("apply", runtime::apply_command(input.source_file(), CONTROL_PLANE));
    container.insert("env".into(), json!(secret_env(&["STRATUM_TOKEN"])));
    container.insert(
        "volumeMounts".into(),
        json!([
            { "name": "app", "mountPath": APP_DIR, "readOnly": true },
            { "name": "state", "mountPath": STATE_DIR }
        ]),
    );
    let mut pod = json!({
        "restartPolicy": "OnFailure",
        "securityContext": { "fsGroup": USER_ID },
        "containers": [container],
    });
    if input.secrets.store.is_some() {
        pod["volumes"] = json!([app_volume(input), { "name": "state", "emptyDir": {} }]);
    } else {
        pod["affinity"] = json!({
            "podAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": { "matchLabels": { "app.kubernetes.io/name": CONTROL_PLANE } },
                    "topologyKey": "kubernetes.io/hostname"
                }]
            }
        });
        pod["volumes"] = json!([
            app_volume(input),
            { "name": "state", "persistentVolumeClaim": { "claimName": "control-plane-state" } }
        ]);
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": context.metadata("apply", "apply"),
        "spec": {
            "backoffLimit": 10,
            "template": { "metadata": { "labels": context.labels("apply", "apply") }, "spec": pod }
        }
    })
}

fn tool_objects(input: &Input, context: &Context, tool: &stratum_core::ir::Tool, image: &str) -> Vec<Value> {
    let name = format!("tool-{}", object_name(&tool.name));
    let assignment = input.plan.assignments.iter().find(|assignment| assignment.component == tool.name);
    let tier = assignment.map_or(Tier::Cloud, |assignment| assignment.tier);
    let mut container = serde_json::Map::new();
    container.insert("name".into(), json!("tool"));
    container.insert("image".into(), json!(image));
    if !tool.env.is_empty() {
        let env: Vec<Value> = tool.env.iter().map(|(name, value)| json!({ "name": name, "value": value })).collect();
        container.insert("env".into(), json!(env));
    }
    if !tool.ports.is_empty() {
        let ports: Vec<Value> = tool.ports.iter().map(|port| json!({ "containerPort": port })).collect();
        container.insert("ports".into(), json!(ports));
    }
    if let Some(assignment) = assignment {
        let requests = &assignment.requests;
        let amounts = json!({
            "cpu": format!("{}m", ((requests.cpu * 1000.0).round() as u64).max(1)),
            "memory": format!("{}Mi", requests.memory.0.div_ceil(1 << 20))
        });
        container.insert("resources".into(), json!({ "requests": amounts.clone(), "limits": amounts }));
    }
    let mut spec = serde_json::Map::new();
    spec.insert("nodeSelector".into(), json!({ "stratum.io/tier": tier.name() }));
    spec.insert("containers".into(), json!([container]));
    let mut objects = vec![json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": context.metadata(&name, "tool"),
        "spec": {
            "replicas": 1,
            "selector": context.selector(&name),
            "template": { "metadata": { "labels": context.labels(&name, "tool") }, "spec": spec }
        }
    })];
    if !tool.ports.is_empty() {
        let ports: Vec<Value> = tool
            .ports
            .iter()
            .map(|port| json!({ "name": format!("port-{port}"), "port": port, "targetPort": port, "protocol": "TCP" }))
            .collect();
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": context.metadata(&name, "tool"),
            "spec": { "selector": { "app.kubernetes.io/name": name }, "ports": ports }
        }));
    }
    objects
}
