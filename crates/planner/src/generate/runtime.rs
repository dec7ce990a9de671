//! What every generated deployment runs, written once so that the back ends cannot drift apart: Stratum's own
//! runtime — one `stratum server` (the control plane), one `stratum agent` per machine of the plan, the embedded
//! MQTT broker where the application needs one, and a one-shot `stratum apply` — with the same image, ports,
//! paths and command lines in compose, Kubernetes and Ansible. The binary's tests parse every command line written
//! here with its real command-line definition.

use stratum_core::ir::{Application, Machine, SinkKind, SourceKind, Tier};

/// Where the control plane's API listens (agents join here; `apply`, `status` and the dashboard use it).
pub const API_PORT: u16 = 7070;
/// Where an agent receives data from other agents.
pub const DATA_PORT: u16 = 7071;
/// Where an agent's own API listens: its `/metrics` and the predictions the control plane's gateway forwards.
pub const AGENT_API_PORT: u16 = 7072;
/// The MQTT broker's port (3.1.1; 5 on the next one).
pub const BROKER_PORT: u16 = 1883;
/// The control plane's state: its store, the model store agents pull from, the applied files.
pub const STATE_DIR: &str = "/var/lib/stratum/server";
/// An agent's buffers, models, checkpoints and the files its sinks write.
pub const AGENT_DIR: &str = "/var/lib/stratum/agent";
/// The application's files, as `stratum apply` reads them.
pub const APP_DIR: &str = "/etc/stratum/app";
/// The control plane's name on the deployment's network (a compose service, a Kubernetes Service, a host).
pub const CONTROL_PLANE: &str = "control-plane";
/// The broker's name on the deployment's network.
pub const BROKER: &str = "broker";

/// The container image of Stratum, as the repository's Containerfile builds it (`docker build -t stratum:VERSION
/// .`); every Stratum container of a deployment runs it with a different command.
pub fn stratum_image() -> String {
    format!("stratum:{}", env!("CARGO_PKG_VERSION"))
}

/// One machine that runs an agent: a node, or one member of a pool.
#[derive(Clone, Debug)]
pub struct AgentMachine<'a> {
    /// The name in the plan: the node's, or `POOL-N` for the N-th member of a pool (1-based).
    pub name: String,
    /// What the plan says the machine has.
    pub machine: &'a Machine,
    /// The pool, and whether the member runs always (one of the pool's first `min`).
    pub pool: Option<(&'a str, bool)>,
}

/// Every machine of the application: nodes in declaration order, then each pool's members up to its `max`.
pub fn machines(application: &Application) -> Vec<AgentMachine<'_>> {
    let mut machines: Vec<AgentMachine> = application
        .nodes
        .iter()
        .map(|node| AgentMachine { name: node.name.clone(), machine: &node.machine, pool: None })
        .collect();
    for pool in &application.pools {
        for member in 1..=pool.max {
            machines.push(AgentMachine {
                name: format!("{}-{member}", pool.name),
                machine: &pool.machine,
                pool: Some((&pool.name, member <= pool.min)),
            });
        }
    }
    machines
}

/// Whether the application needs an MQTT broker of the deployment's: an MQTT source names no `broker`, or it
/// has MQTT sinks or service outputs (which publish to the machine's broker).
pub fn needs_broker(application: &Application) -> bool {
    application.sources.iter().any(|source| matches!(&source.kind, SourceKind::Mqtt { broker: None, .. }))
        || application.sinks.iter().any(|sink| matches!(&sink.kind, SinkKind::Mqtt { .. }))
        || application.services.iter().any(|service| matches!(&service.output, Some(SinkKind::Mqtt { .. })))
}

/// The control plane's URL as agents and `apply` reach it: over TLS, which `stratum server` serves by default
/// (agents and `apply` trust the authority it proves with their token).
pub fn server_url(host: &str) -> String {
    format!("https://{host}:{API_PORT}")
}

fn words(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|part| part.to_string()).collect()
}

/// `stratum server`, listening where agents reach it, its state in [`STATE_DIR`]. The tokens come from the
/// environment (`STRATUM_TOKEN`, `STRATUM_VIEWER_TOKEN`, `STRATUM_JOIN_TOKEN`), never from the command line.
pub fn server_command() -> Vec<String> {
    words(&["server", "--listen", &format!("0.0.0.0:{API_PORT}"), "--state-dir", STATE_DIR])
}

/// Where an agent finds the others: the control plane's host, the host it is reached at itself, the broker's.
pub struct Addresses<'a> {
    /// The control plane's host.
    pub server: &'a str,
    /// The host the other agents reach this one at.
    pub advertise: &'a str,
    /// The MQTT broker's host.
    pub broker: &'a str,
}

/// `stratum agent` for one machine: named as the plan names it, its data reachable at the advertised host, its
/// data in [`AGENT_DIR`]. The join token comes from the environment (`STRATUM_JOIN_TOKEN`). Tools that run an
/// image are left to the deployment, which runs them as containers of their own, unless `image_tools`.
pub fn agent_command(
    application: &Application,
    name: &str,
    tier: &str,
    addresses: &Addresses,
    image_tools: bool,
) -> Vec<String> {
    let mut command = words(&[
        "agent",
        "--server",
        &server_url(addresses.server),
        "--name",
        name,
        "--tier",
        tier,
        "--data-listen",
        &format!("0.0.0.0:{DATA_PORT}"),
        "--advertise",
        &format!("{}:{DATA_PORT}", addresses.advertise),
        "--api",
        &format!("0.0.0.0:{AGENT_API_PORT}"),
        "--data-dir",
        AGENT_DIR,
    ]);
    if needs_broker(application) {
        command.extend(words(&["--broker", &format!("mqtt://{}:{BROKER_PORT}", addresses.broker)]));
    }
    if !image_tools {
        command.push("--no-image-tools".into());
    }
    command
}

/// The health check of an agent's container: its own API answers (`/health`, the one route that takes no token),
/// over TLS once the agent has joined and has its certificate.
pub fn agent_health_url() -> String {
    format!("https://127.0.0.1:{AGENT_API_PORT}/health")
}

/// The health check of the broker's container: it accepts connections.
pub fn broker_health_url() -> String {
    format!("tcp://127.0.0.1:{BROKER_PORT}")
}

/// `stratum broker` on the deployment's network.
pub fn broker_command() -> Vec<String> {
    words(&[
        "broker",
        "--listen",
        &format!("0.0.0.0:{BROKER_PORT}"),
        "--listen-v5",
        &format!("0.0.0.0:{}", BROKER_PORT + 1),
    ])
}

/// The one-shot step that sends the application to the control plane once it answers: the models its services
/// serve made ready in the control plane's model store first (mounted at [`STATE_DIR`]), then `stratum apply`.
/// The operator's token comes from the environment (`STRATUM_TOKEN`).
pub fn apply_command(source_file: &str, server_host: &str) -> Vec<String> {
    words(&[
        "apply",
        &format!("{APP_DIR}/{source_file}"),
        "--server",
        &server_url(server_host),
        "--prepare-models",
        &format!("{STATE_DIR}/models"),
    ])
}

/// The tiers whose network a machine of `tier` joins: its own, and every tier below it that data reaches it
/// from through declared links (directly or through other tiers), so that edge machines share a network with
/// nothing but what their links reach, and cutting one off its tier's network partitions it.
pub fn networks_of(application: &Application, tier: Tier) -> Vec<Tier> {
    use stratum_core::ir::Endpoint;
    let tier_of = |endpoint: &Endpoint| match endpoint {
        Endpoint::Tier(tier) => Some(*tier),
        Endpoint::Node(name) => application.nodes.iter().find(|node| &node.name == name).map(|node| node.machine.tier),
    };
    let links: Vec<(Tier, Tier)> =
        application.links.iter().filter_map(|link| Some((tier_of(&link.from)?, tier_of(&link.to)?))).collect();
    let mut joined = vec![tier];
    let mut index = 0;
    while index < joined.len() {
        let here = joined[index];
        for (from, to) in &links {
            // A link between two tiers puts the upper tier's machines on the lower tier's network.
            let (lower, upper) = if rank(*from) <= rank(*to) { (*from, *to) } else { (*to, *from) };
            if upper == here && !joined.contains(&lower) {
                joined.push(lower);
            }
        }
        index += 1;
    }
    // Without declared links every tier reaches every lower one, as the planner assumes.
    if links.is_empty() {
        joined = [Tier::Edge, Tier::Fog, Tier::Cloud].into_iter().filter(|other| rank(*other) <= rank(tier)).collect();
    }
    joined.sort_by_key(|tier| rank(*tier));
    joined
}

fn rank(tier: Tier) -> u8 {
    match tier {
        Tier::Edge => 0,
        Tier::Fog => 1,
        Tier::Cloud => 2,
    }
}

/// The tiers of the application's machines, edge first.
pub fn tiers(application: &Application) -> Vec<Tier> {
    let mut tiers: Vec<Tier> = machines(application).iter().map(|machine| machine.machine.tier).collect();
    tiers.sort_by_key(|tier| rank(*tier));
    tiers.dedup();
    tiers
}
