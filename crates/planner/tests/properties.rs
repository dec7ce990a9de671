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

/// A random fleet: many machines of a few kinds, sources named to their machine, and streams near them, so that
/// most hosts are interchangeable and the search's shortcut over classes of hosts is exercised.
fn fleet() -> impl Strategy<Value = String> {
    let machine = (0..2usize, 1..4u32);
    let stream = (0..6usize, 1..9u32, any::<bool>());
    (prop::collection::vec(machine, 3..12), prop::collection::vec(stream, 1..12), 1..3u32).prop_map(
        |(machines, streams, fogs)| {
            let mut text = String::from("app fleet\n");
            for (index, (kind, cpu)) in machines.iter().enumerate() {
                let zone = if *kind == 0 { "a" } else { "b" };
                text.push_str(&format!(
                    "node e{index} {{ tier = edge  cpu = {cpu}  memory = 2 GiB  labels = {{ zone: \"{zone}\" }} }}\n"
                ));
            }
            for index in 0..fogs {
                text.push_str(&format!("node f{index} {{ tier = fog  cpu = 2  memory = 4 GiB }}\n"));
            }
            text.push_str("link edge -> fog { latency = 5 ms  bandwidth = 100 Mbit/s }\n");
            text.push_str("schema R { k: string  v: float }\n");
            let sources = machines.len().min(4);
            for index in 0..sources {
                text.push_str(&format!(
                    "source s{index}: generator {{ schema = R  rate = 10/s  on = e{index}  cpu = 0.5 }}\n"
                ));
            }
            for (index, (input, cpu_quarters, near)) in streams.iter().enumerate() {
                let source = input % sources;
                let near = if *near { format!("near = s{source}") } else { String::new() };
                text.push_str(&format!(
                    "stream t{index} {{ from = s{source}  where = v > 0  on = edge  {near}  cpu = {} }}\n",
                    f64::from(*cpu_quarters) / 4.0
                ));
            }
            text
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The options the search weighs at each step are what evaluating every candidate host would give: each with
    /// the score `evaluate` gives it, cheapest first, and every feasible host left out is either past the limit or
    /// an empty host standing in for another empty one of the same score.
    #[test]
    fn the_options_are_those_of_evaluating_every_host(text in fleet(), limit in 1..4usize) {
        let checked = stratum_lang::check_text("fleet.stratum", &text);
        prop_assume!(!checked.has_errors());
        let problem = Problem::from_application(&checked.application);
        let mut state = State::new(&problem);
        for component in stratum_planner::search::placement_order(&state) {
            let (options, _) = state.options(component, limit);
            let empty = |state: &State, host: usize| !state.assignment.contains(&Some(host));
            let every: Vec<(f64, usize)> = state
                .candidates(component)
                .iter()
                .filter_map(|host| state.evaluate(component, *host).ok().map(|score| (score, *host)))
                .collect();
            prop_assert!(options.len() <= limit);
            prop_assert!(options.windows(2).all(|pair| (pair[0].0, pair[0].1) < (pair[1].0, pair[1].1)), "{options:?}");
            for option in &options {
                prop_assert!(every.contains(option), "{option:?} is not among {every:?}:\n{text}");
            }
            let last = options.last().copied();
            for (score, host) in &every {
                if options.contains(&(*score, *host)) {
                    continue;
                }
                let past_the_limit = options.len() == limit && last.is_some_and(|last| (*score, *host) > last);
                let stood_in_for = empty(&state, *host)
                    && options.iter().any(|(other_score, other)| empty(&state, *other) && other_score == score);
                prop_assert!(
                    past_the_limit || stood_in_for,
                    "host {host} (score {score}) is left out of {options:?} (limit {limit}):\n{text}"
                );
            }
            let Some((added, host)) = options.first().copied() else { break };
            state.apply(component, host, added);
        }
    }
}
