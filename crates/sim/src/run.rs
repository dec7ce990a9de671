//! The simulation itself: a fluid model of the planned application advanced in fixed steps.
//!
//! Each pair of placed instances that exchange records is a path with a first-in-first-out queue of chunks (when
//! they were queued, when their records were made on average, how many). In every step, in this order:
//! 1. what the scenario says happens now happens (a machine stops or comes back, a link is cut or heals; a machine
//!    silent for the agent timeout is lost and its instances are placed again by the planner's own search);
//! 2. stage by stage (a component one stage after the last of its inputs, so that what reaches it is passed on in
//!    the same step), every producer queues what it makes — a source its rate, any other component in proportion
//!    to what reached it — and a full buffer drops its oldest records or holds the source back;
//! 3. every path delivers what its consumer can take in (its cores times the per-record cost from the benchmarks)
//!    and its links can carry (bandwidth shared in proportion to demand, less the loss rate), oldest first;
//! 4. what reached the end of a path is counted with its age; services answer as an M/M/c queue of their replicas
//!    (Erlang C for the wait), with the autoscaler's own code deciding the replicas every half second.
//!
//! Everything is deterministic: the same file and scenario give the same report.

use crate::Error;
use crate::costs::{self, COLD_START_SECONDS, SERVING_OVERHEAD_SECONDS};
use crate::report::{
    BufferReport, Cost, Happening, LinkReport, PathReport, Report, Series, ServiceReport, seconds_text,
};
use crate::scenario::Scenario;
use std::collections::{BTreeMap, HashMap, VecDeque};
use stratum_core::autoscale::{Autoscaler, ScalePolicy};
use stratum_core::ir::{Action, Application, Condition, ServiceInput, Tier, WhenFull};
use stratum_core::plan::ComponentKind;
use stratum_planner::model::{Problem, estimated_service_time_ms};
use stratum_planner::search::State;

/// The most points a series of the report has.
const SAMPLES: u64 = 240;

/// How often a service pool samples its load and decides its size (the control plane's `SCALE_TICK`).
const SCALE_TICK_SECONDS: f64 = 0.5;

/// A request's latency distribution in bands: the middle of each band of probability, and the band's share (the
/// tail finer, where objectives are).
const LATENCY_BANDS: [(f64, f64); 12] = [
    (0.05, 0.1),
    (0.15, 0.1),
    (0.25, 0.1),
    (0.35, 0.1),
    (0.45, 0.1),
    (0.55, 0.1),
    (0.65, 0.1),
    (0.75, 0.1),
    (0.85, 0.1),
    (0.94, 0.08),
    (0.989, 0.018),
    (0.999, 0.002),
];

/// A component of the application, as the simulation needs it.
struct Part {
    name: String,
    kind: ComponentKind,
    /// Seconds a record waits on average for its window to close (half the window; none without one).
    window_wait: f64,
    /// Nothing reads it: records that reach it end their path.
    terminal: bool,
    /// The path's name for the latency report: the chain of `from`s back to a source.
    path: String,
    /// The buffer its outgoing paths have: (bytes, seconds a record may wait, drop the oldest when full).
    buffer: (f64, Option<f64>, bool),
    /// For a service: its index among the services.
    service: Option<usize>,
}

/// One placed instance.
struct Instance {
    part: usize,
    host: Option<usize>,
    /// Records a second it can take in.
    capacity: f64,
    /// Records a second that reach it when nothing holds them up, the planner's estimate.
    nominal_in: f64,
    /// This step: records that reached it, by when they were made (at most `ARRIVAL_GROUPS` groups, neighbours
    /// merged), and how many in all. A source's one group is its own making, now.
    arrivals: Vec<(f64, f64)>,
    arrived: f64,
    /// What it makes in this step, against its nominal rate.
    ratio: f64,
    /// A per-node source: it lives and dies with its machine.
    pinned: bool,
}

/// Records queued at the same time, made at about the same time.
struct Chunk {
    queued: f64,
    made: f64,
    records: f64,
}

/// A path between two instances.
struct Path {
    from: usize,
    to: usize,
    records_per_second: f64,
    record_bytes: f64,
    /// Links it crosses, and their latency; recomputed when an end moves.
    links: Vec<usize>,
    latency: f64,
    queue: VecDeque<Chunk>,
    queued: f64,
    peak_bytes: f64,
    dropped: f64,
    held_back: f64,
}

/// A service pool on one machine.
struct Pool {
    service: usize,
    instance: usize,
    autoscaler: Autoscaler,
    replicas: u32,
    /// Requests waiting beyond what the queue model absorbs (the pool is overloaded).
    backlog: f64,
    next_tick: f64,
}

struct ServiceStats {
    name: String,
    service_seconds: f64,
    servers_per_replica: f64,
    objective: Option<(f64, f64)>,
    latencies: Histogram,
    requests: f64,
    missed: f64,
    cold_starts: u64,
    /// The most replicas at once across its pools.
    max_replicas: u32,
    /// The rate of an HTTP input (its `slo.throughput`), spread over its pools.
    http_rate: f64,
}

/// Latencies in logarithmic buckets from 0.01 ms to about a week, weighted by records.
#[derive(Clone)]
struct Histogram {
    weights: Vec<f64>,
    /// Each bucket's sum of latencies times weights, so that a quantile is its bucket's mean, not an edge.
    sums: Vec<f64>,
    total: f64,
    largest: f64,
}

const BUCKETS_PER_DECADE: f64 = 20.0;
const SMALLEST_SECONDS: f64 = 1e-5;

impl Histogram {
    fn new() -> Histogram {
        let buckets = (BUCKETS_PER_DECADE * 11.0) as usize;
        Histogram { weights: vec![0.0; buckets], sums: vec![0.0; buckets], total: 0.0, largest: 0.0 }
    }

    fn add(&mut self, seconds: f64, weight: f64) {
        if weight <= 0.0 || !seconds.is_finite() {
            return;
        }
        let seconds = seconds.max(SMALLEST_SECONDS);
        let bucket = ((seconds / SMALLEST_SECONDS).log10() * BUCKETS_PER_DECADE) as usize;
        let last = self.weights.len() - 1;
        self.weights[bucket.min(last)] += weight;
        self.sums[bucket.min(last)] += weight * seconds;
        self.total += weight;
        self.largest = self.largest.max(seconds);
    }

    /// The latency below which `fraction` of the weight lies (the mean of the bucket it falls in), in seconds.
    fn quantile(&self, fraction: f64) -> f64 {
        if self.total <= 0.0 {
            return 0.0;
        }
        let wanted = fraction * self.total;
        let mut seen = 0.0;
        for (bucket, weight) in self.weights.iter().enumerate() {
            seen += weight;
            if seen >= wanted && *weight > 0.0 {
                return self.sums[bucket] / weight;
            }
        }
        self.largest
    }
}

/// Erlang C: the chance a request waits, with `servers` servers each answering `rate` a second, `arrivals` a
/// second; 1 when they cannot keep up.
fn waiting_chance(servers: f64, arrivals: f64, rate: f64) -> f64 {
    let load = arrivals / rate;
    if servers <= 0.0 || load >= servers {
        return 1.0;
    }
    let mut blocking = 1.0;
    for k in 1..=servers as usize {
        blocking = load * blocking / (k as f64 + load * blocking);
    }
    let utilisation = load / servers;
    blocking / (1.0 - utilisation * (1.0 - blocking))
}

/// The machines' and links' state at a time, from the scenario.
struct Outages {
    /// For each host: when it went down, while it is down.
    down_since: Vec<Option<f64>>,
    /// Hosts found lost (their instances placed elsewhere).
    lost: Vec<bool>,
    link_down: Vec<bool>,
}

impl Outages {
    /// Whether an instance on `host` runs: placed, and its machine up.
    fn up(&self, host: Option<usize>) -> bool {
        host.is_some_and(|host| self.down_since[host].is_none())
    }
}

/// What is counted for the report as the simulation runs.
struct Tally {
    timeline: Vec<Happening>,
    /// Per component: the latency of what reached it as a path's end, and how much did.
    latencies: Vec<Histogram>,
    delivered_to: Vec<f64>,
    made: f64,
    lost_with_machines: f64,
    held_back_unplaced: f64,
    /// Per link: bits carried, the highest use in a step, seconds cut.
    link_bits: Vec<f64>,
    link_peak: Vec<f64>,
    link_down_seconds: Vec<f64>,
    /// Per (producer, consumer) pair of components: the most their paths held at once.
    buffer_peak_all: Vec<f64>,
    /// The series, and what the interval being sampled has seen so far.
    series: Series,
    series_links: Vec<Vec<f64>>,
    interval_bits: Vec<f64>,
    interval_arrived: f64,
    interval_oldest: f64,
    replicas_now: Vec<u32>,
}

/// Space each step reuses.
struct Scratch {
    demand: Vec<f64>,
    capacity_left: Vec<f64>,
    into_instance: Vec<f64>,
    link_left: Vec<f64>,
    on_link: Vec<f64>,
    link_used: Vec<f64>,
    buffer_totals: Vec<f64>,
}

/// A simulation: the planned application, the scenario, and the state of everything as it runs.
struct Simulation<'a> {
    application: &'a Application,
    problem: &'a Problem,
    scenario: &'a Scenario,
    step: f64,
    steps: u64,
    /// Each failure's host, in the scenario's order; each partition's links.
    failure_hosts: Vec<usize>,
    partition_links: Vec<Vec<usize>>,
    parts: Vec<Part>,
    instances: Vec<Instance>,
    paths: Vec<Path>,
    /// Each instance's outgoing paths, and (a source's) records made a second.
    outgoing: Vec<Vec<usize>>,
    source_rate: Vec<f64>,
    /// The instances of each stage, in order.
    instances_at: Vec<Vec<usize>>,
    /// Each link's loss rate.
    loss: Vec<f64>,
    /// Each (producer, consumer) pair of components, numbered for `buffer_peak_all`.
    pair_index: HashMap<(usize, usize), usize>,
    services: Vec<ServiceStats>,
    pools: Vec<Pool>,
    pools_per_service: Vec<f64>,
    /// Steps per sample of the series.
    every: u64,
    outages: Outages,
    tally: Tally,
    scratch: Scratch,
}

/// The links of a route between two hosts and its latency in seconds (none while an end is placed nowhere).
fn route(problem: &Problem, from: Option<usize>, to: Option<usize>) -> (Vec<usize>, f64) {
    match (from, to) {
        (Some(from), Some(to)) => {
            let route = problem.route(from, to);
            (route.links().to_vec(), route.latency_ms / 1000.0)
        }
        _ => (Vec::new(), 0.0),
    }
}

pub(crate) fn run(
    application: &Application,
    problem: &Problem,
    assignment: &[usize],
    scenario: &Scenario,
) -> Result<Report, Error> {
    let mut simulation = Simulation::new(application, problem, assignment, scenario)?;
    for number in 0..simulation.steps {
        simulation.advance(number);
    }
    Ok(simulation.report())
}

impl<'a> Simulation<'a> {
    fn new(
        application: &'a Application,
        problem: &'a Problem,
        assignment: &[usize],
        scenario: &'a Scenario,
    ) -> Result<Simulation<'a>, Error> {
        let step = scenario.step_seconds();
        let steps = (scenario.duration / step).ceil() as u64;
        let host_index: HashMap<&str, usize> =
            problem.hosts.iter().enumerate().map(|(index, host)| (host.name.as_str(), index)).collect();
        let failure_hosts = scenario
            .failures
            .iter()
            .map(|failure| {
                host_index
                    .get(failure.host.as_str())
                    .copied()
                    .ok_or_else(|| Error::UnknownMachine { name: failure.host.clone() })
            })
            .collect::<Result<Vec<usize>, Error>>()?;
        let links_between = |from: &str, to: &str| -> Vec<usize> {
            problem
                .links
                .iter()
                .enumerate()
                .filter(|(_, link)| (link.from == from && link.to == to) || (link.from == to && link.to == from))
                .map(|(index, _)| index)
                .collect()
        };
        let partition_links = scenario
            .partitions
            .iter()
            .map(|partition| {
                let links = links_between(&partition.from, &partition.to);
                if links.is_empty() {
                    Err(Error::UnknownLink { from: partition.from.clone(), to: partition.to.clone() })
                } else {
                    Ok(links)
                }
            })
            .collect::<Result<Vec<_>, Error>>()?;

        let (parts, part_index, producers_of) = parts_of(application, problem);
        let mut instances: Vec<Instance> = problem
            .components
            .iter()
            .enumerate()
            .map(|(index, component)| Instance {
                part: part_index[component.name.as_str()],
                host: Some(assignment[index]),
                capacity: costs::records_per_second(
                    application,
                    component.kind,
                    &component.name,
                    component.requests.cpu,
                ),
                nominal_in: 0.0,
                arrivals: Vec::new(),
                arrived: 0.0,
                ratio: 0.0,
                // A per-node source, or a component whose file names its machine: it lives and dies with it.
                pinned: component.pinned.is_some() || component.placement.node.is_some(),
            })
            .collect();
        let paths: Vec<Path> = problem
            .flows
            .iter()
            .map(|flow| {
                instances[flow.to].nominal_in += flow.events_per_second;
                let (links, latency) = route(problem, Some(assignment[flow.from]), Some(assignment[flow.to]));
                Path {
                    from: flow.from,
                    to: flow.to,
                    records_per_second: flow.events_per_second,
                    record_bytes: flow.record_bytes as f64,
                    links,
                    latency,
                    queue: VecDeque::new(),
                    queued: 0.0,
                    peak_bytes: 0.0,
                    dropped: 0.0,
                    held_back: 0.0,
                }
            })
            .collect();
        let mut outgoing: Vec<Vec<usize>> = vec![Vec::new(); instances.len()];
        for (index, path) in paths.iter().enumerate() {
            outgoing[path.from].push(index);
        }
        // What each source instance makes a second: everything it makes goes to each component that reads it,
        // split over that component's instances, so the sum towards any one reader is the whole.
        let source_rate: Vec<f64> = (0..instances.len())
            .map(|index| {
                let mut towards: HashMap<usize, f64> = HashMap::new();
                for path in &outgoing[index] {
                    *towards.entry(instances[paths[*path].to].part).or_default() += paths[*path].records_per_second;
                }
                towards.into_values().fold(0.0, f64::max)
            })
            .collect();

        // Stages: a component comes one stage after the last of its inputs, so that within a step what reaches a
        // component is passed on in the same step.
        let mut depth = vec![0usize; parts.len()];
        for _ in 0..parts.len() {
            let mut changed = false;
            for part in 0..parts.len() {
                let deepest = producers_of[part].iter().map(|producer| depth[*producer] + 1).max().unwrap_or(0);
                if deepest > depth[part] && deepest <= parts.len() {
                    depth[part] = deepest;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let stages = depth.iter().max().map_or(1, |deepest| deepest + 1);
        let mut instances_at: Vec<Vec<usize>> = vec![Vec::new(); stages];
        for (index, instance) in instances.iter().enumerate() {
            instances_at[depth[instance.part]].push(index);
        }

        let (services, pools) = services_of(application, scenario, &parts, &instances);
        let pools_per_service: Vec<f64> = (0..services.len())
            .map(|service| pools.iter().filter(|pool| pool.service == service).count().max(1) as f64)
            .collect();
        let loss: Vec<f64> = problem
            .links
            .iter()
            .map(|link| {
                application
                    .links
                    .iter()
                    .find(|declared| {
                        endpoint_name(&declared.from) == link.from && endpoint_name(&declared.to) == link.to
                    })
                    .and_then(|declared| declared.loss)
                    .unwrap_or(0.0)
            })
            .collect();
        let mut pair_index: HashMap<(usize, usize), usize> = HashMap::new();
        for path in &paths {
            let next = pair_index.len();
            pair_index.entry((instances[path.from].part, instances[path.to].part)).or_insert(next);
        }
        let links = problem.links.len();
        let tally = Tally {
            timeline: Vec::new(),
            latencies: vec![Histogram::new(); parts.len()],
            delivered_to: vec![0.0; parts.len()],
            made: 0.0,
            lost_with_machines: 0.0,
            held_back_unplaced: 0.0,
            link_bits: vec![0.0; links],
            link_peak: vec![0.0; links],
            link_down_seconds: vec![0.0; links],
            buffer_peak_all: vec![0.0; pair_index.len()],
            series: Series::default(),
            series_links: vec![Vec::new(); links],
            interval_bits: vec![0.0; links],
            interval_arrived: 0.0,
            interval_oldest: 0.0,
            replicas_now: vec![0; services.len()],
        };
        let scratch = Scratch {
            demand: vec![0.0; paths.len()],
            capacity_left: vec![0.0; instances.len()],
            into_instance: vec![0.0; instances.len()],
            link_left: vec![0.0; links],
            on_link: vec![0.0; links],
            link_used: vec![0.0; links],
            buffer_totals: vec![0.0; pair_index.len()],
        };
        Ok(Simulation {
            application,
            problem,
            scenario,
            step,
            steps,
            failure_hosts,
            partition_links,
            parts,
            instances,
            paths,
            outgoing,
            source_rate,
            instances_at,
            loss,
            pair_index,
            services,
            pools,
            pools_per_service,
            every: steps.div_ceil(SAMPLES).max(1),
            outages: Outages {
                down_since: vec![None; problem.hosts.len()],
                lost: vec![false; problem.hosts.len()],
                link_down: vec![false; links],
            },
            tally,
            scratch,
        })
    }

    /// One step: what the scenario says happens, then each stage in turn, then what the step is counted as.
    fn advance(&mut self, number: u64) {
        let now = number as f64 * self.step;
        self.happen(number, now);
        for (link, network) in self.problem.links.iter().enumerate() {
            self.scratch.link_left[link] = if self.outages.link_down[link] {
                self.tally.link_down_seconds[link] += self.step;
                0.0
            } else {
                network.capacity.map_or(f64::INFINITY, |bits| bits * (1.0 - self.loss[link]) * self.step)
            };
        }
        for (index, instance) in self.instances.iter_mut().enumerate() {
            instance.arrived = 0.0;
            instance.arrivals.clear();
            self.scratch.capacity_left[index] = instance.capacity * self.step;
        }
        for stage in 0..self.instances_at.len() {
            self.produce(stage, now);
            self.deliver(stage);
        }
        self.count_step(number);
    }

    /// The scenario (the first phase of a step): something happens in the first step that starts at or after its
    /// time. A machine silent for the agent timeout is counted lost and its work placed again.
    fn happen(&mut self, number: u64, now: f64) {
        let step = self.step;
        let fires = |at: f64| (at / step - 1e-9).ceil().max(0.0) as u64 == number;
        let mut came_back = false;
        for (failure, host) in self.scenario.failures.iter().zip(&self.failure_hosts) {
            if fires(failure.at) {
                self.outages.down_since[*host] = Some(now);
                self.tally.timeline.push(Happening { at: now, what: format!("{} stops", failure.host) });
            }
            if let Some(lasting) = failure.lasting
                && fires(failure.at + lasting)
            {
                self.outages.down_since[*host] = None;
                came_back = true;
                let was_lost = std::mem::replace(&mut self.outages.lost[*host], false);
                self.tally.timeline.push(Happening {
                    at: now,
                    what: if was_lost {
                        format!("{} is back; what moved away stays where it went, its own sources go on", failure.host)
                    } else {
                        format!("{} is back before it was counted lost", failure.host)
                    },
                });
            }
        }
        for (partition, links) in self.scenario.partitions.iter().zip(&self.partition_links) {
            if fires(partition.at) {
                links.iter().for_each(|link| self.outages.link_down[*link] = true);
                self.tally.timeline.push(Happening {
                    at: now,
                    what: format!("{} -> {} cut for {}", partition.from, partition.to, seconds_text(partition.lasting)),
                });
            }
            if fires(partition.at + partition.lasting) {
                links.iter().for_each(|link| self.outages.link_down[*link] = false);
                self.tally
                    .timeline
                    .push(Happening { at: now, what: format!("{} -> {} heals", partition.from, partition.to) });
            }
        }
        let timeout = self.scenario.agent_timeout;
        let newly_lost: Vec<usize> = (0..self.problem.hosts.len())
            .filter(|host| {
                !self.outages.lost[*host] && self.outages.down_since[*host].is_some_and(|since| now - since >= timeout)
            })
            .collect();
        for host in &newly_lost {
            self.outages.lost[*host] = true;
            self.tally.timeline.push(Happening {
                at: now,
                what: format!(
                    "{} counted lost (no heartbeat for {})",
                    self.problem.hosts[*host].name,
                    seconds_text(timeout)
                ),
            });
        }
        // Work is placed again when a machine is lost, and when one comes back while some waits for a machine.
        let waiting = self.instances.iter().any(|instance| instance.host.is_none());
        if newly_lost.is_empty() && !(came_back && waiting) {
            return;
        }
        let before: Vec<Option<usize>> = self.instances.iter().map(|instance| instance.host).collect();
        let moved = place_again(self.application, self.problem, &mut self.instances, &self.outages.lost);
        for (instance, to) in &moved {
            let name = &self.problem.components[*instance].name;
            let what = match to {
                Some(to) => format!("{name} placed again on {}", self.problem.hosts[*to].name),
                None if before[*instance].is_some() => {
                    format!("{name} fits on no machine left; what it reads waits for it")
                }
                None => continue,
            };
            self.tally.timeline.push(Happening { at: now, what });
        }
        for path in self.paths.iter_mut() {
            if moved.iter().any(|(instance, _)| *instance == path.from || *instance == path.to) {
                (path.links, path.latency) =
                    route(self.problem, self.instances[path.from].host, self.instances[path.to].host);
            }
        }
    }

    /// What reached a stage's instances is counted, answered or passed on; then they queue what they make.
    fn produce(&mut self, stage: usize, now: f64) {
        let step = self.step;
        for position in 0..self.instances_at[stage].len() {
            let index = self.instances_at[stage][position];
            let instance = &mut self.instances[index];
            let part = &self.parts[instance.part];
            if part.kind == ComponentKind::Source {
                instance.ratio = 1.0;
                instance.arrivals.clear();
                instance.arrivals.push((now, 1.0));
                instance.arrived = 1.0;
            } else {
                let mut answered = 0.0;
                // A pool on a machine that is down (or on none) answers nothing; its stream input waits in the
                // paths to it, and HTTP callers are turned away.
                if let Some(service) = part.service.filter(|_| self.outages.up(instance.host)) {
                    let pool =
                        self.pools.iter_mut().find(|pool| pool.instance == index).expect("a pool per service instance");
                    let stats = &mut self.services[service];
                    let requests = instance.arrived + stats.http_rate / self.pools_per_service[service] * step;
                    answered = serve(pool, stats, requests, step, now);
                }
                if part.terminal || part.service.is_some() {
                    for (made, records) in &instance.arrivals {
                        let age = (now - made).max(0.0) + answered;
                        self.tally.latencies[instance.part].add(age, *records);
                        if *records > 0.0 {
                            self.tally.interval_oldest = self.tally.interval_oldest.max(age);
                        }
                    }
                    self.tally.delivered_to[instance.part] += instance.arrived;
                    self.tally.interval_arrived += instance.arrived;
                }
                instance.ratio =
                    if instance.nominal_in > 0.0 { instance.arrived / (instance.nominal_in * step) } else { 0.0 };
                // What it makes is as old as what reached it, and a window's result older by its wait.
                for arrival in instance.arrivals.iter_mut() {
                    arrival.0 -= part.window_wait;
                }
            }
            let producing = self.outages.up(instance.host);
            if part.kind == ComponentKind::Source {
                let making = self.source_rate[index] * step;
                self.tally.made += making;
                match instance.host {
                    // A machine that is down makes nothing it can keep (a camera off, a gateway gone).
                    Some(_) if !producing => self.tally.lost_with_machines += making,
                    // A source placed nowhere takes nothing in: its senders keep what they have.
                    None => self.tally.held_back_unplaced += making,
                    Some(_) => {}
                }
            }
            if !producing {
                continue;
            }
            for path_index in &self.outgoing[index] {
                let path = &mut self.paths[*path_index];
                let (limit, ttl, drop_oldest) = part.buffer;
                let limit_records = limit / path.record_bytes.max(1.0);
                let mut taken = path.records_per_second * step * instance.ratio;
                if path.queued + taken > limit_records && !drop_oldest {
                    let room = (limit_records - path.queued).max(0.0);
                    path.held_back += taken - room;
                    taken = room;
                }
                if taken > 0.0 && instance.arrived > 0.0 {
                    for (made, records) in &instance.arrivals {
                        let records = taken * records / instance.arrived;
                        queue_up(&mut path.queue, Chunk { queued: now, made: *made, records });
                    }
                    path.queued += taken;
                }
                if path.queued > limit_records {
                    let excess = path.queued - limit_records;
                    path.dropped += take_oldest(&mut path.queue, excess, |_, _| {});
                    path.queued -= excess;
                }
                if let Some(ttl) = ttl {
                    while path.queue.front().is_some_and(|chunk| chunk.queued < now - ttl) {
                        let chunk = path.queue.pop_front().expect("a front chunk");
                        path.dropped += chunk.records;
                        path.queued -= chunk.records;
                    }
                }
            }
        }
    }

    /// A stage's paths deliver what their consumers can take in and their links carry, oldest first.
    fn deliver(&mut self, stage: usize) {
        let Scratch { demand, capacity_left, into_instance, link_left, on_link, link_used, .. } = &mut self.scratch;
        let stage_paths = || self.instances_at[stage].iter().flat_map(|index| self.outgoing[*index].iter().copied());
        for path_index in stage_paths() {
            let path = &self.paths[path_index];
            into_instance[path.to] = 0.0;
            for link in &path.links {
                on_link[*link] = 0.0;
            }
        }
        for path_index in stage_paths() {
            let path = &self.paths[path_index];
            let open = self.outages.up(self.instances[path.from].host) && self.outages.up(self.instances[path.to].host);
            demand[path_index] = if open { path.queued } else { 0.0 };
            into_instance[path.to] += demand[path_index];
        }
        for path_index in stage_paths() {
            let path = &self.paths[path_index];
            if into_instance[path.to] > capacity_left[path.to] {
                demand[path_index] *= capacity_left[path.to] / into_instance[path.to];
            }
            for link in &path.links {
                on_link[*link] += demand[path_index] * path.record_bytes * 8.0;
            }
        }
        let step = self.step;
        for position in 0..self.instances_at[stage].len() {
            let index = self.instances_at[stage][position];
            for path_index in &self.outgoing[index] {
                let path = &mut self.paths[*path_index];
                let share = path
                    .links
                    .iter()
                    .map(|link| if on_link[*link] > 0.0 { (link_left[*link] / on_link[*link]).min(1.0) } else { 1.0 })
                    .fold(1.0, f64::min);
                let sending = demand[*path_index] * share;
                if sending <= 0.0 {
                    continue;
                }
                let consumer = &mut self.instances[path.to];
                let latency = path.latency;
                take_oldest(&mut path.queue, sending, |records, chunk| {
                    // A record grows older by the links' latency on the way.
                    arrive(consumer, chunk.made - latency, records, step);
                });
                path.queued = (path.queued - sending).max(0.0);
                capacity_left[path.to] -= sending;
                let bits = sending * path.record_bytes * 8.0;
                for link in &path.links {
                    self.tally.link_bits[*link] += bits;
                    self.tally.interval_bits[*link] += bits;
                    link_used[*link] += bits;
                }
            }
        }
        for path_index in stage_paths() {
            for link in &self.paths[path_index].links {
                link_left[*link] -= link_used[*link];
                link_used[*link] = 0.0;
            }
        }
    }

    /// What the step is counted as: the links' peaks, the buffers' peaks, the replicas, and a sample of the series
    /// at the end of each interval.
    fn count_step(&mut self, number: u64) {
        let (step, tally, scratch) = (self.step, &mut self.tally, &mut self.scratch);
        for (link, network) in self.problem.links.iter().enumerate() {
            if let Some(bits) = network.capacity {
                let full = bits * (1.0 - self.loss[link]) * step;
                if full > 0.0 && !self.outages.link_down[link] {
                    let used = ((full - scratch.link_left[link]) / (bits * step)).clamp(0.0, 1.0);
                    tally.link_peak[link] = tally.link_peak[link].max(used);
                }
            }
        }
        scratch.buffer_totals.iter_mut().for_each(|total| *total = 0.0);
        for path in self.paths.iter_mut() {
            // What is left once the step delivered: a path's own backlog, not the records passing through.
            path.peak_bytes = path.peak_bytes.max(path.queued * path.record_bytes);
            let pair = self.pair_index[&(self.instances[path.from].part, self.instances[path.to].part)];
            scratch.buffer_totals[pair] += path.queued * path.record_bytes;
        }
        for (peak, total) in tally.buffer_peak_all.iter_mut().zip(&scratch.buffer_totals) {
            *peak = peak.max(*total);
        }
        for (service, replicas) in tally.replicas_now.iter_mut().enumerate() {
            *replicas = self.pools.iter().filter(|pool| pool.service == service).map(|pool| pool.replicas).sum();
            self.services[service].max_replicas = self.services[service].max_replicas.max(*replicas);
        }
        if !(number + 1).is_multiple_of(self.every) && number + 1 != self.steps {
            return;
        }
        let interval = (number % self.every + 1) as f64 * step;
        tally.series.seconds.push((number + 1) as f64 * step);
        for (link, network) in self.problem.links.iter().enumerate() {
            let per_second = tally.interval_bits[link] / interval;
            tally.series_links[link].push(network.capacity.map_or(per_second, |bits| per_second / bits));
            tally.interval_bits[link] = 0.0;
        }
        tally.series.buffered_bytes.push(scratch.buffer_totals.iter().sum());
        tally.series.arriving_per_second.push(tally.interval_arrived / interval);
        tally.series.oldest_arrival_seconds.push(tally.interval_oldest);
        (tally.interval_arrived, tally.interval_oldest) = (0.0, 0.0);
        tally.series.replicas.push(tally.replicas_now.clone());
    }

    /// The report of the whole run.
    fn report(self) -> Report {
        let Simulation { application, problem, step, steps, parts, instances, paths, services, outages, tally, .. } =
            self;
        let Tally { timeline, latencies, delivered_to, link_bits, link_peak, link_down_seconds, .. } = &tally;
        let records_in_flight: f64 = paths.iter().map(|path| path.queued).sum();
        let stranded: f64 = paths
            .iter()
            .filter(|path| {
                instances[path.from].host.is_some_and(|host| outages.lost[host] && outages.down_since[host].is_some())
            })
            .map(|path| path.queued)
            .sum();
        let mut buffers: BTreeMap<(usize, usize), BufferReport> = BTreeMap::new();
        for path in &paths {
            let (from, to) = (instances[path.from].part, instances[path.to].part);
            if path.peak_bytes == 0.0 && path.dropped == 0.0 && path.held_back == 0.0 {
                continue;
            }
            let entry = buffers.entry((from, to)).or_insert_with(|| BufferReport {
                from: parts[from].name.clone(),
                to: parts[to].name.clone(),
                limit_bytes: parts[from].buffer.0,
                peak_bytes_all: tally.buffer_peak_all[self.pair_index[&(from, to)]],
                ..BufferReport::default()
            });
            entry.paths += 1;
            entry.peak_bytes_one_path = entry.peak_bytes_one_path.max(path.peak_bytes);
            entry.dropped += path.dropped;
            entry.held_back += path.held_back;
        }
        let hourly: f64 = {
            let mut used = vec![false; problem.hosts.len()];
            for instance in &instances {
                if let Some(host) = instance.host {
                    used[host] = true;
                }
            }
            problem
                .hosts
                .iter()
                .enumerate()
                .filter(|(index, host)| used[*index] || host.always_on)
                .map(|(_, host)| host.hourly_cost)
                .sum()
        };
        let mut notes = vec![
            format!(
                "records are followed in groups by when they were made (at most {ARRIVAL_GROUPS} per instance and step), so finer spread is not seen"
            ),
            "a link between tiers is shared by every machine that uses it, as the planner counts it".to_string(),
        ];
        let estimated: Vec<&str> = application
            .services
            .iter()
            .filter(|service| !self.scenario.prediction_seconds.contains_key(&service.model))
            .map(|service| service.name.as_str())
            .collect();
        if !estimated.is_empty() {
            notes.push(format!(
                "no measured profile for the model of {}: a prediction takes the planner's estimate (train it, or import it, so the store has its profile)",
                estimated.join(", ")
            ));
        }
        if application.policies.iter().any(|policy| !matches!(policy.condition, Condition::NodeLost)) {
            notes.push("policies other than migrate-on-node-lost are not simulated yet".into());
        }
        let reported_links: Vec<usize> =
            (0..problem.links.len()).filter(|link| link_bits[*link] > 0.0 || link_down_seconds[*link] > 0.0).collect();
        // The series of replicas: a row per sample becomes a row per service.
        let mut replicas_by_service: Vec<Vec<u32>> = vec![Vec::new(); services.len()];
        for sample in &tally.series.replicas {
            for (service, replicas) in sample.iter().enumerate() {
                replicas_by_service[service].push(*replicas);
            }
        }
        let series = Series {
            seconds: tally.series.seconds.clone(),
            link_use: reported_links.iter().map(|link| tally.series_links[*link].clone()).collect(),
            buffered_bytes: tally.series.buffered_bytes.clone(),
            arriving_per_second: tally.series.arriving_per_second.clone(),
            oldest_arrival_seconds: tally.series.oldest_arrival_seconds.clone(),
            replicas: replicas_by_service,
        };
        let seconds = steps as f64 * step;
        Report {
            series,
            app: application.name.clone(),
            simulated_seconds: seconds,
            step_seconds: step,
            machines: problem.hosts.len(),
            instances: instances.len(),
            records_made: tally.made,
            records_delivered: delivered_to
                .iter()
                .zip(&parts)
                .filter(|(_, part)| part.terminal || part.service.is_some())
                .map(|(records, _)| records)
                .sum(),
            records_in_flight: records_in_flight - stranded,
            records_dropped: paths.iter().map(|path| path.dropped).sum(),
            records_held_back: paths.iter().map(|path| path.held_back).sum::<f64>() + tally.held_back_unplaced,
            records_lost_with_machines: tally.lost_with_machines + stranded,
            links: reported_links
                .iter()
                .map(|link| {
                    let network = &problem.links[*link];
                    LinkReport {
                        from: network.from.clone(),
                        to: network.to.clone(),
                        capacity_bits_per_second: network.capacity,
                        bytes: link_bits[*link] / 8.0,
                        mean_utilisation: network.capacity.map_or(0.0, |bits| link_bits[*link] / (bits * seconds)),
                        peak_utilisation: link_peak[*link],
                        down_seconds: link_down_seconds[*link],
                    }
                })
                .collect(),
            paths: parts
                .iter()
                .enumerate()
                .filter(|(index, part)| (part.terminal || part.service.is_some()) && delivered_to[*index] > 0.0)
                .map(|(index, part)| {
                    let histogram = &latencies[index];
                    PathReport {
                        path: part.path.clone(),
                        records: delivered_to[index],
                        p50_ms: histogram.quantile(0.5) * 1000.0,
                        p95_ms: histogram.quantile(0.95) * 1000.0,
                        p99_ms: histogram.quantile(0.99) * 1000.0,
                        max_ms: histogram.largest * 1000.0,
                    }
                })
                .collect(),
            buffers: buffers.into_values().collect(),
            services: services
                .into_iter()
                .map(|stats| ServiceReport {
                    objective: stats
                        .objective
                        .map(|(percentile, at_most)| format!("p{percentile} <= {}", seconds_text(at_most))),
                    objective_missed: if stats.requests > 0.0 { stats.missed / stats.requests } else { 0.0 },
                    p50_ms: stats.latencies.quantile(0.5) * 1000.0,
                    p99_ms: stats.latencies.quantile(0.99) * 1000.0,
                    max_replicas: stats.max_replicas,
                    name: stats.name,
                    requests: stats.requests,
                    cold_starts: stats.cold_starts,
                })
                .collect(),
            timeline: timeline.clone(),
            cost: Cost { hourly, total: hourly * seconds / 3600.0 },
            notes,
        }
    }
}

/// The components, in the order the planner lists them, with what the simulation needs of each; each one's index
/// by name; and each one's producers.
fn parts_of<'p>(
    application: &Application,
    problem: &'p Problem,
) -> (Vec<Part>, HashMap<&'p str, usize>, Vec<Vec<usize>>) {
    let mut part_index: HashMap<&str, usize> = HashMap::new();
    let mut parts: Vec<Part> = Vec::new();
    for component in &problem.components {
        if part_index.contains_key(component.name.as_str()) {
            continue;
        }
        part_index.insert(component.name.as_str(), parts.len());
        let window_wait = application
            .streams
            .iter()
            .find(|stream| stream.name == component.name)
            .and_then(|stream| stream.window.as_ref())
            .map_or(0.0, |window| match window {
                stratum_core::ir::Window::Tumbling { size } => size.0 / 2.0,
                stratum_core::ir::Window::Sliding { size, .. } => size.0 / 2.0,
                stratum_core::ir::Window::Session { gap } => gap.0,
            });
        let buffer = application
            .sources
            .iter()
            .find(|source| source.name == component.name)
            .and_then(|source| source.buffer.as_ref())
            .map_or((stratum_core::ir::DEFAULT_PATH_BUFFER as f64, None, false), |buffer| {
                (
                    buffer.max.0 as f64,
                    Some(buffer.ttl.0).filter(|ttl| *ttl > 0.0),
                    buffer.when_full == WhenFull::DropOldest,
                )
            });
        let service = application.services.iter().position(|service| service.name == component.name);
        parts.push(Part {
            name: component.name.clone(),
            kind: component.kind,
            window_wait,
            terminal: true,
            path: String::new(),
            buffer,
            service,
        });
    }
    let mut producers_of: Vec<Vec<usize>> = vec![Vec::new(); parts.len()];
    for flow in &problem.flows {
        let (from, to) = (
            part_index[problem.components[flow.from].name.as_str()],
            part_index[problem.components[flow.to].name.as_str()],
        );
        parts[from].terminal = false;
        if !producers_of[to].contains(&from) {
            producers_of[to].push(from);
        }
    }
    for index in 0..parts.len() {
        // The path's name follows each component's first input back to where records are made.
        let mut chain = vec![parts[index].name.clone()];
        let mut at = index;
        while let Some(first) = producers_of[at].first() {
            if chain.len() > parts.len() {
                break;
            }
            at = *first;
            chain.push(parts[at].name.clone());
        }
        chain.reverse();
        parts[index].path = chain.join(" → ");
    }
    (parts, part_index, producers_of)
}

/// Services: their model's time per request and their objective; and one pool per placed instance.
fn services_of(
    application: &Application,
    scenario: &Scenario,
    parts: &[Part],
    instances: &[Instance],
) -> (Vec<ServiceStats>, Vec<Pool>) {
    let services = application
        .services
        .iter()
        .map(|service| {
            let model = application.models.iter().find(|model| model.name == service.model);
            let target = service.slo.latency.iter().min_by(|a, b| a.at_most.0.total_cmp(&b.at_most.0));
            ServiceStats {
                name: service.name.clone(),
                service_seconds: scenario
                    .prediction_seconds
                    .get(&service.model)
                    .copied()
                    .unwrap_or_else(|| model.map_or(1.0, estimated_service_time_ms) / 1000.0)
                    + SERVING_OVERHEAD_SECONDS,
                servers_per_replica: service.resources.cpu.unwrap_or(0.5).round().max(1.0),
                objective: target.map(|target| (target.percentile, target.at_most.0)),
                latencies: Histogram::new(),
                requests: 0.0,
                missed: 0.0,
                cold_starts: 0,
                max_replicas: 0,
                http_rate: match service.input {
                    ServiceInput::Http { .. } => service.slo.throughput.map_or(0.0, |rate| rate.0),
                    ServiceInput::Stream { .. } => 0.0,
                },
            }
        })
        .collect();
    let mut pools = Vec::new();
    for (index, instance) in instances.iter().enumerate() {
        let Some(service) = parts[instance.part].service else { continue };
        let scale = &application.services[service].scale;
        let policy =
            ScalePolicy::new(scale.min, scale.max, scale.concurrency, scale.idle.map(|idle| idle.0), scale.predictive);
        pools.push(Pool {
            service,
            instance: index,
            autoscaler: Autoscaler::new(policy),
            replicas: scale.min,
            backlog: 0.0,
            next_tick: 0.0,
        });
    }
    (services, pools)
}

/// How many groups of records, by when they were made, an instance keeps of what reached it in one step.
const ARRIVAL_GROUPS: usize = 64;

/// Notes records that reached an instance, made at `made`: with the group made at about the same time (within
/// half a step), or a group of their own; past `ARRIVAL_GROUPS` the two nearest groups are merged.
fn arrive(instance: &mut Instance, made: f64, records: f64, step: f64) {
    instance.arrived += records;
    if let Some(same) = instance.arrivals.iter_mut().find(|(when, _)| (*when - made).abs() < step / 2.0) {
        same.0 = (same.0 * same.1 + made * records) / (same.1 + records);
        same.1 += records;
        return;
    }
    instance.arrivals.push((made, records));
    if instance.arrivals.len() > ARRIVAL_GROUPS {
        instance.arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
        let gap = |arrivals: &[(f64, f64)], index: usize| arrivals[index].0 - arrivals[index - 1].0;
        let nearest = (1..instance.arrivals.len())
            .min_by(|a, b| gap(&instance.arrivals, *a).total_cmp(&gap(&instance.arrivals, *b)))
            .expect("more than one group");
        let (earlier, later) = (instance.arrivals[nearest - 1], instance.arrivals[nearest]);
        let records = earlier.1 + later.1;
        instance.arrivals[nearest - 1] = ((earlier.0 * earlier.1 + later.0 * later.1) / records, records);
        instance.arrivals.remove(nearest);
    }
}

/// A path's queue keeps its chunks at about a hundredth of its age apart: a new chunk joins the newest one when
/// that was queued more recently than that (their times are averaged by records), so a log hours long is a few
/// hundred chunks, not one per step.
fn queue_up(queue: &mut VecDeque<Chunk>, chunk: Chunk) {
    let (length, oldest) = (queue.len(), queue.front().map_or(chunk.queued, |front| front.queued));
    if let Some(newest) = queue.back_mut() {
        let age = chunk.queued - oldest;
        if length > 1 && chunk.queued - newest.queued < age / 100.0 {
            let records = newest.records + chunk.records;
            newest.made = (newest.made * newest.records + chunk.made * chunk.records) / records;
            newest.queued = (newest.queued * newest.records + chunk.queued * chunk.records) / records;
            newest.records = records;
            return;
        }
    }
    queue.push_back(chunk);
}

/// Takes `records` from the front of a queue, telling `each` how many of which chunk; returns how many it took.
fn take_oldest(queue: &mut VecDeque<Chunk>, records: f64, mut each: impl FnMut(f64, &Chunk)) -> f64 {
    let mut left = records;
    let mut taken = 0.0;
    while left > 1e-9 {
        let Some(front) = queue.front_mut() else { break };
        let part = front.records.min(left);
        each(part, front);
        front.records -= part;
        left -= part;
        taken += part;
        if front.records <= 1e-9 {
            queue.pop_front();
        }
    }
    taken
}

/// One step of a service pool: answers `requests` with its replicas (an M/M/c queue, plus a backlog when they
/// cannot keep up), lets the autoscaler decide every half second, and returns the mean time a request took.
fn serve(pool: &mut Pool, stats: &mut ServiceStats, requests: f64, step: f64, now: f64) -> f64 {
    let arrivals = requests / step;
    let rate = 1.0 / stats.service_seconds;
    let servers = f64::from(pool.replicas) * stats.servers_per_replica;
    let mut cold = 0.0;
    if pool.replicas == 0 && requests > 0.0 {
        // A request to a pool at zero starts a replica and waits for it.
        cold = COLD_START_SECONDS;
    }
    let capacity = servers.max(stats.servers_per_replica) * rate;
    pool.backlog = (pool.backlog + (arrivals - capacity) * step).max(0.0);
    let backlog_wait = pool.backlog / capacity;
    let chance = waiting_chance(servers.max(stats.servers_per_replica), arrivals, rate);
    let spare = (capacity - arrivals).max(1e-9);
    let mean_wait = if arrivals < capacity { chance / spare } else { 0.0 } + backlog_wait;
    let latency = stats.service_seconds + mean_wait + cold;
    // The latency distribution: the service time plus an exponential wait with the Erlang C chance of waiting.
    if requests > 0.0 {
        // Each point stands for a band of the distribution, weighted by the band's share.
        for (quantile, share) in LATENCY_BANDS {
            let tail = 1.0 - quantile;
            let wait = if arrivals < capacity && chance > tail { (chance / tail).ln() / spare } else { 0.0 };
            stats.latencies.add(stats.service_seconds + wait + backlog_wait + cold, share * requests);
        }
        if let Some((_, at_most)) = stats.objective {
            let budget = at_most - stats.service_seconds - backlog_wait - cold;
            let missed_share =
                if budget <= 0.0 || arrivals >= capacity { 1.0 } else { (chance * (-spare * budget).exp()).min(1.0) };
            stats.missed += missed_share * requests;
        }
        stats.requests += requests;
    }
    while pool.next_tick <= now + step {
        let tick = pool.next_tick;
        pool.autoscaler.observe_latency(latency);
        pool.autoscaler.observe(tick, arrivals * latency, (arrivals * SCALE_TICK_SECONDS).round() as u64);
        let decision = pool.autoscaler.decide(tick, pool.replicas);
        if decision.replicas != pool.replicas {
            if pool.replicas == 0 {
                stats.cold_starts += 1;
            }
            pool.replicas = decision.replicas;
        }
        pool.next_tick += SCALE_TICK_SECONDS;
    }
    latency
}

fn endpoint_name(endpoint: &stratum_core::ir::Endpoint) -> String {
    match endpoint {
        stratum_core::ir::Endpoint::Tier(tier) => tier.name().to_string(),
        stratum_core::ir::Endpoint::Node(name) => name.clone(),
    }
}

/// Places again the instances of machines lost and those placed nowhere, as the control plane does: per-node sources go with their
/// machine; every other instance of a lost machine goes to the machine the planner's search scores best among
/// those still up, where a `migrate(TIER)` policy on `node_lost` names its tier. Returns the instances moved and
/// where (none when no machine can take it).
fn place_again(
    application: &Application,
    problem: &Problem,
    instances: &mut [Instance],
    lost: &[bool],
) -> Vec<(usize, Option<usize>)> {
    let orphans: Vec<usize> = (0..instances.len())
        .filter(|index| !instances[*index].pinned && instances[*index].host.is_none_or(|host| lost[host]))
        .collect();
    if orphans.is_empty() {
        return Vec::new();
    }
    let mut moved_problem = problem.clone();
    for orphan in &orphans {
        let name = &problem.components[*orphan].name;
        if let Some(tier) = migrate_to(application, name) {
            let placement = &mut moved_problem.components[*orphan].placement;
            placement.tier = Some(tier);
            placement.node = None;
        }
    }
    let mut state = State::new(&moved_problem);
    for (index, instance) in instances.iter().enumerate() {
        if let Some(host) = instance.host.filter(|host| !lost[*host]) {
            state.apply(index, host, 0.0);
        }
    }
    let mut moved = Vec::new();
    for orphan in orphans {
        let best = state
            .candidates(orphan)
            .iter()
            .filter(|host| !lost[**host])
            .filter_map(|host| state.evaluate(orphan, *host).ok().map(|score| (score, *host)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(score, host)| {
                state.apply(orphan, host, score);
                host
            });
        instances[orphan].host = best;
        moved.push((orphan, best));
    }
    moved
}

/// The tier a `migrate` policy on `node_lost` sends a component to, if one names it.
fn migrate_to(application: &Application, component: &str) -> Option<Tier> {
    application.policies.iter().find_map(|policy| match (&policy.condition, &policy.action) {
        (Condition::NodeLost, Action::Migrate { to })
            if policy.targets.is_empty() || policy.targets.iter().any(|target| target == component) =>
        {
            *to
        }
        _ => None,
    })
}
