//! The planner: decides where every component of a checked application runs across edge, fog and cloud, and
//! proves that the result fits the machines (cores, memory, disk, accelerators) and the network (bandwidth,
//! latency objectives). Problems are reported through the language's diagnostics, pointing into the file.
//!
//! Pure: no IO. The output is the versioned [`Plan`], the only contract with the control plane and agents.

#![warn(missing_docs)]
pub mod diff;
pub mod generate;
pub mod model;
mod render;
pub mod search;

pub use diff::{PlanDiff, diff};
pub use render::render;

use model::Problem;
use search::{Rejection, State};
use stratum_core::plan::*;
use stratum_core::units::{Bandwidth, ByteSize, Duration};
use stratum_lang::{Checked, Code, Diagnostic, SpanIndex};

/// The result of planning.
pub struct Planned {
    /// None when no placement satisfies every constraint; the diagnostics say why.
    pub plan: Option<Plan>,
    /// Problems found while planning, pointing into the file.
    pub diagnostics: Vec<Diagnostic>,
    /// Every alternative was explored, so the plan is optimal for the objective (small problems).
    pub optimal: bool,
}

/// Plans a checked application. The application must be free of errors.
pub fn plan(checked: &Checked) -> Planned {
    let problem = Problem::from_application(&checked.application);
    let impossible = slower_than_objective(&problem, &checked.spans);
    if !impossible.is_empty() {
        return Planned { plan: None, diagnostics: impossible, optimal: false };
    }
    match search::solve(&problem) {
        Some(solution) => {
            let mut state = State::new(&problem);
            let order = search::placement_order(&state);
            for component in order {
                let host = solution.assignment[component];
                let added = state.evaluate(component, host).unwrap_or(0.0);
                state.apply(component, host, added);
            }
            Planned { plan: Some(build_plan(&state)), diagnostics: Vec::new(), optimal: solution.exhaustive }
        }
        None => {
            let diagnostics = match search::first_failure(&problem) {
                Some((state, component)) => vec![explain_failure(&state, component, &checked.spans)],
                None => Vec::new(),
            };
            Planned { plan: None, diagnostics, optimal: false }
        }
    }
}

fn build_plan(state: &State) -> Plan {
    let problem = state.problem;
    let mut assignments: Vec<Assignment> = problem
        .components
        .iter()
        .enumerate()
        .map(|(index, component)| {
            let host = state.assignment[index].expect("a complete plan");
            let machine = &problem.hosts[host];
            Assignment {
                component: component.name.clone(),
                kind: component.kind,
                instance: component.instance,
                host: machine.name.clone(),
                tier: machine.tier,
                requests: component.requests.clone(),
                reason: reason(state, index),
            }
        })
        .collect();
    assignments.sort_by(|a, b| (&a.component, a.instance).cmp(&(&b.component, b.instance)));

    // What each host's components take, added up in one pass over the components.
    let mut taken = vec![(0.0, 0, 0, false); problem.hosts.len()];
    for (component, host) in problem.components.iter().zip(&state.assignment) {
        let Some(host) = host else { continue };
        let (cpu, memory, disk, used) = &mut taken[*host];
        *cpu += component.requests.cpu;
        *memory += component.requests.memory.0;
        *disk += component.requests.disk.0;
        *used = true;
    }
    let mut hosts: Vec<HostUsage> = problem
        .hosts
        .iter()
        .zip(taken)
        .map(|(host, (cpu, memory, disk, used))| HostUsage {
            host: host.name.clone(),
            tier: host.tier,
            pool: host.pool.as_ref().map(|(pool, _)| pool.clone()),
            in_use: used || host.always_on,
            cpu_used: cpu,
            cpu_capacity: host.cpu,
            memory_used: ByteSize(memory),
            memory_capacity: ByteSize(host.memory),
            disk_capacity: host.disk.map(ByteSize),
            disk_used: ByteSize(disk),
        })
        .collect();
    // By tier, then in the order the file declares them (pool members in member order).
    hosts.sort_by_key(|host| host.tier);

    let links = problem
        .links
        .iter()
        .enumerate()
        .map(|(index, link)| LinkUsage {
            from: link.from.clone(),
            to: link.to.clone(),
            latency: Duration(link.latency_ms / 1000.0),
            capacity: link.capacity.map(Bandwidth),
            used: Bandwidth(state.link_used[index]),
            assumed: link.assumed,
        })
        .collect();

    let mut objective = Objective { score: state.score, ..Objective::default() };
    for flow in &problem.flows {
        let (Some(a), Some(b)) = (state.assignment[flow.from], state.assignment[flow.to]) else { continue };
        let route = problem.route(a, b);
        objective.path_latency_ms += route.latency_ms;
        if route.crosses_tiers {
            objective.cross_tier_traffic.0 += flow.bits_per_second;
        }
    }
    objective.hourly_cost = problem
        .hosts
        .iter()
        .zip(&hosts_in_use(state))
        .filter(|(_, in_use)| **in_use)
        .map(|(host, _)| host.hourly_cost)
        .sum();
    Plan { plan_version: PLAN_VERSION, app: problem.app.clone(), assignments, hosts, links, objective }
}

fn hosts_in_use(state: &State) -> Vec<bool> {
    let problem = state.problem;
    let mut in_use: Vec<bool> = problem.hosts.iter().map(|host| host.always_on).collect();
    for host in state.assignment.iter().flatten() {
        in_use[*host] = true;
    }
    in_use
}

/// Why a component went where it did, in words.
fn reason(state: &State, component: usize) -> String {
    let problem = state.problem;
    let wanted = &problem.components[component];
    if wanted.pinned.is_some() {
        return "one instance on every matching node (`per node` rate)".to_string();
    }
    let placement = &wanted.placement;
    let mut constraints = Vec::new();
    if let Some(node) = &placement.node {
        constraints.push(format!("on = {node}"));
    } else if let Some(pool) = &placement.pool {
        constraints.push(format!("on = {pool}"));
    } else if let Some(tier) = placement.tier {
        constraints.push(format!("on = {}", tier.name()));
    }
    if let Some(tier) = placement.private_data_tier {
        constraints.push(format!("stays on {} with the private fields it reads", tier.name()));
    }
    if !placement.labels.is_empty() {
        let labels: Vec<String> = placement.labels.iter().map(|(key, value)| format!("{key}: \"{value}\"")).collect();
        constraints.push(format!("labels {{ {} }}", labels.join(", ")));
    }
    for accelerator in &wanted.requests.accelerators {
        constraints.push(format!("gpu = {} x \"{}\"", accelerator.count, accelerator.kind));
    }
    if let Some(arch) = placement.arch {
        constraints.push(format!("arch = {arch:?}").to_lowercase());
    }
    if let Some(near) = &wanted.near {
        constraints.push(format!("near {near}"));
    }
    let candidates = state.candidates(component).len();
    let constraint_text = if constraints.is_empty() { "no constraints".to_string() } else { constraints.join(", ") };
    format!("{constraint_text}; best of {candidates} possible machine(s) for latency, cross-tier traffic and cost")
}

/// A diagnostic for the first component that fits nowhere, with each machine's reason.
fn explain_failure(state: &State, component: usize, spans: &SpanIndex) -> Diagnostic {
    let diagnostic = failure_diagnostic(state, component, spans);
    // A component kept on a tier by the privacy rule gets the reason, since the file does not say it.
    match state.problem.components[component].placement.private_data_tier {
        Some(tier) => {
            let reason = format!(
                "`{}` must run on {} because it reads private fields produced there; read fewer fields, or give {} more room",
                state.problem.components[component].name,
                tier.name(),
                tier.name()
            );
            let help = diagnostic.help.clone().map(|help| format!("{help}\n{reason}")).unwrap_or(reason);
            diagnostic.help(help)
        }
        None => diagnostic,
    }
}

fn failure_diagnostic(state: &State, component: usize, spans: &SpanIndex) -> Diagnostic {
    let problem = state.problem;
    let wanted = &problem.components[component];
    let name = &wanted.name;
    let item = name.trim_end_matches(" (training)");
    let span = spans.item(item).unwrap_or_default();
    if problem.hosts.is_empty() {
        return Diagnostic::new(
            Code::NoFeasibleNode,
            span,
            format!("no machine can run `{name}`: the file declares no nodes or pools"),
        )
        .label("needs a machine")
        .help("declare the machines, for example `node laptop { tier = edge  cpu = 4  memory = 8 GiB }`");
    }
    let rejections: Vec<(usize, Rejection)> = (0..problem.hosts.len())
        .filter_map(|host| state.evaluate(component, host).err().map(|rejection| (host, rejection)))
        .collect();
    let dynamic: Vec<&(usize, Rejection)> =
        rejections.iter().filter(|(_, rejection)| !matches!(rejection, Rejection::Static(_))).collect();

    if dynamic.is_empty() {
        let mut lines: Vec<String> = Vec::new();
        for (host, rejection) in &rejections {
            // Members of a pool are identical: name the pool once.
            let machine = &problem.hosts[*host];
            let who = match &machine.pool {
                Some((pool, _)) => format!("pool `{pool}`"),
                None => format!("`{}`", machine.name),
            };
            let line = format!("{who} {}", rejection.describe());
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
        let shown = lines.len().min(8);
        let mut help = format!("machines ruled out:\n{}", lines[..shown].join("\n"));
        if lines.len() > shown {
            help.push_str(&format!("\nand {} more", lines.len() - shown));
        }
        return Diagnostic::new(
            Code::NoFeasibleNode,
            span,
            format!("no machine satisfies the constraints of `{name}`"),
        )
        .label("every machine fails one of its constraints")
        .help(help);
    }

    if let Some((_, Rejection::Latency { input, route_ms, service_ms, target_ms, percentile })) =
        dynamic.iter().find(|(_, rejection)| matches!(rejection, Rejection::Latency { .. }))
        && dynamic.iter().all(|(_, rejection)| matches!(rejection, Rejection::Latency { .. }))
    {
        let best_route = dynamic
            .iter()
            .filter_map(|(_, rejection)| match rejection {
                Rejection::Latency { route_ms, .. } => Some(*route_ms),
                _ => None,
            })
            .fold(*route_ms, f64::min);
        let objective_span = spans.attribute(item, &format!("slo.p{}", percentile_name(*percentile))).unwrap_or(span);
        let mut diagnostic = Diagnostic::new(
            Code::LatencyUnreachable,
            objective_span,
            format!(
                "`{name}` cannot answer within {target_ms} ms: its input `{input}` is at least {best_route} ms away and a prediction takes about {service_ms} ms"
            ),
        )
        .label(format!("{best_route} ms + {service_ms} ms > {target_ms} ms"))
        .help("place the service on the tier of its input (`on = …`), relax the objective, or choose faster candidate algorithms");
        if let Some(input_span) = spans.item(input) {
            diagnostic = diagnostic.secondary(input_span, "the input is here");
        }
        let _ = route_ms;
        return diagnostic;
    }

    if let Some((_, Rejection::Bandwidth { link, needs, used, capacity, users })) =
        dynamic.iter().find(|(_, rejection)| matches!(rejection, Rejection::Bandwidth { .. }))
        && dynamic
            .iter()
            .all(|(_, rejection)| matches!(rejection, Rejection::Bandwidth { .. } | Rejection::Latency { .. }))
    {
        let network_link = &problem.links[*link];
        let key = format!("link {}->{}", network_link.from, network_link.to);
        let link_span = spans.attribute(&key, "bandwidth").unwrap_or(span);
        let others = if users.is_empty() {
            String::new()
        } else {
            format!(" ({} already use {})", users.join(", "), Bandwidth(*used))
        };
        let diagnostic = Diagnostic::new(
            Code::BandwidthExceeded,
            link_span,
            format!(
                "link {} -> {} cannot carry `{name}`: it needs {} more, and the link has {} with {} in use",
                network_link.from,
                network_link.to,
                Bandwidth(*needs),
                Bandwidth(*capacity),
                Bandwidth(*used)
            ),
        )
        .label(format!("{} + {} > {}", Bandwidth(*used), Bandwidth(*needs), Bandwidth(*capacity)))
        .secondary(span, format!("`{name}` would send its data over this link{others}"))
        .help("filter or aggregate on the producing side, keep fewer fields, place the consumer on the producer's tier, or raise the link's bandwidth");
        return diagnostic;
    }

    // Capacity: show the machine with the most room for the resource that runs short.
    let best = dynamic
        .iter()
        .filter_map(|(host, rejection)| match rejection {
            Rejection::Capacity { .. } => Some((*host, rejection)),
            _ => None,
        })
        .max_by(|(a, _), (b, _)| {
            let room = |host: usize| problem.hosts[host].memory as f64 + problem.hosts[host].cpu;
            room(*a).total_cmp(&room(*b))
        });
    match best {
        Some((host, Rejection::Capacity { resource, needs, free, capacity, taken_by })) => {
            let machine = &problem.hosts[host];
            let machine_item =
                machine.pool.as_ref().map(|(pool, _)| pool.clone()).unwrap_or_else(|| machine.name.clone());
            let attribute = match *resource {
                "cores" => "cpu",
                "accelerators" => "gpu",
                other => other,
            };
            let taken = if taken_by.is_empty() {
                String::new()
            } else {
                let mut names = taken_by.clone();
                names.dedup();
                format!(", the rest already taken by {}", names.join(", "))
            };
            let mut diagnostic = Diagnostic::new(
                Code::CapacityExceeded,
                span,
                format!("`{name}` does not fit: it needs {needs} {resource}; `{}` has {capacity} with {free} free{taken}", machine.name),
            )
            .label(format!("needs {needs} {resource}"))
            .help(if *resource == "disk" && wanted.kind == stratum_core::plan::ComponentKind::Source {
                // A source's disk need is mostly its store-and-forward buffer, which reserves its whole size.
                format!(
                    "give `{machine_item}` more disk, lower the `max` of `{item}`'s buffer (it reserves its whole size on disk) or its own `disk = …`, or allow it on more machines"
                )
            } else {
                format!(
                    "give `{machine_item}` more {resource}, lower what `{item}` asks for (`{attribute} = …`), or allow it on more machines"
                )
            });
            if let Some(machine_span) = spans.attribute(&machine_item, attribute) {
                diagnostic = diagnostic.secondary(machine_span, format!("`{}` has {capacity}", machine.name));
            }
            diagnostic
        }
        _ => {
            let (host, rejection) = &dynamic[0];
            Diagnostic::new(
                Code::NoFeasibleNode,
                span,
                format!("`{name}` fits on no machine: `{}` {}", problem.hosts[*host].name, rejection.describe()),
            )
            .label("no machine left for it")
            .help("allow more replicas per node, or more machines")
        }
    }
}

/// Services whose predictions alone take longer than their latency objective: no placement can help.
fn slower_than_objective(problem: &Problem, spans: &SpanIndex) -> Vec<Diagnostic> {
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    for component in problem.components.iter().filter(|component| component.instance == 0) {
        let Some(target) = &component.latency_target else { continue };
        if target.service_time_ms <= target.at_most_ms {
            continue;
        }
        let name = &component.name;
        let span = spans
            .attribute(name, &format!("slo.p{}", percentile_name(target.percentile)))
            .or_else(|| spans.item(name))
            .unwrap_or_default();
        diagnostics.push(
            Diagnostic::new(
                Code::LatencyUnreachable,
                span,
                format!(
                    "`{name}` cannot answer within {} ms: a prediction alone takes about {} ms, wherever it runs",
                    target.at_most_ms, target.service_time_ms
                ),
            )
            .label(format!("{} ms > {} ms", target.service_time_ms, target.at_most_ms))
            .help("relax the objective, or choose faster candidates (the estimate is the slowest candidate's until the model is profiled)"),
        );
    }
    diagnostics
}

fn percentile_name(percentile: f64) -> String {
    let text = format!("{percentile}");
    text.replace('.', "")
}

/// Each machine's verdict for one component of a plan: its score there, or why it cannot go there.
pub struct Candidate {
    /// The machine.
    pub host: String,
    /// Its tier.
    pub tier: stratum_core::ir::Tier,
    /// The added score where it fits, or why it does not: a sentence for `stratum plan --explain`.
    pub verdict: Result<f64, String>,
    /// Whether the plan put the component there.
    pub chosen: bool,
}

/// `stratum plan --explain COMPONENT`: every machine for the component's first instance, given the rest of the plan.
pub fn explain(checked: &Checked, component: &str) -> Option<Vec<Candidate>> {
    let problem = Problem::from_application(&checked.application);
    let solution = search::solve(&problem)?;
    let index = problem.components.iter().position(|candidate| candidate.name == component)?;
    let mut state = State::new(&problem);
    for (other, host) in solution.assignment.iter().enumerate() {
        if other != index {
            let added = state.evaluate(other, *host).unwrap_or(0.0);
            state.apply(other, *host, added);
        }
    }
    let chosen = solution.assignment[index];
    let mut candidates: Vec<Candidate> = problem
        .hosts
        .iter()
        .enumerate()
        .map(|(host, machine)| Candidate {
            host: machine.name.clone(),
            tier: machine.tier,
            verdict: state.evaluate(index, host).map_err(|rejection| rejection.describe()),
            chosen: host == chosen,
        })
        .collect();
    candidates.sort_by(|a, b| match (&a.verdict, &b.verdict) {
        (Ok(x), Ok(y)) => x.total_cmp(y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.host.cmp(&b.host),
    });
    Some(candidates)
}
