//! Infrastructure as code from a plan: one [`Backend`] per target (Kubernetes, compose, Ansible), each turning
//! the application and its plan into files that run Stratum's own runtime ([`runtime`]: a control plane, one
//! agent per machine, the application applied once). Output is deterministic: sorted, with stable names. A new
//! target (Terraform, Nomad) is one new module registered in [`BACKENDS`].

mod ansible;
mod compose;
mod kubernetes;
pub mod runtime;

use stratum_core::ir::Application;
use stratum_core::plan::Plan;

/// A file to write, relative to the output directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    /// The path, relative to the output directory.
    pub path: String,
    /// What the file holds.
    pub contents: String,
    /// Holds the tokens: written only when missing (generating again keeps the cluster's tokens) and readable
    /// by its owner only.
    pub secret: bool,
}

impl GeneratedFile {
    fn new(path: impl Into<String>, contents: String) -> GeneratedFile {
        GeneratedFile { path: path.into(), contents, secret: false }
    }

    fn secret(path: impl Into<String>, contents: String) -> GeneratedFile {
        GeneratedFile { path: path.into(), contents, secret: true }
    }
}

/// The cluster's tokens, which the generated secrets files hold: the operator's (apply, read), the viewer's
/// (read) and the agents' join token.
#[derive(Clone, Debug)]
pub struct Secrets {
    /// The operator's token: reads, and applies new versions.
    pub operator: String,
    /// The viewer's token: reads only.
    pub viewer: String,
    /// The token agents join with.
    pub join: String,
    /// The PostgreSQL state store replicas of the control plane share (`postgres://USER:PASSWORD@HOST/DB`), when
    /// the deployment is to outlive a control plane's machine; `None` keeps the state on the control plane's own
    /// volume. Only the Kubernetes output uses it so far.
    pub store: Option<String>,
}

/// What every backend reads.
pub struct Input<'a> {
    /// The checked application.
    pub application: &'a Application,
    /// Its plan.
    pub plan: &'a Plan,
    /// The application's files, relative to its folder: the root file first, then what it imports.
    pub files: &'a [(String, String)],
    /// The tokens the secrets files hold.
    pub secrets: &'a Secrets,
}

impl Input<'_> {
    /// The root file's path, relative to the application's folder.
    pub fn source_file(&self) -> &str {
        self.files.first().map_or("app.stratum", |(path, _)| path.as_str())
    }
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be written as YAML.
    #[error("cannot write {what} as YAML: {source}")]
    Yaml {
        /// Which file.
        what: String,
        /// What serde_yaml said.
        source: serde_yaml_ng::Error,
    },
    /// The plan could not be written as JSON.
    #[error("cannot write the plan as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// One target of `stratum generate`.
pub trait Backend {
    /// The name on the command line: `stratum generate NAME FILE -o DIR`.
    fn name(&self) -> &'static str;
    /// One line for `stratum generate --help`.
    fn description(&self) -> &'static str;
    /// The files of this target for `input`.
    fn generate(&self, input: &Input) -> Result<Vec<GeneratedFile>, Error>;
}

/// Every target, in the order `stratum generate --help` lists them.
pub const BACKENDS: &[&dyn Backend] = &[&kubernetes::Kubernetes, &compose::Compose, &ansible::Ansible];

/// The backend called `name` on the command line, if there is one.
pub fn backend(name: &str) -> Option<&'static dyn Backend> {
    BACKENDS.iter().copied().find(|backend| backend.name() == name)
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

/// The ports a data-plane component listens on for the outside world: an HTTP source's. (Inference services
/// answer through the control plane's gateway; tools' ports are their containers'.)
pub fn ports(application: &Application, component: &str) -> Vec<u16> {
    use stratum_core::ir::SourceKind;
    match application.sources.iter().find(|source| source.name == component).map(|source| &source.kind) {
        Some(SourceKind::Http { port, .. }) => vec![port.unwrap_or(stratum_core::ir::DEFAULT_HTTP_PORT)],
        _ => Vec::new(),
    }
}

/// The ports a machine's components listen on, in order.
pub fn machine_ports(input: &Input, machine: &str) -> Vec<u16> {
    let mut ports: Vec<u16> = input
        .plan
        .assignments
        .iter()
        .filter(|assignment| assignment.host == machine)
        .flat_map(|assignment| ports(input.application, &assignment.component))
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
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
