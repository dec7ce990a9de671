//! The plan as a table a person can check by eye: machines grouped by tier with what runs on each and how full
//! it is, then the links and the objective.

use std::fmt::Write;
use stratum_core::ir::Tier;
use stratum_core::plan::Plan;
use stratum_core::units::{ByteSize, trim_number};

/// The plan as the table `stratum plan` prints: each host with what runs there and what it uses, then the links.
pub fn render(plan: &Plan, optimal: bool) -> String {
    let mut out = String::new();
    let used_hosts =
        plan.hosts.iter().filter(|host| plan.assignments.iter().any(|assignment| assignment.host == host.host)).count();
    let quality = if optimal { "optimal" } else { "best found within the search budget" };
    let _ = writeln!(
        out,
        "plan for `{}`: {} component instance(s) on {used_hosts} of {} machine(s) ({quality})",
        plan.app,
        plan.assignments.len(),
        plan.hosts.len()
    );
    for tier in [Tier::Edge, Tier::Fog, Tier::Cloud] {
        let hosts: Vec<_> = plan.hosts.iter().filter(|host| host.tier == tier).collect();
        if hosts.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{}", tier.name());
        let mut idle = Vec::new();
        for host in hosts {
            let assignments: Vec<_> =
                plan.assignments.iter().filter(|assignment| assignment.host == host.host).collect();
            if assignments.is_empty() && host.pool.is_some() && !host.in_use {
                idle.push(host.host.as_str());
                continue;
            }
            let disk = match host.disk_capacity {
                Some(capacity) => format!("  disk {}/{}", host.disk_used, capacity),
                None if host.disk_used.0 > 0 => format!("  disk {}", host.disk_used),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:<22} cpu {}/{}  memory {}/{}{disk}",
                host.host,
                trim_number(host.cpu_used),
                trim_number(host.cpu_capacity),
                host.memory_used,
                host.memory_capacity
            );
            for assignment in assignments {
                let instance =
                    if plan.assignments.iter().filter(|other| other.component == assignment.component).count() > 1 {
                        format!(" #{}", assignment.instance)
                    } else {
                        String::new()
                    };
                let disk = if assignment.requests.disk.0 > 0 {
                    format!("  {} disk", assignment.requests.disk)
                } else {
                    String::new()
                };
                let label = format!("{} {}{instance}", assignment.kind.name(), assignment.component);
                let _ = writeln!(
                    out,
                    "    {label:<36} {} cpu  {}{disk}",
                    trim_number(assignment.requests.cpu),
                    ByteSize(assignment.requests.memory.0)
                );
            }
        }
        if !idle.is_empty() {
            let _ = writeln!(out, "  ({} unused: {})", idle.len(), idle.join(", "));
        }
    }
    let links: Vec<_> = plan.links.iter().filter(|link| !link.assumed || link.used.0 > 0.0).collect();
    if !links.is_empty() {
        let _ = writeln!(out, "\nlinks");
        for link in links {
            let capacity = match link.capacity {
                Some(capacity) => format!(
                    "{} of {} ({}%)",
                    link.used,
                    capacity,
                    trim_number(100.0 * link.used.0 / capacity.0.max(1e-9))
                ),
                None => format!("{} (assumed link, no declared bandwidth)", link.used),
            };
            let _ = writeln!(
                out,
                "  {:<16} {:>8}  {capacity}",
                format!("{} -> {}", link.from, link.to),
                link.latency.to_string()
            );
        }
    }
    let objective = &plan.objective;
    let _ = writeln!(
        out,
        "\nobjective: data-path latency {} ms, cross-tier traffic {}, {} per hour",
        trim_number(objective.path_latency_ms),
        objective.cross_tier_traffic,
        trim_number(objective.hourly_cost)
    );
    out
}
