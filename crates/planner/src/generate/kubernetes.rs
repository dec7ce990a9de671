//! Kubernetes manifests: a Namespace, a ConfigMap holding the Plan, the Stratum agent as a DaemonSet, and per
//! component a workload pinned where the plan put it — Deployment, DaemonSet (per-node sources), StatefulSet
//! (sinks that keep files), CronJob (batches) or Job (training) — with Services for what listens, and per inference
//! service a HorizontalPodAutoscaler (or a Knative Service with `--serverless knative`).

use super::{AGENT_PORT, Backend, Error, GeneratedFile, Input, by_component, object_name, ports, stratum_image};
use serde_json::{Value, json};
use stratum_core::ir::{Schedule, SinkKind, Tier};
use stratum_core::plan::{Assignment, ComponentKind};

pub struct Kubernetes;

/// The label KubeEdge puts on edge nodes, and the taint it sets on them.
const EDGE_ROLE: &str = "node-role.kubernetes.io/edge";

impl Backend for Kubernetes {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn description(&self) -> &'static str {
        "Kubernetes manifests (edge nodes as KubeEdge labels them)"
    }

    fn generate(&self, input: &Input) -> Result<Vec<GeneratedFile>, Error> {
        let app = object_name(&input.application.name);
        let namespace = format!("stratum-{app}");
        let plan_map = format!("{app}-plan");
        let mut documents = vec![
            json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": { "name": namespace, "labels": { "app.kubernetes.io/part-of": app } }
            }),
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": { "name": plan_map, "namespace": namespace, "labels": { "app.kubernetes.io/part-of": app } },
                "data": { "plan.json": serde_json::to_string_pretty(input.plan)? }
            }),
            agent(&app, &namespace, &plan_map),
        ];
        for (component, assignments) in by_component(input.plan) {
            documents.extend(component_objects(input, component, &assignments, &app, &namespace, &plan_map));
        }
        let contents = super::yaml_documents("the Kubernetes manifests", &documents)?;
        Ok(vec![GeneratedFile { path: format!("kubernetes/{app}.yaml"), contents }])
    }
}

fn labels(app: &str, name: &str, role: &str) -> Value {
    json!({
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": app,
        "app.kubernetes.io/component": role,
        "app.kubernetes.io/managed-by": "stratum"
    })
}

fn metadata(app: &str, namespace: &str, name: &str, role: &str) -> Value {
    json!({ "name": name, "namespace": namespace, "labels": labels(app, name, role) })
}

fn plan_volume(plan_map: &str) -> Value {
    json!({ "name": "plan", "configMap": { "name": plan_map } })
}

fn edge_toleration() -> Value {
    json!({ "key": EDGE_ROLE, "operator": "Exists", "effect": "NoSchedule" })
}

fn agent(app: &str, namespace: &str, plan_map: &str) -> Value {
    let name = "stratum-agent";
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": metadata(app, namespace, name, "agent"),
        "spec": {
            "selector": { "matchLabels": { "app.kubernetes.io/name": name } },
            "template": {
                "metadata": { "labels": labels(app, name, "agent") },
                "spec": {
                    "tolerations": [edge_toleration()],
                    "containers": [{
                        "name": "agent",
                        "image": stratum_image(),
                        "args": ["agent", "--name", "$(NODE_NAME)", "--plan", "/etc/stratum/plan.json"],
                        "env": [{ "name": "NODE_NAME", "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } }],
                        "ports": [{ "name": "agent", "containerPort": AGENT_PORT }],
                        "volumeMounts": [{ "name": "plan", "mountPath": "/etc/stratum", "readOnly": true }]
                    }],
                    "volumes": [plan_volume(plan_map)]
                }
            }
        }
    })
}

/// Kubernetes quantities: millicores and mebibytes.
fn cpu_quantity(cores: f64) -> String {
    format!("{}m", ((cores * 1000.0).round() as u64).max(1))
}

fn memory_quantity(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes.is_multiple_of(MIB) { format!("{}Mi", bytes / MIB) } else { bytes.to_string() }
}

/// The extended resource name for an accelerator kind.
fn accelerator_resource(kind: &str) -> String {
    if kind.to_lowercase().contains("nvidia") {
        "nvidia.com/gpu".to_string()
    } else {
        format!("stratum.io/{}", object_name(kind))
    }
}

fn resources(assignment: &Assignment) -> Value {
    let requests = &assignment.requests;
    let mut amounts = serde_json::Map::new();
    amounts.insert("cpu".into(), json!(cpu_quantity(requests.cpu)));
    amounts.insert("memory".into(), json!(memory_quantity(requests.memory.0)));
    if requests.disk.0 > 0 {
        // A source's store-and-forward buffer, reserved on the node's disk.
        amounts.insert("ephemeral-storage".into(), json!(memory_quantity(requests.disk.0)));
    }
    for accelerator in &requests.accelerators {
        amounts.insert(accelerator_resource(&accelerator.kind), json!(accelerator.count.to_string()));
    }
    // Limits equal requests: the plan proved that the requests fit, nothing more.
    json!({ "requests": amounts.clone(), "limits": amounts })
}

/// Node selection: the tier, the pool for pool members, and the named machines the plan chose.
fn scheduling(input: &Input, assignments: &[&Assignment]) -> (Value, Option<Value>, Vec<Value>) {
    let first = assignments[0];
    let mut selector = serde_json::Map::new();
    selector.insert("stratum.io/tier".into(), json!(first.tier.name()));
    let mut named: Vec<&str> = Vec::new();
    for assignment in assignments {
        match input.plan.hosts.iter().find(|host| host.host == assignment.host).and_then(|host| host.pool.as_deref()) {
            Some(pool) => {
                selector.insert("stratum.io/pool".into(), json!(pool));
            }
            None if !named.contains(&assignment.host.as_str()) => named.push(&assignment.host),
            None => {}
        }
    }
    let affinity = (!named.is_empty()).then(|| {
        json!({
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{
                        "matchExpressions": [{ "key": "kubernetes.io/hostname", "operator": "In", "values": named }]
                    }]
                }
            }
        })
    });
    let mut tolerations = Vec::new();
    if first.tier == Tier::Edge {
        selector.insert(EDGE_ROLE.into(), json!(""));
        tolerations.push(edge_toleration());
    }
    (Value::Object(selector), affinity, tolerations)
}

fn container(input: &Input, component: &str, assignment: &Assignment, keeps_files: bool) -> Value {
    let tool = input.application.tools.iter().find(|tool| tool.name == component);
    let mut container = serde_json::Map::new();
    container.insert("name".into(), json!("main"));
    match tool.map(|tool| &tool.run) {
        Some(stratum_core::ir::ToolRun::Image(image)) => {
            container.insert("image".into(), json!(image));
        }
        Some(stratum_core::ir::ToolRun::Command(command)) => {
            container.insert("image".into(), json!("debian:12-slim"));
            container.insert("command".into(), json!(command));
        }
        None => {
            container.insert("image".into(), json!(stratum_image()));
            container
                .insert("args".into(), json!(["run", "--plan", "/etc/stratum/plan.json", "--component", component]));
        }
    }
    if let Some(tool) = tool
        && !tool.env.is_empty()
    {
        let env: Vec<Value> = tool.env.iter().map(|(name, value)| json!({ "name": name, "value": value })).collect();
        container.insert("env".into(), json!(env));
    }
    let listening = ports(input.application, component);
    if !listening.is_empty() {
        let declared: Vec<Value> = listening.iter().map(|port| json!({ "containerPort": port })).collect();
        container.insert("ports".into(), json!(declared));
    }
    container.insert("resources".into(), resources(assignment));
    let mut mounts = vec![json!({ "name": "plan", "mountPath": "/etc/stratum", "readOnly": true })];
    if keeps_files {
        mounts.push(json!({ "name": "data", "mountPath": "/var/lib/stratum" }));
    }
    container.insert("volumeMounts".into(), json!(mounts));
    Value::Object(container)
}

fn pod_spec(
    input: &Input,
    component: &str,
    assignments: &[&Assignment],
    plan_map: &str,
    keeps_files: bool,
) -> serde_json::Map<String, Value> {
    let (selector, affinity, tolerations) = scheduling(input, assignments);
    let mut spec = serde_json::Map::new();
    spec.insert("nodeSelector".into(), selector);
    if let Some(affinity) = affinity {
        spec.insert("affinity".into(), affinity);
    }
    if !tolerations.is_empty() {
        spec.insert("tolerations".into(), json!(tolerations));
    }
    spec.insert("containers".into(), json!([container(input, component, assignments[0], keeps_files)]));
    spec.insert("volumes".into(), json!([plan_volume(plan_map)]));
    spec
}

fn component_objects(
    input: &Input,
    component: &str,
    assignments: &[&Assignment],
    app: &str,
    namespace: &str,
    plan_map: &str,
) -> Vec<Value> {
    let name = object_name(component);
    let kind = assignments[0].kind;
    let role = kind.name();
    let template_labels = labels(app, &name, role);
    let selector = json!({ "matchLabels": { "app.kubernetes.io/name": name } });
    let sink = input.application.sinks.iter().find(|sink| sink.name == component);
    let keeps_files = matches!(sink.map(|sink| &sink.kind), Some(SinkKind::File { .. } | SinkKind::Dataset { .. }));
    let pod = pod_spec(input, component, assignments, plan_map, keeps_files);
    let replicas = assignments.len();
    let mut objects = Vec::new();
    match kind {
        ComponentKind::Batch => {
            let schedule = input
                .application
                .batches
                .iter()
                .find(|batch| batch.name == component)
                .map(|batch| cron(&batch.schedule))
                .unwrap_or_else(|| "0 * * * *".to_string());
            let mut job_pod = pod;
            job_pod.insert("restartPolicy".into(), json!("OnFailure"));
            objects.push(json!({
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": metadata(app, namespace, &name, role),
                "spec": {
                    "schedule": schedule,
                    "concurrencyPolicy": "Forbid",
                    "jobTemplate": { "spec": { "template": { "metadata": { "labels": template_labels }, "spec": job_pod } } }
                }
            }));
        }
        ComponentKind::Training => {
            let mut job_pod = pod;
            job_pod.insert("restartPolicy".into(), json!("Never"));
            objects.push(json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": metadata(app, namespace, &name, role),
                "spec": { "backoffLimit": 2, "template": { "metadata": { "labels": template_labels }, "spec": job_pod } }
            }));
        }
        ComponentKind::Source if replicas > 1 => {
            // A per-node source: one pod on each chosen node.
            objects.push(json!({
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": metadata(app, namespace, &name, role),
                "spec": { "selector": selector, "template": { "metadata": { "labels": template_labels }, "spec": pod } }
            }));
        }
        ComponentKind::Sink if keeps_files => {
            objects.push(json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata(app, namespace, &name, role),
                "spec": { "clusterIP": "None", "selector": { "app.kubernetes.io/name": name } }
            }));
            objects.push(json!({
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": metadata(app, namespace, &name, role),
                "spec": {
                    "serviceName": name,
                    "replicas": replicas,
                    "selector": selector,
                    "template": { "metadata": { "labels": template_labels }, "spec": pod },
                    "volumeClaimTemplates": [{
                        "metadata": { "name": "data" },
                        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "10Gi" } } }
                    }]
                }
            }));
        }
        ComponentKind::Service if input.options.knative => {
            objects.push(knative_service(input, component, &name, app, namespace, pod));
            return objects;
        }
        _ => {
            objects.push(json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": metadata(app, namespace, &name, role),
                "spec": {
                    "replicas": replicas,
                    "selector": selector,
                    "template": { "metadata": { "labels": template_labels }, "spec": pod }
                }
            }));
        }
    }
    let listening = ports(input.application, component);
    if !listening.is_empty() {
        let service_ports: Vec<Value> = listening
            .iter()
            .map(|port| json!({ "name": format!("port-{port}"), "port": port, "targetPort": port, "protocol": "TCP" }))
            .collect();
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(app, namespace, &name, role),
            "spec": { "selector": { "app.kubernetes.io/name": name }, "ports": service_ports }
        }));
    }
    if kind == ComponentKind::Service
        && let Some(service) = input.application.services.iter().find(|service| service.name == component)
    {
        // An autoscaler keeps at least one replica; scaling to zero needs Knative (`--serverless knative`).
        objects.push(json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(app, namespace, &name, role),
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
                "minReplicas": service.scale.min.max(1),
                "maxReplicas": service.scale.max.max(1),
                "metrics": [{
                    "type": "Pods",
                    "pods": {
                        "metric": { "name": "stratum_requests_in_flight" },
                        "target": { "type": "AverageValue", "averageValue": service.scale.concurrency.to_string() }
                    }
                }]
            }
        }));
    }
    objects
}

fn knative_service(
    input: &Input,
    component: &str,
    name: &str,
    app: &str,
    namespace: &str,
    mut pod: serde_json::Map<String, Value>,
) -> Value {
    let scale = input
        .application
        .services
        .iter()
        .find(|service| service.name == component)
        .map(|service| service.scale.clone())
        .unwrap_or_default();
    let mut annotations = serde_json::Map::new();
    annotations.insert("autoscaling.knative.dev/min-scale".into(), json!(scale.min.to_string()));
    annotations.insert("autoscaling.knative.dev/max-scale".into(), json!(scale.max.to_string()));
    annotations.insert("autoscaling.knative.dev/target".into(), json!(scale.concurrency.to_string()));
    if let Some(idle) = scale.idle {
        annotations.insert(
            "autoscaling.knative.dev/scale-to-zero-pod-retention-period".into(),
            json!(format!("{}s", idle.0.round())),
        );
    }
    pod.remove("volumes");
    if let Some(Value::Array(containers)) = pod.get_mut("containers") {
        for container in containers {
            if let Value::Object(fields) = container {
                fields.remove("volumeMounts");
            }
        }
    }
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": metadata(app, namespace, name, "service"),
        "spec": { "template": { "metadata": { "annotations": annotations }, "spec": pod } }
    })
}

/// A schedule as a cron expression; intervals that cron cannot say exactly are rounded to the nearest it can.
fn cron(schedule: &Schedule) -> String {
    match schedule {
        Schedule::Cron(expression) => expression.clone(),
        Schedule::Every(interval) => {
            let minutes = (interval.0 / 60.0).round().max(1.0) as u64;
            match minutes {
                minutes if minutes < 60 => format!("*/{minutes} * * * *"),
                minutes if minutes < 1440 => format!("0 */{} * * *", (minutes / 60).clamp(1, 23)),
                minutes => format!("0 0 */{} * *", (minutes / 1440).clamp(1, 31)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratum_core::units::Duration;

    #[test]
    fn intervals_become_cron_expressions() {
        assert_eq!(cron(&Schedule::Every(Duration(3600.0))), "0 */1 * * *");
        assert_eq!(cron(&Schedule::Every(Duration(900.0))), "*/15 * * * *");
        assert_eq!(cron(&Schedule::Every(Duration(86400.0 * 7.0))), "0 0 */7 * *");
        assert_eq!(cron(&Schedule::Cron("30 1 * * *".into())), "30 1 * * *");
    }

    #[test]
    fn quantities_use_kubernetes_units() {
        assert_eq!(cpu_quantity(0.25), "250m");
        assert_eq!(memory_quantity(512 << 20), "512Mi");
        assert_eq!(accelerator_resource("nvidia-t4"), "nvidia.com/gpu");
        assert_eq!(accelerator_resource("coral-tpu"), "stratum.io/coral-tpu");
    }
}
