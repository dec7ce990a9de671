//! Property tests: on random small applications the planner finds a plan whenever one exists (checked by
//! exhaustive enumeration of every assignment), its plan is feasible, and its objective is within 5% of the
//! optimum.

use proptest::prelude::*;
use stratum_planner::model::Problem;
use stratum_planner::search::{State, solve};

const TIERS: [&str; 3] = ["edge", "fog", "cloud"];

/// A random application with two to four machines and up to seven component instances.
fn application() -> impl Strategy<Value = String> {
    let node = (0..3usize, 1..5u32, 1..5u32, any::<bool>(), any::<bool>());
    let component = (0..4usize, 0..4usize, 1..4u32, 1..9u32);
    (
        prop::collection::vec(node, 2..5),
        (1..60u32, 1..50u32, 1..60_000u32, 1..60_000u32),
        (1..500u32, 1..16u32, any::<bool>()),
        prop::collection::vec(component, 1..4),
        (any::<bool>(), 1..40u32, any::<bool>()),
    )
        .prop_map(|(nodes, (edge_fog_ms, fog_cloud_ms, edge_fog_kbit, fog_cloud_kbit), (rate, size_kib, per_node), streams, (service, slo_ms, near))| {
            let mut text = String::from("app random\n");
            for (index, (tier, cpu, memory, gpu, zone)) in nodes.iter().enumerate() {
                let gpu = if *gpu { "  gpu = 1 x \"t4\"" } else { "" };
                let zone = if *zone { "a" } else { "b" };
                text.push_str(&format!(
                    "node n{index} {{ tier = {}  cpu = {cpu}  memory = {memory} GiB  labels = {{ zone: \"{zone}\" }}{gpu} }}\n",
                    TIERS[*tier]
                ));
            }
            text.push_str(&format!("link edge -> fog {{ latency = {edge_fog_ms} ms  bandwidth = {edge_fog_kbit} kbit/s }}\n"));
            text.push_str(&format!("link fog -> cloud {{ latency = {fog_cloud_ms} ms  bandwidth = {fog_cloud_kbit} kbit/s }}\n"));
            text.push_str("schema R { k: string  v: float }\n");
            let per_node = if per_node { " per node" } else { "" };
            text.push_str(&format!(
                "source s: generator {{ schema = R  rate = {rate}/s{per_node}  event_size = {size_kib} KiB  on = edge }}\n"
            ));
            let mut previous = "s".to_string();
            for (index, (tier, constraint, cpu_quarters, memory_eighths)) in streams.iter().enumerate() {
                let placement = match constraint {
                    0 => format!("on = {}", TIERS[*tier % 3]),
                    1 => "on = { zone: \"a\" }".to_string(),
                    2 if near => "near = s".to_string(),
                    _ => String::new(),
                };
                text.push_str(&format!(
                    "stream t{index} {{ from = {previous}  where = v > 0  {placement}  cpu = {}  memory = {} GiB }}\n",
                    f64::from(*cpu_quarters) / 4.0,
                    f64::from(*memory_eighths) / 8.0
                ));
                previous = format!("t{index}");
            }
            text.push_str(&format!("sink out: jsonl {{ from = {previous}  path = \"out.jsonl\" }}\n"));
            if service {
                text.push_str(
                    "schema Row { v: float  y: bool }\ndataset rows { schema = Row  path = \"rows.csv\" }\n\
                     model m: classifier { data = rows  target = y  features = [v]  candidates { logistic_regression {} } }\n",
                );
                text.push_str(&format!(
                    "service sv: inference {{ model = m  input = {previous}  slo {{ p99 <= {slo_ms} ms }}  scale {{ min = 1  max = 2 }} }}\n"
                ));
            }
            text
        })
}

/// The best score over every assignment of components to hosts, or None when none is feasible.
fn exhaustive_optimum(problem: &Problem) -> Option<f64> {
    let (components, hosts) = (problem.components.len(), problem.hosts.len());
    let mut digits = vec![0usize; components];
    let mut best: Option<f64> = None;
    loop {
        let mut state = State::new(problem);
        let mut feasible = true;
        for (component, host) in digits.iter().enumerate() {
            match state.evaluate(component, *host) {
                Ok(added) => state.apply(component, *host, added),
                Err(_) => {
                    feasible = false;
                    break;
                }
            }
        }
        if feasible {
            best = Some(best.map_or(state.score, |known: f64| known.min(state.score)));
        }
        let mut position = 0;
        loop {
            if position == components {
                return best;
            }
            digits[position] += 1;
            if digits[position] < hosts {
                break;
            }
            digits[position] = 0;
            position += 1;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn the_planner_is_feasible_and_near_optimal(text in application()) {
        let checked = stratum_lang::check_text("random.stratum", &text);
        prop_assume!(!checked.has_errors());
        let problem = Problem::from_application(&checked.application);
        let space = (problem.hosts.len() as f64).powi(problem.components.len() as i32);
        prop_assume!(space <= 200_000.0);

        let optimum = exhaustive_optimum(&problem);
        let found = solve(&problem);
        match (optimum, &found) {
            (None, None) => {}
            (Some(_), None) => prop_assert!(false, "a plan exists but the planner found none:\n{text}"),
            (None, Some(_)) => prop_assert!(false, "the planner returned a plan where none is feasible:\n{text}"),
            (Some(optimum), Some(solution)) => {
                // The planner's plan is feasible, and its score is what re-applying it gives.
                let mut state = State::new(&problem);
                for (component, host) in solution.assignment.iter().enumerate() {
                    let added = state.evaluate(component, *host);
                    prop_assert!(added.is_ok(), "the plan puts component {component} where it cannot go: {:?}", added);
                    state.apply(component, *host, added.unwrap());
                }
                prop_assert!((state.score - solution.score).abs() < 1e-6);
                prop_assert!(solution.score <= optimum * 1.05 + 1e-6, "score {} but the optimum is {optimum}:\n{text}", solution.score);
            }
        }
    }
}
