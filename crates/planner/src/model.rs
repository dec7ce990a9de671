//! The placement problem built from the IR: hosts (nodes and pool members), component instances with their
//! resource requests and constraints, the data flows between them, and the network that carries the flows.

use std::collections::{BTreeMap, HashMap};
use stratum_core::ir::*;
use stratum_core::placement::{MachineFacts, Rejection, TierRule, rule_out};
use stratum_core::plan::{ComponentKind, Requests};
use stratum_core::types::Field;
use stratum_core::units::ByteSize;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Latency assumed between two machines of one tier when no link says otherwise (a local network).
pub const SAME_TIER_LATENCY_MS: f64 = 0.5;
/// Latency assumed between two tiers that no declared link connects.
pub const ASSUMED_LINK_LATENCY_MS: f64 = 20.0;

/// One machine the planner can use: a node, or one member of a pool.
#[derive(Clone, Debug)]
pub struct Host {
    /// The node's name, or `POOL-N` for a pool member.
    pub name: String,
    /// Its tier.
    pub tier: Tier,
    /// Cores it has.
    pub cpu: f64,
    /// Memory it has, in bytes.
    pub memory: u64,
    /// Disk it has, in bytes, when the file says.
    pub disk: Option<u64>,
    /// Its architecture.
    pub arch: Arch,
    /// Its accelerators.
    pub accelerators: Vec<Accelerator>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The pool and the member's position in it (0-based).
    pub pool: Option<(String, u32)>,
    /// Pool members below the pool's minimum run anyway; the others cost money only when used.
    pub always_on: bool,
    /// What it costs an hour while it runs.
    pub hourly_cost: f64,
}

/// One instance of a component to place.
#[derive(Clone, Debug)]
pub struct Component {
    /// The component's name.
    pub name: String,
    /// What kind of component it is.
    pub kind: ComponentKind,
    /// Which instance (0-based).
    pub instance: u32,
    /// What it asks of its host.
    pub requests: Requests,
    /// Where the file says it may run.
    pub placement: Placement,
    /// When set, the instance must run on this host (a per-node source instance).
    pub pinned: Option<usize>,
    /// For a service with a latency objective: (the objective in ms, which percentile, the estimated service time in ms).
    pub latency_target: Option<LatencyTarget>,
    /// Another component to run close to.
    pub near: Option<String>,
}

/// A service's latency objective, as the planner checks it against routes.
#[derive(Clone, Debug)]
pub struct LatencyTarget {
    /// The objective, in milliseconds.
    pub at_most_ms: f64,
    /// The percentile it holds at (99 for `p99`).
    pub percentile: f64,
    /// The estimated time of one prediction, in milliseconds.
    pub service_time_ms: f64,
}

/// Data moving from one component instance to another.
#[derive(Clone, Debug)]
pub struct Flow {
    /// The producing instance.
    pub from: usize,
    /// The consuming instance.
    pub to: usize,
    /// Its estimated rate.
    pub bits_per_second: f64,
    /// Its estimated rate in records.
    pub events_per_second: f64,
    /// The estimated size of one record, in bytes.
    pub record_bytes: u64,
}

/// A network link: declared in the file, or assumed between tiers no declared link connects.
#[derive(Clone, Debug)]
pub struct NetworkLink {
    /// The tier or host at one end.
    pub from: String,
    /// The tier or host at the other end.
    pub to: String,
    /// Its latency.
    pub latency_ms: f64,
    /// Bits per second; None for an assumed link, whose bandwidth is unknown and so not limited.
    pub capacity: Option<f64>,
    /// Assumed between tiers that no declared link connects.
    pub assumed: bool,
}

/// The whole problem.
#[derive(Clone, Debug)]
pub struct Problem {
    /// The application's name.
    pub app: String,
    /// Every machine, nodes and pool members.
    pub hosts: Vec<Host>,
    /// Every component instance to place.
    pub components: Vec<Component>,
    /// Data between instances.
    pub flows: Vec<Flow>,
    /// Declared and assumed links.
    pub links: Vec<NetworkLink>,
    /// The weights of the objective, from the file's `objective { … }` or the defaults.
    pub weights: ObjectiveWeights,
    /// The route between two tiers, indexed by tier pair.
    tier_routes: [[Route; 3]; 3],
    /// Links declared between named machines (or pools), which override the tier routes.
    host_links: HashMap<(String, String), usize>,
}

/// The network path between two hosts: at most two links (edge to fog to cloud).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Route {
    /// The sum of its links' latencies (or the same-tier latency).
    pub latency_ms: f64,
    links: [usize; 2],
    hops: u8,
    /// Whether it leaves a tier (its traffic counts as cross-tier).
    pub crosses_tiers: bool,
}

impl Route {
    /// The links it goes through, in order.
    pub fn links(&self) -> &[usize] {
        &self.links[..self.hops as usize]
    }

    fn through(links: &[usize], problem_links: &[NetworkLink], crosses_tiers: bool) -> Route {
        let mut route = Route { crosses_tiers, ..Route::default() };
        for (slot, link) in links.iter().enumerate().take(2) {
            route.links[slot] = *link;
            route.hops += 1;
            route.latency_ms += problem_links[*link].latency_ms;
        }
        route
    }
}

fn tier_index(tier: Tier) -> usize {
    match tier {
        Tier::Edge => 0,
        Tier::Fog => 1,
        Tier::Cloud => 2,
    }
}

const TIERS: [Tier; 3] = [Tier::Edge, Tier::Fog, Tier::Cloud];

impl Problem {
    /// The network path between two hosts.
    pub fn route(&self, from: usize, to: usize) -> Route {
        if from == to {
            return Route::default();
        }
        let (a, b) = (&self.hosts[from], &self.hosts[to]);
        if !self.host_links.is_empty() {
            let machine =
                |host: &Host| host.pool.as_ref().map(|(pool, _)| pool.clone()).unwrap_or_else(|| host.name.clone());
            let (first, second) = (machine(a), machine(b));
            if let Some(link) =
                self.host_links.get(&(first.clone(), second.clone())).or_else(|| self.host_links.get(&(second, first)))
            {
                return Route::through(&[*link], &self.links, a.tier != b.tier);
            }
        }
        if a.tier == b.tier {
            return Route { latency_ms: SAME_TIER_LATENCY_MS, ..Route::default() };
        }
        self.tier_routes[tier_index(a.tier)][tier_index(b.tier)]
    }

    /// Builds the problem from a checked application.
    pub fn from_application(application: &Application) -> Problem {
        let hosts = hosts(application);
        let mut links: Vec<NetworkLink> = Vec::new();
        let mut tier_links: HashMap<(usize, usize), usize> = HashMap::new();
        let mut host_links = HashMap::new();
        let endpoint_name = |endpoint: &Endpoint| match endpoint {
            Endpoint::Tier(tier) => tier.name().to_string(),
            Endpoint::Node(name) => name.clone(),
        };
        for link in &application.links {
            let index = links.len();
            links.push(NetworkLink {
                from: endpoint_name(&link.from),
                to: endpoint_name(&link.to),
                latency_ms: link.latency.0 * 1000.0,
                capacity: Some(link.bandwidth.0),
                assumed: false,
            });
            match (&link.from, &link.to) {
                (Endpoint::Tier(a), Endpoint::Tier(b)) => {
                    let (a, b) = (tier_index(*a), tier_index(*b));
                    tier_links.insert((a.min(b), a.max(b)), index);
                }
                (from, to) => {
                    host_links.insert((endpoint_name(from), endpoint_name(to)), index);
                }
            }
        }
        // Adjacent tiers use their declared link or an assumed one; edge to cloud goes through the fog unless a
        // direct link is declared.
        let mut adjacent = |a: usize, b: usize, links: &mut Vec<NetworkLink>| -> usize {
            *tier_links.entry((a, b)).or_insert_with(|| {
                links.push(NetworkLink {
                    from: TIERS[a].name().to_string(),
                    to: TIERS[b].name().to_string(),
                    latency_ms: ASSUMED_LINK_LATENCY_MS,
                    capacity: None,
                    assumed: true,
                });
                links.len() - 1
            })
        };
        let edge_fog = adjacent(0, 1, &mut links);
        let fog_cloud = adjacent(1, 2, &mut links);
        let edge_cloud: Vec<usize> = match tier_links.get(&(0, 2)) {
            Some(direct) => vec![*direct],
            None => vec![edge_fog, fog_cloud],
        };
        let mut tier_routes = [[Route::default(); 3]; 3];
        for (a, b, path) in [(0, 1, vec![edge_fog]), (1, 2, vec![fog_cloud]), (0, 2, edge_cloud)] {
            let route = Route::through(&path, &links, true);
            tier_routes[a][b] = route;
            tier_routes[b][a] = route;
        }
        let mut problem = Problem {
            app: application.name.clone(),
            hosts,
            components: Vec::new(),
            flows: Vec::new(),
            links,
            weights: application.objective.clone(),
            tier_routes,
            host_links,
        };
        problem.add_components(application);
        problem
    }

    fn add_components(&mut self, application: &Application) {
        // Instances per component name, to connect flows.
        let mut instances: HashMap<String, Vec<usize>> = HashMap::new();
        let mut rates: HashMap<String, (f64, u64)> = HashMap::new();
        let push = |problem: &mut Problem, instances: &mut HashMap<String, Vec<usize>>, component: Component| {
            instances.entry(component.name.clone()).or_default().push(problem.components.len());
            problem.components.push(component);
        };

        for source in &application.sources {
            let mut requests = requests(&source.resources, 0.1, 64 * MIB, &source.placement);
            if let Some(buffer) = &source.buffer {
                requests.disk = ByteSize(requests.disk.0 + buffer.max.0);
            }
            let events = source.rate.map(|rate| rate.0).unwrap_or(1.0);
            // A per-node source runs on every machine that may run it.
            let matching: Vec<usize> = if source.rate_per_node {
                (0..self.hosts.len())
                    .filter(|host| static_rejection(&self.hosts[*host], &source.placement, &requests).is_none())
                    .collect()
            } else {
                Vec::new()
            };
            // The source's whole rate: a per-node rate times the machines that make it, so that what reads it is
            // estimated from all of them.
            let machines = matching.len().max(1);
            rates.insert(source.name.clone(), (events * machines as f64, source.event_size.0));
            if source.rate_per_node {
                for (instance, host) in matching.iter().enumerate() {
                    let component = Component {
                        name: source.name.clone(),
                        kind: ComponentKind::Source,
                        instance: instance as u32,
                        requests: requests.clone(),
                        placement: source.placement.clone(),
                        pinned: Some(*host),
                        latency_target: None,
                        near: source.placement.near.clone(),
                    };
                    push(self, &mut instances, component);
                }
                if matching.is_empty() {
                    push(
                        self,
                        &mut instances,
                        simple(&source.name, ComponentKind::Source, requests, &source.placement),
                    );
                }
            } else {
                push(self, &mut instances, simple(&source.name, ComponentKind::Source, requests, &source.placement));
            }
        }

        // Streams in an order where inputs come first, so their rates are known.
        let mut pending: Vec<&Stream> = application.streams.iter().collect();
        let mut progress = true;
        while !pending.is_empty() && progress {
            progress = false;
            pending.retain(|stream| {
                if !rates.contains_key(&stream.from) {
                    return true;
                }
                let (input_events, _) = rates[&stream.from];
                let mut events = if stream.filter.is_some() { input_events * 0.5 } else { input_events };
                if let Some(window) = &stream.window {
                    let seconds = match window {
                        Window::Tumbling { size } => size.0,
                        Window::Sliding { slide, .. } => slide.0,
                        Window::Session { gap } => gap.0,
                    };
                    let keys = if stream.keys.is_empty() { 1.0 } else { 100.0 };
                    events = events.min(keys / seconds.max(0.001));
                }
                rates.insert(stream.name.clone(), (events, record_size(&stream.fields)));
                progress = true;
                false
            });
        }
        for stream in &application.streams {
            let (cpu, memory) = if stream.window.is_some() { (0.5, 512 * MIB) } else { (0.25, 256 * MIB) };
            let requests = requests(&stream.resources, cpu, memory, &stream.placement);
            push(self, &mut instances, simple(&stream.name, ComponentKind::Stream, requests, &stream.placement));
        }
        for sink in &application.sinks {
            let requests = requests(&sink.resources, 0.1, 128 * MIB, &sink.placement);
            push(self, &mut instances, simple(&sink.name, ComponentKind::Sink, requests, &sink.placement));
        }
        for batch in &application.batches {
            let requests = requests(&batch.resources, 1.0, 2 * GIB, &batch.placement);
            push(self, &mut instances, simple(&batch.name, ComponentKind::Batch, requests, &batch.placement));
        }
        for model in &application.models {
            if let ModelOrigin::Trained(training) = &model.origin {
                let parallel = f64::from(training.parallel.max(1));
                let requests = Requests {
                    cpu: parallel,
                    memory: ByteSize(2 * GIB * u64::from(training.parallel.max(1))),
                    disk: ByteSize(0),
                    accelerators: training.placement.accelerators.clone(),
                };
                let name = format!("{} (training)", model.name);
                push(self, &mut instances, simple(&name, ComponentKind::Training, requests, &training.placement));
            }
        }
        for service in &application.services {
            let requests = requests(&service.resources, 0.5, 512 * MIB, &service.placement);
            let model = application.models.iter().find(|model| model.name == service.model);
            let latency_target =
                service.slo.latency.iter().min_by(|a, b| a.at_most.0.total_cmp(&b.at_most.0)).map(|target| {
                    LatencyTarget {
                        at_most_ms: target.at_most.0 * 1000.0,
                        percentile: target.percentile,
                        service_time_ms: model.map(estimated_service_time_ms).unwrap_or(1.0),
                    }
                });
            for replica in 0..service.scale.min.max(1) {
                let mut component = simple(&service.name, ComponentKind::Service, requests.clone(), &service.placement);
                component.instance = replica;
                component.latency_target = latency_target.clone();
                push(self, &mut instances, component);
            }
        }
        for tool in &application.tools {
            let requests = requests(&tool.resources, 0.25, 256 * MIB, &tool.placement);
            push(self, &mut instances, simple(&tool.name, ComponentKind::Tool, requests, &tool.placement));
        }

        // Flows: each consumer receives its inputs' records, split evenly over the consumer's instances.
        let mut edges: Vec<(String, String)> = Vec::new();
        for stream in &application.streams {
            edges.push((stream.from.clone(), stream.name.clone()));
            if let Some(join) = &stream.join {
                edges.push((join.with.clone(), stream.name.clone()));
            }
            for service in &stream.calls {
                edges.push((stream.name.clone(), service.clone()));
            }
        }
        for sink in &application.sinks {
            edges.push((sink.from.clone(), sink.name.clone()));
        }
        for service in &application.services {
            if let ServiceInput::Stream { name } = &service.input {
                edges.push((name.clone(), service.name.clone()));
            }
        }
        for (from, to) in edges {
            let (Some(producers), Some(consumers)) = (instances.get(&from), instances.get(&to)) else { continue };
            let (events, size) = rates.get(&from).copied().unwrap_or((1.0, 64));
            // Every producer's rate is its total, shared by its instances (a per-node source's instances each make
            // the per-node rate).
            let per_producer = events / producers.len() as f64;
            let events_per_second = per_producer / consumers.len() as f64;
            let bits = events_per_second * size as f64 * 8.0;
            for producer in producers {
                for consumer in consumers {
                    self.flows.push(Flow {
                        from: *producer,
                        to: *consumer,
                        bits_per_second: bits,
                        events_per_second,
                        record_bytes: size,
                    });
                }
            }
        }
    }
}

fn simple(name: &str, kind: ComponentKind, requests: Requests, placement: &Placement) -> Component {
    Component {
        name: name.to_string(),
        kind,
        instance: 0,
        requests,
        placement: placement.clone(),
        pinned: None,
        latency_target: None,
        near: placement.near.clone(),
    }
}

/// The file's resource overrides, or the defaults for the component kind.
fn requests(resources: &Resources, cpu: f64, memory: u64, placement: &Placement) -> Requests {
    Requests {
        cpu: resources.cpu.unwrap_or(cpu),
        memory: resources.memory.unwrap_or(ByteSize(memory)),
        disk: resources.disk.unwrap_or_default(),
        accelerators: placement.accelerators.clone(),
    }
}

fn record_size(fields: &[Field]) -> u64 {
    16 + fields.iter().map(|field| field.data_type.estimated_size()).sum::<u64>()
}

/// A rough time for one prediction, by the slowest candidate algorithm (the winner is not known before training).
pub fn estimated_service_time_ms(model: &Model) -> f64 {
    let ModelOrigin::Trained(training) = &model.origin else { return 5.0 };
    let largest = |candidate: &Candidate, name: &str, default: f64| match candidate.parameters.get(name) {
        Some(ParameterSpace::Values { values }) => values
            .iter()
            .filter_map(|value| match value {
                Value::Int(number) => Some(*number as f64),
                Value::Float(number) => Some(*number),
                _ => None,
            })
            .fold(default, f64::max),
        Some(ParameterSpace::Range { max, .. }) => *max,
        None => default,
    };
    training
        .candidates
        .iter()
        .map(|candidate| match candidate.algorithm.as_str() {
            "random_forest" => 0.005 * largest(candidate, "trees", 100.0),
            "gradient_boosting" => 0.005 * largest(candidate, "rounds", 100.0),
            "knn" => 2.0,
            "svm" => 1.0,
            "mlp" => 0.5,
            "dbscan" => 1.0,
            _ => 0.05,
        })
        .fold(0.05, f64::max)
}

fn hosts(application: &Application) -> Vec<Host> {
    let mut hosts = Vec::new();
    let host = |name: String, machine: &Machine, pool: Option<(String, u32)>, always_on: bool| Host {
        name,
        tier: machine.tier,
        cpu: machine.cpu,
        memory: machine.memory.0,
        disk: machine.disk.map(|disk| disk.0),
        arch: machine.arch,
        accelerators: machine.accelerators.clone(),
        labels: machine.labels.clone(),
        pool,
        always_on,
        hourly_cost: machine.cost.as_ref().map(|cost| cost.amount).unwrap_or(0.0),
    };
    for node in &application.nodes {
        hosts.push(host(node.name.clone(), &node.machine, None, true));
    }
    for pool in &application.pools {
        for member in 0..pool.max {
            let name = format!("{}-{}", pool.name, member + 1);
            hosts.push(host(name, &pool.machine, Some((pool.name.clone(), member)), member < pool.min));
        }
    }
    hosts
}

/// Why a host can never take a component, whatever else runs there: the placement rules every machine is held to
/// (`stratum_core::placement`, which the control plane uses too), or its capacity. Cheap to produce: the planner
/// asks this for every component and host; the words are only made when a message shows them.
#[derive(Clone, Debug, PartialEq)]
pub enum StaticRejection<'a> {
    /// A placement rule the host breaks (tier, node, pool, labels, architecture, accelerators, private data).
    Rule(Rejection<'a>),
    /// Fewer cores than the component asks for.
    Cores {
        /// The host's cores.
        has: f64,
        /// The component's request.
        wanted: f64,
    },
    /// Less memory than it asks for, in bytes.
    Memory {
        /// The host's memory.
        has: u64,
        /// The component's request.
        wanted: u64,
    },
    /// Less disk than it asks for, in bytes.
    Disk {
        /// The host's disk.
        has: u64,
        /// The component's request.
        wanted: u64,
    },
}

impl std::fmt::Display for StaticRejection<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StaticRejection::Rule(rejection) => rejection.fmt(formatter),
            StaticRejection::Cores { has, wanted } => write!(formatter, "has {has} cores, needs {wanted}"),
            StaticRejection::Memory { has, wanted } => {
                write!(formatter, "has {} memory, needs {}", ByteSize(*has), ByteSize(*wanted))
            }
            StaticRejection::Disk { has, wanted } => {
                write!(formatter, "has {} disk, needs {}", ByteSize(*has), ByteSize(*wanted))
            }
        }
    }
}

/// Why a host can never take a component, whatever else runs there (None: it can).
pub fn static_rejection<'a>(
    host: &Host,
    placement: &'a Placement,
    requests: &'a Requests,
) -> Option<StaticRejection<'a>> {
    let facts = MachineFacts {
        name: &host.name,
        tier: host.tier,
        pool: host.pool.as_ref().map(|(name, _)| name.as_str()),
        labels: &host.labels,
        arch: Some(host.arch),
        accelerators: &host.accelerators,
    };
    if let Some(rejection) = rule_out(&facts, placement, &requests.accelerators, TierRule::Stated) {
        return Some(StaticRejection::Rule(rejection));
    }
    if requests.cpu > host.cpu {
        return Some(StaticRejection::Cores { has: host.cpu, wanted: requests.cpu });
    }
    if requests.memory.0 > host.memory {
        return Some(StaticRejection::Memory { has: host.memory, wanted: requests.memory.0 });
    }
    if requests.disk.0 > 0 && requests.disk.0 > host.disk.unwrap_or(u64::MAX) {
        return Some(StaticRejection::Disk { has: host.disk.unwrap_or(0), wanted: requests.disk.0 });
    }
    None
}
