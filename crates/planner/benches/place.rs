//! Benchmark: place 2,000 components on 10,000 generated nodes (goal, issue 3: under 2 s on one core), and the
//! fleet benchmark's application (bench/fleet.py) at 10,000 machines, three components each (issue 19: the
//! control plane plans it at every `apply`).
//! Run with `cargo bench -p stratum-planner --bench place`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use stratum_planner::model::Problem;

/// 400 sites, each with 15 edge nodes; 3,000 fog and 1,000 cloud nodes; per site five components: a source on the
/// site's edge nodes, a filter and a windowed aggregate on the fog, a sink in the cloud and a service on the fog
/// with a latency objective (2,000 components, plus the model's training job).
pub fn generate() -> String {
    let sites = 400;
    let mut text = String::from("app large\n");
    text.push_str("link edge -> fog { latency = 5 ms  bandwidth = 10 Gbit/s }\nlink fog -> cloud { latency = 30 ms  bandwidth = 40 Gbit/s }\n");
    for node in 0..6000 {
        text.push_str(&format!(
            "node edge{node} {{ tier = edge  cpu = 4  memory = 4 GiB  arch = aarch64  labels = {{ site: \"s{}\" }} }}\n",
            node % sites
        ));
    }
    for node in 0..3000 {
        text.push_str(&format!(
            "node fog{node} {{ tier = fog  cpu = 16  memory = 64 GiB  labels = {{ region: \"r{}\" }} }}\n",
            node % 20
        ));
    }
    for node in 0..1000 {
        text.push_str(&format!("node cloud{node} {{ tier = cloud  cpu = 32  memory = 128 GiB }}\n"));
    }
    text.push_str("schema Reading { sensor: string  value: float }\nschema Row { value: float  alarm: bool }\n");
    text.push_str("dataset rows { schema = Row  path = \"rows.parquet\" }\n");
    text.push_str("model alarm: classifier { data = rows  target = alarm  features = [value]  candidates { logistic_regression {} }  train_on = cloud }\n");
    for site in 0..sites {
        text.push_str(&format!(
            "source readings{site}: mqtt {{ topic = \"s/{site}\"  schema = Reading  rate = 100/s  event_size = 200 B  on = {{ site: \"s{site}\" }} }}\n\
             stream filtered{site} {{ from = readings{site}  where = value > 0.5  on = fog }}\n\
             stream per_minute{site} {{ from = filtered{site}  window = tumbling(1 min) by sensor  select {{ mean = avg(value) }}  on = fog }}\n\
             sink out{site}: parquet {{ from = per_minute{site}  path = \"out/{site}\"  on = cloud }}\n\
             service alarm{site}: inference {{ model = alarm  input = filtered{site}  on = fog  slo {{ p99 <= 20 ms }} }}\n"
        ));
    }
    text
}

/// The application bench/fleet.py applies: N edge machines, each with a source named to it, and a filter and a
/// sink placed anywhere on the edge near it.
pub fn fleet(machines: usize) -> String {
    let mut text = String::from("app fleet\n");
    for index in 1..=machines {
        text.push_str(&format!("node edge{index} {{ tier = edge  cpu = 2  memory = 2 GiB }}\n"));
    }
    text.push_str("node fog1 { tier = fog  cpu = 8  memory = 16 GiB }\n");
    text.push_str("link edge -> fog { latency = 5 ms  bandwidth = 100 Mbit/s }\n");
    text.push_str("schema Reading { sensor: string  ts: timestamp  value: float }\n");
    for index in 1..=machines {
        text.push_str(&format!(
            "source readings{index}: generator {{ schema = Reading  rate = 1/s  on = edge{index} }}\n\
             stream high{index} {{ from = readings{index}  where = value > 0.5  on = edge  near = readings{index}  cpu = 0.5 }}\n\
             sink kept{index}: jsonl {{ from = high{index}  path = \"out/{index}.jsonl\"  on = edge  near = high{index}  cpu = 0.5 }}\n"
        ));
    }
    text
}

fn bench_fleet(criterion: &mut Criterion) {
    let text = fleet(10_000);
    let mut group = criterion.benchmark_group("fleet of 10,000 machines, 30,000 components");
    group.sample_size(10);
    group.bench_function("check", |bench| bench.iter(|| stratum_lang::check_text("fleet.stratum", black_box(&text))));
    let checked = stratum_lang::check_text("fleet.stratum", &text);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics.first().map(|diagnostic| &diagnostic.message));
    group.bench_function("plan", |bench| bench.iter(|| stratum_planner::plan(black_box(&checked))));
    group.finish();
}

fn bench(criterion: &mut Criterion) {
    let text = generate();
    let checked = stratum_lang::check_text("large.stratum", &text);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics.first().map(|diagnostic| &diagnostic.message));
    let problem = Problem::from_application(&checked.application);
    let planned = stratum_planner::plan(&checked);
    assert!(planned.plan.is_some(), "the generated application must be placeable");
    let name = format!("place {} components on {} nodes", problem.components.len(), problem.hosts.len());
    let mut group = criterion.benchmark_group(name);
    group.sample_size(10);
    group.bench_function("build the problem", |bench| {
        bench.iter(|| stratum_planner::model::Problem::from_application(black_box(&checked.application)))
    });
    group.bench_function("plan (whole planner)", |bench| bench.iter(|| stratum_planner::plan(black_box(&checked))));
    group.finish();
}

criterion_group!(benches, bench, bench_fleet);
criterion_main!(benches);
