//! Where each component runs now, given the plan and the agents that are alive — and what each agent must run
//! for that. Pure and level-triggered: the same plan and the same live agents give the same answer, whatever
//! happened before, so the control loop can run it every tick and a restarted control plane gets it right.
//!
//! A component runs on its planned host while that host's agent is alive; until that agent has joined at all it
//! waits (a new cluster fills up without shuffling). When the agent is lost, the component moves to a live agent:
//! the tier a `migrate(TIER)` policy on `node_lost` names for it, otherwise the same tier, then the nearest ones
//! (edge → fog → cloud, fog → cloud → edge, cloud → fog → edge). A per-node
//! source instance stays with its node (it reads that machine's devices). A machine takes only what it has the
//! labels, the architecture, the accelerators and the room for (see [`place`]). When the planned host is back, the component goes
//! back. A component a QoS policy moved to another tier ([`crate::qos::ClusterPolicies`]) runs on a live agent of
//! that tier that can take it, while there is one; a service a `scale_out` policy added machines for runs one more
//! instance on each, on agents that do not run it yet.

use crate::protocol::{Assignment, ModelRef, PathIn, PathOut, PathTo};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use stratum_core::ir::{Accelerator, Action, Application, Arch, Condition, Placement, ServiceInput, Tier};
use stratum_core::placement::{MachineFacts, TierRule, rule_out};
use stratum_core::plan::{Assignment as PlannedAssignment, ComponentKind, Plan};
use stratum_dataplane::remote::{path_name, waiting_path_name};
use stratum_dataplane::transfer::PathKey;

/// An agent as placement sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveAgent {
    /// The agent's name.
    pub name: String,
    /// Its tier.
    pub tier: Tier,
    /// Where other agents send it data.
    pub data_address: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The machine's architecture, as the agent measured it (`x86_64`, `aarch64`, `armv7`).
    pub arch: String,
    /// What it can hold: its node's capacity in the plan, or what the agent measured.
    pub cpu: f64,
    /// Its memory, in bytes.
    pub memory_bytes: u64,
    /// The accelerators its node declares in the application (agents do not measure them).
    pub accelerators: Vec<Accelerator>,
    /// The sha256 of the certificate issued at its latest join, on a cluster with TLS: paths to it take only
    /// that one.
    pub certificate_sha256: Option<String>,
}

/// One placed instance: the component, its instance number, where the plan put it and where it runs now.
#[derive(Clone, Debug, PartialEq)]
pub struct Placed {
    /// The component.
    pub component: String,
    /// Which instance of it (its number among the instances the plan and the policies made).
    pub instance: u32,
    /// The machine the plan put it on.
    pub planned: String,
    /// None when no live agent can take it.
    pub host: Option<String>,
    /// An instance a `scale_out` policy added on a machine beyond the plan's.
    pub added: bool,
}

/// The kinds of component agents run (training runs as tasks handed out separately).
fn run_by_agents(kind: ComponentKind) -> bool {
    !matches!(kind, ComponentKind::Training)
}

fn nearest(tier: Tier) -> [Tier; 3] {
    match tier {
        Tier::Edge => [Tier::Edge, Tier::Fog, Tier::Cloud],
        Tier::Fog => [Tier::Fog, Tier::Cloud, Tier::Edge],
        Tier::Cloud => [Tier::Cloud, Tier::Fog, Tier::Edge],
    }
}

/// The tier a `node_lost` → `migrate(TIER)` policy sends `component` to.
fn migration_tier(application: &Application, component: &str) -> Option<Tier> {
    application.policies.iter().find_map(|policy| match (&policy.condition, &policy.action) {
        (Condition::NodeLost, Action::Migrate { to })
            if policy.targets.is_empty() || policy.targets.iter().any(|target| target == component) =>
        {
            *to
        }
        _ => None,
    })
}

/// Where every instance the agents run is placed now, given the live agents, those that joined once and are lost
/// now, and the tier each component moved by a QoS policy must run on.
///
/// Instances that stay where the plan put them are placed first; those that must move then go, in plan order, to
/// the live agent of the first tier that has one that can take them: it has the labels, the architecture and the
/// accelerators the component asks for, and room for what the plan reserved for it beside what already runs there (its node's
/// capacity in the plan, or what the agent measured). Among several, the one with the most cores left, then the
/// first by name. An instance nothing can take does not run (and says why in the control plane's events).
pub fn place(
    application: &Application,
    plan: &Plan,
    live: &[LiveAgent],
    lost: &[String],
    moved: &BTreeMap<String, Tier>,
    added: &BTreeMap<String, u32>,
) -> Vec<Placed> {
    // Sources bound to their machines' devices: per-node sources and sources pinned to a node.
    let per_node_sources: BTreeSet<&str> = application
        .sources
        .iter()
        .filter(|source| source.rate_per_node || source.placement.node.is_some())
        .map(|source| source.name.as_str())
        .collect();
    // Looked up once per instance: sets and maps, so a pass costs what the fleet holds, not its square.
    let live_names: HashSet<&str> = live.iter().map(|agent| agent.name.as_str()).collect();
    let lost: HashSet<&str> = lost.iter().map(String::as_str).collect();
    let alive = |name: &str| live_names.contains(name);
    let constraints = constraints(application);
    // The pool each of the plan's machines is a member of: an agent of that name is that member.
    let pools: BTreeMap<&str, &str> =
        plan.hosts.iter().filter_map(|host| Some((host.host.as_str(), host.pool.as_deref()?))).collect();
    let assignments: Vec<&PlannedAssignment> =
        plan.assignments.iter().filter(|assignment| run_by_agents(assignment.kind)).collect();
    let mut hosts: Vec<Option<String>> = vec![None; assignments.len()];
    let mut used: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    let reserve = |used: &mut BTreeMap<String, (f64, u64)>, host: &str, assignment: &PlannedAssignment| {
        let entry = used.entry(host.to_string()).or_default();
        entry.0 += assignment.requests.cpu;
        entry.1 += assignment.requests.memory.0;
    };
    // First what stays; what moves is placed around it.
    let mut moving: Vec<(usize, Vec<Tier>)> = Vec::new();
    for (index, assignment) in assignments.iter().enumerate() {
        let pinned = per_node_sources.contains(assignment.component.as_str());
        if let Some(tier) = moved.get(&assignment.component).filter(|tier| **tier != assignment.tier && !pinned) {
            moving.push((index, vec![*tier]));
        } else if alive(&assignment.host) {
            reserve(&mut used, &assignment.host, assignment);
            hosts[index] = Some(assignment.host.clone());
        } else if !pinned && lost.contains(assignment.host.as_str()) {
            let mut tiers: Vec<Tier> = Vec::new();
            tiers.extend(migration_tier(application, &assignment.component));
            tiers.extend(nearest(assignment.tier));
            moving.push((index, tiers));
        }
    }
    let mut chooser = Chooser::new(live);
    for (index, tiers) in moving {
        let assignment = assignments[index];
        let choice = chooser.best(&constraints, assignment, &pools, &used, &tiers, &[]);
        // A policy's move that nothing can take leaves the instance where it was planned, if that machine lives.
        let host = choice.or_else(|| alive(&assignment.host).then(|| assignment.host.clone()));
        if let Some(host) = &host {
            reserve(&mut used, host, assignment);
        }
        hosts[index] = host;
    }
    let mut placed: Vec<Placed> = assignments
        .iter()
        .zip(hosts)
        .map(|(assignment, host)| Placed {
            component: assignment.component.clone(),
            instance: assignment.instance,
            planned: assignment.host.clone(),
            host,
            added: false,
        })
        .collect();
    // Instances a policy added go to machines that do not run the component yet, the nearest tiers first.
    for (component, count) in added {
        let Some(assignment) = assignments.iter().find(|assignment| assignment.component == *component) else {
            continue;
        };
        for _ in 0..*count {
            let hosting: Vec<&str> = placed
                .iter()
                .filter(|placed| placed.component == *component)
                .filter_map(|placed| placed.host.as_deref())
                .collect();
            let host = chooser.best(&constraints, assignment, &pools, &used, &nearest(assignment.tier), &hosting);
            if let Some(host) = &host {
                reserve(&mut used, host, assignment);
            }
            let instance = placed.iter().filter(|placed| placed.component == *component).map(|placed| placed.instance);
            let instance = instance.max().map_or(0, |last| last + 1);
            placed.push(Placed {
                component: component.clone(),
                instance,
                planned: assignment.host.clone(),
                host,
                added: true,
            });
        }
    }
    placed
}

/// A live agent as a candidate for instances that move: the cores it had left when last looked at.
struct Candidate<'a> {
    free: f64,
    name: &'a str,
    agent: usize,
}

impl PartialEq for Candidate<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Candidate<'_> {}

impl PartialOrd for Candidate<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate<'_> {
    /// The most cores left first, then the first by name.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.free.total_cmp(&other.free).then_with(|| other.name.cmp(self.name))
    }
}

/// Chooses agents for the instances that move, over one placement pass: the live agents of each tier in a heap by
/// cores left, so that thousands of instances moving at once (half a fleet lost) cost a few looks each, not a look
/// at every live agent. Cores left only shrink during a pass, so an entry is at most stale high: it is looked at
/// again with what is left now before it is trusted.
struct Chooser<'a> {
    live: &'a [LiveAgent],
    tiers: HashMap<Tier, std::collections::BinaryHeap<Candidate<'a>>>,
}

impl<'a> Chooser<'a> {
    fn new(live: &'a [LiveAgent]) -> Chooser<'a> {
        Chooser { live, tiers: HashMap::new() }
    }

    /// The live agent, of the first of `tiers` that has one, that may take `assignment` by the placement rules the
    /// planner holds it to (`stratum_core::placement`: private data stays on its tier, a pinned node or pool stays
    /// pinned, labels, architecture, accelerators — only the stated tier may give way, to the nearest one) and has
    /// the room for it beside what `used` already holds, and is not one of `excluded`; the one with the most cores
    /// left, then the first by name.
    fn best(
        &mut self,
        constraints: &HashMap<&str, &Placement>,
        assignment: &PlannedAssignment,
        pools: &BTreeMap<&str, &str>,
        used: &BTreeMap<String, (f64, u64)>,
        tiers: &[Tier],
        excluded: &[&str],
    ) -> Option<String> {
        let unplaced = Placement::default();
        let wanted = constraints.get(assignment.component.as_str()).copied().unwrap_or(&unplaced);
        let live = self.live;
        let free = |agent: &LiveAgent| agent.cpu - used.get(&agent.name).map_or(0.0, |(cpu, _)| *cpu);
        let fits = |agent: &LiveAgent| {
            let (cpu, memory) = used.get(&agent.name).copied().unwrap_or_default();
            let facts = MachineFacts {
                name: &agent.name,
                tier: agent.tier,
                pool: pools.get(agent.name.as_str()).copied(),
                labels: &agent.labels,
                arch: Arch::from_name(&agent.arch),
                accelerators: &agent.accelerators,
            };
            rule_out(&facts, wanted, &wanted.accelerators, TierRule::MayMove).is_none()
                && cpu + assignment.requests.cpu <= agent.cpu + 1e-9
                && memory + assignment.requests.memory.0 <= agent.memory_bytes
        };
        for tier in tiers {
            let heap = self.tiers.entry(*tier).or_insert_with(|| {
                let of_tier = live.iter().enumerate().filter(|(_, agent)| agent.tier == *tier);
                of_tier.map(|(at, agent)| Candidate { free: free(agent), name: &agent.name, agent: at }).collect()
            });
            let mut passed = Vec::new();
            let mut chosen = None;
            while let Some(mut top) = heap.pop() {
                let agent = &live[top.agent];
                let now = free(agent);
                if now.to_bits() != top.free.to_bits() {
                    // Something was placed on it since: it goes back with what it has left now.
                    top.free = now;
                    heap.push(top);
                    continue;
                }
                let eligible = !excluded.contains(&agent.name.as_str()) && fits(agent);
                if eligible {
                    chosen = Some(agent.name.clone());
                }
                passed.push(top);
                if chosen.is_some() {
                    break;
                }
            }
            heap.extend(passed);
            if chosen.is_some() {
                return chosen;
            }
        }
        None
    }
}

/// Where each component asks to run: its placement constraints in the application, by component.
fn constraints(application: &Application) -> HashMap<&str, &Placement> {
    let sources = application.sources.iter().map(|item| (item.name.as_str(), &item.placement));
    let streams = application.streams.iter().map(|item| (item.name.as_str(), &item.placement));
    let sinks = application.sinks.iter().map(|item| (item.name.as_str(), &item.placement));
    let services = application.services.iter().map(|item| (item.name.as_str(), &item.placement));
    let batches = application.batches.iter().map(|item| (item.name.as_str(), &item.placement));
    let tools = application.tools.iter().map(|item| (item.name.as_str(), &item.placement));
    sources.chain(streams).chain(sinks).chain(services).chain(batches).chain(tools).collect()
}

/// Calls `found` with the service of every `predict(service)` in an expression.
fn predicted_services(expr: &stratum_core::ir::Expr, found: &mut dyn FnMut(&str)) {
    if let Some(service) = expr.predicted_service() {
        found(service);
    }
    expr.children().into_iter().for_each(|child| predicted_services(child, found));
}

/// What each live agent runs: its components, the paths into and out of it, the models it loads, and its part of
/// the application (what it runs and its neighbours; see `Index::part`). `model_files` gives (version, sha256 of
/// the artifact file) of each model in the control plane's store; `path_secret` is the control plane's secret that
/// each path's key is derived from.
/// Components in `held` are placed but wait (for their state, handed over by the agent they leave): their agent
/// does not run them yet, and takes no path that only they read, so what their producers send waits in the
/// producers' logs.
pub fn assignments(
    application: &Application,
    version: u32,
    placed: &[Placed],
    live: &[LiveAgent],
    model_files: &BTreeMap<String, (u32, String)>,
    path_secret: &[u8],
    held: &BTreeSet<String>,
) -> BTreeMap<String, Assignment> {
    let index = Index::of(application);
    let shell = index.shell();
    let mut components: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut inputs: BTreeMap<&str, BTreeSet<PathIn>> = BTreeMap::new();
    // By producer host, then by path: the consumers a path leads to gather in its one `PathOut`.
    let mut outputs: BTreeMap<String, BTreeMap<String, PathOut>> = BTreeMap::new();
    for agent in live {
        components.entry(&agent.name).or_default();
    }
    for placed in placed.iter().filter(|placed| !held.contains(&placed.component)) {
        if let Some(host) = &placed.host {
            components.entry(host.as_str()).or_default().insert(placed.component.clone());
        }
    }
    let addresses: HashMap<&str, &LiveAgent> = live.iter().map(|agent| (agent.name.as_str(), agent)).collect();
    let mut hosts: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for placed in placed {
        let entry = hosts.entry(placed.component.as_str()).or_default();
        if let Some(host) = placed.host.as_deref() {
            entry.insert(host);
        }
    }
    let hosts_of = |component: &str| hosts.get(component).cloned().unwrap_or_default();
    let mut lead = |producer_host: &str, path: String, producer: &str, consumer: &str, to: Option<PathTo>| {
        let output = outputs
            .entry(producer_host.to_string())
            .or_default()
            .entry(path.clone())
            .or_insert_with(|| PathOut { path, producer: producer.to_string(), consumers: Vec::new(), to });
        if !output.consumers.iter().any(|known| known == consumer) {
            output.consumers.push(consumer.to_string());
            output.consumers.sort();
        }
    };
    // Every consumer instance reads every instance of its producers; across hosts that is a path.
    for consumer in placed.iter().filter(|placed| placed.host.is_some()) {
        let consumer_host = consumer.host.as_deref().unwrap_or_default();
        for producer in index.inputs(&consumer.component) {
            for producer_host in hosts_of(producer).into_iter().filter(|host| *host != consumer_host) {
                let Some(agent) = addresses.get(consumer_host) else { continue };
                let path = path_name(producer, producer_host, consumer_host);
                let key = PathKey::derive_hex(path_secret, &path);
                if !held.contains(&consumer.component) {
                    inputs.entry(consumer_host).or_default().insert(PathIn {
                        path: path.clone(),
                        producer: producer.clone(),
                        key: key.clone(),
                    });
                }
                let to = PathTo {
                    agent: consumer_host.to_string(),
                    address: agent.data_address.clone(),
                    key,
                    certificate_sha256: agent.certificate_sha256.clone(),
                };
                lead(producer_host, path, producer, &consumer.component, Some(to));
            }
        }
    }
    // A consumer that runs nowhere (its machine has not joined, or none may take it) has what its producers make
    // kept for it on their machines, in a waiting path each: what a source acknowledged reaches it once it runs.
    let nowhere: BTreeSet<&str> = placed
        .iter()
        .map(|placed| placed.component.as_str())
        .filter(|component| hosts_of(component).is_empty())
        .collect();
    for consumer in nowhere {
        for producer in index.inputs(consumer) {
            for producer_host in hosts_of(producer) {
                lead(producer_host, waiting_path_name(producer, producer_host, consumer), producer, consumer, None);
            }
        }
    }
    components
        .into_iter()
        .map(|(agent, components)| {
            let models: Vec<ModelRef> = index
                .models(&components)
                .into_iter()
                .filter_map(|model| {
                    model_files.get(&model).map(|(version, sha256)| ModelRef {
                        name: model,
                        version: *version,
                        sha256: sha256.clone(),
                    })
                })
                .collect();
            let inputs: Vec<PathIn> = inputs.remove(agent).unwrap_or_default().into_iter().collect();
            let outputs: Vec<PathOut> = outputs.remove(agent).unwrap_or_default().into_values().collect();
            let components: Vec<String> = components.into_iter().collect();
            // The key covers what the agent runs — its components as the application defines them, its paths and
            // models — not the application's version: a new version restarts only the agents whose part changed.
            let definitions: Vec<String> = components.iter().map(|name| index.definition(name)).collect();
            let key = stratum_ml::data::sha256_hex(
                serde_json::to_string(&(&application.name, &definitions, &inputs, &outputs, &models))
                    .unwrap_or_default()
                    .as_bytes(),
            );
            let part = index.part(&shell, &components, agent);
            let assignment = Assignment { key, application: Some(part), version, components, inputs, outputs, models };
            (agent.to_string(), assignment)
        })
        .collect()
}

/// Where a component is defined: its list in the application, and its place there.
#[derive(Clone, Copy)]
enum Item {
    Source(usize),
    Stream(usize),
    Sink(usize),
    Service(usize),
    Batch(usize),
    Tool(usize),
}

/// The application's components by name, made once per placement pass (or per view): how each is defined, what
/// it reads and what reads it. With it a pass costs what the components and their paths number, not their square
/// — a city's application declares thousands of machines and a few components on each.
pub struct Index<'a> {
    application: &'a Application,
    items: HashMap<&'a str, Item>,
    inputs: HashMap<&'a str, Vec<String>>,
    consumers: HashMap<&'a str, Vec<&'a str>>,
    nodes: HashMap<&'a str, usize>,
}

impl<'a> Index<'a> {
    /// The index of `application`.
    pub fn of(application: &'a Application) -> Index<'a> {
        let mut items = HashMap::new();
        items.extend(application.sources.iter().enumerate().map(|(at, item)| (item.name.as_str(), Item::Source(at))));
        items.extend(application.streams.iter().enumerate().map(|(at, item)| (item.name.as_str(), Item::Stream(at))));
        items.extend(application.sinks.iter().enumerate().map(|(at, item)| (item.name.as_str(), Item::Sink(at))));
        items.extend(application.services.iter().enumerate().map(|(at, item)| (item.name.as_str(), Item::Service(at))));
        items.extend(application.batches.iter().enumerate().map(|(at, item)| (item.name.as_str(), Item::Batch(at))));
        items.extend(application.tools.iter().enumerate().map(|(at, item)| (item.name.as_str(), Item::Tool(at))));
        let mut inputs: HashMap<&str, Vec<String>> = HashMap::new();
        for stream in &application.streams {
            let mut from = vec![stream.from.clone()];
            from.extend(stream.join.as_ref().map(|join| join.with.clone()));
            inputs.insert(&stream.name, from);
        }
        for sink in &application.sinks {
            inputs.entry(&sink.name).or_insert_with(|| vec![sink.from.clone()]);
        }
        for service in &application.services {
            if let ServiceInput::Stream { name } = &service.input {
                inputs.entry(&service.name).or_insert_with(|| vec![name.clone()]);
            }
        }
        let mut consumers: HashMap<&str, Vec<&str>> = HashMap::new();
        for (consumer, producers) in &inputs {
            for producer in producers {
                if let Some((producer, _)) = items.get_key_value(producer.as_str()) {
                    consumers.entry(*producer).or_default().push(*consumer);
                }
            }
        }
        let nodes = application.nodes.iter().enumerate().map(|(at, node)| (node.name.as_str(), at)).collect();
        Index { application, items, inputs, consumers, nodes }
    }

    /// The components whose records `consumer` reads.
    pub fn inputs(&self, consumer: &str) -> &[String] {
        self.inputs.get(consumer).map_or(&[], Vec::as_slice)
    }

    /// A component as the application defines it, as JSON (what changes when the component changes).
    pub fn definition(&self, name: &str) -> String {
        let application = self.application;
        let json = match self.items.get(name) {
            Some(Item::Source(at)) => serde_json::to_string(&application.sources[*at]),
            Some(Item::Stream(at)) => serde_json::to_string(&application.streams[*at]),
            Some(Item::Sink(at)) => serde_json::to_string(&application.sinks[*at]),
            Some(Item::Service(at)) => serde_json::to_string(&application.services[*at]),
            Some(Item::Batch(at)) => serde_json::to_string(&application.batches[*at]),
            Some(Item::Tool(at)) => serde_json::to_string(&application.tools[*at]),
            None => return String::new(),
        };
        json.unwrap_or_default()
    }

    /// The services the streams among `components` call with `predict`.
    fn predicted(&self, components: &[String]) -> BTreeSet<&'a str> {
        let mut services = BTreeSet::new();
        for name in components {
            let Some(Item::Stream(at)) = self.items.get(name.as_str()) else { continue };
            for computed in &self.application.streams[*at].select {
                predicted_services(&computed.expr, &mut |service| {
                    if let Some((service, Item::Service(_))) = self.items.get_key_value(service) {
                        services.insert(*service);
                    }
                });
            }
        }
        services
    }

    /// The models the components on one agent load: its services', and those of the services its streams call.
    fn models(&self, components: &BTreeSet<String>) -> BTreeSet<String> {
        let listed: Vec<String> = components.iter().cloned().collect();
        let services = components.iter().map(String::as_str).chain(self.predicted(&listed));
        services
            .filter_map(|name| match self.items.get(name) {
                Some(Item::Service(at)) => Some(self.application.services[*at].model.clone()),
                _ => None,
            })
            .collect()
    }

    /// The application without its machines and components (made once per pass): what every part holds whole.
    fn shell(&self) -> Application {
        let application = self.application;
        // Cloned field by field: the machines and components, which grow with the fleet, are not copied at all.
        Application {
            ir_version: application.ir_version,
            name: application.name.clone(),
            title: application.title.clone(),
            nodes: Vec::new(),
            pools: application.pools.clone(),
            links: application.links.clone(),
            schemas: application.schemas.clone(),
            sources: Vec::new(),
            streams: Vec::new(),
            sinks: Vec::new(),
            datasets: application.datasets.clone(),
            batches: Vec::new(),
            models: application.models.clone(),
            services: Vec::new(),
            tools: Vec::new(),
            dashboards: application.dashboards.clone(),
            policies: application.policies.clone(),
            objective: application.objective.clone(),
        }
    }

    /// The part of the application an agent that runs `components` needs: those components, what they read and
    /// what reads them (a source's generator shapes its records by the filters that read them), the tables its
    /// batches read, the services its streams call, and of the machines only its own — or, for a per-node
    /// source, those of its tier, which set its rate as on one machine. Schemas, models, datasets, links, pools,
    /// dashboards and policies come whole, from `shell` (see [`Index::shell`]): they do not grow with the fleet. What an agent is sent thus follows
    /// what it runs, not the size of the application, which for a city declares thousands of machines.
    fn part(&self, shell: &Application, components: &[String], agent: &str) -> Application {
        let application = self.application;
        let mut wanted: BTreeSet<&str> = BTreeSet::new();
        for name in components {
            let Some((name, item)) = self.items.get_key_value(name.as_str()) else { continue };
            wanted.insert(name);
            wanted.extend(self.inputs(name).iter().map(String::as_str));
            wanted.extend(self.consumers.get(name).into_iter().flatten().copied());
            if let Item::Batch(at) = item {
                wanted.extend(application.batches[*at].reads.iter().map(String::as_str));
            }
        }
        wanted.extend(self.predicted(components));
        let mut at: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for name in &wanted {
            let (list, place) = match self.items.get(name) {
                Some(Item::Source(place)) => ("sources", place),
                Some(Item::Stream(place)) => ("streams", place),
                Some(Item::Sink(place)) => ("sinks", place),
                Some(Item::Service(place)) => ("services", place),
                Some(Item::Batch(place)) => ("batches", place),
                Some(Item::Tool(place)) => ("tools", place),
                None => continue,
            };
            at.entry(list).or_default().push(*place);
        }
        // In the application's order: the part reads as the file does.
        let pick = |list: &str| -> Vec<usize> {
            let mut places = at.get(list).cloned().unwrap_or_default();
            places.sort_unstable();
            places
        };
        let mut nodes: BTreeSet<usize> = self.nodes.get(agent).copied().into_iter().collect();
        for place in pick("sources") {
            let source = &application.sources[place];
            if source.rate_per_node && components.contains(&source.name) {
                let tier = source.placement.inferred_tier.or(source.placement.tier);
                let of_tier = application.nodes.iter().enumerate().filter(|(_, node)| Some(node.machine.tier) == tier);
                nodes.extend(of_tier.map(|(place, _)| place));
            }
        }
        Application {
            nodes: nodes.into_iter().map(|place| application.nodes[place].clone()).collect(),
            sources: pick("sources").into_iter().map(|place| application.sources[place].clone()).collect(),
            streams: pick("streams").into_iter().map(|place| application.streams[place].clone()).collect(),
            sinks: pick("sinks").into_iter().map(|place| application.sinks[place].clone()).collect(),
            services: pick("services").into_iter().map(|place| application.services[place].clone()).collect(),
            batches: pick("batches").into_iter().map(|place| application.batches[place].clone()).collect(),
            tools: pick("tools").into_iter().map(|place| application.tools[place].clone()).collect(),
            ..shell.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = include_str!("../test_data/cluster.stratum");

    fn planned() -> (Application, Plan) {
        let checked = stratum_lang::check_text("cluster.stratum", APP);
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        let plan = stratum_planner::plan(&checked).plan.expect("a plan");
        (checked.application, plan)
    }

    fn agent(name: &str, tier: Tier) -> LiveAgent {
        LiveAgent {
            name: name.into(),
            tier,
            data_address: format!("{name}:9000"),
            labels: BTreeMap::new(),
            arch: "x86_64".into(),
            cpu: 4.0,
            memory_bytes: 8 << 30,
            accelerators: Vec::new(),
            certificate_sha256: None,
        }
    }

    fn host_of<'a>(placed: &'a [Placed], component: &str) -> Option<&'a str> {
        placed.iter().find(|placed| placed.component == component).and_then(|placed| placed.host.as_deref())
    }

    #[test]
    fn a_stream_that_calls_a_service_loads_its_model_wherever_it_runs() {
        // The checker lowers `predict(flags)` to a call with the service's name as a string: a stream moved
        // away from its service's machine must still fetch the model (it once ran nowhere for want of it).
        let text = format!(
            "{APP}\nstream verdicts {{\n  from = counts\n  select {{\n    busy = predict(flags)\n  }}\n  on = cloud\n}}\nsink verdicts_kept: jsonl {{ from = verdicts  path = \"out/v.jsonl\"  on = cloud }}\n"
        );
        let checked = stratum_lang::check_text("cluster.stratum", &text);
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        let models = Index::of(&checked.application).models(&BTreeSet::from(["verdicts".to_string()]));
        assert_eq!(models, BTreeSet::from(["busy".to_string()]));
    }

    #[test]
    fn private_data_never_leaves_its_tier_when_its_machine_is_lost() {
        // `masked` reads the private plate: the privacy check passed because it runs on the edge, so losing the
        // edge machine leaves it waiting, even with a policy that names the fog; `tagged` reads nothing private
        // and moves.
        let text = r#"app private_move
node edge1 { tier = edge  cpu = 2  memory = 2 GiB }
node edge2 { tier = edge  cpu = 2  memory = 2 GiB }
node fog1 { tier = fog  cpu = 4  memory = 8 GiB }
schema Reading { sensor: string  ts: timestamp  plate: string private }
source readings: generator { schema = Reading  rate = 10/s  on = edge1 }
stream masked { from = readings  select { sensor = sensor  vehicle = hash(plate) }  on = edge }
stream tagged { from = readings  select { sensor = sensor }  on = edge }
sink kept: jsonl { from = masked  path = "out/masked.jsonl"  on = fog }
sink tags: jsonl { from = tagged  path = "out/tagged.jsonl"  on = fog }
policy survive { target = [masked, tagged]  when = node_lost  then = migrate(fog) }
"#;
        let checked = stratum_lang::check_text("private_move.stratum", text);
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        let plan = stratum_planner::plan(&checked).plan.expect("a plan");
        let application = checked.application;
        let planned_on = |component: &str| {
            plan.assignments.iter().find(|assignment| assignment.component == component).unwrap().host.clone()
        };
        let edge = planned_on("masked");
        assert_eq!(planned_on("tagged"), edge, "both run beside their source");
        let other_edge = if edge == "edge1" { "edge2" } else { "edge1" };
        let fog_only = [agent("fog1", Tier::Fog)];
        let lost = [edge.clone(), other_edge.to_string()];
        let placed = place(&application, &plan, &fog_only, &lost, &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(host_of(&placed, "tagged"), Some("fog1"), "what reads nothing private moves");
        assert_eq!(host_of(&placed, "masked"), None, "private data stays on the edge: it waits");
        // Another edge machine may take it: the rule is the tier, not the machine.
        let with_other_edge = [agent("fog1", Tier::Fog), agent(other_edge, Tier::Edge)];
        let placed = place(&application, &plan, &with_other_edge, &[edge], &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(host_of(&placed, "masked"), Some(other_edge));
    }

    #[test]
    fn components_run_where_planned_and_move_when_their_host_is_lost() {
        let (application, plan) = planned();
        let all = [agent("cloud1", Tier::Cloud), agent("edge1", Tier::Edge), agent("fog1", Tier::Fog)];
        let placed = place(&application, &plan, &all, &[], &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(host_of(&placed, "counts"), Some("fog1"));
        let assigned = assignments(&application, 1, &placed, &all, &BTreeMap::new(), b"secret", &BTreeSet::new());
        assert_eq!(assigned["fog1"].components, ["counts", "flags"]);
        // The service on the fog loads its model; the model's file hash comes from the control plane's store.
        let models = BTreeMap::from([("busy".to_string(), (3, "abc".to_string()))]);
        let with_models = assignments(&application, 1, &placed, &all, &models, b"secret", &BTreeSet::new());
        assert_eq!(with_models["fog1"].models, [ModelRef { name: "busy".into(), version: 3, sha256: "abc".into() }]);
        assert!(with_models["edge1"].models.is_empty());
        assert_eq!(assigned["edge1"].outputs[0].path, "readings@edge1->fog1");
        assert_eq!(assigned["edge1"].outputs[0].to.as_ref().map(|to| to.address.as_str()), Some("fog1:9000"));
        assert_eq!(assigned["edge1"].outputs[0].consumers, ["counts"]);
        assert_eq!(assigned["cloud1"].inputs[0].path, "counts@fog1->cloud1");

        // The fog node is lost: `counts` migrates to the cloud, as its policy says, and the edge sends there.
        let without_fog = [agent("cloud1", Tier::Cloud), agent("edge1", Tier::Edge)];
        let placed =
            place(&application, &plan, &without_fog, &["fog1".to_string()], &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(host_of(&placed, "counts"), Some("cloud1"));
        let moved = assignments(&application, 1, &placed, &without_fog, &BTreeMap::new(), b"secret", &BTreeSet::new());
        assert_eq!(moved["cloud1"].components, ["counts", "flags", "kept", "tally"]);
        assert_eq!(moved["edge1"].components, ["beacon", "readings"]);
        assert!(moved["cloud1"].outputs.is_empty());
        assert_eq!(moved["edge1"].outputs[0].path, "readings@edge1->cloud1");
        assert_ne!(moved["edge1"].key, assigned["edge1"].key);

        // Back: the same assignments as at first (level-triggered).
        let again = assignments(
            &application,
            1,
            &place(&application, &plan, &all, &[], &BTreeMap::new(), &BTreeMap::new()),
            &all,
            &BTreeMap::new(),
            b"secret",
            &BTreeSet::new(),
        );
        assert_eq!(again, assigned);

        // A stream waiting for its state (handed over by the agent it leaves): its agent does not run it yet and
        // takes no path only it reads, while its producer already sends there (what it sends waits in its log).
        let held = assignments(
            &application,
            1,
            &place(&application, &plan, &all, &[], &BTreeMap::new(), &BTreeMap::new()),
            &all,
            &BTreeMap::new(),
            b"secret",
            &BTreeSet::from(["counts".into()]),
        );
        assert!(!held["fog1"].components.contains(&"counts".to_string()));
        assert!(held["fog1"].inputs.iter().all(|input| input.producer != "readings"), "{:?}", held["fog1"].inputs);
        assert_eq!(held["edge1"].outputs, assigned["edge1"].outputs);
    }

    #[test]
    fn each_agent_is_sent_its_part_of_the_application_and_no_more() {
        let (application, plan) = planned();
        let all = [agent("cloud1", Tier::Cloud), agent("edge1", Tier::Edge), agent("fog1", Tier::Fog)];
        let placed = place(&application, &plan, &all, &[], &BTreeMap::new(), &BTreeMap::new());
        let assigned = assignments(&application, 1, &placed, &all, &BTreeMap::new(), b"secret", &BTreeSet::new());
        let names = |items: Vec<&str>| items.into_iter().map(str::to_string).collect::<Vec<_>>();
        let part = |agent: &str| assigned[agent].application.clone().expect("a part");
        // The edge runs the source and the tool: it learns of the stream that reads the source (its filters
        // shape generated records), of its own machine, and of nothing else.
        let edge = part("edge1");
        assert_eq!(edge.nodes.iter().map(|node| node.name.as_str()).collect::<Vec<_>>(), ["edge1"]);
        assert_eq!(edge.sources.iter().map(|item| item.name.as_str()).collect::<Vec<_>>(), ["readings"]);
        assert_eq!(edge.streams.iter().map(|item| item.name.as_str()).collect::<Vec<_>>(), ["counts"]);
        assert!(edge.sinks.is_empty() && edge.services.is_empty() && edge.batches.is_empty());
        assert_eq!(edge.tools.iter().map(|item| item.name.clone()).collect::<Vec<_>>(), names(vec!["beacon"]));
        // The fog runs the stream and the service: what they read and what reads them.
        let fog = part("fog1");
        assert_eq!(fog.streams.iter().map(|item| item.name.as_str()).collect::<Vec<_>>(), ["counts"]);
        assert_eq!(fog.sources.iter().map(|item| item.name.as_str()).collect::<Vec<_>>(), ["readings"]);
        assert_eq!(fog.sinks.iter().map(|item| item.name.as_str()).collect::<Vec<_>>(), ["kept"]);
        assert_eq!(fog.services.iter().map(|item| item.name.as_str()).collect::<Vec<_>>(), ["flags"]);
        // The cloud's batch reads the sink's table: the sink comes with it.
        let cloud = part("cloud1");
        assert_eq!(cloud.batches.iter().map(|item| item.name.as_str()).collect::<Vec<_>>(), ["tally"]);
        assert!(cloud.sinks.iter().any(|item| item.name == "kept"));
        // What every part holds whole is the application's.
        for part in [&edge, &fog, &cloud] {
            assert_eq!(part.schemas, application.schemas);
            assert_eq!(part.models, application.models);
            assert_eq!(part.name, application.name);
        }
        // A part is smaller than the whole: what an agent is sent follows what it runs.
        let size = |application: &Application| serde_json::to_string(application).unwrap().len();
        assert!(size(&edge) < size(&application), "{} of {}", size(&edge), size(&application));
    }

    #[test]
    fn a_new_version_restarts_only_the_agents_whose_part_changed() {
        let (application, plan) = planned();
        let all = [agent("cloud1", Tier::Cloud), agent("edge1", Tier::Edge), agent("fog1", Tier::Fog)];
        let first = assignments(
            &application,
            1,
            &place(&application, &plan, &all, &[], &BTreeMap::new(), &BTreeMap::new()),
            &all,
            &BTreeMap::new(),
            b"secret",
            &BTreeSet::new(),
        );
        // Version 2 changes only the cloud's sink.
        let mut changed = application.clone();
        let kept = changed.sinks.iter_mut().find(|sink| sink.name == "kept").unwrap();
        kept.kind = stratum_core::ir::SinkKind::File {
            path: "out/other.jsonl".into(),
            format: stratum_core::ir::FileFormat::Jsonl,
            partition_by: Vec::new(),
        };
        let second = assignments(
            &changed,
            2,
            &place(&changed, &plan, &all, &[], &BTreeMap::new(), &BTreeMap::new()),
            &all,
            &BTreeMap::new(),
            b"secret",
            &BTreeSet::new(),
        );
        assert_ne!(second["cloud1"].key, first["cloud1"].key);
        assert_eq!(second["fog1"].key, first["fog1"].key);
        assert_eq!(second["edge1"].key, first["edge1"].key);
    }

    #[test]
    fn a_component_a_policy_moved_runs_on_its_new_tier_while_an_agent_there_lives() {
        let (application, plan) = planned();
        let all = [agent("cloud1", Tier::Cloud), agent("edge1", Tier::Edge), agent("fog1", Tier::Fog)];
        let moved = BTreeMap::from([("counts".to_string(), Tier::Cloud), ("readings".to_string(), Tier::Fog)]);
        let placed = place(&application, &plan, &all, &[], &moved, &BTreeMap::new());
        assert_eq!(host_of(&placed, "counts"), Some("cloud1"));
        assert_eq!(host_of(&placed, "readings"), Some("edge1"), "a source bound to its machine stays");
        assert_eq!(host_of(&placed, "flags"), Some("fog1"));
        // No agent of that tier: it stays where the plan put it.
        let without_cloud = [agent("edge1", Tier::Edge), agent("fog1", Tier::Fog)];
        assert_eq!(
            host_of(&place(&application, &plan, &without_cloud, &[], &moved, &BTreeMap::new()), "counts"),
            Some("fog1")
        );
    }

    /// Instances a `scale_out` policy added go to agents that do not run the service yet, the same tier first, and
    /// each gets the service and its model.
    #[test]
    fn added_instances_go_to_other_machines_nearest_first() {
        let (application, plan) = planned();
        let all = [agent("cloud1", Tier::Cloud), agent("edge1", Tier::Edge), agent("fog1", Tier::Fog)];
        let added = BTreeMap::from([("flags".to_string(), 2)]);
        let placed = place(&application, &plan, &all, &[], &BTreeMap::new(), &added);
        let flags: Vec<(u32, Option<&str>, bool)> = placed
            .iter()
            .filter(|placed| placed.component == "flags")
            .map(|placed| (placed.instance, placed.host.as_deref(), placed.added))
            .collect();
        // The fog has no second machine: the cloud is nearest after it, then the edge.
        assert_eq!(flags, [(0, Some("fog1"), false), (1, Some("cloud1"), true), (2, Some("edge1"), true)]);
        let assigned = assignments(
            &application,
            1,
            &placed,
            &all,
            &BTreeMap::from([("busy".to_string(), (1, "sha".to_string()))]),
            b"secret",
            &BTreeSet::new(),
        );
        assert!(assigned["cloud1"].components.contains(&"flags".to_string()));
        assert!(assigned["cloud1"].models.iter().any(|model| model.name == "busy"));
        // More than there are machines: the rest does not run.
        let placed =
            place(&application, &plan, &all, &[], &BTreeMap::new(), &BTreeMap::from([("flags".to_string(), 3)]));
        assert_eq!(placed.iter().filter(|placed| placed.component == "flags" && placed.host.is_none()).count(), 1);
    }

    #[test]
    fn a_lost_machine_s_components_go_only_where_they_fit() {
        let (application, plan) = planned();
        let reserved = |component: &str| {
            plan.assignments.iter().find(|assignment| assignment.component == component).unwrap().requests.cpu
        };
        let (counts, flags) = (reserved("counts"), reserved("flags"));
        let on_cloud: f64 = plan
            .assignments
            .iter()
            .filter(|assignment| assignment.host == "cloud1" && run_by_agents(assignment.kind))
            .map(|assignment| assignment.requests.cpu)
            .sum();
        // The cloud has room for `counts` but not for `flags` too.
        let mut cloud = agent("cloud1", Tier::Cloud);
        cloud.cpu = on_cloud + counts + flags / 2.0;
        let live = [cloud.clone(), agent("edge1", Tier::Edge)];
        let placed = place(&application, &plan, &live, &["fog1".to_string()], &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(host_of(&placed, "counts"), Some("cloud1"));
        assert_eq!(host_of(&placed, "flags"), Some("edge1"), "the next tier that has room");
        // A second cloud machine with room, but without a label `flags` asks for: not there either.
        let mut labelled = application.clone();
        let service = labelled.services.iter_mut().find(|service| service.name == "flags").unwrap();
        service.placement.labels.insert("gpu".into(), "yes".into());
        let big = agent("cloud2", Tier::Cloud);
        let live = [cloud, big, agent("edge1", Tier::Edge)];
        let placed = place(&labelled, &plan, &live, &["fog1".to_string()], &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(host_of(&placed, "flags"), None, "nothing has the label: it does not run");
        assert_eq!(host_of(&placed, "counts"), Some("cloud2"), "the machine with the most cores left");
    }

    /// Half a fleet lost at once: every instance that moves goes, in plan order, to the live agent with the most
    /// cores left at its turn (then the first by name), and no agent takes more than it has.
    #[test]
    fn half_a_fleet_lost_at_once_moves_each_instance_to_the_agent_with_the_most_cores_left() {
        let mut text = String::from("app fleet\nschema Reading { sensor: string  value: float }\n");
        for index in 0..40 {
            let cpu = 2 + index % 3;
            text.push_str(&format!("node edge{index} {{ tier = edge  cpu = {cpu}  memory = 4 GiB }}\n"));
            text.push_str(&format!(
                "source readings{index}: generator {{ schema = Reading  rate = 1/s  on = edge{index} }}\n\
                 stream high{index} {{ from = readings{index}  where = value > 0.5  on = edge  near = readings{index}  cpu = 0.5 }}\n\
                 sink kept{index}: jsonl {{ from = high{index}  path = \"out/{index}.jsonl\"  on = edge  near = high{index}  cpu = 0.25 }}\n"
            ));
        }
        let checked = stratum_lang::check_text("fleet.stratum", &text);
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics.first());
        let plan = stratum_planner::plan(&checked).plan.unwrap();
        let application = checked.application;
        let cores = |name: &str| plan.hosts.iter().find(|host| host.host == name).unwrap().cpu_capacity;
        let live: Vec<LiveAgent> = (0..40)
            .filter(|index| index % 2 == 0)
            .map(|index| LiveAgent {
                cpu: cores(&format!("edge{index}")),
                ..agent(&format!("edge{index}"), Tier::Edge)
            })
            .collect();
        let lost: Vec<String> = (0..40).filter(|index| index % 2 == 1).map(|index| format!("edge{index}")).collect();
        let placed = place(&application, &plan, &live, &lost, &BTreeMap::new(), &BTreeMap::new());
        // What stays reserves first; then the moving instances in plan order, each by the rule.
        let requests = |placed: &Placed| {
            plan.assignments.iter().find(|assignment| assignment.component == placed.component).unwrap().requests.cpu
        };
        let mut used: BTreeMap<&str, f64> = BTreeMap::new();
        for staying in placed.iter().filter(|placed| placed.host.as_deref() == Some(placed.planned.as_str())) {
            *used.entry(staying.host.as_deref().unwrap()).or_default() += requests(staying);
        }
        let moved: Vec<&Placed> = placed.iter().filter(|placed| lost.contains(&placed.planned)).collect();
        assert_eq!(moved.len(), 60, "the lost machines' 20 sources stay lost with them; 40 filters and sinks move");
        let mut moving = 0;
        for instance in moved {
            if instance.component.starts_with("readings") {
                assert_eq!(instance.host, None, "a source stays with its machine");
                continue;
            }
            moving += 1;
            let wanted = requests(instance);
            let best = live
                .iter()
                .filter(|agent| used.get(agent.name.as_str()).copied().unwrap_or(0.0) + wanted <= agent.cpu + 1e-9)
                .max_by(|a, b| {
                    let free = |agent: &LiveAgent| agent.cpu - used.get(agent.name.as_str()).copied().unwrap_or(0.0);
                    free(a).total_cmp(&free(b)).then_with(|| b.name.cmp(&a.name))
                })
                .map(|agent| agent.name.as_str());
            assert_eq!(instance.host.as_deref(), best, "{}", instance.component);
            if let Some(host) = best {
                *used.entry(host).or_default() += wanted;
            }
        }
        assert_eq!(moving, 40);
        for agent in &live {
            assert!(used.get(agent.name.as_str()).copied().unwrap_or(0.0) <= agent.cpu + 1e-9, "{}", agent.name);
        }
    }

    #[test]
    fn components_wait_for_machines_that_never_joined_and_move_off_lost_ones() {
        let (application, plan) = planned();
        let fog_only = [agent("fog1", Tier::Fog)];
        // A new cluster where only the fog has joined: the others' components wait, nothing moves.
        let placed = place(&application, &plan, &fog_only, &[], &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(host_of(&placed, "counts"), Some("fog1"));
        assert_eq!(host_of(&placed, "kept"), None);
        assert_eq!(host_of(&placed, "readings"), None);
        // The cloud and the edge joined once and are lost: `kept` moves to the fog; `readings` stays with its node.
        let placed = place(
            &application,
            &plan,
            &fog_only,
            &["cloud1".to_string(), "edge1".to_string()],
            &BTreeMap::new(),
            &BTreeMap::new(),
        );
        assert_eq!(host_of(&placed, "kept"), Some("fog1"));
        assert_eq!(host_of(&placed, "readings"), None);
    }

    #[test]
    fn what_a_consumer_placed_nowhere_reads_waits_on_its_producers_machine() {
        let (application, plan) = planned();
        // The edge joined, the fog not yet: `counts` runs nowhere, so the edge keeps its readings for it in a
        // waiting path (no receiver, no key), which the path to the fog adopts once the fog joins.
        let edge_only = [agent("edge1", Tier::Edge)];
        let placed = place(&application, &plan, &edge_only, &[], &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(host_of(&placed, "counts"), None);
        let waiting = assignments(&application, 1, &placed, &edge_only, &BTreeMap::new(), b"secret", &BTreeSet::new());
        let outputs = &waiting["edge1"].outputs;
        assert_eq!(outputs.len(), 1, "{outputs:?}");
        assert_eq!(outputs[0].path, "readings@edge1->?counts");
        assert_eq!(outputs[0].consumers, ["counts"]);
        assert_eq!(outputs[0].to, None);
        assert!(waiting["edge1"].inputs.is_empty());

        // Once the fog runs it, the path leads there, for the same consumer (which is how it adopts the log).
        let both = [agent("edge1", Tier::Edge), agent("fog1", Tier::Fog)];
        let placed = place(&application, &plan, &both, &[], &BTreeMap::new(), &BTreeMap::new());
        let joined = assignments(&application, 1, &placed, &both, &BTreeMap::new(), b"secret", &BTreeSet::new());
        let outputs = &joined["edge1"].outputs;
        assert_eq!(outputs.len(), 1, "{outputs:?}");
        assert_eq!(outputs[0].path, "readings@edge1->fog1");
        assert_eq!(outputs[0].consumers, ["counts"]);
        // The cloud has not joined: the fog keeps the windows for its sink.
        let paths: Vec<&str> = joined["fog1"].outputs.iter().map(|output| output.path.as_str()).collect();
        assert_eq!(paths, ["counts@fog1->?kept"]);
    }
}
