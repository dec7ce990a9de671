//! Infrastructure as code from a plan: one [`Backend`] per target (Kubernetes, compose, Ansible), each turning
//! the application and its plan into files. Output is deterministic: sorted, with stable names. A new target
//! (Terraform, Nomad) is one new module registered in [`BACKENDS`].

mod ansible;
mod compose;
mod kubernetes;

use std::collections::BTreeMap;
use stratum_core::ir::Application;
use stratum_core::plan::{Assignment, Plan};

/// A file to write, relative to the output directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: String,
    pub contents: String,
}

/// Choices that change what a backend generates.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Serve inference services with Knative (scale to zero) instead of a Deployment and an autoscaler.
    pub knative: bool,
}

/// What every backend reads.
pub struct Input<'a> {
    pub application: &'a Application,
    pub plan: &'a Plan,
    pub options: &'a Options,
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write {what} as YAML: {source}")]
    Yaml { what: String, source: serde_yaml_ng::Error },
    #[error("cannot write the plan as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// One target of `stratum generate`.
pub trait Backend {
    /// The name on the command line: `stratum generate NAME FILE -o DIR`.
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn generate(&self, input: &Input) -> Result<Vec<GeneratedFile>, Error>;
}

/// Every target, in the order `stratum generate --help` lists them.
pub const BACKENDS: &[&dyn Backend] = &[&kubernetes::Kubernetes, &compose::Compose, &ansible::Ansible];

pub fn backend(name: &str) -> Option<&'static dyn Backend> {
    BACKENDS.iter().copied().find(|backend| backend.name() == name)
}

/// The container image that runs Stratum components, tagged with this version.
pub fn stratum_image() -> String {
    format!("ghcr.io/stratum-platform/stratum:{}", env!("CARGO_PKG_VERSION"))
}

/// The port an inference service answers on.
pub const SERVICE_PORT: u16 = 8080;
/// The port an agent listens on for the control plane.
pub const AGENT_PORT: u16 = 7878;

/// A plan's assignments grouped by component, in name order.
pub fn by_component(plan: &Plan) -> BTreeMap<&str, Vec<&Assignment>> {
    let mut groups: BTreeMap<&str, Vec<&Assignment>> = BTreeMap::new();
    for assignment in &plan.assignments {
        groups.entry(assignment.component.as_str()).or_default().push(assignment);
    }
    groups
}

/// A name valid for Kubernetes objects and compose services: lowercase letters, digits and `-`, at most 63.
pub fn object_name(name: &str) -> String {
    let mut out: String = name
        .to_lowercase()
        .chars()
        .map(|character| if character.is_ascii_alphanumeric() { character } else { '-' })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let trimmed = out.trim_matches('-');
    let mut name: String = trimmed.chars().take(63).collect();
    while name.ends_with('-') {
        name.pop();
    }
    if name.is_empty() { "component".to_string() } else { name }
}

/// The ports a component listens on: HTTP sources, inference services, tools.
pub fn ports(application: &Application, component: &str) -> Vec<u16> {
    use stratum_core::ir::SourceKind;
    if let Some(source) = application.sources.iter().find(|source| source.name == component)
        && let SourceKind::Http { port, .. } = &source.kind
    {
        return vec![port.unwrap_or(stratum_core::ir::DEFAULT_HTTP_PORT)];
    }
    if application.services.iter().any(|service| service.name == component) {
        return vec![SERVICE_PORT];
    }
    application.tools.iter().find(|tool| tool.name == component).map(|tool| tool.ports.clone()).unwrap_or_default()
}

/// Serializes YAML documents, separated by `---`.
pub(crate) fn yaml_documents(what: &str, documents: &[serde_json::Value]) -> Result<String, Error> {
    let mut out = String::new();
    for (index, document) in documents.iter().enumerate() {
        if index > 0 {
            out.push_str("---\n");
        }
        out.push_str(
            &serde_yaml_ng::to_string(document).map_err(|source| Error::Yaml { what: what.to_string(), source })?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::object_name;

    #[test]
    fn object_names_are_dns_labels() {
        assert_eq!(object_name("signal_timing"), "signal-timing");
        assert_eq!(object_name("congestion (training)"), "congestion-training");
        assert_eq!(object_name("__"), "component");
        assert_eq!(object_name(&"a".repeat(100)).len(), 63);
    }
}
