//! The search for a placement: branch and bound over hosts, trying the cheapest host first so that the first
//! complete assignment is the greedy one, then improving on it while the budget lasts. Exact on small problems
//! (every candidate is tried), bounded on large ones.

use crate::model::{Problem, StaticRejection, static_rejection};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use stratum_core::units::{Bandwidth, ByteSize};

/// How many hosts are kept as alternatives at each step of the search.
const ALTERNATIVES: usize = 16;
/// Candidate evaluations after which the search stops improving a plan it already has.
const IMPROVEMENT_BUDGET: usize = 200_000;
/// Candidate evaluations after which the search gives up looking for any plan.
const FEASIBILITY_BUDGET: usize = 5_000_000;

/// Why a host cannot take a component now.
#[derive(Clone, Debug, PartialEq)]
pub enum Rejection {
    /// A constraint the host can never meet (tier, node, labels, architecture, accelerators, size).
    Static(String),
    /// Not enough of a resource left: what it needs, what is free, the capacity, and who took the rest.
    Capacity {
        /// `cores`, `memory`, `disk` or an accelerator.
        resource: &'static str,
        /// What the component asks for.
        needs: String,
        /// What is left on the host.
        free: String,
        /// What the host has.
        capacity: String,
        /// The components that took the rest.
        taken_by: Vec<String>,
    },
    /// The host runs as many replicas of the component as its placement allows per node.
    ReplicasPerNode(u32),
    /// A link would carry more than its bandwidth.
    Bandwidth {
        /// The link, by index into the problem's links.
        link: usize,
        /// Bits per second the component would add.
        needs: f64,
        /// Bits per second it carries already.
        used: f64,
        /// Its bandwidth.
        capacity: f64,
        /// The components whose data it carries.
        users: Vec<String>,
    },
    /// A service would answer later than its objective.
    Latency {
        /// Where the service's requests come from.
        input: String,
        /// The network route's latency.
        route_ms: f64,
        /// The estimated time of one prediction.
        service_ms: f64,
        /// The objective.
        target_ms: f64,
        /// The objective's percentile (99 for `p99`).
        percentile: f64,
    },
}

impl Rejection {
    /// The rejection as a sentence for diagnostics and `--explain`.
    pub fn describe(&self) -> String {
        match self {
            Rejection::Static(reason) => reason.clone(),
            Rejection::Capacity { resource, needs, free, capacity, taken_by } => {
                let taken =
                    if taken_by.is_empty() { String::new() } else { format!(", taken by {}", taken_by.join(", ")) };
                format!("needs {needs} {resource}; has {capacity}, {free} free{taken}")
            }
            Rejection::ReplicasPerNode(limit) => format!("already runs {limit} replica(s), the most allowed per node"),
            Rejection::Bandwidth { needs, used, capacity, .. } => format!(
                "its link would carry {} more on top of {}, over its {}",
                Bandwidth(*needs),
                Bandwidth(*used),
                Bandwidth(*capacity)
            ),
            Rejection::Latency { input, route_ms, service_ms, target_ms, percentile } => format!(
                "{route_ms} ms from `{input}` plus about {service_ms} ms per prediction exceeds the p{percentile} objective of {target_ms} ms"
            ),
        }
    }
}

/// The search state: what is placed where, and what that uses.
#[derive(Clone)]
pub struct State<'p> {
    /// The problem being solved.
    pub problem: &'p Problem,
    /// The host of each component instance, once placed.
    pub assignment: Vec<Option<usize>>,
    cpu: Vec<f64>,
    memory: Vec<u64>,
    disk: Vec<u64>,
    accelerators: Vec<HashMap<String, u32>>,
    /// Bits per second each link carries so far.
    pub link_used: Vec<f64>,
    /// Components on each host, for "taken by" messages and pool-member use.
    residents: Vec<Vec<usize>>,
    /// The objective so far (lower is better).
    pub score: f64,
    /// Flows touching each component.
    incident: Vec<Vec<usize>>,
    /// The hosts each component could ever use, as an index into `candidate_lists`.
    candidate_of: Vec<usize>,
    /// The lists of candidate hosts, one for each set of constraints and requests: components that ask the same
    /// share one, so that a fleet of N machines with N components costs N entries, not N².
    candidate_lists: Arc<Vec<Candidates>>,
    /// For each component, the instances it should be near (or that should be near it), with their weight.
    near_partners: Vec<Vec<(usize, f64)>>,
    /// Hosts of one class score the same for a component unless one of them holds something it exchanges data
    /// with or should be near (same hardware, labels, pool, cost and links), and are interchangeable while empty.
    host_class: Vec<usize>,
    /// How many hosts of each class are empty now.
    empty_in_class: Vec<usize>,
    /// For each host, the last `options` call that already looked at it (a generation stamp, so no set is built
    /// per call).
    host_seen: Vec<u64>,
    generation: u64,
}

/// The hosts a component could ever use (they meet its static constraints).
struct Candidates {
    /// Every one, in index order.
    hosts: Vec<usize>,
    /// The same hosts grouped by class, each group in index order, and whether the group is its whole class.
    by_class: Vec<(usize, Vec<usize>, bool)>,
}

impl<'p> State<'p> {
    /// An empty state: nothing placed.
    pub fn new(problem: &'p Problem) -> State<'p> {
        let hosts = problem.hosts.len();
        let mut incident = vec![Vec::new(); problem.components.len()];
        for (index, flow) in problem.flows.iter().enumerate() {
            incident[flow.from].push(index);
            if flow.to != flow.from {
                incident[flow.to].push(index);
            }
        }
        let host_class = host_classes(problem);
        let (candidate_of, candidate_lists) = candidate_lists(problem, &host_class);
        let classes = host_class.iter().max().map_or(0, |class| class + 1);
        let mut empty_in_class = vec![0; classes];
        for class in &host_class {
            empty_in_class[*class] += 1;
        }
        let mut near_partners = vec![Vec::new(); problem.components.len()];
        let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
        for (index, component) in problem.components.iter().enumerate() {
            by_name.entry(component.name.as_str()).or_default().push(index);
        }
        for (index, component) in problem.components.iter().enumerate() {
            let Some(targets) = component.near.as_deref().and_then(|near| by_name.get(near)) else { continue };
            // The distance to a component with several instances is the average distance to them.
            let weight = problem.weights.near / targets.len() as f64;
            for target in targets {
                near_partners[index].push((*target, weight));
                near_partners[*target].push((index, weight));
            }
        }
        State {
            problem,
            near_partners,
            host_seen: vec![0; hosts],
            generation: 0,
            host_class,
            empty_in_class,
            assignment: vec![None; problem.components.len()],
            cpu: vec![0.0; hosts],
            memory: vec![0; hosts],
            disk: vec![0; hosts],
            accelerators: vec![HashMap::new(); hosts],
            link_used: vec![0.0; problem.links.len()],
            residents: vec![Vec::new(); hosts],
            score: 0.0,
            incident,
            candidate_of,
            candidate_lists: Arc::new(candidate_lists),
        }
    }

    /// The hosts a component could ever use (they meet its static constraints), in index order.
    pub fn candidates(&self, component: usize) -> &[usize] {
        &self.candidate_lists[self.candidate_of[component]].hosts
    }

    /// The added score of putting `component` on `host`, or why it cannot go there now.
    pub fn evaluate(&self, component: usize, host: usize) -> Result<f64, Rejection> {
        let problem = self.problem;
        let wanted = &problem.components[component];
        if let Some(reason) = static_rejection(&problem.hosts[host], &wanted.placement, &wanted.requests) {
            // A component larger than the whole machine is a capacity problem, reported with its numbers.
            let too_small = |resource, needs: String, capacity: String| Rejection::Capacity {
                resource,
                needs,
                free: capacity.clone(),
                capacity,
                taken_by: Vec::new(),
            };
            return Err(match reason {
                StaticRejection::Cores { has, wanted } => too_small("cores", format!("{wanted}"), format!("{has}")),
                StaticRejection::Memory { has, wanted } => {
                    too_small("memory", ByteSize(wanted).to_string(), ByteSize(has).to_string())
                }
                StaticRejection::Disk { has, wanted } => {
                    too_small("disk", ByteSize(wanted).to_string(), ByteSize(has).to_string())
                }
                other => Rejection::Static(other.to_string()),
            });
        }
        if let Some(pinned) = wanted.pinned
            && pinned != host
        {
            return Err(Rejection::Static(format!("is not `{}`", problem.hosts[pinned].name)));
        }
        self.evaluate_dynamic(component, host)
    }

    /// Like [`State::evaluate`] for a host that meets the component's static constraints: only capacity,
    /// replicas, bandwidth and latency are checked.
    fn evaluate_dynamic(&self, component: usize, host: usize) -> Result<f64, Rejection> {
        let problem = self.problem;
        let wanted = &problem.components[component];
        let machine = &problem.hosts[host];
        let taken_by = || {
            self.residents[host].iter().map(|resident| problem.components[*resident].name.clone()).collect::<Vec<_>>()
        };
        if self.cpu[host] + wanted.requests.cpu > machine.cpu + 1e-9 {
            return Err(Rejection::Capacity {
                resource: "cores",
                needs: format!("{}", wanted.requests.cpu),
                free: format!("{}", (machine.cpu - self.cpu[host]).max(0.0)),
                capacity: format!("{}", machine.cpu),
                taken_by: taken_by(),
            });
        }
        if self.memory[host] + wanted.requests.memory.0 > machine.memory {
            return Err(Rejection::Capacity {
                resource: "memory",
                needs: wanted.requests.memory.to_string(),
                free: ByteSize(machine.memory.saturating_sub(self.memory[host])).to_string(),
                capacity: ByteSize(machine.memory).to_string(),
                taken_by: taken_by(),
            });
        }
        if let Some(disk) = machine.disk
            && self.disk[host] + wanted.requests.disk.0 > disk
        {
            return Err(Rejection::Capacity {
                resource: "disk",
                needs: wanted.requests.disk.to_string(),
                free: ByteSize(disk.saturating_sub(self.disk[host])).to_string(),
                capacity: ByteSize(disk).to_string(),
                taken_by: taken_by(),
            });
        }
        for accelerator in &wanted.requests.accelerators {
            let has: u32 =
                machine.accelerators.iter().filter(|own| own.kind == accelerator.kind).map(|own| own.count).sum();
            let used = self.accelerators[host].get(&accelerator.kind).copied().unwrap_or(0);
            if used + accelerator.count > has {
                return Err(Rejection::Capacity {
                    resource: "accelerators",
                    needs: format!("{} x \"{}\"", accelerator.count, accelerator.kind),
                    free: format!("{}", has.saturating_sub(used)),
                    capacity: format!("{has}"),
                    taken_by: taken_by(),
                });
            }
        }
        if let Some(limit) = wanted.placement.replicas_per_node {
            let same = self.residents[host]
                .iter()
                .filter(|resident| problem.components[**resident].name == wanted.name)
                .count();
            if same as u32 >= limit {
                return Err(Rejection::ReplicasPerNode(limit));
            }
        }

        let mut added = 0.0;
        let mut extra_link: [(usize, f64); 4] = [(usize::MAX, 0.0); 4];
        for flow_index in &self.incident[component] {
            let flow = &problem.flows[*flow_index];
            let other = if flow.from == component { flow.to } else { flow.from };
            let Some(other_host) = self.assignment[other] else { continue };
            let route = problem.route(host, other_host);
            added += route.latency_ms * problem.weights.latency;
            if route.crosses_tiers {
                added += flow.bits_per_second / 1e6 * problem.weights.traffic;
            }
            for link in route.links() {
                if let Some(capacity) = problem.links[*link].capacity {
                    let slot = extra_link.iter().position(|(id, _)| *id == *link || *id == usize::MAX).unwrap_or(3);
                    extra_link[slot].0 = *link;
                    extra_link[slot].1 += flow.bits_per_second;
                    if self.link_used[*link] + extra_link[slot].1 > capacity {
                        let users = self.link_users(*link);
                        return Err(Rejection::Bandwidth {
                            link: *link,
                            needs: extra_link[slot].1,
                            used: self.link_used[*link],
                            capacity,
                            users,
                        });
                    }
                }
            }
            // The consumer of the flow may be a service with a latency objective.
            let service = if flow.to == component { component } else { flow.to };
            if let Some(target) = &problem.components[service].latency_target {
                let total = route.latency_ms + target.service_time_ms;
                if total > target.at_most_ms + 1e-9 {
                    let input = if flow.to == component { other } else { component };
                    return Err(Rejection::Latency {
                        input: problem.components[input].name.clone(),
                        route_ms: route.latency_ms,
                        service_ms: target.service_time_ms,
                        target_ms: target.at_most_ms,
                        percentile: target.percentile,
                    });
                }
            }
        }
        // Distance to `near` partners counts for every placed pair, whichever was placed first, so the objective
        // does not depend on the order of placement.
        for (partner, weight) in &self.near_partners[component] {
            if let Some(partner_host) = self.assignment[*partner] {
                added += problem.route(host, partner_host).latency_ms * weight;
            }
        }
        if !machine.always_on && self.residents[host].is_empty() {
            added += machine.hourly_cost * problem.weights.cost;
        }
        Ok(added)
    }

    /// Who sends data over a link now, for bandwidth messages.
    fn link_users(&self, link: usize) -> Vec<String> {
        let problem = self.problem;
        let mut users: Vec<String> = problem
            .flows
            .iter()
            .filter(|flow| {
                let (Some(a), Some(b)) = (self.assignment[flow.from], self.assignment[flow.to]) else { return false };
                problem.route(a, b).links().contains(&link)
            })
            .map(|flow| problem.components[flow.from].name.clone())
            .collect();
        users.sort();
        users.dedup();
        users
    }

    /// Places `component` on `host`, adding `added` to the score.
    pub fn apply(&mut self, component: usize, host: usize, added: f64) {
        self.change(component, host, 1.0);
        self.assignment[component] = Some(host);
        if self.residents[host].is_empty() {
            self.empty_in_class[self.host_class[host]] -= 1;
        }
        self.residents[host].push(component);
        self.score += added;
    }

    /// Takes `component` off `host` again, as `apply` put it there.
    pub fn undo(&mut self, component: usize, host: usize, added: f64) {
        self.assignment[component] = None;
        if let Some(position) = self.residents[host].iter().rposition(|resident| *resident == component) {
            self.residents[host].remove(position);
            if self.residents[host].is_empty() {
                self.empty_in_class[self.host_class[host]] += 1;
            }
        }
        self.change(component, host, -1.0);
        self.score -= added;
    }

    /// Adds (sign 1) or removes (sign -1) a component's use of its host and of the links to its placed neighbours.
    fn change(&mut self, component: usize, host: usize, sign: f64) {
        let problem = self.problem;
        let requests = &problem.components[component].requests;
        self.cpu[host] += sign * requests.cpu;
        if sign > 0.0 {
            self.memory[host] += requests.memory.0;
            self.disk[host] += requests.disk.0;
        } else {
            self.memory[host] -= requests.memory.0;
            self.disk[host] -= requests.disk.0;
        }
        for accelerator in &requests.accelerators {
            let used = self.accelerators[host].entry(accelerator.kind.clone()).or_default();
            if sign > 0.0 {
                *used += accelerator.count;
            } else {
                *used -= accelerator.count;
            }
        }
        for flow_index in &self.incident[component] {
            let flow = &problem.flows[*flow_index];
            let other = if flow.from == component { flow.to } else { flow.from };
            let Some(other_host) = self.assignment[other] else { continue };
            for link in problem.route(host, other_host).links() {
                self.link_used[*link] += sign * flow.bits_per_second;
            }
        }
    }

    /// The hosts a component can go to now, cheapest first, at most `limit` of them; interchangeable empty hosts
    /// count once. Also says how many hosts were evaluated.
    ///
    /// Not every candidate is evaluated: a host scores the same as the others of its class unless it holds one of
    /// the component's partners (what it exchanges data with or should be near), so the partners' hosts are
    /// evaluated one by one and, of each class, only the first `limit` other hosts with room and its first empty
    /// host. The result is what evaluating every candidate would give, at a cost that does not grow with the
    /// fleet.
    pub fn options(&mut self, component: usize, limit: usize) -> (Vec<(f64, usize)>, usize) {
        self.generation += 1;
        let generation = self.generation;
        let candidates = &self.candidate_lists[self.candidate_of[component]];
        let flow_partners = self.incident[component].iter().map(|flow_index| {
            let flow = &self.problem.flows[*flow_index];
            if flow.from == component { flow.to } else { flow.from }
        });
        let near_partners = self.near_partners[component].iter().map(|(partner, _)| *partner);
        let mut partner_hosts: Vec<usize> = flow_partners
            .chain(near_partners)
            .filter_map(|partner| self.assignment[partner])
            .filter(|host| candidates.hosts.binary_search(host).is_ok())
            .collect();
        partner_hosts.sort_unstable();
        partner_hosts.dedup();
        for host in &partner_hosts {
            self.host_seen[*host] = generation;
        }
        let candidates = &self.candidate_lists[self.candidate_of[component]];
        let mut options = Vec::new();
        let mut evaluated = 0;
        for host in partner_hosts {
            evaluated += 1;
            if let Ok(added) = self.evaluate_dynamic(component, host) {
                options.push((added, host));
            }
        }
        for (class, hosts, whole) in &candidates.by_class {
            let (mut found, mut empty_seen) = (0, false);
            for host in hosts {
                let no_empty_left = empty_seen || (*whole && self.empty_in_class[*class] == 0);
                if found >= limit && no_empty_left {
                    break;
                }
                if self.host_seen[*host] == generation {
                    continue;
                }
                let empty = self.residents[*host].is_empty();
                if empty {
                    // Empty hosts of a class are interchangeable: the first one stands for all.
                    if empty_seen {
                        continue;
                    }
                    empty_seen = true;
                } else if found >= limit {
                    continue;
                }
                evaluated += 1;
                if let Ok(added) = self.evaluate_dynamic(component, *host) {
                    options.push((added, *host));
                    found += usize::from(!empty);
                }
            }
        }
        if options.len() > limit {
            options.select_nth_unstable_by(limit, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            options.truncate(limit);
        }
        options.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        (options, evaluated)
    }
}

/// Which candidate list each component uses, and the lists: one per set of constraints and requests, so that
/// components asking the same share it. A component pinned to a host or named to a node has a list of its own,
/// found without looking at every host.
fn candidate_lists(problem: &Problem, host_class: &[usize]) -> (Vec<usize>, Vec<Candidates>) {
    let mut class_size = vec![0usize; host_class.iter().max().map_or(0, |class| class + 1)];
    for class in host_class {
        class_size[*class] += 1;
    }
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, host) in problem.hosts.iter().enumerate() {
        by_name.entry(host.name.as_str()).or_default().push(index);
    }
    let mut lists = Vec::new();
    let mut shared: HashMap<String, usize> = HashMap::new();
    let mut list_of = Vec::with_capacity(problem.components.len());
    for component in &problem.components {
        let fits =
            |host: &usize| static_rejection(&problem.hosts[*host], &component.placement, &component.requests).is_none();
        let hosts: Vec<usize> = match (component.pinned, &component.placement.node) {
            (Some(host), _) => vec![host],
            (None, Some(node)) => by_name.get(node.as_str()).into_iter().flatten().copied().filter(fits).collect(),
            (None, None) => {
                // What `static_rejection` reads, and nothing else (not `near`, which differs for each of a fleet's
                // components).
                let placement = &component.placement;
                let key = format!(
                    "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
                    placement.tier,
                    placement.private_data_tier,
                    placement.pool,
                    placement.labels,
                    placement.arch,
                    component.requests
                );
                if let Some(list) = shared.get(&key) {
                    list_of.push(*list);
                    continue;
                }
                shared.insert(key, lists.len());
                (0..problem.hosts.len()).filter(fits).collect()
            }
        };
        let mut groups: Vec<(usize, Vec<usize>, bool)> = Vec::new();
        let mut group_of: HashMap<usize, usize> = HashMap::new();
        for host in &hosts {
            let class = host_class[*host];
            let group = *group_of.entry(class).or_insert_with(|| {
                groups.push((class, Vec::new(), false));
                groups.len() - 1
            });
            groups[group].1.push(*host);
        }
        for (class, members, whole) in &mut groups {
            *whole = members.len() == class_size[*class];
        }
        list_of.push(lists.len());
        lists.push(Candidates { hosts, by_class: groups });
    }
    (list_of, lists)
}

/// Groups hosts that are interchangeable while empty and score alike for a component none of whose partners they
/// hold, numbering the classes from 0. A host at the end of a link of its own is in a class of its own (its routes
/// differ); hosts a placement names form classes apart from the others, so that an empty one the search passes
/// over is not confused with hosts no component asks for by name.
fn host_classes(problem: &Problem) -> Vec<usize> {
    let mut named: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for component in &problem.components {
        if let Some(node) = &component.placement.node {
            named.insert(node);
        }
    }
    let mut linked: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for link in &problem.links {
        linked.insert(&link.from);
        linked.insert(&link.to);
    }
    let mut classes: HashMap<String, usize> = HashMap::new();
    problem
        .hosts
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let pool = host.pool.as_ref().map(|(pool, _)| pool.as_str());
            let key = if linked.contains(host.name.as_str()) {
                format!("linked {index}")
            } else {
                format!(
                    "{}|{:?}|{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{}",
                    named.contains(host.name.as_str()),
                    host.tier,
                    host.cpu,
                    host.memory,
                    host.disk,
                    host.arch,
                    host.accelerators,
                    host.labels,
                    pool,
                    host.always_on,
                    host.hourly_cost
                )
            };
            let next = classes.len();
            *classes.entry(key).or_insert(next)
        })
        .collect()
}

/// The order in which components are placed: pinned instances first, then producers before consumers, the most
/// constrained first among equals.
pub fn placement_order(state: &State) -> Vec<usize> {
    let problem = state.problem;
    let count = problem.components.len();
    let mut waiting_for = vec![0usize; count];
    let mut consumers = vec![Vec::new(); count];
    for flow in &problem.flows {
        if flow.from != flow.to && problem.components[flow.to].pinned.is_none() {
            waiting_for[flow.to] += 1;
            consumers[flow.from].push(flow.to);
        }
    }
    // The most urgent ready component first: pinned before unpinned, then the fewest candidates, then the first
    // declared (a heap, since a fleet has thousands ready at once).
    let key = |component: usize| {
        std::cmp::Reverse((
            problem.components[component].pinned.is_none(),
            state.candidates(component).len(),
            component,
        ))
    };
    let mut order = Vec::with_capacity(count);
    let mut placed = vec![false; count];
    let mut queued = vec![false; count];
    let mut ready: BinaryHeap<_> = BinaryHeap::new();
    for component in (0..count).filter(|component| waiting_for[*component] == 0) {
        queued[component] = true;
        ready.push(key(component));
    }
    let mut unplaced_from = 0;
    while order.len() < count {
        if ready.is_empty() {
            // A cycle of flows (a stream calling a service that reads it): take the first unplaced one.
            while placed[unplaced_from] {
                unplaced_from += 1;
            }
            ready.push(key(unplaced_from));
        }
        let std::cmp::Reverse((_, _, next)) = ready.pop().expect("not empty");
        if placed[next] {
            continue;
        }
        placed[next] = true;
        order.push(next);
        for consumer in &consumers[next] {
            waiting_for[*consumer] = waiting_for[*consumer].saturating_sub(1);
            if waiting_for[*consumer] == 0 && !placed[*consumer] && !queued[*consumer] {
                queued[*consumer] = true;
                ready.push(key(*consumer));
            }
        }
    }
    order
}

/// The outcome of a search.
pub struct Solution {
    /// The host of each component instance.
    pub assignment: Vec<usize>,
    /// The objective it reaches.
    pub score: f64,
    /// Every alternative was tried: the plan is optimal for the objective.
    pub exhaustive: bool,
}

/// Finds the best placement within the budget, or None when none was found.
pub fn solve(problem: &Problem) -> Option<Solution> {
    let mut state = State::new(problem);
    let order = placement_order(&state);
    if order.is_empty() {
        return Some(Solution { assignment: Vec::new(), score: 0.0, exhaustive: true });
    }
    struct Frame {
        component: usize,
        options: Vec<(f64, usize)>,
        next: usize,
    }
    let mut best: Option<(f64, Vec<usize>)> = None;
    let mut evaluations = 0usize;
    let mut truncated = false;
    let mut applied: Vec<(usize, usize, f64)> = Vec::new();
    let (options, evaluated) = state.options(order[0], ALTERNATIVES);
    evaluations += evaluated;
    truncated |= state.candidates(order[0]).len() > ALTERNATIVES;
    let mut frames = vec![Frame { component: order[0], options, next: 0 }];
    while !frames.is_empty() {
        if applied.len() == frames.len() {
            let (component, host, added) = applied.pop().expect("a choice is applied for the top frame");
            state.undo(component, host, added);
        }
        let depth = frames.len();
        let frame = frames.last_mut().expect("not empty");
        // Past the budget the search stops backtracking: with a plan it stops improving it, without one it
        // only finishes the descent it is on (so a greedy plan is always completed when one exists that way).
        let backtracking = frame.next > 0;
        let out_of_budget =
            (best.is_some() && evaluations > IMPROVEMENT_BUDGET) || (backtracking && evaluations > FEASIBILITY_BUDGET);
        if frame.next >= frame.options.len() || out_of_budget {
            if out_of_budget {
                truncated = true;
            }
            frames.pop();
            continue;
        }
        let (added, host) = frame.options[frame.next];
        frame.next += 1;
        let best_score = best.as_ref().map(|(score, _)| *score).unwrap_or(f64::INFINITY);
        if state.score + added >= best_score - 1e-9 {
            // Options are sorted, so every later one is at least as costly.
            frame.next = frame.options.len();
            continue;
        }
        let component = frame.component;
        state.apply(component, host, added);
        applied.push((component, host, added));
        if depth == order.len() {
            let assignment = state.assignment.iter().map(|host| host.expect("complete")).collect();
            best = Some((state.score, assignment));
            continue;
        }
        let next_component = order[depth];
        let (options, evaluated) = state.options(next_component, ALTERNATIVES);
        evaluations += evaluated;
        truncated |= state.candidates(next_component).len() > ALTERNATIVES;
        if !options.is_empty() {
            frames.push(Frame { component: next_component, options, next: 0 });
        }
    }
    best.map(|(score, assignment)| Solution { assignment, score, exhaustive: !truncated })
}

/// The greedy descent, stopping at the first component that fits nowhere: used to explain an impossible plan.
pub fn first_failure(problem: &Problem) -> Option<(State<'_>, usize)> {
    let mut state = State::new(problem);
    let order = placement_order(&state);
    for component in order {
        let (options, _) = state.options(component, 1);
        match options.first() {
            Some((added, host)) => state.apply(component, *host, *added),
            None => return Some((state, component)),
        }
    }
    None
}
